/*
 * progress — a one-line progress bar with rate and ETA on stderr, for long batch work.
 * Drawn only when stderr is a terminal and verbosity is not quiet; redrawn at most ten times
 * a second, so calling progress_tick() per item is cheap.
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
    int         enabled;
};

void progress_init(struct progress *p, const char *label, int64_t total);
void progress_tick(struct progress *p, int64_t n);
/* Clears the line (when drawn). */
void progress_finish(struct progress *p);

#endif
