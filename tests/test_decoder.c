/* test_decoder.c - end-to-end decoding through qw_graph + qw_decoder against onnxruntime:
 *  1. the third-party fixture tiny-llama-genai-fp16 (MultiHeadAttention, RotaryEmbedding, Skip/Simplified
 *     LayerNorm, fp16 everywhere): prompt 0,0,0,52 -> greedy 12102,30463,4666,17192,3266,18061;
 *  2. every build/models/<name>/ with a ref.json (tools/ref/ort_ref.mjs, format qwasm-ort-ref-1): the greedy token
 *     at each step equals onnxruntime's, and the last-position logits are within 1e-4 absolute (fp32 graphs) or
 *     1e-2 relative to the row's largest magnitude (graphs with fp16). Folders over QW_TEST_MAX_MB (default
 *     1200 MB of onnx files) are skipped with a message; QW_TEST_MAX_MB=0 runs everything.
 * Also prints the native decode speed per model. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "cJSON.h"
#include "qwasm.h"
#include "qw_decoder.h"
#include "qw_graph.h"
#include "qw_onnx.h"
#include "qw_pool.h"
#include "test_session.h"
#include "qw_test.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int open_session_opts(const char *dir, const char *onnx, qw_pool *pool, int max_seq, int no_kv_fuse,
                             session *s) {
    qw_error err = {0};
    qw_graph_opts go = {0};
    go.profile = getenv("QW_PROFILE") != NULL;
    go.no_kv_fuse = no_kv_fuse;
    if (session_open(dir, onnx, pool, &go, max_seq, s, &err) != QW_OK) {
        printf("%s\n", err.msg);
        return 0;
    }
    return 1;
}

static int open_session(const char *dir, const char *onnx, qw_pool *pool, int max_seq, session *s) {
    return open_session_opts(dir, onnx, pool, max_seq, 0, s);
}

static void test_fixture(qw_pool *pool) {
    const char *fx = getenv("QW_FIXTURES");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tiny-llama-genai-fp16", fx ? fx : "../shared/fixtures");
    session s;
    int ok = open_session(dir, "model.onnx", pool, 64, &s);
    CHECK(ok, "fixture %s did not load", dir);
    if (!ok) {
        close_session(&s);
        return;
    }
    static const int expect[6] = {12102, 30463, 4666, 17192, 3266, 18061};
    int32_t prompt[4] = {0, 0, 0, 52};
    int V = qw_decoder_vocab(s.d);
    CHECK(V == 32000, "vocab %d", V);
    float *logits = malloc((size_t)V * sizeof *logits);
    qw_error err = {0};
    int got[6];
    qw_status st = qw_decoder_forward(s.d, prompt, 4, logits, NULL, NULL, &err);
    CHECK(st == QW_OK, "prefill: %s", err.msg);
    for (int i = 0; i < 6 && st == QW_OK; i++) {
        got[i] = argmax(logits, V);
        int32_t id = got[i];
        if (i < 5) st = qw_decoder_forward(s.d, &id, 1, logits, NULL, NULL, &err);
        CHECK(st == QW_OK, "step %d: %s", i, err.msg);
    }
    printf("fixture tiny-llama-genai-fp16: %d %d %d %d %d %d\n", got[0], got[1], got[2], got[3], got[4], got[5]);
    for (int i = 0; i < 6; i++) CHECK(got[i] == expect[i], "fixture token %d: %d, expected %d", i, got[i], expect[i]);
    /* the same after a reset, and after truncating back to the prompt */
    qw_decoder_reset(s.d);
    st = qw_decoder_forward(s.d, prompt, 3, logits, NULL, NULL, &err);
    if (st == QW_OK) st = qw_decoder_forward(s.d, prompt + 3, 1, logits, NULL, NULL, &err);
    CHECK(st == QW_OK && argmax(logits, V) == expect[0], "split prefill");
    int32_t id = expect[0];
    st = qw_decoder_forward(s.d, &id, 1, logits, NULL, NULL, &err);
    CHECK(st == QW_OK && qw_decoder_truncate(s.d, 4) == QW_OK && qw_decoder_pos(s.d) == 4, "truncate");
    st = qw_decoder_forward(s.d, &id, 1, logits, NULL, NULL, &err);
    CHECK(st == QW_OK && argmax(logits, V) == expect[1], "after truncate: %d", argmax(logits, V));
    volatile int abort_flag = 1;
    st = qw_decoder_forward(s.d, &id, 1, logits, NULL, &abort_flag, &err);
    CHECK(st == QW_E_ABORTED, "abort flag: %d", st);
    printf("fixture stats: %s\n", qw_graph_stats_json(s.g));
    free(logits);
    close_session(&s);
}

