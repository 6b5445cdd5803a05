/*
 * test_stats — evals/stats.c against independent references: Wikipedia's worked Spearman
 * example, the identity between quadratic-weighted kappa and Lin's concordance coefficient
 * (kappa_w = 2 cov(a,b) / (var a + var b + (mean a - mean b)^2), population moments, exact
 * for integer scores), Cohen's published weighted-kappa table, and normal theory for the
 * bootstrap (the interval of a mean difference has width about 2 * 1.96 * SE).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "evals/stats.h"

/* Wikipedia, "Spearman's rank correlation coefficient", IQ vs hours of TV: rho = -29/165. */
static void test_spearman_wikipedia(void **state) {
    (void)state;
    const double iq[] = {106, 100, 86, 101, 99, 103, 97, 113, 112, 110};
    const double tv[] = {7, 27, 2, 50, 28, 29, 20, 12, 6, 17};
    assert_true(fabs(stats_spearman(iq, tv, 10) - (-29.0 / 165.0)) < 1e-12);
}

static void test_ranks_ties(void **state) {
    (void)state;
    const double x[] = {3, 1, 3, 2, 3};
    double       r[5];
    stats_ranks(r, x, 5);
    const double want[] = {4, 1, 4, 2, 4}; /* the three 3s share ranks 3, 4, 5 */
    for (int i = 0; i < 5; i++) assert_true(r[i] == want[i]);
    /* with ties, Spearman is the Pearson of the average ranks: a monotone map keeps it 1 */
    const double y[] = {30, 10, 30, 20, 30};
    assert_true(fabs(stats_spearman(x, y, 5) - 1.0) < 1e-12);
}

static void test_pearson_undefined(void **state) {
    (void)state;
    const double x[] = {1, 1, 1}, y[] = {1, 2, 3};
    assert_true(isnan(stats_pearson(x, y, 3)));
    assert_true(isnan(stats_pearson(x, y, 1)));
    assert_true(isnan(stats_mean(x, 0)));
    const double a[] = {1, 2, 3, 4}, b[] = {2, 4, 6, 8.5};
    /* by hand: dx = -1.5 -.5 .5 1.5; dy = -3.125 -1.125 .875 3.375 */
    double sxy = 1.5 * 3.125 + .5 * 1.125 + .5 * .875 + 1.5 * 3.375;
    double sxx = 5, syy = 3.125 * 3.125 + 1.125 * 1.125 + .875 * .875 + 3.375 * 3.375;
    assert_true(fabs(stats_pearson(a, b, 4) - sxy / sqrt(sxx * syy)) < 1e-12);
}

static double lin_ccc(const int *a, const int *b, int n) {
    double ma = 0, mb = 0, va = 0, vb = 0, c = 0;
    for (int i = 0; i < n; i++) ma += a[i], mb += b[i];
    ma /= n, mb /= n;
    for (int i = 0; i < n; i++) {
        va += (a[i] - ma) * (a[i] - ma);
        vb += (b[i] - mb) * (b[i] - mb);
        c += (a[i] - ma) * (b[i] - mb);
    }
    va /= n, vb /= n, c /= n;
    return 2 * c / (va + vb + (ma - mb) * (ma - mb));
}

static void test_kappa_is_lin_ccc(void **state) {
    (void)state;
    struct rng r;
    rng_seed(&r, 7);
    for (int trial = 0; trial < 50; trial++) {
        int n = 5 + (int)rng_below(&r, 60), a[80], b[80];
        for (int i = 0; i < n; i++) {
            a[i] = (int)rng_below(&r, 4);
            /* correlated: b is a plus noise, clipped to 0..3 */
            int d = (int)rng_below(&r, 3) - 1;
            b[i] = a[i] + (trial % 3 ? d : (int)rng_below(&r, 4) - a[i]);
            b[i] = b[i] < 0 ? 0 : b[i] > 3 ? 3 : b[i];
        }
        double want = lin_ccc(a, b, n), got = stats_kappa_quadratic(a, b, n, 4);
        if (isnan(want)) assert_true(isnan(got));
        else assert_true(fabs(got - want) < 1e-12);
    }
}

