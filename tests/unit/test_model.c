/*
 * Unit tests for the model runtime:
 *   - HF fixtures (tests/fixtures/hf, made by tests/refs/make_hf_fixtures.py with PyTorch):
 *     logits, loss, residuals at every hook and gradients at blocks.1 against the references;
 *   - stories260K in HF layout (q/k permuted as HF's converter does) == the llama2.c .bin;
 *   - KV-cache decoding == prefill, at every position, for several architectures;
 *   - backward to a hook against central finite differences (stories260K, tiny random models);
 *   - hook semantics (read/replace/add, two-phase), hook names, cross-entropy, sampling;
 *   - corrupt checkpoints give errors, never crashes.
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
#include <unistd.h>

#include "model/kern.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "model/sample.h"
#include "base/json.h"
#include "base/util.h"

static char *root_path(const char *rel) {
    const char *root = getenv("ROOT");
    return path_join(root && *root ? root : ".", rel);
}

static struct model *load_flags_or_fail(const char *rel, int flags) {
    char         *p = root_path(rel);
    struct model *m = NULL;
    struct ev_err err = {{0}};
    /* the numerics do not need the tokenizer (tokenizer.json is tested in test_tok) */
    if (model_load_flags(p, MODEL_LOAD_NO_TOKENIZER | flags, &m, &err) != EV_OK)
        fail_msg("loading %s: %s", p, err.msg);
    free(p);
    return m;
}

static struct model *load_or_fail(const char *rel) { return load_flags_or_fail(rel, 0); }

static struct model *stories(void) {
    return load_or_fail("evals/models/stories260K/stories260K.bin");
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= mx)) mx = d; /* NaN propagates */
    }
    return mx;
}

static double max_abs(const float *a, size_t n) {
    double mx = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > mx) mx = fabs(a[i]);
    return mx;
}

/* Multiplies the first n entries of a float32 matrix of a random model by k (no-op when
 * the model lacks it). */
static void scale_mat(struct model_mat *m, size_t n, float k) {
    float *p = (float *)m->data;
    if (!p) return;
    assert_int_equal(m->dtype, MODEL_DTYPE_F32);
    for (size_t i = 0; i < n; i++) p[i] *= k;
}

/* tiny random models of each supported shape */
static struct model *tiny(int kind, uint64_t seed) {
    struct model_config c = {0};
    struct model       *m = NULL;
    struct ev_err       err = {{0}};
    c.dim = 24;
    c.hidden_dim = 40;
    c.n_layers = 3;
    c.n_heads = 4;
    c.vocab_size = 50;
    c.seq_len = 32;
    if (kind == 0) { /* GPT-2 */
        c.arch = MODEL_ARCH_GPT2;
        c.rope = MODEL_ROPE_NONE;
        c.norm = MODEL_NORM_LAYER;
        c.act = MODEL_ACT_GELU_TANH;
        c.qkv_bias = c.out_bias = c.tied_embeddings = 1;
    } else if (kind == 3) { /* GPT-NeoX-style parallel block: LayerNorm, biases, RoPE */
        c.arch = MODEL_ARCH_LLAMA;
        c.rope = MODEL_ROPE_HALF;
        c.norm = MODEL_NORM_LAYER;
        c.act = MODEL_ACT_GELU_TANH;
        c.qkv_bias = c.out_bias = 1;
        c.parallel_residual = 1;
    } else { /* Llama with GQA; kind 2: Qwen2-style biases, interleaved rope, untied */
        c.arch = MODEL_ARCH_LLAMA;
        c.rope = kind == 2 ? MODEL_ROPE_INTERLEAVED : MODEL_ROPE_HALF;
        c.norm = MODEL_NORM_RMS;
        c.act = MODEL_ACT_SWIGLU;
        c.n_kv_heads = 2;
        c.qkv_bias = kind == 2;
        c.tied_embeddings = kind == 1;
    }
    if (model_new_random(&c, seed, &m, &err) != EV_OK) fail_msg("random model: %s", err.msg);
    /* larger weights than 0.02 so that attention is not uniform and every path matters, and
     * an MLP and output projection that matter (gradients at the MLP's hooks well above
     * float32 finite-difference noise) */
    struct model_weights *w = model_weights(m);
    const struct model_config *mc = model_config(m);
    size_t C = c.dim, H = c.hidden_dim, qd = (size_t)mc->n_heads * mc->head_dim;
    size_t kvd = (size_t)mc->n_kv_heads * mc->head_dim;
    for (int l = 0; l < c.n_layers; l++) {
        struct model_layer *y = &w->layer[l];
        scale_mat(&y->wq, qd * C, 15), scale_mat(&y->wk, kvd * C, 15);
        scale_mat(&y->w1, H * C, 10), scale_mat(&y->w2, H * C, 10), scale_mat(&y->w3, H * C, 10);
        scale_mat(&y->wo, qd * C, 5);
    }
    scale_mat(&w->tok_emb, (size_t)c.vocab_size * C, 20);
    return m;
}

static void random_tokens(int *tok, int n, int V, uint64_t seed) {
    struct rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) tok[i] = (int)rng_below(&r, (uint64_t)V);
}

// ---------------------------------------------------------------------------- HF fixtures

static const struct st_tensor *need(const struct st_file *f, const char *name) {
    const struct st_tensor *t = st_find(f, name);
    if (!t) fail_msg("ref.safetensors: missing %s", name);
    return t;
}

static float *ref_f32(const struct st_file *f, const char *name) {
    const struct st_tensor *t = need(f, name);
    float                  *v = xmalloc(sizeof(float) * (size_t)(t->n_elem ? t->n_elem : 1));
    struct ev_err           err = {{0}};
    if (st_to_f32(t, v, &err) != EV_OK) fail_msg("%s", err.msg);
    return v;
}

static int *ref_i64(const struct st_file *f, const char *name, int *n) {
    const struct st_tensor *t = need(f, name);
    int                    *v = xmalloc(sizeof(int) * (size_t)t->n_elem);
    assert_int_equal(t->dtype, ST_I64);
    for (int64_t i = 0; i < t->n_elem; i++) {
        int64_t x;
        memcpy(&x, (const char *)t->data + 8 * i, 8);
        v[i] = (int)x;
    }
    *n = (int)t->n_elem;
    return v;
}

/* Checks folder, loaded with flags, against its ref.safetensors: logits within tol (absolute)
 * at every position, in one prefill and one position at a time through the KV cache; every
 * hook of every layer within tol scaled by max(1, max |ref|); the gradients at every hook of
 * block 1 against autograd's. */
