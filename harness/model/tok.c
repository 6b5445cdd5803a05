/*
 * tok — tokenizers (see tok.h). Sections:
 *   - a string -> int hash map and a pair -> merge map (open addressing);
 *   - llama2.c tokenizer.bin: load, encode (run.c's algorithm), pieces;
 *   - byte-level BPE (GPT-2 encoder.json + vocab.bpe, or tokenizer.json) with the
 *     pre-tokenizer regex run by rx (PCRE2), and SentencePiece-style tokenizer.json BPE;
 *   - decode and tok_load's dispatch on the path.
 */
#include "model/tok.h"

#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/rx.h"
#include "base/utf8.h"

/* ---------------------------------------------------------------------------------------- */
/* string -> int map: keys are (pointer, length) borrowed from the tokenizer's storage */

struct strmap {
    const char **key;  /* (cap) */
    int         *klen; /* (cap) */
    int         *val;  /* (cap) */
    size_t       cap, n;
};

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void strmap_init(struct strmap *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    m->cap  = cap;
    m->n    = 0;
    m->key  = xcalloc(cap, sizeof *m->key);
    m->klen = xcalloc(cap, sizeof *m->klen);
    m->val  = xcalloc(cap, sizeof *m->val);
}

static void strmap_release(struct strmap *m) {
    free(m->key);
    free(m->klen);
    free(m->val);
    memset(m, 0, sizeof *m);
}

/* Returns the value of key, or -1. */
static int strmap_get(const struct strmap *m, const char *k, size_t n) {
    if (!m->cap) return -1;
    size_t i = (size_t)hash_bytes(k, n) & (m->cap - 1);
    while (m->key[i]) {
        if ((size_t)m->klen[i] == n && memcmp(m->key[i], k, n) == 0) return m->val[i];
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

/* Inserts key -> val unless the key is present (the first one wins). k must stay valid. */
static void strmap_put(struct strmap *m, const char *k, size_t n, int val) {
    if ((m->n + 1) * 2 > m->cap) {
        struct strmap bigger;
        strmap_init(&bigger, m->cap);
        for (size_t i = 0; i < m->cap; i++)
            if (m->key[i]) strmap_put(&bigger, m->key[i], (size_t)m->klen[i], m->val[i]);
        strmap_release(m);
        *m = bigger;
    }
    size_t i = (size_t)hash_bytes(k, n) & (m->cap - 1);
    while (m->key[i]) {
        if ((size_t)m->klen[i] == n && memcmp(m->key[i], k, n) == 0) return;
        i = (i + 1) & (m->cap - 1);
    }
    m->key[i]  = k;
    m->klen[i] = (int)n;
    m->val[i]  = val;
    m->n++;
}

/* (id a, id b) -> (rank, merged id) */
struct pairmap {
    uint64_t *key; /* (cap) a << 32 | b, plus 1 so that 0 means empty */
    int      *rank, *merged;
    size_t    cap, n;
};

static void pairmap_init(struct pairmap *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    m->cap    = cap;
    m->n      = 0;
    m->key    = xcalloc(cap, sizeof *m->key);
    m->rank   = xcalloc(cap, sizeof *m->rank);
    m->merged = xcalloc(cap, sizeof *m->merged);
}

static void pairmap_release(struct pairmap *m) {
    free(m->key);
    free(m->rank);
    free(m->merged);
    memset(m, 0, sizeof *m);
}

static uint64_t pair_key(int a, int b) {
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

static size_t pair_slot(uint64_t k, size_t cap) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k & (cap - 1);
}

/* Returns the rank of the merge (a, b) and its result in *merged, or -1. */
static int pairmap_get(const struct pairmap *m, int a, int b, int *merged) {
    if (!m->cap) return -1;
    uint64_t k = pair_key(a, b);
    size_t   i = pair_slot(k, m->cap);
    while (m->key[i]) {
        if (m->key[i] == k) {
            *merged = m->merged[i];
            return m->rank[i];
        }
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

/* Keeps the first (lowest-rank) entry for a pair. */
static void pairmap_put(struct pairmap *m, int a, int b, int rank, int merged) {
    if ((m->n + 1) * 2 > m->cap) {
        struct pairmap bigger;
        pairmap_init(&bigger, m->cap);
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->key[i]) continue;
            uint64_t k = m->key[i];
            size_t   j = pair_slot(k, bigger.cap);
            while (bigger.key[j]) j = (j + 1) & (bigger.cap - 1);
            bigger.key[j] = k, bigger.rank[j] = m->rank[i], bigger.merged[j] = m->merged[i];
            bigger.n++;
        }
        pairmap_release(m);
        *m = bigger;
    }
    uint64_t k = pair_key(a, b);
    size_t   i = pair_slot(k, m->cap);
    while (m->key[i]) {
        if (m->key[i] == k) return;
        i = (i + 1) & (m->cap - 1);
    }
    m->key[i] = k, m->rank[i] = rank, m->merged[i] = merged;
    m->n++;
}

/* ---------------------------------------------------------------------------------------- */
/* the tokenizer */

enum tok_kind {
    TOK_KIND_LLAMA2C, /* llama2.c tokenizer.bin: score-ordered merges over pieces */
    TOK_KIND_BYTELEVEL, /* byte-level BPE (GPT-2 family) */
    TOK_KIND_SPM,     /* SentencePiece-style BPE from tokenizer.json (▁, byte fallback) */
};

enum split_behavior {
    SPLIT_ISOLATED,      /* matches and the gaps between them are pieces */
    SPLIT_REMOVED,       /* only the gaps are pieces */
    SPLIT_MERGED_PREV,   /* each match joins the gap before it */
    SPLIT_MERGED_NEXT,   /* each match starts the piece after it */
};

/* A pre-tokenizer step: split every piece by a regex (HF Split, ByteLevel's GPT-2 regex,
 * Digits, Metaspace's split on ▁). */
struct pretok {
    struct rx          *rx;
    enum split_behavior behavior;
};

/* A normalizer step, applied to each text segment between added tokens, in order. */
enum norm_kind {
    NORM_PREPEND, /* a prepended to a non-empty segment */
    NORM_REPLACE, /* every a replaced by b */
};

struct norm {
    enum norm_kind kind;
    char          *a, *b;
    int            if_missing; /* NORM_PREPEND: only when the segment does not start with a */
    int            first_only; /* NORM_PREPEND: only for the segment at the start of the text */
};

#define TOK_MAX_STEPS 8

struct tok {
    enum tok_kind  kind;
    int            n_vocab;
    char         **key;       /* (n_vocab) the vocabulary's own spelling, NUL-terminated */
    int           *key_len;   /* (n_vocab) */
    char         **piece;     /* (n_vocab) the bytes a token stands for, NUL-terminated */
    int           *piece_len; /* (n_vocab) */
    float         *score;     /* (n_vocab) llama2.c only */
    struct strmap  vocab;     /* key -> id */
    struct pairmap merges;    /* BPE merges by id: rank and result */
    int            bos, eos, unk;
    int            max_token_length; /* llama2.c */
    int            byte_fallback;    /* SPM: <0xXX> tokens for characters not in the vocab */
    int            byte_id[256];     /* id of the <0xXX> token for each byte, or -1 */
    int            ignore_merges;    /* a pre-token found whole in the vocabulary is one token */
    int            byte_sym[256];    /* byte-level: id of the one-character token of each byte */
    int            spm_strip_lead;   /* decode strips one leading space at the start */
    struct norm    norm[TOK_MAX_STEPS];
    int            n_norm;
    struct pretok  pretok[TOK_MAX_STEPS];
    int            n_pretok;
    int           *added;    /* (n_added) ids matched verbatim before anything else, longest
                                content first */
    int            n_added;
    unsigned char  added_first[256]; /* 1 for a byte that starts some added token */
};

static struct tok *tok_alloc(int n_vocab) {
    struct tok *t = xcalloc(1, sizeof *t);
    t->n_vocab    = n_vocab;
    t->key        = xcalloc((size_t)n_vocab, sizeof *t->key);
    t->key_len    = xcalloc((size_t)n_vocab, sizeof *t->key_len);
    t->piece      = xcalloc((size_t)n_vocab, sizeof *t->piece);
    t->piece_len  = xcalloc((size_t)n_vocab, sizeof *t->piece_len);
    t->bos = t->eos = t->unk = -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = t->byte_sym[b] = -1;
    return t;
}

void tok_free(struct tok *t) {
    if (!t) return;
    for (int i = 0; i < t->n_vocab; i++) {
        if (t->piece[i] != t->key[i]) free(t->piece[i]);
        free(t->key[i]);
    }
    free(t->key);
    free(t->key_len);
    free(t->piece);
    free(t->piece_len);
    free(t->score);
    strmap_release(&t->vocab);
    pairmap_release(&t->merges);
    for (int i = 0; i < t->n_pretok; i++) rx_free(t->pretok[i].rx);
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].a);
        free(t->norm[i].b);
    }
    free(t->added);
    free(t);
}

