/*
 * Unit tests for kern_arch (erf GELU, GeGLU, attention with scale / soft-cap / sliding
 * window, table RoPE and its frequencies) and kern_bf16 (BF16/F16 weight products): each
 * optimised kernel against its naive _ref twin (NMSE and max-abs), every CPU path of the
 * 16-bit products (the CPU's and the portable one), published values (erf GELU, F16/BF16 bit
 * patterns), and backward kernels against central differences.
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
#include "model/kern_arch.h"
#include "model/kern_bf16.h"

static float *randv(struct rng *r, size_t n, float scale) {
    float *v = xmalloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) v[i] = scale * rng_normal(r);
    return v;
}

static void check_close(const char *what, const float *a, const float *b, size_t n,
                        double tol_nmse, double tol_abs) {
    double se = 0, ref = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        se += d * d;
        ref += (double)b[i] * (double)b[i];
        if (!(fabs(d) <= mx)) mx = fabs(d);
    }
    double nmse = ref > 0 ? se / ref : se;
    if (!(nmse <= tol_nmse) || !(mx <= tol_abs))
        fail_msg("%s: nmse %.3g (tol %.3g), max abs %.3g (tol %.3g)", what, nmse, tol_nmse, mx,
                 tol_abs);
}

// ---------------------------------------------------------------------------- activations

static void test_gelu_erf(void **state) {
    (void)state;
    /* published: gelu(1) = 0.8413447460685429, gelu(-1) = -0.15865525393145707 (x Phi(x)) */
    float x[3] = {1.0f, -1.0f, 0.0f}, y[3];
    kern_gelu_erf(y, x, 3);
    assert_true(fabs((double)y[0] - 0.8413447460685429) < 1e-6);
    assert_true(fabs((double)y[1] + 0.15865525393145707) < 1e-6);
    assert_true(y[2] == 0.0f);
    struct rng r;
    rng_seed(&r, 3);
    size_t n = 1000;
    float *v = randv(&r, n, 3), *a = xmalloc(sizeof(float) * n), *b = xmalloc(sizeof(float) * n);
    kern_gelu_erf(a, v, n);
    kern_gelu_erf_ref(b, v, n);
    check_close("gelu_erf", a, b, n, 1e-12, 1e-6);
    /* backward vs central differences */
    float *ones = xmalloc(sizeof(float) * n), *d = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
    kern_gelu_erf_backward(d, ones, v, n);
    for (size_t i = 0; i < n; i += 37) {
        double h = 1e-3, xp = (double)v[i] + h, xm = (double)v[i] - h;
        double fd = (0.5 * xp * (1 + erf(xp / sqrt(2))) - 0.5 * xm * (1 + erf(xm / sqrt(2)))) /
                    (2 * h);
        assert_true(fabs(fd - (double)d[i]) < 1e-4);
    }
    free(v), free(a), free(b), free(ones), free(d);
}

static void test_geglu(void **state) {
    (void)state;
    struct rng r;
    rng_seed(&r, 4);
    size_t n = 777;
    float *g = randv(&r, n, 2), *u = randv(&r, n, 1);
    float *a = xmalloc(sizeof(float) * n), *b = xmalloc(sizeof(float) * n);
    kern_geglu(a, g, u, n);
    kern_geglu_ref(b, g, u, n);
    check_close("geglu", a, b, n, 1e-10, 1e-5);
    float *dout = randv(&r, n, 1), *dg = xmalloc(sizeof(float) * n), *du = xmalloc(sizeof(float) * n);
    kern_geglu_backward(dg, du, dout, g, u, n);
    for (size_t i = 0; i < n; i += 41) {
        float  h = 1e-2f, gp = g[i] + h, gm = g[i] - h, yp, ym;
        kern_geglu_ref(&yp, &gp, &u[i], 1);
        kern_geglu_ref(&ym, &gm, &u[i], 1);
        double fd = (double)dout[i] * ((double)yp - (double)ym) / (double)(2 * h);
        assert_true(fabs(fd - (double)dg[i]) < 2e-3 * fmax(1, fabs(fd)));
        float y0;
        kern_geglu_ref(&y0, &g[i], &(float){1.0f}, 1);
        assert_true(fabs(du[i] - dout[i] * y0) < 1e-5);
    }
    /* soft-cap: bounded, odd, identity near 0, and its backward */
    float x[4] = {0.01f, 100.0f, -100.0f, 1.5f}, c[4];
    memcpy(c, x, sizeof x);
    kern_softcap(c, 4, 3.0f);
    assert_true(fabs((double)c[0] - 0.01) < 1e-6 && c[1] <= 3.0f && c[1] > 2.99f && c[2] == -c[1]);
    float dx[4] = {1, 1, 1, 1};
    kern_softcap_backward(dx, c, 4, 3.0f);
    assert_true(fabs((double)dx[3] - (1 - tanh(0.5) * tanh(0.5))) < 1e-6 && (double)dx[1] < 1e-6);
    free(g), free(u), free(a), free(b), free(dout), free(dg), free(du);
}

