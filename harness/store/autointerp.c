/*
 * autointerp — the autointerp_latents, autointerp_prompts and autointerp_samples tables (see
 * autointerp.h).
 */
#include "store/autointerp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

static double col_or_nan(struct store_stmt *st, int i) {
    return store_col_is_null(st, i) ? (double)NAN : store_col_double(st, i);
}

/* rows (n of them, room for *cap, each size bytes) with room for one more. */
static void *grow(void *rows, int n, int *cap, size_t size) {
    if (n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        rows = xrealloc(rows, (size_t)*cap * size);
    }
    return rows;
}

/* Prepares sql with run_id and seed bound as ?1 and ?2. */
static int prepare_seed(struct store *db, const char *sql, int64_t run_id, int64_t seed,
                        struct store_stmt **st, struct ev_err *err) {
    int rc = store_prepare(db, sql, st, err);
    if (rc) return rc;
    store_bind_int(*st, 1, run_id);
    store_bind_int(*st, 2, seed);
    return EV_OK;
}

/* Binds run_id, seed and the key's rest (scorer, feature, prompt_no) as ?1..?5. */
static void bind_prompt_key(struct store_stmt *st, int64_t run_id, int64_t seed,
                            const char *scorer, int feature, int prompt_no) {
    store_bind_int(st, 1, run_id);
    store_bind_int(st, 2, seed);
    store_bind_text(st, 3, scorer);
    store_bind_int(st, 4, feature);
    store_bind_int(st, 5, prompt_no);
}

// ---------------------------------------------------------------------------- latents

int autointerp_latent_put(struct store *db, int64_t run_id, int64_t seed,
                          const struct autointerp_latent_row *l, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(db,
                           "INSERT OR REPLACE INTO autointerp_latents (run_id, seed, feature_idx, "
                           "protocol, n_firings, max_act, status, reason, explanation, "
                           "expl_source, expl_template_hash, expl_prompt, expl_raw, created_ms) "
                           "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)", &st, err);
    if (rc) return rc;
    store_bind_int(st, 1, run_id);
    store_bind_int(st, 2, seed);
    store_bind_int(st, 3, l->feature);
    store_bind_text(st, 4, l->protocol);
    store_bind_int(st, 5, l->n_firings);
    store_bind_double(st, 6, l->max_act);
    store_bind_text(st, 7, l->status);
    store_bind_text(st, 8, l->reason);
    store_bind_text(st, 9, l->explanation);
    store_bind_text(st, 10, l->source);
    store_bind_text(st, 11, l->tpl_hash);
    store_bind_text(st, 12, l->prompt);
    store_bind_text(st, 13, l->raw);
    store_bind_int(st, 14, now_unix_ms());
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    return rc;
}

int autointerp_latent_status(struct store *db, int64_t run_id, int64_t seed, int feature,
                             char **status, struct ev_err *err) {
    struct store_stmt *st = NULL;
    *status = NULL;
    int rc = store_prepare(db, "SELECT status FROM autointerp_latents WHERE run_id = ?1 "
                               "AND seed = ?2 AND feature_idx = ?3", &st, err);
    if (rc) return rc;
    store_bind_int(st, 1, run_id);
    store_bind_int(st, 2, seed);
    store_bind_int(st, 3, feature);
    int r = store_step(st, err);
    if (r == STORE_ROW) *status = xstrdup(store_col_text(st, 0));
    store_finalize(st);
    return r < 0 ? EV_EFAIL : EV_OK;
}

char *autointerp_latent_explanation(struct store *db, int64_t run_id, int64_t seed, int feature) {
    struct store_stmt *st = NULL;
    struct ev_err      e;
    char              *out = NULL;
    if (store_prepare(db, "SELECT explanation FROM autointerp_latents WHERE run_id = ?1 AND "
                          "seed = ?2 AND feature_idx = ?3 AND status = 'ok'", &st, &e))
        return NULL;
    store_bind_int(st, 1, run_id);
    store_bind_int(st, 2, seed);
    store_bind_int(st, 3, feature);
    if (store_step(st, &e) == STORE_ROW && store_col_text(st, 0))
        out = xstrdup(store_col_text(st, 0));
    store_finalize(st);
    return out;
}

int autointerp_latent_counts(struct store *db, int64_t run_id, int64_t seed, int *n_skipped,
                             int *n_expl_failed, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(db, "SELECT sum(status = 'skipped'), sum(status LIKE "
                               "'explanation_%') FROM autointerp_latents WHERE run_id = ?1 "
                               "AND seed = ?2", &st, err);
    if (rc) return rc;
    store_bind_int(st, 1, run_id);
    store_bind_int(st, 2, seed);
    if (store_step(st, err) == STORE_ROW) {
        *n_skipped = (int)store_col_int(st, 0);
        *n_expl_failed = (int)store_col_int(st, 1);
    }
    store_finalize(st);
    return EV_OK;
}