static void check_hf_fixture_flags(const char *folder, double tol, int flags) {
    char rel[256], *refp;
    snprintf(rel, sizeof rel, "tests/fixtures/hf/%s", folder);
    struct model *m = load_flags_or_fail(rel, flags);
    snprintf(rel, sizeof rel, "tests/fixtures/hf/%s/ref.safetensors", folder);
    refp = root_path(rel);
    struct st_file *rf = NULL;
    struct ev_err   err = {{0}};
    if (st_open(refp, &rf, &err) != EV_OK) fail_msg("%s", err.msg);
    const struct model_config *c = model_config(m);
    int                        T, n_ab, L = c->n_layers, C = c->dim, V = c->vocab_size;
    int                       *ids = ref_i64(rf, "input_ids", &T);
    int                       *ab = ref_i64(rf, "logit_diff_tokens", &n_ab);
    float                     *logits = ref_f32(rf, "logits");
    float                     *loss = ref_f32(rf, "loss");
    struct model_state        *s = NULL;
    if (model_state_new(m, T, MODEL_STATE_GRAD, &s, &err) != EV_OK) fail_msg("%s", err.msg);

    /* forward with READ edits at every hook the architecture has, at every layer */
    int                NK = MODEL_HOOK_RESID_POST + 1, n_e = 0;
    struct model_edit *e = xcalloc((size_t)NK * L, sizeof *e);
    size_t             W_max = (size_t)(C > c->hidden_dim ? C : c->hidden_dim);
    if ((size_t)c->n_heads * c->head_dim > W_max) W_max = (size_t)c->n_heads * c->head_dim;
    float *reads = xmalloc(sizeof(float) * (size_t)NK * L * T * W_max);
    for (int l = 0; l < L; l++)
        for (int k = 0; k < NK; k++) {
            struct model_hook h = {l, (enum model_hook_kind)k};
            if (model_hook_check(m, h, &err) != EV_OK) continue;
            e[n_e].hook = h;
            e[n_e].read = reads + (size_t)n_e * T * W_max;
            n_e++;
        }
    double lossv;
    if (model_loss(s, ids, T, e, n_e, &lossv, NULL, &err) != EV_OK) fail_msg("%s", err.msg);
    /* logits: tol absolute (the 1e-4), at every position; residuals and gradients
     * below relative to their magnitude */
    double scale = fmax(1.0, max_abs(logits, (size_t)T * V));
    double d = max_abs_diff(model_state_logits(s), logits, (size_t)T * V);
    if (d > tol) fail_msg("%s: logits differ by %g (tol %g)", folder, d, tol);
    if (fabs(lossv - (double)loss[0]) > 1e-4)
        fail_msg("%s: loss %g, ref %g", folder, lossv, (double)loss[0]);
    /* with the KV cache: one position at a time on a fresh state, each row against the
     * reference's (not against the prefill: both must be the reference's numbers) */
    struct model_state *sd = NULL;
    double              dk = 0;
    if (model_state_new(m, T, 0, &sd, &err) != EV_OK) fail_msg("%s", err.msg);
    for (int t = 0; t < T; t++) {
        if (model_forward(sd, ids + t, t, 1, NULL, 0, &err) != EV_OK) fail_msg("%s", err.msg);
        double dt = max_abs_diff(model_state_logits(sd), logits + (size_t)t * V, (size_t)V);
        if (dt > tol)
            fail_msg("%s: decode logits at position %d differ by %g (tol %g)", folder, t, dt, tol);
        if (dt > dk) dk = dt;
    }
    model_state_free(sd);
    print_message("# %s: max |logit - ref| %.3g prefill, %.3g decode (max |ref| %.3g)\n", folder,
                  d, dk, scale);
    for (int i = 0; i < n_e; i++) {
        char   name[64];
        size_t W = (size_t)model_hook_width(m, e[i].hook);
        model_hook_name(e[i].hook, name, sizeof name);
        float *r = ref_f32(rf, name);
        double sc = fmax(1.0, max_abs(r, (size_t)T * W));
        double dd = max_abs_diff(e[i].read, r, (size_t)T * W);
        if (dd > tol * sc) fail_msg("%s: %s differs by %g", folder, name, dd);
        free(r);
    }
    /* gradients of logit(a) - logit(b) at the last position, at every hook of block 1 */
    float *g = xcalloc((size_t)V, sizeof(float));
    float *dres = xmalloc(sizeof(float) * T * W_max);
    float *ld = ref_f32(rf, "logit_diff");
    const float *lg = model_state_logits(s) + (size_t)(T - 1) * V;
    assert_true(fabs((lg[ab[0]] - lg[ab[1]]) - ld[0]) < tol * scale);
    g[ab[0]] += 1.0f;
    g[ab[1]] -= 1.0f;
    for (int k = 0; k < NK; k++) {
        struct model_hook h = {1, (enum model_hook_kind)k};
        char              name[64], gname[80];
        if (model_hook_check(m, h, &err) != EV_OK) continue;
        size_t W = (size_t)model_hook_width(m, h);
        model_hook_name(h, name, sizeof name);
        snprintf(gname, sizeof gname, "grad.%s", name);
        if (model_backward_to_hook(s, h, g, dres, &err) != EV_OK) fail_msg("%s", err.msg);
        float *r = ref_f32(rf, gname);
        double sc = fmax(1e-3, max_abs(r, (size_t)T * W));
        double dd = max_abs_diff(dres, r, (size_t)T * W);
        if (dd > 1e-3 * sc) fail_msg("%s: %s differs by %g (max |ref| %g)", folder, gname, dd, sc);
        free(r);
    }
    free(g), free(dres), free(ld), free(e), free(reads), free(ids), free(ab), free(logits),
        free(loss), free(refp);
    st_close(rf);
    model_state_free(s);
    model_free(m);
}

static void check_hf_fixture(const char *folder, double tol) {
    check_hf_fixture_flags(folder, tol, 0);
}

static double logit_scale(const struct model_config *c, const float *lg, size_t n);

static void test_hf_gpt2(void **state) {
    (void)state;
    check_hf_fixture("gpt2", 1e-4);
    check_hf_fixture("gpt2_prefixed", 1e-4);
}
static void test_hf_llama(void **state) {
    (void)state;
    check_hf_fixture("llama", 1e-4);
    check_hf_fixture("llama_sharded", 1e-4);
}
static void test_hf_mistral_qwen2(void **state) {
    (void)state;
    check_hf_fixture("mistral_tied", 1e-4);
    check_hf_fixture("qwen2", 1e-4);
}
/* the references are computed from the rounded weights, so float32 precision applies */
static void test_hf_f16_bf16(void **state) {
    (void)state;
    check_hf_fixture("llama_f16", 1e-4);
    check_hf_fixture("gpt2_bf16", 1e-4);
}
static void test_hf_stories260K(void **state) {
    (void)state;
    check_hf_fixture("stories260K_hf", 1e-4);
}

/* The architectures of issue 18, each against its PyTorch reference (every hook, every
 * layer; gradients at every hook of block 1), and its KV cache and finite differences. */
static const char *arch_fixtures[] = {"gpt_neox", "gpt_neox_f16", "gemma2", "gemma2_bf16",
                                      "gemma3_text", "llama3", "qwen3"};

static void test_hf_architectures(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof arch_fixtures / sizeof arch_fixtures[0]; i++)
        check_hf_fixture(arch_fixtures[i], 1e-4);
}

static void check_kv_cache(struct model *m, int T);
static void check_grad_fd(struct model *m, int T, struct model_hook h, int n_check, float step);

static void test_architectures_kv_cache_and_fd(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof arch_fixtures / sizeof arch_fixtures[0]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "tests/fixtures/hf/%s", arch_fixtures[i]);
        struct model *m = load_or_fail(rel);
        check_kv_cache(m, 20);
        for (int k = 0; k <= MODEL_HOOK_RESID_POST; k++) {
            struct model_hook h = {1, (enum model_hook_kind)k};
            struct ev_err     err = {{0}};
            if (model_hook_check(m, h, &err) == EV_OK) check_grad_fd(m, 10, h, 24, 1e-2f);
        }
        model_free(m);
    }
}

/* F16/BF16 copies of the same weights agree with the F32 model within those formats'
 * precision (but are not identical: the rounding is real). */
static void check_low_precision(const char *f32, const char *low, double rel) {
    struct model       *a = load_or_fail(f32), *b = load_or_fail(low);
    struct model_state *sa = NULL, *sb = NULL;
    struct ev_err       err = {{0}};
    int                 tok[12], V = model_config(a)->vocab_size;
    random_tokens(tok, 12, V, 12);
    assert_int_equal(model_state_new(a, 12, 0, &sa, &err), EV_OK);
    assert_int_equal(model_state_new(b, 12, 0, &sb, &err), EV_OK);
    assert_int_equal(model_forward(sa, tok, 0, 12, NULL, 0, &err), EV_OK);
    assert_int_equal(model_forward(sb, tok, 0, 12, NULL, 0, &err), EV_OK);
    double scale = fmax(1.0, max_abs(model_state_logits(sa), (size_t)12 * V));
    double d = max_abs_diff(model_state_logits(sa), model_state_logits(sb), (size_t)12 * V);
    if (!(d <= rel * scale) || d == 0.0)
        fail_msg("%s vs %s: logits differ by %g (expected (0, %g])", f32, low, d, rel * scale);
    model_state_free(sa), model_state_free(sb), model_free(a), model_free(b);
}

static void test_f16_bf16_vs_f32(void **state) {
    (void)state;
    check_low_precision("tests/fixtures/hf/llama", "tests/fixtures/hf/llama_f16", 1e-2);
    check_low_precision("tests/fixtures/hf/gpt2", "tests/fixtures/hf/gpt2_bf16", 5e-2);
    check_low_precision("tests/fixtures/hf/gemma2", "tests/fixtures/hf/gemma2_bf16", 5e-2);
    check_low_precision("tests/fixtures/hf/gpt_neox", "tests/fixtures/hf/gpt_neox_f16", 1e-2);
}

/*
 * --weights-dtype: a BF16/F16 checkpoint kept in its dtype (auto) uses its matrices in place
 * from the mapping and matches its PyTorch reference (computed from those very weights); the
 * same checkpoint widened to F32 matches it too and takes twice the matrix bytes in the arena;
 * an F32 checkpoint kept as BF16 takes half, differs from F32 by BF16 rounding only; F16 -> BF16
 * works; "auto" / "f32" / "bf16" parse and anything else is a usage error.
 */
