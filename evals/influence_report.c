/*
 * influence_report — per (feature, scale) summaries of an influence run, the --scale auto
 * pick, and the report's section (see influence_report.h).
 */
#include "evals/influence_report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "evals/report.h"
#include "evals/svg.h"
#include "store/generations.h"
#include "store/influence.h"
#include "store/items.h"
#include "store/runinfo.h"

const double infl_auto_scales[6] = {0.5, 1, 2, 5, 10, 20};

// ---------------------------------------------------------------------------- loading

/* A growable array of doubles. */
struct dvec {
    double *v;
    int     n, cap;
};

static void dv_push(struct dvec *d, double x) {
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 16;
        d->v = xrealloc(d->v, sizeof *d->v * (size_t)d->cap);
    }
    d->v[d->n++] = x;
}

/* What a cell collects before its statistics. */
struct acc {
    struct dvec ll, llb, act, actb, amax, kl, conc, flu;
};

static void acc_free(struct acc *a) {
    free(a->ll.v), free(a->llb.v), free(a->act.v), free(a->actb.v), free(a->amax.v);
    free(a->kl.v), free(a->conc.v), free(a->flu.v);
}

/* A baseline measure (feature, prompt). */
struct base_m {
    int    feature, prompt;
    double ll, act;
};

struct load_ctx {
    struct infl_summary *sm;
    struct acc          *acc;
    struct base_m       *base;
    int                  n_base, cap_base;
};

static int same_scale(double a, double b) { return fabs(a - b) <= 1e-9 * (fabs(a) + 1); }

static int cell_find(const struct infl_summary *sm, int feature, double scale) {
    for (int i = 0; i < sm->n_cells; i++)
        if (sm->cells[i].feature == feature && same_scale(sm->cells[i].scale, scale)) return i;
    return -1;
}

static int on_generation(void *ud, const struct generation_row *g) {
    struct load_ctx     *c = ud;
    struct infl_summary *sm = c->sm;
    if (g->feature < 0) return EV_OK;
    int i = cell_find(sm, g->feature, g->scale);
    if (i < 0) {
        sm->cells = xrealloc(sm->cells, sizeof *sm->cells * (size_t)(sm->n_cells + 1));
        c->acc = xrealloc(c->acc, sizeof *c->acc * (size_t)(sm->n_cells + 1));
        i = sm->n_cells++;
        memset(&sm->cells[i], 0, sizeof sm->cells[i]);
        memset(&c->acc[i], 0, sizeof c->acc[i]);
        sm->cells[i].feature = g->feature;
        sm->cells[i].scale = g->scale;
        sm->cells[i].max_act = g->max_act;
        sm->cells[i].clamp = g->value;
    }
    sm->cells[i].n_gen++;
    if (!sm->cells[i].example && g->text) sm->cells[i].example = xstrdup(g->text);
    return EV_OK;
}

static const struct base_m *base_find(const struct load_ctx *c, int feature, int prompt) {
    for (int i = 0; i < c->n_base; i++)
        if (c->base[i].feature == feature && c->base[i].prompt == prompt) return &c->base[i];
    return NULL;
}

/* Rows come by feature, its baselines first (influence_measures_each's order): the baselines
 * kept are those of the current feature. */
static int on_measure(void *ud, const struct influence_measure_row *m) {
    struct load_ctx *c = ud;
    if (c->n_base > 0 && c->base[0].feature != m->feature) c->n_base = 0; /* next feature */
    if (isnan(m->scale)) {
        if (c->n_base == c->cap_base) {
            c->cap_base = c->cap_base ? 2 * c->cap_base : 64;
            c->base = xrealloc(c->base, sizeof *c->base * (size_t)c->cap_base);
        }
        c->base[c->n_base++] = (struct base_m){m->feature, m->prompt, m->loglik, m->act_mean};
        return EV_OK;
    }
    int                  i = cell_find(c->sm, m->feature, m->scale);
    const struct base_m *b = base_find(c, m->feature, m->prompt);
    if (i < 0 || !b) return EV_OK; /* its baseline is not measured yet */
    struct acc *a = &c->acc[i];
    dv_push(&a->ll, m->loglik);
    dv_push(&a->llb, b->ll);
    dv_push(&a->act, m->act_mean);
    dv_push(&a->actb, b->act);
    dv_push(&a->amax, m->act_max);
    dv_push(&a->kl, m->kl_mean);
    return EV_OK;
}

