/*
 * modelinfo — `evalrun model-info` (see modelinfo.h).
 */
#include "evals/modelinfo.h"

#include <math.h>
#include <stdio.h>

#include "evals/plan.h"
#include "model/kern_bf16.h"
#include "model/model.h"

static const char *act_name(enum model_act a) {
    switch (a) {
    case MODEL_ACT_SWIGLU: return "SwiGLU (silu)";
    case MODEL_ACT_GEGLU_TANH: return "GeGLU (gelu_pytorch_tanh)";
    case MODEL_ACT_GELU_ERF: return "GELU (erf)";
    default: return "GELU (tanh, gelu_new)";
    }
}

int modelinfo_print(const char *path, long ctx, int flags, int load, struct ev_err *err) {
    struct model_config c;
    enum model_dtype    stored;
    struct model       *m = NULL;
    int                 has_w = 0, rc;
    if ((rc = model_config_read(path, &c, &stored, &has_w, err)) != EV_OK) goto out;
    int T = ctx > c.seq_len ? c.seq_len : (int)ctx;
    enum model_dtype kept = flags & MODEL_LOAD_F32    ? MODEL_DTYPE_F32
                            : flags & MODEL_LOAD_BF16 ? MODEL_DTYPE_BF16
                                                      : stored;
    char b1[16], b2[16], b3[16], b4[16], b5[16];
    printf("model: %s\n", path);
    printf("model_type: %s\n", c.model_type);
    printf("layers: %d  d_model: %d  d_mlp: %d  heads: %d  kv_heads: %d  head_dim: %d  "
           "vocab: %d  context: %d\n",
           c.n_layers, c.dim, c.hidden_dim, c.n_heads, c.n_kv_heads, c.head_dim, c.vocab_size,
           c.seq_len);
    printf("block: %s, %s, %s%s%s%s, %s embeddings\n",
           c.norm == MODEL_NORM_RMS ? "RMSNorm" : "LayerNorm", act_name(c.act),
           c.parallel_residual ? "parallel residual" : "sequential residual",
           c.post_norms ? ", pre- and post-norms" : "", c.qk_norm ? ", q/k norms" : "",
           c.qkv_bias ? (c.out_bias ? ", biases" : ", q/k/v biases") : "",
           c.tied_embeddings ? "tied" : "untied");
    char local[48] = "";
    if (c.rope_theta_local != 0.0f)
        snprintf(local, sizeof local, " (local layers %g)", (double)c.rope_theta_local);
    if (c.rope != MODEL_ROPE_NONE)
        printf("rope: %s, theta %g%s, rotary dims %d%s\n",
               c.rope == MODEL_ROPE_HALF ? "rotate_half" : "interleaved", (double)c.rope_theta,
               local, c.rot_dims ? c.rot_dims : c.head_dim,
               c.rope_scaling == MODEL_ROPE_SCALING_LLAMA3   ? ", llama3 scaling"
               : c.rope_scaling == MODEL_ROPE_SCALING_LINEAR ? ", linear scaling"
                                                             : "");
    else
        printf("positions: learned\n");
    if (c.attn_softcap > 0 || c.final_softcap > 0 || c.sliding_window > 0 || c.emb_scale > 0)
        printf("attention: scale %g, soft-cap %g, final soft-cap %g, sliding window %d "
               "(pattern %d), embedding scale %g\n",
               (double)(c.attn_scale > 0 ? c.attn_scale : 1.0f / sqrtf((float)c.head_dim)),
               (double)c.attn_softcap, (double)c.final_softcap, c.sliding_window,
               c.sliding_pattern, (double)(c.emb_scale > 0 ? c.emb_scale : 1.0f));
    printf("parameters: %lld\n", (long long)model_param_count(&c));
    printf("weights: stored %s%s; f32 %s, bf16 %s; kept as %s: %s\n", model_dtype_name(stored),
           has_w ? "" : " (config only: no weight files here)",
           plan_bytes((double)model_weight_bytes(&c, MODEL_DTYPE_F32), b1, sizeof b1),
           plan_bytes((double)model_weight_bytes(&c, MODEL_DTYPE_BF16), b2, sizeof b2),
           model_dtype_name(kept),
           plan_bytes((double)model_weight_bytes(&c, kept), b3, sizeof b3));
    printf("state for %d positions: forward %s, with gradients %s\n", T,
           plan_bytes((double)model_state_bytes(&c, T, 0), b4, sizeof b4),
           plan_bytes((double)model_state_bytes(&c, T, MODEL_STATE_GRAD), b5, sizeof b5));
    char mid[48] = "";
    if (!c.parallel_residual) snprintf(mid, sizeof mid, "hook_resid_mid %d, ", c.dim);
    printf("hooks: blocks.0-%d.{hook_resid_pre %d, attn.hook_z %d, hook_attn_out %d, %s"
           "ln2.hook_normalized %d, mlp.hook_in %d, mlp.hook_post %d, hook_mlp_out %d, "
           "hook_resid_post %d}%s\n",
           c.n_layers - 1, c.dim, c.n_heads * c.head_dim, c.dim, mid, c.dim, c.dim, c.hidden_dim,
           c.dim, c.dim, c.parallel_residual ? " (no hook_resid_mid: parallel block)" : "");
    if (load) {
        size_t heap, mapped;
        if ((rc = model_load_flags(path, flags | MODEL_LOAD_NO_TOKENIZER, &m, err)) != EV_OK)
            goto out;
        model_memory(m, &heap, &mapped);
        printf("loaded: %s heap + %s mapped from the safetensors (matrices kept as %s; "
               "bf16 products: %s)\n",
               plan_bytes((double)heap, b1, sizeof b1), plan_bytes((double)mapped, b2, sizeof b2),
               model_dtype_name(model_weights_dtype(m)), kern_lp_path());
    }
    rc = EV_OK;
out:
    model_free(m);
    return rc;
}
