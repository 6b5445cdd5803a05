/*
 * Unit tests for tok: the llama2.c tokenizer against ids from a port of run.c's encode()
 * (tests/refs/tok_llama2c_refs.py, checked against run.c itself), byte-level BPE against
 * OpenAI's GPT-2 encoder algorithm (tests/refs/tok_gpt2_refs.py), tokenizer.json variants,
 * and corrupt files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "base/rx.h"
#include "model/tok.h"
#include "base/util.h"

static char *fixture(const char *rel) {
    const char *root = getenv("ROOT");
    return xasprintf("%s/tests/fixtures/%s", root ? root : ".", rel);
}

static char *tmp_path(const char *name) {
    return xasprintf("%s/%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", name);
}

static struct tok *load_ok(const char *rel) {
    char          *p = fixture(rel);
    struct tok    *t = NULL;
    struct ev_err  err = {{0}};
    int            rc = tok_load(p, &t, &err);
    if (rc != 0) print_error("%s: %s\n", p, err.msg);
    assert_int_equal(rc, 0);
    free(p);
    return t;
}

/* Checks every {"text", "ids"} case of a fixture: exact ids, and decode(encode) == text. */
static void check_cases_skip(struct tok *t, const char *rel, int add_bos, int roundtrip,
                             const char *const *skips);

static void check_cases(struct tok *t, const char *rel, int add_bos, int roundtrip) {
    check_cases_skip(t, rel, add_bos, roundtrip, NULL);
}

/* skips: NULL-terminated; cases whose text contains one (or, written "^X", starts with X)
 * are left out (documented differences). */
static void check_cases_skip(struct tok *t, const char *rel, int add_bos, int roundtrip,
                             const char *const *skips) {
    char          *p = fixture(rel);
    cJSON         *cases = NULL;
    struct ev_err  err = {{0}};
    assert_int_equal(json_parse_file(p, &cases, &err), 0);
    int            n_cases = 0;
    const cJSON   *c;
    cJSON_ArrayForEach(c, cases) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        const cJSON *want = cJSON_GetObjectItem(c, "ids");
        int skip = 0;
        for (int k = 0; skips && skips[k]; k++) {
            if (skips[k][0] == '^') skip |= strncmp(text, skips[k] + 1, strlen(skips[k] + 1)) == 0;
            else skip |= strstr(text, skips[k]) != NULL;
        }
        if (skip) continue;
        int        *ids = NULL, n = 0;
        assert_int_equal(tok_encode(t, text, add_bos, &ids, &n, &err), 0);
        int ok = n == cJSON_GetArraySize(want);
        for (int i = 0; ok && i < n; i++)
            ok = ids[i] == cJSON_GetArrayItem(want, i)->valueint;
        if (!ok) {
            print_error("case %d %s: got %d ids:", n_cases, rel, n);
            for (int i = 0; i < n; i++) print_error(" %d", ids[i]);
            print_error("\nwant %d ids\n", cJSON_GetArraySize(want));
        }
        assert_true(ok);
        int special = 0;
        for (int i = add_bos; i < n; i++) special |= ids[i] == tok_bos(t) || ids[i] == tok_eos(t);
        if (roundtrip && !special) {
            char *back = NULL;
            assert_int_equal(tok_decode(t, ids, n, &back, &err), 0);
            if (strcmp(back, text) != 0) print_error("case %d: decoded [%s]\n", n_cases, back);
            assert_string_equal(back, text);
            free(back);
        }
        free(ids);
        n_cases++;
    }
    assert_true(n_cases > 5);
    json_free(cases);
    free(p);
}

static void test_llama2c_cases(void **state) {
    (void)state;
    struct tok *t = load_ok("tok/tok512.bin");
    assert_int_equal(tok_vocab_size(t), 512);
    assert_int_equal(tok_bos(t), 1);
    assert_int_equal(tok_eos(t), 2);
    /* HF splits added tokens (<s>, </s>, <unk>) out of the text; llama2.c spells them */
    static const char *const skips[] = {"<s>", NULL};
    check_cases_skip(t, "tok/llama2c_cases.json", 1, 1, skips);
    tok_free(t);
}

