/*
 * acts — the on-disk activation cache (a folder of raw float32 shards plus header.json) and
 * its seeded shuffle-buffer reader. See acts.h for the format.
 */
#include "sae/acts.h"

#include "base/progress.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/corpus.h"
#include "base/hash.h"
#include "model/model.h"
#include "model/sample.h"
#include "model/tok.h"
#include "base/json.h"

struct acts_shard {
    const float *x;    /* (n, D) mapped */
    const int   *tok;  /* (n) mapped, or NULL */
    size_t       x_bytes, tok_bytes;
    int64_t      n, first; /* rows, index of the first row */
};

struct acts {
    int                d;
    int64_t            n;
    struct acts_shard *shards;
    int                n_shards;
    const float       *mem; /* in-memory rows (borrowed) */
    char              *meta;
    /* stream state */
    struct rng         rng;
    int64_t           *buf;
    int64_t            buf_n, next_seq;
};

int64_t acts_n_tokens(const struct acts *a) { return a->n; }
int     acts_d_in(const struct acts *a) { return a->d; }
const char *acts_meta_json(const struct acts *a) { return a->meta ? a->meta : "{}"; }

static const struct acts_shard *find_shard(const struct acts *a, int64_t i) {
    int lo = 0, hi = a->n_shards - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (a->shards[mid].first <= i) lo = mid;
        else hi = mid - 1;
    }
    return &a->shards[lo];
}

const float *acts_row(const struct acts *a, int64_t i) {
    EV_ASSERT(i >= 0 && i < a->n);
    if (a->mem) return a->mem + (size_t)i * a->d;
    const struct acts_shard *s = find_shard(a, i);
    return s->x + (size_t)(i - s->first) * a->d;
}

int acts_token(const struct acts *a, int64_t i) {
    EV_ASSERT(i >= 0 && i < a->n);
    if (a->mem) return -1;
    const struct acts_shard *s = find_shard(a, i);
    return s->tok ? s->tok[i - s->first] : -1;
}

struct acts *acts_from_memory(const float *x, int64_t n, int d) {
    EV_ASSERT(n > 0 && d > 0);
    struct acts *a = xcalloc(1, sizeof *a);
    a->mem = x;
    a->n = n;
    a->d = d;
    acts_stream_start(a, 0, 0);
    return a;
}

void acts_close(struct acts *a) {
    if (!a) return;
    for (int i = 0; i < a->n_shards; i++) {
        if (a->shards[i].x) munmap((void *)a->shards[i].x, a->shards[i].x_bytes);
        if (a->shards[i].tok) munmap((void *)a->shards[i].tok, a->shards[i].tok_bytes);
    }
    free(a->shards);
    free(a->meta);
    free(a->buf);
    free(a);
}

