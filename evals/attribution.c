/*
 * attribution — attribution of a logit difference to SAE features, and ablation (see
 * attribution.h).
 */
#include "evals/attribution.h"
#include "evals/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evals/common.h"
#include "sae/intervene.h"
#include "base/hash.h"
#include "base/json.h"
#include "base/progress.h"
#include "store/attributions.h"

// ---------------------------------------------------------------------------- prompt sets

void attr_set_release(struct attr_set *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->prompts[i].id);
        free(s->prompts[i].prompt);
        free(s->prompts[i].target);
        free(s->prompts[i].contrast);
    }
    free(s->prompts);
    free(s->name);
    memset(s, 0, sizeof *s);
}

int attr_set_load(const char *path, struct attr_set *out, struct ev_err *err) {
    cJSON          *root = NULL;
    const cJSON    *arr = NULL;
    const char     *name = NULL;
    struct attr_set set = {0};
    memset(out, 0, sizeof *out);
    int rc = prompt_set_open(path, "{\"prompt\", \"target\", \"contrast\"}", &root, &arr,
                             &name, err);
    if (rc != EV_OK) goto out;
    rc = EV_EFAIL;
    set.name = xstrdup(name);
    int n = cJSON_GetArraySize(arr);
    if (n == 0) {
        ev_fail(err, EV_EFAIL, "%s: the prompt set is empty (\"prompts\" has no entries); "
                               "nothing to attribute", path);
        goto out;
    }
    set.prompts = xcalloc((size_t)n, sizeof *set.prompts);
    for (int i = 0; i < n; i++) {
        char         what[64];
        const char  *id = NULL, *p = NULL, *t = NULL, *c = NULL;
        const cJSON *e = prompt_set_entry(arr, i, path, what, sizeof what, err);
        if (!e) goto out;
        if (json_get_str_opt(e, "id", what, &id, err) != EV_OK ||
            json_get_str(e, "prompt", what, &p, err) != EV_OK ||
            json_get_str(e, "target", what, &t, err) != EV_OK ||
            json_get_str(e, "contrast", what, &c, err) != EV_OK)
            goto out;
        if (!*p || !*t || !*c) {
            ev_fail(err, EV_EFAIL, "%s: prompt, target and contrast must not be empty", what);
            goto out;
        }
        if (strcmp(t, c) == 0) {
            ev_fail(err, EV_EFAIL, "%s: target and contrast are the same ('%s')", what, t);
            goto out;
        }
        struct attr_prompt *ap = &set.prompts[set.n];
        ap->id = id && *id ? xstrdup(id) : xasprintf("p%d", i);
        for (int j = 0; j < set.n; j++)
            if (strcmp(set.prompts[j].id, ap->id) == 0) {
                ev_fail(err, EV_EFAIL, "%s: id '%s' is used twice", what, ap->id);
                free(ap->id);
                ap->id = NULL;
                goto out;
            }
        ap->prompt = xstrdup(p);
        ap->target = xstrdup(t);
        ap->contrast = xstrdup(c);
        set.n++;
    }
    *out = set;
    memset(&set, 0, sizeof set);
    rc = EV_OK;
out:
    attr_set_release(&set);
    json_free(root);
    return rc;
}

/* Appends 'piece' (escaped for a one-line message) to sb. */
static void add_piece(struct sbuf *sb, const char *piece) {
    sbuf_adds(sb, " '");
    for (const char *c = piece; *c; c++) {
        if (*c == '\n') sbuf_adds(sb, "\\n");
        else if (*c == '\t') sbuf_adds(sb, "\\t");
        else if ((unsigned char)*c < 0x20) sbuf_addf(sb, "\\x%02x", (unsigned char)*c);
        else sbuf_add(sb, c, 1);
    }
    sbuf_adds(sb, "'");
}

