/*
 * merge — folds shard databases into one; see merge.h for the rules.
 *
 * How: each input is attached in turn and its rows copied into temporary staging tables
 * (temp.stage_<table>, with a "src" column naming the input), then detached. The staged rows
 * are checked (unknown tables, mismatched configurations, dangling references), and only then
 * is OUT written, in one transaction: per table, foreign keys are rewritten through the id map
 * (temp.merge_map: table, src, old id -> OUT id), rows whose natural key OUT lacks are
 * inserted, and the map is extended with the ids OUT gave them.
 *
 * SQL here is built with table and column names, which come from the static merge_tables[]
 * and from OUT's own schema (pragma_table_info), never from user input; values are bound.
 */
#include "store/merge.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/hash.h"
#include "base/json.h"

// ---------------------------------------------------------------------------- the tables

enum merge_flags {
    MERGE_RUNS       = 1 << 0, /* the runs table: shard runs fold into one run (special code) */
    MERGE_FILL_NULLS = 1 << 1, /* on a key match, fill OUT's NULL columns from the input */
    MERGE_SKIP       = 1 << 2, /* bookkeeping that is not copied (see its comment) */
    MERGE_SUM        = 1 << 3, /* per-run counters: summed over the shards (see merge_sum) */
    MERGE_MULTISET   = 1 << 4, /* key not unique: copies within one input are kept (see
                                * merge_multiset) */
};

struct merge_ref {
    const char *col;   /* the column holding an id ... */
    const char *table; /* ... of this table (which must come earlier in merge_tables[]) */
};

struct merge_table {
    const char      *name;
    const char      *id;     /* INTEGER PRIMARY KEY referenced by other tables, or NULL */
    const char      *key[8]; /* natural key, after remapping; NULL-terminated */
    struct merge_ref refs[4];
    int              flags;
};

/*
 * Every table of the schema, parents before children. To add a table (a new migration):
 * add a line here with its natural key — the columns that say "this is the same row" in two
 * databases (a UNIQUE constraint, or the content that identifies it) — its id column if other
 * tables refer to it, and every column that holds another table's id. Tables not listed make
 * merge refuse inputs that have rows in them.
 */
static const struct merge_table merge_tables[] = {
    {"models", "id", {"hash"}, {{0}}, 0},
    {"saes", "id", {"hash"}, {{"model_id", "models"}}, 0},
    {"runs", "id", {"kind", "config_hash"}, {{"model_id", "models"}, {"sae_id", "saes"}},
     MERGE_RUNS},
    {"features", NULL, {"sae_id", "idx"}, {{"sae_id", "saes"}, {"desc_run_id", "runs"}},
     MERGE_FILL_NULLS},
    {"examples", "id", {"sae_id", "feature_idx", "kind", "interval", "center", "tokens"},
     {{"sae_id", "saes"}}, MERGE_MULTISET},
    {"items", "id", {"run_id", "item_key"}, {{"run_id", "runs"}, {"example_id", "examples"}}, 0},
    {"grades", "id", {"run_id", "item_key", "grader_kind", "grader_name"},
     {{"run_id", "runs"}, {"sae_id", "saes"}, {"example_id", "examples"}}, 0},
    /* the grader's response cache travels, so that a rerun pays nothing again */
    {"grader_cache", NULL, {"key"}, {{0}}, 0},
    {"grader_requests", "id", {"run_id", "grader_name", "cache_key", "attempt", "status",
                               "created_ms"}, {{"run_id", "runs"}}, MERGE_MULTISET},
    /* per-run counters (items, requests, tokens, cost): the merged run's are the sums over
     * its shards' */
    {"grader_usage", NULL, {"run_id", "grader_name"}, {{"run_id", "runs"}}, MERGE_SUM},
    /* influence and attribution (009) */
    {"generations", "id", {"run_id", "item_key"}, {{"run_id", "runs"}}, 0},
    {"attribution_prompts", "id", {"run_id", "prompt_idx"}, {{"run_id", "runs"}}, 0},
    {"attributions", "id", {"run_id", "prompt_idx", "feature_idx", "position"},
     {{"run_id", "runs"}}, 0},
    /* influence's numeric measures (015) */
    {"influence_measures", "id", {"run_id", "item_key"}, {{"run_id", "runs"}}, 0},
    /* automated interpretability (010); answers arrive later than their rows */
    {"autointerp_latents", NULL, {"run_id", "seed", "feature_idx"}, {{"run_id", "runs"}},
     MERGE_FILL_NULLS},
    {"autointerp_prompts", NULL, {"run_id", "seed", "scorer", "feature_idx", "prompt_no"},
     {{"run_id", "runs"}}, MERGE_FILL_NULLS},
    {"autointerp_samples", NULL, {"run_id", "seed", "scorer", "feature_idx", "sample_no"},
     {{"run_id", "runs"}}, MERGE_FILL_NULLS},
    /* the SAE runtime (005): training logs, metrics, sweeps, the feature index's statistics */
    {"sae_train_log", NULL, {"run_id", "step"}, {{"run_id", "runs"}}, 0},
    {"sae_metrics", "id", {"run_id", "sae_id", "n_tokens", "created_ms"},
     {{"run_id", "runs"}, {"sae_id", "saes"}}, 0},
    {"sae_sweep", NULL, {"run_id", "d_sae", "n_tokens"}, {{"run_id", "runs"}}, 0},
    {"feature_index_runs", NULL, {"sae_id", "config_hash"},
     {{"sae_id", "saes"}, {"run_id", "runs"}}, 0},
    {"feature_stats", NULL, {"sae_id", "idx"}, {{"sae_id", "saes"}}, 0},
    {"feature_neighbors", NULL, {"sae_id", "idx", "rank"}, {{"sae_id", "saes"}}, 0},
    {"feature_logits", NULL, {"sae_id", "idx", "sign", "rank"}, {{"sae_id", "saes"}}, 0},
    {"feature_neurons", NULL, {"sae_id", "idx"}, {{"sae_id", "saes"}}, 0},
    /* hand-recorded categories (012) */
    {"feature_tags", NULL, {"sae_id", "feature_idx", "category"}, {{"sae_id", "saes"}}, 0},
    /* a shard's provider batches (016): bookkeeping of what was pending there; their answers
     * travel in grader_cache */
    {"grader_batches", NULL, {NULL}, {{0}}, MERGE_SKIP},
    {"grader_batch_items", NULL, {NULL}, {{0}}, MERGE_SKIP},
    /* merge's own record of shards: rebuilt from the inputs' runs. */
    {"merge_shards", NULL, {NULL}, {{0}}, MERGE_SKIP},
};
#define N_TABLES ((int)(sizeof merge_tables / sizeof merge_tables[0]))

