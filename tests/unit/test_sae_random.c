/*
 * Unit tests for sae_random: the random-direction control of an SAE fires, latent for latent,
 * on as many calibration tokens as the real SAE (so their L0 matches), on held-out tokens
 * nearly so; its decoder rows are unit vectors, its encoder their transpose; it is
 * reproducible for a seed and differs between seeds; it survives sae_save/sae_load; a
 * transcoder of one width gets a transcoder control (same hooks, no skip term), one whose
 * widths differ is refused. The counts are checked with sae_encode_ref, not with the code that
 * calibrated them.
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

#include "sae/sae.h"
#include "sae/sae_random.h"

enum { D = 16, S = 48, N = 3000 };

/* Tokens with some structure: a few shared directions plus noise. */
static float *make_x(int n, uint64_t seed) {
    struct rng g;
    rng_seed(&g, seed);
    float *x = xmalloc((size_t)n * D * sizeof *x), base[4][D];
    struct rng gb;
    rng_seed(&gb, 99);
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < D; j++) base[k][j] = rng_normal(&gb);
    for (int t = 0; t < n; t++) {
        int k = (int)rng_below(&g, 4);
        for (int j = 0; j < D; j++) x[(size_t)t * D + j] = 0.5f + base[k][j] + 0.7f * rng_normal(&g);
    }
    return x;
}

/* A "trained" SAE: random encoder, biases spread so densities differ; latent 3 is dead.
 * transcoder: a skip transcoder of one width (mlp.hook_in -> hook_mlp_out, b_dec never
 * subtracted from its input), W_skip random. */
static struct sae *make_real_tc(enum sae_arch arch, int transcoder) {
    struct sae_config c = sae_default_config(D, S);
    c.arch = arch;
    if (arch == SAE_ARCH_TOPK) c.k = 5;
    if (transcoder) {
        c.transcoder = c.skip = 1;
        c.d_out = D;
        c.apply_b_dec_to_input = 0;
        snprintf(c.hook_name, sizeof c.hook_name, "blocks.2.mlp.hook_in");
        snprintf(c.hook_name_out, sizeof c.hook_name_out, "blocks.2.hook_mlp_out");
    }
    struct sae *s = sae_new(&c);
    if (transcoder)
        for (int i = 0; i < D * D; i++) s->W_skip[i] = 0.01f * (float)(i % 7);
    struct rng  g;
    rng_seed(&g, 7);
    for (int i = 0; i < D * S; i++) s->W_enc[i] = rng_normal(&g) / 4;
    for (int i = 0; i < S * D; i++) s->W_dec[i] = rng_normal(&g) / 4;
    for (int i = 0; i < S; i++) s->b_enc[i] = -0.2f * (float)(i % 12);
    for (int j = 0; j < D; j++) s->b_dec[j] = 0.3f;
    s->b_enc[3] = -1000;
    return s;
}
static struct sae *make_real(enum sae_arch arch) { return make_real_tc(arch, 0); }

/* Firing counts per latent by the naive encoder. */
static void counts_ref(const struct sae *s, const float *x, int n, int64_t *cnt) {
    float *f = xmalloc((size_t)S * sizeof *f);
    memset(cnt, 0, S * sizeof *cnt);
    for (int t = 0; t < n; t++) {
        sae_encode_ref(s, f, x + (size_t)t * D, 1);
        for (int i = 0; i < S; i++) cnt[i] += f[i] > 0;
    }
    free(f);
}

