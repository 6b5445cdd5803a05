/*
 * Unit tests for evals/intervene (clamping with the error term kept, steered generation) and
 * evals/attribution (attribution of a logit difference to SAE features, ablation), on the
 * shipped stories260K with SAEs built here from the model's own residual stream:
 *   - "spread": 256 random unit decoder directions, encoder = decoder transposed, b_dec the
 *     residual mean, biases set so that about a fifth of the features fire (a sparse,
 *     overcomplete SAE of the usual shape);
 *   - "ortho": 32 orthonormal directions (encoder = decoder transposed), so that re-encoding an
 *     edited residual must give back exactly the clamped value for the edited feature and
 *     leave every other feature unchanged.
 * References are independent of the code under test: explicit decode arithmetic for the
 * error term, central finite differences of d for the gradient, full forward passes for
 * ablations and for steered generation without the KV cache, and textbook values for the
 * correlation coefficients.
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

#include "evals/attribution.h"
#include "sae/intervene.h"
#include "model/model.h"
#include "sae/sae.h"
#include "model/sample.h"
#include "base/util.h"

#define HOOK "blocks.2.hook_resid_post"

static const char *PROMPT =
    "Once upon a time, there was a little boy named Tim. One day, Tim went to the park. "
    "At the park,";

static char *root_path(const char *rel) {
    const char *root = getenv("ROOT");
    return path_join(root && *root ? root : ".", rel);
}

static struct model *stories(void) {
    char         *p = root_path("evals/models/stories260K/stories260K.bin");
    struct model *m = NULL;
    struct ev_err err = {{0}};
    if (model_load(p, &m, &err) != EV_OK) fail_msg("loading %s: %s", p, err.msg);
    free(p);
    return m;
}

static int *encode(struct model *m, const char *text, int *n) {
    int          *ids = NULL;
    struct ev_err err = {{0}};
    if (tok_encode(model_tokenizer(m), text, 1, &ids, n, &err) != EV_OK) fail_msg("%s", err.msg);
    return ids;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* An SAE on the residual at HOOK of stories260K (see the top of the file). */
static struct sae *make_sae(struct model *m, int d_sae, int ortho, uint64_t seed) {
    const struct model_config *mc = model_config(m);
    int                        C = mc->dim, n = 0;
    struct model_hook          h;
    struct ev_err              err = {{0}};
    struct model_state        *st = NULL;
    assert_int_equal(model_hook_parse(m, HOOK, &h, &err), EV_OK);
    int *ids = encode(m, "Lily and Ben went to the park. Lily saw a big dog. The dog was happy "
                         "and wanted to play with the ball. Ben said, \"Let's go home.\"", &n);
    float *x = xmalloc(sizeof *x * (size_t)n * C);
    assert_int_equal(model_state_new(m, n, 0, &st, &err), EV_OK);
    assert_int_equal(model_forward_to_hook(st, ids, 0, n, h, x, &err), EV_OK);

    struct sae_config cfg = sae_default_config(C, d_sae);
    snprintf(cfg.hook_name, sizeof cfg.hook_name, "%s", HOOK);
    struct sae *s = sae_new(&cfg);
    struct rng  r;
    rng_seed(&r, seed);
    for (int i = 0; i < d_sae; i++) {
        float *row = s->W_dec + (size_t)i * C;
        for (int c = 0; c < C; c++) row[c] = rng_normal(&r);
        if (ortho) /* Gram-Schmidt against the rows before */
            for (int j = 0; j < i; j++) {
                const float *q = s->W_dec + (size_t)j * C;
                double       dot = 0;
                for (int c = 0; c < C; c++) dot += (double)row[c] * (double)q[c];
                for (int c = 0; c < C; c++) row[c] -= (float)dot * q[c];
            }
        double nn = 0;
        for (int c = 0; c < C; c++) nn += (double)row[c] * (double)row[c];
        for (int c = 0; c < C; c++) row[c] /= (float)sqrt(nn);
        for (int c = 0; c < C; c++) s->W_enc[(size_t)c * d_sae + i] = row[c];
    }
    for (int c = 0; c < C; c++) {
        double mean = 0;
        for (int t = 0; t < n; t++) mean += (double)x[(size_t)t * C + c];
        s->b_dec[c] = ortho ? 0.0f : (float)(mean / n);
    }
    /* biases: feature i fires on about a fifth of the positions (the 80th percentile of its
     * projection); the ortho SAE fires wherever the projection is positive */
    float *proj = xmalloc(sizeof *proj * (size_t)n);
    for (int i = 0; i < d_sae; i++) {
        for (int t = 0; t < n; t++) {
            double dot = 0;
            for (int c = 0; c < C; c++)
                dot += ((double)x[(size_t)t * C + c] - (double)s->b_dec[c]) *
                       (double)s->W_dec[(size_t)i * C + c];
            proj[t] = (float)dot;
        }
        qsort(proj, (size_t)n, sizeof *proj, cmp_float);
        s->b_enc[i] = ortho ? 0.0f : -proj[(int)(0.8 * n)];
    }
    free(proj);
    free(x);
    free(ids);
    model_state_free(st);
    return s;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= mx)) mx = d;
    }
    return mx;
}

