/*
 * autointerp — automated interpretability scores that compare with SAEBench and Delphi
 * (issue 10; definitions and deliberate differences in docs/autointerp.md).
 *
 * Included by: evals and harness/cli.
 *
 * Flow of one `evalrun autointerp` run:
 *     ai_acts_collect()     the corpus through the model to the SAE's hook, once; every
 *                           latent's firing count and max (BOS excluded)
 *     ai_select_latents()   --latents N random alive ones (more than 15 firings), or the
 *                           --features ones (dead ones named and left out)
 *     ai_acts_extract()     the chosen latents' activation on every corpus token
 *     ai_plan_latent()      per latent and seed: the protocol's windows (explanation set,
 *                           scoring set, simulation set), from a seeded rng
 *     ai_run_seed()         explanations (given, or the protocol's explainer prompt), then each
 *                           scorer's judge prompts through the grader client; every prompt and
 *                           every sample (window, label, prediction, probability) is stored in
 *                           the 010 tables as its answer arrives, so a killed run resumes
 *                           without asking anything twice and a rerun asks nothing
 *     ai_report_compute()   the numbers, read back from the database: per scorer the headline,
 *                           a bootstrap 95% interval over latents, the chance floor, failures
 *     ai_write_saebench_json() / ai_write_delphi_json()   the --out exports
 *
 * Windows: SAEBench 21 tokens centred on a token (10 each side), never containing BOS; Delphi
 * 32-token blocks cut from each sequence after its BOS. A window is activating when the
 * latent's max over it is above the active threshold (SAEBench: 1% of the latent's top
 * activation; Delphi: 0), non-activating when no token of it is (checked, unlike SAEBench).
 *
 * Ownership: struct ai_acts owns its arrays (ai_acts_release); struct ai_plan owns its
 * windows (ai_plan_release); struct ai_report owns its arrays (ai_report_release).
 */
#ifndef EV_AUTOINTERP_H
#define EV_AUTOINTERP_H

#include <stdint.h>

#include "evals/common.h"
#include "evals/runner.h"

struct grader;
struct prompt;
struct acts_corpus;

enum ai_protocol {
    AI_PROTOCOL_SAEBENCH = 0,
    AI_PROTOCOL_DELPHI   = 1,
};

enum ai_scorer {
    AI_SCORER_DETECTION  = 1 << 0, /* saebench: the window-numbers judge; delphi: [1,0,..] */
    AI_SCORER_FUZZING    = 1 << 1, /* delphi only: marked tokens, correct or misplaced */
    AI_SCORER_SIMULATION = 1 << 2, /* OpenAI-style 0-10 per token, Pearson */
};
#define AI_N_SCORERS 3

enum ai_negatives {
    AI_NEGATIVES_RANDOM  = 0,
    AI_NEGATIVES_SIMILAR = 1, /* evalrun's token-overlap stand-in for Delphi's hard negatives */
};

/* Window kinds (stored in autointerp_samples.kind). */
enum ai_kind {
    AI_KIND_TOP        = 0,
    AI_KIND_IMPORTANCE = 1, /* sampled below the top with probability ∝ activation² */
    AI_KIND_RANDOM     = 2, /* random, checked non-activating */
    AI_KIND_QUANTILE   = 3, /* Delphi activating test window, from one of 10 rank quantiles */
    AI_KIND_SIMILAR    = 4, /* non-activating, most tokens shared with the activating ones */
};
const char *ai_kind_name(enum ai_kind k);
const char *ai_scorer_name(enum ai_scorer s);
const char *ai_protocol_name(enum ai_protocol p);

/* "saebench" | "delphi"; anything else EV_EUSAGE naming it. */
int ai_parse_protocol(const char *s, enum ai_protocol *out, struct ev_err *err);
/* A comma list of detection, fuzzing, simulation; NULL gives the protocol's default
 * (saebench: detection; delphi: detection,fuzzing). Fuzzing under saebench, an unknown or empty
 * name: EV_EUSAGE. */
int ai_parse_scorers(const char *s, enum ai_protocol p, int *mask, struct ev_err *err);

/* Reads per-element probabilities out of an OpenAI logprobs object (a grader reply's
 * choices[0].logprobs as JSON): the answer's number tokens in order; for 0/1 lists (sim 0)
 * P("1") among the 0/1 alternatives, for simulation (sim 1) the expected value over the
 * alternatives 0..10. Returns 1 when exactly n were found (out (n) filled), else 0. */
int ai_logprob_values(const char *json, int n, int sim, double *out);

struct ai_params {
    enum ai_protocol  protocol;
    int               scorers;      /* enum ai_scorer mask */
    enum ai_negatives negatives;
    int               alive_min;    /* a latent is alive with more than this many firings (15) */
    int               min_windows;  /* delphi: fewer activating windows -> skipped (200) */
    int               n_bootstrap;  /* resamples for the 95% intervals (1000) */
    double            act_frac;     /* saebench active threshold, of the top activation (0.01) */
    double            fuzz_frac;    /* delphi fuzzing marks: tokens >= this x window max (0.3) */
};
struct ai_params ai_default_params(enum ai_protocol p);

