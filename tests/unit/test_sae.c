/*
 * Unit tests for sae (SAELens-layout load in every cfg shape and architecture, encode/decode
 * against PyTorch references, save with the normalisation factor folded in, bad input),
 * sae_train (the loss gradient against autograd and finite differences; training on
 * synthetic sparse data; deterministic resume after an interruption) and acts (the cache
 * format and the shuffle stream).
 * Fixtures: tests/fixtures/sae/, made by tests/refs/sae_fixtures.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sae/acts.h"
#include "sae/sae.h"
#include "sae/sae_train.h"
#include "model/safetensors.h"

#ifndef FIXTURES
#define FIXTURES "../../tests/fixtures/sae"
#endif

static char *fixture(const char *name) {
    const char *root = getenv("ROOT");
    if (root) return xasprintf("%s/tests/fixtures/sae/%s", root, name);
    return xasprintf("%s/%s", FIXTURES, name);
}

/* Reads tensor name of file into a new float array; *n gets its element count. */
static float *read_ref(const char *dir, const char *name, int64_t *n) {
    char           *p = path_join(dir, "ref.safetensors");
    struct st_file *f = NULL;
    struct ev_err   err = {{0}};
    int             rc = st_open(p, &f, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    const struct st_tensor *t = st_find(f, name);
    assert_non_null(t);
    float *out = xmalloc((size_t)t->n_elem * sizeof(float));
    assert_int_equal(st_to_f32(t, out, &err), 0);
    *n = t->n_elem;
    st_close(f);
    free(p);
    return out;
}

/* max |a - b| / (1 + |b|) */
static double max_rel(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / (1.0 + fabs((double)b[i]));
        if (d > m) m = d;
    }
    return m;
}

struct fx_case {
    const char   *name;
    enum sae_arch arch;
    int           d_in, d_sae, apply_b_dec, k, has_scaling;
    const char   *hook;
    int           layer;
};

static const struct fx_case fx_cases[] = {
    {"std_flat", SAE_ARCH_STANDARD, 16, 32, 1, 0, 0, "blocks.2.hook_resid_post", 2},
    {"jumprelu_nested", SAE_ARCH_JUMPRELU, 16, 40, 0, 0, 0, "blocks.3.hook_resid_post", 3},
    {"jumprelu_meta_bf16", SAE_ARCH_JUMPRELU, 12, 24, 1, 0, 0, "blocks.1.hook_resid_pre", 1},
    {"topk_oldest_f16", SAE_ARCH_TOPK, 16, 48, 1, 5, 0, "blocks.0.hook_resid_pre", 0},
    {"topk_k_scaling", SAE_ARCH_TOPK, 10, 30, 1, 3, 1, "blocks.0.hook_resid_post", 0},
    {"std_scaling_ones", SAE_ARCH_STANDARD, 8, 16, 1, 0, 0, "blocks.1.hook_resid_post", 1},
};

