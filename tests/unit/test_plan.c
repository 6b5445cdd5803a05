/*
 * Unit tests for plan (evals/plan.h): the estimate made from config.json alone agrees with
 * what loading the checkpoint actually takes (heap and mapped bytes, per architecture and
 * --weights-dtype), the state bytes are model_state_bytes', the SAE's from its cfg.json, the
 * activation-cache bytes and the FLOPs follow the shapes, and the fit/refusal logic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "evals/plan.h"
#include "model/model.h"

static char *root_path(const char *rel) {
    const char *root = getenv("ROOT");
    return path_join(root && *root ? root : ".", rel);
}

static void check_split(const char *rel, int flags) {
    char           *p = root_path(rel);
    struct plan_job j = {.command = "test", .model_path = p, .model_flags = flags, .ctx = 16};
    struct plan     pl;
    struct model   *m = NULL;
    struct ev_err   err = {{0}};
    size_t          heap, mapped;
    if (plan_estimate(&j, &pl, &err) != EV_OK) fail_msg("%s: %s", rel, err.msg);
    if (model_load_flags(p, flags | MODEL_LOAD_NO_TOKENIZER, &m, &err) != EV_OK)
        fail_msg("%s: %s", rel, err.msg);
    model_memory(m, &heap, &mapped);
    /* mapped exactly; the heap up to the arena's 64-byte alignment per tensor */
    size_t n_tensors = 12 * (size_t)model_config(m)->n_layers + 8;
    if (pl.weights_mapped != mapped || heap < pl.weights_heap ||
        heap > pl.weights_heap + 64 * n_tensors)
        fail_msg("%s flags %d: planned heap %zu + mapped %zu, loaded %zu + %zu", rel, flags,
                 pl.weights_heap, pl.weights_mapped, heap, mapped);
    assert_int_equal(pl.params, model_param_count(model_config(m)));
    assert_int_equal(pl.state, model_state_bytes(model_config(m), 16, 0));
    assert_int_equal(pl.dtype, model_weights_dtype(m));
    model_free(m);
    free(p);
}

static void test_weights_split_matches_loading(void **state) {
    (void)state;
    static const char *fx[] = {"tests/fixtures/hf/gpt2",        "tests/fixtures/hf/gpt_neox",
                               "tests/fixtures/hf/gpt_neox_f16", "tests/fixtures/hf/gemma2",
                               "tests/fixtures/hf/gemma2_bf16",  "tests/fixtures/hf/llama_sharded",
                               "tests/fixtures/hf/qwen3",        "tests/fixtures/hf/gemma3_text"};
    for (size_t i = 0; i < sizeof fx / sizeof fx[0]; i++) {
        check_split(fx[i], 0);
        check_split(fx[i], MODEL_LOAD_F32);
        check_split(fx[i], MODEL_LOAD_BF16);
    }
    check_split("evals/models/stories260K/stories260K.bin", 0);
}

static void test_sae_cache_flops(void **state) {
    (void)state;
    char *model = root_path("evals/models/stories260K/stories260K.bin");
    char *sae = root_path("evals/saes/stories260K-L2");
    struct plan_job j = {.command = "t", .model_path = model, .sae_path = sae, .ctx = 128,
                         .tokens = 1000, .cache_hook = "blocks.2.mlp.hook_post"};
    struct plan     p;
    struct ev_err   err = {{0}};
    assert_int_equal(plan_estimate(&j, &p, &err), EV_OK);
    /* the demo SAE: d_in 64, d_sae 1024 */
    assert_int_equal(p.sae, (2 * 64 * 1024 + 2 * 1024 + 64) * 4);
    /* cache of mlp.hook_post (H = 172): float32 activations + int32 ids */
    assert_int_equal(p.disk, 1000 * (172 * 4 + 4));
    /* FLOPs: 2 per non-embedding weight (tied: the unembedding counts) + attention + SAE */
    const struct model_config *c = &p.cfg;
    double want = 1000.0 * (2.0 * p.params + 2.0 * c->n_layers * c->n_heads * c->head_dim * 128) +
                  1000.0 * 4 * 64 * 1024;
    assert_true(p.flops > 0.999 * want && p.flops < 1.001 * want);
    assert_true(p.gflops_s > 0 && p.seconds > 0);
    assert_true(p.mem_available > 0 && p.disk_available > 0);
    assert_true(plan_fits(&p));
    /* the refusal: an impossible need gives the one-line message */
    p.mem_total = (size_t)p.mem_available + 1;
    assert_false(plan_fits(&p));
    assert_int_equal(plan_refuse(&j, &p, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "t: needs "));
    assert_non_null(strstr(err.msg, "available; lower it with"));
    assert_null(strchr(err.msg, '\n'));
    char *r = plan_report(&j, &p);
    assert_non_null(strstr(r, "fits: no"));
    free(r);
    /* a missing model is an error naming it */
    j.model_path = "/nonexistent/model";
    assert_int_equal(plan_estimate(&j, &p, &err), EV_EFAIL);
    assert_non_null(strstr(err.msg, "/nonexistent/model"));
    free(model);
    free(sae);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weights_split_matches_loading),
        cmocka_unit_test(test_sae_cache_flops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