static int map_file(const char *path, size_t want, const void **out, struct ev_err *err) {
    int         fd = open(path, O_RDONLY);
    struct stat st;
    *out = NULL;
    if (fd < 0) return ev_fail(err, EV_EFAIL, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || (size_t)st.st_size != want) {
        close(fd);
        return ev_fail(err, EV_EFAIL, "%s: %lld bytes, expected %zu (from header.json)", path,
                       (long long)st.st_size, want);
    }
    if (want == 0) {
        close(fd);
        return ev_fail(err, EV_EFAIL, "%s: empty shard", path);
    }
    void *p = mmap(NULL, want, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return ev_fail(err, EV_EFAIL, "%s: cannot map: %s", path, strerror(errno));
    *out = p;
    return EV_OK;
}

int acts_open(const char *dir, struct acts **out, struct ev_err *err) {
    char        *hpath = path_join(dir, "header.json");
    cJSON       *h = NULL;
    struct acts *a = NULL;
    const char  *magic = NULL, *dtype = NULL;
    long         version = 0, d = 0, n = 0;
    int          rc;
    *out = NULL;
    if (!path_exists(hpath)) {
        rc = ev_fail(err, EV_EFAIL, "%s: not an activation cache (no header.json; make one with "
                                    "'evalrun collect')", dir);
        goto out;
    }
    if ((rc = json_parse_file(hpath, &h, err))) goto out;
    if ((rc = json_get_str(h, "magic", hpath, &magic, err))) goto out;
    if (strcmp(magic, ACTS_MAGIC) != 0) {
        rc = ev_fail(err, EV_EFAIL, "%s: magic '%s', expected '%s'", hpath, magic, ACTS_MAGIC);
        goto out;
    }
    if ((rc = json_get_long(h, "version", hpath, &version, err))) goto out;
    if (version != ACTS_VERSION) {
        rc = ev_fail(err, EV_EFAIL, "%s: cache version %ld, this evalrun reads version %d "
                                    "---> HINT: collect it again with this evalrun",
                     hpath, version, ACTS_VERSION);
        goto out;
    }
    if ((rc = json_get_long(h, "d_in", hpath, &d, err))) goto out;
    if ((rc = json_get_long(h, "n_tokens", hpath, &n, err))) goto out;
    if ((rc = json_get_str(h, "dtype", hpath, &dtype, err))) goto out;
    if (strcmp(dtype, "float32") != 0 || d < 1 || d > (1 << 20) || n < 1) {
        rc = ev_fail(err, EV_EFAIL, "%s: expected dtype float32, d_in >= 1, n_tokens >= 1", hpath);
        goto out;
    }
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(h, "shards");
    if (!cJSON_IsArray(shards) || cJSON_GetArraySize(shards) < 1) {
        rc = ev_fail(err, EV_EFAIL, "%s: shards must be a non-empty array", hpath);
        goto out;
    }
    a = xcalloc(1, sizeof *a);
    a->d = (int)d;
    a->n_shards = cJSON_GetArraySize(shards);
    a->shards = xcalloc((size_t)a->n_shards, sizeof *a->shards);
    int64_t total = 0;
    for (int i = 0; i < a->n_shards; i++) {
        const cJSON *sh = cJSON_GetArrayItem(shards, i);
        const char  *file = NULL;
        long         sn = 0;
        if ((rc = json_get_str(sh, "file", hpath, &file, err))) goto out;
        if ((rc = json_get_long(sh, "n_tokens", hpath, &sn, err))) goto out;
        if (sn < 1 || strchr(file, '/')) {
            rc = ev_fail(err, EV_EFAIL, "%s: shard %d: bad file name or n_tokens", hpath, i);
            goto out;
        }
        struct acts_shard *s = &a->shards[i];
        s->n = sn;
        s->first = total;
        total += sn;
        char *p = path_join(dir, file);
        s->x_bytes = (size_t)sn * (size_t)d * sizeof(float);
        rc = map_file(p, s->x_bytes, (const void **)&s->x, err);
        if (!rc) {
            for (size_t k = 0; k < (size_t)sn * (size_t)d; k++) {
                if (!isfinite(s->x[k])) {
                    rc = ev_fail(err, EV_EFAIL, "%s: NaN/Inf activation at row %zu", p,
                                 k / (size_t)d);
                    break;
                }
            }
        }
        free(p);
        if (rc) goto out;
        const char *tfile = NULL;
        if ((rc = json_get_str_opt(sh, "tokens", hpath, &tfile, err))) goto out;
        if (tfile && !strchr(tfile, '/')) {
            p = path_join(dir, tfile);
            s->tok_bytes = (size_t)sn * sizeof(int);
            rc = map_file(p, s->tok_bytes, (const void **)&s->tok, err);
            free(p);
            if (rc) goto out;
        }
    }
    if (total != n) {
        rc = ev_fail(err, EV_EFAIL, "%s: shards hold %lld rows, n_tokens says %ld", hpath,
                     (long long)total, n);
        goto out;
    }
    a->n = n;
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(h, "meta");
    a->meta = meta ? json_print(meta) : xstrdup("{}");
    acts_stream_start(a, 0, 0);
    *out = a;
    a = NULL;
    rc = EV_OK;
out:
    acts_close(a);
    json_free(h);
    free(hpath);
    return rc;
}

// ---------------------------------------------------------------- stream

void acts_stream_start(struct acts *a, uint64_t seed, int64_t buf_tokens) {
    rng_seed(&a->rng, seed);
    free(a->buf);
    a->buf = NULL;
    if (buf_tokens > a->n) buf_tokens = a->n;
    a->buf_n = buf_tokens > 1 ? buf_tokens : 0;
    a->next_seq = 0;
    if (a->buf_n) {
        a->buf = xmalloc((size_t)a->buf_n * sizeof(int64_t));
        for (int64_t i = 0; i < a->buf_n; i++) a->buf[i] = i;
        a->next_seq = a->buf_n % a->n;
    }
}

static int64_t stream_index(struct acts *a) {
    int64_t r;
    if (!a->buf_n) {
        r = a->next_seq;
    } else {
        int64_t j = (int64_t)rng_below(&a->rng, (uint64_t)a->buf_n);
        r = a->buf[j];
        a->buf[j] = a->next_seq;
    }
    a->next_seq = (a->next_seq + 1) % a->n;
    return r;
}

void acts_stream_next(struct acts *a, float *x, int n) {
    for (int t = 0; t < n; t++)
        memcpy(x + (size_t)t * a->d, acts_row(a, stream_index(a)), (size_t)a->d * sizeof(float));
}

void acts_stream_skip(struct acts *a, int64_t n) {
    for (int64_t t = 0; t < n; t++) (void)stream_index(a);
}

double acts_mean_norm(const struct acts *a, int64_t n) {
    if (n > a->n) n = a->n;
    if (n < 1) return 0;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *x = acts_row(a, i);
        double       s2 = 0;
        for (int j = 0; j < a->d; j++) s2 += (double)x[j] * (double)x[j];
        sum += sqrt(s2);
    }
    return sum / (double)n;
}