static void test_load_encode_decode_fixtures(void **state) {
    (void)state;
    for (size_t c = 0; c < sizeof fx_cases / sizeof fx_cases[0]; c++) {
        const struct fx_case *fc = &fx_cases[c];
        char                 *dir = fixture(fc->name);
        struct sae           *s = NULL;
        struct ev_err         err = {{0}};
        int                   rc = sae_load(dir, &s, &err);
        if (rc) fprintf(stderr, "%s: %s\n", fc->name, err.msg);
        assert_int_equal(rc, 0);
        assert_int_equal(s->cfg.arch, fc->arch);
        assert_int_equal(s->cfg.d_in, fc->d_in);
        assert_int_equal(s->cfg.d_sae, fc->d_sae);
        assert_int_equal(s->cfg.apply_b_dec_to_input, fc->apply_b_dec);
        assert_int_equal(s->cfg.k, fc->k);
        assert_string_equal(s->cfg.hook_name, fc->hook);
        assert_int_equal(s->cfg.hook_layer, fc->layer);
        assert_int_equal(s->scaling != NULL, fc->has_scaling);

        int64_t nx, nf, nh;
        float  *x = read_ref(dir, "x", &nx), *f_ref = read_ref(dir, "f", &nf);
        float  *xh_ref = read_ref(dir, "x_hat", &nh);
        int     n = (int)(nx / fc->d_in);
        float  *f = xmalloc((size_t)nf * sizeof(float)), *f2 = xmalloc((size_t)nf * sizeof(float));
        float  *xh = xmalloc((size_t)nh * sizeof(float));
        sae_encode(s, f, x, n);
        sae_encode_ref(s, f2, x, n);
        double e1 = max_rel(f, f_ref, (size_t)nf), e2 = max_rel(f2, f_ref, (size_t)nf);
        /* the active set must be identical, not merely close */
        size_t act_diff = 0;
        for (int64_t i = 0; i < nf; i++) act_diff += (f[i] > 0) != (f_ref[i] > 0);
        /* a range of latents equals those columns of the full encoding */
        {
            int    i0 = fc->d_sae / 3, ni = fc->d_sae / 2;
            float *fr = xmalloc((size_t)n * ni * sizeof(float));
            sae_encode_range(s, fr, x, n, i0, ni);
            for (int t = 0; t < n; t++)
                for (int i = 0; i < ni; i++) {
                    float a = fr[(size_t)t * ni + i], b = f[(size_t)t * fc->d_sae + i0 + i];
                    assert_true(fabsf(a - b) <= 1e-5f * (1 + fabsf(b)));
                    assert_int_equal(a > 0, b > 0);
                }
            free(fr);
        }
        sae_decode(s, xh, f_ref, n);
        double e3 = max_rel(xh, xh_ref, (size_t)nh);
        sae_decode_ref(s, xh, f_ref, n);
        double e4 = max_rel(xh, xh_ref, (size_t)nh);
        if (e1 > 1e-5 || e2 > 1e-5 || e3 > 1e-5 || e4 > 1e-5 || act_diff)
            fprintf(stderr, "%s: encode %g ref %g decode %g ref %g active-set diffs %zu\n",
                    fc->name, e1, e2, e3, e4, act_diff);
        assert_true(e1 <= 1e-5 && e2 <= 1e-5 && e3 <= 1e-5 && e4 <= 1e-5);
        assert_int_equal(act_diff, 0);
        free(x); free(f_ref); free(xh_ref); free(f); free(f2); free(xh);
        sae_free(s);
        free(dir);
    }
}

static void test_bad_sae_refused(void **state) {
    (void)state;
    static const struct { const char *name, *want; } cases[] = {
        {"bad_shape", "W_enc"},
        {"bad_nan", "NaN"},
        {"does_not_exist", "not an SAE folder"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char         *dir = fixture(cases[c].name);
        struct sae   *s = NULL;
        struct ev_err err = {{0}};
        assert_int_equal(sae_load(dir, &s, &err), EV_EFAIL);
        assert_null(s);
        if (!strstr(err.msg, cases[c].want)) fprintf(stderr, "message: %s\n", err.msg);
        assert_non_null(strstr(err.msg, cases[c].want));
        free(dir);
    }
    /* cfg shapes the parser must refuse, each with the key at fault in the message */
    static const struct { const char *json, *want; } cfgs[] = {
        {"{\"d_sae\": 4}", "d_in"},
        {"{\"d_in\": 4, \"d_sae\": 8, \"architecture\": \"gated\"}", "gated"},
        {"{\"d_in\": 4, \"d_sae\": 8, \"architecture\": \"topk\"}", "k"},
        {"{\"d_in\": 4, \"d_sae\": 8, \"architecture\": \"topk\", \"k\": 9}", "k 9"},
        {"{\"d_in\": 4, \"d_sae\": 8, \"dtype\": \"int8\"}", "dtype"},
        {"{\"d_in\": 4, \"d_sae\": 8, \"normalize_activations\": \"layer_norm\"}", "layer_norm"},
        {"{\"d_in\": 4, \"d_sae\": 8, \"normalize_activations\": \"expected_average_only_in\"}",
         "norm_scaling_factor"},
        {"{\"d_in\": 4.5, \"d_sae\": 8}", "d_in"},
        {"[1]", "object"},
    };
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        struct sae_config cfg;
        struct ev_err     err = {{0}};
        assert_int_equal(sae_parse_config(cfgs[c].json, strlen(cfgs[c].json), "cfg.json", &cfg,
                                          &err), EV_EFAIL);
        if (!strstr(err.msg, cfgs[c].want)) fprintf(stderr, "message: %s\n", err.msg);
        assert_non_null(strstr(err.msg, cfgs[c].want));
    }
    /* accepted shapes: dtype spellings, bool normalisation, default apply_b_dec */
    struct sae_config cfg;
    struct ev_err     err = {{0}};
    const char *ok = "{\"d_in\": 4, \"d_sae\": 8, \"dtype\": \"torch.bfloat16\", "
                     "\"normalize_activations\": false}";
    assert_int_equal(sae_parse_config(ok, strlen(ok), "cfg.json", &cfg, &err), 0);
    assert_int_equal(cfg.apply_b_dec_to_input, 1);
    assert_string_equal(cfg.normalize, "none");
}

