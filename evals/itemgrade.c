/*
 * itemgrade — grading a run's pending items (see itemgrade.h).
 */
#include "evals/itemgrade.h"

#include "store/runinfo.h"

#include <stdlib.h>
#include <string.h>

#include "graders/grader.h"
#include "graders/parse.h"
#include "base/progress.h"
#include "store/items.h"

int itemgrade_count_pending(struct eval_env *e, const struct eval_run *run, const char *tpl_name,
                            long *n, struct ev_err *err) {
    return items_pending_count(e->store, run->id, tpl_name, n, err);
}

struct pending {
    char   *key;
    int     feature;
    int64_t example_id;
    char   *prompt;
};

struct grade_ud {
    struct eval_env        *e;
    const struct eval_run  *run;
    struct pending         *items;
    enum itemgrade_parse    how;
    int                     lo, hi;
    const char             *grader_name;
    const char             *tpl_hash;
    struct itemgrade_stats *st;
    struct progress        *bar;
};

static int parse_answer(enum itemgrade_parse how, int lo, int hi, const char *text, int *score) {
    if (how == ITEMGRADE_YES_NO) return parse_yes_no(text, score) == PARSE_OK;
    return parse_score(text, lo, hi, score) == PARSE_OK;
}

static int accept_answer(void *ud, int index, const char *answer) {
    (void)index;
    struct grade_ud *u = ud;
    int              score;
    return parse_answer(u->how, u->lo, u->hi, answer, &score);
}

static int on_result(void *ud, int index, const struct grader_result *res, struct ev_err *err) {
    struct grade_ud *u = ud;
    struct pending  *it = &u->items[index];
    int              score = -1;
    const char      *status;
    if (res->status != GRADER_OK) {
        status = "error";
        u->st->failed++;
    } else if (parse_answer(u->how, u->lo, u->hi, res->text, &score)) {
        status = "ok";
        u->st->ok++;
    } else {
        score = -1;
        status = "unparsed";
        u->st->unparsed++;
    }
    struct grade_row gr = {
        .item_key = it->key,
        .feature = it->feature,
        .example_id = it->example_id,
        .grader_kind = "llm",
        .grader_name = u->grader_name,
        .score = score,
        .parse_status = status,
        .raw_answer = res->status == GRADER_OK ? res->text : res->error,
        .template_hash = u->tpl_hash,
        .latency_ms = (long)(res->latency_s * 1000.0 + 0.5),
        .tokens_in = res->tokens_in,
        .tokens_out = res->tokens_out,
    };
    progress_tick(u->bar, 1);
    return eval_grade_put(u->e, u->run, &gr, err);
}

/* Items are read and sent in chunks of this many (memory stays bounded on big runs; the
 * grader keeps its requests in flight within a chunk). */
#define ITEMGRADE_CHUNK 1024

static void pending_release(struct pending *items, int n) {
    for (int i = 0; i < n; i++) {
        free(items[i].key);
        free(items[i].prompt);
    }
    free(items);
}

struct chunk_ctx {
    const struct eval_run *run;
    const struct prompt   *tpl;
    struct pending        *items;
    int                    n;
    int64_t               *after;
    struct ev_err         *err;
};

static int chunk_add(void *ctx, const struct items_pending_row *row) {
    struct chunk_ctx *c = ctx;
    const char       *h = row->template_hash;
    if (!h || strcmp(h, c->tpl->hash) != 0 || !row->prompt)
        return ev_fail(c->err, EV_EFAIL, "run %lld: item %s was planned with template hash "
                                         "%.12s but %s now hashes to %.12s; a changed template "
                                         "starts a new run, so this item is inconsistent",
                       (long long)c->run->id, row->key, h ? h : "none", c->tpl->path,
                       c->tpl->hash);
    struct pending *p = &c->items[c->n++];
    p->key = xstrdup(row->key);
    p->feature = row->feature;
    p->example_id = row->example_id;
    p->prompt = xstrdup(row->prompt);
    *c->after = row->id;
    return EV_OK;
}

/* Loads up to ITEMGRADE_CHUNK pending items with id > *after, in id order; advances *after. */
static int load_chunk(struct eval_env *e, const struct eval_run *run, const struct prompt *tpl,
                      int64_t *after, struct pending **out, int *n_out, struct ev_err *err) {
    struct chunk_ctx c = {run, tpl, xcalloc(ITEMGRADE_CHUNK, sizeof *c.items), 0, after, err};
    int rc = items_pending(e->store, run->id, tpl->name, *after, ITEMGRADE_CHUNK, chunk_add, &c,
                           err);
    if (rc != EV_OK) {
        pending_release(c.items, c.n);
        c.items = NULL;
        c.n = 0;
    }
    *out = c.items;
    *n_out = c.n;
    return rc;
}

/* A run whose LLM answers all failed to parse is a broken grader or template, not a result
 * (issue 17.6): EV_EFAIL with the count and one raw reply, on the first run and on reruns. */
static int all_unparsed_check(struct eval_env *e, const struct eval_run *run, const char *label,
                              struct ev_err *err) {
    struct runinfo_grades g;
    int                   rc = runinfo_grades_load(e->store, run->id, &g, err);
    if (rc != EV_OK) return rc;
    if (strcmp(g.kind, "llm") != 0 || g.n_ok > 0 || g.n_unparsed == 0) return EV_OK;
    return ev_fail(err, EV_EFAIL,
                   "%s: all %lld grader answers were unparsed (none gave a score); one raw "
                   "reply: \"%.100s\"",
                   label, (long long)g.n_unparsed, g.first_unparsed);
}

int itemgrade_run(struct eval_env *e, const struct eval_run *run, struct grader *g,
                  const struct prompt *tpl, enum itemgrade_parse how, int lo, int hi,
                  const char *label, struct itemgrade_stats *st, struct ev_err *err) {
    struct grader_request *reqs = xcalloc(ITEMGRADE_CHUNK, sizeof *reqs);
    struct progress        bar;
    int64_t                after = 0;
    char                   gname[192];
    memset(st, 0, sizeof *st);
    int rc = itemgrade_count_pending(e, run, tpl->name, &st->pending, err);
    if (rc != EV_OK || st->pending == 0) {
        free(reqs);
        return rc == EV_OK ? all_unparsed_check(e, run, label, err) : rc;
    }
    progress_init(&bar, label, st->pending);
    grader_set_run(g, run->id);
    const char *name = grader_config_name(grader_config(g), gname, sizeof gname);
    for (;;) {
        struct pending *items = NULL;
        int             n = 0;
        if ((rc = load_chunk(e, run, tpl, &after, &items, &n, err)) != EV_OK || n == 0) {
            free(items);
            break;
        }
        for (int i = 0; i < n; i++)
            reqs[i] = (struct grader_request){tpl->system, items[i].prompt, 0, 0,
                                              prompt_fixed_len(tpl)};
        struct grade_ud u = {e, run, items, how, lo, hi, name, tpl->hash, st, &bar};
        rc = grader_run_batch(g, reqs, n, accept_answer, on_result, &u, err);
        pending_release(items, n);
        if (rc != EV_OK) break;
    }
    progress_finish(&bar);
    free(reqs);
    if (rc == EV_OK) rc = all_unparsed_check(e, run, label, err);
    return rc;
}
