/* libFuzzer target: a --corpus file, on any bytes (the first byte odd: read as JSON Lines with
 * the field "text", even: as plain text), read from a file as every command reads it. Every
 * piece handed out is NUL-terminated at its length and free of NUL bytes; a plain-text file
 * that is read to its end was handed out whole, byte for byte, and one holding a NUL byte is
 * refused (a NUL is never a silent end of the text). */
#include "fuzz_util.h"

#include "base/corpus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int            jsonl = data[0] & 1;
    const uint8_t *body  = data + 1;
    size_t         n     = size - 1;
    struct corpus *c     = NULL;
    struct ev_err  err;
    if (corpus_open(fuzz_file(body, n), jsonl ? "text" : NULL, &c, &err) != 0) return 0;
    size_t      off = 0;
    int         r, doc;
    const char *t;
    size_t      len;
    while ((r = corpus_next(c, &t, &len, &doc, &err)) == 1) {
        FUZZ_CHECK(t[len] == '\0' && strlen(t) == len);
        if (!jsonl) {
            FUZZ_CHECK(off + len <= n && memcmp(body + off, t, len) == 0);
            off += len;
        }
    }
    if (r == 0 && !jsonl) FUZZ_CHECK(off == n && memchr(body, 0, n) == NULL);
    if (r != 0) FUZZ_CHECK(err.msg[0] != '\0');
    corpus_close(c);
    return 0;
}
