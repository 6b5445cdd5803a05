/*
 * sae_analysis — decoder-cosine neighbourhoods, logit effects and feature/neuron Pearson
 * correlations. See sae_analysis.h.
 */
#include "sae/sae_analysis.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/kern.h"
#include "model/model.h"
#include "base/util.h"

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
    const int D = s->cfg.d_in, S = s->cfg.d_sae;
    float    *u = xmalloc((size_t)S * D * sizeof(float));
#pragma omp parallel for schedule(static)
    for (int i = 0; i < S; i++) {
        const float *r = s->W_dec + (size_t)i * D;
        double       n2 = 0;
        for (int j = 0; j < D; j++) n2 += (double)r[j] * r[j];
        float inv = n2 > 0 ? (float)(1.0 / sqrt(n2)) : 0.0f;
        for (int j = 0; j < D; j++) u[(size_t)i * D + j] = r[j] * inv;
    }
    return u;
}

void sae_neighbors(const struct sae *s, const int *ids, int n_ids, int n, int *nb, float *cos) {
    const int D = s->cfg.d_in, S = s->cfg.d_sae;
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
    const int D = s->cfg.d_in, S = s->cfg.d_sae;
    float    *sim = xmalloc((size_t)S * sizeof(float));
    for (int k = 0; k < n_ids; k++) {
        const float *a = s->W_dec + (size_t)ids[k] * D;
        for (int i = 0; i < S; i++) {
            const float *b = s->W_dec + (size_t)i * D;
            double       ab = 0, aa = 0, bb = 0;
            for (int j = 0; j < D; j++) {
                ab += (double)a[j] * b[j];
                aa += (double)a[j] * a[j];
                bb += (double)b[j] * b[j];
            }
            sim[i] = aa > 0 && bb > 0 ? (float)(ab / sqrt(aa * bb)) : 0.0f;
        }
        best_n(sim, S, ids[k], n, nb + (size_t)k * n, cos + (size_t)k * n, 1);
    }
    free(sim);
}

void sae_logit_effects(const struct sae *s, const float *wu, int V, const int *ids, int n_ids,
                       int n, int *top, float *top_v, int *bot, float *bot_v) {
    const int D = s->cfg.d_in, BLK = 64;
    float    *q = xmalloc((size_t)BLK * D * sizeof(float));
    float    *eff = xmalloc((size_t)BLK * V * sizeof(float)); /* (BLK, V) */
    for (int b0 = 0; b0 < n_ids; b0 += BLK) {
        int nb = n_ids - b0 < BLK ? n_ids - b0 : BLK;
        for (int k = 0; k < nb; k++)
            memcpy(q + (size_t)k * D, s->W_dec + (size_t)ids[b0 + k] * D, (size_t)D * sizeof(float));
        /* one product for the block: the unembedding is read once per 64 features */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, V, D, 1.0f, q, D, wu, D, 0.0f,
                    eff, V);
#pragma omp parallel for schedule(static)
        for (int k = 0; k < nb; k++) {
            size_t o = (size_t)(b0 + k) * n;
            best_n(eff + (size_t)k * V, V, -1, n, top + o, top_v + o, 1);
            best_n(eff + (size_t)k * V, V, -1, n, bot + o, bot_v + o, 0);
        }
    }
    free(eff);
    free(q);
}

double sae_best_pearson(const float *f, const float *h, int N, int H, int *best) {
    double mf = 0, vf = 0;
    *best = -1;
    for (int t = 0; t < N; t++) mf += f[t];
    mf /= N > 0 ? N : 1;
    for (int t = 0; t < N; t++) vf += (f[t] - mf) * (f[t] - mf);
    double bestr = 0;
    for (int j = 0; j < H; j++) {
        double mh = 0, vh = 0, c = 0;
        for (int t = 0; t < N; t++) mh += h[(size_t)t * H + j];
        mh /= N > 0 ? N : 1;
        for (int t = 0; t < N; t++) {
            double d = h[(size_t)t * H + j] - mh;
            vh += d * d;
            c += d * (f[t] - mf);
        }
        double r = vf > 0 && vh > 0 ? c / sqrt(vf * vh) : 0;
        if (*best < 0 || r > bestr) {
            bestr = r;
            *best = j;
        }
    }
    return bestr;
}