int attr_resolve_token(const struct tok *tk, const char *prompt, const int *prompt_ids,
                       int n_prompt, const char *text, const char *what, int *id,
                       struct ev_err *err) {
    char *both = xasprintf("%s%s", prompt, text);
    int  *ids = NULL, n = 0;
    int   rc = tok_encode(tk, both, 1, &ids, &n, err);
    if (rc != EV_OK) goto out;
    int prefix = n >= n_prompt && memcmp(ids, prompt_ids, sizeof(int) * (size_t)n_prompt) == 0;
    if (prefix && n == n_prompt + 1) {
        *id = ids[n_prompt];
        goto out;
    }
    struct sbuf sb;
    sbuf_init(&sb);
    if (!prefix) {
        /* show how the text alone splits, for the message */
        int *alone = NULL, na = 0;
        struct ev_err ignore;
        if (tok_encode(tk, text, 0, &alone, &na, &ignore) == EV_OK)
            for (int i = 0; i < na; i++) add_piece(&sb, tok_piece(tk, i ? alone[i - 1] : -1,
                                                                  alone[i]));
        free(alone);
        rc = ev_fail(err, EV_EFAIL, "%s '%s' is not a single token after the prompt: it merges "
                                    "with the prompt's last token (alone it is%s)", what, text,
                     sb.buf ? sb.buf : " nothing");
    } else {
        for (int i = n_prompt; i < n; i++) add_piece(&sb, tok_piece(tk, ids[i - 1], ids[i]));
        rc = ev_fail(err, EV_EFAIL, "%s '%s' is not a single token: it splits into %d tokens:%s",
                     what, text, n - n_prompt, sb.buf ? sb.buf : "");
    }
    sbuf_release(&sb);
out:
    free(ids);
    free(both);
    return rc;
}

// ---------------------------------------------------------------------------- statistics

/* Correlations over fewer than 3 ablations say nothing: NaN, as for a constant input. */
double attr_pearson(const double *x, const double *y, int n) {
    return n < 3 ? (double)NAN : stats_pearson(x, y, n);
}

double attr_spearman(const double *x, const double *y, int n) {
    return n < 3 ? (double)NAN : stats_spearman(x, y, n);
}

// ---------------------------------------------------------------------------- computation

void attr_result_release(struct attr_result *r) {
    free(r->items);
    memset(r, 0, sizeof *r);
}

int attr_logit_diff(struct model_state *st, int V, struct model_hook h, const int *tokens,
                    int T, const float *resid, int target, int contrast, double *d,
                    struct ev_err *err) {
    struct model_edit e = {.hook = h, .replace = resid};
    int rc = model_forward(st, tokens, 0, T, resid ? &e : NULL, resid ? 1 : 0, err);
    if (rc != EV_OK) return rc;
    const float *lg = model_state_logits(st) + (size_t)(T - 1) * V;
    *d = (double)lg[target] - (double)lg[contrast];
    return EV_OK;
}

static int cmp_abs_attr(const void *a, const void *b) {
    const struct attr_feature *x = a, *y = b;
    float ax = fabsf(x->attribution), ay = fabsf(y->attribution);
    if (ax > ay) return -1;
    if (ax < ay) return 1;
    if (x->pos != y->pos) return x->pos - y->pos;
    return x->feature - y->feature;
}

