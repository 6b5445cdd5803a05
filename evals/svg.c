/*
 * svg — bar charts and scatter plots as inline SVG (see svg.h).
 */
#include "evals/svg.h"

#include <math.h>
#include <string.h>

enum { W = 640, H = 360, ML = 72, MR = 20, MT = 36, MB = 56 };

static const char *const PALETTE[] = {"#3366cc", "#dc3912", "#ff9900", "#109618",
                                      "#990099", "#0099c6", "#dd4477", "#66aa00"};
#define N_PALETTE ((int)(sizeof PALETTE / sizeof PALETTE[0]))

void svg_escape(struct sbuf *sb, const char *s) {
    if (!s) return;
    for (; *s; s++) {
        switch (*s) {
        case '&': sbuf_adds(sb, "&amp;"); break;
        case '<': sbuf_adds(sb, "&lt;"); break;
        case '>': sbuf_adds(sb, "&gt;"); break;
        case '"': sbuf_adds(sb, "&quot;"); break;
        case '\'': sbuf_adds(sb, "&#39;"); break;
        default:
            /* control characters are not allowed in XML 1.0 */
            if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t') sbuf_adds(sb, " ");
            else sbuf_add(sb, s, 1);
        }
    }
}

/* A "nice" upper bound: 1, 2, 2.5 or 5 times a power of ten, >= v. */
static double nice_ceil(double v) {
    if (!(v > 0)) return 1;
    double p = pow(10, floor(log10(v)));
    const double steps[] = {1, 2, 2.5, 5, 10};
    for (int i = 0; i < 5; i++)
        if (steps[i] * p >= v * (1 - 1e-12)) return steps[i] * p;
    return 10 * p;
}

static void open_svg(struct sbuf *sb, const char *title, const char *cls) {
    sbuf_addf(sb,
              "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"%s\" width=\"%d\" height=\"%d\" "
              "viewBox=\"0 0 %d %d\" role=\"img\" font-family=\"sans-serif\" font-size=\"12\">",
              cls, W, H, W, H);
    sbuf_adds(sb, "<title>");
    svg_escape(sb, title);
    sbuf_adds(sb, "</title><rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>");
    sbuf_addf(sb, "<text x=\"%d\" y=\"22\" text-anchor=\"middle\" font-size=\"14\" "
                  "font-weight=\"bold\">", W / 2);
    svg_escape(sb, title);
    sbuf_adds(sb, "</text>");
}

static void axis_labels(struct sbuf *sb, const char *x_label, const char *y_label) {
    sbuf_addf(sb, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", ML + (W - ML - MR) / 2,
              H - 12);
    svg_escape(sb, x_label);
    sbuf_addf(sb, "</text><text x=\"14\" y=\"%d\" text-anchor=\"middle\" "
                  "transform=\"rotate(-90 14 %d)\">", MT + (H - MT - MB) / 2, MT + (H - MT - MB) / 2);
    svg_escape(sb, y_label);
    sbuf_adds(sb, "</text>");
    sbuf_addf(sb, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\"/>", ML, H - MB,
              W - MR, H - MB);
    sbuf_addf(sb, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\"/>", ML, MT, ML,
              H - MB);
}

static void fmt_tick(char *buf, size_t n, double v) {
    if (fabs(v) < 1e-12) snprintf(buf, n, "0");
    else if (fabs(v) >= 1e4 || fabs(v) < 1e-2) snprintf(buf, n, "%.1e", v);
    else snprintf(buf, n, "%.3g", v);
}

void svg_bar_chart(struct sbuf *sb, const char *title, const char *const *labels,
                   const double *values, int n, const char *x_label, const char *y_label,
                   double y_max) {
    svg_bar_chart_err(sb, title, labels, values, NULL, NULL, n, x_label, y_label, y_max);
}

