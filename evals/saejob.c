/*
 * saejob — the jobs of collect, train-sae, sweep, sae-metrics and index once their flags are
 * checked (see saejob.h): what they open, their runs, and their output.
 */
#include "evals/saejob.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "evals/common.h"
#include "evals/saebench_export.h"
#include "evals/saemeasure.h"
#include "evals/saetrain.h"
#include "model/model.h"
#include "sae/acts.h"
#include "sae/sae.h"
#include "sae/sae_analysis.h"
#include "sae/sae_metrics.h"
#include "store/saestats.h"
#include "store/store.h"

// ---------------------------------------------------------------- shared

/* The model d names (--model, --weights-dtype), with --ctx fitted to it in *d. */
static int load_model(struct saejob_data *d, struct model **m, struct ev_err *err) {
    int T, rc = eval_model_load(d->model, d->weights_dtype, 0, m, err);
    if (rc == EV_OK && (rc = eval_index_ctx(*m, d->ctx, &T, err)) == EV_OK) d->ctx = T;
    return rc;
}

static int load_corpus(struct model *m, const struct saejob_data *d, int64_t n_tokens,
                       struct acts_corpus *c, struct ev_err *err) {
    int T = (int)d->ctx;
    if (d->generate) {
        ev_info("sampling %lld tokens of stories from the model (seed %ld)", (long long)n_tokens,
                d->seed);
        return acts_corpus_generate(m, n_tokens, T, (uint64_t)d->seed, c, err);
    }
    return acts_corpus_from_file(m, d->corpus, d->text_field, n_tokens, T, c, err);
}

static int put_model(struct store *db, struct model *m, int64_t *id, struct ev_err *err) {
    char *cfg = model_config_json(m);
    int   rc = store_put_model(db, model_hash(m), model_path(m), cfg, id, err);
    free(cfg);
    return rc;
}

/* What sae-metrics and index open: the model, the SAE (its hooks and content hash), the
 * corpus and the database with both recorded. */
struct sae_job {
    struct model      *m;
    struct sae        *s;
    struct store      *db;
    struct acts_corpus c;
    char              *sdir;
    char               hash[65];
    struct model_hook  h, h_out; /* the hook read, the one written (the same for an SAE) */
    int64_t            model_id, sae_id;
};

/* Loads the model (fitting --ctx to it) and the SAE of d, and checks that they fit. */
static int sae_job_load(struct sae_job *j, struct saejob_data *d, struct ev_err *err) {
    int rc;
    memset(j, 0, sizeof *j);
    j->sdir = eval_resolve_sae_path(d->sae);
    if ((rc = load_model(d, &j->m, err)) || (rc = sae_load(j->sdir, &j->s, err)) ||
        (rc = sae_hooks(j->m, j->s, j->sdir, &j->h, &j->h_out, err)))
        return rc;
    return EV_OK;
}

/* Hashes the SAE, reads the corpus (shard k of n) and records model and SAE in the database. */
static int sae_job_store(struct sae_job *j, const struct saejob_data *d, int k, int n,
                         struct ev_err *err) {
    int rc;
    if ((rc = sae_hash(j->sdir, j->hash, err)) ||
        (rc = load_corpus(j->m, d, d->tokens, &j->c, err)))
        return rc;
    saetrain_shard_corpus(&j->c, k, n);
    if ((rc = store_open(d->db_path, STORE_CREATE, &j->db, err)) ||
        (rc = put_model(j->db, j->m, &j->model_id, err)))
        return rc;
    return store_put_sae(j->db, j->hash, j->sdir, j->s->cfg_json ? j->s->cfg_json : "{}",
                         j->model_id, &j->sae_id, err);
}

static void sae_job_release(struct sae_job *j) {
    store_close(j->db);
    acts_corpus_release(&j->c);
    sae_free(j->s);
    model_free(j->m);
    free(j->sdir);
}

// ---------------------------------------------------------------- collect

