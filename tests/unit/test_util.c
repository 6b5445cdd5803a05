/* Unit tests for util (rng, numbers, sbuf, files), hash (SHA-256 vectors) and args. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/args.h"
#include "base/hash.h"
#include "base/json.h"
#include "base/util.h"

static void test_sha256_vectors(void **state) {
    (void)state;
    static const struct { const char *in, *hex; } cases[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char hex[65];
        sha256_hex(cases[i].in, strlen(cases[i].in), hex);
        assert_string_equal(hex, cases[i].hex);
    }
    /* a million 'a's, fed in uneven pieces */
    struct sha256 s;
    char          buf[997], hex[65];
    memset(buf, 'a', sizeof buf);
    sha256_init(&s);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof buf ? left : sizeof buf;
        sha256_update(&s, buf, n);
        left -= n;
    }
    sha256_hex_final(&s, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_rng_deterministic_and_uniform(void **state) {
    (void)state;
    struct rng a, b;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) assert_int_equal(rng_u64(&a), rng_u64(&b));
    rng_seed(&b, 43);
    assert_int_not_equal(rng_u64(&a), rng_u64(&b));
    int counts[10] = {0};
    for (int i = 0; i < 100000; i++) counts[rng_below(&a, 10)]++;
    for (int i = 0; i < 10; i++) assert_in_range(counts[i], 9500, 10500);
    double sum = 0, sum2 = 0;
    for (int i = 0; i < 100000; i++) {
        double x = rng_normal(&a);
        sum += x;
        sum2 += x * x;
    }
    assert_true(fabs(sum / 100000) < 0.02);
    assert_true(fabs(sum2 / 100000 - 1.0) < 0.03);
}

static void test_parse_numbers(void **state) {
    (void)state;
    static const struct { const char *s; int ok; long v; } longs[] = {
        {"12", 1, 12}, {"-3", 1, -3}, {"", 0, 0}, {"12x", 0, 0}, {"1e3", 0, 0},
        {"99999999999999999999", 0, 0},
    };
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++) {
        long v = -999;
        int  rc = parse_long(longs[i].s, &v);
        assert_int_equal(rc == EV_OK, longs[i].ok);
        if (longs[i].ok) assert_int_equal(v, longs[i].v);
    }
    double d;
    assert_int_equal(parse_double("0.5", &d), EV_OK);
    assert_true(d == 0.5);
    assert_int_not_equal(parse_double("nan", &d), EV_OK);
    assert_int_not_equal(parse_double("1.5.2", &d), EV_OK);
}

static void test_sbuf(void **state) {
    (void)state;
    struct sbuf sb;
    sbuf_init(&sb);
    for (int i = 0; i < 1000; i++) sbuf_addf(&sb, "%d,", i);
    assert_int_equal(strncmp(sb.buf, "0,1,2,", 6), 0);
    assert_int_equal(sb.len, strlen(sb.buf));
    char *s = sbuf_detach(&sb);
    assert_null(sb.buf);
    free(s);
    s = sbuf_detach(&sb);
    assert_string_equal(s, "");
    free(s);
}

