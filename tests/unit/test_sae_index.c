/*
 * Unit tests for sae_index: the fused corpus stream (sae_index_compute: forward to the hook,
 * encode tiles scanned at once, records in a scratch file) against its naive twin
 * (sae_index_compute_ref: residuals kept, full encodes per chunk) on a small random model -
 * every statistic and every example identical, for standard, JumpReLU and TopK SAEs, a
 * feature subset, a shard, a resumed run (a chunk already stored) - and both against a brute
 * force (sae_encode over every residual): fire counts, maxima, sums and the top-k, and every
 * example window (tokens, activations, clipping, non-activating windows silent, text).
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
#include "model/tok.h"
#include "sae/sae.h"
#include "sae/sae_index.h"

/* What a sink received, flattened: per feature its stats, and every example's fields. */
struct got {
    int                     n_stats, n_ex, chunks;
    struct sae_index_stats *stats;
    struct sae_index_example *ex; /* tokens, acts, text owned */
    int                       skip_chunk; /* chunk_done says done for the chunk starting here */
};

static int got_done(void *ctx, const int *ids, int n, int *done, struct ev_err *err) {
    struct got *g = ctx;
    (void)n, (void)err;
    *done = g->skip_chunk >= 0 && ids[0] == g->skip_chunk;
    return EV_OK;
}

static int got_put(void *ctx, const struct sae_index_chunk *ch, struct ev_err *err) {
    struct got *g = ctx;
    (void)err;
    g->chunks++;
    g->stats = realloc(g->stats, sizeof *g->stats * (size_t)(g->n_stats + ch->n_features));
    memcpy(g->stats + g->n_stats, ch->stats, sizeof *g->stats * (size_t)ch->n_features);
    g->n_stats += ch->n_features;
    g->ex = realloc(g->ex, sizeof *g->ex * (size_t)(g->n_ex + ch->n_ex + 1));
    for (int k = 0; k < ch->n_ex; k++) {
        struct sae_index_example e = ch->ex[k];
        int   *t = malloc(sizeof(int) * (size_t)e.n);
        float *a = malloc(sizeof(float) * (size_t)e.n);
        memcpy(t, e.tokens, sizeof(int) * (size_t)e.n);
        memcpy(a, e.acts, sizeof(float) * (size_t)e.n);
        e.tokens = t;
        e.acts = a;
        e.text = strdup(e.text);
        g->ex[g->n_ex++] = e;
    }
    return EV_OK;
}

static void got_free(struct got *g) {
    for (int k = 0; k < g->n_ex; k++) {
        free((void *)g->ex[k].tokens);
        free((void *)g->ex[k].acts);
        free((void *)g->ex[k].text);
    }
    free(g->ex);
    free(g->stats);
}

static struct model *small_model(void) {
    struct model_config c = {.arch = MODEL_ARCH_LLAMA, .rope = MODEL_ROPE_HALF,
                             .norm = MODEL_NORM_RMS, .act = MODEL_ACT_SWIGLU, .dim = 32,
                             .hidden_dim = 48, .n_layers = 3, .n_heads = 4, .n_kv_heads = 2,
                             .vocab_size = 97, .seq_len = 64};
    struct model *m = NULL;
    struct ev_err err = {{0}};
    assert_int_equal(model_new_random(&c, 5, &m, &err), EV_OK);
    return m;
}

/* Models whose context holds several sequences of the corpora below, so that the stream
 * batches them: kind 0 Llama-like (RoPE), 1 GPT-2-like (learned positions, LayerNorm). */
