/* qw_onnx.h - the ONNX model as qwasm reads it: graph structure in memory, weights as locators.
 *
 * The reader (qw_onnx.c) parses the protobuf wire format from a qw_fs in buffered pieces. Large
 * raw_data fields are never read: each initializer records where its bytes are (file, offset,
 * length), whether inside the .onnx file or in external data files. Small typed fields (float_data,
 * int64_data, ...) are decoded into memory owned by the model.
 * Everything below is owned by the qw_onnx_model and freed by qw_onnx_free.
 *
 * Invariants after a successful qw_onnx_load:
 *  - Every char* (names, op_type, domain, inputs[], outputs[], attribute name/s/strings[]) is non-NULL and
 *    NUL-terminated; absent strings are "". Node domain "ai.onnx" is stored as "". Omitted optional inputs
 *    are "". dims[].param is NULL when the dim has no dim_param.
 *  - A tensor (initializer, Constant/ConstantOfShape `value` attribute, TENSORS element) has either
 *    data != NULL (typed fields decoded to nbytes of little-endian elements; fp16/bf16 as uint16 bits,
 *    bool as 0/1 bytes; file == -1) or file >= 0 and data == NULL (raw_data in the .onnx: file 0; external
 *    data: file >= 1 or 0), offset = first byte. Bytes in files are not aligned: copy them with
 *    qw_onnx_tensor_read. STRING tensors carry no bytes (nbytes 0, data non-NULL, file -1).
 *  - files[0] is the .onnx; external locations are resolved against its folder and stored as qw_fs names
 *    ("onnx/model_q4f16.onnx_data"). Each file exists and size >= bytes_needed (checked at load).
 *  - Attributes of type GRAPH(S), SPARSE_TENSOR(S), TYPE_PROTO(S) are recorded by type (and n) only.
 */
#ifndef QW_ONNX_H
#define QW_ONNX_H

#include "qwasm.h"
#include "qw_dtype.h"

#define QW_MAX_DIMS 8

/* A tensor's metadata and where its bytes are. */
typedef struct qw_onnx_tensor {
    char *name;
    int32_t dtype; /* qw_dtype */
    int32_t ndim;
    int64_t dims[QW_MAX_DIMS];
    int64_t numel;   /* product of dims (1 for a scalar) */
    uint64_t nbytes; /* numel * qw_dtype_size(dtype) */
    int32_t file;    /* index into qw_onnx_model.files, or -1 when data != NULL */
    uint64_t offset; /* byte offset of the little-endian data in that file */
    void *data;      /* decoded typed-field data (nbytes), or NULL when in a file */
} qw_onnx_tensor;

typedef enum qw_onnx_attr_type {
    QW_ATTR_UNDEFINED = 0,
    QW_ATTR_FLOAT = 1,
    QW_ATTR_INT = 2,
    QW_ATTR_STRING = 3,
    QW_ATTR_TENSOR = 4,
    QW_ATTR_GRAPH = 5,
    QW_ATTR_FLOATS = 6,
    QW_ATTR_INTS = 7,
    QW_ATTR_STRINGS = 8,
    QW_ATTR_TENSORS = 9,
    QW_ATTR_GRAPHS = 10,
    QW_ATTR_SPARSE_TENSOR = 11,
    QW_ATTR_SPARSE_TENSORS = 12,
    QW_ATTR_TYPE_PROTO = 13,
    QW_ATTR_TYPE_PROTOS = 14
} qw_onnx_attr_type;

typedef struct qw_onnx_attr {
    char *name;
    int32_t type; /* qw_onnx_attr_type */
    float f;      /* FLOAT */
    int64_t i;    /* INT */
    char *s;      /* STRING (NUL-terminated copy; s_len excludes the NUL) */
    size_t s_len;
    size_t n; /* element count of FLOATS / INTS / STRINGS / TENSORS */
    float *floats;
    int64_t *ints;
    char **strings;
    qw_onnx_tensor *t; /* TENSOR (one) or TENSORS (n) */
} qw_onnx_attr;

typedef struct qw_onnx_node {
    char *name;
    char *op_type;
    char *domain; /* "" for the default ai.onnx domain */
    int32_t n_inputs, n_outputs, n_attrs;
    char **inputs; /* "" marks an omitted optional input */
    char **outputs;
    qw_onnx_attr *attrs;
} qw_onnx_node;

typedef struct qw_onnx_dim {
    int64_t value; /* >= 0 when known, -1 when symbolic or unknown */
    char *param;   /* dim_param ("batch_size", "sequence_length") or NULL */
} qw_onnx_dim;

typedef struct qw_onnx_value_info {
    char *name;
    int32_t dtype; /* elem_type of a tensor type; 0 when absent */
    int32_t has_shape;
    int32_t ndim;
    qw_onnx_dim dims[QW_MAX_DIMS];
} qw_onnx_value_info;

typedef struct qw_onnx_opset {
    char *domain; /* "" (or "ai.onnx") is the default domain */
    int64_t version;
} qw_onnx_opset;

/* A file the model's bytes live in. files[0] is the .onnx file itself. */
typedef struct qw_onnx_file {
    char *name;            /* as passed to qw_fs (relative to the model folder) */
    uint64_t size;         /* from qw_fs.size at load */
    uint64_t bytes_needed; /* the end of the furthest locator into this file */
} qw_onnx_file;

typedef struct qw_onnx_model {
    int64_t ir_version;
    char *producer_name, *producer_version, *domain, *doc_string;
    int64_t model_version;
    int32_t n_opsets;
    qw_onnx_opset *opsets;
    int32_t n_meta;
    char **meta_keys, **meta_values;

    char *graph_name;
    int32_t n_nodes;
    qw_onnx_node *nodes;
    int32_t n_inits;
    qw_onnx_tensor *inits;
    int32_t n_inputs; /* graph.input as written (may include initializers in old IRs) */
    qw_onnx_value_info *inputs;
    int32_t n_outputs;
    qw_onnx_value_info *outputs;
    int32_t n_value_info;
    qw_onnx_value_info *value_info;

    int32_t n_files;
    qw_onnx_file *files;

    void *arena; /* private: the reader's allocations */
} qw_onnx_model;

/* Opens onnx_name through fs and parses it. Reads the file in buffered pieces (never whole), checks
 * every locator against the size of its file (a missing or short data file is an error naming it and
 * the bytes it lacks), and refuses IR versions outside 3..11 and default-domain opsets outside 7..23.
 * On success *out is owned by the caller (qw_onnx_free). */
qw_status qw_onnx_load(const qw_fs *fs, const char *onnx_name, qw_onnx_model **out, qw_error *err);
void qw_onnx_free(qw_onnx_model *m);

/* The opset version imported for a domain ("" and "ai.onnx" are the same), or -1 when not imported. */
int64_t qw_onnx_opset_version(const qw_onnx_model *m, const char *domain);

/* An attribute of a node by name, or NULL. */
const qw_onnx_attr *qw_onnx_attr_find(const qw_onnx_node *n, const char *name);

/* An initializer by name (linear search), or NULL. */
const qw_onnx_tensor *qw_onnx_init_find(const qw_onnx_model *m, const char *name);

/* Reads len bytes at byte offset off within tensor t's data (decoded or in its file) into dst. */
qw_status qw_onnx_tensor_read(const qw_fs *fs, const qw_onnx_model *m, const qw_onnx_tensor *t, uint64_t off, void *dst,
                              size_t len, qw_error *err);

#endif /* QW_ONNX_H */
