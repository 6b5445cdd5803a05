/*
 * model_hf — Hugging Face model folders: config.json for every supported model_type, and the
 * weights from model.safetensors or a sharded index, each matrix kept in its chosen dtype and
 * used in place from the mapping when nothing needs changing (see model.h). The per-
 * architecture tensor names live in one table-building function each (hf_*_specs); loading
 * is the same two passes for all: check every tensor and size the arena, then place.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/json.h"
#include "model/kern_bf16.h"
#include "model/model.h"
#include "model/modelint.h"
#include "model/safetensors.h"

// ---------------------------------------------------------------------------- files

#define HF_MAX_SHARDS 256

struct hf_files {
    struct st_file *f[HF_MAX_SHARDS];
    char           *name[HF_MAX_SHARDS];
    int             n;
};

static void hf_files_release(struct hf_files *h) {
    for (int i = 0; i < h->n; i++) {
        st_close(h->f[i]);
        free(h->name[i]);
    }
    h->n = 0;
}

static const struct st_tensor *hf_find(const struct hf_files *h, const char *name) {
    for (int i = 0; i < h->n; i++) {
        const struct st_tensor *t = st_find(h->f[i], name);
        if (t) return t;
    }
    return NULL;
}

/* Opens (maps) the folder's safetensors files; hash (65) receives their sha256 (of the one
 * file, or of the shards' hex digests in weight_map order), or is NULL to skip hashing. */
static int hf_open(const char *dir, struct hf_files *h, char *hash, struct ev_err *err) {
    char         *single = path_join(dir, "model.safetensors");
    char         *index = path_join(dir, "model.safetensors.index.json");
    cJSON        *idx = NULL;
    struct sha256 all;
    int           rc = EV_EFAIL;
    sha256_init(&all);
    if (path_exists(single)) {
        h->name[0] = single;
        single = NULL;
        h->n = 1;
    } else if (path_exists(index)) {
        if ((rc = json_parse_file(index, &idx, err)) != EV_OK) goto out;
        const cJSON *map = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
        if (!cJSON_IsObject(map)) {
            rc = ev_fail(err, EV_EFAIL, "%s: no \"weight_map\" object", index);
            goto out;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, map) {
            if (!cJSON_IsString(e) || strchr(e->valuestring, '/')) {
                rc = ev_fail(err, EV_EFAIL, "%s: weight_map[%s] must be a file name in the folder",
                             index, e->string ? e->string : "?");
                goto out;
            }
            int seen = 0;
            for (int i = 0; i < h->n && !seen; i++)
                seen = strcmp(strrchr(h->name[i], '/') + 1, e->valuestring) == 0;
            if (seen) continue;
            if (h->n == HF_MAX_SHARDS) {
                rc = ev_fail(err, EV_EFAIL, "%s: more than %d shards", index, HF_MAX_SHARDS);
                goto out;
            }
            h->name[h->n++] = path_join(dir, e->valuestring);
        }
        if (h->n == 0) {
            rc = ev_fail(err, EV_EFAIL, "%s: empty weight_map", index);
            goto out;
        }
    } else {
        rc = ev_fail(err, EV_EFAIL, "%s: no model.safetensors or model.safetensors.index.json",
                     dir);
        goto out;
    }
    for (int i = 0; i < h->n; i++) {
        char hex[65];
        if ((rc = st_open(h->name[i], &h->f[i], err)) != EV_OK) {
            for (int j = i + 1; j < h->n; j++) free(h->name[j]);
            h->n = i;
            goto out;
        }
        if (!hash) continue;
        if ((rc = sha256_file(h->name[i], hex, err)) != EV_OK) {
            h->n = i + 1;
            goto out;
        }
        if (h->n == 1) memcpy(hash, hex, 65);
        sha256_update(&all, hex, 64);
    }
    if (hash && h->n > 1) sha256_hex_final(&all, hash);
    rc = EV_OK;
out:
    free(single);
    free(index);
    json_free(idx);
    return rc;
}

// ---------------------------------------------------------------------------- config.json

static int cfg_int(const cJSON *j, const char *key, const char *what, int *out, int dflt,
                   int required, struct ev_err *err) {
    long v = dflt;
    int  rc = required ? json_get_long(j, key, what, &v, err)
                       : json_get_long_opt(j, key, what, &v, err);
    if (rc != EV_OK) return rc;
    if (v < 0 || v > INT_MAX) return ev_fail(err, EV_EFAIL, "%s: %s out of range", what, key);
    *out = (int)v;
    return EV_OK;
}

static int cfg_float(const cJSON *j, const char *key, const char *what, float *out, double dflt,
                     struct ev_err *err) {
    double v = dflt;
    int    rc = json_get_double_opt(j, key, what, &v, err);
    if (rc != EV_OK) return rc;
    if (!(fabs(v) < 1e30)) return ev_fail(err, EV_EFAIL, "%s: %s out of range", what, key);
    *out = (float)v;
    return EV_OK;
}

/* rope_scaling: null / absent / "default" = none; "linear" (factor); "llama3" (factor,
 * low_freq_factor, high_freq_factor, original_max_position_embeddings); anything else is
 * refused naming it. The type is under "rope_type" (or, in older files, "type"). */
static int cfg_rope_scaling(const cJSON *j, const char *what, struct model_config *c,
                            struct ev_err *err) {
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    const char  *type = NULL;
    int          rc;
    c->rope_scaling = MODEL_ROPE_SCALING_NONE;
    if (!rs || cJSON_IsNull(rs)) return EV_OK;
    if (!cJSON_IsObject(rs))
        return ev_fail(err, EV_EFAIL, "%s: rope_scaling must be an object or null", what);
    if ((rc = json_get_str_opt(rs, "rope_type", what, &type, err)) ||
        (!type && (rc = json_get_str_opt(rs, "type", what, &type, err))))
        return rc;
    if (!type || !strcmp(type, "default")) return EV_OK;
    if (!strcmp(type, "linear")) {
        c->rope_scaling = MODEL_ROPE_SCALING_LINEAR;
        return cfg_float(rs, "factor", what, &c->rope_factor, 1.0, err);
    }
    if (!strcmp(type, "llama3")) {
        c->rope_scaling = MODEL_ROPE_SCALING_LLAMA3;
        if ((rc = cfg_float(rs, "factor", what, &c->rope_factor, 8.0, err)) ||
            (rc = cfg_float(rs, "low_freq_factor", what, &c->rope_low_freq, 1.0, err)) ||
            (rc = cfg_float(rs, "high_freq_factor", what, &c->rope_high_freq, 4.0, err)) ||
            (rc = cfg_int(rs, "original_max_position_embeddings", what, &c->rope_orig_max, 8192,
                          0, err)))
            return rc;
        return EV_OK;
    }
    return ev_fail(err, EV_EFAIL,
                   "%s: rope_scaling type \"%s\" not supported (linear and llama3 are)", what,
                   type);
}

