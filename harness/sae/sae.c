/*
 * sae — SAELens-layout sparse autoencoders: cfg parsing in its three shapes, weights, the
 * encode/decode kernels (dense encode through cblas_sgemm, sparse decode), and an atomic
 * folder save with the normalisation factor folded in. See sae.h.
 */
#include "sae/sae.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include "base/hash.h"
#include "base/json.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "sae/npz.h"

const char *sae_arch_name(enum sae_arch a) {
    switch (a) {
    case SAE_ARCH_STANDARD: return "standard";
    case SAE_ARCH_JUMPRELU: return "jumprelu";
    case SAE_ARCH_TOPK:     return "topk";
    }
    return "?";
}

const char *sae_format_name(enum sae_format f) {
    switch (f) {
    case SAE_FORMAT_SAELENS:    return "saelens";
    case SAE_FORMAT_SPARSIFY:   return "sparsify";
    case SAE_FORMAT_GEMMASCOPE: return "gemmascope";
    case SAE_FORMAT_GEMMASCOPE2: return "gemmascope2";
    }
    return "?";
}

const char *sae_kind_name(const struct sae *s) {
    if (!s->cfg.transcoder) return "sae";
    return s->cfg.skip ? "skip transcoder" : "transcoder";
}

struct sae_config sae_default_config(int d_in, int d_sae) {
    struct sae_config c;
    memset(&c, 0, sizeof c);
    c.d_in = d_in;
    c.d_sae = d_sae;
    c.d_out = d_in;
    c.arch = SAE_ARCH_STANDARD;
    c.apply_b_dec_to_input = 1;
    c.norm_factor = 1.0;
    c.folded_norm_factor = 1.0;
    c.hook_layer = -1;
    snprintf(c.dtype, sizeof c.dtype, "float32");
    snprintf(c.normalize, sizeof c.normalize, "none");
    return c;
}

struct sae *sae_new(const struct sae_config *cfg) {
    EV_ASSERT(cfg && cfg->d_in > 0 && cfg->d_sae > 0 && cfg->d_out >= 0);
    struct sae *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    if (s->cfg.d_out == 0) s->cfg.d_out = cfg->d_in;
    size_t d_in = (size_t)cfg->d_in, d_sae = (size_t)cfg->d_sae, d_out = (size_t)s->cfg.d_out;
    size_t n = d_in * d_sae + d_sae + d_sae * d_out + d_out +
               (cfg->arch == SAE_ARCH_JUMPRELU ? d_sae : 0);
    s->arena = xcalloc(n, sizeof(float));
    float *p = s->arena;
    s->W_enc = p; p += d_in * d_sae;
    s->b_enc = p; p += d_sae;
    s->W_dec = p; p += d_sae * d_out;
    s->b_dec = p; p += d_out;
    if (cfg->arch == SAE_ARCH_JUMPRELU) s->threshold = p;
    if (cfg->skip) s->W_skip = xcalloc(d_out * d_in, sizeof(float));
    return s;
}

void sae_free(struct sae *s) {
    if (!s) return;
    free(s->arena);
    free(s->W_skip);
    free(s->scaling);
    free(s->cfg_json);
    free(s);
}

size_t sae_count_nonfinite(const float *a, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += !isfinite(a[i]);
    return bad;
}

// ---------------------------------------------------------------- cfg.json

/* Looks key up on top, then in "metadata", then in "meta" (SAELens 6.0 nests them). */
static const cJSON *cfg_item(const cJSON *root, const char *key) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (it && !cJSON_IsNull(it)) return it;
    static const char *const nests[] = {"metadata", "meta"};
    for (size_t i = 0; i < sizeof nests / sizeof nests[0]; i++) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, nests[i]);
        if (!cJSON_IsObject(m)) continue;
        it = cJSON_GetObjectItemCaseSensitive(m, key);
        if (it && !cJSON_IsNull(it)) return it;
    }
    return NULL;
}

static int cfg_int(const cJSON *it, const char *what, const char *key, long *out,
                   struct ev_err *err) {
    /* beyond 2^53 a double holds no exact integer, and beyond LONG_MAX the cast is undefined
     * (found by tests/fuzz: "d_sae": 1e58) */
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
        fabs(it->valuedouble) > 9.0e15)
        return ev_fail(err, EV_EFAIL, "%s: %s must be an integer", what, key);
    *out = (long)it->valuedouble;
    return EV_OK;
}

static int cfg_copy_str(const cJSON *it, const char *what, const char *key, char *dst,
                        size_t cap, struct ev_err *err) {
    if (!cJSON_IsString(it)) return ev_fail(err, EV_EFAIL, "%s: %s must be a string", what, key);
    if (strlen(it->valuestring) >= cap)
        return ev_fail(err, EV_EFAIL, "%s: %s is too long (at most %zu characters)", what, key,
                       cap - 1);
    memcpy(dst, it->valuestring, strlen(it->valuestring) + 1);
    return EV_OK;
}

/* Parses text as a cfg.json that must be a JSON object (*root: caller frees with json_free;
 * sae_parse_config's own check, for the loaders of the other formats). */
static int cfg_parse_object(const char *text, size_t n, const char *what, cJSON **root,
                            struct ev_err *err) {
    int rc = json_parse(text, n, what, root, err);
    if (rc) return rc;
    if (!cJSON_IsObject(*root)) return ev_fail(err, EV_EFAIL, "%s: expected a JSON object", what);
    return EV_OK;
}

/* d_in (it: its item, NULL when absent): an integer in 1..2^20, as every format needs it. */
static int cfg_d_in(const cJSON *it, const char *what, int *d_in, struct ev_err *err) {
    long v = 0;
    if (!it) return ev_fail(err, EV_EFAIL, "%s: missing d_in", what);
    if (cfg_int(it, what, "d_in", &v, err)) return EV_EFAIL;
    if (v < 1 || v > (1L << 20))
        return ev_fail(err, EV_EFAIL, "%s: d_in %ld out of range (1..1048576)", what, v);
    *d_in = (int)v;
    return EV_OK;
}

