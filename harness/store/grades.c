/*
 * grades — the grades table (see grades.h).
 */
#include "store/grades.h"

#include <stdio.h>
#include <math.h>
#include <stdlib.h>

#include "store/store.h"

int grades_put(struct store *s, int64_t run_id, int64_t sae_id, const struct grade_row *g,
               struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(
        s,
        "INSERT INTO grades (run_id, item_key, sae_id, feature_idx, example_id, grader_kind, "
        "grader_name, score, parse_status, raw_answer, template_hash, latency_ms, tokens_in, "
        "tokens_out, created_ms) VALUES (?1, ?2, nullif(?3, 0), ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
        "?11, ?12, ?13, ?14, ?15) ON CONFLICT (run_id, item_key, grader_kind, grader_name) DO "
        "UPDATE SET score = excluded.score, parse_status = excluded.parse_status, raw_answer = "
        "excluded.raw_answer, template_hash = excluded.template_hash, latency_ms = "
        "excluded.latency_ms, tokens_in = excluded.tokens_in, tokens_out = excluded.tokens_out, "
        "created_ms = excluded.created_ms WHERE grades.parse_status = 'error'",
        &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, g->item_key);
    store_bind_int(st, 3, sae_id);
    if (g->feature >= 0) store_bind_int(st, 4, g->feature); else store_bind_null(st, 4);
    if (g->example_id > 0) store_bind_int(st, 5, g->example_id); else store_bind_null(st, 5);
    store_bind_text(st, 6, g->grader_kind);
    store_bind_text(st, 7, g->grader_name);
    if (g->score >= 0) store_bind_int(st, 8, g->score); else store_bind_null(st, 8);
    store_bind_text(st, 9, g->parse_status);
    store_bind_text(st, 10, g->raw_answer);
    store_bind_text(st, 11, g->template_hash);
    store_bind_int(st, 12, g->latency_ms);
    store_bind_int(st, 13, g->tokens_in);
    store_bind_int(st, 14, g->tokens_out);
    store_bind_int(st, 15, now_unix_ms());
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    return rc;
}

int grades_has(struct store *s, int64_t run_id, const char *key, const char *grader_kind,
               struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s, "SELECT 1 FROM grades WHERE run_id = ?1 AND item_key = ?2 "
                              "AND grader_kind = ?3 AND parse_status != 'error' LIMIT 1",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, key);
    store_bind_text(st, 3, grader_kind);
    int r = store_step(st, err);
    store_finalize(st);
    if (r < 0) return EV_EFAIL;
    return r == STORE_ROW;
}

int grades_human_put(struct store *s, int64_t run_id, const char *item_key, int64_t sae_id,
                     const char *rater, int score, struct ev_err *err) {
    struct store_stmt *st = NULL;
    EV_ASSERT(score >= -1 && score <= 3);
    int rc = store_begin(s, err);
    if (rc != EV_OK) return rc;
    /* replace: delete, then insert, so the answer's id is the newest (undo takes the newest) */
    rc = store_prepare(s, "DELETE FROM grades WHERE run_id = ?1 AND item_key = ?2 AND "
                          "grader_kind = 'human' AND grader_name = ?3", &st, err);
    if (rc != EV_OK) goto fail;
    store_bind_run_key(st, run_id, item_key);
    store_bind_text(st, 3, rater);
    if (store_step(st, err) < 0) goto fail;
    store_finalize(st);
    rc = store_prepare(s,
                       "INSERT INTO grades (run_id, item_key, sae_id, feature_idx, example_id, "
                       "grader_kind, grader_name, score, parse_status, raw_answer, created_ms) "
                       "SELECT ?1, ?2, nullif(?3, 0), i.feature_idx, i.example_id, 'human', ?4, "
                       "?5, ?6, ?7, ?8 FROM items i WHERE i.run_id = ?1 AND i.item_key = ?2",
                       &st, err);
    if (rc != EV_OK) goto fail;
    store_bind_run_key(st, run_id, item_key);
    store_bind_int(st, 3, sae_id);
    store_bind_text(st, 4, rater);
    if (score >= 0) store_bind_int(st, 5, score);
    else store_bind_null(st, 5);
    store_bind_text(st, 6, score >= 0 ? "ok" : "skipped"); /* a skip is no parse failure */
    char raw[16];
    snprintf(raw, sizeof raw, score >= 0 ? "%d" : "skip", score);
    store_bind_text(st, 7, raw);
    store_bind_int(st, 8, now_unix_ms());
    if (store_step(st, err) < 0) goto fail;
    store_finalize(st);
    st = NULL;
    if ((rc = store_commit(s, err)) != EV_OK) goto fail;
    return EV_OK;
fail:
    store_finalize(st);
    store_rollback(s);
    return EV_EFAIL;
}

