/*
 * cmd_review — `evalrun review`: a human rater scores contexts in the terminal (tui.c), each
 * answer stored at its keypress (graders/human.c). See docs/reports.md.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "graders/human.h"
#include "evals/stats.h"
#include "store/store.h"
#include "base/tui.h"

enum { AGREE_MIN = 10, AGREE_EVERY = 5 };

/* The running agreement line (blinded: only aggregates over at least AGREE_MIN items, and
 * refreshed every AGREE_EVERY answers so that a single answer's LLM score cannot be read
 * off the change). */
static void agreement_line(struct store *s, const struct human_queue *q, char *buf, size_t n) {
    int          *a = NULL, *b = NULL, m = 0;
    struct ev_err e;
    buf[0] = 0;
    if (human_pairs(s, q, &a, &b, &m, &e) == EV_OK && m >= AGREE_MIN) {
        double *da = xmalloc((size_t)m * sizeof *da), *db = xmalloc((size_t)m * sizeof *db);
        for (int i = 0; i < m; i++) da[i] = a[i], db[i] = b[i];
        double k = stats_kappa_quadratic(a, b, m, 4), r = stats_spearman(da, db, m);
        snprintf(buf, n, "agreement with the LLM over %d items: weighted kappa %s%.2f, "
                         "spearman %s%.2f", m, isnan(k) ? "n/a " : "", isnan(k) ? 0.0 : k,
                 isnan(r) ? "n/a " : "", isnan(r) ? 0.0 : r);
        free(da);
        free(db);
    }
    free(a);
    free(b);
}

static int count_answered(const struct human_queue *q, int *skipped) {
    int n = 0;
    *skipped = 0;
    for (int i = 0; i < q->n; i++)
        if (q->items[i].answered) {
            n++;
            if (q->items[i].score < 0) (*skipped)++;
        }
    return n;
}