int sae_parse_config(const char *text, size_t n, const char *what, struct sae_config *cfg,
                     struct ev_err *err) {
    cJSON *root = NULL;
    int    rc = json_parse(text, n, what, &root, err);
    if (rc) return rc;
    const cJSON *it;
    long         v = 0;
    *cfg = sae_default_config(1, 1);
    rc = EV_EFAIL;
    if (!cJSON_IsObject(root)) {
        ev_fail(err, EV_EFAIL, "%s: expected a JSON object", what);
        goto out;
    }
    if (cfg_d_in(cfg_item(root, "d_in"), what, &cfg->d_in, err)) goto out;
    if (!(it = cfg_item(root, "d_sae"))) {
        ev_fail(err, EV_EFAIL, "%s: missing d_sae", what);
        goto out;
    }
    if (cfg_int(it, what, "d_sae", &v, err)) goto out;
    if (v < 1 || v > (1L << 26)) {
        ev_fail(err, EV_EFAIL, "%s: d_sae %ld out of range (1..67108864)", what, v);
        goto out;
    }
    cfg->d_sae = (int)v;

    /* architecture; very old files have none and may say activation_fn_str "topk" */
    const char *arch = "standard";
    if ((it = cfg_item(root, "architecture"))) {
        if (!cJSON_IsString(it)) {
            ev_fail(err, EV_EFAIL, "%s: architecture must be a string", what);
            goto out;
        }
        arch = it->valuestring;
    } else if ((it = cfg_item(root, "activation_fn_str")) && cJSON_IsString(it) &&
               strcmp(it->valuestring, "topk") == 0) {
        arch = "topk";
    }
    /* SAELens' transcoders: ReLU (transcoder, skip_transcoder) or JumpReLU */
    cfg->transcoder = strcmp(arch, "transcoder") == 0 || strcmp(arch, "skip_transcoder") == 0 ||
                      strcmp(arch, "jumprelu_transcoder") == 0;
    cfg->skip = strcmp(arch, "skip_transcoder") == 0;
    if (strcmp(arch, "standard") == 0 || strcmp(arch, "transcoder") == 0 ||
        strcmp(arch, "skip_transcoder") == 0)
        cfg->arch = SAE_ARCH_STANDARD;
    else if (strcmp(arch, "jumprelu") == 0 || strcmp(arch, "jumprelu_transcoder") == 0)
        cfg->arch = SAE_ARCH_JUMPRELU;
    else if (strcmp(arch, "topk") == 0) cfg->arch = SAE_ARCH_TOPK;
    else {
        ev_fail(err, EV_EFAIL,
                "%s: architecture '%s' is not supported (expected standard, jumprelu, topk, "
                "transcoder, skip_transcoder or jumprelu_transcoder)",
                what, arch);
        goto out;
    }
    if (cfg->arch == SAE_ARCH_TOPK) {
        it = cfg_item(root, "k");
        if (!it) {
            const cJSON *kw = cfg_item(root, "activation_fn_kwargs");
            if (cJSON_IsObject(kw)) it = cJSON_GetObjectItemCaseSensitive(kw, "k");
        }
        if (!it) {
            ev_fail(err, EV_EFAIL, "%s: topk SAE without k (nor activation_fn_kwargs.k)", what);
            goto out;
        }
        if (cfg_int(it, what, "k", &v, err)) goto out;
        if (v < 1 || v > cfg->d_sae) {
            ev_fail(err, EV_EFAIL, "%s: k %ld out of range (1..d_sae=%d)", what, v, cfg->d_sae);
            goto out;
        }
        cfg->k = (int)v;
    }

    if ((it = cfg_item(root, "apply_b_dec_to_input"))) {
        if (!cJSON_IsBool(it)) {
            ev_fail(err, EV_EFAIL, "%s: apply_b_dec_to_input must be true or false", what);
            goto out;
        }
        cfg->apply_b_dec_to_input = cJSON_IsTrue(it);
    }

    if ((it = cfg_item(root, "dtype"))) {
        if (cfg_copy_str(it, what, "dtype", cfg->dtype, sizeof cfg->dtype, err)) goto out;
        const char *d = cfg->dtype;
        if (strncmp(d, "torch.", 6) == 0) d += 6;
        if (strcmp(d, "float32") && strcmp(d, "float16") && strcmp(d, "bfloat16") &&
            strcmp(d, "float64") && strcmp(d, "float") && strcmp(d, "half")) {
            ev_fail(err, EV_EFAIL,
                    "%s: dtype '%s' is not supported (expected float32, float16, bfloat16 or "
                    "float64, optionally with a torch. prefix)",
                    what, cfg->dtype);
            goto out;
        }
    }

    if ((it = cfg_item(root, "evalrun_norm_factor"))) {
        if (!cJSON_IsNumber(it) || !(it->valuedouble > 0) || !isfinite(it->valuedouble)) {
            ev_fail(err, EV_EFAIL, "%s: evalrun_norm_factor must be a positive number", what);
            goto out;
        }
        cfg->folded_norm_factor = it->valuedouble;
    }
    if ((it = cfg_item(root, "normalize_activations"))) {
        if (cJSON_IsBool(it)) {
            snprintf(cfg->normalize, sizeof cfg->normalize, "%s",
                     cJSON_IsTrue(it) ? "expected_average_only_in" : "none");
        } else if (cfg_copy_str(it, what, "normalize_activations", cfg->normalize,
                                sizeof cfg->normalize, err)) {
            goto out;
        }
    }
    if (strcmp(cfg->normalize, "none") == 0) {
        /* nothing at run time */
    } else if (strcmp(cfg->normalize, "expected_average_only_in") == 0) {
        const cJSON *f = cfg_item(root, "norm_scaling_factor");
        if (!cJSON_IsNumber(f) || !(f->valuedouble > 0) || !isfinite(f->valuedouble)) {
            ev_fail(err, EV_EFAIL,
                    "%s: normalize_activations is expected_average_only_in but the cfg has no "
                    "norm_scaling_factor; fold the factor into the weights (SAELens does at the "
                    "end of training) or add it to cfg.json",
                    what);
            goto out;
        }
        cfg->norm_factor = f->valuedouble;
    } else if (strcmp(cfg->normalize, "constant_norm_rescale") == 0 ||
               strcmp(cfg->normalize, "layer_norm") == 0) {
        ev_fail(err, EV_EFAIL, "%s: normalize_activations '%s' is not supported (only none and "
                               "expected_average_only_in)",
                what, cfg->normalize);
        goto out;
    } else {
        ev_fail(err, EV_EFAIL,
                "%s: unknown normalize_activations '%s' (expected none, "
                "expected_average_only_in, constant_norm_rescale or layer_norm)",
                what, cfg->normalize);
        goto out;
    }

    /* hook and model: hook_name / hook_point, hook_layer / hook_point_layer */
    if ((it = cfg_item(root, "hook_name")) || (it = cfg_item(root, "hook_point"))) {
        if (cfg_copy_str(it, what, "hook_name", cfg->hook_name, sizeof cfg->hook_name, err))
            goto out;
    }
    if ((it = cfg_item(root, "hook_layer")) || (it = cfg_item(root, "hook_point_layer"))) {
        if (cfg_int(it, what, "hook_layer", &v, err)) goto out;
        cfg->hook_layer = (int)v;
    } else if (cfg->hook_name[0] && strncmp(cfg->hook_name, "blocks.", 7) == 0) {
        char *end;
        long  l = strtol(cfg->hook_name + 7, &end, 10);
        if (end != cfg->hook_name + 7 && *end == '.') cfg->hook_layer = (int)l;
    }
    if (cfg->transcoder) {
        /* SAELens' Transcoder: b_dec is an output bias, never subtracted from the input */
        cfg->apply_b_dec_to_input = 0;
        cfg->d_out = cfg->d_in;
        if ((it = cfg_item(root, "d_out"))) {
            if (cfg_int(it, what, "d_out", &v, err)) goto out;
            if (v < 1 || v > (1L << 20)) {
                ev_fail(err, EV_EFAIL, "%s: d_out %ld out of range (1..1048576)", what, v);
                goto out;
            }
            cfg->d_out = (int)v;
        }
        if (!(it = cfg_item(root, "hook_name_out"))) {
            ev_fail(err, EV_EFAIL, "%s: a transcoder without hook_name_out (the hook it writes)",
                    what);
            goto out;
        }
        if (cfg_copy_str(it, what, "hook_name_out", cfg->hook_name_out,
                         sizeof cfg->hook_name_out, err))
            goto out;
        if (!cfg->hook_name_out[0]) {
            ev_fail(err, EV_EFAIL, "%s: hook_name_out is empty", what);
            goto out;
        }
        if (cfg->norm_factor != 1.0) {
            ev_fail(err, EV_EFAIL, "%s: normalize_activations '%s' is not supported for "
                                   "transcoders (only none)", what, cfg->normalize);
            goto out;
        }
    } else {
        cfg->d_out = cfg->d_in;
    }
    if ((it = cfg_item(root, "model_name"))) {
        if (cfg_copy_str(it, what, "model_name", cfg->model_name, sizeof cfg->model_name, err))
            goto out;
    }
    /* TransformerLens processing: fold_ln/center_writing_weights default to true there */
    cfg->tl_processed = 1;
    if ((it = cfg_item(root, "model_from_pretrained_kwargs")) && cJSON_IsObject(it)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "center_writing_weights");
        if (cJSON_IsFalse(c)) cfg->tl_processed = 0;
    }
    /* trained by evalrun: on the runtime's own (unprocessed) stream */
    if (cfg_item(root, "evalrun_norm_factor")) cfg->tl_processed = 0;
    rc = EV_OK;
out:
    json_free(root);
    return rc;
}

// ---------------------------------------------------------------- load

static int load_tensor(const struct st_file *f, const char *file, const char *name, int n_dims,
                       const int64_t *shape, float *dst, struct ev_err *err) {
    const struct st_tensor *t = st_find(f, name);
    if (!t) return ev_fail(err, EV_EFAIL, "%s: missing tensor %s", file, name);
    int rc = st_check_shape(t, n_dims, shape, err);
    if (rc) {
        /* prefix the file so the message names it; the shapes come from cfg.json */
        struct ev_err e2;
        memcpy(e2.msg, err->msg, sizeof e2.msg);
        return ev_fail(err, EV_EFAIL, "%s: %s (shape expected from cfg.json)", file, e2.msg);
    }
    if ((rc = st_to_f32(t, dst, err))) return rc;
    size_t bad = sae_count_nonfinite(dst, (size_t)t->n_elem);
    if (bad)
        return ev_fail(err, EV_EFAIL, "%s: tensor %s holds %zu NaN/Inf values", file, name, bad);
    return EV_OK;
}

