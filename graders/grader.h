/*
 * grader — the LLM grader: prompts in, answers out, over HTTP (Anthropic Messages or an
 * OpenAI-compatible Chat Completions API), many at once, cached in the results database.
 *
 * Included by: graders, evals and harness/cli.
 *
 * How an evaluation uses it:
 *
 *     struct grader_flags gf;  grader_flags_init(&gf);
 *     const struct opt opts[] = { {...the command's own...}, GRADER_OPTIONS(gf), {0} };
 *     ... args_parse(...) ...
 *     if (!grader_flags_configured(&gf)) { ev_info("%s", grader_not_configured_message());
 *                                          queue items for human review; }
 *     struct grader_config cfg;
 *     rc = grader_config_from_flags(&gf, shard_n, &cfg, err);          // EV_EUSAGE on bad flags
 *     rc = grader_new(&cfg, store, &g, err);                           // no key: EV_EFAIL
 *     rc = grader_preflight(g, err);                                   // 401, 404, unreachable
 *     rc = grader_run_batch(g, reqs, n, accept_fn, on_result, ud, err);// results as they come
 *     grader_store_usage(g, run_id, err);  ev_info("%s", grader_summary(g, buf, sizeof buf));
 *
 * Invariants and guarantees:
 *   - API keys are read from the environment (ANTHROPIC_API_KEY / OPENAI_API_KEY) by
 *     grader_new(), live only in the request headers in memory, and never reach the database,
 *     logs or error messages (server error text is scrubbed of the key before it is shown).
 *   - The cache key is sha256 over (provider, base URL, model, max_tokens, temperature,
 *     logprobs, system, prompt, attempt); a hit returns the stored answer with no request, so a
 *     rerun makes zero requests and reproduces the same scores. Only successful answers are
 *     cached. --no-cache skips reading the cache (answers are still written).
 *   - Results are handed to the callback one by one as each arrives (the cache row is
 *     committed first), so the caller can store each grade in its own transaction; a SIGKILL
 *     loses nothing already handed over.
 *   - Retries: 429, 408/409/425, 5xx, connection failures, time-outs and unreadable bodies are
 *     retried up to max_retries times with exponential back-off and jitter, honouring
 *     Retry-After; other 4xx are not retried. A 429 also halves the number of requests kept in
 *     flight, which grows back by one per window of successes (see grader_stats.limit_now). 401/403 stops the batch (the key is wrong for
 *     every item): EV_EFAIL, and items not yet answered stay ungraded, to be resumed.
 *   - SIGINT (ev_interrupted()) stops new requests; in-flight ones get a few seconds to finish
 *     (their results are delivered), then the batch returns EV_EINTR.
 *
 * Ownership: struct grader is opaque (grader_new/grader_free); it borrows the store, which
 * must outlive it. Result strings handed to callbacks are valid during the callback only.
 * The store is used only from the thread calling grader_run_batch(), between callbacks.
 */
#ifndef EV_GRADER_H
#define EV_GRADER_H

#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "base/args.h"
#include "base/util.h"

struct store;
struct grader;

enum grader_provider {
    GRADER_PROVIDER_NONE      = 0,
    GRADER_PROVIDER_ANTHROPIC = 1, /* POST {base}/messages, x-api-key, anthropic-version */
    GRADER_PROVIDER_OPENAI    = 2, /* POST {base}/chat/completions, Authorization: Bearer */
};

