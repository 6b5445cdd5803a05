/*
 * human — the review queue and the human grades (see human.h).
 */
#include "graders/human.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "model/tok.h"

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
    struct store_stmt *st  = NULL;
    struct tok        *t   = NULL;
    struct ev_err      e;
    if (store_prepare(s, "SELECT m.path FROM runs r JOIN models m ON m.id = r.model_id WHERE "
                         "r.id = ?1", &st, &e) != EV_OK)
        return NULL;
    store_bind_int(st, 1, run_id);
    if (store_step(st, &e) == STORE_ROW && store_col_text(st, 0)) {
        /* models.path is the weights file or the model's folder; the tokenizer lives in the
         * folder (tok512.bin, tokenizer.json, ...) */
        const char *path  = store_col_text(st, 0);
        const char *slash = strrchr(path, '/');
        char *dir = path_is_dir(path) ? xstrdup(path)
                    : slash          ? xasprintf("%.*s", (int)(slash - path), path)
                                     : xstrdup(".");
        if (tok_load(dir, &t, &e) != EV_OK) t = NULL;
        free(dir);
    }
    store_finalize(st);
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
 * (generations named by the payload's "generation" and "baseline" keys). */
static char *influence_text(struct store *s, int64_t run_id, const cJSON *payload) {
    struct store_stmt *st = NULL;
    struct ev_err      e;
    const char        *gk = NULL, *bk = NULL;
    char              *prompt = NULL, *base = NULL, *steer = NULL, *out;
    double             scale = NAN;
    if (payload) {
        json_get_str_opt(payload, "generation", "payload", &gk, &e);
        json_get_str_opt(payload, "baseline", "payload", &bk, &e);
    }
    if (store_prepare(s, "SELECT prompt, text, scale FROM generations WHERE run_id = ?1 AND "
                         "item_key = ?2", &st, &e) == EV_OK) {
        for (int k = 0; k < 2; k++) {
            const char *key = k ? bk : gk;
            if (!key) continue;
            store_reset(st);
            store_bind_int(st, 1, run_id);
            store_bind_text(st, 2, key);
            if (store_step(st, &e) != STORE_ROW) continue;
            if (k) {
                base = xstrdup(store_col_text(st, 1));
            } else {
                prompt = xstrdup(store_col_text(st, 0));
                steer  = xstrdup(store_col_text(st, 1));
                if (!store_col_is_null(st, 2)) scale = store_col_double(st, 2);
            }
        }
        store_finalize(st);
    }
    if (isnan(scale))
        out = xasprintf("PROMPT: %s\n\nBASELINE (unsteered): ...%s\n\nSTEERED: ...%s",
                        prompt ? prompt : "?", base ? base : "?", steer ? steer : "?");
    else
        out = xasprintf("PROMPT: %s\n\nBASELINE (unsteered): ...%s\n\nSTEERED (clamped to %g x its "
                        "max activation): ...%s",
                        prompt ? prompt : "?", base ? base : "?", scale, steer ? steer : "?");
    free(prompt);
    free(base);
    free(steer);
    return out;
}

int human_queue_load(struct store *s, int64_t run_id, const char *rater, int sample_n,
                     uint64_t seed, struct human_queue *q, struct ev_err *err) {
    struct store_stmt *st  = NULL;
    struct tok        *tk  = NULL;
    int                rc  = EV_OK, r;
    memset(q, 0, sizeof *q);
    q->run_id = run_id;
    q->rater  = xstrdup(rater);
    if ((rc = store_prepare(s, "SELECT kind, coalesce(sae_id, 0) FROM runs WHERE id = ?1", &st,
                            err)) != EV_OK)
        goto out;
    store_bind_int(st, 1, run_id);
    if ((r = store_step(st, err)) != STORE_ROW) {
        rc = r == STORE_DONE ? ev_fail(err, EV_EFAIL, "no run %lld", (long long)run_id) : EV_EFAIL;
        goto out;
    }
    if (strcmp(store_col_text(st, 0), "specificity") != 0 &&
        strcmp(store_col_text(st, 0), "influence") != 0) {
        rc = ev_fail(err, EV_EFAIL,
                     "run %lld is a '%s' run: review rates the items of specificity and "
                     "influence runs",
                     (long long)run_id, store_col_text(st, 0));
        goto out;
    }
    q->sae_id = store_col_int(st, 1);
    store_finalize(st);
    st = NULL;
    tk = run_tokenizer(s, run_id);

    /* with LLM grade (sample) or without (queue), in item-key order; shuffled below */
    rc = store_prepare(
        s,
        "SELECT i.item_key, i.kind, coalesce(i.feature_idx, -1), coalesce(i.interval, -1), "
        "coalesce(i.activation, 0), f.description, e.tokens, e.acts, coalesce(e.text, ''), "
        "i.payload_json, h.score, h.id IS NOT NULL, i.prompt FROM items i "
        "LEFT JOIN examples e ON e.id = i.example_id "
        "LEFT JOIN features f ON f.sae_id = ?3 AND f.idx = i.feature_idx "
        "LEFT JOIN grades h ON h.run_id = i.run_id AND h.item_key = i.item_key AND "
        "h.grader_kind = 'human' AND h.grader_name = ?2 "
        "WHERE i.run_id = ?1 AND i.kind IN ('interval', 'nonactivating', 'influence_concept', "
        "'influence_fluency') AND "
        "(EXISTS (SELECT 1 FROM grades g WHERE g.run_id = i.run_id AND g.item_key = i.item_key "
        "AND g.grader_kind = 'llm' AND g.parse_status = 'ok')) = ?4 ORDER BY i.item_key",
        &st, err);
    if (rc != EV_OK) goto out;
    store_bind_int(st, 1, run_id);
    store_bind_text(st, 2, rater);
    store_bind_int(st, 3, q->sae_id);
    store_bind_int(st, 4, sample_n > 0);
    while ((r = store_step(st, err)) == STORE_ROW) {
        q->items = xrealloc(q->items, (size_t)(q->n + 1) * sizeof *q->items);
        struct human_item *it = &q->items[q->n++];
        memset(it, 0, sizeof *it);
        it->item_key   = xstrdup(store_col_text(st, 0));
        it->kind       = xstrdup(store_col_text(st, 1));
        it->feature    = (int)store_col_int(st, 2);
        it->interval   = strcmp(it->kind, "interval") == 0 ? (int)store_col_int(st, 3) : -1;
        it->activation = store_col_double(st, 4);
        if (store_col_text(st, 5)) it->description = xstrdup(store_col_text(st, 5));
        else it->description = prompt_description(store_col_text(st, 12));
        size_t      tn = 0, an = 0;
        const void *tb = store_col_blob(st, 6, &tn);
        const void *ab = store_col_blob(st, 7, &an);
        item_tokens(it, tk, tb, tn, ab, an);
        /* the text: the payload's marked context (what the LLM saw), else the example's */
        const char *pj = store_col_text(st, 9), *ctx = NULL;
        cJSON      *j  = NULL;
        struct ev_err e2;
        if (pj && json_parse(pj, strlen(pj), "payload", &j, &e2) == EV_OK) {
            long k = 0;
            json_get_str_opt(j, "context", "payload", &ctx, &e2);
            if (json_get_long_opt(j, "intervals", "payload", &k, &e2) == EV_OK && k > 0 && k < 1000)
                it->n_intervals = (int)k;
        }
        if (strncmp(it->kind, "influence_", 10) == 0) {
            it->influence = strcmp(it->kind, "influence_concept") == 0 ? 1 : 2;
            it->interval  = -1;
            it->text      = influence_text(s, run_id, j);
        } else {
            it->text = xstrdup(ctx ? ctx : store_col_text(st, 8));
        }
        json_free(j);
        it->answered = (int)store_col_int(st, 11);
        it->score    = store_col_is_null(st, 10) ? -1 : (int)store_col_int(st, 10);
    }
    if (r != STORE_DONE) {
        rc = EV_EFAIL;
        goto out;
    }
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
    store_finalize(st);
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
    struct store_stmt *st = NULL;
    EV_ASSERT(i >= 0 && i < q->n && score >= -1 && score <= 3);
    struct human_item *it = &q->items[i];
    int rc = store_begin(s, err);
    if (rc != EV_OK) return rc;
    /* replace: delete, then insert, so the answer's id is the newest (undo takes the newest) */
    rc = store_prepare(s, "DELETE FROM grades WHERE run_id = ?1 AND item_key = ?2 AND "
                          "grader_kind = 'human' AND grader_name = ?3", &st, err);
    if (rc != EV_OK) goto fail;
    store_bind_int(st, 1, q->run_id);
    store_bind_text(st, 2, it->item_key);
    store_bind_text(st, 3, q->rater);
    if (store_step(st, err) < 0) goto fail;
    store_finalize(st);
    rc = store_prepare(s,
                       "INSERT INTO grades (run_id, item_key, sae_id, feature_idx, example_id, "
                       "grader_kind, grader_name, score, parse_status, raw_answer, created_ms) "
                       "SELECT ?1, ?2, nullif(?3, 0), i.feature_idx, i.example_id, 'human', ?4, "
                       "?5, ?6, ?7, ?8 FROM items i WHERE i.run_id = ?1 AND i.item_key = ?2",
                       &st, err);
    if (rc != EV_OK) goto fail;
    store_bind_int(st, 1, q->run_id);
    store_bind_text(st, 2, it->item_key);
    store_bind_int(st, 3, q->sae_id);
    store_bind_text(st, 4, q->rater);
    if (score >= 0) store_bind_int(st, 5, score);
    else store_bind_null(st, 5);
    store_bind_text(st, 6, score >= 0 ? "ok" : "unparsed");
    char raw[16];
    snprintf(raw, sizeof raw, score >= 0 ? "%d" : "skip", score);
    store_bind_text(st, 7, raw);
    store_bind_int(st, 8, now_unix_ms());
    if (store_step(st, err) < 0) goto fail;
    store_finalize(st);
    st = NULL;
    if ((rc = store_commit(s, err)) != EV_OK) goto fail;
    it->answered = 1;
    it->score    = score;
    return EV_OK;
fail:
    store_finalize(st);
    store_rollback(s);
    return EV_EFAIL;
}

int human_undo(struct store *s, struct human_queue *q, int *item, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int64_t            gid = 0;
    char              *key = NULL;
    *item = -1;
    int rc = store_prepare(s, "SELECT id, item_key FROM grades WHERE run_id = ?1 AND "
                              "grader_kind = 'human' AND grader_name = ?2 ORDER BY id DESC "
                              "LIMIT 1", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, q->run_id);
    store_bind_text(st, 2, q->rater);
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
    if (rc == EV_OK)
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
    struct store_stmt *st = NULL;
    *a = *b = NULL;
    *n = 0;
    int rc = store_prepare(s,
                           "SELECT h.score, min(g.score) FROM grades h JOIN grades g ON "
                           "g.run_id = h.run_id AND g.item_key = h.item_key AND g.grader_kind = "
                           "'llm' AND g.parse_status = 'ok' WHERE h.run_id = ?1 AND h.grader_kind "
                           "= 'human' AND h.grader_name = ?2 AND h.parse_status = 'ok' GROUP BY "
                           "h.item_key",
                           &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, q->run_id);
    store_bind_text(st, 2, q->rater);
    int r;
    while ((r = store_step(st, err)) == STORE_ROW) {
        *a = xrealloc(*a, (size_t)(*n + 1) * sizeof **a);
        *b = xrealloc(*b, (size_t)(*n + 1) * sizeof **b);
        (*a)[*n] = (int)store_col_int(st, 0);
        (*b)[*n] = (int)store_col_int(st, 1);
        (*n)++;
    }
    store_finalize(st);
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}
