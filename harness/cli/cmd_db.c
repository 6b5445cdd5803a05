/*
 * cmd_db — `evalrun runs` (list runs) and `evalrun db info` (schema version, row counts).
 */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "store/store.h"

static void fmt_time(char *buf, size_t n, int64_t ms) {
    time_t    t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
}

int cmd_runs(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "runs", "",
        "Lists the runs in the database, newest first: id, kind, tag, status, start time,\n"
        "duration and shard. A run left 'running' by a process that no longer exists is shown\n"
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
        return ev_fail(err, EV_EUSAGE, "runs: unexpected argument '%s'", argv[1]);
    if ((rc = args_check_long("--limit", limit, 1, 1000000, err)) != EV_OK) return rc;

    struct store      *s = NULL;
    struct store_stmt *st = NULL;
    /* Read-only (another user's database works); live_status() shows a run left 'running'
     * by a dead process as interrupted, as reaping would record it. */
    if ((rc = store_open(cli->db_path, STORE_READONLY | STORE_UPGRADE, &s, err)) != EV_OK)
        return rc;
    rc = store_prepare(s,
                       "SELECT id, kind, coalesce(tag, '-'), live_status(status, host, pid), "
                       "started_ms, finished_ms, "
                       "shard_k, shard_n FROM runs WHERE (?1 IS NULL OR kind = ?1) "
                       "ORDER BY id DESC LIMIT ?2",
                       &st, err);
    if (rc != EV_OK) goto out;
    store_bind_text(st, 1, kind);
    store_bind_int(st, 2, limit);
    printf("%-6s %-14s %-16s %-12s %-19s %9s %s\n", "id", "kind", "tag", "status",
           "started (UTC)", "seconds", "shard");
    int r, n = 0;
    while ((r = store_step(st, err)) == STORE_ROW) {
        char started[32], dur[32] = "-", shard[32] = "-";
        fmt_time(started, sizeof started, store_col_int(st, 4));
        if (!store_col_is_null(st, 5))
            snprintf(dur, sizeof dur, "%.1f",
                     (double)(store_col_int(st, 5) - store_col_int(st, 4)) / 1000.0);
        if (store_col_int(st, 7) > 1)
            snprintf(shard, sizeof shard, "%lld/%lld", (long long)store_col_int(st, 6),
                     (long long)store_col_int(st, 7));
        printf("%-6lld %-14s %-16s %-12s %-19s %9s %s\n", (long long)store_col_int(st, 0),
               store_col_text(st, 1), store_col_text(st, 2), store_col_text(st, 3), started, dur,
               shard);
        n++;
    }
    if (r < 0) {
        rc = EV_EFAIL;
        goto out;
    }
    if (n == 0) printf("(no runs)\n");
    rc = EV_OK;
out:
    store_finalize(st);
    store_close(s);
    return rc;
}

static int db_info(const struct cli *cli, struct ev_err *err) {
    struct store      *s = NULL;
    struct store_stmt *st = NULL, *cnt = NULL;
    int                rc = store_open(cli->db_path, STORE_READONLY, &s, err);
    if (rc != EV_OK) return rc;
    printf("database        %s\n", store_path(s));
    printf("schema version  %d (this evalrun: %d)\n", store_schema_version(s),
           store_schema_latest());
    rc = store_prepare(s, "SELECT name FROM sqlite_master WHERE type = 'table' AND "
                          "name NOT LIKE 'sqlite_%' ORDER BY name", &st, err);
    if (rc != EV_OK) goto out;
    printf("\n%-24s %12s\n", "table", "rows");
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        /* Table names come from sqlite_master, not from the user; quoted as identifiers. */
        const char *name = store_col_text(st, 0);
        char       *sql = xasprintf("SELECT count(*) FROM \"%s\"", name);
        rc = store_prepare(s, sql, &cnt, err);
        free(sql);
        if (rc != EV_OK) goto out;
        if (store_step(cnt, err) != STORE_ROW) {
            rc = EV_EFAIL;
            goto out;
        }
        printf("%-24s %12lld\n", name, (long long)store_col_int(cnt, 0));
        store_finalize(cnt);
        cnt = NULL;
    }
    rc = r < 0 ? EV_EFAIL : EV_OK;
out:
    store_finalize(cnt);
    store_finalize(st);
    store_close(s);
    return rc;
}

int cmd_db(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "db", "info|init",
        "Database maintenance.\n"
        "  db init    create the database (or upgrade its schema) and show what it holds\n"
        "  db info    the database path, its schema version and the row count of every table"};
    struct common_opts co;
    common_opts_init(&co, cli, 0);
    const struct opt opts[] = {COMMON_OPTIONS(co), {0}};
    int npos = 0;
    int rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos == 1 && strcmp(argv[1], "init") == 0) {
        struct store *s = NULL;
        if ((rc = store_open(cli->db_path, STORE_CREATE, &s, err)) != EV_OK) return rc;
        store_close(s);
        return db_info(cli, err);
    }
    if (npos != 1 || strcmp(argv[1], "info") != 0)
        return ev_fail(err, EV_EUSAGE, "db: expected 'info' or 'init' (see 'evalrun db --help')");
    return db_info(cli, err);
}