// ---------------------------------------------------------------------------- attention

static void test_attention_ex_vs_ref(void **state) {
    (void)state;
    static const struct {
        int   T, pos0, NH, NKV, HS;
        float softcap;
        int   window;
    } cases[] = {
        {12, 0, 4, 2, 16, 0.0f, 0}, {12, 0, 4, 2, 16, 2.0f, 5}, {1, 9, 4, 1, 8, 3.0f, 4},
        {5, 7, 2, 2, 8, 0.0f, 3},   {40, 0, 2, 1, 32, 50.0f, 7}, {1, 30, 2, 2, 16, 0.0f, 1},
    };
    struct rng r;
    rng_seed(&r, 5);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int T = cases[k].T, p0 = cases[k].pos0, NH = cases[k].NH, NKV = cases[k].NKV;
        int HS = cases[k].HS, Tk = p0 + T;
        struct kern_attn_opts o = {0.7f / sqrtf((float)HS), cases[k].softcap, cases[k].window};
        float *q = randv(&r, (size_t)T * NH * HS, 2), *kc = randv(&r, (size_t)Tk * NKV * HS, 2);
        float *vc = randv(&r, (size_t)Tk * NKV * HS, 1);
        float *o1 = xmalloc(sizeof(float) * T * NH * HS), *o2 = xmalloc(sizeof(float) * T * NH * HS);
        float *a1 = xmalloc(sizeof(float) * NH * T * Tk), *a2 = xmalloc(sizeof(float) * NH * T * Tk);
        kern_attention_ex(o1, a1, q, kc, vc, T, p0, NH, NKV, HS, Tk, &o);
        kern_attention_ex_ref(o2, a2, q, kc, vc, T, p0, NH, NKV, HS, Tk, &o);
        char what[96];
        snprintf(what, sizeof what, "attention_ex case %zu", k);
        check_close(what, o1, o2, (size_t)T * NH * HS, 1e-10, 1e-5);
        check_close(what, a1, a2, (size_t)NH * T * Tk, 1e-10, 1e-5);
        /* the window: nothing outside [i - window + 1, i] */
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++)
                for (int j = 0; j < Tk; j++) {
                    int i = p0 + t, vis = j <= i && (!o.window || i - j < o.window);
                    if (!vis) assert_true(a1[((size_t)h * T + t) * Tk + j] == 0.0f);
                }
        /* with the default options, kern_attention's numbers */
        if (o.softcap == 0.0f && o.window == 0) {
            struct kern_attn_opts d = {1.0f / sqrtf((float)HS), 0.0f, 0};
            kern_attention_ex(o1, a1, q, kc, vc, T, p0, NH, NKV, HS, Tk, &d);
            kern_attention(o2, a2, q, kc, vc, T, p0, NH, NKV, HS, Tk);
            check_close("attention_ex == attention", o1, o2, (size_t)T * NH * HS, 1e-12, 1e-6);
        }
        free(q), free(kc), free(vc), free(o1), free(o2), free(a1), free(a2);
    }
}

