/*
 * test_params — graders/params.c: the OpenAI reasoning families' body (max_completion_tokens,
 * no temperature) and --grader-param overrides (JSON values, strings, removal, order), and
 * bad KEY=VALUE values refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "graders/llm.h"
#include "graders/params.h"

static void test_families(void **state) {
    (void)state;
    static const struct { const char *model; int reasoning; } t[] = {
        {"o1", 1},          {"o1-mini", 1},     {"o3", 1},       {"o3-mini", 1},
        {"o4-mini", 1},     {"gpt-5", 1},       {"gpt-5-mini", 1}, {"gpt-5-nano", 1},
        {"openai/gpt-5", 1}, {"gpt-4o-mini", 0}, {"gpt-4.1", 0},  {"omni", 0},
        {"llama3:8b", 0},   {"o", 0},           {"", 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (params_openai_reasoning(t[i].model) != t[i].reasoning)
            fail_msg("%s: expected %d", t[i].model, t[i].reasoning);
}

/* the body's field key as compact JSON, or NULL when absent; caller frees */
static char *field(const char *body, const char *key) {
    cJSON        *j = NULL;
    struct ev_err e;
    assert_int_equal(json_parse(body, strlen(body), "body", &j, &e), EV_OK);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    char        *s = v ? json_print(v) : NULL;
    json_free(j);
    return s;
}

static void expect_field(const char *body, const char *key, const char *want) {
    char *got = field(body, key);
    if (!want) {
        if (got) fail_msg("%s: expected no field, got %s", key, got);
    } else if (!got || strcmp(got, want) != 0) {
        fail_msg("%s: expected %s, got %s", key, want, got ? got : "(none)");
    }
    free(got);
}

static void test_reasoning_body(void **state) {
    (void)state;
    char *b = llm_build_body(GRADER_PROVIDER_OPENAI, "gpt-5-mini", NULL, "hi", 0, 16, 0, 0);
    b = params_apply(GRADER_PROVIDER_OPENAI, "gpt-5-mini", "", b);
    expect_field(b, "max_tokens", NULL);
    expect_field(b, "temperature", NULL);
    expect_field(b, "max_completion_tokens", "4112"); /* 16 + the reasoning allowance */
    expect_field(b, "model", "\"gpt-5-mini\"");
    free(b);
    /* another family, and Anthropic with the same name, keep the old fields */
    b = llm_build_body(GRADER_PROVIDER_OPENAI, "gpt-4o-mini", NULL, "hi", 0, 16, 0, 0);
    b = params_apply(GRADER_PROVIDER_OPENAI, "gpt-4o-mini", NULL, b);
    expect_field(b, "max_tokens", "16");
    expect_field(b, "temperature", "0");
    expect_field(b, "max_completion_tokens", NULL);
    free(b);
    b = llm_build_body(GRADER_PROVIDER_ANTHROPIC, "o3", NULL, "hi", 0, 16, 0, 0);
    b = params_apply(GRADER_PROVIDER_ANTHROPIC, "o3", NULL, b);
    expect_field(b, "max_tokens", "16");
    free(b);
}

static void test_overrides(void **state) {
    (void)state;
    const char   *kv[] = {"seed=7",          "reasoning_effort=low", "stop=[\"x\",\"y\"]",
                          "temperature=",    "user=7abc",            "seed=8",
                          "flag=true",       "meta={\"a\":1}"};
    char          params[1024];
    struct ev_err e;
    assert_int_equal(params_parse(kv, 8, params, sizeof params, &e), EV_OK);
    char *b = llm_build_body(GRADER_PROVIDER_OPENAI, "gpt-4o-mini", "sys", "hi", 0, 16, 0, 0);
    b = params_apply(GRADER_PROVIDER_OPENAI, "gpt-4o-mini", params, b);
    expect_field(b, "seed", "8"); /* the later value wins */
    expect_field(b, "reasoning_effort", "\"low\"");
    expect_field(b, "stop", "[\"x\",\"y\"]");
    expect_field(b, "temperature", NULL); /* KEY= removes */
    expect_field(b, "user", "\"7abc\"");  /* not all JSON: a string */
    expect_field(b, "flag", "true");
    expect_field(b, "meta", "{\"a\":1}");
    expect_field(b, "max_tokens", "16");
    free(b);
    /* on a reasoning model an override puts back what the family rule took out */
    const char *kv2[] = {"max_completion_tokens=64", "temperature=1"};
    assert_int_equal(params_parse(kv2, 2, params, sizeof params, &e), EV_OK);
    b = llm_build_body(GRADER_PROVIDER_OPENAI, "o3", NULL, "hi", 0, 16, 0, 0);
    b = params_apply(GRADER_PROVIDER_OPENAI, "o3", params, b);
    expect_field(b, "max_completion_tokens", "64");
    expect_field(b, "temperature", "1");
    free(b);
    assert_int_equal(params_parse(NULL, 0, params, sizeof params, &e), EV_OK);
    assert_string_equal(params, "");
}

static void test_bad_values(void **state) {
    (void)state;
    static const char *bad[] = {"seed", "=7", "a b=1", "k\"=1"};
    char               params[64];
    struct ev_err      e;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(params_parse(&bad[i], 1, params, sizeof params, &e), EV_EUSAGE);
        assert_non_null(strstr(e.msg, "--grader-param"));
    }
    char        longv[200];
    memset(longv, 'x', sizeof longv - 1);
    longv[0] = 'k';
    longv[1] = '=';
    longv[sizeof longv - 1] = 0;
    const char *kv[] = {longv};
    assert_int_equal(params_parse(kv, 1, params, sizeof params, &e), EV_EUSAGE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_families),
        cmocka_unit_test(test_reasoning_body),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
