/*
 * Unit tests for kern_dec (the decode kernels): each against its naive _ref twin on the CPU's
 * path and on the forced portable path, over shapes that take every branch (d_in <= 8 and the
 * 8-lane path, multiples of 16 and masked tails, blocks of eight rows and the rows left over,
 * strided rows); plus checks that share neither implementation: the vector exp in the softmax
 * against libm's exp in double (relative error), probabilities summing to 1, underflow to 0,
 * NaN propagation, and single-query attention against kern_attention_ref (kern.c).
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

#include "base/util.h"
#include "model/kern.h"
#include "model/kern_dec.h"

static float *randv(struct rng *r, size_t n, float scale) {
    float *v = xmalloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) v[i] = scale * rng_normal(r);
    return v;
}

/* max |a - b| / (|b| + floor) over n */
static double max_rel(const float *a, const float *b, size_t n, double floor) {
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / (fabs((double)b[i]) + floor);
        if (!(d <= mx)) mx = d; /* NaN counts as worst */
    }
    return mx;
}

static void test_matvec_vs_ref(void **state) {
    (void)state;
    static const struct { int d_in, d_out, pad, bias; } cases[] = {
        {1, 1, 0, 0},    {3, 9, 5, 1},     {8, 8, 24, 0},   {8, 513, 24, 1}, {9, 17, 0, 1},
        {16, 16, 0, 0},  {64, 64, 0, 1},   {64, 172, 0, 0}, {172, 64, 0, 1}, {64, 512, 0, 0},
        {100, 23, 7, 1}, {768, 300, 0, 1},
    };
    struct rng r;
    rng_seed(&r, 11);
    for (int portable = 0; portable < 2; portable++) {
        kern_dec_force_portable(portable);
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            int    di = cases[c].d_in, dout = cases[c].d_out, ldw = di + cases[c].pad;
            float  scale = c % 2 ? 0.35f : 1.0f;
            float *x = randv(&r, di, 1), *w = randv(&r, (size_t)dout * ldw, 0.3f);
            float *b = cases[c].bias ? randv(&r, dout, 1) : NULL;
            float *o1 = xmalloc(sizeof(float) * dout), *o2 = xmalloc(sizeof(float) * dout);
            kern_matvec(o1, x, w, b, di, dout, ldw, scale);
            kern_matvec_ref(o2, x, w, b, di, dout, ldw, scale);
            /* float32 sums of di products of size ~0.3: a few ulp of sqrt(di) * 0.3 */
            double tol = 1e-6 * sqrt((double)di) + 1e-6;
            for (int o = 0; o < dout; o++)
                if (!(fabs((double)o1[o] - (double)o2[o]) <= tol))
                    fail_msg("matvec %s %dx%d ldw %d row %d: %.9g vs ref %.9g",
                             portable ? "portable" : kern_dec_path(), di, dout, ldw, o,
                             (double)o1[o], (double)o2[o]);
            free(x), free(w), free(b), free(o1), free(o2);
        }
    }
    kern_dec_force_portable(0);
}

/* the reference softmax in double, with libm's exp */
static void softmax_double(float *out, const float *x, int n) {
    double mx = x[0], s = 0;
    for (int i = 1; i < n; i++)
        if ((double)x[i] > mx) mx = (double)x[i];
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    for (int i = 0; i < n; i++) out[i] = (float)(exp((double)x[i] - mx) / s);
}

