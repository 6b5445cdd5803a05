/* safetensors — reader (mmap, validated once at open) and atomic writer (see safetensors.h). */
#include "model/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"

/* A header larger than this is not a safetensors file we want to parse (the official
 * library's limit is 100 MB). */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

struct st_file {
    void             *map;      /* whole file, or NULL for st_open_mem */
    size_t            map_size;
    cJSON            *header;   /* owns tensor names and metadata strings */
    struct st_tensor *tensors;  /* (n) in header order */
    int               n;
};

static const struct {
    const char   *name;
    enum st_dtype dtype;
    size_t        size;
} dtypes[] = {
    {"F32", ST_F32, 4},   {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"F64", ST_F64, 8},
    {"I64", ST_I64, 8},   {"I32", ST_I32, 4}, {"I16", ST_I16, 2},   {"I8", ST_I8, 1},
    {"U8", ST_U8, 1},     {"BOOL", ST_BOOL, 1},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

const char *st_dtype_name(enum st_dtype d) {
    for (int i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == d) return dtypes[i].name;
    return "?";
}

size_t st_dtype_size(enum st_dtype d) {
    for (int i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == d) return dtypes[i].size;
    return 0;
}

void st_close(struct st_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_size);
    json_free(f->header);
    free(f->tensors);
    free(f);
}

int st_count(const struct st_file *f) { return f->n; }

const struct st_tensor *st_at(const struct st_file *f, int i) {
    EV_ASSERT(i >= 0 && i < f->n);
    return &f->tensors[i];
}