// ---------------------------------------------------------------------------- activations

struct ai_acts {
    int      n_seq, T, D, S;
    int64_t *n_fire; /* (S) tokens where the latent is > 0, BOS (position 0) excluded */
    float   *max;    /* (S) */
    float   *X;      /* (n_seq, T, D) residuals at the hook */
    int      n_lat;
    int     *lat;    /* (n_lat) latent ids of the rows of a */
    float   *a;      /* (n_lat, n_seq * T) activations; position 0 of each sequence is 0 */
};
/* Runs corpus c through m up to hook h and counts firings of every latent of s. Polls
 * ev_interrupted() (EV_EINTR). Caller frees with ai_acts_release(). */
int  ai_acts_collect(struct model *m, const struct sae *s, struct model_hook h,
                     const struct acts_corpus *c, struct ai_acts *out, struct ev_err *err);
/* Encodes the kept residuals once more and keeps the activations of latents lat[0..n-1]
 * (copied; replaces what an earlier call kept, so that latents can be taken in chunks). */
void ai_acts_extract(struct ai_acts *a, const struct sae *s, const int *lat, int n);
void ai_acts_release(struct ai_acts *a);

/* Picks the latents: with want (n_want ids, e.g. from --features) the alive ones among them
 * (each dead one is named with ev_info and left out); otherwise n random alive latents (fewer,
 * with a message giving how many are alive, when fewer are). Sorted ascending; caller frees
 * *out. Returns the count (may be 0). */
int ai_select_latents(const struct ai_acts *a, int alive_min, const int *want, int n_want,
                      int n, uint64_t seed, int **out);

// ---------------------------------------------------------------------------- sampling

struct ai_window {
    int      seq, start, n; /* tokens start..start+n-1 of corpus sequence seq */
    int      label;         /* 1 activating, 0 not (fuzzing: 1 = correctly marked) */
    int      kind;          /* enum ai_kind */
    int      quantile;      /* delphi 1..10 (1 = highest ranks), else 0 */
    float    max;           /* the latent's max over the window */
    uint64_t marks;         /* bit i: token i marked (explanations, fuzzing) */
};

struct ai_plan {
    int               feature;
    const char       *skip;   /* NULL when the latent can be scored, else why not (static) */
    float             thr;    /* active threshold */
    struct ai_window *expl;   int n_expl; /* explanation windows, marked */
    struct ai_window *test;   int n_test; /* detection windows, in prompt order */
    struct ai_window *fuzz;   int n_fuzz; /* fuzzing windows (marked), in prompt order */
    struct ai_window *sim;    int n_sim;  /* simulation windows */
};

/*
 * The protocol's windows for one latent whose activations are a (n_seq, T) (position 0 of each
 * sequence, BOS, never used), from rng r:
 *   saebench: 12 top non-overlapping windows (10 to explain, 2 to score, split at random),
 *             7 more drawn without replacement ∝ activation² among the non-overlapping active
 *             centres below the top ones (5 / 2), 10 random windows with no active token;
 *             test = the 14 shuffled; simulation = the same 14;
 *   delphi:   32-token blocks; the top 20 to explain; the other activating ones ranked by max
 *             and cut in 10 quantiles, 5 drawn from each; 50 non-activating ones (random, or
 *             with negatives similar the 50 sharing the most token ids with the activating
 *             test windows); detection = the 100 shuffled; fuzzing = the same 100 reshuffled,
 *             half of the activating ones marked correctly (tokens >= fuzz_frac x the window's
 *             max), the rest and the non-activating ones marked at as many wrong places;
 *             simulation = the 5 quantile-1 windows + 5 non-activating ones.
 * When the latent has too few windows of a kind, plan->skip says why. Caller frees with
 * ai_plan_release().
 */
void ai_plan_latent(const struct ai_params *p, int feature, const float *a, const int *tokens,
                    int n_seq, int T, float max_act, struct rng *r, struct ai_plan *plan);
void ai_plan_release(struct ai_plan *plan);

// ---------------------------------------------------------------------------- metrics

/* Confusion counts of binary predictions. */
struct ai_confusion {
    long tp, fp, tn, fn;
};
/* (TP/P + TN/N) / 2; a class with no samples contributes its absence: with P = 0 the value
 * is TN/N, with N = 0 it is TP/P; NAN when both are empty. */
double ai_balanced_accuracy(const struct ai_confusion *c);
/* 2TP / (2TP + FP + FN); 0 when the denominator is 0. */
double ai_f1(const struct ai_confusion *c);
double ai_accuracy(const struct ai_confusion *c);
/* Area under the ROC curve of scores p against labels y (n), ties counted one half
 * (Mann–Whitney U / (P N)); NAN when a class is empty. */
double ai_auc(const double *p, const int *y, int n);
/* Pearson correlation of x and y (n), clamped to [-1, 1]; 0 when either is constant; NAN when
 * n < 2. */
