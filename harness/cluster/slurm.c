/*
 * slurm — batch scripts, Slurm's commands as child processes, and submit.json; see slurm.h.
 */
#include "cluster/slurm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/json.h"

static const char *const batch_commands[] = {
    "collect",     "train-sae", "sweep",     "index",     "sae-metrics", "explain",
    "specificity", "completeness", "influence", "attribution", "autointerp",
};
#define N_BATCH ((int)(sizeof batch_commands / sizeof batch_commands[0]))

int slurm_is_batch_command(const char *name) {
    for (int i = 0; i < N_BATCH; i++)
        if (strcmp(batch_commands[i], name) == 0) return 1;
    return 0;
}

const char *slurm_batch_commands(void) {
    return "collect, train-sae, sweep, index, sae-metrics, explain, specificity, completeness, "
           "influence, attribution, autointerp";
}

char *slurm_quote(const char *s) {
    struct sbuf sb;
    sbuf_init(&sb);
    sbuf_adds(&sb, "'");
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            sbuf_adds(&sb, "'\\''");
        else
            sbuf_add(&sb, p, 1);
    }
    sbuf_adds(&sb, "'");
    return sbuf_detach(&sb);
}

// ---------------------------------------------------------------------------- processes

#define EXEC_MAX_OUTPUT (1 << 20)

int slurm_exec(const char *const *argv, char **out, char **errtext, int *status,
               struct ev_err *err) {
    int         po[2] = {-1, -1}, pe[2] = {-1, -1}, px[2] = {-1, -1};
    int         rc = EV_EFAIL;
    struct sbuf so, se;
    sbuf_init(&so);
    sbuf_init(&se);
    if (pipe(po) != 0 || pipe(pe) != 0 || pipe(px) != 0) {
        ev_fail(err, EV_EFAIL, "cannot run %s: pipe: %s", argv[0], strerror(errno));
        goto out;
    }
    /* px reports a failed exec: its write end closes on a successful exec. */
    fcntl(px[1], F_SETFD, FD_CLOEXEC);
    pid_t pid = fork();
    if (pid < 0) {
        ev_fail(err, EV_EFAIL, "cannot run %s: fork: %s", argv[0], strerror(errno));
        goto out;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]), close(pe[0]), close(px[0]);
        execvp(argv[0], (char *const *)argv);
        int e = errno;
        if (write(px[1], &e, sizeof e) < 0) e = 0;
        _exit(127); /* a forked child must not run the parent's exit handlers */
    }
    close(po[1]), close(pe[1]), close(px[1]);
    po[1] = pe[1] = px[1] = -1;
    int     exec_errno = 0;
    ssize_t got = read(px[0], &exec_errno, sizeof exec_errno);
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int           open_fds = 2;
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char    buf[4096];
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) {
                if (n < 0 && errno == EINTR) continue;
                fds[i].fd = -1;
                open_fds--;
                continue;
            }
            struct sbuf *sb = i == 0 ? &so : &se;
            if (sb->len < EXEC_MAX_OUTPUT) sbuf_add(sb, buf, (size_t)n);
        }
    }
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    if (got == (ssize_t)sizeof exec_errno && exec_errno != 0) {
        ev_fail(err, EV_EFAIL, "cannot run %s: %s%s", argv[0], strerror(exec_errno),
                exec_errno == ENOENT ? " (is Slurm installed and on PATH?)" : "");
        goto out;
    }
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
    if (out) *out = sbuf_detach(&so);
    if (errtext) *errtext = sbuf_detach(&se);
    rc = EV_OK;
out:
    for (int i = 0; i < 2; i++) {
        if (po[i] >= 0) close(po[i]);
        if (pe[i] >= 0) close(pe[i]);
        if (px[i] >= 0) close(px[i]);
    }
    sbuf_release(&so);
    sbuf_release(&se);
    return rc;
}

/* The first line of text, trimmed, for messages. */
static void first_line(const char *text, char *buf, size_t n) {
    while (*text == ' ' || *text == '\n' || *text == '\t') text++;
    size_t len = strcspn(text, "\n");
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\r')) len--;
    snprintf(buf, n, "%.*s", (int)len, text);
}

