/*
 * report_explain — the section of an `evalrun explain` run's report: every explainer answer
 * the run holds (one grade per feature asked, evals/describe.h), what became of it, and
 * whether its description is still the feature's stored one (see report.h).
 */
#include "evals/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graders/explain.h"
#include "graders/parse.h"
#include "store/features.h"
#include "store/grades.h"
#include "store/runs.h"

struct expl_ctx {
    struct store        *s;
    int64_t              run_id, sae_id;
    struct report_table *t;
    int                  n_ok, n_unparsed, n_failed;
};

/* One answer as one line of at most 160 bytes (the table is no place for a whole reply). */
static char *one_line(const char *s) {
    char  *o = xasprintf("%.160s%s", s ? s : "", s && strlen(s) > 160 ? "..." : "");
    for (char *c = o; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t') *c = ' ';
    return o;
}

static int expl_row(void *ud, int feature, const char *grader, const char *status,
                    const char *raw) {
    struct expl_ctx *c = ud;
    int              row = report_table_row(c->t), ok = strcmp(status, "ok") == 0;
    char             buf[32], why[160] = "", *desc = NULL, *reply = one_line(raw);
    snprintf(buf, sizeof buf, "%d", feature);
    report_table_str(c->t, row, 0, buf);
    report_table_str(c->t, row, 1, grader);
    if (ok) {
        c->n_ok++;
        report_table_str(c->t, row, 2, "described");
        if (parse_description_why(raw ? raw : "", EXPLAIN_MAX_LEN, &desc, why, sizeof why) !=
            PARSE_OK)
            desc = NULL;
    } else if (strcmp(status, "unparsed") == 0) {
        c->n_unparsed++;
        report_table_str(c->t, row, 2, "unparsed");
        parse_description_why(raw ? raw : "", EXPLAIN_MAX_LEN, &desc, why, sizeof why);
        free(desc);
        desc = NULL;
    } else {
        c->n_failed++;
        report_table_str(c->t, row, 2, "failed");
    }
    report_table_str(c->t, row, 3, desc ? desc : why);
    /* the feature's stored description: this run's, or another run's since */
    int64_t by = features_description_run(c->s, c->sae_id, feature);
    char   *now = by == c->run_id ? xstrdup("this run's")
                  : by > 0        ? xasprintf("run %lld's", (long long)by)
                                  : xstrdup("none recorded");
    report_table_str(c->t, row, 4, now);
    report_table_str(c->t, row, 5, ok ? "" : reply);
    free(now);
    free(desc);
    free(reply);
    return EV_OK;
}

int report_explain_section(struct store *s, struct report *rep, struct ev_err *err) {
    static const char *const cols[] = {"feature", "grader", "status", "description or reason",
                                       "stored description", "reply"};
    struct expl_ctx c = {s, rep->run.id, 0, NULL, 0, 0, 0};
    char           *kind = NULL;
    int             rc = runs_kind(s, rep->run.id, &kind, &c.sae_id, err);
    free(kind);
    if (rc != EV_OK) return rc;
    struct report_section *sec = report_section_add(rep, "Descriptions written by the explainer");
    c.t = report_table_add(sec, "Explainer answers", cols, 6);
    if ((rc = grades_answers_each(s, rep->run.id, expl_row, &c, err)) != EV_OK) return rc;
    char *text = xasprintf(
        "One row per feature the explainer was asked about in this run (%d described, %d "
        "unparsed, %d failed requests): the description it wrote, or why its answer (asked "
        "twice, docs/evals.md) gave none, with the reply; and which run wrote the feature's "
        "stored description now (this one, or another). Features that already had a description, or no "
        "activating example in the index, were not asked.",
        c.n_ok, c.n_unparsed, c.n_failed);
    report_section_text(sec, text);
    free(text);
    return EV_OK;
}
