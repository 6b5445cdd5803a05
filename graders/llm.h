/*
 * llm — the wire formats of the two grader APIs: request bodies, endpoints and headers for
 * the Anthropic Messages API and the OpenAI-compatible Chat Completions API, and reading
 * their answers (text, reported model, token usage, logprobs) and error bodies. Pure
 * functions over strings; the batch engine is grader.c.
 *
 * Included by: graders, evals and harness/cli.
 *
 * Ownership: every char * returned is new and freed by the caller with free();
 * llm_headers() results are freed with llm_headers_free(). Header arrays hold the API key:
 * they are passed to http_start() and freed, and never printed or stored.
 */
#ifndef EV_LLM_H
#define EV_LLM_H

#include <stddef.h>

#include "graders/grader.h"

#define LLM_ANTHROPIC_VERSION "2023-06-01"

/* The request body (compact JSON). system may be NULL; logprobs > 0 asks an OpenAI-compatible
 * server for top_logprobs (ignored for Anthropic, which has none).
 *
 * Prompt caching: the first fixed_len bytes of prompt are the part every request of its
 * template shares (0: none known). Both APIs get the static text first (system, then that
 * prefix), which is all OpenAI's automatic prefix caching needs. For Anthropic the end of the
 * static part is marked with "cache_control": {"type": "ephemeral"}: system is sent as one text
 * block, and when 0 < fixed_len < strlen(prompt) the user content as two text blocks, the
 * fixed prefix (marked) and the rest; otherwise the system block is the one marked. */
char *llm_build_body(enum grader_provider p, const char *model, const char *system,
                     const char *prompt, size_t fixed_len, int max_tokens, double temperature,
                     int logprobs);
/* base_url + "/messages" or "/chat/completions". */
char *llm_endpoint(enum grader_provider p, const char *base_url);
/* NULL-terminated "Name: value" headers carrying the key. */
char **llm_headers(enum grader_provider p, const char *key);
void   llm_headers_free(char **h);

struct llm_answer {
    char *text;          /* the answer: all text blocks joined */
    char *model;         /* as the server reports it ("" when absent) */
    char *logprobs_json; /* OpenAI choices[0].logprobs as JSON, or NULL */
    char *stop_reason;   /* "end_turn", "stop", "max_tokens", "length" ... or "" */
    /* tokens_in is every input token, cached or not (Anthropic: input_tokens +
     * cache_creation_input_tokens + cache_read_input_tokens; OpenAI: prompt_tokens);
     * tokens_cache_read of them came from the provider's prompt cache (Anthropic
     * cache_read_input_tokens, OpenAI prompt_tokens_details.cached_tokens), tokens_cache_write
     * were written to it (Anthropic cache_creation_input_tokens; OpenAI has none) */
    int   tokens_in, tokens_out, tokens_cache_read, tokens_cache_write;
};
/* Reads a 200 response body. EV_EFAIL with a message saying what is wrong (not JSON, no
 * text content, ...) when it is not a readable answer. Release with llm_answer_release(). */
int  llm_parse_response(enum grader_provider p, const char *body, size_t len,
                        struct llm_answer *a, struct ev_err *err);
void llm_answer_release(struct llm_answer *a);

/* The server's error message from an error body ({"error": {"message": ...}} for both APIs),
 * cut to one line of at most 200 bytes; NULL when there is none. */
char *llm_error_message(const char *body, size_t len);

#endif
