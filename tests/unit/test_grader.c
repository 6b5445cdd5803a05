/* Unit tests for the grader: score parsing (table-driven), the wire formats of both APIs,
 * the cache key, configuration, and the batch engine over real HTTP against the local mock
 * API server (answers, cache, retries and back-off, no retry on 4xx, 401, concurrency, rpm,
 * incremental delivery, re-asking, keys never in the database, preflight, SIGINT). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "graders/cache.h"
#include "graders/grader.h"
#include "base/json.h"
#include "graders/llm.h"
#include "mock_server.h"
#include "graders/parse.h"
#include "store/store.h"

#define KEY "sk-test-SECRET-0123456789abcdef"

// --- parsing -----------------------------------------------------------------------------

static void test_parse_score(void **state) {
    (void)state;
    static const struct { const char *answer; int want; } cases[] = {
        /* want -1: unparsed */
        {"Score: 3", 3},
        {"score:2", 2},
        {"The marked token is a city name.\n\nScore: 2\n", 2},
        {"**Score:** 1", 1},
        {"Final score = 0", 0},
        {"Rating: 3/3", 3},
        {"- Score: 2 (loosely related)", 2},
        {"2", 2},
        {"  **3**  ", 3},
        {"Reasoning about it.\n1.", 1},
        {"Score: 2\nScore: 2", 2},          /* agreeing labels are fine */
        {"Score: 1\nFinal score: 3", -1},   /* two different scores: ambiguous */
        {"Score: 4", -1},                    /* out of range */
        {"Score: 3.5", -1},
        {"Score: -1", -1},
        {"I think it is a 2 or maybe a 3.", -1},
        {"The answer is 2", -1},
        {"", -1},
        {"Score: N", -1},
        {"12", -1},
        {"0 – irrelevant\n1 – related\n2 – loose\n3 – clean", -1},
        /* answers off the network may hold invalid UTF-8: still read (rx RX_INVALID_UTF) */
        {"caf\xe9 \xff\xfe bytes\nScore: 2", 2},
        {"\xc3(\nScore: 1\n\x80", 1},
        /* ASCII classes (RX_ASCII_CLASSES): a no-break space is not white space here */
        {"2\xc2\xa0", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int               s = -7;
        enum parse_status st = parse_score(cases[i].answer, 0, 3, &s);
        if (cases[i].want < 0) {
            if (st != PARSE_UNPARSED) fail_msg("case %zu '%s' parsed as %d", i, cases[i].answer, s);
            assert_int_equal(s, -7); /* untouched: never a 0 */
        } else {
            if (st != PARSE_OK) fail_msg("case %zu '%s' unparsed", i, cases[i].answer);
            assert_int_equal(s, cases[i].want);
        }
    }
    assert_int_equal(parse_score(NULL, 0, 3, &(int){0}), PARSE_UNPARSED);
    assert_string_equal(parse_status_name(PARSE_OK), "ok");
    assert_string_equal(parse_status_name(PARSE_UNPARSED), "unparsed");
}

static void test_parse_labeled_yes_no(void **state) {
    (void)state;
    int v = -1;
    const char *a = "The steered text talks about bridges.\nConcept: 3\nFluency: 2";
    assert_int_equal(parse_labeled_score(a, "Concept", 0, 3, &v), PARSE_OK);
    assert_int_equal(v, 3);
    assert_int_equal(parse_labeled_score(a, "Fluency", 0, 3, &v), PARSE_OK);
    assert_int_equal(v, 2);
    assert_int_equal(parse_labeled_score("Concept: 5", "Concept", 0, 3, &v), PARSE_UNPARSED);
    assert_int_equal(parse_labeled_score("3", "Concept", 0, 3, &v), PARSE_UNPARSED);

    static const struct { const char *answer; int want; } yn[] = {
        {"Answer: yes", 1}, {"answer: No.", 0}, {"Yes", 1}, {"**no**", 0},
        {"It is covered.\nYES!", 1}, {"Answer: yes\nAnswer: no", -1}, {"maybe", -1},
        {"Yes and no", -1}, {"", -1},
    };
    for (size_t i = 0; i < sizeof yn / sizeof yn[0]; i++) {
        int y = -1;
        enum parse_status st = parse_yes_no(yn[i].answer, &y);
        if (yn[i].want < 0) assert_int_equal(st, PARSE_UNPARSED);
        else {
            if (st != PARSE_OK) fail_msg("yes/no case %zu '%s' unparsed", i, yn[i].answer);
            assert_int_equal(y, yn[i].want);
        }
    }
}

static void test_parse_lists(void **state) {
    (void)state;
    int *v = NULL, n = -1;
    assert_int_equal(parse_int_list("Predictions: [1, 0, 0, 1, 0]", 5, 0, 1, &v, &n), PARSE_OK);
    assert_int_equal(n, 5);
    int want[] = {1, 0, 0, 1, 0};
    assert_memory_equal(v, want, sizeof want);
    free(v);
    /* the last list wins; wrong length or range is unparsed */
    assert_int_equal(parse_int_list("e.g. [0,0]\nfinal: [1,1,0]", 3, 0, 1, &v, &n), PARSE_OK);
    assert_int_equal(n, 3);
    assert_int_equal(v[0], 1);
    free(v);
    assert_int_equal(parse_int_list("[1, 0]", 5, 0, 1, &v, &n), PARSE_UNPARSED);
    assert_null(v);
    assert_int_equal(parse_int_list("[1, 2]", 0, 0, 1, &v, &n), PARSE_UNPARSED);
    assert_int_equal(parse_int_list("no list", 0, 0, 1, &v, &n), PARSE_UNPARSED);

    assert_int_equal(parse_window_numbers("2, 5", 10, &v, &n), PARSE_OK);
    assert_int_equal(n, 2);
    assert_int_equal(v[0], 2);
    assert_int_equal(v[1], 5);
    free(v);
    assert_int_equal(parse_window_numbers("Thinking...\nAnswer: 1, 3 and 4", 5, &v, &n), PARSE_OK);
    assert_int_equal(n, 3);
    assert_int_equal(v[2], 4);
    free(v);
    assert_int_equal(parse_window_numbers("None", 5, &v, &n), PARSE_OK);
    assert_int_equal(n, 0);
    assert_null(v);
    assert_int_equal(parse_window_numbers("3, 3, 1", 5, &v, &n), PARSE_OK); /* deduplicated */
    assert_int_equal(n, 2);
    free(v);
    assert_int_equal(parse_window_numbers("2, 9", 5, &v, &n), PARSE_UNPARSED); /* out of 1..5 */
    assert_int_equal(parse_window_numbers("windows 2 and something", 5, &v, &n), PARSE_UNPARSED);
    assert_int_equal(parse_window_numbers("0", 5, &v, &n), PARSE_UNPARSED);

    char *d = NULL;
    assert_int_equal(parse_description("Looking at them...\nDescription: \"the word 'bridge'\"",
                                       400, &d), PARSE_OK);
    assert_string_equal(d, "the word 'bridge'");
    free(d);
    assert_int_equal(parse_description("**Golden Gate Bridge mentions**", 400, &d), PARSE_OK);
    assert_string_equal(d, "Golden Gate Bridge mentions");
    free(d);
    assert_int_equal(parse_description("  \n ", 400, &d), PARSE_UNPARSED);
    assert_int_equal(parse_description("Description: abcdefghij", 5, &d), PARSE_UNPARSED);
    /* issue 17.6: an explainer answer that is only a score is no description */
    static const char *const scores[] = {"2", "Score: 3", "Description: 3/3", "0.5", "score=1"};
    for (size_t i = 0; i < sizeof scores / sizeof scores[0]; i++) {
        assert_int_equal(parse_description(scores[i], 400, &d), PARSE_UNPARSED);
        assert_null(d);
    }
    assert_int_equal(parse_description("Description: 3 little pigs", 400, &d), PARSE_OK);
    free(d);
}

