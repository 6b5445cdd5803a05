/*
 * index — the feature index and its analyses, built for `evalrun index` and on demand for
 * the evaluations. See index.h.
 */
#include "evals/index.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/progress.h"
#include "sae/sae_analysis.h"
#include "store/index.h"

struct eval_index_opts eval_index_default_opts(void) {
    struct eval_index_opts o = {.p = sae_index_default_params(), .tokens = EVAL_INDEX_TOKENS,
                                .n_neighbors = 10, .n_logits = 10, .n_neurons = 64,
                                .neuron_tokens = 8192};
    return o;
}

int eval_index_ctx(const struct model *m, long given, int *T, struct ev_err *err) {
    int seq_len = model_config(m)->seq_len;
    if (given > 0) {
        if (given > seq_len)
            return ev_fail(err, EV_EUSAGE, "--ctx %ld exceeds the model's context of %d", given,
                           seq_len);
        *T = (int)given;
        return EV_OK;
    }
    *T = EVAL_INDEX_CTX;
    if (*T > seq_len) {
        ev_info("note: ctx %d (the model's context) instead of the default %d", seq_len,
                EVAL_INDEX_CTX);
        *T = seq_len;
    }
    return EV_OK;
}

// ---------------------------------------------------------------------------- analyses

/* Neighbours and logit effects for ids. */
static int store_analyses(struct store *db, int64_t sae_id, struct model *m, const struct sae *s,
                          const struct model_hook *h_out, const int *ids, int n_ids, int n_nb,
                          int n_lg, struct ev_err *err) {
    int   *nb = NULL, *top = NULL, *bot = NULL;
    float *cs = NULL, *tv = NULL, *bv = NULL;
    int    rc;
    if (n_nb > s->cfg.d_sae - 1) n_nb = s->cfg.d_sae - 1;
    if (n_lg > model_vocab_tokens(m)) n_lg = model_vocab_tokens(m);
    if ((rc = store_begin(db, err))) return rc;
    if (n_nb > 0) {
        nb = xmalloc((size_t)n_ids * n_nb * sizeof(int));
        cs = xmalloc((size_t)n_ids * n_nb * sizeof(float));
        sae_neighbors(s, ids, n_ids, n_nb, nb, cs);
        rc = index_put_neighbors(db, sae_id, ids, n_ids, n_nb, nb, cs, err);
    }
    if (rc == EV_OK && n_lg > 0) {
        top = xmalloc((size_t)n_ids * n_lg * sizeof(int));
        bot = xmalloc((size_t)n_ids * n_lg * sizeof(int));
        tv = xmalloc((size_t)n_ids * n_lg * sizeof(float));
        bv = xmalloc((size_t)n_ids * n_lg * sizeof(float));
        sae_logit_effects_at(s, m, h_out, ids, n_ids, n_lg, top, tv, bot, bv);
        rc = index_put_logits(db, sae_id, ids, n_ids, n_lg, top, tv, bot, bv, err);
    }
    if (rc == EV_OK) rc = store_commit(db, err);
    else store_rollback(db);
    free(nb); free(cs); free(top); free(bot); free(tv); free(bv);
    return rc;
}

/* Features vs neurons: for up to n_feat features that fired in the index (seeded sample), the
 * best Pearson correlation with any MLP neuron of the block that writes the SAE's stream,
 * over the first n_tok corpus tokens (BOS excluded). Stores feature_neurons; *frac_weak gets
 * the fraction with best r < 0.3 (the paper: 82% of features). */
