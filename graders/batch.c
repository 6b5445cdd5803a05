/*
 * batch — the providers' batch interfaces behind --batch (see batch.h): submitting, storing,
 * polling and reading OpenAI batches and Anthropic message batches.
 */
#include "graders/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/http.h"
#include "base/json.h"
#include "graders/cache.h"
#include "graders/llm.h"
#include "graders/params.h"
#include "store/batches.h"

/* One grader_batch_run() call. */
struct bstate {
    struct grader               *g;
    const struct grader_config  *c;
    struct store                *st;
    const struct grader_request *reqs;
    int                          n;
    grader_accept_fn            *accept;
    grader_accept_reask_fn      *accept_reask; /* instead of accept: the re-ask's own prompt */
    void                        *accept_ud;
    grader_result_fn            *on_result;
    void                        *ud;
    struct ev_err               *err;
    struct http_client          *http;
    struct rng                   rng;
    double                       poll_s;
    int                          last_status; /* of the last call() (0: no HTTP status) */
    /* per request i */
    int                         *attempt, *done, *covered;
    char                       (*key)[65];
    char                       **body;
    char                       **reprompt; /* the re-ask's prompt (accept_reask), or NULL */
};

/* A batch being polled: the provider's ids and its items (custom_id -> key). */
struct bbatch {
    int64_t  id;
    char    *remote_id, *input_file_id;
    int      n_items;
    char   **custom_id, **item_key;
    double   t_start;
};

static void bbatch_release(struct bbatch *bb) {
    free(bb->remote_id);
    free(bb->input_file_id);
    for (int i = 0; i < bb->n_items; i++) {
        free(bb->custom_id[i]);
        free(bb->item_key[i]);
    }
    free(bb->custom_id);
    free(bb->item_key);
    memset(bb, 0, sizeof *bb);
}

static const char *provider(const struct bstate *b) { return cache_provider_name(b->c->provider); }
static int         is_openai(const struct bstate *b) {
    return b->c->provider == GRADER_PROVIDER_OPENAI;
}

// --- requests: the same key and body as the engine's -----------------------------------

static void params_of(const struct bstate *b, int i, struct cache_params *cp) {
    const struct grader_request *r = &b->reqs[i];
    cp->provider = b->c->provider;
    cp->base_url = b->c->base_url;
    cp->model = b->c->model;
    cp->system = r->system;
    cp->prompt = b->reprompt[i] ? b->reprompt[i] : r->prompt;
    cp->max_tokens = r->max_tokens > 0 ? r->max_tokens : b->c->max_tokens;
    cp->logprobs = b->c->provider == GRADER_PROVIDER_OPENAI ? b->c->logprobs : 0;
    cp->attempt = b->attempt[i];
    cp->temperature = b->c->temperature;
    cp->params = b->c->params;
    cp->fixed_len = r->fixed_len;
}

static void prepare(struct bstate *b, int i) {
    struct cache_params cp;
    params_of(b, i, &cp);
    cache_key(&cp, b->key[i]);
    free(b->body[i]);
    b->body[i] = params_apply(cp.provider, cp.model, cp.params,
                              llm_build_body(cp.provider, cp.model, cp.system, cp.prompt,
                                             cp.fixed_len, cp.max_tokens, cp.temperature,
                                             cp.logprobs));
}

// --- HTTP: one request at a time, retried on 429/5xx/network ---------------------------

struct got {
    int          done, status, outcome;
    double       retry_after;
    struct sbuf *out;
    char         error[200];
};

static int on_done(void *ud, const struct http_response *r) {
    struct got *gt = ud;
    gt->done = 1;
    gt->outcome = r->outcome;
    gt->status = r->status;
    gt->retry_after = r->retry_after_s;
    snprintf(gt->error, sizeof gt->error, "%s", r->error);
    gt->out->len = 0;
    sbuf_add(gt->out, r->body, r->body_len);
    return 0;
}

/* headers: Content-Type (JSON, or multipart with boundary) and the key. Free with
 * llm_headers_free() (it wipes the key). */
static char **headers_for(const struct bstate *b, const char *boundary) {
    if (!boundary) return llm_headers(b->c->provider, grader_key_of(b->g));
    char **h = xcalloc(3, sizeof *h);
    h[0] = xasprintf("Content-Type: multipart/form-data; boundary=%s", boundary);
    h[1] = xasprintf("Authorization: Bearer %s", grader_key_of(b->g));
    return h;
}