struct fix {
    struct model     *m;
    struct sae       *s;
    struct model_hook h;
    float            *dirs;
};

static int setup(void **state) {
    struct fix   *fx = xcalloc(1, sizeof *fx);
    struct ev_err err = {{0}};
    fx->m = stories();
    fx->s = make_sae(fx->m, 256, 0, 7);
    assert_int_equal(model_hook_parse(fx->m, HOOK, &fx->h, &err), EV_OK);
    fx->dirs = intervene_directions(fx->s);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    struct fix *fx = *state;
    free(fx->dirs);
    sae_free(fx->s);
    model_free(fx->m);
    free(fx);
    return 0;
}

// ---------------------------------------------------------------------------- clamping

/* dirs[i] = decode(e_i) - decode(0) = W_dec row i times the scaling factor, when present. */
static void test_directions(void **state) {
    (void)state;
    struct sae_config cfg = sae_default_config(6, 5);
    struct sae       *s = sae_new(&cfg);
    for (int i = 0; i < 5 * 6; i++) s->W_dec[i] = (float)(i % 7) - 3.0f;
    for (int c = 0; c < 6; c++) s->b_dec[c] = 0.5f * (float)c;
    float *d = intervene_directions(s);
    assert_true(max_abs_diff(d, s->W_dec, 30) < 1e-6);
    free(d);
    sae_free(s);
}

/* x' = x + (v - f_i) dir_i equals decode(f with f_i = v) + (x - decode(f)): only feature i
 * changes and the error term is kept. */
static void test_clamp_keeps_error_term(void **state) {
    struct fix   *fx = *state;
    struct ev_err err = {{0}};
    int           n = 0, C = fx->s->cfg.d_in, D = fx->s->cfg.d_sae;
    int          *ids = encode(fx->m, PROMPT, &n);
    struct model_state *st = NULL;
    assert_int_equal(model_state_new(fx->m, n, 0, &st, &err), EV_OK);
    float *x = xmalloc(sizeof *x * (size_t)n * C), *f = xmalloc(sizeof *f * (size_t)n * D);
    float *xh = xmalloc(sizeof *xh * (size_t)n * C), *xh2 = xmalloc(sizeof *xh2 * (size_t)n * C);
    float *ref = xmalloc(sizeof *ref * (size_t)n * C);
    assert_int_equal(intervene_encode(st, fx->s, fx->h, ids, 0, n, x, f, &err), EV_OK);
    sae_decode(fx->s, xh, f, n);
    int   feat = 3;
    float v = 5.0f;
    for (int t = 0; t < n; t++) f[(size_t)t * D + feat] = v;
    sae_decode(fx->s, xh2, f, n);
    for (size_t k = 0; k < (size_t)n * C; k++) ref[k] = xh2[k] + (x[k] - xh[k]);
    /* re-encode to get the original f back for the clamp */
    sae_encode(fx->s, f, x, n);
    intervene_clamp(x, f, n, C, D, feat, v, fx->dirs + (size_t)feat * C);
    double dmax = max_abs_diff(x, ref, (size_t)n * C);
    if (dmax > 1e-4) fail_msg("clamp differs from decode(edited) + error by %g", dmax);
    free(x), free(f), free(xh), free(xh2), free(ref), free(ids);
    model_state_free(st);
}

/* Clamping a feature to its own value at every position leaves the logits bit for bit. */
static void test_clamp_own_value_is_identity(void **state) {
    struct fix   *fx = *state;
    struct ev_err err = {{0}};
    int           n = 0, C = fx->s->cfg.d_in, D = fx->s->cfg.d_sae, V;
    int          *ids = encode(fx->m, PROMPT, &n);
    struct model_state *st = NULL;
    V = model_config(fx->m)->vocab_size;
    assert_int_equal(model_state_new(fx->m, n, 0, &st, &err), EV_OK);
    float *x = xmalloc(sizeof *x * (size_t)n * C), *f = xmalloc(sizeof *f * (size_t)n * D);
    float *clean = xmalloc(sizeof *clean * (size_t)n * V);
    assert_int_equal(model_forward(st, ids, 0, n, NULL, 0, &err), EV_OK);
    memcpy(clean, model_state_logits(st), sizeof *clean * (size_t)n * V);
    for (int feat = 0; feat < D; feat += 37) {
        assert_int_equal(intervene_encode(st, fx->s, fx->h, ids, 0, n, x, f, &err), EV_OK);
        /* clamping to its own value at one position is a zero edit: use position 0's value
         * everywhere the feature has that value, i.e. a per-position clamp to f itself */
        for (int t = 0; t < n; t++)
            intervene_clamp(x + (size_t)t * C, f + (size_t)t * D, 1, C, D, feat,
                            f[(size_t)t * D + feat], fx->dirs + (size_t)feat * C);
        assert_int_equal(model_forward_from_hook(st, 0, n, fx->h, x, &err), EV_OK);
        assert_memory_equal(model_state_logits(st), clean, sizeof *clean * (size_t)n * V);
    }
    free(x), free(f), free(clean), free(ids);
    model_state_free(st);
}