/* f = sum(out * g): central differences on q and k against the backward. */
static void test_attention_ex_backward(void **state) {
    (void)state;
    int   T = 9, NH = 4, NKV = 2, HS = 8, qd = NH * HS, kvd = NKV * HS;
    struct kern_attn_opts o = {0.3f, 1.5f, 4};
    struct rng r;
    rng_seed(&r, 6);
    float *q = randv(&r, (size_t)T * qd, 2), *k = randv(&r, (size_t)T * kvd, 2);
    float *v = randv(&r, (size_t)T * kvd, 1), *g = randv(&r, (size_t)T * qd, 1);
    float *out = xmalloc(sizeof(float) * T * qd), *att = xmalloc(sizeof(float) * NH * T * T);
    float *dq = xmalloc(sizeof(float) * T * qd), *dk = xmalloc(sizeof(float) * T * kvd);
    float *dv = xmalloc(sizeof(float) * T * kvd), *scr = xmalloc(sizeof(float) * 2 * T * T);
    kern_attention_ex(out, att, q, k, v, T, 0, NH, NKV, HS, T, &o);
    kern_attention_ex_backward(dq, dk, dv, g, att, q, k, v, T, NH, NKV, HS, T, &o, scr);
    float *arrs[3] = {q, k, v}, *grads[3] = {dq, dk, dv};
    int    sizes[3] = {T * qd, T * kvd, T * kvd};
    for (int a = 0; a < 3; a++)
        for (int i = 0; i < sizes[a]; i += 7) {
            float save = arrs[a][i], h = 1e-2f;
            double f[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                arrs[a][i] = save + (sgn ? -h : h);
                kern_attention_ex_ref(out, att, q, k, v, T, 0, NH, NKV, HS, T, &o);
                f[sgn] = 0;
                for (int j = 0; j < T * qd; j++) f[sgn] += (double)out[j] * (double)g[j];
            }
            arrs[a][i] = save;
            double fd = (f[0] - f[1]) / (double)(2 * h);
            if (fabs(fd - (double)grads[a][i]) > 2e-3 * fmax(1, fabs(fd)))
                fail_msg("attention backward arg %d [%d]: analytic %g, fd %g", a, i,
                         (double)grads[a][i], fd);
        }
    free(q), free(k), free(v), free(g), free(out), free(att), free(dq), free(dk), free(dv),
        free(scr);
}

// ---------------------------------------------------------------------------- rope

static void test_rope_table(void **state) {
    (void)state;
    int   n = 5, NH = 3, HS = 16, rot = 8, stride = NH * HS;
    float inv[8];
    struct rng r;
    rng_seed(&r, 7);
    kern_rope_inv_freq(inv, rot, 10000.0f, KERN_ROPE_SCALING_NONE, 1, 0, 0, 0);
    float *x = randv(&r, (size_t)n * stride, 1), *a = xmalloc(sizeof(float) * n * stride);
    float *b = xmalloc(sizeof(float) * n * stride);
    memcpy(a, x, sizeof(float) * n * stride);
    memcpy(b, x, sizeof(float) * n * stride);
    kern_rope_table(a, n, stride, 3, NH, HS, rot, inv, 0);
    kern_rope_table_ref(b, n, stride, 3, NH, HS, rot, inv);
    check_close("rope_table", a, b, (size_t)n * stride, 1e-12, 1e-5);
    /* dims past rot pass through; norms kept; the inverse undoes it */
    for (int t = 0; t < n; t++)
        for (int h = 0; h < NH; h++) {
            const float *xa = a + t * stride + h * HS, *x0 = x + t * stride + h * HS;
            double na = 0, n0 = 0;
            for (int d = 0; d < HS; d++) {
                if (d >= rot) assert_true(xa[d] == x0[d]);
                na += (double)(xa[d] * xa[d]);
                n0 += (double)(x0[d] * x0[d]);
            }
            assert_true(fabs(na - n0) < 1e-4 * n0);
        }
    kern_rope_table(a, n, stride, 3, NH, HS, rot, inv, 1);
    check_close("rope_table inverse", a, x, (size_t)n * stride, 1e-10, 1e-5);
    /* full dims and the default frequencies: kern_rope's numbers (rotate_half) */
    float inv16[8];
    kern_rope_inv_freq(inv16, HS, 10000.0f, KERN_ROPE_SCALING_NONE, 1, 0, 0, 0);
    memcpy(a, x, sizeof(float) * n * stride);
    memcpy(b, x, sizeof(float) * n * stride);
    kern_rope_table(a, n, stride, 3, NH, HS, HS, inv16, 0);
    kern_rope(b, n, stride, 3, NH, HS, 10000.0f, 1, 0);
    assert_memory_equal(a, b, sizeof(float) * n * stride);
    free(x), free(a), free(b);
}

