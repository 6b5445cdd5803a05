/* libFuzzer target: an SAE's cfg.json (SAELens' three shapes) on any bytes. A config the
 * parser accepts must be usable: positive sizes, strings terminated, a known architecture,
 * and (when small) an SAE built from it encodes and decodes a vector without a fault. */
#include "fuzz_util.h"

#include "sae/sae.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char             *text = fuzz_copy(data, size);
    struct sae_config cfg;
    struct ev_err     err;
    if (sae_parse_config(text, size, "fuzz cfg.json", &cfg, &err) == 0) {
        FUZZ_CHECK(cfg.d_in > 0 && cfg.d_sae > 0);
        FUZZ_CHECK(cfg.arch == SAE_ARCH_STANDARD || cfg.arch == SAE_ARCH_JUMPRELU ||
                   cfg.arch == SAE_ARCH_TOPK);
        FUZZ_CHECK(cfg.arch != SAE_ARCH_TOPK || (cfg.k >= 1 && cfg.k <= cfg.d_sae));
        FUZZ_CHECK(memchr(cfg.hook_name, 0, sizeof cfg.hook_name) != NULL);
        FUZZ_CHECK(memchr(cfg.model_name, 0, sizeof cfg.model_name) != NULL);
        FUZZ_CHECK(memchr(cfg.dtype, 0, sizeof cfg.dtype) != NULL);
        if ((int64_t)cfg.d_in * cfg.d_sae <= (1 << 16)) {
            struct sae *s = sae_new(&cfg);
            float      *x = calloc((size_t)cfg.d_in, sizeof *x);
            float      *f = calloc((size_t)cfg.d_sae, sizeof *f);
            float      *y = calloc((size_t)cfg.d_in, sizeof *y);
            for (int i = 0; i < cfg.d_in; i++) x[i] = (float)(i % 7) - 3.0f;
            sae_encode(s, f, x, 1);
            sae_decode(s, y, f, 1);
            free(x);
            free(f);
            free(y);
            sae_free(s);
        }
    } else {
        FUZZ_CHECK(err.msg[0] != '\0');
    }
    free(text);
    return 0;
}
