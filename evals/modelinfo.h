/*
 * modelinfo — `evalrun model-info`: a checkpoint described from its config.json (or llama2.c
 * header) without loading its weights: architecture, parameters, the bytes of the weights in
 * each dtype, the forward state for a context, the hooks with their widths; optionally what it
 * holds once loaded.
 *
 * Included by: evals and cli.
 */
#ifndef EV_EVALS_MODELINFO_H
#define EV_EVALS_MODELINFO_H

#include "base/util.h"

/* Prints the description of the checkpoint at path to stdout, its state sized for ctx
 * positions (at most its context); flags are model_weights_dtype_parse()'s (the dtype the
 * weights would be kept as); load: also load it and print its heap and mapped bytes. */
int modelinfo_print(const char *path, long ctx, int flags, int load, struct ev_err *err);

#endif
