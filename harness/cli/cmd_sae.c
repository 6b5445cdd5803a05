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

#include "sae/acts.h"
#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/common.h" /* evals/: eval_resolve_sae_path(), eval_features_load() */
#include "base/hash.h"
#include "base/json.h"
#include "model/model.h"
#include "base/progress.h"
#include "sae/sae.h"
#include "sae/sae_analysis.h"
#include "store/index.h"
#include "store/saestats.h"
#include "sae/sae_metrics.h"
#include "sae/sae_train.h"
#include "evals/saebench_export.h" /* evals/: SAEBench core JSON (--out) */
#include "evals/index.h"            /* evals/: the index and its analyses */
#include "evals/saemeasure.h"       /* evals/: sae-metrics' passes and output */
#include "evals/saetrain.h"         /* evals/: activation caches, training one SAE */
#include "store/store.h"

// ---------------------------------------------------------------- shared helpers

/* What every data-reading command shares: the corpus source, and the common options
 * (model, seed, tag, shard; the SAE for those that read one). */
struct data_opts {
    const char        *corpus, *text_field;
    int                generate;
    long               tokens, ctx;
    struct common_opts co;
};

static void data_opts_init(struct data_opts *d, const struct cli *cli, unsigned which,
                           long tokens, long seed) {
    memset(d, 0, sizeof *d);
    d->tokens = tokens;
    d->ctx = -1; /* not given: EVAL_INDEX_CTX, clamped to the model's context (fit_ctx) */
    common_opts_init(&d->co, cli, which);
    common_opts_default_seed(&d->co, seed);
}

#define DATA_OPTS(d)                                                                           \
    {"corpus", OPT_STR, &(d).corpus, "PATH",                                                    \
     "corpus: plain text, JSON Lines (.jsonl/.json: a \"text\" field per line) or a folder"},     \
    {"text-field", OPT_STR, &(d).text_field, "KEY",                                             \
     "the JSON Lines field holding the text (default text)"},                                   \
    {"generate", OPT_FLAG, &(d).generate, NULL,                                                 \
     "use stories sampled from the model itself (temperature 1, seeded) as the corpus"},        \
    {"ctx", OPT_LONG, &(d).ctx, "T", "tokens per sequence, BOS first (default 128, or the model's context when shorter)"}, \
    COMMON_OPTIONS((d).co)

static int check_data(const struct cmd_help *help, const struct data_opts *d, int n_pos,
                      char **argv, struct ev_err *err) {
    const char *cmd = help->name;
    int         rc;
    if ((rc = args_no_positional(help, n_pos, argv, err))) return rc;
    if (!d->corpus && !d->generate)
        return ev_fail(err, EV_EUSAGE, "%s: give --corpus FILE or --generate", cmd);
    if (d->corpus && d->generate)
        return ev_fail(err, EV_EUSAGE, "%s: --corpus and --generate exclude each other", cmd);
    if (d->text_field && !d->corpus)
        return ev_fail(err, EV_EUSAGE, "%s: --text-field needs --corpus", cmd);
    if ((rc = args_check_long("--tokens", d->tokens, 1, 1L << 34, err)) ||
        (d->ctx != -1 && (rc = args_check_long("--ctx", d->ctx, 2, 1 << 16, err))) ||
        (rc = args_check_long("--seed", d->co.seed, 0, LONG_MAX, err)))
        return rc;
    return EV_OK;
}

/* --ctx for the plan, before the model is loaded. */
static int plan_ctx(const struct data_opts *d) { return d->ctx > 0 ? (int)d->ctx : EVAL_INDEX_CTX; }

/* --ctx once the model is loaded: as given when it fits the model, else the default clamped to
 * the model's context (with a note). */
static int fit_ctx(const struct model *m, struct data_opts *d, struct ev_err *err) {
    int T, rc = eval_index_ctx(m, d->ctx, &T, err);
    if (rc == EV_OK) d->ctx = T;
    return rc;
}

static int load_corpus(struct model *m, const struct data_opts *d, int64_t n_tokens,
                       struct acts_corpus *c, struct ev_err *err) {
    int T = (int)d->ctx;
    if (d->generate) {
        ev_info("sampling %lld tokens of stories from the model (seed %ld)", (long long)n_tokens,
                d->co.seed);
        return acts_corpus_generate(m, n_tokens, T, (uint64_t)d->co.seed, c, err);
    }
    return acts_corpus_from_file(m, d->corpus, d->text_field, n_tokens, T, c, err);
}

