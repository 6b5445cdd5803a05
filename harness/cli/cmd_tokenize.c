/*
 * cmd_tokenize — `evalrun tokenize`: text on stdin to token ids, or ids back to text.
 * See docs/cli.md and docs/formats.md for the tokenizer kinds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "model/tok.h"

/* Reads all of stdin; *out NUL-terminated, caller frees. */
static int read_stdin(char **out, size_t *len, struct ev_err *err) {
    struct sbuf sb;
    char        buf[65536];
    size_t      k;
    sbuf_init(&sb);
    sbuf_add(&sb, "", 0);
    while ((k = fread(buf, 1, sizeof buf, stdin)) > 0) sbuf_add(&sb, buf, k);
    if (ferror(stdin)) {
        sbuf_release(&sb);
        return ev_fail(err, EV_EFAIL, "cannot read standard input");
    }
    *len = sb.len;
    *out = sbuf_detach(&sb);
    return EV_OK;
}

/* Parses whitespace-separated decimal ids. Caller frees *ids. */
static int parse_ids(const char *s, int **ids, int *n, struct ev_err *err) {
    int    cap = 64, k = 0;
    int   *v   = xmalloc((size_t)cap * sizeof *v);
    size_t i   = 0, at = 0;
    while (s[i]) {
        while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') i++;
        if (!s[i]) break;
        size_t b = i;
        while (s[i] && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') i++;
        char  tokbuf[32];
        long  val;
        size_t l = i - b;
        if (l >= sizeof tokbuf) l = sizeof tokbuf - 1;
        memcpy(tokbuf, s + b, l);
        tokbuf[l] = '\0';
        if (i - b >= sizeof tokbuf || parse_index(tokbuf, 1 << 30, &val) != EV_OK) {
            free(v);
            return ev_fail(err, EV_EFAIL, "stdin: \"%s\" (item %zu) is not a token id (expected "
                           "a non-negative integer)", tokbuf, at + 1);
        }
        if (k == cap) {
            cap *= 2;
            v = xrealloc(v, (size_t)cap * sizeof *v);
        }
        v[k++] = (int)val;
        at++;
    }
    *ids = v;
    *n   = k;
    return EV_OK;
}

int cmd_tokenize(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "tokenize", "--tokenizer PATH",
        "Reads UTF-8 text on stdin and prints its token ids separated by spaces (one line).\n"
        "With --decode, reads ids separated by whitespace and prints the text they stand for\n"
        "(BOS/EOS dropped, no newline added). PATH is a tokenizer file (llama2.c tokenizer.bin,\n"
        "tokenizer.json, GPT-2 encoder.json or vocab.bpe) or a model/tokenizer folder. The text\n"
        "is taken byte for byte: a trailing newline on stdin is part of it."};
    const char *path = NULL;
    int         decode = 0, bos = 0, n_pos = 0;
    struct common_opts co;
    common_opts_init(&co, cli, 0);
    const struct opt opts[] = {
        {"tokenizer", OPT_STR, &path, "PATH", "tokenizer file or model/tokenizer folder"},
        {"decode", OPT_FLAG, &decode, NULL, "ids on stdin to text"},
        {"bos", OPT_FLAG, &bos, NULL, "prepend the tokenizer's BOS id when encoding"},
        COMMON_OPTIONS(co),
        {0},
    };
    struct tok *t    = NULL;
    char       *in   = NULL, *text = NULL;
    int        *ids  = NULL, n = 0;
    size_t      len  = 0;
    int         rc   = args_parse(&help, opts, argc, argv, &n_pos, err);
    if (rc != EV_OK) return rc;
    if (n_pos > 0) return args_no_positional(&help, n_pos, argv, err);
    if (!path) return ev_fail(err, EV_EUSAGE, "tokenize: --tokenizer PATH is required");
    if ((rc = tok_load(path, &t, err)) != EV_OK) goto out;
    if ((rc = read_stdin(&in, &len, err)) != EV_OK) goto out;
    if (decode) {
        if ((rc = parse_ids(in, &ids, &n, err)) != EV_OK) goto out;
        if ((rc = tok_decode(t, ids, n, &text, err)) != EV_OK) goto out;
        fputs(text, stdout);
    } else {
        if (strlen(in) != len) {
            rc = ev_fail(err, EV_EFAIL, "stdin: the text holds a NUL byte at offset %zu",
                         strlen(in));
            goto out;
        }
        if ((rc = tok_encode(t, in, bos, &ids, &n, err)) != EV_OK) goto out;
        for (int i = 0; i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
        putchar('\n');
    }
    if (fflush(stdout) != 0) rc = ev_fail(err, EV_EFAIL, "cannot write standard output");
out:
    tok_free(t);
    free(in);
    free(text);
    free(ids);
    return rc;
}
