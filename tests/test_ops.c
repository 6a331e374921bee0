/* test_ops.c - every single-op model of tools/gen/gen_op_models.py through qw_graph, compared with onnxruntime's
 * outputs (tools/ref/op_ref.mjs): exact for integers and bools, |d| <= 1e-4 + 1e-4 |ref| for fp32 and
 * 2e-3 + 2e-3 |ref| (about 2 ulp) for fp16. The models and references are (re)generated into
 * $QW_BUILD_DIR/ops when missing or older than the generator scripts, so `ctest` works from a fresh build dir. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "qwasm.h"
#include "qw_dtype.h"
#include "qw_graph.h"
#include "qw_onnx.h"
#include "qw_pool.h"
#include "qw_test.h"

typedef struct tensor_file {
    int n;
    char *name[16];
    qw_tensor t[16];
} tensor_file;

static void tf_free(tensor_file *f) {
    for (int i = 0; i < f->n; i++) {
        free(f->name[i]);
        free(f->t[i].data);
    }
    f->n = 0;
}

static int tf_read(const char *path, tensor_file *f) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    char magic[4];
    uint32_t n;
    int ok = fread(magic, 1, 4, fp) == 4 && !memcmp(magic, "QWT1", 4) && fread(&n, 4, 1, fp) == 1 && n <= 16;
    for (uint32_t i = 0; ok && i < n; i++) {
        uint32_t nl;
        int32_t dt, nd;
        if (fread(&nl, 4, 1, fp) != 1 || nl > 4096) {
            ok = 0;
            break;
        }
        f->name[i] = calloc(nl + 1, 1);
        if (fread(f->name[i], 1, nl, fp) != nl || fread(&dt, 4, 1, fp) != 1 || fread(&nd, 4, 1, fp) != 1 ||
            nd > QW_MAX_DIMS) {
            ok = 0;
            f->n = (int)i + 1;
            break;
        }
        qw_tensor *t = &f->t[i];
        t->dtype = dt;
        t->ndim = nd;
        if (nd && fread(t->dims, 8, (size_t)nd, fp) != (size_t)nd) {
            ok = 0;
            f->n = (int)i + 1;
            break;
        }
        t->numel = 1;
        for (int d = 0; d < nd; d++) t->numel *= t->dims[d];
        size_t bytes = (size_t)t->numel * qw_dtype_size(dt);
        t->data = malloc(bytes + 1);
        if (bytes && fread(t->data, 1, bytes, fp) != bytes) ok = 0;
        f->n = (int)i + 1;
    }
    fclose(fp);
    return ok;
}

static double mtime(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (double)st.st_mtime : -1;
}

static double get_f(const qw_tensor *t, int64_t i) {
    switch (t->dtype) {
    case QW_DT_F32: return ((const float *)t->data)[i];
    case QW_DT_F16: return qw_f16_to_f32(((const uint16_t *)t->data)[i]);
    default: return 0;
    }
}

static int64_t get_i(const qw_tensor *t, int64_t i) {
    switch (t->dtype) {
    case QW_DT_I64: return ((const int64_t *)t->data)[i];
    case QW_DT_I32: return ((const int32_t *)t->data)[i];
    case QW_DT_I8: return ((const int8_t *)t->data)[i];
    default: return ((const uint8_t *)t->data)[i];
    }
}

/* returns NULL when equal, else a message in buf */
static const char *compare(const qw_tensor *got, const qw_tensor *ref, char *buf, size_t cap) {
    if (got->dtype != ref->dtype) {
        snprintf(buf, cap, "dtype %s, expected %s", qw_dtype_name(got->dtype), qw_dtype_name(ref->dtype));
        return buf;
    }
    if (got->ndim != ref->ndim) {
        snprintf(buf, cap, "rank %d, expected %d", got->ndim, ref->ndim);
        return buf;
    }
    for (int d = 0; d < ref->ndim; d++)
        if (got->dims[d] != ref->dims[d]) {
            snprintf(buf, cap, "dim %d is %lld, expected %lld", d, (long long)got->dims[d], (long long)ref->dims[d]);
            return buf;
        }
    int fl = ref->dtype == QW_DT_F32 || ref->dtype == QW_DT_F16;
    double tol = ref->dtype == QW_DT_F16 ? 2e-3 : 1e-4;
    for (int64_t i = 0; i < ref->numel; i++) {
        if (fl) {
            double a = get_f(got, i), b = get_f(ref, i);
            if (isnan(b) ? !isnan(a) : !(fabs(a - b) <= tol + tol * fabs(b))) {
                snprintf(buf, cap, "element %lld: %.9g, expected %.9g", (long long)i, a, b);
                return buf;
            }
        } else if (get_i(got, i) != get_i(ref, i)) {
            snprintf(buf, cap, "element %lld: %lld, expected %lld", (long long)i, (long long)get_i(got, i),
                     (long long)get_i(ref, i));
            return buf;
        }
    }
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *src = getenv("QW_SOURCE_DIR"), *bd = getenv("QW_BUILD_DIR");
    if (!src) src = ".";
    char dir[1024], cases[1100], gen[1100], ref[1100], cmd[4096];
    snprintf(dir, sizeof dir, "%s/ops", bd ? bd : "build");
    snprintf(cases, sizeof cases, "%s/cases.txt", dir);
    snprintf(gen, sizeof gen, "%s/tools/gen/gen_op_models.py", src);
    snprintf(ref, sizeof ref, "%s/tools/ref/op_ref.mjs", src);
    double tc = mtime(cases);
    if (tc < 0 || tc < mtime(gen) || tc < mtime(ref)) {
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' && node '%s' '%s'", gen, dir, ref, dir);
        printf("generating: %s\n", cmd);
        if (system(cmd) != 0) {
            printf("FAILED: could not generate the op models\n");
            return 1;
        }
        /* op_ref writes after the generator: touch cases.txt last so the check above sees it fresh */
        FILE *t = fopen(cases, "a");
        if (t) fclose(t);
    }
    FILE *cf = fopen(cases, "r");
    if (!cf) {
        printf("FAILED: no %s\n", cases);
        return 1;
    }
    qw_pool *pool = qw_pool_new(2);
    qw_fs fs;
    qw_error err = {0};
    if (qw_fs_open_dir(dir, &fs, &err) != QW_OK) {
        printf("FAILED: %s\n", err.msg);
        return 1;
    }
    char line[512];
    int n_skip = 0;
    while (fgets(line, sizeof line, cf)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        char p_in[1700], p_out[1700], p_skip[1700], onnx_name[600];
        snprintf(p_in, sizeof p_in, "%s/%s.in", dir, line);
        snprintf(p_out, sizeof p_out, "%s/%s.out", dir, line);
        snprintf(p_skip, sizeof p_skip, "%s/%s.skip", dir, line);
        snprintf(onnx_name, sizeof onnx_name, "%s.onnx", line);
        if (mtime(p_skip) >= 0) {
            printf("skip %s (onnxruntime cannot run it)\n", line);
            n_skip++;
            continue;
        }
        tensor_file fin, fout;
        if (!tf_read(p_in, &fin) || !tf_read(p_out, &fout)) {
            CHECK(0, "%s: cannot read %s / %s", line, p_in, p_out);
            tf_free(&fin);
            continue;
        }
        qw_onnx_model *m = NULL;
        qw_graph *g = NULL;
        const char *why = NULL;
        char buf[600];
        qw_status st = qw_onnx_load(&fs, onnx_name, &m, &err);
        if (st == QW_OK) st = qw_graph_build(&fs, m, pool, NULL, &g, &err);
        for (int i = 0; st == QW_OK && i < fin.n; i++) {
            int k = qw_graph_find_input(g, fin.name[i]);
            if (k < 0) {
                snprintf(buf, sizeof buf, "no input %s", fin.name[i]);
                why = buf;
                break;
            }
            st = qw_graph_set_input(g, k, fin.t[i].dtype, fin.t[i].ndim, fin.t[i].dims, fin.t[i].data, &err);
        }
        /* run twice: the second run reuses pooled buffers and must give the same result */
        for (int rep = 0; rep < 2 && st == QW_OK && !why; rep++) {
            if (rep == 1)
                for (int i = 0; i < fin.n; i++)
                    qw_graph_set_input(g, qw_graph_find_input(g, fin.name[i]), fin.t[i].dtype, fin.t[i].ndim,
                                       fin.t[i].dims, fin.t[i].data, &err);
            st = qw_graph_run(g, NULL, NULL, &err);
            for (int o = 0; st == QW_OK && o < fout.n && !why; o++) {
                int k = qw_graph_find_output(g, fout.name[o]);
                const qw_tensor *t = qw_graph_output(g, k);
                if (!t) {
                    snprintf(buf, sizeof buf, "output %s not produced", fout.name[o]);
                    why = buf;
                    break;
                }
                const char *c = compare(t, &fout.t[o], buf, sizeof buf);
                if (c) {
                    char b2[700];
                    snprintf(b2, sizeof b2, "output %s: %s", fout.name[o], c);
                    memcpy(buf, b2, sizeof buf - 1);
                    buf[sizeof buf - 1] = 0;
                    why = buf;
                }
            }
        }
        if (st != QW_OK) { why = err.msg; }
        CHECK(!why, "%s: %s", line, why);
        qw_graph_free(g);
        qw_onnx_free(m);
        tf_free(&fin);
        tf_free(&fout);
    }
    fclose(cf);
    qw_fs_close(&fs);
    qw_pool_free(pool);
    printf("%d op cases skipped\n", n_skip);
    return qw_test_summary("test_ops"); /* one check per op case */
}
