/*
 * compare_run — `evalrun compare` as a whole: two runs loaded, checked for comparability,
 * compared metric by metric, printed as a table or JSON, and the verdict as a result code
 * (see compare.h, cmp_main).
 */
#include "evals/compare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"

/* name matches pattern when equal, or when pattern is a dotted prefix of it. */
static int metric_matches(const char *name, const char *pattern) {
    size_t n = strlen(pattern);
    if (strcmp(name, pattern) == 0) return 1;
    return strncmp(name, pattern, n) == 0 && (name[n] == '.' || pattern[n - 1] == '.');
}

struct thr_rule {
    const char *pattern; /* NULL: every metric */
    double      value;
};

static int parse_thresholds(const struct strlist *l, struct thr_rule **out, struct ev_err *err) {
    struct thr_rule *r = xcalloc((size_t)(l->n ? l->n : 1), sizeof *r);
    for (int i = 0; i < l->n; i++) {
        const char *v = l->v[i], *eq = strchr(v, '=');
        const char *num = eq ? eq + 1 : v;
        if (eq && eq == v) {
            free(r);
            return ev_fail(err, EV_EUSAGE, "--threshold '%s': expected T or METRIC=T", v);
        }
        if (parse_double(num, &r[i].value) != EV_OK || !(r[i].value >= 0) ||
            isinf(r[i].value)) {
            free(r);
            return ev_fail(err, EV_EUSAGE,
                           "--threshold '%s': expected a number >= 0 (T or METRIC=T)", v);
        }
        r[i].pattern = eq ? xasprintf("%.*s", (int)(eq - v), v) : NULL;
    }
    *out = r;
    return EV_OK;
}

static void free_thresholds(struct thr_rule *r, int n) {
    if (!r) return;
    for (int i = 0; i < n; i++) free((char *)r[i].pattern);
    free(r);
}

/* The threshold for name: the last rule that matches (NAN: the metric's default). */
static double threshold_for(const struct thr_rule *r, int n, const char *name) {
    double t = NAN;
    for (int i = 0; i < n; i++)
        if (!r[i].pattern || metric_matches(name, r[i].pattern)) t = r[i].value;
    return t;
}

static void fmt_num(char *buf, size_t n, double v) {
    if (isnan(v)) snprintf(buf, n, "-");
    else snprintf(buf, n, "%.4f", v);
}

static cJSON *run_json(const struct cmp_run *r, const char *db) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)r->id);
    cJSON_AddStringToObject(o, "kind", r->kind);
    if (r->tag) cJSON_AddStringToObject(o, "tag", r->tag);
    else cJSON_AddNullToObject(o, "tag");
    cJSON_AddStringToObject(o, "status", r->status);
    if (r->sae_hash) cJSON_AddStringToObject(o, "sae_hash", r->sae_hash);
    else cJSON_AddNullToObject(o, "sae_hash");
    cJSON_AddStringToObject(o, "db", db);
    const struct runinfo_grades *g = &r->grades;
    cJSON_AddStringToObject(o, "grader_kind", g->kind);
    cJSON_AddStringToObject(o, "grader_names", g->names);
    cJSON_AddNumberToObject(o, "grades_ok", (double)g->n_ok);
    cJSON_AddNumberToObject(o, "grades_unparsed", (double)g->n_unparsed);
    cJSON_AddNumberToObject(o, "grades_skipped", (double)g->n_skipped);
    cJSON_AddNumberToObject(o, "grades_failed", (double)g->n_error);
    return o;
}

static void add_num(cJSON *o, const char *k, double v) {
    if (isnan(v)) cJSON_AddNullToObject(o, k);
    else cJSON_AddNumberToObject(o, k, v);
}

/* The specificity.interval.NN rows in interval order wherever they stand (a candidate's extra
 * intervals come after the baseline's). */
