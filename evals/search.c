/*
 * search — ranked lists of features by prompt, by decoder neighbourhood and by attribution
 * (see search.h).
 */
#include "evals/search.h"

#include "evals/index.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "evals/attribution.h"
#include "sae/intervene.h"
#include "sae/sae_analysis.h"
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
