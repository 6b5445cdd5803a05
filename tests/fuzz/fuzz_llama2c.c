/* libFuzzer target: a llama2.c checkpoint (header + weights), on any bytes. The header's
 * configuration (model_config_from_llama2c) must be one the runtime can run: when small, a
 * model with random weights is built from it and two tokens go through the forward pass. The
 * bytes are also loaded the real way, as a file (model_load: the size check against the
 * header, the weights read). */
#include "fuzz_util.h"

#include "model/model.h"

static void run_small(const struct model_config *c) {
    /* parameters, roughly: embeddings + per layer attention and MLP */
    double n = (double)c->vocab_size * c->dim * 2 + (double)c->seq_len * c->dim +
               (double)c->n_layers * ((double)c->dim * c->dim * 4 + (double)c->dim * c->hidden_dim * 3);
    if (n > (1 << 18) || c->seq_len < 2) return;
    struct model       *m = NULL;
    struct model_state *st = NULL;
    struct ev_err       err;
    if (model_new_random(c, 1, &m, &err) != 0) return; /* EV_EUSAGE: inconsistent, refused */
    if (model_state_new(m, 2, 0, &st, &err) == 0) {
        int tokens[2] = {0, c->vocab_size - 1};
        FUZZ_CHECK(model_forward(st, tokens, 0, 2, NULL, 0, &err) == 0);
        model_state_free(st);
    }
    model_free(m);
}

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
