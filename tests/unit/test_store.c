/* Unit tests for store: creation, migrations, newer-schema refusal, runs (resume, reap after
 * SIGKILL), transactions, bad files. Each test works in its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"

struct fx {
    char  dir[64];
    char *db;
};

static int setup(void **state) {
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/evalrun-store-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    f->db = path_join(f->dir, "t.db");
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fx *f = *state;
    char      *cmd = xasprintf("rm -rf %s", f->dir);
    int        rc = system(cmd);
    free(cmd);
    free(f->db);
    free(f);
    return rc == 0 ? 0 : -1;
}

static int64_t count(struct store *s, const char *sql) {
    struct store_stmt *st = NULL;
    struct ev_err      err;
    assert_int_equal(store_prepare(s, sql, &st, &err), EV_OK);
    assert_int_equal(store_step(st, &err), STORE_ROW);
    int64_t n = store_col_int(st, 0);
    store_finalize(st);
    return n;
}

static void test_create_and_migrate(void **state) {
    struct fx    *f = *state;
    struct store *s = NULL;
    struct ev_err err;
    /* read-only open of a missing file fails and creates nothing */
    assert_int_equal(store_open(f->db, STORE_READONLY, &s, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "does not exist"));
    assert_false(path_exists(f->db));
    assert_int_equal(store_open(f->db, STORE_CREATE, &s, &err), EV_OK);
    assert_int_equal(store_schema_version(s), store_schema_latest());
    assert_int_equal(count(s, "SELECT count(*) FROM runs"), 0);
    /* WAL and foreign keys are on */
    struct store_stmt *st = NULL;
    assert_int_equal(store_prepare(s, "PRAGMA journal_mode", &st, &err), EV_OK);
    assert_int_equal(store_step(st, &err), STORE_ROW);
    assert_string_equal(store_col_text(st, 0), "wal");
    store_finalize(st);
    assert_int_equal(count(s, "PRAGMA foreign_keys"), 1);
    store_close(s);
    /* reopening is a no-op migration */
    assert_int_equal(store_open(f->db, 0, &s, &err), EV_OK);
    store_close(s);
}

static void test_missing_dir_and_not_a_db(void **state) {
    struct fx    *f = *state;
    struct store *s = NULL;
    struct ev_err err;
    char         *bad = path_join(f->dir, "nope/x.db");
    assert_int_equal(store_open(bad, STORE_CREATE, &s, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "does not exist"));
    free(bad);
    char *junk = path_join(f->dir, "junk.db");
    assert_int_equal(file_write_atomic(junk, "this is not sqlite at all, not even close....", 45,
                                       &err), EV_OK);
    assert_int_equal(store_open(junk, STORE_CREATE, &s, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "not an evalrun database"));
    /* the file is untouched */
    char  *text = NULL;
    size_t n = 0;
    assert_int_equal(file_read_all(junk, &text, &n, &err), EV_OK);
    assert_int_equal(n, 45);
    free(text);
    free(junk);
    assert_int_equal(store_open(f->dir, STORE_CREATE, &s, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "is a directory"));
}

static void test_newer_schema_refused_untouched(void **state) {
    struct fx    *f = *state;
    struct store *s = NULL;
    struct ev_err err;
    assert_int_equal(store_open(f->db, STORE_CREATE, &s, &err), EV_OK);
    assert_int_equal(store_exec(s, "PRAGMA user_version = 9999", &err), EV_OK);
    store_close(s);
    struct stat before, after;
    assert_int_equal(stat(f->db, &before), 0);
    assert_int_equal(store_open(f->db, STORE_CREATE, &s, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "newer"));
    assert_int_equal(stat(f->db, &after), 0);
    assert_int_equal(before.st_size, after.st_size);
    assert_int_equal(before.st_mtime, after.st_mtime);
}