int autointerp_latents(struct store *db, int64_t run_id, int64_t seed,
                       struct autointerp_latent **rows, int *n, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                cap = 0, r;
    *rows = NULL;
    *n = 0;
    int rc = prepare_seed(db, "SELECT feature_idx, status, reason, explanation, n_firings, "
                                  "max_act FROM autointerp_latents WHERE run_id = ?1 AND seed = "
                                  "?2 ORDER BY feature_idx", run_id, seed, &st, err);
    if (rc) return rc;
    while ((r = store_step(st, err)) == STORE_ROW) {
        *rows = grow(*rows, *n, &cap, sizeof **rows);
        struct autointerp_latent *l = &(*rows)[(*n)++];
        l->feature = (int)store_col_int(st, 0);
        l->status = dup_or_null(store_col_text(st, 1));
        l->reason = dup_or_null(store_col_text(st, 2));
        l->explanation = dup_or_null(store_col_text(st, 3));
        l->n_firings = store_col_int(st, 4);
        l->max_act = store_col_double(st, 5);
    }
    store_finalize(st);
    if (r < 0) {
        autointerp_latents_free(*rows, *n);
        *rows = NULL;
        *n = 0;
        return EV_EFAIL;
    }
    return EV_OK;
}

void autointerp_latents_free(struct autointerp_latent *rows, int n) {
    for (int i = 0; i < n; i++) {
        free(rows[i].status);
        free(rows[i].reason);
        free(rows[i].explanation);
    }
    free(rows);
}

int autointerp_detections(struct store *db, int64_t run_id, int64_t seed,
                          struct autointerp_detection **rows, int *n, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                cap = 0, r;
    *rows = NULL;
    *n = 0;
    int rc = prepare_seed(db,
                          "SELECT l.feature_idx, l.explanation, p.raw_answer, "
                          "coalesce(p.parse_status, CASE WHEN l.status = 'ok' THEN 'not asked' "
                          "ELSE l.status END) FROM autointerp_latents l LEFT JOIN "
                          "autointerp_prompts p ON p.run_id = l.run_id AND p.seed = l.seed AND "
                          "p.feature_idx = l.feature_idx AND p.scorer = 'detection' AND "
                          "p.prompt_no = 0 WHERE l.run_id = ?1 AND l.seed = ?2 AND l.status <> "
                          "'skipped' ORDER BY l.feature_idx", run_id, seed, &st, err);
    if (rc) return rc;
    while ((r = store_step(st, err)) == STORE_ROW) {
        *rows = grow(*rows, *n, &cap, sizeof **rows);
        struct autointerp_detection *d = &(*rows)[(*n)++];
        d->feature = (int)store_col_int(st, 0);
        d->explanation = dup_or_null(store_col_text(st, 1));
        d->raw_answer = dup_or_null(store_col_text(st, 2));
        d->parse_status = dup_or_null(store_col_text(st, 3));
    }
    store_finalize(st);
    if (r < 0) {
        autointerp_detections_free(*rows, *n);
        *rows = NULL;
        *n = 0;
        return EV_EFAIL;
    }
    return EV_OK;
}

void autointerp_detections_free(struct autointerp_detection *rows, int n) {
    for (int i = 0; i < n; i++) {
        free(rows[i].explanation);
        free(rows[i].raw_answer);
        free(rows[i].parse_status);
    }
    free(rows);
}

// ---------------------------------------------------------------------------- prompts, samples

int autointerp_prompt_answered(struct store *db, int64_t run_id, int64_t seed,
                               const char *scorer, int feature, int prompt_no,
                               struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(db,
                           "SELECT parse_status FROM autointerp_prompts WHERE run_id = ?1 AND "
                           "seed = ?2 AND scorer = ?3 AND feature_idx = ?4 AND prompt_no = ?5",
                           &st, err);
    if (rc) return rc;
    bind_prompt_key(st, run_id, seed, scorer, feature, prompt_no);
    int r = store_step(st, err), done = 0;
    if (r == STORE_ROW) {
        const char *ps = store_col_text(st, 0);
        done = ps && (strcmp(ps, "ok") == 0 || strcmp(ps, "unparsed") == 0);
    }
    store_finalize(st);
    return r < 0 ? EV_EFAIL : done;
}

int autointerp_prompt_put(struct store *db, int64_t run_id, int64_t seed, const char *scorer,
                          int feature, int prompt_no, const char *tpl_hash, const char *prompt,
                          struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(db,
                           "INSERT OR REPLACE INTO autointerp_prompts (run_id, seed, scorer, "
                           "feature_idx, prompt_no, template_hash, prompt) VALUES "
                           "(?1,?2,?3,?4,?5,?6,?7)", &st, err);
    if (rc) return rc;
    bind_prompt_key(st, run_id, seed, scorer, feature, prompt_no);
    store_bind_text(st, 6, tpl_hash);
    store_bind_text(st, 7, prompt);
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    return rc;
}

