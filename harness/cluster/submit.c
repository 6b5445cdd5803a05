/*
 * submit — what `evalrun submit` and `evalrun status` do once their flags are parsed (see
 * submit.h): a new run's record, scripts and jobs; --resume of the shards that did not
 * finish; and the per-shard view that status prints.
 */
#include "cluster/submit.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/args.h"
#include "store/runs.h"
#include "store/store.h"

// ---------------------------------------------------------------------------- helpers

/* An absolute version of path (which need not exist); caller frees. */
static char *absolute(const char *path) {
    if (path[0] == '/') return xstrdup(path);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return xstrdup(path);
    if (strcmp(path, ".") == 0) return xstrdup(cwd);
    return path_join(cwd, path);
}

static int valid_name(const char *s) {
    if (!s[0] || s[0] == '.' || strlen(s) > 100) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return 0;
    return 1;
}

/* #SBATCH lines cannot quote: paths written there must not hold blanks or Slurm's %. */
static int sbatch_safe_path(const char *p) { return strpbrk(p, " \t\n\r%\"'\\") == NULL; }

/* Whether argv[1..n] holds option name (as "--name" or "--name=..."). */
static int has_option(char **v, int n, const char *name) {
    size_t len = strlen(name);
    for (int i = 0; i < n; i++)
        if (strncmp(v[i], name, len) == 0 && (v[i][len] == '\0' || v[i][len] == '=')) return 1;
    return 0;
}

/* The value of option name in argv[1..n] ("--name V" or "--name=V"), or NULL. */
static const char *option_value(char **v, int n, const char *name) {
    size_t len = strlen(name);
    for (int i = 0; i < n; i++) {
        if (strncmp(v[i], name, len) != 0) continue;
        if (v[i][len] == '=') return v[i] + len + 1;
        if (v[i][len] == '\0' && i + 1 < n) return v[i + 1];
    }
    return NULL;
}

/* Work that is split by features: more shards than features leaves shards with nothing to
 * do, which is a mistake in the command line. Counts the entries of COMMAND's --features file
 * (blank and '#' lines aside; --limit caps it) and refuses N above it. */
static int check_shards_vs_features(char **cmd, int n, long shards, struct ev_err *err) {
    const char *file = option_value(cmd, n, "--features");
    if (!file) return EV_OK;
    char  *text = NULL;
    size_t len = 0;
    if (file_read_all(file, &text, &len, err) != EV_OK) return EV_EFAIL;
    long count = 0, limit = 0;
    for (char *line = text; line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        line += strspn(line, " \t\r");
        if (*line && *line != '#') count++;
        line = next;
    }
    free(text);
    const char *lim = option_value(cmd, n, "--limit");
    if (lim && parse_long(lim, &limit) == EV_OK && limit > 0 && limit < count) count = limit;
    if (shards > count)
        return ev_fail(err, EV_EUSAGE, "submit: --shards %ld is more than the %ld feature%s of "
                                       "%s: shards %ld..%ld would have no work", shards, count,
                       count == 1 ? "" : "s", file, count, shards - 1);
    return EV_OK;
}

/* The folder of run RUN: RUN itself when it holds a '/', else RESULTS/RUN; caller frees. */
static char *run_dir(const char *results, const char *run) {
    char *rel = strchr(run, '/') ? xstrdup(run) : path_join(results, run);
    char *abs = absolute(rel);
    free(rel);
    return abs;
}

int submit_load_run(const char *results, const char *run, struct slurm_submission *sub,
                    struct ev_err *err) {
    char *dir = run_dir(results, run);
    char *rec = path_join(dir, "submit.json");
    int   rc;
    if (!path_exists(rec))
        rc = ev_fail(err, EV_EFAIL, "no submitted run '%s': %s does not exist (runs are "
                                    "folders under %s/ made by 'evalrun submit')",
                     run, rec, results);
    else
        rc = slurm_submission_load(dir, sub, err);
    free(rec);
    free(dir);
    return rc;
}

/* What shard k's database says: its run's status and items graded / planned. */
struct shard_view {
    int     has_db, has_run;
    char    status[32];
    int64_t done, total;
    char    note[512]; /* why the database could not be read, if so */
};