int tok_vocab_size(const struct tok *t) { return t->n_vocab; }
int tok_bos(const struct tok *t) { return t->bos; }
int tok_eos(const struct tok *t) { return t->eos; }

/* An id list that grows. */
struct idbuf {
    int   *v;
    size_t n, cap;
};

static void idbuf_push(struct idbuf *b, int id) {
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->v   = xrealloc(b->v, b->cap * sizeof *b->v);
    }
    b->v[b->n++] = id;
}

/* Parses "<0xHH>" (exactly, upper- or lower-case hex); returns the byte or -1. */
static int parse_byte_piece(const char *s, int n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int  d = c >= '0' && c <= '9'   ? c - '0'
                 : c >= 'A' && c <= 'F' ? c - 'A' + 10
                 : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                        : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* ---------------------------------------------------------------------------------------- */
/* llama2.c tokenizer.bin */

static int rd_i32(const unsigned char *p) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                 (uint32_t)p[3] << 24;
    int32_t  s;
    memcpy(&s, &v, sizeof s);
    return s;
}

static float rd_f32(const unsigned char *p) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                 (uint32_t)p[3] << 24;
    float    f;
    memcpy(&f, &v, sizeof f);
    return f;
}

/*
 * Format: int32 max_token_length, then per token: float32 score, int32 len, len bytes. The
 * vocabulary size is not stored: the file holds tokens until its end. Validates every record.
 */
int tok_load_llama2c_mem(const void *data, size_t size, const char *what, struct tok **out,
                         struct ev_err *err) {
    const unsigned char *p   = data;
    struct tok          *t   = NULL;
    int                  rc  = EV_EFAIL;
    size_t               off = 4;
    int                  n   = 0;
    if (size < 4) {
        rc = ev_fail(err, EV_EFAIL, "%s: %zu bytes, too short for a llama2.c tokenizer.bin (its "
                                    "header alone is 4 bytes)", what, size);
        goto out;
    }
    int max_len = rd_i32(p);
    if (max_len <= 0 || max_len > 4096) {
        rc = ev_fail(err, EV_EFAIL,
                     "%s: not a llama2.c tokenizer.bin (max_token_length %d, expected 1..4096)",
                     what, max_len);
        goto out;
    }
    /* first pass: count and validate records */
    while (off < size) {
        if (size - off < 8) {
            rc = ev_fail(err, EV_EFAIL, "%s: truncated at token %d (offset %zu)", what, n, off);
            goto out;
        }
        int len = rd_i32(p + off + 4);
        if (len < 0 || len > max_len || (size_t)len > size - off - 8) {
            rc = ev_fail(err, EV_EFAIL,
                         "%s: token %d at offset %zu has length %d (expected 0..%d within the file)",
                         what, n, off, len, max_len);
            goto out;
        }
        off += 8 + (size_t)len;
        n++;
    }
    if (n < 3) {
        rc = ev_fail(err, EV_EFAIL, "%s: only %d tokens (expected at least <unk>, <s>, </s>)",
                     what, n);
        goto out;
    }
    t                   = tok_alloc(n);
    t->kind             = TOK_KIND_LLAMA2C;
    t->max_token_length = max_len;
    t->score            = xcalloc((size_t)n, sizeof *t->score);
    t->bos              = 1;
    t->eos              = 2;
    t->unk              = 0;
    strmap_init(&t->vocab, (size_t)n);
    off = 4;
    for (int i = 0; i < n; i++) {
        int len       = rd_i32(p + off + 4);
        t->score[i]   = rd_f32(p + off);
        t->key[i]     = xmalloc((size_t)len + 1);
        memcpy(t->key[i], p + off + 8, (size_t)len);
        t->key[i][len] = '\0';
        /* llama2.c compares pieces as C strings: a piece is what precedes its first NUL */
        t->key_len[i] = (int)strlen(t->key[i]);
        off += 8 + (size_t)len;
        int b = parse_byte_piece(t->key[i], t->key_len[i]);
        if (b >= 0) {
            t->piece[i]     = xmalloc(2);
            t->piece[i][0]  = (char)b;
            t->piece[i][1]  = '\0';
            t->piece_len[i] = 1;
            if (t->byte_id[b] < 0) t->byte_id[b] = i;
        } else {
            t->piece[i]     = t->key[i];
            t->piece_len[i] = t->key_len[i];
        }
    }
    /* llama2.c looks pieces up by binary search over the sorted vocabulary; with duplicate
     * pieces (none in the shipped files) we take the lowest id */
    for (int i = 0; i < n; i++) strmap_put(&t->vocab, t->key[i], (size_t)t->key_len[i], i);
    *out = t;
    t    = NULL;
    rc   = EV_OK;
out:
    tok_free(t);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* merging: lowest (key, position) first, one pair at a time, as HF's BPE (Word::merge_all)
 * and llama2.c's loop (best score, leftmost) both do; a heap over a linked list of symbols
 * makes a word of n symbols O(n log n). */

struct mcand {
    double key; /* BPE: merge rank; llama2.c: -score of the merged piece */
    int    pos, left, right, merged;
};

struct mheap {
    struct mcand *v;
    size_t        n, cap;
};

static int mc_less(const struct mcand *a, const struct mcand *b) {
    return a->key < b->key || (a->key == b->key && a->pos < b->pos);
}

static void mheap_push(struct mheap *h, struct mcand c) {
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v   = xrealloc(h->v, h->cap * sizeof *h->v);
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!mc_less(&c, &h->v[p])) break;
        h->v[i] = h->v[p];
        i       = p;
    }
    h->v[i] = c;
}

