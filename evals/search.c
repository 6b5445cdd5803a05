/*
 * search — ranked lists of features by prompt, by decoder neighbourhood and by attribution
 * (see search.h).
 */
#include "evals/search.h"

#include "evals/index.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "evals/attribution.h"
#include "evals/card.h"
#include "sae/intervene.h"
#include "sae/sae_analysis.h"
#include "store/features.h"
#include "store/index.h"
#include "model/tok.h"

void search_result_release(struct search_result *r) {
    if (!r) return;
    for (int i = 0; i < r->n; i++) free(r->hits[i].description);
    free(r->hits);
    memset(r, 0, sizeof *r);
}

int search_index_has_stats(struct eval_env *e, struct ev_err *err) {
    return index_has_stats(e->store, e->sae_id, err);
}

static int load_stats(struct eval_env *e, double *max_act, double *density, struct ev_err *err) {
    return index_stats_all(e->store, e->sae_id, e->sae->cfg.d_sae, max_act, density, err);
}

/* Fills density, max_act and description of the hits. */
static int annotate(struct eval_env *e, struct search_result *r, struct ev_err *err) {
    int     d_sae = e->sae->cfg.d_sae;
    double *mx = xmalloc(sizeof *mx * (size_t)d_sae), *dn = xmalloc(sizeof *dn * (size_t)d_sae);
    int     rc = load_stats(e, mx, dn, err);
    if (rc == EV_OK)
        for (int i = 0; i < r->n; i++) {
            struct search_hit *h = &r->hits[i];
            h->max_act = mx[h->feature];
            h->density = dn[h->feature];
            h->description = eval_description_get(e, h->feature, NULL);
        }
    free(mx);
    free(dn);
    return rc;
}

static int cmp_hit(const void *a, const void *b) {
    const struct search_hit *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->feature - y->feature;
}

/* Sorts hits[0..n) and keeps the first top of them in r (takes ownership of hits). */
static void keep_top(struct search_result *r, struct search_hit *hits, int n, int top) {
    qsort(hits, (size_t)n, sizeof *hits, cmp_hit);
    r->n = n < top ? n : top;
    r->hits = hits;
}

// ---------------------------------------------------------------------------- by prompt

struct encoded {
    int *ids;
    int  n;
};

/* *out empty (no target, no contrast, d NAN); EV_EFAIL when a tokenizer is needed (err not
 * NULL) and the model has none. */
static int result_start(const struct eval_env *e, const struct tok *tk, struct search_result *out,
                        struct ev_err *err) {
    memset(out, 0, sizeof *out);
    out->contrast = out->target = -1;
    out->d = NAN;
    if (err && !tk) return ev_fail(err, EV_EFAIL, "model %s has no tokenizer", e->model_path);
    return EV_OK;
}

static int encode_prompt(const struct tok *tk, const char *text, const char *what, int seq_len,
                         struct encoded *out, struct ev_err *err) {
    if (!text || !*text) return ev_fail(err, EV_EUSAGE, "%s is empty", what);
    int rc = tok_encode(tk, text, 1, &out->ids, &out->n, err);
    if (rc != EV_OK) return rc;
    int content = out->n - (tok_bos(tk) >= 0 && out->n > 0 && out->ids[0] == tok_bos(tk));
    if (content < 1) return ev_fail(err, EV_EUSAGE, "%s '%s' encodes to no token", what, text);
    if (out->n > seq_len)
        return ev_fail(err, EV_EFAIL, "%s is %d tokens; the model's context is %d", what, out->n,
                       seq_len);
    return EV_OK;
}

