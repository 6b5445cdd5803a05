/*
 * npz — .npy parsing and .npz members through libzip (see npz.h).
 */
#include "sae/npz.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

// ---------------------------------------------------------------- .npy

/* The dict literal of a .npy header: skips spaces. */
static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* A quoted Python string at p ('...' or "..."), copied into dst (cap bytes). Returns the
 * position after it, or NULL. No escapes: none of the keys or descrs numpy writes has one. */
static const char *read_str(const char *p, const char *end, char *dst, size_t cap) {
    if (p >= end || (*p != '\'' && *p != '"')) return NULL;
    char   q = *p++;
    size_t n = 0;
    while (p < end && *p != q) {
        if (*p == '\\' || n + 1 >= cap) return NULL;
        dst[n++] = *p++;
    }
    if (p >= end) return NULL;
    dst[n] = '\0';
    return p + 1;
}

int npy_parse(const void *buf, size_t n, const char *what, struct npy_array *out,
              struct ev_err *err) {
    const uint8_t *b = buf;
    memset(out, 0, sizeof *out);
    if (n < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return ev_fail(err, EV_EFAIL, "%s: not a .npy array (no \\x93NUMPY magic)", what);
    int    major = b[6];
    size_t hlen, off;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        off = 10;
    } else if (major == 2 || major == 3) {
        if (n < 12) return ev_fail(err, EV_EFAIL, "%s: truncated .npy header", what);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        off = 12;
    } else {
        return ev_fail(err, EV_EFAIL, "%s: .npy version %d.%d is not supported (1.0, 2.0, 3.0)",
                       what, major, b[7]);
    }
    if (hlen > n - off) return ev_fail(err, EV_EFAIL, "%s: truncated .npy header", what);
    const char *p = (const char *)b + off, *end = p + hlen;
    char        descr[32] = "";
    int         have_descr = 0, have_fortran = 0, have_shape = 0;
    p = skip_ws(p, end);
    if (p >= end || *p++ != '{')
        return ev_fail(err, EV_EFAIL, "%s: .npy header is not a dict literal", what);
    for (;;) {
        p = skip_ws(p, end);
        if (p < end && *p == '}') break;
        char key[32];
        if (!(p = read_str(p, end, key, sizeof key)))
            return ev_fail(err, EV_EFAIL, "%s: malformed .npy header (a key)", what);
        p = skip_ws(p, end);
        if (p >= end || *p++ != ':')
            return ev_fail(err, EV_EFAIL, "%s: malformed .npy header (no ':' after '%s')", what,
                           key);
        p = skip_ws(p, end);
        if (strcmp(key, "descr") == 0) {
            if (!(p = read_str(p, end, descr, sizeof descr)))
                return ev_fail(err, EV_EFAIL, "%s: .npy descr must be a plain dtype string "
                                              "(structured arrays are not supported)", what);
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (end - p >= 4 && memcmp(p, "True", 4) == 0) {
                out->fortran = 1;
                p += 4;
            } else if (end - p >= 5 && memcmp(p, "False", 5) == 0) {
                out->fortran = 0;
                p += 5;
            } else {
                return ev_fail(err, EV_EFAIL, "%s: .npy fortran_order must be True or False",
                               what);
            }
            have_fortran = 1;
        } else if (strcmp(key, "shape") == 0) {
            if (p >= end || *p++ != '(')
                return ev_fail(err, EV_EFAIL, "%s: .npy shape must be a tuple", what);
            for (;;) {
                p = skip_ws(p, end);
                if (p < end && *p == ')') {
                    p++;
                    break;
                }
                if (out->n_dims == NPY_MAX_DIMS)
                    return ev_fail(err, EV_EFAIL, "%s: .npy array of more than %d dimensions",
                                   what, NPY_MAX_DIMS);
                int64_t v = 0;
                int     digits = 0;
                while (p < end && *p >= '0' && *p <= '9') {
                    if (v > (INT64_MAX - 9) / 10)
                        return ev_fail(err, EV_EFAIL, "%s: .npy dimension too large", what);
                    v = v * 10 + (*p++ - '0');
                    digits++;
                }
                if (!digits)
                    return ev_fail(err, EV_EFAIL, "%s: .npy shape holds a non-integer", what);
                out->shape[out->n_dims++] = v;
                p = skip_ws(p, end);
                if (p < end && *p == ',') p++;
                else if (p < end && *p == ')') continue;
                else return ev_fail(err, EV_EFAIL, "%s: malformed .npy shape", what);
            }
            have_shape = 1;
        } else {
            return ev_fail(err, EV_EFAIL, "%s: unknown .npy header key '%s'", what, key);
        }
        p = skip_ws(p, end);
        if (p < end && *p == ',') p++;
        else if (p < end && *p == '}') break;
        else return ev_fail(err, EV_EFAIL, "%s: malformed .npy header", what);
    }
    if (!have_descr || !have_fortran || !have_shape)
        return ev_fail(err, EV_EFAIL, "%s: .npy header lacks %s", what,
                       !have_descr ? "descr" : !have_fortran ? "fortran_order" : "shape");
    if (strcmp(descr, "<f4") == 0 || strcmp(descr, "=f4") == 0) out->dtype = NPY_F32;
    else if (strcmp(descr, "<f2") == 0 || strcmp(descr, "=f2") == 0) out->dtype = NPY_F16;
    else if (strcmp(descr, "<f8") == 0 || strcmp(descr, "=f8") == 0) out->dtype = NPY_F64;
    else
        return ev_fail(err, EV_EFAIL,
                       "%s: .npy dtype '%s' is not supported (little-endian float16, float32 or "
                       "float64: '<f2', '<f4', '<f8')", what, descr);
    int64_t ne = 1;
    for (int i = 0; i < out->n_dims; i++) {
        if (out->shape[i] != 0 && ne > INT64_MAX / 8 / out->shape[i])
            return ev_fail(err, EV_EFAIL, "%s: .npy shape too large", what);
        ne *= out->shape[i];
    }
    size_t data_off = off + hlen, need = (size_t)ne * (size_t)out->dtype;
    if (n - data_off != need)
        return ev_fail(err, EV_EFAIL, "%s: .npy data holds %zu bytes, the shape and dtype need "
                                      "%zu", what, n - data_off, need);
    out->n_elem = ne;
    out->data = b + data_off;
    return EV_OK;
}