static struct mcand mheap_pop(struct mheap *h) {
    struct mcand top  = h->v[0];
    struct mcand last = h->v[--h->n];
    size_t       i    = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct mcand *best = &last;
        if (l < h->n && mc_less(&h->v[l], best)) m = l, best = &h->v[l];
        if (r < h->n && mc_less(&h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i       = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* Whether symbols a, b merge; sets the merge's key and result. buf: scratch of at least
 * 2 * max_token_length + 1 bytes (llama2.c). */
static int can_merge(const struct tok *t, int a, int b, double *key, int *merged, char *buf) {
    if (t->kind == TOK_KIND_LLAMA2C) {
        int la = t->key_len[a], lb = t->key_len[b];
        if (la + lb > t->max_token_length) return 0;
        memcpy(buf, t->key[a], (size_t)la);
        memcpy(buf + la, t->key[b], (size_t)lb);
        int id = strmap_get(&t->vocab, buf, (size_t)(la + lb));
        /* run.c: best_score starts at -1e10 and must be beaten */
        if (id < 0 || !(t->score[id] > -1e10f)) return 0;
        *key    = -(double)t->score[id];
        *merged = id;
        return 1;
    }
    int r = pairmap_get(&t->merges, a, b, merged);
    if (r < 0) return 0;
    *key = r;
    return 1;
}

/* Merges sym[0..n) in place to the final tokens and appends them to ob. */
static void merge_symbols(const struct tok *t, int *sym, size_t n, struct idbuf *ob) {
    if (n <= 1) {
        if (n == 1) idbuf_push(ob, sym[0]);
        return;
    }
    int         *next = xmalloc(n * sizeof *next), *prev = xmalloc(n * sizeof *prev);
    char        *buf  = xmalloc((size_t)(t->max_token_length > 0 ? t->max_token_length : 1) * 2 + 2);
    struct mheap h    = {0};
    struct mcand c;
    for (size_t i = 0; i < n; i++) {
        next[i] = i + 1 < n ? (int)i + 1 : -1;
        prev[i] = (int)i - 1;
        if (i + 1 < n && can_merge(t, sym[i], sym[i + 1], &c.key, &c.merged, buf)) {
            c.pos = (int)i, c.left = sym[i], c.right = sym[i + 1];
            mheap_push(&h, c);
        }
    }
    while (h.n) {
        c     = mheap_pop(&h);
        int p = c.pos, r = next[p];
        /* stale: the left symbol changed, or its right neighbour did (a merged-away symbol
         * is never a left end again: it has no way back into the list) */
        if (sym[p] != c.left || r < 0 || sym[r] != c.right || prev[p] == -2) continue;
        sym[p]  = c.merged;
        next[p] = next[r];
        if (next[r] >= 0) prev[next[r]] = p;
        prev[r] = -2; /* dead */
        sym[r]  = -1;
        if (prev[p] >= 0 && can_merge(t, sym[prev[p]], sym[p], &c.key, &c.merged, buf)) {
            c.pos = prev[p], c.left = sym[prev[p]], c.right = sym[p];
            mheap_push(&h, c);
        }
        if (next[p] >= 0 && can_merge(t, sym[p], sym[next[p]], &c.key, &c.merged, buf)) {
            c.pos = p, c.left = sym[p], c.right = sym[next[p]];
            mheap_push(&h, c);
        }
    }
    for (int i = 0; i >= 0; i = next[i]) idbuf_push(ob, sym[i]);
    free(h.v);
    free(buf);
    free(next);
    free(prev);
}

/*
 * llama2.c run.c encode(): BOS, a dummy-prefix " " for non-empty text, one token per UTF-8
 * code point found in the vocabulary (else its bytes as <0xXX> tokens at id byte + 3), then
 * merge the adjacent pair whose concatenation is the best-scoring vocabulary entry (leftmost
 * on ties) until none is. run.c rescans all pairs per merge (O(n^2)); merge_symbols gives the
 * same order with a heap.
 */
static void encode_llama2c(const struct tok *t, const char *text, int add_bos,
                           struct idbuf *ob) {
    struct idbuf sy = {0};
    size_t       slen = strlen(text);
    char         buf[8];
    if (add_bos) idbuf_push(&sy, t->bos);
    if (text[0]) {
        int sp = strmap_get(&t->vocab, " ", 1);
        if (sp >= 0) idbuf_push(&sy, sp);
    }
    size_t blen = 0;
    for (size_t i = 0; i < slen; i++) {
        unsigned char c = (unsigned char)text[i];
        if ((c & 0xC0) != 0x80) blen = 0;
        buf[blen++] = (char)c;
        unsigned char nx = i + 1 < slen ? (unsigned char)text[i + 1] : 0;
        if ((nx & 0xC0) == 0x80 && blen < 4) continue;
        int id = strmap_get(&t->vocab, buf, blen);
        if (id >= 0) {
            idbuf_push(&sy, id);
        } else {
            for (size_t k = 0; k < blen; k++) {
                int bid = (unsigned char)buf[k] + 3;
                idbuf_push(&sy, bid < t->n_vocab ? bid : t->unk);
            }
        }
        blen = 0;
    }
    merge_symbols(t, sy.v, sy.n, ob);
    free(sy.v);
}

/* ---------------------------------------------------------------------------------------- */
/* BPE (byte-level and SentencePiece-style) */

static size_t utf8_len(unsigned char c) {
    return c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4
                                                                                              : 1;
}

/* GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68
 * (0x00-0x20, 0x7F-0xA0, 0xAD) to U+0100 upwards in byte order. */
static uint32_t byte_to_cp(int b) {
    if (b <= 0x20) return 256 + (uint32_t)b;
    if (b >= 0x7F && b <= 0xA0) return 256 + 33 + (uint32_t)(b - 0x7F);
    if (b == 0xAD) return 256 + 33 + 34;
    return (uint32_t)b;
}

/* The inverse of byte_to_cp, or -1 for a code point that stands for no byte. */
static int cp_to_byte(uint32_t cp) {
    if (cp < 256) return (cp > 0x20 && (cp < 0x7F || cp > 0xA0) && cp != 0xAD) ? (int)cp : -1;
    if (cp < 256 + 33) return (int)(cp - 256);
    if (cp < 256 + 33 + 34) return (int)(cp - 256 - 33 + 0x7F);
    if (cp == 256 + 33 + 34) return 0xAD;
    return -1;
}

/* Encodes one pre-token (after normalisation) to ids. */
static void bpe_word(const struct tok *t, const char *w, size_t n, struct idbuf *ob,
                     struct sbuf *scratch) {
    struct idbuf sy = {0};
    if (t->kind == TOK_KIND_BYTELEVEL) {
        if (t->ignore_merges) {
            scratch->len = 0;
            char u[4];
            for (size_t i = 0; i < n; i++)
                sbuf_add(scratch, u, (size_t)utf8_put(u, byte_to_cp((unsigned char)w[i])));
            int id = strmap_get(&t->vocab, scratch->buf ? scratch->buf : "", scratch->len);
            if (id >= 0) {
                idbuf_push(ob, id);
                return;
            }
        }
        for (size_t i = 0; i < n; i++) {
            int id = t->byte_sym[(unsigned char)w[i]];
            if (id < 0) id = t->unk;
            if (id >= 0) idbuf_push(&sy, id); /* HF drops what it cannot map without unk */
        }
    } else {
        if (t->ignore_merges) {
            int id = strmap_get(&t->vocab, w, n);
            if (id >= 0) {
                idbuf_push(ob, id);
                return;
            }
        }
        for (size_t i = 0; i < n;) {
            size_t k = utf8_len((unsigned char)w[i]);
            if (k > n - i) k = n - i;
            int id = strmap_get(&t->vocab, w + i, k);
            if (id >= 0) {
                idbuf_push(&sy, id);
            } else if (t->byte_fallback) {
                for (size_t j = 0; j < k; j++) {
                    int bid = t->byte_id[(unsigned char)w[i + j]];
                    if (bid < 0) bid = t->unk;
                    if (bid >= 0) idbuf_push(&sy, bid);
                }
            } else if (t->unk >= 0) {
                idbuf_push(&sy, t->unk);
            }
            i += k;
        }
    }
    merge_symbols(t, sy.v, sy.n, ob);
    free(sy.v);
}

struct span {
    size_t b, e;
};

struct spans {
    struct span *v;
    size_t       n, cap;
};

static void spans_push(struct spans *s, size_t b, size_t e) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v   = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n].b = b;
    s->v[s->n].e = e;
    s->n++;
}

/* Splits every span of in by one pre-tokenizer step into out. Each span is searched as a
 * string of its own (so lookarounds stop at its ends, as in HF). */
static int split_spans(const struct pretok *p, struct rx_match *m, const char *s,
                       const struct spans *in, struct spans *out, struct ev_err *err) {
    out->n = 0;
    for (size_t k = 0; k < in->n; k++) {
        const char *sub = s + in->v[k].b;
        size_t      len = in->v[k].e - in->v[k].b, off = 0, pending = 0;
        int         have_pending = 0; /* MERGED_NEXT: a piece starts at pending */
        while (off <= len) {
            size_t mb, me;
            int    found = off < len ? rx_search(p->rx, m, sub, len, off, &mb, &me, err) : 0;
            if (found < 0) return found;
            if (found && me == mb) { /* empty match: not a delimiter; look further on */
                size_t step = mb < len ? utf8_len((unsigned char)sub[mb]) : 1;
                found       = 0;
                for (size_t at = mb + step; at < len && !found; at += step) {
                    found = rx_search(p->rx, m, sub, len, at, &mb, &me, err);
                    if (found < 0) return found;
                    if (found && me == mb) {
                        found = 0;
                        step  = utf8_len((unsigned char)sub[mb]);
                        at    = mb;
                    }
                }
            }
            if (!found) {
                if (p->behavior == SPLIT_MERGED_NEXT && have_pending) {
                    spans_push(out, in->v[k].b + pending, in->v[k].b + len);
                } else if (off < len) {
                    spans_push(out, in->v[k].b + off, in->v[k].b + len);
                }
                break;
            }
            switch (p->behavior) {
            case SPLIT_ISOLATED:
                if (mb > off) spans_push(out, in->v[k].b + off, in->v[k].b + mb);
                spans_push(out, in->v[k].b + mb, in->v[k].b + me);
                break;
            case SPLIT_REMOVED:
                if (mb > off) spans_push(out, in->v[k].b + off, in->v[k].b + mb);
                break;
            case SPLIT_MERGED_PREV:
                spans_push(out, in->v[k].b + off, in->v[k].b + me);
                break;
            case SPLIT_MERGED_NEXT:
                if (have_pending) {
                    if (mb > pending) spans_push(out, in->v[k].b + pending, in->v[k].b + mb);
                } else if (mb > off) {
                    spans_push(out, in->v[k].b + off, in->v[k].b + mb);
                }
                pending      = mb;
                have_pending = 1;
                break;
            }
            off = me;
        }
    }
    return EV_OK;
}

/* Applies the normalizer steps to one segment; first: the segment starts the text. */
static void normalize(const struct tok *t, const char *s, size_t n, int first,
                      struct sbuf *out) {
    struct sbuf cur, nxt;
    sbuf_init(&cur);
    sbuf_init(&nxt);
    sbuf_add(&cur, s, n);
    for (int i = 0; i < t->n_norm; i++) {
        const struct norm *st = &t->norm[i];
        size_t             la = strlen(st->a);
        const char        *c  = cur.buf ? cur.buf : "";
        if (st->kind == NORM_PREPEND) {
            if (!cur.len || (st->first_only && !first)) continue;
            if (st->if_missing && cur.len >= la && memcmp(c, st->a, la) == 0) continue;
            nxt.len = 0;
            sbuf_add(&nxt, st->a, la);
            sbuf_add(&nxt, c, cur.len);
        } else {
            nxt.len = 0;
            sbuf_add(&nxt, "", 0);
            for (size_t j = 0; j < cur.len;) {
                if (la && cur.len - j >= la && memcmp(c + j, st->a, la) == 0) {
                    sbuf_adds(&nxt, st->b);
                    j += la;
                } else {
                    sbuf_add(&nxt, c + j, 1);
                    j++;
                }
            }
        }
        struct sbuf tmp = cur;
        cur             = nxt;
        nxt             = tmp;
    }
    out->len = 0;
    sbuf_add(out, cur.buf ? cur.buf : "", cur.len);
    sbuf_release(&cur);
    sbuf_release(&nxt);
}

static int encode_segment(const struct tok *t, const char *s, size_t n, int first,
                          struct rx_match **ms, struct idbuf *ob, struct ev_err *err) {
    struct sbuf  norm, scratch;
    struct spans a = {0}, b = {0};
    int          rc = EV_OK;
    sbuf_init(&norm);
    sbuf_init(&scratch);
    normalize(t, s, n, first, &norm);
    const char *ns = norm.buf ? norm.buf : "";
    if (norm.len) spans_push(&a, 0, norm.len);
    for (int i = 0; i < t->n_pretok && a.n; i++) {
        if ((rc = split_spans(&t->pretok[i], ms[i], ns, &a, &b, err)) < 0) goto out;
        struct spans tmp = a;
        a                = b;
        b                = tmp;
    }
    for (size_t i = 0; i < a.n; i++) bpe_word(t, ns + a.v[i].b, a.v[i].e - a.v[i].b, ob, &scratch);
out:
    free(a.v);
    free(b.v);
    sbuf_release(&norm);
    sbuf_release(&scratch);
    return rc;
}

/* Finds the first added token in s[from..n): sets *at and returns its index in t->added
 * (the longest at the earliest position), or -1. */
static int find_added(const struct tok *t, const char *s, size_t n, size_t from, size_t *at) {
    for (size_t i = from; i < n; i++) {
        if (!t->added_first[(unsigned char)s[i]]) continue;
        for (int k = 0; k < t->n_added; k++) { /* longest first */
            int id = t->added[k];
            size_t l = (size_t)t->key_len[id];
            if (l && n - i >= l && s[i] == t->key[id][0] && memcmp(s + i, t->key[id], l) == 0) {
                *at = i;
                return k;
            }
        }
    }
    return -1;
}

static int encode_bpe_text(const struct tok *t, const char *text, size_t len, struct idbuf *ob,
                           struct ev_err *err) {
    long bad = rx_utf8_invalid_at(text, len);
    if (bad >= 0)
        return ev_fail(err, EV_EFAIL, "text is not valid UTF-8 at byte %ld", bad);
    struct rx_match *ms[TOK_MAX_STEPS] = {0};
    int              rc = EV_OK;
    for (int i = 0; i < t->n_pretok; i++) ms[i] = rx_match_new(t->pretok[i].rx);
    size_t pos = 0;
    while (pos < len) {
        size_t at = len;
        int    k  = find_added(t, text, len, pos, &at);
        if ((rc = encode_segment(t, text + pos, at - pos, pos == 0, ms, ob, err)) < 0) goto out;
        if (k < 0) break;
        idbuf_push(ob, t->added[k]);
        pos = at + (size_t)t->key_len[t->added[k]];
    }
out:
    for (int i = 0; i < t->n_pretok; i++) rx_match_free(ms[i]);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* public: encode, decode, pieces */

int tok_encode(const struct tok *t, const char *text, int add_bos, int **ids, int *n,
               struct ev_err *err) {
    struct idbuf ob = {0};
    int          rc = EV_OK;
    *ids = NULL;
    *n   = 0;
    if (t->kind == TOK_KIND_LLAMA2C) {
        encode_llama2c(t, text, add_bos && t->bos >= 0, &ob);
    } else {
        if (add_bos && t->bos >= 0) idbuf_push(&ob, t->bos);
        rc = encode_bpe_text(t, text, strlen(text), &ob, err);
    }
    if (rc < 0) {
        free(ob.v);
        return rc;
    }
    if (!ob.v) ob.v = xmalloc(sizeof *ob.v);
    *ids = ob.v;
    *n   = (int)ob.n;
    return EV_OK;
}

const char *tok_piece(const struct tok *t, int prev, int id) {
    if (id < 0 || id >= t->n_vocab) return "";
    const char *p = t->piece[id];
    if (t->kind == TOK_KIND_LLAMA2C) {
        /* run.c: following BOS the sentencepiece decoder strips one leading space */
        if (prev == t->bos && p[0] == ' ') p++;
    } else if (t->spm_strip_lead) {
        if ((prev < 0 || prev == t->bos) && p[0] == ' ') p++;
    }
    return p;
}

int tok_decode(const struct tok *t, const int *ids, int n, char **text, struct ev_err *err) {
    struct sbuf sb;
    sbuf_init(&sb);
    *text = NULL;
    /* the start of the sequence counts as following BOS, as SentencePiece decodes */
    int prev = t->kind == TOK_KIND_LLAMA2C ? t->bos : -1;
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->n_vocab) {
            sbuf_release(&sb);
            return ev_fail(err, EV_EFAIL, "token id %d at position %d is outside the vocabulary "
                           "(0..%d)", id, i, t->n_vocab - 1);
        }
        if (id == t->bos || id == t->eos) {
            prev = id;
            continue;
        }
        const char *p  = tok_piece(t, prev, id);
        size_t      pl = (size_t)t->piece_len[id] - (size_t)(p - t->piece[id]);
        sbuf_add(&sb, p, pl);
        prev = id;
    }
    /* a byte token may leave part of a character: U+FFFD, as HF tokenizers' decode gives */
    *text = utf8_make_valid(sbuf_detach(&sb));
    return EV_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* loading BPE vocabularies */

static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int add_pretok(struct tok *t, const char *pattern, enum split_behavior behavior,
                      const char *what, struct ev_err *err) {
    if (t->n_pretok == TOK_MAX_STEPS)
        return ev_fail(err, EV_EFAIL, "%s: more than %d pre-tokenizer steps", what, TOK_MAX_STEPS);
    struct rx *r  = NULL;
    int        rc = rx_compile(pattern, 0, what, &r, err);
    if (rc < 0) return rc;
    t->pretok[t->n_pretok].rx       = r;
    t->pretok[t->n_pretok].behavior = behavior;
    t->n_pretok++;
    return EV_OK;
}

static int add_norm(struct tok *t, enum norm_kind kind, const char *a, const char *b,
                    int if_missing, int first_only, const char *what, struct ev_err *err) {
    if (t->n_norm == TOK_MAX_STEPS)
        return ev_fail(err, EV_EFAIL, "%s: more than %d normalizer steps", what, TOK_MAX_STEPS);
    struct norm *n = &t->norm[t->n_norm++];
    n->kind        = kind;
    n->a           = xstrdup(a);
    n->b           = xstrdup(b ? b : "");
    n->if_missing  = if_missing;
    n->first_only  = first_only;
    return EV_OK;
}

/* Escapes a literal for PCRE2. Caller frees. */
static char *rx_literal(const char *s) {
    struct sbuf sb;
    sbuf_init(&sb);
    sbuf_add(&sb, "", 0);
    for (; *s; s++) {
        if (strchr("\\^$.|?*+()[]{}", *s)) sbuf_add(&sb, "\\", 1);
        sbuf_add(&sb, s, 1);
    }
    return sbuf_detach(&sb);
}

/* Builds t->key/piece/vocab from a {"token": id} object. */
static int load_vocab_object(struct tok **out, const cJSON *vocab, const cJSON *added,
                             const char *what, struct ev_err *err) {
    long         max_id = -1;
    const cJSON *e;
    *out = NULL;
    if (!cJSON_IsObject(vocab))
        return ev_fail(err, EV_EFAIL, "%s: the vocabulary is not a JSON object of token: id", what);
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 16e6 ||
            e->valuedouble != (double)(long)e->valuedouble)
            return ev_fail(err, EV_EFAIL, "%s: vocabulary entry \"%s\" has no valid id (expected "
                           "an integer 0..16000000)", what, e->string);
        if ((long)e->valuedouble > max_id) max_id = (long)e->valuedouble;
    }
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const cJSON *c  = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 16e6 ||
            !cJSON_IsString(c))
            return ev_fail(err, EV_EFAIL, "%s: added_tokens entry without a valid id and content",
                           what);
        if ((long)id->valuedouble > max_id) max_id = (long)id->valuedouble;
    }
    if (max_id < 0) return ev_fail(err, EV_EFAIL, "%s: the vocabulary is empty", what);
    /* ids are dense in real files; a few far-off ids would make huge tables */
    long n_entries = (long)cJSON_GetArraySize(vocab) + cJSON_GetArraySize(added);
    if (max_id >= n_entries + 65536)
        return ev_fail(err, EV_EFAIL, "%s: token id %ld is far beyond the %ld entries (expected "
                       "ids 0..%ld with few gaps)", what, max_id, n_entries, n_entries - 1);
    struct tok *t = tok_alloc((int)max_id + 1);
    strmap_init(&t->vocab, (size_t)max_id + 1);
    cJSON_ArrayForEach(e, vocab) {
        int id = (int)e->valuedouble;
        if (!t->key[id]) {
            t->key[id]     = xstrdup(e->string);
            t->key_len[id] = (int)strlen(e->string);
        }
    }
    int n_added = cJSON_GetArraySize(added);
    t->added    = xcalloc((size_t)n_added + 1, sizeof *t->added);
    cJSON_ArrayForEach(e, added) {
        int         id = (int)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        const char *c  = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        free(t->key[id]);
        t->key[id]     = xstrdup(c);
        t->key_len[id] = (int)strlen(c);
        int dup        = 0;
        for (int k = 0; k < t->n_added; k++) dup |= t->added[k] == id;
        if (!dup && c[0]) t->added[t->n_added++] = id;
    }
    /* longest content first, so "<|im_end|>" wins over a prefix of it */
    for (int i = 1; i < t->n_added; i++)
        for (int j = i; j > 0 && t->key_len[t->added[j]] > t->key_len[t->added[j - 1]]; j--) {
            int tmp = t->added[j];
            t->added[j] = t->added[j - 1];
            t->added[j - 1] = tmp;
        }
    for (int k = 0; k < t->n_added; k++) t->added_first[(unsigned char)t->key[t->added[k]][0]] = 1;
    for (int i = 0; i < t->n_vocab; i++) {
        if (!t->key[i]) t->key[i] = xstrdup(""); /* a hole in the ids */
        else strmap_put(&t->vocab, t->key[i], (size_t)t->key_len[i], i);
    }
    *out = t;
    return EV_OK;
}

