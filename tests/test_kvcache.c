/* test_kvcache.c - the KV cache behind the public API (issue #18): fp16 rows hold an fp16 present exactly (the
 * same tokens as fp32 rows, half the bytes), int8 rows a quarter plus scales; chunked prefill gives the whole
 * prefill's tokens; the cache grows from a long context limit instead of being reserved for it; a prefix's state
 * exported and imported into another load gives the same tokens without its prefill; damaged, truncated or
 * foreign blobs are refused with a clear status and leave an empty cache that still generates right; truncation
 * (speculative decoding's rollback) gives the same tokens as recomputing. (The default fp16 rows against
 * onnxruntime's greedy references: test_decoder.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qw_model.h"
#include "test_session.h"
#include "qw_test.h"

#define NGEN 12

typedef struct gen_out {
    int32_t ids[NGEN];
    int n, prefill_steps;
    int first_done; /* n_prompt_done after the first prefill step */
} gen_out;

static qw_status gen(qw_model *m, const int32_t *prompt, int n, int chunk, gen_out *o, qw_error *err) {
    memset(o, 0, sizeof *o);
    qw_gen_params p;
    qw_gen_params_init(&p);
    p.temperature = 0;
    p.max_tokens = NGEN;
    p.ignore_eos = 1;
    p.prefill_chunk = chunk;
    qw_gen *g = NULL;
    qw_status st = qw_gen_begin(m, prompt, (size_t)n, &p, &g, err);
    if (st != QW_OK) return st;
    for (;;) {
        qw_gen_event ev;
        if ((st = qw_gen_next(g, &ev, err)) != QW_OK) break;
        if (ev.kind == QW_GEN_PREFILL && o->prefill_steps++ == 0) o->first_done = ev.n_prompt_done;
        if (ev.kind == QW_GEN_TOKEN && o->n < NGEN) o->ids[o->n++] = ev.id;
        if (ev.kind == QW_GEN_DONE) break;
    }
    qw_gen_free(g);
    return st;
}

static int same(const gen_out *a, const gen_out *b) { return a->n == b->n && !memcmp(a->ids, b->ids, sizeof a->ids); }

