/* Unit tests for merge: shard databases built through the store API as a sharded evaluation
 * would (the work split by feature % N), merged, and compared with the same work done in one
 * database (the reference); idempotence, partial and unfinished shards, mismatched and foreign
 * shards (nothing merged), unknown tables, more shards than SQLite can attach at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/merge.h"
#include "store/store.h"

#define N_FEATURES 12
#define N_EX       2

struct fx {
    char dir[64];
};

static int setup(void **state) {
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/evalrun-merge-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fx *f = *state;
    char      *cmd = xasprintf("rm -rf %s", f->dir);
    int        rc = system(cmd);
    free(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static char *db_path(struct fx *f, const char *name) { return path_join(f->dir, name); }

static void exec_ok(struct store *s, const char *sql) {
    struct ev_err err;
    if (store_exec(s, sql, &err) != EV_OK) fail_msg("%s: %s", sql, err.msg);
}

/* What a shard database holds after `specificity --shard k/n` (n = 1: the whole run). */
struct shard_spec {
    int         k, n;
    int64_t     seed;
    const char *config;      /* config_json */
    const char *status;      /* the run's final status */
    int         shift_ids;   /* insert unrelated rows first so ids differ between shards */
    int         describe;    /* write feature descriptions for the shard's features */
    int         stop_after;  /* grade only this many items (0: all), as a killed run would */
};

static const char *CFG = "{\"features\":\"sample.txt\",\"per_interval\":2,\"seed\":5}";