/* The whole text on one line (newlines become "; "), for messages. */
static void one_line(const char *text, char *buf, size_t n) {
    size_t j = 0;
    int    sep = 0;
    for (const char *p = text; *p && j + 3 < n; p++) {
        if (*p == '\n' || *p == '\r') {
            sep = 1;
            continue;
        }
        if (sep && j > 0) {
            buf[j++] = ';';
            buf[j++] = ' ';
        }
        sep = 0;
        buf[j++] = *p;
    }
    buf[j] = '\0';
}

int slurm_sbatch(const char *script, const char *const *extra, int n_extra, char **job_id,
                 struct ev_err *err) {
    const char **argv = xcalloc((size_t)n_extra + 4, sizeof *argv);
    char        *out = NULL, *etext = NULL;
    int          status = 0, rc = EV_EFAIL, n = 0;
    argv[n++] = "sbatch";
    argv[n++] = "--parsable";
    for (int i = 0; i < n_extra; i++) argv[n++] = extra[i];
    argv[n++] = script;
    argv[n] = NULL;
    if (slurm_exec(argv, &out, &etext, &status, err) != EV_OK) goto out;
    char line[128];
    first_line(out, line, sizeof line);
    line[strcspn(line, ";")] = '\0'; /* "ID;cluster" on multi-cluster setups */
    if (status != 0 || !line[0] || strspn(line, "0123456789_") != strlen(line)) {
        char msg[400];
        one_line(etext[0] ? etext : out, msg, sizeof msg);
        ev_fail(err, EV_EFAIL, "sbatch refused %s (exit %d): %s", script, status,
                msg[0] ? msg : "no message");
        goto out;
    }
    *job_id = xstrdup(line);
    rc = EV_OK;
out:
    free(argv);
    free(out);
    free(etext);
    return rc;
}

int slurm_scancel(const char *job_id, struct ev_err *err) {
    const char *argv[] = {"scancel", job_id, NULL};
    char       *etext = NULL;
    int         status = 0;
    if (slurm_exec(argv, NULL, &etext, &status, err) != EV_OK) return EV_EFAIL;
    int rc = EV_OK;
    if (status != 0) {
        char msg[300];
        one_line(etext, msg, sizeof msg);
        rc = ev_fail(err, EV_EFAIL, "scancel %s failed (exit %d): %s", job_id, status, msg);
    }
    free(etext);
    return rc;
}

/* Runs a query and returns its first output line in buf ("" on any failure). */
static void query_line(const char *const *argv, char *buf, size_t n) {
    char         *out = NULL;
    int           status = 1;
    struct ev_err ignored;
    buf[0] = '\0';
    if (slurm_exec(argv, &out, NULL, &status, &ignored) == EV_OK && status == 0)
        first_line(out, buf, n);
    free(out);
}

/* Copies the value of "Key=" from scontrol's one-line output. */
static void scontrol_field(const char *line, const char *key, char *buf, size_t n) {
    buf[0] = '\0';
    size_t      klen = strlen(key);
    const char *p = line;
    while ((p = strstr(p, key)) != NULL) {
        if ((p == line || p[-1] == ' ') && p[klen] == '=') {
            p += klen + 1;
            snprintf(buf, n, "%.*s", (int)strcspn(p, " "), p);
            return;
        }
        p += klen;
    }
}

void slurm_job_state(const char *job_id, char *state, size_t n_state, char *reason,
                     size_t n_reason) {
    char line[1024];
    state[0] = '\0';
    if (reason && n_reason) reason[0] = '\0';
    const char *sq[] = {"squeue", "-h", "-j", job_id, "-o", "%T|%r", NULL};
    query_line(sq, line, sizeof line);
    if (line[0]) {
        char *bar = strchr(line, '|');
        if (bar) *bar = '\0';
        snprintf(state, n_state, "%s", line);
        if (reason && bar && strcmp(bar + 1, "None") != 0) snprintf(reason, n_reason, "%s", bar + 1);
        return;
    }
    const char *sa[] = {"sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State", NULL};
    query_line(sa, line, sizeof line);
    if (line[0]) {
        line[strcspn(line, " ")] = '\0'; /* "CANCELLED by 0" */
        snprintf(state, n_state, "%s", line);
        return;
    }
    const char *sc[] = {"scontrol", "-o", "show", "job", job_id, NULL};
    query_line(sc, line, sizeof line);
    if (line[0]) {
        scontrol_field(line, "JobState", state, n_state);
        if (reason && n_reason) {
            scontrol_field(line, "Reason", reason, n_reason);
            if (strcmp(reason, "None") == 0) reason[0] = '\0';
        }
    }
}