/* Sends one request (body NULL: GET) and waits for its answer; *out holds the body. Returns
 * EV_OK with an HTTP 200, EV_EINTR, or EV_EFAIL naming what and the server's message. */
static int call(struct bstate *b, const char *what, const char *url, const char *body,
                size_t body_len, const char *boundary, struct sbuf *out) {
    char      **h = headers_for(b, boundary);
    struct got  gt;
    int         rc = EV_EFAIL;
    for (int tries = 0;; tries++) {
        memset(&gt, 0, sizeof gt);
        gt.out = out;
        struct http_request hr = {url, (const char *const *)h, body, body_len,
                                  b->c->timeout_s, b->c->connect_timeout_s};
        struct ev_err e;
        if (http_start(b->http, 0, &hr, &e) != EV_OK) {
            rc = ev_fail(b->err, EV_EFAIL, "grader batch: %s", e.msg);
            goto out;
        }
        grader_count_request(b->g);
        while (!gt.done) {
            if (http_wait(b->http, 0.5, on_done, &gt, &e) < 0) {
                rc = ev_fail(b->err, EV_EFAIL, "grader batch: %s", e.msg);
                goto out;
            }
            if (ev_interrupted() && !gt.done) {
                http_abort_all(b->http);
                rc = ev_fail(b->err, EV_EINTR, "interrupted while the grader's batch is "
                                               "pending: rerun to resume polling it");
                goto out;
            }
        }
        b->last_status = gt.outcome == HTTP_OUTCOME_OK ? gt.status : 0;
        int retryable = gt.outcome != HTTP_OUTCOME_OK || http_status_retryable(gt.status);
        if (gt.outcome == HTTP_OUTCOME_OK && gt.status == 200) {
            rc = EV_OK;
            goto out;
        }
        if (!retryable || tries >= b->c->max_retries) break;
        double d = http_backoff_s(tries + 1, b->c->backoff_base_s, b->c->backoff_cap_s,
                                  gt.retry_after, &b->rng);
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
    }
    char msg[220] = "";
    if (gt.outcome != HTTP_OUTCOME_OK) {
        grader_scrub(b->g, gt.error, msg, sizeof msg);
        rc = ev_fail(b->err, EV_EFAIL, "grader batch: %s %s: cannot reach it (%s)", what, url, msg);
    } else {
        char *m = llm_error_message(out->buf, out->len);
        grader_scrub(b->g, m ? m : "", msg, sizeof msg);
        free(m);
        rc = ev_fail(b->err, EV_EFAIL, "grader batch: %s %s answered HTTP %d%s%s%s", what, url,
                     gt.status, msg[0] ? ": " : "", msg,
                     gt.status == 401 || gt.status == 403 ? " (check the key)" : "");
    }
out:
    llm_headers_free(h);
    return rc;
}

/* out's body parsed as a JSON object */
static int parse_obj(struct bstate *b, const struct sbuf *out, const char *what, cJSON **j) {
    struct ev_err e;
    if (json_parse(out->buf ? out->buf : "", out->len, what, j, &e) != EV_OK ||
        !cJSON_IsObject(*j)) {
        json_free(*j);
        *j = NULL;
        return ev_fail(b->err, EV_EFAIL, "grader batch: %s is not a JSON object", what);
    }
    return EV_OK;
}