/* Gemma's local/global layers: sliding_window_pattern, or a layer_types list that must follow
 * one (layer l local iff (l + 1) % P != 0). */
static int cfg_layer_types(const cJSON *j, const char *what, struct model_config *c, int dflt,
                           struct ev_err *err) {
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(j, "layer_types");
    int          rc;
    c->sliding_pattern = dflt;
    if ((rc = cfg_int(j, "sliding_window_pattern", what, &c->sliding_pattern, dflt, 0, err)))
        return rc;
    if (!lt || cJSON_IsNull(lt)) return EV_OK;
    if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != c->n_layers)
        return ev_fail(err, EV_EFAIL, "%s: layer_types must list the %d layers", what,
                       c->n_layers);
    int first_full = -1, l = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, lt) {
        if (!cJSON_IsString(e) || (strcmp(e->valuestring, "sliding_attention") &&
                                   strcmp(e->valuestring, "full_attention")))
            return ev_fail(err, EV_EFAIL, "%s: layer_types[%d] must be \"sliding_attention\" or "
                                          "\"full_attention\"",
                           what, l);
        if (first_full < 0 && !strcmp(e->valuestring, "full_attention")) first_full = l;
        l++;
    }
    int P = first_full < 0 ? 0 : first_full + 1;
    l = 0;
    cJSON_ArrayForEach(e, lt) {
        int local = P == 0 || (l + 1) % P != 0;
        if (local != !strcmp(e->valuestring, "sliding_attention"))
            return ev_fail(err, EV_EFAIL,
                           "%s: layer_types do not repeat one pattern (every Nth layer global); "
                           "not supported",
                           what);
        l++;
    }
    c->sliding_pattern = P;
    return EV_OK;
}

static int cfg_llama(const cJSON *j, const char *cfg_path, const char *mt, int tied,
                     struct model_config *c, double *eps, double *theta, struct ev_err *err) {
    const char *act = NULL;
    int attn_bias = 0, mlp_bias = 0, sliding = 0, use_sliding = 1, rc;
    c->arch = MODEL_ARCH_LLAMA;
    c->rope = MODEL_ROPE_HALF;
    c->norm = MODEL_NORM_RMS;
    c->act = MODEL_ACT_SWIGLU;
    c->tied_embeddings = tied == 1;
    *eps = 1e-6;
    if ((rc = cfg_int(j, "hidden_size", cfg_path, &c->dim, 0, 1, err)) ||
        (rc = cfg_int(j, "intermediate_size", cfg_path, &c->hidden_dim, 0, 1, err)) ||
        (rc = cfg_int(j, "num_hidden_layers", cfg_path, &c->n_layers, 0, 1, err)) ||
        (rc = cfg_int(j, "num_attention_heads", cfg_path, &c->n_heads, 0, 1, err)) ||
        (rc = cfg_int(j, "vocab_size", cfg_path, &c->vocab_size, 0, 1, err)) ||
        (rc = cfg_int(j, "max_position_embeddings", cfg_path, &c->seq_len, 2048, 0, err)) ||
        (rc = cfg_int(j, "num_key_value_heads", cfg_path, &c->n_kv_heads, c->n_heads, 0,
                      err)) ||
        (rc = json_get_double_opt(j, "rms_norm_eps", cfg_path, eps, err)) ||
        (rc = json_get_double_opt(j, "rope_theta", cfg_path, theta, err)) ||
        (rc = json_get_str_opt(j, "hidden_act", cfg_path, &act, err)) ||
        (rc = json_get_bool_opt(j, "attention_bias", cfg_path, &attn_bias, err)) ||
        (rc = json_get_bool_opt(j, "mlp_bias", cfg_path, &mlp_bias, err)) ||
        (rc = json_get_bool_opt(j, "use_sliding_window", cfg_path, &use_sliding, err)) ||
        (rc = cfg_rope_scaling(j, cfg_path, c, err)))
        return rc;
    c->head_dim = c->n_heads ? c->dim / c->n_heads : 0;
    if ((rc = cfg_int(j, "head_dim", cfg_path, &c->head_dim, c->head_dim, 0, err))) return rc;
    if (act && strcmp(act, "silu"))
        return ev_fail(err, EV_EFAIL, "%s: hidden_act \"%s\" not supported (silu only)",
                       cfg_path, act);
    if (mlp_bias) return ev_fail(err, EV_EFAIL, "%s: mlp_bias is not supported", cfg_path);
    if (strcmp(mt, "qwen2") == 0) c->qkv_bias = 1;
    else if (attn_bias)
        return ev_fail(err, EV_EFAIL, "%s: attention_bias is not supported for %s", cfg_path, mt);
    if (strcmp(mt, "qwen3") == 0) c->qk_norm = 1;
    if (use_sliding && strcmp(mt, "mistral") == 0 &&
        (rc = cfg_int(j, "sliding_window", cfg_path, &sliding, 0, 0, err)) == EV_OK &&
        sliding > 0 && sliding < c->seq_len)
        c->seq_len = sliding; /* within the window, full attention is exact */
    return rc;
}

