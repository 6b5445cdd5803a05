/*
 * kern_dec — decode kernels (see kern_dec.h). The AVX-512 variants are compiled with target
 * attributes and chosen at run time with __builtin_cpu_supports, so the build needs no -march
 * and the binary runs on any x86-64 (and the portable loops everywhere else).
 *
 * Matrix-vector: rows in blocks of eight, eight accumulators of 16 lanes (8 lanes when
 * d_in <= 8, e.g. attention scores over head_dim 8), masked loads for the tail of a row,
 * and one horizontal sum for the eight rows together (fold to 256 bits, three rounds of
 * hadd, one cross-lane add) instead of one per row.
 * Softmax: Cephes' expf polynomial (the one kern.c's exp_approx uses), sixteen lanes at a
 * time, range reduction by round-to-nearest and the power of two by vscalefps.
 */
#include "model/kern_dec.h"

#include <math.h>
#include <stddef.h>

#include "model/kern.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KERN_X86 1
#endif

static int force_portable;

void kern_dec_force_portable(int on) { force_portable = on; }

static int use_avx512(void) {
#ifdef KERN_X86
    return !force_portable && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

int kern_dec_vector(void) { return use_avx512(); }

const char *kern_dec_path(void) { return use_avx512() ? "avx512" : "portable"; }

// ---------------------------------------------------------------------------- portable

static void matvec_portable(float *out, const float *x, const float *w, const float *b,
                            int d_in, int d_out, int ldw, float scale) {
    for (int o = 0; o < d_out; o++)
        out[o] = scale * kern_dot4(w + (size_t)o * ldw, x, d_in) + (b ? b[o] : 0.0f);
}

// ---------------------------------------------------------------------------- AVX-512

#ifdef KERN_X86
#define KD_TARGET __attribute__((target("avx512f,avx512vl,fma")))

/* the sums of eight 8-lane vectors, as one vector: element r is the sum of y[r] */
KD_TARGET static inline __m256 hsum8x8(const __m256 y[8]) {
    __m256 h01 = _mm256_hadd_ps(y[0], y[1]), h23 = _mm256_hadd_ps(y[2], y[3]);
    __m256 h45 = _mm256_hadd_ps(y[4], y[5]), h67 = _mm256_hadd_ps(y[6], y[7]);
    __m256 a = _mm256_hadd_ps(h01, h23), b = _mm256_hadd_ps(h45, h67);
    /* a = [s0 s1 s2 s3 | s0' s1' s2' s3'] (low and high halves of each vector) */
    return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}

KD_TARGET static inline __m256 fold512(__m512 a) {
    return _mm256_add_ps(_mm512_castps512_ps256(a),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
}

KD_TARGET static inline void put8(float *out, __m256 s, const float *b, int o, float scale) {
    s = _mm256_mul_ps(s, _mm256_set1_ps(scale));
    if (b) s = _mm256_add_ps(s, _mm256_loadu_ps(b + o));
    _mm256_storeu_ps(out + o, s);
}

/* d_in <= 8: one masked 8-lane load per row */
KD_TARGET static void matvec_narrow(float *out, const float *x, const float *w, const float *b,
                                    int d_in, int d_out, int ldw, float scale) {
    __mmask8 m = (__mmask8)((1u << d_in) - 1);
    __m256   xv = _mm256_maskz_loadu_ps(m, x);
    int      o = 0;
    for (; o + 8 <= d_out; o += 8) {
        __m256 y[8];
        for (int r = 0; r < 8; r++)
            y[r] = _mm256_mul_ps(_mm256_maskz_loadu_ps(m, w + (size_t)(o + r) * ldw), xv);
        put8(out, hsum8x8(y), b, o, scale);
    }
    for (; o < d_out; o++) {
        __m256 p = _mm256_mul_ps(_mm256_maskz_loadu_ps(m, w + (size_t)o * ldw), xv);
        __m128 q = _mm_add_ps(_mm256_castps256_ps128(p), _mm256_extractf128_ps(p, 1));
        q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        q = _mm_add_ss(q, _mm_movehdup_ps(q));
        out[o] = scale * _mm_cvtss_f32(q) + (b ? b[o] : 0.0f);
    }
}

KD_TARGET static void matvec_avx512(float *out, const float *x, const float *w, const float *b,
                                    int d_in, int d_out, int ldw, float scale) {
    if (d_in <= 8) {
        matvec_narrow(out, x, w, b, d_in, d_out, ldw, scale);
        return;
    }
    int       full = d_in & ~15, rem = d_in - full;
    __mmask16 m = (__mmask16)((1u << rem) - 1);
    int       o = 0;
    for (; o + 8 <= d_out; o += 8) {
        const float *w0 = w + (size_t)o * ldw;
        __m512       a[8];
        for (int r = 0; r < 8; r++) a[r] = _mm512_setzero_ps();
        for (int i = 0; i < full; i += 16) {
            __m512 xv = _mm512_loadu_ps(x + i);
            for (int r = 0; r < 8; r++)
                a[r] = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + (size_t)r * ldw + i), xv, a[r]);
        }
        if (rem) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + full);
            for (int r = 0; r < 8; r++)
                a[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w0 + (size_t)r * ldw + full),
                                       xv, a[r]);
        }
        __m256 y[8];
        for (int r = 0; r < 8; r++) y[r] = fold512(a[r]);
        put8(out, hsum8x8(y), b, o, scale);
    }
    for (; o < d_out; o++) {
        const float *wr = w + (size_t)o * ldw;
        __m512       a0 = _mm512_setzero_ps();
        for (int i = 0; i < full; i += 16)
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(wr + i), _mm512_loadu_ps(x + i), a0);
        if (rem)
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, wr + full),
                                 _mm512_maskz_loadu_ps(m, x + full), a0);
        out[o] = scale * _mm512_reduce_add_ps(a0) + (b ? b[o] : 0.0f);
    }
}

