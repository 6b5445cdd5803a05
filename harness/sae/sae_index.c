/*
 * sae_index — per-feature statistics and example windows (top, interval samples,
 * non-activating), chunk by chunk, handed to a sink (store/index.c stores them). See
 * sae_index.h.
 */
#include "sae/sae_index.h"

#include "base/progress.h"
#include "base/utf8.h"
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"
#include "model/tok.h"

#define CHUNK   256
#define QRES    1024 /* quantile reservoir per feature */
#define ENC_SEQ 8    /* sequences encoded per BLAS call */

const double sae_index_quantiles[4] = {0.1, 0.5, 0.9, 0.99};

struct sae_index_params sae_index_default_params(void) {
    struct sae_index_params p;
    memset(&p, 0, sizeof p);
    p.top_k = 20;
    p.bins = 10;
    p.per_bin = 5;
    p.n_nonact = 20;
    p.window = 10;
    p.shard_n = 1;
    return p;
}

struct hit {
    float   act;
    int64_t tok; /* seq * T + pos */
};

/* min-heap on (act, then later token weaker) */
static int weaker(const struct hit *a, const struct hit *b) {
    return a->act < b->act || (a->act == b->act && a->tok > b->tok);
}

static void heap_push(struct hit *h, int *n, int cap, struct hit v) {
    if (*n < cap) {
        int i = (*n)++;
        h[i] = v;
        while (i > 0) {
            int p = (i - 1) / 2;
            if (!weaker(&h[i], &h[p])) break;
            struct hit t = h[i]; h[i] = h[p]; h[p] = t;
            i = p;
        }
        return;
    }
    if (!weaker(&h[0], &v)) return;
    h[0] = v;
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && weaker(&h[l], &h[m])) m = l;
        if (r < *n && weaker(&h[r], &h[m])) m = r;
        if (m == i) break;
        struct hit t = h[i]; h[i] = h[m]; h[m] = t;
        i = m;
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static int cmp_hit_desc(const void *a, const void *b) {
    const struct hit *x = a, *y = b;
    if (x->act != y->act) return x->act < y->act ? 1 : -1;
    return (x->tok > y->tok) - (x->tok < y->tok);
}

enum pick_kind { PICK_TOP, PICK_INTERVAL, PICK_NONACT };

struct pick {
    int64_t tok;
    int     feat; /* chunk-local */
    int     kind, bin, order;
    float   act;
};

/* Appends p with its order (ties in cmp_pick keep the order of appending). Written out
 * because picks[n++] = (struct pick){..., n, ...} reads n unsequenced with its increment,
 * which is undefined (clang -Wunsequenced; issue 20). */
static void add_pick(struct pick *picks, int *n, struct pick p) {
    p.order     = *n;
    picks[*n]   = p;
    *n += 1;
}

static int cmp_pick(const void *a, const void *b) {
    const struct pick *x = a, *y = b;
    if (x->tok != y->tok) return (x->tok > y->tok) - (x->tok < y->tok);
    return (x->order > y->order) - (x->order < y->order);
}

/* The picks in cmp_pick's order (by token, ties in appending order: a stable sort by token)
 * with a least-significant-digit radix sort on the token, 11 bits a pass (one pass for make
 * bench's 2,048 tokens, three for 2^33), tmp as large as picks; what qsort with cmp_pick
 * gives, which the twin uses (a chunk's 15,000 picks: qsort was a third of the examples). */
static void sort_picks(struct pick *picks, int n, struct pick *tmp) {
    int64_t mx = 0;
    for (int i = 0; i < n; i++)
        if (picks[i].tok > mx) mx = picks[i].tok;
    struct pick *src = picks, *dst = tmp;
    for (int shift = 0; shift == 0 || (mx >> shift) > 0; shift += 11) {
        int cnt[2049] = {0};
        for (int i = 0; i < n; i++) cnt[((src[i].tok >> shift) & 2047) + 1]++;
        for (int d = 0; d < 2048; d++) cnt[d + 1] += cnt[d];
        for (int i = 0; i < n; i++) dst[cnt[(src[i].tok >> shift) & 2047]++] = src[i];
        struct pick *t = src;
        src = dst, dst = t;
    }
    if (src != picks) memcpy(picks, src, (size_t)n * sizeof *picks);
}

/* The per-chunk state. */
struct chunk {
    int        n;        /* features in the chunk */
    const int *ids;      /* (n) global feature ids */
    int64_t   *count;
    double    *sum;
    float     *max;
    struct hit *top;     /* (n, top_k) */
    int       *n_top;
    float     *qres;     /* (n, QRES) */
    int64_t   *q_seen;
    struct hit *ires;    /* (n, bins, per_bin) */
    int64_t   *i_seen;   /* (n, bins) */
};

static void chunk_alloc(struct chunk *ch, const int *ids, int n, const struct sae_index_params *p) {
    const int K = p->bins, PB = p->per_bin, TK = p->top_k;
    ch->n = n;
    ch->ids = ids;
    ch->count = xcalloc((size_t)n, sizeof(int64_t));
    ch->sum = xcalloc((size_t)n, sizeof(double));
    ch->max = xcalloc((size_t)n, sizeof(float));
    ch->top = xcalloc((size_t)n * (TK > 0 ? TK : 1), sizeof(struct hit));
    ch->n_top = xcalloc((size_t)n, sizeof(int));
    ch->qres = xcalloc((size_t)n * QRES, sizeof(float));
    ch->q_seen = xcalloc((size_t)n, sizeof(int64_t));
    ch->ires = xcalloc((size_t)n * (K > 0 ? K : 1) * (PB > 0 ? PB : 1), sizeof(struct hit));
    ch->i_seen = xcalloc((size_t)n * (K > 0 ? K : 1), sizeof(int64_t));
}

