/*
 * model — the runtime: model objects (llama2.c .bin checkpoints and random models here,
 * Hugging Face folders in model_hf.c), the forward pass with hook edits and a KV cache, the
 * backward pass to a hook, cross-entropy, and generation. See model.h for the contract;
 * kern.c, kern_arch.c and kern_bf16.c hold the numeric kernels.
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
#include "model/kern_arch.h"
#include "model/kern_bf16.h"
#include "model/modelint.h"
#include "model/safetensors.h"
#include "model/sample.h"

// ---------------------------------------------------------------------------- config, sizes

int model_config_check(const struct model_config *c, const char *what, struct ev_err *err) {
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
    if (c->rot_dims < 0 || c->rot_dims > c->head_dim || c->rot_dims % 2 ||
        (c->rot_dims && c->rope != MODEL_ROPE_HALF))
        return ev_fail(err, EV_EFAIL, "%s: rotary dims %d must be even, at most head_dim %d "
                                      "(rotate_half RoPE only)",
                       what, c->rot_dims, c->head_dim);
    if (c->rope_theta_local != 0.0f && !(c->rope_theta_local > 1.0f))
        return ev_fail(err, EV_EFAIL, "%s: local rope base %g must be > 1", what,
                       (double)c->rope_theta_local);
    if (c->rope_scaling != MODEL_ROPE_SCALING_NONE &&
        (!(c->rope_factor >= 1.0f && c->rope_factor <= 1e4f) ||
         (c->rope_scaling == MODEL_ROPE_SCALING_LLAMA3 &&
          (!(c->rope_low_freq > 0.0f) || !(c->rope_high_freq > c->rope_low_freq) ||
           c->rope_orig_max < 1))))
        return ev_fail(err, EV_EFAIL,
                       "%s: rope_scaling parameters out of range (factor %g in [1, 1e4], "
                       "0 < low_freq_factor %g < high_freq_factor %g, "
                       "original_max_position_embeddings %d >= 1)",
                       what, (double)c->rope_factor, (double)c->rope_low_freq,
                       (double)c->rope_high_freq, c->rope_orig_max);
    if (!(c->emb_scale >= 0.0f && c->emb_scale < 1e4f) ||
        !(c->attn_scale >= 0.0f && c->attn_scale < 1e4f) ||
        !(c->attn_softcap >= 0.0f && c->attn_softcap < 1e6f) ||
        !(c->final_softcap >= 0.0f && c->final_softcap < 1e6f))
        return ev_fail(err, EV_EFAIL, "%s: embedding scale, attention scale or soft-caps out of "
                                      "range",
                       what);
    if (c->sliding_window < 0 || c->sliding_pattern < 0)
        return ev_fail(err, EV_EFAIL, "%s: sliding_window %d / pattern %d must be >= 0", what,
                       c->sliding_window, c->sliding_pattern);
    int gated = c->act == MODEL_ACT_SWIGLU || c->act == MODEL_ACT_GEGLU_TANH;
    if ((int)c->act < 0 || c->act > MODEL_ACT_GELU_ERF || (gated && c->out_bias))
        return ev_fail(err, EV_EFAIL, "%s: MLP biases only with an ungated MLP", what);
    return EV_OK;
}

static int act_gated(const struct model_config *c) {
    return c->act == MODEL_ACT_SWIGLU || c->act == MODEL_ACT_GEGLU_TANH;
}

/* Per-tensor element counts, stacked over layers, in struct model_layer order and the
 * global tensors; 0 for tensors a config does not use. W_MAT_* are the matrices. */
enum { W_TOK, W_CLS, W_WQ, W_WK, W_WV, W_WO, W_W1, W_W2, W_W3, W_N_MAT = W_W3 + 1,
       W_POS = W_N_MAT, W_LNFW, W_LNFB, W_LN1W, W_LN1B, W_BQ, W_BK, W_BV, W_BO, W_QN, W_KN,
       W_APOST, W_LN2W, W_LN2B, W_B1, W_B2, W_MPOST, W_COUNT };

static void weight_sizes(const struct model_config *c, size_t sz[W_COUNT]) {
    size_t C = c->dim, H = c->hidden_dim, L = c->n_layers, V = c->vocab_size, HS = c->head_dim;
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    int    ln = c->norm == MODEL_NORM_LAYER;
    memset(sz, 0, sizeof(size_t) * W_COUNT);
    sz[W_TOK] = V * C;
    sz[W_CLS] = c->tied_embeddings ? 0 : V * C;
    sz[W_WQ] = L * qd * C;
    sz[W_WK] = L * kvd * C;
    sz[W_WV] = L * kvd * C;
    sz[W_WO] = L * C * qd;
    sz[W_W1] = L * H * C;
    sz[W_W2] = L * C * H;
    sz[W_W3] = act_gated(c) ? L * H * C : 0;
    sz[W_POS] = c->rope == MODEL_ROPE_NONE ? (size_t)c->seq_len * C : 0;
    sz[W_LNFW] = C;
    sz[W_LNFB] = ln ? C : 0;
    sz[W_LN1W] = L * C;
    sz[W_LN1B] = ln ? L * C : 0;
    sz[W_BQ] = c->qkv_bias ? L * qd : 0;
    sz[W_BK] = c->qkv_bias ? L * kvd : 0;
    sz[W_BV] = c->qkv_bias ? L * kvd : 0;
    sz[W_BO] = c->out_bias ? L * C : 0;
    sz[W_QN] = c->qk_norm ? L * HS : 0;
    sz[W_KN] = c->qk_norm ? L * HS : 0;
    sz[W_APOST] = c->post_norms ? L * C : 0;
    sz[W_LN2W] = L * C;
    sz[W_LN2B] = ln ? L * C : 0;
    sz[W_B1] = c->out_bias ? L * H : 0;
    sz[W_B2] = c->out_bias ? L * C : 0;
    sz[W_MPOST] = c->post_norms ? L * C : 0;
}

int64_t model_param_count(const struct model_config *c) {
    size_t sz[W_COUNT];
    int64_t n = 0;
    weight_sizes(c, sz);
    for (int i = 0; i < W_COUNT; i++) n += (int64_t)sz[i];
    return n;
}

static size_t dtype_size(enum model_dtype d) { return d == MODEL_DTYPE_F32 ? 4 : 2; }

