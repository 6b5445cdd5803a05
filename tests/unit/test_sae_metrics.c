/*
 * Unit tests for sae_metrics (every metric against PyTorch values from
 * tests/refs/sae_metrics_ref.py) and sae_analysis (neighbours against the naive twin, logit
 * effects and Pearson correlations against direct computation).
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
#include "sae/sae.h"
#include "sae/sae_analysis.h"
#include "sae/sae_metrics.h"
#include "model/safetensors.h"

static struct st_file *open_ref(void) {
    const char     *root = getenv("ROOT");
    char           *p = xasprintf("%s/tests/fixtures/sae/metrics/ref.safetensors",
                                  root ? root : "../..");
    struct st_file *f = NULL;
    struct ev_err   err = {{0}};
    int             rc = st_open(p, &f, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    free(p);
    return f;
}

static float *get(struct st_file *f, const char *name) {
    const struct st_tensor *t = st_find(f, name);
    assert_non_null(t);
    float        *o = xmalloc((size_t)t->n_elem * sizeof(float));
    struct ev_err err;
    assert_int_equal(st_to_f32(t, o, &err), 0);
    return o;
}

static double ref(struct st_file *f, const char *name) {
    char *k = xasprintf("ref_%s", name);
    const struct st_tensor *t = st_find(f, k);
    assert_non_null(t);
    double v;
    memcpy(&v, t->data, sizeof v);
    free(k);
    return v;
}

static void near(const char *what, double got, double want) {
    if (fabs(got - want) > 1e-5 * (1 + fabs(want)))
        fprintf(stderr, "%s: got %.9g want %.9g\n", what, got, want);
    assert_true(fabs(got - want) <= 1e-5 * (1 + fabs(want)));
}

static void test_metrics_vs_pytorch(void **state) {
    (void)state;
    struct st_file *f = open_ref();
    float *dims = get(f, "dims");
    int D = (int)dims[0], S = (int)dims[1], n1 = (int)dims[2], n2 = (int)dims[3], T = (int)dims[4],
        V = (int)dims[5];
    float *x = get(f, "x"), *xh = get(f, "x_hat"), *fa = get(f, "f");
    float *lc = get(f, "clean"), *ls = get(f, "spliced"), *lz = get(f, "zero");
    float *tg = get(f, "targets");
    int   *tgt = xmalloc((size_t)T * sizeof(int));
    for (int t = 0; t < T; t++) tgt[t] = (int)tg[t];
    struct sae_metrics_acc a;
    struct sae_metrics     m;
    sae_metrics_init(&a, D, S);
    sae_metrics_add_recon(&a, x, xh, fa, n1);
    sae_metrics_add_recon(&a, x + (size_t)n1 * D, xh + (size_t)n1 * D, fa + (size_t)n1 * S, n2);
    sae_metrics_add_logits(&a, lc, ls, lz, tgt, T, V);
    sae_metrics_finish(&a, &m);
    near("l0", m.l0, ref(f, "l0"));
    near("l1", m.l1, ref(f, "l1"));
    near("mse", m.mse, ref(f, "mse"));
    near("explained_variance", m.explained_variance, ref(f, "explained_variance"));
    near("fvu", m.fvu, 1 - ref(f, "explained_variance"));
    near("legacy", m.explained_variance_legacy, ref(f, "explained_variance_legacy"));
    near("l2_ratio", m.l2_ratio, ref(f, "l2_ratio"));
    near("rrb", m.rel_recon_bias, ref(f, "rel_recon_bias"));
    near("ce_clean", m.ce_clean, ref(f, "ce_clean"));
    near("ce_sae", m.ce_sae, ref(f, "ce_sae"));
    near("ce_zero", m.ce_zero, ref(f, "ce_zero"));
    near("ce_loss_score", m.ce_loss_score, ref(f, "ce_loss_score"));
    near("kl_sae", m.kl_sae, ref(f, "kl_sae"));
    near("kl_zero", m.kl_zero, ref(f, "kl_zero"));
    near("kl_div_score", m.kl_div_score, ref(f, "kl_div_score"));
    assert_int_equal(m.n_dead, 1); /* latent 4 never fires */
    int64_t live = 0;
    for (int b = 0; b < SAE_DENSITY_BINS; b++) live += m.density_hist[b];
    assert_int_equal(live, S - 1);
    char *h = sae_metrics_hist_json(&m);
    assert_non_null(strstr(h, "\"dead\": 1"));
    free(h);
    sae_metrics_release(&a);
    free(dims); free(x); free(xh); free(fa); free(lc); free(ls); free(lz); free(tg); free(tgt);
    st_close(f);
}

