/*
 * autointerp — SAEBench and Delphi autointerp protocols: corpus activations, window sampling,
 * judge prompts through the grader, storage, metrics and exports (see autointerp.h and
 * docs/autointerp.md).
 */
#include "evals/autointerp.h"
#include "evals/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sae/acts.h"
#include "graders/explain.h"
#include "graders/grader.h"
#include "base/hash.h"
#include "graders/parse.h"
#include "graders/prompt.h"
#include "model/tok.h"

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
#define ENC_SEQ    16 /* sequences encoded at once */

static const char *const kind_names[] = {"top", "importance", "random", "quantile",
                                         "similar (token-overlap stand-in)"};
const char *ai_kind_name(enum ai_kind k) {
    return (int)k >= 0 && (int)k < 5 ? kind_names[k] : "?";
}

const char *ai_scorer_name(enum ai_scorer s) {
    switch (s) {
    case AI_SCORER_DETECTION: return "detection";
    case AI_SCORER_FUZZING: return "fuzzing";
    case AI_SCORER_SIMULATION: return "simulation";
    }
    return "?";
}

const char *ai_protocol_name(enum ai_protocol p) {
    return p == AI_PROTOCOL_DELPHI ? "delphi" : "saebench";
}

int ai_parse_protocol(const char *s, enum ai_protocol *out, struct ev_err *err) {
    if (s && strcmp(s, "saebench") == 0) *out = AI_PROTOCOL_SAEBENCH;
    else if (s && strcmp(s, "delphi") == 0) *out = AI_PROTOCOL_DELPHI;
    else
        return ev_fail(err, EV_EUSAGE, "--protocol: unknown protocol '%s' (expected saebench or "
                                       "delphi)", s ? s : "");
    return EV_OK;
}

int ai_parse_scorers(const char *s, enum ai_protocol p, int *mask, struct ev_err *err) {
    *mask = 0;
    if (!s) {
        *mask = p == AI_PROTOCOL_DELPHI ? AI_SCORER_DETECTION | AI_SCORER_FUZZING
                                        : AI_SCORER_DETECTION;
        return EV_OK;
    }
    const char *q = s;
    while (1) {
        const char *e = strchr(q, ',');
        size_t      n = e ? (size_t)(e - q) : strlen(q);
        int         bit = 0;
        if (n == 9 && strncmp(q, "detection", n) == 0) bit = AI_SCORER_DETECTION;
        else if (n == 7 && strncmp(q, "fuzzing", n) == 0) bit = AI_SCORER_FUZZING;
        else if (n == 10 && strncmp(q, "simulation", n) == 0) bit = AI_SCORER_SIMULATION;
        if (!bit)
            return ev_fail(err, EV_EUSAGE, "--scorers: unknown scorer '%.*s' (expected a comma "
                                           "list of detection, fuzzing, simulation)", (int)n, q);
        if (bit == AI_SCORER_FUZZING && p == AI_PROTOCOL_SAEBENCH)
            return ev_fail(err, EV_EUSAGE, "--scorers: fuzzing is a Delphi scorer; use it with "
                                           "--protocol delphi");
        *mask |= bit;
        if (!e) break;
        q = e + 1;
    }
    return EV_OK;
}

struct ai_params ai_default_params(enum ai_protocol p) {
    struct ai_params x = {.protocol = p, .scorers = AI_SCORER_DETECTION,
                          .negatives = AI_NEGATIVES_RANDOM, .alive_min = 15, .min_windows = 200,
                          .n_bootstrap = 1000, .act_frac = 0.01, .fuzz_frac = 0.3};
    if (p == AI_PROTOCOL_DELPHI) x.scorers |= AI_SCORER_FUZZING;
    return x;
}

// ---------------------------------------------------------------------------- activations

int ai_acts_collect(struct model *m, const struct sae *s, struct model_hook h,
                    const struct acts_corpus *c, struct ai_acts *out, struct ev_err *err) {
    const int T = c->T, D = s->cfg.d_in, S = s->cfg.d_sae;
    struct model_state *st = NULL;
    float              *f = NULL; /* (ENC_SEQ, T, S) */
    int                 rc;
    memset(out, 0, sizeof *out);
    out->n_seq = c->n_seq;
    out->T = T;
    out->D = D;
    out->S = S;
    out->n_fire = xcalloc((size_t)S, sizeof(int64_t));
    out->max = xcalloc((size_t)S, sizeof(float));
    out->X = xmalloc((size_t)c->n_seq * T * D * sizeof(float));
    if ((rc = model_state_new(m, T, 0, &st, err))) goto out;
    for (int q = 0; q < c->n_seq; q++) {
        if (ev_interrupted()) {
            rc = ev_fail(err, EV_EINTR, "interrupted while running the corpus");
            goto out;
        }
        if ((rc = model_forward_to_hook(st, c->tokens + (size_t)q * T, 0, T, h,
                                        out->X + (size_t)q * T * D, err)))
            goto out;
    }
    f = xmalloc((size_t)ENC_SEQ * T * S * sizeof(float));
    for (int q0 = 0; q0 < c->n_seq; q0 += ENC_SEQ) {
        int nq = c->n_seq - q0 < ENC_SEQ ? c->n_seq - q0 : ENC_SEQ;
        sae_encode(s, f, out->X + (size_t)q0 * T * D, nq * T);
        for (int q = 0; q < nq; q++)
            for (int t = 1; t < T; t++) {
                const float *row = f + ((size_t)q * T + t) * S;
                for (int i = 0; i < S; i++)
                    if (row[i] > 0) {
                        out->n_fire[i]++;
                        if (row[i] > out->max[i]) out->max[i] = row[i];
                    }
            }
    }
    rc = EV_OK;
out:
    free(f);
    model_state_free(st);
    if (rc) ai_acts_release(out);
    return rc;
}

void ai_acts_extract(struct ai_acts *a, const struct sae *s, const int *lat, int n) {
    const int T = a->T, S = a->S, D = a->D;
    const size_t NT = (size_t)a->n_seq * T;
    free(a->lat);
    free(a->a);
    a->n_lat = n;
    a->lat = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    memcpy(a->lat, lat, (size_t)n * sizeof(int));
    a->a = xcalloc((size_t)(n > 0 ? n : 1) * NT, sizeof(float));
    if (n > 0 && a->X) {
        float *f = xmalloc((size_t)ENC_SEQ * T * S * sizeof(float));
        for (int q0 = 0; q0 < a->n_seq; q0 += ENC_SEQ) {
            int nq = a->n_seq - q0 < ENC_SEQ ? a->n_seq - q0 : ENC_SEQ;
            sae_encode(s, f, a->X + (size_t)q0 * T * D, nq * T);
            for (int q = 0; q < nq; q++)
                for (int t = 1; t < T; t++) {
                    const float *row = f + ((size_t)q * T + t) * S;
                    size_t       at = (size_t)(q0 + q) * T + t;
                    for (int j = 0; j < n; j++) a->a[(size_t)j * NT + at] = row[lat[j]];
                }
        }
        free(f);
    }
}

void ai_acts_release(struct ai_acts *a) {
    free(a->n_fire);
    free(a->max);
    free(a->X);
    free(a->lat);
    free(a->a);
    memset(a, 0, sizeof *a);
}