size_t model_weight_bytes(const struct model_config *c, enum model_dtype d) {
    size_t sz[W_COUNT], n = 0;
    weight_sizes(c, sz);
    for (int i = 0; i < W_COUNT; i++) n += sz[i] * (i < W_N_MAT ? dtype_size(d) : 4);
    return n;
}

const char *model_dtype_name(enum model_dtype d) {
    return d == MODEL_DTYPE_BF16 ? "bf16" : d == MODEL_DTYPE_F16 ? "f16" : "f32";
}

int model_weights_dtype_parse(const char *s, int *flags, struct ev_err *err) {
    if (!strcmp(s, "auto")) *flags = 0;
    else if (!strcmp(s, "f32")) *flags = MODEL_LOAD_F32;
    else if (!strcmp(s, "bf16")) *flags = MODEL_LOAD_BF16;
    else
        return ev_fail(err, EV_EUSAGE, "--weights-dtype %s: expected auto, f32 or bf16", s);
    return EV_OK;
}

// ---------------------------------------------------------------------------- model objects

void model_layers_alloc(struct model *m) {
    m->w.layer = xcalloc((size_t)m->cfg.n_layers, sizeof *m->w.layer);
}

/* A model whose every tensor is float32 in the arena, stacked over layers in weight_sizes'
 * order (llama2.c checkpoints and random models); *stack receives each tensor's start. */
static struct model *model_alloc_f32(const struct model_config *c, float *stack[W_COUNT]) {
    struct model *m = xcalloc(1, sizeof *m);
    size_t        sz[W_COUNT], total = 0;
    m->cfg = *c;
    weight_sizes(c, sz);
    for (int i = 0; i < W_COUNT; i++) total += sz[i];
    m->arena = xmalloc(sizeof(float) * (total ? total : 1));
    m->arena_bytes = sizeof(float) * total;
    float *p = m->arena;
    for (int i = 0; i < W_COUNT; i++) {
        stack[i] = sz[i] ? p : NULL;
        p += sz[i];
    }
    size_t C = c->dim, H = c->hidden_dim, HS = c->head_dim;
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    struct model_weights *w = &m->w;
    model_layers_alloc(m);
#define MAT(ptr) ((struct model_mat){(ptr), MODEL_DTYPE_F32})
#define AT(i, n) (stack[i] ? stack[i] + (size_t)l * (n) : NULL)
    w->tok_emb = MAT(stack[W_TOK]);
    w->wcls = c->tied_embeddings ? w->tok_emb : MAT(stack[W_CLS]);
    w->pos_emb = stack[W_POS];
    w->lnf_w = stack[W_LNFW];
    w->lnf_b = stack[W_LNFB];
    for (int l = 0; l < c->n_layers; l++) {
        struct model_layer *y = &w->layer[l];
        y->wq = MAT(AT(W_WQ, qd * C));
        y->wk = MAT(AT(W_WK, kvd * C));
        y->wv = MAT(AT(W_WV, kvd * C));
        y->wo = MAT(AT(W_WO, C * qd));
        y->w1 = MAT(AT(W_W1, H * C));
        y->w2 = MAT(AT(W_W2, C * H));
        y->w3 = MAT(AT(W_W3, H * C));
        y->ln1_w = AT(W_LN1W, C);
        y->ln1_b = AT(W_LN1B, C);
        y->bq = AT(W_BQ, qd);
        y->bk = AT(W_BK, kvd);
        y->bv = AT(W_BV, kvd);
        y->bo = AT(W_BO, C);
        y->q_norm_w = AT(W_QN, HS);
        y->k_norm_w = AT(W_KN, HS);
        y->attn_post_w = AT(W_APOST, C);
        y->ln2_w = AT(W_LN2W, C);
        y->ln2_b = AT(W_LN2B, C);
        y->b1 = AT(W_B1, H);
        y->b2 = AT(W_B2, C);
        y->mlp_post_w = AT(W_MPOST, C);
    }
#undef AT
#undef MAT
    return m;
}

void model_rope_tables(struct model *m) {
    const struct model_config *c = &m->cfg;
    int rot = c->rot_dims ? c->rot_dims : c->head_dim;
    int need = c->rope == MODEL_ROPE_HALF &&
               (rot != c->head_dim || c->rope_scaling != MODEL_ROPE_SCALING_NONE ||
                c->rope_theta_local != 0.0f);
    if (!need) return;
    m->inv_freq = xmalloc(sizeof(float) * (size_t)(rot / 2));
    kern_rope_inv_freq(m->inv_freq, rot, c->rope_theta, (enum kern_rope_scaling)c->rope_scaling,
                       c->rope_factor, c->rope_low_freq, c->rope_high_freq, c->rope_orig_max);
    if (c->rope_theta_local != 0.0f) {
        m->inv_freq_local = xmalloc(sizeof(float) * (size_t)(rot / 2));
        kern_rope_inv_freq(m->inv_freq_local, rot, c->rope_theta_local,
                           KERN_ROPE_SCALING_NONE, 1.0f, 0.0f, 0.0f, 0);
    }
}

void model_free(struct model *m) {
    if (!m) return;
    free(m->arena);
    for (int i = 0; i < m->n_files; i++) st_close(m->files[i]);
    free(m->files);
    free(m->w.layer);
    free(m->inv_freq);
    free(m->inv_freq_local);
    tok_free(m->tok);
    free(m->path);
    free(m);
}

const struct model_config *model_config(const struct model *m) { return &m->cfg; }
struct model_weights      *model_weights(struct model *m) { return &m->w; }
const struct tok          *model_tokenizer(const struct model *m) { return m->tok; }

int model_vocab_tokens(const struct model *m) {
    int n = m->tok ? tok_vocab_size(m->tok) : m->cfg.vocab_size;
    return n > 0 && n < m->cfg.vocab_size ? n : m->cfg.vocab_size;
}

void model_sampler_init(struct sampler *smp, const struct model *m, float temperature,
                        float top_p, uint64_t seed) {
    sampler_init(smp, m->cfg.vocab_size, temperature, top_p, seed);
    sampler_limit(smp, model_vocab_tokens(m));
}
const char                *model_hash(const struct model *m) { return m->hash; }
const char                *model_path(const struct model *m) { return m->path; }