// --- wire formats ------------------------------------------------------------------------

static void test_build_body(void **state) {
    (void)state;
    cJSON        *j = NULL;
    struct ev_err e;
    char *b = llm_build_body(GRADER_PROVIDER_ANTHROPIC, "claude-x", "be terse", "Say \"hi\"\n", 0,
                             64, 0, 3);
    assert_int_equal(json_parse(b, strlen(b), "body", &j, &e), EV_OK);
    assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, "claude-x");
    assert_int_equal(cJSON_GetObjectItem(j, "max_tokens")->valueint, 64);
    assert_true(cJSON_GetObjectItem(j, "temperature")->valuedouble == 0);
    /* system: one text block, marked for the prompt cache (no static user prefix given) */
    cJSON *sys = cJSON_GetObjectItem(j, "system");
    assert_int_equal(cJSON_GetArraySize(sys), 1);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(sys, 0), "type")->valuestring, "text");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(sys, 0), "text")->valuestring,
                        "be terse");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(sys, 0),
                                                                "cache_control"),
                                            "type")->valuestring,
                        "ephemeral");
    cJSON *msgs = cJSON_GetObjectItem(j, "messages");
    assert_int_equal(cJSON_GetArraySize(msgs), 1);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "role")->valuestring, "user");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "content")->valuestring,
                        "Say \"hi\"\n");
    assert_null(cJSON_GetObjectItem(j, "logprobs")); /* Anthropic has none */
    json_free(j);
    free(b);

    /* a static prefix of the user message (Anthropic): two blocks, the prefix marked, the
     * system block then unmarked (the one breakpoint covers it) */
    b = llm_build_body(GRADER_PROVIDER_ANTHROPIC, "claude-x", "be terse", "Rubric: 0-3.\nText: abc",
                       13, 64, 0, 0);
    assert_int_equal(json_parse(b, strlen(b), "body", &j, &e), EV_OK);
    sys = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "system"), 0);
    assert_null(cJSON_GetObjectItem(sys, "cache_control"));
    cJSON *content = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "messages"), 0),
                                         "content");
    assert_int_equal(cJSON_GetArraySize(content), 2);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(content, 0), "text")->valuestring,
                        "Rubric: 0-3.\n");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(content, 0),
                                                                "cache_control"),
                                            "type")->valuestring,
                        "ephemeral");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(content, 1), "text")->valuestring,
                        "Text: abc");
    assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(content, 1), "cache_control"));
    json_free(j);
    free(b);
    /* a prefix that is the whole prompt: nothing variable to split off, one string */
    b = llm_build_body(GRADER_PROVIDER_ANTHROPIC, "claude-x", NULL, "all static", 10, 64, 0, 0);
    assert_int_equal(json_parse(b, strlen(b), "body", &j, &e), EV_OK);
    assert_null(cJSON_GetObjectItem(j, "system"));
    assert_true(cJSON_IsString(cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(j, "messages"), 0), "content")));
    json_free(j);
    free(b);

    /* OpenAI: no markup (its prefix caching is automatic), static text first all the same */
    b = llm_build_body(GRADER_PROVIDER_OPENAI, "gpt-x", "be terse", "q", 1, 10, 0.5, 2);
    assert_int_equal(json_parse(b, strlen(b), "body", &j, &e), EV_OK);
    assert_null(cJSON_GetObjectItem(j, "system"));
    msgs = cJSON_GetObjectItem(j, "messages");
    assert_int_equal(cJSON_GetArraySize(msgs), 2);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "role")->valuestring, "system");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "logprobs")));
    assert_int_equal(cJSON_GetObjectItem(j, "top_logprobs")->valueint, 2);
    assert_true(cJSON_GetObjectItem(j, "temperature")->valuedouble == 0.5);
    assert_null(strstr(b, "cache_control"));
    assert_true(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "content")));
    json_free(j);
    free(b);

    char *u = llm_endpoint(GRADER_PROVIDER_ANTHROPIC, "http://h/v1");
    assert_string_equal(u, "http://h/v1/messages");
    free(u);
    u = llm_endpoint(GRADER_PROVIDER_OPENAI, "http://h/v1");
    assert_string_equal(u, "http://h/v1/chat/completions");
    free(u);
    char **h = llm_headers(GRADER_PROVIDER_ANTHROPIC, "k1");
    assert_string_equal(h[1], "x-api-key: k1");
    assert_string_equal(h[2], "anthropic-version: " LLM_ANTHROPIC_VERSION);
    assert_null(h[3]);
    llm_headers_free(h);
    h = llm_headers(GRADER_PROVIDER_OPENAI, "k2");
    assert_string_equal(h[1], "Authorization: Bearer k2");
    llm_headers_free(h);
}