/* With orthonormal directions and encoder = decoder^T, re-encoding the clamped residual gives
 * exactly the clamped value for the feature and the old values for every other feature. */
static void test_clamp_changes_only_that_feature(void **state) {
    struct fix   *fx = *state;
    struct ev_err err = {{0}};
    struct sae   *s = make_sae(fx->m, 32, 1, 11);
    float        *dirs = intervene_directions(s);
    int           n = 0, C = s->cfg.d_in, D = s->cfg.d_sae;
    int          *ids = encode(fx->m, PROMPT, &n);
    struct model_state *st = NULL;
    assert_int_equal(model_state_new(fx->m, n, 0, &st, &err), EV_OK);
    float *x = xmalloc(sizeof *x * (size_t)n * C), *f = xmalloc(sizeof *f * (size_t)n * D);
    float *f2 = xmalloc(sizeof *f2 * (size_t)n * D);
    assert_int_equal(intervene_encode(st, s, fx->h, ids, 0, n, x, f, &err), EV_OK);
    int    feat = 5, n_active = 0;
    float *pre = xmalloc(sizeof *pre * (size_t)n); /* x . dir: the feature's pre-activation */
    for (int t = 0; t < n; t++) {
        double dot = 0;
        for (int c = 0; c < C; c++)
            dot += (double)x[(size_t)t * C + c] * (double)dirs[(size_t)feat * C + c];
        pre[t] = (float)dot;
        n_active += f[(size_t)t * D + feat] > 0;
    }
    assert_true(n_active > 0 && n_active < n);
    intervene_clamp(x, f, n, C, D, feat, 2.5f, dirs + (size_t)feat * C);
    sae_encode(s, f2, x, n);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < D; i++) {
            /* where the feature was active the latent becomes exactly 2.5; where it was not,
             * the error term keeps its negative pre-activation: ReLU(pre + 2.5) */
            float v = f[(size_t)t * D + feat] > 0 ? 2.5f : fmaxf(0.0f, pre[t] + 2.5f);
            float want = i == feat ? v : f[(size_t)t * D + i];
            float got = f2[(size_t)t * D + i];
            if (fabsf(got - want) > 1e-4f * (1.0f + fabsf(want)))
                fail_msg("position %d feature %d: re-encoded %g, expected %g", t, i, (double)got,
                         (double)want);
        }
    free(x), free(f), free(f2), free(ids), free(dirs), free(pre);
    sae_free(s);
    model_state_free(st);
}

// ---------------------------------------------------------------------------- generation

/* Steered greedy generation with the KV cache equals, token by token, the argmax of a full
 * forward pass over the whole sequence with the feature clamped at every position; steering
 * with a large value changes the text; no steering equals model_generate. */