/* After the encoder, the tensors the SAELens and sparsify layouts share: the encoder bias
 * (b_enc_name, (S)), W_dec (S, O), b_dec (O) and, for a skip connection, W_skip (O, D). */
static int load_dec_tensors(const struct st_file *f, const char *w_path, const char *b_enc_name,
                            struct sae *s, struct ev_err *err) {
    const int64_t D = s->cfg.d_in, S = s->cfg.d_sae, O = s->cfg.d_out;
    const int64_t sh_dec[2] = {S, O}, sh_s[1] = {S}, sh_o[1] = {O}, sh_skip[2] = {O, D};
    int           rc;
    if ((rc = load_tensor(f, w_path, b_enc_name, 1, sh_s, s->b_enc, err))) return rc;
    if ((rc = load_tensor(f, w_path, "W_dec", 2, sh_dec, s->W_dec, err))) return rc;
    if ((rc = load_tensor(f, w_path, "b_dec", 1, sh_o, s->b_dec, err))) return rc;
    if (s->cfg.skip && (rc = load_tensor(f, w_path, "W_skip", 2, sh_skip, s->W_skip, err)))
        return rc;
    return EV_OK;
}

/* The end of a successful load: *s takes the cfg.json text (*text NULLed) and moves to *out
 * (*s NULLed), so that the loader's cleanup frees neither. */
static int load_done(struct sae **s, char **text, struct sae **out) {
    (*s)->cfg_json = *text;
    *text = NULL;
    *out = *s;
    *s = NULL;
    return EV_OK;
}

static int load_saelens(const char *dir, struct sae **out, struct ev_err *err) {
    char              *cfg_path = path_join(dir, "cfg.json");
    char              *w_path = path_join(dir, "sae_weights.safetensors");
    char              *text = NULL;
    size_t             len = 0;
    struct st_file    *f = NULL;
    struct sae        *s = NULL;
    struct sae_config  cfg;
    int                rc;
    *out = NULL;
    if (!path_is_dir(dir)) {
        rc = ev_fail(err, EV_EFAIL, "%s: not an SAE folder (expected cfg.json and "
                                    "sae_weights.safetensors inside)", dir);
        goto out;
    }
    if ((rc = file_read_all(cfg_path, &text, &len, err))) goto out;
    if ((rc = sae_parse_config(text, len, cfg_path, &cfg, err))) goto out;
    if ((rc = st_open(w_path, &f, err))) goto out;

    const int64_t D = cfg.d_in, S = cfg.d_sae;
    const int64_t sh_enc[2] = {D, S}, sh_s[1] = {S};
    s = sae_new(&cfg);
    if ((rc = load_tensor(f, w_path, "W_enc", 2, sh_enc, s->W_enc, err))) goto out;
    if ((rc = load_dec_tensors(f, w_path, "b_enc", s, err))) goto out;
    if (cfg.arch == SAE_ARCH_JUMPRELU) {
        if (st_find(f, "threshold")) {
            if ((rc = load_tensor(f, w_path, "threshold", 1, sh_s, s->threshold, err))) goto out;
        } else if (st_find(f, "log_threshold")) {
            if ((rc = load_tensor(f, w_path, "log_threshold", 1, sh_s, s->threshold, err)))
                goto out;
            for (int64_t i = 0; i < S; i++) s->threshold[i] = expf(s->threshold[i]);
            if (sae_count_nonfinite(s->threshold, (size_t)S)) {
                rc = ev_fail(err, EV_EFAIL, "%s: exp(log_threshold) overflows", w_path);
                goto out;
            }
        } else {
            rc = ev_fail(err, EV_EFAIL, "%s: jumprelu SAE without a threshold (or log_threshold) "
                                        "tensor", w_path);
            goto out;
        }
    }
    if (st_find(f, "scaling_factor")) {
        float *sc = xmalloc((size_t)S * sizeof(float));
        if ((rc = load_tensor(f, w_path, "scaling_factor", 1, sh_s, sc, err))) {
            free(sc);
            goto out;
        }
        int all_one = 1;
        for (int64_t i = 0; i < S; i++) all_one &= sc[i] == 1.0f;
        if (all_one) free(sc);
        else s->scaling = sc;
    }
    rc = load_done(&s, &text, out);
out:
    sae_free(s);
    st_close(f);
    free(text);
    free(cfg_path);
    free(w_path);
    return rc;
}


/* The last path component of dir, trailing slashes ignored, "." resolved (caller frees). */
static char *dir_basename(const char *dir) {
    char *real = realpath(dir, NULL);
    const char *p = real ? real : dir;
    size_t      n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && p[b - 1] != '/') b--;
    char *name = xmalloc(n - b + 1);
    memcpy(name, p + b, n - b);
    name[n - b] = '\0';
    free(real);
    return name;
}

static int json_bool(const cJSON *root, const char *key, int dflt, const char *what, int *out,
                     struct ev_err *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) {
        *out = dflt;
        return EV_OK;
    }
    if (!cJSON_IsBool(it)) return ev_fail(err, EV_EFAIL, "%s: %s must be true or false", what, key);
    *out = cJSON_IsTrue(it);
    return EV_OK;
}

/*
 * EleutherAI sparsify: cfg.json {d_in, num_latents | expansion_factor, k, activation,
 * transcode, skip_connection, ...} and sae.safetensors {encoder.weight (S, D), encoder.bias
 * (S), W_dec (S, D), b_dec (D), W_skip (D, D)}. The folder's name is the hookpoint.
 */
