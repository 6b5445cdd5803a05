/* Unit tests for the evaluations' shared layer and the specificity/completeness internals:
 * features files (every error names file and line), interval binning at its boundaries,
 * context sampling (reproducible, within its interval, uniform, duplicates once), items and
 * grades (idempotent planning, error grades pending again, a stored grade never overwritten),
 * planning from index rows, concept sets, and the completeness top features checked against
 * an independent computation (model_forward with a read edit + the naive SAE encoder).
 * Each test works in its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evals/common.h"
#include "evals/completeness.h"
#include "evals/describe.h"
#include "evals/itemgrade.h"
#include "evals/specificity.h"
#include "model/tok.h"

struct fx {
    char            dir[64];
    struct eval_env env;
    int             env_open;
};

static char *root_path(const char *rel) {
    const char *root = getenv("ROOT");
    return path_join(root && *root ? root : ".", rel);
}

static char *fx_path(struct fx *f, const char *name) { return path_join(f->dir, name); }

static void write_file(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int setup(void **state) {
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/evalrun-evals-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fx *f = *state;
    if (f->env_open) eval_env_release(&f->env);
    char *cmd = xasprintf("rm -rf %s", f->dir);
    int   rc = system(cmd);
    free(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* A random standard SAE for stories260K's residual stream after block 2, saved in the
 * SAELens layout, opened with the model and a fresh database. */
static void open_env(struct fx *f, int d_sae) {
    struct sae_config cfg = sae_default_config(64, d_sae);
    snprintf(cfg.hook_name, sizeof cfg.hook_name, "blocks.2.hook_resid_post");
    cfg.hook_layer = 2;
    struct sae *s = sae_new(&cfg);
    struct rng  r;
    rng_seed(&r, 7);
    for (size_t i = 0; i < (size_t)64 * d_sae; i++) {
        s->W_enc[i] = 0.2f * rng_normal(&r);
        s->W_dec[i] = 0.2f * rng_normal(&r);
    }
    for (int i = 0; i < d_sae; i++) s->b_enc[i] = -0.1f;
    struct ev_err err = {{0}};
    char *sdir = fx_path(f, "sae"), *db = fx_path(f, "t.db"),
         *model = root_path("evals/models/stories260K/stories260K.bin");
    if (sae_save(s, sdir, 1.0, NULL, &err) != EV_OK) fail_msg("sae_save: %s", err.msg);
    if (eval_env_open(&f->env, db, model, 0, sdir, &err) != EV_OK)
        fail_msg("eval_env_open: %s", err.msg);
    f->env_open = 1;
    sae_free(s);
    free(sdir);
    free(db);
    free(model);
}

// ---------------------------------------------------------------------------- features file

static void test_features_file(void **state) {
    struct fx *f = *state;
    static const struct {
        const char *text;
        int         ok;
        const char *want; /* in the error message, or the parsed "id:desc|..." */
    } cases[] = {
        {"# comment\n\n3\tthe word park\r\n7\n  12 \t dogs \n", 1, "3:the word park|7:-|12:dogs|"},
        {"1\n2\nx3\n", 0, ":3: expected a feature id"},
        {"1\n-4\n", 0, ":2: expected a feature id"},
        {"1\n99\n", 0, ":2: feature 99 is out of range"},
        {"5\n\n5\tagain\n", 0, ":3: feature 5 is listed twice"},
        {"8\tuses {{context}} here\n", 0, ":1: the description of feature 8 contains a template"},
        {"8\tclosing }} only\n", 0, ":1: the description of feature 8 contains a template"},
        {"", 0, "no features in the file"},
        {"# only comments\n\n", 0, "no features in the file"},
    };
    char *path = fx_path(f, "feats.txt");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct eval_features ff = {0};
        struct ev_err        err = {{0}};
        write_file(path, cases[c].text);
        int rc = eval_features_load(path, 64, &ff, &err);
        if (!cases[c].ok) {
            assert_int_equal(rc, EV_EFAIL);
            if (!strstr(err.msg, cases[c].want) || !strstr(err.msg, path))
                fail_msg("case %zu: message '%s' lacks '%s' or the path", c, err.msg,
                         cases[c].want);
            assert_int_equal(ff.n, 0);
            continue;
        }
        assert_int_equal(rc, EV_OK);
        struct sbuf sb;
        sbuf_init(&sb);
        for (int i = 0; i < ff.n; i++)
            sbuf_addf(&sb, "%d:%s|", ff.idx[i], ff.desc[i] ? ff.desc[i] : "-");
        assert_string_equal(sb.buf, cases[c].want);
        sbuf_release(&sb);
        eval_features_release(&ff);
    }
    free(path);
}