/* a (d_sae): each feature's activation on one prompt (last token or max over tokens). */
static int prompt_acts(struct eval_env *e, struct model_state *st, const struct encoded *p,
                       enum search_position pos, float *resid, float *f, float *a,
                       struct ev_err *err) {
    int d_sae = e->sae->cfg.d_sae;
    int rc = intervene_encode(st, e->sae, e->hook, p->ids, 0, p->n, resid, f, err);
    if (rc != EV_OK) return rc;
    const struct tok *tk = model_tokenizer(e->model);
    int first = (tok_bos(tk) >= 0 && p->ids[0] == tok_bos(tk)) ? 1 : 0;
    if (pos == SEARCH_POS_LAST) first = p->n - 1;
    for (int i = 0; i < d_sae; i++) a[i] = 0.0f;
    for (int t = first; t < p->n; t++) {
        const float *ft = f + (size_t)t * d_sae;
        for (int i = 0; i < d_sae; i++)
            if (ft[i] > a[i]) a[i] = ft[i];
    }
    return EV_OK;
}

int search_prompts(struct eval_env *e, const struct search_prompt_opts *o,
                   struct search_result *out, struct ev_err *err) {
    const struct tok *tk = model_tokenizer(e->model);
    int               d_sae = e->sae->cfg.d_sae, C = e->sae->cfg.d_in;
    int               seq_len = model_config(e->model)->seq_len;
    int               n_all = o->n_prompts + o->n_negatives, max_T = 1, rc = EV_OK;
    struct encoded   *enc = xcalloc((size_t)(n_all ? n_all : 1), sizeof *enc);
    struct model_state *st = NULL;
    float  *resid = NULL, *f = NULL, *a = NULL;
    double *pos_sum = xcalloc((size_t)d_sae, sizeof *pos_sum);
    double *neg_sum = xcalloc((size_t)d_sae, sizeof *neg_sum);
    double *raw_sum = xcalloc((size_t)d_sae, sizeof *raw_sum);
    double *mx = xmalloc(sizeof *mx * (size_t)d_sae), *dn = xmalloc(sizeof *dn * (size_t)d_sae);
    int    *fired = xcalloc((size_t)d_sae, sizeof *fired);
    struct search_hit *hits = NULL;
    if ((rc = result_start(e, tk, out, err)) != EV_OK) goto out;
    if (o->n_prompts < 1) {
        rc = ev_fail(err, EV_EUSAGE, "at least one --prompt is needed");
        goto out;
    }
    for (int k = 0; k < n_all; k++) {
        int  neg = k >= o->n_prompts;
        char what[48];
        snprintf(what, sizeof what, neg ? "--negative %d" : "--prompt %d",
                 (neg ? k - o->n_prompts : k) + 1);
        const char *text = neg ? o->negatives[k - o->n_prompts] : o->prompts[k];
        if ((rc = encode_prompt(tk, text, what, seq_len, &enc[k], err)) != EV_OK) goto out;
        if (enc[k].n > max_T) max_T = enc[k].n;
    }
    int has = search_index_has_stats(e, err);
    if (has < 0) {
        rc = has;
        goto out;
    }
    if (o->scoring == SEARCH_SCORE_RELATIVE && !has) {
        char *cmd = eval_index_build_command(e, NULL);
        rc = ev_fail(err, EV_EFAIL, "relative scores need the feature index of SAE %s (or use "
                                    "--score raw): build it with: %s", e->sae_path, cmd);
        free(cmd);
        goto out;
    }
    out->relative = o->scoring == SEARCH_SCORE_RELATIVE || (o->scoring == SEARCH_SCORE_AUTO && has);
    if ((rc = load_stats(e, mx, dn, err)) != EV_OK) goto out;
    if ((rc = model_state_new(e->model, max_T, 0, &st, err)) != EV_OK) goto out;
    resid = xmalloc(sizeof *resid * (size_t)max_T * C);
    f = xmalloc(sizeof *f * (size_t)max_T * d_sae);
    a = xmalloc(sizeof *a * (size_t)d_sae);
    for (int k = 0; k < n_all; k++) {
        int neg = k >= o->n_prompts;
        if ((rc = prompt_acts(e, st, &enc[k], o->position, resid, f, a, err)) != EV_OK) goto out;
        for (int i = 0; i < d_sae; i++) {
            double v = a[i];
            if (!neg && v > 0) fired[i] = 1;
            if (!neg) raw_sum[i] += v;
            if (out->relative) v = (isfinite(mx[i]) && mx[i] > 0) ? v / mx[i] : 0.0;
            if (neg) neg_sum[i] += v;
            else pos_sum[i] += v;
        }
    }
    hits = xcalloc((size_t)d_sae, sizeof *hits);
    int n = 0;
    for (int i = 0; i < d_sae; i++) {
        if (!fired[i]) continue;
        double pm = pos_sum[i] / o->n_prompts;
        double nm = o->n_negatives ? neg_sum[i] / o->n_negatives : 0.0;
        if (!(pm - nm > 0)) continue;
        hits[n++] = (struct search_hit){.feature = i, .score = pm - nm,
                                        .act = raw_sum[i] / o->n_prompts, .neg = nm};
    }
    keep_top(out, hits, n, o->top);
    hits = NULL;
    rc = annotate(e, out, err);
out:
    for (int k = 0; k < n_all; k++) free(enc[k].ids);
    free(enc);
    model_state_free(st);
    free(resid);
    free(f);
    free(a);
    free(pos_sum);
    free(neg_sum);
    free(raw_sum);
    free(mx);
    free(dn);
    free(fired);
    free(hits);
    if (rc != EV_OK) search_result_release(out);
    return rc;
}

