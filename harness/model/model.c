/*
 * model — loading checkpoints (llama2.c .bin, Hugging Face folders), the forward pass with
 * hook edits and a KV cache, the backward pass to a hook, cross-entropy, and generation.
 * See model.h for the contract; kern.c holds the numeric kernels.
 */
#include "model/model.h"

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/hash.h"
#include "base/json.h"
#include "model/kern.h"
#include "model/safetensors.h"
#include "model/sample.h"

struct model {
    struct model_config  cfg;
    struct model_weights w;
    float               *arena;
    size_t               n_arena; /* floats */
    struct tok          *tok;
    char                 hash[65];
    char                *path;
};

// ---------------------------------------------------------------------------- config, arena

static int config_check(const struct model_config *c, const char *what, struct ev_err *err) {
    if (c->dim < 1 || c->dim > 65536 || c->hidden_dim < 1 || c->hidden_dim > (1 << 20) ||
        c->n_layers < 1 || c->n_layers > 1024 || c->n_heads < 1 || c->n_heads > 1024 ||
        c->vocab_size < 1 || c->vocab_size > (1 << 22) || c->seq_len < 1 ||
        c->seq_len > (1 << 20))
        return ev_fail(err, EV_EFAIL,
                       "%s: implausible dimensions (dim %d, hidden %d, layers %d, heads %d, "
                       "vocab %d, seq_len %d)",
                       what, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->vocab_size,
                       c->seq_len);
    if (c->n_kv_heads < 1 || c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads != 0)
        return ev_fail(err, EV_EFAIL, "%s: n_kv_heads %d must divide n_heads %d", what,
                       c->n_kv_heads, c->n_heads);
    if (c->arch == MODEL_ARCH_GPT2 && c->n_heads * c->head_dim != c->dim)
        return ev_fail(err, EV_EFAIL, "%s: n_embd %d is not a multiple of n_head %d", what, c->dim,
                       c->n_heads);
    if (c->head_dim < 2 || c->head_dim > 4096 || (c->rope != MODEL_ROPE_NONE && c->head_dim % 2))
        return ev_fail(err, EV_EFAIL, "%s: head_dim %d must be even and in [2, 4096]", what,
                       c->head_dim);
    if (!(c->norm_eps > 0.0f && c->norm_eps < 1.0f))
        return ev_fail(err, EV_EFAIL, "%s: norm eps %g outside (0, 1)", what, (double)c->norm_eps);
    if (c->rope != MODEL_ROPE_NONE && !(c->rope_theta > 1.0f))
        return ev_fail(err, EV_EFAIL, "%s: rope_theta %g must be > 1", what,
                       (double)c->rope_theta);
    return EV_OK;
}

/* Per-tensor float counts in struct model_weights order; 0 for unused pointers. */
enum { W_TOK, W_POS, W_LN1W, W_LN1B, W_WQ, W_WK, W_WV, W_BQ, W_BK, W_BV, W_WO, W_BO, W_LN2W,
       W_LN2B, W_W1, W_B1, W_W2, W_B2, W_W3, W_LNFW, W_LNFB, W_CLS, W_COUNT };

static void weight_sizes(const struct model_config *c, size_t sz[W_COUNT]) {
    size_t C = c->dim, H = c->hidden_dim, L = c->n_layers, V = c->vocab_size;
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    int    ln = c->norm == MODEL_NORM_LAYER, swi = c->act == MODEL_ACT_SWIGLU;
    memset(sz, 0, sizeof(size_t) * W_COUNT);
    sz[W_TOK] = V * C;
    sz[W_POS] = c->rope == MODEL_ROPE_NONE ? (size_t)c->seq_len * C : 0;
    sz[W_LN1W] = L * C;
    sz[W_LN1B] = ln ? L * C : 0;
    sz[W_WQ] = L * qd * C;
    sz[W_WK] = L * kvd * C;
    sz[W_WV] = L * kvd * C;
    sz[W_BQ] = c->qkv_bias ? L * qd : 0;
    sz[W_BK] = c->qkv_bias ? L * kvd : 0;
    sz[W_BV] = c->qkv_bias ? L * kvd : 0;
    sz[W_WO] = L * C * qd;
    sz[W_BO] = c->out_bias ? L * C : 0;
    sz[W_LN2W] = L * C;
    sz[W_LN2B] = ln ? L * C : 0;
    sz[W_W1] = L * H * C;
    sz[W_B1] = c->out_bias ? L * H : 0;
    sz[W_W2] = L * C * H;
    sz[W_B2] = c->out_bias ? L * C : 0;
    sz[W_W3] = swi ? L * H * C : 0;
    sz[W_LNFW] = C;
    sz[W_LNFB] = ln ? C : 0;
    sz[W_CLS] = c->tied_embeddings ? 0 : V * C;
}

static float **weight_ptr(struct model_weights *w, int i) {
    float **p[W_COUNT] = {&w->tok_emb, &w->pos_emb, &w->ln1_w, &w->ln1_b, &w->wq,   &w->wk,
                          &w->wv,      &w->bq,      &w->bk,    &w->bv,    &w->wo,   &w->bo,
                          &w->ln2_w,   &w->ln2_b,   &w->w1,    &w->b1,    &w->w2,   &w->b2,
                          &w->w3,      &w->lnf_w,   &w->lnf_b, &w->wcls};
    return p[i];
}

static size_t weight_total(const struct model_config *c) {
    size_t sz[W_COUNT], total = 0;
    weight_sizes(c, sz);
    for (int i = 0; i < W_COUNT; i++) total += sz[i];
    return total;
}

/* Allocates the arena and points every weight into it (llm.c malloc_and_point_parameters). */
static struct model *model_alloc(const struct model_config *c) {
    struct model *m = xcalloc(1, sizeof *m);
    size_t        sz[W_COUNT], total = 0;
    m->cfg = *c;
    weight_sizes(c, sz);
    for (int i = 0; i < W_COUNT; i++) total += sz[i];
    m->arena = xmalloc(sizeof(float) * total);
    m->n_arena = total;
    float *p = m->arena;
    for (int i = 0; i < W_COUNT; i++) {
        *weight_ptr(&m->w, i) = sz[i] ? p : NULL;
        p += sz[i];
    }
    if (c->tied_embeddings) m->w.wcls = m->w.tok_emb;
    return m;
}

void model_free(struct model *m) {
    if (!m) return;
    free(m->arena);
    tok_free(m->tok);
    free(m->path);
    free(m);
}

const struct model_config *model_config(const struct model *m) { return &m->cfg; }
struct model_weights      *model_weights(struct model *m) { return &m->w; }
const struct tok          *model_tokenizer(const struct model *m) { return m->tok; }
const char                *model_hash(const struct model *m) { return m->hash; }
const char                *model_path(const struct model *m) { return m->path; }

static int check_finite(const struct model *m, const char *path, struct ev_err *err) {
    for (size_t i = 0; i < m->n_arena; i++)
        if (!isfinite(m->arena[i]))
            return ev_fail(err, EV_EFAIL,
                           "%s: non-finite weight at float %zu (corrupt checkpoint?)", path, i);
    return EV_OK;
}

int model_new_random(const struct model_config *cfg, uint64_t seed, struct model **out,
                     struct ev_err *err) {
    struct model_config c = *cfg;
    *out = NULL;
    if (c.head_dim == 0 && c.n_heads > 0) c.head_dim = c.dim / c.n_heads;
    if (c.n_kv_heads == 0) c.n_kv_heads = c.n_heads;
    if (c.norm_eps == 0.0f) c.norm_eps = 1e-5f;
    if (c.rope_theta == 0.0f) c.rope_theta = 10000.0f;
    if (config_check(&c, "random model config", err) != EV_OK) return EV_EUSAGE;
    if (!c.model_type[0]) snprintf(c.model_type, sizeof c.model_type, "random");
    struct model *m = model_alloc(&c);
    struct rng    r;
    size_t        sz[W_COUNT];
    rng_seed(&r, seed);
    weight_sizes(&c, sz);
    for (int i = 0; i < W_COUNT; i++) {
        float *p = *weight_ptr(&m->w, i);
        if (!sz[i]) continue;
        int is_norm_w = i == W_LN1W || i == W_LN2W || i == W_LNFW;
        for (size_t j = 0; j < sz[i]; j++)
            p[j] = is_norm_w ? 1.0f + 0.1f * rng_normal(&r) : 0.02f * rng_normal(&r);
    }
    snprintf(m->hash, sizeof m->hash, "random:%llu", (unsigned long long)seed);
    m->path = xstrdup("random");
    *out = m;
    return EV_OK;
}

// ---------------------------------------------------------------------------- llama2.c .bin

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return xstrdup(".");
    if (slash == path) return xstrdup("/");
    char *d = xmalloc((size_t)(slash - path) + 1);
    memcpy(d, path, (size_t)(slash - path));
    d[slash - path] = 0;
    return d;
}

