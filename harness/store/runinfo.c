/*
 * runinfo — how a run was graded, read from its grades (see runinfo.h).
 */
#include "store/runinfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

static const char *const GRADE_GROUPS_SQL =
    "SELECT grader_kind, grader_name, parse_status, count(*) FROM grades WHERE run_id = ?1 "
    "GROUP BY grader_kind, grader_name, parse_status ORDER BY grader_kind, grader_name";

static const char *const FIRST_UNPARSED_SQL =
    "SELECT raw_answer FROM grades WHERE run_id = ?1 AND parse_status = 'unparsed' "
    "ORDER BY id LIMIT 1";

struct group {
    char    kind[16], name[128], status[16];
    int64_t n;
};

int runinfo_grades_load(struct store *s, int64_t run_id, struct runinfo_grades *out,
                        struct ev_err *err) {
    struct store_stmt *st = NULL;
    struct group      *g  = NULL;
    int                n = 0, cap = 0, r, rc;
    memset(out, 0, sizeof *out);
    if ((rc = store_prepare(s, GRADE_GROUPS_SQL, &st, err)) != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    while ((r = store_step(st, err)) == STORE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            g   = xrealloc(g, (size_t)cap * sizeof *g);
        }
        const char *k = store_col_text(st, 0), *nm = store_col_text(st, 1),
                   *ps = store_col_text(st, 2);
        snprintf(g[n].kind, sizeof g[n].kind, "%s", k ? k : "");
        snprintf(g[n].name, sizeof g[n].name, "%s", nm ? nm : "");
        snprintf(g[n].status, sizeof g[n].status, "%s", ps ? ps : "");
        g[n].n = store_col_int(st, 3);
        n++;
    }
    store_finalize(st);
    if (r != STORE_DONE) {
        free(g);
        return EV_EFAIL;
    }
    /* the kind: LLM when any LLM grade parsed, else human when any human grade did */
    const char *kind = "";
    for (int pass = 0; pass < 3 && !*kind; pass++)
        for (int i = 0; i < n && !*kind; i++) {
            int ok = strcmp(g[i].status, "ok") == 0;
            if (pass == 0 && ok && strcmp(g[i].kind, "llm") == 0) kind = "llm";
            if (pass == 1 && ok && strcmp(g[i].kind, "human") == 0) kind = "human";
            if (pass == 2) kind = g[i].kind;
        }
    snprintf(out->kind, sizeof out->kind, "%s", kind);
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(g[i].kind, kind) != 0) continue;
        if (strcmp(g[i].status, "ok") == 0) {
            out->n_ok += g[i].n;
            int seen = 0;
            for (int j = 0; j < i && !seen; j++)
                seen = strcmp(g[j].kind, kind) == 0 && strcmp(g[j].status, "ok") == 0 &&
                       strcmp(g[j].name, g[i].name) == 0;
            if (!seen && used < sizeof out->names) {
                int w = snprintf(out->names + used, sizeof out->names - used, "%s%s",
                                 used ? "," : "", g[i].name);
                if (w > 0) used += (size_t)w;
            }
        } else if (strcmp(g[i].status, "unparsed") == 0) {
            out->n_unparsed += g[i].n;
        } else if (strcmp(g[i].status, "skipped") == 0) {
            out->n_skipped += g[i].n;
        } else {
            out->n_error += g[i].n;
        }
    }
    free(g);
    if (out->n_unparsed == 0) return EV_OK;
    if ((rc = store_prepare(s, FIRST_UNPARSED_SQL, &st, err)) != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    if ((r = store_step(st, err)) == STORE_ROW) {
        const char *t = store_col_text(st, 0);
        size_t      k = 0;
        /* one line: a reply's newlines and tabs become spaces */
        for (; t && *t && k + 1 < sizeof out->first_unparsed; t++)
            out->first_unparsed[k++] = (*t == '\n' || *t == '\r' || *t == '\t') ? ' ' : *t;
        out->first_unparsed[k] = 0;
    }
    store_finalize(st);
    return r < 0 ? EV_EFAIL : EV_OK;
}

