/* qw_dtype.h - element types (numbered as ONNX TensorProto.DataType) and fp16/bf16 conversion. */
#ifndef QW_DTYPE_H
#define QW_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum qw_dtype {
    QW_DT_UNDEFINED = 0,
    QW_DT_F32 = 1,
    QW_DT_U8 = 2,
    QW_DT_I8 = 3,
    QW_DT_U16 = 4,
    QW_DT_I16 = 5,
    QW_DT_I32 = 6,
    QW_DT_I64 = 7,
    QW_DT_STRING = 8,
    QW_DT_BOOL = 9,
    QW_DT_F16 = 10,
    QW_DT_F64 = 11,
    QW_DT_U32 = 12,
    QW_DT_U64 = 13,
    QW_DT_BF16 = 16,
} qw_dtype;

/* Bytes per element; 0 for UNDEFINED, STRING and unknown values. */
size_t qw_dtype_size(int dt);
/* ONNX name ("float", "float16", "int64", ...); "unknown" for values qwasm does not know. */
const char *qw_dtype_name(int dt);

/* IEEE half <-> float, round-to-nearest-even, as onnxruntime's MLFloat16 does. */
static inline float qw_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while ((man & 0x400u) == 0) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ffu;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t qw_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
    if (absx >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00u);
    if (absx < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (absx < 0x33000000u) return (uint16_t)sign;
        uint32_t e = absx >> 23;                     /* 102..112 */
        uint32_t m = (absx & 0x7fffffu) | 0x800000u; /* 24 significant bits */
        uint32_t shift = 126 - e;                    /* value / 2^-24 == m >> shift */
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        uint32_t r = m >> shift;
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = absx + 0xc8000fffu + ((absx >> 13) & 1u); /* rebias exponent, round to nearest even */
    return (uint16_t)(sign | (r >> 13));
}

static inline float qw_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Round a float through fp16 and back, as fp16 kernels do when they store a result. */
static inline float qw_round_f16(float f) { return qw_f16_to_f32(qw_f32_to_f16(f)); }

#endif /* QW_DTYPE_H */
