/* Helpers shared by the libFuzzer targets (tests/fuzz/fuzz_*.c). */
#ifndef EV_FUZZ_UTIL_H
#define EV_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A private copy of exactly size bytes (plus nothing), so that a read past the end of the
 * input is caught by AddressSanitizer; caller frees. */
static inline char *fuzz_copy(const uint8_t *data, size_t size) {
    char *c = malloc(size ? size : 1);
    if (size) memcpy(c, data, size);
    return c;
}

/* The same bytes as a NUL-terminated string (parsers of text that want one). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
    char *c = malloc(size + 1);
    if (size) memcpy(c, data, size);
    c[size] = '\0';
    return c;
}

/* A file holding exactly these bytes, for parsers that take a path: one memfd per process,
 * rewritten for each input; returns its path (/proc/self/fd/N). */
static inline const char *fuzz_file(const uint8_t *data, size_t size) {
    static int  fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz", 0);
        if (fd < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) abort();
    return path;
}

/* An invariant of the code under test failed: report and crash (libFuzzer keeps the input). */
#define FUZZ_CHECK(x)                                                                   \
    do {                                                                                \
        if (!(x)) {                                                                     \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #x);   \
            abort();                                                                    \
        }                                                                               \
    } while (0)

#endif