static void test_llama2c_known(void **state) {
    (void)state;
    struct tok    *t = load_ok("tok/tok512.bin");
    struct ev_err  err = {{0}};
    int           *ids = NULL, n = 0;
    /* run.c: 1 403 407 261 378 (checked by compiling run.c's encode) */
    assert_int_equal(tok_encode(t, "Once upon a time", 1, &ids, &n, &err), 0);
    static const int want[] = {1, 403, 407, 261, 378};
    assert_int_equal(n, 5);
    assert_memory_equal(ids, want, sizeof want);
    /* pieces as run.c's decode() prints them: the leading space goes after BOS only */
    assert_string_equal(tok_piece(t, 1, 403), "Once");
    assert_string_equal(tok_piece(t, 403, 407), " upon");
    char *text = NULL;
    assert_int_equal(tok_decode(t, ids, n, &text, &err), 0);
    assert_string_equal(text, "Once upon a time");
    free(text);
    free(ids);
    /* without BOS the dummy prefix is still there; decode still strips it at the start */
    assert_int_equal(tok_encode(t, "Once upon a time", 0, &ids, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(ids, want + 1, 4 * sizeof *ids);
    free(ids);
    /* byte fallback pieces decode to their byte; out-of-range ids are an error */
    int bytes[] = {1, 0xE7 + 3, 0x8C + 3, 0xAB + 3};
    assert_int_equal(tok_decode(t, bytes, 4, &text, &err), 0);
    assert_string_equal(text, "猫");
    free(text);
    int bad[] = {5, 512};
    assert_int_equal(tok_decode(t, bad, 2, &text, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "512"));
    tok_free(t);
}

static int write_file(const char *path, const void *data, size_t n) {
    struct ev_err err;
    return file_write_atomic(path, data, n, &err);
}

static void test_llama2c_corrupt(void **state) {
    (void)state;
    char          *p = fixture("tok/tok512.bin");
    char          *data = NULL;
    size_t         len = 0;
    struct ev_err  err = {{0}};
    struct tok    *t = NULL;
    assert_int_equal(file_read_all(p, &data, &len, &err), 0);
    /* every truncation either fails cleanly or (at a record boundary) loads fewer tokens */
    int failed = 0;
    for (size_t cut = 0; cut < len; cut += 7) {
        int rc = tok_load_llama2c_mem(data, cut, "cut", &t, &err);
        if (rc == 0) {
            assert_true(tok_vocab_size(t) < 512);
            tok_free(t);
            t = NULL;
        } else {
            assert_int_equal(rc, EV_EFAIL);
            assert_non_null(strstr(err.msg, "cut"));
            failed++;
        }
    }
    assert_true(failed > 0);
    /* a length that runs past the end of the file */
    char *bad = xmalloc(len);
    memcpy(bad, data, len);
    int32_t huge = 1 << 30;
    memcpy(bad + 4 + 4, &huge, 4);
    assert_int_equal(tok_load_llama2c_mem(bad, len, "bad", &t, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "token 0"));
    int32_t neg = -5;
    memcpy(bad + 4 + 4, &neg, 4);
    assert_int_equal(tok_load_llama2c_mem(bad, len, "bad", &t, &err), EV_EFAIL);
    /* a max_token_length that makes no sense: e.g. a JSON file given as tokenizer.bin */
    const char *json = "{\"model\": {}}";
    char       *jp = tmp_path("evalrun-test-tok.bin");
    assert_int_equal(write_file(jp, json, strlen(json)), 0);
    assert_int_equal(tok_load(jp, &t, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "max_token_length"));
    unlink(jp);
    free(jp);
    free(bad);
    free(data);
    free(p);
}

static struct tok *load_path(const char *rel_to_root) {
    const char    *root = getenv("ROOT");
    char          *p = xasprintf("%s/%s", root ? root : ".", rel_to_root);
    struct tok    *t = NULL;
    struct ev_err  err = {{0}};
    int            rc = tok_load(p, &t, &err);
    if (rc != 0) print_error("%s: %s\n", p, err.msg);
    assert_int_equal(rc, 0);
    free(p);
    return t;
}

/* GPT-2's own files, folder and file forms, against OpenAI's encoder algorithm. */
static void test_gpt2_cases(void **state) {
    (void)state;
    struct tok *t = load_path("evals/tokenizers/gpt2");
    assert_int_equal(tok_vocab_size(t), 50257);
    assert_int_equal(tok_eos(t), 50256);
    check_cases(t, "tok/gpt2_cases.json", 0, 1);
    tok_free(t);
    t = load_path("evals/tokenizers/gpt2/vocab.bpe");
    struct ev_err err = {{0}};
    int          *ids = NULL, n = 0;
    /* the merges the shared copy had lost (see evals/tokenizers/gpt2/README.md) */
    assert_int_equal(tok_encode(t, "Running", 0, &ids, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 28768);
    free(ids);
    tok_free(t);
}

/* tokenizer.json, byte-level: GPT-2 style (ByteLevel regex, "a b" merges, special added
 * token) and Qwen2 style (Split regex + ByteLevel, [a, b] merges). */
static void test_hf_bytelevel_cases(void **state) {
    (void)state;
    struct tok *t = load_ok("hf/gpt2/tokenizer.json");
    assert_int_equal(tok_vocab_size(t), 557);
    check_cases(t, "tok/hf_gpt2_tiny_cases.json", 0, 1);
    tok_free(t);
    t = load_ok("hf/gpt2"); /* the folder form */
    tok_free(t);
    t = load_ok("hf/qwen2/tokenizer.json");
    check_cases(t, "tok/hf_qwen2_tiny_cases.json", 0, 1);
    tok_free(t);
}

/* Pre-tokenizer variants found in the wild (tests/refs/tok_gpt2_refs.py): Llama-3's Split
 * regex with ignore_merges, SmolLM's Digits + ByteLevel, RoBERTa's add_prefix_space. */
static void test_hf_variants(void **state) {
    (void)state;
    static const char *const names[] = {"llama3", "smollm", "prefix"};
    for (int i = 0; i < 3; i++) {
        char rel[128], cases[128];
        snprintf(rel, sizeof rel, "tok/variant_%s.tokenizer.json", names[i]);
        snprintf(cases, sizeof cases, "tok/variant_%s_cases.json", names[i]);
        struct tok *t = load_ok(rel);
        /* add_prefix_space adds a space that decoding keeps */
        check_cases(t, cases, 0, i != 2);
        tok_free(t);
    }
}

/* tokenizer.json, SentencePiece-style (tok512 written as HF's LlamaConverter does): the
 * same ids as llama2.c's own algorithm on tokenizer.bin. */
static void test_hf_spm_cases(void **state) {
    (void)state;
    struct tok *t = load_ok("hf/llama/tokenizer.json");
    assert_int_equal(tok_vocab_size(t), 512);
    assert_int_equal(tok_bos(t), 1);
    assert_int_equal(tok_eos(t), 2);
    /* HF splits added tokens (<s>, </s>, <unk>) out of the text; llama2.c spells them */
    static const char *const skips[] = {"<s>", NULL};
    check_cases_skip(t, "tok/llama2c_cases.json", 1, 1, skips);
    tok_free(t);
}

/* Loads tokenizer.json text from memory; returns the rc and leaves the message in err. */
static int load_json_text(const char *json, struct tok **t, struct ev_err *err) {
    return tok_load_json_mem(json, strlen(json), "test.json", t, err);
}

static void test_json_unsupported(void **state) {
    (void)state;
    static const struct { const char *json, *needle; } cases[] = {
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", "WordPiece"},
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}", "Unigram"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"pre_tokenizer\": {\"type\": \"Whitespace\"}}", "Whitespace"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"normalizer\": {\"type\": \"Lowercase\"}}", "Lowercase"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
         "neither byte-level"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}", "\"a\""},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [5]}, "
         "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", "merge 0"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, "
         "\"behavior\": \"Isolated\"}}", "regular expression"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
         "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"a\"}, "
         "\"behavior\": \"Contiguous\"}}", "Contiguous"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 9000000}, "
         "\"merges\": []}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", "far beyond"},
        {"{\"vocab\": {}}", "no \"model\""},
        {"[1, 2", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tok   *t = NULL;
        struct ev_err err = {{0}};
        int           rc = load_json_text(cases[i].json, &t, &err);
        if (rc == 0 || !strstr(err.msg, cases[i].needle))
            print_error("case %zu: rc %d [%s], expected [%s]\n", i, rc, err.msg, cases[i].needle);
        assert_int_equal(rc, EV_EFAIL);
        assert_null(t);
        assert_non_null(strstr(err.msg, "test.json"));
        assert_non_null(strstr(err.msg, cases[i].needle));
    }
}

