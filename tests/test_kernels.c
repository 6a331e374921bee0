/* test_kernels.c - every kernel against its scalar reference, fp16 conversions exhaustively, the pool.
 *
 *   test_kernels                 run the tests (native ctest, or `node build/wasm/test_kernels-st.mjs`)
 *   test_kernels bench [threads] print one JSON line of GB/s (weight bytes streamed per second)
 *
 * The same file builds natively and for wasm (st/mt, SIMD128, relaxed), so the SIMD variants of each
 * target are checked against the same references. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qw_dtype.h"
#include "qw_kernels.h"
#include "qw_pool.h"
#include "qw_test.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 11);
}
static float frand(void) { return (float)(rnd() & 0xffffff) / 16777216.0f * 2.0f - 1.0f; } /* [-1, 1) */
/* activations like a transformer's: mostly small, a few outliers */
static float act_rand(void) { return (rnd() % 64 == 0) ? frand() * 8.0f : frand(); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* max |a - b| over max |b| (normalised error; robust when some outputs are near zero) */
static double nerr(const float *a, const float *b, size_t n) {
    double e = 0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > e || d != d) e = d != d ? INFINITY : d;
        if (fabs(b[i]) > m) m = fabs(b[i]);
    }
    return e / m;
}

/* ---- fp16 ----------------------------------------------------------------------------------------- */

static float half_ref(uint16_t h) { /* independent: from the definition */
    int e = (h >> 10) & 31, m = h & 1023;
    float s = (h & 0x8000) ? -1.0f : 1.0f;
    if (e == 0) return s * ldexpf((float)m, -24);
    if (e == 31) return m ? NAN : s * INFINITY;
    return s * ldexpf((float)(1024 + m), e - 25);
}

static void test_f16(void) {
    static uint16_t hs[65536];
    static float fs[65536];
    for (int i = 0; i < 65536; i++) hs[i] = (uint16_t)i;
    qw_f16_to_f32_array(hs, fs, 65536);
    int bad = 0;
    for (int i = 0; i < 65536; i++) {
        float r = half_ref((uint16_t)i), s = qw_f16_to_f32((uint16_t)i);
        uint32_t a, b;
        memcpy(&a, &fs[i], 4);
        memcpy(&b, &s, 4);
        /* array == scalar bit for bit; for NaN only NaN-ness and sign (F16C quiets signalling NaNs) */
        if (s != s ? !(fs[i] != fs[i] && (a >> 31) == (b >> 31)) : a != b) bad++;
        if (!(r != r ? s != s : r == s && signbit(r) == signbit(s))) bad++; /* scalar == definition */
    }
    CHECK(bad == 0, "f16->f32: %d mismatches over all 65536 halves", bad);
    /* the same over the finite halves alone: vectors without Inf/NaN take the fast conversion in wasm */
    int nf = 0;
    for (int i = 0; i < 65536; i++)
        if ((i & 0x7c00) != 0x7c00) hs[nf++] = (uint16_t)i;
    qw_f16_to_f32_array(hs, fs, (size_t)nf);
    bad = 0;
    for (int i = 0; i < nf; i++) {
        float s = qw_f16_to_f32(hs[i]);
        if (memcmp(&fs[i], &s, 4)) bad++;
    }
    CHECK(bad == 0, "f16->f32: %d mismatches over the %d finite halves", bad, nf);

    /* f32 -> f16: reference = nearest finite half by search, ties to even mantissa, overflow rule */
    enum { NV = 200000 };
    static float v[NV];
    static uint16_t o[NV];
    for (int i = 0; i < NV; i++) {
        uint32_t bits;
        switch (i % 4) {
        case 0: bits = rnd() | (rnd() << 21); break; /* anything */
        case 1: bits = (rnd() % (0x47800000u - 0x33000000u) + 0x33000000u) | (rnd() & 1) << 31; break;
        case 2: {
            float f = half_ref((uint16_t)(rnd() & 0x7bff));
            float g = half_ref((uint16_t)((rnd() & 0x7bff) + 1));
            f = (f + g) * 0.5f;
            memcpy(&bits, &f, 4);
            break;
        }                                                                           /* ties-ish */
        default: bits = (uint32_t)(rnd() % 0x00800000u) | (rnd() & 1) << 31; break; /* f32 subnormal */
        }
        memcpy(&v[i], &bits, 4);
    }
    qw_f32_to_f16_array(v, o, NV);
    bad = 0;
    for (int i = 0; i < NV; i++) {
        float x = v[i];
        uint16_t want;
        if (x != x)
            want = 0x7e00; /* compare NaN-ness only */
        else {
            double ax = fabs((double)x);
            uint16_t sign = signbit(x) ? 0x8000 : 0;
            if (ax >= 65520.0)
                want = sign | 0x7c00;
            else {
                int lo = 0, hi = 0x7bff; /* largest half <= ax */
                while (lo < hi) {
                    int mid = (lo + hi + 1) / 2;
                    if (half_ref((uint16_t)mid) <= ax)
                        lo = mid;
                    else
                        hi = mid - 1;
                }
                double dl = ax - half_ref((uint16_t)lo), dh = lo < 0x7bff ? half_ref((uint16_t)(lo + 1)) - ax : 1e30;
                if (lo == 0x7bff) dh = 65536.0 - ax; /* rounding up past max goes to inf */
                int r = dl < dh ? lo : dl > dh ? lo + 1 : ((lo & 1) ? lo + 1 : lo);
                want = sign | (uint16_t)r;
            }
        }
        uint16_t s = qw_f32_to_f16(x);
        if (x != x) {
            if ((o[i] & 0x7c00) != 0x7c00 || !(o[i] & 0x3ff) || (s & 0x7fff) <= 0x7c00) bad++;
        } else if (o[i] != want || s != want) {
            if (bad < 5) fprintf(stderr, "  f32->f16 %a: array %04x scalar %04x want %04x\n", x, o[i], s, want);
            bad++;
        }
    }
    CHECK(bad == 0, "f32->f16: %d mismatches of %d", bad, NV);

    /* round through fp16 in place (the attention scores' roundings): the scalar qw_round_f16 bit for bit on the
     * values above and on every half's exact value, its neighbours and the ties between consecutive halves */
    static float w[NV + 8 * 65536];
    size_t nw = 0;
    for (int i = 0; i < NV; i++) w[nw++] = v[i];
    for (int h = 0; h < 65536; h++) {
        float f = half_ref((uint16_t)h), g = half_ref((uint16_t)(h + 1));
        uint32_t b;
        memcpy(&b, &f, 4);
        for (int k = -2; k <= 2; k++) {
            uint32_t c = b + (uint32_t)k;
            memcpy(&w[nw++], &c, 4);
        }
        float tie = (h & 0x7fff) < 0x7bff ? (f + g) * 0.5f : f;
        w[nw++] = tie;
        w[nw++] = nextafterf(tie, INFINITY);
        w[nw++] = nextafterf(tie, -INFINITY);
    }
    static float r[NV + 8 * 65536];
    memcpy(r, w, nw * sizeof *w);
    qw_round_f16_array(r, nw);
    bad = 0;
    for (size_t i = 0; i < nw; i++) {
        float want = qw_round_f16(w[i]);
        uint32_t a, b;
        memcpy(&a, &r[i], 4);
        memcpy(&b, &want, 4);
        if (want != want ? r[i] == r[i] : a != b) {
            if (bad < 5) fprintf(stderr, "  round_f16 %a: array %a scalar %a\n", w[i], r[i], want);
            bad++;
        }
    }
    CHECK(bad == 0, "round through f16: %d mismatches of %zu", bad, nw);
}

/* ---- q4 ----------------------------------------------------------------------------------------- */

typedef struct {
    qw_q4w w;
    uint8_t *q, *zp;
    float *sc;
    uint16_t *sh; /* packed fp16 scales (q4_pack_copy with f16) */
} q4buf;

static void q4_make(q4buf *b, int N, int K, int block, int with_zp) {
    qw_q4w *w = &b->w;
    memset(b, 0, sizeof *b);
    w->N = N, w->K = K, w->block = block, w->n_blocks = (K + block - 1) / block;
    size_t qb = (size_t)N * w->n_blocks * block / 2;
    b->q = malloc(qb);
    b->sc = malloc((size_t)N * w->n_blocks * 4);
    b->zp = with_zp ? malloc((size_t)N * ((w->n_blocks + 1) / 2)) : NULL;
    for (size_t i = 0; i < qb; i++) b->q[i] = (uint8_t)rnd();
    for (size_t i = 0; i < (size_t)N * w->n_blocks; i++) b->sc[i] = (0.5f + (rnd() % 1000) / 1000.0f) * 0.02f;
    if (b->zp)
        for (size_t i = 0; i < (size_t)N * ((w->n_blocks + 1) / 2); i++) b->zp[i] = (uint8_t)rnd();
    w->q = b->q, w->scales = b->sc, w->zp = b->zp;
}
static void q4_free(q4buf *b) { free(b->q), free(b->sc), free(b->zp), free(b->sh); }