char *model_config_json(const struct model *m) {
    const struct model_config *c = &m->cfg;
    return xasprintf("{\"model_type\":\"%s\",\"dim\":%d,\"n_layers\":%d,\"vocab_size\":%d,"
                     "\"weights_dtype\":\"%s\"}",
                     c->model_type, c->dim, c->n_layers, c->vocab_size,
                     model_dtype_name(model_weights_dtype(m)));
}

void model_memory(const struct model *m, size_t *arena, size_t *mapped) {
    if (arena) *arena = m->arena_bytes;
    if (mapped) *mapped = m->mapped_bytes;
}

enum model_dtype model_weights_dtype(const struct model *m) {
    size_t by[3] = {0, 0, 0}, sz[W_COUNT];
    weight_sizes(&m->cfg, sz);
    const struct model_weights *w = &m->w;
    size_t L = (size_t)m->cfg.n_layers;
    by[w->tok_emb.dtype] += sz[W_TOK];
    by[w->wcls.dtype] += sz[W_CLS];
    for (size_t l = 0; l < L; l++) {
        const struct model_layer *y = &w->layer[l];
        by[y->wq.dtype] += sz[W_WQ] / L;
        by[y->wk.dtype] += sz[W_WK] / L;
        by[y->wv.dtype] += sz[W_WV] / L;
        by[y->wo.dtype] += sz[W_WO] / L;
        by[y->w1.dtype] += sz[W_W1] / L;
        by[y->w2.dtype] += sz[W_W2] / L;
        by[y->w3.dtype] += sz[W_W3] / L;
    }
    int best = 0;
    for (int i = 1; i < 3; i++)
        if (by[i] > by[best]) best = i;
    return (enum model_dtype)best;
}

static int check_finite_f32(const float *p, size_t n, const char *path, struct ev_err *err) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i]))
            return ev_fail(err, EV_EFAIL,
                           "%s: non-finite weight at float %zu (corrupt checkpoint?)", path, i);
    return EV_OK;
}

struct model_config model_config_gpt2_small(void) {
    struct model_config c = {0};
    c.arch = MODEL_ARCH_GPT2;
    c.rope = MODEL_ROPE_NONE;
    c.norm = MODEL_NORM_LAYER;
    c.act = MODEL_ACT_GELU_TANH;
    c.dim = 768;
    c.hidden_dim = 3072;
    c.n_layers = 12;
    c.n_heads = c.n_kv_heads = 12;
    c.vocab_size = 50257;
    c.seq_len = 1024;
    c.qkv_bias = c.out_bias = c.tied_embeddings = 1;
    return c;
}

