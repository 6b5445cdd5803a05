/*
 * tok — tokenizers: llama2.c tokenizer.bin (score-ordered merges, byte fallback), byte-level
 * BPE from a Hugging Face tokenizer.json (its pre-tokenizer Split regex run by PCRE2 with
 * UTF + UCP) or from GPT-2's original encoder.json + vocab.bpe, and SentencePiece-style
 * tokenizer.json models (Metaspace / "▁", byte_fallback).
 *
 * Invariants: encode(text) gives exactly the reference tokenizer's ids on any UTF-8 text;
 * for byte-level BPE decode(encode(t)) == t.
 *
 * Ownership: struct tok is opaque, freed with tok_free(). Strings returned by tok_piece()
 * are borrowed until tok_free().
 */
#ifndef EV_TOK_H
#define EV_TOK_H

#include "util.h"

struct tok;

/*
 * Loads a tokenizer from path: a tokenizer.bin (llama2.c), a tokenizer.json, or a folder
 * holding tokenizer.json, tokenizer.bin / tok*.bin, or encoder.json + vocab.bpe.
 * A file of the wrong kind gets a clear error naming it.
 */
int  tok_load(const char *path, struct tok **out, struct ev_err *err);
/* Loads a llama2.c tokenizer.bin image from memory (data is copied); what names it in
 * errors. BOS is 1, EOS 2; byte pieces <0xXX> decode to their byte. */
int  tok_load_llama2c_mem(const void *data, size_t size, const char *what, struct tok **out,
                          struct ev_err *err);
/* Loads a Hugging Face tokenizer.json (BPE model) from memory; what names it in errors. */
int  tok_load_json_mem(const char *text, size_t len, const char *what, struct tok **out,
                       struct ev_err *err);
void tok_free(struct tok *t);

int tok_vocab_size(const struct tok *t);
int tok_bos(const struct tok *t); /* -1 when the tokenizer has none */
int tok_eos(const struct tok *t); /* -1 when the tokenizer has none */

/* Encodes UTF-8 text; prepends BOS when add_bos and the tokenizer has one. *ids is
 * allocated (caller frees with free()), *n its length. */
int tok_encode(const struct tok *t, const char *text, int add_bos, int **ids, int *n,
               struct ev_err *err);
/* Decodes ids to UTF-8 text (BOS/EOS dropped); caller frees with free(). Out-of-range ids
 * are an error. */
int tok_decode(const struct tok *t, const int *ids, int n, char **text, struct ev_err *err);
/* The text one token stands for, as it would appear after token prev (llama2.c strips the
 * leading space after BOS); for display of per-token activations. Borrowed. */
const char *tok_piece(const struct tok *t, int prev, int id);

#endif