static int load_sparsify(const char *dir, struct sae **out, struct ev_err *err) {
    char           *cfg_path = path_join(dir, "cfg.json");
    char           *w_path = path_join(dir, "sae.safetensors");
    char           *text = NULL, *hook = NULL;
    float          *enc = NULL;
    size_t          len = 0;
    cJSON          *root = NULL;
    struct st_file *f = NULL;
    struct sae     *s = NULL;
    int             rc;
    *out = NULL;
    if ((rc = file_read_all(cfg_path, &text, &len, err))) goto out;
    if ((rc = cfg_parse_object(text, len, cfg_path, &root, err))) goto out;
    rc = EV_EFAIL;
    struct sae_config c = sae_default_config(1, 1);
    const cJSON      *it = NULL;
    if (cfg_d_in(cJSON_GetObjectItemCaseSensitive(root, "d_in"), cfg_path, &c.d_in, err))
        goto out;
    c.d_out = c.d_in;
    long nl = 0, ef = 0;
    if ((it = cJSON_GetObjectItemCaseSensitive(root, "num_latents")) &&
        cfg_int(it, cfg_path, "num_latents", &nl, err))
        goto out;
    if (nl == 0) {
        ef = 32; /* sparsify's default */
        if ((it = cJSON_GetObjectItemCaseSensitive(root, "expansion_factor")) &&
            cfg_int(it, cfg_path, "expansion_factor", &ef, err))
            goto out;
        if (ef < 1 || ef > (1L << 16)) {
            ev_fail(err, EV_EFAIL, "%s: expansion_factor %ld out of range", cfg_path, ef);
            goto out;
        }
        nl = ef * c.d_in;
    }
    if (nl < 1 || nl > (1L << 26)) {
        ev_fail(err, EV_EFAIL, "%s: num_latents %ld out of range (1..67108864)", cfg_path, nl);
        goto out;
    }
    c.d_sae = (int)nl;
    long k = 32;
    if ((it = cJSON_GetObjectItemCaseSensitive(root, "k")) && cfg_int(it, cfg_path, "k", &k, err))
        goto out;
    if (k < 1 || k > c.d_sae) {
        ev_fail(err, EV_EFAIL, "%s: k %ld out of range (1..num_latents=%d)", cfg_path, k, c.d_sae);
        goto out;
    }
    c.arch = SAE_ARCH_TOPK;
    c.k = (int)k;
    if ((it = cJSON_GetObjectItemCaseSensitive(root, "activation")) && !cJSON_IsNull(it) &&
        !(cJSON_IsString(it) && strcmp(it->valuestring, "topk") == 0)) {
        ev_fail(err, EV_EFAIL, "%s: activation '%s' is not supported (only topk)", cfg_path,
                cJSON_IsString(it) ? it->valuestring : "?");
        goto out;
    }
    int transcode = 0, skip = 0, embed_skip = 0, gram = 0;
    if (json_bool(root, "transcode", 0, cfg_path, &transcode, err) ||
        json_bool(root, "skip_connection", 0, cfg_path, &skip, err) ||
        json_bool(root, "embed_skip", 0, cfg_path, &embed_skip, err) ||
        json_bool(root, "gram_lookup", 0, cfg_path, &gram, err))
        goto out;
    if (embed_skip || gram) {
        ev_fail(err, EV_EFAIL, "%s: %s is not supported (it needs inputs from outside the hook)",
                cfg_path, embed_skip ? "embed_skip" : "gram_lookup");
        goto out;
    }
    c.transcoder = transcode;
    c.skip = skip;
    c.apply_b_dec_to_input = !transcode; /* sparsify centres an autoencoder's input only */
    c.format = SAE_FORMAT_SPARSIFY;
    c.hook_sparsify = 1;
    c.tl_processed = 0; /* trained on the Hugging Face model's own modules */
    hook = dir_basename(dir);
    if (strlen(hook) >= sizeof c.hook_name) {
        ev_fail(err, EV_EFAIL, "%s: folder name too long for a hookpoint", dir);
        goto out;
    }
    snprintf(c.hook_name, sizeof c.hook_name, "%s", hook);
    if (transcode) snprintf(c.hook_name_out, sizeof c.hook_name_out, "%s", hook);
    snprintf(c.dtype, sizeof c.dtype, "float32");

    if ((rc = st_open(w_path, &f, err))) goto out;
    const int64_t D = c.d_in, S = c.d_sae;
    const int64_t sh_enc[2] = {S, D};
    s = sae_new(&c);
    enc = xmalloc((size_t)(D * S) * sizeof(float));
    if ((rc = load_tensor(f, w_path, "encoder.weight", 2, sh_enc, enc, err))) goto out;
    /* nn.Linear keeps (out, in); W_enc is (d_in, d_sae) */
    for (int64_t i = 0; i < S; i++)
        for (int64_t j = 0; j < D; j++) s->W_enc[(size_t)(j * S + i)] = enc[(size_t)(i * D + j)];
    if ((rc = load_dec_tensors(f, w_path, "encoder.bias", s, err))) goto out;
    rc = load_done(&s, &text, out);
out:
    sae_free(s);
    st_close(f);
    json_free(root);
    free(enc);
    free(hook);
    free(text);
    free(cfg_path);
    free(w_path);
    return rc;
}

/* "layer_L" anywhere in path: L, else -1. */
static int path_layer(const char *path) {
    const char *p = path;
    while ((p = strstr(p, "layer_"))) {
        if (p == path || p[-1] == '/') {
            char *end;
            long  l = strtol(p + 6, &end, 10);
            if (end != p + 6 && (*end == '/' || *end == '\0') && l >= 0 && l < 100000)
                return (int)l;
        }
        p += 6;
    }
    return -1;
}

/* Gemma Scope's hooks from the path: the repository name (google/gemma-scope-2b-pt-res, as
 * in the Hugging Face cache's models--google--gemma-scope-2b-pt-res) and layer_L. */
static int gemmascope_hooks_from_path(const char *dir, struct sae_config *c,
                                      struct ev_err *err) {
    char *real = realpath(dir, NULL);
    const char *p = real ? real : dir;
    int layer = path_layer(p);
    const char *g = strstr(p, "gemma-scope");
    const char *kind = NULL;
    if (g) {
        size_t n = strcspn(g, "/");
        static const char *const kinds[] = {"-transcoders", "-res", "-mlp", "-att"};
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0] && !kind; i++) {
            const char *k = g;
            while ((k = strstr(k, kinds[i])) && k < g + n) {
                char after = k[strlen(kinds[i])];
                if (after == '/' || after == '-' || after == '\0') {
                    kind = kinds[i] + 1;
                    break;
                }
                k++;
            }
        }
    }
    int rc = EV_OK;
    if (layer < 0 || !kind) {
        rc = ev_fail(err, EV_EFAIL,
                     "%s: params.npz without a cfg.json, and the path names no Gemma Scope "
                     "release and layer (gemma-scope-*-res|mlp|att|transcoders/.../layer_L/...); "
                     "add a cfg.json with hook_name (and hook_name_out for a transcoder)",
                     dir);
    } else if (strcmp(kind, "res") == 0) {
        snprintf(c->hook_name, sizeof c->hook_name, "blocks.%d.hook_resid_post", layer);
    } else if (strcmp(kind, "mlp") == 0) {
        snprintf(c->hook_name, sizeof c->hook_name, "blocks.%d.hook_mlp_out", layer);
    } else if (strcmp(kind, "att") == 0) {
        snprintf(c->hook_name, sizeof c->hook_name, "blocks.%d.attn.hook_z", layer);
    } else {
        /* as SAELens maps Gemma Scope's transcoders */
        c->transcoder = 1;
        snprintf(c->hook_name, sizeof c->hook_name, "blocks.%d.ln2.hook_normalized", layer);
        snprintf(c->hook_name_out, sizeof c->hook_name_out, "blocks.%d.hook_mlp_out", layer);
    }
    c->hook_layer = layer;
    free(real);
    return rc;
}

/* Gemma Scope's arrays: params.npz (Gemma Scope: W_enc, W_dec, ...) or params.safetensors
 * (Gemma Scope 2: the same arrays with w_enc, w_dec in lower case), read by the npz's names. */
struct gs_src {
    struct npz     *z; /* one of the two */
    struct st_file *f;
    const char     *path;
};

/* name as float32, C order: *data (caller frees), *nd dims, sh the shape; NaN/Inf refused. */
static int gs_read(const struct gs_src *g, const char *name, float **data, int *nd,
                   int64_t sh[NPY_MAX_DIMS], struct ev_err *err) {
    if (g->z) return npz_read_f32(g->z, name, 0, data, nd, sh, err);
    const char *stn = strcmp(name, "W_enc") == 0 ? "w_enc" : strcmp(name, "W_dec") == 0 ? "w_dec"
                                                                                      : name;
    const struct st_tensor *t = st_find(g->f, stn);
    *data = NULL;
    if (!t) return ev_fail(err, EV_EFAIL, "%s: missing tensor %s", g->path, stn);
    if (t->n_dims < 1 || t->n_dims > NPY_MAX_DIMS)
        return ev_fail(err, EV_EFAIL, "%s: tensor %s has %d dimensions", g->path, stn, t->n_dims);
    *nd = t->n_dims;
    for (int i = 0; i < t->n_dims; i++) sh[i] = t->shape[i];
    float *d = xmalloc((size_t)(t->n_elem > 0 ? t->n_elem : 1) * sizeof(float));
    int    rc = st_to_f32(t, d, err);
    if (!rc && sae_count_nonfinite(d, (size_t)t->n_elem))
        rc = ev_fail(err, EV_EFAIL, "%s: tensor %s holds NaN/Inf values", g->path, stn);
    if (rc) free(d);
    else *data = d;
    return rc;
}

/* Every member is one the format writes (anything else would change what the dictionary
 * computes); *affine: an affine_skip_connection is there. */
