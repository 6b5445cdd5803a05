/*
 * http — the libcurl multi wrapper: many POSTs in flight over one curl multi handle, with a
 * fixed pool of transfer slots (connections kept alive and reused by the multi handle),
 * explicit connect and total time-outs, and the pure policy helpers the grader uses for retries
 * (which statuses to retry, exponential back-off with jitter, Retry-After).
 *
 * Included by: every wing (base is the bottom: it includes only base).
 *
 * Only http.c includes <curl/curl.h> (STYLE rule 16). The client is single-threaded: call
 * http_start() and http_wait() from one thread. Scheduling (rate limits, when to retry) is
 * the caller's: this module moves bytes and reports what happened, one callback per finished
 * transfer, as each finishes.
 *
 * Ownership: http_start() copies the URL, headers and body, so the caller's buffers may be
 * freed as soon as it returns. Response fields handed to the callback are borrowed and valid
 * only during the callback. Header values (API keys) are never copied into messages or logs.
 */
#ifndef EV_HTTP_H
#define EV_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

struct http_client;

struct http_request {
    const char        *url;
    const char *const *headers;   /* "Name: value" strings, NULL-terminated; may be NULL */
    const char        *body;      /* POST body (JSON); NULL means GET */
    size_t             body_len;
    double             timeout_s;         /* whole transfer; <= 0 means 120 s */
    double             connect_timeout_s; /* <= 0 means 10 s */
};

enum http_outcome {
    HTTP_OUTCOME_OK      = 0, /* an HTTP status arrived (any status: check it) */
    HTTP_OUTCOME_TIMEOUT = 1, /* the transfer ran past its time-out */
    HTTP_OUTCOME_CONNECT = 2, /* could not connect / resolve */
    HTTP_OUTCOME_NETWORK = 3, /* connection dropped, empty reply, other transport error */
};

struct http_response {
    int               id;           /* the caller's id given to http_start() */
    enum http_outcome outcome;
    int               status;       /* HTTP status; 0 unless outcome is HTTP_OUTCOME_OK */
    const char       *body;         /* NUL-terminated (may hold NULs before body_len) */
    size_t            body_len;
    double            retry_after_s;/* from a Retry-After header; -1 when absent/invalid */
    double            latency_s;    /* from http_start() to completion */
    const char       *error;        /* transport error text ("" when outcome is OK) */
};

/* Called once per finished transfer. A non-zero return stops http_wait(), which then
 * returns that value (the transfer is complete either way). */
typedef int http_done_fn(void *ud, const struct http_response *res);

/* Creates a client able to run max_parallel transfers at once (1..1024), keeping up to
 * max_parallel connections alive. Caller frees with http_client_free(). */
int  http_client_new(int max_parallel, struct http_client **out, struct ev_err *err);
/* Aborts whatever is in flight and frees the client; NULL-safe. */
void http_client_free(struct http_client *c);

/* Starts a transfer. Fails with EV_EFAIL when all max_parallel handles are busy (check
 * http_in_flight() first) or the URL is empty. */
int  http_start(struct http_client *c, int id, const struct http_request *req,
                struct ev_err *err);
/* Drives transfers for at most max_wait_s seconds (returning as soon as at least one
 * transfer finished, or at once when none are in flight), calling done for each finished
 * one. Returns EV_OK, a non-zero value returned by done, or EV_EFAIL on a curl multi error. */
int  http_wait(struct http_client *c, double max_wait_s, http_done_fn *done, void *ud,
               struct ev_err *err);
/* Transfers started and not yet reported. */
int  http_in_flight(const struct http_client *c);
/* Drops every transfer in flight without reporting it (after SIGINT). */
void http_abort_all(struct http_client *c);

/* ---- retry policy (pure functions) ---- */

/* 1 when a response with this status is worth retrying: 408, 409, 425, 429 and 5xx. Other
 * 4xx (bad request, bad key, unknown model) will fail the same way again: 0. */
int    http_status_retryable(int status);
/* The delay before retry number `retry` (1 = first retry): when retry_after >= 0 the server's
 * Retry-After is honoured (capped at cap_s); otherwise exponential back-off base·2^(retry-1),
 * capped at cap_s, with "equal jitter": uniformly in [d/2, d]. */
double http_backoff_s(int retry, double base_s, double cap_s, double retry_after,
                      struct rng *rng);
/* Parses a Retry-After value: delta-seconds ("120", "1.5") or an HTTP-date, relative to
 * now_unix (seconds). Returns seconds >= 0, or -1 when the value is not valid. */
double http_parse_retry_after(const char *value, int64_t now_unix);

#endif