static void shard_view(const struct slurm_submission *sub, int k, struct shard_view *v) {
    memset(v, 0, sizeof *v);
    char         *db = slurm_shard_db(sub, k);
    struct store *s = NULL;
    struct ev_err err;
    if (!path_exists(db)) goto out;
    v->has_db = 1;
    if (store_open(db, STORE_READONLY, &s, &err) != EV_OK) {
        snprintf(v->note, sizeof v->note, "%s", err.msg);
        goto out;
    }
    /* The shard's run: this command's kind first, the newest. */
    struct runs_brief run;
    if (runs_of_shard(s, k, sub->shards, sub->command[0], &run, &err) == 1) {
        v->has_run = 1;
        snprintf(v->status, sizeof v->status, "%s", run.status);
        runs_progress(s, run.id, &v->total, &v->done);
    }
out:
    store_close(s);
    free(db);
}

static void print_scripts(const struct slurm_submission *sub) {
    char *a = slurm_array_script(sub), *m = slurm_merge_script(sub);
    char *pa = slurm_run_file(sub, "shards.sbatch"), *pm = slurm_run_file(sub, "merge.sbatch");
    printf("==> %s <==\n%s\n==> %s <==\n%s", pa, a, pm, m);
    free(a), free(m), free(pa), free(pm);
}

static int write_scripts(const struct slurm_submission *sub, struct ev_err *err) {
    char *a = slurm_array_script(sub), *m = slurm_merge_script(sub);
    char *pa = slurm_run_file(sub, "shards.sbatch"), *pm = slurm_run_file(sub, "merge.sbatch");
    int   rc = file_write_atomic(pa, a, strlen(a), err);
    if (rc == EV_OK) rc = file_write_atomic(pm, m, strlen(m), err);
    free(a), free(m), free(pa), free(pm);
    return rc;
}

/* Submits merge.sbatch after the jobs in deps (afterok); NULL deps: no dependency. */
static int submit_merge(struct slurm_submission *sub, const char *deps, struct ev_err *err) {
    char       *script = slurm_run_file(sub, "merge.sbatch");
    char       *dep = deps ? xasprintf("--dependency=afterok:%s", deps) : NULL;
    const char *extra[1] = {dep};
    char       *id = NULL;
    int         rc = slurm_sbatch(script, extra, dep ? 1 : 0, &id, err);
    if (rc == EV_OK) {
        free(sub->merge_job);
        sub->merge_job = id;
    }
    free(dep);
    free(script);
    return rc;
}

// ---------------------------------------------------------------------------- submit

/* What submit_new submitted, and how to follow it. */
static void print_submitted(const struct slurm_submission *sub, const char *source) {
    printf("run        %s\n", sub->run);
    printf("folder     %s\n", sub->dir);
    printf("shards     %d: array job %s (tasks 0-%d), databases shard-K.db\n", sub->shards,
           sub->array_job, sub->shards - 1);
    printf("merge job  %s, after every shard succeeds: %s/merged.db\n", sub->merge_job,
           sub->dir);
    if (sub->has_base) printf("start      each shard from a copy of %s\n", source);
    printf("follow it  evalrun status %s\n", sub->run);
}

