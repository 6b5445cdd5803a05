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

/* The review session: the queue, the screen's state and what the rater sees. */
struct review {
    struct store      *s;
    struct human_queue q;
    int64_t            run_id;
    const char        *rater;
    int                sample, show_info, cur, help_on, since;
    char               header[160], agree[160], msg[160], ivl[128];
};

/* The line above the context: what to rate for a steering item; the interval (and, for
 * steering, the scale) only with --show-context-info, so that the rater is not primed by it. */
static void item_line(struct review *r, const struct human_item *it) {
    char sc[48] = "";
    if (r->show_info && !isnan(it->scale)) snprintf(sc, sizeof sc, "   (scale %g x max act)", it->scale);
    if (it->influence == 1)
        snprintf(r->ivl, sizeof r->ivl, "rate CONCEPT: 0 no more than the baseline .. 3 dominates%s", sc);
    else if (it->influence == 2)
        snprintf(r->ivl, sizeof r->ivl, "rate FLUENCY: 0 gibberish .. 3 fully fluent%s", sc);
    else if (!r->show_info)
        snprintf(r->ivl, sizeof r->ivl, "rate: 0 irrelevant .. 3 cleanly identifies the marked text");
    else if (it->interval >= 0 && it->n_intervals > 0)
        snprintf(r->ivl, sizeof r->ivl, "interval %d of %d", it->interval + 1, it->n_intervals);
    else if (it->interval >= 0) snprintf(r->ivl, sizeof r->ivl, "interval %d", it->interval + 1);
    else snprintf(r->ivl, sizeof r->ivl, "non-activating");
}

static void draw(struct review *r) {
    int                      skipped = 0, done = count_answered(&r->q, &skipped);
    const struct human_item *it = r->cur < r->q.n ? &r->q.items[r->cur] : NULL;
    struct tui_view          v = {0};
    v.header    = r->header;
    v.pos       = it ? r->cur + 1 : r->q.n;
    v.total     = r->q.n;
    v.answered  = done;
    v.done      = it == NULL;
    v.help      = r->help_on;
    v.message   = r->msg[0] ? r->msg : NULL;
    v.agreement = r->agree[0] ? r->agree : NULL;
    if (it) {
        item_line(r, it);
        v.feature         = it->feature;
        v.description     = it->description;
        v.interval        = r->ivl;
        v.activation      = it->activation;
        v.hide_activation = it->influence != 0 || !r->show_info;
        v.n_tok           = it->n_tok;
        v.pieces          = (const char *const *)it->pieces;
        v.acts            = it->acts;
        v.max_act         = it->max_act;
        v.text            = it->text;
    }
    tui_draw(&v);
}

/* A store error on an answer or an undo (the database still locked by another writer after
 * the busy timeout, a full disk): the screen stays on the item, unanswered, and says so, so
 * that no rating is lost; the rater presses the key again. */
static int not_saved(struct review *r, const char *what, struct ev_err *err) {
    snprintf(r->msg, sizeof r->msg, "NOT %s (press the key again): %.120s", what, err->msg);
    return 0;
}

/* One key. Returns 1 to quit, 0 to go on, < 0 on a store error. Messages name the item by
 * its place in the queue unless --show-context-info (the key holds the interval). */
static int on_key(struct review *r, enum tui_key k, struct ev_err *err) {
    if (k == TUI_KEY_QUIT) return 1;
    r->msg[0] = 0;
    if (r->help_on || k == TUI_KEY_HELP) {
        r->help_on = !r->help_on && k == TUI_KEY_HELP;
        return 0;
    }
    if (k == TUI_KEY_UNDO) {
        int back = -1, rc = human_undo(r->s, &r->q, &back, err);
        if (rc != EV_OK) return not_saved(r, "UNDONE", err);
        if (back >= 0) r->cur = back;
        if (back < 0) snprintf(r->msg, sizeof r->msg, "nothing to undo");
        else if (r->show_info) snprintf(r->msg, sizeof r->msg, "undone: %s", r->q.items[back].item_key);
        else snprintf(r->msg, sizeof r->msg, "undone: item %d", back + 1);
        return 0;
    }
    if (r->cur >= r->q.n || (k > TUI_KEY_3 && k != TUI_KEY_SKIP)) return 0;
    int score = k == TUI_KEY_SKIP ? -1 : (int)k, rc = human_answer(r->s, &r->q, r->cur, score, err);
    if (rc != EV_OK) return not_saved(r, "SAVED", err);
    char name[96];
    if (r->show_info) snprintf(name, sizeof name, "%s", r->q.items[r->cur].item_key);
    else snprintf(name, sizeof name, "item %d", r->cur + 1);
    if (score < 0) snprintf(r->msg, sizeof r->msg, "skipped %s", name);
    else snprintf(r->msg, sizeof r->msg, "saved %s: %d", name, score);
    int nx = human_next(&r->q, r->cur + 1);
    r->cur = nx < r->q.n ? nx : human_next(&r->q, 0);
    if (r->sample && ++r->since >= AGREE_EVERY) {
        r->since = 0;
        agreement_line(r->s, &r->q, r->agree, sizeof r->agree);
    }
    return 0;
}