static void test_neighbors_and_logits(void **state) {
    (void)state;
    struct sae_config cfg = sae_default_config(7, 50);
    struct sae       *s = sae_new(&cfg);
    struct rng        r;
    rng_seed(&r, 5);
    for (size_t i = 0; i < 50 * 7; i++) s->W_dec[i] = rng_normal(&r);
    memset(s->W_dec + 9 * 7, 0, 7 * sizeof(float)); /* a zero row */
    for (int j = 0; j < 7; j++) s->W_dec[20 * 7 + j] = 3.0f * s->W_dec[3 * 7 + j]; /* 20 ∥ 3 */
    int   ids[] = {0, 3, 9, 49}, nb[4 * 5], nb2[4 * 5];
    float cs[4 * 5], cs2[4 * 5];
    sae_neighbors(s, ids, 4, 5, nb, cs);
    sae_neighbors_ref(s, ids, 4, 5, nb2, cs2);
    for (int k = 0; k < 20; k++) {
        assert_int_equal(nb[k], nb2[k]);
        assert_true(fabsf(cs[k] - cs2[k]) < 1e-5f);
    }
    assert_int_equal(nb[5], 20); /* feature 3's nearest is its rescaled copy */
    assert_true(fabsf(cs[5] - 1.0f) < 1e-5f);
    for (int k = 0; k < 4; k++)
        for (int q = 0; q < 5; q++) assert_true(nb[k * 5 + q] != ids[k]);

    /* the unembedding of a random model with d_model 7 and 30 tokens */
    const int           V = 30;
    struct model_config mc = {.arch = MODEL_ARCH_LLAMA, .rope = MODEL_ROPE_HALF,
                              .norm = MODEL_NORM_RMS, .act = MODEL_ACT_SWIGLU, .dim = 8,
                              .hidden_dim = 8, .n_layers = 1, .n_heads = 1, .vocab_size = V,
                              .seq_len = 4};
    struct model       *m = NULL;
    struct ev_err       err = {{0}};
    mc.dim = 7;
    mc.head_dim = 2;
    assert_int_equal(model_new_random(&mc, 9, &m, &err), EV_OK);
    float *wu = (float *)model_weights(m)->wcls.data;
    for (int i = 0; i < V * 7; i++) wu[i] = rng_normal(&r);
    int   top[4 * 3], bot[4 * 3];
    float tv[4 * 3], bv[4 * 3];
    sae_logit_effects(s, m, ids, 4, 3, top, tv, bot, bv);
    for (int k = 0; k < 4; k++) {
        double eff[30];
        for (int v = 0; v < V; v++) {
            eff[v] = 0;
            for (int j = 0; j < 7; j++)
                eff[v] += (double)s->W_dec[ids[k] * 7 + j] * (double)wu[v * 7 + j];
        }
        int rank_top = 0, rank_bot = 0;
        for (int v = 0; v < V; v++) {
            rank_top += eff[v] > eff[top[k * 3]];
            rank_bot += eff[v] < eff[bot[k * 3]];
        }
        if (ids[k] != 9) {
            assert_int_equal(rank_top, 0);
            assert_int_equal(rank_bot, 0);
        }
        assert_true(fabs((double)tv[k * 3] - eff[top[k * 3]]) < 1e-4);
        assert_true(tv[k * 3] >= tv[k * 3 + 1] && tv[k * 3 + 1] >= tv[k * 3 + 2]);
        assert_true(bv[k * 3] <= bv[k * 3 + 1] && bv[k * 3 + 1] <= bv[k * 3 + 2]);
    }
    model_free(m);
    sae_free(s);
}

static void test_best_pearson(void **state) {
    (void)state;
    /* neuron 1 = 2 f + 1 (r = 1), neuron 0 noise, neuron 2 = -f (r = -1), neuron 3 constant */
    const int N = 40, H = 4;
    float     f[40], h[40 * 4];
    struct rng r;
    rng_seed(&r, 9);
    for (int t = 0; t < N; t++) {
        f[t] = rng_normal(&r);
        h[t * H + 0] = rng_normal(&r);
        h[t * H + 1] = 2 * f[t] + 1;
        h[t * H + 2] = -f[t];
        h[t * H + 3] = 5;
    }
    int    best = -1;
    double rr = sae_best_pearson(f, h, N, H, &best);
    assert_int_equal(best, 1);
    assert_true(fabs(rr - 1.0) < 1e-6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_vs_pytorch),
        cmocka_unit_test(test_neighbors_and_logits),
        cmocka_unit_test(test_best_pearson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