/* The pre-2024 SentencePiece tokenizer.json shape (Metaspace pre-tokenizer, no normalizer)
 * encodes as the current one (Prepend + Replace normalizer) on this vocabulary. */
static void test_json_legacy_metaspace(void **state) {
    (void)state;
    char          *p = fixture("hf/llama/tokenizer.json");
    cJSON         *j = NULL;
    struct ev_err  err = {{0}};
    assert_int_equal(json_parse_file(p, &j, &err), 0);
    cJSON_ReplaceItemInObject(j, "normalizer", cJSON_CreateNull());
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "type", "Metaspace");
    cJSON_AddStringToObject(meta, "replacement", "\xe2\x96\x81");
    cJSON_AddBoolToObject(meta, "add_prefix_space", 1);
    cJSON_ReplaceItemInObject(j, "pre_tokenizer", meta);
    char       *text = json_print(j);
    struct tok *t = NULL;
    assert_int_equal(load_json_text(text, &t, &err), 0);
    /* legacy Metaspace prepends "▁" only when the text does not already start with one (after
     * spaces became "▁"), unlike SentencePiece: texts starting with a space differ */
    static const char *const skips[] = {"<s>", "^ ", NULL};
    check_cases_skip(t, "tok/llama2c_cases.json", 1, 1, skips);
    int          *ids = NULL, n = 0;
    assert_int_equal(tok_encode(t, " ", 0, &ids, &n, &err), 0);
    assert_int_equal(n, 1); /* HF: " " -> "▁" (SentencePiece: "▁▁") */
    free(ids);
    tok_free(t);
    free(text);
    json_free(j);
    free(p);
}

