/*
 * sae_analysis — decoder-cosine neighbourhoods, logit effects and feature/neuron Pearson
 * correlations. See sae_analysis.h.
 */
#include "sae/sae_analysis.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "model/model.h"

/* Keeps the n best (value desc, index asc) of vals (m) excluding index skip. */
static void best_n(const float *vals, int m, int skip, int n, int *idx, float *out, int desc) {
    int k = 0;
    for (int i = 0; i < m; i++) {
        if (i == skip) continue;
        float v = desc ? vals[i] : -vals[i];
        if (k == n && !(v > (desc ? out[n - 1] : -out[n - 1]))) continue;
        int p = k < n ? k++ : n - 1;
        while (p > 0 && v > (desc ? out[p - 1] : -out[p - 1])) {
            out[p] = out[p - 1];
            idx[p] = idx[p - 1];
            p--;
        }
        out[p] = vals[i];
        idx[p] = i;
    }
    for (; k < n; k++) {
        out[k] = 0;
        idx[k] = -1;
    }
}

static float *unit_rows(const struct sae *s) {
    const int D = s->cfg.d_out, S = s->cfg.d_sae;
    float    *u = xmalloc((size_t)S * D * sizeof(float));
#pragma omp parallel for schedule(static)
    for (int i = 0; i < S; i++) {
        const float *r = s->W_dec + (size_t)i * D;
        double       n2 = 0;
        for (int j = 0; j < D; j++) n2 += (double)r[j] * (double)r[j];
        float inv = n2 > 0 ? (float)(1.0 / sqrt(n2)) : 0.0f;
        for (int j = 0; j < D; j++) u[(size_t)i * D + j] = r[j] * inv;
    }
    return u;
}

void sae_neighbors(const struct sae *s, const int *ids, int n_ids, int n, int *nb, float *cos) {
    const int D = s->cfg.d_out, S = s->cfg.d_sae;
    float    *u = unit_rows(s);
    const int BLK = 64;
    float    *sim = xmalloc((size_t)BLK * S * sizeof(float));
    float    *q = xmalloc((size_t)BLK * D * sizeof(float));
    for (int b0 = 0; b0 < n_ids; b0 += BLK) {
        int nb_ = n_ids - b0 < BLK ? n_ids - b0 : BLK;
        for (int k = 0; k < nb_; k++)
            memcpy(q + (size_t)k * D, u + (size_t)ids[b0 + k] * D, (size_t)D * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb_, S, D, 1.0f, q, D, u, D, 0.0f,
                    sim, S);
#pragma omp parallel for schedule(static)
        for (int k = 0; k < nb_; k++)
            best_n(sim + (size_t)k * S, S, ids[b0 + k], n, nb + (size_t)(b0 + k) * n,
                   cos + (size_t)(b0 + k) * n, 1);
    }
    free(sim);
    free(q);
    free(u);
}

void sae_neighbors_ref(const struct sae *s, const int *ids, int n_ids, int n, int *nb,
                       float *cos) {
    const int D = s->cfg.d_out, S = s->cfg.d_sae;
    float    *sim = xmalloc((size_t)S * sizeof(float));
    for (int k = 0; k < n_ids; k++) {
        const float *a = s->W_dec + (size_t)ids[k] * D;
        for (int i = 0; i < S; i++) {
            const float *b = s->W_dec + (size_t)i * D;
            double       ab = 0, aa = 0, bb = 0;
            for (int j = 0; j < D; j++) {
                ab += (double)a[j] * (double)b[j];
                aa += (double)a[j] * (double)a[j];
                bb += (double)b[j] * (double)b[j];
            }
            sim[i] = aa > 0 && bb > 0 ? (float)(ab / sqrt(aa * bb)) : 0.0f;
        }
        best_n(sim, S, ids[k], n, nb + (size_t)k * n, cos + (size_t)k * n, 1);
    }
    free(sim);
}