static void make_shard(const char *path, const struct shard_spec *sp) {
    struct store *s = NULL;
    struct ev_err err;
    assert_int_equal(store_open(path, STORE_CREATE, &s, &err), EV_OK);
    int64_t model, sae, other, run;
    if (sp->shift_ids) {
        assert_int_equal(store_put_model(s, "other-model", "/m2", "{}", &other, &err), EV_OK);
        assert_int_equal(store_put_sae(s, "other-sae", "/s2", "{}", other, &other, &err), EV_OK);
        exec_ok(s, "INSERT INTO examples (sae_id, feature_idx, kind, activation, center, tokens, "
                   "acts, text) VALUES (1, 99, 'top', 1.0, 0, x'00000000', x'00000000', 'x')");
    }
    assert_int_equal(store_put_model(s, "model-hash", "/m", "{}", &model, &err), EV_OK);
    assert_int_equal(store_put_sae(s, "sae-hash", "/s", "{}", model, &sae, &err), EV_OK);
    struct run_info ri = {.kind = "specificity", .tag = "spec", .config_json = sp->config,
                          .seed = sp->seed, .shard_k = sp->k, .shard_n = sp->n,
                          .model_id = model, .sae_id = sae};
    int resumed;
    assert_int_equal(store_run_begin(s, &ri, &run, &resumed, &err), EV_OK);
    struct store_stmt *ex = NULL, *gr = NULL, *ft = NULL;
    assert_int_equal(store_prepare(s, "INSERT INTO examples (sae_id, feature_idx, kind, "
                                      "interval, activation, center, tokens, acts, text) VALUES "
                                      "(?1, ?2, 'interval', ?3, ?4, 1, ?5, ?6, ?7)", &ex, &err),
                     EV_OK);
    assert_int_equal(store_prepare(s, "INSERT INTO grades (run_id, item_key, sae_id, "
                                      "feature_idx, example_id, grader_kind, grader_name, score, "
                                      "parse_status, raw_answer, created_ms) VALUES (?1, ?2, ?3, "
                                      "?4, ?5, 'llm', 'mock:m', ?6, 'ok', ?7, 1)", &gr, &err),
                     EV_OK);
    assert_int_equal(store_prepare(s, "INSERT INTO features (sae_id, idx, description) VALUES "
                                      "(?1, ?2, ?3)", &ft, &err), EV_OK);
    struct store_stmt *it = NULL, *gc = NULL;
    assert_int_equal(store_prepare(s, "INSERT INTO items (run_id, item_key, kind, feature_idx, "
                                      "example_id, created_ms) VALUES (?1, ?2, 'interval', ?3, "
                                      "?4, 1)", &it, &err), EV_OK);
    assert_int_equal(store_prepare(s, "INSERT INTO grader_cache (key, provider, base_url, model, "
                                      "request_json, response_json, answer, created_ms) VALUES "
                                      "('cache:' || ?1, 'openai', 'http://127.0.0.1/v1', 'm', "
                                      "'{}', '{}', ?2, 1)", &gc, &err), EV_OK);
    /* every shard checked the grader once with the same request: one cache entry in all */
    exec_ok(s, "INSERT INTO grader_cache (key, provider, base_url, model, request_json, "
               "response_json, answer, created_ms) VALUES ('check', 'openai', "
               "'http://127.0.0.1/v1', 'm', '{}', '{}', 'ok', 1)");
    int done = 0;
    assert_int_equal(store_begin(s, &err), EV_OK);
    for (int feat = 0; feat < N_FEATURES; feat++) {
        if (feat % sp->n != sp->k) continue;
        char desc[32];
        snprintf(desc, sizeof desc, "feature %d", feat);
        /* a window that occurs twice in the corpus: two identical 'top' examples */
        for (int rep = 0; rep < 2; rep++) {
            char *top = xasprintf("INSERT INTO examples (sae_id, feature_idx, kind, activation, "
                                  "center, tokens, acts, text) VALUES (%lld, %d, 'top', 9.0, 0, "
                                  "x'07000000', x'00001041', 'again')", (long long)sae, feat);
            exec_ok(s, top);
            free(top);
        }
        /* the feature index's statistics (005), for every feature in every shard */
        char *fs = xasprintf("INSERT INTO feature_stats (sae_id, idx, n_tokens, fire_count, "
                             "density, max_act, mean_act, quantiles) VALUES (%lld, %d, 100, %d, "
                             "0.1, %d.5, 0.5, '[]')", (long long)sae, feat, feat, feat);
        exec_ok(s, fs);
        free(fs);
        store_bind_int(ft, 1, sae);
        store_bind_int(ft, 2, feat);
        store_bind_text(ft, 3, sp->describe ? desc : NULL);
        assert_int_equal(store_step(ft, &err), STORE_DONE);
        store_reset(ft);
        for (int j = 0; j < N_EX; j++) {
            if (sp->stop_after && done >= sp->stop_after) break;
            int32_t tok[2] = {feat, j};
            float   act[2] = {0.5f * (float)j, 1.0f + (float)feat};
            char    text[32], key[32], ans[32];
            snprintf(text, sizeof text, "ctx %d.%d", feat, j);
            snprintf(key, sizeof key, "f%d/e%d", feat, j);
            snprintf(ans, sizeof ans, "score: %d", (feat * 7 + j) % 4);
            store_bind_int(ex, 1, sae);
            store_bind_int(ex, 2, feat);
            store_bind_int(ex, 3, j);
            store_bind_double(ex, 4, 1.0 + feat);
            store_bind_blob(ex, 5, tok, sizeof tok);
            store_bind_blob(ex, 6, act, sizeof act);
            store_bind_text(ex, 7, text);
            assert_int_equal(store_step(ex, &err), STORE_DONE);
            store_reset(ex);
            int64_t eid = store_last_id(s);
            store_bind_int(gr, 1, run);
            store_bind_text(gr, 2, key);
            store_bind_int(gr, 3, sae);
            store_bind_int(gr, 4, feat);
            store_bind_int(gr, 5, eid);
            store_bind_int(gr, 6, (feat * 7 + j) % 4);
            store_bind_text(gr, 7, ans);
            assert_int_equal(store_step(gr, &err), STORE_DONE);
            store_reset(gr);
            /* the work item, and the grader's cached answer for it */
            store_bind_int(it, 1, run);
            store_bind_text(it, 2, key);
            store_bind_int(it, 3, feat);
            store_bind_int(it, 4, eid);
            assert_int_equal(store_step(it, &err), STORE_DONE);
            store_reset(it);
            store_bind_text(gc, 1, key);
            store_bind_text(gc, 2, ans);
            assert_int_equal(store_step(gc, &err), STORE_DONE);
            store_reset(gc);
            done++;
        }
    }
    assert_int_equal(store_commit(s, &err), EV_OK);
    /* the grader's counters for the shard's run: one request per item plus a preflight */
    char *usage = xasprintf("INSERT INTO grader_usage (run_id, grader_name, items, ok, "
                            "from_cache, failed, requests, retries, tokens_in, tokens_out, "
                            "cost_usd, updated_ms) VALUES (%lld, 'mock:m', %d, %d, 0, 0, %d, "
                            "1, %d, %d, %g, %d)", (long long)run, done, done, done + 1,
                            100 * done, done, 0.5 * done, 1000 + sp->k);
    exec_ok(s, usage);
    free(usage);
    store_finalize(ex);
    store_finalize(gr);
    store_finalize(ft);
    store_finalize(it);
    store_finalize(gc);
    assert_int_equal(store_run_finish(s, run, sp->status, NULL, &err), EV_OK);
    store_close(s);
}