static struct model *batch_model(int kind) {
    struct model_config c = {.dim = 32, .hidden_dim = 48, .n_layers = 3, .n_heads = 4,
                             .vocab_size = 97, .seq_len = 256};
    if (kind == 0) {
        c.arch = MODEL_ARCH_LLAMA, c.rope = MODEL_ROPE_HALF, c.norm = MODEL_NORM_RMS;
        c.act = MODEL_ACT_SWIGLU, c.n_kv_heads = 2;
    } else {
        c.arch = MODEL_ARCH_GPT2, c.rope = MODEL_ROPE_NONE, c.norm = MODEL_NORM_LAYER;
        c.act = MODEL_ACT_GELU_TANH, c.n_kv_heads = 4;
        c.qkv_bias = c.out_bias = c.tied_embeddings = 1;
    }
    struct model *m = NULL;
    struct ev_err err = {{0}};
    assert_int_equal(model_new_random(&c, 7, &m, &err), EV_OK);
    return m;
}

/* A random SAE on d_in 32 with S latents: arch 0 standard, 1 JumpReLU, 2 TopK (k 8). */
static struct sae *small_sae(int S, int arch) {
    struct sae_config cfg = sae_default_config(32, S);
    cfg.arch = arch == 1 ? SAE_ARCH_JUMPRELU : arch == 2 ? SAE_ARCH_TOPK : SAE_ARCH_STANDARD;
    cfg.k = 8;
    struct sae *s = sae_new(&cfg);
    struct rng  r;
    rng_seed(&r, 11 + (uint64_t)arch);
    /* the residuals of a random model (0.02-scale weights) are small: large encoder weights */
    for (size_t k = 0; k < (size_t)32 * S; k++) s->W_enc[k] = rng_normal(&r) * 10.0f;
    for (int i = 0; i < S; i++) {
        s->b_enc[i] = -0.8f + 0.1f * rng_normal(&r);
        if (s->threshold) s->threshold[i] = 0.05f * (float)(i % 7);
    }
    for (int j = 0; j < 32; j++) s->b_dec[j] = 0.1f * rng_normal(&r);
    return s;
}

static struct acts_corpus small_corpus(int n_seq, int T) {
    struct acts_corpus c = {0};
    struct rng         r;
    rng_seed(&r, 3);
    c.n_seq = n_seq;
    c.T = T;
    c.tokens = malloc(sizeof(int) * (size_t)n_seq * T);
    for (int k = 0; k < n_seq * T; k++) c.tokens[k] = k % T == 0 ? 1 : (int)rng_below(&r, 97);
    return c;
}

static void run_both(struct model *m, struct sae *s, const struct acts_corpus *c,
                     const struct sae_index_params *p, int skip, struct got *a, struct got *b,
                     struct sae_index_result *ra, struct sae_index_result *rb) {
    struct ev_err err = {{0}};
    memset(a, 0, sizeof *a);
    memset(b, 0, sizeof *b);
    a->skip_chunk = b->skip_chunk = skip;
    struct sae_index_sink sa = {a, got_done, got_put}, sb = {b, got_done, got_put};
    memset(ra, 0, sizeof *ra);
    memset(rb, 0, sizeof *rb);
    if (sae_index_compute(m, s, "blocks.2.hook_resid_pre", c, p, &sa, ra, &err) != EV_OK)
        fail_msg("fused: %s", err.msg);
    if (sae_index_compute_ref(m, s, "blocks.2.hook_resid_pre", c, p, &sb, rb, &err) != EV_OK)
        fail_msg("ref: %s", err.msg);
}

static void assert_same(const struct got *a, const struct got *b) {
    assert_int_equal(a->chunks, b->chunks);
    assert_int_equal(a->n_stats, b->n_stats);
    for (int j = 0; j < a->n_stats; j++) {
        const struct sae_index_stats *x = &a->stats[j], *y = &b->stats[j];
        assert_int_equal(x->feature, y->feature);
        assert_int_equal(x->fire_count, y->fire_count);
        assert_int_equal(x->n_tokens, y->n_tokens);
        assert_true(fabsf(x->max_act - y->max_act) <= 1e-5f * (1 + fabsf(y->max_act)));
        assert_true(fabs(x->mean_act - y->mean_act) <= 1e-5 * (1 + fabs(y->mean_act)));
        for (int k = 0; k < 4; k++)
            assert_true(fabs(x->quantiles[k] - y->quantiles[k]) <=
                        1e-5 * (1 + fabs(y->quantiles[k])));
    }
    assert_int_equal(a->n_ex, b->n_ex);
    for (int k = 0; k < a->n_ex; k++) {
        const struct sae_index_example *x = &a->ex[k], *y = &b->ex[k];
        assert_int_equal(x->feature, y->feature);
        assert_int_equal(x->kind, y->kind);
        assert_int_equal(x->interval, y->interval);
        assert_int_equal(x->center, y->center);
        assert_int_equal(x->n, y->n);
        assert_memory_equal(x->tokens, y->tokens, sizeof(int) * (size_t)x->n);
        for (int u = 0; u < x->n; u++)
            assert_true(fabsf(x->acts[u] - y->acts[u]) <= 1e-5f * (1 + fabsf(y->acts[u])));
        assert_string_equal(x->text, y->text);
    }
}

