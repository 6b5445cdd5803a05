/* Unit tests for card (the feature card of `evalrun show`): display widths, clipping, the
 * text rendering's width limit at several widths with hostile content (long words, wide
 * characters, newlines, long tokens), the ⟦ ⟧ markers with and without colour, and the JSON
 * rendering (parsed back: marked context text, nulls for what is missing). The card is built in
 * memory here; tests/cli/search.sh builds real ones from the demo SAE's index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evals/card.h"
#include "base/json.h"

static void test_display_width(void **state) {
    (void)state;
    static const struct {
        const char *s;
        int         w;
    } cases[] = {
        {"", 0},
        {"abc", 3},
        {"\xe5\x90\x8d\xe5\x89\x8d", 4},          /* 名前: wide */
        {"e\xcc\x81", 1},                          /* e + combining acute */
        {"\x1b[1;7mab\x1b[0m", 2},                 /* ANSI escapes take no columns */
        {"\xf0\x9f\x99\x82", 2},                   /* 🙂 */
        {"\xe2\x9f\xa6x\xe2\x9f\xa7", 3},          /* ⟦x⟧ */
        {"\xff", 1},                               /* invalid byte: one replacement char */
        /* base/utf8's maximal subparts (Unicode 3.9, as Python's decode("utf-8", "replace")):
         * a truncated 3-byte sequence is one U+FFFD; an overlong '/' and a surrogate are not
         * characters but one U+FFFD per byte */
        {"\xe2\x82", 1},
        {"\xc0\xaf", 2},
        {"\xed\xa0\x80", 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(card_display_width(cases[i].s), cases[i].w);
}

static void test_clip(void **state) {
    (void)state;
    static const struct {
        const char *s;
        int         w;
        const char *want;
    } cases[] = {
        {"hello", 5, "hello"},
        {"hello world", 5, "hell\xe2\x80\xa6"},
        {"a\nb", 10, "a\xe2\x86\xb5" "b"},
        {"\xe5\x90\x8d\xe5\x89\x8d\xe5\x90\x8d", 4, "\xe5\x90\x8d\xe2\x80\xa6"}, /* 名… = 3 cols */
        {"tab\there", 20, "tab here"},
        {"a\xe2\x82z", 10, "a\xef\xbf\xbdz"},              /* one U+FFFD for E2 82 */
        {"\xc0\xafx", 10, "\xef\xbf\xbd\xef\xbf\xbdx"},  /* overlong '/': not a '/' */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *c = card_clip(cases[i].s, cases[i].w);
        assert_string_equal(c, cases[i].want);
        assert_true(card_display_width(c) <= cases[i].w);
        free(c);
    }
}

