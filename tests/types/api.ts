// Uses the public API as an application would, against js/page/qwasm.d.ts (compiled by tsc -p ., never run): the
// declarations stay usable and consistent (js/page/qwasm.js is checked against them in its own annotations).
import Qwasm, { QwasmError, ErrorCode, type GenEvent, type LoadOptions, type Progress } from '../../js/page/qwasm.js';

export async function summarize(folder: string, signal: AbortSignal): Promise<string> {
  const progress: Progress[] = [];
  const opts: LoadOptions = { model: folder, cache: 'auto', maxContext: 8192, kvCache: 'fp16', signal,
                              onProgress: (p) => { progress.push(p); } };
  const rt = await Qwasm.load(opts);
  try {
    const ids: Int32Array = await rt.tokenize('Resumen de alta');
    const text: string = await rt.detokenize(ids);
    const prompt = await rt.applyChatTemplate([{ role: 'user', content: text }], true);
    let out = '';
    let last: GenEvent | null = null;
    for await (const ev of rt.generate({ prompt, maxTokens: 16, greedy: true, signal })) {
      if (ev.kind === 'token') out += ev.text;
      last = ev;
    }
    if (last && last.done) out += ` (${last.stopReason}, ${last.nGenerated} tokens)`;
    return out;
  } catch (e) {
    if (e instanceof QwasmError && e.code === ErrorCode.NOT_FOUND) return `missing: ${e.file ?? '?'}`;
    throw e;
  } finally {
    await rt.dispose();
  }
}

export async function cached(): Promise<number> {
  const list = await Qwasm.cache.list();
  const { available } = await Qwasm.cache.estimate();
  return list.filter((m) => m.complete).length + available;
}
