/*
 * card — the feature card of `evalrun show FEATURE` (issue 8; docs/search.md): everything the
 * database and the weights say about one feature, built once as plain data (card_build) and
 * rendered three ways: terminal text that fits a width (card_render_text), Markdown
 * (card_render_md) and JSON (card_render_json, schema "evalrun.feature_card/1", documented in
 * docs/search.md).
 *
 * Included by: evals and harness/cli.
 *
 * What a card holds and where it comes from:
 *   descriptions   the current one (features table) and the explanations of autointerp runs
 *                  (autointerp_latents), each with its source;
 *   scores         per run that graded the feature (grades joined with runs): kind, grader,
 *                  number of scored grades and their mean; autointerp detection/fuzzing
 *                  accuracy per run;
 *   statistics     feature_stats of the index (density, firing count, max and mean
 *                  activation, quantiles);
 *   histogram      of the feature's non-zero activations on every token of its stored example
 *                  windows (biased towards strong firings: the index stores the top contexts
 *                  and a fixed number per activation interval, not a uniform sample);
 *   contexts       the top-activating examples and one example per activation interval, as
 *                  token pieces with the feature's activation on each;
 *   logit effects  top and bottom, from feature_logits or computed (sae_logit_effects);
 *   neighbours     from feature_neighbors or computed (sae_neighbors), with descriptions;
 *   neuron         the best-correlated MLP neuron from feature_neurons, or computed over a
 *                  corpus sampled from the model (when o->neuron_tokens > 0);
 *   categories     feature_tags (migration 012).
 *   provenance     the model and SAE (sha256), the hook, the index's run, corpus (its sha256),
 *                  seed and date, and for each run a description or score came from its
 *                  grader kind and model, template hash, seed and date (issue 17.4; the same
 *                  facts as `evalrun report`'s provenance, report_run_provenance()).
 * Each part records whether it was "stored" or "computed".
 *
 * Highlighting: activating tokens (activation > 0) are always wrapped in ⟦ ⟧ so that the text
 * degrades cleanly without colour; with colour on, they are also drawn in reverse video.
 *
 * Ownership: card_build fills a struct card that owns every string and array in it; free with
 * card_release(). Renderers return new strings; caller frees with free().
 */
#ifndef EV_CARD_H
#define EV_CARD_H

#include <stdint.h>

#include "evals/common.h"
#include "base/util.h"

#define CARD_HIST_BINS 10

struct card_desc {
    char   *text;
    char   *source; /* 'user', 'explainer:<grader>', 'autointerp run 3 (explainer:...)' */
    int64_t run_id; /* the run it came from (card.runs), 0 when the database records none */
};

/* The provenance of a run that a description or score came from (evals/report.c's facts):
 * each string owned, "-" when the run records none. */
struct card_run {
    int64_t id;
    char   *kind;
    char   *grader;   /* kind and model with the counts: "llm openai:mock; 16 parsed, ..." */
    char   *template; /* "sha256 HEX" of the prompt template */
    char   *seed;
    char   *date;     /* "START to END" (UTC) */
};

struct card_score {
    char   *kind;    /* the run's kind: specificity, influence, autointerp:detection, ... */
    char   *items;   /* what was scored: "activating contexts", "non-activating contexts",
                      * "concept", "fluency", "windows", ... (owned) */
    int64_t run_id;
    char   *grader;  /* grader name, or NULL */
    int     n;       /* scored items */
    double  mean;    /* mean score (autointerp: accuracy in [0, 1]) */
    double  ci95;    /* half-width of its normal 95% interval (1.96 s / sqrt(n); for an
                      * accuracy 1.96 sqrt(p (1 - p) / n)); NAN below 2 items */
    int     n_unparsed, n_skipped; /* answers that gave no score, and raters' skips */
};

struct card_context {
    int64_t example_id;
    char    kind[24];   /* 'top', 'interval' */
    int     interval;   /* -1 when none */
    double  activation; /* at the centre token */
    int     center;
    int     n;
    char  **pieces;     /* (n) decoded token texts, owned */
    float  *acts;       /* (n) the feature's activation on each token */
};

struct card_token {
    int    token;
    char  *text; /* the token's text, owned */
    double value;
};

struct card_neighbor {
    int    feature;
    double cosine;
    char  *description; /* owned, may be NULL */
};

struct card {
    int     feature, d_sae;
    char   *sae_path, *model_path; /* owned */
    char    hook[96];
    char    model_hash[65], sae_hash[65]; /* sha256, "" when not known */

    /* the feature index the statistics and contexts come from (0 / NULL when none) */
    int64_t index_run, index_tokens;
    char   *index_corpus, *index_corpus_hash, *index_seed, *index_date; /* owned, "-" if none */

    int              n_runs;
    struct card_run *runs; /* (n_runs) by id: every run a description or score came from */

    int               n_desc;
    struct card_desc *desc;       /* (n_desc); desc[0] is the current one when there is one */
    int                n_scores;
    struct card_score *scores;   /* (n_scores) by run id */

    int     has_stats;
    int64_t n_tokens, fire_count;
    double  density, max_act, mean_act;
    double  q10, q50, q90, q99;  /* quantiles of the firing activations (NAN when absent) */

    int64_t hist[CARD_HIST_BINS];/* counts over (0, hist_max] in equal bins */
    double  hist_max;
    int64_t hist_n;              /* activations counted */

    int                  n_top, n_intervals;
    struct card_context *top;       /* (n_top) by activation, largest first */
    struct card_context *intervals; /* (n_intervals) one per interval, highest interval first */

    const char       *logits_source; /* "stored" or "computed" (static string) */
    int               n_logits;
    struct card_token *logit_top;    /* (n_logits) most promoted, largest first */
    struct card_token *logit_bottom; /* (n_logits) most suppressed, smallest first */

    const char           *neighbors_source;
    int                   n_neighbors;
    struct card_neighbor *neighbors; /* (n_neighbors) by cosine, largest first */

    const char *neuron_source; /* "stored", "computed" or NULL when none */
    int         neuron_layer, neuron;
    double      neuron_pearson;
    int64_t     neuron_tokens;

    int    n_categories;
    char **categories; /* (n_categories) sorted */
};

struct card_opts {
    int     n_top;         /* top contexts (default 5) */
    int     n_logits;      /* logit effects each way (default 8) */
    int     n_neighbors;   /* default 8 */
    int64_t neuron_tokens; /* corpus tokens for a neuron correlation not stored; 0: none */
    uint64_t seed;         /* for that corpus */
};

struct card_opts card_default_opts(void);

/*
 * Builds the card of feature from what e's database holds for e's SAE (computing the parts
 * that are missing, see above). feature outside [0, d_sae): EV_EFAIL naming the range. A
 * malformed stored example is EV_EFAIL naming its id. Caller frees with card_release().
 */
int  card_build(struct eval_env *e, int feature, const struct card_opts *o, struct card *out,
                struct ev_err *err);
void card_release(struct card *c);

/* Terminal text no wider than width display columns (width >= 60); colour adds ANSI escapes
 * (which take no columns). */
char *card_render_text(const struct card *c, int width, int colour);
char *card_render_md(const struct card *c);
char *card_render_json(const struct card *c);

/* Display columns of UTF-8 text (wide East Asian characters and emoji count 2, combining
 * marks 0, ANSI escape sequences 0). */
int card_display_width(const char *s);

/* s on one line (newlines shown as ↵, control characters dropped) cut to at most w display
 * columns, "…" marking a cut. Caller frees. */
char *card_clip(const char *s, int w);

#endif
