/*
 * store — SQLite: opening, migrations, statements, runs. The only file that includes
 * <sqlite3.h> (STYLE rule 16).
 */
#include "store/store.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "base/hash.h"
#include "store/runs.h"
#include "schema_sql.h"

#ifndef EVALRUN_VERSION
#define EVALRUN_VERSION "unknown"
#endif

struct store {
    sqlite3 *db;
    char    *path;
    int      readonly; /* opened with STORE_READONLY */
    int64_t  beat[4];  /* the runs begun and not ended by this process, innermost last: the
                        * heartbeat keeps the innermost one's work time current */
    int      n_beat;
};

#define N_MIGRATIONS ((int)(sizeof store_migrations / sizeof store_migrations[0]))

int store_schema_latest(void) { return store_migrations[N_MIGRATIONS - 1].version; }

const char *store_default_path(void) {
    const char *env = getenv("EVALRUN_DB");
    return (env && *env) ? env : "results/evalrun.db";
}

const char *store_path(const struct store *s) { return s->path; }

static int sql_fail(struct store *s, struct ev_err *err, const char *what) {
    return ev_fail(err, EV_EFAIL, "database %s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

int store_exec(struct store *s, const char *sql, struct ev_err *err) {
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        ev_fail(err, EV_EFAIL, "database %s: %s", s->path, msg ? msg : "error");
        sqlite3_free(msg);
        return EV_EFAIL;
    }
    return EV_OK;
}

int store_schema_version(struct store *s) {
    sqlite3_stmt *st = NULL;
    int           v = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int migrate(struct store *s, struct ev_err *err) {
    int v = store_schema_version(s);
    if (v < 0) return sql_fail(s, err, "cannot read the schema version");
    for (int i = 0; i < N_MIGRATIONS; i++) {
        const struct store_migration *m = &store_migrations[i];
        if (m->version <= v) continue;
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", m->version);
        struct sbuf sql;
        sbuf_init(&sql);
        for (const char *const *l = m->lines; *l; l++) sbuf_adds(&sql, *l);
        if (store_exec(s, "BEGIN IMMEDIATE", err) != EV_OK) {
            sbuf_release(&sql);
            return EV_EFAIL;
        }
        int bad = store_exec(s, sql.buf ? sql.buf : "", err) != EV_OK ||
                  store_exec(s, pragma, err) != EV_OK;
        sbuf_release(&sql);
        if (bad) {
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err->msg);
            store_rollback(s);
            return ev_fail(err, EV_EFAIL, "database %s: migration %s failed: %s", s->path,
                           m->name, why);
        }
        if (store_exec(s, "COMMIT", err) != EV_OK) return EV_EFAIL;
    }
    return EV_OK;
}

// ---------------------------------------------------------------------------- fault hook
/*
 * Faults in the middle (issue 20.7), for tests/cli/faults.sh only. With EVALRUN_TEST_FAULT_AT=N
 * (N >= 1) in the environment every connection goes through the VFS "evalrun-fault", which
 * passes everything to the default VFS but makes the Nth write, counted over the whole process
 * (xWrite, xTruncate and xSync of a database, its WAL or journal), and every write after it
 * fail as a full disk does (SQLITE_FULL; an fsync: SQLITE_IOERR_FSYNC). With
 * EVALRUN_TEST_FAULT_ONCE=1 only the Nth fails. When the fault fires, the file named by
 * EVALRUN_TEST_FAULT_LOG (if set) gets the line "fault at write N", so a test tells "no fault
 * happened" (N past the last write) from "a fault was ignored". The state below is the
 * process's: the one place besides static tables where the store keeps globals, because the
 * VFS sees all connections of the process.
 */
struct fault_file {
    sqlite3_file  base;
    sqlite3_file *real; /* the default VFS's file, allocated right after this struct */
};

static struct {
    sqlite3_vfs          vfs;
    sqlite3_io_methods   io;
    sqlite3_vfs         *real;
    long                 at, n;
    int                  once, on;
} fault;

static int fault_hit(void) {
    long k = ++fault.n;
    if (k < fault.at || (fault.once && k > fault.at)) return 0;
    if (k == fault.at) {
        const char *log = getenv("EVALRUN_TEST_FAULT_LOG");
        FILE       *f   = log && *log ? fopen(log, "a") : NULL;
        if (f) {
            fprintf(f, "fault at write %ld\n", k);
            fclose(f);
        }
    }
    return 1;
}

#define FREAL(f) (((struct fault_file *)(f))->real)
static int f_close(sqlite3_file *f) {
    int rc = FREAL(f)->pMethods->xClose(FREAL(f));
    f->pMethods = NULL;
    return rc;
}
static int f_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o) {
    return FREAL(f)->pMethods->xRead(FREAL(f), b, n, o);
}
static int f_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o) {
    return fault_hit() ? SQLITE_FULL : FREAL(f)->pMethods->xWrite(FREAL(f), b, n, o);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 size) {
    return fault_hit() ? SQLITE_FULL : FREAL(f)->pMethods->xTruncate(FREAL(f), size);
}
static int f_sync(sqlite3_file *f, int flags) {
    return fault_hit() ? SQLITE_IOERR_FSYNC : FREAL(f)->pMethods->xSync(FREAL(f), flags);
}
static int f_size(sqlite3_file *f, sqlite3_int64 *size) {
    return FREAL(f)->pMethods->xFileSize(FREAL(f), size);
}
static int f_lock(sqlite3_file *f, int l) { return FREAL(f)->pMethods->xLock(FREAL(f), l); }
static int f_unlock(sqlite3_file *f, int l) { return FREAL(f)->pMethods->xUnlock(FREAL(f), l); }
static int f_reserved(sqlite3_file *f, int *out) {
    return FREAL(f)->pMethods->xCheckReservedLock(FREAL(f), out);
}
static int f_control(sqlite3_file *f, int op, void *arg) {
    return FREAL(f)->pMethods->xFileControl(FREAL(f), op, arg);
}
static int f_sector(sqlite3_file *f) { return FREAL(f)->pMethods->xSectorSize(FREAL(f)); }
static int f_device(sqlite3_file *f) {
    return FREAL(f)->pMethods->xDeviceCharacteristics(FREAL(f));
}
static int f_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp) {
    return FREAL(f)->pMethods->xShmMap(FREAL(f), pg, pgsz, extend, pp);
}
static int f_shm_lock(sqlite3_file *f, int off, int n, int flags) {
    return FREAL(f)->pMethods->xShmLock(FREAL(f), off, n, flags);
}
static void f_shm_barrier(sqlite3_file *f) { FREAL(f)->pMethods->xShmBarrier(FREAL(f)); }
static int  f_shm_unmap(sqlite3_file *f, int del) {
    return FREAL(f)->pMethods->xShmUnmap(FREAL(f), del);
}
static int f_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **pp) {
    return FREAL(f)->pMethods->xFetch(FREAL(f), o, n, pp);
}
static int f_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p) {
    return FREAL(f)->pMethods->xUnfetch(FREAL(f), o, p);
}