static void sort_intervals(struct cmp_result *res, int n) {
    static const char pre[] = "specificity.interval.";
    for (int i = 0; i < n; i++) {
        if (strncmp(res[i].name, pre, sizeof pre - 1) != 0) continue;
        for (int j = i + 1; j < n; j++)
            if (strncmp(res[j].name, pre, sizeof pre - 1) == 0 &&
                strcmp(res[j].name, res[i].name) < 0) {
                struct cmp_result t = res[i];
                res[i]              = res[j];
                res[j]              = t;
            }
    }
}

static void print_run_line(const char *side, const struct cmp_run *r) {
    const struct runinfo_grades *g = &r->grades;
    printf("%-9s run %lld%s%s%s: ", side, (long long)r->id, r->tag ? " (" : "",
           r->tag ? r->tag : "", r->tag ? ")" : "");
    if (*g->kind)
        printf("graded by %s %s; %lld parsed, %lld unparsed, %lld skipped, %lld failed\n", g->kind,
               *g->names ? g->names : "-", (long long)g->n_ok, (long long)g->n_unparsed,
               (long long)g->n_skipped, (long long)g->n_error);
    else printf("no grades\n");
}

/* The table. Paired mode (same SAE): n paired, the paired means, the interval of the paired
 * difference. Unpaired: each side's n and mean, the interval of the difference. */
static void print_text(const struct cmp_run *rb, const struct cmp_run *rc,
                       const struct cmp_params *p, const struct cmp_result *res, int n_res,
                       const char *mismatch) {
    int n_worse = 0, n_unpaired = 0, n_subset = 0;
    for (int i = 0; i < n_res && p->paired; i++) {
        if (!res[i].paired) n_unpaired++;
        else if (res[i].n_paired < res[i].n_base || res[i].n_paired < res[i].n_cand) n_subset++;
    }
    printf("compare %s runs: baseline %lld%s%s%s vs candidate %lld%s%s%s; %s%s\n", rb->kind,
           (long long)rb->id, rb->tag ? " (" : "", rb->tag ? rb->tag : "", rb->tag ? ")" : "",
           (long long)rc->id, rc->tag ? " (" : "", rc->tag ? rc->tag : "", rc->tag ? ")" : "",
           p->paired ? "same SAE: paired per item" : "different SAEs: distributions compared",
           n_unpaired ? " (rows marked * have too few items in common: two samples)" : "");
    print_run_line("baseline", rb);
    print_run_line("candidate", rc);
    if (mismatch)
        printf("!! WARNING: NOT COMPARABLE (--allow-mismatch): %s\n"
               "!! differences below may come from that, not from the SAE\n",
               mismatch);
    if (p->paired)
        printf("%-28s %4s %8s %10s %10s %10s  %-21s %9s  %s\n", "metric", "dir", "n_paired",
               "baseline", "candidate", "diff",
               n_unpaired ? "95% CI (diff)" : "95% CI (paired diff)", "threshold", "verdict");
    else
        printf("%-28s %4s %6s %10s %6s %10s %10s  %-21s %9s  %s\n", "metric", "dir", "n_b",
               "baseline", "n_c", "candidate", "diff", "95% CI", "threshold", "verdict");
    for (int i = 0; i < n_res; i++) {
        const struct cmp_result *r = &res[i];
        char b[32], c[32], d[32], lo[32], hi[32], ci[80], th[32], np[48];
        fmt_num(b, sizeof b, r->base);
        fmt_num(c, sizeof c, r->cand);
        fmt_num(d, sizeof d, r->diff.est);
        fmt_num(lo, sizeof lo, r->diff.lo);
        fmt_num(hi, sizeof hi, r->diff.hi);
        if (isnan(r->diff.lo)) snprintf(ci, sizeof ci, "-");
        else snprintf(ci, sizeof ci, "[%s, %s]", lo, hi);
        snprintf(th, sizeof th, "%g%s", r->threshold, r->relative ? "x" : "");
        if (r->verdict == CMP_VERDICT_WORSE) n_worse++;
        if (p->paired) {
            if (r->paired) snprintf(np, sizeof np, "%d", r->n_paired);
            else snprintf(np, sizeof np, "%d/%d*", r->n_base, r->n_cand);
            printf("%-28s %4s %8s %10s %10s %10s  %-21s %9s  %s\n", r->name,
                   r->dir > 0 ? "up" : "down", np, b, c, d, ci, th, cmp_verdict_name(r->verdict));
        } else {
            printf("%-28s %4s %6d %10s %6d %10s %10s  %-21s %9s  %s\n", r->name,
                   r->dir > 0 ? "up" : "down", r->n_base, b, r->n_cand, c, d, ci, th,
                   cmp_verdict_name(r->verdict));
        }
    }
    if (n_subset) { /* a paired mean is over the common items only: say of how many */
        printf("paired on the items both runs hold (n_paired of baseline/candidate units):");
        for (int i = 0; i < n_res; i++)
            if (res[i].paired && (res[i].n_paired < res[i].n_base ||
                                  res[i].n_paired < res[i].n_cand))
                printf(" %s %d of %d/%d;", res[i].name, res[i].n_paired, res[i].n_base,
                       res[i].n_cand);
        printf(" the means above are over those items\n");
    }
    if (n_unpaired)
        printf("* not paired (fewer than %d items in common): baseline/candidate n, the means and "
               "the interval over all units of each side\n",
               p->min_n > 2 ? p->min_n : 2);
    if (n_worse) {
        printf("regressed (%d):", n_worse);
        for (int i = 0; i < n_res; i++)
            if (res[i].verdict == CMP_VERDICT_WORSE) printf(" %s", res[i].name);
        printf("\n");
    } else {
        printf("no metric is worse than its threshold\n");
    }
}

