/*
 * saebench_export — SAEBench's "core" output JSON for `evalrun sae-metrics --out FILE.json`
 * (issue 10; schema in docs/schemas/saebench_core.schema.json, names in docs/autointerp.md).
 *
 * Included by: evals and harness/cli.
 *
 * The envelope is SAEBench's (eval_type_id "core", eval_config, eval_id, datetime_epoch_millis,
 * eval_result_metrics {category: {metric: value}}, eval_result_details [],
 * eval_result_unstructured null, sae_bench_commit_hash / sae_lens_id / sae_lens_release_id /
 * sae_lens_version null, sae_cfg_dict). Metrics evalrun does not measure are null, never made
 * up. explained_variance is the global-mean definition; explained_variance_legacy SAELens'
 * per-token ratio; eval_config.explained_variance_definition says so. mse is per element
 * (SAELens' convention): sae_metrics' per-token sum divided by d_in.
 */
#ifndef EV_SAEBENCH_EXPORT_H
#define EV_SAEBENCH_EXPORT_H

#include <stdint.h>

#include "sae/sae_metrics.h"
#include "base/util.h"

struct saebench_core_info {
    const char *sae_hash;     /* 64 hex digits */
    const char *sae_path;
    const char *sae_cfg_json; /* cfg.json text, or NULL */
    const char *model_name;   /* model path or name, or NULL */
    const char *hook_name;
    const char *corpus;       /* file, or "generate" */
    const char *corpus_hash;
    int         d_in, d_sae;
    int         ctx;          /* tokens per sequence */
    int64_t     seed;
};

/* Writes the core JSON for metrics m to path (atomically). EV_EFAIL naming the file on I/O
 * errors. */
int saebench_write_core(const char *path, const struct sae_metrics *m,
                        const struct saebench_core_info *info, struct ev_err *err);

#endif
