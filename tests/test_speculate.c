#define _POSIX_C_SOURCE 200809L
/* test_speculate.c - prompt-lookup speculative decoding (qw_speculate.c, qw_generate.c):
 *  - the draft lookup and the 'auto' pause, on their own;
 *  - on every generated test model with a ref.json: greedy tokens with speculation equal plain decoding's, and so
 *    do tokens sampled with a seed (top-k, top-p, a repetition penalty), and a second turn reusing the KV cache
 *    after rolled-back drafts equals a plain second turn;
 *  - on tiny-copy (a model that repeats a text, so drafts are accepted): most drafts accepted, and tokens sampled
 *    at temperature 2 (many rejections) are a valid draw of the target distribution: the randomised probability
 *    integral transform of every step, under the target's probabilities computed by a plain decoder, is uniform
 *    (chi-square, 10 bins, p = 0.001). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "qw_model.h"
#include "qw_speculate.h"
#include "cJSON.h"
#include "test_session.h"
#include "qw_test.h"

static void test_lookup(void) {
    qw_spec s;
    qw_spec_init(&s, QW_SPEC_ON, 4);
    int32_t d[QW_SPEC_MAX_DRAFT];
    const int32_t h1[] = {1, 2, 3, 4, 5, 6, 9, 2, 3, 7, 8, 1, 2, 3};
    /* key 1,2,3 (longest first): its earlier occurrence at 0 continues 4,5,6,9 (capped at 4) */
    CHECK(qw_spec_draft(&s, h1, 14, d, 8) == 4 && d[0] == 4 && d[3] == 9, "3-gram draft: %d", d[0]);
    CHECK(qw_spec_draft(&s, h1, 14, d, 2) == 2, "the caller's room caps the draft");
    const int32_t h2[] = {5, 2, 3, 7, 1, 2, 3, 8, 9, 2, 3};
    /* no earlier 9,2,3 / 8,9,2,3: the 2-gram 2,3's latest earlier occurrence continues 8,9,2,3 */
    CHECK(qw_spec_draft(&s, h2, 11, d, 8) == 4 && d[0] == 8 && d[1] == 9, "latest 2-gram draft: %d", d[0]);
    const int32_t h3[] = {1, 2, 3, 4, 5};
    CHECK(qw_spec_draft(&s, h3, 5, d, 8) == 0, "no repeated n-gram: no draft");
    const int32_t h4[] = {7, 7, 7};
    CHECK(qw_spec_draft(&s, h4, 3, d, 8) == 1 && d[0] == 7, "a repeat continues to the end of the text");
    qw_spec_record(&s, 4, 1);
    CHECK(s.cur_draft == 2, "after a miss the draft shrinks to the accepted + 1: %d", s.cur_draft);
    qw_spec_record(&s, 2, 2);
    CHECK(s.cur_draft == 4, "after a full match it doubles: %d", s.cur_draft);
    qw_spec s2;
    qw_spec_init(&s2, QW_SPEC_OFF, 4);
    CHECK(qw_spec_draft(&s2, h1, 14, d, 8) == 0, "off: no draft");
    qw_spec a;
    qw_spec_init(&a, QW_SPEC_AUTO, 8);
    for (int i = 0; i < 4; i++) qw_spec_record(&a, 4, 0);
    CHECK(a.paused_left > 0 && qw_spec_draft(&a, h1, 14, d, 8) == 0, "auto: paused after a low acceptance");
    int pause = a.paused_left;
    for (int i = 0; i < pause; i++) qw_spec_plain_step(&a);
    CHECK(qw_spec_draft(&a, h1, 14, d, 8) > 0, "auto: drafts again after the pause");
}

static double now_rng(uint64_t *s) { /* the test's own uniform in [0, 1) */
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0;
}