static int put_model(struct store *db, struct model *m, int64_t *id, struct ev_err *err) {
    char *cfg = model_config_json(m);
    int   rc = store_put_model(db, model_hash(m), model_path(m), cfg, id, err);
    free(cfg);
    return rc;
}

/* Checks the dictionary against the model: hooks known, widths equal. *h is the hook read,
 * *h_out the one written (the same for an SAE). */
static int check_fit(struct model *m, const struct sae *s, const char *sae_dir,
                     struct model_hook *h, struct model_hook *h_out, struct ev_err *err) {
    return sae_hooks(m, s, sae_dir, h, h_out, err);
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
    struct model_hook  h, h_out;
    int64_t            model_id, sae_id;
};

/* Loads the model (fitting --ctx to it) and the SAE of d, and checks that they fit. */
static int sae_job_load(struct sae_job *j, struct data_opts *d, struct ev_err *err) {
    int rc;
    memset(j, 0, sizeof *j);
    j->sdir = eval_resolve_sae_path(d->co.sae);
    if ((rc = common_opts_load_model(&d->co, 0, &j->m, err)) || (rc = fit_ctx(j->m, d, err)) ||
        (rc = sae_load(j->sdir, &j->s, err)) ||
        (rc = check_fit(j->m, j->s, j->sdir, &j->h, &j->h_out, err)))
        return rc;
    return EV_OK;
}