/* The screen until q or a signal; then the summary (none after SIGHUP: nobody reads it). */
static int review_screen(struct review *r, struct ev_err *err) {
    int rc = tui_begin(err);
    if (rc != EV_OK) return rc;
    r->cur = human_next(&r->q, 0);
    if (r->sample) agreement_line(r->s, &r->q, r->agree, sizeof r->agree);
    for (;;) {
        draw(r);
        enum tui_key k = tui_key(250);
        if (k == TUI_KEY_NONE || k == TUI_KEY_RESIZE) continue;
        if ((rc = on_key(r, k, err)) != 0) break;
    }
    int sig = tui_signal();
    tui_end();
    if (rc < 0) return rc;
    if (sig == SIGHUP) return EV_OK; /* the terminal is gone; every answer is stored */
    int skipped = 0, done = count_answered(&r->q, &skipped);
    printf("review of run %lld by %s: %d of %d answered (%d skipped)%s\n", (long long)r->run_id,
           r->rater, done, r->q.n, skipped, done < r->q.n ? "; rerun to continue" : "");
    if (r->agree[0]) printf("%s\n", r->agree);
    return sig ? EV_EINTR : EV_OK;
}

int cmd_review(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "review", "--run RUN --rater NAME [--sample N] [--show-context-info]",
        "Rate contexts yourself in the terminal (ncursesw): the feature's id and description,\n"
        "the context with its activating tokens highlighted by strength and marked with\n"
        "brackets. The context's activation interval, its activation and a steering item's\n"
        "scale are hidden unless --show-context-info, so that they cannot sway the rating.\n"
        "Keys: 0-3 score, s skip, u or left-arrow undo, ? help, q quit. Every answer is stored\n"
        "at once (grades with grader_kind 'human' and grader_name NAME; a skip as 'skipped',\n"
        "never 'unparsed'); rerunning resumes. Items are those a run without a grader queued,\n"
        "or with --sample N a seeded random sample of N LLM-graded items (agreement studies;\n"
        "the LLM's scores are never shown). Runs: specificity and influence."};
    const char   *run = NULL, *rater = NULL;
    long          sample = 0;
    int           show = 0;
    struct review r = {0};
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_SEED);
    const struct opt opts[] = {
        {"run", OPT_STR, &run, "RUN", "the specificity or influence run: id or tag"},
        {"rater", OPT_STR, &rater, "NAME", "your name (stored with each grade)"},
        {"sample", OPT_LONG, &sample, "N", "rate N random LLM-graded items instead of the queue"},
        {"show-context-info", OPT_FLAG, &show, NULL, "show interval, activation and scale"},
        COMMON_OPTIONS(co),
        {0},
    };
    int npos = 0, loaded = 0, rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc == EV_OK && npos > 0)
        rc = args_no_positional(&help, npos, argv, err);
    if (rc == EV_OK && (!run || !rater))
        rc = ev_fail(err, EV_EUSAGE, "review needs --run RUN and --rater NAME");
    if (rc == EV_OK && (!*rater || strlen(rater) > 64 || strpbrk(rater, "\t\r\n")))
        rc = ev_fail(err, EV_EUSAGE, "--rater: expected a name of 1 to 64 characters on one line");
    if (rc == EV_OK) rc = args_check_long("--sample", sample, 0, 1000000, err);
    if (rc == EV_OK) rc = common_opts_check(&co, err);
    if (rc == EV_OK) rc = args_check_long("--seed", co.seed, 0, 0x7fffffffL, err);
    if (rc == EV_OK) rc = store_open(cli->db_path, 0, &r.s, err);
    if (rc == EV_OK) rc = store_run_resolve(r.s, run, &r.run_id, err);
    if (rc == EV_OK)
        rc = human_queue_load(r.s, r.run_id, rater, (int)sample, (uint64_t)co.seed, &r.q, err);
    if (rc == EV_OK) {
        loaded = 1;
        r.rater = rater, r.sample = (int)sample, r.show_info = show;
        snprintf(r.header, sizeof r.header, "evalrun review: run %lld as %s%s",
                 (long long)r.run_id, rater, sample ? " (sample)" : "");
        rc = review_screen(&r, err);
    }
    if (loaded) human_queue_release(&r.q);
    store_close(r.s);
    return rc;
}