static int64_t count(struct store *s, const char *sql) {
    struct store_stmt *st = NULL;
    struct ev_err      err;
    assert_int_equal(store_prepare(s, sql, &st, &err), EV_OK);
    assert_int_equal(store_step(st, &err), STORE_ROW);
    int64_t n = store_col_int(st, 0);
    store_finalize(st);
    return n;
}

static char *text(struct store *s, const char *sql) {
    struct store_stmt *st = NULL;
    struct ev_err      err;
    assert_int_equal(store_prepare(s, sql, &st, &err), EV_OK);
    assert_int_equal(store_step(st, &err), STORE_ROW);
    char *t = xstrdup(store_col_text(st, 0) ? store_col_text(st, 0) : "(null)");
    store_finalize(st);
    return t;
}

/* Everything a reader of the results sees, without the ids: the comparison with the reference. */
static const char *CONTENT =
    "SELECT group_concat(x, char(10)) FROM (SELECT r.kind || ' ' || r.config_hash || ' ' || "
    "r.seed || ' ' || r.shard_k || '/' || r.shard_n || ' ' || g.item_key || ' ' || g.score || "
    "' ' || g.raw_answer || ' ' || e.feature_idx || ' ' || e.interval || ' ' || hex(e.tokens) || "
    "' ' || hex(e.acts) || ' ' || e.text || ' ' || s.hash || ' ' || m.hash || ' ' || "
    "coalesce(f.description, '-') AS x FROM grades g JOIN runs r ON r.id = g.run_id JOIN "
    "examples e ON e.id = g.example_id JOIN saes s ON s.id = g.sae_id AND s.id = e.sae_id AND "
    "s.id = r.sae_id JOIN models m ON m.id = s.model_id AND m.id = r.model_id LEFT JOIN "
    "features f ON f.sae_id = s.id AND f.idx = g.feature_idx ORDER BY x)";

struct shards {
    char *paths[16];
    int   n;
};

static void make_shards(struct fx *f, struct shards *sh, int n, const char *status) {
    sh->n = n;
    for (int k = 0; k < n; k++) {
        char name[32];
        snprintf(name, sizeof name, "shard-%d.db", k);
        sh->paths[k] = db_path(f, name);
        struct shard_spec sp = {.k = k, .n = n, .seed = 5, .config = CFG, .status = status,
                                .shift_ids = k % 2, .describe = 1};
        make_shard(sh->paths[k], &sp);
    }
}

static void free_shards(struct shards *sh) {
    for (int k = 0; k < sh->n; k++) free(sh->paths[k]);
}