static int cfg_gpt_neox(const cJSON *j, const char *cfg_path, int tied, struct model_config *c,
                        double *eps, double *theta, struct ev_err *err) {
    const char *act = NULL;
    double      pct = 1.0;
    int         parallel = 1, attn_bias = 1, rc;
    c->arch = MODEL_ARCH_GPT_NEOX;
    c->rope = MODEL_ROPE_HALF;
    c->norm = MODEL_NORM_LAYER;
    c->tied_embeddings = tied == 1;
    if ((rc = cfg_int(j, "hidden_size", cfg_path, &c->dim, 0, 1, err)) ||
        (rc = cfg_int(j, "intermediate_size", cfg_path, &c->hidden_dim, 4 * c->dim, 0, err)) ||
        (rc = cfg_int(j, "num_hidden_layers", cfg_path, &c->n_layers, 0, 1, err)) ||
        (rc = cfg_int(j, "num_attention_heads", cfg_path, &c->n_heads, 0, 1, err)) ||
        (rc = cfg_int(j, "vocab_size", cfg_path, &c->vocab_size, 0, 1, err)) ||
        (rc = cfg_int(j, "max_position_embeddings", cfg_path, &c->seq_len, 2048, 0, err)) ||
        (rc = json_get_double_opt(j, "layer_norm_eps", cfg_path, eps, err)) ||
        (rc = json_get_double_opt(j, "rotary_emb_base", cfg_path, theta, err)) ||
        (rc = json_get_double_opt(j, "rope_theta", cfg_path, theta, err)) ||
        (rc = json_get_double_opt(j, "rotary_pct", cfg_path, &pct, err)) ||
        (rc = json_get_bool_opt(j, "use_parallel_residual", cfg_path, &parallel, err)) ||
        (rc = json_get_bool_opt(j, "attention_bias", cfg_path, &attn_bias, err)) ||
        (rc = json_get_str_opt(j, "hidden_act", cfg_path, &act, err)) ||
        (rc = cfg_rope_scaling(j, cfg_path, c, err)))
        return rc;
    if (c->rope_scaling != MODEL_ROPE_SCALING_NONE)
        return ev_fail(err, EV_EFAIL, "%s: rope_scaling is not supported for gpt_neox", cfg_path);
    if (!attn_bias)
        return ev_fail(err, EV_EFAIL, "%s: gpt_neox without attention biases is not supported",
                       cfg_path);
    if (!act || !strcmp(act, "gelu")) c->act = MODEL_ACT_GELU_ERF;
    else if (!strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh"))
        c->act = MODEL_ACT_GELU_TANH;
    else
        return ev_fail(err, EV_EFAIL,
                       "%s: hidden_act \"%s\" not supported (gelu, gelu_new, gelu_pytorch_tanh)",
                       cfg_path, act);
    c->n_kv_heads = c->n_heads;
    c->head_dim = c->n_heads ? c->dim / c->n_heads : 0;
    if (c->n_heads && c->dim % c->n_heads)
        return ev_fail(err, EV_EFAIL, "%s: hidden_size %d is not a multiple of the %d heads",
                       cfg_path, c->dim, c->n_heads);
    if (!(pct > 0.0 && pct <= 1.0))
        return ev_fail(err, EV_EFAIL, "%s: rotary_pct %g outside (0, 1]", cfg_path, pct);
    int rot = (int)(c->head_dim * pct); /* HF: int(head_size * rotary_pct) */
    if (rot % 2)
        return ev_fail(err, EV_EFAIL, "%s: rotary dims %d (head %d x rotary_pct %g) must be even",
                       cfg_path, rot, c->head_dim, pct);
    c->rot_dims = rot == c->head_dim ? 0 : rot;
    c->qkv_bias = c->out_bias = 1;
    c->parallel_residual = parallel;
    return EV_OK;
}

static int cfg_gemma(const cJSON *j, const char *cfg_path, const char *mt, int tied,
                     struct model_config *c, double *eps, double *theta, struct ev_err *err) {
    const char *act = NULL, *act2 = NULL;
    int         attn_bias = 0, g3 = !strcmp(mt, "gemma3_text"), rc;
    float       qpas = 0.0f;
    c->arch = MODEL_ARCH_GEMMA;
    c->rope = MODEL_ROPE_HALF;
    c->norm = MODEL_NORM_RMS;
    c->act = MODEL_ACT_GEGLU_TANH;
    c->tied_embeddings = tied != 0;
    c->post_norms = 1;
    c->qk_norm = g3;
    *eps = 1e-6;
    c->head_dim = 256;
    if ((rc = cfg_int(j, "hidden_size", cfg_path, &c->dim, 0, 1, err)) ||
        (rc = cfg_int(j, "intermediate_size", cfg_path, &c->hidden_dim, 0, 1, err)) ||
        (rc = cfg_int(j, "num_hidden_layers", cfg_path, &c->n_layers, 0, 1, err)) ||
        (rc = cfg_int(j, "num_attention_heads", cfg_path, &c->n_heads, 0, 1, err)) ||
        (rc = cfg_int(j, "num_key_value_heads", cfg_path, &c->n_kv_heads, c->n_heads, 0,
                      err)) ||
        (rc = cfg_int(j, "head_dim", cfg_path, &c->head_dim, 256, 0, err)) ||
        (rc = cfg_int(j, "vocab_size", cfg_path, &c->vocab_size, 0, 1, err)) ||
        (rc = cfg_int(j, "max_position_embeddings", cfg_path, &c->seq_len, 8192, 0, err)) ||
        (rc = json_get_double_opt(j, "rms_norm_eps", cfg_path, eps, err)) ||
        (rc = json_get_double_opt(j, "rope_theta", cfg_path, theta, err)) ||
        (rc = json_get_str_opt(j, "hidden_activation", cfg_path, &act, err)) ||
        (rc = json_get_str_opt(j, "hidden_act", cfg_path, &act2, err)) ||
        (rc = json_get_bool_opt(j, "attention_bias", cfg_path, &attn_bias, err)) ||
        (rc = cfg_float(j, "query_pre_attn_scalar", cfg_path, &qpas, (double)c->head_dim,
                        err)) ||
        (rc = cfg_float(j, "attn_logit_softcapping", cfg_path, &c->attn_softcap,
                        g3 ? 0.0 : 50.0, err)) ||
        (rc = cfg_float(j, "final_logit_softcapping", cfg_path, &c->final_softcap,
                        g3 ? 0.0 : 30.0, err)) ||
        (rc = cfg_int(j, "sliding_window", cfg_path, &c->sliding_window, 4096, 0, err)) ||
        (rc = cfg_layer_types(j, cfg_path, c, g3 ? 6 : 2, err)) ||
        (rc = cfg_rope_scaling(j, cfg_path, c, err)))
        return rc;
    if (!act) act = act2;
    if (act && strcmp(act, "gelu_pytorch_tanh"))
        return ev_fail(err, EV_EFAIL,
                       "%s: hidden_activation \"%s\" not supported (gelu_pytorch_tanh)", cfg_path,
                       act);
    if (attn_bias)
        return ev_fail(err, EV_EFAIL, "%s: attention_bias is not supported for %s", cfg_path, mt);
    if (!(qpas > 0.0f))
        return ev_fail(err, EV_EFAIL, "%s: query_pre_attn_scalar must be > 0", cfg_path);
    c->attn_scale = 1.0f / sqrtf(qpas);
    c->emb_scale = sqrtf((float)c->dim);
    if (g3) {
        float local = 10000.0f;
        if ((rc = cfg_float(j, "rope_local_base_freq", cfg_path, &local, 10000.0, err)))
            return rc;
        c->rope_theta_local = local;
    } else if (c->rope_scaling != MODEL_ROPE_SCALING_NONE) {
        return ev_fail(err, EV_EFAIL, "%s: rope_scaling is not supported for gemma2", cfg_path);
    }
    if (c->sliding_window >= c->seq_len) c->sliding_window = 0; /* never reached */
    return EV_OK;
}

static int hf_config(const char *cfg_path, const cJSON *j, struct model_config *c,
                     enum model_dtype *torch_dtype, struct ev_err *err) {
    const char *mt = NULL, *act = NULL, *td = NULL;
    double      eps = 1e-5, theta = 10000.0;
    int         tied = -1, rc;
    memset(c, 0, sizeof *c);
    if ((rc = json_get_str(j, "model_type", cfg_path, &mt, err)) != EV_OK) return rc;
    snprintf(c->model_type, sizeof c->model_type, "%s", mt);
    if ((rc = json_get_bool_opt(j, "tie_word_embeddings", cfg_path, &tied, err)) != EV_OK ||
        (rc = json_get_str_opt(j, "torch_dtype", cfg_path, &td, err)) != EV_OK)
        return rc;
    if (torch_dtype)
        *torch_dtype = td && !strcmp(td, "bfloat16") ? MODEL_DTYPE_BF16
                       : td && !strcmp(td, "float16") ? MODEL_DTYPE_F16
                                                       : MODEL_DTYPE_F32;
    if (strcmp(mt, "gpt2") == 0) {
        c->arch = MODEL_ARCH_GPT2;
        c->rope = MODEL_ROPE_NONE;
        c->norm = MODEL_NORM_LAYER;
        c->act = MODEL_ACT_GELU_TANH;
        c->qkv_bias = c->out_bias = 1;
        c->tied_embeddings = tied != 0;
        if ((rc = cfg_int(j, "n_embd", cfg_path, &c->dim, 0, 1, err)) ||
            (rc = cfg_int(j, "n_layer", cfg_path, &c->n_layers, 0, 1, err)) ||
            (rc = cfg_int(j, "n_head", cfg_path, &c->n_heads, 0, 1, err)) ||
            (rc = cfg_int(j, "vocab_size", cfg_path, &c->vocab_size, 0, 1, err)) ||
            (rc = cfg_int(j, "n_positions", cfg_path, &c->seq_len, 1024, 0, err)) ||
            (rc = cfg_int(j, "n_inner", cfg_path, &c->hidden_dim, 4 * c->dim, 0, err)) ||
            (rc = json_get_double_opt(j, "layer_norm_epsilon", cfg_path, &eps, err)) ||
            (rc = json_get_str_opt(j, "activation_function", cfg_path, &act, err)))
            return rc;
        if (act && strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh"))
            return ev_fail(err, EV_EFAIL,
                           "%s: activation_function \"%s\" not supported (gelu_new only)",
                           cfg_path, act);
        c->n_kv_heads = c->n_heads;
        c->head_dim = c->n_heads ? c->dim / c->n_heads : 0;
    } else if (!strcmp(mt, "llama") || !strcmp(mt, "mistral") || !strcmp(mt, "qwen2") ||
               !strcmp(mt, "qwen3")) {
        if ((rc = cfg_llama(j, cfg_path, mt, tied, c, &eps, &theta, err))) return rc;
    } else if (!strcmp(mt, "gpt_neox")) {
        if ((rc = cfg_gpt_neox(j, cfg_path, tied, c, &eps, &theta, err))) return rc;
    } else if (!strcmp(mt, "gemma2") || !strcmp(mt, "gemma3_text")) {
        if ((rc = cfg_gemma(j, cfg_path, mt, tied, c, &eps, &theta, err))) return rc;
    } else if (!strcmp(mt, "gemma3")) {
        return ev_fail(err, EV_EFAIL,
                       "%s: model_type \"gemma3\" is the multimodal Gemma 3 (4B and up); only "
                       "its text model (gemma3_text, e.g. gemma-3-1b) is supported",
                       cfg_path);
    } else {
        return ev_fail(err, EV_EFAIL,
                       "%s: model_type \"%s\" not supported (gpt2, gpt_neox, llama, mistral, "
                       "qwen2, qwen3, gemma2, gemma3_text)",
                       cfg_path, mt);
    }
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    return model_config_check(c, cfg_path, err);
}

int model_hf_config_text(const char *text, size_t n, const char *what, struct model_config *cfg,
                         enum model_dtype *torch_dtype, struct ev_err *err) {
    cJSON *j = NULL;
    int    rc = json_parse(text, n, what, &j, err);
    if (rc == EV_OK) rc = hf_config(what, j, cfg, torch_dtype, err);
    json_free(j);
    return rc;
}

// ---------------------------------------------------------------------------- weights

/* How our tensor comes from the file's. Matrices are ours (rows, cols), y = W x. */
enum wx {
    WX_NONE,     /* the file holds (rows, cols) / (rows) */
    WX_T,        /* the file holds (cols, rows): GPT-2's Conv1D */
    WX_GPT2_QKV, /* part p of GPT-2's c_attn: file (C, 3C) Conv1D / bias (3C) */
    WX_NEOX_QKV, /* part p of GPT-NeoX's query_key_value: rows per head (q, k, v) of HS */
};

struct wspec {
    char              name[160];
    int64_t           rows, cols; /* cols 0: a vector */
    enum wx           xform;
    int               part, hs;
    int               plus_one;   /* store 1 + w (Gemma's norms) */
    struct model_mat *mat;        /* destination of a matrix */
    float           **vec;        /* destination of a vector */
    /* filled by the first pass */
    const struct st_tensor *t;
    enum model_dtype        keep;
    int                     in_place;
    size_t                  off;  /* into the arena when copied */
};

struct wlist {
    struct wspec *v;
    int           n, cap;
};

static struct wspec *wl_add(struct wlist *l, int64_t rows, int64_t cols, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static struct wspec *wl_add(struct wlist *l, int64_t rows, int64_t cols, const char *fmt, ...) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = xrealloc(l->v, sizeof *l->v * (size_t)l->cap);
    }
    struct wspec *s = &l->v[l->n++];
    memset(s, 0, sizeof *s);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->name, sizeof s->name, fmt, ap);
    va_end(ap);
    s->rows = rows;
    s->cols = cols;
    return s;
}