static void test_weights_dtype(void **state) {
    (void)state;
    check_hf_fixture_flags("gemma2_bf16", 1e-4, MODEL_LOAD_F32);
    check_hf_fixture_flags("gpt_neox_f16", 1e-4, MODEL_LOAD_F32);
    check_hf_fixture_flags("llama_f16", 1e-4, MODEL_LOAD_F32);
    struct model *kept = load_or_fail("tests/fixtures/hf/gemma2_bf16");
    struct model *wide = load_flags_or_fail("tests/fixtures/hf/gemma2_bf16", MODEL_LOAD_F32);
    struct model *f32 = load_or_fail("tests/fixtures/hf/gemma2");
    struct model *narrow = load_flags_or_fail("tests/fixtures/hf/gemma2", MODEL_LOAD_BF16);
    size_t ka, km, wa, wm, fa, fm, na, nm;
    model_memory(kept, &ka, &km);
    model_memory(wide, &wa, &wm);
    model_memory(f32, &fa, &fm);
    model_memory(narrow, &na, &nm);
    const struct model_config *c = model_config(kept);
    size_t vec = model_weight_bytes(c, MODEL_DTYPE_F32) - 4 * (size_t)model_param_count(c);
    assert_int_equal(vec, 0); /* every parameter is 4 bytes in f32 */
    size_t all16 = model_weight_bytes(c, MODEL_DTYPE_BF16), all32 = model_weight_bytes(c, MODEL_DTYPE_F32);
    if (!(km > 0 && ka < all32 / 20)) fail_msg("bf16 kept: arena %zu, mapped %zu", ka, km);
    assert_int_equal(wm, 0);
    assert_true(wa >= all32 - 64 * 64);
    assert_true(fm > 0 && fa < all32 / 20);
    assert_int_equal(nm, 0);
    assert_true(na <= all16 + 64 * 64 && na < fm);
    assert_int_equal(model_weights_dtype(kept), MODEL_DTYPE_BF16);
    assert_int_equal(model_weights_dtype(wide), MODEL_DTYPE_F32);
    assert_int_equal(model_weights_dtype(narrow), MODEL_DTYPE_BF16);
    /* narrowed at load == the checkpoint stored as BF16, up to the norm vectors (kept F32
     * here, rounded in gemma2_bf16): close, and not the F32 model's numbers */
    int                 tok[10], V = c->vocab_size;
    struct model_state *s1 = NULL, *s2 = NULL;
    struct ev_err       err = {{0}};
    random_tokens(tok, 10, V, 3);
    assert_int_equal(model_state_new(f32, 10, 0, &s1, &err), EV_OK);
    assert_int_equal(model_state_new(narrow, 10, 0, &s2, &err), EV_OK);
    assert_int_equal(model_forward(s1, tok, 0, 10, NULL, 0, &err), EV_OK);
    assert_int_equal(model_forward(s2, tok, 0, 10, NULL, 0, &err), EV_OK);
    double d = max_abs_diff(model_state_logits(s1), model_state_logits(s2), (size_t)10 * V);
    assert_true(d > 0 && d < 5e-2 * logit_scale(c, model_state_logits(s1), (size_t)10 * V));
    model_state_free(s1), model_state_free(s2);
    model_free(kept), model_free(wide), model_free(f32), model_free(narrow);
    /* F16 -> BF16 */
    struct model *nb = load_flags_or_fail("tests/fixtures/hf/gpt_neox_f16", MODEL_LOAD_BF16);
    assert_int_equal(model_weights_dtype(nb), MODEL_DTYPE_BF16);
    model_free(nb);
    int flags = -1;
    assert_int_equal(model_weights_dtype_parse("auto", &flags, &err), EV_OK);
    assert_int_equal(flags, 0);
    assert_int_equal(model_weights_dtype_parse("f32", &flags, &err), EV_OK);
    assert_int_equal(flags, MODEL_LOAD_F32);
    assert_int_equal(model_weights_dtype_parse("bf16", &flags, &err), EV_OK);
    assert_int_equal(flags, MODEL_LOAD_BF16);
    assert_int_equal(model_weights_dtype_parse("fp16", &flags, &err), EV_EUSAGE);
    assert_non_null(strstr(err.msg, "fp16"));
    /* llama2.c checkpoints are F32 only */
    char         *bin = root_path("evals/models/stories260K/stories260K.bin");
    struct model *m = NULL;
    assert_int_equal(model_load_flags(bin, MODEL_LOAD_BF16, &m, &err), EV_EUSAGE);
    free(bin);
}

/* The .bin (llama2.c interleaved RoPE) and the HF-permuted copy (rotate_half) agree. */
static void test_stories_bin_equals_hf(void **state) {
    (void)state;
    struct model       *a = stories(), *b = load_or_fail("tests/fixtures/hf/stories260K_hf");
    struct model_state *sa = NULL, *sb = NULL;
    struct ev_err       err = {{0}};
    int                 tok[40], V = model_config(a)->vocab_size;
    random_tokens(tok, 40, V, 11);
    tok[0] = 1;
    assert_int_equal(model_state_new(a, 40, 0, &sa, &err), EV_OK);
    assert_int_equal(model_state_new(b, 40, 0, &sb, &err), EV_OK);
    assert_int_equal(model_forward(sa, tok, 0, 40, NULL, 0, &err), EV_OK);
    assert_int_equal(model_forward(sb, tok, 0, 40, NULL, 0, &err), EV_OK);
    double d = max_abs_diff(model_state_logits(sa), model_state_logits(sb), (size_t)40 * V);
    if (d > 1e-4) fail_msg("stories260K .bin vs HF layout: logits differ by %g", d);
    model_state_free(sa), model_state_free(sb), model_free(a), model_free(b);
}

// ---------------------------------------------------------------------------- KV cache

/* The magnitude float32 rounding is relative to: the largest logit, before a final soft-cap
 * (Gemma 2's cap * tanh(x / cap) hides how large the computed logits were). */
static double logit_scale(const struct model_config *c, const float *lg, size_t n) {
    double mx = max_abs(lg, n);
    if (c->final_softcap > 0.0f) {
        double u = fmin(mx / (double)c->final_softcap, 1.0 - 1e-7);
        mx = (double)c->final_softcap * atanh(u);
    }
    return fmax(1.0, mx);
}

static void check_kv_cache(struct model *m, int T) {
    const struct model_config *c = model_config(m);
    int                        V = c->vocab_size;
    int                       *tok = xmalloc(sizeof(int) * T);
    struct model_state        *s1 = NULL, *s2 = NULL;
    struct ev_err              err = {{0}};
    random_tokens(tok, T, V, 5);
    assert_int_equal(model_state_new(m, T, 0, &s1, &err), EV_OK);
    assert_int_equal(model_state_new(m, T, 0, &s2, &err), EV_OK);
    assert_int_equal(model_forward(s1, tok, 0, T, NULL, 0, &err), EV_OK);
    const float *full = model_state_logits(s1);
    double       scale = logit_scale(c, full, (size_t)T * V);
    for (int t = 0; t < T; t++) {
        assert_int_equal(model_forward(s2, tok + t, t, 1, NULL, 0, &err), EV_OK);
        double d = max_abs_diff(model_state_logits(s2), full + (size_t)t * V, V);
        if (d > 1e-5 * scale) fail_msg("%s: decode logits at %d differ by %g", c->model_type, t, d);
    }
    /* chunks: prefill 3, then 4, then the rest */
    int cut1 = 3, cut2 = 7;
    assert_int_equal(model_forward(s2, tok, 0, cut1, NULL, 0, &err), EV_OK);
    assert_int_equal(model_forward(s2, tok + cut1, cut1, cut2 - cut1, NULL, 0, &err), EV_OK);
    assert_true(max_abs_diff(model_state_logits(s2), full + (size_t)cut1 * V,
                             (size_t)(cut2 - cut1) * V) < 1e-5 * scale);
    assert_int_equal(model_forward(s2, tok + cut2, cut2, T - cut2, NULL, 0, &err), EV_OK);
    assert_true(max_abs_diff(model_state_logits(s2), full + (size_t)cut2 * V,
                             (size_t)(T - cut2) * V) < 1e-5 * scale);
    /* MODEL_STATE_LAST_LOGITS gives the last row only, the same numbers */
    struct model_state *s3 = NULL;
    assert_int_equal(model_state_new(m, T, MODEL_STATE_LAST_LOGITS, &s3, &err), EV_OK);
    assert_int_equal(model_forward(s3, tok, 0, T, NULL, 0, &err), EV_OK);
    assert_true(max_abs_diff(model_state_logits(s3), full + (size_t)(T - 1) * V, V) <
                1e-5 * scale);
    double loss;
    assert_int_equal(model_loss(s3, tok, T, NULL, 0, &loss, NULL, &err), EV_EFAIL);
    model_state_free(s3);
    /* a position past what the cache holds, or past max_T, is an error */
    assert_int_equal(model_forward(s2, tok, T, 1, NULL, 0, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "context"));
    free(tok);
    model_state_free(s1), model_state_free(s2);
}

