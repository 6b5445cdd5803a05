/*
 * saetrain — activation caches and SAE training for `collect`, `train-sae` and `sweep`, and
 * the synthetic benchmark of `sae-bench` (see saetrain.h).
 */
#include "evals/saetrain.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/hash.h"
#include "base/json.h"
#include "store/saestats.h"

/* Keeps the sequences s with s % n == k. */
void saetrain_shard_corpus(struct acts_corpus *c, int k, int n) {
    if (n <= 1) return;
    int o = 0;
    for (int s = 0; s < c->n_seq; s++)
        if (s % n == k) {
            if (o != s)
                memmove(c->tokens + (size_t)o * c->T, c->tokens + (size_t)s * c->T,
                        (size_t)c->T * sizeof(int));
            o++;
        }
    c->n_seq = o;
}

/* The default activation cache for (model, hook, corpus, skip_bos): under results/acts/. */
char *saetrain_cache_dir(struct model *m, const char *hook, const struct acts_corpus *c,
                         int skip_bos) {
    char  hex[65];
    char *id = xasprintf("%s|%s|%s|%d", model_hash(m), hook, c->hash, skip_bos);
    sha256_hex(id, strlen(id), hex);
    free(id);
    hex[16] = '\0';
    return xasprintf("results/acts/%s", hex);
}

int saetrain_write_cache(struct model *m, const char *hook, const struct acts_corpus *c,
                         int skip_bos, const char *dir, struct ev_err *err) {
    struct acts_writer *w = NULL;
    struct model_hook   h;
    int                 rc = model_hook_parse(m, hook, &h, err);
    if (rc) return rc;
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "model", model_path(m));
    cJSON_AddStringToObject(meta, "model_hash", model_hash(m));
    cJSON_AddStringToObject(meta, "hook_name", hook);
    cJSON_AddStringToObject(meta, "corpus_hash", c->hash);
    cJSON_AddNumberToObject(meta, "seq_len", c->T);
    cJSON_AddNumberToObject(meta, "n_seq", c->n_seq);
    cJSON_AddBoolToObject(meta, "skip_bos", skip_bos);
    char *mj = json_print(meta);
    json_free(meta);
    char *parent = xstrdup(dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        if ((rc = mkdir_p(parent, err))) goto out;
    }
    if ((rc = acts_writer_new(dir, model_config(m)->dim, 1 << 18, mj, &w, err))) goto out;
    if ((rc = acts_collect(m, hook, c, skip_bos, w, err))) goto out;
    rc = acts_writer_finish(w, err);
out:
    acts_writer_free(w);
    free(mj);
    free(parent);
    return rc;
}

struct train_log_ctx {
    struct store *db; /* NULL: no log stored */
    int64_t       run_id;
    int           quiet;
};

static void train_log(void *vctx, const struct sae_train_log *lg) {
    struct train_log_ctx *c = vctx;
    if (!c->quiet)
        ev_info("step %6lld/%lld  tokens %9lld  loss %.4f  mse %.4f  l1 %.3f  L0 %6.2f  fvu %.4f  "
                "dead %.3f  lambda %.3g  %.1fs",
                (long long)lg->step, (long long)lg->n_steps, (long long)lg->tokens, lg->st.loss,
                lg->st.mse, lg->st.l1, lg->st.l0, lg->st.fvu, lg->dead_frac, lg->lambda,
                lg->elapsed_s);
    if (!c->db) return;
    struct ev_err e;
    if (saestats_train_log_put(c->db, c->run_id, lg, &e) != EV_OK)
        ev_info("warning: training log not stored: %s", e.msg);
}

