/*
 * influence — the influence_measures table (see influence.h).
 */
#include "store/influence.h"

#include <math.h>

#include "store/store.h"

static void bind_real(struct store_stmt *st, int i, double v) {
    if (isfinite(v)) store_bind_double(st, i, v);
    else store_bind_null(st, i);
}

int influence_measure_put(struct store *s, int64_t run_id, const struct influence_measure_row *m,
                          struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "INSERT INTO influence_measures (run_id, item_key, gen_key, "
                           "feature_idx, scale, prompt_idx, n_tokens, loglik, act_mean, act_max, "
                           "kl_mean, kl_max, n_kl, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                           "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT (run_id, item_key) "
                           "DO NOTHING", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, m->key);
    store_bind_text(st, 3, m->gen_key);
    store_bind_int(st, 4, m->feature);
    bind_real(st, 5, m->scale);
    store_bind_int(st, 6, m->prompt);
    store_bind_int(st, 7, m->n_tokens);
    store_bind_double(st, 8, m->loglik);
    store_bind_double(st, 9, m->act_mean);
    store_bind_double(st, 10, m->act_max);
    bind_real(st, 11, m->kl_mean);
    bind_real(st, 12, m->kl_max);
    if (m->n_kl > 0) store_bind_int(st, 13, m->n_kl);
    else store_bind_null(st, 13);
    store_bind_int(st, 14, now_unix_ms());
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    return rc;
}

int influence_measure_has(struct store *s, int64_t run_id, const char *key, struct ev_err *err) {
    return store_has_run_key(s, "SELECT 1 FROM influence_measures WHERE run_id = ?1 AND "
                                "item_key = ?2", run_id, key, err);
}

static double col_real(struct store_stmt *st, int i) {
    return store_col_is_null(st, i) ? (double)NAN : store_col_double(st, i);
}

int influence_measures_each(struct store *s, int64_t run_id,
                            int (*fn)(void *ctx, const struct influence_measure_row *m),
                            void *ctx, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT item_key, gen_key, feature_idx, scale, prompt_idx, n_tokens, "
                           "loglik, act_mean, act_max, kl_mean, kl_max, n_kl FROM "
                           "influence_measures WHERE run_id = ?1 ORDER BY feature_idx, "
                           "scale IS NOT NULL, scale, prompt_idx", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        struct influence_measure_row m = {
            .key = store_col_text(st, 0), .gen_key = store_col_text(st, 1),
            .feature = (int)store_col_int(st, 2), .scale = col_real(st, 3),
            .prompt = (int)store_col_int(st, 4), .n_tokens = (int)store_col_int(st, 5),
            .loglik = store_col_double(st, 6), .act_mean = store_col_double(st, 7),
            .act_max = store_col_double(st, 8), .kl_mean = col_real(st, 9),
            .kl_max = col_real(st, 10),
            .n_kl = store_col_is_null(st, 11) ? 0 : (int)store_col_int(st, 11)};
        if ((rc = fn(ctx, &m)) != EV_OK) break;
    }
    store_finalize(st);
    if (r < 0) return EV_EFAIL;
    return rc;
}
