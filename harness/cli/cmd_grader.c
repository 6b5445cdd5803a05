/*
 * cmd_grader — `evalrun grader-check`: sends one tiny request to the configured LLM grader
 * and reports latency, model and whether the answer parsed; with --requests N it then sends
 * N requests through the batch engine (never from the cache) and reports the rate, which is
 * what `make bench` measures against the local server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "graders/check.h"
#include "graders/grader.h"

static int check_args(struct common_opts *co, int npos, char **argv, long requests,
                      struct ev_err *err) {
    int rc;
    if (npos > 0)
        return ev_fail(err, EV_EUSAGE, "grader-check: unexpected argument '%s'", argv[1]);
    if ((rc = args_check_long("--requests", requests, 0, 10000000, err)) != EV_OK) return rc;
    if ((rc = common_opts_check(co, err)) != EV_OK) return rc;
    if (!grader_flags_configured(&co->gf))
        return ev_fail(err, EV_EUSAGE, "grader-check needs --grader (or EVALRUN_GRADER): %s",
                       grader_not_configured_message());
    return EV_OK;
}

static void print_check(const struct grader_config *cfg, const struct grader_check *c) {
    char name[192];
    printf("grader      %s\n", grader_config_name(cfg, name, sizeof name));
    printf("url         %s\n", cfg->base_url);
    printf("model       %s\n", c->model[0] ? c->model : "(not reported)");
    printf("latency_ms  %.1f\n", c->latency_s * 1000.0);
    printf("answer      %s\n", c->answer);
    if (c->parsed) printf("parsed      yes (score %d)\n", c->score);
    else printf("parsed      no\n");
}

static void print_load(const struct grader_config *cfg, long requests,
                       const struct grader_load *l) {
    printf("requests    %ld (%ld ok, %ld failed)\n", requests, l->ok, l->failed);
    printf("concurrency %d\n", cfg->concurrency);
    printf("seconds     %.3f\n", l->seconds);
    printf("rate        %.1f requests/s\n", l->seconds > 0 ? (double)l->ok / l->seconds : 0.0);
}

int cmd_grader_check(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "grader-check", "--grader PROVIDER[:MODEL]",
        "Sends one tiny request (prompts/check.txt) to the LLM grader and reports the latency,\n"
        "the model that answered and whether the answer parsed. Exits 1 with a one-line\n"
        "message when the grader is unusable: no key in ANTHROPIC_API_KEY/OPENAI_API_KEY, an\n"
        "unreachable URL, a refused key (HTTP 401), an unknown model (404/400). With\n"
        "--requests N it then sends N more requests, --concurrency at a time, bypassing the\n"
        "cache, and reports the rate (requests per second)."};
    struct common_opts co;
    long               requests = 0;
    common_opts_init(&co, cli, COMMON_GRADER);
    const struct opt opts[] = {
        {"requests", OPT_LONG, &requests, "N", "then send N requests and report the rate"},
        COMMON_OPTIONS(co),
        {0},
    };
    int npos = 0, rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if ((rc = check_args(&co, npos, argv, requests, err)) != EV_OK) return rc;

    struct grader_config cfg;
    struct grader       *g = NULL;
    if ((rc = grader_config_from_flags(&co.gf, 1, &cfg, err)) != EV_OK) return rc;
    cfg.no_cache = 1;
    /* grader-check never touches the database: nothing to cache, nothing to log */
    if ((rc = grader_new(&cfg, NULL, &g, err)) != EV_OK) goto out;
    struct grader_check c;
    if ((rc = grader_check_once(g, &c, err)) != EV_OK) goto out;
    print_check(&cfg, &c);
    if (requests > 0) {
        struct grader_load l;
        rc = grader_check_load(g, requests, &l, err);
        print_load(&cfg, requests, &l);
        if (rc != EV_OK) goto out;
        if (l.failed > 0) {
            rc = ev_fail(err, EV_EFAIL, "grader-check: %ld of %ld requests failed", l.failed,
                         requests);
            goto out;
        }
    }
    char sum[512];
    ev_info("%s", grader_summary(g, sum, sizeof sum));
    if (!c.parsed)
        rc = ev_fail(err, EV_EFAIL, "grader-check: the answer did not parse as 'Score: 3' "
                                    "(see 'answer' above)");
out:
    grader_free(g);
    return rc;
}