/* The tokenizer and the model must agree on the vocabulary (issue 20): a smaller tokenizer
 * makes every id it lacks decode to nothing (generate printed only the prompt), a larger one
 * gives ids the model has no row for. A llama2.c tokenizer.bin must match exactly (run.c reads
 * vocab_size tokens). A Hugging Face model may pad its embedding past its tokenizer (Pythia
 * 50277 -> 50304, Qwen2.5 151665 -> 151936, phi-2 50295 -> 51200): accepted only as padding,
 * a model vocab that is a multiple of 64 and at most 2% more than the tokenizer's. */
static int vocab_check(int n_tok, int n_model, int llama2c, const char *what, const char *tok_path,
                       struct ev_err *err) {
    int padded = !llama2c && n_model > n_tok && n_model % 64 == 0 &&
                 (int64_t)(n_model - n_tok) * 50 <= n_model;
    if (n_tok == n_model || padded) return EV_OK;
    return ev_fail(err, EV_EFAIL,
                   "%s: tokenizer %s has %d tokens but the model's vocab is %d (%s)", what,
                   tok_path, n_tok, n_model,
                   llama2c ? "a tokenizer.bin must match exactly"
                           : "only padding the model's by at most 2% to a multiple of 64 is "
                             "accepted");
}

static int load_tokenizer_beside(struct model *m, const char *dir, const char *what,
                                 struct ev_err *err) {
    char  name[64];
    char *cand[3] = {NULL, NULL, NULL};
    int   rc = EV_EFAIL;
    snprintf(name, sizeof name, "tok%d.bin", m->cfg.vocab_size);
    cand[0] = path_join(dir, "tokenizer.json");
    cand[1] = path_join(dir, name);
    cand[2] = path_join(dir, "tokenizer.bin");
    int start = m->cfg.arch == MODEL_ARCH_GPT2 || strcmp(m->cfg.model_type, "llama2c") ? 0 : 1;
    for (int i = start; i < 3; i++) {
        if (!path_exists(cand[i])) continue;
        if ((rc = tok_load(cand[i], &m->tok, err)) != EV_OK) goto out;
        rc = vocab_check(tok_vocab_size(m->tok), m->cfg.vocab_size, i > 0, what, cand[i], err);
        goto out;
    }
    if (start == 1)
        rc = ev_fail(err, EV_EFAIL, "%s: no tokenizer beside it (looked for %s and %s)", what,
                     cand[1], cand[2]);
    else
        rc = ev_fail(err, EV_EFAIL, "%s: no tokenizer.json in the model folder", what);
out:
    for (int i = 0; i < 3; i++) free(cand[i]);
    return rc;
}

int model_config_from_llama2c(const void *data, size_t n, const char *what,
                              struct model_config *cfg, struct ev_err *err) {
    int32_t hdr[7];
    if (n < sizeof hdr)
        return ev_fail(err, EV_EFAIL, "%s: too short for a llama2.c header (28 bytes)", what);
    memcpy(hdr, data, sizeof hdr);
    struct model_config c = {0};
    c.arch = MODEL_ARCH_LLAMA;
    c.rope = MODEL_ROPE_INTERLEAVED;
    c.norm = MODEL_NORM_RMS;
    c.act = MODEL_ACT_SWIGLU;
    c.dim = hdr[0];
    c.hidden_dim = hdr[1];
    c.n_layers = hdr[2];
    c.n_heads = hdr[3];
    c.n_kv_heads = hdr[4];
    /* -INT32_MIN does not exist (found by tests/fuzz): such a vocabulary is refused below */
    c.vocab_size = hdr[5] == INT32_MIN ? -1 : hdr[5] < 0 ? -hdr[5] : hdr[5];
    c.tied_embeddings = hdr[5] > 0;
    c.seq_len = hdr[6];
    c.head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    snprintf(c.model_type, sizeof c.model_type, "llama2c");
    int rc = config_check(&c, what, err);
    if (rc != EV_OK) return rc;
    if (c.dim % c.n_heads)
        return ev_fail(err, EV_EFAIL, "%s: dim %d is not a multiple of n_heads %d", what, c.dim,
                       c.n_heads);
    *cfg = c;
    return EV_OK;
}

static int load_llama2c(const char *path, int flags, struct model **out, struct ev_err *err) {
    FILE         *f = NULL;
    struct model *m = NULL;
    char         *dir = NULL;
    int           rc = EV_EFAIL;
    int32_t       hdr[7];
    struct stat   st;

    if (!(f = fopen(path, "rb"))) {
        rc = ev_fail(err, EV_EFAIL, "cannot open model %s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fileno(f), &st) != 0 || fread(hdr, sizeof hdr, 1, f) != 1) {
        rc = ev_fail(err, EV_EFAIL, "%s: too short for a llama2.c header (28 bytes)", path);
        goto out;
    }
    if ((uint32_t)hdr[0] == 0x616b3432u) {
        rc = ev_fail(err, EV_EFAIL,
                     "%s: llama2.c version-1/2 export (magic ak42) is not supported; "
                     "hint: export with --version 0 (legacy)",
                     path);
        goto out;
    }
    struct model_config c = {0};
    if ((rc = model_config_from_llama2c(hdr, sizeof hdr, path, &c, err)) != EV_OK) goto out;
    /* file order: tok_emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
     * freq_cis_real, freq_cis_imag (skipped), wcls when not shared. The size is checked
     * before anything is allocated, so a lying header cannot ask for terabytes. */
    size_t sz[W_COUNT];
    weight_sizes(&c, sz);
    static const int order[] = {W_TOK, W_LN1W, W_WQ, W_WK, W_WV, W_WO, W_LN2W, W_W1, W_W2, W_W3,
                                W_LNFW};
    size_t           freq = (size_t)c.seq_len * c.head_dim; /* real + imag halves */
    size_t           need = sizeof hdr + sizeof(float) * (weight_total(&c) + freq);
    if ((size_t)st.st_size != need) {
        rc = ev_fail(err, EV_EFAIL,
                     "%s: %s (%lld bytes; a llama2.c checkpoint with this header has %zu)", path,
                     (size_t)st.st_size < need ? "truncated" : "has trailing bytes",
                     (long long)st.st_size, need);
        goto out;
    }
    m = model_alloc(&c);
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (fread(*weight_ptr(&m->w, order[i]), sizeof(float), sz[order[i]], f) != sz[order[i]]) {
            rc = ev_fail(err, EV_EFAIL, "%s: read error", path);
            goto out;
        }
    if (!c.tied_embeddings) {
        if (fseek(f, (long)(sizeof(float) * freq), SEEK_CUR) != 0 ||
            fread(m->w.wcls, sizeof(float), sz[W_CLS], f) != sz[W_CLS]) {
            rc = ev_fail(err, EV_EFAIL, "%s: read error", path);
            goto out;
        }
    }
    if ((rc = check_finite(m, path, err)) != EV_OK) goto out;
    if ((rc = sha256_file(path, m->hash, err)) != EV_OK) goto out;
    dir = dir_of(path);
    if (!(flags & MODEL_LOAD_NO_TOKENIZER) &&
        (rc = load_tokenizer_beside(m, dir, path, err)) != EV_OK)
        goto out;
    m->path = xstrdup(path);
    *out = m;
    m = NULL;
    rc = EV_OK;
out:
    if (f) fclose(f);
    free(dir);
    model_free(m);
    return rc;
}

// ---------------------------------------------------------------------------- Hugging Face

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

static int hf_open(const char *dir, struct hf_files *h, char hash[65], struct ev_err *err) {
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
        if ((rc = sha256_file(h->name[i], hex, err)) != EV_OK) {
            h->n = i + 1;
            goto out;
        }
        if (h->n == 1) memcpy(hash, hex, 65);
        sha256_update(&all, hex, 64);
    }
    if (h->n > 1) sha256_hex_final(&all, hash);
    rc = EV_OK;
out:
    free(single);
    free(index);
    json_free(idx);
    return rc;
}

/* Copies tensor name (shape rows x cols, or a vector when cols == 0) into dst as float32;
 * transpose: the file holds (cols, rows) and dst receives it as (rows, cols). */
static int hf_get(const struct hf_files *h, const char *name, float *dst, int64_t rows,
                  int64_t cols, int transpose, const char *dir, struct ev_err *err) {
    const struct st_tensor *t = hf_find(h, name);
    float                  *tmp = NULL;
    int                     rc;
    if (!t) return ev_fail(err, EV_EFAIL, "%s: missing tensor %s", dir, name);
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return ev_fail(err, EV_EFAIL, "%s: tensor %s has dtype %s; supported: F32, F16, BF16", dir,
                       name, st_dtype_name(t->dtype));
    int64_t shape[2] = {transpose ? cols : rows, transpose ? rows : cols};
    if ((rc = st_check_shape(t, cols ? 2 : 1, shape, err)) != EV_OK) return rc;
    if (!transpose) return st_to_f32(t, dst, err);
    tmp = xmalloc(sizeof(float) * (size_t)(rows * cols));
    if ((rc = st_to_f32(t, tmp, err)) == EV_OK)
        for (int64_t i = 0; i < cols; i++)
            for (int64_t j = 0; j < rows; j++) dst[j * cols + i] = tmp[i * rows + j];
    free(tmp);
    return rc;
}

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

