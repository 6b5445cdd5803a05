/*
 * cmd_report — `evalrun report`: the paper's tables and figures for one run, as Markdown,
 * CSV, self-contained HTML (inline SVG) or JSON; on stdout or written atomically to --out.
 * CSV is tidy: one table per file (--table NAME, or every table into --out DIR/NAME.csv).
 * See evals/report.h and docs/reports.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/report.h"
#include "store/store.h"

/* "a, b, c": the report's table names, for messages; caller frees. */
static char *table_names(const struct report *rep) {
    struct sbuf sb;
    sbuf_init(&sb);
    for (int i = 0; i < report_n_tables(rep); i++)
        sbuf_addf(&sb, "%s%s", i ? ", " : "", report_table_at(rep, i)->name);
    return sb.buf ? sbuf_detach(&sb) : xstrdup("");
}

/* --format csv: the one table asked for (to stdout or --out FILE), or each table to
 * DIR/NAME.csv when --out names a directory (an existing one, or a path ending in '/'). */
static int write_csv(const struct report *rep, const char *table, const char *out_path,
                     struct ev_err *err) {
    struct sbuf sb;
    int         rc = EV_OK, n = report_n_tables(rep);
    size_t      ol = out_path ? strlen(out_path) : 0;
    int         to_dir = out_path && !table && (path_is_dir(out_path) || out_path[ol - 1] == '/');
    sbuf_init(&sb);
    if (!table && !to_dir) {
        char *names = table_names(rep);
        rc = ev_fail(err, EV_EUSAGE, "--format csv writes one table per file: pick one with "
                     "--table NAME (%s) or write each with --out DIR/", names);
        free(names);
        return rc;
    }
    if (to_dir && (rc = mkdir_p(out_path, err)) != EV_OK) return rc;
    for (int i = 0; i < n && rc == EV_OK; i++) {
        const struct report_table *t = report_table_at(rep, i);
        if (table && strcmp(t->name, table) != 0) continue;
        sbuf_release(&sb);
        sbuf_init(&sb);
        report_render_csv(t, &sb);
        if (to_dir) {
            char *p = xasprintf("%s%s%s.csv", out_path, out_path[ol - 1] == '/' ? "" : "/", t->name);
            rc = file_write_atomic(p, sb.buf ? sb.buf : "", sb.len, err);
            if (rc == EV_OK) ev_info("%s", p);
            free(p);
        } else if (out_path) {
            rc = file_write_atomic(out_path, sb.buf ? sb.buf : "", sb.len, err);
        } else {
            fwrite(sb.buf ? sb.buf : "", 1, sb.len, stdout);
        }
    }
    sbuf_release(&sb);
    return rc;
}

static int write_report(const struct report *rep, enum report_format f, const char *out_path,
                        struct ev_err *err) {
    struct sbuf sb;
    int         rc = EV_OK;
    sbuf_init(&sb);
    report_render(rep, f, &sb);
    if (out_path) rc = file_write_atomic(out_path, sb.buf ? sb.buf : "", sb.len, err);
    else fwrite(sb.buf ? sb.buf : "", 1, sb.len, stdout);
    if (rc == EV_OK && out_path)
        ev_info("report of run %lld written to %s", (long long)rep->run.id, out_path);
    sbuf_release(&sb);
    return rc;
}

int cmd_report(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "report", "--run RUN [--format md|csv|html|json] [--table NAME] [--out PATH]",
        "Writes the tables (and, in HTML, the figures as inline SVG) of one run, after its\n"
        "provenance (model, SAE, hook, grader, template, seed, features, per-interval count,\n"
        "dates): specificity by activation interval with the score distributions and example\n"
        "contexts, completeness by concept, steering outcomes with example texts,\n"
        "attribution/ablation rankings, SAE metrics and the feature-density histogram, the\n"
        "scaling-sweep table, human-LLM agreement (weighted kappa, Spearman) and feature\n"
        "categories, as far as the run holds them. The run is an id or a tag. CSV is tidy,\n"
        "one table per file: --table NAME, or --out DIR/ for DIR/NAME.csv of every table."};
    const char *run = NULL, *format = "md", *out_path = NULL, *table = NULL;
    struct common_opts co;
    common_opts_init(&co, cli, 0);
    const struct opt opts[] = {
        {"run", OPT_STR, &run, "RUN", "the run: id or tag"},
        {"format", OPT_STR, &format, "FMT", "md (default), csv, html or json"},
        {"table", OPT_STR, &table, "NAME", "csv: the one table to write (names: see the error)"},
        {"out", OPT_STR, &out_path, "PATH", "write to PATH (atomically); csv: a DIR/ per table"},
        COMMON_OPTIONS(co),
        {0},
    };
    struct store      *s = NULL;
    struct report      rep = {0};
    enum report_format f = REPORT_MD;
    int                npos = 0, built = 0;
    int rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) goto out;
    if (npos > 0) {
        rc = args_no_positional(&help, npos, argv, err);
        goto out;
    }
    if (!run) {
        rc = ev_fail(err, EV_EUSAGE, "report needs --run RUN (an id or a tag)");
        goto out;
    }
    if ((rc = report_parse_format(format, &f, err)) != EV_OK) goto out;
    if ((out_path && !*out_path) || (table && (!*table || f != REPORT_CSV))) {
        rc = ev_fail(err, EV_EUSAGE, out_path && !*out_path ? "--out needs a non-empty PATH"
                                                            : "--table NAME is for --format csv");
        goto out;
    }
    if ((rc = store_open(cli->db_path, STORE_READONLY | STORE_UPGRADE, &s, err)) != EV_OK)
        goto out;
    if ((rc = report_build(s, run, &rep, err)) != EV_OK) goto out;
    built = 1;
    if (table && !report_find_table(&rep, table)) {
        char *names = table_names(&rep);
        rc = ev_fail(err, EV_EUSAGE, "--table '%s': run %s has no such table (%s)", table, run,
                     names);
        free(names);
        goto out;
    }
    rc = f == REPORT_CSV ? write_csv(&rep, table, out_path, err)
                         : write_report(&rep, f, out_path, err);
out:
    if (built) report_release(&rep);
    store_close(s);
    return rc;
}
