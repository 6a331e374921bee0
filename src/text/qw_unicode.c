/* qw_unicode.c - UTF-8, character classes and NFC over the generated tables (qw_unicode_tables.c). */
#include <stdlib.h>
#include <string.h>
#include "qw_unicode.h"
#include "qw_unicode_tables.h"

/* ---- table lookups -------------------------------------------------------------------------- */

static int range_find(const qw_uc_range *r, int n, uint32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) >> 1;
        if (cp < r[mid].lo)
            hi = mid - 1;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return r[mid].v;
    }
    return 0;
}

/* ASCII is most of the text the tokenizer sees: a direct table avoids the binary search. */
static unsigned char ascii_class[128];
static int ascii_ready;

static void ascii_init(void) {
    /* Racing threads compute the same bytes, so a benign double init is harmless. */
    for (uint32_t c = 0; c < 128; c++)
        ascii_class[c] = (unsigned char)range_find(qw_uc_class_ranges, QW_UC_CLASS_RANGES_N, c);
    ascii_ready = 1;
}

unsigned qw_uc_class(uint32_t cp) {
    if (cp < 128) {
        if (!ascii_ready) ascii_init();
        return ascii_class[cp];
    }
    if (cp == QW_UC_BAD) return 0;
    return (unsigned)range_find(qw_uc_class_ranges, QW_UC_CLASS_RANGES_N, cp);
}

int qw_uc_ccc(uint32_t cp) {
    if (cp < 0x300 || cp == QW_UC_BAD) return 0;
    return range_find(qw_uc_ccc_ranges, QW_UC_CCC_RANGES_N, cp);
}

uint32_t qw_uc_fold_ascii(uint32_t cp) {
    if (cp >= 'A' && cp <= 'Z') return cp + 32;
    for (int i = 0; i < QW_UC_FOLD_N; i++)
        if (qw_uc_fold[i].a == cp) return qw_uc_fold[i].b;
    return cp;
}

static int nfc_qc(uint32_t cp) {
    if (cp < 0x300) return 0;
    return range_find(qw_uc_nfc_qc_ranges, QW_UC_NFC_QC_RANGES_N, cp);
}

/* ---- UTF-8 ---------------------------------------------------------------------------------- */

size_t qw_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp, int *truncated) {
    if (truncated) *truncated = 0;
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t need;
    unsigned lo = 0x80, hi = 0xBF; /* range of the first continuation byte (Unicode Table 3-7) */
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *cp = QW_UC_BAD;
        return 1;
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= n) {
            *cp = QW_UC_BAD;
            if (truncated) *truncated = 1;
            return i;
        }
        unsigned b = s[i];
        if (b < lo || b > hi) {
            *cp = QW_UC_BAD;
            return i;
        }
        lo = 0x80;
        hi = 0xBF;
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return need;
}

size_t qw_utf8_encode(uint32_t cp, unsigned char out[4]) {
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

qw_status qw_utf8_lossy(const unsigned char *s, size_t n, char **out, size_t *out_len, qw_error *err) {
    /* Worst case: every byte becomes U+FFFD (3 bytes). */
    char *o = malloc(n * 3 + 1);
    if (!o) return qw_error_set(err, QW_E_NOMEM, "qw_unicode: out of memory decoding %zu bytes of UTF-8", n);
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = qw_utf8_decode(s + i, n - i, &cp, NULL);
        if (cp == QW_UC_BAD) {
            memcpy(o + w, "\xEF\xBF\xBD", 3);
            w += 3;
        } else {
            memcpy(o + w, s + i, l);
            w += l;
        }
        i += l;
    }
    o[w] = 0;
    *out = o;
    if (out_len) *out_len = w;
    return QW_OK;
}

/* ---- NFC ------------------------------------------------------------------------------------ */

#define HANGUL_S 0xAC00u
#define HANGUL_L 0x1100u
#define HANGUL_V 0x1161u
#define HANGUL_T 0x11A7u
#define HANGUL_LCOUNT 19u
#define HANGUL_VCOUNT 21u
#define HANGUL_TCOUNT 28u
#define HANGUL_NCOUNT (HANGUL_VCOUNT * HANGUL_TCOUNT)
#define HANGUL_SCOUNT (HANGUL_LCOUNT * HANGUL_NCOUNT)

/* Ill-formed bytes travel through the code point buffer tagged with this bit (no real cp has it). */
#define RAW_BYTE 0x80000000u

int qw_nfc_quick_check(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    int last = 0;
    for (size_t i = 0; i < n;) {
        if (u[i] < 0x80) {
            last = 0;
            i++;
            continue;
        }
        uint32_t cp;
        i += qw_utf8_decode(u + i, n - i, &cp, NULL);
        if (cp == QW_UC_BAD) {
            last = 0;
            continue;
        }
        int c = qw_uc_ccc(cp);
        if (c && last > c) return 0;
        if (nfc_qc(cp)) return 0; /* No or Maybe: normalise to be sure */
        last = c;
    }
    return 1;
}

