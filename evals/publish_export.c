/*
 * publish_export — `evalrun export neuronpedia` (see publish.h). The rows follow the columns of
 * Neuronpedia's database (its Prisma schema: models Neuron, Activation, Explanation,
 * ExplanationScore) as its exporter writes them (utils/neuronpedia-utils: one JSON object per
 * line, gzip, 1024 features a batch, the source id "LAYER-SET" as each row's "layer").
 */
#include "evals/publish.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/gz.h"
#include "base/hash.h"
#include "base/json.h"
#include "evals/card.h"
#include "store/index.h"

#define PUB_BATCH 1024
#define CREATOR   "evalrun"

enum { OUT_FEATURES, OUT_ACTIVATIONS, OUT_EXPLANATIONS, OUT_SCORES, N_OUT };
static const char *out_dirs[N_OUT] = {"features", "activations", "explanations",
                                      "explanation_scores"};

struct exporter {
    const char *model_id;
    char        source_id[160], set[64], tmp[4096];
    struct sbuf batch[N_OUT];
};

/* A 25-character id like Neuronpedia's cuids, derived from what it names (reproducible). */
static void make_id(char out[26], const char *kind, const char *source, int feature, int k) {
    char *s = xasprintf("%s/%s/%d/%d", kind, source, feature, k), hex[65];
    sha256_hex(s, strlen(s), hex);
    free(s);
    snprintf(out, 26, "c%.24s", hex);
}

static void add_line(struct sbuf *sb, cJSON *o) {
    char *t = json_print(o);
    sbuf_adds(sb, t);
    sbuf_adds(sb, "\n");
    free(t);
    json_free(o);
}

static cJSON *row_base(const struct exporter *x, int feature) {
    cJSON *o = cJSON_CreateObject();
    char   idx[16];
    snprintf(idx, sizeof idx, "%d", feature);
    cJSON_AddStringToObject(o, "modelId", x->model_id);
    cJSON_AddStringToObject(o, "layer", x->source_id);
    cJSON_AddStringToObject(o, "index", idx);
    return o;
}

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

static void feature_row(struct exporter *x, const struct card *c, const char *hook) {
    cJSON *o = row_base(x, c->feature);
    double mx = c->has_stats ? c->max_act : 0;
    for (int i = 0; i < c->n_top; i++)
        for (int t = 0; t < c->top[i].n; t++) mx = fmax(mx, c->top[i].acts[t]);
    add_num(o, "maxActApprox", mx);
    cJSON_AddStringToObject(o, "creatorId", CREATOR);
    cJSON_AddStringToObject(o, "sourceSetName", x->set);
    cJSON_AddStringToObject(o, "hookName", hook);
    add_num(o, "frac_nonzero", c->has_stats ? c->density : 0);
    cJSON *ps = cJSON_AddArrayToObject(o, "pos_str"), *pv = cJSON_AddArrayToObject(o, "pos_values");
    cJSON *ns = cJSON_AddArrayToObject(o, "neg_str"), *nv = cJSON_AddArrayToObject(o, "neg_values");
    for (int i = 0; i < c->n_logits; i++) {
        cJSON_AddItemToArray(ps, cJSON_CreateString(c->logit_top[i].text));
        cJSON_AddItemToArray(pv, cJSON_CreateNumber(c->logit_top[i].value));
        cJSON_AddItemToArray(ns, cJSON_CreateString(c->logit_bottom[i].text));
        cJSON_AddItemToArray(nv, cJSON_CreateNumber(c->logit_bottom[i].value));
    }
    cJSON *ki = cJSON_AddArrayToObject(o, "topkCosSimIndices");
    cJSON *kv = cJSON_AddArrayToObject(o, "topkCosSimValues");
    for (int i = 0; i < c->n_neighbors; i++) {
        cJSON_AddItemToArray(ki, cJSON_CreateNumber(c->neighbors[i].feature));
        cJSON_AddItemToArray(kv, cJSON_CreateNumber(c->neighbors[i].cosine));
    }
    cJSON_AddBoolToObject(o, "hasVector", 0);
    add_line(&x->batch[OUT_FEATURES], o);
}

static void activation_rows(struct exporter *x, const struct card *c) {
    for (int i = 0; i < c->n_top + c->n_intervals; i++) {
        const struct card_context *k = i < c->n_top ? &c->top[i] : &c->intervals[i - c->n_top];
        if (k->n < 1) continue;
        cJSON *o = row_base(x, c->feature);
        char   id[26], di[24];
        make_id(id, "activation", x->source_id, c->feature, (int)k->example_id);
        cJSON_AddStringToObject(o, "id", id);
        cJSON *tk = cJSON_AddArrayToObject(o, "tokens"), *vs = cJSON_AddArrayToObject(o, "values");
        int    at = 0;
        double mn = k->acts[0];
        for (int t = 0; t < k->n; t++) {
            cJSON_AddItemToArray(tk, cJSON_CreateString(k->pieces[t]));
            cJSON_AddItemToArray(vs, cJSON_CreateNumber(k->acts[t]));
            if (k->acts[t] > k->acts[at]) at = t;
            mn = fmin(mn, k->acts[t]);
        }
        add_num(o, "maxValue", k->acts[at]);
        cJSON_AddNumberToObject(o, "maxValueTokenIndex", at);
        add_num(o, "minValue", mn);
        cJSON_AddStringToObject(o, "creatorId", CREATOR);
        cJSON_AddStringToObject(o, "dataSource", i < c->n_top ? "evalrun index: top"
                                                              : "evalrun index: interval");
        snprintf(di, sizeof di, "%lld", (long long)k->example_id);
        cJSON_AddStringToObject(o, "dataIndex", di);
        add_line(&x->batch[OUT_ACTIVATIONS], o);
    }
}