/* exp of 16 lanes: Cephes expf (|rel err| ~1 ulp); below -104 gives 0, NaN stays NaN */
KD_TARGET static inline __m512 exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x); /* NaN in x passes through */
    x = _mm512_min_ps(_mm512_set1_ps(88.72283f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

KD_TARGET static void softmax_avx512(float *x, int n) {
    int       full = n & ~15, rem = n - full;
    __mmask16 m = (__mmask16)((1u << rem) - 1);
    __m512    mx = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < full; i += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(x + i));
    if (rem) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), m, x + full));
    __m512 vmx = _mm512_set1_ps(_mm512_reduce_max_ps(mx)), s = _mm512_setzero_ps();
    for (int i = 0; i < full; i += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vmx));
        _mm512_storeu_ps(x + i, e);
        s = _mm512_add_ps(s, e);
    }
    if (rem) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + full), vmx));
        _mm512_mask_storeu_ps(x + full, m, e);
        s = _mm512_add_ps(s, _mm512_maskz_mov_ps(m, e));
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(s));
    for (int i = 0; i < full; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    if (rem) _mm512_mask_storeu_ps(x + full, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + full), inv));
}

/* o (HS) = sum_j p[j] v[j * ldv ..]: 16 columns at a time, four keys in flight */
KD_TARGET static void weighted_sum_avx512(float *o, const float *p, const float *v, int n,
                                          int HS, int ldv) {
    for (int c = 0; c < HS; c += 16) {
        __mmask16 m = (__mmask16)(HS - c >= 16 ? 0xffffu : (1u << (HS - c)) - 1);
        __m512    a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        const float *vc = v + c;
        int          j = 0;
        for (; j + 4 <= n; j += 4) {
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), _mm512_maskz_loadu_ps(m, vc + (size_t)j * ldv), a0);
            a1 = _mm512_fmadd_ps(_mm512_set1_ps(p[j + 1]),
                                 _mm512_maskz_loadu_ps(m, vc + (size_t)(j + 1) * ldv), a1);
            a2 = _mm512_fmadd_ps(_mm512_set1_ps(p[j + 2]),
                                 _mm512_maskz_loadu_ps(m, vc + (size_t)(j + 2) * ldv), a2);
            a3 = _mm512_fmadd_ps(_mm512_set1_ps(p[j + 3]),
                                 _mm512_maskz_loadu_ps(m, vc + (size_t)(j + 3) * ldv), a3);
        }
        for (; j < n; j++)
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), _mm512_maskz_loadu_ps(m, vc + (size_t)j * ldv), a0);
        _mm512_mask_storeu_ps(o + c, m, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    }
}
#endif

