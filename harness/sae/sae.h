/*
 * sae — sparse autoencoders in the SAELens layout: load, save, encode, decode.
 *
 * Included by: sae and the wings above it (store, graders, evals, cli).
 *
 * On disk an SAE is a folder with cfg.json and sae_weights.safetensors (DESIGN §8):
 *   W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in],
 *   threshold [d_sae] (JumpReLU; a checkpoint's log_threshold is exp'ed),
 *   scaling_factor [d_sae] (old files: all ones is ignored, otherwise it multiplies the latents
 *   before decoding).
 * cfg.json is read in all three shapes SAELens has written: flat (before 6.0), the oldest flat
 * one with hook_point / hook_point_layer, and 6.0+ with the hook/model keys nested in a
 * "metadata" (or "meta") object. Missing apply_b_dec_to_input means true.
 *
 *   encode: pre = (x - b_dec if apply_b_dec_to_input else x) W_enc + b_enc
 *           standard: f = ReLU(pre); jumprelu: f = pre where pre > threshold (strictly), else 0;
 *           topk: keep the k largest pre-activations of each token, ReLU them, zero the rest
 *   decode: x_hat = (f * scaling_factor) W_dec + b_dec
 *
 * normalize_activations: "none" (or false) is the only setting that needs nothing at run
 * time. SAEs written by sae_save() always say "none": the input-normalisation factor s used in
 * training is folded into the weights (W_enc*s, W_dec/s, b_dec/s), as SAELens does, and kept
 * as the extra cfg key "evalrun_norm_factor". "expected_average_only_in" with such a factor in
 * the cfg scales inputs by it and outputs by its inverse; without one it is refused, as are
 * "constant_norm_rescale" and "layer_norm" (a clear error naming the setting).
 *
 * Other dictionaries and formats (docs/sae.md, "Formats"), all loaded by sae_load():
 *   - transcoders read one hook and write another (cfg.transcoder, hook_name -> hook_name_out,
 *     W_dec (d_sae, d_out), b_dec (d_out), b_dec never subtracted from the input): SAELens'
 *     "transcoder", "skip_transcoder" (+ x W_skip^T, W_skip (d_out, d_in)) and
 *     "jumprelu_transcoder"; sparsify transcoders (transcode: true); Gemma Scope transcoders;
 *   - EleutherAI sparsify: a folder named after its hookpoint with cfg.json (d_in, num_latents
 *     or expansion_factor, k, transcode, skip_connection) and sae.safetensors (encoder.weight
 *     (d_sae, d_in), encoder.bias, W_dec, b_dec, W_skip); TopK of ReLU(pre); hook_sparsify;
 *   - Gemma Scope: params.npz (W_enc, b_enc, W_dec, b_dec, threshold; JumpReLU, input not
 *     centred), hooks from a cfg.json beside it or from the path (gemma-scope-*-res|mlp|att|
 *     transcoders/.../layer_L/...); a transcoder's affine_skip_connection A (d_in, d_out) adds
 *     x A (kept as W_skip = A^T);
 *   - Gemma Scope 2: params.safetensors (w_enc, b_enc, w_dec, b_dec, threshold,
 *     affine_skip_connection), hooks from a cfg.json or the path (resid_post|mlp_out/layer_L_...).
 *
 * Validation happens once, at load (STYLE rule 13): shapes against the cfg, NaN/Inf in any
 * weight, unknown architecture, k out of range. Kernels never fail afterwards.
 *
 * Ownership: struct sae is visible plain data whose tensors point into one allocation
 * (arena); sae_free() frees it. cfg_json is the cfg.json text as read (or as written).
 */
#ifndef EV_SAE_H
#define EV_SAE_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

enum sae_arch {
    SAE_ARCH_STANDARD = 0,
    SAE_ARCH_JUMPRELU = 1,
    SAE_ARCH_TOPK     = 2,
};