int autointerp_samples_put(struct store *db, int64_t run_id, int64_t seed, const char *scorer,
                           int feature, const struct autointerp_sample_row *s, int n,
                           struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(db,
                           "INSERT OR REPLACE INTO autointerp_samples (run_id, seed, scorer, "
                           "feature_idx, sample_no, prompt_no, position, kind, quantile, seq, "
                           "start, n_tokens, max_act, text, label) VALUES "
                           "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)", &st, err);
    if (rc) return rc;
    for (int i = 0; i < n && rc == EV_OK; i++) {
        store_reset(st);
        store_bind_int(st, 1, run_id);
        store_bind_int(st, 2, seed);
        store_bind_text(st, 3, scorer);
        store_bind_int(st, 4, feature);
        store_bind_int(st, 5, s[i].sample_no);
        store_bind_int(st, 6, s[i].prompt_no);
        store_bind_int(st, 7, s[i].position);
        store_bind_text(st, 8, s[i].kind);
        if (s[i].quantile > 0) store_bind_int(st, 9, s[i].quantile);
        else store_bind_null(st, 9);
        store_bind_int(st, 10, s[i].seq);
        store_bind_int(st, 11, s[i].start);
        store_bind_int(st, 12, s[i].n_tokens);
        store_bind_double(st, 13, s[i].max_act);
        store_bind_text(st, 14, s[i].text);
        store_bind_double(st, 15, s[i].label);
        if (store_step(st, err) < 0) rc = EV_EFAIL;
    }
    store_finalize(st);
    return rc;
}

int autointerp_answer_put(struct store *db, int64_t run_id, int64_t seed, const char *scorer,
                          int feature, int prompt_no, const struct autointerp_answer *a,
                          const int *pred, const double *prob, int n, struct ev_err *err) {
    struct store_stmt *up = NULL, *us = NULL;
    int                rc;
    if ((rc = store_begin(db, err))) return rc;
    rc = store_prepare(db,
                       "UPDATE autointerp_prompts SET raw_answer = ?6, parse_status = ?7, "
                       "error = ?8, logprobs = ?9, cache_key = ?10, latency_ms = ?11, "
                       "tokens_in = ?12, tokens_out = ?13, answered_ms = ?14 WHERE run_id = ?1 "
                       "AND seed = ?2 AND scorer = ?3 AND feature_idx = ?4 AND prompt_no = ?5",
                       &up, err);
    if (rc) goto fail;
    bind_prompt_key(up, run_id, seed, scorer, feature, prompt_no);
    store_bind_text(up, 6, a->raw_answer);
    store_bind_text(up, 7, a->parse_status);
    store_bind_text(up, 8, a->error);
    store_bind_int(up, 9, a->have_logprobs);
    store_bind_text(up, 10, a->cache_key);
    store_bind_int(up, 11, a->latency_ms);
    store_bind_int(up, 12, a->tokens_in);
    store_bind_int(up, 13, a->tokens_out);
    store_bind_int(up, 14, now_unix_ms());
    if (store_step(up, err) < 0) goto fail;
    if (pred) {
        rc = store_prepare(db,
                           "UPDATE autointerp_samples SET prediction = ?7, probability = ?8 "
                           "WHERE run_id = ?1 AND seed = ?2 AND scorer = ?3 AND feature_idx = ?4 "
                           "AND prompt_no = ?5 AND position = ?6", &us, err);
        if (rc) goto fail;
        for (int i = 0; i < n; i++) {
            store_reset(us);
            bind_prompt_key(us, run_id, seed, scorer, feature, prompt_no);
            store_bind_int(us, 6, i + 1);
            store_bind_double(us, 7, pred[i]);
            if (prob) store_bind_double(us, 8, prob[i]);
            else store_bind_null(us, 8);
            if (store_step(us, err) < 0) goto fail;
        }
    }
    store_finalize(up);
    store_finalize(us);
    return store_commit(db, err);
fail:
    store_finalize(up);
    store_finalize(us);
    store_rollback(db);
    return EV_EFAIL;
}

