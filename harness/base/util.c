/*
 * util — allocation, errors, strings, randomness, files, time, interrupts and logging.
 * See util.h for the contracts.
 */
#include "base/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int ev_fail(struct ev_err *err, int code, const char *fmt, ...) {
    if (err) {
        /* Formatted aside first: the arguments may point into err->msg (a message wrapping
         * the one before it), and vsnprintf into its own source is undefined (issue 20.4). */
        char    msg[sizeof err->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        memcpy(err->msg, msg, sizeof msg);
    }
    return code;
}

int ev_exit_status(int code) {
    switch (code) {
    case EV_OK:       return 0;
    case EV_EUSAGE:   return 2;
    case EV_EREGRESS: return 3;
    case EV_EINTR:    return 130;
    default:          return 1;
    }
}

// ---------------------------------------------------------------------------- allocation

static void oom(size_t n, const char *file, int line) {
    fprintf(stderr, "evalrun: out of memory allocating %zu bytes at %s:%d\n", n, file, line);
    abort();
}

void *ev_xmalloc(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n, file, line);
    return p;
}

void *ev_xcalloc(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size, file, line);
    return p;
}

void *ev_xrealloc(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n, file, line);
    return q;
}

char *ev_xstrdup(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char  *p = ev_xmalloc(n, file, line);
    memcpy(p, s, n);
    return p;
}

char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    EV_ASSERT(n >= 0);
    char *s = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

void ev_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "evalrun: internal error: assertion '%s' failed at %s:%d\n", expr, file,
            line);
    abort();
}

// ---------------------------------------------------------------------------- sbuf

void sbuf_init(struct sbuf *sb) { memset(sb, 0, sizeof *sb); }

void sbuf_release(struct sbuf *sb) {
    free(sb->buf);
    sbuf_init(sb);
}

static void sbuf_grow(struct sbuf *sb, size_t extra) {
    if (sb->len + extra + 1 <= sb->cap) return;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < sb->len + extra + 1) cap *= 2;
    sb->buf = xrealloc(sb->buf, cap);
    sb->cap = cap;
}

