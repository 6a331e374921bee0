/* qw_tokenizer.h - byte-level BPE tokenizers (GPT-2 style, as Qwen2/Qwen2.5 use) read from a Hugging Face
 * tokenizer.json: added tokens, NFC normaliser, the Qwen2 pre-tokenizer regex (a hand-written matcher
 * with the regex's exact semantics), byte-level mapping, BPE merges by rank; and decoding, whole or
 * streamed one id at a time. Other tokenizer kinds (SentencePiece-style Metaspace / byte_fallback, other
 * pre-tokenizer regexes) are rejected with QW_E_UNSUPPORTED, so a model can still run on raw ids. */
#ifndef QW_TOKENIZER_H
#define QW_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "qwasm.h"

typedef struct qw_tokenizer qw_tokenizer;

/* Parses tokenizer.json text (json[0..len), need not be NUL-terminated). name is the file name used in
 * error messages (NULL: "tokenizer.json"). */
qw_status qw_tokenizer_load_json(const char *json, size_t len, const char *name, qw_tokenizer **out, qw_error *err);
/* Reads name (NULL: "tokenizer.json") from fs and parses it. */
qw_status qw_tokenizer_load_fs(const qw_fs *fs, const char *name, qw_tokenizer **out, qw_error *err);
void qw_tokenizer_free(qw_tokenizer *t);

/* Optional: reads tokenizer_config.json text for eos_token / pad_token (strings or {"content": ...}). */
qw_status qw_tokenizer_apply_config_json(qw_tokenizer *t, const char *json, size_t len, const char *name,
                                         qw_error *err);

/* Encodes UTF-8 text: added tokens (special or not) are matched first, longest first; the rest is
 * normalised, pre-tokenized and BPE-encoded. Ill-formed UTF-8 is encoded byte by byte. *ids is
 * malloc'd (free() it). Not thread-safe: t holds a word cache. */
qw_status qw_tokenizer_encode(qw_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n, qw_error *err);
/* Decodes ids to UTF-8 text (ill-formed byte sequences become U+FFFD as Hugging Face's decode does).
 * skip_special drops special added tokens. *text is malloc'd, NUL-terminated. */
qw_status qw_tokenizer_decode(const qw_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char **text,
                              size_t *text_len, qw_error *err);

/* Id of a token given by its text ("<|im_end|>", " hello"): added tokens first, then the vocabulary;
 * -1 when there is none. */
int32_t qw_tokenizer_token_id(const qw_tokenizer *t, const char *text);
/* The bytes of one id (raw, not byte-level encoded); NULL when the id has no token. */
const unsigned char *qw_tokenizer_token_bytes(const qw_tokenizer *t, int32_t id, size_t *len);
/* 1 when id is a special added token (<|endoftext|>, <|im_start|>, ...). */
int qw_tokenizer_is_special(const qw_tokenizer *t, int32_t id);
/* Largest id + 1 (vocabulary and added tokens). */
int32_t qw_tokenizer_n_tokens(const qw_tokenizer *t);
/* eos: tokenizer_config.json's eos_token when applied, else "<|im_end|>", else "<|endoftext|>", else -1.
 * (generation_config.json's eos_token_id, when present, is the authority for generation.) */
int32_t qw_tokenizer_eos_id(const qw_tokenizer *t);
/* pad: tokenizer_config.json's pad_token, else "<|endoftext|>", else -1. */
int32_t qw_tokenizer_pad_id(const qw_tokenizer *t);

/* ---- streaming decode: one id in, the new complete UTF-8 out ----------------------------------- */

/* Holds back the bytes of a character split across tokens until it is complete; an ill-formed sequence
 * becomes U+FFFD as soon as it is known to be ill-formed. The concatenation of everything returned by
 * push + flush equals qw_tokenizer_decode of all the ids. */
typedef struct qw_detok_stream {
    const qw_tokenizer *tok;
    int skip_special;
    unsigned char pend[4]; /* an incomplete UTF-8 prefix from earlier tokens */
    int npend;
    char *buf; /* the last returned text (owned) */
    size_t cap;
} qw_detok_stream;

void qw_detok_stream_init(qw_detok_stream *s, const qw_tokenizer *t, int skip_special);
/* Adds id; *text (NUL-terminated, valid until the next call) is the new complete text, maybe empty. */
qw_status qw_detok_stream_push(qw_detok_stream *s, int32_t id, const char **text, size_t *len, qw_error *err);
/* At the end: the held-back bytes (as U+FFFD) if any. */
qw_status qw_detok_stream_flush(qw_detok_stream *s, const char **text, size_t *len, qw_error *err);
void qw_detok_stream_free(qw_detok_stream *s);

#endif /* QW_TOKENIZER_H */
