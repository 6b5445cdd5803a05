/*
 * controls — random-direction SAEs and shuffled descriptions as controls (see controls.h).
 */
#include "evals/controls.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "evals/compare.h"
#include "evals/index.h"
#include "model/model.h"
#include "model/tok.h"
#include "sae/acts.h"
#include "sae/sae.h"
#include "sae/sae_random.h"
#include "store/runinfo.h"

int eval_control_parse(const char *s, unsigned *flags, struct ev_err *err) {
    *flags = 0;
    if (!s || strcmp(s, "none") == 0) return EV_OK;
    char *dup = xstrdup(s), *save = dup;
    int   rc = EV_OK;
    for (char *p = dup, *comma; p && rc == EV_OK; p = comma ? comma + 1 : NULL) {
        if ((comma = strchr(p, ','))) *comma = 0;
        if (strcmp(p, "random-sae") == 0) *flags |= EVAL_CONTROL_RANDOM_SAE;
        else if (strcmp(p, "shuffled") == 0) *flags |= EVAL_CONTROL_SHUFFLED;
        else
            rc = ev_fail(err, EV_EUSAGE, "--control '%s': expected none, random-sae, shuffled or "
                                         "random-sae,shuffled", s);
    }
    free(save);
    return rc;
}

const char *eval_control_name(unsigned flag) {
    return flag == EVAL_CONTROL_RANDOM_SAE ? "random-sae"
           : flag == EVAL_CONTROL_SHUFFLED ? "shuffled"
                                           : "none";
}

void eval_control_derangement(int *perm, int n, uint64_t seed) {
    struct rng r;
    rng_seed(&r, seed ^ 0x5eed5eedULL);
    for (int i = 0; i < n; i++) perm[i] = i;
    if (n < 2) return;
    /* rejection: uniform permutations until one has no fixed point (about e tries) */
    for (;;) {
        for (int i = 0; i < n; i++) perm[i] = i;
        rng_shuffle(&r, perm, (size_t)n);
        int fixed = 0;
        for (int i = 0; i < n && !fixed; i++) fixed = perm[i] == i;
        if (!fixed) return;
    }
}

// ---------------------------------------------------------------------------- random SAE

/* Residuals at the SAE's hook over the calibration corpus, BOS/EOS positions left out (as
 * the index leaves them out of its examples), centred where the SAE expects it. */
static int calibration_acts(struct model *m, const struct sae *sae,
                            const struct eval_index_source *src, float **x, float **x_raw,
                            int *n, struct ev_err *err) {
    struct acts_corpus  c = {0};
    struct model_state *st = NULL;
    struct model_hook   h, ho;
    float              *resid = NULL;
    int                 T, rc;
    *x = *x_raw = NULL;
    *n = 0;
    if ((rc = sae_hooks(m, sae, "the SAE", &h, &ho, err)) != EV_OK) return rc;
    if ((rc = eval_index_ctx(m, 0, &T, err)) != EV_OK) return rc;
    rc = src && src->corpus
             ? acts_corpus_from_file(m, src->corpus, src->text_field, EVAL_CONTROL_TOKENS, T, &c, err)
             : acts_corpus_generate(m, EVAL_CONTROL_TOKENS, T, 0, &c, err);
    if (rc != EV_OK) return rc;
    const int         D = sae->cfg.d_in;
    const struct tok *tk = model_tokenizer(m);
    int bos = tk ? tok_bos(tk) : -1, eos = tk ? tok_eos(tk) : -1, k = 0;
    if ((rc = model_state_new(m, T, 0, &st, err)) != EV_OK) goto out;
    resid = xmalloc((size_t)T * D * sizeof *resid); // (T, d_in)
    *x = xmalloc((size_t)c.n_seq * T * D * sizeof **x);
    const int center = sae_needs_centering(sae, model_config(m)->model_type);
    if (center) *x_raw = xmalloc((size_t)c.n_seq * T * D * sizeof **x_raw);
    for (int q = 0; q < c.n_seq; q++) {
        const int *row = c.tokens + (size_t)q * T;
        if (ev_interrupted()) {
            rc = ev_fail(err, EV_EINTR, "interrupted while calibrating the random-sae control");
            goto out;
        }
        if ((rc = model_forward_to_hook(st, row, 0, T, h, resid, err)) != EV_OK) goto out;
        for (int t = 0, kr = k; center && t < T; t++)
            if (row[t] != bos && row[t] != eos)
                memcpy(*x_raw + (size_t)kr++ * D, resid + (size_t)t * D, (size_t)D * sizeof *resid);
        if (center) sae_center_rows(resid, T, D, NULL);
        for (int t = 0; t < T; t++)
            if (row[t] != bos && row[t] != eos)
                memcpy(*x + (size_t)k++ * D, resid + (size_t)t * D, (size_t)D * sizeof *resid);
    }
    *n = k;
    if (k == 0) rc = ev_fail(err, EV_EFAIL, "random-sae control: no calibration token");
out:
    free(resid);
    model_state_free(st);
    acts_corpus_release(&c);
    return rc;
}