/* Grades: "f<F>/s<K>/p<P>/concept" and ".../fluency" (one request answers both). */
static int on_grade(void *ud, const struct items_graded_row *r) {
    struct load_ctx *c = ud;
    int              f, p;
    double           k;
    char             what[16];
    if (!r->graded || sscanf(r->key, "f%d/s%lf/p%d/%15s", &f, &k, &p, what) != 4) return EV_OK;
    int i = cell_find(c->sm, f, k);
    if (i < 0) return EV_OK;
    int conc = strcmp(what, "concept") == 0;
    if (strcmp(r->parse_status, "ok") == 0 && r->score >= 0) {
        dv_push(conc ? &c->acc[i].conc : &c->acc[i].flu, r->score);
    } else if (conc) {
        if (strcmp(r->parse_status, "skipped") == 0) c->sm->cells[i].skipped++;
        else if (strcmp(r->parse_status, "unparsed") == 0) c->sm->cells[i].unparsed++;
    }
    return EV_OK;
}

/* The mean of x with its interval (a paired difference against zeros). */
static void mean_ci(const struct dvec *x, struct rng *r, struct stats_ci *out) {
    double             *zero = xcalloc((size_t)(x->n ? x->n : 1), sizeof *zero);
    struct stats_sample b = {zero, NULL, x->n}, c = {x->v, NULL, x->n};
    stats_bootstrap_diff(STATS_MEAN, &b, &c, 1, 2000, r, out);
    if (x->n < 2) out->lo = out->hi = NAN;
    free(zero);
}

/* cand - base, paired. */
static void diff_ci(const struct dvec *base, const struct dvec *cand, struct rng *r,
                    struct stats_ci *out) {
    struct stats_sample b = {base->v, NULL, base->n}, c = {cand->v, NULL, cand->n};
    stats_bootstrap_diff(STATS_MEAN, &b, &c, 1, 2000, r, out);
    if (base->n < 2) out->lo = out->hi = NAN;
}

static void cell_stats(struct infl_cell *cl, const struct acc *a, struct rng *r) {
    cl->n = a->ll.n;
    cl->ll = stats_mean(a->ll.v, a->ll.n);
    cl->ll_base = stats_mean(a->llb.v, a->llb.n);
    cl->act = stats_mean(a->act.v, a->act.n);
    cl->act_base = stats_mean(a->actb.v, a->actb.n);
    cl->act_max = stats_mean(a->amax.v, a->amax.n);
    diff_ci(&a->ll, &a->llb, r, &cl->drop);
    diff_ci(&a->actb, &a->act, r, &cl->gain);
    mean_ci(&a->kl, r, &cl->kl);
    cl->n_llm = a->conc.n < a->flu.n ? a->conc.n : a->flu.n;
    mean_ci(&a->conc, r, &cl->concept);
    mean_ci(&a->flu, r, &cl->fluency);
}

static int cmp_cell(const void *x, const void *y) {
    const struct infl_cell *a = x, *b = y;
    if (a->feature != b->feature) return a->feature < b->feature ? -1 : 1;
    return (a->scale > b->scale) - (a->scale < b->scale);
}

static void pick_scales(struct infl_summary *sm) {
    for (int i = 0; i < sm->n_cells; i++) {
        int f = sm->cells[i].feature, j = 0;
        while (j < sm->n_features && sm->features[j] != f) j++;
        if (j == sm->n_features) {
            sm->features = xrealloc(sm->features, sizeof *sm->features * (size_t)(j + 1));
            sm->pick = xrealloc(sm->pick, sizeof *sm->pick * (size_t)(j + 1));
            sm->features[j] = f;
            sm->pick[j] = -1;
            sm->n_features++;
        }
        const struct infl_cell *c = &sm->cells[i];
        /* cells are sorted by scale: the last one that keeps fluency wins */
        if (c->scale > 0 && c->n > 0 && c->drop.est <= sm->fluency_drop) sm->pick[j] = i;
    }
}