// ---------------------------------------------------------------------------- intervals

static void test_interval_boundaries(void **state) {
    (void)state;
    /* (j·max/K, (j+1)·max/K] -> j; written out for max 2, K 4: (0,.5] (.5,1] (1,1.5] (1.5,2] */
    static const struct { double a; int want; } cases[] = {
        {0.0, -1}, {-1.0, -1}, {1e-9, 0}, {0.5, 0}, {0.5000001, 1}, {1.0, 1},
        {1.25, 2}, {1.5, 2}, {1.75, 3}, {2.0, 3}, {2.5, 3}, {NAN, -1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int got = spec_interval_of(cases[c].a, 2.0, 4);
        if (got != cases[c].want)
            fail_msg("activation %g: interval %d, expected %d", cases[c].a, got, cases[c].want);
    }
    assert_int_equal(spec_interval_of(1.0, 0.0, 4), -1);
    assert_int_equal(spec_interval_of(0.3, 3.0, 10), 0); /* exactly 1/10 of max: closed right */
    assert_int_equal(spec_interval_of(0.31, 3.0, 10), 1);
    assert_int_equal(spec_interval_of(3.0, 3.0, 1), 0);
}

/* Examples built in memory: n_act activating ones with activations spread over (0, max],
 * n_non non-activating ones; window i has tokens {i, i+1, ...} so windows differ. */
static void make_examples(struct describe_examples *x, int n_act, int n_non, double max) {
    x->n = n_act + n_non;
    x->ex = xcalloc((size_t)x->n, sizeof *x->ex);
    x->max_act = max;
    for (int i = 0; i < x->n; i++) {
        struct describe_example *e = &x->ex[i];
        e->id = 100 + i;
        e->n = 4;
        e->center = 1;
        e->tokens = xcalloc(4, sizeof *e->tokens);
        e->acts = xcalloc(4, sizeof *e->acts);
        for (int t = 0; t < 4; t++) e->tokens[t] = i + t;
        if (i < n_act) {
            snprintf(e->kind, sizeof e->kind, i < 5 ? "top" : "interval");
            e->activation = max * (double)(n_act - i) / n_act; /* max down to max/n_act */
            e->acts[1] = (float)e->activation;
        } else {
            snprintf(e->kind, sizeof e->kind, "nonactivating");
        }
        e->interval = -1;
    }
}

static void test_pick_examples(void **state) {
    (void)state;
    struct describe_examples x;
    make_examples(&x, 40, 7, 4.0); /* 4 activating per interval of 10 */
    struct spec_params p = {3, 10, 42};
    struct spec_pick   a[33], b[33], c[33];
    int                na = spec_pick_examples(&x, 5, &p, a);
    assert_int_equal(na, 10 * 3 + 3);
    int per[11] = {0};
    for (int i = 0; i < na; i++) {
        const struct describe_example *e = &x.ex[a[i].ex];
        if (a[i].interval < 0) {
            assert_true(describe_is_nonactivating(e));
            per[10]++;
        } else {
            assert_int_equal(spec_interval_of(e->activation, 4.0, 10), a[i].interval);
            per[a[i].interval]++;
        }
        for (int k = 0; k < i; k++) assert_int_not_equal(a[k].ex, a[i].ex);
    }
    for (int j = 0; j < 11; j++) assert_int_equal(per[j], 3);
    /* reproducible for the same (seed, feature), different for another seed or feature */
    assert_int_equal(spec_pick_examples(&x, 5, &p, b), na);
    assert_memory_equal(a, b, sizeof a[0] * (size_t)na);
    p.seed = 43;
    spec_pick_examples(&x, 5, &p, c);
    int differ = memcmp(a, c, sizeof a[0] * (size_t)na) != 0;
    p.seed = 42;
    spec_pick_examples(&x, 6, &p, c);
    differ += memcmp(a, c, sizeof a[0] * (size_t)na) != 0;
    assert_int_equal(differ, 2);
    /* fewer candidates than asked: all of them */
    p.per_interval = 10;
    struct spec_pick big[110];
    int              nb = spec_pick_examples(&x, 5, &p, big);
    assert_int_equal(nb, 40 + 7);
    describe_examples_release(&x);
}

static void test_pick_uniform_and_dedup(void **state) {
    (void)state;
    struct describe_examples x;
    make_examples(&x, 40, 0, 4.0);
    /* interval 9 holds examples 0..3 (activations 4.0, 3.9, 3.8, 3.7); pick 1 of them: each
     * should come up a quarter of the time over many seeds */
    int               count[4] = {0}, trials = 4000;
    struct spec_pick  pk[10];
    struct spec_params p = {1, 10, 0};
    for (int s = 0; s < trials; s++) {
        p.seed = (uint64_t)s;
        int n = spec_pick_examples(&x, 1, &p, pk);
        assert_int_equal(n, 10);
        assert_int_equal(pk[9].interval, 9);
        assert_in_range(pk[9].ex, 0, 3);
        count[pk[9].ex]++;
    }
    for (int i = 0; i < 4; i++) /* binomial sd ~ 27: 6 sd */
        if (abs(count[i] - trials / 4) > 165) fail_msg("example %d picked %d of %d", i, count[i], trials);
    /* a window stored twice (as 'top' and as 'interval') counts once */
    for (int t = 0; t < 4; t++) x.ex[1].tokens[t] = x.ex[0].tokens[t];
    p.per_interval = 4;
    struct spec_pick all[44];
    int              n = spec_pick_examples(&x, 1, &p, all), in9 = 0;
    for (int i = 0; i < n; i++) {
        assert_int_not_equal(all[i].ex, 1);
        in9 += all[i].interval == 9;
    }
    assert_int_equal(in9, 3);
    describe_examples_release(&x);
}

// ---------------------------------------------------------------------------- items, grades

static void test_items_and_grades(void **state) {
    struct fx *f = *state;
    open_env(f, 32);
    struct ev_err   err = {{0}};
    struct eval_run run;
    cJSON          *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "what", "unit");
    assert_int_equal(eval_run_begin(&f->env, "specificity", NULL, 0, cfg, 1, 0, 1, &run, &err), EV_OK);
    json_free(cfg);
    struct item_row it = {.key = "f1:i0:e5", .kind = "interval", .feature = 1, .interval = 0,
                           .activation = 0.5, .template_name = "specificity",
                           .template_hash = "h", .prompt = "p1"};
    assert_int_equal(eval_item_put(&f->env, &run, &it, &err), EV_OK);
    it.prompt = "changed";
    assert_int_equal(eval_item_put(&f->env, &run, &it, &err), EV_OK); /* kept as planned */
    long pending = -1;
    assert_int_equal(itemgrade_count_pending(&f->env, &run, "specificity", &pending, &err), EV_OK);
    assert_int_equal(pending, 1);
    assert_int_equal(eval_item_graded(&f->env, &run, "f1:i0:e5", "llm", &err), 0);
    struct grade_row g = {.item_key = "f1:i0:e5", .feature = 1, .grader_kind = "llm",
                           .grader_name = "openai:m", .score = -1, .parse_status = "error",
                           .raw_answer = "HTTP 500"};
    assert_int_equal(eval_grade_put(&f->env, &run, &g, &err), EV_OK);
    /* a failed request leaves the item pending */
    assert_int_equal(eval_item_graded(&f->env, &run, "f1:i0:e5", "llm", &err), 0);
    itemgrade_count_pending(&f->env, &run, "specificity", &pending, &err);
    assert_int_equal(pending, 1);
    g.score = 2;
    g.parse_status = "ok";
    g.raw_answer = "Score: 2";
    assert_int_equal(eval_grade_put(&f->env, &run, &g, &err), EV_OK);
    assert_int_equal(eval_item_graded(&f->env, &run, "f1:i0:e5", "llm", &err), 1);
    itemgrade_count_pending(&f->env, &run, "specificity", &pending, &err);
    assert_int_equal(pending, 0);
    /* a stored grade is never overwritten */
    g.score = 0;
    assert_int_equal(eval_grade_put(&f->env, &run, &g, &err), EV_OK);
    struct store_stmt *st = NULL;
    assert_int_equal(store_prepare(f->env.store, "SELECT count(*), max(score), max(prompt) FROM "
                                                 "grades JOIN items USING (run_id, item_key)",
                                   &st, &err), EV_OK);
    assert_int_equal(store_step(st, &err), STORE_ROW);
    assert_int_equal(store_col_int(st, 0), 1);
    assert_int_equal(store_col_int(st, 1), 2);
    assert_string_equal(store_col_text(st, 2), "p1");
    store_finalize(st);
    /* shards deal items round-robin */
    struct eval_run s = {.shard_k = 1, .shard_n = 3};
    assert_false(eval_in_shard(&s, 0));
    assert_true(eval_in_shard(&s, 1));
    assert_true(eval_in_shard(&s, 4));
}