static void test_steered_generation(void **state) {
    struct fix   *fx = *state;
    struct ev_err err = {{0}};
    int           n = 0, C = fx->s->cfg.d_in, D = fx->s->cfg.d_sae;
    int           V = model_config(fx->m)->vocab_size, N = 24;
    int          *ids = encode(fx->m, "Once upon a time, there was a little girl named", &n);
    struct model_state *st = NULL, *st2 = NULL;
    struct sampler smp;
    assert_int_equal(model_state_new(fx->m, n + N, 0, &st, &err), EV_OK);
    assert_int_equal(model_state_new(fx->m, n + N, 0, &st2, &err), EV_OK);
    int *base = xmalloc(sizeof(int) * N), *ref = xmalloc(sizeof(int) * N);
    int *steered = xmalloc(sizeof(int) * N), nb = 0, nr = 0, ns = 0;
    sampler_init(&smp, V, 0.0f, 1.0f, 1);
    assert_int_equal(intervene_generate(st, &smp, fx->s, fx->h, fx->h, ids, n, N, -1, NULL, base, &nb,
                                        &err), EV_OK);
    assert_int_equal(model_generate(st2, &smp, ids, n, N, 0, NULL, 0, ref, &nr, &err), EV_OK);
    assert_int_equal(nb, N);
    assert_int_equal(nr, N);
    assert_memory_equal(base, ref, sizeof(int) * N);

    int    feat = 17, T = n + N - 1;
    int   *all = xmalloc(sizeof(int) * (size_t)T);
    float *x = xmalloc(sizeof *x * (size_t)T * C), *f = xmalloc(sizeof *f * (size_t)T * D);
    /* from_pos 0 clamps every position; from_pos 1 leaves the BOS position alone */
    for (int from = 0; from <= 1; from++) {
        struct steer sv = {.feature = feat, .value = 60.0f, .dir = fx->dirs + (size_t)feat * C,
                           .from_pos = from};
        assert_int_equal(intervene_generate(st, &smp, fx->s, fx->h, fx->h, ids, n, N, -1, &sv, steered,
                                            &ns, &err), EV_OK);
        assert_int_equal(ns, N);
        assert_true(memcmp(steered, base, sizeof(int) * N) != 0);
        float *last = xmalloc(sizeof *last * (size_t)V); /* logits of the last cached step */
        memcpy(last, model_state_logits(st), sizeof *last * (size_t)V);

        /* reference: the whole sequence in one pass, clamped from `from` on, no cache */
        memcpy(all, ids, sizeof(int) * (size_t)n);
        memcpy(all + n, steered, sizeof(int) * (size_t)(N - 1));
        assert_int_equal(intervene_encode(st2, fx->s, fx->h, all, 0, T, x, f, &err), EV_OK);
        intervene_clamp(x + (size_t)from * C, f + (size_t)from * D, T - from, C, D, feat,
                        sv.value, sv.dir);
        assert_int_equal(model_forward_from_hook(st2, 0, T, fx->h, x, &err), EV_OK);
        double dl = max_abs_diff(last, model_state_logits(st2) + (size_t)(T - 1) * V, (size_t)V);
        if (dl > 1e-3)
            fail_msg("from_pos %d: last logits differ from the full pass by %g", from, dl);
        free(last);
        for (int i = 0; i < N; i++) {
            const float *lg = model_state_logits(st2) + (size_t)(n - 1 + i) * V;
            int          want = sample_argmax(lg, V);
            if (want != steered[i]) {
                /* allow a near-tie flipped by summation order */
                if (fabsf(lg[want] - lg[steered[i]]) > 1e-3f)
                    fail_msg("from_pos %d, steered token %d: cached generation gave %d, full "
                             "pass %d", from, i, steered[i], want);
                break;
            }
        }
    }
    sampler_release(&smp);
    free(base), free(ref), free(steered), free(all), free(x), free(f), free(ids);
    model_state_free(st);
    model_state_free(st2);
}

// ---------------------------------------------------------------------------- attribution

struct attr_case {
    const char *prompt, *target, *contrast;
};

static const struct attr_case CASES[] = {
    {"Once upon a time, there was a little boy named Tim. One day, Tim went to the park. At "
     "the park,", " he", " she"},
    {"Once upon a time, there was a little girl named Lily. Lily had a cat. Every day, Lily "
     "played with", " her", " his"},
};

static void run_case(struct fix *fx, const struct attr_case *c, int ablate_k,
                     struct attr_result *r, int **ids_out, int *n_out, int *ta, int *tb) {
    struct ev_err err = {{0}};
    int           n = 0;
    int          *ids = encode(fx->m, c->prompt, &n);
    struct model_state *st = NULL;
    assert_int_equal(attr_resolve_token(model_tokenizer(fx->m), c->prompt, ids, n, c->target,
                                        "target", ta, &err), EV_OK);
    assert_int_equal(attr_resolve_token(model_tokenizer(fx->m), c->prompt, ids, n, c->contrast,
                                        "contrast", tb, &err), EV_OK);
    assert_int_equal(model_state_new(fx->m, n, MODEL_STATE_GRAD, &st, &err), EV_OK);
    if (attr_compute(st, fx->m, fx->s, fx->h, fx->h, fx->dirs, ids, n, *ta, *tb, ablate_k, r, &err) !=
        EV_OK)
        fail_msg("attr_compute: %s", err.msg);
    model_state_free(st);
    *ids_out = ids;
    *n_out = n;
}

/* The sum of all attributions plus the error and bias terms equals grad . x summed over
 * positions (the linearisation of d at the hook), and the answer's sign is right. */