/* Adds one merge "a" + "b" at rank; merges naming unknown tokens are skipped. */
static int add_merge(struct tok *t, const char *a, size_t la, const char *b, size_t lb, int rank,
                     struct sbuf *scratch) {
    int ia = strmap_get(&t->vocab, a, la), ib = strmap_get(&t->vocab, b, lb);
    scratch->len = 0;
    sbuf_add(scratch, a, la);
    sbuf_add(scratch, b, lb);
    int im = strmap_get(&t->vocab, scratch->buf, scratch->len);
    if (ia < 0 || ib < 0 || im < 0) return 0;
    pairmap_put(&t->merges, ia, ib, rank, im);
    return 1;
}

/* Fills piece[] (what each token decodes to) and the byte tables. */
static void finish_vocab(struct tok *t) {
    for (int i = 0; i < t->n_vocab; i++) {
        int added = 0;
        for (int k = 0; k < t->n_added; k++) added |= t->added[k] == i;
        const char *k = t->key[i];
        int         b = parse_byte_piece(k, t->key_len[i]);
        if (added) {
            t->piece[i]     = t->key[i];
            t->piece_len[i] = t->key_len[i];
            continue;
        }
        if (t->kind == TOK_KIND_SPM && b >= 0) {
            if (t->byte_id[b] < 0) t->byte_id[b] = i;
            t->piece[i]     = xmalloc(2);
            t->piece[i][0]  = (char)b;
            t->piece[i][1]  = '\0';
            t->piece_len[i] = 1;
            continue;
        }
        struct sbuf sb;
        sbuf_init(&sb);
        sbuf_add(&sb, "", 0);
        for (int j = 0; j < t->key_len[i];) {
            size_t l = utf8_len((unsigned char)k[j]);
            if (l > (size_t)(t->key_len[i] - j)) l = (size_t)(t->key_len[i] - j);
            if (t->kind == TOK_KIND_SPM) {
                if (l == 3 && memcmp(k + j, "\xe2\x96\x81", 3) == 0) sbuf_add(&sb, " ", 1);
                else sbuf_add(&sb, k + j, l);
            } else {
                /* byte-level: the code point back to its byte */
                uint32_t cp = (unsigned char)k[j];
                if (l == 2) cp = (cp & 0x1F) << 6 | ((unsigned char)k[j + 1] & 0x3F);
                int byte = l <= 2 ? cp_to_byte(cp) : -1;
                if (byte >= 0) {
                    char c = (char)byte;
                    sbuf_add(&sb, &c, 1);
                } else {
                    sbuf_add(&sb, k + j, l);
                }
            }
            j += (int)l;
        }
        t->piece_len[i] = (int)sb.len;
        t->piece[i]     = sbuf_detach(&sb);
    }
    if (t->kind == TOK_KIND_BYTELEVEL) {
        for (int b = 0; b < 256; b++) {
            char u[4];
            int  l       = (int)utf8_put(u, byte_to_cp(b));
            t->byte_sym[b] = strmap_get(&t->vocab, u, (size_t)l);
        }
    }
}

