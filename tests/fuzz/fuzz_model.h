/* The check shared by the model-configuration fuzz targets (fuzz_llama2c.c, fuzz_hf_config.c):
 * a configuration the parser accepted must be one the runtime can run. */
#ifndef EV_FUZZ_MODEL_H
#define EV_FUZZ_MODEL_H

#include "fuzz_util.h"

#include "model/model.h"

/* When c is small, a model with random weights built from it runs two tokens forward. */
static inline void run_small(const struct model_config *c) {
    /* parameters, roughly: embeddings + per layer attention and MLP */
    double C = c->dim, n = (double)c->vocab_size * C * 2 + (double)c->seq_len * C +
                          (double)c->n_layers * (C * C * 4 + C * c->hidden_dim * 3);
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

#endif
