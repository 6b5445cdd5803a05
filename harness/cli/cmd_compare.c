/*
 * cmd_compare — `evalrun compare`: a candidate run against a baseline, metric by metric, with
 * bootstrap intervals and verdicts; exit 3 when a metric regressed (a CI gate). See
 * evals/compare.h and docs/reports.md.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/compare.h"
#include "base/json.h"
#include "store/store.h"

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
    int n_worse = 0, n_unpaired = 0;
    printf("compare %s runs: baseline %lld%s%s%s vs candidate %lld%s%s%s; %s\n", rb->kind,
           (long long)rb->id, rb->tag ? " (" : "", rb->tag ? rb->tag : "", rb->tag ? ")" : "",
           (long long)rc->id, rc->tag ? " (" : "", rc->tag ? rc->tag : "", rc->tag ? ")" : "",
           p->paired ? "same SAE: paired per item" : "different SAEs: distributions compared");
    print_run_line("baseline", rb);
    print_run_line("candidate", rc);
    if (mismatch)
        printf("!! WARNING: NOT COMPARABLE (--allow-mismatch): %s\n"
               "!! differences below may come from that, not from the SAE\n",
               mismatch);
    if (p->paired)
        printf("%-28s %4s %8s %10s %10s %10s  %-21s %9s  %s\n", "metric", "dir", "n_paired",
               "baseline", "candidate", "diff", "95% CI (paired diff)", "threshold", "verdict");
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
            else {
                snprintf(np, sizeof np, "%d/%d*", r->n_base, r->n_cand);
                n_unpaired++;
            }
            printf("%-28s %4s %8s %10s %10s %10s  %-21s %9s  %s\n", r->name,
                   r->dir > 0 ? "up" : "down", np, b, c, d, ci, th, cmp_verdict_name(r->verdict));
        } else {
            printf("%-28s %4s %6d %10s %6d %10s %10s  %-21s %9s  %s\n", r->name,
                   r->dir > 0 ? "up" : "down", r->n_base, b, r->n_cand, c, d, ci, th,
                   cmp_verdict_name(r->verdict));
        }
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

int cmd_compare(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "compare",
        "--baseline RUN --candidate RUN",
        "Compares a candidate run with a baseline run of the same kind (runs by id or tag;\n"
        "the baseline may live in another database file). For each metric: both values, the\n"
        "difference with a seeded bootstrap 95% interval (paired per item when both runs used\n"
        "the same SAE), and a verdict better / same / worse against its threshold, or\n"
        "'n/a (too few)' below --min-n units. Runs that differ in grader kind or model, prompt\n"
        "template, SAE hook, model, features set or per-interval count are refused (exit 1)\n"
        "unless --allow-mismatch. Exit status 3 when a metric is worse by more than its\n"
        "threshold with its interval excluding zero (a CI gate), 0 when none is.\n"
        "Metrics, directions and default thresholds: docs/reports.md."};
    const char    *baseline = NULL, *candidate = NULL, *baseline_db = NULL;
    struct strlist thr = {0}, metrics = {0};
    long           n_boot = 2000, min_n = 20;
    int            allow_mismatch = 0;
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_SEED | COMMON_JSON);
    const struct opt opts[] = {
        {"baseline", OPT_STR, &baseline, "RUN", "baseline run: id or tag"},
        {"candidate", OPT_STR, &candidate, "RUN", "candidate run: id or tag"},
        {"baseline-db", OPT_STR, &baseline_db, "PATH",
         "database of the baseline (default: the --db of the candidate)"},
        {"threshold", OPT_STRS, &thr, "T|METRIC=T",
         "worse-by threshold for every metric, or for one (repeatable; METRIC may be a prefix "
         "such as specificity.interval)"},
        {"metric", OPT_STRS, &metrics, "M", "only these metrics (repeatable; prefixes allowed)"},
        {"bootstrap", OPT_LONG, &n_boot, "N", "bootstrap replicates (default 2000)"},
        {"min-n", OPT_LONG, &min_n, "N",
         "fewest units per side (or paired) for a verdict; fewer: n/a (too few) (default 20)"},
        {"allow-mismatch", OPT_FLAG, &allow_mismatch, NULL,
         "compare runs that differ in grader, template, hook, model, features or per-interval "
         "count (warned about loudly)"},
        COMMON_OPTIONS(co),
        {0},
    };
    struct store      *sb = NULL, *sc = NULL;
    struct cmp_run     rb = {0}, rcand = {0};
    struct cmp_metrics mb = {0}, mc = {0};
    struct thr_rule   *rules = NULL;
    struct cmp_result *res = NULL;
    cJSON             *doc = NULL;
    struct sbuf        diffs;
    int                npos = 0, n_res = 0, n_worse = 0, n_diffs = 0;
    sbuf_init(&diffs);
    int                rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) goto out;
    if (npos > 0) {
        rc = ev_fail(err, EV_EUSAGE, "compare: unexpected argument '%s'", argv[1]);
        goto out;
    }
    if (!baseline || !candidate) {
        rc = ev_fail(err, EV_EUSAGE, "compare needs --baseline RUN and --candidate RUN");
        goto out;
    }
    if ((rc = args_check_long("--bootstrap", n_boot, 100, 1000000, err)) != EV_OK) goto out;
    if ((rc = args_check_long("--min-n", min_n, 0, 100000000L, err)) != EV_OK) goto out;
    if ((rc = common_opts_check(&co, err)) != EV_OK) goto out;
    if ((rc = args_check_long("--seed", co.seed, 0, 0x7fffffffL, err)) != EV_OK) goto out;
    if ((rc = parse_thresholds(&thr, &rules, err)) != EV_OK) goto out;

    const char *db_b = baseline_db ? baseline_db : cli->db_path;
    const int ro = STORE_READONLY | STORE_UPGRADE; /* compare only reads */
    if ((rc = store_open(cli->db_path, ro, &sc, err)) != EV_OK) goto out;
    if (baseline_db && (rc = store_open(baseline_db, ro, &sb, err)) != EV_OK) goto out;
    struct store *bs = sb ? sb : sc;
    if ((rc = cmp_run_load(bs, baseline, &rb, err)) != EV_OK) goto out;
    if ((rc = cmp_run_load(sc, candidate, &rcand, err)) != EV_OK) goto out;
    if (strcmp(rb.kind, rcand.kind) != 0) {
        rc = ev_fail(err, EV_EFAIL,
                     "runs of different kinds cannot be compared: baseline %s is a '%s' run, "
                     "candidate %s a '%s' run",
                     baseline, rb.kind, candidate, rcand.kind);
        goto out;
    }
    n_diffs = cmp_runs_differences(&rb, &rcand, &diffs);
    if (n_diffs && !allow_mismatch) {
        rc = ev_fail(err, EV_EFAIL, "runs %s and %s are not comparable: %s (--allow-mismatch to "
                     "compare anyway)", baseline, candidate, diffs.buf);
        goto out;
    }
    if (n_diffs)
        fprintf(stderr, "evalrun: WARNING: comparing runs that are not comparable: %s\n",
                diffs.buf);
    if ((rc = cmp_metrics_load(bs, &rb, &mb, err)) != EV_OK) goto out;
    if ((rc = cmp_metrics_load(sc, &rcand, &mc, err)) != EV_OK) goto out;
    for (int i = 0; i < metrics.n; i++) {
        int hit = 0;
        for (int j = 0; j < mb.n && !hit; j++) hit = metric_matches(mb.m[j].name, metrics.v[i]);
        for (int j = 0; j < mc.n && !hit; j++) hit = metric_matches(mc.m[j].name, metrics.v[i]);
        if (!hit) {
            struct sbuf names;
            sbuf_init(&names);
            for (int j = 0; j < mb.n; j++) sbuf_addf(&names, "%s%s", j ? ", " : "", mb.m[j].name);
            rc = ev_fail(err, EV_EUSAGE, "--metric '%s': %s runs have no such metric (they have %s)",
                         metrics.v[i], rb.kind, names.buf ? names.buf : "none");
            sbuf_release(&names);
            goto out;
        }
    }

    /* the union of both sides' metrics, in the baseline's order, then the candidate's extra */
    struct cmp_params p = cmp_default_params();
    p.n_boot = (int)n_boot;
    p.seed   = (uint64_t)co.seed;
    p.min_n  = (int)min_n;
    p.paired = rb.sae_hash && rcand.sae_hash && strcmp(rb.sae_hash, rcand.sae_hash) == 0;
    res = xcalloc((size_t)(mb.n + mc.n + 1), sizeof *res);
    for (int side = 0; side < 2; side++) {
        const struct cmp_metrics *ms = side ? &mc : &mb;
        for (int j = 0; j < ms->n; j++) {
            const struct cmp_metric *m = &ms->m[j];
            if (side && cmp_metrics_find(&mb, m->name)) continue;
            int want = metrics.n == 0;
            for (int i = 0; i < metrics.n && !want; i++) want = metric_matches(m->name, metrics.v[i]);
            if (!want) continue;
            struct cmp_metric        empty = *m;
            const struct cmp_metric *b = side ? &empty : m;
            const struct cmp_metric *c = side ? m : cmp_metrics_find(&mc, m->name);
            empty.n = 0;
            if (!c) {
                empty = *m;
                empty.n = 0;
                c = &empty;
            }
            cmp_metric_compare(b, c, threshold_for(rules, thr.n, m->name), &p, &res[n_res]);
            if (res[n_res].verdict == CMP_VERDICT_WORSE) n_worse++;
            n_res++;
        }
    }

    sort_intervals(res, n_res);

    if (co.json) {
        doc = cJSON_CreateObject();
        cJSON_AddItemToObject(doc, "baseline", run_json(&rb, db_b));
        cJSON_AddItemToObject(doc, "candidate", run_json(&rcand, cli->db_path));
        cJSON_AddBoolToObject(doc, "same_sae", p.paired);
        cJSON_AddNumberToObject(doc, "bootstrap", (double)n_boot);
        cJSON_AddNumberToObject(doc, "min_n", (double)min_n);
        cJSON *mm = cJSON_AddArrayToObject(doc, "mismatches");
        if (n_diffs) {
            /* one entry per "; "-separated difference */
            char *dup = xstrdup(diffs.buf), *s0 = dup;
            for (char *sep; s0; s0 = sep ? sep + 2 : NULL) {
                if ((sep = strstr(s0, "; "))) *sep = 0;
                cJSON_AddItemToArray(mm, cJSON_CreateString(s0));
            }
            free(dup);
        }
        cJSON_AddNumberToObject(doc, "seed", (double)co.seed);
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
    } else {
        print_text(&rb, &rcand, &p, res, n_res, n_diffs ? diffs.buf : NULL);
    }
    if (n_worse) {
        rc = ev_fail(err, EV_EREGRESS, "%d metric%s worse than %s threshold", n_worse,
                     n_worse == 1 ? "" : "s", n_worse == 1 ? "its" : "their");
        goto out;
    }
    rc = EV_OK;
out:
    json_free(doc);
    free(res);
    free_thresholds(rules, thr.n);
    cmp_metrics_release(&mb);
    cmp_metrics_release(&mc);
    cmp_run_release(&rb);
    cmp_run_release(&rcand);
    store_close(sb);
    store_close(sc);
    sbuf_release(&diffs);
    strlist_release(&thr);
    strlist_release(&metrics);
    return rc;
}
