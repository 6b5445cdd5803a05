/*
 * publish_import — reading Neuronpedia's and SAEBench's published explanations and scores
 * (see publish.h).
 */
#include "evals/publish.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/gz.h"
#include "base/json.h"
#include "base/rx.h"
#include "base/utf8.h"

struct pub_id {
    char *id;
    int   feature;
};

// ---------------------------------------------------------------------------- the set

static void hash_rebuild(struct pub_set *s) {
    int cap = 64;
    while (cap < 2 * s->n + 2) cap *= 2;
    free(s->hslot);
    s->hcap = cap;
    s->hslot = xmalloc(sizeof(int) * (size_t)cap);
    for (int i = 0; i < cap; i++) s->hslot[i] = -1;
    for (int i = 0; i < s->n; i++) {
        unsigned h = (unsigned)s->f[i].idx * 2654435761u & (unsigned)(cap - 1);
        while (s->hslot[h] >= 0) h = (h + 1) & (unsigned)(cap - 1);
        s->hslot[h] = i;
    }
}

/* The feature idx in s, added when absent (*added = 1). */
static struct pub_feature *feature_get(struct pub_set *s, int idx, int *added) {
    *added = 0;
    if (s->hcap < 2 * s->n + 2) hash_rebuild(s);
    unsigned h = (unsigned)idx * 2654435761u & (unsigned)(s->hcap - 1);
    while (s->hslot[h] >= 0) {
        if (s->f[s->hslot[h]].idx == idx) return &s->f[s->hslot[h]];
        h = (h + 1) & (unsigned)(s->hcap - 1);
    }
    s->f = xrealloc(s->f, sizeof *s->f * (size_t)(s->n + 1));
    memset(&s->f[s->n], 0, sizeof s->f[0]);
    s->f[s->n].idx = idx;
    s->hslot[h] = s->n;
    *added = 1;
    return &s->f[s->n++];
}

static void score_add(struct pub_score **v, int *n, const char *name, double value) {
    if (!isfinite(value)) return;
    *v = xrealloc(*v, sizeof **v * (size_t)(*n + 1));
    snprintf((*v)[*n].name, sizeof (*v)[*n].name, "%s", name && *name ? name : "score");
    (*v)[*n].value = value;
    (*n)++;
}

static int cmp_feature(const void *a, const void *b) {
    int x = ((const struct pub_feature *)a)->idx, y = ((const struct pub_feature *)b)->idx;
    return (x > y) - (x < y);
}

static int cmp_id(const void *a, const void *b) {
    return strcmp(((const struct pub_id *)a)->id, ((const struct pub_id *)b)->id);
}

static void finish(struct pub_set *s) {
    if (s->n) qsort(s->f, (size_t)s->n, sizeof *s->f, cmp_feature);
    hash_rebuild(s);
    if (s->n_ids) qsort(s->ids, (size_t)s->n_ids, sizeof *s->ids, cmp_id);
}

void pub_release(struct pub_set *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->f[i].desc);
        free(s->f[i].explainer);
        free(s->f[i].scores);
    }
    for (int i = 0; i < s->n_ids; i++) free(s->ids[i].id);
    free(s->f), free(s->metrics), free(s->hslot), free(s->ids);
    memset(s, 0, sizeof *s);
}

// ---------------------------------------------------------------------------- rows

/* A feature index: a non-negative integer, as a number or a string of digits. */
static int get_index(const cJSON *o, const char *key, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    long         x;
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!(d >= 0 && d < 2147483647.0) || d != floor(d)) return -1;
        *out = (int)d;
        return 0;
    }
    if (cJSON_IsString(v) && parse_index(v->valuestring, 2147483646L, &x) == EV_OK) {
        *out = (int)x;
        return 0;
    }
    return -1;
}