/* Spec-sampled runs on m; oracle (a second instance) recomputes each step's target distribution. */
static void test_distribution(qw_model *m, qw_model *oracle, const int32_t *prompt, int np) {
    const float T = 2.0f;
    qw_gen_params p;
    qw_gen_params_init(&p);
    p.temperature = T;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    p.repetition_penalty = 1;
    p.max_tokens = 48;
    p.ignore_eos = 1;
    p.speculative = QW_SPEC_ON;
    int V = qw_model_vocab(m), bins[10] = {0}, total = 0, drafted = 0, accepted = 0;
    float *lg = malloc((size_t)V * 4);
    int32_t *seq = malloc((size_t)(np + GEN_MAX_IDS) * sizeof *seq);
    uint64_t u = 12345;
    qw_error err = {0};
    for (int r = 0; r < 24; r++) {
        gen_result a;
        p.seed = 1000 + (uint64_t)r;
        if (gen_run(m, prompt, np, &p, &a, &err) != QW_OK) {
            CHECK(0, "sampled run: %s", err.msg);
            break;
        }
        drafted += a.drafted, accepted += a.accepted;
        memcpy(seq, prompt, (size_t)np * sizeof *seq);
        memcpy(seq + np, a.ids, (size_t)a.n * sizeof *seq);
        qw_decoder_reset(oracle->dec);
        oracle->n_cached = 0;
        for (int i = 0; i < a.n; i++) {
            qw_status st = i == 0 ? qw_decoder_forward(oracle->dec, seq, np, lg, NULL, NULL, &err)
                                  : qw_decoder_forward(oracle->dec, seq + np + i - 1, 1, lg, NULL, NULL, &err);
            if (st != QW_OK) {
                CHECK(0, "oracle: %s", err.msg);
                break;
            }
            double mx = -INFINITY, z = 0, below = 0;
            for (int v = 0; v < V; v++)
                if (lg[v] / T > mx) mx = lg[v] / T;
            for (int v = 0; v < V; v++) z += exp(lg[v] / T - mx);
            int x = a.ids[i];
            for (int v = 0; v < x; v++) below += exp(lg[v] / T - mx);
            double pit = (below + now_rng(&u) * exp(lg[x] / T - mx)) / z;
            int b = (int)(pit * 10);
            bins[b < 0 ? 0 : b > 9 ? 9 : b]++;
            total++;
        }
    }
    double chi2 = 0, e = total / 10.0;
    for (int b = 0; b < 10; b++) chi2 += (bins[b] - e) * (bins[b] - e) / e;
    printf("tiny-copy sampled at T=%.0f: %d steps, %d drafted, %d accepted, PIT chi-square %.2f (10 bins)\n", T, total,
           drafted, accepted, chi2);
    CHECK(total >= 1000 && drafted > 100 && accepted > 0 && accepted < drafted,
          "many verify steps, some rejections: "
          "%d steps, %d/%d",
          total, accepted, drafted);
    CHECK(chi2 < 27.88, "the sampled tokens follow the target distribution: chi-square %.2f >= 27.88 (9 df, p 0.001)",
          chi2);
    free(lg);
    free(seq);
}