int grades_human_undo(struct store *s, int64_t run_id, const char *rater, char **item_key,
                      struct ev_err *err) {
    struct store_stmt *st = NULL;
    int64_t            gid = 0;
    char              *key = NULL;
    *item_key = NULL;
    int rc = store_prepare(s, "SELECT id, item_key FROM grades WHERE run_id = ?1 AND "
                              "grader_kind = 'human' AND grader_name = ?2 ORDER BY id DESC "
                              "LIMIT 1", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, rater);
    int r = store_step(st, err);
    if (r == STORE_ROW) {
        gid = store_col_int(st, 0);
        key = xstrdup(store_col_text(st, 1));
    }
    store_finalize(st);
    if (r < 0) return EV_EFAIL;
    if (!key) return EV_OK;
    rc = store_prepare(s, "DELETE FROM grades WHERE id = ?1", &st, err);
    if (rc == EV_OK) {
        store_bind_int(st, 1, gid);
        if (store_step(st, err) < 0) rc = EV_EFAIL;
        store_finalize(st);
    }
    if (rc == EV_OK) *item_key = key;
    else free(key);
    return rc;
}

int grades_human_llm_pairs(struct store *s, int64_t run_id, const char *rater, int **human,
                           int **llm, int *n, struct ev_err *err) {
    struct store_stmt *st = NULL;
    *human = *llm = NULL;
    *n = 0;
    int rc = store_prepare(s,
                           "SELECT h.score, min(g.score) FROM grades h JOIN grades g ON "
                           "g.run_id = h.run_id AND g.item_key = h.item_key AND g.grader_kind = "
                           "'llm' AND g.parse_status = 'ok' WHERE h.run_id = ?1 AND h.grader_kind "
                           "= 'human' AND h.grader_name = ?2 AND h.parse_status = 'ok' GROUP BY "
                           "h.item_key",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, rater);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        *human = xrealloc(*human, (size_t)(*n + 1) * sizeof **human);
        *llm = xrealloc(*llm, (size_t)(*n + 1) * sizeof **llm);
        (*human)[*n] = (int)store_col_int(st, 0);
        (*llm)[*n] = (int)store_col_int(st, 1);
        (*n)++;
    }
    store_finalize(st);
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}

int grades_kinds(struct store *s, int64_t run_id, int *llm, int *human, struct ev_err *err) {
    struct store_stmt *st = NULL;
    *llm = *human = 0;
    int rc = store_prepare(s, "SELECT EXISTS (SELECT 1 FROM grades WHERE run_id = ?1 AND "
                              "grader_kind = 'llm'), EXISTS (SELECT 1 FROM grades WHERE "
                              "run_id = ?1 AND grader_kind = 'human')", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    if (store_step(st, err) == STORE_ROW) {
        *llm = (int)store_col_int(st, 0);
        *human = (int)store_col_int(st, 1);
    } else {
        rc = EV_EFAIL;
    }
    store_finalize(st);
    return rc;
}

int grades_score_counts(struct store *s, int64_t run_id, const char *grader_kind,
                        int (*fn)(void *ctx, const char *item_kind, const char *parse_status,
                                  int score, long count),
                        void *ctx, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT i.kind, g.parse_status, coalesce(g.score, -1), count(*) FROM "
                           "items i JOIN grades g ON g.run_id = i.run_id AND g.item_key = "
                           "i.item_key WHERE i.run_id = ?1 AND g.grader_kind = ?2 GROUP BY "
                           "i.kind, g.parse_status, g.score ORDER BY i.kind",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, grader_kind);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        rc = fn(ctx, store_col_text(st, 0), store_col_text(st, 1), (int)store_col_int(st, 2),
                (long)store_col_int(st, 3));
        if (rc != EV_OK) break;
    }
    store_finalize(st);
    return rc != EV_OK ? rc : r == STORE_DONE || r == STORE_ROW ? EV_OK : EV_EFAIL;
}