static void test_kappa_edges(void **state) {
    (void)state;
    const int a[] = {0, 1, 2, 3, 3}, b[] = {0, 1, 2, 3, 3};
    assert_true(fabs(stats_kappa_quadratic(a, b, 5, 4) - 1.0) < 1e-12);
    const int c[] = {2, 2, 2}, d[] = {2, 2, 2};
    assert_true(isnan(stats_kappa_quadratic(c, d, 3, 4))); /* no expected disagreement */
    /* reversed scale 0..3 vs 3..0 with uniform marginals: kappa_w = -1 */
    const int e[] = {0, 1, 2, 3}, f[] = {3, 2, 1, 0};
    assert_true(fabs(stats_kappa_quadratic(e, f, 4, 4) + 1.0) < 1e-12);
    /* out-of-range scores are ignored */
    const int g[] = {0, 1, 9, 2, 3}, h[] = {0, 1, 0, 2, 3};
    assert_true(fabs(stats_kappa_quadratic(g, h, 5, 4) - 1.0) < 1e-12);
}

static void test_bootstrap_normal_theory(void **state) {
    (void)state;
    enum { N = 400 };
    static double x[N], y[N];
    struct rng    r;
    rng_seed(&r, 11);
    for (int i = 0; i < N; i++) {
        x[i] = rng_normal(&r);
        y[i] = 0.5 + (double)rng_normal(&r);
    }
    struct stats_sample base = {x, NULL, N}, cand = {y, NULL, N};
    struct stats_ci     ci, ci2;
    struct rng          b1, b2;
    rng_seed(&b1, 3);
    stats_bootstrap_diff(STATS_MEAN, &base, &cand, 0, 2000, &b1, &ci);
    assert_true(fabs(ci.est - (stats_mean(y, N) - stats_mean(x, N))) < 1e-12);
    assert_true(ci.lo < ci.est && ci.est < ci.hi);
    assert_true(ci.lo > 0); /* a shift of 0.5 SD with n = 400 is far from 0 */
    /* normal theory: SE = sqrt(s_x^2/n + s_y^2/n) ~ sqrt(2/400); width ~ 3.92 SE */
    double sx = 0, sy = 0, mx = stats_mean(x, N), my = stats_mean(y, N);
    for (int i = 0; i < N; i++) sx += (x[i] - mx) * (x[i] - mx), sy += (y[i] - my) * (y[i] - my);
    double se = sqrt(sx / N / N + sy / N / N);
    assert_true(fabs((ci.hi - ci.lo) / (2 * 1.959964 * se) - 1.0) < 0.12);
    /* reproducible from the seed */
    rng_seed(&b2, 3);
    stats_bootstrap_diff(STATS_MEAN, &base, &cand, 0, 2000, &b2, &ci2);
    assert_true(ci.lo == ci2.lo && ci.hi == ci2.hi);

    /* paired: y = x + 0.05 + small noise; the paired SE is that of the differences */
    for (int i = 0; i < N; i++) y[i] = x[i] + 0.05 + 0.1 * (double)rng_normal(&r);
    double dm = 0, dv = 0;
    for (int i = 0; i < N; i++) dm += y[i] - x[i];
    dm /= N;
    for (int i = 0; i < N; i++) dv += (y[i] - x[i] - dm) * (y[i] - x[i] - dm);
    double pse = sqrt(dv / N / N);
    rng_seed(&b1, 3);
    stats_bootstrap_diff(STATS_MEAN, &base, &cand, 1, 2000, &b1, &ci);
    assert_true(fabs((ci.hi - ci.lo) / (2 * 1.959964 * pse) - 1.0) < 0.12);
    assert_true(ci.lo > 0); /* the unpaired interval would include 0 here */
    rng_seed(&b1, 3);
    stats_bootstrap_diff(STATS_MEAN, &base, &cand, 0, 2000, &b1, &ci2);
    assert_true(ci2.lo < 0);
}