static const struct merge_table *find_table(const char *name) {
    for (int i = 0; i < N_TABLES; i++)
        if (strcmp(merge_tables[i].name, name) == 0) return &merge_tables[i];
    return NULL;
}

// ---------------------------------------------------------------------------- SQL helpers

/* Runs fixed SQL (built from names, see the file comment); *changes: rows it changed. */
static int exec_sql(struct store *s, const char *sql, int64_t *changes, struct ev_err *err) {
    int rc = store_exec(s, sql, err);
    if (rc == EV_OK && changes) *changes = store_changes(s);
    return rc;
}

/* SELECT returning one integer. */
static int query_int(struct store *s, const char *sql, int64_t *v, struct ev_err *err) {
    struct store_stmt *st = NULL;
    if (store_prepare(s, sql, &st, err) != EV_OK) return EV_EFAIL;
    int r = store_step(st, err);
    if (r == STORE_ROW) *v = store_col_int(st, 0);
    store_finalize(st);
    return r == STORE_ROW ? EV_OK : r < 0 ? EV_EFAIL : ev_fail(err, EV_EFAIL, "no row: %s", sql);
}

/* The columns of main.T, comma-separated and quoted; without the id column when skip_id. */
static int table_columns(struct store *s, const struct merge_table *t, int skip_id,
                         const char *prefix, char **out, struct ev_err *err) {
    struct store_stmt *st = NULL;
    struct sbuf        sb;
    sbuf_init(&sb);
    if (store_prepare(s, "SELECT name FROM pragma_table_info(?1, 'main') ORDER BY cid", &st,
                      err) != EV_OK)
        return EV_EFAIL;
    store_bind_text(st, 1, t->name);
    int r, n = 0;
    while ((r = store_step(st, err)) == STORE_ROW) {
        const char *c = store_col_text(st, 0);
        if (skip_id && t->id && strcmp(c, t->id) == 0) continue;
        sbuf_addf(&sb, "%s%s\"%s\"", n++ ? ", " : "", prefix, c);
    }
    store_finalize(st);
    if (r < 0 || n == 0) {
        sbuf_release(&sb);
        return r < 0 ? EV_EFAIL : ev_fail(err, EV_EFAIL, "table %s has no columns", t->name);
    }
    *out = sbuf_detach(&sb);
    return EV_OK;
}

/* "a.k1 IS b.k1 AND a.k2 IS b.k2 ..." over t's natural key. */
static char *key_match(const struct merge_table *t, const char *a, const char *b) {
    struct sbuf sb;
    sbuf_init(&sb);
    for (int i = 0; t->key[i]; i++)
        sbuf_addf(&sb, "%s%s.\"%s\" IS %s.\"%s\"", i ? " AND " : "", a, t->key[i], b, t->key[i]);
    return sbuf_detach(&sb);
}

static char *key_list(const struct merge_table *t) {
    struct sbuf sb;
    sbuf_init(&sb);
    for (int i = 0; t->key[i]; i++) sbuf_addf(&sb, "%s\"%s\"", i ? ", " : "", t->key[i]);
    return sbuf_detach(&sb);
}

static int is_key(const struct merge_table *t, const char *col) {
    for (int i = 0; t->key[i]; i++)
        if (strcmp(t->key[i], col) == 0) return 1;
    return 0;
}

// ---------------------------------------------------------------------------- staging

/* Whether OUT's schema has table name (a table listed here may come from a migration this
 * build does not have yet; it is then left alone). */
static int in_schema(struct store *s, const char *name) {
    struct store_stmt *st = NULL;
    struct ev_err      ignored;
    int                yes = 0;
    if (store_prepare(s, "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND "
                         "name = ?1", &st, &ignored) != EV_OK)
        return 0;
    store_bind_text(st, 1, name);
    if (store_step(st, &ignored) == STORE_ROW) yes = store_col_int(st, 0) > 0;
    store_finalize(st);
    return yes;
}

static void drop_staging(struct store *s) {
    struct ev_err ignored;
    for (int i = 0; i < N_TABLES; i++) {
        char *sql = xasprintf("DROP TABLE IF EXISTS temp.\"stage_%s\"", merge_tables[i].name);
        store_exec(s, sql, &ignored);
        free(sql);
    }
    store_exec(s, "DROP TABLE IF EXISTS temp.merge_map; DROP TABLE IF EXISTS temp.merge_src; "
                  "DROP TABLE IF EXISTS temp.merge_pick; DROP TABLE IF EXISTS "
                  "temp.merge_complete; DROP TABLE IF EXISTS temp.merge_sord; DROP TABLE IF "
                  "EXISTS temp.merge_oord", &ignored);
}

