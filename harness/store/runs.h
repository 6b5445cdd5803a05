/*
 * runs — named reads of the runs table beyond starting and ending a run (which stay in
 * store.h: store_run_begin(), store_run_end(), ...), and the two rules those keep through it:
 *   - a tag names one run (runs_tag_claim()): the shard runs of one evaluation (same kind and
 *     configuration) share it, no other run may hold it;
 *   - work time (runs_work_*): runs.work_ms sums the time actually spent on the run across
 *     its starts and resumes (migration 014), kept current every few seconds while it runs.
 * The owner of the SQL over runs.
 *
 * Included by: store and the wings above it (graders, evals, cli, cluster).
 */
#ifndef EV_STORE_RUNS_H
#define EV_STORE_RUNS_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

struct store;

/* The run's kind (*kind, caller frees) and SAE (*sae_id, 0 when none). EV_EFAIL "no run N"
 * when it does not exist. */
int runs_kind(struct store *s, int64_t run_id, char **kind, int64_t *sae_id, struct ev_err *err);
/* The path stored for the run's model (models.path), caller frees; NULL when the run has no
 * model or on an error. */
char *runs_model_path(struct store *s, int64_t run_id);

/* Where a run's numbers come from, for a report's provenance block (issue 17.4): the model's
 * and the SAE's stored path and hash, the seed, the code version, when it started and ended.
 * Strings are "" when the run records none; finished_ms -1 while not finished, seed -1 when
 * none. */
struct runs_provenance {
    char    model_path[512], model_hash[65], sae_path[512], sae_hash[65], code_version[128];
    int64_t seed, started_ms, finished_ms;
};
/* EV_EFAIL "no run N" when it does not exist. */
int runs_provenance(struct store *s, int64_t run_id, struct runs_provenance *out,
                    struct ev_err *err);

/* A run as `evalrun runs` lists it; pointers borrowed for the call. */
struct runs_row {
    int64_t     id;
    const char *kind, *tag; /* tag "-" when none */
    const char *status;     /* live_status(): a run left running by a dead process reads
                             * 'interrupted' */
    int64_t     started_ms, finished_ms; /* finished_ms -1 while not finished */
    int         shard_k, shard_n;
    int64_t     work_ms;    /* time spent working, summed over starts (a live run: so far);
                             * -1 when not recorded (runs from before migration 014) */
};
/* Calls fn for the newest limit runs (of kind, when not NULL), newest first. */
int runs_list(struct store *s, const char *kind, long limit,
              int (*fn)(void *ctx, const struct runs_row *row), void *ctx, struct ev_err *err);

/* A run found by shard or kind. */
struct runs_brief {
    int64_t id;
    char    status[32];
    char    error[512]; /* "" when none */
};
/* The newest run of shard k of n, a run of kind prefer_kind first: 1 and *out when there is
 * one, 0 when not, < 0 on error. */
int runs_of_shard(struct store *s, int shard_k, int shard_n, const char *prefer_kind,
                  struct runs_brief *out, struct ev_err *err);
/* The newest unsharded run of kind: 1 and *out, 0 when none, < 0 on error. */
int runs_newest_unsharded(struct store *s, const char *kind, struct runs_brief *out,
                          struct ev_err *err);
/* How many items the run planned (*items) and how many of them have a grade (*graded); -1
 * where it cannot be read. */
void runs_progress(struct store *s, int64_t run_id, int64_t *items, int64_t *graded);

/* ---- tags (called by store_run_begin() inside its transaction) ---- */
/* Makes tag name the run of (kind, config_hash) (run_id, 0 for one about to be inserted):
 * another run holding it is EV_EUSAGE "tag 'T' is held by run N (KIND) ..." unless retag,
 * when the tag is taken from that run (*moved_from = its id, else 0). A resumed run already
 * tagged old_tag (not NULL, not tag) is EV_EUSAGE unless retag (then it is renamed). */
int runs_tag_claim(struct store *s, const char *tag, int64_t run_id, const char *kind,
                   const char *config_hash, const char *old_tag, int retag, int64_t *moved_from,
                   struct ev_err *err);
/* The run's tag into buf ("" when none or on an error). */
void runs_tag(struct store *s, int64_t run_id, char *buf, size_t n);

/* ---- work time ---- */
/* A start or resume of the run begins now: work_ms from NULL to 0, segment_ms = now. */
int runs_work_start(struct store *s, int64_t run_id, struct ev_err *err);
/* Adds the time since the segment began (or the last add) to work_ms; stop ends the
 * segment (segment_ms NULL). Nothing for a run whose segment is not open. */
int runs_work_add(struct store *s, int64_t run_id, int stop, struct ev_err *err);

#endif