static int hf_config(const char *cfg_path, const cJSON *j, struct model_config *c,
                     struct ev_err *err) {
    const char *mt = NULL, *act = NULL;
    double      eps = 1e-5, theta = 10000.0;
    int         tied = -1, rc;
    memset(c, 0, sizeof *c);
    if ((rc = json_get_str(j, "model_type", cfg_path, &mt, err)) != EV_OK) return rc;
    snprintf(c->model_type, sizeof c->model_type, "%s", mt);
    if ((rc = json_get_bool_opt(j, "tie_word_embeddings", cfg_path, &tied, err)) != EV_OK)
        return rc;
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
    } else if (!strcmp(mt, "llama") || !strcmp(mt, "mistral") || !strcmp(mt, "qwen2")) {
        int attn_bias = 0, mlp_bias = 0, sliding = 0, use_sliding = 1;
        c->arch = MODEL_ARCH_LLAMA;
        c->rope = MODEL_ROPE_HALF;
        c->norm = MODEL_NORM_RMS;
        c->act = MODEL_ACT_SWIGLU;
        c->tied_embeddings = tied == 1;
        eps = 1e-6;
        if ((rc = cfg_int(j, "hidden_size", cfg_path, &c->dim, 0, 1, err)) ||
            (rc = cfg_int(j, "intermediate_size", cfg_path, &c->hidden_dim, 0, 1, err)) ||
            (rc = cfg_int(j, "num_hidden_layers", cfg_path, &c->n_layers, 0, 1, err)) ||
            (rc = cfg_int(j, "num_attention_heads", cfg_path, &c->n_heads, 0, 1, err)) ||
            (rc = cfg_int(j, "vocab_size", cfg_path, &c->vocab_size, 0, 1, err)) ||
            (rc = cfg_int(j, "max_position_embeddings", cfg_path, &c->seq_len, 2048, 0, err)) ||
            (rc = cfg_int(j, "num_key_value_heads", cfg_path, &c->n_kv_heads, c->n_heads, 0,
                          err)) ||
            (rc = json_get_double_opt(j, "rms_norm_eps", cfg_path, &eps, err)) ||
            (rc = json_get_double_opt(j, "rope_theta", cfg_path, &theta, err)) ||
            (rc = json_get_str_opt(j, "hidden_act", cfg_path, &act, err)) ||
            (rc = json_get_bool_opt(j, "attention_bias", cfg_path, &attn_bias, err)) ||
            (rc = json_get_bool_opt(j, "mlp_bias", cfg_path, &mlp_bias, err)) ||
            (rc = json_get_bool_opt(j, "use_sliding_window", cfg_path, &use_sliding, err)))
            return rc;
        c->head_dim = c->n_heads ? c->dim / c->n_heads : 0;
        if ((rc = cfg_int(j, "head_dim", cfg_path, &c->head_dim, c->head_dim, 0, err))) return rc;
        if (act && strcmp(act, "silu"))
            return ev_fail(err, EV_EFAIL, "%s: hidden_act \"%s\" not supported (silu only)",
                           cfg_path, act);
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
        if (rs && !cJSON_IsNull(rs))
            return ev_fail(err, EV_EFAIL, "%s: rope_scaling is not supported", cfg_path);
        if (mlp_bias) return ev_fail(err, EV_EFAIL, "%s: mlp_bias is not supported", cfg_path);
        if (strcmp(mt, "qwen2") == 0) c->qkv_bias = 1;
        else if (attn_bias)
            return ev_fail(err, EV_EFAIL, "%s: attention_bias is not supported for %s",
                           cfg_path, mt);
        if (use_sliding && strcmp(mt, "mistral") == 0 &&
            (rc = cfg_int(j, "sliding_window", cfg_path, &sliding, 0, 0, err)) == EV_OK &&
            sliding > 0 && sliding < c->seq_len)
            c->seq_len = sliding; /* within the window, full attention is exact */
        if (rc) return rc;
    } else {
        return ev_fail(err, EV_EFAIL,
                       "%s: model_type \"%s\" not supported (gpt2, llama, mistral, qwen2)",
                       cfg_path, mt);
    }
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    return config_check(c, cfg_path, err);
}

int model_config_from_hf_json(const char *text, size_t n, const char *what,
                              struct model_config *cfg, struct ev_err *err) {
    cJSON *j  = NULL;
    int    rc = json_parse(text, n, what, &j, err);
    if (rc == EV_OK) rc = hf_config(what, j, cfg, err);
    json_free(j);
    return rc;
}

static int load_hf(const char *dir, int flags, struct model **out, struct ev_err *err) {
    char               *cfg_path = path_join(dir, "config.json");
    cJSON              *j = NULL;
    struct hf_files     h = {0};
    struct model       *m = NULL;
    struct model_config c;
    char                hash[65] = {0}, name[256];
    int                 rc;

    if (!path_exists(cfg_path)) {
        rc = ev_fail(err, EV_EFAIL, "%s: no config.json (expected a Hugging Face model folder)",
                     dir);
        goto out;
    }
    if ((rc = json_parse_file(cfg_path, &j, err)) != EV_OK) goto out;
    if ((rc = hf_config(cfg_path, j, &c, err)) != EV_OK) goto out;
    if ((rc = hf_open(dir, &h, hash, err)) != EV_OK) goto out;
    {
        /* every weight comes from a tensor of at least 2 bytes per value: a config that asks
         * for more than the files can hold is refused before allocating */
        size_t held = 0;
        for (int i = 0; i < h.n; i++)
            for (int k = 0; k < st_count(h.f[i]); k++) held += st_at(h.f[i], k)->n_bytes;
        size_t need = weight_total(&c);
        if (need > held / 2 + 1024) {
            rc = ev_fail(err, EV_EFAIL,
                         "%s: config.json describes %zu weights but the safetensors files hold "
                         "%zu bytes",
                         cfg_path, need, held);
            goto out;
        }
    }
    m = model_alloc(&c);
    memcpy(m->hash, hash, 65);
    struct model_weights *w = &m->w;
    int64_t C = c.dim, H = c.hidden_dim, V = c.vocab_size;
    int64_t qd = (int64_t)c.n_heads * c.head_dim, kvd = (int64_t)c.n_kv_heads * c.head_dim;
#define GET(nm, dst, r, cl, tr)                                                                \
    do {                                                                                       \
        if ((rc = hf_get(&h, nm, dst, r, cl, tr, dir, err)) != EV_OK) goto out;                \
    } while (0)
    if (c.arch == MODEL_ARCH_GPT2) {
        const char *pre = hf_find(&h, "wte.weight") ? "" : "transformer.";
        float      *tmpw = xmalloc(sizeof(float) * (size_t)(3 * C * C));
        float      *tmpb = xmalloc(sizeof(float) * (size_t)(3 * C));
        snprintf(name, sizeof name, "%swte.weight", pre);
        GET(name, w->tok_emb, V, C, 0);
        snprintf(name, sizeof name, "%swpe.weight", pre);
        GET(name, w->pos_emb, c.seq_len, C, 0);
        for (int l = 0; l < c.n_layers; l++) {
#define LN(fmt)                                                                                \
    snprintf(name, sizeof name, "%sh.%d." fmt, pre, l)
            LN("ln_1.weight"); GET(name, w->ln1_w + l * C, C, 0, 0);
            LN("ln_1.bias");   GET(name, w->ln1_b + l * C, C, 0, 0);
            LN("ln_2.weight"); GET(name, w->ln2_w + l * C, C, 0, 0);
            LN("ln_2.bias");   GET(name, w->ln2_b + l * C, C, 0, 0);
            LN("attn.c_attn.weight");
            if ((rc = hf_get(&h, name, tmpw, 3 * C, C, 1, dir, err)) != EV_OK) {
                free(tmpw);
                free(tmpb);
                goto out;
            }
            memcpy(w->wq + l * C * C, tmpw, sizeof(float) * C * C);
            memcpy(w->wk + l * C * C, tmpw + C * C, sizeof(float) * C * C);
            memcpy(w->wv + l * C * C, tmpw + 2 * C * C, sizeof(float) * C * C);
            LN("attn.c_attn.bias");
            if ((rc = hf_get(&h, name, tmpb, 3 * C, 0, 0, dir, err)) != EV_OK) {
                free(tmpw);
                free(tmpb);
                goto out;
            }
            memcpy(w->bq + l * C, tmpb, sizeof(float) * C);
            memcpy(w->bk + l * C, tmpb + C, sizeof(float) * C);
            memcpy(w->bv + l * C, tmpb + 2 * C, sizeof(float) * C);
            LN("attn.c_proj.weight"); GET(name, w->wo + l * C * C, C, C, 1);
            LN("attn.c_proj.bias");   GET(name, w->bo + l * C, C, 0, 0);
            LN("mlp.c_fc.weight");    GET(name, w->w1 + l * H * C, H, C, 1);
            LN("mlp.c_fc.bias");      GET(name, w->b1 + l * H, H, 0, 0);
            LN("mlp.c_proj.weight");  GET(name, w->w2 + l * C * H, C, H, 1);
            LN("mlp.c_proj.bias");    GET(name, w->b2 + l * C, C, 0, 0);
#undef LN
        }
        free(tmpw);
        free(tmpb);
        snprintf(name, sizeof name, "%sln_f.weight", pre);
        GET(name, w->lnf_w, C, 0, 0);
        snprintf(name, sizeof name, "%sln_f.bias", pre);
        GET(name, w->lnf_b, C, 0, 0);
        if (!c.tied_embeddings) GET("lm_head.weight", w->wcls, V, C, 0);
    } else {
        GET("model.embed_tokens.weight", w->tok_emb, V, C, 0);
        for (int l = 0; l < c.n_layers; l++) {
#define LN(fmt) snprintf(name, sizeof name, "model.layers.%d." fmt, l)
            LN("input_layernorm.weight");          GET(name, w->ln1_w + l * C, C, 0, 0);
            LN("post_attention_layernorm.weight"); GET(name, w->ln2_w + l * C, C, 0, 0);
            LN("self_attn.q_proj.weight"); GET(name, w->wq + l * qd * C, qd, C, 0);
            LN("self_attn.k_proj.weight"); GET(name, w->wk + l * kvd * C, kvd, C, 0);
            LN("self_attn.v_proj.weight"); GET(name, w->wv + l * kvd * C, kvd, C, 0);
            LN("self_attn.o_proj.weight"); GET(name, w->wo + l * C * qd, C, qd, 0);
            if (c.qkv_bias) {
                LN("self_attn.q_proj.bias"); GET(name, w->bq + l * qd, qd, 0, 0);
                LN("self_attn.k_proj.bias"); GET(name, w->bk + l * kvd, kvd, 0, 0);
                LN("self_attn.v_proj.bias"); GET(name, w->bv + l * kvd, kvd, 0, 0);
            }
            LN("mlp.gate_proj.weight"); GET(name, w->w1 + l * H * C, H, C, 0);
            LN("mlp.down_proj.weight"); GET(name, w->w2 + l * C * H, C, H, 0);
            LN("mlp.up_proj.weight");   GET(name, w->w3 + l * H * C, H, C, 0);
#undef LN
        }
        GET("model.norm.weight", w->lnf_w, C, 0, 0);
        if (!c.tied_embeddings) GET("lm_head.weight", w->wcls, V, C, 0);
    }
#undef GET
    if ((rc = check_finite(m, dir, err)) != EV_OK) goto out;
    if (!(flags & MODEL_LOAD_NO_TOKENIZER) &&
        (rc = load_tokenizer_beside(m, dir, dir, err)) != EV_OK)
        goto out;
    m->path = xstrdup(dir);
    *out = m;
    m = NULL;
    rc = EV_OK;
out:
    hf_files_release(&h);
    json_free(j);
    free(cfg_path);
    model_free(m);
    return rc;
}

