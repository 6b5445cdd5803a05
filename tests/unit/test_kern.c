/*
 * Unit tests for kern: each optimised kernel against its naive _ref twin (NMSE and max-abs,
 * ggml test-backend-ops style), over shapes that take both the BLAS and the loop paths, plus
 * analytic checks that do not share either implementation (softmax sums, RoPE keeps norms and
 * its inverse undoes it, backward kernels against central differences).
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

#include "model/kern.h"
#include "base/util.h"

static float *randv(struct rng *r, size_t n, float scale) {
    float *v = xmalloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) v[i] = scale * rng_normal(r);
    return v;
}

/* Asserts NMSE(a, b) <= tol_nmse and max |a - b| <= tol_abs. */
static void check_close(const char *what, const float *a, const float *b, size_t n,
                        double tol_nmse, double tol_abs) {
    double se = 0, ref = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        se += d * d;
        ref += (double)b[i] * (double)b[i];
        if (fabs(d) > mx) mx = fabs(d);
    }
    double nmse = ref > 0 ? se / ref : se;
    if (nmse > tol_nmse || mx > tol_abs)
        fail_msg("%s: nmse %.3g (tol %.3g), max abs %.3g (tol %.3g)", what, nmse, tol_nmse, mx,
                 tol_abs);
}

static void test_matmul_vs_ref(void **state) {
    (void)state;
    static const struct { int n, d_in, d_out, bias; } cases[] = {
        {1, 64, 172, 1}, {1, 768, 2304, 0}, {7, 64, 64, 1}, {33, 100, 17, 0}, {128, 256, 300, 1},
    };
    struct rng r;
    rng_seed(&r, 1);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int    n = cases[c].n, di = cases[c].d_in, dout = cases[c].d_out;
        float *x = randv(&r, (size_t)n * di, 1), *w = randv(&r, (size_t)dout * di, 0.1f);
        float *b = cases[c].bias ? randv(&r, dout, 1) : NULL;
        float *o1 = xmalloc(sizeof(float) * n * dout), *o2 = xmalloc(sizeof(float) * n * dout);
        kern_matmul(o1, x, w, b, n, di, dout);
        kern_matmul_ref(o2, x, w, b, n, di, dout);
        char what[64];
        snprintf(what, sizeof what, "matmul %dx%dx%d", n, di, dout);
        check_close(what, o1, o2, (size_t)n * dout, 1e-10, 1e-4);
        free(x), free(w), free(b), free(o1), free(o2);
    }
}

static void test_matmul_backward(void **state) {
    (void)state;
    /* dinp = dout . W, checked against the ref of the transposed product */
    struct rng r;
    rng_seed(&r, 2);
    int    n = 9, di = 40, dout = 24;
    float *d = randv(&r, (size_t)n * dout, 1), *w = randv(&r, (size_t)dout * di, 1);
    float *wt = xmalloc(sizeof(float) * di * dout);
    for (int o = 0; o < dout; o++)
        for (int i = 0; i < di; i++) wt[i * dout + o] = w[o * di + i];
    float *g1 = xmalloc(sizeof(float) * n * di), *g2 = xmalloc(sizeof(float) * n * di);
    kern_matmul_backward(g1, d, w, n, di, dout, 0);
    kern_matmul_ref(g2, d, wt, NULL, n, dout, di);
    check_close("matmul_backward", g1, g2, (size_t)n * di, 1e-10, 1e-4);
    /* acc adds */
    kern_matmul_backward(g1, d, w, n, di, dout, 1);
    for (int i = 0; i < n * di; i++) g2[i] *= 2;
    check_close("matmul_backward acc", g1, g2, (size_t)n * di, 1e-10, 1e-4);
    free(d), free(w), free(wt), free(g1), free(g2);
}