static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
                  int *out_flags) {
    (void)vfs;
    struct fault_file *ff = (struct fault_file *)f;
    ff->real              = (sqlite3_file *)(ff + 1);
    f->pMethods           = NULL;
    int rc = fault.real->xOpen(fault.real, name, ff->real, flags, out_flags);
    if (rc != SQLITE_OK || !ff->real->pMethods) return rc;
    if (ff->real->pMethods->iVersion < 3) { /* the forwarding below speaks version 3 (unix) */
        ff->real->pMethods->xClose(ff->real);
        return SQLITE_CANTOPEN;
    }
    f->pMethods = &fault.io;
    return SQLITE_OK;
}

/* The VFS name to open with: "evalrun-fault" when EVALRUN_TEST_FAULT_AT is set, else NULL. */
static const char *fault_vfs(void) {
    const char *at = getenv("EVALRUN_TEST_FAULT_AT");
    if (!at || !*at) return NULL;
    if (!fault.on) {
        long v = 0;
        if (parse_long(at, &v) != EV_OK || v < 1) return NULL;
        fault.real = sqlite3_vfs_find(NULL);
        fault.vfs = *fault.real;
        fault.vfs.zName = "evalrun-fault";
        fault.vfs.szOsFile = (int)sizeof(struct fault_file) + fault.real->szOsFile;
        fault.vfs.xOpen = f_open;
        fault.vfs.pNext = NULL;
        fault.io = (sqlite3_io_methods){3,         f_close,       f_read,      f_write,
                                        f_truncate, f_sync,       f_size,      f_lock,
                                        f_unlock,  f_reserved,    f_control,   f_sector,
                                        f_device,  f_shm_map,     f_shm_lock,  f_shm_barrier,
                                        f_shm_unmap, f_fetch,     f_unfetch};
        const char *once = getenv("EVALRUN_TEST_FAULT_ONCE");
        fault.at = v;
        fault.once = once && strcmp(once, "1") == 0;
        if (sqlite3_vfs_register(&fault.vfs, 0) != SQLITE_OK) return NULL;
        fault.on = 1;
    }
    return fault.vfs.zName;
}

/* live_status(status, host, pid): the status a reader should show: 'interrupted' for a run
 * left 'running' on this host by a process that no longer exists, else status. Lets a
 * read-only connection show what store_reap_interrupted() would record. */
