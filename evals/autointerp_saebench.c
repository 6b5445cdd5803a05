/*
 * autointerp_saebench — the SAEBench protocol: its window sampling (top, importance-weighted
 * and random windows) and its JSON export (see autointerp.h).
 */
#include "evals/autointerp.h"
#include "evals/autointerp_int.h"
#include "evals/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sae/acts.h"
#include "graders/explain.h"
#include "graders/grader.h"
#include "base/hash.h"
#include "graders/parse.h"
#include "graders/prompt.h"
#include "model/tok.h"
#include "store/autointerp.h"

void ai_plan_saebench(const struct ai_params *p, const float *a, int n_seq, int T,
                          float max_act, struct rng *r, struct ai_plan *pl) {
    const int NTOP = SB_TOP_GEN + SB_TOP_SC, NIW = SB_IW_GEN + SB_IW_SC;
    struct ai_window chosen[SB_TOP_GEN + SB_TOP_SC + SB_IW_GEN + SB_IW_SC + SB_RAND];
    int              n_ch = 0, lo = SB_HALF + 1, hi = T - 1 - SB_HALF;
    struct cand     *cd = NULL;
    double          *wt = NULL;
    pl->thr = (float)(p->act_frac * (double)max_act);
    if (hi < lo) {
        pl->skip = "the corpus sequences are too short for 21-token windows (use --ctx 32 or "
                   "more)";
        return;
    }
    size_t n_cd = 0;
    cd = xmalloc((size_t)n_seq * (size_t)(hi - lo + 1) * sizeof *cd);
    for (int q = 0; q < n_seq; q++)
        for (int t = lo; t <= hi; t++) {
            float v = a[(size_t)q * T + t];
            if (v > pl->thr) cd[n_cd++] = (struct cand){q, t, v};
        }
    qsort(cd, n_cd, sizeof *cd, cmp_cand_desc);
    size_t next = 0;
    for (; next < n_cd && n_ch < NTOP; next++) {
        int st = cd[next].pos - SB_HALF;
        if (overlaps(chosen, n_ch, cd[next].seq, st, SB_W)) continue;
        chosen[n_ch++] = (struct ai_window){cd[next].seq, st, SB_W, 1, AI_KIND_TOP, 0, 0, 0};
    }
    if (n_ch < NTOP) {
        pl->skip = "fewer than 12 non-overlapping top windows";
        goto out;
    }
    /* importance-weighted: the remaining candidates (all below the top ones), drawn without
     * replacement with probability ∝ a², skipping draws that overlap a chosen window */
    wt = xmalloc((n_cd - next + 1) * sizeof *wt);
    double tot = 0;
    for (size_t i = next; i < n_cd; i++) {
        int ov = overlaps(chosen, n_ch, cd[i].seq, cd[i].pos - SB_HALF, SB_W);
        tot += wt[i - next] = ov ? 0.0 : (double)cd[i].a * (double)cd[i].a;
    }
    while (n_ch < NTOP + NIW && tot > 0) {
        double u = rng_uniform(r) * tot, acc = 0;
        size_t pick = n_cd;
        for (size_t i = next; i < n_cd; i++) {
            if (wt[i - next] <= 0) continue;
            acc += wt[i - next];
            pick = i;
            if (acc > u) break;
        }
        if (pick == n_cd) break;
        wt[pick - next] = 0;
        tot = 0; /* recomputed, not decremented: subtraction drifts */
        for (size_t i = next; i < n_cd; i++) tot += wt[i - next];
        int st = cd[pick].pos - SB_HALF;
        if (overlaps(chosen, n_ch, cd[pick].seq, st, SB_W)) continue;
        chosen[n_ch++] = (struct ai_window){cd[pick].seq, st, SB_W, 1, AI_KIND_IMPORTANCE, 0,
                                            0, 0};
    }
    if (n_ch < NTOP + NIW) {
        pl->skip = "fewer than 7 non-overlapping windows below the top ones to sample";
        goto out;
    }
    /* random windows, checked to hold no active token */
    for (int tries = 0; n_ch < NTOP + NIW + SB_RAND && tries < 20000; tries++) {
        int q = (int)rng_below(r, (uint64_t)n_seq);
        int t = lo + (int)rng_below(r, (uint64_t)(hi - lo + 1));
        int st = t - SB_HALF;
        if (window_max(a + (size_t)q * T + st, SB_W) > pl->thr) continue;
        if (overlaps(chosen, n_ch, q, st, SB_W)) continue;
        chosen[n_ch++] = (struct ai_window){q, st, SB_W, 0, AI_KIND_RANDOM, 0, 0, 0};
    }
    if (n_ch < NTOP + NIW + SB_RAND) {
        pl->skip = "fewer than 10 non-activating windows found";
        goto out;
    }
    for (int i = 0; i < n_ch; i++) {
        const float *wa = a + (size_t)chosen[i].seq * T + chosen[i].start;
        chosen[i].max = window_max(wa, SB_W);
        chosen[i].marks = marks_above(wa, SB_W, pl->thr, 1);
    }
    /* split top and importance windows at random between explanation and scoring */
    shuffle_windows(r, chosen, NTOP);
    shuffle_windows(r, chosen + NTOP, NIW);
    pl->n_expl = SB_TOP_GEN + SB_IW_GEN;
    pl->expl = xmalloc((size_t)pl->n_expl * sizeof *pl->expl);
    memcpy(pl->expl, chosen, SB_TOP_GEN * sizeof *pl->expl);
    memcpy(pl->expl + SB_TOP_GEN, chosen + NTOP, SB_IW_GEN * sizeof *pl->expl);
    pl->n_test = SB_TOP_SC + SB_IW_SC + SB_RAND;
    pl->test = xmalloc((size_t)pl->n_test * sizeof *pl->test);
    memcpy(pl->test, chosen + SB_TOP_GEN, SB_TOP_SC * sizeof *pl->test);
    memcpy(pl->test + SB_TOP_SC, chosen + NTOP + SB_IW_GEN, SB_IW_SC * sizeof *pl->test);
    memcpy(pl->test + SB_TOP_SC + SB_IW_SC, chosen + NTOP + NIW, SB_RAND * sizeof *pl->test);
    for (int i = 0; i < pl->n_test; i++) pl->test[i].marks = 0;
    shuffle_windows(r, pl->test, pl->n_test);
    pl->n_sim = pl->n_test;
    pl->sim = xmalloc((size_t)pl->n_sim * sizeof *pl->sim);
    memcpy(pl->sim, pl->test, (size_t)pl->n_sim * sizeof *pl->sim);
out:
    free(wt);
    free(cd);
}


