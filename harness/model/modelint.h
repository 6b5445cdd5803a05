/*
 * modelint — what model.c (the runtime, llama2.c checkpoints, random models) and model_hf.c
 * (Hugging Face folders) share: struct model's insides and the steps both loaders end with.
 * Not for any other file (SQLite's btreeInt.h pattern).
 *
 * Included by: model.c and model_hf.c only (harness/model).
 *
 * Ownership: struct model owns the arena (vectors and the matrices that had to be copied),
 * the safetensors files its mapped matrices point into (closed by model_free), the RoPE
 * tables and the tokenizer.
 */
#ifndef EV_MODELINT_H
#define EV_MODELINT_H

#include "model/model.h"
#include "model/safetensors.h"

struct model {
    struct model_config  cfg;
    struct model_weights w;
    void                *arena;        /* one allocation: vectors, copied matrices */
    size_t               arena_bytes;
    size_t               mapped_bytes; /* matrices used in place from the mappings */
    struct st_file     **files;        /* (n_files) kept open while matrices point into them */
    int                  n_files;
    float *inv_freq;       /* (rot/2) global layers' RoPE frequencies, or NULL: kern_rope */
    float *inv_freq_local; /* (rot/2) local layers' (Gemma 3), or NULL: inv_freq */
    struct tok          *tok;
    char                 hash[65];
    char                *path;
};

/* Validates dimensions and options (what names the source in messages). */
int  model_config_check(const struct model_config *c, const char *what, struct ev_err *err);
/* Per-layer pointer table for m (m->w.layer, n_layers entries, zeroed); caller fills it. */
void model_layers_alloc(struct model *m);
/* The RoPE frequency tables the config needs (partial rotary dims, scaling, local bases);
 * none for the plain llama2.c / Llama cases, which kern_rope computes as run.c does. */
void model_rope_tables(struct model *m);
/* Loads the tokenizer found in dir (tokenizer.json; for llama2.c tok<V>.bin / tokenizer.bin). */
int  model_load_tokenizer(struct model *m, const char *dir, const char *what, struct ev_err *err);
/* A Hugging Face folder (model_hf.c). */
int  model_load_hf(const char *dir, int flags, struct model **out, struct ev_err *err);
/* config.json text -> config (model_hf.c); also reads torch_dtype into *torch_dtype
 * (MODEL_DTYPE_F32 when absent) when not NULL. */
int  model_hf_config_text(const char *text, size_t n, const char *what,
                          struct model_config *cfg, enum model_dtype *torch_dtype,
                          struct ev_err *err);

#endif
