/*
 * kern_bf16 — products with BF16/F16 weights (see kern_bf16.h for the paths and their
 * accuracy). The AVX-512 variants are compiled with target attributes and chosen at run time
 * with __builtin_cpu_supports, so the build needs no -march and the binary runs on any x86-64
 * (and the portable loop everywhere else).
 */
#include "model/kern_bf16.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KERN_X86 1
#endif

/* weight rows widened per sgemm call: about a megabyte of float32, at least 16 rows */
#define PANEL_FLOATS (1 << 18)

// ---------------------------------------------------------------------------- conversions

float kern_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float    f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t kern_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float kern_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (e == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            e = 127 - 15 + 1;
            while (!(man & 0x400u)) {
                man <<= 1;
                e--;
            }
            u = sign | (e << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (e == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((e + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t kern_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (a < 0x38800000u) { /* below 2^-14: an F16 subnormal r * 2^-24 */
        if (a < 0x33000000u) return (uint16_t)sign; /* below 2^-25: rounds to 0 */
        /* f = man * 2^(e - 150) with the implicit bit, so r = man * 2^(e - 126) */
        uint32_t e = a >> 23, man = (a & 0x7fffffu) | 0x800000u, sh = 126 - e; /* 14..24 */
        uint32_t r = man >> sh, rem = man & ((1u << sh) - 1), half = 1u << (sh - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t v = a - 0x38000000u; /* rebias the exponent: 127 - 15 = 112 << 23 */
    uint32_t r = v >> 13, rem = v & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;
    return (uint16_t)(sign | r);
}

static float widen(uint16_t h, enum kern_wtype wt) {
    return wt == KERN_W_BF16 ? kern_bf16_to_f32(h) : kern_f16_to_f32(h);
}

// ---------------------------------------------------------------------------- one row

static int force_portable, force_no_bf16;

void kern_lp_force_portable(int on) { force_portable = on; }
void kern_lp_force_no_bf16_insn(int on) { force_no_bf16 = on; }

static float dot_portable(const uint16_t *w, enum kern_wtype wt, const float *x, int n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int   i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += widen(w[i], wt) * x[i];
        s1 += widen(w[i + 1], wt) * x[i + 1];
        s2 += widen(w[i + 2], wt) * x[i + 2];
        s3 += widen(w[i + 3], wt) * x[i + 3];
    }
    for (; i < n; i++) s0 += widen(w[i], wt) * x[i];
    return (s0 + s1) + (s2 + s3);
}

#ifdef KERN_X86
__attribute__((target("avx512f"))) static float dot_avx512f(const uint16_t *w,
                                                              enum kern_wtype wt,
                                                              const float *x, int n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int    i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i h0 = _mm256_loadu_si256((const __m256i *)(w + i));
        __m256i h1 = _mm256_loadu_si256((const __m256i *)(w + i + 16));
        __m512  w0, w1;
        if (wt == KERN_W_BF16) {
            w0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h0), 16));
            w1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h1), 16));
        } else {
            w0 = _mm512_cvtph_ps(h0);
            w1 = _mm512_cvtph_ps(h1);
        }
        a0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + i + 16), a1);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    for (; i < n; i++) s += widen(w[i], wt) * x[i];
    return s;
}

/* w . (x0 + x1 + x2) with x0, x1, x2 the three-way BF16 split of the input row */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static float
dot_bf16_split(const uint16_t *w, const uint16_t *x0, const uint16_t *x1, const uint16_t *x2,
               int n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps();
    int    i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512i vw = _mm512_loadu_si512((const void *)(w + i));
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)vw, (__m512bh)_mm512_loadu_si512((const void *)(x0 + i)));
        a1 = _mm512_dpbf16_ps(a1, (__m512bh)vw, (__m512bh)_mm512_loadu_si512((const void *)(x1 + i)));
        a2 = _mm512_dpbf16_ps(a2, (__m512bh)vw, (__m512bh)_mm512_loadu_si512((const void *)(x2 + i)));
    }
    if (i < n) {
        __mmask32 m = (__mmask32)((1ull << (n - i)) - 1);
        __m512i   vw = _mm512_maskz_loadu_epi16(m, w + i);
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)vw, (__m512bh)_mm512_maskz_loadu_epi16(m, x0 + i));
        a1 = _mm512_dpbf16_ps(a1, (__m512bh)vw, (__m512bh)_mm512_maskz_loadu_epi16(m, x1 + i));
        a2 = _mm512_dpbf16_ps(a2, (__m512bh)vw, (__m512bh)_mm512_maskz_loadu_epi16(m, x2 + i));
    }
    /* smallest first */
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a2, a1), a0));
}
#endif

enum lp_path { LP_PORTABLE, LP_AVX512F, LP_BF16_SPLIT };

