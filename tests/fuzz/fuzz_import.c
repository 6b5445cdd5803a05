/* libFuzzer target: `evalrun import`'s reader of published explanations and scores
 * (pub_parse: Neuronpedia rows and API features, SAEBench results, gzip or not), on any bytes,
 * twice into one set (several files add up). What it accepts must follow the features-file
 * rules: ids unique, ascending, non-negative; each kept description non-empty, one line, valid
 * UTF-8, free of template delimiters, at most EVAL_DESC_MAX characters; every score and metric
 * finite. What it refuses says why. */
#include "fuzz_util.h"

#include <math.h>

#include "base/rx.h"
#include "evals/publish.h"

static void check_set(const struct pub_set *s) {
    for (int i = 0; i < s->n; i++) {
        const struct pub_feature *f = &s->f[i];
        FUZZ_CHECK(f->idx >= 0);
        if (i) FUZZ_CHECK(s->f[i - 1].idx < f->idx);
        if (f->desc) {
            size_t len = strlen(f->desc), chars = 0;
            FUZZ_CHECK(len > 0 && f->desc[0] != ' ' && f->desc[len - 1] != ' ');
            FUZZ_CHECK(!strpbrk(f->desc, "\n\r\t"));
            FUZZ_CHECK(!strstr(f->desc, "{{") && !strstr(f->desc, "}}"));
            FUZZ_CHECK(rx_utf8_invalid_at(f->desc, len) < 0);
            for (const char *c = f->desc; *c; c++) chars += ((unsigned char)*c & 0xC0) != 0x80;
            FUZZ_CHECK(chars <= EVAL_DESC_MAX);
        }
        for (int k = 0; k < f->n_scores; k++) FUZZ_CHECK(isfinite(f->scores[k].value));
    }
    for (int k = 0; k < s->n_metrics; k++) FUZZ_CHECK(isfinite(s->metrics[k].value));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char          *c = fuzz_copy(data, size);
    struct pub_set s = {0};
    struct ev_err  err;
    for (int round = 0; round < 2; round++) {
        err.msg[0] = 0;
        if (pub_parse_capped(c, size, 1 << 22, "input", &s, &err) != 0)
            FUZZ_CHECK(err.msg[0] != '\0');
        check_set(&s);
    }
    pub_release(&s);
    free(c);
    return 0;
}
