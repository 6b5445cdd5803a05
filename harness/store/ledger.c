/*
 * ledger — the grader_cache, grader_requests and grader_usage tables (see ledger.h).
 */
#include "store/ledger.h"

#include <string.h>

#include "store/store.h"

int ledger_cache_get(struct store *s, const char *key, struct ledger_cached *out, int *found,
                     struct ev_err *err) {
    struct store_stmt *q = NULL;
    *found = 0;
    memset(out, 0, sizeof *out);
    int rc = store_prepare(s,
                           "SELECT answer, coalesce(answer_model, ''), logprobs_json, "
                           "coalesce(tokens_in, 0), coalesce(tokens_out, 0) "
                           "FROM grader_cache WHERE key = ?1",
                           &q, err);
    if (rc != EV_OK) return rc;
    store_bind_text(q, 1, key);
    int r = store_step(q, err);
    if (r == STORE_ROW) {
        out->answer = xstrdup(store_col_text(q, 0));
        out->answer_model = xstrdup(store_col_text(q, 1));
        const char *lp = store_col_text(q, 2);
        out->logprobs_json = lp ? xstrdup(lp) : NULL;
        out->tokens_in = store_col_int(q, 3);
        out->tokens_out = store_col_int(q, 4);
        *found = 1;
        rc = EV_OK;
    } else {
        rc = r < 0 ? EV_EFAIL : EV_OK;
    }
    store_finalize(q);
    return rc;
}

int ledger_cache_put(struct store *s, const struct ledger_cache_row *r, struct ev_err *err) {
    struct store_stmt *q = NULL;
    int rc = store_prepare(s,
                           "INSERT OR REPLACE INTO grader_cache (key, provider, base_url, model, "
                           "attempt, request_json, response_json, answer, answer_model, "
                           "logprobs_json, tokens_in, tokens_out, latency_ms, created_ms) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                           &q, err);
    if (rc != EV_OK) return rc;
    store_bind_text(q, 1, r->key);
    store_bind_text(q, 2, r->provider);
    store_bind_text(q, 3, r->base_url);
    store_bind_text(q, 4, r->model);
    store_bind_int(q, 5, r->attempt);
    store_bind_text(q, 6, r->request_json);
    store_bind_text(q, 7, r->response_json);
    store_bind_text(q, 8, r->answer);
    store_bind_text(q, 9, r->answer_model);
    store_bind_text(q, 10, r->logprobs_json);
    store_bind_int(q, 11, r->tokens_in);
    store_bind_int(q, 12, r->tokens_out);
    store_bind_int(q, 13, r->latency_ms);
    store_bind_int(q, 14, now_unix_ms());
    rc = store_step(q, err) == STORE_DONE ? EV_OK : EV_EFAIL;
    store_finalize(q);
    return rc;
}

int ledger_request_put(struct store *s, const struct ledger_request_row *r, struct ev_err *err) {
    struct store_stmt *q = NULL;
    int rc = store_prepare(s,
                           "INSERT INTO grader_requests (run_id, grader_name, cache_key, attempt, "
                           "status, http_status, tries, from_cache, latency_ms, tokens_in, "
                           "tokens_out, error, created_ms, tokens_cache_read, "
                           "tokens_cache_write) VALUES "
                           "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                           &q, err);
    if (rc != EV_OK) return rc;
    if (r->run_id > 0) store_bind_int(q, 1, r->run_id);
    else store_bind_null(q, 1);
    store_bind_text(q, 2, r->grader_name);
    store_bind_text(q, 3, r->cache_key);
    store_bind_int(q, 4, r->attempt);
    store_bind_text(q, 5, r->status);
    if (r->http_status) store_bind_int(q, 6, r->http_status);
    else store_bind_null(q, 6);
    store_bind_int(q, 7, r->tries);
    store_bind_int(q, 8, r->from_cache);
    store_bind_int(q, 9, r->latency_ms);
    store_bind_int(q, 10, r->tokens_in);
    store_bind_int(q, 11, r->tokens_out);
    store_bind_text(q, 12, r->error);
    store_bind_int(q, 13, now_unix_ms());
    store_bind_int(q, 14, r->tokens_cache_read);
    store_bind_int(q, 15, r->tokens_cache_write);
    rc = store_step(q, err) == STORE_DONE ? EV_OK : EV_EFAIL;
    store_finalize(q);
    return rc;
}

int ledger_usage_list(struct store *s, int64_t run_id, ledger_usage_fn *fn, void *ud,
                      struct ev_err *err) {
    struct store_stmt *q = NULL;
    int rc = store_prepare(s,
                           "SELECT grader_name, items, ok, from_cache, failed, requests, retries, "
                           "tokens_in, tokens_out, tokens_cache_read, tokens_cache_write, "
                           "cost_usd IS NOT NULL, coalesce(cost_usd, 0), "
                           "coalesce(cost_nocache_usd, cost_usd, 0) FROM grader_usage "
                           "WHERE run_id = ?1 ORDER BY grader_name",
                           &q, err);
    if (rc != EV_OK) return rc;
    store_bind_int(q, 1, run_id);
    int r;
    while ((r = store_step(q, err)) == STORE_ROW) {
        struct ledger_usage_row u = {
            run_id, store_col_text(q, 0), store_col_int(q, 1), store_col_int(q, 2),
            store_col_int(q, 3), store_col_int(q, 4), store_col_int(q, 5), store_col_int(q, 6),
            store_col_int(q, 7), store_col_int(q, 8), store_col_int(q, 9), store_col_int(q, 10),
            (int)store_col_int(q, 11), store_col_double(q, 12), store_col_double(q, 13)};
        if ((rc = fn(ud, &u, err)) != EV_OK) break;
    }
    if (r < 0) rc = EV_EFAIL;
    store_finalize(q);
    return rc;
}

int ledger_usage_put(struct store *s, const struct ledger_usage_row *r, struct ev_err *err) {
    struct store_stmt *q = NULL;
    int rc = store_prepare(s,
                           "INSERT OR REPLACE INTO grader_usage (run_id, grader_name, items, ok, "
                           "from_cache, failed, requests, retries, tokens_in, tokens_out, "
                           "cost_usd, updated_ms, tokens_cache_read, tokens_cache_write, "
                           "cost_nocache_usd) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                           "?10, ?11, ?12, ?13, ?14, ?15)",
                           &q, err);
    if (rc != EV_OK) return rc;
    store_bind_int(q, 1, r->run_id);
    store_bind_text(q, 2, r->grader_name);
    store_bind_int(q, 3, r->items);
    store_bind_int(q, 4, r->ok);
    store_bind_int(q, 5, r->from_cache);
    store_bind_int(q, 6, r->failed);
    store_bind_int(q, 7, r->requests);
    store_bind_int(q, 8, r->retries);
    store_bind_int(q, 9, r->tokens_in);
    store_bind_int(q, 10, r->tokens_out);
    if (r->has_cost) store_bind_double(q, 11, r->cost_usd);
    else store_bind_null(q, 11);
    store_bind_int(q, 12, now_unix_ms());
    store_bind_int(q, 13, r->tokens_cache_read);
    store_bind_int(q, 14, r->tokens_cache_write);
    if (r->has_cost) store_bind_double(q, 15, r->cost_nocache_usd);
    else store_bind_null(q, 15);
    rc = store_step(q, err) == STORE_DONE ? EV_OK : EV_EFAIL;
    store_finalize(q);
    return rc;
}
