/*
 * sae_train — the SAE training step (sparse backward), Adam, schedules, dead-feature tracking
 * and atomic checkpoints. See sae_train.h.
 */
#include "sae/sae_train.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"

struct sae_train_params sae_train_default_params(void) {
    struct sae_train_params p;
    memset(&p, 0, sizeof p);
    p.d_sae = 512;
    p.l1 = 5.0;
    p.lr = 1e-3;
    p.beta1 = 0.9;
    p.beta2 = 0.999;
    p.eps = 1e-8;
    p.batch = 1024;
    p.n_tokens = 1 << 20;
    p.l1_warmup_frac = 0.05;
    p.lr_decay_frac = 0.2;
    p.norm_tokens = 65536;
    p.dead_window = 100000;
    p.init_norm = 0.1;
    p.shuffle_tokens = 65536;
    p.seed = 0;
    p.log_every = 100;
    p.ckpt_every = 0;
    return p;
}

// ---------------------------------------------------------------- parameters and workspace

/* Training layout: one arena [W_encT (S, D) | b_enc (S) | W_dec (S, D) | b_dec (D)]. */
struct tparams {
    float *arena;
    float *W_encT; /* (S, D) */
    float *b_enc;  /* (S) */
    float *W_dec;  /* (S, D) */
    float *b_dec;  /* (D) */
    size_t n;
    int    D, S;
};

static void tparams_init(struct tparams *p, int D, int S) {
    p->D = D;
    p->S = S;
    p->n = 2 * (size_t)D * S + (size_t)S + (size_t)D;
    p->arena = xcalloc(p->n, sizeof(float));
    p->W_encT = p->arena;
    p->b_enc = p->W_encT + (size_t)S * D;
    p->W_dec = p->b_enc + S;
    p->b_dec = p->W_dec + (size_t)S * D;
}

static void tparams_release(struct tparams *p) {
    free(p->arena);
    p->arena = NULL;
}

struct workspace {
    int    B, D, S;
    float *xc;      /* (B, D) x - b_dec */
    float *F;       /* (B, S) pre-activations, then f */
    float *dF;      /* (B, S) dense path: d loss / d pre; NULL until needed */
    float *dx;      /* (B, D) d loss / d x_hat */
    float *nrm;     /* (S) decoder row norms */
    double *row_mse, *row_l1, *row_var; /* (B) */
    int   *row_ptr; /* (B + 1) CSR of f */
    int   *col_ptr; /* (S + 1) CSC of f */
    int   *col_cnt; /* (S) */
    int   *idx;     /* (nnz) latent index, CSR order */
    float *val;     /* (nnz) f */
    float *dval;    /* (nnz) d loss / d pre */
    int   *c_row;   /* (nnz) token, CSC order */
    int   *c_nz;    /* (nnz) position in CSR, CSC order */
    size_t cap;
};

static void ws_init(struct workspace *w, int B, int D, int S) {
    memset(w, 0, sizeof *w);
    w->B = B;
    w->D = D;
    w->S = S;
    w->xc = xmalloc((size_t)B * D * sizeof(float));
    w->F = xmalloc((size_t)B * S * sizeof(float));
    w->dx = xmalloc((size_t)B * D * sizeof(float));
    w->nrm = xmalloc((size_t)S * sizeof(float));
    w->row_mse = xmalloc((size_t)B * sizeof(double));
    w->row_l1 = xmalloc((size_t)B * sizeof(double));
    w->row_var = xmalloc((size_t)B * sizeof(double));
    w->row_ptr = xmalloc(((size_t)B + 1) * sizeof(int));
    w->col_ptr = xmalloc(((size_t)S + 1) * sizeof(int));
    w->col_cnt = xmalloc((size_t)S * sizeof(int));
}

