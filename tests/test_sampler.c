/* test_sampler.c - greedy, top-k/top-p/min-p on crafted logits, repetition penalty, logit bias, seeded
 * determinism (golden ids: the same on every target for the same logits), qw_exp_det, stop strings. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qw_sampler.h"
#include "qw_test.h"

static qw_sampler *make(float temp, int top_k, float top_p, float min_p, float pen, uint64_t seed, int32_t n) {
    qw_sampler_params p;
    qw_sampler_params_init(&p);
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repetition_penalty = pen;
    p.seed = seed;
    qw_sampler *s = NULL;
    qw_error e;
    if (qw_sampler_new(&p, n, &s, &e)) {
        fprintf(stderr, "sampler: %s\n", e.msg);
        exit(1);
    }
    return s;
}

static int32_t sample(qw_sampler *s, const float *logits, int32_t n) {
    float x[16];
    memcpy(x, logits, (size_t)n * sizeof *x);
    int32_t id = -1;
    CHECK(qw_sampler_sample(s, x, &id, NULL) == QW_OK, "sample");
    return id;
}

/* Draws many times; counts[i] = how often id i came out. */
static void histogram(qw_sampler *s, const float *logits, int32_t n, int draws, int *counts) {
    memset(counts, 0, (size_t)n * sizeof *counts);
    for (int i = 0; i < draws; i++) counts[sample(s, logits, n)]++;
}

static void test_greedy_penalty_bias(void) {
    float l[4] = {1, 3, 3, 2};
    qw_sampler *s = make(0, 0, 1, 0, 1, 0, 4);
    CHECK(sample(s, l, 4) == 1, "greedy takes the lowest id on ties");
    qw_sampler_free(s);

    float r[4] = {2.0f, 1.9f, -1.0f, -1.05f};
    s = make(0, 0, 1, 0, 2.0f, 0, 4);
    qw_sampler_accept(s, 0);
    qw_sampler_accept(s, 2);
    qw_sampler_accept(s, 0); /* seen twice still penalised once, as HF's gather/scatter */
    float x[4];
    memcpy(x, r, sizeof x);
    int32_t id;
    qw_sampler_sample(s, x, &id, NULL);
    CHECK(id == 1 && x[0] == 1.0f && x[2] == -2.0f && x[1] == 1.9f && x[3] == -1.05f,
          "repetition penalty: positive / p, negative * p (id %d, %g %g)", id, x[0], x[2]);
    qw_sampler_reset(s, 0);
    CHECK(sample(s, r, 4) == 0, "reset forgets seen ids");
    qw_sampler_free(s);

    qw_sampler_params p;
    qw_sampler_params_init(&p);
    p.temperature = 0;
    int32_t bid[1] = {3};
    float bval[1] = {5.0f};
    p.bias_ids = bid;
    p.bias_values = bval;
    p.n_bias = 1;
    CHECK(qw_sampler_new(&p, 4, &s, NULL) == QW_OK, "bias sampler");
    CHECK(sample(s, l, 4) == 3, "logit bias");
    qw_sampler_free(s);
    bid[0] = 9;
    CHECK(qw_sampler_new(&p, 4, &s, NULL) == QW_E_ARG, "bias id outside the vocabulary rejected");

    float bad[3] = {-INFINITY, NAN, -INFINITY};
    s = make(1, 0, 1, 0, 1, 0, 3);
    float xb[3];
    memcpy(xb, bad, sizeof xb);
    CHECK(qw_sampler_sample(s, xb, &id, NULL) == QW_E_ARG, "all -inf/NaN is an error");
    float one[3] = {NAN, 0.5f, -INFINITY};
    CHECK(sample(s, one, 3) == 1, "only one finite logit");
    qw_sampler_free(s);
}

