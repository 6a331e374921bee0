/* qw_ops_lmhead.c - the tied lm_head (MatMul(x, Transpose(E)) on the large fp16/fp32 embedding, rewritten to
 * trans_b at load) run on int8 rows made once at load, with the top candidates rescored exactly.
 *
 * Chosen by qw_graph.c (qw_op_lmhead_select) for a checked MatMul with trans_b whose B is a constant 2-D
 * float weight of at least QW_LMHEAD_MIN_ELEMS elements and at least QW_LMHEAD_MIN_ROWS rows, unless
 * exact_lm_head or a memory cap is set (then the exact fp16 product runs as before).
 *
 * Decode (one activation row): y_approx = qw_i8_matvec (int8 rows per block of 64, 7-bit activations), which
 * streams ~half the bytes of the fp16 rows. For every row the kernel's documented bound
 *   |y_approx_n - x.w_n| <= E_n = wnorm_n * ex + enorm_n * (xn + ex) + fp32 rounding slack
 * holds (Cauchy-Schwarz on the weight and activation quantisation errors, both known exactly). Let L be the
 * R-th largest lower bound y_approx_n - E_n (R = QW_LMHEAD_TOPK = 64). Every row whose true value can reach
 * the true top R has y_approx_n + E_n >= L, and all of those rows are recomputed from the fp16/fp32 row with
 * the exact kernel's arithmetic (qw_gemm_tb_rows: the same bits qw_gemm_f16b gives). So the exact top R
 * (hence greedy's argmax, and top-k <= 64 / top-p candidates sampled from them) carry exactly the values the
 * exact path computes; only logits that provably cannot enter the top R keep their approximate values (what
 * a softmax tail sees). Greedy therefore equals the exact path bit for bit, i.e. onnxruntime's except at
 * near-ties that the exact fp16 path itself may break differently. When more than N / 8 rows would need
 * rescoring (flat logits) the whole exact product runs instead. M > 1 runs the exact product; a prefill whose
 * node is last_row_only (qw_graph_logits_last_only, set by the decoder) has one row, so it runs as a decode step.
 * QW_LMHEAD_CHECK=1 (environment) also computes the exact product and prints per call how many rows were
 * rescored, the largest error of the approximate (not rescored) logits and whether the argmax matches. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qw_ops.h"
#include "qw_dtype.h"
#include "qw_clock.h"

#define QW_LMHEAD_TOPK 64
#define QW_LMHEAD_MIN_ROWS 16384
#define QW_LMHEAD_MIN_ELEMS (8u << 20)

/* The first segment of the derived file (QW_DERIVED_DIR "lmhead-i8-v<layout>-<hash>.bin"): what the rows
 * were made from and how; a file whose header differs is not used. Then q, scales (+ block sums), norms. */
typedef struct lmh_header {
    char magic[8];                 /* "QWLMHI8" */
    uint32_t layout, N, K, block, n_blocks, N4, f16, pad;
    uint64_t src_offset, src_bytes, src_file_size;
} lmh_header;
_Static_assert(sizeof(lmh_header) == 64, "lmh_header is 64 bytes");

typedef struct lmh_state {
    lmh_header head;
    qw_i8w w;
    int N, K, f16;
    int check;                     /* QW_LMHEAD_CHECK */
    long calls, rescored, fallbacks;
} lmh_state;

static void free_lmh(void *p) { free(p); }

