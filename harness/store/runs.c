/*
 * runs — named reads of the runs table (see runs.h).
 */
#include "store/runs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

int runs_kind(struct store *s, int64_t run_id, char **kind, int64_t *sae_id, struct ev_err *err) {
    struct store_stmt *st = NULL;
    *kind = NULL;
    *sae_id = 0;
    int rc = store_prepare(s, "SELECT kind, coalesce(sae_id, 0) FROM runs WHERE id = ?1", &st,
                           err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    int r = store_step(st, err);
    if (r == STORE_ROW) {
        *kind = xstrdup(store_col_text(st, 0));
        *sae_id = store_col_int(st, 1);
        rc = EV_OK;
    } else {
        rc = r == STORE_DONE ? ev_fail(err, EV_EFAIL, "no run %lld", (long long)run_id) : EV_EFAIL;
    }
    store_finalize(st);
    return rc;
}

char *runs_model_path(struct store *s, int64_t run_id) {
    struct store_stmt *st = NULL;
    struct ev_err      e;
    char              *path = NULL;
    if (store_prepare(s, "SELECT m.path FROM runs r JOIN models m ON m.id = r.model_id WHERE "
                         "r.id = ?1", &st, &e) != EV_OK)
        return NULL;
    store_bind_int(st, 1, run_id);
    if (store_step(st, &e) == STORE_ROW && store_col_text(st, 0))
        path = xstrdup(store_col_text(st, 0));
    store_finalize(st);
    return path;
}

static void copy_col(char *dst, size_t n, struct store_stmt *st, int i) {
    const char *v = store_col_text(st, i);
    snprintf(dst, n, "%s", v ? v : "");
}

int runs_provenance(struct store *s, int64_t run_id, struct runs_provenance *out,
                    struct ev_err *err) {
    struct store_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    int rc = store_prepare(s,
                           "SELECT m.path, m.hash, sa.path, sa.hash, r.code_version, "
                           "coalesce(r.seed, -1), r.started_ms, coalesce(r.finished_ms, -1) "
                           "FROM runs r LEFT JOIN saes sa ON sa.id = r.sae_id LEFT JOIN models m "
                           "ON m.id = coalesce(r.model_id, sa.model_id) WHERE r.id = ?1",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    int r = store_step(st, err);
    if (r == STORE_ROW) {
        copy_col(out->model_path, sizeof out->model_path, st, 0);
        copy_col(out->model_hash, sizeof out->model_hash, st, 1);
        copy_col(out->sae_path, sizeof out->sae_path, st, 2);
        copy_col(out->sae_hash, sizeof out->sae_hash, st, 3);
        copy_col(out->code_version, sizeof out->code_version, st, 4);
        out->seed        = store_col_int(st, 5);
        out->started_ms  = store_col_int(st, 6);
        out->finished_ms = store_col_int(st, 7);
    } else {
        rc = r == STORE_DONE ? ev_fail(err, EV_EFAIL, "no run %lld", (long long)run_id) : EV_EFAIL;
    }
    store_finalize(st);
    return rc;
}

int runs_list(struct store *s, const char *kind, long limit,
              int (*fn)(void *ctx, const struct runs_row *row), void *ctx, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT id, kind, coalesce(tag, '-'), live_status(status, host, pid), "
                           "started_ms, finished_ms, shard_k, shard_n, "
                           "CASE WHEN live_status(status, host, pid) = 'running' AND "
                           "segment_ms IS NOT NULL THEN coalesce(work_ms, 0) + max(0, ?3 - "
                           "segment_ms) ELSE coalesce(work_ms, -1) END "
                           "FROM runs WHERE (?1 IS NULL OR kind = ?1) "
                           "ORDER BY id DESC LIMIT ?2",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_text(st, 1, kind);
    store_bind_int(st, 2, limit);
    store_bind_int(st, 3, now_unix_ms());
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        const struct runs_row row = {
            store_col_int(st, 0),     store_col_text(st, 1), store_col_text(st, 2),
            store_col_text(st, 3),    store_col_int(st, 4),
            store_col_is_null(st, 5) ? -1 : store_col_int(st, 5),
            (int)store_col_int(st, 6), (int)store_col_int(st, 7), store_col_int(st, 8)};
        if ((rc = fn(ctx, &row)) != EV_OK) break;
    }
    store_finalize(st);
    if (rc != EV_OK) return rc;
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}

static int brief_from(struct store_stmt *st, int r, struct runs_brief *out) {
    memset(out, 0, sizeof *out);
    if (r != STORE_ROW) return r < 0 ? EV_EFAIL : 0;
    out->id = store_col_int(st, 0);
    snprintf(out->status, sizeof out->status, "%s", store_col_text(st, 1));
    if (!store_col_is_null(st, 2)) snprintf(out->error, sizeof out->error, "%s", store_col_text(st, 2));
    return 1;
}

int runs_of_shard(struct store *s, int shard_k, int shard_n, const char *prefer_kind,
                  struct runs_brief *out, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s, "SELECT id, status, error FROM runs WHERE shard_k = ?1 AND "
                              "shard_n = ?2 ORDER BY (kind = ?3) DESC, id DESC LIMIT 1", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, shard_k);
    store_bind_int(st, 2, shard_n);
    store_bind_text(st, 3, prefer_kind);
    rc = brief_from(st, store_step(st, err), out);
    store_finalize(st);
    return rc;
}