/* By-value configuration (STYLE rule 7): start from grader_default_config(). */
struct grader_config {
    enum grader_provider provider;
    char   model[128];
    char   base_url[512];      /* normalised by grader_config_set_url(): no trailing "/" */
    int    concurrency;        /* requests in flight at once (default 8) */
    double rpm;                /* requests per minute for the whole job; 0 = unlimited */
    int    n_shards;           /* rpm is divided by this (issue 10): default 1 */
    double timeout_s;          /* per request (default 120) */
    double connect_timeout_s;  /* default 10 */
    int    max_retries;        /* default 5 */
    double backoff_base_s;     /* first back-off (default 1 s), doubled per retry */
    double backoff_cap_s;      /* default 60 s; also caps a server's Retry-After */
    int    max_tokens;         /* default for requests that give none (default 512) */
    double temperature;        /* default 0, for reproducibility */
    int    logprobs;           /* OpenAI: ask for top_logprobs N (0 = off) */
    int    no_cache;           /* 1: do not read the cache */
    double price_in, price_out;/* USD per million tokens, for the cost estimate (0 = unknown) */
    double price_cached;       /* USD per million input tokens read from the provider's prompt
                                * cache; < 0: the provider's discount of price_in (Anthropic
                                * 0.1x, OpenAI 0.5x). Anthropic's cache writes cost 1.25x. */
    uint64_t seed;             /* for back-off jitter */
    char   params[1024];       /* --grader-param overrides as params_parse() made them ("" none;
                                * graders/params.h); part of the cache key */
    int    batch;              /* --batch: the provider's batch API (graders/batch.h) */
    double batch_poll_s;       /* seconds between polls of a pending batch (default 30;
                                * $EVALRUN_BATCH_POLL_S) */
};

struct grader_config grader_default_config(void);
/* Parses "anthropic[:MODEL]" or "openai[:MODEL]" into provider and model (default models:
 * see docs/graders.md) and sets the provider's default base URL. EV_EUSAGE when malformed. */
int grader_config_set_spec(struct grader_config *cfg, const char *spec, struct ev_err *err);
/* Sets the base URL: "http://host:port/v1" as the SDKs take it; a URL with no path gets "/v1".
 * EV_EUSAGE unless it is http:// or https://. */
int grader_config_set_url(struct grader_config *cfg, const char *url, struct ev_err *err);
/* "anthropic:MODEL" — the name stored in grades.grader_name. */
const char *grader_config_name(const struct grader_config *cfg, char *buf, size_t n);
/* The environment variable holding the provider's key. */
const char *grader_key_env(enum grader_provider p);

// --- the shared command-line flags ------------------------------------------------------

/* A numeric flag not given holds GRADER_FLAG_UNSET (long) or GRADER_FLAG_UNSET_D (double), values
 * no command line can give (args rejects a non-finite number; LONG_MIN is not a count), so
 * that every value typed, -1 included, is range-checked rather than read as the default. */
#define GRADER_FLAG_UNSET   LONG_MIN
#define GRADER_FLAG_UNSET_D NAN
struct grader_flags {
    const char *grader;      /* --grader (else $EVALRUN_GRADER) */
    const char *grader_url;  /* --grader-url (else $EVALRUN_GRADER_URL) */
    long        concurrency; /* unset = default */
    double      rpm;         /* unset = unlimited */
    double      timeout;     /* unset = default */
    long        max_retries; /* unset = default */
    int         no_cache;
    double      price_in, price_out; /* unset = unknown */
    struct strlist params;   /* --grader-param KEY=VALUE (repeatable) */
    int         batch;       /* --batch */
    double      price_cached;        /* unset = the provider's discount of price_in */
};
void grader_flags_init(struct grader_flags *f);
/* The struct opt entries every grading command includes in its table. */
#define GRADER_OPTIONS(f)                                                                    \
    {"grader", OPT_STR, &(f).grader, "PROVIDER[:MODEL]",                                     \
     "LLM grader: anthropic[:MODEL] or openai[:MODEL] (env EVALRUN_GRADER)"},                \
    {"grader-url", OPT_STR, &(f).grader_url, "URL",                                          \
     "grader API base URL, e.g. http://127.0.0.1:8080/v1 (env EVALRUN_GRADER_URL)"},         \
    {"concurrency", OPT_LONG, &(f).concurrency, "N", "grader requests in flight (default 8)"}, \
    {"rpm", OPT_DOUBLE, &(f).rpm, "N", "grader requests per minute, all shards together"},   \
    {"timeout", OPT_DOUBLE, &(f).timeout, "SECONDS", "per grader request (default 120)"},    \
    {"max-retries", OPT_LONG, &(f).max_retries, "N", "grader retries per request (default 5)"}, \
    {"no-cache", OPT_FLAG, &(f).no_cache, NULL, "ask the grader again, ignoring cached answers"}, \
    {"price-in", OPT_DOUBLE, &(f).price_in, "USD", "grader price per million input tokens"}, \
    {"price-out", OPT_DOUBLE, &(f).price_out, "USD", "grader price per million output tokens"}, \
    {"grader-param", OPT_STRS, &(f).params, "KEY=VALUE",                                    \
     "set a field of the grader's request body (JSON value, else a string; KEY= removes it); " \
     "repeatable"},                                                                          \
    {"batch", OPT_FLAG, &(f).batch, NULL,                                                    \
     "grade through the provider's batch API (half price, answers within 24 h; a rerun "      \
     "resumes polling the same batch)"},                                                     \
    {"price-cached", OPT_DOUBLE, &(f).price_cached, "USD",                                   \
     "grader price per million cached input tokens (default: Anthropic 0.1x, OpenAI 0.5x "    \
     "--price-in)"}