int cmd_review(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "review", "--run RUN --rater NAME",
        "Rate contexts yourself in the terminal (ncursesw): the feature's id and description,\n"
        "the context with its activating tokens highlighted by strength and marked with\n"
        "brackets, the activation interval. Keys: 0-3 score, s skip, u or left-arrow undo,\n"
        "? help, q quit. Every answer is stored at once (grades with grader_kind 'human' and\n"
        "grader_name NAME); rerunning the command resumes where you stopped. Items are those\n"
        "a run without a grader queued, or with --sample N a seeded random sample of N\n"
        "LLM-graded items (agreement studies; the LLM's scores are never shown). Runs:\n"
        "specificity (contexts) and influence (steered texts: Concept and Fluency)."};
    const char *run = NULL, *rater = NULL;
    long        sample = 0;
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_SEED);
    const struct opt opts[] = {
        {"run", OPT_STR, &run, "RUN", "the specificity or influence run: id or tag"},
        {"rater", OPT_STR, &rater, "NAME", "your name (stored with each grade)"},
        {"sample", OPT_LONG, &sample, "N", "rate N random LLM-graded items instead of the queue"},
        COMMON_OPTIONS(co),
        {0},
    };
    struct store      *s = NULL;
    struct human_queue q = {0};
    int                npos = 0, loaded = 0, screen = 0;
    int rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) goto out;
    if (npos > 0) {
        rc = ev_fail(err, EV_EUSAGE, "review: unexpected argument '%s'", argv[1]);
        goto out;
    }
    if (!run || !rater) {
        rc = ev_fail(err, EV_EUSAGE, "review needs --run RUN and --rater NAME");
        goto out;
    }
    if (!*rater || strlen(rater) > 64 || strpbrk(rater, "\t\r\n")) {
        rc = ev_fail(err, EV_EUSAGE, "--rater: expected a name of 1 to 64 characters on one line");
        goto out;
    }
    if ((rc = args_check_long("--sample", sample, 0, 1000000, err)) != EV_OK) goto out;
    if ((rc = common_opts_check(&co, err)) != EV_OK) goto out;
    if ((rc = args_check_long("--seed", co.seed, 0, 0x7fffffffL, err)) != EV_OK) goto out;

    int64_t run_id = 0;
    if ((rc = store_open(cli->db_path, 0, &s, err)) != EV_OK) goto out;
    if ((rc = store_run_resolve(s, run, &run_id, err)) != EV_OK) goto out;
    if ((rc = human_queue_load(s, run_id, rater, (int)sample, (uint64_t)co.seed, &q, err)) != EV_OK)
        goto out;
    loaded = 1;
    if ((rc = tui_begin(err)) != EV_OK) goto out;
    screen = 1;

    char header[160], agree[160] = "", msg[160] = "", ivl[96];
    snprintf(header, sizeof header, "evalrun review: run %lld as %s%s", (long long)run_id, rater,
             sample ? " (sample)" : "");
    int cur = human_next(&q, 0), help_on = 0, since = 0;
    if (sample) agreement_line(s, &q, agree, sizeof agree);
    for (;;) {
        int                      skipped = 0, done = count_answered(&q, &skipped);
        const struct human_item *it = cur < q.n ? &q.items[cur] : NULL;
        struct tui_view          v = {0};
        v.header   = header;
        v.pos      = cur < q.n ? cur + 1 : q.n;
        v.total    = q.n;
        v.answered = done;
        v.done     = it == NULL;
        v.help     = help_on;
        v.message  = msg[0] ? msg : NULL;
        v.agreement = agree[0] ? agree : NULL;
        if (it) {
            if (it->influence == 1)
                snprintf(ivl, sizeof ivl, "rate CONCEPT: 0 no more than the baseline .. 3 dominates");
            else if (it->influence == 2)
                snprintf(ivl, sizeof ivl, "rate FLUENCY: 0 gibberish .. 3 fully fluent");
            else if (it->interval >= 0 && it->n_intervals > 0)
                snprintf(ivl, sizeof ivl, "interval %d of %d", it->interval + 1, it->n_intervals);
            else if (it->interval >= 0)
                snprintf(ivl, sizeof ivl, "interval %d", it->interval + 1);
            else
                snprintf(ivl, sizeof ivl, "non-activating");
            v.feature     = it->feature;
            v.description = it->description;
            v.interval    = ivl;
            v.activation  = it->activation;
            v.hide_activation = it->influence != 0;
            v.n_tok       = it->n_tok;
            v.pieces      = (const char *const *)it->pieces;
            v.acts        = it->acts;
            v.max_act     = it->max_act;
            v.text        = it->text;
        }
        tui_draw(&v);
        enum tui_key k = tui_key(250);
        if (k == TUI_KEY_NONE || k == TUI_KEY_RESIZE) continue;
        if (k == TUI_KEY_QUIT) break;
        msg[0] = 0;
        if (help_on) {
            help_on = 0;
            continue;
        }
        if (k == TUI_KEY_HELP) {
            help_on = 1;
        } else if (k == TUI_KEY_UNDO) {
            int back = -1;
            if ((rc = human_undo(s, &q, &back, err)) != EV_OK) goto out;
            if (back >= 0) {
                cur = back;
                snprintf(msg, sizeof msg, "undone: %s", q.items[back].item_key);
            } else {
                snprintf(msg, sizeof msg, "nothing to undo");
            }
        } else if (it && (k <= TUI_KEY_3 || k == TUI_KEY_SKIP)) {
            int score = k == TUI_KEY_SKIP ? -1 : (int)k;
            if ((rc = human_answer(s, &q, cur, score, err)) != EV_OK) goto out;
            snprintf(msg, sizeof msg, score < 0 ? "skipped %s" : "saved %s: %d", it->item_key,
                     score);
            int nx = human_next(&q, cur + 1);
            cur = nx < q.n ? nx : human_next(&q, 0);
            if (sample && ++since >= AGREE_EVERY) {
                since = 0;
                agreement_line(s, &q, agree, sizeof agree);
            }
        }
    }
    int sig = tui_signal();
    tui_end();
    screen = 0;
    if (sig == SIGHUP) { /* the terminal is gone: nobody reads a summary; answers are stored */
        rc = EV_OK;
        goto out;
    }
    {
        int skipped = 0, done = count_answered(&q, &skipped);
        printf("review of run %lld by %s: %d of %d answered (%d skipped)%s\n", (long long)run_id,
               rater, done, q.n, skipped, done < q.n ? "; rerun to continue" : "");
        if (agree[0]) printf("%s\n", agree);
    }
    rc = sig ? EV_EINTR : EV_OK;
out:
    if (screen) tui_end();
    if (loaded) human_queue_release(&q);
    store_close(s);
    return rc;
}
