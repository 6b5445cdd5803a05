/*
 * test_report — the pieces of evals/report.c, evals/svg.c and evals/compare.c that need no
 * database: RFC 4180 quoting (checked against the RFC's rules: quote when a field holds a
 * comma, a quote, CR or LF; double the quotes), XML escaping of untrusted text in SVG, the
 * figures' structure, and the verdict rules of compare on hand-made units.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "evals/compare.h"
#include "evals/report.h"
#include "evals/svg.h"

static void test_csv_field(void **state) {
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"plain", "plain"},
        {"", ""},
        {"a,b", "\"a,b\""},
        {"say \"hi\"", "\"say \"\"hi\"\"\""},
        {"two\nlines", "\"two\nlines\""},
        {"cr\rhere", "\"cr\rhere\""},
        {" leading space", " leading space"}, /* spaces are part of the field (RFC 4180 2.4) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sbuf sb;
        sbuf_init(&sb);
        report_csv_field(&sb, cases[i].in);
        assert_string_equal(sb.buf ? sb.buf : "", cases[i].want);
        sbuf_release(&sb);
    }
}

static void test_svg_escape(void **state) {
    (void)state;
    struct sbuf sb;
    sbuf_init(&sb);
    svg_escape(&sb, "<script>&\"'\x01");
    assert_string_equal(sb.buf, "&lt;script&gt;&amp;&quot;&#39; ");
    sbuf_release(&sb);
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static void test_figures(void **state) {
    (void)state;
    const char  *labels[] = {"non", "1", "<2>"};
    const double v[] = {0.5, NAN, 2.5};
    struct sbuf  sb;
    sbuf_init(&sb);
    svg_bar_chart(&sb, "t <&>", labels, v, 3, "x", "y", 3.0);
    assert_int_equal(count(sb.buf, "<rect class=\"bar\""), 2); /* NAN bar left out */
    assert_non_null(strstr(sb.buf, "&lt;2&gt;"));
    assert_null(strstr(sb.buf, "<2>"));
    assert_int_equal(count(sb.buf, "<svg"), 1);
    assert_int_equal(count(sb.buf, "</svg>"), 1);
    sbuf_release(&sb);

    /* error bars: one whisker group per bar with both ends defined */
    const double lo[] = {0.2, 1.0, NAN}, hi[] = {0.8, 2.0, 2.9};
    sbuf_init(&sb);
    svg_bar_chart_err(&sb, "e", labels, v, lo, hi, 3, "x", "y", 3.0);
    assert_int_equal(count(sb.buf, "<g class=\"errbar\""), 1); /* bar 1 is NAN, bar 2 has no lo */
    sbuf_release(&sb);

    /* stacked bars: a segment per non-zero count; heights in proportion within each bar */
    const double cnt[] = {1, 0, 0, 3, /* bar 0: 25% and 75% */ 0, 0, 0, 0, /* bar 1: empty */
                          0, 2, 2, 0};
    const char  *series[] = {"0", "1", "2", "3"}, *cols[] = {"#000", "#111", "#222", "#333"};
    sbuf_init(&sb);
    svg_stacked_bars(&sb, "d", labels, cnt, 3, 4, series, cols, "x", "y");
    assert_int_equal(count(sb.buf, "<rect class=\"seg "), 4);
    assert_non_null(strstr(sb.buf, ": 3 of 4 (75%)"));
    assert_non_null(strstr(sb.buf, ": 2 of 4 (50%)"));
    assert_non_null(strstr(sb.buf, ">n=0<"));
    assert_int_equal(count(sb.buf, "class=\"legend\""), 4);
    sbuf_release(&sb);

    const double x[] = {1e3, 1e4, 1e5, -1, 1e4}, y[] = {3, 2, 1, 5, NAN};
    const int    g[] = {0, 0, 1, 1, 1};
    const char  *names[] = {"a", "b"};
    sbuf_init(&sb);
    svg_scatter(&sb, "s", x, y, 5, g, names, 2, "x", "y", SVG_LOG_X | SVG_LINES);
    /* log x drops x <= 0; NAN y dropped: 3 points, 2 polylines (group b has one point) */
    assert_int_equal(count(sb.buf, "<circle class=\"pt\""), 3);
    assert_int_equal(count(sb.buf, "<polyline"), 2);
    sbuf_release(&sb);
}

