/*
 * compare — regression testing of one run against another (issue 7, `evalrun compare`).
 *
 * Included by: evals and harness/cli.
 *
 * A run's metrics are read back from the database as *units* (one number per graded item,
 * latent or ablation; see docs/reports.md for every metric, its unit and its direction).
 * Two runs of the same kind are compared metric by metric: the difference candidate −
 * baseline, a seeded percentile-bootstrap 95% interval of it, and a verdict. When both runs
 * used the same SAE (same hash) the comparison is paired on the units both runs hold (same
 * item key); otherwise the two distributions are compared.
 *
 * Verdict (direction-aware: `dir` +1 when higher is better, −1 when lower is): the
 * improvement is dir × difference (divided by |baseline| for relative thresholds). "worse"
 * when the improvement is below −threshold and the interval lies wholly on the worse side of
 * 0; "better" symmetrically; otherwise "same"; "n/a (too few)" when fewer than min_n units
 * were compared. Before any of this, cmp_runs_differences() says whether the runs are
 * comparable at all (same grader, template, hook, model, features, per-interval count).
 *
 * Ownership: cmp_* structs own their strings and arrays; release with the matching
 * *_release().
 */
#ifndef EV_COMPARE_H
#define EV_COMPARE_H

#include <stdint.h>

#include "base/args.h"
#include "evals/stats.h"
#include "store/runinfo.h"
#include "store/store.h"

/* A run as compare and report see it. The strings read from its configuration are NULL
 * where the configuration does not hold them. */
struct cmp_run {
    int64_t id;
    char   *kind, *tag, *status; /* tag may be NULL */
    char   *sae_hash;            /* NULL when the run names no SAE */
    char   *config_json;
    int64_t started_ms;
    char   *model_hash, *hook, *template_hash;
    char   *features;     /* the feature ids of the run, sorted, comma-separated */
    int     n_features;   /* how many (0 when features is NULL) */
    long    per_interval; /* -1 when the configuration has none */
    struct runinfo_grades grades; /* who graded it and how many grades parsed */
};
/* Resolves name (an id or a tag) in s and reads the run. EV_EFAIL for an unknown one. */
int  cmp_run_load(struct store *s, const char *name, struct cmp_run *out, struct ev_err *err);
void cmp_run_release(struct cmp_run *r);

/*
 * What makes two runs incomparable (issue 17.1): a different grader kind, grader model
 * (LLM graders), prompt template hash, SAE hook, model, features set or per-interval count.
 * Appends one description per difference to out ("grader model: baseline openai:a,
 * candidate openai:b"), separated by "; ", and returns how many there are (0: comparable).
 * A property that neither run records is not a difference; one that only one run records is.
 */
int cmp_runs_differences(const struct cmp_run *b, const struct cmp_run *c, struct sbuf *out);

/* One metric of one run: its units. */
struct cmp_metric {
    char           *name;      /* "specificity.mean", "sae.l0", ... */
    int             dir;       /* +1 higher is better, -1 lower is better */
    double          threshold; /* default threshold */
    int             relative;  /* threshold is a fraction of |baseline| */
    int             aggregate; /* one measurement of the whole run (sae-metrics), not units:
                                * no --min-n, no interval, a verdict on the threshold alone */
    enum stats_stat stat;      /* STATS_MEAN of x, or STATS_PEARSON of (x, y) */
    int             n, cap;
    int             n_unparsed, n_skipped; /* items of the metric left out of n: no parsed
                                            * grade, one unparsed (else a rater's skip) */
    char          **keys; /* (n) unit keys: item keys, 'p3/f12/t5', ... */
    double         *x, *y; /* (n); y only for STATS_PEARSON */
};

struct cmp_metrics {
    int                n;
    struct cmp_metric *m;
};
/* Reads every metric the run's kind defines. EV_EFAIL (with the kinds compare knows) for a
 * kind without metrics. */
int  cmp_metrics_load(struct store *s, const struct cmp_run *run, struct cmp_metrics *out,
                      struct ev_err *err);
void cmp_metrics_release(struct cmp_metrics *ms);
/* The metric named name, or NULL. */
const struct cmp_metric *cmp_metrics_find(const struct cmp_metrics *ms, const char *name);

/* TOO_FEW: fewer than --min-n units on a side (or paired), never "worse". */
enum cmp_verdict {
    CMP_VERDICT_NA,
    CMP_VERDICT_BETTER,
    CMP_VERDICT_SAME,
    CMP_VERDICT_WORSE,
    CMP_VERDICT_TOO_FEW,
};
const char *cmp_verdict_name(enum cmp_verdict v);

struct cmp_result {
    const char     *name; /* borrowed from the metric */
    int             dir, relative;
    double          threshold;
    double          base, cand; /* the statistic on each side (over the paired units when paired) */
    struct stats_ci diff;       /* cand - base and its interval */
    int             n_base, n_cand, paired, n_paired;
    enum cmp_verdict verdict;
};

struct cmp_params {
    int      n_boot;   /* bootstrap replicates (default 2000) */
    uint64_t seed;     /* bootstrap seed (default 0) */
    int      paired;   /* compare paired on the common unit keys when possible */
    int      min_n;    /* fewer units than this on a side: "n/a (too few)" (default 20) */
};
struct cmp_params cmp_default_params(void);

/* Compares one metric (b and c have the same name); threshold as given (NAN: the metric's
 * default). Paired when p->paired and at least max(2, p->min_n) unit keys are common, or
 * (at least 2) every unit of the smaller side is; else the two samples are compared whole. The verdict is TOO_FEW when the units compared (the
 * paired ones, or either side's) are fewer than p->min_n (aggregate metrics aside); WORSE
 * only when the improvement is below -threshold and the interval excludes zero on the worse
 * side (an aggregate metric, which has no interval: on the threshold alone). */
void cmp_metric_compare(const struct cmp_metric *b, const struct cmp_metric *c, double threshold,
                        const struct cmp_params *p, struct cmp_result *out);

/* Compares every metric of mb with the same metric of mc (the union: the baseline's in its
 * order, then the candidate's extra ones, interval metrics in interval order), only those
 * matching metrics (names or dotted prefixes; NULL or empty: all), each with its threshold
 * from thr ("T" for every metric or "METRIC=T", the last match wins; NULL: the defaults).
 * *out (caller frees with free()) gets *n_out results. EV_EUSAGE for a malformed threshold. */
int cmp_metrics_compare_all(const struct cmp_metrics *mb, const struct cmp_metrics *mc,
                            const struct strlist *metrics, const struct strlist *thr,
                            const struct cmp_params *p, struct cmp_result **out, int *n_out,
                            struct ev_err *err);

/* `evalrun compare`: what the command parsed (borrowed). */
struct cmp_config {
    const char           *db_path;     /* the candidate's database */
    const char           *baseline_db; /* NULL: db_path */
    const char           *baseline, *candidate; /* run ids or tags */
    const struct strlist *thresholds, *metrics;
    int                   n_boot, min_n, allow_mismatch, json;
    uint64_t              seed;
};
/* Loads both runs, refuses incomparable ones (EV_EFAIL naming the difference) unless
 * allow_mismatch (then a warning on stderr), compares every metric and prints the table (or
 * JSON) on stdout. EV_EREGRESS when a metric is worse than its threshold; EV_EUSAGE for a
 * --metric that names nothing or a malformed --threshold. */
int cmp_main(const struct cmp_config *c, struct ev_err *err);

#endif
