/*
 * Unit tests for evals/autointerp: the metrics against values computed independently by
 * tests/refs/autointerp_ref.py (pair-counting AUC, statistics.correlation, definitions), the
 * always-"no" judge's exact chance values, the bootstrap, flag parsing, latent selection, and
 * the protocols' sampling invariants on synthetic activations (SAEBench: 10+5 explanation and
 * 2+2+10 scoring windows, top ones first, non-overlapping, random ones non-activating; Delphi:
 * 5 per rank quantile in rank order, 50 non-activating, fuzzing marks, similar negatives).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evals/autointerp.h"
#include "base/json.h"

static cJSON *load_ref(void) {
    const char   *root = getenv("ROOT");
    char         *p = xasprintf("%s/tests/fixtures/autointerp/metrics_ref.json",
                                root ? root : "../..");
    cJSON        *j = NULL;
    struct ev_err err = {{0}};
    int           rc = json_parse_file(p, &j, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    free(p);
    return j;
}

static double *numbers(const cJSON *a, int *n) {
    *n = cJSON_GetArraySize(a);
    double      *v = xmalloc((size_t)(*n > 0 ? *n : 1) * sizeof *v);
    int          i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) v[i++] = e->valuedouble;
    return v;
}

static void test_metrics_vs_reference(void **state) {
    (void)state;
    cJSON       *j = load_ref();
    const cJSON *c;
    int          n_auc = 0, n_r = 0, n_b = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "auc")) {
        int     n, m;
        double *p = numbers(cJSON_GetObjectItem(c, "p"), &n);
        double *yd = numbers(cJSON_GetObjectItem(c, "y"), &m);
        int    *y = xmalloc((size_t)n * sizeof *y);
        for (int i = 0; i < n; i++) y[i] = (int)yd[i];
        assert_float_equal(ai_auc(p, y, n), cJSON_GetObjectItem(c, "auc")->valuedouble, 1e-12);
        free(p);
        free(yd);
        free(y);
        n_auc++;
    }
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "pearson")) {
        int     n, m;
        double *x = numbers(cJSON_GetObjectItem(c, "x"), &n);
        double *y = numbers(cJSON_GetObjectItem(c, "y"), &m);
        assert_int_equal(n, m);
        assert_float_equal(ai_pearson(x, y, n), cJSON_GetObjectItem(c, "r")->valuedouble, 1e-12);
        free(x);
        free(y);
        n_r++;
    }
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "binary")) {
        struct ai_confusion cm = {(long)cJSON_GetObjectItem(c, "tp")->valuedouble,
                                  (long)cJSON_GetObjectItem(c, "fp")->valuedouble,
                                  (long)cJSON_GetObjectItem(c, "tn")->valuedouble,
                                  (long)cJSON_GetObjectItem(c, "fn")->valuedouble};
        assert_float_equal(ai_balanced_accuracy(&cm), cJSON_GetObjectItem(c, "bacc")->valuedouble,
                           1e-12);
        assert_float_equal(ai_f1(&cm), cJSON_GetObjectItem(c, "f1")->valuedouble, 1e-12);
        n_b++;
    }
    assert_true(n_auc >= 3 && n_r >= 3 && n_b >= 3);
    json_free(j);
}

static void test_chance_values(void **state) {
    (void)state;
    /* the always-"no" judge: balanced accuracy exactly 0.5, F1 0, accuracy N/(P+N) */
    struct ai_confusion no = {0, 0, 50, 50};
    assert_true(ai_balanced_accuracy(&no) == 0.5);
    assert_true(ai_f1(&no) == 0.0);
    struct ai_confusion sb = {0, 0, 10, 4};
    assert_true(ai_accuracy(&sb) == 10.0 / 14.0);
    struct ai_confusion none = {0, 0, 0, 0};
    assert_true(isnan(ai_balanced_accuracy(&none)));
    /* a constant series has no correlation; AUC with one class is undefined */
    double x[3] = {1, 2, 3}, k[3] = {5, 5, 5};
    int    y1[3] = {1, 1, 1};
    assert_true(ai_pearson(x, k, 3) == 0.0);
    /* a perfect simulation of a one-token latent (the CLI's word latent: true activations
     * 0.36184525489807129 or 0, predictions 10 or 0) is 1, not 1 + rounding (bug: the Delphi
     * JSON had pearson 1.0000000000000033, outside its schema) */
    double t[294], s[294];
    for (int i = 0; i < 294; i++) {
        t[i] = i % 21 == 10 ? 0.36184525489807129 : 0.0;
        s[i] = i % 21 == 10 ? 10.0 : 0.0;
    }
    assert_true(ai_pearson(t, s, 294) <= 1.0);
    assert_float_equal(ai_pearson(t, s, 294), 1.0, 1e-12);
    assert_true(isnan(ai_auc(x, y1, 3)));
}

