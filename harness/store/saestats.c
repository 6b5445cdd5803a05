/*
 * saestats — the sae_train_log, sae_metrics and sae_sweep tables (see saestats.h).
 */
#include "store/saestats.h"

#include <math.h>
#include <stdlib.h>

#include "store/store.h"

static int step_once(struct store_stmt *st, struct ev_err *err) {
    int rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    return rc;
}

int saestats_train_log_put(struct store *db, int64_t run_id, const struct sae_train_log *lg,
                           struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(db, "INSERT OR REPLACE INTO sae_train_log VALUES "
                               "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    store_bind_int(st, 2, lg->step);
    store_bind_int(st, 3, lg->tokens);
    store_bind_double(st, 4, lg->st.loss);
    store_bind_double(st, 5, lg->st.mse);
    store_bind_double(st, 6, lg->st.l1);
    store_bind_double(st, 7, lg->st.l0);
    store_bind_double(st, 8, lg->st.fvu);
    store_bind_double(st, 9, lg->dead_frac);
    store_bind_double(st, 10, lg->lambda);
    store_bind_double(st, 11, lg->lr);
    store_bind_double(st, 12, lg->elapsed_s);
    return step_once(st, err);
}

int saestats_metrics_put(struct store *db, int64_t run_id, int64_t sae_id, const char *hash,
                         const struct sae_metrics *r, const char *hist_json, struct ev_err *err) {
    struct store_stmt *ins = NULL;
    int rc = store_prepare(db,
                           "INSERT INTO sae_metrics (run_id, sae_id, sae_hash, n_tokens, l0, l1, "
                           "mse, explained_variance, explained_variance_legacy, fvu, l2_ratio, "
                           "rel_recon_bias, dead_frac, density_hist, ce_clean, ce_sae, ce_zero, "
                           "ce_loss_score, kl_sae, kl_zero, kl_div_score, created_ms) VALUES "
                           "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,"
                           "?20,?21,?22)", &ins, err);
    if (rc != EV_OK) return rc;
    store_bind_int(ins, 1, run_id);
    store_bind_int(ins, 2, sae_id);
    store_bind_text(ins, 3, hash);
    store_bind_int(ins, 4, r->n_tokens);
    const double v[] = {r->l0, r->l1, r->mse, r->explained_variance,
                        r->explained_variance_legacy, r->fvu, r->l2_ratio, r->rel_recon_bias,
                        r->dead_frac};
    for (int i = 0; i < 9; i++) store_bind_double(ins, 5 + i, v[i]);
    store_bind_text(ins, 14, hist_json);
    const double w[] = {r->ce_clean, r->ce_sae, r->ce_zero, r->ce_loss_score, r->kl_sae,
                        r->kl_zero, r->kl_div_score};
    for (int i = 0; i < 7; i++) store_bind_double(ins, 15 + i, w[i]);
    store_bind_int(ins, 22, now_unix_ms());
    return step_once(ins, err);
}

int saestats_sweep_has(struct store *db, int64_t run_id, int64_t d_sae, int64_t n_tokens,
                       struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(db, "SELECT count(*) FROM sae_sweep WHERE run_id = ?1 AND d_sae = ?2 "
                               "AND n_tokens = ?3", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    store_bind_int(st, 2, d_sae);
    store_bind_int(st, 3, n_tokens);
    int r = store_step(st, err);
    rc = r < 0 ? EV_EFAIL : r == STORE_ROW && store_col_int(st, 0) > 0;
    store_finalize(st);
    return rc;
}

int saestats_sweep_put(struct store *db, int64_t run_id, const struct saestats_sweep_row *r,
                       struct ev_err *err) {
    struct store_stmt *ins = NULL;
    int rc = store_prepare(db, "INSERT OR REPLACE INTO sae_sweep VALUES "
                               "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)", &ins, err);
    if (rc != EV_OK) return rc;
    store_bind_int(ins, 1, run_id);
    store_bind_int(ins, 2, r->d_sae);
    store_bind_int(ins, 3, r->n_tokens);
    store_bind_double(ins, 4, r->l1);
    store_bind_double(ins, 5, r->loss);
    store_bind_double(ins, 6, r->mse);
    store_bind_double(ins, 7, r->l0);
    store_bind_double(ins, 8, r->fvu);
    store_bind_double(ins, 9, r->dead_frac);
    store_bind_double(ins, 10, r->flops);
    store_bind_double(ins, 11, r->train_s);
    store_bind_text(ins, 12, r->sae_hash);
    store_bind_text(ins, 13, r->path);
    return step_once(ins, err);
}

int saestats_metrics_latest(struct store *db, int64_t run_id, double v[4], struct ev_err *err) {
    struct store_stmt *st = NULL;
    for (int i = 0; i < 4; i++) v[i] = NAN;
    int rc = store_prepare(db,
                           "SELECT l0, fvu, dead_frac, ce_loss_score FROM sae_metrics "
                           "WHERE run_id = ?1 ORDER BY id DESC LIMIT 1",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    int r = store_step(st, err);
    if (r == STORE_ROW)
        for (int i = 0; i < 4; i++)
            if (!store_col_is_null(st, i)) v[i] = store_col_double(st, i);
    store_finalize(st);
    return r == STORE_ROW ? 1 : r == STORE_DONE ? 0 : EV_EFAIL;
}

int saestats_metrics_row(struct store *db, int64_t run_id, double v[16], char **hist_json,
                         char **sae_hash, struct ev_err *err) {
    struct store_stmt *st = NULL;
    *hist_json = *sae_hash = NULL;
    int rc = store_prepare(db,
                           "SELECT n_tokens, l0, l1, mse, explained_variance, fvu, l2_ratio, "
                           "rel_recon_bias, dead_frac, ce_clean, ce_sae, ce_zero, ce_loss_score, "
                           "kl_sae, kl_zero, kl_div_score, density_hist, sae_hash FROM "
                           "sae_metrics WHERE run_id = ?1 ORDER BY id DESC LIMIT 1",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    int r = store_step(st, err);
    if (r == STORE_ROW) {
        for (int i = 0; i < 16; i++)
            v[i] = store_col_is_null(st, i) ? (double)NAN : store_col_double(st, i);
        if (store_col_text(st, 16)) *hist_json = xstrdup(store_col_text(st, 16));
        if (store_col_text(st, 17)) *sae_hash = xstrdup(store_col_text(st, 17));
    }
    store_finalize(st);
    return r == STORE_ROW ? 1 : r == STORE_DONE ? 0 : EV_EFAIL;
}

int saestats_sweep_each(struct store *db, int64_t run_id,
                        int (*fn)(void *ctx, const struct saestats_sweep_row *r), void *ctx,
                        struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(db,
                           "SELECT d_sae, n_tokens, l1, loss, mse, l0, fvu, dead_frac, flops, "
                           "train_s FROM sae_sweep WHERE run_id = ?1 ORDER BY d_sae, n_tokens",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        double d[8];
        for (int i = 0; i < 8; i++)
            d[i] = store_col_is_null(st, 2 + i) ? (double)NAN : store_col_double(st, 2 + i);
        const struct saestats_sweep_row row = {store_col_int(st, 0), store_col_int(st, 1), d[0],
                                               d[1], d[2], d[3], d[4], d[5], d[6], d[7], NULL,
                                               NULL};
        if ((rc = fn(ctx, &row)) != EV_OK) break;
    }
    store_finalize(st);
    return rc != EV_OK ? rc : r == STORE_DONE || r == STORE_ROW ? EV_OK : EV_EFAIL;
}