static const char *str_of(const cJSON *o, const char *k) {
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

// --- delivery ----------------------------------------------------------------------------

/* Hands request i its answer, or re-asks it once (attempt 1, a new key, the next round)
 * when accept rejects an attempt-0 answer: with the prompt accept_reask gives (the parser's
 * message, issue 17.6), else the same prompt. Returns non-zero to stop. */
static int deliver(struct bstate *b, int i, struct grader_result *res) {
    char *reprompt = NULL;
    if (res->status == GRADER_OK && (b->accept || b->accept_reask) && b->attempt[i] == 0 &&
        !(b->accept_reask
              ? b->accept_reask(b->accept_ud, i, b->reqs[i].prompt, res->text, &reprompt)
              : b->accept(b->ud, i, res->text))) {
        b->attempt[i] = 1;
        b->reprompt[i] = reprompt;
        prepare(b, i);
        return 0;
    }
    free(reprompt); /* an accept that set one and accepted anyway */
    b->done[i] = 1;
    res->attempt = b->attempt[i];
    res->cache_key = b->key[i];
    grader_account(b->g, res, res->from_cache ? 1.0 : BATCH_PRICE_FACTOR);
    return b->on_result ? b->on_result(b->ud, i, res, b->err) : 0;
}

static int deliver_answer(struct bstate *b, int i, const struct llm_answer *a, int from_cache,
                          double latency_s) {
    struct grader_result res = {0};
    res.status = GRADER_OK;
    res.http_status = from_cache ? 0 : 200;
    res.text = a->text;
    res.model = a->model ? a->model : "";
    res.logprobs_json = a->logprobs_json;
    res.error = "";
    res.latency_s = latency_s;
    res.tokens_in = a->tokens_in;
    res.tokens_out = a->tokens_out;
    res.tokens_cache_read = a->tokens_cache_read;
    res.tokens_cache_write = a->tokens_cache_write;
    res.from_cache = from_cache;
    res.tries = from_cache ? 0 : 1;
    return deliver(b, i, &res);
}

/* The answer (llm_parse_response() of resp, the answer body) for every pending request with
 * key: cached first, then delivered (tokens counted once). */
static int answer_key(struct bstate *b, const char *key, const char *resp, double latency_s) {
    struct llm_answer a;
    struct ev_err     e;
    int               rc = 0, first = 1;
    if (llm_parse_response(b->c->provider, resp, strlen(resp), &a, &e) != EV_OK) {
        char msg[256];
        grader_scrub(b->g, e.msg, msg, sizeof msg);
        for (int i = 0; i < b->n && !rc; i++) {
            if (b->done[i] || strcmp(b->key[i], key) != 0) continue;
            struct grader_result res = {0};
            res.status = GRADER_BAD_RESPONSE;
            res.text = res.model = "";
            res.error = msg;
            res.tries = 1;
            rc = deliver(b, i, &res);
        }
        return rc;
    }
    for (int i = 0; i < b->n && !rc; i++) {
        if (b->done[i] || strcmp(b->key[i], key) != 0) continue;
        if (first && b->st) {
            struct cache_params cp;
            params_of(b, i, &cp);
            if (cache_put(b->st, key, &cp, b->body[i], resp, &a, latency_s, &e) != EV_OK)
                ev_info("grader: cannot store an answer in the cache: %s", e.msg);
        }
        struct llm_answer dup = a;
        if (!first)
            dup.tokens_in = dup.tokens_out = dup.tokens_cache_read = dup.tokens_cache_write = 0;
        rc = deliver_answer(b, i, &dup, !first, latency_s);
        first = 0;
    }
    llm_answer_release(&a);
    return rc;
}

/* An answer the provider refused (an HTTP error status inside the batch). */
static int fail_key(struct bstate *b, const char *key, int status, const char *message) {
    char msg[220], line[256];
    grader_scrub(b->g, message ? message : "", msg, sizeof msg);
    snprintf(line, sizeof line, "HTTP %d in the batch%s%s", status, msg[0] ? ": " : "", msg);
    int rc = 0;
    for (int i = 0; i < b->n && !rc; i++) {
        if (b->done[i] || strcmp(b->key[i], key) != 0) continue;
        struct grader_result res = {0};
        res.status = GRADER_HTTP_ERROR;
        res.http_status = status;
        res.text = res.model = "";
        res.error = line;
        res.tries = 1;
        rc = deliver(b, i, &res);
    }
    return rc;
}

// --- submitting ----------------------------------------------------------------------------

/* Submits the requests idx[0..m-1] (distinct keys) as one batch and stores it. */
static int submit(struct bstate *b, const int *idx, int m, struct bbatch *bb) {
    struct sbuf out, data;
    cJSON      *j = NULL;
    char       *url = NULL, *file_id = NULL;
    int         rc;
    sbuf_init(&out);
    sbuf_init(&data);
    memset(bb, 0, sizeof *bb);
    bb->n_items = m;
    bb->custom_id = xcalloc((size_t)m, sizeof *bb->custom_id);
    bb->item_key = xcalloc((size_t)m, sizeof *bb->item_key);
    for (int k = 0; k < m; k++) {
        bb->custom_id[k] = xasprintf("r%d", k);
        bb->item_key[k] = xstrdup(b->key[idx[k]]);
    }
    if (is_openai(b)) {
        for (int k = 0; k < m; k++)
            sbuf_addf(&data, "{\"custom_id\":\"%s\",\"method\":\"POST\",\"url\":"
                             "\"/v1/chat/completions\",\"body\":%s}\n",
                      bb->custom_id[k], b->body[idx[k]]);
        char boundary[48];
        do {
            snprintf(boundary, sizeof boundary, "evalrun-%016llx",
                     (unsigned long long)rng_u64(&b->rng));
        } while (strstr(data.buf, boundary));
        struct sbuf mp;
        sbuf_init(&mp);
        sbuf_addf(&mp, "--%s\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
                       "--%s\r\nContent-Disposition: form-data; name=\"file\"; "
                       "filename=\"evalrun-batch.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n",
                  boundary, boundary);
        sbuf_add(&mp, data.buf, data.len);
        sbuf_addf(&mp, "\r\n--%s--\r\n", boundary);
        url = xasprintf("%s/files", b->c->base_url);
        rc = call(b, "upload to", url, mp.buf, mp.len, boundary, &out);
        sbuf_release(&mp);
        if (rc != EV_OK) goto out;
        if ((rc = parse_obj(b, &out, "the file upload's answer", &j)) != EV_OK) goto out;
        if (!str_of(j, "id")) {
            rc = ev_fail(b->err, EV_EFAIL, "grader batch: the file upload's answer has no id");
            goto out;
        }
        file_id = xstrdup(str_of(j, "id"));
        json_free(j);
        j = NULL;
        free(url);
        url = xasprintf("%s/batches", b->c->base_url);
        char *create = xasprintf("{\"input_file_id\":\"%s\",\"endpoint\":\"/v1/chat/completions\","
                                 "\"completion_window\":\"24h\"}", file_id);
        rc = call(b, "POST", url, create, strlen(create), NULL, &out);
        free(create);
    } else {
        sbuf_adds(&data, "{\"requests\":[");
        for (int k = 0; k < m; k++)
            sbuf_addf(&data, "%s{\"custom_id\":\"%s\",\"params\":%s}", k ? "," : "",
                      bb->custom_id[k], b->body[idx[k]]);
        sbuf_adds(&data, "]}");
        url = xasprintf("%s/messages/batches", b->c->base_url);
        rc = call(b, "POST", url, data.buf, data.len, NULL, &out);
    }
    if (rc != EV_OK) goto out;
    if ((rc = parse_obj(b, &out, "the batch's answer", &j)) != EV_OK) goto out;
    if (!str_of(j, "id")) {
        rc = ev_fail(b->err, EV_EFAIL, "grader batch: the new batch's answer has no id");
        goto out;
    }
    bb->remote_id = xstrdup(str_of(j, "id"));
    bb->input_file_id = file_id;
    file_id = NULL;
    bb->t_start = now_seconds();
    if (b->st) {
        struct batches_item *items = xcalloc((size_t)m, sizeof *items);
        for (int k = 0; k < m; k++)
            items[k] = (struct batches_item){bb->custom_id[k], bb->item_key[k], b->attempt[idx[k]]};
        const struct batches_row row = {0, provider(b), b->c->base_url, b->c->model,
                                        bb->remote_id, bb->input_file_id, grader_run_of(b->g), m};
        rc = batches_put(b->st, &row, items, m, &bb->id, b->err);
        free(items);
        if (rc != EV_OK) goto out;
    }
    ev_info("grader: batch %s (%s, %d request%s) submitted at half price; polling every %g s "
            "(a rerun resumes it)", bb->remote_id, provider(b), m, m == 1 ? "" : "s", b->poll_s);
out:
    json_free(j);
    free(url);
    free(file_id);
    sbuf_release(&out);
    sbuf_release(&data);
    return rc;
}

// --- polling and reading results -----------------------------------------------------------

static const char *key_of_custom(const struct bbatch *bb, const char *custom_id) {
    for (int k = 0; custom_id && k < bb->n_items; k++)
        if (strcmp(bb->custom_id[k], custom_id) == 0) return bb->item_key[k];
    return NULL;
}

/* One JSONL results document: answers delivered, refusals delivered as HTTP errors, requests
 * the provider did not process (expired, canceled) counted in *n_lost. */
static int read_results(struct bstate *b, const struct bbatch *bb, const struct sbuf *doc,
                        int *n_lost) {
    double lat = now_seconds() - bb->t_start;
    int    rc = 0;
    for (const char *line = doc->buf ? doc->buf : ""; *line && !rc;) {
        const char *nl = strchr(line, '\n');
        size_t      len = nl ? (size_t)(nl - line) : strlen(line);
        cJSON      *j = NULL;
        struct ev_err e;
        if (len > 0 && json_parse(line, len, "batch result", &j, &e) == EV_OK) {
            const char *key = key_of_custom(bb, str_of(j, "custom_id"));
            if (key && is_openai(b)) {
                const cJSON *resp = cJSON_GetObjectItemCaseSensitive(j, "response");
                const cJSON *sc = resp ? cJSON_GetObjectItemCaseSensitive(resp, "status_code") : NULL;
                const cJSON *body = resp ? cJSON_GetObjectItemCaseSensitive(resp, "body") : NULL;
                const cJSON *er = cJSON_GetObjectItemCaseSensitive(j, "error");
                int          status = cJSON_IsNumber(sc) ? (int)sc->valuedouble : 0;
                if (status == 200 && cJSON_IsObject(body)) {
                    char *s = json_print(body);
                    rc = answer_key(b, key, s, lat);
                    free(s);
                } else if (er && cJSON_IsObject(er) && str_of(er, "code") &&
                           (strcmp(str_of(er, "code"), "batch_expired") == 0 ||
                            strcmp(str_of(er, "code"), "batch_cancelled") == 0)) {
                    (*n_lost)++;
                } else {
                    char *s = body ? json_print(body) : NULL;
                    char *m = s ? llm_error_message(s, strlen(s)) : NULL;
                    const char *em = m ? m : (er ? str_of(er, "message") : NULL);
                    rc = fail_key(b, key, status, em);
                    free(m);
                    free(s);
                }
            } else if (key) {
                const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "result");
                const char  *type = str_of(res, "type");
                const cJSON *msg = cJSON_GetObjectItemCaseSensitive(res, "message");
                const cJSON *er = cJSON_GetObjectItemCaseSensitive(res, "error");
                if (type && strcmp(type, "succeeded") == 0) {
                    char *s = msg ? json_print(msg) : xstrdup("");
                    rc = answer_key(b, key, s, lat);
                    free(s);
                } else if (type && strcmp(type, "errored") == 0) {
                    char *s = er ? json_print(er) : NULL;
                    char *m = s ? llm_error_message(s, strlen(s)) : NULL;
                    rc = fail_key(b, key, 400, m);
                    free(m);
                    free(s);
                } else {
                    (*n_lost)++; /* canceled, expired */
                }
            }
        }
        json_free(j);
        line += len + (nl ? 1 : 0);
    }
    return rc;
}

