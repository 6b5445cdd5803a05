/*
 * kern — the numeric kernels of the model runtime: pure functions over raw float pointers
 * (STYLE rule 19: outputs first, then inputs, weights, dims). None allocates, fails or logs.
 *
 * Included by: model and the wings above it (sae, store, graders, evals, cli).
 *
 * Every optimised kernel has a naive `_ref` twin in kern.c (STYLE rule 20);
 * tests/unit/test_kern.c compares each pair (NMSE and max-abs). The backward kernels are
 * checked through the model's finite-difference gradient tests.
 *
 * Layouts: activations are row-major (n, C); weight matrices are (d_out, d_in), y = W x + b.
 * Attention: q (T, NH*HS), key/value cache rows (pos, NKV*HS), query head h reads kv head
 * h / (NH / NKV) (grouped-query attention).
 */
#ifndef EV_KERN_H
#define EV_KERN_H

#include <stddef.h>

/* out (n, d_out) = inp (n, d_in) . w^T (w is (d_out, d_in)) + b (d_out, or NULL).
 * cblas_sgemm for n > 1; for n == 1 (decode) kern_dec.c's kern_matvec when small, else sgemv. */
void kern_matmul(float *out, const float *inp, const float *w, const float *b, int n, int d_in,
                 int d_out);
void kern_matmul_ref(float *out, const float *inp, const float *w, const float *b, int n,
                     int d_in, int d_out);
/* dinp (n, d_in) (+)= dout (n, d_out) . w (d_out, d_in); accumulate when acc != 0. */
void kern_matmul_backward(float *dinp, const float *dout, const float *w, int n, int d_in,
                          int d_out, int acc);

/* RMSNorm per row: out = x * w / sqrt(mean(x^2) + eps); rstd (n) or NULL receives
 * 1 / sqrt(mean(x^2) + eps). out may equal x. */
void kern_rmsnorm(float *out, float *rstd, const float *x, const float *w, int n, int C,
                  float eps);
void kern_rmsnorm_ref(float *out, const float *x, const float *w, int n, int C, float eps);
/* dx (n, C) += d/dx of rmsnorm given dout, x, w and the forward's rstd. */
void kern_rmsnorm_backward(float *dx, const float *dout, const float *x, const float *w,
                           const float *rstd, int n, int C);

/* LayerNorm per row: out = (x - mean) * rstd * w + b; mean, rstd (n) or NULL. */
void kern_layernorm(float *out, float *mean, float *rstd, const float *x, const float *w,
                    const float *b, int n, int C, float eps);
void kern_layernorm_ref(float *out, const float *x, const float *w, const float *b, int n, int C,
                        float eps);
/* dx (n, C) += d/dx of layernorm given dout, x, w and the forward's mean, rstd. */
void kern_layernorm_backward(float *dx, const float *dout, const float *x, const float *w,
                             const float *mean, const float *rstd, int n, int C);

/* In-place softmax of x[0..n) (max-subtracted). */
void kern_softmax(float *x, int n);
void kern_softmax_ref(float *x, int n);
/* log-softmax of x[0..n) into out (may equal x). */
void kern_log_softmax(float *out, const float *x, int n);

/* GPT-2 gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). out may equal x. */
void kern_gelu(float *out, const float *x, size_t n);
void kern_gelu_ref(float *out, const float *x, size_t n);
/* dx = dout * gelu'(x) */
void kern_gelu_backward(float *dx, const float *dout, const float *x, size_t n);

/* SwiGLU: out = silu(gate) * up, silu(x) = x / (1 + e^-x). out may equal gate. */
void kern_swiglu(float *out, const float *gate, const float *up, size_t n);
void kern_swiglu_ref(float *out, const float *gate, const float *up, size_t n);
/* dgate, dup from dout, gate, up. */
void kern_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                          const float *up, size_t n);

/* Rotary embedding, in place, for rows t of x (n, stride) at positions pos0 + t, over n_heads
 * heads of head_dim starting at column 0. half_style 0: llama2.c interleaved pairs (2i, 2i+1);
 * 1: HF rotate_half pairs (i, i + head_dim/2). inverse != 0 rotates by -angle (backward). */
void kern_rope(float *x, int n, int stride, int pos0, int n_heads, int head_dim, float theta,
               int half_style, int inverse);
void kern_rope_ref(float *x, int n, int stride, int pos0, int n_heads, int head_dim, float theta,
                   int half_style);

/*
 * Causal attention of T queries at positions pos0 .. pos0+T-1 over keys/values 0 .. pos0+T-1.
 *   out  (T, NH*HS)
 *   att  (NH, T, att_stride) probabilities; att_stride >= pos0 + T; masked entries set to 0
 *   q    (T, NH*HS)
 *   kc   (>= pos0+T, NKV*HS) key cache; vc likewise
 * Scale 1/sqrt(HS).
 */
void kern_attention(float *out, float *att, const float *q, const float *kc, const float *vc,
                    int T, int pos0, int NH, int NKV, int HS, int att_stride);
void kern_attention_ref(float *out, float *att, const float *q, const float *kc,
                        const float *vc, int T, int pos0, int NH, int NKV, int HS,
                        int att_stride);
/*
 * Backward of kern_attention for pos0 == 0 (all keys are in this pass): from dout (T, NH*HS)
 * gives dq (T, NH*HS), dk and dv (T, NKV*HS), all overwritten. scratch (T * T) floats.
 */
void kern_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                             const float *att, const float *q, const float *k, const float *v,
                             int T, int NH, int NKV, int HS, int att_stride, float *scratch);

#endif
