/* qw_status.c - status names, error messages, dtype names and build information. */
#include <stdarg.h>
#include <stdio.h>
#include "qwasm.h"
#include "qw_kernels.h"
#include "qw_dtype.h"

#ifndef QW_THREADS
#define QW_THREADS 0
#endif
#ifndef QW_TARGET_NAME
#define QW_TARGET_NAME "native"
#endif
#if QW_THREADS && !defined(__EMSCRIPTEN__) && !defined(__wasi__)
#include <unistd.h>
#endif
#if defined(__EMSCRIPTEN__) && QW_THREADS
#include <emscripten/threading.h>
#endif

static const char *const status_names[QW_STATUS_COUNT] = {
    [QW_OK] = "ok",
    [QW_E_ARG] = "invalid argument",
    [QW_E_IO] = "read error",
    [QW_E_NOTFOUND] = "not found",
    [QW_E_FORMAT] = "corrupt or truncated input",
    [QW_E_UNSUPPORTED] = "unsupported",
    [QW_E_NOMEM] = "out of memory",
    [QW_E_RANGE] = "out of range",
    [QW_E_CONTEXT] = "context length exceeded",
    [QW_E_ABORTED] = "aborted",
    [QW_E_INTERNAL] = "internal error",
};

const char *qw_status_str(qw_status s) {
    if ((unsigned)s >= QW_STATUS_COUNT || !status_names[s]) return "unknown status";
    return status_names[s];
}

qw_status qw_error_set(qw_error *err, qw_status status, const char *fmt, ...) {
    if (err) {
        err->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->file[0] = '\0';
    }
    return status;
}

qw_status qw_error_file(qw_error *err, const char *file, qw_status st) {
    if (err && st != QW_OK && file && !err->file[0]) snprintf(err->file, sizeof err->file, "%s", file);
    return st;
}

size_t qw_dtype_size(int dt) {
    switch (dt) {
    case QW_DT_F32:
    case QW_DT_I32:
    case QW_DT_U32: return 4;
    case QW_DT_U8:
    case QW_DT_I8:
    case QW_DT_BOOL: return 1;
    case QW_DT_U16:
    case QW_DT_I16:
    case QW_DT_F16:
    case QW_DT_BF16: return 2;
    case QW_DT_I64:
    case QW_DT_U64:
    case QW_DT_F64: return 8;
    default: return 0;
    }
}

const char *qw_dtype_name(int dt) {
    switch (dt) {
    case QW_DT_F32: return "float";
    case QW_DT_U8: return "uint8";
    case QW_DT_I8: return "int8";
    case QW_DT_U16: return "uint16";
    case QW_DT_I16: return "int16";
    case QW_DT_I32: return "int32";
    case QW_DT_I64: return "int64";
    case QW_DT_STRING: return "string";
    case QW_DT_BOOL: return "bool";
    case QW_DT_F16: return "float16";
    case QW_DT_F64: return "double";
    case QW_DT_U32: return "uint32";
    case QW_DT_U64: return "uint64";
    case QW_DT_BF16: return "bfloat16";
    default: return "unknown";
    }
}

void qw_get_build_info(qw_build_info *out) {
    out->version = QW_VERSION_STRING;
    out->target = QW_TARGET_NAME;
#if defined(__wasm_simd128__) || defined(__AVX2__) || defined(__SSE2__) || defined(__ARM_NEON)
    out->simd = 1;
#else
    out->simd = 0;
#endif
#if defined(__wasm_relaxed_simd__) || defined(QW_RELAXED_SIMD)
    out->relaxed_simd = 1;
#else
    out->relaxed_simd = 0;
#endif
    out->threads = QW_THREADS ? 1 : 0;
    out->dot_add = qw_kernels()->dot_add;
    out->kernels = qw_kernels()->name;
    out->max_threads = 1;
#if QW_THREADS && defined(__EMSCRIPTEN__)
    out->max_threads = emscripten_num_logical_cores();
#elif QW_THREADS && !defined(__wasi__)
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    out->max_threads = n > 0 ? (int)n : 1;
#endif
}

const char *qw_build_info_json(void) {
    static char buf[256];
    qw_build_info bi;
    qw_get_build_info(&bi);
    snprintf(buf, sizeof buf,
             "{\"version\":\"%s\",\"target\":\"%s\",\"simd\":%s,\"relaxed_simd\":%s,\"threads\":%s,"
             "\"max_threads\":%d,\"dot_add\":%s,\"kernels\":\"%s\"}",
             bi.version, bi.target, bi.simd ? "true" : "false", bi.relaxed_simd ? "true" : "false",
             bi.threads ? "true" : "false", bi.max_threads, bi.dot_add ? "true" : "false", bi.kernels);
    return buf;
}