static int sleep_poll(struct bstate *b) {
    for (double t = 0; t < b->poll_s; t += 0.1) {
        if (ev_interrupted())
            return ev_fail(b->err, EV_EINTR, "interrupted while the grader's batch is pending: "
                                             "rerun to resume polling it");
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return EV_OK;
}

/* the results document at url into doc (Anthropic's results_url must be on the base URL's
 * server: the key goes with the request) */
static int fetch(struct bstate *b, const char *url, struct sbuf *doc) {
    return call(b, "GET", url, NULL, 0, NULL, doc);
}

static int fail_batch(struct bstate *b, const struct bbatch *bb, const char *why) {
    struct ev_err e;
    char          msg[300];
    snprintf(msg, sizeof msg, "%s", why);
    if (b->st && bb->id) batches_end(b->st, bb->id, "failed", msg, &e);
    return ev_fail(b->err, EV_EFAIL, "grader batch %s (%s) %s; its unanswered requests stay "
                                     "ungraded: rerun to submit them in a new batch",
                   bb->remote_id, provider(b), msg);
}

static int same_server(const char *url, const char *base) {
    const char *p = strstr(base, "://");
    if (!p) return 0;
    const char *slash = strchr(p + 3, '/');
    size_t      n = slash ? (size_t)(slash - base) : strlen(base);
    return strncmp(url, base, n) == 0 && (url[n] == '/' || url[n] == '\0');
}

/* Polls bb until it ends, then reads its answers. */
static int poll_batch(struct bstate *b, struct bbatch *bb) {
    struct sbuf out, doc;
    cJSON      *j = NULL;
    char       *url = is_openai(b) ? xasprintf("%s/batches/%s", b->c->base_url, bb->remote_id)
                                   : xasprintf("%s/messages/batches/%s", b->c->base_url,
                                               bb->remote_id);
    int         rc, n_lost = 0;
    char        why[256] = "";
    sbuf_init(&out);
    sbuf_init(&doc);
    for (;;) {
        if ((rc = call(b, "GET", url, NULL, 0, NULL, &out)) != EV_OK) {
            /* a batch the server does not know (deleted, another account): never ends */
            if (rc == EV_EFAIL && b->last_status == 404) {
                snprintf(why, sizeof why, "is unknown to %.200s (HTTP 404)", b->c->base_url);
                rc = fail_batch(b, bb, why);
            }
            goto out;
        }
        if ((rc = parse_obj(b, &out, "the batch's status", &j)) != EV_OK) goto out;
        const char *status = str_of(j, is_openai(b) ? "status" : "processing_status");
        if (!status) {
            rc = ev_fail(b->err, EV_EFAIL, "grader batch %s: its status has no %s", bb->remote_id,
                         is_openai(b) ? "status" : "processing_status");
            goto out;
        }
        if (is_openai(b) && strcmp(status, "failed") == 0) {
            const cJSON *errs = cJSON_GetObjectItemCaseSensitive(j, "errors");
            const cJSON *d0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(errs, "data"), 0);
            char         m[200];
            grader_scrub(b->g, str_of(d0, "message") ? str_of(d0, "message") : "no reason given",
                         m, sizeof m);
            snprintf(why, sizeof why, "failed: %s", m);
            rc = fail_batch(b, bb, why);
            goto out;
        }
        int ended = is_openai(b) ? (strcmp(status, "completed") == 0 ||
                                    strcmp(status, "expired") == 0 ||
                                    strcmp(status, "cancelled") == 0)
                                 : strcmp(status, "ended") == 0;
        if (ended) break;
        json_free(j);
        j = NULL;
        if ((rc = sleep_poll(b)) != EV_OK) goto out;
    }
    if (is_openai(b)) {
        const char *which[] = {"output_file_id", "error_file_id"};
        for (int w = 0; w < 2 && rc == EV_OK; w++) {
            const char *fid = str_of(j, which[w]);
            if (!fid) continue;
            char *furl = xasprintf("%s/files/%s/content", b->c->base_url, fid);
            rc = fetch(b, furl, &doc);
            free(furl);
            if (rc == EV_OK) rc = read_results(b, bb, &doc, &n_lost);
        }
        const char *status = str_of(j, "status");
        if (rc == EV_OK && strcmp(status, "completed") != 0)
            snprintf(why, sizeof why, "%s before all of its %d requests were answered",
                     strcmp(status, "expired") == 0 ? "expired (the 24 h window passed)"
                                                    : "was cancelled",
                     bb->n_items);
    } else {
        const char *ru = str_of(j, "results_url");
        char       *rurl = ru && same_server(ru, b->c->base_url)
                               ? xstrdup(ru)
                               : xasprintf("%s/messages/batches/%s/results", b->c->base_url,
                                           bb->remote_id);
        rc = fetch(b, rurl, &doc);
        free(rurl);
        if (rc == EV_OK) rc = read_results(b, bb, &doc, &n_lost);
    }
    if (rc != EV_OK) goto out;
    if (n_lost > 0 && !why[0])
        snprintf(why, sizeof why, "ended with %d of its %d requests expired or cancelled "
                                  "(not processed)", n_lost, bb->n_items);
    if (why[0]) {
        rc = fail_batch(b, bb, why);
        goto out;
    }
    struct ev_err e;
    if (b->st && bb->id && batches_end(b->st, bb->id, "ended", NULL, &e) != EV_OK)
        ev_info("grader: batch %s answered but could not be marked ended: %s", bb->remote_id,
                e.msg);
out:
    json_free(j);
    free(url);
    sbuf_release(&out);
    sbuf_release(&doc);
    return rc;
}