static void test_parse_response(void **state) {
    (void)state;
    struct llm_answer a;
    struct ev_err     e;
    const char *anth = "{\"model\":\"claude-x\",\"content\":[{\"type\":\"text\",\"text\":\"Score: \"},"
                       "{\"type\":\"tool_use\",\"id\":\"t\"},{\"type\":\"text\",\"text\":\"2\"}],"
                       "\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":12,\"output_tokens\":3}}";
    assert_int_equal(llm_parse_response(GRADER_PROVIDER_ANTHROPIC, anth, strlen(anth), &a, &e), EV_OK);
    assert_string_equal(a.text, "Score: 2");
    assert_string_equal(a.model, "claude-x");
    assert_string_equal(a.stop_reason, "end_turn");
    assert_int_equal(a.tokens_in, 12);
    assert_int_equal(a.tokens_out, 3);
    assert_null(a.logprobs_json);
    llm_answer_release(&a);

    const char *oai = "{\"model\":\"gpt-x\",\"choices\":[{\"message\":{\"role\":\"assistant\","
                      "\"content\":\"Score: 1\"},\"finish_reason\":\"stop\",\"logprobs\":{\"content\":"
                      "[{\"token\":\"Score\",\"logprob\":-0.1}]}}],\"usage\":{\"prompt_tokens\":7,"
                      "\"completion_tokens\":4}}";
    assert_int_equal(llm_parse_response(GRADER_PROVIDER_OPENAI, oai, strlen(oai), &a, &e), EV_OK);
    assert_string_equal(a.text, "Score: 1");
    assert_int_equal(a.tokens_in, 7);
    assert_int_equal(a.tokens_out, 4);
    assert_int_equal(a.tokens_cache_read, 0);
    assert_non_null(a.logprobs_json);
    assert_non_null(strstr(a.logprobs_json, "-0.1"));
    llm_answer_release(&a);

    /* prompt-cache usage: Anthropic's input_tokens counts only what follows the last cache
     * breakpoint, so tokens_in is the sum of the three; OpenAI's prompt_tokens includes its
     * cached_tokens */
    const char *anth_c = "{\"content\":[{\"type\":\"text\",\"text\":\"2\"}],\"usage\":"
                         "{\"input_tokens\":20,\"cache_creation_input_tokens\":300,"
                         "\"cache_read_input_tokens\":0,\"output_tokens\":2}}";
    assert_int_equal(llm_parse_response(GRADER_PROVIDER_ANTHROPIC, anth_c, strlen(anth_c), &a, &e),
                     EV_OK);
    assert_int_equal(a.tokens_in, 320);
    assert_int_equal(a.tokens_cache_write, 300);
    assert_int_equal(a.tokens_cache_read, 0);
    llm_answer_release(&a);
    const char *oai_c = "{\"choices\":[{\"message\":{\"content\":\"1\"}}],\"usage\":"
                        "{\"prompt_tokens\":1500,\"completion_tokens\":1,"
                        "\"prompt_tokens_details\":{\"cached_tokens\":1280}}}";
    assert_int_equal(llm_parse_response(GRADER_PROVIDER_OPENAI, oai_c, strlen(oai_c), &a, &e), EV_OK);
    assert_int_equal(a.tokens_in, 1500);
    assert_int_equal(a.tokens_cache_read, 1280);
    assert_int_equal(a.tokens_cache_write, 0);
    llm_answer_release(&a);

    static const struct { enum grader_provider p; const char *body; const char *msg; } bad[] = {
        {GRADER_PROVIDER_ANTHROPIC, "<html>", "not valid JSON"},
        {GRADER_PROVIDER_ANTHROPIC, "{\"content\":[{\"type\":\"te", "not valid JSON"},
        {GRADER_PROVIDER_ANTHROPIC, "{\"content\":[]}", "no text"},
        {GRADER_PROVIDER_ANTHROPIC, "{\"type\":\"error\"}", "content"},
        {GRADER_PROVIDER_OPENAI, "{\"choices\":[]}", "choices"},
        {GRADER_PROVIDER_OPENAI, "{\"choices\":[{\"message\":{\"content\":null}}]}", "no text"},
        {GRADER_PROVIDER_OPENAI, "[1,2]", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(llm_parse_response(bad[i].p, bad[i].body, strlen(bad[i].body), &a, &e),
                         EV_EFAIL);
        if (!strstr(e.msg, bad[i].msg)) fail_msg("case %zu: '%s' lacks '%s'", i, e.msg, bad[i].msg);
        assert_null(a.text);
    }
    const char *eb = "{\"type\":\"error\",\"error\":{\"type\":\"x\",\"message\":\"model: foo\\nbar\"}}";
    char       *m = llm_error_message(eb, strlen(eb));
    assert_non_null(m);
    assert_string_equal(m, "model: foo bar");
    free(m);
    assert_null(llm_error_message("not json", 8));
}

static void test_cache_key(void **state) {
    (void)state;
    struct cache_params base = {GRADER_PROVIDER_ANTHROPIC, "http://h/v1", "m", "sys", "prompt",
                                512, 0, 0, 0.0, NULL, 0};
    char k0[65], k[65];
    cache_key(&base, k0);
    assert_int_equal(strlen(k0), 64);
    cache_key(&base, k);
    assert_string_equal(k0, k); /* deterministic */
    struct cache_params v[11];
    for (int i = 0; i < 11; i++) v[i] = base;
    v[0].provider = GRADER_PROVIDER_OPENAI;
    v[1].base_url = "http://h2/v1";
    v[2].model = "m2";
    v[3].system = NULL; /* no system differs from "sys" */
    v[4].prompt = "prompt ";
    v[5].max_tokens = 511;
    v[6].logprobs = 1;
    v[7].attempt = 1;
    v[8].temperature = 1e-9;
    /* moving text from one field to the next must change the key (length-prefixed fields) */
    v[9].system = "sy";
    v[9].prompt = "sprompt";
    v[10].params = "[[\"seed\",7]]"; /* --grader-param overrides */
    for (int i = 0; i < 11; i++) {
        cache_key(&v[i], k);
        if (strcmp(k, k0) == 0) fail_msg("variant %d has the same key", i);
    }
    /* no overrides ("") is the key made before --grader-param existed */
    v[0] = base;
    v[0].params = "";
    cache_key(&v[0], k);
    assert_string_equal(k, k0);
}

static void test_config(void **state) {
    (void)state;
    struct grader_config c = grader_default_config();
    struct ev_err        e;
    assert_true(c.temperature == 0);
    assert_int_equal(grader_config_set_spec(&c, "anthropic", &e), EV_OK);
    assert_int_equal(c.provider, GRADER_PROVIDER_ANTHROPIC);
    assert_string_equal(c.base_url, "https://api.anthropic.com/v1");
    assert_true(strlen(c.model) > 0);
    assert_int_equal(grader_config_set_spec(&c, "openai:llama3:8b", &e), EV_OK);
    assert_int_equal(c.provider, GRADER_PROVIDER_OPENAI);
    assert_string_equal(c.model, "llama3:8b"); /* Ollama names have colons */
    assert_string_equal(c.base_url, "https://api.openai.com/v1");
    assert_int_equal(grader_config_set_spec(&c, "gemini:x", &e), EV_EUSAGE);
    assert_non_null(strstr(e.msg, "--grader"));
    assert_int_equal(grader_config_set_spec(&c, "openai:", &e), EV_EUSAGE);

    static const struct { const char *in, *out; } urls[] = {
        {"http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"},
        {"http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/v1"},
        {"http://127.0.0.1:8080", "http://127.0.0.1:8080/v1"},
        {"http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1"},
        {"https://openrouter.ai/api/v1", "https://openrouter.ai/api/v1"},
        {"http://localhost:11434/v1", "http://localhost:11434/v1"},
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        assert_int_equal(grader_config_set_url(&c, urls[i].in, &e), EV_OK);
        assert_string_equal(c.base_url, urls[i].out);
    }
    assert_int_equal(grader_config_set_url(&c, "ftp://x/v1", &e), EV_EUSAGE);
    assert_int_equal(grader_config_set_url(&c, "127.0.0.1:8080", &e), EV_EUSAGE);
    assert_int_equal(grader_config_set_url(&c, "http://", &e), EV_EUSAGE);

    struct grader_flags f;
    grader_flags_init(&f);
    unsetenv("EVALRUN_GRADER");
    unsetenv("EVALRUN_GRADER_URL");
    assert_false(grader_flags_configured(&f));
    assert_non_null(strstr(grader_not_configured_message(), "--grader"));
    assert_int_equal(grader_config_from_flags(&f, 1, &c, &e), EV_EUSAGE);
    setenv("EVALRUN_GRADER", "openai:m1", 1);
    setenv("EVALRUN_GRADER_URL", "http://127.0.0.1:9", 1);
    assert_true(grader_flags_configured(&f));
    f.rpm = 120;
    f.concurrency = 3;
    assert_int_equal(grader_config_from_flags(&f, 4, &c, &e), EV_OK);
    assert_string_equal(c.model, "m1");
    assert_string_equal(c.base_url, "http://127.0.0.1:9/v1");
    assert_int_equal(c.n_shards, 4);
    assert_int_equal(c.concurrency, 3);
    f.grader = "anthropic:m2"; /* the flag wins over the environment */
    assert_int_equal(grader_config_from_flags(&f, 1, &c, &e), EV_OK);
    assert_int_equal(c.provider, GRADER_PROVIDER_ANTHROPIC);
    f.concurrency = 0;
    assert_int_equal(grader_config_from_flags(&f, 1, &c, &e), EV_EUSAGE);
    assert_non_null(strstr(e.msg, "--concurrency"));
    f.concurrency = -1; /* a typed -1 is out of range, not "the default" */
    assert_int_equal(grader_config_from_flags(&f, 1, &c, &e), EV_EUSAGE);
    assert_non_null(strstr(e.msg, "--concurrency must be between 1 and 1024, got -1"));
    f.concurrency = GRADER_FLAG_UNSET;
    f.timeout = -1;
    assert_int_equal(grader_config_from_flags(&f, 1, &c, &e), EV_EUSAGE);
    assert_non_null(strstr(e.msg, "--timeout"));
    f.timeout = GRADER_FLAG_UNSET_D;
    f.max_retries = 0; /* no retries: legitimate */
    assert_int_equal(grader_config_from_flags(&f, 1, &c, &e), EV_OK);
    assert_int_equal(c.max_retries, 0);
    f.max_retries = -1;
    assert_int_equal(grader_config_from_flags(&f, 1, &c, &e), EV_EUSAGE);
    assert_non_null(strstr(e.msg, "--max-retries"));
    f.max_retries = GRADER_FLAG_UNSET;
    f.price_in = -5;
    assert_int_equal(grader_config_from_flags(&f, 1, &c, &e), EV_EUSAGE);
    assert_non_null(strstr(e.msg, "--price-in"));
    unsetenv("EVALRUN_GRADER");
    unsetenv("EVALRUN_GRADER_URL");
    /* no key: a one-line error naming the variable, before anything is sent */
    unsetenv("ANTHROPIC_API_KEY");
    struct grader *g = NULL;
    c = grader_default_config();
    grader_config_set_spec(&c, "anthropic:m", &e);
    assert_int_equal(grader_new(&c, NULL, &g, &e), EV_EFAIL);
    assert_null(g);
    assert_non_null(strstr(e.msg, "ANTHROPIC_API_KEY is not set"));
    assert_null(strchr(e.msg, '\n'));
}

// --- the batch engine over HTTP ----------------------------------------------------------

struct fixture {
    struct mock   m;
    struct store *st;
    char          dbpath[300];
};

static int setup(void **state) {
    struct fixture *f = xcalloc(1, sizeof *f);
    if (mock_start(&f->m, "{}") != 0) {
        free(f);
        return -1;
    }
    snprintf(f->dbpath, sizeof f->dbpath, "%s/test.db", f->m.dir);
    struct ev_err e;
    if (store_open(f->dbpath, STORE_CREATE, &f->st, &e) != EV_OK) {
        print_error("%s\n", e.msg);
        return -1;
    }
    setenv("ANTHROPIC_API_KEY", KEY, 1);
    setenv("OPENAI_API_KEY", KEY, 1);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    store_close(f->st);
    char *p;
    static const char *const suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        p = xasprintf("%s%s", f->dbpath, suffix[i]);
        unlink(p);
        free(p);
    }
    mock_stop(&f->m);
    free(f);
    return 0;
}