static void test_model(const char *dir, const char *name) {
    char path[2048];
    snprintf(path, sizeof path, "%s/ref.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("%s: no ref.json, skipped\n", name);
        return;
    }
    char *txt = malloc(1 << 20);
    size_t rd = fread(txt, 1, (1 << 20) - 1, f);
    txt[rd] = 0;
    fclose(f);
    /* only the prompt ids are needed: they lead the file */
    char *pi = strstr(txt, "\"prompt_ids\"");
    char *end = pi ? strchr(pi, ']') : NULL;
    if (end) end[1] = 0;
    char wrap[65536];
    snprintf(wrap, sizeof wrap, "{%s}", pi ? pi : "");
    free(txt);
    cJSON *j = cJSON_Parse(wrap), *pr = cJSON_GetObjectItem(j, "prompt_ids");
    int np = cJSON_GetArraySize(pr);
    CHECK(np > 0, "%s: prompt_ids in ref.json", name);
    int32_t prompt[512];
    for (int i = 0; i < np && i < 512; i++) prompt[i] = cJSON_GetArrayItem(pr, i)->valueint;
    cJSON_Delete(j);
    if (np <= 0 || np > 512) return;
    qw_fs fs;
    qw_error err = {0};
    if (qw_fs_open_dir(dir, &fs, &err) != QW_OK) {
        CHECK(0, "%s: %s", name, err.msg);
        return;
    }
    qw_load_opts lo = {0};
    lo.threads = 2;
    qw_model *plain = NULL, *spec = NULL;
    CHECK(qw_model_load(&fs, &lo, &plain, &err) == QW_OK, "%s: load: %s", name, err.msg);
    CHECK(qw_model_load(&fs, &lo, &spec, &err) == QW_OK, "%s: load: %s", name, err.msg);
    if (plain && spec) {
        qw_gen_params p;
        qw_gen_params_init(&p);
        p.max_tokens = 32;
        p.ignore_eos = 1;
        p.temperature = 0;
        p.repetition_penalty = 1;
        gen_result a, b, a2, b2;
        for (int mode = 0; mode < 2; mode++) {
            const char *what = mode ? "sampled" : "greedy";
            if (mode) {
                p.temperature = 0.8f;
                p.top_k = 20;
                p.top_p = 0.9f;
                p.repetition_penalty = 1.1f;
                p.seed = 5;
            }
            p.speculative = QW_SPEC_OFF;
            CHECK(gen_run(plain, prompt, np, &p, &a, &err) == QW_OK, "%s %s plain: %s", name, what, err.msg);
            p.speculative = QW_SPEC_ON;
            p.spec_max_draft = mode ? 8 : 4;
            CHECK(gen_run(spec, prompt, np, &p, &b, &err) == QW_OK, "%s %s spec: %s", name, what, err.msg);
            int same = gen_same(&a, &b);
            CHECK(same, "%s %s: speculative tokens differ from plain decoding's", name, what);
            printf("%s %s: %d tokens equal; %d drafted, %d accepted in %d verify steps\n", name, what, b.n, b.drafted,
                   b.accepted, b.steps);
            if (!strcmp(name, "tiny-copy") && !mode)
                CHECK(b.accepted * 2 > b.drafted && b.steps > 0, "%s: a copying model accepts most drafts (%d of %d)",
                      name, b.accepted, b.drafted);
            /* a second turn: the cache after rolled-back drafts is the plain one */
            int32_t turn[512 + GEN_MAX_IDS + 3];
            memcpy(turn, prompt, (size_t)np * sizeof *turn);
            memcpy(turn + np, a.ids, (size_t)a.n * sizeof *turn);
            int nt = np + a.n;
            turn[nt++] = prompt[0], turn[nt++] = prompt[1 % np], turn[nt++] = prompt[2 % np];
            p.max_tokens = 16;
            p.speculative = QW_SPEC_OFF;
            CHECK(gen_run(plain, turn, nt, &p, &a2, &err) == QW_OK, "%s turn 2 plain: %s", name, err.msg);
            p.speculative = QW_SPEC_ON;
            CHECK(gen_run(spec, turn, nt, &p, &b2, &err) == QW_OK, "%s turn 2 spec: %s", name, err.msg);
            CHECK(gen_same(&a2, &b2), "%s %s: second turn after speculation differs", name, what);
            p.max_tokens = 32;
        }
        if (!strcmp(name, "tiny-copy")) test_distribution(spec, plain, prompt, np);
        const char *js = qw_model_stats_json(spec);
        CHECK(strstr(js, "\"speculative\":{\"drafted\":") != NULL, "%s: stats report speculation: %.200s", name, js);
    }
    qw_model_free(plain);
    qw_model_free(spec);
    qw_fs_close(&fs);
}

/* bytes of the regular files in dir/onnx (0 when absent) */
static double onnx_mb(const char *dir) {
    char sub[2048];
    snprintf(sub, sizeof sub, "%s/onnx", dir);
    DIR *d = opendir(sub);
    if (!d) return 0;
    double b = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[4096];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", sub, e->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) b += (double)st.st_size;
    }
    closedir(d);
    return b / 1048576.0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    test_lookup();
    const char *src = getenv("QW_SOURCE_DIR");
    char models[1024];
    snprintf(models, sizeof models, "%s/build/models", src ? src : ".");
    DIR *d = opendir(models);
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
            /* models over QW_TEST_MAX_MB skipped (tools/test.sh sets it under ASan, where the 1.5B takes minutes) */
            const char *mx = getenv("QW_TEST_MAX_MB");
            double max_mb = mx ? atof(mx) : 0, mb = onnx_mb(dir);
            if (max_mb > 0 && mb > max_mb)
                printf("%s: %.0f MB of onnx files > QW_TEST_MAX_MB=%.0f, skipped\n", names[i], mb, max_mb);
            else if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
                test_model(dir, names[i]);
            free(names[i]);
        }
    }
    return qw_test_summary("test_speculate");
}