double ai_pearson(const double *x, const double *y, int n);
/* Percentile-bootstrap 95% interval of stat over n units (resampled with replacement B times
 * from rng seed): stat(ud, idx, n) gets the resampled unit indices. */
typedef double ai_stat_fn(const void *ud, const int *idx, int n);
void ai_bootstrap(ai_stat_fn *stat, const void *ud, int n, int B, uint64_t seed, double *lo,
                  double *hi);

// ---------------------------------------------------------------------------- running

struct ai_latent_info {
    int         feature;
    int64_t     n_fire;
    float       max;
    const char *desc; /* from --features, or NULL */
};

struct ai_templates {
    struct prompt *explain, *score, *fuzz, *sim; /* borrowed; fuzz/sim may be NULL */
    struct prompt *retry; /* the explainer's re-ask (explainer_retry), borrowed; NULL: the same
                           * prompt is asked again */
};

/* Samples, explains and scores latents lat[0..n-1] for one seed (plans built inside from
 * acts, whose row i must hold lat[i]'s activations), storing everything under run. The caller
 * passes this shard's latents only. g NULL: only plans and stores the explainer prompts.
 * Returns EV_OK, EV_EINTR, or EV_EFAIL with err. */
int ai_run_seed(struct eval_env *env, const struct eval_run *run, struct grader *g,
                const struct ai_params *p, const struct ai_templates *tpl,
                const struct ai_acts *acts, const int *corpus_tokens,
                const struct ai_latent_info *lat, int n, int64_t seed, struct ev_err *err);

/* One latent's numbers under one scorer. */
struct ai_latent_score {
    int                 feature;
    int                 failed;  /* a prompt of it did not parse or failed: excluded */
    double              value;   /* saebench: accuracy over its windows; delphi: balanced
                                    accuracy; simulation: Pearson (NAN when failed) */
    struct ai_confusion cm;      /* binary scorers, over its parsed samples */
    long                n, n_failed; /* samples, and those without a prediction */
};

/* The numbers of one (seed, scorer), read back from the database. */
struct ai_score {
    int                     n_lat;
    struct ai_latent_score *lat; /* (n_lat) ordered by feature */
    int    present;
    double value, lo, hi;   /* headline and its bootstrap 95% interval (NAN when undefined) */
    double chance;          /* the always-"no" judge's value */
    double std_dev;         /* saebench: std over latents (population) */
    double f1, f1_lo, f1_hi, accuracy;      /* delphi */
    double auc, auc_lo, auc_hi;             /* delphi, NAN when no logprobs */
    int    n_latents;       /* scored (parsed) latents */
    int    n_failed_latents;/* excluded: an answer did not parse or the request failed */
    long   n_samples, n_failed_samples;
    double per_quantile[11];/* delphi: accuracy on quantile q (1..10); [0] non-activating */
    long   per_quantile_n[11];
};

struct ai_report {
    int              n_seeds;
    int64_t          seed0;
    struct ai_score (*s)[AI_N_SCORERS]; /* (n_seeds) x scorer index (0 det, 1 fuzz, 2 sim) */
    int              n_skipped, n_expl_failed; /* of the first seed */
};
int  ai_report_compute(struct eval_env *env, const struct eval_run *run,
                       const struct ai_params *p, int64_t seed0, int n_seeds,
                       struct ai_report *rep, struct ev_err *err);
void ai_report_release(struct ai_report *rep);

/* The --out exports (atomic writes). info_json: a JSON object (the run's configuration) put in
 * eval_config; sae_cfg_json: the SAE's cfg.json text. Written for the first seed. */
int ai_write_saebench_json(struct eval_env *env, const struct eval_run *run,
                           const struct ai_report *rep, const char *config_json,
                           const char *path, struct ev_err *err);
int ai_write_delphi_json(struct eval_env *env, const struct eval_run *run,
                         const struct ai_params *p, const struct ai_report *rep,
                         const char *path, struct ev_err *err);

// ---------------------------------------------------------------------------- the evaluation

/* `evalrun autointerp`: the command's parameters (parsed and range-checked by the command;
 * p from ai_default_params() with its flags applied). The judge's --logprobs go into the
 * grader's configuration as well. */
struct ai_config {
    struct ai_params p;
    const char      *features_path; /* latents (and explanations) to score, or NULL */
    const char      *corpus;        /* NULL: stories sampled from the model */
    const char      *text_field;    /* the JSON Lines field of the text, or NULL */
    const char      *out_path;      /* SAEBench / Delphi JSON, or NULL */
    long             latents;       /* random alive latents (without features_path) */
    long             seeds;         /* rerun the sampling with seeds S..S+K-1 */
    long             tokens, ctx;
    long             logprobs;
};

/* The evaluation (evals/runner.h; autointerp_eval.c): the corpus pass, the protocol's
 * samples per seed, the table with intervals and chance floors, and the --out exports. */
extern const struct eval_kind ai_kind;

#endif