/* Each --metric names at least one metric of either side: EV_EUSAGE with the list if not. */
static int check_metric_names(const struct cmp_config *c, const struct cmp_run *rb,
                              const struct cmp_metrics *mb, const struct cmp_metrics *mc,
                              struct ev_err *err) {
    for (int i = 0; i < c->metrics->n; i++) {
        int hit = 0;
        for (int j = 0; j < mb->n && !hit; j++) hit = metric_matches(mb->m[j].name, c->metrics->v[i]);
        for (int j = 0; j < mc->n && !hit; j++) hit = metric_matches(mc->m[j].name, c->metrics->v[i]);
        if (hit) continue;
        struct sbuf names;
        sbuf_init(&names);
        for (int j = 0; j < mb->n; j++) sbuf_addf(&names, "%s%s", j ? ", " : "", mb->m[j].name);
        int rc = ev_fail(err, EV_EUSAGE, "--metric '%s': %s runs have no such metric (they have %s)",
                         c->metrics->v[i], rb->kind, names.buf ? names.buf : "none");
        sbuf_release(&names);
        return rc;
    }
    return EV_OK;
}

int cmp_metrics_compare_all(const struct cmp_metrics *mb, const struct cmp_metrics *mc,
                            const struct strlist *metrics, const struct strlist *thr,
                            const struct cmp_params *p, struct cmp_result **out, int *n_out,
                            struct ev_err *err) {
    struct thr_rule *rules = NULL;
    int              rc = thr ? parse_thresholds(thr, &rules, err) : EV_OK, n_res = 0;
    if (rc != EV_OK) return rc;
    struct cmp_result *res = xcalloc((size_t)(mb->n + mc->n + 1), sizeof *res);
    /* the union of both sides' metrics, in the baseline's order, then the candidate's extra */
    for (int side = 0; side < 2; side++) {
        const struct cmp_metrics *ms = side ? mc : mb;
        for (int j = 0; j < ms->n; j++) {
            const struct cmp_metric *m = &ms->m[j];
            if (side && cmp_metrics_find(mb, m->name)) continue;
            int want = !metrics || metrics->n == 0;
            for (int i = 0; metrics && i < metrics->n && !want; i++)
                want = metric_matches(m->name, metrics->v[i]);
            if (!want) continue;
            struct cmp_metric        empty = *m;
            const struct cmp_metric *b = side ? &empty : m;
            const struct cmp_metric *c = side ? m : cmp_metrics_find(mc, m->name);
            empty.n = 0;
            if (!c) c = &empty;
            cmp_metric_compare(b, c, threshold_for(rules, thr ? thr->n : 0, m->name), p,
                               &res[n_res]);
            n_res++;
        }
    }
    sort_intervals(res, n_res);
    free_thresholds(rules, thr ? thr->n : 0);
    *out = res;
    *n_out = n_res;
    return EV_OK;
}

