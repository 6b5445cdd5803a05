/*
 * cache — grader responses in SQLite, keyed by sha256 of the request's content.
 */
#include "graders/cache.h"

#include <stdio.h>
#include <string.h>

#include "base/hash.h"
#include "store/ledger.h"
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
    if (cp->params && *cp->params) add_field(&h, cp->params);
    sha256_hex_final(&h, hex);
}

int cache_get(struct store *st, const char *key, struct llm_answer *a, int *found,
              struct ev_err *err) {
    struct ledger_cached c;
    memset(a, 0, sizeof *a);
    int rc = ledger_cache_get(st, key, &c, found, err);
    if (rc != EV_OK || !*found) return rc;
    a->text = c.answer;
    a->model = c.answer_model;
    a->logprobs_json = c.logprobs_json;
    a->tokens_in = (int)c.tokens_in;
    a->tokens_out = (int)c.tokens_out;
    a->stop_reason = xstrdup("");
    return EV_OK;
}

int cache_put(struct store *st, const char *key, const struct cache_params *cp,
              const char *request_json, const char *response_json, const struct llm_answer *a,
              double latency_s, struct ev_err *err) {
    const struct ledger_cache_row r = {
        key, cache_provider_name(cp->provider), cp->base_url, cp->model, cp->attempt,
        request_json, response_json, a->text, a->model, a->logprobs_json, a->tokens_in,
        a->tokens_out, (int64_t)(latency_s * 1000.0 + 0.5)};
    return ledger_cache_put(st, &r, err);
}