static void test_invalid_utf8(void **state) {
    (void)state;
    struct tok    *t = load_path("evals/tokenizers/gpt2");
    struct ev_err  err = {{0}};
    int           *ids = NULL, n = 0;
    assert_int_equal(tok_encode(t, "ok \xc3\x28 bad", 0, &ids, &n, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "byte 3"));
    assert_int_equal(tok_encode(t, "\xed\xa0\x80", 0, &ids, &n, &err), EV_EFAIL); /* surrogate */
    assert_int_equal(tok_encode(t, "\xc0\xaf", 0, &ids, &n, &err), EV_EFAIL);     /* overlong */
    assert_int_equal(tok_encode(t, "", 0, &ids, &n, &err), 0);
    assert_int_equal(n, 0);
    free(ids);
    tok_free(t);
    /* llama2.c takes any bytes (its byte fallback covers them), as run.c does */
    t = load_ok("tok/tok512.bin");
    assert_int_equal(tok_encode(t, "a\xff\xfe", 1, &ids, &n, &err), 0);
    assert_int_equal(ids[n - 1], 0xfe + 3);
    assert_int_equal(ids[n - 2], 0xff + 3);
    free(ids);
    tok_free(t);
}

/* rx, the PCRE2 wrapper the tokenizers use: Unicode classes (UCP), groups, errors. */
static void test_rx(void **state) {
    (void)state;
    struct rx       *r = NULL;
    struct ev_err    err = {{0}};
    size_t           b, e;
    const char      *s = "ab \xd0\x9a\xd0\xbe\xd1\x82\xe3\x80\x80\xe7\x8c\xab 42"; /* ab Кот<U+3000>猫 42 */
    assert_int_equal(rx_compile(" ?\\p{L}+", 0, "t", &r, &err), 0);
    struct rx_match *m = rx_match_new(r);
    assert_int_equal(rx_search(r, m, s, strlen(s), 2, &b, &e, &err), 1);
    assert_int_equal(b, 2); /* " Кот": Cyrillic letters are \p{L} */
    assert_int_equal(e, 9);
    assert_int_equal(rx_search(r, m, s, strlen(s), 9, &b, &e, &err), 1);
    assert_int_equal(b, 12); /* U+3000 is not a letter; 猫 is */
    assert_int_equal(e, 15);
    rx_match_free(m);
    rx_free(r);
    /* \s follows Unicode under UCP: U+3000 IDEOGRAPHIC SPACE */
    assert_int_equal(rx_compile("\\s+", 0, "t", &r, &err), 0);
    m = rx_match_new(r);
    assert_int_equal(rx_search(r, m, s, strlen(s), 3, &b, &e, &err), 1);
    assert_int_equal(b, 9);
    assert_int_equal(e, 12);
    rx_match_free(m);
    rx_free(r);
    /* caseless, groups, no match */
    assert_int_equal(rx_compile("(a)(x)?(B)", RX_CASELESS, "t", &r, &err), 0);
    m = rx_match_new(r);
    assert_int_equal(rx_search(r, m, "zAb", 3, 0, &b, &e, &err), 1);
    assert_int_equal(rx_group(m, 1, &b, &e), 1);
    assert_int_equal(b, 1);
    assert_int_equal(rx_group(m, 2, &b, &e), 0);
    assert_int_equal(rx_group(m, 3, &b, &e), 1);
    assert_int_equal(b, 2);
    assert_int_equal(rx_group(m, 9, &b, &e), 0);
    assert_int_equal(rx_search(r, m, "zzz", 3, 0, &b, &e, &err), 0);
    rx_match_free(m);
    rx_free(r);
    assert_int_equal(rx_compile("(ab", 0, "my pattern", &r, &err), EV_EFAIL);
    assert_null(r);
    assert_non_null(strstr(err.msg, "my pattern"));
    assert_non_null(strstr(err.msg, "offset 3"));
    /* the UTF-8 validator: RFC 3629 */
    static const struct { const char *s; long at; } v[] = {
        {"plain", -1}, {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", -1}, {"a\x80", 1},
        {"\xc0\x80", 0}, {"\xe0\x80\x80", 0}, {"\xed\xa0\x80", 0}, {"\xf4\x90\x80\x80", 0},
        {"ab\xe2\x82", 2}, {"\xf8\x88\x80\x80\x80", 0}, {"\xef\xbf\xbf", -1},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        assert_int_equal(rx_utf8_invalid_at(v[i].s, strlen(v[i].s)), v[i].at);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama2c_cases),
        cmocka_unit_test(test_llama2c_known),
        cmocka_unit_test(test_llama2c_corrupt),
        cmocka_unit_test(test_gpt2_cases),
        cmocka_unit_test(test_hf_bytelevel_cases),
        cmocka_unit_test(test_hf_spm_cases),
        cmocka_unit_test(test_hf_variants),
        cmocka_unit_test(test_json_unsupported),
        cmocka_unit_test(test_json_legacy_metaspace),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_rx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
