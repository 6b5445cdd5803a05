/*
 * batch — grading through the providers' batch interfaces (`--batch`): OpenAI's Batch API
 * (the requests as a JSONL file uploaded to POST {base}/files with purpose "batch", then POST
 * {base}/batches {input_file_id, endpoint "/v1/chat/completions", completion_window "24h"},
 * polled with GET {base}/batches/ID until completed / failed / expired / cancelled, answers
 * read from GET {base}/files/OUTPUT_FILE_ID/content and the error file) and Anthropic's
 * Message Batches (POST {base}/messages/batches {requests: [{custom_id, params}]}, polled with
 * GET {base}/messages/batches/ID until processing_status "ended", answers read from its
 * results_url, JSON Lines of {custom_id, result: {type: succeeded|errored|canceled|expired}}).
 * Both cost half the price of the same requests one by one and answer within 24 hours.
 *
 * Included by: graders (grader.c dispatches to it when grader_config.batch is set).
 *
 * Guarantees, the same as grader_run_batch()'s where they apply:
 *   - Requests are the same bodies, under the same cache keys, as without --batch: a cached
 *     answer is used without asking, and every answer is cached and handed to on_result as it
 *     is read, so grades equal the non-batch path's.
 *   - Resumable: a batch is stored (store/batches.h: remote id and the cache keys it covers)
 *     as soon as the provider accepts it, before polling starts. A rerun after a kill or
 *     Ctrl-C first looks for pending batches covering its requests and polls those, so
 *     nothing is submitted (or paid for) twice. (A kill in the instant between the provider's
 *     answer and that commit leaves a batch the database does not know: it is submitted again.)
 *   - A batch that fails, expires or is cancelled is a one-line EV_EFAIL naming it and why;
 *     it is marked failed, its unanswered requests stay ungraded, and a rerun submits them
 *     in a new batch. Requests the provider answered with an error are delivered as HTTP
 *     errors, as without --batch.
 *   - Cost: tokens at half the --price-in/--price-out (grader_usage, the run's ledger).
 *   - Polling every grader_config.batch_poll_s seconds ($EVALRUN_BATCH_POLL_S overrides);
 *     SIGINT stops polling with EV_EINTR, the batch left pending for the rerun.
 */
#ifndef EV_GRADER_BATCH_H
#define EV_GRADER_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "graders/grader.h"

#define BATCH_MAX_REQUESTS 10000 /* per batch submitted (OpenAI takes 50,000, Anthropic 100,000) */
#define BATCH_PRICE_FACTOR 0.5

/* grader_run_batch() through the batch API (same contract). */
int grader_batch_run(struct grader *g, const struct grader_request *reqs, int n,
                     grader_accept_fn *accept, grader_result_fn *on_result, void *ud,
                     struct ev_err *err);
/* grader_run_batch_reask() through the batch API: a rejected answer is asked again in the
 * next round with the prompt accept returns (attempt 1, its own cache key), as without
 * --batch. */
int grader_batch_run_reask(struct grader *g, const struct grader_request *reqs, int n,
                           grader_accept_reask_fn *accept, void *accept_ud,
                           grader_result_fn *on_result, void *ud, struct ev_err *err);

/* ---- what batch.c needs of struct grader (implemented in grader.c) ---- */
struct store *grader_store_of(const struct grader *g);
int64_t       grader_run_of(const struct grader *g);
const char   *grader_key_of(const struct grader *g);
/* text as one line with the key replaced by [redacted], into buf */
void grader_scrub(const struct grader *g, const char *text, char *buf, size_t n);
/* one HTTP request made (the totals' requests) */
void grader_count_request(struct grader *g);
/* A result delivered outside the engine: counted in the totals (tokens at price_factor of
 * the price), and logged in grader_requests. */
void grader_account(struct grader *g, const struct grader_result *res, double price_factor);

#endif
