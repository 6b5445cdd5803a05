/*
 * stats — the statistics of compare, report and review: means, Pearson and Spearman
 * correlations, quadratic-weighted Cohen's kappa, and percentile-bootstrap confidence
 * intervals of a difference between two samples (paired or not).
 *
 * Included by: evals and harness/cli.
 *
 * Conventions: values that are undefined (an empty sample, a constant variable in a
 * correlation, a single category in kappa) are NAN, never 0, so that callers can show '-'.
 * Bootstrap draws come from a struct rng the caller seeds: the same seed gives the same
 * interval (reproducible CI gates). Nothing here allocates memory the caller must free.
 */
#ifndef EV_STATS_H
#define EV_STATS_H

#include "base/util.h"

/* Arithmetic mean; NAN when n == 0. */
double stats_mean(const double *x, int n);
/* Pearson correlation; NAN when n < 2 or either variable is constant. */
double stats_pearson(const double *x, const double *y, int n);
/* Average ranks (1-based; ties get the mean of the ranks they span) of x into ranks (n). */
void stats_ranks(double *ranks, const double *x, int n);
/* Spearman's rho: Pearson of the average ranks; NAN as for Pearson. */
double stats_spearman(const double *x, const double *y, int n);
/* Cohen's kappa with quadratic weights, w_ij = (i-j)^2/(k-1)^2, for two raters' integer
 * scores a and b (n items) on categories 0..k-1 (k >= 2; scores outside are ignored).
 * Expected disagreement from the product of the marginals. NAN when it is 0 (e.g. both
 * raters always gave one and the same score) or no item is left. */
double stats_kappa_quadratic(const int *a, const int *b, int n, int k);

/* A statistic and its interval. */
struct stats_ci {
    double est;    /* the statistic on the data */
    double lo, hi; /* percentile-bootstrap 95% interval (NAN when undefined) */
};

enum stats_stat {
    STATS_MEAN,    /* mean of x */
    STATS_PEARSON, /* Pearson of (x, y) */
};

/* One sample: x (n), and y (n) for STATS_PEARSON (else NULL). Borrowed. */
struct stats_sample {
    const double *x, *y;
    int           n;
};

/* The statistic of one sample. */
double stats_eval(enum stats_stat stat, const struct stats_sample *s);

/*
 * Bootstrap of the difference stat(cand) - stat(base), n_boot replicates (e.g. 2000).
 * paired: base and cand have the same n and unit i is the same item on both sides; units are
 * resampled together (one index set for both). Unpaired: each side is resampled on its own.
 * The interval is the 2.5th and 97.5th percentiles (linear interpolation, numpy's default) of
 * the replicates whose statistic is defined; NAN when fewer than half are, or when a side is
 * empty. out->est is the difference on the data.
 */
void stats_bootstrap_diff(enum stats_stat stat, const struct stats_sample *base,
                          const struct stats_sample *cand, int paired, int n_boot,
                          struct rng *r, struct stats_ci *out);

/* Bootstrap of stat(x) itself (one sample resampled n_boot times): the percentile 95% interval
 * as stats_bootstrap_diff gives it (NAN when fewer than half the replicates are defined, or x
 * is empty); out->est is stat(x). */
void stats_bootstrap_one(enum stats_stat stat, const struct stats_sample *x, int n_boot,
                         struct rng *r, struct stats_ci *out);

/* The q-quantile (0..1, linear interpolation between order statistics) of x (n > 0); x is
 * sorted in place. */
double stats_quantile_sorted(double *x, int n, double q);

#endif
