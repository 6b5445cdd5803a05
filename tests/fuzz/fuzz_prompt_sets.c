/* libFuzzer target: the prompt-set JSON files, on any bytes: an attribution set (first byte
 * % 3 == 0), a steering set (1) or a completeness concept set (2), each read from a file as
 * the commands read it. What a loader accepts must be whole: every string there, ids unique,
 * counts matching. */
#include "fuzz_util.h"

#include "evals/attribution.h"
#include "evals/completeness.h"
#include "evals/influence.h"

static void check_attr(const char *path) {
    struct attr_set s;
    struct ev_err   err;
    if (attr_set_load(path, &s, &err) != 0) return;
    FUZZ_CHECK(s.n > 0 && s.name);
    for (int i = 0; i < s.n; i++) {
        const struct attr_prompt *p = &s.prompts[i];
        FUZZ_CHECK(p->id && p->prompt[0] && p->target[0] && p->contrast[0]);
        FUZZ_CHECK(strcmp(p->target, p->contrast) != 0);
        for (int k = 0; k < i; k++) FUZZ_CHECK(strcmp(s.prompts[k].id, p->id) != 0);
    }
    attr_set_release(&s);
}

static void check_infl(const char *path) {
    struct infl_set s;
    struct ev_err   err;
    if (infl_set_load(path, NULL, &s, &err) != 0) return;
    FUZZ_CHECK(s.n > 0 && s.name);
    for (int i = 0; i < s.n; i++) {
        FUZZ_CHECK(s.prompts[i].id && s.prompts[i].text && s.prompts[i].text[0]);
        for (int k = 0; k < i; k++) FUZZ_CHECK(strcmp(s.prompts[k].id, s.prompts[i].id) != 0);
    }
    infl_set_release(&s);
}

static void check_concepts(const char *path) {
    struct comp_set s;
    struct ev_err   err;
    if (comp_set_load(path, NULL, &s, &err) != 0) return;
    FUZZ_CHECK(s.n > 0 && strlen(s.hash) == 64);
    for (int i = 0; i < s.n; i++) {
        FUZZ_CHECK(s.c[i].name && s.c[i].group && s.c[i].n_prompts > 0);
        for (int k = 0; k < s.c[i].n_prompts; k++) FUZZ_CHECK(s.c[i].prompts[k] != NULL);
    }
    comp_set_release(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *path = fuzz_file(data + 1, size - 1);
    switch (data[0] % 3) {
    case 0: check_attr(path); break;
    case 1: check_infl(path); break;
    default: check_concepts(path); break;
    }
    return 0;
}
