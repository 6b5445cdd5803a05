/*
 * cache — the grader's response cache in the results database (table grader_cache, schema
 * 004). A hit returns the stored answer without any request, so a rerun of the same work
 * asks nothing and reproduces the same scores.
 *
 * Included by: graders, evals and harness/cli.
 *
 * The key is sha256 over length-prefixed fields, so no two different field lists collide by
 * concatenation: "evalrun-grader-cache-v1", provider, base URL, model, max_tokens,
 * temperature (%.17g), logprobs, system ("" when none), prompt, attempt, and then, only when
 * there are any, the --grader-param overrides (so keys made without them are unchanged). The
 * API key is not part of it and is never stored.
 */
#ifndef EV_GRADER_CACHE_H
#define EV_GRADER_CACHE_H

#include "graders/grader.h"
#include "graders/llm.h"

struct store;

struct cache_params {
    enum grader_provider provider;
    const char          *base_url, *model, *system, *prompt;
    int                  max_tokens, logprobs, attempt;
    double               temperature;
    const char          *params; /* --grader-param overrides (graders/params.h); NULL or "" */
    size_t               fixed_len; /* the prompt's static prefix (request body only, not keyed) */
};

/* Writes the 64-hex-digit key of a request into hex. */
void cache_key(const struct cache_params *cp, char hex[65]);

/* Looks key up. *found is 1 on a hit, when *a holds the stored answer (release it with
 * llm_answer_release()). */
int cache_get(struct store *st, const char *key, struct llm_answer *a, int *found,
              struct ev_err *err);

/* Stores an answer (replacing an older one with the same key), in one statement: committed
 * before it returns unless the caller holds a transaction. */
int cache_put(struct store *st, const char *key, const struct cache_params *cp,
              const char *request_json, const char *response_json, const struct llm_answer *a,
              double latency_s, struct ev_err *err);

const char *cache_provider_name(enum grader_provider p); /* "anthropic", "openai", "none" */

#endif