/* The fused stream gives the naive twin's index, architecture by architecture. */
static void test_fused_matches_ref(void **state) {
    (void)state;
    struct model      *m = small_model();
    /* 30 sequences of 40: blocks of 25 sequences (1024 rows), the last one short; 600
     * latents: 3 chunks */
    struct acts_corpus c = small_corpus(30, 40);
    for (int arch = 0; arch < 3; arch++) {
        struct sae             *s = small_sae(600, arch);
        struct sae_index_params p = sae_index_default_params();
        p.seed = 9;
        p.top_k = 5;
        p.per_bin = 3;
        p.n_nonact = 4;
        p.window = 4;
        struct got              a, b;
        struct sae_index_result ra, rb;
        run_both(m, s, &c, &p, -1, &a, &b, &ra, &rb);
        assert_int_equal(a.n_stats, 600);
        assert_true(a.n_ex > 600); /* top, interval and non-activating windows were made */
        assert_same(&a, &b);
        assert_int_equal(ra.chunks_done, 3);
        assert_int_equal(ra.n_alive, rb.n_alive);
        assert_int_equal(ra.n_examples, rb.n_examples);
        got_free(&a);
        got_free(&b);
        sae_free(s);
    }
    free(c.tokens);
    model_free(m);
}

/* Subsets, shards and a resumed run: the same chunks, the same results. */
static void test_fused_subset_shard_resume(void **state) {
    (void)state;
    struct model      *m = small_model();
    /* blocks of 16 sequences, the last one short; 2,560 tokens: the picks' radix sort takes
     * two passes */
    struct acts_corpus c = small_corpus(40, 64);
    struct sae        *s = small_sae(900, 0);
    int                feats[300];
    for (int i = 0; i < 300; i++) feats[i] = (i * 7919) % 900; /* unsorted, spread out */
    struct sae_index_params p = sae_index_default_params();
    p.seed = 2;
    p.features = feats;
    p.n_features = 300;
    struct got              a, b;
    struct sae_index_result ra, rb;
    run_both(m, s, &c, &p, -1, &a, &b, &ra, &rb);
    assert_int_equal(a.n_stats, 300);
    assert_same(&a, &b);
    got_free(&a);
    got_free(&b);
    p.features = NULL;
    p.n_features = 0;
    p.shard_k = 1;
    p.shard_n = 2;
    run_both(m, s, &c, &p, -1, &a, &b, &ra, &rb);
    assert_int_equal(ra.chunks_done, 2); /* chunks 1 and 3 of 4 */
    assert_int_equal(a.stats[0].feature, 256);
    assert_same(&a, &b);
    got_free(&a);
    got_free(&b);
    p.shard_n = 1;
    p.shard_k = 0;
    run_both(m, s, &c, &p, 512, &a, &b, &ra, &rb); /* chunk 2 already stored */
    assert_int_equal(ra.chunks_skipped, 1);
    assert_int_equal(ra.chunks_done, 3);
    assert_same(&a, &b);
    got_free(&a);
    got_free(&b);
    sae_free(s);
    free(c.tokens);
    model_free(m);
}