static struct grader_config test_config_for(const struct fixture *f, const char *spec) {
    struct grader_config c = grader_default_config();
    struct ev_err        e;
    grader_config_set_spec(&c, spec, &e);
    grader_config_set_url(&c, f->m.url, &e);
    c.backoff_base_s = 0.05;
    c.backoff_cap_s = 5;
    c.timeout_s = 10;
    return c;
}

struct got {
    int                  n;
    int                  seen[512];
    enum grader_status   status[512];
    int                  http_status[512], from_cache[512], tries[512], attempt[512];
    int                  tokens_in[512];
    char                 text[512][64];
    char                 error[512][200];
    int                  has_logprobs[512];
    int                  order[512]; /* the 0-based position of each delivery */
    /* for the incremental-delivery test */
    const char          *dbpath;
    int                  committed_seen;
    int                  raise_after;
};

static int got_cb(void *ud, int i, const struct grader_result *r, struct ev_err *err) {
    (void)err;
    struct got *g = ud;
    g->seen[i]++;
    g->status[i] = r->status;
    g->http_status[i] = r->http_status;
    g->from_cache[i] = r->from_cache;
    g->tries[i] = r->tries;
    g->attempt[i] = r->attempt;
    g->tokens_in[i] = r->tokens_in;
    g->has_logprobs[i] = r->logprobs_json != NULL;
    snprintf(g->text[i], sizeof g->text[i], "%s", r->text);
    snprintf(g->error[i], sizeof g->error[i], "%s", r->error);
    g->order[i] = g->n;
    g->n++;
    if (g->dbpath && r->status == GRADER_OK) {
        /* another connection sees the cache row already: it is committed */
        struct store      *s2 = NULL;
        struct store_stmt *q = NULL;
        struct ev_err      e;
        if (store_open(g->dbpath, STORE_READONLY, &s2, &e) == EV_OK &&
            store_prepare(s2, "SELECT count(*) FROM grader_cache WHERE key = ?1", &q, &e) == EV_OK) {
            store_bind_text(q, 1, r->cache_key);
            if (store_step(q, &e) == STORE_ROW && store_col_int(q, 0) == 1) g->committed_seen++;
        }
        store_finalize(q);
        store_close(s2);
    }
    if (g->raise_after > 0 && g->n == g->raise_after) raise(SIGINT);
    return 0;
}

/* n requests "item I" (I = 0..n-1); prompts are kept in bufs (caller frees). */
static struct grader_request *make_reqs(int n, char ***bufs) {
    struct grader_request *r = xcalloc((size_t)n, sizeof *r);
    *bufs = xcalloc((size_t)n, sizeof **bufs);
    for (int i = 0; i < n; i++) {
        (*bufs)[i] = xasprintf("Grade item %d please", i);
        r[i].prompt = (*bufs)[i];
        r[i].system = "sys";
    }
    return r;
}

static void free_reqs(struct grader_request *r, char **bufs, int n) {
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(r);
}

/* AIMD (issue 19.3): a burst of 429s sent together cuts the in-flight limit once (8 -> 4), a
 * later 429 to a request sent after the cut cuts again (4 -> 2), never below 1, and every
 * `limit` successes add 1 back up to --concurrency; every request is answered exactly once. */
