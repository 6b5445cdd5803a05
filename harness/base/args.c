/*
 * args — option parsing and help text from one table per command.
 */
#include "base/args.h"

#include <stdlib.h>
#include <string.h>

static const struct opt *find_opt(const struct opt *opts, const char *name, size_t len) {
    for (const struct opt *o = opts; o && o->name; o++) {
        if (o->kind == OPT_TABLE) {
            const struct opt *in = find_opt(o->dst, name, len);
            if (in) return in;
        } else if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) {
            return o;
        }
    }
    return NULL;
}

static int set_value(const struct cmd_help *help, const struct opt *o, const char *val,
                     struct ev_err *err) {
    switch (o->kind) {
    case OPT_STR:
        *(const char **)o->dst = val;
        return EV_OK;
    case OPT_STRS: {
        struct strlist *l = o->dst;
        if (l->n == STRLIST_MAX)
            return ev_fail(err, EV_EUSAGE, "%s: --%s given more than %d times", help->name,
                           o->name, STRLIST_MAX);
        l->v[l->n++] = val;
        return EV_OK;
    }
    case OPT_LONG:
        if (parse_long(val, o->dst) != EV_OK)
            return ev_fail(err, EV_EUSAGE, "%s: --%s expects an integer, got '%s'",
                           help->name, o->name, val);
        return EV_OK;
    case OPT_DOUBLE:
        if (parse_double(val, o->dst) != EV_OK)
            return ev_fail(err, EV_EUSAGE, "%s: --%s expects a number, got '%s'",
                           help->name, o->name, val);
        return EV_OK;
    case OPT_FLAG:
    case OPT_TABLE:
        break;
    }
    EV_ASSERT(0);
    return EV_EFAIL;
}

int args_parse(const struct cmd_help *help, const struct opt *opts, int argc, char **argv,
               int *n_pos, struct ev_err *err) {
    int npos = 0, only_pos = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            argv[1 + npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            args_usage(stdout, help, opts);
            return ARGS_HELP;
        }
        if (a[1] != '-')
            return ev_fail(err, EV_EUSAGE,
                           "%s: unknown option '%s' (see 'evalrun %s --help')",
                           help->name, a, help->name);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t      len = eq ? (size_t)(eq - name) : strlen(name);
        const struct opt *o = find_opt(opts, name, len);
        if (!o)
            return ev_fail(err, EV_EUSAGE,
                           "%s: unknown option '--%.*s' (see 'evalrun %s --help')",
                           help->name, (int)len, name, help->name);
        if (o->kind == OPT_FLAG) {
            if (eq)
                return ev_fail(err, EV_EUSAGE, "%s: --%s takes no value", help->name,
                               o->name);
            *(int *)o->dst = 1;
            continue;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc)
                return ev_fail(err, EV_EUSAGE, "%s: --%s needs a value (%s)",
                               help->name, o->name, o->metavar ? o->metavar : "VALUE");
            val = argv[++i];
        }
        int rc = set_value(help, o, val, err);
        if (rc != EV_OK) return rc;
    }
    *n_pos = npos;
    return EV_OK;
}

static int has_options(const struct opt *opts) {
    for (const struct opt *o = opts; o && o->name; o++)
        if (o->kind != OPT_TABLE || has_options(o->dst)) return 1;
    return 0;
}

void args_print_options(FILE *out, const struct opt *opts) {
    for (const struct opt *o = opts; o && o->name; o++) {
        if (o->kind == OPT_TABLE) continue;
        char left[64];
        if (o->metavar)
            snprintf(left, sizeof left, "--%s %s", o->name, o->metavar);
        else
            snprintf(left, sizeof left, "--%s", o->name);
        fprintf(out, "  %-24s %s\n", left, o->help);
    }
}

/* The table's own options under heading, then each included table under its own. */
static void print_table(FILE *out, const char *heading, const struct opt *opts) {
    int own = 0;
    for (const struct opt *o = opts; o && o->name; o++) own |= o->kind != OPT_TABLE;
    if (own) {
        fprintf(out, "\n%s:\n", heading);
        args_print_options(out, opts);
    }
    for (const struct opt *o = opts; o && o->name; o++)
        if (o->kind == OPT_TABLE) print_table(out, o->name, o->dst);
}

