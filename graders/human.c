/*
 * human — the review queue and the human grades (see human.h).
 */
#include "graders/human.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "model/tok.h"
#include "store/generations.h"
#include "store/grades.h"
#include "store/items.h"
#include "store/runs.h"

static void item_release(struct human_item *it) {
    free(it->item_key);
    free(it->kind);
    free(it->description);
    for (int i = 0; i < it->n_tok; i++) free(it->pieces[i]);
    free(it->pieces);
    free(it->acts);
    free(it->text);
}

void human_queue_release(struct human_queue *q) {
    for (int i = 0; i < q->n; i++) item_release(&q->items[i]);
    free(q->items);
    free(q->rater);
    memset(q, 0, sizeof *q);
}

/* The tokenizer of the run's model, or NULL (then contexts are shown as text). */
static struct tok *run_tokenizer(struct store *s, int64_t run_id) {
    struct tok   *t = NULL;
    struct ev_err e;
    char         *path = runs_model_path(s, run_id);
    if (path) {
        /* models.path is the weights file or the model's folder; the tokenizer lives in the
         * folder (tok512.bin, tokenizer.json, ...) */
        const char *slash = strrchr(path, '/');
        char *dir = path_is_dir(path) ? xstrdup(path)
                    : slash          ? xasprintf("%.*s", (int)(slash - path), path)
                                     : xstrdup(".");
        if (tok_load(dir, &t, &e) != EV_OK) t = NULL;
        free(dir);
        free(path);
    }
    return t;
}

/* Fills the per-token pieces and activations of it from its example (tokens and acts blobs
 * of the same length); leaves n_tok 0 when they do not fit. */
static void item_tokens(struct human_item *it, const struct tok *t, const void *tb, size_t tn,
                        const void *ab, size_t an) {
    if (!t || !tb || !ab || tn % 4 || an % 4 || tn != an || tn == 0) return;
    int n = (int)(tn / 4);
    it->pieces  = xcalloc((size_t)n, sizeof *it->pieces);
    it->acts    = xcalloc((size_t)n, sizeof *it->acts);
    int prev    = -1;
    for (int i = 0; i < n; i++) {
        int32_t id;
        float   a;
        memcpy(&id, (const char *)tb + 4 * i, 4);
        memcpy(&a, (const char *)ab + 4 * i, 4);
        it->pieces[i] = xstrdup(tok_piece(t, prev, id));
        it->acts[i]   = isfinite(a) ? a : 0;
        if (it->acts[i] > it->max_act) it->max_act = it->acts[i];
        prev = id;
    }
    it->n_tok = n;
}

/* The description a rendered prompt gave the grader (between <description> tags, as the
 * shipped templates put it), when the features table has none (influence keeps the features
 * file's descriptions in its prompts only); NULL when absent. */
static char *prompt_description(const char *prompt) {
    const char *a = prompt ? strstr(prompt, "<description>") : NULL;
    const char *b = a ? strstr(a, "</description>") : NULL;
    if (!a || !b) return NULL;
    a += strlen("<description>");
    while (a < b && (*a == '\n' || *a == ' ')) a++;
    while (b > a && (b[-1] == '\n' || b[-1] == ' ')) b--;
    return b > a ? xasprintf("%.*s", (int)(b - a), a) : NULL;
}

/* The text of an influence item: its prompt, the baseline and the steered continuation
 * (generations named by the payload's "generation" and "baseline" keys); *scale gets the
 * steering scale (NAN when unknown), which the screen shows only with --show-context-info. */
static char *influence_text(struct store *s, int64_t run_id, const cJSON *payload,
                            double *scale) {
    struct ev_err e;
    const char   *gk = NULL, *bk = NULL;
    char         *prompt = NULL, *base = NULL, *steer = NULL, *out;
    *scale = NAN;
    if (payload) {
        json_get_str_opt(payload, "generation", "payload", &gk, &e);
        json_get_str_opt(payload, "baseline", "payload", &bk, &e);
    }
    if (gk) generations_get(s, run_id, gk, &prompt, &steer, scale, &e);
    if (bk) generations_get(s, run_id, bk, NULL, &base, NULL, &e);
    out = xasprintf("PROMPT: %s\n\nBASELINE (unsteered): ...%s\n\nSTEERED: ...%s",
                    prompt ? prompt : "?", base ? base : "?", steer ? steer : "?");
    free(prompt);
    free(base);
    free(steer);
    return out;
}

struct load_ctx {
    struct store       *s;
    struct human_queue *q;
    const struct tok   *tk;
};