static void chunk_release(struct chunk *ch) {
    free(ch->count); free(ch->sum); free(ch->max); free(ch->top); free(ch->n_top);
    free(ch->qres); free(ch->q_seen); free(ch->ires); free(ch->i_seen);
}

/* One firing (activation a > 0 of chunk-local latent j at corpus token tok) into the chunk's
 * statistics: count, sum, max, the top-k heap and the quantile reservoir. The stream's scan
 * and its twin's first pass both count here. */
static void chunk_fire(struct chunk *ch, int j, float a, int64_t tok, int TK, struct rng *rng) {
    ch->count[j]++;
    ch->sum[j] += (double)a;
    if (a > ch->max[j]) ch->max[j] = a;
    if (TK > 0) heap_push(ch->top + (size_t)j * TK, &ch->n_top[j], TK, (struct hit){a, tok});
    int64_t seen = ch->q_seen[j]++;
    if (seen < QRES) ch->qres[(size_t)j * QRES + seen] = a;
    else {
        uint64_t u = rng_below(rng, (uint64_t)seen + 1);
        if (u < QRES) ch->qres[(size_t)j * QRES + u] = a;
    }
}

/* One firing into the reservoir of its activation interval (of K, by the final max). */
static void chunk_interval(struct chunk *ch, int j, float a, int64_t tok, int K, int PB,
                           struct rng *rng) {
    int b = (int)ceil((double)a / (double)ch->max[j] * K) - 1;
    if (b < 0) b = 0;
    if (b >= K) b = K - 1;
    int64_t     seen = ch->i_seen[(size_t)j * K + b]++;
    struct hit *rs = ch->ires + ((size_t)j * K + b) * PB;
    struct hit  v = {a, tok};
    if (seen < PB) rs[seen] = v;
    else {
        uint64_t u = rng_below(rng, (uint64_t)seen + 1);
        if (u < (uint64_t)PB) rs[u] = v;
    }
}

/* The chunk's picks in appending order (to be sorted by token): each latent's top-k (sorted
 * in place, strongest first), its interval samples, and 3 * n_nonact random tokens as
 * non-activating candidates. Caller frees. */
static struct pick *chunk_picks(struct chunk *ch, const struct acts_corpus *c,
                                const struct sae_index_params *p, struct rng *rng, int *n_out) {
    const int    n = ch->n, T = c->T, K = p->bins, PB = p->per_bin, TK = p->top_k;
    int          n_picks = 0;
    struct pick *picks = xmalloc((size_t)(n * (TK + K * PB + 3 * p->n_nonact) + 1) * sizeof *picks);
    for (int j = 0; j < n; j++) {
        struct hit *h = ch->top + (size_t)j * TK;
        qsort(h, (size_t)ch->n_top[j], sizeof *h, cmp_hit_desc);
        for (int k = 0; k < ch->n_top[j]; k++)
            add_pick(picks, &n_picks, (struct pick){h[k].tok, j, PICK_TOP, -1, 0, h[k].act});
        for (int b = 0; b < K; b++) {
            int64_t have = ch->i_seen[(size_t)j * K + b];
            for (int k = 0; k < PB && k < have; k++) {
                struct hit *v = ch->ires + ((size_t)j * K + b) * PB + k;
                add_pick(picks, &n_picks, (struct pick){v->tok, j, PICK_INTERVAL, b, 0, v->act});
            }
        }
        for (int k = 0; k < 3 * p->n_nonact; k++) {
            int64_t q = (int64_t)rng_below(rng, (uint64_t)c->n_seq);
            int64_t t = 1 + (int64_t)rng_below(rng, (uint64_t)(T - 1));
            add_pick(picks, &n_picks, (struct pick){q * T + t, j, PICK_NONACT, -1, 0, 0});
        }
    }
    *n_out = n_picks;
    return picks;
}

/* The chunk's statistics (its quantile reservoirs sorted in place). Caller frees. */
static struct sae_index_stats *chunk_stats(struct chunk *ch, const struct acts_corpus *c) {
    const int64_t           N = (int64_t)c->n_seq * (c->T - 1);
    struct sae_index_stats *stats = xcalloc((size_t)ch->n, sizeof *stats);
    for (int j = 0; j < ch->n; j++) {
        int64_t nq = ch->q_seen[j] < QRES ? ch->q_seen[j] : QRES;
        float  *qv = ch->qres + (size_t)j * QRES;
        qsort(qv, (size_t)nq, sizeof(float), cmp_float);
        struct sae_index_stats *so = &stats[j];
        so->feature = ch->ids[j];
        so->n_tokens = N;
        so->fire_count = ch->count[j];
        so->density = N ? (double)ch->count[j] / (double)N : 0;
        so->max_act = ch->max[j];
        so->mean_act = ch->count[j] ? ch->sum[j] / (double)ch->count[j] : 0;
        for (int k = 0; k < 4; k++)
            so->quantiles[k] =
                nq ? qv[(int64_t)floor(sae_index_quantiles[k] * (double)(nq - 1) + 0.5)] : 0;
    }
    return stats;
}