static int submit_new(struct slurm_submission *sub, const char *source, int dry_run,
                      struct ev_err *err) {
    char *logs = slurm_run_file(sub, "logs");
    char *script = slurm_run_file(sub, "shards.sbatch");
    char *rec = slurm_run_file(sub, "submit.json");
    char *base = slurm_run_file(sub, "base.db");
    int   rc = EV_EFAIL, made_dir = 0;

    sub->has_base = path_exists(source);
    if (dry_run) {
        print_scripts(sub);
        if (sub->has_base)
            printf("(each shard would start from a copy of %s)\n", source);
        printf("(dry run: nothing written, nothing submitted)\n");
        rc = EV_OK;
        goto out;
    }
    if (path_exists(sub->dir)) {
        ev_fail(err, EV_EFAIL, "%s exists already: pick another --name, or resume that run "
                               "with 'evalrun submit --resume %s'", sub->dir, sub->run);
        goto out;
    }
    if (mkdir_p(logs, err) != EV_OK) goto out;
    made_dir = 1;
    if (write_scripts(sub, err) != EV_OK) goto out;
    if (sub->has_base) {
        struct store *src = NULL;
        if (store_open(source, STORE_READONLY, &src, err) != EV_OK) goto out;
        rc = store_snapshot(src, base, err);
        store_close(src);
        if (rc != EV_OK) goto out;
        rc = EV_EFAIL;
    }
    if (slurm_sbatch(script, NULL, 0, &sub->array_job, err) != EV_OK) goto out;
    for (int k = 0; k < sub->shards; k++)
        sub->shard_job[k] = xasprintf("%s_%d", sub->array_job, k);
    if (submit_merge(sub, sub->array_job, err) != EV_OK) {
        struct ev_err ignored;
        slurm_scancel(sub->array_job, &ignored);
        goto out;
    }
    if (slurm_submission_save(sub, err) != EV_OK) {
        struct ev_err ignored;
        slurm_scancel(sub->merge_job, &ignored);
        slurm_scancel(sub->array_job, &ignored);
        goto out;
    }
    print_submitted(sub, source);
    rc = EV_OK;
out:
    if (rc != EV_OK && made_dir) {
        /* Nothing was submitted: leave no half-made run behind. */
        char *pm = slurm_run_file(sub, "merge.sbatch");
        remove(script), remove(pm), remove(rec), remove(base), rmdir(logs), rmdir(sub->dir);
        free(pm);
    }
    free(logs), free(script), free(rec), free(base);
    return rc;
}

/* Sorts the shards of sub: done (counted), queued or running (their jobs, ':'-separated, in
 * active) or to resubmit (their indices, ','-separated, in todo). */
static void classify_shards(const struct slurm_submission *sub, struct sbuf *todo, int *n_todo,
                            struct sbuf *active, int *n_active, int *n_done) {
    char state[64];
    for (int k = 0; k < sub->shards; k++) {
        struct shard_view v;
        shard_view(sub, k, &v);
        state[0] = '\0';
        if (sub->shard_job[k]) slurm_job_state(sub->shard_job[k], state, sizeof state, NULL, 0);
        if (v.has_run && strcmp(v.status, "done") == 0) {
            (*n_done)++;
        } else if (slurm_state_active(state)) {
            sbuf_addf(active, "%s%s", (*n_active)++ ? ":" : "", sub->shard_job[k]);
        } else {
            sbuf_addf(todo, "%s%d", (*n_todo)++ ? "," : "", k);
        }
    }
}

/* Every shard is done but the merge did not complete: a new merge job, no dependency. */
static int resubmit_merge(struct slurm_submission *sub, int dry_run, struct ev_err *err) {
    if (dry_run) {
        printf("would submit a merge job (dry run: nothing submitted)\n");
        return EV_OK;
    }
    if (submit_merge(sub, NULL, err) != EV_OK) return EV_EFAIL;
    printf("merge job  %s (every shard is done; the last merge did not complete)\n",
           sub->merge_job);
    return slurm_submission_save(sub, err) != EV_OK ? EV_EFAIL : EV_OK;
}

/* Shard k's job is now NEW_k for the resubmitted indices todo ("1,3,4"). */
static void renumber_shards(struct slurm_submission *sub, const char *todo,
                            const char *new_array) {
    const char *p = todo;
    while (*p) {
        long   k = 0;
        char   num[16];
        size_t len = strcspn(p, ",");
        snprintf(num, sizeof num, "%.*s", (int)len, p);
        if (parse_long(num, &k) == EV_OK && k >= 0 && k < sub->shards) {
            free(sub->shard_job[k]);
            sub->shard_job[k] = xasprintf("%s_%ld", new_array, k);
        }
        p += len;
        if (*p == ',') p++;
    }
}

/* Resubmits the shards todo ("1,3") as a new array and a merge job after it and the n_active
 * jobs still queued or running (active, ':'-separated). */