/* Hashes the SAE, reads the corpus (shard k of n) and records model and SAE in the database. */
static int sae_job_store(struct sae_job *j, struct data_opts *d, int k, int n,
                         struct ev_err *err) {
    int rc;
    if ((rc = sae_hash(j->sdir, j->hash, err)) ||
        (rc = load_corpus(j->m, d, d->tokens, &j->c, err)))
        return rc;
    saetrain_shard_corpus(&j->c, k, n);
    if ((rc = store_open(d->co.db_path, STORE_CREATE, &j->db, err)) ||
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

int cmd_collect(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "collect", "--hook H (--corpus FILE | --generate) --tokens N --out DIR",
        "Runs the corpus through the model and writes the residual stream at the hook to an\n"
        "activation cache (docs/sae.md: header.json + raw float32 shards + token ids). The BOS\n"
        "position is left out unless --keep-bos. With --shard K/N only every N-th sequence\n"
        "(from the K-th) is collected."};
    struct data_opts d;
    data_opts_init(&d, cli, COMMON_MODEL | COMMON_SEED | COMMON_TAG | COMMON_SHARD, 0, 0);
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
    if (rc) return rc;
    if (!hook || !out_dir)
        return ev_fail(err, EV_EUSAGE, "collect: --hook and --out are required");
    if ((rc = check_data(&help, &d, n_pos, argv, err))) return rc;
    if ((rc = args_parse_shard(d.co.shard, &sk, &sn, err))) return rc;
    struct plan_job pj = {.command = "collect", .ctx = plan_ctx(&d), .tokens = d.tokens,
                          .cache_hook = hook, .disk_dir = out_dir, .lower = "--tokens",
                          .lower_mem = "--ctx or --tokens"};
    if ((rc = common_opts_plan(&d.co, &pj, err))) return rc == COMMON_PLAN_SHOWN ? EV_OK : rc;
    if ((rc = common_opts_load_model(&d.co, 0, &m, err)) || (rc = fit_ctx(m, &d, err))) goto out;
    struct model_hook h;
    if ((rc = model_hook_parse(m, hook, &h, err))) goto out;
    if ((rc = load_corpus(m, &d, d.tokens, &c, err))) goto out;
    saetrain_shard_corpus(&c, sk, sn);
    if ((rc = saetrain_write_cache(m, hook, &c, !keep_bos, out_dir, err))) goto out;
    printf("collected %lld activations of width %d at %s into %s\n",
           (long long)c.n_seq * (c.T - !keep_bos), model_config(m)->dim, hook, out_dir);
out:
    acts_corpus_release(&c);
    model_free(m);
    return rc;
}

// ---------------------------------------------------------------- train-sae

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
    if (d->generate && d->ctx <= model_config(m)->seq_len) {
        /* a sampled corpus is known by its hash before it is sampled: reuse without sampling */
        acts_corpus_generate_hash(m, n, (int)d->ctx, (uint64_t)d->co.seed, c.hash);
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
    p.seed = (uint64_t)d->co.seed;
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

/* What train-sae and sweep open: the model (--ctx fitted to it) and the activations to train
 * on at the hook, collected first when needed (cache: the folder, NULL with --acts). */
struct train_job {
    struct model *m;
    struct acts  *a;
    char         *cache;
};

/* name_acts: a width mismatch names the activations' folder. */
static int train_job_open(struct train_job *j, struct data_opts *d, const struct train_opts *t,
                          int name_acts, struct ev_err *err) {
    struct model_hook h;
    int               rc;
    memset(j, 0, sizeof *j);
    if ((rc = common_opts_load_model(&d->co, 0, &j->m, err)) || (rc = fit_ctx(j->m, d, err)) ||
        (rc = model_hook_parse(j->m, t->hook, &h, err)) ||
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

static void train_job_release(struct train_job *j) {
    acts_close(j->a);
    model_free(j->m);
    free(j->cache);
}

/* train-sae once its options are checked: the model, the activations, the run, the SAE. */
static int train_sae_run(struct data_opts *dd, const struct train_opts *tt, const char *out_dir,
                         int quiet, struct ev_err *err) {
    struct data_opts        d = *dd;
    const struct train_opts t = *tt;
    struct train_job        j;
    struct store           *db = NULL;
    char                   *cfg = NULL;
    int64_t                 run_id = 0, model_id = 0, sae_id = 0;
    int                     resumed = 0, rc;
    if ((rc = train_job_open(&j, &d, &t, 1, err))) goto out;
    struct model *m = j.m;
    struct acts  *a = j.a;
    if ((rc = store_open(d.co.db_path, STORE_CREATE, &db, err))) goto out;
    if ((rc = put_model(db, m, &model_id, err))) goto out;
    char dl[32], tl[32];
    snprintf(dl, sizeof dl, "%ld", t.d_sae);
    snprintf(tl, sizeof tl, "%ld", d.tokens);
    cfg = train_config_json(&d, &t, out_dir, dl, tl, m, a);
    struct run_info ri = {.kind = "train-sae", .tag = d.co.tag, .retag = d.co.retag,
                          .config_json = cfg, .seed = d.co.seed,
                          .shard_k = 0, .shard_n = 1, .model_id = model_id};
    if ((rc = store_run_begin(db, &ri, &run_id, &resumed, err))) goto out;
    struct sae_train_params p = params_from(&t, &d, t.d_sae, d.tokens);
    struct sae_train_log    fin;
    char                    hash[65];
    rc = saetrain_one(db, run_id, m, a, &p, t.hook, out_dir, quiet, &fin, hash, err);
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
    rc = store_run_end(db, run_id, rc, err);
    if (rc == EV_OK)
        printf("trained %s: d_sae %ld, %lld tokens, mse %.4f, L0 %.2f, fvu %.4f, dead %.3f "
               "(%.1fs)\nsae_hash %s\n",
               out_dir, t.d_sae, (long long)fin.tokens, fin.st.mse, fin.st.l0, fin.st.fvu,
               fin.dead_frac, fin.elapsed_s, hash);
out:
    store_close(db);
    train_job_release(&j);
    free(cfg);
    return rc;
}

int cmd_train_sae(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "train-sae",
        "--hook H (--corpus FILE | --generate | --acts DIR) --d-sae N --tokens N --out SAE_DIR",
        "Trains a standard (ReLU) SAE in C on the residual stream at the hook: inputs\n"
        "normalised to E||x|| = sqrt(d_in), Adam, lambda warm-up, decoder rows initialised\n"
        "from the encoder's transpose (docs/sae.md). Activations come from an activation\n"
        "cache (--acts) or are collected from the corpus first (into results/acts/, reused).\n"
        "Logs loss/MSE/L1/L0/dead fraction to the terminal and the database; checkpoints to\n"
        "SAE_DIR.ckpt, so rerunning an interrupted command resumes it. Writes the SAELens\n"
        "layout with the normalisation factor folded into the weights."};
    struct data_opts  d;
    data_opts_init(&d, cli, COMMON_MODEL | COMMON_SEED | COMMON_TAG | COMMON_SHARD, 0, 0);
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
    int n_pos = 0, sk = 0, sn = 1;
    int rc = args_parse(&help, opts, argc, argv, &n_pos, err);
    if (rc) return rc;
    if (!t.hook || !out_dir || !t.d_sae)
        return ev_fail(err, EV_EUSAGE, "train-sae: --hook, --d-sae and --out are required");
    if (n_pos > 0) return args_no_positional(&help, n_pos, argv, err);
    if (!t.acts_dir && (rc = check_data(&help, &d, 0, argv, err))) return rc;
    if (t.acts_dir && (d.corpus || d.generate))
        return ev_fail(err, EV_EUSAGE, "train-sae: --acts excludes --corpus and --generate");
    if ((rc = args_check_long("--tokens", d.tokens, 1, 1L << 40, err)) ||
        (rc = args_check_long("--d-sae", t.d_sae, 1, 1 << 26, err)) ||
        (rc = check_train(&t, err)) || (rc = args_parse_shard(d.co.shard, &sk, &sn, err)))
        return rc;
    if (sn > 1) return ev_fail(err, EV_EUSAGE, "train-sae: one SAE cannot be split (--shard)");
    struct plan_job pj = {.command = "train-sae", .ctx = plan_ctx(&d), .tokens = d.tokens,
                          .d_sae = (int)t.d_sae, .sae_train = 1, .batch = (int)t.batch,
                          .cache_hook = t.acts_dir ? NULL : t.hook, .disk_dir = "results",
                          .lower = "--tokens or --acts DIR",
                          .lower_mem = "--d-sae, --batch or --ctx"};
    if ((rc = common_opts_plan(&d.co, &pj, err))) return rc == COMMON_PLAN_SHOWN ? EV_OK : rc;
    return train_sae_run(&d, &t, out_dir, cli->quiet, err);
}

// ---------------------------------------------------------------- sae-metrics

int cmd_sae_metrics(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "sae-metrics", "(--corpus FILE | --generate)",
        "Measures an SAE on a corpus: L0, L1, MSE, explained variance (global-mean definition;\n"
        "FVU = 1 - it; the legacy per-token one too), l2_ratio, relative reconstruction bias,\n"
        "dead fraction and the log10 firing-density histogram, next-token CE clean / with the\n"
        "SAE spliced in / zero-ablated, CE-loss-recovered and KL. Stored in the database with\n"
        "the SAE's content hash. --json prints the record as JSON; --out writes SAEBench's\n"
        "core JSON (docs/schemas/saebench_core.schema.json)."};
    struct data_opts d;
    data_opts_init(&d, cli, COMMON_BATCH | COMMON_JSON, 16384, 1);
    const char *out_json = NULL;
    const struct opt opts[] = {
        DATA_OPTS(d),
        {"tokens", OPT_LONG, &d.tokens, "N", "corpus tokens (default 16384)"},
        {"out", OPT_STR, &out_json, "FILE.json", "write SAEBench's core JSON here"},
        {0},
    };
    char   *cfg = NULL, *hist = NULL;
    int64_t run_id = 0;
    int     n_pos = 0, resumed = 0, sk = 0, sn = 1;
    int     rc = args_parse(&help, opts, argc, argv, &n_pos, err);
    if (rc) return rc;
    if ((rc = check_data(&help, &d, n_pos, argv, err))) return rc;
    if ((rc = args_parse_shard(d.co.shard, &sk, &sn, err))) return rc;
    /* clean, spliced and zero-ablated passes, each keeping its logits */
    struct plan_job pj = {.command = "sae-metrics", .ctx = plan_ctx(&d), .tokens = d.tokens,
                          .passes = 3, .logit_rows = 3 * plan_ctx(&d), .lower_mem = "--ctx"};
    if ((rc = common_opts_plan(&d.co, &pj, err))) return rc == COMMON_PLAN_SHOWN ? EV_OK : rc;
    struct sae_job j;
    struct sae_metrics r;
    if ((rc = sae_job_load(&j, &d, err)) || (rc = sae_job_store(&j, &d, sk, sn, err))) goto out;
    cfg = xasprintf("{\"sae_hash\":\"%s\",\"model_hash\":\"%s\",\"corpus_hash\":\"%s\","
                    "\"tokens\":%ld,\"ctx\":%ld}",
                    j.hash, model_hash(j.m), j.c.hash, d.tokens, d.ctx);
    struct run_info ri = {.kind = "sae-metrics", .tag = d.co.tag, .retag = d.co.retag,
                          .config_json = cfg, .seed = d.co.seed, .shard_k = sk, .shard_n = sn,
                          .model_id = j.model_id, .sae_id = j.sae_id};
    if ((rc = store_run_begin(j.db, &ri, &run_id, &resumed, err))) goto out;
    rc = saemeasure_run(j.m, j.s, j.h, j.h_out, &j.c, &r, err);
    if (rc == EV_OK) {
        hist = sae_metrics_hist_json(&r);
        rc = saestats_metrics_put(j.db, run_id, j.sae_id, j.hash, &r, hist, err);
    }
    if ((rc = store_run_end(j.db, run_id, rc, err))) goto out;
    if (out_json) {
        struct saebench_core_info bi = {j.hash, j.sdir, j.s->cfg_json, d.co.model,
                                        j.s->cfg.hook_name, d.corpus ? d.corpus : "generate",
                                        j.c.hash, j.s->cfg.d_in, j.s->cfg.d_sae, (int)d.ctx,
                                        d.co.seed};
        if ((rc = saebench_write_core(out_json, &r, &bi, err))) goto out;
    }
    saemeasure_print(d.co.json, j.sdir, j.s, j.hash, &r, hist);
out:
    sae_job_release(&j);
    free(cfg);
    free(hist);
    return rc;
}

// ---------------------------------------------------------------- index

/* index's own options. */
struct index_opts {
    const char *features;
    long        top_k, bins, per_bin, nonact, window, n_nb, n_lg, n_neur, neur_tok;
};

/* Checks index's options into p (with the shard and seed of d). */
static int index_check(const struct index_opts *x, const struct data_opts *d,
                       struct sae_index_params *p, struct ev_err *err) {
    int rc;
    if ((rc = args_check_long("--top-k", x->top_k, 0, 10000, err)) ||
        (rc = args_check_long("--bins", x->bins, 1, 1000, err)) ||
        (rc = args_check_long("--per-bin", x->per_bin, 0, 10000, err)) ||
        (rc = args_check_long("--nonact", x->nonact, 0, 10000, err)) ||
        (rc = args_check_long("--window", x->window, 0, 4096, err)) ||
        (rc = args_check_long("--neighbors", x->n_nb, 0, 1000, err)) ||
        (rc = args_check_long("--logits", x->n_lg, 0, 1000, err)) ||
        (rc = args_check_long("--neurons", x->n_neur, 0, 1 << 20, err)) ||
        (rc = args_check_long("--neuron-tokens", x->neur_tok, 16, 1 << 24, err)) ||
        (rc = args_parse_shard(d->co.shard, &p->shard_k, &p->shard_n, err)))
        return rc;
    p->top_k = (int)x->top_k;
    p->bins = (int)x->bins;
    p->per_bin = (int)x->per_bin;
    p->n_nonact = (int)x->nonact;
    p->window = (int)x->window;
    p->seed = (uint64_t)d->co.seed;
    return EV_OK;
}

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

/* index once its options are checked: the model, the SAE, the corpus, the build. */
static int index_run(struct data_opts *d, const struct index_opts *x,
                     const struct sae_index_params *p, struct ev_err *err) {
    struct eval_features      ff = {0};
    struct sae_job            j = {0};
    struct eval_index_opts    o = eval_index_default_opts();
    struct eval_index_summary sum;
    int                       rc;
    o.p = *p;
    if (x->features && (rc = eval_features_load(x->features, 0, &ff, err))) goto out;
    if ((rc = sae_job_load(&j, d, err))) goto out;
    /* direct logit effects: decoders writing the residual stream's basis, or hook_z via W_O */
    o.n_logits = sae_hook_has_logits(j.m, &j.h_out) ? (int)x->n_lg : 0;
    for (int i = 0; i < ff.n; i++)
        if (ff.idx[i] >= j.s->cfg.d_sae) {
            rc = ev_fail(err, EV_EFAIL, "%s: feature id %d out of range: %s has %d latents "
                                        "(0..%d)", x->features, ff.idx[i], j.sdir,
                         j.s->cfg.d_sae, j.s->cfg.d_sae - 1);
            goto out;
        }
    o.p.features = ff.idx; /* borrowed from ff */
    o.p.n_features = ff.n;
    if ((rc = sae_job_store(&j, d, 0, 1, err))) goto out;
    o.tokens = d->tokens;
    o.features_path = x->features;
    o.tag = d->co.tag;
    o.retag = d->co.retag;
    o.n_neighbors = (int)x->n_nb;
    o.n_neurons = (int)x->n_neur;
    o.neuron_tokens = x->neur_tok;
    if ((rc = eval_index_build(j.db, j.m, j.s, j.hash, j.model_id, j.sae_id, &j.c, &o, &sum,
                               err)))
        goto out;
    index_print(&j, &sum);
out:
    sae_job_release(&j);
    eval_features_release(&ff);
    return rc;
}

int cmd_index(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "index", "(--corpus FILE | --generate) --tokens N",
        "Runs the corpus once and stores, per feature, firing count/density, max activation,\n"
        "quantiles, the top-k activating contexts, samples from each activation interval\n"
        "((0, max] split into --bins bins), and non-activating contexts, each as token ids, a\n"
        "window around the centre token and per-token activations (table examples); plus\n"
        "decoder-cosine neighbours and logit effects. Resumable; a rerun with the same inputs\n"
        "reuses what is stored. --features FILE (id<TAB>description lines) restricts it."};
    struct data_opts d;
    data_opts_init(&d, cli, COMMON_BATCH, 32768, 0);
    struct sae_index_params p = sae_index_default_params();
    struct index_opts x = {NULL, p.top_k, p.bins, p.per_bin, p.n_nonact, p.window, 10, 10, 64,
                           8192};
    const struct opt opts[] = {
        DATA_OPTS(d),
        {"tokens", OPT_LONG, &d.tokens, "N", "corpus tokens (default 32768)"},
        {"features", OPT_STR, &x.features, "FILE", "only these features (id<TAB>description)"},
        {"top-k", OPT_LONG, &x.top_k, "K", "top activating contexts per feature (default 20)"},
        {"bins", OPT_LONG, &x.bins, "K", "activation intervals (default 10)"},
        {"per-bin", OPT_LONG, &x.per_bin, "N", "samples per interval (default 5)"},
        {"nonact", OPT_LONG, &x.nonact, "N", "non-activating contexts per feature (default 20)"},
        {"window", OPT_LONG, &x.window, "W", "tokens each side of the centre (default 10)"},
        {"neighbors", OPT_LONG, &x.n_nb, "N", "decoder-cosine neighbours stored (default 10)"},
        {"logits", OPT_LONG, &x.n_lg, "N", "top/bottom logit effects stored (default 10)"},
        {"neurons", OPT_LONG, &x.n_neur, "N",
         "features (sampled) compared with the layer's MLP neurons (default 64; 0: none)"},
        {"neuron-tokens", OPT_LONG, &x.neur_tok, "N", "tokens for that comparison (default 8192)"},
        {0},
    };
    int n_pos = 0;
    int rc = args_parse(&help, opts, argc, argv, &n_pos, err);
    if (rc) return rc;
    if ((rc = check_data(&help, &d, n_pos, argv, err)) || (rc = index_check(&x, &d, &p, err)))
        return rc;
    struct plan_job pj = {.command = "index", .ctx = plan_ctx(&d), .tokens = d.tokens,
                          .index_rows = (int)(x.top_k + x.bins * x.per_bin + x.nonact),
                          .index_window = (int)x.window, .disk_dir = d.co.db_path,
                          .lower = "--tokens, --top-k, --per-bin or --window",
                          .lower_mem = "--ctx or --tokens"};
    if ((rc = common_opts_plan(&d.co, &pj, err))) return rc == COMMON_PLAN_SHOWN ? EV_OK : rc;
    return index_run(&d, &x, &p, err);
}

// ---------------------------------------------------------------- sweep

/* Parses "a,b,c" into longs in [lo, hi]. */
static int parse_list(const char *flag, const char *s, long lo, long hi, long **out, int *n,
                      struct ev_err *err) {
    char *dup = xstrdup(s), *save = dup;
    int   cap = 0;
    *out = NULL;
    *n = 0;
    for (char *p = dup; p;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        long v;
        if (parse_long(p, &v) != 0 || v < lo || v > hi) {
            int rc = ev_fail(err, EV_EUSAGE, "%s: '%s' is not an integer in %ld..%ld (expected "
                                             "a comma-separated list)", flag, p, lo, hi);
            free(save);
            free(*out);
            *out = NULL;
            *n = 0;
            return rc;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *out = xrealloc(*out, (size_t)cap * sizeof(long));
        }
        (*out)[(*n)++] = v;
        p = comma ? comma + 1 : NULL;
    }
    free(save);
    return EV_OK;
}

/* The grid of a sweep: dictionary sizes ds[nd] by training tokens ts[nt]; this shard trains
 * the points p with p % sn == sk. */
struct sweep_grid {
    long *ds, *ts;
    int   nd, nt, sk, sn;
};

/* Trains and stores the grid's points not yet stored in the run, one table row each. */
static int sweep_points(struct store *db, int64_t run_id, struct model *m, struct acts *a,
                        const struct data_opts *d, const struct train_opts *t,
                        const char *out_dir, const struct sweep_grid *g, struct ev_err *err) {
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
            char *dir = xasprintf("%s/d%ld-t%ld", out_dir, ds, ts);
            struct sae_train_params p = params_from(t, d, ds, ts);
            struct sae_train_log    fin;
            char                    hash[65];
            double                  t0 = now_seconds();
            ev_info("sweep: training d_sae %ld on %ld tokens", ds, ts);
            rc = saetrain_one(db, run_id, m, a, &p, t->hook, dir, 1, &fin, hash, err);
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
        }
    return EV_OK;
}

