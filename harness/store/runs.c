/*
 * runs — named reads of the runs table (see runs.h).
 */
#include "store/runs.h"

#include <stdlib.h>
#include <string.h>

#include "store/store.h"

int runs_kind(struct store *s, int64_t run_id, char **kind, int64_t *sae_id, struct ev_err *err) {
    struct store_stmt *st = NULL;
    *kind = NULL;
    *sae_id = 0;
    int rc = store_prepare(s, "SELECT kind, coalesce(sae_id, 0) FROM runs WHERE id = ?1", &st,
                           err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    int r = store_step(st, err);
    if (r == STORE_ROW) {
        *kind = xstrdup(store_col_text(st, 0));
        *sae_id = store_col_int(st, 1);
        rc = EV_OK;
    } else {
        rc = r == STORE_DONE ? ev_fail(err, EV_EFAIL, "no run %lld", (long long)run_id) : EV_EFAIL;
    }
    store_finalize(st);
    return rc;
}

char *runs_model_path(struct store *s, int64_t run_id) {
    struct store_stmt *st = NULL;
    struct ev_err      e;
    char              *path = NULL;
    if (store_prepare(s, "SELECT m.path FROM runs r JOIN models m ON m.id = r.model_id WHERE "
                         "r.id = ?1", &st, &e) != EV_OK)
        return NULL;
    store_bind_int(st, 1, run_id);
    if (store_step(st, &e) == STORE_ROW && store_col_text(st, 0))
        path = xstrdup(store_col_text(st, 0));
    store_finalize(st);
    return path;
}

int runs_list(struct store *s, const char *kind, long limit,
              int (*fn)(void *ctx, const struct runs_row *row), void *ctx, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT id, kind, coalesce(tag, '-'), live_status(status, host, pid), "
                           "started_ms, finished_ms, "
                           "shard_k, shard_n FROM runs WHERE (?1 IS NULL OR kind = ?1) "
                           "ORDER BY id DESC LIMIT ?2",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_text(st, 1, kind);
    store_bind_int(st, 2, limit);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        const struct runs_row row = {
            store_col_int(st, 0),     store_col_text(st, 1), store_col_text(st, 2),
            store_col_text(st, 3),    store_col_int(st, 4),
            store_col_is_null(st, 5) ? -1 : store_col_int(st, 5),
            (int)store_col_int(st, 6), (int)store_col_int(st, 7)};
        if ((rc = fn(ctx, &row)) != EV_OK) break;
    }
    store_finalize(st);
    if (rc != EV_OK) return rc;
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}