static int resubmit_shards(struct slurm_submission *sub, const char *script, const char *todo,
                           struct sbuf *active, int n_active, struct ev_err *err) {
    char *array_flag = xasprintf("--array=%s", todo), *new_array = NULL;
    int   rc = EV_EFAIL;
    const char *extra[] = {array_flag};
    if (slurm_sbatch(script, extra, 1, &new_array, err) != EV_OK) goto out;
    free(sub->array_job);
    sub->array_job = xstrdup(new_array);
    renumber_shards(sub, todo, new_array);
    sub->resubmits++;
    if (n_active) sbuf_addf(active, ":");
    sbuf_adds(active, new_array);
    if (submit_merge(sub, active->buf, err) != EV_OK) {
        struct ev_err ignored;
        slurm_submission_save(sub, &ignored); /* the new array's ids, for status */
        goto out;
    }
    if (slurm_submission_save(sub, err) != EV_OK) goto out;
    printf("shards     %s resubmitted: array job %s\n", todo, new_array);
    printf("merge job  %s, after them%s\n", sub->merge_job,
           n_active ? " and the shards still queued or running" : "");
    printf("follow it  evalrun status %s\n", sub->run);
    rc = EV_OK;
out:
    free(array_flag);
    free(new_array);
    return rc;
}

static int submit_resume(struct slurm_submission *sub, int dry_run, struct ev_err *err) {
    struct sbuf todo, active;
    int         n_todo = 0, n_active = 0, n_done = 0, rc = EV_EFAIL;
    char        reason[128];
    char       *script = slurm_run_file(sub, "shards.sbatch");
    sbuf_init(&todo);
    sbuf_init(&active);

    classify_shards(sub, &todo, &n_todo, &active, &n_active, &n_done);
    printf("run %s: %d of %d shards done, %d queued or running, %d to resubmit%s%s\n",
           sub->run, n_done, sub->shards, n_active, n_todo, n_todo ? ": " : "",
           n_todo ? todo.buf : "");

    /* The old merge job waits on an afterok that a failed or cancelled shard can never meet;
     * a new one replaces it (after the resubmitted shards and those still running). */
    int  merge_active = 0;
    char merge_state[64] = "";
    if (sub->merge_job) {
        slurm_job_state(sub->merge_job, merge_state, sizeof merge_state, reason, sizeof reason);
        merge_active = slurm_state_active(merge_state);
    }
    if (n_todo == 0) {
        if (n_active == 0 && !merge_active && strcmp(merge_state, "COMPLETED") != 0)
            rc = resubmit_merge(sub, dry_run, err);
        else {
            printf("nothing to resubmit\n");
            rc = EV_OK;
        }
        goto out;
    }
    if (dry_run) {
        printf("would resubmit shards %s with: sbatch --array=%s %s\n", todo.buf, todo.buf,
               script);
        if (merge_active) printf("would cancel merge job %s (%s)\n", sub->merge_job, merge_state);
        printf("(dry run: nothing submitted)\n");
        rc = EV_OK;
        goto out;
    }
    if (merge_active) {
        if (slurm_scancel(sub->merge_job, err) != EV_OK) goto out;
        printf("cancelled  merge job %s (%s%s%s)\n", sub->merge_job, merge_state,
               reason[0] ? ": " : "", reason);
    }
    rc = resubmit_shards(sub, script, todo.buf, &active, n_active, err);
out:
    free(script);
    sbuf_release(&todo);
    sbuf_release(&active);
    return rc;
}