// ---------------------------------------------------------------- writer

struct acts_writer {
    char   *dir, *tmp;
    int     d;
    int64_t shard_tokens, n, in_shard;
    int     shard_idx;
    FILE   *fx, *ft;
    cJSON  *shards;
    char   *meta;
};


int acts_writer_new(const char *dir, int d_in, int64_t shard_tokens, const char *meta_json,
                    struct acts_writer **out, struct ev_err *err) {
    EV_ASSERT(d_in > 0);
    cJSON *meta = NULL;
    *out = NULL;
    int rc = json_parse(meta_json ? meta_json : "{}", strlen(meta_json ? meta_json : "{}"),
                        "cache metadata", &meta, err);
    if (rc) return rc;
    struct acts_writer *w = xcalloc(1, sizeof *w);
    w->dir = xstrdup(dir);
    w->tmp = xasprintf("%s.tmp.%ld", dir, (long)getpid());
    w->d = d_in;
    w->shard_tokens = shard_tokens > 0 ? shard_tokens : 1 << 20;
    w->shards = cJSON_CreateArray();
    w->meta = json_print(meta);
    json_free(meta);
    remove_flat_dir(w->tmp);
    if ((rc = mkdir_p(w->tmp, err))) {
        acts_writer_free(w);
        return rc;
    }
    *out = w;
    return EV_OK;
}

int64_t acts_writer_count(const struct acts_writer *w) { return w->n; }

static int close_shard(struct acts_writer *w, struct ev_err *err) {
    if (!w->fx) return EV_OK;
    int bad = fflush(w->fx) != 0 || fsync(fileno(w->fx)) != 0;
    bad |= fclose(w->fx) != 0;
    w->fx = NULL;
    bad |= fflush(w->ft) != 0;
    bad |= fclose(w->ft) != 0;
    w->ft = NULL;
    if (bad) return ev_fail(err, EV_EFAIL, "%s: cannot write shard: %s", w->tmp, strerror(errno));
    cJSON *s = cJSON_CreateObject();
    char   name[64], tname[64];
    snprintf(name, sizeof name, "acts-%05d.f32", w->shard_idx);
    snprintf(tname, sizeof tname, "tokens-%05d.i32", w->shard_idx);
    cJSON_AddStringToObject(s, "file", name);
    cJSON_AddStringToObject(s, "tokens", tname);
    cJSON_AddNumberToObject(s, "n_tokens", (double)w->in_shard);
    cJSON_AddItemToArray(w->shards, s);
    w->shard_idx++;
    w->in_shard = 0;
    return EV_OK;
}