/* Every example window against the brute-force activations f (NS, T, S) and the corpus: the
 * window's tokens are the corpus' at positions lo .. lo+n-1 of some sequence, clipped to
 * 1 .. T-1 around its centre; each activation is the brute force's there; a top or interval
 * window's centre fires with its activation, a non-activating window never fires; without
 * a tokenizer the text is the ids in decimal. Returns how many windows were checked. */
static int check_windows(const struct got *g, const float *f, const struct acts_corpus *c,
                         int NS, int T, int S, int W) {
    for (int e = 0; e < g->n_ex; e++) {
        const struct sae_index_example *x = &g->ex[e];
        int                             found = 0;
        for (int q = 0; q < NS && !found; q++)
            for (int lo = 1; lo + x->n <= T && !found; lo++) {
                int t = lo + x->center, ok = 1;
                if (lo != (t - W < 1 ? 1 : t - W) || lo + x->n - 1 != (t + W > T - 1 ? T - 1 : t + W))
                    continue;
                for (int u = 0; u < x->n && ok; u++) {
                    float a = f[((size_t)q * T + lo + u) * S + x->feature];
                    ok = x->tokens[u] == c->tokens[(size_t)q * T + lo + u] &&
                         fabsf(x->acts[u] - a) <= 1e-4f * (1 + fabsf(a));
                }
                found = ok;
            }
        if (!found)
            fail_msg("example %d (feature %d, kind %d): no corpus window has its tokens and "
                     "the brute force's activations", e, x->feature, (int)x->kind);
        assert_true(x->activation == x->acts[x->center]);
        if (x->kind == SAE_INDEX_NONACT)
            for (int u = 0; u < x->n; u++) assert_true(x->acts[u] == 0.0f);
        else
            assert_true(x->activation > 0);
        char want[512];
        int  len = 0;
        for (int u = 0; u < x->n; u++)
            len += snprintf(want + len, sizeof want - (size_t)len, "%s%d", u ? " " : "",
                            x->tokens[u]);
        assert_string_equal(x->text, want);
    }
    return g->n_ex;
}