static void ws_reserve(struct workspace *w, size_t nnz) {
    if (nnz <= w->cap) return;
    size_t cap = nnz + nnz / 2 + 16;
    w->idx = xrealloc(w->idx, cap * sizeof(int));
    w->val = xrealloc(w->val, cap * sizeof(float));
    w->dval = xrealloc(w->dval, cap * sizeof(float));
    w->c_row = xrealloc(w->c_row, cap * sizeof(int));
    w->c_nz = xrealloc(w->c_nz, cap * sizeof(int));
    w->cap = cap;
}

static void ws_release(struct workspace *w) {
    free(w->xc); free(w->F); free(w->dF); free(w->dx); free(w->nrm);
    free(w->row_mse); free(w->row_l1); free(w->row_var);
    free(w->row_ptr); free(w->col_ptr); free(w->col_cnt);
    free(w->idx); free(w->val); free(w->dval); free(w->c_row); free(w->c_nz);
    memset(w, 0, sizeof *w);
}

// ---------------------------------------------------------------- the step

/* Dot product with eight partial sums in a fixed order: vectorisable without -ffast-math and
 * deterministic. */
static inline float dot8(const float *restrict a, const float *restrict b, int n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int   j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[j + k] * b[j + k];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; j < n; j++) s += a[j] * b[j];
    return s;
}

/* Row b's reconstruction d (D) becomes d/dx_hat of the batch's mean squared error against x
 * (2 (x_hat - x) / B); returns the row's squared error. */
static inline double recon_grad(float *restrict d, const float *restrict x, int D, int B) {
    double mse = 0;
    for (int j = 0; j < D; j++) {
        float e = d[j] - x[j];
        mse += (double)e * (double)e;
        d[j] = 2.0f * e / (float)B;
    }
    return mse;
}

/* Above this density of f (non-zeros / (B * S)) the step uses dense BLAS products. */
#define SAE_DENSE_DENSITY 0.05

/*
 * Forward and backward for one batch x (B, D) of normalised inputs. Writes the gradient into
 * G (same layout as P) and the statistics into st. Every sum is taken in a fixed order, so
 * the result does not depend on thread scheduling.
 */
static void loss_backward(const struct tparams *P, struct tparams *G, const float *x, int B,
                          double lambda, struct workspace *w, struct sae_step_stats *st,
                          int path) {
    const int D = P->D, S = P->S;
    const float lb = (float)(lambda / B);

    // encode: xc = x - b_dec; F = xc W_encT^T + b_enc
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *x_b = x + (size_t)b * D;
        float       *c_b = w->xc + (size_t)b * D;
        for (int j = 0; j < D; j++) c_b[j] = x_b[j] - P->b_dec[j];
        memcpy(w->F + (size_t)b * S, P->b_enc, (size_t)S * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, S, D, 1.0f, w->xc, D, P->W_encT, D,
                1.0f, w->F, S);

    // ReLU and the CSR of f
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *f_b = w->F + (size_t)b * S;
        int    c = 0;
        for (int i = 0; i < S; i++) {
            if (f_b[i] > 0.0f) c++;
            else f_b[i] = 0.0f;
        }
        w->row_ptr[b + 1] = c;
    }
    w->row_ptr[0] = 0;
    for (int b = 0; b < B; b++) w->row_ptr[b + 1] += w->row_ptr[b];
    const size_t nnz = (size_t)w->row_ptr[B];
    const int    dense = path == SAE_GRAD_DENSE ||
                      (path == SAE_GRAD_AUTO && (double)nnz > SAE_DENSE_DENSITY * B * S);
    if (!dense) ws_reserve(w, nnz); /* the CSR/CSC of f: sparse path only */
