/*
 * cmd_db — `evalrun runs` (list runs) and `evalrun db info` (schema version, row counts).
 */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "store/runs.h"
#include "store/store.h"

static void fmt_time(char *buf, size_t n, int64_t ms) {
    time_t    t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
}

static int print_run(void *ctx, const struct runs_row *r) {
    char started[32], dur[32] = "-", shard[32] = "-";
    fmt_time(started, sizeof started, r->started_ms);
    /* work time (summed over starts and resumes); runs from before migration 014 that
     * finished: the time from start to finish */
    if (r->work_ms >= 0)
        snprintf(dur, sizeof dur, "%.1f", (double)r->work_ms / 1000.0);
    else if (r->finished_ms >= 0)
        snprintf(dur, sizeof dur, "%.1f", (double)(r->finished_ms - r->started_ms) / 1000.0);
    if (r->shard_n > 1) snprintf(shard, sizeof shard, "%d/%d", r->shard_k, r->shard_n);
    printf("%-6lld %-14s %-16s %-12s %-19s %9s %s\n", (long long)r->id, r->kind, r->tag,
           r->status, started, dur, shard);
    ++*(int *)ctx;
    return EV_OK;
}

int cmd_runs(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "runs", "",
        "Lists the runs in the database, newest first: id, kind, tag, status, start time,\n"
        "seconds of work (summed over its starts and resumes, not the time since the first\n"
        "start) and shard. A run left 'running' by a process that no longer exists is shown\n"
        "as interrupted; rerunning its command resumes it."};
    const char *kind = NULL;
    long        limit = 50;
    struct common_opts co;
    common_opts_init(&co, cli, 0);
    const struct opt opts[] = {
        {"kind", OPT_STR, &kind, "KIND", "only runs of this kind (e.g. specificity)"},
        {"limit", OPT_LONG, &limit, "N", "at most N runs (default 50)"},
        COMMON_OPTIONS(co),
        {0},
    };
    int npos = 0;
    int rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos > 0)
        return args_no_positional(&help, npos, argv, err);
    if ((rc = args_check_long("--limit", limit, 1, 1000000, err)) != EV_OK) return rc;

    struct store *s = NULL;
    int           n = 0;
    /* Read-only (another user's database works); a run left 'running' by a dead process is
     * shown as interrupted, as reaping would record it. */
    if ((rc = store_open(cli->db_path, STORE_READONLY | STORE_UPGRADE, &s, err)) != EV_OK)
        return rc;
    printf("%-6s %-14s %-16s %-12s %-19s %9s %s\n", "id", "kind", "tag", "status",
           "started (UTC)", "seconds", "shard");
    rc = runs_list(s, kind, limit, print_run, &n, err);
    if (rc == EV_OK && n == 0) printf("(no runs)\n");
    store_close(s);
    return rc;
}

static int print_count(void *ctx, const char *table, int64_t rows) {
    (void)ctx;
    printf("%-24s %12lld\n", table, (long long)rows);
    return EV_OK;
}

static int db_info(const struct cli *cli, struct ev_err *err) {
    struct store *s = NULL;
    int           rc = store_open(cli->db_path, STORE_READONLY, &s, err);
    if (rc != EV_OK) return rc;
    printf("database        %s\n", store_path(s));
    printf("schema version  %d (this evalrun: %d)\n", store_schema_version(s),
           store_schema_latest());
    printf("\n%-24s %12s\n", "table", "rows");
    rc = store_table_counts(s, print_count, NULL, err);
    store_close(s);
    return rc;
}

int cmd_db(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "db", "info|init",
        "Database maintenance.\n"
        "  db init    create the database (or upgrade its schema) and show what it holds\n"
        "  db info    the database path, its schema version and the row count of every table"};
    int npos = 0;
    int rc = common_opts_parse_only(&help, cli, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos == 1 && strcmp(argv[1], "init") == 0) {
        struct store *s = NULL;
        if ((rc = store_open(cli->db_path, STORE_CREATE, &s, err)) != EV_OK) return rc;
        store_close(s);
        return db_info(cli, err);
    }
    if (npos == 0)
        return ev_fail(err, EV_EUSAGE, "db: expected 'info' or 'init' (see 'evalrun db --help')");
    if (npos > 1 || strcmp(argv[1], "info") != 0)
        return ev_fail(err, EV_EUSAGE,
                       "db: unexpected argument '%s': expected 'info' or 'init' (see 'evalrun "
                       "db --help')", argv[npos > 1 && (!strcmp(argv[1], "info") ||
                                                        !strcmp(argv[1], "init")) ? 2 : 1]);
    return db_info(cli, err);
}