static void test_topk_rows(void **state) {
    (void)state;
    float row[] = {0.5f, -1.0f, 3.0f, 3.0f, 0.1f, -0.2f, 2.0f};
    sae_topk_rows(row, 1, 7, 3);
    const float want[] = {0, 0, 3.0f, 3.0f, 0, 0, 2.0f};
    for (int i = 0; i < 7; i++) assert_true(row[i] == want[i]);
    /* k larger than the positives: negatives kept by rank are ReLU'ed to 0 */
    float r2[] = {-1.0f, -2.0f, 1.0f};
    sae_topk_rows(r2, 1, 3, 2);
    assert_true(r2[0] == 0 && r2[1] == 0 && r2[2] == 1.0f);
}

/* save folds the factor: the loaded SAE encodes raw x as the unfolded one encodes s*x */
static void test_save_folds_factor(void **state) {
    (void)state;
    struct sae_config cfg = sae_default_config(6, 10);
    snprintf(cfg.hook_name, sizeof cfg.hook_name, "blocks.1.hook_resid_post");
    cfg.hook_layer = 1;
    struct sae *s = sae_new(&cfg);
    struct rng  r;
    rng_seed(&r, 7);
    for (size_t i = 0; i < 2 * 6 * 10 + 16; i++) s->arena[i] = rng_normal(&r) * 0.5f;
    const double fold = 2.5;
    char         tmpl[] = "/tmp/evalrun-sae-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char         *dir = path_join(tmpl, "sae");
    struct ev_err err = {{0}};
    assert_int_equal(sae_save(s, dir, fold, "{\"l1\": 5}", &err), 0);
    assert_int_equal(sae_save(s, dir, fold, NULL, &err), 0); /* replacing works too */
    struct sae *l = NULL;
    assert_int_equal(sae_load(dir, &l, &err), 0);
    assert_string_equal(l->cfg.normalize, "none");
    assert_true(fabs(l->cfg.folded_norm_factor - fold) < 1e-12);
    assert_string_equal(l->cfg.hook_name, "blocks.1.hook_resid_post");
    float x[3 * 6], xs[3 * 6], f1[30], f2[30], h1[18], h2[18];
    for (int i = 0; i < 18; i++) {
        x[i] = rng_normal(&r);
        xs[i] = x[i] * (float)fold;
    }
    sae_encode(l, f1, x, 3);
    sae_encode(s, f2, xs, 3);
    assert_true(max_rel(f1, f2, 30) < 1e-5);
    sae_decode(l, h1, f1, 3);
    sae_decode(s, h2, f2, 3);
    for (int i = 0; i < 18; i++) h2[i] /= (float)fold;
    assert_true(max_rel(h1, h2, 18) < 1e-5);
    char hex[65];
    assert_int_equal(sae_hash(dir, hex, &err), 0);
    assert_int_equal((int)strlen(hex), 64);
    /* no temporary folder left behind */
    char *tmp = xasprintf("%s.tmp.%ld", dir, (long)getpid());
    assert_false(path_exists(tmp));
    free(tmp);
    /* refuses NaN weights and leaves the saved SAE untouched */
    s->W_dec[3] = NAN;
    assert_int_equal(sae_save(s, dir, 1.0, NULL, &err), EV_EFAIL);
    char hex2[65];
    assert_int_equal(sae_hash(dir, hex2, &err), 0);
    assert_string_equal(hex, hex2);
    sae_free(s);
    sae_free(l);
    char *cmd = xasprintf("rm -rf '%s'", tmpl);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(dir);
}