static int b64val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static int decode_row(const cJSON *v, int b64, float *row, int V) {
    if (!b64) {
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != V) return 0;
        int i = 0;
        for (const cJSON *e = v->child; e; e = e->next) row[i++] = (float)e->valuedouble;
        return 1;
    }
    const char *s = cJSON_GetStringValue(v);
    if (!s) return 0;
    uint8_t *out = (uint8_t *)row;
    size_t n = 0, cap = (size_t)V * 4;
    uint32_t acc = 0;
    int bits = 0;
    for (; *s; s++) {
        int x = b64val((unsigned char)*s);
        if (x < 0) continue;
        acc = (acc << 6) | (uint32_t)x;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n < cap) out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return n == cap;
}

static uint64_t dir_bytes(const char *dir) {
    uint64_t t = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[2048];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.' && stat(p, &st) == 0 && S_ISREG(st.st_mode)) t += (uint64_t)st.st_size;
    }
    closedir(d);
    return t;
}

static void test_model(const char *dir, const char *name, qw_pool *pool) {
    char path[2048];
    snprintf(path, sizeof path, "%s/ref.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("%s: no ref.json, skipped\n", name);
        return;
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *txt = malloc((size_t)sz + 1);
    size_t rd = fread(txt, 1, (size_t)sz, f);
    txt[rd] = 0;
    fclose(f);
    cJSON *ref = cJSON_Parse(txt);
    free(txt);
    CHECK(ref, "%s: ref.json does not parse", name);
    if (!ref) return;
    const char *onnx = cJSON_GetStringValue(cJSON_GetObjectItem(ref, "onnx"));
    int V = cJSON_GetObjectItem(ref, "vocab") ? cJSON_GetObjectItem(ref, "vocab")->valueint : 0;
    int b64 = cJSON_GetStringValue(cJSON_GetObjectItem(ref, "logits_encoding")) &&
              !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(ref, "logits_encoding")), "f32-base64");
    cJSON *prompt = cJSON_GetObjectItem(ref, "prompt_ids"), *tokens = cJSON_GetObjectItem(ref, "tokens"),
          *steps = cJSON_GetObjectItem(ref, "steps");
    char sub[2048];
    snprintf(sub, sizeof sub, "%s/onnx", dir);
    const char *mx = getenv("QW_TEST_MAX_MB");
    double max_mb = mx ? atof(mx) : 1200;
    double mb = (double)dir_bytes(sub) / 1048576.0;
    if (max_mb > 0 && mb > max_mb) {
        printf("%s: %.0f MB of onnx files > QW_TEST_MAX_MB=%.0f, skipped\n", name, mb, max_mb);
        cJSON_Delete(ref);
        return;
    }
    int is_f16 = strstr(onnx, "f16") != NULL || strstr(name, "f16") != NULL;
    int np = cJSON_GetArraySize(prompt), ns = cJSON_GetArraySize(steps);
    session s;
    double t0 = now_ms();
    int ok = open_session(dir, onnx, pool, np + ns + 8, &s);
    CHECK(ok, "%s: did not load", name);
    if (!ok) {
        close_session(&s);
        cJSON_Delete(ref);
        return;
    }
    double load_ms = now_ms() - t0;
    CHECK(qw_decoder_vocab(s.d) == V, "%s: vocab %d vs %d", name, qw_decoder_vocab(s.d), V);
    int32_t *ids = malloc((size_t)np * sizeof *ids);
    for (int i = 0; i < np; i++) ids[i] = cJSON_GetArrayItem(prompt, i)->valueint;
    float *lg = malloc((size_t)V * 4), *rf = malloc((size_t)V * 4);
    qw_error err = {0};
    int bad_tok = 0;
    double worst = 0, decode_ms = 0, prefill_ms = 0;
    for (int i = 0; i < ns; i++) {
        double ts = now_ms();
        qw_status st = i == 0 ? qw_decoder_forward(s.d, ids, np, lg, NULL, NULL, &err) : 0;
        if (i > 0) {
            int32_t id = cJSON_GetArrayItem(tokens, i - 1)->valueint;
            st = qw_decoder_forward(s.d, &id, 1, lg, NULL, NULL, &err);
        }
        if (i == 0)
            prefill_ms = now_ms() - ts;
        else
            decode_ms += now_ms() - ts;
        CHECK(st == QW_OK, "%s step %d: %s", name, i, err.msg);
        if (st != QW_OK) break;
        cJSON *stp = cJSON_GetArrayItem(steps, i);
        if (!decode_row(cJSON_GetObjectItem(stp, "logits_last"), b64, rf, V)) {
            CHECK(0, "%s: bad logits row %d", name, i);
            break;
        }
        int tok = argmax(lg, V), want = cJSON_GetArrayItem(tokens, i)->valueint;
        if (tok != want) {
            bad_tok++;
            printf("%s step %d: token %d, onnxruntime %d (margin %g)\n", name, i, tok, want,
                   cJSON_GetObjectItem(stp, "top2_margin")->valuedouble);
        }
        float amax = 0;
        double step_worst = 0;
        for (int k = 0; k < V; k++)
            if (fabsf(rf[k]) > amax) amax = fabsf(rf[k]);
        for (int k = 0; k < V; k++) {
            double e = fabs((double)lg[k] - rf[k]);
            if (is_f16) e /= amax > 1 ? amax : 1;
            if (e > step_worst) step_worst = e;
        }
        if (step_worst > worst) worst = step_worst;
        if (getenv("QW_VERBOSE")) printf("%s step %d: max logit error %.3g\n", name, i, step_worst);
    }
    double tol = is_f16 ? 1e-2 : 1e-4;
    CHECK(bad_tok == 0, "%s: %d greedy tokens differ", name, bad_tok);
    CHECK(worst <= tol, "%s: logits differ by %g (%s), tolerance %g", name, worst, is_f16 ? "relative" : "absolute",
          tol);
    printf("%s: %s, %d steps, max logit error %.3g (%s), load %.0f ms, prefill %d tokens %.1f ms, decode %.2f tok/s\n",
           name, bad_tok == 0 && worst <= tol ? "ok" : "FAILED", ns, worst, is_f16 ? "rel" : "abs", load_ms, np,
           prefill_ms, ns > 1 ? (ns - 1) * 1000.0 / decode_ms : 0.0);
    printf("%s stats: %s\n", name, qw_graph_stats_json(s.g));
    free(ids);
    free(lg);
    free(rf);
    close_session(&s);
    cJSON_Delete(ref);
}