static int create_staging(struct store *s, struct ev_err *err) {
    drop_staging(s);
    for (int i = 0; i < N_TABLES; i++) {
        const struct merge_table *t = &merge_tables[i];
        if ((t->flags & MERGE_SKIP) || !in_schema(s, t->name)) continue;
        char *sql = xasprintf("CREATE TEMP TABLE \"stage_%s\" AS SELECT 0 AS src, * FROM "
                              "main.\"%s\" LIMIT 0", t->name, t->name);
        int rc = store_exec(s, sql, err);
        free(sql);
        if (rc != EV_OK) return rc;
    }
    return store_exec(s, "CREATE TEMP TABLE merge_map (tbl TEXT NOT NULL, src INTEGER NOT NULL, "
                         "old INTEGER NOT NULL, new INTEGER, PRIMARY KEY (tbl, src, old));"
                         "CREATE TEMP TABLE merge_src (src INTEGER PRIMARY KEY, path TEXT);",
                      err);
}

/* Copies the rows of the attached database "shard" into the staging tables as input src. */
static int stage_input(struct store *s, int src, const char *path, struct merge_stats *stats,
                       struct ev_err *err) {
    struct store_stmt *st = NULL, *ins = NULL;
    int                rc = EV_EFAIL, r;
    char              *sql = NULL;

    /* Tables the input has rows in that merge does not know: refuse rather than drop them. */
    if (store_prepare(s, "SELECT name FROM shard.sqlite_master WHERE type = 'table' AND "
                         "name NOT LIKE 'sqlite_%' ORDER BY name", &st, err) != EV_OK)
        goto out;
    while ((r = store_step(st, err)) == STORE_ROW) {
        const char *name = store_col_text(st, 0);
        if (find_table(name)) continue;
        int64_t n = 0;
        sql = xasprintf("SELECT count(*) FROM shard.\"%s\"", name);
        if (query_int(s, sql, &n, err) != EV_OK) goto out;
        free(sql);
        sql = NULL;
        if (n > 0) {
            ev_fail(err, EV_EFAIL, "%s: table %s (%lld rows) is not known to merge; add it to "
                                   "merge_tables[] in harness/store/merge.c (nothing merged)",
                    path, name, (long long)n);
            goto out;
        }
    }
    if (r < 0) goto out;
    store_finalize(st);
    st = NULL;

    for (int i = 0; i < N_TABLES; i++) {
        const struct merge_table *t = &merge_tables[i];
        if ((t->flags & MERGE_SKIP) || !in_schema(s, t->name)) continue;
        sql = xasprintf("INSERT INTO temp.\"stage_%s\" SELECT ?1, * FROM shard.\"%s\"", t->name,
                        t->name);
        if (store_prepare(s, sql, &ins, err) != EV_OK) {
            ev_fail(err, EV_EFAIL, "%s: cannot read table %s (is it an evalrun database of "
                                   "this version?)", path, t->name);
            goto out;
        }
        store_bind_int(ins, 1, src);
        if (store_step(ins, err) < 0) goto out;
        stats->tables[i].read += store_changes(s);
        store_finalize(ins);
        ins = NULL;
        free(sql);
        sql = NULL;
    }
    if (store_prepare(s, "INSERT INTO temp.merge_src (src, path) VALUES (?1, ?2)", &ins, err) !=
        EV_OK)
        goto out;
    store_bind_int(ins, 1, src);
    store_bind_text(ins, 2, path);
    if (store_step(ins, err) < 0) goto out;
    rc = EV_OK;
out:
    free(sql);
    store_finalize(st);
    store_finalize(ins);
    return rc;
}

/* Reads one input: checks it (exists, evalrun database, this schema version, not OUT), then
 * attaches, stages and detaches it. */
