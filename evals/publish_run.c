/*
 * publish_run — what `evalrun export neuronpedia` and `evalrun import` do once their flags are
 * parsed (see publish.h): the export from a database opened read-only, and the report of what
 * was imported (each score's n, mean and bootstrap interval, and the difference to --against).
 */
#include "evals/publish.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evals/stats.h"

// ---------------------------------------------------------------------------- export

int pub_export_run(const char *db_path, const char *model, int model_flags, const char *sae,
                   struct pub_export_opts *o, const char *features_path, struct ev_err *err) {
    struct eval_env      env;
    struct eval_features ff = {0};
    char                *written = NULL;
    int                  n = 0, rc;
    if ((rc = eval_env_open_readonly(&env, db_path, model, model_flags, sae,
                                     err)) != EV_OK)
        return rc;
    if (features_path &&
        (rc = eval_features_load(features_path, env.sae->cfg.d_sae, &ff, err)) != EV_OK)
        goto out;
    o->features = features_path ? ff.idx : NULL;
    o->n_features = features_path ? ff.n : 0;
    if ((rc = pub_export_neuronpedia(&env, o, &n, &written, err)) != EV_OK) goto out;
    printf("exported %d features of %s to %s\n", n, env.sae_path, written);
    printf("  features/, activations/, explanations/, explanation_scores/ batch-K.jsonl.gz; "
           "model.jsonl, sourceset.jsonl, source.jsonl\n");
out:
    free(written);
    eval_features_release(&ff);
    eval_env_release(&env);
    return rc;
}

// ---------------------------------------------------------------------------- import

/* The distinct score names of s, in order of first appearance (at most max). */
static int score_names(const struct pub_set *s, char names[][64], int max) {
    int n = 0;
    for (int i = 0; i < s->n; i++)
        for (int k = 0; k < s->f[i].n_scores; k++) {
            int j = 0;
            while (j < n && strcmp(names[j], s->f[i].scores[k].name)) j++;
            if (j == n && n < max) snprintf(names[n++], 64, "%s", s->f[i].scores[k].name);
        }
    return n;
}

/* The values of score name in s (caller frees), *n of them. */
static double *score_values(const struct pub_set *s, const char *name, int *n) {
    double *v = xmalloc(sizeof(double) * (size_t)(s->n + 1));
    *n = 0;
    for (int i = 0; i < s->n; i++)
        for (int k = 0; k < s->f[i].n_scores; k++)
            if (!strcmp(s->f[i].scores[k].name, name)) {
                v[(*n)++] = s->f[i].scores[k].value;
                break;
            }
    return v;
}

/* mean with a percentile-bootstrap 95% interval (2000 draws, seed 1), or the difference of
 * two independent samples' means: "mean [lo, hi]". */
static void print_ci(const double *a, int na, const double *b, int nb) {
    static const double zero = 0;
    struct stats_sample base = {b ? b : &zero, NULL, b ? nb : 1}, cand = {a, NULL, na};
    struct stats_ci     ci;
    struct rng          r;
    rng_seed(&r, 1);
    stats_bootstrap_diff(STATS_MEAN, &base, &cand, 0, 2000, &r, &ci);
    printf("%9.4f  [%.4f, %.4f]", ci.est, ci.lo, ci.hi);
}

void pub_import_report(const char *path, const struct pub_set *s, const char *apath,
                       const struct pub_set *a) {
    char names[32][64];
    int  n_names = score_names(s, names, 32), n_desc = 0;
    for (int i = 0; i < s->n; i++) n_desc += s->f[i].desc != NULL;
    printf("%s: %s, %d features, %d with a description\n", path, s->format, s->n, n_desc);
    if (s->n_left_out)
        printf("  %d descriptions left out (the features-file rules), first: %s\n",
               s->n_left_out, s->left_out);
    if (s->n_extra) printf("  %d further explanations of a feature read (the first kept)\n",
                           s->n_extra);
    if (s->n_unmatched) printf("  %d score rows name no explanation read\n", s->n_unmatched);
    if (n_names) printf("\n%-28s %6s %9s  %-20s%s\n", "score", "n", "mean", "95% CI (bootstrap)",
                        a ? "   vs --against: n, difference [95% CI]" : "");
    for (int k = 0; k < n_names; k++) {
        int     n, m = 0;
        double *v = score_values(s, names[k], &n), *w = a ? score_values(a, names[k], &m) : NULL;
        printf("%-28s %6d ", names[k], n);
        print_ci(v, n, NULL, 0);
        if (a && m) printf("   %6d ", m), print_ci(w, m, v, n);
        else if (a) printf("   (not in %s)", apath);
        printf("\n");
        free(v), free(w);
    }
    if (s->n_metrics) printf("\npublished SAE-level numbers (as the file states them):\n");
    for (int k = 0; k < s->n_metrics; k++)
        printf("  %-52s %.6g\n", s->metrics[k].name, s->metrics[k].value);
}