/* A card with every part filled, with content chosen to break a naive layout. */
static void make_card(struct card *c) {
    static const char *const pieces[] = {"Once", " upon", " a", " time", " \xe5\x90\x8d", "\n",
                                         " Lily", " was", " extraordinarilyextraordinarily",
                                         " happy", "."};
    static const float acts[] = {0, 0, 0, 0, 0.5f, 0, 2.0f, 1.0f, 0, 0, 0.25f};
    const int          n = (int)(sizeof pieces / sizeof pieces[0]);
    memset(c, 0, sizeof *c);
    c->feature = 42;
    c->d_sae = 1024;
    c->sae_path = xstrdup("/a/very/long/path/to/some/deeply/nested/folder/of/saes/that/goes/on/"
                          "and/on/stories260K-L2");
    c->model_path = xstrdup("model.bin");
    snprintf(c->hook, sizeof c->hook, "blocks.2.hook_resid_post");
    c->n_desc = 2;
    c->desc = xcalloc(2, sizeof *c->desc);
    c->desc[0] = (struct card_desc){xstrdup("the name Lily, and also "
                                            "averyveryveryveryveryveryveryveryveryveryveryveryvery"
                                            "veryveryverylongword and \xe5\x90\x8d\xe5\x89\x8d "
                                            "repeated \xe5\x90\x8d\xe5\x89\x8d\xe5\x90\x8d\xe5\x89"
                                            "\x8d\xe5\x90\x8d\xe5\x89\x8d\xe5\x90\x8d\xe5\x89\x8d"
                                            "\xe5\x90\x8d\xe5\x89\x8d\xe5\x90\x8d\xe5\x89\x8d"
                                            "\xe5\x90\x8d\xe5\x89\x8d\xe5\x90\x8d\xe5\x89\x8d"),
                                    xstrdup("user"), 0};
    c->desc[1] = (struct card_desc){xstrdup("girls' names"), xstrdup("autointerp run 3 (x)"), 3};
    c->n_scores = 1;
    c->scores = xcalloc(1, sizeof *c->scores);
    c->scores[0] = (struct card_score){xstrdup("specificity"), xstrdup("activating contexts"), 7,
                                       xstrdup("openai:mock"), 12, 2.25, 0.31, 1, 2};
    snprintf(c->sae_hash, sizeof c->sae_hash, "%064d", 7);
    c->index_run = 1, c->index_tokens = 4096;
    c->index_corpus = xstrdup("stories sampled from the model (seed 0)");
    c->index_corpus_hash = xstrdup("-"), c->index_seed = xstrdup("0");
    c->index_date = xstrdup("2026-12-07 20:00:00 UTC to 2026-12-07 20:01:00 UTC");
    c->n_runs = 2;
    c->runs = xcalloc(2, sizeof *c->runs);
    c->runs[0] = (struct card_run){3, xstrdup("autointerp"), xstrdup("llm a:b; 1 parsed"),
                                   xstrdup("-"), xstrdup("-"), xstrdup("-")};
    c->runs[1] = (struct card_run){7, xstrdup("specificity"),
                                   xstrdup("llm openai:mock; 16 parsed, 0 unparsed, 0 skipped, 0 "
                                           "failed"),
                                   xstrdup("sha256 " "0123456789abcdef0123456789abcdef"
                                           "0123456789abcdef0123456789abcdef"),
                                   xstrdup("5"), xstrdup("2026-12-07 20:02:00 UTC to 2026-12-07 "
                                                         "20:03:00 UTC")};
    c->has_stats = 1;
    c->n_tokens = 4064;
    c->fire_count = 63;
    c->density = 63.0 / 4064;
    c->max_act = 2.0;
    c->mean_act = 0.6;
    c->q10 = 0.01, c->q50 = 0.6, c->q90 = 1.4, c->q99 = 2.0;
    c->hist_max = 2.0;
    for (int i = 0; i < CARD_HIST_BINS; i++) c->hist[i] = i * 7;
    c->hist[0] = 100000;
    c->hist_n = 100000 + 7 * 45;
    c->n_top = 1;
    c->top = xcalloc(1, sizeof *c->top);
    struct card_context *x = &c->top[0];
    x->example_id = 9;
    snprintf(x->kind, sizeof x->kind, "top");
    x->interval = -1;
    x->activation = 2.0;
    x->center = 6;
    x->n = n;
    x->pieces = xcalloc((size_t)n, sizeof *x->pieces);
    x->acts = xmalloc(sizeof *x->acts * (size_t)n);
    for (int i = 0; i < n; i++) {
        x->pieces[i] = xstrdup(pieces[i]);
        x->acts[i] = acts[i];
    }
    c->n_logits = 2;
    c->logits_source = "computed";
    c->logit_top = xcalloc(2, sizeof *c->logit_top);
    c->logit_bottom = xcalloc(2, sizeof *c->logit_bottom);
    c->logit_top[0] = (struct card_token){1, xstrdup(" Lily"), 0.6};
    c->logit_top[1] =
        (struct card_token){2, xstrdup("averyveryveryveryveryveryveryveryverylongtoken"), 0.5};
    c->logit_bottom[0] = (struct card_token){3, xstrdup("<0x84>"), -0.3};
    c->logit_bottom[1] = (struct card_token){4, xstrdup("\n"), -0.2};
    c->n_neighbors = 1;
    c->neighbors_source = "stored";
    c->neighbors = xcalloc(1, sizeof *c->neighbors);
    c->neighbors[0] = (struct card_neighbor){7, 0.95, xstrdup("a description that is far too "
                                                              "long to fit on one line of the "
                                                              "table, so it must be clipped")};
    c->neuron_source = NULL;
    c->neuron = c->neuron_layer = -1;
    c->neuron_pearson = NAN;
    c->n_categories = 2;
    c->categories = xcalloc(2, sizeof *c->categories);
    c->categories[0] = xstrdup("people");
    c->categories[1] = xstrdup("names");
}

static void assert_fits(const char *text, int width) {
    const char *p = text;
    int         lines = 0;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t      n = e ? (size_t)(e - p) : strlen(p);
        char       *line = xmalloc(n + 1);
        memcpy(line, p, n);
        line[n] = 0;
        if (card_display_width(line) > width) fail_msg("line wider than %d: %s", width, line);
        free(line);
        lines++;
        p += n + (e ? 1 : 0);
    }
    assert_true(lines > 20);
}