static void host_name(char *buf, size_t n);
static int  pid_alive(int64_t pid);
static void sql_live_status(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    const char *status = (const char *)sqlite3_value_text(argv[0]);
    const char *host   = (const char *)sqlite3_value_text(argv[1]);
    char        me[256];
    host_name(me, sizeof me);
    if (status && host && strcmp(status, "running") == 0 && strcmp(host, me) == 0 &&
        !pid_alive(sqlite3_value_int64(argv[2])))
        status = "interrupted";
    if (status)
        sqlite3_result_text(ctx, status, -1, SQLITE_TRANSIENT);
    else
        sqlite3_result_null(ctx);
}

/* Whether a statement can read the database (a non-database or an unopenable file fails). */
/* How long a statement waits for a lock another connection holds. */
enum { STORE_BUSY_MS = 30000 };

static int conn_probe(sqlite3 *db) {
    sqlite3_stmt *st = NULL;
    int prc = sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL);
    if (prc == SQLITE_OK) prc = sqlite3_step(st);
    sqlite3_finalize(st);
    return prc == SQLITE_ROW ? SQLITE_OK : sqlite3_extended_errcode(db);
}

/* "file:///abs/path?immutable=1" (or file:rel/path?...) with %, ? and # escaped. */
static char *immutable_uri(const char *path) {
    struct sbuf u;
    sbuf_init(&u);
    sbuf_adds(&u, path[0] == '/' ? "file://" : "file:");
    for (const char *c = path; *c; c++) {
        if (*c == '%' || *c == '?' || *c == '#')
            sbuf_addf(&u, "%%%02X", (unsigned char)*c);
        else
            sbuf_add(&u, c, 1);
    }
    sbuf_adds(&u, "?immutable=1");
    return sbuf_detach(&u);
}

/*
 * The SQLite connection. Read-only connections never write: no migration, no journal, no
 * reaping. A read-only open of a WAL database needs its -shm file; when this user cannot
 * create it (another user's results in a folder we may not write) and no -wal file is there
 * (no writer active, every change checkpointed into the main file), the file is opened
 * immutable: read as it stands, with no locks and no -shm.
 */
static int conn_open(struct store *s, int readonly, struct ev_err *err) {
    int oflags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int prc    = SQLITE_OK;
    if (sqlite3_open_v2(s->path, &s->db, oflags | SQLITE_OPEN_NOMUTEX, fault_vfs()) !=
        SQLITE_OK)
        return ev_fail(err, EV_EFAIL, "cannot open database %s: %s", s->path,
                       s->db ? sqlite3_errmsg(s->db) : "out of memory");
    sqlite3_extended_result_codes(s->db, 1);
    /* before the first read: opening while another connection holds the database (its last
     * close checkpoints the WAL and removes it under an exclusive lock, a writer in
     * locking_mode EXCLUSIVE) waits instead of failing "database is locked" */
    sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
    prc = conn_probe(s->db);
    /* SQLITE_READONLY_CANTINIT and friends, or SQLITE_CANTOPEN: the -shm cannot be made */
    if (readonly && ((prc & 0xff) == SQLITE_CANTOPEN || (prc & 0xff) == SQLITE_READONLY)) {
        char       *wal = xasprintf("%s-wal", s->path);
        struct stat ws;
        int         writer = stat(wal, &ws) == 0 && ws.st_size > 0;
        free(wal);
        if (writer)
            return ev_fail(err, EV_EFAIL,
                           "cannot read database %s: the -wal file beside it holds changes not "
                           "yet in the database (a writer is running or was killed) and this "
                           "user cannot create its -shm; run any evalrun command on it as its "
                           "owner, or copy the folder", s->path);
        char *uri = immutable_uri(s->path);
        sqlite3_close_v2(s->db);
        s->db = NULL;
        int orc = sqlite3_open_v2(uri, &s->db,
                                  SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
                                  fault_vfs());
        free(uri);
        if (orc != SQLITE_OK)
            return ev_fail(err, EV_EFAIL, "cannot open database %s: %s", s->path,
                           s->db ? sqlite3_errmsg(s->db) : "out of memory");
        sqlite3_extended_result_codes(s->db, 1);
        sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
        prc = conn_probe(s->db);
    }
    if (prc != SQLITE_OK)
        return ev_fail(err, EV_EFAIL, "%s is not an evalrun database: %s", s->path,
                       sqlite3_errmsg(s->db));
    sqlite3_create_function_v2(s->db, "live_status", 3, SQLITE_UTF8 | SQLITE_DIRECTONLY, NULL,
                               sql_live_status, NULL, NULL, NULL);
    return EV_OK;
}

