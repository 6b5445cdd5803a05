/*
 * Unit tests for evals/controls: --control parsing (names, lists, refusals) and the
 * derangement of the shuffled control (a permutation without fixed points, reproducible for a
 * seed, every derangement reachable: both of n = 3, and roughly uniform over the 9 of n = 4).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "evals/controls.h"

static void test_parse(void **st) {
    (void)st;
    static const struct {
        const char *in;
        int         rc;
        unsigned    flags;
    } cases[] = {
        {NULL, EV_OK, 0},
        {"none", EV_OK, 0},
        {"random-sae", EV_OK, EVAL_CONTROL_RANDOM_SAE},
        {"shuffled", EV_OK, EVAL_CONTROL_SHUFFLED},
        {"random-sae,shuffled", EV_OK, EVAL_CONTROL_RANDOM_SAE | EVAL_CONTROL_SHUFFLED},
        {"shuffled,random-sae", EV_OK, EVAL_CONTROL_RANDOM_SAE | EVAL_CONTROL_SHUFFLED},
        {"random", EV_EUSAGE, 0},
        {"shuffled,", EV_EUSAGE, 0},
        {"", EV_EUSAGE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ev_err err = {{0}};
        unsigned      f = 99;
        int           rc = eval_control_parse(cases[i].in, &f, &err);
        assert_int_equal(rc, cases[i].rc);
        if (rc == EV_OK) assert_int_equal(f, cases[i].flags);
        else assert_non_null(strstr(err.msg, "--control"));
    }
    assert_string_equal(eval_control_name(EVAL_CONTROL_SHUFFLED), "shuffled");
    assert_string_equal(eval_control_name(EVAL_CONTROL_RANDOM_SAE), "random-sae");
}

static void test_derangement(void **st) {
    (void)st;
    int p[50], q[50];
    for (int n = 2; n <= 50; n++)
        for (uint64_t seed = 0; seed < 20; seed++) {
            eval_control_derangement(p, n, seed);
            int seen[50] = {0};
            for (int i = 0; i < n; i++) {
                assert_true(p[i] != i);
                assert_true(p[i] >= 0 && p[i] < n);
                assert_int_equal(seen[p[i]]++, 0);
            }
            eval_control_derangement(q, n, seed);
            assert_memory_equal(p, q, (size_t)n * sizeof *p);
        }
    eval_control_derangement(p, 1, 3);
    assert_int_equal(p[0], 0);
    /* n = 4 has 9 derangements; 9000 seeds should give each about 1000 times */
    int count[4 * 4 * 4 * 4] = {0}, distinct = 0;
    for (uint64_t seed = 0; seed < 9000; seed++) {
        eval_control_derangement(p, 4, seed);
        count[((p[0] * 4 + p[1]) * 4 + p[2]) * 4 + p[3]]++;
    }
    for (int i = 0; i < 256; i++)
        if (count[i]) {
            distinct++;
            assert_true(count[i] > 800 && count[i] < 1200);
        }
    assert_int_equal(distinct, 9);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_derangement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
