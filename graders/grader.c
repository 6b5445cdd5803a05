/*
 * grader — configuration, the shared flags, and the batch engine: one http_client (one curl
 * multi handle, a pool of reused easy handles), a requests-per-minute pacer, retries with
 * back-off, the cache, and delivery of each result as it arrives.
 */
#include "graders/grader.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graders/batch.h"
#include "graders/cache.h"
#include "base/http.h"
#include "graders/llm.h"
#include "graders/params.h"
#include "graders/prompt.h"
#include "store/ledger.h"
#include "store/store.h"

#define DEFAULT_ANTHROPIC_MODEL "claude-sonnet-4-5"
#define DEFAULT_OPENAI_MODEL    "gpt-4o-mini"
#define DEFAULT_ANTHROPIC_URL   "https://api.anthropic.com/v1"
#define DEFAULT_OPENAI_URL      "https://api.openai.com/v1"
#define INTERRUPT_GRACE_S       5.0

struct grader {
    struct grader_config cfg;
    struct store        *st;      /* borrowed; may be NULL */
    struct http_client  *http;
    char               **headers; /* hold the key: never printed */
    char                *key;     /* copy of the key, for scrubbing server messages */
    char                *url;     /* the endpoint */
    char                 name[192];
    struct rng           rng;
    struct grader_stats  stats;
    int64_t              run_id;
    double               next_slot; /* rpm pacing: earliest next start, across batches */
    /* AIMD in-flight limit (stats.limit_now), across batches: requests are numbered as they
     * are sent (sent); cut_at is the number of the last one sent before the latest cut, so a
     * 429 to an older request (the same burst) does not cut again; ok_run counts successes
     * since the last change */
    long                 sent, cut_at;
    int                  ok_run;
};

// --- configuration ---------------------------------------------------------------------

struct grader_config grader_default_config(void) {
    struct grader_config c;
    memset(&c, 0, sizeof c);
    c.provider = GRADER_PROVIDER_NONE;
    c.concurrency = 8;
    c.rpm = 0;
    c.n_shards = 1;
    c.timeout_s = 120;
    c.connect_timeout_s = 10;
    c.max_retries = 5;
    c.backoff_base_s = 1.0;
    c.backoff_cap_s = 60.0;
    c.max_tokens = 512;
    c.temperature = 0;
    c.price_cached = -1;
    c.seed = 0x5eed;
    c.batch_poll_s = 30;
    return c;
}

const char *grader_key_env(enum grader_provider p) {
    return p == GRADER_PROVIDER_ANTHROPIC ? "ANTHROPIC_API_KEY" : "OPENAI_API_KEY";
}

int grader_config_set_url(struct grader_config *cfg, const char *url, struct ev_err *err) {
    const char *rest = NULL;
    if (strncmp(url, "http://", 7) == 0) rest = url + 7;
    else if (strncmp(url, "https://", 8) == 0) rest = url + 8;
    if (!rest || !*rest || *rest == '/')
        return ev_fail(err, EV_EUSAGE,
                       "--grader-url '%s': expected http://HOST[:PORT]/PATH, e.g. "
                       "http://127.0.0.1:8080/v1",
                       url);
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/') n--;
    const char *slash = strchr(rest, '/');
    int         no_path = !slash || (size_t)(slash - url) >= n;
    if (n + 4 >= sizeof cfg->base_url)
        return ev_fail(err, EV_EUSAGE, "--grader-url is too long (at most %zu characters)",
                       sizeof cfg->base_url - 5);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= ' ')
            return ev_fail(err, EV_EUSAGE, "--grader-url '%s' contains a space or control "
                                           "character", url);
    memcpy(cfg->base_url, url, n);
    cfg->base_url[n] = 0;
    if (no_path) memcpy(cfg->base_url + n, "/v1", 4);
    return EV_OK;
}

int grader_config_set_spec(struct grader_config *cfg, const char *spec, struct ev_err *err) {
    const char *colon = strchr(spec, ':');
    size_t      plen = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *model = colon ? colon + 1 : NULL;
    if (plen == 9 && strncmp(spec, "anthropic", 9) == 0) {
        cfg->provider = GRADER_PROVIDER_ANTHROPIC;
        if (!model) model = DEFAULT_ANTHROPIC_MODEL;
        grader_config_set_url(cfg, DEFAULT_ANTHROPIC_URL, err);
    } else if (plen == 6 && strncmp(spec, "openai", 6) == 0) {
        cfg->provider = GRADER_PROVIDER_OPENAI;
        if (!model) model = DEFAULT_OPENAI_MODEL;
        grader_config_set_url(cfg, DEFAULT_OPENAI_URL, err);
    } else {
        return ev_fail(err, EV_EUSAGE,
                       "--grader '%s': expected anthropic[:MODEL] or openai[:MODEL]", spec);
    }
    if (!*model || strlen(model) >= sizeof cfg->model)
        return ev_fail(err, EV_EUSAGE, "--grader '%s': the model name after ':' is %s", spec,
                       *model ? "too long" : "empty");
    for (const char *c = model; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == '"')
            return ev_fail(err, EV_EUSAGE, "--grader '%s': bad character in the model name",
                           spec);
    snprintf(cfg->model, sizeof cfg->model, "%s", model);
    return EV_OK;
}

