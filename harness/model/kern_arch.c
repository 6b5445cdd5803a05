/*
 * kern_arch — kernels for the architectures beyond GPT-2 and Llama: erf GELU, GeGLU, attention
 * with scale / soft-capping / sliding window, table-driven (partial, scaled) RoPE. Each beside
 * its naive `_ref` twin (see kern_arch.h). Like kern.c, no OpenMP: batched products go to
 * OpenBLAS's threads.
 */
#include "model/kern_arch.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "model/kern.h"

// ---------------------------------------------------------------------------- activations

void kern_gelu_erf(float *out, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

void kern_gelu_erf_ref(float *out, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        out[i] = (float)(0.5 * v * (1.0 + erf(v / sqrt(2.0))));
    }
}

void kern_gelu_erf_backward(float *dx, const float *dout, const float *x, size_t n) {
    const float k = 0.3989422804014327f; /* 1 / sqrt(2 pi) */
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float g = 0.5f * (1.0f + erff(v * (float)M_SQRT1_2)) + v * k * expf(-0.5f * v * v);
        dx[i] = dout[i] * g;
    }
}

void kern_geglu(float *out, const float *gate, const float *up, size_t n) {
    kern_gelu(out, gate, n);
    for (size_t i = 0; i < n; i++) out[i] *= up[i];
}

void kern_geglu_ref(float *out, const float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double v = gate[i];
        double g = 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
        out[i] = (float)(g * (double)up[i]);
    }
}

void kern_geglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                         const float *up, size_t n) {
    kern_gelu_backward(dgate, dout, gate, n);
    for (size_t i = 0; i < n; i++) dgate[i] *= up[i];
    kern_gelu(dup, gate, n);
    for (size_t i = 0; i < n; i++) dup[i] *= dout[i];
}

void kern_softcap(float *x, size_t n, float cap) {
    for (size_t i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}

void kern_softcap_backward(float *dx, const float *y, size_t n, float cap) {
    for (size_t i = 0; i < n; i++) {
        float u = y[i] / cap;
        dx[i] *= 1.0f - u * u;
    }
}

// ---------------------------------------------------------------------------- attention

/* The first key position visible to a query at position i. */
static int first_key(int i, int window) { return window > 0 && i - window + 1 > 0 ? i - window + 1 : 0; }

/* Row t of head h's scores a_t[0..Tk) (scale already applied): cap, softmax over the visible
 * keys [lo, i], zero elsewhere. */
static void scores_to_probs(float *a_t, int i, int Tk, const struct kern_attn_opts *o) {
    int lo = first_key(i, o->window), n = i - lo + 1;
    if (o->softcap > 0.0f) kern_softcap(a_t + lo, (size_t)n, o->softcap);
    kern_softmax(a_t + lo, n);
    for (int j = 0; j < lo; j++) a_t[j] = 0.0f;
    for (int j = i + 1; j < Tk; j++) a_t[j] = 0.0f;
}

void kern_attention_ex(float *out, float *att, const float *q, const float *kc, const float *vc,
                       int T, int pos0, int NH, int NKV, int HS, int att_stride,
                       const struct kern_attn_opts *o) {
    int Tk = pos0 + T, grp = NH / NKV, qd = NH * HS, kvd = NKV * HS;
    for (int h = 0; h < NH; h++) {
        int    kh = h / grp;
        float *a_h = att + (size_t)h * T * att_stride;
        if (T == 1) {
            const float *q_t = q + (size_t)h * HS;
            int          lo = first_key(pos0, o->window);
            for (int j = 0; j < Tk; j++) a_h[j] = 0.0f;
            for (int j = lo; j < Tk; j++) {
                const float *k_j = kc + (size_t)j * kvd + (size_t)kh * HS;
                float        s = 0.0f;
                for (int d = 0; d < HS; d++) s += q_t[d] * k_j[d];
                a_h[j] = s * o->scale;
            }
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, Tk, HS, o->scale,
                        q + (size_t)h * HS, qd, kc + (size_t)kh * HS, kvd, 0.0f, a_h, att_stride);
        }
        for (int t = 0; t < T; t++) scores_to_probs(a_h + (size_t)t * att_stride, pos0 + t, Tk, o);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, Tk, 1.0f, a_h, att_stride,
                    vc + (size_t)kh * HS, kvd, 0.0f, out + (size_t)h * HS, qd);
    }
}

void kern_attention_ex_ref(float *out, float *att, const float *q, const float *kc,
                           const float *vc, int T, int pos0, int NH, int NKV, int HS,
                           int att_stride, const struct kern_attn_opts *o) {
    int grp = NH / NKV, qd = NH * HS, kvd = NKV * HS, Tk = pos0 + T;
    for (int h = 0; h < NH; h++)
        for (int t = 0; t < T; t++) {
            int    kh = h / grp, i = pos0 + t, lo = first_key(i, o->window);
            float *a_t = att + ((size_t)h * T + t) * att_stride;
            double mx = -INFINITY, z = 0, sc[4096];
            for (int j = lo; j <= i; j++) {
                double s = 0;
                for (int d = 0; d < HS; d++)
                    s += (double)q[(size_t)t * qd + h * HS + d] *
                         (double)kc[(size_t)j * kvd + kh * HS + d];
                s *= (double)o->scale;
                if (o->softcap > 0.0f) s = (double)o->softcap * tanh(s / (double)o->softcap);
                sc[j - lo] = s;
                mx = s > mx ? s : mx;
            }
            for (int j = lo; j <= i; j++) z += exp(sc[j - lo] - mx);
            for (int j = 0; j < Tk; j++)
                a_t[j] = j < lo || j > i ? 0.0f : (float)(exp(sc[j - lo] - mx) / z);
            for (int d = 0; d < HS; d++) {
                double s = 0;
                for (int j = lo; j <= i; j++)
                    s += (double)a_t[j] * (double)vc[(size_t)j * kvd + kh * HS + d];
                out[(size_t)t * qd + h * HS + d] = (float)s;
            }
        }
}

