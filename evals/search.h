/*
 * search — finding features (issue 8; docs/search.md): the paper's ways of finding the
 * features worth inspecting, each giving a ranked list of latent indices.
 *
 * Included by: evals and harness/cli.
 *
 *   by prompt      a feature's activation on each prompt is its activation at the last token
 *                  (SEARCH_POS_LAST) or its maximum over the prompt's tokens (SEARCH_POS_ALL);
 *                  the BOS position never counts. score = mean over the prompts minus mean
 *                  over the negative prompts. With relative scoring (the default when the
 *                  feature index holds statistics for the SAE) every activation is first
 *                  divided by the feature's max activation in the index, so that a feature at
 *                  80% of its range outranks a loud feature at 5% of its range; features with
 *                  no statistics (or max 0) then score 0. Only features that fire on at least
 *                  one prompt are listed; the score must be > 0.
 *   neighbours     the features whose decoder rows have the highest cosine with the given
 *                  one's (sae_neighbors; the feature itself excluded): score = cosine.
 *   attribution    attribution of d = logit(target) - logit(contrast) (or logit(target) alone
 *                  when there is no contrast) at the prompt's last position to each feature,
 *                  summed over the prompt's positions (BOS excluded): attr_compute of
 *                  evals/attribution.h (activation x gradient through the layers above the
 *                  hook). Ranked by that sum, largest first: the features that push the model
 *                  towards the target.
 *
 * Hits carry the index's density and max activation when stored (NAN otherwise) and the
 * stored description. Ownership: struct search_result owns its hits (search_result_release).
 *
 * Below those, what the commands that find and inspect features do once their flags are
 * checked, printing on stdout: `evalrun search` (search_run: the hits as a table or
 * "evalrun.search/1" JSON, --out as a features file), `show` (search_show: the feature card,
 * evals/card.h), `tag` (search_tag) and `features` (search_features: the categories).
 */
#ifndef EV_SEARCH_H
#define EV_SEARCH_H

#include "base/args.h"
#include "base/util.h"
#include "evals/common.h"
#include "evals/index.h"

struct card_opts;

enum search_position {
    SEARCH_POS_LAST, /* the prompt's last token */
    SEARCH_POS_ALL,  /* the maximum over the prompt's tokens (BOS excluded) */
};

struct search_hit {
    int    feature;
    double score;       /* the ranking value (see above) */
    double act;         /* prompts: mean raw activation over the prompts; attribution: the
                           feature's largest activation on the prompt; like: NAN */
    double neg;         /* prompts: mean score-scale activation over the negatives (0 when
                           none); else NAN */
    double density;     /* feature_stats.density, NAN when not indexed */
    double max_act;     /* feature_stats.max_act, NAN when not indexed */
    char  *description; /* owned; NULL when none is stored */
};

struct search_result {
    int                n;
    struct search_hit *hits;      /* (n) best first */
    int                relative;  /* prompts: 1 when scores are fractions of max activation */
    double             d;         /* attribution: the clean logit (difference) */
    int                target, contrast; /* attribution: token ids (contrast -1 when none) */
};

void search_result_release(struct search_result *r);

struct search_prompt_opts {
    const char *const   *prompts;     /* (n_prompts) texts, each non-empty */
    int                  n_prompts;
    const char *const   *negatives;   /* (n_negatives) or NULL */
    int                  n_negatives;
    enum search_position position;
    int                  scoring;     /* SEARCH_SCORE_* */
    int                  top;         /* hits kept, >= 1 */
};

enum search_scoring {
    SEARCH_SCORE_AUTO,     /* relative when the index holds statistics for the SAE */
    SEARCH_SCORE_RAW,
    SEARCH_SCORE_RELATIVE, /* needs the index: EV_EFAIL when it holds no statistics */
};

/*
 * Ranks features by activation on o->prompts minus activation on o->negatives (above). A
 * prompt that is empty or encodes to no token besides BOS: EV_EUSAGE naming it; longer than the
 * model's context: EV_EFAIL. Caller frees out with search_result_release().
 */
int search_prompts(struct eval_env *e, const struct search_prompt_opts *o,
                   struct search_result *out, struct ev_err *err);

/* The top nearest features of `feature` by decoder cosine, the feature itself excluded; top is
 * clipped to d_sae - 1. feature outside [0, d_sae): EV_EFAIL naming the range. */
int search_like(struct eval_env *e, int feature, int top, struct search_result *out,
                struct ev_err *err);

/*
 * Ranks features by their attribution to logit(target) - logit(contrast) after prompt
 * (contrast NULL: logit(target)). target and contrast are the text following the prompt and
 * must each be one token (attr_resolve_token: EV_EFAIL naming the tokens a text splits into).
 * Empty prompt: EV_EUSAGE. Keeps the top hits by attribution (largest first).
 */
int search_attribution(struct eval_env *e, const char *prompt, const char *target,
                       const char *contrast, int top, struct search_result *out,
                       struct ev_err *err);

/* Whether the feature index holds statistics for e's SAE: 1 yes, 0 no, EV_EFAIL on error. */
int search_index_has_stats(struct eval_env *e, struct ev_err *err);

// ---------------------------------------------------------------------------- the commands

/* What the commands open: the database, the model and the SAE as given (NULL: the
 * defaults), and where an index built on demand comes from. */
struct search_open {
    const char              *db_path, *model, *sae;
    int                      model_flags; /* MODEL_LOAD_* */
    struct eval_index_source index;
};

/* search's options, as given (the command checks them and fills the rest). */
struct search_args {
    struct strlist prompts, negs;
    const char    *position, *out, *like, *target, *contrast, *score, *format;
    long           top;
    int            attribution;
    /* worked out by search_check */
    const char          *mode; /* "like", "attribution" or "prompt" */
    enum search_position pos;
    int                  scoring, feature;
};

/* evalrun search: opens w read-only (the index built on demand for relative scores), runs
 * the search a asks for, writes --out, prints the hits (text or JSON). */
int search_run(const struct search_open *w, const struct search_args *a, struct ev_err *err);

/* evalrun show: the card of feature (the index built on demand) printed as format (text,
 * md or json) in width columns, coloured when colour. A feature outside the SAE: EV_EFAIL. */
int search_show(const struct search_open *w, int feature, const struct card_opts *o,
                const char *format, int width, int colour, struct ev_err *err);

/* A category as stored: trimmed, ASCII lower-cased, 1..64 bytes, no control characters
 * (EV_EUSAGE otherwise); out holds n bytes. */
int search_category_normalise(const char *in, char *out, size_t n, struct ev_err *err);

/* evalrun tag: records category cat (normalised) for feature, or removes it (remove; EV_EFAIL
 * when the feature did not have it), and says so. */
int search_tag(const struct search_open *w, int feature, const char *cat, int remove,
               struct ev_err *err);

/* evalrun features: the features tagged category (normalised), or without one every
 * category and its count. */
int search_features(const struct search_open *w, const char *category, struct ev_err *err);

#endif
