/* qw_speculate.c - prompt-lookup drafts and the 'auto' policy (see qw_speculate.h). */
#include <string.h>
#include "qwasm.h"
#include "qw_speculate.h"

#define QW_SPEC_NGRAM_MAX 4
#define QW_SPEC_NGRAM_MIN 2       /* a one-token key matches almost anywhere: its drafts are mostly rejected */
#define QW_SPEC_AUTO_WINDOW 16    /* drafted tokens per acceptance check */
#define QW_SPEC_AUTO_MIN_RATE 0.2 /* below it a verify step (about 1.3 plain steps on the 1.5B) does not pay */
#define QW_SPEC_PAUSE_MIN 16
#define QW_SPEC_PAUSE_MAX 256

void qw_spec_init(qw_spec *s, int mode, int max_draft) {
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->max_draft = max_draft < 1 ? 1 : max_draft > QW_SPEC_MAX_DRAFT ? QW_SPEC_MAX_DRAFT : max_draft;
    s->cur_draft = s->max_draft;
    s->ngram_max = QW_SPEC_NGRAM_MAX;
    s->ngram_min = QW_SPEC_NGRAM_MIN;
    s->pause = QW_SPEC_PAUSE_MIN;
}

int qw_spec_room(const qw_spec *s, int max) {
    if (s->mode == QW_SPEC_OFF || s->paused_left > 0 || max < 1) return 0;
    return max > s->cur_draft ? s->cur_draft : max;
}

int qw_spec_draft(qw_spec *s, const int32_t *hist, int n, int32_t *draft, int max) {
    if ((max = qw_spec_room(s, max)) < 1) return 0;
    for (int k = s->ngram_max; k >= s->ngram_min; k--) {
        if (n <= k) continue;
        const int32_t *key = hist + n - k;
        /* the latest earlier occurrence: the text being copied is usually the one just before */
        for (int j = n - k - 1; j >= 0; j--) {
            if (hist[j] != key[0] || memcmp(hist + j, key, (size_t)k * sizeof *key)) continue;
            int len = n - (j + k);
            if (len > max) len = max;
            memcpy(draft, hist + j + k, (size_t)len * sizeof *draft);
            return len;
        }
    }
    return 0;
}

void qw_spec_record(qw_spec *s, int drafted, int accepted) {
    s->drafted += drafted;
    s->accepted += accepted;
    s->steps++;
    /* draft length: back to what was accepted (plus one) after a miss, doubled after a full match */
    if (accepted == drafted)
        s->cur_draft = s->cur_draft * 2 > s->max_draft ? s->max_draft : s->cur_draft * 2;
    else
        s->cur_draft = accepted + 1;
    if (s->mode != QW_SPEC_AUTO) return;
    s->win_drafted += drafted;
    s->win_accepted += accepted;
    if (s->win_drafted < QW_SPEC_AUTO_WINDOW) return;
    if (s->win_accepted < QW_SPEC_AUTO_MIN_RATE * s->win_drafted) {
        s->paused_left = s->pause;
        s->pause = s->pause * 2 > QW_SPEC_PAUSE_MAX ? QW_SPEC_PAUSE_MAX : s->pause * 2;
    } else {
        s->pause = QW_SPEC_PAUSE_MIN;
    }
    s->win_drafted = s->win_accepted = 0;
}

void qw_spec_plain_step(qw_spec *s) {
    if (s->paused_left > 0) s->paused_left--;
}