#pragma omp parallel for schedule(static)
    for (int i = 0; i < S; i++) {
        const float *r = P->W_dec + (size_t)i * D;
        double       s2 = 0;
        for (int j = 0; j < D; j++) s2 += (double)r[j] * (double)r[j];
        w->nrm[i] = (float)sqrt(s2);
    }

    if (dense) {
        // x_hat = f W_dec + b_dec by sgemm; then the error, and d/dpre = (dx W_dec^T + lb nrm)
        // masked by f > 0, by sgemm too
        if (!w->dF) w->dF = xmalloc((size_t)B * S * sizeof(float));
#pragma omp parallel for schedule(static)
        for (int b = 0; b < B; b++) memcpy(w->dx + (size_t)b * D, P->b_dec, (size_t)D * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, D, S, 1.0f, w->F, S, P->W_dec, D,
                    1.0f, w->dx, D);
#pragma omp parallel for schedule(static)
        for (int b = 0; b < B; b++) {
            const float *f_b = w->F + (size_t)b * S;
            const float *x_b = x + (size_t)b * D;
            float       *d_b = w->dx + (size_t)b * D;
            double       l1 = dot8(f_b, w->nrm, S); /* no CSR needed here */
            w->row_mse[b] = recon_grad(d_b, x_b, D, B);
            w->row_l1[b] = l1;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, S, D, 1.0f, w->dx, D, P->W_dec, D,
                    0.0f, w->dF, S);
#pragma omp parallel for schedule(static)
        for (int b = 0; b < B; b++) {
            const float *f_b = w->F + (size_t)b * S;
            float       *g_b = w->dF + (size_t)b * S;
            for (int i = 0; i < S; i++) g_b[i] = f_b[i] > 0.0f ? g_b[i] + lb * w->nrm[i] : 0.0f;
        }
    } else {
        // decode, the error, d/dx_hat and d/dpre at the non-zeros
    #pragma omp parallel for schedule(dynamic, 16)
        for (int b = 0; b < B; b++) {
            const float *f_b = w->F + (size_t)b * S;
            const float *x_b = x + (size_t)b * D;
            float       *d_b = w->dx + (size_t)b * D;
            int          k = w->row_ptr[b];
            double       l1 = 0;
            memcpy(d_b, P->b_dec, (size_t)D * sizeof(float));
            for (int i = 0; i < S; i++) {
                if (f_b[i] == 0.0f) continue;
                w->idx[k] = i;
                w->val[k] = f_b[i];
                k++;
                l1 += (double)f_b[i] * (double)w->nrm[i];
                const float *r = P->W_dec + (size_t)i * D;
                const float  a = f_b[i];
                for (int j = 0; j < D; j++) d_b[j] += a * r[j];
            }
            w->row_mse[b] = recon_grad(d_b, x_b, D, B);
            w->row_l1[b] = l1;
            for (int q = w->row_ptr[b]; q < w->row_ptr[b + 1]; q++) {
                const float *r = P->W_dec + (size_t)w->idx[q] * D;
                w->dval[q] = dot8(d_b, r, D) + lb * w->nrm[w->idx[q]];
            }
        }
    }

    // statistics (fixed-order sums)
    double mse = 0, l1 = 0, var = 0;
    {
        double *mean = xcalloc((size_t)D, sizeof(double));
        for (int b = 0; b < B; b++)
            for (int j = 0; j < D; j++) mean[j] += (double)x[(size_t)b * D + j];
        for (int j = 0; j < D; j++) mean[j] /= B;
        for (int b = 0; b < B; b++) {
            mse += w->row_mse[b];
            l1 += w->row_l1[b];
            for (int j = 0; j < D; j++) {
                double e = (double)x[(size_t)b * D + j] - mean[j];
                var += e * e;
            }
        }
        free(mean);
    }
    st->mse = mse / B;
    st->l1 = l1 / B;
    st->loss = st->mse + lambda * st->l1;
    st->l0 = (double)nnz / B;
    st->fvu = var > 0 ? mse / var : 0;

    // CSC (serial, in CSR order: deterministic); the dense path counts firings below instead
    memset(w->col_cnt, 0, (size_t)S * sizeof(int));
    if (!dense) {
        for (size_t q = 0; q < nnz; q++) w->col_cnt[w->idx[q]]++;
        w->col_ptr[0] = 0;
        for (int i = 0; i < S; i++) w->col_ptr[i + 1] = w->col_ptr[i] + w->col_cnt[i];
        {
            int *fill = xmalloc((size_t)S * sizeof(int));
            memcpy(fill, w->col_ptr, (size_t)S * sizeof(int));
            for (int b = 0; b < B; b++)
                for (int q = w->row_ptr[b]; q < w->row_ptr[b + 1]; q++) {
                    int p = fill[w->idx[q]]++;
                    w->c_row[p] = b;
                    w->c_nz[p] = q;
                }
            free(fill);
        }
    }

    if (dense) {
        // G.W_encT = dpre^T xc, G.W_dec = f^T dx (+ the norm term), G.b_enc = column sums
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, D, B, 1.0f, w->dF, S, w->xc, D,
                    0.0f, G->W_encT, D);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, D, B, 1.0f, w->F, S, w->dx, D,
                    0.0f, G->W_dec, D);
        // column sums row by row (contiguous), in chunks of latents per thread
        float *fsum = xcalloc((size_t)S, sizeof(float));