const char *grader_config_name(const struct grader_config *cfg, char *buf, size_t n) {
    snprintf(buf, n, "%s:%s", cache_provider_name(cfg->provider), cfg->model);
    return buf;
}

void grader_flags_init(struct grader_flags *f) {
    memset(f, 0, sizeof *f);
    f->concurrency = GRADER_FLAG_UNSET;
    f->rpm = GRADER_FLAG_UNSET_D;
    f->timeout = GRADER_FLAG_UNSET_D;
    f->max_retries = GRADER_FLAG_UNSET;
    f->price_in = GRADER_FLAG_UNSET_D;
    f->price_out = GRADER_FLAG_UNSET_D;
    f->price_cached = GRADER_FLAG_UNSET_D;
}

int grader_flags_configured(const struct grader_flags *f) {
    const char *env = getenv("EVALRUN_GRADER");
    return (f && f->grader) || (env && *env);
}

const char *grader_not_configured_message(void) {
    return "no grader configured: items that need grading are queued for human review "
           "('evalrun review'); to grade with an LLM, pass --grader anthropic[:MODEL] or "
           "--grader openai[:MODEL] (or set EVALRUN_GRADER) with ANTHROPIC_API_KEY or "
           "OPENAI_API_KEY set, and --grader-url URL for another server";
}

int grader_config_from_flags(const struct grader_flags *f, int shard_n,
                             struct grader_config *cfg, struct ev_err *err) {
    int rc;
    *cfg = grader_default_config();
    const char *spec = f->grader;
    if (!spec) spec = getenv("EVALRUN_GRADER");
    if (!spec || !*spec)
        return ev_fail(err, EV_EUSAGE, "no grader configured (--grader or EVALRUN_GRADER)");
    if ((rc = grader_config_set_spec(cfg, spec, err)) != EV_OK) return rc;
    const char *url = f->grader_url;
    if (!url) url = getenv("EVALRUN_GRADER_URL");
    if (url && *url && (rc = grader_config_set_url(cfg, url, err)) != EV_OK) return rc;
    if (f->concurrency != GRADER_FLAG_UNSET) {
        if ((rc = args_check_long("--concurrency", f->concurrency, 1, 1024, err)) != EV_OK)
            return rc;
        cfg->concurrency = (int)f->concurrency;
    }
    if (!isnan(f->rpm)) {
        if ((rc = args_check_double("--rpm", f->rpm, 0.001, 1e7, err)) != EV_OK) return rc;
        cfg->rpm = f->rpm;
    }
    if (!isnan(f->timeout)) {
        if ((rc = args_check_double("--timeout", f->timeout, 0.1, 86400, err)) != EV_OK)
            return rc;
        cfg->timeout_s = f->timeout;
        if (cfg->connect_timeout_s > f->timeout) cfg->connect_timeout_s = f->timeout;
    }
    if (f->max_retries != GRADER_FLAG_UNSET) {
        if ((rc = args_check_long("--max-retries", f->max_retries, 0, 50, err)) != EV_OK)
            return rc;
        cfg->max_retries = (int)f->max_retries;
    }
    if (!isnan(f->price_in)) {
        if ((rc = args_check_double("--price-in", f->price_in, 0, 1e6, err)) != EV_OK)
            return rc;
        cfg->price_in = f->price_in;
    }
    if (!isnan(f->price_out)) {
        if ((rc = args_check_double("--price-out", f->price_out, 0, 1e6, err)) != EV_OK)
            return rc;
        cfg->price_out = f->price_out;
    }
    if (!isnan(f->price_cached)) {
        if ((rc = args_check_double("--price-cached", f->price_cached, 0, 1e6, err)) != EV_OK)
            return rc;
        cfg->price_cached = f->price_cached;
    }
    cfg->no_cache = f->no_cache;
    cfg->n_shards = shard_n > 0 ? shard_n : 1;
    if ((rc = params_parse(f->params.v, f->params.n, cfg->params, sizeof cfg->params, err)) !=
        EV_OK)
        return rc;
    cfg->batch = f->batch;
    return EV_OK;
}

// --- lifecycle -------------------------------------------------------------------------

int grader_new(const struct grader_config *cfg, struct store *st, struct grader **out,
               struct ev_err *err) {
    *out = NULL;
    if (cfg->provider == GRADER_PROVIDER_NONE)
        return ev_fail(err, EV_EUSAGE, "no grader configured (--grader or EVALRUN_GRADER)");
    const char *env = grader_key_env(cfg->provider);
    const char *key = getenv(env);
    if (!key || !*key)
        return ev_fail(err, EV_EFAIL, "grader %s: %s is not set (export the API key in it; "
                                      "for a local server that needs none, any value will do)",
                       cache_provider_name(cfg->provider), env);
    struct grader *g = xcalloc(1, sizeof *g);
    g->cfg = *cfg;
    if (g->cfg.concurrency < 1) g->cfg.concurrency = 1;
    if (g->cfg.n_shards < 1) g->cfg.n_shards = 1;
    int rc = http_client_new(g->cfg.concurrency, &g->http, err);
    if (rc != EV_OK) {
        free(g);
        return rc;
    }
    g->st = st;
    g->key = xstrdup(key);
    g->headers = llm_headers(cfg->provider, key);
    g->url = llm_endpoint(cfg->provider, cfg->base_url);
    grader_config_name(cfg, g->name, sizeof g->name);
    rng_seed(&g->rng, cfg->seed);
    g->stats.limit_now = g->stats.limit_min = g->cfg.concurrency;
    *out = g;
    return EV_OK;
}