static int cmp_int(const void *x, const void *y) {
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

int ai_select_latents(const struct ai_acts *a, int alive_min, const int *want, int n_want,
                      int n, uint64_t seed, int **out) {
    int *sel = xmalloc((size_t)(a->S > n_want ? a->S : n_want) * sizeof(int) + sizeof(int));
    int  k = 0, n_alive = 0;
    for (int i = 0; i < a->S; i++) n_alive += a->n_fire[i] > alive_min;
    if (want) {
        for (int i = 0; i < n_want; i++) {
            int f = want[i];
            if (f < 0 || f >= a->S) continue;
            if (a->n_fire[f] > alive_min) {
                sel[k++] = f;
            } else {
                ev_info("latent %d is dead on this corpus: it fired on %lld token%s (alive means "
                        "more than %d firings); left out", f, (long long)a->n_fire[f],
                        a->n_fire[f] == 1 ? "" : "s", alive_min);
            }
        }
    } else {
        for (int i = 0; i < a->S; i++)
            if (a->n_fire[i] > alive_min) sel[k++] = i;
        if (n > k) {
            ev_info("%d latents asked, but only %d of the SAE's %d latents are alive on this "
                    "corpus (more than %d firings); scoring those %d", n, k, a->S, alive_min, k);
        } else {
            struct rng r;
            rng_seed(&r, seed ^ 0x5ae5ae5aULL);
            rng_shuffle(&r, sel, (size_t)k);
            k = n;
        }
    }
    qsort(sel, (size_t)k, sizeof(int), cmp_int);
    *out = sel;
    return k;
}

// ---------------------------------------------------------------------------- sampling

struct cand {
    int   seq, pos;
    float a;
};

static int cmp_cand_desc(const void *x, const void *y) {
    const struct cand *a = x, *b = y;
    if (a->a != b->a) return a->a < b->a ? 1 : -1;
    if (a->seq != b->seq) return a->seq - b->seq;
    return a->pos - b->pos;
}

/* 1 when a window of W tokens centred at (seq, pos) overlaps one of w[0..n-1]. */
static int overlaps(const struct ai_window *w, int n, int seq, int start, int len) {
    for (int i = 0; i < n; i++)
        if (w[i].seq == seq && start < w[i].start + w[i].n && w[i].start < start + len) return 1;
    return 0;
}

static uint64_t marks_above(const float *a, int n, float thr, int strict) {
    uint64_t m = 0;
    for (int i = 0; i < n && i < 64; i++)
        if (strict ? a[i] > thr : a[i] >= thr) m |= 1ULL << i;
    return m;
}

static float window_max(const float *a, int n) {
    float m = 0;
    for (int i = 0; i < n; i++)
        if (a[i] > m) m = a[i];
    return m;
}

static void shuffle_windows(struct rng *r, struct ai_window *w, int n) {
    for (int i = n - 1; i > 0; i--) {
        int              j = (int)rng_below(r, (uint64_t)i + 1);
        struct ai_window t = w[i];
        w[i] = w[j];
        w[j] = t;
    }
}

static void plan_saebench(const struct ai_params *p, const float *a, int n_seq, int T,
                          float max_act, struct rng *r, struct ai_plan *pl) {
    const int NTOP = SB_TOP_GEN + SB_TOP_SC, NIW = SB_IW_GEN + SB_IW_SC;
    struct ai_window chosen[SB_TOP_GEN + SB_TOP_SC + SB_IW_GEN + SB_IW_SC + SB_RAND];
    int              n_ch = 0, lo = SB_HALF + 1, hi = T - 1 - SB_HALF;
    struct cand     *cd = NULL;
    double          *wt = NULL;
    pl->thr = (float)(p->act_frac * max_act);
    if (hi < lo) {
        pl->skip = "the corpus sequences are too short for 21-token windows (use --ctx 32 or "
                   "more)";
        return;
    }
    size_t n_cd = 0;
    cd = xmalloc((size_t)n_seq * (size_t)(hi - lo + 1) * sizeof *cd);
    for (int q = 0; q < n_seq; q++)
        for (int t = lo; t <= hi; t++) {
            float v = a[(size_t)q * T + t];
            if (v > pl->thr) cd[n_cd++] = (struct cand){q, t, v};
        }
    qsort(cd, n_cd, sizeof *cd, cmp_cand_desc);
    size_t next = 0;
    for (; next < n_cd && n_ch < NTOP; next++) {
        int st = cd[next].pos - SB_HALF;
        if (overlaps(chosen, n_ch, cd[next].seq, st, SB_W)) continue;
        chosen[n_ch++] = (struct ai_window){cd[next].seq, st, SB_W, 1, AI_KIND_TOP, 0, 0, 0};
    }
    if (n_ch < NTOP) {
        pl->skip = "fewer than 12 non-overlapping top windows";
        goto out;
    }
    /* importance-weighted: the remaining candidates (all below the top ones), drawn without
     * replacement with probability ∝ a², skipping draws that overlap a chosen window */
    wt = xmalloc((n_cd - next + 1) * sizeof *wt);
    double tot = 0;
    for (size_t i = next; i < n_cd; i++) {
        int ov = overlaps(chosen, n_ch, cd[i].seq, cd[i].pos - SB_HALF, SB_W);
        tot += wt[i - next] = ov ? 0.0 : (double)cd[i].a * cd[i].a;
    }
    while (n_ch < NTOP + NIW && tot > 0) {
        double u = rng_uniform(r) * tot, acc = 0;
        size_t pick = n_cd;
        for (size_t i = next; i < n_cd; i++) {
            if (wt[i - next] <= 0) continue;
            acc += wt[i - next];
            pick = i;
            if (acc > u) break;
        }
        if (pick == n_cd) break;
        wt[pick - next] = 0;
        tot = 0; /* recomputed, not decremented: subtraction drifts */
        for (size_t i = next; i < n_cd; i++) tot += wt[i - next];
        int st = cd[pick].pos - SB_HALF;
        if (overlaps(chosen, n_ch, cd[pick].seq, st, SB_W)) continue;
        chosen[n_ch++] = (struct ai_window){cd[pick].seq, st, SB_W, 1, AI_KIND_IMPORTANCE, 0,
                                            0, 0};
    }
    if (n_ch < NTOP + NIW) {
        pl->skip = "fewer than 7 non-overlapping windows below the top ones to sample";
        goto out;
    }
    /* random windows, checked to hold no active token */
    for (int tries = 0; n_ch < NTOP + NIW + SB_RAND && tries < 20000; tries++) {
        int q = (int)rng_below(r, (uint64_t)n_seq);
        int t = lo + (int)rng_below(r, (uint64_t)(hi - lo + 1));
        int st = t - SB_HALF;
        if (window_max(a + (size_t)q * T + st, SB_W) > pl->thr) continue;
        if (overlaps(chosen, n_ch, q, st, SB_W)) continue;
        chosen[n_ch++] = (struct ai_window){q, st, SB_W, 0, AI_KIND_RANDOM, 0, 0, 0};
    }
    if (n_ch < NTOP + NIW + SB_RAND) {
        pl->skip = "fewer than 10 non-activating windows found";
        goto out;
    }
    for (int i = 0; i < n_ch; i++) {
        const float *wa = a + (size_t)chosen[i].seq * T + chosen[i].start;
        chosen[i].max = window_max(wa, SB_W);
        chosen[i].marks = marks_above(wa, SB_W, pl->thr, 1);
    }
    /* split top and importance windows at random between explanation and scoring */
    shuffle_windows(r, chosen, NTOP);
    shuffle_windows(r, chosen + NTOP, NIW);
    pl->n_expl = SB_TOP_GEN + SB_IW_GEN;
    pl->expl = xmalloc((size_t)pl->n_expl * sizeof *pl->expl);
    memcpy(pl->expl, chosen, SB_TOP_GEN * sizeof *pl->expl);
    memcpy(pl->expl + SB_TOP_GEN, chosen + NTOP, SB_IW_GEN * sizeof *pl->expl);
    pl->n_test = SB_TOP_SC + SB_IW_SC + SB_RAND;
    pl->test = xmalloc((size_t)pl->n_test * sizeof *pl->test);
    memcpy(pl->test, chosen + SB_TOP_GEN, SB_TOP_SC * sizeof *pl->test);
    memcpy(pl->test + SB_TOP_SC, chosen + NTOP + SB_IW_GEN, SB_IW_SC * sizeof *pl->test);
    memcpy(pl->test + SB_TOP_SC + SB_IW_SC, chosen + NTOP + NIW, SB_RAND * sizeof *pl->test);
    for (int i = 0; i < pl->n_test; i++) pl->test[i].marks = 0;
    shuffle_windows(r, pl->test, pl->n_test);
    pl->n_sim = pl->n_test;
    pl->sim = xmalloc((size_t)pl->n_sim * sizeof *pl->sim);
    memcpy(pl->sim, pl->test, (size_t)pl->n_sim * sizeof *pl->sim);
out:
    free(wt);
    free(cd);
}

struct blk {
    int   seq, start;
    float max;
    int   score; /* similar negatives: shared tokens */
    int   order; /* random tie-break */
};

static int cmp_blk_desc(const void *x, const void *y) {
    const struct blk *a = x, *b = y;
    if (a->max != b->max) return a->max < b->max ? 1 : -1;
    if (a->seq != b->seq) return a->seq - b->seq;
    return a->start - b->start;
}

static int cmp_blk_score(const void *x, const void *y) {
    const struct blk *a = x, *b = y;
    if (a->score != b->score) return b->score - a->score;
    return a->order - b->order;
}

static int in_sorted(const int *v, int n, int x) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (v[mid] == x) return 1;
        if (v[mid] < x) lo = mid + 1;
        else hi = mid - 1;
    }
    return 0;
}