#define MODEL_DEFAULT "evals/models/stories260K/stories260K.bin"

char *model_resolve_path(const char *given) {
    return path_shipped(given, "EVALRUN_MODEL", MODEL_DEFAULT);
}

int model_load(const char *path, struct model **out, struct ev_err *err) {
    return model_load_flags(path, 0, out, err);
}

int model_load_flags(const char *path, int flags, struct model **out, struct ev_err *err) {
    *out = NULL;
    if (!path_exists(path)) return ev_fail(err, EV_EFAIL, "model %s: no such file or folder", path);
    if (path_is_dir(path)) {
        char *cfg = path_join(path, "config.json");
        int   has_cfg = path_exists(cfg);
        free(cfg);
        if (has_cfg) return load_hf(path, flags, out, err);
        return ev_fail(err, EV_EFAIL,
                       "%s: a model folder needs config.json (Hugging Face); for llama2.c give "
                       "the .bin file",
                       path);
    }
    return load_llama2c(path, flags, out, err);
}

// ---------------------------------------------------------------------------- hooks

/* Hook points per layer: the kinds before MODEL_HOOK_RESID_POST (which is point 0 of the next
 * layer). A hook's point in the forward pass is NP * layer + kind. */
#define NP MODEL_HOOK_RESID_POST

static const struct {
    const char *name; /* after "blocks.L." */
} hook_names[] = {
    [MODEL_HOOK_RESID_PRE] = {"hook_resid_pre"},
    [MODEL_HOOK_ATTN_Z] = {"attn.hook_z"},
    [MODEL_HOOK_ATTN_OUT] = {"hook_attn_out"},
    [MODEL_HOOK_RESID_MID] = {"hook_resid_mid"},
    [MODEL_HOOK_LN2_NORMALIZED] = {"ln2.hook_normalized"},
    [MODEL_HOOK_MLP_IN] = {"mlp.hook_in"},
    [MODEL_HOOK_MLP_POST] = {"mlp.hook_post"},
    [MODEL_HOOK_MLP_OUT] = {"hook_mlp_out"},
    [MODEL_HOOK_RESID_POST] = {"hook_resid_post"},
};
#define N_HOOK_KINDS ((int)(sizeof hook_names / sizeof hook_names[0]))

static int hook_point(struct model_hook h) { return NP * h.layer + (int)h.kind; }

int model_hook_check(const struct model *m, struct model_hook h, struct ev_err *err) {
    const struct model_config *c = &m->cfg;
    if ((int)h.kind < 0 || (int)h.kind >= N_HOOK_KINDS)
        return ev_fail(err, EV_EFAIL, "hook kind %d unknown", (int)h.kind);
    if (h.layer < 0 || h.layer >= c->n_layers)
        return ev_fail(err, EV_EFAIL, "hook blocks.%d.%s: layer out of range (the model has %d "
                                      "layers, 0..%d)",
                       h.layer, hook_names[h.kind].name, c->n_layers, c->n_layers - 1);
    if (h.kind == MODEL_HOOK_RESID_MID && c->parallel_residual)
        return ev_fail(err, EV_EFAIL,
                       "hook blocks.%d.hook_resid_mid: %s blocks are parallel (attention and MLP "
                       "both read hook_resid_pre), so there is no resid_mid",
                       h.layer, c->model_type);
    return EV_OK;
}

static int parse_layer(const char *p, const char **rest) {
    char *end = NULL;
    if (*p < '0' || *p > '9') return -1;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (errno || v > INT_MAX) return -1;
    *rest = end;
    return (int)v;
}

static int hook_finish(const struct model *m, const char *name, int layer, int kind,
                       struct model_hook *out, struct ev_err *err) {
    struct model_hook h = {layer, (enum model_hook_kind)kind};
    if (layer >= m->cfg.n_layers)
        return ev_fail(err, EV_EFAIL, "hook %s: layer %d out of range (the model has %d layers, "
                                      "0..%d)",
                       name, layer, m->cfg.n_layers, m->cfg.n_layers - 1);
    if (model_hook_check(m, h, err) != EV_OK) return EV_EFAIL;
    *out = h;
    return EV_OK;
}

/* The architectures whose HF MLP / attention modules' outputs are not TransformerLens'
 * hook_mlp_out / hook_attn_out (a norm follows them inside the block). */
static int has_post_norms(const struct model_config *c) { return c->post_norms; }

/* sparsify: a module path relative to the base model. kind_out / kind_in: the hook for the
 * module's output / input, -1 when there is none. */