int acts_writer_add(struct acts_writer *w, const float *x, const int *tokens, int n,
                    struct ev_err *err) {
    for (size_t k = 0; k < (size_t)n * (size_t)w->d; k++)
        if (!isfinite(x[k]))
            return ev_fail(err, EV_EFAIL, "NaN/Inf activation at cache row %lld (not written)",
                           (long long)(w->n + (int64_t)(k / (size_t)w->d)));
    for (int t = 0; t < n; t++) {
        if (!w->fx) {
            char name[64], tname[64];
            snprintf(name, sizeof name, "acts-%05d.f32", w->shard_idx);
            snprintf(tname, sizeof tname, "tokens-%05d.i32", w->shard_idx);
            char *p = path_join(w->tmp, name), *tp = path_join(w->tmp, tname);
            w->fx = fopen(p, "wb");
            w->ft = fopen(tp, "wb");
            free(p);
            free(tp);
            if (!w->fx || !w->ft)
                return ev_fail(err, EV_EFAIL, "%s: cannot create shard: %s", w->tmp,
                               strerror(errno));
        }
        int tok = tokens ? tokens[t] : -1;
        if (fwrite(x + (size_t)t * w->d, sizeof(float), (size_t)w->d, w->fx) != (size_t)w->d ||
            fwrite(&tok, sizeof tok, 1, w->ft) != 1)
            return ev_fail(err, EV_EFAIL, "%s: cannot write shard: %s", w->tmp, strerror(errno));
        w->n++;
        if (++w->in_shard == w->shard_tokens) {
            int rc = close_shard(w, err);
            if (rc) return rc;
        }
    }
    return EV_OK;
}

int acts_writer_finish(struct acts_writer *w, struct ev_err *err) {
    int   rc = close_shard(w, err);
    char *hpath = NULL, *old = NULL;
    cJSON *h = NULL, *meta = NULL;
    if (rc) return rc;
    if (w->n < 1) return ev_fail(err, EV_EFAIL, "%s: no activations collected", w->dir);
    h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "magic", ACTS_MAGIC);
    cJSON_AddNumberToObject(h, "version", ACTS_VERSION);
    cJSON_AddNumberToObject(h, "d_in", w->d);
    cJSON_AddNumberToObject(h, "n_tokens", (double)w->n);
    cJSON_AddStringToObject(h, "dtype", "float32");
    cJSON_AddStringToObject(h, "byte_order", "little");
    cJSON_AddItemToObject(h, "shards", w->shards);
    w->shards = NULL;
    if ((rc = json_parse(w->meta, strlen(w->meta), "cache metadata", &meta, err))) goto out;
    cJSON_AddItemToObject(h, "meta", meta);
    hpath = path_join(w->tmp, "header.json");
    if ((rc = json_write_file(hpath, h, JSON_WRITE_PRETTY, err))) goto out;
    if (path_exists(w->dir)) {
        old = xasprintf("%s.old.%ld", w->dir, (long)getpid());
        if (rename(w->dir, old) != 0) {
            rc = ev_fail(err, EV_EFAIL, "%s: cannot replace: %s", w->dir, strerror(errno));
            goto out;
        }
    }
    if (rename(w->tmp, w->dir) != 0) {
        rc = ev_fail(err, EV_EFAIL, "%s: cannot create: %s", w->dir, strerror(errno));
        if (old) (void)rename(old, w->dir);
        goto out;
    }
    if (old) remove_flat_dir(old);
    rc = EV_OK;
out:
    json_free(h);
    free(hpath);
    free(old);
    return rc;
}