static void test_run_resume_and_resolve(void **state) {
    struct fx    *f = *state;
    struct store *s = NULL;
    struct ev_err err;
    assert_int_equal(store_open(f->db, STORE_CREATE, &s, &err), EV_OK);
    struct run_info ri = {.kind = "specificity", .tag = "base", .config_json = "{\"a\":1}",
                          .seed = 7, .shard_n = 1};
    int64_t id1, id2, id3;
    int     resumed;
    assert_int_equal(store_run_begin(s, &ri, &id1, &resumed, &err), EV_OK);
    assert_false(resumed);
    assert_int_equal(store_run_finish(s, id1, "interrupted", NULL, &err), EV_OK);
    assert_int_equal(store_run_begin(s, &ri, &id2, &resumed, &err), EV_OK);
    assert_true(resumed);
    assert_int_equal(id1, id2);
    ri.config_json = "{\"a\":2}";
    ri.tag = "cand";
    assert_int_equal(store_run_begin(s, &ri, &id3, &resumed, &err), EV_OK);
    assert_false(resumed);
    assert_int_not_equal(id3, id1);
    int64_t got;
    assert_int_equal(store_run_resolve(s, "cand", &got, &err), EV_OK);
    assert_int_equal(got, id3);
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)id1);
    assert_int_equal(store_run_resolve(s, num, &got, &err), EV_OK);
    assert_int_equal(got, id1);
    assert_int_equal(store_run_resolve(s, "nosuch", &got, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "nosuch"));
    store_close(s);
}

/* A child begins a run and writes rows in transactions until it is SIGKILLed. The database
 * must pass integrity_check, hold only whole transactions, and show the run interrupted. */
static void test_sigkill_leaves_consistent_db(void **state) {
    struct fx    *f = *state;
    struct store *s = NULL;
    struct ev_err err;
    assert_int_equal(store_open(f->db, STORE_CREATE, &s, &err), EV_OK);
    assert_int_equal(store_exec(s, "CREATE TABLE t (batch INTEGER, i INTEGER)", &err), EV_OK);
    store_close(s);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *c = NULL;
        struct ev_err e;
        if (store_open(f->db, 0, &c, &e) != EV_OK) _exit(3);
        struct run_info ri = {.kind = "test", .config_json = "{}", .shard_n = 1};
        int64_t         id;
        int             resumed;
        if (store_run_begin(c, &ri, &id, &resumed, &e) != EV_OK) _exit(4);
        struct store_stmt *st = NULL;
        if (store_prepare(c, "INSERT INTO t VALUES (?1, ?2)", &st, &e) != EV_OK) _exit(5);
        for (int b = 0;; b++) {
            store_begin(c, &e);
            for (int i = 0; i < 100; i++) {
                store_bind_int(st, 1, b);
                store_bind_int(st, 2, i);
                store_step(st, &e);
                store_reset(st);
            }
            store_commit(c, &e);
        }
    }
    usleep(300 * 1000);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(store_open(f->db, 0, &s, &err), EV_OK);
    struct store_stmt *st = NULL;
    assert_int_equal(store_prepare(s, "PRAGMA integrity_check", &st, &err), EV_OK);
    assert_int_equal(store_step(st, &err), STORE_ROW);
    assert_string_equal(store_col_text(st, 0), "ok");
    store_finalize(st);
    assert_true(count(s, "SELECT count(*) FROM t") > 0);
    assert_int_equal(count(s, "SELECT count(*) FROM t") % 100, 0);
    assert_int_equal(count(s, "SELECT count(*) FROM runs WHERE status = 'interrupted'"), 1);
    store_close(s);
}

static void test_transaction_rollback(void **state) {
    struct fx    *f = *state;
    struct store *s = NULL;
    struct ev_err err;
    assert_int_equal(store_open(f->db, STORE_CREATE, &s, &err), EV_OK);
    assert_int_equal(store_exec(s, "CREATE TABLE t (x INTEGER UNIQUE)", &err), EV_OK);
    assert_int_equal(store_begin(s, &err), EV_OK);
    assert_int_equal(store_exec(s, "INSERT INTO t VALUES (1)", &err), EV_OK);
    assert_int_equal(store_exec(s, "INSERT INTO t VALUES (1)", &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "UNIQUE"));
    store_rollback(s);
    assert_int_equal(count(s, "SELECT count(*) FROM t"), 0);
    store_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_migrate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_dir_and_not_a_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_resume_and_resolve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigkill_leaves_consistent_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transaction_rollback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