static int id_of(const struct tok *t, const char *s) {
    return strmap_get(&t->vocab, s, strlen(s));
}

/* GPT-2's original encoder.json + vocab.bpe, encoded as OpenAI's encoder.py does: the GPT-2
 * regex, bytes_to_unicode, merges by rank; no special-token splitting. */
static int load_gpt2(const char *enc_path, const char *bpe_path, struct tok **out,
                     struct ev_err *err) {
    cJSON      *enc = NULL;
    char       *bpe = NULL;
    size_t      bpe_len = 0;
    struct tok *t = NULL;
    struct sbuf scratch;
    int         rc;
    sbuf_init(&scratch);
    *out = NULL;
    if ((rc = json_parse_file(enc_path, &enc, err)) < 0) goto out;
    if ((rc = load_vocab_object(&t, enc, NULL, enc_path, err)) < 0) goto out;
    t->kind = TOK_KIND_BYTELEVEL;
    if ((rc = file_read_all(bpe_path, &bpe, &bpe_len, err)) < 0) goto out;
    pairmap_init(&t->merges, 1024);
    int    rank = 0, skipped = 0;
    size_t line_no = 0;
    for (char *p = bpe; p < bpe + bpe_len;) {
        char *nl = memchr(p, '\n', (size_t)(bpe + bpe_len - p));
        char *e  = nl ? nl : bpe + bpe_len;
        line_no++;
        size_t l = (size_t)(e - p);
        if (l && p[l - 1] == '\r') l--;
        if (l && !(line_no == 1 && l >= 8 && memcmp(p, "#version", 8) == 0)) {
            char *sp = memchr(p, ' ', l);
            if (!sp) {
                rc = ev_fail(err, EV_EFAIL, "%s: line %zu is not a merge \"a b\"", bpe_path,
                             line_no);
                goto out;
            }
            if (add_merge(t, p, (size_t)(sp - p), sp + 1, l - (size_t)(sp - p) - 1, rank,
                          &scratch))
                rank++;
            else
                skipped++;
        }
        p = e + 1;
    }
    if (skipped)
        ev_debug("%s: skipped %d merges naming tokens not in %s", bpe_path, skipped, enc_path);
    if ((rc = add_pretok(t, GPT2_REGEX, SPLIT_ISOLATED, "GPT-2 regex", err)) < 0) goto out;
    finish_vocab(t);
    t->bos = t->eos = id_of(t, "<|endoftext|>");
    *out = t;
    t    = NULL;
    rc   = EV_OK;
out:
    json_free(enc);
    free(bpe);
    sbuf_release(&scratch);
    tok_free(t);
    return rc;
}