int saejob_collect(const struct saejob_data *dd, const char *hook, const char *out_dir,
                   int keep_bos, int k, int n, int64_t *n_acts, int *width, struct ev_err *err) {
    struct saejob_data d = *dd;
    struct model      *m = NULL;
    struct acts_corpus c = {0};
    struct model_hook  h;
    int                rc;
    if ((rc = load_model(&d, &m, err)) || (rc = model_hook_parse(m, hook, &h, err)) ||
        (rc = load_corpus(m, &d, d.tokens, &c, err)))
        goto out;
    saetrain_shard_corpus(&c, k, n);
    if ((rc = saetrain_write_cache(m, hook, &c, !keep_bos, out_dir, err))) goto out;
    *n_acts = (int64_t)c.n_seq * (c.T - !keep_bos);
    *width = model_config(m)->dim;
out:
    acts_corpus_release(&c);
    model_free(m);
    return rc;
}

// ---------------------------------------------------------------- train-sae and sweep

/* Opens (collecting first when needed) the activations to train on. */
static int open_train_acts(struct model *m, const struct saejob_data *d,
                           const struct saejob_train *t, struct acts **a, char **cache_dir,
                           struct ev_err *err) {
    struct acts_corpus c = {0};
    int                rc;
    *cache_dir = NULL;
    if (t->acts_dir) return acts_open(t->acts_dir, a, err);
    int64_t n = t->collect_tokens > 0 ? t->collect_tokens : d->tokens;
    if (d->generate && d->ctx <= model_config(m)->seq_len) {
        /* a sampled corpus is known by its hash before it is sampled: reuse without sampling */
        acts_corpus_generate_hash(m, n, (int)d->ctx, (uint64_t)d->seed, c.hash);
        *cache_dir = saetrain_cache_dir(m, t->hook, &c, 1);
        if (path_exists(*cache_dir)) {
            ev_info("reusing the activation cache %s", *cache_dir);
            return acts_open(*cache_dir, a, err);
        }
        free(*cache_dir);
        *cache_dir = NULL;
    }
    if ((rc = load_corpus(m, d, n, &c, err))) return rc;
    *cache_dir = saetrain_cache_dir(m, t->hook, &c, 1);
    if (!path_exists(*cache_dir)) {
        ev_info("collecting %lld activations at %s into %s", (long long)c.n_seq * (c.T - 1),
                t->hook, *cache_dir);
        if ((rc = saetrain_write_cache(m, t->hook, &c, 1, *cache_dir, err))) goto out;
    } else {
        ev_info("reusing the activation cache %s", *cache_dir);
    }
    rc = acts_open(*cache_dir, a, err);
out:
    acts_corpus_release(&c);
    return rc;
}

static struct sae_train_params params_from(const struct saejob_train *t,
                                           const struct saejob_data *d, long d_sae,
                                           long tokens) {
    struct sae_train_params p = sae_train_default_params();
    p.d_sae = (int)d_sae;
    p.l1 = t->l1;
    p.lr = t->lr;
    p.batch = (int)t->batch;
    p.n_tokens = tokens;
    p.l1_warmup_frac = t->warmup;
    p.lr_decay_frac = t->decay;
    p.seed = (uint64_t)d->seed;
    p.log_every = (int)t->log_every;
    p.ckpt_every = (int)t->ckpt_every;
    p.stop_after = t->stop_after;
    if (t->dead_window_d > 0) p.dead_window = (int64_t)t->dead_window_d;
    return p;
}

/* The run's configuration; caller frees. */
static char *train_config_json(const struct saejob_data *d, const struct saejob_train *t,
                               const char *out_dir, const char *d_sae_list,
                               const char *tokens_list, struct model *m, struct acts *a) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "hook", t->hook);
    cJSON_AddStringToObject(j, "model_hash", m ? model_hash(m) : "");
    cJSON_AddStringToObject(j, "acts", t->acts_dir ? t->acts_dir : "");
    cJSON_AddStringToObject(j, "corpus", d->corpus ? d->corpus : d->generate ? "generate" : "");
    cJSON_AddNumberToObject(j, "acts_tokens", (double)acts_n_tokens(a));
    cJSON_AddStringToObject(j, "d_sae", d_sae_list);
    cJSON_AddStringToObject(j, "tokens", tokens_list);
    cJSON_AddNumberToObject(j, "l1", t->l1);
    cJSON_AddNumberToObject(j, "lr", t->lr);
    cJSON_AddNumberToObject(j, "batch", (double)t->batch);
    cJSON_AddNumberToObject(j, "warmup", t->warmup);
    cJSON_AddNumberToObject(j, "decay", t->decay);
    cJSON_AddNumberToObject(j, "ctx", (double)d->ctx);
    cJSON_AddStringToObject(j, "out", out_dir);
    char *s = json_print(j);
    json_free(j);
    return s;
}