// ---------------------------------------------------------------- MLP neurons of one layer


int sae_mlp_neurons(struct model *m, int layer, const float *x, int T, float *neurons,
                    float *resid_post, struct ev_err *err) {
    const struct model_config *c = model_config(m);
    struct model_weights      *w = model_weights(m);
    const int C = c->dim, H = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads,
              HS = c->head_dim;
    if (layer < 0 || layer >= c->n_layers)
        return ev_fail(err, EV_EFAIL, "layer %d out of range (0..%d)", layer, c->n_layers - 1);
    const size_t l = (size_t)layer;
    const int    QD = NH * HS, KD = NKV * HS;
    float *h = xmalloc((size_t)T * C * sizeof(float)), *q = xmalloc((size_t)T * QD * sizeof(float));
    float *k = xmalloc((size_t)T * KD * sizeof(float)), *v = xmalloc((size_t)T * KD * sizeof(float));
    float *att = xmalloc((size_t)NH * T * T * sizeof(float));
    float *o = xmalloc((size_t)T * QD * sizeof(float)), *mid = xmalloc((size_t)T * C * sizeof(float));
    float *up = xmalloc((size_t)T * H * sizeof(float));
    const int ln = c->norm == MODEL_NORM_LAYER;
    if (ln)
        kern_layernorm(h, NULL, NULL, x, w->ln1_w + l * C, w->ln1_b + l * C, T, C, c->norm_eps);
    else
        kern_rmsnorm(h, NULL, x, w->ln1_w + l * C, T, C, c->norm_eps);
    kern_matmul(q, h, w->wq + l * QD * C, c->qkv_bias ? w->bq + l * QD : NULL, T, C, QD);
    kern_matmul(k, h, w->wk + l * KD * C, c->qkv_bias ? w->bk + l * KD : NULL, T, C, KD);
    kern_matmul(v, h, w->wv + l * KD * C, c->qkv_bias ? w->bv + l * KD : NULL, T, C, KD);
    if (c->rope != MODEL_ROPE_NONE) {
        int half = c->rope == MODEL_ROPE_HALF;
        kern_rope(q, T, QD, 0, NH, HS, c->rope_theta, half, 0);
        kern_rope(k, T, KD, 0, NKV, HS, c->rope_theta, half, 0);
    }
    kern_attention(o, att, q, k, v, T, 0, NH, NKV, HS, T);
    kern_matmul(mid, o, w->wo + l * C * QD, c->out_bias ? w->bo + l * C : NULL, T, QD, C);
    for (size_t i = 0; i < (size_t)T * C; i++) mid[i] += x[i];
    if (ln)
        kern_layernorm(h, NULL, NULL, mid, w->ln2_w + l * C, w->ln2_b + l * C, T, C, c->norm_eps);
    else
        kern_rmsnorm(h, NULL, mid, w->ln2_w + l * C, T, C, c->norm_eps);
    kern_matmul(neurons, h, w->w1 + l * H * C, c->out_bias ? w->b1 + l * H : NULL, T, C, H);
    if (c->act == MODEL_ACT_SWIGLU) {
        kern_matmul(up, h, w->w3 + l * H * C, NULL, T, C, H);
        kern_swiglu(neurons, neurons, up, (size_t)T * H);
    } else {
        kern_gelu(neurons, neurons, (size_t)T * H);
    }
    if (resid_post) {
        kern_matmul(resid_post, neurons, w->w2 + l * C * H, c->out_bias ? w->b2 + l * C : NULL, T,
                    H, C);
        for (size_t i = 0; i < (size_t)T * C; i++) resid_post[i] += mid[i];
    }
    free(h); free(q); free(k); free(v); free(att); free(o); free(mid); free(up);
    return EV_OK;
}
