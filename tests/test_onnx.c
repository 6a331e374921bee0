/* test_onnx.c - the ONNX reader: seed models (tools/gen/make_onnx_seeds.py), every error it reports, truncated
 * and corrupted input, and the onnxruntime-genai fixture with contrib ops and external data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qw_onnx.h"
#include "memfs.h"
#include "qw_test.h"

static char data_dir[1024];

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)sz + 1);
    if (!p || fread(p, 1, (size_t)sz, f) != (size_t)sz) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    *n = (size_t)sz;
    return p;
}

static uint8_t *slurp_data(const char *rel, size_t *n) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", data_dir, rel);
    return slurp(path, n);
}

static const qw_onnx_node *find_node(const qw_onnx_model *m, const char *op) {
    for (int i = 0; i < m->n_nodes; i++)
        if (!strcmp(m->nodes[i].op_type, op)) return &m->nodes[i];
    return NULL;
}

static int find_file(const qw_onnx_model *m, const char *name) {
    for (int i = 0; i < m->n_files; i++)
        if (!strcmp(m->files[i].name, name)) return i;
    return -1;
}

/* ---- well-formed seeds ------------------------------------------------------------------------ */

static void test_tiny(const qw_fs *fs) {
    qw_onnx_model *m = NULL;
    qw_error err = {0};
    qw_status st = qw_onnx_load(fs, "tiny.onnx", &m, &err);
    CHECK(st == QW_OK, "%s", err.msg);
    if (st != QW_OK) return;
    CHECK_EQ(m->ir_version, 8);
    CHECK(qw_onnx_opset_version(m, "") == 17 && qw_onnx_opset_version(m, "ai.onnx") == 17);
    CHECK(qw_onnx_opset_version(m, "qw.test") == 1 && qw_onnx_opset_version(m, "nope") == -1);
    CHECK_STREQ(m->producer_name, "qwasm-seeds");
    CHECK_STREQ(m->producer_version, "1");
    CHECK_STREQ(m->domain, "qwasm.test");
    CHECK_EQ(m->model_version, 3);
    CHECK_STREQ(m->doc_string, "seed model for the qwasm reader");
    CHECK(m->n_meta == 2 && !strcmp(m->meta_keys[0], "author") && !strcmp(m->meta_values[0], "qwasm"));
    CHECK(!strcmp(m->graph_name, "g") && m->n_nodes == 5 && m->n_inits == 2);
    CHECK(m->n_inputs == 1 && !strcmp(m->inputs[0].name, "x") && m->inputs[0].dtype == QW_DT_F32);
    CHECK(m->inputs[0].has_shape && m->inputs[0].ndim == 2 && m->inputs[0].dims[0].value == -1);
    CHECK(m->inputs[0].dims[0].param && !strcmp(m->inputs[0].dims[0].param, "batch"));
    CHECK(m->inputs[0].dims[1].value == 4 && m->inputs[0].dims[1].param == NULL);
    CHECK(m->n_outputs == 1 && m->n_value_info == 1 && !strcmp(m->value_info[0].name, "xw"));
    CHECK(m->n_files == 1 && !strcmp(m->files[0].name, "tiny.onnx"));

    const qw_onnx_tensor *w = qw_onnx_init_find(m, "W");
    CHECK(w && w->file == 0 && !w->data && w->ndim == 2 && w->dims[0] == 4 && w->dims[1] == 3 && w->nbytes == 48);
    if (w) {
        float v[12];
        CHECK_EQ(qw_onnx_tensor_read(fs, m, w, 0, v, sizeof v, &err), QW_OK);
        for (int i = 0; i < 12; i++) CHECK(v[i] == (float)i);
        CHECK_EQ(qw_onnx_tensor_read(fs, m, w, 40, v, 16, &err), QW_E_RANGE);
        CHECK(strstr(err.msg, "'W'") != NULL);
    }
    const qw_onnx_tensor *b = qw_onnx_init_find(m, "B");
    CHECK(b && b->file == -1 && b->data && b->numel == 3 && ((float *)b->data)[1] == -1.0f);

    const qw_onnx_node *c = find_node(m, "Constant");
    CHECK(c && c->n_attrs == 1 && c->n_outputs == 1 && c->n_inputs == 0);
    const qw_onnx_attr *cv = c ? qw_onnx_attr_find(c, "value") : NULL;
    CHECK(cv && cv->type == QW_ATTR_TENSOR && cv->t && cv->t->dtype == QW_DT_I64 && cv->t->data);
    if (cv && cv->t && cv->t->data) CHECK(((int64_t *)cv->t->data)[0] == -1 && ((int64_t *)cv->t->data)[1] == 3);

    const qw_onnx_node *n = find_node(m, "AllAttrs");
    CHECK(n && !strcmp(n->domain, "qw.test") && n->n_inputs == 2 && !strcmp(n->inputs[1], ""));
    if (n) {
        const qw_onnx_attr *a;
        CHECK((a = qw_onnx_attr_find(n, "f")) && a->type == QW_ATTR_FLOAT && a->f == 1.5f);
        CHECK((a = qw_onnx_attr_find(n, "i")) && a->type == QW_ATTR_INT && a->i == -7);
        CHECK((a = qw_onnx_attr_find(n, "s")) && a->type == QW_ATTR_STRING && a->s_len == 5 && !strcmp(a->s, "hello"));
        CHECK((a = qw_onnx_attr_find(n, "t")) && a->type == QW_ATTR_TENSOR && a->t->dtype == QW_DT_F16 &&
              qw_f16_to_f32(((uint16_t *)a->t->data)[1]) == -2.0f);
        CHECK((a = qw_onnx_attr_find(n, "g")) && a->type == QW_ATTR_GRAPH);
        CHECK((a = qw_onnx_attr_find(n, "floats")) && a->type == QW_ATTR_FLOATS && a->n == 2 && a->floats[1] == 2.5f);
        CHECK((a = qw_onnx_attr_find(n, "ints")) && a->type == QW_ATTR_INTS && a->n == 3 && a->ints[1] == -2 &&
              a->ints[2] == 300);
        CHECK((a = qw_onnx_attr_find(n, "strings")) && a->type == QW_ATTR_STRINGS && a->n == 2 &&
              !strcmp(a->strings[1], "bc"));
        CHECK((a = qw_onnx_attr_find(n, "tensors")) && a->type == QW_ATTR_TENSORS && a->n == 2 &&
              a->t[1].dtype == QW_DT_I8 && ((int8_t *)a->t[1].data)[0] == -1);
        CHECK((a = qw_onnx_attr_find(n, "graphs")) && a->type == QW_ATTR_GRAPHS && a->n == 2);
        CHECK(qw_onnx_attr_find(n, "missing") == NULL);
    }
    qw_onnx_free(m);
}