static qw_status run_lmh(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    lmh_state *s = c->node->state;
    qw_tensor last;
    const qw_tensor *A = qw_op_last_row(c->node, in[0], &last), *B = in[1]; /* logits of the last position only */
    int ra = A->ndim;
    if (ra < 1 || A->dims[ra - 1] != s->K || A->numel != s->K || !B || !B->data)
        return qw_ops_matmul[0].run(c, in, n_in, out, n_out, err); /* prefill / other shapes: exact */
    int64_t dims[QW_MAX_DIMS];
    memcpy(dims, A->dims, sizeof dims);
    dims[ra - 1] = s->N;
    qw_status st = qw_op_out(c, out[0], A->dtype, ra, dims, err);
    if (st != QW_OK) return st;
    const int N = s->N, K = s->K;
    const float *x = qw_tensor_f32(c, A);
    float *y = out[0]->dtype == QW_DT_F32 ? (float *)out[0]->data : qw_op_scratch(c, (size_t)N * 4 + 4);
    void *work = qw_op_scratch(c, qw_i8_matvec_work_size(&s->w));
    float *lb = qw_op_scratch(c, (size_t)N * 4 + 4);
    int32_t *rows = qw_op_scratch(c, (size_t)N * 4 + 4);
    float *heap = qw_op_scratch(c, QW_LMHEAD_TOPK * 4);
    if (!x || !y || !work || !lb || !rows || !heap) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    double xn, ex;
    qw_i8_matvec(c->pool, &s->w, x, y, work, &xn, &ex);
    /* lower bounds, and the R-th largest of them (min-heap of the R largest) */
    const int R = N < QW_LMHEAD_TOPK ? N : QW_LMHEAD_TOPK;
    const double slack_k = 1.2e-7 * (K + 2 * s->w.n_blocks);
    int hn = 0;
    for (int n = 0; n < N; n++) {
        double wn = s->w.wnorm[n], en = s->w.enorm[n];
        double e = wn * ex + en * (xn + ex) + slack_k * (xn + ex) * (wn + en) + 1e-6 * fabs(y[n]);
        float l = (float)(y[n] - e * 1.0001);
        lb[n] = (float)(y[n] + e * 1.0001); /* upper bound, kept for the second pass */
        if (hn < R) {
            int i = hn++;
            heap[i] = l;
            while (i > 0 && heap[(i - 1) / 2] > heap[i]) { float t = heap[i]; heap[i] = heap[(i - 1) / 2]; heap[(i - 1) / 2] = t; i = (i - 1) / 2; }
        } else if (l > heap[0]) {
            heap[0] = l;
            for (int i = 0;;) {
                int a = 2 * i + 1, b = a + 1, m = i;
                if (a < R && heap[a] < heap[m]) m = a;
                if (b < R && heap[b] < heap[m]) m = b;
                if (m == i) break;
                float t = heap[i]; heap[i] = heap[m]; heap[m] = t; i = m;
            }
        }
    }
    const float L = heap[0];
    int cnt = 0;
    for (int n = 0; n < N; n++)
        if (lb[n] >= L) rows[cnt++] = n;
    float *ye = NULL;
    if (s->check) {
        ye = malloc((size_t)N * 4);
        if (ye) {
            if (s->f16) qw_gemm_f16b(c->pool, 1, N, K, x, K, B->data, K, 1, ye, N);
            else qw_gemm_f32(c->pool, 1, N, K, x, K, B->data, K, 1, ye, N);
        }
    }
    s->calls++;
    if (cnt > N / 8) { /* flat logits: the exact product is cheaper than rescoring that many rows */
        s->fallbacks++;
        if (s->f16) qw_gemm_f16b(c->pool, 1, N, K, x, K, B->data, K, 1, y, N);
        else qw_gemm_f32(c->pool, 1, N, K, x, K, B->data, K, 1, y, N);
    } else {
        s->rescored += cnt;
        float *vals = lb; /* the upper bounds are no longer needed */
        qw_gemm_tb_rows_pool(c->pool, x, B->data, s->f16, K, K, rows, cnt, vals);
        if (ye) {
            double worst = 0;
            int am = 0, ame = 0;
            for (int n = 0; n < N; n++) {
                double d = fabs((double)y[n] - ye[n]);
                if (d > worst) worst = d;
            }
            for (int j = 0; j < cnt; j++) y[rows[j]] = vals[j];
            for (int n = 1; n < N; n++) { if (y[n] > y[am]) am = n; if (ye[n] > ye[ame]) ame = n; }
            int exact_same = 1;
            for (int j = 0; j < cnt; j++) exact_same &= memcmp(&y[rows[j]], &ye[rows[j]], 4) == 0;
            fprintf(stderr, "lmhead: call %ld rescored %d rows, max |approx - exact| of the other logits %.4g, "
                            "argmax %d (exact %d)%s%s\n",
                    s->calls, cnt, worst, am, ame, am == ame ? "" : " MISMATCH", exact_same ? "" : " RESCORE-DIFF");
        } else {
            for (int j = 0; j < cnt; j++) y[rows[j]] = vals[j];
        }
    }
    free(ye);
    if (out[0]->dtype != QW_DT_F32) qw_store_f32(out[0], y, N);
    return QW_OK;
}

const qw_op_def qw_op_lmhead = {"LmHeadInt8", "", NULL, run_lmh, free_lmh};

static uint64_t fnv1a64(uint64_t h, const void *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * 0x100000001b3ull;
    return h;
}

/* The int8 rows: from the derived file when the fs has a matching one (a cache kept it), else quantised now
 * and registered, so the host can keep them for the next load. */