static void test_norms_vs_ref(void **state) {
    (void)state;
    struct rng r;
    rng_seed(&r, 3);
    int    n = 5, C = 96;
    float *x = randv(&r, n * C, 3), *w = randv(&r, C, 1), *b = randv(&r, C, 1);
    float *o1 = xmalloc(sizeof(float) * n * C), *o2 = xmalloc(sizeof(float) * n * C);
    float  rstd[5], mean[5];
    kern_rmsnorm(o1, rstd, x, w, n, C, 1e-5f);
    kern_rmsnorm_ref(o2, x, w, n, C, 1e-5f);
    check_close("rmsnorm", o1, o2, (size_t)n * C, 1e-12, 1e-5);
    kern_layernorm(o1, mean, rstd, x, w, b, n, C, 1e-5f);
    kern_layernorm_ref(o2, x, w, b, n, C, 1e-5f);
    check_close("layernorm", o1, o2, (size_t)n * C, 1e-12, 1e-5);
    /* layernorm with w = 1, b = 0 has mean 0 and variance ~1 per row */
    for (int i = 0; i < C; i++) w[i] = 1, b[i] = 0;
    kern_layernorm(o1, NULL, NULL, x, w, b, n, C, 1e-5f);
    for (int t = 0; t < n; t++) {
        double m = 0, v = 0;
        for (int i = 0; i < C; i++) m += (double)o1[t * C + i];
        for (int i = 0; i < C; i++) v += (double)(o1[t * C + i] * o1[t * C + i]);
        assert_true(fabs(m / C) < 1e-5);
        assert_true(fabs(v / C - 1) < 1e-4);
    }
    free(x), free(w), free(b), free(o1), free(o2);
}

/* f(x) = sum(dout * norm(x)); checks the backward kernels by central differences in double. */
static void test_norm_backward_fd(void **state) {
    (void)state;
    struct rng r;
    rng_seed(&r, 4);
    int    C = 16;
    float *x = randv(&r, C, 2), *w = randv(&r, C, 1), *b = randv(&r, C, 1), *d = randv(&r, C, 1);
    float  out[16], dx[16], mean, rstd;
    for (int kind = 0; kind < 2; kind++) {
        memset(dx, 0, sizeof dx);
        if (kind == 0) {
            kern_rmsnorm(out, &rstd, x, w, 1, C, 1e-5f);
            kern_rmsnorm_backward(dx, d, x, w, &rstd, 1, C);
        } else {
            kern_layernorm(out, &mean, &rstd, x, w, b, 1, C, 1e-5f);
            kern_layernorm_backward(dx, d, x, w, &mean, &rstd, 1, C);
        }
        for (int i = 0; i < C; i++) {
            double f[2];
            float  save = x[i], h = 1e-2f;
            for (int sgn = 0; sgn < 2; sgn++) {
                x[i] = save + (sgn ? -h : h);
                if (kind == 0) kern_rmsnorm_ref(out, x, w, 1, C, 1e-5f);
                else kern_layernorm_ref(out, x, w, b, 1, C, 1e-5f);
                f[sgn] = 0;
                for (int j = 0; j < C; j++) f[sgn] += (double)d[j] * (double)out[j];
            }
            x[i] = save;
            double fd = (f[0] - f[1]) / (2.0 * (double)h);
            if (fabs(fd - (double)dx[i]) > 2e-3 * (1 + fabs(fd)))
                fail_msg("%s backward [%d]: analytic %g, finite difference %g",
                         kind ? "layernorm" : "rmsnorm", i, (double)dx[i], fd);
        }
    }
    free(x), free(w), free(b), free(d);
}

