/*
 * model — the transformer runtime: load a checkpoint, run it (batched prefill with BLAS, a KV
 * cache for decoding), reach inside it at hook points, take gradients back to a hook, and
 * measure next-token cross-entropy.
 *
 * Included by: model and the wings above it (sae, store, graders, evals, cli).
 *
 * Checkpoints (model_load):
 *   - llama2.c .bin (legacy header: dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 *     vocab_size, seq_len as int32; a negative vocab_size means a separate classifier),
 *     with the tokenizer found beside it (tokenizer.bin or tok<VOCAB>.bin);
 *   - a Hugging Face folder: config.json + model.safetensors, or a sharded
 *     model.safetensors.index.json; model_type gpt2, llama (Llama 3.1/3.2 rope_scaling
 *     included), mistral, qwen2, qwen3, gpt_neox (Pythia), gemma2, gemma3_text (anything else
 *     is an error naming it); F32, F16 and BF16 tensors; tokenizer.json in the same folder.
 * Weights (STYLE rule 17): matrices are row-major (out, in) so y = W x, each kept in a dtype
 * (MODEL_LOAD_F32 / MODEL_LOAD_BF16, default the checkpoint's own): a matrix already in that
 * dtype and layout points into the safetensors mapping (no copy); the others (GPT-2's Conv1D
 * [in, out] transposed, GPT-NeoX's per-head fused q/k/v split, converted dtypes) and every
 * vector (norms as float32, Gemma's (1 + w) folded in; biases) live in ONE arena. HF Llama q/k
 * rows are kept in rotate_half order and the RoPE style says which pairing to use. Compute is
 * float32 throughout (kern_bf16.h for the BF16/F16 products).
 *
 * Hook points (TransformerLens names, listed at enum model_hook_kind): the residual stream
 * before, inside and after each block, the attention's per-head outputs and its output, the
 * MLP's normalised input, its neurons and its output. Internally a hook is a point
 * p = 8 * layer + kind of the forward pass (resid_post L == resid_pre L + 1; p = 8 * n_layers
 * is the stream before the final norm).
 *
 * Running: a struct model_state holds every buffer (sized once from the config and max_T;
 * the forward pass allocates nothing, STYLE rule 22) and the KV cache. Each forward call runs
 * positions [pos, pos + T) given that the cache already holds positions [0, pos): a prefill is
 * pos = 0, T = n; a decode step is T = 1 at pos = n. Logits for the T positions land in
 * model_state_logits() (T, V).
 *
 * Interventions, two ways (both callback-free, STYLE rule 21):
 *   - struct model_edit: READ / REPLACE / ADD at one hook inside model_forward();
 *   - two phases: model_forward_to_hook() runs up to a hook and copies the residual out;
 *     the caller edits it (e.g. an SAE splice x -> x_hat + error) and model_forward_from_hook()
 *     continues from the edited residual. Works with the KV cache too (pos > 0, T = 1), so
 *     steering can clamp at every generated position.
 *
 * Backward: model_backward_to_hook() gives d f / d resid(hook) for all positions, where f is
 * a scalar function of the LAST position's logits given by g = d f / d logits_last (e.g. +1
 * at token a, -1 at token b). It needs a state made with MODEL_STATE_GRAD and a preceding
 * forward over positions [0, T) (pos = 0), whose stored activations it uses.
 *
 * Ownership: struct model owns the arena and its tokenizer; model_config() and
 * model_tokenizer() are borrowed until model_free(). struct model_state borrows its model
 * (free the state first).
 */
#ifndef EV_MODEL_H
#define EV_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "model/tok.h"
#include "base/util.h"

enum model_arch {
    MODEL_ARCH_LLAMA,    /* RMSNorm, RoPE, SwiGLU, GQA; llama/mistral/qwen2/qwen3, llama2.c */
    MODEL_ARCH_GPT2,     /* LayerNorm, learned positions, GELU (tanh), biases everywhere */
    MODEL_ARCH_GPT_NEOX, /* LayerNorm, partial RoPE, parallel residual, biases, erf GELU */
    MODEL_ARCH_GEMMA,    /* RMSNorm (1 + w), pre/post norms, GeGLU, scaled embeddings */
};