static int read_input(struct store *out, int src, const char *path, struct merge_stats *stats,
                      struct ev_err *err) {
    struct store *probe = NULL;
    struct stat   a, b;
    if (stat(path, &a) == 0 && stat(store_path(out), &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino)
        return ev_fail(err, EV_EUSAGE, "merge: %s is the output database (--db); name only "
                                       "shard databases after it", path);
    if (store_open(path, STORE_READONLY, &probe, err) != EV_OK) return EV_EFAIL;
    store_close(probe);
    if (store_attach(out, path, "shard", err) != EV_OK) return EV_EFAIL;
    int           rc = stage_input(out, src, path, stats, err);
    struct ev_err derr;
    if (store_detach(out, "shard", &derr) != EV_OK && rc == EV_OK) {
        *err = derr;
        rc = EV_EFAIL;
    }
    return rc;
}

// ---------------------------------------------------------------------------- runs: checks

static int is_shard_key(const char *k) {
    return strcmp(k, "shard") == 0 || strcmp(k, "shard_k") == 0 || strcmp(k, "shard_n") == 0;
}

/* Drops top-level shard keys from staged configurations (see merge.h) and rehashes them. */
static int normalise_configs(struct store *s, struct ev_err *err) {
    struct store_stmt *q = NULL, *u = NULL;
    cJSON             *j = NULL;
    int                rc = EV_EFAIL, r;
    if (store_prepare(s, "SELECT rowid, config_json FROM temp.stage_runs WHERE config_json "
                         "LIKE '%\"shard%'", &q, err) != EV_OK ||
        store_prepare(s, "UPDATE temp.stage_runs SET config_json = ?2, config_hash = ?3 "
                         "WHERE rowid = ?1", &u, err) != EV_OK)
        goto out;
    while ((r = store_step(q, err)) == STORE_ROW) {
        const char *cfg = store_col_text(q, 1);
        if (json_parse(cfg, strlen(cfg), "run configuration", &j, err) != EV_OK) goto out;
        int changed = 0;
        for (cJSON *c = j->child; c;) {
            cJSON *next = c->next;
            if (c->string && is_shard_key(c->string)) {
                cJSON_Delete(cJSON_DetachItemViaPointer(j, c));
                changed = 1;
            }
            c = next;
        }
        if (changed) {
            char *text = json_print(j);
            char  hash[65];
            sha256_hex(text, strlen(text), hash);
            store_bind_int(u, 1, store_col_int(q, 0));
            store_bind_text(u, 2, text);
            store_bind_text(u, 3, hash);
            free(text);
            if (store_step(u, err) < 0) goto out;
            store_reset(u);
        }
        json_free(j);
        j = NULL;
    }
    if (r < 0) goto out;
    rc = EV_OK;
out:
    json_free(j);
    store_finalize(q);
    store_finalize(u);
    return rc;
}

/* Names the first top-level key where configurations a and b differ, into buf. */
static void config_diff(const char *a, const char *b, char *buf, size_t n) {
    cJSON        *ja = NULL, *jb = NULL;
    struct ev_err ignored;
    snprintf(buf, n, "configuration");
    if (json_parse(a, strlen(a), "a", &ja, &ignored) != EV_OK ||
        json_parse(b, strlen(b), "b", &jb, &ignored) != EV_OK || !cJSON_IsObject(ja) ||
        !cJSON_IsObject(jb))
        goto out;
    for (int pass = 0; pass < 2; pass++) {
        cJSON *x = pass ? jb : ja, *y = pass ? ja : jb;
        for (cJSON *c = x->child; c; c = c->next) {
            cJSON *d = cJSON_GetObjectItemCaseSensitive(y, c->string);
            if (d && cJSON_Compare(c, d, 1)) continue;
            char *vc = json_print(c), *vd = d ? json_print(d) : xstrdup("(absent)");
            if (pass)
                snprintf(buf, n, "'%s': %.60s vs %.60s", c->string, vd, vc);
            else
                snprintf(buf, n, "'%s': %.60s vs %.60s", c->string, vc, vd);
            free(vc);
            free(vd);
            goto out;
        }
    }
out:
    json_free(ja);
    json_free(jb);
}

/* All sharded runs of one kind and role must agree on configuration, seed and shard count,
 * and belong to one evaluation. A control run (issue 17.2: its configuration holds
 * "control": {"kind", "of"}) has the role of its control kind and belongs to the evaluation
 * whose configuration hash its control.of names; every other run has the role "" and belongs
 * to its own configuration. So a run and its controls, sharded alike, merge together, and a
 * shard of another evaluation is still refused. */
static int check_shard_runs(struct store *s, struct ev_err *err) {
    struct store_stmt *q = NULL;
    int                rc = EV_EFAIL, r;
    char *kind = NULL, *role = NULL, *hash = NULL, *cfg = NULL, *path = NULL, *seed = NULL,
         *eval = NULL, *eval_path = NULL;
    int64_t n_ref = 0;
    if (store_prepare(s, "SELECT r.kind, r.config_hash, coalesce(r.seed, 'none'), r.shard_n, "
                         "r.shard_k, r.config_json, m.path, "
                         "coalesce(json_extract(r.config_json, '$.control.kind'), '') AS role, "
                         "coalesce(json_extract(r.config_json, '$.control.of'), r.config_hash) "
                         "FROM temp.stage_runs r JOIN temp.merge_src m USING (src) WHERE "
                         "r.shard_n > 1 OR r.shard_k != 0 ORDER BY r.kind, role, r.src, r.shard_k",
                      &q, err) != EV_OK)
        goto out;
    while ((r = store_step(q, err)) == STORE_ROW) {
        const char *k = store_col_text(q, 0), *h = store_col_text(q, 1),
                   *sd = store_col_text(q, 2), *p = store_col_text(q, 6),
                   *ro = store_col_text(q, 7), *ev = store_col_text(q, 8);
        int64_t n = store_col_int(q, 3), sk = store_col_int(q, 4);
        if (n < 1 || sk < 0 || sk >= n) {
            ev_fail(err, EV_EFAIL, "%s: run of kind %s has shard %lld/%lld, expected K/N with "
                                   "0 <= K < N (nothing merged)", p, k, (long long)sk,
                    (long long)n);
            goto out;
        }
        int new_kind = !kind || strcmp(kind, k) != 0;
        if (new_kind) {
            free(eval), free(eval_path);
            eval = xstrdup(ev), eval_path = xstrdup(p);
        } else if (*ro && strcmp(eval, ev) != 0) { /* runs of role "": their configs, below */
            ev_fail(err, EV_EFAIL, "%s: its %s run%s belongs to another evaluation than the "
                                   "one in %s: it is a shard of another run (nothing merged)",
                    p, k, *ro ? " (a control)" : "", eval_path);
            goto out;
        }
        if (new_kind || strcmp(role, ro) != 0) {
            free(kind), free(role), free(hash), free(cfg), free(path), free(seed);
            kind = xstrdup(k), role = xstrdup(ro), hash = xstrdup(h);
            cfg = xstrdup(store_col_text(q, 5)), path = xstrdup(p), seed = xstrdup(sd);
            n_ref = n;
            continue;
        }
        if (strcmp(hash, h) != 0) {
            char diff[200];
            config_diff(store_col_text(q, 5), cfg, diff, sizeof diff);
            ev_fail(err, EV_EFAIL, "%s: its %s run has another configuration than the one in "
                                   "%s (%s): it is a shard of another run (nothing merged)",
                    p, k, path, diff);
            goto out;
        }
        if (strcmp(seed, sd) != 0 || n_ref != n) {
            ev_fail(err, EV_EFAIL, "%s: its %s run has seed %s and %lld shards where %s has "
                                   "seed %s and %lld: it is a shard of another run (nothing "
                                   "merged)", p, k, sd, (long long)n, path, seed,
                    (long long)n_ref);
            goto out;
        }
    }
    rc = r < 0 ? EV_EFAIL : EV_OK;
out:
    free(kind), free(role), free(hash), free(cfg), free(path), free(seed), free(eval),
        free(eval_path);
    store_finalize(q);
    return rc;
}

// ---------------------------------------------------------------------------- writing

/* Rewrites t's foreign-key columns in its staging table through the id map; a reference the
 * input cannot resolve is an error (a damaged input). */
static int remap_refs(struct store *s, const struct merge_table *t, struct ev_err *err) {
    for (int i = 0; i < 4 && t->refs[i].col; i++) {
        const struct merge_ref *f = &t->refs[i];
        int64_t                 bad = 0;
        char *sql = xasprintf("SELECT count(*) FROM temp.\"stage_%s\" s WHERE s.\"%s\" IS NOT "
                              "NULL AND NOT EXISTS (SELECT 1 FROM temp.merge_map m WHERE "
                              "m.tbl = '%s' AND m.src = s.src AND m.old = s.\"%s\")",
                              t->name, f->col, f->table, f->col);
        int rc = query_int(s, sql, &bad, err);
        free(sql);
        if (rc != EV_OK) return rc;
        if (bad > 0)
            return ev_fail(err, EV_EFAIL, "an input's %s.%s refers to %lld %s rows it does not "
                                          "hold (damaged database; nothing merged)",
                           t->name, f->col, (long long)bad, f->table);
        sql = xasprintf("UPDATE temp.\"stage_%s\" SET \"%s\" = (SELECT m.new FROM "
                        "temp.merge_map m WHERE m.tbl = '%s' AND m.src = \"stage_%s\".src AND "
                        "m.old = \"stage_%s\".\"%s\") WHERE \"%s\" IS NOT NULL",
                        t->name, f->col, f->table, t->name, t->name, f->col, f->col);
        rc = exec_sql(s, sql, NULL, err);
        free(sql);
        if (rc != EV_OK) return rc;
    }
    return EV_OK;
}

/*
 * Tables whose natural key need not be unique (MERGE_MULTISET, e.g. examples: the same window
 * can occur twice in a corpus; logs such as grader_requests): rows are matched by key AND by their ordinal among the rows of
 * that key (in id order), within each input and within OUT. An input holding a key k times
 * makes OUT hold it at least k times, so merging keeps every input's copies, and merging the
 * same rows again (or the same base rows from every shard) adds nothing.
 */
static int merge_multiset(struct store *s, const struct merge_table *t, int64_t *added,
                          struct ev_err *err) {
    char *cols = NULL, *scols = NULL, *keys = NULL, *skeys = NULL, *match = NULL, *sql = NULL;
    int   rc = EV_EFAIL;
    if (table_columns(s, t, 1, "", &cols, err) != EV_OK ||
        table_columns(s, t, 1, "s.", &scols, err) != EV_OK)
        goto out;
    keys = key_list(t);
    match = key_match(t, "o", "s");
    struct sbuf sk;
    sbuf_init(&sk);
    for (int i = 0; t->key[i]; i++) sbuf_addf(&sk, "%ss2.\"%s\"", i ? ", " : "", t->key[i]);
    skeys = sbuf_detach(&sk);
    /* Ordinals of the staged rows within their input, and of OUT's rows. */
    sql = xasprintf("DROP TABLE IF EXISTS temp.merge_sord; CREATE TEMP TABLE merge_sord (srow "
                    "INTEGER PRIMARY KEY, ord INTEGER NOT NULL); INSERT INTO temp.merge_sord "
                    "SELECT rowid, row_number() OVER (PARTITION BY src, %s ORDER BY rowid) FROM "
                    "temp.\"stage_%s\";"
                    "DROP TABLE IF EXISTS temp.merge_oord; CREATE TEMP TABLE merge_oord AS SELECT "
                    "\"%s\" AS oid, %s, row_number() OVER (PARTITION BY %s ORDER BY \"%s\") AS "
                    "ord FROM main.\"%s\"; CREATE INDEX temp.merge_oord_key ON merge_oord (%s, "
                    "ord)",
                    keys, t->name, t->id, keys, keys, t->id, t->name, keys);
    if (exec_sql(s, sql, NULL, err) != EV_OK) goto out;
    free(sql);
    /* One row per (key, ordinal) among the inputs, beyond the copies OUT holds, in rowid order
     * so that the ids OUT gives them follow the ordinals. */
    sql = xasprintf("INSERT INTO main.\"%s\" (%s) SELECT %s FROM temp.\"stage_%s\" s JOIN "
                    "temp.merge_sord so ON so.srow = s.rowid WHERE s.rowid IN (SELECT "
                    "min(s2.rowid) FROM temp.\"stage_%s\" s2 JOIN temp.merge_sord so2 ON "
                    "so2.srow = s2.rowid GROUP BY %s, so2.ord) AND NOT EXISTS (SELECT 1 FROM "
                    "temp.merge_oord o WHERE %s AND o.ord = so.ord) ORDER BY s.rowid",
                    t->name, cols, scols, t->name, t->name, skeys, match);
    if (exec_sql(s, sql, added, err) != EV_OK) goto out;
    free(sql);
    /* Map each staged row to OUT's row of the same key and ordinal. */
    sql = xasprintf("DELETE FROM temp.merge_oord; INSERT INTO temp.merge_oord SELECT \"%s\", %s, "
                    "row_number() OVER (PARTITION BY %s ORDER BY \"%s\") FROM main.\"%s\";"
                    "INSERT INTO temp.merge_map (tbl, src, old, new) SELECT '%s', s.src, "
                    "s.\"%s\", (SELECT o.oid FROM temp.merge_oord o WHERE %s AND o.ord = so.ord) "
                    "FROM temp.\"stage_%s\" s JOIN temp.merge_sord so ON so.srow = s.rowid "
                    "WHERE true ON CONFLICT DO NOTHING",
                    t->id, keys, keys, t->id, t->name, t->name, t->id, match, t->name);
    if (exec_sql(s, sql, NULL, err) != EV_OK) goto out;
    rc = EV_OK;
out:
    free(cols), free(scols), free(keys), free(skeys), free(match), free(sql);
    return rc;
}

static int merge_generic(struct store *s, const struct merge_table *t, int64_t *added,
                         struct ev_err *err) {
    char *cols = NULL, *scols = NULL, *match = NULL, *keys = NULL, *sql = NULL;
    struct store_stmt *st = NULL;
    int rc = EV_EFAIL;
    if (table_columns(s, t, 1, "", &cols, err) != EV_OK ||
        table_columns(s, t, 1, "s.", &scols, err) != EV_OK)
        goto out;
    match = key_match(t, "m", "s");
    keys = key_list(t);
    /* One row per natural key among the inputs (the first read), none that OUT holds. */
    sql = xasprintf("INSERT INTO main.\"%s\" (%s) SELECT %s FROM temp.\"stage_%s\" s WHERE "
                    "s.rowid IN (SELECT min(rowid) FROM temp.\"stage_%s\" GROUP BY %s) AND NOT "
                    "EXISTS (SELECT 1 FROM main.\"%s\" m WHERE %s)",
                    t->name, cols, scols, t->name, t->name, keys, t->name, match);
    if (exec_sql(s, sql, added, err) != EV_OK) goto out;
    free(sql);
    sql = NULL;

    if (t->flags & MERGE_FILL_NULLS) {
        /* Columns OUT left NULL take the first non-NULL value an input has for that row;
         * the staged rows are indexed by key so that each lookup is cheap. */
        sql = xasprintf("CREATE INDEX temp.\"stage_%s_key\" ON \"stage_%s\" (%s)", t->name,
                        t->name, keys);
        if (exec_sql(s, sql, NULL, err) != EV_OK) goto out;
        free(sql);
        sql = NULL;
        if (store_prepare(s, "SELECT name FROM pragma_table_info(?1, 'main')", &st, err) !=
            EV_OK)
            goto out;
        store_bind_text(st, 1, t->name);
        int   r;
        char *tm = key_match(t, "main_row", "s");
        while ((r = store_step(st, err)) == STORE_ROW) {
            const char *c = store_col_text(st, 0);
            if (is_key(t, c) || (t->id && strcmp(c, t->id) == 0)) continue;
            sql = xasprintf("UPDATE main.\"%s\" AS main_row SET \"%s\" = (SELECT s.\"%s\" FROM "
                            "temp.\"stage_%s\" s WHERE %s AND s.\"%s\" IS NOT NULL ORDER BY "
                            "s.rowid LIMIT 1) WHERE \"%s\" IS NULL AND EXISTS (SELECT 1 FROM "
                            "temp.\"stage_%s\" s WHERE %s AND s.\"%s\" IS NOT NULL)",
                            t->name, c, c, t->name, tm, c, c, t->name, tm, c);
            int erc = exec_sql(s, sql, NULL, err);
            free(sql);
            sql = NULL;
            if (erc != EV_OK) {
                free(tm);
                goto out;
            }
        }
        free(tm);
        if (r < 0) goto out;
        store_finalize(st);
        st = NULL;
    }

    if (t->id) {
        sql = xasprintf("INSERT INTO temp.merge_map (tbl, src, old, new) SELECT '%s', s.src, "
                        "s.\"%s\", (SELECT max(m.\"%s\") FROM main.\"%s\" m WHERE %s) FROM "
                        "temp.\"stage_%s\" s WHERE true ON CONFLICT DO NOTHING",
                        t->name, t->id, t->id, t->name, match, t->name);
        if (exec_sql(s, sql, NULL, err) != EV_OK) goto out;
    }
    rc = EV_OK;
out:
    store_finalize(st);
    free(cols), free(scols), free(match), free(keys), free(sql);
    return rc;
}

/* The runs table: every input run maps to the run of OUT with its kind and configuration and
 * shard 0/1 (created 'interrupted' when absent), and is recorded in merge_shards. */
static int merge_runs(struct store *s, int64_t *added, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                rc = EV_EFAIL;
    static const char *find_merged = "m.kind = s.kind AND m.config_hash = s.config_hash AND "
                                     "m.shard_k = 0 AND m.shard_n = 1";
    char *sql = xasprintf(
        "INSERT INTO main.runs (kind, tag, status, started_ms, finished_ms, config_json, "
        "config_hash, code_version, host, pid, seed, shard_k, shard_n, model_id, sae_id, "
        "error) SELECT kind, tag, 'interrupted', started_ms, NULL, config_json, config_hash, "
        "code_version, host, 0, seed, 0, 1, model_id, sae_id, NULL FROM temp.stage_runs s "
        "WHERE s.rowid IN (SELECT min(rowid) FROM temp.stage_runs GROUP BY kind, config_hash) "
        "AND NOT EXISTS (SELECT 1 FROM main.runs m WHERE %s)", find_merged);
    if (exec_sql(s, sql, added, err) != EV_OK) goto out;
    free(sql);
    sql = xasprintf("INSERT INTO temp.merge_map (tbl, src, old, new) SELECT 'runs', s.src, s.id, "
                    "(SELECT max(m.id) FROM main.runs m WHERE %s) FROM temp.stage_runs s",
                    find_merged);
    if (exec_sql(s, sql, NULL, err) != EV_OK) goto out;
    /* A tag given to the sharded command names the merged run too. */
    if (exec_sql(s, "UPDATE main.runs SET tag = (SELECT s.tag FROM temp.stage_runs s JOIN "
                    "temp.merge_map m ON m.tbl = 'runs' AND m.src = s.src AND m.old = s.id "
                    "WHERE m.new = runs.id AND s.tag IS NOT NULL LIMIT 1) WHERE tag IS NULL AND "
                    "id IN (SELECT new FROM temp.merge_map WHERE tbl = 'runs')", NULL, err) !=
        EV_OK)
        goto out;
    /* Record the shards; a shard merged 'done' once stays done. */
    if (store_prepare(s,
                      "INSERT INTO main.merge_shards (run_id, shard_k, shard_n, status, "
                      "started_ms, finished_ms, host, source, merged_ms) SELECT m.new, "
                      "s.shard_k, s.shard_n, s.status, s.started_ms, s.finished_ms, s.host, "
                      "p.path, ?1 FROM temp.stage_runs s JOIN temp.merge_map m ON m.tbl = "
                      "'runs' AND m.src = s.src AND m.old = s.id JOIN temp.merge_src p ON "
                      "p.src = s.src WHERE true ON CONFLICT (run_id, shard_k, shard_n) DO "
                      "UPDATE SET status = CASE WHEN merge_shards.status = 'done' THEN 'done' "
                      "ELSE excluded.status END, started_ms = CASE WHEN merge_shards.status = "
                      "'done' THEN merge_shards.started_ms ELSE excluded.started_ms END, "
                      "finished_ms = CASE WHEN merge_shards.status = 'done' THEN "
                      "merge_shards.finished_ms ELSE excluded.finished_ms END, host = CASE "
                      "WHEN merge_shards.status = 'done' THEN merge_shards.host ELSE "
                      "excluded.host END, source = CASE WHEN merge_shards.status = 'done' THEN "
                      "merge_shards.source ELSE excluded.source END, merged_ms = ?1",
                      &st, err) != EV_OK)
        goto out;
    store_bind_int(st, 1, now_unix_ms());
    if (store_step(st, err) < 0) goto out;
    rc = EV_OK;
out:
    free(sql);
    store_finalize(st);
    return rc;
}

/*
 * Per-run counters (MERGE_SUM; key: the run column first, then the rest): for every merged run
 * whose shards 0..N-1 this merge read in full (as the merge job does), OUT's rows for that run
 * become the sums over one input run per shard (a 'done' one first, else the last read), so
 * that merging again gives the same totals; columns ending in "_ms" take the maximum. A run
 * merged piece by piece keeps the counters it had. Reads the staged rows with the inputs' run
 * ids (not remapped), so the table must come after runs in merge_tables[].
 */
static int merge_sum(struct store *s, const struct merge_table *t, int64_t *added,
                     struct ev_err *err) {
    struct store_stmt *st = NULL;
    struct sbuf        cols, aggs;
    char              *sql = NULL;
    int                rc = EV_EFAIL, r;
    const char        *run_col = t->key[0];
    sbuf_init(&cols);
    sbuf_init(&aggs);
    /* One input run per (merged run, shard). */
    if (exec_sql(s, "DROP TABLE IF EXISTS temp.merge_pick; CREATE TEMP TABLE merge_pick AS "
                    "SELECT m.new AS run, s.shard_k AS k, s.shard_n AS n, s.src AS src, "
                    "s.id AS old FROM temp.stage_runs s JOIN temp.merge_map m ON m.tbl = "
                    "'runs' AND m.src = s.src AND m.old = s.id WHERE s.rowid = (SELECT "
                    "s2.rowid FROM temp.stage_runs s2 JOIN temp.merge_map m2 ON m2.tbl = "
                    "'runs' AND m2.src = s2.src AND m2.old = s2.id WHERE m2.new = m.new AND "
                    "s2.shard_k = s.shard_k AND s2.shard_n = s.shard_n ORDER BY (s2.status = "
                    "'done') DESC, s2.src DESC LIMIT 1);"
                    "DROP TABLE IF EXISTS temp.merge_complete; CREATE TEMP TABLE merge_complete "
                    "AS SELECT run, max(n) AS n FROM (SELECT run, n FROM temp.merge_pick GROUP "
                    "BY run, n HAVING count(DISTINCT k) = n) GROUP BY run",
                 NULL, err) != EV_OK)
        goto out;
    if (store_prepare(s, "SELECT name FROM pragma_table_info(?1, 'main') ORDER BY cid", &st,
                      err) != EV_OK)
        goto out;
    store_bind_text(st, 1, t->name);
    while ((r = store_step(st, err)) == STORE_ROW) {
        const char *c = store_col_text(st, 0);
        size_t      len = strlen(c);
        sbuf_addf(&cols, "%s\"%s\"", cols.len ? ", " : "", c);
        if (strcmp(c, run_col) == 0)
            sbuf_addf(&aggs, "%sp.run", aggs.len ? ", " : "");
        else if (is_key(t, c))
            sbuf_addf(&aggs, "%su.\"%s\"", aggs.len ? ", " : "", c);
        else if (len > 3 && strcmp(c + len - 3, "_ms") == 0)
            sbuf_addf(&aggs, "%smax(u.\"%s\")", aggs.len ? ", " : "", c);
        else
            sbuf_addf(&aggs, "%ssum(u.\"%s\")", aggs.len ? ", " : "", c);
    }
    if (r < 0) goto out;
    /* Grouped by the merged run and the rest of the key. */
    struct sbuf g;
    sbuf_init(&g);
    sbuf_adds(&g, "p.run");
    for (int i = 1; t->key[i]; i++) sbuf_addf(&g, ", u.\"%s\"", t->key[i]);
    int64_t deleted = 0, inserted = 0;
    sql = xasprintf("DELETE FROM main.\"%s\" WHERE \"%s\" IN (SELECT run FROM "
                    "temp.merge_complete)", t->name, run_col);
    if (exec_sql(s, sql, &deleted, err) != EV_OK) {
        sbuf_release(&g);
        goto out;
    }
    free(sql);
    sql = xasprintf("INSERT INTO main.\"%s\" (%s) SELECT %s FROM temp.\"stage_%s\" u JOIN "
                    "temp.merge_pick p ON p.src = u.src AND p.old = u.\"%s\" JOIN "
                    "temp.merge_complete c ON c.run = p.run AND c.n = p.n GROUP BY %s",
                    t->name, cols.buf, aggs.buf, t->name, run_col, g.buf);
    sbuf_release(&g);
    if (exec_sql(s, sql, &inserted, err) != EV_OK) goto out;
    *added = inserted > deleted ? inserted - deleted : 0; /* rows new to OUT */
    rc = EV_OK;
out:
    free(sql);
    store_finalize(st);
    sbuf_release(&cols);
    sbuf_release(&aggs);
    return rc;
}

/* Sets the status of every merged run this merge touched: 'done' when, for some N, shards
 * 0..N-1 are all merged done (or when it was done already); otherwise it stays as it is, with
 * what is missing in its error column when it is not done. */
static int settle_runs(struct store *s, struct merge_stats *stats, struct ev_err *err) {
    struct store_stmt *q = NULL, *sh = NULL, *u = NULL;
    int                rc = EV_EFAIL, r;
    struct sbuf        why;
    sbuf_init(&why);
    if (store_prepare(s, "SELECT id, status FROM main.runs WHERE id IN (SELECT new FROM "
                         "temp.merge_map WHERE tbl = 'runs')", &q, err) != EV_OK ||
        store_prepare(s, "SELECT shard_n, count(DISTINCT CASE WHEN status = 'done' THEN "
                         "shard_k END), group_concat(CASE WHEN status != 'done' THEN shard_k || ' ' "
                         "|| status END, ', '), max(finished_ms) FROM main.merge_shards WHERE "
                         "run_id = ?1 GROUP BY shard_n ORDER BY shard_n", &sh, err) != EV_OK ||
        store_prepare(s, "UPDATE main.runs SET status = ?2, finished_ms = ?3, error = ?4 "
                         "WHERE id = ?1", &u, err) != EV_OK)
        goto out;
    while ((r = store_step(q, err)) == STORE_ROW) {
        int64_t id = store_col_int(q, 0);
        int     was_done = strcmp(store_col_text(q, 1), "done") == 0, complete = 0;
        int64_t fin = 0;
        sbuf_release(&why);
        store_bind_int(sh, 1, id);
        int r2;
        while ((r2 = store_step(sh, err)) == STORE_ROW) {
            int64_t n = store_col_int(sh, 0), n_done = store_col_int(sh, 1);
            if (n_done == n) {
                complete = 1;
                fin = store_col_int(sh, 3);
            } else {
                const char *bad = store_col_text(sh, 2);
                sbuf_addf(&why, "%s%lld of %lld shards merged done", why.len ? "; " : "",
                          (long long)n_done, (long long)n);
                if (bad) sbuf_addf(&why, " (not done: %s)", bad);
            }
        }
        store_reset(sh);
        if (r2 < 0) goto out;
        if (was_done || complete) stats->runs_done++;
        else stats->runs_partial++;
        if (was_done || strcmp(store_col_text(q, 1), "running") == 0) continue;
        store_bind_int(u, 1, id);
        store_bind_text(u, 2, complete ? "done" : "interrupted");
        if (complete && fin > 0) store_bind_int(u, 3, fin); else store_bind_null(u, 3);
        store_bind_text(u, 4, complete ? NULL : why.len ? why.buf : "incomplete");
        if (store_step(u, err) < 0) goto out;
        store_reset(u);
    }
    rc = r < 0 ? EV_EFAIL : EV_OK;
out:
    sbuf_release(&why);
    store_finalize(q);
    store_finalize(sh);
    store_finalize(u);
    return rc;
}

// ---------------------------------------------------------------------------- entry point

int merge_databases(struct store *out, const char *const *paths, int n,
                    struct merge_stats *stats, struct ev_err *err) {
    struct merge_stats local;
    int                rc = EV_EFAIL, in_tx = 0;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    EV_ASSERT(N_TABLES <= MERGE_MAX_TABLES);
    stats->n_tables = N_TABLES;
    for (int i = 0; i < N_TABLES; i++) stats->tables[i].name = merge_tables[i].name;
    if (n < 1) return ev_fail(err, EV_EUSAGE, "merge: no shard databases named");

    if (create_staging(out, err) != EV_OK) goto out;
    for (int i = 0; i < n; i++)
        if ((rc = read_input(out, i + 1, paths[i], stats, err)) != EV_OK) goto out;
    rc = EV_EFAIL;
    if (normalise_configs(out, err) != EV_OK || check_shard_runs(out, err) != EV_OK) goto out;

    if (store_begin(out, err) != EV_OK) goto out;
    in_tx = 1;
    for (int i = 0; i < N_TABLES; i++) {
        const struct merge_table *t = &merge_tables[i];
        if ((t->flags & MERGE_SKIP) || !in_schema(out, t->name)) continue;
        if (ev_interrupted()) {
            rc = ev_fail(err, EV_EINTR, "merge interrupted (nothing merged)");
            goto out;
        }
        int64_t added = 0;
        if (t->flags & MERGE_SUM) {
            if (merge_sum(out, t, &added, err) != EV_OK) goto out;
            stats->tables[i].added = added;
            continue;
        }
        if (remap_refs(out, t, err) != EV_OK) goto out;
        if ((t->flags & MERGE_RUNS       ? merge_runs(out, &added, err)
             : t->flags & MERGE_MULTISET ? merge_multiset(out, t, &added, err)
                                         : merge_generic(out, t, &added, err)) != EV_OK)
            goto out;
        stats->tables[i].added = added;
        if (t->flags & MERGE_RUNS) stats->runs_new = added;
    }
    if (settle_runs(out, stats, err) != EV_OK) goto out;
    if (store_commit(out, err) != EV_OK) goto out;
    in_tx = 0;
    rc = EV_OK;
out:
    if (in_tx) store_rollback(out);
    drop_staging(out);
    return rc;
}
