/* qw_ops_lmhead.c - the tied lm_head (MatMul(x, Transpose(E)) on the large fp16/fp32 embedding, rewritten to
 * trans_b at load) run on int8 rows made once at load, with the top candidates rescored exactly.
 *
 * Chosen by qw_graph.c (qw_op_lmhead_select) for a checked MatMul with trans_b whose B is a constant 2-D
 * float weight of at least QW_LMHEAD_MIN_ELEMS elements and at least QW_LMHEAD_MIN_ROWS rows (or
 * qw_graph_opts.lm_head_min_rows rows and no element minimum), unless
 * exact_lm_head is set, or a memory cap is too small to hold the rows beside the layers (qw_op_lmhead_eligible).
 * B itself may be resident or read on demand (a memory cap streams it; embedding_on_demand leaves it in the fs):
 * only the rows rescored are read then.
 *
 * Decode (one activation row): y_approx = qw_i8_matvec (int8 rows per block of 64, 7-bit activations), which
 * streams ~half the bytes of the fp16 rows. For every row the kernel's documented bound
 *   |y_approx_n - x.w_n| <= E_n = wnorm_n * ex + enorm_n * (xn + ex) + fp32 rounding slack
 * holds (Cauchy-Schwarz on the weight and activation quantisation errors, both known exactly). Let L be the
 * R-th largest lower bound y_approx_n - E_n; R is what the sampler can pick from (qw_graph_step.lm_head_top: 1
 * for greedy, top_k, else QW_LMHEAD_TOPK = 64), counted among the rows the sampler cannot lower (a repetition
 * penalty only lowers the seen ids' logits: they can drop out of its top R, never push another row out).
 * Every row whose true value can reach the true top R has y_approx_n + E_n >= L. Those candidates are recomputed from the fp16/fp32 row with the exact kernel's
 * arithmetic (qw_gemm_tb_rows: the same bits qw_gemm_f16b gives), highest upper bound first, a batch at a time,
 * until the R-th largest exact value found exceeds the next candidate's upper bound (no later row can enter the
 * top R): on the random 1.5B model 16-48 rows per greedy step instead of ~4400 candidates, ~700 for R = 64.
 * So the exact top R (hence greedy's argmax, and top-k / top-p candidates sampled from them) carry exactly the
 * values the exact path computes; logits that provably cannot enter the top R keep their approximate values
 * (what a softmax tail sees). Greedy therefore equals the exact path bit for bit, i.e. onnxruntime's except at
 * near-ties that the exact fp16 path itself may break differently. When the rescoring passes a budget of rows
 * (flat logits) the whole exact product runs instead. M > 1 runs the exact product; a prefill whose node is
 * last_row_only (qw_graph_logits_last_only, set by the decoder) has one row, so it runs as a decode step, and a
 * speculative step's few last rows (qw_graph_step.logits_rows) run as that many decode steps, their approximate
 * products in one pass over the int8 rows (qw_i8_matmul): each row's top R has the bits plain decoding gives it,
 * so the verified tokens are plain decoding's.
 * qw_graph_opts.lm_head_check also computes the exact product and prints per call how many rows were
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
#define QW_LMHEAD_BATCH 32               /* rows rescored between two checks of the stop rule */
#define QW_LMHEAD_READ_CHUNK (16u << 20) /* bytes read per chunk when quantising an on-demand embedding */
#define QW_LMHEAD_MIN_ROWS 16384
#define QW_LMHEAD_MIN_ELEMS (8u << 20)

/* The first segment of the derived file (QW_DERIVED_DIR "lmhead-i8-v<layout>-<hash>.bin"): what the rows
 * were made from and how; a file whose header differs is not used. Then q, scales (+ block sums), norms. */
typedef struct lmh_header {
    char magic[8]; /* "QWLMHI8" */
    uint32_t layout, N, K, block, n_blocks, N4, f16, pad;
    uint64_t src_offset, src_bytes, src_file_size;
} lmh_header;
_Static_assert(sizeof(lmh_header) == 64, "lmh_header is 64 bytes");

typedef struct lmh_state {
    lmh_header head;
    qw_i8w w;
    int N, K, f16;
    int check; /* qw_graph_opts.lm_head_check */
    long calls, rescored, fallbacks;
} lmh_state;

/* A row whose exact value may enter the top R: its upper bound, and the row (rescored best bound first). */
typedef struct lmh_cand {
    float ub;
    int32_t row;
} lmh_cand;