int store_open(const char *path, int flags, struct store **out, struct ev_err *err) {
    int           rc = EV_EFAIL;
    struct store *s = xcalloc(1, sizeof *s);
    char         *dir = xstrdup(path);
    char         *slash = strrchr(dir, '/');
    int           readonly = (flags & STORE_READONLY) != 0;
    s->path     = xstrdup(path);
    s->readonly = readonly;

    if (slash) *slash = '\0';
    const char *d = slash ? (dir[0] ? dir : "/") : ".";
    if (!path_exists(path) && readonly && (flags & STORE_MISSING_EMPTY)) {
        /* nothing stored yet: an empty database of the current schema, in memory only */
        if (sqlite3_open_v2(":memory:", &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK) {
            ev_fail(err, EV_EFAIL, "cannot open an in-memory database: out of memory");
            goto out;
        }
        sqlite3_extended_result_codes(s->db, 1);
        sqlite3_create_function_v2(s->db, "live_status", 3, SQLITE_UTF8 | SQLITE_DIRECTONLY,
                                   NULL, sql_live_status, NULL, NULL, NULL);
        if (migrate(s, err) != EV_OK || store_exec(s, "PRAGMA foreign_keys=ON", err) != EV_OK)
            goto out;
        *out = s;
        s = NULL;
        rc = EV_OK;
        goto out;
    }
    if (!path_exists(path)) {
        if (!(flags & STORE_CREATE) || readonly) {
            ev_fail(err, EV_EFAIL, "database %s does not exist (run a batch command first, "
                                   "or pass --db PATH)", path);
            goto out;
        }
        /* the default database's folder (results/) is made on demand, so that evalrun works
         * from any directory; a folder named by the user must exist */
        if (!path_is_dir(d) && strcmp(path, "results/evalrun.db") == 0 &&
            mkdir_p(d, err) != EV_OK)
            goto out;
        if (!path_is_dir(d)) {
            ev_fail(err, EV_EFAIL, "cannot create database %s: directory %s does not exist",
                    path, d);
            goto out;
        }
        if (access(d, W_OK) != 0) {
            ev_fail(err, EV_EFAIL, "cannot create database %s: directory %s is not writable",
                    path, d);
            goto out;
        }
    } else if (path_is_dir(path)) {
        ev_fail(err, EV_EFAIL, "database %s is a directory, expected a file", path);
        goto out;
    } else if (access(path, R_OK) != 0) {
        ev_fail(err, EV_EFAIL, "database %s is not readable", path);
        goto out;
    } else if (!readonly && access(path, W_OK) != 0) {
        ev_fail(err, EV_EFAIL, "database %s is not writable (this command writes results; "
                               "commands that only read it, such as runs, report and show, "
                               "work)", path);
        goto out;
    } else if (!readonly && access(d, W_OK) != 0) {
        ev_fail(err, EV_EFAIL, "database %s cannot be written: its directory %s is not "
                               "writable (SQLite keeps its journal beside the file)", path, d);
        goto out;
    }

    if (conn_open(s, readonly, err) != EV_OK) goto out;
    int v = store_schema_version(s);
    if (v > store_schema_latest()) {
        ev_fail(err, EV_EFAIL,
                "database %s has schema version %d, newer than this evalrun knows (%d); "
                "use a newer evalrun",
                path, v, store_schema_latest());
        goto out;
    }
    if (!readonly) {
        if (store_exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                          "PRAGMA foreign_keys=ON;", err) != EV_OK)
            goto out;
        if (migrate(s, err) != EV_OK) goto out;
        if (store_reap_interrupted(s, err) != EV_OK) goto out;
    } else {
        if (v == 0) {
            /* no evalrun schema at all: a reader never writes one (an upgrade would) */
            struct stat fs;
            if (stat(path, &fs) == 0 && fs.st_size == 0)
                ev_fail(err, EV_EFAIL, "database %s is empty (0 bytes), not an evalrun "
                                       "database; commands that only read never create one",
                        path);
            else
                ev_fail(err, EV_EFAIL, "%s is not an evalrun database: an SQLite file with no "
                                       "evalrun schema (user_version 0)", path);
            goto out;
        }
        if (store_exec(s, "PRAGMA foreign_keys=ON", err) != EV_OK) goto out;
        if (v < store_schema_latest() && !(flags & STORE_UPGRADE)) {
            ev_fail(err, EV_EFAIL,
                    "database %s has schema version %d; run any batch command to upgrade it "
                    "to %d", path, v, store_schema_latest());
            goto out;
        }
        if (v < store_schema_latest()) {
            /* an older schema is upgraded first where we may write (as any command did),
             * then read through a read-only connection; another user's file cannot be */
            struct store *w = NULL;
            if (access(path, W_OK) != 0 || access(d, W_OK) != 0) {
                ev_fail(err, EV_EFAIL,
                        "database %s has schema version %d, older than this evalrun reads "
                        "(%d), and is not writable: its owner can upgrade it with 'evalrun db "
                        "init', or copy it and use the copy",
                        path, v, store_schema_latest());
                goto out;
            }
            sqlite3_close_v2(s->db);
            s->db = NULL;
            if (store_open(path, 0, &w, err) != EV_OK) goto out;
            store_close(w);
            if (conn_open(s, 1, err) != EV_OK) goto out;
            if (store_exec(s, "PRAGMA foreign_keys=ON", err) != EV_OK) goto out;
        }
    }
    *out = s;
    s = NULL;
    rc = EV_OK;
out:
    free(dir);
    store_close(s);
    return rc;
}