static qw_status make_rows(qw_op_node *n, qw_pool *pool, lmh_state *s, const qw_tensor *B, qw_error *err) {
    const qw_onnx_tensor *t = qw_weights_info(n->weights, n->in_weight[1]);
    char name[128] = "";
    qw_derived_seg segs[4] = {{&s->head, sizeof s->head}, {s->w.q, qw_i8w_q_bytes(&s->w)},
                              {s->w.scales, qw_i8w_scale_bytes(&s->w)}, {s->w.wnorm, (size_t)s->w.N4 * 2 * sizeof(float)}};
    if (t && t->file >= 0 && t->file < n->model->n_files) {
        lmh_header *h = &s->head;
        memcpy(h->magic, "QWLMHI8", 8);
        h->layout = QW_I8W_LAYOUT, h->N = (uint32_t)s->N, h->K = (uint32_t)s->K, h->block = (uint32_t)s->w.block;
        h->n_blocks = (uint32_t)s->w.n_blocks, h->N4 = (uint32_t)s->w.N4, h->f16 = (uint32_t)s->f16;
        h->src_offset = t->offset, h->src_bytes = t->nbytes, h->src_file_size = n->model->files[t->file].size;
        uint64_t hash = fnv1a64(0xcbf29ce484222325ull, h, sizeof *h);
        hash = fnv1a64(hash, t->name, strlen(t->name));
        hash = fnv1a64(hash, n->model->files[t->file].name, strlen(n->model->files[t->file].name));
        snprintf(name, sizeof name, QW_DERIVED_DIR "lmhead-i8-v%d-%016llx.bin", QW_I8W_LAYOUT, (unsigned long long)hash);
    }
    int found = 0;
    if (name[0]) {
        qw_status st = qw_weights_derived_read(n->weights, name, segs, 4, &found, err);
        if (st != QW_OK) return st;
    }
    if (!found) {
        double t0 = qw_now_ms();
        qw_i8w_quantize(pool, &s->w, B->data, s->f16, s->K);
        qw_weights_add_derive_ms(n->weights, qw_now_ms() - t0);
    }
    /* best effort: when the store's list is full the rows just are not offered to the cache */
    if (name[0]) qw_weights_derived_register(n->weights, name, t->file, segs, 4, found);
    return QW_OK;
}

qw_status qw_op_lmhead_select(qw_op_node *n, qw_pool *pool, int *selected, qw_error *err) {
    *selected = 0;
    if (!n->trans_b || n->n_in != 2 || strcmp(n->on->op_type, "MatMul") || n->on->domain[0]) return QW_OK;
    if (n->gopts && (n->gopts->exact_lm_head || n->gopts->mem_cap_bytes)) return QW_OK;
    const qw_tensor *B = n->in_const[1];
    if (!B || !B->data || B->ndim != 2 || (B->dtype != QW_DT_F16 && B->dtype != QW_DT_F32)) return QW_OK;
    if (n->in_const[0] || !qw_dtype_is_float(n->in_dtype[0])) return QW_OK;
    int64_t N = B->dims[0], K = B->dims[1];
    const char *mr = getenv("QW_LMHEAD_MIN_ROWS");
    int64_t min_rows = mr ? atoll(mr) : QW_LMHEAD_MIN_ROWS;
    if (N < min_rows || (!mr && (uint64_t)(N * K) < QW_LMHEAD_MIN_ELEMS) || N > INT32_MAX / 2 || K > 1 << 20)
        return QW_OK;
    lmh_state *s = calloc(1, sizeof *s);
    if (!s) return qw_op_err(n, err, QW_E_NOMEM, "out of memory");
    s->N = (int)N, s->K = (int)K, s->f16 = B->dtype == QW_DT_F16;
    s->check = getenv("QW_LMHEAD_CHECK") != NULL;
    qw_i8w_init(&s->w, (int)N, (int)K);
    s->w.q = qw_weights_derived_alloc(n->weights, qw_i8w_q_bytes(&s->w));
    s->w.scales = qw_weights_derived_alloc(n->weights, qw_i8w_scale_bytes(&s->w));
    s->w.wnorm = qw_weights_derived_alloc(n->weights, (size_t)s->w.N4 * 2 * sizeof(float));
    if (!s->w.q || !s->w.scales || !s->w.wnorm) { free(s); return qw_op_err(n, err, QW_E_NOMEM, "out of memory (int8 lm_head)"); }
    s->w.enorm = s->w.wnorm + s->w.N4;
    qw_status st = make_rows(n, pool, s, B, err);
    if (st != QW_OK) { free(s); return st; }
    if (n->state && n->op && n->op->free_state) n->op->free_state(n->state);
    n->state = s;
    n->op = &qw_op_lmhead;
    *selected = 1;
    return QW_OK;
}