void kern_attention_ex_backward(float *dq, float *dk, float *dv, const float *dout,
                                const float *att, const float *q, const float *k,
                                const float *v, int T, int NH, int NKV, int HS, int att_stride,
                                const struct kern_attn_opts *o, float *scratch) {
    int    grp = NH / NKV, qd = NH * HS, kvd = NKV * HS;
    float *ds = scratch; /* the capped scores' (T, T) follow it when there is a cap */
    memset(dk, 0, sizeof(float) * (size_t)T * kvd);
    memset(dv, 0, sizeof(float) * (size_t)T * kvd);
    for (int h = 0; h < NH; h++) {
        int          kh = h / grp;
        const float *a_h = att + (size_t)h * T * att_stride;
        const float *do_h = dout + (size_t)h * HS;
        /* dV_kh += P^T dO */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HS, T, 1.0f, a_h, att_stride,
                    do_h, qd, 1.0f, dv + (size_t)kh * HS, kvd);
        /* dP = dO V^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HS, 1.0f, do_h, qd,
                    v + (size_t)kh * HS, kvd, 0.0f, ds, T);
        /* the capped scores, recomputed */
        if (o->softcap > 0.0f)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HS, o->scale,
                        q + (size_t)h * HS, qd, k + (size_t)kh * HS, kvd, 0.0f,
                        scratch + (size_t)T * T, T);
        /* dS = P * (dP - rowsum(dP * P)), through the cap, times the scale */
        for (int t = 0; t < T; t++) {
            const float *p = a_h + (size_t)t * att_stride;
            float       *d_t = ds + (size_t)t * T;
            int          lo = first_key(t, o->window);
            float        s = 0.0f;
            for (int j = lo; j <= t; j++) s += d_t[j] * p[j];
            for (int j = 0; j < lo; j++) d_t[j] = 0.0f;
            for (int j = lo; j <= t; j++) {
                float g = p[j] * (d_t[j] - s);
                if (o->softcap > 0.0f) {
                    float u = tanhf(scratch[(size_t)T * T + (size_t)t * T + j] / o->softcap);
                    g *= 1.0f - u * u;
                }
                d_t[j] = g * o->scale;
            }
            for (int j = t + 1; j < T; j++) d_t[j] = 0.0f;
        }
        /* dQ_h = dS K_kh ; dK_kh += dS^T Q_h */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, T, 1.0f, ds, T,
                    k + (size_t)kh * HS, kvd, 0.0f, dq + (size_t)h * HS, qd);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HS, T, 1.0f, ds, T,
                    q + (size_t)h * HS, qd, 1.0f, dk + (size_t)kh * HS, kvd);
    }
}

// ---------------------------------------------------------------------------- rope

void kern_rope_table(float *x, int n, int stride, int pos0, int n_heads, int head_dim,
                     int rot_dims, const float *inv_freq, int inverse) {
    int half = rot_dims / 2;
    for (int t = 0; t < n; t++) {
        float *x_t = x + (size_t)t * stride;
        float  pos = (float)(pos0 + t);
        for (int i = 0; i < half; i++) {
            float val = pos * inv_freq[i];
            float c = cosf(val), s = sinf(val);
            if (inverse) s = -s;
            for (int h = 0; h < n_heads; h++) {
                float *xh = x_t + (size_t)h * head_dim;
                float  v0 = xh[i], v1 = xh[i + half];
                xh[i] = v0 * c - v1 * s;
                xh[i + half] = v0 * s + v1 * c;
            }
        }
    }
}

void kern_rope_table_ref(float *x, int n, int stride, int pos0, int n_heads, int head_dim,
                         int rot_dims, const float *inv_freq) {
    int half = rot_dims / 2;
    for (int t = 0; t < n; t++)
        for (int h = 0; h < n_heads; h++) {
            float *xh = x + (size_t)t * stride + (size_t)h * head_dim;
            for (int i = 0; i < half; i++) {
                double ang = (double)(pos0 + t) * (double)inv_freq[i];
                double v0 = xh[i], v1 = xh[i + half];
                xh[i] = (float)(v0 * cos(ang) - v1 * sin(ang));
                xh[i + half] = (float)(v0 * sin(ang) + v1 * cos(ang));
            }
        }
}

void kern_rope_inv_freq(float *inv_freq, int rot_dims, float theta,
                        enum kern_rope_scaling scaling, float factor, float low_freq_factor,
                        float high_freq_factor, int orig_max) {
    for (int i = 0; i < rot_dims / 2; i++) {
        float f = 1.0f / powf(theta, (float)(2 * i) / (float)rot_dims);
        if (scaling == KERN_ROPE_SCALING_LINEAR) {
            f /= factor;
        } else if (scaling == KERN_ROPE_SCALING_LLAMA3) {
            float low_wl = (float)orig_max / low_freq_factor;
            float high_wl = (float)orig_max / high_freq_factor;
            float wl = 2.0f * (float)M_PI / f;
            if (wl > low_wl) {
                f /= factor;
            } else if (!(wl < high_wl)) {
                float smooth = ((float)orig_max / wl - low_freq_factor) /
                               (high_freq_factor - low_freq_factor);
                f = (1.0f - smooth) * f / factor + smooth * f;
            }
        }
        inv_freq[i] = f;
    }
}
