/*
 * saemeasure — `evalrun sae-metrics` (see saemeasure.h).
 */
#include "evals/saemeasure.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/progress.h"
#include "model/model.h"

int saemeasure_run(struct model *m, const struct sae *s, struct model_hook h,
                   struct model_hook h_out, const struct acts_corpus *c, struct sae_metrics *out,
                   struct ev_err *err) {
    const int T = c->T, D = s->cfg.d_out, S = s->cfg.d_sae, V = model_config(m)->vocab_size;
    const int tc = s->cfg.transcoder, DI = s->cfg.d_in;
    struct model_state    *st = NULL;
    struct sae_metrics_acc acc;
    float *x = xmalloc((size_t)T * D * sizeof(float)), *xh = xmalloc((size_t)T * D * sizeof(float));
    float *xin = tc ? xmalloc((size_t)T * DI * sizeof(float)) : NULL; /* (T, d_in) */
    float *zero = xcalloc((size_t)T * D, sizeof(float)), *f = xmalloc((size_t)T * S * sizeof(float));
    float *lc = xmalloc((size_t)T * V * sizeof(float)), *ls = xmalloc((size_t)T * V * sizeof(float));
    float *lz = xmalloc((size_t)T * V * sizeof(float));
    float *mean = xmalloc((size_t)T * sizeof(float));
    const int center = sae_needs_centering(s, model_config(m)->model_type);
    struct progress pg;
    int rc = model_state_new(m, T, 0, &st, err);
    sae_metrics_init(&acc, D, S);
    if (rc) goto out;
    progress_init(&pg, "sae-metrics", c->n_seq);
    for (int q = 0; q < c->n_seq; q++) {
        if (ev_interrupted()) {
            rc = ev_fail(err, EV_EINTR, "interrupted");
            goto out;
        }
        const int *tok = c->tokens + (size_t)q * T;
        struct model_edit e[2] = {{.hook = h_out, .read = x}, {.hook = h, .read = xin}};
        if ((rc = model_forward(st, tok, 0, T, e, tc ? 2 : 1, err))) goto out;
        memcpy(lc, model_state_logits(st), (size_t)T * V * sizeof(float));
        if (center) sae_center_rows(x, T, D, mean);
        sae_encode(s, f, tc ? xin : x, T);
        sae_reconstruct(s, xh, f, tc ? xin : x, T);
        /* metrics in the SAE's space; the splice goes back into the model's stream */
        sae_metrics_add_recon(&acc, x + D, xh + D, f + S, T - 1);
        if (center)
            for (int t = 0; t < T; t++)
                for (int j = 0; j < D; j++) xh[(size_t)t * D + j] += mean[t];
        struct model_edit es = {.hook = h_out, .replace = xh};
        if ((rc = model_forward(st, tok, 0, T, &es, 1, err))) goto out;
        memcpy(ls, model_state_logits(st), (size_t)T * V * sizeof(float));
        struct model_edit ez = {.hook = h_out, .replace = zero};
        if ((rc = model_forward(st, tok, 0, T, &ez, 1, err))) goto out;
        memcpy(lz, model_state_logits(st), (size_t)T * V * sizeof(float));
        /* reconstruction over the non-BOS positions (as trained, above); CE over all */
        sae_metrics_add_logits(&acc, lc, ls, lz, tok, T, V);
        progress_tick(&pg, 1);
    }
    progress_finish(&pg);
    sae_metrics_finish(&acc, out);
    rc = EV_OK;
out:
    sae_metrics_release(&acc);
    model_state_free(st);
    free(x); free(xh); free(xin); free(zero); free(f); free(lc); free(ls); free(lz); free(mean);
    return rc;
}

void saemeasure_print(int json, const char *sdir, const struct sae *s, const char *hash,
                      const struct sae_metrics *rr, const char *hist) {
    const struct sae_metrics r = *rr;
    if (json) {
        printf("{\"sae_hash\": \"%s\", \"n_tokens\": %lld, \"l0\": %.6g, \"l1\": %.6g, "
               "\"mse\": %.6g, \"explained_variance\": %.6g, \"explained_variance_legacy\": %.6g, "
               "\"fvu\": %.6g, \"l2_ratio\": %.6g, \"relative_reconstruction_bias\": %.6g, "
               "\"dead_frac\": %.6g, \"density_hist\": %s, \"ce_clean\": %.6g, \"ce_sae\": %.6g, "
               "\"ce_zero\": %.6g, \"ce_loss_score\": %.6g, \"kl_sae\": %.6g, \"kl_zero\": %.6g, "
               "\"kl_div_score\": %.6g}\n",
               hash, (long long)r.n_tokens, r.l0, r.l1, r.mse, r.explained_variance,
               r.explained_variance_legacy, r.fvu, r.l2_ratio, r.rel_recon_bias, r.dead_frac, hist,
               r.ce_clean, r.ce_sae, r.ce_zero, r.ce_loss_score, r.kl_sae, r.kl_zero,
               r.kl_div_score);
    } else {
        printf("sae           %s (%s, d_in %d, d_sae %d)\n", sdir,
               sae_arch_name(s->cfg.arch), s->cfg.d_in, s->cfg.d_sae);
        printf("sae_hash      %s\n", hash);
        printf("tokens        %lld reconstructed, %lld predicted\n", (long long)r.n_tokens,
               (long long)r.n_positions);
        printf("l0            %.3f\nl1            %.4f\nmse           %.6g\n", r.l0, r.l1, r.mse);
        printf("fvu           %.4f   (1 - explained variance, global mean)\n", r.fvu);
        printf("explained_var %.4f   (legacy per-token: %.4f)\n", r.explained_variance,
               r.explained_variance_legacy);
        printf("l2_ratio      %.4f\nrel_bias      %.4f\n", r.l2_ratio, r.rel_recon_bias);
        printf("dead_frac     %.4f   (%lld of %d latents fired on no token)\n", r.dead_frac,
               (long long)r.n_dead, s->cfg.d_sae);
        printf("ce_clean      %.4f\nce_sae        %.4f\nce_zero       %.4f\n", r.ce_clean,
               r.ce_sae, r.ce_zero);
        printf("ce_recovered  %.4f   ((ce_zero - ce_sae) / (ce_zero - ce_clean))\n",
               r.ce_loss_score);
        printf("kl_sae        %.5f\nkl_zero       %.5f\nkl_div_score  %.4f\n", r.kl_sae,
               r.kl_zero, r.kl_div_score);
        printf("density       log10 bins from -8 by 0.5:");
        for (int b = 0; b < SAE_DENSITY_BINS; b++) printf(" %lld", (long long)r.density_hist[b]);
        printf("\n");
    }
}

