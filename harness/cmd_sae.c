/*
 * cmd_sae — the SAE commands: `collect` (activation cache), `train-sae`, `sae-metrics`,
 * `sweep` and `index` (the feature index and its analyses). See docs/sae.md.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acts.h"
#include "cmd.h"
#include "hash.h"
#include "json.h"
#include "model.h"
#include "progress.h"
#include "sae.h"
#include "sae_metrics.h"
#include "sae_train.h"
#include "store.h"

// ---------------------------------------------------------------- shared helpers

/* What every data-reading command shares: model, corpus source, batch flags. */
struct data_opts {
    const char *model, *corpus, *tag, *shard;
    int         generate;
    long        tokens, ctx, seed;
};

#define DATA_OPTS(d)                                                                           \
    {"model", OPT_STR, &(d).model, "PATH", "model (default $EVALRUN_MODEL, else stories260K)"}, \
    {"corpus", OPT_STR, &(d).corpus, "FILE", "text corpus (plain text)"},                       \
    {"generate", OPT_FLAG, &(d).generate, NULL,                                                 \
     "use stories sampled from the model itself (temperature 1, seeded) as the corpus"},        \
    {"ctx", OPT_LONG, &(d).ctx, "T", "tokens per sequence, BOS first (default 128)"},           \
    {"seed", OPT_LONG, &(d).seed, "S", "random seed (default 0)"},                              \
    {"tag", OPT_STR, &(d).tag, "NAME", "a name for the run"},                                   \
    {"shard", OPT_STR, &(d).shard, "K/N", "do the K-th of N parts (K from 0)"}

static int check_data(const char *cmd, const struct data_opts *d, int n_pos, char **argv,
                      struct ev_err *err) {
    int rc;
    if (n_pos > 0) return ev_fail(err, EV_EUSAGE, "%s: unexpected argument '%s'", cmd, argv[1]);
    if (!d->corpus && !d->generate)
        return ev_fail(err, EV_EUSAGE, "%s: give --corpus FILE or --generate", cmd);
    if (d->corpus && d->generate)
        return ev_fail(err, EV_EUSAGE, "%s: --corpus and --generate exclude each other", cmd);
    if ((rc = args_check_long("--tokens", d->tokens, 1, 1L << 34, err)) ||
        (rc = args_check_long("--ctx", d->ctx, 2, 1 << 16, err)) ||
        (rc = args_check_long("--seed", d->seed, 0, LONG_MAX, err)))
        return rc;
    return EV_OK;
}

static int load_corpus(struct model *m, const struct data_opts *d, int64_t n_tokens,
                       struct acts_corpus *c, struct ev_err *err) {
    int T = (int)d->ctx;
    if (T > model_config(m)->seq_len)
        return ev_fail(err, EV_EUSAGE, "--ctx %d exceeds the model's context of %d", T,
                       model_config(m)->seq_len);
    if (d->generate) {
        ev_info("sampling %lld tokens of stories from the model (seed %ld)", (long long)n_tokens,
                d->seed);
        return acts_corpus_generate(m, n_tokens, T, (uint64_t)d->seed, c, err);
    }
    return acts_corpus_from_file(m, d->corpus, n_tokens, T, c, err);
}

