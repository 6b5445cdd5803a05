/*
 * npz — NumPy's .npy arrays and .npz archives (a zip of .npy files), read-only: what Gemma
 * Scope publishes its SAEs and transcoders in (params.npz). The zip side goes through libzip
 * (Debian's libzip-dev), whose handles stay inside npz.c (STYLE rule 16).
 *
 * Included by: sae and the wings above it (store, graders, evals, cli), and the fuzz target.
 *
 * .npy, versions 1.0, 2.0 and 3.0: the magic "\x93NUMPY", major and minor version bytes, the
 * header length (uint16 little-endian for 1.0, uint32 for 2.0/3.0), then a Python dict literal
 * {'descr': '<f4', 'fortran_order': False, 'shape': (2304, 16384), } padded with spaces and a
 * newline, then the raw data. Accepted dtypes: little-endian float16/32/64 ('<f2' '<f4' '<f8',
 * '|'/'=' byte orders for what has none or is native). Big-endian, integer, bfloat16 ('<V2')
 * and object arrays are refused, naming the descr. Fortran order is accepted (the values are
 * transposed back to C order on conversion). At most 8 dimensions.
 *
 * Validation is complete at npy_parse(): the data length equals prod(shape) * itemsize
 * (overflow checked), so npy_to_f32() never fails.
 */
#ifndef EV_NPZ_H
#define EV_NPZ_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

#define NPY_MAX_DIMS 8

enum npy_dtype {
    NPY_F16 = 2,
    NPY_F32 = 4,
    NPY_F64 = 8,
};

struct npy_array {
    enum npy_dtype dtype;              /* the item size in bytes */
    int            fortran;            /* 1: column-major data */
    int            n_dims;
    int64_t        shape[NPY_MAX_DIMS];
    int64_t        n_elem;             /* prod(shape); 1 for a 0-d array */
    const uint8_t *data;               /* borrowed: points into the buffer given to npy_parse */
};

/* Parses the .npy file in buf[0..n) (what names it in errors). out->data points into buf.
 * EV_EFAIL with a one-line message on anything malformed or unsupported. */
int npy_parse(const void *buf, size_t n, const char *what, struct npy_array *out,
              struct ev_err *err);

/* Converts a's values to float32 in C (row-major) order: dst holds a->n_elem floats. */
void npy_to_f32(const struct npy_array *a, float *dst);

/* An open .npz archive. */
struct npz;

/* Opens path (a zip archive). Caller frees with npz_close(). */
int  npz_open(const char *path, struct npz **out, struct ev_err *err);
void npz_close(struct npz *z);

/* The number of members and the name of member i (borrowed, valid until npz_close). */
int         npz_count(const struct npz *z);
const char *npz_name(const struct npz *z, int i);

/*
 * Reads member NAME.npy (name given without ".npy") as float32, C order: *data (caller frees
 * with free()) holds the values, shape[0..*n_dims) the shape. A missing member is EV_OK with
 * *data NULL when missing_ok, else EV_EFAIL naming the archive and the member; anything malformed
 * (npy_parse), NaN/Inf values included, is EV_EFAIL.
 */
int npz_read_f32(struct npz *z, const char *name, int missing_ok, float **data, int *n_dims,
                 int64_t shape[NPY_MAX_DIMS], struct ev_err *err);

#endif