/* The description made one line and trimmed (caller frees), or NULL with *why set. */
static char *clean_desc(const char *in, const char **why) {
    if (rx_utf8_invalid_at(in, strlen(in)) >= 0) {
        *why = "is not UTF-8";
        return NULL;
    }
    char *d = xstrdup(in), *p = d;
    for (char *c = d; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t') *c = ' ';
    while (*p == ' ') p++;
    size_t len = strlen(p);
    while (len && p[len - 1] == ' ') p[--len] = 0;
    memmove(d, p, len + 1);
    *why = !*d                                 ? "is empty"
           : strstr(d, "{{") || strstr(d, "}}") ? "holds a template delimiter ('{{' or '}}')"
           : utf8_count(d, len) > EVAL_DESC_MAX ? "is longer than the 2000 characters accepted"
                                                : NULL;
    if (*why) {
        free(d);
        return NULL;
    }
    return d;
}

static void left_out(struct pub_set *s, int idx, const char *why) {
    if (s->n_left_out++ == 0)
        snprintf(s->left_out, sizeof s->left_out, "feature %d: the description %s", idx, why);
}

/* The ExplanationScore rows of a list: value + explanationScoreTypeName. */
static void scores_from(struct pub_feature *f, const cJSON *list) {
    const cJSON *sc;
    cJSON_ArrayForEach(sc, list) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(sc, "value");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(sc, "explanationScoreTypeName");
        if (cJSON_IsNumber(v))
            score_add(&f->scores, &f->n_scores, cJSON_IsString(t) ? t->valuestring : NULL,
                      v->valuedouble);
    }
}

/* One explanation (Neuronpedia's Explanation row, or SAEBench's per-latent result with
 * index idx given). */
static void explanation(struct pub_set *s, int idx, const char *desc, const cJSON *row) {
    int                 added;
    struct pub_feature *f = feature_get(s, idx, &added);
    const char         *why = NULL;
    if (f->desc) {
        s->n_extra++;
        return;
    }
    char *d = clean_desc(desc, &why);
    if (!d) {
        left_out(s, idx, why);
        return;
    }
    f->desc = d;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(row, "explanationModelName");
    if (cJSON_IsString(m) && *m->valuestring) f->explainer = xstrdup(m->valuestring);
    scores_from(f, cJSON_GetObjectItemCaseSensitive(row, "scores"));
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(row, "id");
    if (cJSON_IsString(id) && *id->valuestring) {
        s->ids = xrealloc(s->ids, sizeof *s->ids * (size_t)(s->n_ids + 1));
        s->ids[s->n_ids++] = (struct pub_id){xstrdup(id->valuestring), idx};
    }
}

static int is_score_row(const cJSON *o) {
    return cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "explanationId")) &&
           cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "value"));
}

static void score_row(struct pub_set *s, const cJSON *o) {
    struct pub_id key = {cJSON_GetObjectItemCaseSensitive(o, "explanationId")->valuestring, 0};
    struct pub_id *hit = s->n_ids ? bsearch(&key, s->ids, (size_t)s->n_ids, sizeof *s->ids, cmp_id)
                                  : NULL;
    if (!hit) {
        s->n_unmatched++;
        return;
    }
    int                 added;
    struct pub_feature *f = feature_get(s, hit->feature, &added);
    const cJSON        *t = cJSON_GetObjectItemCaseSensitive(o, "explanationScoreTypeName");
    score_add(&f->scores, &f->n_scores, cJSON_IsString(t) ? t->valuestring : NULL,
              cJSON_GetObjectItemCaseSensitive(o, "value")->valuedouble);
}

/* A Neuronpedia row: an explanation, an API feature (with "explanations") or a score row
 * (pass 2 only). Anything else is an error naming where. */
static int np_row(struct pub_set *s, const cJSON *o, int pass, const char *what, int line,
                  struct ev_err *err) {
    int idx;
    if (!cJSON_IsObject(o))
        return ev_fail(err, EV_EFAIL, "%s:%d: expected a JSON object", what, line);
    if (is_score_row(o)) {
        if (pass == 2) score_row(s, o);
        return EV_OK;
    }
    if (get_index(o, "index", &idx) != 0)
        return ev_fail(err, EV_EFAIL, "%s:%d: no feature \"index\" (a non-negative integer, or "
                                      "its digits as a string)", what, line);
    if (pass == 2) return EV_OK;
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(o, "explanations");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "description");
    if (cJSON_IsArray(ex)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, ex) {
            const cJSON *ed = cJSON_GetObjectItemCaseSensitive(e, "description");
            if (cJSON_IsString(ed)) explanation(s, idx, ed->valuestring, e);
        }
        return EV_OK;
    }
    if (cJSON_IsString(d)) {
        explanation(s, idx, d->valuestring, o);
        return EV_OK;
    }
    /* a feature row without explanations (features/batch-K): nothing to import */
    return EV_OK;
}

// ---------------------------------------------------------------------------- SAEBench