static enum lp_path lp_path_for(enum kern_wtype wt) {
#ifdef KERN_X86
    if (force_portable) return LP_PORTABLE;
    if (wt == KERN_W_BF16 && !force_no_bf16 && __builtin_cpu_supports("avx512bf16"))
        return LP_BF16_SPLIT;
    if (__builtin_cpu_supports("avx512f")) return LP_AVX512F;
#else
    (void)wt;
#endif
    return LP_PORTABLE;
}

const char *kern_lp_path(void) {
    static const char *names[] = {"portable", "avx512f", "avx512bf16-split"};
    return names[lp_path_for(KERN_W_BF16)];
}

static void matvec(float *out, const float *x, const uint16_t *w, enum kern_wtype wt,
                   const float *b, int d_in, int d_out, float *scratch) {
    enum lp_path p = lp_path_for(wt);
#ifdef KERN_X86
    if (p == LP_BF16_SPLIT) {
        uint16_t *x0 = (uint16_t *)scratch, *x1 = x0 + d_in, *x2 = x1 + d_in;
        for (int i = 0; i < d_in; i++) {
            float r = x[i];
            x0[i] = kern_f32_to_bf16(r);
            r -= kern_bf16_to_f32(x0[i]); /* exact */
            x1[i] = kern_f32_to_bf16(r);
            r -= kern_bf16_to_f32(x1[i]);
            x2[i] = kern_f32_to_bf16(r);
        }
        for (int o = 0; o < d_out; o++)
            out[o] = dot_bf16_split(w + (size_t)o * d_in, x0, x1, x2, d_in) + (b ? b[o] : 0.0f);
        return;
    }
    if (p == LP_AVX512F) {
        for (int o = 0; o < d_out; o++)
            out[o] = dot_avx512f(w + (size_t)o * d_in, wt, x, d_in) + (b ? b[o] : 0.0f);
        return;
    }
#else
    (void)scratch;
#endif
    (void)p;
    for (int o = 0; o < d_out; o++)
        out[o] = dot_portable(w + (size_t)o * d_in, wt, x, d_in) + (b ? b[o] : 0.0f);
}

// ---------------------------------------------------------------------------- batches

size_t kern_lp_scratch_floats(int d_in_max) {
    size_t panel = (size_t)16 * d_in_max > PANEL_FLOATS ? (size_t)16 * d_in_max : PANEL_FLOATS;
    return panel + 2 * (size_t)d_in_max; /* + the split input row (3 x d_in 16-bit) */
}

static int panel_rows(int d_in, int d_out) {
    int p = PANEL_FLOATS / (d_in > 0 ? d_in : 1);
    if (p < 16) p = 16;
    return p < d_out ? p : d_out;
}

static void widen_rows(float *dst, const uint16_t *w, enum kern_wtype wt, size_t n) {
    if (wt == KERN_W_BF16)
        for (size_t i = 0; i < n; i++) dst[i] = kern_bf16_to_f32(w[i]);
    else
        for (size_t i = 0; i < n; i++) dst[i] = kern_f16_to_f32(w[i]);
}

void kern_matmul_lp(float *out, const float *inp, const uint16_t *w, enum kern_wtype wt,
                    const float *b, int n, int d_in, int d_out, float *scratch) {
    if (n == 1) {
        matvec(out, inp, w, wt, b, d_in, d_out, scratch);
        return;
    }
    int P = panel_rows(d_in, d_out);
    for (int o0 = 0; o0 < d_out; o0 += P) {
        int np = d_out - o0 < P ? d_out - o0 : P;
        widen_rows(scratch, w + (size_t)o0 * d_in, wt, (size_t)np * d_in);
        float beta = 0.0f;
        if (b) {
            for (int t = 0; t < n; t++)
                memcpy(out + (size_t)t * d_out + o0, b + o0, sizeof(float) * np);
            beta = 1.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, np, d_in, 1.0f, inp, d_in,
                    scratch, d_in, beta, out + o0, d_out);
    }
}

void kern_matmul_lp_ref(float *out, const float *inp, const uint16_t *w, enum kern_wtype wt,
                        const float *b, int n, int d_in, int d_out) {
    for (int t = 0; t < n; t++)
        for (int o = 0; o < d_out; o++) {
            double s = b ? (double)b[o] : 0.0;
            for (int i = 0; i < d_in; i++)
                s += (double)inp[(size_t)t * d_in + i] * (double)widen(w[(size_t)o * d_in + i], wt);
            out[(size_t)t * d_out + o] = (float)s;
        }
}

void kern_matmul_lp_backward(float *dinp, const float *dout, const uint16_t *w,
                             enum kern_wtype wt, int n, int d_in, int d_out, int acc,
                             float *scratch) {
    int P = panel_rows(d_in, d_out);
    for (int o0 = 0; o0 < d_out; o0 += P) {
        int np = d_out - o0 < P ? d_out - o0 : P;
        widen_rows(scratch, w + (size_t)o0 * d_in, wt, (size_t)np * d_in);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, d_in, np, 1.0f, dout + o0,
                    d_out, scratch, d_in, (acc || o0 > 0) ? 1.0f : 0.0f, dinp, d_in);
    }
}