enum model_rope {
    MODEL_ROPE_NONE,        /* GPT-2: learned positional embeddings instead */
    MODEL_ROPE_INTERLEAVED, /* llama2.c: pairs (2i, 2i+1) of each head */
    MODEL_ROPE_HALF,        /* HF rotate_half: pairs (i, i + head_dim/2) */
};

enum model_norm {
    MODEL_NORM_RMS,   /* x * w / sqrt(mean(x^2) + eps) */
    MODEL_NORM_LAYER, /* (x - mean) * w / sqrt(var + eps) + b */
};

enum model_act {
    MODEL_ACT_SWIGLU,     /* w2 (silu(w1 x) * (w3 x)) */
    MODEL_ACT_GELU_TANH,  /* w2 gelu_new(w1 x + b1) + b2 (GPT-2 "gelu_new") */
    MODEL_ACT_GEGLU_TANH, /* w2 (gelu_tanh(w1 x) * (w3 x)) (Gemma "gelu_pytorch_tanh") */
    MODEL_ACT_GELU_ERF,   /* w2 gelu(w1 x + b1) + b2 with erf (GPT-NeoX "gelu") */
};

enum model_rope_scaling {
    MODEL_ROPE_SCALING_NONE,
    MODEL_ROPE_SCALING_LINEAR, /* "linear": frequencies / factor (Gemma 3's global layers) */
    MODEL_ROPE_SCALING_LLAMA3, /* "llama3": Llama 3.1/3.2's frequency-dependent scaling */
};

struct model_config {
    enum model_arch arch;
    enum model_rope rope;
    enum model_norm norm;
    enum model_act  act;
    int   dim;             /* C: residual width (d_model) */
    int   hidden_dim;      /* H: MLP width */
    int   n_layers;        /* L */
    int   n_heads;         /* NH: query heads */
    int   n_kv_heads;      /* NKV: key/value heads (GQA when < NH; NH % NKV == 0) */
    int   head_dim;        /* HS: dim / n_heads */
    int   vocab_size;      /* V */
    int   seq_len;         /* maximum context (positions) */
    float norm_eps;        /* 1e-5 for llama2.c and GPT-2; rms_norm_eps from config.json */
    float rope_theta;      /* 10000 unless config.json says otherwise */
    int   qkv_bias;        /* q/k/v projections have biases (GPT-2, Qwen2) */
    int   out_bias;        /* attention output and MLP biases (GPT-2) */
    int   tied_embeddings; /* unembedding == token embedding */
    int   parallel_residual; /* GPT-NeoX: resid_post = resid_pre + attn(ln1 x) + mlp(ln2 x) */
    int   post_norms;      /* Gemma: norms after attention and after the MLP, inside the block */
    int   qk_norm;         /* Qwen3, Gemma 3: RMSNorm over each head of q and k before RoPE */
    int   rot_dims;        /* rotary dims per head (GPT-NeoX rotary_pct); 0 = head_dim */
    float emb_scale;       /* embeddings times this (Gemma: sqrt(d_model)); 0 = 1 */
    float attn_scale;      /* scores times this (Gemma: query_pre_attn_scalar^-1/2); 0 = HS^-1/2 */
    float attn_softcap;    /* scores -> cap * tanh(scores / cap) (Gemma 2); 0 = none */
    float final_softcap;   /* logits -> cap * tanh(logits / cap) (Gemma 2); 0 = none */
    int   sliding_window;  /* local layers see the last sliding_window keys; 0 = none */
    int   sliding_pattern; /* layer l is local iff sliding_window and (sliding_pattern == 0 or
                            * (l + 1) % sliding_pattern != 0): Gemma 2 = 2, Gemma 3 = 6 */
    float rope_theta_local; /* base of the local layers' RoPE (Gemma 3); 0 = rope_theta */
    enum model_rope_scaling rope_scaling; /* of the global layers' RoPE */
    float rope_factor, rope_low_freq, rope_high_freq; /* scaling parameters */
    int   rope_orig_max;   /* llama3: original_max_position_embeddings */
    char  model_type[32];  /* "llama2c", "gpt2", "llama", "mistral", "qwen2", "qwen3",
                            * "gpt_neox", "gemma2", "gemma3_text", "random" */
};