static double g_q8_vs_f32_max = 0, g_q8_vs_f32_rms = 0;

static void test_q4(qw_pool *pool) {
    static const int shapes[][6] = {
        /* N, K, block, M, zp, bias */
        {37, 100, 32, 1, 1, 1},   {64, 256, 16, 3, 0, 0},   {33, 1000, 128, 5, 1, 0},  {17, 64, 64, 1, 0, 1},
        {130, 520, 32, 40, 1, 1}, {5, 48, 16, 2, 1, 1},     {96, 1536, 32, 1, 0, 0},   {257, 300, 256, 7, 1, 1},
        {1, 31, 32, 1, 1, 0},     {300, 2048, 64, 2, 0, 1}, {40, 1024, 1024, 3, 1, 0}, {8, 17, 16, 33, 1, 1},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], K = shapes[s][1], B = shapes[s][2], M = shapes[s][3];
        q4buf qb;
        q4_make(&qb, N, K, B, shapes[s][4]);
        float *x = malloc((size_t)M * K * 4), *bias = NULL;
        float *y = malloc((size_t)M * N * 4), *yr = malloc((size_t)M * N * 4), *y8r = malloc((size_t)M * N * 4);
        for (int i = 0; i < M * K; i++) x[i] = act_rand();
        if (shapes[s][5]) {
            bias = malloc((size_t)N * 4);
            for (int i = 0; i < N; i++) bias[i] = frand();
        }
        size_t ws = qw_q4_matmul_q8_work_size(&qb.w, M);
        void *work = malloc(ws);
        qw_q4_matmul_ref(&qb.w, x, M, bias, yr);
        qw_q4_matmul_q8_ref(&qb.w, x, M, bias, y8r);
        for (int pass = 0; pass < 2; pass++) {
            qw_pool *p = pass ? pool : NULL;
            memset(y, 0xff, (size_t)M * N * 4);
            qw_q4_matmul(p, &qb.w, x, M, bias, y);
            double e = nerr(y, yr, (size_t)M * N);
            CHECK(e < 2e-5, "q4_matmul N=%d K=%d block=%d M=%d zp=%d: err %.3g", N, K, B, M, shapes[s][4], e);
            memset(y, 0xff, (size_t)M * N * 4);
            qw_q4_matmul_q8(p, &qb.w, x, M, bias, y, work);
            e = nerr(y, y8r, (size_t)M * N);
            CHECK(e < 2e-5, "q4_matmul_q8 N=%d K=%d block=%d M=%d zp=%d: err %.3g", N, K, B, M, shapes[s][4], e);
        }
        /* int8 activations vs exact fp32: the accuracy_level 4 deviation */
        double e = nerr(y8r, yr, (size_t)M * N), se = 0, sr = 0;
        for (int i = 0; i < M * N; i++) se += (y8r[i] - yr[i]) * (double)(y8r[i] - yr[i]), sr += (double)yr[i] * yr[i];
        if (e > g_q8_vs_f32_max) g_q8_vs_f32_max = e;
        if (sqrt(se / sr) > g_q8_vs_f32_rms) g_q8_vs_f32_rms = sqrt(se / sr);
        CHECK(e < 3e-2, "q8 reference vs fp32 reference: %.3g", e);
        free(x), free(bias), free(y), free(yr), free(y8r), free(work);
        q4_free(&qb);
    }
    printf("q4 int8-activation (accuracy_level 4) vs fp32, test shapes with outliers: max err/max|y| = %.2e, "
           "rms rel = %.2e\n",
           g_q8_vs_f32_max, g_q8_vs_f32_rms);
    /* the same on a 1.5B-like shape, activations without and with outliers */
    for (int outl = 0; outl < 2; outl++) {
        int N = 256, K = 1536;
        q4buf qb;
        q4_make(&qb, N, K, 32, 0);
        float *x = malloc((size_t)K * 4), *y = malloc((size_t)N * 4), *yr = malloc((size_t)N * 4);
        for (int i = 0; i < K; i++) x[i] = outl ? act_rand() : frand();
        qw_q4_matmul_ref(&qb.w, x, 1, NULL, yr);
        qw_q4_matmul_q8_ref(&qb.w, x, 1, NULL, y);
        double se = 0, sr = 0;
        for (int i = 0; i < N; i++) se += (y[i] - yr[i]) * (double)(y[i] - yr[i]), sr += (double)yr[i] * yr[i];
        printf("  N=%d K=%d block 32, %s activations: max err/max|y| = %.2e, rms rel = %.2e\n", N, K,
               outl ? "uniform + 1/64 outliers x8" : "uniform", nerr(y, yr, N), sqrt(se / sr));
        free(x), free(y), free(yr);
        q4_free(&qb);
    }
}

/* The decode layout (qw_q4_pack_q): a packed copy of qb's weights, scales (f16: as fp16, like models) and
 * zero points. */
static void q4_pack_copy(const q4buf *src, q4buf *dst, int f16) {
    const qw_q4w *w = &src->w;
    int N = w->N, nb = w->n_blocks;
    size_t rb = (size_t)nb * w->block / 2;
    *dst = *src;
    dst->q = malloc((size_t)N * rb);
    dst->sc = malloc((size_t)N * nb * 4);
    dst->zp = w->zp ? malloc((size_t)N * nb) : NULL;
    memcpy(dst->q, w->q, (size_t)N * rb);
    void *tmp = malloc(4 * rb);
    qw_q4_pack_q(dst->q, N, nb, w->block, tmp);
    free(tmp);
    for (int n = 0; n < N; n++)
        for (int b = 0; b < nb; b++) {
            dst->sc[qw_q4_packed_ix(n, b, nb)] = w->scales[(size_t)n * nb + b];
            if (w->zp) {
                uint8_t z = w->zp[(size_t)n * ((nb + 1) / 2) + b / 2];
                dst->zp[qw_q4_packed_ix(n, b, nb)] = (b & 1) ? z >> 4 : z & 15;
            }
        }
    dst->w.q = dst->q, dst->w.scales = dst->sc, dst->w.zp = dst->zp, dst->w.packed = 1;
    dst->sh = NULL;
    if (f16) {
        dst->sh = malloc((size_t)N * nb * 2);
        for (size_t i = 0; i < (size_t)N * nb; i++) dst->sh[i] = qw_f32_to_f16(dst->sc[i]);
        dst->w.scales = NULL, dst->w.scales_h = dst->sh;
    }
}