void acts_writer_free(struct acts_writer *w) {
    if (!w) return;
    if (w->fx) fclose(w->fx);
    if (w->ft) fclose(w->ft);
    remove_flat_dir(w->tmp); /* after a successful finish the folder has been renamed away */
    json_free(w->shards);
    free(w->meta);
    free(w->dir);
    free(w->tmp);
    free(w);
}

// ---------------------------------------------------------------- corpora and collection


void acts_corpus_release(struct acts_corpus *c) {
    free(c->tokens);
    memset(c, 0, sizeof *c);
}

/* Cuts stream[0..n) into sequences of T, BOS first (when bos >= 0). */
static void cut_stream(const int *stream, int64_t n, int T, int bos, int64_t want,
                       struct acts_corpus *out) {
    int     body = bos >= 0 ? T - 1 : T;
    int64_t n_seq = n / body;
    int64_t max_seq = (want + T - 1) / T;
    if (n_seq > max_seq) n_seq = max_seq;
    out->n_seq = (int)n_seq;
    out->T = T;
    out->tokens = xmalloc((size_t)(n_seq > 0 ? n_seq : 1) * T * sizeof(int));
    for (int64_t s = 0; s < n_seq; s++) {
        int *row = out->tokens + (size_t)s * T, k = 0;
        if (bos >= 0) row[k++] = bos;
        memcpy(row + k, stream + s * body, (size_t)body * sizeof(int));
    }
}

int acts_corpus_from_file(const struct model *m, const char *path, const char *text_field,
                          int64_t n_tokens, int T, struct acts_corpus *out, struct ev_err *err) {
    const struct tok *tk = model_tokenizer(m);
    struct corpus    *cp = NULL;
    int              *stream = NULL;
    int64_t           n = 0, cap = 0;
    int               rc;
    memset(out, 0, sizeof *out);
    if (!tk) return ev_fail(err, EV_EFAIL, "the model has no tokenizer: cannot read %s", path);
    if (T < 2) return ev_fail(err, EV_EUSAGE, "--ctx must be at least 2");
    if ((rc = corpus_open(path, text_field, &cp, err))) return rc;
    const int     bos = tok_bos(tk), sep = bos >= 0 ? bos : tok_eos(tk);
    const int     body = bos >= 0 ? T - 1 : T;
    const int64_t want_stream = ((n_tokens + T - 1) / T) * (int64_t)body;
    while (n < want_stream) {
        const char *piece;
        size_t      len;
        int         doc_start;
        if ((rc = corpus_next(cp, &piece, &len, &doc_start, err)) < 0) goto out;
        if (rc == 0) break;
        int *ids = NULL, nid = 0;
        if ((rc = tok_encode(tk, piece, 0, &ids, &nid, err))) goto out;
        if (n + nid + 1 > cap) {
            cap = (n + nid + 1) * 2 + 1024;
            stream = xrealloc(stream, (size_t)cap * sizeof(int));
        }
        /* documents are joined as sampled stories are: the next one starts with BOS */
        if (doc_start && sep >= 0) stream[n++] = sep;
        memcpy(stream + n, ids, (size_t)nid * sizeof(int));
        n += nid;
        free(ids);
    }
    if (n < body) {
        rc = ev_fail(err, EV_EFAIL, "%s (%s): %lld tokens, fewer than one sequence of %d", path,
                     corpus_kind(cp), (long long)n, T);
        goto out;
    }
    cut_stream(stream, n, T, bos, n_tokens, out);
    {
        char  ch[65];
        corpus_hash(cp, ch);
        char *id = xasprintf("corpus:%s T=%d n=%d", ch, T, out->n_seq);
        sha256_hex(id, strlen(id), out->hash);
        free(id);
    }
    snprintf(out->source, sizeof out->source, "%s", path);
    rc = EV_OK;
out:
    if (rc) acts_corpus_release(out);
    corpus_close(cp);
    free(stream);
    return rc;
}

