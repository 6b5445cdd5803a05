/*
 * cmd_publish — `evalrun export neuronpedia` and `evalrun import`: their flags; the work is in
 * evals/publish.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common_opts.h"
#include "evals/publish.h"

// ---------------------------------------------------------------------------- export

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
    if (npos > 1 && strcmp(argv[1], "neuronpedia") == 0)
        return args_no_positional(&help, npos - 1, argv + 1, err);
    if (npos < 1 || strcmp(argv[1], "neuronpedia") != 0)
        return ev_fail(err, EV_EUSAGE, "export: expected the format 'neuronpedia'%s%s%s",
                       npos >= 1 ? ", got '" : "", npos >= 1 ? argv[1] : "", npos >= 1 ? "'" : "");
    if (!out || !*out) return ev_fail(err, EV_EUSAGE, "export neuronpedia: --out DIR is required");
    if ((rc = args_check_long("--layer", layer, -1, 100000, err)) ||
        (rc = args_check_long("--top", top, 1, 1000, err)) ||
        (rc = common_file_check("--features", features, err)))
        return rc;
    for (const char *p = set ? set : ""; *p; p++)
        if (!(*p == '-' || *p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return ev_fail(err, EV_EUSAGE, "--source-set: only a-z, 0-9, '-' and '_' (got '%s')",
                           set);
    if ((rc = model_weights_dtype_parse(co.weights_dtype, &co.model_flags, err)) != EV_OK)
        return rc;
    struct pub_export_opts o = {.out_dir = out, .model_id = model_id, .source_set = set,
                                .layer = (int)layer, .n_top = (int)top};
    return pub_export_run(co.db_path, co.model, co.model_flags, co.sae, &o, features, err);
}

// ---------------------------------------------------------------------------- import

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
        pub_import_report(npos == 1 ? argv[1] : "the files", &s, against, against ? &a : NULL);
        if (fout) printf("\nwrote the descriptions to %s\n", fout);
    }
    pub_release(&s), pub_release(&a);
    return rc;
}