// ---------------------------------------------------------------------------- neighbours

int search_like(struct eval_env *e, int feature, int top, struct search_result *out,
                struct ev_err *err) {
    int d_sae = e->sae->cfg.d_sae;
    result_start(e, NULL, out, NULL);
    if (feature < 0 || feature >= d_sae)
        return ev_fail(err, EV_EFAIL, "feature %d does not exist: SAE %s has features 0..%d",
                       feature, e->sae_path, d_sae - 1);
    if (top > d_sae - 1) top = d_sae - 1;
    if (top < 1) return EV_OK;
    int   *nb = xmalloc(sizeof *nb * (size_t)top);
    float *cs = xmalloc(sizeof *cs * (size_t)top);
    sae_neighbors(e->sae, &feature, 1, top, nb, cs);
    out->hits = xcalloc((size_t)top, sizeof *out->hits);
    out->n = top;
    for (int i = 0; i < top; i++)
        out->hits[i] = (struct search_hit){.feature = nb[i], .score = cs[i], .act = NAN,
                                           .neg = NAN};
    free(nb);
    free(cs);
    int rc = annotate(e, out, err);
    if (rc != EV_OK) search_result_release(out);
    return rc;
}

// ---------------------------------------------------------------------------- attribution

/* attr (T, d_sae) and f (T, d_sae) of d = logit(target) at the last position (no contrast):
 * the same computation as attr_compute with the gradient of one logit. */
static int attr_single(struct eval_env *e, struct model_state *st, const int *ids, int T,
                       int target, const float *dirs, float *f, float *attr, double *d,
                       struct ev_err *err) {
    int    C = e->sae->cfg.d_out, V = model_config(e->model)->vocab_size;
    float *x = xmalloc(sizeof *x * (size_t)T * C);    // (T, C) at the hook written
    float *grad = xmalloc(sizeof *grad * (size_t)T * C); // (T, C) dd/dx
    float *g = xcalloc((size_t)V, sizeof *g);         // (V) dd/dlogits
    int    rc;
    if ((rc = intervene_encode_out(st, e->sae, e->hook, e->hook_out, ids, 0, T, x, f, NULL,
                                   err)) != EV_OK)
        goto out;
    if ((rc = model_forward_from_hook(st, 0, T, e->hook_out, x, err)) != EV_OK) goto out;
    *d = model_state_logits(st)[(size_t)(T - 1) * V + target];
    g[target] = 1.0f;
    if ((rc = model_backward_to_hook(st, e->hook_out, g, grad, err)) != EV_OK) goto out;
    intervene_attribution(attr, f, grad, dirs, T, C, e->sae->cfg.d_sae);
out:
    free(x);
    free(grad);
    free(g);
    return rc;
}