/* Draws k of the n ints of v (in place, partial Fisher-Yates) into the first k slots. */
static void draw_k(struct rng *r, struct blk *v, int n, int k) {
    for (int i = 0; i < k && i < n; i++) {
        int        j = i + (int)rng_below(r, (uint64_t)(n - i));
        struct blk t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

static void plan_delphi(const struct ai_params *p, const float *a, const int *tokens, int n_seq,
                        int T, struct rng *r, struct ai_plan *pl) {
    const int per_seq = (T - 1) / DL_W;
    struct blk *act = NULL, *neg = NULL;
    int        *tset = NULL;
    int         n_act = 0, n_neg = 0;
    pl->thr = 0;
    if (per_seq < 1) {
        pl->skip = "the corpus sequences are too short for 32-token windows (use --ctx 33 or "
                   "more)";
        return;
    }
    act = xmalloc((size_t)n_seq * per_seq * sizeof *act);
    neg = xmalloc((size_t)n_seq * per_seq * sizeof *neg);
    for (int q = 0; q < n_seq; q++)
        for (int b = 0; b < per_seq; b++) {
            int   st = 1 + b * DL_W;
            float m = window_max(a + (size_t)q * T + st, DL_W);
            struct blk x = {q, st, m, 0, 0};
            if (m > 0) act[n_act++] = x;
            else neg[n_neg++] = x;
        }
    if (n_act < p->min_windows || n_act < DL_EXPL + DL_Q * DL_PER_Q) {
        pl->skip = "too few activating windows (see --min-windows)";
        goto out;
    }
    if (n_neg < DL_NEG) {
        pl->skip = "fewer than 50 non-activating windows";
        goto out;
    }
    qsort(act, (size_t)n_act, sizeof *act, cmp_blk_desc);
    pl->n_expl = DL_EXPL;
    pl->expl = xmalloc(DL_EXPL * sizeof *pl->expl);
    for (int i = 0; i < DL_EXPL; i++) {
        const float *wa = a + (size_t)act[i].seq * T + act[i].start;
        pl->expl[i] = (struct ai_window){act[i].seq, act[i].start, DL_W, 1, AI_KIND_TOP, 0,
                                         act[i].max,
                                         marks_above(wa, DL_W, (float)(p->fuzz_frac * act[i].max),
                                                     0)};
    }
    const int R = n_act - DL_EXPL, NTEST = DL_Q * DL_PER_Q + DL_NEG;
    struct ai_window *test = xmalloc((size_t)NTEST * sizeof *test);
    int               nt = 0;
    for (int q = 0; q < DL_Q; q++) {
        int b0 = DL_EXPL + (int)((long)q * R / DL_Q);
        int b1 = DL_EXPL + (int)((long)(q + 1) * R / DL_Q);
        draw_k(r, act + b0, b1 - b0, DL_PER_Q);
        for (int i = 0; i < DL_PER_Q; i++) {
            const struct blk *x = &act[b0 + i];
            test[nt++] = (struct ai_window){x->seq, x->start, DL_W, 1, AI_KIND_QUANTILE, q + 1,
                                            x->max, 0};
        }
    }
    if (p->negatives == AI_NEGATIVES_SIMILAR) {
        int n_ts = 0;
        tset = xmalloc((size_t)nt * DL_W * sizeof *tset);
        for (int i = 0; i < nt; i++)
            for (int j = 0; j < DL_W; j++)
                tset[n_ts++] = tokens[(size_t)test[i].seq * T + test[i].start + j];
        qsort(tset, (size_t)n_ts, sizeof *tset, cmp_int);
        int u = 0;
        for (int i = 0; i < n_ts; i++)
            if (!u || tset[u - 1] != tset[i]) tset[u++] = tset[i];
        int *perm = xmalloc((size_t)n_neg * sizeof *perm);
        for (int i = 0; i < n_neg; i++) perm[i] = i;
        rng_shuffle(r, perm, (size_t)n_neg);
        for (int i = 0; i < n_neg; i++) {
            const int *tk = tokens + (size_t)neg[i].seq * T + neg[i].start;
            int        seen[DL_W], ns = 0, sc = 0;
            for (int j = 0; j < DL_W; j++) {
                int dup = 0;
                for (int k = 0; k < ns; k++) dup |= seen[k] == tk[j];
                if (dup) continue;
                seen[ns++] = tk[j];
                sc += in_sorted(tset, u, tk[j]);
            }
            neg[i].score = sc;
            neg[i].order = perm[i];
        }
        free(perm);
        qsort(neg, (size_t)n_neg, sizeof *neg, cmp_blk_score);
    } else {
        draw_k(r, neg, n_neg, DL_NEG);
    }
    for (int i = 0; i < DL_NEG; i++)
        test[nt++] = (struct ai_window){neg[i].seq, neg[i].start, DL_W, 0,
                                        p->negatives == AI_NEGATIVES_SIMILAR ? AI_KIND_SIMILAR
                                                                             : AI_KIND_RANDOM,
                                        0, 0, 0};
    /* simulation: the first 5 of quantile 1 and the first 5 negatives */
    pl->n_sim = DL_SIM_TOP + DL_SIM_NEG;
    pl->sim = xmalloc((size_t)pl->n_sim * sizeof *pl->sim);
    memcpy(pl->sim, test, DL_SIM_TOP * sizeof *pl->sim);
    memcpy(pl->sim + DL_SIM_TOP, test + DL_Q * DL_PER_Q, DL_SIM_NEG * sizeof *pl->sim);
    /* fuzzing: a copy, marked */
    pl->n_fuzz = NTEST;
    pl->fuzz = xmalloc((size_t)NTEST * sizeof *pl->fuzz);
    memcpy(pl->fuzz, test, (size_t)NTEST * sizeof *pl->fuzz);
    int *order = xmalloc((size_t)(DL_Q * DL_PER_Q) * sizeof *order);
    for (int i = 0; i < DL_Q * DL_PER_Q; i++) order[i] = i;
    rng_shuffle(r, order, (size_t)(DL_Q * DL_PER_Q));
    int *counts = xmalloc((size_t)(DL_Q * DL_PER_Q) * sizeof *counts);
    for (int i = 0; i < DL_Q * DL_PER_Q; i++) {
        struct ai_window *w = &pl->fuzz[order[i]];
        const float      *wa = a + (size_t)w->seq * T + w->start;
        uint64_t          good = marks_above(wa, DL_W, (float)(p->fuzz_frac * w->max), 0);
        int               k = __builtin_popcountll(good);
        counts[i] = k;
        if (i < DL_Q * DL_PER_Q / 2) {
            w->marks = good;
            w->label = 1;
            continue;
        }
        /* misplaced: as many tokens, all below the threshold */
        int idx[DL_W], n_bad = 0;
        for (int j = 0; j < DL_W; j++)
            if (!(good >> j & 1)) idx[n_bad++] = j;
        w->label = 0;
        w->marks = 0;
        if (n_bad == 0) { /* every token is above the threshold: mark correctly after all */
            w->marks = good;
            w->label = 1;
            continue;
        }
        for (int j = 0; j < k && j < n_bad; j++) {
            int t = j + (int)rng_below(r, (uint64_t)(n_bad - j)), x = idx[j];
            idx[j] = idx[t];
            idx[t] = x;
            w->marks |= 1ULL << idx[j];
        }
    }
    for (int i = DL_Q * DL_PER_Q; i < NTEST; i++) {
        struct ai_window *w = &pl->fuzz[i];
        int               k = counts[rng_below(r, (uint64_t)(DL_Q * DL_PER_Q))];
        int               idx[DL_W];
        for (int j = 0; j < DL_W; j++) idx[j] = j;
        for (int j = 0; j < k && j < DL_W; j++) {
            int t = j + (int)rng_below(r, (uint64_t)(DL_W - j)), x = idx[j];
            idx[j] = idx[t];
            idx[t] = x;
            w->marks |= 1ULL << idx[j];
        }
        w->label = 0;
    }
    free(order);
    free(counts);
    shuffle_windows(r, test, NTEST);
    shuffle_windows(r, pl->fuzz, NTEST);
    pl->test = test;
    pl->n_test = NTEST;
out:
    free(tset);
    free(act);
    free(neg);
}

void ai_plan_latent(const struct ai_params *p, int feature, const float *a, const int *tokens,
                    int n_seq, int T, float max_act, struct rng *r, struct ai_plan *plan) {
    memset(plan, 0, sizeof *plan);
    plan->feature = feature;
    if (p->protocol == AI_PROTOCOL_DELPHI) plan_delphi(p, a, tokens, n_seq, T, r, plan);
    else plan_saebench(p, a, n_seq, T, max_act, r, plan);
    if (plan->skip) {
        const char *skip = plan->skip;
        ai_plan_release(plan);
        plan->feature = feature;
        plan->skip = skip;
    }
}

void ai_plan_release(struct ai_plan *plan) {
    free(plan->expl);
    free(plan->test);
    free(plan->fuzz);
    free(plan->sim);
    memset(plan, 0, sizeof *plan);
}

// ---------------------------------------------------------------------------- metrics

double ai_balanced_accuracy(const struct ai_confusion *c) {
    long P = c->tp + c->fn, N = c->tn + c->fp;
    if (P == 0 && N == 0) return NAN;
    if (P == 0) return (double)c->tn / (double)N;
    if (N == 0) return (double)c->tp / (double)P;
    return 0.5 * ((double)c->tp / (double)P + (double)c->tn / (double)N);
}

double ai_f1(const struct ai_confusion *c) {
    long d = 2 * c->tp + c->fp + c->fn;
    return d ? 2.0 * (double)c->tp / (double)d : 0.0;
}

double ai_accuracy(const struct ai_confusion *c) {
    long n = c->tp + c->fp + c->tn + c->fn;
    return n ? (double)(c->tp + c->tn) / (double)n : NAN;
}

struct pl_pair {
    double p;
    int    y;
};

static int cmp_pair(const void *x, const void *y) {
    const struct pl_pair *a = x, *b = y;
    return (a->p > b->p) - (a->p < b->p);
}

double ai_auc(const double *p, const int *y, int n) {
    struct pl_pair *v = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    long            P = 0, N = 0;
    for (int i = 0; i < n; i++) {
        v[i] = (struct pl_pair){p[i], y[i] ? 1 : 0};
        P += v[i].y;
    }
    N = n - P;
    if (P == 0 || N == 0) {
        free(v);
        return NAN;
    }
    qsort(v, (size_t)n, sizeof *v, cmp_pair);
    /* rank sum of the positives, ties given their mean rank */
    double rs = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && v[j].p == v[i].p) j++;
        double mean_rank = 0.5 * (double)(i + 1 + j);
        for (int k = i; k < j; k++)
            if (v[k].y) rs += mean_rank;
        i = j;
    }
    free(v);
    return (rs - (double)P * (double)(P + 1) / 2.0) / ((double)P * (double)N);
}

double ai_pearson(const double *x, const double *y, int n) {
    if (n < 2) return NAN;
    double r = stats_pearson(x, y, n);
    return isnan(r) ? 0.0 : r; /* one side constant: no correlation (the simulation's convention) */
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

void ai_bootstrap(ai_stat_fn *stat, const void *ud, int n, int B, uint64_t seed, double *lo,
                  double *hi) {
    *lo = *hi = NAN;
    if (n < 1 || B < 1) return;
    struct rng r;
    rng_seed(&r, seed ^ 0xb007b007ULL);
    int    *idx = xmalloc((size_t)n * sizeof *idx);
    double *v = xmalloc((size_t)B * sizeof *v);
    int     nv = 0;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < n; i++) idx[i] = (int)rng_below(&r, (uint64_t)n);
        double s = stat(ud, idx, n);
        if (!isnan(s)) v[nv++] = s;
    }
    if (nv > 0) {
        qsort(v, (size_t)nv, sizeof *v, cmp_double);
        /* percentile interval: the 2.5th and 97.5th percentiles (linear interpolation) */
        double pl = 0.025 * (nv - 1), ph = 0.975 * (nv - 1);
        int    il = (int)floor(pl), ih = (int)floor(ph);
        *lo = v[il] + (il + 1 < nv ? (pl - il) * (v[il + 1] - v[il]) : 0);
        *hi = v[ih] + (ih + 1 < nv ? (ph - ih) * (v[ih + 1] - v[ih]) : 0);
    }
    free(idx);
    free(v);
}

// ---------------------------------------------------------------------------- rendering

/* The window's text: tokens decoded after their predecessor, escaped, marked tokens wrapped in
 * ⟦ ⟧, line breaks and tabs shown as spaces (a window is one line of the prompt). */