static int index_neurons(struct store *db, int64_t sae_id, struct model *m, const struct sae *s,
                         struct model_hook h, const struct acts_corpus *c, int n_feat,
                         int64_t n_tok, uint64_t seed, int *n_done, double *frac_weak,
                         struct ev_err *err) {
    const struct model_config *mc = model_config(m);
    const int T = c->T, D = s->cfg.d_in, S = s->cfg.d_sae, H = mc->hidden_dim;
    int layer = model_hook_mlp_layer(h);
    struct model_state *ms = NULL;
    int   *alive = NULL, *best = NULL, n_alive = 0, rc;
    float *xs = NULL, *f = NULL, *fe = NULL, *ne = NULL, *nrn = NULL;
    double *rr = NULL;
    *n_done = 0;
    *frac_weak = 0;
    if (layer < 0) return EV_OK; /* blocks.0.hook_resid_pre: no MLP wrote into it */
    if ((rc = index_fired_features(db, sae_id, S, &alive, &n_alive, err))) goto out;
    struct rng r;
    rng_seed(&r, seed ^ 0x6e6575726f6eULL);
    rng_shuffle(&r, alive, (size_t)n_alive);
    if (n_feat > n_alive) n_feat = n_alive;
    int n_seq = (int)((n_tok + T - 2) / (T - 1));
    if (n_seq > c->n_seq) n_seq = c->n_seq;
    const int64_t N = (int64_t)n_seq * (T - 1);
    if (n_feat < 1 || N < 3) {
        rc = EV_OK;
        goto out;
    }
    if ((rc = model_state_new(m, T, 0, &ms, err))) goto out;
    xs = xmalloc((size_t)T * D * sizeof(float));
    f = xmalloc((size_t)T * S * sizeof(float));
    nrn = xmalloc((size_t)T * H * sizeof(float));
    fe = xmalloc((size_t)N * n_feat * sizeof(float)); /* (n_feat, N) */
    ne = xmalloc((size_t)N * H * sizeof(float));      /* (N, H) */
    /* one pass reads the neurons (mlp.hook_post) and the SAE's stream */
    struct model_edit rd[2] = {{.hook = {layer, MODEL_HOOK_MLP_POST}, .read = nrn},
                               {.hook = h, .read = xs}};
    struct progress bar;
    progress_init(&bar, "index: neurons", n_seq);
    for (int q = 0; q < n_seq; q++) {
        if (ev_interrupted()) {
            rc = ev_fail(err, EV_EINTR, "interrupted while comparing features with neurons");
            break;
        }
        const int *tok = c->tokens + (size_t)q * T;
        if ((rc = model_forward(ms, tok, 0, T, rd, 2, err))) break;
        sae_encode(s, f, xs, T);
        for (int t = 1; t < T; t++) {
            int64_t row = (int64_t)q * (T - 1) + t - 1;
            memcpy(ne + (size_t)row * H, nrn + (size_t)t * H, (size_t)H * sizeof(float));
            for (int k = 0; k < n_feat; k++)
                fe[(size_t)k * N + row] = f[(size_t)t * S + alive[k]];
        }
        progress_tick(&bar, 1);
    }
    progress_finish(&bar);
    if (rc) goto out;
    best = xmalloc((size_t)n_feat * sizeof(int));
    rr = xmalloc((size_t)n_feat * sizeof(double));
    int weak = 0;
    for (int k = 0; k < n_feat; k++) {
        best[k] = -1;
        rr[k] = sae_best_pearson(fe + (size_t)k * N, ne, (int)N, H, &best[k]);
        weak += rr[k] < 0.3;
    }
    if ((rc = store_begin(db, err))) goto out;
    if ((rc = index_put_neurons(db, sae_id, alive, n_feat, layer, best, rr, N, err))) {
        store_rollback(db);
        goto out;
    }
    if ((rc = store_commit(db, err))) goto out;
    *n_done = n_feat;
    *frac_weak = (double)weak / n_feat;
    rc = EV_OK;
out:
    model_state_free(ms);
    free(alive); free(best); free(rr); free(xs); free(f); free(fe); free(ne); free(nrn);
    return rc;
}

// ---------------------------------------------------------------------------- building