/* How a weight matrix is kept. */
enum model_dtype {
    MODEL_DTYPE_F32,
    MODEL_DTYPE_F16,
    MODEL_DTYPE_BF16,
};

/* A weight matrix (rows, cols), row-major, y = W x: float, or F16/BF16 bit patterns, in the
 * arena or in the safetensors mapping (read-only). */
struct model_mat {
    const void      *data;
    enum model_dtype dtype;
};

/* One block's tensors; pointers a config does not use are NULL. Norm weights are float32 with
 * Gemma's (1 + w) already applied. */
struct model_layer {
    struct model_mat wq;       /* (NH*HS, C) */
    struct model_mat wk;       /* (NKV*HS, C) */
    struct model_mat wv;       /* (NKV*HS, C) */
    struct model_mat wo;       /* (C, NH*HS) */
    struct model_mat w1;       /* (H, C)    gate (gated MLPs) or fc */
    struct model_mat w2;       /* (C, H)    down / proj */
    struct model_mat w3;       /* (H, C)    up (gated MLPs only) */
    float           *ln1_w;    /* (C)       norm before attention */
    float           *ln1_b;    /* (C)       LayerNorm only */
    float           *bq;       /* (NH*HS)   qkv_bias only */
    float           *bk;       /* (NKV*HS)  qkv_bias only */
    float           *bv;       /* (NKV*HS)  qkv_bias only */
    float           *bo;       /* (C)       out_bias only */
    float           *q_norm_w; /* (HS)      qk_norm only */
    float           *k_norm_w; /* (HS)      qk_norm only */
    float           *attn_post_w; /* (C)    post_norms: after attention */
    float           *ln2_w;    /* (C)       norm before the MLP */
    float           *ln2_b;    /* (C)       LayerNorm only */
    float           *b1;       /* (H)       out_bias only */
    float           *b2;       /* (C)       out_bias only */
    float           *mlp_post_w; /* (C)     post_norms: after the MLP */
};

struct model_weights {
    struct model_mat    tok_emb; /* (V, C) */
    struct model_mat    wcls;    /* (V, C)  == tok_emb when tied */
    float              *pos_emb; /* (seq_len, C)  GPT-2 only */
    float              *lnf_w;   /* (C)     final norm */
    float              *lnf_b;   /* (C)     LayerNorm only */
    struct model_layer *layer;   /* (L) */
};

struct model;
struct sampler; /* sample.h */

/*
 * Loads a llama2.c .bin or a Hugging Face folder (see the top of this file) and its tokenizer.
 * A truncated or corrupt file, an unsupported model_type or dtype, or a missing tensor is an
 * error naming it (EV_EFAIL). Caller frees with model_free().
 */
int  model_load(const char *path, struct model **out, struct ev_err *err);
enum model_load_flags {
    MODEL_LOAD_NO_TOKENIZER = 1 << 0, /* weights only; model_tokenizer() returns NULL */
    MODEL_LOAD_F32 = 1 << 1,          /* keep every matrix as float32 (converted at load) */
    MODEL_LOAD_BF16 = 1 << 2,         /* keep every matrix as BF16 (F32/F16 rounded at load) */
    /* neither: each matrix in the checkpoint's own dtype ("auto") */
};
/* model_load() with flags (enum model_load_flags). */
int  model_load_flags(const char *path, int flags, struct model **out, struct ev_err *err);
/*
 * The model a command should load: given when not NULL, else $EVALRUN_MODEL, else
 * evals/models/stories260K/stories260K.bin under the current directory, else the same path
 * beside the running binary's repository (BIN/../../evals/...). Caller frees with free().
 */
