/*
 * cmd_sae — the SAE commands: `collect` (activation cache), `train-sae`, `sae-metrics`,
 * `sweep` and `index` (the feature index and its analyses): their flags, checked, and one
 * call into evals/saejob (the jobs) or evals/saetrain (sae-bench). See docs/sae.md.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/index.h"    /* evals/: EVAL_INDEX_CTX, struct eval_index_opts */
#include "evals/saejob.h"   /* evals/: the jobs of collect, train-sae, sweep, sae-metrics, index */
#include "evals/saetrain.h" /* evals/: sae-bench */
#include "sae/sae_index.h"

// ---------------------------------------------------------------- shared helpers

/* What every data-reading command shares: the corpus source (src: --corpus, --text-field,
 * --generate, --ctx, the tokens), and the common options (model, seed, tag, shard; the SAE
 * for those that read one), copied into src by data_src(). */
struct data_opts {
    struct saejob_data src;
    struct common_opts co;
};

static void data_opts_init(struct data_opts *d, const struct cli *cli, unsigned which,
                           long tokens, long seed) {
    memset(d, 0, sizeof *d);
    d->src.tokens = tokens;
    d->src.ctx = -1; /* not given: EVAL_INDEX_CTX, clamped to the model's context by the job */
    common_opts_init(&d->co, cli, which);
    common_opts_default_seed(&d->co, seed);
}

/* The job's data: the corpus options with the common ones filled in. */
static const struct saejob_data *data_src(struct data_opts *d) {
    d->src.db_path = d->co.db_path;
    d->src.model = d->co.model;
    d->src.weights_dtype = d->co.weights_dtype;
    d->src.sae = d->co.sae;
    d->src.seed = d->co.seed;
    d->src.tag = d->co.tag;
    d->src.retag = d->co.retag;
    return &d->src;
}

#define DATA_OPTS(d)                                                                           \
    {"corpus", OPT_STR, &(d).src.corpus, "PATH",                                                \
     "corpus: plain text, JSON Lines (.jsonl/.json: a \"text\" field per line) or a folder"},     \
    {"text-field", OPT_STR, &(d).src.text_field, "KEY",                                         \
     "the JSON Lines field holding the text (default text)"},                                   \
    {"generate", OPT_FLAG, &(d).src.generate, NULL,                                             \
     "use stories sampled from the model itself (temperature 1, seeded) as the corpus"},        \
    {"ctx", OPT_LONG, &(d).src.ctx, "T", "tokens per sequence, BOS first (default 128, or the model's context when shorter)"}, \
    COMMON_OPTIONS((d).co)

/* The common checks, then (unless the activations come from a cache: acts) the corpus's. */
static int check_data(const struct cmd_help *help, const struct data_opts *dd, int n_pos,
                      char **argv, int acts, struct ev_err *err) {
    const char               *cmd = help->name;
    const struct saejob_data *d = &dd->src;
    int                       rc;
    if ((rc = args_no_positional(help, n_pos, argv, err))) return rc;
    if ((rc = common_tag_check(dd->co.tag, err)) ||
        (rc = args_check_long("--seed", dd->co.seed, 0, LONG_MAX, err)))
        return rc;
    if (acts) return EV_OK;
    if (!d->corpus && !d->generate)
        return ev_fail(err, EV_EUSAGE, "%s: give --corpus FILE or --generate", cmd);
    if (d->corpus && d->generate)
        return ev_fail(err, EV_EUSAGE, "%s: --corpus and --generate exclude each other", cmd);
    if (d->text_field && !d->corpus)
        return ev_fail(err, EV_EUSAGE, "%s: --text-field needs --corpus", cmd);
    if ((rc = args_check_long("--tokens", d->tokens, 1, 1L << 34, err)) ||
        (d->ctx != -1 && (rc = args_check_long("--ctx", d->ctx, 2, 1 << 16, err))))
        return rc;
    return common_corpus_check(d->corpus, d->text_field, err);
}

