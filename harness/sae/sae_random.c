/*
 * sae_random — the random-direction control of an SAE (see sae_random.h).
 */
#include "sae/sae_random.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 512 /* tokens encoded at once */

double sae_random_fire_counts(const struct sae *s, const float *x, int n, int64_t *counts) {
    const int D = s->cfg.d_in, S = s->cfg.d_sae;
    float    *f = xmalloc((size_t)CHUNK * (size_t)S * sizeof *f); // (CHUNK, d_sae)
    int64_t   total = 0;
    memset(counts, 0, (size_t)S * sizeof *counts);
    for (int t0 = 0; t0 < n; t0 += CHUNK) {
        int m = n - t0 < CHUNK ? n - t0 : CHUNK;
        sae_encode(s, f, x + (size_t)t0 * D, m);
        for (int t = 0; t < m; t++) {
            const float *ft = f + (size_t)t * S;
            for (int i = 0; i < S; i++)
                if (ft[i] > 0) counts[i]++;
        }
    }
    for (int i = 0; i < S; i++) total += counts[i];
    free(f);
    return n > 0 ? (double)total / n : 0;
}

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

int sae_random_check(const struct sae_config *c, struct ev_err *err) {
    if (c->d_out == c->d_in) return EV_OK;
    return ev_fail(err, EV_EFAIL, "random-sae control: the transcoder reads %s (%d wide) and "
                                  "writes %s (%d wide): a random direction cannot be both a "
                                  "decoder row and an encoder column when the widths differ",
                   c->hook_name, c->d_in, *c->hook_name_out ? c->hook_name_out : "its output",
                   c->d_out);
}

int sae_random_control(const struct sae *real, const float *x, const float *x_ctl, int n,
                       uint64_t seed, struct sae **out, struct ev_err *err) {
    const struct sae_config *rc = &real->cfg;
    *out = NULL;
    int crc = sae_random_check(rc, err);
    if (crc != EV_OK) return crc;
    EV_ASSERT(n >= 1);
    const int         D = rc->d_in, S = rc->d_sae;
    struct sae_config cfg = *rc;
    cfg.arch = SAE_ARCH_STANDARD;
    cfg.k = 0;
    cfg.skip = 0;
    cfg.norm_factor = 1; /* the control is calibrated on x as given: nothing to rescale */
    cfg.folded_norm_factor = 1;
    snprintf(cfg.normalize, sizeof cfg.normalize, "none");
    struct sae *r = sae_new(&cfg);
    int64_t    *cnt = xcalloc((size_t)S, sizeof *cnt);
    double     *p = xmalloc((size_t)n * sizeof *p);  // (n): one latent's pre-activations
    double     *xc = xmalloc((size_t)n * D * sizeof *xc); // (n, d_in): x - b_dec (or x)
    struct rng  g;
    sae_random_fire_counts(real, x, n, cnt);
    memcpy(r->b_dec, real->b_dec, (size_t)D * sizeof *r->b_dec);
    const float *xs = x_ctl ? x_ctl : x;
    for (size_t t = 0; t < (size_t)n; t++)
        for (int j = 0; j < D; j++)
            xc[t * D + j] = (double)xs[t * D + j] - (rc->apply_b_dec_to_input ? (double)real->b_dec[j] : 0);
    rng_seed(&g, seed);
    for (int i = 0; i < S; i++) {
        float *d = r->W_dec + (size_t)i * D;
        double nn = 0;
        do {
            nn = 0;
            for (int j = 0; j < D; j++) {
                d[j] = rng_normal(&g);
                nn += (double)d[j] * (double)d[j];
            }
        } while (nn == 0);
        double inv = 1.0 / sqrt(nn);
        for (int j = 0; j < D; j++) {
            d[j] = (float)((double)d[j] * inv);
            r->W_enc[(size_t)j * S + i] = d[j];
        }
        for (int t = 0; t < n; t++) {
            const double *xt = xc + (size_t)t * D;
            double        a = 0;
            for (int j = 0; j < D; j++) a += xt[j] * (double)d[j];
            p[t] = a;
        }
        qsort(p, (size_t)n, sizeof *p, cmp_desc);
        int64_t c = cnt[i];
        double  b = c == 0 ? -(p[0] + 1) : c >= n ? -(p[n - 1] - 1) : -(p[c - 1] + p[c]) / 2;
        r->b_enc[i] = (float)b;
    }
    free(xc);
    free(p);
    free(cnt);
    *out = r;
    return EV_OK;
}