void sbuf_add(struct sbuf *sb, const char *s, size_t n) {
    sbuf_grow(sb, n);
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

void sbuf_adds(struct sbuf *sb, const char *s) { sbuf_add(sb, s, strlen(s)); }

void sbuf_addf(struct sbuf *sb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    EV_ASSERT(n >= 0);
    sbuf_grow(sb, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

char *sbuf_detach(struct sbuf *sb) {
    char *s = sb->buf ? sb->buf : xstrdup("");
    sbuf_init(sb);
    return s;
}

// ---------------------------------------------------------------------------- rng

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(struct rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_u64(struct rng *r) {
    uint64_t *s = r->s;
    uint64_t  result = rotl(s[1] * 5, 7) * 9;
    uint64_t  t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(struct rng *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t rng_below(struct rng *r, uint64_t n) {
    EV_ASSERT(n > 0);
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = rng_u64(r);
    while (x >= limit);
    return x % n;
}

float rng_normal(struct rng *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

void rng_shuffle(struct rng *r, int *a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(r, i);
        int    t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

// ---------------------------------------------------------------------------- numbers

int parse_long(const char *s, long *out) {
    if (!s || !*s) return EV_EFAIL;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end) return EV_EFAIL;
    *out = v;
    return EV_OK;
}

int parse_index(const char *s, long max, long *out) {
    if (!s || !*s) return EV_EFAIL;
    long v = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9') return EV_EFAIL;
        long d = *c - '0';
        if (d > max || v > (max - d) / 10) return EV_EFAIL; /* v * 10 + d > max */
        v = v * 10 + d;
    }
    *out = v;
    return EV_OK;
}

int parse_double(const char *s, double *out) {
    if (!s || !*s) return EV_EFAIL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return EV_EFAIL;
    *out = v;
    return EV_OK;
}

// ---------------------------------------------------------------------------- files

int file_read_all(const char *path, char **out, size_t *len, struct ev_err *err) {
    int   rc = EV_EFAIL;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ev_fail(err, EV_EFAIL, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = xrealloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        ev_fail(err, EV_EFAIL, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    buf = NULL;
    if (len) *len = n;
    rc = EV_OK;
out:
    free(buf);
    fclose(f);
    return rc;
}

int file_write_atomic_parts(const char *path, const struct file_part *parts, int n_parts,
                            struct ev_err *err) {
    int   rc = EV_EFAIL;
    char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
    int   fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        ev_fail(err, EV_EFAIL, "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    for (int i = 0; i < n_parts; i++) {
        const char *p = parts[i].data;
        size_t      left = parts[i].len;
        while (left > 0) {
            ssize_t w = write(fd, p, left);
            if (w < 0) {
                if (errno == EINTR) continue;
                ev_fail(err, EV_EFAIL, "cannot write %s: %s", path, strerror(errno));
                goto out;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        ev_fail(err, EV_EFAIL, "cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        ev_fail(err, EV_EFAIL, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto out;
    }
    rc = EV_OK;
out:
    if (fd >= 0) close(fd);
    if (rc != EV_OK) unlink(tmp);
    free(tmp);
    return rc;
}

int file_write_atomic(const char *path, const void *data, size_t len, struct ev_err *err) {
    const struct file_part part = {data, len};
    return file_write_atomic_parts(path, &part, 1, err);
}

int mkdir_p(const char *path, struct ev_err *err) {
    char *p = xstrdup(path);
    int   rc = EV_OK;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            rc = ev_fail(err, EV_EFAIL, "cannot create directory %s: %s", p, strerror(errno));
            goto out;
        }
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        rc = ev_fail(err, EV_EFAIL, "cannot create directory %s: %s", p, strerror(errno));
    else if (!path_is_dir(p))
        rc = ev_fail(err, EV_EFAIL, "%s exists and is not a directory", p);
out:
    free(p);
    return rc;
}

void remove_flat_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char *p = path_join(dir, e->d_name);
            unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

int path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir);
    if (n > 0 && dir[n - 1] == '/') return xasprintf("%s%s", dir, name);
    return xasprintf("%s/%s", dir, name);
}

char *path_beside_binary(const char *rel) {
    char    exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return NULL;
    *slash = '\0';
    static const char *const up[] = {"..", "../.."};
    for (size_t i = 0; i < sizeof up / sizeof up[0]; i++) {
        char *cand = xasprintf("%s/%s/%s", exe, up[i], rel);
        if (path_exists(cand)) return cand;
        free(cand);
    }
    return NULL;
}

char *path_shipped(const char *given, const char *env_var, const char *rel) {
    if (given) return xstrdup(given);
    const char *env = env_var ? getenv(env_var) : NULL;
    if (env && *env) return xstrdup(env);
    if (path_exists(rel)) return xstrdup(rel);
    char *p = path_beside_binary(rel);
    return p ? p : xstrdup(rel);
}

// ---------------------------------------------------------------------------- time

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int64_t now_unix_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// ---------------------------------------------------------------------------- interrupts

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

void ev_install_interrupt_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static void (*beat_fn)(void *ctx);
static void     *beat_ctx;
static double    beat_every, beat_next;
static pthread_t beat_thread;

void ev_set_heartbeat(void (*fn)(void *ctx), void *ctx, double every_s) {
    beat_fn = fn;
    beat_ctx = fn ? ctx : NULL;
    beat_every = every_s;
    beat_next = now_seconds() + every_s;
    beat_thread = pthread_self();
}

void *ev_heartbeat_ctx(void) { return beat_ctx; }

int ev_interrupted(void) {
    if (beat_fn && pthread_equal(pthread_self(), beat_thread)) {
        double t = now_seconds();
        if (t >= beat_next) {
            beat_next = t + beat_every;
            beat_fn(beat_ctx);
        }
    }
    return interrupted != 0;
}

// ---------------------------------------------------------------------------- logging

static int verbosity = EV_NORMAL;

void ev_set_verbosity(int v) { verbosity = v; }
int  ev_verbosity(void) { return verbosity; }

void ev_log(int level, const char *fmt, ...) {
    if (level > verbosity) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int out_file_check(const char *flag, const char *path, struct ev_err *err) {
    if (path_is_dir(path))
        return ev_fail(err, EV_EFAIL, "%s %s is a directory, expected a file", flag, path);
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return EV_OK;
    char *dir = xstrdup(path);
    dir[slash - path] = '\0';
    int rc = path_is_dir(dir) ? EV_OK
                              : ev_fail(err, EV_EFAIL, "%s %s: directory %s does not exist", flag,
                                        path, dir);
    free(dir);
    return rc;
}