static void test_activations(void **state) {
    (void)state;
    struct rng r;
    rng_seed(&r, 5);
    size_t n = 1000;
    float *x = randv(&r, n, 3), *u = randv(&r, n, 1);
    float *o1 = xmalloc(sizeof(float) * n), *o2 = xmalloc(sizeof(float) * n);
    /* the saturated ends and zero (exp_approx clamps |x| at 87) */
    x[100] = 100, x[101] = -100, x[102] = 0, x[103] = 30, x[104] = -30, x[105] = -90;
    kern_gelu(o1, x, n);
    kern_gelu_ref(o2, x, n);
    check_close("gelu", o1, o2, n, 1e-12, 1e-5);
    kern_swiglu(o1, x, u, n);
    kern_swiglu_ref(o2, x, u, n);
    check_close("swiglu", o1, o2, n, 1e-12, 1e-5);
    /* published values: gelu_new(1) = 0.8411920, gelu_new(-1) = -0.1588080 */
    float a[2] = {1, -1}, g[2];
    kern_gelu(g, a, 2);
    assert_true(fabs((double)g[0] - 0.8411920) < 1e-6 && fabs((double)g[1] + 0.1588080) < 1e-6);
    /* backward by central differences */
    float *dg = xmalloc(sizeof(float) * n), *du = xmalloc(sizeof(float) * n);
    float *ones = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) ones[i] = 1;
    kern_gelu_backward(dg, ones, x, n);
    for (size_t i = 0; i < 50; i++) {
        double h = 1e-3, xp = (double)x[i] + h, xm = (double)x[i] - h;
        double fp = 0.5 * xp * (1 + tanh(sqrt(2 / M_PI) * (xp + 0.044715 * xp * xp * xp)));
        double fm = 0.5 * xm * (1 + tanh(sqrt(2 / M_PI) * (xm + 0.044715 * xm * xm * xm)));
        assert_true(fabs((fp - fm) / (2 * h) - (double)dg[i]) < 1e-4);
    }
    kern_swiglu_backward(dg, du, ones, x, u, n);
    for (size_t i = 0; i < 50; i++) {
        double h = 1e-3, xp = (double)x[i] + h, xm = (double)x[i] - h;
        double fd = (xp / (1 + exp(-xp)) - xm / (1 + exp(-xm))) / (2 * h) * (double)u[i];
        assert_true(fabs(fd - (double)dg[i]) < 1e-4);
        assert_true(fabs((double)x[i] / (1 + exp((double)(-x[i]))) - (double)du[i]) < 1e-5);
    }
    free(x), free(u), free(o1), free(o2), free(dg), free(du), free(ones);
}

static void test_softmax(void **state) {
    (void)state;
    struct rng r;
    rng_seed(&r, 6);
    int    n = 513;
    float *x = randv(&r, n, 20), *y = xmalloc(sizeof(float) * n), *ls = xmalloc(sizeof(float) * n);
    memcpy(y, x, sizeof(float) * n);
    kern_log_softmax(ls, x, n);
    kern_softmax(x, n);
    kern_softmax_ref(y, n);
    check_close("softmax", x, y, n, 1e-10, 1e-6);
    double s = 0;
    for (int i = 0; i < n; i++) {
        s += (double)x[i];
        assert_true(fabs(exp((double)ls[i]) - (double)x[i]) < 1e-6);
    }
    assert_true(fabs(s - 1) < 1e-5);
    free(x), free(y), free(ls);
}

static void test_rope(void **state) {
    (void)state;
    struct rng r;
    rng_seed(&r, 7);
    int    n = 6, NH = 3, HS = 16, stride = NH * HS + 5;
    for (int half = 0; half < 2; half++) {
        float *x = randv(&r, (size_t)n * stride, 1), *y = xmalloc(sizeof(float) * n * stride);
        float *z = xmalloc(sizeof(float) * n * stride);
        memcpy(y, x, sizeof(float) * n * stride);
        memcpy(z, x, sizeof(float) * n * stride);
        kern_rope(y, n, stride, 11, NH, HS, 10000.0f, half, 0);
        kern_rope_ref(z, n, stride, 11, NH, HS, 10000.0f, half);
        check_close(half ? "rope half" : "rope interleaved", y, z, (size_t)n * stride, 1e-10,
                    1e-4);
        /* columns past the heads are untouched; norms of each head are kept */
        for (int t = 0; t < n; t++) {
            for (int j = NH * HS; j < stride; j++)
                assert_true(y[t * stride + j] == x[t * stride + j]);
            for (int h = 0; h < NH; h++) {
                double a = 0, b = 0;
                for (int d = 0; d < HS; d++) {
                    a += (double)x[t * stride + h * HS + d] * (double)x[t * stride + h * HS + d];
                    b += (double)y[t * stride + h * HS + d] * (double)y[t * stride + h * HS + d];
                }
                assert_true(fabs(a - b) < 1e-4 * a);
            }
        }
        /* position 0 is the identity; the inverse undoes the rotation */
        kern_rope(y, n, stride, 11, NH, HS, 10000.0f, half, 1);
        check_close("rope inverse", y, x, (size_t)n * stride, 1e-10, 1e-5);
        memcpy(y, x, sizeof(float) * stride);
        kern_rope(y, 1, stride, 0, NH, HS, 10000.0f, half, 0);
        check_close("rope pos 0", y, x, stride, 0, 0);
        free(x), free(y), free(z);
    }
}

