/*
 * parse — reading scores and judgements out of grader answers, with PCRE2.
 *
 * Included by: graders, evals and harness/cli.
 *
 * This module has its own small PCRE2 wrapper (it includes pcre2.h; harness/base/rx.h belongs to
 * the tokenizer and is not used here), so that grader parsing does not depend on it.
 *
 * Invariant: a parser either returns PARSE_OK with a value it is sure of, or PARSE_UNPARSED.
 * An answer with no score, an out-of-range score, or two different candidate scores is
 * unparsed: it is stored with its raw text and parse status 'unparsed' and never scored 0.
 */
#ifndef EV_GRADER_PARSE_H
#define EV_GRADER_PARSE_H

#include "base/util.h"

enum parse_status {
    PARSE_OK       = 0,
    PARSE_UNPARSED = 1,
};

/* The text stored in grades.parse_status for a status ("ok" or "unparsed"). */
const char *parse_status_name(enum parse_status st);

/*
 * A score in [lo, hi] (the 0-3 specificity rubric, for instance). Accepted forms, in order:
 *   1. labelled: lines like "Score: 2", "Final score = 2", "**Rating:** 2/3", "Answer: 2"
 *      (case-insensitive; all labelled values must agree, else unparsed);
 *   2. a lone integer as the whole answer or as its last non-empty line ("2", "**2**", "2.").
 * Anything else is unparsed.
 */
enum parse_status parse_score(const char *answer, int lo, int hi, int *score);

/* Like parse_score, but only the value labelled `label` (e.g. "Concept" or "Fluency" in
 * "Concept: 2\nFluency: 3"); a lone integer is not accepted. */
enum parse_status parse_labeled_score(const char *answer, const char *label, int lo, int hi,
                                      int *score);

/* A yes/no judgement: "Answer: yes", or an answer that is (or whose last non-empty line is)
 * "yes"/"no" with optional punctuation and markdown. *yes is 1 or 0. */
enum parse_status parse_yes_no(const char *answer, int *yes);

/* The last bracketed list of integers, e.g. "[1, 0, 0, 1, 0]". When want_n > 0 the list must
 * have exactly want_n elements; every element must lie in [lo, hi]. On success *vals (caller
 * frees with free()) holds *n values. */
enum parse_status parse_int_list(const char *answer, int want_n, int lo, int hi, int **vals,
                                 int *n);

/* Window numbers in 1..max, e.g. "2, 5" or "None": the last non-empty line that is a list of
 * numbers or the word none (optionally after "Answer:"). "None" gives *n = 0. Duplicates are
 * removed, order kept. On success *vals (caller frees; NULL when *n is 0) holds *n values. */
enum parse_status parse_window_numbers(const char *answer, int max, int **vals, int *n);

/* An explainer's description: the text after a "Description:" label if present, else the
 * last non-empty line; surrounding quotes, markdown emphasis and whitespace are stripped.
 * Unparsed when empty, longer than max_len bytes, or only a score ("2", "Score: 3", "3/3":
 * the explainer answered the wrong question). Caller frees *desc with free(). */
enum parse_status parse_description(const char *answer, size_t max_len, char **desc);
/* The same, and when unparsed a one-line reason in why (why_n bytes; may be NULL): "the answer
 * was empty", "... only a score ('Score: 3') ...", "the description was N bytes long, over the
 * limit of M" — what the explainer's re-ask tells the model (graders/explain.h). */
enum parse_status parse_description_why(const char *answer, size_t max_len, char **desc,
                                        char *why, size_t why_n);

#endif
