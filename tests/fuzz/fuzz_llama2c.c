/* libFuzzer target: a llama2.c checkpoint (header + weights), on any bytes. The header's
 * configuration (model_config_from_llama2c) must be one the runtime can run: when small, a
 * model with random weights is built from it and two tokens go through the forward pass. The
 * bytes are also loaded the real way, as a file (model_load: the size check against the
 * header, the weights read). */
#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct model_config c;
    struct ev_err       err;
    char               *body = fuzz_copy(data, size);
    struct model       *m = NULL;
    if (model_config_from_llama2c(body, size, "fuzz.bin", &c, &err) == 0) run_small(&c);
    if (model_load_flags(fuzz_file(data, size), MODEL_LOAD_NO_TOKENIZER, &m, &err) == 0)
        model_free(m);
    free(body);
    return 0;
}
