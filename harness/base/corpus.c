/*
 * corpus — plain text, JSON Lines and folders of them, read lazily (see corpus.h).
 */
#include "base/corpus.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base/hash.h"
#include "base/json.h"

#define CORPUS_PIECE 2000     /* plain text: pieces of whole lines of about this many bytes */
#define CORPUS_BLOCK (1 << 16) /* bytes read at a time */

struct corpus_file {
    char *path;
    int   jsonl;
};

struct corpus {
    char               *field; /* JSON Lines text field */
    int                 field_given;
    struct corpus_file *files;
    int                 n_files, cap_files, cur; /* cur: the file being read (-1: none yet) */
    FILE               *f;
    char               *buf;     /* bytes [0, blen) of the file from offset base */
    size_t              blen, bcap, bpos;
    long long           base;    /* file offset of buf[0] */
    int                 eof;
    long                lineno;  /* JSON Lines: the line of the last record */
    char               *doc;     /* the current JSON Lines document (owned) */
    char                saved;   /* plain text: the byte overwritten by the piece's NUL */
    size_t              saved_at;
    int                 n_given; /* documents handed out */
    int64_t             n_docs;
    struct sha256       sha;
    char                kind[96];
};

// ---------------------------------------------------------------------------- listing

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcasecmp(s + n - m, suf) == 0;
}

static int is_jsonl_name(const char *name) {
    return has_suffix(name, ".jsonl") || has_suffix(name, ".ndjson") || has_suffix(name, ".json");
}

/* Formats a folder can hold that are not text: refused with the way to export them. */
static const char *refused_kind(const char *name) {
    static const char *const ext[] = {".parquet", ".arrow", ".gz", ".zst", ".bz2", ".xz",
                                      ".zip", ".tar", ".npz", ".npy", ".safetensors", ".bin",
                                      ".pt", ".pkl"};
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (has_suffix(name, ext[i])) return ext[i];
    return NULL;
}

