/*
 * kern_dec — the single-row kernels of decoding (one token per forward): matrix-vector
 * products, single-query attention and softmax. At small widths (stories260K: d 64, head_dim
 * 8) a decode step is dominated by per-row overheads (a function call and a horizontal sum per
 * output, scalar exp in the softmax), not by arithmetic; these kernels take rows in blocks of
 * eight with the horizontal sums done together, and exp sixteen lanes at a time.
 * Pure functions over raw float pointers (STYLE rule 19), each with a naive `_ref` twin
 * (double accumulation, libm exp), compared in tests/unit/test_kern_dec.c.
 *
 * Included by: model and the wings above it (sae, store, graders, evals, cli).
 *
 * Paths, chosen at run time from the CPU (never at build time: one binary runs everywhere):
 * "avx512" (AVX-512F + AVX-512VL: 512-bit fused multiply-adds, masked tails, the vector exp)
 * or "portable" (plain C loops). Both give the numbers of the _ref twins up to float32
 * rounding and summation order; the vector exp is within 2 ulp of expf.
 */
#ifndef EV_KERN_DEC_H
#define EV_KERN_DEC_H

/* out[o] = scale * (w[o * ldw .. + d_in) . x) + (b ? b[o] : 0) for o < d_out; ldw >= d_in
 * (a strided view, e.g. one head's columns of the key cache). */
void kern_matvec(float *out, const float *x, const float *w, const float *b, int d_in,
                 int d_out, int ldw, float scale);
void kern_matvec_ref(float *out, const float *x, const float *w, const float *b, int d_in,
                     int d_out, int ldw, float scale);

/* In-place softmax of x[0..n) (max-subtracted), n >= 1. */
void kern_softmax_dec(float *x, int n);

/*
 * Attention of one query at position n_keys - 1 over keys/values 0 .. n_keys - 1:
 *   out (NH*HS); att (NH, att_stride) probabilities, att_stride >= n_keys;
 *   q (NH*HS); kc, vc (>= n_keys, NKV*HS) caches; query head h reads kv head h / (NH / NKV);
 *   scores scale * q.k.
 * kern_attention's result for T == 1, pos0 = n_keys - 1.
 */
void kern_attend1(float *out, float *att, const float *q, const float *kc, const float *vc,
                  int n_keys, int NH, int NKV, int HS, int att_stride, float scale);
void kern_attend1_ref(float *out, float *att, const float *q, const float *kc, const float *vc,
                      int n_keys, int NH, int NKV, int HS, int att_stride, float scale);

/* a . b over n floats in four interleaved partial sums (plain C the compiler vectorises):
 * the portable matvec's row product and kern_attention's per-key score. Inline, so that each
 * caller keeps its loop. */
static inline float kern_dot4(const float *restrict a, const float *restrict b, int n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int   i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

/* Which path this CPU takes: "avx512" or "portable". */
const char *kern_dec_path(void);
/* 1 when the vector (AVX-512) path is taken, 0 for the portable one. */
int kern_dec_vector(void);
/* Forces the portable path (tests compare it with the CPU's); 0 restores. */
void kern_dec_force_portable(int on);

#endif