static void test_kv_cache_matches_prefill(void **state) {
    (void)state;
    struct model *m = stories();
    check_kv_cache(m, 48);
    model_free(m);
    for (int k = 0; k < 4; k++) {
        m = tiny(k, 100 + k);
        check_kv_cache(m, 20);
        model_free(m);
    }
}

// ---------------------------------------------------------------------------- gradients

/* logit(a) - logit(b) at the last position, with the residual at h replaced by x (T, C) */
static double fdiff_eval(struct model_state *s, const int *tok, int T, struct model_hook h,
                         const float *x, int a, int b, int V) {
    struct model_edit e = {.hook = h, .replace = x};
    struct ev_err     err = {{0}};
    if (model_forward(s, tok, 0, T, &e, 1, &err) != EV_OK) fail_msg("%s", err.msg);
    const float *lg = model_state_logits(s) + (size_t)(T - 1) * V;
    return (double)lg[a] - (double)lg[b];
}

static void check_grad_fd(struct model *m, int T, struct model_hook h, int n_check, float step) {
    const struct model_config *c = model_config(m);
    int                        V = c->vocab_size, C = model_hook_width(m, h), a, b;
    int                       *tok = xmalloc(sizeof(int) * T);
    float                     *x = xmalloc(sizeof(float) * T * C), *g = xcalloc(V, sizeof(float));
    float                     *dx = xmalloc(sizeof(float) * T * C);
    struct model_state        *s = NULL, *s2 = NULL;
    struct ev_err              err = {{0}};
    struct rng                 r;
    random_tokens(tok, T, V, 9);
    rng_seed(&r, 10);
    assert_int_equal(model_state_new(m, T, MODEL_STATE_GRAD, &s, &err), EV_OK);
    assert_int_equal(model_state_new(m, T, 0, &s2, &err), EV_OK);
    /* two-phase forward on the grad state: read x at h, continue unchanged */
    assert_int_equal(model_forward_to_hook(s, tok, 0, T, h, x, &err), EV_OK);
    assert_int_equal(model_forward_from_hook(s, 0, T, h, x, &err), EV_OK);
    /* f = logit difference of the two most likely next tokens (a real decision) */
    const float *last = model_state_logits(s) + (size_t)(T - 1) * V;
    a = sample_argmax(last, V);
    b = a == 0 ? 1 : 0;
    for (int i = 0; i < V; i++)
        if (i != a && last[i] > last[b]) b = i;
    g[a] = 1.0f;
    g[b] = -1.0f;
    assert_int_equal(model_backward_to_hook(s, h, g, dx, &err), EV_OK);
    double gmax = max_abs(dx, (size_t)T * C), se = 0, sref = 0;
    assert_true(gmax > 0);
    for (int k = 0; k < n_check; k++) {
        /* every position is covered; the last ones (most gradient) twice */
        int    t = k < T ? k : T - 1 - (int)rng_below(&r, 2);
        int    i = (int)rng_below(&r, (uint64_t)C);
        size_t j = (size_t)t * C + i;
        float  save = x[j];
        x[j] = save + step;
        double fp = fdiff_eval(s2, tok, T, h, x, a, b, V);
        x[j] = save - step;
        double fm = fdiff_eval(s2, tok, T, h, x, a, b, V);
        x[j] = save;
        double fd = (fp - fm) / (2.0 * (double)step);
        se += (fd - (double)dx[j]) * (fd - (double)dx[j]);
        sref += fd * fd;
        if (fabs(fd - (double)dx[j]) > 2e-2 * gmax + 1e-4)
            fail_msg("%s hook %d/%d: d/dx[%d,%d] analytic %g, finite difference %g (max %g)",
                     c->model_type, h.layer, h.kind, t, i, (double)dx[j], fd, gmax);
    }
    if (sref > 0 && se / sref > 1e-3)
        fail_msg("%s hook %d/%d: gradient relative error^2 %g", c->model_type, h.layer, h.kind,
                 se / sref);
    free(tok), free(x), free(g), free(dx);
    model_state_free(s), model_state_free(s2);
}

static void test_backward_finite_differences(void **state) {
    (void)state;
    struct model *m = stories();
    check_grad_fd(m, 12, (struct model_hook){2, MODEL_HOOK_RESID_PRE}, 60, 1e-2f);
    check_grad_fd(m, 12, (struct model_hook){0, MODEL_HOOK_RESID_PRE}, 30, 1e-2f);
    check_grad_fd(m, 12, (struct model_hook){4, MODEL_HOOK_RESID_POST}, 30, 1e-2f);
    model_free(m);
    for (int k = 0; k < 4; k++) {
        m = tiny(k, 200 + k);
        check_grad_fd(m, 9, (struct model_hook){0, MODEL_HOOK_RESID_PRE}, 60, 1e-2f);
        check_grad_fd(m, 9, (struct model_hook){1, MODEL_HOOK_RESID_POST}, 40, 1e-2f);
        model_free(m);
    }
}

/* Every hook of block 1 (and resid_post of the last block) against central finite
 * differences, on stories260K and on each tiny shape (the parallel block included). */
static void test_backward_every_hook(void **state) {
    (void)state;
    for (int k = -1; k < 4; k++) {
        struct model *m = k < 0 ? stories() : tiny(k, 300 + k);
        int           L = model_config(m)->n_layers;
        for (int kind = 0; kind <= MODEL_HOOK_RESID_POST; kind++) {
            struct model_hook h = {1, (enum model_hook_kind)kind};
            struct ev_err     err = {{0}};
            if (model_hook_check(m, h, &err) != EV_OK) continue;
            check_grad_fd(m, 9, h, 30, 1e-2f);
        }
        check_grad_fd(m, 9, (struct model_hook){L - 1, MODEL_HOOK_RESID_POST}, 20, 1e-2f);
        model_free(m);
    }
}

static void test_backward_needs_grad_state(void **state) {
    (void)state;
    struct model       *m = tiny(1, 3);
    struct model_state *s = NULL;
    struct ev_err       err = {{0}};
    int                 tok[4] = {1, 2, 3, 4};
    float               g[50] = {0}, dx[4 * 24];
    assert_int_equal(model_state_new(m, 4, 0, &s, &err), EV_OK);
    assert_int_equal(model_forward(s, tok, 0, 4, NULL, 0, &err), EV_OK);
    assert_int_equal(model_backward_to_hook(s, (struct model_hook){0, 0}, g, dx, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "MODEL_STATE_GRAD"));
    model_state_free(s);
    model_free(m);
}

// ---------------------------------------------------------------------------- hooks