int eval_control_random_sae(const char *db_path, struct model *m, const struct sae *sae,
                            const char *sae_hash, const struct eval_index_source *src,
                            uint64_t seed, char **dir, struct ev_err *err) {
    char       *parent = xasprintf("%s.controls", db_path);
    char       *d = xasprintf("%s/random-sae-%.12s-seed%llu", parent, sae_hash,
                              (unsigned long long)seed);
    char       *cfg = xasprintf("%s/cfg.json", d);
    float      *x = NULL, *x_raw = NULL; /* (n, d_in): as the SAE sees them, and raw */
    struct sae *ctl = NULL;
    int         n = 0, rc = EV_OK;
    *dir = NULL;
    if (path_exists(cfg)) goto done; /* built before: the same SAE, seed and corpus */
    if ((rc = sae_random_check(&sae->cfg, err)) != EV_OK) goto out; /* before any work */
    if ((rc = mkdir_p(parent, err)) != EV_OK) goto out;
    ev_info("random-sae control: calibrating a random-direction SAE (seed %llu) on %d tokens",
            (unsigned long long)seed, EVAL_CONTROL_TOKENS);
    if ((rc = calibration_acts(m, sae, src, &x, &x_raw, &n, err)) != EV_OK) goto out;
    if ((rc = sae_random_control(sae, x, x_raw, n, seed, &ctl, err)) != EV_OK) goto out;
    int64_t *cnt = xcalloc((size_t)sae->cfg.d_sae, sizeof *cnt);
    double   l0_real = sae_random_fire_counts(sae, x, n, cnt);
    double   l0_ctl = sae_random_fire_counts(ctl, x_raw ? x_raw : x, n, cnt);
    free(cnt);
    char *extra = xasprintf("{\"evalrun_control\": \"random-sae\", \"control_of_sae\": \"%s\", "
                            "\"control_seed\": %llu, \"control_calibration_tokens\": %d, "
                            "\"control_l0\": %.6f, \"sae_l0\": %.6f}",
                            sae_hash, (unsigned long long)seed, n, l0_ctl, l0_real);
    rc = sae_save(ctl, d, 1, extra, err);
    free(extra);
    if (rc != EV_OK) goto out;
    ev_info("random-sae control: L0 %.3f on the %d calibration tokens (the SAE's: %.3f), saved "
            "in %s", l0_ctl, n, l0_real, d);
done:
    *dir = d;
    d = NULL;
out:
    sae_free(ctl);
    free(x);
    free(x_raw);
    free(cfg);
    free(d);
    free(parent);
    return rc;
}

// ---------------------------------------------------------------------------- the table

struct ctl_list {
    int      n;
    int64_t  id[4];
    char     kind[4][16];
};

static int ctl_collect(void *ctx, int64_t id, const char *kind) {
    struct ctl_list *l = ctx;
    if (l->n < 4) {
        l->id[l->n] = id;
        snprintf(l->kind[l->n], sizeof l->kind[l->n], "%s", kind);
        l->n++;
    }
    return EV_OK;
}

static void fmt(char *b, size_t n, double v) {
    if (isnan(v)) snprintf(b, n, "-");
    else snprintf(b, n, "%.4f", v);
}

/* One control's results: every metric of the main run against the same metric of the
 * control, handed to fn. */
