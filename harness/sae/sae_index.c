/*
 * sae_index — per-feature statistics and example windows (top, interval samples,
 * non-activating), chunked and resumable. See sae_index.h.
 */
#include "sae/sae_index.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "store/store.h"
#include "model/tok.h"

#define CHUNK   256
#define QRES    1024 /* quantile reservoir per feature */
#define ENC_SEQ 8    /* sequences encoded per BLAS call */

struct sae_index_params sae_index_default_params(void) {
    struct sae_index_params p;
    memset(&p, 0, sizeof p);
    p.top_k = 20;
    p.bins = 10;
    p.per_bin = 5;
    p.n_nonact = 20;
    p.window = 10;
    p.shard_n = 1;
    return p;
}

struct hit {
    float   act;
    int64_t tok; /* seq * T + pos */
};

/* min-heap on (act, then later token weaker) */
static int weaker(const struct hit *a, const struct hit *b) {
    return a->act < b->act || (a->act == b->act && a->tok > b->tok);
}

static void heap_push(struct hit *h, int *n, int cap, struct hit v) {
    if (*n < cap) {
        int i = (*n)++;
        h[i] = v;
        while (i > 0) {
            int p = (i - 1) / 2;
            if (!weaker(&h[i], &h[p])) break;
            struct hit t = h[i]; h[i] = h[p]; h[p] = t;
            i = p;
        }
        return;
    }
    if (!weaker(&h[0], &v)) return;
    h[0] = v;
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && weaker(&h[l], &h[m])) m = l;
        if (r < *n && weaker(&h[r], &h[m])) m = r;
        if (m == i) break;
        struct hit t = h[i]; h[i] = h[m]; h[m] = t;
        i = m;
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static int cmp_hit_desc(const void *a, const void *b) {
    const struct hit *x = a, *y = b;
    if (x->act != y->act) return x->act < y->act ? 1 : -1;
    return (x->tok > y->tok) - (x->tok < y->tok);
}

enum pick_kind { PICK_TOP, PICK_INTERVAL, PICK_NONACT };

struct pick {
    int64_t tok;
    int     feat; /* chunk-local */
    int     kind, bin, order;
    float   act;
};

static int cmp_pick(const void *a, const void *b) {
    const struct pick *x = a, *y = b;
    if (x->tok != y->tok) return (x->tok > y->tok) - (x->tok < y->tok);
    return (x->order > y->order) - (x->order < y->order);
}

/* The per-chunk state. */
struct chunk {
    int        n;        /* features in the chunk */
    const int *ids;      /* (n) global feature ids */
    int64_t   *count;
    double    *sum;
    float     *max;
    struct hit *top;     /* (n, top_k) */
    int       *n_top;
    float     *qres;     /* (n, QRES) */
    int64_t   *q_seen;
    struct hit *ires;    /* (n, bins, per_bin) */
    int64_t   *i_seen;   /* (n, bins) */
};

static char *window_text(const struct tok *tk, const int *ids, int n) {
    struct sbuf sb;
    sbuf_init(&sb);
    int bos = tk ? tok_bos(tk) : -1, eos = tk ? tok_eos(tk) : -1;
    for (int i = 0; i < n; i++) {
        if (!tk) {
            sbuf_addf(&sb, "%s%d", i ? " " : "", ids[i]);
            continue;
        }
        if (ids[i] == bos || ids[i] == eos) continue;
        sbuf_adds(&sb, tok_piece(tk, i > 0 ? ids[i - 1] : -1, ids[i]));
    }
    return sbuf_detach(&sb);
}

/* Encodes latents i0 .. i0+ni-1 of sequences [q0, q1) of the stored residuals X (n_seq, T, D)
 * into f ((q1 - q0) * T, ni). */
static void encode_seqs(const struct sae *s, const float *X, int T, int q0, int q1, int i0, int ni,
                        float *f) {
    const int D = s->cfg.d_in;
    sae_encode_range(s, f, X + (size_t)q0 * T * D, (q1 - q0) * T, i0, ni);
}

static int chunk_done(struct store *db, int64_t sae_id, const int *ids, int n, int *done,
                      struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(db, "SELECT count(*) FROM feature_stats WHERE sae_id = ?1 AND idx = ?2",
                           &st, err);
    if (rc) return rc;
    int have = 0;
    for (int j = 0; j < n; j++) {
        store_reset(st);
        store_bind_int(st, 1, sae_id);
        store_bind_int(st, 2, ids[j]);
        if ((rc = store_step(st, err)) < 0) break;
        have += store_col_int(st, 0) > 0;
        rc = EV_OK;
    }
    store_finalize(st);
    *done = have == n;
    return rc;
}

