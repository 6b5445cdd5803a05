/*
 * compare — metrics of a run as units, and the comparison of two runs (see compare.h).
 */
#include "evals/compare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "store/runinfo.h"
#include "store/saestats.h"

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* The comparability facts of the run's configuration (model, hook, template, features,
 * per-interval count). A configuration that does not parse holds none of them. */
static void run_config_facts(struct cmp_run *r) {
    cJSON        *cfg = NULL;
    struct ev_err e;
    r->per_interval = -1;
    if (json_parse(r->config_json, strlen(r->config_json), "run configuration", &cfg, &e) !=
        EV_OK)
        return;
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "model_hash")) && cJSON_IsString(v))
        r->model_hash = xstrdup(v->valuestring);
    if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "hook")) && cJSON_IsString(v))
        r->hook = xstrdup(v->valuestring);
    if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "template_sha256")) && cJSON_IsString(v))
        r->template_hash = xstrdup(v->valuestring);
    if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "per_interval")) && cJSON_IsNumber(v))
        r->per_interval = (long)v->valuedouble;
    if ((v = cJSON_GetObjectItemCaseSensitive(cfg, "features")) && cJSON_IsArray(v)) {
        int   n   = cJSON_GetArraySize(v), k = 0;
        long *ids = xmalloc((size_t)(n ? n : 1) * sizeof *ids);
        const cJSON *it;
        cJSON_ArrayForEach(it, v) {
            if (cJSON_IsNumber(it)) ids[k++] = (long)it->valuedouble;
        }
        qsort(ids, (size_t)k, sizeof *ids, cmp_long);
        struct sbuf sb;
        sbuf_init(&sb);
        sbuf_adds(&sb, "");
        for (int i = 0; i < k; i++) sbuf_addf(&sb, "%s%ld", i ? "," : "", ids[i]);
        r->features   = sbuf_detach(&sb);
        r->n_features = k;
        free(ids);
    }
    json_free(cfg);
}

int cmp_run_load(struct store *s, const char *name, struct cmp_run *out, struct ev_err *err) {
    struct runinfo_run row;
    int64_t            id = 0;
    int                rc;
    memset(out, 0, sizeof *out);
    if ((rc = store_run_resolve(s, name, &id, err)) != EV_OK) return rc;
    if ((rc = runinfo_run_load(s, id, &row, err)) != EV_OK) return rc;
    out->id          = row.id;
    out->kind        = row.kind;
    out->tag         = row.tag;
    out->status      = row.status;
    out->sae_hash    = row.sae_hash;
    out->config_json = row.config_json;
    out->started_ms  = row.started_ms;
    run_config_facts(out);
    return runinfo_grades_load(s, out->id, &out->grades, err);
}

void cmp_run_release(struct cmp_run *r) {
    free(r->kind);
    free(r->tag);
    free(r->status);
    free(r->sae_hash);
    free(r->config_json);
    free(r->model_hash);
    free(r->hook);
    free(r->template_hash);
    free(r->features);
    memset(r, 0, sizeof *r);
}

/* Appends "what: baseline B, candidate C" when b and c differ (NULL: not recorded). */
static int differ(struct sbuf *out, int n, const char *what, const char *b, const char *c,
                  int shorten) {
    if (!b && !c) return n;
    if (b && c && strcmp(b, c) == 0) return n;
    sbuf_addf(out, "%s%s: baseline %.*s%s, candidate %.*s%s", n ? "; " : "", what,
              shorten && b ? 12 : 200, b ? b : "(not recorded)", shorten && b ? "..." : "",
              shorten && c ? 12 : 200, c ? c : "(not recorded)", shorten && c ? "..." : "");
    return n + 1;
}

int cmp_runs_differences(const struct cmp_run *b, const struct cmp_run *c, struct sbuf *out) {
    int n = 0;
    const char *gb = b->grades.kind, *gc = c->grades.kind;
    if (*gb && *gc) {
        n = differ(out, n, "grader kind", gb, gc, 0);
        if (strcmp(gb, "llm") == 0 && strcmp(gc, "llm") == 0)
            n = differ(out, n, "grader model", b->grades.names, c->grades.names, 0);
    }
    n = differ(out, n, "prompt template", b->template_hash, c->template_hash, 1);
    n = differ(out, n, "SAE hook", b->hook, c->hook, 0);
    n = differ(out, n, "model", b->model_hash, c->model_hash, 1);
    if ((b->features || c->features) &&
        !(b->features && c->features && strcmp(b->features, c->features) == 0)) {
        sbuf_addf(out, "%sfeatures set: baseline %d features, candidate %d (not the same ids)",
                  n ? "; " : "", b->n_features, c->n_features);
        n++;
    }
    if (b->per_interval != c->per_interval) {
        char pb[32], pc[32];
        snprintf(pb, sizeof pb, "%ld", b->per_interval);
        snprintf(pc, sizeof pc, "%ld", c->per_interval);
        n = differ(out, n, "per-interval count", b->per_interval >= 0 ? pb : NULL,
                   c->per_interval >= 0 ? pc : NULL, 0);
    }
    return n;
}