static void test_grad_vs_pytorch(void **state) {
    (void)state;
    char         *dir = fixture("grad");
    struct sae   *s = NULL;
    struct ev_err err = {{0}};
    assert_int_equal(sae_load(dir, &s, &err), 0);
    int64_t n;
    float  *x = read_ref(dir, "x", &n), *lam = read_ref(dir, "lambda", &n);
    float  *loss = read_ref(dir, "loss", &n), *mse = read_ref(dir, "mse", &n);
    float  *l1 = read_ref(dir, "l1", &n);
    float  *dWe = read_ref(dir, "dW_enc", &n), *dbe = read_ref(dir, "db_enc", &n);
    float  *dWd = read_ref(dir, "dW_dec", &n), *dbd = read_ref(dir, "db_dec", &n);
    const int D = s->cfg.d_in, S = s->cfg.d_sae, B = 6;
    struct sae           *g = sae_new(&s->cfg);
    struct sae_step_stats st;
    static const enum sae_grad_path paths[] = {SAE_GRAD_SPARSE, SAE_GRAD_DENSE, SAE_GRAD_AUTO};
    for (size_t k = 0; k < 3; k++) {
        double L = sae_loss_grad(s, x, B, lam[0], g, &st, paths[k]);
        assert_true(fabs(L - (double)loss[0]) < 1e-5 * (1 + fabs((double)loss[0])));
        assert_true(fabs(st.mse - (double)mse[0]) < 1e-5 * (1 + fabs((double)mse[0])));
        assert_true(fabs(st.l1 - (double)l1[0]) < 1e-5 * (1 + fabs((double)l1[0])));
        assert_true(max_rel(g->W_enc, dWe, (size_t)D * S) < 1e-5);
        assert_true(max_rel(g->b_enc, dbe, (size_t)S) < 1e-5);
        assert_true(max_rel(g->W_dec, dWd, (size_t)D * S) < 1e-5);
        assert_true(max_rel(g->b_dec, dbd, (size_t)D) < 1e-5);
    }

    /* finite differences in double-ish precision on a sample of parameters (independent of
     * PyTorch): central differences with h = 1e-3 on float32 parameters */
    struct sae *tmp = sae_new(&s->cfg);
    size_t      n_par = 2 * (size_t)D * S + S + D;
    int         checked = 0;
    for (size_t p = 0; p < n_par; p += 37) {
        float  orig = s->arena[p];
        float  h = 1e-3f;
        s->arena[p] = orig + h;
        double lp = sae_loss_grad(s, x, B, lam[0], tmp, NULL, SAE_GRAD_SPARSE);
        s->arena[p] = orig - h;
        double lm = sae_loss_grad(s, x, B, lam[0], tmp, NULL, SAE_GRAD_SPARSE);
        s->arena[p] = orig;
        double fd = (lp - lm) / (double)(2 * h);
        double an = g->arena[p];
        if (fabs(fd - an) > 2e-3 * (1 + fabs(an)))
            fprintf(stderr, "param %zu: fd %g analytic %g\n", p, fd, an);
        assert_true(fabs(fd - an) <= 2e-3 * (1 + fabs(an)));
        checked++;
    }
    assert_true(checked > 10);
    sae_free(tmp);
    sae_free(g);
    sae_free(s);
    free(x); free(lam); free(loss); free(mse); free(l1);
    free(dWe); free(dbe); free(dWd); free(dbd);
    free(dir);
}

/* Synthetic data with known sparse structure: each row is a positive combination of ~3 of
 * n_true unit directions, plus a constant offset. */
static float *synthetic(int64_t n, int d, int n_true, uint64_t seed) {
    struct rng r;
    rng_seed(&r, seed);
    float *dirs = xmalloc((size_t)n_true * d * sizeof(float));
    for (int i = 0; i < n_true; i++) {
        double s2 = 0;
        for (int j = 0; j < d; j++) {
            dirs[i * d + j] = rng_normal(&r);
            s2 += (double)(dirs[i * d + j] * dirs[i * d + j]);
        }
        for (int j = 0; j < d; j++) dirs[i * d + j] /= (float)sqrt(s2);
    }
    float *x = xcalloc((size_t)n * d, sizeof(float));
    for (int64_t t = 0; t < n; t++) {
        float *row = x + (size_t)t * d;
        for (int j = 0; j < d; j++) row[j] = 0.3f;
        for (int k = 0; k < 3; k++) {
            int   i = (int)rng_below(&r, (uint64_t)n_true);
            float a = 1.0f + 2.0f * (float)rng_uniform(&r);
            for (int j = 0; j < d; j++) row[j] += a * dirs[i * d + j];
        }
    }
    free(dirs);
    return x;
}