#pragma omp parallel for schedule(static)
        for (int i0 = 0; i0 < S; i0 += 256) {
            const int i1 = i0 + 256 < S ? i0 + 256 : S;
            for (int i = i0; i < i1; i++) G->b_enc[i] = 0;
            for (int b = 0; b < B; b++) {
                const float *g_b = w->dF + (size_t)b * S, *f_b = w->F + (size_t)b * S;
                for (int i = i0; i < i1; i++) {
                    G->b_enc[i] += g_b[i];
                    fsum[i] += f_b[i];
                    w->col_cnt[i] += f_b[i] > 0.0f;
                }
            }
            for (int i = i0; i < i1; i++) {
                if (!(fsum[i] > 0 && w->nrm[i] > 0)) continue;
                const float  c = lb * fsum[i] / w->nrm[i];
                const float *r = P->W_dec + (size_t)i * D;
                float       *gd = G->W_dec + (size_t)i * D;
                for (int j = 0; j < D; j++) gd[j] += c * r[j];
            }
        }
        free(fsum);
    } else {
        // per-feature gradients: each row of G written by one thread
    #pragma omp parallel for schedule(dynamic, 32)
        for (int i = 0; i < S; i++) {
            float *ge = G->W_encT + (size_t)i * D;
            float *gd = G->W_dec + (size_t)i * D;
            memset(ge, 0, (size_t)D * sizeof(float));
            memset(gd, 0, (size_t)D * sizeof(float));
            float gb = 0, fsum = 0;
            for (int p = w->col_ptr[i]; p < w->col_ptr[i + 1]; p++) {
                const int    b = w->c_row[p], q = w->c_nz[p];
                const float  dv = w->dval[q], fv = w->val[q];
                const float *c_b = w->xc + (size_t)b * D;
                const float *d_b = w->dx + (size_t)b * D;
                gb += dv;
                fsum += fv;
                for (int j = 0; j < D; j++) {
                    ge[j] += dv * c_b[j];
                    gd[j] += fv * d_b[j];
                }
            }
            G->b_enc[i] = gb;
            if (fsum > 0 && w->nrm[i] > 0) {
                const float  c = lb * fsum / w->nrm[i];
                const float *r = P->W_dec + (size_t)i * D;
                for (int j = 0; j < D; j++) gd[j] += c * r[j];
            }
        }
    }

    // b_dec: from the decoder, sum of dx; from the input shift, -W_enc db_enc
    for (int j = 0; j < D; j++) {
        double s = 0;
        for (int b = 0; b < B; b++) s += (double)w->dx[(size_t)b * D + j];
        G->b_dec[j] = (float)s;
    }
    cblas_sgemv(CblasRowMajor, CblasTrans, S, D, -1.0f, P->W_encT, D, G->b_enc, 1, 1.0f,
                G->b_dec, 1);
}