/* One reviewable item from the store into the queue. */
static int add_item(void *ctx, const struct items_review_row *row) {
    struct load_ctx    *c = ctx;
    struct human_queue *q = c->q;
    q->items = xrealloc(q->items, (size_t)(q->n + 1) * sizeof *q->items);
    struct human_item *it = &q->items[q->n++];
    memset(it, 0, sizeof *it);
    it->item_key   = xstrdup(row->item_key);
    it->kind       = xstrdup(row->kind);
    it->feature    = row->feature;
    it->interval   = strcmp(it->kind, "interval") == 0 ? row->interval : -1;
    it->activation = row->activation;
    it->scale      = NAN;
    if (row->description) it->description = xstrdup(row->description);
    else it->description = prompt_description(row->prompt);
    item_tokens(it, c->tk, row->tokens, row->tokens_n, row->acts, row->acts_n);
    /* the text: the payload's marked context (what the LLM saw), else the example's */
    const char   *pj = row->payload_json, *ctx_text = NULL;
    cJSON        *j  = NULL;
    struct ev_err e2;
    if (pj && json_parse(pj, strlen(pj), "payload", &j, &e2) == EV_OK) {
        long k = 0;
        json_get_str_opt(j, "context", "payload", &ctx_text, &e2);
        if (json_get_long_opt(j, "intervals", "payload", &k, &e2) == EV_OK && k > 0 && k < 1000)
            it->n_intervals = (int)k;
    }
    if (strncmp(it->kind, "influence_", 10) == 0) {
        it->influence = strcmp(it->kind, "influence_concept") == 0 ? 1 : 2;
        it->interval  = -1;
        it->text      = influence_text(c->s, q->run_id, j, &it->scale);
    } else {
        it->text = xstrdup(ctx_text ? ctx_text : row->example_text);
    }
    json_free(j);
    it->answered = row->answered;
    it->score    = row->score;
    return EV_OK;
}

int human_queue_load(struct store *s, int64_t run_id, const char *rater, int sample_n,
                     uint64_t seed, struct human_queue *q, struct ev_err *err) {
    struct tok *tk   = NULL;
    char       *kind = NULL;
    int         rc   = EV_OK;
    memset(q, 0, sizeof *q);
    q->run_id = run_id;
    q->rater  = xstrdup(rater);
    if ((rc = runs_kind(s, run_id, &kind, &q->sae_id, err)) != EV_OK) goto out;
    if (strcmp(kind, "specificity") != 0 && strcmp(kind, "influence") != 0) {
        rc = ev_fail(err, EV_EFAIL,
                     "run %lld is a '%s' run: review rates the items of specificity and "
                     "influence runs",
                     (long long)run_id, kind);
        goto out;
    }
    tk = run_tokenizer(s, run_id);

    /* with LLM grade (sample) or without (queue), in item-key order; shuffled below */
    struct load_ctx lc = {s, q, tk};
    if ((rc = items_review(s, run_id, q->sae_id, rater, sample_n > 0, add_item, &lc, err)) !=
        EV_OK)
        goto out;
    if (q->n == 0) {
        rc = ev_fail(err, EV_EFAIL,
                     sample_n > 0 ? "run %lld has no LLM-graded item to sample"
                                  : "run %lld has no item waiting for a grade (use --sample N "
                                    "to rate LLM-graded items)",
                     (long long)run_id);
        goto out;
    }
    /* a fixed order per (run, seed): a seeded shuffle, then the sample's first N */
    {
        struct rng rg;
        rng_seed(&rg, seed ^ ((uint64_t)run_id * 0x9e3779b97f4a7c15ULL));
        for (int i = q->n - 1; i > 0; i--) {
            int               j   = (int)rng_below(&rg, (uint64_t)i + 1);
            struct human_item tmp = q->items[i];
            q->items[i]           = q->items[j];
            q->items[j]           = tmp;
        }
        if (sample_n > 0 && sample_n < q->n) {
            for (int i = sample_n; i < q->n; i++) item_release(&q->items[i]);
            q->n = sample_n;
        }
    }
out:
    free(kind);
    tok_free(tk);
    if (rc != EV_OK) human_queue_release(q);
    return rc;
}

int human_next(const struct human_queue *q, int from) {
    for (int i = from < 0 ? 0 : from; i < q->n; i++)
        if (!q->items[i].answered) return i;
    return q->n;
}

int human_answer(struct store *s, struct human_queue *q, int i, int score, struct ev_err *err) {
    EV_ASSERT(i >= 0 && i < q->n && score >= -1 && score <= 3);
    struct human_item *it = &q->items[i];
    int rc = grades_human_put(s, q->run_id, it->item_key, q->sae_id, q->rater, score, err);
    if (rc != EV_OK) return rc;
    it->answered = 1;
    it->score    = score;
    return EV_OK;
}

int human_undo(struct store *s, struct human_queue *q, int *item, struct ev_err *err) {
    char *key = NULL;
    *item = -1;
    int rc = grades_human_undo(s, q->run_id, q->rater, &key, err);
    if (rc == EV_OK && key)
        for (int i = 0; i < q->n; i++)
            if (strcmp(q->items[i].item_key, key) == 0) {
                q->items[i].answered = 0;
                q->items[i].score    = -1;
                *item                = i;
            }
    free(key);
    return rc;
}

int human_pairs(struct store *s, const struct human_queue *q, int **a, int **b, int *n,
                struct ev_err *err) {
    return grades_human_llm_pairs(s, q->run_id, q->rater, a, b, n, err);
}
