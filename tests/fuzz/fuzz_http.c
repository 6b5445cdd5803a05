/* libFuzzer target: HTTP responses, on any bytes. A server thread on 127.0.0.1 answers a
 * first request with a well-formed reply and the second with the input, byte for byte,
 * closing after each (two transfers on one client, as the grader makes many); each goes
 * through the real client
 * (http_start/http_wait over libcurl: evalrun's header and body callbacks, Retry-After), and
 * what comes back is read as the grader reads it (llm_parse_response for both providers,
 * llm_error_message, the retry policy). Invariants: a finished transfer reports an outcome; an
 * OK one a status in 100..599; Retry-After is -1 or >= 0; the back-off stays within its cap. */
#include "fuzz_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include "base/http.h"
#include "graders/llm.h"

static int             listen_fd = -1;
static int             port;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const uint8_t  *reply;
static size_t          reply_len;

static void *serve(void *arg) {
    (void)arg;
    for (;;) {
        int c = accept(listen_fd, NULL, NULL);
        if (c < 0) continue;
        char   req[4096];
        size_t got = 0;
        /* read the request head (GET: no body) */
        while (got < sizeof req - 1) {
            ssize_t r = read(c, req + got, sizeof req - 1 - got);
            if (r <= 0) break;
            got += (size_t)r;
            req[got] = 0;
            if (strstr(req, "\r\n\r\n")) break;
        }
        pthread_mutex_lock(&mu);
        size_t off = 0;
        while (off < reply_len) {
            ssize_t w = send(c, reply + off, reply_len - off, MSG_NOSIGNAL);
            if (w <= 0) break;
            off += (size_t)w;
        }
        pthread_mutex_unlock(&mu);
        shutdown(c, SHUT_WR);
        close(c);
    }
    return NULL;
}

static void start_server(void) {
    struct sockaddr_in a = {0};
    socklen_t          n = sizeof a;
    pthread_t          t;
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(listen_fd, 16) != 0 || getsockname(listen_fd, (struct sockaddr *)&a, &n) != 0)
        abort();
    port = ntohs(a.sin_port);
    if (pthread_create(&t, NULL, serve, NULL) != 0) abort();
    pthread_detach(t);
}

struct seen {
    int done;
};

static int on_done(void *ud, const struct http_response *res) {
    struct seen *s = ud;
    s->done++;
    FUZZ_CHECK(res->outcome == HTTP_OUTCOME_OK || res->outcome == HTTP_OUTCOME_TIMEOUT ||
               res->outcome == HTTP_OUTCOME_CONNECT || res->outcome == HTTP_OUTCOME_NETWORK);
    FUZZ_CHECK(res->retry_after_s == -1 || res->retry_after_s >= 0);
    FUZZ_CHECK(res->body && res->error);
    if (res->outcome != HTTP_OUTCOME_OK) return 0;
    FUZZ_CHECK(res->status >= 100 && res->status <= 599);
    struct rng r;
    rng_seed(&r, 1);
    double d = http_backoff_s(1, 1.0, 60.0, res->retry_after_s, &r);
    FUZZ_CHECK(d >= 0 && d <= 60.0);
    (void)http_status_retryable(res->status);
    struct llm_answer a;
    struct ev_err     err;
    if (llm_parse_response(GRADER_PROVIDER_ANTHROPIC, res->body, res->body_len, &a, &err) == 0)
        llm_answer_release(&a);
    if (llm_parse_response(GRADER_PROVIDER_OPENAI, res->body, res->body_len, &a, &err) == 0)
        llm_answer_release(&a);
    free(llm_error_message(res->body, res->body_len));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static struct http_client *c;
    struct ev_err              err;
    if (size > 16384) return 0;
    if (listen_fd < 0) {
        start_server();
        if (http_client_new(1, &c, &err) != 0) abort();
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/messages", port);
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Request: 1\r\n\r\n{}";
    for (int i = 0; i < 2; i++) {
        pthread_mutex_lock(&mu);
        reply = i ? data : (const uint8_t *)ok;
        reply_len = i ? size : sizeof ok - 1;
        pthread_mutex_unlock(&mu);
        struct http_request req = {url, NULL, NULL, 0, 2.0, 1.0};
        struct seen         s = {0};
        if (http_start(c, 0, &req, &err) != 0) abort();
        while (http_in_flight(c) > 0)
            if (http_wait(c, 1.0, on_done, &s, &err) != 0) abort();
        FUZZ_CHECK(s.done == 1);
    }
    pthread_mutex_lock(&mu); /* the server is done with data once it closed the connection */
    reply = NULL;
    reply_len = 0;
    pthread_mutex_unlock(&mu);
    return 0;
}
