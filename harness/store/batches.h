/*
 * batches — the owner of the provider batches' tables (schema 016): grader_batches (one row
 * per batch a provider accepted: its remote id, status, error) and grader_batch_items (which
 * requests, by cache key and attempt, it covers, under which custom_id). graders/batch.c
 * stores a batch here before it polls it, so that a killed process resumes polling the same
 * batch (batches_pending()) instead of submitting its requests again.
 *
 * Included by: store and the wings above it (graders: batch.c).
 */
#ifndef EV_STORE_BATCHES_H
#define EV_STORE_BATCHES_H

#include <stdint.h>

#include "base/util.h"

struct store;

/* A batch as stored; strings borrowed for the call. */
struct batches_row {
    int64_t     id;
    const char *provider, *base_url, *model;
    const char *remote_id;
    const char *input_file_id; /* NULL when none (Anthropic) */
    int64_t     run_id;        /* 0: none */
    int         n_requests;
};
/* One request of a batch. */
struct batches_item {
    const char *custom_id, *cache_key;
    int         attempt;
};

/* Stores a batch the provider accepted (status 'pending') and its items, in one transaction;
 * *id is its row id. */
int batches_put(struct store *s, const struct batches_row *b, const struct batches_item *items,
                int n, int64_t *id, struct ev_err *err);
/* Calls fn for every pending batch of (provider, base_url, model), oldest first. */
int batches_pending(struct store *s, const char *provider, const char *base_url,
                    const char *model, int (*fn)(void *ctx, const struct batches_row *b),
                    void *ctx, struct ev_err *err);
/* Calls fn for every item of batch id. */
int batches_items(struct store *s, int64_t id,
                  int (*fn)(void *ctx, const struct batches_item *it), void *ctx,
                  struct ev_err *err);
/* Ends batch id: status "ended" or "failed" (error may be NULL). */
int batches_end(struct store *s, int64_t id, const char *status, const char *error,
                struct ev_err *err);

#endif