/* --ctx for the plan, before the model is loaded. */
static int plan_ctx(const struct data_opts *d) {
    return d->src.ctx > 0 ? (int)d->src.ctx : EVAL_INDEX_CTX;
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
        {"tokens", OPT_LONG, &d.src.tokens, "N", "corpus tokens to run"},
        {"out", OPT_STR, &out_dir, "DIR", "the cache folder to write"},
        {"keep-bos", OPT_FLAG, &keep_bos, NULL, "keep the BOS position's activations"},
        {0},
    };
    int n_pos = 0, sk = 0, sn = 1, width = 0;
    int rc = args_parse(&help, opts, argc, argv, &n_pos, err);
    if (rc) return rc;
    if (!hook || !out_dir)
        return ev_fail(err, EV_EUSAGE, "collect: --hook and --out are required");
    if ((rc = check_data(&help, &d, n_pos, argv, 0, err))) return rc;
    if ((rc = args_parse_shard(d.co.shard, &sk, &sn, err))) return rc;
    struct plan_job pj = {.command = "collect", .ctx = plan_ctx(&d), .tokens = d.src.tokens,
                          .cache_hook = hook, .disk_dir = out_dir, .lower = "--tokens",
                          .lower_mem = "--ctx or --tokens"};
    if ((rc = common_opts_plan(&d.co, &pj, err))) return rc == COMMON_PLAN_SHOWN ? EV_OK : rc;
    int64_t n_acts = 0;
    if ((rc = saejob_collect(data_src(&d), hook, out_dir, keep_bos, sk, sn, &n_acts, &width,
                             err)))
        return rc;
    printf("collected %lld activations of width %d at %s into %s\n", (long long)n_acts, width,
           hook, out_dir);
    return EV_OK;
}

// ---------------------------------------------------------------- train-sae

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

static int check_train(const struct saejob_train *t, struct ev_err *err) {
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
    struct saejob_train t = {.d_sae = 0, .batch = 1024, .log_every = 100, .ckpt_every = 200,
                           .l1 = 5.0, .lr = 1e-3, .warmup = 0.05, .decay = 0.2};
    const char *out_dir = NULL;
    const struct opt opts[] = {
        DATA_OPTS(d),
        {"hook", OPT_STR, &t.hook, "H", "hook, e.g. blocks.2.hook_resid_post"},
        {"d-sae", OPT_LONG, &t.d_sae, "N", "dictionary size (latents)"},
        {"tokens", OPT_LONG, &d.src.tokens, "N", "training tokens"},
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
    if ((rc = check_data(&help, &d, 0, argv, t.acts_dir != NULL, err))) return rc;
    if (t.acts_dir && (d.src.corpus || d.src.generate))
        return ev_fail(err, EV_EUSAGE, "train-sae: --acts excludes --corpus and --generate");
    if ((rc = args_check_long("--tokens", d.src.tokens, 1, 1L << 40, err)) ||
        (rc = args_check_long("--d-sae", t.d_sae, 1, 1 << 26, err)) ||
        (rc = check_train(&t, err)) || (rc = args_parse_shard(d.co.shard, &sk, &sn, err)))
        return rc;
    if (sn > 1) return ev_fail(err, EV_EUSAGE, "train-sae: one SAE cannot be split (--shard)");
    struct plan_job pj = {.command = "train-sae", .ctx = plan_ctx(&d), .tokens = d.src.tokens,
                          .d_sae = (int)t.d_sae, .sae_train = 1, .batch = (int)t.batch,
                          .cache_hook = t.acts_dir ? NULL : t.hook, .disk_dir = "results",
                          .lower = "--tokens or --acts DIR",
                          .lower_mem = "--d-sae, --batch or --ctx"};
    if ((rc = common_opts_plan(&d.co, &pj, err))) return rc == COMMON_PLAN_SHOWN ? EV_OK : rc;
    struct sae_train_log fin;
    char                 hash[65];
    if ((rc = saejob_train_sae(data_src(&d), &t, out_dir, cli->quiet, &fin, hash, err)))
        return rc;
    printf("trained %s: d_sae %ld, %lld tokens, mse %.4f, L0 %.2f, fvu %.4f, dead %.3f "
           "(%.1fs)\nsae_hash %s\n",
           out_dir, t.d_sae, (long long)fin.tokens, fin.st.mse, fin.st.l0, fin.st.fvu,
           fin.dead_frac, fin.elapsed_s, hash);
    return EV_OK;
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
        {"tokens", OPT_LONG, &d.src.tokens, "N", "corpus tokens (default 16384)"},
        {"out", OPT_STR, &out_json, "FILE.json", "write SAEBench's core JSON here"},
        {0},
    };
    int n_pos = 0, sk = 0, sn = 1;
    int rc = args_parse(&help, opts, argc, argv, &n_pos, err);
    if (rc) return rc;
    if ((rc = check_data(&help, &d, n_pos, argv, 0, err))) return rc;
    if ((rc = args_parse_shard(d.co.shard, &sk, &sn, err))) return rc;
    /* clean, spliced and zero-ablated passes, each keeping its logits */
    struct plan_job pj = {.command = "sae-metrics", .ctx = plan_ctx(&d), .tokens = d.src.tokens,
                          .passes = 3, .logit_rows = 3 * plan_ctx(&d), .lower_mem = "--ctx"};
    if ((rc = common_opts_plan(&d.co, &pj, err))) return rc == COMMON_PLAN_SHOWN ? EV_OK : rc;
    return saejob_metrics(data_src(&d), sk, sn, out_json, d.co.json, err);
}

