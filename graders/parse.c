/*
 * parse — score and judgement extraction with regular expressions, through base/rx (the one
 * PCRE2 wrapper): a pattern's matches iterated over an answer, groups copied out. Answers come
 * from the network, so patterns take any bytes (RX_INVALID_UTF), and their classes are ASCII
 * (RX_ASCII_CLASSES: a "digit" is 0-9). Patterns are compiled per call: answers are short and
 * a compile costs microseconds next to a network round trip, and it keeps the module free of
 * global state (STYLE rule 18).
 */
#include "graders/parse.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/rx.h"

const char *parse_status_name(enum parse_status st) {
    return st == PARSE_OK ? "ok" : "unparsed";
}

// --- matches of one pattern over one answer --------------------------------------------

struct rxm {
    struct rx       *rx;
    struct rx_match *md;
    const char      *subj;
    size_t           len, pos;
};

/* Patterns are fixed strings in this file: a compile failure is a programmer error. */
static void rxm_init(struct rxm *m, const char *pattern, const char *subj) {
    struct ev_err err;
    int rc = rx_compile(pattern, RX_MULTILINE | RX_CASELESS | RX_INVALID_UTF | RX_ASCII_CLASSES,
                        "parse", &m->rx, &err);
    EV_ASSERT(rc == EV_OK);
    m->md = rx_match_new(m->rx);
    m->subj = subj;
    m->len = strlen(subj);
    m->pos = 0;
}

static void rxm_release(struct rxm *m) {
    rx_match_free(m->md);
    rx_free(m->rx);
}

/* Finds the next match; returns 1 (match) or 0. */
static int rxm_next(struct rxm *m) {
    struct ev_err err;
    size_t        b, e;
    if (m->pos > m->len) return 0;
    if (rx_search(m->rx, m->md, m->subj, m->len, m->pos, &b, &e, &err) != 1) return 0;
    m->pos = e > b ? e : e + 1;
    return 1;
}

/* Group g of the last match as a new string (caller frees), or NULL when unset. */
static char *rxm_group(struct rxm *m, int g) {
    size_t b, e;
    if (!rx_group(m->md, g, &b, &e)) return NULL;
    char *s = xmalloc(e - b + 1);
    memcpy(s, m->subj + b, e - b);
    s[e - b] = 0;
    return s;
}

static int rx_matches(const char *pattern, const char *subj) {
    struct rxm m;
    rxm_init(&m, pattern, subj);
    int ok = rxm_next(&m);
    rxm_release(&m);
    return ok;
}

// --- helpers -----------------------------------------------------------------------------

/* The last line that holds anything but whitespace, as a new string; "" when none. */
static char *last_line(const char *s) {
    const char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) end--;
    const char *start = end;
    while (start > s && start[-1] != '\n') start--;
    while (start < end && isspace((unsigned char)*start)) start++;
    size_t n = (size_t)(end - start);
    char  *l = xmalloc(n + 1);
    memcpy(l, start, n);
    l[n] = 0;
    return l;
}