/* ---- in-place KV cache and fused attention (qw_graph_kv_fuse) -------------------------------------- */

static double row_err(const float *a, const float *b, int n, int rel) {
    float amax = 0;
    double e = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(b[i]) > amax) amax = fabsf(b[i]);
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (rel) d /= amax > 1 ? amax : 1;
        if (d > e) e = d;
    }
    return e;
}

/* one graph run over explicit inputs (batch 1): ids, attention_mask, position_ids; pasts from the caller (generic
 * graph) or the fused caches (kc, len = past); logits of the last position into lg */
static int run_direct(qw_graph *g, int n_layers, qw_kv_cache *kc, float **pk, float **pv, int64_t heads, int64_t hd,
                      int past, const int64_t *ids, int n, const int64_t *mask, const int64_t *pos, float *lg, int V) {
    qw_error err = {0};
    int64_t d2[2] = {1, n}, dm[2] = {1, past + n};
    qw_graph_set_input(g, qw_graph_find_input(g, "input_ids"), QW_DT_I64, 2, d2, ids, &err);
    qw_graph_set_input(g, qw_graph_find_input(g, "attention_mask"), QW_DT_I64, 2, dm, mask, &err);
    qw_graph_set_input(g, qw_graph_find_input(g, "position_ids"), QW_DT_I64, 2, d2, pos, &err);
    for (int l = 0; l < n_layers; l++) {
        char kn[64], vn[64];
        snprintf(kn, sizeof kn, "past_key_values.%d.key", l);
        snprintf(vn, sizeof vn, "past_key_values.%d.value", l);
        int64_t kd[4] = {1, heads, past, hd};
        if (kc) {
            kc[l].len = past;
            continue;
        }
        qw_graph_set_input(g, qw_graph_find_input(g, kn), QW_DT_F32, 4, kd, pk[l], &err);
        qw_graph_set_input(g, qw_graph_find_input(g, vn), QW_DT_F32, 4, kd, pv[l], &err);
    }
    if (qw_graph_run(g, NULL, NULL, &err) != QW_OK) {
        printf("run: %s\n", err.msg);
        return 0;
    }
    const qw_tensor *t = qw_graph_output(g, qw_graph_find_output(g, "logits"));
    if (!t || t->dtype != QW_DT_F32) return 0;
    memcpy(lg, (const float *)t->data + (t->numel / V - 1) * V, (size_t)V * 4); /* (1, 1, V) when last-only */
    if (!kc)
        for (int l = 0; l < n_layers; l++) { /* presents -> next pasts (copied: outputs live until the next run) */
            char kn[64], vn[64];
            snprintf(kn, sizeof kn, "present.%d.key", l);
            snprintf(vn, sizeof vn, "present.%d.value", l);
            const qw_tensor *a = qw_graph_output(g, qw_graph_find_output(g, kn)),
                            *b = qw_graph_output(g, qw_graph_find_output(g, vn));
            if (!a || !b || a->dtype != QW_DT_F32) return 0;
            memcpy(pk[l], a->data, (size_t)a->numel * 4);
            memcpy(pv[l], b->data, (size_t)b->numel * 4);
        }
    else
        for (int l = 0; l < n_layers; l++) kc[l].len = past + n;
    return 1;
}