void svg_bar_chart_err(struct sbuf *sb, const char *title, const char *const *labels,
                       const double *values, const double *lo, const double *hi, int n,
                       const char *x_label, const char *y_label, double y_max) {
    if (y_max <= 0) {
        for (int i = 0; i < n; i++)
            if (!isnan(values[i]) && values[i] > y_max) y_max = values[i];
        y_max = nice_ceil(y_max);
    }
    open_svg(sb, title, "ev-bar");
    double pw = W - ML - MR, ph = H - MT - MB;
    for (int t = 0; t <= 4; t++) {
        double v = y_max * t / 4, y = H - MB - ph * t / 4;
        char   tick[32];
        fmt_tick(tick, sizeof tick, v);
        sbuf_addf(sb, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>", ML, y,
                  W - MR, y);
        sbuf_addf(sb, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>", ML - 4, y + 4,
                  tick);
    }
    double bw = n > 0 ? pw / n : pw;
    for (int i = 0; i < n; i++) {
        double x = ML + bw * i;
        if (!isnan(values[i])) {
            double v = values[i] < 0 ? 0 : values[i] > y_max ? y_max : values[i];
            double h = ph * v / y_max;
            sbuf_addf(sb,
                      "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                      "fill=\"%s\"><title>",
                      x + bw * 0.1, H - MB - h, bw * 0.8, h, PALETTE[0]);
            svg_escape(sb, labels ? labels[i] : "");
            sbuf_addf(sb, ": %g</title></rect>", values[i]);
            if (lo && hi && !isnan(lo[i]) && !isnan(hi[i])) {
                /* the interval as a whisker with caps, clipped to the plot */
                double a = lo[i] < 0 ? 0 : lo[i] > y_max ? y_max : lo[i];
                double b = hi[i] < 0 ? 0 : hi[i] > y_max ? y_max : hi[i];
                double ya = H - MB - ph * a / y_max, yb = H - MB - ph * b / y_max;
                double xc = x + bw / 2, cw = bw * 0.15;
                sbuf_addf(sb,
                          "<g class=\"errbar\" stroke=\"#222\" stroke-width=\"1.5\">"
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                          "<title>%g to %g</title></g>",
                          xc, ya, xc, yb, xc - cw, ya, xc + cw, ya, xc - cw, yb, xc + cw, yb,
                          lo[i], hi[i]);
            }
        }
        if (labels && (n <= 20 || i % ((n + 19) / 20) == 0)) {
            sbuf_addf(sb, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"10\">",
                      x + bw / 2, H - MB + 14);
            svg_escape(sb, labels[i]);
            sbuf_adds(sb, "</text>");
        }
    }
    axis_labels(sb, x_label, y_label);
    sbuf_adds(sb, "</svg>");
}

void svg_scatter(struct sbuf *sb, const char *title, const double *x, const double *y, int n,
                 const int *group, const char *const *group_names, int n_groups,
                 const char *x_label, const char *y_label, int flags) {
    int    logx = flags & SVG_LOG_X;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (isnan(x[i]) || isnan(y[i]) || (logx && !(x[i] > 0))) continue;
        double xv = logx ? log10(x[i]) : x[i];
        if (xv < x0) x0 = xv;
        if (xv > x1) x1 = xv;
        if (y[i] < y0) y0 = y[i];
        if (y[i] > y1) y1 = y[i];
    }
    if (!(x0 <= x1)) x0 = 0, x1 = 1;
    if (!(y0 <= y1)) y0 = 0, y1 = 1;
    if (flags & SVG_DIAG) {
        double lo = x0 < y0 ? x0 : y0, hi = x1 > y1 ? x1 : y1;
        x0 = y0 = lo;
        x1 = y1 = hi;
    }
    if (x1 - x0 < 1e-12) x0 -= 0.5, x1 += 0.5;
    if (y1 - y0 < 1e-12) y0 -= 0.5, y1 += 0.5;
    double padx = (x1 - x0) * 0.05, pady = (y1 - y0) * 0.05;
    x0 -= padx, x1 += padx, y0 -= pady, y1 += pady;
    double pw = W - ML - MR, ph = H - MT - MB;
#define PX(v) (ML + pw * ((v) - x0) / (x1 - x0))
#define PY(v) (H - MB - ph * ((v) - y0) / (y1 - y0))
    open_svg(sb, title, "ev-scatter");
    for (int t = 0; t <= 4; t++) {
        char   tick[32];
        double xv = x0 + (x1 - x0) * t / 4, yv = y0 + (y1 - y0) * t / 4;
        fmt_tick(tick, sizeof tick, logx ? pow(10, xv) : xv);
        sbuf_addf(sb, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"10\">%s</text>",
                  PX(xv), H - MB + 14, tick);
        fmt_tick(tick, sizeof tick, yv);
        sbuf_addf(sb, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>", ML,
                  PY(yv), W - MR, PY(yv));
        sbuf_addf(sb, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"10\">%s</text>",
                  ML - 4, PY(yv) + 4, tick);
    }
    if (flags & SVG_DIAG)
        sbuf_addf(sb, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" "
                      "stroke-dasharray=\"4 3\"/>", PX(x0), PY(x0), PX(x1), PY(x1));
    int ng = n_groups > 0 ? n_groups : 1;
    for (int g = 0; g < ng; g++) {
        const char *col = PALETTE[g % N_PALETTE];
        if (flags & SVG_LINES) {
            int first = 1;
            for (int i = 0; i < n; i++) {
                if ((group ? group[i] : 0) != g || isnan(x[i]) || isnan(y[i])) continue;
                if (logx && !(x[i] > 0)) continue;
                double xv = logx ? log10(x[i]) : x[i];
                if (first) sbuf_addf(sb, "<polyline fill=\"none\" stroke=\"%s\" points=\"", col);
                sbuf_addf(sb, "%s%.1f,%.1f", first ? "" : " ", PX(xv), PY(y[i]));
                first = 0;
            }
            if (!first) sbuf_adds(sb, "\"/>");
        }
        for (int i = 0; i < n; i++) {
            if ((group ? group[i] : 0) != g || isnan(x[i]) || isnan(y[i])) continue;
            if (logx && !(x[i] > 0)) continue;
            double xv = logx ? log10(x[i]) : x[i];
            sbuf_addf(sb, "<circle class=\"pt\" cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" "
                          "fill-opacity=\"0.75\"><title>(%g, %g)</title></circle>",
                      PX(xv), PY(y[i]), col, x[i], y[i]);
        }
        if (group_names && n_groups > 0) {
            sbuf_addf(sb, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>",
                      W - MR - 120, MT + 4 + 16 * g, col);
            sbuf_addf(sb, "<text x=\"%d\" y=\"%d\" font-size=\"11\">", W - MR - 106,
                      MT + 13 + 16 * g);
            svg_escape(sb, group_names[g]);
            sbuf_adds(sb, "</text>");
        }
    }
