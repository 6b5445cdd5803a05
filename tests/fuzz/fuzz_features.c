/* libFuzzer target: a features file (the --features FILE of every evaluation), on any bytes,
 * read from a file as the commands read it. What the loader accepts must be whole: ids in
 * range and unique, descriptions non-empty, within the cap, free of template delimiters;
 * what it refuses says why (file:line). */
#include "fuzz_util.h"

#include "evals/common.h"

static void check_features(const char *path) {
    struct eval_features f;
    struct ev_err        err;
    if (eval_features_load(path, 4096, &f, &err) != 0) {
        FUZZ_CHECK(err.msg[0] != '\0');
        return;
    }
    FUZZ_CHECK(f.n > 0);
    for (int i = 0; i < f.n; i++) {
        FUZZ_CHECK(f.idx[i] >= 0 && f.idx[i] < 4096);
        for (int k = 0; k < i; k++) FUZZ_CHECK(f.idx[k] != f.idx[i]);
        if (f.desc[i]) {
            FUZZ_CHECK(f.desc[i][0] != '\0');
            FUZZ_CHECK(!strstr(f.desc[i], "{{") && !strstr(f.desc[i], "}}"));
            FUZZ_CHECK(strlen(f.desc[i]) <= 4 * EVAL_DESC_MAX);
        }
    }
    eval_features_release(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_features(fuzz_file(data, size));
    return 0;
}