int slurm_state_active(const char *state) {
    static const char *const active[] = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING",
                                         "REQUEUED", "RESIZING", "SUSPENDED", "STOPPED",
                                         "SIGNALING", "STAGE_OUT", "REQUEUE_HOLD",
                                         "REQUEUE_FED", "RESV_DEL_HOLD"};
    for (size_t i = 0; i < sizeof active / sizeof active[0]; i++)
        if (strcmp(state, active[i]) == 0) return 1;
    return 0;
}

// ---------------------------------------------------------------------------- submit.json

char *slurm_run_file(const struct slurm_submission *sub, const char *name) {
    return path_join(sub->dir, name);
}

char *slurm_shard_db(const struct slurm_submission *sub, int k) {
    char name[64];
    snprintf(name, sizeof name, "shard-%d.db", k);
    return path_join(sub->dir, name);
}

void slurm_submission_release(struct slurm_submission *sub) {
    if (!sub) return;
    for (int i = 0; i < sub->n_command; i++) free(sub->command[i]);
    free(sub->command);
    if (sub->shard_job)
        for (int k = 0; k < sub->shards; k++) free(sub->shard_job[k]);
    free(sub->shard_job);
    free(sub->run), free(sub->dir), free(sub->workdir), free(sub->evalrun);
    free(sub->partition), free(sub->time_limit), free(sub->mem);
    free(sub->array_job), free(sub->merge_job);
    memset(sub, 0, sizeof *sub);
}