static void metrics_from(struct pub_set *s, const cJSON *m) {
    const cJSON *cat, *v;
    cJSON_ArrayForEach(cat, m) {
        if (!cJSON_IsObject(cat)) continue;
        cJSON_ArrayForEach(v, cat) {
            char name[64];
            if (!cJSON_IsNumber(v) || !v->string) continue;
            snprintf(name, sizeof name, "%s.%s", cat->string ? cat->string : "", v->string);
            score_add(&s->metrics, &s->n_metrics, name, v->valuedouble);
        }
    }
}

static int saebench(struct pub_set *s, const cJSON *j, const char *type, const char *what,
                    struct ev_err *err) {
    metrics_from(s, cJSON_GetObjectItemCaseSensitive(j, "eval_result_metrics"));
    snprintf(s->format, sizeof s->format, "saebench %.24s", type);
    if (strcmp(type, "autointerp") != 0) return EV_OK;
    const cJSON *un = cJSON_GetObjectItemCaseSensitive(j, "eval_result_unstructured"), *l;
    if (!cJSON_IsObject(un))
        return ev_fail(err, EV_EFAIL, "%s: SAEBench autointerp without an "
                                      "eval_result_unstructured object of latents", what);
    cJSON_ArrayForEach(l, un) {
        int          idx;
        long         k;
        const cJSON *ex = cJSON_GetObjectItemCaseSensitive(l, "explanation");
        if (get_index(l, "latent", &idx) != 0) {
            if (!l->string || parse_index(l->string, 2147483646L, &k) != EV_OK)
                return ev_fail(err, EV_EFAIL, "%s: latent '%.40s' is not a feature index", what,
                               l->string ? l->string : "");
            idx = (int)k;
        }
        if (!cJSON_IsString(ex)) continue;
        explanation(s, idx, ex->valuestring, l);
        int                 added;
        struct pub_feature *f = feature_get(s, idx, &added);
        const cJSON        *sc = cJSON_GetObjectItemCaseSensitive(l, "score");
        if (f->desc && cJSON_IsNumber(sc))
            score_add(&f->scores, &f->n_scores, "saebench_autointerp", sc->valuedouble);
    }
    return EV_OK;
}

// ---------------------------------------------------------------------------- entry points

/* JSON Lines in two passes (explanations, then score rows that refer to them). */
static int jsonl(struct pub_set *s, char *text, const char *what, struct ev_err *err) {
    for (int pass = 1; pass <= 2; pass++) {
        int   line = 0;
        char *p = text;
        while (*p) {
            char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            line++;
            size_t k = 0;
            while (k < len && (p[k] == ' ' || p[k] == '\r' || p[k] == '\t')) k++;
            if (k < len) {
                cJSON        *o = NULL;
                struct ev_err e2;
                if (json_parse(p, len, what, &o, &e2) != EV_OK)
                    return ev_fail(err, EV_EFAIL, "%s:%d: not JSON (%s)", what, line, e2.msg);
                int rc = np_row(s, o, pass, what, line, err);
                json_free(o);
                if (rc != EV_OK) return rc;
            }
            if (!nl) break;
            p = nl + 1;
        }
        if (pass == 1 && s->n_ids) qsort(s->ids, (size_t)s->n_ids, sizeof *s->ids, cmp_id);
    }
    if (!s->format[0]) snprintf(s->format, sizeof s->format, "neuronpedia");
    return EV_OK;
}