/* The naive twin of sae_index_window_text (STYLE rule 20): a growing buffer, every text
 * checked for UTF-8. */
char *sae_index_window_text_ref(const struct tok *tk, const int *ids, int n) {
    struct sbuf sb;
    sbuf_init(&sb);
    int bos = tk ? tok_bos(tk) : -1, eos = tk ? tok_eos(tk) : -1;
    for (int i = 0; i < n; i++) {
        if (!tk) { /* ids as decimal numbers (formatted by hand: printf was a fifth of a run) */
            char     d[16];
            int      k = (int)sizeof d;
            unsigned v = ids[i] < 0 ? 0u - (unsigned)ids[i] : (unsigned)ids[i];
            d[--k] = '\0';
            do d[--k] = (char)('0' + v % 10); while ((v /= 10) && k > 2);
            if (ids[i] < 0) d[--k] = '-';
            if (i) d[--k] = ' ';
            sbuf_adds(&sb, d + k);
            continue;
        }
        if (ids[i] == bos || ids[i] == eos) continue;
        sbuf_adds(&sb, tok_piece(tk, i > 0 ? ids[i - 1] : -1, ids[i]));
    }
    /* a window may start or end inside a character (byte tokens): stored as UTF-8 always */
    return utf8_make_valid(sbuf_detach(&sb));
}

/* The text of a window: its tokens' pieces (BOS and EOS left out), or without a tokenizer
 * the ids as decimal numbers. Built in a stack buffer and copied once (a growing buffer per
 * window was 40% of the examples phase: 550k windows in make bench's index row); only a
 * text with a byte above 0x7f is checked for UTF-8. */
char *sae_index_window_text(const struct tok *tk, const int *ids, int n) {
    char   buf[2048];
    size_t len = 0;
    int    high = 0, bos = tk ? tok_bos(tk) : -1, eos = tk ? tok_eos(tk) : -1;
    for (int i = 0; i < n; i++) {
        if (!tk) { /* ids as decimal numbers (formatted by hand: printf was a fifth of a run) */
            char     d[16];
            int      k = (int)sizeof d;
            unsigned v = ids[i] < 0 ? 0u - (unsigned)ids[i] : (unsigned)ids[i];
            do d[--k] = (char)('0' + v % 10); while ((v /= 10) && k > 2);
            if (ids[i] < 0) d[--k] = '-';
            if (i) d[--k] = ' ';
            if (len + (sizeof d - (size_t)k) >= sizeof buf) goto slow;
            memcpy(buf + len, d + k, sizeof d - (size_t)k);
            len += sizeof d - (size_t)k;
            continue;
        }
        if (ids[i] == bos || ids[i] == eos) continue;
        const char *p = tok_piece(tk, i > 0 ? ids[i - 1] : -1, ids[i]);
        size_t      pl = strlen(p);
        if (len + pl >= sizeof buf) goto slow;
        for (size_t k = 0; k < pl; k++) high |= (unsigned char)p[k] >= 0x80;
        memcpy(buf + len, p, pl);
        len += pl;
    }
    buf[len] = '\0';
    char *out = xmalloc(len + 1);
    memcpy(out, buf, len + 1);
    /* a window may start or end inside a character (byte tokens): stored as UTF-8 always */
    return high ? utf8_make_valid(out) : out;
slow:
    return sae_index_window_text_ref(tk, ids, n);
}

/* The example windows of one chunk, in one arena: (cap, 2W+1) tokens and activations, their
 * texts, and how many non-activating windows each feature has kept. Both the fused stream
 * and its twin build their windows here; only where the activations come from differs
 * (the twin's full encode of the sequence, the stream's records scattered into a dense
 * (T, n) block). The windows themselves are checked against a brute force in
 * tests/unit/test_sae_index.c. */
struct examples {
    int                       n, WN;
    struct sae_index_example *ex;
    int                      *tok, *nonact_kept;
    float                    *act;
    char                    **text;
};

static void examples_alloc(struct examples *E, int cap, int n_feat, int window) {
    cap = cap > 0 ? cap : 1;
    E->n = 0;
    E->WN = 2 * window + 1;
    E->ex = xcalloc((size_t)cap, sizeof *E->ex);
    E->tok = xmalloc((size_t)cap * E->WN * sizeof(int));
    E->act = xmalloc((size_t)cap * E->WN * sizeof(float));
    E->text = xcalloc((size_t)cap, sizeof *E->text);
    E->nonact_kept = xcalloc((size_t)(n_feat > 0 ? n_feat : 1), sizeof(int));
}

static void examples_release(struct examples *E) {
    if (E->text)
        for (int k = 0; k < E->n; k++) free(E->text[k]);
    free(E->text);
    free(E->tok);
    free(E->act);
    free(E->ex);
    free(E->nonact_kept);
}

/*
 * The window of pick pk (its token in sequence q at position t) from the sequence's
 * activations of its feature, acts[u * ld] for u < T: tokens and activations of positions
 * t - W .. t + W clipped to 1 .. T - 1 (BOS left out), and its text. A non-activating pick
 * is dropped when the feature fires anywhere in the window or already has n_nonact windows.
 */