char *model_resolve_path(const char *given);
/* The configuration a llama2.c header (the first 28 bytes of data[0..n)) or a Hugging Face
 * config.json text describes, validated as model_load() validates it (what names the input
 * in errors); no weights are read. For the fuzzers, and model_load() itself. */
int  model_config_from_llama2c(const void *data, size_t n, const char *what,
                               struct model_config *cfg, struct ev_err *err);
int  model_config_from_hf_json(const char *text, size_t n, const char *what,
                               struct model_config *cfg, struct ev_err *err);
/* A model with random weights (normal * 0.02; norms at 1, biases small), no tokenizer: for
 * tests and benchmarks. cfg is validated (EV_EUSAGE when inconsistent). */
int  model_new_random(const struct model_config *cfg, uint64_t seed, struct model **out,
                      struct ev_err *err);
/* The configuration of a GPT-2-small-shaped model (12 layers, d 768, 12 heads, d_mlp 3072,
 * vocabulary 50257, context 1024, biases, tied embeddings) for model_new_random(): what
 * `evalrun bench model --gpt2-small` and the benchmarks time. */
struct model_config model_config_gpt2_small(void);
void model_free(struct model *m);

const struct model_config  *model_config(const struct model *m);
/* Writable so tests can perturb a weight; do not resize. */
struct model_weights       *model_weights(struct model *m);
/* NULL for model_new_random() models and MODEL_LOAD_NO_TOKENIZER loads. */
const struct tok           *model_tokenizer(const struct model *m);
/* The ids that are tokens: [0, n). A Hugging Face model may pad its vocabulary past its
 * tokenizer (to a multiple of 64: Pythia 50277 -> 50304); the padded ids have embedding rows
 * and logits but no token, so they are never sampled. The tokenizer's size when it is smaller
 * than vocab_size, else vocab_size (also without a tokenizer). */
int                         model_vocab_tokens(const struct model *m);
/* sampler_init() for m's logits rows, limited to model_vocab_tokens(m) ids. */
void model_sampler_init(struct sampler *smp, const struct model *m, float temperature,
                        float top_p, uint64_t seed);
/* sha256 hex of the weight file(s) (for the database); "random:SEED" style for random models. */
const char                 *model_hash(const struct model *m);
/* The path given to model_load(), or "random". */
const char                 *model_path(const struct model *m);

/* ---- sizes, memory, dtypes ---- */

/* What identifies the model's computation besides its hash, as JSON for the database:
 * {"model_type", "dim", "n_layers", "vocab_size", "weights_dtype"}. Caller frees. */
char   *model_config_json(const struct model *m);

/* Parameters the config describes (tied embeddings counted once; GPT-2's positions
 * included). */
int64_t model_param_count(const struct model_config *c);
/* Bytes of the weights with every matrix kept in dtype d (vectors are float32). */
size_t  model_weight_bytes(const struct model_config *c, enum model_dtype d);
/* Bytes model_state_new(max_T, flags) allocates for this config. */
size_t  model_state_bytes(const struct model_config *c, int max_T, int flags);
/* What a loaded model holds: *arena heap bytes, *mapped bytes of matrices used in place from
 * the safetensors mapping (read from the page cache, shared between processes). */
void    model_memory(const struct model *m, size_t *arena, size_t *mapped);
/* The dtype the most weight bytes are kept in. */
enum model_dtype model_weights_dtype(const struct model *m);
const char      *model_dtype_name(enum model_dtype d);
/* "auto", "f32" or "bf16" (--weights-dtype) -> MODEL_LOAD_* flags (0 for auto); anything
 * else is EV_EUSAGE naming it. */