static const char *json_type_of(const cJSON *o) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : "(no type)";
}

static int json_flag(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* Reads a pattern {"Regex": r} or {"String": s} into a PCRE2 pattern; caller frees. */
static char *json_pattern(const cJSON *o) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const cJSON *r   = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    const cJSON *s   = cJSON_GetObjectItemCaseSensitive(pat, "String");
    if (cJSON_IsString(r)) return xstrdup(r->valuestring);
    if (cJSON_IsString(s)) return rx_literal(s->valuestring);
    return NULL;
}

static const char META[] = "\xe2\x96\x81"; /* ▁ U+2581 */

static int load_normalizer(struct tok *t, const cJSON *n, const char *what, struct ev_err *err) {
    if (!n || cJSON_IsNull(n)) return EV_OK;
    const char *ty = json_type_of(n);
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) {
            int rc = load_normalizer(t, e, what, err);
            if (rc < 0) return rc;
        }
        return EV_OK;
    }
    if (strcmp(ty, "NFC") == 0) return EV_OK; /* see docs/formats.md: text is taken as NFC */
    if (strcmp(ty, "Prepend") == 0) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(n, "prepend");
        if (!cJSON_IsString(p))
            return ev_fail(err, EV_EFAIL, "%s: Prepend normalizer without \"prepend\"", what);
        return add_norm(t, NORM_PREPEND, p->valuestring, NULL, 0, 0, what, err);
    }
    if (strcmp(ty, "Replace") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        const cJSON *s   = cJSON_GetObjectItemCaseSensitive(pat, "String");
        const cJSON *c   = cJSON_GetObjectItemCaseSensitive(n, "content");
        if (!cJSON_IsString(s) || !cJSON_IsString(c))
            return ev_fail(err, EV_EFAIL, "%s: Replace normalizer: only a String pattern and a "
                           "content are supported", what);
        return add_norm(t, NORM_REPLACE, s->valuestring, c->valuestring, 0, 0, what, err);
    }
    return ev_fail(err, EV_EFAIL, "%s: normalizer type %s is not supported (supported: NFC, "
                   "Prepend, Replace, Sequence)", what, ty);
}