/* Llama 3.1's published frequencies: head 128, theta 500000, factor 8, low 1, high 4,
 * original 8192: the highest frequencies are kept, the lowest divided by 8, the middle
 * interpolated (values from HF's _compute_llama3_parameters). */
static void test_rope_llama3_freqs(void **state) {
    (void)state;
    float inv[64], base[64];
    kern_rope_inv_freq(base, 128, 500000.0f, KERN_ROPE_SCALING_NONE, 1, 0, 0, 0);
    kern_rope_inv_freq(inv, 128, 500000.0f, KERN_ROPE_SCALING_LLAMA3, 8.0f, 1.0f, 4.0f, 8192);
    int kept = 0, divided = 0, between = 0;
    for (int i = 0; i < 64; i++) {
        double wl = 2 * M_PI / (double)base[i];
        if (wl < 8192.0 / 4) {
            assert_true(inv[i] == base[i]), kept++;
        } else if (wl > 8192.0) {
            assert_true(fabs((double)(inv[i] - base[i] / 8)) < 1e-12 + 1e-6 * (double)base[i]),
                divided++;
        } else {
            double s = (8192.0 / wl - 1.0) / 3.0,
                   want = (1 - s) * (double)base[i] / 8 + s * (double)base[i];
            assert_true(fabs((double)inv[i] - want) < 1e-6 * want), between++;
        }
    }
    assert_true(kept > 0 && divided > 0 && between > 0);
    /* HF's: inv_freq[0] = 1 (kept) and inv_freq[63] = 500000^(-126/128) / 8 */
    assert_true(inv[0] == 1.0f);
    assert_true(fabs((double)inv[63] - pow(500000.0, -126.0 / 128) / 8) < 1e-12);
    kern_rope_inv_freq(inv, 8, 10000.0f, KERN_ROPE_SCALING_LINEAR, 8.0f, 0, 0, 0);
    kern_rope_inv_freq(base, 8, 10000.0f, KERN_ROPE_SCALING_NONE, 1, 0, 0, 0);
    for (int i = 0; i < 4; i++) assert_true(fabs(inv[i] - base[i] / 8) < 1e-9);
}

// ---------------------------------------------------------------------------- bf16 / f16