/* Stores an example row for feature fi: the tokens of text, activation a on token center
 * (and half of it on the next token), or a raw blob pair when bad. */
static int64_t put_example(struct fx *f, int fi, const char *kind, const char *text, int center,
                           float a, int bad) {
    struct ev_err err = {{0}};
    int          *ids = NULL, n = 0;
    assert_int_equal(tok_encode(model_tokenizer(f->env.model), text, 0, &ids, &n, &err), EV_OK);
    float *acts = xcalloc((size_t)n, sizeof *acts);
    acts[center] = a;
    if (a > 0 && center + 1 < n) acts[center + 1] = a / 2;
    struct store_stmt *st = NULL;
    assert_int_equal(store_prepare(f->env.store,
                                   "INSERT INTO examples (sae_id, feature_idx, kind, activation, "
                                   "center, tokens, acts, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                                   "?7, ?8)", &st, &err), EV_OK);
    store_bind_int(st, 1, f->env.sae_id);
    store_bind_int(st, 2, fi);
    store_bind_text(st, 3, kind);
    store_bind_double(st, 4, a);
    store_bind_int(st, 5, center);
    store_bind_blob(st, 6, ids, sizeof *ids * (size_t)n);
    store_bind_blob(st, 7, acts, sizeof *acts * (size_t)(bad ? n - 1 : n));
    store_bind_text(st, 8, text);
    assert_int_equal(store_step(st, &err), STORE_DONE);
    store_finalize(st);
    free(ids);
    free(acts);
    return store_last_id(f->env.store);
}

static void test_plan_feature(void **state) {
    struct fx *f = *state;
    open_env(f, 32);
    struct ev_err   err = {{0}};
    struct eval_run run;
    cJSON          *cfg = cJSON_CreateObject();
    assert_int_equal(eval_run_begin(&f->env, "specificity", NULL, 0, cfg, 3, 0, 1, &run, &err), EV_OK);
    json_free(cfg);
    static const char *texts[] = {"Lily went to the park", "Tim saw a big dog",
                                  "The sun was warm", "She had a red ball",
                                  "They played all day", "Mom gave him a cake"};
    /* activations 6, 5, ..., 1 over max 6 and K 3: intervals 2,2,1,1,0,0 */
    for (int i = 0; i < 6; i++) put_example(f, 4, i < 2 ? "top" : "interval", texts[i], 2,
                                            (float)(6 - i), 0);
    put_example(f, 4, "nonactivating", "The cat slept on the bed", 2, 0, 0);
    struct prompt *tpl = NULL;
    char          *pdir = root_path("prompts");
    assert_int_equal(prompt_load(pdir, "specificity", &tpl, &err), EV_OK);
    struct spec_params p = {1, 3, 9};
    int                n = -1;
    assert_int_equal(spec_plan_feature(&f->env, &run, tpl, 4, "words about <places>", &p, &n,
                                       &err), EV_OK);
    assert_int_equal(n, 4); /* one per interval + one non-activating */
    struct store_stmt *st = NULL;
    assert_int_equal(store_prepare(f->env.store, "SELECT interval, activation, kind, prompt, "
                                                 "item_key FROM items ORDER BY id", &st, &err),
                     EV_OK);
    int k = 0;
    while (store_step(st, &err) == STORE_ROW) {
        const char *prompt = store_col_text(st, 3);
        if (k < 3) {
            assert_int_equal(store_col_int(st, 0), k);
            assert_int_equal(spec_interval_of(store_col_double(st, 1), 6.0, 3), k);
            assert_string_equal(store_col_text(st, 2), "interval");
            assert_non_null(strstr(prompt, "<context>\n"));
            /* the activating token and the one after it are marked together */
            char *open = strstr(strstr(prompt, "<context>\n"), "\xe2\x9f\xa6");
            assert_non_null(open);
        } else {
            assert_true(store_col_is_null(st, 0));
            assert_string_equal(store_col_text(st, 2), "nonactivating");
            assert_non_null(strstr(prompt, "The cat slept"));
            assert_null(strstr(strstr(prompt, "<context>\n"), "\xe2\x9f\xa6"));
        }
        /* the description is escaped: it cannot open a tag */
        assert_null(strstr(prompt, "<places>"));
        k++;
    }
    store_finalize(st);
    assert_int_equal(k, 4);
    /* planning again adds nothing */
    assert_int_equal(spec_plan_feature(&f->env, &run, tpl, 4, "x", &p, &n, &err), EV_OK);
    assert_int_equal(n, 4);
    /* the index's feature_stats max (over its whole corpus) sets the intervals when larger:
     * activations 6..1 over max 12 and K 3 fall in intervals 1,1,0,0,0,0 */
    for (int i = 0; i < 6; i++) put_example(f, 5, "interval", texts[i], 2, (float)(6 - i), 0);
    assert_int_equal(store_prepare(f->env.store, "INSERT INTO feature_stats (sae_id, idx, "
                                                 "n_tokens, fire_count, density, max_act, "
                                                 "mean_act, quantiles) VALUES (?1, 5, 1000, 10, "
                                                 "0.01, 12.0, 3.0, '[]')", &st, &err), EV_OK);
    store_bind_int(st, 1, f->env.sae_id);
    assert_int_equal(store_step(st, &err), STORE_DONE);
    store_finalize(st);
    assert_int_equal(spec_plan_feature(&f->env, &run, tpl, 5, "x", &p, &n, &err), EV_OK);
    assert_int_equal(n, 2);
    assert_int_equal(store_prepare(f->env.store, "SELECT group_concat(interval) FROM (SELECT "
                                                 "interval FROM items WHERE feature_idx = 5 "
                                                 "ORDER BY interval)", &st, &err), EV_OK);
    assert_int_equal(store_step(st, &err), STORE_ROW);
    assert_string_equal(store_col_text(st, 0), "0,1");
    store_finalize(st);
    /* a malformed index row is an error naming it, and nothing is planned */
    int64_t bad = put_example(f, 9, "top", "A bad row here", 1, 2.0f, 1);
    assert_int_equal(spec_plan_feature(&f->env, &run, tpl, 9, "x", &p, &n, &err), EV_EFAIL);
    char want[64];
    snprintf(want, sizeof want, "examples row %lld", (long long)bad);
    assert_non_null(strstr(err.msg, want));
    assert_int_equal(store_prepare(f->env.store, "SELECT count(*) FROM items WHERE feature_idx = 9",
                                   &st, &err), EV_OK);
    store_step(st, &err);
    assert_int_equal(store_col_int(st, 0), 0);
    store_finalize(st);
    prompt_free(tpl);
    free(pdir);
}

// ---------------------------------------------------------------------------- completeness

static void test_concept_sets(void **state) {
    struct fx *f = *state;
    static const struct {
        const char *text;
        const char *group;
        int         n;     /* concepts kept, or -1 for an error */
        const char *want;  /* in the message */
    } cases[] = {
        {"{\"concepts\": [{\"concept\": \"a\", \"prompts\": [\"x\"]}, {\"concept\": \"b\", "
         "\"group\": \"g\", \"prompts\": [\"y\", \"z\"]}]}", NULL, 2, NULL},
        {"{\"concepts\": [{\"concept\": \"a\", \"prompts\": [\"x\"]}, {\"concept\": \"b\", "
         "\"group\": \"g\", \"prompts\": [\"y\", \"z\"]}]}", "g", 1, NULL},
        {"{\"concepts\": [{\"concept\": \"a\", \"prompts\": [\"x\"]}]}", "none", -1,
         "no concept in group 'none'"},
        {"{\"concepts\": []}", NULL, -1, "the concept set is empty"},
        {"[1, 2]", NULL, -1, "expected an object with a \"concepts\" array"},
        {"{\"concepts\": [{\"concept\": \"a\", \"prompts\": []}]}", NULL, -1,
         "concept 1 ('a'): expected a non-empty \"prompts\""},
        {"{\"concepts\": [{\"concept\": \"a\", \"prompts\": [\"\"]}]}", NULL, -1,
         "every prompt must be a non-empty string"},
        {"{\"concepts\": [{\"concept\": \"a\", \"prompts\": [\"x\"]}, {\"concept\": \"a\", "
         "\"prompts\": [\"x\"]}]}", NULL, -1, "concept 'a' is listed twice"},
        {"{\"concepts\": [{\"concept\": \"{{x}}\", \"prompts\": [\"x\"]}]}", NULL, -1,
         "template delimiter"},
        {"{\"concepts\": [{\"prompts\": [\"x\"]}]}", NULL, -1, "concept 1"},
        {"{\"concepts\": [", NULL, -1, ""},
    };
    char *path = fx_path(f, "c.json");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct comp_set s;
        struct ev_err   err = {{0}};
        write_file(path, cases[c].text);
        int rc = comp_set_load(path, cases[c].group, &s, &err);
        if (cases[c].n < 0) {
            assert_int_equal(rc, EV_EFAIL);
            if (!strstr(err.msg, cases[c].want) || !strstr(err.msg, path))
                fail_msg("case %zu: '%s' lacks '%s' or the path", c, err.msg, cases[c].want);
            continue;
        }
        assert_int_equal(rc, EV_OK);
        assert_int_equal(s.n, cases[c].n);
        assert_int_equal(strlen(s.hash), 64);
        comp_set_release(&s);
    }
    free(path);
    /* the shipped set loads, with both groups */
    char           *shipped = root_path("evals/sets/concepts.json");
    struct comp_set s;
    struct ev_err   err = {{0}};
    assert_int_equal(comp_set_load(shipped, "stories", &s, &err), EV_OK);
    assert_true(s.n >= 10);
    comp_set_release(&s);
    assert_int_equal(comp_set_load(shipped, "general", &s, &err), EV_OK);
    assert_true(s.n >= 8);
    comp_set_release(&s);
    free(shipped);
}