static int parse_text(struct pub_set *s, char *text, size_t n, const char *what,
                      struct ev_err *err) {
    if (memchr(text, 0, n))
        return ev_fail(err, EV_EFAIL, "%s: a NUL byte; expected JSON or JSON Lines", what);
    const char *p = text;
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
    if (!*p) return ev_fail(err, EV_EFAIL, "%s: empty", what);
    /* one JSON value filling the text, else JSON Lines */
    cJSON *j = NULL;
    if (*p == '{' || *p == '[') {
        const char *end = NULL;
        j = cJSON_ParseWithLengthOpts(text, n, &end, 0);
        while (j && end && (size_t)(end - text) < n &&
               (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
            end++;
        if (j && (!end || (size_t)(end - text) < n)) {
            json_free(j);
            j = NULL;
        }
    }
    if (j) {
        int          rc = EV_OK;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "eval_type_id");
        if (cJSON_IsString(t)) {
            rc = saebench(s, j, t->valuestring, what, err);
        } else if (cJSON_IsArray(j)) {
            const cJSON *o;
            int          i = 0;
            for (int pass = 1; pass <= 2 && rc == EV_OK; pass++) {
                i = 0;
                cJSON_ArrayForEach(o, j) if (rc == EV_OK) rc = np_row(s, o, pass, what, ++i, err);
                if (pass == 1 && s->n_ids) qsort(s->ids, (size_t)s->n_ids, sizeof *s->ids, cmp_id);
            }
            if (!s->format[0]) snprintf(s->format, sizeof s->format, "neuronpedia");
        } else {
            rc = np_row(s, j, 1, what, 1, err);
            if (!s->format[0]) snprintf(s->format, sizeof s->format, "neuronpedia");
        }
        json_free(j);
        return rc;
    }
    return jsonl(s, text, what, err);
}

int pub_parse(const void *data, size_t n, const char *what, struct pub_set *out,
              struct ev_err *err) {
    return pub_parse_capped(data, n, PUB_MAX_BYTES, what, out, err);
}

int pub_parse_capped(const void *data, size_t n, size_t max, const char *what,
                     struct pub_set *out, struct ev_err *err) {
    int rc;
    if (gz_is(data, n)) {
        char  *t = NULL;
        size_t tn = 0;
        if ((rc = gz_inflate(data, n, max, what, &t, &tn, err)) != EV_OK) return rc;
        rc = parse_text(out, t, tn, what, err);
        free(t);
    } else {
        char *t = xmalloc(n + 1);
        memcpy(t, data, n);
        t[n] = 0;
        rc = parse_text(out, t, n, what, err);
        free(t);
    }
    finish(out);
    return rc;
}

static int load_file(const char *path, struct pub_set *out, struct ev_err *err) {
    char  *d = NULL;
    size_t n = 0;
    int    rc = file_read_all(path, &d, &n, err);
    if (rc != EV_OK) return rc;
    rc = pub_parse(d, n, path, out, err);
    free(d);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.jsonl / *.jsonl.gz / *.json of dir, in name order; *found += their number. */
static int load_dir(const char *dir, struct pub_set *out, int *found, struct ev_err *err) {
    DIR *d = opendir(dir);
    if (!d) return EV_OK;
    char         **names = NULL;
    int            n = 0, rc = EV_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        int ok = (l > 6 && !strcmp(de->d_name + l - 6, ".jsonl")) ||
                 (l > 9 && !strcmp(de->d_name + l - 9, ".jsonl.gz")) ||
                 (l > 5 && !strcmp(de->d_name + l - 5, ".json"));
        if (!ok) continue;
        names = xrealloc(names, sizeof *names * (size_t)(n + 1));
        names[n++] = path_join(dir, de->d_name);
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        if (rc == EV_OK) rc = load_file(names[i], out, err);
        free(names[i]);
    }
    free(names);
    *found += n;
    return rc;
}

int pub_load(const char *path, struct pub_set *out, struct ev_err *err) {
    if (!path_is_dir(path)) return load_file(path, out, err);
    char *ex = path_join(path, "explanations"), *sc = path_join(path, "explanation_scores");
    int   found = 0, rc = load_dir(ex, out, &found, err);
    if (rc == EV_OK) rc = load_dir(sc, out, &found, err);
    if (rc == EV_OK && found == 0)
        rc = ev_fail(err, EV_EFAIL, "%s: a folder without .jsonl[.gz] files in explanations/ (a "
                                    "Neuronpedia export's source folder holds them)", path);
    free(ex), free(sc);
    return rc;
}

int pub_write_features(const struct pub_set *s, int d_sae, const char *path,
                       struct ev_err *err) {
    int   *idx = xmalloc(sizeof(int) * (size_t)(s->n + 1)), n = 0;
    char **desc = xmalloc(sizeof(char *) * (size_t)(s->n + 1));
    int    rc = EV_OK;
    for (int i = 0; i < s->n; i++) {
        if (!s->f[i].desc) continue;
        if (d_sae > 0 && s->f[i].idx >= d_sae) {
            rc = ev_fail(err, EV_EFAIL, "feature %d is out of range (the SAE has %d features)",
                         s->f[i].idx, d_sae);
            break;
        }
        idx[n] = s->f[i].idx;
        desc[n++] = s->f[i].desc;
    }
    if (rc == EV_OK && n == 0)
        rc = ev_fail(err, EV_EFAIL, "no description to write (%d left out)", s->n_left_out);
    if (rc == EV_OK) rc = eval_features_write(path, idx, desc, n, err);
    if (rc == EV_OK) {
        struct eval_features f;
        if ((rc = eval_features_load(path, d_sae, &f, err)) == EV_OK) eval_features_release(&f);
    }
    free(idx), free(desc);
    return rc;
}