enum sae_format {
    SAE_FORMAT_SAELENS    = 0, /* cfg.json + sae_weights.safetensors */
    SAE_FORMAT_SPARSIFY   = 1, /* EleutherAI sparsify: cfg.json + sae.safetensors, one folder per hook */
    SAE_FORMAT_GEMMASCOPE = 2, /* Gemma Scope: params.npz (+ an optional cfg.json naming the hooks) */
    SAE_FORMAT_GEMMASCOPE2 = 3, /* Gemma Scope 2: params.safetensors (w_enc, w_dec, ...; same rest) */
};

struct sae_config {
    int           d_in, d_sae;
    int           d_out;                /* width of what is decoded: d_in for an SAE */
    int           transcoder;           /* 1: reads hook_name, writes hook_name_out */
    int           skip;                 /* 1: has W_skip (skip transcoder) */
    enum sae_format format;
    int           hook_sparsify;        /* 1: hook_name is a sparsify hookpoint (module name) */
    enum sae_arch arch;
    int           k;                    /* topk only: latents kept per token */
    int           apply_b_dec_to_input; /* default 1 */
    double        norm_factor;          /* applied at run time (expected_average_only_in); 1 */
    double        folded_norm_factor;   /* metadata: the factor folded in at save; 1 if none */
    int           hook_layer;           /* -1 when unknown */
    int           tl_processed;         /* 1: trained on TransformerLens' processed stream */
    char          hook_name[128];       /* TransformerLens name, e.g. blocks.2.hook_resid_post
                                           (or a sparsify hookpoint when hook_sparsify) */
    char          hook_name_out[128];   /* transcoders: the hook written; "" for an SAE */
    char          model_name[128];
    char          dtype[32];            /* as written in the cfg, e.g. "float32" */
    char          normalize[40];        /* normalize_activations as a string */
};

struct sae {
    struct sae_config cfg;
    float *W_enc;     /* (d_in, d_sae) */
    float *b_enc;     /* (d_sae) */
    float *W_dec;     /* (d_sae, d_out) */
    float *b_dec;     /* (d_out) */
    float *W_skip;    /* (d_out, d_in); skip transcoders only, else NULL (owned) */
    float *threshold; /* (d_sae); JumpReLU only, else NULL */
    float *scaling;   /* (d_sae); only when a non-trivial scaling_factor was loaded, else NULL */
    float *arena;     /* owns every tensor above */
    char  *cfg_json;  /* owned; may be NULL for an SAE built in memory */
};

/* A config with defaults: standard architecture, apply_b_dec_to_input 1, factors 1,
 * hook_layer -1, dtype "float32", normalize "none". */
struct sae_config sae_default_config(int d_in, int d_sae);

/* Allocates an SAE with all weights zero (threshold allocated for JumpReLU). Caller frees
 * with sae_free(). cfg.d_in, d_sae > 0 (programmer error otherwise). */
struct sae *sae_new(const struct sae_config *cfg);
void        sae_free(struct sae *s);

/* Loads the dictionary in folder dir, in whichever format it is (SAELens: sae_weights.safetensors;
 * sparsify: sae.safetensors; Gemma Scope: params.npz). A folder of sparsify hook folders is
 * refused with the names to pick from. Errors (EV_EFAIL, message naming the file and what was
 * expected): missing files, malformed cfg, shapes disagreeing with the cfg, NaN/Inf weights,
 * an unsupported architecture or normalisation. */
int sae_load(const char *dir, struct sae **out, struct ev_err *err);

/* Parses cfg.json text (what names it in errors) into cfg, without weights. */
int sae_parse_config(const char *text, size_t n, const char *what, struct sae_config *cfg,
                     struct ev_err *err);

struct model;
struct model_hook;
/*
 * Resolves s's hooks in m: *in receives the hook it reads, *out the one it writes (the same
 * hook for an SAE; hook_name_out for a transcoder; a sparsify transcoder's hookpoint gives the
 * module's input and output). Checks d_in and d_out against model_hook_width() there. Errors
 * (EV_EFAIL) name what (the SAE folder), the hook and both widths.
 */
