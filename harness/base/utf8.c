/* utf8 — code-point decoding and repair of ill-formed UTF-8 (see utf8.h). */
#include "base/utf8.h"

#include <stdlib.h>
#include <string.h>

size_t utf8_next(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    unsigned char        c = u[0], lo = 0x80, hi = 0xBF;
    size_t               need;
    uint32_t             v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    /* the well-formed byte sequences of Unicode's Table 3-7 */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1, v = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2, v = c & 0x0Fu;
        if (c == 0xE0) lo = 0xA0;      /* no overlong forms */
        else if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3, v = c & 0x07u;
        if (c == 0xF0) lo = 0x90;      /* no overlong forms */
        else if (c == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        *cp = UTF8_REPLACEMENT; /* a continuation byte, C0, C1 or F5..FF */
        return 1;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n || u[i] < lo || u[i] > hi) {
            *cp = UTF8_REPLACEMENT; /* the maximal subpart ends before byte i */
            return i;
        }
        v = (v << 6) | (u[i] & 0x3Fu);
        lo = 0x80, hi = 0xBF;
    }
    *cp = v;
    return need + 1;
}

size_t utf8_put(char out[4], uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Whether the sequence at s decodes to itself (U+FFFD written in UTF-8 is valid). */
static int well_formed(const char *s, size_t n, size_t *len) {
    uint32_t cp;
    *len = utf8_next(s, n, &cp);
    return cp != UTF8_REPLACEMENT || (*len == 3 && memcmp(s, "\xEF\xBF\xBD", 3) == 0);
}

long utf8_invalid_at(const char *s, size_t n) {
    size_t i = 0, len;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        if (!well_formed(s + i, n - i, &len)) return (long)i;
        i += len;
    }
    return -1;
}

void utf8_add_valid(struct sbuf *sb, const char *s, size_t n) {
    size_t i = 0, start = 0, len;
    while (i < n) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        if (well_formed(s + i, n - i, &len)) {
            i += len;
            continue;
        }
        sbuf_add(sb, s + start, i - start);
        sbuf_add(sb, "\xEF\xBF\xBD", 3);
        i += len;
        start = i;
    }
    sbuf_add(sb, s + start, n - start);
}

char *utf8_valid_dup(const char *s) {
    struct sbuf sb;
    sbuf_init(&sb);
    utf8_add_valid(&sb, s, strlen(s));
    return sbuf_detach(&sb);
}

char *utf8_make_valid(char *s) {
    if (!s || utf8_invalid_at(s, strlen(s)) < 0) return s;
    char *v = utf8_valid_dup(s);
    free(s);
    return v;
}

size_t utf8_count(const char *s, size_t n) {
    size_t i = 0, k = 0;
    uint32_t cp;
    while (i < n) {
        i += utf8_next(s + i, n - i, &cp);
        k++;
    }
    return k;
}