int search_attribution(struct eval_env *e, const char *prompt, const char *target,
                       const char *contrast, int top, struct search_result *out,
                       struct ev_err *err) {
    const struct tok   *tk = model_tokenizer(e->model);
    int                 d_sae = e->sae->cfg.d_sae;
    int                 seq_len = model_config(e->model)->seq_len;
    struct encoded      p = {0};
    struct model_state *st = NULL;
    struct attr_result  ar = {0};
    float  *dirs = NULL, *f = NULL, *attr = NULL;
    double *sum = xcalloc((size_t)d_sae, sizeof *sum);
    float  *amax = xcalloc((size_t)d_sae, sizeof *amax);
    struct search_hit *hits = NULL;
    int     rc, tid = -1, cid = -1;
    if ((rc = result_start(e, tk, out, err)) != EV_OK) goto out;
    if ((rc = encode_prompt(tk, prompt, "--prompt", seq_len, &p, err)) != EV_OK) goto out;
    if (!target || !*target) {
        rc = ev_fail(err, EV_EUSAGE, "--target is empty");
        goto out;
    }
    if ((rc = attr_resolve_token(tk, prompt, p.ids, p.n, target, "--target", &tid, err)) != EV_OK)
        goto out;
    if (contrast) {
        if (!*contrast) {
            rc = ev_fail(err, EV_EUSAGE, "--contrast is empty");
            goto out;
        }
        if ((rc = attr_resolve_token(tk, prompt, p.ids, p.n, contrast, "--contrast", &cid,
                                     err)) != EV_OK)
            goto out;
        if (cid == tid) {
            rc = ev_fail(err, EV_EUSAGE, "--target '%s' and --contrast '%s' are the same token",
                         target, contrast);
            goto out;
        }
    }
    if ((rc = model_state_new(e->model, p.n, MODEL_STATE_GRAD, &st, err)) != EV_OK) goto out;
    dirs = intervene_directions(e->sae);
    int first = (tok_bos(tk) >= 0 && p.ids[0] == tok_bos(tk)) ? 1 : 0;
    if (cid >= 0) {
        if ((rc = attr_compute(st, e->model, e->sae, e->hook, e->hook_out, dirs, p.ids, p.n, tid,
                               cid, 0, &ar, err)) != EV_OK)
            goto out;
        out->d = ar.d;
        for (int k = 0; k < ar.n; k++) {
            const struct attr_feature *it = &ar.items[k];
            if (it->pos < first) continue;
            sum[it->feature] += (double)it->attribution;
            if (it->activation > amax[it->feature]) amax[it->feature] = it->activation;
        }
    } else {
        f = xmalloc(sizeof *f * (size_t)p.n * d_sae);
        attr = xmalloc(sizeof *attr * (size_t)p.n * d_sae);
        if ((rc = attr_single(e, st, p.ids, p.n, tid, dirs, f, attr, &out->d, err)) != EV_OK)
            goto out;
        for (int t = first; t < p.n; t++)
            for (int i = 0; i < d_sae; i++) {
                size_t k = (size_t)t * d_sae + i;
                if (f[k] == 0.0f) continue;
                sum[i] += (double)attr[k];
                if (f[k] > amax[i]) amax[i] = f[k];
            }
    }
    out->target = tid;
    out->contrast = cid;
    hits = xcalloc((size_t)d_sae, sizeof *hits);
    int n = 0;
    for (int i = 0; i < d_sae; i++)
        if (amax[i] > 0)
            hits[n++] = (struct search_hit){.feature = i, .score = sum[i], .act = amax[i],
                                            .neg = NAN};
    keep_top(out, hits, n, top);
    hits = NULL;
    rc = annotate(e, out, err);
out:
    free(p.ids);
    model_state_free(st);
    attr_result_release(&ar);
    free(dirs);
    free(f);
    free(attr);
    free(sum);
    free(amax);
    free(hits);
    if (rc != EV_OK) search_result_release(out);
    return rc;
}

// ---------------------------------------------------------------------------- the commands

#define LINE_W 80