static void print_json(const struct cmp_config *c, const struct cmp_run *rb,
                       const struct cmp_run *rc, const struct cmp_params *p,
                       const struct cmp_result *res, int n_res, int n_diffs, const char *diffs) {
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "baseline", run_json(rb, c->baseline_db ? c->baseline_db : c->db_path));
    cJSON_AddItemToObject(doc, "candidate", run_json(rc, c->db_path));
    cJSON_AddBoolToObject(doc, "same_sae", p->paired);
    cJSON_AddNumberToObject(doc, "bootstrap", (double)p->n_boot);
    cJSON_AddNumberToObject(doc, "min_n", (double)p->min_n);
    cJSON *mm = cJSON_AddArrayToObject(doc, "mismatches");
    if (n_diffs) {
        /* one entry per "; "-separated difference */
        char *dup = xstrdup(diffs), *s0 = dup;
        for (char *sep; s0; s0 = sep ? sep + 2 : NULL) {
            if ((sep = strstr(s0, "; "))) *sep = 0;
            cJSON_AddItemToArray(mm, cJSON_CreateString(s0));
        }
        free(dup);
    }
    cJSON_AddNumberToObject(doc, "seed", (double)p->seed);
    cJSON *arr = cJSON_AddArrayToObject(doc, "metrics");
    cJSON *reg = cJSON_CreateArray();
    for (int i = 0; i < n_res; i++) {
        const struct cmp_result *r = &res[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "metric", r->name);
        cJSON_AddStringToObject(o, "direction", r->dir > 0 ? "higher" : "lower");
        add_num(o, "baseline", r->base);
        add_num(o, "candidate", r->cand);
        add_num(o, "diff", r->diff.est);
        add_num(o, "ci_lo", r->diff.lo);
        add_num(o, "ci_hi", r->diff.hi);
        cJSON_AddNumberToObject(o, "n_baseline", r->n_base);
        cJSON_AddNumberToObject(o, "n_candidate", r->n_cand);
        cJSON_AddBoolToObject(o, "paired", r->paired);
        cJSON_AddNumberToObject(o, "n_paired", r->n_paired);
        cJSON_AddNumberToObject(o, "threshold", r->threshold);
        cJSON_AddBoolToObject(o, "relative", r->relative);
        cJSON_AddStringToObject(o, "verdict", cmp_verdict_name(r->verdict));
        cJSON_AddItemToArray(arr, o);
        if (r->verdict == CMP_VERDICT_WORSE) cJSON_AddItemToArray(reg, cJSON_CreateString(r->name));
    }
    cJSON_AddItemToObject(doc, "regressed", reg);
    char *txt = json_print_pretty(doc);
    printf("%s\n", txt);
    free(txt);
    json_free(doc);
}

