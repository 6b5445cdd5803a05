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
 * when the improvement is below −threshold and the interval (when there is one) lies wholly
 * on the worse side of 0; "better" symmetrically; otherwise "same".
 *
 * Ownership: cmp_* structs own their strings and arrays; release with the matching
 * *_release().
 */
#ifndef EV_COMPARE_H
#define EV_COMPARE_H

#include <stdint.h>

#include "evals/stats.h"
#include "store/store.h"

/* A run as compare and report see it. */
struct cmp_run {
    int64_t id;
    char   *kind, *tag, *status; /* tag may be NULL */
    char   *sae_hash;            /* NULL when the run names no SAE */
    char   *config_json;
    int64_t started_ms;
};
/* Resolves name (an id or a tag) in s and reads the run. EV_EFAIL for an unknown one. */
int  cmp_run_load(struct store *s, const char *name, struct cmp_run *out, struct ev_err *err);
void cmp_run_release(struct cmp_run *r);

/* One metric of one run: its units. */
struct cmp_metric {
    char           *name;      /* "specificity.mean", "sae.l0", ... */
    int             dir;       /* +1 higher is better, -1 lower is better */
    double          threshold; /* default threshold */
    int             relative;  /* threshold is a fraction of |baseline| */
    enum stats_stat stat;      /* STATS_MEAN of x, or STATS_PEARSON of (x, y) */
    int             n, cap;
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

enum cmp_verdict { CMP_VERDICT_NA, CMP_VERDICT_BETTER, CMP_VERDICT_SAME, CMP_VERDICT_WORSE };
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
};
struct cmp_params cmp_default_params(void);

/* Compares one metric (b and c have the same name); threshold as given (NAN: the metric's
 * default). Paired when p->paired and at least 2 unit keys are common. */
void cmp_metric_compare(const struct cmp_metric *b, const struct cmp_metric *c, double threshold,
                        const struct cmp_params *p, struct cmp_result *out);

#endif