static void examples_put(struct examples *E, const struct pick *pk, const float *acts, size_t ld,
                         const struct acts_corpus *c, const struct tok *tk, const int *ids,
                         const struct sae_index_params *p) {
    const int T = c->T, W = p->window;
    int64_t   q = pk->tok / T;
    int       t = (int)(pk->tok % T);
    if (pk->kind == PICK_NONACT && E->nonact_kept[pk->feat] >= p->n_nonact) return;
    int    lo = t - W < 1 ? 1 : t - W, hi = t + W > T - 1 ? T - 1 : t + W;
    int    nw = hi - lo + 1, any = 0;
    int   *wt = E->tok + (size_t)E->n * E->WN;
    float *wa = E->act + (size_t)E->n * E->WN;
    for (int u = 0; u < nw; u++) {
        wt[u] = c->tokens[(size_t)q * T + lo + u];
        wa[u] = acts[(size_t)(lo + u) * ld];
        any |= wa[u] > 0;
    }
    if (pk->kind == PICK_NONACT) {
        if (any) return;
        E->nonact_kept[pk->feat]++;
    }
    E->text[E->n] = sae_index_window_text(tk, wt, nw);
    E->ex[E->n] = (struct sae_index_example){
        .feature = ids[pk->feat],
        .kind = pk->kind == PICK_TOP        ? SAE_INDEX_TOP
                : pk->kind == PICK_INTERVAL ? SAE_INDEX_INTERVAL
                                            : SAE_INDEX_NONACT,
        .interval = pk->bin,
        .activation = wa[t - lo],
        .center = t - lo,
        .n = nw,
        .tokens = wt,
        .acts = wa,
        .text = E->text[E->n],
    };
    E->n++;
}

/* Encodes latents i0 .. i0+ni-1 of sequences [q0, q1) of the stored residuals X (n_seq, T, D)
 * into f ((q1 - q0) * T, ni). */
static void encode_seqs(const struct sae *s, const float *X, int T, int q0, int q1, int i0, int ni,
                        float *f) {
    const int D = s->cfg.d_in;
    sae_encode_range(s, f, X + (size_t)q0 * T * D, (q1 - q0) * T, i0, ni);
}

/* The twin's pass over the corpus: every firing of the chunk's latents, in token order, into
 * the statistics (pass 0) or the interval reservoirs (pass 1: it needs the final max). */
static void ref_pass(int pass, struct chunk *ch, const struct sae *s, const float *X,
                     const struct acts_corpus *c, int i0, int S, float *f,
                     const struct sae_index_params *p, struct rng *rng) {
    const int T = c->T;
    for (int q0 = 0; q0 < c->n_seq; q0 += ENC_SEQ) {
        int q1 = q0 + ENC_SEQ < c->n_seq ? q0 + ENC_SEQ : c->n_seq;
        encode_seqs(s, X, T, q0, q1, i0, S, f);
        for (int q = q0; q < q1; q++)
            for (int t = 1; t < T; t++) {
                const float *f_t = f + ((size_t)(q - q0) * T + t) * S;
                for (int j = 0; j < ch->n; j++) {
                    float a = f_t[ch->ids[j] - i0];
                    if (!(a > 0)) continue;
                    if (pass == 0) chunk_fire(ch, j, a, (int64_t)q * T + t, p->top_k, rng);
                    else chunk_interval(ch, j, a, (int64_t)q * T + t, p->bins, p->per_bin, rng);
                }
            }
    }
}