// --- resuming ------------------------------------------------------------------------------

struct found {
    struct bstate *b;
    struct bbatch *list;
    int            n, cap;
};

static int item_cb(void *ctx, const struct batches_item *it) {
    struct bbatch *bb = ctx;
    bb->custom_id = xrealloc(bb->custom_id, (size_t)(bb->n_items + 1) * sizeof *bb->custom_id);
    bb->item_key = xrealloc(bb->item_key, (size_t)(bb->n_items + 1) * sizeof *bb->item_key);
    bb->custom_id[bb->n_items] = xstrdup(it->custom_id);
    bb->item_key[bb->n_items] = xstrdup(it->cache_key);
    bb->n_items++;
    return EV_OK;
}

static int batch_cb(void *ctx, const struct batches_row *row) {
    struct found *f = ctx;
    struct bbatch bb = {0};
    bb.id = row->id;
    bb.remote_id = xstrdup(row->remote_id);
    bb.input_file_id = row->input_file_id ? xstrdup(row->input_file_id) : NULL;
    bb.t_start = now_seconds();
    int rc = batches_items(f->b->st, row->id, item_cb, &bb, f->b->err);
    if (rc != EV_OK) {
        bbatch_release(&bb);
        return rc;
    }
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 4;
        f->list = xrealloc(f->list, (size_t)f->cap * sizeof *f->list);
    }
    f->list[f->n++] = bb;
    return EV_OK;
}