int eval_index_build(struct store *db, struct model *m, const struct sae *s,
                     const char *sae_hash, int64_t model_id, int64_t sae_id,
                     const struct acts_corpus *c, const struct eval_index_opts *o,
                     struct eval_index_summary *out, struct ev_err *err) {
    const struct sae_index_params *p = &o->p;
    struct model_hook              h, h_out;
    char                           chash[65], hin[128];
    int                           *all = NULL, resumed = 0, rc, n_lg = o->n_logits;
    memset(out, 0, sizeof *out);
    if ((rc = sae_hooks(m, s, "the SAE", &h, &h_out, err))) return rc;
    model_hook_name(h, hin, sizeof hin); /* the hook the features are read at */
    /* direct logit effects exist only for decoders writing the residual stream's basis, or
     * attn.hook_z through W_O */
    if (!sae_hook_has_logits(m, &h_out)) n_lg = 0;
    /* the index configuration: what the stored examples depend on (not the shard or subset) */
    char *id = xasprintf("%s|%s|%s|k%d b%d p%d n%d w%d s%llu", model_hash(m), sae_hash, c->hash,
                         p->top_k, p->bins, p->per_bin, p->n_nonact, p->window,
                         (unsigned long long)p->seed);
    sha256_hex(id, strlen(id), chash);
    free(id);
    cJSON *cj = cJSON_CreateObject();
    cJSON_AddStringToObject(cj, "sae_hash", sae_hash);
    cJSON_AddStringToObject(cj, "model_hash", model_hash(m));
    cJSON_AddStringToObject(cj, "index_config", chash);
    cJSON_AddNumberToObject(cj, "tokens", (double)o->tokens);
    cJSON_AddNumberToObject(cj, "ctx", c->T);
    cJSON_AddStringToObject(cj, "corpus", c->source); /* provenance (evalrun show) */
    cJSON_AddStringToObject(cj, "corpus_hash", c->hash);
    cJSON_AddStringToObject(cj, "features", o->features_path ? o->features_path : "");
    char *cfg = json_print(cj);
    json_free(cj);
    struct run_info ri = {.kind = "index", .tag = o->tag, .retag = o->retag, .config_json = cfg,
                          .seed = (int64_t)p->seed, .shard_k = p->shard_k,
                          .shard_n = p->shard_n, .model_id = model_id, .sae_id = sae_id};
    rc = store_run_begin(db, &ri, &out->run_id, &resumed, err);
    free(cfg);
    if (rc) return rc;
    rc = index_build(db, sae_id, out->run_id, chash, m, s, hin, c, p, &out->res, err);
    if (rc == EV_OK && !out->res.reused) {
        const int *ids = p->features;
        int        n_ids = p->n_features;
        if (!ids) {
            all = xmalloc((size_t)s->cfg.d_sae * sizeof(int));
            for (int i = 0; i < s->cfg.d_sae; i++) all[i] = i;
            ids = all;
            n_ids = s->cfg.d_sae;
        }
        rc = store_analyses(db, sae_id, m, s, &h_out, ids, n_ids, o->n_neighbors, n_lg, err);
        if (rc == EV_OK && o->n_neurons > 0 && p->shard_k == 0)
            rc = index_neurons(db, sae_id, m, s, h, c, o->n_neurons, o->neuron_tokens, p->seed,
                               &out->nn_done, &out->nn_weak, err);
    }
    free(all);
    return store_run_end(db, out->run_id, rc, err);
}

// ---------------------------------------------------------------------------- on demand

/* s as one shell word: as it is when it needs no quoting, else in single quotes. */
static void shell_word(struct sbuf *sb, const char *s) {
    int plain = *s != '\0';
    for (const char *p = s; *p && plain; p++)
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./+-=:,@%",
                       *p) != NULL;
    if (plain) {
        sbuf_adds(sb, s);
        return;
    }
    sbuf_adds(sb, "'");
    for (const char *p = s; *p; p++) {
        if (*p == '\'') sbuf_adds(sb, "'\\''");
        else sbuf_addf(sb, "%c", *p);
    }
    sbuf_adds(sb, "'");
}

