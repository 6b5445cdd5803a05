/*
 * saebench_export — SAEBench "core" JSON (see saebench_export.h).
 */
#include "evals/saebench_export.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/json.h"

static void add_num(cJSON *o, const char *k, double v) {
    if (isnan(v) || isinf(v)) cJSON_AddNullToObject(o, k);
    else cJSON_AddNumberToObject(o, k, v);
}

int saebench_write_core(const char *path, const struct sae_metrics *m,
                        const struct saebench_core_info *info, struct ev_err *err) {
    cJSON        *j = cJSON_CreateObject(), *sc = NULL;
    struct ev_err e;
    char          hex[65], id[40];
    cJSON_AddStringToObject(j, "eval_type_id", "core");
    cJSON *cfg = cJSON_AddObjectToObject(j, "eval_config");
    if (info->model_name) cJSON_AddStringToObject(cfg, "model_name", info->model_name);
    if (info->hook_name) cJSON_AddStringToObject(cfg, "hook_name", info->hook_name);
    cJSON_AddStringToObject(cfg, "dataset", info->corpus ? info->corpus : "");
    if (info->corpus_hash) cJSON_AddStringToObject(cfg, "dataset_sha256", info->corpus_hash);
    cJSON_AddNumberToObject(cfg, "context_size", info->ctx);
    cJSON_AddNumberToObject(cfg, "random_seed", (double)info->seed);
    cJSON_AddStringToObject(cfg, "sae_path", info->sae_path ? info->sae_path : "");
    cJSON_AddStringToObject(cfg, "sae_hash", info->sae_hash ? info->sae_hash : "");
    cJSON_AddStringToObject(cfg, "explained_variance_definition",
                            "explained_variance: 1 - sum_t ||x_t - xhat_t||^2 / sum_t ||x_t - "
                            "mean(x)||^2 over all tokens (global mean); "
                            "explained_variance_legacy: SAELens' per-token ratio, averaged per "
                            "sequence");
    cJSON_AddStringToObject(cfg, "producer", "evalrun sae-metrics");
    char *s = xasprintf("core/%s/%lld/%lld", info->sae_hash ? info->sae_hash : "",
                        (long long)m->n_tokens, (long long)info->seed);
    sha256_hex(s, strlen(s), hex);
    free(s);
    snprintf(id, sizeof id, "%.8s-%.4s-4%.3s-8%.3s-%.12s", hex, hex + 8, hex + 12, hex + 15,
             hex + 18);
    cJSON_AddStringToObject(j, "eval_id", id);
    cJSON_AddNumberToObject(j, "datetime_epoch_millis", (double)now_unix_ms());

    cJSON *r = cJSON_AddObjectToObject(j, "eval_result_metrics");
    cJSON *c = cJSON_AddObjectToObject(r, "model_behavior_preservation");
    add_num(c, "kl_div_score", m->has_ce ? m->kl_div_score : (double)NAN);
    add_num(c, "kl_div_with_ablation", m->has_ce ? m->kl_zero : (double)NAN);
    add_num(c, "kl_div_with_sae", m->has_ce ? m->kl_sae : (double)NAN);
    c = cJSON_AddObjectToObject(r, "model_performance_preservation");
    add_num(c, "ce_loss_score", m->has_ce ? m->ce_loss_score : (double)NAN);
    add_num(c, "ce_loss_with_ablation", m->has_ce ? m->ce_zero : (double)NAN);
    add_num(c, "ce_loss_with_sae", m->has_ce ? m->ce_sae : (double)NAN);
    add_num(c, "ce_loss_without_sae", m->has_ce ? m->ce_clean : (double)NAN);
    c = cJSON_AddObjectToObject(r, "reconstruction_quality");
    add_num(c, "explained_variance", m->explained_variance);
    add_num(c, "explained_variance_legacy", m->explained_variance_legacy);
    add_num(c, "mse", info->d_in > 0 ? m->mse / info->d_in : (double)NAN);
    add_num(c, "cossim", NAN);
    c = cJSON_AddObjectToObject(r, "shrinkage");
    add_num(c, "l2_norm_in", NAN);
    add_num(c, "l2_norm_out", NAN);
    add_num(c, "l2_ratio", m->l2_ratio);
    add_num(c, "relative_reconstruction_bias", m->rel_recon_bias);
    c = cJSON_AddObjectToObject(r, "sparsity");
    add_num(c, "l0", m->l0);
    add_num(c, "l1", m->l1);
    c = cJSON_AddObjectToObject(r, "token_stats");
    add_num(c, "total_tokens_eval_reconstruction", (double)m->n_tokens);
    add_num(c, "total_tokens_eval_sparsity_variance", (double)m->n_tokens);
    c = cJSON_AddObjectToObject(r, "misc_metrics");
    /* density histogram bins: [-8 + 0.5 b, -7.5 + 0.5 b) of log10 density; > 1% = bins >= 12 */
    double over1 = 0, over10 = 0;
    for (int b = 0; b < SAE_DENSITY_BINS; b++) {
        if (b >= 12) over1 += (double)m->density_hist[b];
        if (b >= 14) over10 += (double)m->density_hist[b];
    }
    add_num(c, "freq_over_1_percent", info->d_sae > 0 ? over1 / info->d_sae : (double)NAN);
    add_num(c, "freq_over_10_percent", info->d_sae > 0 ? over10 / info->d_sae : (double)NAN);
    add_num(c, "normalized_freq_over_1_percent", NAN);
    add_num(c, "normalized_freq_over_10_percent", NAN);
    add_num(c, "average_max_encoder_cosine_sim", NAN);
    add_num(c, "average_max_decoder_cosine_sim", NAN);
    add_num(c, "frac_alive", 1.0 - m->dead_frac);
    cJSON_AddArrayToObject(j, "eval_result_details");
    cJSON_AddNullToObject(j, "eval_result_unstructured");
    cJSON_AddNullToObject(j, "sae_bench_commit_hash");
    cJSON_AddNullToObject(j, "sae_lens_id");
    cJSON_AddNullToObject(j, "sae_lens_release_id");
    cJSON_AddNullToObject(j, "sae_lens_version");
    if (!info->sae_cfg_json ||
        json_parse(info->sae_cfg_json, strlen(info->sae_cfg_json), "cfg.json", &sc, &e))
        sc = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "sae_cfg_dict", sc);
    int rc = json_write_file(path, j, JSON_WRITE_PRETTY | JSON_WRITE_NEWLINE, err);
    json_free(j);
    return rc;
}
