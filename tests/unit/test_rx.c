/* Unit tests for base/rx: searches and groups, and RX_INVALID_UTF, the flag for subjects off
 * the network (a grader's answer): PCRE2_MATCH_INVALID_UTF defines that an ill-formed
 * sequence is never part of a match (pcre2unicode(3), "Matching in invalid UTF strings"),
 * so a search goes on around it instead of reading it as a character. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "base/rx.h"

static void expect_match(const struct rx *r, const char *s, size_t len, size_t start,
                         size_t want_b, size_t want_e) {
    struct rx_match *m = rx_match_new(r);
    struct ev_err    err;
    size_t           b = 0, e = 0;
    assert_int_equal(rx_search(r, m, s, len, start, &b, &e, &err), 1);
    assert_int_equal(b, want_b);
    assert_int_equal(e, want_e);
    rx_match_free(m);
}

static void test_search_and_groups(void **state) {
    (void)state;
    struct rx    *r = NULL;
    struct ev_err err;
    assert_int_equal(rx_compile("score:\\s*(\\d)", RX_CASELESS, "test", &r, &err), EV_OK);
    const char      *s = "Reasoning... SCORE: 3";
    struct rx_match *m = rx_match_new(r);
    size_t           b, e;
    assert_int_equal(rx_search(r, m, s, strlen(s), 0, &b, &e, &err), 1);
    assert_int_equal(rx_group(m, 1, &b, &e), 1);
    assert_int_equal(s[b], '3');
    assert_int_equal(e - b, 1);
    assert_int_equal(rx_search(r, m, s, strlen(s), 14, &b, &e, &err), 0);
    rx_match_free(m);
    rx_free(r);
    assert_int_equal(rx_compile("(unclosed", 0, "prompts/x.txt", &r, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "prompts/x.txt"));
}

static void test_invalid_utf_subjects(void **state) {
    (void)state;
    struct rx    *r = NULL;
    struct ev_err err;
    /* "ab", two bytes that are no UTF-8, "cd", then a valid é */
    const char s[] = "ab\xff\xfe" "cd \xc3\xa9";
    size_t     n = sizeof s - 1;
    assert_int_equal(rx_compile("\\S+", RX_INVALID_UTF, "test", &r, &err), EV_OK);
    expect_match(r, s, n, 0, 0, 2); /* the bad bytes end the first word */
    expect_match(r, s, n, 2, 4, 6); /* and the search resumes after them */
    expect_match(r, s, n, 6, 7, 9); /* é is one character */
    rx_free(r);
    /* a lone bad byte is never "any character" */
    assert_int_equal(rx_compile("^.$", RX_INVALID_UTF, "test", &r, &err), EV_OK);
    struct rx_match *m = rx_match_new(r);
    size_t           b, e;
    assert_int_equal(rx_search(r, m, "\xff", 1, 0, &b, &e, &err), 0);
    assert_int_equal(rx_search(r, m, "\xc3\xa9", 2, 0, &b, &e, &err), 1);
    rx_match_free(m);
    rx_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_search_and_groups),
        cmocka_unit_test(test_invalid_utf_subjects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
