/*
 * rx — the one wrapper around PCRE2 (STYLE rule 16): compiled patterns and searches over
 * UTF-8 text. Patterns are compiled with PCRE2_UTF | PCRE2_UCP (so \s, \w, \d and the POSIX
 * classes follow Unicode, as the tokenizer regexes expect) and JIT-compiled when the library
 * supports it.
 *
 * Included by: every wing (base is the bottom: it includes only base).
 *
 * Subjects must be valid UTF-8: check once with rx_utf8_invalid_at(); searches skip PCRE2's
 * own per-call check (which would make a scan over a long text quadratic). A pattern compiled
 * with RX_INVALID_UTF takes any bytes instead.
 *
 * Ownership: struct rx and struct rx_match are opaque; free them with rx_free() and
 * rx_match_free(). A struct rx is read-only after rx_compile() and may be shared by threads;
 * each thread uses its own struct rx_match.
 */
#ifndef EV_RX_H
#define EV_RX_H

#include <stddef.h>

#include "base/util.h"

enum rx_flags {
    RX_CASELESS = 1 << 0,
    RX_MULTILINE = 1 << 1,
    RX_DOTALL = 1 << 2,
    /* subjects may hold invalid UTF-8 (text from the network, such as a grader's answer):
     * PCRE2_MATCH_INVALID_UTF, so a bad sequence never matches and is never an error, and
     * no rx_utf8_invalid_at() check is needed first */
    RX_INVALID_UTF = 1 << 3,
    /* \d, \s, \w and the POSIX classes match ASCII only (no PCRE2_UCP) */
    RX_ASCII_CLASSES = 1 << 4,
};

struct rx;
struct rx_match;

/* Compiles pattern (NUL-terminated) with flags (enum rx_flags). what names the pattern's
 * source in the error message, which also gives PCRE2's reason and offset. */
int  rx_compile(const char *pattern, int flags, const char *what, struct rx **out,
                struct ev_err *err);
void rx_free(struct rx *r);

/* Match data sized for r's capture groups; caller frees with rx_match_free(). */
struct rx_match *rx_match_new(const struct rx *r);
void             rx_match_free(struct rx_match *m);

/*
 * Searches s[0..len) from byte offset start. Returns 1 when found (the match is
 * [*begin, *end); it may be empty), 0 when not, or EV_EFAIL (e.g. the match limit hit) with
 * a message in err.
 */
int rx_search(const struct rx *r, struct rx_match *m, const char *s, size_t len, size_t start,
              size_t *begin, size_t *end, struct ev_err *err);
/* After a successful rx_search: capture group g (1-based; 0 = whole match). Returns 1 and
 * sets [*begin, *end) when the group took part in the match, else 0. */
int rx_group(const struct rx_match *m, int g, size_t *begin, size_t *end);

/* Returns -1 when s[0..len) is valid UTF-8, else the byte offset of the first bad sequence. */
long rx_utf8_invalid_at(const char *s, size_t len);

#endif
