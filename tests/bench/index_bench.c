/*
 * index_bench — the C side of `make bench`'s index row (tests/bench/run.sh): tokens/s of the
 * whole corpus pass of the feature index (forward to the SAE's hook, SAE encode, every
 * per-feature statistic, top-k, interval and non-activating samples, window texts) on a
 * GPT-2-small-shaped model with random weights (as `evalrun bench model --gpt2-small`) and a
 * random 24,576-latent SAE at blocks.6.hook_resid_pre. Not an evalrun command: make bench
 * builds it from libevalrun.a. tests/bench/index.py does the same work in PyTorch.
 *
 *   index_bench [--seqs N] [--ctx T] [--d-sae S] [--layer L] [--reps R] [--seed K]
 *
 * The SAE: unit-norm random decoder rows, W_enc = W_dec^T, b_dec = 0 and b_enc = -3 times
 * the rms of the hook's residuals (measured on the first sequence), so that about 0.13% of
 * the latents fire, as in a trained SAE; index.py calibrates its own SAE the same way.
 * Prints one tab-separated line of name=value fields; the best of R repetitions.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/util.h"
#include "model/model.h"
#include "sae/sae.h"
#include "sae/sae_index.h"
#include "evals/saetrain.h"

struct counting_sink {
    int64_t n_ex, n_fire, n_feat;
};

static int sink_done(void *ctx, const int *ids, int n, int *done, struct ev_err *err) {
    (void)ctx, (void)ids, (void)n, (void)err;
    *done = 0;
    return EV_OK;
}

static int sink_put(void *ctx, const struct sae_index_chunk *ch, struct ev_err *err) {
    struct counting_sink *c = ctx;
    (void)err;
    c->n_ex += ch->n_ex;
    c->n_feat += ch->n_features;
    for (int j = 0; j < ch->n_features; j++) c->n_fire += ch->stats[j].fire_count;
    return EV_OK;
}

static long arg_long(int argc, char **argv, const char *name, long def) {
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return strtol(argv[i + 1], NULL, 10);
    return def;
}

int main(int argc, char **argv) {
    const int n_seq = (int)arg_long(argc, argv, "--seqs", 16);
    const int T = (int)arg_long(argc, argv, "--ctx", 128);
    const int S = (int)arg_long(argc, argv, "--d-sae", 24576);
    const int layer = (int)arg_long(argc, argv, "--layer", 6);
    const int reps = (int)arg_long(argc, argv, "--reps", 2);
    const uint64_t seed = (uint64_t)arg_long(argc, argv, "--seed", 1);
    struct ev_err  err = {{0}};
    struct model  *m = NULL;
    struct model_config c = model_config_gpt2_small();
    if (n_seq < 1 || T < 2 || T > c.seq_len || S < 1 || layer < 0 || layer >= c.n_layers ||
        reps < 1) {
        fprintf(stderr, "index_bench: bad arguments\n");
        return 2;
    }
    if (model_new_random(&c, seed, &m, &err) != EV_OK) {
        fprintf(stderr, "index_bench: %s\n", err.msg);
        return 1;
    }
    const int D = c.dim;
    char hook[64];
    snprintf(hook, sizeof hook, "blocks.%d.hook_resid_pre", layer);
    struct acts_corpus corp = {0};
    corp.n_seq = n_seq;
    corp.T = T;
    corp.tokens = xmalloc((size_t)n_seq * T * sizeof(int));
    struct rng r;
    rng_seed(&r, seed + 7);
    for (size_t k = 0; k < (size_t)n_seq * T; k++)
        corp.tokens[k] = (int)rng_below(&r, (uint64_t)c.vocab_size);
    // the SAE, calibrated on the first sequence's residuals
    struct sae *s = saetrain_random_tied(D, S, &r);
    {
        struct model_state *st = NULL;
        struct model_hook   h;
        float              *x = xmalloc((size_t)T * D * sizeof(float));
        if (model_hook_parse(m, hook, &h, &err) || model_state_new(m, T, 0, &st, &err) ||
            model_forward_to_hook(st, corp.tokens, 0, T, h, x, &err)) {
            fprintf(stderr, "index_bench: %s\n", err.msg);
            return 1;
        }
        double ss = 0;
        for (size_t k = (size_t)D; k < (size_t)T * D; k++) ss += (double)x[k] * (double)x[k];
        float rms = (float)sqrt(ss / ((double)(T - 1) * D));
        for (int i = 0; i < S; i++) s->b_enc[i] = -3.0f * rms;
        model_state_free(st);
        free(x);
    }
    struct sae_index_params p = sae_index_default_params();
    p.seed = seed;
    double best = 1e30;
    struct sae_index_result best_res = {0};
    struct counting_sink cs = {0};
    for (int k = 0; k < reps; k++) {
        struct sae_index_sink   sink = {&cs, sink_done, sink_put};
        struct sae_index_result res = {0};
        memset(&cs, 0, sizeof cs);
        double t0 = now_seconds();
        if (sae_index_compute(m, s, hook, &corp, &p, &sink, &res, &err) != EV_OK) {
            fprintf(stderr, "index_bench: %s\n", err.msg);
            return 1;
        }
        double dt = now_seconds() - t0;
        if (dt < best) best = dt, best_res = res;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double ntok = (double)n_seq * T;
    printf("impl=evalrun\tseqs=%d\tctx=%d\td_sae=%d\thook=%s\tl0=%.1f\texamples=%lld\t"
           "index_s=%.3f\tindex_tok_s=%.1f\tpeak_rss_mb=%.1f\tforward_s=%.3f\tencode_s=%.3f\t"
           "scan_s=%.3f\tintervals_s=%.3f\texamples_s=%.3f\n",
           n_seq, T, S, hook, (double)cs.n_fire / (ntok - n_seq), (long long)cs.n_ex, best,
           ntok / best, (double)ru.ru_maxrss / 1024.0, best_res.t_forward, best_res.t_encode,
           best_res.t_scan, best_res.t_intervals, best_res.t_examples);
    sae_free(s);
    free(corp.tokens);
    model_free(m);
    return 0;
}