struct vals {
    const double *v;
};

static double mean_stat(const void *ud, const int *idx, int n) {
    const struct vals *s = ud;
    double             t = 0;
    for (int i = 0; i < n; i++) t += s->v[idx[i]];
    return t / n;
}

static void test_bootstrap(void **state) {
    (void)state;
    double      c[20], v[200], lo, hi, lo2, hi2;
    struct vals s = {c};
    for (int i = 0; i < 20; i++) c[i] = 0.75;
    ai_bootstrap(mean_stat, &s, 20, 500, 1, &lo, &hi);
    assert_true(lo == 0.75 && hi == 0.75);
    struct rng r;
    rng_seed(&r, 9);
    double m = 0, sd = 0;
    for (int i = 0; i < 200; i++) m += v[i] = rng_uniform(&r);
    m /= 200;
    for (int i = 0; i < 200; i++) sd += (v[i] - m) * (v[i] - m);
    sd = sqrt(sd / 199);
    s.v = v;
    ai_bootstrap(mean_stat, &s, 200, 2000, 5, &lo, &hi);
    assert_true(lo < m && m < hi);
    /* the normal-theory interval is mean +- 1.96 sd / sqrt(n): the bootstrap's is close */
    double half = 1.96 * sd / sqrt(200.0);
    assert_float_equal((hi - lo), (2 * half), (0.25 * half)); /* cmocka casts unparenthesised */
    ai_bootstrap(mean_stat, &s, 200, 2000, 5, &lo2, &hi2);
    assert_true(lo == lo2 && hi == hi2); /* same seed, same interval */
}

static void test_parse_flags(void **state) {
    (void)state;
    struct ev_err    err;
    enum ai_protocol p;
    int              mask;
    assert_int_equal(ai_parse_protocol("delphi", &p, &err), EV_OK);
    assert_int_equal(p, AI_PROTOCOL_DELPHI);
    assert_int_equal(ai_parse_protocol("openai", &p, &err), EV_EUSAGE);
    assert_non_null(strstr(err.msg, "openai"));
    assert_int_equal(ai_parse_scorers(NULL, AI_PROTOCOL_DELPHI, &mask, &err), EV_OK);
    assert_int_equal(mask, AI_SCORER_DETECTION | AI_SCORER_FUZZING);
    assert_int_equal(ai_parse_scorers(NULL, AI_PROTOCOL_SAEBENCH, &mask, &err), EV_OK);
    assert_int_equal(mask, AI_SCORER_DETECTION);
    assert_int_equal(ai_parse_scorers("simulation,detection", AI_PROTOCOL_SAEBENCH, &mask, &err),
                     EV_OK);
    assert_int_equal(mask, AI_SCORER_DETECTION | AI_SCORER_SIMULATION);
    assert_int_equal(ai_parse_scorers("fuzzing", AI_PROTOCOL_SAEBENCH, &mask, &err), EV_EUSAGE);
    assert_int_equal(ai_parse_scorers("detection,", AI_PROTOCOL_DELPHI, &mask, &err), EV_EUSAGE);
    assert_int_equal(ai_parse_scorers("detect", AI_PROTOCOL_DELPHI, &mask, &err), EV_EUSAGE);
}