int attr_compute(struct model_state *st, const struct model *m, const struct sae *s,
                 struct model_hook h_in, struct model_hook h, const float *dirs,
                 const int *tokens, int T, int target, int contrast, int ablate_k,
                 struct attr_result *out, struct ev_err *err) {
    const struct model_config *mc = model_config(m);
    int    C = s->cfg.d_out, d_sae = s->cfg.d_sae, V = mc->vocab_size;
    float *xin = xmalloc(sizeof *xin * (size_t)T * (size_t)s->cfg.d_in); // (T, d_in) at h_in
    float *x = xmalloc(sizeof *x * (size_t)T * C);         // (T, C) residual at the hook
    float *xe = xmalloc(sizeof *xe * (size_t)T * C);        // (T, C) edited copy
    float *xhat = xmalloc(sizeof *xhat * (size_t)T * C);    // (T, C) decode(f)
    float *grad = xmalloc(sizeof *grad * (size_t)T * C);    // (T, C) dd/dx
    float *f = xmalloc(sizeof *f * (size_t)T * d_sae);      // (T, d_sae)
    float *attr = xmalloc(sizeof *attr * (size_t)T * d_sae);// (T, d_sae)
    float *b0 = xcalloc((size_t)T * C, sizeof *b0);         // (T, C) decode(0) + skip
    float *zero = xcalloc((size_t)d_sae, sizeof *zero);
    float *g = xcalloc((size_t)V, sizeof *g);               // (V) dd/dlogits
    double *pa = NULL, *pb = NULL;
    struct attr_result r = {0};
    int    rc;
    memset(out, 0, sizeof *out);
    if (target < 0 || target >= V || contrast < 0 || contrast >= V || target == contrast) {
        rc = ev_fail(err, EV_EFAIL, "target %d and contrast %d must be two different token ids "
                                    "in [0, %d)", target, contrast, V);
        goto out;
    }
    r.T = T;
    /* clean forward in two phases (so the residual is read), then the backward */
    if ((rc = intervene_encode_out(st, s, h_in, h, tokens, 0, T, x, f, xin, err)) != EV_OK)
        goto out;
    if ((rc = model_forward_from_hook(st, 0, T, h, x, err)) != EV_OK) goto out;
    const float *lg = model_state_logits(st) + (size_t)(T - 1) * V;
    r.d = (double)lg[target] - (double)lg[contrast];
    g[target] = 1.0f;
    g[contrast] = -1.0f;
    if ((rc = model_backward_to_hook(st, h, g, grad, err)) != EV_OK) goto out;
    sae_reconstruct(s, xhat, f, xin, T);
    {
        /* what no feature carries: decode(0) at every position, plus the skip term */
        float *z = xcalloc((size_t)T * d_sae, sizeof *z);
        sae_reconstruct(s, b0, z, xin, T);
        free(z);
    }
    intervene_attribution(attr, f, grad, dirs, T, C, d_sae);
    /* the split of the linearisation, in double */
    for (int t = 0; t < T; t++) {
        const float *gt = grad + (size_t)t * C, *xt = x + (size_t)t * C;
        const float *ht = xhat + (size_t)t * C, *bt = b0 + (size_t)t * C;
        for (int c = 0; c < C; c++) {
            r.linear += (double)gt[c] * (double)xt[c];
            r.attr_error += (double)gt[c] * ((double)xt[c] - (double)ht[c]);
            r.attr_bias += (double)gt[c] * (double)bt[c];
        }
    }
    size_t n_act = 0;
    for (size_t i = 0; i < (size_t)T * d_sae; i++) {
        r.attr_features += (double)attr[i];
        if (f[i] != 0.0f) n_act++;
    }
    r.items = xcalloc(n_act ? n_act : 1, sizeof *r.items);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < d_sae; i++) {
            size_t k = (size_t)t * d_sae + i;
            if (f[k] == 0.0f) continue;
            r.items[r.n++] = (struct attr_feature){.feature = i, .pos = t, .activation = f[k],
                                                   .attribution = attr[k], .ablation = NAN};
        }
    qsort(r.items, (size_t)r.n, sizeof *r.items, cmp_abs_attr);
    for (int i = 0; i < r.n; i++) r.items[i].rank = i + 1;
    /* ablations: one at a time, error term kept */
    if (ablate_k > r.n) ablate_k = r.n;
    for (int k = 0; k < ablate_k; k++) {
        if (ev_interrupted()) {
            rc = ev_fail(err, EV_EINTR, "interrupted");
            goto out;
        }
        struct attr_feature *it = &r.items[k];
        memcpy(xe, x, sizeof *x * (size_t)T * C);
        float       *xp = xe + (size_t)it->pos * C;
        const float *dir = dirs + (size_t)it->feature * C;
        for (int c = 0; c < C; c++) xp[c] -= it->activation * dir[c];
        double d_abl;
        if ((rc = attr_logit_diff(st, V, h, tokens, T, xe, target, contrast, &d_abl, err)) !=
            EV_OK)
            goto out;
        it->ablation = d_abl - r.d;
        r.n_ablated = k + 1;
    }
    pa = xmalloc(sizeof *pa * (size_t)(r.n_ablated + 1));
    pb = xmalloc(sizeof *pb * (size_t)(r.n_ablated + 1));
    for (int k = 0; k < r.n_ablated; k++) {
        pa[k] = -(double)r.items[k].attribution;
        pb[k] = r.items[k].ablation;
    }
    r.pearson = attr_pearson(pa, pb, r.n_ablated);
    r.spearman = attr_spearman(pa, pb, r.n_ablated);
    *out = r;
    memset(&r, 0, sizeof r);
    rc = EV_OK;
