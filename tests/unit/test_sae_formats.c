/*
 * Unit tests for the dictionaries beyond SAELens residual SAEs (issue 18.3): SAELens
 * transcoders (plain, skip with W_skip, JumpReLU), an SAE on attn.hook_z, EleutherAI sparsify
 * (an SAE and a skip transcoder, one folder per hookpoint), Gemma Scope's params.npz and Gemma
 * Scope 2's params.safetensors (hooks
 * from the path or from a cfg.json; stored, deflated, float16 and Fortran-order members). Each
 * is loaded, encoded and reconstructed against PyTorch (tests/refs/sae_format_fixtures.py)
 * within 1e-5 with identical active sets; its hooks are resolved on stories260K; bad inputs
 * are refused with a message naming the culprit; the .npy parser is checked on hand-made
 * headers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/safetensors.h"
#include "sae/npz.h"
#include "sae/sae.h"

static char *root_path(const char *rel) {
    const char *root = getenv("ROOT");
    return path_join(root && *root ? root : ".", rel);
}

static char *fixture(const char *name) {
    char *rel = xasprintf("tests/fixtures/sae/formats/%s", name);
    char *p = root_path(rel);
    free(rel);
    return p;
}

static float *read_ref(const char *dir, const char *name, int64_t *n) {
    char           *p = path_join(dir, "ref.safetensors");
    struct st_file *f = NULL;
    struct ev_err   err = {{0}};
    if (st_open(p, &f, &err)) fail_msg("%s", err.msg);
    const struct st_tensor *t = st_find(f, name);
    assert_non_null(t);
    float *out = xmalloc((size_t)t->n_elem * sizeof(float));
    assert_int_equal(st_to_f32(t, out, &err), 0);
    *n = t->n_elem;
    st_close(f);
    free(p);
    return out;
}

static double max_rel(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / (1.0 + fabs((double)b[i]));
        if (d > m) m = d;
    }
    return m;
}

struct fmt_case {
    const char     *dir;
    enum sae_format format;
    enum sae_arch   arch;
    int             transcoder, skip, k, apply_b_dec;
    const char     *hook_in, *hook_out; /* TransformerLens names on stories260K */
};

#define GS "width_64/average_l0_9"
static const struct fmt_case cases[] = {
    {"saelens_transcoder", SAE_FORMAT_SAELENS, SAE_ARCH_STANDARD, 1, 0, 0, 0,
     "blocks.2.ln2.hook_normalized", "blocks.2.hook_mlp_out"},
    {"saelens_skip_transcoder", SAE_FORMAT_SAELENS, SAE_ARCH_STANDARD, 1, 1, 0, 0,
     "blocks.2.mlp.hook_in", "blocks.2.hook_mlp_out"},
    {"saelens_jumprelu_transcoder", SAE_FORMAT_SAELENS, SAE_ARCH_JUMPRELU, 1, 0, 0, 0,
     "blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out"},
    {"saelens_hook_z", SAE_FORMAT_SAELENS, SAE_ARCH_STANDARD, 0, 0, 0, 1, "blocks.2.attn.hook_z",
     "blocks.2.attn.hook_z"},
    {"sparsify/layers.2", SAE_FORMAT_SPARSIFY, SAE_ARCH_TOPK, 0, 0, 8, 1,
     "blocks.2.hook_resid_post", "blocks.2.hook_resid_post"},
    {"sparsify/layers.2.mlp", SAE_FORMAT_SPARSIFY, SAE_ARCH_TOPK, 1, 1, 6, 0,
     "blocks.2.mlp.hook_in", "blocks.2.hook_mlp_out"},
    {"gemma-scope-2b-pt-res/layer_2/" GS, SAE_FORMAT_GEMMASCOPE, SAE_ARCH_JUMPRELU, 0, 0, 0, 0,
     "blocks.2.hook_resid_post", "blocks.2.hook_resid_post"},
    {"gemma-scope-2b-pt-transcoders/layer_2/" GS, SAE_FORMAT_GEMMASCOPE, SAE_ARCH_JUMPRELU, 1, 0,
     0, 0, "blocks.2.ln2.hook_normalized", "blocks.2.hook_mlp_out"},
    {"gemma-scope-2b-pt-att/layer_2/" GS, SAE_FORMAT_GEMMASCOPE, SAE_ARCH_JUMPRELU, 0, 0, 0, 0,
     "blocks.2.attn.hook_z", "blocks.2.attn.hook_z"},
    {"gemmascope_cfg", SAE_FORMAT_GEMMASCOPE, SAE_ARCH_JUMPRELU, 0, 0, 0, 0,
     "blocks.3.hook_resid_pre", "blocks.3.hook_resid_pre"},
    /* Gemma Scope 2's affine_skip_connection A (d_in, d_out), y += x A (numpy-made) */
    {"gemma-scope-2b-pt-transcoders/layer_1/width_64/affine_skip", SAE_FORMAT_GEMMASCOPE,
     SAE_ARCH_JUMPRELU, 1, 1, 0, 0, "blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out"},
    /* Gemma Scope 2's params.safetensors: hooks from the path; an F16 affine-skip transcoder */
    {"gemma-scope-2-270m-pt/resid_post/layer_2_width_64_l0_small", SAE_FORMAT_GEMMASCOPE2,
     SAE_ARCH_JUMPRELU, 0, 0, 0, 0, "blocks.2.hook_resid_post", "blocks.2.hook_resid_post"},
    {"gemmascope2_transcoder", SAE_FORMAT_GEMMASCOPE2, SAE_ARCH_JUMPRELU, 1, 1, 0, 0,
     "blocks.2.mlp.hook_in", "blocks.2.hook_mlp_out"},
};