double sae_loss_grad(const struct sae *s, const float *x, int B, double l1, struct sae *grad,
                     struct sae_step_stats *st, enum sae_grad_path path) {
    const int D = s->cfg.d_in, S = s->cfg.d_sae;
    EV_ASSERT(s->cfg.arch == SAE_ARCH_STANDARD && s->cfg.apply_b_dec_to_input);
    EV_ASSERT(grad->cfg.d_in == D && grad->cfg.d_sae == S);
    struct tparams   P, G;
    struct workspace w;
    struct sae_step_stats tmp;
    tparams_init(&P, D, S);
    tparams_init(&G, D, S);
    ws_init(&w, B, D, S);
    for (int j = 0; j < D; j++)
        for (int i = 0; i < S; i++) P.W_encT[(size_t)i * D + j] = s->W_enc[(size_t)j * S + i];
    memcpy(P.b_enc, s->b_enc, (size_t)S * sizeof(float));
    memcpy(P.W_dec, s->W_dec, (size_t)S * D * sizeof(float));
    memcpy(P.b_dec, s->b_dec, (size_t)D * sizeof(float));
    loss_backward(&P, &G, x, B, l1, &w, st ? st : &tmp, (int)path);
    for (int j = 0; j < D; j++)
        for (int i = 0; i < S; i++) grad->W_enc[(size_t)j * S + i] = G.W_encT[(size_t)i * D + j];
    memcpy(grad->b_enc, G.b_enc, (size_t)S * sizeof(float));
    memcpy(grad->W_dec, G.W_dec, (size_t)S * D * sizeof(float));
    memcpy(grad->b_dec, G.b_dec, (size_t)D * sizeof(float));
    double loss = st ? st->loss : tmp.loss;
    ws_release(&w);
    tparams_release(&P);
    tparams_release(&G);
    return loss;
}

double sae_dead_fraction(const int64_t *last_fired, int d_sae, int64_t tokens_seen,
                         int64_t window) {
    if (d_sae <= 0) return 0;
    int dead = 0;
    for (int i = 0; i < d_sae; i++)
        dead += last_fired[i] == 0 || tokens_seen - last_fired[i] >= window;
    return (double)dead / d_sae;
}

// ---------------------------------------------------------------- Adam

static void adam_update(float *p, const float *g, float *m, float *v, size_t n, double lr,
                        double b1, double b2, double eps, int64_t t) {
    const float bc1 = (float)(1.0 - pow(b1, (double)t)), bc2 = (float)(1.0 - pow(b2, (double)t));
    const float fb1 = (float)b1, fb2 = (float)b2, flr = (float)lr, feps = (float)eps;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float mi = fb1 * m[i] + (1.0f - fb1) * g[i];
        float vi = fb2 * v[i] + (1.0f - fb2) * g[i] * g[i];
        m[i] = mi;
        v[i] = vi;
        p[i] -= flr * (mi / bc1) / (sqrtf(vi / bc2) + feps);
    }
}

// ---------------------------------------------------------------- checkpoints

#define CKPT_MAGIC "EVSAECK1"

struct ckpt_head {
    char    magic[8];
    int64_t D, S, step, n_params;
    double  norm_factor;
    char    cfg_hash[64];
};

static void config_hash(const struct sae_train_params *p, const struct acts *a, char hex[65]) {
    char *s = xasprintf("v1 d_in=%d n=%lld d_sae=%d l1=%.17g lr=%.17g b1=%.17g b2=%.17g "
                        "eps=%.17g batch=%d tokens=%lld warm=%.17g decay=%.17g norm=%lld "
                        "dead=%lld init=%.17g shuf=%lld seed=%llu",
                        acts_d_in(a), (long long)acts_n_tokens(a), p->d_sae, p->l1, p->lr,
                        p->beta1, p->beta2, p->eps, p->batch, (long long)p->n_tokens,
                        p->l1_warmup_frac, p->lr_decay_frac, (long long)p->norm_tokens,
                        (long long)p->dead_window, p->init_norm, (long long)p->shuffle_tokens,
                        (unsigned long long)p->seed);
    sha256_hex(s, strlen(s), hex);
    free(s);
}