static void test_train_synthetic(void **state) {
    (void)state;
    const int     D = 16;
    const int64_t N = 20000;
    float        *x = synthetic(N, D, 24, 11);
    struct acts  *a = acts_from_memory(x, N, D);
    struct sae_train_params p = sae_train_default_params();
    p.d_sae = 64;
    p.l1 = 1.0;
    p.lr = 3e-3;
    p.batch = 256;
    p.n_tokens = 256 * 1000;
    p.seed = 3;
    p.norm_tokens = 4096;
    p.shuffle_tokens = 4096;
    struct sae_config     base = sae_default_config(D, p.d_sae);
    struct sae           *s = NULL;
    double                nf = 0;
    struct sae_train_log  lg;
    struct ev_err         err = {{0}};
    assert_int_equal(sae_train_run(&p, &base, a, NULL, NULL, NULL, &s, &nf, &lg, &err), 0);
    fprintf(stderr, "# synthetic: fvu %.4f l0 %.2f mse %.4f dead %.3f s %.4f\n", lg.st.fvu,
            lg.st.l0, lg.st.mse, lg.dead_frac, nf);
    assert_true(lg.st.fvu < 0.15);
    assert_true(lg.st.l0 < 12 && lg.st.l0 >= 1);
    /* E||s x|| = sqrt(D) on the rows used for the estimate */
    assert_true(fabs(acts_mean_norm(a, p.norm_tokens) * nf - sqrt(D)) < 1e-6);

    /* deterministic: the same seed gives the same weights bit for bit */
    struct sae *s2 = NULL;
    assert_int_equal(sae_train_run(&p, &base, a, NULL, NULL, NULL, &s2, &nf, &lg, &err), 0);
    assert_memory_equal(s->arena, s2->arena, (2 * (size_t)D * p.d_sae + p.d_sae + D) * 4);
    sae_free(s2);

    /* interrupted at step 200 (checkpoint written), then resumed: the same weights */
    char tmpl[] = "/tmp/evalrun-ckpt-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char *ck = path_join(tmpl, "ckpt.bin");
    p.ckpt_every = 70;
    p.stop_after = 200;
    struct sae *sc = NULL;
    assert_int_equal(sae_train_run(&p, &base, a, ck, NULL, NULL, &sc, &nf, NULL, &err), EV_EINTR);
    assert_null(sc);
    assert_true(path_exists(ck));
    p.stop_after = 0;
    struct sae *s3 = NULL;
    assert_int_equal(sae_train_run(&p, &base, a, ck, NULL, NULL, &s3, &nf, &lg, &err), 0);
    assert_memory_equal(s->arena, s3->arena, (2 * (size_t)D * p.d_sae + p.d_sae + D) * 4);
    sae_free(s3);
    /* a checkpoint of another configuration is refused */
    p.l1 = 0.6;
    assert_int_equal(sae_train_run(&p, &base, a, ck, NULL, NULL, &s3, &nf, &lg, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "different training configuration"));
    unlink(ck);
    rmdir(tmpl);
    free(ck);
    sae_free(s);
    acts_close(a);
    free(x);
}