/* The pending batches that cover some pending request: marks those requests covered and
 * keeps the batch in *f (the others are dropped from it). */
static int find_pending(struct bstate *b, struct found *f) {
    memset(f, 0, sizeof *f);
    f->b = b;
    if (!b->st) return EV_OK;
    int rc = batches_pending(b->st, provider(b), b->c->base_url, b->c->model, batch_cb, f, b->err);
    if (rc != EV_OK) return rc;
    int kept = 0;
    for (int k = 0; k < f->n; k++) {
        struct bbatch *bb = &f->list[k];
        int            useful = 0;
        for (int i = 0; i < b->n; i++) {
            if (b->done[i] || b->covered[i]) continue;
            for (int q = 0; q < bb->n_items; q++)
                if (strcmp(bb->item_key[q], b->key[i]) == 0) {
                    b->covered[i] = 1;
                    useful = 1;
                    break;
                }
        }
        if (useful) f->list[kept++] = *bb;
        else bbatch_release(bb);
    }
    f->n = kept;
    for (int k = 0; k < f->n; k++)
        ev_info("grader: resuming batch %s (%s, %d request%s) submitted earlier", f->list[k].remote_id,
                provider(b), f->list[k].n_items, f->list[k].n_items == 1 ? "" : "s");
    return EV_OK;
}