// ---------------------------------------------------------------- index

/* index's own options. */
struct index_opts {
    const char *features;
    long        top_k, bins, per_bin, nonact, window, n_nb, n_lg, n_neur, neur_tok;
};

/* Checks index's options into o (with the shard and seed of d). */
static int index_check(const struct index_opts *x, const struct data_opts *d,
                       struct eval_index_opts *o, struct ev_err *err) {
    struct sae_index_params *p = &o->p;
    int                      rc;
    if ((rc = args_check_long("--top-k", x->top_k, 0, 10000, err)) ||
        (rc = args_check_long("--bins", x->bins, 1, 1000, err)) ||
        (rc = args_check_long("--per-bin", x->per_bin, 0, 10000, err)) ||
        (rc = args_check_long("--nonact", x->nonact, 0, 10000, err)) ||
        (rc = args_check_long("--window", x->window, 0, 4096, err)) ||
        (rc = args_check_long("--neighbors", x->n_nb, 0, 1000, err)) ||
        (rc = args_check_long("--logits", x->n_lg, 0, 1000, err)) ||
        (rc = args_check_long("--neurons", x->n_neur, 0, 1 << 20, err)) ||
        (rc = args_check_long("--neuron-tokens", x->neur_tok, 16, 1 << 24, err)) ||
        (rc = args_parse_shard(d->co.shard, &p->shard_k, &p->shard_n, err)) ||
        (rc = common_file_check("--features", x->features, err)))
        return rc;
    p->top_k = (int)x->top_k;
    p->bins = (int)x->bins;
    p->per_bin = (int)x->per_bin;
    p->n_nonact = (int)x->nonact;
    p->window = (int)x->window;
    p->seed = (uint64_t)d->co.seed;
    o->features_path = x->features;
    o->n_neighbors = (int)x->n_nb;
    o->n_logits = (int)x->n_lg;
    o->n_neurons = (int)x->n_neur;
    o->neuron_tokens = x->neur_tok;
    return EV_OK;
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
    struct eval_index_opts  o = eval_index_default_opts();
    struct sae_index_params p = sae_index_default_params();
    struct index_opts x = {NULL, p.top_k, p.bins, p.per_bin, p.n_nonact, p.window, 10, 10, 64,
                           8192};
    const struct opt opts[] = {
        DATA_OPTS(d),
        {"tokens", OPT_LONG, &d.src.tokens, "N", "corpus tokens (default 32768)"},
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
    if ((rc = check_data(&help, &d, n_pos, argv, 0, err)) || (rc = index_check(&x, &d, &o, err)))
        return rc;
    struct plan_job pj = {.command = "index", .ctx = plan_ctx(&d), .tokens = d.src.tokens,
                          .index_rows = (int)(x.top_k + x.bins * x.per_bin + x.nonact),
                          .index_window = (int)x.window, .disk_dir = d.co.db_path,
                          .lower = "--tokens, --top-k, --per-bin or --window",
                          .lower_mem = "--ctx or --tokens"};
    if ((rc = common_opts_plan(&d.co, &pj, err))) return rc == COMMON_PLAN_SHOWN ? EV_OK : rc;
    return saejob_index(data_src(&d), &o, err);
}

// ---------------------------------------------------------------- sweep

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
    struct saejob_train t = {.batch = 1024, .log_every = 0, .ckpt_every = 200, .l1 = 5.0,
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
    struct saejob_grid g = {NULL, NULL, 0, 0, 0, 1};
    int               n_pos = 0;
    int               rc = args_parse(&help, opts, argc, argv, &n_pos, err);
    if (rc) return rc;
    if (!t.hook || !out_dir || !dl || !tl)
        return ev_fail(err, EV_EUSAGE, "sweep: --hook, --d-sae, --tokens and --out are required");
    if (n_pos > 0) return args_no_positional(&help, n_pos, argv, err);
    if ((rc = args_parse_long_list("--d-sae", dl, 1, 1 << 26, &g.ds, &g.nd, err)) ||
        (rc = args_parse_long_list("--tokens", tl, 1, 1L << 40, &g.ts, &g.nt, err)) ||
        (rc = check_train(&t, err)) || (rc = args_parse_shard(d.co.shard, &g.sk, &g.sn, err)))
        goto out;
    long   max_t = 0, max_d = 0;
    double work = 0;
    for (int i = 0; i < g.nt; i++) max_t = g.ts[i] > max_t ? g.ts[i] : max_t;
    for (int i = 0; i < g.nd; i++) max_d = g.ds[i] > max_d ? g.ds[i] : max_d;
    for (int i = 0; i < g.nd; i++)
        for (int k = 0; k < g.nt; k++) work += (double)g.ds[i] * g.ts[k];
    d.src.tokens = max_t;
    if ((rc = check_data(&help, &d, 0, argv, t.acts_dir != NULL, err))) goto out;
    struct plan_job pj = {.command = "sweep", .ctx = plan_ctx(&d), .tokens = max_t,
                          .d_sae = (int)max_d, .sae_train = 1, .batch = (int)t.batch,
                          .sae_work = work, .cache_hook = t.acts_dir ? NULL : t.hook,
                          .disk_dir = "results", .lower = "--tokens or --acts DIR",
                          .lower_mem = "--d-sae, --batch or --ctx"};
    if ((rc = common_opts_plan(&d.co, &pj, err)) == EV_OK)
        rc = saejob_sweep(data_src(&d), &t, out_dir, dl, tl, &g, max_t, err);
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
    if ((rc = args_no_positional(&help, n_pos, argv, err))) return rc;
    if ((rc = common_opts_check(&co, err))) return rc;
    if ((rc = args_check_long("--d-in", d_in, 1, 1 << 16, err)) ||
        (rc = args_check_long("--d-sae", d_sae, 1, 1 << 20, err)) ||
        (rc = args_check_long("--batch", batch, 1, 1 << 16, err)) ||
        (rc = args_check_long("--steps", steps, 1, 1000, err)))
        return rc;
    saetrain_bench_print((int)d_in, (int)d_sae, (int)batch, (int)steps, (uint64_t)co.seed);
    return EV_OK;
}