void grader_free(struct grader *g) {
    if (!g) return;
    http_client_free(g->http);
    llm_headers_free(g->headers);
    if (g->key) memset(g->key, 0, strlen(g->key));
    free(g->key);
    free(g->url);
    free(g);
}

const struct grader_config *grader_config(const struct grader *g) { return &g->cfg; }
const struct grader_stats  *grader_stats(const struct grader *g) { return &g->stats; }
void grader_set_run(struct grader *g, int64_t run_id) { g->run_id = run_id; }

const char *grader_status_name(enum grader_status st) {
    switch (st) {
    case GRADER_OK: return "ok";
    case GRADER_HTTP_ERROR: return "http";
    case GRADER_NET_ERROR: return "network";
    case GRADER_BAD_RESPONSE: return "response";
    }
    return "?";
}

/* Copies text into buf as one line with every occurrence of the key replaced. */
static void scrub(const struct grader *g, const char *text, char *buf, size_t n) {
    struct sbuf sb;
    sbuf_init(&sb);
    size_t klen = g->key ? strlen(g->key) : 0;
    for (const char *s = text; *s;) {
        if (klen >= 4 && strncmp(s, g->key, klen) == 0) {
            sbuf_adds(&sb, "[redacted]");
            s += klen;
        } else {
            char c = (*s == '\n' || *s == '\r' || *s == '\t') ? ' ' : *s;
            sbuf_add(&sb, &c, 1);
            s++;
        }
    }
    snprintf(buf, n, "%s", sb.buf ? sb.buf : "");
    sbuf_release(&sb);
}

// --- the batch engine ------------------------------------------------------------------

enum item_state { ITEM_QUEUED, ITEM_WAITING, ITEM_IN_FLIGHT, ITEM_DONE };

struct item {
    enum item_state state;
    int             attempt, tries, cache_checked;
    double          next_at;       /* ITEM_WAITING: when it may be sent again */
    long            sent_no;       /* grader.sent when its current try went out */
    char            key[65];
    char           *body;          /* request JSON of the current attempt */
    char           *reprompt;      /* the re-ask's prompt (grader_run_batch_reask), or NULL */
    int             last_status;
    char            last_error[256];
};

struct batch {
    struct grader               *g;
    const struct grader_request *reqs;
    struct item                 *items;
    int                          n, n_done, next_queued;
    int                         *waiting; /* indices in ITEM_WAITING */
    int                          n_waiting;
    grader_accept_fn            *accept;
    grader_accept_reask_fn      *accept_reask;
    void                        *accept_ud;
    grader_result_fn            *on_result;
    void                        *ud;
    int                          max_retries, retry_network, read_cache;
    int                          stop_rc;   /* non-zero: stop the batch with this code */
    struct ev_err               *err;
};

static void item_params(const struct batch *b, int i, struct cache_params *cp) {
    const struct grader_config  *c = &b->g->cfg;
    const struct grader_request *r = &b->reqs[i];
    cp->provider = c->provider;
    cp->base_url = c->base_url;
    cp->model = c->model;
    cp->system = r->system;
    cp->prompt = b->items[i].reprompt ? b->items[i].reprompt : r->prompt;
    cp->max_tokens = r->max_tokens > 0 ? r->max_tokens : c->max_tokens;
    cp->logprobs = c->provider == GRADER_PROVIDER_OPENAI ? c->logprobs : 0;
    cp->attempt = b->items[i].attempt;
    cp->fixed_len = r->fixed_len;
    cp->temperature = c->temperature;
    cp->params = c->params;
}

static void log_request(struct batch *b, int i, const struct grader_result *res) {
    struct grader *g = b->g;
    if (!g->st) return;
    struct ev_err                   e;
    const struct ledger_request_row r = {
        g->run_id, g->name, b->items[i].key, res->attempt, grader_status_name(res->status),
        res->http_status, res->tries, res->from_cache, (int64_t)(res->latency_s * 1000.0 + 0.5),
        res->tokens_in, res->tokens_out, res->tokens_cache_read, res->tokens_cache_write,
        res->error[0] ? res->error : NULL};
    /* the audit row is not worth stopping a batch for, but its loss is said (the fault sweep,
     * tests/cli/faults.sh, found it lost silently) */
    if (ledger_request_put(g->st, &r, &e) != EV_OK)
        ev_info("grader: a request's audit row (grader_requests) was not stored: %s", e.msg);
}

