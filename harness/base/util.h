/*
 * util — the small things every module uses: allocation that aborts on OOM, the error
 * buffer, a seeded random generator, a growable string, files, time, and the interrupt flag.
 *
 * Included by: every wing (base is the bottom: it includes only base).
 *
 * Errors (STYLE rule 9): a fallible function returns 0 on success or a negative EV_E* code
 * and writes a one-line, lowercase message without a full stop into a caller-supplied
 * struct ev_err. Only harness/cli/main.c turns codes into exit statuses:
 *   EV_EFAIL  -> 1  (bad data in a file, the database or the network)
 *   EV_EUSAGE -> 2  (a problem in the command line itself)
 *   EV_EREGRESS -> 3 (compare only: a metric regressed)
 */
#ifndef EV_UTIL_H
#define EV_UTIL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum ev_code {
    EV_OK       = 0,
    EV_EFAIL    = -1,
    EV_EUSAGE   = -2,
    EV_EREGRESS = -3,
    EV_EINTR    = -4, /* stopped by SIGINT/SIGTERM; work done so far is stored */
};

struct ev_err {
    char msg[512];
};

/* Formats a message into err (when err is not NULL) and returns code. The arguments may
 * read err->msg itself, so a message can wrap the one before it:
 * ev_fail(err, EV_EFAIL, "cannot index: %s", err->msg). */
int ev_fail(struct ev_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Maps an EV_E* code to the process exit status (0, 1, 2, 3; EV_EINTR gives 130). */
int ev_exit_status(int code);

/* ---- allocation: abort with size and call site on OOM (STYLE rule 12) ---- */
#define xmalloc(n)     ev_xmalloc((n), __FILE__, __LINE__)
#define xcalloc(n, s)  ev_xcalloc((n), (s), __FILE__, __LINE__)
#define xrealloc(p, n) ev_xrealloc((p), (n), __FILE__, __LINE__)
#define xstrdup(s)     ev_xstrdup((s), __FILE__, __LINE__)
void *ev_xmalloc(size_t n, const char *file, int line);
void *ev_xcalloc(size_t n, size_t size, const char *file, int line);
void *ev_xrealloc(void *p, size_t n, const char *file, int line);
char *ev_xstrdup(const char *s, const char *file, int line);
/* printf into a new string; caller frees with free(). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Programmer errors only; stays on in release builds (STYLE rule 13). */
#define EV_ASSERT(x)                                                                   \
    do {                                                                               \
        if (!(x)) ev_assert_fail(#x, __FILE__, __LINE__);                              \
    } while (0)
void ev_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/* ---- growable string ---- */
/* Invariant: buf is always NUL-terminated once anything was added; len excludes the NUL. */
struct sbuf {
    char  *buf;
    size_t len, cap;
};
void sbuf_init(struct sbuf *sb);
void sbuf_release(struct sbuf *sb);
void sbuf_add(struct sbuf *sb, const char *s, size_t n);
void sbuf_adds(struct sbuf *sb, const char *s);
void sbuf_addf(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns the string (never NULL: "" when empty) and leaves sb empty; caller frees. */
char *sbuf_detach(struct sbuf *sb);

/* ---- random numbers: xoshiro256**, seeded by splitmix64; never rand() ---- */
struct rng {
    uint64_t s[4];
};
void     rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_u64(struct rng *r);
double   rng_uniform(struct rng *r);            /* [0, 1) */
uint64_t rng_below(struct rng *r, uint64_t n);  /* [0, n), unbiased; n > 0 */
float    rng_normal(struct rng *r);             /* standard normal */
void     rng_shuffle(struct rng *r, int *a, size_t n);

/* ---- numbers from strings: whole string must parse (no atoi/atof) ---- */
int parse_long(const char *s, long *out);
/* A non-negative decimal index (a feature id, a token id, a shard): ASCII digits only, no sign
 * and no spaces, at most max. One rule for every id read from a file or the command line
 * ("+5" used to be accepted where "-5" was refused). EV_EFAIL when s is not one. */
int parse_index(const char *s, long max, long *out);
int parse_double(const char *s, double *out);

/* ---- files ---- */
/* Reads a whole file; *out is NUL-terminated, caller frees. */
int file_read_all(const char *path, char **out, size_t *len, struct ev_err *err);
/* Writes data to path atomically: path.tmp.PID, fsync, rename. */
int file_write_atomic(const char *path, const void *data, size_t len, struct ev_err *err);
/* One piece of a file written by file_write_atomic_parts (borrowed). */
struct file_part {
    const void *data;
    size_t      len;
};
/* Writes parts[0..n_parts) one after the other to path, atomically as file_write_atomic. */
int file_write_atomic_parts(const char *path, const struct file_part *parts, int n_parts,
                            struct ev_err *err);
/* Removes the plain files inside dir, then dir itself (no recursion: for flat folders such as
 * an SAE or an activation cache being replaced). Errors are ignored. */
void remove_flat_dir(const char *dir);
/* mkdir -p */
int mkdir_p(const char *path, struct ev_err *err);
int path_is_dir(const char *path);
/* For an output file named by flag (e.g. "--out"), checked before the work that fills it: EV_EFAIL
 * naming flag and path when path is a folder or its folder does not exist. */
int out_file_check(const char *flag, const char *path, struct ev_err *err);
int path_exists(const char *path);
/* Joins a directory and a file name; caller frees. */
char *path_join(const char *dir, const char *name);
/* A file or folder shipped in the repository (rel, e.g. "evals/sets/concepts.json") found
 * beside the running binary, which lives in <repo>/build/ (or build/tests/): <exe dir>/../rel,
 * then <exe dir>/../../rel. NULL when neither exists; caller frees. */
char *path_beside_binary(const char *rel);
/* Where a command finds a shipped default: given when not NULL, else $env_var when set and
 * non-empty (env_var may be NULL), else rel under the current directory, else beside the
 * binary, else rel (so that the error names it). Caller frees. */
char *path_shipped(const char *given, const char *env_var, const char *rel);

/* ---- time ---- */
double   now_seconds(void);   /* monotonic */
int64_t  now_unix_ms(void);   /* wall clock */

/* ---- interrupts: SIGINT/SIGTERM set the flag; batch loops poll it between items ---- */
void ev_install_interrupt_handler(void);
int  ev_interrupted(void);
/* A heartbeat: ev_interrupted() calls fn(ctx) at most once every every_s seconds, and only on
 * the thread that set it (never inside an OpenMP team). The store uses it to keep a running
 * run's work time current, so a SIGKILL loses at most one interval. fn NULL clears it;
 * ev_heartbeat_ctx() says whose it is (NULL when none). */
void  ev_set_heartbeat(void (*fn)(void *ctx), void *ctx, double every_s);
void *ev_heartbeat_ctx(void);

/* ---- logging: one verbosity int (STYLE rule 18); messages go to stderr ---- */
enum ev_verbosity { EV_QUIET = 0, EV_NORMAL = 1, EV_VERBOSE = 2 };
void ev_set_verbosity(int v);
int  ev_verbosity(void);
void ev_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define ev_info(...)  ev_log(EV_NORMAL, __VA_ARGS__)
#define ev_debug(...) ev_log(EV_VERBOSE, __VA_ARGS__)

#endif