static void test_filters(void) {
    int c[16];
    /* top-k 2 of {0, 5, 4, 1, 4.5}: only ids 1 and 4 */
    float a[5] = {0, 5, 4, 1, 4.5f};
    qw_sampler *s = make(1, 2, 1, 0, 1, 7, 5);
    histogram(s, a, 5, 4000, c);
    CHECK(c[0] == 0 && c[2] == 0 && c[3] == 0 && c[1] > 0 && c[4] > 0, "top-k 2: %d %d %d %d %d", c[0], c[1], c[2],
          c[3], c[4]);
    /* p(1) = e^5 / (e^5 + e^4.5) = 0.622 */
    CHECK(fabs(c[1] / 4000.0 - 0.6225) < 0.03, "top-k renormalised: %g", c[1] / 4000.0);
    qw_sampler_free(s);
    /* ties with the k-th value are kept (HF keeps scores >= the k-th) */
    float t[4] = {5, 4, 4, 0};
    s = make(1, 2, 1, 0, 1, 7, 4);
    histogram(s, t, 4, 3000, c);
    CHECK(c[0] && c[1] && c[2] && !c[3], "top-k ties kept: %d %d %d %d", c[0], c[1], c[2], c[3]);
    qw_sampler_free(s);

    /* probabilities 0.5, 0.3, 0.15, 0.05 */
    float p[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    s = make(1, 0, 0.75f, 0, 1, 11, 4);
    histogram(s, p, 4, 4000, c);
    CHECK(c[0] && c[1] && !c[2] && !c[3], "top-p 0.75 keeps {0,1}: %d %d %d %d", c[0], c[1], c[2], c[3]);
    CHECK(fabs(c[0] / 4000.0 - 0.625) < 0.03, "top-p renormalised: %g", c[0] / 4000.0);
    qw_sampler_free(s);
    s = make(1, 0, 0.85f, 0, 1, 11, 4);
    histogram(s, p, 4, 4000, c);
    CHECK(c[0] && c[1] && c[2] && !c[3], "top-p 0.85 keeps {0,1,2}: %d %d %d %d", c[0], c[1], c[2], c[3]);
    qw_sampler_free(s);
    s = make(1, 0, 0.2f, 0, 1, 11, 4);
    histogram(s, p, 4, 500, c);
    CHECK(c[0] == 500, "top-p below the top probability keeps the top token");
    qw_sampler_free(s);
    /* min-p: keep p >= min_p * p_max */
    s = make(1, 0, 1, 0.2f, 1, 13, 4);
    histogram(s, p, 4, 4000, c);
    CHECK(c[0] && c[1] && c[2] && !c[3], "min-p 0.2 keeps {0,1,2}: %d %d %d %d", c[0], c[1], c[2], c[3]);
    qw_sampler_free(s);
    s = make(1, 0, 1, 0.5f, 1, 13, 4);
    histogram(s, p, 4, 4000, c);
    CHECK(c[0] && c[1] && !c[2] && !c[3], "min-p 0.5 keeps {0,1}: %d %d %d %d", c[0], c[1], c[2], c[3]);
    qw_sampler_free(s);
    /* no filter: frequencies follow the distribution */
    s = make(1, 0, 1, 0, 1, 17, 4);
    histogram(s, p, 4, 20000, c);
    CHECK(fabs(c[3] / 20000.0 - 0.05) < 0.01 && fabs(c[0] / 20000.0 - 0.5) < 0.02, "plain sampling: %d %d %d %d", c[0],
          c[1], c[2], c[3]);
    qw_sampler_free(s);
    /* temperature sharpens: at 0.25, p(0) = 0.5^4 / sum(p^4) = 0.877 */
    s = make(0.25f, 0, 1, 0, 1, 19, 4);
    histogram(s, p, 4, 20000, c);
    CHECK(fabs(c[0] / 20000.0 - 0.877) < 0.02, "temperature 0.25: %g", c[0] / 20000.0);
    qw_sampler_free(s);
}

/* Logits from integers only (the same bits everywhere). */
static void fake_logits(float *x, int32_t n, uint32_t step) {
    uint32_t h = 2166136261u ^ step;
    for (int32_t i = 0; i < n; i++) {
        h = h * 1664525u + 1013904223u;
        x[i] = (float)(int32_t)(h >> 16) / 4096.0f - 8.0f; /* [-8, 8) in steps of 1/4096 */
    }
}

static void run_seq(float temp, int k, float tp, float mp, float pen, uint64_t seed, int32_t *out, int steps) {
    const int32_t n = 151936;
    float *x = malloc((size_t)n * sizeof *x);
    qw_sampler *s = make(temp, k, tp, mp, pen, seed, n);
    for (int i = 0; i < steps; i++) {
        fake_logits(x, n, (uint32_t)i);
        CHECK(qw_sampler_sample(s, x, &out[i], NULL) == QW_OK, "sample step %d", i);
        qw_sampler_accept(s, out[i]);
    }
    qw_sampler_free(s);
    free(x);
}

/* Golden ids (QW_PRINT_GOLDEN=1 prints them): a wasm build must give the same. */
const int32_t qw_test_golden[][8] = {
    {33835, 18586, 42183, 115921, 23105, 107270, 41786, 27571},
    {147966, 64959, 6968, 130707, 27290, 34553, 27440, 88896},
    {106027, 41677, 127395, 149254, 150601, 132643, 9236, 16264},
    {52967, 84747, 57180, 130270, 119940, 30979, 42312, 9104},
};

static void test_determinism(void) {
    static const struct {
        float temp;
        int k;
        float tp, mp, pen;
        uint64_t seed;
        int32_t golden[8];
    } cases[] = {
        {0.7f, 20, 0.8f, 0, 1.05f, 1234, {0}},
        {1.0f, 0, 0.95f, 0, 1, 42, {0}},
        {1.0f, 0, 1, 0.05f, 1, 7, {0}},
        {0.9f, 0, 1, 0, 1, 99, {0}},
    };
    int print = getenv("QW_PRINT_GOLDEN") != NULL;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int32_t a[8], b[8], d[8];
        run_seq(cases[c].temp, cases[c].k, cases[c].tp, cases[c].mp, cases[c].pen, cases[c].seed, a, 8);
        run_seq(cases[c].temp, cases[c].k, cases[c].tp, cases[c].mp, cases[c].pen, cases[c].seed, b, 8);
        run_seq(cases[c].temp, cases[c].k, cases[c].tp, cases[c].mp, cases[c].pen, cases[c].seed + 1, d, 8);
        CHECK(!memcmp(a, b, sizeof a), "case %zu: same seed, same ids", c);
        CHECK(memcmp(a, d, sizeof a), "case %zu: another seed, other ids", c);
        if (print) {
            printf("case %zu:", c);
            for (int i = 0; i < 8; i++) printf(" %d,", a[i]);
            printf("\n");
        }
        CHECK(!memcmp(a, qw_test_golden[c], sizeof a), "case %zu: golden ids", c);
    }
}

