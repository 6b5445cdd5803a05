/*
 * gz — gzip in memory (zlib): what Neuronpedia's exports are (batch-N.jsonl.gz).
 *
 * Included by: every wing (base).
 */
#ifndef EV_GZ_H
#define EV_GZ_H

#include <stddef.h>

#include "base/util.h"

/* Whether data starts with the gzip magic (1f 8b). */
int gz_is(const void *data, size_t n);
/* Inflates a gzip stream (several members are read one after another) into *out
 * (NUL-terminated, caller frees), *out_n bytes. More than max bytes, or a corrupt or truncated
 * stream, is EV_EFAIL naming what. */
int gz_inflate(const void *data, size_t n, size_t max, const char *what, char **out,
               size_t *out_n, struct ev_err *err);
/* Deflates data into a gzip stream (level 6): *out (caller frees), *out_n bytes. */
void gz_deflate(const void *data, size_t n, char **out, size_t *out_n);

#endif
