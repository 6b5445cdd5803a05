/*
 * index — the feature index tables (feature_index_runs, feature_stats, examples) and the
 * analyses stored beside them (feature_neighbors, feature_logits, feature_neurons): building
 * through sae_index_compute() and a sink that stores each chunk, and the readers. See index.h.
 */
#include "store/index.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "store/store.h"

// ---------------------------------------------------------------------------- building

struct sink_ctx {
    struct store *db;
    int64_t       sae_id;
};

static int sink_chunk_done(void *ctx, const int *ids, int n, int *done, struct ev_err *err) {
    struct sink_ctx   *k = ctx;
    struct store_stmt *st = NULL;
    int rc = store_prepare(k->db, "SELECT count(*) FROM feature_stats WHERE sae_id = ?1 AND idx = ?2",
                           &st, err);
    if (rc) return rc;
    int have = 0;
    for (int j = 0; j < n; j++) {
        store_reset(st);
        store_bind_int(st, 1, k->sae_id);
        store_bind_int(st, 2, ids[j]);
        if ((rc = store_step(st, err)) < 0) break;
        have += store_col_int(st, 0) > 0;
        rc = EV_OK;
    }
    store_finalize(st);
    *done = have == n;
    return rc;
}

static const char *kind_name(enum sae_index_kind k) {
    return k == SAE_INDEX_TOP ? "top" : k == SAE_INDEX_INTERVAL ? "interval" : "nonactivating";
}

/* {"0.1": v, "0.5": v, "0.9": v, "0.99": v}; caller frees. */
static char *quantiles_json(const double *q) {
    struct sbuf sb;
    sbuf_init(&sb);
    sbuf_adds(&sb, "{");
    for (int k = 0; k < 4; k++)
        sbuf_addf(&sb, "%s\"%g\": %.6g", k ? ", " : "", sae_index_quantiles[k], q[k]);
    sbuf_adds(&sb, "}");
    return sbuf_detach(&sb);
}

/* One chunk in one transaction: its features' old examples dropped, the new examples in
 * order, then the stats (whose presence marks the chunk done). */
static int sink_put_chunk(void *ctx, const struct sae_index_chunk *ch, struct ev_err *err) {
    struct sink_ctx   *k = ctx;
    struct store_stmt *ins_ex = NULL, *ins_st = NULL, *del = NULL;
    int                rc;
    if ((rc = store_begin(k->db, err))) return rc;
    if ((rc = store_prepare(k->db, "DELETE FROM examples WHERE sae_id = ?1 AND feature_idx = ?2",
                            &del, err)))
        goto fail;
    for (int j = 0; j < ch->n_features; j++) {
        store_reset(del);
        store_bind_int(del, 1, k->sae_id);
        store_bind_int(del, 2, ch->ids[j]);
        if ((rc = store_step(del, err)) < 0) goto fail;
    }
    if ((rc = store_prepare(k->db, "INSERT INTO examples (sae_id, feature_idx, kind, interval, "
                                   "activation, center, tokens, acts, text) VALUES "
                                   "(?1,?2,?3,?4,?5,?6,?7,?8,?9)", &ins_ex, err)))
        goto fail;
    for (int i = 0; i < ch->n_ex; i++) {
        const struct sae_index_example *e = &ch->ex[i];
        store_reset(ins_ex);
        store_bind_int(ins_ex, 1, k->sae_id);
        store_bind_int(ins_ex, 2, e->feature);
        store_bind_text(ins_ex, 3, kind_name(e->kind));
        if (e->interval >= 0) store_bind_int(ins_ex, 4, e->interval);
        else store_bind_null(ins_ex, 4);
        store_bind_double(ins_ex, 5, e->activation);
        store_bind_int(ins_ex, 6, e->center);
        store_bind_blob(ins_ex, 7, e->tokens, (size_t)e->n * sizeof(int));
        store_bind_blob(ins_ex, 8, e->acts, (size_t)e->n * sizeof(float));
        store_bind_text(ins_ex, 9, e->text);
        if ((rc = store_step(ins_ex, err)) < 0) goto fail;
    }
    if ((rc = store_prepare(k->db, "INSERT OR REPLACE INTO feature_stats (sae_id, idx, n_tokens, "
                                   "fire_count, density, max_act, mean_act, quantiles) VALUES "
                                   "(?1,?2,?3,?4,?5,?6,?7,?8)", &ins_st, err)))
        goto fail;
    for (int j = 0; j < ch->n_features; j++) {
        const struct sae_index_stats *s = &ch->stats[j];
        char                         *qj = quantiles_json(s->quantiles);
        store_reset(ins_st);
        store_bind_int(ins_st, 1, k->sae_id);
        store_bind_int(ins_st, 2, s->feature);
        store_bind_int(ins_st, 3, s->n_tokens);
        store_bind_int(ins_st, 4, s->fire_count);
        store_bind_double(ins_st, 5, s->density);
        store_bind_double(ins_st, 6, s->max_act);
        store_bind_double(ins_st, 7, s->mean_act);
        store_bind_text(ins_st, 8, qj);
        free(qj);
        if ((rc = store_step(ins_st, err)) < 0) goto fail;
    }
    if ((rc = store_commit(k->db, err))) goto fail;
    rc = EV_OK;
    goto out;
fail:
    rc = EV_EFAIL;
    store_rollback(k->db);
out:
    store_finalize(del);
    store_finalize(ins_ex);
    store_finalize(ins_st);
    return rc;
}

