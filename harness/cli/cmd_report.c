/*
 * cmd_report — `evalrun report`: the paper's tables and figures for one run, as Markdown,
 * CSV, self-contained HTML (inline SVG) or JSON; on stdout or written atomically to --out.
 * See evals/report.h and docs/reports.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/report.h"
#include "store/store.h"

int cmd_report(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "report", "--run RUN [--format md|csv|html|json]",
        "Writes the tables (and, in HTML, the figures as inline SVG) of one run: specificity\n"
        "by activation interval and score distributions, completeness by concept, steering\n"
        "outcomes with example texts, attribution/ablation rankings, SAE metrics and the\n"
        "feature-density histogram, the scaling-sweep table, human-LLM agreement (weighted\n"
        "kappa, Spearman) and feature categories, as far as the run holds them. The run is an\n"
        "id or a tag. Markdown and CSV (RFC 4180) paste into a paper or a spreadsheet."};
    const char *run = NULL, *format = "md", *out_path = NULL;
    struct common_opts co;
    common_opts_init(&co, cli, 0);
    const struct opt opts[] = {
        {"run", OPT_STR, &run, "RUN", "the run: id or tag"},
        {"format", OPT_STR, &format, "FMT", "md (default), csv, html or json"},
        {"out", OPT_STR, &out_path, "PATH", "write to PATH (atomically) instead of stdout"},
        COMMON_OPTIONS(co),
        {0},
    };
    struct store      *s = NULL;
    struct report      rep = {0};
    struct sbuf        sb;
    enum report_format f = REPORT_MD;
    int                npos = 0, built = 0;
    sbuf_init(&sb);
    int rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) goto out;
    if (npos > 0) {
        rc = ev_fail(err, EV_EUSAGE, "report: unexpected argument '%s'", argv[1]);
        goto out;
    }
    if (!run) {
        rc = ev_fail(err, EV_EUSAGE, "report needs --run RUN (an id or a tag)");
        goto out;
    }
    if ((rc = report_parse_format(format, &f, err)) != EV_OK) goto out;
    if (out_path && !*out_path) {
        rc = ev_fail(err, EV_EUSAGE, "--out needs a non-empty PATH");
        goto out;
    }
    if ((rc = store_open(cli->db_path, STORE_READONLY | STORE_UPGRADE, &s, err)) != EV_OK)
        goto out;
    if ((rc = report_build(s, run, &rep, err)) != EV_OK) goto out;
    built = 1;
    report_render(&rep, f, &sb);
    if (out_path) {
        if ((rc = file_write_atomic(out_path, sb.buf ? sb.buf : "", sb.len, err)) != EV_OK)
            goto out;
        ev_info("report of run %lld written to %s", (long long)rep.run.id, out_path);
    } else {
        fwrite(sb.buf ? sb.buf : "", 1, sb.len, stdout);
    }
    rc = EV_OK;
out:
    if (built) report_release(&rep);
    sbuf_release(&sb);
    store_close(s);
    return rc;
}
