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
#include <unistd.h>

#include "base/hash.h"
#include "base/json.h"
#include "model/safetensors.h"

const char *sae_arch_name(enum sae_arch a) {
    switch (a) {
    case SAE_ARCH_STANDARD: return "standard";
    case SAE_ARCH_JUMPRELU: return "jumprelu";
    case SAE_ARCH_TOPK:     return "topk";
    }
    return "?";
}

struct sae_config sae_default_config(int d_in, int d_sae) {
    struct sae_config c;
    memset(&c, 0, sizeof c);
    c.d_in = d_in;
    c.d_sae = d_sae;
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
    EV_ASSERT(cfg && cfg->d_in > 0 && cfg->d_sae > 0);
    struct sae *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    size_t d_in = (size_t)cfg->d_in, d_sae = (size_t)cfg->d_sae;
    size_t n = 2 * d_in * d_sae + d_sae + d_in + (cfg->arch == SAE_ARCH_JUMPRELU ? d_sae : 0);
    s->arena = xcalloc(n, sizeof(float));
    float *p = s->arena;
    s->W_enc = p; p += d_in * d_sae;
    s->b_enc = p; p += d_sae;
    s->W_dec = p; p += d_sae * d_in;
    s->b_dec = p; p += d_in;
    if (cfg->arch == SAE_ARCH_JUMPRELU) s->threshold = p;
    return s;
}

void sae_free(struct sae *s) {
    if (!s) return;
    free(s->arena);
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
    if (!(it = cfg_item(root, "d_in"))) {
        ev_fail(err, EV_EFAIL, "%s: missing d_in", what);
        goto out;
    }
    if (cfg_int(it, what, "d_in", &v, err)) goto out;
    if (v < 1 || v > (1L << 20)) {
        ev_fail(err, EV_EFAIL, "%s: d_in %ld out of range (1..1048576)", what, v);
        goto out;
    }
    cfg->d_in = (int)v;
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
    if (strcmp(arch, "standard") == 0) cfg->arch = SAE_ARCH_STANDARD;
    else if (strcmp(arch, "jumprelu") == 0) cfg->arch = SAE_ARCH_JUMPRELU;
    else if (strcmp(arch, "topk") == 0) cfg->arch = SAE_ARCH_TOPK;
    else {
        ev_fail(err, EV_EFAIL,
                "%s: architecture '%s' is not supported (expected standard, jumprelu or topk)",
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

int sae_load(const char *dir, struct sae **out, struct ev_err *err) {
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
    const int64_t sh_enc[2] = {D, S}, sh_dec[2] = {S, D}, sh_s[1] = {S}, sh_d[1] = {D};
    s = sae_new(&cfg);
    if ((rc = load_tensor(f, w_path, "W_enc", 2, sh_enc, s->W_enc, err))) goto out;
    if ((rc = load_tensor(f, w_path, "b_enc", 1, sh_s, s->b_enc, err))) goto out;
    if ((rc = load_tensor(f, w_path, "W_dec", 2, sh_dec, s->W_dec, err))) goto out;
    if ((rc = load_tensor(f, w_path, "b_dec", 1, sh_d, s->b_dec, err))) goto out;
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
    s->cfg_json = text;
    text = NULL;
    *out = s;
    s = NULL;
    rc = EV_OK;
out:
    sae_free(s);
    st_close(f);
    free(text);
    free(cfg_path);
    free(w_path);
    return rc;
}

// ---------------------------------------------------------------- save


static char *build_cfg_json(const struct sae *s, double fold, const char *extra_json,
                            struct ev_err *err) {
    const struct sae_config *c = &s->cfg;
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_CreateObject();
    char  *text = NULL;
    cJSON_AddNumberToObject(root, "d_in", c->d_in);
    cJSON_AddNumberToObject(root, "d_sae", c->d_sae);
    cJSON_AddStringToObject(root, "architecture", sae_arch_name(c->arch));
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
        if (json_parse(extra_json, strlen(extra_json), "training metadata", &extra, err))
            goto out;
        cJSON *e = extra->child;
        while (e) {
            cJSON *next = e->next;
            cJSON_AddItemToObject(meta, e->string, cJSON_DetachItemViaPointer(extra, e));
            e = next;
        }
        json_free(extra);
    }
    cJSON_AddItemToObject(root, "metadata", meta);
    meta = NULL;
    text = json_print_pretty(root);
out:
    json_free(meta);
    json_free(root);
    return text;
}

int sae_save(const struct sae *s, const char *dir, double fold, const char *extra_json,
             struct ev_err *err) {
    EV_ASSERT(fold > 0);
    const struct sae_config *c = &s->cfg;
    const size_t D = (size_t)c->d_in, S = (size_t)c->d_sae;
    char  *tmp = xasprintf("%s.tmp.%ld", dir, (long)getpid());
    char  *cfg_text = NULL, *cfg_path = NULL, *w_path = NULL;
    float *W_enc = NULL, *W_dec = NULL, *b_dec = NULL;
    struct st_writer *w = NULL;
    int rc;

    if (sae_count_nonfinite(s->arena, 2 * D * S + D + S)) {
        rc = ev_fail(err, EV_EFAIL, "%s: refusing to save an SAE with NaN/Inf weights", dir);
        goto out;
    }
    if (!(cfg_text = build_cfg_json(s, fold, extra_json, err))) {
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
    if ((rc = file_write_atomic(cfg_path, cfg_text, strlen(cfg_text), err))) goto out;

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
    free(cfg_text);
    free(cfg_path);
    free(w_path);
    free(tmp);
    return rc;
}

int sae_hash(const char *dir, char hex[65], struct ev_err *err) {
    char *cfg_path = path_join(dir, "cfg.json");
    char *w_path = path_join(dir, "sae_weights.safetensors");
    char  h1[65], h2[65];
    int   rc = sha256_file(cfg_path, h1, err);
    if (!rc) rc = sha256_file(w_path, h2, err);
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
        for (int j = 0; j < d; j++) s += r[j];
        float m = (float)(s / d);
        for (int j = 0; j < d; j++) r[j] -= m;
        if (mean) mean[t] = m;
    }
}

int sae_needs_centering(const struct sae *s, const char *model_type) {
    return s->cfg.tl_processed && model_type && strcmp(model_type, "gpt2") == 0;
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
                acc += (double)xc * s->W_enc[(size_t)j * S + i];
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
    const int D = s->cfg.d_in, S = s->cfg.d_sae;
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
    const int D = s->cfg.d_in, S = s->cfg.d_sae;
    for (int t = 0; t < n; t++) {
        for (int j = 0; j < D; j++) {
            double acc = s->b_dec[j];
            for (int i = 0; i < S; i++) {
                double a = f[(size_t)t * S + i] * (s->scaling ? s->scaling[i] : 1.0f);
                acc += a * s->W_dec[(size_t)i * D + j];
            }
            x_hat[(size_t)t * D + j] = (float)(acc / s->cfg.norm_factor);
        }
    }
}
