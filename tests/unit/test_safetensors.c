/*
 * Unit tests for safetensors: writer/reader round trip, dtype conversion against IEEE 754
 * bit patterns, files written by Python (tests/fixtures/hf, an independent writer), and
 * crafted headers that lie (each must fail with a message naming the tensor, never read out
 * of bounds: run under make asan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/safetensors.h"
#include "base/util.h"

static char *tmp_file(const char *name) {
    return xasprintf("%s/evalrun-st-%d-%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
                     (int)getpid(), name);
}

static void test_roundtrip(void **state) {
    (void)state;
    float    a[6] = {1.5f, -2.f, 3.25f, 0.f, 1e-3f, -7.f};
    double   d[3] = {0.1, -1e10, 3.0};
    int64_t  q[2] = {-5, 1LL << 40};
    uint16_t h[4] = {0x3C00, 0xC000, 0x7BFF, 0x0001}; /* 1, -2, 65504, 2^-24 */
    uint16_t b[3] = {0x3F80, 0x4049, 0xBF00};           /* 1, 3.140625, -0.5 */
    int64_t  sa[2] = {2, 3}, sd[1] = {3}, sq[1] = {2}, sh[2] = {2, 2}, sb[1] = {3};
    struct st_writer *w = st_writer_new();
    st_writer_add(w, "a", ST_F32, 2, sa, a);
    st_writer_add(w, "d", ST_F64, 1, sd, d);
    st_writer_add(w, "q", ST_I64, 1, sq, q);
    st_writer_add(w, "h", ST_F16, 2, sh, h);
    st_writer_add(w, "b", ST_BF16, 1, sb, b);
    st_writer_add(w, "scalar", ST_F32, 0, NULL, a);
    st_writer_metadata(w, "format", "pt");
    st_writer_metadata(w, "note", "x\"y");
    char          *path = tmp_file("rt.safetensors");
    struct ev_err  err = {{0}};
    assert_int_equal(st_writer_write(w, path, &err), 0);
    st_writer_free(w);

    struct st_file *f = NULL;
    assert_int_equal(st_open(path, &f, &err), 0);
    assert_int_equal(st_count(f), 6);
    assert_string_equal(st_metadata(f, "format"), "pt");
    assert_string_equal(st_metadata(f, "note"), "x\"y");
    assert_null(st_metadata(f, "absent"));
    assert_null(st_find(f, "absent"));
    const struct st_tensor *t = st_find(f, "a");
    assert_non_null(t);
    assert_int_equal(t->dtype, ST_F32);
    assert_int_equal(st_check_shape(t, 2, sa, &err), 0);
    int64_t wrong[2] = {3, 2};
    assert_int_equal(st_check_shape(t, 2, wrong, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "[2, 3]"));
    assert_non_null(strstr(err.msg, "[3, 2]"));
    float out[8];
    assert_int_equal(st_to_f32(t, out, &err), 0);
    assert_memory_equal(out, a, sizeof a);
    assert_int_equal(st_to_f32(st_find(f, "d"), out, &err), 0);
    for (int i = 0; i < 3; i++) assert_true(out[i] == (float)d[i]);
    assert_int_equal(st_to_f32(st_find(f, "h"), out, &err), 0);
    assert_true(out[0] == 1.f && out[1] == -2.f && out[2] == 65504.f);
    assert_true(out[3] == ldexpf(1.f, -24));
    assert_int_equal(st_to_f32(st_find(f, "b"), out, &err), 0);
    assert_true(out[0] == 1.f && out[1] == 3.140625f && out[2] == -0.5f);
    t = st_find(f, "q");
    assert_int_equal(t->n_elem, 2);
    assert_int_equal(st_to_f32(t, out, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "\"q\""));
    assert_memory_equal(t->data, q, sizeof q);
    t = st_find(f, "scalar");
    assert_int_equal(t->n_dims, 0);
    assert_int_equal(t->n_elem, 1);
    st_close(f);
    unlink(path);
    free(path);
}