static void test_attribution_splits_linearisation(void **state) {
    struct fix *fx = *state;
    for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; k++) {
        struct attr_result r;
        int               *ids, n, ta, tb;
        run_case(fx, &CASES[k], 0, &r, &ids, &n, &ta, &tb);
        assert_true(r.d > 1.0); /* the model prefers the right pronoun */
        double sum = r.attr_features + r.attr_error + r.attr_bias;
        if (fabs(sum - r.linear) > 1e-4 * (1.0 + fabs(r.linear)))
            fail_msg("case %zu: features %g + error %g + bias %g = %g, grad.x = %g", k,
                     r.attr_features, r.attr_error, r.attr_bias, sum, r.linear);
        /* the items hold every active pair, sorted by |attr| */
        double s2 = 0;
        for (int i = 0; i < r.n; i++) {
            s2 += (double)r.items[i].attribution;
            assert_true(r.items[i].activation > 0);
            assert_int_equal(r.items[i].rank, i + 1);
            if (i) assert_true(fabsf(r.items[i - 1].attribution) >= fabsf(r.items[i].attribution));
        }
        assert_true(fabs(s2 - r.attr_features) < 1e-3 * (1.0 + fabs(s2)));
        assert_true(r.n > n); /* more than one active feature per position on average */
        attr_result_release(&r);
        free(ids);
    }
}

/* attr_{i,p} / f_{i,p} = dd/df_{i,p}: central finite differences of d through full forward
 * passes with f_{i,p} moved by +-eps (error term kept). */
static void test_attribution_finite_differences(void **state) {
    struct fix        *fx = *state;
    struct ev_err      err = {{0}};
    struct attr_result r;
    int               *ids, n, ta, tb, C = fx->s->cfg.d_in;
    int                V = model_config(fx->m)->vocab_size;
    run_case(fx, &CASES[0], 0, &r, &ids, &n, &ta, &tb);
    struct model_state *st = NULL;
    assert_int_equal(model_state_new(fx->m, n, 0, &st, &err), EV_OK);
    float *x = xmalloc(sizeof *x * (size_t)n * C), *xe = xmalloc(sizeof *xe * (size_t)n * C);
    assert_int_equal(model_forward_to_hook(st, ids, 0, n, fx->h, x, &err), EV_OK);
    for (int k = 0; k < 5 && k < r.n; k++) {
        const struct attr_feature *it = &r.items[k];
        const float               *dir = fx->dirs + (size_t)it->feature * C;
        double                     eps = 1e-2, dp, dm;
        for (int sgn = -1; sgn <= 1; sgn += 2) {
            memcpy(xe, x, sizeof *x * (size_t)n * C);
            for (int c = 0; c < C; c++) xe[(size_t)it->pos * C + c] += (float)(sgn * eps) * dir[c];
            double *d = sgn > 0 ? &dp : &dm;
            assert_int_equal(attr_logit_diff(st, V, fx->h, ids, n, xe, ta, tb, d, &err), EV_OK);
        }
        double fd = (dp - dm) / (2 * eps) * (double)it->activation;
        if (fabs(fd - (double)it->attribution) > 2e-2 * (fabs(fd) + 1e-2))
            fail_msg("item %d (feature %d, pos %d): attribution %g, finite differences %g", k,
                     it->feature, it->pos, (double)it->attribution, fd);
    }
    free(x), free(xe), free(ids);
    attr_result_release(&r);
    model_state_free(st);
}

/* Ablating each of the top features measures a change in d that agrees with -attribution:
 * strongly correlated, and of the same sign for the largest ones. */
static void test_ablation_agrees_with_attribution(void **state) {
    struct fix *fx = *state;
    for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; k++) {
        struct attr_result r;
        int               *ids, n, ta, tb;
        run_case(fx, &CASES[k], 30, &r, &ids, &n, &ta, &tb);
        assert_int_equal(r.n_ablated, 30);
        int agree = 0;
        for (int i = 0; i < r.n_ablated; i++) {
            assert_false(isnan(r.items[i].ablation));
            if ((r.items[i].ablation > 0) == (-r.items[i].attribution > 0)) agree++;
        }
        print_message("# case %zu: d = %.3f, %d active, pearson %.3f spearman %.3f, "
                      "signs agree %d/30\n", k, r.d, r.n, r.pearson, r.spearman, agree);
        if (!(r.pearson > 0.9)) fail_msg("case %zu: pearson(-attr, ablation) = %g", k, r.pearson);
        if (!(r.spearman > 0.7)) fail_msg("case %zu: spearman = %g", k, r.spearman);
        assert_true(agree >= 25);
        assert_true(isnan(r.items[30 < r.n ? 30 : 0].ablation) || r.n <= 30);
        attr_result_release(&r);
        free(ids);
    }
}

// ---------------------------------------------------------------------------- transcoders

/* A PyTorch-made skip transcoder (blocks.2.mlp.hook_in -> blocks.2.hook_mlp_out) and a sparsify
 * skip transcoder, spliced as a replacement of the MLP's output with the error term kept. */
static const char *const TRANSCODERS[] = {"saelens_skip_transcoder", "sparsify/layers.2.mlp",
                                          "saelens_jumprelu_transcoder"};