static int cand_cmp(const void *a, const void *b) { /* upper bound descending, then row: a total order */
    const lmh_cand *x = a, *y = b;
    if (x->ub != y->ub) return x->ub < y->ub ? 1 : -1;
    return (x->row > y->row) - (x->row < y->row);
}

/* min-heap of the R largest values seen */
static void heap_push(float *h, int *hn, int R, float v) {
    if (*hn < R) {
        int i = (*hn)++;
        h[i] = v;
        while (i > 0 && h[(i - 1) / 2] > h[i]) {
            float t = h[i];
            h[i] = h[(i - 1) / 2];
            h[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
    } else if (v > h[0]) {
        h[0] = v;
        for (int i = 0;;) {
            int a = 2 * i + 1, b = a + 1, m = i;
            if (a < R && h[a] < h[m]) m = a;
            if (b < R && h[b] < h[m]) m = b;
            if (m == i) break;
            float t = h[i];
            h[i] = h[m];
            h[m] = t;
            i = m;
        }
    }
}

static void free_lmh(void *p) { free(p); }

/* The exact product of x with every row, into y: from the resident weight, or streamed from the weight store when
 * the embedding is read on demand. */
static qw_status exact_all(qw_op_ctx *c, const lmh_state *s, const void *B, const float *x, float *y, qw_error *err) {
    if (!B) return qw_op_matmul_tb_streamed(c, x, 1, s->N, s->K, s->f16 ? QW_DT_F16 : QW_DT_F32, y, err);
    if (s->f16)
        qw_gemm_f16b(c->pool, 1, s->N, s->K, x, s->K, B, s->K, 1, y, s->N);
    else
        qw_gemm_f32(c->pool, 1, s->N, s->K, x, s->K, B, s->K, 1, y, s->N);
    return QW_OK;
}

/* scratch of one run, shared by its rows */
typedef struct lmh_work {
    void *work, *rbuf;
    lmh_cand *cand;
    int32_t *rows;
    float *vals, *heap;
} lmh_work;

static qw_status lmh_row(qw_op_ctx *c, lmh_state *s, const void *B, const float *x, float *y, double xn, double ex,
                         const lmh_work *wk, qw_error *err);

static qw_status run_lmh(qw_op_ctx *c, qw_tensor *const *in, int n_in, qw_tensor **out, int n_out, qw_error *err) {
    lmh_state *s = c->node->state;
    qw_tensor last;
    const qw_tensor *A = qw_op_last_row(c, in[0], &last);
    const void *B = in[1] ? in[1]->data : NULL; /* NULL: the embedding is read on demand */
    int ra = A->ndim;
    /* one row (decode), or the last few of a speculative step (last_row_only with logits_rows), each as a decode
     * step computes it (the same bits); a prefill of every row or other shapes: the exact product */
    int64_t M = ra >= 1 && A->dims[ra - 1] == s->K ? A->numel / s->K : 0;
    if (M < 1 || (M > 1 && (!c->node->last_row_only || ra != 3 || M > 64)))
        return qw_op_matmul_run(c, in, n_in, out, n_out, err);
    int64_t dims[QW_MAX_DIMS];
    memcpy(dims, A->dims, sizeof dims);
    dims[ra - 1] = s->N;
    qw_status st = qw_op_out(c, out[0], A->dtype, ra, dims, err);
    if (st != QW_OK) return st;
    const int N = s->N, K = s->K;
    const size_t row_bytes = (size_t)K * (s->f16 ? 2 : 4);
    const float *x = qw_tensor_f32(c, A);
    float *y = out[0]->dtype == QW_DT_F32 ? (float *)out[0]->data : qw_op_scratch(c, (size_t)(M * N) * 4 + 4);
    lmh_work wk = {qw_op_scratch(c, qw_i8_matmul_work_size(&s->w, (int)M)),
                   B ? NULL : qw_op_scratch(c, QW_LMHEAD_BATCH * row_bytes),
                   qw_op_scratch(c, (size_t)N * sizeof(lmh_cand) + 8),
                   qw_op_scratch(c, QW_LMHEAD_BATCH * 4),
                   qw_op_scratch(c, QW_LMHEAD_BATCH * 4),
                   qw_op_scratch(c, QW_LMHEAD_TOPK * 4)};
    if (!x || !y || !wk.work || !wk.cand || !wk.rows || !wk.vals || !wk.heap || (!B && !wk.rbuf))
        return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    /* every row's approximate logits in one pass over the int8 rows (each row's bits as alone), then per row
     * its bound and rescoring */
    double *xn = qw_op_scratch(c, (size_t)M * 2 * sizeof(double)), *ex = xn ? xn + M : NULL;
    if (!xn) return qw_op_err(c->node, err, QW_E_NOMEM, "out of memory");
    qw_i8_matmul(c->pool, &s->w, (int)M, x, y, wk.work, xn, ex);
    for (int64_t i = 0; i < M; i++)
        if ((st = lmh_row(c, s, B, x + i * K, y + i * N, xn[i], ex[i], &wk, err)) != QW_OK) return st;
    if (out[0]->dtype != QW_DT_F32) qw_store_f32(out[0], y, M * N);
    return QW_OK;
}

/* y = the logits of one activation row x: approximate (y holds qw_i8_matmul's, with x's norm xn and its
 * quantisation error's ex), the top R exact */
static qw_status lmh_row(qw_op_ctx *c, lmh_state *s, const void *B, const float *x, float *y, double xn, double ex,
                         const lmh_work *wk, qw_error *err) {
    const int N = s->N, K = s->K;
    const size_t row_bytes = (size_t)K * (s->f16 ? 2 : 4);
    const int top = c->step->lm_head_top;
    const int R = QW_MIN(N, top >= 1 && top <= QW_LMHEAD_TOPK ? top : QW_LMHEAD_TOPK);
    /* ids the sampler can only lower (a repetition penalty's seen ids): they never push another row out of the
     * top R, so R counts the others only */
    const uint8_t *low = c->step->lm_head_lowered;
    void *rbuf = wk->rbuf;
    lmh_cand *cand = wk->cand;
    int32_t *rows = wk->rows;
    float *vals = wk->vals, *heap = wk->heap;
    qw_status st;
    /* bounds; L = the R-th largest lower bound; candidates: rows whose upper bound reaches L */
    const double slack_k = 1.2e-7 * (K + 2 * s->w.n_blocks);
    int hn = 0, cnt = 0;
    for (int n = 0; n < N; n++) {
        double wn = s->w.wnorm[n], en = s->w.enorm[n];
        double e = wn * ex + en * (xn + ex) + slack_k * (xn + ex) * (wn + en) + 1e-6 * fabs(y[n]);
        if (!low || !low[n]) heap_push(heap, &hn, R, (float)(y[n] - e * 1.0001));
        cand[n].ub = (float)(y[n] + e * 1.0001);
    }
    const float L = hn == R ? heap[0] : -INFINITY; /* fewer than R rows the sampler cannot lower: all candidates */
    if (L != L) /* NaN activations: no bound means anything; the exact product says what it says */
        return exact_all(c, s, B, x, y, err);
    for (int n = 0; n < N; n++)
        if (cand[n].ub >= L) cand[cnt].ub = cand[n].ub, cand[cnt++].row = n;
    qsort(cand, (size_t)cnt, sizeof *cand, cand_cmp);
    float *ye = NULL;
    if (s->check && (ye = malloc((size_t)N * 4)) != NULL && (st = exact_all(c, s, B, x, ye, err)) != QW_OK) {
        free(ye);
        return st;
    }
    /* Rescore best upper bound first, a batch at a time, until the R-th largest exact value so far exceeds the
     * next upper bound: no later row can enter the top R. Past a budget of rows (flat logits), the whole exact
     * product is cheaper: N / 8 rows from memory, N / 64 when each row is a read from the fs. */
    const int budget = B ? N / 8 : N / 64;
    int done = 0;
    hn = 0;
    s->calls++;
    while (done < cnt && !(hn == R && heap[0] > cand[done].ub)) {
        if (done > budget) {
            s->fallbacks++;
            if ((st = exact_all(c, s, B, x, y, err)) != QW_OK) {
                free(ye);
                return st;
            }
            done = -1;
            break;
        }
        /* greedy's top 1 usually settles within a few rows: a small first batch saves reads */
        int nb = QW_MIN(done < QW_LMHEAD_BATCH && R <= 8 ? 16 : QW_LMHEAD_BATCH, cnt - done);
        for (int j = 0; j < nb; j++) rows[j] = cand[done + j].row;
        if (B) {
            qw_gemm_tb_rows_pool(c->pool, x, B, s->f16, K, K, rows, nb, vals);
        } else {
            int32_t ix[QW_LMHEAD_BATCH];
            for (int j = 0; j < nb; j++) {
                st = qw_weights_read_range(c->node->weights, c->node->in_weight[1], (uint64_t)rows[j] * row_bytes,
                                           row_bytes, (char *)rbuf + (size_t)j * row_bytes, err);
                if (st != QW_OK) {
                    free(ye);
                    return st;
                }
                ix[j] = j;
            }
            qw_gemm_tb_rows_pool(c->pool, x, rbuf, s->f16, K, K, ix, nb, vals);
        }
        for (int j = 0; j < nb; j++) {
            y[rows[j]] = vals[j];
            if (!low || !low[rows[j]]) heap_push(heap, &hn, R, vals[j]);
        }
        done += nb;
    }
    if (done >= 0) s->rescored += done;
    if (ye) {
        double worst = 0;
        int am = 0, ame = 0, exact_same = 1;
        for (int n = 0; n < N; n++) {
            double d = fabs((double)y[n] - ye[n]);
            if (d > worst) worst = d;
        }
        for (int j = 0; j < (done < 0 ? 0 : done); j++) exact_same &= memcmp(&y[cand[j].row], &ye[cand[j].row], 4) == 0;
        for (int n = 1; n < N; n++) {
            if (y[n] > y[am]) am = n;
            if (ye[n] > ye[ame]) ame = n;
        }
        fprintf(stderr,
                "lmhead: call %ld R %d, %d candidates, rescored %d rows%s, max |y - exact| %.4g, argmax %d "
                "(exact %d)%s%s\n",
                s->calls, R, cnt, done < 0 ? cnt : done, done < 0 ? " (whole product)" : "", worst, am, ame,
                am == ame ? "" : " MISMATCH", exact_same ? "" : " RESCORE-DIFF");
        free(ye);
    }
    return QW_OK;
}

const qw_op_def qw_op_lmhead = {QW_OP_LmHeadInt8, "LmHeadInt8", "", NULL, run_lmh, free_lmh};

static uint64_t fnv1a64(uint64_t h, const void *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * 0x100000001b3ull;
    return h;
}

/* The int8 rows: from the derived file when the fs has a matching one (a cache kept it), else quantised now
 * and registered, so the host can keep them for the next load. */
static qw_status make_rows(qw_op_node *n, qw_pool *pool, lmh_state *s, const qw_tensor *B, qw_error *err) {
    const qw_onnx_tensor *t = qw_weights_info(n->weights, n->in_weight[1]);
    char name[128] = "";
    qw_derived_seg segs[4] = {{&s->head, sizeof s->head},
                              {s->w.q, qw_i8w_q_bytes(&s->w)},
                              {s->w.scales, qw_i8w_scale_bytes(&s->w)},
                              {s->w.wnorm, (size_t)s->w.N4 * 2 * sizeof(float)}};
    if (t && t->file >= 0 && t->file < n->model->n_files) {
        lmh_header *h = &s->head;
        memcpy(h->magic, "QWLMHI8", 8);
        h->layout = QW_I8W_LAYOUT, h->N = (uint32_t)s->N, h->K = (uint32_t)s->K, h->block = (uint32_t)s->w.block;
        h->n_blocks = (uint32_t)s->w.n_blocks, h->N4 = (uint32_t)s->w.N4, h->f16 = (uint32_t)s->f16;
        h->src_offset = t->offset, h->src_bytes = t->nbytes, h->src_file_size = n->model->files[t->file].size;
        uint64_t hash = fnv1a64(0xcbf29ce484222325ull, h, sizeof *h);
        hash = fnv1a64(hash, t->name, strlen(t->name));
        hash = fnv1a64(hash, n->model->files[t->file].name, strlen(n->model->files[t->file].name));
        snprintf(name, sizeof name, QW_DERIVED_DIR "lmhead-i8-v%d-%016llx.bin", QW_I8W_LAYOUT,
                 (unsigned long long)hash);
    }
    int found = 0;
    if (name[0]) {
        qw_status st = qw_weights_derived_read(n->weights, name, segs, 4, &found, err);
        if (st != QW_OK) return st;
    }
    if (!found) {
        double t0 = qw_now_ms();
        if (B->data) {
            qw_i8w_quantize(pool, &s->w, B->data, s->f16, s->K);
        } else { /* read on demand: quantised a chunk of rows at a time as it is read */
            size_t row_bytes = (size_t)s->K * (s->f16 ? 2 : 4);
            int chunk = (int)((QW_LMHEAD_READ_CHUNK / row_bytes) & ~(size_t)3);
            if (chunk < 4) chunk = 4;
            void *buf = malloc((size_t)chunk * row_bytes);
            if (!buf) return qw_op_err(n, err, QW_E_NOMEM, "out of memory (int8 lm_head)");
            for (int r0 = 0; r0 < s->N; r0 += chunk) {
                int nr = QW_MIN(chunk, s->N - r0);
                qw_status st = qw_weights_read_range(n->weights, n->in_weight[1], (uint64_t)r0 * row_bytes,
                                                     (size_t)nr * row_bytes, buf, err);
                if (st != QW_OK) {
                    free(buf);
                    return st;
                }
                qw_i8w_quantize_rows(pool, &s->w, buf, s->f16, s->K, r0, nr);
            }
            free(buf);
        }
        qw_weights_add_derive_ms(n->weights, qw_now_ms() - t0);
    }
    /* best effort: when the store's list is full the rows just are not offered to the cache */
    if (name[0]) qw_weights_derived_register(n->weights, name, t->file, segs, 4, found);
    return QW_OK;
}

int qw_op_lmhead_eligible(const qw_graph_opts *o, int dtype, int ndim, const int64_t *dims) {
    if (o && o->exact_lm_head) return 0;
    if (ndim != 2 || (dtype != QW_DT_F16 && dtype != QW_DT_F32)) return 0;
    int64_t N = dims[0], K = dims[1];
    int mr = o ? o->lm_head_min_rows : 0;
    int64_t min_rows = mr ? mr : QW_LMHEAD_MIN_ROWS;
    if (N < min_rows || (!mr && (uint64_t)(N * K) < QW_LMHEAD_MIN_ELEMS) || N > INT32_MAX / 2 || K < 1 || K > 1 << 20)
        return 0;
    if (o && o->mem_cap_bytes) {
        /* Under a cap the int8 rows are resident (they count against it) and the fp16 weight streams only for
         * the few rescored rows: each token then reads (rows - fp16 bytes) less from the fs, as long as the rows
         * leave room for the layers' stable set; past 60 % of the cap the exact streamed product runs. */
        qw_i8w w;
        qw_i8w_init(&w, (int)N, (int)K);
        uint64_t rows = qw_i8w_q_bytes(&w) + qw_i8w_scale_bytes(&w) + (uint64_t)w.N4 * 2 * sizeof(float);
        if (rows > o->mem_cap_bytes / 10 * 6) return 0;
    }
    return 1;
}

qw_status qw_op_lmhead_select(qw_op_node *n, qw_pool *pool, int *selected, qw_error *err) {
    *selected = 0;
    if (!n->trans_b || n->n_in != 2 || !QW_OP_IS(n, QW_OP_MatMul)) return QW_OK;
    const qw_tensor *B = n->in_const[1];
    if (!B || !qw_op_lmhead_eligible(n->gopts, B->dtype, B->ndim, B->dims)) return QW_OK;
    /* a weight not in memory (read on demand, or paged under a cap) is read by rows: for the int8 rows at load,
     * then only for the rows rescored */
    if (!B->data && !qw_weights_pageable(n->weights, n->in_weight[1])) return QW_OK;
    if (n->in_const[0] || !qw_dtype_is_float(n->in_dtype[0])) return QW_OK;
    int64_t N = B->dims[0], K = B->dims[1];
    lmh_state *s = calloc(1, sizeof *s);
    if (!s) return qw_op_err(n, err, QW_E_NOMEM, "out of memory");
    s->N = (int)N, s->K = (int)K, s->f16 = B->dtype == QW_DT_F16;
    s->check = n->gopts && n->gopts->lm_head_check;
    qw_i8w_init(&s->w, (int)N, (int)K);
    s->w.q = qw_weights_derived_alloc(n->weights, qw_i8w_q_bytes(&s->w));
    s->w.scales = qw_weights_derived_alloc(n->weights, qw_i8w_scale_bytes(&s->w));
    s->w.wnorm = qw_weights_derived_alloc(n->weights, (size_t)s->w.N4 * 2 * sizeof(float));
    if (!s->w.q || !s->w.scales || !s->w.wnorm) {
        free(s);
        return qw_op_err(n, err, QW_E_NOMEM, "out of memory (int8 lm_head)");
    }
    s->w.enorm = s->w.wnorm + s->w.N4;
    qw_status st = make_rows(n, pool, s, B, err);
    if (st != QW_OK) {
        free(s);
        return st;
    }
    if (n->state && n->op && n->op->free_state) n->op->free_state(n->state);
    if (!B->data) n->in_skip[1] = 1;
    n->state = s;
    n->op = &qw_op_lmhead;
    *selected = 1;
    return QW_OK;
}
