/*
 * progress — a one-line progress bar with rate and ETA on stderr, for long batch work: the
 * one every long phase shows (grading, sampling, collecting activations, indexing).
 * Nothing with --quiet. On a terminal: a bar, done/total, rate and ETA, redrawn at most ten
 * times a second, so calling progress_tick() per item is cheap. When stderr is not a
 * terminal (a log file, a pipe): one line per 10% of the total ("LABEL: 40% (N/TOTAL,
 * R/s, ETA M:SS)"), and only for phases that have run for a second
 * ($EVALRUN_PROGRESS_AFTER seconds; the tests set 0).
 *
 * Included by: every wing (base is the bottom: it includes only base).
 */
#ifndef EV_PROGRESS_H
#define EV_PROGRESS_H

#include <stdint.h>

struct progress {
    const char *label;  /* borrowed */
    int64_t     total;  /* 0 when unknown */
    int64_t     done;
    double      t_start, t_drawn;
    int         enabled;  /* the terminal bar */
    int         lines;    /* one line per 10% (stderr not a terminal) */
    int         decile;   /* the last 10% step printed */
    double      after;    /* lines only after this many seconds */
};

void progress_init(struct progress *p, const char *label, int64_t total);
void progress_tick(struct progress *p, int64_t n);
/* Clears the line (when drawn). */
void progress_finish(struct progress *p);

#endif