static void test_acts_cache(void **state) {
    (void)state;
    char tmpl[] = "/tmp/evalrun-acts-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char              *dir = path_join(tmpl, "cache");
    struct acts_writer *w = NULL;
    struct ev_err      err = {{0}};
    const int          D = 5;
    float              x[37 * 5];
    int                tok[37];
    for (int i = 0; i < 37 * 5; i++) x[i] = (float)i * 0.5f;
    for (int i = 0; i < 37; i++) tok[i] = 100 + i;
    assert_int_equal(acts_writer_new(dir, D, 10, "{\"hook_name\": \"h\"}", &w, &err), 0);
    assert_int_equal(acts_writer_add(w, x, tok, 20, &err), 0);
    assert_int_equal(acts_writer_add(w, x + 20 * D, tok + 20, 17, &err), 0);
    float bad[5] = {0, 1, NAN, 0, 0};
    assert_int_equal(acts_writer_add(w, bad, NULL, 1, &err), EV_EFAIL);
    assert_false(path_exists(dir)); /* nothing visible until finished */
    assert_int_equal(acts_writer_finish(w, &err), 0);
    acts_writer_free(w);
    struct acts *a = NULL;
    assert_int_equal(acts_open(dir, &a, &err), 0);
    assert_int_equal(acts_n_tokens(a), 37);
    assert_int_equal(acts_d_in(a), D);
    for (int i = 0; i < 37; i++) {
        assert_memory_equal(acts_row(a, i), x + i * D, D * sizeof(float));
        assert_int_equal(acts_token(a, i), 100 + i);
    }
    assert_non_null(strstr(acts_meta_json(a), "hook_name"));
    /* the first N - buf rows of the stream are distinct, not in file order, and skip == next */
    float  buf[74 * 5], buf2[5];
    acts_stream_start(a, 9, 8);
    acts_stream_next(a, buf, 74);
    int    seen[37] = {0}, in_order = 0;
    for (int t = 0; t < 29; t++) {
        int i = (int)(buf[t * D] / 2.5f + 0.5f);
        seen[i]++;
        in_order += i == t;
        assert_int_equal(seen[i], 1);
    }
    assert_true(in_order < 29);
    acts_stream_start(a, 9, 8);
    acts_stream_skip(a, 50);
    acts_stream_next(a, buf2, 1);
    assert_memory_equal(buf2, buf + 50 * D, D * sizeof(float));
    acts_close(a);
    /* a corrupted shard (wrong size) is refused, naming the file */
    char *shard = path_join(dir, "acts-00001.f32");
    FILE *f = fopen(shard, "ab");
    fputc(0, f);
    fclose(f);
    assert_int_equal(acts_open(dir, &a, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "acts-00001.f32"));
    free(shard);
    char *cmd = xasprintf("rm -rf '%s'", tmpl);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(dir);
}

/* which SAEs expect TransformerLens' centred GPT-2 stream (DESIGN §8) */
static void test_tl_centering(void **state) {
    (void)state;
    static const struct { const char *json, *model_type; int want; } cases[] = {
        {"{\"d_in\": 4, \"d_sae\": 8, \"model_name\": \"gpt2-small\"}", "gpt2", 1},
        {"{\"d_in\": 4, \"d_sae\": 8}", "llama", 0},
        {"{\"d_in\": 4, \"d_sae\": 8, \"model_from_pretrained_kwargs\": "
         "{\"center_writing_weights\": false}}", "gpt2", 0},
        {"{\"d_in\": 4, \"d_sae\": 8, \"evalrun_norm_factor\": 2.0}", "gpt2", 0},
        /* only the residual stream is centred: not attn.hook_z, not a transcoder */
        {"{\"d_in\": 4, \"d_sae\": 8, \"hook_name\": \"blocks.1.hook_resid_pre\"}", "gpt2", 1},
        {"{\"d_in\": 4, \"d_sae\": 8, \"hook_name\": \"blocks.1.attn.hook_z\"}", "gpt2", 0},
        {"{\"d_in\": 4, \"d_sae\": 8, \"architecture\": \"transcoder\", \"hook_name\": "
         "\"blocks.1.ln2.hook_normalized\", \"hook_name_out\": \"blocks.1.hook_mlp_out\"}",
         "gpt2", 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct sae_config cfg;
        struct ev_err     err = {{0}};
        assert_int_equal(sae_parse_config(cases[c].json, strlen(cases[c].json), "cfg", &cfg, &err),
                         0);
        struct sae *s = sae_new(&cfg);
        assert_int_equal(sae_needs_centering(s, cases[c].model_type), cases[c].want);
        sae_free(s);
    }
    float x[6] = {1, 2, 3, 10, 10, 13}, mean[2];
    sae_center_rows(x, 2, 3, mean);
    assert_true(fabsf(mean[0] - 2.0f) < 1e-6f && fabsf(mean[1] - 11.0f) < 1e-6f);
    assert_true(fabsf(x[0] + 1.0f) < 1e-6f && fabsf(x[5] - 2.0f) < 1e-6f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_encode_decode_fixtures),
        cmocka_unit_test(test_bad_sae_refused),
        cmocka_unit_test(test_topk_rows),
        cmocka_unit_test(test_save_folds_factor),
        cmocka_unit_test(test_grad_vs_pytorch),
        cmocka_unit_test(test_train_synthetic),
        cmocka_unit_test(test_acts_cache),
        cmocka_unit_test(test_tl_centering),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