int  model_weights_dtype_parse(const char *s, int *flags, struct ev_err *err);
/*
 * The configuration of a checkpoint without loading its weights: a Hugging Face folder's
 * config.json (validated as model_load() does) or a llama2.c header. *stored receives the
 * dtype of its matrices (from the safetensors headers when present, else config.json's
 * torch_dtype, else F32), *has_weights whether the weight files are there (a folder holding
 * only config.json is valid here). Either out-pointer may be NULL.
 */
int  model_config_read(const char *path, struct model_config *cfg, enum model_dtype *stored,
                       int *has_weights, struct ev_err *err);
/* out (n, V) = x (n, C) . W_U^T: the unembedding alone (no final norm, no soft-cap), e.g. for
 * a feature's direct logit effects. Allocates scratch of its own. */
void model_unembed(const struct model *m, const float *x, int n, float *out);
/* out (n, C) = z (n, NH*HS) . W_O[layer]^T: attention's output projection alone (no bias, no
 * post-attention norm), e.g. to take an attn.hook_z direction into the residual stream. */
void model_attn_project(const struct model *m, int layer, const float *z, int n, float *out);

/* ---- hook points ---- */

/*
 * Hook points, TransformerLens names (blocks.L. prefix), in the order a block computes them.
 * Each is readable, replaceable, addable (struct model_edit) and differentiable
 * (model_backward_to_hook); the activation at a hook is (T, width), width from
 * model_hook_width():
 *   hook_resid_pre        (T, C)      the residual stream entering block L
 *   attn.hook_z           (T, NH*HS)  per-head attention outputs (softmax(q k^T) v) before the
 *                                     output projection, heads flattened as SAELens does
 *   hook_attn_out         (T, C)      what attention adds to the residual (o_proj + bias, and
 *                                     Gemma's post-attention norm)
 *   hook_resid_mid        (T, C)      resid_pre + attn_out; sequential blocks only (a parallel
 *                                     block, GPT-NeoX, has none, as in TransformerLens)
 *   ln2.hook_normalized   (T, C)      the MLP's norm before its learned scale (and bias):
 *                                     x / rms(x), or (x - mean) / std; TransformerLens' value
 *                                     (under its default fold_ln for LayerNorm models)
 *   mlp.hook_in           (T, C)      the MLP's actual input: ln2.hook_normalized * w (+ b), as
 *                                     HF computes it (evalrun's name: sparsify's transcoders
 *                                     read the input of the HF module layers.L.mlp)
 *   mlp.hook_post         (T, H)      the MLP neurons: act(gate) * up, or act(fc)
 *   hook_mlp_out          (T, C)      what the MLP adds to the residual (down + bias, and
 *                                     Gemma's post-feedforward norm)
 *   hook_resid_post       (T, C)      the stream leaving block L (== resid_pre of L + 1; for the
 *                                     last block, the stream before the final norm)
 * The enum values follow that order (RESID_POST last), so the position of a hook in the
 * forward pass is 8 * layer + kind.
 */
enum model_hook_kind {
    MODEL_HOOK_RESID_PRE,
    MODEL_HOOK_ATTN_Z,
    MODEL_HOOK_ATTN_OUT,
    MODEL_HOOK_RESID_MID,
    MODEL_HOOK_LN2_NORMALIZED,
    MODEL_HOOK_MLP_IN,
    MODEL_HOOK_MLP_POST,
    MODEL_HOOK_MLP_OUT,
    MODEL_HOOK_RESID_POST,
};

struct model_hook {
    int                  layer;
    enum model_hook_kind kind;
};

/*
 * Parses a hook name: a TransformerLens / SAELens name ("blocks.L.hook_resid_post",
 * "blocks.L.attn.hook_z", ... as listed above), or an EleutherAI sparsify hookpoint naming a
 * module whose OUTPUT is taken ("layers.L" -> hook_resid_post, "layers.L.mlp" ->
 * hook_mlp_out, "layers.L.self_attn" / "layers.L.attention" / "h.L.attn" -> hook_attn_out;
 * see model_hook_parse_sparsify for inputs). An unknown name, a layer outside [0, n_layers),
 * or a hook the architecture lacks (hook_resid_mid in a parallel block; a sparsify module
 * output that differs from every TransformerLens hook, e.g. Gemma's mlp before its
 * post-norm) is EV_EFAIL with a message naming it and what is accepted.
 */