static int sparsify_parse(const struct model *m, const char *name, int input,
                          struct model_hook *out, struct ev_err *err) {
    static const char *prefixes[] = {"model.", "gpt_neox.", "transformer.", "base_model."};
    const char        *p = name, *rest = NULL;
    for (int again = 1; again;) {
        again = 0;
        for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
            if (strncmp(p, prefixes[i], strlen(prefixes[i])) == 0) {
                p += strlen(prefixes[i]);
                again = 1;
            }
    }
    if (strncmp(p, "layers.", 7) == 0) p += 7;
    else if (strncmp(p, "h.", 2) == 0) p += 2;
    else goto bad;
    int layer = parse_layer(p, &rest);
    if (layer < 0) goto bad;
    static const struct {
        const char *module;
        int         out_kind, in_kind;
    } mods[] = {
        {"", MODEL_HOOK_RESID_POST, MODEL_HOOK_RESID_PRE},
        {".mlp", MODEL_HOOK_MLP_OUT, MODEL_HOOK_MLP_IN},
        {".self_attn", MODEL_HOOK_ATTN_OUT, -1},
        {".attention", MODEL_HOOK_ATTN_OUT, -1},
        {".attn", MODEL_HOOK_ATTN_OUT, -1},
        {".self_attn.o_proj", -1, MODEL_HOOK_ATTN_Z},
        {".attention.dense", -1, MODEL_HOOK_ATTN_Z},
        {".attn.c_proj", -1, MODEL_HOOK_ATTN_Z},
        {".mlp.down_proj", -1, MODEL_HOOK_MLP_POST},
        {".mlp.dense_4h_to_h", -1, MODEL_HOOK_MLP_POST},
        {".mlp.c_proj", -1, MODEL_HOOK_MLP_POST},
    };
    for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++) {
        if (strcmp(rest, mods[i].module) != 0) continue;
        int kind = input ? mods[i].in_kind : mods[i].out_kind;
        if (kind < 0)
            return ev_fail(err, EV_EFAIL,
                           "sparsify hookpoint %s: the %s of this module is not a hook evalrun "
                           "has (module inputs: layers.L, layers.L.mlp, the attention's output "
                           "projection, the MLP's down projection; outputs: layers.L, "
                           "layers.L.mlp, layers.L.self_attn)",
                           name, input ? "input" : "output");
        if (!input && (kind == MODEL_HOOK_MLP_OUT || kind == MODEL_HOOK_ATTN_OUT) &&
            has_post_norms(&m->cfg))
            return ev_fail(err, EV_EFAIL,
                           "sparsify hookpoint %s: in %s the HF module's output comes before the "
                           "block's post-norm, so it is not TransformerLens' %s; not supported",
                           name, m->cfg.model_type, hook_names[kind].name);
        return hook_finish(m, name, layer, kind, out, err);
    }
bad:
    return ev_fail(err, EV_EFAIL,
                   "unknown sparsify hookpoint '%s' (expected layers.L, layers.L.mlp, "
                   "layers.L.self_attn or layers.L.attention, optionally after model. or "
                   "gpt_neox.)",
                   name);
}

int model_hook_parse(const struct model *m, const char *name, struct model_hook *out,
                     struct ev_err *err) {
    const char *rest = NULL;
    if (strncmp(name, "blocks.", 7) == 0) {
        int layer = parse_layer(name + 7, &rest);
        if (layer >= 0 && *rest == '.')
            for (int k = 0; k < N_HOOK_KINDS; k++)
                if (strcmp(rest + 1, hook_names[k].name) == 0)
                    return hook_finish(m, name, layer, k, out, err);
    } else if (strncmp(name, "layers.", 7) == 0 || strncmp(name, "h.", 2) == 0 ||
               strncmp(name, "model.layers.", 13) == 0 || strncmp(name, "gpt_neox.", 9) == 0 ||
               strncmp(name, "transformer.h.", 14) == 0) {
        return sparsify_parse(m, name, 0, out, err);
    }
    return ev_fail(err, EV_EFAIL,
                   "unknown hook '%s' (expected blocks.L. followed by hook_resid_pre, "
                   "hook_resid_mid, hook_resid_post, hook_attn_out, hook_mlp_out, attn.hook_z, "
                   "mlp.hook_post, mlp.hook_in or ln2.hook_normalized; or a sparsify module "
                   "such as layers.L.mlp)",
                   name);
}

int model_hook_parse_sparsify(const struct model *m, const char *hookpoint, int input,
                              struct model_hook *out, struct ev_err *err) {
    return sparsify_parse(m, hookpoint, input, out, err);
}

void model_hook_name(struct model_hook h, char *buf, size_t n) {
    if ((int)h.kind < 0 || (int)h.kind >= N_HOOK_KINDS) {
        snprintf(buf, n, "blocks.%d.?", h.layer);
        return;
    }
    snprintf(buf, n, "blocks.%d.%s", h.layer, hook_names[h.kind].name);
}

int model_hook_index(struct model_hook h) {
    if (h.kind == MODEL_HOOK_RESID_PRE) return h.layer;
    if (h.kind == MODEL_HOOK_RESID_POST) return h.layer + 1;
    return -1;
}

int model_hook_width(const struct model *m, struct model_hook h) {
    if (h.kind == MODEL_HOOK_ATTN_Z) return m->cfg.n_heads * m->cfg.head_dim;
    if (h.kind == MODEL_HOOK_MLP_POST) return m->cfg.hidden_dim;
    return m->cfg.dim;
}

int model_hook_mlp_layer(struct model_hook h) {
    return h.kind >= MODEL_HOOK_MLP_POST ? h.layer : h.layer - 1;
}

// ---------------------------------------------------------------------------- state

/*
 * Buffers. With MODEL_STATE_GRAD each per-layer activation has one slice per layer (lstride
 * = its size); without, all layers share one slice (lstride 0), so memory does not grow with L.
 * Each hook point has its own buffer (point_buf), so that a hook can be read, replaced and
 * resumed from.
 */
struct model_state {
    const struct model *m;
    int                 max_T, grad, last_only;
    size_t              ls_TC, ls_TH, ls_Tq, ls_T, ls_att; /* per-layer strides (0 if !grad) */
    float *resid;  /* (L+1 | 1, max_T, C) residual at each index r (grad) or the one stream */
    float *ao;     /* (L | 1, max_T, C) hook_attn_out */
    float *mid;    /* (L | 1, max_T, C) hook_resid_mid */
    float *ln1;    /* (L | 1, max_T, C) normed input of attention */
    float *ln1_m, *ln1_r; /* (L | 1, max_T) mean, rstd */
    float *ln2n;   /* (L | 1, max_T, C) ln2.hook_normalized */
    float *ln2;    /* (L | 1, max_T, C) mlp.hook_in */
    float *ln2_m, *ln2_r;
    float *q;      /* (L | 1, max_T, NH*HS) after RoPE */
    float *att;    /* (L | 1, NH, max_T, max_T) probabilities */
    float *atty;   /* (L | 1, max_T, NH*HS) attn.hook_z */
    float *h1;     /* (L | 1, max_T, H) gate / fc pre-activation */
    float *h3;     /* (L | 1, max_T, H) up (SwiGLU) */
    float *hact;   /* (L | 1, max_T, H) mlp.hook_post */
    float *mo;     /* (L | 1, max_T, C) hook_mlp_out */
    float *kc, *vc; /* (L, max_T, NKV*HS) KV cache (keys after RoPE) */
    float *ones;   /* (C) all 1: the norms' unit weight (normalisation without its scale) */
    float *lnf, *lnf_m, *lnf_r; /* (max_T, C), (max_T), (max_T) */
    float *logits; /* (max_T, V) */
    /* backward scratch (grad only) */
    float *d_res, *d_ln, *d_h1, *d_h3, *d_hact, *d_q, *d_k, *d_v, *d_atty, *d_scr, *d_par;
    /* what the last forward did */
    int last_pos, last_T, last_done;
};