void sae_logit_effects(const struct sae *s, const struct model *m, const int *ids, int n_ids,
                       int n, int *top, float *top_v, int *bot, float *bot_v) {
    sae_logit_effects_at(s, m, NULL, ids, n_ids, n, top, top_v, bot, bot_v);
}

void sae_logit_effects_at(const struct sae *s, const struct model *m, const struct model_hook *h,
                          const int *ids, int n_ids, int n, int *top, float *top_v, int *bot,
                          float *bot_v) {
    const int D = s->cfg.d_out, BLK = 64, V = model_config(m)->vocab_size;
    const int C = model_config(m)->dim, z = h && h->kind == MODEL_HOOK_ATTN_Z;
    /* the ids that are tokens: a padded vocabulary's extra rows are never listed */
    const int Vt = model_vocab_tokens(m);
    float    *q = xmalloc((size_t)BLK * D * sizeof(float));
    float    *r = z ? xmalloc((size_t)BLK * C * sizeof(float)) : q; /* (BLK, C) residual dirs */
    float    *eff = xmalloc((size_t)BLK * V * sizeof(float));      /* (BLK, V) */
    for (int b0 = 0; b0 < n_ids; b0 += BLK) {
        int nb = n_ids - b0 < BLK ? n_ids - b0 : BLK;
        for (int k = 0; k < nb; k++)
            memcpy(q + (size_t)k * D, s->W_dec + (size_t)ids[b0 + k] * D, (size_t)D * sizeof(float));
        /* an attn.hook_z row (NH*HS) reaches the residual stream through the layer's W_O */
        if (z) model_attn_project(m, h->layer, q, nb, r);
        /* one product for the block: the unembedding is read once per 64 features */
        model_unembed(m, r, nb, eff);
#pragma omp parallel for schedule(static)
        for (int k = 0; k < nb; k++) {
            size_t o = (size_t)(b0 + k) * n;
            best_n(eff + (size_t)k * V, Vt, -1, n, top + o, top_v + o, 1);
            best_n(eff + (size_t)k * V, Vt, -1, n, bot + o, bot_v + o, 0);
        }
    }
    free(eff);
    if (r != q) free(r);
    free(q);
}

int sae_hook_has_logits(const struct model *m, const struct model_hook *h) {
    if (sae_hook_in_residual(h)) return 1;
    /* hook_z: linear to the residual through W_O, unless a norm follows it (Gemma 2/3) */
    return h->kind == MODEL_HOOK_ATTN_Z && !model_config(m)->post_norms;
}

double sae_best_pearson(const float *f, const float *h, int N, int H, int *best) {
    double mf = 0, vf = 0;
    *best = -1;
    for (int t = 0; t < N; t++) mf += (double)f[t];
    mf /= N > 0 ? N : 1;
    for (int t = 0; t < N; t++) vf += ((double)f[t] - mf) * ((double)f[t] - mf);
    double bestr = 0;
    for (int j = 0; j < H; j++) {
        double mh = 0, vh = 0, c = 0;
        for (int t = 0; t < N; t++) mh += (double)h[(size_t)t * H + j];
        mh /= N > 0 ? N : 1;
        for (int t = 0; t < N; t++) {
            double d = (double)h[(size_t)t * H + j] - mh;
            vh += d * d;
            c += d * ((double)f[t] - mf);
        }
        double r = vf > 0 && vh > 0 ? c / sqrt(vf * vh) : 0;
        if (*best < 0 || r > bestr) {
            bestr = r;
            *best = j;
        }
    }
    return bestr;
}

int sae_hook_in_residual(const struct model_hook *h) {
    switch (h->kind) {
    case MODEL_HOOK_RESID_PRE:
    case MODEL_HOOK_ATTN_OUT:
    case MODEL_HOOK_RESID_MID:
    case MODEL_HOOK_MLP_OUT:
    case MODEL_HOOK_RESID_POST:
        return 1;
    case MODEL_HOOK_ATTN_Z:
    case MODEL_HOOK_LN2_NORMALIZED:
    case MODEL_HOOK_MLP_IN:
    case MODEL_HOOK_MLP_POST:
        return 0;
    }
    return 0;
}
