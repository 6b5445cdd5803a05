/*
 * autointerp_int — what the files of the autointerp evaluation share among themselves
 * (autointerp.c, autointerp_saebench.c, autointerp_delphi.c, autointerp_run.c,
 * autointerp_report.c): the protocols' constants and internal helpers.
 *
 * Included by: the autointerp files in evals/ only.
 */
#ifndef EV_EVALS_AUTOINTERP_INT_H
#define EV_EVALS_AUTOINTERP_INT_H

#include <stdint.h>

#include "base/json.h"
#include "base/util.h"
#include "evals/autointerp.h"

#define SB_HALF    10 /* saebench: tokens each side of the centre */
#define SB_W       (2 * SB_HALF + 1)
#define SB_TOP_GEN 10
#define SB_TOP_SC  2
#define SB_IW_GEN  5
#define SB_IW_SC   2
#define SB_RAND    10
#define DL_W       32 /* delphi window */
#define DL_EXPL    20 /* top windows shown to the explainer */
#define DL_Q       10 /* quantiles */
#define DL_PER_Q   5
#define DL_NEG     50
#define DL_PER_PROMPT 5
#define DL_SIM_TOP 5
#define DL_SIM_NEG 5

/* ---- the window sampling both protocols use ---- */

struct cand {
    int   seq, pos;
    float a;
};

static inline int cmp_cand_desc(const void *x, const void *y) {
    const struct cand *a = x, *b = y;
    if (a->a != b->a) return a->a < b->a ? 1 : -1;
    if (a->seq != b->seq) return a->seq - b->seq;
    return a->pos - b->pos;
}

/* 1 when a window of W tokens centred at (seq, pos) overlaps one of w[0..n-1]. */
static inline int overlaps(const struct ai_window *w, int n, int seq, int start, int len) {
    for (int i = 0; i < n; i++)
        if (w[i].seq == seq && start < w[i].start + w[i].n && w[i].start < start + len) return 1;
    return 0;
}

static inline uint64_t marks_above(const float *a, int n, float thr, int strict) {
    uint64_t m = 0;
    for (int i = 0; i < n && i < 64; i++)
        if (strict ? a[i] > thr : a[i] >= thr) m |= 1ULL << i;
    return m;
}

static inline float window_max(const float *a, int n) {
    float m = 0;
    for (int i = 0; i < n; i++)
        if (a[i] > m) m = a[i];
    return m;
}

static inline void shuffle_windows(struct rng *r, struct ai_window *w, int n) {
    for (int i = n - 1; i > 0; i--) {
        int              j = (int)rng_below(r, (uint64_t)i + 1);
        struct ai_window t = w[i];
        w[i] = w[j];
        w[j] = t;
    }
}


static inline int cmp_int(const void *x, const void *y) {
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

/* ---- the protocols' sampling plans (autointerp_saebench.c, autointerp_delphi.c) ---- */
void ai_plan_saebench(const struct ai_params *p, const float *a, int n_seq, int T,
                      float max_act, struct rng *r, struct ai_plan *pl);
void ai_plan_delphi(const struct ai_params *p, const float *a, const int *tokens, int n_seq,
                    int T, struct rng *r, struct ai_plan *pl);

/* ---- what the exports share (autointerp_report.c) ---- */
cJSON *ai_num_or_null(double v);             /* null for NAN and infinities */
cJSON *ai_ci_json(double lo, double hi);     /* [lo, hi] */
cJSON *ai_sae_cfg_json(struct eval_env *env); /* the SAE's configuration, {} when none */
void   ai_eval_id(struct eval_env *env, const struct eval_run *run, char out[37]);

#endif
