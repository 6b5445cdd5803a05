/*
 * influence_report — the numeric and LLM influence measures of a run summarised per (feature,
 * scale) with n and 95% bootstrap intervals, the --scale auto pick, and the report's section
 * and figure (concept gain vs fluency drop per scale). Reads the database only (the tables
 * generations, influence_measures, items and grades through their owner modules).
 *
 * Included by: evals and harness/cli.
 */
#ifndef EV_INFLUENCE_REPORT_H
#define EV_INFLUENCE_REPORT_H

#include <stdint.h>

#include "evals/stats.h"
#include "base/util.h"

struct store;
struct report;

/* One (feature, scale) of a run. CIs are percentile-bootstrap 95% intervals (2000 draws,
 * fixed seed), NAN when fewer than 2 units. */
struct infl_cell {
    int             feature;
    double          scale, max_act, clamp;
    int             n_gen;           /* steered continuations stored */
    int             n;               /* prompts with steered and baseline measures */
    double          ll, ll_base;     /* mean fluency (nats/token): steered, baseline */
    struct stats_ci drop;            /* fluency drop = baseline - steered (paired) */
    double          act, act_base;   /* mean concept activation: steered, baseline */
    double          act_max;         /* mean over texts of the max activation */
    struct stats_ci gain;            /* concept gain = steered - baseline (paired) */
    struct stats_ci kl;              /* mean KL(unsteered || steered) per text */
    int             n_llm;           /* continuations with both LLM scores parsed */
    int             unparsed, skipped;
    struct stats_ci concept, fluency; /* LLM 0-3 means */
    char           *example;         /* the steered text of the first prompt, or NULL */
};

struct infl_summary {
    int               n_cells;
    struct infl_cell *cells;         /* by feature, then scale */
    const char       *grader_kind;   /* "llm" or "human": whose grades are in the cells */
    double            fluency_drop;  /* the --scale auto threshold (nats/token) */
    int               n_features;
    int              *features;      /* (n_features) */
    int              *pick;          /* (n_features) cell of the largest scale > 0 whose
                                        fluency drop is <= fluency_drop, -1 when none */
};

/* The default of --fluency-drop (nats per token). */
#define INFL_FLUENCY_DROP_DEFAULT 0.5
/* The scales of --scale auto (x the feature's max activation). */
extern const double infl_auto_scales[6];

int  infl_summary_load(struct store *s, int64_t run_id, double fluency_drop,
                       struct infl_summary *out, struct ev_err *err);
void infl_summary_release(struct infl_summary *sm);

/* The run's --fluency-drop from its configuration JSON (the default when absent) and whether
 * it ran --scale auto. */
double infl_config_fluency_drop(const char *config_json, int *scale_auto);

/* The report's section for an influence run: the table of both kinds of measures, the
 * --scale auto picks, and the figure. */
int infl_report_section(struct store *s, struct report *rep, struct ev_err *err);

#endif