static void wl_mat(struct wlist *l, struct model_mat *dst, int64_t rows, int64_t cols,
                   enum wx x, int part, const char *name) {
    struct wspec *s = wl_add(l, rows, cols, "%s", name);
    s->mat = dst;
    s->xform = x;
    s->part = part;
}

static void wl_vec(struct wlist *l, float **dst, int64_t n, enum wx x, int part, int plus_one,
                   const char *name) {
    struct wspec *s = wl_add(l, n, 0, "%s", name);
    s->vec = dst;
    s->xform = x;
    s->part = part;
    s->plus_one = plus_one;
}


/* The tensor names of each family. */
static void specs_gpt2(struct wlist *l, struct model *m, const struct hf_files *h) {
    const struct model_config *c = &m->cfg;
    struct model_weights      *w = &m->w;
    int64_t C = c->dim, H = c->hidden_dim, V = c->vocab_size;
    const char *pre = hf_find(h, "wte.weight") ? "" : "transformer.";
    char        nm[160];
#define NM(...) (snprintf(nm, sizeof nm, __VA_ARGS__), nm)
    wl_mat(l, &w->tok_emb, V, C, WX_NONE, 0, NM("%swte.weight", pre));
    wl_vec(l, &w->pos_emb, c->seq_len, WX_NONE, 0, 0, NM("%swpe.weight", pre));
    l->v[l->n - 1].cols = C; /* a float32 (seq_len, C) table */
    for (int i = 0; i < c->n_layers; i++) {
        struct model_layer *y = &w->layer[i];
        wl_vec(l, &y->ln1_w, C, WX_NONE, 0, 0, NM("%sh.%d.ln_1.weight", pre, i));
        wl_vec(l, &y->ln1_b, C, WX_NONE, 0, 0, NM("%sh.%d.ln_1.bias", pre, i));
        wl_vec(l, &y->ln2_w, C, WX_NONE, 0, 0, NM("%sh.%d.ln_2.weight", pre, i));
        wl_vec(l, &y->ln2_b, C, WX_NONE, 0, 0, NM("%sh.%d.ln_2.bias", pre, i));
        struct model_mat *qkv[3] = {&y->wq, &y->wk, &y->wv};
        float           **bqkv[3] = {&y->bq, &y->bk, &y->bv};
        for (int p = 0; p < 3; p++) {
            wl_mat(l, qkv[p], C, C, WX_GPT2_QKV, p, NM("%sh.%d.attn.c_attn.weight", pre, i));
            wl_vec(l, bqkv[p], C, WX_GPT2_QKV, p, 0, NM("%sh.%d.attn.c_attn.bias", pre, i));
        }
        wl_mat(l, &y->wo, C, C, WX_T, 0, NM("%sh.%d.attn.c_proj.weight", pre, i));
        wl_vec(l, &y->bo, C, WX_NONE, 0, 0, NM("%sh.%d.attn.c_proj.bias", pre, i));
        wl_mat(l, &y->w1, H, C, WX_T, 0, NM("%sh.%d.mlp.c_fc.weight", pre, i));
        wl_vec(l, &y->b1, H, WX_NONE, 0, 0, NM("%sh.%d.mlp.c_fc.bias", pre, i));
        wl_mat(l, &y->w2, C, H, WX_T, 0, NM("%sh.%d.mlp.c_proj.weight", pre, i));
        wl_vec(l, &y->b2, C, WX_NONE, 0, 0, NM("%sh.%d.mlp.c_proj.bias", pre, i));
    }
    wl_vec(l, &w->lnf_w, C, WX_NONE, 0, 0, NM("%sln_f.weight", pre));
    wl_vec(l, &w->lnf_b, C, WX_NONE, 0, 0, NM("%sln_f.bias", pre));
    if (!c->tied_embeddings) wl_mat(l, &w->wcls, V, C, WX_NONE, 0, "lm_head.weight");
}

