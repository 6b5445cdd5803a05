/*
 * human — the human grader: the queue of items a rater scores in `evalrun review`, and the
 * grades they give (grades.grader_kind = 'human', grader_name = the rater).
 *
 * Included by: graders, evals and harness/cli.
 *
 * Items: the 0-3 rubric items of a specificity run (kinds 'interval' and 'nonactivating')
 * or of an influence run (kinds 'influence_concept' and 'influence_fluency': the prompt, the
 * unsteered baseline and the steered continuation).
 * Without a sample, the queue is the run's items that have no LLM grade (queued by a run
 * without a grader); with sample_n > 0, a seeded random sample of sample_n items that do have
 * a parsed LLM grade (agreement studies). Either way the order is fixed by (run, seed), so a
 * restarted review sees the same queue, and it resumes at the first item this rater has not
 * answered.
 *
 * Every answer is stored at once in its own transaction: a score 0-3 (parse_status 'ok'), or
 * a skip (score NULL, parse_status 'skipped', raw_answer 'skip'), replacing an earlier answer
 * by the same rater to the same item. Undo deletes the rater's latest answer in the run.
 * Blinding: the item's interval, activation and steering scale are fields of their own (the
 * text holds none of them), so that the screen can hide them from the rater (the default of
 * `evalrun review`; --show-context-info shows them). Nothing here returns an LLM score per item; only the rater-vs-LLM pairs for the
 * running agreement (aggregated by the caller).
 *
 * Ownership: struct human_queue owns its items; human_queue_release() frees them.
 */
#ifndef EV_HUMAN_H
#define EV_HUMAN_H

#include <stdint.h>

#include "store/store.h"
#include "base/util.h"

struct human_item {
    char   *item_key;
    char   *kind;          /* 'interval' or 'nonactivating' */
    int     feature;
    int     interval;      /* 0-based; -1 for a non-activating context */
    int     n_intervals;   /* K of the run, 0 when unknown */
    double  activation;    /* the feature's activation at the centre token */
    char   *description;   /* the feature's description at review time, or NULL */
    int     n_tok;         /* tokens of the context (0: only text is known) */
    char  **pieces;        /* (n_tok) the text of each token */
    float  *acts;          /* (n_tok) the feature's activation at each token */
    float   max_act;       /* the largest activation in the context */
    char   *text;          /* the context as text (⟦ ⟧ around activating tokens) */
    int     influence;     /* 0: a specificity context; 1: an influence Concept item, 2: an
                              influence Fluency item (text = prompt, baseline, steered) */
    double  scale;         /* an influence item's steering scale, NAN when none */
    int     answered;      /* this rater has answered it (score or skip) */
    int     score;         /* the rater's score, -1 for skip or none */
};

struct human_queue {
    int64_t            run_id, sae_id;
    char              *rater;
    int                n;
    struct human_item *items;
};

/* Loads the review queue of run_id for rater (see the header comment); sample_n 0 = queued
 * items. Per-token activations come from the tokenizer in the folder of the run's model; when
 * it cannot be loaded the context text is shown instead. EV_EFAIL when the run is not a
 * specificity or influence run, or holds no item to review. */
int  human_queue_load(struct store *s, int64_t run_id, const char *rater, int sample_n,
                      uint64_t seed, struct human_queue *q, struct ev_err *err);
void human_queue_release(struct human_queue *q);

/* The first item not answered, or q->n when all are. */
int human_next(const struct human_queue *q, int from);

/* Stores the rater's answer to item i (score 0..3, or -1 for a skip) in its own
 * transaction. */
int human_answer(struct store *s, struct human_queue *q, int i, int score, struct ev_err *err);

/* Deletes the rater's latest answer in the run; *item gets its index in q (-1 when there was
 * none). */
int human_undo(struct store *s, struct human_queue *q, int *item, struct ev_err *err);

/* The items scored (0-3) by both the rater and an LLM grader of the run: *a the rater's,
 * *b the LLM's (n each; caller frees both with free()). */
int human_pairs(struct store *s, const struct human_queue *q, int **a, int **b, int *n,
                struct ev_err *err);

#endif