int grades_parsed_each(struct store *s, int64_t run_id,
                       int (*fn)(void *ctx, const char *grader_kind, const char *grader_name,
                                 const char *item_key, int score),
                       void *ctx, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT grader_kind, grader_name, item_key, score FROM grades WHERE "
                           "run_id = ?1 AND parse_status = 'ok' AND score IS NOT NULL ORDER BY "
                           "grader_kind, grader_name, item_key",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        rc = fn(ctx, store_col_text(st, 0), store_col_text(st, 1), store_col_text(st, 2),
                (int)store_col_int(st, 3));
        if (rc != EV_OK) break;
    }
    store_finalize(st);
    return rc != EV_OK ? rc : r == STORE_DONE || r == STORE_ROW ? EV_OK : EV_EFAIL;
}

int grades_answers_each(struct store *s, int64_t run_id,
                        int (*fn)(void *ctx, int feature, const char *grader_name,
                                  const char *parse_status, const char *raw_answer),
                        void *ctx, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT coalesce(feature_idx, -1), grader_name, parse_status, "
                           "raw_answer FROM grades WHERE run_id = ?1 AND grader_kind = 'llm' "
                           "ORDER BY feature_idx, grader_name, item_key",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        rc = fn(ctx, (int)store_col_int(st, 0), store_col_text(st, 1), store_col_text(st, 2),
                store_col_is_null(st, 3) ? NULL : store_col_text(st, 3));
        if (rc != EV_OK) break;
    }
    store_finalize(st);
    return rc != EV_OK ? rc : r == STORE_DONE || r == STORE_ROW ? EV_OK : EV_EFAIL;
}

int grades_feature_means(struct store *s, int64_t sae_id, int feature,
                         int (*fn)(void *ctx, const struct grades_feature_mean *m), void *ctx,
                         struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT r.kind, g.run_id, g.grader_name, coalesce(i.kind, ''), "
                           "count(g.score), avg(g.score), total(g.score * g.score), "
                           "total(g.parse_status = 'unparsed'), total(g.parse_status = 'skipped') "
                           "FROM grades g JOIN runs r ON r.id = g.run_id LEFT JOIN items i ON "
                           "i.run_id = g.run_id AND i.item_key = g.item_key WHERE g.sae_id = ?1 "
                           "AND g.feature_idx = ?2 AND coalesce(i.kind, '') != 'explain' "
                           "GROUP BY g.run_id, g.grader_name, i.kind "
                           "ORDER BY g.run_id, g.grader_name, i.kind",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, sae_id);
    store_bind_int(st, 2, feature);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        struct grades_feature_mean m = {
            .run_kind = store_col_text(st, 0), .run_id = store_col_int(st, 1),
            .grader_name = store_col_text(st, 2), .item_kind = store_col_text(st, 3),
            .n = (int)store_col_int(st, 4),
            .mean = store_col_is_null(st, 5) ? (double)NAN : store_col_double(st, 5),
            .sd = NAN, .n_unparsed = (int)store_col_int(st, 7),
            .n_skipped = (int)store_col_int(st, 8)};
        if (m.n >= 2) {
            double var = (store_col_double(st, 6) - m.n * m.mean * m.mean) / (m.n - 1);
            m.sd = sqrt(var > 0 ? var : 0);
        }
        if (m.n == 0 && m.n_unparsed == 0 && m.n_skipped == 0) continue; /* only pending */
        rc = fn(ctx, &m);
        if (rc != EV_OK) break;
    }
    store_finalize(st);
    return rc != EV_OK ? rc : r == STORE_DONE || r == STORE_ROW ? EV_OK : EV_EFAIL;
}