int runs_newest_unsharded(struct store *s, const char *kind, struct runs_brief *out,
                          struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s, "SELECT id, status, error FROM runs WHERE kind = ?1 AND "
                              "shard_k = 0 AND shard_n = 1 ORDER BY id DESC LIMIT 1", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_text(st, 1, kind);
    rc = brief_from(st, store_step(st, err), out);
    store_finalize(st);
    return rc;
}

static int64_t count_for(struct store *s, const char *sql, int64_t id) {
    struct store_stmt *st = NULL;
    struct ev_err      ignored;
    int64_t            n = -1;
    if (store_prepare(s, sql, &st, &ignored) != EV_OK) return -1;
    store_bind_int(st, 1, id);
    if (store_step(st, &ignored) == STORE_ROW) n = store_col_int(st, 0);
    store_finalize(st);
    return n;
}

void runs_progress(struct store *s, int64_t run_id, int64_t *items, int64_t *graded) {
    *items = count_for(s, "SELECT count(*) FROM items WHERE run_id = ?1", run_id);
    *graded = count_for(s, "SELECT count(DISTINCT item_key) FROM grades WHERE run_id = ?1", run_id);
}

// ---------------------------------------------------------------------------- tags

int runs_tag_claim(struct store *s, const char *tag, int64_t run_id, const char *kind,
                   const char *config_hash, const char *old_tag, int retag, int64_t *moved_from,
                   struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                rc = EV_EFAIL, r;
    *moved_from = 0;
    if (old_tag && *old_tag && strcmp(old_tag, tag) != 0 && !retag)
        return ev_fail(err, EV_EUSAGE,
                       "run %lld is tagged '%s' and a run has one tag: rerun with --tag %s "
                       "(or none), or add --retag to rename it '%s'",
                       (long long)run_id, old_tag, old_tag, tag);
    /* the holder: a run of another evaluation (shards of this one share the tag) */
    if (store_prepare(s, "SELECT id, kind FROM runs WHERE tag = ?1 AND NOT (kind = ?2 AND "
                         "config_hash = ?3) ORDER BY id DESC LIMIT 1", &st, err) != EV_OK)
        return EV_EFAIL;
    store_bind_text(st, 1, tag);
    store_bind_text(st, 2, kind);
    store_bind_text(st, 3, config_hash);
    if ((r = store_step(st, err)) < 0) goto out;
    if (r == STORE_ROW && !retag) {
        rc = ev_fail(err, EV_EUSAGE,
                     "tag '%s' is held by run %lld (%s, another configuration): give another "
                     "--tag, or add --retag to move it to this run",
                     tag, (long long)store_col_int(st, 0), store_col_text(st, 1));
        goto out;
    }
    if (r == STORE_ROW) {
        *moved_from = store_col_int(st, 0);
        store_finalize(st);
        st = NULL;
        if (store_prepare(s, "UPDATE runs SET tag = NULL WHERE tag = ?1 AND NOT (kind = ?2 AND "
                             "config_hash = ?3)", &st, err) != EV_OK)
            goto out;
        store_bind_text(st, 1, tag);
        store_bind_text(st, 2, kind);
        store_bind_text(st, 3, config_hash);
        if (store_step(st, err) < 0) goto out;
    }
    rc = EV_OK;
out:
    store_finalize(st);
    return rc;
}

void runs_tag(struct store *s, int64_t run_id, char *buf, size_t n) {
    struct store_stmt *st = NULL;
    struct ev_err      e;
    buf[0] = '\0';
    if (store_prepare(s, "SELECT tag FROM runs WHERE id = ?1", &st, &e) != EV_OK) return;
    store_bind_int(st, 1, run_id);
    if (store_step(st, &e) == STORE_ROW && !store_col_is_null(st, 0))
        snprintf(buf, n, "%s", store_col_text(st, 0));
    store_finalize(st);
}

// ---------------------------------------------------------------------------- work time

static int work_update(struct store *s, const char *sql, int64_t run_id, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                rc = store_prepare(s, sql, &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    store_bind_int(st, 2, now_unix_ms());
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    return rc;
}

int runs_work_start(struct store *s, int64_t run_id, struct ev_err *err) {
    return work_update(s, "UPDATE runs SET work_ms = coalesce(work_ms, 0), segment_ms = ?2 "
                          "WHERE id = ?1", run_id, err);
}

int runs_work_add(struct store *s, int64_t run_id, int stop, struct ev_err *err) {
    return work_update(s, stop ? "UPDATE runs SET work_ms = coalesce(work_ms, 0) + max(0, ?2 - "
                                 "segment_ms), segment_ms = NULL WHERE id = ?1 AND segment_ms "
                                 "IS NOT NULL"
                               : "UPDATE runs SET work_ms = coalesce(work_ms, 0) + max(0, ?2 - "
                                 "segment_ms), segment_ms = ?2 WHERE id = ?1 AND segment_ms IS "
                                 "NOT NULL",
                       run_id, err);
}
