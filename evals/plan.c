/*
 * plan — estimates of a heavy command's memory, disk and time on this machine. See plan.h.
 */
#include "evals/plan.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "sae/sae.h"

const char *plan_bytes(double b, char *buf, size_t n) {
    static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int                i = 0;
    while (b >= 1024.0 && i < 5) {
        b /= 1024.0;
        i++;
    }
    snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
    return buf;
}

/* MemAvailable from /proc/meminfo in bytes, -1 when it cannot be read. */
static int64_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char  line[256];
    long long kb = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : (int64_t)kb * 1024;
}

/* Free space for an unprivileged writer on the file system of dir (or of the nearest
 * existing parent), -1 when unknown. */
static int64_t disk_available(const char *dir) {
    char *p = xstrdup(dir && *dir ? dir : ".");
    int64_t r = -1;
    for (;;) {
        struct statvfs sv;
        if (statvfs(p, &sv) == 0) {
            r = (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
            break;
        }
        char *slash = strrchr(p, '/');
        if (!slash) {
            if (strcmp(p, ".") == 0) break;
            free(p);
            p = xstrdup(".");
            continue;
        }
        if (slash == p) {
            p[1] = 0;
            if (statvfs(p, &sv) == 0) r = (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
            break;
        }
        *slash = 0;
    }
    free(p);
    return r;
}

/* This machine's float32 matrix-product rate (OpenBLAS, its threads): the best of a few
 * 384^3 sgemm calls, about 10 ms in all. */
static double measure_gflops(void) {
    const int n = 384;
    float    *a = xcalloc((size_t)n * n, sizeof(float)), *b = xcalloc((size_t)n * n, sizeof(float));
    float    *c = xcalloc((size_t)n * n, sizeof(float));
    for (int i = 0; i < n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.01f;
    double best = 1e30;
    for (int r = 0; r < 4; r++) {
        double t0 = now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                    n);
        double dt = now_seconds() - t0;
        if (dt < best) best = dt;
    }
    free(a), free(b), free(c);
    return best > 0 ? 2.0 * n * n * n / best / 1e9 : 1.0;
}

/* The width of the activation at a TransformerLens hook name (plan.c reads configs only). */
static size_t hook_width(const struct model_config *c, const char *hook) {
    size_t n = strlen(hook);
    if (n >= 11 && !strcmp(hook + n - 11, "attn.hook_z")) return (size_t)c->n_heads * c->head_dim;
    if (n >= 13 && !strcmp(hook + n - 13, "mlp.hook_post")) return (size_t)c->hidden_dim;
    return (size_t)c->dim;
}

/* The bytes of the regular files directly in dir. */
static size_t dir_bytes(const char *dir) {
    DIR          *d = opendir(dir);
    struct dirent *e;
    size_t        total = 0;
    if (!d) return 0;
    while ((e = readdir(d))) {
        char       *p = path_join(dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) total += (size_t)st.st_size;
        free(p);
    }
    closedir(d);
    return total;
}

/* The SAE's size from its folder: from cfg.json's d_in x d_sae when it parses, else the sum
 * of the folder's files (another format). */
static int sae_bytes(const char *dir, size_t *out, int *d_in, int *d_sae, char hook[128],
                     struct ev_err *err) {
    char  *cp = path_join(dir, "cfg.json"), *text = NULL;
    size_t n = 0;
    int    rc = EV_OK;
    *out = 0;
    *d_in = *d_sae = 0;
    if (path_exists(cp)) {
        struct sae_config c;
        struct ev_err     e2 = {{0}};
        if ((rc = file_read_all(cp, &text, &n, err)) != EV_OK) goto out;
        if (sae_parse_config(text, n, cp, &c, &e2) == EV_OK) {
            *d_in = c.d_in;
            *d_sae = c.d_sae;
            snprintf(hook, 128, "%s", c.hook_name);
            *out = ((size_t)2 * c.d_in * c.d_sae + 2 * (size_t)c.d_sae + c.d_in) * sizeof(float);
            goto out;
        }
    }
    if (!path_is_dir(dir)) {
        if (path_exists(dir))
            rc = ev_fail(err, EV_EFAIL, "SAE %s is a file, expected an SAE folder (every "
                                        "supported layout is one: cfg.json with "
                                        "sae_weights.safetensors, sae.safetensors or "
                                        "params.safetensors; docs/sae.md): give its folder",
                         dir);
        else
            rc = ev_fail(err, EV_EFAIL, "SAE %s: no such folder", dir);
        goto out;
    }
    *out = dir_bytes(dir);
out:
    free(cp);
    free(text);
    return rc;
}

int plan_estimate(const struct plan_job *j, struct plan *p, struct ev_err *err) {
    char            *mpath = model_resolve_path(j->model_path);
    enum model_dtype stored = MODEL_DTYPE_F32;
    int              rc;
    memset(p, 0, sizeof *p);
    rc = model_config_read(mpath, &p->cfg, &stored, &p->has_weights, err);
    free(mpath);
    if (rc != EV_OK) return rc;
    const struct model_config *c = &p->cfg;
    p->params = model_param_count(c);
    p->dtype = j->model_flags & MODEL_LOAD_F32    ? MODEL_DTYPE_F32
               : j->model_flags & MODEL_LOAD_BF16 ? MODEL_DTYPE_BF16
                                                  : stored;
    /* heap: the vectors, and the matrices the loader rearranges or converts (GPT-2's Conv1D
     * and fused q/k/v, GPT-NeoX's q/k/v, any dtype change, llama2.c's whole file); the rest
     * stays in the mapping. Matrix elements from model_weight_bytes: F32 - BF16 = 2 each. */
    size_t m_el = (model_weight_bytes(c, MODEL_DTYPE_F32) - model_weight_bytes(c, MODEL_DTYPE_BF16)) / 2;
    size_t v_el = (size_t)p->params - m_el, ds = p->dtype == MODEL_DTYPE_F32 ? 4 : 2;
    size_t C = c->dim, L = c->n_layers, V = c->vocab_size;
    size_t mat_bytes = m_el * ds, moved = 0;
    if (!strcmp(c->model_type, "llama2c") || !strcmp(c->model_type, "random") ||
        p->dtype != stored)
        moved = mat_bytes;
    else if (c->arch == MODEL_ARCH_GPT2)
        moved = mat_bytes - V * C * ds;
    else if (c->arch == MODEL_ARCH_GPT_NEOX)
        moved = L * 3 * C * C * ds;
    p->weights_heap = v_el * 4 + moved;
    p->weights_mapped = mat_bytes - moved;
    int ctx = j->ctx > 0 ? j->ctx : (c->seq_len < 128 ? c->seq_len : 128);
    if (ctx > c->seq_len) ctx = c->seq_len;
    p->state = model_state_bytes(c, ctx, j->state_flags);
    int  d_in = 0, d_sae = 0;
    char sae_hook[128] = "";
    if (j->sae_path &&
        (rc = sae_bytes(j->sae_path, &p->sae, &d_in, &d_sae, sae_hook, err)) != EV_OK)
        return rc;
    if (j->d_sae > 0) { /* trained here: parameters, gradients, two Adam moments */
        d_in = c->dim;
        d_sae = j->d_sae;
        p->sae = ((size_t)2 * d_in * d_sae + 2 * (size_t)d_sae + d_in) * sizeof(float) *
                 (j->sae_train ? 4 : 1);
    }
    int64_t tokens = j->tokens > 0 ? j->tokens : 0;
    p->work = (size_t)(j->work_bytes > 0 ? j->work_bytes : 0) + (size_t)tokens * sizeof(int) +
              (size_t)(j->logit_rows > 0 ? j->logit_rows : 0) * V * sizeof(float) +
              (size_t)ctx * (d_sae > 0 ? d_sae : 0) * sizeof(float) +
              (size_t)(j->batch > 0 ? j->batch : 0) * (C + 3 * (size_t)d_sae) * sizeof(float);
    if (j->mem_hook) p->work += (size_t)tokens * hook_width(c, j->mem_hook) * sizeof(float);
    if (j->sae_acts_held)
        p->work += (size_t)tokens * (d_in > 0 ? (size_t)d_in : hook_width(c, sae_hook)) *
                   sizeof(float);
    p->mem_total = p->weights_heap + p->weights_mapped + p->state + p->sae + p->work;
    p->disk = (size_t)(j->disk_bytes > 0 ? j->disk_bytes : 0);
    if (j->cache_hook) /* float32 activations + int32 token ids */
        p->disk += (size_t)tokens * (hook_width(c, j->cache_hook) * sizeof(float) + sizeof(int));
    if (j->index_rows > 0 && d_sae > 0) /* token id + activation per window position */
        p->disk += (size_t)d_sae * j->index_rows * (2 * (size_t)j->index_window + 1) * 8;
    /* FLOPs per token: the matrices (2 per weight; the embedding is a lookup, the unembedding
     * a product), attention over ctx/2 keys on average; the SAE's encode + decode */
    double emb = (double)V * C * (c->tied_embeddings ? 0 : 1);
    double per_tok = 2.0 * ((double)p->params - emb) +
                     2.0 * L * c->n_heads * c->head_dim * (double)ctx;
    int    passes = j->passes > 0 ? j->passes : 1;
    p->flops = (double)(j->tokens > 0 ? j->tokens : 0) * passes * per_tok;
    if (d_sae > 0)
        p->flops += (j->sae_work > 0 ? j->sae_work : (double)tokens * d_sae) * 4.0 * d_in *
                    (j->sae_train ? 3 : 1);
    p->gflops_s = measure_gflops();
    p->seconds = p->flops / (p->gflops_s * 1e9);
    p->mem_available = mem_available();
    p->disk_available = disk_available(j->disk_dir);
    return EV_OK;
}

int plan_fits(const struct plan *p) {
    if (p->mem_available >= 0 && (int64_t)p->mem_total > p->mem_available) return 0;
    if (p->disk_available >= 0 && (int64_t)p->disk > p->disk_available) return 0;
    return 1;
}

char *plan_report(const struct plan_job *j, const struct plan *p) {
    char heap[16], map[16], tot[16], wts[16], st[16], sae[16], wrk[16], mav[16], dsk[16], dav[16];
    return xasprintf(
        "command: %s\n"
        "model: %s, %lld parameters, weights %s: %s heap + %s mapped from the safetensors%s\n"
        "memory: %s (weights %s, forward state %s, SAE %s, buffers %s); available %s\n"
        "disk: %s written%s%s; available %s\n"
        "time: about %.0f s (%.3g GFLOP at %.1f GFLOP/s measured here; decoding is "
        "memory-bound and slower)\n"
        "fits: %s\n",
        j->command, p->cfg.model_type, (long long)p->params, model_dtype_name(p->dtype),
        plan_bytes((double)p->weights_heap, heap, sizeof heap),
        plan_bytes((double)p->weights_mapped, map, sizeof map),
        p->has_weights ? "" : " (config only: no weight files)",
        plan_bytes((double)p->mem_total, tot, sizeof tot),
        plan_bytes((double)(p->weights_heap + p->weights_mapped), wts, sizeof wts),
        plan_bytes((double)p->state, st, sizeof st), plan_bytes((double)p->sae, sae, sizeof sae),
        plan_bytes((double)p->work, wrk, sizeof wrk),
        p->mem_available >= 0 ? plan_bytes((double)p->mem_available, mav, sizeof mav)
                              : "unknown",
        plan_bytes((double)p->disk, dsk, sizeof dsk), j->disk_dir ? " to " : "",
        j->disk_dir ? j->disk_dir : "",
        p->disk_available >= 0 ? plan_bytes((double)p->disk_available, dav, sizeof dav)
                               : "unknown",
        p->seconds, p->flops / 1e9, p->gflops_s, plan_fits(p) ? "yes" : "no");
}

int plan_refuse(const struct plan_job *j, const struct plan *p, struct ev_err *err) {
    char need[16], have[16], w[16], st[16], sae[16], lower[160];
    int  disk_over = p->disk_available >= 0 && (int64_t)p->disk > p->disk_available;
    if (disk_over)
        return ev_fail(err, EV_EFAIL, "%s: writes %s but %s are free in %s; lower it with %s",
                       j->command, plan_bytes((double)p->disk, need, sizeof need),
                       plan_bytes((double)p->disk_available, have, sizeof have),
                       j->disk_dir ? j->disk_dir : ".", j->lower ? j->lower : "--tokens");
    int bf16 = p->dtype == MODEL_DTYPE_F32 && strcmp(p->cfg.model_type, "llama2c") != 0;
    /* when the weights alone do not fit, nothing but their dtype or the model helps */
    int too_big = (int64_t)(p->weights_heap + p->weights_mapped) > p->mem_available;
    snprintf(lower, sizeof lower, "%s%s%s", bf16 ? "--weights-dtype bf16" : "",
             bf16 ? " or " : "",
             too_big || !j->lower_mem ? "a smaller --model" : j->lower_mem);
    return ev_fail(err, EV_EFAIL,
                   "%s: needs %s of memory (weights %s %s, state %s, SAE %s) but %s are "
                   "available; lower it with %s",
                   j->command, plan_bytes((double)p->mem_total, need, sizeof need),
                   plan_bytes((double)(p->weights_heap + p->weights_mapped), w, sizeof w),
                   model_dtype_name(p->dtype), plan_bytes((double)p->state, st, sizeof st),
                   plan_bytes((double)p->sae, sae, sizeof sae),
                   plan_bytes((double)p->mem_available, have, sizeof have), lower);
}