/* sweep once its options are checked: the model, the activations, the run, the grid. */
static int sweep_run(struct data_opts *d, struct train_opts *t, const char *out_dir,
                     const char *dl, const char *tl, const struct sweep_grid *g,
                     long max_t, struct ev_err *err) {
    struct train_job j;
    struct store    *db = NULL;
    char            *cfg = NULL;
    int64_t          run_id = 0, model_id = 0;
    int              resumed = 0, rc;
    if (!t->collect_tokens) t->collect_tokens = max_t < 1000000 ? max_t : 1000000;
    if ((rc = train_job_open(&j, d, t, 0, err))) goto out;
    struct model *m = j.m;
    struct acts  *a = j.a;
    if ((rc = mkdir_p(out_dir, err))) goto out;
    if ((rc = store_open(d->co.db_path, STORE_CREATE, &db, err))) goto out;
    if ((rc = put_model(db, m, &model_id, err))) goto out;
    cfg = train_config_json(d, t, out_dir, dl, tl, m, a);
    struct run_info ri = {.kind = "sweep", .tag = d->co.tag, .retag = d->co.retag,
                          .config_json = cfg, .seed = d->co.seed,
                          .shard_k = g->sk, .shard_n = g->sn, .model_id = model_id};
    if ((rc = store_run_begin(db, &ri, &run_id, &resumed, err))) goto out;
    rc = sweep_points(db, run_id, m, a, d, t, out_dir, g, err);
    rc = store_run_end(db, run_id, rc, err);
out:
    store_close(db);
    train_job_release(&j);
    free(cfg);
    return rc;
}