static void test_text_fits(void **state) {
    (void)state;
    struct card c;
    make_card(&c);
    static const int widths[] = {60, 72, 80, 100, 132};
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++)
        for (int colour = 0; colour < 2; colour++) {
            char *t = card_render_text(&c, widths[i], colour);
            assert_fits(t, widths[i]);
            /* markers always; escapes only with colour */
            assert_non_null(strstr(t, "\xe2\x9f\xa6"));
            assert_true((strchr(t, 0x1b) != NULL) == colour);
            assert_non_null(strstr(t, "people, names"));
            /* the score with its items, interval, n and counts, whatever the wrapping */
            char  *flat = xstrdup(t), *o = flat;
            for (const char *p = t; *p; p++) {
                int sp = *p == ' ' || *p == '\n';
                if (sp && o > flat && o[-1] == ' ') continue;
                *o++ = sp ? ' ' : *p;
            }
            *o = 0;
            assert_non_null(strstr(flat, "specificity run 7 (openai:mock), activating contexts: "
                                         "mean 2.25 \xc2\xb1 0.31 (95% CI), n 12; 1 unparsed, 2 "
                                         "skipped"));
            free(flat);
            free(t);
        }
    card_release(&c);
}

static void test_json(void **state) {
    (void)state;
    struct card   c;
    struct ev_err err;
    cJSON        *j = NULL;
    make_card(&c);
    char *s = card_render_json(&c);
    assert_int_equal(json_parse(s, strlen(s), "card", &j, &err), EV_OK);
    const char *schema = NULL, *text = NULL;
    assert_int_equal(json_get_str(j, "schema", "card", &schema, &err), EV_OK);
    assert_string_equal(schema, "evalrun.feature_card/1");
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(j, "top_contexts");
    assert_int_equal(cJSON_GetArraySize(top), 1);
    assert_int_equal(json_get_str(cJSON_GetArrayItem(top, 0), "text", "ctx", &text, &err), EV_OK);
    /* runs of activating tokens are wrapped together; the newline is shown as ↵ */
    assert_string_equal(text, "Once upon a time\xe2\x9f\xa6 \xe5\x90\x8d\xe2\x9f\xa7\xe2\x86\xb5"
                              "\xe2\x9f\xa6 Lily was\xe2\x9f\xa7 extraordinarilyextraordinarily"
                              " happy\xe2\x9f\xa6.\xe2\x9f\xa7");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "neuron")));
    const cJSON *tk = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
                                             cJSON_GetArrayItem(top, 0), "tokens"), 5);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(tk, "text")->valuestring, "\n");
    /* the provenance: hashes, the index, each run's facts; "-" (not recorded) as null */
    const cJSON *pv = cJSON_GetObjectItemCaseSensitive(j, "provenance");
    const cJSON *sae = cJSON_GetObjectItemCaseSensitive(pv, "sae");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(sae, "sha256")->valuestring, c.sae_hash);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(pv, "model"), "sha256")));
    const cJSON *ix = cJSON_GetObjectItemCaseSensitive(pv, "index");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(ix, "tokens")->valuedouble, 4096);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(ix, "corpus_sha256")));
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(pv, "runs");
    assert_int_equal(cJSON_GetArraySize(runs), 2);
    const cJSON *r1 = cJSON_GetArrayItem(runs, 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(r1, "run_id")->valuedouble, 7);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(r1, "seed")->valuestring, "5");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(runs, 0),
                                                              "template")));
    const cJSON *d1 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "descriptions"), 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(d1, "run_id")->valuedouble, 3);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "histogram");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(h, "bins")),
                     CARD_HIST_BINS);
    json_free(j);
    free(s);
    /* without statistics: stats is null */
    c.has_stats = 0;
    s = card_render_json(&c);
    assert_int_equal(json_parse(s, strlen(s), "card", &j, &err), EV_OK);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "stats")));
    json_free(j);
    free(s);
    /* Markdown escapes the table delimiter in text */
    free(c.neighbors[0].description);
    c.neighbors[0].description = xstrdup("a | b");
    s = card_render_md(&c);
    assert_non_null(strstr(s, "a \\| b"));
    assert_non_null(strstr(s, "| run 7 (specificity) | grader llm openai:mock; 16 parsed"));
    free(s);
    card_release(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_display_width),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_text_fits),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