static int gs_members(const struct gs_src *g, int *affine, struct ev_err *err) {
    static const char *const npz_names[] = {"W_enc.npy", "b_enc.npy", "W_dec.npy", "b_dec.npy",
                                            "threshold.npy", "affine_skip_connection.npy"};
    static const char *const st_names[] = {"w_enc", "b_enc", "w_dec", "b_dec", "threshold",
                                           "affine_skip_connection"};
    int n = g->z ? npz_count(g->z) : st_count(g->f);
    *affine = 0;
    for (int i = 0; i < n; i++) {
        const char *m = g->z ? npz_name(g->z, i) : st_at(g->f, i)->name;
        int         k = 0;
        while (k < 6 && strcmp(m, g->z ? npz_names[k] : st_names[k]) != 0) k++;
        if (k == 5) *affine = 1;
        if (k < 6) continue;
        if (g->z)
            return ev_fail(err, EV_EFAIL, "%s: unexpected member '%s' (Gemma Scope's params.npz "
                                          "holds W_enc, b_enc, W_dec, b_dec, threshold and a "
                                          "transcoder's affine_skip_connection)", g->path, m);
        return ev_fail(err, EV_EFAIL, "%s: unexpected tensor '%s' (Gemma Scope 2's "
                                      "params.safetensors holds w_enc, b_enc, w_dec, b_dec, "
                                      "threshold and a transcoder's affine_skip_connection)",
                       g->path, m);
    }
    return EV_OK;
}

/* Gemma Scope 2's hooks from the path: google/gemma-scope-2-*'s folders
 * resid_post/layer_L_width_W_l0_X and mlp_out/layer_L_... (other sites: a cfg.json). */
static int gemmascope2_hooks_from_path(const char *dir, struct sae_config *c,
                                       struct ev_err *err) {
    static const char *const sites[] = {"/resid_post/layer_", "/mlp_out/layer_"};
    static const char *const hooks[] = {"hook_resid_post", "hook_mlp_out"};
    char       *real = realpath(dir, NULL);
    const char *p = real ? real : dir;
    int         layer = -1, site = -1;
    for (int i = 0; i < 2 && layer < 0; i++) {
        const char *q = strstr(p, sites[i]);
        if (!q) continue;
        char *end;
        long  l = strtol(q + strlen(sites[i]), &end, 10);
        if (end != q + strlen(sites[i]) && (*end == '_' || *end == '/' || *end == '\0') &&
            l >= 0 && l < 100000) {
            layer = (int)l;
            site = i;
        }
    }
    free(real);
    if (layer < 0)
        return ev_fail(err, EV_EFAIL,
                       "%s: params.safetensors without a cfg.json, and the path is no Gemma "
                       "Scope 2 resid_post/layer_L_... or mlp_out/layer_L_... folder; add a "
                       "cfg.json with hook_name (and hook_name_out for a transcoder)", dir);
    snprintf(c->hook_name, sizeof c->hook_name, "blocks.%d.%s", layer, hooks[site]);
    c->hook_layer = layer;
    return EV_OK;
}

static int npz_tensor(const struct gs_src *g, const char *file, const char *name, int n_dims,
                      const int64_t *shape, float *dst, struct ev_err *err) {
    float  *data = NULL;
    int     nd = 0;
    int64_t sh[NPY_MAX_DIMS];
    int     rc = gs_read(g, name, &data, &nd, sh, err);
    if (rc) return rc;
    int same = nd == n_dims;
    for (int i = 0; same && i < nd; i++) same = sh[i] == shape[i];
    if (!same) {
        char got[96] = "", want[96] = "";
        for (int i = 0; i < nd && strlen(got) < 80; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "",
                     (long long)sh[i]);
        for (int i = 0; i < n_dims; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? ", " : "",
                     (long long)shape[i]);
        rc = ev_fail(err, EV_EFAIL, "%s: array %s has shape (%s), expected (%s)", file, name, got,
                     want);
    } else {
        memcpy(dst, data, (size_t)(nd == 2 ? shape[0] * shape[1] : shape[0]) * sizeof(float));
    }
    free(data);
    return rc;
}

/*
 * Gemma Scope: params.npz {W_enc (D, S), b_enc (S), W_dec (S, O), b_dec (O), threshold (S)}:
 * JumpReLU on x W_enc + b_enc (the input is not centred). Hooks from an optional cfg.json
 * (SAELens-shaped: hook_name, hook_name_out, model_name) or the path.
 */
static int load_gemmascope(const char *dir, int fmt, struct sae **out, struct ev_err *err) {
    const int     gs2 = fmt == SAE_FORMAT_GEMMASCOPE2;
    char         *npz_path = path_join(dir, gs2 ? "params.safetensors" : "params.npz");
    char         *cfg_path = path_join(dir, "cfg.json");
    char         *text = NULL;
    cJSON        *root = NULL;
    struct npz   *z = NULL;
    struct st_file *stf = NULL;
    struct sae   *s = NULL;
    float        *w = NULL;
    size_t        len = 0;
    int           rc;
    *out = NULL;
    if ((rc = gs2 ? st_open(npz_path, &stf, err) : npz_open(npz_path, &z, err))) goto out;
    const struct gs_src g = {z, stf, npz_path};
    /* only the arrays Gemma Scope writes: anything else would change what the SAE computes.
     * affine_skip_connection (d_in, d_out) is Gemma Scope 2's skip term, y += x A (its name
     * and orientation in Google's published JumpReLUSAE); a W_skip has no documented one */
    int affine = 0;
    if ((rc = gs_members(&g, &affine, err))) goto out;
    int     nd = 0;
    int64_t sh[NPY_MAX_DIMS];
    if ((rc = gs_read(&g, "W_enc", &w, &nd, sh, err))) goto out;
    if (nd != 2 || sh[0] < 1 || sh[0] > (1L << 20) || sh[1] < 1 || sh[1] > (1L << 26)) {
        rc = ev_fail(err, EV_EFAIL, "%s: W_enc must be a (d_in, d_sae) matrix", npz_path);
        goto out;
    }
    struct sae_config c = sae_default_config((int)sh[0], (int)sh[1]);
    c.arch = SAE_ARCH_JUMPRELU;
    c.apply_b_dec_to_input = 0;
    c.format = gs2 ? SAE_FORMAT_GEMMASCOPE2 : SAE_FORMAT_GEMMASCOPE;
    c.tl_processed = 0;
    {
        /* d_out from W_dec's second dimension (its own check follows) */
        float  *wd = NULL;
        int     nd2 = 0;
        int64_t sh2[NPY_MAX_DIMS];
        if ((rc = gs_read(&g, "W_dec", &wd, &nd2, sh2, err))) goto out;
        free(wd);
        if (nd2 != 2 || sh2[0] != c.d_sae || sh2[1] < 1 || sh2[1] > (1L << 20)) {
            rc = ev_fail(err, EV_EFAIL, "%s: W_dec must be a (d_sae=%d, d_out) matrix", npz_path,
                         c.d_sae);
            goto out;
        }
        c.d_out = (int)sh2[1];
    }
    if (path_exists(cfg_path)) {
        struct sae_config pc;
        if ((rc = file_read_all(cfg_path, &text, &len, err))) goto out;
        if ((rc = cfg_parse_object(text, len, cfg_path, &root, err))) goto out;
        const cJSON *it;
        rc = EV_EFAIL;
        memset(&pc, 0, sizeof pc);
        if (!(it = cfg_item(root, "hook_name"))) {
            ev_fail(err, EV_EFAIL, "%s: missing hook_name", cfg_path);
            goto out;
        }
        if (cfg_copy_str(it, cfg_path, "hook_name", c.hook_name, sizeof c.hook_name, err))
            goto out;
        if ((it = cfg_item(root, "hook_name_out"))) {
            if (cfg_copy_str(it, cfg_path, "hook_name_out", c.hook_name_out,
                             sizeof c.hook_name_out, err))
                goto out;
            c.transcoder = c.hook_name_out[0] != '\0';
        }
        if ((it = cfg_item(root, "model_name")) &&
            cfg_copy_str(it, cfg_path, "model_name", c.model_name, sizeof c.model_name, err))
            goto out;
        rc = EV_OK;
    } else if ((rc = gs2 ? gemmascope2_hooks_from_path(dir, &c, err)
                         : gemmascope_hooks_from_path(dir, &c, err))) {
        goto out;
    }
    if (!c.transcoder && c.d_out != c.d_in) {
        rc = ev_fail(err, EV_EFAIL, "%s: W_dec writes %d values but W_enc reads %d: a transcoder "
                                    "needs a cfg.json naming hook_name_out", npz_path, c.d_out,
                     c.d_in);
        goto out;
    }
    if (affine && !c.transcoder) {
        rc = ev_fail(err, EV_EFAIL, "%s: affine_skip_connection in an SAE: a skip term needs a "
                                    "transcoder (a cfg.json naming hook_name_out, or a "
                                    "gemma-scope-*-transcoders path)", npz_path);
        goto out;
    }
    c.skip = affine;
    const int64_t D = c.d_in, S = c.d_sae, O = c.d_out;
    const int64_t sh_dec[2] = {S, O}, sh_s[1] = {S}, sh_o[1] = {O}, sh_a[2] = {D, O};
    s = sae_new(&c);
    memcpy(s->W_enc, w, (size_t)(D * S) * sizeof(float));
    if ((rc = npz_tensor(&g, npz_path, "b_enc", 1, sh_s, s->b_enc, err))) goto out;
    if ((rc = npz_tensor(&g, npz_path, "W_dec", 2, sh_dec, s->W_dec, err))) goto out;
    if ((rc = npz_tensor(&g, npz_path, "b_dec", 1, sh_o, s->b_dec, err))) goto out;
    if ((rc = npz_tensor(&g, npz_path, "threshold", 1, sh_s, s->threshold, err))) goto out;
    if (affine) {
        /* y += x A with A (D, O); the SAE's W_skip is (O, D) for y += x W_skip^T */
        float *a = xmalloc((size_t)(D * O) * sizeof(float));
        if ((rc = npz_tensor(&g, npz_path, "affine_skip_connection", 2, sh_a, a, err))) {
            free(a);
            goto out;
        }
        for (int64_t i = 0; i < D; i++)
            for (int64_t o = 0; o < O; o++) s->W_skip[(size_t)(o * D + i)] = a[(size_t)(i * O + o)];
        free(a);
    }
    rc = load_done(&s, &text, out);
out:
    sae_free(s);
    npz_close(z);
    st_close(stf);
    json_free(root);
    free(w);
    free(text);
    free(cfg_path);
    free(npz_path);
    return rc;
}