static void test_merge_equals_single_process(void **state) {
    struct fx   *f = *state;
    struct shards sh;
    make_shards(f, &sh, 4, "done");
    char *ref_path = db_path(f, "single.db"), *out_path = db_path(f, "merged.db");
    struct shard_spec one = {.k = 0, .n = 1, .seed = 5, .config = CFG, .status = "done",
                             .describe = 1};
    make_shard(ref_path, &one);

    struct store      *ref = NULL, *out = NULL;
    struct ev_err      err;
    struct merge_stats st;
    assert_int_equal(store_open(ref_path, 0, &ref, &err), EV_OK);
    assert_int_equal(store_open(out_path, STORE_CREATE, &out, &err), EV_OK);
    if (merge_databases(out, (const char *const *)sh.paths, sh.n, &st, &err) != EV_OK)
        fail_msg("merge: %s", err.msg);
    assert_int_equal(st.runs_new, 1);
    assert_int_equal(st.runs_done, 1);
    assert_int_equal(st.runs_partial, 0);

    char *want = text(ref, CONTENT), *got = text(out, CONTENT);
    assert_string_equal(got, want);
    assert_int_equal(count(out, "SELECT count(*) FROM grades"), N_FEATURES * N_EX);
    assert_int_equal(count(out, "SELECT count(*) FROM runs"), 1);
    assert_int_equal(count(out, "SELECT count(*) FROM runs WHERE status = 'done' AND shard_k = 0 "
                                "AND shard_n = 1 AND tag = 'spec' AND finished_ms > 0"), 1);
    assert_int_equal(count(out, "SELECT count(*) FROM merge_shards WHERE status = 'done'"), 4);
    /* the unrelated rows of the odd shards came along once each, with their references */
    assert_int_equal(count(out, "SELECT count(*) FROM models"), 2);
    assert_int_equal(count(out, "SELECT count(*) FROM saes"), 2);
    assert_int_equal(count(out, "SELECT count(*) FROM examples WHERE text != 'again'"),
                     N_FEATURES * N_EX + 1);
    /* identical rows within one input are kept, as many as the input has */
    assert_int_equal(count(out, "SELECT count(*) FROM examples WHERE text = 'again'"),
                     2 * N_FEATURES);
    assert_int_equal(count(out, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    /* the grader's counters of the merged run are the sums over the shards */
    char *usage = text(out, "SELECT items || ' ' || requests || ' ' || retries || ' ' || "
                            "tokens_in || ' ' || cost_usd || ' ' || updated_ms FROM "
                            "grader_usage");
    assert_string_equal(usage, "24 28 4 2400 12.0 1003");
    free(usage);
    /* the index statistics came along once each, attached to the right SAE */
    assert_int_equal(count(out, "SELECT count(*) FROM feature_stats f JOIN saes s ON s.id = "
                                "f.sae_id WHERE s.hash = 'sae-hash' AND f.max_act = f.idx + 0.5"),
                     N_FEATURES);
    /* items and the response cache came along, remapped, without duplicates */
    assert_int_equal(count(out, "SELECT count(*) FROM items i JOIN runs r ON r.id = i.run_id "
                                "JOIN examples e ON e.id = i.example_id JOIN grades g ON "
                                "g.run_id = r.id AND g.item_key = i.item_key AND g.example_id "
                                "= e.id"), N_FEATURES * N_EX);
    assert_int_equal(count(out, "SELECT count(*) FROM items"), N_FEATURES * N_EX);
    assert_int_equal(count(out, "SELECT count(*) FROM grader_cache"), N_FEATURES * N_EX + 1);
    assert_int_equal(count(out, "SELECT count(*) FROM grader_cache c JOIN grades g ON c.key = "
                                "'cache:' || g.item_key AND c.answer = g.raw_answer"),
                     N_FEATURES * N_EX);
    free(want);
    free(got);

    /* merging again, and naming a shard twice, adds nothing */
    const char *twice[] = {sh.paths[2], sh.paths[2], sh.paths[0]};
    assert_int_equal(merge_databases(out, twice, 3, &st, &err), EV_OK);
    assert_int_equal(merge_databases(out, (const char *const *)sh.paths, sh.n, &st, &err), EV_OK);
    assert_int_equal(st.runs_new, 0);
    for (int i = 0; i < st.n_tables; i++) assert_int_equal(st.tables[i].added, 0);
    got = text(out, CONTENT);
    want = text(ref, CONTENT);
    assert_string_equal(got, want);
    assert_int_equal(count(out, "SELECT count(*) FROM examples"), N_FEATURES * (N_EX + 2) + 1);
    /* merging again does not add the counters twice */
    assert_int_equal(count(out, "SELECT items * 1000 + requests FROM grader_usage"), 24028);
    free(want);
    free(got);

    /* the merged run is the one an unsharded rerun into OUT would resume */
    struct run_info ri = {.kind = "specificity", .config_json = CFG, .seed = 5, .shard_n = 1};
    int64_t         id, merged_id = count(out, "SELECT id FROM runs");
    int             resumed;
    assert_int_equal(store_run_begin(out, &ri, &id, &resumed, &err), EV_OK);
    assert_true(resumed);
    assert_int_equal(id, merged_id);

    store_close(ref);
    store_close(out);
    free(ref_path);
    free(out_path);
    free_shards(&sh);
}

static void test_partial_then_complete(void **state) {
    struct fx   *f = *state;
    struct shards sh;
    make_shards(f, &sh, 4, "done");
    /* shard 2 was killed after 3 items */
    struct shard_spec killed = {.k = 2, .n = 4, .seed = 5, .config = CFG,
                                .status = "interrupted", .stop_after = 3, .describe = 0};
    char *p2 = db_path(f, "shard-2-killed.db");
    make_shard(p2, &killed);
    char *out_path = db_path(f, "merged.db");
    struct store      *out = NULL;
    struct ev_err      err;
    struct merge_stats st;
    assert_int_equal(store_open(out_path, STORE_CREATE, &out, &err), EV_OK);

    /* shards 0, 1 and the killed 2; 3 not yet */
    const char *first[] = {sh.paths[0], sh.paths[1], p2};
    assert_int_equal(merge_databases(out, first, 3, &st, &err), EV_OK);
    assert_int_equal(st.runs_partial, 1);
    assert_int_equal(count(out, "SELECT count(*) FROM runs WHERE status = 'interrupted'"), 1);
    char *why = text(out, "SELECT error FROM runs");
    assert_non_null(strstr(why, "2 of 4 shards merged done"));
    assert_non_null(strstr(why, "2 interrupted"));
    free(why);
    assert_int_equal(count(out, "SELECT count(*) FROM grades"), 2 * (N_FEATURES / 4) * N_EX + 3);
    /* the killed shard wrote no descriptions: NULLs, filled later by the finished shard */
    assert_int_equal(count(out, "SELECT count(*) FROM features WHERE description IS NULL"), 3);

    /* the resumed shard 2 (complete now) and shard 3 */
    const char *rest[] = {sh.paths[2], sh.paths[3]};
    assert_int_equal(merge_databases(out, rest, 2, &st, &err), EV_OK);
    assert_int_equal(st.runs_new, 0);
    assert_int_equal(st.runs_done, 1);
    assert_int_equal(count(out, "SELECT count(*) FROM runs WHERE status = 'done' AND "
                                "error IS NULL"), 1);
    assert_int_equal(count(out, "SELECT count(*) FROM grades"), N_FEATURES * N_EX);
    assert_int_equal(count(out, "SELECT count(*) FROM features WHERE description IS NULL"), 0);
    /* an older copy of a done shard does not undo it */
    assert_int_equal(merge_databases(out, (const char *const *)&p2, 1, &st, &err), EV_OK);
    assert_int_equal(count(out, "SELECT count(*) FROM runs WHERE status = 'done'"), 1);
    assert_int_equal(count(out, "SELECT count(*) FROM merge_shards WHERE status = 'done'"), 4);
    store_close(out);
    free(p2);
    free(out_path);
    free_shards(&sh);
}

/* A shard of another run (other seed, other configuration, other shard count): refused, and
 * OUT is exactly as it was. */
static void test_foreign_shard_refused(void **state) {
    struct fx   *f = *state;
    struct shards sh;
    make_shards(f, &sh, 3, "done");
    char *out_path = db_path(f, "merged.db"), *alien = db_path(f, "alien.db");
    struct store *out = NULL;
    struct ev_err err;
    assert_int_equal(store_open(out_path, STORE_CREATE, &out, &err), EV_OK);
    /* OUT already holds something: it must stay as it was */
    const char *first[] = {sh.paths[0]};
    assert_int_equal(merge_databases(out, first, 1, NULL, &err), EV_OK);
    char *before = text(out, CONTENT);
    int64_t n_before = count(out, "SELECT count(*) FROM examples");

    static const struct {
        const char *config;
        int64_t     seed;
        int         n;
        const char *want;
    } cases[] = {
        {"{\"features\":\"other.txt\",\"per_interval\":2,\"seed\":5}", 5, 3, "'features'"},
        {"{\"features\":\"sample.txt\",\"per_interval\":2,\"seed\":5}", 6, 3, "seed 6"},
        {"{\"features\":\"sample.txt\",\"per_interval\":2,\"seed\":5}", 5, 4, "4 shards"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        remove(alien);
        struct shard_spec sp = {.k = 1, .n = cases[c].n, .seed = cases[c].seed,
                                .config = cases[c].config, .status = "done"};
        make_shard(alien, &sp);
        const char *in[] = {sh.paths[1], alien, sh.paths[2]};
        assert_int_equal(merge_databases(out, in, 3, NULL, &err), EV_EFAIL);
        assert_non_null(strstr(err.msg, "alien.db"));
        assert_non_null(strstr(err.msg, "another run"));
        if (!strstr(err.msg, cases[c].want)) fail_msg("case %zu: %s", c, err.msg);
        assert_non_null(strstr(err.msg, "nothing merged"));
        char *after = text(out, CONTENT);
        assert_string_equal(after, before);
        free(after);
        assert_int_equal(count(out, "SELECT count(*) FROM examples"), n_before);
        assert_int_equal(count(out, "SELECT count(*) FROM merge_shards"), 1);
    }
    free(before);
    store_close(out);
    free(out_path);
    free(alien);
    free_shards(&sh);
}

static void test_bad_inputs(void **state) {
    struct fx   *f = *state;
    struct shards sh;
    make_shards(f, &sh, 2, "done");
    char *out_path = db_path(f, "merged.db"), *junk = db_path(f, "junk.db"),
         *missing = db_path(f, "missing.db");
    struct store *out = NULL, *s = NULL;
    struct ev_err err;
    assert_int_equal(store_open(out_path, STORE_CREATE, &out, &err), EV_OK);

    const char *in1[] = {sh.paths[0], missing};
    assert_int_equal(merge_databases(out, in1, 2, NULL, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "missing.db"));
    assert_false(path_exists(missing)); /* ATTACH would have created it */

    assert_int_equal(file_write_atomic(junk, "not a database, just some text here......", 42,
                                       &err), EV_OK);
    const char *in2[] = {sh.paths[0], junk};
    assert_int_equal(merge_databases(out, in2, 2, NULL, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "junk.db"));

    const char *in3[] = {sh.paths[0], out_path};
    assert_int_equal(merge_databases(out, in3, 2, NULL, &err), EV_EUSAGE);
    assert_non_null(strstr(err.msg, "output database"));

    /* a table merge does not know, with rows: refused, named */
    assert_int_equal(store_open(sh.paths[1], 0, &s, &err), EV_OK);
    exec_ok(s, "CREATE TABLE mystery (x INTEGER); INSERT INTO mystery VALUES (1)");
    store_close(s);
    assert_int_equal(merge_databases(out, (const char *const *)sh.paths, 2, NULL, &err),
                     EV_EFAIL);
    assert_non_null(strstr(err.msg, "mystery"));
    assert_non_null(strstr(err.msg, "merge_tables"));
    /* an older schema: refused with the way out */
    assert_int_equal(store_open(sh.paths[1], 0, &s, &err), EV_OK);
    exec_ok(s, "DELETE FROM mystery; PRAGMA user_version = 1");
    store_close(s);
    assert_int_equal(merge_databases(out, (const char *const *)sh.paths, 2, NULL, &err),
                     EV_EFAIL);
    assert_non_null(strstr(err.msg, "schema version"));

    assert_int_equal(count(out, "SELECT count(*) FROM runs"), 0);
    assert_int_equal(count(out, "SELECT count(*) FROM grades"), 0);
    assert_int_equal(count(out, "SELECT count(*) FROM models"), 0);
    store_close(out);
    free(out_path);
    free(junk);
    free(missing);
    free_shards(&sh);
}

/* More shards than SQLite attaches at once (10), and a config that carries its shard. */
static void test_many_shards_and_shard_in_config(void **state) {
    struct fx   *f = *state;
    struct shards sh;
    sh.n = 12;
    for (int k = 0; k < sh.n; k++) {
        char name[32], cfg[128];
        snprintf(name, sizeof name, "s%d.db", k);
        snprintf(cfg, sizeof cfg, "{\"features\":\"sample.txt\",\"shard\":\"%d/12\",\"seed\":5}",
                 k);
        sh.paths[k] = db_path(f, name);
        struct shard_spec sp = {.k = k, .n = 12, .seed = 5, .config = cfg, .status = "done",
                                .describe = 1};
        make_shard(sh.paths[k], &sp);
    }
    char              *out_path = db_path(f, "merged.db");
    struct store      *out = NULL;
    struct ev_err      err;
    struct merge_stats st;
    assert_int_equal(store_open(out_path, STORE_CREATE, &out, &err), EV_OK);
    if (merge_databases(out, (const char *const *)sh.paths, sh.n, &st, &err) != EV_OK)
        fail_msg("merge: %s", err.msg);
    assert_int_equal(count(out, "SELECT count(*) FROM runs WHERE status = 'done'"), 1);
    char *cfg = text(out, "SELECT config_json FROM runs");
    assert_string_equal(cfg, "{\"features\":\"sample.txt\",\"seed\":5}");
    free(cfg);
    assert_int_equal(count(out, "SELECT count(*) FROM grades"), N_FEATURES * N_EX);
    store_close(out);
    free(out_path);
    free_shards(&sh);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_merge_equals_single_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_then_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_shard_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_inputs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_shards_and_shard_in_config, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