static void test_softmax_dec(void **state) {
    (void)state;
    static const int sizes[] = {1, 2, 15, 16, 17, 33, 300, 512};
    struct rng       r;
    rng_seed(&r, 12);
    for (int portable = 0; portable < 2; portable++) {
        kern_dec_force_portable(portable);
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            int    n = sizes[k];
            float *x = randv(&r, n, 6), *y = xmalloc(sizeof(float) * n);
            float *ref = xmalloc(sizeof(float) * n);
            softmax_double(ref, x, n);
            memcpy(y, x, sizeof(float) * n);
            kern_softmax_dec(y, n);
            double sum = 0;
            for (int i = 0; i < n; i++) sum += (double)y[i];
            assert_true(fabs(sum - 1.0) < 1e-5);
            /* a few ulp, relative, plus the float32 rounding of the sum over n terms */
            double rel = max_rel(y, ref, n, 1e-30);
            if (!(rel < 2e-6 + 1e-8 * n))
                fail_msg("softmax %s n %d: max rel err %.3g", portable ? "portable" : kern_dec_path(), n,
                         rel);
            free(x), free(y), free(ref);
        }
        /* a spread beyond exp's range: the far ones are 0, the rest still sum to 1 */
        float v[20], ref[20];
        for (int i = 0; i < 20; i++) v[i] = i < 10 ? -2000.0f + (float)i : (float)(i - 10) * 0.5f;
        softmax_double(ref, v, 20);
        kern_softmax_dec(v, 20);
        for (int i = 0; i < 10; i++) assert_true(v[i] == 0.0f);
        assert_true(max_rel(v + 10, ref + 10, 10, 1e-30) < 2e-6);
        /* NaN in, NaN out: never a finite-looking distribution */
        float z[18];
        for (int i = 0; i < 18; i++) z[i] = (float)i;
        z[17] = NAN;
        kern_softmax_dec(z, 18);
        for (int i = 0; i < 18; i++) assert_true(isnan(z[i]));
    }
    kern_dec_force_portable(0);
}

static void test_attend1(void **state) {
    (void)state;
    static const struct { int n_keys, NH, NKV, HS; } cases[] = {
        {1, 8, 4, 8}, {5, 8, 4, 8}, {257, 8, 4, 8}, {512, 8, 4, 8}, {70, 12, 12, 64},
        {33, 4, 1, 16}, {9, 6, 2, 20}, {40, 2, 2, 3},
    };
    struct rng r;
    rng_seed(&r, 13);
    for (int portable = 0; portable < 2; portable++) {
        kern_dec_force_portable(portable);
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            int    nk = cases[c].n_keys, NH = cases[c].NH, NKV = cases[c].NKV, HS = cases[c].HS;
            int    qd = NH * HS, kvd = NKV * HS, stride = nk + 3;
            float  scale = 1.0f / sqrtf((float)HS);
            float *q = randv(&r, qd, 1), *kc = randv(&r, (size_t)nk * kvd, 1);
            float *vc = randv(&r, (size_t)nk * kvd, 1);
            float *o1 = xmalloc(sizeof(float) * qd), *o2 = xmalloc(sizeof(float) * qd);
            float *o3 = xmalloc(sizeof(float) * qd);
            float *a1 = xmalloc(sizeof(float) * NH * stride), *a2 = xmalloc(sizeof(float) * NH * stride);
            float *a3 = xmalloc(sizeof(float) * NH * nk);
            kern_attend1(o1, a1, q, kc, vc, nk, NH, NKV, HS, stride, scale);
            kern_attend1_ref(o2, a2, q, kc, vc, nk, NH, NKV, HS, stride, scale);
            /* kern.c's reference: the same attention as one query at position nk - 1 */
            kern_attention_ref(o3, a3, q, kc, vc, 1, nk - 1, NH, NKV, HS, nk);
            const char *p = portable ? "portable" : kern_dec_path();
            for (int h = 0; h < NH; h++) {
                double e1 = max_rel(a1 + (size_t)h * stride, a2 + (size_t)h * stride, nk, 1e-7);
                double e3 = max_rel(a1 + (size_t)h * stride, a3 + (size_t)h * nk, nk, 1e-7);
                if (!(e1 < 1e-4 && e3 < 1e-4))
                    fail_msg("attend1 %s keys %d head %d: probs rel err %.3g / %.3g", p, nk, h, e1,
                             e3);
            }
            for (int i = 0; i < qd; i++)
                if (!(fabs((double)o1[i] - (double)o2[i]) < 1e-5 &&
                      fabs((double)o1[i] - (double)o3[i]) < 1e-5))
                    fail_msg("attend1 %s keys %d NH %d HS %d out[%d]: %.9g vs %.9g / %.9g", p, nk,
                             NH, HS, i, (double)o1[i], (double)o2[i], (double)o3[i]);
            free(q), free(kc), free(vc), free(o1), free(o2), free(o3), free(a1), free(a2),
                free(a3);
        }
    }
    kern_dec_force_portable(0);
}

int main(void) {
    printf("# kern_dec path on this CPU: %s\n", kern_dec_path());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matvec_vs_ref),
        cmocka_unit_test(test_softmax_dec),
        cmocka_unit_test(test_attend1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