int cmd_sweep(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "sweep",
        "--hook H (--corpus FILE | --generate | --acts DIR) --d-sae N1,N2,... "
        "--tokens T1,T2,... --out DIR",
        "Trains one SAE per (dictionary size, training tokens) pair, saved as\n"
        "DIR/d<N>-t<T>, and stores final loss, MSE, L0, FVU, dead fraction and compute\n"
        "(~6 * tokens * d_in * d_sae FLOPs, dense equivalent) for each in table sae_sweep:\n"
        "the paper's scaling and dead-feature trends at this machine's scale. Rerunning\n"
        "skips finished points and resumes an interrupted one. --shard K/N trains the\n"
        "points p with p % N == K."};
    struct data_opts  d;
    data_opts_init(&d, cli, COMMON_MODEL | COMMON_SEED | COMMON_TAG | COMMON_SHARD, 1, 0);
    struct train_opts t = {.batch = 1024, .log_every = 0, .ckpt_every = 200, .l1 = 5.0,
                           .lr = 1e-3, .warmup = 0.05, .decay = 0.2};
    const char *out_dir = NULL, *dl = NULL, *tl = NULL;
    const struct opt opts[] = {
        DATA_OPTS(d),
        {"hook", OPT_STR, &t.hook, "H", "hook, e.g. blocks.2.hook_resid_post"},
        {"d-sae", OPT_STR, &dl, "N,...", "dictionary sizes"},
        {"tokens", OPT_STR, &tl, "T,...", "training token counts"},
        {"out", OPT_STR, &out_dir, "DIR", "folder for the SAEs"},
        TRAIN_OPTS(t),
        {0},
    };
    struct sweep_grid g = {NULL, NULL, 0, 0, 0, 1};
    int               n_pos = 0;
    int               rc = args_parse(&help, opts, argc, argv, &n_pos, err);
    if (rc) return rc;
    if (!t.hook || !out_dir || !dl || !tl)
        return ev_fail(err, EV_EUSAGE, "sweep: --hook, --d-sae, --tokens and --out are required");
    if (n_pos > 0) return args_no_positional(&help, n_pos, argv, err);
    if ((rc = parse_list("--d-sae", dl, 1, 1 << 26, &g.ds, &g.nd, err)) ||
        (rc = parse_list("--tokens", tl, 1, 1L << 40, &g.ts, &g.nt, err)) ||
        (rc = check_train(&t, err)) || (rc = args_parse_shard(d.co.shard, &g.sk, &g.sn, err)))
        goto out;
    long   max_t = 0, max_d = 0;
    double work = 0;
    for (int i = 0; i < g.nt; i++) max_t = g.ts[i] > max_t ? g.ts[i] : max_t;
    for (int i = 0; i < g.nd; i++) max_d = g.ds[i] > max_d ? g.ds[i] : max_d;
    for (int i = 0; i < g.nd; i++)
        for (int k = 0; k < g.nt; k++) work += (double)g.ds[i] * g.ts[k];
    d.tokens = max_t;
    if (!t.acts_dir && (rc = check_data(&help, &d, 0, argv, err))) goto out;
    struct plan_job pj = {.command = "sweep", .ctx = plan_ctx(&d), .tokens = max_t,
                          .d_sae = (int)max_d, .sae_train = 1, .batch = (int)t.batch,
                          .sae_work = work, .cache_hook = t.acts_dir ? NULL : t.hook,
                          .disk_dir = "results", .lower = "--tokens or --acts DIR",
                          .lower_mem = "--d-sae, --batch or --ctx"};
    if ((rc = common_opts_plan(&d.co, &pj, err)) == EV_OK)
        rc = sweep_run(&d, &t, out_dir, dl, tl, &g, max_t, err);
    else if (rc == COMMON_PLAN_SHOWN)
        rc = EV_OK;