// ---------------------------------------------------------------------------- metrics

static struct cmp_metric *metric_add(struct cmp_metrics *ms, const char *name, int dir,
                                     double threshold, int relative, enum stats_stat stat) {
    ms->m = xrealloc(ms->m, (size_t)(ms->n + 1) * sizeof *ms->m);
    struct cmp_metric *m = &ms->m[ms->n++];
    memset(m, 0, sizeof *m);
    m->name      = xstrdup(name);
    m->dir       = dir;
    m->threshold = threshold;
    m->relative  = relative;
    m->stat      = stat;
    return m;
}

static void unit_add(struct cmp_metric *m, const char *key, double x, double y) {
    if (m->n == m->cap) {
        m->cap  = m->cap ? 2 * m->cap : 64;
        m->keys = xrealloc(m->keys, (size_t)m->cap * sizeof *m->keys);
        m->x    = xrealloc(m->x, (size_t)m->cap * sizeof *m->x);
        m->y    = xrealloc(m->y, (size_t)m->cap * sizeof *m->y);
    }
    m->keys[m->n] = xstrdup(key);
    m->x[m->n]    = x;
    m->y[m->n]    = y;
    m->n++;
}

static struct cmp_metric *metric_get(struct cmp_metrics *ms, const char *name) {
    for (int i = 0; i < ms->n; i++)
        if (strcmp(ms->m[i].name, name) == 0) return &ms->m[i];
    return NULL;
}

const struct cmp_metric *cmp_metrics_find(const struct cmp_metrics *ms, const char *name) {
    for (int i = 0; i < ms->n; i++)
        if (strcmp(ms->m[i].name, name) == 0) return &ms->m[i];
    return NULL;
}

static int cmp_metric_name(const void *a, const void *b) {
    return strcmp(((const struct cmp_metric *)a)->name, ((const struct cmp_metric *)b)->name);
}

struct graded_ctx {
    struct cmp_metrics *ms;
    int                 spec, infl;
};

/* The metrics an item of kind (and interval) counts in: *out (up to 3) of the return. */
static int item_metrics(struct graded_ctx *g, const char *kind, int interval,
                        struct cmp_metric **out) {
    struct cmp_metrics *ms = g->ms;
    int                 n = 0;
    if (g->spec && strcmp(kind, "interval") == 0) {
        out[n++] = metric_get(ms, "specificity.mean");
        out[n++] = metric_get(ms, "specificity.share3");
        if (interval >= 0) {
            char name[64];
            snprintf(name, sizeof name, "specificity.interval.%02d", interval + 1);
            struct cmp_metric *m = metric_get(ms, name);
            if (!m) m = metric_add(ms, name, +1, 0.5, 0, STATS_MEAN);
            /* metric_add may move the array: look the first two up again */
            out[0] = metric_get(ms, "specificity.mean");
            out[1] = metric_get(ms, "specificity.share3");
            out[n++] = m;
        }
    } else if (g->spec && strcmp(kind, "nonactivating") == 0) {
        out[n++] = metric_get(ms, "specificity.nonact");
    } else if (g->infl && strcmp(kind, "influence_concept") == 0) {
        out[n++] = metric_get(ms, "influence.success");
        out[n++] = metric_get(ms, "influence.concept");
    } else if (g->infl && strcmp(kind, "influence_fluency") == 0) {
        out[n++] = metric_get(ms, "influence.fluency");
    } else if (!g->spec && !g->infl && strcmp(kind, "concept") == 0) {
        out[n++] = metric_get(ms, "completeness.coverage");
    }
    return n;
}

