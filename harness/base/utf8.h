/*
 * utf8 — decoding UTF-8 one code point at a time, and making any bytes valid UTF-8.
 *
 * Included by: every wing (base is the bottom: it includes only base).
 *
 * Token pieces are bytes: a byte-level BPE token or a SentencePiece byte token can hold part
 * of a character, so a window of tokens, or a decoded sequence, may start or end inside one.
 * Text that leaves the program (the database, JSON, a terminal, an API request) goes through
 * utf8_valid_dup() or utf8_add_valid() first. Invalid bytes become U+FFFD by Unicode's
 * "maximal subpart" practice (Unicode 15, section 3.9, Table 3-8), which is also what
 * Python's bytes.decode("utf-8", "replace") and Hugging Face tokenizers' decode do, so a
 * sequence decodes here to the same text as there.
 */
#ifndef EV_UTF8_H
#define EV_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

enum { UTF8_REPLACEMENT = 0xFFFD };

/* Decodes the code point at s (n > 0 bytes available) into *cp and returns the bytes it
 * takes, 1..4. An ill-formed sequence gives *cp = UTF8_REPLACEMENT and the length of its
 * maximal subpart (at least 1), so that decoding again from s + return value goes on. */
size_t utf8_next(const char *s, size_t n, uint32_t *cp);

/* Writes cp (at most U+10FFFF, not a surrogate) as UTF-8 to out; returns its length, 1..4. */
size_t utf8_put(char out[4], uint32_t cp);

/* The offset of the first ill-formed byte of s[0..n), or -1 when all of it is valid. */
long utf8_invalid_at(const char *s, size_t n);

/* Appends s[0..n) to sb with each ill-formed subpart replaced by U+FFFD. */
void utf8_add_valid(struct sbuf *sb, const char *s, size_t n);

/* s made valid in a new string (caller frees): a copy when it is valid already. */
char *utf8_valid_dup(const char *s);

/* Replaces s (allocated with malloc) by its valid form and returns it; s itself when it is
 * valid already (the common case costs one scan and no copy). */
char *utf8_make_valid(char *s);

/* Code points in s[0..n) (an ill-formed subpart counts one, as the U+FFFD it becomes). */
size_t utf8_count(const char *s, size_t n);

#endif
