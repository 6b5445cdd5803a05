/*
 * ledger — the owner of the graders' tables (schema 004): grader_cache (answers by request
 * key, so a rerun asks nothing twice), grader_requests (one audit row per request) and
 * grader_usage (the cost ledger: a run's items, requests, tokens — with those read from and
 * written to the provider's prompt cache, schema 017 — and cost per grader).
 *
 * Included by: store and the wings above it (graders: cache.c, grader.c).
 */
#ifndef EV_STORE_LEDGER_H
#define EV_STORE_LEDGER_H

#include <stdint.h>

#include "base/util.h"

struct store;

/* A cached answer; the fields are owned by the caller (free each). */
struct ledger_cached {
    char   *answer, *answer_model; /* answer_model "" when none */
    char   *logprobs_json;         /* NULL when none */
    int64_t tokens_in, tokens_out; /* 0 when none */
};
/* *found = 1 and *out when key is cached, else *found = 0. */
int ledger_cache_get(struct store *s, const char *key, struct ledger_cached *out, int *found,
                     struct ev_err *err);

struct ledger_cache_row {
    const char *key, *provider, *base_url, *model;
    int         attempt;
    const char *request_json, *response_json, *answer, *answer_model, *logprobs_json;
    int64_t     tokens_in, tokens_out, latency_ms;
};
/* Stores (or replaces) the answer of key. */
int ledger_cache_put(struct store *s, const struct ledger_cache_row *r, struct ev_err *err);

struct ledger_request_row {
    int64_t     run_id; /* 0: none */
    const char *grader_name, *cache_key;
    int         attempt;
    const char *status;
    int         http_status; /* 0: none */
    int         tries, from_cache;
    int64_t     latency_ms, tokens_in, tokens_out;
    int64_t     tokens_cache_read, tokens_cache_write; /* of tokens_in (schema 017) */
    const char *error; /* NULL when none */
};
int ledger_request_put(struct store *s, const struct ledger_request_row *r, struct ev_err *err);

struct ledger_usage_row {
    int64_t     run_id;
    const char *grader_name;
    int64_t     items, ok, from_cache, failed, requests, retries, tokens_in, tokens_out;
    int64_t     tokens_cache_read, tokens_cache_write; /* of tokens_in (schema 017) */
    int         has_cost; /* 0: cost_usd and cost_nocache_usd unknown (stored NULL) */
    double      cost_usd;         /* the real price, cached input at its discount */
    double      cost_nocache_usd; /* the same tokens at the full input price */
};
/* Stores (or replaces) the usage of grader_name in the run. */
int ledger_usage_put(struct store *s, const struct ledger_usage_row *r, struct ev_err *err);
/* Calls fn once per grader_usage row of run_id (by grader name); the row's strings are
 * borrowed for the call. A non-zero return from fn stops and is returned. */
typedef int ledger_usage_fn(void *ud, const struct ledger_usage_row *r, struct ev_err *err);
int ledger_usage_list(struct store *s, int64_t run_id, ledger_usage_fn *fn, void *ud,
                      struct ev_err *err);

#endif