static int compare_one(struct store *s, const struct cmp_run *rm, const struct cmp_metrics *mm,
                       int64_t ctl_id, const char *kind, uint64_t seed, eval_controls_fn fn,
                       void *ctx, struct ev_err *err) {
    struct cmp_run     rc = {0};
    struct cmp_metrics mc = {0};
    struct cmp_result *res = NULL;
    char               name[32];
    int                n_res = 0;
    snprintf(name, sizeof name, "%lld", (long long)ctl_id);
    int r = cmp_run_load(s, name, &rc, err);
    if (r == EV_OK) r = cmp_metrics_load(s, &rc, &mc, err);
    struct cmp_params p = cmp_default_params();
    p.seed   = seed;
    p.min_n  = 0;
    p.paired = rm->sae_hash && rc.sae_hash && strcmp(rm->sae_hash, rc.sae_hash) == 0;
    if (r == EV_OK) r = cmp_metrics_compare_all(&mc, mm, NULL, NULL, &p, &res, &n_res, err);
    if (r == EV_OK) {
        struct eval_control_result cr = {kind, ctl_id, rc.status, p.paired, n_res, res};
        r = fn(ctx, &cr, err);
    }
    free(res);
    cmp_metrics_release(&mc);
    cmp_run_release(&rc);
    return r;
}

int eval_controls_each(struct store *s, int64_t main_id, uint64_t seed, eval_controls_fn fn,
                       void *ctx, struct ev_err *err) {
    struct ctl_list    l = {0};
    struct cmp_run     rm = {0};
    struct cmp_metrics mm = {0};
    char               name[32];
    int rc = runinfo_controls_of(s, main_id, ctl_collect, &l, err);
    if (rc != EV_OK || l.n == 0) return rc;
    snprintf(name, sizeof name, "%lld", (long long)main_id);
    if ((rc = cmp_run_load(s, name, &rm, err)) == EV_OK &&
        (rc = cmp_metrics_load(s, &rm, &mm, err)) == EV_OK)
        for (int i = 0; i < l.n && rc == EV_OK; i++)
            rc = compare_one(s, &rm, &mm, l.id[i], l.kind[i], seed, fn, ctx, err);
    cmp_metrics_release(&mm);
    cmp_run_release(&rm);
    return rc;
}

struct print_ctx {
    FILE   *out;
    int64_t main_id;
    int     n;
};

static int print_one(void *ctx, const struct eval_control_result *cr, struct ev_err *err) {
    struct print_ctx *pc = ctx;
    FILE             *out = pc->out;
    (void)err;
    if (pc->n++ == 0)
        fprintf(out, "\ncontrols of run %lld (score: the SAE; control: the same evaluation on the "
                     "control)\n", (long long)pc->main_id);
    fprintf(out, "\ncontrol %s: run %lld (%s, %s); diff = score - control\n", cr->kind,
            (long long)cr->run_id, cr->status,
            cr->paired ? "same contexts, paired per item" : "another SAE: the two samples");
    fprintf(out, "%-28s %6s %9s %6s %9s %9s  %s\n", "metric", "n", "score", "n_ctl", "control",
            "diff", "95% CI");
    for (int i = 0; i < cr->n; i++) {
        const struct cmp_result *x = &cr->res[i];
        char a[32], b[32], d[32], lo[32], hi[32];
        fmt(a, sizeof a, x->cand);
        fmt(b, sizeof b, x->base);
        fmt(d, sizeof d, x->diff.est);
        fmt(lo, sizeof lo, x->diff.lo);
        fmt(hi, sizeof hi, x->diff.hi);
        fprintf(out, "%-28s %6d %9s %6d %9s %9s  ", x->name, eval_control_n_score(x), a,
                eval_control_n_control(x), b, d);
        if (isnan(x->diff.lo)) fprintf(out, "-\n");
        else fprintf(out, "[%s, %s]\n", lo, hi);
    }
    return EV_OK;
}

int eval_controls_print(struct store *s, int64_t main_id, uint64_t seed, FILE *out,
                        struct ev_err *err) {
    struct print_ctx pc = {out, main_id, 0};
    return eval_controls_each(s, main_id, seed, print_one, &pc, err);
}

int eval_control_n_score(const struct cmp_result *x) { return x->paired ? x->n_paired : x->n_cand; }
int eval_control_n_control(const struct cmp_result *x) {
    return x->paired ? x->n_paired : x->n_base;
}