void store_close(struct store *s) {
    if (!s) return;
    if (ev_heartbeat_ctx() == s) ev_set_heartbeat(NULL, NULL, 0);
    sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

// ---------------------------------------------------------------------------- statements

#define ST(x) ((sqlite3_stmt *)(x))

int store_prepare(struct store *s, const char *sql, struct store_stmt **out,
                  struct ev_err *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sql_fail(s, err, "cannot prepare statement");
    *out = (struct store_stmt *)st;
    return EV_OK;
}

void store_bind_run_key(struct store_stmt *st, int64_t run_id, const char *key) {
    store_bind_int(st, 1, run_id);
    store_bind_text(st, 2, key);
}

int store_has_run_key(struct store *s, const char *sql, int64_t run_id, const char *key,
                      struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                rc = store_prepare(s, sql, &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, key);
    int r = store_step(st, err);
    store_finalize(st);
    return r < 0 ? EV_EFAIL : r == STORE_ROW;
}

void store_bind_int(struct store_stmt *st, int i, int64_t v) {
    sqlite3_bind_int64(ST(st), i, (sqlite3_int64)v);
}
void store_bind_double(struct store_stmt *st, int i, double v) {
    sqlite3_bind_double(ST(st), i, v);
}
void store_bind_text(struct store_stmt *st, int i, const char *v) {
    if (v)
        sqlite3_bind_text(ST(st), i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(ST(st), i);
}
void store_bind_blob(struct store_stmt *st, int i, const void *v, size_t n) {
    sqlite3_bind_blob64(ST(st), i, v ? v : "", (sqlite3_uint64)n, SQLITE_TRANSIENT);
}
void store_bind_null(struct store_stmt *st, int i) { sqlite3_bind_null(ST(st), i); }

int store_step(struct store_stmt *st, struct ev_err *err) {
    int rc = sqlite3_step(ST(st));
    if (rc == SQLITE_ROW) return STORE_ROW;
    if (rc == SQLITE_DONE) return STORE_DONE;
    sqlite3 *db = sqlite3_db_handle(ST(st));
    return ev_fail(err, EV_EFAIL, "database %s: %s", sqlite3_db_filename(db, "main"),
                   sqlite3_errmsg(db));
}

int64_t store_col_int(struct store_stmt *st, int i) {
    return (int64_t)sqlite3_column_int64(ST(st), i);
}
double store_col_double(struct store_stmt *st, int i) { return sqlite3_column_double(ST(st), i); }
const char *store_col_text(struct store_stmt *st, int i) {
    return (const char *)sqlite3_column_text(ST(st), i);
}
const void *store_col_blob(struct store_stmt *st, int i, size_t *n) {
    const void *p = sqlite3_column_blob(ST(st), i);
    if (n) *n = (size_t)sqlite3_column_bytes(ST(st), i);
    return p;
}
int store_col_is_null(struct store_stmt *st, int i) {
    return sqlite3_column_type(ST(st), i) == SQLITE_NULL;
}
void store_reset(struct store_stmt *st) {
    sqlite3_reset(ST(st));
    sqlite3_clear_bindings(ST(st));
}
void store_finalize(struct store_stmt *st) { sqlite3_finalize(ST(st)); }

int store_begin(struct store *s, struct ev_err *err) {
    return store_exec(s, "BEGIN IMMEDIATE", err);
}
int store_commit(struct store *s, struct ev_err *err) { return store_exec(s, "COMMIT", err); }
void store_rollback(struct store *s) {
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}
int64_t store_last_id(struct store *s) { return (int64_t)sqlite3_last_insert_rowid(s->db); }
int64_t store_changes(struct store *s) { return (int64_t)sqlite3_changes64(s->db); }

// ---------------------------------------------------------------------------- runs

static void host_name(char *buf, size_t n) {
    if (gethostname(buf, n) != 0) snprintf(buf, n, "unknown");
    buf[n - 1] = '\0';
}

static int pid_alive(int64_t pid) {
    if (pid <= 0) return 0;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

int store_reap_interrupted(struct store *s, struct ev_err *err) {
    char host[256];
    host_name(host, sizeof host);
    struct store_stmt *q = NULL, *u = NULL;
    int                rc = EV_EFAIL;
    if (store_prepare(s, "SELECT id, pid FROM runs WHERE status = 'running' AND host = ?1", &q,
                      err) != EV_OK ||
        store_prepare(s, "UPDATE runs SET status = 'interrupted' WHERE id = ?1 AND "
                         "status = 'running'", &u, err) != EV_OK)
        goto out;
    store_bind_text(q, 1, host);
    int r;
    while ((r = store_step(q, err)) == STORE_ROW) {
        if (pid_alive(store_col_int(q, 1))) continue;
        store_bind_int(u, 1, store_col_int(q, 0));
        if (store_step(u, err) < 0) goto out;
        store_reset(u);
    }
    if (r < 0) goto out;
    rc = EV_OK;
out:
    store_finalize(q);
    store_finalize(u);
    return rc;
}

/* The heartbeat (base/util.h): the innermost open run's work time, every second. */
static void run_heartbeat(void *ctx) {
    struct store *s = ctx;
    struct ev_err ignored;
    if (s->n_beat > 0) runs_work_add(s, s->beat[s->n_beat - 1], 0, &ignored);
}

static void beat_push(struct store *s, int64_t run_id) {
    if (s->n_beat < (int)(sizeof s->beat / sizeof s->beat[0])) s->beat[s->n_beat++] = run_id;
    ev_set_heartbeat(run_heartbeat, s, 1.0);
}

static void beat_pop(struct store *s, int64_t run_id) {
    for (int i = s->n_beat - 1; i >= 0; i--)
        if (s->beat[i] == run_id) {
            memmove(s->beat + i, s->beat + i + 1, (size_t)(s->n_beat - i - 1) * sizeof s->beat[0]);
            s->n_beat--;
            break;
        }
    if (s->n_beat == 0 && ev_heartbeat_ctx() == s) ev_set_heartbeat(NULL, NULL, 0);
}

int store_run_begin(struct store *s, const struct run_info *ri, int64_t *run_id, int *resumed,
                    struct ev_err *err) {
    char hash[65], host[256];
    int64_t moved = 0;
    sha256_hex(ri->config_json, strlen(ri->config_json), hash);
    host_name(host, sizeof host);
    int                rc = EV_EFAIL;
    struct store_stmt *st = NULL;
    if (store_begin(s, err) != EV_OK) return EV_EFAIL;
    if (store_prepare(s, "SELECT id, status, host, pid, tag FROM runs WHERE kind = ?1 AND "
                         "config_hash = ?2 AND shard_k = ?3 AND shard_n = ?4 "
                         "ORDER BY id DESC LIMIT 1", &st, err) != EV_OK)
        goto out;
    store_bind_text(st, 1, ri->kind);
    store_bind_text(st, 2, hash);
    store_bind_int(st, 3, ri->shard_k);
    store_bind_int(st, 4, ri->shard_n);
    int r = store_step(st, err);
    if (r < 0) goto out;
    if (r == STORE_ROW) {
        int64_t id = store_col_int(st, 0);
        if (strcmp(store_col_text(st, 1), "running") == 0 &&
            strcmp(store_col_text(st, 2), host) == 0 && pid_alive(store_col_int(st, 3)) &&
            store_col_int(st, 3) != (int64_t)getpid()) {
            ev_fail(err, EV_EFAIL, "run %lld with this configuration is being executed by "
                                   "process %lld; wait for it or stop it",
                    (long long)id, (long long)store_col_int(st, 3));
            goto out;
        }
        char old_tag[256] = "";
        if (!store_col_is_null(st, 4)) snprintf(old_tag, sizeof old_tag, "%s", store_col_text(st, 4));
        if (ri->tag && (rc = runs_tag_claim(s, ri->tag, id, ri->kind, hash, old_tag, ri->retag,
                                            &moved, err)) != EV_OK)
            goto out;
        rc = EV_EFAIL;
        store_finalize(st);
        st = NULL;
        if (store_prepare(s, "UPDATE runs SET status = 'running', host = ?2, pid = ?3, "
                             "finished_ms = NULL, error = NULL, tag = coalesce(?4, tag) "
                             "WHERE id = ?1", &st, err) != EV_OK)
            goto out;
        store_bind_int(st, 1, id);
        store_bind_text(st, 2, host);
        store_bind_int(st, 3, getpid());
        store_bind_text(st, 4, ri->tag);
        if (store_step(st, err) < 0) goto out;
        *run_id = id;
        *resumed = 1;
    } else {
        store_finalize(st);
        st = NULL;
        if (ri->tag && (rc = runs_tag_claim(s, ri->tag, 0, ri->kind, hash, NULL, ri->retag,
                                            &moved, err)) != EV_OK)
            goto out;
        rc = EV_EFAIL;
        if (store_prepare(s, "INSERT INTO runs (kind, tag, started_ms, config_json, "
                             "config_hash, code_version, host, pid, seed, shard_k, shard_n, "
                             "model_id, sae_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                             "?10, ?11, ?12, ?13)", &st, err) != EV_OK)
            goto out;
        store_bind_text(st, 1, ri->kind);
        store_bind_text(st, 2, ri->tag);
        store_bind_int(st, 3, now_unix_ms());
        store_bind_text(st, 4, ri->config_json);
        store_bind_text(st, 5, hash);
        store_bind_text(st, 6, EVALRUN_VERSION);
        store_bind_text(st, 7, host);
        store_bind_int(st, 8, getpid());
        store_bind_int(st, 9, ri->seed);
        store_bind_int(st, 10, ri->shard_k);
        store_bind_int(st, 11, ri->shard_n > 0 ? ri->shard_n : 1);
        if (ri->model_id) store_bind_int(st, 12, ri->model_id); else store_bind_null(st, 12);
        if (ri->sae_id) store_bind_int(st, 13, ri->sae_id); else store_bind_null(st, 13);
        if (store_step(st, err) < 0) goto out;
        *run_id = store_last_id(s);
        *resumed = 0;
    }
    if (runs_work_start(s, *run_id, err) != EV_OK) goto out;
    rc = store_commit(s, err);
    if (rc == EV_OK) {
        beat_push(s, *run_id);
        if (moved)
            ev_info("tag '%s' moved from run %lld to run %lld (--retag)", ri->tag,
                    (long long)moved, (long long)*run_id);
    }
out:
    store_finalize(st);
    if (rc != EV_OK) store_rollback(s);
    return rc;
}

int store_run_is_done(struct store *s, const struct run_info *ri, struct ev_err *err) {
    char hash[65];
    sha256_hex(ri->config_json, strlen(ri->config_json), hash);
    struct store_stmt *st = NULL;
    if (store_prepare(s, "SELECT status = 'done' FROM runs WHERE kind = ?1 AND config_hash = ?2 "
                         "AND shard_k = ?3 AND shard_n = ?4 ORDER BY id DESC LIMIT 1", &st,
                      err) != EV_OK)
        return EV_EFAIL;
    store_bind_text(st, 1, ri->kind);
    store_bind_text(st, 2, hash);
    store_bind_int(st, 3, ri->shard_k);
    store_bind_int(st, 4, ri->shard_n > 0 ? ri->shard_n : 1);
    int r = store_step(st, err), done = r == STORE_ROW && store_col_int(st, 0) == 1;
    store_finalize(st);
    return r < 0 ? EV_EFAIL : done;
}

int store_run_finish(struct store *s, int64_t run_id, const char *status, const char *error,
                     struct ev_err *err) {
    struct store_stmt *st = NULL;
    struct ev_err      ignored;
    beat_pop(s, run_id);
    runs_work_add(s, run_id, 1, &ignored); /* a failure here only loses this segment's time */
    int rc = store_prepare(s, "UPDATE runs SET status = ?2, finished_ms = ?3, error = ?4 "
                              "WHERE id = ?1", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    store_bind_text(st, 2, status);
    store_bind_int(st, 3, now_unix_ms());
    store_bind_text(st, 4, error);
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    return rc;
}

int store_run_end(struct store *s, int64_t run_id, int rc, struct ev_err *err) {
    struct ev_err ferr;
    const char   *status = rc == EV_OK ? "done" : rc == EV_EINTR ? "interrupted" : "failed";
    /* the run's error is err's message, bound (copied) before anything could write ferr */
    if (store_run_finish(s, run_id, status, rc == EV_OK || rc == EV_EINTR ? NULL : err->msg,
                         &ferr) == EV_OK)
        return rc;
    if (rc != EV_OK) return rc;
    return ev_fail(err, EV_EFAIL, "the run finished but could not be marked done: %s", ferr.msg);
}

int store_run_resolve(struct store *s, const char *name, int64_t *run_id, struct ev_err *err) {
    struct store_stmt *st = NULL;
    long               id;
    int                rc = EV_EFAIL;
    int                by_id = parse_long(name, &id) == EV_OK;
    if (store_prepare(s, by_id ? "SELECT id FROM runs WHERE id = ?1"
                               : "SELECT id FROM runs WHERE tag = ?1 ORDER BY id DESC LIMIT 1",
                      &st, err) != EV_OK)
        return EV_EFAIL;
    if (by_id)
        store_bind_int(st, 1, id);
    else
        store_bind_text(st, 1, name);
    int r = store_step(st, err);
    if (r == STORE_ROW) {
        *run_id = store_col_int(st, 0);
        rc = EV_OK;
    } else if (r == STORE_DONE) {
        ev_fail(err, EV_EFAIL, "no run %s '%s' in %s (see 'evalrun runs')",
                by_id ? "with id" : "tagged", name, s->path);
    }
    store_finalize(st);
    return rc;
}

// ---------------------------------------------------------------------------- models, saes

static int put_content(struct store *s, const char *sql_find, const char *sql_insert,
                       const char *hash, const char *path, const char *config_json,
                       int64_t model_id, int64_t *id, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                rc = store_prepare(s, sql_find, &st, err);
    if (rc != EV_OK) return rc;
    store_bind_text(st, 1, hash);
    int r = store_step(st, err);
    if (r == STORE_ROW) *id = store_col_int(st, 0);
    store_finalize(st);
    if (r < 0) return EV_EFAIL;
    if (r == STORE_ROW) return EV_OK;
    if (s->readonly) { /* a reader only looks up: never seen here */
        *id = 0;
        return EV_OK;
    }
    if ((rc = store_prepare(s, sql_insert, &st, err)) != EV_OK) return rc;
    store_bind_text(st, 1, hash);
    store_bind_text(st, 2, path);
    store_bind_text(st, 3, config_json);
    store_bind_int(st, 4, now_unix_ms());
    if (model_id > 0) store_bind_int(st, 5, model_id);
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    if (rc == EV_OK) *id = store_last_id(s);
    store_finalize(st);
    return rc;
}

int store_put_model(struct store *s, const char *hash, const char *path,
                    const char *config_json, int64_t *id, struct ev_err *err) {
    return put_content(s, "SELECT id FROM models WHERE hash = ?1",
                       "INSERT INTO models (hash, path, config_json, created_ms) "
                       "VALUES (?1, ?2, ?3, ?4)",
                       hash, path, config_json, 0, id, err);
}

int store_put_sae(struct store *s, const char *hash, const char *path, const char *config_json,
                  int64_t model_id, int64_t *id, struct ev_err *err) {
    return put_content(s, "SELECT id FROM saes WHERE hash = ?1",
                       "INSERT INTO saes (hash, path, config_json, created_ms, model_id) "
                       "VALUES (?1, ?2, ?3, ?4, ?5)",
                       hash, path, config_json, model_id, id, err);
}

// ---------------------------------------------------------------------------- attach (merge)

int store_attach(struct store *s, const char *path, const char *schema, struct ev_err *err) {
    struct store_stmt *st = NULL;
    /* Both the file name and the schema name of ATTACH are expressions: bound, not formatted. */
    if (store_prepare(s, "ATTACH DATABASE ?1 AS ?2", &st, err) != EV_OK) return EV_EFAIL;
    store_bind_text(st, 1, path);
    store_bind_text(st, 2, schema);
    int rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    if (rc != EV_OK)
        return ev_fail(err, EV_EFAIL, "cannot attach database %s: %s", path,
                       sqlite3_errmsg(s->db));
    return EV_OK;
}

int store_detach(struct store *s, const char *schema, struct ev_err *err) {
    struct store_stmt *st = NULL;
    if (store_prepare(s, "DETACH DATABASE ?1", &st, err) != EV_OK) return EV_EFAIL;
    store_bind_text(st, 1, schema);
    int rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    return rc;
}

int store_snapshot(struct store *s, const char *path, struct ev_err *err) {
    struct store_stmt *st = NULL;
    if (path_exists(path))
        return ev_fail(err, EV_EFAIL, "cannot copy database %s to %s: it exists", s->path, path);
    if (store_prepare(s, "VACUUM INTO ?1", &st, err) != EV_OK) return EV_EFAIL;
    store_bind_text(st, 1, path);
    int rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    if (rc != EV_OK)
        return ev_fail(err, EV_EFAIL, "cannot copy database %s to %s: %s", s->path, path,
                       sqlite3_errmsg(s->db));
    return EV_OK;
}

int store_table_counts(struct store *s, int (*fn)(void *ctx, const char *table, int64_t rows),
                       void *ctx, struct ev_err *err) {
    struct store_stmt *st = NULL, *cnt = NULL;
    int rc = store_prepare(s, "SELECT name FROM sqlite_master WHERE type = 'table' AND "
                              "name NOT LIKE 'sqlite_%' ORDER BY name", &st, err);
    if (rc != EV_OK) return rc;
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        /* Table names come from sqlite_master, not from the user; quoted as identifiers. */
        char *name = xstrdup(store_col_text(st, 0));
        char *sql = xasprintf("SELECT count(*) FROM \"%s\"", name);
        rc = store_prepare(s, sql, &cnt, err);
        free(sql);
        if (rc == EV_OK && store_step(cnt, err) != STORE_ROW) rc = EV_EFAIL;
        if (rc == EV_OK) rc = fn(ctx, name, store_col_int(cnt, 0));
        store_finalize(cnt);
        cnt = NULL;
        free(name);
        if (rc != EV_OK) break;
    }
    store_finalize(st);
    if (rc != EV_OK) return rc;
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}