/* An item left out of the units: counted beside n in each of its metrics. */
static int unscored_unit(void *ctx, const struct runinfo_unit *u) {
    struct cmp_metric *m[3];
    int                n = item_metrics(ctx, u->kind, u->interval, m);
    for (int i = 0; i < n; i++) {
        if (u->x > 0) m[i]->n_unparsed++;
        else m[i]->n_skipped++;
    }
    return EV_OK;
}

static int graded_unit(void *ctx, const struct runinfo_unit *u) {
    struct graded_ctx  *g     = ctx;
    struct cmp_metrics *ms    = g->ms;
    const char         *key   = u->key, *kind = u->kind;
    double              score = u->x;
    if (g->spec && strcmp(kind, "interval") == 0) {
        unit_add(metric_get(ms, "specificity.mean"), key, score, 0);
        unit_add(metric_get(ms, "specificity.share3"), key, score >= 2.999 ? 1 : 0, 0);
        if (u->interval >= 0) {
            char name[64];
            snprintf(name, sizeof name, "specificity.interval.%02d", u->interval + 1);
            struct cmp_metric *m = metric_get(ms, name);
            if (!m) m = metric_add(ms, name, +1, 0.5, 0, STATS_MEAN);
            unit_add(m, key, score, 0);
        }
    } else if (g->spec && strcmp(kind, "nonactivating") == 0) {
        unit_add(metric_get(ms, "specificity.nonact"), key, score, 0);
    } else if (g->infl && strcmp(kind, "influence_concept") == 0) {
        unit_add(metric_get(ms, "influence.success"), key, score >= 2 ? 1 : 0, 0);
        unit_add(metric_get(ms, "influence.concept"), key, score, 0);
    } else if (g->infl && strcmp(kind, "influence_fluency") == 0) {
        unit_add(metric_get(ms, "influence.fluency"), key, score, 0);
    } else if (!g->spec && !g->infl && strcmp(kind, "concept") == 0) {
        unit_add(metric_get(ms, "completeness.coverage"), key, score >= 0.5 ? 1 : 0, 0);
    }
    return EV_OK;
}

/* The graded items of a run: the mean parsed score of the grader kind that scored it ('llm'
 * when it has any parsed LLM grade, else 'human': runs rated with `evalrun review`). */
static int load_graded(struct store *s, const struct cmp_run *run, struct cmp_metrics *ms,
                       struct ev_err *err) {
    struct graded_ctx g  = {ms, strcmp(run->kind, "specificity") == 0,
                            strcmp(run->kind, "influence") == 0};
    const char       *gk = strcmp(run->grades.kind, "llm") == 0 ? "llm" : "human";
    /* the fixed metrics first, so that the table's order does not depend on the data */
    if (g.spec) {
        metric_add(ms, "specificity.mean", +1, 0.25, 0, STATS_MEAN);
        metric_add(ms, "specificity.share3", +1, 0.10, 0, STATS_MEAN);
        metric_add(ms, "specificity.nonact", -1, 0.25, 0, STATS_MEAN);
    } else if (g.infl) {
        metric_add(ms, "influence.success", +1, 0.10, 0, STATS_MEAN);
        metric_add(ms, "influence.concept", +1, 0.25, 0, STATS_MEAN);
        metric_add(ms, "influence.fluency", +1, 0.25, 0, STATS_MEAN);
    } else {
        metric_add(ms, "completeness.coverage", +1, 0.10, 0, STATS_MEAN);
    }
    int rc = runinfo_item_scores(s, run->id, gk, graded_unit, &g, err);
    if (rc == EV_OK) rc = runinfo_item_unscored(s, run->id, gk, unscored_unit, &g, err);
    /* the per-interval metrics in interval order (names are zero-padded) */
    if (g.spec && ms->n > 4) qsort(ms->m + 3, (size_t)ms->n - 3, sizeof *ms->m, cmp_metric_name);
    return rc;
}

static int pearson_unit(void *ctx, const struct runinfo_unit *u) {
    unit_add(ctx, u->key, u->x, u->y);
    return EV_OK;
}

static int load_attribution(struct store *s, const struct cmp_run *run, struct cmp_metrics *ms,
                            struct ev_err *err) {
    struct cmp_metric *m = metric_add(ms, "attribution.pearson", +1, 0.10, 0, STATS_PEARSON);
    return runinfo_attribution_units(s, run->id, pearson_unit, m, err);
}