static char *window_text(const struct tok *tk, const int *tokens, int T,
                         const struct ai_window *w, uint64_t marks) {
    const char *pieces[64];
    int         marked[64];
    char        num[64][16];
    const int  *tw = tokens + (size_t)w->seq * T + w->start;
    for (int i = 0; i < w->n; i++) {
        int prev = w->start + i > 0 ? tw[i - 1] : -1;
        if (tk) {
            pieces[i] = tok_piece(tk, prev, tw[i]);
        } else {
            snprintf(num[i], sizeof num[i], " %d", tw[i]);
            pieces[i] = num[i];
        }
        marked[i] = (int)(marks >> i & 1);
    }
    char *s = prompt_mark_tokens(pieces, marked, w->n);
    for (char *c = s; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t') *c = ' ';
    return s;
}

static char *examples_block(const struct tok *tk, const int *tokens, int T,
                            const struct ai_window *w, int n, int with_marks) {
    struct sbuf sb;
    sbuf_init(&sb);
    for (int i = 0; i < n; i++) {
        char *t = window_text(tk, tokens, T, &w[i], with_marks ? w[i].marks : 0);
        sbuf_addf(&sb, "%s%d. %s", i ? "\n" : "", i + 1, t);
        free(t);
    }
    return sbuf_detach(&sb);
}

/* One token's text for the simulation list: escaped, line breaks shown as \n. */
static char *token_text(const struct tok *tk, int prev, int id) {
    char        num[16];
    const char *piece = num;
    if (tk) piece = tok_piece(tk, prev, id);
    else snprintf(num, sizeof num, " %d", id);
    char       *e = prompt_escape_untrusted(piece);
    struct sbuf sb;
    sbuf_init(&sb);
    for (const char *c = e; *c; c++) {
        if (*c == '\n') sbuf_adds(&sb, "\\n");
        else if (*c == '\r' || *c == '\t') sbuf_adds(&sb, " ");
        else sbuf_add(&sb, c, 1);
    }
    free(e);
    return sbuf_detach(&sb);
}

// ---------------------------------------------------------------------------- storage

struct job {
    int    feature, scorer, prompt_no, n; /* n: windows (or tokens, simulation) */
    char  *prompt;
    const char *tpl_hash;
};

struct ctx {
    struct eval_env       *env;
    const struct eval_run *run;
    const struct ai_params *p;
    int64_t                seed;
    struct job            *jobs;
    int                    n_jobs;
    const char            *grader_name;
    long                   n_unparsed, n_failed;
};

static int latent_status(struct ctx *c, int feature, char **status, struct ev_err *err) {
    struct store_stmt *st = NULL;
    *status = NULL;
    int rc = store_prepare(c->env->store, "SELECT status FROM autointerp_latents WHERE run_id = ?1 "
                                          "AND seed = ?2 AND feature_idx = ?3", &st, err);
    if (rc) return rc;
    store_bind_int(st, 1, c->run->id);
    store_bind_int(st, 2, c->seed);
    store_bind_int(st, 3, feature);
    int r = store_step(st, err);
    if (r == STORE_ROW) *status = xstrdup(store_col_text(st, 0));
    store_finalize(st);
    return r < 0 ? EV_EFAIL : EV_OK;
}

struct latent_row {
    int         feature;
    int64_t     n_fire;
    double      max;
    const char *status, *reason, *explanation, *source, *tpl_hash, *prompt, *raw;
};

static int latent_put(struct ctx *c, const struct latent_row *l, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(c->env->store,
                           "INSERT OR REPLACE INTO autointerp_latents (run_id, seed, feature_idx, "
                           "protocol, n_firings, max_act, status, reason, explanation, "
                           "expl_source, expl_template_hash, expl_prompt, expl_raw, created_ms) "
                           "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)", &st, err);
    if (rc) return rc;
    store_bind_int(st, 1, c->run->id);
    store_bind_int(st, 2, c->seed);
    store_bind_int(st, 3, l->feature);
    store_bind_text(st, 4, ai_protocol_name(c->p->protocol));
    store_bind_int(st, 5, l->n_fire);
    store_bind_double(st, 6, l->max);
    store_bind_text(st, 7, l->status);
    store_bind_text(st, 8, l->reason);
    store_bind_text(st, 9, l->explanation);
    store_bind_text(st, 10, l->source);
    store_bind_text(st, 11, l->tpl_hash);
    store_bind_text(st, 12, l->prompt);
    store_bind_text(st, 13, l->raw);
    store_bind_int(st, 14, now_unix_ms());
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    return rc;
}

static char *latent_explanation(struct ctx *c, int feature) {
    struct store_stmt *st = NULL;
    struct ev_err      e;
    char              *out = NULL;
    if (store_prepare(c->env->store, "SELECT explanation FROM autointerp_latents WHERE run_id = "
                                     "?1 AND seed = ?2 AND feature_idx = ?3 AND status = 'ok'",
                      &st, &e))
        return NULL;
    store_bind_int(st, 1, c->run->id);
    store_bind_int(st, 2, c->seed);
    store_bind_int(st, 3, feature);
    if (store_step(st, &e) == STORE_ROW && store_col_text(st, 0))
        out = xstrdup(store_col_text(st, 0));
    store_finalize(st);
    return out;
}

/* 1 when the prompt has an answer stored (parsed or not), 0 when it must be asked. */
static int prompt_answered(struct ctx *c, int scorer, int feature, int no, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(c->env->store,
                           "SELECT parse_status FROM autointerp_prompts WHERE run_id = ?1 AND "
                           "seed = ?2 AND scorer = ?3 AND feature_idx = ?4 AND prompt_no = ?5",
                           &st, err);
    if (rc) return rc;
    store_bind_int(st, 1, c->run->id);
    store_bind_int(st, 2, c->seed);
    store_bind_text(st, 3, ai_scorer_name((enum ai_scorer)scorer));
    store_bind_int(st, 4, feature);
    store_bind_int(st, 5, no);
    int r = store_step(st, err), done = 0;
    if (r == STORE_ROW) {
        const char *ps = store_col_text(st, 0);
        done = ps && (strcmp(ps, "ok") == 0 || strcmp(ps, "unparsed") == 0);
    }
    store_finalize(st);
    return r < 0 ? EV_EFAIL : done;
}

static int prompt_put(struct ctx *c, const struct job *j, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(c->env->store,
                           "INSERT OR REPLACE INTO autointerp_prompts (run_id, seed, scorer, "
                           "feature_idx, prompt_no, template_hash, prompt) VALUES "
                           "(?1,?2,?3,?4,?5,?6,?7)", &st, err);
    if (rc) return rc;
    store_bind_int(st, 1, c->run->id);
    store_bind_int(st, 2, c->seed);
    store_bind_text(st, 3, ai_scorer_name((enum ai_scorer)j->scorer));
    store_bind_int(st, 4, j->feature);
    store_bind_int(st, 5, j->prompt_no);
    store_bind_text(st, 6, j->tpl_hash);
    store_bind_text(st, 7, j->prompt);
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    return rc;
}

struct sample_row {
    int         scorer, feature, sample_no, prompt_no, position, quantile, seq, start, n;
    const char *kind, *text;
    double      max, label;
};

static int sample_put(struct ctx *c, struct store_stmt **st, const struct sample_row *s,
                      struct ev_err *err) {
    int rc;
    if (!*st &&
        (rc = store_prepare(c->env->store,
                            "INSERT OR REPLACE INTO autointerp_samples (run_id, seed, scorer, "
                            "feature_idx, sample_no, prompt_no, position, kind, quantile, seq, "
                            "start, n_tokens, max_act, text, label) VALUES "
                            "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)", st, err)))
        return rc;
    store_reset(*st);
    store_bind_int(*st, 1, c->run->id);
    store_bind_int(*st, 2, c->seed);
    store_bind_text(*st, 3, ai_scorer_name((enum ai_scorer)s->scorer));
    store_bind_int(*st, 4, s->feature);
    store_bind_int(*st, 5, s->sample_no);
    store_bind_int(*st, 6, s->prompt_no);
    store_bind_int(*st, 7, s->position);
    store_bind_text(*st, 8, s->kind);
    if (s->quantile > 0) store_bind_int(*st, 9, s->quantile);
    else store_bind_null(*st, 9);
    store_bind_int(*st, 10, s->seq);
    store_bind_int(*st, 11, s->start);
    store_bind_int(*st, 12, s->n);
    store_bind_double(*st, 13, s->max);
    store_bind_text(*st, 14, s->text);
    store_bind_double(*st, 15, s->label);
    return store_step(*st, err) < 0 ? EV_EFAIL : EV_OK;
}

// ---------------------------------------------------------------------------- answers

static enum parse_status parse_answer(int scorer, enum ai_protocol proto, const char *text,
                                      int n, int *pred) {
    int *v = NULL, nv = 0;
    enum parse_status ps;
    if (scorer == AI_SCORER_SIMULATION) {
        ps = parse_int_list(text, n, 0, 10, &v, &nv);
        if (ps == PARSE_OK)
            for (int i = 0; i < n; i++) pred[i] = v[i];
    } else if (proto == AI_PROTOCOL_SAEBENCH) {
        ps = parse_window_numbers(text, n, &v, &nv);
        if (ps == PARSE_OK) {
            for (int i = 0; i < n; i++) pred[i] = 0;
            for (int i = 0; i < nv; i++) pred[v[i] - 1] = 1;
        }
    } else {
        ps = parse_int_list(text, n, 0, 1, &v, &nv);
        if (ps == PARSE_OK)
            for (int i = 0; i < n; i++) pred[i] = v[i];
    }
    free(v);
    return ps;
}

int ai_logprob_values(const char *json, int n, int sim, double *out) {
    cJSON        *j = NULL;
    struct ev_err e;
    int           k = 0;
    if (!json || json_parse(json, strlen(json), "logprobs", &j, &e)) return 0;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(j, "content");
    const cJSON *tok;
    cJSON_ArrayForEach(tok, content) {
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(tok, "token");
        if (!cJSON_IsString(ts)) continue;
        char   digits[16];
        size_t nd = 0;
        int    other = 0;
        for (const char *c = ts->valuestring; *c; c++) {
            if (*c >= '0' && *c <= '9') {
                if (nd + 1 < sizeof digits) digits[nd++] = *c;
            } else if (!strchr("[], \n", *c)) {
                other = 1;
            }
        }
        digits[nd] = 0;
        if (!nd || other) continue;
        double       num = 0, den = 0;
        const cJSON *alt;
        cJSON_ArrayForEach(alt, cJSON_GetObjectItemCaseSensitive(tok, "top_logprobs")) {
            const cJSON *at = cJSON_GetObjectItemCaseSensitive(alt, "token");
            const cJSON *lp = cJSON_GetObjectItemCaseSensitive(alt, "logprob");
            long         v;
            if (!cJSON_IsString(at) || !cJSON_IsNumber(lp)) continue;
            char buf[16];
            size_t nb = 0;
            for (const char *c = at->valuestring; *c && nb + 1 < sizeof buf; c++)
                if (*c != ' ' && *c != '[' && *c != ']' && *c != ',') buf[nb++] = *c;
            buf[nb] = 0;
            if (parse_long(buf, &v) || v < 0 || v > (sim ? 10 : 1)) continue;
            double pr = exp(lp->valuedouble);
            den += pr;
            num += sim ? pr * (double)v : (v == 1 ? pr : 0);
        }
        if (k < n) out[k] = den > 0 ? num / den : NAN;
        k++;
    }
    json_free(j);
    if (k != n) return 0;
    for (int i = 0; i < n; i++)
        if (isnan(out[i])) return 0;
    return 1;
}

static int score_accept(void *ud, int index, const char *answer) {
    struct ctx *c = ud;
    struct job *j = &c->jobs[index];
    int        *pred = xmalloc((size_t)j->n * sizeof *pred);
    int         ok = parse_answer(j->scorer, c->p->protocol, answer, j->n, pred) == PARSE_OK;
    free(pred);
    return ok;
}

static int score_result(void *ud, int index, const struct grader_result *res,
                        struct ev_err *err) {
    struct ctx        *c = ud;
    struct job        *j = &c->jobs[index];
    struct store_stmt *up = NULL, *us = NULL;
    int               *pred = xmalloc((size_t)j->n * sizeof *pred);
    double            *prob = xmalloc((size_t)j->n * sizeof *prob);
    const char        *status = "error";
    int                have_lp = 0, rc;
    if (res->status == GRADER_OK) {
        status = parse_status_name(parse_answer(j->scorer, c->p->protocol, res->text, j->n,
                                                pred));
        if (strcmp(status, "ok") == 0)
            have_lp = ai_logprob_values(res->logprobs_json, j->n,
                                     j->scorer == AI_SCORER_SIMULATION, prob);
        else
            c->n_unparsed++;
    } else {
        c->n_failed++;
    }
    if ((rc = store_begin(c->env->store, err))) goto out;
    rc = store_prepare(c->env->store,
                       "UPDATE autointerp_prompts SET raw_answer = ?6, parse_status = ?7, "
                       "error = ?8, logprobs = ?9, cache_key = ?10, latency_ms = ?11, "
                       "tokens_in = ?12, tokens_out = ?13, answered_ms = ?14 WHERE run_id = ?1 "
                       "AND seed = ?2 AND scorer = ?3 AND feature_idx = ?4 AND prompt_no = ?5",
                       &up, err);
    if (rc) goto fail;
    store_bind_int(up, 1, c->run->id);
    store_bind_int(up, 2, c->seed);
    store_bind_text(up, 3, ai_scorer_name((enum ai_scorer)j->scorer));
    store_bind_int(up, 4, j->feature);
    store_bind_int(up, 5, j->prompt_no);
    store_bind_text(up, 6, res->status == GRADER_OK ? res->text : NULL);
    store_bind_text(up, 7, status);
    store_bind_text(up, 8, res->status == GRADER_OK ? NULL : res->error);
    store_bind_int(up, 9, have_lp);
    store_bind_text(up, 10, res->cache_key);
    store_bind_int(up, 11, (int64_t)(res->latency_s * 1000.0));
    store_bind_int(up, 12, res->tokens_in);
    store_bind_int(up, 13, res->tokens_out);
    store_bind_int(up, 14, now_unix_ms());
    if (store_step(up, err) < 0) goto fail;
    if (strcmp(status, "ok") == 0) {
        rc = store_prepare(c->env->store,
                           "UPDATE autointerp_samples SET prediction = ?7, probability = ?8 "
                           "WHERE run_id = ?1 AND seed = ?2 AND scorer = ?3 AND feature_idx = ?4 "
                           "AND prompt_no = ?5 AND position = ?6", &us, err);
        if (rc) goto fail;
        for (int i = 0; i < j->n; i++) {
            store_reset(us);
            store_bind_int(us, 1, c->run->id);
            store_bind_int(us, 2, c->seed);
            store_bind_text(us, 3, ai_scorer_name((enum ai_scorer)j->scorer));
            store_bind_int(us, 4, j->feature);
            store_bind_int(us, 5, j->prompt_no);
            store_bind_int(us, 6, i + 1);
            store_bind_double(us, 7, pred[i]);
            if (have_lp) store_bind_double(us, 8, prob[i]);
            else store_bind_null(us, 8);
            if (store_step(us, err) < 0) goto fail;
        }
    }
    store_finalize(up);
    store_finalize(us);
    up = us = NULL;
    rc = store_commit(c->env->store, err);
    goto out;
fail:
    rc = EV_EFAIL;
    store_rollback(c->env->store);
out:
    store_finalize(up);
    store_finalize(us);
    free(pred);
    free(prob);
    return rc;
}

struct expl_ud {
    struct ctx                  *c;
    const struct ai_latent_info *info; /* (n) */
    const int                   *which; /* request index -> info index */
    char                       **prompts;
    const char                  *tpl_hash;
    int                          n_ok, n_unparsed, n_failed;
};

static int expl_result(void *ud, int index, const struct grader_result *res,
                       struct ev_err *err) {
    struct expl_ud              *x = ud;
    const struct ai_latent_info *li = &x->info[x->which[index]];
    char                        *desc = NULL, src[256];
    struct latent_row            row = {.feature = li->feature, .n_fire = li->n_fire,
                                        .max = li->max, .tpl_hash = x->tpl_hash,
                                        .prompt = x->prompts[index]};
    snprintf(src, sizeof src, "explainer:%s", x->c->grader_name);
    if (res->status != GRADER_OK) {
        row.status = "explanation_failed";
        row.reason = res->error;
        x->n_failed++;
    } else if (parse_description(res->text, EXPLAIN_MAX_LEN, &desc) != PARSE_OK) {
        row.status = "explanation_unparsed";
        row.reason = "the explainer's answer holds no usable description";
        row.raw = res->text;
        x->n_unparsed++;
    } else {
        row.status = "ok";
        row.explanation = desc;
        row.source = src;
        row.raw = res->text;
        x->n_ok++;
    }
    int rc = latent_put(x->c, &row, err);
    free(desc);
    return rc;
}

// ---------------------------------------------------------------------------- running

static uint64_t latent_seed(int64_t seed, int feature) {
    return (uint64_t)seed * 0x9e3779b97f4a7c15ULL + (uint64_t)feature * 0xbf58476d1ce4e5b9ULL +
           1;
}

static void free_jobs(struct ctx *c) {
    for (int i = 0; i < c->n_jobs; i++) free(c->jobs[i].prompt);
    free(c->jobs);
    c->jobs = NULL;
    c->n_jobs = 0;
}

/* Plans (stores) the prompts of one scorer for one latent that are not answered yet. */
static int plan_scorer(struct ctx *c, const struct tok *tk, const int *tokens, int T,
                       const float *a, const struct ai_plan *pl, int scorer,
                       const struct prompt *tpl, const char *expl, int *cap,
                       struct store_stmt **ins, struct ev_err *err) {
    const struct ai_window *w = scorer == AI_SCORER_FUZZING    ? pl->fuzz
                                : scorer == AI_SCORER_SIMULATION ? pl->sim
                                                                 : pl->test;
    int nw = scorer == AI_SCORER_FUZZING    ? pl->n_fuzz
             : scorer == AI_SCORER_SIMULATION ? pl->n_sim
                                              : pl->n_test;
    int per = scorer == AI_SCORER_SIMULATION        ? 1
              : c->p->protocol == AI_PROTOCOL_DELPHI ? DL_PER_PROMPT
                                                     : nw;
    char *ex = prompt_escape_untrusted(expl);
    int   rc = EV_OK, sample_no = 0;
    for (int p0 = 0, no = 0; p0 < nw; p0 += per, no++) {
        int np = nw - p0 < per ? nw - p0 : per;
        if (scorer == AI_SCORER_SIMULATION) np = 1;
        int done = prompt_answered(c, scorer, pl->feature, no, err);
        if (done < 0) {
            rc = done;
            break;
        }
        int n_items = scorer == AI_SCORER_SIMULATION ? w[p0].n : np;
        if (done) {
            sample_no += n_items;
            continue;
        }
        char *text = NULL, *block = NULL, nbuf[16];
        snprintf(nbuf, sizeof nbuf, "%d", n_items);
        if (scorer == AI_SCORER_SIMULATION) {
            struct sbuf sb;
            sbuf_init(&sb);
            const int *tw = tokens + (size_t)w[p0].seq * T + w[p0].start;
            for (int i = 0; i < w[p0].n; i++) {
                char *t = token_text(tk, w[p0].start + i > 0 ? tw[i - 1] : -1, tw[i]);
                sbuf_addf(&sb, "%s%d\t%s", i ? "\n" : "", i + 1, t);
                free(t);
            }
            block = sbuf_detach(&sb);
            struct prompt_var v[] = {{"explanation", ex}, {"tokens", block}, {"n", nbuf}};
            rc = prompt_render(tpl, v, 3, &text, err);
        } else {
            block = examples_block(tk, tokens, T, w + p0, np, scorer == AI_SCORER_FUZZING);
            struct prompt_var v[] = {{"explanation", ex}, {"examples", block}, {"n", nbuf}};
            rc = prompt_render(tpl, v, 3, &text, err);
        }
        free(block);
        if (rc) break;
        struct job j = {pl->feature, scorer, no, n_items, text, tpl->hash};
        if ((rc = prompt_put(c, &j, err))) {
            free(text);
            break;
        }
        for (int i = 0; i < np && rc == EV_OK; i++) {
            const struct ai_window *x = &w[p0 + i];
            if (scorer == AI_SCORER_SIMULATION) {
                const int *tw = tokens + (size_t)x->seq * T + x->start;
                for (int t = 0; t < x->n && rc == EV_OK; t++) {
                    char *tt = token_text(tk, x->start + t > 0 ? tw[t - 1] : -1, tw[t]);
                    struct sample_row s = {scorer, pl->feature, sample_no++, no, t + 1,
                                           x->quantile, x->seq, x->start + t, 1,
                                           ai_kind_name((enum ai_kind)x->kind), tt, x->max,
                                           a[(size_t)x->seq * T + x->start + t]};
                    rc = sample_put(c, ins, &s, err);
                    free(tt);
                }
            } else {
                char *tt = window_text(tk, tokens, T, x, scorer == AI_SCORER_FUZZING ? x->marks
                                                                                     : 0);
                struct sample_row s = {scorer, pl->feature, sample_no++, no, i + 1, x->quantile,
                                       x->seq, x->start, x->n,
                                       ai_kind_name((enum ai_kind)x->kind), tt, x->max,
                                       x->label};
                rc = sample_put(c, ins, &s, err);
                free(tt);
            }
        }
        if (rc) {
            free(text);
            break;
        }
        if (c->n_jobs == *cap) {
            *cap = *cap ? 2 * *cap : 64;
            c->jobs = xrealloc(c->jobs, (size_t)*cap * sizeof *c->jobs);
        }
        c->jobs[c->n_jobs++] = j;
    }
    free(ex);
    return rc;
}

int ai_run_seed(struct eval_env *env, const struct eval_run *run, struct grader *g,
                const struct ai_params *p, const struct ai_templates *tpl,
                const struct ai_acts *acts, const int *corpus_tokens,
                const struct ai_latent_info *lat, int n, int64_t seed, struct ev_err *err) {
    const int         T = acts->T;
    const size_t      NT = (size_t)acts->n_seq * T;
    const struct tok *tk = model_tokenizer(env->model);
    struct ctx        c = {.env = env, .run = run, .p = p, .seed = seed};
    struct ai_plan   *plans = xcalloc((size_t)(n > 0 ? n : 1), sizeof *plans);
    struct grader_request *reqs = NULL;
    struct store_stmt *ins = NULL;
    char             **eprompts = NULL, gname[192] = "";
    int               *which = NULL, n_e = 0, rc = EV_OK, in_tx = 0;
    if (g) grader_config_name(grader_config(g), gname, sizeof gname);
    c.grader_name = gname;
    for (int i = 0; i < n; i++) {
        struct rng r;
        rng_seed(&r, latent_seed(seed, lat[i].feature));
        ai_plan_latent(p, lat[i].feature, acts->a + (size_t)i * NT, corpus_tokens, acts->n_seq,
                       T, lat[i].max, &r, &plans[i]);
    }

    /* explanations */
    eprompts = xcalloc((size_t)(n > 0 ? n : 1), sizeof *eprompts);
    which = xcalloc((size_t)(n > 0 ? n : 1), sizeof *which);
    if ((rc = store_begin(env->store, err))) goto out;
    in_tx = 1;
    for (int i = 0; i < n; i++) {
        char *st = NULL;
        if ((rc = latent_status(&c, lat[i].feature, &st, err))) goto out;
        struct latent_row row = {.feature = lat[i].feature, .n_fire = lat[i].n_fire,
                                 .max = lat[i].max};
        if (plans[i].skip) {
            row.status = "skipped";
            row.reason = plans[i].skip;
            if (!st) rc = latent_put(&c, &row, err);
        } else if (lat[i].desc) {
            row.status = "ok";
            row.explanation = lat[i].desc;
            row.source = "user";
            if (!st || strcmp(st, "ok") != 0) rc = latent_put(&c, &row, err);
        } else if (!st || (strcmp(st, "ok") != 0 && strcmp(st, "explanation_unparsed") != 0)) {
            char *block = examples_block(tk, corpus_tokens, T, plans[i].expl, plans[i].n_expl, 1);
            struct prompt_var v[] = {{"examples", block}};
            rc = prompt_render(tpl->explain, v, 1, &eprompts[n_e], err);
            free(block);
            if (rc == EV_OK && !g) {
                row.status = "pending";
                row.reason = "no grader configured";
                row.prompt = eprompts[n_e];
                row.tpl_hash = tpl->explain->hash;
                rc = latent_put(&c, &row, err);
            }
            if (rc == EV_OK) which[n_e++] = i;
        }
        free(st);
        if (rc) goto out;
    }
    if ((rc = store_commit(env->store, err))) goto out;
    in_tx = 0;
    if (!g) {
        ev_info("%s", grader_not_configured_message());
        ev_info("%d explainer prompt%s stored in run %lld (table autointerp_latents); autointerp "
                "has no human-review mode: rerun with a grader to score", n_e,
                n_e == 1 ? "" : "s", (long long)run->id);
        goto out;
    }
    if (n_e > 0) {
        struct expl_ud x = {&c, lat, which, eprompts, tpl->explain->hash, 0, 0, 0};
        reqs = xcalloc((size_t)n_e, sizeof *reqs);
        for (int k = 0; k < n_e; k++)
            reqs[k] = (struct grader_request){tpl->explain->system, eprompts[k], 0, 0};
        ev_info("seed %lld: explaining %d latent%s", (long long)seed, n_e, n_e == 1 ? "" : "s");
        rc = grader_run_batch(g, reqs, n_e, explain_accept, expl_result, &x, err);
        free(reqs);
        reqs = NULL;
        if (x.n_unparsed || x.n_failed)
            ev_info("explainer: %d written, %d unparsed (stored, latent left out), %d failed",
                    x.n_ok, x.n_unparsed, x.n_failed);
        if (rc) goto out;
    }

    /* scorers, one after the other */
    static const int order[] = {AI_SCORER_DETECTION, AI_SCORER_FUZZING, AI_SCORER_SIMULATION};
    for (int s = 0; s < AI_N_SCORERS; s++) {
        int sc = order[s], cap = 0;
        if (!(p->scorers & sc)) continue;
        const struct prompt *t = sc == AI_SCORER_SIMULATION ? tpl->sim
                                 : sc == AI_SCORER_FUZZING  ? tpl->fuzz
                                                            : tpl->score;
        if ((rc = store_begin(env->store, err))) goto out;
        in_tx = 1;
        for (int i = 0; i < n; i++) {
            if (plans[i].skip) continue;
            char *expl = latent_explanation(&c, lat[i].feature);
            if (!expl) continue;
            rc = plan_scorer(&c, tk, corpus_tokens, T, acts->a + (size_t)i * NT, &plans[i], sc,
                             t, expl, &cap, &ins, err);
            free(expl);
            if (rc) goto out;
        }
        store_finalize(ins);
        ins = NULL;
        if ((rc = store_commit(env->store, err))) goto out;
        in_tx = 0;
        if (c.n_jobs > 0) {
            reqs = xcalloc((size_t)c.n_jobs, sizeof *reqs);
            for (int k = 0; k < c.n_jobs; k++)
                reqs[k] = (struct grader_request){t->system, c.jobs[k].prompt, 0, 0};
            ev_info("seed %lld: %s: %d judge prompt%s to ask", (long long)seed,
                    ai_scorer_name((enum ai_scorer)sc), c.n_jobs, c.n_jobs == 1 ? "" : "s");
            rc = grader_run_batch(g, reqs, c.n_jobs, score_accept, score_result, &c, err);
            free(reqs);
            reqs = NULL;
        }
        free_jobs(&c);
        if (rc) goto out;
    }
    if (c.n_unparsed || c.n_failed)
        ev_info("judge: %ld answer%s did not parse (stored, excluded from the scores), %ld "
                "request%s failed (asked again on the next run)", c.n_unparsed,
                c.n_unparsed == 1 ? "" : "s", c.n_failed, c.n_failed == 1 ? "" : "s");
    rc = EV_OK;
out:
    if (in_tx) store_rollback(env->store);
    store_finalize(ins);
    free_jobs(&c);
    free(reqs);
    for (int i = 0; i < n; i++) {
        ai_plan_release(&plans[i]);
        if (eprompts) free(eprompts[i]);
    }
    free(plans);
    free(eprompts);
    free(which);
    return rc;
}

// ---------------------------------------------------------------------------- report

struct boot_ud {
    const struct ai_latent_score *l; /* only the scored (non-failed) latents */
    int                           pooled; /* 1: balanced accuracy of the pooled confusion */
    int                           f1;
};

/* AUC of the pooled samples of the resampled latents: latent k's samples are p/y[r0[k]..r1[k]) */
struct auc_ud {
    const double *p;
    const int    *y;
    const long   *r0, *r1;
};

static double auc_stat(const void *ud, const int *idx, int n) {
    const struct auc_ud *a = ud;
    long                 tot = 0, k = 0;
    for (int i = 0; i < n; i++) tot += a->r1[idx[i]] - a->r0[idx[i]];
    double *p = xmalloc((size_t)(tot > 0 ? tot : 1) * sizeof *p);
    int    *y = xmalloc((size_t)(tot > 0 ? tot : 1) * sizeof *y);
    for (int i = 0; i < n; i++)
        for (long j = a->r0[idx[i]]; j < a->r1[idx[i]]; j++) {
            p[k] = a->p[j];
            y[k++] = a->y[j];
        }
    double v = ai_auc(p, y, (int)tot);
    free(p);
    free(y);
    return v;
}

static double boot_stat(const void *ud, const int *idx, int n) {
    const struct boot_ud *b = ud;
    if (b->pooled) {
        struct ai_confusion c = {0};
        for (int i = 0; i < n; i++) {
            c.tp += b->l[idx[i]].cm.tp;
            c.fp += b->l[idx[i]].cm.fp;
            c.tn += b->l[idx[i]].cm.tn;
            c.fn += b->l[idx[i]].cm.fn;
        }
        return b->f1 ? ai_f1(&c) : ai_balanced_accuracy(&c);
    }
    double s = 0;
    for (int i = 0; i < n; i++) s += b->l[idx[i]].value;
    return s / n;
}

static int compute_score(struct eval_env *env, const struct eval_run *run,
                         const struct ai_params *p, int64_t seed, int sc, struct ai_score *out,
                         struct ev_err *err) {
    struct store_stmt *st = NULL;
    double            *xs = NULL, *ys = NULL, *ps = NULL;
    int               *ysb = NULL;
    size_t             nx = 0, cap = 0, np = 0, capp = 0;
    int                rc, all_prob = 1, cur = -1, r;
    const int          delphi = p->protocol == AI_PROTOCOL_DELPHI && sc != AI_SCORER_SIMULATION;
    memset(out, 0, sizeof *out);
    out->value = out->lo = out->hi = out->f1 = out->f1_lo = out->f1_hi = NAN;
    out->accuracy = out->auc = out->auc_lo = out->auc_hi = out->std_dev = out->chance = NAN;
    for (int q = 0; q < 11; q++) out->per_quantile[q] = NAN;
    long qc[11] = {0};
    rc = store_prepare(env->store,
                       "SELECT s.feature_idx, s.label, s.prediction, s.probability, s.quantile, "
                       "p.parse_status FROM autointerp_samples s JOIN autointerp_prompts p ON "
                       "p.run_id = s.run_id AND p.seed = s.seed AND p.scorer = s.scorer AND "
                       "p.feature_idx = s.feature_idx AND p.prompt_no = s.prompt_no "
                       "WHERE s.run_id = ?1 AND s.seed = ?2 AND s.scorer = ?3 "
                       "ORDER BY s.feature_idx, s.sample_no", &st, err);
    if (rc) return rc;
    store_bind_int(st, 1, run->id);
    store_bind_int(st, 2, seed);
    store_bind_text(st, 3, ai_scorer_name((enum ai_scorer)sc));
    int    capl = 0;
    long  *lstart = NULL; /* (capl) first pooled sample (ps) of each latent */
    struct ai_confusion pooled = {0};
    double              neg_frac_sum = 0;
    while ((r = store_step(st, err)) == STORE_ROW) {
        int feature = (int)store_col_int(st, 0);
        if (feature != cur) {
            if (out->n_lat == capl) {
                capl = capl ? 2 * capl : 16;
                out->lat = xrealloc(out->lat, (size_t)capl * sizeof *out->lat);
                lstart = xrealloc(lstart, (size_t)capl * sizeof *lstart);
            }
            lstart[out->n_lat] = (long)np;
            memset(&out->lat[out->n_lat], 0, sizeof *out->lat);
            out->lat[out->n_lat].feature = feature;
            out->lat[out->n_lat].value = NAN;
            out->n_lat++;
            cur = feature;
            nx = 0;
        }
        struct ai_latent_score *l = &out->lat[out->n_lat - 1];
        double label = store_col_double(st, 1);
        l->n++;
        out->n_samples++;
        if (store_col_is_null(st, 2)) {
            l->n_failed++;
            out->n_failed_samples++;
            l->failed = 1;
            continue;
        }
        double pred = store_col_double(st, 2);
        if (sc == AI_SCORER_SIMULATION) {
            if (nx == cap) {
                cap = cap ? 2 * cap : 256;
                xs = xrealloc(xs, cap * sizeof *xs);
                ys = xrealloc(ys, cap * sizeof *ys);
            }
            xs[nx] = label;
            ys[nx] = store_col_is_null(st, 3) ? pred : store_col_double(st, 3);
            nx++;
            l->value = ai_pearson(xs, ys, (int)nx); /* recomputed as rows come */
            continue;
        }
        int y = label > 0.5, yhat = pred > 0.5;
        if (y && yhat) l->cm.tp++;
        else if (y) l->cm.fn++;
        else if (yhat) l->cm.fp++;
        else l->cm.tn++;
        if (delphi) {
            int q = store_col_is_null(st, 4) ? 0 : (int)store_col_int(st, 4);
            if (q < 0 || q > 10) q = 0;
            if (isnan(out->per_quantile[q])) out->per_quantile[q] = 0;
            out->per_quantile[q] += y == yhat;
            qc[q]++;
            if (np == capp) {
                capp = capp ? 2 * capp : 256;
                ps = xrealloc(ps, capp * sizeof *ps);
                ysb = xrealloc(ysb, capp * sizeof *ysb);
            }
            ysb[np] = y;
            if (store_col_is_null(st, 3)) all_prob = 0;
            else ps[np] = store_col_double(st, 3);
            np++;
        }
    }
    store_finalize(st);
    if (r < 0) {
        rc = EV_EFAIL;
        goto out;
    }
    if (out->n_lat == 0) goto done;
    out->present = 1;
    /* the scored latents first, for the bootstrap */
    struct ai_latent_score *ok = xmalloc((size_t)out->n_lat * sizeof *ok);
    long                   *r0 = xmalloc((size_t)out->n_lat * sizeof *r0); /* ok latents' */
    long                   *r1 = xmalloc((size_t)out->n_lat * sizeof *r1); /* sample ranges */
    int                     n_ok = 0;
    for (int i = 0; i < out->n_lat; i++) {
        struct ai_latent_score *l = &out->lat[i];
        if (!delphi && l->failed) {
            l->value = NAN;
            out->n_failed_latents++;
            continue;
        }
        if (delphi && l->n_failed == l->n) {
            out->n_failed_latents++;
            continue;
        }
        if (sc != AI_SCORER_SIMULATION) {
            l->value = delphi ? ai_balanced_accuracy(&l->cm) : ai_accuracy(&l->cm);
            long P = l->cm.tp + l->cm.fn, N = l->cm.tn + l->cm.fp;
            neg_frac_sum += (double)N / (double)(P + N);
            pooled.tp += l->cm.tp;
            pooled.fp += l->cm.fp;
            pooled.tn += l->cm.tn;
            pooled.fn += l->cm.fn;
        }
        r0[n_ok] = lstart[i];
        r1[n_ok] = i + 1 < out->n_lat ? lstart[i + 1] : (long)np;
        ok[n_ok++] = *l;
    }
    out->n_latents = n_ok;
    if (n_ok > 0) {
        struct boot_ud b = {ok, delphi, 0};
        uint64_t       bseed = (uint64_t)seed * 31 + (uint64_t)sc;
        if (delphi) {
            out->value = ai_balanced_accuracy(&pooled);
            out->f1 = ai_f1(&pooled);
            out->accuracy = ai_accuracy(&pooled);
            out->chance = 0.5;
            ai_bootstrap(boot_stat, &b, n_ok, p->n_bootstrap, bseed, &out->lo, &out->hi);
            b.f1 = 1;
            ai_bootstrap(boot_stat, &b, n_ok, p->n_bootstrap, bseed + 7, &out->f1_lo,
                         &out->f1_hi);
            if (all_prob && np > 0) {
                struct auc_ud au = {ps, ysb, r0, r1};
                /* resampling sorts every pooled sample: fewer resamples for big pools */
                long B = (long)2e7 / (long)np;
                B = B < 200 ? 200 : B > p->n_bootstrap ? p->n_bootstrap : B;
                out->auc = ai_auc(ps, ysb, (int)np);
                ai_bootstrap(auc_stat, &au, n_ok, (int)B, bseed + 13, &out->auc_lo,
                             &out->auc_hi);
            }
            for (int q = 0; q < 11; q++)
                if (qc[q]) out->per_quantile[q] /= (double)qc[q];
        } else {
            double s = 0, s2 = 0;
            for (int i = 0; i < n_ok; i++) s += ok[i].value;
            out->value = s / n_ok;
            for (int i = 0; i < n_ok; i++) {
                double d = ok[i].value - out->value;
                s2 += d * d;
            }
            out->std_dev = sqrt(s2 / n_ok);
            out->chance = sc == AI_SCORER_SIMULATION ? 0.0 : neg_frac_sum / n_ok;
            ai_bootstrap(boot_stat, &b, n_ok, p->n_bootstrap, bseed, &out->lo, &out->hi);
        }
    }
    for (int q = 0; q < 11; q++) out->per_quantile_n[q] = qc[q];
    free(ok);
    free(r0);
    free(r1);
done:
    rc = EV_OK;
out:
    free(lstart);
    free(xs);
    free(ys);
    free(ps);
    free(ysb);
    return rc;
}

int ai_report_compute(struct eval_env *env, const struct eval_run *run,
                      const struct ai_params *p, int64_t seed0, int n_seeds,
                      struct ai_report *rep, struct ev_err *err) {
    static const int order[] = {AI_SCORER_DETECTION, AI_SCORER_FUZZING, AI_SCORER_SIMULATION};
    struct store_stmt *st = NULL;
    int                rc = EV_OK;
    memset(rep, 0, sizeof *rep);
    rep->n_seeds = n_seeds;
    rep->seed0 = seed0;
    rep->s = xcalloc((size_t)n_seeds, sizeof *rep->s);
    for (int k = 0; k < n_seeds && rc == EV_OK; k++)
        for (int s = 0; s < AI_N_SCORERS && rc == EV_OK; s++)
            if (p->scorers & order[s])
                rc = compute_score(env, run, p, seed0 + k, order[s], &rep->s[k][s], err);
    if (rc) return rc;
    rc = store_prepare(env->store, "SELECT sum(status = 'skipped'), sum(status LIKE "
                                   "'explanation_%') FROM autointerp_latents WHERE run_id = ?1 "
                                   "AND seed = ?2", &st, err);
    if (rc) return rc;
    store_bind_int(st, 1, run->id);
    store_bind_int(st, 2, seed0);
    if (store_step(st, err) == STORE_ROW) {
        rep->n_skipped = (int)store_col_int(st, 0);
        rep->n_expl_failed = (int)store_col_int(st, 1);
    }
    store_finalize(st);
    return EV_OK;
}

void ai_report_release(struct ai_report *rep) {
    if (rep->s)
        for (int k = 0; k < rep->n_seeds; k++)
            for (int s = 0; s < AI_N_SCORERS; s++) free(rep->s[k][s].lat);
    free(rep->s);
    memset(rep, 0, sizeof *rep);
}

// ---------------------------------------------------------------------------- exports

static cJSON *num_or_null(double v) {
    return isnan(v) || isinf(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v);
}

static cJSON *ci_json(double lo, double hi) {
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, num_or_null(lo));
    cJSON_AddItemToArray(a, num_or_null(hi));
    return a;
}