// ---------------------------------------------------------------------------- API

void kern_matvec(float *out, const float *x, const float *w, const float *b, int d_in,
                 int d_out, int ldw, float scale) {
#ifdef KERN_X86
    if (use_avx512()) {
        matvec_avx512(out, x, w, b, d_in, d_out, ldw, scale);
        return;
    }
#endif
    matvec_portable(out, x, w, b, d_in, d_out, ldw, scale);
}

void kern_matvec_ref(float *out, const float *x, const float *w, const float *b, int d_in,
                     int d_out, int ldw, float scale) {
    for (int o = 0; o < d_out; o++) {
        double s = 0;
        for (int i = 0; i < d_in; i++) s += (double)w[(size_t)o * ldw + i] * (double)x[i];
        out[o] = (float)((double)scale * s + (b ? (double)b[o] : 0.0));
    }
}

void kern_softmax_dec(float *x, int n) {
#ifdef KERN_X86
    if (use_avx512()) {
        softmax_avx512(x, n);
        return;
    }
#endif
    kern_softmax(x, n);
}

void kern_attend1(float *out, float *att, const float *q, const float *kc, const float *vc,
                  int n_keys, int NH, int NKV, int HS, int att_stride, float scale) {
    int grp = NH / NKV, kvd = NKV * HS, avx = use_avx512();
    for (int h = 0; h < NH; h++) {
        const float *q_h = q + (size_t)h * HS, *k_h = kc + (size_t)(h / grp) * HS;
        const float *v_h = vc + (size_t)(h / grp) * HS;
        float       *a_h = att + (size_t)h * att_stride, *o_h = out + (size_t)h * HS;
#ifdef KERN_X86
        if (avx) {
            matvec_avx512(a_h, q_h, k_h, NULL, HS, n_keys, kvd, scale);
            softmax_avx512(a_h, n_keys);
            weighted_sum_avx512(o_h, a_h, v_h, n_keys, HS, kvd);
            continue;
        }
#endif
        (void)avx;
        matvec_portable(a_h, q_h, k_h, NULL, HS, n_keys, kvd, scale);
        kern_softmax(a_h, n_keys);
        for (int d = 0; d < HS; d++) o_h[d] = 0.0f;
        for (int j = 0; j < n_keys; j++) {
            const float *v_j = v_h + (size_t)j * kvd;
            float        p = a_h[j];
            for (int d = 0; d < HS; d++) o_h[d] += p * v_j[d];
        }
    }
}

void kern_attend1_ref(float *out, float *att, const float *q, const float *kc, const float *vc,
                      int n_keys, int NH, int NKV, int HS, int att_stride, float scale) {
    int grp = NH / NKV, kvd = NKV * HS;
    for (int h = 0; h < NH; h++) {
        const float *q_h = q + (size_t)h * HS;
        float       *a_h = att + (size_t)h * att_stride;
        int          kh = h / grp;
        double       mx = -INFINITY, sum = 0;
        for (int j = 0; j < n_keys; j++) {
            double s = 0;
            for (int d = 0; d < HS; d++)
                s += (double)q_h[d] * (double)kc[(size_t)j * kvd + (size_t)kh * HS + d];
            a_h[j] = (float)(s * (double)scale);
            if ((double)a_h[j] > mx) mx = (double)a_h[j];
        }
        for (int j = 0; j < n_keys; j++) sum += exp((double)a_h[j] - mx);
        for (int j = 0; j < n_keys; j++) a_h[j] = (float)(exp((double)a_h[j] - mx) / sum);
        for (int d = 0; d < HS; d++) {
            double o = 0;
            for (int j = 0; j < n_keys; j++)
                o += (double)a_h[j] * (double)vc[(size_t)j * kvd + (size_t)kh * HS + d];
            out[(size_t)h * HS + d] = (float)o;
        }
    }
}