#undef PX
#undef PY
    axis_labels(sb, x_label, y_label);
    sbuf_adds(sb, "</svg>");
}

void svg_stacked_bars(struct sbuf *sb, const char *title, const char *const *labels,
                      const double *counts, int n, int n_series,
                      const char *const *series_names, const char *const *colours,
                      const char *x_label, const char *y_label) {
    open_svg(sb, title, "ev-stack");
    double pw = W - ML - MR - 140, ph = H - MT - MB; /* room on the right for the legend */
    for (int t = 0; t <= 4; t++) {
        double y = H - MB - ph * t / 4;
        sbuf_addf(sb, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>",
                  ML, y, ML + pw, y);
        sbuf_addf(sb, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%d%%</text>", ML - 4,
                  y + 4, 25 * t);
    }
    double bw = n > 0 ? pw / n : pw;
    for (int i = 0; i < n; i++) {
        double x = ML + bw * i, total = 0, below = 0;
        for (int k = 0; k < n_series; k++) {
            double c = counts[(size_t)i * n_series + k];
            if (!isnan(c) && c > 0) total += c;
        }
        for (int k = 0; total > 0 && k < n_series; k++) {
            double c = counts[(size_t)i * n_series + k];
            if (isnan(c) || c <= 0) continue;
            double h = ph * c / total, y = H - MB - ph * below / total - h;
            sbuf_addf(sb,
                      "<rect class=\"seg s%d\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                      "height=\"%.1f\" fill=\"%s\"><title>",
                      k, x + bw * 0.1, y, bw * 0.8, h, colours[k % n_series]);
            svg_escape(sb, labels ? labels[i] : "");
            sbuf_adds(sb, ", ");
            svg_escape(sb, series_names ? series_names[k] : "");
            sbuf_addf(sb, ": %g of %g (%.0f%%)</title></rect>", c, total, 100.0 * c / total);
            below += c;
        }
        if (labels) {
            sbuf_addf(sb, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"10\">",
                      x + bw / 2, H - MB + 14);
            svg_escape(sb, labels[i]);
            sbuf_addf(sb, "</text><text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" "
                          "font-size=\"9\" fill=\"#555\">n=%g</text>",
                      x + bw / 2, H - MB + 26, total);
        }
    }
    for (int k = n_series - 1; k >= 0; k--) { /* the legend, top series first, as stacked */
        double y = MT + 10 + 18.0 * (n_series - 1 - k);
        sbuf_addf(sb, "<rect class=\"legend\" x=\"%.1f\" y=\"%.1f\" width=\"12\" "
                      "height=\"12\" fill=\"%s\"/><text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">",
                  ML + pw + 14, y, colours[k], ML + pw + 30, y + 10);
        svg_escape(sb, series_names ? series_names[k] : "");
        sbuf_adds(sb, "</text>");
    }
    sbuf_addf(sb, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", ML + pw / 2, H - 8);
    svg_escape(sb, x_label);
    sbuf_addf(sb, "</text><text x=\"14\" y=\"%d\" text-anchor=\"middle\" "
                  "transform=\"rotate(-90 14 %d)\">", MT + (H - MT - MB) / 2, MT + (H - MT - MB) / 2);
    svg_escape(sb, y_label);
    sbuf_addf(sb, "</text><line x1=\"%d\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#000\"/>",
              ML, H - MB, ML + pw, H - MB);
    sbuf_addf(sb, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\"/>", ML, MT,
              ML, H - MB);
    sbuf_adds(sb, "</svg>");
}
