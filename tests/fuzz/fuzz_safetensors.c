/* libFuzzer target: the safetensors parser (st_open_mem) and F32 conversion on any bytes.
 * Every tensor the parser accepts must lie inside the input: converting it reads all of it,
 * which AddressSanitizer checks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a private copy of exactly size bytes, so reads past the end are caught */
    uint8_t        *copy = malloc(size ? size : 1);
    struct st_file *f    = NULL;
    struct ev_err   err;
    memcpy(copy, data, size);
    if (st_open_mem(copy, size, "fuzz", &f, &err) == 0) {
        for (int i = 0; i < st_count(f); i++) {
            const struct st_tensor *t = st_at(f, i);
            if (t->n_elem > (1 << 20)) continue;
            float *out = malloc((size_t)t->n_elem * sizeof *out + 1);
            if (st_to_f32(t, out, &err) != 0) {
                /* integer dtypes: touch the bytes anyway */
                volatile uint8_t sink = 0;
                for (size_t k = 0; k < t->n_bytes; k++) sink ^= ((const uint8_t *)t->data)[k];
                (void)sink;
            }
            free(out);
            if (st_find(f, t->name) == NULL) abort();
        }
        st_close(f);
    }
    free(copy);
    return 0;
}
