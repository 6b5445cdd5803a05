/*
 * cmd_model — `evalrun generate`, `evalrun logits` and `evalrun bench model`: the model
 * runtime from the command line (see docs/model.md): their flags, and the work in
 * evals/modelrun.h; `evalrun model-info` (evals/modelinfo.h).
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/modelinfo.h"
#include "evals/modelrun.h"
#include "model/model.h"

/* Plans (pj, common_opts_plan: COMMON_PLAN_SHOWN under `evalrun plan`), loads the model
 * (resolved as model_resolve_path says) and encodes the prompt with BOS. An empty prompt is a
 * usage error; a prompt that leaves no room for one more position in the context is
 * EV_EFAIL. */
static int load_and_encode(const char *cmd, const struct common_opts *co, struct plan_job *pj,
                           const char *prompt, struct model **m, int **ids, int *n,
                           struct ev_err *err) {
    int rc;
    *m = NULL;
    *ids = NULL;
    if (!prompt) return ev_fail(err, EV_EUSAGE, "%s: --prompt TEXT is required", cmd);
    if (!*prompt) return ev_fail(err, EV_EUSAGE, "%s: --prompt must not be empty", cmd);
    if ((rc = common_opts_plan(co, pj, err)) != EV_OK) return rc;
    if ((rc = common_opts_load_model(co, 0, m, err)) != EV_OK) return rc;
    return modelrun_encode(*m, cmd, prompt, ids, n, err);
}

int cmd_generate(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "generate", "--prompt TEXT",
        "Prints the prompt followed by N new tokens sampled from the model (temperature 0:\n"
        "greedy). The model defaults to $EVALRUN_MODEL, else the shipped stories260K.\n"
        "Generation stops early at the context's end (with a note on stderr)."};
    const char *prompt = NULL;
    long        max_tokens = 64;
    double      temperature = 1.0, top_p = 0.9;
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_MODEL | COMMON_SEED);
    common_opts_default_seed(&co, 42);
    const struct opt opts[] = {
        {"prompt", OPT_STR, &prompt, "TEXT", "the text to continue"},
        {"max-tokens", OPT_LONG, &max_tokens, "N", "new tokens (default 64)"},
        {"temperature", OPT_DOUBLE, &temperature, "T", "0 = greedy (default 1.0)"},
        {"top-p", OPT_DOUBLE, &top_p, "P", "nucleus sampling mass in (0, 1] (default 0.9)"},
        COMMON_OPTIONS(co),
        {0},
    };
    struct model *m = NULL;
    int          *ids = NULL, n = 0, npos = 0;
    int           rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos > 0) return args_no_positional(&help, npos, argv, err);
    if ((rc = args_check_long("--max-tokens", max_tokens, 0, 1 << 20, err)) ||
        (rc = args_check_double("--temperature", temperature, 0.0, 100.0, err)) ||
        (rc = args_check_double("--top-p", top_p, 1e-6, 1.0, err)) ||
        (rc = common_opts_check(&co, err)))
        return rc;
    struct plan_job pj = {.command = "generate", .tokens = max_tokens,
                          .ctx = (int)(max_tokens + 64), .lower_mem = "--max-tokens"};
    if ((rc = load_and_encode("generate", &co, &pj, prompt, &m, &ids, &n, err)) != EV_OK) {
        if (rc == COMMON_PLAN_SHOWN) rc = EV_OK;
        goto out;
    }
    rc = modelrun_generate(m, prompt, ids, n, (int)max_tokens, temperature, top_p, co.seed, err);
out:
    free(ids);
    model_free(m);
    return rc;
}

int cmd_logits(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "logits", "--prompt TEXT",
        "Runs the prompt through the model and prints the K most likely next tokens, one per\n"
        "line: rank, token id, logit, probability and the token's text (quoted, escaped)."};
    const char *prompt = NULL;
    long        top = 10;
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_MODEL);
    const struct opt opts[] = {
        {"prompt", OPT_STR, &prompt, "TEXT", "the text whose next token is scored"},
        {"top", OPT_LONG, &top, "K", "how many candidates (default 10)"},
        COMMON_OPTIONS(co),
        {0},
    };
    struct model *m = NULL;
    int          *ids = NULL, n = 0, npos = 0;
    int           rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos > 0) return args_no_positional(&help, npos, argv, err);
    if ((rc = args_check_long("--top", top, 1, 1 << 22, err)) != EV_OK) return rc;
    struct plan_job pj = {.command = "logits", .tokens = 64, .ctx = 64};
    if ((rc = load_and_encode("logits", &co, &pj, prompt, &m, &ids, &n, err)) != EV_OK) {
        if (rc == COMMON_PLAN_SHOWN) rc = EV_OK;
        goto out;
    }
    rc = modelrun_logits(m, ids, n, (int)top, err);