int sae_hooks(const struct model *m, const struct sae *s, const char *what,
              struct model_hook *in, struct model_hook *out, struct ev_err *err);

/* Writes s to the folder dir in the SAELens layout: cfg.json and sae_weights.safetensors are
 * written into a temporary sibling folder which is then renamed over dir, so a reader sees the
 * old SAE or the new one, never a mix. fold > 0 is the input-normalisation factor the weights
 * were trained with; it is folded in (W_enc*fold, W_dec/fold, b_dec/fold) and recorded as
 * evalrun_norm_factor; pass 1 when there is nothing to fold. extra_json, when not NULL, is a
 * JSON object whose members are added to cfg.json's "metadata" (training settings). */
int sae_save(const struct sae *s, const char *dir, double fold, const char *extra_json,
             struct ev_err *err);

/* SHA-256 over cfg.json then the weights file (the saes.hash column); for Gemma Scope the
 * weights' hash stands for an absent cfg.json. */
int sae_hash(const char *dir, char hex[65], struct ev_err *err);

/* ---- kernels: pure, never fail; OpenMP over tokens inside ---- */

/* f (n, d_sae) = encode(x (n, d_in)). Uses cblas_sgemm for the dense product. */
void sae_encode(const struct sae *s, float *f, const float *x, int n);
/* Latents i0 .. i0+ni-1 only: f (n, ni) equals those columns of sae_encode's output. For
 * standard and JumpReLU SAEs this costs ni/d_sae of a full encode (a sub-matrix sgemm); TopK
 * encodes every latent (it must rank them) and copies the range. */
void sae_encode_range(const struct sae *s, float *f, const float *x, int n, int i0, int ni);
/* Naive twin of sae_encode (STYLE rule 20). */
void sae_encode_ref(const struct sae *s, float *f, const float *x, int n);
/* x_hat (n, d_out) = decode(f (n, d_sae)) = f W_dec + b_dec (no skip term: decoding stays
 * affine in f); visits only the non-zero latents. */
void sae_decode(const struct sae *s, float *x_hat, const float *f, int n);
void sae_decode_ref(const struct sae *s, float *x_hat, const float *f, int n);
/* y_hat (n, d_out) = decode(f) + x W_skip^T: the dictionary's whole output for input x
 * (n, d_in), the skip term included (equal to sae_decode for everything without W_skip). */
void sae_reconstruct(const struct sae *s, float *y_hat, const float *f, const float *x, int n);

/* Keeps, in each of the n rows of pre (n, d) in place, the k largest values (ties broken by
 * lower index) ReLU'ed, and zeroes the rest. */
void sae_topk_rows(float *pre, int n, int d, int k);

/*
 * TransformerLens' processed GPT-2 (fold_ln, center_writing_weights: TL's defaults) has a
 * residual stream equal to the Hugging Face one minus each token's mean over d_model; most
 * public GPT-2 SAEs were trained on it (DESIGN §8). sae_needs_centering() says whether s expects
 * that stream from a model of model_type ("gpt2" and cfg.tl_processed, which is cleared by
 * model_from_pretrained_kwargs.center_writing_weights false and for SAEs trained by evalrun;
 * never for a transcoder or a hook outside the residual stream).
 * sae_center_rows() subtracts each row's mean in place (mean (n) or NULL receives it, so that a
 * reconstruction can be put back into the model's stream by adding it).
 */
int  sae_needs_centering(const struct sae *s, const char *model_type);
void sae_center_rows(float *x, int n, int d, float *mean);

/* Returns the number of non-finite values among the n floats of a, 0 when all are finite. */
size_t sae_count_nonfinite(const float *a, size_t n);

const char *sae_arch_name(enum sae_arch a);
const char *sae_format_name(enum sae_format f);
/* "sae" or "transcoder" (with "skip " when it has W_skip): for messages and tables. */
const char *sae_kind_name(const struct sae *s);

#endif