const struct st_tensor *st_find(const struct st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_metadata(const struct st_file *f, const char *key) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(f->header, "__metadata__");
    const cJSON *v = m ? cJSON_GetObjectItemCaseSensitive(m, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A JSON number that is a non-negative integer exactly representable (< 2^53). */
static int json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

static int cmp_by_offset(const void *a, const void *b) {
    const struct st_tensor *x = a, *y = b;
    const char *px = x->data, *py = y->data;
    if (px != py) return px < py ? -1 : 1;
    return x->n_bytes < y->n_bytes ? -1 : x->n_bytes > y->n_bytes;
}

/* Parses and validates the header of the image [data, data + size). */
static int parse(struct st_file *f, const unsigned char *data, size_t size, const char *what,
                 struct ev_err *err) {
    int rc = EV_EFAIL;
    struct st_tensor *sorted = NULL;
    if (size < 8) {
        rc = ev_fail(err, EV_EFAIL, "%s: %zu bytes is too short for a safetensors file (expected "
                     "an 8-byte header length first)", what, size);
        goto out;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | data[i];
    if (hlen < 2 || hlen > ST_MAX_HEADER || hlen > size - 8) {
        rc = ev_fail(err, EV_EFAIL, "%s: header length %llu does not fit in the file (%zu bytes); "
                     "not a safetensors file or truncated", what, (unsigned long long)hlen, size);
        goto out;
    }
    if (data[8] != '{') {
        rc = ev_fail(err, EV_EFAIL, "%s: header does not start with '{'; not a safetensors file",
                     what);
        goto out;
    }
    if ((rc = json_parse((const char *)data + 8, (size_t)hlen, what, &f->header, err)) < 0)
        goto out;
    rc = EV_EFAIL;
    if (!cJSON_IsObject(f->header)) {
        rc = ev_fail(err, EV_EFAIL, "%s: header is not a JSON object", what);
        goto out;
    }
    const unsigned char *base  = data + 8 + hlen;
    uint64_t             dsize = size - 8 - hlen;
    int                  n     = 0;
    const cJSON         *e;
    cJSON_ArrayForEach(e, f->header) n++;
    f->tensors = xcalloc((size_t)n + 1, sizeof *f->tensors);
    f->n       = 0;
    cJSON_ArrayForEach(e, f->header) {
        const char *name = e->string;
        if (strcmp(name, "__metadata__") == 0) {
            const cJSON *kv;
            if (!cJSON_IsObject(e)) {
                rc = ev_fail(err, EV_EFAIL, "%s: __metadata__ is not an object", what);
                goto out;
            }
            cJSON_ArrayForEach(kv, e) {
                if (!cJSON_IsString(kv)) {
                    rc = ev_fail(err, EV_EFAIL, "%s: __metadata__ value \"%s\" is not a string",
                                 what, kv->string);
                    goto out;
                }
            }
            continue;
        }
        if (!cJSON_IsObject(e)) {
            rc = ev_fail(err, EV_EFAIL, "%s: tensor \"%s\": header entry is not an object", what,
                         name);
            goto out;
        }
        for (int i = 0; i < f->n; i++) {
            if (strcmp(f->tensors[i].name, name) == 0) {
                rc = ev_fail(err, EV_EFAIL, "%s: tensor \"%s\" appears twice in the header", what,
                             name);
                goto out;
            }
        }
        struct st_tensor *t = &f->tensors[f->n];
        t->name             = name;
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        size_t       esize = 0;
        if (cJSON_IsString(dt)) {
            for (int i = 0; i < N_DTYPES; i++) {
                if (strcmp(dtypes[i].name, dt->valuestring) == 0) {
                    t->dtype = dtypes[i].dtype;
                    esize    = dtypes[i].size;
                }
            }
        }
        if (!esize) {
            rc = ev_fail(err, EV_EFAIL, "%s: tensor \"%s\": dtype %s is not supported (expected "
                         "F32, F16, BF16, F64, I64, I32, I16, I8, U8 or BOOL)", what, name,
                         cJSON_IsString(dt) ? dt->valuestring : "(missing)");
            goto out;
        }
        if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > ST_MAX_DIMS) {
            rc = ev_fail(err, EV_EFAIL, "%s: tensor \"%s\": shape is not an array of at most %d "
                         "sizes", what, name, ST_MAX_DIMS);
            goto out;
        }
        uint64_t     n_elem = 1;
        const cJSON *d;
        t->n_dims = 0;
        cJSON_ArrayForEach(d, sh) {
            uint64_t v;
            if (!json_u64(d, &v)) {
                rc = ev_fail(err, EV_EFAIL, "%s: tensor \"%s\": shape entry %d is not a "
                             "non-negative integer", what, name, t->n_dims);
                goto out;
            }
            t->shape[t->n_dims++] = (int64_t)v;
            if (v && n_elem > UINT64_MAX / v / 8) {
                rc = ev_fail(err, EV_EFAIL, "%s: tensor \"%s\": shape is too large", what, name);
                goto out;
            }
            n_elem *= v;
        }
        uint64_t begin, end;
        if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 ||
            !json_u64(cJSON_GetArrayItem(of, 0), &begin) ||
            !json_u64(cJSON_GetArrayItem(of, 1), &end) || end < begin) {
            rc = ev_fail(err, EV_EFAIL, "%s: tensor \"%s\": data_offsets is not [begin, end] with "
                         "0 <= begin <= end", what, name);
            goto out;
        }
        if (end > dsize) {
            rc = ev_fail(err, EV_EFAIL, "%s: tensor \"%s\": data_offsets [%llu, %llu] run past the "
                         "end of the data (%llu bytes); truncated file?", what, name,
                         (unsigned long long)begin, (unsigned long long)end,
                         (unsigned long long)dsize);
            goto out;
        }
        if (n_elem * esize != end - begin) {
            rc = ev_fail(err, EV_EFAIL, "%s: tensor \"%s\": shape and dtype %s need %llu bytes but "
                         "data_offsets [%llu, %llu] hold %llu", what, name, dt->valuestring,
                         (unsigned long long)(n_elem * esize), (unsigned long long)begin,
                         (unsigned long long)end, (unsigned long long)(end - begin));
            goto out;
        }
        t->n_elem  = (int64_t)n_elem;
        t->data    = base + begin;
        t->n_bytes = (size_t)(end - begin);
        f->n++;
    }
    /* no two tensors may share bytes */
    sorted = xmalloc(((size_t)f->n + 1) * sizeof *sorted);
    memcpy(sorted, f->tensors, (size_t)f->n * sizeof *sorted);
    qsort(sorted, (size_t)f->n, sizeof *sorted, cmp_by_offset);
    const char *max_end = NULL;
    int         max_i   = -1;
    for (int i = 0; i < f->n; i++) {
        const char *b = sorted[i].data, *e_ = b + sorted[i].n_bytes;
        if (max_i >= 0 && sorted[i].n_bytes > 0 && b < max_end) {
            rc = ev_fail(err, EV_EFAIL, "%s: tensors \"%s\" and \"%s\" overlap in the data area",
                         what, sorted[max_i].name, sorted[i].name);
            goto out;
        }
        if (max_i < 0 || e_ > max_end) max_end = e_, max_i = i;
    }
    rc = EV_OK;
out:
    free(sorted);
    return rc;
}

int st_open_mem(const void *data, size_t size, const char *what, struct st_file **out,
                struct ev_err *err) {
    struct st_file *f = xcalloc(1, sizeof *f);
    int             rc = parse(f, data, size, what, err);
    *out = NULL;
    if (rc < 0) {
        st_close(f);
        return rc;
    }
    *out = f;
    return EV_OK;
}

int st_open(const char *path, struct st_file **out, struct ev_err *err) {
    struct st_file *f  = NULL;
    int             fd = -1;
    int             rc = EV_EFAIL;
    struct stat     st;
    *out = NULL;
    fd   = open(path, O_RDONLY);
    if (fd < 0) {
        rc = ev_fail(err, EV_EFAIL, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = ev_fail(err, EV_EFAIL, "%s: not a regular file", path);
        goto out;
    }
    f = xcalloc(1, sizeof *f);
    if (st.st_size < 8) {
        rc = ev_fail(err, EV_EFAIL, "%s: %lld bytes is too short for a safetensors file (expected "
                     "an 8-byte header length first)", path, (long long)st.st_size);
        goto out;
    }
    f->map_size = (size_t)st.st_size;
    f->map      = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        rc     = ev_fail(err, EV_EFAIL, "cannot map %s: %s", path, strerror(errno));
        goto out;
    }
    if ((rc = parse(f, f->map, f->map_size, path, err)) < 0) goto out;
    *out = f;
    f    = NULL;
    rc   = EV_OK;
out:
    if (fd >= 0) close(fd);
    st_close(f);
    return rc;
}

int st_check_shape(const struct st_tensor *t, int n_dims, const int64_t *shape,
                   struct ev_err *err) {
    int same = t->n_dims == n_dims;
    for (int i = 0; same && i < n_dims; i++) same = t->shape[i] == shape[i];
    if (same) return EV_OK;
    struct sbuf got, want;
    sbuf_init(&got);
    sbuf_init(&want);
    for (int i = 0; i < t->n_dims; i++) sbuf_addf(&got, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    for (int i = 0; i < n_dims; i++) sbuf_addf(&want, "%s%lld", i ? ", " : "", (long long)shape[i]);
    int rc = ev_fail(err, EV_EFAIL, "tensor \"%s\" has shape [%s], expected [%s]", t->name,
                     got.buf ? got.buf : "", want.buf ? want.buf : "");
    sbuf_release(&got);
    sbuf_release(&want);
    return rc;
}

/* IEEE half to float, exact (subnormals, infinities, NaN). */
static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp  = (h >> 10) & 0x1F;
    uint32_t man  = h & 0x3FF;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3FF;
            bits = sign | exp << 23 | man << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | man << 13;
    } else {
        bits = sign | (exp - 15 + 127) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

int st_to_f32(const struct st_tensor *t, float *out, struct ev_err *err) {
    const unsigned char *p = t->data;
    int64_t              n = t->n_elem;
    switch (t->dtype) {
    case ST_F32:
        memcpy(out, p, (size_t)n * 4);
        return EV_OK;
    case ST_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = f16_to_f32(h);
        }
        return EV_OK;
    case ST_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&out[i], &bits, 4);
        }
        return EV_OK;
    case ST_F64:
        for (int64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
        }
        return EV_OK;
    default:
        return ev_fail(err, EV_EFAIL, "tensor \"%s\" has dtype %s; expected F32, F16, BF16 or F64",
                       t->name, st_dtype_name(t->dtype));
    }
}