static void test_typed(const qw_fs *fs) {
    qw_onnx_model *m = NULL;
    qw_error err = {0};
    qw_status st = qw_onnx_load(fs, "typed.onnx", &m, &err);
    CHECK(st == QW_OK, "%s", err.msg);
    if (st != QW_OK) return;
    const qw_onnx_tensor *t;
#define T(name) ((t = qw_onnx_init_find(m, name)) != NULL && t->data)
    CHECK(T("f32") && ((float *)t->data)[2] == 3.5f && t->nbytes == 16);
    CHECK(T("f16") && qw_f16_to_f32(((uint16_t *)t->data)[1]) == -0.5f &&
          qw_f16_to_f32(((uint16_t *)t->data)[2]) == 65504.0f);
    CHECK(T("bf16") && qw_bf16_to_f32(((uint16_t *)t->data)[0]) == 1.0f);
    CHECK(T("i8") && ((int8_t *)t->data)[0] == -128 && ((int8_t *)t->data)[2] == 127);
    CHECK(T("u8") && ((uint8_t *)t->data)[1] == 255);
    CHECK(T("i16") && ((int16_t *)t->data)[0] == -32768);
    CHECK(T("u16") && ((uint16_t *)t->data)[1] == 65535);
    CHECK(T("bool") && ((uint8_t *)t->data)[0] == 1 && ((uint8_t *)t->data)[1] == 0);
    CHECK(T("i32") && ((int32_t *)t->data)[0] == -1 && ((int32_t *)t->data)[2] == INT32_MIN);
    CHECK(T("i64") && ((int64_t *)t->data)[0] == -5 && ((int64_t *)t->data)[1] == (int64_t)1 << 40);
    CHECK(T("f64") && ((double *)t->data)[0] == 3.25);
    CHECK(T("u32") && ((uint32_t *)t->data)[0] == 4000000000u);
    CHECK(T("u64") && ((uint64_t *)t->data)[0] == UINT64_MAX);
    CHECK(T("scalar") && t->ndim == 0 && t->numel == 1 && ((int64_t *)t->data)[0] == 42);
    CHECK(T("empty") && t->numel == 0 && t->nbytes == 0);
#undef T
    t = qw_onnx_init_find(m, "raw_i64");
    CHECK(t && t->file == 0 && t->nbytes == 24);
    if (t) {
        int64_t v[3];
        CHECK(qw_onnx_tensor_read(fs, m, t, 0, v, sizeof v, &err) == QW_OK && v[0] == 1 && v[2] == 3);
    }
    qw_onnx_free(m);
}

