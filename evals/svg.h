/*
 * svg — small, self-contained SVG figures drawn by evalrun for HTML reports: a bar chart
 * (specificity by interval with error bars, feature-density histogram), stacked bars (the
 * distribution of scores per interval) and a scatter / line plot (attribution
 * vs ablation, loss vs compute of a sweep). No scripts, no external fonts or links: the
 * output can be inlined into a page that is opened offline.
 *
 * Included by: evals and harness/cli.
 *
 * Every string that goes into the SVG (titles, labels) is XML-escaped here, so callers may
 * pass text read from the database (untrusted). NAN values are skipped (a bar is not drawn, a
 * point is left out). Output is appended to a caller-owned struct sbuf.
 */
#ifndef EV_SVG_H
#define EV_SVG_H

#include "base/util.h"

/* Appends s with &, <, >, " and ' escaped (valid in XML/HTML text and attributes). */
void svg_escape(struct sbuf *sb, const char *s);

/* A bar chart of values (n bars) with labels under them (n strings), y from 0 to y_max
 * (y_max <= 0: the largest value, rounded up). */
void svg_bar_chart(struct sbuf *sb, const char *title, const char *const *labels,
                   const double *values, int n, const char *x_label, const char *y_label,
                   double y_max);

/* The same with an error bar on each bar: a whisker from lo[i] to hi[i] (both may be NULL:
 * none; a NAN end: none on that bar). */
void svg_bar_chart_err(struct sbuf *sb, const char *title, const char *const *labels,
                       const double *values, const double *lo, const double *hi, int n,
                       const char *x_label, const char *y_label, double y_max);

/* Stacked bars, each scaled to 100%: bar i (n bars, labelled labels[i] with its total "n=N"
 * under it) is split into n_series segments in proportion to counts[i * n_series + k], the
 * first series at the bottom, in colours[k] (n_series CSS colours); a legend names the series.
 * The paper's distribution of specificity scores per activation interval. Segments are
 * <rect class="seg sK">. */
void svg_stacked_bars(struct sbuf *sb, const char *title, const char *const *labels,
                      const double *counts, int n, int n_series,
                      const char *const *series_names, const char *const *colours,
                      const char *x_label, const char *y_label);

enum svg_plot_flags {
    SVG_LOG_X   = 1 << 0, /* log10 x axis (values <= 0 skipped) */
    SVG_LINES   = 1 << 1, /* join the points of each group in order */
    SVG_DIAG    = 1 << 2, /* draw the y = x line */
};

/* A scatter plot of (x, y) (n points). group (n, may be NULL) colours points by a small
 * integer; group_names (n_groups, may be NULL) label them in a legend. */
void svg_scatter(struct sbuf *sb, const char *title, const double *x, const double *y, int n,
                 const int *group, const char *const *group_names, int n_groups,
                 const char *x_label, const char *y_label, int flags);

#endif
