/*
 * check — grader-check's requests (see check.h).
 */
#include "graders/check.h"

#include <stdlib.h>
#include <string.h>

#include "graders/parse.h"
#include "graders/prompt.h"

int grader_check_once(struct grader *g, struct grader_check *c, struct ev_err *err) {
    memset(c, 0, sizeof *c);
    c->score = -1;
    int rc = grader_preflight(g, &c->latency_s, c->model, sizeof c->model, c->answer,
                              sizeof c->answer, err);
    if (rc != EV_OK) return rc;
    c->parsed = parse_score(c->answer, 0, 3, &c->score) == PARSE_OK;
    for (char *p = c->answer; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return EV_OK;
}

static int load_count(void *ud, int index, const struct grader_result *r, struct ev_err *err) {
    (void)index;
    (void)err;
    struct grader_load *l = ud;
    if (r->status == GRADER_OK) l->ok++;
    else l->failed++;
    return 0;
}

int grader_check_load(struct grader *g, long n, struct grader_load *l, struct ev_err *err) {
    struct grader_request *reqs = NULL;
    struct prompt         *tpl = NULL;
    char                  *text = NULL;
    int                    rc;
    memset(l, 0, sizeof *l);
    if ((rc = prompt_load(NULL, "check", &tpl, err)) != EV_OK) goto out;
    if ((rc = prompt_render(tpl, NULL, 0, &text, err)) != EV_OK) goto out;
    reqs = xcalloc((size_t)n, sizeof *reqs);
    for (long i = 0; i < n; i++)
        reqs[i] = (struct grader_request){tpl->system, text, 16, 0, prompt_fixed_len(tpl)};
    double t0 = now_seconds();
    rc = grader_run_batch(g, reqs, (int)n, NULL, load_count, l, err);
    l->seconds = now_seconds() - t0;
out:
    free(reqs);
    free(text);
    prompt_free(tpl);
    return rc;
}