/* Keeps the sequences s with s % n == k. */
static void shard_corpus(struct acts_corpus *c, int k, int n) {
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

static int open_model(const char *arg, struct model **m, struct ev_err *err) {
    char *path = model_resolve_path(arg);
    int   rc = model_load(path, m, err);
    free(path);
    return rc;
}

static int put_model(struct store *db, struct model *m, int64_t *id, struct ev_err *err) {
    const struct model_config *mc = model_config(m);
    char *cfg = xasprintf("{\"model_type\":\"%s\",\"dim\":%d,\"n_layers\":%d,\"vocab_size\":%d}",
                          mc->model_type, mc->dim, mc->n_layers, mc->vocab_size);
    int   rc = store_put_model(db, model_hash(m), model_path(m), cfg, id, err);
    free(cfg);
    return rc;
}

/* Checks the SAE against the model: hook known, widths equal. */
static int check_fit(struct model *m, const struct sae *s, const char *sae_dir,
                     struct model_hook *h, struct ev_err *err) {
    if (!s->cfg.hook_name[0])
        return ev_fail(err, EV_EFAIL, "%s: cfg.json names no hook (hook_name)", sae_dir);
    int rc = model_hook_parse(m, s->cfg.hook_name, h, err);
    if (rc) return rc;
    if (s->cfg.d_in != model_config(m)->dim)
        return ev_fail(err, EV_EFAIL, "%s: d_in %d differs from the width %d of %s at %s",
                       sae_dir, s->cfg.d_in, model_config(m)->dim, model_path(m),
                       s->cfg.hook_name);
    return EV_OK;
}

/* The default activation cache for (model, hook, corpus, skip_bos): under results/acts/. */
static char *default_cache_dir(struct model *m, const char *hook, const struct acts_corpus *c,
                               int skip_bos) {
    char  hex[65];
    char *id = xasprintf("%s|%s|%s|%d", model_hash(m), hook, c->hash, skip_bos);
    sha256_hex(id, strlen(id), hex);
    free(id);
    hex[16] = '\0';
    return xasprintf("results/acts/%s", hex);
}

static int write_cache(struct model *m, const char *hook, const struct acts_corpus *c,
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

// ---------------------------------------------------------------- collect

int cmd_collect(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "collect", "[--model M] --hook H (--corpus FILE | --generate) --tokens N --out DIR",
        "Runs the corpus through the model and writes the residual stream at the hook to an\n"
        "activation cache (docs/sae.md: header.json + raw float32 shards + token ids). The BOS\n"
        "position is left out unless --keep-bos. With --shard K/N only every N-th sequence\n"
        "(from the K-th) is collected."};
    struct data_opts d = {.tokens = 0, .ctx = 128, .seed = 0};
    const char *hook = NULL, *out_dir = NULL;
    int         keep_bos = 0;
    const struct opt opts[] = {
        DATA_OPTS(d),
        {"hook", OPT_STR, &hook, "H", "hook, e.g. blocks.2.hook_resid_post"},
        {"tokens", OPT_LONG, &d.tokens, "N", "corpus tokens to run"},
        {"out", OPT_STR, &out_dir, "DIR", "the cache folder to write"},
        {"keep-bos", OPT_FLAG, &keep_bos, NULL, "keep the BOS position's activations"},
        {0},
    };
    struct model      *m = NULL;
    struct acts_corpus c = {0};
    int                n_pos = 0, sk = 0, sn = 1;
    int                rc = args_parse(&help, opts, argc, argv, &n_pos, err);
    (void)cli;
    if (rc) return rc;
    if (!hook || !out_dir)
        return ev_fail(err, EV_EUSAGE, "collect: --hook and --out are required");
    if ((rc = check_data("collect", &d, n_pos, argv, err))) return rc;
    if ((rc = args_parse_shard(d.shard, &sk, &sn, err))) return rc;
    if ((rc = open_model(d.model, &m, err))) goto out;
    struct model_hook h;
    if ((rc = model_hook_parse(m, hook, &h, err))) goto out;
    if ((rc = load_corpus(m, &d, d.tokens, &c, err))) goto out;
    shard_corpus(&c, sk, sn);
    if ((rc = write_cache(m, hook, &c, !keep_bos, out_dir, err))) goto out;
    printf("collected %lld activations of width %d at %s into %s\n",
           (long long)c.n_seq * (c.T - !keep_bos), model_config(m)->dim, hook, out_dir);
out:
    acts_corpus_release(&c);
    model_free(m);
    return rc;
}

// ---------------------------------------------------------------- train-sae

struct train_log_ctx {
    struct store      *db;
    struct store_stmt *ins;
    int64_t            run_id;
    int                quiet;
};

static void train_log(void *vctx, const struct sae_train_log *lg) {
    struct train_log_ctx *c = vctx;
    if (!c->quiet)
        ev_info("step %6lld/%lld  tokens %9lld  loss %.4f  mse %.4f  l1 %.3f  L0 %6.2f  fvu %.4f  "
                "dead %.3f  lambda %.3g  %.1fs",
                (long long)lg->step, (long long)lg->n_steps, (long long)lg->tokens, lg->st.loss,
                lg->st.mse, lg->st.l1, lg->st.l0, lg->st.fvu, lg->dead_frac, lg->lambda,
                lg->elapsed_s);
    if (!c->ins) return;
    struct ev_err e;
    store_reset(c->ins);
    store_bind_int(c->ins, 1, c->run_id);
    store_bind_int(c->ins, 2, lg->step);
    store_bind_int(c->ins, 3, lg->tokens);
    store_bind_double(c->ins, 4, lg->st.loss);
    store_bind_double(c->ins, 5, lg->st.mse);
    store_bind_double(c->ins, 6, lg->st.l1);
    store_bind_double(c->ins, 7, lg->st.l0);
    store_bind_double(c->ins, 8, lg->st.fvu);
    store_bind_double(c->ins, 9, lg->dead_frac);
    store_bind_double(c->ins, 10, lg->lambda);
    store_bind_double(c->ins, 11, lg->lr);
    store_bind_double(c->ins, 12, lg->elapsed_s);
    if (store_step(c->ins, &e) < 0) ev_info("warning: training log not stored: %s", e.msg);
}

struct train_opts {
    long   d_sae, batch, log_every, ckpt_every, stop_after, collect_tokens;
    double l1, lr, warmup, decay, dead_window_d;
    const char *acts_dir, *hook;
};

/* Opens (collecting first when needed) the activations to train on. */
static int open_train_acts(struct model *m, const struct data_opts *d, const struct train_opts *t,
                           struct acts **a, char **cache_dir, struct ev_err *err) {
    struct acts_corpus c = {0};
    int                rc;
    *cache_dir = NULL;
    if (t->acts_dir) return acts_open(t->acts_dir, a, err);
    int64_t n = t->collect_tokens > 0 ? t->collect_tokens : d->tokens;
    if ((rc = load_corpus(m, d, n, &c, err))) return rc;
    *cache_dir = default_cache_dir(m, t->hook, &c, 1);
    if (!path_exists(*cache_dir)) {
        ev_info("collecting %lld activations at %s into %s", (long long)c.n_seq * (c.T - 1),
                t->hook, *cache_dir);
        if ((rc = write_cache(m, t->hook, &c, 1, *cache_dir, err))) goto out;
    } else {
        ev_info("reusing the activation cache %s", *cache_dir);
    }
    rc = acts_open(*cache_dir, a, err);
out:
    acts_corpus_release(&c);
    return rc;
}

/* Trains one SAE and saves it; shared by train-sae and sweep. */
static int train_one(struct store *db, int64_t run_id, struct model *m, struct acts *a,
                     const struct sae_train_params *p, const char *hook, const char *out_dir,
                     int quiet, struct sae_train_log *final, char hash[65], struct ev_err *err) {
    struct sae_config    base = sae_default_config(acts_d_in(a), p->d_sae);
    struct sae          *s = NULL;
    double               nf = 1;
    struct train_log_ctx lc = {db, NULL, run_id, quiet};
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
    if (db && (rc = store_prepare(db, "INSERT OR REPLACE INTO sae_train_log VALUES "
                                      "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)", &lc.ins, err)))
        goto out;
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
    store_finalize(lc.ins);
    sae_free(s);
    free(ck);
    free(extra);
    return rc;
}

static struct sae_train_params params_from(const struct train_opts *t, const struct data_opts *d,
                                           long d_sae, long tokens) {
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

#define TRAIN_OPTS(t)                                                                          \
    {"l1", OPT_DOUBLE, &(t).l1, "LAMBDA", "L1 coefficient (default 5)"},                       \
    {"lr", OPT_DOUBLE, &(t).lr, "LR", "Adam learning rate (default 1e-3)"},                    \
    {"batch", OPT_LONG, &(t).batch, "B", "tokens per step (default 1024)"},                    \
    {"warmup", OPT_DOUBLE, &(t).warmup, "F", "lambda warm-up, fraction of steps (0.05)"},      \
    {"decay", OPT_DOUBLE, &(t).decay, "F", "final lr decay, fraction of steps (0.2)"},         \
    {"dead-window", OPT_DOUBLE, &(t).dead_window_d, "N", "tokens without firing = dead"},     \
    {"log-every", OPT_LONG, &(t).log_every, "STEPS", "log period (default 100)"},              \
    {"ckpt-every", OPT_LONG, &(t).ckpt_every, "STEPS", "checkpoint period (default 200)"},     \
    {"collect-tokens", OPT_LONG, &(t).collect_tokens, "N",                                     \
     "corpus tokens to collect (default --tokens; training cycles over them)"},              \
    {"acts", OPT_STR, &(t).acts_dir, "DIR", "train from this activation cache"},               \
    {"stop-after", OPT_LONG, &(t).stop_after, "STEPS",                                         \
     "for tests: stop as if interrupted at this step (checkpoint kept)"}

static int check_train(const struct train_opts *t, struct ev_err *err) {
    int rc;
    if ((rc = args_check_double("--l1", t->l1, 0, 1e6, err)) ||
        (rc = args_check_double("--lr", t->lr, 1e-9, 1, err)) ||
        (rc = args_check_long("--batch", t->batch, 1, 1 << 20, err)) ||
        (rc = args_check_double("--warmup", t->warmup, 0, 1, err)) ||
        (rc = args_check_double("--decay", t->decay, 0, 1, err)) ||
        (rc = args_check_long("--log-every", t->log_every, 0, LONG_MAX, err)) ||
        (rc = args_check_long("--ckpt-every", t->ckpt_every, 0, LONG_MAX, err)))
        return rc;
    return EV_OK;
}

static char *train_config_json(const struct data_opts *d, const struct train_opts *t,
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

int cmd_train_sae(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "train-sae",
        "[--model M] --hook H (--corpus FILE | --generate | --acts DIR) --d-sae N --l1 LAMBDA "
        "--tokens N --out SAE_DIR [--seed S]",
        "Trains a standard (ReLU) SAE in C on the residual stream at the hook: inputs\n"
        "normalised to E||x|| = sqrt(d_in), Adam, lambda warm-up, decoder rows initialised\n"
        "from the encoder's transpose (docs/sae.md). Activations come from an activation\n"
        "cache (--acts) or are collected from the corpus first (into results/acts/, reused).\n"
        "Logs loss/MSE/L1/L0/dead fraction to the terminal and the database; checkpoints to\n"
        "SAE_DIR.ckpt, so rerunning an interrupted command resumes it. Writes the SAELens\n"
        "layout with the normalisation factor folded into the weights."};
    struct data_opts  d = {.tokens = 0, .ctx = 128, .seed = 0};
    struct train_opts t = {.d_sae = 0, .batch = 1024, .log_every = 100, .ckpt_every = 200,
                           .l1 = 5.0, .lr = 1e-3, .warmup = 0.05, .decay = 0.2};
    const char *out_dir = NULL;
    const struct opt opts[] = {
        DATA_OPTS(d),
        {"hook", OPT_STR, &t.hook, "H", "hook, e.g. blocks.2.hook_resid_post"},
        {"d-sae", OPT_LONG, &t.d_sae, "N", "dictionary size (latents)"},
        {"tokens", OPT_LONG, &d.tokens, "N", "training tokens"},
        {"out", OPT_STR, &out_dir, "SAE_DIR", "where to write the SAE"},
        TRAIN_OPTS(t),
        {0},
    };
    struct model        *m = NULL;
    struct acts         *a = NULL;
    struct store        *db = NULL;
    char                *cache = NULL, *cfg = NULL;
    int64_t              run_id = 0, model_id = 0, sae_id = 0;
    int                  n_pos = 0, resumed = 0, sk = 0, sn = 1;
    int                  rc = args_parse(&help, opts, argc, argv, &n_pos, err);
    if (rc) return rc;
    if (!t.hook || !out_dir || !t.d_sae)
        return ev_fail(err, EV_EUSAGE, "train-sae: --hook, --d-sae and --out are required");
    if (n_pos > 0) return ev_fail(err, EV_EUSAGE, "train-sae: unexpected argument '%s'", argv[1]);
    if (!t.acts_dir && (rc = check_data("train-sae", &d, 0, argv, err))) return rc;
    if (t.acts_dir && (d.corpus || d.generate))
        return ev_fail(err, EV_EUSAGE, "train-sae: --acts excludes --corpus and --generate");
    if ((rc = args_check_long("--tokens", d.tokens, 1, 1L << 40, err)) ||
        (rc = args_check_long("--d-sae", t.d_sae, 1, 1 << 26, err)) ||
        (rc = check_train(&t, err)) || (rc = args_parse_shard(d.shard, &sk, &sn, err)))
        return rc;
    if (sn > 1) return ev_fail(err, EV_EUSAGE, "train-sae: one SAE cannot be split (--shard)");
    if ((rc = open_model(d.model, &m, err))) goto out;
    struct model_hook h;
    if ((rc = model_hook_parse(m, t.hook, &h, err))) goto out;
    if ((rc = open_train_acts(m, &d, &t, &a, &cache, err))) goto out;
    if (acts_d_in(a) != model_config(m)->dim) {
        rc = ev_fail(err, EV_EFAIL, "%s: activations of width %d, but %s has width %d",
                     t.acts_dir ? t.acts_dir : cache, acts_d_in(a), t.hook, model_config(m)->dim);
        goto out;
    }
    if ((rc = store_open(cli->db_path, STORE_CREATE, &db, err))) goto out;
    if ((rc = put_model(db, m, &model_id, err))) goto out;
    char dl[32], tl[32];
    snprintf(dl, sizeof dl, "%ld", t.d_sae);
    snprintf(tl, sizeof tl, "%ld", d.tokens);
    cfg = train_config_json(&d, &t, out_dir, dl, tl, m, a);
    struct run_info ri = {.kind = "train-sae", .tag = d.tag, .config_json = cfg, .seed = d.seed,
                          .shard_k = 0, .shard_n = 1, .model_id = model_id};
    if ((rc = store_run_begin(db, &ri, &run_id, &resumed, err))) goto out;
    struct sae_train_params p = params_from(&t, &d, t.d_sae, d.tokens);
    struct sae_train_log    fin;
    char                    hash[65];
    rc = train_one(db, run_id, m, a, &p, t.hook, out_dir, cli->quiet, &fin, hash, err);
    if (rc == EV_OK) {
        char *sc = NULL;
        size_t n = 0;
        char  *cp = path_join(out_dir, "cfg.json");
        if (file_read_all(cp, &sc, &n, err) == EV_OK)
            rc = store_put_sae(db, hash, out_dir, sc, model_id, &sae_id, err);
        else rc = EV_EFAIL;
        free(sc);
        free(cp);
    }
    store_run_finish(db, run_id, rc == EV_OK ? "done" : rc == EV_EINTR ? "interrupted" : "failed",
                     rc == EV_OK ? NULL : err->msg, err);
    if (rc == EV_OK)
        printf("trained %s: d_sae %ld, %lld tokens, mse %.4f, L0 %.2f, fvu %.4f, dead %.3f "
               "(%.1fs)\nsae_hash %s\n",
               out_dir, t.d_sae, (long long)fin.tokens, fin.st.mse, fin.st.l0, fin.st.fvu,
               fin.dead_frac, fin.elapsed_s, hash);
out:
    store_close(db);
    acts_close(a);
    model_free(m);
    free(cache);
    free(cfg);
    return rc;
}

// ---------------------------------------------------------------- sae-metrics

/* Runs every sequence clean (reading x at the hook), spliced (x -> x_hat) and zero-ablated. */
static int sae_measure(struct model *m, const struct sae *s, struct model_hook h,
                const struct acts_corpus *c, struct sae_metrics *out, struct ev_err *err) {
    const int T = c->T, D = s->cfg.d_in, S = s->cfg.d_sae, V = model_config(m)->vocab_size;
    struct model_state    *st = NULL;
    struct sae_metrics_acc acc;
    float *x = xmalloc((size_t)T * D * sizeof(float)), *xh = xmalloc((size_t)T * D * sizeof(float));
    float *zero = xcalloc((size_t)T * D, sizeof(float)), *f = xmalloc((size_t)T * S * sizeof(float));
    float *lc = xmalloc((size_t)T * V * sizeof(float)), *ls = xmalloc((size_t)T * V * sizeof(float));
    float *lz = xmalloc((size_t)T * V * sizeof(float));
    struct progress pg;
    int rc = model_state_new(m, T, 0, &st, err);
    sae_metrics_init(&acc, D, S);
    if (rc) goto out;
    progress_init(&pg, "sae-metrics", c->n_seq);
    for (int q = 0; q < c->n_seq; q++) {
        if (ev_interrupted()) {
            rc = ev_fail(err, EV_EINTR, "interrupted");
            goto out;
        }
        const int *tok = c->tokens + (size_t)q * T;
        struct model_edit e = {.hook = h, .read = x};
        if ((rc = model_forward(st, tok, 0, T, &e, 1, err))) goto out;
        memcpy(lc, model_state_logits(st), (size_t)T * V * sizeof(float));
        sae_encode(s, f, x, T);
        sae_decode(s, xh, f, T);
        struct model_edit es = {.hook = h, .replace = xh};
        if ((rc = model_forward(st, tok, 0, T, &es, 1, err))) goto out;
        memcpy(ls, model_state_logits(st), (size_t)T * V * sizeof(float));
        struct model_edit ez = {.hook = h, .replace = zero};
        if ((rc = model_forward(st, tok, 0, T, &ez, 1, err))) goto out;
        memcpy(lz, model_state_logits(st), (size_t)T * V * sizeof(float));
        /* reconstruction over the non-BOS positions (as trained); CE over all */
        sae_metrics_add_recon(&acc, x + D, xh + D, f + S, T - 1);
        sae_metrics_add_logits(&acc, lc, ls, lz, tok, T, V);
        progress_tick(&pg, 1);
    }
    progress_finish(&pg);
    sae_metrics_finish(&acc, out);
    rc = EV_OK;
out:
    sae_metrics_release(&acc);
    model_state_free(st);
    free(x); free(xh); free(zero); free(f); free(lc); free(ls); free(lz);
    return rc;
}

int cmd_sae_metrics(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "sae-metrics", "[--model M] [--sae SAE_DIR] (--corpus FILE | --generate) [--tokens N]",
        "Measures an SAE on a corpus: L0, L1, MSE, explained variance (global-mean definition;\n"
        "FVU = 1 - it; the legacy per-token one too), l2_ratio, relative reconstruction bias,\n"
        "dead fraction and the log10 firing-density histogram, next-token CE clean / with the\n"
        "SAE spliced in / zero-ablated, CE-loss-recovered and KL. Stored in the database with\n"
        "the SAE's content hash. --json prints the record as JSON."};
    struct data_opts d = {.tokens = 16384, .ctx = 128, .seed = 1};
    const char *sae_dir = NULL;
    int         as_json = 0;
    const struct opt opts[] = {
        DATA_OPTS(d),
        {"sae", OPT_STR, &sae_dir, "SAE_DIR", "SAE folder (default evals/saes/stories260K-L2)"},
        {"tokens", OPT_LONG, &d.tokens, "N", "corpus tokens (default 16384)"},
        {"json", OPT_FLAG, &as_json, NULL, "print JSON"},
        {0},
    };
    struct model      *m = NULL;
    struct sae        *s = NULL;
    struct store      *db = NULL;
    struct acts_corpus c = {0};
    char              *cfg = NULL, *hist = NULL, *sdir = NULL;
    int64_t            run_id = 0, model_id = 0, sae_id = 0;
    int                n_pos = 0, resumed = 0, sk = 0, sn = 1;
    int                rc = args_parse(&help, opts, argc, argv, &n_pos, err);
    if (rc) return rc;
    if ((rc = check_data("sae-metrics", &d, n_pos, argv, err))) return rc;
    if ((rc = args_parse_shard(d.shard, &sk, &sn, err))) return rc;
    sdir = xstrdup(sae_dir ? sae_dir : "evals/saes/stories260K-L2");
    if ((rc = open_model(d.model, &m, err))) goto out;
    if ((rc = sae_load(sdir, &s, err))) goto out;
    struct model_hook h;
    if ((rc = check_fit(m, s, sdir, &h, err))) goto out;
    char hash[65];
    if ((rc = sae_hash(sdir, hash, err))) goto out;
    if ((rc = load_corpus(m, &d, d.tokens, &c, err))) goto out;
    shard_corpus(&c, sk, sn);
    if ((rc = store_open(cli->db_path, STORE_CREATE, &db, err))) goto out;
    if ((rc = put_model(db, m, &model_id, err))) goto out;
    if ((rc = store_put_sae(db, hash, sdir, s->cfg_json ? s->cfg_json : "{}", model_id, &sae_id,
                            err)))
        goto out;
    cfg = xasprintf("{\"sae_hash\":\"%s\",\"model_hash\":\"%s\",\"corpus_hash\":\"%s\","
                    "\"tokens\":%ld,\"ctx\":%ld}",
                    hash, model_hash(m), c.hash, d.tokens, d.ctx);
    struct run_info ri = {.kind = "sae-metrics", .tag = d.tag, .config_json = cfg,
                          .seed = d.seed, .shard_k = sk, .shard_n = sn, .model_id = model_id,
                          .sae_id = sae_id};
    if ((rc = store_run_begin(db, &ri, &run_id, &resumed, err))) goto out;
    struct sae_metrics r;
    rc = sae_measure(m, s, h, &c, &r, err);
    if (rc == EV_OK) {
        hist = sae_metrics_hist_json(&r);
        struct store_stmt *ins = NULL;
        rc = store_prepare(db,
                           "INSERT INTO sae_metrics (run_id, sae_id, sae_hash, n_tokens, l0, l1, "
                           "mse, explained_variance, explained_variance_legacy, fvu, l2_ratio, "
                           "rel_recon_bias, dead_frac, density_hist, ce_clean, ce_sae, ce_zero, "
                           "ce_loss_score, kl_sae, kl_zero, kl_div_score, created_ms) VALUES "
                           "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,"
                           "?20,?21,?22)", &ins, err);
        if (rc == EV_OK) {
            store_bind_int(ins, 1, run_id);
            store_bind_int(ins, 2, sae_id);
            store_bind_text(ins, 3, hash);
            store_bind_int(ins, 4, r.n_tokens);
            const double v[] = {r.l0, r.l1, r.mse, r.explained_variance,
                                r.explained_variance_legacy, r.fvu, r.l2_ratio, r.rel_recon_bias,
                                r.dead_frac};
            for (int i = 0; i < 9; i++) store_bind_double(ins, 5 + i, v[i]);
            store_bind_text(ins, 14, hist);
            const double w[] = {r.ce_clean, r.ce_sae, r.ce_zero, r.ce_loss_score, r.kl_sae,
                                r.kl_zero, r.kl_div_score};
            for (int i = 0; i < 7; i++) store_bind_double(ins, 15 + i, w[i]);
            store_bind_int(ins, 22, now_unix_ms());
            if (store_step(ins, err) < 0) rc = EV_EFAIL;
            store_finalize(ins);
        }
    }
    store_run_finish(db, run_id, rc == EV_OK ? "done" : rc == EV_EINTR ? "interrupted" : "failed",
                     rc == EV_OK ? NULL : err->msg, err);
    if (rc) goto out;
    if (as_json) {
        printf("{\"sae_hash\": \"%s\", \"n_tokens\": %lld, \"l0\": %.6g, \"l1\": %.6g, "
               "\"mse\": %.6g, \"explained_variance\": %.6g, \"explained_variance_legacy\": %.6g, "
               "\"fvu\": %.6g, \"l2_ratio\": %.6g, \"relative_reconstruction_bias\": %.6g, "
               "\"dead_frac\": %.6g, \"density_hist\": %s, \"ce_clean\": %.6g, \"ce_sae\": %.6g, "
               "\"ce_zero\": %.6g, \"ce_loss_score\": %.6g, \"kl_sae\": %.6g, \"kl_zero\": %.6g, "
               "\"kl_div_score\": %.6g}\n",
               hash, (long long)r.n_tokens, r.l0, r.l1, r.mse, r.explained_variance,
               r.explained_variance_legacy, r.fvu, r.l2_ratio, r.rel_recon_bias, r.dead_frac, hist,
               r.ce_clean, r.ce_sae, r.ce_zero, r.ce_loss_score, r.kl_sae, r.kl_zero,
               r.kl_div_score);
    } else {
        printf("sae           %s (%s, d_in %d, d_sae %d)\n", sdir,
               sae_arch_name(s->cfg.arch), s->cfg.d_in, s->cfg.d_sae);
        printf("sae_hash      %s\n", hash);
        printf("tokens        %lld reconstructed, %lld predicted\n", (long long)r.n_tokens,
               (long long)r.n_positions);
        printf("l0            %.3f\nl1            %.4f\nmse           %.6g\n", r.l0, r.l1, r.mse);
        printf("fvu           %.4f   (1 - explained variance, global mean)\n", r.fvu);
        printf("explained_var %.4f   (legacy per-token: %.4f)\n", r.explained_variance,
               r.explained_variance_legacy);
        printf("l2_ratio      %.4f\nrel_bias      %.4f\n", r.l2_ratio, r.rel_recon_bias);
        printf("dead_frac     %.4f   (%lld of %d latents fired on no token)\n", r.dead_frac,
               (long long)r.n_dead, s->cfg.d_sae);
        printf("ce_clean      %.4f\nce_sae        %.4f\nce_zero       %.4f\n", r.ce_clean,
               r.ce_sae, r.ce_zero);
        printf("ce_recovered  %.4f   ((ce_zero - ce_sae) / (ce_zero - ce_clean))\n",
               r.ce_loss_score);
        printf("kl_sae        %.5f\nkl_zero       %.5f\nkl_div_score  %.4f\n", r.kl_sae,
               r.kl_zero, r.kl_div_score);
        printf("density       log10 bins from -8 by 0.5:");
        for (int b = 0; b < SAE_DENSITY_BINS; b++) printf(" %lld", (long long)r.density_hist[b]);
        printf("\n");
    }
out:
    store_close(db);
    acts_corpus_release(&c);
    sae_free(s);
    model_free(m);
    free(cfg);
    free(hist);
    free(sdir);
    return rc;
}
