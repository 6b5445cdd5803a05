/*
 * autointerp — the owner of the autointerp tables (schema 010): autointerp_latents (a
 * latent's status and explanation, per run and seed), autointerp_prompts (the scorer prompts
 * and their answers) and autointerp_samples (the windows or tokens each prompt shows, with
 * their labels and the scorer's predictions). Scorers are named as the schema names them:
 * "detection", "fuzzing", "simulation".
 *
 * Strings in the *_row structs given to a put are borrowed for the call; rows read back are
 * owned by the caller and freed with the matching *_free.
 *
 * Included by: store and the wings above it (the autointerp evaluation in evals/).
 */
#ifndef EV_STORE_AUTOINTERP_H
#define EV_STORE_AUTOINTERP_H

#include <stdint.h>

#include "base/util.h"

struct store;

/* ---- autointerp_latents ---- */

/* A latent of a run's seed (a row of autointerp_latents); NULL strings are stored as NULL. */
struct autointerp_latent_row {
    int         feature;
    int64_t     n_firings;
    double      max_act;
    const char *protocol, *status; /* required */
    const char *reason, *explanation, *source, *tpl_hash, *prompt, *raw;
};
/* Stores (or replaces) the latent's row. */
int autointerp_latent_put(struct store *db, int64_t run_id, int64_t seed,
                          const struct autointerp_latent_row *l, struct ev_err *err);
/* *status (caller frees) of the latent, NULL when the seed has no row for it. */
int autointerp_latent_status(struct store *db, int64_t run_id, int64_t seed, int feature,
                             char **status, struct ev_err *err);
/* The latent's explanation when its status is 'ok' (caller frees), else NULL (errors too). */
char *autointerp_latent_explanation(struct store *db, int64_t run_id, int64_t seed, int feature);
/* How many latents of the seed were skipped, and how many have no explanation because the
 * explainer failed or did not parse (status explanation_%). */
int autointerp_latent_counts(struct store *db, int64_t run_id, int64_t seed, int *n_skipped,
                             int *n_expl_failed, struct ev_err *err);

/* A latent as the reports read it back. */
struct autointerp_latent {
    int     feature;
    char   *status, *reason, *explanation; /* reason, explanation: NULL when none */
    int64_t n_firings;
    double  max_act;
};
/* Every latent of the seed, by feature: *rows (autointerp_latents_free) of *n. */
int  autointerp_latents(struct store *db, int64_t run_id, int64_t seed,
                        struct autointerp_latent **rows, int *n, struct ev_err *err);
void autointerp_latents_free(struct autointerp_latent *rows, int n);

/* The latents of the seed that were not skipped, by feature, each with its first detection
 * prompt's answer (SAEBench's export). */
struct autointerp_detection {
    int   feature;
    char *explanation;  /* NULL when none */
    char *raw_answer;   /* NULL when not answered */
    char *parse_status; /* the prompt's; "not asked" for an explained latent never asked, the
                         * latent's status when it has no explanation */
};
int  autointerp_detections(struct store *db, int64_t run_id, int64_t seed,
                           struct autointerp_detection **rows, int *n, struct ev_err *err);
void autointerp_detections_free(struct autointerp_detection *rows, int n);

/* ---- autointerp_prompts and autointerp_samples ---- */

/* 1 when the prompt has an answer stored (parsed or not), 0 when it must be asked, < 0 on
 * error. */
int autointerp_prompt_answered(struct store *db, int64_t run_id, int64_t seed,
                               const char *scorer, int feature, int prompt_no,
                               struct ev_err *err);
/* Stores (or replaces) a prompt not yet answered. */
int autointerp_prompt_put(struct store *db, int64_t run_id, int64_t seed, const char *scorer,
                          int feature, int prompt_no, const char *tpl_hash, const char *prompt,
                          struct ev_err *err);

/* A sample of a prompt (a row of autointerp_samples). */
struct autointerp_sample_row {
    int         sample_no, prompt_no, position; /* position: 1.. in its prompt */
    int         quantile;                       /* 0: none (stored NULL) */
    int         seq, start, n_tokens;
    const char *kind, *text;
    double      max_act, label;
};
/* Stores (or replaces) s[n], the samples of one scorer for one latent. */
int autointerp_samples_put(struct store *db, int64_t run_id, int64_t seed, const char *scorer,
                           int feature, const struct autointerp_sample_row *s, int n,
                           struct ev_err *err);

/* A prompt's answer. */
struct autointerp_answer {
    const char *raw_answer;   /* NULL when the request failed */
    const char *parse_status; /* ok, unparsed, error */
    const char *error;        /* NULL unless the request failed */
    const char *cache_key;
    int         have_logprobs;
    int64_t     latency_ms, tokens_in, tokens_out;
};
/* Stores the prompt's answer and, when pred is not NULL, the predictions pred[n] (and the
 * probabilities prob[n] when not NULL) of its samples at positions 1..n; one transaction. */
int autointerp_answer_put(struct store *db, int64_t run_id, int64_t seed, const char *scorer,
                          int feature, int prompt_no, const struct autointerp_answer *a,
                          const int *pred, const double *prob, int n, struct ev_err *err);

/* A sample as the scores read it back; NAN for a NULL prediction or probability. */
struct autointerp_scored {
    int    feature, quantile; /* quantile 0: none */
    double label, prediction, probability;
};
/* Every sample of the seed's scorer, by feature then sample_no: *rows (caller frees) of *n. */
int autointerp_scored_samples(struct store *db, int64_t run_id, int64_t seed, const char *scorer,
                              struct autointerp_scored **rows, int *n, struct ev_err *err);

/* The detection samples of a latent, by position: pos[n], label[n], pred[n] (NAN: none),
 * each caller-freed. */
int autointerp_detection_samples(struct store *db, int64_t run_id, int64_t seed, int feature,
                                 int **pos, double **label, double **pred, int *n,
                                 struct ev_err *err);

/* For the feature card: fn per stored explanation of feature (SAE sae_id) in any run, by
 * run and seed (source may be NULL). */
int autointerp_explanations_of(struct store *db, int64_t sae_id, int feature,
                               int (*fn)(void *ctx, int64_t run_id, const char *explanation,
                                         const char *source),
                               void *ctx, struct ev_err *err);
/* fn per (run, binary scorer detection/fuzzing) that judged feature: the number of answered
 * windows, the share judged correctly (prediction >= 0.5 <=> label >= 0.5) and the number of
 * the scorer's answers on the feature that did not parse (autointerp_prompts). */
int autointerp_accuracy_of(struct store *db, int64_t sae_id, int feature,
                           int (*fn)(void *ctx, const char *scorer, int64_t run_id, int n,
                                     double accuracy, int n_unparsed),
                           void *ctx, struct ev_err *err);

#endif