static void test_aimd(void **state) {
    struct fixture *f = *state;
    struct ev_err   e;
    static const struct {
        int conc, fail, n, cuts, lowest, last;
    } cases[] = {
        {8, 8, 40, 1, 4, 8},  /* the first 8 together: one cut; 4+5+6+7 = 22 successes back */
        {8, 12, 60, 2, 2, 8}, /* then 4 more sent under limit 4: a second cut */
        {2, 6, 10, 1, 1, 2},  /* 2 -> 1, and never below 1 however many 429s follow */
        {8, 8, 12, 1, 4, 6},  /* 12 successes: 4 -> 5 (4), -> 6 (5), 3 short of a window */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char **bufs;
        int    n = cases[k].n;
        struct grader_request *reqs = make_reqs(n, &bufs);
        struct grader_config   c = test_config_for(f, "openai:m");
        struct grader         *g = NULL;
        struct got            *got = xcalloc(1, sizeof *got);
        char                   script[256];
        c.concurrency = cases[k].conc;
        c.no_cache = 1;
        snprintf(script, sizeof script,
                 "{\"answer\": \"Score: 1\", \"latency_ms\": 40, \"fail_first\": %d, "
                 "\"fail\": {\"status\": 429, \"retry_after\": \"0.1\"}}",
                 cases[k].fail);
        mock_script(&f->m, script);
        assert_int_equal(grader_new(&c, NULL, &g, &e), EV_OK);
        int brc = grader_run_batch(g, reqs, n, NULL, got_cb, got, &e);
        if (brc != EV_OK) fail_msg("case %zu: %s", k, e.msg);
        assert_int_equal(got->n, n);
        for (int i = 0; i < n; i++) {
            assert_int_equal(got->seen[i], 1);
            assert_int_equal(got->status[i], GRADER_OK);
        }
        const struct grader_stats *st = grader_stats(g);
        if (st->limit_cuts != cases[k].cuts || st->limit_min != cases[k].lowest ||
            st->limit_now != cases[k].last)
            fail_msg("case %zu: %ld cuts, lowest %d, now %d; expected %d, %d, %d", k,
                     st->limit_cuts, st->limit_min, st->limit_now, cases[k].cuts,
                     cases[k].lowest, cases[k].last);
        assert_int_equal(st->requests, n + cases[k].fail);
        grader_free(g);
        free(got);
        free_reqs(reqs, bufs, n);
    }
}

static void test_batch_answers_and_cache(void **state) {
    struct fixture *f = *state;
    struct ev_err   e;
    /* answers computed from the prompt: "item I" gets "Score: D" where D is I's last digit
     * when it is 0..3, else "Score: 0"; only the right key is accepted */
    static const char script[] =
        "{\"rules\": [{\"match\": \"item \\\\d*([0-3])\\\\b\", \"answer\": \"Score: \\\\1\"}, "
        "{\"match\": \"item\", \"answer\": \"Score: 0\"}], \"api_key\": \"" KEY "\"}";
    const char *specs[] = {"anthropic:m", "openai:m"};
    for (int s = 0; s < 2; s++) {
        int    n = 40;
        char **bufs;
        struct grader_request *reqs = make_reqs(n, &bufs);
        struct grader_config   c = test_config_for(f, specs[s]);
        struct grader         *g = NULL;
        struct got            *got = xcalloc(1, sizeof *got);
        mock_script(&f->m, script);
        assert_int_equal(grader_new(&c, f->st, &g, &e), EV_OK);
        assert_int_equal(grader_run_batch(g, reqs, n, NULL, got_cb, got, &e), EV_OK);
        assert_int_equal(got->n, n);
        assert_int_equal(mock_count(&f->m), n);
        for (int i = 0; i < n; i++) {
            assert_int_equal(got->seen[i], 1);
            assert_int_equal(got->status[i], GRADER_OK);
            int  last = i % 10, want = last <= 3 ? last : 0;
            char w[32];
            snprintf(w, sizeof w, "Score: %d", want);
            assert_string_equal(got->text[i], w);
            assert_int_equal(got->from_cache[i], 0);
            assert_int_equal(got->tries[i], 1);
            assert_true(got->tokens_in[i] > 0);
        }
        const struct grader_stats *st = grader_stats(g);
        assert_int_equal(st->items, n);
        assert_int_equal(st->requests, n);
        assert_true(st->tokens_in > 0 && st->tokens_out == 2 * n);
        grader_free(g);

        /* rerun: zero requests, the same answers */
        memset(got, 0, sizeof *got);
        mock_script(&f->m, "{\"answer\": \"Score: 3\"}"); /* would differ if asked */
        assert_int_equal(grader_new(&c, f->st, &g, &e), EV_OK);
        assert_int_equal(grader_run_batch(g, reqs, n, NULL, got_cb, got, &e), EV_OK);
        assert_int_equal(mock_count(&f->m), 0);
        for (int i = 0; i < n; i++) {
            int  last = i % 10, want = last <= 3 ? last : 0;
            char w[32];
            snprintf(w, sizeof w, "Score: %d", want);
            assert_string_equal(got->text[i], w);
            assert_int_equal(got->from_cache[i], 1);
            assert_int_equal(got->tries[i], 0);
        }
        assert_int_equal(grader_stats(g)->from_cache, n);
        assert_int_equal(grader_stats(g)->requests, 0);
        grader_free(g);

        /* --no-cache asks again */
        c.no_cache = 1;
        memset(got, 0, sizeof *got);
        assert_int_equal(grader_new(&c, f->st, &g, &e), EV_OK);
        assert_int_equal(grader_run_batch(g, reqs, 5, NULL, got_cb, got, &e), EV_OK);
        assert_int_equal(mock_count(&f->m), 5);
        assert_string_equal(got->text[0], "Score: 3");
        grader_free(g);
        free(got);
        free_reqs(reqs, bufs, n);
    }
}

static int run_one(struct fixture *f, struct grader_config *c, const char *script, struct got *got,
                   struct ev_err *e) {
    struct grader        *g = NULL;
    char                  prompt[64];
    static int            uniq = 0;
    snprintf(prompt, sizeof prompt, "one request %d", uniq++); /* never a cache hit */
    struct grader_request req = {NULL, prompt, 0, 0, 0};
    mock_script(&f->m, script);
    memset(got, 0, sizeof *got);
    int rc = grader_new(c, f->st, &g, e);
    if (rc == EV_OK) rc = grader_run_batch(g, &req, 1, NULL, got_cb, got, e);
    grader_free(g);
    return rc;
}