static void test_formats_against_pytorch(void **state) {
    (void)state;
    char         *mp = root_path("evals/models/stories260K/stories260K.bin");
    struct model *m = NULL;
    struct ev_err err = {{0}};
    if (model_load(mp, &m, &err)) fail_msg("%s", err.msg);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct fmt_case *fc = &cases[c];
        char                  *dir = fixture(fc->dir);
        struct sae            *s = NULL;
        if (sae_load(dir, &s, &err)) fail_msg("%s: %s", fc->dir, err.msg);
        assert_int_equal(s->cfg.format, fc->format);
        assert_int_equal(s->cfg.arch, fc->arch);
        assert_int_equal(s->cfg.transcoder, fc->transcoder);
        assert_int_equal(s->cfg.skip, fc->skip);
        assert_int_equal(s->W_skip != NULL, fc->skip);
        assert_int_equal(s->cfg.k, fc->k);
        assert_int_equal(s->cfg.apply_b_dec_to_input, fc->apply_b_dec);
        assert_int_equal(s->cfg.d_in, 64);
        assert_int_equal(s->cfg.d_out, 64);
        assert_int_equal(s->cfg.d_sae, 64);

        /* the hooks, resolved on stories260K */
        struct model_hook hin, hout;
        if (sae_hooks(m, s, dir, &hin, &hout, &err)) fail_msg("%s: %s", fc->dir, err.msg);
        char a[128], b[128];
        model_hook_name(hin, a, sizeof a);
        model_hook_name(hout, b, sizeof b);
        if (strcmp(a, fc->hook_in) || strcmp(b, fc->hook_out))
            fail_msg("%s: hooks %s -> %s, expected %s -> %s", fc->dir, a, b, fc->hook_in,
                     fc->hook_out);

        int64_t nx, nf, ny;
        float  *x = read_ref(dir, "x", &nx), *f_ref = read_ref(dir, "f", &nf);
        float  *y_ref = read_ref(dir, "y", &ny);
        int     n = (int)(nx / s->cfg.d_in);
        float  *f = xmalloc((size_t)nf * sizeof(float)), *f2 = xmalloc((size_t)nf * sizeof(float));
        float  *y = xmalloc((size_t)ny * sizeof(float));
        sae_encode(s, f, x, n);
        sae_encode_ref(s, f2, x, n);
        size_t act_diff = 0;
        for (int64_t i = 0; i < nf; i++) act_diff += (f[i] > 0) != (f_ref[i] > 0);
        size_t n_act = 0;
        for (int64_t i = 0; i < nf; i++) n_act += f_ref[i] > 0;
        double e1 = max_rel(f, f_ref, (size_t)nf), e2 = max_rel(f2, f_ref, (size_t)nf);
        sae_reconstruct(s, y, f_ref, x, n);
        double e3 = max_rel(y, y_ref, (size_t)ny);
        if (e1 > 1e-5 || e2 > 1e-5 || e3 > 1e-5 || act_diff)
            fail_msg("%s: encode %g ref %g reconstruct %g, active-set diffs %zu", fc->dir, e1, e2,
                     e3, act_diff);
        /* the fixtures are neither all-dead nor all-firing */
        assert_true(n_act > 0 && n_act < (size_t)nf);
        if (fc->skip) {
            /* without the skip term the output differs: W_skip is used */
            sae_decode(s, y, f_ref, n);
            assert_true(max_rel(y, y_ref, (size_t)ny) > 1e-3);
        }
        char hex[65];
        if (sae_hash(dir, hex, &err)) fail_msg("%s: %s", fc->dir, err.msg);
        assert_int_equal(strlen(hex), 64);
        free(x); free(f_ref); free(y_ref); free(f); free(f2); free(y);
        sae_free(s);
        free(dir);
    }
    model_free(m);
    free(mp);
}

