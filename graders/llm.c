/*
 * llm — request bodies and answer parsing for the Anthropic Messages and OpenAI Chat
 * Completions APIs (see llm.h).
 */
#include "graders/llm.h"

#include <stdlib.h>
#include <string.h>

#include "base/json.h"

static cJSON *text_block(const char *text, size_t len, int cache) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "text");
    char *t = xmalloc(len + 1);
    memcpy(t, text, len);
    t[len] = 0;
    cJSON_AddStringToObject(b, "text", t);
    free(t);
    if (cache) {
        cJSON *cc = cJSON_AddObjectToObject(b, "cache_control");
        cJSON_AddStringToObject(cc, "type", "ephemeral");
    }
    return b;
}

char *llm_build_body(enum grader_provider p, const char *model, const char *system,
                     const char *prompt, size_t fixed_len, int max_tokens, double temperature,
                     int logprobs) {
    size_t plen = strlen(prompt);
    int    split = fixed_len > 0 && fixed_len < plen; /* a static prefix and a variable rest */
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", model);
    cJSON_AddNumberToObject(root, "max_tokens", max_tokens);
    cJSON_AddNumberToObject(root, "temperature", temperature);
    if (p == GRADER_PROVIDER_ANTHROPIC && system && *system) {
        cJSON *sys = cJSON_AddArrayToObject(root, "system");
        cJSON_AddItemToArray(sys, text_block(system, strlen(system), !split));
    }
    cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
    if (p == GRADER_PROVIDER_OPENAI && system && *system) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "system");
        cJSON_AddStringToObject(m, "content", system);
        cJSON_AddItemToArray(msgs, m);
    }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    if (p == GRADER_PROVIDER_ANTHROPIC && split) {
        cJSON *content = cJSON_AddArrayToObject(m, "content");
        cJSON_AddItemToArray(content, text_block(prompt, fixed_len, 1));
        cJSON_AddItemToArray(content, text_block(prompt + fixed_len, plen - fixed_len, 0));
    } else {
        cJSON_AddStringToObject(m, "content", prompt);
    }
    cJSON_AddItemToArray(msgs, m);
    if (p == GRADER_PROVIDER_OPENAI && logprobs > 0) {
        cJSON_AddBoolToObject(root, "logprobs", 1);
        cJSON_AddNumberToObject(root, "top_logprobs", logprobs);
    }
    char *s = json_print(root);
    json_free(root);
    return s;
}

char *llm_endpoint(enum grader_provider p, const char *base_url) {
    return xasprintf("%s%s", base_url,
                     p == GRADER_PROVIDER_ANTHROPIC ? "/messages" : "/chat/completions");
}

char **llm_headers(enum grader_provider p, const char *key) {
    char **h = xcalloc(4, sizeof *h);
    int    n = 0;
    h[n++] = xstrdup("Content-Type: application/json");
    if (p == GRADER_PROVIDER_ANTHROPIC) {
        h[n++] = xasprintf("x-api-key: %s", key ? key : "");
        h[n++] = xstrdup("anthropic-version: " LLM_ANTHROPIC_VERSION);
    } else {
        h[n++] = xasprintf("Authorization: Bearer %s", key ? key : "");
    }
    return h;
}

void llm_headers_free(char **h) {
    if (!h) return;
    for (char **p = h; *p; p++) {
        /* wipe the key before the memory goes back to the allocator */
        memset(*p, 0, strlen(*p));
        free(*p);
    }
    free(h);
}

void llm_answer_release(struct llm_answer *a) {
    free(a->text);
    free(a->model);
    free(a->logprobs_json);
    free(a->stop_reason);
    memset(a, 0, sizeof *a);
}

static int usage_int(const cJSON *usage, const char *key) {
    const cJSON *v = usage ? cJSON_GetObjectItemCaseSensitive(usage, key) : NULL;
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 2e9 ? (int)v->valuedouble
                                                                            : 0;
}

static char *str_or_empty(const cJSON *obj, const char *key) {
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return xstrdup(cJSON_IsString(v) ? v->valuestring : "");
}

