// Globals of dedicated workers that js/ uses and TypeScript's "dom" lib lacks ("webworker" cannot be loaded beside
// "dom", and js/ runs on both sides). For tsc only (tsconfig.json).
declare class FileReaderSync {
  readAsArrayBuffer(blob: Blob): ArrayBuffer;
  readAsText(blob: Blob, encoding?: string): string;
}
declare var WorkerGlobalScope: { prototype: object } | undefined;
interface FileSystemSyncAccessHandle {
  read(buffer: ArrayBufferView, options?: { at?: number }): number;
  write(buffer: ArrayBufferView, options?: { at?: number }): number;
  truncate(size: number): void;
  getSize(): number;
  flush(): void;
  close(): void;
}
interface FileSystemFileHandle {
  createSyncAccessHandle(): Promise<FileSystemSyncAccessHandle>;
}
