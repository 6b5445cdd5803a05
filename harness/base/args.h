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
 *
 * A table may include another with an OPT_TABLE entry (name: the heading its options get in
 * --help; dst: the other table): that is how the options several commands share are declared
 * once (harness/cli/common_opts.h) and included by each. Global options (--db, --quiet,
 * --verbose) are one such table: main takes them out of argv with args_take() before a
 * command sees it, and each command's --help lists them from the same table.
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
    OPT_TABLE,  /* const struct opt *: another table, included here (name: its heading) */
};

/* A repeatable option's values, in a fixed array so that no return path of a command can leak
 * it: more than STRLIST_MAX uses of one option are a usage error. */
enum { STRLIST_MAX = 128 };
struct strlist {
    const char *v[STRLIST_MAX];
    int         n;
};

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
    const char *synopsis; /* what is required: "--prompt TEXT"; the usage line adds
                           * "[options]" when the table has any */
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

/* For a command that takes no positional argument: EV_OK when npos is 0, else a usage error
 * naming the first one (argv[1] after args_parse()) with the command's usage line. */
int args_no_positional(const struct cmd_help *help, int npos, char **argv, struct ev_err *err);
/* args_parse() for a command that takes options only: a positional argument is that error. */
int args_parse_flags(const struct cmd_help *help, const struct opt *opts, int argc, char **argv,
                     struct ev_err *err);

/* Prints `usage: evalrun NAME SYNOPSIS [options]`, the summary and the option table, each
 * included table under its heading. */
void args_usage(FILE *out, const struct cmd_help *help, const struct opt *opts);
/* Prints the options of one table (included tables not followed), one per line. */
void args_print_options(FILE *out, const struct opt *opts);

/*
 * Takes the options of opts (flags and strings) out of argv[1..*argc-1] wherever they stand
 * before a "--", for main's global options: argv keeps the rest, in order, NULL-terminated,
 * and *argc is updated. EV_EUSAGE when an option lacks its value.
 */
int args_take(const struct opt *opts, int *argc, char **argv, struct ev_err *err);

/* Helpers for range checks after parsing; each returns EV_EUSAGE with a message naming the
 * flag when the value is outside [lo, hi]. */
int args_check_long(const char *flag, long v, long lo, long hi, struct ev_err *err);
int args_check_double(const char *flag, double v, double lo, double hi, struct ev_err *err);

/* Parses "K/N" for --shard (0 <= K < N); a NULL spec means 0/1. */
int args_parse_shard(const char *spec, int *k, int *n, struct ev_err *err);

/* Parses the comma-separated list s of flag into *n longs, each in [lo, hi] (caller frees
 * *out); EV_EUSAGE naming the flag and the bad element otherwise (*out NULL, *n 0). */
int args_parse_long_list(const char *flag, const char *s, long lo, long hi, long **out, int *n,
                         struct ev_err *err);

#endif
