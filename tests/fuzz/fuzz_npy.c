/* libFuzzer target: a NumPy .npy array (what Gemma Scope's params.npz holds) on any bytes. An
 * array the parser accepts must be consistent: dimensions within bounds, prod(shape) elements
 * whose data lies inside the input, exactly; converting it to float32 (C order, Fortran order
 * transposed) touches no byte outside it. */
#include "fuzz_util.h"

#include "sae/npz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char            *buf = fuzz_copy(data, size);
    struct npy_array a;
    struct ev_err    err;
    if (npy_parse(buf, size, "fuzz.npy", &a, &err) == 0) {
        FUZZ_CHECK(a.n_dims >= 0 && a.n_dims <= NPY_MAX_DIMS);
        FUZZ_CHECK(a.dtype == NPY_F16 || a.dtype == NPY_F32 || a.dtype == NPY_F64);
        int64_t ne = 1;
        for (int i = 0; i < a.n_dims; i++) ne *= a.shape[i];
        FUZZ_CHECK(ne == a.n_elem);
        FUZZ_CHECK(a.data >= (const uint8_t *)buf &&
                   a.data + (size_t)a.n_elem * (size_t)a.dtype == (const uint8_t *)buf + size);
        float *f = malloc((size_t)(a.n_elem ? a.n_elem : 1) * sizeof *f);
        npy_to_f32(&a, f);
        free(f);
    } else {
        FUZZ_CHECK(err.msg[0] != '\0');
    }
    free(buf);
    return 0;
}
