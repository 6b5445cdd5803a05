/*
 * store — the results database: one SQLite file (default results/evalrun.db).
 *
 * Included by: store and the wings above it (cluster, graders, evals, cli).
 *
 * Invariants:
 *   - WAL journal, foreign keys on, a busy time-out; synchronous=NORMAL, so a killed process
 *     (even SIGKILL) never loses a committed transaction or leaves a half-written one.
 *   - The schema is versioned by PRAGMA user_version and upgraded forward only, one
 *     transaction per migration (harness/store/schema/NNN_*.sql, compiled in). A database from a
 *     newer evalrun is refused and left untouched.
 *   - All SQL goes through prepared statements with bound parameters; multi-row writes are
 *     wrapped in store_begin()/store_commit().
 *
 * Ownership: struct store is opaque; store_close() frees it. Statements from store_prepare()
 * are freed with store_finalize(). Text and blobs from store_col_* are borrowed until the
 * next store_step()/store_reset()/store_finalize() on that statement.
 */
#ifndef EV_STORE_H
#define EV_STORE_H

#include <stdint.h>

#include "base/util.h"

struct store;
struct store_stmt;

struct store_migration {
    int                version;
    const char        *name;
    const char *const *lines; /* the SQL file's lines, NULL-terminated */
};

enum store_open_flags {
    STORE_CREATE   = 1 << 0, /* create the file (not its directory) when absent */
    STORE_READONLY = 1 << 1, /* never write: no migration, no journal, no reaping */
    STORE_MISSING_EMPTY = 1 << 2, /* with STORE_READONLY: a missing file reads as an empty
                                   * database (in memory; nothing is created) */
    STORE_UPGRADE = 1 << 3, /* with STORE_READONLY: upgrade an older schema first where this
                             * user may write the file (else refused with a hint) */
};

/* Opens (and migrates) the database at path. Errors: a missing directory, a missing file
 * without STORE_CREATE, an unwritable file or folder (naming it), not a database, a newer
 * schema.
 * STORE_READONLY is for commands that only read (runs, db info, report, compare, show, ...):
 * the file is opened read-only and never written (no migration, no journal, no reaping), so
 * another user's 0444 database works; a WAL database whose -shm this user cannot create, with
 * no -wal beside it, is read as immutable. An older schema is refused, or with STORE_UPGRADE
 * first upgraded when this user may write the file. Every connection has the SQL function
 * live_status(status, host, pid): 'interrupted' for a run left 'running' on this host by a
 * dead process (what reaping records), else status. */
int  store_open(const char *path, int flags, struct store **out, struct ev_err *err);
void store_close(struct store *s);
const char *store_path(const struct store *s);
/* The schema version of the open database, and the newest this build knows. */
int store_schema_version(struct store *s);
int store_schema_latest(void);

/* ---- statements ---- */
enum { STORE_DONE = 0, STORE_ROW = 1 };
int  store_prepare(struct store *s, const char *sql, struct store_stmt **out,
                   struct ev_err *err);
/* Binds ?1 to run_id and ?2 to key (text, copied): the statements over one run's rows picked
 * by an item key, a grader kind or a rater. */
void store_bind_run_key(struct store_stmt *st, int64_t run_id, const char *key);
/* Whether sql, with ?1 = run_id and ?2 = key, returns a row: 1, 0, or EV_EFAIL. */
int  store_has_run_key(struct store *s, const char *sql, int64_t run_id, const char *key,
                       struct ev_err *err);
void store_bind_int(struct store_stmt *st, int i, int64_t v);     /* i counts from 1 */
void store_bind_double(struct store_stmt *st, int i, double v);
void store_bind_text(struct store_stmt *st, int i, const char *v); /* NULL binds NULL; copied */
void store_bind_blob(struct store_stmt *st, int i, const void *v, size_t n); /* copied */
void store_bind_null(struct store_stmt *st, int i);
/* Returns STORE_ROW, STORE_DONE, or EV_EFAIL with the SQLite message in err. */
int  store_step(struct store_stmt *st, struct ev_err *err);
int64_t     store_col_int(struct store_stmt *st, int i);           /* i counts from 0 */
double      store_col_double(struct store_stmt *st, int i);
const char *store_col_text(struct store_stmt *st, int i);          /* NULL for NULL */
const void *store_col_blob(struct store_stmt *st, int i, size_t *n);
int         store_col_is_null(struct store_stmt *st, int i);
void store_reset(struct store_stmt *st); /* also clears bindings */
void store_finalize(struct store_stmt *st);