static void specs_neox(struct wlist *l, struct model *m) {
    const struct model_config *c = &m->cfg;
    struct model_weights      *w = &m->w;
    int64_t C = c->dim, H = c->hidden_dim, V = c->vocab_size;
    char    nm[160];
    wl_mat(l, &w->tok_emb, V, C, WX_NONE, 0, "gpt_neox.embed_in.weight");
    for (int i = 0; i < c->n_layers; i++) {
        struct model_layer *y = &w->layer[i];
        wl_vec(l, &y->ln1_w, C, WX_NONE, 0, 0, NM("gpt_neox.layers.%d.input_layernorm.weight", i));
        wl_vec(l, &y->ln1_b, C, WX_NONE, 0, 0, NM("gpt_neox.layers.%d.input_layernorm.bias", i));
        wl_vec(l, &y->ln2_w, C, WX_NONE, 0, 0,
               NM("gpt_neox.layers.%d.post_attention_layernorm.weight", i));
        wl_vec(l, &y->ln2_b, C, WX_NONE, 0, 0,
               NM("gpt_neox.layers.%d.post_attention_layernorm.bias", i));
        struct model_mat *qkv[3] = {&y->wq, &y->wk, &y->wv};
        float           **bqkv[3] = {&y->bq, &y->bk, &y->bv};
        for (int p = 0; p < 3; p++) {
            wl_mat(l, qkv[p], C, C, WX_NEOX_QKV, p,
                   NM("gpt_neox.layers.%d.attention.query_key_value.weight", i));
            l->v[l->n - 1].hs = c->head_dim;
            wl_vec(l, bqkv[p], C, WX_NEOX_QKV, p, 0,
                   NM("gpt_neox.layers.%d.attention.query_key_value.bias", i));
            l->v[l->n - 1].hs = c->head_dim;
        }
        wl_mat(l, &y->wo, C, C, WX_NONE, 0, NM("gpt_neox.layers.%d.attention.dense.weight", i));
        wl_vec(l, &y->bo, C, WX_NONE, 0, 0, NM("gpt_neox.layers.%d.attention.dense.bias", i));
        wl_mat(l, &y->w1, H, C, WX_NONE, 0, NM("gpt_neox.layers.%d.mlp.dense_h_to_4h.weight", i));
        wl_vec(l, &y->b1, H, WX_NONE, 0, 0, NM("gpt_neox.layers.%d.mlp.dense_h_to_4h.bias", i));
        wl_mat(l, &y->w2, C, H, WX_NONE, 0, NM("gpt_neox.layers.%d.mlp.dense_4h_to_h.weight", i));
        wl_vec(l, &y->b2, C, WX_NONE, 0, 0, NM("gpt_neox.layers.%d.mlp.dense_4h_to_h.bias", i));
    }
    wl_vec(l, &w->lnf_w, C, WX_NONE, 0, 0, "gpt_neox.final_layer_norm.weight");
    wl_vec(l, &w->lnf_b, C, WX_NONE, 0, 0, "gpt_neox.final_layer_norm.bias");
    if (!c->tied_embeddings) wl_mat(l, &w->wcls, V, C, WX_NONE, 0, "embed_out.weight");
}