static void push_waiting(struct batch *b, int i, double at) {
    b->items[i].state = ITEM_WAITING;
    b->items[i].next_at = at;
    b->waiting[b->n_waiting++] = i;
}

/* Counts one finished item in g's stats: by its status, and whether the cache answered it. */
static void count_result(struct grader *g, const struct grader_result *res) {
    g->stats.items++;
    switch (res->status) {
    case GRADER_OK: g->stats.ok++; break;
    case GRADER_HTTP_ERROR: g->stats.failed_http++; break;
    case GRADER_NET_ERROR: g->stats.failed_network++; break;
    case GRADER_BAD_RESPONSE: g->stats.failed_response++; break;
    }
    if (res->from_cache) g->stats.from_cache++;
}

/* Hands a final result over, or re-asks once when accept rejects an attempt-0 answer.
 * Returns non-zero to stop the batch. */
static int deliver(struct batch *b, int i, struct grader_result *res) {
    struct grader *g = b->g;
    struct item   *it = &b->items[i];
    char *reprompt = NULL;
    if (res->status == GRADER_OK && (b->accept || b->accept_reask) && it->attempt == 0 &&
        !(b->accept_reask
              ? b->accept_reask(b->accept_ud, i, b->reqs[i].prompt, res->text, &reprompt)
              : b->accept(b->ud, i, res->text))) {
        it->reprompt = reprompt;
        g->stats.reasked++;
        free(it->body);
        it->body = NULL;
        it->attempt = 1;
        it->tries = 0;
        it->cache_checked = 0;
        push_waiting(b, i, 0);
        return 0;
    }
    free(reprompt); /* an accept that set one and accepted anyway */
    it->state = ITEM_DONE;
    free(it->body);
    it->body = NULL;
    b->n_done++;
    res->attempt = it->attempt;
    res->cache_key = it->key;
    count_result(g, res);
    log_request(b, i, res);
    if (!b->on_result) return 0;
    int rc = b->on_result(b->ud, i, res, b->err);
    if (rc != 0) {
        b->stop_rc = rc;
        return rc;
    }
    return 0;
}

/* USD per million input tokens read from / written to the provider's prompt cache. */
static double price_cache_read(const struct grader_config *c) {
    if (c->price_cached >= 0) return c->price_cached;
    return c->price_in * (c->provider == GRADER_PROVIDER_ANTHROPIC ? 0.1 : 0.5);
}
static double price_cache_write(const struct grader_config *c) {
    return c->price_in * (c->provider == GRADER_PROVIDER_ANTHROPIC ? 1.25 : 1.0);
}

/* tin: every input token, of which cread were read from the provider's prompt cache and
 * cwrite written to it (priced at their discount); price_factor: 1, or 0.5 for answers
 * through a provider's batch API (graders/batch.c) */
static void add_usage_at(struct grader *g, int tin, int tout, int cread, int cwrite,
                         double price_factor) {
    struct grader_stats        *s = &g->stats;
    const struct grader_config *c = &g->cfg;
    s->tokens_in += tin;
    s->tokens_out += tout;
    s->tokens_cache_read += cread;
    s->tokens_cache_write += cwrite;
    int plain = tin - cread - cwrite;
    if (plain < 0) plain = 0;
    s->cost_usd += price_factor *
                   ((double)plain * c->price_in + (double)cread * price_cache_read(c) +
                    (double)cwrite * price_cache_write(c) + (double)tout * c->price_out) / 1e6;
    s->cost_nocache_usd +=
        price_factor * ((double)tin * c->price_in + (double)tout * c->price_out) / 1e6;
}

static void add_usage(struct grader *g, const struct llm_answer *a) {
    add_usage_at(g, a->tokens_in, a->tokens_out, a->tokens_cache_read, a->tokens_cache_write, 1.0);
}

/* A failed try: schedule a retry or deliver the failure. */
static int retry_or_fail(struct batch *b, int i, enum grader_status st, int retryable,
                         double retry_after, const struct http_response *r) {
    struct grader *g = b->g;
    struct item   *it = &b->items[i];
    if (retryable && it->tries <= b->max_retries && !ev_interrupted()) {
        double d = http_backoff_s(it->tries, g->cfg.backoff_base_s, g->cfg.backoff_cap_s,
                                  retry_after, &g->rng);
        g->stats.retries++;
        ev_debug("grader: item %d: %s; retry %d in %.2f s", i, it->last_error, it->tries, d);
        push_waiting(b, i, now_seconds() + d);
        return 0;
    }
    struct grader_result res = {0};
    res.status = st;
    res.http_status = it->last_status;
    res.text = "";
    res.model = "";
    res.error = it->last_error;
    res.latency_s = r ? r->latency_s : 0;
    res.tries = it->tries;
    return deliver(b, i, &res);
}

/* AIMD: multiplicative decrease on a 429 (once per round of requests in flight), additive
 * increase of 1 per `limit` successes. */