/* 1 when a grader is configured: --grader given or EVALRUN_GRADER set (CLARIFICATIONS). */
int grader_flags_configured(const struct grader_flags *f);
/* The standard message for "not configured": items are queued for human review, and how to
 * configure a grader. */
const char *grader_not_configured_message(void);
/* Builds the configuration from flags and the environment; shard_n (>= 1) divides --rpm.
 * EV_EUSAGE naming the flag when a value is malformed or out of range. */
int grader_config_from_flags(const struct grader_flags *f, int shard_n,
                             struct grader_config *cfg, struct ev_err *err);

// --- the client ------------------------------------------------------------------------

/* Creates a grader. st may be NULL (no cache, no request log). Fails (EV_EFAIL, one line)
 * when the provider's key variable is unset or empty. Caller frees with grader_free(). */
int  grader_new(const struct grader_config *cfg, struct store *st, struct grader **out,
                struct ev_err *err);
void grader_free(struct grader *g);
const struct grader_config *grader_config(const struct grader *g);

/* Sends one tiny request (never from the cache; 2 quick retries at most on 429/5xx) and
 * fails with a one-line message on an unreachable URL, 401/403 (bad key), 404/400 (unknown
 * model, wrong URL) or an answer that cannot be read. *latency_s and *model_out (may be NULL;
 * the model the server reports, up to n bytes) describe the answer. */
int grader_preflight(struct grader *g, double *latency_s, char *model_out, size_t n,
                     char *answer_out, size_t answer_n, struct ev_err *err);

struct grader_request {
    const char *system;     /* may be NULL */
    const char *prompt;     /* the user message */
    int         max_tokens; /* 0: the config's */
    int         attempt;    /* 0 for the first ask; part of the cache key */
    size_t      fixed_len;  /* bytes at the start of prompt that every request of its template
                             * shares (prompt_fixed_len()): marked cacheable for Anthropic;
                             * 0: none known. Not part of the cache key. */
};

enum grader_status {
    GRADER_OK          = 0, /* an answer (text may still fail the caller's parse) */
    GRADER_HTTP_ERROR  = 1, /* the server answered with an error status */
    GRADER_NET_ERROR   = 2, /* connection failure or time-out, after retries */
    GRADER_BAD_RESPONSE= 3, /* 200 with a body that is not a readable answer, after retries */
};
const char *grader_status_name(enum grader_status st); /* "ok", "http", "network", "response" */

struct grader_result {
    enum grader_status status;
    int         http_status;    /* last HTTP status (0 for network errors and cache hits) */
    const char *text;           /* the answer ("" when not ok) */
    const char *model;          /* model named in the response ("" when unknown) */
    const char *logprobs_json;  /* OpenAI logprobs object as JSON, or NULL */
    const char *error;          /* one line when not ok, else "" */
    const char *cache_key;      /* 64 hex digits */
    double      latency_s;      /* of the answering request (0 for cache hits) */
    int         tokens_in, tokens_out;  /* tokens_in: every input token, cached or not */
    int         tokens_cache_read, tokens_cache_write; /* of tokens_in: from / into the
                                                         * provider's prompt cache */
    int         from_cache;
    int         tries;          /* HTTP requests made for this result (0 for cache hits) */
    int         attempt;        /* the ask number that produced the answer (0, or 1 if re-asked) */
};