static void test_bad_inputs_refused(void **state) {
    (void)state;
    static const struct {
        const char *dir, *msg;
    } bad[] = {
        {"bad_no_hook_out", "without hook_name_out"},
        {"bad_no_w_skip", "missing tensor W_skip"},
        {"bad_groupmax/layers.2", "activation 'groupmax' is not supported"},
        {"bad_npz_extra/gemma-scope-2b-pt-res/layer_2/width_64/x", "unexpected member 'W_skip.npy'"},
        {"bad_npz_nohook", "names no Gemma Scope release"},
        {"bad_npz_affine_sae/gemma-scope-2b-pt-res/layer_1/width_64/a",
         "affine_skip_connection in an SAE"},
        {"bad_npz_bigendian/gemma-scope-2b-pt-res/layer_2/w", "dtype '>f4' is not supported"},
        {"bad_gs2_extra/gemma-scope-2-270m-pt/resid_post/layer_2_width_64_l0_small",
         "unexpected tensor 'W_skip'"},
        {"bad_gs2_nohook", "is no Gemma Scope 2 resid_post/layer_L_"},
        {"sparsify", "one per hook; pass one of them"},
        {"nonexistent", "not an SAE folder"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char         *dir = fixture(bad[i].dir);
        struct sae   *s = NULL;
        struct ev_err err = {{0}};
        int           rc = sae_load(dir, &s, &err);
        if (rc == 0) fail_msg("%s: loaded", bad[i].dir);
        assert_null(s);
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("%s: message '%s' lacks '%s'", bad[i].dir, err.msg, bad[i].msg);
        free(dir);
    }
    /* a transcoder whose hooks come in the wrong order, and widths that do not fit */
    char         *mp = root_path("evals/models/stories260K/stories260K.bin");
    struct model *m = NULL;
    struct ev_err err = {{0}};
    if (model_load(mp, &m, &err)) fail_msg("%s", err.msg);
    char       *dir = fixture("saelens_transcoder");
    struct sae *s = NULL;
    if (sae_load(dir, &s, &err)) fail_msg("%s", err.msg);
    struct model_hook hin, hout;
    snprintf(s->cfg.hook_name_out, sizeof s->cfg.hook_name_out, "blocks.1.hook_mlp_out");
    assert_int_not_equal(sae_hooks(m, s, dir, &hin, &hout, &err), 0);
    assert_non_null(strstr(err.msg, "does not come after"));
    snprintf(s->cfg.hook_name_out, sizeof s->cfg.hook_name_out, "blocks.2.mlp.hook_post");
    assert_int_not_equal(sae_hooks(m, s, dir, &hin, &hout, &err), 0);
    assert_non_null(strstr(err.msg, "d_out 64 differs from the width 172"));
    /* a transcoder of one width without a skip term saves as SAELens' "transcoder" and loads
     * back the same (the random-sae control of one, issue 17.2) */
    snprintf(s->cfg.hook_name_out, sizeof s->cfg.hook_name_out, "blocks.2.hook_mlp_out");
    char *out = xstrdup("tmp-transcoder-save");
    if (sae_save(s, out, 1.0, NULL, &err)) fail_msg("%s", err.msg);
    struct sae *back = NULL;
    if (sae_load(out, &back, &err)) fail_msg("%s", err.msg);
    assert_int_equal(back->cfg.transcoder, 1);
    assert_int_equal(back->cfg.d_out, 64);
    assert_string_equal(back->cfg.hook_name_out, "blocks.2.hook_mlp_out");
    assert_int_equal(back->cfg.apply_b_dec_to_input, 0);
    size_t nw = (size_t)s->cfg.d_in * (size_t)s->cfg.d_sae * sizeof(float);
    assert_memory_equal(back->W_enc, s->W_enc, nw);
    assert_memory_equal(back->W_dec, s->W_dec, nw);
    assert_memory_equal(back->b_dec, s->b_dec, 64 * sizeof(float));
    sae_free(back);
    char *rm = xasprintf("rm -rf '%s'", out);
    assert_int_equal(system(rm), 0);
    free(rm);
    free(out);
    sae_free(s);
    free(dir);
    /* a skip transcoder is not (W_skip has no place in the layout) */
    dir = fixture("saelens_skip_transcoder");
    if (sae_load(dir, &s, &err)) fail_msg("%s", err.msg);
    out = xstrdup("tmp-skip-transcoder-save");
    assert_int_not_equal(sae_save(s, out, 1.0, NULL, &err), 0);
    assert_non_null(strstr(err.msg, "transcoder"));
    free(out);
    sae_free(s);
    free(dir);
    model_free(m);
    free(mp);
}

/* A .npy file: header dict text, then nbytes of data (zeros). */
static uint8_t *npy(const char *dict, size_t nbytes, int major, size_t *n) {
    size_t hl = strlen(dict), pre = major == 1 ? 10 : 12;
    *n = pre + hl + nbytes;
    uint8_t *b = xcalloc(*n, 1);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)major;
    b[7] = 0;
    b[8] = (uint8_t)(hl & 0xFF);
    b[9] = (uint8_t)(hl >> 8);
    memcpy(b + pre, dict, hl);
    return b;
}