static void limit_on_429(struct grader *g, const struct item *it) {
    struct grader_stats *s = &g->stats;
    g->ok_run = 0;
    if (it->sent_no <= g->cut_at || s->limit_now <= 1) return;
    int was = s->limit_now;
    s->limit_now = was / 2 > 1 ? was / 2 : 1;
    if (s->limit_now < s->limit_min) s->limit_min = s->limit_now;
    s->limit_cuts++;
    g->cut_at = g->sent;
    ev_info("grader: HTTP 429 (rate limited): at most %d requests in flight now (was %d)",
            s->limit_now, was);
}

static void limit_on_success(struct grader *g) {
    struct grader_stats *s = &g->stats;
    if (s->limit_now >= g->cfg.concurrency || ++g->ok_run < s->limit_now) return;
    s->limit_now++;
    g->ok_run = 0;
    if (s->limit_now == g->cfg.concurrency)
        ev_info("grader: back to %d requests in flight", s->limit_now);
}

static int on_http_done(void *ud, const struct http_response *r) {
    struct batch  *b = ud;
    struct grader *g = b->g;
    int            i = r->id;
    struct item   *it = &b->items[i];
    const enum grader_provider p = g->cfg.provider;
    it->last_status = r->status;

    if (r->outcome != HTTP_OUTCOME_OK) {
        it->last_status = 0;
        char msg[200];
        scrub(g, r->error, msg, sizeof msg);
        if (r->outcome == HTTP_OUTCOME_TIMEOUT)
            snprintf(it->last_error, sizeof it->last_error, "no answer within %g s (%s)",
                     g->cfg.timeout_s, msg);
        else
            snprintf(it->last_error, sizeof it->last_error, "%s: %s",
                     r->outcome == HTTP_OUTCOME_CONNECT ? "cannot connect" : "network error",
                     msg);
        int retry = b->retry_network || r->outcome == HTTP_OUTCOME_NETWORK;
        return retry_or_fail(b, i, GRADER_NET_ERROR, retry, -1, r);
    }
    if (r->status == 200) {
        struct llm_answer a;
        struct ev_err     e;
        if (llm_parse_response(p, r->body, r->body_len, &a, &e) != EV_OK) {
            scrub(g, e.msg, it->last_error, sizeof it->last_error);
            return retry_or_fail(b, i, GRADER_BAD_RESPONSE, 1, -1, r);
        }
        limit_on_success(g);
        add_usage(g, &a);
        if (g->st) {
            struct cache_params cp;
            item_params(b, i, &cp);
            if (cache_put(g->st, it->key, &cp, it->body, r->body, &a, r->latency_s, &e) != EV_OK)
                ev_info("grader: cannot store an answer in the cache: %s", e.msg);
        }
        struct grader_result res = {0};
        res.status = GRADER_OK;
        res.http_status = 200;
        res.text = a.text;
        res.model = a.model;
        res.logprobs_json = a.logprobs_json;
        res.error = "";
        res.latency_s = r->latency_s;
        res.tokens_in = a.tokens_in;
        res.tokens_out = a.tokens_out;
        res.tokens_cache_read = a.tokens_cache_read;
        res.tokens_cache_write = a.tokens_cache_write;
        res.tries = it->tries;
        int rc = deliver(b, i, &res);
        llm_answer_release(&a);
        return rc;
    }
    char *m = llm_error_message(r->body, r->body_len);
    char  msg[220];
    scrub(g, m ? m : "", msg, sizeof msg);
    free(m);
    snprintf(it->last_error, sizeof it->last_error, "HTTP %d%s%s", r->status, msg[0] ? ": " : "",
             msg);
    if (r->status == 429) limit_on_429(g, it);
    if (r->status == 401 || r->status == 403) {
        /* The key is refused: every other item would fail the same way. */
        it->state = ITEM_DONE; /* not delivered: left ungraded, to be resumed */
        b->stop_rc = ev_fail(b->err, EV_EFAIL,
                             "grader %s at %s refused the key in %s (%s)", g->name,
                             g->cfg.base_url, grader_key_env(p), it->last_error);
        return b->stop_rc;
    }
    return retry_or_fail(b, i, GRADER_HTTP_ERROR, http_status_retryable(r->status),
                         r->retry_after_s, r);
}

/* Picks the next item ready to go (due retries first, then the queue), or -1. Sets *wpos to
 * its position in waiting[] (-1 when from the queue). */
static int peek_ready(struct batch *b, double now, int *wpos) {
    for (int k = 0; k < b->n_waiting; k++) {
        if (b->items[b->waiting[k]].next_at <= now) {
            *wpos = k;
            return b->waiting[k];
        }
    }
    *wpos = -1;
    return b->next_queued < b->n ? b->next_queued : -1;
}

static void take(struct batch *b, int wpos) {
    if (wpos < 0) b->next_queued++;
    else b->waiting[wpos] = b->waiting[--b->n_waiting];
}