/* Runs SQL without results (several statements allowed); for fixed SQL only. */
int store_exec(struct store *s, const char *sql, struct ev_err *err);
int store_begin(struct store *s, struct ev_err *err); /* BEGIN IMMEDIATE */
int store_commit(struct store *s, struct ev_err *err);
void store_rollback(struct store *s);
int64_t store_last_id(struct store *s);
int64_t store_changes(struct store *s);

/* ---- runs ---- */
struct run_info {
    const char *kind;        /* required */
    const char *tag;         /* may be NULL */
    const char *config_json; /* required: the full configuration */
    int64_t     seed;
    int         shard_k, shard_n;
    int64_t     model_id, sae_id; /* 0 = none */
    int         retag;       /* --retag: take tag from the run that holds it (runs.h) */
};

/* Starts a run: finds an unfinished run of the same kind and configuration (and shard) to
 * resume, or inserts a new one. *resumed says which. Either way the row is marked running
 * under this process and its work time starts counting (runs.h). A tag held by another run,
 * or a different tag on the resumed run, is EV_EUSAGE unless ri->retag (runs_tag_claim()). */
int store_run_begin(struct store *s, const struct run_info *ri, int64_t *run_id, int *resumed,
                    struct ev_err *err);
/* 1 when the run that store_run_begin() would resume for ri (same kind, configuration and
 * shard) exists and is done, 0 when not, EV_EFAIL on a database error. */
int store_run_is_done(struct store *s, const struct run_info *ri, struct ev_err *err);
/* Ends a run: status is "done", "failed" or "interrupted"; error may be NULL. */
int store_run_finish(struct store *s, int64_t run_id, const char *status, const char *error,
                     struct ev_err *err);
/* Ends a run from its command's result code: EV_OK -> "done", EV_EINTR -> "interrupted",
 * anything else -> "failed" with err's message as the run's error. Returns rc; when rc is
 * EV_OK but "done" cannot be stored, EV_EFAIL with the reason in err (the run is then not
 * done, and a rerun resumes it). A failure to store another status keeps err's message, the
 * first cause, and rc. */
int store_run_end(struct store *s, int64_t run_id, int rc, struct ev_err *err);
/* Resolves "12" or a tag (newest run with that tag) to a run id. */
int store_run_resolve(struct store *s, const char *name, int64_t *run_id, struct ev_err *err);
/* Marks runs left 'running' by a dead process on this host as 'interrupted'. */
int store_reap_interrupted(struct store *s, struct ev_err *err);

/* ---- content-addressed models and SAEs ----
 * Find the row with this hash or insert one; *id is its id. On a store opened STORE_READONLY
 * they only find: *id is 0 when the database has never seen this model or SAE. */
int store_put_model(struct store *s, const char *hash, const char *path,
                    const char *config_json, int64_t *id, struct ev_err *err);
int store_put_sae(struct store *s, const char *hash, const char *path, const char *config_json,
                  int64_t model_id, int64_t *id, struct ev_err *err);

/* Calls fn with the name and row count of every table of the database, by name. */
int store_table_counts(struct store *s, int (*fn)(void *ctx, const char *table, int64_t rows),
                       void *ctx, struct ev_err *err);

/* Default database path: $EVALRUN_DB or results/evalrun.db. */
const char *store_default_path(void);


/* ---- attached databases (added for `evalrun merge`; keep this section last) ----
 * Attaches the database file at path under the schema name (e.g. "shard") on this connection,
 * so that SQL can read "shard.grades". SQLite refuses both while a transaction is open, and
 * would create a missing file: check that path exists first. At most 10 at once (SQLite's
 * compiled limit). */
int store_attach(struct store *s, const char *path, const char *schema, struct ev_err *err);
int store_detach(struct store *s, const char *schema, struct ev_err *err);
/* Writes a consistent copy of the database to path (VACUUM INTO; path must not exist), e.g.
 * the starting point of every shard of a submitted run. */
int store_snapshot(struct store *s, const char *path, struct ev_err *err);

#endif