/* Which format the folder holds, by its weights file: SAE_FORMAT_* or -1. */
static int detect_format(const char *dir) {
    static const char *const files[] = {"sae_weights.safetensors", "sae.safetensors",
                                        "params.npz", "params.safetensors"};
    for (int i = 0; i < 4; i++) {
        char *p = path_join(dir, files[i]);
        int   there = path_exists(p);
        free(p);
        if (there) return i;
    }
    return -1;
}

static const char *format_weights_file(int fmt) {
    return fmt == SAE_FORMAT_SPARSIFY     ? "sae.safetensors"
           : fmt == SAE_FORMAT_GEMMASCOPE ? "params.npz"
           : fmt == SAE_FORMAT_GEMMASCOPE2 ? "params.safetensors"
                                          : "sae_weights.safetensors";
}

int sae_load(const char *dir, struct sae **out, struct ev_err *err) {
    *out = NULL;
    if (!path_is_dir(dir))
        return ev_fail(err, EV_EFAIL, "%s: not an SAE folder (expected cfg.json and "
                                      "sae_weights.safetensors inside)", dir);
    int fmt = detect_format(dir);
    if (fmt == SAE_FORMAT_SPARSIFY) return load_sparsify(dir, out, err);
    if (fmt == SAE_FORMAT_GEMMASCOPE || fmt == SAE_FORMAT_GEMMASCOPE2)
        return load_gemmascope(dir, fmt, out, err);
    if (fmt == SAE_FORMAT_SAELENS) return load_saelens(dir, out, err);
    /* a sparsify checkpoint holds one folder per hookpoint: name them */
    struct sbuf sb = {0};
    int         n = 0;
    DIR        *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *sub = path_join(dir, e->d_name);
        if (path_is_dir(sub) && detect_format(sub) >= 0) {
            if (n < 4) sbuf_addf(&sb, "%s%s", n ? ", " : "", e->d_name);
            n++;
        }
        free(sub);
    }
    if (d) closedir(d);
    int rc;
    if (n > 0)
        rc = ev_fail(err, EV_EFAIL, "%s: a folder of %d dictionaries, one per hook; pass one of "
                                    "them (%s%s)", dir, n, sb.buf, n > 4 ? ", ..." : "");
    else
        rc = ev_fail(err, EV_EFAIL, "%s: no SAE weights (expected sae_weights.safetensors "
                                    "(SAELens), sae.safetensors (sparsify), params.npz "
                                    "(Gemma Scope) or params.safetensors (Gemma Scope 2))", dir);
    sbuf_release(&sb);
    return rc;
}

int sae_hooks(const struct model *m, const struct sae *s, const char *what,
              struct model_hook *in, struct model_hook *out, struct ev_err *err) {
    const struct sae_config *c = &s->cfg;
    int rc;
    if (!c->hook_name[0])
        return ev_fail(err, EV_EFAIL, "%s: cfg.json names no hook (hook_name); expected e.g. "
                                      "blocks.2.hook_resid_post", what);
    if (c->hook_sparsify) {
        if ((rc = model_hook_parse_sparsify(m, c->hook_name, c->transcoder, in, err))) return rc;
        if (c->transcoder) rc = model_hook_parse_sparsify(m, c->hook_name_out, 0, out, err);
        else *out = *in;
        if (rc) return rc;
    } else {
        if ((rc = model_hook_parse(m, c->hook_name, in, err))) return rc;
        if (c->transcoder) {
            if ((rc = model_hook_parse(m, c->hook_name_out, out, err))) return rc;
        } else {
            *out = *in;
        }
    }
    char hn[128];
    model_hook_name(*in, hn, sizeof hn);
    if (c->d_in != model_hook_width(m, *in))
        return ev_fail(err, EV_EFAIL, "%s: d_in %d differs from the width %d of %s at %s", what,
                       c->d_in, model_hook_width(m, *in), model_path(m), hn);
    model_hook_name(*out, hn, sizeof hn);
    if (c->d_out != model_hook_width(m, *out))
        return ev_fail(err, EV_EFAIL, "%s: d_out %d differs from the width %d of %s at %s", what,
                       c->d_out, model_hook_width(m, *out), model_path(m), hn);
    if (c->transcoder) {
        /* the output must come after the input in the forward pass (8 * layer + kind) */
        if (8 * out->layer + (int)out->kind <= 8 * in->layer + (int)in->kind)
            return ev_fail(err, EV_EFAIL, "%s: transcoder writes %s, which does not come after "
                                          "the hook it reads (%s)", what, c->hook_name_out,
                           c->hook_name);
    }
    return EV_OK;
}

// ---------------------------------------------------------------- save


/* The SAELens cfg.json of s (NULL, with err set, when extra_json does not parse). */
static cJSON *build_cfg_json(const struct sae *s, double fold, const char *extra_json,
                             struct ev_err *err) {
    const struct sae_config *c = &s->cfg;
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "d_in", c->d_in);
    cJSON_AddNumberToObject(root, "d_sae", c->d_sae);
    /* a transcoder of one width and no skip term (the random-sae control of one): SAELens'
     * "transcoder" / "jumprelu_transcoder" with d_out and hook_name_out */
    if (c->transcoder) {
        char arch[48];
        snprintf(arch, sizeof arch, "%s", c->arch == SAE_ARCH_JUMPRELU ? "jumprelu_transcoder"
                                                                       : "transcoder");
        cJSON_AddStringToObject(root, "architecture", arch);
        cJSON_AddNumberToObject(root, "d_out", c->d_out);
        cJSON_AddStringToObject(root, "hook_name_out", c->hook_name_out);
        cJSON_AddStringToObject(meta, "hook_name_out", c->hook_name_out);
    } else {
        cJSON_AddStringToObject(root, "architecture", sae_arch_name(c->arch));
    }
    if (c->arch == SAE_ARCH_TOPK) cJSON_AddNumberToObject(root, "k", c->k);
    cJSON_AddStringToObject(root, "dtype", "float32");
    cJSON_AddBoolToObject(root, "apply_b_dec_to_input", c->apply_b_dec_to_input);
    cJSON_AddStringToObject(root, "normalize_activations", "none");
    /* flat copies for SAELens < 6, nested ones for 6.0+ */
    const char *hook = c->hook_name[0] ? c->hook_name : "";
    cJSON_AddStringToObject(root, "hook_name", hook);
    cJSON_AddNumberToObject(root, "hook_layer", c->hook_layer);
    cJSON_AddStringToObject(root, "model_name", c->model_name);
    cJSON_AddNumberToObject(root, "evalrun_norm_factor", fold * c->folded_norm_factor);
    {
        /* trained on evalrun's unprocessed residual stream: tell TransformerLens users */
        cJSON *kw = cJSON_CreateObject();
        cJSON_AddBoolToObject(kw, "center_writing_weights", 0);
        cJSON_AddBoolToObject(kw, "fold_ln", 0);
        cJSON_AddItemToObject(root, "model_from_pretrained_kwargs", kw);
    }
    cJSON_AddStringToObject(meta, "hook_name", hook);
    cJSON_AddNumberToObject(meta, "hook_layer", c->hook_layer);
    cJSON_AddStringToObject(meta, "model_name", c->model_name);
    cJSON_AddStringToObject(meta, "sae_lens_training_version", "evalrun");
    if (extra_json) {
        cJSON *extra = NULL;
        if (json_parse(extra_json, strlen(extra_json), "training metadata", &extra, err)) {
            json_free(meta);
            json_free(root);
            return NULL;
        }
        cJSON *e = extra->child;
        while (e) {
            cJSON *next = e->next;
            cJSON_AddItemToObject(meta, e->string, cJSON_DetachItemViaPointer(extra, e));
            e = next;
        }
        json_free(extra);
    }
    cJSON_AddItemToObject(root, "metadata", meta);
    return root;
}