static int load_pretokenizer(struct tok *t, const cJSON *p, int *bytelevel, int *meta,
                             const char *what, struct ev_err *err) {
    if (!p || cJSON_IsNull(p)) return EV_OK;
    const char *ty = json_type_of(p);
    int         rc = EV_OK;
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers")) {
            if ((rc = load_pretokenizer(t, e, bytelevel, meta, what, err)) < 0) return rc;
        }
        return EV_OK;
    }
    if (strcmp(ty, "ByteLevel") == 0) {
        *bytelevel = 1;
        if (json_flag(p, "add_prefix_space", 0) &&
            (rc = add_norm(t, NORM_PREPEND, " ", NULL, 1, 0, what, err)) < 0)
            return rc;
        if (json_flag(p, "use_regex", 1))
            rc = add_pretok(t, GPT2_REGEX, SPLIT_ISOLATED, what, err);
        return rc;
    }
    if (strcmp(ty, "Split") == 0) {
        const cJSON *bh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
        const char  *b  = cJSON_IsString(bh) ? bh->valuestring : "(none)";
        enum split_behavior behavior;
        if (strcmp(b, "Isolated") == 0) behavior = SPLIT_ISOLATED;
        else if (strcmp(b, "Removed") == 0) behavior = SPLIT_REMOVED;
        else if (strcmp(b, "MergedWithPrevious") == 0) behavior = SPLIT_MERGED_PREV;
        else if (strcmp(b, "MergedWithNext") == 0) behavior = SPLIT_MERGED_NEXT;
        else
            return ev_fail(err, EV_EFAIL, "%s: Split behavior %s is not supported (supported: "
                           "Isolated, Removed, MergedWithPrevious, MergedWithNext)", what, b);
        if (json_flag(p, "invert", 0))
            return ev_fail(err, EV_EFAIL, "%s: Split with invert true is not supported", what);
        char *pat = json_pattern(p);
        if (!pat) return ev_fail(err, EV_EFAIL, "%s: Split without a Regex or String pattern", what);
        rc = add_pretok(t, pat, behavior, what, err);
        free(pat);
        return rc;
    }
    if (strcmp(ty, "Digits") == 0)
        return add_pretok(t, json_flag(p, "individual_digits", 0) ? "\\p{N}" : "\\p{N}+",
                          SPLIT_ISOLATED, what, err);
    if (strcmp(ty, "Metaspace") == 0) {
        const cJSON *r  = cJSON_GetObjectItemCaseSensitive(p, "replacement");
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(p, "prepend_scheme");
        const char  *rep = cJSON_IsString(r) ? r->valuestring : META;
        const char  *scheme = cJSON_IsString(ps) ? ps->valuestring
                              : json_flag(p, "add_prefix_space", 1) ? "always" : "never";
        *meta = 1;
        if ((rc = add_norm(t, NORM_REPLACE, " ", rep, 0, 0, what, err)) < 0) return rc;
        if (strcmp(scheme, "never") != 0 &&
            (rc = add_norm(t, NORM_PREPEND, rep, NULL, 1, strcmp(scheme, "first") == 0, what,
                           err)) < 0)
            return rc;
        if (json_flag(p, "split", 1)) {
            char *lit = rx_literal(rep);
            rc        = add_pretok(t, lit, SPLIT_MERGED_NEXT, what, err);
            free(lit);
        }
        return rc;
    }
    return ev_fail(err, EV_EFAIL, "%s: pre_tokenizer type %s is not supported (supported: "
                   "ByteLevel, Split, Digits, Metaspace, Sequence)", what, ty);
}