static void test_select_latents(void **state) {
    (void)state;
    int64_t        fire[8] = {0, 16, 15, 100, 3, 40, 16, 1000};
    struct ai_acts a = {.S = 8, .n_fire = fire};
    int           *sel = NULL;
    /* alive means more than 15 firings: 1, 3, 5, 6, 7 */
    int n = ai_select_latents(&a, 15, NULL, 0, 10, 1, &sel);
    assert_int_equal(n, 5);
    int want[5] = {1, 3, 5, 6, 7};
    assert_memory_equal(sel, want, sizeof want);
    free(sel);
    n = ai_select_latents(&a, 15, NULL, 0, 3, 1, &sel);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) assert_true(fire[sel[i]] > 15 && (i == 0 || sel[i] > sel[i - 1]));
    free(sel);
    int named[3] = {2, 7, 0};
    n = ai_select_latents(&a, 15, named, 3, 0, 1, &sel);
    assert_int_equal(n, 1);
    assert_int_equal(sel[0], 7);
    free(sel);
}

/* Activations (n_seq, T) of a synthetic latent: position 0 zero; about 1 in `every` tokens
 * fires with a random value in (0, 10]. */
static float *synth(int n_seq, int T, int every, uint64_t seed) {
    float     *a = xcalloc((size_t)n_seq * T, sizeof *a);
    struct rng r;
    rng_seed(&r, seed);
    for (int q = 0; q < n_seq; q++)
        for (int t = 1; t < T; t++)
            if (rng_below(&r, (uint64_t)every) == 0)
                a[(size_t)q * T + t] = 10.0f * (float)(1.0 - rng_uniform(&r));
    return a;
}

static float amax(const float *a, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) m = a[i] > m ? a[i] : m;
    return m;
}

static int overl(const struct ai_window *x, const struct ai_window *y) {
    return x->seq == y->seq && x->start < y->start + y->n && y->start < x->start + x->n;
}

static void test_saebench_sampling(void **state) {
    (void)state;
    const int        NS = 40, T = 64;
    float           *a = synth(NS, T, 12, 3);
    struct ai_params p = ai_default_params(AI_PROTOCOL_SAEBENCH);
    struct ai_plan   pl;
    struct rng       r;
    float            mx = amax(a, (size_t)NS * T);
    rng_seed(&r, 1);
    ai_plan_latent(&p, 7, a, NULL, NS, T, mx, &r, &pl);
    assert_null(pl.skip);
    assert_int_equal(pl.n_expl, 15);
    assert_int_equal(pl.n_test, 14);
    assert_float_equal(pl.thr, 0.01 * mx, 1e-6);
    struct ai_window all[29];
    memcpy(all, pl.expl, 15 * sizeof *all);
    memcpy(all + 15, pl.test, 14 * sizeof *all);
    int n_top = 0, n_iw = 0, n_rand = 0, pos = 0;
    float min_top = INFINITY, max_iw = 0;
    for (int i = 0; i < 29; i++) {
        const struct ai_window *w = &all[i];
        const float            *wa = a + (size_t)w->seq * T + w->start;
        assert_int_equal(w->n, 21);
        assert_true(w->start >= 1 && w->start + w->n <= T); /* never BOS, inside the sequence */
        for (int k = 0; k < i; k++) assert_false(overl(w, &all[k]));
        float centre = wa[10];
        if (w->kind == AI_KIND_TOP) {
            n_top++;
            min_top = centre < min_top ? centre : min_top;
        } else if (w->kind == AI_KIND_IMPORTANCE) {
            n_iw++;
            max_iw = centre > max_iw ? centre : max_iw;
            assert_true(centre > pl.thr);
        } else {
            assert_int_equal(w->kind, AI_KIND_RANDOM);
            n_rand++;
            assert_true(amax(wa, 21) <= pl.thr); /* checked non-activating */
            assert_int_equal(w->label, 0);
        }
        if (i < 15) /* explanation windows: active tokens marked */
            for (int t = 0; t < 21; t++) assert_int_equal((int)(w->marks >> t & 1), wa[t] > pl.thr);
        else
            pos += w->label;
    }
    assert_int_equal(n_top, 12);
    assert_int_equal(n_iw, 7);
    assert_int_equal(n_rand, 10);
    assert_int_equal(pos, 4);
    assert_true(max_iw <= min_top);
    /* the top 12 are the greedy non-overlapping maxima: the largest activation is among them */
    int has_max = 0;
    for (int i = 0; i < 29; i++)
        if (all[i].kind == AI_KIND_TOP && a[(size_t)all[i].seq * T + all[i].start + 10] == mx)
            has_max = 1;
    assert_true(has_max);
    /* same seed, same plan */
    struct ai_plan pl2;
    rng_seed(&r, 1);
    ai_plan_latent(&p, 7, a, NULL, NS, T, mx, &r, &pl2);
    for (int i = 0; i < 14; i++) { /* field by field: the struct has padding */
        assert_int_equal(pl.test[i].seq, pl2.test[i].seq);
        assert_int_equal(pl.test[i].start, pl2.test[i].start);
        assert_int_equal(pl.test[i].label, pl2.test[i].label);
        assert_int_equal(pl.test[i].kind, pl2.test[i].kind);
    }
    ai_plan_release(&pl2);
    ai_plan_release(&pl);
    /* too few firings: skipped with a reason */
    float *sparse = synth(4, T, 200, 4);
    rng_seed(&r, 1);
    ai_plan_latent(&p, 8, sparse, NULL, 4, T, amax(sparse, (size_t)4 * T), &r, &pl);
    assert_non_null(pl.skip);
    assert_null(pl.test);
    ai_plan_release(&pl);
    free(sparse);
    free(a);
}