static void check_control_tc(enum sae_arch arch, int transcoder) {
    struct sae   *real = make_real_tc(arch, transcoder), *ctl = NULL;
    float        *x = make_x(N, 1), *x2 = make_x(N, 2);
    struct ev_err err = {{0}};
    assert_int_equal(sae_random_control(real, x, NULL, N, 42, &ctl, &err), 0);
    int64_t a[S], b[S], a2[S], b2[S], la = 0, lb = 0, la2 = 0, lb2 = 0;
    counts_ref(real, x, N, a);
    counts_ref(ctl, x, N, b);
    int alive = 0;
    for (int i = 0; i < S; i++) {
        if (a[i] != b[i]) fprintf(stderr, "latent %d: real %lld, control %lld\n", i, (long long)a[i], (long long)b[i]);
        assert_true(a[i] == b[i]); /* latent for latent on the calibration tokens */
        la += a[i];
        lb += b[i];
        alive += a[i] > 0;
    }
    assert_int_equal(a[3], 0);
    assert_true(alive > S / 2); /* the test means something: most latents fire */
    assert_true(la == lb);
    /* the module's own counter agrees, and reports the L0 */
    int64_t c[S];
    double  l0 = sae_random_fire_counts(ctl, x, N, c);
    assert_true(fabs(l0 - (double)lb / N) < 1e-12);
    /* held-out tokens: the L0 within 10% */
    counts_ref(real, x2, N, a2);
    counts_ref(ctl, x2, N, b2);
    for (int i = 0; i < S; i++) {
        la2 += a2[i];
        lb2 += b2[i];
    }
    assert_true(fabs((double)lb2 - (double)la2) <= 0.10 * (double)la2);
    /* unit decoder rows; the encoder is their transpose; activations are positive */
    for (int i = 0; i < S; i++) {
        double nn = 0;
        for (int j = 0; j < D; j++) {
            float d = ctl->W_dec[(size_t)i * D + j];
            nn += (double)d * (double)d;
            assert_true(ctl->W_enc[(size_t)j * S + i] == d);
        }
        assert_true(fabs(sqrt(nn) - 1) < 1e-5);
    }
    assert_int_equal(ctl->cfg.arch, SAE_ARCH_STANDARD);
    assert_true(memcmp(ctl->b_dec, real->b_dec, D * sizeof(float)) == 0);
    /* a transcoder's control is a transcoder of the same hooks, without the skip term */
    assert_int_equal(ctl->cfg.transcoder, transcoder);
    assert_int_equal(ctl->cfg.d_out, D);
    assert_string_equal(ctl->cfg.hook_name, real->cfg.hook_name);
    assert_string_equal(ctl->cfg.hook_name_out, real->cfg.hook_name_out);
    assert_int_equal(ctl->cfg.skip, 0);
    assert_null(ctl->W_skip);
    assert_int_equal(ctl->cfg.apply_b_dec_to_input, real->cfg.apply_b_dec_to_input);
    /* not the real SAE's directions: mean |cos| with the real decoder rows is small */
    double mc = 0;
    for (int i = 0; i < S; i++) {
        double dot = 0, nr = 0;
        for (int j = 0; j < D; j++) {
            dot += (double)ctl->W_dec[(size_t)i * D + j] * (double)real->W_dec[(size_t)i * D + j];
            nr += (double)real->W_dec[(size_t)i * D + j] * (double)real->W_dec[(size_t)i * D + j];
        }
        mc += fabs(dot) / sqrt(nr) / S;
    }
    assert_true(mc < 0.5);
    /* reproducible for a seed, another seed another SAE */
    struct sae *same = NULL, *other = NULL;
    assert_int_equal(sae_random_control(real, x, NULL, N, 42, &same, &err), 0);
    assert_int_equal(sae_random_control(real, x, NULL, N, 43, &other, &err), 0);
    size_t nb = (size_t)D * S * sizeof(float);
    assert_true(memcmp(same->W_dec, ctl->W_dec, nb) == 0);
    assert_true(memcmp(same->b_enc, ctl->b_enc, S * sizeof(float)) == 0);
    assert_true(memcmp(other->W_dec, ctl->W_dec, nb) != 0);
    sae_free(same);
    sae_free(other);
    sae_free(ctl);
    sae_free(real);
    free(x);
    free(x2);
}