/* A Hugging Face tokenizer.json with a BPE model. */
int tok_load_json_mem(const char *text, size_t len, const char *what, struct tok **out,
                      struct ev_err *err) {
    cJSON      *j = NULL;
    struct tok *t = NULL;
    struct sbuf scratch;
    int         rc;
    sbuf_init(&scratch);
    *out = NULL;
    if ((rc = json_parse(text, len, what, &j, err)) < 0) goto out;
    rc = EV_EFAIL;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (!cJSON_IsObject(model)) {
        rc = ev_fail(err, EV_EFAIL, "%s: no \"model\" object; not a Hugging Face tokenizer.json",
                     what);
        goto out;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(model, "type");
    const char  *type = cJSON_IsString(mt) ? mt->valuestring : NULL;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!type && cJSON_IsArray(merges)) type = "BPE"; /* older files omit the type */
    if (!type || strcmp(type, "BPE") != 0) {
        rc = ev_fail(err, EV_EFAIL, "%s: tokenizer model type %s is not supported (only BPE: "
                     "byte-level or SentencePiece-style)", what, type ? type : "(missing)");
        goto out;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens");
    if (added && !cJSON_IsArray(added)) {
        rc = ev_fail(err, EV_EFAIL, "%s: added_tokens is not an array", what);
        goto out;
    }
    if ((rc = load_vocab_object(&t, vocab, added, what, err)) < 0) goto out;
    t->byte_fallback = json_flag(model, "byte_fallback", 0);
    t->ignore_merges = json_flag(model, "ignore_merges", 0);
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (cJSON_IsString(unk)) t->unk = id_of(t, unk->valuestring);
    int bytelevel = 0, meta = 0;
    if ((rc = load_normalizer(t, cJSON_GetObjectItemCaseSensitive(j, "normalizer"), what, err)) < 0)
        goto out;
    if ((rc = load_pretokenizer(t, cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"),
                                &bytelevel, &meta, what, err)) < 0)
        goto out;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(j, "decoder");
    if (!bytelevel && dec && strcmp(json_type_of(dec), "ByteLevel") == 0) bytelevel = 1;
    int spm = meta || t->byte_fallback;
    for (int i = 0; i < t->n_norm; i++)
        if (strcmp(t->norm[i].a, META) == 0 || strcmp(t->norm[i].b, META) == 0) spm = 1;
    if (bytelevel) {
        t->kind = TOK_KIND_BYTELEVEL;
    } else if (spm) {
        t->kind = TOK_KIND_SPM;
        for (int i = 0; i < t->n_norm; i++)
            if (t->norm[i].kind == NORM_PREPEND && strcmp(t->norm[i].a, META) == 0)
                t->spm_strip_lead = 1;
    } else {
        rc = ev_fail(err, EV_EFAIL, "%s: a BPE tokenizer that is neither byte-level (ByteLevel "
                     "pre-tokenizer/decoder) nor SentencePiece-style (Metaspace, a \"\xe2\x96\x81\" "
                     "normalizer or byte_fallback) is not supported", what);
        goto out;
    }
    if (!cJSON_IsArray(merges)) {
        rc = ev_fail(err, EV_EFAIL, "%s: model.merges is not an array", what);
        goto out;
    }
    pairmap_init(&t->merges, (size_t)cJSON_GetArraySize(merges));
    int          rank = 0, skipped = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        int ok = 0;
        if (cJSON_IsString(m)) {
            const char *s  = m->valuestring;
            const char *sp = strchr(s, ' ');
            if (sp) ok = add_merge(t, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), rank, &scratch);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
            const char *a = cJSON_GetArrayItem(m, 0)->valuestring;
            const char *b = cJSON_GetArrayItem(m, 1)->valuestring;
            ok = add_merge(t, a, strlen(a), b, strlen(b), rank, &scratch);
        } else {
            rc = ev_fail(err, EV_EFAIL, "%s: merge %d is neither \"a b\" nor [\"a\", \"b\"]", what,
                         rank + skipped);
            goto out;
        }
        if (ok) rank++;
        else skipped++;
    }
    if (skipped) ev_debug("%s: skipped %d merges naming unknown tokens", what, skipped);
    finish_vocab(t);
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<|endoftext|>", "<bos>"};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"};
    for (size_t i = 0; i < 4 && t->bos < 0; i++) t->bos = id_of(t, bos_names[i]);
    for (size_t i = 0; i < 4 && t->eos < 0; i++) t->eos = id_of(t, eos_names[i]);
    *out = t;
    t    = NULL;
    rc   = EV_OK;
out:
    json_free(j);
    sbuf_release(&scratch);
    tok_free(t);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* loading: dispatch on the path */

static int load_file_llama2c(const char *path, struct tok **out, struct ev_err *err) {
    char  *data = NULL;
    size_t len  = 0;
    int    rc   = file_read_all(path, &data, &len, err);
    if (rc < 0) return rc;
    rc = tok_load_llama2c_mem(data, len, path, out, err);
    free(data);
    /* llama2.c's tokenizer.py names its export tok<VOCAB>.bin: a file that holds another
     * number of tokens was cut short or renamed (issue 20: a truncated tok512.bin encoded
     * everything as <unk>) */
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char       *end  = NULL;
    long        named = strncmp(base, "tok", 3) == 0 ? strtol(base + 3, &end, 10) : -1;
    if (rc == EV_OK && end && end != base + 3 && strcmp(end, ".bin") == 0 &&
        named != (*out)->n_vocab) {
        rc = ev_fail(err, EV_EFAIL, "%s: holds %d tokens but its name says %ld (truncated?)",
                     path, (*out)->n_vocab, named);
        tok_free(*out);
        *out = NULL;
    }
    return rc;
}

static int load_file_json(const char *path, struct tok **out, struct ev_err *err) {
    char  *data = NULL;
    size_t len  = 0;
    int    rc   = file_read_all(path, &data, &len, err);
    if (rc < 0) return rc;
    rc = tok_load_json_mem(data, len, path, out, err);
    free(data);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return xstrdup(".");
    char *d = xstrdup(path);
    d[slash - path + (slash == path)] = '\0';
    return d;
}

/* A folder's config.json may name bos_token_id / eos_token_id (integers); they win. */
static void apply_config_ids(struct tok *t, const char *dir) {
    char  *p = path_join(dir, "config.json");
    cJSON *c = NULL;
    struct ev_err ignore;
    if (path_exists(p) && json_parse_file(p, &c, &ignore) == EV_OK) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(c, "bos_token_id");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(c, "eos_token_id");
        if (cJSON_IsNumber(b) && b->valueint >= 0 && b->valueint < t->n_vocab) t->bos = b->valueint;
        if (cJSON_IsNumber(e) && e->valueint >= 0 && e->valueint < t->n_vocab) t->eos = e->valueint;
    }
    json_free(c);
    free(p);
}

int tok_load(const char *path, struct tok **out, struct ev_err *err) {
    int   rc  = EV_EFAIL;
    char *dir = NULL, *a = NULL, *b = NULL;
    *out      = NULL;
    if (!path_exists(path))
        return ev_fail(err, EV_EFAIL, "%s: no such tokenizer file or folder", path);
    if (path_is_dir(path)) {
        dir = xstrdup(path);
        a   = path_join(path, "tokenizer.json");
        if (path_exists(a)) {
            rc = load_file_json(a, out, err);
            goto done;
        }
        static const char *const bins[] = {"tokenizer.bin", "tok512.bin", "tok.bin"};
        for (size_t i = 0; i < sizeof bins / sizeof bins[0]; i++) {
            free(a);
            a = path_join(path, bins[i]);
            if (path_exists(a)) {
                rc = load_file_llama2c(a, out, err);
                goto done;
            }
        }
        free(a);
        a = path_join(path, "encoder.json");
        b = path_join(path, "vocab.bpe");
        if (path_exists(a) && path_exists(b)) {
            rc = load_gpt2(a, b, out, err);
            goto done;
        }
        free(a);
        a = path_join(path, "tokenizer.model");
        if (path_exists(a))
            rc = ev_fail(err, EV_EFAIL, "%s: only a SentencePiece tokenizer.model is there, which is "
                         "not supported; provide the model's tokenizer.json", path);
        else
            rc = ev_fail(err, EV_EFAIL, "%s: no tokenizer found in the folder (expected "
                         "tokenizer.json, tokenizer.bin or encoder.json + vocab.bpe)", path);
        goto done;
    }
    dir = dir_of(path);
    if (ends_with(path, "encoder.json") || ends_with(path, "vocab.bpe")) {
        a = path_join(dir, "encoder.json");
        b = path_join(dir, "vocab.bpe");
        if (!path_exists(a) || !path_exists(b)) {
            rc = ev_fail(err, EV_EFAIL, "%s: GPT-2's encoder.json and vocab.bpe must sit side by "
                         "side in %s", path, dir);
            goto done;
        }
        rc = load_gpt2(a, b, out, err);
    } else if (ends_with(path, ".json")) {
        rc = load_file_json(path, out, err);
    } else {
        rc = load_file_llama2c(path, out, err);
    }
done:
    if (rc == EV_OK && (*out)->kind != TOK_KIND_LLAMA2C) apply_config_ids(*out, dir);
    free(dir);
    free(a);
    free(b);
    return rc;
}
