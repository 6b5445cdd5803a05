/*
 * features — the features and feature_tags tables (see features.h).
 */
#include "store/features.h"

#include <math.h>
#include <stdlib.h>

#include "store/store.h"

char *features_description(struct store *s, int64_t sae_id, int feature, char **source) {
    struct store_stmt *st = NULL;
    struct ev_err      err;
    char              *d = NULL;
    if (source) *source = NULL;
    if (store_prepare(s, "SELECT description, desc_source FROM features "
                         "WHERE sae_id = ?1 AND idx = ?2", &st, &err) != EV_OK)
        return NULL;
    store_bind_int(st, 1, sae_id);
    store_bind_int(st, 2, feature);
    if (store_step(st, &err) == STORE_ROW && !store_col_is_null(st, 0)) {
        d = xstrdup(store_col_text(st, 0));
        if (source && !store_col_is_null(st, 1)) *source = xstrdup(store_col_text(st, 1));
    }
    store_finalize(st);
    return d;
}

int64_t features_description_run(struct store *s, int64_t sae_id, int feature) {
    struct store_stmt *st = NULL;
    struct ev_err      err;
    int64_t            id = 0;
    if (store_prepare(s, "SELECT desc_run_id FROM features WHERE sae_id = ?1 AND idx = ?2 "
                         "AND description IS NOT NULL", &st, &err) != EV_OK)
        return 0;
    store_bind_int(st, 1, sae_id);
    store_bind_int(st, 2, feature);
    if (store_step(st, &err) == STORE_ROW && !store_col_is_null(st, 0)) id = store_col_int(st, 0);
    store_finalize(st);
    return id;
}

int features_set_description(struct store *s, int64_t sae_id, int feature, const char *text,
                             const char *source, int64_t run_id, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "INSERT INTO features (sae_id, idx, description, desc_source, "
                           "desc_run_id) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (sae_id, idx) "
                           "DO UPDATE SET description = excluded.description, desc_source = "
                           "excluded.desc_source, desc_run_id = excluded.desc_run_id", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, sae_id);
    store_bind_int(st, 2, feature);
    store_bind_text(st, 3, text);
    store_bind_text(st, 4, source);
    if (run_id > 0) store_bind_int(st, 5, run_id);
    else store_bind_null(st, 5);
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    return rc;
}

int features_tag(struct store *s, int64_t sae_id, int feature, const char *category, int remove,
                 int *changed, struct ev_err *err) {
    struct store_stmt *st = NULL;
    *changed = 0;
    int rc = store_prepare(s,
                           remove ? "DELETE FROM feature_tags WHERE sae_id = ?1 AND feature_idx = ?2 "
                                    "AND category = ?3"
                                  : "INSERT OR IGNORE INTO feature_tags (sae_id, feature_idx, "
                                    "category, created_ms) VALUES (?1, ?2, ?3, ?4)",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, sae_id);
    store_bind_int(st, 2, feature);
    store_bind_text(st, 3, category);
    if (!remove) store_bind_int(st, 4, now_unix_ms());
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    if (rc == EV_OK) *changed = store_changes(s) > 0;
    store_finalize(st);
    return rc;
}

int features_in_category(struct store *s, int64_t sae_id, const char *category,
                         int (*fn)(void *ctx, int feature, double density, const char *desc),
                         void *ctx, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT t.feature_idx, s.density, f.description FROM feature_tags t "
                           "LEFT JOIN feature_stats s ON s.sae_id = t.sae_id AND s.idx = "
                           "t.feature_idx LEFT JOIN features f ON f.sae_id = t.sae_id AND "
                           "f.idx = t.feature_idx WHERE t.sae_id = ?1 AND t.category = ?2 "
                           "ORDER BY t.feature_idx", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, sae_id);
    store_bind_text(st, 2, category);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW &&
           (rc = fn(ctx, (int)store_col_int(st, 0),
                    store_col_is_null(st, 1) ? (double)NAN : store_col_double(st, 1),
                    store_col_text(st, 2))) == EV_OK) {
    }
    store_finalize(st);
    if (rc != EV_OK) return rc;
    return r < 0 ? EV_EFAIL : EV_OK;
}

int features_categories(struct store *s, int64_t sae_id,
                        int (*fn)(void *ctx, const char *category, int64_t n), void *ctx,
                        struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s, "SELECT category, count(*) FROM feature_tags WHERE "
                              "sae_id = ?1 GROUP BY category ORDER BY category", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, sae_id);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW &&
           (rc = fn(ctx, store_col_text(st, 0), store_col_int(st, 1))) == EV_OK) {
    }
    store_finalize(st);
    if (rc != EV_OK) return rc;
    return r < 0 ? EV_EFAIL : EV_OK;
}

int features_categories_of(struct store *s, int64_t sae_id, int feature, char ***cats, int *n,
                           struct ev_err *err) {
    struct store_stmt *st = NULL;
    *cats = NULL;
    *n = 0;
    int rc = store_prepare(s, "SELECT category FROM feature_tags WHERE sae_id = ?1 AND "
                              "feature_idx = ?2 ORDER BY category", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, sae_id);
    store_bind_int(st, 2, feature);
    while ((rc = store_step(st, err)) == STORE_ROW) {
        *cats = xrealloc(*cats, sizeof **cats * (size_t)(*n + 1));
        (*cats)[(*n)++] = xstrdup(store_col_text(st, 0));
    }
    store_finalize(st);
    return rc < 0 ? EV_EFAIL : EV_OK;
}

int features_category_scores(struct store *s, int64_t run_id, const char *grader_kind,
                             int (*fn)(void *ctx, const char *category, int n_features,
                                       double mean, int n_grades),
                             void *ctx, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT t.category, count(DISTINCT t.feature_idx), avg(g.score), "
                           "count(g.score) FROM feature_tags t JOIN runs r ON r.id = ?1 AND "
                           "r.sae_id = t.sae_id JOIN items i ON i.run_id = r.id AND "
                           "i.feature_idx = t.feature_idx LEFT JOIN grades g ON g.run_id = "
                           "i.run_id AND g.item_key = i.item_key AND g.parse_status = 'ok' AND "
                           "g.grader_kind = ?2 AND i.kind NOT LIKE 'non%' GROUP BY t.category "
                           "ORDER BY t.category",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, grader_kind);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        rc = fn(ctx, store_col_text(st, 0), (int)store_col_int(st, 1),
                store_col_is_null(st, 2) ? (double)NAN : store_col_double(st, 2),
                (int)store_col_int(st, 3));
        if (rc != EV_OK) break;
    }
    store_finalize(st);
    return rc != EV_OK ? rc : r == STORE_DONE || r == STORE_ROW ? EV_OK : EV_EFAIL;
}