static void test_ext(void) {
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/ext", data_dir);
    qw_fs fs;
    qw_error err = {0};
    CHECK(qw_fs_open_dir(dir, &fs, &err) == QW_OK);
    qw_onnx_model *m = NULL;
    qw_status st = qw_onnx_load(&fs, "onnx/model_ext.onnx", &m, &err);
    CHECK(st == QW_OK, "%s", err.msg);
    if (st == QW_OK) {
        CHECK(m->n_files == 3);
        int fd = find_file(m, "onnx/model_ext.onnx_data"), fsec = find_file(m, "onnx/weights/second.bin");
        CHECK(fd > 0 && m->files[fd].size == 304 && m->files[fd].bytes_needed == 304);
        CHECK(fsec > 0 && m->files[fsec].size == 32 && m->files[fsec].bytes_needed == 32);
        const qw_onnx_tensor *a = qw_onnx_init_find(m, "A"), *bh = qw_onnx_init_find(m, "Bh");
        CHECK(a && a->file == fd && a->offset == 0 && !a->data);
        CHECK(bh && bh->file == fd && bh->offset == 272);
        float v[4];
        uint16_t h[2];
        CHECK(a && qw_onnx_tensor_read(&fs, m, a, 60 * 4, v, sizeof v, &err) == QW_OK && v[3] == 63.0f);
        CHECK(bh && qw_onnx_tensor_read(&fs, m, bh, 28, h, sizeof h, &err) == QW_OK && qw_f16_to_f32(h[1]) == 15.0f);
        const qw_onnx_node *c = find_node(m, "Constant");
        const qw_onnx_attr *cv = c ? qw_onnx_attr_find(c, "value") : NULL;
        CHECK(cv && cv->t && cv->t->file == fsec && cv->t->offset == 8 && !cv->t->data);
        int64_t iv[3];
        CHECK(cv && qw_onnx_tensor_read(&fs, m, cv->t, 0, iv, sizeof iv, &err) == QW_OK && iv[0] == 7 && iv[2] == 9);
        qw_onnx_free(m);
    }
    static const struct {
        const char *name;
        qw_status st;
        const char *in_msg;
    } bad[] = {
        {"onnx/bad_ext_past.onnx", QW_E_RANGE, "onnx/model_ext.onnx_data"},
        {"onnx/bad_ext_missing.onnx", QW_E_NOTFOUND, "onnx/nope.bin"},
        {"onnx/bad_ext_dotdot.onnx", QW_E_FORMAT, "onnx/bad_ext_dotdot.onnx"},
        {"onnx/bad_ext_abs.onnx", QW_E_FORMAT, "onnx/bad_ext_abs.onnx"},
        {"onnx/bad_ext_len.onnx", QW_E_FORMAT, "onnx/bad_ext_len.onnx"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = NULL;
        memset(&err, 0, sizeof err);
        st = qw_onnx_load(&fs, bad[i].name, &m, &err);
        CHECK(st == bad[i].st && m == NULL && strstr(err.msg, bad[i].in_msg), "%s: %d %s", bad[i].name, st, err.msg);
    }
    qw_fs_close(&fs);

    /* the same model in memory: missing and short data files */
    size_t n_onnx, n_data, n_second;
    uint8_t *onnx = slurp_data("ext/onnx/model_ext.onnx", &n_onnx);
    uint8_t *data = slurp_data("ext/onnx/model_ext.onnx_data", &n_data);
    uint8_t *second = slurp_data("ext/onnx/weights/second.bin", &n_second);
    for (int mode = 0; mode < 4; mode++) {
        memfs mf = {0};
        memfs_add(&mf, "onnx/model_ext.onnx", onnx, n_onnx);
        if (mode != 0) memfs_add(&mf, "onnx/model_ext.onnx_data", data, mode == 1 ? n_data - 1 : n_data);
        if (mode != 2) memfs_add(&mf, "onnx/weights/second.bin", second, mode == 3 ? 31 : n_second);
        qw_fs mfs = memfs_fs(&mf);
        m = NULL;
        memset(&err, 0, sizeof err);
        st = qw_onnx_load(&mfs, "onnx/model_ext.onnx", &m, &err);
        const char *want = mode <= 1 ? "onnx/model_ext.onnx_data" : "onnx/weights/second.bin";
        CHECK(st == (mode == 0 || mode == 2 ? QW_E_NOTFOUND : QW_E_RANGE) && m == NULL && strstr(err.msg, want),
              "mode %d: %d %s", mode, st, err.msg);
        if (mode == 1) CHECK(strstr(err.msg, "1 bytes missing") != NULL, "%s", err.msg);
    }
    free(onnx);
    free(data);
    free(second);
}

static void test_bad(const qw_fs *fs) {
    static const struct {
        const char *name;
        qw_status st;
        const char *in_msg;
    } bad[] = {
        {"bad_ir_high.onnx", QW_E_UNSUPPORTED, "IR version 12"},
        {"bad_ir_low.onnx", QW_E_UNSUPPORTED, "IR version 2"},
        {"bad_opset_high.onnx", QW_E_UNSUPPORTED, "opset 24"},
        {"bad_opset_low.onnx", QW_E_UNSUPPORTED, "opset 6"},
        {"bad_dtype.onnx", QW_E_UNSUPPORTED, "'c'"},
        {"bad_rawlen.onnx", QW_E_FORMAT, "'c'"},
        {"bad_values.onnx", QW_E_FORMAT, "'c'"},
        {"bad_sparse_used.onnx", QW_E_UNSUPPORTED, "sparse initializer 's'"},
        {"no_such_file.onnx", QW_E_NOTFOUND, "no_such_file.onnx"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qw_onnx_model *m = NULL;
        qw_error err = {0};
        qw_status st = qw_onnx_load(fs, bad[i].name, &m, &err);
        CHECK(st == bad[i].st && m == NULL && strstr(err.msg, bad[i].name) && strstr(err.msg, bad[i].in_msg),
              "%s: %d %s", bad[i].name, st, err.msg);
    }
    qw_onnx_model *m = NULL;
    qw_error err = {0};
    CHECK(qw_onnx_load(fs, "sparse_unused.onnx", &m, &err) == QW_OK, "%s", err.msg);
    qw_onnx_free(m);
    CHECK(qw_onnx_load(NULL, "x.onnx", &m, &err) == QW_E_ARG);
    qw_onnx_free(NULL);
}

/* ---- truncation and corruption: a status and a message naming the file, never a crash ---------- */

/* bytes is the .onnx at "m/model.onnx"; extra (may be NULL) holds its data files. */
static void cut_and_corrupt(const char *label, const uint8_t *bytes, size_t n, const memfs *extra, size_t stride) {
    qw_onnx_model *full = NULL;
    qw_error err = {0};
    memfs mf0 = {0};
    memfs_add(&mf0, "m/model.onnx", bytes, n);
    for (int i = 0; extra && i < extra->n; i++) memfs_add(&mf0, extra->names[i], extra->data[i], extra->size[i]);
    qw_fs fs0 = memfs_fs(&mf0);
    CHECK(qw_onnx_load(&fs0, "m/model.onnx", &full, &err) == QW_OK, "%s: %s", label, err.msg);
    if (!full) return;
    uint8_t *buf = malloc(n);
    for (size_t cut = 0; cut < n; cut += (cut < 64 ? 1 : stride)) {
        memfs mf = mf0;
        mf.size[0] = cut;
        qw_fs fs = memfs_fs(&mf);
        qw_onnx_model *m = NULL;
        memset(&err, 0, sizeof err);
        qw_status st = qw_onnx_load(&fs, "m/model.onnx", &m, &err);
        if (st == QW_OK) {
            /* only trailing model fields (opsets, metadata) can go without an error: the graph is whole */
            CHECK(m->n_nodes == full->n_nodes && m->n_inits == full->n_inits, "%s: cut at %zu loads a partial graph",
                  label, cut);
            qw_onnx_free(m);
        } else {
            CHECK(m == NULL && strstr(err.msg, "m/model.onnx"), "%s: cut at %zu: %s", label, cut, err.msg);
        }
    }
    static const uint8_t values[] = {0x00, 0xff, 0x80, 0x7f, 0x01, 0x0a};
    for (size_t pos = 0; pos < n; pos += (pos < 256 ? 1 : stride)) {
        for (size_t k = 0; k < sizeof values; k++) {
            memcpy(buf, bytes, n);
            if (buf[pos] == values[k]) continue;
            buf[pos] = values[k];
            memfs mf = mf0;
            mf.data[0] = buf;
            qw_fs fs = memfs_fs(&mf);
            qw_onnx_model *m = NULL;
            memset(&err, 0, sizeof err);
            qw_status st = qw_onnx_load(&fs, "m/model.onnx", &m, &err);
            if (st == QW_OK) {
                /* whatever loaded must be safe to walk and read */
                for (int i = 0; i < m->n_inits; i++) {
                    uint8_t tmp[16];
                    size_t len = m->inits[i].nbytes < sizeof tmp ? (size_t)m->inits[i].nbytes : sizeof tmp;
                    CHECK(qw_onnx_tensor_read(&fs, m, &m->inits[i], 0, tmp, len, &err) == QW_OK);
                }
                qw_onnx_free(m);
            } else {
                CHECK(m == NULL && err.msg[0] && st > QW_OK && st < QW_STATUS_COUNT, "%s: byte %zu = %u: %d %s", label,
                      pos, values[k], st, err.msg);
                CHECK(strstr(err.msg, "m/model.onnx") || strstr(err.msg, "m/"), "%s: byte %zu: %s", label, pos,
                      err.msg);
            }
        }
    }
    free(buf);
    qw_onnx_free(full);
}

static void test_cuts(void) {
    static const char *const seeds[] = {"tiny.onnx", "typed.onnx", "matmulnbits.onnx", "sparse_unused.onnx"};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        size_t n;
        uint8_t *b = slurp_data(seeds[i], &n);
        cut_and_corrupt(seeds[i], b, n, NULL, 1);
        free(b);
    }
    size_t n, nd, ns;
    uint8_t *b = slurp_data("ext/onnx/model_ext.onnx", &n);
    uint8_t *d = slurp_data("ext/onnx/model_ext.onnx_data", &nd);
    uint8_t *s = slurp_data("ext/onnx/weights/second.bin", &ns);
    memfs extra = {0};
    memfs_add(&extra, "m/model_ext.onnx_data", d, nd);
    memfs_add(&extra, "m/weights/second.bin", s, ns);
    cut_and_corrupt("model_ext.onnx", b, n, &extra, 1);
    free(b);
    free(d);
    free(s);
}

/* ---- a model with a big raw_data initializer: it is located, never read ------------------------ */

static size_t put_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    do {
        p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

static void test_big_raw(void) {
    const size_t big = (size_t)8 << 20; /* 8 MiB of weights, 2 M floats */
    uint8_t *buf = calloc(1, big + 4096);
    uint8_t tensor[64], graph[128], *p;
    size_t tn = 0, gn = 0, n = 0;
    /* TensorProto: dims 2097152, data_type 1, name "w", raw_data (header only; bytes follow) */
    tn += put_varint(tensor + tn, 1 << 3 | 0);
    tn += put_varint(tensor + tn, big / 4);
    tn += put_varint(tensor + tn, 2 << 3 | 0);
    tn += put_varint(tensor + tn, 1);
    tn += put_varint(tensor + tn, 8 << 3 | 2);
    tn += put_varint(tensor + tn, 1);
    tensor[tn++] = 'w';
    tn += put_varint(tensor + tn, 9 << 3 | 2);
    tn += put_varint(tensor + tn, big);
    /* GraphProto: initializer (5) */
    gn += put_varint(graph + gn, 5 << 3 | 2);
    gn += put_varint(graph + gn, tn + big);
    p = buf;
    n += put_varint(p + n, 1 << 3 | 0);
    n += put_varint(p + n, 8);
    n += put_varint(p + n, 8 << 3 | 2);
    n += put_varint(p + n, 2); /* opset_import { version: 17 } */
    n += put_varint(p + n, 2 << 3 | 0);
    n += put_varint(p + n, 17);
    n += put_varint(p + n, 7 << 3 | 2);
    n += put_varint(p + n, gn + tn + big);
    memcpy(p + n, graph, gn);
    n += gn;
    memcpy(p + n, tensor, tn);
    n += tn;
    size_t raw_at = n;
    for (size_t i = 0; i < big / 4; i++) {
        float f = (float)i;
        memcpy(p + n + 4 * i, &f, 4);
    }
    n += big;
    memfs mf = {0};
    memfs_add(&mf, "big.onnx", buf, n);
    qw_fs fs = memfs_fs(&mf);
    qw_onnx_model *m = NULL;
    qw_error err = {0};
    qw_status st = qw_onnx_load(&fs, "big.onnx", &m, &err);
    CHECK(st == QW_OK, "%s", err.msg);
    if (m) {
        CHECK(m->n_inits == 1 && m->inits[0].file == 0 && m->inits[0].offset == raw_at && m->inits[0].nbytes == big);
        CHECK(m->files[0].bytes_needed == n);
        CHECK(mf.max_read <= 64 * 1024 && mf.reads < 16, "reads %ld, largest %zu", mf.reads, mf.max_read);
        float v;
        CHECK(qw_onnx_tensor_read(&fs, m, &m->inits[0], 4 * 123456, &v, 4, &err) == QW_OK && v == 123456.0f);
        qw_onnx_free(m);
    }
    free(buf);
}

/* ---- the onnxruntime-genai fixture ------------------------------------------------------------ */

static void test_fixture(void) {
    const char *fx = getenv("QW_FIXTURES");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tiny-llama-genai-fp16", fx ? fx : "/work/shared/fixtures");
    qw_fs fs;
    qw_error err = {0};
    if (qw_fs_open_dir(dir, &fs, &err) != QW_OK) {
        CHECK(0, "fixture missing: %s", err.msg);
        return;
    }
    qw_onnx_model *m = NULL;
    qw_status st = qw_onnx_load(&fs, "model.onnx", &m, &err);
    CHECK(st == QW_OK, "%s", err.msg);
    if (st == QW_OK) {
        CHECK(m->ir_version == 7);
        CHECK(qw_onnx_opset_version(m, "") == 14 && qw_onnx_opset_version(m, "com.microsoft") == 1);
        CHECK(m->n_files == 2 && !strcmp(m->files[1].name, "model.onnx.data"));
        CHECK(m->files[1].size == 2130080 && m->files[1].bytes_needed <= m->files[1].size &&
              m->files[1].bytes_needed > 2000000);
        CHECK(m->n_inits == 23);
        int contrib = 0, mha = 0;
        for (int i = 0; i < m->n_nodes; i++) {
            if (!strcmp(m->nodes[i].domain, "com.microsoft")) contrib++;
            if (!strcmp(m->nodes[i].op_type, "MultiHeadAttention")) mha++;
        }
        CHECK(contrib == 10 && mha == 2);
        CHECK(m->n_inputs >= 7 && !strcmp(m->inputs[0].name, "input_ids") && m->inputs[0].dtype == QW_DT_I64);
        const qw_onnx_tensor *e = qw_onnx_init_find(m, "model.embed_tokens.weight");
        CHECK(e && e->file == 1 && e->offset == 0 && e->dtype == QW_DT_F16 && e->nbytes == 1024000);
        for (int i = 0; i < m->n_inits; i++) {
            const qw_onnx_tensor *t = &m->inits[i];
            CHECK(t->file == 1 && t->offset + t->nbytes <= m->files[1].size);
            uint8_t a[8], b[8];
            size_t len = t->nbytes < 8 ? (size_t)t->nbytes : 8;
            CHECK(qw_onnx_tensor_read(&fs, m, t, t->nbytes - len, a, len, &err) == QW_OK);
            CHECK(fs.read(fs.ctx, "model.onnx.data", t->offset + t->nbytes - len, b, len) == QW_OK &&
                  !memcmp(a, b, len));
        }
        /* Constant nodes: every value tensor has data or a locator */
        for (int i = 0; i < m->n_nodes; i++) {
            if (strcmp(m->nodes[i].op_type, "Constant")) continue;
            const qw_onnx_attr *v = qw_onnx_attr_find(&m->nodes[i], "value");
            CHECK(v && v->type == QW_ATTR_TENSOR && v->t && (v->t->data || v->t->file >= 0));
        }
        qw_onnx_free(m);
    }
    /* the fixture in memory, truncated and corrupted at a sample of positions */
    size_t n, nd;
    char path[1200];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    uint8_t *b = slurp(path, &n);
    snprintf(path, sizeof path, "%s/model.onnx.data", dir);
    uint8_t *d = slurp(path, &nd);
    memfs extra = {0};
    memfs_add(&extra, "m/model.onnx.data", d, nd);
    cut_and_corrupt("fixture", b, n, &extra, 97);
    free(b);
    free(d);
    qw_fs_close(&fs);
}

int main(void) {
    const char *src = getenv("QW_SOURCE_DIR");
    snprintf(data_dir, sizeof data_dir, "%s/tests/data/onnx", src ? src : ".");
    qw_fs fs;
    qw_error err = {0};
    if (qw_fs_open_dir(data_dir, &fs, &err) != QW_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_tiny(&fs);
    test_typed(&fs);
    test_bad(&fs);
    qw_fs_close(&fs);
    test_ext();
    test_cuts();
    test_big_raw();
    test_fixture();
    return qw_test_summary("test_onnx");
}