static const qw_uc_triple *decomp_find(uint32_t cp) {
    int lo = 0, hi = QW_UC_DECOMP_N - 1;
    while (lo <= hi) {
        int mid = (lo + hi) >> 1;
        if (cp < qw_uc_decomp[mid].a)
            hi = mid - 1;
        else if (cp > qw_uc_decomp[mid].a)
            lo = mid + 1;
        else
            return &qw_uc_decomp[mid];
    }
    return NULL;
}

static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= HANGUL_L && a < HANGUL_L + HANGUL_LCOUNT && b >= HANGUL_V && b < HANGUL_V + HANGUL_VCOUNT)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_VCOUNT + (b - HANGUL_V)) * HANGUL_TCOUNT;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_SCOUNT && (a - HANGUL_S) % HANGUL_TCOUNT == 0 && b > HANGUL_T &&
        b < HANGUL_T + HANGUL_TCOUNT)
        return a + (b - HANGUL_T);
    int lo = 0, hi = QW_UC_COMP_N - 1;
    while (lo <= hi) {
        int mid = (lo + hi) >> 1;
        const qw_uc_triple *t = &qw_uc_comp[mid];
        if (a < t->a || (a == t->a && b < t->b))
            hi = mid - 1;
        else if (a > t->a || b > t->b)
            lo = mid + 1;
        else
            return t->c;
    }
    return 0;
}

static int ccc_of(uint32_t v) { return (v & RAW_BYTE) ? 0 : qw_uc_ccc(v); }

/* Full canonical decomposition of cp appended to buf (capacity checked by the caller: <= 4 per cp
 * suffices, the longest canonical decomposition in Unicode 15 has 4 code points). */
static size_t decompose(uint32_t cp, uint32_t *buf) {
    if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_SCOUNT) {
        uint32_t si = cp - HANGUL_S;
        buf[0] = HANGUL_L + si / HANGUL_NCOUNT;
        buf[1] = HANGUL_V + (si % HANGUL_NCOUNT) / HANGUL_TCOUNT;
        if (si % HANGUL_TCOUNT) {
            buf[2] = HANGUL_T + si % HANGUL_TCOUNT;
            return 3;
        }
        return 2;
    }
    const qw_uc_triple *d = (cp >= 0xC0) ? decomp_find(cp) : NULL;
    if (!d) {
        buf[0] = cp;
        return 1;
    }
    size_t k = decompose(d->b, buf);
    if (d->c) k += decompose(d->c, buf + k);
    return k;
}

qw_status qw_nfc(const char *s, size_t n, char **out, size_t *out_len, qw_error *err) {
    const unsigned char *u = (const unsigned char *)s;
    uint32_t *cps = malloc((n * 4 + 4) * sizeof *cps);
    if (!cps) return qw_error_set(err, QW_E_NOMEM, "qw_unicode: out of memory normalising %zu bytes", n);
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = qw_utf8_decode(u + i, n - i, &cp, NULL);
        if (cp == QW_UC_BAD) {
            for (size_t k = 0; k < l; k++) cps[m++] = RAW_BYTE | u[i + k];
        } else {
            m += decompose(cp, cps + m);
        }
        i += l;
    }
    /* Canonical ordering: a stable insertion sort of each run of non-starters by combining class. */
    for (size_t i = 1; i < m; i++) {
        int c = ccc_of(cps[i]);
        if (!c) continue;
        size_t j = i;
        uint32_t v = cps[i];
        while (j > 0 && ccc_of(cps[j - 1]) > c) {
            cps[j] = cps[j - 1];
            j--;
        }
        cps[j] = v;
    }
    /* Canonical composition (UAX #15): a character joins the last starter unless blocked. */
    size_t w = 0;
    if (m) {
        size_t starter = 0;
        int last = ccc_of(cps[0]) ? 256 : 0;
        w = 1;
        for (size_t i = 1; i < m; i++) {
            uint32_t ch = cps[i];
            int c = ccc_of(ch);
            uint32_t comp = 0;
            if (!(ch & RAW_BYTE) && !(cps[starter] & RAW_BYTE) && (last < c || last == 0) && last != 256)
                comp = compose_pair(cps[starter], ch);
            if (comp && (last < c || last == 0)) {
                cps[starter] = comp;
            } else {
                if (c == 0) starter = w;
                last = c;
                cps[w++] = ch;
            }
        }
    }
    unsigned char *o = malloc(w * 4 + 1);
    if (!o) {
        free(cps);
        return qw_error_set(err, QW_E_NOMEM, "qw_unicode: out of memory normalising %zu bytes", n);
    }
    size_t ol = 0;
    for (size_t i = 0; i < w; i++) {
        if (cps[i] & RAW_BYTE)
            o[ol++] = (unsigned char)(cps[i] & 0xFF);
        else
            ol += qw_utf8_encode(cps[i], o + ol);
    }
    o[ol] = 0;
    free(cps);
    *out = (char *)o;
    if (out_len) *out_len = ol;
    return QW_OK;
}