static int run_chunk(const struct sae_index_sink *sink, const struct sae *s, const float *X,
                     const struct acts_corpus *c, const struct tok *tk, const int *ids, int n,
                     const struct sae_index_params *p, struct rng *rng,
                     struct sae_index_result *res, struct ev_err *err) {
    const int T = c->T, K = p->bins, PB = p->per_bin;
    /* the chunk's ids are sorted: encode only the span they cover (S below is its width) */
    const int i0 = ids[0], S = ids[n - 1] - ids[0] + 1;
    struct chunk ch = {0};
    struct pick *picks = NULL;
    float *f = xmalloc((size_t)ENC_SEQ * T * S * sizeof(float));
    int    n_picks = 0, rc;
    struct examples         E = {0}; /* the chunk's windows */
    struct sae_index_stats *stats = NULL;
    chunk_alloc(&ch, ids, n, p);

    // pass A: counts, max, top-k, quantile reservoir; pass B: reservoirs per interval
    ref_pass(0, &ch, s, X, c, i0, S, f, p, rng);
    if (K > 0 && PB > 0) ref_pass(1, &ch, s, X, c, i0, S, f, p, rng);
    picks = chunk_picks(&ch, c, p, rng, &n_picks);
    qsort(picks, (size_t)n_picks, sizeof *picks, cmp_pick);

    examples_alloc(&E, n_picks, n, p->window);
    for (int k = 0, cur = -1; k < n_picks; k++) {
        int q = (int)(picks[k].tok / T);
        if (q != cur) {
            encode_seqs(s, X, T, q, q + 1, i0, S, f);
            cur = q;
        }
        examples_put(&E, &picks[k], f + ids[picks[k].feat] - i0, (size_t)S, c, tk, ids, p);
    }
    stats = chunk_stats(&ch, c);
    struct sae_index_chunk out_chunk = {ids, n, stats, E.ex, E.n};
    if ((rc = sink->put_chunk(sink->ctx, &out_chunk, err)) != EV_OK) goto out;
    res->n_examples += E.n;
    for (int j = 0; j < n; j++) res->n_alive += ch.count[j] > 0;
    rc = EV_OK;
out:
    examples_release(&E);
    free(stats);
    free(picks);
    free(f);
    chunk_release(&ch);
    return rc;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The sorted, de-duplicated feature ids of p (all of 0..S-1 without a subset). */
static int feature_list(const struct sae_index_params *p, int S, int **out, int *n_out,
                        struct ev_err *err) {
    int *ids, n_ids = 0;
    if (p->features) {
        ids = xmalloc((size_t)(p->n_features > 0 ? p->n_features : 1) * sizeof(int));
        for (int i = 0; i < p->n_features; i++) {
            if (p->features[i] < 0 || p->features[i] >= S) {
                free(ids);
                return ev_fail(err, EV_EFAIL, "feature id %d out of range: the SAE has %d "
                                              "latents (0..%d)", p->features[i], S, S - 1);
            }
            ids[n_ids++] = p->features[i];
        }
        qsort(ids, (size_t)n_ids, sizeof(int), cmp_int);
        int u = 0;
        for (int i = 0; i < n_ids; i++)
            if (!u || ids[u - 1] != ids[i]) ids[u++] = ids[i];
        n_ids = u;
    } else {
        ids = xmalloc((size_t)S * sizeof(int));
        for (int i = 0; i < S; i++) ids[i] = i;
        n_ids = S;
    }
    *out = ids;
    *n_out = n_ids;
    return EV_OK;
}

int sae_index_compute_ref(struct model *m, const struct sae *s, const char *hook_name,
                          const struct acts_corpus *c, const struct sae_index_params *p,
                          const struct sae_index_sink *sink, struct sae_index_result *res,
                          struct ev_err *err) {
    const int D = s->cfg.d_in, S = s->cfg.d_sae, T = c->T;
    float              *X = NULL;
    int                *ids = NULL, n_ids = 0;
    struct model_state *st = NULL;
    struct model_hook   h;
    int                 rc;
    res->n_tokens = (int64_t)c->n_seq * (T - 1);
    if ((rc = feature_list(p, S, &ids, &n_ids, err))) goto out;
    // the residuals, once
    if ((rc = model_hook_parse(m, hook_name, &h, err))) goto out;
    if ((rc = model_state_new(m, T, 0, &st, err))) goto out;
    X = xmalloc((size_t)c->n_seq * T * D * sizeof(float));
    struct progress bar;
    progress_init(&bar, "index: corpus", c->n_seq);
    for (int q = 0; q < c->n_seq; q++) {
        progress_tick(&bar, q > 0);
        if (ev_interrupted()) {
            progress_finish(&bar);
            rc = ev_fail(err, EV_EINTR, "interrupted while running the corpus");
            goto out;
        }
        if ((rc = model_forward_to_hook(st, c->tokens + (size_t)q * T, 0, T, h,
                                        X + (size_t)q * T * D, err)))
            goto out;
        if (sae_needs_centering(s, model_config(m)->model_type))
            sae_center_rows(X + (size_t)q * T * D, T, D, NULL);
    }
    progress_tick(&bar, c->n_seq > 0);
    progress_finish(&bar);
    const struct tok *tk = model_tokenizer(m);
    int n_chunks = (n_ids + CHUNK - 1) / CHUNK;
    res->chunks_total = n_chunks;
    int mine = 0;
    for (int ck = 0; ck < n_chunks; ck++) mine += !(p->shard_n > 1 && ck % p->shard_n != p->shard_k);
    progress_init(&bar, "index: features", (int64_t)mine);
    for (int ck = 0; ck < n_chunks; ck++) {
        if (p->shard_n > 1 && ck % p->shard_n != p->shard_k) continue;
        const int *cid = ids + (size_t)ck * CHUNK;
        int        cn = n_ids - ck * CHUNK < CHUNK ? n_ids - ck * CHUNK : CHUNK;
        int        done = 0;
        if ((rc = sink->chunk_done(sink->ctx, cid, cn, &done, err))) goto out;
        if (done) {
            res->chunks_skipped++;
            progress_tick(&bar, 1);
            continue;
        }
        if (ev_interrupted()) {
            progress_finish(&bar);
            rc = ev_fail(err, EV_EINTR, "interrupted after %d of %d chunks; rerun to resume",
                         res->chunks_done + res->chunks_skipped, n_chunks);
            goto out;
        }
        struct rng r;
        rng_seed(&r, p->seed * 1000003ULL + (uint64_t)ck);
        if ((rc = run_chunk(sink, s, X, c, tk, cid, cn, p, &r, res, err))) {
            progress_finish(&bar);
            goto out;
        }
        res->chunks_done++;
        progress_tick(&bar, 1);
        ev_log(EV_VERBOSE, "index: chunk %d/%d (features %d..%d) stored", ck + 1, n_chunks,
               cid[0], cid[cn - 1]);
    }
    progress_finish(&bar);
    rc = EV_OK;
out:
    model_state_free(st);
    free(X);
    free(ids);
    return rc;
}

// ---------------------------------------------------------------------------- the fused stream

/*
 * sae_index_compute: one pass over the corpus, a block of whole sequences at a time (about
 * BLOCK_ROWS rows): the forward to the hook, several sequences per pass so that its products
 * take many rows (model_forward_to_hook_batch, which stops at the hook), then per
 * chunk of features one (rows x span) encode tile, at once scanned for the firing latents,
 * which update the chunk's counts, sums, maxima, top-k heaps and quantile reservoirs and are
 * appended to an unlinked scratch file as (row, feature, activation) records. The (tokens x
 * d_sae) activation matrix and the corpus' residuals are never held: memory does not grow
 * with the corpus (the scratch file does, by 12 bytes per firing). A second pass over the
 * records fills the interval reservoirs (they need each feature's final max); the windows'
 * activations are read back from the records of their block. The random draws of each chunk
 * come in the order sae_index_compute_ref makes them, so both give the same index.
 */

/* rows per block: the encode tiles' height, and the forward's batch where the model's
 * context holds that many rows (products over 512 rows ran 1.5-1.9x the FLOP rate of 128-row
 * ones on this machine under load; sgemm with GPT-2-small's shapes, 2 threads; 1024-row
 * encode tiles took 0.39-0.40 s where 512-row ones took 0.44 in make bench's index row, for
 * 51 MB more peak RSS) */
#define BLOCK_ROWS 1024

struct rec {
    int32_t row; /* within its block: (q - q0) * T + t */
    int32_t j;   /* chunk-local feature */
    float   a;
};

struct work {
    int          ck, i0, span;
    struct chunk ch;
    struct rng   rng;
};

struct spill {
    FILE    *f;
    char     dir[512];
    int64_t  n;   /* records written */
    int64_t *off; /* (n_blocks * n_work + 1) record offsets, block-major */
};

static int spill_open(struct spill *sp, struct ev_err *err) {
    const char *d = getenv("TMPDIR");
    snprintf(sp->dir, sizeof sp->dir, "%s", d && *d ? d : "/tmp");
    char *path = xasprintf("%s/evalrun-index-XXXXXX", sp->dir);
    int   fd = mkstemp(path);
    if (fd < 0) {
        free(path);
        return ev_fail(err, EV_EFAIL, "index: cannot create a scratch file in %s: %s", sp->dir,
                       strerror(errno));
    }
    unlink(path);
    free(path);
    sp->f = fdopen(fd, "w+b");
    if (!sp->f) {
        close(fd);
        return ev_fail(err, EV_EFAIL, "index: cannot open a scratch file in %s: %s", sp->dir,
                       strerror(errno));
    }
    return EV_OK;
}

static int spill_io_fail(const struct spill *sp, const char *what, struct ev_err *err) {
    return ev_fail(err, EV_EFAIL, "index: %s the scratch file in %s failed: %s", what, sp->dir,
                   errno ? strerror(errno) : "short transfer");
}

/* Reads records [from, from + n) into buf. */
static int spill_read(struct spill *sp, int64_t from, int64_t n, struct rec *buf,
                      struct ev_err *err) {
    errno = 0;
    if (n == 0) return EV_OK;
    if (fseeko(sp->f, (off_t)(from * (int64_t)sizeof(struct rec)), SEEK_SET) != 0 ||
        fread(buf, sizeof(struct rec), (size_t)n, sp->f) != (size_t)n)
        return spill_io_fail(sp, "reading", err);
    return EV_OK;
}

/* The (rows x span) activations of latents i0 .. i0+span-1 for the prepared inputs xc
 * (rows, D) into f: the product only (bias and threshold are applied by the scan). */
static void encode_tile(const struct sae *s, float *f, const float *xc, int rows, int i0,
                        int span) {
    const int D = s->cfg.d_in, S = s->cfg.d_sae;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, span, D, 1.0f, xc, D,
                s->W_enc + i0, S, 0.0f, f, span);
}