static void add_file(struct corpus *c, const char *path, int jsonl) {
    if (c->n_files == c->cap_files) {
        c->cap_files = c->cap_files ? 2 * c->cap_files : 16;
        c->files = xrealloc(c->files, sizeof *c->files * (size_t)c->cap_files);
    }
    c->files[c->n_files].path = xstrdup(path);
    c->files[c->n_files].jsonl = jsonl;
    c->n_files++;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the files below dir, depth first, names in byte order. */
static int list_dir(struct corpus *c, const char *dir, int depth, struct ev_err *err) {
    DIR   *d = opendir(dir);
    char **names = NULL;
    int    n = 0, cap = 0, rc = EV_OK;
    if (!d) return ev_fail(err, EV_EFAIL, "cannot open the folder %s: %s", dir, strerror(errno));
    if (depth > 32) {
        closedir(d);
        return ev_fail(err, EV_EFAIL, "%s: folders nested more than 32 deep", dir);
    }
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue; /* hidden files, "." and ".." */
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            names = xrealloc(names, sizeof *names * (size_t)cap);
        }
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (n > 1) qsort(names, (size_t)n, sizeof *names, cmp_str); /* names is NULL when empty */
    for (int i = 0; i < n && rc == EV_OK; i++) {
        char       *p = xasprintf("%s/%s", dir, names[i]);
        struct stat st;
        const char *bad;
        if (stat(p, &st) != 0) {
            rc = ev_fail(err, EV_EFAIL, "cannot read %s: %s", p, strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            rc = list_dir(c, p, depth + 1, err);
        } else if (!S_ISREG(st.st_mode)) {
            /* sockets, fifos: not corpus files, and reading one could block */
        } else if ((bad = refused_kind(names[i]))) {
            rc = ev_fail(err, EV_EFAIL, "%s: a %s file is not text; a corpus folder holds plain "
                                        "text or JSON Lines (export a Hugging Face dataset with "
                                        "Dataset.to_json, docs/formats.md)", p, bad);
        } else {
            add_file(c, p, c->field_given || is_jsonl_name(names[i]));
        }
        free(p);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

void corpus_close(struct corpus *c) {
    if (!c) return;
    if (c->f) fclose(c->f);
    for (int i = 0; i < c->n_files; i++) free(c->files[i].path);
    free(c->files);
    free(c->buf);
    free(c->doc);
    free(c->field);
    free(c);
}

int corpus_open(const char *path, const char *text_field, struct corpus **out,
                struct ev_err *err) {
    struct corpus *c = xcalloc(1, sizeof *c);
    struct stat    st;
    int            rc = EV_OK;
    *out = NULL;
    c->field = xstrdup(text_field ? text_field : "text");
    c->field_given = text_field != NULL;
    c->cur = -1;
    sha256_init(&c->sha);
    if (text_field && !*text_field) {
        rc = ev_fail(err, EV_EUSAGE, "--text-field is empty");
        goto out;
    }
    if (stat(path, &st) != 0) {
        rc = ev_fail(err, EV_EFAIL, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        if ((rc = list_dir(c, path, 0, err)) != EV_OK) goto out;
        if (c->n_files == 0) {
            rc = ev_fail(err, EV_EFAIL, "%s: no corpus files in the folder (plain text or JSON "
                                        "Lines, hidden names skipped)", path);
            goto out;
        }
        snprintf(c->kind, sizeof c->kind, "a folder of %d file%s", c->n_files,
                 c->n_files == 1 ? "" : "s");
    } else {
        add_file(c, path, c->field_given || is_jsonl_name(path));
        if (c->files[0].jsonl) snprintf(c->kind, sizeof c->kind, "JSON Lines (field %.60s)",
                                        c->field);
        else snprintf(c->kind, sizeof c->kind, "plain text");
    }
    *out = c;
    c = NULL;
out:
    corpus_close(c);
    return rc;
}

// ---------------------------------------------------------------------------- reading

/* Reads the next block of the current file into the buffer; sets eof. A NUL byte is an
 * error naming its offset. */
static int fill(struct corpus *c, struct ev_err *err) {
    const char *path = c->files[c->cur].path;
    if (c->eof) return EV_OK;
    if (c->bpos > 0) { /* drop what was handed out */
        memmove(c->buf, c->buf + c->bpos, c->blen - c->bpos);
        c->blen -= c->bpos;
        c->base += (long long)c->bpos;
        c->saved_at -= c->saved_at >= c->bpos ? c->bpos : c->saved_at;
        c->bpos = 0;
    }
    if (c->blen + CORPUS_BLOCK + 1 > c->bcap) {
        c->bcap = c->blen + CORPUS_BLOCK + 1;
        c->buf = xrealloc(c->buf, c->bcap);
    }
    size_t got = fread(c->buf + c->blen, 1, CORPUS_BLOCK, c->f);
    if (ferror(c->f)) return ev_fail(err, EV_EFAIL, "cannot read %s: %s", path, strerror(errno));
    const char *nul = memchr(c->buf + c->blen, '\0', got);
    if (nul)
        return ev_fail(err, EV_EFAIL, "%s: a NUL byte at offset %lld: not text (a corpus is "
                                      "plain text, JSON Lines or a folder of them)", path,
                       c->base + (long long)(nul - c->buf));
    c->blen += got;
    c->buf[c->blen] = '\0';
    if (got < CORPUS_BLOCK) c->eof = 1;
    return EV_OK;
}

/* Opens the next file; 0 when there is none. */
static int next_file(struct corpus *c, struct ev_err *err) {
    if (c->f) fclose(c->f);
    c->f = NULL;
    if (c->cur + 1 >= c->n_files) return 0;
    c->cur++;
    c->blen = c->bpos = c->saved_at = 0;
    c->base = 0;
    c->eof = 0;
    c->lineno = 0;
    if (!(c->f = fopen(c->files[c->cur].path, "rb")))
        return ev_fail(err, EV_EFAIL, "cannot open %s: %s", c->files[c->cur].path,
                       strerror(errno));
    return 1;
}

/* Plain text: [bpos, end) with end the first index >= bpos + CORPUS_PIECE after a '\n', or
 * the end of the file. 1 with the piece, 0 at the end of the file. */
static int plain_piece(struct corpus *c, const char **text, size_t *len, struct ev_err *err) {
    int rc;
    while (!c->eof && c->blen - c->bpos < CORPUS_PIECE)
        if ((rc = fill(c, err)) != EV_OK) return rc;
    if (c->bpos >= c->blen) return 0;
    size_t end = c->bpos + CORPUS_PIECE;
    for (;;) {
        if (end >= c->blen) {
            if (c->eof) {
                end = c->blen;
                break;
            }
            size_t off = end - c->bpos;
            if ((rc = fill(c, err)) != EV_OK) return rc;
            end = c->bpos + off;
            continue;
        }
        if (c->buf[end - 1] == '\n') break;
        end++;
    }
    c->saved = c->buf[end];
    c->saved_at = end;
    c->buf[end] = '\0';
    *text = c->buf + c->bpos;
    *len = end - c->bpos;
    c->bpos = end;
    return 1;
}

/* The record's field names, for the message about a missing text field. */
static void field_names(const cJSON *o, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = '\0';
    for (const cJSON *it = o->child; it && k + 4 < n; it = it->next) {
        int w = snprintf(buf + k, n - k, "%s%s", k ? ", " : "", it->string ? it->string : "?");
        if (w < 0 || (size_t)w >= n - k) break;
        k += (size_t)w;
    }
    if (!k) snprintf(buf, n, "none");
}

/* JSON Lines: the next record's text. 1 with it, 0 at the end of the file. */
static int jsonl_piece(struct corpus *c, const char **text, size_t *len, struct ev_err *err) {
    const char *path = c->files[c->cur].path;
    int         rc;
    for (;;) {
        char  *nl;
        size_t scanned = 0;
        /* nothing buffered yet: c->buf may be NULL, and NULL + 0 is undefined (tests/fuzz) */
        while (!(nl = c->blen > c->bpos + scanned
                          ? memchr(c->buf + c->bpos + scanned, '\n', c->blen - c->bpos - scanned)
                          : NULL) &&
               !c->eof) {
            scanned = c->blen - c->bpos;
            if ((rc = fill(c, err)) != EV_OK) return rc;
        }
        if (c->bpos >= c->blen) return 0;
        size_t    end = nl ? (size_t)(nl - c->buf) : c->blen;
        char     *line = c->buf + c->bpos;
        size_t    n = end - c->bpos;
        long long line_off = c->base + (long long)c->bpos;
        c->lineno++;
        c->bpos = nl ? end + 1 : end;
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) n--;
        size_t s = 0;
        while (s < n && (line[s] == ' ' || line[s] == '\t')) s++;
        if (s == n) continue; /* blank line */
        if (c->lineno == 1 && line[s] == '[')
            return ev_fail(err, EV_EFAIL, "%s: a JSON array, not JSON Lines: write one object "
                                          "per line (Hugging Face: Dataset.to_json(path))", path);
        /* \u0000 would end the text inside cJSON: refuse it (an escaped backslash "\\" is
         * skipped as a pair, so "\\u0000" is text, not a NUL) */
        for (size_t i = s; i + 1 < n; i++) {
            if (line[i] != '\\') continue;
            if (line[i + 1] == 'u' && i + 5 < n && strncmp(line + i + 2, "0000", 4) == 0)
                return ev_fail(err, EV_EFAIL, "%s:%ld: the text holds a NUL character (\\u0000) "
                                              "at offset %lld", path, c->lineno,
                               line_off + (long long)i);
            i++;
        }
        cJSON *o = NULL;
        char   what[64];
        snprintf(what, sizeof what, "line %ld", c->lineno);
        if (json_parse(line + s, n - s, what, &o, err) != EV_OK || !cJSON_IsObject(o)) {
            json_free(o);
            return ev_fail(err, EV_EFAIL, "%s:%ld: not a JSON object (JSON Lines: one object "
                                          "with a \"%s\" string per line)", path, c->lineno,
                           c->field);
        }
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, c->field);
        if (!cJSON_IsString(t)) {
            char names[160];
            field_names(o, names, sizeof names);
            rc = ev_fail(err, EV_EFAIL, "%s:%ld: the record has no string field \"%s\" (its "
                                        "fields: %s; --text-field KEY names another)", path,
                         c->lineno, c->field, names);
            json_free(o);
            return rc;
        }
        free(c->doc);
        c->doc = xstrdup(t->valuestring);
        json_free(o);
        *text = c->doc;
        *len = strlen(c->doc);
        return 1;
    }
}

int corpus_next(struct corpus *c, const char **text, size_t *len, int *doc_start,
                struct ev_err *err) {
    int rc;
    if (c->cur >= 0 && !c->files[c->cur].jsonl && c->saved_at < c->blen)
        c->buf[c->saved_at] = c->saved; /* undo the previous piece's terminator */
    *doc_start = 0;
    for (;;) {
        if (c->cur < 0 || !c->f) {
            if ((rc = next_file(c, err)) <= 0) return rc;
            if (!c->files[c->cur].jsonl) c->n_docs++;
        }
        int first_of_file = c->base == 0 && c->bpos == 0 && c->lineno == 0;
        rc = c->files[c->cur].jsonl ? jsonl_piece(c, text, len, err)
                                    : plain_piece(c, text, len, err);
        if (rc < 0) return rc;
        if (rc == 0) { /* this file is done */
            fclose(c->f);
            c->f = NULL;
            continue;
        }
        if (c->files[c->cur].jsonl) {
            c->n_docs++;
            *doc_start = c->n_given > 0;
        } else {
            *doc_start = first_of_file && c->n_given > 0;
        }
        c->n_given++;
        /* the identity: each piece's length and whether it starts a document, then its bytes */
        uint8_t hdr[9];
        uint64_t L = (uint64_t)*len;
        hdr[0] = (uint8_t)(*doc_start ? 1 : 0);
        for (int i = 0; i < 8; i++) hdr[1 + i] = (uint8_t)(L >> (8 * i));
        sha256_update(&c->sha, hdr, sizeof hdr);
        sha256_update(&c->sha, *text, *len);
        return 1;
    }
}

void corpus_hash(const struct corpus *c, char hex[65]) {
    struct sha256 s = c->sha; /* a copy: the running hash goes on */
    sha256_hex_final(&s, hex);
}

const char *corpus_kind(const struct corpus *c) { return c->kind; }

int64_t corpus_n_docs(const struct corpus *c) { return c->n_docs; }