static int ckpt_save(const char *path, const struct ckpt_head *h, const struct tparams *P,
                     const float *m, const float *v, const int64_t *last, struct ev_err *err) {
    size_t n = P->n, S = (size_t)P->S;
    size_t len = sizeof *h + 3 * n * sizeof(float) + S * sizeof(int64_t);
    char  *buf = xmalloc(len), *q = buf;
    memcpy(q, h, sizeof *h); q += sizeof *h;
    memcpy(q, P->arena, n * sizeof(float)); q += n * sizeof(float);
    memcpy(q, m, n * sizeof(float)); q += n * sizeof(float);
    memcpy(q, v, n * sizeof(float)); q += n * sizeof(float);
    memcpy(q, last, S * sizeof(int64_t));
    int rc = file_write_atomic(path, buf, len, err);
    free(buf);
    return rc;
}

/* Returns EV_OK with *found = 0 when there is no checkpoint at path. */
static int ckpt_load(const char *path, const char *want_hash, struct ckpt_head *h,
                     struct tparams *P, float *m, float *v, int64_t *last, int *found,
                     struct ev_err *err) {
    char  *buf = NULL;
    size_t len = 0;
    int    rc;
    *found = 0;
    if (!path_exists(path)) return EV_OK;
    if ((rc = file_read_all(path, &buf, &len, err))) return rc;
    size_t n = P->n, S = (size_t)P->S;
    size_t want = sizeof *h + 3 * n * sizeof(float) + S * sizeof(int64_t);
    rc = EV_EFAIL;
    if (len < sizeof *h || memcmp(buf, CKPT_MAGIC, 8) != 0) {
        ev_fail(err, EV_EFAIL, "%s: not an evalrun SAE checkpoint (bad magic) ---> HINT: "
                               "delete it to start afresh", path);
        goto out;
    }
    memcpy(h, buf, sizeof *h);
    if (memcmp(h->cfg_hash, want_hash, 64) != 0 || h->D != P->D || h->S != P->S ||
        (size_t)h->n_params != n) {
        ev_fail(err, EV_EFAIL, "%s: checkpoint of a different training configuration ---> HINT: "
                               "rerun with the same flags and data, or delete it", path);
        goto out;
    }
    if (len != want) {
        ev_fail(err, EV_EFAIL, "%s: checkpoint is %zu bytes, expected %zu", path, len, want);
        goto out;
    }
    const char *q = buf + sizeof *h;
    memcpy(P->arena, q, n * sizeof(float)); q += n * sizeof(float);
    memcpy(m, q, n * sizeof(float)); q += n * sizeof(float);
    memcpy(v, q, n * sizeof(float)); q += n * sizeof(float);
    memcpy(last, q, S * sizeof(int64_t));
    if (sae_count_nonfinite(P->arena, n)) {
        ev_fail(err, EV_EFAIL, "%s: checkpoint holds NaN/Inf parameters", path);
        goto out;
    }
    *found = 1;
    rc = EV_OK;
out:
    free(buf);
    return rc;
}

// ---------------------------------------------------------------- the loop