static void test_hooks(void **state) {
    (void)state;
    struct model              *m = stories();
    const struct model_config *c = model_config(m);
    int                        T = 10, C = c->dim, V = c->vocab_size, tok[10];
    struct model_state        *s = NULL;
    struct ev_err              err = {{0}};
    random_tokens(tok, T, V, 21);
    assert_int_equal(model_state_new(m, T, 0, &s, &err), EV_OK);
    float *clean = xmalloc(sizeof(float) * T * V), *out = xmalloc(sizeof(float) * T * V);
    float *post1 = xmalloc(sizeof(float) * T * C), *pre2 = xmalloc(sizeof(float) * T * C);
    float *pre0 = xmalloc(sizeof(float) * T * C), *x = xmalloc(sizeof(float) * T * C);
    struct model_edit rd[3] = {
        {.hook = {1, MODEL_HOOK_RESID_POST}, .read = post1},
        {.hook = {2, MODEL_HOOK_RESID_PRE}, .read = pre2},
        {.hook = {0, MODEL_HOOK_RESID_PRE}, .read = pre0},
    };
    assert_int_equal(model_forward(s, tok, 0, T, NULL, 0, &err), EV_OK);
    memcpy(clean, model_state_logits(s), sizeof(float) * T * V);
    /* reading changes nothing; resid_post 1 == resid_pre 2; resid_pre 0 is the embedding */
    assert_int_equal(model_forward(s, tok, 0, T, rd, 3, &err), EV_OK);
    assert_memory_equal(model_state_logits(s), clean, sizeof(float) * T * V);
    assert_memory_equal(post1, pre2, sizeof(float) * T * C);
    const float *emb = model_weights(m)->tok_emb.data;
    for (int t = 0; t < T; t++)
        assert_memory_equal(pre0 + t * C, emb + (size_t)tok[t] * C, sizeof(float) * C);
    /* replacing with what was read gives the same logits */
    struct model_edit rp = {.hook = {2, MODEL_HOOK_RESID_PRE}, .replace = pre2};
    assert_int_equal(model_forward(s, tok, 0, T, &rp, 1, &err), EV_OK);
    assert_memory_equal(model_state_logits(s), clean, sizeof(float) * T * V);
    /* add v at every position == replace by x + v */
    float v[64];
    for (int i = 0; i < C; i++) v[i] = 0.5f * (float)sin(i);
    for (int j = 0; j < T * C; j++) x[j] = pre2[j] + 2.0f * v[j % C];
    struct model_edit ad = {.hook = {1, MODEL_HOOK_RESID_POST}, .add = v, .add_scale = 2.0f};
    assert_int_equal(model_forward(s, tok, 0, T, &ad, 1, &err), EV_OK);
    memcpy(out, model_state_logits(s), sizeof(float) * T * V);
    rp.replace = x;
    assert_int_equal(model_forward(s, tok, 0, T, &rp, 1, &err), EV_OK);
    assert_true(max_abs_diff(out, model_state_logits(s), (size_t)T * V) < 1e-6);
    assert_true(max_abs_diff(out, clean, (size_t)T * V) > 1e-2);
    /* add at position 6 only: earlier positions unchanged, position 6 onward changed */
    int pos6 = 6;
    ad.add_pos = &pos6;
    ad.n_add_pos = 1;
    assert_int_equal(model_forward(s, tok, 0, T, &ad, 1, &err), EV_OK);
    assert_memory_equal(model_state_logits(s), clean, sizeof(float) * 6 * V);
    assert_true(max_abs_diff(model_state_logits(s) + 6 * V, clean + 6 * V, V) > 1e-3);
    /* two-phase with an edit == one pass with replace */
    assert_int_equal(model_forward_to_hook(s, tok, 0, T, (struct model_hook){2, 0}, x, &err),
                     EV_OK);
    assert_memory_equal(x, pre2, sizeof(float) * T * C);
    for (int j = 0; j < T * C; j++) x[j] *= 0.5f;
    assert_int_equal(model_forward_from_hook(s, 0, T, (struct model_hook){2, 0}, x, &err), EV_OK);
    memcpy(out, model_state_logits(s), sizeof(float) * T * V);
    rp.replace = x;
    assert_int_equal(model_forward(s, tok, 0, T, &rp, 1, &err), EV_OK);
    assert_memory_equal(out, model_state_logits(s), sizeof(float) * T * V);
    /* from_hook without to_hook first is an error */
    assert_int_equal(model_forward_from_hook(s, 0, T, (struct model_hook){2, 0}, x, &err),
                     EV_EFAIL);
    /* two-phase in decode: the cache continues correctly */
    assert_int_equal(model_forward(s, tok, 0, T - 1, NULL, 0, &err), EV_OK);
    assert_int_equal(model_forward_to_hook(s, tok + T - 1, T - 1, 1, (struct model_hook){3, 0},
                                           x, &err),
                     EV_OK);
    assert_int_equal(model_forward_from_hook(s, T - 1, 1, (struct model_hook){3, 0}, x, &err),
                     EV_OK);
    assert_true(max_abs_diff(model_state_logits(s), clean + (size_t)(T - 1) * V, V) < 1e-4);
    free(clean), free(out), free(post1), free(pre2), free(pre0), free(x);
    model_state_free(s);
    model_free(m);
}

static void test_hook_names(void **state) {
    (void)state;
    struct model     *m = stories();
    struct model_hook h;
    struct ev_err     err = {{0}};
    char              buf[64];
    assert_int_equal(model_hook_parse(m, "blocks.3.hook_resid_pre", &h, &err), EV_OK);
    assert_int_equal(h.layer, 3);
    assert_int_equal(h.kind, MODEL_HOOK_RESID_PRE);
    assert_int_equal(model_hook_index(h), 3);
    assert_int_equal(model_hook_parse(m, "blocks.4.hook_resid_post", &h, &err), EV_OK);
    assert_int_equal(model_hook_index(h), 5);
    model_hook_name(h, buf, sizeof buf);
    assert_string_equal(buf, "blocks.4.hook_resid_post");
    static const char *bad[] = {"blocks.5.hook_resid_pre", "blocks.-1.hook_resid_pre",
                                "blocks.1.hook_mlp", "blocks..hook_resid_pre",
                                "block.1.hook_resid_pre", "blocks.1.hook_resid_pre ", "",
                                "blocks.1.attn.hook_q", "layers.1.mlp.gate_proj", "layers.x",
                                "blocks.1.hook_z", "layers.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        assert_int_equal(model_hook_parse(m, bad[i], &h, &err), EV_EFAIL);
        assert_true(strlen(err.msg) > 10);
    }
    assert_int_equal(model_hook_parse(m, "blocks.9.hook_resid_post", &h, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "out of range"));
    /* every TransformerLens name parses back to itself, with its width */
    static const struct {
        const char *name;
        int         kind, width; /* width: 0 = C, 1 = NH*HS, 2 = H */
    } tl[] = {
        {"blocks.2.hook_resid_pre", MODEL_HOOK_RESID_PRE, 0},
        {"blocks.2.attn.hook_z", MODEL_HOOK_ATTN_Z, 1},
        {"blocks.2.hook_attn_out", MODEL_HOOK_ATTN_OUT, 0},
        {"blocks.2.hook_resid_mid", MODEL_HOOK_RESID_MID, 0},
        {"blocks.2.ln2.hook_normalized", MODEL_HOOK_LN2_NORMALIZED, 0},
        {"blocks.2.mlp.hook_in", MODEL_HOOK_MLP_IN, 0},
        {"blocks.2.mlp.hook_post", MODEL_HOOK_MLP_POST, 2},
        {"blocks.2.hook_mlp_out", MODEL_HOOK_MLP_OUT, 0},
        {"blocks.2.hook_resid_post", MODEL_HOOK_RESID_POST, 0},
    };
    const struct model_config *c = model_config(m);
    for (size_t i = 0; i < sizeof tl / sizeof tl[0]; i++) {
        if (model_hook_parse(m, tl[i].name, &h, &err) != EV_OK) fail_msg("%s", err.msg);
        assert_int_equal(h.layer, 2);
        assert_int_equal(h.kind, tl[i].kind);
        model_hook_name(h, buf, sizeof buf);
        assert_string_equal(buf, tl[i].name);
        int want = tl[i].width == 0 ? c->dim
                   : tl[i].width == 1 ? c->n_heads * c->head_dim
                                      : c->hidden_dim;
        assert_int_equal(model_hook_width(m, h), want);
    }
    /* sparsify module names: outputs by default, inputs for transcoders */
    static const struct {
        const char *name;
        int         input, layer, kind;
    } sp[] = {
        {"layers.3", 0, 3, MODEL_HOOK_RESID_POST},
        {"model.layers.3", 0, 3, MODEL_HOOK_RESID_POST},
        {"layers.3.mlp", 0, 3, MODEL_HOOK_MLP_OUT},
        {"layers.3.self_attn", 0, 3, MODEL_HOOK_ATTN_OUT},
        {"gpt_neox.layers.1.attention", 0, 1, MODEL_HOOK_ATTN_OUT},
        {"h.0.mlp", 0, 0, MODEL_HOOK_MLP_OUT},
        {"layers.3", 1, 3, MODEL_HOOK_RESID_PRE},
        {"layers.3.mlp", 1, 3, MODEL_HOOK_MLP_IN},
        {"layers.3.self_attn.o_proj", 1, 3, MODEL_HOOK_ATTN_Z},
        {"layers.3.attention.dense", 1, 3, MODEL_HOOK_ATTN_Z},
        {"layers.3.mlp.down_proj", 1, 3, MODEL_HOOK_MLP_POST},
    };
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) {
        if (model_hook_parse_sparsify(m, sp[i].name, sp[i].input, &h, &err) != EV_OK)
            fail_msg("%s: %s", sp[i].name, err.msg);
        assert_int_equal(h.layer, sp[i].layer);
        assert_int_equal(h.kind, sp[i].kind);
        if (!sp[i].input) {
            struct model_hook h2;
            assert_int_equal(model_hook_parse(m, sp[i].name, &h2, &err), EV_OK);
            assert_int_equal(h2.kind, h.kind);
        }
    }
    /* a module side that is no hook */
    assert_int_equal(model_hook_parse_sparsify(m, "layers.3.self_attn", 1, &h, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "input"));
    /* which MLP wrote last into a stream */
    assert_int_equal(model_hook_mlp_layer((struct model_hook){2, MODEL_HOOK_RESID_PRE}), 1);
    assert_int_equal(model_hook_mlp_layer((struct model_hook){2, MODEL_HOOK_ATTN_Z}), 1);
    assert_int_equal(model_hook_mlp_layer((struct model_hook){2, MODEL_HOOK_MLP_POST}), 2);
    assert_int_equal(model_hook_mlp_layer((struct model_hook){2, MODEL_HOOK_RESID_POST}), 2);
    assert_int_equal(model_hook_mlp_layer((struct model_hook){0, MODEL_HOOK_RESID_PRE}), -1);
    model_free(m);
    /* a parallel block has no resid_mid */
    m = tiny(3, 1);
    assert_int_equal(model_hook_parse(m, "blocks.1.hook_resid_mid", &h, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "parallel"));
    model_free(m);
}