/* Pass 1 over one chunk's tile: tile (rows, ld) holds the product (raw != 0: bias and
 * threshold still to apply) for latents i0 ..; rows of sequences q0 .. of T tokens. */
static int scan_tile(struct work *w, const struct sae *s, const float *tile, int ld, int raw,
                     int rows, int q0, int T, const struct sae_index_params *p, struct rec *out,
                     int *n_out) {
    struct chunk *ch = &w->ch;
    const int     n = ch->n, TK = p->top_k;
    const float  *b = s->b_enc, *th = s->threshold;
    int           no = 0;
    for (int r = 0; r < rows; r++) {
        int t = r % T;
        if (t == 0) continue;
        const float  *f_r = tile + (size_t)r * ld - w->i0;
        const int64_t tok = (int64_t)(q0 + r / T) * T + t;
        for (int j = 0; j < n; j++) {
            int   id = ch->ids[j];
            float a = f_r[id];
            if (raw) {
                float v = a + b[id];
                a = v > (th ? th[id] : 0.0f) ? v : 0.0f;
            }
            if (!(a > 0)) continue;
            chunk_fire(ch, j, a, tok, TK, &w->rng);
            out[no++] = (struct rec){r, j, a};
        }
    }
    *n_out = no;
    return EV_OK;
}

/* Pass 2: one record of chunk w in block order fills its interval reservoir. */
static void interval_add(struct work *w, const struct rec *rc, int64_t q0, int T,
                         const struct sae_index_params *p) {
    chunk_interval(&w->ch, rc->j, rc->a, q0 * T + rc->row, p->bins, p->per_bin, &w->rng);
}

