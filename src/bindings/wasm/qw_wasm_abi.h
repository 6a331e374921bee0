/* qw_wasm_abi.h - the structs of wasm memory that the JS glue reads itself (js/worker/qwasm-worker.js), at the offsets
 * tools/build/gen_abi_js.mjs has emcc compute into js/worker/qwasm-abi.js (with qwasm.h's status and event enums). Pointers
 * are int32_t: the layout is the same for every wasm32 build. */
#ifndef QW_WASM_ABI_H
#define QW_WASM_ABI_H

#include <stdint.h>

/* The event of the last qw_wasm_gen_next (qw_gen_event with pointers as wasm addresses). Owned by the generator. */
typedef struct qw_wasm_event {
    int32_t kind, id, n_prompt, n_prompt_done, n_generated;
    int32_t text, text_len, stop_reason; /* text: UTF-8 bytes; stop_reason: a C string, 0 unless DONE */
    double prefill_ms, decode_ms, step_ms;
    int32_t feed_ids, n_feed, n_past;                /* QW_GEN_FEED, external decoder */
    int32_t spec_drafted, spec_accepted, spec_steps; /* speculative decoding, this generation */
    int32_t draft_drafted, draft_accepted;           /* the draft model's part of them */
    double draft_ms;                                 /* the draft model's time */
} qw_wasm_event;

#endif /* QW_WASM_ABI_H */