void acts_corpus_generate_hash(const struct model *m, int64_t n_tokens, int T, uint64_t seed,
                               char hex[65]) {
    int64_t n_seq = (n_tokens + T - 1) / T;
    char   *id = xasprintf("generate:%s seed=%llu T=%d n=%lld", model_hash(m),
                           (unsigned long long)seed, T, (long long)n_seq);
    sha256_hex(id, strlen(id), hex);
    free(id);
}

int acts_corpus_generate(struct model *m, int64_t n_tokens, int T, uint64_t seed,
                         struct acts_corpus *out, struct ev_err *err) {
    const struct model_config *mc = model_config(m);
    const struct tok          *tk = model_tokenizer(m);
    struct model_state        *st = NULL;
    struct sampler             smp;
    int                        rc;
    memset(out, 0, sizeof *out);
    if (T < 2 || T > mc->seq_len)
        return ev_fail(err, EV_EUSAGE, "--ctx %d out of range (2..%d, the model's context)", T,
                       mc->seq_len);
    int bos = tk ? tok_bos(tk) : -1, eos = tk ? tok_eos(tk) : -1;
    if (bos < 0) bos = 1;
    int64_t n_seq = (n_tokens + T - 1) / T;
    if ((rc = model_state_new(m, T, 0, &st, err))) return rc;
    model_sampler_init(&smp, m, 1.0f, 1.0f, seed);
    out->tokens = xmalloc((size_t)n_seq * T * sizeof(int));
    out->T = T;
    struct progress bar;
    progress_init(&bar, "sampling tokens", n_seq * (T - 1));
    for (int64_t s = 0; s < n_seq; s++) {
        if (ev_interrupted()) {
            rc = ev_fail(err, EV_EINTR, "interrupted while sampling the corpus");
            goto out;
        }
        int *row = out->tokens + (size_t)s * T;
        row[0] = bos;
        for (int t = 0; t + 1 < T; t++) {
            if ((rc = model_forward(st, row + t, t, 1, NULL, 0, err))) goto out;
            int next = sampler_sample(&smp, model_state_logits(st));
            row[t + 1] = next == eos ? bos : next;
            progress_tick(&bar, 1);
        }
        out->n_seq = (int)(s + 1);
    }
    acts_corpus_generate_hash(m, n_tokens, T, seed, out->hash);
    snprintf(out->source, sizeof out->source, "stories sampled from the model (seed %llu)",
             (unsigned long long)seed);
    rc = EV_OK;
out:
    progress_finish(&bar);
    if (rc) acts_corpus_release(out);
    sampler_release(&smp);
    model_state_free(st);
    return rc;
}

int acts_collect(struct model *m, const char *hook_name, const struct acts_corpus *c,
                 int skip_bos, struct acts_writer *w, struct ev_err *err) {
    const int           C = model_config(m)->dim, T = c->T;
    struct model_hook   h;
    struct model_state *st = NULL;
    float              *resid = NULL;
    int                 rc;
    if ((rc = model_hook_parse(m, hook_name, &h, err))) return rc;
    if (w->d != C)
        return ev_fail(err, EV_EFAIL, "the cache is %d wide but %s has width %d", w->d,
                       hook_name, C);
    if ((rc = model_state_new(m, T, 0, &st, err))) return rc;
    resid = xmalloc((size_t)T * C * sizeof(float));
    struct progress bar;
    progress_init(&bar, "collecting activations", c->n_seq);
    for (int s = 0; s < c->n_seq; s++) {
        if (ev_interrupted()) {
            rc = ev_fail(err, EV_EINTR, "interrupted while collecting activations");
            goto out;
        }
        const int *row = c->tokens + (size_t)s * T;
        if ((rc = model_forward_to_hook(st, row, 0, T, h, resid, err))) goto out;
        int k = skip_bos ? 1 : 0;
        if ((rc = acts_writer_add(w, resid + (size_t)k * C, row + k, T - k, err))) goto out;
        progress_tick(&bar, 1);
    }
    rc = EV_OK;
out:
    progress_finish(&bar);
    free(resid);
    model_state_free(st);
    return rc;
}
