/*
 * cmd_submit — `evalrun submit` (a batch command as a Slurm job array plus a merge job, and
 * --resume of the shards that did not finish) and `evalrun status RUN` (per-shard progress):
 * their flags, and one call into harness/cluster/submit.h, which does the work. The scripts,
 * Slurm's commands and the submission record are in cluster/slurm.h.
 */
#include <string.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "cluster/submit.h"

// ---------------------------------------------------------------------------- submit

int cmd_submit(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "submit",
        "--slurm --shards N [options] -- COMMAND [ARGS...]\n"
        "   or: evalrun submit --resume RUN",
        "Runs a batch COMMAND (collect, train-sae, sweep, index, sae-metrics, explain,\n"
        "specificity, completeness, influence, attribution, autointerp) on a Slurm cluster as\n"
        "a job array of N shards: task K runs `evalrun --db RESULTS/RUN/shard-K.db COMMAND\n"
        "ARGS --shard K/N`, each shard with its own SQLite file, and a merge job (afterok on\n"
        "the array) folds them into RESULTS/RUN/merged.db. When the database named by --db\n"
        "(default results/evalrun.db) exists, every shard starts from a snapshot of it (its\n"
        "feature index, descriptions and cached grader answers). The scripts are written to\n"
        "RESULTS/RUN/ (readable; --dry-run prints them and submits nothing); the run's name,\n"
        "job ids and the command to follow it are printed. Jobs inherit the environment\n"
        "(API keys are never written into scripts) and run in the current directory, which\n"
        "must be on a filesystem the nodes share.\n"
        "\n"
        "--rpm R is the grader's rate limit for the whole run: passed to every shard, each of\n"
        "the N shards takes R/N requests per minute, so that together they respect the\n"
        "provider's limit.\n"
        "\n"
        "--resume RUN resubmits only the shards that did not finish (what their databases\n"
        "hold is kept, so no work is done twice), cancels the merge job left waiting on a\n"
        "failed or cancelled shard, and submits a new merge job after the resubmitted shards."};
    struct submit_opts a = {.shards = -1, .rpm = -1, .results = "results"};
    struct common_opts co;
    common_opts_init(&co, cli, 0);
    const struct opt opts[] = {
        {"slurm", OPT_FLAG, &a.slurm, NULL, "submit to Slurm (the only scheduler supported)"},
        {"shards", OPT_LONG, &a.shards, "N", "number of shards: array tasks 0..N-1"},
        {"partition", OPT_STR, &a.partition, "P", "Slurm partition (default: the cluster's)"},
        {"time", OPT_STR, &a.time_limit, "T", "time limit per shard, as sbatch --time takes it"},
        {"cpus-per-task", OPT_LONG, &a.cpus, "C", "CPUs per shard (default: Slurm's)"},
        {"mem", OPT_STR, &a.mem, "M", "memory per shard, as sbatch --mem takes it"},
        {"rpm", OPT_DOUBLE, &a.rpm, "R",
         "grader requests per minute for the whole run; each shard gets R/N"},
        {"name", OPT_STR, &a.name, "RUN", "the run's name (default COMMAND-YYYYMMDD-HHMMSS)"},
        {"results", OPT_STR, &a.results, "DIR", "where run folders go (default results)"},
        {"resume", OPT_STR, &a.resume, "RUN", "resubmit the unfinished shards of RUN"},
        {"dry-run", OPT_FLAG, &a.dry_run, NULL, "print the scripts; submit nothing"},
        COMMON_OPTIONS(co),
        {0},
    };
    int npos = 0;
    int rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (a.resume) {
        if (npos > 0 || a.shards != -1 || a.partition || a.time_limit || a.mem || a.cpus ||
            a.rpm >= 0 || a.name)
            return ev_fail(err, EV_EUSAGE, "submit --resume RUN takes no COMMAND and no job "
                                           "options: the run keeps those it was submitted with");
        return submit_run_resume(a.results, a.resume, a.dry_run, err);
    }
    return submit_run_new(&a, argv + 1, npos, cli->db_path, err);
}

// ---------------------------------------------------------------------------- status

int cmd_status(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "status", "RUN",
        "Shows a run submitted with 'evalrun submit': per shard, its Slurm job and state\n"
        "(from squeue, else sacct, else scontrol, where they answer), the status of the\n"
        "shard's run in its database and its items graded / planned; then the merge job and\n"
        "the merged database."};
    const char        *results = "results";
    struct common_opts co;
    common_opts_init(&co, cli, 0);
    const struct opt   opts[] = {
        {"results", OPT_STR, &results, "DIR", "where run folders are (default results)"},
        COMMON_OPTIONS(co),
        {0},
    };
    int npos = 0;
    int rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos != 1)
        return ev_fail(err, EV_EUSAGE, "status: name one RUN (see 'evalrun status --help')");
    return submit_run_status(results, argv[1], err);
}