/* What train-sae and sweep open: the model (--ctx fitted to it) and the activations to train
 * on at the hook, collected first when needed (cache: the folder, NULL with --acts); then the
 * database with the model recorded and the run begun (cfg its configuration). */
struct train_job {
    struct model *m;
    struct acts  *a;
    char         *cache;
    struct store *db;
    char         *cfg;
    int64_t       model_id, run_id;
};

/* name_acts: a width mismatch names the activations' folder. */
static int train_job_open(struct train_job *j, struct saejob_data *d,
                          const struct saejob_train *t, int name_acts, struct ev_err *err) {
    struct model_hook h;
    int               rc;
    memset(j, 0, sizeof *j);
    if ((rc = load_model(d, &j->m, err)) || (rc = model_hook_parse(j->m, t->hook, &h, err)) ||
        (rc = open_train_acts(j->m, d, t, &j->a, &j->cache, err)))
        return rc;
    if (acts_d_in(j->a) == model_config(j->m)->dim) return EV_OK;
    if (name_acts)
        return ev_fail(err, EV_EFAIL, "%s: activations of width %d, but %s has width %d",
                       t->acts_dir ? t->acts_dir : j->cache, acts_d_in(j->a), t->hook,
                       model_config(j->m)->dim);
    return ev_fail(err, EV_EFAIL, "activations of width %d, but %s has width %d",
                   acts_d_in(j->a), t->hook, model_config(j->m)->dim);
}

/* Opens the database, records the model and begins (or resumes) the run of kind, shard k of
 * n, whose configuration names the lists d_list and t_list. */
static int train_job_begin(struct train_job *j, const struct saejob_data *d,
                           const struct saejob_train *t, const char *out_dir, const char *kind,
                           const char *d_list, const char *t_list, int k, int n,
                           struct ev_err *err) {
    int resumed = 0, rc;
    if ((rc = store_open(d->db_path, STORE_CREATE, &j->db, err)) ||
        (rc = put_model(j->db, j->m, &j->model_id, err)))
        return rc;
    j->cfg = train_config_json(d, t, out_dir, d_list, t_list, j->m, j->a);
    struct run_info ri = {.kind = kind, .tag = d->tag, .retag = d->retag,
                          .config_json = j->cfg, .seed = d->seed,
                          .shard_k = k, .shard_n = n, .model_id = j->model_id};
    return store_run_begin(j->db, &ri, &j->run_id, &resumed, err);
}

static void train_job_release(struct train_job *j) {
    store_close(j->db);
    free(j->cfg);
    acts_close(j->a);
    model_free(j->m);
    free(j->cache);
}

/* Records the SAE saved in out_dir (its cfg.json) in the database. */
static int put_trained(struct store *db, const char *hash, const char *out_dir,
                       int64_t model_id, struct ev_err *err) {
    char   *sc = NULL, *cp = path_join(out_dir, "cfg.json");
    size_t  n = 0;
    int64_t sae_id = 0;
    int     rc = EV_EFAIL;
    if (file_read_all(cp, &sc, &n, err) == EV_OK)
        rc = store_put_sae(db, hash, out_dir, sc, model_id, &sae_id, err);
    free(sc);
    free(cp);
    return rc;
}

int saejob_train_sae(const struct saejob_data *dd, const struct saejob_train *t,
                     const char *out_dir, int quiet, struct sae_train_log *fin, char hash[65],
                     struct ev_err *err) {
    struct saejob_data d = *dd;
    struct train_job   j;
    char               dl[32], tl[32];
    int                rc;
    snprintf(dl, sizeof dl, "%ld", t->d_sae);
    snprintf(tl, sizeof tl, "%ld", d.tokens);
    if ((rc = train_job_open(&j, &d, t, 1, err)) ||
        (rc = train_job_begin(&j, &d, t, out_dir, "train-sae", dl, tl, 0, 1, err)))
        goto out;
    struct sae_train_params p = params_from(t, &d, t->d_sae, d.tokens);
    rc = saetrain_one(j.db, j.run_id, j.m, j.a, &p, t->hook, out_dir, quiet, fin, hash, err);
    if (rc == EV_OK) rc = put_trained(j.db, hash, out_dir, j.model_id, err);
    rc = store_run_end(j.db, j.run_id, rc, err);
out:
    train_job_release(&j);
    return rc;
}

