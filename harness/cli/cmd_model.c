/*
 * cmd_model — `evalrun generate`, `evalrun logits` and `evalrun bench model`: the model
 * runtime from the command line (see docs/model.md).
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "model/kern.h"
#include "model/kern_bf16.h"
#include "model/model.h"
#include "model/sample.h"
#include "evals/modelinfo.h"

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
    if ((rc = common_opts_load_model(co, 0, m, err)) != EV_OK) goto out;
    if ((rc = tok_encode(model_tokenizer(*m), prompt, 1, ids, n, err)) != EV_OK) goto out;
    if (*n >= model_config(*m)->seq_len) {
        rc = ev_fail(err, EV_EFAIL, "%s: the prompt is %d tokens; the model's context is %d", cmd,
                     *n, model_config(*m)->seq_len);
        goto out;
    }
    rc = EV_OK;
out:
    return rc;
}

/* Prints the prompt and up to max_tokens new tokens sampled after ids[n] (clipped, with a
 * note, at the end of the context). */
static int generate_print(struct model *m, const char *prompt, const int *ids, int n,
                          int max_tokens, double temperature, double top_p, int64_t seed,
                          struct ev_err *err) {
    struct model_state *s = NULL;
    struct sampler      smp = {0};
    int                *out_ids = NULL, n_out = 0, rc;
    int                 room = model_config(m)->seq_len - n;
    if (max_tokens > room) {
        ev_info("generate: the context ends after %d new tokens", room);
        max_tokens = room;
    }
    if ((rc = model_state_new(m, n + max_tokens, MODEL_STATE_LAST_LOGITS, &s, err)) != EV_OK)
        goto out;
    model_sampler_init(&smp, m, (float)temperature, (float)top_p, (uint64_t)seed);
    out_ids = xmalloc(sizeof(int) * (size_t)(max_tokens + 1));
    if ((rc = model_generate(s, &smp, ids, n, max_tokens, 0, NULL, 0, out_ids, &n_out, err)) !=
        EV_OK)
        goto out;
    fputs(prompt, stdout);
    int prev = ids[n - 1];
    for (int i = 0; i < n_out; i++) {
        fputs(tok_piece(model_tokenizer(m), prev, out_ids[i]), stdout);
        prev = out_ids[i];
    }
    fputc('\n', stdout);
    rc = EV_OK;
out:
    sampler_release(&smp);
    free(out_ids);
    model_state_free(s);
    return rc;
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
    rc = generate_print(m, prompt, ids, n, (int)max_tokens, temperature, top_p, co.seed, err);
out:
    free(ids);
    model_free(m);
    return rc;
}

/* Writes s with \n, \t, \r, \\ and control bytes escaped, quoted. */
static void print_escaped(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n') fputs("\\n", stdout);
        else if (*p == '\t') fputs("\\t", stdout);
        else if (*p == '\r') fputs("\\r", stdout);
        else if (*p == '\\' || *p == '"') printf("\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f) printf("\\x%02x", *p);
        else putchar(*p);
    }
    putchar('"');
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
    struct model       *m = NULL;
    struct model_state *s = NULL;
    int                *ids = NULL, *order = NULL, n = 0, npos = 0;
    float              *prob = NULL;
    int                 rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos > 0) return args_no_positional(&help, npos, argv, err);
    if ((rc = args_check_long("--top", top, 1, 1 << 22, err)) != EV_OK) return rc;
    struct plan_job pj = {.command = "logits", .tokens = 64, .ctx = 64};
    if ((rc = load_and_encode("logits", &co, &pj, prompt, &m, &ids, &n, err)) != EV_OK) {
        if (rc == COMMON_PLAN_SHOWN) rc = EV_OK;
        goto out;
    }
    int V = model_config(m)->vocab_size, Vt = model_vocab_tokens(m); /* Vt: no padded ids */
    if (top > Vt) top = Vt;
    if ((rc = model_state_new(m, n, MODEL_STATE_LAST_LOGITS, &s, err)) != EV_OK) goto out;
    if ((rc = model_forward(s, ids, 0, n, NULL, 0, err)) != EV_OK) goto out;
    const float *lg = model_state_logits(s);
    prob = xmalloc(sizeof(float) * (size_t)V);
    order = xmalloc(sizeof(int) * (size_t)V);
    memcpy(prob, lg, sizeof(float) * (size_t)V);
    kern_softmax(prob, V);
    /* partial selection: top K by logit, lowest id first on ties */
    for (int i = 0; i < V; i++) order[i] = i;
    for (int k = 0; k < top; k++) {
        int best = k;
        for (int i = k + 1; i < Vt; i++)
            if (lg[order[i]] > lg[order[best]] ||
                (lg[order[i]] == lg[order[best]] && order[i] < order[best]))
                best = i;
        int t = order[k];
        order[k] = order[best];
        order[best] = t;
        printf("%d\t%d\t%.6f\t%.6f\t", k + 1, order[k], (double)lg[order[k]],
               (double)prob[order[k]]);
        print_escaped(tok_piece(model_tokenizer(m), ids[n - 1], order[k]));
        putchar('\n');
    }
    rc = EV_OK;
out:
    free(prob);
    free(order);
    free(ids);
    model_state_free(s);
    model_free(m);
    return rc;
}

// ---------------------------------------------------------------------------- bench

static int bench_one(struct model *m, const char *label, int T, int n_decode, int reps,
                     struct ev_err *err) {
    const struct model_config *c = model_config(m);
    struct model_state        *s = NULL;
    int                       *tok = xmalloc(sizeof(int) * (size_t)(T + n_decode));
    struct rng                 r;
    int                        rc;
    rng_seed(&r, 1);
    for (int i = 0; i < T + n_decode; i++) tok[i] = (int)rng_below(&r, (uint64_t)c->vocab_size);
    if ((rc = model_state_new(m, T + n_decode, 0, &s, err)) != EV_OK) goto out;
    /* warm-up, then the best of reps */
    if ((rc = model_forward(s, tok, 0, T, NULL, 0, err)) != EV_OK) goto out;
    double best_pre = 1e30, best_dec = 1e30;
    for (int k = 0; k < reps; k++) {
        double t0 = now_seconds();
        if ((rc = model_forward(s, tok, 0, T, NULL, 0, err)) != EV_OK) goto out;
        double t1 = now_seconds();
        for (int i = 0; i < n_decode; i++)
            if ((rc = model_forward(s, tok + T + i, T + i, 1, NULL, 0, err)) != EV_OK) goto out;
        double t2 = now_seconds();
        if (t1 - t0 < best_pre) best_pre = t1 - t0;
        if (t2 - t1 < best_dec) best_dec = t2 - t1;
    }
    printf("%s\tprefill_T=%d\tprefill_tok_s=%.1f\tdecode_n=%d\tdecode_tok_s=%.1f\n", label, T,
           T / best_pre, n_decode, n_decode / best_dec);
    rc = EV_OK;
out:
    free(tok);
    model_state_free(s);
    return rc;
}

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
    rc = bench_one(m, gpt2 ? "gpt2-small-random" : model_config(m)->model_type, (int)T,
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
