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
#include "graders/grader.h"
#include "graders/parse.h"
#include "graders/prompt.h"

struct load {
    long ok, failed;
};

static int load_cb(void *ud, int index, const struct grader_result *r, struct ev_err *err) {
    (void)index;
    (void)err;
    struct load *l = ud;
    if (r->status == GRADER_OK) l->ok++;
    else l->failed++;
    return 0;
}

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

    struct grader_config   cfg;
    struct grader         *g = NULL;
    struct grader_request *reqs = NULL;
    char                  *text = NULL;
    struct prompt         *tpl = NULL;
    rc = grader_config_from_flags(&co.gf, 1, &cfg, err);
    if (rc != EV_OK) return rc;
    cfg.no_cache = 1;
    /* grader-check never touches the database: nothing to cache, nothing to log */
    if ((rc = grader_new(&cfg, NULL, &g, err)) != EV_OK) goto out;

    double latency = 0;
    char   model[128] = "", answer[512] = "", name[192];
    if ((rc = grader_preflight(g, &latency, model, sizeof model, answer, sizeof answer, err)) !=
        EV_OK)
        goto out;
    int score = -1;
    int parsed = parse_score(answer, 0, 3, &score) == PARSE_OK;
    for (char *c = answer; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
    printf("grader      %s\n", grader_config_name(&cfg, name, sizeof name));
    printf("url         %s\n", cfg.base_url);
    printf("model       %s\n", model[0] ? model : "(not reported)");
    printf("latency_ms  %.1f\n", latency * 1000.0);
    printf("answer      %s\n", answer);
    if (parsed) printf("parsed      yes (score %d)\n", score);
    else printf("parsed      no\n");

    if (requests > 0) {
        if ((rc = prompt_load(NULL, "check", &tpl, err)) != EV_OK) goto out;
        if ((rc = prompt_render(tpl, NULL, 0, &text, err)) != EV_OK) goto out;
        reqs = xcalloc((size_t)requests, sizeof *reqs);
        for (long i = 0; i < requests; i++)
            reqs[i] = (struct grader_request){tpl->system, text, 16, 0, prompt_fixed_len(tpl)};
        struct load l = {0, 0};
        double      t0 = now_seconds();
        rc = grader_run_batch(g, reqs, (int)requests, NULL, load_cb, &l, err);
        double dt = now_seconds() - t0;
        printf("requests    %ld (%ld ok, %ld failed)\n", requests, l.ok, l.failed);
        printf("concurrency %d\n", cfg.concurrency);
        printf("seconds     %.3f\n", dt);
        printf("rate        %.1f requests/s\n", dt > 0 ? (double)l.ok / dt : 0.0);
        if (rc != EV_OK) goto out;
        if (l.failed > 0) {
            rc = ev_fail(err, EV_EFAIL, "grader-check: %ld of %ld requests failed", l.failed,
                         requests);
            goto out;
        }
    }
    char sum[512];
    ev_info("%s", grader_summary(g, sum, sizeof sum));
    if (!parsed) {
        rc = ev_fail(err, EV_EFAIL, "grader-check: the answer did not parse as 'Score: 3' "
                                    "(see 'answer' above)");
        goto out;
    }
    rc = EV_OK;
out:
    free(reqs);
    free(text);
    prompt_free(tpl);
    grader_free(g);
    return rc;
}