int model_hook_parse(const struct model *m, const char *name, struct model_hook *out,
                     struct ev_err *err);
/*
 * A sparsify hookpoint (a module name relative to the HF base model: "layers.L",
 * "layers.L.mlp", "layers.L.self_attn", "layers.L.attention", GPT-2's "h.L..."; a leading
 * "model.", "gpt_neox." or "transformer." is ignored). input != 0 takes the module's input
 * (what a sparsify transcoder reads): layers.L -> hook_resid_pre, layers.L.mlp -> mlp.hook_in,
 * layers.L.self_attn.o_proj / layers.L.attention.dense -> attn.hook_z; input == 0 its output,
 * as model_hook_parse. Errors as model_hook_parse.
 */
int model_hook_parse_sparsify(const struct model *m, const char *hookpoint, int input,
                              struct model_hook *out, struct ev_err *err);
/* Writes the TransformerLens name of h into buf (size n). */
void model_hook_name(struct model_hook h, char *buf, size_t n);
/* The residual index of a resid_pre / resid_post hook: layer for resid_pre, layer + 1 for
 * resid_post (-1 for the other kinds). */
int model_hook_index(struct model_hook h);
/* The width of the activation at h: C, NH*HS for attn.hook_z, H for mlp.hook_post. */
int model_hook_width(const struct model *m, struct model_hook h);
/* The layer whose MLP wrote last into the stream at h (its own layer for the MLP's hooks and
 * hook_resid_post, the previous layer for the others), or -1 (block 0 before its MLP). */
int model_hook_mlp_layer(struct model_hook h);
/* Whether the architecture has hook h (EV_OK), else EV_EFAIL with a message naming it. */
int model_hook_check(const struct model *m, struct model_hook h, struct ev_err *err);

/* ---- state ---- */

enum model_state_flags {
    MODEL_STATE_GRAD = 1 << 0, /* keep every layer's activations for model_backward_to_hook */
    /* compute the logits of the last position of each forward call only (prompt scoring,
     * generation: saves T-1 unembedding rows, most of a short prefill for a 50k vocab);
     * model_state_logits() is then (1, V) and model_loss() refuses the state */
    MODEL_STATE_LAST_LOGITS = 1 << 1,
};

struct model_state;

/* Buffers for up to max_T positions (max_T <= seq_len; 0 means seq_len) and a KV cache of
 * max_T positions. Memory: the attention probabilities take n_heads * max_T^2 floats (times
 * n_layers with MODEL_STATE_GRAD, which also keeps ~(6 C + 3 H) * max_T floats per layer), so
 * pass the length actually needed rather than 0 for long-context models. Caller frees with
 * model_state_free(). */
int  model_state_new(const struct model *m, int max_T, int flags, struct model_state **out,
                     struct ev_err *err);
void model_state_free(struct model_state *s);
int  model_state_max_T(const struct model_state *s);
/* Logits of the positions run by the last forward call: (T, V), row t is position pos + t
 * ((1, V), the last position, with MODEL_STATE_LAST_LOGITS). Borrowed; overwritten by the next
 * forward call. */
const float *model_state_logits(const struct model_state *s);

/*
 * One intervention at a hook, applied in this order at the hook (for the T positions run);
 * W is model_hook_width(hook) (C for the residual hooks):
 *   read    (T, W) or NULL: receives the activation as it arrives at the hook;
 *   replace (T, W) or NULL: overwrites it;
 *   add     (W)    or NULL: add_scale * add is added at every position, or only at positions
 *           (absolute, counted from 0) listed in add_pos[0..n_add_pos) when add_pos is set.
 * Several edits may name the same hook; they are applied in array order. Replacing with what
 * was read leaves every later value bit for bit unchanged.
 */
