/*
 * sae_metrics — accumulators for reconstruction, sparsity, density and CE/KL metrics. See
 * sae_metrics.h for each definition. Sums are in double and in token order (deterministic).
 */
#include "sae/sae_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void sae_metrics_init(struct sae_metrics_acc *a, int d_in, int d_sae) {
    memset(a, 0, sizeof *a);
    a->D = d_in;
    a->S = d_sae;
    a->sum_x = xcalloc((size_t)d_in, sizeof(double));
    a->fire = xcalloc((size_t)d_sae, sizeof(int64_t));
}

void sae_metrics_release(struct sae_metrics_acc *a) {
    free(a->sum_x);
    free(a->fire);
    memset(a, 0, sizeof *a);
}

void sae_metrics_add_recon(struct sae_metrics_acc *a, const float *x, const float *x_hat,
                           const float *f, int n) {
    const int D = a->D, S = a->S;
    if (n <= 0) return;
    double *mean = xcalloc((size_t)D, sizeof(double));
    for (int t = 0; t < n; t++)
        for (int j = 0; j < D; j++) mean[j] += (double)x[(size_t)t * D + j];
    for (int j = 0; j < D; j++) mean[j] /= n;
    double ev_seq = 0;
    for (int t = 0; t < n; t++) {
        const float *x_t = x + (size_t)t * D, *h_t = x_hat + (size_t)t * D;
        const float *f_t = f + (size_t)t * S;
        double       err = 0, x2 = 0, h2 = 0, dot = 0, tss = 0;
        for (int j = 0; j < D; j++) {
            double e = (double)x_t[j] - (double)h_t[j];
            err += e * e;
            x2 += (double)x_t[j] * (double)x_t[j];
            h2 += (double)h_t[j] * (double)h_t[j];
            dot += (double)x_t[j] * (double)h_t[j];
            double c = (double)x_t[j] - mean[j];
            tss += c * c;
            a->sum_x[j] += (double)x_t[j];
        }
        a->sum_err += err;
        a->sum_x2 += x2;
        a->sum_xh2 += h2;
        a->sum_dot += dot;
        a->sum_l2_ratio += x2 > 0 ? sqrt(h2 / x2) : 0;
        ev_seq += tss > 0 ? 1.0 - err / tss : 0;
        int    l0 = 0;
        double l1 = 0;
        for (int i = 0; i < S; i++) {
            if (f_t[i] > 0) {
                l0++;
                l1 += (double)f_t[i];
                a->fire[i]++;
            }
        }
        a->sum_l0 += l0;
        a->sum_l1 += l1;
    }
    a->sum_ev_legacy += ev_seq / n;
    a->n_tok += n;
    a->n_seq++;
    free(mean);
}

/* log-softmax of row (V) into out (double) */
static void log_softmax_d(double *out, const float *row, int V) {
    float mx = row[0];
    for (int v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
    double s = 0;
    for (int v = 0; v < V; v++) s += exp((double)row[v] - (double)mx);
    double lse = (double)mx + log(s);
    for (int v = 0; v < V; v++) out[v] = (double)row[v] - lse;
}

void sae_metrics_add_logits(struct sae_metrics_acc *a, const float *clean, const float *spliced,
                            const float *zero, const int *targets, int T, int V) {
    double *lc = xmalloc((size_t)V * sizeof(double)), *ls = xmalloc((size_t)V * sizeof(double));
    double *lz = xmalloc((size_t)V * sizeof(double));
    for (int t = 0; t + 1 < T; t++) {
        log_softmax_d(lc, clean + (size_t)t * V, V);
        log_softmax_d(ls, spliced + (size_t)t * V, V);
        log_softmax_d(lz, zero + (size_t)t * V, V);
        int y = targets[t + 1];
        a->ce_clean -= lc[y];
        a->ce_sae -= ls[y];
        a->ce_zero -= lz[y];
        double ks = 0, kz = 0;
        for (int v = 0; v < V; v++) {
            double p = exp(lc[v]);
            ks += p * (lc[v] - ls[v]);
            kz += p * (lc[v] - lz[v]);
        }
        a->kl_sae += ks;
        a->kl_zero += kz;
        a->n_pos++;
    }
    free(lc);
    free(ls);
    free(lz);
}

void sae_metrics_finish(const struct sae_metrics_acc *a, struct sae_metrics *m) {
    memset(m, 0, sizeof *m);
    const double n = (double)a->n_tok;
    m->n_tokens = a->n_tok;
    m->n_positions = a->n_pos;
    if (a->n_tok > 0) {
        m->l0 = a->sum_l0 / n;
        m->l1 = a->sum_l1 / n;
        m->mse = a->sum_err / n;
        double mean2 = 0;
        for (int j = 0; j < a->D; j++) mean2 += (a->sum_x[j] / n) * (a->sum_x[j] / n);
        double tss = a->sum_x2 - n * mean2;
        m->explained_variance = tss > 0 ? 1.0 - a->sum_err / tss : 0;
        m->fvu = 1.0 - m->explained_variance;
        m->explained_variance_legacy = a->sum_ev_legacy / (double)a->n_seq;
        m->l2_ratio = a->sum_l2_ratio / n;
        m->rel_recon_bias = a->sum_dot != 0 ? (a->sum_xh2 / n) / (a->sum_dot / n) : 0;
        for (int i = 0; i < a->S; i++) {
            if (a->fire[i] == 0) {
                m->n_dead++;
                continue;
            }
            double lg = log10((double)a->fire[i] / n);
            int    b = (int)floor((lg + 8.0) * 2.0);
            if (b < 0) b = 0;
            if (b >= SAE_DENSITY_BINS) b = SAE_DENSITY_BINS - 1;
            m->density_hist[b]++;
        }
        m->dead_frac = (double)m->n_dead / a->S;
    }
    if (a->n_pos > 0) {
        const double p = (double)a->n_pos;
        m->has_ce = 1;
        m->ce_clean = a->ce_clean / p;
        m->ce_sae = a->ce_sae / p;
        m->ce_zero = a->ce_zero / p;
        double den = m->ce_zero - m->ce_clean;
        m->ce_loss_score = den != 0 ? (m->ce_zero - m->ce_sae) / den : 0;
        m->kl_sae = a->kl_sae / p;
        m->kl_zero = a->kl_zero / p;
        m->kl_div_score = m->kl_zero != 0 ? (m->kl_zero - m->kl_sae) / m->kl_zero : 0;
    }
}

char *sae_metrics_hist_json(const struct sae_metrics *m) {
    struct sbuf sb;
    sbuf_init(&sb);
    sbuf_adds(&sb, "{\"bin_lo\": [");
    for (int b = 0; b < SAE_DENSITY_BINS; b++)
        sbuf_addf(&sb, "%s%.1f", b ? ", " : "", -8.0 + 0.5 * b);
    sbuf_adds(&sb, "], \"count\": [");
    for (int b = 0; b < SAE_DENSITY_BINS; b++)
        sbuf_addf(&sb, "%s%lld", b ? ", " : "", (long long)m->density_hist[b]);
    sbuf_addf(&sb, "], \"dead\": %lld}", (long long)m->n_dead);
    return sbuf_detach(&sb);
}