/* The job options of a and the COMMAND cmd[npos] (its name first) that submit is to run. */
static int check_command(const struct submit_opts *a, char **cmd, int npos, struct ev_err *err) {
    int rc;
    if (!a->slurm)
        return ev_fail(err, EV_EUSAGE, "submit: --slurm is required (Slurm is the scheduler "
                                       "evalrun submits to)");
    if (a->shards == -1)
        return ev_fail(err, EV_EUSAGE, "submit: --shards N is required");
    if ((rc = args_check_long("--shards", a->shards, 1, 100000, err)) != EV_OK) return rc;
    if (a->cpus && (rc = args_check_long("--cpus-per-task", a->cpus, 1, 100000, err)) != EV_OK)
        return rc;
    if (npos < 1)
        return ev_fail(err, EV_EUSAGE, "submit: name the COMMAND to run after '--' (e.g. "
                                       "evalrun submit --slurm --shards 4 -- specificity "
                                       "--features sample.txt)");
    if (!slurm_is_batch_command(cmd[0]))
        return ev_fail(err, EV_EUSAGE, "submit: '%s' is not a batch subcommand; COMMAND is one "
                                       "of %s", cmd[0], slurm_batch_commands());
    if (has_option(cmd + 1, npos - 1, "--shard"))
        return ev_fail(err, EV_EUSAGE, "submit: COMMAND must not have --shard: each task gets "
                                       "its own --shard K/%ld", a->shards);
    if (has_option(cmd + 1, npos - 1, "--db"))
        return ev_fail(err, EV_EUSAGE, "submit: COMMAND must not have --db: each shard writes "
                                       "RESULTS/RUN/shard-K.db, merged into RESULTS/RUN/merged.db");
    if (a->rpm >= 0 && has_option(cmd + 1, npos - 1, "--rpm"))
        return ev_fail(err, EV_EUSAGE, "submit: give --rpm once, to submit or to COMMAND");
    if (a->rpm >= 0 && (rc = args_check_double("--rpm", a->rpm, 1e-6, 1e9, err)) != EV_OK)
        return rc;
    return check_shards_vs_features(cmd + 1, npos - 1, a->shards, err);
}

/* sub, to be submitted: its name, folder, the binary, the job options and the command. */
static int fill_submission(struct slurm_submission *sub, const struct submit_opts *a, char **cmd,
                           int npos, struct ev_err *err) {
    char stamp[32];
    if (!a->name) {
        time_t    t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    }
    char *auto_name = a->name ? NULL : xasprintf("%s-%s", cmd[0], stamp);
    if (a->name && !valid_name(a->name)) {
        free(auto_name);
        return ev_fail(err, EV_EUSAGE, "submit: --name '%s': use letters, digits, '-', '_' and "
                                       "'.', not starting with '.'", a->name);
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        free(auto_name);
        return ev_fail(err, EV_EFAIL, "submit: cannot find the evalrun binary "
                                      "(/proc/self/exe)");
    }
    self[n] = '\0';

    sub->run = xstrdup(a->name ? a->name : auto_name);
    free(auto_name);
    sub->dir = run_dir(a->results, sub->run);
    sub->workdir = absolute(".");
    sub->evalrun = xstrdup(self);
    sub->shards = (int)a->shards;
    sub->partition = a->partition ? xstrdup(a->partition) : NULL;
    sub->time_limit = a->time_limit ? xstrdup(a->time_limit) : NULL;
    sub->mem = a->mem ? xstrdup(a->mem) : NULL;
    sub->cpus_per_task = a->cpus;
    sub->submitted_ms = now_unix_ms();
    sub->shard_job = xcalloc((size_t)sub->shards, sizeof *sub->shard_job);
    sub->command = xcalloc((size_t)npos + 2, sizeof *sub->command);
    for (int i = 0; i < npos; i++) sub->command[sub->n_command++] = xstrdup(cmd[i]);
    if (a->rpm >= 0) {
        sub->command[sub->n_command++] = xstrdup("--rpm");
        sub->command[sub->n_command++] = xasprintf("%g", a->rpm);
    }
    const char *bad = !sbatch_safe_path(sub->dir)       ? sub->dir
                      : !sbatch_safe_path(sub->workdir) ? sub->workdir
                      : (a->partition && !sbatch_safe_path(a->partition)) ? a->partition
                      : (a->time_limit && !sbatch_safe_path(a->time_limit)) ? a->time_limit
                      : (a->mem && !sbatch_safe_path(a->mem)) ? a->mem : NULL;
    if (bad)
        return ev_fail(err, EV_EUSAGE, "submit: '%s' cannot go into an #SBATCH line (no blanks, "
                                       "quotes or '%%'); run from a plainer path", bad);
    return EV_OK;
}

int submit_run_new(const struct submit_opts *a, char **cmd, int npos, const char *db_path,
                   struct ev_err *err) {
    struct slurm_submission sub;
    int                     rc;
    memset(&sub, 0, sizeof sub);
    if ((rc = check_command(a, cmd, npos, err)) == EV_OK &&
        (rc = fill_submission(&sub, a, cmd, npos, err)) == EV_OK)
        rc = submit_new(&sub, db_path, a->dry_run, err);
    slurm_submission_release(&sub);
    return rc;
}

