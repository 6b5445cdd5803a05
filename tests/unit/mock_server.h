/*
 * mock_server.h — starts tests/server/mock_api.py (the local API server) for a cmocka test
 * and talks to it through files: the script it obeys and the log of requests it received.
 * Included by test_http.c and test_grader.c; everything here is static.
 */
#ifndef EV_TEST_MOCK_SERVER_H
#define EV_TEST_MOCK_SERVER_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/util.h"

struct mock {
    pid_t pid;
    int   port;
    int   seq;
    char  dir[256];
    char  script[320], log[320], portfile[320];
    char  url[96]; /* http://127.0.0.1:PORT (no /v1) */
};

static char *mock_server_path(void) {
    const char *root = getenv("ROOT");
    if (root && *root) return xasprintf("%s/tests/server/mock_api.py", root);
    char    exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return xstrdup("tests/server/mock_api.py");
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    return xasprintf("%s/../../tests/server/mock_api.py", exe); /* build/tests/ */
}

/* Replaces the script (atomically) and empties the request log. A sequence number is added
 * so that the server restarts its counters even when the script text repeats. */
static void mock_script(struct mock *m, const char *json) {
    char tmp[340];
    snprintf(tmp, sizeof tmp, "%s.tmp", m->script);
    FILE *f = fopen(tmp, "w");
    if (!f) abort();
    const char *body = strchr(json, '{');
    body = body ? body + 1 : "}";
    while (*body == ' ' || *body == '\n') body++;
    fprintf(f, "{\"_seq\": %d%s%s", ++m->seq, *body == '}' ? "" : ", ", body);
    fclose(f);
    if (rename(tmp, m->script) != 0) abort();
    f = fopen(m->log, "w");
    if (f) fclose(f);
}

/* Starts the server with a script; returns 0 when it is listening. */
static int mock_start(struct mock *m, const char *json) {
    memset(m, 0, sizeof *m);
    snprintf(m->dir, sizeof m->dir, "%s/evalrun-mock.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(m->dir)) return -1;
    snprintf(m->script, sizeof m->script, "%s/script.json", m->dir);
    snprintf(m->log, sizeof m->log, "%s/log.jsonl", m->dir);
    snprintf(m->portfile, sizeof m->portfile, "%s/port", m->dir);
    mock_script(m, json);
    char *server = mock_server_path();
    m->pid = fork();
    if (m->pid < 0) return -1;
    if (m->pid == 0) {
        int dn = open("/dev/null", 1);
        if (dn >= 0) dup2(dn, 1);
        execlp("python3", "python3", server, "--script", m->script, "--log", m->log,
               "--port-file", m->portfile, (char *)NULL);
        _exit(127);
    }
    free(server);
    for (int i = 0; i < 200; i++) { /* up to 10 s */
        FILE *f = fopen(m->portfile, "r");
        if (f) {
            int ok = fscanf(f, "%d", &m->port) == 1;
            fclose(f);
            if (ok && m->port > 0) {
                snprintf(m->url, sizeof m->url, "http://127.0.0.1:%d", m->port);
                return 0;
            }
        }
        usleep(50000);
    }
    return -1;
}

static void mock_stop(struct mock *m) {
    if (m->pid > 0) {
        kill(m->pid, SIGTERM);
        waitpid(m->pid, NULL, 0);
        m->pid = 0;
    }
    unlink(m->script);
    unlink(m->log);
    unlink(m->portfile);
    rmdir(m->dir);
}

/* Requests the server logged since the last mock_script(). */
__attribute__((unused)) static int mock_count(const struct mock *m) {
    FILE *f = fopen(m->log, "r");
    if (!f) return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

/* The values of a number field of the log's records, in log order (the order the server
 * took the requests in): key is e.g. "t" (arrival time, s) or "inflight" (requests in flight
 * at the server on arrival, itself included). Returns how many (at most max). */
__attribute__((unused)) static int mock_log_numbers(const struct mock *m, const char *key,
                                                    double *out, int max) {
    FILE *f = fopen(m->log, "r");
    if (!f) return 0;
    char  pat[64];
    char *line = NULL;
    size_t cap = 0;
    int    n = 0;
    snprintf(pat, sizeof pat, ", \"%s\": ", key); /* keys are sorted: never the first */
    while (n < max && getline(&line, &cap, f) > 0) {
        const char *p = strstr(line, pat);
        if (p) out[n++] = strtod(p + strlen(pat), NULL);
    }
    free(line);
    fclose(f);
    return n;
}

/* The most requests the server had in flight at once since the last mock_script(). */
__attribute__((unused)) static int mock_peak_inflight(const struct mock *m) {
    double v[1024];
    int    n = mock_log_numbers(m, "inflight", v, 1024), peak = 0;
    for (int i = 0; i < n; i++)
        if ((int)v[i] > peak) peak = (int)v[i];
    return peak;
}

/* The most arrivals the server saw in any window [t, t + w) since the last mock_script(). */
__attribute__((unused)) static int mock_most_in_window(const struct mock *m, double w) {
    double t[1024];
    int    n = mock_log_numbers(m, "t", t, 1024), most = 0;
    for (int i = 0; i < n; i++) {
        int k = 0;
        for (int j = 0; j < n; j++) k += t[j] >= t[i] && t[j] < t[i] + w;
        if (k > most) most = k;
    }
    return most;
}

/* The whole log (caller frees). */
__attribute__((unused)) static char *mock_log_text(const struct mock *m) {
    char         *data = NULL;
    size_t        len = 0;
    struct ev_err e;
    if (file_read_all(m->log, &data, &len, &e) != EV_OK) return xstrdup("");
    return data;
}

#endif