static cJSON *sae_cfg_json(struct eval_env *env) {
    cJSON        *j = NULL;
    struct ev_err e;
    const char   *t = env->sae->cfg_json;
    if (t && json_parse(t, strlen(t), "cfg.json", &j, &e) == EV_OK) return j;
    return cJSON_CreateObject();
}

/* An id in UUID form derived from the run's database row and configuration hash, so that the
 * same run exports the same eval_id. */
static void eval_id(struct eval_env *env, const struct eval_run *run, char out[37]) {
    char  hex[65];
    char *s = xasprintf("%s/%lld/%lld", env->sae_hash, (long long)run->id, (long long)run->seed);
    sha256_hex(s, strlen(s), hex);
    free(s);
    snprintf(out, 37, "%.8s-%.4s-4%.3s-8%.3s-%.12s", hex, hex + 8, hex + 12, hex + 15, hex + 18);
}

static int write_json(cJSON *j, const char *path, struct ev_err *err) {
    char *text = json_print_pretty(j);
    size_t n = strlen(text);
    char *t2 = xmalloc(n + 2);
    memcpy(t2, text, n);
    t2[n] = '\n';
    int rc = file_write_atomic(path, t2, n + 1, err);
    free(text);
    free(t2);
    return rc;
}

int ai_write_saebench_json(struct eval_env *env, const struct eval_run *run,
                           const struct ai_report *rep, const char *config_json,
                           const char *path, struct ev_err *err) {
    const struct ai_score *sc = &rep->s[0][0];
    struct store_stmt     *st = NULL;
    cJSON                 *j = cJSON_CreateObject(), *cfg = NULL;
    char                   id[37];
    int                    rc, r;
    struct ev_err          e;
    cJSON_AddStringToObject(j, "eval_type_id", "autointerp");
    if (!config_json || json_parse(config_json, strlen(config_json), "config", &cfg, &e))
        cfg = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "eval_config", cfg);
    eval_id(env, run, id);
    cJSON_AddStringToObject(j, "eval_id", id);
    cJSON_AddNumberToObject(j, "datetime_epoch_millis", (double)now_unix_ms());
    cJSON *m = cJSON_AddObjectToObject(j, "eval_result_metrics");
    cJSON *ai = cJSON_AddObjectToObject(m, "autointerp");
    cJSON_AddItemToObject(ai, "autointerp_score", num_or_null(sc->value));
    cJSON_AddItemToObject(ai, "autointerp_std_dev", num_or_null(sc->std_dev));
    cJSON_AddItemToObject(ai, "autointerp_score_ci95", ci_json(sc->lo, sc->hi));
    cJSON_AddItemToObject(ai, "chance_floor", num_or_null(sc->chance));
    cJSON_AddNumberToObject(ai, "latents_scored", sc->n_latents);
    cJSON_AddNumberToObject(ai, "parse_failures", sc->n_failed_latents);
    cJSON_AddArrayToObject(j, "eval_result_details");
    cJSON *un = cJSON_AddObjectToObject(j, "eval_result_unstructured");
    rc = store_prepare(env->store,
                       "SELECT l.feature_idx, l.explanation, p.raw_answer, "
                       "coalesce(p.parse_status, CASE WHEN l.status = 'ok' THEN 'not asked' "
                       "ELSE l.status END) FROM autointerp_latents l LEFT JOIN "
                       "autointerp_prompts p ON p.run_id = l.run_id AND p.seed = l.seed AND "
                       "p.feature_idx = l.feature_idx AND p.scorer = 'detection' AND "
                       "p.prompt_no = 0 WHERE l.run_id = ?1 AND l.seed = ?2 AND l.status <> "
                       "'skipped' ORDER BY l.feature_idx", &st, err);
    if (rc) goto out;
    store_bind_int(st, 1, run->id);
    store_bind_int(st, 2, rep->seed0);
    int li = 0;
    while ((r = store_step(st, err)) == STORE_ROW) {
        int    f = (int)store_col_int(st, 0);
        char   key[16];
        cJSON *o = cJSON_CreateObject();
        snprintf(key, sizeof key, "%d", f);
        const char *ex = store_col_text(st, 1), *raw = store_col_text(st, 2);
        const char *ps = store_col_text(st, 3);
        cJSON_AddStringToObject(o, "explanation", ex ? ex : "");
        cJSON *pred = cJSON_AddArrayToObject(o, "predictions");
        cJSON *corr = cJSON_AddArrayToObject(o, "correct seqs");
        while (li < sc->n_lat && sc->lat[li].feature < f) li++;
        const struct ai_latent_score *ls = li < sc->n_lat && sc->lat[li].feature == f
                                               ? &sc->lat[li] : NULL;
        /* the windows, from the samples */
        struct store_stmt *ss = NULL;
        if ((rc = store_prepare(env->store,
                                "SELECT position, label, prediction FROM autointerp_samples "
                                "WHERE run_id = ?1 AND seed = ?2 AND scorer = 'detection' AND "
                                "feature_idx = ?3 ORDER BY position", &ss, err))) {
            json_free(o);
            goto out;
        }
        store_bind_int(ss, 1, run->id);
        store_bind_int(ss, 2, rep->seed0);
        store_bind_int(ss, 3, f);
        while (store_step(ss, &e) == STORE_ROW) {
            int pos = (int)store_col_int(ss, 0);
            if (store_col_double(ss, 1) > 0.5) cJSON_AddItemToArray(corr, cJSON_CreateNumber(pos));
            if (!store_col_is_null(ss, 2) && store_col_double(ss, 2) > 0.5)
                cJSON_AddItemToArray(pred, cJSON_CreateNumber(pos));
        }
        store_finalize(ss);
        cJSON_AddItemToObject(o, "score", num_or_null(ls && !ls->failed ? ls->value : NAN));
        cJSON_AddStringToObject(o, "parse_status", ps ? ps : "not asked");
        if (raw) cJSON_AddStringToObject(o, "raw_answer", raw);
        cJSON_AddItemToObject(un, key, o);
    }
    store_finalize(st);
    st = NULL;
    if (r < 0) {
        rc = EV_EFAIL;
        goto out;
    }
    cJSON_AddNullToObject(j, "sae_bench_commit_hash");
    cJSON_AddNullToObject(j, "sae_lens_id");
    cJSON_AddNullToObject(j, "sae_lens_release_id");
    cJSON_AddNullToObject(j, "sae_lens_version");
    cJSON_AddItemToObject(j, "sae_cfg_dict", sae_cfg_json(env));
    rc = write_json(j, path, err);
