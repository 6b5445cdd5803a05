/*
 * attributions — the attribution_prompts and attributions tables (see attributions.h).
 */
#include "store/attributions.h"

#include <math.h>
#include <stdlib.h>

#include "store/store.h"

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

static void bind_finite(struct store_stmt *st, int i, double v) {
    if (isfinite(v)) store_bind_double(st, i, v);
    else store_bind_null(st, i);
}

static double col_or_nan(struct store_stmt *st, int i) {
    return store_col_is_null(st, i) ? (double)NAN : store_col_double(st, i);
}

int attributions_has(struct store *db, int64_t run_id, int idx, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(db, "SELECT 1 FROM attribution_prompts WHERE run_id = ?1 AND "
                               "prompt_idx = ?2", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    store_bind_int(st, 2, idx);
    int r = store_step(st, err);
    store_finalize(st);
    return r < 0 ? EV_EFAIL : r == STORE_ROW;
}

int attributions_put(struct store *db, int64_t run_id, int idx,
                     const struct attributions_prompt *p, const struct attributions_row *rows,
                     int n, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_begin(db, err);
    if (rc != EV_OK) return rc;
    rc = store_prepare(db,
                       "INSERT INTO attribution_prompts (run_id, prompt_idx, name, prompt, target, "
                       "contrast, target_id, contrast_id, n_tokens, logit_diff, attr_features, "
                       "attr_error, attr_bias, pearson, spearman, created_ms) VALUES (?1, ?2, ?3, "
                       "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)", &st, err);
    if (rc != EV_OK) goto out;
    store_bind_int(st, 1, run_id);
    store_bind_int(st, 2, idx);
    store_bind_text(st, 3, p->name);
    store_bind_text(st, 4, p->prompt);
    store_bind_text(st, 5, p->target);
    store_bind_text(st, 6, p->contrast);
    store_bind_int(st, 7, p->target_id);
    store_bind_int(st, 8, p->contrast_id);
    store_bind_int(st, 9, p->n_tokens);
    store_bind_double(st, 10, p->logit_diff);
    store_bind_double(st, 11, p->attr_features);
    store_bind_double(st, 12, p->attr_error);
    store_bind_double(st, 13, p->attr_bias);
    bind_finite(st, 14, p->pearson);
    bind_finite(st, 15, p->spearman);
    store_bind_int(st, 16, now_unix_ms());
    if (store_step(st, err) < 0) {
        rc = EV_EFAIL;
        goto out;
    }
    store_finalize(st);
    st = NULL;
    rc = store_prepare(db,
                       "INSERT INTO attributions (run_id, prompt_idx, feature_idx, position, "
                       "token_id, token_text, activation, attribution, rank, ablation_effect) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)", &st, err);
    if (rc != EV_OK) goto out;
    for (int i = 0; i < n; i++) {
        const struct attributions_row *it = &rows[i];
        store_reset(st);
        store_bind_int(st, 1, run_id);
        store_bind_int(st, 2, idx);
        store_bind_int(st, 3, it->feature);
        store_bind_int(st, 4, it->position);
        store_bind_int(st, 5, it->token_id);
        store_bind_text(st, 6, it->token_text);
        store_bind_double(st, 7, it->activation);
        store_bind_double(st, 8, it->attribution);
        store_bind_int(st, 9, it->rank);
        if (isnan(it->ablation)) store_bind_null(st, 10);
        else store_bind_double(st, 10, it->ablation);
        if (store_step(st, err) < 0) {
            rc = EV_EFAIL;
            goto out;
        }
    }
    rc = EV_OK;
out:
    store_finalize(st);
    if (rc == EV_OK) rc = store_commit(db, err);
    else store_rollback(db);
    return rc;
}

int attributions_prompt_get(struct store *db, int64_t run_id, int idx,
                            struct attributions_prompt *p, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(db,
                           "SELECT name, prompt, target, contrast, target_id, contrast_id, "
                           "logit_diff, attr_features, attr_error, attr_bias, pearson, spearman, "
                           "n_tokens FROM attribution_prompts WHERE run_id = ?1 AND "
                           "prompt_idx = ?2", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    store_bind_int(st, 2, idx);
    int r = store_step(st, err);
    if (r == STORE_ROW) {
        p->name = dup_or_null(store_col_text(st, 0));
        p->prompt = dup_or_null(store_col_text(st, 1));
        p->target = dup_or_null(store_col_text(st, 2));
        p->contrast = dup_or_null(store_col_text(st, 3));
        p->target_id = store_col_int(st, 4);
        p->contrast_id = store_col_int(st, 5);
        p->logit_diff = store_col_double(st, 6);
        p->attr_features = store_col_double(st, 7);
        p->attr_error = store_col_double(st, 8);
        p->attr_bias = store_col_double(st, 9);
        p->pearson = col_or_nan(st, 10);
        p->spearman = col_or_nan(st, 11);
        p->n_tokens = store_col_int(st, 12);
    }
    store_finalize(st);
    return r < 0 ? EV_EFAIL : r == STORE_ROW;
}

void attributions_prompt_release(struct attributions_prompt *p) {
    free((char *)p->name);
    free((char *)p->prompt);
    free((char *)p->target);
    free((char *)p->contrast);
    p->name = p->prompt = p->target = p->contrast = NULL;
}

int attributions_ranked(struct store *db, int64_t run_id, int idx, int max_rank,
                        struct attributions_row **rows, int *n, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                cap = 0, r;
    *rows = NULL;
    *n = 0;
    int rc = store_prepare(db,
                           "SELECT rank, feature_idx, position, token_text, activation, attribution, "
                           "ablation_effect, token_id FROM attributions WHERE run_id = ?1 AND "
                           "prompt_idx = ?2 AND rank <= ?3 ORDER BY rank", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    store_bind_int(st, 2, idx);
    store_bind_int(st, 3, max_rank);
    while ((r = store_step(st, err)) == STORE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 32;
            *rows = xrealloc(*rows, (size_t)cap * sizeof **rows);
        }
        struct attributions_row *it = &(*rows)[(*n)++];
        it->rank = (int)store_col_int(st, 0);
        it->feature = (int)store_col_int(st, 1);
        it->position = (int)store_col_int(st, 2);
        it->token_text = dup_or_null(store_col_text(st, 3));
        it->activation = store_col_double(st, 4);
        it->attribution = store_col_double(st, 5);
        it->ablation = col_or_nan(st, 6);
        it->token_id = store_col_int(st, 7);
    }
    store_finalize(st);
    if (r < 0) {
        attributions_rows_free(*rows, *n);
        *rows = NULL;
        *n = 0;
        return EV_EFAIL;
    }
    return EV_OK;
}

void attributions_rows_free(struct attributions_row *rows, int n) {
    for (int i = 0; i < n; i++) free((char *)rows[i].token_text);
    free(rows);
}

int attributions_ablations(struct store *db, int64_t run_id, double **attribution,
                           double **effect, int *n, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                cap = 0, r;
    *attribution = *effect = NULL;
    *n = 0;
    int rc = store_prepare(db,
                           "SELECT attribution, ablation_effect FROM attributions WHERE run_id = "
                           "?1 AND ablation_effect IS NOT NULL ORDER BY prompt_idx, rank",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    while ((r = store_step(st, err)) == STORE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            *attribution = xrealloc(*attribution, sizeof **attribution * (size_t)cap);
            *effect = xrealloc(*effect, sizeof **effect * (size_t)cap);
        }
        (*attribution)[*n] = store_col_double(st, 0);
        (*effect)[*n] = store_col_double(st, 1);
        (*n)++;
    }
    store_finalize(st);
    if (r < 0) {
        free(*attribution);
        free(*effect);
        *attribution = *effect = NULL;
        *n = 0;
        return EV_EFAIL;
    }
    return EV_OK;
}

int attributions_prompt_ids(struct store *db, int64_t run_id, int **ids, int *n,
                            struct ev_err *err) {
    struct store_stmt *st = NULL;
    *ids = NULL;
    *n = 0;
    int rc = store_prepare(db, "SELECT prompt_idx FROM attribution_prompts WHERE run_id = ?1 "
                               "ORDER BY prompt_idx", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        *ids = xrealloc(*ids, (size_t)(*n + 1) * sizeof **ids);
        (*ids)[(*n)++] = (int)store_col_int(st, 0);
    }
    store_finalize(st);
    if (r != STORE_DONE) {
        free(*ids);
        *ids = NULL, *n = 0;
        return EV_EFAIL;
    }
    return EV_OK;
}
