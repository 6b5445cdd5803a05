/*
 * generations — the generations table (see generations.h).
 */
#include "store/generations.h"

#include <math.h>
#include <stdlib.h>

#include "store/store.h"

static char *dup_col(struct store_stmt *st, int i) {
    const char *t = store_col_text(st, i);
    return t ? xstrdup(t) : NULL;
}

int generations_get(struct store *s, int64_t run_id, const char *key, char **prompt, char **text,
                    double *scale, struct ev_err *err) {
    struct store_stmt *st = NULL;
    if (prompt) *prompt = NULL;
    if (text) *text = NULL;
    if (scale) *scale = NAN;
    int rc = store_prepare(s, "SELECT prompt, text, scale FROM generations WHERE run_id = ?1 AND "
                              "item_key = ?2", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, key);
    int r = store_step(st, err);
    if (r == STORE_ROW) {
        if (prompt) *prompt = dup_col(st, 0);
        if (text) *text = dup_col(st, 1);
        if (scale && !store_col_is_null(st, 2)) *scale = store_col_double(st, 2);
    }
    store_finalize(st);
    return r < 0 ? EV_EFAIL : r == STORE_ROW;
}

int generations_put(struct store *s, int64_t run_id, const struct generation_row *g,
                    struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "INSERT INTO generations (run_id, item_key, prompt_idx, prompt, "
                           "feature_idx, scale, max_act, clamp_value, seed, tokens, text, "
                           "created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
                           "ON CONFLICT (run_id, item_key) DO NOTHING", &st, err);
    if (rc != EV_OK) return rc;
    /* int32 little-endian, as the examples table stores tokens */
    unsigned char *blob = xmalloc((size_t)g->n * 4 + 1);
    for (int i = 0; i < g->n; i++) {
        uint32_t u = (uint32_t)g->tokens[i];
        for (int b = 0; b < 4; b++) blob[4 * i + b] = (unsigned char)(u >> (8 * b));
    }
    store_bind_run_key(st, run_id, g->key);
    store_bind_int(st, 3, g->prompt_idx);
    store_bind_text(st, 4, g->prompt);
    if (g->feature >= 0) {
        store_bind_int(st, 5, g->feature);
        store_bind_double(st, 6, g->scale);
        store_bind_double(st, 7, g->max_act);
        store_bind_double(st, 8, g->value);
    } else {
        for (int i = 5; i <= 8; i++) store_bind_null(st, i);
    }
    store_bind_int(st, 9, (int64_t)(g->seed & 0x7fffffffffffffffULL));
    store_bind_blob(st, 10, blob, (size_t)g->n * 4);
    store_bind_text(st, 11, g->text);
    store_bind_int(st, 12, now_unix_ms());
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    free(blob);
    return rc;
}

int generations_tokens(struct store *s, int64_t run_id, const char *key, int **tokens, int *n,
                       struct ev_err *err) {
    struct store_stmt *st = NULL;
    *tokens = NULL;
    *n = 0;
    int rc = store_prepare(s, "SELECT tokens FROM generations WHERE run_id = ?1 AND "
                              "item_key = ?2", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, key);
    int r = store_step(st, err);
    if (r == STORE_ROW) {
        size_t               nb = 0;
        const unsigned char *b = store_col_blob(st, 0, &nb);
        *n = (int)(nb / 4);
        *tokens = xmalloc(sizeof **tokens * (size_t)(*n + 1));
        for (int i = 0; i < *n; i++) {
            uint32_t u = 0;
            for (int k = 0; k < 4; k++) u |= (uint32_t)b[4 * i + k] << (8 * k);
            (*tokens)[i] = (int)u;
        }
    }
    store_finalize(st);
    return r < 0 ? EV_EFAIL : r == STORE_ROW;
}

int generations_each(struct store *s, int64_t run_id,
                     int (*fn)(void *ctx, const struct generation_row *g), void *ctx,
                     struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT item_key, prompt, prompt_idx, feature_idx, scale, max_act, "
                           "clamp_value, seed, text FROM generations WHERE run_id = ?1 ORDER BY "
                           "feature_idx IS NOT NULL, feature_idx, scale, prompt_idx", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        int                   base = store_col_is_null(st, 3);
        struct generation_row g = {
            .key = store_col_text(st, 0), .prompt = store_col_text(st, 1),
            .prompt_idx = (int)store_col_int(st, 2), .feature = base ? -1 : (int)store_col_int(st, 3),
            .scale = base ? (double)NAN : store_col_double(st, 4),
            .max_act = base ? (double)NAN : store_col_double(st, 5),
            .value = base ? (double)NAN : store_col_double(st, 6),
            .seed = (uint64_t)store_col_int(st, 7), .text = store_col_text(st, 8)};
        if ((rc = fn(ctx, &g)) != EV_OK) break;
    }
    store_finalize(st);
    return r < 0 ? EV_EFAIL : rc;
}

int generations_steered(struct store *s, int64_t run_id, const char *grader_kind,
                        int (*fn)(void *ctx, const struct generations_steered_row *r), void *ctx,
                        struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(
        s,
        "SELECT g.feature_idx, g.scale, g.max_act, g.clamp_value, g.prompt, b.text, g.text, "
        "(SELECT avg(score) FROM grades WHERE run_id = g.run_id AND item_key = g.item_key || "
        "'/concept' AND grader_kind = ?2 AND parse_status = 'ok'), "
        "(SELECT avg(score) FROM grades WHERE run_id = g.run_id AND item_key = g.item_key || "
        "'/fluency' AND grader_kind = ?2 AND parse_status = 'ok'), "
        "(SELECT count(*) FROM grades WHERE run_id = g.run_id AND item_key IN (g.item_key || "
        "'/concept', g.item_key || '/fluency') AND grader_kind = ?2 AND parse_status = "
        "'unparsed'), "
        "(SELECT count(*) FROM grades WHERE run_id = g.run_id AND item_key IN (g.item_key || "
        "'/concept', g.item_key || '/fluency') AND grader_kind = ?2 AND parse_status = "
        "'skipped') "
        "FROM generations g LEFT JOIN generations b ON b.run_id = g.run_id AND b.item_key = "
        "'base/p' || g.prompt_idx WHERE g.run_id = ?1 AND g.feature_idx IS NOT NULL "
        "ORDER BY g.feature_idx, g.scale, g.prompt_idx",
        &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, grader_kind);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        const struct generations_steered_row row = {
            (int)store_col_int(st, 0), store_col_double(st, 1), store_col_double(st, 2),
            store_col_double(st, 3), store_col_text(st, 4), store_col_text(st, 5),
            store_col_text(st, 6),
            store_col_is_null(st, 7) ? (double)NAN : store_col_double(st, 7),
            store_col_is_null(st, 8) ? (double)NAN : store_col_double(st, 8),
            (int)store_col_int(st, 9), (int)store_col_int(st, 10)};
        if ((rc = fn(ctx, &row)) != EV_OK) break;
    }
    store_finalize(st);
    return rc != EV_OK ? rc : r == STORE_DONE || r == STORE_ROW ? EV_OK : EV_EFAIL;
}
