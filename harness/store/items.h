/*
 * items — the owner of the items table (schema 007): an evaluation's planned work items,
 * keyed by (run, item key), that graders grade and people review.
 *
 * Included by: store and the wings above it (graders, evals, cli).
 */
#ifndef EV_STORE_ITEMS_H
#define EV_STORE_ITEMS_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

struct store;

/* A planned item (a row of items). */
struct item_row {
    const char *key;        /* required, stable across reruns */
    const char *kind;       /* required */
    int         feature;    /* -1 when none */
    int64_t     example_id; /* 0 when none */
    int         interval;   /* -1 when none */
    double      activation; /* NAN when none */
    const char *template_name, *template_hash, *prompt, *payload_json; /* may be NULL */
};

/* Inserts an item unless the run already has one with that key (then nothing changes).
 * Call inside store_begin/commit for many items. */
int items_put(struct store *s, int64_t run_id, const struct item_row *it, struct ev_err *err);

/* Sets the rendered prompt of item (run_id, key) when it was planned without one. */
int items_set_prompt(struct store *s, int64_t run_id, const char *key, const char *prompt,
                     struct ev_err *err);

/* 1 when the run has an item with this key, 0 when not, < 0 on error. */
int items_has(struct store *s, int64_t run_id, const char *key, struct ev_err *err);
/* How many items of feature the run planned with template tpl_name. */
int items_count_feature(struct store *s, int64_t run_id, const char *tpl_name, int feature,
                        int *n, struct ev_err *err);

/* An item with its grade from a grader of one kind; pointers borrowed for the call. */
struct items_graded_row {
    int64_t     id;
    const char *key, *kind;
    int         feature, interval; /* -1 when none */
    const char *payload_json;      /* NULL when none */
    int         graded;            /* a grade is stored (parse_status says which) */
    int         score;             /* -1 when none */
    const char *parse_status;      /* "" when not graded */
};
enum items_order { ITEMS_BY_ID, ITEMS_BY_FEATURE /* then id */ };
/* Calls fn for every item of the run planned with template tpl_name, joined with its grade
 * from grader_kind ("llm"/"human"; with several graders of that kind, one row each), in the
 * order asked; fn returns EV_OK to go on. */
int items_graded(struct store *s, int64_t run_id, const char *tpl_name, const char *grader_kind,
                 enum items_order order, int (*fn)(void *ctx, const struct items_graded_row *row),
                 void *ctx, struct ev_err *err);

/* A planned item that no LLM grade answers yet (a failed request's 'error' grade aside);
 * pointers borrowed for the call. */
struct items_pending_row {
    int64_t     id;            /* items.id: the order, and where the next chunk starts */
    const char *key;
    int         feature;       /* -1 when none */
    int64_t     example_id;    /* 0 when none */
    const char *prompt;        /* NULL when none */
    const char *template_hash; /* NULL when none */
};
/* How many items of the run planned with template tpl_name wait for an LLM grade. */
int items_pending_count(struct store *s, int64_t run_id, const char *tpl_name, long *n,
                        struct ev_err *err);
/* Calls fn for up to limit such items with id > after, in id order; fn returns EV_OK to go on. */
int items_pending(struct store *s, int64_t run_id, const char *tpl_name, int64_t after,
                  int limit, int (*fn)(void *ctx, const struct items_pending_row *row),
                  void *ctx, struct ev_err *err);

/* An item to show a person, with what it refers to; every pointer is borrowed for the call. */
struct items_review_row {
    const char *item_key, *kind;
    int         feature;       /* -1 when none */
    int         interval;      /* -1 when none */
    double      activation;    /* 0 when none */
    const char *description;   /* the feature's stored description, NULL when none */
    const char *prompt;        /* the rendered prompt, NULL when none */
    const void *tokens, *acts; /* the example's blobs (int32 ids, float32), NULL when none */
    size_t      tokens_n, acts_n;
    const char *example_text;  /* the example's text, "" when none */
    const char *payload_json;  /* NULL when none */
    int         answered;      /* the rater has rated it */
    int         score;         /* the rater's score, -1 when none (or skipped) */
};

/* Calls fn for every reviewable item of the run (kinds interval, nonactivating,
 * influence_concept, influence_fluency) in item-key order: those with an LLM grade that parsed
 * when llm_graded, else those without; with rater's own rating. sae_id picks the feature
 * descriptions. fn returns EV_OK to go on. */
int items_review(struct store *s, int64_t run_id, int64_t sae_id, const char *rater,
                 int llm_graded, int (*fn)(void *ctx, const struct items_review_row *row),
                 void *ctx, struct ev_err *err);

/* An item of a run with its grades from one grader kind, aggregated (the reports). */
struct items_scored_row {
    char  *key, *kind, *payload_json; /* payload_json NULL when none */
    int    feature, interval;         /* -1 when none */
    int    has_score;                 /* a grade of the kind parsed */
    double score;                     /* the mean of the parsed scores, NAN when none */
    int    unparsed, skipped;         /* a grade of the kind did not parse / was skipped */
};
/* The run's items of kind kind_a or kind_b (NULL: kind_a only), each with the mean of its
 * parsed grades from grader_kind, ordered by feature then key: *out (items_scored_free) of
 * *n rows. */
int  items_scored(struct store *s, int64_t run_id, const char *grader_kind, const char *kind_a,
                  const char *kind_b, struct items_scored_row **out, int *n, struct ev_err *err);
void items_scored_free(struct items_scored_row *rows, int n);

#endif