/* The picks, windows and statistics of chunk wi, handed to the sink. dense: (T, n) zeros. */
static int finish_chunk(const struct sae_index_sink *sink, struct spill *sp, struct work *w,
                        int wi, int n_work, int spb, const struct acts_corpus *c,
                        const struct tok *tk, const struct sae_index_params *p, float *dense,
                        struct rec *rbuf, struct sae_index_result *res, struct ev_err *err) {
    const int     T = c->T, n = w->ch.n;
    struct chunk *ch = &w->ch;
    const int    *ids = ch->ids;
    struct pick  *picks = NULL;
    int           n_picks = 0, rc = EV_OK;
    struct examples         E = {0};
    struct sae_index_stats *stats = NULL;
    int64_t                   cur_q = -1, cur_lo = 0, cur_n = 0; /* records of cur_q in rbuf */
    picks = chunk_picks(ch, c, p, &w->rng, &n_picks);
    {
        struct pick *tmp = xmalloc((size_t)(n_picks > 0 ? n_picks : 1) * sizeof *tmp);
        sort_picks(picks, n_picks, tmp);
        free(tmp);
    }
    examples_alloc(&E, n_picks, n, p->window);
    for (int k = 0; k < n_picks; k++) {
        const struct pick *pk = &picks[k];
        int64_t q = pk->tok / T;
        if (q != cur_q) {
            /* clear the previous sequence's activations, then scatter this one's */
            for (int64_t i = 0; i < cur_n; i++)
                dense[(size_t)(rbuf[i].row - cur_lo) * n + rbuf[i].j] = 0.0f;
            int64_t blk = q / spb, slot = blk * n_work + wi;
            int64_t from = sp->off[slot], cnt = sp->off[slot + 1] - from;
            if ((rc = spill_read(sp, from, cnt, rbuf, err))) goto out;
            /* keep this sequence's records only (rows (q - q0) * T ..) */
            int64_t lo = (q - blk * spb) * T, m = 0;
            for (int64_t i = 0; i < cnt; i++)
                if (rbuf[i].row >= lo && rbuf[i].row < lo + T) rbuf[m++] = rbuf[i];
            for (int64_t i = 0; i < m; i++)
                dense[(size_t)(rbuf[i].row - lo) * n + rbuf[i].j] = rbuf[i].a;
            cur_q = q, cur_lo = lo, cur_n = m;
        }
        examples_put(&E, pk, dense + pk->feat, (size_t)n, c, tk, ids, p);
    }
    stats = chunk_stats(ch, c);
    {
        struct sae_index_chunk out_chunk = {ids, n, stats, E.ex, E.n};
        if ((rc = sink->put_chunk(sink->ctx, &out_chunk, err)) != EV_OK) goto out;
    }
    res->n_examples += E.n;
    for (int j = 0; j < n; j++) res->n_alive += ch->count[j] > 0;
out:
    if (rc == EV_OK) /* leave dense zero for the next chunk (after an error it is not reused) */
        for (int64_t i = 0; i < cur_n; i++)
            dense[(size_t)(rbuf[i].row - cur_lo) * n + rbuf[i].j] = 0.0f;
    examples_release(&E);
    free(stats);
    free(picks);
    return rc;
}

