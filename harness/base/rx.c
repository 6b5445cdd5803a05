/* rx — PCRE2 wrapper (see rx.h). Only this file includes pcre2.h. */
#include "base/rx.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdint.h>
#include <stdlib.h>

#include "base/utf8.h"

struct rx {
    pcre2_code *code;
    int         jit;
};

struct rx_match {
    pcre2_match_data *md;
};

int rx_compile(const char *pattern, int flags, const char *what, struct rx **out,
               struct ev_err *err) {
    int        errcode = 0;
    PCRE2_SIZE erroff  = 0;
    uint32_t   opts    = PCRE2_UTF;
    *out               = NULL;
    if (!(flags & RX_ASCII_CLASSES)) opts |= PCRE2_UCP;
    if (flags & RX_INVALID_UTF) opts |= PCRE2_MATCH_INVALID_UTF;
    if (flags & RX_CASELESS) opts |= PCRE2_CASELESS;
    if (flags & RX_MULTILINE) opts |= PCRE2_MULTILINE;
    if (flags & RX_DOTALL) opts |= PCRE2_DOTALL;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &errcode,
                                     &erroff, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        return ev_fail(err, EV_EFAIL, "%s: bad regular expression at offset %zu: %s", what,
                       (size_t)erroff, (const char *)msg);
    }
    struct rx *r = xcalloc(1, sizeof *r);
    r->code      = code;
    r->jit       = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    *out         = r;
    return EV_OK;
}

void rx_free(struct rx *r) {
    if (!r) return;
    pcre2_code_free(r->code);
    free(r);
}

struct rx_match *rx_match_new(const struct rx *r) {
    struct rx_match *m = xcalloc(1, sizeof *m);
    m->md              = pcre2_match_data_create_from_pattern(r->code, NULL);
    if (!m->md) ev_xmalloc((size_t)-1, __FILE__, __LINE__); /* OOM: aborts */
    return m;
}

void rx_match_free(struct rx_match *m) {
    if (!m) return;
    pcre2_match_data_free(m->md);
    free(m);
}

int rx_search(const struct rx *r, struct rx_match *m, const char *s, size_t len, size_t start,
              size_t *begin, size_t *end, struct ev_err *err) {
    int n = pcre2_match(r->code, (PCRE2_SPTR)s, len, start, PCRE2_NO_UTF_CHECK, m->md, NULL);
    if (n == PCRE2_ERROR_NOMATCH) return 0;
    if (n < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(n, msg, sizeof msg);
        return ev_fail(err, EV_EFAIL, "regular expression search failed at offset %zu: %s",
                       start, (const char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
    *begin         = ov[0];
    *end           = ov[1];
    return 1;
}

int rx_group(const struct rx_match *m, int g, size_t *begin, size_t *end) {
    if (g < 0 || (uint32_t)g >= pcre2_get_ovector_count(m->md)) return 0;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
    if (ov[2 * g] == PCRE2_UNSET) return 0;
    *begin = ov[2 * g];
    *end   = ov[2 * g + 1];
    return 1;
}

long rx_utf8_invalid_at(const char *s, size_t len) { return utf8_invalid_at(s, len); }
