/*
 * gz — gzip in memory with zlib (see gz.h).
 */
#include "base/gz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int gz_is(const void *data, size_t n) {
    const unsigned char *p = data;
    return n >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

int gz_inflate(const void *data, size_t n, size_t max, const char *what, char **out,
               size_t *out_n, struct ev_err *err) {
    z_stream zs;
    size_t   cap = n * 4 + 4096, len = 0;
    char    *buf = xmalloc(cap + 1);
    int      zr = Z_OK, rc = EV_OK;
    memset(&zs, 0, sizeof zs);
    *out = NULL;
    *out_n = 0;
    if (inflateInit2(&zs, 15 + 16) != Z_OK) {
        free(buf);
        return ev_fail(err, EV_EFAIL, "%s: zlib could not start", what);
    }
    zs.next_in = (unsigned char *)(uintptr_t)data;
    zs.avail_in = (uInt)(n > UINT32_MAX ? UINT32_MAX : n);
    for (;;) {
        if (len == cap) {
            if (cap >= max) {
                rc = ev_fail(err, EV_EFAIL, "%s: inflates to more than %zu bytes", what, max);
                break;
            }
            cap = cap * 2 > max ? max : cap * 2;
            buf = xrealloc(buf, cap + 1);
        }
        zs.next_out = (unsigned char *)buf + len;
        zs.avail_out = (uInt)(cap - len > UINT32_MAX ? UINT32_MAX : cap - len);
        zr = inflate(&zs, Z_NO_FLUSH);
        len = cap - zs.avail_out;
        if (zr == Z_STREAM_END) {
            if (zs.avail_in == 0) break;
            /* another gzip member follows (concatenated .gz files are one stream) */
            if (inflateReset(&zs) != Z_OK) zr = Z_DATA_ERROR;
            else continue;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = ev_fail(err, EV_EFAIL, "%s: corrupt gzip data (%s)", what,
                         zs.msg ? zs.msg : "zlib error");
            break;
        }
        if (zr == Z_BUF_ERROR && zs.avail_out > 0) {
            rc = ev_fail(err, EV_EFAIL, "%s: truncated gzip data", what);
            break;
        }
    }
    inflateEnd(&zs);
    if (rc != EV_OK) {
        free(buf);
        return rc;
    }
    buf[len] = 0;
    *out = buf;
    *out_n = len;
    return EV_OK;
}

void gz_deflate(const void *data, size_t n, char **out, size_t *out_n) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    EV_ASSERT(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    size_t cap = deflateBound(&zs, (uLong)n) + 64;
    char  *buf = xmalloc(cap);
    zs.next_in = (unsigned char *)(uintptr_t)data;
    zs.avail_in = (uInt)n;
    zs.next_out = (unsigned char *)buf;
    zs.avail_out = (uInt)cap;
    EV_ASSERT(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    *out_n = cap - zs.avail_out;
    deflateEnd(&zs);
    *out = buf;
}
