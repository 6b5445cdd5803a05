/*
 * common_opts — the shared option table and its checks. See common_opts.h.
 */
#include "cli/common_opts.h"

#include "base/corpus.h"
#include "evals/common.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void common_opts_globals(struct cli *cli) {
    const struct opt g[] = {
        {"db", OPT_STR, &cli->db_path, "PATH",
         "results database (default results/evalrun.db, env EVALRUN_DB)"},
        {"quiet", OPT_FLAG, &cli->quiet, NULL, "no progress bar or notes on stderr (-q)"},
        {"verbose", OPT_FLAG, &cli->verbose, NULL, "more detail on stderr (-v)"},
        {0},
    };
    EV_ASSERT(sizeof g <= sizeof cli->globals);
    memcpy(cli->globals, g, sizeof g);
}

void common_opts_init(struct common_opts *co, const struct cli *cli, unsigned which) {
    memset(co, 0, sizeof *co);
    co->which = which;
    co->cli = cli;
    co->db_path = cli->db_path;
    co->shard_n = 1;
    co->weights_dtype = "auto";
    grader_flags_init(&co->gf);
    common_opts_default_seed(co, 0);
    const struct opt all[] = {
        {"model", OPT_STR, &co->model, "PATH",
         "model: .bin or HF folder (default $EVALRUN_MODEL, else stories260K)"},
        {"weights-dtype", OPT_STR, &co->weights_dtype, "D",
         "auto|f32|bf16: the dtype weight matrices are kept in (default auto: the checkpoint's)"},
        {"sae", OPT_STR, &co->sae, "DIR",
         "SAE folder (default $EVALRUN_SAE, else evals/saes/stories260K-L2)"},
        {"seed", OPT_LONG, &co->seed, "S", co->seed_help},
        {"tag", OPT_STR, &co->tag, "NAME",
         "a name for the run, usable wherever a run id is; one tag names one run"},
        {"retag", OPT_FLAG, &co->retag, NULL,
         "move --tag NAME to this run when another run holds it"},
        {"shard", OPT_STR, &co->shard, "K/N", "do only the K-th of N slices of the work (K from 0)"},
        {"json", OPT_FLAG, &co->json, NULL, "machine-readable output on stdout"},
        {"corpus", OPT_STR, &co->index_corpus, "PATH",
         "when the database has no feature index for the SAE, build it over this corpus (plain "
         "text, JSON Lines or a folder; default: stories sampled from the shipped model)"},
        {"text-field", OPT_STR, &co->index_text_field, "KEY",
         "the JSON Lines field holding the text (default text)"},
        {"no-index-build", OPT_FLAG, &co->no_index_build, NULL,
         "stop when the feature index is missing instead of building it"},
        {"control", OPT_STR, &co->control, "C",
         "none|random-sae|shuffled|random-sae,shuffled: also run the evaluation on a control "
         "(a random-direction SAE of the same L0, or shuffled descriptions) and show score, "
         "control and difference (default none; docs/evals.md)"},
    };
    static const unsigned bit[] = {COMMON_MODEL, COMMON_MODEL, COMMON_SAE,   COMMON_SEED,
                                   COMMON_TAG,   COMMON_TAG,   COMMON_SHARD, COMMON_JSON,
                                   COMMON_INDEX, COMMON_INDEX, COMMON_INDEX, COMMON_CONTROL};
    int n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (which & bit[i]) co->table[n++] = all[i];
    EV_ASSERT(n < (int)(sizeof co->table / sizeof co->table[0]));
    if (which & COMMON_GRADER) {
        const struct opt g[] = {GRADER_OPTIONS(co->gf), {0}};
        EV_ASSERT(sizeof g <= sizeof co->grader);
        memcpy(co->grader, g, sizeof g);
    }
    memcpy(co->globals, cli->globals, sizeof co->globals);
}