/* ---- writing ---- */

struct st_wentry {
    char         *name;
    enum st_dtype dtype;
    int           n_dims;
    int64_t       shape[ST_MAX_DIMS];
    const void   *data;
    size_t        n_bytes;
};

struct st_writer {
    struct st_wentry *e;
    int               n, cap;
    cJSON            *meta;
};

struct st_writer *st_writer_new(void) {
    struct st_writer *w = xcalloc(1, sizeof *w);
    return w;
}

void st_writer_free(struct st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->e[i].name);
    free(w->e);
    json_free(w->meta);
    free(w);
}

void st_writer_add(struct st_writer *w, const char *name, enum st_dtype dtype, int n_dims,
                   const int64_t *shape, const void *data) {
    EV_ASSERT(n_dims >= 0 && n_dims <= ST_MAX_DIMS);
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 16;
        w->e   = xrealloc(w->e, (size_t)w->cap * sizeof *w->e);
    }
    struct st_wentry *e = &w->e[w->n++];
    memset(e, 0, sizeof *e);
    e->name   = xstrdup(name);
    e->dtype  = dtype;
    e->n_dims = n_dims;
    size_t n  = 1;
    for (int i = 0; i < n_dims; i++) {
        EV_ASSERT(shape[i] >= 0);
        e->shape[i] = shape[i];
        n *= (size_t)shape[i];
    }
    e->data    = data;
    e->n_bytes = n * st_dtype_size(dtype);
}

