/*
 * http — libcurl multi wrapper: a fixed pool of easy handles driven by one multi handle.
 * The only file that includes <curl/curl.h>.
 */
#include "base/http.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

struct xfer {
    CURL              *easy;
    int                busy;
    int                id;
    struct curl_slist *hdrs;
    struct sbuf        body;
    double             t0;
    double             retry_after;
    char               errbuf[CURL_ERROR_SIZE];
};

struct http_client {
    CURLM       *multi;
    struct xfer *x; /* (n) the pool; x[i].easy is made anew for each transfer (see http_start) */
    int          n, in_flight;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud) {
    struct xfer *x = ud;
    size_t       n = size * nmemb;
    /* Guard against an endless body from a broken server: 64 MiB is far past any answer. */
    if (x->body.len + n > (size_t)64 << 20) return 0;
    sbuf_add(&x->body, p, n);
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud) {
    struct xfer *x = ud;
    size_t       n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
        char   val[128];
        size_t m = n - (sizeof name - 1);
        if (m >= sizeof val) m = sizeof val - 1;
        memcpy(val, p + sizeof name - 1, m);
        val[m] = 0;
        x->retry_after = http_parse_retry_after(val, (int64_t)(now_unix_ms() / 1000));
    } else if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        x->retry_after = -1; /* a new response (e.g. after 100 Continue) starts afresh */
    }
    return n;
}

int http_client_new(int max_parallel, struct http_client **out, struct ev_err *err) {
    *out = NULL;
    if (max_parallel < 1 || max_parallel > 1024)
        return ev_fail(err, EV_EUSAGE, "http: concurrency %d is outside 1..1024", max_parallel);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return ev_fail(err, EV_EFAIL, "http: libcurl failed to initialise");
    struct http_client *c = xcalloc(1, sizeof *c);
    c->multi = curl_multi_init();
    if (!c->multi) {
        free(c);
        curl_global_cleanup();
        return ev_fail(err, EV_EFAIL, "http: curl_multi_init failed");
    }
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_parallel);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)max_parallel);
    c->n = max_parallel;
    c->x = xcalloc((size_t)max_parallel, sizeof *c->x);
    for (int i = 0; i < c->n; i++) sbuf_init(&c->x[i].body);
    *out = c;
    return EV_OK;
}

static void xfer_finish(struct http_client *c, struct xfer *x) {
    curl_multi_remove_handle(c->multi, x->easy);
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    x->busy = 0;
    c->in_flight--;
}

void http_abort_all(struct http_client *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++)
        if (c->x[i].busy) xfer_finish(c, &c->x[i]);
}

void http_client_free(struct http_client *c) {
    if (!c) return;
    http_abort_all(c);
    for (int i = 0; i < c->n; i++) {
        if (c->x[i].easy) curl_easy_cleanup(c->x[i].easy);
        sbuf_release(&c->x[i].body);
    }
    curl_multi_cleanup(c->multi);
    free(c->x);
    free(c);
    curl_global_cleanup();
}

int http_in_flight(const struct http_client *c) { return c->in_flight; }

int http_start(struct http_client *c, int id, const struct http_request *req,
               struct ev_err *err) {
    if (!req->url || !*req->url) return ev_fail(err, EV_EFAIL, "http: empty url");
    struct xfer *x = NULL;
    for (int i = 0; i < c->n && !x; i++)
        if (!c->x[i].busy) x = &c->x[i];
    if (!x) return ev_fail(err, EV_EFAIL, "http: all %d transfer slots are busy", c->n);

    /* A fresh easy handle per transfer. libcurl before 8.1.0 (Debian 12 has 7.88.1) keeps a
     * pointer to the previous transfer's last header in a reused handle (curl#11101): a reply
     * whose first header line is a folded continuation (" x") then makes it read freed memory.
     * Found by tests/fuzz/fuzz_http. Connections are still reused: with the multi interface
     * the connection cache belongs to the multi handle, not to the easy handles. */
    if (x->easy) curl_easy_cleanup(x->easy);
    x->easy = curl_easy_init();
    if (!x->easy) return ev_fail(err, EV_EFAIL, "http: curl_easy_init failed");
    /* "Expect:" turns off 100-continue, which would cost a round trip per request. */
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    for (const char *const *p = req->headers; p && *p; p++) h = curl_slist_append(h, *p);
    x->hdrs = h;
    x->body.len = 0;
    if (x->body.buf) x->body.buf[0] = 0;
    x->errbuf[0] = 0;
    x->retry_after = -1;
    x->id = id;

    CURL  *e = x->easy;
    double to = req->timeout_s > 0 ? req->timeout_s : 120.0;
    double cto = req->connect_timeout_s > 0 ? req->connect_timeout_s : 10.0;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    if (req->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(to * 1000.0));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(cto * 1000.0));
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "evalrun-grader/1");
    /* Redirects are not followed: a POST with an API key goes only where it was told to. */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");

    x->t0 = now_seconds();
    CURLMcode mc = curl_multi_add_handle(c->multi, e);
    if (mc != CURLM_OK) {
        curl_slist_free_all(x->hdrs);
        x->hdrs = NULL;
        return ev_fail(err, EV_EFAIL, "http: cannot start a transfer: %s",
                       curl_multi_strerror(mc));
    }
    x->busy = 1;
    c->in_flight++;
    return EV_OK;
}