static void test_f16_specials(void **state) {
    (void)state;
    /* IEEE 754 binary16 patterns and their exact values */
    static const struct { uint16_t h; float v; } cases[] = {
        {0x0000, 0.f},          {0x3C00, 1.f},           {0x3555, 0.333251953125f},
        {0x0400, 6.103515625e-05f}, {0x03FF, 6.097555160522461e-05f}, {0x8001, -5.960464477539063e-08f},
        {0xFBFF, -65504.f},     {0x7C00, INFINITY},      {0xFC00, -INFINITY},
    };
    size_t         n = sizeof cases / sizeof cases[0];
    uint16_t       h[16];
    for (size_t i = 0; i < n; i++) h[i] = cases[i].h;
    h[n] = 0x7E00; /* NaN */
    int64_t          shape[1] = {(int64_t)n + 1};
    struct st_writer *w = st_writer_new();
    st_writer_add(w, "h", ST_F16, 1, shape, h);
    char          *path = tmp_file("f16.safetensors");
    struct ev_err  err = {{0}};
    assert_int_equal(st_writer_write(w, path, &err), 0);
    st_writer_free(w);
    struct st_file *f = NULL;
    assert_int_equal(st_open(path, &f, &err), 0);
    float out[16];
    assert_int_equal(st_to_f32(st_find(f, "h"), out, &err), 0);
    for (size_t i = 0; i < n; i++) assert_true(out[i] == cases[i].v);
    assert_true(isnan(out[n]));
    st_close(f);
    unlink(path);
    free(path);
}

/* Builds an image: 8-byte length, header, then n_data bytes of data. */
static unsigned char *image(const char *header, size_t n_data, size_t *size) {
    size_t         h = strlen(header);
    unsigned char *p = xcalloc(8 + h + n_data + 1, 1);
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(p + 8, header, h);
    *size = 8 + h + n_data;
    return p;
}

static void expect_bad(const char *header, size_t n_data, const char *needle) {
    size_t          size;
    unsigned char  *p = image(header, n_data, &size);
    struct st_file *f = NULL;
    struct ev_err   err = {{0}};
    int             rc = st_open_mem(p, size, "crafted", &f, &err);
    if (rc == 0 || !strstr(err.msg, needle))
        print_error("header %s: rc %d, message [%s], expected [%s]\n", header, rc, err.msg, needle);
    assert_int_equal(rc, EV_EFAIL);
    assert_null(f);
    assert_non_null(strstr(err.msg, "crafted"));
    assert_non_null(strstr(err.msg, needle));
    free(p);
}

static void test_crafted(void **state) {
    (void)state;
    /* a good one first, so the failures below are the lies and nothing else */
    size_t          size;
    unsigned char  *p = image("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                              &size);
    struct st_file *f = NULL;
    struct ev_err   err = {{0}};
    assert_int_equal(st_open_mem(p, size, "good", &f, &err), 0);
    assert_int_equal(st_count(f), 1);
    st_close(f);
    /* every truncation of it fails cleanly */
    for (size_t cut = 0; cut < size; cut++) {
        assert_int_equal(st_open_mem(p, cut, "cut", &f, &err), EV_EFAIL);
        assert_null(f);
    }
    /* header length past the end of the file */
    p[0] = 0xff, p[1] = 0xff;
    assert_int_equal(st_open_mem(p, size, "crafted", &f, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "header length"));
    memset(p, 0xff, 8);
    assert_int_equal(st_open_mem(p, size, "crafted", &f, &err), EV_EFAIL);
    free(p);

    expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 8, "\"x\"");
    expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "need 12 bytes");
    expect_bad("{\"x\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "\"x\"");
    expect_bad("{\"x\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "Q4");
    expect_bad("{\"x\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype");
    expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "shape");
    expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, "shape");
    expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8, "shape");
    expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
               "shape");
    expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
               "\"data_offsets\":[0,8]}}", 8, "\"x\"");
    expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "data_offsets");
    expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "data_offsets");
    expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, "data_offsets");
    expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1e300,1e300]}}", 8,
               "data_offsets");
    expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap");
    expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
               "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
               "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, "overlap");
    expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, "twice");
    expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", 8, "invalid JSON");
    expect_bad("[1, 2]", 8, "not start with");
    expect_bad("{\"x\": 5}", 8, "not an object");
    expect_bad("{\"__metadata__\": {\"k\": 5}}", 0, "__metadata__");
    expect_bad("{\"__metadata__\": [1]}", 0, "__metadata__");
    /* zero-size tensors are fine anywhere in range; an empty header is an empty file */
    p = image("{\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
              "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, &size);
    assert_int_equal(st_open_mem(p, size, "zero", &f, &err), 0);
    assert_int_equal(st_find(f, "e")->n_elem, 0);
    st_close(f);
    free(p);
    p = image("{}", 0, &size);
    assert_int_equal(st_open_mem(p, size, "empty", &f, &err), 0);
    assert_int_equal(st_count(f), 0);
    st_close(f);
    free(p);
    /* a file that is not safetensors at all, by path */
    char *path = tmp_file("not.safetensors");
    assert_int_equal(file_write_atomic(path, "hello", 5, &err), 0);
    assert_int_equal(st_open(path, &f, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, path));
    unlink(path);
    assert_int_equal(st_open(path, &f, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "cannot open"));
    free(path);
}

