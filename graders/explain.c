/*
 * explain — explainer prompt rendering and answer acceptance.
 */
#include "graders/explain.h"

#include <stdlib.h>
#include <string.h>

#include "graders/parse.h"

int explain_render(const struct prompt *p, const struct explain_example *ex, int n_ex,
                   char **out, struct ev_err *err) {
    *out = NULL;
    if (n_ex < 1) return ev_fail(err, EV_EFAIL, "explain: a feature needs at least one example");
    struct sbuf sb;
    sbuf_init(&sb);
    for (int i = 0; i < n_ex; i++) {
        int *marked = xcalloc((size_t)(ex[i].n > 0 ? ex[i].n : 1), sizeof *marked);
        for (int t = 0; t < ex[i].n; t++) marked[t] = ex[i].acts && ex[i].acts[t] > 0;
        char *line = prompt_mark_tokens(ex[i].pieces, marked, ex[i].n);
        /* one example per line: newlines inside a window become spaces */
        for (char *c = line; *c; c++)
            if (*c == '\n' || *c == '\r') *c = ' ';
        sbuf_addf(&sb, "%d. (activation %.2f) %s\n", i + 1, (double)ex[i].activation, line);
        free(line);
        free(marked);
    }
    if (sb.len) sb.buf[--sb.len] = 0; /* no trailing newline */
    struct prompt_var v = {"examples", sb.buf};
    int               rc = prompt_render(p, &v, 1, out, err);
    sbuf_release(&sb);
    return rc;
}

int explain_accept(void *ud, int index, const char *answer) {
    (void)ud;
    (void)index;
    char *d = NULL;
    int   ok = parse_description(answer, EXPLAIN_MAX_LEN, &d) == PARSE_OK;
    free(d);
    return ok;
}

int explain_accept_reask(void *retry_tpl, int index, const char *prompt, const char *answer,
                         char **retry_prompt) {
    (void)index;
    char *d = NULL, why[160];
    *retry_prompt = NULL;
    if (parse_description_why(answer, EXPLAIN_MAX_LEN, &d, why, sizeof why) == PARSE_OK) {
        free(d);
        return 1;
    }
    char          *cut = xasprintf("%.300s%s", answer ? answer : "",
                                   answer && strlen(answer) > 300 ? " ..." : "");
    char          *esc = prompt_escape_untrusted(cut);
    struct ev_err  e;
    struct prompt_var v[] = {{"prompt", prompt}, {"problem", why}, {"answer", esc}};
    if (prompt_render(retry_tpl, v, 3, retry_prompt, &e) != EV_OK) *retry_prompt = NULL;
    free(esc);
    free(cut);
    return 0;
}