static void test_attention_vs_ref(void **state) {
    (void)state;
    static const struct { int T, pos0, NH, NKV, HS; } cases[] = {
        {1, 0, 4, 2, 8}, {1, 9, 8, 4, 8}, {16, 0, 4, 4, 16}, {40, 0, 6, 2, 32}, {8, 5, 2, 1, 64},
        {64, 0, 12, 12, 64},
    };
    struct rng r;
    rng_seed(&r, 8);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int    T = cases[c].T, pos0 = cases[c].pos0, NH = cases[c].NH, NKV = cases[c].NKV;
        int    HS = cases[c].HS, Tk = pos0 + T;
        float *q = randv(&r, (size_t)T * NH * HS, 1);
        float *k = randv(&r, (size_t)Tk * NKV * HS, 1), *v = randv(&r, (size_t)Tk * NKV * HS, 1);
        size_t no = (size_t)T * NH * HS, na = (size_t)NH * T * Tk;
        float *o1 = xmalloc(sizeof(float) * no), *o2 = xmalloc(sizeof(float) * no);
        float *a1 = xmalloc(sizeof(float) * na), *a2 = xmalloc(sizeof(float) * na);
        kern_attention(o1, a1, q, k, v, T, pos0, NH, NKV, HS, Tk);
        kern_attention_ref(o2, a2, q, k, v, T, pos0, NH, NKV, HS, Tk);
        char what[64];
        snprintf(what, sizeof what, "attention T%d pos%d NH%d NKV%d HS%d", T, pos0, NH, NKV, HS);
        check_close(what, o1, o2, (size_t)T * NH * HS, 1e-10, 1e-5);
        check_close(what, a1, a2, (size_t)NH * T * Tk, 1e-10, 1e-5);
        free(q), free(k), free(v), free(o1), free(o2), free(a1), free(a2);
    }
}

/* f = sum(dout * attention(q, k, v)); analytic dq, dk, dv against central differences. */
static void test_attention_backward_fd(void **state) {
    (void)state;
    struct rng r;
    rng_seed(&r, 9);
    int    T = 5, NH = 4, NKV = 2, HS = 4, qd = NH * HS, kvd = NKV * HS;
    float *q = randv(&r, T * qd, 1), *k = randv(&r, T * kvd, 1), *v = randv(&r, T * kvd, 1);
    float *d = randv(&r, T * qd, 1), *o = xmalloc(sizeof(float) * T * qd);
    float *att = xmalloc(sizeof(float) * NH * T * T), *scr = xmalloc(sizeof(float) * T * T);
    float *dq = xmalloc(sizeof(float) * T * qd), *dk = xmalloc(sizeof(float) * T * kvd);
    float *dv = xmalloc(sizeof(float) * T * kvd);
    kern_attention(o, att, q, k, v, T, 0, NH, NKV, HS, T);
    kern_attention_backward(dq, dk, dv, d, att, q, k, v, T, NH, NKV, HS, T, scr);
    float *args[3] = {q, k, v}, *grads[3] = {dq, dk, dv};
    int    sizes[3] = {T * qd, T * kvd, T * kvd};
    for (int a = 0; a < 3; a++)
        for (int i = 0; i < sizes[a]; i++) {
            float  save = args[a][i], h = 1e-2f;
            double f[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                args[a][i] = save + (sgn ? -h : h);
                kern_attention_ref(o, att, q, k, v, T, 0, NH, NKV, HS, T);
                f[sgn] = 0;
                for (int j = 0; j < T * qd; j++) f[sgn] += (double)d[j] * (double)o[j];
            }
            args[a][i] = save;
            double fd = (f[0] - f[1]) / (2.0 * (double)h);
            if (fabs(fd - (double)grads[a][i]) > 2e-3 * (1 + fabs(fd)))
                fail_msg("attention backward arg %d [%d]: analytic %g, finite difference %g", a,
                         i, (double)grads[a][i], fd);
        }
    free(q), free(k), free(v), free(d), free(o), free(att), free(scr), free(dq), free(dk),
        free(dv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_vs_ref),     cmocka_unit_test(test_matmul_backward),
        cmocka_unit_test(test_norms_vs_ref),      cmocka_unit_test(test_norm_backward_fd),
        cmocka_unit_test(test_activations),       cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_rope),              cmocka_unit_test(test_attention_vs_ref),
        cmocka_unit_test(test_attention_backward_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