int ai_write_saebench_json(struct eval_env *env, const struct eval_run *run,
                           const struct ai_report *rep, const char *config_json,
                           const char *path, struct ev_err *err) {
    const struct ai_score *sc = &rep->s[0][0];
    cJSON                 *j = cJSON_CreateObject(), *cfg = NULL;
    char                   id[37];
    int                    rc;
    struct ev_err          e;
    cJSON_AddStringToObject(j, "eval_type_id", "autointerp");
    if (!config_json || json_parse(config_json, strlen(config_json), "config", &cfg, &e))
        cfg = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "eval_config", cfg);
    ai_eval_id(env, run, id);
    cJSON_AddStringToObject(j, "eval_id", id);
    cJSON_AddNumberToObject(j, "datetime_epoch_millis", (double)now_unix_ms());
    cJSON *m = cJSON_AddObjectToObject(j, "eval_result_metrics");
    cJSON *ai = cJSON_AddObjectToObject(m, "autointerp");
    cJSON_AddItemToObject(ai, "autointerp_score", ai_num_or_null(sc->value));
    cJSON_AddItemToObject(ai, "autointerp_std_dev", ai_num_or_null(sc->std_dev));
    cJSON_AddItemToObject(ai, "autointerp_score_ci95", ai_ci_json(sc->lo, sc->hi));
    cJSON_AddItemToObject(ai, "chance_floor", ai_num_or_null(sc->chance));
    cJSON_AddNumberToObject(ai, "latents_scored", sc->n_latents);
    cJSON_AddNumberToObject(ai, "parse_failures", sc->n_failed_latents);
    cJSON_AddArrayToObject(j, "eval_result_details");
    cJSON *un = cJSON_AddObjectToObject(j, "eval_result_unstructured");
    struct autointerp_detection *rows = NULL;
    int                          n_rows = 0;
    rc = autointerp_detections(env->store, run->id, rep->seed0, &rows, &n_rows, err);
    if (rc) goto out;
    int li = 0;
    for (int k = 0; k < n_rows; k++) {
        int    f = rows[k].feature;
        char   key[16];
        cJSON *o = cJSON_CreateObject();
        snprintf(key, sizeof key, "%d", f);
        const char *ex = rows[k].explanation, *raw = rows[k].raw_answer;
        const char *ps = rows[k].parse_status;
        cJSON_AddStringToObject(o, "explanation", ex ? ex : "");
        cJSON *pred = cJSON_AddArrayToObject(o, "predictions");
        cJSON *corr = cJSON_AddArrayToObject(o, "correct seqs");
        while (li < sc->n_lat && sc->lat[li].feature < f) li++;
        const struct ai_latent_score *ls = li < sc->n_lat && sc->lat[li].feature == f
                                               ? &sc->lat[li] : NULL;
        /* the windows, from the samples */
        int    *pos = NULL, n_s = 0;
        double *label = NULL, *prd = NULL;
        if ((rc = autointerp_detection_samples(env->store, run->id, rep->seed0, f, &pos, &label,
                                               &prd, &n_s, err))) {
            json_free(o);
            autointerp_detections_free(rows, n_rows);
            goto out;
        }
        for (int i = 0; i < n_s; i++) {
            if (label[i] > 0.5) cJSON_AddItemToArray(corr, cJSON_CreateNumber(pos[i]));
            if (!isnan(prd[i]) && prd[i] > 0.5)
                cJSON_AddItemToArray(pred, cJSON_CreateNumber(pos[i]));
        }
        free(pos);
        free(label);
        free(prd);
        cJSON_AddItemToObject(o, "score",
                              ai_num_or_null(ls && !ls->failed ? ls->value : (double)NAN));
        cJSON_AddStringToObject(o, "parse_status", ps ? ps : "not asked");
        if (raw) cJSON_AddStringToObject(o, "raw_answer", raw);
        cJSON_AddItemToObject(un, key, o);
    }
    autointerp_detections_free(rows, n_rows);
    cJSON_AddNullToObject(j, "sae_bench_commit_hash");
    cJSON_AddNullToObject(j, "sae_lens_id");
    cJSON_AddNullToObject(j, "sae_lens_release_id");
    cJSON_AddNullToObject(j, "sae_lens_version");
    cJSON_AddItemToObject(j, "sae_cfg_dict", ai_sae_cfg_json(env));
    rc = json_write_file(path, j, JSON_WRITE_PRETTY | JSON_WRITE_NEWLINE, err);
out:
    json_free(j);
    return rc;
}