static void test_retries(void **state) {
    struct fixture      *f = *state;
    struct ev_err        e;
    struct got          *got = xcalloc(1, sizeof *got);
    struct grader_config c = test_config_for(f, "anthropic:m");

    /* 429 with Retry-After 0.4 twice, then an answer: three requests, each sent at least
     * 0.4 s after the server took the one before (its 429 went out after that, so load only
     * widens the gap; the back-off without Retry-After is 0.05..0.1 s here) */
    assert_int_equal(run_one(f, &c, "{\"answer\": \"Score: 2\", \"fail_first\": 2, \"fail\": "
                                    "{\"status\": 429, \"retry_after\": \"0.4\"}}", got, &e), EV_OK);
    assert_int_equal(got->status[0], GRADER_OK);
    assert_string_equal(got->text[0], "Score: 2");
    assert_int_equal(got->tries[0], 3);
    assert_int_equal(mock_count(&f->m), 3);
    double arrived[3];
    assert_int_equal(mock_log_numbers(&f->m, "t", arrived, 3), 3);
    for (int k = 1; k < 3; k++)
        if (arrived[k] - arrived[k - 1] < 0.4 - 0.005)
            fail_msg("try %d came %.3f s after the 429 with Retry-After 0.4", k + 1,
                     arrived[k] - arrived[k - 1]);

    /* 500s, dropped connections, malformed and truncated bodies are retried */
    static const char *const transient[] = {
        "{\"status\": 500}", "{\"status\": 503}", "{\"mode\": \"drop\"}",
        "{\"mode\": \"malformed\"}", "{\"mode\": \"truncated\"}", "{\"mode\": \"empty\"}",
    };
    for (size_t k = 0; k < sizeof transient / sizeof transient[0]; k++) {
        char *s = xasprintf("{\"answer\": \"Score: 1\", \"fail_first\": 1, \"fail\": %s}", transient[k]);
        assert_int_equal(run_one(f, &c, s, got, &e), EV_OK);
        if (got->status[0] != GRADER_OK) fail_msg("%s: not retried: %s", transient[k], got->error[0]);
        assert_int_equal(got->tries[0], 2);
        free(s);
    }
    /* ... up to max_retries, then the failure is reported with its kind */
    c.max_retries = 2;
    assert_int_equal(run_one(f, &c, "{\"status\": 500}", got, &e), EV_OK);
    assert_int_equal(got->status[0], GRADER_HTTP_ERROR);
    assert_int_equal(got->http_status[0], 500);
    assert_int_equal(got->tries[0], 3);
    assert_int_equal(mock_count(&f->m), 3);
    assert_non_null(strstr(got->error[0], "HTTP 500"));
    assert_int_equal(run_one(f, &c, "{\"mode\": \"truncated\"}", got, &e), EV_OK);
    assert_int_equal(got->status[0], GRADER_BAD_RESPONSE);
    assert_int_equal(run_one(f, &c, "{\"mode\": \"drop\"}", got, &e), EV_OK);
    assert_int_equal(got->status[0], GRADER_NET_ERROR);
    /* a time-out: without it both tries would be answered after 2 s */
    c.timeout_s = 0.3;
    c.max_retries = 1;
    assert_int_equal(run_one(f, &c, "{\"latency_ms\": 2000}", got, &e), EV_OK);
    assert_int_equal(got->status[0], GRADER_NET_ERROR);
    assert_non_null(strstr(got->error[0], "no answer within"));
    assert_int_equal(got->tries[0], 2);
    assert_int_equal(mock_count(&f->m), 2);
    c.timeout_s = 10;
    c.max_retries = 5;

    /* other 4xx: no retry */
    static const int no_retry[] = {400, 404, 422};
    for (size_t k = 0; k < sizeof no_retry / sizeof no_retry[0]; k++) {
        char *s = xasprintf("{\"status\": %d}", no_retry[k]);
        assert_int_equal(run_one(f, &c, s, got, &e), EV_OK);
        assert_int_equal(got->status[0], GRADER_HTTP_ERROR);
        assert_int_equal(got->http_status[0], no_retry[k]);
        assert_int_equal(got->tries[0], 1);
        assert_int_equal(mock_count(&f->m), 1);
        free(s);
    }
    /* 401: no retry, and the batch stops with a one-line error that names the variable but
     * never the key */
    setenv("ANTHROPIC_API_KEY", "wrong-key-value-1234", 1);
    assert_int_equal(run_one(f, &c, "{\"api_key\": \"" KEY "\"}", got, &e), EV_EFAIL);
    assert_int_equal(mock_count(&f->m), 1);
    assert_int_equal(got->n, 0); /* left ungraded, to be resumed */
    assert_non_null(strstr(e.msg, "refused the key in ANTHROPIC_API_KEY"));
    assert_non_null(strstr(e.msg, "401"));
    assert_null(strstr(e.msg, "wrong-key-value-1234"));
    assert_null(strchr(e.msg, '\n'));
    setenv("ANTHROPIC_API_KEY", KEY, 1);
    free(got);
}

/* Counted at the server, never timed at the client (issue 19: make test times nothing).
 * Concurrency: the mock holds each request until `concurrency` of them are in flight at
 * once ("gate"), so the peak it saw is exactly --concurrency, whatever the load: more means
 * the limit leaks, less that the engine does not keep its slots full (the gate then gives up
 * after 10 s and the peak is short). The rpm pacer starts requests 60 / rpm s apart (times
 * the shard count): the server must never see more than 2 arrivals in any window of 1.5
 * such intervals. Load only delays requests; to fail, one arrival would have to lag the
 * request sent two intervals after it by half an interval (0.25 s or 0.5 s here). Without
 * the pacer every request arrives at once. */
static void test_concurrency_and_rpm(void **state) {
    struct fixture *f = *state;
    struct ev_err   e;
    struct got     *got = xcalloc(1, sizeof *got);
    int             n = 16;
    char          **bufs;
    struct grader_request *reqs = make_reqs(n, &bufs);
    static const int concs[] = {1, 4, 8, 16};
    for (size_t k = 0; k < sizeof concs / sizeof concs[0]; k++) {
        struct grader_config c = test_config_for(f, "openai:m");
        struct grader       *g = NULL;
        char                 script[128];
        c.concurrency = concs[k];
        c.no_cache = 1;
        snprintf(script, sizeof script, "{\"gate\": %d, \"latency_ms\": 50, \"answer\": \"Score: 1\"}",
                 concs[k]);
        mock_script(&f->m, script);
        memset(got, 0, sizeof *got);
        assert_int_equal(grader_new(&c, f->st, &g, &e), EV_OK);
        assert_int_equal(grader_run_batch(g, reqs, n, NULL, got_cb, got, &e), EV_OK);
        assert_int_equal(got->n, n);
        assert_int_equal(mock_count(&f->m), n);
        if (mock_peak_inflight(&f->m) != concs[k])
            fail_msg("concurrency %d: the server saw %d in flight at once", concs[k],
                     mock_peak_inflight(&f->m));
        grader_free(g);
    }
    /* rpm 120 = one start per 0.5 s; with 2 shards one per 1.0 s (a window of 0.75 s that
     * sees 3 arrivals would mean the shard count was not applied) */
    for (int shards = 1; shards <= 2; shards++) {
        struct grader_config c = test_config_for(f, "openai:m");
        struct grader       *g = NULL;
        double               interval = 0.5 * shards;
        c.concurrency = 8;
        c.rpm = 120;
        c.n_shards = shards;
        c.no_cache = 1;
        mock_script(&f->m, "{}");
        assert_int_equal(grader_new(&c, f->st, &g, &e), EV_OK);
        assert_int_equal(grader_run_batch(g, reqs, 4, NULL, got_cb, got, &e), EV_OK);
        assert_int_equal(mock_count(&f->m), 4);
        int most = mock_most_in_window(&f->m, 1.5 * interval);
        if (most > 2)
            fail_msg("rpm 120 with %d shards: %d requests within %.2f s at the server", shards,
                     most, 1.5 * interval);
        grader_free(g);
    }
    /* the pacing holds across batches: 2 + 2 requests in two batches, the same count */
    {
        struct grader_config c = test_config_for(f, "openai:m");
        struct grader       *g = NULL;
        c.rpm = 120;
        c.no_cache = 1;
        mock_script(&f->m, "{}");
        assert_int_equal(grader_new(&c, f->st, &g, &e), EV_OK);
        assert_int_equal(grader_run_batch(g, reqs, 2, NULL, got_cb, got, &e), EV_OK);
        assert_int_equal(grader_run_batch(g, reqs + 2, 2, NULL, got_cb, got, &e), EV_OK);
        assert_int_equal(mock_count(&f->m), 4);
        int most = mock_most_in_window(&f->m, 0.75);
        if (most > 2) fail_msg("rpm 120 over two batches: %d requests within 0.75 s", most);
        grader_free(g);
    }
    free(got);
    free_reqs(reqs, bufs, n);
}

