/*
 * progress — terminal progress bar (see progress.h).
 */
#include "base/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/util.h"

void progress_init(struct progress *p, const char *label, int64_t total) {
    p->label = label;
    p->total = total;
    p->done = 0;
    p->t_start = now_seconds();
    p->t_drawn = 0;
    int on = ev_verbosity() >= EV_NORMAL, tty = isatty(STDERR_FILENO);
    p->enabled = on && tty;
    p->lines = on && !tty && total > 0;
    p->decile = 0;
    const char *a = getenv("EVALRUN_PROGRESS_AFTER");
    char       *end = NULL;
    p->after = a && *a ? strtod(a, &end) : 1.0;
    if (end && *end) p->after = 1.0;
}

static void fmt_duration(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static void draw(struct progress *p, double now) {
    double el = now - p->t_start;
    double rate = el > 0 ? (double)p->done / el : 0;
    char   eta[32] = "--:--";
    if (p->total > 0 && rate > 0) fmt_duration(eta, sizeof eta, (double)(p->total - p->done) / rate);
    if (p->total > 0) {
        int  width = 24, fill = (int)((double)width * (double)p->done / (double)p->total);
        char bar[32];
        if (fill > width) fill = width;
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r%s [%s] %lld/%lld %.1f/s ETA %s\x1b[K", p->label, bar,
                (long long)p->done, (long long)p->total, rate, eta);
    } else {
        fprintf(stderr, "\r%s %lld %.1f/s\x1b[K", p->label, (long long)p->done, rate);
    }
    fflush(stderr);
    p->t_drawn = now;
}

/* Not a terminal: a line when a new 10% step is reached (the latest one only). */
static void line(struct progress *p) {
    int d = (int)(10 * p->done / p->total);
    if (d > 10) d = 10;
    if (d <= p->decile) return;
    double now = now_seconds(), el = now - p->t_start;
    if (el < p->after) return;
    p->decile = d;
    double rate = el > 0 ? (double)p->done / el : 0;
    char   eta[32] = "--:--";
    if (rate > 0) fmt_duration(eta, sizeof eta, (double)(p->total - p->done) / rate);
    fprintf(stderr, "%s: %d%% (%lld/%lld, %.1f/s, ETA %s)\n", p->label, 10 * d,
            (long long)p->done, (long long)p->total, rate, eta);
    fflush(stderr);
}

void progress_tick(struct progress *p, int64_t n) {
    p->done += n;
    if (p->lines) line(p);
    if (!p->enabled) return;
    double now = now_seconds();
    if (now - p->t_drawn >= 0.1 || (p->total > 0 && p->done >= p->total)) draw(p, now);
}

void progress_finish(struct progress *p) {
    if (!p->enabled || p->t_drawn == 0) return;
    fprintf(stderr, "\r\x1b[K");
    fflush(stderr);
}
