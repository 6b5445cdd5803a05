/*
 * influence_measure — fluency, concept presence and KL of a generation (see
 * influence_measure.h).
 */
#include "evals/influence_measure.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double log_sum_exp(const float *x, int V, double *mx) {
    double m = -INFINITY, s = 0;
    for (int v = 0; v < V; v++)
        if ((double)x[v] > m) m = (double)x[v];
    for (int v = 0; v < V; v++) s += exp((double)x[v] - m);
    *mx = m;
    return m + log(s);
}

double infl_log_softmax_at(const float *logits, int V, int k) {
    double m;
    return (double)logits[k] - log_sum_exp(logits, V, &m);
}

double infl_kl_logits(const float *p, const float *q, int V) {
    double mp, mq, lp = log_sum_exp(p, V, &mp), lq = log_sum_exp(q, V, &mq), kl = 0;
    for (int v = 0; v < V; v++) {
        double a = (double)p[v] - lp;
        kl += exp(a) * (a - ((double)q[v] - lq));
    }
    return kl > 0 ? kl : 0; /* rounding can leave -1e-17 */
}

int infl_measure(const struct model *m, struct model_state *st, const struct sae *s, struct model_hook h_in,
                 struct model_hook h_out, const int *seq, int n_prompt, int L, int feature,
                 const struct steer *steer, struct infl_measure *out, struct ev_err *err) {
    int     C = s->cfg.d_out, D = s->cfg.d_sae, V = 0, Vt = 0, rc;
    float  *y = xmalloc(sizeof *y * (size_t)L * (size_t)C);
    float  *f = xmalloc(sizeof *f * (size_t)L * (size_t)D);
    float  *lu = NULL;
    memset(out, 0, sizeof *out);
    out->kl_mean = out->kl_max = NAN;
    if (n_prompt < 1 || L <= n_prompt) {
        rc = ev_fail(err, EV_EFAIL, "influence measure: no generated token (prompt %d, total %d)",
                     n_prompt, L);
        goto out;
    }
    /* the unsteered pass: features at the hook, then the logits */
    if ((rc = intervene_encode_out(st, s, h_in, h_out, seq, 0, L, y, f, NULL, err)) != EV_OK ||
        (rc = model_forward_from_hook(st, 0, L, h_out, y, err)) != EV_OK)
        goto out;
    V = model_config(m)->vocab_size;
    Vt = model_vocab_tokens(m);
    lu = xmalloc(sizeof *lu * (size_t)L * (size_t)V);
    memcpy(lu, model_state_logits(st), sizeof *lu * (size_t)L * (size_t)V);
    double ll = 0, am = 0, ax = -INFINITY;
    for (int t = n_prompt; t < L; t++) {
        ll += infl_log_softmax_at(lu + (size_t)(t - 1) * V, Vt, seq[t]);
        double a = (double)f[(size_t)t * D + feature];
        am += a;
        if (a > ax) ax = a;
    }
    out->n_new = L - n_prompt;
    out->loglik = ll / out->n_new;
    out->act_mean = am / out->n_new;
    out->act_max = ax;
    if (!steer || steer->feature < 0) goto out;
    /* the steered pass over the same tokens: the clamp as intervene_generate applies it */
    if ((rc = intervene_encode_out(st, s, h_in, h_out, seq, 0, L, y, f, NULL, err)) != EV_OK)
        goto out;
    int from = steer->from_pos > 0 ? steer->from_pos : 0;
    if (from < L)
        intervene_clamp(y + (size_t)from * C, f + (size_t)from * D, L - from, C, D,
                        steer->feature, steer->value, steer->dir);
    if ((rc = model_forward_from_hook(st, 0, L, h_out, y, err)) != EV_OK) goto out;
    const float *ls = model_state_logits(st);
    double       ks = 0, kx = 0;
    for (int t = from; t < L; t++) {
        double k = infl_kl_logits(lu + (size_t)t * V, ls + (size_t)t * V, Vt);
        ks += k;
        if (k > kx) kx = k;
    }
    out->n_kl = L - from;
    out->kl_mean = out->n_kl > 0 ? ks / out->n_kl : (double)NAN;
    out->kl_max = out->n_kl > 0 ? kx : (double)NAN;
out:
    free(y);
    free(f);
    free(lu);
    return rc;
}