static void test_q4_packed(qw_pool *pool, const qw_kernel_table *kt) {
    static const int shapes[][6] = {
        /* N, K, block, M, zp, bias */
        {36, 100, 32, 1, 1, 1},   {64, 256, 64, 3, 0, 0},    {32, 1000, 128, 5, 1, 0}, {128, 1536, 32, 1, 0, 0},
        {132, 520, 32, 40, 1, 1}, {256, 300, 256, 7, 1, 1},  {4, 31, 32, 1, 1, 0},     {300, 2048, 64, 2, 0, 1},
        {8, 96, 32, 33, 1, 1},    {1536, 8960, 32, 1, 0, 0}, {64, 1536, 32, 64, 0, 1},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], K = shapes[s][1], B = shapes[s][2], M = shapes[s][3];
        CHECK(qw_q4_packable(N, B), "packable N=%d block=%d", N, B);
        q4buf qb, pk;
        q4_make(&qb, N, K, B, shapes[s][4]);
        q4_pack_copy(&qb, &pk, 0);
        float *x = malloc((size_t)M * K * 4), *bias = NULL;
        float *y = malloc((size_t)M * N * 4), *y8r = malloc((size_t)M * N * 4);
        for (int i = 0; i < M * K; i++) x[i] = act_rand();
        if (shapes[s][5]) {
            bias = malloc((size_t)N * 4);
            for (int i = 0; i < N; i++) bias[i] = frand();
        }
        void *work = malloc(qw_q4_matmul_q8_work_size(&pk.w, M));
        int nb = pk.w.n_blocks;
        uint16_t *sh = malloc((size_t)N * nb * 2), *tmp = malloc((size_t)4 * nb * 2);
        for (int f16 = 0; f16 < 2; f16++) {
            if (f16) { /* fp16 scales as models store them (one subnormal), packed by qw_q4_pack_scales */
                qb.sc[1 % (N * nb)] = qw_f16_to_f32(0x0123);
                for (int i = 0; i < N * nb; i++) sh[i] = qw_f32_to_f16(qb.sc[i]), qb.sc[i] = qw_f16_to_f32(sh[i]);
                CHECK(qw_q4_pack_scales(sh, N, nb, 2, tmp) == -1, "pack_scales: finite");
                pk.w.scales = NULL, pk.w.scales_h = sh;
            }
            qw_q4_matmul_q8_ref(&qb.w, x, M, bias, y8r);
            for (int pass = 0; pass < 2; pass++) {
                memset(y, 0xff, (size_t)M * N * 4);
                qw_q4_matmul_q8_with(kt, pass ? pool : NULL, &pk.w, x, M, bias, y, work);
                /* same arithmetic per output as the reference: identical bits */
                CHECK(memcmp(y, y8r, (size_t)M * N * 4) == 0,
                      "packed q4_matmul_q8 (%s) N=%d K=%d block=%d M=%d zp=%d scales %s: err %.3g", kt->name, N, K, B,
                      M, shapes[s][4], f16 ? "fp16" : "fp32", nerr(y, y8r, (size_t)M * N));
            }
        }
        for (int i = 0; i < N * nb; i++) sh[i] = 0x3c00;
        sh[(size_t)(N - 1) * nb + nb - 1] = 0x7e00; /* NaN in the last row's last block: reported */
        CHECK(qw_q4_pack_scales(sh, N, nb, 2, tmp) == N - 1, "pack_scales reports the row with NaN");
        free(sh), free(tmp);
        free(x), free(bias), free(y), free(y8r), free(work);
        q4_free(&qb);
        q4_free(&pk);
    }
    CHECK(!qw_q4_packable(30, 32) && !qw_q4_packable(32, 16), "not packable");
}

/* int8 lm_head rows: kernel = reference bit for bit; the documented error bound holds against exact. */
static void test_i8_lmhead(qw_pool *pool) {
    static const int shapes[][3] = {{37, 100, 1}, {64, 1536, 1}, {1001, 896, 0}, {4, 64, 1}, {259, 1000, 0}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], K = shapes[s][1], f16 = shapes[s][2];
        void *Bm = malloc((size_t)N * K * (f16 ? 2 : 4));
        for (size_t i = 0; i < (size_t)N * K; i++) {
            float v = frand() * 0.05f * ((rnd() % 97 == 0) ? 6.0f : 1.0f);
            if (f16)
                ((uint16_t *)Bm)[i] = qw_f32_to_f16(v);
            else
                ((float *)Bm)[i] = v;
        }
        qw_i8w w;
        qw_i8w_init(&w, N, K);
        w.q = malloc(qw_i8w_q_bytes(&w));
        w.scales = malloc(qw_i8w_scale_bytes(&w));
        w.wnorm = malloc((size_t)w.N4 * 2 * 4);
        w.enorm = w.wnorm + w.N4;
        qw_i8w_quantize(pool, &w, Bm, f16, K);
        { /* chunks of rows, as a weight read on demand is quantised, give the same bytes */
            qw_i8w c = w;
            c.q = calloc(1, qw_i8w_q_bytes(&w));
            c.scales = calloc(1, qw_i8w_scale_bytes(&w));
            c.wnorm = calloc((size_t)w.N4 * 2, 4);
            c.enorm = c.wnorm + w.N4;
            for (int r0 = 0; r0 < N; r0 += 12)
                qw_i8w_quantize_rows(pool, &c, (const char *)Bm + (size_t)r0 * K * (f16 ? 2 : 4), f16, K, r0,
                                     N - r0 < 12 ? N - r0 : 12);
            CHECK(!memcmp(c.q, w.q, qw_i8w_q_bytes(&w)) && !memcmp(c.scales, w.scales, qw_i8w_scale_bytes(&w)) &&
                      !memcmp(c.wnorm, w.wnorm, (size_t)w.N4 * 2 * 4),
                  "i8w_quantize_rows N=%d K=%d: chunks differ", N, K);
            free(c.q), free(c.scales), free(c.wnorm);
        }
        float *x = malloc((size_t)K * 4), *y = malloc((size_t)N * 4), *yr = malloc((size_t)N * 4),
              *ye = malloc((size_t)N * 4);
        for (int i = 0; i < K; i++) x[i] = act_rand() * 3.0f;
        void *work = malloc(qw_i8_matvec_work_size(&w));
        double xn = 0, ex = 0;
        qw_i8_matvec_ref(&w, x, yr);
        for (int pass = 0; pass < 2; pass++) {
            memset(y, 0xff, (size_t)N * 4);
            qw_i8_matvec(pass ? pool : NULL, &w, x, y, work, &xn, &ex);
            CHECK(memcmp(y, yr, (size_t)N * 4) == 0, "i8_matvec N=%d K=%d: err %.3g", N, K, nerr(y, yr, N));
        }
        { /* M rows at once (a speculative step's verified rows): each row's bits, norms and error as alone */
            enum { M = 3 };
            float *xm = malloc((size_t)M * K * 4), *ym = malloc((size_t)M * N * 4), *y1 = malloc((size_t)N * 4);
            void *wm = malloc(qw_i8_matmul_work_size(&w, M));
            double xnm[M], exm[M], xn1, ex1;
            for (int i = 0; i < M * K; i++) xm[i] = act_rand() * (i < K ? 3.0f : 1.0f);
            memcpy(xm + K, x, (size_t)K * 4);
            qw_i8_matmul(pool, &w, M, xm, ym, wm, xnm, exm);
            int same = 1;
            for (int m = 0; m < M; m++) {
                qw_i8_matvec(pool, &w, xm + (size_t)m * K, y1, work, &xn1, &ex1);
                same &= memcmp(y1, ym + (size_t)m * N, (size_t)N * 4) == 0 && xn1 == xnm[m] && ex1 == exm[m];
            }
            CHECK(same, "i8_matmul M=%d N=%d K=%d = i8_matvec per row", M, N, K);
            free(xm), free(ym), free(y1), free(wm);
        }
        if (f16)
            qw_gemm_f16b(NULL, 1, N, K, x, K, Bm, K, 1, ye, N);
        else
            qw_gemm_f32(NULL, 1, N, K, x, K, Bm, K, 1, ye, N);
        double worst = 0, used = 0;
        int ok = 1;
        for (int n = 0; n < N; n++) {
            double bound = w.wnorm[n] * ex + w.enorm[n] * (xn + ex) + 1e-4 * (1 + fabs(ye[n]));
            double e = fabs((double)y[n] - ye[n]);
            if (e > bound) ok = 0;
            if (e > worst) worst = e;
            if (e / bound > used) used = e / bound;
        }
        CHECK(ok, "i8 lm_head bound N=%d K=%d", N, K);
        if (s == 1)
            printf("int8 lm_head rows (block %d, 7-bit x): max |err| %.3g, at most %.0f%% of the bound\n", QW_I8_BLOCK,
                   worst, used * 100);
        /* rows recomputed exactly = the full product's values */
        int32_t rows[5] = {N - 1, 0, N / 2, N / 3, N - 1};
        float ro[5];
        qw_gemm_tb_rows(x, Bm, f16, K, K, rows, 5, ro);
        int same = 1;
        for (int i = 0; i < 5; i++) same &= memcmp(&ro[i], &ye[rows[i]], 4) == 0;
        CHECK(same, "gemm_tb_rows = gemm rows N=%d K=%d f16=%d", N, K, f16);
        { /* split across the pool: the same bits */
            int nr = N < 200 ? N : 200;
            int32_t *rr = malloc((size_t)nr * 4);
            float *r1 = malloc((size_t)nr * 4), *r2 = malloc((size_t)nr * 4);
            for (int i = 0; i < nr; i++) rr[i] = (int32_t)((i * 7919) % N);
            qw_gemm_tb_rows(x, Bm, f16, K, K, rr, nr, r1);
            qw_gemm_tb_rows_pool(pool, x, Bm, f16, K, K, rr, nr, r2);
            CHECK(memcmp(r1, r2, (size_t)nr * 4) == 0, "gemm_tb_rows_pool = gemm_tb_rows N=%d K=%d", N, K);
            free(rr), free(r1), free(r2);
        }
        free(Bm), free(w.q), free(w.scales), free(w.wnorm), free(x), free(y), free(yr), free(ye), free(work);
    }
    double t0 = now_s();
    qw_kernels_warmup(pool);
    printf("qw_kernels_warmup: %.1f ms\n", (now_s() - t0) * 1e3);
}