struct ranked {
    int   idx;
    float v;
};
static int ranked_cmp(const void *a, const void *b) {
    const struct ranked *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? 1 : -1;
    return x->idx - y->idx;
}

static void test_top_features_reference(void **state) {
    struct fx *f = *state;
    int        d_sae = 96, K = 5;
    open_env(f, d_sae);
    struct comp_concept c = {0};
    char *prompts[] = {"Once upon a time, there was a little girl named Lily",
                       "One day, Lily", "Her mom called her. \"Lily"};
    c.name = "a girl named Lily";
    c.n_prompts = 3;
    c.prompts = prompts;
    struct ev_err       err = {{0}};
    struct model_state *st = NULL;
    assert_int_equal(model_state_new(f->env.model, 64, 0, &st, &err), EV_OK);
    int   idx[5], n = 0;
    float act[5];
    assert_int_equal(comp_top_features(&f->env, st, &c, K, idx, act, &n, &err), EV_OK);
    assert_int_equal(n, K);
    /* reference: a plain forward with a read edit at the hook, the naive encoder on the final
     * row, the mean over prompts, a full sort */
    int     C = 64;
    double *sum = xcalloc((size_t)d_sae, sizeof *sum);
    for (int p = 0; p < 3; p++) {
        int *ids = NULL, T = 0;
        assert_int_equal(tok_encode(model_tokenizer(f->env.model), prompts[p], 1, &ids, &T, &err),
                         EV_OK);
        assert_int_equal(ids[0], tok_bos(model_tokenizer(f->env.model)));
        float            *resid = xcalloc((size_t)T * C, sizeof *resid);
        float            *fr = xcalloc((size_t)d_sae, sizeof *fr);
        struct model_edit e = {.hook = f->env.hook, .read = resid};
        assert_int_equal(model_forward(st, ids, 0, T, &e, 1, &err), EV_OK);
        sae_encode_ref(f->env.sae, fr, resid + (size_t)(T - 1) * C, 1);
        for (int i = 0; i < d_sae; i++) sum[i] += (double)fr[i];
        free(ids);
        free(resid);
        free(fr);
    }
    struct ranked *r = xcalloc((size_t)d_sae, sizeof *r);
    for (int i = 0; i < d_sae; i++) r[i] = (struct ranked){i, (float)(sum[i] / 3)};
    qsort(r, (size_t)d_sae, sizeof *r, ranked_cmp);
    for (int k = 0; k < K; k++) {
        assert_true(r[k].v > 0);
        if (fabsf(act[k] - r[k].v) > 1e-4f)
            fail_msg("rank %d: %g, reference %g", k, (double)act[k], (double)r[k].v);
        /* the same feature unless two means are within rounding of each other */
        int close = (k > 0 && r[k - 1].v - r[k].v < 1e-4f) || r[k].v - r[k + 1].v < 1e-4f;
        if (!close && idx[k] != r[k].idx)
            fail_msg("rank %d: feature %d, reference %d", k, idx[k], r[k].idx);
    }
    free(r);
    free(sum);
    model_state_free(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_features_file, setup, teardown),
        cmocka_unit_test(test_interval_boundaries),
        cmocka_unit_test(test_pick_examples),
        cmocka_unit_test(test_pick_uniform_and_dedup),
        cmocka_unit_test_setup_teardown(test_items_and_grades, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_feature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concept_sets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_top_features_reference, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