/* Returns 1 when an answer is usable (parses); used to re-ask once. */
typedef int grader_accept_fn(void *ud, int index, const char *answer);
/* An accept that can tell the model what was wrong: returns 1 when answer is usable; else 0
 * and may set *retry_prompt (malloc'd; the batch frees it) to the prompt of the re-ask, e.g.
 * the original prompt followed by the parser's message (the explainer's retry); left NULL,
 * the same prompt is asked again. prompt is the request's. accept_ud is its own. */
typedef int grader_accept_reask_fn(void *accept_ud, int index, const char *prompt,
                                   const char *answer, char **retry_prompt);
/* Receives each result as it arrives; a non-zero return (with err set) stops the batch, and
 * grader_run_batch() returns it. index is the request's position in reqs. */
typedef int grader_result_fn(void *ud, int index, const struct grader_result *res,
                             struct ev_err *err);

/*
 * Grades reqs[0..n-1]. Every request gets exactly one callback unless the batch stops early
 * (callback error, 401/403, SIGINT), in which case the rest get none. When accept is given
 * and returns 0 for an answer to an attempt-0 request, the request is asked once more with
 * attempt 1 (a different cache key, so a real second request); the callback then gets the
 * second answer, whatever it is. Returns EV_OK (per-item failures are in the results and the
 * summary), EV_EINTR, or EV_EFAIL / the callback's code with err set.
 */
int grader_run_batch(struct grader *g, const struct grader_request *reqs, int n,
                     grader_accept_fn *accept, grader_result_fn *on_result, void *ud,
                     struct ev_err *err);

/* grader_run_batch() whose re-ask (attempt 1, its own cache key) sends the prompt accept
 * returns, so that the second request carries what was wrong with the first answer; with
 * --batch too (graders/batch.c: the re-asks go in a second batch). */
int grader_run_batch_reask(struct grader *g, const struct grader_request *reqs, int n,
                           grader_accept_reask_fn *accept, void *accept_ud,
                           grader_result_fn *on_result, void *ud, struct ev_err *err);

/* Totals over the grader's life. */
struct grader_stats {
    long   items;            /* results delivered */
    long   ok, from_cache;
    long   failed_http, failed_network, failed_response;
    long   requests;         /* HTTP requests sent, retries included */
    long   retries;
    long   reasked;          /* items asked a second time because the answer did not parse */
    long   tokens_in, tokens_out; /* of answers received over HTTP (cache hits cost nothing) */
    long   tokens_cache_read;  /* of tokens_in: read from the provider's prompt cache */
    long   tokens_cache_write; /* of tokens_in: written to it (Anthropic) */
    double cost_usd;         /* the real price: cached tokens at their discount; 0 when unknown */
    double cost_nocache_usd; /* what the same tokens cost at the full input price */
    double batch_s;          /* wall seconds spent in grader_run_batch (callbacks included) */
    /* adaptive concurrency (AIMD): an HTTP 429 halves the in-flight limit (not below 1; once
     * per round: only a 429 to a request sent after the last cut cuts again); every `limit`
     * successes in a row grow it by 1, up to --concurrency */
    int    limit_now;        /* the in-flight limit at present */
    int    limit_min;        /* the lowest it went */
    long   limit_cuts;       /* times it was halved */
};
const struct grader_stats *grader_stats(const struct grader *g);
/* One line: "graded N (C from cache, R retries); failures: ...; tokens I in / O out; cost;
 * H answers over HTTP in S s (R/s)" (the last part when any answer came over HTTP). */
const char *grader_summary(const struct grader *g, char *buf, size_t n);
/* Upserts the totals into grader_usage for run_id (per run and grader). */
int grader_store_usage(struct grader *g, int64_t run_id, struct ev_err *err);
/* Sets the run that grader_requests rows are logged under (0 = none). */
void grader_set_run(struct grader *g, int64_t run_id);

#endif