static struct sae *load_transcoder(const struct model *m, const char *name,
                                   struct model_hook *hin, struct model_hook *hout) {
    char         *rel = xasprintf("tests/fixtures/sae/formats/%s", name);
    char         *dir = root_path(rel);
    struct sae   *s = NULL;
    struct ev_err err = {{0}};
    if (sae_load(dir, &s, &err) || sae_hooks(m, s, dir, hin, hout, &err))
        fail_msg("%s: %s", name, err.msg);
    assert_true(s->cfg.transcoder);
    free(dir);
    free(rel);
    return s;
}

/* intervene_encode_out gives the clean output y and the features of the clean input; running
 * on from y is the clean model bit for bit; clamping a feature to its own value changes
 * nothing; clamping it to v moves y by exactly (v - f) dir at h_out and nowhere else. */
static void test_transcoder_splice_keeps_error_term(void **state) {
    (void)state;
    struct model *m = stories();
    struct ev_err err = {{0}};
    int           n = 0;
    int          *ids = encode(m, PROMPT, &n);
    const int     V = model_config(m)->vocab_size;
    for (size_t k = 0; k < sizeof TRANSCODERS / sizeof TRANSCODERS[0]; k++) {
        struct model_hook hin, hout;
        struct sae       *s = load_transcoder(m, TRANSCODERS[k], &hin, &hout);
        const int         C = s->cfg.d_out, S = s->cfg.d_sae;
        struct model_state *st = NULL;
        assert_int_equal(model_state_new(m, n, 0, &st, &err), EV_OK);
        float *xin = xmalloc(sizeof *xin * (size_t)n * C), *y = xmalloc(sizeof *y * (size_t)n * C);
        float *y2 = xmalloc(sizeof *y2 * (size_t)n * C), *xin2 = xmalloc(sizeof *xin2 * (size_t)n * C);
        float *f = xmalloc(sizeof *f * (size_t)n * S), *f2 = xmalloc(sizeof *f2 * (size_t)n * S);
        float *clean = xmalloc(sizeof *clean * (size_t)n * V);
        struct model_edit rd[2] = {{.hook = hin, .read = xin}, {.hook = hout, .read = y}};
        assert_int_equal(model_forward(st, ids, 0, n, rd, 2, &err), EV_OK);
        memcpy(clean, model_state_logits(st), sizeof *clean * (size_t)n * V);
        sae_encode(s, f, xin, n);
        assert_int_equal(intervene_encode_out(st, s, hin, hout, ids, 0, n, y2, f2, xin2, &err),
                         EV_OK);
        assert_memory_equal(y, y2, sizeof *y * (size_t)n * C);
        assert_memory_equal(xin, xin2, sizeof *xin * (size_t)n * C);
        assert_memory_equal(f, f2, sizeof *f * (size_t)n * S);
        assert_int_equal(model_forward_from_hook(st, 0, n, hout, y2, &err), EV_OK);
        assert_memory_equal(clean, model_state_logits(st), sizeof *clean * (size_t)n * V);
        /* a feature that fires somewhere */
        int feat = -1, pos = -1;
        for (int t = 1; t < n && feat < 0; t++)
            for (int i = 0; i < S; i++)
                if (f[(size_t)t * S + i] > 0) {
                    feat = i, pos = t;
                    break;
                }
        assert_true(feat >= 0);
        float *dirs = intervene_directions(s);
        memcpy(y2, y, sizeof *y * (size_t)n * C);
        intervene_clamp(y2, f, n, C, S, feat, 0.0f, dirs + (size_t)feat * C);
        for (int t = 0; t < n; t++)
            for (int c = 0; c < C; c++) {
                float want = y[(size_t)t * C + c] -
                             f[(size_t)t * S + feat] * dirs[(size_t)feat * C + c];
                assert_true(fabsf(y2[(size_t)t * C + c] - want) <= 1e-6f * (1 + fabsf(want)));
            }
        /* the direction is the decoder row alone: the skip term is not part of it */
        assert_true(max_abs_diff(dirs + (size_t)feat * C, s->W_dec + (size_t)feat * C, C) < 1e-6);
        (void)pos;
        free(dirs);
        free(xin); free(y); free(y2); free(xin2); free(f); free(f2); free(clean);
        model_state_free(st);
        sae_free(s);
    }
    free(ids);
    model_free(m);
}

/* Attribution through a transcoder: the gradient is taken at its output hook; features +
 * error + bias (decode(0) and the skip term) = grad . y; each attribution matches central
 * finite differences of d with f moved along its direction at h_out. */