static void test_file_write_atomic(void **state) {
    (void)state;
    struct ev_err err;
    char          dir[] = "/tmp/evalrun-util-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *sub = path_join(dir, "a/b/c");
    assert_int_equal(mkdir_p(sub, &err), EV_OK);
    char *f = path_join(sub, "x.txt");
    assert_int_equal(file_write_atomic(f, "hello", 5, &err), EV_OK);
    char  *text = NULL;
    size_t n = 0;
    assert_int_equal(file_read_all(f, &text, &n, &err), EV_OK);
    assert_int_equal(n, 5);
    assert_string_equal(text, "hello");
    free(text);
    assert_int_equal(file_read_all("/nonexistent/file", &text, &n, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "/nonexistent/file"));
    char *cmd = xasprintf("rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    free(sub);
}

/* json_write_file: the layouts its flags ask for, over an older file, and no temporary file
 * left beside it; a folder that does not exist is an error naming the path. */
static void test_json_write_file(void **state) {
    (void)state;
    struct ev_err err;
    char          dir[] = "/tmp/evalrun-json-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char  *f = path_join(dir, "out.json");
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "a", 1);
    cJSON_AddStringToObject(j, "b", "x");
    static const struct { unsigned flags; const char *want; } cases[] = {
        {0, "{\"a\":1,\"b\":\"x\"}"},
        {JSON_WRITE_NEWLINE, "{\"a\":1,\"b\":\"x\"}\n"},
        {JSON_WRITE_PRETTY, "{\n\t\"a\":\t1,\n\t\"b\":\t\"x\"\n}"},
        {JSON_WRITE_PRETTY | JSON_WRITE_NEWLINE, "{\n\t\"a\":\t1,\n\t\"b\":\t\"x\"\n}\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char  *text = NULL;
        size_t n = 0;
        assert_int_equal(json_write_file(f, j, cases[i].flags, &err), EV_OK);
        assert_int_equal(file_read_all(f, &text, &n, &err), EV_OK);
        assert_string_equal(text, cases[i].want);
        free(text);
    }
    char *ls = xasprintf("test \"$(ls -A %s)\" = out.json", dir);
    assert_int_equal(system(ls), 0); /* no temporary file left */
    free(ls);
    char *bad = path_join(dir, "missing/out.json");
    assert_int_not_equal(json_write_file(bad, j, 0, &err), EV_OK);
    assert_non_null(strstr(err.msg, "missing"));
    char *cmd = xasprintf("rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(bad);
    free(f);
    json_free(j);
}

static void test_args_parse(void **state) {
    (void)state;
    static const struct cmd_help help = {"demo", "[--n N]", "test"};
    const char    *model = NULL;
    long           n = 7;
    double         t = 1.0;
    int            flag = 0;
    struct strlist prompts = {0};
    const struct opt opts[] = {
        {"model", OPT_STR, &model, "PATH", "m"},  {"n", OPT_LONG, &n, "N", "n"},
        {"t", OPT_DOUBLE, &t, "T", "t"},          {"flag", OPT_FLAG, &flag, NULL, "f"},
        {"prompt", OPT_STRS, &prompts, "TEXT", "p"}, {0},
    };
    char *argv[] = {"demo", "pos1", "--model=m.bin", "--n", "12", "--flag", "--prompt", "a",
                    "--prompt", "b", "--t", "0.5", "--", "--not-an-option", NULL};
    int npos = 0;
    struct ev_err err;
    assert_int_equal(args_parse(&help, opts, 14, argv, &npos, &err), EV_OK);
    assert_string_equal(model, "m.bin");
    assert_int_equal(n, 12);
    assert_true(t == 0.5);
    assert_int_equal(flag, 1);
    assert_int_equal(prompts.n, 2);
    assert_string_equal(prompts.v[1], "b");
    assert_int_equal(npos, 2);
    assert_string_equal(argv[1], "pos1");
    assert_string_equal(argv[2], "--not-an-option");

    static const struct { const char *a, *b, *msg; } bad[] = {
        {"--n", "x", "--n expects an integer"},
        {"--nope", NULL, "unknown option '--nope'"},
        {"--model", NULL, "--model needs a value"},
        {"-x", NULL, "unknown option '-x'"},
        {"--flag=1", NULL, "--flag takes no value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *av[] = {"demo", (char *)bad[i].a, (char *)bad[i].b, NULL};
        int   ac = bad[i].b ? 3 : 2;
        assert_int_equal(args_parse(&help, opts, ac, av, &npos, &err), EV_EUSAGE);
        assert_non_null(strstr(err.msg, bad[i].msg));
    }

    /* a repeatable option holds STRLIST_MAX values; one more is a usage error naming it */
    char *many[2 + 2 * (STRLIST_MAX + 1)];
    int   ac = 1;
    many[0] = "demo";
    prompts.n = 0;
    for (int i = 0; i < STRLIST_MAX; i++) many[ac++] = "--prompt=p";
    assert_int_equal(args_parse(&help, opts, ac, many, &npos, &err), EV_OK);
    assert_int_equal(prompts.n, STRLIST_MAX);
    prompts.n = 0;
    many[ac++] = "--prompt=q";
    assert_int_equal(args_parse(&help, opts, ac, many, &npos, &err), EV_EUSAGE);
    assert_non_null(strstr(err.msg, "--prompt given more than 128 times"));
}

/* sweep's --d-sae / --tokens lists: every element in range, or a usage error naming the flag
 * and the element (nothing returned). */
static void test_args_parse_long_list(void **state) {
    (void)state;
    struct ev_err err;
    long         *v = NULL;
    int           n = -1;
    assert_int_equal(args_parse_long_list("--d-sae", "16,32,9", 1, 64, &v, &n, &err), EV_OK);
    assert_int_equal(n, 3);
    assert_int_equal(v[0], 16);
    assert_int_equal(v[1], 32);
    assert_int_equal(v[2], 9);
    free(v);
    /* more than the first allocation's 8 elements */
    assert_int_equal(args_parse_long_list("--tokens", "1,2,3,4,5,6,7,8,9,10", 1, 10, &v, &n, &err),
                     EV_OK);
    assert_int_equal(n, 10);
    assert_int_equal(v[9], 10);
    free(v);
    static const struct { const char *in, *bad; } cases[] = {
        {"16,,32", "''"}, {"16,65", "'65'"}, {"0", "'0'"}, {"8,x", "'x'"}, {"4,", "''"},
        {"-3", "'-3'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        v = (long *)&err; /* must come back NULL */
        assert_int_equal(args_parse_long_list("--d-sae", cases[i].in, 1, 64, &v, &n, &err),
                         EV_EUSAGE);
        assert_null(v);
        assert_int_equal(n, 0);
        assert_non_null(strstr(err.msg, "--d-sae"));
        assert_non_null(strstr(err.msg, cases[i].bad));
        assert_non_null(strstr(err.msg, "1..64"));
    }
}

static void test_args_shard(void **state) {
    (void)state;
    struct ev_err err;
    int           k, n;
    assert_int_equal(args_parse_shard("2/4", &k, &n, &err), EV_OK);
    assert_int_equal(k, 2);
    assert_int_equal(n, 4);
    assert_int_equal(args_parse_shard(NULL, &k, &n, &err), EV_OK);
    assert_int_equal(n, 1);
    const char *bad[] = {"4/4", "-1/2", "1", "a/b", "1/0", "0/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(args_parse_shard(bad[i], &k, &n, &err), EV_EUSAGE);
}

/* Bug (issue 20.5): a features file took "+5" but refused "-5"; an index is digits only. */
static void test_parse_index_one_rule(void **state) {
    (void)state;
    static const struct { const char *s; long max, want; int ok; } cases[] = {
        {"0", 10, 0, 1},        {"5", 10, 5, 1},    {"007", 10, 7, 1},  {"10", 10, 10, 1},
        {"11", 10, 0, 0},       {"+5", 10, 0, 0},   {"-5", 10, 0, 0},   {" 5", 10, 0, 0},
        {"5 ", 10, 0, 0},       {"", 10, 0, 0},     {"5x", 10, 0, 0},   {"0x5", 10, 0, 0},
        {"7", 5, 0, 0},         {"2147483647", 2147483647L, 2147483647L, 1},
        {"2147483648", 2147483647L, 0, 0}, {"99999999999999999999999", 2147483647L, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long v = -1;
        int  rc = parse_index(cases[i].s, cases[i].max, &v);
        if (cases[i].ok) {
            assert_int_equal(rc, EV_OK);
            assert_int_equal(v, cases[i].want);
        } else {
            assert_int_equal(rc, EV_EFAIL);
        }
    }
}

/* Bug (issue 20.4): sae_index formatted an error into the buffer it read from
 * (ev_fail(err, ..., "%s", err->msg)) and printed "(Y constraint failed)" and the message
 * twice. A message that wraps the previous one must come out whole. */
static void test_ev_fail_wraps_its_own_message(void **state) {
    (void)state;
    struct ev_err err;
    ev_fail(&err, EV_EFAIL, "FOREIGN KEY constraint failed");
    assert_int_equal(ev_fail(&err, EV_EFAIL, "cannot replace the old index (%s); use another",
                             err.msg), EV_EFAIL);
    assert_string_equal(err.msg, "cannot replace the old index (FOREIGN KEY constraint failed); "
                                 "use another");
    /* the message in the middle and twice, and one as long as the buffer (truncated once) */
    ev_fail(&err, EV_EFAIL, "inner");
    ev_fail(&err, EV_EFAIL, "a %s b %s c", err.msg, err.msg);
    assert_string_equal(err.msg, "a inner b inner c");
    memset(err.msg, 'x', sizeof err.msg - 1);
    err.msg[sizeof err.msg - 1] = '\0';
    ev_fail(&err, EV_EFAIL, "pre: %s", err.msg);
    assert_int_equal(strlen(err.msg), sizeof err.msg - 1);
    assert_memory_equal(err.msg, "pre: xxx", 8);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),     cmocka_unit_test(test_rng_deterministic_and_uniform),
        cmocka_unit_test(test_parse_numbers),      cmocka_unit_test(test_sbuf),
        cmocka_unit_test(test_file_write_atomic),  cmocka_unit_test(test_args_parse),
        cmocka_unit_test(test_json_write_file),
        cmocka_unit_test(test_args_shard),         cmocka_unit_test(test_args_parse_long_list),
        cmocka_unit_test(test_ev_fail_wraps_its_own_message),
        cmocka_unit_test(test_parse_index_one_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
