/* Unit tests for http: the retry policy (pure functions) and transfers over real HTTP to the
 * local mock API server on 127.0.0.1 (status, headers, Retry-After, connection reuse,
 * concurrency, time-outs, dropped connections, refused connections). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <unistd.h>

#include "base/http.h"
#include "mock_server.h"

static void test_status_retryable(void **state) {
    (void)state;
    static const struct { int status, want; } cases[] = {
        {200, 0}, {400, 0}, {401, 0}, {403, 0}, {404, 0}, {422, 0}, {408, 1}, {409, 1},
        {425, 1}, {429, 1}, {500, 1}, {502, 1}, {503, 1}, {529, 1}, {599, 1}, {600, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(http_status_retryable(cases[i].status), cases[i].want);
}

static void test_backoff(void **state) {
    (void)state;
    struct rng r;
    rng_seed(&r, 1);
    for (int k = 0; k < 1000; k++) {
        for (int retry = 1; retry <= 8; retry++) {
            double full = 0.5 * pow(2, retry - 1);
            if (full > 10) full = 10;
            double d = http_backoff_s(retry, 0.5, 10, -1, &r);
            assert_true(d >= full / 2 - 1e-12 && d <= full + 1e-12);
        }
    }
    /* jitter really varies */
    double a = http_backoff_s(3, 1, 60, -1, &r), b = http_backoff_s(3, 1, 60, -1, &r);
    assert_true(a != b);
    /* Retry-After wins, capped */
    assert_true(http_backoff_s(1, 1, 60, 7, &r) == 7);
    assert_true(http_backoff_s(5, 1, 60, 0, &r) == 0);
    assert_true(http_backoff_s(1, 1, 60, 600, &r) == 60);
}

static void test_retry_after_parse(void **state) {
    (void)state;
    assert_true(http_parse_retry_after("120", 0) == 120);
    assert_true(http_parse_retry_after(" 1.5\r\n", 0) == 1.5);
    assert_true(http_parse_retry_after("0", 0) == 0);
    assert_true(http_parse_retry_after("", 0) == -1);
    assert_true(http_parse_retry_after("soon", 0) == -1);
    assert_true(http_parse_retry_after("-3", 0) == -1);
    assert_true(http_parse_retry_after(NULL, 0) == -1);
    /* HTTP-date: 2015-10-21 07:28:00 UTC is 1445412480 (date -u -d ... +%s) */
    assert_true(http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 30) == 30);
    assert_true(http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 + 30) == 0);
}

// --- over HTTP ---------------------------------------------------------------------------

struct collect {
    int    n;
    int    ids[256];
    int    status[256];
    int    outcome[256];
    double retry_after[256];
    char   body[256][256];
};

static int collect_cb(void *ud, const struct http_response *r) {
    struct collect *c = ud;
    if (c->n >= 256) return 1;
    c->ids[c->n] = r->id;
    c->status[c->n] = r->status;
    c->outcome[c->n] = (int)r->outcome;
    c->retry_after[c->n] = r->retry_after_s;
    snprintf(c->body[c->n], sizeof c->body[0], "%.*s", (int)r->body_len, r->body);
    c->n++;
    return 0;
}

static const char *const anth_headers[] = {"Content-Type: application/json",
                                           "x-api-key: test-key-1", NULL};
static const char        body[] =
    "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

/* Starts requests ids [0, n) to url and waits for all of them. */
static void run_all(struct http_client *c, const char *url, int n, double timeout,
                    struct collect *out) {
    struct ev_err e;
    memset(out, 0, sizeof *out);
    struct http_request req = {url, anth_headers, body, strlen(body), timeout, 0};
    int                 started = 0;
    double              t_end = now_seconds() + 30;
    while (out->n < n && now_seconds() < t_end) {
        while (started < n && http_in_flight(c) < 64) {
            if (http_start(c, started, &req, &e) != EV_OK) break;
            started++;
        }
        assert_int_equal(http_wait(c, 1.0, collect_cb, out, &e), EV_OK);
    }
    assert_int_equal(out->n, n);
    assert_int_equal(http_in_flight(c), 0);
}

static int setup_mock(void **state) {
    struct mock *m = xcalloc(1, sizeof *m);
    if (mock_start(m, "{\"answer\": \"Score: 1\"}") != 0) {
        free(m);
        return -1;
    }
    *state = m;
    return 0;
}

static int teardown_mock(void **state) {
    struct mock *m = *state;
    mock_stop(m);
    free(m);
    return 0;
}

