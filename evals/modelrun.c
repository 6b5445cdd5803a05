/*
 * modelrun — the model runtime as `evalrun generate`, `logits` and `bench model` use it (see
 * modelrun.h).
 */
#include "evals/modelrun.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/kern.h"
#include "model/sample.h"
#include "model/tok.h"

int modelrun_encode(struct model *m, const char *cmd, const char *prompt, int **ids, int *n,
                    struct ev_err *err) {
    int rc;
    *ids = NULL;
    if ((rc = tok_encode(model_tokenizer(m), prompt, 1, ids, n, err)) != EV_OK) return rc;
    if (*n >= model_config(m)->seq_len)
        return ev_fail(err, EV_EFAIL, "%s: the prompt is %d tokens; the model's context is %d",
                       cmd, *n, model_config(m)->seq_len);
    return EV_OK;
}

int modelrun_generate(struct model *m, const char *prompt, const int *ids, int n,
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

int modelrun_logits(struct model *m, const int *ids, int n, int top, struct ev_err *err) {
    struct model_state *s = NULL;
    int                *order = NULL;
    float              *prob = NULL;
    int                 rc;
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
    model_state_free(s);
    return rc;
}

// ---------------------------------------------------------------------------- bench

int modelrun_bench(struct model *m, const char *label, int T, int n_decode, int reps,
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