/* Drops a stored index of another configuration for this SAE; *complete says whether the
 * index of config_hash is complete. */
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

static int run_row_put(struct store *db, int64_t sae_id, const char *config_hash,
                       int64_t run_id, int64_t n_tokens, struct ev_err *err) {
    struct store_stmt *up = NULL;
    int rc = store_prepare(db, "INSERT INTO feature_index_runs (sae_id, config_hash, run_id, "
                               "n_tokens, complete) VALUES (?1,?2,?3,?4,0) ON CONFLICT DO "
                               "UPDATE SET run_id = excluded.run_id", &up, err);
    if (rc) return rc;
    store_bind_int(up, 1, sae_id);
    store_bind_text(up, 2, config_hash);
    store_bind_int(up, 3, run_id);
    store_bind_int(up, 4, n_tokens);
    rc = store_step(up, err);
    store_finalize(up);
    return rc < 0 ? rc : EV_OK;
}

static int run_row_complete(struct store *db, int64_t sae_id, const char *config_hash,
                            struct ev_err *err) {
    struct store_stmt *up = NULL;
    int rc = store_prepare(db, "UPDATE feature_index_runs SET complete = 1 WHERE sae_id = ?1 "
                               "AND config_hash = ?2", &up, err);
    if (rc) return rc;
    store_bind_int(up, 1, sae_id);
    store_bind_text(up, 2, config_hash);
    rc = store_step(up, err);
    store_finalize(up);
    return rc < 0 ? rc : EV_OK;
}

int index_build(struct store *db, int64_t sae_id, int64_t run_id, const char *config_hash,
                struct model *m, const struct sae *s, const char *hook_name,
                const struct acts_corpus *c, const struct sae_index_params *p,
                struct sae_index_result *res, struct ev_err *err) {
    struct sink_ctx       ctx = {db, sae_id};
    struct sae_index_sink sink = {&ctx, sink_chunk_done, sink_put_chunk};
    int                   rc, complete = 0;
    memset(res, 0, sizeof *res);
    res->n_tokens = (int64_t)c->n_seq * (c->T - 1);
    if ((rc = reset_other_config(db, sae_id, config_hash, &complete, err))) return rc;
    if (complete && p->shard_n <= 1) {
        res->reused = 1;
        return EV_OK;
    }
    if ((rc = run_row_put(db, sae_id, config_hash, run_id, res->n_tokens, err))) return rc;
    if ((rc = sae_index_compute(m, s, hook_name, c, p, &sink, res, err))) return rc;
    if (!p->features && p->shard_n <= 1) return run_row_complete(db, sae_id, config_hash, err);
    return EV_OK;
}

// ---------------------------------------------------------------------------- reading