out:
    store_finalize(st);
    json_free(j);
    return rc;
}

static cJSON *delphi_scorer_json(const struct ai_score *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "balanced_accuracy", num_or_null(s->value));
    cJSON_AddItemToObject(o, "balanced_accuracy_ci95", ci_json(s->lo, s->hi));
    cJSON_AddItemToObject(o, "f1", num_or_null(s->f1));
    cJSON_AddItemToObject(o, "f1_ci95", ci_json(s->f1_lo, s->f1_hi));
    cJSON_AddItemToObject(o, "accuracy", num_or_null(s->accuracy));
    cJSON_AddItemToObject(o, "auc", num_or_null(s->auc));
    cJSON_AddItemToObject(o, "auc_ci95", ci_json(s->auc_lo, s->auc_hi));
    cJSON_AddNumberToObject(o, "samples", (double)(s->n_samples - s->n_failed_samples));
    cJSON_AddNumberToObject(o, "failed", (double)s->n_failed_samples);
    cJSON_AddNumberToObject(o, "latents", s->n_latents);
    cJSON_AddNumberToObject(o, "chance", 0.5);
    cJSON *pq = cJSON_AddArrayToObject(o, "per_quantile");
    for (int q = 1; q <= 10; q++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "quantile", q);
        cJSON_AddItemToObject(e, "accuracy", num_or_null(s->per_quantile[q]));
        cJSON_AddNumberToObject(e, "samples", (double)s->per_quantile_n[q]);
        cJSON_AddItemToArray(pq, e);
    }
    cJSON_AddItemToObject(o, "nonactivating_accuracy", num_or_null(s->per_quantile[0]));
    return o;
}