int common_opts_parse_only(const struct cmd_help *help, const struct cli *cli, int argc,
                           char **argv, int *npos, struct ev_err *err) {
    struct common_opts co;
    common_opts_init(&co, cli, 0);
    const struct opt opts[] = {COMMON_OPTIONS(co), {0}};
    *npos = 0;
    return args_parse(help, opts, argc, argv, npos, err);
}

void common_opts_default_seed(struct common_opts *co, long seed) {
    co->seed = seed;
    snprintf(co->seed_help, sizeof co->seed_help, "seed of the run's random choices (default %ld)",
             seed);
}

int common_opts_grader(const struct common_opts *co, struct grader_config *cfg,
                       struct ev_err *err) {
    if (!(co->which & COMMON_GRADER) || !grader_flags_configured(&co->gf)) return 0;
    int rc = grader_config_from_flags(&co->gf, co->shard_n, cfg, err);
    return rc != EV_OK ? rc : 1;
}

int common_corpus_check(const char *path, const char *text_field, struct ev_err *err) {
    struct stat    st;
    struct corpus *c = NULL;
    struct ev_err  e = {{0}};
    const char    *text;
    size_t         len;
    int            doc, rc;
    if (!path) return EV_OK;
    if (stat(path, &st) != 0)
        return ev_fail(err, EV_EFAIL, "--corpus %s: %s", path, strerror(errno));
    if (S_ISREG(st.st_mode) && st.st_size == 0)
        return ev_fail(err, EV_EFAIL, "--corpus %s is empty", path);
    /* a folder is listed and its first piece read: no files, refused files, only empty ones */
    rc = corpus_open(path, text_field, &c, &e);
    if (rc == EV_OK && (rc = corpus_next(c, &text, &len, &doc, &e)) == 0)
        rc = ev_fail(&e, EV_EFAIL, "%s holds no text (%s, every one empty)", path,
                     corpus_kind(c));
    corpus_close(c);
    if (rc >= 0) return EV_OK;
    if (rc == EV_EUSAGE) return ev_fail(err, rc, "%s", e.msg); /* --text-field */
    if (strncmp(e.msg, path, strlen(path)) == 0) return ev_fail(err, rc, "--corpus %s", e.msg);
    return ev_fail(err, rc, "--corpus %s: %s", path, e.msg);
}