int model_new_random(const struct model_config *cfg, uint64_t seed, struct model **out,
                     struct ev_err *err) {
    struct model_config c = *cfg;
    float              *stack[W_COUNT];
    size_t              sz[W_COUNT];
    *out = NULL;
    if (c.head_dim == 0 && c.n_heads > 0) c.head_dim = c.dim / c.n_heads;
    if (c.n_kv_heads == 0) c.n_kv_heads = c.n_heads;
    if (c.norm_eps == 0.0f) c.norm_eps = 1e-5f;
    if (c.rope_theta == 0.0f) c.rope_theta = 10000.0f;
    if (model_config_check(&c, "random model config", err) != EV_OK) return EV_EUSAGE;
    if (!c.model_type[0]) snprintf(c.model_type, sizeof c.model_type, "random");
    struct model *m = model_alloc_f32(&c, stack);
    struct rng    r;
    rng_seed(&r, seed);
    weight_sizes(&c, sz);
    for (int i = 0; i < W_COUNT; i++) {
        float *p = stack[i];
        if (!sz[i]) continue;
        int is_norm_w = i == W_LN1W || i == W_LN2W || i == W_LNFW || i == W_QN || i == W_KN ||
                        i == W_APOST || i == W_MPOST;
        for (size_t j = 0; j < sz[i]; j++)
            p[j] = is_norm_w ? 1.0f + 0.1f * rng_normal(&r) : 0.02f * rng_normal(&r);
    }
    model_rope_tables(m);
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

int model_load_tokenizer(struct model *m, const char *dir, const char *what,
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
        return ev_fail(err, EV_EFAIL, "%s: %zu bytes%s, too short for a llama2.c checkpoint "
                                      "(its header alone is 28 bytes)", what, n,
                       n == 0 ? " (empty)" : "");
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
    int rc = model_config_check(&c, what, err);
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
    float        *stack[W_COUNT];

    if (!(f = fopen(path, "rb"))) {
        rc = ev_fail(err, EV_EFAIL, "cannot open model %s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fileno(f), &st) != 0) {
        rc = ev_fail(err, EV_EFAIL, "cannot read model %s: %s", path, strerror(errno));
        goto out;
    }
    if (fread(hdr, sizeof hdr, 1, f) != 1) {
        rc = ev_fail(err, EV_EFAIL, "%s: %lld bytes%s, too short for a llama2.c checkpoint (its "
                                    "header alone is 28 bytes)", path, (long long)st.st_size,
                     st.st_size == 0 ? " (empty)" : "");
        goto out;
    }
    if ((uint32_t)hdr[0] == 0x616b3432u) {
        rc = ev_fail(err, EV_EFAIL,
                     "%s: llama2.c version-1/2 export (magic ak42) is not supported; "
                     "hint: export with --version 0 (legacy)",
                     path);
        goto out;
    }
    if (flags & MODEL_LOAD_BF16) {
        rc = ev_fail(err, EV_EUSAGE, "%s: a llama2.c checkpoint is float32; --weights-dtype "
                                     "bf16 is for Hugging Face folders",
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
    size_t           need = sizeof hdr + sizeof(float) * ((size_t)model_param_count(&c) + freq);
    if ((size_t)st.st_size != need) {
        rc = ev_fail(err, EV_EFAIL,
                     "%s: %s (%lld bytes; a llama2.c checkpoint with this header has %zu)", path,
                     (size_t)st.st_size < need ? "truncated" : "has trailing bytes",
                     (long long)st.st_size, need);
        goto out;
    }
    m = model_alloc_f32(&c, stack);
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (fread(stack[order[i]], sizeof(float), sz[order[i]], f) != sz[order[i]]) {
            rc = ev_fail(err, EV_EFAIL, "%s: read error", path);
            goto out;
        }
    if (!c.tied_embeddings) {
        if (fseek(f, (long)(sizeof(float) * freq), SEEK_CUR) != 0 ||
            fread(stack[W_CLS], sizeof(float), sz[W_CLS], f) != sz[W_CLS]) {
            rc = ev_fail(err, EV_EFAIL, "%s: read error", path);
            goto out;
        }
    }
    if ((rc = check_finite_f32(m->arena, m->arena_bytes / sizeof(float), path, err)) != EV_OK)
        goto out;
    if ((rc = sha256_file(path, m->hash, err)) != EV_OK) goto out;
    dir = dir_of(path);
    if (!(flags & MODEL_LOAD_NO_TOKENIZER) &&
        (rc = model_load_tokenizer(m, dir, path, err)) != EV_OK)
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

#define MODEL_DEFAULT "evals/models/stories260K/stories260K.bin"

char *model_resolve_path(const char *given) {
    return path_shipped(given, "EVALRUN_MODEL", MODEL_DEFAULT);
}

int model_load(const char *path, struct model **out, struct ev_err *err) {
    return model_load_flags(path, 0, out, err);
}

int model_load_flags(const char *path, int flags, struct model **out, struct ev_err *err) {
    *out = NULL;
    if ((flags & MODEL_LOAD_F32) && (flags & MODEL_LOAD_BF16))
        return ev_fail(err, EV_EUSAGE, "model %s: keep the weights as f32 or as bf16, not both",
                       path);
    if (!path_exists(path)) return ev_fail(err, EV_EFAIL, "model %s: no such file or folder", path);
    if (path_is_dir(path)) {
        char *cfg = path_join(path, "config.json");
        int   has_cfg = path_exists(cfg);
        free(cfg);
        if (has_cfg) return model_load_hf(path, flags, out, err);
        return ev_fail(err, EV_EFAIL,
                       "%s: a model folder needs config.json (Hugging Face); for llama2.c give "
                       "the .bin file",
                       path);
    }
    return load_llama2c(path, flags, out, err);
}

int model_config_from_hf_json(const char *text, size_t n, const char *what,
                              struct model_config *cfg, struct ev_err *err) {
    return model_hf_config_text(text, n, what, cfg, NULL, err);
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
    size_t              ls_TC, ls_TH, ls_Tq, ls_Tkv, ls_T, ls_TNH, ls_TNKV, ls_att;
    float *resid;  /* (L+1 | 1, max_T, C) residual at each index r (grad) or the one stream */
    float *ao;     /* (L | 1, max_T, C) hook_attn_out */
    float *aor;    /* (L | 1, max_T, C) o_proj output before the post-attention norm */
    float *aor_r;  /* (L | 1, max_T) its rstd */
    float *mid;    /* (L | 1, max_T, C) hook_resid_mid */
    float *ln1;    /* (L | 1, max_T, C) normed input of attention */
    float *ln1_m, *ln1_r; /* (L | 1, max_T) mean, rstd */
    float *ln2n;   /* (L | 1, max_T, C) ln2.hook_normalized */
    float *ln2;    /* (L | 1, max_T, C) mlp.hook_in */
    float *ln2_m, *ln2_r;
    float *qr, *kr;   /* (L | 1, max_T, NH*HS | NKV*HS) q, k before their norms (qk_norm) */
    float *qn_r, *kn_r; /* (L | 1, max_T * NH | NKV) their rstd */
    float *q;      /* (L | 1, max_T, NH*HS) after RoPE */
    float *att;    /* (L | 1, NH, max_T, max_T) probabilities */
    float *atty;   /* (L | 1, max_T, NH*HS) attn.hook_z */
    float *h1;     /* (L | 1, max_T, H) gate / fc pre-activation */
    float *h3;     /* (L | 1, max_T, H) up (gated MLPs) */
    float *hact;   /* (L | 1, max_T, H) mlp.hook_post */
    float *mor;    /* (L | 1, max_T, C) down output before the post-feedforward norm */
    float *mor_r;  /* (L | 1, max_T) its rstd */
    float *mo;     /* (L | 1, max_T, C) hook_mlp_out */
    float *kc, *vc; /* (L, max_T, NKV*HS) KV cache (keys after RoPE) */
    float *ones;   /* (C) all 1: the norms' unit weight (normalisation without its scale) */
    float *lp;     /* BF16/F16 products' scratch (kern_lp_scratch_floats) */
    float *lnf, *lnf_m, *lnf_r; /* (max_T, C), (max_T), (max_T) */
    float *logits; /* (max_T, V) */
    /* backward scratch (grad only) */
    float *d_res, *d_ln, *d_tmp, *d_h1, *d_h3, *d_hact, *d_q, *d_k, *d_v, *d_qn, *d_kn, *d_atty;
    float *d_scr, *d_par, *d_logit;
    /* what the last forward did */
    int last_pos, last_T, last_done;
    int seq_T; /* model_forward_to_hook_batch: rows are sequences of seq_T tokens; else 0 */
};

struct state_buf {
    float **p;
    size_t  n; /* floats */
};

static int max3(int a, int b, int c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

/* Every buffer of a state of config c (s->... pointers when s is not NULL) and its size:
 * the one list that model_state_new allocates and model_state_bytes counts. */
static int state_layout(const struct model_config *c, int max_T, int flags, struct model_state *s,
                        struct state_buf b[64]) {
    size_t T = max_T, C = c->dim, H = c->hidden_dim, V = c->vocab_size, L = c->n_layers;
    size_t NH = c->n_heads, NKV = c->n_kv_heads;
    size_t qd = NH * c->head_dim, kvd = NKV * c->head_dim;
    int    grad = (flags & MODEL_STATE_GRAD) != 0, last = (flags & MODEL_STATE_LAST_LOGITS) != 0;
    size_t nl = grad ? L : 1, qk = c->qk_norm ? nl : 0, pn = c->post_norms ? nl : 0;
    int    n = 0;
    static float *dummy[64];
#define B(field, count) (b[n] = (struct state_buf){s ? &s->field : &dummy[n], (count)}, n++)
    B(resid, (grad ? L + 1 : 1) * T * C);
    B(ao, nl * T * C);
    B(aor, pn * T * C);
    B(aor_r, pn * T);
    B(mid, nl * T * C);
    B(ln1, nl * T * C);
    B(ln2n, nl * T * C);
    B(ln2, nl * T * C);
    B(ln1_m, nl * T);
    B(ln1_r, nl * T);
    B(ln2_m, nl * T);
    B(ln2_r, nl * T);
    B(qr, qk * T * qd);
    B(kr, qk * T * kvd);
    B(qn_r, qk * T * NH);
    B(kn_r, qk * T * NKV);
    B(q, nl * T * qd);
    B(att, nl * NH * T * T);
    B(atty, nl * T * qd);
    B(h1, nl * T * H);
    B(h3, nl * T * H);
    B(hact, nl * T * H);
    B(mor, pn * T * C);
    B(mor_r, pn * T);
    B(mo, nl * T * C);
    B(kc, L * T * kvd);
    B(vc, L * T * kvd);
    B(ones, C);
    B(lp, kern_lp_scratch_floats(max3(c->dim, c->hidden_dim, (int)qd)));
    B(lnf, T * C);
    B(lnf_m, T);
    B(lnf_r, T);
    B(logits, (last ? 1 : T) * V);
    if (grad) {
        B(d_res, T * C);
        B(d_ln, T * C);
        B(d_tmp, T * C);
        B(d_par, T * C);
        B(d_h1, T * H);
        B(d_h3, T * H);
        B(d_hact, T * H);
        B(d_q, T * qd);
        B(d_k, T * kvd);
        B(d_v, T * kvd);
        B(d_qn, c->qk_norm ? T * qd : 0);
        B(d_kn, c->qk_norm ? T * kvd : 0);
        B(d_atty, T * qd);
        B(d_scr, 2 * T * T);
        B(d_logit, V);
    }
#undef B
    return n;
}

size_t model_state_bytes(const struct model_config *c, int max_T, int flags) {
    struct state_buf b[64];
    int              n = state_layout(c, max_T ? max_T : c->seq_len, flags, NULL, b);
    size_t           total = 0;
    for (int i = 0; i < n; i++) total += b[i].n * sizeof(float);
    return total;
}

int model_state_new(const struct model *m, int max_T, int flags, struct model_state **out,
                    struct ev_err *err) {
    const struct model_config *c = &m->cfg;
    *out = NULL;
    if (max_T == 0) max_T = c->seq_len;
    if (max_T < 1 || max_T > c->seq_len)
        return ev_fail(err, EV_EUSAGE, "state size %d outside [1, %d] (the model's context)",
                       max_T, c->seq_len);
    struct model_state *s = xcalloc(1, sizeof *s);
    size_t T = max_T, C = c->dim, H = c->hidden_dim;
    size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    s->m = m;
    s->max_T = max_T;
    s->grad = (flags & MODEL_STATE_GRAD) != 0;
    s->last_only = (flags & MODEL_STATE_LAST_LOGITS) != 0;
    s->ls_TC = s->grad ? T * C : 0;
    s->ls_TH = s->grad ? T * H : 0;
    s->ls_Tq = s->grad ? T * qd : 0;
    s->ls_Tkv = s->grad ? T * kvd : 0;
    s->ls_T = s->grad ? T : 0;
    s->ls_TNH = s->grad ? T * c->n_heads : 0;
    s->ls_TNKV = s->grad ? T * c->n_kv_heads : 0;
    s->ls_att = s->grad ? (size_t)c->n_heads * T * T : 0;
    struct state_buf b[64];
    int              n = state_layout(c, max_T, flags, s, b);
    for (int i = 0; i < n; i++) *b[i].p = b[i].n ? xcalloc(b[i].n, sizeof(float)) : NULL;
    for (size_t i = 0; i < C; i++) s->ones[i] = 1.0f;
    *out = s;
    return EV_OK;
}

void model_state_free(struct model_state *s) {
    if (!s) return;
    struct state_buf b[64];
    int n = state_layout(&s->m->cfg, s->max_T, (s->grad ? MODEL_STATE_GRAD : 0) |
                                                   (s->last_only ? MODEL_STATE_LAST_LOGITS : 0),
                         s, b);
    for (int i = 0; i < n; i++) free(*b[i].p);
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

static enum kern_wtype wtype(const struct model_mat *w) {
    return w->dtype == MODEL_DTYPE_BF16 ? KERN_W_BF16 : KERN_W_F16;
}

/* out (n, d_out) = inp (n, d_in) . W^T + b, W in its kept dtype */
static void mm(float *out, const float *inp, const struct model_mat *w, const float *b, int n,
               int d_in, int d_out, float *lp) {
    if (w->dtype == MODEL_DTYPE_F32) kern_matmul(out, inp, w->data, b, n, d_in, d_out);
    else kern_matmul_lp(out, inp, w->data, wtype(w), b, n, d_in, d_out, lp);
}

/* dinp (n, d_in) (+)= dout (n, d_out) . W */
static void mm_bwd(float *dinp, const float *dout, const struct model_mat *w, int n, int d_in,
                   int d_out, int acc, float *lp) {
    if (w->dtype == MODEL_DTYPE_F32) kern_matmul_backward(dinp, dout, w->data, n, d_in, d_out, acc);
    else kern_matmul_lp_backward(dinp, dout, w->data, wtype(w), n, d_in, d_out, acc, lp);
}

/* Local (sliding-window) layers: Gemma's pattern. */
static int layer_local(const struct model_config *c, int l) {
    return c->sliding_window > 0 && (c->sliding_pattern == 0 || (l + 1) % c->sliding_pattern != 0);
}

/* RoPE on rows of x (T, stride) for layer l: the frequency table when the config needs one
 * (partial dims, scaling, local bases), else kern_rope (llama2.c run.c's angles). */
static void rope_apply(const struct model *m, int l, float *x, int T, int stride, int pos,
                       int n_heads, int inverse) {
    const struct model_config *c = &m->cfg;
    if (c->rope == MODEL_ROPE_NONE) return;
    if (m->inv_freq) {
        const float *f = layer_local(c, l) && m->inv_freq_local ? m->inv_freq_local : m->inv_freq;
        kern_rope_table(x, T, stride, pos, n_heads, c->head_dim,
                        c->rot_dims ? c->rot_dims : c->head_dim, f, inverse);
    } else {
        kern_rope(x, T, stride, pos, n_heads, c->head_dim, c->rope_theta,
                  c->rope == MODEL_ROPE_HALF, inverse);
    }
}

/* Attention options of layer l; returns 0 when kern_attention's defaults apply. */
static int attn_opts(const struct model_config *c, int l, struct kern_attn_opts *o) {
    o->scale = c->attn_scale > 0.0f ? c->attn_scale : 1.0f / sqrtf((float)c->head_dim);
    o->softcap = c->attn_softcap;
    o->window = layer_local(c, l) ? c->sliding_window : 0;
    return c->attn_scale > 0.0f || o->softcap > 0.0f || o->window > 0;
}

/*
 * One stage of block l: from the activation at point k (edits already applied) to the one at
 * point k + 1, for rows [0, T) at positions pos..pos+T-1. A parallel block (GPT-NeoX) has no
 * resid_mid: its MLP normalises resid_pre, and its output adds both branches to resid_pre.
 * The arithmetic is the fused block's, split at the hooks: w * (r * x) for RMSNorm, so that
 * reading and writing back a hook changes no bit.
 */
static void stage_forward(struct model_state *s, int l, int k, int pos, int T) {
    const struct model_config *c = &s->m->cfg;
    const struct model_layer  *y = &s->m->w.layer[l];
    size_t C = c->dim, H = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads;
    size_t HS = c->head_dim, qd = NH * HS, kvd = NKV * HS, mT = s->max_T, TC = (size_t)T * C;
    int    par = c->parallel_residual;
    float *x_in = resid_at(s, l), *x_out = resid_at(s, l + 1);
    float *ao = s->ao + l * s->ls_TC, *mid = s->mid + l * s->ls_TC, *mo = s->mo + l * s->ls_TC;
    float *ln1 = s->ln1 + l * s->ls_TC, *ln2n = s->ln2n + l * s->ls_TC, *ln2 = s->ln2 + l * s->ls_TC;
    float *ln1_m = s->ln1_m + l * s->ls_T, *ln1_r = s->ln1_r + l * s->ls_T;
    float *ln2_m = s->ln2_m + l * s->ls_T, *ln2_r = s->ln2_r + l * s->ls_T;
    float *q = s->q + l * s->ls_Tq, *atty = s->atty + l * s->ls_Tq, *att = s->att + l * s->ls_att;
    float *h1 = s->h1 + l * s->ls_TH, *h3 = s->h3 + l * s->ls_TH, *hact = s->hact + l * s->ls_TH;
    float *kc = s->kc + (size_t)l * mT * kvd, *vc = s->vc + (size_t)l * mT * kvd;
    float *k_new = kc + (size_t)pos * kvd, *v_new = vc + (size_t)pos * kvd;
    struct kern_attn_opts o;
    switch (k) {
    case MODEL_HOOK_RESID_PRE:
        norm_fwd(c, ln1, ln1_m, ln1_r, x_in, y->ln1_w, y->ln1_b, T);
        if (c->qk_norm) {
            float *qr = s->qr + l * s->ls_Tq, *kr = s->kr + l * s->ls_Tkv;
            mm(qr, ln1, &y->wq, y->bq, T, C, qd, s->lp);
            mm(kr, ln1, &y->wk, y->bk, T, C, kvd, s->lp);
            kern_rmsnorm(q, s->qn_r + l * s->ls_TNH, qr, y->q_norm_w, T * (int)NH, HS,
                         c->norm_eps);
            kern_rmsnorm(k_new, s->kn_r + l * s->ls_TNKV, kr, y->k_norm_w, T * (int)NKV, HS,
                         c->norm_eps);
        } else {
            mm(q, ln1, &y->wq, y->bq, T, C, qd, s->lp);
            mm(k_new, ln1, &y->wk, y->bk, T, C, kvd, s->lp);
        }
        mm(v_new, ln1, &y->wv, y->bv, T, C, kvd, s->lp);
        /* att rows are (NH, T, pos+T) packed with stride pos+T; grad runs have pos == 0. A
         * batch (seq_T, pos 0) is one such block per sequence, its keys at its own rows. */
        for (int r0 = 0, Ts = s->seq_T ? s->seq_T : T; r0 < T; r0 += Ts) {
            float *q_b = q + r0 * qd, *k_b = k_new + r0 * kvd, *y_b = atty + r0 * qd;
            float *kc_b = kc + r0 * kvd, *vc_b = vc + r0 * kvd;
            float *a_b = att + (size_t)(r0 / Ts) * NH * Ts * (pos + Ts);
            rope_apply(s->m, l, q_b, Ts, qd, pos, NH, 0);
            rope_apply(s->m, l, k_b, Ts, kvd, pos, NKV, 0);
            if (attn_opts(c, l, &o))
                kern_attention_ex(y_b, a_b, q_b, kc_b, vc_b, Ts, pos, NH, NKV, HS, pos + Ts, &o);
            else
                kern_attention(y_b, a_b, q_b, kc_b, vc_b, Ts, pos, NH, NKV, HS, pos + Ts);
        }
        break;
    case MODEL_HOOK_ATTN_Z:
        if (c->post_norms) {
            float *aor = s->aor + l * s->ls_TC;
            mm(aor, atty, &y->wo, y->bo, T, qd, C, s->lp);
            kern_rmsnorm(ao, s->aor_r + l * s->ls_T, aor, y->attn_post_w, T, C, c->norm_eps);
        } else {
            mm(ao, atty, &y->wo, y->bo, T, qd, C, s->lp);
        }
        break;
    case MODEL_HOOK_ATTN_OUT:
        if (!par)
            for (size_t i = 0; i < TC; i++) mid[i] = x_in[i] + ao[i];
        break;
    case MODEL_HOOK_RESID_MID:
        norm_fwd(c, ln2n, ln2_m, ln2_r, par ? x_in : mid, s->ones, NULL, T);
        break;
    case MODEL_HOOK_LN2_NORMALIZED: {
        const float *g = y->ln2_w, *b = y->ln2_b;
        for (int t = 0; t < T; t++)
            for (size_t i = 0; i < C; i++)
                ln2[t * C + i] = b ? ln2n[t * C + i] * g[i] + b[i] : g[i] * ln2n[t * C + i];
        break;
    }
    case MODEL_HOOK_MLP_IN:
        mm(h1, ln2, &y->w1, y->b1, T, C, H, s->lp);
        switch (c->act) {
        case MODEL_ACT_SWIGLU:
            mm(h3, ln2, &y->w3, NULL, T, C, H, s->lp);
            kern_swiglu(hact, h1, h3, (size_t)T * H);
            break;
        case MODEL_ACT_GEGLU_TANH:
            mm(h3, ln2, &y->w3, NULL, T, C, H, s->lp);
            kern_geglu(hact, h1, h3, (size_t)T * H);
            break;
        case MODEL_ACT_GELU_ERF: kern_gelu_erf(hact, h1, (size_t)T * H); break;
        default: kern_gelu(hact, h1, (size_t)T * H); break;
        }
        break;
    case MODEL_HOOK_MLP_POST:
        if (c->post_norms) {
            float *mor = s->mor + l * s->ls_TC;
            mm(mor, hact, &y->w2, y->b2, T, H, C, s->lp);
            kern_rmsnorm(mo, s->mor_r + l * s->ls_T, mor, y->mlp_post_w, T, C, c->norm_eps);
        } else {
            mm(mo, hact, &y->w2, y->b2, T, H, C, s->lp);
        }
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
    int rows = s->last_only ? 1 : T;
    mm(s->logits, s->lnf + (size_t)(T - rows) * c->dim, &w->wcls, NULL, rows, c->dim,
       c->vocab_size, s->lp);
    if (c->final_softcap > 0.0f)
        kern_softcap(s->logits, (size_t)rows * c->vocab_size, c->final_softcap);
}

void model_unembed(const struct model *m, const float *x, int n, float *out) {
    const struct model_config *c = &m->cfg;
    float *lp = xmalloc(sizeof(float) * kern_lp_scratch_floats(c->dim));
    mm(out, x, &m->w.wcls, NULL, n, c->dim, c->vocab_size, lp);
    free(lp);
}
void model_attn_project(const struct model *m, int layer, const float *z, int n, float *out) {
    const struct model_config *c = &m->cfg;
    int   in = c->n_heads * c->head_dim;
    float *lp = xmalloc(sizeof(float) * kern_lp_scratch_floats(in));
    mm(out, z, &m->w.layer[layer].wo, NULL, n, in, c->dim, lp);
    free(lp);
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
    const struct model_mat    *e = &s->m->w.tok_emb;
    size_t                     C = c->dim;
    float                     *x = resid_at(s, 0);
    for (int t = 0; t < T; t++) {
        float *x_t = x + t * C;
        size_t row = (size_t)tokens[t] * C;
        if (e->dtype == MODEL_DTYPE_F32) {
            memcpy(x_t, (const float *)e->data + row, sizeof(float) * C);
        } else {
            const uint16_t *h = (const uint16_t *)e->data + row;
            for (size_t i = 0; i < C; i++)
                x_t[i] = e->dtype == MODEL_DTYPE_BF16 ? kern_bf16_to_f32(h[i])
                                                      : kern_f16_to_f32(h[i]);
        }
        if (c->emb_scale > 0.0f)
            for (size_t i = 0; i < C; i++) x_t[i] *= c->emb_scale;
        if (s->m->w.pos_emb) {
            const float *p = s->m->w.pos_emb + (size_t)(pos + (s->seq_T ? t % s->seq_T : t)) * C;
            for (size_t i = 0; i < C; i++) x_t[i] += p[i];
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

int model_forward_to_hook_batch(struct model_state *s, const int *tokens, int n_seq, int T,
                                struct model_hook h, float *resid_out, struct ev_err *err) {
    if (n_seq < 1 || T < 1 || (int64_t)n_seq * T > s->max_T)
        return ev_fail(err, EV_EFAIL,
                       "a batch of %d sequences of %d tokens does not fit the state's %d "
                       "positions", n_seq, T, s->max_T);
    s->seq_T = T;
    int rc = model_forward_to_hook(s, tokens, 0, n_seq * T, h, resid_out, err);
    s->seq_T = 0;
    s->last_done = 0;
    s->last_T = 0; /* nothing continues from a batch */
    return rc;
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

/* dx (rows, C) = d/dx of y = rmsnorm(x) * w given dy, zeroing dx first. */
static void rms_bwd_into(float *dx, const float *dy, const float *x, const float *w,
                         const float *rstd, int rows, int C) {
    memset(dx, 0, sizeof(float) * (size_t)rows * C);
    kern_rmsnorm_backward(dx, dy, x, w, rstd, rows, C);
}

/*
 * Back through block l. On entry s->d_res = d f / d resid_post(l). When k_stop names a point
 * inside the block (k_stop > 0), the gradient at it is copied to out (its width) and the
 * function returns 1; otherwise s->d_res = d f / d resid_pre(l) on return (0). The gradient at
 * a point is that of f with everything after the point recomputed from it and everything
 * before held fixed (the skip connections carry the rest).
 */
static int block_backward(struct model_state *s, int l, int k_stop, float *out) {
    const struct model_config *c = &s->m->cfg;
    const struct model_layer  *y = &s->m->w.layer[l];
    int    T = s->last_T, par = c->parallel_residual;
    size_t C = c->dim, H = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HS = c->head_dim;
    size_t qd = NH * HS, kvd = NKV * HS, mT = s->max_T, TC = (size_t)T * C;
    float *dr = s->d_res, *lp = s->lp;
    const float *x_in = resid_at(s, l);
    const float *mid = s->mid + l * s->ls_TC;
    const float *h1 = s->h1 + l * s->ls_TH, *h3 = s->h3 + l * s->ls_TH;
    const float *q = s->q + l * s->ls_Tq, *att = s->att + l * s->ls_att;
    const float *kc = s->kc + (size_t)l * mT * kvd, *vc = s->vc + (size_t)l * mT * kvd;
    const float *d_mo = dr, *d_ao;
    struct kern_attn_opts o;
#define STOP_AT(kind, buf, n)                                                                  \
    do {                                                                                       \
        if (k_stop == (kind)) {                                                                \
            memcpy(out, buf, sizeof(float) * (size_t)T * (n));                                 \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)
    /* MLP: resid_post = (mid | resid_pre + attn_out) + mlp_out */
    STOP_AT(MODEL_HOOK_MLP_OUT, dr, C);
    if (c->post_norms) {
        rms_bwd_into(s->d_tmp, dr, s->mor + l * s->ls_TC, y->mlp_post_w, s->mor_r + l * s->ls_T,
                     T, (int)C);
        d_mo = s->d_tmp;
    }
    mm_bwd(s->d_hact, d_mo, &y->w2, T, H, C, 0, lp);
    STOP_AT(MODEL_HOOK_MLP_POST, s->d_hact, H);
    switch (c->act) {
    case MODEL_ACT_SWIGLU:
    case MODEL_ACT_GEGLU_TANH:
        if (c->act == MODEL_ACT_SWIGLU)
            kern_swiglu_backward(s->d_h1, s->d_h3, s->d_hact, h1, h3, (size_t)T * H);
        else
            kern_geglu_backward(s->d_h1, s->d_h3, s->d_hact, h1, h3, (size_t)T * H);
        mm_bwd(s->d_ln, s->d_h1, &y->w1, T, C, H, 0, lp);
        mm_bwd(s->d_ln, s->d_h3, &y->w3, T, C, H, 1, lp);
        break;
    case MODEL_ACT_GELU_ERF:
        kern_gelu_erf_backward(s->d_h1, s->d_hact, h1, (size_t)T * H);
        mm_bwd(s->d_ln, s->d_h1, &y->w1, T, C, H, 0, lp);
        break;
    default:
        kern_gelu_backward(s->d_h1, s->d_hact, h1, (size_t)T * H);
        mm_bwd(s->d_ln, s->d_h1, &y->w1, T, C, H, 0, lp);
        break;
    }
    STOP_AT(MODEL_HOOK_MLP_IN, s->d_ln, C);
    for (int t = 0; t < T; t++)
        for (size_t i = 0; i < C; i++) s->d_ln[t * C + i] *= y->ln2_w[i];
    STOP_AT(MODEL_HOOK_LN2_NORMALIZED, s->d_ln, C);
    if (par) {
        memset(s->d_par, 0, sizeof(float) * TC);
        norm_bwd(c, s->d_par, s->d_ln, x_in, s->ones, s->ln2_m + l * s->ls_T,
                 s->ln2_r + l * s->ls_T, T);
    } else {
        norm_bwd(c, dr, s->d_ln, mid, s->ones, s->ln2_m + l * s->ls_T, s->ln2_r + l * s->ls_T, T);
        STOP_AT(MODEL_HOOK_RESID_MID, dr, C);
    }
    /* attention: attn_out = [post-norm] (Wo z + bo); resid_mid = resid_pre + attn_out */
    STOP_AT(MODEL_HOOK_ATTN_OUT, dr, C);
    d_ao = dr;
    if (c->post_norms) {
        rms_bwd_into(s->d_tmp, dr, s->aor + l * s->ls_TC, y->attn_post_w, s->aor_r + l * s->ls_T,
                     T, (int)C);
        d_ao = s->d_tmp;
    }
    mm_bwd(s->d_atty, d_ao, &y->wo, T, qd, C, 0, lp);
    STOP_AT(MODEL_HOOK_ATTN_Z, s->d_atty, qd);
    if (attn_opts(c, l, &o))
        kern_attention_ex_backward(s->d_q, s->d_k, s->d_v, s->d_atty, att, q, kc, vc, T, NH, NKV,
                                   HS, T, &o, s->d_scr);
    else
        kern_attention_backward(s->d_q, s->d_k, s->d_v, s->d_atty, att, q, kc, vc, T, NH, NKV,
                                HS, T, s->d_scr);
    rope_apply(s->m, l, s->d_q, T, qd, 0, NH, 1);
    rope_apply(s->m, l, s->d_k, T, kvd, 0, NKV, 1);
    const float *dq = s->d_q, *dk = s->d_k;
    if (c->qk_norm) {
        rms_bwd_into(s->d_qn, s->d_q, s->qr + l * s->ls_Tq, y->q_norm_w, s->qn_r + l * s->ls_TNH,
                     T * (int)NH, (int)HS);
        rms_bwd_into(s->d_kn, s->d_k, s->kr + l * s->ls_Tkv, y->k_norm_w,
                     s->kn_r + l * s->ls_TNKV, T * (int)NKV, (int)HS);
        dq = s->d_qn;
        dk = s->d_kn;
    }
    mm_bwd(s->d_ln, dq, &y->wq, T, C, qd, 0, lp);
    mm_bwd(s->d_ln, dk, &y->wk, T, C, kvd, 1, lp);
    mm_bwd(s->d_ln, s->d_v, &y->wv, T, C, kvd, 1, lp);
    norm_bwd(c, dr, s->d_ln, x_in, y->ln1_w, s->ln1_m + l * s->ls_T, s->ln1_r + l * s->ls_T, T);
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
    int    T = s->last_T, p = hook_point(h), L = c->n_layers, V = c->vocab_size;
    size_t C = c->dim;
    float *dr = s->d_res;
    const float *g = dlogits_last;

    /* soft-capped logits: d raw = d capped * (1 - (capped / cap)^2) */
    if (c->final_softcap > 0.0f) {
        memcpy(s->d_logit, dlogits_last, sizeof(float) * V);
        kern_softcap_backward(s->d_logit, s->logits + (s->last_only ? 0 : (size_t)(T - 1) * V),
                              (size_t)V, c->final_softcap);
        g = s->d_logit;
    }
    /* unembedding and final norm: only the last row carries gradient */
    memset(s->d_ln, 0, sizeof(float) * T * C);
    memset(dr, 0, sizeof(float) * T * C);
    mm_bwd(s->d_ln + (size_t)(T - 1) * C, g, &w->wcls, 1, C, V, 0, s->lp);
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
            if ((double)lg[i] > mx) mx = (double)lg[i];
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
    if (smp->V != V || smp->n_ids > model_vocab_tokens(s->m))
        return ev_fail(err, EV_EFAIL,
                       "the sampler takes rows of %d logits and ids below %d, the model has %d "
                       "logits of which %d are tokens (model_sampler_init)",
                       smp->V, smp->n_ids, V, model_vocab_tokens(s->m));
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