static const char *const AI_COUNTS_SQL =
    "SELECT (SELECT count(*) FROM autointerp_prompts WHERE run_id = ?1 AND parse_status = 'ok'), "
    "(SELECT count(*) FROM autointerp_prompts WHERE run_id = ?1 AND parse_status = 'unparsed'), "
    "(SELECT count(*) FROM autointerp_latents WHERE run_id = ?1 AND status = 'ok'), "
    "(SELECT count(*) FROM autointerp_latents WHERE run_id = ?1 "
    "AND status = 'explanation_unparsed'), "
    "coalesce((SELECT raw_answer FROM autointerp_prompts WHERE run_id = ?1 "
    "AND parse_status = 'unparsed' LIMIT 1), (SELECT expl_raw FROM autointerp_latents "
    "WHERE run_id = ?1 AND status = 'explanation_unparsed' LIMIT 1))";

int runinfo_autointerp_load(struct store *s, int64_t run_id, struct runinfo_autointerp *out,
                            struct ev_err *err) {
    struct store_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    int rc = store_prepare(s, AI_COUNTS_SQL, &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    int r = store_step(st, err);
    if (r == STORE_ROW) {
        out->judge_ok       = store_col_int(st, 0);
        out->judge_unparsed = store_col_int(st, 1);
        out->expl_ok        = store_col_int(st, 2);
        out->expl_unparsed  = store_col_int(st, 3);
        const char *t = store_col_text(st, 4);
        size_t      k = 0;
        for (; t && *t && k + 1 < sizeof out->first_unparsed; t++)
            out->first_unparsed[k++] = (*t == '\n' || *t == '\r' || *t == '\t') ? ' ' : *t;
        out->first_unparsed[k] = 0;
    }
    store_finalize(st);
    return r == STORE_ROW ? EV_OK : EV_EFAIL;
}

// ---------------------------------------------------------------------------- run rows, units

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

int runinfo_run_load(struct store *s, int64_t id, struct runinfo_run *out, struct ev_err *err) {
    struct store_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    int rc = store_prepare(s,
                           "SELECT r.id, r.kind, r.tag, r.status, sa.hash, r.config_json, "
                           "r.started_ms FROM runs r LEFT JOIN saes sa ON sa.id = r.sae_id "
                           "WHERE r.id = ?1",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, id);
    int r = store_step(st, err);
    if (r == STORE_ROW) {
        out->id          = store_col_int(st, 0);
        out->kind        = xstrdup(store_col_text(st, 1));
        out->tag         = dup_or_null(store_col_text(st, 2));
        out->status      = xstrdup(store_col_text(st, 3));
        out->sae_hash    = dup_or_null(store_col_text(st, 4));
        out->config_json = xstrdup(store_col_text(st, 5));
        out->started_ms  = store_col_int(st, 6);
    } else if (r == STORE_DONE) {
        ev_fail(err, EV_EFAIL, "run %lld vanished from %s", (long long)id, store_path(s));
    }
    store_finalize(st);
    return r == STORE_ROW ? EV_OK : EV_EFAIL;
}

void runinfo_run_release(struct runinfo_run *r) {
    free(r->kind);
    free(r->tag);
    free(r->status);
    free(r->sae_hash);
    free(r->config_json);
    memset(r, 0, sizeof *r);
}

/* Steps st, handing each row to fn as a unit: columns key, kind, interval, x, y (kind,
 * interval and y may be NULL). */
static int units_each(struct store_stmt *st, runinfo_unit_fn fn, void *ctx, struct ev_err *err) {
    int r, rc = EV_OK;
    while ((r = store_step(st, err)) == STORE_ROW) {
        struct runinfo_unit u = {
            .key      = store_col_text(st, 0),
            .kind     = store_col_text(st, 1),
            .interval = store_col_is_null(st, 2) ? -1 : (int)store_col_int(st, 2),
            .x        = store_col_double(st, 3),
            .y        = store_col_is_null(st, 4) ? 0 : store_col_double(st, 4),
        };
        if ((rc = fn(ctx, &u)) != EV_OK) break;
    }
    store_finalize(st);
    if (rc != EV_OK) return rc;
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}

int runinfo_item_scores(struct store *s, int64_t run_id, const char *grader_kind,
                        runinfo_unit_fn fn, void *ctx, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT i.item_key, i.kind, i.interval, avg(g.score), NULL FROM items i "
                           "JOIN grades g ON g.run_id = i.run_id AND g.item_key = i.item_key "
                           "WHERE i.run_id = ?1 AND g.grader_kind = ?2 AND g.parse_status = 'ok' "
                           "AND g.score IS NOT NULL GROUP BY i.item_key ORDER BY i.item_key",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, grader_kind);
    return units_each(st, fn, ctx, err);
}