/* Counts, maxima, means and top-k against sae_encode over every residual. */
static void test_fused_vs_brute_force(void **state) {
    (void)state;
    struct model      *m = small_model();
    const int          NS = 6, T = 50, S = 300, K = 6;
    struct acts_corpus c = small_corpus(NS, T);
    struct sae        *s = small_sae(S, 0);
    struct ev_err      err = {{0}};
    struct model_state *st = NULL;
    struct model_hook   h;
    float *x = malloc(sizeof(float) * (size_t)T * 32);
    float *f = malloc(sizeof(float) * (size_t)NS * T * S);
    assert_int_equal(model_hook_parse(m, "blocks.2.hook_resid_pre", &h, &err), EV_OK);
    assert_int_equal(model_state_new(m, T, 0, &st, &err), EV_OK);
    for (int q = 0; q < NS; q++) {
        assert_int_equal(model_forward_to_hook(st, c.tokens + q * T, 0, T, h, x, &err), EV_OK);
        sae_encode_ref(s, f + (size_t)q * T * S, x, T);
    }
    struct sae_index_params p = sae_index_default_params();
    p.top_k = K;
    struct got              g = {0};
    struct sae_index_sink   sink = {&g, got_done, got_put};
    struct sae_index_result res = {0};
    g.skip_chunk = -1;
    assert_int_equal(sae_index_compute(m, s, "blocks.2.hook_resid_pre", &c, &p, &sink, &res, &err),
                     EV_OK);
    int alive = 0;
    for (int j = 0; j < S; j++) {
        int64_t n = 0;
        double  sum = 0;
        float   mx = 0, top[6] = {0};
        for (int q = 0; q < NS; q++)
            for (int t = 1; t < T; t++) {
                float a = f[((size_t)q * T + t) * S + j];
                if (!(a > 0)) continue;
                n++, sum += (double)a, mx = a > mx ? a : mx;
                for (int k = 0; k < K; k++) /* insert into the descending top */
                    if (a > top[k]) {
                        memmove(top + k + 1, top + k, sizeof(float) * (size_t)(K - 1 - k));
                        top[k] = a;
                        break;
                    }
            }
        const struct sae_index_stats *st_j = &g.stats[j];
        assert_int_equal(st_j->feature, j);
        assert_int_equal(st_j->fire_count, n);
        assert_true(fabsf(st_j->max_act - mx) <= 1e-4f * (1 + mx));
        if (n) assert_true(fabs(st_j->mean_act - sum / (double)n) <= 1e-4 * (1 + sum / n));
        alive += n > 0;
        /* the examples come in token order: sort the top ones' activations, descending */
        float got_top[6];
        int   kk = 0;
        for (int e = 0; e < g.n_ex; e++)
            if (g.ex[e].feature == j && g.ex[e].kind == SAE_INDEX_TOP) {
                assert_true(kk < K);
                got_top[kk++] = g.ex[e].activation;
            }
        assert_int_equal(kk, n < K ? n : K);
        for (int u = 1; u < kk; u++)
            for (int v = u; v > 0 && got_top[v] > got_top[v - 1]; v--) {
                float tmp = got_top[v];
                got_top[v] = got_top[v - 1];
                got_top[v - 1] = tmp;
            }
        for (int k = 0; k < kk; k++)
            assert_true(fabsf(got_top[k] - top[k]) <= 1e-4f * (1 + top[k]));
    }
    int n_win = check_windows(&g, f, &c, NS, T, S, p.window);
    int kinds[3] = {0};
    for (int e = 0; e < g.n_ex; e++) kinds[g.ex[e].kind]++;
    fprintf(stderr, "# %d of %d latents fired; %d windows checked (%d top, %d interval, %d "
                    "non-activating)\n", alive, S, n_win, kinds[SAE_INDEX_TOP],
            kinds[SAE_INDEX_INTERVAL], kinds[SAE_INDEX_NONACT]);
    assert_true(kinds[SAE_INDEX_TOP] > 0 && kinds[SAE_INDEX_INTERVAL] > 0 &&
                kinds[SAE_INDEX_NONACT] > 0);
    assert_true(alive > S / 10);
    assert_int_equal(res.n_alive, alive);
    got_free(&g);
    model_state_free(st);
    free(x);
    free(f);
    sae_free(s);
    free(c.tokens);
    model_free(m);
}

/* The batched forward the stream uses: n sequences in one pass == n passes (within float
 * summation order), on both position schemes; nothing continues from a batch; too many rows
 * for the state is refused. */
static void test_batch_forward(void **state) {
    (void)state;
    const int          NS = 5, T = 30, D = 32;
    struct acts_corpus c = small_corpus(NS, T);
    for (int kind = 0; kind < 2; kind++) {
        struct model       *m = batch_model(kind);
        struct model_state *st = NULL, *one = NULL;
        struct model_hook   h;
        struct ev_err       err = {{0}};
        float *xb = malloc(sizeof(float) * (size_t)NS * T * D), *x1 = malloc(sizeof(float) * T * D);
        assert_int_equal(model_hook_parse(m, "blocks.2.hook_resid_pre", &h, &err), EV_OK);
        assert_int_equal(model_state_new(m, NS * T, 0, &st, &err), EV_OK);
        assert_int_equal(model_state_new(m, T, 0, &one, &err), EV_OK);
        assert_int_equal(model_forward_to_hook_batch(st, c.tokens, NS, T, h, xb, &err), EV_OK);
        double worst = 0, scale = 0;
        for (int q = 0; q < NS; q++) {
            assert_int_equal(model_forward_to_hook(one, c.tokens + q * T, 0, T, h, x1, &err), EV_OK);
            for (int k = 0; k < T * D; k++) {
                double d = fabs((double)xb[(size_t)q * T * D + k] - (double)x1[k]);
                worst = d > worst ? d : worst;
                scale = fabs((double)x1[k]) > scale ? fabs((double)x1[k]) : scale;
            }
        }
        fprintf(stderr, "# kind %d: batch vs one by one max |diff| %.3g (max |x| %.3g)\n", kind,
                worst, scale);
        assert_true(scale > 0 && worst <= 1e-5 * (1 + scale));
        assert_int_equal(model_forward_from_hook(st, 0, NS * T, h, xb, &err), EV_EFAIL);
        assert_int_equal(model_forward_to_hook_batch(st, c.tokens, NS + 1, T, h, xb, &err),
                         EV_EFAIL);
        assert_non_null(strstr(err.msg, "does not fit"));
        free(xb), free(x1);
        model_state_free(st);
        model_state_free(one);
        model_free(m);
    }
    free(c.tokens);
}