/* Llama, Mistral, Qwen2/3 and Gemma 2/3 share HF's "model.layers.N" naming. */
static void specs_llama_gemma(struct wlist *l, struct model *m) {
    const struct model_config *c = &m->cfg;
    struct model_weights      *w = &m->w;
    int64_t C = c->dim, H = c->hidden_dim, V = c->vocab_size, HS = c->head_dim;
    int64_t qd = (int64_t)c->n_heads * HS, kvd = (int64_t)c->n_kv_heads * HS;
    int     g = c->arch == MODEL_ARCH_GEMMA; /* norms store (1 + w) */
    char    nm[160];
    wl_mat(l, &w->tok_emb, V, C, WX_NONE, 0, "model.embed_tokens.weight");
    for (int i = 0; i < c->n_layers; i++) {
        struct model_layer *y = &w->layer[i];
        wl_vec(l, &y->ln1_w, C, WX_NONE, 0, g, NM("model.layers.%d.input_layernorm.weight", i));
        if (g) {
            wl_vec(l, &y->attn_post_w, C, WX_NONE, 0, 1,
                   NM("model.layers.%d.post_attention_layernorm.weight", i));
            wl_vec(l, &y->ln2_w, C, WX_NONE, 0, 1,
                   NM("model.layers.%d.pre_feedforward_layernorm.weight", i));
            wl_vec(l, &y->mlp_post_w, C, WX_NONE, 0, 1,
                   NM("model.layers.%d.post_feedforward_layernorm.weight", i));
        } else {
            wl_vec(l, &y->ln2_w, C, WX_NONE, 0, 0,
                   NM("model.layers.%d.post_attention_layernorm.weight", i));
        }
        wl_mat(l, &y->wq, qd, C, WX_NONE, 0, NM("model.layers.%d.self_attn.q_proj.weight", i));
        wl_mat(l, &y->wk, kvd, C, WX_NONE, 0, NM("model.layers.%d.self_attn.k_proj.weight", i));
        wl_mat(l, &y->wv, kvd, C, WX_NONE, 0, NM("model.layers.%d.self_attn.v_proj.weight", i));
        wl_mat(l, &y->wo, C, qd, WX_NONE, 0, NM("model.layers.%d.self_attn.o_proj.weight", i));
        if (c->qkv_bias) {
            wl_vec(l, &y->bq, qd, WX_NONE, 0, 0, NM("model.layers.%d.self_attn.q_proj.bias", i));
            wl_vec(l, &y->bk, kvd, WX_NONE, 0, 0, NM("model.layers.%d.self_attn.k_proj.bias", i));
            wl_vec(l, &y->bv, kvd, WX_NONE, 0, 0, NM("model.layers.%d.self_attn.v_proj.bias", i));
        }
        if (c->qk_norm) {
            wl_vec(l, &y->q_norm_w, HS, WX_NONE, 0, g,
                   NM("model.layers.%d.self_attn.q_norm.weight", i));
            wl_vec(l, &y->k_norm_w, HS, WX_NONE, 0, g,
                   NM("model.layers.%d.self_attn.k_norm.weight", i));
        }
        wl_mat(l, &y->w1, H, C, WX_NONE, 0, NM("model.layers.%d.mlp.gate_proj.weight", i));
        wl_mat(l, &y->w2, C, H, WX_NONE, 0, NM("model.layers.%d.mlp.down_proj.weight", i));
        wl_mat(l, &y->w3, H, C, WX_NONE, 0, NM("model.layers.%d.mlp.up_proj.weight", i));
    }
    wl_vec(l, &w->lnf_w, C, WX_NONE, 0, g, "model.norm.weight");
    if (!c->tied_embeddings) wl_mat(l, &w->wcls, V, C, WX_NONE, 0, "lm_head.weight");
#undef NM
}

