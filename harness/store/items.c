/*
 * items — the items table (see items.h).
 */
#include "store/items.h"

#include <math.h>
#include <stdlib.h>

#include "store/store.h"

int items_put(struct store *s, int64_t run_id, const struct item_row *it, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "INSERT INTO items (run_id, item_key, kind, feature_idx, example_id, "
                           "interval, activation, template, template_hash, prompt, payload_json, "
                           "created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
                           "ON CONFLICT (run_id, item_key) DO NOTHING", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, it->key);
    store_bind_text(st, 3, it->kind);
    if (it->feature >= 0) store_bind_int(st, 4, it->feature); else store_bind_null(st, 4);
    if (it->example_id > 0) store_bind_int(st, 5, it->example_id); else store_bind_null(st, 5);
    if (it->interval >= 0) store_bind_int(st, 6, it->interval); else store_bind_null(st, 6);
    if (isfinite(it->activation)) store_bind_double(st, 7, it->activation);
    else store_bind_null(st, 7);
    store_bind_text(st, 8, it->template_name);
    store_bind_text(st, 9, it->template_hash);
    store_bind_text(st, 10, it->prompt);
    store_bind_text(st, 11, it->payload_json);
    store_bind_int(st, 12, now_unix_ms());
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    return rc;
}

int items_review(struct store *s, int64_t run_id, int64_t sae_id, const char *rater,
                 int llm_graded, int (*fn)(void *ctx, const struct items_review_row *row),
                 void *ctx, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                r;
    int rc = store_prepare(
        s,
        "SELECT i.item_key, i.kind, coalesce(i.feature_idx, -1), coalesce(i.interval, -1), "
        "coalesce(i.activation, 0), f.description, e.tokens, e.acts, coalesce(e.text, ''), "
        "i.payload_json, h.score, h.id IS NOT NULL, i.prompt FROM items i "
        "LEFT JOIN examples e ON e.id = i.example_id "
        "LEFT JOIN features f ON f.sae_id = ?3 AND f.idx = i.feature_idx "
        "LEFT JOIN grades h ON h.run_id = i.run_id AND h.item_key = i.item_key AND "
        "h.grader_kind = 'human' AND h.grader_name = ?2 "
        "WHERE i.run_id = ?1 AND i.kind IN ('interval', 'nonactivating', 'influence_concept', "
        "'influence_fluency') AND "
        "(EXISTS (SELECT 1 FROM grades g WHERE g.run_id = i.run_id AND g.item_key = i.item_key "
        "AND g.grader_kind = 'llm' AND g.parse_status = 'ok')) = ?4 ORDER BY i.item_key",
        &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, rater);
    store_bind_int(st, 3, sae_id);
    store_bind_int(st, 4, llm_graded != 0);
    while ((r = store_step(st, err)) == STORE_ROW) {
        struct items_review_row row = {
            .item_key = store_col_text(st, 0),
            .kind = store_col_text(st, 1),
            .feature = (int)store_col_int(st, 2),
            .interval = (int)store_col_int(st, 3),
            .activation = store_col_double(st, 4),
            .description = store_col_text(st, 5),
            .example_text = store_col_text(st, 8),
            .payload_json = store_col_text(st, 9),
            .score = store_col_is_null(st, 10) ? -1 : (int)store_col_int(st, 10),
            .answered = (int)store_col_int(st, 11),
            .prompt = store_col_text(st, 12),
        };
        row.tokens = store_col_blob(st, 6, &row.tokens_n);
        row.acts = store_col_blob(st, 7, &row.acts_n);
        if ((rc = fn(ctx, &row)) != EV_OK) break;
    }
    store_finalize(st);
    if (rc != EV_OK) return rc;
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}

#define PENDING_WHERE                                                                        \
    "FROM items i WHERE i.run_id = ?1 AND i.template = ?2 AND NOT EXISTS (SELECT 1 FROM "    \
    "grades g WHERE g.run_id = i.run_id AND g.item_key = i.item_key AND g.grader_kind = "    \
    "'llm' AND g.parse_status != 'error')"