static int check_feature(const struct eval_env *e, int f, struct ev_err *err) {
    if (f >= e->sae->cfg.d_sae)
        return ev_fail(err, EV_EFAIL, "feature %d does not exist: SAE %s has features 0..%d", f,
                       e->sae_path, e->sae->cfg.d_sae - 1);
    return EV_OK;
}

static void print_clipped(const char *s, int w) {
    char *c = card_clip(s, w);
    fputs(c, stdout);
    free(c);
}

static void fmt_density(char *buf, size_t n, double d) {
    if (isfinite(d)) snprintf(buf, n, "%.2e", d);
    else snprintf(buf, n, "-");
}

static void print_hits(const struct search_result *r, const char *score_name, int with_act) {
    printf("%4s %7s %10s", "rank", "feature", score_name);
    if (with_act) printf(" %8s", "act");
    printf(" %9s  %s\n", "density", "description");
    int used = 4 + 1 + 7 + 1 + 10 + (with_act ? 9 : 0) + 1 + 9 + 2;
    for (int i = 0; i < r->n; i++) {
        const struct search_hit *h = &r->hits[i];
        char                     dn[32];
        fmt_density(dn, sizeof dn, h->density);
        printf("%4d %7d %10.4f", i + 1, h->feature, h->score);
        if (with_act) printf(" %8.3f", h->act);
        printf(" %9s  ", dn);
        print_clipped(h->description ? h->description : "-", LINE_W - used);
        putchar('\n');
    }
    if (r->n == 0) printf("(no feature matched)\n");
}

static char *hits_json(const struct search_result *r, const char *mode) {
    cJSON *o = cJSON_CreateObject(), *a;
    cJSON_AddStringToObject(o, "schema", "evalrun.search/1");
    cJSON_AddStringToObject(o, "mode", mode);
    if (strcmp(mode, "prompt") == 0) cJSON_AddBoolToObject(o, "relative", r->relative);
    if (strcmp(mode, "attribution") == 0) {
        cJSON_AddNumberToObject(o, "target", r->target);
        if (r->contrast >= 0) cJSON_AddNumberToObject(o, "contrast", r->contrast);
        else cJSON_AddNullToObject(o, "contrast");
        cJSON_AddNumberToObject(o, "logit_diff", r->d);
    }
    a = cJSON_AddArrayToObject(o, "hits");
    for (int i = 0; i < r->n; i++) {
        const struct search_hit *h = &r->hits[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "rank", i + 1);
        cJSON_AddNumberToObject(e, "feature", h->feature);
        cJSON_AddNumberToObject(e, "score", h->score);
        if (isfinite(h->act)) cJSON_AddNumberToObject(e, "act", h->act);
        else cJSON_AddNullToObject(e, "act");
        if (isfinite(h->neg)) cJSON_AddNumberToObject(e, "neg", h->neg);
        else cJSON_AddNullToObject(e, "neg");
        if (isfinite(h->density)) cJSON_AddNumberToObject(e, "density", h->density);
        else cJSON_AddNullToObject(e, "density");
        if (isfinite(h->max_act)) cJSON_AddNumberToObject(e, "max_act", h->max_act);
        else cJSON_AddNullToObject(e, "max_act");
        if (h->description) cJSON_AddStringToObject(e, "description", h->description);
        else cJSON_AddNullToObject(e, "description");
        cJSON_AddItemToArray(a, e);
    }
    char *s = json_print_pretty(o);
    json_free(o);
    return s;
}

static int write_out(const char *path, const struct search_result *r, struct ev_err *err) {
    int   *idx = xmalloc(sizeof *idx * (size_t)(r->n ? r->n : 1));
    char **desc = xcalloc((size_t)(r->n ? r->n : 1), sizeof *desc);
    for (int i = 0; i < r->n; i++) {
        idx[i] = r->hits[i].feature;
        /* a description that cannot be stored in a features file is left out, not rejected */
        const char *d = r->hits[i].description;
        if (d && !strstr(d, "{{") && !strstr(d, "}}") && !strpbrk(d, "\n\r\t")) desc[i] = (char *)d;
    }
    int rc = r->n ? eval_features_write(path, idx, desc, r->n, err)
                  : ev_fail(err, EV_EFAIL, "--out %s: no feature matched; nothing written", path);
    free(idx);
    free(desc);
    return rc;
}