/* ---- dense -------------------------------------------------------------------------------------- */

static void test_gemm(qw_pool *pool) {
    static const int shapes[][4] = {{1, 37, 100, 1},    {1, 37, 100, 0},   {5, 129, 64, 1},  {5, 129, 64, 0},
                                    {1, 1000, 1536, 1}, {33, 70, 128, 1},  {33, 70, 128, 0}, {3, 17, 9, 0},
                                    {64, 64, 600, 1},   {2, 300, 1030, 1}, {200, 31, 64, 0}, {7, 200, 200, 0}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], tb = shapes[s][3];
        int lda = K + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
        size_t nb = (size_t)(tb ? N : K) * ldb;
        float *A = malloc((size_t)M * lda * 4), *B = malloc(nb * 4), *C = malloc((size_t)M * ldc * 4),
              *R = malloc((size_t)M * ldc * 4);
        uint16_t *H = malloc(nb * 2);
        for (size_t i = 0; i < (size_t)M * lda; i++) A[i] = frand();
        for (size_t i = 0; i < nb; i++) H[i] = qw_f32_to_f16(B[i] = frand() * 0.1f);
        for (int pass = 0; pass < 2; pass++) {
            qw_pool *p = pass ? pool : NULL;
            memset(C, 0, (size_t)M * ldc * 4), memset(R, 0, (size_t)M * ldc * 4);
            qw_gemm_f32_ref(M, N, K, A, lda, B, ldb, tb, R, ldc);
            qw_gemm_f32(p, M, N, K, A, lda, B, ldb, tb, C, ldc);
            double e = nerr(C, R, (size_t)M * ldc);
            CHECK(e < 1e-5, "gemm_f32 M=%d N=%d K=%d tb=%d: %.3g", M, N, K, tb, e);
            memset(C, 0, (size_t)M * ldc * 4), memset(R, 0, (size_t)M * ldc * 4);
            qw_gemm_f16b_ref(M, N, K, A, lda, H, ldb, tb, R, ldc);
            qw_gemm_f16b(p, M, N, K, A, lda, H, ldb, tb, C, ldc);
            e = nerr(C, R, (size_t)M * ldc);
            CHECK(e < 1e-5, "gemm_f16b M=%d N=%d K=%d tb=%d: %.3g", M, N, K, tb, e);
        }
        free(A), free(B), free(C), free(R), free(H);
    }
}

/* Sigmoid: the vector versions against the scalar reference (fma there; wasm rounds products apart). */
static void test_logistic(qw_pool *pool) {
    enum { N = 70001 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) x[i] = (float)(i - N / 2) * (40.0f / N) + (i % 7) * 1e-3f; /* -20 .. 20 */
    for (int pass = 0; pass < 2; pass++) {
        qw_logistic_f32(pass ? pool : NULL, x, y, N);
        double worst = 0;
        for (int i = 0; i < N; i++) {
            /* 4e-7 relative, or 5e-7 absolute near 0 (8 ulps of 0.5): p/q + 0.5 cancels there */
            double r = qw_logistic_ref(x[i]), e = fabs(y[i] - r) / (4e-7 * fabs(r) + 5e-7);
            if (e > worst) worst = e;
        }
        CHECK(worst <= 1.0, "logistic (%s) vs reference: max err %.2f of the tolerance", pass ? "pool" : "one thread",
              worst);
    }
    CHECK(fabsf(qw_logistic_ref(0.0f) - 0.5f) < 1e-7f && qw_logistic_ref(-30.0f) < 1e-7f &&
              qw_logistic_ref(30.0f) > 0.9999999f,
          "logistic endpoints");
    free(x), free(y);
}

static void test_misc(qw_pool *pool) {
    enum { n = 1537 };
    static float x[n], w[n], y[n], r[n];
    for (int i = 0; i < n; i++) x[i] = frand() * 3, w[i] = frand();
    double d = 0;
    for (int i = 0; i < n; i++) d += (double)x[i] * w[i];
    CHECK(fabs(qw_dot_f32(x, w, n) - d) < 1e-4, "dot");
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    for (int i = 0; i < n; i++) r[i] = (float)(x[i] / sqrt(ss / n + 1e-6) * w[i]);
    qw_rmsnorm_f32(x, w, 1e-6f, n, y);
    CHECK(nerr(y, r, n) < 1e-5, "rmsnorm %.3g", nerr(y, r, n));
    double mx = -1e30, sum = 0;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < n; i++) sum += exp(x[i] - mx);
    for (int i = 0; i < n; i++) r[i] = (float)(exp(x[i] - mx) / sum);
    memcpy(y, x, sizeof y);
    qw_softmax_f32(y, n);
    CHECK(nerr(y, r, n) < 1e-5, "softmax %.3g", nerr(y, r, n));

    /* attention over a KV cache (qw_attn_run, tiled) against the plain loops: decode steps and prefill chunks,
     * grouped heads, fp32 / fp16 / int8 rows, causal and masked, past the 64-key tile and the 24-row task */
    static const int cases[][6] = {{1, 6, 2, 24, 40, 10}, {5, 6, 2, 24, 40, 3},     {1, 12, 2, 128, 300, 299},
                                   {7, 4, 4, 20, 16, 0},  {3, 14, 2, 64, 200, 150}, {64, 12, 2, 128, 600, 500},
                                   {9, 7, 1, 36, 90, 70}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int dt = 0; dt < 3; dt++)
            for (int masked = 0; masked < 2; masked++) {
                int nq = cases[c][0], nh = cases[c][1], nkv = cases[c][2], hd = cases[c][3], ms = cases[c][4],
                    p0 = cases[c][5];
                int T = p0 + nq;
                size_t qn = (size_t)nq * nh * hd, kn = (size_t)nkv * ms * hd;
                float *q = malloc(qn * 4), *kf = malloc(kn * 4), *vf = malloc(kn * 4), *o = malloc(qn * 4),
                      *or_ = malloc(qn * 4), *sc = malloc((size_t)ms * 4), *ks = malloc((size_t)nkv * ms * 4),
                      *vs = malloc((size_t)nkv * ms * 4), *mask = malloc((size_t)nq * T * 4);
                void *k = malloc(kn * 4), *v = malloc(kn * 4);
                for (size_t i = 0; i < qn; i++) q[i] = frand();
                for (size_t i = 0; i < kn; i++) kf[i] = frand(), vf[i] = frand();
                for (int s = 0; s < nq; s++)
                    for (int t = 0; t < T; t++) mask[s * T + t] = t <= p0 + s ? 0.1f * frand() : -65504.0f;
                if (dt == QW_KV_F32) {
                    memcpy(k, kf, kn * 4);
                    memcpy(v, vf, kn * 4);
                } else if (dt == QW_KV_F16) {
                    qw_f32_to_f16_array(kf, k, kn);
                    qw_f32_to_f16_array(vf, v, kn);
                } else
                    for (size_t r = 0; r < kn / hd; r++) {
                        qw_kv_quant_i8(kf + r * hd, hd, (int8_t *)k + r * hd, ks + r);
                        qw_kv_quant_i8(vf + r * hd, hd, (int8_t *)v + r * hd, vs + r);
                    }
                /* the query in (S, H, D) order for odd cases: strides, as the com.microsoft layout */
                int shd = c % 2;
                qw_attn a = {.n_q = nq,
                             .n_keys = T,
                             .past = masked ? -1 : p0,
                             .n_heads = nh,
                             .n_kv_heads = nkv,
                             .head_dim = hd,
                             .q = q,
                             .q_hs = shd ? hd : (int64_t)nq * hd,
                             .q_ss = shd ? (int64_t)nh * hd : hd,
                             .o_hs = shd ? hd : (int64_t)nq * hd,
                             .o_ss = shd ? (int64_t)nh * hd : hd,
                             .k = k,
                             .v = v,
                             .k_scale = ks,
                             .v_scale = vs,
                             .kv_dtype = dt,
                             .cap = ms,
                             .scale = sqrtf((float)hd),
                             .div = 1,
                             .round_probs = dt == QW_KV_F16,
                             .round_scaled = dt == QW_KV_F16,
                             .mask = masked ? mask : NULL,
                             .m_hs = 0,
                             .m_ss = T,
                             .m_ts = 1,
                             .round_masked = masked};
                float *km = malloc((size_t)T * 4);
                for (int t = 0; t < T; t++) km[t] = 0.2f * frand();
                if (dt == QW_KV_F32 && c % 2) { /* com.microsoft's extras: softcap, key mask, local window */
                    a.softcap = 2.0f;
                    a.kmask = km;
                    a.window = masked ? 0 : 7;
                }
                void *wk = malloc(qw_attn_work_size(&a, qw_pool_threads(pool)));
                a.out = or_;
                qw_attn_ref(&a, sc);
                a.out = o;
                qw_attn_run(pool, &a, wk);
                /* fp16 roundings of the scores can flip on a last-bit difference of a dot product: one half step */
                /* (masked: every key summed in another order, in the scores' dot products and in the weighted sum
                 * of up to 600 values: each sum's fp32 rounding bound is n * 2^-24 ~ 3.6e-5, two sums; measured
                 * 4e-5 natively, 5.5e-5 in wasm, whose vectorised exp and sums group terms differently) */
                double bound = dt == QW_KV_F16 ? 2e-3 : masked ? 7.2e-5 : 1e-5;
                CHECK(nerr(o, or_, qn) < bound, "attention case %zu dtype %d masked %d: %.3g", c, dt, masked,
                      nerr(o, or_, qn));
                free(q), free(kf), free(vf), free(o), free(or_), free(sc), free(ks), free(vs), free(mask), free(k),
                    free(v), free(wk), free(km);
            }
}