/* "explainer:PROVIDER:MODEL" -> MODEL; anything else NULL */
static const char *explainer_model(const char *source) {
    const char *p = source && !strncmp(source, "explainer:", 10) ? strrchr(source, ':') : NULL;
    return p && p[1] ? p + 1 : NULL;
}

static void explanation_rows(struct exporter *x, const struct card *c) {
    if (c->n_desc < 1 || !c->desc[0].text) return;
    char id[26];
    make_id(id, "explanation", x->source_id, c->feature, 0);
    cJSON *o = row_base(x, c->feature);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "description", c->desc[0].text);
    cJSON_AddStringToObject(o, "authorId", CREATOR);
    cJSON_AddStringToObject(o, "typeName", c->desc[0].source ? c->desc[0].source : "evalrun");
    const char *em = explainer_model(c->desc[0].source);
    if (em) cJSON_AddStringToObject(o, "explanationModelName", em);
    else cJSON_AddNullToObject(o, "explanationModelName");
    add_line(&x->batch[OUT_EXPLANATIONS], o);
    /* the scores of the runs that graded this feature, each with its n */
    for (int i = 0; i < c->n_scores; i++) {
        const struct card_score *s = &c->scores[i];
        if (!isfinite(s->mean) || s->n < 1) continue;
        char sid[26], det[160];
        make_id(sid, "score", x->source_id, c->feature, i + 1);
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "id", sid);
        cJSON_AddStringToObject(r, "explanationId", id);
        cJSON_AddNumberToObject(r, "value", s->mean);
        cJSON_AddStringToObject(r, "explanationScoreTypeName", s->kind);
        cJSON_AddStringToObject(r, "explanationScoreModelName", s->grader ? s->grader : "");
        cJSON_AddStringToObject(r, "initiatedByUserId", CREATOR);
        snprintf(det, sizeof det, "{\"n\":%d,\"run_id\":%lld,\"producer\":\"evalrun\"}", s->n,
                 (long long)s->run_id);
        cJSON_AddStringToObject(r, "jsonDetails", det);
        add_line(&x->batch[OUT_SCORES], r);
    }
}

static int flush_batches(struct exporter *x, int k, struct ev_err *err) {
    int rc = EV_OK;
    for (int d = 0; d < N_OUT && rc == EV_OK; d++) {
        char  *gz = NULL, name[48];
        size_t n = 0;
        snprintf(name, sizeof name, "%s/batch-%d.jsonl.gz", out_dirs[d], k);
        char *p = path_join(x->tmp, name);
        gz_deflate(x->batch[d].buf ? x->batch[d].buf : "", x->batch[d].len, &gz, &n);
        rc = file_write_atomic(p, gz, n, err);
        free(gz), free(p);
        sbuf_release(&x->batch[d]);
        sbuf_init(&x->batch[d]);
    }
    return rc;
}

static int write_json_line(const char *dir, const char *name, cJSON *o, struct ev_err *err) {
    char *p = path_join(dir, name);
    int   rc = json_write_file(p, o, JSON_WRITE_NEWLINE, err);
    free(p);
    json_free(o);
    return rc;
}

static int meta_files(struct exporter *x, struct eval_env *e, int n_features, struct ev_err *err) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", x->model_id);
    cJSON_AddStringToObject(m, "displayName", x->model_id);
    cJSON_AddStringToObject(m, "creatorId", CREATOR);
    cJSON_AddNumberToObject(m, "layers", model_config(e->model)->n_layers);
    cJSON_AddNumberToObject(m, "neuronsPerLayer", model_config(e->model)->hidden_dim);
    cJSON_AddStringToObject(m, "owner", "");
    cJSON *ss = cJSON_CreateObject();
    cJSON_AddStringToObject(ss, "modelId", x->model_id);
    cJSON_AddStringToObject(ss, "name", x->set);
    cJSON_AddStringToObject(ss, "description", e->sae->cfg.hook_name);
    cJSON_AddStringToObject(ss, "creatorName", CREATOR);
    cJSON_AddStringToObject(ss, "creatorId", CREATOR);
    cJSON_AddStringToObject(ss, "visibility", "PRIVATE");
    cJSON *so = cJSON_CreateObject();
    cJSON_AddStringToObject(so, "id", x->source_id);
    cJSON_AddStringToObject(so, "modelId", x->model_id);
    cJSON_AddStringToObject(so, "setName", x->set);
    cJSON_AddStringToObject(so, "creatorId", CREATOR);
    cJSON_AddStringToObject(so, "visibility", "PRIVATE");
    cJSON_AddNumberToObject(so, "num_features", n_features);
    cJSON_AddStringToObject(so, "notes", e->sae_hash);
    int rc = write_json_line(x->tmp, "model.jsonl", m, err);
    if (rc == EV_OK) rc = write_json_line(x->tmp, "sourceset.jsonl", ss, err);
    else json_free(ss);
    if (rc == EV_OK) rc = write_json_line(x->tmp, "source.jsonl", so, err);
    else json_free(so);
    return rc;
}