int submit_run_resume(const char *results, const char *run, int dry_run, struct ev_err *err) {
    struct slurm_submission sub;
    int                     rc;
    memset(&sub, 0, sizeof sub);
    if ((rc = submit_load_run(results, run, &sub, err)) == EV_OK)
        rc = submit_resume(&sub, dry_run, err);
    slurm_submission_release(&sub);
    return rc;
}

// ---------------------------------------------------------------------------- status

/* status' table: one line per shard. Counts the shards done in *n_done, and lists those
 * that ended unfinished in stuck ("1,3"), *n_stuck of them. */
static void print_shards(const struct slurm_submission *sub, int *n_done, struct sbuf *stuck,
                         int *n_stuck) {
    printf("%-6s %-14s %-12s %-12s %s\n", "shard", "job", "slurm", "run", "items");
    for (int k = 0; k < sub->shards; k++) {
        struct shard_view v;
        char              state[64] = "", reason[128] = "", items[64] = "-";
        shard_view(sub, k, &v);
        if (sub->shard_job[k])
            slurm_job_state(sub->shard_job[k], state, sizeof state, reason, sizeof reason);
        if (v.has_run && v.total >= 0)
            snprintf(items, sizeof items, "%lld/%lld", (long long)v.done, (long long)v.total);
        if (v.has_run && strcmp(v.status, "done") == 0) {
            (*n_done)++;
        } else if (!slurm_state_active(state)) {
            sbuf_addf(stuck, "%s%d", (*n_stuck)++ ? "," : "", k);
        }
        const char *run_state = v.has_run ? v.status : v.has_db ? "no run yet" : "not started";
        if (v.note[0]) run_state = "unreadable";
        printf("%-6d %-14s %-12s %-12s %s%s%s\n", k, sub->shard_job[k] ? sub->shard_job[k] : "-",
               state[0] ? state : "-", run_state, items, reason[0] ? "  " : "", reason);
        if (v.note[0]) printf("       %s\n", v.note);
    }
}

/* The merged database, when there is one, and its run. */
static void print_merged(const struct slurm_submission *sub) {
    char *merged = slurm_run_file(sub, "merged.db");
    if (path_exists(merged)) {
        struct store     *m = NULL;
        struct ev_err     merr;
        struct runs_brief run;
        printf("merged %s", merged);
        if (store_open(merged, STORE_READONLY, &m, &merr) == EV_OK &&
            runs_newest_unsharded(m, sub->command[0], &run, &merr) == 1)
            printf(": %s run %lld %s%s%s", sub->command[0], (long long)run.id, run.status,
                   run.error[0] ? " - " : "", run.error);
        printf("\n");
        store_close(m);
    }
    free(merged);
}

int submit_run_status(const char *results, const char *run, struct ev_err *err) {
    struct slurm_submission sub;
    int                     rc;
    if ((rc = submit_load_run(results, run, &sub, err)) != EV_OK) return rc;

    printf("run %s: %d shards of:", sub.run, sub.shards);
    for (int i = 0; i < sub.n_command; i++) printf(" %s", sub.command[i]);
    printf("\nfolder %s\n\n", sub.dir);
    int         n_done = 0, n_stuck = 0;
    struct sbuf stuck;
    sbuf_init(&stuck);
    print_shards(&sub, &n_done, &stuck, &n_stuck);
    char mstate[64] = "", mreason[128] = "";
    if (sub.merge_job) slurm_job_state(sub.merge_job, mstate, sizeof mstate, mreason,
                                       sizeof mreason);
    printf("\n%d of %d shards done; merge job %s: %s%s%s\n", n_done, sub.shards,
           sub.merge_job ? sub.merge_job : "-", mstate[0] ? mstate : "-",
           mreason[0] ? ", " : "", mreason);
    print_merged(&sub);
    if (n_stuck > 0)
        printf("shard%s %s ended unfinished: 'evalrun submit --resume %s' resubmits %s and a "
               "new merge job\n", n_stuck == 1 ? "" : "s", stuck.buf, sub.run,
               n_stuck == 1 ? "it" : "them");
    sbuf_release(&stuck);
    slurm_submission_release(&sub);
    return EV_OK;
}