int sae_save(const struct sae *s, const char *dir, double fold, const char *extra_json,
             struct ev_err *err) {
    EV_ASSERT(fold > 0);
    const struct sae_config *c = &s->cfg;
    const size_t D = (size_t)c->d_in, S = (size_t)c->d_sae;
    if (c->d_out != c->d_in || c->skip || (c->transcoder && c->arch != SAE_ARCH_STANDARD &&
                                            c->arch != SAE_ARCH_JUMPRELU))
        return ev_fail(err, EV_EFAIL, "%s: saving a transcoder is supported only without a skip "
                                      "term, of one width (d_out = d_in) and of the standard or "
                                      "JumpReLU architecture", dir);
    char  *tmp = xasprintf("%s.tmp.%ld", dir, (long)getpid());
    cJSON *cfg = NULL;
    char  *cfg_path = NULL, *w_path = NULL;
    float *W_enc = NULL, *W_dec = NULL, *b_dec = NULL;
    struct st_writer *w = NULL;
    int rc;

    if (sae_count_nonfinite(s->arena, 2 * D * S + D + S)) {
        rc = ev_fail(err, EV_EFAIL, "%s: refusing to save an SAE with NaN/Inf weights", dir);
        goto out;
    }
    if (!(cfg = build_cfg_json(s, fold, extra_json, err))) {
        rc = EV_EFAIL;
        goto out;
    }
    remove_flat_dir(tmp);
    if ((rc = mkdir_p(tmp, err))) goto out;

    W_enc = xmalloc(D * S * sizeof(float));
    W_dec = xmalloc(D * S * sizeof(float));
    b_dec = xmalloc(D * sizeof(float));
    const float inv = (float)(1.0 / fold), fs = (float)fold;
    for (size_t i = 0; i < D * S; i++) {
        W_enc[i] = s->W_enc[i] * fs;
        W_dec[i] = s->W_dec[i] * inv;
    }
    for (size_t i = 0; i < D; i++) b_dec[i] = s->b_dec[i] * inv;

    const int64_t sh_enc[2] = {(int64_t)D, (int64_t)S}, sh_dec[2] = {(int64_t)S, (int64_t)D};
    const int64_t sh_s[1] = {(int64_t)S}, sh_d[1] = {(int64_t)D};
    w = st_writer_new();
    st_writer_add(w, "W_enc", ST_F32, 2, sh_enc, W_enc);
    st_writer_add(w, "b_enc", ST_F32, 1, sh_s, s->b_enc);
    st_writer_add(w, "W_dec", ST_F32, 2, sh_dec, W_dec);
    st_writer_add(w, "b_dec", ST_F32, 1, sh_d, b_dec);
    if (c->arch == SAE_ARCH_JUMPRELU) st_writer_add(w, "threshold", ST_F32, 1, sh_s, s->threshold);
    if (s->scaling) st_writer_add(w, "scaling_factor", ST_F32, 1, sh_s, s->scaling);
    st_writer_metadata(w, "format", "pt");
    w_path = path_join(tmp, "sae_weights.safetensors");
    if ((rc = st_writer_write(w, w_path, err))) goto out;
    cfg_path = path_join(tmp, "cfg.json");
    if ((rc = json_write_file(cfg_path, cfg, JSON_WRITE_PRETTY, err))) goto out;

    if (path_exists(dir)) {
        /* swap atomically, then remove the old folder now sitting at tmp */
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) != 0) {
            rc = ev_fail(err, EV_EFAIL, "%s: cannot replace the SAE folder: %s", dir,
                         strerror(errno));
            goto out;
        }
    } else if (rename(tmp, dir) != 0) {
        rc = ev_fail(err, EV_EFAIL, "%s: cannot create the SAE folder: %s", dir, strerror(errno));
        goto out;
    }
    rc = EV_OK;
out:
    remove_flat_dir(tmp);
    st_writer_free(w);
    free(W_enc);
    free(W_dec);
    free(b_dec);
    json_free(cfg);
    free(cfg_path);
    free(w_path);
    free(tmp);
    return rc;
}

int sae_hash(const char *dir, char hex[65], struct ev_err *err) {
    int   fmt = detect_format(dir);
    char *cfg_path = path_join(dir, "cfg.json");
    char *w_path = path_join(dir, format_weights_file(fmt < 0 ? SAE_FORMAT_SAELENS : fmt));
    char  h1[65], h2[65];
    int   rc = sha256_file(w_path, h2, err);
    if (!rc) {
        /* Gemma Scope ships no cfg.json: the weights' hash stands in for it */
        if ((fmt == SAE_FORMAT_GEMMASCOPE || fmt == SAE_FORMAT_GEMMASCOPE2) &&
            !path_exists(cfg_path))
            memcpy(h1, h2, sizeof h1);
        else rc = sha256_file(cfg_path, h1, err);
    }
    if (!rc) {
        char both[130];
        memcpy(both, h1, 64);
        memcpy(both + 64, h2, 64);
        sha256_hex(both, 128, hex);
    }
    free(cfg_path);
    free(w_path);
    return rc;
}

// ---------------------------------------------------------------- kernels

void sae_center_rows(float *x, int n, int d, float *mean) {
#pragma omp parallel for schedule(static) if (n >= 16)
    for (int t = 0; t < n; t++) {
        float *r = x + (size_t)t * d;
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)r[j];
        float m = (float)(s / d);
        for (int j = 0; j < d; j++) r[j] -= m;
        if (mean) mean[t] = m;
    }
}

int sae_needs_centering(const struct sae *s, const char *model_type) {
    /* only the residual stream is centred by TransformerLens' processing */
    const char *h = s->cfg.hook_name;
    return s->cfg.tl_processed && !s->cfg.transcoder && (!h[0] || strstr(h, "hook_resid")) &&
           model_type && strcmp(model_type, "gpt2") == 0;
}

/* Selects, in row (d floats), the k largest values; writes keep[j]=1 for them. Ties are
 * broken by lower index. O(d log k) with a min-heap of indices. */
static void topk_row(float *row, int d, int k, int *heap) {
    int n = 0;
    /* heap ordered by (value asc, index desc): the root is the weakest kept element */
#define WEAKER(a, b) (row[a] < row[b] || (row[a] == row[b] && (a) > (b)))
    for (int j = 0; j < d; j++) {
        if (n < k) {
            int i = n++;
            heap[i] = j;
            while (i > 0) {
                int p = (i - 1) / 2;
                if (!WEAKER(heap[i], heap[p])) break;
                int t = heap[i]; heap[i] = heap[p]; heap[p] = t;
                i = p;
            }
        } else if (WEAKER(heap[0], j)) {
            heap[0] = j;
            int i = 0;
            for (;;) {
                int l = 2 * i + 1, r = l + 1, m = i;
                if (l < n && WEAKER(heap[l], heap[m])) m = l;
                if (r < n && WEAKER(heap[r], heap[m])) m = r;
                if (m == i) break;
                int t = heap[i]; heap[i] = heap[m]; heap[m] = t;
                i = m;
            }
        }
    }
#undef WEAKER
    /* zero everything except heap members: sort heap indices then sweep */
    for (int i = 1; i < n; i++) { /* insertion sort: k is small */
        int v = heap[i], m = i - 1;
        while (m >= 0 && heap[m] > v) {
            heap[m + 1] = heap[m];
            m--;
        }
        heap[m + 1] = v;
    }
    int h = 0;
    for (int j = 0; j < d; j++) {
        if (h < n && heap[h] == j) {
            if (row[j] < 0) row[j] = 0;
            h++;
        } else {
            row[j] = 0;
        }
    }
}

