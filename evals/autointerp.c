/*
 * autointerp — the SAEBench and Delphi autointerp protocols, common part: names and parameters,
 * corpus activations, latent selection, the sampling plan's dispatch and the metrics (see
 * autointerp.h and docs/autointerp.md). Each protocol's sampling and export is in its own file
 * (autointerp_saebench.c, autointerp_delphi.c); judging and storage in autointerp_run.c; the
 * report in autointerp_report.c.
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

void ai_plan_latent(const struct ai_params *p, int feature, const float *a, const int *tokens,
                    int n_seq, int T, float max_act, struct rng *r, struct ai_plan *plan) {
    memset(plan, 0, sizeof *plan);
    plan->feature = feature;
    if (p->protocol == AI_PROTOCOL_DELPHI) ai_plan_delphi(p, a, tokens, n_seq, T, r, plan);
    else ai_plan_saebench(p, a, n_seq, T, max_act, r, plan);
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
    return n ? (double)(c->tp + c->tn) / (double)n : (double)NAN;
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

