/*
 * tok — tokenizers: llama2.c tokenizer.bin (score-ordered merges, byte fallback), byte-level
 * BPE from a Hugging Face tokenizer.json (its pre-tokenizer Split regex run by PCRE2 with
 * UTF + UCP) or from GPT-2's original encoder.json + vocab.bpe, and SentencePiece-style
 * tokenizer.json models (Metaspace / "▁", byte_fallback). docs/formats.md says exactly what
 * is supported and where evalrun differs from the reference tokenizers.
 *
 * Included by: model and the wings above it (sae, store, graders, evals, cli).
 *
 * Invariants: encode(text) gives exactly the reference tokenizer's ids on any UTF-8 text
 * (llama2.c: run.c's encode(); GPT-2 files: OpenAI's encoder.py; tokenizer.json: HF's
 * tokenizers, NFC input assumed); for byte-level BPE decode(encode(t)) == t, and for llama2.c
 * and SentencePiece-style too when t holds no added-token text (e.g. "<s>"). Byte-level kinds
 * refuse invalid UTF-8 (EV_EFAIL naming the byte offset); llama2.c takes any bytes.
 * A loaded struct tok is read-only: encode/decode may run on it from several threads.
 *
 * Ownership: struct tok is opaque, freed with tok_free(). Strings returned by tok_piece()
 * are borrowed until tok_free().
 */
#ifndef EV_TOK_H
#define EV_TOK_H

#include "base/util.h"

struct tok;

/*
 * Loads a tokenizer from path: a tokenizer.bin (llama2.c), a tokenizer.json, GPT-2's
 * encoder.json or vocab.bpe (the other beside it), or a folder holding (searched in this
 * order) tokenizer.json, tokenizer.bin / tok512.bin / tok.bin, or encoder.json + vocab.bpe.
 * For tokenizer.json and GPT-2 files, integer bos_token_id / eos_token_id in a config.json
 * beside them set BOS/EOS. A file of the wrong kind, or of an unsupported kind (named), is
 * EV_EFAIL. Caller frees *out with tok_free().
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
/* Decodes ids to text (BOS/EOS dropped; llama2.c and SentencePiece-style drop the one
 * leading space of the first piece, as SentencePiece does); caller frees with free().
 * Out-of-range ids are an error. Byte tokens that leave part of a character give U+FFFD
 * (utf8_make_valid(), as Hugging Face tokenizers decode), so the text is always UTF-8. */
int tok_decode(const struct tok *t, const int *ids, int n, char **text, struct ev_err *err);
/* The bytes one token stands for, as they would appear after token prev (llama2.c strips the
 * leading space after BOS, as run.c prints; SentencePiece-style also at prev -1, the start);
 * for streaming and display of per-token activations. "" for an out-of-range id. Borrowed. */
const char *tok_piece(const struct tok *t, int prev, int id);

#endif