int infl_summary_load(struct store *s, int64_t run_id, double fluency_drop,
                      struct infl_summary *out, struct ev_err *err) {
    struct load_ctx       c = {.sm = out};
    struct runinfo_grades gr;
    memset(out, 0, sizeof *out);
    out->fluency_drop = fluency_drop;
    int rc = generations_each(s, run_id, on_generation, &c, err);
    if (rc == EV_OK) rc = influence_measures_each(s, run_id, on_measure, &c, err);
    if (rc == EV_OK) rc = runinfo_grades_load(s, run_id, &gr, err);
    if (rc == EV_OK) {
        out->grader_kind = strcmp(gr.kind, "human") == 0 ? "human" : "llm";
        rc = items_graded(s, run_id, "influence", out->grader_kind, ITEMS_BY_ID, on_grade, &c,
                          err);
    }
    struct rng r;
    rng_seed(&r, 17);
    for (int i = 0; i < out->n_cells; i++) {
        if (rc == EV_OK) cell_stats(&out->cells[i], &c.acc[i], &r);
        acc_free(&c.acc[i]);
    }
    /* sort cells and keep nothing else tied to their order */
    qsort(out->cells, (size_t)out->n_cells, sizeof *out->cells, cmp_cell);
    if (rc == EV_OK) pick_scales(out);
    free(c.acc);
    free(c.base);
    if (rc != EV_OK) infl_summary_release(out);
    return rc;
}

void infl_summary_release(struct infl_summary *sm) {
    for (int i = 0; i < sm->n_cells; i++) free(sm->cells[i].example);
    free(sm->cells);
    free(sm->features);
    free(sm->pick);
    memset(sm, 0, sizeof *sm);
}

double infl_config_fluency_drop(const char *config_json, int *scale_auto) {
    cJSON        *root = NULL;
    struct ev_err err;
    double        v = INFL_FLUENCY_DROP_DEFAULT;
    if (scale_auto) *scale_auto = 0;
    if (!config_json || json_parse(config_json, strlen(config_json), "config", &root, &err) != EV_OK)
        return v;
    const cJSON *fd = cJSON_GetObjectItemCaseSensitive(root, "fluency_drop");
    const cJSON *sa = cJSON_GetObjectItemCaseSensitive(root, "scale_auto");
    if (cJSON_IsNumber(fd)) v = fd->valuedouble;
    if (scale_auto) *scale_auto = cJSON_IsTrue(sa);
    json_free(root);
    return v;
}

// ---------------------------------------------------------------------------- the report

static void put_ci(struct report_table *t, int row, int col, const struct stats_ci *c, int d) {
    report_table_num(t, row, col, c->est, d);
    report_table_num(t, row, col + 1, c->lo, d);
    report_table_num(t, row, col + 2, c->hi, d);
}

static void measures_table(struct report_section *sec, const struct infl_summary *sm) {
    static const char *const cols[] = {
        "feature", "scale", "clamp", "n", "fluency", "baseline fluency", "fluency drop",
        "drop lo", "drop hi", "concept act", "baseline act", "concept gain", "gain lo",
        "gain hi", "max act", "KL", "KL lo", "KL hi", "graded", "LLM concept", "concept lo",
        "concept hi", "LLM fluency", "fluency lo", "fluency hi", "unparsed", "skipped"};
    struct report_table *t = report_table_add(sec, "Numeric and LLM measures per feature and scale",
                                              cols, (int)(sizeof cols / sizeof cols[0]));
    for (int i = 0; i < sm->n_cells; i++) {
        const struct infl_cell *c = &sm->cells[i];
        int                     r = report_table_row(t);
        char                    buf[64];
        snprintf(buf, sizeof buf, "%d", c->feature);
        report_table_str(t, r, 0, buf);
        snprintf(buf, sizeof buf, "%g", c->scale);
        report_table_str(t, r, 1, buf);
        report_table_num(t, r, 2, c->clamp, 4);
        snprintf(buf, sizeof buf, "%d", c->n);
        report_table_str(t, r, 3, buf);
        report_table_num(t, r, 4, c->ll, 3);
        report_table_num(t, r, 5, c->ll_base, 3);
        put_ci(t, r, 6, &c->drop, 3);
        report_table_num(t, r, 9, c->act, 4);
        report_table_num(t, r, 10, c->act_base, 4);
        put_ci(t, r, 11, &c->gain, 4);
        report_table_num(t, r, 14, c->act_max, 4);
        put_ci(t, r, 15, &c->kl, 4);
        snprintf(buf, sizeof buf, "%d", c->n_llm);
        report_table_str(t, r, 18, buf);
        put_ci(t, r, 19, &c->concept, 2);
        put_ci(t, r, 22, &c->fluency, 2);
        snprintf(buf, sizeof buf, "%d", c->unparsed);
        report_table_str(t, r, 25, buf);
        snprintf(buf, sizeof buf, "%d", c->skipped);
        report_table_str(t, r, 26, buf);
    }
}