int sae_index_compute(struct model *m, const struct sae *s, const char *hook_name,
                      const struct acts_corpus *c, const struct sae_index_params *p,
                      const struct sae_index_sink *sink, struct sae_index_result *res,
                      struct ev_err *err) {
    const int D = s->cfg.d_in, S = s->cfg.d_sae, T = c->T;
    const int topk = s->cfg.arch == SAE_ARCH_TOPK;
    const int spb = BLOCK_ROWS / T > 1 ? BLOCK_ROWS / T : 1, rows_max = spb * T;
    const int n_blocks = (c->n_seq + spb - 1) / spb;
    int                *ids = NULL, n_ids = 0, n_work = 0, max_span = 1, max_n = 1, rc;
    struct work        *work = NULL;
    struct model_state *st = NULL;
    struct model_hook   h;
    struct spill        sp = {0};
    float              *X = NULL, *XC = NULL, *F = NULL, *dense = NULL;
    struct rec         *rbuf = NULL;
    int64_t             rbuf_cap = 0;
    struct progress     bar;
    progress_init(&bar, "index: corpus", c->n_seq);
    res->n_tokens = (int64_t)c->n_seq * (T - 1);
    if ((rc = feature_list(p, S, &ids, &n_ids, err))) goto out;
    if ((rc = model_hook_parse(m, hook_name, &h, err))) goto out;
    // the chunks this run computes
    const int n_chunks = (n_ids + CHUNK - 1) / CHUNK;
    res->chunks_total = n_chunks;
    work = xcalloc((size_t)(n_chunks > 0 ? n_chunks : 1), sizeof *work);
    for (int ck = 0; ck < n_chunks; ck++) {
        if (p->shard_n > 1 && ck % p->shard_n != p->shard_k) continue;
        const int *cid = ids + (size_t)ck * CHUNK;
        int        cn = n_ids - ck * CHUNK < CHUNK ? n_ids - ck * CHUNK : CHUNK;
        int        done = 0;
        if ((rc = sink->chunk_done(sink->ctx, cid, cn, &done, err))) goto out;
        if (done) {
            res->chunks_skipped++;
            continue;
        }
        struct work *w = &work[n_work++];
        w->ck = ck;
        w->i0 = cid[0];
        w->span = cid[cn - 1] - cid[0] + 1;
        if (w->span > max_span) max_span = w->span;
        if (cn > max_n) max_n = cn;
        chunk_alloc(&w->ch, cid, cn, p);
        rng_seed(&w->rng, p->seed * 1000003ULL + (uint64_t)ck);
    }
    if (n_work == 0) {
        rc = EV_OK;
        goto out;
    }
    if ((rc = spill_open(&sp, err))) goto out;
    sp.off = xcalloc((size_t)n_blocks * n_work + 1, sizeof(int64_t));
    /* sequences per forward: the block's, as far as the model's context holds them */
    const int per_fwd = spb < model_config(m)->seq_len / T ? spb : model_config(m)->seq_len / T;
    if ((rc = model_state_new(m, per_fwd * T, MODEL_STATE_LAST_LOGITS, &st, err))) goto out;
    X = xmalloc((size_t)rows_max * D * sizeof(float));
    XC = xmalloc((size_t)rows_max * D * sizeof(float));
    F = xmalloc((size_t)rows_max * (topk ? S : max_span) * sizeof(float));
    rbuf_cap = (int64_t)rows_max * max_n;
    rbuf = xmalloc((size_t)rbuf_cap * sizeof *rbuf);
    // pass 1: forward, encode, statistics, records
    const int   center = sae_needs_centering(s, model_config(m)->model_type);
    const float nf = (float)s->cfg.norm_factor;
    for (int blk = 0; blk < n_blocks; blk++) {
        if (ev_interrupted()) {
            rc = ev_fail(err, EV_EINTR, "interrupted while running the corpus");
            goto out;
        }
        int q0 = blk * spb, q1 = q0 + spb < c->n_seq ? q0 + spb : c->n_seq, rows = (q1 - q0) * T;
        double t0 = now_seconds();
        for (int q = q0; q < q1; q += per_fwd) {
            int    nq = q1 - q < per_fwd ? q1 - q : per_fwd;
            float *x = X + (size_t)(q - q0) * T * D;
            if ((rc = model_forward_to_hook_batch(st, c->tokens + (size_t)q * T, nq, T, h, x,
                                                  err)))
                goto out;
            if (center) sae_center_rows(x, nq * T, D, NULL);
        }
        double t1 = now_seconds();
        res->t_forward += t1 - t0;
        if (topk) {
            sae_encode(s, F, X, rows);
        } else {
            for (size_t k = 0; k < (size_t)rows * D; k++)
                XC[k] = X[k] * nf - (s->cfg.apply_b_dec_to_input ? s->b_dec[k % D] : 0.0f);
        }
        for (int wi = 0; wi < n_work; wi++) {
            struct work *w = &work[wi];
            int          n_rec = 0;
            if (topk) {
                t1 = now_seconds();
                scan_tile(w, s, F + w->i0, S, 0, rows, q0, T, p, rbuf, &n_rec);
            } else {
                encode_tile(s, F, XC, rows, w->i0, w->span);
                double t2 = now_seconds();
                res->t_encode += t2 - t1;
                t1 = t2;
                scan_tile(w, s, F, w->span, 1, rows, q0, T, p, rbuf, &n_rec);
            }
            errno = 0;
            if (n_rec && fwrite(rbuf, sizeof *rbuf, (size_t)n_rec, sp.f) != (size_t)n_rec) {
                rc = spill_io_fail(&sp, "writing", err);
                goto out;
            }
            sp.n += n_rec;
            sp.off[(size_t)blk * n_work + wi + 1] = sp.n;
            double t2 = now_seconds();
            res->t_scan += t2 - t1;
            t1 = t2;
        }
        progress_tick(&bar, q1 - q0);
    }
    progress_finish(&bar);
    errno = 0;
    if (fflush(sp.f) != 0) {
        rc = spill_io_fail(&sp, "writing", err);
        goto out;
    }
    // pass 2: the interval reservoirs, in token order per chunk
    double t_pass2 = now_seconds();
    if (p->bins > 0 && p->per_bin > 0)
        for (int blk = 0; blk < n_blocks; blk++)
            for (int wi = 0; wi < n_work; wi++) {
                int64_t from = sp.off[(size_t)blk * n_work + wi];
                int64_t cnt = sp.off[(size_t)blk * n_work + wi + 1] - from;
                if ((rc = spill_read(&sp, from, cnt, rbuf, err))) goto out;
                for (int64_t i = 0; i < cnt; i++)
                    interval_add(&work[wi], &rbuf[i], (int64_t)blk * spb, T, p);
            }
    // the examples, chunk by chunk to the sink
    double t_ex = now_seconds();
    res->t_intervals += t_ex - t_pass2;
    const struct tok *tk = model_tokenizer(m);
    dense = xcalloc((size_t)T * max_n, sizeof(float));
    progress_init(&bar, "index: features", n_work);
    for (int wi = 0; wi < n_work; wi++) {
        struct work *w = &work[wi];
        if (ev_interrupted()) {
            rc = ev_fail(err, EV_EINTR, "interrupted after %d of %d chunks; rerun to resume",
                         res->chunks_done + res->chunks_skipped, n_chunks);
            goto out;
        }
        if ((rc = finish_chunk(sink, &sp, w, wi, n_work, spb, c, tk, p, dense, rbuf, res, err)))
            goto out;
        res->chunks_done++;
        progress_tick(&bar, 1);
        ev_log(EV_VERBOSE, "index: chunk %d/%d (features %d..%d) stored", w->ck + 1, n_chunks,
               w->ch.ids[0], w->ch.ids[w->ch.n - 1]);
    }
    res->t_examples += now_seconds() - t_ex;
    rc = EV_OK;
out:
    progress_finish(&bar);
    for (int wi = 0; wi < n_work; wi++) chunk_release(&work[wi].ch);
    free(work);
    if (sp.f) fclose(sp.f);
    free(sp.off);
    model_state_free(st);
    free(X);
    free(XC);
    free(F);
    free(dense);
    free(rbuf);
    free(ids);
    return rc;
}
