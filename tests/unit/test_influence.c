/*
 * Unit tests for evals/influence_measure (issue 17.3: fluency, concept presence and KL of a
 * steered text) on the shipped stories260K with the test SAE tests/fixtures/evals/
 * stories260K_rand (standard, d_sae 128, blocks.2.hook_resid_post). Every reference takes
 * another code path than infl_measure: the log-likelihood from model_loss's per-token log
 * probabilities, the activations from a read edit and sae_encode_ref, the steered logits from
 * a replace edit built here with the clamp written out, and the KL with this file's own
 * softmax. Textbook values for the KL of two small distributions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "evals/influence_measure.h"
#include "model/model.h"
#include "sae/intervene.h"
#include "sae/sae.h"
#include "base/util.h"

/* |a - b| <= tol in double (cmocka's assert_float_equal works in float) */
#define assert_near(a, b, tol)                                                              \
    do {                                                                                    \
        double a_ = (a), b_ = (b), t_ = (tol);                                              \
        if (!(fabs(a_ - b_) <= t_)) fail_msg("%s = %.9g, expected %.9g (+- %.3g)", #a, a_, b_, t_); \
    } while (0)

static char *root_path(const char *rel) {
    const char *root = getenv("ROOT");
    return path_join(root && *root ? root : ".", rel);
}

struct fix {
    struct model       *m;
    struct sae         *s;
    struct model_hook   hin, hout;
    struct model_state *st;
    float              *dirs;
    int                *seq, L, np;
};

static int setup(void **state) {
    struct fix   *x = xcalloc(1, sizeof *x);
    struct ev_err err = {{0}};
    char         *mp = root_path("evals/models/stories260K/stories260K.bin");
    char         *sp = root_path("tests/fixtures/evals/stories260K_rand");
    if (model_load(mp, &x->m, &err) || sae_load(sp, &x->s, &err) ||
        sae_hooks(x->m, x->s, sp, &x->hin, &x->hout, &err))
        fail_msg("%s", err.msg);
    free(mp), free(sp);
    int *a = NULL, *b = NULL, na = 0, nb = 0;
    const struct tok *tk = model_tokenizer(x->m);
    assert_int_equal(tok_encode(tk, "Once upon a time, there was a", 1, &a, &na, &err), EV_OK);
    assert_int_equal(tok_encode(tk, " little dog named Max. He liked to run in the park.", 0, &b,
                                &nb, &err), EV_OK);
    x->np = na;
    x->L = na + nb;
    x->seq = xmalloc(sizeof *x->seq * (size_t)x->L);
    memcpy(x->seq, a, sizeof *a * (size_t)na);
    memcpy(x->seq + na, b, sizeof *b * (size_t)nb);
    free(a), free(b);
    assert_int_equal(model_state_new(x->m, x->L, 0, &x->st, &err), EV_OK);
    x->dirs = intervene_directions(x->s);
    *state = x;
    return 0;
}

static int teardown(void **state) {
    struct fix *x = *state;
    model_state_free(x->st);
    sae_free(x->s);
    model_free(x->m);
    free(x->dirs), free(x->seq), free(x);
    return 0;
}

/* log softmax of row (V) at k, written out */
static double ref_logsoftmax(const float *row, int V, int k) {
    double mx = -INFINITY, s = 0;
    for (int v = 0; v < V; v++) mx = fmax(mx, (double)row[v]);
    for (int v = 0; v < V; v++) s += exp((double)row[v] - mx);
    return (double)row[k] - mx - log(s);
}

static double ref_kl(const float *p, const float *q, int V) {
    double k = 0;
    for (int v = 0; v < V; v++) {
        double lp = ref_logsoftmax(p, V, v);
        k += exp(lp) * (lp - ref_logsoftmax(q, V, v));
    }
    return k;
}

static struct steer steer_of(const struct fix *x, int feature, float value) {
    return (struct steer){.feature = feature, .value = value, .from_pos = 1,
                          .dir = x->dirs + (size_t)feature * x->s->cfg.d_out};
}

/* The reference KL mean/max of the clamp of feature to value from position 1 on. */
static void ref_steered(struct fix *x, int feature, float value, double *kl_mean, double *kl_max) {
    int           C = x->s->cfg.d_in, D = x->s->cfg.d_sae, V = model_config(x->m)->vocab_size;
    float        *res = xmalloc(sizeof *res * (size_t)x->L * C);
    float        *f = xmalloc(sizeof *f * (size_t)x->L * D);
    float        *lu = xmalloc(sizeof *lu * (size_t)x->L * V);
    struct ev_err err = {{0}};
    struct model_edit rd = {.hook = x->hout, .read = res};
    assert_int_equal(model_forward(x->st, x->seq, 0, x->L, &rd, 1, &err), EV_OK);
    memcpy(lu, model_state_logits(x->st), sizeof *lu * (size_t)x->L * V);
    sae_encode_ref(x->s, f, res, x->L);
    for (int t = 1; t < x->L; t++) {
        double d = (double)value - (double)f[(size_t)t * D + feature];
        for (int c = 0; c < C; c++)
            res[(size_t)t * C + c] += (float)(d * (double)x->dirs[(size_t)feature * C + c]);
    }
    struct model_edit rp = {.hook = x->hout, .replace = res};
    assert_int_equal(model_forward(x->st, x->seq, 0, x->L, &rp, 1, &err), EV_OK);
    const float *ls = model_state_logits(x->st);
    double       s = 0, mx = 0;
    for (int t = 1; t < x->L; t++) {
        double k = ref_kl(lu + (size_t)t * V, ls + (size_t)t * V, V);
        s += k;
        mx = fmax(mx, k);
    }
    *kl_mean = s / (x->L - 1);
    *kl_max = mx;
    free(res), free(f), free(lu);
}

static void test_kl_textbook(void **state) {
    (void)state;
    const float p[2] = {0, 0}, q[2] = {0, (float)log(3.0)};
    assert_near(infl_kl_logits(p, q, 2), 0.5 * log(2.0) + 0.5 * log(2.0 / 3.0), 1e-7);
    assert_near(infl_kl_logits(p, p, 2), 0.0, 0.0);
    const float r[3] = {1, 2, 3};
    assert_near(infl_log_softmax_at(r, 3, 2), 3 - log(exp(1.0) + exp(2.0) + exp(3.0)),
                       1e-6);
}

/* fluency from model_loss's per-token log probabilities, concept from a read edit */
static void test_loglik_and_activation(void **state) {
    struct fix         *x = *state;
    struct ev_err       err = {{0}};
    struct infl_measure m;
    int                 D = x->s->cfg.d_sae, C = x->s->cfg.d_in, feature = -1;
    /* a feature that fires somewhere on the generated positions */
    float *res = xmalloc(sizeof *res * (size_t)x->L * C), *f = xmalloc(sizeof *f * (size_t)x->L * D);
    struct model_edit rd = {.hook = x->hout, .read = res};
    assert_int_equal(model_forward(x->st, x->seq, 0, x->L, &rd, 1, &err), EV_OK);
    sae_encode_ref(x->s, f, res, x->L);
    double best = 0;
    for (int i = 0; i < D; i++)
        for (int t = x->np; t < x->L; t++)
            if ((double)f[(size_t)t * D + i] > best) best = (double)f[(size_t)t * D + i], feature = i;
    assert_true(feature >= 0);
    assert_int_equal(infl_measure(x->m, x->st, x->s, x->hin, x->hout, x->seq, x->np, x->L, feature,
                                  NULL, &m, &err), EV_OK);
    double am = 0, ax = 0;
    for (int t = x->np; t < x->L; t++) {
        am += (double)f[(size_t)t * D + feature];
        ax = fmax(ax, (double)f[(size_t)t * D + feature]);
    }
    am /= x->L - x->np;
    assert_int_equal(m.n_new, x->L - x->np);
    assert_near(m.act_mean, am, 1e-5);
    assert_near(m.act_max, ax, 1e-5);
    assert_true(m.act_max > 0);
    assert_true(isnan(m.kl_mean) && m.n_kl == 0);

    double loss;
    float *lp = xmalloc(sizeof *lp * (size_t)x->L);
    assert_int_equal(model_loss(x->st, x->seq, x->L, NULL, 0, &loss, lp, &err), EV_OK);
    double ll = 0;
    for (int t = x->np; t < x->L; t++) ll += (double)lp[t - 1]; /* lp[t-1] predicts token t */
    ll /= x->L - x->np;
    assert_near(m.loglik, ll, 1e-4);
    assert_true(m.loglik < 0);
    free(res), free(f), free(lp);
}

/* KL against the clamp written out; ablating a feature that is silent gives 0; KL grows with
 * the clamp value on this text */
static void test_kl_steered(void **state) {
    struct fix         *x = *state;
    struct ev_err       err = {{0}};
    struct infl_measure m;
    int                 feature = 5;
    double              prev = -1;
    const float         values[] = {1, 2, 4, 8, 16};
    for (int i = 0; i < 5; i++) {
        struct steer sv = steer_of(x, feature, values[i]);
        assert_int_equal(infl_measure(x->m, x->st, x->s, x->hin, x->hout, x->seq, x->np, x->L,
                                      feature, &sv, &m, &err), EV_OK);
        double km, kx;
        ref_steered(x, feature, values[i], &km, &kx);
        assert_int_equal(m.n_kl, x->L - 1);
        assert_near(m.kl_mean, km, 1e-4 + 1e-3 * km);
        assert_near(m.kl_max, kx, 1e-4 + 1e-3 * kx);
        assert_true(m.kl_mean > prev);
        prev = m.kl_mean;
    }
    /* a feature that never fires on the text: clamping it to 0 changes nothing */
    int   C = x->s->cfg.d_in, D = x->s->cfg.d_sae, silent = -1;
    float *res = xmalloc(sizeof *res * (size_t)x->L * C), *f = xmalloc(sizeof *f * (size_t)x->L * D);
    struct model_edit rd = {.hook = x->hout, .read = res};
    assert_int_equal(model_forward(x->st, x->seq, 0, x->L, &rd, 1, &err), EV_OK);
    sae_encode_ref(x->s, f, res, x->L);
    for (int i = 0; i < D && silent < 0; i++) {
        int any = 0;
        for (int t = 0; t < x->L; t++) any |= f[(size_t)t * D + i] != 0;
        if (!any) silent = i;
    }
    assert_true(silent >= 0);
    struct steer sv = steer_of(x, silent, 0);
    assert_int_equal(infl_measure(x->m, x->st, x->s, x->hin, x->hout, x->seq, x->np, x->L, silent,
                                  &sv, &m, &err), EV_OK);
    assert_near(m.kl_mean, 0.0, 1e-12);
    assert_near(m.kl_max, 0.0, 1e-12);
    free(res), free(f);
}

static void test_no_generated_token(void **state) {
    struct fix         *x = *state;
    struct ev_err       err = {{0}};
    struct infl_measure m;
    assert_int_equal(infl_measure(x->m, x->st, x->s, x->hin, x->hout, x->seq, x->np, x->np, 0,
                                  NULL, &m, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "no generated token"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kl_textbook),
        cmocka_unit_test(test_loglik_and_activation),
        cmocka_unit_test(test_kl_steered),
        cmocka_unit_test(test_no_generated_token),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