int items_pending_count(struct store *s, int64_t run_id, const char *tpl_name, long *n,
                        struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                rc = store_prepare(s, "SELECT count(*) " PENDING_WHERE, &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, tpl_name);
    rc = store_step(st, err) == STORE_ROW ? EV_OK : EV_EFAIL;
    *n = rc == EV_OK ? (long)store_col_int(st, 0) : 0;
    store_finalize(st);
    return rc;
}

int items_pending(struct store *s, int64_t run_id, const char *tpl_name, int64_t after,
                  int limit, int (*fn)(void *ctx, const struct items_pending_row *row),
                  void *ctx, struct ev_err *err) {
    struct store_stmt *q = NULL;
    int                r;
    int rc = store_prepare(s,
                           "SELECT i.item_key, i.feature_idx, i.example_id, i.prompt, "
                           "i.template_hash, i.id " PENDING_WHERE " AND i.id > ?3 ORDER BY i.id "
                           "LIMIT ?4", &q, err);
    if (rc != EV_OK) return rc;
    store_bind_int(q, 1, run_id);
    store_bind_text(q, 2, tpl_name);
    store_bind_int(q, 3, after);
    store_bind_int(q, 4, limit);
    while ((r = store_step(q, err)) == STORE_ROW) {
        const struct items_pending_row row = {
            .id = store_col_int(q, 5),
            .key = store_col_text(q, 0),
            .feature = store_col_is_null(q, 1) ? -1 : (int)store_col_int(q, 1),
            .example_id = store_col_is_null(q, 2) ? 0 : store_col_int(q, 2),
            .prompt = store_col_text(q, 3),
            .template_hash = store_col_text(q, 4),
        };
        if ((rc = fn(ctx, &row)) != EV_OK) break;
    }
    store_finalize(q);
    if (rc != EV_OK) return rc;
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}

int items_has(struct store *s, int64_t run_id, const char *key, struct ev_err *err) {
    return store_has_run_key(s, "SELECT 1 FROM items WHERE run_id = ?1 AND item_key = ?2", run_id,
                             key, err);
}

int items_count_feature(struct store *s, int64_t run_id, const char *tpl_name, int feature,
                        int *n, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s, "SELECT count(*) FROM items WHERE run_id = ?1 AND "
                              "feature_idx = ?2 AND template = ?3", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    store_bind_int(st, 2, feature);
    store_bind_text(st, 3, tpl_name);
    rc = store_step(st, err) == STORE_ROW ? EV_OK : EV_EFAIL;
    *n = rc == EV_OK ? (int)store_col_int(st, 0) : 0;
    store_finalize(st);
    return rc;
}

int items_graded(struct store *s, int64_t run_id, const char *tpl_name, const char *grader_kind,
                 enum items_order order, int (*fn)(void *ctx, const struct items_graded_row *row),
                 void *ctx, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                r;
    int rc = store_prepare(s,
                           order == ITEMS_BY_FEATURE
                               ? "SELECT i.id, i.item_key, i.kind, i.feature_idx, i.interval, "
                                 "i.payload_json, g.item_key IS NOT NULL, g.score, g.parse_status "
                                 "FROM items i LEFT JOIN grades g ON g.run_id = i.run_id AND "
                                 "g.item_key = i.item_key AND g.grader_kind = ?2 WHERE i.run_id = "
                                 "?1 AND i.template = ?3 ORDER BY i.feature_idx, i.id"
                               : "SELECT i.id, i.item_key, i.kind, i.feature_idx, i.interval, "
                                 "i.payload_json, g.item_key IS NOT NULL, g.score, g.parse_status "
                                 "FROM items i LEFT JOIN grades g ON g.run_id = i.run_id AND "
                                 "g.item_key = i.item_key AND g.grader_kind = ?2 WHERE i.run_id = "
                                 "?1 AND i.template = ?3 ORDER BY i.id",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, grader_kind);
    store_bind_text(st, 3, tpl_name);
    while ((r = store_step(st, err)) == STORE_ROW) {
        struct items_graded_row row = {
            .id = store_col_int(st, 0),
            .key = store_col_text(st, 1),
            .kind = store_col_text(st, 2),
            .feature = store_col_is_null(st, 3) ? -1 : (int)store_col_int(st, 3),
            .interval = store_col_is_null(st, 4) ? -1 : (int)store_col_int(st, 4),
            .payload_json = store_col_text(st, 5),
            .graded = (int)store_col_int(st, 6),
        };
        row.score = row.graded && !store_col_is_null(st, 7) ? (int)store_col_int(st, 7) : -1;
        row.parse_status = row.graded ? store_col_text(st, 8) : "";
        if ((rc = fn(ctx, &row)) != EV_OK) break;
    }
    store_finalize(st);
    if (rc != EV_OK) return rc;
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}

