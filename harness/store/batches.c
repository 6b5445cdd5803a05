/*
 * batches — grader_batches and grader_batch_items (see batches.h).
 */
#include "store/batches.h"

#include "store/store.h"

int batches_put(struct store *s, const struct batches_row *b, const struct batches_item *items,
                int n, int64_t *id, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                rc = EV_EFAIL;
    if (store_begin(s, err) != EV_OK) return EV_EFAIL;
    if (store_prepare(s, "INSERT INTO grader_batches (provider, base_url, model, remote_id, "
                         "input_file_id, run_id, n_requests, created_ms) VALUES (?1, ?2, ?3, "
                         "?4, ?5, ?6, ?7, ?8)", &st, err) != EV_OK)
        goto out;
    store_bind_text(st, 1, b->provider);
    store_bind_text(st, 2, b->base_url);
    store_bind_text(st, 3, b->model);
    store_bind_text(st, 4, b->remote_id);
    store_bind_text(st, 5, b->input_file_id);
    if (b->run_id) store_bind_int(st, 6, b->run_id); else store_bind_null(st, 6);
    store_bind_int(st, 7, n);
    store_bind_int(st, 8, now_unix_ms());
    if (store_step(st, err) < 0) goto out;
    *id = store_last_id(s);
    store_finalize(st);
    st = NULL;
    if (store_prepare(s, "INSERT INTO grader_batch_items (batch_id, custom_id, cache_key, "
                         "attempt) VALUES (?1, ?2, ?3, ?4)", &st, err) != EV_OK)
        goto out;
    for (int i = 0; i < n; i++) {
        store_bind_int(st, 1, *id);
        store_bind_text(st, 2, items[i].custom_id);
        store_bind_text(st, 3, items[i].cache_key);
        store_bind_int(st, 4, items[i].attempt);
        if (store_step(st, err) < 0) goto out;
        store_reset(st);
    }
    rc = store_commit(s, err);
out:
    store_finalize(st);
    if (rc != EV_OK) store_rollback(s);
    return rc;
}

int batches_pending(struct store *s, const char *provider, const char *base_url,
                    const char *model, int (*fn)(void *ctx, const struct batches_row *b),
                    void *ctx, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s, "SELECT id, provider, base_url, model, remote_id, input_file_id, "
                              "coalesce(run_id, 0), n_requests FROM grader_batches WHERE "
                              "status = 'pending' AND provider = ?1 AND base_url = ?2 AND "
                              "model = ?3 ORDER BY id", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_text(st, 1, provider);
    store_bind_text(st, 2, base_url);
    store_bind_text(st, 3, model);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        const struct batches_row b = {
            store_col_int(st, 0),  store_col_text(st, 1), store_col_text(st, 2),
            store_col_text(st, 3), store_col_text(st, 4),
            store_col_is_null(st, 5) ? NULL : store_col_text(st, 5), store_col_int(st, 6),
            (int)store_col_int(st, 7)};
        if ((rc = fn(ctx, &b)) != EV_OK) break;
    }
    store_finalize(st);
    if (rc != EV_OK) return rc;
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}

int batches_items(struct store *s, int64_t id,
                  int (*fn)(void *ctx, const struct batches_item *it), void *ctx,
                  struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s, "SELECT custom_id, cache_key, attempt FROM grader_batch_items "
                              "WHERE batch_id = ?1 ORDER BY custom_id", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, id);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        const struct batches_item it = {store_col_text(st, 0), store_col_text(st, 1),
                                        (int)store_col_int(st, 2)};
        if ((rc = fn(ctx, &it)) != EV_OK) break;
    }
    store_finalize(st);
    if (rc != EV_OK) return rc;
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}

int batches_end(struct store *s, int64_t id, const char *status, const char *error,
                struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s, "UPDATE grader_batches SET status = ?2, error = ?3, ended_ms = ?4 "
                              "WHERE id = ?1", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, id);
    store_bind_text(st, 2, status);
    store_bind_text(st, 3, error);
    store_bind_int(st, 4, now_unix_ms());
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    return rc;
}