static void test_post_and_headers(void **state) {
    struct mock        *m = *state;
    struct http_client *c = NULL;
    struct ev_err       e;
    struct collect      out;
    mock_script(m, "{\"answer\": \"Score: 1\", \"api_key\": \"test-key-1\"}");
    assert_int_equal(http_client_new(2, &c, &e), EV_OK);
    char *url = xasprintf("%s/v1/messages", m->url);
    run_all(c, url, 1, 10, &out);
    assert_int_equal(out.outcome[0], HTTP_OUTCOME_OK);
    assert_int_equal(out.status[0], 200);
    assert_non_null(strstr(out.body[0], "\"Score: 1\""));
    assert_true(out.retry_after[0] == -1);
    char *log = mock_log_text(m);
    assert_non_null(strstr(log, "\"x-api-key\": \"test-key-1\""));
    assert_non_null(strstr(log, "\"content\": \"hi\""));
    assert_null(strstr(log, "\"expect\"")); /* no 100-continue round trip */
    free(log);
    free(url);
    http_client_free(c);
}

static void test_retry_after_header(void **state) {
    struct mock        *m = *state;
    struct http_client *c = NULL;
    struct ev_err       e;
    struct collect      out;
    mock_script(m, "{\"status\": 429, \"retry_after\": \"7\"}");
    assert_int_equal(http_client_new(1, &c, &e), EV_OK);
    char *url = xasprintf("%s/messages", m->url); /* without /v1 */
    run_all(c, url, 1, 10, &out);
    assert_int_equal(out.status[0], 429);
    assert_true(out.retry_after[0] == 7);
    /* the next response on the same handle has none: the value does not leak across */
    mock_script(m, "{\"status\": 503}");
    run_all(c, url, 1, 10, &out);
    assert_int_equal(out.status[0], 503);
    assert_true(out.retry_after[0] == -1);
    free(url);
    http_client_free(c);
}

static void test_connection_reuse(void **state) {
    struct mock        *m = *state;
    struct http_client *c = NULL;
    struct ev_err       e;
    struct collect      out;
    mock_script(m, "{}");
    assert_int_equal(http_client_new(1, &c, &e), EV_OK);
    char *url = xasprintf("%s/v1/messages", m->url);
    for (int i = 0; i < 10; i++) run_all(c, url, 1, 10, &out);
    /* ten requests through one handle: one client port (one connection) in the log */
    char *log = mock_log_text(m);
    char  first[32] = "";
    int   n = 0, same = 0;
    for (char *p = strstr(log, "\"port\": "); p; p = strstr(p + 1, "\"port\": ")) {
        char port[32];
        snprintf(port, sizeof port, "%.*s", (int)strcspn(p + 8, ","), p + 8);
        if (!first[0]) snprintf(first, sizeof first, "%s", port);
        same += strcmp(first, port) == 0;
        n++;
    }
    assert_int_equal(n, 10);
    assert_int_equal(same, 10);
    free(log);
    free(url);
    http_client_free(c);
}

static void test_concurrency(void **state) {
    struct mock        *m = *state;
    struct http_client *c = NULL;
    struct ev_err       e;
    struct collect      out;
    /* 8 requests started together are in flight together, as the server counts them (it
     * holds each until all 8 have arrived, at most 10 s: no clock in the test) */
    mock_script(m, "{\"gate\": 8, \"latency_ms\": 50}");
    char *url = xasprintf("%s/v1/messages", m->url);
    assert_int_equal(http_client_new(8, &c, &e), EV_OK);
    run_all(c, url, 8, 20, &out);
    assert_int_equal(mock_count(m), 8);
    assert_int_equal(mock_peak_inflight(m), 8);
    http_client_free(c);
    /* a full pool refuses a further start */
    assert_int_equal(http_client_new(2, &c, &e), EV_OK);
    struct http_request req = {url, anth_headers, body, strlen(body), 10, 0};
    assert_int_equal(http_start(c, 0, &req, &e), EV_OK);
    assert_int_equal(http_start(c, 1, &req, &e), EV_OK);
    assert_int_equal(http_start(c, 2, &req, &e), EV_EFAIL);
    assert_non_null(strstr(e.msg, "busy"));
    http_abort_all(c);
    assert_int_equal(http_in_flight(c), 0);
    http_client_free(c);
    free(url);
}

static void test_timeout_drop_refused(void **state) {
    struct mock        *m = *state;
    struct http_client *c = NULL;
    struct ev_err       e;
    struct collect      out;
    char               *url = xasprintf("%s/v1/messages", m->url);
    assert_int_equal(http_client_new(2, &c, &e), EV_OK);

    mock_script(m, "{\"latency_ms\": 3000}"); /* without the 0.3 s time-out: answered */
    run_all(c, url, 1, 0.3, &out);
    assert_int_equal(out.outcome[0], HTTP_OUTCOME_TIMEOUT);
    assert_int_equal(out.status[0], 0);

    mock_script(m, "{\"mode\": \"drop\"}");
    run_all(c, url, 1, 5, &out);
    assert_int_equal(out.outcome[0], HTTP_OUTCOME_NETWORK);

    /* a port nobody listens on: bind one, note it, close it */
    int                s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    socklen_t          al = sizeof a;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f000001);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
    close(s);
    char *dead = xasprintf("http://127.0.0.1:%d/v1/messages", ntohs(a.sin_port));
    run_all(c, dead, 1, 5, &out);
    assert_int_equal(out.outcome[0], HTTP_OUTCOME_CONNECT);
    free(dead);
    free(url);
    http_client_free(c);
}