/* IEEE half to float, exact. */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FF, bits;
    if (e == 0) {
        if (m == 0) {
            bits = sign;
        } else {
            e = 127 - 15 + 1;
            while (!(m & 0x400)) {
                m <<= 1;
                e--;
            }
            bits = sign | e << 23 | (m & 0x3FF) << 13;
        }
    } else if (e == 31) {
        bits = sign | 0x7F800000u | m << 13;
    } else {
        bits = sign | (e + 127 - 15) << 23 | m << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float item_f32(const struct npy_array *a, int64_t i) {
    const uint8_t *p = a->data + (size_t)i * (size_t)a->dtype;
    switch (a->dtype) {
    case NPY_F16: {
        uint16_t h;
        memcpy(&h, p, 2);
        return half_to_float(h);
    }
    case NPY_F32: {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    case NPY_F64: {
        double d;
        memcpy(&d, p, 8);
        return (float)d;
    }
    }
    return 0.0f;
}

void npy_to_f32(const struct npy_array *a, float *dst) {
    if (!a->fortran || a->n_dims < 2) {
        for (int64_t i = 0; i < a->n_elem; i++) dst[i] = item_f32(a, i);
        return;
    }
    /* column-major: the first index varies fastest in the data */
    int64_t idx[NPY_MAX_DIMS] = {0};
    for (int64_t i = 0; i < a->n_elem; i++) {
        int64_t c = 0; /* C-order offset of idx */
        for (int d = 0; d < a->n_dims; d++) c = c * a->shape[d] + idx[d];
        dst[c] = item_f32(a, i);
        for (int d = 0; d < a->n_dims; d++) {
            if (++idx[d] < a->shape[d]) break;
            idx[d] = 0;
        }
    }
}

// ---------------------------------------------------------------- .npz

struct npz {
    zip_t *zip;
    char  *path;
};

int npz_open(const char *path, struct npz **out, struct ev_err *err) {
    int    zerr = 0;
    zip_t *zp = zip_open(path, ZIP_RDONLY, &zerr);
    *out = NULL;
    if (!zp) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        int rc = ev_fail(err, EV_EFAIL, "%s: cannot open as a .npz (zip) archive: %s", path,
                         zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return rc;
    }
    struct npz *z = xcalloc(1, sizeof *z);
    z->zip = zp;
    z->path = xstrdup(path);
    *out = z;
    return EV_OK;
}

void npz_close(struct npz *z) {
    if (!z) return;
    zip_discard(z->zip);
    free(z->path);
    free(z);
}

int npz_count(const struct npz *z) {
    zip_int64_t n = zip_get_num_entries(z->zip, 0);
    return n < 0 ? 0 : n > INT32_MAX ? INT32_MAX : (int)n;
}

const char *npz_name(const struct npz *z, int i) {
    const char *s = zip_get_name(z->zip, (zip_uint64_t)i, 0);
    return s ? s : "";
}

int npz_read_f32(struct npz *z, const char *name, int missing_ok, float **data, int *n_dims,
                 int64_t shape[NPY_MAX_DIMS], struct ev_err *err) {
    char       *member = xasprintf("%s.npy", name);
    char       *what = xasprintf("%s: %s", z->path, member);
    uint8_t    *buf = NULL;
    zip_file_t *zf = NULL;
    int         rc = EV_OK;
    *data = NULL;
    *n_dims = 0;
    zip_int64_t i = zip_name_locate(z->zip, member, 0);
    if (i < 0) {
        if (!missing_ok) rc = ev_fail(err, EV_EFAIL, "%s: no array %s", z->path, name);
        goto out;
    }
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(z->zip, (zip_uint64_t)i, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE)) {
        rc = ev_fail(err, EV_EFAIL, "%s: cannot read its size: %s", what,
                     zip_strerror(z->zip));
        goto out;
    }
    if (st.size > ((zip_uint64_t)1 << 40)) {
        rc = ev_fail(err, EV_EFAIL, "%s: member of %llu bytes is too large", what,
                     (unsigned long long)st.size);
        goto out;
    }
    buf = xmalloc(st.size ? (size_t)st.size : 1);
    if (!(zf = zip_fopen_index(z->zip, (zip_uint64_t)i, 0))) {
        rc = ev_fail(err, EV_EFAIL, "%s: cannot open: %s", what, zip_strerror(z->zip));
        goto out;
    }
    zip_uint64_t got = 0;
    while (got < st.size) {
        zip_int64_t r = zip_fread(zf, buf + got, st.size - got);
        if (r <= 0) {
            rc = ev_fail(err, EV_EFAIL, "%s: read failed after %llu of %llu bytes: %s", what,
                         (unsigned long long)got, (unsigned long long)st.size,
                         r < 0 ? zip_file_strerror(zf) : "unexpected end");
            goto out;
        }
        got += (zip_uint64_t)r;
    }
    struct npy_array a;
    if ((rc = npy_parse(buf, (size_t)st.size, what, &a, err))) goto out;
    float *f = xmalloc((size_t)(a.n_elem ? a.n_elem : 1) * sizeof(float));
    npy_to_f32(&a, f);
    size_t bad = 0;
    for (int64_t k = 0; k < a.n_elem; k++) bad += !isfinite(f[k]);
    if (bad) {
        free(f);
        rc = ev_fail(err, EV_EFAIL, "%s: holds %zu NaN/Inf values", what, bad);
        goto out;
    }
    *data = f;
    *n_dims = a.n_dims;
    for (int d = 0; d < a.n_dims; d++) shape[d] = a.shape[d];
out:
    if (zf) zip_fclose(zf);
    free(buf);
    free(what);
    free(member);
    return rc;
}