out:
    attr_result_release(&r);
    free(pa);
    free(pb);
    free(x);
    free(xin);
    free(xe);
    free(xhat);
    free(grad);
    free(f);
    free(attr);
    free(b0);
    free(zero);
    free(g);
    return rc;
}

// ---------------------------------------------------------------------------- the evaluation

struct prepared {
    int *ids;
    int  n, target, contrast;
};

static int store_result(struct eval_env *e, const struct eval_run *run, int idx,
                        const struct attr_prompt *p, const struct prepared *pp,
                        const struct attr_result *r, struct ev_err *err) {
    const struct tok                *tk = model_tokenizer(e->model);
    const struct attributions_prompt ap = {
        .name = p->id, .prompt = p->prompt, .target = p->target, .contrast = p->contrast,
        .target_id = pp->target, .contrast_id = pp->contrast, .n_tokens = pp->n,
        .logit_diff = r->d, .attr_features = r->attr_features, .attr_error = r->attr_error,
        .attr_bias = r->attr_bias, .pearson = r->pearson, .spearman = r->spearman};
    struct attributions_row *rows = xcalloc((size_t)(r->n > 0 ? r->n : 1), sizeof *rows);
    for (int i = 0; i < r->n; i++) {
        const struct attr_feature *it = &r->items[i];
        int                        tok_id = pp->ids[it->pos];
        rows[i] = (struct attributions_row){
            .feature = it->feature, .position = it->pos, .rank = it->rank, .token_id = tok_id,
            .token_text = tk ? tok_piece(tk, it->pos ? pp->ids[it->pos - 1] : -1, tok_id) : NULL,
            .activation = it->activation, .attribution = it->attribution,
            .ablation = it->ablation};
    }
    int rc = attributions_put(e->store, run->id, idx, &ap, rows, r->n, err);
    free(rows);
    return rc;
}

int attr_eval_run(struct eval_env *e, const struct eval_run *run,
                  const struct attr_eval_opts *o, struct ev_err *err) {
    const struct attr_set *set = o->set;
    const struct tok      *tk = model_tokenizer(e->model);
    struct prepared       *pp = xcalloc((size_t)set->n, sizeof *pp);
    struct model_state    *st = NULL;
    float                 *dirs = NULL;
    struct progress        bar;
    int                    rc = EV_OK, max_n = 0, todo = 0;
    int                    seq_len = model_config(e->model)->seq_len;
    if (!tk) {
        rc = ev_fail(err, EV_EFAIL, "model %s has no tokenizer", e->model_path);
        goto out;
    }
    /* validate every prompt first: nothing is stored for a half-built set */
    for (int i = 0; i < set->n; i++) {
        const struct attr_prompt *p = &set->prompts[i];
        char what[160];
        if ((rc = tok_encode(tk, p->prompt, 1, &pp[i].ids, &pp[i].n, err)) != EV_OK) goto out;
        if (pp[i].n > seq_len) {
            rc = ev_fail(err, EV_EFAIL, "prompt '%s' is %d tokens; the model's context is %d",
                         p->id, pp[i].n, seq_len);
            goto out;
        }
        snprintf(what, sizeof what, "prompt '%s': target", p->id);
        if ((rc = attr_resolve_token(tk, p->prompt, pp[i].ids, pp[i].n, p->target, what,
                                     &pp[i].target, err)) != EV_OK)
            goto out;
        snprintf(what, sizeof what, "prompt '%s': contrast", p->id);
        if ((rc = attr_resolve_token(tk, p->prompt, pp[i].ids, pp[i].n, p->contrast, what,
                                     &pp[i].contrast, err)) != EV_OK)
            goto out;
        if (pp[i].target == pp[i].contrast) {
            rc = ev_fail(err, EV_EFAIL, "prompt '%s': target '%s' and contrast '%s' are the same "
                                        "token", p->id, p->target, p->contrast);
            goto out;
        }
        if (pp[i].n > max_n) max_n = pp[i].n;
        if (eval_in_shard(run, i)) todo++;
    }
    if ((rc = model_state_new(e->model, max_n, MODEL_STATE_GRAD, &st, err)) != EV_OK) goto out;
    dirs = intervene_directions(e->sae);
    progress_init(&bar, "attribution", todo);
    for (int i = 0; i < set->n; i++) {
        if (!eval_in_shard(run, i)) continue;
        if (ev_interrupted()) {
            rc = ev_fail(err, EV_EINTR, "interrupted");
            break;
        }
        int done = attributions_has(e->store, run->id, i, err);
        if (done < 0) {
            rc = done;
            break;
        }
        if (!done) {
            struct attr_result r;
            rc = attr_compute(st, e->model, e->sae, e->hook, e->hook_out, dirs, pp[i].ids,
                              pp[i].n,
                              pp[i].target, pp[i].contrast, o->ablate_k, &r, err);
            if (rc == EV_OK) rc = store_result(e, run, i, &set->prompts[i], &pp[i], &r, err);
            attr_result_release(&r);
            if (rc != EV_OK) break;
        }
        progress_tick(&bar, 1);
    }
    progress_finish(&bar);
out:
    for (int i = 0; i < set->n; i++) free(pp[i].ids);
    free(pp);
    free(dirs);
    model_state_free(st);
    return rc;
}

