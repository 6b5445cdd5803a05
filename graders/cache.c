/*
 * cache — grader responses in SQLite, keyed by sha256 of the request's content.
 */
#include "graders/cache.h"

#include <stdio.h>
#include <string.h>

#include "base/hash.h"
#include "store/store.h"

const char *cache_provider_name(enum grader_provider p) {
    return p == GRADER_PROVIDER_ANTHROPIC ? "anthropic"
           : p == GRADER_PROVIDER_OPENAI  ? "openai"
                                          : "none";
}

static void add_field(struct sha256 *h, const char *s) {
    char   len[32];
    size_t n = s ? strlen(s) : 0;
    int    k = snprintf(len, sizeof len, "%zu:", n);
    sha256_update(h, len, (size_t)k);
    if (n) sha256_update(h, s, n);
}

void cache_key(const struct cache_params *cp, char hex[65]) {
    struct sha256 h;
    char          num[64];
    sha256_init(&h);
    add_field(&h, "evalrun-grader-cache-v1");
    add_field(&h, cache_provider_name(cp->provider));
    add_field(&h, cp->base_url);
    add_field(&h, cp->model);
    snprintf(num, sizeof num, "%d", cp->max_tokens);
    add_field(&h, num);
    snprintf(num, sizeof num, "%.17g", cp->temperature);
    add_field(&h, num);
    snprintf(num, sizeof num, "%d", cp->logprobs);
    add_field(&h, num);
    add_field(&h, cp->system ? cp->system : "");
    add_field(&h, cp->prompt);
    snprintf(num, sizeof num, "%d", cp->attempt);
    add_field(&h, num);
    sha256_hex_final(&h, hex);
}

int cache_get(struct store *st, const char *key, struct llm_answer *a, int *found,
              struct ev_err *err) {
    struct store_stmt *q = NULL;
    *found = 0;
    memset(a, 0, sizeof *a);
    int rc = store_prepare(st,
                           "SELECT answer, coalesce(answer_model, ''), logprobs_json, "
                           "coalesce(tokens_in, 0), coalesce(tokens_out, 0) "
                           "FROM grader_cache WHERE key = ?1",
                           &q, err);
    if (rc != EV_OK) return rc;
    store_bind_text(q, 1, key);
    int r = store_step(q, err);
    if (r == STORE_ROW) {
        a->text = xstrdup(store_col_text(q, 0));
        a->model = xstrdup(store_col_text(q, 1));
        const char *lp = store_col_text(q, 2);
        a->logprobs_json = lp ? xstrdup(lp) : NULL;
        a->tokens_in = (int)store_col_int(q, 3);
        a->tokens_out = (int)store_col_int(q, 4);
        a->stop_reason = xstrdup("");
        *found = 1;
        rc = EV_OK;
    } else {
        rc = r < 0 ? EV_EFAIL : EV_OK;
    }
    store_finalize(q);
    return rc;
}

int cache_put(struct store *st, const char *key, const struct cache_params *cp,
              const char *request_json, const char *response_json, const struct llm_answer *a,
              double latency_s, struct ev_err *err) {
    struct store_stmt *q = NULL;
    int rc = store_prepare(st,
                           "INSERT OR REPLACE INTO grader_cache (key, provider, base_url, model, "
                           "attempt, request_json, response_json, answer, answer_model, "
                           "logprobs_json, tokens_in, tokens_out, latency_ms, created_ms) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                           &q, err);
    if (rc != EV_OK) return rc;
    store_bind_text(q, 1, key);
    store_bind_text(q, 2, cache_provider_name(cp->provider));
    store_bind_text(q, 3, cp->base_url);
    store_bind_text(q, 4, cp->model);
    store_bind_int(q, 5, cp->attempt);
    store_bind_text(q, 6, request_json);
    store_bind_text(q, 7, response_json);
    store_bind_text(q, 8, a->text);
    store_bind_text(q, 9, a->model);
    store_bind_text(q, 10, a->logprobs_json);
    store_bind_int(q, 11, a->tokens_in);
    store_bind_int(q, 12, a->tokens_out);
    store_bind_int(q, 13, (int64_t)(latency_s * 1000.0 + 0.5));
    store_bind_int(q, 14, now_unix_ms());
    rc = store_step(q, err) == STORE_DONE ? EV_OK : EV_EFAIL;
    store_finalize(q);
    return rc;
}