void st_writer_metadata(struct st_writer *w, const char *key, const char *value) {
    if (!w->meta) w->meta = cJSON_CreateObject();
    cJSON_DeleteItemFromObjectCaseSensitive(w->meta, key);
    cJSON_AddStringToObject(w->meta, key, value);
}

int st_writer_write(struct st_writer *w, const char *path, struct ev_err *err) {
    char  *hdr  = NULL;
    cJSON *root = cJSON_CreateObject();
    if (w->meta) cJSON_AddItemToObject(root, "__metadata__", cJSON_Duplicate(w->meta, 1));
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        struct st_wentry *e = &w->e[i];
        cJSON            *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dtype", st_dtype_name(e->dtype));
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        for (int k = 0; k < e->n_dims; k++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)e->shape[k]));
        cJSON *of = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + e->n_bytes)));
        off += e->n_bytes;
        cJSON_AddItemToObject(root, e->name, o);
    }
    hdr = json_print(root);
    /* pad the header with spaces so the data starts 8-byte aligned, as the official writer */
    size_t hlen = strlen(hdr), padded = (hlen + 7) / 8 * 8;
    hdr = xrealloc(hdr, padded + 1);
    memset(hdr + hlen, ' ', padded - hlen);
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    struct file_part *parts = xmalloc(sizeof *parts * (size_t)(w->n + 2));
    parts[0] = (struct file_part){lenbuf, 8};
    parts[1] = (struct file_part){hdr, padded};
    for (int i = 0; i < w->n; i++) parts[i + 2] = (struct file_part){w->e[i].data, w->e[i].n_bytes};
    int rc = file_write_atomic_parts(path, parts, w->n + 2, err);
    free(parts);
    free(hdr);
    json_free(root);
    return rc;
}