// ---------------------------------------------------------------------------- the tables

/* Prints s on one line, newlines escaped, at most max bytes (cut at a UTF-8 boundary). */
static void print_clip(const char *s, size_t max) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
        if (n >= max && (*p & 0xC0) != 0x80) {
            fputs("...", stdout);
            return;
        }
        if (*p == '\n') fputs("\\n", stdout);
        else if (*p == '\t') fputs("\\t", stdout);
        else if (*p < 0x20) putchar('?');
        else putchar(*p);
    }
}

/* The ranked table of one stored prompt. */
static int print_prompt(struct eval_env *e, const struct eval_run *run, int idx, int top,
                        const struct eval_features *ff, struct ev_err *err) {
    struct attributions_prompt ap;
    struct attributions_row   *rows = NULL;
    int                        n = 0;
    int rc = attributions_prompt_get(e->store, run->id, idx, &ap, err);
    if (rc <= 0) return rc; /* 0: not computed (interrupted before it) */
    printf("\nprompt %s: \"", ap.name);
    print_clip(ap.prompt, 200);
    printf("\"\n  target \"%s\" (%lld) vs contrast \"%s\" (%lld): d = logit difference = %.4f\n",
           ap.target, (long long)ap.target_id, ap.contrast, (long long)ap.contrast_id,
           ap.logit_diff);
    double af = ap.attr_features, ae = ap.attr_error, ab = ap.attr_bias;
    printf("  linearisation at the hook: features %.4f + error term %.4f + decoder bias %.4f "
           "= %.4f\n", af, ae, ab, af + ae + ab);
    if (!isnan(ap.pearson))
        printf("  -attribution vs ablation effect: pearson %.3f, spearman %.3f\n", ap.pearson,
               ap.spearman);
    attributions_prompt_release(&ap);
    if ((rc = attributions_ranked(e->store, run->id, idx, top, &rows, &n, err)) != EV_OK)
        return rc;
    printf("  %4s %7s %4s %-12s %10s %11s %10s  %s\n", "rank", "feature", "pos", "token",
           "activation", "attribution", "ablation", "description");
    for (int k = 0; k < n; k++) {
        const struct attributions_row *it = &rows[k];
        int                            feat = it->feature;
        char                           tq[64];
        snprintf(tq, sizeof tq, "\"%s\"", it->token_text ? it->token_text : "");
        for (char *c = tq; *c; c++)
            if (*c == '\n' || *c == '\t') *c = ' ';
        printf("  %4lld %7d %4lld %-12s %10.4f %11.4f ", (long long)it->rank, feat,
               (long long)it->position, tq, it->activation, it->attribution);
        if (isnan(it->ablation)) printf("%10s  ", "-");
        else printf("%10.4f  ", it->ablation);
        const char *desc = NULL;
        char       *owned = NULL;
        for (int i = 0; ff && i < ff->n; i++)
            if (ff->idx[i] == feat) desc = ff->desc[i];
        if (!desc) desc = owned = eval_description_get(e, feat, NULL);
        print_clip(desc ? desc : "-", 60);
        free(owned);
        putchar('\n');
    }
    attributions_rows_free(rows, n);
    return EV_OK;
}