/* an fp16 cache gives the bits of an fp32 cache holding the same values (the conversion is exact, and wasm's
 * unscaled fp16 rows with query and probabilities scaled by 2^112 instead are exact too): decode and prefill
 * rows, subnormal halves, a query value past 2^16 (that task converts as before), an Inf half in a value row */
static int same_bits_or_nan(const float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(x[i] != x[i] && y[i] != y[i]) && memcmp(x + i, y + i, 4)) return 0;
    return 1;
}
static void test_attn_f16_bits(qw_pool *pool) {
    const int nh = 12, nkv = 2, hd = 128, ms = 200;
    for (int c = 0; c < 4; c++) {
        int nq = c == 1 ? 9 : 1, p0 = 150;
        size_t qn = (size_t)nq * nh * hd, kn = (size_t)nkv * ms * hd;
        float *q = malloc(qn * 4), *kf = malloc(kn * 4), *vf = malloc(kn * 4), *o16 = malloc(qn * 4),
              *o32 = malloc(qn * 4);
        uint16_t *kh = malloc(kn * 2), *vh = malloc(kn * 2);
        for (size_t i = 0; i < qn; i++) q[i] = 4 * frand();
        for (size_t i = 0; i < kn; i++) kf[i] = frand(), vf[i] = frand();
        if (c == 2) /* subnormal halves, and one query value past 2^16 */
            for (size_t i = 0; i < kn; i += 7) kf[i] *= 1e-4f, vf[i] *= 1e-4f;
        if (c == 2) q[5] = 70000.0f;
        if (c == 3) vf[(size_t)(p0 - 3) * hd + 17] = INFINITY;
        qw_f32_to_f16_array(kf, kh, kn);
        qw_f32_to_f16_array(vf, vh, kn);
        qw_f16_to_f32_array(kh, kf, kn);
        qw_f16_to_f32_array(vh, vf, kn);
        qw_attn a = {.n_q = nq,
                     .n_keys = p0 + nq,
                     .past = p0,
                     .n_heads = nh,
                     .n_kv_heads = nkv,
                     .head_dim = hd,
                     .q = q,
                     .q_hs = (int64_t)nq * hd,
                     .q_ss = hd,
                     .o_hs = (int64_t)nq * hd,
                     .o_ss = hd,
                     .cap = ms,
                     .scale = sqrtf((float)hd),
                     .div = 1,
                     .round_qk = 1,
                     .round_scaled = 1,
                     .round_probs = 1};
        a.kv_dtype = QW_KV_F16; /* the larger work area of the two */
        void *wk = malloc(qw_attn_work_size(&a, qw_pool_threads(pool)));
        a.k = kf, a.v = vf, a.kv_dtype = QW_KV_F32, a.out = o32;
        qw_attn_run(pool, &a, wk);
        a.k = kh, a.v = vh, a.kv_dtype = QW_KV_F16, a.out = o16;
        qw_attn_run(pool, &a, wk);
        CHECK(same_bits_or_nan(o16, o32, qn), "attention over fp16 rows = over the same values in fp32, case %d", c);
        free(q), free(kf), free(vf), free(o16), free(o32), free(kh), free(vh), free(wk);
    }
}

/* ---- pool --------------------------------------------------------------------------------------- */

typedef struct {
    int counts[64];
    long sum;
    int nth_seen;
} pool_arg;

static void pool_fn(void *p, int ith, int nth) {
    pool_arg *a = p;
    a->counts[ith]++; /* each ith owns its slot */
    if (ith == 0) a->nth_seen = nth;
}

static void test_pool(void) {
    for (int nt = 1; nt <= 4; nt++) {
        qw_pool *p = qw_pool_new(nt);
        CHECK(p != NULL, "pool_new(%d)", nt);
        int nth = qw_pool_threads(p);
        pool_arg a;
        memset(&a, 0, sizeof a);
        const int runs = 3000;
        for (int i = 0; i < runs; i++) qw_pool_run(p, pool_fn, &a);
        int ok = a.nth_seen == nth;
        for (int i = 0; i < nth; i++) ok &= a.counts[i] == runs;
        CHECK(ok, "pool(%d threads): each thread once per run", nth);
        qw_pool_free(p);
    }
    pool_arg a;
    memset(&a, 0, sizeof a);
    qw_pool_run(NULL, pool_fn, &a);
    CHECK(a.counts[0] == 1 && a.nth_seen == 1 && qw_pool_threads(NULL) == 1, "NULL pool runs serially");
}

/* ---- bench -------------------------------------------------------------------------------------- */

static const qw_kernel_table *g_bench_kt; /* the packed kernels' table row the benchmarks run */

static double bench_q4(qw_pool *pool, int N, int K, int q8, int reps) {
    q4buf qb;
    q4_make(&qb, N, K, 32, 0);
    if (q8 == 2) { /* the packed decode layout */
        q4buf pk;
        q4_pack_copy(&qb, &pk, 1);
        q4_free(&qb);
        qb = pk;
    }
    float *x = malloc((size_t)K * 4), *y = malloc((size_t)N * 4);
    void *work = malloc(qw_q4_matmul_q8_work_size(&qb.w, 1));
    for (int i = 0; i < K; i++) x[i] = act_rand();
    double best = 1e30;
    for (int r = 0; r < reps + 20; r++) { /* the first runs warm up (and let V8 tier up) */
        double t0 = now_s();
        if (q8)
            qw_q4_matmul_q8_with(g_bench_kt, pool, &qb.w, x, 1, NULL, y, work);
        else
            qw_q4_matmul(pool, &qb.w, x, 1, NULL, y);
        double t = now_s() - t0;
        if (r >= 20 && t < best) best = t;
    }
    double bytes = (double)N * qb.w.n_blocks * (16 + 2); /* 4-bit data + fp16 scale as in the model file */
    free(x), free(y), free(work);
    q4_free(&qb);
    return bytes / best * 1e-9;
}

/* Prefill: M activation rows against the packed layout; GMAC/s (compute-bound, unlike the matvecs). */
static double bench_q4_prefill(qw_pool *pool, int N, int K, int M, int reps) {
    q4buf qb, pk;
    q4_make(&qb, N, K, 32, 0);
    q4_pack_copy(&qb, &pk, 1);
    q4_free(&qb);
    float *x = malloc((size_t)M * K * 4), *y = malloc((size_t)M * N * 4);
    void *work = malloc(qw_q4_matmul_q8_work_size(&pk.w, M));
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = act_rand();
    double best = 1e30;
    for (int r = 0; r < reps + 5; r++) {
        double t0 = now_s();
        qw_q4_matmul_q8_with(g_bench_kt, pool, &pk.w, x, M, NULL, y, work);
        double t = now_s() - t0;
        if (r >= 5 && t < best) best = t;
    }
    free(x), free(y), free(work);
    q4_free(&pk);
    return (double)M * N * K / best * 1e-9;
}

static double bench_lm_head(qw_pool *pool, int N, int K, int reps, double *ms) {
    uint16_t *B = malloc((size_t)N * K * 2);
    float *x = malloc((size_t)K * 4), *y = malloc((size_t)N * 4);
    for (size_t i = 0; i < (size_t)N * K; i++) B[i] = (uint16_t)(0x2000 + (rnd() & 0x1fff)) | (rnd() & 0x8000);
    for (int i = 0; i < K; i++) x[i] = act_rand();
    double best = 1e30;
    for (int r = 0; r < reps + 3; r++) {
        double t0 = now_s();
        qw_gemm_f16b(pool, 1, N, K, x, K, B, K, 1, y, N);
        double t = now_s() - t0;
        if (r >= 3 && t < best) best = t;
    }
    free(B), free(x), free(y);
    *ms = best * 1e3;
    return (double)N * K * 2 / best * 1e-9;
}