char *eval_index_build_command(const struct eval_env *e, const struct eval_index_source *src) {
    static const struct eval_index_source none = {0};
    if (!src) src = &none;
    struct sbuf sb;
    sbuf_init(&sb);
    sbuf_adds(&sb, "evalrun --db ");
    shell_word(&sb, store_path(e->store));
    sbuf_adds(&sb, " index");
    if (src->model_arg) {
        sbuf_adds(&sb, " --model ");
        shell_word(&sb, e->model_path);
    }
    sbuf_adds(&sb, " --sae ");
    shell_word(&sb, e->sae_path);
    if (src->corpus) {
        sbuf_adds(&sb, " --corpus ");
        shell_word(&sb, src->corpus);
        if (src->text_field) {
            sbuf_adds(&sb, " --text-field ");
            shell_word(&sb, src->text_field);
        }
    } else {
        sbuf_adds(&sb, " --generate");
    }
    return sbuf_detach(&sb);
}

/* The shipped model (evals/models/stories260K), named or by default. */
static int shipped_model(const struct eval_env *e) {
    static const char tail[] = "/evals/models/stories260K/stories260K.bin";
    char *r = realpath(e->model_path, NULL);
    size_t n = r ? strlen(r) : 0;
    int    yes = n >= sizeof tail - 1 && strcmp(r + n - (sizeof tail - 1), tail) == 0;
    free(r);
    return yes;
}

int eval_index_ensure(struct eval_env *e, const struct eval_index_source *src,
                      struct ev_err *err) {
    static const struct eval_index_source none = {0};
    if (!src) src = &none;
    int64_t n_windows = 0;
    int     has = index_count_windows(e->store, e->sae_id, &n_windows, err);
    if (has < 0) return has;
    if (n_windows > 0) return EV_OK;
    if (src->no_build || (!src->corpus && !shipped_model(e))) {
        char *cmd = eval_index_build_command(e, src);
        int   rc = ev_fail(err, EV_EFAIL, "the database %s holds no feature index for SAE %s%s: "
                                          "build it with: %s",
                           store_path(e->store), e->sae_path,
                           src->no_build ? " (--no-index-build)"
                                         : " (give --corpus FILE to build it on demand over "
                                           "your text)",
                           cmd);
        free(cmd);
        return rc;
    }
    struct eval_index_opts    o = eval_index_default_opts();
    struct eval_index_summary sum;
    struct acts_corpus        c = {0};
    int                       T, rc;
    if ((rc = eval_index_ctx(e->model, 0, &T, err))) return rc;
    if (src->corpus)
        ev_info("no feature index for %s in %s yet: building it over %lld tokens of %s "
                "(--no-index-build: stop instead)", e->sae_path, store_path(e->store),
                (long long)o.tokens, src->corpus);
    else
        ev_info("no feature index for %s in %s yet: building it over %lld tokens of stories "
                "sampled from the model (--corpus FILE: your text; --no-index-build: stop "
                "instead)", e->sae_path, store_path(e->store), (long long)o.tokens);
    rc = src->corpus ? acts_corpus_from_file(e->model, src->corpus, src->text_field, o.tokens, T,
                                             &c, err)
                     : acts_corpus_generate(e->model, o.tokens, T, o.p.seed, &c, err);
    if (rc == EV_OK)
        rc = eval_index_build(e->store, e->model, e->sae, e->sae_hash, e->model_id, e->sae_id, &c,
                              &o, &sum, err);
    acts_corpus_release(&c);
    if (rc == EV_OK)
        ev_info("indexed %s over %lld tokens (run %lld): %lld examples, %d features alive",
                e->sae_path, (long long)sum.res.n_tokens, (long long)sum.run_id,
                (long long)sum.res.n_examples, sum.res.n_alive);
    return rc;
}

int eval_index_ensure_readonly(struct eval_env *e, const char *db_path,
                               const struct eval_index_source *src, struct ev_err *err) {
    int64_t n = 0;
    int     rc = e->sae_id ? index_count_windows(e->store, e->sae_id, &n, err) : EV_OK;
    if (rc != EV_OK) return rc;
    if (n > 0 || src->no_build) return EV_OK;
    rc = eval_env_writable(e, db_path, err);
    return rc != EV_OK ? rc : eval_index_ensure(e, src, err);
}