int ai_write_delphi_json(struct eval_env *env, const struct eval_run *run,
                         const struct ai_params *p, const struct ai_report *rep,
                         const char *path, struct ev_err *err) {
    static const int   order[] = {AI_SCORER_DETECTION, AI_SCORER_FUZZING, AI_SCORER_SIMULATION};
    struct store_stmt *st = NULL;
    cJSON             *j = cJSON_CreateObject();
    int                rc, r;
    cJSON_AddStringToObject(j, "protocol", "delphi");
    cJSON_AddStringToObject(j, "negatives", p->negatives == AI_NEGATIVES_SIMILAR
                                                ? "similar (token-overlap stand-in)"
                                                : "random");
    cJSON *sc = cJSON_AddObjectToObject(j, "scorers");
    for (int s = 0; s < AI_N_SCORERS; s++) {
        const struct ai_score *x = &rep->s[0][s];
        if (!(p->scorers & order[s])) continue;
        if (order[s] == AI_SCORER_SIMULATION) {
            cJSON *o = cJSON_AddObjectToObject(sc, "simulation");
            cJSON_AddItemToObject(o, "pearson", num_or_null(x->value));
            cJSON_AddItemToObject(o, "pearson_ci95", ci_json(x->lo, x->hi));
            cJSON_AddNumberToObject(o, "latents", x->n_latents);
            cJSON_AddNumberToObject(o, "failed", x->n_failed_latents);
        } else {
            cJSON_AddItemToObject(sc, ai_scorer_name((enum ai_scorer)order[s]),
                                  delphi_scorer_json(x));
        }
    }
    cJSON *lats = cJSON_AddArrayToObject(j, "latents");
    rc = store_prepare(env->store, "SELECT feature_idx, status, reason, explanation, n_firings, "
                                   "max_act FROM autointerp_latents WHERE run_id = ?1 AND seed = "
                                   "?2 ORDER BY feature_idx", &st, err);
    if (rc) goto out;
    store_bind_int(st, 1, run->id);
    store_bind_int(st, 2, rep->seed0);
    while ((r = store_step(st, err)) == STORE_ROW) {
        int         f = (int)store_col_int(st, 0);
        cJSON      *o = cJSON_CreateObject();
        const char *ex = store_col_text(st, 3), *reason = store_col_text(st, 2);
        cJSON_AddNumberToObject(o, "latent", f);
        cJSON_AddStringToObject(o, "status", store_col_text(st, 1));
        if (reason) cJSON_AddStringToObject(o, "reason", reason);
        if (ex) cJSON_AddStringToObject(o, "explanation", ex);
        else cJSON_AddNullToObject(o, "explanation");
        cJSON_AddNumberToObject(o, "firings", (double)store_col_int(st, 4));
        cJSON_AddNumberToObject(o, "max_activation", store_col_double(st, 5));
        for (int s = 0; s < AI_N_SCORERS; s++) {
            const struct ai_score *x = &rep->s[0][s];
            if (!(p->scorers & order[s])) continue;
            for (int i = 0; i < x->n_lat; i++) {
                if (x->lat[i].feature != f) continue;
                cJSON *e = cJSON_AddObjectToObject(o, ai_scorer_name((enum ai_scorer)order[s]));
                if (order[s] == AI_SCORER_SIMULATION) {
                    cJSON_AddItemToObject(e, "pearson", num_or_null(x->lat[i].value));
                } else {
                    cJSON_AddItemToObject(e, "balanced_accuracy", num_or_null(x->lat[i].value));
                    cJSON_AddItemToObject(e, "f1", num_or_null(ai_f1(&x->lat[i].cm)));
                }
                cJSON_AddNumberToObject(e, "samples", (double)(x->lat[i].n - x->lat[i].n_failed));
                cJSON_AddNumberToObject(e, "failed", (double)x->lat[i].n_failed);
            }
        }
        cJSON_AddItemToArray(lats, o);
    }
    store_finalize(st);
    st = NULL;
    if (r < 0) {
        rc = EV_EFAIL;
        goto out;
    }
    rc = write_json(j, path, err);
out:
    store_finalize(st);
    json_free(j);
    return rc;
}