int llm_parse_response(enum grader_provider p, const char *body, size_t len,
                       struct llm_answer *a, struct ev_err *err) {
    memset(a, 0, sizeof *a);
    cJSON *j = NULL;
    int    rc;
    if (json_parse(body, len, "grader response", &j, err) != EV_OK) {
        rc = ev_fail(err, EV_EFAIL, "grader response is not valid JSON (%zu bytes)", len);
        goto out;
    }
    if (!cJSON_IsObject(j)) {
        rc = ev_fail(err, EV_EFAIL, "grader response is not a JSON object");
        goto out;
    }
    struct sbuf text;
    sbuf_init(&text);
    int have_text = 0;
    if (p == GRADER_PROVIDER_ANTHROPIC) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(j, "content");
        const cJSON *block;
        if (!cJSON_IsArray(content)) {
            rc = ev_fail(err, EV_EFAIL, "grader response has no 'content' array");
            goto out;
        }
        cJSON_ArrayForEach(block, content) {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(block, "type");
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(block, "text");
            if (cJSON_IsString(type) && strcmp(type->valuestring, "text") == 0 &&
                cJSON_IsString(t)) {
                sbuf_adds(&text, t->valuestring);
                have_text = 1;
            }
        }
        const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
        a->tokens_cache_read = usage_int(usage, "cache_read_input_tokens");
        a->tokens_cache_write = usage_int(usage, "cache_creation_input_tokens");
        /* input_tokens counts only the tokens after the last cache breakpoint */
        long in = (long)usage_int(usage, "input_tokens") + a->tokens_cache_read +
                  a->tokens_cache_write;
        a->tokens_in = in < 2000000000L ? (int)in : 2000000000;
        a->tokens_out = usage_int(usage, "output_tokens");
        a->stop_reason = str_or_empty(j, "stop_reason");
    } else {
        const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
        const cJSON *c0 = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
        if (!cJSON_IsObject(c0)) {
            rc = ev_fail(err, EV_EFAIL, "grader response has no 'choices'");
            goto out;
        }
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(c0, "message");
        const cJSON *t = msg ? cJSON_GetObjectItemCaseSensitive(msg, "content") : NULL;
        if (cJSON_IsString(t)) {
            sbuf_adds(&text, t->valuestring);
            have_text = 1;
        }
        const cJSON *lp = cJSON_GetObjectItemCaseSensitive(c0, "logprobs");
        if (lp && !cJSON_IsNull(lp)) a->logprobs_json = json_print(lp);
        const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
        a->tokens_in = usage_int(usage, "prompt_tokens");
        a->tokens_out = usage_int(usage, "completion_tokens");
        const cJSON *details =
            usage ? cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details") : NULL;
        a->tokens_cache_read = usage_int(cJSON_IsObject(details) ? details : NULL, "cached_tokens");
        if (a->tokens_cache_read > a->tokens_in) a->tokens_cache_read = a->tokens_in;
        a->stop_reason = str_or_empty(c0, "finish_reason");
    }
    if (!have_text) {
        sbuf_release(&text);
        rc = ev_fail(err, EV_EFAIL, "grader response holds no text answer");
        goto out;
    }
    a->text = sbuf_detach(&text);
    a->model = str_or_empty(j, "model");
    rc = EV_OK;
out:
    json_free(j);
    if (rc != EV_OK) llm_answer_release(a);
    return rc;
}

char *llm_error_message(const char *body, size_t len) {
    cJSON        *j = NULL;
    struct ev_err e;
    char         *msg = NULL;
    if (!body || len == 0 || json_parse(body, len, "error", &j, &e) != EV_OK) return NULL;
    const cJSON *er = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *m = NULL;
    if (cJSON_IsObject(er)) m = cJSON_GetObjectItemCaseSensitive(er, "message");
    else if (cJSON_IsString(er)) m = er;
    if (!m) m = cJSON_GetObjectItemCaseSensitive(j, "message");
    if (cJSON_IsString(m) && m->valuestring[0]) {
        size_t n = strlen(m->valuestring);
        if (n > 200) n = 200;
        msg = xmalloc(n + 1);
        for (size_t i = 0; i < n; i++) {
            char c = m->valuestring[i];
            msg[i] = (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
        }
        msg[n] = 0;
    }
    json_free(j);
    return msg;
}
