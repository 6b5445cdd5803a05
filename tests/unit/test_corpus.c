/* Unit tests for corpus: plain text pieces (the same cut as the whole-file reader it
 * replaced), NUL bytes refused with their offset (issue 20.2), JSON Lines records, folders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/corpus.h"
#include "base/util.h"

static void write_file(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* Reads the whole corpus: the pieces joined with '|' before each document start. */
static int read_all(const char *path, const char *field, struct sbuf *sb, int *n_pieces,
                    struct ev_err *err) {
    struct corpus *c = NULL;
    int            rc = corpus_open(path, field, &c, err);
    *n_pieces = 0;
    if (rc != EV_OK) return rc;
    const char *t;
    size_t      n;
    int         ds;
    while ((rc = corpus_next(c, &t, &n, &ds, err)) == 1) {
        assert_int_equal(strlen(t), n);
        if (ds) sbuf_adds(sb, "|");
        sbuf_add(sb, t, n);
        (*n_pieces)++;
    }
    corpus_close(c);
    return rc;
}

static void test_plain_pieces_match_the_whole_file_cut(void **state) {
    (void)state;
    /* lines of varying length, one longer than a read block, about 300 KB in all */
    struct sbuf text;
    sbuf_init(&text);
    struct rng r;
    rng_seed(&r, 7);
    for (int i = 0; text.len < 300000; i++) {
        size_t len = i == 40 ? 70000 : rng_below(&r, 300);
        for (size_t k = 0; k < len; k++) sbuf_add(&text, &"abc de"[rng_below(&r, 6)], 1);
        sbuf_adds(&text, "\n");
    }
    sbuf_adds(&text, "no newline at the end");
    write_file("plain.txt", text.buf, text.len);

    /* the reference: the cut the old reader made on the whole file in memory */
    size_t ref_ends[4096];
    int    n_ref = 0;
    for (size_t pos = 0; pos < text.len;) {
        size_t end = pos + 2000 < text.len ? pos + 2000 : text.len;
        while (end < text.len && text.buf[end - 1] != '\n') end++;
        ref_ends[n_ref++] = end;
        pos = end;
    }
    struct corpus *c = NULL;
    struct ev_err  err;
    assert_int_equal(corpus_open("plain.txt", NULL, &c, &err), EV_OK);
    assert_string_equal(corpus_kind(c), "plain text");
    size_t      at = 0;
    int         k = 0, rc, ds;
    const char *t;
    size_t      n;
    while ((rc = corpus_next(c, &t, &n, &ds, &err)) == 1) {
        assert_true(k < n_ref);
        assert_int_equal(ds, 0);
        assert_int_equal(at + n, ref_ends[k]);
        assert_memory_equal(t, text.buf + at, n);
        at += n;
        k++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(k, n_ref);
    assert_int_equal(at, text.len);
    assert_int_equal(corpus_n_docs(c), 1);
    corpus_close(c);
    sbuf_release(&text);
}

static void test_nul_byte_refused_with_its_offset(void **state) {
    (void)state;
    /* issue 20.2: one NUL after 10 KB gave 3,175 tokens instead of ~60,000 */
    static const long long offsets[] = {10240, 65535, 65536, 200001};
    for (size_t i = 0; i < sizeof offsets / sizeof *offsets; i++) {
        size_t n = 250000;
        char  *b = xmalloc(n);
        for (size_t k = 0; k < n; k++) b[k] = k % 61 == 60 ? '\n' : 'x';
        b[offsets[i]] = '\0';
        write_file("nul.txt", b, n);
        free(b);
        struct sbuf   sb;
        struct ev_err err;
        int           np;
        sbuf_init(&sb);
        assert_int_equal(read_all("nul.txt", NULL, &sb, &np, &err), EV_EFAIL);
        char want[64];
        snprintf(want, sizeof want, "a NUL byte at offset %lld", offsets[i]);
        assert_non_null(strstr(err.msg, want));
        assert_non_null(strstr(err.msg, "nul.txt"));
        sbuf_release(&sb);
    }
}

static void test_jsonl_records(void **state) {
    (void)state;
    const char *j = "{\"text\": \"Once upon a time\", \"id\": 1}\n"
                    "\n"
                    "{\"id\": 2, \"text\": \"a back\\\\u0000slash is text\"}\r\n"
                    "{\"text\": \"caf\\u00e9\\nline\"}";
    write_file("d.jsonl", j, strlen(j));
    struct sbuf   sb;
    struct ev_err err;
    int           np;
    sbuf_init(&sb);
    assert_int_equal(read_all("d.jsonl", NULL, &sb, &np, &err), 0);
    assert_int_equal(np, 3);
    assert_string_equal(sb.buf, "Once upon a time|a back\\u0000slash is text|caf\xc3\xa9\nline");
    sbuf_release(&sb);

    /* another field, and the same file read as JSON Lines whatever its name */
    const char *k = "{\"content\": \"one\"}\n{\"content\": \"two\"}\n";
    write_file("d.txt", k, strlen(k));
    sbuf_init(&sb);
    assert_int_equal(read_all("d.txt", "content", &sb, &np, &err), 0);
    assert_string_equal(sb.buf, "one|two");
    sbuf_release(&sb);

    static const struct { const char *body, *want; } bad[] = {
        {"{\"text\": \"ok\"}\n{\"text\": \"a\\u0000b\"}\n", "d.jsonl:2: the text holds a NUL character (\\u0000) at offset 26"},
        {"{\"text\": \"ok\"}\n{\"body\": \"x\", \"n\": 3}\n", "d.jsonl:2: the record has no string field \"text\" (its fields: body, n; --text-field KEY names another)"},
        {"{\"text\": 5}\n", "d.jsonl:1: the record has no string field \"text\""},
        {"[{\"text\": \"a\"}]\n", "d.jsonl: a JSON array, not JSON Lines"},
        {"{\"text\": \"a\"}\nnot json\n", "d.jsonl:2: not a JSON object"},
        {"\"just a string\"\n", "d.jsonl:1: not a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_file("d.jsonl", bad[i].body, strlen(bad[i].body));
        sbuf_init(&sb);
        assert_int_equal(read_all("d.jsonl", NULL, &sb, &np, &err), EV_EFAIL);
        if (!strstr(err.msg, bad[i].want)) fail_msg("%s\n  want: %s", err.msg, bad[i].want);
        sbuf_release(&sb);
    }
    struct corpus *c = NULL;
    assert_int_equal(corpus_open("d.jsonl", "", &c, &err), EV_EUSAGE);
}

static void test_folder(void **state) {
    (void)state;
    struct ev_err err;
    struct sbuf   sb;
    int           np;
    assert_int_equal(mkdir_p("f/sub", &err), EV_OK);
    assert_int_equal(mkdir_p("f/.git", &err), EV_OK);
    write_file("f/b.txt", "bee\n", 4);
    write_file("f/a.jsonl", "{\"text\": \"ay\"}\n{\"text\": \"ay2\"}\n", 31);
    write_file("f/sub/c.txt", "sea", 3);
    write_file("f/.hidden", "no", 2);
    write_file("f/.git/x", "no", 2);
    sbuf_init(&sb);
    assert_int_equal(read_all("f", NULL, &sb, &np, &err), 0);
    assert_string_equal(sb.buf, "ay|ay2|bee\n|sea");
    sbuf_release(&sb);
    struct corpus *c = NULL;
    assert_int_equal(corpus_open("f", NULL, &c, &err), EV_OK);
    assert_string_equal(corpus_kind(c), "a folder of 3 files");
    corpus_close(c);

    write_file("f/sub/d.parquet", "PAR1", 4);
    assert_int_equal(corpus_open("f", NULL, &c, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "f/sub/d.parquet: a .parquet file is not text"));
    assert_non_null(strstr(err.msg, "to_json"));
    assert_int_equal(mkdir_p("empty/.x", &err), EV_OK);
    assert_int_equal(corpus_open("empty", NULL, &c, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "empty: no corpus files in the folder"));
    assert_int_equal(corpus_open("no-such-thing", NULL, &c, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "no-such-thing"));
}

static void test_hash_is_the_content(void **state) {
    (void)state;
    struct ev_err  err;
    char           h[4][65];
    const char    *paths[] = {"h1.txt", "h2.txt", "h3.txt", "h4.jsonl"};
    const char    *bodies[] = {"same text\n", "same text\n", "other text\n",
                               "{\"text\": \"same text\\n\"}\n"};
    for (int i = 0; i < 4; i++) {
        struct corpus *c = NULL;
        write_file(paths[i], bodies[i], strlen(bodies[i]));
        assert_int_equal(corpus_open(paths[i], NULL, &c, &err), EV_OK);
        const char *t;
        size_t      n;
        int         ds;
        while (corpus_next(c, &t, &n, &ds, &err) == 1) {}
        corpus_hash(c, h[i]);
        corpus_close(c);
    }
    assert_string_equal(h[0], h[1]);     /* another name, the same text */
    assert_string_not_equal(h[0], h[2]); /* other text */
    assert_string_equal(h[0], h[3]);     /* one document either way */
}

static int setup_dir(void **state) {
    (void)state;
    char tmpl[] = "/tmp/test_corpus.XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    *state = xstrdup(d);
    return chdir(d);
}

static int teardown_dir(void **state) {
    struct ev_err err;
    char         *cmd = xasprintf("rm -rf '%s'", (char *)*state);
    int           rc = system(cmd);
    (void)err;
    free(cmd);
    free(*state);
    return rc == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_pieces_match_the_whole_file_cut),
        cmocka_unit_test(test_nul_byte_refused_with_its_offset),
        cmocka_unit_test(test_jsonl_records),
        cmocka_unit_test(test_folder),
        cmocka_unit_test(test_hash_is_the_content),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