struct model_edit {
    struct model_hook hook;
    float            *read;
    const float      *replace;
    const float      *add;
    float             add_scale; /* 0 is taken as 1 */
    const int        *add_pos;
    int               n_add_pos;
};

/*
 * Runs positions [pos, pos + T) for tokens[0..T) (the KV cache must hold [0, pos) from earlier
 * calls on this state), applying edits; logits go to model_state_logits(). pos + T > max_T,
 * T < 1 or a token outside [0, V) is EV_EFAIL with a message.
 */
int model_forward(struct model_state *s, const int *tokens, int pos, int T,
                  const struct model_edit *edits, int n_edits, struct ev_err *err);

/* Runs positions [pos, pos + T) up to hook h and copies the activation there into
 * resid_out (T, W), W = model_hook_width(h). Continue with model_forward_from_hook() on the
 * same state, same pos/T. */
int model_forward_to_hook(struct model_state *s, const int *tokens, int pos, int T,
                          struct model_hook h, float *resid_out, struct ev_err *err);
/* n_seq independent sequences of T tokens each (tokens (n_seq, T), each at positions
 * 0 .. T-1) up to hook h in one pass, so that every matrix product takes n_seq * T rows:
 * resid_out (n_seq * T, W) is what n_seq calls of model_forward_to_hook would give (up to
 * summation order in the products). n_seq * T must fit the state's max_T. The KV cache then
 * holds unrelated sequences: nothing continues from this forward (model_forward_from_hook
 * and model_forward at pos > 0 refuse). */
int model_forward_to_hook_batch(struct model_state *s, const int *tokens, int n_seq, int T,
                                struct model_hook h, float *resid_out, struct ev_err *err);
/* Continues from resid_in (T, W) at hook h (which may be edited), through the rest of the
 * model, filling the KV cache of the layers not yet run and model_state_logits(). */
int model_forward_from_hook(struct model_state *s, int pos, int T, struct model_hook h,
                            const float *resid_in, struct ev_err *err);

/*
 * Gradient of f with respect to the activation at hook h for all positions of the last
 * forward (which must have run positions [0, T) in one or two-phase call on a
 * MODEL_STATE_GRAD state): dlogits_last (V) = d f / d logits at position T-1; dresid_out
 * (T, W), W = model_hook_width(h): everything computed after h (with what came before it
 * held fixed), through the final norm and the unembedding.
 */
int model_backward_to_hook(struct model_state *s, struct model_hook h, const float *dlogits_last,
                           float *dresid_out, struct ev_err *err);

/*
 * Mean next-token cross-entropy over tokens[0..T) (positions 0..T-2 predict tokens 1..T-1),
 * with optional edits, in one forward from pos 0. *loss in nats. tok_logprob (T-1) or NULL
 * receives log p(tokens[t+1] | tokens[..t]). The full logits stay in model_state_logits()
 * (for KL). T >= 2.
 */
int model_loss(struct model_state *s, const int *tokens, int T, const struct model_edit *edits,
               int n_edits, double *loss, float *tok_logprob, struct ev_err *err);

/* ---- generation ---- */

/*
 * Prefills prompt[0..n_prompt) from pos 0, then samples up to max_new tokens one at a time
 * with the KV cache, applying edits at every position run (prompt and generated: an ADD edit
 * without add_pos steers every position). Stops early after the tokenizer's EOS when stop_eos.
 * smp must be made for this model (model_sampler_init): a sampler of another row width, or
 * one that may return a padded vocab's ids, is EV_EFAIL.
 * out (max_new) receives the new ids, *n_out their count. n_prompt + max_new <= max_T.
 */
int model_generate(struct model_state *s, struct sampler *smp, const int *prompt, int n_prompt,
                   int max_new, int stop_eos, const struct model_edit *edits, int n_edits,
                   int *out, int *n_out, struct ev_err *err);

#endif
