/*
 * submit — what `evalrun submit` and `evalrun status` do once their flags are parsed: a
 * batch command checked and submitted as a Slurm job array plus a merge job (its folder,
 * record, scripts and a snapshot of the database it starts from, all in slurm.h's layout);
 * --resume of the shards whose databases do not say done (a new array for them, a new merge
 * job after them and the shards still queued or running, the stale merge job cancelled); and
 * the status of a run, per shard (its job's state, its run's status and items) and merged.
 * The results go to stdout.
 *
 * Included by: harness/cli only.
 */
#ifndef EV_CLUSTER_SUBMIT_H
#define EV_CLUSTER_SUBMIT_H

#include "base/util.h"
#include "cluster/slurm.h"

/* submit's options, as given. */
struct submit_opts {
    int         slurm, dry_run;   /* --slurm, --dry-run */
    long        shards, cpus;     /* --shards (-1: not given), --cpus-per-task (0: Slurm's) */
    double      rpm;              /* --rpm for the whole run (< 0: not given) */
    const char *partition, *time_limit, *mem, *name; /* NULL: Slurm's default, a made name */
    const char *results;          /* --results: where run folders go */
    const char *resume;           /* --resume RUN, or NULL */
};

/* Reads the record of run RUN (RESULTS/RUN, or RUN itself when it holds a '/'); EV_EFAIL
 * naming the missing file when there is no such run. Release sub with
 * slurm_submission_release(). */
int submit_load_run(const char *results, const char *run, struct slurm_submission *sub,
                    struct ev_err *err);

/* Checks the job options of a and COMMAND cmd[0..npos) (EV_EUSAGE naming what is wrong),
 * then submits it, each shard starting from a snapshot of db_path when it exists (with
 * a->dry_run: prints the scripts, submits nothing). Nothing is left behind on failure. */
int submit_run_new(const struct submit_opts *a, char **cmd, int npos, const char *db_path,
                   struct ev_err *err);

/* submit --resume RUN: resubmits RUN's unfinished shards and a new merge job (or only the
 * merge job, or nothing), saying what it did; with dry_run only what it would do. */
int submit_run_resume(const char *results, const char *run, int dry_run, struct ev_err *err);

/* status RUN: one line per shard, the merge job and the merged database. */
int submit_run_status(const char *results, const char *run, struct ev_err *err);

#endif