/* Pooled correlation over every ablated (feature, position) of the run. */
static int print_pooled(struct eval_env *e, const struct eval_run *run, struct ev_err *err) {
    double *x = NULL, *y = NULL;
    int     n = 0;
    int     rc = attributions_ablations(e->store, run->id, &x, &y, &n, err);
    if (rc != EV_OK) return rc;
    for (int i = 0; i < n; i++) x[i] = -x[i]; /* the linear prediction */
    if (n >= 3)
        printf("\ncorrelation of the linear prediction (-attribution) with the measured ablation "
               "effect, %d ablations: pearson %.3f, spearman %.3f\n", n, attr_pearson(x, y, n),
               attr_spearman(x, y, n));
    else
        printf("\n%d ablations: too few for a correlation (use --ablate-top K)\n", n);
    free(x);
    free(y);
    return rc;
}

// ---------------------------------------------------------------------------- the evaluation

struct attr_state {
    struct attr_set      set;
    struct eval_features ff;
    char                 set_hash[65];
};

/* The prompt set and its hash, before anything is opened. */
static int attr_check(struct eval_ctx *x, struct ev_err *err) {
    const struct attr_config *c = x->cfg;
    struct attr_state        *s = xcalloc(1, sizeof *s);
    int                       rc;
    x->state = s;
    if ((rc = attr_set_load(c->prompts_path, &s->set, err)) != EV_OK) return rc;
    return sha256_file(c->prompts_path, s->set_hash, err);
}

static int attr_prepare(struct eval_ctx *x, struct ev_err *err) {
    const struct attr_config *c = x->cfg;
    struct attr_state        *s = x->state;
    if (!c->features_path) return EV_OK;
    return eval_features_load(c->features_path, x->env.sae->cfg.d_sae, &s->ff, err);
}

static int attr_configure(struct eval_ctx *x, cJSON *cfg, struct ev_err *err) {
    const struct attr_config *c = x->cfg;
    const struct attr_state  *s = x->state;
    (void)err;
    cJSON_AddStringToObject(cfg, "prompts", c->prompts_path);
    cJSON_AddStringToObject(cfg, "prompts_sha256", s->set_hash);
    cJSON_AddNumberToObject(cfg, "ablate_top", (double)c->ablate_top);
    return EV_OK;
}

static int attr_work(struct eval_ctx *x, struct ev_err *err) {
    const struct attr_config *c = x->cfg;
    struct attr_state        *s = x->state;
    struct attr_eval_opts     o = {.set = &s->set, .ablate_k = (int)c->ablate_top};
    return attr_eval_run(&x->env, &x->run, &o, err);
}

static int attr_report(struct eval_ctx *x, struct ev_err *err) {
    const struct attr_config *c = x->cfg;
    struct attr_state        *s = x->state;
    char                      hook[96];
    int                       rc = EV_OK;
    model_hook_name(x->env.hook, hook, sizeof hook);
    printf("attribution run %lld: %s, SAE %s at %s, set %s (%d prompts%s)\n",
           (long long)x->run.id, x->env.model_path, x->env.sae_path, hook, s->set.name, s->set.n,
           x->common->shard_n > 1 ? ", this shard's share" : "");
    for (int i = 0; i < s->set.n && rc == EV_OK; i++)
        if (eval_in_shard(&x->run, i))
            rc = print_prompt(&x->env, &x->run, i, (int)c->top, &s->ff, err);
    if (rc == EV_OK) rc = print_pooled(&x->env, &x->run, err);
    return rc;
}

static void attr_release(struct eval_ctx *x) {
    struct attr_state *s = x->state;
    if (!s) return;
    eval_features_release(&s->ff);
    attr_set_release(&s->set);
    free(s);
    x->state = NULL;
}

const struct eval_kind attr_kind = {
    .name = "attribution",
    .flags = EVAL_REPORT_PARTIAL,
    .check = attr_check,
    .prepare = attr_prepare,
    .configure = attr_configure,
    .work = attr_work,
    .report = attr_report,
    .release = attr_release,
};
