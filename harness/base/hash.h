/*
 * hash — SHA-256, for content hashes (models, SAEs, prompt templates) and cache keys.
 * Hex digests are 64 lowercase characters plus NUL.
 *
 * Included by: every wing (base is the bottom: it includes only base).
 */
#ifndef EV_HASH_H
#define EV_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

struct sha256 {
    uint32_t h[8];
    uint64_t n_bytes;
    uint8_t  block[64];
    size_t   fill;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t n);
void sha256_final(struct sha256 *s, uint8_t out[32]);
/* One-shot helpers writing a 65-byte hex string. */
void sha256_hex(const void *data, size_t n, char hex[65]);
void sha256_hex_final(struct sha256 *s, char hex[65]);
/* Hashes a whole file (streamed). */
int  sha256_file(const char *path, char hex[65], struct ev_err *err);

#endif