/* The two runs, loaded and checked: same kind, comparable unless allow_mismatch. */
static int load_pair(const struct cmp_config *c, struct store *bs, struct store *sc,
                     struct cmp_run *rb, struct cmp_run *rcand, struct sbuf *diffs, int *n_diffs,
                     struct ev_err *err) {
    int rc;
    if ((rc = cmp_run_load(bs, c->baseline, rb, err)) != EV_OK) return rc;
    if ((rc = cmp_run_load(sc, c->candidate, rcand, err)) != EV_OK) return rc;
    if (strcmp(rb->kind, rcand->kind) != 0)
        return ev_fail(err, EV_EFAIL,
                       "runs of different kinds cannot be compared: baseline %s is a '%s' run, "
                       "candidate %s a '%s' run",
                       c->baseline, rb->kind, c->candidate, rcand->kind);
    *n_diffs = cmp_runs_differences(rb, rcand, diffs);
    if (*n_diffs && !c->allow_mismatch)
        return ev_fail(err, EV_EFAIL, "runs %s and %s are not comparable: %s (--allow-mismatch to "
                       "compare anyway)", c->baseline, c->candidate, diffs->buf);
    if (*n_diffs)
        ev_log(EV_QUIET, "evalrun: WARNING: comparing runs that are not comparable: %s",
               diffs->buf);
    return EV_OK;
}

int cmp_main(const struct cmp_config *c, struct ev_err *err) {
    struct store      *sb = NULL, *sc = NULL;
    struct cmp_run     rb = {0}, rcand = {0};
    struct cmp_metrics mb = {0}, mc = {0};
    struct cmp_result *res = NULL;
    struct sbuf        diffs;
    int                n_res = 0, n_worse = 0, n_diffs = 0, rc;
    sbuf_init(&diffs);
    struct thr_rule *rules = NULL; /* a malformed threshold is a usage error before anything */
    if (c->thresholds && (rc = parse_thresholds(c->thresholds, &rules, err)) != EV_OK) goto out;
    free_thresholds(rules, c->thresholds->n);
    const int ro = STORE_READONLY | STORE_UPGRADE; /* compare only reads */
    if ((rc = store_open(c->db_path, ro, &sc, err)) != EV_OK) goto out;
    if (c->baseline_db && (rc = store_open(c->baseline_db, ro, &sb, err)) != EV_OK) goto out;
    struct store *bs = sb ? sb : sc;
    if ((rc = load_pair(c, bs, sc, &rb, &rcand, &diffs, &n_diffs, err)) != EV_OK) goto out;
    if ((rc = cmp_metrics_load(bs, &rb, &mb, err)) != EV_OK) goto out;
    if ((rc = cmp_metrics_load(sc, &rcand, &mc, err)) != EV_OK) goto out;
    if ((rc = check_metric_names(c, &rb, &mb, &mc, err)) != EV_OK) goto out;
    struct cmp_params p = cmp_default_params();
    p.n_boot = c->n_boot;
    p.seed   = c->seed;
    p.min_n  = c->min_n;
    p.paired = rb.sae_hash && rcand.sae_hash && strcmp(rb.sae_hash, rcand.sae_hash) == 0;
    rc = cmp_metrics_compare_all(&mb, &mc, c->metrics, c->thresholds, &p, &res, &n_res, err);
    if (rc != EV_OK) goto out;
    for (int i = 0; i < n_res; i++) n_worse += res[i].verdict == CMP_VERDICT_WORSE;
    if (c->json) print_json(c, &rb, &rcand, &p, res, n_res, n_diffs, diffs.buf);
    else print_text(&rb, &rcand, &p, res, n_res, n_diffs ? diffs.buf : NULL);
    if (n_worse)
        rc = ev_fail(err, EV_EREGRESS, "%d metric%s worse than %s threshold", n_worse,
                     n_worse == 1 ? "" : "s", n_worse == 1 ? "its" : "their");
out:
    free(res);
    cmp_metrics_release(&mb);
    cmp_metrics_release(&mc);
    cmp_run_release(&rb);
    cmp_run_release(&rcand);
    store_close(sb);
    store_close(sc);
    sbuf_release(&diffs);
    return rc;
}