static void test_delphi_sampling(void **state) {
    (void)state;
    const int NS = 150, T = 129; /* 4 blocks of 32 per sequence: 600 blocks */
    float    *a = xcalloc((size_t)NS * T, sizeof *a);
    int      *tok = xcalloc((size_t)NS * T, sizeof *tok);
    struct rng r;
    rng_seed(&r, 11);
    for (int q = 0; q < NS; q++)
        for (int t = 0; t < T; t++) tok[(size_t)q * T + t] = (int)rng_below(&r, 50);
    /* half the blocks activate, each on a few tokens */
    for (int q = 0; q < NS; q++)
        for (int b = 0; b < 4; b++) {
            if (rng_below(&r, 2)) continue;
            for (int k = 0; k < 3; k++) {
                int t = 1 + 32 * b + (int)rng_below(&r, 32);
                a[(size_t)q * T + t] = 0.1f + 5.0f * (float)rng_uniform(&r);
            }
            tok[(size_t)q * T + 1 + 32 * b] = 99; /* a token only activating blocks start with */
        }
    struct ai_params p = ai_default_params(AI_PROTOCOL_DELPHI);
    struct ai_plan   pl;
    p.min_windows = 100;
    rng_seed(&r, 2);
    ai_plan_latent(&p, 3, a, tok, NS, T, 5.1f, &r, &pl);
    assert_null(pl.skip);
    assert_int_equal(pl.n_expl, 20);
    assert_int_equal(pl.n_test, 100);
    assert_int_equal(pl.n_fuzz, 100);
    assert_int_equal(pl.n_sim, 10);
    int   per_q[11] = {0};
    float qmin[11], qmax[11];
    for (int q = 0; q < 11; q++) {
        qmin[q] = INFINITY;
        qmax[q] = 0;
    }
    float expl_min = INFINITY;
    for (int i = 0; i < 20; i++) expl_min = pl.expl[i].max < expl_min ? pl.expl[i].max : expl_min;
    for (int i = 0; i < 100; i++) {
        const struct ai_window *w = &pl.test[i];
        const float            *wa = a + (size_t)w->seq * T + w->start;
        assert_int_equal(w->n, 32);
        assert_int_equal((w->start - 1) % 32, 0);
        if (w->label) {
            assert_int_equal(w->kind, AI_KIND_QUANTILE);
            assert_true(w->quantile >= 1 && w->quantile <= 10);
            assert_true(amax(wa, 32) > 0 && amax(wa, 32) <= expl_min);
            per_q[w->quantile]++;
            qmin[w->quantile] = w->max < qmin[w->quantile] ? w->max : qmin[w->quantile];
            qmax[w->quantile] = w->max > qmax[w->quantile] ? w->max : qmax[w->quantile];
        } else {
            assert_int_equal(w->kind, AI_KIND_RANDOM);
            assert_true(amax(wa, 32) == 0);
            per_q[0]++;
        }
    }
    assert_int_equal(per_q[0], 50);
    for (int q = 1; q <= 10; q++) assert_int_equal(per_q[q], 5);
    for (int q = 1; q < 10; q++) assert_true(qmin[q] >= qmax[q + 1]); /* rank order */
    int correct = 0;
    for (int i = 0; i < 100; i++) {
        const struct ai_window *w = &pl.fuzz[i];
        const float            *wa = a + (size_t)w->seq * T + w->start;
        uint64_t                good = 0;
        for (int t = 0; t < 32; t++)
            if (w->max > 0 && wa[t] >= 0.3f * w->max) good |= 1ULL << t;
        assert_true(w->marks != 0);
        if (w->label) {
            correct++;
            assert_true(w->marks == good);
        } else if (w->max > 0) {
            assert_true((w->marks & good) == 0); /* misplaced: only tokens below 0.3 max */
        }
    }
    assert_int_equal(correct, 25);
    ai_plan_release(&pl);

    /* similar negatives: the chosen non-activating windows share at least as many token ids
     * with the activating test windows as any window left out */
    p.negatives = AI_NEGATIVES_SIMILAR;
    rng_seed(&r, 2);
    ai_plan_latent(&p, 3, a, tok, NS, T, 5.1f, &r, &pl);
    assert_null(pl.skip);
    int in_set[100] = {0}, worst_in = 1000;
    for (int i = 0; i < 100; i++)
        if (pl.test[i].label)
            for (int t = 0; t < 32; t++)
                in_set[tok[(size_t)pl.test[i].seq * T + pl.test[i].start + t]] = 1;
    for (int i = 0; i < 100; i++) {
        if (pl.test[i].label) continue;
        assert_int_equal(pl.test[i].kind, AI_KIND_SIMILAR);
        int seen[100] = {0}, sc = 0;
        for (int t = 0; t < 32; t++) {
            int id = tok[(size_t)pl.test[i].seq * T + pl.test[i].start + t];
            if (!seen[id] && in_set[id]) sc++;
            seen[id] = 1;
        }
        worst_in = sc < worst_in ? sc : worst_in;
    }
    for (int q = 0; q < NS; q++)
        for (int b = 0; b < 4; b++) {
            int st = 1 + 32 * b, chosen = 0;
            if (amax(a + (size_t)q * T + st, 32) > 0) continue;
            for (int i = 0; i < 100; i++) chosen |= pl.test[i].seq == q && pl.test[i].start == st;
            if (chosen) continue;
            int seen[100] = {0}, sc = 0;
            for (int t = 0; t < 32; t++) {
                int id = tok[(size_t)q * T + st + t];
                if (!seen[id] && in_set[id]) sc++;
                seen[id] = 1;
            }
            assert_true(sc <= worst_in);
        }
    ai_plan_release(&pl);
    /* too few activating windows for --min-windows: skipped */
    p.min_windows = 400;
    ai_plan_latent(&p, 3, a, tok, NS, T, 5.1f, &r, &pl);
    assert_non_null(pl.skip);
    ai_plan_release(&pl);
    free(a);
    free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_vs_reference),
        cmocka_unit_test(test_chance_values),
        cmocka_unit_test(test_bootstrap),
        cmocka_unit_test(test_parse_flags),
        cmocka_unit_test(test_select_latents),
        cmocka_unit_test(test_saebench_sampling),
        cmocka_unit_test(test_delphi_sampling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