/* Each hook, at each layer, on each shape: writing back what was read (one-pass replace, and
 * two-phase to_hook/from_hook) leaves the logits bit-identical; an add at a hook equals a
 * replace by read + v, and changes the logits. */
static void test_hooks_writeback_every_hook(void **state) {
    (void)state;
    int n_arch = (int)(sizeof arch_fixtures / sizeof arch_fixtures[0]);
    /* stories260K, the tiny random shapes, then every issue-18 architecture's fixture */
    for (int kk = -1; kk < 4 + n_arch; kk++) {
        char rel[128];
        if (kk >= 4) snprintf(rel, sizeof rel, "tests/fixtures/hf/%s", arch_fixtures[kk - 4]);
        struct model              *m = kk < 0 ? stories() : kk < 4 ? tiny(kk, 400 + kk)
                                                                   : load_or_fail(rel);
        const struct model_config *c = model_config(m);
        int                        T = 9, V = c->vocab_size, tok[9], W_max = c->dim;
        struct model_state        *s = NULL;
        struct ev_err              err = {{0}};
        if (c->hidden_dim > W_max) W_max = c->hidden_dim;
        if (c->n_heads * c->head_dim > W_max) W_max = c->n_heads * c->head_dim;
        random_tokens(tok, T, V, 31);
        assert_int_equal(model_state_new(m, T, 0, &s, &err), EV_OK);
        float *clean = xmalloc(sizeof(float) * T * V), *out = xmalloc(sizeof(float) * T * V);
        float *x = xmalloc(sizeof(float) * T * W_max), *y = xmalloc(sizeof(float) * T * W_max);
        float *v = xmalloc(sizeof(float) * W_max);
        assert_int_equal(model_forward(s, tok, 0, T, NULL, 0, &err), EV_OK);
        memcpy(clean, model_state_logits(s), sizeof(float) * T * V);
        int n_checked = 0;
        for (int l = 0; l < c->n_layers; l++)
            for (int k = 0; k <= MODEL_HOOK_RESID_POST; k++) {
                struct model_hook h = {l, (enum model_hook_kind)k};
                char              name[64];
                if (model_hook_check(m, h, &err) != EV_OK) continue;
                model_hook_name(h, name, sizeof name);
                int W = model_hook_width(m, h);
                /* read, then replace with what was read: bit-identical */
                struct model_edit rd = {.hook = h, .read = x};
                assert_int_equal(model_forward(s, tok, 0, T, &rd, 1, &err), EV_OK);
                if (memcmp(model_state_logits(s), clean, sizeof(float) * T * V))
                    fail_msg("%s: reading %s changed the logits", c->model_type, name);
                struct model_edit rp = {.hook = h, .replace = x};
                assert_int_equal(model_forward(s, tok, 0, T, &rp, 1, &err), EV_OK);
                if (memcmp(model_state_logits(s), clean, sizeof(float) * T * V))
                    fail_msg("%s: writing back %s changed the logits", c->model_type, name);
                /* two phases */
                assert_int_equal(model_forward_to_hook(s, tok, 0, T, h, y, &err), EV_OK);
                assert_memory_equal(x, y, sizeof(float) * T * W);
                assert_int_equal(model_forward_from_hook(s, 0, T, h, y, &err), EV_OK);
                if (memcmp(model_state_logits(s), clean, sizeof(float) * T * V))
                    fail_msg("%s: two-phase at %s changed the logits", c->model_type, name);
                /* add == replace by x + 0.5 v, and it matters */
                for (int i = 0; i < W; i++) v[i] = (float)sin(1.0 + i);
                for (int j = 0; j < T * W; j++) y[j] = x[j] + 0.5f * v[j % W];
                struct model_edit ad = {.hook = h, .add = v, .add_scale = 0.5f};
                assert_int_equal(model_forward(s, tok, 0, T, &ad, 1, &err), EV_OK);
                memcpy(out, model_state_logits(s), sizeof(float) * T * V);
                rp.replace = y;
                assert_int_equal(model_forward(s, tok, 0, T, &rp, 1, &err), EV_OK);
                double d = max_abs_diff(out, model_state_logits(s), (size_t)T * V);
                if (d > 1e-5 * fmax(1.0, max_abs(out, (size_t)T * V)))
                    fail_msg("%s: add at %s differs from replace by %g", c->model_type, name, d);
                if (!(max_abs_diff(out, clean, (size_t)T * V) > 1e-4))
                    fail_msg("%s: adding at %s changed nothing", c->model_type, name);
                n_checked++;
            }
        assert_true(n_checked >= 8 * c->n_layers);
        if (kk >= 4) print_message("# %s: %d hooks written back bit-identically\n", rel, n_checked);
        /* decode: two phases at a mid-block hook continue the cache correctly */
        struct model_hook hz = {1, MODEL_HOOK_MLP_POST};
        assert_int_equal(model_forward(s, tok, 0, T - 1, NULL, 0, &err), EV_OK);
        assert_int_equal(model_forward_to_hook(s, tok + T - 1, T - 1, 1, hz, x, &err), EV_OK);
        assert_int_equal(model_forward_from_hook(s, T - 1, 1, hz, x, &err), EV_OK);
        assert_true(max_abs_diff(model_state_logits(s), clean + (size_t)(T - 1) * V, V) <
                    1e-4 * fmax(1.0, max_abs(clean, (size_t)T * V)));
        free(clean), free(out), free(x), free(y), free(v);
        model_state_free(s);
        model_free(m);
    }
}

// ---------------------------------------------------------------------------- loss, sampling

static void test_loss(void **state) {
    (void)state;
    struct model              *m = stories();
    const struct model_config *c = model_config(m);
    int                        V = c->vocab_size, C = c->dim, T = 40;
    struct model_state        *s = NULL;
    struct sampler             smp;
    struct ev_err              err = {{0}};
    int                        tok[40], n_out;
    float                      lp[39], *ls = xmalloc(sizeof(float) * V);
    double                     loss_story, loss_rand, loss_zero;
    assert_int_equal(model_state_new(m, T, 0, &s, &err), EV_OK);
    /* the model's own greedy story is far more likely than random tokens */
    sampler_init(&smp, V, 0.0f, 1.0f, 1);
    tok[0] = 1;
    assert_int_equal(model_generate(s, &smp, tok, 1, T - 1, 0, NULL, 0, tok + 1, &n_out, &err),
                     EV_OK);
    assert_int_equal(n_out, T - 1);
    assert_int_equal(model_loss(s, tok, T, NULL, 0, &loss_story, lp, &err), EV_OK);
    /* per-token log-probs agree with a log-softmax of the logits */
    double sum = 0;
    for (int t = 0; t + 1 < T; t++) {
        kern_log_softmax(ls, model_state_logits(s) + (size_t)t * V, V);
        assert_true(fabs(ls[tok[t + 1]] - lp[t]) < 1e-5);
        sum -= (double)ls[tok[t + 1]];
    }
    assert_true(fabs(sum / (T - 1) - loss_story) < 1e-5);
    /* zero-ablating the residual at layer 2 (replace with zeros) hurts */
    float            *zeros = xcalloc((size_t)T * C, sizeof(float));
    struct model_edit z = {.hook = {2, MODEL_HOOK_RESID_PRE}, .replace = zeros};
    assert_int_equal(model_loss(s, tok, T, &z, 1, &loss_zero, NULL, &err), EV_OK);
    random_tokens(tok, T, V, 4);
    assert_int_equal(model_loss(s, tok, T, NULL, 0, &loss_rand, NULL, &err), EV_OK);
    assert_true(loss_story < 1.0);
    assert_true(loss_rand > 4.0);
    assert_true(loss_zero > loss_story + 1.0);
    assert_int_equal(model_loss(s, tok, 1, NULL, 0, &loss_rand, NULL, &err), EV_EFAIL);
    sampler_release(&smp);
    free(ls), free(zeros);
    model_state_free(s);
    model_free(m);
}