static void default_model_id(const char *path, char *out, size_t n) {
    const char *end = path + strlen(path), *b;
    while (end > path && end[-1] == '/') end--;
    b = end;
    while (b > path && b[-1] != '/') b--;
    snprintf(out, n, "%.*s", (int)(end - b), b);
    char *dot = strrchr(out, '.');
    if (dot && dot != out && !strcmp(dot, ".bin")) *dot = 0;
}

static int export_features(struct exporter *x, struct eval_env *e, const struct pub_export_opts *o,
                           const int *ids, int n, struct ev_err *err) {
    struct card_opts co = card_default_opts();
    char             hook[128];
    int              rc = EV_OK;
    co.n_top = o->n_top > 0 ? o->n_top : 20;
    co.neuron_tokens = 0;
    model_hook_name(e->hook, hook, sizeof hook);
    for (int i = 0; i < n && rc == EV_OK; i++) {
        struct card c = {0};
        if ((rc = card_build(e, ids[i], &co, &c, err)) != EV_OK) break;
        feature_row(x, &c, hook);
        activation_rows(x, &c);
        explanation_rows(x, &c);
        card_release(&c);
        if ((i + 1) % PUB_BATCH == 0 || i + 1 == n) rc = flush_batches(x, i / PUB_BATCH, err);
        if (rc == EV_OK && ev_interrupted()) rc = ev_fail(err, EV_EINTR, "interrupted");
    }
    return rc;
}

int pub_export_neuronpedia(struct eval_env *e, const struct pub_export_opts *o, int *n_out,
                           char **written, struct ev_err *err) {
    struct exporter x;
    char            mid[128];
    int            *ids = NULL, n = 0, rc;
    memset(&x, 0, sizeof x);
    *n_out = 0;
    *written = NULL;
    if (o->model_id) snprintf(mid, sizeof mid, "%s", o->model_id);
    else default_model_id(e->model_path, mid, sizeof mid);
    x.model_id = mid;
    snprintf(x.set, sizeof x.set, "%s", o->source_set ? o->source_set : "evalrun");
    snprintf(x.source_id, sizeof x.source_id, "%d-%s", o->layer >= 0 ? o->layer : e->hook.layer,
             x.set);
    char *model_dir = path_join(o->out_dir, mid), *final = path_join(model_dir, x.source_id);
    if (path_exists(final)) {
        rc = ev_fail(err, EV_EFAIL, "%s exists; remove it or export elsewhere (--out)", final);
        goto out;
    }
    if (o->features) {
        ids = xmalloc(sizeof(int) * (size_t)(o->n_features + 1));
        memcpy(ids, o->features, sizeof(int) * (size_t)o->n_features);
        n = o->n_features;
    } else if ((rc = index_fired_features(e->store, e->sae_id, e->sae->cfg.d_sae, &ids, &n,
                                          err)) != EV_OK) {
        goto out;
    }
    if (n == 0) {
        rc = ev_fail(err, EV_EFAIL, "no feature of this SAE fired in the database's index; "
                                    "run `evalrun index` first");
        goto out;
    }
    snprintf(x.tmp, sizeof x.tmp, "%s.tmp.%d", final, (int)getpid());
    for (int d = 0; d < N_OUT; d++) {
        char *p = path_join(x.tmp, out_dirs[d]);
        rc = mkdir_p(p, err);
        free(p);
        sbuf_init(&x.batch[d]);
        if (rc != EV_OK) goto out;
    }
    if ((rc = export_features(&x, e, o, ids, n, err)) == EV_OK &&
        (rc = meta_files(&x, e, n, err)) == EV_OK && rename(x.tmp, final) != 0)
        rc = ev_fail(err, EV_EFAIL, "cannot rename %s to %s", x.tmp, final);
    if (rc == EV_OK) {
        *n_out = n;
        *written = final;
        final = NULL;
    }
out:
    if (rc != EV_OK && x.tmp[0]) {
        for (int d = 0; d < N_OUT; d++) {
            char *p = path_join(x.tmp, out_dirs[d]);
            remove_flat_dir(p);
            free(p);
        }
        remove_flat_dir(x.tmp);
    }
    for (int d = 0; d < N_OUT; d++) sbuf_release(&x.batch[d]);
    free(ids), free(model_dir), free(final);
    return rc;
}
