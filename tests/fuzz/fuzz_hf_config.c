/* libFuzzer target: a Hugging Face config.json, on any bytes. A configuration the parser
 * accepts (model_config_from_hf_json) must be one the runtime can run: when small, a model with
 * random weights is built from it and two tokens go through the forward pass. */
#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct model_config c;
    struct ev_err       err;
    char               *body = fuzz_copy(data, size);
    if (model_config_from_hf_json(body, size, "fuzz config.json", &c, &err) == 0) run_small(&c);
    free(body);
    return 0;
}
