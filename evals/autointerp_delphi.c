/*
 * autointerp_delphi — the Delphi protocol: its window sampling (quantile, random and similar
 * blocks) and its JSON export (see autointerp.h).
 */
#include "evals/autointerp.h"
#include "evals/autointerp_int.h"
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
#include "store/autointerp.h"

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

void ai_plan_delphi(const struct ai_params *p, const float *a, const int *tokens, int n_seq,
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
                                         marks_above(wa, DL_W,
                                                     (float)(p->fuzz_frac * (double)act[i].max), 0)};
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
        uint64_t          good = marks_above(wa, DL_W, (float)(p->fuzz_frac * (double)w->max), 0);
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

static cJSON *delphi_scorer_json(const struct ai_score *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "balanced_accuracy", ai_num_or_null(s->value));
    cJSON_AddItemToObject(o, "balanced_accuracy_ci95", ai_ci_json(s->lo, s->hi));
    cJSON_AddItemToObject(o, "f1", ai_num_or_null(s->f1));
    cJSON_AddItemToObject(o, "f1_ci95", ai_ci_json(s->f1_lo, s->f1_hi));
    cJSON_AddItemToObject(o, "accuracy", ai_num_or_null(s->accuracy));
    cJSON_AddItemToObject(o, "auc", ai_num_or_null(s->auc));
    cJSON_AddItemToObject(o, "auc_ci95", ai_ci_json(s->auc_lo, s->auc_hi));
    cJSON_AddNumberToObject(o, "samples", (double)(s->n_samples - s->n_failed_samples));
    cJSON_AddNumberToObject(o, "failed", (double)s->n_failed_samples);
    cJSON_AddNumberToObject(o, "latents", s->n_latents);
    cJSON_AddNumberToObject(o, "chance", 0.5);
    cJSON *pq = cJSON_AddArrayToObject(o, "per_quantile");
    for (int q = 1; q <= 10; q++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "quantile", q);
        cJSON_AddItemToObject(e, "accuracy", ai_num_or_null(s->per_quantile[q]));
        cJSON_AddNumberToObject(e, "samples", (double)s->per_quantile_n[q]);
        cJSON_AddItemToArray(pq, e);
    }
    cJSON_AddItemToObject(o, "nonactivating_accuracy", ai_num_or_null(s->per_quantile[0]));
    return o;
}

int ai_write_delphi_json(struct eval_env *env, const struct eval_run *run,
                         const struct ai_params *p, const struct ai_report *rep,
                         const char *path, struct ev_err *err) {
    static const int order[] = {AI_SCORER_DETECTION, AI_SCORER_FUZZING, AI_SCORER_SIMULATION};
    cJSON           *j = cJSON_CreateObject();
    int              rc;
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
            cJSON_AddItemToObject(o, "pearson", ai_num_or_null(x->value));
            cJSON_AddItemToObject(o, "pearson_ci95", ai_ci_json(x->lo, x->hi));
            cJSON_AddNumberToObject(o, "latents", x->n_latents);
            cJSON_AddNumberToObject(o, "failed", x->n_failed_latents);
        } else {
            cJSON_AddItemToObject(sc, ai_scorer_name((enum ai_scorer)order[s]),
                                  delphi_scorer_json(x));
        }
    }
    cJSON *lats = cJSON_AddArrayToObject(j, "latents");
    struct autointerp_latent *rows = NULL;
    int                       n_rows = 0;
    rc = autointerp_latents(env->store, run->id, rep->seed0, &rows, &n_rows, err);
    if (rc) goto out;
    for (int k = 0; k < n_rows; k++) {
        int         f = rows[k].feature;
        cJSON      *o = cJSON_CreateObject();
        const char *ex = rows[k].explanation, *reason = rows[k].reason;
        cJSON_AddNumberToObject(o, "latent", f);
        cJSON_AddStringToObject(o, "status", rows[k].status);
        if (reason) cJSON_AddStringToObject(o, "reason", reason);
        if (ex) cJSON_AddStringToObject(o, "explanation", ex);
        else cJSON_AddNullToObject(o, "explanation");
        cJSON_AddNumberToObject(o, "firings", (double)rows[k].n_firings);
        cJSON_AddNumberToObject(o, "max_activation", rows[k].max_act);
        for (int s = 0; s < AI_N_SCORERS; s++) {
            const struct ai_score *x = &rep->s[0][s];
            if (!(p->scorers & order[s])) continue;
            for (int i = 0; i < x->n_lat; i++) {
                if (x->lat[i].feature != f) continue;
                cJSON *e = cJSON_AddObjectToObject(o, ai_scorer_name((enum ai_scorer)order[s]));
                if (order[s] == AI_SCORER_SIMULATION) {
                    cJSON_AddItemToObject(e, "pearson", ai_num_or_null(x->lat[i].value));
                } else {
                    cJSON_AddItemToObject(e, "balanced_accuracy", ai_num_or_null(x->lat[i].value));
                    cJSON_AddItemToObject(e, "f1", ai_num_or_null(ai_f1(&x->lat[i].cm)));
                }
                cJSON_AddNumberToObject(e, "samples", (double)(x->lat[i].n - x->lat[i].n_failed));
                cJSON_AddNumberToObject(e, "failed", (double)x->lat[i].n_failed);
            }
        }
        cJSON_AddItemToArray(lats, o);
    }
    autointerp_latents_free(rows, n_rows);
    rc = json_write_file(path, j, JSON_WRITE_PRETTY | JSON_WRITE_NEWLINE, err);
out:
    json_free(j);
    return rc;
}