static void test_sampling(void **state) {
    (void)state;
    struct model       *m = stories();
    int                 V = model_config(m)->vocab_size, prompt[1] = {1}, a[30], b[30], g[30];
    int                 na, nb, ng;
    struct model_state *s = NULL;
    struct sampler      smp;
    struct ev_err       err = {{0}};
    assert_int_equal(model_state_new(m, 64, 0, &s, &err), EV_OK);
    /* same seed, same tokens; another seed, other tokens */
    sampler_init(&smp, V, 1.0f, 0.9f, 7);
    assert_int_equal(model_generate(s, &smp, prompt, 1, 30, 0, NULL, 0, a, &na, &err), EV_OK);
    sampler_release(&smp);
    sampler_init(&smp, V, 1.0f, 0.9f, 7);
    assert_int_equal(model_generate(s, &smp, prompt, 1, 30, 0, NULL, 0, b, &nb, &err), EV_OK);
    sampler_release(&smp);
    assert_memory_equal(a, b, sizeof a);
    sampler_init(&smp, V, 1.0f, 0.9f, 8);
    assert_int_equal(model_generate(s, &smp, prompt, 1, 30, 0, NULL, 0, b, &nb, &err), EV_OK);
    sampler_release(&smp);
    assert_true(memcmp(a, b, sizeof a) != 0);
    /* a tiny top-p keeps only the most likely token: greedy */
    sampler_init(&smp, V, 0.0f, 1.0f, 1);
    assert_int_equal(model_generate(s, &smp, prompt, 1, 30, 0, NULL, 0, g, &ng, &err), EV_OK);
    sampler_release(&smp);
    sampler_init(&smp, V, 1.0f, 1e-6f, 3);
    assert_int_equal(model_generate(s, &smp, prompt, 1, 30, 0, NULL, 0, b, &nb, &err), EV_OK);
    sampler_release(&smp);
    assert_memory_equal(g, b, sizeof g);
    /* sampling frequencies follow the softmax: logits log(0.7), log(0.2), log(0.1) */
    float lg[3] = {logf(0.7f), logf(0.2f), logf(0.1f)};
    int   cnt[3] = {0};
    sampler_init(&smp, 3, 1.0f, 1.0f, 5);
    for (int i = 0; i < 20000; i++) cnt[sampler_sample(&smp, lg)]++;
    sampler_release(&smp);
    assert_in_range(cnt[0], 13700, 14300);
    assert_in_range(cnt[1], 3700, 4300);
    /* top-p 0.75: only the first two (0.7 < 0.75 <= 0.9), renormalised 7:2 */
    memset(cnt, 0, sizeof cnt);
    sampler_init(&smp, 3, 1.0f, 0.75f, 6);
    for (int i = 0; i < 20000; i++) cnt[sampler_sample(&smp, lg)]++;
    sampler_release(&smp);
    assert_int_equal(cnt[2], 0);
    assert_in_range(cnt[0], 15200, 15900);
    /* limited to ids [0, 2) (a padded vocab's ids cut off): id 2 never, even when it is the
     * most likely; renormalised 7:2 */
    float lg2[3] = {logf(0.7f), logf(0.2f), logf(5.0f)};
    memset(cnt, 0, sizeof cnt);
    sampler_init(&smp, 3, 1.0f, 1.0f, 6);
    sampler_limit(&smp, 2);
    for (int i = 0; i < 20000; i++) cnt[sampler_sample(&smp, lg2)]++;
    assert_int_equal(cnt[2], 0);
    assert_in_range(cnt[0], 15200, 15900);
    smp.temperature = 0.0f;
    assert_int_equal(sampler_sample(&smp, lg2), 0);
    sampler_release(&smp);
    /* a flat distribution with a tiny top-p: nothing is above run.c's cutoff; still a token */
    float flat[8] = {0};
    sampler_init(&smp, 8, 1.0f, 0.01f, 9);
    for (int i = 0; i < 100; i++) assert_in_range(sampler_sample(&smp, flat), 0, 7);
    sampler_release(&smp);
    /* steering with an ADD edit changes the continuation */
    float *v = xcalloc(model_config(m)->dim, sizeof(float));
    for (int i = 0; i < model_config(m)->dim; i++) v[i] = (i % 3) ? 3.0f : -3.0f;
    struct model_edit e = {.hook = {2, MODEL_HOOK_RESID_PRE}, .add = v};
    sampler_init(&smp, V, 0.0f, 1.0f, 1);
    assert_int_equal(model_generate(s, &smp, prompt, 1, 30, 0, &e, 1, b, &nb, &err), EV_OK);
    sampler_release(&smp);
    assert_true(memcmp(g, b, sizeof g) != 0);
    free(v);
    model_state_free(s);
    model_free(m);
}

/*
 * A vocabulary padded past its tokenizer (HF checkpoints padded to a multiple of 64: Pythia
 * 50277 -> 50304): the gpt2 fixture rewritten with vocab_size 3200 and a tokenizer of 3150
 * ids, whose 50 padded embedding rows are +-40 e_j, so that one of them has by far the largest
 * logit at every position. Greedy, temperature and top-p generation never return a padded id;
 * a sampler over all 3200 ids is refused by model_generate.
 */
static int write_file(const char *path, const void *data, size_t n);

static void test_padded_vocab_never_sampled(void **state) {
    (void)state;
    char  dir[] = "/tmp/evalrun-padded-XXXXXX";
    char *src = root_path("tests/fixtures/hf/gpt2");
    assert_non_null(mkdtemp(dir));
    const int     NTOK = 3150, VP = 3200;
    struct ev_err err = {{0}};
    /* config.json and tokenizer.json, edited */
    for (int k = 0; k < 2; k++) {
        const char *f = k ? "tokenizer.json" : "config.json";
        char       *a = path_join(src, f), *b = path_join(dir, f);
        cJSON      *j = NULL;
        assert_int_equal(json_parse_file(a, &j, &err), EV_OK);
        if (k == 0) {
            cJSON_ReplaceItemInObject(j, "vocab_size", cJSON_CreateNumber(VP));
        } else {
            cJSON *vocab = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "model"), "vocab");
            assert_non_null(vocab);
            for (int id = 557; id < NTOK; id++) {
                char name[32];
                snprintf(name, sizeof name, "<extra_%d>", id);
                cJSON_AddNumberToObject(vocab, name, id);
            }
        }
        char *text = cJSON_PrintUnformatted(j);
        assert_int_equal(write_file(b, text, strlen(text)), 0);
        free(text), json_free(j), free(a), free(b);
    }
    /* the weights: wte (557, C) -> (3200, C) */
    char           *srcst = path_join(src, "model.safetensors"), *dst = path_join(dir, "model.safetensors");
    struct st_file *sf = NULL;
    assert_int_equal(st_open(srcst, &sf, &err), EV_OK);
    struct st_writer *w = st_writer_new();
    float            *wte = NULL;
    for (int i = 0; i < st_count(sf); i++) {
        const struct st_tensor *t = st_at(sf, i);
        if (strcmp(t->name, "wte.weight") != 0) {
            st_writer_add(w, t->name, t->dtype, t->n_dims, t->shape, t->data);
            continue;
        }
        int64_t C = t->shape[1], shape[2] = {VP, C};
        wte = xcalloc((size_t)VP * C, sizeof(float));
        assert_int_equal(st_to_f32(t, wte, &err), EV_OK);
        for (int id = NTOK; id < VP; id++) {
            int k = id - NTOK;
            wte[(size_t)id * C + (k / 2) % C] = (k & 1) ? -40.0f : 40.0f;
        }
        st_writer_add(w, t->name, ST_F32, 2, shape, wte);
    }
    assert_int_equal(st_writer_write(w, dst, &err), EV_OK);
    st_writer_free(w), st_close(sf), free(wte);

    struct model *m = NULL;
    if (model_load(dir, &m, &err) != EV_OK) fail_msg("padded gpt2: %s", err.msg);
    assert_int_equal(model_config(m)->vocab_size, VP);
    assert_int_equal(model_vocab_tokens(m), NTOK);
    struct model_state *s = NULL;
    struct sampler      smp;
    int                 prompt[3] = {72, 101, 108}, out[40], n_out = 0;
    assert_int_equal(model_state_new(m, 43, 0, &s, &err), EV_OK);
    /* the test bites: unmasked, a padded id wins at every position */
    assert_int_equal(model_forward(s, prompt, 0, 3, NULL, 0, &err), EV_OK);
    for (int t = 0; t < 3; t++)
        assert_true(sample_argmax(model_state_logits(s) + (size_t)t * VP, VP) >= NTOK);
    static const float temp[] = {0.0f, 1.0f, 1.0f, 2.0f}, topp[] = {1.0f, 1.0f, 0.9f, 0.5f};
    for (int c = 0; c < 4; c++) {
        model_sampler_init(&smp, m, temp[c], topp[c], 17 + (uint64_t)c);
        assert_int_equal(model_generate(s, &smp, prompt, 3, 40, 0, NULL, 0, out, &n_out, &err),
                         EV_OK);
        sampler_release(&smp);
        assert_int_equal(n_out, 40);
        for (int i = 0; i < n_out; i++)
            if (out[i] < 0 || out[i] >= NTOK)
                fail_msg("temperature %g top-p %g: token %d is id %d, a padded one",
                         (double)temp[c], (double)topp[c], i, out[i]);
    }
    /* a sampler that may return every id is refused, naming model_sampler_init */
    sampler_init(&smp, VP, 0.0f, 1.0f, 1);
    assert_int_equal(model_generate(s, &smp, prompt, 3, 5, 0, NULL, 0, out, &n_out, &err),
                     EV_EFAIL);
    assert_non_null(strstr(err.msg, "model_sampler_init"));
    sampler_release(&smp);
    model_state_free(s), model_free(m);
    char *a = path_join(dir, "config.json"), *b = path_join(dir, "tokenizer.json");
    unlink(a), unlink(b), unlink(dst), rmdir(dir);
    free(a), free(b), free(dst), free(srcst), free(src);
}