static int load_sae_metrics(struct store *s, const struct cmp_run *run, struct cmp_metrics *ms,
                            struct ev_err *err) {
    static const struct {
        const char *name;
        int         dir;
        double      thr;
        int         relative;
    } cols[] = {
        {"sae.l0", -1, 0.10, 1},
        {"sae.fvu", -1, 0.02, 0},
        {"sae.dead_frac", -1, 0.02, 0},
        {"sae.ce_loss_recovered", +1, 0.02, 0},
    };
    double v[4];
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
        metric_add(ms, cols[i].name, cols[i].dir, cols[i].thr, cols[i].relative, STATS_MEAN)
            ->aggregate = 1;
    int r = saestats_metrics_latest(s, run->id, v, err);
    if (r < 0) return EV_EFAIL;
    for (int i = 0; i < 4; i++)
        if (!isnan(v[i])) unit_add(metric_get(ms, cols[i].name), "sae", v[i], 0);
    return EV_OK;
}

static int autointerp_unit(void *ctx, const struct runinfo_unit *u) {
    char name[64];
    snprintf(name, sizeof name, "autointerp.%s", u->kind);
    struct cmp_metric *m = metric_get(ctx, name);
    if (m) unit_add(m, u->key, u->x, 0);
    return EV_OK;
}

static int load_autointerp(struct store *s, const struct cmp_run *run, struct cmp_metrics *ms,
                           struct ev_err *err) {
    metric_add(ms, "autointerp.detection", +1, 0.05, 0, STATS_MEAN);
    metric_add(ms, "autointerp.fuzzing", +1, 0.05, 0, STATS_MEAN);
    /* per (scorer, latent): the share of windows judged correctly, the first seed only */
    return runinfo_autointerp_units(s, run->id, autointerp_unit, ms, err);
}

int cmp_metrics_load(struct store *s, const struct cmp_run *run, struct cmp_metrics *out,
                     struct ev_err *err) {
    memset(out, 0, sizeof *out);
    const char *k = run->kind;
    if (strcmp(k, "specificity") == 0 || strcmp(k, "completeness") == 0 ||
        strcmp(k, "influence") == 0)
        return load_graded(s, run, out, err);
    if (strcmp(k, "attribution") == 0) return load_attribution(s, run, out, err);
    if (strcmp(k, "sae-metrics") == 0) return load_sae_metrics(s, run, out, err);
    if (strcmp(k, "autointerp") == 0) return load_autointerp(s, run, out, err);
    return ev_fail(err, EV_EFAIL,
                   "run %lld is a '%s' run: compare knows specificity, completeness, influence, "
                   "attribution, sae-metrics and autointerp runs",
                   (long long)run->id, k);
}

void cmp_metrics_release(struct cmp_metrics *ms) {
    for (int i = 0; i < ms->n; i++) {
        struct cmp_metric *m = &ms->m[i];
        for (int j = 0; j < m->n; j++) free(m->keys[j]);
        free(m->keys);
        free(m->x);
        free(m->y);
        free(m->name);
    }
    free(ms->m);
    memset(ms, 0, sizeof *ms);
}

// ---------------------------------------------------------------------------- comparing

const char *cmp_verdict_name(enum cmp_verdict v) {
    switch (v) {
    case CMP_VERDICT_BETTER: return "better";
    case CMP_VERDICT_SAME: return "same";
    case CMP_VERDICT_WORSE: return "worse";
    case CMP_VERDICT_TOO_FEW: return "n/a (too few)";
    default: return "n/a";
    }
}

struct cmp_params cmp_default_params(void) {
    return (struct cmp_params){.n_boot = 2000, .seed = 0, .paired = 1, .min_n = 20};
}

struct key_idx {
    const char *key;
    int         i;
};

static int cmp_key_idx(const void *a, const void *b) {
    const struct key_idx *p = a, *q = b;
    return strcmp(p->key, q->key);
}

