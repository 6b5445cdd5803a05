/*
 * acts — the activation cache: residual-stream vectors collected at one hook, on disk, and a
 * reader that streams them in a seeded shuffled order for SAE training.
 *
 * Included by: sae and the wings above it (store, graders, evals, cli).
 *
 * Format (version 1): a folder holding
 *   header.json   {"magic": "evalrun-acts", "version": 1, "d_in": D, "n_tokens": N,
 *                  "dtype": "float32", "byte_order": "little",
 *                  "shards": [{"file": "acts-00000.f32", "n_tokens": n0}, ...],
 *                  "meta": {...}}            (meta: model, model_hash, hook_name, corpus,
 *                                             corpus_hash, seq_len, seed, ... as the writer
 *                                             was told)
 *   acts-NNNNN.f32 raw float32, little-endian, row-major (n_tokens, D), no header
 *   tokens-NNNNN.i32 the token id of each row (int32, little-endian), same row order
 * header.json is written last and the folder is built under a temporary name and renamed, so
 * a folder with a header is complete. The reader checks magic, version, every shard's size
 * and that every value is finite (NaN/Inf is an error naming the shard and row).
 *
 * Shuffle buffer: acts_stream_next() keeps a buffer of buf_tokens row indices, filled in file
 * order; each emitted row is drawn uniformly from the buffer and replaced by the next row in
 * file order (wrapping to the start: epochs). The order depends only on the seed and the
 * buffer size, and acts_stream_skip(n) advances exactly as n emitted rows would, which is
 * how training resumes from a checkpoint.
 *
 * Ownership: struct acts is opaque; acts_close() frees it (and unmaps the shards). An
 * in-memory struct acts (acts_from_memory) borrows its array.
 */
#ifndef EV_ACTS_H
#define EV_ACTS_H

#include <stdint.h>

#include "base/util.h"

#define ACTS_MAGIC   "evalrun-acts"
#define ACTS_VERSION 1

struct acts;

/* Opens the cache folder dir (validated as above). Caller frees with acts_close(). */
int  acts_open(const char *dir, struct acts **out, struct ev_err *err);
/* Wraps n rows of d floats (borrowed; must outlive the struct). */
struct acts *acts_from_memory(const float *x, int64_t n, int d);
void acts_close(struct acts *a);

int64_t      acts_n_tokens(const struct acts *a);
int          acts_d_in(const struct acts *a);
/* Row i (0 <= i < n_tokens), borrowed: D floats. */
const float *acts_row(const struct acts *a, int64_t i);
/* Token id of row i, or -1 when not recorded. */
int          acts_token(const struct acts *a, int64_t i);
/* The header's "meta" object as JSON text (borrowed), or "{}" for in-memory caches. */
const char  *acts_meta_json(const struct acts *a);

/* Starts (or restarts) the shuffled stream. buf_tokens < 1 means no shuffling. */
void acts_stream_start(struct acts *a, uint64_t seed, int64_t buf_tokens);
/* Copies the next n rows of the stream into x (n, D). */
void acts_stream_next(struct acts *a, float *x, int n);
/* Advances the stream by n rows without copying. */
void acts_stream_skip(struct acts *a, int64_t n);

/* Mean L2 norm of the first n rows in file order (n clipped to n_tokens). */
double acts_mean_norm(const struct acts *a, int64_t n);

// ---- writing ----
struct acts_writer;

/* Starts a cache to be placed at dir (built in a temporary sibling folder). meta_json is a
 * JSON object recorded in header.json (copied). Caller finishes with acts_writer_finish() or
 * abandons with acts_writer_free() (which removes the temporary folder). */
int  acts_writer_new(const char *dir, int d_in, int64_t shard_tokens, const char *meta_json,
                     struct acts_writer **out, struct ev_err *err);
/* Appends n rows x (n, D) with their token ids (n; NULL records -1). Non-finite values are
 * an error naming the row. */
int  acts_writer_add(struct acts_writer *w, const float *x, const int *tokens, int n,
                     struct ev_err *err);
int64_t acts_writer_count(const struct acts_writer *w);
/* Writes header.json and renames the folder into place (replacing an older cache there). */
int  acts_writer_finish(struct acts_writer *w, struct ev_err *err);
void acts_writer_free(struct acts_writer *w);

// ---- token corpora and collection from the model ----

struct model;
struct model_state;

/* A corpus cut into n_seq sequences of T tokens (each starting with BOS when the tokenizer has
 * one), row-major (n_seq, T). corpus_hash identifies the source and the cut. */
struct acts_corpus {
    int  *tokens; /* (n_seq, T), owned */
    int   n_seq, T;
    char  hash[65];
    char  source[512]; /* what it was read from: the path, or "stories sampled from the model
                        * (seed S)"; "" when not known */
};
void acts_corpus_release(struct acts_corpus *c);

/* Reads the corpus at path (plain text, JSON Lines with the string field text_field, NULL:
 * "text", or a folder of such files: base/corpus.h), tokenizes it with the model's tokenizer
 * piece by piece (whole lines of about 2,000 bytes; one JSON Lines record), joins documents
 * with BOS (EOS when the tokenizer has no BOS) as sampled stories are joined, and cuts the
 * token stream into sequences of T tokens, BOS first, until n_tokens tokens (rounded up to
 * whole sequences; fewer when the corpus runs out). Only what those need is read. A corpus
 * shorter than one sequence, a NUL byte (its offset), a bad JSON line (file:line) is an error
 * naming it. corpus_hash: what was read and the cut. */
int acts_corpus_from_file(const struct model *m, const char *path, const char *text_field,
                          int64_t n_tokens, int T, struct acts_corpus *out, struct ev_err *err);

/* Samples stories from the model itself: each sequence starts with BOS and is sampled at
 * temperature 1 (seeded) to T tokens; after an EOS the next story starts with BOS inside the
 * same sequence. Reproducible for a seed. */
int acts_corpus_generate(struct model *m, int64_t n_tokens, int T, uint64_t seed,
                         struct acts_corpus *out, struct ev_err *err);

/* The hash acts_corpus_generate() gives its corpus, without sampling it. */
void acts_corpus_generate_hash(const struct model *m, int64_t n_tokens, int T, uint64_t seed,
                               char hex[65]);

/* Runs every sequence of c through the model up to the hook (name, TransformerLens style) and
 * appends the residuals there to w (skipping the BOS position when skip_bos). An unknown hook
 * name is EV_EFAIL naming it. Polls ev_interrupted() between sequences (EV_EINTR). */
int acts_collect(struct model *m, const char *hook_name, const struct acts_corpus *c,
                 int skip_bos, struct acts_writer *w, struct ev_err *err);

#endif