static double bench_i8_lm_head(qw_pool *pool, int N, int K, int reps, double *ms) {
    qw_i8w w;
    qw_i8w_init(&w, N, K);
    w.q = malloc(qw_i8w_q_bytes(&w));
    w.scales = malloc(qw_i8w_scale_bytes(&w));
    w.wnorm = malloc((size_t)w.N4 * 2 * 4);
    w.enorm = w.wnorm + w.N4;
    for (size_t i = 0; i < qw_i8w_q_bytes(&w); i++) w.q[i] = (int8_t)(rnd() % 255 - 127);
    for (size_t i = 0; i < qw_i8w_scale_bytes(&w) / 4; i++) w.scales[i] = 1e-3f;
    float *x = malloc((size_t)K * 4), *y = malloc((size_t)N * 4);
    void *work = malloc(qw_i8_matvec_work_size(&w));
    for (int i = 0; i < K; i++) x[i] = act_rand();
    double best = 1e30;
    for (int r = 0; r < reps + 5; r++) {
        double t0 = now_s();
        qw_i8_matvec(pool, &w, x, y, work, NULL, NULL);
        double t = now_s() - t0;
        if (r >= 5 && t < best) best = t;
    }
    double bytes = (double)qw_i8w_q_bytes(&w) + qw_i8w_scale_bytes(&w);
    free(w.q), free(w.scales), free(w.wnorm), free(x), free(y), free(work);
    *ms = best * 1e3;
    return bytes / best * 1e-9;
}

/* CPU seconds used by the process so far (Node: process.cpuUsage; natively the process clock), -1 where
 * unknown (browsers): on a shared machine, work per CPU second of one thread is steadier than wall time. */
#if defined(__EMSCRIPTEN__)
#include <emscripten.h>
static double cpu_s(void) {
    return EM_ASM_DOUBLE({
        if (typeof process != 'object' || !process.cpuUsage) return -1;
        var u = process.cpuUsage();
        return (u.user + u.system) / 1e6;
    });
}
#else
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
#endif