/* one sample (the report's Metrics interval): the percentile interval of a mean has width
 * about 2 * 1.96 * s / sqrt(n) around it; a Pearson one holds the estimate; empty: NAN */
static void test_bootstrap_one(void **state) {
    (void)state;
    enum { N = 400 };
    static double x[N], y[N];
    struct rng    r, b;
    rng_seed(&r, 5);
    for (int i = 0; i < N; i++) {
        x[i] = 2.0 + (double)rng_normal(&r);
        y[i] = x[i] + (double)rng_normal(&r);
    }
    struct stats_sample s = {x, NULL, N}, sp = {x, y, N}, none = {x, NULL, 0};
    struct stats_ci     ci;
    rng_seed(&b, 1);
    stats_bootstrap_one(STATS_MEAN, &s, 2000, &b, &ci);
    double m = stats_mean(x, N), ss = 0;
    for (int i = 0; i < N; i++) ss += (x[i] - m) * (x[i] - m);
    double se = sqrt(ss / (N - 1)) / sqrt((double)N);
    assert_true(fabs(ci.est - m) < 1e-12 && ci.lo < m && m < ci.hi);
    assert_true(fabs((ci.hi - ci.lo) / (2 * 1.959964 * se) - 1.0) < 0.12);
    stats_bootstrap_one(STATS_PEARSON, &sp, 1000, &b, &ci);
    assert_true(ci.lo < ci.est && ci.est < ci.hi && ci.hi <= 1.0);
    stats_bootstrap_one(STATS_MEAN, &none, 1000, &b, &ci);
    assert_true(isnan(ci.lo) && isnan(ci.hi));
}

static void test_bootstrap_pearson_and_empty(void **state) {
    (void)state;
    enum { N = 200 };
    static double x[N], y[N], z[N];
    struct rng    r;
    rng_seed(&r, 5);
    for (int i = 0; i < N; i++) {
        x[i] = rng_normal(&r);
        y[i] = x[i] + 0.3 * (double)rng_normal(&r); /* r ~ 0.96 */
        z[i] = x[i] + 2.0 * (double)rng_normal(&r); /* r ~ 0.45 */
    }
    struct stats_sample good = {x, y, N}, bad = {x, z, N}, none = {x, y, 0};
    struct stats_ci     ci;
    struct rng          b;
    rng_seed(&b, 1);
    stats_bootstrap_diff(STATS_PEARSON, &good, &bad, 0, 1000, &b, &ci);
    assert_true(ci.est < -0.3 && ci.hi < 0);
    stats_bootstrap_diff(STATS_PEARSON, &good, &none, 0, 1000, &b, &ci);
    assert_true(isnan(ci.lo) && isnan(ci.hi));
}

static void test_quantile(void **state) {
    (void)state;
    double x[] = {4, 1, 3, 2, 5};
    assert_true(stats_quantile_sorted(x, 5, 0.5) == 3);
    assert_true(fabs(stats_quantile_sorted(x, 5, 0.1) - 1.4) < 1e-12); /* numpy: 1.4 */
    assert_true(stats_quantile_sorted(x, 5, 1.0) == 5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spearman_wikipedia),
        cmocka_unit_test(test_ranks_ties),
        cmocka_unit_test(test_pearson_undefined),
        cmocka_unit_test(test_kappa_is_lin_ccc),
        cmocka_unit_test(test_kappa_edges),
        cmocka_unit_test(test_bootstrap_normal_theory),
        cmocka_unit_test(test_bootstrap_one),
        cmocka_unit_test(test_bootstrap_pearson_and_empty),
        cmocka_unit_test(test_quantile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