static void test_incremental_delivery(void **state) {
    struct fixture *f = *state;
    struct ev_err   e;
    struct got     *got = xcalloc(1, sizeof *got);
    int             n = 6;
    char          **bufs;
    struct grader_request *reqs = make_reqs(n, &bufs);
    /* item 0 is answered only after the other five have been and 1 s more; they answer at
     * once and must be handed over (and their cache rows committed) before it: by the order
     * of delivery, not by a clock */
    mock_script(&f->m, "{\"gate\": 6, \"rules\": [{\"match\": \"item 0 \", \"after_answered\": 5, "
                       "\"latency_ms\": 1000}], \"answer\": \"Score: 2\"}");
    struct grader_config c = test_config_for(f, "anthropic:m");
    struct grader       *g = NULL;
    c.concurrency = 6;
    c.no_cache = 1;
    got->dbpath = f->dbpath;
    assert_int_equal(grader_new(&c, f->st, &g, &e), EV_OK);
    assert_int_equal(grader_run_batch(g, reqs, n, NULL, got_cb, got, &e), EV_OK);
    assert_int_equal(got->n, n);
    assert_int_equal(mock_peak_inflight(&f->m), n); /* all six in flight at once (the gate) */
    assert_int_equal(got->order[0], n - 1);          /* the slow one last */
    assert_int_equal(got->committed_seen, n);
    grader_free(g);
    free(got);
    free_reqs(reqs, bufs, n);
}

static int accept_score(void *ud, int i, const char *answer) {
    (void)ud;
    (void)i;
    int s;
    return parse_score(answer, 0, 3, &s) == PARSE_OK;
}

static void test_reask_once(void **state) {
    struct fixture *f = *state;
    struct ev_err   e;
    struct got     *got = xcalloc(1, sizeof *got);
    struct grader_request req = {NULL, "re-ask test prompt", 0, 0, 0};
    struct grader_config  c = test_config_for(f, "anthropic:m");
    struct grader        *g = NULL;
    mock_script(&f->m, "{\"answers\": [\"I cannot decide.\", \"Score: 2\"]}");
    assert_int_equal(grader_new(&c, f->st, &g, &e), EV_OK);
    assert_int_equal(grader_run_batch(g, &req, 1, accept_score, got_cb, got, &e), EV_OK);
    assert_int_equal(got->n, 1);
    assert_string_equal(got->text[0], "Score: 2");
    assert_int_equal(got->attempt[0], 1);
    assert_int_equal(mock_count(&f->m), 2);
    assert_int_equal(grader_stats(g)->reasked, 1);
    grader_free(g);
    /* both answers are cached under different keys: a rerun asks nothing and ends the same */
    memset(got, 0, sizeof *got);
    mock_script(&f->m, "{\"answer\": \"Score: 0\"}");
    assert_int_equal(grader_new(&c, f->st, &g, &e), EV_OK);
    assert_int_equal(grader_run_batch(g, &req, 1, accept_score, got_cb, got, &e), EV_OK);
    assert_int_equal(mock_count(&f->m), 0);
    assert_string_equal(got->text[0], "Score: 2");
    grader_free(g);
    /* re-asked only once: a second bad answer is delivered as it is */
    memset(got, 0, sizeof *got);
    struct grader_request req2 = {NULL, "re-ask test prompt 2", 0, 0, 0};
    mock_script(&f->m, "{\"answer\": \"no idea\"}");
    assert_int_equal(grader_new(&c, f->st, &g, &e), EV_OK);
    assert_int_equal(grader_run_batch(g, &req2, 1, accept_score, got_cb, got, &e), EV_OK);
    assert_int_equal(mock_count(&f->m), 2);
    assert_int_equal(got->status[0], GRADER_OK);
    assert_string_equal(got->text[0], "no idea");
    grader_free(g);
    free(got);
}

static void test_usage_logprobs_and_no_key_in_db(void **state) {
    struct fixture *f = *state;
    struct ev_err   e;
    struct got     *got = xcalloc(1, sizeof *got);
    struct grader_config c = test_config_for(f, "openai:m");
    struct grader       *g = NULL;
    c.logprobs = 2;
    c.price_in = 3;
    c.price_out = 15;
    int    n = 4;
    char **bufs;
    struct grader_request *reqs = make_reqs(n, &bufs);
    for (int i = 0; i < n; i++) reqs[i].system = "logprobs run";
    mock_script(&f->m, "{\"answer\": \"Score: 3\", \"logprobs\": true, \"api_key\": \"" KEY "\"}");
    assert_int_equal(grader_new(&c, f->st, &g, &e), EV_OK);
    assert_int_equal(store_exec(f->st, "INSERT INTO runs (id, kind, started_ms, config_json, "
                                       "config_hash, code_version, host, pid) VALUES "
                                       "(77, 'test', 0, '{}', 'h', 'v', 'host', 1)", &e), EV_OK);
    grader_set_run(g, 77);
    assert_int_equal(grader_run_batch(g, reqs, n, NULL, got_cb, got, &e), EV_OK);
    for (int i = 0; i < n; i++) assert_true(got->has_logprobs[i]);
    const struct grader_stats *st = grader_stats(g);
    double want = (double)st->tokens_in * 3 / 1e6 + (double)st->tokens_out * 15 / 1e6;
    assert_true(st->cost_usd > 0 && st->cost_usd == want);
    assert_int_equal(grader_store_usage(g, 77, &e), EV_OK);
    char sum[512];
    assert_non_null(strstr(grader_summary(g, sum, sizeof sum), "estimated cost $"));

    struct store_stmt *q = NULL;
    assert_int_equal(store_prepare(f->st, "SELECT items, ok, requests, tokens_in, tokens_out, "
                                          "cost_usd FROM grader_usage WHERE run_id = 77", &q, &e), EV_OK);
    assert_int_equal(store_step(q, &e), STORE_ROW);
    assert_int_equal(store_col_int(q, 0), n);
    assert_int_equal(store_col_int(q, 1), n);
    assert_int_equal(store_col_int(q, 2), n);
    assert_int_equal(store_col_int(q, 3), st->tokens_in);
    assert_true(store_col_double(q, 5) == want);
    store_finalize(q);
    assert_int_equal(store_prepare(f->st, "SELECT count(*) FROM grader_requests WHERE run_id = 77 "
                                          "AND status = 'ok'", &q, &e), EV_OK);
    assert_int_equal(store_step(q, &e), STORE_ROW);
    assert_int_equal(store_col_int(q, 0), n);
    store_finalize(q);
    grader_free(g);
    /* the server saw the key; the database file (and its WAL) never holds it */
    char *log = mock_log_text(&f->m);
    assert_non_null(strstr(log, KEY));
    free(log);
    static const char *const suffix[] = {"", "-wal"};
    for (int k = 0; k < 2; k++) {
        char  *p = xasprintf("%s%s", f->dbpath, suffix[k]);
        char  *data = NULL;
        size_t len = 0;
        if (file_read_all(p, &data, &len, &e) == EV_OK) {
            assert_true(len > 0);
            assert_null(memmem(data, len, KEY, strlen(KEY)));
            assert_null(memmem(data, len, "SECRET", 6));
        }
        free(data);
        free(p);
    }
    free(got);
    free_reqs(reqs, bufs, n);
}