static enum http_outcome classify(CURLcode rc) {
    switch (rc) {
    case CURLE_OK: return HTTP_OUTCOME_OK;
    case CURLE_OPERATION_TIMEDOUT: return HTTP_OUTCOME_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return HTTP_OUTCOME_CONNECT;
    default: return HTTP_OUTCOME_NETWORK;
    }
}

/* Reports every finished transfer; returns 0 or the first non-zero value from done. */
static int drain(struct http_client *c, http_done_fn *done, void *ud, int *n_done) {
    CURLMsg *m;
    int      left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        struct xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode rc = m->data.result;
        struct http_response r = {0};
        r.id = x->id;
        r.outcome = classify(rc);
        if (rc == CURLE_OK) {
            long st = 0;
            curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &st);
            r.status = (int)st;
            /* curl takes any digits ("HTTP/2 4011", found by tests/fuzz): a status outside
             * 100..599 is not HTTP, so the reply is a broken one, not an unknown status */
            if (st < 100 || st > 599) {
                r.outcome = HTTP_OUTCOME_NETWORK;
                r.status = 0;
                snprintf(x->errbuf, sizeof x->errbuf, "invalid HTTP status %ld in the reply", st);
                rc = CURLE_WEIRD_SERVER_REPLY;
            }
        }
        r.body = x->body.buf ? x->body.buf : "";
        r.body_len = x->body.len;
        r.retry_after_s = x->retry_after;
        r.latency_s = now_seconds() - x->t0;
        r.error = rc == CURLE_OK ? "" : (x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
        xfer_finish(c, x);
        (*n_done)++;
        int v = done(ud, &r);
        if (v != 0) return v;
    }
    return 0;
}

int http_wait(struct http_client *c, double max_wait_s, http_done_fn *done, void *ud,
              struct ev_err *err) {
    int    n_done = 0, running = 0;
    double t_end = now_seconds() + (max_wait_s > 0 ? max_wait_s : 0);
    for (;;) {
        CURLMcode mc = curl_multi_perform(c->multi, &running);
        if (mc != CURLM_OK)
            return ev_fail(err, EV_EFAIL, "http: %s", curl_multi_strerror(mc));
        int v = drain(c, done, ud, &n_done);
        if (v != 0) return v;
        if (n_done > 0 || c->in_flight == 0) return EV_OK;
        double left = t_end - now_seconds();
        if (left <= 0) return EV_OK;
        int ms = (int)(left * 1000.0) + 1;
        if (ms > 100) ms = 100; /* wake regularly so a SIGINT is noticed */
        mc = curl_multi_poll(c->multi, NULL, 0, ms, NULL);
        if (mc != CURLM_OK)
            return ev_fail(err, EV_EFAIL, "http: %s", curl_multi_strerror(mc));
        if (ev_interrupted()) {
            curl_multi_perform(c->multi, &running);
            return drain(c, done, ud, &n_done);
        }
    }
}

/* ---- retry policy ---- */

int http_status_retryable(int status) {
    return status == 408 || status == 409 || status == 425 || status == 429 ||
           (status >= 500 && status <= 599);
}

double http_backoff_s(int retry, double base_s, double cap_s, double retry_after,
                      struct rng *rng) {
    if (retry_after >= 0) return retry_after < cap_s ? retry_after : cap_s;
    if (retry < 1) retry = 1;
    double d = base_s * ldexp(1.0, retry > 30 ? 30 : retry - 1);
    if (d > cap_s) d = cap_s;
    return d * (0.5 + 0.5 * rng_uniform(rng));
}

double http_parse_retry_after(const char *value, int64_t now_unix) {
    if (!value) return -1;
    while (*value && isspace((unsigned char)*value)) value++;
    char   buf[128];
    size_t n = strlen(value);
    while (n > 0 && isspace((unsigned char)value[n - 1])) n--;
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, value, n);
    buf[n] = 0;
    double secs;
    if (isdigit((unsigned char)buf[0]) && parse_double(buf, &secs) == EV_OK) {
        if (!(secs >= 0) || secs > 1e7) return -1;
        return secs;
    }
    time_t t = curl_getdate(buf, NULL);
    if (t == (time_t)-1) return -1;
    double d = (double)((int64_t)t - now_unix);
    return d > 0 ? d : 0;
}