int args_no_positional(const struct cmd_help *help, int npos, char **argv, struct ev_err *err) {
    if (npos == 0) return EV_OK;
    const char *syn = help->synopsis ? help->synopsis : "";
    return ev_fail(err, EV_EUSAGE,
                   "%s: unexpected argument '%s' (usage: evalrun %s%s%s [options])", help->name,
                   argv[1], help->name, *syn ? " " : "", syn);
}

int args_parse_flags(const struct cmd_help *help, const struct opt *opts, int argc, char **argv,
                     struct ev_err *err) {
    int npos = 0, rc = args_parse(help, opts, argc, argv, &npos, err);
    return rc != EV_OK ? rc : args_no_positional(help, npos, argv, err);
}

void args_usage(FILE *out, const struct cmd_help *help, const struct opt *opts) {
    int         any = has_options(opts);
    const char *syn = help->synopsis ? help->synopsis : "";
    fprintf(out, "usage: evalrun %s%s%s%s\n\n%s\n", help->name, *syn ? " " : "", syn,
            any ? " [options]" : "", help->summary);
    print_table(out, "options", opts);
}

int args_take(const struct opt *opts, int *argc, char **argv, struct ev_err *err) {
    int out = 1, i = 1;
    for (; i < *argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) break;
        const char       *name = a + 2, *eq = strchr(name, '=');
        size_t            len = eq ? (size_t)(eq - name) : strlen(name);
        const struct opt *o = strncmp(a, "--", 2) == 0 ? find_opt(opts, name, len) : NULL;
        if (!o) {
            argv[out++] = a;
            continue;
        }
        if (o->kind == OPT_FLAG) {
            if (eq) return ev_fail(err, EV_EUSAGE, "--%s takes no value", o->name);
            *(int *)o->dst = 1;
            continue;
        }
        EV_ASSERT(o->kind == OPT_STR);
        if (eq) {
            *(const char **)o->dst = eq + 1;
        } else {
            if (i + 1 >= *argc)
                return ev_fail(err, EV_EUSAGE, "--%s needs a value (%s)", o->name,
                               o->metavar ? o->metavar : "VALUE");
            *(const char **)o->dst = argv[++i];
        }
    }
    for (; i < *argc; i++) argv[out++] = argv[i];
    *argc = out;
    argv[out] = NULL;
    return EV_OK;
}

int args_check_long(const char *flag, long v, long lo, long hi, struct ev_err *err) {
    if (v < lo || v > hi)
        return ev_fail(err, EV_EUSAGE, "%s must be between %ld and %ld, got %ld", flag, lo, hi,
                       v);
    return EV_OK;
}

int args_check_double(const char *flag, double v, double lo, double hi, struct ev_err *err) {
    if (!(v >= lo && v <= hi))
        return ev_fail(err, EV_EUSAGE, "%s must be between %g and %g, got %g", flag, lo, hi, v);
    return EV_OK;
}

int args_parse_shard(const char *spec, int *k, int *n, struct ev_err *err) {
    *k = 0;
    *n = 1;
    if (!spec) return EV_OK;
    const char *slash = strchr(spec, '/');
    long        kk, nn;
    char        buf[32];
    if (!slash || (size_t)(slash - spec) >= sizeof buf) goto bad;
    memcpy(buf, spec, (size_t)(slash - spec));
    buf[slash - spec] = '\0';
    if (parse_long(buf, &kk) != EV_OK || parse_long(slash + 1, &nn) != EV_OK) goto bad;
    if (nn < 1 || kk < 0 || kk >= nn) goto bad;
    *k = (int)kk;
    *n = (int)nn;
    return EV_OK;
bad:
    return ev_fail(err, EV_EUSAGE, "--shard expects K/N with 0 <= K < N, got '%s'", spec);
}

int args_parse_long_list(const char *flag, const char *s, long lo, long hi, long **out, int *n,
                         struct ev_err *err) {
    char *dup = xstrdup(s), *save = dup;
    int   cap = 0;
    *out = NULL;
    *n = 0;
    for (char *p = dup; p;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        long v;
        if (parse_long(p, &v) != 0 || v < lo || v > hi) {
            int rc = ev_fail(err, EV_EUSAGE, "%s: '%s' is not an integer in %ld..%ld (expected "
                                             "a comma-separated list)", flag, p, lo, hi);
            free(save);
            free(*out);
            *out = NULL;
            *n = 0;
            return rc;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *out = xrealloc(*out, (size_t)cap * sizeof(long));
        }
        (*out)[(*n)++] = v;
        p = comma ? comma + 1 : NULL;
    }
    free(save);
    return EV_OK;
}
