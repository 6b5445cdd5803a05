/*
 * args — table-driven command-line options for the subcommands.
 *
 * Included by: every wing (base is the bottom: it includes only base).
 *
 * A command declares its options as a static table and calls args_parse(); help text is made
 * from the same table, so `evalrun CMD --help` never drifts from what is accepted.
 *
 *     static const char *model = NULL; long n = 64;
 *     const struct opt opts[] = {
 *         { "model",      OPT_STR,  &model, "PATH", "model file or folder" },
 *         { "max-tokens", OPT_LONG, &n,     "N",    "new tokens to generate (default 64)" },
 *         { 0 }
 *     };
 *
 * Options are `--name VALUE` or `--name=VALUE`; OPT_FLAG takes no value. Everything that is
 * not an option is positional, in order; `--` ends the options (the rest is positional).
 * Global options (--db, --quiet, --verbose) are taken out by main before a command sees argv.
 */
#ifndef EV_ARGS_H
#define EV_ARGS_H

#include <stdio.h>

#include "base/util.h"

enum opt_kind {
    OPT_FLAG,   /* int *: set to 1 */
    OPT_STR,    /* const char **: borrowed from argv */
    OPT_LONG,   /* long * */
    OPT_DOUBLE, /* double * */
    OPT_STRS,   /* struct strlist *: repeatable; values borrowed from argv */
};

struct strlist {
    const char **v; /* caller frees the array with strlist_release() */
    int          n;
};
void strlist_release(struct strlist *l);

struct opt {
    const char   *name;    /* without the leading "--"; NULL ends the table */
    enum opt_kind kind;
    void         *dst;
    const char   *metavar; /* e.g. "PATH"; NULL for flags */
    const char   *help;
};

/* What a command is: for its --help. */
struct cmd_help {
    const char *name;     /* "generate" */
    const char *synopsis; /* "[--model PATH] --prompt TEXT [--max-tokens N]" */
    const char *summary;  /* one paragraph */
};

#define ARGS_HELP 1 /* args_parse saw --help/-h: usage was printed to stdout; exit 0 */

/*
 * Parses argv[1..argc-1] (argv[0] is the command name) against opts. Positional arguments are
 * compacted to the front of argv: on return *n_pos holds how many, in argv[1..*n_pos].
 * Returns EV_OK, ARGS_HELP, or EV_EUSAGE with a message naming the option at fault.
 */
int args_parse(const struct cmd_help *help, const struct opt *opts, int argc, char **argv,
               int *n_pos, struct ev_err *err);

/* Prints `usage: evalrun NAME SYNOPSIS`, the summary and the option table. */
void args_usage(FILE *out, const struct cmd_help *help, const struct opt *opts);

/* Helpers for range checks after parsing; each returns EV_EUSAGE with a message naming the
 * flag when the value is outside [lo, hi]. */
int args_check_long(const char *flag, long v, long lo, long hi, struct ev_err *err);
int args_check_double(const char *flag, double v, double lo, double hi, struct ev_err *err);

/* Parses "K/N" for --shard (0 <= K < N); a NULL spec means 0/1. */
int args_parse_shard(const char *spec, int *k, int *n, struct ev_err *err);

#endif