static void test_kv(const char *models, const char *name, qw_pool *pool) {
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/%s", models, name);
    const char *onnx = strstr(name, "q4f16") ? "onnx/model_q4f16.onnx"
                       : strstr(name, "q4")  ? "onnx/model_q4.onnx"
                                             : "onnx/model.onnx";
    int rel = strstr(name, "f16") != NULL;
    double tol = rel ? 1e-2 : 1e-4; /* the decoder test's tolerances vs onnxruntime */
    session a, b;
    int oka = open_session_opts(dir, onnx, pool, 64, 0, &a), okb = open_session_opts(dir, onnx, pool, 64, 1, &b);
    CHECK(oka && okb, "%s: kv sessions did not open", name);
    if (!oka || !okb) {
        close_session(&a);
        close_session(&b);
        return;
    }
    int V = qw_decoder_vocab(a.d);
    float *la = malloc((size_t)V * 4), *lb = malloc((size_t)V * 4), *l1 = malloc((size_t)V * 4);
    qw_error err = {0};
    /* 1. fused vs decomposed decoding: same logits, same cache contents */
    int32_t prompt[7] = {3, 14, 15, 92, 65, 35, 89};
    int ok = qw_decoder_forward(a.d, prompt, 7, la, NULL, NULL, &err) == QW_OK &&
             qw_decoder_forward(b.d, prompt, 7, lb, NULL, NULL, &err) == QW_OK;
    CHECK(ok, "%s: prefill: %s", name, err.msg);
    double worst = ok ? row_err(la, lb, V, rel) : 1;
    int32_t toks[6];
    for (int i = 0; i < 6 && ok; i++) {
        toks[i] = argmax(la, V);
        ok = qw_decoder_forward(a.d, &toks[i], 1, la, NULL, NULL, &err) == QW_OK &&
             qw_decoder_forward(b.d, &toks[i], 1, lb, NULL, NULL, &err) == QW_OK;
        if (i == 0) memcpy(l1, la, (size_t)V * 4);
        double e = ok ? row_err(la, lb, V, rel) : 1;
        if (e > worst) worst = e;
    }
    CHECK(ok && worst <= tol, "%s: fused vs decomposed attention logits differ by %g", name, worst);
    qw_decoder_kv_info ki;
    qw_decoder_kv_stats(a.d, &ki);
    const qw_onnx_value_info *vi = qw_graph_input_info(a.g, qw_graph_find_input(a.g, "past_key_values.0.key"));
    int64_t heads = vi->dims[1].value, hd = vi->dims[3].value;
    CHECK(ki.layers > 0 && ki.fused_layers == ki.layers, "%s: %d of %d layers fused", name, ki.fused_layers, ki.layers);
    CHECK(ki.fast_calls == (uint64_t)ki.layers * 7 && ki.masked_calls == 0, "%s: fast %llu masked %llu", name,
          (unsigned long long)ki.fast_calls, (unsigned long long)ki.masked_calls);
    uint64_t want = (uint64_t)ki.layers * 2 * (uint64_t)(heads * hd) * 13 * (rel ? 2 : 4);
    CHECK(ki.appended_bytes == want, "%s: appended %llu bytes, %llu expected", name,
          (unsigned long long)ki.appended_bytes, (unsigned long long)want);
    qw_decoder_kv_info kb;
    qw_decoder_kv_stats(b.d, &kb);
    CHECK(kb.fused_layers == 0, "%s: no_kv_fuse still fused %d layers", name, kb.fused_layers);
    size_t kvn = (size_t)(heads * 13 * hd);
    float *ka = malloc(kvn * 4), *va = malloc(kvn * 4), *kb_ = malloc(kvn * 4), *vb = malloc(kvn * 4);
    /* layer 0's keys/values do not depend on attention: identical; later layers' within the logits tolerance */
    double kerr = 0, kerr0 = 0;
    for (int l = 0; l < ki.layers; l++) {
        if (qw_decoder_read_kv(a.d, l, ka, va) != QW_OK || qw_decoder_read_kv(b.d, l, kb_, vb) != QW_OK) {
            kerr = 1;
            break;
        }
        double e = fmax(row_err(ka, kb_, (int)kvn, 1), row_err(va, vb, (int)kvn, 1));
        if (l == 0) kerr0 = e;
        if (e > kerr) kerr = e;
    }
    CHECK(kerr0 == 0 && kerr <= tol, "%s: cached K/V differ from the presents by %g (layer 0: %g)", name, kerr, kerr0);
    printf("%s: fused attention vs decomposed: logits %.3g, cache %.3g; %d/%d layers fused, %llu KV bytes appended\n",
           name, worst, kerr, ki.fused_layers, ki.layers, (unsigned long long)ki.appended_bytes);
    /* 2. truncate back to the prompt and decode the first token again: the same logits */
    ok = qw_decoder_truncate(a.d, 7) == QW_OK && qw_decoder_pos(a.d) == 7 &&
         qw_decoder_forward(a.d, &toks[0], 1, la, NULL, NULL, &err) == QW_OK;
    CHECK(ok && row_err(la, l1, V, 0) <= 1e-6, "%s: after truncate the logits differ by %g", name,
          ok ? row_err(la, l1, V, 0) : -1.0);
    /* grow past the first capacity block and reset */
    qw_decoder_reset(a.d);
    CHECK(qw_decoder_forward(a.d, prompt, 7, la, NULL, NULL, &err) == QW_OK && row_err(la, lb, V, 0) >= 0,
          "%s: after reset: %s", name, err.msg);
    /* 3. a left-padded attention_mask (zeros) through the fused node's masked path vs the decomposed graph */
    int nl = ki.layers;
    qw_kv_cache *kc = calloc((size_t)nl, sizeof *kc);
    float **pk = calloc((size_t)nl, sizeof *pk), **pv = calloc((size_t)nl, sizeof *pv);
    int fused = 0;
    for (int l = 0; l < nl; l++) {
        kc[l].heads = heads;
        kc[l].head_dim = hd;
        kc[l].cap = 16;
        kc[l].k = calloc((size_t)(heads * 16 * hd), 4);
        kc[l].v = calloc((size_t)(heads * 16 * hd), 4);
        pk[l] = calloc((size_t)(heads * 16 * hd), 4);
        pv[l] = calloc((size_t)(heads * 16 * hd), 4);
    }
    session c, e2;
    int okc = open_session_opts(dir, onnx, pool, 64, 0, &c), oke = open_session_opts(dir, onnx, pool, 64, 1, &e2);
    /* sessions' decoders already fused c's graph into their own caches: use fresh graphs */
    qw_decoder_free(c.d);
    c.d = NULL;
    qw_graph_free(c.g);
    c.g = NULL;
    qw_graph_opts go = {0};
    okc = okc && qw_graph_build(&c.fs, c.m, pool, &go, &c.g, &err) == QW_OK;
    for (int l = 0; l < nl && okc; l++) {
        char kn[64], vn[64];
        snprintf(kn, sizeof kn, "past_key_values.%d.key", l);
        snprintf(vn, sizeof vn, "past_key_values.%d.value", l);
        fused += qw_graph_kv_fuse(c.g, qw_graph_find_input(c.g, kn), qw_graph_find_input(c.g, vn), &kc[l]);
    }
    if (okc) qw_graph_kv_commit(c.g);
    CHECK(okc && oke && fused == nl, "%s: direct graphs (%d fused)", name, fused);
    int64_t ids[6] = {3, 14, 15, 92, 65, 35}, mask[8] = {0, 0, 1, 1, 1, 1, 1, 1}, pos[6] = {1, 1, 0, 1, 2, 3};
    ok = okc && oke && run_direct(c.g, nl, kc, NULL, NULL, heads, hd, 0, ids, 6, mask, pos, la, V) &&
         run_direct(e2.g, nl, NULL, pk, pv, heads, hd, 0, ids, 6, mask, pos, lb, V);
    double pe = ok ? row_err(la, lb, V, rel) : 1;
    int64_t id1 = argmax(lb, V), p1 = 4;
    ok = ok && run_direct(c.g, nl, kc, NULL, NULL, heads, hd, 6, &id1, 1, mask, &p1, la, V) &&
         run_direct(e2.g, nl, NULL, pk, pv, heads, hd, 6, &id1, 1, mask, &p1, lb, V);
    double pe2 = ok ? row_err(la, lb, V, rel) : 1;
    uint64_t masked = 0;
    for (int l = 0; l < nl; l++) masked += kc[l].masked_calls;
    CHECK(ok && pe <= tol && pe2 <= tol, "%s: left-padded mask: fused %g / %g from the decomposed graph", name, pe,
          pe2);
    CHECK(masked == (uint64_t)nl * 2, "%s: masked path taken %llu times", name, (unsigned long long)masked);
    printf("%s: left-padded mask via the fused masked path: logits %.3g (prefill), %.3g (step)\n", name, pe, pe2);
    for (int l = 0; l < nl; l++) {
        free(kc[l].k);
        free(kc[l].v);
        free(pk[l]);
        free(pv[l]);
    }
    free(kc);
    free(pk);
    free(pv);
    close_session(&c);
    close_session(&e2);
    free(ka);
    free(va);
    free(kb_);
    free(vb);
    free(la);
    free(lb);
    free(l1);
    close_session(&a);
    close_session(&b);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    qw_pool *pool = qw_pool_new(0);
    test_fixture(pool);
    const char *bd = getenv("QW_BUILD_DIR");
    char models[1024];
    snprintf(models, sizeof models, "%s/models", bd ? bd : "build");
    DIR *d = opendir(models);
    if (!d) {
        /* the generated models live in the source tree's build/ when the test build dir is elsewhere */
        const char *src = getenv("QW_SOURCE_DIR");
        snprintf(models, sizeof models, "%s/build/models", src ? src : ".");
        d = opendir(models);
    }
    if (!d) {
        printf("skipped: no generated models\n");
    } else {
        char *names[256];
        int n = 0;
        struct dirent *e;
        while ((e = readdir(d)) && n < 256)
            if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
        closedir(d);
        qsort(names, (size_t)n, sizeof *names, cmp_str);
        for (int i = 0; i < n; i++) {
            char dir[2048];
            snprintf(dir, sizeof dir, "%s/%s", models, names[i]);
            struct stat st;
            if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) test_model(dir, names[i], pool);
            if (!strcmp(names[i], "tiny-fp32-op14") || !strcmp(names[i], "tiny-q4f16-op18-ext"))
                test_kv(models, names[i], pool);
            free(names[i]);
        }
    }
    qw_pool_free(pool);
    return qw_test_summary("test_decoder");
}
