/* qw_unicode.h - the Unicode the tokenizer needs: UTF-8 decode/encode (ill-formed input handled as the
 * Unicode "maximal subpart" practice that Rust's from_utf8_lossy and TextDecoder follow), character
 * classes of the Qwen2 pre-tokenizer (\p{L}, \p{N}, \s), the case folding of its (?i:...) group, and NFC.
 * The tables come from the Unicode Character Database at build time (tools/build/gen_unicode_tables.py). */
#ifndef QW_UNICODE_H
#define QW_UNICODE_H

#include <stddef.h>
#include <stdint.h>
#include "qwasm.h"

#define QW_UC_L 1u  /* general category L* */
#define QW_UC_N 2u  /* general category N* */
#define QW_UC_WS 4u /* White_Space property (\s in Rust regex and Oniguruma) */

#define QW_UC_BAD 0xFFFFFFFFu /* stored by qw_utf8_decode for an ill-formed sequence */

/* Class flags of a code point (QW_UC_L | QW_UC_N | QW_UC_WS, or 0). */
unsigned qw_uc_class(uint32_t cp);
/* Canonical combining class. */
int qw_uc_ccc(uint32_t cp);
/* Simple case folding restricted to what (?i:'s|'t|'re|'ve|'m|'ll|'d) needs: returns the lowercase ASCII
 * letter cp folds to (e.g. 'S' -> 's', U+017F LONG S -> 's'), else cp itself. */
uint32_t qw_uc_fold_ascii(uint32_t cp);

/* Decodes the character at s[0..n) (n >= 1). Returns its length (1..4) and the code point in *cp; for an
 * ill-formed sequence returns the length of its maximal subpart (>= 1), stores QW_UC_BAD, and sets
 * *truncated (when not NULL) to 1 if those bytes are a valid prefix cut by the end of the buffer. */
size_t qw_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp, int *truncated);
/* Encodes cp (<= 0x10FFFF) into out; returns 1..4. */
size_t qw_utf8_encode(uint32_t cp, unsigned char out[4]);

/* Copies s[0..n) with every ill-formed sequence replaced by U+FFFD (one per maximal subpart). *out is
 * malloc'd, NUL-terminated. */
qw_status qw_utf8_lossy(const unsigned char *s, size_t n, char **out, size_t *out_len, qw_error *err);

/* 1 when s[0..n) is certainly in NFC (NFC_Quick_Check = Yes and combining marks in order). */
int qw_nfc_quick_check(const char *s, size_t n);
/* NFC normalisation of s[0..n) (canonical decomposition, canonical ordering, canonical composition,
 * Hangul algorithmically). Ill-formed bytes pass through unchanged and block composition. *out is
 * malloc'd, NUL-terminated. */
qw_status qw_nfc(const char *s, size_t n, char **out, size_t *out_len, qw_error *err);

#endif /* QW_UNICODE_H */