int model_state_new(const struct model *m, int max_T, int flags, struct model_state **out,
                    struct ev_err *err) {
    const struct model_config *c = &m->cfg;
    *out = NULL;
    if (max_T == 0) max_T = c->seq_len;
    if (max_T < 1 || max_T > c->seq_len)
        return ev_fail(err, EV_EUSAGE, "state size %d outside [1, %d] (the model's context)",
                       max_T, c->seq_len);
    struct model_state *s = xcalloc(1, sizeof *s);
    size_t T = max_T, C = c->dim, H = c->hidden_dim, V = c->vocab_size, L = c->n_layers;
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    size_t nl = (flags & MODEL_STATE_GRAD) ? L : 1;
    s->m = m;
    s->max_T = max_T;
    s->grad = (flags & MODEL_STATE_GRAD) != 0;
    s->last_only = (flags & MODEL_STATE_LAST_LOGITS) != 0;
    s->ls_TC = s->grad ? T * C : 0;
    s->ls_TH = s->grad ? T * H : 0;
    s->ls_Tq = s->grad ? T * qd : 0;
    s->ls_T = s->grad ? T : 0;
    s->ls_att = s->grad ? (size_t)c->n_heads * T * T : 0;
    s->resid = xcalloc((s->grad ? L + 1 : 1) * T * C, sizeof(float));
    s->ao = xcalloc(nl * T * C, sizeof(float));
    s->mid = xcalloc(nl * T * C, sizeof(float));
    s->ln1 = xcalloc(nl * T * C, sizeof(float));
    s->ln2n = xcalloc(nl * T * C, sizeof(float));
    s->ln2 = xcalloc(nl * T * C, sizeof(float));
    s->ln1_m = xcalloc(nl * T, sizeof(float));
    s->ln1_r = xcalloc(nl * T, sizeof(float));
    s->ln2_m = xcalloc(nl * T, sizeof(float));
    s->ln2_r = xcalloc(nl * T, sizeof(float));
    s->q = xcalloc(nl * T * qd, sizeof(float));
    s->att = xcalloc(nl * c->n_heads * T * T, sizeof(float));
    s->atty = xcalloc(nl * T * qd, sizeof(float));
    s->h1 = xcalloc(nl * T * H, sizeof(float));
    s->h3 = xcalloc(nl * T * H, sizeof(float));
    s->hact = xcalloc(nl * T * H, sizeof(float));
    s->mo = xcalloc(nl * T * C, sizeof(float));
    s->kc = xcalloc(L * T * kvd, sizeof(float));
    s->vc = xcalloc(L * T * kvd, sizeof(float));
    s->ones = xmalloc(C * sizeof(float));
    for (size_t i = 0; i < C; i++) s->ones[i] = 1.0f;
    s->lnf = xcalloc(T * C, sizeof(float));
    s->lnf_m = xcalloc(T, sizeof(float));
    s->lnf_r = xcalloc(T, sizeof(float));
    s->logits = xcalloc((s->last_only ? 1 : T) * V, sizeof(float));
    if (s->grad) {
        s->d_res = xcalloc(T * C, sizeof(float));
        s->d_ln = xcalloc(T * C, sizeof(float));
        s->d_par = xcalloc(T * C, sizeof(float));
        s->d_h1 = xcalloc(T * H, sizeof(float));
        s->d_h3 = xcalloc(T * H, sizeof(float));
        s->d_hact = xcalloc(T * H, sizeof(float));
        s->d_q = xcalloc(T * qd, sizeof(float));
        s->d_k = xcalloc(T * kvd, sizeof(float));
        s->d_v = xcalloc(T * kvd, sizeof(float));
        s->d_atty = xcalloc(T * qd, sizeof(float));
        s->d_scr = xcalloc(T * T, sizeof(float));
    }
    *out = s;
    return EV_OK;
}

void model_state_free(struct model_state *s) {
    if (!s) return;
    float *bufs[] = {s->resid,  s->ao,    s->mid,   s->ln1,   s->ln2n,  s->ln2,   s->ln1_m,
                     s->ln1_r,  s->ln2_m, s->ln2_r, s->q,     s->att,   s->atty,  s->h1,
                     s->h3,     s->hact,  s->mo,    s->kc,    s->vc,    s->ones,  s->lnf,
                     s->lnf_m,  s->lnf_r, s->logits, s->d_res, s->d_ln, s->d_par, s->d_h1,
                     s->d_h3,   s->d_hact, s->d_q,  s->d_k,   s->d_v,   s->d_atty, s->d_scr};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(s);
}

int          model_state_max_T(const struct model_state *s) { return s->max_T; }
const float *model_state_logits(const struct model_state *s) { return s->logits; }

// ---------------------------------------------------------------------------- forward

static float *resid_at(struct model_state *s, int r) {
    return s->resid + (s->grad ? (size_t)r * s->max_T * s->m->cfg.dim : 0);
}

/* The buffer holding the activation at point p = NP * l + k (p = NP * L: the final stream). */
static float *point_buf(struct model_state *s, int p) {
    int l = p / NP, k = p % NP;
    switch (k) {
    case MODEL_HOOK_ATTN_Z: return s->atty + l * s->ls_Tq;
    case MODEL_HOOK_ATTN_OUT: return s->ao + l * s->ls_TC;
    case MODEL_HOOK_RESID_MID: return s->mid + l * s->ls_TC;
    case MODEL_HOOK_LN2_NORMALIZED: return s->ln2n + l * s->ls_TC;
    case MODEL_HOOK_MLP_IN: return s->ln2 + l * s->ls_TC;
    case MODEL_HOOK_MLP_POST: return s->hact + l * s->ls_TH;
    case MODEL_HOOK_MLP_OUT: return s->mo + l * s->ls_TC;
    default: return resid_at(s, l);
    }
}

static size_t point_width(const struct model_config *c, int p) {
    int k = p % NP;
    if (k == MODEL_HOOK_ATTN_Z) return (size_t)c->n_heads * c->head_dim;
    if (k == MODEL_HOOK_MLP_POST) return (size_t)c->hidden_dim;
    return (size_t)c->dim;
}

static void norm_fwd(const struct model_config *c, float *out, float *mean, float *rstd,
                     const float *x, const float *w, const float *b, int T) {
    if (c->norm == MODEL_NORM_RMS) kern_rmsnorm(out, rstd, x, w, T, c->dim, c->norm_eps);
    else kern_layernorm(out, mean, rstd, x, w, b, T, c->dim, c->norm_eps);
}

static void norm_bwd(const struct model_config *c, float *dx, const float *dout, const float *x,
                     const float *w, const float *mean, const float *rstd, int T) {
    if (c->norm == MODEL_NORM_RMS) kern_rmsnorm_backward(dx, dout, x, w, rstd, T, c->dim);
    else kern_layernorm_backward(dx, dout, x, w, mean, rstd, T, c->dim);
}

/*
 * One stage of block l: from the activation at point k (edits already applied) to the one at
 * point k + 1, for rows [0, T) at positions pos..pos+T-1. A parallel block (GPT-NeoX) has no
 * resid_mid: its MLP normalises resid_pre, and its output adds both branches to resid_pre.
 * The arithmetic is the fused block's, split at the hooks: w * (r * x) for RMSNorm, so that
 * reading and writing back a hook changes no bit.
 */
static void stage_forward(struct model_state *s, int l, int k, int pos, int T) {
    const struct model_config  *c = &s->m->cfg;
    const struct model_weights *w = &s->m->w;
    size_t C = c->dim, H = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads;
    size_t HS = c->head_dim, qd = NH * HS, kvd = NKV * HS, mT = s->max_T, TC = (size_t)T * C;
    int    ln = c->norm == MODEL_NORM_LAYER, par = c->parallel_residual;
    float *x_in = resid_at(s, l), *x_out = resid_at(s, l + 1);
    float *ao = s->ao + l * s->ls_TC, *mid = s->mid + l * s->ls_TC, *mo = s->mo + l * s->ls_TC;
    float *ln1 = s->ln1 + l * s->ls_TC, *ln2n = s->ln2n + l * s->ls_TC, *ln2 = s->ln2 + l * s->ls_TC;
    float *ln1_m = s->ln1_m + l * s->ls_T, *ln1_r = s->ln1_r + l * s->ls_T;
    float *ln2_m = s->ln2_m + l * s->ls_T, *ln2_r = s->ln2_r + l * s->ls_T;
    float *q = s->q + l * s->ls_Tq, *atty = s->atty + l * s->ls_Tq, *att = s->att + l * s->ls_att;
    float *h1 = s->h1 + l * s->ls_TH, *h3 = s->h3 + l * s->ls_TH, *hact = s->hact + l * s->ls_TH;
    float *kc = s->kc + (size_t)l * mT * kvd, *vc = s->vc + (size_t)l * mT * kvd;
    float *k_new = kc + (size_t)pos * kvd, *v_new = vc + (size_t)pos * kvd;
    switch (k) {
    case MODEL_HOOK_RESID_PRE:
        norm_fwd(c, ln1, ln1_m, ln1_r, x_in, w->ln1_w + l * C, ln ? w->ln1_b + l * C : NULL, T);
        kern_matmul(q, ln1, w->wq + l * qd * C, c->qkv_bias ? w->bq + l * qd : NULL, T, C, qd);
        kern_matmul(k_new, ln1, w->wk + l * kvd * C, c->qkv_bias ? w->bk + l * kvd : NULL, T, C,
                    kvd);
        kern_matmul(v_new, ln1, w->wv + l * kvd * C, c->qkv_bias ? w->bv + l * kvd : NULL, T, C,
                    kvd);
        if (c->rope != MODEL_ROPE_NONE) {
            int half = c->rope == MODEL_ROPE_HALF;
            kern_rope(q, T, qd, pos, NH, HS, c->rope_theta, half, 0);
            kern_rope(k_new, T, kvd, pos, NKV, HS, c->rope_theta, half, 0);
        }
        /* att rows are (NH, T, pos+T) packed with stride pos+T; grad runs have pos == 0 */
        kern_attention(atty, att, q, kc, vc, T, pos, NH, NKV, HS, pos + T);
        break;
    case MODEL_HOOK_ATTN_Z:
        kern_matmul(ao, atty, w->wo + l * C * qd, c->out_bias ? w->bo + l * C : NULL, T, qd, C);
        break;
    case MODEL_HOOK_ATTN_OUT:
        if (!par)
            for (size_t i = 0; i < TC; i++) mid[i] = x_in[i] + ao[i];
        break;
    case MODEL_HOOK_RESID_MID:
        norm_fwd(c, ln2n, ln2_m, ln2_r, par ? x_in : mid, s->ones, NULL, T);
        break;
    case MODEL_HOOK_LN2_NORMALIZED: {
        const float *g = w->ln2_w + l * C, *b = ln ? w->ln2_b + l * C : NULL;
        for (int t = 0; t < T; t++)
            for (size_t i = 0; i < C; i++)
                ln2[t * C + i] = b ? ln2n[t * C + i] * g[i] + b[i] : g[i] * ln2n[t * C + i];
        break;
    }
    case MODEL_HOOK_MLP_IN:
        kern_matmul(h1, ln2, w->w1 + l * H * C, c->out_bias ? w->b1 + l * H : NULL, T, C, H);
        if (c->act == MODEL_ACT_SWIGLU) {
            kern_matmul(h3, ln2, w->w3 + l * H * C, NULL, T, C, H);
            kern_swiglu(hact, h1, h3, (size_t)T * H);
        } else {
            kern_gelu(hact, h1, (size_t)T * H);
        }
        break;
    case MODEL_HOOK_MLP_POST:
        kern_matmul(mo, hact, w->w2 + l * C * H, c->out_bias ? w->b2 + l * C : NULL, T, H, C);
        break;
    case MODEL_HOOK_MLP_OUT:
        if (par)
            for (size_t i = 0; i < TC; i++) x_out[i] = x_in[i] + ao[i] + mo[i];
        else
            for (size_t i = 0; i < TC; i++) x_out[i] = mid[i] + mo[i];
        break;
    default: EV_ASSERT(0);
    }
}