/* ---- raw replies: a one-thread server on 127.0.0.1 that answers each connection with the
 * next canned byte string and closes (what mock_api.py cannot send: malformed headers) */
struct raw_server {
    int                listen_fd, port, n;
    const char *const *replies;
};

static void *raw_serve(void *arg) {
    struct raw_server *r = arg;
    for (int i = 0; i < r->n; i++) {
        int  c = accept(r->listen_fd, NULL, NULL);
        char req[4096];
        if (c < 0) break;
        ssize_t got = 0, k;
        while (got < (ssize_t)sizeof req - 1 &&
               (k = read(c, req + got, sizeof req - 1 - (size_t)got)) > 0) {
            got += k;
            req[got] = 0;
            if (strstr(req, "\r\n\r\n")) break;
        }
        if (send(c, r->replies[i], strlen(r->replies[i]), MSG_NOSIGNAL) < 0) break;
        shutdown(c, SHUT_WR);
        close(c);
    }
    return NULL;
}

static void raw_start(struct raw_server *r, pthread_t *t) {
    struct sockaddr_in a = {0};
    socklen_t          al = sizeof a;
    r->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(r->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(r->listen_fd, 4), 0);
    assert_int_equal(getsockname(r->listen_fd, (struct sockaddr *)&a, &al), 0);
    r->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(t, NULL, raw_serve, r), 0);
}

/* Runs one request per reply, in order, on one client against a raw server; out (n) gets
 * each request's result. Caller frees out with free(). */
static struct collect *raw_run(const char *const *replies, int n) {
    struct raw_server r = {-1, 0, n, replies};
    pthread_t         t;
    raw_start(&r, &t);
    struct http_client *c = NULL;
    struct ev_err       e;
    struct collect     *out = xcalloc((size_t)n, sizeof *out);
    assert_int_equal(http_client_new(1, &c, &e), EV_OK);
    char *url = xasprintf("http://127.0.0.1:%d/v1/messages", r.port);
    for (int i = 0; i < n; i++) run_all(c, url, 1, 5, &out[i]);
    pthread_join(t, NULL);
    close(r.listen_fd);
    free(url);
    http_client_free(c);
    return out;
}

/* Bug (issue 20.6, found by tests/fuzz/fuzz_http): curl takes "HTTP/2 4011" as status 4011;
 * a status outside 100..599 is a broken reply (HTTP_OUTCOME_NETWORK, named), not a status. */
static void test_status_outside_100_599_is_a_broken_reply(void **state) {
    (void)state;
    static const char *const replies[] = {
        "HTTP/1.1 4011 Unauthorized\r\nContent-Length: 2\r\n\r\n{}"};
    struct collect *out = raw_run(replies, 1);
    assert_int_equal(out[0].outcome[0], HTTP_OUTCOME_NETWORK);
    assert_int_equal(out[0].status[0], 0);
    free(out);
}

/* Bug (issue 20.6, found by tests/fuzz/fuzz_http): libcurl 7.88 (Debian 12) keeps a pointer
 * to the previous transfer's last header in a reused easy handle (curl#11101); a reply whose
 * first header line is a folded continuation then reads freed memory (AddressSanitizer:
 * heap-use-after-free in make asan). http_start now makes a fresh easy handle per transfer. */
static void test_folded_first_header_after_a_reply(void **state) {
    (void)state;
    static const char *const replies[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Last: kept\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\n folded: first\r\nContent-Length: 2\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    };
    struct collect *out = raw_run(replies, 3);
    assert_int_equal(out[0].status[0], 200);
    /* curl refuses the folded one or takes it: either way no fault, and the client works on */
    assert_true(out[1].outcome[0] == HTTP_OUTCOME_OK || out[1].outcome[0] == HTTP_OUTCOME_NETWORK);
    assert_int_equal(out[2].status[0], 200);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_retryable),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_retry_after_parse),
        cmocka_unit_test(test_post_and_headers),
        cmocka_unit_test(test_retry_after_header),
        cmocka_unit_test(test_connection_reuse),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_timeout_drop_refused),
        cmocka_unit_test(test_folded_first_header_after_a_reply),
        cmocka_unit_test(test_status_outside_100_599_is_a_broken_reply),
    };
    return cmocka_run_group_tests(tests, setup_mock, teardown_mock);
}
