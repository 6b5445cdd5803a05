/*
 * stats — means, correlations, weighted kappa and bootstrap intervals (see stats.h).
 */
#include "evals/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double stats_mean(const double *x, int n) {
    if (n <= 0) return NAN;
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s / n;
}

double stats_pearson(const double *x, const double *y, int n) {
    if (n < 2) return NAN;
    double mx = stats_mean(x, n), my = stats_mean(y, n);
    double sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) {
        double dx = x[i] - mx, dy = y[i] - my;
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if (sxx <= 0 || syy <= 0) return NAN;
    double r = sxy / sqrt(sxx * syy);
    return r > 1.0 ? 1.0 : r < -1.0 ? -1.0 : r; /* rounding can step past ±1 */
}

struct rank_pair {
    double v;
    int    i;
};

static int cmp_rank_pair(const void *a, const void *b) {
    const struct rank_pair *p = a, *q = b;
    if (p->v < q->v) return -1;
    if (p->v > q->v) return 1;
    return p->i - q->i;
}

void stats_ranks(double *ranks, const double *x, int n) {
    if (n <= 0) return;
    struct rank_pair *p = xmalloc((size_t)n * sizeof *p);
    for (int i = 0; i < n; i++) p[i] = (struct rank_pair){x[i], i};
    qsort(p, (size_t)n, sizeof *p, cmp_rank_pair);
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && p[j + 1].v == p[i].v) j++;
        double r = (i + j) / 2.0 + 1.0; /* mean of ranks i+1 .. j+1 */
        for (int t = i; t <= j; t++) ranks[p[t].i] = r;
        i = j + 1;
    }
    free(p);
}

double stats_spearman(const double *x, const double *y, int n) {
    if (n < 2) return NAN;
    double *rx = xmalloc((size_t)n * sizeof *rx), *ry = xmalloc((size_t)n * sizeof *ry);
    stats_ranks(rx, x, n);
    stats_ranks(ry, y, n);
    double r = stats_pearson(rx, ry, n);
    free(rx);
    free(ry);
    return r;
}

double stats_kappa_quadratic(const int *a, const int *b, int n, int k) {
    if (k < 2 || n <= 0) return NAN;
    double *obs = xcalloc((size_t)k * k, sizeof *obs);
    double *ma = xcalloc((size_t)k, sizeof *ma), *mb = xcalloc((size_t)k, sizeof *mb);
    double  tot = 0, num = 0, den = 0, kappa = NAN;
    for (int i = 0; i < n; i++) {
        if (a[i] < 0 || a[i] >= k || b[i] < 0 || b[i] >= k) continue;
        obs[a[i] * k + b[i]] += 1;
        ma[a[i]] += 1;
        mb[b[i]] += 1;
        tot += 1;
    }
    if (tot > 0) {
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                double w = (double)(i - j) * (i - j) / ((double)(k - 1) * (k - 1));
                num += w * obs[i * k + j] / tot;
                den += w * (ma[i] / tot) * (mb[j] / tot);
            }
        if (den > 0) kappa = 1.0 - num / den;
    }
    free(obs);
    free(ma);
    free(mb);
    return kappa;
}

double stats_eval(enum stats_stat stat, const struct stats_sample *s) {
    if (stat == STATS_PEARSON) return stats_pearson(s->x, s->y, s->n);
    return stats_mean(s->x, s->n);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double stats_quantile_sorted(double *x, int n, double q) {
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    double h = q * (n - 1);
    int    lo = (int)floor(h);
    if (lo >= n - 1) return x[n - 1];
    return x[lo] + (h - lo) * (x[lo + 1] - x[lo]);
}

/* The statistic of sample s over the resampled unit indices idx (n of them), with scratch
 * buffers bx, by (n each). */
static double stat_resampled(enum stats_stat stat, const struct stats_sample *s, const int *idx,
                             int n, double *bx, double *by) {
    for (int i = 0; i < n; i++) {
        bx[i] = s->x[idx[i]];
        if (stat == STATS_PEARSON) by[i] = s->y[idx[i]];
    }
    struct stats_sample t = {bx, stat == STATS_PEARSON ? by : NULL, n};
    return stats_eval(stat, &t);
}

void stats_bootstrap_diff(enum stats_stat stat, const struct stats_sample *base,
                          const struct stats_sample *cand, int paired, int n_boot,
                          struct rng *r, struct stats_ci *out) {
    out->est = stats_eval(stat, cand) - stats_eval(stat, base);
    out->lo = out->hi = NAN;
    if (base->n <= 0 || cand->n <= 0 || n_boot <= 0) return;
    EV_ASSERT(!paired || base->n == cand->n);
    int     nmax = base->n > cand->n ? base->n : cand->n;
    int    *ia = xmalloc((size_t)nmax * sizeof *ia), *ib = xmalloc((size_t)nmax * sizeof *ib);
    double *bx = xmalloc((size_t)nmax * sizeof *bx), *by = xmalloc((size_t)nmax * sizeof *by);
    double *rep = xmalloc((size_t)n_boot * sizeof *rep);
    int     n_ok = 0;
    for (int b = 0; b < n_boot; b++) {
        for (int i = 0; i < base->n; i++) ia[i] = (int)rng_below(r, (uint64_t)base->n);
        if (paired) memcpy(ib, ia, (size_t)cand->n * sizeof *ib);
        else
            for (int i = 0; i < cand->n; i++) ib[i] = (int)rng_below(r, (uint64_t)cand->n);
        double d = stat_resampled(stat, cand, ib, cand->n, bx, by) -
                   stat_resampled(stat, base, ia, base->n, bx, by);
        if (!isnan(d)) rep[n_ok++] = d;
    }
    if (n_ok > 0 && 2 * n_ok >= n_boot) {
        out->lo = stats_quantile_sorted(rep, n_ok, 0.025);
        out->hi = stats_quantile_sorted(rep, n_ok, 0.975);
    }
    free(ia);
    free(ib);
    free(bx);
    free(by);
    free(rep);
}

void stats_bootstrap_one(enum stats_stat stat, const struct stats_sample *x, int n_boot,
                         struct rng *r, struct stats_ci *out) {
    out->est = stats_eval(stat, x);
    out->lo = out->hi = NAN;
    if (x->n <= 0 || n_boot <= 0) return;
    int    *ix = xmalloc((size_t)x->n * sizeof *ix);
    double *bx = xmalloc((size_t)x->n * sizeof *bx), *by = xmalloc((size_t)x->n * sizeof *by);
    double *rep = xmalloc((size_t)n_boot * sizeof *rep);
    int     n_ok = 0;
    for (int b = 0; b < n_boot; b++) {
        for (int i = 0; i < x->n; i++) ix[i] = (int)rng_below(r, (uint64_t)x->n);
        double v = stat_resampled(stat, x, ix, x->n, bx, by);
        if (!isnan(v)) rep[n_ok++] = v;
    }
    if (n_ok > 0 && 2 * n_ok >= n_boot) {
        out->lo = stats_quantile_sorted(rep, n_ok, 0.025);
        out->hi = stats_quantile_sorted(rep, n_ok, 0.975);
    }
    free(ix);
    free(bx);
    free(by);
    free(rep);
}
