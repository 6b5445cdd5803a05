/*
 * kern_arch — the numeric kernels that only some architectures need, beside kern.c's common
 * ones (kept apart so that architecture work and kern.c's speed work do not collide):
 * exact (erf) GELU (GPT-NeoX), GeGLU with the tanh GELU (Gemma), attention with a chosen
 * scale, tanh logit soft-capping and a sliding window (Gemma 2/3), rotary embeddings from a
 * frequency table (partial rotary dims, Llama 3 and linear scaling, per-layer bases), and
 * soft-capping of a vector. Pure functions over raw float pointers (STYLE rule 19); every
 * optimised kernel has a `_ref` twin, compared in tests/unit/test_kern_arch.c.
 *
 * Included by: model and the wings above it (sae, store, graders, evals, cli).
 *
 * Layouts as kern.h: activations (n, C) row-major; attention q (T, NH*HS), key/value cache
 * rows (pos, NKV*HS), query head h reads kv head h / (NH / NKV).
 */
#ifndef EV_KERN_ARCH_H
#define EV_KERN_ARCH_H

#include <stddef.h>

/* GELU with erf: 0.5 x (1 + erf(x / sqrt 2)) (HF "gelu"). out may equal x. */
void kern_gelu_erf(float *out, const float *x, size_t n);
void kern_gelu_erf_ref(float *out, const float *x, size_t n);
/* dx = dout * gelu_erf'(x) */
void kern_gelu_erf_backward(float *dx, const float *dout, const float *x, size_t n);

/* GeGLU: out = gelu_tanh(gate) * up (Gemma's gelu_pytorch_tanh). out may equal gate. */
void kern_geglu(float *out, const float *gate, const float *up, size_t n);
void kern_geglu_ref(float *out, const float *gate, const float *up, size_t n);
/* dgate, dup from dout, gate, up. */
void kern_geglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, size_t n);

/* x = cap * tanh(x / cap), in place (final-logit soft-capping). */
void kern_softcap(float *x, size_t n, float cap);
/* dx *= 1 - (y / cap)^2 where y is the capped output, in place. */
void kern_softcap_backward(float *dx, const float *y, size_t n, float cap);

/* How attention scores are formed: s = scale * q.k, then cap * tanh(s / cap) when softcap > 0;
 * key j is visible to the query at position i when j <= i and, when window > 0,
 * i - j < window. */
struct kern_attn_opts {
    float scale;   /* e.g. 1 / sqrt(HS), or query_pre_attn_scalar^-1/2 */
    float softcap; /* 0: none */
    int   window;  /* 0: full causal */
};

/*
 * Causal attention of T queries at positions pos0 .. pos0+T-1 over keys/values 0 .. pos0+T-1,
 * as kern_attention (kern.h) with the scores of o:
 *   out  (T, NH*HS)
 *   att  (NH, T, att_stride) probabilities; att_stride >= pos0 + T; masked entries 0
 *   q    (T, NH*HS); kc, vc (>= pos0+T, NKV*HS)
 */
void kern_attention_ex(float *out, float *att, const float *q, const float *kc, const float *vc,
                       int T, int pos0, int NH, int NKV, int HS, int att_stride,
                       const struct kern_attn_opts *o);
void kern_attention_ex_ref(float *out, float *att, const float *q, const float *kc,
                           const float *vc, int T, int pos0, int NH, int NKV, int HS,
                           int att_stride, const struct kern_attn_opts *o);
/*
 * Backward of kern_attention_ex for pos0 == 0: from dout (T, NH*HS) gives dq (T, NH*HS), dk
 * and dv (T, NKV*HS), all overwritten. scratch (2 * T * T) floats with a soft cap, else
 * (T * T). The soft-capped scores are recomputed from q and k.
 */
void kern_attention_ex_backward(float *dq, float *dk, float *dv, const float *dout,
                                const float *att, const float *q, const float *k,
                                const float *v, int T, int NH, int NKV, int HS, int att_stride,
                                const struct kern_attn_opts *o, float *scratch);

/*
 * Rotary embedding from a frequency table, HF rotate_half pairs (i, i + rot/2) over the first
 * rot_dims of each head (the rest pass through: GPT-NeoX's partial rotary): for rows t of x
 * (n, stride) at positions pos0 + t, n_heads heads of head_dim. Angle = (float)pos *
 * inv_freq[i], i < rot_dims / 2. inverse != 0 rotates by -angle (backward).
 */
void kern_rope_table(float *x, int n, int stride, int pos0, int n_heads, int head_dim,
                     int rot_dims, const float *inv_freq, int inverse);
void kern_rope_table_ref(float *x, int n, int stride, int pos0, int n_heads, int head_dim,
                         int rot_dims, const float *inv_freq);

enum kern_rope_scaling {
    KERN_ROPE_SCALING_NONE,
    KERN_ROPE_SCALING_LINEAR, /* inv_freq / factor (positions divided by factor) */
    KERN_ROPE_SCALING_LLAMA3, /* Llama 3.1: low frequencies / factor, high kept, smooth between */
};

/*
 * inv_freq (rot_dims / 2) = 1 / theta^(2i / rot_dims) in float32 as HF computes it, then
 * scaled: linear (/ factor) or llama3 (HF's _compute_llama3_parameters: wavelength 2 pi /
 * inv_freq above orig_max / low_freq_factor is divided by factor, below orig_max /
 * high_freq_factor kept, smoothly interpolated between).
 */
void kern_rope_inv_freq(float *inv_freq, int rot_dims, float theta,
                        enum kern_rope_scaling scaling, float factor, float low_freq_factor,
                        float high_freq_factor, int orig_max);

#endif
