/*
 * cmd_compare — `evalrun compare`: a candidate run against a baseline, metric by metric, with
 * bootstrap intervals and verdicts; exit 3 when a metric regressed (a CI gate). The flags go
 * into a struct cmp_config; evals/compare_run.c does the rest (cmp_main). See
 * evals/compare.h and docs/reports.md.
 */
#include <stdint.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/compare.h"

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
    struct strlist     thr = {0}, metrics = {0};
    long               n_boot = 2000, min_n = 20;
    struct cmp_config  c = {.db_path = cli->db_path, .thresholds = &thr, .metrics = &metrics};
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_SEED | COMMON_JSON);
    const struct opt opts[] = {
        {"baseline", OPT_STR, &c.baseline, "RUN", "baseline run: id or tag"},
        {"candidate", OPT_STR, &c.candidate, "RUN", "candidate run: id or tag"},
        {"baseline-db", OPT_STR, &c.baseline_db, "PATH",
         "database of the baseline (default: the --db of the candidate)"},
        {"threshold", OPT_STRS, &thr, "T|METRIC=T",
         "worse-by threshold for every metric, or for one (repeatable; METRIC may be a prefix "
         "such as specificity.interval)"},
        {"metric", OPT_STRS, &metrics, "M", "only these metrics (repeatable; prefixes allowed)"},
        {"bootstrap", OPT_LONG, &n_boot, "N", "bootstrap replicates (default 2000)"},
        {"min-n", OPT_LONG, &min_n, "N",
         "fewest units per side (or paired) for a verdict; fewer: n/a (too few) (default 20)"},
        {"allow-mismatch", OPT_FLAG, &c.allow_mismatch, NULL,
         "compare runs that differ in grader, template, hook, model, features or per-interval "
         "count (warned about loudly)"},
        COMMON_OPTIONS(co),
        {0},
    };
    int npos = 0, rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc == EV_OK && npos > 0)
        rc = args_no_positional(&help, npos, argv, err);
    else if (rc == EV_OK && (!c.baseline || !c.candidate))
        rc = ev_fail(err, EV_EUSAGE, "compare needs --baseline RUN and --candidate RUN");
    if (rc == EV_OK && !(rc = args_check_long("--bootstrap", n_boot, 100, 1000000, err)) &&
        !(rc = args_check_long("--min-n", min_n, 0, 100000000L, err)) &&
        !(rc = common_opts_check(&co, err)) &&
        !(rc = args_check_long("--seed", co.seed, 0, 0x7fffffffL, err))) {
        c.n_boot = (int)n_boot;
        c.min_n  = (int)min_n;
        c.seed   = (uint64_t)co.seed;
        c.json   = co.json;
        rc       = cmp_main(&c, err);
    }
    return rc;
}