static void test_preflight(void **state) {
    struct fixture *f = *state;
    struct ev_err   e;
    struct grader  *g = NULL;
    double          lat = 0;
    char            model[64], answer[64];
    struct grader_config c = test_config_for(f, "anthropic:mx");

    mock_script(&f->m, "{\"answer\": \"Score: 3\", \"models\": [\"mx\"], \"model_echo\": \"mx-2025\", \"latency_ms\": 50}");
    assert_int_equal(grader_new(&c, f->st, &g, &e), EV_OK);
    assert_int_equal(grader_preflight(g, &lat, model, sizeof model, answer, sizeof answer, &e), EV_OK);
    assert_string_equal(model, "mx-2025");
    assert_string_equal(answer, "Score: 3");
    assert_true(lat >= 0.05); /* the server's 50 ms are in it: a lower bound load cannot break */
    assert_int_equal(grader_stats(g)->items, 0); /* the check is not an item */
    /* never from the cache: a second preflight asks again */
    assert_int_equal(grader_preflight(g, &lat, model, sizeof model, answer, sizeof answer, &e), EV_OK);
    assert_int_equal(mock_count(&f->m), 2);
    grader_free(g);

    static const struct { const char *script, *spec, *want; } bad[] = {
        {"{\"api_key\": \"other\"}", "anthropic:mx", "refused the key in ANTHROPIC_API_KEY"},
        {"{\"api_key\": \"other\"}", "openai:mx", "refused the key in OPENAI_API_KEY"},
        {"{\"models\": [\"mx\"]}", "anthropic:nope", "check the model name"},
        {"{\"status\": 400}", "openai:mx", "rejected the request (HTTP 400"},
        {"{\"mode\": \"malformed\"}", "openai:mx", "unreadable"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        c = test_config_for(f, bad[k].spec);
        c.max_retries = 1;
        mock_script(&f->m, bad[k].script);
        assert_int_equal(grader_new(&c, f->st, &g, &e), EV_OK);
        assert_int_equal(grader_preflight(g, NULL, NULL, 0, NULL, 0, &e), EV_EFAIL);
        if (!strstr(e.msg, bad[k].want)) fail_msg("case %zu: '%s' lacks '%s'", k, e.msg, bad[k].want);
        assert_null(strstr(e.msg, KEY));
        assert_null(strchr(e.msg, '\n'));
        grader_free(g);
    }
    /* unreachable: fails fast, without back-off */
    c = test_config_for(f, "anthropic:mx");
    assert_int_equal(grader_config_set_url(&c, "http://127.0.0.1:9/v1", &e), EV_OK);
    assert_int_equal(grader_new(&c, f->st, &g, &e), EV_OK);
    long sent = grader_stats(g)->requests;
    assert_int_equal(grader_preflight(g, NULL, NULL, 0, NULL, 0, &e), EV_EFAIL);
    assert_int_equal(grader_stats(g)->requests - sent, 1); /* one try, no retry */
    assert_non_null(strstr(e.msg, "cannot reach http://127.0.0.1:9/v1/messages"));
    grader_free(g);
}

/* Must run last: the interrupt flag stays set for the rest of the process. */
static void test_sigint_stops_batch(void **state) {
    struct fixture *f = *state;
    struct ev_err   e;
    struct got     *got = xcalloc(1, sizeof *got);
    int             n = 40;
    char          **bufs;
    struct grader_request *reqs = make_reqs(n, &bufs);
    for (int i = 0; i < n; i++) reqs[i].system = "sigint run";
    struct grader_config c = test_config_for(f, "anthropic:m");
    struct grader       *g = NULL;
    c.concurrency = 2;
    mock_script(&f->m, "{\"latency_ms\": 50}");
    ev_install_interrupt_handler();
    got->raise_after = 3;
    assert_int_equal(grader_new(&c, f->st, &g, &e), EV_OK);
    assert_int_equal(grader_run_batch(g, reqs, n, NULL, got_cb, got, &e), EV_EINTR);
    /* the one in flight when SIGINT came is finished and delivered; nothing new is sent */
    assert_true(got->n >= 3 && got->n <= 4);
    assert_int_equal(mock_count(&f->m), got->n);
    for (int i = 0; i < n; i++) assert_true(got->seen[i] <= 1);
    grader_free(g);
    free(got);
    free_reqs(reqs, bufs, n);
}

int main(void) {
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_parse_score),
        cmocka_unit_test(test_parse_labeled_yes_no),
        cmocka_unit_test(test_parse_lists),
        cmocka_unit_test(test_build_body),
        cmocka_unit_test(test_parse_response),
        cmocka_unit_test(test_cache_key),
        cmocka_unit_test(test_config),
    };
    const struct CMUnitTest http[] = {
        cmocka_unit_test(test_batch_answers_and_cache),
        cmocka_unit_test(test_retries),
        cmocka_unit_test(test_concurrency_and_rpm),
        cmocka_unit_test(test_incremental_delivery),
        cmocka_unit_test(test_reask_once),
        cmocka_unit_test(test_usage_logprobs_and_no_key_in_db),
        cmocka_unit_test(test_preflight),
        cmocka_unit_test(test_aimd),
        cmocka_unit_test(test_sigint_stops_batch), /* last: it leaves the interrupt flag set */
    };
    int fails = cmocka_run_group_tests_name("grader_pure", pure, NULL, NULL);
    fails += cmocka_run_group_tests_name("grader_http", http, setup, teardown);
    return fails;
}