out:
    free(g.ds);
    free(g.ts);
    return rc;
}

// ---------------------------------------------------------------- sae-bench

int cmd_sae_bench(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "sae-bench", "",
        "Times SAE training steps (forward, backward, Adam) and encoding on synthetic\n"
        "activations (x ~ N(0, I); unit-norm decoder rows, W_enc = W_dec^T, b_enc = -3, so\n"
        "about 0.13% of latents fire, as in a trained SAE). tests/bench/sae.py runs the same\n"
        "SAE and Adam in PyTorch; `make bench` prints the ratio. Output: one tab-separated\n"
        "line of name=value fields."};
    long d_in = 768, d_sae = 24576, batch = 1024, steps = 5;
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_SEED);
    const struct opt opts[] = {
        {"d-in", OPT_LONG, &d_in, "N", "input width (default 768)"},
        {"d-sae", OPT_LONG, &d_sae, "N", "latents (default 24576)"},
        {"batch", OPT_LONG, &batch, "B", "tokens per step (default 1024)"},
        {"steps", OPT_LONG, &steps, "S", "timed steps (default 5, after one warm-up)"},
        COMMON_OPTIONS(co),
        {0},
    };
    int n_pos = 0, rc = args_parse(&help, opts, argc, argv, &n_pos, err);
    if (rc) return rc;
    if ((rc = common_opts_check(&co, err))) return rc;
    if ((rc = args_check_long("--d-in", d_in, 1, 1 << 16, err)) ||
        (rc = args_check_long("--d-sae", d_sae, 1, 1 << 20, err)) ||
        (rc = args_check_long("--batch", batch, 1, 1 << 16, err)) ||
        (rc = args_check_long("--steps", steps, 1, 1000, err)))
        return rc;
    saetrain_bench_print((int)d_in, (int)d_sae, (int)batch, (int)steps, (uint64_t)co.seed);
    return EV_OK;
}