static void test_exp(void) {
    double worst = 0;
    for (int i = 0; i < 100000; i++) {
        double x = -699.0 * i / 100000.0;
        double r = fabs(qw_exp_det(x) / exp(x) - 1);
        if (r > worst) worst = r;
    }
    CHECK(worst < 1e-13, "qw_exp_det relative error %g", worst);
    CHECK(qw_exp_det(0) == 1.0 && qw_exp_det(-INFINITY) == 0 && qw_exp_det(-800) == 0, "qw_exp_det edges");
    qw_rng r1, r2;
    qw_rng_seed(&r1, 5);
    qw_rng_seed(&r2, 5);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= qw_rng_next(&r1) == qw_rng_next(&r2);
    CHECK(same, "rng repeatable");
    qw_rng_seed(&r1, 0);
    CHECK(qw_rng_next(&r1) != 0, "seed 0 works");
}

static void feed(qw_stop *s, const char *t, const char *want, int want_stop) {
    const char *e;
    size_t el;
    int st;
    CHECK(qw_stop_feed(s, t, strlen(t), &st, &e, &el, NULL) == QW_OK, "feed");
    CHECK(st == want_stop && el == strlen(want) && !memcmp(e, want, el),
          "feed \"%s\": emitted \"%.*s\" stop %d, want \"%s\" %d", t, (int)el, e, st, want, want_stop);
}

static void test_stop(void) {
    const char *stops[] = {"</s>", "\n\nUser:", ""};
    qw_stop *s;
    CHECK(qw_stop_new(stops, 3, &s, NULL) == QW_OK, "stop new");
    feed(s, "Hello", "Hello", 0);
    feed(s, " wor", " wor", 0);
    feed(s, "ld<", "ld", 0);
    feed(s, "/s", "", 0);
    feed(s, "> after", "", 1);
    qw_stop_free(s);

    qw_stop_new(stops, 2, &s, NULL);
    feed(s, "a\n\nUs", "a", 0);
    feed(s, "e", "", 0);
    feed(s, "x", "\n\nUsex", 0);
    feed(s, "ok\n", "ok", 0);
    feed(s, "\n", "", 0);
    const char *e;
    size_t el;
    qw_stop_flush(s, &e, &el);
    CHECK(el == 2 && !memcmp(e, "\n\n", 2), "flush returns held text");
    feed(s, "x</s>y</s>", "x", 1); /* the earliest stop wins, the text stops before it */
    qw_stop_free(s);

    /* a stop string inside one piece, and one spanning three */
    const char *st2[] = {"STOP"};
    qw_stop_new(st2, 1, &s, NULL);
    feed(s, "abc STOP def", "abc ", 1);
    qw_stop_free(s);
    qw_stop_new(st2, 1, &s, NULL);
    feed(s, "xS", "x", 0);
    feed(s, "T", "", 0);
    feed(s, "OP", "", 1);
    qw_stop_free(s);
    /* no stops: everything passes */
    qw_stop_new(NULL, 0, &s, NULL);
    feed(s, "anything", "anything", 0);
    qw_stop_free(s);
}

int main(void) {
    test_greedy_penalty_bias();
    test_filters();
    test_exp();
    test_stop();
    test_determinism();
    return qw_test_summary("test_sampler");
}