static double earliest_wait(const struct batch *b) {
    double t = 1e300;
    for (int k = 0; k < b->n_waiting; k++)
        if (b->items[b->waiting[k]].next_at < t) t = b->items[b->waiting[k]].next_at;
    return t;
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Starts what may start now. Returns non-zero to stop. */
static int issue(struct batch *b, double now) {
    struct grader *g = b->g;
    double         interval = g->cfg.rpm > 0 ? 60.0 * g->cfg.n_shards / g->cfg.rpm : 0;
    while (http_in_flight(g->http) < g->stats.limit_now && !b->stop_rc) {
        int wpos, i = peek_ready(b, now, &wpos);
        if (i < 0) break;
        struct item *it = &b->items[i];
        if (!it->cache_checked) {
            struct cache_params cp;
            item_params(b, i, &cp);
            cache_key(&cp, it->key);
            it->cache_checked = 1;
            if (b->read_cache && g->st) {
                struct llm_answer a;
                int               found = 0;
                struct ev_err     e;
                if (cache_get(g->st, it->key, &a, &found, &e) != EV_OK)
                    ev_info("grader: cache lookup failed: %s", e.msg);
                if (found) {
                    take(b, wpos);
                    struct grader_result res = {0};
                    res.status = GRADER_OK;
                    res.text = a.text;
                    res.model = a.model;
                    res.logprobs_json = a.logprobs_json;
                    res.error = "";
                    res.tokens_in = a.tokens_in;
                    res.tokens_out = a.tokens_out;
                    res.from_cache = 1;
                    int rc = deliver(b, i, &res);
                    llm_answer_release(&a);
                    if (rc) return rc;
                    continue;
                }
            }
        }
        if (interval > 0 && now < g->next_slot) break;
        take(b, wpos);
        if (!it->body) {
            struct cache_params cp;
            item_params(b, i, &cp);
            it->body = params_apply(cp.provider, cp.model, cp.params,
                                    llm_build_body(cp.provider, cp.model, cp.system, cp.prompt,
                                                   cp.fixed_len, cp.max_tokens, cp.temperature,
                                                   cp.logprobs));
        }
        struct http_request hr = {0};
        hr.url = g->url;
        hr.headers = (const char *const *)g->headers;
        hr.body = it->body;
        hr.body_len = strlen(it->body);
        hr.timeout_s = g->cfg.timeout_s;
        hr.connect_timeout_s = g->cfg.connect_timeout_s;
        struct ev_err e;
        if (http_start(g->http, i, &hr, &e) != EV_OK) {
            b->stop_rc = ev_fail(b->err, EV_EFAIL, "grader: %s", e.msg);
            return b->stop_rc;
        }
        it->state = ITEM_IN_FLIGHT;
        it->sent_no = ++g->sent;
        it->tries++;
        g->stats.requests++;
        if (interval > 0) g->next_slot = (g->next_slot > now ? g->next_slot : now) + interval;
    }
    return 0;
}

/* The re-ask of grader_run_batch_reask(): its accept and that accept's own data. */
struct reask {
    grader_accept_reask_fn *accept;
    void                   *ud;
};

static int run_batch(struct grader *g, const struct grader_request *reqs, int n,
                     grader_accept_fn *accept, const struct reask *reask,
                     grader_result_fn *on_result, void *ud, int max_retries, int retry_network,
                     int read_cache, int quiet, struct ev_err *err) {
    struct batch b;
    memset(&b, 0, sizeof b);
    b.g = g;
    b.reqs = reqs;
    b.n = n;
    b.items = xcalloc((size_t)(n > 0 ? n : 1), sizeof *b.items);
    b.waiting = xcalloc((size_t)(n > 0 ? n : 1), sizeof *b.waiting);
    b.accept = accept;
    if (reask) b.accept_reask = reask->accept, b.accept_ud = reask->ud;
    b.on_result = on_result;
    b.ud = ud;
    b.max_retries = max_retries;
    b.retry_network = retry_network;
    b.read_cache = read_cache;
    b.err = err;
    struct grader_stats before = g->stats;
    int                 rc = EV_OK;
    double              grace_end = 0, t_start = now_seconds();

    for (int i = 0; i < n; i++) {
        if (!reqs[i].prompt) {
            rc = ev_fail(err, EV_EFAIL, "grader: request %d has no prompt", i);
            goto out;
        }
    }
    while (b.n_done < n && !b.stop_rc) {
        double now = now_seconds();
        if (ev_interrupted()) {
            if (http_in_flight(g->http) == 0) break;
            if (grace_end == 0) grace_end = now + INTERRUPT_GRACE_S;
            if (now >= grace_end) {
                http_abort_all(g->http);
                break;
            }
        } else if (issue(&b, now)) {
            break;
        }
        if (b.n_done >= n || b.stop_rc) break;
        /* how long until something else can happen: a queued item or a due retry can start
         * now, unless the rpm pacer holds it back */
        double wake = b.next_queued < n ? now : earliest_wait(&b);
        if (g->cfg.rpm > 0 && g->next_slot > wake) wake = g->next_slot;
        double wait = wake - now_seconds();
        if (wait > 0.1 || http_in_flight(g->http) >= g->stats.limit_now || ev_interrupted())
            wait = 0.1; /* http_wait returns as soon as a transfer finishes */
        if (wait < 0.001) wait = 0.001;
        if (http_in_flight(g->http) > 0) {
            int r = http_wait(g->http, wait > 0 ? wait : 0, on_http_done, &b, err);
            if (r < 0 && !b.stop_rc) b.stop_rc = r;
        } else if (b.n_waiting > 0 || b.next_queued < n) {
            sleep_s(wait);
        } else {
            break; /* nothing queued, waiting or in flight: cannot happen, but never spin */
        }
    }
    if (b.stop_rc) {
        http_abort_all(g->http);
        rc = b.stop_rc;
    } else if (b.n_done < n) {
        rc = ev_interrupted() ? EV_EINTR : ev_fail(err, EV_EFAIL, "grader: batch ended early");
        if (rc == EV_EINTR) ev_fail(err, EV_EINTR, "interrupted: %d of %d items graded", b.n_done, n);
    }
    /* a failure summary for the batch */
    long fh = g->stats.failed_http - before.failed_http,
         fn = g->stats.failed_network - before.failed_network,
         fr = g->stats.failed_response - before.failed_response;
    if (fh + fn + fr > 0 && !quiet)
        ev_info("grader: %ld of %d items failed (%ld http error, %ld network/time-out, %ld "
                "unreadable answer); rerun to retry them",
                fh + fn + fr, n, fh, fn, fr);
out:
    g->stats.batch_s += now_seconds() - t_start;
    for (int i = 0; i < n; i++) free(b.items[i].body), free(b.items[i].reprompt);
    free(b.items);
    free(b.waiting);
    return rc;
}

int grader_run_batch(struct grader *g, const struct grader_request *reqs, int n,
                     grader_accept_fn *accept, grader_result_fn *on_result, void *ud,
                     struct ev_err *err) {
    if (g->cfg.batch) return grader_batch_run(g, reqs, n, accept, on_result, ud, err);
    return run_batch(g, reqs, n, accept, NULL, on_result, ud, g->cfg.max_retries, 1,
                     !g->cfg.no_cache, 0, err);
}

int grader_run_batch_reask(struct grader *g, const struct grader_request *reqs, int n,
                           grader_accept_reask_fn *accept, void *accept_ud,
                           grader_result_fn *on_result, void *ud, struct ev_err *err) {
    const struct reask ra = {accept, accept_ud};
    if (g->cfg.batch)
        return grader_batch_run_reask(g, reqs, n, accept, accept_ud, on_result, ud, err);
    return run_batch(g, reqs, n, NULL, &ra, on_result, ud, g->cfg.max_retries, 1,
                     !g->cfg.no_cache, 0, err);
}

// --- for graders/batch.c ---------------------------------------------------------------

struct store *grader_store_of(const struct grader *g) { return g->st; }
int64_t       grader_run_of(const struct grader *g) { return g->run_id; }
const char   *grader_key_of(const struct grader *g) { return g->key; }

void grader_scrub(const struct grader *g, const char *text, char *buf, size_t n) {
    scrub(g, text, buf, n);
}

void grader_count_request(struct grader *g) { g->stats.requests++; }

void grader_account(struct grader *g, const struct grader_result *res, double price_factor) {
    count_result(g, res);
    if (!res->from_cache)
        add_usage_at(g, res->tokens_in, res->tokens_out, res->tokens_cache_read,
                     res->tokens_cache_write, price_factor);
    if (!g->st) return;
    struct ev_err                   e;
    const struct ledger_request_row r = {
        g->run_id, g->name, res->cache_key, res->attempt, grader_status_name(res->status),
        res->http_status, res->tries, res->from_cache, (int64_t)(res->latency_s * 1000.0 + 0.5),
        res->tokens_in, res->tokens_out, res->tokens_cache_read, res->tokens_cache_write,
        res->error[0] ? res->error : NULL};
    if (ledger_request_put(g->st, &r, &e) != EV_OK)
        ev_info("grader: a request's audit row (grader_requests) was not stored: %s", e.msg);
}

// --- preflight -------------------------------------------------------------------------

struct preflight {
    struct grader_result res;
    char                 text[512], model[128], error[256];
    int                  got;
};

static int preflight_cb(void *ud, int index, const struct grader_result *r, struct ev_err *err) {
    (void)index;
    (void)err;
    struct preflight *p = ud;
    p->res = *r;
    snprintf(p->text, sizeof p->text, "%s", r->text);
    snprintf(p->model, sizeof p->model, "%s", r->model);
    snprintf(p->error, sizeof p->error, "%s", r->error);
    p->got = 1;
    return 0;
}

int grader_preflight(struct grader *g, double *latency_s, char *model_out, size_t n,
                     char *answer_out, size_t answer_n, struct ev_err *err) {
    struct prompt   *tpl = NULL;
    char            *text = NULL;
    struct preflight pf;
    memset(&pf, 0, sizeof pf);
    int rc = prompt_load(NULL, "check", &tpl, err);
    if (rc != EV_OK) return rc;
    if ((rc = prompt_render(tpl, NULL, 0, &text, err)) != EV_OK) goto out;
    struct grader_request req = {tpl->system, text, 16, 0, prompt_fixed_len(tpl)};
    struct grader_stats   before = g->stats;
    /* at most two quick retries on 429/5xx; a refused connection fails at once */
    struct grader_config saved = g->cfg;
    if (g->cfg.backoff_cap_s > 5) g->cfg.backoff_cap_s = 5;
    rc = run_batch(g, &req, 1, NULL, NULL, preflight_cb, &pf,
                   g->cfg.max_retries < 2 ? g->cfg.max_retries : 2, 0, 0, 1, err);
    g->cfg = saved;
    /* the check is not an item: keep only its cost in the totals */
    g->stats.items = before.items;
    g->stats.ok = before.ok;
    g->stats.failed_http = before.failed_http;
    g->stats.failed_network = before.failed_network;
    g->stats.failed_response = before.failed_response;
    g->stats.batch_s = before.batch_s;
    if (rc != EV_OK) goto out;
    if (!pf.got) {
        rc = ev_fail(err, EV_EFAIL, "grader %s: no answer from %s", g->name, g->cfg.base_url);
        goto out;
    }
    const struct grader_result *r = &pf.res;
    switch (r->status) {
    case GRADER_OK: break;
    case GRADER_NET_ERROR:
        rc = ev_fail(err, EV_EFAIL, "grader %s: cannot reach %s: %s", g->name, g->url, pf.error);
        goto out;
    case GRADER_BAD_RESPONSE:
        rc = ev_fail(err, EV_EFAIL, "grader %s: %s answered with something unreadable: %s",
                     g->name, g->url, pf.error);
        goto out;
    case GRADER_HTTP_ERROR:
        if (r->http_status == 404 || r->http_status == 400 || r->http_status == 422)
            rc = ev_fail(err, EV_EFAIL,
                         "grader %s: %s rejected the request (%s); check the model name and "
                         "--grader-url",
                         g->name, g->url, pf.error);
        else
            rc = ev_fail(err, EV_EFAIL, "grader %s: %s answered %s", g->name, g->url, pf.error);
        goto out;
    }
    if (latency_s) *latency_s = r->latency_s;
    if (model_out && n) snprintf(model_out, n, "%s", pf.model);
    if (answer_out && answer_n) snprintf(answer_out, answer_n, "%s", pf.text);
    rc = EV_OK;
out:
    free(text);
    prompt_free(tpl);
    return rc;
}

// --- usage -----------------------------------------------------------------------------

const char *grader_summary(const struct grader *g, char *buf, size_t n) {
    const struct grader_stats *s = &g->stats;
    char                       cost[160] = "", cached[96] = "";
    if (s->tokens_cache_read > 0 || s->tokens_cache_write > 0)
        snprintf(cached, sizeof cached, " (%ld from the prompt cache, %ld written to it)",
                 s->tokens_cache_read, s->tokens_cache_write);
    if ((g->cfg.price_in > 0 || g->cfg.price_out > 0) &&
        (s->tokens_cache_read > 0 || s->tokens_cache_write > 0))
        snprintf(cost, sizeof cost,
                 "; cost $%.4f with cached input at $%.4g/M ($%.4f without prompt caching)",
                 s->cost_usd, price_cache_read(&g->cfg), s->cost_nocache_usd);
    else if (g->cfg.price_in > 0 || g->cfg.price_out > 0)
        snprintf(cost, sizeof cost, "; estimated cost $%.4f", s->cost_usd);
    long failed = s->failed_http + s->failed_network + s->failed_response;
    long live = s->items - s->from_cache;
    char rate[96] = "";
    if (live > 0 && s->batch_s > 0)
        snprintf(rate, sizeof rate, "; %ld answers over HTTP in %.2f s (%.1f/s)", live, s->batch_s,
                 (double)live / s->batch_s);
    char aimd[128] = "";
    if (s->limit_cuts > 0)
        snprintf(aimd, sizeof aimd,
                 "; in-flight limit halved %ld times on HTTP 429 (lowest %d), now %d of %d",
                 s->limit_cuts, s->limit_min, s->limit_now, g->cfg.concurrency);
    snprintf(buf, n,
             "grader %s: %ld items (%ld from cache), %ld requests (%ld retries, %ld re-asked); "
             "failures: %ld (%ld http, %ld network, %ld unreadable); "
             "tokens %ld in%s / %ld out%s%s%s",
             g->name, s->items, s->from_cache, s->requests, s->retries, s->reasked, failed,
             s->failed_http, s->failed_network, s->failed_response, s->tokens_in, cached,
             s->tokens_out, cost, rate, aimd);
    return buf;
}

int grader_store_usage(struct grader *g, int64_t run_id, struct ev_err *err) {
    if (!g->st) return EV_OK;
    const struct grader_stats    *s = &g->stats;
    const struct ledger_usage_row r = {
        run_id, g->name, s->items, s->ok, s->from_cache,
        s->failed_http + s->failed_network + s->failed_response, s->requests, s->retries,
        s->tokens_in, s->tokens_out, s->tokens_cache_read, s->tokens_cache_write,
        g->cfg.price_in > 0 || g->cfg.price_out > 0, s->cost_usd, s->cost_nocache_usd};
    return ledger_usage_put(g->st, &r, err);
}