static void final_forward(struct model_state *s, int T) {
    const struct model_config  *c = &s->m->cfg;
    const struct model_weights *w = &s->m->w;
    norm_fwd(c, s->lnf, s->lnf_m, s->lnf_r, resid_at(s, c->n_layers), w->lnf_w, w->lnf_b, T);
    if (s->last_only)
        kern_matmul(s->logits, s->lnf + (size_t)(T - 1) * c->dim, w->wcls, NULL, 1, c->dim,
                    c->vocab_size);
    else
        kern_matmul(s->logits, s->lnf, w->wcls, NULL, T, c->dim, c->vocab_size);
}

static void apply_edit(const struct model_edit *e, float *x, size_t W, int pos, int T) {
    if (e->read) memcpy(e->read, x, sizeof(float) * T * W);
    if (e->replace) memcpy(x, e->replace, sizeof(float) * T * W);
    if (e->add) {
        float k = e->add_scale == 0.0f ? 1.0f : e->add_scale;
        for (int t = 0; t < T; t++) {
            int hit = !e->add_pos;
            for (int i = 0; !hit && i < e->n_add_pos; i++) hit = e->add_pos[i] == pos + t;
            if (!hit) continue;
            float *x_t = x + (size_t)t * W;
            for (size_t i = 0; i < W; i++) x_t[i] += k * e->add[i];
        }
    }
}

static int check_run(struct model_state *s, int pos, int T, struct ev_err *err) {
    if (T < 1 || pos < 0 || pos + T > s->max_T)
        return ev_fail(err, EV_EFAIL,
                       "%d tokens at position %d do not fit the context of %d positions", T, pos,
                       s->max_T);
    if (pos > 0 && (s->last_pos + s->last_T < pos || !s->last_done))
        return ev_fail(err, EV_EFAIL,
                       "forward at position %d: the KV cache holds only %d positions", pos,
                       s->last_done ? s->last_pos + s->last_T : 0);
    return EV_OK;
}

/*
 * Runs the forward pass from point p0 (whose activation is in its buffer) on: at each point,
 * the edits naming it (from p0 itself only when edit_first), then the stage to the next point,
 * and at point NP * L the final norm and logits. Stops at p_stop (before its edits) when
 * p_stop >= 0.
 */
static void run_points(struct model_state *s, int pos, int T, int p0, int p_stop, int edit_first,
                       const struct model_edit *edits, int n_edits) {
    const struct model_config *c = &s->m->cfg;
    int                        end = NP * c->n_layers;
    for (int p = p0; p <= end; p++) {
        if (p == p_stop) return;
        if (p > p0 || edit_first)
            for (int e = 0; e < n_edits; e++)
                if (hook_point(edits[e].hook) == p)
                    apply_edit(&edits[e], point_buf(s, p), point_width(c, p), pos, T);
        if (p == end) final_forward(s, T);
        else stage_forward(s, p / NP, p % NP, pos, T);
    }
}

static void embed(struct model_state *s, const int *tokens, int pos, int T) {
    const struct model_config *c = &s->m->cfg;
    size_t                     C = c->dim;
    float                     *x = resid_at(s, 0);
    for (int t = 0; t < T; t++) {
        memcpy(x + t * C, s->m->w.tok_emb + (size_t)tokens[t] * C, sizeof(float) * C);
        if (s->m->w.pos_emb) {
            const float *p = s->m->w.pos_emb + (size_t)(pos + t) * C;
            for (size_t i = 0; i < C; i++) x[t * C + i] += p[i];
        }
    }
}

static int check_tokens(const struct model_state *s, const int *tokens, int T,
                        struct ev_err *err) {
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= s->m->cfg.vocab_size)
            return ev_fail(err, EV_EFAIL, "token id %d at %d outside the vocabulary [0, %d)",
                           tokens[t], t, s->m->cfg.vocab_size);
    return EV_OK;
}

static int check_edits(const struct model_state *s, const struct model_edit *edits, int n,
                       struct ev_err *err) {
    for (int e = 0; e < n; e++) {
        struct ev_err e2 = {{0}};
        if (model_hook_check(s->m, edits[e].hook, &e2) != EV_OK)
            return ev_fail(err, EV_EFAIL, "edit %d: %s", e, e2.msg);
    }
    return EV_OK;
}

int model_forward(struct model_state *s, const int *tokens, int pos, int T,
                  const struct model_edit *edits, int n_edits, struct ev_err *err) {
    int rc;
    if ((rc = check_run(s, pos, T, err)) || (rc = check_tokens(s, tokens, T, err)) ||
        (rc = check_edits(s, edits, n_edits, err)))
        return rc;
    embed(s, tokens, pos, T);
    run_points(s, pos, T, 0, -1, 1, edits, n_edits);
    s->last_pos = pos;
    s->last_T = T;
    s->last_done = 1;
    return EV_OK;
}

int model_forward_to_hook(struct model_state *s, const int *tokens, int pos, int T,
                          struct model_hook h, float *resid_out, struct ev_err *err) {
    int rc;
    struct model_edit e = {.hook = h};
    if ((rc = check_run(s, pos, T, err)) || (rc = check_tokens(s, tokens, T, err)) ||
        (rc = check_edits(s, &e, 1, err)))
        return rc;
    int p = hook_point(h);
    embed(s, tokens, pos, T);
    run_points(s, pos, T, 0, p, 1, NULL, 0);
    memcpy(resid_out, point_buf(s, p), sizeof(float) * T * point_width(&s->m->cfg, p));
    /* the cache of the layers from the hook's on is not yet filled for these positions */
    s->last_done = 0;
    s->last_pos = pos;
    s->last_T = T;
    return EV_OK;
}

int model_forward_from_hook(struct model_state *s, int pos, int T, struct model_hook h,
                            const float *resid_in, struct ev_err *err) {
    int rc;
    struct model_edit e = {.hook = h};
    if ((rc = check_edits(s, &e, 1, err))) return rc;
    if (T < 1 || pos < 0 || pos + T > s->max_T)
        return ev_fail(err, EV_EFAIL,
                       "%d tokens at position %d do not fit the context of %d positions", T, pos,
                       s->max_T);
    if (s->last_done || s->last_pos != pos || s->last_T != T)
        return ev_fail(err, EV_EFAIL,
                       "model_forward_from_hook must follow model_forward_to_hook on the same "
                       "positions");
    int p = hook_point(h);
    memcpy(point_buf(s, p), resid_in, sizeof(float) * T * point_width(&s->m->cfg, p));
    run_points(s, pos, T, p, -1, 0, NULL, 0);
    s->last_done = 1;
    return EV_OK;
}

// ---------------------------------------------------------------------------- backward

/*
 * Back through block l. On entry s->d_res = d f / d resid_post(l). When k_stop names a point
 * inside the block (k_stop > 0), the gradient at it is copied to out (its width) and the
 * function returns 1; otherwise s->d_res = d f / d resid_pre(l) on return (0). The gradient at
 * a point is that of f with everything after the point recomputed from it and everything
 * before held fixed (the skip connections carry the rest).
 */
