/*
 * kern_bf16 — matrix products with weights kept in BF16 or F16 (16-bit patterns, as stored in
 * safetensors), activations and results in float32. Pure functions (STYLE rule 19), each with
 * a naive `_ref` twin (widen every weight, accumulate in double), compared in
 * tests/unit/test_kern_arch.c.
 *
 * Included by: model and the wings above it (sae, store, graders, evals, cli).
 *
 * How they compute (chosen at run time from the CPU, never at build time, so that one binary
 * runs everywhere):
 *   - one input row (decode, n == 1), BF16 weights, CPU with AVX512_BF16: each input row is
 *     split once into three BF16 vectors, x = x0 + x1 + x2 (x0 = bf16(x), x1 = bf16(x - x0),
 *     x2 = bf16(x - x0 - x1): 24 bits of mantissa, a float32's), and w . x = w . x0 + w . x1
 *     + w . x2 with VDPBF16PS (float32 accumulation): the CPU's BF16 dot products at float32
 *     accuracy (activations are not rounded to BF16, as a single-product BF16 path would do;
 *     a two-way split measured 5e-5 off PyTorch on gemma2_bf16's logits, three-way 1e-6);
 *   - one row otherwise: weights widened to float32 (exactly) and fused multiply-adds
 *     (AVX-512F when present; else a portable loop);
 *   - several rows (prefill, batches): blocks of weight rows are widened into scratch and
 *     multiplied with OpenBLAS's sgemm (exact float32 arithmetic, BLAS speed; the widening is
 *     amortised over the rows).
 * All paths give the numbers of a float32 copy of the weights up to summation order and
 * float32 rounding.
 */
#ifndef EV_KERN_BF16_H
#define EV_KERN_BF16_H

#include <stddef.h>
#include <stdint.h>

enum kern_wtype {
    KERN_W_BF16,
    KERN_W_F16,
};

/* float32 scratch the products below need for inputs of width up to d_in_max. */
size_t kern_lp_scratch_floats(int d_in_max);

/* out (n, d_out) = inp (n, d_in) . w^T + b; w (d_out, d_in) BF16 or F16 bits; b (d_out) or
 * NULL; scratch of kern_lp_scratch_floats(d_in) floats. */
void kern_matmul_lp(float *out, const float *inp, const uint16_t *w, enum kern_wtype wt,
                    const float *b, int n, int d_in, int d_out, float *scratch);
void kern_matmul_lp_ref(float *out, const float *inp, const uint16_t *w, enum kern_wtype wt,
                        const float *b, int n, int d_in, int d_out);
/* dinp (n, d_in) (+)= dout (n, d_out) . w (d_out, d_in); accumulate when acc != 0. */
void kern_matmul_lp_backward(float *dinp, const float *dout, const uint16_t *w,
                             enum kern_wtype wt, int n, int d_in, int d_out, int acc,
                             float *scratch);

/* Which single-row BF16 path this CPU takes: "avx512bf16-split", "avx512f", "portable". */
const char *kern_lp_path(void);
/* Forces the portable single-row path (tests compare it with the CPU's); 0 restores. */
void kern_lp_force_portable(int on);
/* Leaves out the AVX512_BF16 path (on != 0), so that a CPU that has it also runs the
 * AVX-512F widening path the CPUs without it take (tests); 0 restores. */
void kern_lp_force_no_bf16_insn(int on);

/* Conversions: exact widening, and float32 -> BF16 / F16 with round-to-nearest-even. */
float    kern_bf16_to_f32(uint16_t h);
float    kern_f16_to_f32(uint16_t h);
uint16_t kern_f32_to_bf16(float f);
uint16_t kern_f32_to_f16(float f);

#endif