/* Parses a decimal integer string into [lo, hi]; 0 on success. */
static int int_in(const char *s, int lo, int hi, int *out) {
    long v;
    if (!s || parse_long(s, &v) != EV_OK || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

/* Markdown and punctuation that may surround a value. */
#define LEAD  "[ \\t>*_#`\\-]*"
#define DECOR "[ \\t*_`]*"
#define TAIL  "[\\s*_`.!\"')\\]]*"

/* The value of every match of pattern in subj (its group 1, read by value(g, ud, &v), which
 * returns 0 or -1 for a value out of range) must agree: 1 and *out when found and in range,
 * 0 none found, -1 disagreement or out of range. */
static int agreed_value(const char *pattern, const char *subj,
                        int (*value)(const char *g, const int *range, int *v), const int *range,
                        int *out) {
    struct rxm m;
    int        found = 0, bad = 0, val = 0;
    rxm_init(&m, pattern, subj);
    while (rxm_next(&m)) {
        char *g = rxm_group(&m, 1);
        int   v;
        if (value(g, range, &v) != 0) bad = 1;
        else if (found && v != val) bad = 1;
        else val = v;
        found = 1;
        free(g);
    }
    rxm_release(&m);
    if (!found) return 0;
    if (bad) return -1;
    *out = val;
    return 1;
}

static int int_value(const char *g, const int *range, int *v) {
    return int_in(g, range[0], range[1], v);
}

/* All labelled values (group 1) of pattern in answer, integers in [lo, hi], must agree
 * (agreed_value). */
static int labelled_value(const char *pattern, const char *answer, int lo, int hi, int *out) {
    const int range[2] = {lo, hi};
    return agreed_value(pattern, answer, int_value, range, out);
}

// --- parsers -----------------------------------------------------------------------------

enum parse_status parse_score(const char *answer, int lo, int hi, int *score) {
    if (!answer) return PARSE_UNPARSED;
    static const char labelled[] =
        "^" LEAD "(?:final\\s+|overall\\s+)?(?:score|rating|grade|answer)" DECOR "[:=]" DECOR
        "([0-9]+)(?:\\s*/\\s*[0-9]+)?(?![0-9]|\\.[0-9])";
    int v = 0;
    int r = labelled_value(labelled, answer, lo, hi, &v);
    if (r < 0) return PARSE_UNPARSED;
    if (r == 0) {
        char *line = last_line(answer);
        r = labelled_value("^" LEAD "([0-9]+)" TAIL "$", line, lo, hi, &v);
        free(line);
        if (r <= 0) return PARSE_UNPARSED;
    }
    *score = v;
    return PARSE_OK;
}

enum parse_status parse_labeled_score(const char *answer, const char *label, int lo, int hi,
                                      int *score) {
    if (!answer || !label || !*label || strstr(label, "\\E")) return PARSE_UNPARSED;
    char *pat = xasprintf("^" LEAD "\\Q%s\\E" DECOR "[:=]" DECOR
                          "([0-9]+)(?:\\s*/\\s*[0-9]+)?(?![0-9]|\\.[0-9])",
                          label);
    int v = 0, r = labelled_value(pat, answer, lo, hi, &v);
    free(pat);
    if (r <= 0) return PARSE_UNPARSED;
    *score = v;
    return PARSE_OK;
}

static int yes_value(const char *g, const int *range, int *v) {
    (void)range;
    *v = g[0] == 'y' || g[0] == 'Y';
    return 0;
}

/* Every yes/no (group 1) of pattern in subj must agree (agreed_value): *yes 1 or 0. */
static int yes_no_value(const char *pattern, const char *subj, int *yes) {
    return agreed_value(pattern, subj, yes_value, NULL, yes);
}

enum parse_status parse_yes_no(const char *answer, int *yes) {
    if (!answer) return PARSE_UNPARSED;
    int v = 0;
    int r = yes_no_value("^" LEAD "(?:final\\s+)?answer" DECOR "[:=]" DECOR "(yes|no)\\b",
                         answer, &v);
    if (r < 0) return PARSE_UNPARSED;
    if (r == 0) {
        char *line = last_line(answer);
        r = yes_no_value("^" LEAD "[\"']?(yes|no)" TAIL "$", line, &v);
        free(line);
        if (r <= 0) return PARSE_UNPARSED;
    }
    *yes = v;
    return PARSE_OK;
}

/* Splits "1, 2 and 3" style text into integers in [lo, hi]; 0 on success. */
static int split_ints(const char *s, int lo, int hi, int **vals, int *n, int dedup) {
    int *a = NULL, na = 0, cap = 0;
    const char *p = s;
    while (*p) {
        while (*p && !isdigit((unsigned char)*p) && *p != '-') p++;
        if (!*p) break;
        const char *q = p + (*p == '-');
        while (isdigit((unsigned char)*q)) q++;
        char buf[32];
        size_t len = (size_t)(q - p);
        if (len == 0 || len >= sizeof buf) goto bad;
        memcpy(buf, p, len);
        buf[len] = 0;
        int v;
        if (int_in(buf, lo, hi, &v) != 0) goto bad;
        int seen = 0;
        for (int i = 0; dedup && i < na; i++) seen |= a[i] == v;
        if (!seen) {
            if (na == cap) {
                cap = cap ? 2 * cap : 8;
                a = xrealloc(a, (size_t)cap * sizeof *a);
            }
            a[na++] = v;
        }
        p = q;
    }
    *vals = a;
    *n = na;
    return 0;
bad:
    free(a);
    return -1;
}

enum parse_status parse_int_list(const char *answer, int want_n, int lo, int hi, int **vals,
                                 int *n) {
    *vals = NULL;
    *n = 0;
    if (!answer) return PARSE_UNPARSED;
    struct rxm m;
    char      *last = NULL;
    rxm_init(&m, "\\[\\s*(-?[0-9]+(?:\\s*,\\s*-?[0-9]+)*)\\s*,?\\s*\\]", answer);
    while (rxm_next(&m)) {
        free(last);
        last = rxm_group(&m, 1);
    }
    rxm_release(&m);
    if (!last) return PARSE_UNPARSED;
    int *a = NULL, na = 0;
    int  r = split_ints(last, lo, hi, &a, &na, 0);
    free(last);
    if (r != 0 || (want_n > 0 && na != want_n)) {
        free(a);
        return PARSE_UNPARSED;
    }
    *vals = a;
    *n = na;
    return PARSE_OK;
}

enum parse_status parse_window_numbers(const char *answer, int max, int **vals, int *n) {
    *vals = NULL;
    *n = 0;
    if (!answer || max < 1) return PARSE_UNPARSED;
    char *line = last_line(answer);
    enum parse_status st = PARSE_UNPARSED;
    static const char none[] = "^" LEAD "(?:answer" DECOR ":" DECOR ")?none" TAIL "$";
    static const char list[] =
        "^" LEAD "(?:answer" DECOR ":" DECOR ")?\\[?\\s*([0-9]+(?:\\s*(?:,|,?\\s*and)\\s*[0-9]+)*)"
        "\\s*\\]?" TAIL "$";
    if (rx_matches(none, line)) {
        st = PARSE_OK;
        goto out;
    }
    struct rxm m;
    rxm_init(&m, list, line);
    if (rxm_next(&m)) {
        char *g = rxm_group(&m, 1);
        int  *a = NULL, na = 0;
        if (split_ints(g, 1, max, &a, &na, 1) == 0) {
            *vals = a;
            *n = na;
            st = PARSE_OK;
        }
        free(g);
    }
    rxm_release(&m);
out:
    free(line);
    return st;
}

/* A description that is only a score ("2", "Score: 3", "3/3", "0.5"): the explainer answered
 * the wrong question (issue 17.6). */
static int only_a_score(const char *s) {
    if (strncasecmp(s, "score", 5) == 0) s += 5;
    int digits = 0;
    for (; *s; s++) {
        if (*s >= '0' && *s <= '9') digits++;
        else if (!strchr(" \t:=./-", *s)) return 0;
    }
    return digits > 0;
}

enum parse_status parse_description(const char *answer, size_t max_len, char **desc) {
    return parse_description_why(answer, max_len, desc, NULL, 0);
}

enum parse_status parse_description_why(const char *answer, size_t max_len, char **desc,
                                        char *why, size_t why_n) {
    *desc = NULL;
    if (why && why_n) why[0] = 0;
    if (!answer || !*answer) {
        if (why && why_n) snprintf(why, why_n, "the answer was empty");
        return PARSE_UNPARSED;
    }
    char      *text = NULL;
    struct rxm m;
    rxm_init(&m, "^" LEAD "description" DECOR ":" DECOR "(.*\\S)", answer);
    while (rxm_next(&m)) {
        free(text);
        text = rxm_group(&m, 1);
    }
    rxm_release(&m);
    if (!text) text = last_line(answer);
    /* strip surrounding whitespace and emphasis, then one pair of matching quotes */
    static const char strip[] = " \t\r\n*_`";
    char  *s = text;
    size_t len = strlen(s);
    while (len > 0 && strchr(strip, s[len - 1])) s[--len] = 0;
    while (*s && strchr(strip, *s)) s++;
    len = strlen(s);
    if (len >= 2 && (s[0] == '"' || s[0] == '\'') && s[len - 1] == s[0]) {
        s[len - 1] = 0;
        s++;
    }
    len = strlen(s);
    if (len == 0 || len > max_len || only_a_score(s)) {
        if (why && why_n) {
            if (len == 0) snprintf(why, why_n, "the answer held no description");
            else if (len > max_len)
                snprintf(why, why_n, "the description was %zu bytes long, over the limit of %zu",
                         len, max_len);
            else
                snprintf(why, why_n, "the answer was only a score ('%.40s'), not a description",
                         s);
        }
        free(text);
        return PARSE_UNPARSED;
    }
    *desc = xstrdup(s);
    free(text);
    return PARSE_OK;
}