static qw_model *load(qw_fs *fs, int kv, int max_context) {
    qw_load_opts lo = {0};
    lo.kv_cache = kv;
    lo.max_context = max_context;
    lo.threads = 2;
    qw_model *m = NULL;
    qw_error err = {0};
    CHECK(qw_model_load(fs, &lo, &m, &err) == QW_OK, "load (kv %d): %s", kv, err.msg);
    return m;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    qw_fs fs;
    if (!open_small_model(&fs)) return 0;
    qw_error err = {0};
    enum { NP = 300 };
    int32_t prompt[NP + 40];
    for (int i = 0; i < NP + 40; i++) prompt[i] = 1000 + (i * 7919) % 50000;
    qw_model *a = load(&fs, QW_KV_CACHE_AUTO, 0), *b = load(&fs, QW_KV_CACHE_F32, 0);
    if (!a || !b) goto done;

    /* 1. fp16 rows (the default for this fp16 graph) == fp32 rows holding the same rounded values; half the bytes */
    gen_out whole, chunked, f32, o;
    CHECK(gen(a, prompt, NP, 1000, &whole, &err) == QW_OK, "whole prefill: %s", err.msg);
    CHECK(gen(b, prompt, NP, 1000, &f32, &err) == QW_OK, "fp32 rows: %s", err.msg);
    CHECK(same(&whole, &f32), "fp16 rows give fp32 rows' tokens");
    double bpt16 = json_num(qw_model_stats_json(a), "bytes_per_token"),
           bpt32 = json_num(qw_model_stats_json(b), "bytes_per_token");
    CHECK(bpt16 > 0 && bpt16 * 2 == bpt32, "bytes per token: fp16 %g, fp32 %g", bpt16, bpt32);
    CHECK(strstr(qw_model_stats_json(a), "\"dtype\":\"fp16\"") != NULL, "stats name the fp16 rows: %s",
          qw_model_stats_json(a));

    /* 2. chunked prefill == whole prefill (chunks of 7 and 64 end mid-tile and cross the 64-key tiles) */
    for (int c = 0; c < 2; c++) {
        int chunk = c ? 64 : 7;
        qw_model_kv_truncate(a, 0, &err);
        CHECK(gen(a, prompt, NP, chunk, &chunked, &err) == QW_OK, "chunk %d: %s", chunk, err.msg);
        CHECK(same(&whole, &chunked), "prefill in chunks of %d gives the whole prefill's tokens", chunk);
        CHECK(chunked.prefill_steps == (NP + chunk - 1) / chunk, "chunk %d: %d prefill steps", chunk,
              chunked.prefill_steps);
    }

    /* 3. int8 rows: a quarter of fp32 plus one scale per kv head and position; they run the same prompt */
    qw_model *c8 = load(&fs, QW_KV_CACHE_INT8, 0);
    if (c8) {
        CHECK(gen(c8, prompt, NP, 64, &o, &err) == QW_OK && o.n == NGEN, "int8 rows: %s", err.msg);
        double bpt8 = json_num(qw_model_stats_json(c8), "bytes_per_token");
        int kvh = c8->cfg.num_kv_heads,
            layers = (int)(bpt32 / (2.0 * kvh * 4 * (c8->cfg.hidden_size / c8->cfg.num_heads)));
        CHECK(bpt8 == bpt32 / 4 + 2.0 * kvh * 4 * layers, "int8 bytes per token %g (fp32 %g, %d layers)", bpt8, bpt32,
              layers);
        int agree = 0;
        while (agree < o.n && o.ids[agree] == whole.ids[agree]) agree++;
        printf("int8 rows: %d of %d greedy tokens as fp16 rows' before the first difference\n", agree, NGEN);
        qw_model_free(c8);
    }

    /* 4. the cache grows: a 32K limit reserves a few hundred positions for a 300-token prompt */
    qw_model *big = load(&fs, QW_KV_CACHE_AUTO, 32768);
    if (big) {
        CHECK(gen(big, prompt, NP, 64, &o, &err) == QW_OK && same(&o, &whole), "32K limit: same tokens: %s", err.msg);
        double res = json_num(qw_model_stats_json(big), "reserved_bytes"),
               bpt = json_num(qw_model_stats_json(big), "bytes_per_token");
        CHECK(res > 0 && res <= bpt * 512, "reserved %g bytes = %g positions for %d", res, res / bpt, NP + NGEN);
        qw_model_free(big);
    }
    qw_model *small = load(&fs, QW_KV_CACHE_AUTO, NP + 4);
    if (small) {
        CHECK(gen(small, prompt, NP + 10, 64, &o, &err) == QW_E_CONTEXT, "a prompt over the limit is QW_E_CONTEXT");
        qw_model_free(small);
    }

    /* 5. prompt cache: the state of the first NP positions, into a fresh load, then a longer prompt */
    gen_out ref, cached;
    CHECK(gen(b, prompt, NP + 40, 64, &ref, &err) == QW_OK, "reference: %s", err.msg); /* fp32 rows: computed whole */
    qw_model_kv_truncate(a, 0, &err);
    CHECK(gen(a, prompt, NP, 64, &o, &err) == QW_OK, "prefix run: %s", err.msg);
    void *blob = NULL;
    size_t len = 0;
    CHECK(qw_model_kv_export(a, NP, &blob, &len, &err) == QW_OK, "export: %s", err.msg);
    CHECK(len == 40 + 4 * (size_t)NP + (size_t)(bpt16 * NP), "blob of %zu bytes", len);
    qw_model *r = load(&fs, QW_KV_CACHE_AUTO, 0);
    if (r && blob) {
        CHECK(qw_model_kv_import(r, blob, len, &err) == QW_OK, "import: %s", err.msg);
        CHECK(gen(r, prompt, NP + 40, 64, &cached, &err) == QW_OK, "after import: %s", err.msg);
        CHECK(same(&cached, &ref), "same tokens with and without the prompt cache");
        CHECK(cached.first_done == NP + 40 && cached.prefill_steps == 1,
              "only the 40 new tokens prefilled (%d steps, %d done)", cached.prefill_steps, cached.first_done);
        /* damaged: one byte of the rows */
        uint8_t *bad = malloc(len);
        memcpy(bad, blob, len);
        bad[len - 100] ^= 0x40;
        CHECK(qw_model_kv_import(r, bad, len, &err) == QW_E_FORMAT && strstr(err.msg, "checksum"), "damaged: %s",
              err.msg);
        CHECK(qw_model_kv_ids(r, NULL) && r->n_cached == 0, "a refused blob leaves an empty cache");
        CHECK(gen(r, prompt, NP + 40, 64, &o, &err) == QW_OK && same(&o, &ref), "rebuilt from the prompt: same tokens");
        CHECK(qw_model_kv_import(r, blob, len - 1, &err) == QW_E_FORMAT, "truncated: %s", err.msg);
        memcpy(bad, blob, len);
        bad[4] = 99; /* another layout version */
        CHECK(qw_model_kv_import(r, bad, len, &err) == QW_E_UNSUPPORTED && strstr(err.msg, "layout"), "layout: %s",
              err.msg);
        free(bad);
        /* another row type is another cache: fp32 rows refuse an fp16 blob */
        CHECK(qw_model_kv_import(b, blob, len, &err) == QW_E_UNSUPPORTED && strstr(err.msg, "another model"),
              "row type: %s", err.msg);
        CHECK(qw_model_kv_import(r, "QWKV", 4, &err) == QW_E_FORMAT, "short: %s", err.msg);
    }
    free(blob);
    qw_model_free(r);

    /* 6. rollback: truncating to the prompt and generating again == a fresh run */
    CHECK(gen(a, prompt, NP + 40, 64, &o, &err) == QW_OK, "run: %s", err.msg);
    CHECK(qw_model_kv_truncate(a, NP + 40 + 5, &err) == QW_OK && a->n_cached == NP + 45,
          "truncate into the generated part");
    CHECK(qw_model_kv_truncate(a, NP + 1000, &err) == QW_E_ARG, "truncate past the cache refused");
    CHECK(gen(a, prompt, NP + 40, 64, &o, &err) == QW_OK && same(&o, &ref) && o.prefill_steps == 1 &&
              o.first_done == NP + 40,
          "after truncation: same tokens, the prompt's last token recomputed only");

done:
    qw_model_free(a);
    qw_model_free(b);
    qw_fs_close(&fs);
    return qw_test_summary("test_kvcache");
}
