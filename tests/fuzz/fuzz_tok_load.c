/* libFuzzer target: the tokenizer loaders on any bytes. The first byte picks the loader
 * (llama2.c tokenizer.bin or tokenizer.json); whatever loads must then encode and decode a
 * few texts without faults. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const texts[] = {"", " ", "Hello world", "a  b\t\r\nc 123 'll",
                                        "\xd0\x9a\xd0\xbe\xd1\x88\xd0\xba\xd0\xb0 \xe7\x8c\xab",
                                        "<s></s><|endoftext|>"};
    if (size < 1) return 0;
    struct tok   *t = NULL;
    struct ev_err err;
    char         *copy = malloc(size);
    memcpy(copy, data + 1, size - 1);
    int rc = (data[0] & 1) ? tok_load_llama2c_mem(copy, size - 1, "fuzz", &t, &err)
                           : tok_load_json_mem(copy, size - 1, "fuzz", &t, &err);
    if (rc == 0) {
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
            int  *ids = NULL, n = 0;
            char *back = NULL;
            if (tok_encode(t, texts[i], 1, &ids, &n, &err) == 0) {
                for (int k = 0; k < n; k++)
                    if (ids[k] < 0 || ids[k] >= tok_vocab_size(t)) abort();
                if (tok_decode(t, ids, n, &back, &err) != 0) abort();
                for (int k = 0; k < n; k++) (void)strlen(tok_piece(t, k ? ids[k - 1] : -1, ids[k]));
                free(back);
            }
            free(ids);
        }
        tok_free(t);
    }
    free(copy);
    return 0;
}