static void test_conversions(void **state) {
    (void)state;
    /* bit patterns: BF16 1.0 = 0x3f80, -2 = 0xc000; F16 1.0 = 0x3c00, 65504 = 0x7bff,
     * 2^-24 (least subnormal) = 0x0001, 0.1 -> 0x2e66 (RNE) */
    assert_int_equal(kern_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(kern_f32_to_bf16(-2.0f), 0xc000);
    assert_true(kern_bf16_to_f32(0x3f80) == 1.0f);
    assert_int_equal(kern_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(kern_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(kern_f32_to_f16(ldexpf(1.0f, -24)), 0x0001);
    assert_int_equal(kern_f32_to_f16(0.1f), 0x2e66);
    assert_int_equal(kern_f32_to_f16(1e6f), 0x7c00);
    assert_true(kern_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    assert_true(kern_f16_to_f32(0x7bff) == 65504.0f);
    /* round-to-nearest-even on a tie: 1 + 2^-8 is halfway between two BF16 values */
    assert_int_equal(kern_f32_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3f80);
    assert_int_equal(kern_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)), 0x3f82);
    /* every F16 value survives the round trip */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        assert_int_equal(kern_f32_to_f16(kern_f16_to_f32((uint16_t)h)), h);
    }
}

/* portable: 0 the CPU's path, 1 the portable loop, 2 the CPU's without AVX512_BF16 (its
 * AVX-512F widening path, what CPUs without the BF16 instructions run) */
static void check_lp(enum kern_wtype wt, int portable) {
    static const struct { int n, d_in, d_out, bias; } cases[] = {
        {1, 64, 48, 1}, {1, 2304, 300, 0}, {1, 37, 5, 1}, {7, 96, 64, 1}, {33, 100, 17, 0},
        {3, 4096, 40, 1},
    };
    struct rng r;
    rng_seed(&r, 8);
    kern_lp_force_portable(portable == 1);
    kern_lp_force_no_bf16_insn(portable == 2);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int       n = cases[c].n, di = cases[c].d_in, dout = cases[c].d_out;
        float    *x = randv(&r, (size_t)n * di, 1), *wf = randv(&r, (size_t)dout * di, 0.1f);
        float    *b = cases[c].bias ? randv(&r, dout, 1) : NULL;
        uint16_t *w = xmalloc(sizeof(uint16_t) * dout * di);
        for (int i = 0; i < dout * di; i++)
            w[i] = wt == KERN_W_BF16 ? kern_f32_to_bf16(wf[i]) : kern_f32_to_f16(wf[i]);
        float *o1 = xmalloc(sizeof(float) * n * dout), *o2 = xmalloc(sizeof(float) * n * dout);
        float *scr = xmalloc(sizeof(float) * kern_lp_scratch_floats(di));
        kern_matmul_lp(o1, x, w, wt, b, n, di, dout, scr);
        kern_matmul_lp_ref(o2, x, w, wt, b, n, di, dout);
        char what[96];
        snprintf(what, sizeof what, "%s %s %dx%dx%d", wt == KERN_W_BF16 ? "bf16" : "f16",
                 portable == 1 ? "portable" : kern_lp_path(), n, di, dout);
        /* float32 accuracy (a two-way BF16 split would give ~1e-10 NMSE, ~1e-4 max) */
        check_close(what, o1, o2, (size_t)n * dout, 1e-12, 2e-5 * sqrt(di / 64.0));
        /* backward: dinp = dout . W, accumulating */
        float *g = randv(&r, (size_t)n * dout, 1), *d1 = xcalloc((size_t)n * di, sizeof(float));
        float *d2 = xcalloc((size_t)n * di, sizeof(float));
        kern_matmul_lp_backward(d1, g, w, wt, n, di, dout, 0, scr);
        for (int t = 0; t < n; t++)
            for (int i = 0; i < di; i++) {
                double s = 0;
                for (int o = 0; o < dout; o++)
                    s += (double)g[t * dout + o] *
                         (double)(wt == KERN_W_BF16 ? kern_bf16_to_f32(w[o * di + i])
                                                    : kern_f16_to_f32(w[o * di + i]));
                d2[t * di + i] = (float)s;
            }
        check_close("lp backward", d1, d2, (size_t)n * di, 1e-12, 1e-4);
        kern_matmul_lp_backward(d1, g, w, wt, n, di, dout, 1, scr);
        for (int i = 0; i < n * di; i++) d2[i] *= 2;
        check_close("lp backward acc", d1, d2, (size_t)n * di, 1e-12, 2e-4);
        free(x), free(wf), free(b), free(w), free(o1), free(o2), free(scr), free(g), free(d1),
            free(d2);
    }
    kern_lp_force_portable(0);
    kern_lp_force_no_bf16_insn(0);
}

static void test_matmul_lp_vs_ref(void **state) {
    (void)state;
    check_lp(KERN_W_BF16, 0);
    check_lp(KERN_W_BF16, 1);
    check_lp(KERN_W_BF16, 2);
    kern_lp_force_no_bf16_insn(1);
    print_message("# bf16 single-row path without the BF16 instructions: %s\n", kern_lp_path());
    kern_lp_force_no_bf16_insn(0);
    check_lp(KERN_W_F16, 0);
    check_lp(KERN_W_F16, 1);
    print_message("# bf16 single-row path on this CPU: %s\n", kern_lp_path());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gelu_erf),
        cmocka_unit_test(test_geglu),
        cmocka_unit_test(test_attention_ex_vs_ref),
        cmocka_unit_test(test_attention_ex_backward),
        cmocka_unit_test(test_rope_table),
        cmocka_unit_test(test_rope_llama3_freqs),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_matmul_lp_vs_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
