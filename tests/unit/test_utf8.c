/* Unit tests for base/utf8: the replacement of ill-formed UTF-8 against the examples of the
 * Unicode Standard (15.0, section 3.9, Tables 3-8 to 3-12: the same U+FFFD count Python's
 * bytes.decode("utf-8", "replace") gives), and validity against PCRE2's own UTF-8 check on
 * random bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "base/util.h"

/* hex bytes in, the code points the standard lists out */
static const struct {
    const char *hex;
    uint32_t    cps[12];
    int         n;
} unicode_tables[] = {
    /* Table 3-8: U+FFFD for each maximal subpart */
    {"61F18080E180C262806380BF64",
     {0x61, 0xFFFD, 0xFFFD, 0xFFFD, 0x62, 0xFFFD, 0x63, 0xFFFD, 0xFFFD, 0x64}, 10},
    /* Table 3-9: non-shortest forms, each byte */
    {"C0AFE080BFF0818241", {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0x41}, 9},
    /* Table 3-10: surrogates, each byte */
    {"EDA080EDBFBFEDAF41", {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0x41}, 9},
    /* Table 3-11: beyond U+10FFFF, FF, stray continuations */
    {"F4919293FF4180BF42", {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0x41, 0xFFFD, 0xFFFD, 0x42}, 9},
    /* Table 3-12: truncated sequences, one U+FFFD each */
    {"E180E2F09192F1BF41", {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0x41}, 5},
    /* well-formed: A, e-acute, euro, U+10348, U+10FFFF, U+FFFD itself */
    {"41C3A9E282ACF0908D88F48FBFBFEFBFBD", {0x41, 0xE9, 0x20AC, 0x10348, 0x10FFFF, 0xFFFD}, 6},
};

static size_t unhex(const char *h, char *out) {
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    return n;
}

static void test_unicode_examples(void **state) {
    (void)state;
    for (size_t t = 0; t < sizeof unicode_tables / sizeof unicode_tables[0]; t++) {
        char   in[64], enc[4];
        size_t n = unhex(unicode_tables[t].hex, in), i = 0;
        int    k = 0;
        struct sbuf want;
        sbuf_init(&want);
        while (i < n) {
            uint32_t cp;
            i += utf8_next(in + i, n - i, &cp);
            assert_true(k < unicode_tables[t].n);
            assert_int_equal(cp, unicode_tables[t].cps[k]);
            sbuf_add(&want, enc, utf8_put(enc, cp));
            k++;
        }
        assert_int_equal(k, unicode_tables[t].n);
        assert_int_equal(utf8_count(in, n), (size_t)k);
        /* the repaired text is the code points re-encoded; valid input comes back unchanged */
        struct sbuf got;
        sbuf_init(&got);
        utf8_add_valid(&got, in, n);
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.buf, want.buf, want.len);
        int valid = t == sizeof unicode_tables / sizeof unicode_tables[0] - 1;
        assert_int_equal(utf8_invalid_at(in, n) < 0, valid);
        if (valid) assert_memory_equal(got.buf, in, n);
        sbuf_release(&got);
        sbuf_release(&want);
    }
}

/* PCRE2's validity check, an implementation independent of ours: the offset of the first
 * bad byte, or -1. */
static long pcre2_invalid_at(pcre2_code *re, pcre2_match_data *md, const char *s, size_t n) {
    int rc = pcre2_match(re, (PCRE2_SPTR)s, n, 0, 0, md, NULL);
    if (rc >= PCRE2_ERROR_UTF8_ERR21 && rc <= PCRE2_ERROR_UTF8_ERR1)
        return (long)pcre2_get_startchar(md);
    return -1;
}

static void test_random_bytes_against_pcre2(void **state) {
    (void)state;
    int         e;
    PCRE2_SIZE  eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR) "", 0, PCRE2_UTF, &e, &eo, NULL);
    assert_non_null(re);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    struct rng        r;
    rng_seed(&r, 20261207);
    int n_invalid = 0;
    for (int t = 0; t < 20000; t++) {
        char   s[24];
        size_t n = 1 + rng_below(&r, sizeof s);
        /* bytes drawn where the cases are: ASCII, continuations and the lead bytes */
        static const unsigned char pool[] = {0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                             0xC0, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEF, 0xF0,
                                             0xF1, 0xF4, 0xF5, 0xFF};
        for (size_t i = 0; i < n; i++) s[i] = (char)pool[rng_below(&r, sizeof pool)];
        long ours = utf8_invalid_at(s, n), theirs = pcre2_invalid_at(re, md, s, n);
        assert_int_equal(ours, theirs);
        n_invalid += ours >= 0;
        struct sbuf v;
        sbuf_init(&v);
        utf8_add_valid(&v, s, n);
        assert_int_equal(pcre2_invalid_at(re, md, v.buf, v.len), -1);
        assert_int_equal(utf8_count(v.buf, v.len), utf8_count(s, n));
        if (ours < 0) assert_memory_equal(v.buf, s, n);
        sbuf_release(&v);
    }
    assert_true(n_invalid > 1000 && n_invalid < 20000); /* both kinds were drawn */
    pcre2_match_data_free(md);
    pcre2_code_free(re);
}

static void test_make_valid(void **state) {
    (void)state;
    char *ok = xstrdup("caf\xC3\xA9"), *same = utf8_make_valid(ok);
    assert_ptr_equal(same, ok); /* valid: no copy */
    free(same);
    char *cut = utf8_make_valid(xstrdup("ab\xE2\x82")); /* a euro sign cut short */
    assert_string_equal(cut, "ab\xEF\xBF\xBD");
    free(cut);
    char *d = utf8_valid_dup("\x80x");
    assert_string_equal(d, "\xEF\xBF\xBDx");
    free(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unicode_examples),
        cmocka_unit_test(test_random_bytes_against_pcre2),
        cmocka_unit_test(test_make_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
