/*
 * publish — where people publish features (issue 18, part 5; docs/sae.md "Published
 * features"): `evalrun export neuronpedia` writes an SAE's features in the layout of
 * Neuronpedia's exports, and `evalrun import` reads the explanations and scores that
 * Neuronpedia and SAEBench publish, so that a new SAE can be compared with a published one.
 *
 * Included by: evals and harness/cli.
 *
 * Import (pub_parse, pub_load) takes, gzip-compressed or not:
 *   - Neuronpedia explanations: JSON Lines, one Explanation row per line ("index",
 *     "description", "explanationModelName", "typeName", "id"; optional "scores": a list of
 *     ExplanationScore rows); ExplanationScore rows ("explanationId", "value",
 *     "explanationScoreTypeName") in the same or a later file; a source folder of an export
 *     (the .jsonl[.gz] files of explanations/, then of explanation_scores/);
 *   - Neuronpedia API features: a JSON object with "index" and "explanations", or a list;
 *   - SAEBench results: "eval_type_id" "autointerp" (per-latent "explanation" and "score" in
 *     eval_result_unstructured, the means in eval_result_metrics) or any other eval type
 *     (its eval_result_metrics, SAE-level numbers).
 * Descriptions follow the features-file rules (evals/common.h): made one line (newlines and
 * tabs become spaces), trimmed; an empty one, one holding "{{" or "}}", one longer than
 * EVAL_DESC_MAX characters or not UTF-8 is left out (counted, the first reason kept). A
 * feature with several explanations keeps the first (and its scores); the others are counted.
 * Scores that are not finite numbers are skipped.
 *
 * Ownership: a struct pub_set owns everything in it; free with pub_release().
 */
#ifndef EV_PUBLISH_H
#define EV_PUBLISH_H

#include <stdint.h>

#include "evals/common.h"
#include "base/util.h"

/* Inflated inputs larger than this are refused. */
#define PUB_MAX_BYTES ((size_t)1 << 30)

struct pub_score {
    char   name[64]; /* Neuronpedia's score type, "saebench_autointerp", or "category.metric" */
    double value;
};

struct pub_feature {
    int               idx;
    char             *desc;     /* NULL when none was kept */
    char             *explainer; /* explanationModelName, or NULL */
    int               n_scores;
    struct pub_score *scores;
};

struct pub_id; /* publish_import.c */

struct pub_set {
    char                format[40]; /* "neuronpedia", "saebench autointerp", "saebench core" */
    int                 n;
    struct pub_feature *f;          /* (n) ascending idx, unique */
    int                 n_metrics;
    struct pub_score   *metrics;    /* SAE-level numbers (SAEBench's eval_result_metrics) */
    int                 n_left_out; /* descriptions left out */
    char                left_out[200]; /* the first one's reason */
    int                 n_extra;    /* further explanations of a feature already read */
    int                 n_unmatched; /* score rows naming no explanation that was read */
    /* internal: where each idx is in f, and the kept explanations' ids (sorted) */
    int                 hcap;
    int                *hslot;
    int                 n_ids;
    struct pub_id      *ids;
};

/* Parses data[0..n) (gzip or text); what names it in errors (line numbers for JSON Lines).
 * Adds to out, which must be zeroed or earlier filled by pub_parse (so several files add up;
 * explanation ids stay known across calls). Not Neuronpedia's nor SAEBench's: EV_EFAIL. */
int  pub_parse(const void *data, size_t n, const char *what, struct pub_set *out,
               struct ev_err *err);
/* pub_parse with gzip inputs refused when they inflate past max bytes (the fuzzer's). */
int  pub_parse_capped(const void *data, size_t n, size_t max, const char *what,
                      struct pub_set *out, struct ev_err *err);
/* pub_parse of a file, or of an export's source folder (see above). */
int  pub_load(const char *path, struct pub_set *out, struct ev_err *err);
void pub_release(struct pub_set *s);
/* The features with a description, as a features file (atomically); d_sae > 0 refuses ids
 * >= d_sae. The file is read back with eval_features_load (the rules hold). */
int  pub_write_features(const struct pub_set *s, int d_sae, const char *path,
                        struct ev_err *err);

/* ---- export ---- */

struct pub_export_opts {
    const char *out_dir;    /* DIR: DIR/MODEL_ID/SOURCE_ID/ is written; must not exist */
    const char *model_id;   /* Neuronpedia model id (default: the model folder's name) */
    const char *source_set; /* default "evalrun" */
    int         layer;      /* default: the SAE's hook layer */
    int         n_top;      /* top activation contexts per feature (default 20) */
    const int  *features;   /* (n_features) or NULL: every feature that fired in the index */
    int         n_features;
};

/*
 * Writes Neuronpedia's export layout for e's SAE from e's database (the feature index,
 * descriptions, scores; logit effects and neighbours as `evalrun show` gets them):
 * DIR/MODEL_ID/LAYER-SET/{model,sourceset,source}.jsonl and features/, activations/,
 * explanations/, explanation_scores/ batch-K.jsonl.gz (1024 features a batch, K from 0).
 * Written into a temporary folder renamed at the end: nothing half-written is left. *n_out:
 * features written. No index: EV_EFAIL saying `evalrun index` first.
 */
int pub_export_neuronpedia(struct eval_env *e, const struct pub_export_opts *o, int *n_out,
                           char **written, struct ev_err *err);

/* evalrun export neuronpedia: opens db_path read-only with the model and SAE given (NULL: the
 * defaults), reads the features file features_path (NULL: every feature) into o, exports, and
 * says what it wrote. */
int pub_export_run(const char *db_path, const char *model, int model_flags, const char *sae,
                   struct pub_export_opts *o, const char *features_path, struct ev_err *err);

/* evalrun import: prints what s (read from path) holds: its features and descriptions, what
 * was left out, each score's n, mean and 95% bootstrap interval (2000 draws, seed 1) and,
 * with a (read from apath; NULL: none), the difference of a's mean from s's; then the
 * SAE-level numbers s states. */
void pub_import_report(const char *path, const struct pub_set *s, const char *apath,
                       const struct pub_set *a);

#endif
