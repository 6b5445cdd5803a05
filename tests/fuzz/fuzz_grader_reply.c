/* libFuzzer target: everything read out of a grader's reply, on any bytes. The first byte
 * picks the provider; the rest is a 200 response body: the answer is extracted from its JSON
 * (llm_parse_response, llm_error_message) and, whether or not that works, the raw bytes and
 * the extracted text go through every score parser (0-3 scores, labelled scores, yes/no,
 * integer lists, window numbers, descriptions), and an OpenAI logprobs object through
 * autointerp's reader. Invariants: a parsed value is in its range; a parsed description is
 * non-empty and within its length limit; probabilities lie in [0, 1], expectations in
 * [0, 10]. */
#include "fuzz_util.h"

#include "evals/autointerp.h"
#include "graders/llm.h"
#include "graders/parse.h"

static void parse_all(const char *text) {
    int   v = -1, n = 0, *vals = NULL;
    char *desc = NULL;
    if (parse_score(text, 0, 3, &v) == PARSE_OK) FUZZ_CHECK(v >= 0 && v <= 3);
    if (parse_labeled_score(text, "Concept", 0, 2, &v) == PARSE_OK) FUZZ_CHECK(v >= 0 && v <= 2);
    if (parse_yes_no(text, &v) == PARSE_OK) FUZZ_CHECK(v == 0 || v == 1);
    if (parse_int_list(text, 5, 0, 1, &vals, &n) == PARSE_OK) {
        FUZZ_CHECK(n == 5);
        for (int i = 0; i < n; i++) FUZZ_CHECK(vals[i] == 0 || vals[i] == 1);
        free(vals);
    }
    vals = NULL;
    if (parse_int_list(text, 0, -10, 10, &vals, &n) == PARSE_OK) {
        for (int i = 0; i < n; i++) FUZZ_CHECK(vals[i] >= -10 && vals[i] <= 10);
        free(vals);
    }
    vals = NULL;
    if (parse_window_numbers(text, 8, &vals, &n) == PARSE_OK) {
        for (int i = 0; i < n; i++) {
            FUZZ_CHECK(vals[i] >= 1 && vals[i] <= 8);
            for (int k = 0; k < i; k++) FUZZ_CHECK(vals[k] != vals[i]);
        }
        free(vals);
    }
    if (parse_description(text, 400, &desc) == PARSE_OK) {
        FUZZ_CHECK(desc[0] != '\0' && strlen(desc) <= 400);
        free(desc);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 65536) return 0;
    enum grader_provider p = (data[0] & 1) ? GRADER_PROVIDER_OPENAI : GRADER_PROVIDER_ANTHROPIC;
    char                *body = fuzz_copy(data + 1, size - 1);
    char                *text = fuzz_cstr(data + 1, size - 1);
    struct llm_answer    a;
    struct ev_err        err;
    parse_all(text);
    if (llm_parse_response(p, body, size - 1, &a, &err) == 0) {
        FUZZ_CHECK(a.text && a.model && a.stop_reason);
        FUZZ_CHECK(a.tokens_in >= 0 && a.tokens_out >= 0);
        parse_all(a.text);
        double pr[5];
        if (ai_logprob_values(a.logprobs_json, 5, data[0] & 2 ? 1 : 0, pr))
            for (int i = 0; i < 5; i++)
                FUZZ_CHECK(pr[i] >= 0 && pr[i] <= (data[0] & 2 ? 10 : 1));
        llm_answer_release(&a);
    }
    char *msg = llm_error_message(body, size - 1);
    if (msg) {
        FUZZ_CHECK(strlen(msg) <= 200 && !strchr(msg, '\n'));
        free(msg);
    }
    free(body);
    free(text);
    return 0;
}