int items_set_prompt(struct store *s, int64_t run_id, const char *key, const char *prompt,
                     struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s, "UPDATE items SET prompt = ?3 WHERE run_id = ?1 AND "
                              "item_key = ?2 AND prompt IS NULL", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, key);
    store_bind_text(st, 3, prompt);
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    return rc;
}

static char *dup_text(struct store_stmt *st, int i) {
    const char *v = store_col_text(st, i);
    return v ? xstrdup(v) : NULL;
}

int items_scored(struct store *s, int64_t run_id, const char *grader_kind, const char *kind_a,
                 const char *kind_b, struct items_scored_row **out, int *n, struct ev_err *err) {
    struct store_stmt *st = NULL;
    *out = NULL;
    *n = 0;
    int rc = store_prepare(s,
                           "SELECT i.item_key, i.kind, coalesce(i.feature_idx, -1), "
                           "coalesce(i.interval, -1), "
                           "avg(CASE WHEN g.parse_status = 'ok' THEN g.score END), "
                           "max(g.parse_status = 'unparsed'), max(g.parse_status = 'skipped'), "
                           "i.payload_json FROM items i LEFT JOIN grades g ON "
                           "g.run_id = i.run_id AND g.item_key = i.item_key AND g.grader_kind = ?2 "
                           "WHERE i.run_id = ?1 AND i.kind IN (?3, ?4) "
                           "GROUP BY i.item_key ORDER BY i.feature_idx, i.item_key",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, grader_kind);
    store_bind_text(st, 3, kind_a);
    store_bind_text(st, 4, kind_b ? kind_b : kind_a);
    int r, cap = 0;
    while ((r = store_step(st, err)) == STORE_ROW) {
        if (*n == cap) *out = xrealloc(*out, (size_t)(cap = cap ? 2 * cap : 64) * sizeof **out);
        struct items_scored_row *x = &(*out)[(*n)++];
        x->key          = dup_text(st, 0);
        x->kind         = dup_text(st, 1);
        x->feature      = (int)store_col_int(st, 2);
        x->interval     = (int)store_col_int(st, 3);
        x->has_score    = !store_col_is_null(st, 4);
        x->score        = x->has_score ? store_col_double(st, 4) : (double)NAN;
        x->unparsed     = !store_col_is_null(st, 5) && store_col_int(st, 5);
        x->skipped      = !store_col_is_null(st, 6) && store_col_int(st, 6);
        x->payload_json = dup_text(st, 7);
    }
    store_finalize(st);
    if (r != STORE_DONE) {
        items_scored_free(*out, *n);
        *out = NULL, *n = 0;
        return EV_EFAIL;
    }
    return EV_OK;
}

void items_scored_free(struct items_scored_row *rows, int n) {
    for (int i = 0; rows && i < n; i++)
        free(rows[i].key), free(rows[i].kind), free(rows[i].payload_json);
    free(rows);
}