// --- a round: cache, resume, submit, poll --------------------------------------------------

static int round_once(struct bstate *b) {
    struct found f;
    int          rc = EV_OK;
    int         *idx = NULL;
    memset(&f, 0, sizeof f);
    for (int i = 0; i < b->n && rc == EV_OK; i++) {
        b->covered[i] = 0;
        if (b->done[i] || !b->st || b->c->no_cache) continue;
        struct llm_answer a;
        int               found = 0;
        struct ev_err     e;
        if (cache_get(b->st, b->key[i], &a, &found, &e) != EV_OK)
            ev_info("grader: cache lookup failed: %s", e.msg);
        if (found) {
            int r = deliver_answer(b, i, &a, 1, 0);
            if (r != 0) rc = r;
            llm_answer_release(&a);
        }
    }
    if (rc != EV_OK) goto out;
    if ((rc = find_pending(b, &f)) != EV_OK) goto out;
    /* the rest, one request per distinct key, in batches of at most BATCH_MAX_REQUESTS */
    idx = xcalloc((size_t)(b->n > 0 ? b->n : 1), sizeof *idx);
    int m = 0;
    for (int i = 0; i < b->n; i++) {
        if (b->done[i] || b->covered[i]) continue;
        int dup = 0;
        for (int q = 0; q < m && !dup; q++) dup = strcmp(b->key[idx[q]], b->key[i]) == 0;
        if (!dup) idx[m++] = i;
    }
    for (int s = 0; s < m && rc == EV_OK; s += BATCH_MAX_REQUESTS) {
        int           k = m - s < BATCH_MAX_REQUESTS ? m - s : BATCH_MAX_REQUESTS;
        struct bbatch bb;
        rc = submit(b, idx + s, k, &bb);
        if (rc != EV_OK) {
            bbatch_release(&bb);
            break;
        }
        if (f.n == f.cap) {
            f.cap = f.cap ? 2 * f.cap : 4;
            f.list = xrealloc(f.list, (size_t)f.cap * sizeof *f.list);
        }
        f.list[f.n++] = bb;
    }
    for (int k = 0; k < f.n && rc == EV_OK; k++) rc = poll_batch(b, &f.list[k]);
out:
    for (int k = 0; k < f.n; k++) bbatch_release(&f.list[k]);
    free(f.list);
    free(idx);
    return rc;
}