static void test_transcoder_attribution(void **state) {
    (void)state;
    struct model *m = stories();
    struct ev_err err = {{0}};
    const int     V = model_config(m)->vocab_size;
    for (size_t k = 0; k < sizeof TRANSCODERS / sizeof TRANSCODERS[0]; k++) {
        struct model_hook hin, hout;
        struct sae       *s = load_transcoder(m, TRANSCODERS[k], &hin, &hout);
        float            *dirs = intervene_directions(s);
        const int         C = s->cfg.d_out;
        int               n = 0, ta, tb;
        int              *ids = encode(m, CASES[0].prompt, &n);
        assert_int_equal(attr_resolve_token(model_tokenizer(m), CASES[0].prompt, ids, n,
                                            CASES[0].target, "target", &ta, &err), EV_OK);
        assert_int_equal(attr_resolve_token(model_tokenizer(m), CASES[0].prompt, ids, n,
                                            CASES[0].contrast, "contrast", &tb, &err), EV_OK);
        struct model_state *st = NULL;
        struct attr_result  r;
        assert_int_equal(model_state_new(m, n, MODEL_STATE_GRAD, &st, &err), EV_OK);
        if (attr_compute(st, m, s, hin, hout, dirs, ids, n, ta, tb, 5, &r, &err))
            fail_msg("%s: %s", TRANSCODERS[k], err.msg);
        double sum = r.attr_features + r.attr_error + r.attr_bias;
        if (fabs(sum - r.linear) > 1e-4 * (1.0 + fabs(r.linear)))
            fail_msg("%s: features %g + error %g + bias %g = %g, grad.y = %g", TRANSCODERS[k],
                     r.attr_features, r.attr_error, r.attr_bias, sum, r.linear);
        assert_int_equal(r.n_ablated, 5);
        float *y = xmalloc(sizeof *y * (size_t)n * C), *ye = xmalloc(sizeof *ye * (size_t)n * C);
        assert_int_equal(model_forward_to_hook(st, ids, 0, n, hout, y, &err), EV_OK);
        for (int j = 0; j < 5 && j < r.n; j++) {
            const struct attr_feature *it = &r.items[j];
            const float               *dir = dirs + (size_t)it->feature * C;
            double                     eps = 1e-2, dp, dm;
            for (int sgn = -1; sgn <= 1; sgn += 2) {
                memcpy(ye, y, sizeof *y * (size_t)n * C);
                for (int c = 0; c < C; c++)
                    ye[(size_t)it->pos * C + c] += (float)(sgn * eps) * dir[c];
                double *d = sgn > 0 ? &dp : &dm;
                assert_int_equal(attr_logit_diff(st, V, hout, ids, n, ye, ta, tb, d, &err),
                                 EV_OK);
            }
            double fd = (dp - dm) / (2 * eps) * (double)it->activation;
            if (fabs(fd - (double)it->attribution) > 2e-2 * (fabs(fd) + 1e-2))
                fail_msg("%s item %d: attribution %g, finite differences %g", TRANSCODERS[k], j,
                         (double)it->attribution, fd);
            assert_false(isnan(it->ablation));
        }
        free(y), free(ye), free(ids), free(dirs);
        attr_result_release(&r);
        model_state_free(st);
        sae_free(s);
    }
    model_free(m);
}

// ---------------------------------------------------------------------------- small parts

static void test_correlations(void **state) {
    (void)state;
    /* textbook values (scipy.stats.pearsonr / spearmanr give the same) */
    double x[] = {1, 2, 3, 4, 5}, y[] = {2, 1, 4, 3, 5};
    assert_true(fabs(attr_pearson(x, y, 5) - 0.8) < 1e-12);
    assert_true(fabs(attr_spearman(x, y, 5) - 0.8) < 1e-12);
    double a[] = {1, 2, 2, 3}, b[] = {1, 2, 3, 4};
    /* ranks of a: 1, 2.5, 2.5, 4 -> pearson with 1..4 = 4.5 / sqrt(4.5 * 5) */
    assert_true(fabs(attr_spearman(a, b, 4) - 4.5 / sqrt(4.5 * 5.0)) < 1e-12);
    double c[] = {10, 20, 30, 40}, e[] = {1, 1, 1, 1};
    assert_true(fabs(attr_spearman(c, b, 4) - 1.0) < 1e-12);
    assert_true(isnan(attr_pearson(c, e, 4)));
    assert_true(isnan(attr_pearson(x, y, 2)));
}

static void test_resolve_token(void **state) {
    struct fix   *fx = *state;
    struct ev_err err = {{0}};
    int           n = 0, id = -1;
    const char   *p = "Once upon a time, there was a girl named Lily. One day,";
    int          *ids = encode(fx->m, p, &n);
    const struct tok *tk = model_tokenizer(fx->m);
    assert_int_equal(attr_resolve_token(tk, p, ids, n, " she", "target", &id, &err), EV_OK);
    assert_string_equal(tok_piece(tk, ids[n - 1], id), " she");
    assert_int_equal(attr_resolve_token(tk, p, ids, n, " Sacramento", "target", &id, &err),
                     EV_EFAIL);
    assert_non_null(strstr(err.msg, "target ' Sacramento' is not a single token"));
    assert_non_null(strstr(err.msg, "splits into"));
    free(ids);
}