/* Trains one point of the grid (out_dir/d<ds>-t<ts>) and stores its row; prints it. */
static int sweep_point(struct store *db, int64_t run_id, struct model *m, struct acts *a,
                       const struct saejob_data *d, const struct saejob_train *t,
                       const char *out_dir, long ds, long ts, struct ev_err *err) {
    char                   *dir = xasprintf("%s/d%ld-t%ld", out_dir, ds, ts);
    struct sae_train_params p = params_from(t, d, ds, ts);
    struct sae_train_log    fin;
    char                    hash[65];
    double                  t0 = now_seconds();
    ev_info("sweep: training d_sae %ld on %ld tokens", ds, ts);
    int    rc = saetrain_one(db, run_id, m, a, &p, t->hook, dir, 1, &fin, hash, err);
    double secs = now_seconds() - t0;
    double flops = 0;
    if (rc == EV_OK) {
        flops = 6.0 * (double)fin.tokens * acts_d_in(a) * (double)ds;
        const struct saestats_sweep_row row = {ds, ts, t->l1, fin.st.loss, fin.st.mse,
                                               fin.st.l0, fin.st.fvu, fin.dead_frac,
                                               flops, secs, hash, dir};
        rc = saestats_sweep_put(db, run_id, &row, err);
    }
    free(dir);
    if (rc) return rc;
    printf("%8ld %10ld %8.4f %8.2f %8.4f %8.4f %10.3g %10.1f\n", ds, ts, fin.st.mse,
           fin.st.l0, fin.st.fvu, fin.dead_frac, flops, secs);
    fflush(stdout);
    return EV_OK;
}

/* Trains and stores the grid's points not yet stored in the run, one table row each. */
static int sweep_points(struct store *db, int64_t run_id, struct model *m, struct acts *a,
                        const struct saejob_data *d, const struct saejob_train *t,
                        const char *out_dir, const struct saejob_grid *g, struct ev_err *err) {
    int rc = EV_OK, point = 0;
    printf("%8s %10s %8s %8s %8s %8s %10s %10s\n", "d_sae", "tokens", "mse", "L0", "fvu", "dead",
           "flops", "seconds");
    for (int i = 0; i < g->nd; i++)
        for (int j = 0; j < g->nt; j++, point++) {
            const long ds = g->ds[i], ts = g->ts[j];
            if (point % g->sn != g->sk) continue;
            int have = saestats_sweep_has(db, run_id, ds, ts, err);
            if (have < 0) return have;
            if (have) {
                ev_info("sweep: d_sae %ld, %ld tokens already done", ds, ts);
                continue;
            }
            if ((rc = sweep_point(db, run_id, m, a, d, t, out_dir, ds, ts, err))) return rc;
        }
    return EV_OK;
}

int saejob_sweep(const struct saejob_data *dd, const struct saejob_train *tt, const char *out_dir,
                 const char *d_list, const char *t_list, const struct saejob_grid *g,
                 long max_t, struct ev_err *err) {
    struct saejob_data  d = *dd;
    struct saejob_train t = *tt;
    struct train_job    j;
    int                 rc;
    if (!t.collect_tokens) t.collect_tokens = max_t < 1000000 ? max_t : 1000000;
    if ((rc = train_job_open(&j, &d, &t, 0, err)) || (rc = mkdir_p(out_dir, err)) ||
        (rc = train_job_begin(&j, &d, &t, out_dir, "sweep", d_list, t_list, g->sk, g->sn, err)))
        goto out;
    rc = sweep_points(j.db, j.run_id, j.m, j.a, &d, &t, out_dir, g, err);
    rc = store_run_end(j.db, j.run_id, rc, err);
out:
    train_job_release(&j);
    return rc;
}

// ---------------------------------------------------------------- sae-metrics

