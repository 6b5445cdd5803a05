/*
 * tok — tokenizers (see tok.h). Sections:
 *   - a string -> int hash map and a pair -> merge map (open addressing);
 *   - llama2.c tokenizer.bin: load, encode (run.c's algorithm), pieces;
 *   - byte-level BPE (GPT-2 encoder.json + vocab.bpe, or tokenizer.json) with the
 *     pre-tokenizer regex run by rx (PCRE2), and SentencePiece-style tokenizer.json BPE;
 *   - decode and tok_load's dispatch on the path.
 */
#include "tok.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "rx.h"

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
__attribute__((unused)) static int pairmap_get(const struct pairmap *m, int a, int b, int *merged) {
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
__attribute__((unused)) static void pairmap_put(struct pairmap *m, int a, int b, int rank, int merged) {
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

enum pretok_kind {
    PRETOK_SPLIT,  /* regex split, behaviour "Isolated" (matches and gaps are pieces) */
    PRETOK_DIGITS, /* runs of digits (or single digits) isolated */
    PRETOK_META,   /* Metaspace: split before each ▁ */
};

struct pretok {
    enum pretok_kind kind;
    struct rx       *rx;              /* PRETOK_SPLIT */
    int              removed;         /* PRETOK_SPLIT behaviour "Removed": drop matches */
    int              individual;      /* PRETOK_DIGITS */
};

#define TOK_MAX_PRETOK 8

struct tok {
    enum tok_kind kind;
    int           n_vocab;
    char        **key;       /* (n_vocab) the vocabulary's own spelling, NUL-terminated */
    int          *key_len;   /* (n_vocab) */
    char        **piece;     /* (n_vocab) the bytes a token stands for, NUL-terminated */
    int          *piece_len; /* (n_vocab) */
    float        *score;     /* (n_vocab) llama2.c only */
    unsigned char *special;  /* (n_vocab) 1 for control tokens dropped by decode */
    struct strmap vocab;     /* key -> id */
    struct pairmap merges;   /* BPE merges by id */
    int           bos, eos, unk;
    int           max_token_length;
    int           byte_fallback;   /* SPM: <0xXX> tokens for characters not in the vocab */
    int           byte_id[256];    /* id of the <0xXX> token for each byte, or -1 */
    int           ignore_merges;   /* a pre-token found whole in the vocabulary is one token */
    /* byte-level */
    int           byte_char[256];  /* GPT-2 bytes_to_unicode: byte -> code point */
    int           add_prefix_space;
    /* SPM normalisation */
    int           spm_prepend;     /* prepend ▁ to the text */
    int           spm_replace;     /* spaces become ▁ */
    int           spm_strip_lead;  /* decode strips one leading space */
    /* pre-tokenizers, applied in order */
    struct pretok pretok[TOK_MAX_PRETOK];
    int           n_pretok;
    /* added tokens matched verbatim before anything else (tokenizer.json) */
    int          *added;           /* (n_added) ids, longest content first */
    int           n_added;
};

static struct tok *tok_alloc(int n_vocab) {
    struct tok *t = xcalloc(1, sizeof *t);
    t->n_vocab    = n_vocab;
    t->key        = xcalloc((size_t)n_vocab, sizeof *t->key);
    t->key_len    = xcalloc((size_t)n_vocab, sizeof *t->key_len);
    t->piece      = xcalloc((size_t)n_vocab, sizeof *t->piece);
    t->piece_len  = xcalloc((size_t)n_vocab, sizeof *t->piece_len);
    t->special    = xcalloc((size_t)n_vocab, 1);
    t->bos = t->eos = t->unk = -1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
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
    free(t->special);
    strmap_release(&t->vocab);
    pairmap_release(&t->merges);
    for (int i = 0; i < t->n_pretok; i++) rx_free(t->pretok[i].rx);
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
        rc = ev_fail(err, EV_EFAIL, "%s: too short for a llama2.c tokenizer.bin (%zu bytes)",
                     what, size);
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
    t->special[0] = t->special[1] = t->special[2] = 1;
    *out = t;
    t    = NULL;
    rc   = EV_OK;
out:
    tok_free(t);
    return rc;
}

/*
 * llama2.c run.c encode(): BOS, a dummy-prefix " " for non-empty text, one token per UTF-8
 * code point found in the vocabulary (else its bytes as <0xXX> tokens at id byte + 3), then
 * merge the adjacent pair whose concatenation is the best-scoring vocabulary entry until none
 * is. The merge loop is O(n^2) as in run.c; texts are chunked by the callers when long.
 */
static int encode_llama2c(const struct tok *t, const char *text, int add_bos, struct idbuf *ob,
                          struct ev_err *err) {
    size_t slen  = strlen(text);
    char  *buf   = xmalloc((size_t)t->max_token_length * 2 + 8);
    size_t start = ob->n;
    (void)err;
    if (add_bos) idbuf_push(ob, t->bos);
    if (text[0]) {
        int sp = strmap_get(&t->vocab, " ", 1);
        if (sp >= 0) idbuf_push(ob, sp);
    }
    size_t blen = 0;
    for (size_t i = 0; i < slen; i++) {
        unsigned char c = (unsigned char)text[i];
        if ((c & 0xC0) != 0x80) blen = 0;
        buf[blen++] = (char)c;
        unsigned char next = i + 1 < slen ? (unsigned char)text[i + 1] : 0;
        if ((next & 0xC0) == 0x80 && blen < 4) continue;
        int id = strmap_get(&t->vocab, buf, blen);
        if (id >= 0) {
            idbuf_push(ob, id);
        } else {
            for (size_t k = 0; k < blen; k++) {
                int bid = (unsigned char)buf[k] + 3;
                idbuf_push(ob, bid < t->n_vocab ? bid : t->unk);
            }
        }
        blen = 0;
    }
    /* merges */
    int   *v = ob->v + start;
    size_t n = ob->n - start;
    for (;;) {
        float  best_score = -1e10f;
        int    best_id = -1;
        size_t best_idx = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            int la = t->key_len[v[i]], lb = t->key_len[v[i + 1]];
            if (la + lb > t->max_token_length * 2) continue;
            memcpy(buf, t->key[v[i]], (size_t)la);
            memcpy(buf + la, t->key[v[i + 1]], (size_t)lb);
            int id = strmap_get(&t->vocab, buf, (size_t)(la + lb));
            if (id >= 0 && t->score[id] > best_score) {
                best_score = t->score[id];
                best_id    = id;
                best_idx   = i;
            }
        }
        if (best_id < 0) break;
        v[best_idx] = best_id;
        memmove(v + best_idx + 1, v + best_idx + 2, (n - best_idx - 2) * sizeof *v);
        n--;
    }
    ob->n = start + n;
    free(buf);
    return EV_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* public: encode, decode, pieces */

static int encode_bpe_text(const struct tok *t, const char *text, size_t len, struct idbuf *ob,
                           struct ev_err *err);

int tok_encode(const struct tok *t, const char *text, int add_bos, int **ids, int *n,
               struct ev_err *err) {
    struct idbuf ob = {0};
    int          rc;
    *ids = NULL;
    *n   = 0;
    if (t->kind == TOK_KIND_LLAMA2C) {
        rc = encode_llama2c(t, text, add_bos && t->bos >= 0, &ob, err);
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
    } else if (t->kind == TOK_KIND_SPM && t->spm_strip_lead) {
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
        const char *p = tok_piece(t, prev, id);
        size_t      pl = (size_t)t->piece_len[id] - (size_t)(p - t->piece[id]);
        sbuf_add(&sb, p, pl);
        prev = id;
    }
    *text = sbuf_detach(&sb);
    return EV_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* BPE (byte-level and SentencePiece-style) */

static int encode_bpe_text(const struct tok *t, const char *text, size_t len, struct idbuf *ob,
                           struct ev_err *err) {
    (void)t, (void)text, (void)len, (void)ob;
    return ev_fail(err, EV_EFAIL, "byte-level BPE encoding is not built yet");
}

/* ---------------------------------------------------------------------------------------- */
/* loading */

static int load_file_llama2c(const char *path, struct tok **out, struct ev_err *err) {
    char  *data = NULL;
    size_t len  = 0;
    int    rc   = file_read_all(path, &data, &len, err);
    if (rc < 0) return rc;
    rc = tok_load_llama2c_mem(data, len, path, out, err);
    free(data);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int tok_load(const char *path, struct tok **out, struct ev_err *err) {
    *out = NULL;
    if (!path_exists(path))
        return ev_fail(err, EV_EFAIL, "%s: no such tokenizer file or folder", path);
    if (path_is_dir(path)) {
        static const char *const bins[] = {"tokenizer.bin", "tok512.bin", "tok.bin"};
        for (size_t i = 0; i < sizeof bins / sizeof bins[0]; i++) {
            char *p = path_join(path, bins[i]);
            if (path_exists(p)) {
                int rc = load_file_llama2c(p, out, err);
                free(p);
                return rc;
            }
            free(p);
        }
        return ev_fail(err, EV_EFAIL,
                       "%s: no tokenizer found in the folder (expected tokenizer.json, "
                       "tokenizer.bin or encoder.json + vocab.bpe)", path);
    }
    if (ends_with(path, ".json"))
        return ev_fail(err, EV_EFAIL, "%s: tokenizer.json support is not built yet", path);
    return load_file_llama2c(path, out, err);
}