static void test_npy_parse(void **state) {
    (void)state;
    struct npy_array a;
    struct ev_err    err = {{0}};
    size_t           n;
    uint8_t *b = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 24, 1, &n);
    assert_int_equal(npy_parse(b, n, "t", &a, &err), 0);
    assert_int_equal(a.dtype, NPY_F32);
    assert_int_equal(a.n_dims, 2);
    assert_int_equal(a.shape[0], 2);
    assert_int_equal(a.shape[1], 3);
    assert_int_equal(a.n_elem, 6);
    free(b);
    /* a 1-d shape written "(5,)", version 2.0, float16 */
    b = npy("{'descr': '<f2', 'fortran_order': False, 'shape': (5,), }", 10, 2, &n);
    assert_int_equal(npy_parse(b, n, "t", &a, &err), 0);
    assert_int_equal(a.n_dims, 1);
    assert_int_equal(a.shape[0], 5);
    free(b);
    /* Fortran order: the values come back in C order */
    b = npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, 1, &n);
    float col[6] = {1, 4, 2, 5, 3, 6}, c[6]; /* [[1,2,3],[4,5,6]] column-major */
    memcpy(b + n - 24, col, sizeof col);
    assert_int_equal(npy_parse(b, n, "t", &a, &err), 0);
    npy_to_f32(&a, c);
    for (int i = 0; i < 6; i++) assert_true(c[i] == (float)(i + 1));
    free(b);
    static const struct {
        const char *dict;
        size_t      nbytes;
        const char *msg;
    } bad[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20, "need 24"},
        {"{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", 8, "'<i4' is not supported"},
        {"{'descr': '<V2', 'fortran_order': False, 'shape': (2,), }", 4, "'<V2' is not supported"},
        {"{'descr': '<f4', 'shape': (2,), }", 8, "lacks fortran_order"},
        {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }", 8, "True or False"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (a,), }", 8, "non-integer"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8, "structured"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", 0,
         "too large"},
        {"['descr']", 0, "not a dict literal"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        b = npy(bad[i].dict, bad[i].nbytes, 1, &n);
        assert_int_not_equal(npy_parse(b, n, "t", &a, &err), 0);
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("case %zu: message '%s' lacks '%s'", i, err.msg, bad[i].msg);
        free(b);
    }
    /* truncated: header length past the end; no magic */
    b = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 4, 1, &n);
    assert_int_not_equal(npy_parse(b, 30, "t", &a, &err), 0);
    assert_non_null(strstr(err.msg, "truncated"));
    b[0] = 'X';
    assert_int_not_equal(npy_parse(b, n, "t", &a, &err), 0);
    assert_non_null(strstr(err.msg, "magic"));
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats_against_pytorch),
        cmocka_unit_test(test_bad_inputs_refused),
        cmocka_unit_test(test_npy_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