static void add_opt_str(cJSON *o, const char *key, const char *v) {
    if (v)
        cJSON_AddStringToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

int slurm_submission_save(const struct slurm_submission *sub, struct ev_err *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", "evalrun-submit");
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddStringToObject(o, "run", sub->run);
    cJSON_AddStringToObject(o, "dir", sub->dir);
    cJSON_AddStringToObject(o, "workdir", sub->workdir);
    cJSON_AddStringToObject(o, "evalrun", sub->evalrun);
    cJSON *cmd = cJSON_AddArrayToObject(o, "command");
    for (int i = 0; i < sub->n_command; i++)
        cJSON_AddItemToArray(cmd, cJSON_CreateString(sub->command[i]));
    cJSON_AddNumberToObject(o, "shards", sub->shards);
    add_opt_str(o, "partition", sub->partition);
    add_opt_str(o, "time", sub->time_limit);
    add_opt_str(o, "mem", sub->mem);
    cJSON_AddNumberToObject(o, "cpus_per_task", (double)sub->cpus_per_task);
    add_opt_str(o, "array_job", sub->array_job);
    add_opt_str(o, "merge_job", sub->merge_job);
    cJSON *jobs = cJSON_AddArrayToObject(o, "shard_jobs");
    for (int k = 0; k < sub->shards; k++)
        cJSON_AddItemToArray(jobs, sub->shard_job && sub->shard_job[k]
                                       ? cJSON_CreateString(sub->shard_job[k])
                                       : cJSON_CreateNull());
    cJSON_AddNumberToObject(o, "resubmits", sub->resubmits);
    cJSON_AddBoolToObject(o, "base", sub->has_base);
    cJSON_AddNumberToObject(o, "submitted_ms", (double)sub->submitted_ms);
    char *path = slurm_run_file(sub, "submit.json");
    int   rc = json_write_file(path, o, JSON_WRITE_PRETTY | JSON_WRITE_NEWLINE, err);
    json_free(o);
    free(path);
    return rc;
}

static int get_opt_dup(const cJSON *o, const char *key, const char *what, char **out,
                       struct ev_err *err) {
    const char *v = NULL;
    if (json_get_str_opt(o, key, what, &v, err) != EV_OK) return EV_EFAIL;
    *out = v ? xstrdup(v) : NULL;
    return EV_OK;
}

int slurm_submission_load(const char *dir, struct slurm_submission *sub, struct ev_err *err) {
    char       *path = path_join(dir, "submit.json");
    cJSON      *o = NULL;
    int         rc = EV_EFAIL;
    const char *s = NULL;
    long        v = 0;
    memset(sub, 0, sizeof *sub);
    if (json_parse_file(path, &o, err) != EV_OK) goto out;
    if (!cJSON_IsObject(o) || json_get_str(o, "format", path, &s, err) != EV_OK ||
        strcmp(s, "evalrun-submit") != 0) {
        ev_fail(err, EV_EFAIL, "%s: not an evalrun submission record (\"format\": "
                               "\"evalrun-submit\" expected)", path);
        goto out;
    }
    if (json_get_long(o, "version", path, &v, err) != EV_OK) goto out;
    if (v != 1) {
        ev_fail(err, EV_EFAIL, "%s: submission record version %ld, this evalrun reads 1; "
                               "---> HINT: use the evalrun that submitted it", path, v);
        goto out;
    }
    if (get_opt_dup(o, "run", path, &sub->run, err) != EV_OK ||
        get_opt_dup(o, "dir", path, &sub->dir, err) != EV_OK ||
        get_opt_dup(o, "workdir", path, &sub->workdir, err) != EV_OK ||
        get_opt_dup(o, "evalrun", path, &sub->evalrun, err) != EV_OK ||
        get_opt_dup(o, "partition", path, &sub->partition, err) != EV_OK ||
        get_opt_dup(o, "time", path, &sub->time_limit, err) != EV_OK ||
        get_opt_dup(o, "mem", path, &sub->mem, err) != EV_OK ||
        get_opt_dup(o, "array_job", path, &sub->array_job, err) != EV_OK ||
        get_opt_dup(o, "merge_job", path, &sub->merge_job, err) != EV_OK)
        goto out;
    if (!sub->run || !sub->dir || !sub->workdir || !sub->evalrun) {
        ev_fail(err, EV_EFAIL, "%s: run, dir, workdir and evalrun are required", path);
        goto out;
    }
    if (json_get_long(o, "shards", path, &v, err) != EV_OK) goto out;
    if (v < 1 || v > 100000) {
        ev_fail(err, EV_EFAIL, "%s: shards must be in 1..100000, got %ld", path, v);
        goto out;
    }
    sub->shards = (int)v;
    if (json_get_long_opt(o, "cpus_per_task", path, &sub->cpus_per_task, err) != EV_OK)
        goto out;
    v = 0;
    if (json_get_long_opt(o, "resubmits", path, &v, err) != EV_OK) goto out;
    sub->resubmits = (int)v;
    if (json_get_bool_opt(o, "base", path, &sub->has_base, err) != EV_OK) goto out;
    double ms = 0;
    if (json_get_double_opt(o, "submitted_ms", path, &ms, err) != EV_OK) goto out;
    sub->submitted_ms = (int64_t)ms;
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(o, "command");
    if (!cJSON_IsArray(cmd) || cJSON_GetArraySize(cmd) < 1) {
        ev_fail(err, EV_EFAIL, "%s: command must be a non-empty array of strings", path);
        goto out;
    }
    sub->command = xcalloc((size_t)cJSON_GetArraySize(cmd), sizeof *sub->command);
    for (const cJSON *c = cmd->child; c; c = c->next) {
        if (!cJSON_IsString(c)) {
            ev_fail(err, EV_EFAIL, "%s: command must be a non-empty array of strings", path);
            goto out;
        }
        sub->command[sub->n_command++] = xstrdup(c->valuestring);
    }
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(o, "shard_jobs");
    if (!cJSON_IsArray(jobs) || cJSON_GetArraySize(jobs) != sub->shards) {
        ev_fail(err, EV_EFAIL, "%s: shard_jobs must list one job per shard (%d)", path,
                sub->shards);
        goto out;
    }
    sub->shard_job = xcalloc((size_t)sub->shards, sizeof *sub->shard_job);
    int k = 0;
    for (const cJSON *j = jobs->child; j; j = j->next, k++)
        sub->shard_job[k] = cJSON_IsString(j) ? xstrdup(j->valuestring) : NULL;
    rc = EV_OK;
out:
    if (rc != EV_OK) slurm_submission_release(sub);
    json_free(o);
    free(path);
    return rc;
}

// ---------------------------------------------------------------------------- scripts

static void directives(struct sbuf *sb, const struct slurm_submission *sub, int for_merge) {
    if (sub->partition) sbuf_addf(sb, "#SBATCH --partition=%s\n", sub->partition);
    if (sub->time_limit && !for_merge) sbuf_addf(sb, "#SBATCH --time=%s\n", sub->time_limit);
    if (sub->mem) sbuf_addf(sb, "#SBATCH --mem=%s\n", sub->mem);
    if (sub->cpus_per_task > 0 && !for_merge)
        sbuf_addf(sb, "#SBATCH --cpus-per-task=%ld\n", sub->cpus_per_task);
    sbuf_addf(sb, "#SBATCH --chdir=%s\n", sub->workdir);
    sbuf_adds(sb, "#SBATCH --export=ALL\n");
}

static void stamp(char *buf, size_t n, int64_t ms) {
    time_t    t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

char *slurm_array_script(const struct slurm_submission *sub) {
    struct sbuf sb;
    char        when[64];
    stamp(when, sizeof when, sub->submitted_ms);
    sbuf_init(&sb);
    sbuf_addf(&sb,
              "#!/bin/bash\n"
              "# evalrun run %s: %d shards of one evaluation, as a Slurm job array.\n"
              "# Written by `evalrun submit` (%s). Array task K runs the command on its\n"
              "# slice (--shard K/%d) with its own database %s/shard-K.db: one SQLite file\n"
              "# per shard, never one shared between nodes. Rerunning a task resumes its\n"
              "# shard; `evalrun submit --resume %s` resubmits the unfinished ones.\n"
              "# No API key is written here: jobs inherit the submitting environment\n"
              "# (--export=ALL). The grader's --rpm is a total; each shard takes 1/%d of it.\n",
              sub->run, sub->shards, when, sub->shards, sub->dir, sub->run, sub->shards);
    sbuf_addf(&sb, "#SBATCH --job-name=evalrun-%s\n", sub->run);
    sbuf_addf(&sb, "#SBATCH --array=0-%d\n", sub->shards - 1);
    sbuf_adds(&sb, "#SBATCH --ntasks=1\n");
    sbuf_addf(&sb, "#SBATCH --output=%s/logs/shard-%%a.out\n", sub->dir);
    directives(&sb, sub, 0);
    char *dir = slurm_quote(sub->dir), *bin = slurm_quote(sub->evalrun);
    sbuf_addf(&sb, "set -eu\nK=$SLURM_ARRAY_TASK_ID\nRUN_DIR=%s\nDB=\"$RUN_DIR/shard-$K.db\"\n",
              dir);
    if (sub->has_base)
        sbuf_adds(&sb, "# The shard starts from a copy of the database submit was given (its\n"
                       "# feature index, descriptions and the grader's cached answers).\n"
                       "if [ ! -s \"$DB\" ]; then\n"
                       "    cp \"$RUN_DIR/base.db\" \"$DB.part.$$\" && mv \"$DB.part.$$\" \"$DB\"\n"
                       "fi\n");
    sbuf_addf(&sb, "exec %s --db \"$DB\"", bin);
    for (int i = 0; i < sub->n_command; i++) {
        char *q = slurm_quote(sub->command[i]);
        sbuf_addf(&sb, " %s", q);
        free(q);
    }
    sbuf_addf(&sb, " --shard \"$K/%d\"\n", sub->shards);
    free(dir);
    free(bin);
    return sbuf_detach(&sb);
}

char *slurm_merge_script(const struct slurm_submission *sub) {
    struct sbuf sb;
    sbuf_init(&sb);
    sbuf_addf(&sb,
              "#!/bin/bash\n"
              "# evalrun run %s: merges the %d shard databases into %s/merged.db.\n"
              "# Submitted with --dependency=afterok on the shards' array, so it runs once\n"
              "# every shard succeeded; merging is idempotent, so running it again is safe.\n",
              sub->run, sub->shards, sub->dir);
    sbuf_addf(&sb, "#SBATCH --job-name=evalrun-%s-merge\n", sub->run);
    sbuf_adds(&sb, "#SBATCH --ntasks=1\n");
    sbuf_addf(&sb, "#SBATCH --output=%s/logs/merge.out\n", sub->dir);
    directives(&sb, sub, 1);
    char *dir = slurm_quote(sub->dir), *bin = slurm_quote(sub->evalrun);
    sbuf_addf(&sb, "set -eu\nRUN_DIR=%s\n", dir);
    if (sub->shards == 1)
        sbuf_addf(&sb, "exec %s --db \"$RUN_DIR/merged.db\" merge \"$RUN_DIR/shard-0.db\"\n",
                  bin);
    else
        sbuf_addf(&sb, "exec %s --db \"$RUN_DIR/merged.db\" merge \"$RUN_DIR\"/shard-{0..%d}.db\n",
                  bin, sub->shards - 1);
    free(dir);
    free(bin);
    return sbuf_detach(&sb);
}
