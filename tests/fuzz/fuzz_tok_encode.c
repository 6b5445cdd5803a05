/* libFuzzer target: encoders on any text, with the shipped tokenizers (GPT-2 byte-level,
 * llama2.c tok512, Qwen2-style and SentencePiece-style tokenizer.json). Invariants checked:
 * ids in range; byte-level decode(encode(t)) == t for valid UTF-8; llama2.c and
 * SentencePiece (which take any bytes, through byte tokens) decode(encode(t)) == t made valid
 * UTF-8 (decode gives U+FFFD for ill-formed bytes, as HF tokenizers do). EVALRUN_ROOT names
 * the repository. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "model/tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_TOK 4
static struct tok *toks[N_TOK]; /* loaded once per fuzzing process */

static void load_all(void) {
    static const char *const rel[N_TOK] = {"evals/tokenizers/gpt2", "tests/fixtures/tok/tok512.bin",
                                           "tests/fixtures/hf/qwen2", "tests/fixtures/hf/llama"};
    const char *root = getenv("EVALRUN_ROOT") ? getenv("EVALRUN_ROOT") : ".";
    for (int i = 0; i < N_TOK; i++) {
        char          path[4096];
        struct ev_err err;
        snprintf(path, sizeof path, "%s/%s", root, rel[i]);
        if (tok_load(path, &toks[i], &err) != 0) {
            fprintf(stderr, "fuzz_tok_encode: %s\n", err.msg);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!toks[0]) load_all();
    if (size > 4096) return 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    size_t len = strlen(text);
    char  *valid = utf8_valid_dup(text); /* what a decode gives back */
    for (int i = 0; i < N_TOK; i++) {
        struct ev_err err;
        int          *ids = NULL, n = 0;
        char         *back = NULL;
        if (tok_encode(toks[i], text, 0, &ids, &n, &err) == 0) {
            for (int k = 0; k < n; k++)
                if (ids[k] < 0 || ids[k] >= tok_vocab_size(toks[i])) abort();
            if (tok_decode(toks[i], ids, n, &back, &err) != 0) abort();
            /* round trips: not where the text spells a special token the tokenizer splits out */
            int special = strstr(text, "<|endoftext|>") || strstr(text, "<s>") ||
                          strstr(text, "</s>") || strstr(text, "<unk>") ||
                          (i == 3 && strstr(text, "\xe2\x96\x81")); /* a literal ▁ is a space */
            if (!special && (i != 1 || len) && strcmp(back, valid) != 0) {
                fprintf(stderr, "round trip failed for tokenizer %d\n", i);
                abort();
            }
            free(back);
        }
        free(ids);
    }
    free(valid);
    free(text);
    return 0;
}
