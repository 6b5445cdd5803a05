/*
 * report — the paper's tables and figures for one run (issue 7, `evalrun report`), rendered
 * as Markdown, CSV (RFC 4180), self-contained HTML with inline SVG figures, or JSON.
 *
 * Included by: evals and harness/cli.
 *
 * A report is built once from the database (report_build) as sections of tables and figures,
 * then rendered (report_render); what it holds depends on the run's kind (docs/reports.md):
 * specificity by activation interval and score distributions, completeness by concept,
 * steering outcomes with example texts, attribution/ablation ranking per prompt, SAE metrics
 * with the feature-density histogram, the scaling-sweep table, autointerp scores, human–LLM
 * agreement (weighted kappa, Spearman) wherever human grades exist, and feature categories
 * when feature_tags has rows for the run's SAE.
 *
 * Every report opens with its provenance (report.facts, also the table "provenance"): the
 * model and SAE (path and hash), hook, grader kind and model with its parsed/unparsed/
 * skipped/failed counts, template hash, seed, features file and set, per-interval count,
 * dates and code version, "-" where the run records none.
 *
 * All text from the database is treated as untrusted: HTML output escapes it, Markdown
 * escapes table delimiters, CSV quotes per RFC 4180.
 *
 * Ownership: struct report owns everything in it; report_release() frees it.
 */
#ifndef EV_REPORT_H
#define EV_REPORT_H

#include "evals/compare.h"
#include "store/store.h"
#include "base/util.h"

struct report_table {
    char  *title;
    char  *name;  /* for --table and the CSV file names: the title in lower case, each run of
                   * other characters than [a-z0-9] as one '_' ("mean_score_per_interval");
                   * unique in the report (a second "x" is "x_2") */
    int    n_cols, n_rows;
    char **cols;  /* (n_cols) */
    char **cells; /* (n_rows, n_cols); "" for an empty cell */
};

struct report_figure {
    char *title;
    char *svg; /* a complete <svg> element */
};

struct report_section {
    char                 *title;
    char                 *text; /* a paragraph, or NULL */
    int                   n_tables, n_figures;
    struct report_table **tables; /* (n_tables) each allocated on its own: stable pointers */
    struct report_figure *figures;
};

/* One line of the provenance block: what a reader needs to trust the numbers (issue 17.4). */
struct report_fact {
    char *key, *value;
};

/* The provenance facts of run run_id, as a report's first table shows them (keys "run",
 * "model", "SAE", "hook", "grader", "template", "seed", "features", "per interval", "date",
 * "code version"; "-" where the run records none): for other views of a run, e.g. the
 * feature card. EV_EFAIL for an unknown run. Free with report_facts_release(). */
int  report_run_provenance(struct store *s, int64_t run_id, struct report_fact **facts, int *n,
                           struct ev_err *err);
void report_facts_release(struct report_fact *f, int n);
/* The value of key in f, "-" when absent. */
const char *report_fact_get(const struct report_fact *f, int n, const char *key);

struct report {
    char                  *title;
    struct cmp_run         run;
    int                    n_facts;
    struct report_fact    *facts; /* (n_facts) model, SAE, hook, grader, template, seed,
                                   * features, per interval, dates, code version; also the
                                   * first table ("provenance") */
    int                    n_sections;
    struct report_section *sections;
};

enum report_format { REPORT_MD, REPORT_CSV, REPORT_HTML, REPORT_JSON };
/* "md", "csv", "html", "json" -> format; EV_EUSAGE naming --format otherwise. */
int report_parse_format(const char *s, enum report_format *out, struct ev_err *err);

/* Reads run (an id or a tag) and builds its report. EV_EFAIL for an unknown run or a
 * database error. */
int  report_build(struct store *s, const char *run, struct report *out, struct ev_err *err);
void report_release(struct report *r);

/* Building blocks for sections built outside this file (evals/influence_report.c): a new
 * section, its paragraph (appended), a table with n_cols columns, a row of empty cells (its
 * index), a cell as text or as a number with d decimals ("-" when NAN), a figure (svg is
 * taken over). */
struct report_section *report_section_add(struct report *r, const char *title);
void                   report_section_text(struct report_section *s, const char *text);
struct report_table   *report_table_add(struct report_section *s, const char *title,
                                        const char *const *cols, int n_cols);
int                    report_table_row(struct report_table *t);
void                   report_table_str(struct report_table *t, int row, int col, const char *v);
void                   report_table_num(struct report_table *t, int row, int col, double v, int d);
void                   report_figure_add(struct report_section *s, const char *title,
                                         struct sbuf *svg);

/* The section of an explain run (evals/report_explain.c): each explainer answer the run
 * holds, its description or why it gave none, and whether it is still the stored one. */
int report_explain_section(struct store *s, struct report *rep, struct ev_err *err);

/* Appends the report in format to out. CSV is tidy, one table: this writes the first (the
 * provenance); pick others with report_find_table() + report_render_csv(). */
void report_render(const struct report *r, enum report_format f, struct sbuf *out);

/* The number of tables, and table i in report order (0 <= i < report_n_tables). */
int                        report_n_tables(const struct report *r);
const struct report_table *report_table_at(const struct report *r, int i);
/* The table called name (report_table.name), or NULL. */
const struct report_table *report_find_table(const struct report *r, const char *name);
/* Appends t as one tidy CSV table (RFC 4180, CRLF): one header row, then one row per row,
 * every row as wide as the header; a missing value ("-" elsewhere) is an empty cell. */
void report_render_csv(const struct report_table *t, struct sbuf *out);
/* 1 when every non-empty cell of column c is a number ("-" counts as empty): such columns
 * are right-aligned in Markdown and HTML, text columns left-aligned. */
int report_col_numeric(const struct report_table *t, int c);

/* Appends s as one RFC 4180 field (quoted when it holds a comma, quote, CR or LF). */
void report_csv_field(struct sbuf *sb, const char *s);

#endif