/* The build's integer-dot peak: per thread, 12 independent chains of (dot, add) on registers, the prefill
 * kernel's inner step without loads or unpacking (each chain feeds its own dot, so nothing is hoisted);
 * relaxed i16 dot: 16 MACs, AVX2 maddubs: 32, SIMD128 i32x4.dot_i16x8: 8. GMAC/s over the pool's threads;
 * 0 for the scalar build. */
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#elif defined(__AVX2__)
#include <immintrin.h>
#endif
typedef struct {
    long iters;
    volatile int32_t sink;
} peak_task;
#if defined(__wasm_simd128__) && defined(QW_RELAXED_SIMD) /* the tests are not built with -mrelaxed-simd */
#define PEAK_RELAXED 1
__attribute__((target("relaxed-simd")))
#endif
static void
peak_run(void *p, int ith, int nth) {
    peak_task *t = p;
    (void)ith, (void)nth;
    volatile int seed = 3;
#if defined(PEAK_RELAXED)
    v128_t x = wasm_i8x16_splat(seed), w = wasm_i8x16_splat(seed + 2), acc[12];
    for (int i = 0; i < 12; i++) acc[i] = wasm_i16x8_add(x, wasm_i16x8_splat(i));
    for (long it = 0; it < t->iters; it++)
        for (int i = 0; i < 12; i++)
            acc[i] = wasm_i16x8_add(
                acc[i], (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_s_i16x8((__i8x16)acc[i], (__i8x16)w));
    for (int i = 1; i < 12; i++) acc[0] = wasm_i16x8_add(acc[0], acc[i]);
    t->sink += wasm_i16x8_extract_lane(acc[0], 0);
#elif defined(__wasm_simd128__)
    v128_t x = wasm_i16x8_splat(seed), w = wasm_i16x8_splat(seed + 2), acc[12];
    for (int i = 0; i < 12; i++) acc[i] = wasm_i32x4_add(x, wasm_i32x4_splat(i));
    for (long it = 0; it < t->iters; it++)
        for (int i = 0; i < 12; i++) acc[i] = wasm_i32x4_add(acc[i], wasm_i32x4_dot_i16x8(acc[i], w));
    for (int i = 1; i < 12; i++) acc[0] = wasm_i32x4_add(acc[0], acc[i]);
    t->sink += wasm_i32x4_extract_lane(acc[0], 0);
#elif defined(__AVX2__)
    __m256i x = _mm256_set1_epi8((char)seed), w = _mm256_set1_epi8((char)(seed + 2)), acc[12];
    for (int i = 0; i < 12; i++) acc[i] = _mm256_add_epi16(x, _mm256_set1_epi16((short)i));
    for (long it = 0; it < t->iters; it++)
        for (int i = 0; i < 12; i++) acc[i] = _mm256_add_epi16(acc[i], _mm256_maddubs_epi16(w, acc[i]));
    for (int i = 1; i < 12; i++) acc[0] = _mm256_add_epi16(acc[0], acc[i]);
    t->sink += _mm256_extract_epi16(acc[0], 0);
#endif
}
#if defined(PEAK_RELAXED)
/* The same with i32x4.relaxed_dot_i8x16_i7x16_add_s (16 MACs, the add inside): one instruction where V8 has
 * AVX-VNNI, more elsewhere; run only where the engine computes it right */
__attribute__((target("relaxed-simd"))) static void peak_dot_add_run(void *p, int ith, int nth) {
    peak_task *t = p;
    (void)ith, (void)nth;
    volatile int seed = 3;
    v128_t x = wasm_i8x16_splat(seed), w = wasm_i8x16_splat(seed + 2), acc[12];
    for (int i = 0; i < 12; i++) acc[i] = wasm_i32x4_add(x, wasm_i32x4_splat(i));
    for (long it = 0; it < t->iters; it++)
        for (int i = 0; i < 12; i++)
            acc[i] = (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_add_s_i32x4((__i8x16)x, (__i8x16)w,
                                                                                (__i32x4)acc[i]);
    for (int i = 1; i < 12; i++) acc[0] = wasm_i32x4_add(acc[0], acc[i]);
    t->sink += wasm_i32x4_extract_lane(acc[0], 0);
}
#endif
static double bench_peak_fn(qw_pool *pool, qw_task_fn fn, double macs, double *cpu_out) {
    peak_task t = {20000000, 0};
    double best = 1e30, cpu = 0;
    for (int r = 0; r < 8; r++) {
        double t0 = now_s(), c0 = cpu_s();
        qw_pool_run(pool, fn, &t);
        double dt = now_s() - t0;
        if (r >= 2 && dt < best) best = dt;
        if (r >= 2) cpu += cpu_s() - c0;
    }
    if (cpu_out) *cpu_out = cpu > 0 ? macs * 12 * (double)t.iters * qw_pool_threads(pool) * 6 / cpu * 1e-9 : -1;
    return macs * 12 * (double)t.iters * qw_pool_threads(pool) / best * 1e-9;
}
static double bench_peak(qw_pool *pool, double *cpu_out) {
#if defined(PEAK_RELAXED)
    const double macs = 16;
#elif defined(__wasm_simd128__)
    const double macs = 8;
#elif defined(__AVX2__)
    const double macs = 32;
#else
    const double macs = 0;
#endif
    return bench_peak_fn(pool, peak_run, macs, cpu_out);
}

/* bench T prefill: only the prefill figures, each prefill tile (the kernel table's rows) timed in turn on the
 * same data (an A/B that a busy machine disturbs alike), best of many short runs; and the dot peak. */
static int bench_prefill(int threads) {
    static const int shapes[][3] = {{8960, 1536, 64}, {1536, 8960, 64}, {1536, 1536, 64}, {256, 1536, 64}};
    qw_pool *pool = qw_pool_new(threads);
    /* tile[t]: the first row of each distinct prefill tile (tile, tile2), in table order; the scalar row only in
     * a build without SIMD */
    const qw_kernel_table *tile[4], *kt;
    int ntile = 0;
    for (int i = 0; (kt = qw_kernels_variant(i)) && ntile < 4; i++) {
        int seen = i > 0 && !strcmp(kt->name, "scalar");
        for (int t = 0; t < ntile; t++) seen |= tile[t]->tile == kt->tile && tile[t]->tile2 == kt->tile2;
        if (!seen) tile[ntile++] = kt;
    }
    double peak_cpu, peak = bench_peak(pool, &peak_cpu);
    printf("{\"threads\":%d,\"peak_GMACs\":%.1f", qw_pool_threads(pool), peak);
#if defined(PEAK_RELAXED)
    int da = 0; /* the table lists dot-add rows only where the engine computes the instruction right */
    for (int i = 0; (kt = qw_kernels_variant(i)); i++) da |= kt->dot_add;
    if (da) printf(",\"peak_dot_add_GMACs\":%.1f", bench_peak_fn(pool, peak_dot_add_run, 16, NULL));
#endif
    for (int t = 0; t < ntile; t++) printf(",\"tile%d\":\"%s\"", t, tile[t]->name);
    if (threads == 1 && peak_cpu > 0) printf(",\"peak_GMAC_per_cpu_s\":%.1f", peak_cpu);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int N = shapes[s][0], K = shapes[s][1], M = shapes[s][2];
        q4buf qb, pk;
        q4_make(&qb, N, K, 32, 0);
        q4_pack_copy(&qb, &pk, 1);
        q4_free(&qb);
        float *x = malloc((size_t)M * K * 4), *y = malloc((size_t)M * N * 4);
        void *work = malloc(qw_q4_matmul_q8_work_size(&pk.w, M));
        for (size_t i = 0; i < (size_t)M * K; i++) x[i] = act_rand();
        double best[4] = {1e30, 1e30, 1e30, 1e30}, cpu[4] = {0, 0, 0, 0};
        const int reps = (int)(4e10 / ((double)M * N * K)) + 10; /* about 40 runs of the large shapes */
        for (int r = 0; r < reps; r++)
            for (int t = 0; t < ntile; t++) {
                double t0 = now_s(), c0 = cpu_s();
                qw_q4_matmul_q8_with(tile[t], pool, &pk.w, x, M, NULL, y, work);
                double dt = now_s() - t0, dc = cpu_s() - c0;
                if (r >= 5 && dt < best[t]) best[t] = dt;
                if (r >= 5) cpu[t] += dc;
            }
        for (int t = 0; t < ntile; t++) {
            printf(",\"tile%d_prefill%d_%dx%d_GMACs\":%.1f", t, M, N, K, (double)M * N * K / best[t] * 1e-9);
            if (threads == 1 && cpu[t] > 0) /* per CPU second: the one thread's speed whatever else runs */
                printf(",\"tile%d_prefill%d_%dx%d_GMAC_per_cpu_s\":%.1f", t, M, N, K,
                       (double)M * N * K * (reps - 5) / cpu[t] * 1e-9);
        }
        free(x), free(y), free(work);
        q4_free(&pk);
    }
    printf("}\n");
    qw_pool_free(pool);
    return 0;
}

/* bench [threads] [no-dot-add]: the second word compares the relaxed build's i16 path on the same engine */
static int bench(int threads, int no_dot_add) {
    qw_pool *pool = qw_pool_new(threads);
    g_bench_kt = qw_kernels(); /* as a model runs */
    for (int i = 1; no_dot_add && g_bench_kt->dot_add; i++) g_bench_kt = qw_kernels_variant(i);
    double lm_ms;
    double a = bench_q4(pool, 8960, 1536, 1, 60);  /* gate/up proj */
    double b = bench_q4(pool, 1536, 8960, 1, 60);  /* down proj */
    double c = bench_q4(pool, 1536, 1536, 1, 200); /* q/o proj (in cache) */
    double d = bench_q4(pool, 8960, 1536, 0, 30);  /* exact fp32-activation path */
    double e = bench_lm_head(pool, 151936, 1536, 5, &lm_ms);
    double lm8_ms;
    double pa = bench_q4(pool, 8960, 1536, 2, 60), pb = bench_q4(pool, 1536, 8960, 2, 60);
    double pc = bench_q4(pool, 1536, 1536, 2, 200);
    double f = bench_i8_lm_head(pool, 151936, 1536, 8, &lm8_ms);
    double g = bench_q4_prefill(pool, 8960, 1536, 64, 8), h = bench_q4_prefill(pool, 1536, 8960, 64, 8);
#if defined(__wasm_relaxed_simd__)
    const char *isa = "wasm-simd128-relaxed";
#elif defined(__wasm_simd128__)
    const char *isa = "wasm-simd128";
#elif defined(__AVX2__)
    const char *isa = "avx2";
#else
    const char *isa = "scalar";
#endif
    printf("{\"isa\":\"%s\",\"dot_add\":%d,\"threads\":%d,\"q4q8_8960x1536_GBs\":%.2f,\"q4q8_1536x8960_GBs\":%.2f,"
           "\"q4q8_1536x1536_GBs\":%.2f,\"q4f32_8960x1536_GBs\":%.2f,\"lm_head_f16_151936x1536_GBs\":%.2f,"
           "\"lm_head_ms\":%.1f,\"q4q8p_8960x1536_GBs\":%.2f,\"q4q8p_1536x8960_GBs\":%.2f,"
           "\"q4q8p_1536x1536_GBs\":%.2f,\"lm_head_i8_151936x1536_GBs\":%.2f,\"lm_head_i8_ms\":%.1f,"
           "\"prefill64_8960x1536_GMACs\":%.1f,\"prefill64_1536x8960_GMACs\":%.1f}\n",
           isa, g_bench_kt->dot_add, qw_pool_threads(pool), a, b, c, d, e, lm_ms, pa, pb, pc, f, lm8_ms, g, h);
    qw_pool_free(pool);
    return 0;
}

static int run_tests(void) {
    test_pool();
    test_f16();
    qw_pool *pool = qw_pool_new(3);
    test_q4(pool);
    const qw_kernel_table *kt;
    for (int i = 0; (kt = qw_kernels_variant(i)); i++) { /* every row of the build's kernel table */
        printf("  packed q4 kernels: %s%s%s\n", kt->name, kt->dot_add ? " (the relaxed i32 dot-add)" : "",
               i ? "" : ", the default");
        test_q4_packed(pool, kt);
    }
    test_i8_lmhead(pool);
    test_gemm(pool);
    test_logistic(pool);
    test_misc(pool);
    test_attn_f16_bits(pool);
    qw_pool_free(pool);
    printf("(pool of 3 threads)\n");
    return qw_test_summary("test_kernels");
}

/* bench-attn [threads] (wasm: `bench T attn`): ms of attention per token for the 1.5B's shape (28 layers, 12 heads / 2 kv heads of 128) at
 * cache lengths 64 .. 8192, decode (one query) and prefill (chunks of 64), the tiled kernel on fp16 rows against the
 * loop it replaced (one query row at a time over fp32 rows, one expf per score: kept here for this A/B only);
 * best of interleaved runs, one JSON line per length. The times are the process's CPU time (with 1 thread: the
 * compute time even on a machine shared by other jobs, where wall time measures the scheduler) */
/* (cpu_s: the process's CPU time, defined above for the prefill bench) */
typedef struct old_attn {
    const float *q, *k, *v;
    float *out, *work;
    int S, T, H, Hkv, D, past, cap;
    float c;
} old_attn;
static void old_attn_task(void *arg, int ith, int nth) {
    const old_attn *j = arg;
    float *sc = j->work + (size_t)ith * (size_t)j->T;
    int group = j->H / j->Hkv;
    for (int t = ith; t < j->S * j->H; t += nth) {
        int h = t / j->S, s = t % j->S, hk = h / group;
        const float *q = j->q + ((size_t)h * j->S + s) * j->D;
        const float *K = j->k + (size_t)hk * j->cap * j->D, *V = j->v + (size_t)hk * j->cap * j->D;
        int n = j->past + s + 1;
        for (int i = 0; i < n; i++)
            sc[i] = qw_round_f16(qw_round_f16(qw_dot_f32(q, K + (size_t)i * j->D, j->D)) / j->c);
        qw_softmax_f32(sc, n);
        for (int i = 0; i < n; i++) sc[i] = qw_round_f16(sc[i]);
        qw_weighted_rows_f32(sc, n, V, (size_t)j->D, j->D, j->out + ((size_t)h * j->S + s) * j->D);
    }
}

/* the 1.5B's attention shape for bench-attn: nq query rows (decode 1, prefill 64) after T - nq cached keys; fp16
 * rows with the decomposed graph's fp16 roundings, int8 rows with their scales and none */
static qw_attn bench_attn_shape(int nq, int T, const float *q, float *o, const void *k, const void *v, const float *ks,
                                const float *vs, int dtype) {
    const int H = 12, Hkv = 2, D = 128, f16 = dtype == QW_KV_F16;
    return (qw_attn){.n_q = nq,
                     .n_keys = T,
                     .past = T - nq,
                     .n_heads = H,
                     .n_kv_heads = Hkv,
                     .head_dim = D,
                     .q = q,
                     .q_hs = (int64_t)nq * D,
                     .q_ss = D,
                     .out = o,
                     .o_hs = (int64_t)nq * D,
                     .o_ss = D,
                     .k = k,
                     .v = v,
                     .k_scale = ks,
                     .v_scale = vs,
                     .kv_dtype = dtype,
                     .cap = T,
                     .scale = 11.3137f,
                     .div = 1,
                     .round_qk = f16,
                     .round_scaled = f16,
                     .round_probs = f16};
}

/* the process's CPU time where there is one (natively, Node), else wall time (a browser page: run it on 1 thread) */
static double attn_s(void) {
    double c = cpu_s();
    return c >= 0 ? c : now_s();
}

static int bench_attn(int threads) {
    qw_pool *pool = qw_pool_new(threads);
    const int H = 12, Hkv = 2, D = 128, L = 28, S = 64;
    static const int Ts[] = {64, 512, 1024, 2048, 4096, 8192};
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
        int T = Ts[ti];
        size_t kn = (size_t)Hkv * T * D;
        float *kf = malloc(kn * 4), *vf = malloc(kn * 4), *q = malloc((size_t)H * S * D * 4),
              *o = malloc((size_t)H * S * D * 4);
        uint16_t *kh = malloc(kn * 2), *vh = malloc(kn * 2);
        for (size_t i = 0; i < kn; i++) kf[i] = qw_round_f16(frand()), vf[i] = qw_round_f16(frand());
        for (int i = 0; i < H * S * D; i++) q[i] = frand();
        qw_f32_to_f16_array(kf, kh, kn);
        qw_f32_to_f16_array(vf, vh, kn);
        float *ow = malloc((size_t)qw_pool_threads(pool) * T * 4);
        double best[2][2] = {{1e30, 1e30}, {1e30, 1e30}}; /* [old/new][decode/prefill] */
        int reps = T >= 4096 ? 4 : T >= 1024 ? 8 : 20;
        for (int r = 0; r < reps + 2; r++)
            for (int ph = 0; ph < 2; ph++) {
                int nq = ph ? S : 1;
                old_attn oj = {q, kf, vf, o, ow, nq, T, H, Hkv, D, T - nq, T, 11.3137f};
                qw_attn a = bench_attn_shape(nq, T, q, o, kh, vh, NULL, NULL, QW_KV_F16);
                void *wk = malloc(qw_attn_work_size(&a, qw_pool_threads(pool)));
                double t0 = attn_s();
                qw_pool_run(pool, old_attn_task, &oj);
                double t1 = attn_s();
                qw_attn_run(pool, &a, wk);
                double t2 = attn_s();
                free(wk);
                if (r < 2) continue; /* warm-up */
                if (t1 - t0 < best[0][ph]) best[0][ph] = t1 - t0;
                if (t2 - t1 < best[1][ph]) best[1][ph] = t2 - t1;
            }
        /* a real decode step reads 28 layers' caches (115 MB of fp16 rows at 4096 keys), not one layer's hot 2 MB
         * 28 times: the same kernel over one cache per layer, the whole step timed */
        uint16_t *klay = malloc(kn * 2 * L), *vlay = malloc(kn * 2 * L);
        double cold[2] = {1e30, 1e30}; /* [without / with the look-ahead touch] */
        if (klay && vlay) {
            for (int l = 0; l < L; l++) memcpy(klay + kn * l, kh, kn * 2), memcpy(vlay + kn * l, vh, kn * 2);
            qw_attn a = bench_attn_shape(1, T, q, o, klay, vlay, NULL, NULL, QW_KV_F16);
            void *wk = malloc(qw_attn_work_size(&a, qw_pool_threads(pool)));
            int la = qw_kernels_lookahead();
            for (int r = 0; r < reps + 2; r++) {
                qw_kernels_set_lookahead(r & 1);
                double t0 = attn_s();
                for (int l = 0; l < L; l++) {
                    a.k = klay + kn * l, a.v = vlay + kn * l;
                    qw_attn_run(pool, &a, wk);
                }
                double t = attn_s() - t0;
                if (r > 1 && t < cold[r & 1]) cold[r & 1] = t;
            }
            qw_kernels_set_lookahead(la);
            free(wk);
        }
        free(klay), free(vlay);
        /* the same kernel over int8 rows (kvCache 'int8': integer dot products for the scores), one layer, hot */
        double i8[2] = {1e30, 1e30}; /* [decode / prefill] */
        int8_t *k8 = malloc(kn), *v8 = malloc(kn);
        float *ks8 = malloc((size_t)Hkv * T * 4), *vs8 = malloc((size_t)Hkv * T * 4);
        if (k8 && v8 && ks8 && vs8) {
            for (size_t r = 0; r < kn / D; r++) {
                qw_kv_quant_i8(kf + r * D, D, k8 + r * D, ks8 + r);
                qw_kv_quant_i8(vf + r * D, D, v8 + r * D, vs8 + r);
            }
            for (int r = 0; r < reps + 2; r++)
                for (int ph = 0; ph < 2; ph++) {
                    int nq = ph ? S : 1;
                    qw_attn a = bench_attn_shape(nq, T, q, o, k8, v8, ks8, vs8, QW_KV_I8);
                    void *wk = malloc(qw_attn_work_size(&a, qw_pool_threads(pool)));
                    double t0 = attn_s();
                    qw_attn_run(pool, &a, wk);
                    double t = attn_s() - t0;
                    free(wk);
                    if (r >= 2 && t < i8[ph]) i8[ph] = t;
                }
        }
        free(k8), free(v8), free(ks8), free(vs8);
        /* per token over the 28 layers: a decode step, and one token's share of a 64-token chunk */
        printf(
            "{\"keys\":%d,\"threads\":%d,\"clock\":\"%s\",\"decode_ms_old\":%.3f,\"decode_ms_new\":%.3f,"
            "\"decode_ms_new_28_caches\":%.3f,\"decode_ms_new_28_caches_no_touch\":%.3f,\"decode_ms_int8\":%.3f,"
            "\"prefill_ms_per_token_old\":%.3f,\"prefill_ms_per_token_new\":%.3f,\"prefill_ms_per_token_int8\":%.3f}\n",
            T, qw_pool_threads(pool), cpu_s() >= 0 ? "cpu" : "wall", best[0][0] * 1e3 * L, best[1][0] * 1e3 * L,
            cold[1] * 1e3, cold[0] * 1e3, i8[0] * 1e3 * L, best[0][1] * 1e3 * L / S, best[1][1] * 1e3 * L / S,
            i8[1] * 1e3 * L / S);
        free(kf), free(vf), free(q), free(o), free(kh), free(vh), free(ow);
    }
    qw_pool_free(pool);
    return 0;
}
#if defined(__EMSCRIPTEN__)
#include <emscripten.h>
/* clang >= 16 renames main(argc, argv) to a symbol emscripten 3.1.6's runtime does not call (the
 * relaxed-SIMD build), so wasm builds take `bench [threads]` from Node's process.argv instead, or in a
 * browser from Module.arguments (tools/bench/pages/kernels.html). */