static int run_chunk(struct store *db, int64_t sae_id, const struct sae *s, const float *X,
                     const struct acts_corpus *c, const struct tok *tk, const int *ids, int n,
                     const struct sae_index_params *p, struct rng *rng,
                     struct sae_index_result *res, struct ev_err *err) {
    const int T = c->T, K = p->bins, PB = p->per_bin, TK = p->top_k;
    /* the chunk's ids are sorted: encode only the span they cover (S below is its width) */
    const int i0 = ids[0], S = ids[n - 1] - ids[0] + 1;
    struct chunk ch = {0};
    struct pick *picks = NULL;
    struct store_stmt *ins_ex = NULL, *ins_st = NULL, *del = NULL;
    float *f = xmalloc((size_t)ENC_SEQ * T * S * sizeof(float));
    int    n_picks = 0, rc;
    ch.n = n;
    ch.ids = ids;
    ch.count = xcalloc((size_t)n, sizeof(int64_t));
    ch.sum = xcalloc((size_t)n, sizeof(double));
    ch.max = xcalloc((size_t)n, sizeof(float));
    ch.top = xcalloc((size_t)n * (TK > 0 ? TK : 1), sizeof(struct hit));
    ch.n_top = xcalloc((size_t)n, sizeof(int));
    ch.qres = xcalloc((size_t)n * QRES, sizeof(float));
    ch.q_seen = xcalloc((size_t)n, sizeof(int64_t));
    ch.ires = xcalloc((size_t)n * K * (PB > 0 ? PB : 1), sizeof(struct hit));
    ch.i_seen = xcalloc((size_t)n * K, sizeof(int64_t));

    // pass A: counts, max, top-k, quantile reservoir
    for (int q0 = 0; q0 < c->n_seq; q0 += ENC_SEQ) {
        int q1 = q0 + ENC_SEQ < c->n_seq ? q0 + ENC_SEQ : c->n_seq;
        encode_seqs(s, X, T, q0, q1, i0, S, f);
        for (int q = q0; q < q1; q++)
            for (int t = 1; t < T; t++) {
                const float *f_t = f + ((size_t)(q - q0) * T + t) * S;
                for (int j = 0; j < n; j++) {
                    float a = f_t[ids[j] - i0];
                    if (!(a > 0)) continue;
                    ch.count[j]++;
                    ch.sum[j] += a;
                    if (a > ch.max[j]) ch.max[j] = a;
                    if (TK > 0)
                        heap_push(ch.top + (size_t)j * TK, &ch.n_top[j], TK,
                                  (struct hit){a, (int64_t)q * T + t});
                    int64_t seen = ch.q_seen[j]++;
                    if (seen < QRES) ch.qres[(size_t)j * QRES + seen] = a;
                    else {
                        uint64_t r = rng_below(rng, (uint64_t)seen + 1);
                        if (r < QRES) ch.qres[(size_t)j * QRES + r] = a;
                    }
                }
            }
    }
    // pass B: reservoirs per activation interval
    if (K > 0 && PB > 0)
        for (int q0 = 0; q0 < c->n_seq; q0 += ENC_SEQ) {
            int q1 = q0 + ENC_SEQ < c->n_seq ? q0 + ENC_SEQ : c->n_seq;
            encode_seqs(s, X, T, q0, q1, i0, S, f);
            for (int q = q0; q < q1; q++)
                for (int t = 1; t < T; t++) {
                    const float *f_t = f + ((size_t)(q - q0) * T + t) * S;
                    for (int j = 0; j < n; j++) {
                        float a = f_t[ids[j] - i0];
                        if (!(a > 0)) continue;
                        int b = (int)ceil((double)a / ch.max[j] * K) - 1;
                        if (b < 0) b = 0;
                        if (b >= K) b = K - 1;
                        int64_t    seen = ch.i_seen[(size_t)j * K + b]++;
                        struct hit *rs = ch.ires + ((size_t)j * K + b) * PB;
                        struct hit  v = {a, (int64_t)q * T + t};
                        if (seen < PB) rs[seen] = v;
                        else {
                            uint64_t r = rng_below(rng, (uint64_t)seen + 1);
                            if (r < (uint64_t)PB) rs[r] = v;
                        }
                    }
                }
        }
    // the picks
    int cap = n * (TK + K * PB + 3 * p->n_nonact) + 1;
    picks = xmalloc((size_t)cap * sizeof *picks);
    for (int j = 0; j < n; j++) {
        struct hit *h = ch.top + (size_t)j * TK;
        qsort(h, (size_t)ch.n_top[j], sizeof *h, cmp_hit_desc);
        for (int k = 0; k < ch.n_top[j]; k++)
            picks[n_picks++] = (struct pick){h[k].tok, j, PICK_TOP, -1, n_picks, h[k].act};
        for (int b = 0; b < K; b++) {
            int64_t have = ch.i_seen[(size_t)j * K + b];
            for (int k = 0; k < PB && k < have; k++) {
                struct hit *v = ch.ires + ((size_t)j * K + b) * PB + k;
                picks[n_picks++] = (struct pick){v->tok, j, PICK_INTERVAL, b, n_picks, v->act};
            }
        }
        for (int k = 0; k < 3 * p->n_nonact; k++) {
            int64_t q = (int64_t)rng_below(rng, (uint64_t)c->n_seq);
            int64_t t = 1 + (int64_t)rng_below(rng, (uint64_t)(T - 1));
            picks[n_picks++] = (struct pick){q * T + t, j, PICK_NONACT, -1, n_picks, 0};
        }
    }
    qsort(picks, (size_t)n_picks, sizeof *picks, cmp_pick);

    if ((rc = store_begin(db, err))) goto out;
    if ((rc = store_prepare(db, "DELETE FROM examples WHERE sae_id = ?1 AND feature_idx = ?2",
                            &del, err)))
        goto fail;
    for (int j = 0; j < n; j++) {
        store_reset(del);
        store_bind_int(del, 1, sae_id);
        store_bind_int(del, 2, ids[j]);
        if ((rc = store_step(del, err)) < 0) goto fail;
    }
    if ((rc = store_prepare(db, "INSERT INTO examples (sae_id, feature_idx, kind, interval, "
                                "activation, center, tokens, acts, text) VALUES "
                                "(?1,?2,?3,?4,?5,?6,?7,?8,?9)", &ins_ex, err)))
        goto fail;
    {
        int  *nonact_kept = xcalloc((size_t)n, sizeof(int));
        int   W = p->window;
        int  *wt = xmalloc((size_t)(2 * W + 1) * sizeof(int));
        float *wa = xmalloc((size_t)(2 * W + 1) * sizeof(float));
        int64_t cur = -1;
        for (int k = 0; k < n_picks; k++) {
            const struct pick *pk = &picks[k];
            int64_t q = pk->tok / T;
            int     t = (int)(pk->tok % T);
            if (q != cur) {
                encode_seqs(s, X, T, (int)q, (int)q + 1, i0, S, f);
                cur = q;
            }
            if (pk->kind == PICK_NONACT && nonact_kept[pk->feat] >= p->n_nonact) continue;
            int lo = t - W < 1 ? 1 : t - W, hi = t + W > T - 1 ? T - 1 : t + W;
            int nw = hi - lo + 1, any = 0;
            for (int u = 0; u < nw; u++) {
                wt[u] = c->tokens[(size_t)q * T + lo + u];
                wa[u] = f[(size_t)(lo + u) * S + ids[pk->feat] - i0];
                any |= wa[u] > 0;
            }
            if (pk->kind == PICK_NONACT) {
                if (any) continue;
                nonact_kept[pk->feat]++;
            }
            char *text = window_text(tk, wt, nw);
            store_reset(ins_ex);
            store_bind_int(ins_ex, 1, sae_id);
            store_bind_int(ins_ex, 2, ids[pk->feat]);
            store_bind_text(ins_ex, 3, pk->kind == PICK_TOP ? "top" :
                                       pk->kind == PICK_INTERVAL ? "interval" : "nonactivating");
            if (pk->bin >= 0) store_bind_int(ins_ex, 4, pk->bin);
            else store_bind_null(ins_ex, 4);
            store_bind_double(ins_ex, 5, wa[t - lo]);
            store_bind_int(ins_ex, 6, t - lo);
            store_bind_blob(ins_ex, 7, wt, (size_t)nw * sizeof(int));
            store_bind_blob(ins_ex, 8, wa, (size_t)nw * sizeof(float));
            store_bind_text(ins_ex, 9, text);
            free(text);
            if ((rc = store_step(ins_ex, err)) < 0) {
                free(nonact_kept); free(wt); free(wa);
                goto fail;
            }
            res->n_examples++;
        }
        free(nonact_kept);
        free(wt);
        free(wa);
    }
    if ((rc = store_prepare(db, "INSERT OR REPLACE INTO feature_stats (sae_id, idx, n_tokens, "
                                "fire_count, density, max_act, mean_act, quantiles) VALUES "
                                "(?1,?2,?3,?4,?5,?6,?7,?8)", &ins_st, err)))
        goto fail;
    {
        const int64_t N = (int64_t)c->n_seq * (T - 1);
        for (int j = 0; j < n; j++) {
            int64_t nq = ch.q_seen[j] < QRES ? ch.q_seen[j] : QRES;
            float  *qv = ch.qres + (size_t)j * QRES;
            qsort(qv, (size_t)nq, sizeof(float), cmp_float);
            static const double qs[] = {0.1, 0.5, 0.9, 0.99};
            struct sbuf sb;
            sbuf_init(&sb);
            sbuf_adds(&sb, "{");
            for (int k = 0; k < 4; k++) {
                double v = nq ? qv[(int64_t)floor(qs[k] * (double)(nq - 1) + 0.5)] : 0;
                sbuf_addf(&sb, "%s\"%g\": %.6g", k ? ", " : "", qs[k], v);
            }
            sbuf_adds(&sb, "}");
            char *qj = sbuf_detach(&sb);
            store_reset(ins_st);
            store_bind_int(ins_st, 1, sae_id);
            store_bind_int(ins_st, 2, ids[j]);
            store_bind_int(ins_st, 3, N);
            store_bind_int(ins_st, 4, ch.count[j]);
            store_bind_double(ins_st, 5, N ? (double)ch.count[j] / (double)N : 0);
            store_bind_double(ins_st, 6, ch.max[j]);
            store_bind_double(ins_st, 7, ch.count[j] ? ch.sum[j] / (double)ch.count[j] : 0);
            store_bind_text(ins_st, 8, qj);
            free(qj);
            if ((rc = store_step(ins_st, err)) < 0) goto fail;
            res->n_alive += ch.count[j] > 0;
        }
    }
    if ((rc = store_commit(db, err))) goto fail;
    rc = EV_OK;
    goto out;
fail:
    rc = EV_EFAIL;
    store_rollback(db);
out:
    store_finalize(del);
    store_finalize(ins_ex);
    store_finalize(ins_st);
    free(picks);
    free(f);
    free(ch.count); free(ch.sum); free(ch.max); free(ch.top); free(ch.n_top);
    free(ch.qres); free(ch.q_seen); free(ch.ires); free(ch.i_seen);
    return rc;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Drops a stored index of another configuration for this SAE. */
static int reset_other_config(struct store *db, int64_t sae_id, const char *config_hash,
                              int *complete, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(db, "SELECT config_hash, complete FROM feature_index_runs "
                               "WHERE sae_id = ?1", &st, err);
    int other = 0;
    *complete = 0;
    if (rc) return rc;
    store_bind_int(st, 1, sae_id);
    while ((rc = store_step(st, err)) == STORE_ROW) {
        if (strcmp(store_col_text(st, 0), config_hash) == 0) *complete = (int)store_col_int(st, 1);
        else other = 1;
    }
    store_finalize(st);
    if (rc < 0) return rc;
    if (!other) return EV_OK;
    ev_info("index: this SAE was indexed with other settings; replacing that index");
    if ((rc = store_begin(db, err))) return rc;
    static const char *const sql[] = {
        "DELETE FROM examples WHERE sae_id = ?1",
        "DELETE FROM feature_stats WHERE sae_id = ?1",
        "DELETE FROM feature_index_runs WHERE sae_id = ?1",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        if ((rc = store_prepare(db, sql[i], &st, err))) goto fail;
        store_bind_int(st, 1, sae_id);
        rc = store_step(st, err);
        store_finalize(st);
        if (rc < 0) {
            ev_fail(err, EV_EFAIL, "cannot replace the old index of this SAE (%s); graded "
                                   "examples refer to it: use another --db", err->msg);
            goto fail;
        }
    }
    *complete = 0;
    return store_commit(db, err);
fail:
    store_rollback(db);
    return EV_EFAIL;
}

int sae_index_build(struct store *db, int64_t sae_id, int64_t run_id, const char *config_hash,
                    struct model *m, const struct sae *s, const char *hook_name,
                    const struct acts_corpus *c, const struct sae_index_params *p,
                    struct sae_index_result *res, struct ev_err *err) {
    const int D = s->cfg.d_in, S = s->cfg.d_sae, T = c->T;
    float              *X = NULL;
    int                *ids = NULL, n_ids = 0;
    struct model_state *st = NULL;
    struct store_stmt  *up = NULL;
    struct model_hook   h;
    int                 rc, complete = 0;
    memset(res, 0, sizeof *res);
    res->n_tokens = (int64_t)c->n_seq * (T - 1);
    if ((rc = reset_other_config(db, sae_id, config_hash, &complete, err))) return rc;
    if (complete && p->shard_n <= 1) {
        res->reused = 1;
        return EV_OK;
    }
    // the feature list
    if (p->features) {
        ids = xmalloc((size_t)(p->n_features > 0 ? p->n_features : 1) * sizeof(int));
        for (int i = 0; i < p->n_features; i++) {
            if (p->features[i] < 0 || p->features[i] >= S) {
                rc = ev_fail(err, EV_EFAIL, "feature id %d out of range: the SAE has %d latents "
                                            "(0..%d)", p->features[i], S, S - 1);
                goto out;
            }
            ids[n_ids++] = p->features[i];
        }
        qsort(ids, (size_t)n_ids, sizeof(int), cmp_int);
        int u = 0;
        for (int i = 0; i < n_ids; i++)
            if (!u || ids[u - 1] != ids[i]) ids[u++] = ids[i];
        n_ids = u;
    } else {
        ids = xmalloc((size_t)S * sizeof(int));
        for (int i = 0; i < S; i++) ids[i] = i;
        n_ids = S;
    }
    if ((rc = store_prepare(db, "INSERT INTO feature_index_runs (sae_id, config_hash, run_id, "
                                "n_tokens, complete) VALUES (?1,?2,?3,?4,0) ON CONFLICT DO "
                                "UPDATE SET run_id = excluded.run_id", &up, err)))
        goto out;
    store_bind_int(up, 1, sae_id);
    store_bind_text(up, 2, config_hash);
    store_bind_int(up, 3, run_id);
    store_bind_int(up, 4, res->n_tokens);
    if ((rc = store_step(up, err)) < 0) goto out;
    store_finalize(up);
    up = NULL;

    // the residuals, once
    if ((rc = model_hook_parse(m, hook_name, &h, err))) goto out;
    if ((rc = model_state_new(m, T, 0, &st, err))) goto out;
    X = xmalloc((size_t)c->n_seq * T * D * sizeof(float));
    for (int q = 0; q < c->n_seq; q++) {
        if (ev_interrupted()) {
            rc = ev_fail(err, EV_EINTR, "interrupted while running the corpus");
            goto out;
        }
        if ((rc = model_forward_to_hook(st, c->tokens + (size_t)q * T, 0, T, h,
                                        X + (size_t)q * T * D, err)))
            goto out;
        if (sae_needs_centering(s, model_config(m)->model_type))
            sae_center_rows(X + (size_t)q * T * D, T, D, NULL);
    }
    const struct tok *tk = model_tokenizer(m);
    int n_chunks = (n_ids + CHUNK - 1) / CHUNK;
    res->chunks_total = n_chunks;
    for (int ck = 0; ck < n_chunks; ck++) {
        if (p->shard_n > 1 && ck % p->shard_n != p->shard_k) continue;
        const int *cid = ids + (size_t)ck * CHUNK;
        int        cn = n_ids - ck * CHUNK < CHUNK ? n_ids - ck * CHUNK : CHUNK;
        int        done = 0;
        if ((rc = chunk_done(db, sae_id, cid, cn, &done, err))) goto out;
        if (done) {
            res->chunks_skipped++;
            continue;
        }
        if (ev_interrupted()) {
            rc = ev_fail(err, EV_EINTR, "interrupted after %d of %d chunks; rerun to resume",
                         res->chunks_done + res->chunks_skipped, n_chunks);
            goto out;
        }
        struct rng r;
        rng_seed(&r, p->seed * 1000003ULL + (uint64_t)ck);
        if ((rc = run_chunk(db, sae_id, s, X, c, tk, cid, cn, p, &r, res, err))) goto out;
        res->chunks_done++;
        ev_info("index: chunk %d/%d (features %d..%d) stored", ck + 1, n_chunks, cid[0],
                cid[cn - 1]);
    }
    if (!p->features && p->shard_n <= 1) {
        if ((rc = store_prepare(db, "UPDATE feature_index_runs SET complete = 1 WHERE sae_id = ?1 "
                                    "AND config_hash = ?2", &up, err)))
            goto out;
        store_bind_int(up, 1, sae_id);
        store_bind_text(up, 2, config_hash);
        if ((rc = store_step(up, err)) < 0) goto out;
    }
    rc = EV_OK;
out:
    store_finalize(up);
    model_state_free(st);
    free(X);
    free(ids);
    return rc;
}
