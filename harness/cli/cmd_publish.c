/*
 * cmd_publish — `evalrun export neuronpedia` and `evalrun import` (evals/publish.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/publish.h"
#include "evals/stats.h"

// ---------------------------------------------------------------------------- export

static int export_run(const struct common_opts *co, struct pub_export_opts *o,
                      const char *features_path, struct ev_err *err) {
    struct eval_env      env;
    struct eval_features ff = {0};
    char                *written = NULL;
    int                  n = 0, rc;
    if ((rc = eval_env_open_readonly(&env, co->db_path, co->model, co->model_flags, co->sae,
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

int cmd_export(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "export", "neuronpedia --out DIR",
        "Writes the SAE's features in the layout of Neuronpedia's exports (docs/sae.md,\n"
        "\"Published features\"): DIR/MODEL_ID/LAYER-SET/ with features/, activations/ (the\n"
        "top and per-interval contexts of the feature index, tokens with activations),\n"
        "explanations/ (the current descriptions) and explanation_scores/ (each run's score\n"
        "of the feature, with its n) as batch-K.jsonl.gz, and model/sourceset/source.jsonl.\n"
        "Reads the database's index (evalrun index) and the SAE's weights; writes nothing\n"
        "else. DIR/MODEL_ID/LAYER-SET must not exist."};
    const char *out = NULL, *model_id = NULL, *set = NULL, *features = NULL;
    long        layer = -1, top = 20;
    struct common_opts co;
    common_opts_init(&co, cli, COMMON_MODEL | COMMON_SAE);
    const struct opt opts[] = {
        {"out", OPT_STR, &out, "DIR", "where to write (required)"},
        {"model-id", OPT_STR, &model_id, "ID", "Neuronpedia model id (default: the model's name)"},
        {"source-set", OPT_STR, &set, "NAME", "source set name (default evalrun)"},
        {"layer", OPT_LONG, &layer, "L", "layer in the source id (default: the SAE's hook's)"},
        {"features", OPT_STR, &features, "FILE", "only these features (default: all that fired)"},
        {"top", OPT_LONG, &top, "N", "top contexts per feature (default 20)"},
        COMMON_OPTIONS(co),
        {0},
    };
    int npos = 0, rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos != 1 || strcmp(argv[1], "neuronpedia") != 0)
        return ev_fail(err, EV_EUSAGE, "export: expected the format 'neuronpedia'%s%s",
                       npos >= 1 ? ", got " : "", npos >= 1 ? argv[1] : "");
    if (!out || !*out) return ev_fail(err, EV_EUSAGE, "export neuronpedia: --out DIR is required");
    if ((rc = args_check_long("--layer", layer, -1, 100000, err)) ||
        (rc = args_check_long("--top", top, 1, 1000, err)))
        return rc;
    for (const char *p = set ? set : ""; *p; p++)
        if (!(*p == '-' || *p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return ev_fail(err, EV_EUSAGE, "--source-set: only a-z, 0-9, '-' and '_' (got '%s')",
                           set);
    if ((rc = model_weights_dtype_parse(co.weights_dtype, &co.model_flags, err)) != EV_OK)
        return rc;
    struct pub_export_opts o = {.out_dir = out, .model_id = model_id, .source_set = set,
                                .layer = (int)layer, .n_top = (int)top};
    return export_run(&co, &o, features, err);
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

static void import_report(const char *path, const struct pub_set *s, const char *apath,
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

int cmd_import(int argc, char **argv, const struct cli *cli, struct ev_err *err) {
    static const struct cmd_help help = {
        "import", "FILE...",
        "Reads the explanations and scores that Neuronpedia (exports: explanations/*.jsonl.gz,\n"
        "or a source folder; API feature JSON) and SAEBench (autointerp, core results JSON)\n"
        "publish, and prints each score's n, mean and 95% interval (docs/sae.md, \"Published\n"
        "features\"). --features-out writes the descriptions as a features file for any\n"
        "evaluation (--features FILE); --against FILE compares another SAE's published or\n"
        "evalrun-written scores (evalrun autointerp --out, export neuronpedia) with them."};
    const char *fout = NULL, *against = NULL;
    long        d_sae = 0;
    struct common_opts co;
    common_opts_init(&co, cli, 0);
    const struct opt opts[] = {
        {"features-out", OPT_STR, &fout, "FILE", "write the descriptions as a features file"},
        {"d-sae", OPT_LONG, &d_sae, "N", "refuse feature ids >= N in --features-out"},
        {"against", OPT_STR, &against, "FILE", "another SAE's scores to compare with"},
        COMMON_OPTIONS(co),
        {0},
    };
    struct pub_set s = {0}, a = {0};
    int            npos = 0, rc = args_parse(&help, opts, argc, argv, &npos, err);
    if (rc != EV_OK) return rc;
    if (npos < 1) return ev_fail(err, EV_EUSAGE, "import: expected one or more FILEs");
    if ((rc = args_check_long("--d-sae", d_sae, 0, 1L << 30, err))) return rc;
    for (int i = 1; i <= npos && rc == EV_OK; i++) rc = pub_load(argv[i], &s, err);
    if (rc == EV_OK && against) rc = pub_load(against, &a, err);
    if (rc == EV_OK && s.n == 0 && s.n_metrics == 0)
        rc = ev_fail(err, EV_EFAIL, "%s: no feature and no metric in it", argv[1]);
    if (rc == EV_OK && fout) rc = pub_write_features(&s, (int)d_sae, fout, err);
    if (rc == EV_OK) {
        import_report(npos == 1 ? argv[1] : "the files", &s, against, against ? &a : NULL);
        if (fout) printf("\nwrote the descriptions to %s\n", fout);
    }
    pub_release(&s), pub_release(&a);
    return rc;
}