int main(void) {
    int mode = EM_ASM_INT({
        var a = (typeof process == 'object' && process.argv) ? process.argv : (Module['arguments'] || []);
        var i = a.indexOf('bench');
        return i < 0 ? -1
                     : (a.length > i + 1 ? parseInt(a[i + 1], 10) : 0) + (a.indexOf('no-dot-add') >= 0 ? 1000 : 0) +
                           (a.indexOf('prefill') >= 0 ? 2000 : 0) + (a.indexOf('attn') >= 0 ? 3000 : 0);
    });
    if (mode >= 3000) return bench_attn(mode % 1000 ? mode % 1000 : 2);
    if (mode >= 2000) return bench_prefill(mode % 1000);
    return mode >= 0 ? bench(mode % 1000, mode >= 1000) : run_tests();
}
#else
int main(int argc, char **argv) {
    if (argc > 3 && strcmp(argv[1], "bench") == 0 && strcmp(argv[3], "prefill") == 0)
        return bench_prefill(atoi(argv[2]));
    if (argc > 1 && strcmp(argv[1], "bench") == 0)
        return bench(argc > 2 ? atoi(argv[2]) : 0, argc > 3 && strcmp(argv[3], "no-dot-add") == 0);
    if (argc > 1 && strcmp(argv[1], "bench-attn") == 0) return bench_attn(argc > 2 ? atoi(argv[2]) : 2);
    return run_tests();
}
#endif