void sae_topk_rows(float *pre, int n, int d, int k) {
    if (k > d) k = d;
#pragma omp parallel if (n >= 16)
    {
        int *heap = xmalloc((size_t)(k > 0 ? k : 1) * sizeof(int));
#pragma omp for schedule(static)
        for (int t = 0; t < n; t++) topk_row(pre + (size_t)t * d, d, k, heap);
        free(heap);
    }
}

void sae_encode(const struct sae *s, float *f, const float *x, int n) {
    const int D = s->cfg.d_in, S = s->cfg.d_sae;
    if (n <= 0) return;
    const float nf = (float)s->cfg.norm_factor;
    const float *src = x;
    float       *xc = NULL; /* (n, D): x * nf - b_dec, only when needed */
    if (s->cfg.apply_b_dec_to_input || nf != 1.0f) {
        xc = xmalloc((size_t)n * D * sizeof(float));
#pragma omp parallel for schedule(static) if (n >= 16)
        for (int t = 0; t < n; t++) {
            const float *x_t = x + (size_t)t * D;
            float       *c_t = xc + (size_t)t * D;
            for (int j = 0; j < D; j++)
                c_t[j] = x_t[j] * nf - (s->cfg.apply_b_dec_to_input ? s->b_dec[j] : 0.0f);
        }
        src = xc;
    }
    /* beta = 0: the product only writes f; bias and activation follow in one pass */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, S, D, 1.0f, src, D, s->W_enc, S,
                0.0f, f, S);
    free(xc);
    const float *b = s->b_enc, *th = s->threshold;
    if (s->cfg.arch == SAE_ARCH_TOPK) {
#pragma omp parallel for schedule(static) if (n >= 16)
        for (int t = 0; t < n; t++) {
            float *f_t = f + (size_t)t * S;
            for (int i = 0; i < S; i++) f_t[i] += b[i];
        }
        sae_topk_rows(f, n, S, s->cfg.k);
        return;
    }
#pragma omp parallel for schedule(static) if (n >= 16)
    for (int t = 0; t < n; t++) {
        float *f_t = f + (size_t)t * S;
        if (th) {
            for (int i = 0; i < S; i++) {
                float v = f_t[i] + b[i];
                f_t[i] = v > th[i] ? v : 0.0f;
            }
        } else {
            for (int i = 0; i < S; i++) {
                float v = f_t[i] + b[i];
                f_t[i] = v > 0.0f ? v : 0.0f;
            }
        }
    }
}

void sae_encode_range(const struct sae *s, float *f, const float *x, int n, int i0, int ni) {
    const int D = s->cfg.d_in, S = s->cfg.d_sae;
    EV_ASSERT(i0 >= 0 && ni >= 1 && i0 + ni <= S);
    if (n <= 0) return;
    if (s->cfg.arch == SAE_ARCH_TOPK || (i0 == 0 && ni == S)) {
        /* TopK needs every latent; the whole range is sae_encode itself */
        float *full = ni == S ? f : xmalloc((size_t)n * S * sizeof(float));
        sae_encode(s, full, x, n);
        if (full != f) {
            for (int t = 0; t < n; t++)
                memcpy(f + (size_t)t * ni, full + (size_t)t * S + i0, (size_t)ni * sizeof(float));
            free(full);
        }
        return;
    }
    const float nf = (float)s->cfg.norm_factor;
    float      *xc = xmalloc((size_t)n * D * sizeof(float));
    for (int t = 0; t < n; t++)
        for (int j = 0; j < D; j++)
            xc[(size_t)t * D + j] = x[(size_t)t * D + j] * nf -
                                    (s->cfg.apply_b_dec_to_input ? s->b_dec[j] : 0.0f);
    /* the columns i0 .. i0+ni-1 of W_enc (d_in, d_sae): a sub-matrix with leading dimension S */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, ni, D, 1.0f, xc, D, s->W_enc + i0,
                S, 0.0f, f, ni);
    free(xc);
    const float *b = s->b_enc + i0, *th = s->threshold ? s->threshold + i0 : NULL;
#pragma omp parallel for schedule(static) if (n >= 16)
    for (int t = 0; t < n; t++) {
        float *f_t = f + (size_t)t * ni;
        for (int i = 0; i < ni; i++) {
            float v = f_t[i] + b[i];
            f_t[i] = v > (th ? th[i] : 0.0f) ? v : 0.0f;
        }
    }
}

void sae_encode_ref(const struct sae *s, float *f, const float *x, int n) {
    const int D = s->cfg.d_in, S = s->cfg.d_sae;
    const float nf = (float)s->cfg.norm_factor;
    for (int t = 0; t < n; t++) {
        const float *x_t = x + (size_t)t * D;
        float       *f_t = f + (size_t)t * S;
        for (int i = 0; i < S; i++) {
            double acc = s->b_enc[i];
            for (int j = 0; j < D; j++) {
                float xc = x_t[j] * nf - (s->cfg.apply_b_dec_to_input ? s->b_dec[j] : 0.0f);
                acc += (double)xc * (double)s->W_enc[(size_t)j * S + i];
            }
            f_t[i] = (float)acc;
        }
    }
    if (s->cfg.arch == SAE_ARCH_TOPK) {
        sae_topk_rows(f, n, S, s->cfg.k);
        return;
    }
    for (size_t i = 0; i < (size_t)n * S; i++) {
        float th = s->threshold ? s->threshold[i % S] : 0.0f;
        f[i] = f[i] > th ? f[i] : 0.0f;
    }
}

void sae_decode(const struct sae *s, float *x_hat, const float *f, int n) {
    const int D = s->cfg.d_out, S = s->cfg.d_sae;
    const float inv = (float)(1.0 / s->cfg.norm_factor);
#pragma omp parallel for schedule(static) if (n >= 16)
    for (int t = 0; t < n; t++) {
        const float *f_t = f + (size_t)t * S;
        float       *o = x_hat + (size_t)t * D;
        memcpy(o, s->b_dec, (size_t)D * sizeof(float));
        for (int i = 0; i < S; i++) {
            float a = f_t[i];
            if (a == 0.0f) continue;
            if (s->scaling) a *= s->scaling[i];
            const float *w = s->W_dec + (size_t)i * D;
            for (int j = 0; j < D; j++) o[j] += a * w[j];
        }
        if (inv != 1.0f)
            for (int j = 0; j < D; j++) o[j] *= inv;
    }
}

void sae_decode_ref(const struct sae *s, float *x_hat, const float *f, int n) {
    const int D = s->cfg.d_out, S = s->cfg.d_sae;
    for (int t = 0; t < n; t++) {
        for (int j = 0; j < D; j++) {
            double acc = s->b_dec[j];
            for (int i = 0; i < S; i++) {
                double a = f[(size_t)t * S + i] * (s->scaling ? s->scaling[i] : 1.0f);
                acc += a * (double)s->W_dec[(size_t)i * D + j];
            }
            x_hat[(size_t)t * D + j] = (float)(acc / s->cfg.norm_factor);
        }
    }
}

void sae_reconstruct(const struct sae *s, float *y_hat, const float *f, const float *x, int n) {
    sae_decode(s, y_hat, f, n);
    if (!s->W_skip || n <= 0) return;
    const int D = s->cfg.d_in, O = s->cfg.d_out;
    /* y_hat (n, O) += x (n, D) W_skip^T, W_skip (O, D) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, O, D, 1.0f, x, D, s->W_skip, D, 1.0f,
                y_hat, O);
}