/* The file shape a spec expects. */
static int spec_file_shape(const struct wspec *s, int64_t shape[2]) {
    int64_t r = s->rows, c = s->cols;
    switch (s->xform) {
    case WX_T: shape[0] = c, shape[1] = r; return 2;
    case WX_GPT2_QKV:
        if (!c) return shape[0] = 3 * r, 1;
        shape[0] = c, shape[1] = 3 * r;
        return 2;
    case WX_NEOX_QKV:
        shape[0] = 3 * r;
        if (!c) return 1;
        shape[1] = c;
        return 2;
    default: shape[0] = r, shape[1] = c; return c ? 2 : 1;
    }
}

/* Our row r's row in the (transposed when Conv1D) file tensor. */
static int64_t spec_src_row(const struct wspec *s, int64_t r) {
    if (s->xform == WX_GPT2_QKV) return s->part * s->rows + r;
    if (s->xform == WX_NEOX_QKV) return (r / s->hs) * 3 * s->hs + s->part * s->hs + r % s->hs;
    return r;
}

static float elem_f32(const struct st_tensor *t, size_t i) {
    const unsigned char *p = t->data;
    if (t->dtype == ST_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return t->dtype == ST_BF16 ? kern_bf16_to_f32(h) : kern_f16_to_f32(h);
}

static enum model_dtype st_to_model_dtype(enum st_dtype d) {
    return d == ST_BF16 ? MODEL_DTYPE_BF16 : d == ST_F16 ? MODEL_DTYPE_F16 : MODEL_DTYPE_F32;
}

static size_t dsize(enum model_dtype d) { return d == MODEL_DTYPE_F32 ? 4 : 2; }

/* Every value of t finite (NaN / Inf in a checkpoint means corruption). */
static int tensor_finite(const struct st_tensor *t, const char *dir, struct ev_err *err) {
    const unsigned char *p = t->data;
    for (int64_t i = 0; i < t->n_elem; i++) {
        int bad;
        if (t->dtype == ST_F32) {
            uint32_t u;
            memcpy(&u, p + 4 * i, 4);
            bad = (u & 0x7f800000u) == 0x7f800000u;
        } else {
            uint16_t u;
            memcpy(&u, p + 2 * i, 2);
            bad = t->dtype == ST_BF16 ? (u & 0x7f80u) == 0x7f80u : (u & 0x7c00u) == 0x7c00u;
        }
        if (bad)
            return ev_fail(err, EV_EFAIL,
                           "%s: tensor %s: non-finite weight at element %lld (corrupt "
                           "checkpoint?)",
                           dir, t->name, (long long)i);
    }
    return EV_OK;
}

/* Writes our tensor into dst in dtype keep (vectors: float32, plus_one applied). */
static void spec_copy(const struct wspec *s, void *dst) {
    const struct st_tensor *t = s->t;
    int64_t rows = s->rows, cols = s->cols ? s->cols : 1;
    int     tr = s->xform == WX_T || (s->xform == WX_GPT2_QKV && s->cols);
    int64_t fcols = tr ? (s->xform == WX_T ? rows : 3 * rows) : cols;
    int     same = st_to_model_dtype(t->dtype) == s->keep && !s->plus_one;
    size_t  es = dsize(s->keep);
    for (int64_t r = 0; r < rows; r++) {
        int64_t sr = spec_src_row(s, r);
        for (int64_t c = 0; c < cols; c++) {
            size_t src = tr ? (size_t)(c * fcols + sr) : (size_t)(sr * cols + c);
            size_t di = (size_t)(r * cols + c);
            if (same) {
                memcpy((char *)dst + di * es, (const char *)t->data + src * es, es);
                continue;
            }
            float v = elem_f32(t, src) + (s->plus_one ? 1.0f : 0.0f);
            if (s->keep == MODEL_DTYPE_F32) {
                memcpy((char *)dst + di * 4, &v, 4);
            } else {
                uint16_t h = s->keep == MODEL_DTYPE_BF16 ? kern_f32_to_bf16(v) : kern_f32_to_f16(v);
                memcpy((char *)dst + di * 2, &h, 2);
            }
        }
    }
}

#define ARENA_ALIGN 64

int model_load_hf(const char *dir, int flags, struct model **out, struct ev_err *err) {
    char               *cfg_path = path_join(dir, "config.json");
    cJSON              *j = NULL;
    struct hf_files     h = {0};
    struct model       *m = NULL;
    struct model_config c;
    struct wlist        wl = {0};
    char                hash[65] = {0};
    int                 rc;

    if ((rc = json_parse_file(cfg_path, &j, err)) != EV_OK) goto out;
    if ((rc = hf_config(cfg_path, j, &c, NULL, err)) != EV_OK) goto out;
    if ((rc = hf_open(dir, &h, hash, err)) != EV_OK) goto out;
    {
        /* every weight comes from a tensor of at least 2 bytes per value: a config that asks
         * for more than the files can hold is refused before allocating */
        size_t held = 0;
        for (int i = 0; i < h.n; i++)
            for (int k = 0; k < st_count(h.f[i]); k++) held += st_at(h.f[i], k)->n_bytes;
        size_t need = (size_t)model_param_count(&c);
        if (need > held / 2 + 1024) {
            rc = ev_fail(err, EV_EFAIL,
                         "%s: config.json describes %zu weights but the safetensors files hold "
                         "%zu bytes",
                         cfg_path, need, held);
            goto out;
        }
    }
    m = xcalloc(1, sizeof *m);
    m->cfg = c;
    memcpy(m->hash, hash, 65);
    model_layers_alloc(m);
    if (c.arch == MODEL_ARCH_GPT2) specs_gpt2(&wl, m, &h);
    else if (c.arch == MODEL_ARCH_GPT_NEOX) specs_neox(&wl, m);
    else specs_llama_gemma(&wl, m);

    /* pass 1: every tensor present, of a float dtype and the right shape, finite; decide
     * where each goes and size the arena */
    size_t arena = 0;
    int    narrowed = 0; /* F32 / F16 matrices rounded to BF16: another computation */
    for (int i = 0; i < wl.n; i++) {
        struct wspec *s = &wl.v[i];
        int64_t       shape[2];
        int           nd = spec_file_shape(s, shape);
        if (!(s->t = hf_find(&h, s->name))) {
            rc = ev_fail(err, EV_EFAIL, "%s: missing tensor %s", dir, s->name);
            goto out;
        }
        if (s->t->dtype != ST_F32 && s->t->dtype != ST_F16 && s->t->dtype != ST_BF16) {
            rc = ev_fail(err, EV_EFAIL, "%s: tensor %s has dtype %s; supported: F32, F16, BF16",
                         dir, s->name, st_dtype_name(s->t->dtype));
            goto out;
        }
        if ((rc = st_check_shape(s->t, nd, shape, err)) != EV_OK) goto out;
        /* a fused tensor read three times is checked once */
        if (s->part == 0 && (rc = tensor_finite(s->t, dir, err)) != EV_OK) goto out;
        enum model_dtype src = st_to_model_dtype(s->t->dtype);
        s->keep = s->vec                    ? MODEL_DTYPE_F32
                  : flags & MODEL_LOAD_F32  ? MODEL_DTYPE_F32
                  : flags & MODEL_LOAD_BF16 ? MODEL_DTYPE_BF16
                                            : src;
        narrowed |= s->mat && s->keep == MODEL_DTYPE_BF16 && src != MODEL_DTYPE_BF16;
        s->in_place = s->mat && s->xform == WX_NONE && s->keep == src && !s->plus_one &&
                      (uintptr_t)s->t->data % dsize(src) == 0;
        if (s->in_place) continue;
        s->off = arena;
        arena += ((size_t)s->rows * (size_t)(s->cols ? s->cols : 1) * dsize(s->keep) +
                  ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    }
    /* pass 2: place */
    m->arena = xmalloc(arena ? arena : 1);
    m->arena_bytes = arena;
    for (int i = 0; i < wl.n; i++) {
        struct wspec *s = &wl.v[i];
        void         *dst = (char *)m->arena + s->off;
        if (s->in_place) {
            dst = (void *)s->t->data;
            m->mapped_bytes += s->t->n_bytes;
        } else {
            spec_copy(s, dst);
        }
        if (s->mat) *s->mat = (struct model_mat){dst, s->keep};
        else *s->vec = dst;
    }
    if (c.tied_embeddings) m->w.wcls = m->w.tok_emb;
    if (narrowed) { /* the rounded weights are a model of their own in the database */
        struct sha256 sh;
        sha256_init(&sh);
        sha256_update(&sh, hash, 64);
        sha256_update(&sh, "|weights:bf16", 13);
        sha256_hex_final(&sh, m->hash);
    }
    if (m->mapped_bytes) { /* the mappings stay for the model's life */
        m->files = xmalloc(sizeof *m->files * (size_t)h.n);
        for (int i = 0; i < h.n; i++) {
            m->files[i] = h.f[i];
            h.f[i] = NULL;
        }
        m->n_files = h.n;
    }
    model_rope_tables(m);
    if (!(flags & MODEL_LOAD_NO_TOKENIZER) &&
        (rc = model_load_tokenizer(m, dir, dir, err)) != EV_OK)
        goto out;
    m->path = xstrdup(dir);
    *out = m;
    m = NULL;
    rc = EV_OK;
out:
    free(wl.v);
    hf_files_release(&h);
    json_free(j);
    free(cfg_path);
    model_free(m);
    return rc;
}

// ---------------------------------------------------------------------------- config only

int model_config_read(const char *path, struct model_config *cfg, enum model_dtype *stored,
                      int *has_weights, struct ev_err *err) {
    char            *cfg_path = NULL, *text = NULL;
    size_t           n = 0;
    struct hf_files  h = {0};
    enum model_dtype td = MODEL_DTYPE_F32;
    int              rc, weights = 0;
    if (!path_exists(path)) return ev_fail(err, EV_EFAIL, "model %s: no such file or folder", path);
    if (!path_is_dir(path)) { /* llama2.c */
        char          hdr[28];
        FILE         *f = fopen(path, "rb");
        size_t        got = f ? fread(hdr, 1, sizeof hdr, f) : 0;
        if (f) fclose(f);
        if ((rc = model_config_from_llama2c(hdr, got, path, cfg, err)) != EV_OK) return rc;
        if (stored) *stored = MODEL_DTYPE_F32;
        if (has_weights) *has_weights = 1;
        return EV_OK;
    }
    cfg_path = path_join(path, "config.json");
    if (!path_exists(cfg_path)) {
        rc = ev_fail(err, EV_EFAIL, "%s: no config.json (expected a Hugging Face model folder)",
                     path);
        goto out;
    }
    if ((rc = file_read_all(cfg_path, &text, &n, err)) != EV_OK) goto out;
    if ((rc = model_hf_config_text(text, n, cfg_path, cfg, &td, err)) != EV_OK) goto out;
    {
        char *single = path_join(path, "model.safetensors");
        char *index = path_join(path, "model.safetensors.index.json");
        weights = path_exists(single) || path_exists(index);
        free(single);
        free(index);
    }
    if (weights) { /* the matrices' dtype as stored: the embedding's */
        if ((rc = hf_open(path, &h, NULL, err)) != EV_OK) goto out;
        static const char *emb[] = {"model.embed_tokens.weight", "gpt_neox.embed_in.weight",
                                    "wte.weight", "transformer.wte.weight"};
        for (size_t i = 0; i < sizeof emb / sizeof emb[0]; i++) {
            const struct st_tensor *t = hf_find(&h, emb[i]);
            if (t) {
                td = st_to_model_dtype(t->dtype);
                break;
            }
        }
    }
    if (stored) *stored = td;
    if (has_weights) *has_weights = weights;
    rc = EV_OK;
out:
    hf_files_release(&h);
    free(text);
    free(cfg_path);
    return rc;
}