static void check_control(enum sae_arch arch) { check_control_tc(arch, 0); }
static void test_standard_l0_matches(void **st) { (void)st; check_control(SAE_ARCH_STANDARD); }
/* a transcoder whose input and output have one width: supported (issue 17.2) */
static void test_transcoder_l0_matches(void **st) { (void)st; check_control_tc(SAE_ARCH_STANDARD, 1); }
static void test_topk_l0_matches(void **st) { (void)st; check_control(SAE_ARCH_TOPK); }

static void test_save_load_same_counts(void **st) {
    (void)st;
    struct sae   *real = make_real(SAE_ARCH_STANDARD), *ctl = NULL, *back = NULL;
    float        *x = make_x(N, 1);
    struct ev_err err = {{0}};
    char          dir[] = "/tmp/test_sae_random_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *sub = xasprintf("%s/control", dir);
    assert_int_equal(sae_random_control(real, x, NULL, N, 5, &ctl, &err), 0);
    snprintf(ctl->cfg.hook_name, sizeof ctl->cfg.hook_name, "blocks.1.hook_resid_post");
    assert_int_equal(sae_save(ctl, sub, 1, "{\"evalrun_control\": \"random-sae\"}", &err), 0);
    int rc = sae_load(sub, &back, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    int64_t a[S], b[S];
    counts_ref(real, x, N, a);
    counts_ref(back, x, N, b);
    for (int i = 0; i < S; i++) assert_true(a[i] == b[i]);
    char *cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(sub);
    sae_free(back);
    sae_free(ctl);
    sae_free(real);
    free(x);
}

/* Calibrated for another view of the same tokens (the raw stream of a centred-stream SAE):
 * the control's counts on x_ctl equal the SAE's on x. */
static void test_other_view(void **st) {
    (void)st;
    struct sae   *real = make_real(SAE_ARCH_STANDARD), *ctl = NULL;
    float        *x = make_x(N, 1), *raw = xmalloc((size_t)N * D * sizeof *raw);
    struct ev_err err = {{0}};
    for (int i = 0; i < N * D; i++) raw[i] = x[i] + 2.5f; /* a shifted view */
    assert_int_equal(sae_random_control(real, x, raw, N, 9, &ctl, &err), 0);
    int64_t a[S], b[S], c[S], diff = 0;
    counts_ref(real, x, N, a);
    counts_ref(ctl, raw, N, b);
    counts_ref(ctl, x, N, c);
    for (int i = 0; i < S; i++) {
        assert_true(a[i] == b[i]);
        diff += c[i] != b[i];
    }
    assert_true(diff > 0); /* the view matters: on x itself the counts are others */
    sae_free(ctl);
    sae_free(real);
    free(x);
    free(raw);
}

static void test_transcoder_refused(void **st) {
    (void)st;
    struct sae_config c = sae_default_config(D, S);
    c.transcoder = 1;
    c.d_out = D + 1;
    snprintf(c.hook_name, sizeof c.hook_name, "blocks.0.ln2.hook_normalized");
    snprintf(c.hook_name_out, sizeof c.hook_name_out, "blocks.0.hook_mlp_out");
    struct sae   *t = sae_new(&c), *ctl = (struct sae *)1;
    float        *x = make_x(10, 1);
    struct ev_err err = {{0}};
    assert_int_equal(sae_random_control(t, x, NULL, 10, 1, &ctl, &err), EV_EFAIL);
    assert_null(ctl);
    assert_non_null(strstr(err.msg, "transcoder"));
    assert_non_null(strstr(err.msg, "blocks.0.ln2.hook_normalized (16 wide)"));
    assert_non_null(strstr(err.msg, "blocks.0.hook_mlp_out (17 wide)"));
    sae_free(t);
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_standard_l0_matches),
        cmocka_unit_test(test_topk_l0_matches),
        cmocka_unit_test(test_save_load_same_counts),
        cmocka_unit_test(test_other_view),
        cmocka_unit_test(test_transcoder_refused),
        cmocka_unit_test(test_transcoder_l0_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