int common_file_check(const char *flag, const char *path, struct ev_err *err) {
    struct stat st;
    if (!path) return EV_OK;
    if (stat(path, &st) != 0) return ev_fail(err, EV_EFAIL, "%s %s: %s", flag, path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return ev_fail(err, EV_EFAIL, "%s %s is a folder, expected a file", flag, path);
    if (access(path, R_OK) != 0)
        return ev_fail(err, EV_EFAIL, "%s %s is not readable", flag, path);
    return EV_OK;
}

int common_out_check(const char *flag, const char *path, struct ev_err *err) {
    if (!path) return EV_OK;
    if (path_is_dir(path))
        return ev_fail(err, EV_EFAIL, "%s %s is a folder, expected a file to write", flag, path);
    char       *dir = xstrdup(path);
    char       *slash = strrchr(dir, '/');
    const char *d = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
    int         rc = EV_OK;
    if (!path_is_dir(d))
        rc = ev_fail(err, EV_EFAIL, "%s %s: folder %s does not exist", flag, path, d);
    free(dir);
    return rc;
}

int common_tag_check(const char *tag, struct ev_err *err) {
    if (!tag) return EV_OK;
    if (!*tag) return ev_fail(err, EV_EUSAGE, "--tag needs a name, got ''");
    if (strspn(tag, "0123456789") == strlen(tag))
        return ev_fail(err, EV_EUSAGE, "--tag '%s': a tag cannot be a number (it would read as "
                                       "the run id %s)", tag, tag);
    return EV_OK;
}

int common_opts_check(struct common_opts *co, struct ev_err *err) {
    int rc;
    if ((rc = args_parse_shard(co->shard, &co->shard_k, &co->shard_n, err)) != EV_OK) return rc;
    if ((rc = args_check_long("--seed", co->seed, 0, LONG_MAX, err)) != EV_OK) return rc;
    if ((rc = common_tag_check(co->tag, err)) != EV_OK) return rc;
    if ((rc = model_weights_dtype_parse(co->weights_dtype, &co->model_flags, err)) != EV_OK)
        return rc;
    if ((rc = eval_control_parse(co->control, &co->controls, err)) != EV_OK) return rc;
    if (co->index_text_field && !co->index_corpus)
        return ev_fail(err, EV_EUSAGE, "--text-field needs --corpus");
    if (co->index_corpus && co->no_index_build)
        return ev_fail(err, EV_EUSAGE, "--corpus (for the index) and --no-index-build exclude "
                                       "each other");
    struct grader_config gc;
    rc = common_opts_grader(co, &gc, err);
    if (rc < 0) return rc;
    if ((co->which & COMMON_GRADER) && rc == 0) {
        /* no grader configured: its flags are still checked, so that a bad --timeout or
         * --concurrency is a usage error now rather than ignored */
        struct grader_flags f = co->gf;
        f.grader = "openai";
        if ((rc = grader_config_from_flags(&f, co->shard_n, &gc, err)) != EV_OK) return rc;
    }
    /* last: a usage error in the flags comes first (exit 2), then the files (exit 1) */
    return common_corpus_check(co->index_corpus, co->index_text_field, err);
}

struct eval_index_source common_opts_index(const struct common_opts *co) {
    struct eval_index_source s = {.corpus = co->index_corpus,
                                  .text_field = co->index_text_field,
                                  .no_build = co->no_index_build,
                                  .model_arg = co->model,
                                  .sae_arg = co->sae};
    return s;
}

int common_opts_plan(const struct common_opts *co, struct plan_job *j, struct ev_err *err) {
    struct plan p;
    char       *sae = NULL;
    int         rc;
    if ((rc = model_weights_dtype_parse(co->weights_dtype, &j->model_flags, err)) != EV_OK)
        return rc;
    j->model_path = co->model;
    if ((co->which & COMMON_SAE) && !j->sae_path) j->sae_path = sae = eval_resolve_sae_path(co->sae);
    rc = plan_estimate(j, &p, err);
    if (sae) j->sae_path = NULL;
    free(sae);
    if (rc != EV_OK) return rc;
    if (co->cli && co->cli->plan_only) {
        char *r = plan_report(j, &p);
        fputs(r, stdout);
        free(r);
        return COMMON_PLAN_SHOWN;
    }
    if (!plan_fits(&p)) return plan_refuse(j, &p, err);
    return EV_OK;
}

int common_opts_load_model(const struct common_opts *co, int load_flags, struct model **m,
                           struct ev_err *err) {
    return eval_model_load(co->model, co->weights_dtype, load_flags, m, err);
}

int common_opts_run(const struct eval_kind *k, const struct common_opts *co, void *cfg,
                    struct ev_err *err) {
    struct grader_config gc;
    struct plan_job      j = {.command = k->name};
    int                  rc = common_opts_plan(co, &j, err);
    if (rc == COMMON_PLAN_SHOWN) return EV_OK;
    if (rc != EV_OK) return rc;
    rc = common_opts_grader(co, &gc, err);
    if (rc < 0) return rc;
    if (rc == 1 && co->logprobs > 0) gc.logprobs = co->logprobs;
    struct eval_common c = {
        .db_path = co->db_path,
        .model = co->model,
        .model_flags = co->model_flags,
        .sae = co->sae,
        .tag = co->tag,
        .retag = co->retag,
        .seed = co->seed,
        .shard_k = co->shard_k,
        .shard_n = co->shard_n,
        .grader = rc == 1 ? &gc : NULL,
        .index = common_opts_index(co),
        .controls = co->controls,
    };
    return eval_runner_run(k, &c, cfg, err);
}
