/*
 * autointerp_report — the autointerp report: per-latent scores with bootstrap intervals, and
 * the helpers the protocols' exports share (see autointerp.h).
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
    double            *xs = NULL, *ys = NULL, *ps = NULL;
    int               *ysb = NULL;
    size_t             nx = 0, cap = 0, np = 0, capp = 0;
    int                rc, all_prob = 1, cur = -1;
    const int          delphi = p->protocol == AI_PROTOCOL_DELPHI && sc != AI_SCORER_SIMULATION;
    memset(out, 0, sizeof *out);
    out->value = out->lo = out->hi = out->f1 = out->f1_lo = out->f1_hi = NAN;
    out->accuracy = out->auc = out->auc_lo = out->auc_hi = out->std_dev = out->chance = NAN;
    for (int q = 0; q < 11; q++) out->per_quantile[q] = NAN;
    long qc[11] = {0};
    struct autointerp_scored *rows = NULL;
    int                       n_rows = 0;
    rc = autointerp_scored_samples(env->store, run->id, seed, ai_scorer_name((enum ai_scorer)sc),
                                   &rows, &n_rows, err);
    if (rc) return rc;
    int    capl = 0;
    long  *lstart = NULL; /* (capl) first pooled sample (ps) of each latent */
    struct ai_confusion pooled = {0};
    double              neg_frac_sum = 0;
    for (int k = 0; k < n_rows; k++) {
        const struct autointerp_scored *row = &rows[k];
        int feature = row->feature;
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
        double label = row->label;
        l->n++;
        out->n_samples++;
        if (isnan(row->prediction)) {
            l->n_failed++;
            out->n_failed_samples++;
            l->failed = 1;
            continue;
        }
        double pred = row->prediction;
        if (sc == AI_SCORER_SIMULATION) {
            if (nx == cap) {
                cap = cap ? 2 * cap : 256;
                xs = xrealloc(xs, cap * sizeof *xs);
                ys = xrealloc(ys, cap * sizeof *ys);
            }
            xs[nx] = label;
            ys[nx] = isnan(row->probability) ? pred : row->probability;
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
            int q = row->quantile;
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
            if (isnan(row->probability)) all_prob = 0;
            else ps[np] = row->probability;
            np++;
        }
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
    free(rows);
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
    int rc = EV_OK;
    memset(rep, 0, sizeof *rep);
    rep->n_seeds = n_seeds;
    rep->seed0 = seed0;
    rep->s = xcalloc((size_t)n_seeds, sizeof *rep->s);
    for (int k = 0; k < n_seeds && rc == EV_OK; k++)
        for (int s = 0; s < AI_N_SCORERS && rc == EV_OK; s++)
            if (p->scorers & order[s])
                rc = compute_score(env, run, p, seed0 + k, order[s], &rep->s[k][s], err);
    if (rc) return rc;
    return autointerp_latent_counts(env->store, run->id, seed0, &rep->n_skipped,
                                    &rep->n_expl_failed, err);
}

void ai_report_release(struct ai_report *rep) {
    if (rep->s)
        for (int k = 0; k < rep->n_seeds; k++)
            for (int s = 0; s < AI_N_SCORERS; s++) free(rep->s[k][s].lat);
    free(rep->s);
    memset(rep, 0, sizeof *rep);
}

// ---------------------------------------------------------------------------- exports

cJSON *ai_num_or_null(double v) {
    return isnan(v) || isinf(v) ? cJSON_CreateNull() : cJSON_CreateNumber(v);
}

cJSON *ai_ci_json(double lo, double hi) {
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, ai_num_or_null(lo));
    cJSON_AddItemToArray(a, ai_num_or_null(hi));
    return a;
}

cJSON *ai_sae_cfg_json(struct eval_env *env) {
    cJSON        *j = NULL;
    struct ev_err e;
    const char   *t = env->sae->cfg_json;
    if (t && json_parse(t, strlen(t), "cfg.json", &j, &e) == EV_OK) return j;
    return cJSON_CreateObject();
}

/* An id in UUID form derived from the run's database row and configuration hash, so that the
 * same run exports the same eval_id. */
void ai_eval_id(struct eval_env *env, const struct eval_run *run, char out[37]) {
    char  hex[65];
    char *s = xasprintf("%s/%lld/%lld", env->sae_hash, (long long)run->id, (long long)run->seed);
    sha256_hex(s, strlen(s), hex);
    free(s);
    snprintf(out, 37, "%.8s-%.4s-4%.3s-8%.3s-%.12s", hex, hex + 8, hex + 12, hex + 15, hex + 18);
}