/* The stream with batched forwards (blocks of 34 sequences, forwards of 8, 8, 8, 8 and 2,
 * then a block of 6) gives the twin's index (one forward per sequence), on both position
 * schemes. */
static void test_fused_batched_matches_ref(void **state) {
    (void)state;
    struct acts_corpus c = small_corpus(40, 30);
    for (int kind = 0; kind < 2; kind++) {
        struct model           *m = batch_model(kind);
        struct sae             *s = small_sae(300, kind);
        struct sae_index_params p = sae_index_default_params();
        p.seed = 4;
        p.top_k = 5;
        p.per_bin = 3;
        p.n_nonact = 4;
        p.window = 4;
        struct got              a, b;
        struct sae_index_result ra, rb;
        run_both(m, s, &c, &p, -1, &a, &b, &ra, &rb);
        assert_int_equal(a.n_stats, 300);
        assert_true(ra.n_alive > 30);
        assert_same(&a, &b);
        got_free(&a);
        got_free(&b);
        sae_free(s);
        model_free(m);
    }
    free(c.tokens);
}

/* The window texts' fast path (a stack buffer, UTF-8 checked only when a byte is above
 * 0x7f) gives its naive twin's text: tok512's pieces (byte tokens 3..258 make windows that
 * cut characters), ids as numbers without a tokenizer (negative and large ones too), and
 * windows too long for the stack buffer. */
static void test_window_text_matches_ref(void **state) {
    (void)state;
    const char   *root = getenv("ROOT");
    char         *path = xasprintf("%s/tests/fixtures/tok/tok512.bin", root ? root : ".");
    struct tok   *tk = NULL;
    struct ev_err err = {{0}};
    assert_int_equal(tok_load(path, &tk, &err), EV_OK);
    free(path);
    struct rng r;
    rng_seed(&r, 11);
    int ids[1600], n_checked = 0, n_invalid = 0;
    for (int k = 0; k < 400; k++) {
        int n = k < 4 ? 1500 + k : 1 + (int)rng_below(&r, 30);
        for (int i = 0; i < n; i++)
            ids[i] = k % 2 ? (int)rng_below(&r, 512)
                           : (int)rng_below(&r, 2000000) - (k % 4 == 2 ? 1000000 : 0);
        const struct tok *t = k % 2 ? tk : NULL;
        char *a = sae_index_window_text(t, ids, n), *b = sae_index_window_text_ref(t, ids, n);
        if (strcmp(a, b) != 0) fail_msg("window %d (%d ids, %s): texts differ", k, n,
                                        t ? "tok512" : "numbers");
        n_invalid += t && strchr(b, '\xef') != NULL; /* U+FFFD's first byte: a cut character */
        n_checked++;
        free(a);
        free(b);
    }
    assert_int_equal(n_checked, 400);
    assert_true(n_invalid > 0); /* the UTF-8 repair was exercised */
    tok_free(tk);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fused_matches_ref),
        cmocka_unit_test(test_window_text_matches_ref),
        cmocka_unit_test(test_fused_subset_shard_resume),
        cmocka_unit_test(test_fused_vs_brute_force),
        cmocka_unit_test(test_batch_forward),
        cmocka_unit_test(test_fused_batched_matches_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
