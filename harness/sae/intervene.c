/*
 * intervene — SAE splices, clamps, steered generation and attribution (see intervene.h).
 */
#include "sae/intervene.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

float *intervene_directions(const struct sae *s) {
    int    d_in = s->cfg.d_out, d_sae = s->cfg.d_sae; /* rows in the written space */
    float *dirs = xmalloc(sizeof *dirs * (size_t)d_sae * (size_t)d_in);
    float *zero = xcalloc((size_t)d_in, sizeof *zero);
    float *f0 = xcalloc((size_t)d_sae, sizeof *f0);
    sae_decode(s, zero, f0, 1); /* decode(0) */
    /* decode(e_i) one at a time keeps any scaling/normalisation exactly as decode applies it */
    float *fi = xcalloc((size_t)d_sae, sizeof *fi);
    for (int i = 0; i < d_sae; i++) {
        fi[i] = 1.0f;
        float *row = dirs + (size_t)i * d_in;
        sae_decode(s, row, fi, 1);
        for (int c = 0; c < d_in; c++) row[c] -= zero[c];
        fi[i] = 0.0f;
    }
    free(fi);
    free(f0);
    free(zero);
    return dirs;
}

int intervene_encode(struct model_state *st, const struct sae *s, struct model_hook h,
                     const int *tokens, int pos, int T, float *resid, float *f,
                     struct ev_err *err) {
    int rc = model_forward_to_hook(st, tokens, pos, T, h, resid, err);
    if (rc == EV_OK && f) sae_encode(s, f, resid, T);
    return rc;
}

int intervene_encode_out(struct model_state *st, const struct sae *s, struct model_hook h_in,
                         struct model_hook h_out, const int *tokens, int pos, int T, float *y,
                         float *f, float *x_in, struct ev_err *err) {
    if (!s->cfg.transcoder) {
        int rc = intervene_encode(st, s, h_out, tokens, pos, T, y, f, err);
        if (rc == EV_OK && x_in) memcpy(x_in, y, sizeof *y * (size_t)T * (size_t)s->cfg.d_in);
        return rc;
    }
    float *xi = x_in ? x_in : xmalloc(sizeof *xi * (size_t)T * (size_t)s->cfg.d_in);
    /* a whole clean pass reading h_in (it leaves the KV cache complete, as a rerun of the same
     * positions needs), then the same positions again up to h_out */
    struct model_edit rd = {.hook = h_in, .read = xi};
    int               rc = model_forward(st, tokens, pos, T, &rd, 1, err);
    if (rc == EV_OK) {
        if (f) sae_encode(s, f, xi, T);
        rc = model_forward_to_hook(st, tokens, pos, T, h_out, y, err);
    }
    if (xi != x_in) free(xi);
    return rc;
}

void intervene_clamp(float *resid, const float *f, int T, int C, int d_sae, int feature,
                     float value, const float *dir) {
    for (int t = 0; t < T; t++) {
        float  delta = value - f[(size_t)t * d_sae + feature];
        float *x = resid + (size_t)t * C;
        for (int c = 0; c < C; c++) x[c] += delta * dir[c];
    }
}

/* One forward of T positions at pos with the steering edit applied at the hook. */
static int steered_step(struct model_state *st, const struct sae *s, struct model_hook h_in,
                        struct model_hook h, const int *tokens, int pos, int T,
                        const struct steer *steer, float *resid, float *f, struct ev_err *err) {
    if (!steer || steer->feature < 0) return model_forward(st, tokens, pos, T, NULL, 0, err);
    int rc = intervene_encode_out(st, s, h_in, h, tokens, pos, T, resid, f, NULL, err);
    if (rc != EV_OK) return rc;
    int skip = steer->from_pos > pos ? steer->from_pos - pos : 0; /* positions left alone */
    if (skip < T)
        intervene_clamp(resid + (size_t)skip * s->cfg.d_out, f + (size_t)skip * s->cfg.d_sae,
                        T - skip, s->cfg.d_out, s->cfg.d_sae, steer->feature, steer->value,
                        steer->dir);
    return model_forward_from_hook(st, pos, T, h, resid, err);
}

int intervene_generate(struct model_state *st, struct sampler *smp, const struct sae *s,
                       struct model_hook h_in, struct model_hook h, const int *prompt,
                       int n_prompt, int max_new, int eos_id, const struct steer *steer,
                       int *out, int *n_out, struct ev_err *err) {
    int    C = s->cfg.d_out, d_sae = s->cfg.d_sae;
    float *resid = xmalloc(sizeof *resid * (size_t)n_prompt * (size_t)C);
    float *f = xmalloc(sizeof *f * (size_t)n_prompt * (size_t)d_sae);
    int    rc = EV_OK;
    *n_out = 0;
    if (n_prompt < 1 || n_prompt + max_new > model_state_max_T(st)) {
        rc = ev_fail(err, EV_EFAIL, "prompt of %d tokens plus %d new ones exceeds the context "
                                    "of %d positions", n_prompt, max_new,
                     model_state_max_T(st));
        goto out;
    }
    rc = steered_step(st, s, h_in, h, prompt, 0, n_prompt, steer, resid, f, err);
    if (rc != EV_OK) goto out;
    const float *logits = model_state_logits(st) + (size_t)(n_prompt - 1) * smp->V; /* row width */
    for (int i = 0; i < max_new; i++) {
        int next = sampler_sample(smp, logits);
        out[(*n_out)++] = next;
        if (next == eos_id) break;
        if (i + 1 == max_new) break;
        rc = steered_step(st, s, h_in, h, &next, n_prompt + i, 1, steer, resid, f, err);
        if (rc != EV_OK) goto out;
        logits = model_state_logits(st);
    }
out:
    free(resid);
    free(f);
    return rc;
}

void intervene_attribution(float *attr, const float *f, const float *grad, const float *dirs,
                           int T, int C, int d_sae) {
    /* attr = grad (T, C) x dirs^T (C, d_sae), then times f elementwise */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, d_sae, C, 1.0f, grad, C, dirs, C,
                0.0f, attr, d_sae);
    for (size_t i = 0; i < (size_t)T * d_sae; i++) attr[i] *= f[i];
}