static int block_backward(struct model_state *s, int l, int k_stop, float *out) {
    const struct model_config  *c = &s->m->cfg;
    const struct model_weights *w = &s->m->w;
    int    T = s->last_T, par = c->parallel_residual;
    size_t C = c->dim, H = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HS = c->head_dim;
    size_t qd = NH * HS, kvd = NKV * HS, mT = s->max_T, TC = (size_t)T * C;
    int    half = c->rope == MODEL_ROPE_HALF;
    float *dr = s->d_res;
    const float *x_in = resid_at(s, l);
    const float *mid = s->mid + l * s->ls_TC;
    const float *h1 = s->h1 + l * s->ls_TH, *h3 = s->h3 + l * s->ls_TH;
    const float *q = s->q + l * s->ls_Tq, *att = s->att + l * s->ls_att;
    const float *kc = s->kc + (size_t)l * mT * kvd, *vc = s->vc + (size_t)l * mT * kvd;
#define STOP_AT(kind, buf, n)                                                                  \
    do {                                                                                       \
        if (k_stop == (kind)) {                                                                \
            memcpy(out, buf, sizeof(float) * (size_t)T * (n));                                 \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)
    /* MLP: resid_post = (mid | resid_pre + attn_out) + mlp_out */
    STOP_AT(MODEL_HOOK_MLP_OUT, dr, C);
    kern_matmul_backward(s->d_hact, dr, w->w2 + l * C * H, T, H, C, 0);
    STOP_AT(MODEL_HOOK_MLP_POST, s->d_hact, H);
    if (c->act == MODEL_ACT_SWIGLU) {
        kern_swiglu_backward(s->d_h1, s->d_h3, s->d_hact, h1, h3, (size_t)T * H);
        kern_matmul_backward(s->d_ln, s->d_h1, w->w1 + l * H * C, T, C, H, 0);
        kern_matmul_backward(s->d_ln, s->d_h3, w->w3 + l * H * C, T, C, H, 1);
    } else {
        kern_gelu_backward(s->d_h1, s->d_hact, h1, (size_t)T * H);
        kern_matmul_backward(s->d_ln, s->d_h1, w->w1 + l * H * C, T, C, H, 0);
    }
    STOP_AT(MODEL_HOOK_MLP_IN, s->d_ln, C);
    {
        const float *g = w->ln2_w + l * C;
        for (int t = 0; t < T; t++)
            for (size_t i = 0; i < C; i++) s->d_ln[t * C + i] *= g[i];
    }
    STOP_AT(MODEL_HOOK_LN2_NORMALIZED, s->d_ln, C);
    if (par) {
        memset(s->d_par, 0, sizeof(float) * TC);
        norm_bwd(c, s->d_par, s->d_ln, x_in, s->ones, s->ln2_m + l * s->ls_T,
                 s->ln2_r + l * s->ls_T, T);
    } else {
        norm_bwd(c, dr, s->d_ln, mid, s->ones, s->ln2_m + l * s->ls_T, s->ln2_r + l * s->ls_T, T);
        STOP_AT(MODEL_HOOK_RESID_MID, dr, C);
    }
    /* attention: attn_out = Wo z + bo; resid_mid = resid_pre + attn_out */
    STOP_AT(MODEL_HOOK_ATTN_OUT, dr, C);
    kern_matmul_backward(s->d_atty, dr, w->wo + l * C * qd, T, qd, C, 0);
    STOP_AT(MODEL_HOOK_ATTN_Z, s->d_atty, qd);
    kern_attention_backward(s->d_q, s->d_k, s->d_v, s->d_atty, att, q, kc, vc, T, NH, NKV, HS, T,
                            s->d_scr);
    if (c->rope != MODEL_ROPE_NONE) {
        kern_rope(s->d_q, T, qd, 0, NH, HS, c->rope_theta, half, 1);
        kern_rope(s->d_k, T, kvd, 0, NKV, HS, c->rope_theta, half, 1);
    }
    kern_matmul_backward(s->d_ln, s->d_q, w->wq + l * qd * C, T, C, qd, 0);
    kern_matmul_backward(s->d_ln, s->d_k, w->wk + l * kvd * C, T, C, kvd, 1);
    kern_matmul_backward(s->d_ln, s->d_v, w->wv + l * kvd * C, T, C, kvd, 1);
    norm_bwd(c, dr, s->d_ln, x_in, w->ln1_w + l * C, s->ln1_m + l * s->ls_T,
             s->ln1_r + l * s->ls_T, T);
    if (par)
        for (size_t i = 0; i < TC; i++) dr[i] += s->d_par[i];
#undef STOP_AT
    return 0;
}

int model_backward_to_hook(struct model_state *s, struct model_hook h, const float *dlogits_last,
                           float *dresid_out, struct ev_err *err) {
    const struct model_config  *c = &s->m->cfg;
    const struct model_weights *w = &s->m->w;
    if (!s->grad)
        return ev_fail(err, EV_EFAIL, "backward needs a state made with MODEL_STATE_GRAD");
    if (!s->last_done || s->last_pos != 0)
        return ev_fail(err, EV_EFAIL, "backward needs a completed forward from position 0");
    struct model_edit e = {.hook = h};
    int               rc;
    if ((rc = check_edits(s, &e, 1, err))) return rc;
    int    T = s->last_T, p = hook_point(h), L = c->n_layers;
    size_t C = c->dim;
    float *dr = s->d_res;

    /* unembedding and final norm: only the last row carries gradient */
    memset(s->d_ln, 0, sizeof(float) * T * C);
    memset(dr, 0, sizeof(float) * T * C);
    cblas_sgemv(CblasRowMajor, CblasTrans, c->vocab_size, C, 1.0f, w->wcls, C, dlogits_last, 1,
                0.0f, s->d_ln + (size_t)(T - 1) * C, 1);
    norm_bwd(c, dr, s->d_ln, resid_at(s, L), w->lnf_w, s->lnf_m, s->lnf_r, T);

    for (int l = L - 1; l >= p / NP; l--)
        if (block_backward(s, l, l == p / NP ? p % NP : 0, dresid_out)) return EV_OK;
    memcpy(dresid_out, dr, sizeof(float) * T * C);
    return EV_OK;
}

// ---------------------------------------------------------------------------- loss

int model_loss(struct model_state *s, const int *tokens, int T, const struct model_edit *edits,
               int n_edits, double *loss, float *tok_logprob, struct ev_err *err) {
    int rc;
    if (T < 2) return ev_fail(err, EV_EFAIL, "cross-entropy needs at least 2 tokens (got %d)", T);
    if (s->last_only)
        return ev_fail(err, EV_EFAIL, "cross-entropy needs every position's logits; the state "
                                      "was made with MODEL_STATE_LAST_LOGITS");
    if ((rc = model_forward(s, tokens, 0, T, edits, n_edits, err)) != EV_OK) return rc;
    int    V = s->m->cfg.vocab_size;
    double sum = 0.0;
    for (int t = 0; t + 1 < T; t++) {
        const float *lg = s->logits + (size_t)t * V;
        double       mx = lg[0], z = 0.0;
        for (int i = 1; i < V; i++)
            if (lg[i] > mx) mx = lg[i];
        for (int i = 0; i < V; i++) z += exp((double)lg[i] - mx);
        double lp = (double)lg[tokens[t + 1]] - mx - log(z);
        if (tok_logprob) tok_logprob[t] = (float)lp;
        sum -= lp;
    }
    *loss = sum / (T - 1);
    return EV_OK;
}

// ---------------------------------------------------------------------------- generation

int model_generate(struct model_state *s, struct sampler *smp, const int *prompt, int n_prompt,
                   int max_new, int stop_eos, const struct model_edit *edits, int n_edits,
                   int *out, int *n_out, struct ev_err *err) {
    int rc, V = s->m->cfg.vocab_size;
    int eos = s->m->tok ? tok_eos(s->m->tok) : -1;
    *n_out = 0;
    if (n_prompt < 1) return ev_fail(err, EV_EFAIL, "generation needs at least one prompt token");
    if (max_new < 0 || n_prompt + max_new > s->max_T)
        return ev_fail(err, EV_EFAIL,
                       "prompt of %d tokens + %d new tokens exceeds the context of %d", n_prompt,
                       max_new, s->max_T);
    if (max_new == 0) return EV_OK;
    if ((rc = model_forward(s, prompt, 0, n_prompt, edits, n_edits, err)) != EV_OK) return rc;
    int next = sampler_sample(smp, s->logits + (s->last_only ? 0 : (size_t)(n_prompt - 1) * V));
    for (int i = 0;; i++) {
        out[(*n_out)++] = next;
        if ((stop_eos && next == eos) || *n_out == max_new) break;
        if ((rc = model_forward(s, &next, n_prompt + i, 1, edits, n_edits, err)) != EV_OK)
            return rc;
        next = sampler_sample(smp, s->logits);
    }
    return EV_OK;
}
