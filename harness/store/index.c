/*
 * index — the feature index tables (feature_index_runs, feature_stats, examples): building
 * through sae_index_compute() and a sink that stores each chunk. See index.h.
 */
#include "store/index.h"

#include <stdlib.h>
#include <string.h>

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