static struct cmp_metric metric(const char *name, int dir, double thr, const double *x, int n,
                                char **keys) {
    struct cmp_metric m = {0};
    m.name = (char *)name;
    m.dir = dir;
    m.threshold = thr;
    m.stat = STATS_MEAN;
    m.n = n;
    m.keys = keys;
    m.x = (double *)x;
    m.y = (double *)x;
    return m;
}

static void test_verdicts(void **state) {
    (void)state;
    char  *keys[8] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    double base[8] = {2, 2, 3, 1, 2, 3, 2, 2};
    double down[8], up[8], noisy[8];
    for (int i = 0; i < 8; i++) {
        down[i]  = base[i] - 1;
        up[i]    = base[i] + 0.5;
        noisy[i] = base[i] + (i % 2 ? 1 : -1); /* mean unchanged */
    }
    struct cmp_params p = cmp_default_params();
    struct cmp_result r;
    struct cmp_metric b = metric("m", +1, 0.25, base, 8, keys);
    struct cmp_metric c = metric("m", +1, 0.25, down, 8, keys);
    /* the default --min-n 20: 8 units are too few for a verdict, even a drop of 1 */
    assert_int_equal(p.min_n, 20);
    cmp_metric_compare(&b, &c, NAN, &p, &r);
    assert_int_equal(r.verdict, CMP_VERDICT_TOO_FEW);
    assert_string_equal(cmp_verdict_name(r.verdict), "n/a (too few)");
    p.min_n = 8;
    cmp_metric_compare(&b, &c, NAN, &p, &r);
    assert_int_equal(r.verdict, CMP_VERDICT_WORSE);
    assert_true(r.paired && r.n_paired == 8 && fabs(r.diff.est + 1) < 1e-12);
    assert_true(fabs(r.diff.lo + 1) < 1e-12 && fabs(r.diff.hi + 1) < 1e-12);
    /* lower is better: the same drop is an improvement */
    b.dir = c.dir = -1;
    cmp_metric_compare(&b, &c, NAN, &p, &r);
    assert_int_equal(r.verdict, CMP_VERDICT_BETTER);
    b.dir = c.dir = +1;
    /* a threshold above the drop: same */
    cmp_metric_compare(&b, &c, 1.5, &p, &r);
    assert_int_equal(r.verdict, CMP_VERDICT_SAME);
    c = metric("m", +1, 0.25, up, 8, keys);
    cmp_metric_compare(&b, &c, NAN, &p, &r);
    assert_int_equal(r.verdict, CMP_VERDICT_BETTER);
    /* noise around the same mean: the interval covers 0, never worse */
    c = metric("m", +1, 0.25, noisy, 8, keys);
    cmp_metric_compare(&b, &c, 0.0, &p, &r);
    assert_int_equal(r.verdict, CMP_VERDICT_SAME);
    assert_true(r.diff.lo < 0 && r.diff.hi > 0);
    /* no common keys: unpaired */
    char *other[8] = {"p", "q", "r", "s", "t", "u", "v", "w"};
    c = metric("m", +1, 0.25, down, 8, other);
    cmp_metric_compare(&b, &c, NAN, &p, &r);
    assert_false(r.paired);
    assert_true(fabs(r.diff.est + 1) < 1e-12);
    /* an empty side: n/a */
    c.n = 0;
    cmp_metric_compare(&b, &c, NAN, &p, &r);
    assert_int_equal(r.verdict, CMP_VERDICT_NA);
    /* relative threshold: 10% of the baseline */
    double big[1] = {100}, bigger[1] = {115}, b2[1] = {105};
    struct cmp_metric l0 = metric("l0", -1, 0.10, big, 1, keys);
    l0.relative = 1;
    /* one unit that is not an aggregate: no interval, so never worse */
    p.min_n = 0;
    struct cmp_metric l1u = l0;
    l1u.x = bigger;
    cmp_metric_compare(&l0, &l1u, NAN, &p, &r);
    assert_int_equal(r.verdict, CMP_VERDICT_SAME);
    l0.aggregate = 1; /* an SAE metric: one measurement of the whole run */
    p.min_n = 20;
    struct cmp_metric l1 = l0;
    l1.x = bigger;
    cmp_metric_compare(&l0, &l1, NAN, &p, &r);
    assert_int_equal(r.verdict, CMP_VERDICT_WORSE); /* single unit: no interval */
    l1.x = b2;
    cmp_metric_compare(&l0, &l1, NAN, &p, &r);
    assert_int_equal(r.verdict, CMP_VERDICT_SAME);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_field),
        cmocka_unit_test(test_svg_escape),
        cmocka_unit_test(test_figures),
        cmocka_unit_test(test_verdicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