/* The hits of an attribution search, under the logit difference they explain. */
static void print_attribution(const struct eval_env *env, const struct search_result *r) {
    const struct tok *tk = model_tokenizer(env->model);
    char *t = tok_piece(tk, -1, r->target) ? xstrdup(tok_piece(tk, -1, r->target)) : NULL;
    char *c = r->contrast >= 0 && tok_piece(tk, -1, r->contrast)
                  ? xstrdup(tok_piece(tk, -1, r->contrast)) : NULL;
    char *line = c ? xasprintf("d = logit(\"%s\") - logit(\"%s\") = %.4f; attribution "
                               "summed over positions", t ? t : "?", c, r->d)
                   : xasprintf("d = logit(\"%s\") = %.4f; attribution summed over "
                               "positions", t ? t : "?", r->d);
    print_clipped(line, LINE_W);
    putchar('\n');
    free(t);
    free(c);
    free(line);
    print_hits(r, "attribution", 1);
}

static void search_print(const struct eval_env *env, const struct search_args *a,
                         const struct search_result *r) {
    if (strcmp(a->format, "json") == 0) {
        char *s = hits_json(r, a->mode);
        printf("%s\n", s);
        free(s);
    } else if (strcmp(a->mode, "like") == 0) {
        printf("nearest features to %d by decoder cosine:\n", a->feature);
        print_hits(r, "cosine", 0);
    } else if (strcmp(a->mode, "attribution") == 0) {
        print_attribution(env, r);
    } else {
        printf("%d prompt%s, %d negative%s, %s; score: %s, prompts - negatives\n",
               a->prompts.n, a->prompts.n == 1 ? "" : "s", a->negs.n, a->negs.n == 1 ? "" : "s",
               a->pos == SEARCH_POS_LAST ? "last token" : "max over tokens",
               r->relative ? "act/max" : "activation");
        print_hits(r, "score", 1);
    }
}

int search_run(const struct search_open *w, const struct search_args *a, struct ev_err *err) {
    struct eval_env      env;
    struct search_result r = {0};
    int                  rc;
    if ((rc = eval_env_open_readonly(&env, w->db_path, w->model, w->model_flags, w->sae,
                                     err)) != EV_OK)
        return rc;
    if (strcmp(a->mode, "like") == 0) {
        if ((rc = check_feature(&env, a->feature, err)) == EV_OK)
            rc = search_like(&env, a->feature, (int)a->top, &r, err);
    } else if (strcmp(a->mode, "attribution") == 0) {
        rc = search_attribution(&env, a->prompts.v[0], a->target, a->contrast, (int)a->top, &r,
                                err);
    } else {
        /* relative scores (the default) read the feature index: built on demand */
        struct search_prompt_opts o = {.prompts = a->prompts.v, .n_prompts = a->prompts.n,
                                       .negatives = a->negs.v, .n_negatives = a->negs.n,
                                       .position = a->pos, .scoring = a->scoring,
                                       .top = (int)a->top};
        if (a->scoring == SEARCH_SCORE_RAW || (rc = eval_index_ensure_readonly(&env, w->db_path, &w->index, err)) == EV_OK)
            rc = search_prompts(&env, &o, &r, err);
    }
    if (rc == EV_OK && a->out) rc = write_out(a->out, &r, err);
    if (rc == EV_OK) {
        search_print(&env, a, &r);
        if (a->out) ev_info("wrote %d feature%s to %s", r.n, r.n == 1 ? "" : "s", a->out);
    }
    search_result_release(&r);
    eval_env_release(&env);
    return rc;
}