static void auto_table(struct report_section *sec, const struct infl_summary *sm) {
    static const char *const cols[] = {"feature", "scale", "fluency drop", "concept gain",
                                       "gain lo", "gain hi", "LLM concept", "n"};
    char title[128];
    snprintf(title, sizeof title, "Largest scale with a fluency drop within %g nats per token",
             sm->fluency_drop);
    struct report_table *t = report_table_add(sec, title, cols, 8);
    for (int j = 0; j < sm->n_features; j++) {
        int  r = report_table_row(t);
        char buf[64];
        snprintf(buf, sizeof buf, "%d", sm->features[j]);
        report_table_str(t, r, 0, buf);
        if (sm->pick[j] < 0) {
            report_table_str(t, r, 1, "none");
            continue;
        }
        const struct infl_cell *c = &sm->cells[sm->pick[j]];
        snprintf(buf, sizeof buf, "%g", c->scale);
        report_table_str(t, r, 1, buf);
        report_table_num(t, r, 2, c->drop.est, 3);
        put_ci(t, r, 3, &c->gain, 4);
        report_table_num(t, r, 6, c->concept.est, 2);
        snprintf(buf, sizeof buf, "%d", c->n);
        report_table_str(t, r, 7, buf);
    }
}

/* Concept gain against fluency drop, one point per (feature, scale), coloured by scale. */
static void gain_figure(struct report_section *sec, const struct infl_summary *sm) {
    int     n = sm->n_cells, ng = 0;
    double *x = xcalloc((size_t)(n ? n : 1), sizeof *x), *y = xcalloc((size_t)(n ? n : 1), sizeof *y);
    double *gs = xcalloc((size_t)(n ? n : 1), sizeof *gs);
    int    *g = xcalloc((size_t)(n ? n : 1), sizeof *g);
    for (int i = 0; i < n; i++) {
        int k = 0;
        while (k < ng && !same_scale(gs[k], sm->cells[i].scale)) k++;
        if (k == ng) gs[ng++] = sm->cells[i].scale;
        x[i] = sm->cells[i].drop.est;
        y[i] = sm->cells[i].gain.est;
        g[i] = k;
    }
    char      **names = xcalloc((size_t)(ng ? ng : 1), sizeof *names);
    for (int k = 0; k < ng; k++) names[k] = xasprintf("%gx", gs[k]);
    struct sbuf sb;
    sbuf_init(&sb);
    svg_scatter(&sb, "Concept gain vs fluency drop per scale", x, y, n, g,
                (const char *const *)names, ng, "fluency drop (nats/token, baseline - steered)",
                "concept gain (activation, steered - baseline)", 0);
    report_figure_add(sec, "Concept gain vs fluency drop per scale", &sb);
    for (int k = 0; k < ng; k++) free(names[k]);
    free(names), free(x), free(y), free(gs), free(g);
}

int infl_report_section(struct store *s, struct report *rep, struct ev_err *err) {
    struct infl_summary sm;
    int                 scale_auto = 0;
    double              fd = infl_config_fluency_drop(rep->run.config_json, &scale_auto);
    int                 rc = infl_summary_load(s, rep->run.id, fd, &sm, err);
    if (rc != EV_OK) return rc;
    struct report_section *sec = report_section_add(rep, "Numeric influence measures");
    char                   text[1200];
    snprintf(text, sizeof text,
             "Measured without an LLM on every steered text and its unsteered baseline: "
             "fluency = mean log-likelihood per generated token under the unsteered model "
             "(nats; fluency drop = baseline - steered, paired per prompt); concept act = the "
             "feature's mean activation when the text is re-encoded with no steering (concept "
             "gain = steered - baseline, paired); KL = KL(unsteered || steered) of the "
             "next-token distribution at the steered positions. n = prompts; lo/hi = 95%% "
             "percentile-bootstrap interval (2000 draws; '-' with fewer than 2 prompts). LLM "
             "concept and fluency (0-3) are the %s grades of the same texts. %s",
             sm.grader_kind,
             scale_auto ? "The run swept --scale auto (0.5, 1, 2, 5, 10, 20 x max activation)."
                        : "");
    report_section_text(sec, text);
    if (sm.n_cells == 0) {
        report_section_text(sec, "No measures are stored yet (rerun the influence command).");
    } else {
        measures_table(sec, &sm);
        auto_table(sec, &sm);
        gain_figure(sec, &sm);
    }
    infl_summary_release(&sm);
    return EV_OK;
}