int sae_train_run(const struct sae_train_params *p, const struct sae_config *base,
                  struct acts *acts, const char *ckpt_path, sae_train_log_fn *log_fn,
                  void *log_ctx, struct sae **out, double *norm_factor,
                  struct sae_train_log *final_log, struct ev_err *err) {
    const int     D = acts_d_in(acts), S = p->d_sae, B = p->batch;
    const int64_t n_steps = p->n_tokens / B;
    struct tparams   P = {0}, G = {0};
    struct workspace w;
    float           *m = NULL, *v = NULL, *x = NULL;
    int64_t         *last = NULL;
    struct ckpt_head h;
    char             hash[65];
    int              rc = EV_OK, found = 0;
    struct sae_train_log lg;
    memset(&lg, 0, sizeof lg);
    memset(&w, 0, sizeof w);
    *out = NULL;
    if (base->d_in != D)
        return ev_fail(err, EV_EFAIL, "the activations have width %d but the SAE's d_in is %d", D,
                       base->d_in);
    if (n_steps < 1)
        return ev_fail(err, EV_EUSAGE, "--tokens %lld is less than one batch of %d",
                       (long long)p->n_tokens, B);

    tparams_init(&P, D, S);
    tparams_init(&G, D, S);
    ws_init(&w, B, D, S);
    m = xcalloc(P.n, sizeof(float));
    v = xcalloc(P.n, sizeof(float));
    last = xcalloc((size_t)S, sizeof(int64_t));
    x = xmalloc((size_t)B * D * sizeof(float));
    config_hash(p, acts, hash);

    memset(&h, 0, sizeof h);
    if (ckpt_path && (rc = ckpt_load(ckpt_path, hash, &h, &P, m, v, last, &found, err)))
        goto out;
    if (!found) {
        double mn = acts_mean_norm(acts, p->norm_tokens);
        if (!(mn > 0)) {
            rc = ev_fail(err, EV_EFAIL, "the activations are all zero: cannot normalise them");
            goto out;
        }
        memcpy(h.magic, CKPT_MAGIC, 8);
        h.D = D;
        h.S = S;
        h.n_params = (int64_t)P.n;
        h.norm_factor = sqrt((double)D) / mn;
        memcpy(h.cfg_hash, hash, 64);
        struct rng r;
        rng_seed(&r, p->seed ^ 0x5ae5ae5aULL);
        for (int i = 0; i < S; i++) {
            float *row = P.W_dec + (size_t)i * D;
            double s2 = 0;
            for (int j = 0; j < D; j++) {
                row[j] = rng_normal(&r);
                s2 += (double)row[j] * (double)row[j];
            }
            float sc = (float)(p->init_norm / sqrt(s2 > 0 ? s2 : 1));
            for (int j = 0; j < D; j++) row[j] *= sc;
        }
        memcpy(P.W_encT, P.W_dec, (size_t)S * D * sizeof(float)); /* W_enc = W_dec^T */
    } else {
        ev_info("resuming SAE training from %s at step %lld of %lld", ckpt_path,
                (long long)h.step, (long long)n_steps);
    }
    const float s = (float)h.norm_factor;
    acts_stream_start(acts, p->seed, p->shuffle_tokens);
    acts_stream_skip(acts, h.step * (int64_t)B);

    double t0 = now_seconds();
    for (int64_t step = h.step; step < n_steps; step++) {
        if (ev_interrupted() || (p->stop_after > 0 && step == p->stop_after)) {
            h.step = step;
            if (ckpt_path && (rc = ckpt_save(ckpt_path, &h, &P, m, v, last, err))) goto out;
            rc = ev_fail(err, EV_EINTR, "interrupted at step %lld of %lld%s", (long long)step,
                         (long long)n_steps, ckpt_path ? "; rerun the same command to resume" : "");
            goto out;
        }
        acts_stream_next(acts, x, B);
        for (size_t k = 0; k < (size_t)B * D; k++) x[k] *= s;
        double warm = p->l1_warmup_frac * (double)n_steps;
        double lambda = p->l1 * (warm > 0 ? fmin(1.0, (double)(step + 1) / warm) : 1.0);
        double decay_start = (1.0 - p->lr_decay_frac) * (double)n_steps;
        double lr = p->lr;
        if ((double)step >= decay_start && p->lr_decay_frac > 0)
            lr = p->lr * ((double)n_steps - (double)step) / ((double)n_steps - decay_start);
        struct sae_step_stats st;
        loss_backward(&P, &G, x, B, lambda, &w, &st, SAE_GRAD_AUTO);
        adam_update(P.arena, G.arena, m, v, P.n, lr, p->beta1, p->beta2, p->eps, step + 1);
        int64_t seen = (step + 1) * (int64_t)B;
        for (int i = 0; i < S; i++)
            if (w.col_cnt[i] > 0) last[i] = seen;
        if (!isfinite(st.loss)) {
            rc = ev_fail(err, EV_EFAIL, "training diverged at step %lld (loss is not finite): "
                                        "lower --lr or --l1", (long long)step);
            goto out;
        }
        lg.step = step + 1;
        lg.n_steps = n_steps;
        lg.tokens = seen;
        lg.lambda = lambda;
        lg.lr = lr;
        lg.st = st;
        lg.elapsed_s = now_seconds() - t0;
        lg.dead_frac = sae_dead_fraction(last, S, seen, p->dead_window);
        if (log_fn && p->log_every > 0 && ((step + 1) % p->log_every == 0 || step + 1 == n_steps))
            log_fn(log_ctx, &lg);
        if (ckpt_path && p->ckpt_every > 0 && (step + 1) % p->ckpt_every == 0 &&
            step + 1 < n_steps) {
            h.step = step + 1;
            if ((rc = ckpt_save(ckpt_path, &h, &P, m, v, last, err))) goto out;
        }
    }
    if (final_log) *final_log = lg;

    struct sae_config cfg = *base;
    cfg.d_sae = S;
    cfg.arch = SAE_ARCH_STANDARD;
    cfg.apply_b_dec_to_input = 1;
    cfg.norm_factor = 1.0;
    struct sae *sae = sae_new(&cfg);
    for (int j = 0; j < D; j++)
        for (int i = 0; i < S; i++) sae->W_enc[(size_t)j * S + i] = P.W_encT[(size_t)i * D + j];
    memcpy(sae->b_enc, P.b_enc, (size_t)S * sizeof(float));
    memcpy(sae->W_dec, P.W_dec, (size_t)S * D * sizeof(float));
    memcpy(sae->b_dec, P.b_dec, (size_t)D * sizeof(float));
    *out = sae;
    *norm_factor = h.norm_factor;
    rc = EV_OK;
out:
    ws_release(&w);
    tparams_release(&P);
    tparams_release(&G);
    free(m);
    free(v);
    free(last);
    free(x);
    return rc;
}