out:
    free(ids);
    model_free(m);
    return rc;
}

// ---------------------------------------------------------------------------- bench

int cmd_bench(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "bench", "model",
        "Times the model runtime: prefill tokens/s (one forward over T random tokens) and\n"
        "decode tokens/s (N single-token steps with the KV cache), best of R repetitions.\n"
        "--gpt2-small times a random-weight GPT-2-small-shaped model (12 layers, d 768) instead."};
    int         gpt2 = 0;
    long        T = 256, n_dec = 128, reps = 3;
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_MODEL);
    const struct opt opts[] = {
        {"gpt2-small", OPT_FLAG, &gpt2, NULL, "random GPT-2-small-shaped model"},
        {"prompt-len", OPT_LONG, &T, "T", "prefill length (default 256)"},
        {"decode", OPT_LONG, &n_dec, "N", "decode steps (default 128)"},
        {"reps", OPT_LONG, &reps, "R", "repetitions, best kept (default 3)"},
        COMMON_OPTIONS(co),
        {0},
    };
    struct model *m = NULL;
    int           npos = 0;
    int           rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos > 1 && strcmp(argv[1], "model") == 0)
        return args_no_positional(&help, npos - 1, argv + 1, err);
    if (npos != 1 || strcmp(argv[1], "model") != 0)
        return ev_fail(err, EV_EUSAGE, "bench: expected 'model' (evalrun bench model ...)");
    if ((rc = args_check_long("--prompt-len", T, 1, 1 << 16, err)) ||
        (rc = args_check_long("--decode", n_dec, 1, 1 << 16, err)) ||
        (rc = args_check_long("--reps", reps, 1, 1000, err)))
        return rc;
    if (gpt2) {
        struct model_config c = model_config_gpt2_small();
        if ((rc = model_new_random(&c, 1, &m, err)) != EV_OK) goto out;
    } else {
        if ((rc = common_opts_load_model(&co, 0, &m, err)) != EV_OK) goto out;
    }
    if (T + n_dec > model_config(m)->seq_len) {
        rc = ev_fail(err, EV_EUSAGE, "bench: --prompt-len + --decode exceeds the context of %d",
                     model_config(m)->seq_len);
        goto out;
    }
    rc = modelrun_bench(m, gpt2 ? "gpt2-small-random" : model_config(m)->model_type, (int)T,
                   (int)n_dec, (int)reps, err);
out:
    model_free(m);
    return rc;
}

// ---------------------------------------------------------------------------- model-info

int cmd_model_info(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "model-info", "[--model PATH] [--weights-dtype D] [--ctx T] [--load]",
        "Describes a checkpoint from its config.json (or llama2.c header) without loading its\n"
        "weights, so a folder holding only config.json works: architecture, parameter count,\n"
        "the bytes of the weights in each dtype, a forward state of T positions (and with\n"
        "gradients), and the hooks with their widths. --load also loads it and reports what\n"
        "it actually holds: heap bytes and bytes used in place from the safetensors mapping."};
    long        ctx = 128;
    int         load = 0;
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_MODEL);
    const struct opt opts[] = {
        {"ctx", OPT_LONG, &ctx, "T", "positions of the forward state reported (default 128)"},
        {"load", OPT_FLAG, &load, NULL, "load the weights and report their memory as loaded"},
        COMMON_OPTIONS(co),
        {0},
    };
    char *path = NULL;
    int   npos = 0, flags = 0;
    int   rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos > 0) return args_no_positional(&help, npos, argv, err);
    if ((rc = args_check_long("--ctx", ctx, 1, 1 << 20, err)) != EV_OK ||
        (rc = model_weights_dtype_parse(co.weights_dtype, &flags, err)) != EV_OK)
        return rc;
    path = model_resolve_path(co.model);
    rc = modelinfo_print(path, ctx, flags, load, err);
    free(path);
    return rc;
}