/* The index of key in m's keys (sorted copy idx: indices into m->keys ordered by key), or -1. */
static int find_key(const struct cmp_metric *m, const int *order, const char *key) {
    int lo = 0, hi = m->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(m->keys[order[mid]], key);
        if (c == 0) return order[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* Indices of m's units ordered by key (caller frees). */
static int *key_order(const struct cmp_metric *m) {
    struct key_idx *k = xmalloc((size_t)(m->n ? m->n : 1) * sizeof *k);
    int            *o = xmalloc((size_t)(m->n ? m->n : 1) * sizeof *o);
    for (int i = 0; i < m->n; i++) k[i] = (struct key_idx){m->keys[i], i};
    qsort(k, (size_t)m->n, sizeof *k, cmp_key_idx);
    for (int i = 0; i < m->n; i++) o[i] = k[i].i;
    free(k);
    return o;
}

void cmp_metric_compare(const struct cmp_metric *b, const struct cmp_metric *c, double threshold,
                        const struct cmp_params *p, struct cmp_result *out) {
    memset(out, 0, sizeof *out);
    out->name      = b->name;
    out->dir       = b->dir;
    out->relative  = b->relative;
    out->threshold = isnan(threshold) ? b->threshold : threshold;
    out->n_base    = b->n;
    out->n_cand    = c->n;
    out->base = out->cand = out->diff.est = out->diff.lo = out->diff.hi = NAN;
    out->verdict = CMP_VERDICT_NA;
    if (b->n == 0 || c->n == 0) return;

    struct rng r;
    rng_seed(&r, p->seed);
    double *px = NULL, *py = NULL, *qx = NULL, *qy = NULL;
    int     n_common = 0, min_common = p->min_n > 2 ? p->min_n : 2;
    if (p->paired && b->n > 1 && c->n > 1) {
        int *ob = key_order(b);
        int *oc = key_order(c);
        px      = xmalloc((size_t)b->n * sizeof *px);
        py      = xmalloc((size_t)b->n * sizeof *py);
        qx      = xmalloc((size_t)b->n * sizeof *qx);
        qy      = xmalloc((size_t)b->n * sizeof *qy);
        for (int i = 0; i < b->n; i++) {
            int j = find_key(c, oc, b->keys[ob[i]]);
            if (j < 0) continue;
            px[n_common] = b->x[ob[i]];
            py[n_common] = b->y[ob[i]];
            qx[n_common] = c->x[j];
            qy[n_common] = c->y[j];
            n_common++;
        }
        free(ob);
        free(oc);
    }
    /* paired on enough common units, or on all of them when every unit of the smaller side
     * is common (then pairing loses nothing; too few stays too few) */
    int all_common = n_common == (b->n < c->n ? b->n : c->n);
    if (n_common >= 2 && (n_common >= min_common || all_common)) {
        struct stats_sample sb = {px, b->stat == STATS_PEARSON ? py : NULL, n_common};
        struct stats_sample sc = {qx, c->stat == STATS_PEARSON ? qy : NULL, n_common};
        out->paired   = 1;
        out->n_paired = n_common;
        out->base     = stats_eval(b->stat, &sb);
        out->cand     = stats_eval(b->stat, &sc);
        stats_bootstrap_diff(b->stat, &sb, &sc, 1, p->n_boot, &r, &out->diff);
    } else {
        struct stats_sample sb = {b->x, b->stat == STATS_PEARSON ? b->y : NULL, b->n};
        struct stats_sample sc = {c->x, c->stat == STATS_PEARSON ? c->y : NULL, c->n};
        out->base = stats_eval(b->stat, &sb);
        out->cand = stats_eval(b->stat, &sc);
        if (b->n > 1 && c->n > 1) stats_bootstrap_diff(b->stat, &sb, &sc, 0, p->n_boot, &r, &out->diff);
        else out->diff.est = out->cand - out->base;
    }
    free(px);
    free(py);
    free(qx);
    free(qy);

    if (isnan(out->diff.est)) return;
    double scale = out->relative ? fabs(out->base) : 1.0;
    if (out->relative && scale == 0) scale = 1.0;
    double imp = out->dir * out->diff.est / scale;
    /* the interval in improvement terms (dir may flip it) */
    double ilo = out->dir > 0 ? out->diff.lo : -out->diff.hi;
    double ihi = out->dir > 0 ? out->diff.hi : -out->diff.lo;
    int    has_ci = !isnan(ilo) && !isnan(ihi);
    int    n_used = out->paired ? out->n_paired : (b->n < c->n ? b->n : c->n);
    if (!b->aggregate && n_used < p->min_n) {
        out->verdict = CMP_VERDICT_TOO_FEW;
        return;
    }
    /* units without an interval (every replicate undefined) give no verdict either way */
    int sure = b->aggregate || has_ci;
    if (imp < -out->threshold && sure && (!has_ci || ihi < 0)) out->verdict = CMP_VERDICT_WORSE;
    else if (imp > out->threshold && sure && (!has_ci || ilo > 0))
        out->verdict = CMP_VERDICT_BETTER;
    else out->verdict = CMP_VERDICT_SAME;
}
