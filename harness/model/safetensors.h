/*
 * safetensors — read (mmap, validated) and write the safetensors format.
 *
 * Included by: model and the wings above it (sae, store, graders, evals, cli).
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "string", ...}}, then the raw data; offsets are relative to the
 * byte after the header.
 *
 * Reading validates everything once, at open (STYLE rule 13): header length within the file,
 * JSON well-formed, known dtype, shape product * dtype size == end - begin, offsets inside the
 * data area and not overlapping. A file that lies gets a clear error naming the tensor.
 *
 * Ownership: struct st_file is opaque and owns the mapping; tensor data pointers and names are
 * valid until st_close(). Writers copy nothing: data passed to st_writer_add() must stay valid
 * until st_writer_write() returns.
 */
#ifndef EV_SAFETENSORS_H
#define EV_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

enum st_dtype {
    ST_F32,
    ST_F16,
    ST_BF16,
    ST_F64,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U8,
    ST_BOOL,
};

#define ST_MAX_DIMS 8

struct st_tensor {
    const char   *name;
    enum st_dtype dtype;
    int           n_dims;
    int64_t       shape[ST_MAX_DIMS];
    int64_t       n_elem;
    const void   *data;   /* into the mapping; may be unaligned for the dtype */
    size_t        n_bytes;
};

struct st_file;

/* Maps and validates path; caller frees with st_close(). */
int  st_open(const char *path, struct st_file **out, struct ev_err *err);
/* The same over an image already in memory (borrowed: it must outlive the st_file); what
 * names it in errors. For tests and fuzzing. */
int  st_open_mem(const void *data, size_t size, const char *what, struct st_file **out,
                 struct ev_err *err);
void st_close(struct st_file *f);
int  st_count(const struct st_file *f);
const struct st_tensor *st_at(const struct st_file *f, int i);
/* NULL when absent. */
const struct st_tensor *st_find(const struct st_file *f, const char *name);
/* __metadata__ value, or NULL. */
const char *st_metadata(const struct st_file *f, const char *key);
const char *st_dtype_name(enum st_dtype d);
size_t      st_dtype_size(enum st_dtype d);

/* Checks that t has exactly the given shape (n_dims entries); the message names the tensor
 * and both shapes. */
int st_check_shape(const struct st_tensor *t, int n_dims, const int64_t *shape,
                   struct ev_err *err);
/* Converts a F32/F16/BF16/F64 tensor to float32 into out (t->n_elem floats). Other dtypes
 * are an error. */
int st_to_f32(const struct st_tensor *t, float *out, struct ev_err *err);

/* ---- writing ---- */
struct st_writer;
struct st_writer *st_writer_new(void);
void st_writer_free(struct st_writer *w);
/* Adds a tensor (data borrowed until st_writer_write returns). */
void st_writer_add(struct st_writer *w, const char *name, enum st_dtype dtype, int n_dims,
                   const int64_t *shape, const void *data);
void st_writer_metadata(struct st_writer *w, const char *key, const char *value);
/* Writes atomically (temporary name, fsync, rename). */
int st_writer_write(struct st_writer *w, const char *path, struct ev_err *err);

#endif