double sae_train_bench(const struct sae *init, const float *x, int B, int steps, double l1,
                       double *l0) {
    const int D = init->cfg.d_in, S = init->cfg.d_sae;
    struct tparams   P, G;
    struct workspace w;
    struct sae_step_stats st;
    tparams_init(&P, D, S);
    tparams_init(&G, D, S);
    ws_init(&w, B, D, S);
    float *m = xcalloc(P.n, sizeof(float)), *v = xcalloc(P.n, sizeof(float));
    for (int j = 0; j < D; j++)
        for (int i = 0; i < S; i++) P.W_encT[(size_t)i * D + j] = init->W_enc[(size_t)j * S + i];
    memcpy(P.b_enc, init->b_enc, (size_t)S * sizeof(float));
    memcpy(P.W_dec, init->W_dec, (size_t)S * D * sizeof(float));
    memcpy(P.b_dec, init->b_dec, (size_t)D * sizeof(float));
    double t0 = 0, sum_l0 = 0;
    for (int k = 0; k <= steps; k++) {
        if (k == 1) t0 = now_seconds(); /* step 0 warms up */
        loss_backward(&P, &G, x, B, l1, &w, &st, SAE_GRAD_AUTO);
        adam_update(P.arena, G.arena, m, v, P.n, 1e-4, 0.9, 0.999, 1e-8, k + 1);
        if (k) sum_l0 += st.l0;
    }
    double per = (now_seconds() - t0) / steps;
    *l0 = sum_l0 / steps;
    free(m);
    free(v);
    ws_release(&w);
    tparams_release(&P);
    tparams_release(&G);
    return per;
}
