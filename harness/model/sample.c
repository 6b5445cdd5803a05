/*
 * sample — next-token choice: greedy, temperature and top-p (nucleus) sampling, as llama2.c's
 * run.c does it (softmax of logits / T, then the smallest set of tokens whose probability
 * reaches top_p, sampled with one uniform draw).
 */
#include "model/sample.h"

#include <math.h>
#include <stdlib.h>

#include "model/kern.h"

void sampler_init(struct sampler *s, int V, float temperature, float top_p, uint64_t seed) {
    s->V = V;
    s->n_ids = V;
    s->temperature = temperature;
    s->top_p = top_p;
    rng_seed(&s->rng, seed);
    s->probs = xmalloc(sizeof(float) * (size_t)V);
    s->idx = xmalloc(sizeof(int) * (size_t)V);
}

void sampler_limit(struct sampler *s, int n) {
    s->n_ids = n < 1 ? 1 : n > s->V ? s->V : n;
}

void sampler_release(struct sampler *s) {
    free(s->probs);
    free(s->idx);
    s->probs = NULL;
    s->idx = NULL;
}

int sample_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Sort indices by probability, descending; ties by lower id first (deterministic). */
static int cmp_desc(const void *a, const void *b, void *ctx) {
    const float *p = ctx;
    int          i = *(const int *)a, j = *(const int *)b;
    if (p[i] > p[j]) return -1;
    if (p[i] < p[j]) return 1;
    return (i > j) - (i < j);
}

int sampler_sample(struct sampler *s, const float *logits) {
    int V = s->n_ids; /* the ids past it (a padded vocab's) are never chosen */
    if (s->temperature <= 0.0f) return sample_argmax(logits, V);
    for (int i = 0; i < V; i++) s->probs[i] = logits[i] / s->temperature;
    kern_softmax(s->probs, V);
    double u = rng_uniform(&s->rng);
    if (!(s->top_p > 0.0f && s->top_p < 1.0f)) {
        double cdf = 0.0;
        for (int i = 0; i < V; i++) {
            cdf += (double)s->probs[i];
            if (u < cdf) return i;
        }
        return V - 1; /* rounding */
    }
    /* nucleus: drop tokens below (1 - top_p) / (V - 1) first, as run.c does (they can never
     * be in the nucleus), then sort the rest */
    float cutoff = (1.0f - s->top_p) / (float)(V > 1 ? V - 1 : 1);
    int   n = 0;
    for (int i = 0; i < V; i++)
        if (s->probs[i] >= cutoff) s->idx[n++] = i;
    /* a flat distribution can leave nothing above the cutoff (llama2.c's run.c would then read
     * idx[-1]): the most likely token is always in the nucleus */
    if (n == 0) return sample_argmax(s->probs, V);
    qsort_r(s->idx, (size_t)n, sizeof(int), cmp_desc, s->probs);
    double cum = 0.0;
    int    last = n - 1;
    for (int i = 0; i < n; i++) {
        cum += (double)s->probs[s->idx[i]];
        if (cum > (double)s->top_p) {
            last = i;
            break;
        }
    }
    double r = u * cum, cdf = 0.0;
    for (int i = 0; i <= last; i++) {
        cdf += (double)s->probs[s->idx[i]];
        if (r < cdf) return s->idx[i];
    }
    return s->idx[last];
}