int runinfo_item_unscored(struct store *s, int64_t run_id, const char *grader_kind,
                          runinfo_unit_fn fn, void *ctx, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT i.item_key, i.kind, i.interval, "
                           "max(g.parse_status = 'unparsed'), max(g.parse_status = 'skipped') "
                           "FROM items i JOIN grades g ON g.run_id = i.run_id AND "
                           "g.item_key = i.item_key WHERE i.run_id = ?1 AND g.grader_kind = ?2 "
                           "GROUP BY i.item_key HAVING count(CASE WHEN g.parse_status = 'ok' "
                           "THEN g.score END) = 0 AND (max(g.parse_status = 'unparsed') OR "
                           "max(g.parse_status = 'skipped')) ORDER BY i.item_key",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_run_key(st, run_id, grader_kind);
    return units_each(st, fn, ctx, err);
}

int runinfo_attribution_units(struct store *s, int64_t run_id, runinfo_unit_fn fn, void *ctx,
                              struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT 'p' || prompt_idx || '/f' || feature_idx || '/t' || position, "
                           "NULL, NULL, -attribution, ablation_effect FROM attributions "
                           "WHERE run_id = ?1 AND ablation_effect IS NOT NULL "
                           "ORDER BY prompt_idx, feature_idx, position",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    return units_each(st, fn, ctx, err);
}

int runinfo_autointerp_units(struct store *s, int64_t run_id, runinfo_unit_fn fn, void *ctx,
                             struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT 'f' || feature_idx, scorer, NULL, avg(CASE WHEN "
                           "(prediction >= 0.5) = (label >= 0.5) THEN 1.0 ELSE 0.0 END), NULL "
                           "FROM autointerp_samples WHERE run_id = ?1 AND prediction IS NOT NULL "
                           "AND scorer IN ('detection', 'fuzzing') AND seed = (SELECT min(seed) "
                           "FROM autointerp_samples WHERE run_id = ?1) GROUP BY scorer, "
                           "feature_idx ORDER BY scorer, feature_idx",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    return units_each(st, fn, ctx, err);
}

int runinfo_config_hash(struct store *s, int64_t id, char hex[65], struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s, "SELECT config_hash FROM runs WHERE id = ?1", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, id);
    int r = store_step(st, err);
    if (r == STORE_ROW) snprintf(hex, 65, "%s", store_col_text(st, 0));
    else if (r == STORE_DONE) ev_fail(err, EV_EFAIL, "no run %lld in %s", (long long)id, store_path(s));
    store_finalize(st);
    return r == STORE_ROW ? EV_OK : EV_EFAIL;
}

int runinfo_controls_of(struct store *s, int64_t main_id,
                        int (*fn)(void *ctx, int64_t id, const char *kind), void *ctx,
                        struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT max(r.id), json_extract(r.config_json, '$.control.kind') AS ck "
                           "FROM runs r JOIN runs m ON m.id = ?1 WHERE r.kind = m.kind AND "
                           "r.shard_k IS m.shard_k AND r.shard_n IS m.shard_n AND "
                           "json_extract(r.config_json, '$.control.of') = m.config_hash "
                           "GROUP BY ck ORDER BY ck",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, main_id);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        const char *k = store_col_text(st, 1);
        if ((rc = fn(ctx, store_col_int(st, 0), k ? k : "")) != EV_OK) break;
    }
    store_finalize(st);
    if (rc != EV_OK) return rc;
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}