int autointerp_scored_samples(struct store *db, int64_t run_id, int64_t seed, const char *scorer,
                              struct autointerp_scored **rows, int *n, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                cap = 0, r;
    *rows = NULL;
    *n = 0;
    int rc = prepare_seed(db,
                          "SELECT s.feature_idx, s.label, s.prediction, s.probability, "
                          "s.quantile FROM autointerp_samples s JOIN autointerp_prompts p ON "
                          "p.run_id = s.run_id AND p.seed = s.seed AND p.scorer = s.scorer AND "
                          "p.feature_idx = s.feature_idx AND p.prompt_no = s.prompt_no "
                          "WHERE s.run_id = ?1 AND s.seed = ?2 AND s.scorer = ?3 "
                          "ORDER BY s.feature_idx, s.sample_no", run_id, seed, &st, err);
    if (rc) return rc;
    store_bind_text(st, 3, scorer);
    while ((r = store_step(st, err)) == STORE_ROW) {
        *rows = grow(*rows, *n, &cap, sizeof **rows);
        struct autointerp_scored *s = &(*rows)[(*n)++];
        s->feature = (int)store_col_int(st, 0);
        s->label = store_col_double(st, 1);
        s->prediction = col_or_nan(st, 2);
        s->probability = col_or_nan(st, 3);
        s->quantile = store_col_is_null(st, 4) ? 0 : (int)store_col_int(st, 4);
    }
    store_finalize(st);
    if (r < 0) {
        free(*rows);
        *rows = NULL;
        *n = 0;
        return EV_EFAIL;
    }
    return EV_OK;
}

int autointerp_detection_samples(struct store *db, int64_t run_id, int64_t seed, int feature,
                                 int **pos, double **label, double **pred, int *n,
                                 struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                cap = 0;
    *pos = NULL;
    *label = *pred = NULL;
    *n = 0;
    int rc = store_prepare(db, "SELECT position, label, prediction FROM autointerp_samples "
                               "WHERE run_id = ?1 AND seed = ?2 AND scorer = 'detection' AND "
                               "feature_idx = ?3 ORDER BY position", &st, err);
    if (rc) return rc;
    store_bind_int(st, 1, run_id);
    store_bind_int(st, 2, seed);
    store_bind_int(st, 3, feature);
    while (store_step(st, err) == STORE_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 32;
            *pos = xrealloc(*pos, (size_t)cap * sizeof **pos);
            *label = xrealloc(*label, (size_t)cap * sizeof **label);
            *pred = xrealloc(*pred, (size_t)cap * sizeof **pred);
        }
        (*pos)[*n] = (int)store_col_int(st, 0);
        (*label)[*n] = store_col_double(st, 1);
        (*pred)[*n] = col_or_nan(st, 2);
        (*n)++;
    }
    store_finalize(st);
    return EV_OK;
}

int autointerp_explanations_of(struct store *db, int64_t sae_id, int feature,
                               int (*fn)(void *ctx, int64_t run_id, const char *explanation,
                                         const char *source),
                               void *ctx, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(db,
                           "SELECT a.run_id, a.explanation, a.expl_source "
                           "FROM autointerp_latents a "
                           "JOIN runs r ON r.id = a.run_id WHERE r.sae_id = ?1 AND "
                           "a.feature_idx = ?2 AND a.explanation IS NOT NULL AND a.status = 'ok' "
                           "ORDER BY a.run_id, a.seed", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, sae_id);
    store_bind_int(st, 2, feature);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW)
        if ((rc = fn(ctx, store_col_int(st, 0), store_col_text(st, 1), store_col_text(st, 2))) !=
            EV_OK)
            break;
    store_finalize(st);
    return rc != EV_OK ? rc : r == STORE_DONE || r == STORE_ROW ? EV_OK : EV_EFAIL;
}

int autointerp_accuracy_of(struct store *db, int64_t sae_id, int feature,
                           int (*fn)(void *ctx, const char *scorer, int64_t run_id, int n,
                                     double accuracy, int n_unparsed),
                           void *ctx, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(db,
                           "SELECT s.scorer, s.run_id, count(*), avg(CASE WHEN (s.prediction >= "
                           "0.5) = (s.label >= 0.5) THEN 1.0 ELSE 0.0 END), (SELECT count(*) "
                           "FROM autointerp_prompts p WHERE p.run_id = s.run_id AND p.scorer = "
                           "s.scorer AND p.feature_idx = s.feature_idx AND p.parse_status = "
                           "'unparsed') FROM "
                           "autointerp_samples s JOIN runs r ON r.id = s.run_id WHERE r.sae_id = "
                           "?1 AND s.feature_idx = ?2 AND s.prediction IS NOT NULL AND "
                           "s.scorer IN ('detection', 'fuzzing') GROUP BY s.run_id, s.scorer "
                           "ORDER BY s.run_id, s.scorer", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, sae_id);
    store_bind_int(st, 2, feature);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW)
        if ((rc = fn(ctx, store_col_text(st, 0), store_col_int(st, 1), (int)store_col_int(st, 2),
                     store_col_double(st, 3), (int)store_col_int(st, 4))) != EV_OK)
            break;
    store_finalize(st);
    return rc != EV_OK ? rc : r == STORE_DONE || r == STORE_ROW ? EV_OK : EV_EFAIL;
}