// ---------------------------------------------------------------------------- bad input

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static void test_corrupt_checkpoints(void **state) {
    (void)state;
    char         *src = root_path("evals/models/stories260K/stories260K.bin");
    char         *tokp = root_path("evals/models/stories260K/tok512.bin");
    char         *data = NULL, *tokd = NULL;
    size_t        n = 0, ntok = 0;
    struct ev_err err = {{0}};
    struct model *m = NULL;
    char          dir[] = "/tmp/evalrun-model-XXXXXX";
    assert_int_equal(file_read_all(src, &data, &n, &err), EV_OK);
    assert_int_equal(file_read_all(tokp, &tokd, &ntok, &err), EV_OK);
    assert_non_null(mkdtemp(dir));
    char *bin = path_join(dir, "m.bin"), *tp = path_join(dir, "tok512.bin");
    assert_int_equal(write_file(tp, tokd, ntok), 0);
    struct {
        const char *what;
        size_t      len;
        int         field; /* header int to overwrite, or -1 */
        int32_t     value;
        long        nan_at; /* float index after the header to set NaN, or -1 */
        const char *expect;
    } cases[] = {
        {"intact", n, -1, 0, -1, NULL},
        {"truncated", n - 100, -1, 0, -1, "truncated"},
        {"header only", 20, -1, 0, -1, "too short"},
        {"empty", 0, -1, 0, -1, "too short"},
        {"trailing", n, -1, 0, -1, NULL},
        {"negative dim", n, 0, -64, -1, "implausible"},
        {"huge layers", n, 2, 1 << 30, -1, "implausible"},
        {"bad kv heads", n, 4, 3, -1, "n_kv_heads"},
        /* plausible but huge: refused from the file size, before allocating 4 GB */
        {"huge hidden_dim", n, 1, 1 << 20, -1, "truncated"},
        {"NaN weight", n, -1, 0, 1000, "non-finite"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *buf = xmalloc(n + 16);
        memcpy(buf, data, n);
        size_t len = cases[i].len;
        if (strcmp(cases[i].what, "trailing") == 0) {
            memset(buf + n, 0, 16);
            len = n + 16;
            cases[i].expect = "trailing";
        }
        if (cases[i].field >= 0) memcpy(buf + 4 * cases[i].field, &cases[i].value, 4);
        if (cases[i].nan_at >= 0) {
            float nanv = NAN;
            memcpy(buf + 28 + 4 * cases[i].nan_at, &nanv, 4);
        }
        assert_int_equal(write_file(bin, buf, len), 0);
        err.msg[0] = 0;
        int rc = model_load(bin, &m, &err);
        if (!cases[i].expect) {
            if (rc != EV_OK) fail_msg("%s: %s", cases[i].what, err.msg);
            model_free(m);
        } else {
            if (rc != EV_EFAIL || !strstr(err.msg, cases[i].expect))
                fail_msg("%s: rc %d, message '%s' (expected '%s')", cases[i].what, rc, err.msg,
                         cases[i].expect);
            assert_null(m);
        }
        free(buf);
    }
    /* no tokenizer beside it */
    unlink(tp);
    assert_int_equal(write_file(bin, data, n), 0);
    assert_int_equal(model_load(bin, &m, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "tokenizer"));
    /* missing file; folder without config.json; unsupported model_type */
    assert_int_equal(model_load("/nonexistent/model.bin", &m, &err), EV_EFAIL);
    assert_int_equal(model_load(dir, &m, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "config.json"));
    char *cfg = path_join(dir, "config.json");
    const char *bert = "{\"model_type\": \"bert\", \"hidden_size\": 8}";
    assert_int_equal(write_file(cfg, bert, strlen(bert)), 0);
    assert_int_equal(model_load(dir, &m, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "\"bert\" not supported"));
    unlink(cfg), unlink(bin), rmdir(dir);
    free(cfg), free(bin), free(tp), free(data), free(tokd), free(src), free(tokp);
}

/* An HF folder with a tensor missing, or of a dtype the runtime does not take. */
static void test_hf_missing_tensor(void **state) {
    (void)state;
    char  dir[] = "/tmp/evalrun-hf-XXXXXX";
    char *src = root_path("tests/fixtures/hf/llama");
    assert_non_null(mkdtemp(dir));
    const char *files[] = {"config.json", "tokenizer.json"};
    for (int i = 0; i < 2; i++) {
        char *a = path_join(src, files[i]), *b = path_join(dir, files[i]), *d = NULL;
        size_t n = 0;
        struct ev_err err = {{0}};
        assert_int_equal(file_read_all(a, &d, &n, &err), EV_OK);
        assert_int_equal(write_file(b, d, n), 0);
        free(a), free(b), free(d);
    }
    /* the llama fixture's tensors rewritten: 0 with one missing, 1 with one declared I32,
     * 2 with only the embedding (the config then asks for more than the file holds) */
    char           *srcst = path_join(src, "model.safetensors");
    struct st_file *sf = NULL;
    struct ev_err   e0 = {{0}};
    assert_int_equal(st_open(srcst, &sf, &e0), EV_OK);
    static const char *victim = "model.layers.2.mlp.up_proj.weight";
    static const char *expect[] = {"missing tensor model.layers.2.mlp.up_proj.weight",
                                   "has dtype I32", "describes"};
    for (int k = 0; k < 3; k++) {
        struct st_writer *w = st_writer_new();
        for (int i = 0; i < st_count(sf); i++) {
            const struct st_tensor *t = st_at(sf, i);
            int                     is_victim = strcmp(t->name, victim) == 0;
            if (k == 0 && is_victim) continue;
            if (k == 2 && strcmp(t->name, "model.embed_tokens.weight") != 0) continue;
            st_writer_add(w, t->name, k == 1 && is_victim ? ST_I32 : t->dtype, t->n_dims,
                          t->shape, t->data);
        }
        char         *p = path_join(dir, "model.safetensors");
        struct ev_err err = {{0}};
        struct model *m = NULL;
        assert_int_equal(st_writer_write(w, p, &err), EV_OK);
        assert_int_equal(model_load(dir, &m, &err), EV_EFAIL);
        if (!strstr(err.msg, expect[k]))
            fail_msg("case %d: '%s' lacks '%s'", k, err.msg, expect[k]);
        assert_null(m);
        st_writer_free(w);
        unlink(p);
        free(p);
    }
    st_close(sf);
    free(srcst);
    char *a = path_join(dir, "config.json"), *b = path_join(dir, "tokenizer.json");
    unlink(a), unlink(b), rmdir(dir);
    free(a), free(b), free(src);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hf_gpt2),
        cmocka_unit_test(test_hf_llama),
        cmocka_unit_test(test_hf_mistral_qwen2),
        cmocka_unit_test(test_hf_f16_bf16),
        cmocka_unit_test(test_hf_stories260K),
        cmocka_unit_test(test_hf_architectures),
        cmocka_unit_test(test_architectures_kv_cache_and_fd),
        cmocka_unit_test(test_f16_bf16_vs_f32),
        cmocka_unit_test(test_weights_dtype),
        cmocka_unit_test(test_stories_bin_equals_hf),
        cmocka_unit_test(test_kv_cache_matches_prefill),
        cmocka_unit_test(test_backward_finite_differences),
        cmocka_unit_test(test_backward_every_hook),
        cmocka_unit_test(test_hooks_writeback_every_hook),
        cmocka_unit_test(test_backward_needs_grad_state),
        cmocka_unit_test(test_hooks),
        cmocka_unit_test(test_hook_names),
        cmocka_unit_test(test_loss),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_padded_vocab_never_sampled),
        cmocka_unit_test(test_corrupt_checkpoints),
        cmocka_unit_test(test_hf_missing_tensor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