/* Trains one SAE and saves it; shared by train-sae and sweep. */
int saetrain_one(struct store *db, int64_t run_id, struct model *m, struct acts *a,
                 const struct sae_train_params *p, const char *hook, const char *out_dir,
                 int quiet, struct sae_train_log *final, char hash[65], struct ev_err *err) {
    struct sae_config    base = sae_default_config(acts_d_in(a), p->d_sae);
    struct sae          *s = NULL;
    double               nf = 1;
    struct train_log_ctx lc = {db, run_id, quiet};
    char                *ck = xasprintf("%s.ckpt", out_dir);
    char                *extra = NULL;
    int                  rc;
    snprintf(base.hook_name, sizeof base.hook_name, "%s", hook);
    if (m) {
        struct model_hook h;
        if ((rc = model_hook_parse(m, hook, &h, err))) goto out;
        base.hook_layer = h.layer;
        snprintf(base.model_name, sizeof base.model_name, "%s", model_path(m));
    }
    rc = sae_train_run(p, &base, a, ck, train_log, &lc, &s, &nf, final, err);
    if (rc) goto out;
    extra = xasprintf("{\"training\": {\"trainer\": \"evalrun\", \"l1\": %.17g, \"lr\": %.17g, "
                      "\"batch\": %d, \"tokens\": %lld, \"seed\": %llu, \"norm_factor\": %.17g, "
                      "\"final_mse\": %.9g, \"final_l0\": %.9g, \"final_dead_frac\": %.9g}}",
                      p->l1, p->lr, p->batch, (long long)(final->tokens),
                      (unsigned long long)p->seed, nf, final->st.mse, final->st.l0,
                      final->dead_frac);
    if ((rc = sae_save(s, out_dir, nf, extra, err))) goto out;
    unlink(ck);
    rc = sae_hash(out_dir, hash, err);
out:
    sae_free(s);
    free(ck);
    free(extra);
    return rc;
}

/* sae-bench: times training steps and encoding of a synthetic SAE (d_in D, d_sae S) on a
 * batch of B tokens, and prints one line of name=value fields. */
struct sae *saetrain_random_tied(int D, int S, struct rng *r) {
    struct sae_config cfg = sae_default_config(D, S);
    struct sae       *s = sae_new(&cfg);
    for (int i = 0; i < S; i++) {
        float *row = s->W_dec + (size_t)i * D;
        double n2 = 0;
        for (int j = 0; j < D; j++) {
            row[j] = rng_normal(r);
            n2 += (double)row[j] * (double)row[j];
        }
        for (int j = 0; j < D; j++) {
            row[j] /= (float)sqrt(n2);
            s->W_enc[(size_t)j * S + i] = row[j];
        }
    }
    return s;
}

void saetrain_bench_print(const int D, const int S, const int B, int steps, uint64_t seed) {
    struct rng r;
    rng_seed(&r, seed);
    struct sae *s = saetrain_random_tied(D, S, &r);
    for (int i = 0; i < S; i++) s->b_enc[i] = -3.0f;
    float *x = xmalloc((size_t)B * D * sizeof(float)), *f = xmalloc((size_t)B * S * sizeof(float));
    for (size_t k = 0; k < (size_t)B * D; k++) x[k] = rng_normal(&r);
    /* training: forward, backward and Adam on a fixed batch (one warm-up step) */
    double l0_train = 0;
    double train_s = sae_train_bench(s, x, B, steps, 1.0, &l0_train);
    /* encoding */
    sae_encode(s, f, x, B);
    double t0 = now_seconds();
    for (int k = 0; k < steps; k++) sae_encode(s, f, x, B);
    double enc_s = (now_seconds() - t0) / (double)steps;
    size_t nnz = 0;
    for (size_t k = 0; k < (size_t)B * S; k++) nnz += f[k] > 0;
    printf("impl=evalrun\td_in=%d\td_sae=%d\tbatch=%d\tl0=%.1f\ttrain_l0=%.1f\t"
           "train_step_ms=%.2f\ttrain_tok_s=%.1f\tencode_ms=%.2f\tencode_tok_s=%.1f\n",
           D, S, B, (double)nnz / B, l0_train, train_s * 1e3, B / train_s, enc_s * 1e3,
           B / enc_s);
    free(x);
    free(f);
    sae_free(s);
}