static int batch_run(struct grader *g, const struct grader_request *reqs, int n,
                     grader_accept_fn *accept, grader_accept_reask_fn *accept_reask,
                     void *accept_ud, grader_result_fn *on_result, void *ud, struct ev_err *err) {
    struct bstate b;
    memset(&b, 0, sizeof b);
    b.g = g;
    b.c = grader_config(g);
    b.st = grader_store_of(g);
    b.reqs = reqs;
    b.n = n;
    b.accept = accept;
    b.accept_reask = accept_reask;
    b.accept_ud = accept_ud;
    b.on_result = on_result;
    b.ud = ud;
    b.err = err;
    b.poll_s = b.c->batch_poll_s > 0 ? b.c->batch_poll_s : 30;
    const char *env = getenv("EVALRUN_BATCH_POLL_S");
    double      v;
    if (env && *env && parse_double(env, &v) == EV_OK && v >= 0.01 && v <= 3600) b.poll_s = v;
    rng_seed(&b.rng, b.c->seed ^ (uint64_t)now_unix_ms());
    int rc = http_client_new(1, &b.http, err);
    if (rc != EV_OK) return rc;
    size_t N = (size_t)(n > 0 ? n : 1);
    b.attempt = xcalloc(N, sizeof *b.attempt);
    b.done = xcalloc(N, sizeof *b.done);
    b.covered = xcalloc(N, sizeof *b.covered);
    b.key = xcalloc(N, sizeof *b.key);
    b.body = xcalloc(N, sizeof *b.body);
    b.reprompt = xcalloc(N, sizeof *b.reprompt);
    for (int i = 0; i < n; i++) prepare(&b, i);
    /* round 1 asks everything; round 2 what was re-asked (attempt 1) */
    for (int r = 0; r < 2 && rc == EV_OK; r++) {
        int left = 0;
        for (int i = 0; i < n; i++) left += !b.done[i];
        if (!left) break;
        rc = round_once(&b);
    }
    if (rc == EV_OK) {
        long lost = 0;
        for (int i = 0; i < n; i++) lost += !b.done[i];
        if (lost)
            rc = ev_fail(err, EV_EFAIL, "grader batch: %ld request%s got no answer from the "
                                        "batches; rerun to ask again", lost, lost == 1 ? "" : "s");
    }
    for (int i = 0; i < n; i++) free(b.body[i]), free(b.reprompt[i]);
    free(b.body);
    free(b.reprompt);
    free(b.key);
    free(b.covered);
    free(b.done);
    free(b.attempt);
    http_client_free(b.http);
    return rc;
}

int grader_batch_run(struct grader *g, const struct grader_request *reqs, int n,
                     grader_accept_fn *accept, grader_result_fn *on_result, void *ud,
                     struct ev_err *err) {
    return batch_run(g, reqs, n, accept, NULL, NULL, on_result, ud, err);
}

int grader_batch_run_reask(struct grader *g, const struct grader_request *reqs, int n,
                           grader_accept_reask_fn *accept, void *accept_ud,
                           grader_result_fn *on_result, void *ud, struct ev_err *err) {
    return batch_run(g, reqs, n, NULL, accept, accept_ud, on_result, ud, err);
}
