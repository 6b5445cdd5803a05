/*
 * slurm — running evaluations as Slurm job arrays: the batch scripts, Slurm's own commands
 * (sbatch, scancel, squeue, sacct, scontrol) run as child processes, and the record of a
 * submission (results/RUN/submit.json) that `evalrun status` and `submit --resume` read.
 *
 * Included by: harness/cli only.
 *
 * A submission RUN lives in one folder, results/RUN/ (absolute paths throughout, since the
 * jobs run on other nodes that share the filesystem):
 *     submit.json      this record (struct slurm_submission; "format": "evalrun-submit",
 *                      "version": 1)
 *     shards.sbatch    the job array 0..N-1: task K runs
 *                      `evalrun --db RUN/shard-K.db COMMAND --shard K/N`
 *     merge.sbatch     `evalrun --db RUN/merged.db merge RUN/shard-*.db`, submitted with
 *                      --dependency=afterok on the array
 *     base.db          a snapshot of the database submit was given (--db), when it exists:
 *                      each shard's database starts as a copy of it, so the shards see its
 *                      feature index, descriptions and the grader's response cache
 *     shard-K.db       one SQLite file per shard (never one file shared between nodes)
 *     logs/            shard-K.out, merge.out (Slurm's output files)
 *
 * Nothing secret is written to these files: API keys reach the jobs through the environment
 * (#SBATCH --export=ALL). Ownership: strings in struct slurm_submission are owned by it;
 * slurm_submission_release() frees them.
 */
#ifndef EV_SLURM_H
#define EV_SLURM_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

/* 1 when name is one of the batch subcommands (CLARIFICATIONS: collect, train-sae, sweep,
 * index, sae-metrics, explain, specificity, completeness, influence, attribution, autointerp),
 * the commands that accept --db, --seed, --tag and --shard K/N. */
int slurm_is_batch_command(const char *name);
/* Their names, comma-separated, for messages. */
const char *slurm_batch_commands(void);

/* Quotes s for a POSIX shell ('...' with embedded quotes escaped). Caller frees. */
char *slurm_quote(const char *s);

/*
 * Runs argv (argv[0] looked up in PATH; argv NULL-terminated) with stdin from /dev/null and
 * captures its stdout and stderr (either may be NULL when not wanted; caller frees with free()).
 * *status is its exit status, or 128 + the signal that ended it. Returns EV_EFAIL only when the
 * program cannot be started (the message names it and says to check PATH).
 */
int slurm_exec(const char *const *argv, char **out, char **errtext, int *status,
               struct ev_err *err);

/* sbatch --parsable EXTRA... SCRIPT. *job_id: the id sbatch printed (caller frees). When
 * sbatch is missing or refuses, EV_EFAIL with its message. */
int slurm_sbatch(const char *script, const char *const *extra, int n_extra, char **job_id,
                 struct ev_err *err);
/* scancel JOB (a job, an array, or one task "ARRAY_K"). */
int slurm_scancel(const char *job_id, struct ev_err *err);

/*
 * What Slurm says about a job or array task, from squeue, else sacct, else scontrol (which
 * keeps finished jobs for a few minutes). state: PENDING, RUNNING, COMPLETED, FAILED,
 * CANCELLED, TIMEOUT, ... or "" when none of them knows the job; reason: the pending reason
 * (e.g. DependencyNeverSatisfied) or "". Never fails: an unreachable Slurm gives "".
 */
void slurm_job_state(const char *job_id, char *state, size_t n_state, char *reason,
                     size_t n_reason);
/* 1 for states in which the job may still run (PENDING, RUNNING, CONFIGURING, ...). */
int slurm_state_active(const char *state);

// ---------------------------------------------------------------------------- submissions

struct slurm_submission {
    char   *run;        /* RUN: the folder's name */
    char   *dir;        /* absolute path of results/RUN */
    char   *workdir;    /* absolute: the directory the jobs run in (where submit ran) */
    char   *evalrun;    /* absolute path of the evalrun binary the jobs run */
    char  **command;    /* (n_command) COMMAND and its arguments, --rpm included */
    int     n_command;
    int     shards;     /* N */
    char   *partition, *time_limit, *mem; /* NULL: Slurm's default */
    long    cpus_per_task;                /* 0: Slurm's default */
    char   *array_job;  /* the latest array job id */
    char   *merge_job;  /* the latest merge job id */
    char  **shard_job;  /* (shards) each shard's latest job: "ARRAY_K" */
    int     resubmits;  /* how many times --resume submitted something */
    int     has_base;   /* RUN/base.db: every shard database starts as a copy of it */
    int64_t submitted_ms;
};

/* Reads DIR/submit.json. Errors name the file. */
int  slurm_submission_load(const char *dir, struct slurm_submission *sub, struct ev_err *err);
/* Writes DIR/submit.json atomically. */
int  slurm_submission_save(const struct slurm_submission *sub, struct ev_err *err);
void slurm_submission_release(struct slurm_submission *sub);

/* The two batch scripts (readable bash with #SBATCH lines); caller frees. */
char *slurm_array_script(const struct slurm_submission *sub);
char *slurm_merge_script(const struct slurm_submission *sub);
/* Paths inside the run's folder; caller frees. */
char *slurm_shard_db(const struct slurm_submission *sub, int k);
char *slurm_run_file(const struct slurm_submission *sub, const char *name);

#endif