/* A prepared statement with sae_id bound to ?1 and, when feature >= 0, feature to ?2. */
static int prep2(struct store *db, const char *sql, int64_t sae_id, int feature,
                 struct store_stmt **st, struct ev_err *err) {
    int rc = store_prepare(db, sql, st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(*st, 1, sae_id);
    if (feature >= 0) store_bind_int(*st, 2, feature);
    return EV_OK;
}

int index_source_run(struct store *db, int64_t sae_id, int64_t *run_id, int64_t *n_tokens,
                     struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = prep2(db, "SELECT run_id, n_tokens FROM feature_index_runs WHERE sae_id = ?1 AND "
                       "run_id IS NOT NULL ORDER BY complete DESC, run_id DESC LIMIT 1",
                   sae_id, -1, &st, err);
    if (rc != EV_OK) return rc;
    rc = store_step(st, err);
    if (rc == STORE_ROW) {
        *run_id = store_col_int(st, 0);
        *n_tokens = store_col_int(st, 1);
    }
    store_finalize(st);
    return rc < 0 ? rc : rc == STORE_ROW;
}

int index_count_windows(struct store *db, int64_t sae_id, int64_t *n, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = prep2(db, "SELECT count(*) FROM examples WHERE sae_id = ?1", sae_id, -1, &st, err);
    if (rc != EV_OK) return rc;
    rc = store_step(st, err) == STORE_ROW ? EV_OK : EV_EFAIL;
    *n = rc == EV_OK ? store_col_int(st, 0) : 0;
    store_finalize(st);
    return rc;
}

void index_windows_release(struct index_windows *x) {
    for (int i = 0; i < x->n; i++) {
        free(x->w[i].tokens);
        free(x->w[i].acts);
    }
    free(x->w);
    memset(x, 0, sizeof *x);
}

int index_top_windows(struct store *db, int64_t sae_id, int feature, struct index_windows *out,
                      struct ev_err *err) {
    struct index_windows x = {0};
    struct store_stmt   *st = NULL;
    int                  cap = 0, r;
    memset(out, 0, sizeof *out);
    int rc = prep2(db, "SELECT id, kind, interval, activation, center, tokens, acts "
                       "FROM examples WHERE sae_id = ?1 AND feature_idx = ?2 "
                       "ORDER BY activation DESC, id", sae_id, feature, &st, err);
    if (rc != EV_OK) return rc;
    while ((r = store_step(st, err)) == STORE_ROW) {
        size_t      nt = 0, na = 0;
        const void *tb = store_col_blob(st, 5, &nt);
        const void *ab = store_col_blob(st, 6, &na);
        int64_t     id = store_col_int(st, 0);
        if (nt == 0 || nt % 4 != 0 || na != nt) {
            ev_fail(err, EV_EFAIL, "examples row %lld (feature %d): token and activation blobs "
                                   "of %zu and %zu bytes; expected the same non-zero multiple "
                                   "of 4 (int32 ids, float32 activations)",
                    (long long)id, feature, nt, na);
            r = EV_EFAIL;
            break;
        }
        if (x.n == cap) {
            cap = cap ? cap * 2 : 32;
            x.w = xrealloc(x.w, sizeof *x.w * (size_t)cap);
        }
        struct index_window *w = &x.w[x.n++];
        memset(w, 0, sizeof *w);
        w->id = id;
        snprintf(w->kind, sizeof w->kind, "%s",
                 store_col_is_null(st, 1) ? "" : store_col_text(st, 1));
        w->interval = store_col_is_null(st, 2) ? -1 : (int)store_col_int(st, 2);
        w->activation = store_col_double(st, 3);
        w->center = (int)store_col_int(st, 4);
        w->n = (int)(nt / 4);
        w->tokens = xmalloc(nt);
        w->acts = xmalloc(na);
        memcpy(w->tokens, tb, nt); /* little-endian int32/float32 on every supported host */
        memcpy(w->acts, ab, na);
    }
    store_finalize(st);
    if (r < 0) {
        index_windows_release(&x);
        return EV_EFAIL;
    }
    *out = x;
    return EV_OK;
}

static double quantile_of(const cJSON *q, const char *key) {
    const cJSON *v = q ? cJSON_GetObjectItemCaseSensitive(q, key) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : (double)NAN;
}

int index_feature_stats(struct store *db, int64_t sae_id, int feature, struct index_stats *out,
                        struct ev_err *err) {
    struct store_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    out->q10 = out->q50 = out->q90 = out->q99 = NAN;
    out->density = out->max_act = out->mean_act = NAN;
    int rc = prep2(db, "SELECT n_tokens, fire_count, density, max_act, mean_act, quantiles "
                       "FROM feature_stats WHERE sae_id = ?1 AND idx = ?2", sae_id, feature, &st,
                   err);
    if (rc != EV_OK) return rc;
    rc = store_step(st, err);
    if (rc == STORE_ROW) {
        out->n_tokens = store_col_int(st, 0);
        out->fire_count = store_col_int(st, 1);
        out->density = store_col_double(st, 2);
        out->max_act = store_col_double(st, 3);
        out->mean_act = store_col_double(st, 4);
        const char   *qs = store_col_text(st, 5);
        cJSON        *q = NULL;
        struct ev_err ignore;
        /* a malformed quantiles column only loses the quantiles */
        if (qs && json_parse(qs, strlen(qs), "quantiles", &q, &ignore) == EV_OK) {
            out->q10 = quantile_of(q, "0.1");
            out->q50 = quantile_of(q, "0.5");
            out->q90 = quantile_of(q, "0.9");
            out->q99 = quantile_of(q, "0.99");
        }
        json_free(q);
    }
    store_finalize(st);
    return rc < 0 ? rc : rc == STORE_ROW;
}

int index_has_stats(struct store *db, int64_t sae_id, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = prep2(db, "SELECT 1 FROM feature_stats WHERE sae_id = ?1 LIMIT 1", sae_id, -1, &st,
                   err);
    if (rc != EV_OK) return rc;
    rc = store_step(st, err);
    store_finalize(st);
    return rc < 0 ? rc : rc == STORE_ROW;
}

int index_stats_all(struct store *db, int64_t sae_id, int d_sae, double *max_act,
                    double *density, struct ev_err *err) {
    struct store_stmt *st = NULL;
    for (int i = 0; i < d_sae; i++) max_act[i] = density[i] = NAN;
    int rc = prep2(db, "SELECT idx, max_act, density FROM feature_stats WHERE sae_id = ?1",
                   sae_id, -1, &st, err);
    if (rc != EV_OK) return rc;
    while ((rc = store_step(st, err)) == STORE_ROW) {
        int64_t i = store_col_int(st, 0);
        if (i < 0 || i >= d_sae) continue;
        max_act[i] = store_col_double(st, 1);
        density[i] = store_col_double(st, 2);
    }
    store_finalize(st);
    return rc < 0 ? rc : EV_OK;
}

int index_fired_features(struct store *db, int64_t sae_id, int max, int **ids, int *n,
                         struct ev_err *err) {
    struct store_stmt *st = NULL;
    *ids = NULL;
    *n = 0;
    int rc = prep2(db, "SELECT idx FROM feature_stats WHERE sae_id = ?1 AND fire_count > 0 "
                       "ORDER BY idx", sae_id, -1, &st, err);
    if (rc != EV_OK) return rc;
    int *v = xmalloc(sizeof *v * (size_t)(max > 0 ? max : 1)), k = 0;
    while ((rc = store_step(st, err)) == STORE_ROW && k < max) v[k++] = (int)store_col_int(st, 0);
    store_finalize(st);
    if (rc < 0) {
        free(v);
        return rc;
    }
    *ids = v;
    *n = k;
    return EV_OK;
}

// ---------------------------------------------------------------------------- analyses

int index_put_neighbors(struct store *db, int64_t sae_id, const int *ids, int n_ids, int k,
                        const int *nb, const float *cs, struct ev_err *err) {
    struct store_stmt *a = NULL;
    int rc = store_prepare(db, "INSERT OR REPLACE INTO feature_neighbors VALUES (?1,?2,?3,?4,?5)",
                           &a, err);
    if (rc != EV_OK) return rc;
    for (int i = 0; i < n_ids && rc == EV_OK; i++)
        for (int r = 0; r < k; r++) {
            store_reset(a);
            store_bind_int(a, 1, sae_id);
            store_bind_int(a, 2, ids[i]);
            store_bind_int(a, 3, r);
            store_bind_int(a, 4, nb[(size_t)i * k + r]);
            store_bind_double(a, 5, cs[(size_t)i * k + r]);
            if (store_step(a, err) < 0) {
                rc = EV_EFAIL;
                break;
            }
        }
    store_finalize(a);
    return rc;
}

int index_put_logits(struct store *db, int64_t sae_id, const int *ids, int n_ids, int k,
                     const int *top, const float *tv, const int *bot, const float *bv,
                     struct ev_err *err) {
    struct store_stmt *b = NULL;
    int rc = store_prepare(db, "INSERT OR REPLACE INTO feature_logits VALUES (?1,?2,?3,?4,?5,?6)",
                           &b, err);
    if (rc != EV_OK) return rc;
    for (int i = 0; i < n_ids && rc == EV_OK; i++)
        for (int sg = 0; sg < 2 && rc == EV_OK; sg++)
            for (int r = 0; r < k; r++) {
                size_t o = (size_t)i * k + r;
                store_reset(b);
                store_bind_int(b, 1, sae_id);
                store_bind_int(b, 2, ids[i]);
                store_bind_int(b, 3, sg ? -1 : 1);
                store_bind_int(b, 4, r);
                store_bind_int(b, 5, sg ? bot[o] : top[o]);
                store_bind_double(b, 6, sg ? bv[o] : tv[o]);
                if (store_step(b, err) < 0) {
                    rc = EV_EFAIL;
                    break;
                }
            }
    store_finalize(b);
    return rc;
}

int index_put_neurons(struct store *db, int64_t sae_id, const int *ids, int n_ids, int layer,
                      const int *best, const double *r, int64_t n_tokens, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(db, "INSERT OR REPLACE INTO feature_neurons VALUES "
                               "(?1,?2,?3,?4,?5,?6)", &st, err);
    if (rc != EV_OK) return rc;
    for (int i = 0; i < n_ids; i++) {
        store_reset(st);
        store_bind_int(st, 1, sae_id);
        store_bind_int(st, 2, ids[i]);
        store_bind_int(st, 3, layer);
        store_bind_int(st, 4, best[i]);
        store_bind_double(st, 5, r[i]);
        store_bind_int(st, 6, n_tokens);
        if (store_step(st, err) < 0) {
            rc = EV_EFAIL;
            break;
        }
    }
    store_finalize(st);
    return rc;
}

int index_logits(struct store *db, int64_t sae_id, int feature, int k, struct index_logit **rows,
                 int *n, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                cap = 0, m = 0;
    struct index_logit *v = NULL;
    *rows = NULL;
    *n = 0;
    int rc = prep2(db, "SELECT sign, rank, token, effect FROM feature_logits WHERE sae_id = ?1 "
                       "AND idx = ?2 AND rank < ?3 ORDER BY sign, rank", sae_id, feature, &st,
                   err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 3, k);
    while ((rc = store_step(st, err)) == STORE_ROW) {
        if (m == cap) v = xrealloc(v, sizeof *v * (size_t)(cap = cap ? cap * 2 : 16));
        v[m++] = (struct index_logit){(int)store_col_int(st, 0), (int)store_col_int(st, 1),
                                      (int)store_col_int(st, 2), store_col_double(st, 3)};
    }
    store_finalize(st);
    if (rc < 0) {
        free(v);
        return rc;
    }
    *rows = v;
    *n = m;
    return EV_OK;
}

int index_neighbors(struct store *db, int64_t sae_id, int feature, int k,
                    struct index_neighbor **rows, int *n, struct ev_err *err) {
    struct store_stmt     *st = NULL;
    int                    cap = 0, m = 0;
    struct index_neighbor *v = NULL;
    *rows = NULL;
    *n = 0;
    int rc = prep2(db, "SELECT rank, other, cosine FROM feature_neighbors WHERE sae_id = ?1 "
                       "AND idx = ?2 AND rank < ?3 ORDER BY rank", sae_id, feature, &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 3, k);
    while ((rc = store_step(st, err)) == STORE_ROW) {
        if (m == cap) v = xrealloc(v, sizeof *v * (size_t)(cap = cap ? cap * 2 : 16));
        v[m++] = (struct index_neighbor){(int)store_col_int(st, 0), (int)store_col_int(st, 1),
                                         store_col_double(st, 2)};
    }
    store_finalize(st);
    if (rc < 0) {
        free(v);
        return rc;
    }
    *rows = v;
    *n = m;
    return EV_OK;
}

int index_neuron(struct store *db, int64_t sae_id, int feature, struct index_neuron *out,
                 struct ev_err *err) {
    struct store_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    int rc = prep2(db, "SELECT layer, neuron, pearson, n_tokens FROM feature_neurons WHERE "
                       "sae_id = ?1 AND idx = ?2", sae_id, feature, &st, err);
    if (rc != EV_OK) return rc;
    rc = store_step(st, err);
    if (rc == STORE_ROW)
        *out = (struct index_neuron){(int)store_col_int(st, 0), (int)store_col_int(st, 1),
                                     store_col_double(st, 2), store_col_int(st, 3)};
    store_finalize(st);
    return rc < 0 ? rc : rc == STORE_ROW;
}