int search_show(const struct search_open *w, int feature, const struct card_opts *o,
                const char *format, int width, int colour, struct ev_err *err) {
    struct eval_env env;
    struct card     c = {0};
    int             rc;
    if ((rc = eval_env_open_readonly(&env, w->db_path, w->model, w->model_flags, w->sae,
                                     err)) != EV_OK)
        return rc;
    if ((rc = check_feature(&env, feature, err)) != EV_OK ||
        (rc = eval_index_ensure_readonly(&env, w->db_path, &w->index, err)) != EV_OK ||
        (rc = card_build(&env, feature, o, &c, err)) != EV_OK)
        goto out;
    char *s = strcmp(format, "json") == 0 ? card_render_json(&c)
              : strcmp(format, "md") == 0 ? card_render_md(&c)
                                          : card_render_text(&c, width, colour);
    fputs(s, stdout);
    if (strcmp(format, "json") == 0) putchar('\n');
    free(s);
out:
    card_release(&c);
    eval_env_release(&env);
    return rc;
}

int search_category_normalise(const char *in, char *out, size_t n, struct ev_err *err) {
    while (*in == ' ') in++;
    size_t len = strlen(in);
    while (len && in[len - 1] == ' ') len--;
    if (len == 0) return ev_fail(err, EV_EUSAGE, "CATEGORY is empty");
    if (len >= n || len > 64)
        return ev_fail(err, EV_EUSAGE, "CATEGORY is %zu bytes; at most 64", len);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (ch < 0x20 || ch == 0x7F)
            return ev_fail(err, EV_EUSAGE, "CATEGORY contains a control character");
        out[i] = (char)tolower(ch);
    }
    out[len] = 0;
    return EV_OK;
}

static int print_tagged(void *ctx, int feature, double density, const char *desc) {
    char dn[32];
    if ((*(int *)ctx)++ == 0) printf("%7s %9s  %s\n", "feature", "density", "description");
    fmt_density(dn, sizeof dn, density);
    printf("%7d %9s  ", feature, dn);
    print_clipped(desc ? desc : "-", LINE_W - 19);
    putchar('\n');
    return EV_OK;
}

static int list_category(struct eval_env *env, const char *cat, struct ev_err *err) {
    int n = 0;
    int rc = features_in_category(env->store, env->sae_id, cat, print_tagged, &n, err);
    if (rc == EV_OK && n == 0)
        printf("no feature is tagged '%s' (evalrun tag FEATURE '%s')\n", cat, cat);
    return rc;
}

static int print_category(void *ctx, const char *category, int64_t count) {
    if ((*(int *)ctx)++ == 0) printf("%8s  %s\n", "features", "category");
    printf("%8lld  ", (long long)count);
    print_clipped(category, LINE_W - 10);
    putchar('\n');
    return EV_OK;
}

static int list_categories(struct eval_env *env, struct ev_err *err) {
    int n = 0;
    int rc = features_categories(env->store, env->sae_id, print_category, &n, err);
    if (rc == EV_OK && n == 0) printf("no categories yet: evalrun tag FEATURE CATEGORY\n");
    return rc;
}

int search_tag(const struct search_open *w, int feature, const char *cat, int remove,
               struct ev_err *err) {
    struct eval_env env;
    int             changed = 0;
    int rc = eval_env_open(&env, w->db_path, w->model, w->model_flags, w->sae, err);
    if (rc != EV_OK) return rc;
    if ((rc = check_feature(&env, feature, err)) != EV_OK) goto out;
    if ((rc = features_tag(env.store, env.sae_id, feature, cat, remove, &changed, err)) != EV_OK)
        goto out;
    if (remove && !changed)
        rc = ev_fail(err, EV_EFAIL, "feature %d has no category '%s'", feature, cat);
    else if (remove)
        printf("feature %d: removed from '%s'\n", feature, cat);
    else
        printf("feature %d: %s '%s'\n", feature, changed ? "tagged" : "already tagged", cat);
out:
    eval_env_release(&env);
    return rc;
}

int search_features(const struct search_open *w, const char *category, struct ev_err *err) {
    struct eval_env env;
    int rc = eval_env_open_readonly(&env, w->db_path, w->model, w->model_flags, w->sae, err);
    if (rc != EV_OK) return rc;
    rc = category ? list_category(&env, category, err) : list_categories(&env, err);
    eval_env_release(&env);
    return rc;
}