/* The shipped two-hop set works with GPT-2's real BPE (evals/tokenizers/gpt2): every target
 * and contrast is one token after its prompt; and the paper's answer is GPT-2's token
 * " Sacramento" (id 19375 in encoder.json). */
static void test_two_hop_gpt2_single_tokens(void **state) {
    (void)state;
    struct ev_err    err = {{0}};
    struct tok      *tk = NULL;
    struct attr_set  s;
    char            *tp = root_path("evals/tokenizers/gpt2");
    char            *sp = root_path("evals/sets/two_hop.json");
    if (tok_load(tp, &tk, &err) != EV_OK) fail_msg("%s", err.msg);
    assert_int_equal(attr_set_load(sp, &s, &err), EV_OK);
    for (int i = 0; i < s.n; i++) {
        int *ids = NULL, n = 0, a = -1, b = -1;
        assert_int_equal(tok_encode(tk, s.prompts[i].prompt, 1, &ids, &n, &err), EV_OK);
        if (attr_resolve_token(tk, s.prompts[i].prompt, ids, n, s.prompts[i].target, "target", &a,
                               &err) != EV_OK ||
            attr_resolve_token(tk, s.prompts[i].prompt, ids, n, s.prompts[i].contrast, "contrast",
                               &b, &err) != EV_OK)
            fail_msg("two_hop %s: %s", s.prompts[i].id, err.msg);
        assert_int_not_equal(a, b);
        if (i == 0) assert_int_equal(a, 19375);
        free(ids);
    }
    /* a target written without its leading space merges with the prompt's last word */
    int *ids = NULL, n = 0, a = -1;
    assert_int_equal(tok_encode(tk, "The capital of France is Par", 1, &ids, &n, &err), EV_OK);
    assert_int_equal(attr_resolve_token(tk, "The capital of France is Par", ids, n, "is",
                                        "target", &a, &err), EV_EFAIL);
    if (!strstr(err.msg, "merges with the prompt's last token"))
        fail_msg("message: %s", err.msg);
    free(ids);
    attr_set_release(&s);
    tok_free(tk);
    free(tp);
    free(sp);
}

static void write_file(const char *path, const char *text) {
    struct ev_err err = {{0}};
    assert_int_equal(file_write_atomic(path, text, strlen(text), &err), EV_OK);
}

static void test_set_load(void **state) {
    (void)state;
    struct attr_set s;
    struct ev_err   err = {{0}};
    char           *p = root_path("evals/sets/stories_attribution.json");
    assert_int_equal(attr_set_load(p, &s, &err), EV_OK);
    assert_true(s.n >= 10);
    assert_string_equal(s.name, "stories_attribution");
    attr_set_release(&s);
    free(p);
    p = root_path("evals/sets/two_hop.json");
    assert_int_equal(attr_set_load(p, &s, &err), EV_OK);
    assert_string_equal(s.prompts[0].target, " Sacramento");
    attr_set_release(&s);
    free(p);

    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"{\"prompts\": []}", "the prompt set is empty"},
        {"[1, 2]", "expected a JSON object with a \"prompts\" array"},
        {"{\"prompts\": [{\"prompt\": \"a\", \"target\": \" b\"}]}", "contrast"},
        {"{\"prompts\": [{\"prompt\": \"a\", \"target\": \" b\", \"contrast\": \" b\"}]}",
         "target and contrast are the same"},
        {"{\"prompts\": [{\"prompt\": \"\", \"target\": \" b\", \"contrast\": \" c\"}]}",
         "must not be empty"},
        {"{\"prompts\": [{\"id\": \"x\", \"prompt\": \"a\", \"target\": \" b\", \"contrast\": "
         "\" c\"}, {\"id\": \"x\", \"prompt\": \"a\", \"target\": \" b\", \"contrast\": \" c\"}]}",
         "id 'x' is used twice"},
        {"{\"prompts\": [", "set.json"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file("set.json", bad[i].text);
        memset(&err, 0, sizeof err);
        assert_int_equal(attr_set_load("set.json", &s, &err), EV_EFAIL);
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("bad set %zu: message '%s' lacks '%s'", i, err.msg, bad[i].msg);
        assert_int_equal(s.n, 0);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directions),
        cmocka_unit_test(test_correlations),
        cmocka_unit_test(test_set_load),
        cmocka_unit_test(test_two_hop_gpt2_single_tokens),
        cmocka_unit_test(test_transcoder_splice_keeps_error_term),
        cmocka_unit_test(test_transcoder_attribution),
        cmocka_unit_test_setup_teardown(test_clamp_keeps_error_term, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clamp_own_value_is_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clamp_changes_only_that_feature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_steered_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attribution_splits_linearisation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attribution_finite_differences, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ablation_agrees_with_attribution, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