int saejob_metrics(const struct saejob_data *dd, int k, int n, const char *out_json, int json,
                   struct ev_err *err) {
    struct saejob_data d = *dd;
    struct sae_job     j;
    struct sae_metrics r;
    char              *cfg = NULL, *hist = NULL;
    int64_t            run_id = 0;
    int                resumed = 0, rc;
    if ((rc = sae_job_load(&j, &d, err)) || (rc = sae_job_store(&j, &d, k, n, err))) goto out;
    cfg = xasprintf("{\"sae_hash\":\"%s\",\"model_hash\":\"%s\",\"corpus_hash\":\"%s\","
                    "\"tokens\":%ld,\"ctx\":%ld}",
                    j.hash, model_hash(j.m), j.c.hash, d.tokens, d.ctx);
    struct run_info ri = {.kind = "sae-metrics", .tag = d.tag, .retag = d.retag,
                          .config_json = cfg, .seed = d.seed, .shard_k = k, .shard_n = n,
                          .model_id = j.model_id, .sae_id = j.sae_id};
    if ((rc = store_run_begin(j.db, &ri, &run_id, &resumed, err))) goto out;
    rc = saemeasure_run(j.m, j.s, j.h, j.h_out, &j.c, &r, err);
    if (rc == EV_OK) {
        hist = sae_metrics_hist_json(&r);
        rc = saestats_metrics_put(j.db, run_id, j.sae_id, j.hash, &r, hist, err);
    }
    if ((rc = store_run_end(j.db, run_id, rc, err))) goto out;
    if (out_json) {
        struct saebench_core_info bi = {j.hash, j.sdir, j.s->cfg_json, d.model,
                                        j.s->cfg.hook_name, d.corpus ? d.corpus : "generate",
                                        j.c.hash, j.s->cfg.d_in, j.s->cfg.d_sae, (int)d.ctx,
                                        d.seed};
        if ((rc = saebench_write_core(out_json, &r, &bi, err))) goto out;
    }
    saemeasure_print(json, j.sdir, j.s, j.hash, &r, hist);
out:
    sae_job_release(&j);
    free(cfg);
    free(hist);
    return rc;
}

// ---------------------------------------------------------------- index

static void index_print(const struct sae_job *j, const struct eval_index_summary *sum) {
    if (sum->res.reused)
        printf("index of %s over %lld tokens already complete in %s (reused)\n", j->sdir,
               (long long)sum->res.n_tokens, store_path(j->db));
    else
        printf("indexed %s over %lld tokens: %d chunk(s) written, %d already stored, %lld "
               "examples, %d features alive in the chunks written\n",
               j->sdir, (long long)sum->res.n_tokens, sum->res.chunks_done,
               sum->res.chunks_skipped, (long long)sum->res.n_examples, sum->res.n_alive);
    if (sum->nn_done)
        printf("features vs neurons: %d features sampled, %.0f%% have no MLP neuron with Pearson "
               "r >= 0.3 (table feature_neurons)\n", sum->nn_done, 100.0 * sum->nn_weak);
}

int saejob_index(const struct saejob_data *dd, const struct eval_index_opts *given,
                 struct ev_err *err) {
    struct saejob_data        d = *dd;
    struct eval_features      ff = {0};
    struct sae_job            j = {0};
    struct eval_index_opts    o = *given;
    struct eval_index_summary sum;
    int                       rc;
    if (o.features_path && (rc = eval_features_load(o.features_path, 0, &ff, err))) goto out;
    if ((rc = sae_job_load(&j, &d, err))) goto out;
    /* direct logit effects: decoders writing the residual stream's basis, or hook_z via W_O */
    if (!sae_hook_has_logits(j.m, &j.h_out)) o.n_logits = 0;
    for (int i = 0; i < ff.n; i++)
        if (ff.idx[i] >= j.s->cfg.d_sae) {
            rc = ev_fail(err, EV_EFAIL, "%s: feature id %d out of range: %s has %d latents "
                                        "(0..%d)", o.features_path, ff.idx[i], j.sdir,
                         j.s->cfg.d_sae, j.s->cfg.d_sae - 1);
            goto out;
        }
    o.p.features = ff.idx; /* borrowed from ff */
    o.p.n_features = ff.n;
    if ((rc = sae_job_store(&j, &d, 0, 1, err))) goto out;
    o.tokens = d.tokens;
    o.tag = d.tag;
    o.retag = d.retag;
    if ((rc = eval_index_build(j.db, j.m, j.s, j.hash, j.model_id, j.sae_id, &j.c, &o, &sum,
                               err)))
        goto out;
    index_print(&j, &sum);
out:
    sae_job_release(&j);
    eval_features_release(&ff);
    return rc;
}