static struct st_file *open_fixture(const char *rel) {
    const char     *root = getenv("ROOT");
    char           *p = xasprintf("%s/tests/fixtures/hf/%s", root ? root : ".", rel);
    struct st_file *f = NULL;
    struct ev_err   err = {{0}};
    int             rc = st_open(p, &f, &err);
    if (rc != 0) print_error("%s: %s\n", p, err.msg);
    assert_int_equal(rc, 0);
    free(p);
    return f;
}

/* Files written by Python (tests/refs/make_hf_fixtures.py, an independent writer): the F16
 * and BF16 copies convert to within half an ulp of their precision of the F32 original. */
static void test_python_files(void **state) {
    (void)state;
    struct st_file *f32 = open_fixture("llama/model.safetensors");
    struct st_file *f16 = open_fixture("llama_f16/model.safetensors");
    struct st_file *g32 = open_fixture("gpt2/model.safetensors");
    struct st_file *b16 = open_fixture("gpt2_bf16/model.safetensors");
    struct ev_err   err = {{0}};
    assert_string_equal(st_metadata(f32, "format"), "pt");
    const struct st_file *pairs[2][2] = {{f32, f16}, {g32, b16}};
    const double          rel[2] = {1.0 / 2048, 1.0 / 256}; /* 2^-11, 2^-8 */
    for (int k = 0; k < 2; k++) {
        const struct st_file *a = pairs[k][0], *b = pairs[k][1];
        int                   n_checked = 0;
        for (int i = 0; i < st_count(b); i++) {
            const struct st_tensor *tb = st_at(b, i), *ta = st_find(a, tb->name);
            assert_non_null(ta);
            assert_int_equal(tb->dtype, k == 0 ? ST_F16 : ST_BF16);
            assert_int_equal(st_check_shape(tb, ta->n_dims, ta->shape, &err), 0);
            float *x = xmalloc((size_t)ta->n_elem * sizeof *x);
            float *y = xmalloc((size_t)ta->n_elem * sizeof *y);
            assert_int_equal(st_to_f32(ta, x, &err), 0);
            assert_int_equal(st_to_f32(tb, y, &err), 0);
            for (int64_t j = 0; j < ta->n_elem; j++)
                /* plus half the F16 subnormal step for values below its normal range */
                assert_true(fabs((double)x[j] - (double)y[j]) <=
                            rel[k] * fabs((double)x[j]) + 3e-8);
            free(x);
            free(y);
            n_checked++;
        }
        assert_true(n_checked > 10);
    }
    /* the sharded copy holds every tensor of the single file, split over two files */
    struct st_file *s1 = open_fixture("llama_sharded/model-00001-of-00002.safetensors");
    struct st_file *s2 = open_fixture("llama_sharded/model-00002-of-00002.safetensors");
    assert_int_equal(st_count(s1) + st_count(s2), st_count(f32));
    const struct st_tensor *t = st_find(f32, "lm_head.weight");
    const struct st_tensor *u = st_find(s1, "lm_head.weight") ? st_find(s1, "lm_head.weight")
                                                              : st_find(s2, "lm_head.weight");
    assert_non_null(u);
    assert_int_equal(t->n_bytes, u->n_bytes);
    assert_memory_equal(t->data, u->data, t->n_bytes);
    st_close(s1);
    st_close(s2);
    st_close(f32);
    st_close(f16);
    st_close(g32);
    st_close(b16);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_f16_specials),
        cmocka_unit_test(test_crafted),
        cmocka_unit_test(test_python_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
