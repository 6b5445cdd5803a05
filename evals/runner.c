/*
 * runner — the evaluation lifecycle: open, grader, run row, work, grade or queue, report,
 * end. See runner.h.
 */
#include "evals/runner.h"

#include <stdio.h>

#include "base/hash.h"
#include "store/store.h"

void eval_config_add_grader(cJSON *cfg, struct grader *g) {
    char name[192];
    if (g)
        cJSON_AddStringToObject(cfg, "grader",
                                grader_config_name(grader_config(g), name, sizeof name));
    else cJSON_AddNullToObject(cfg, "grader");
}

int eval_require_index(struct eval_ctx *x, struct ev_err *err) {
    struct eval_index_source src = x->common->index;
    src.model_arg = x->common->model;
    src.sae_arg = x->common->sae;
    return eval_index_ensure(&x->env, &src, err);
}

int eval_features_check(const char *path, struct ev_err *err) {
    struct eval_features f = {0};
    int                  rc = eval_features_load(path, 0, &f, err);
    eval_features_release(&f);
    return rc;
}

int eval_features_open(struct eval_ctx *x, const char *path, struct eval_features *f,
                       char fhash[65], struct ev_err *err) {
    int rc = eval_features_load(path, x->env.sae->cfg.d_sae, f, err);
    if (rc != EV_OK) return rc;
    if ((rc = sha256_file(path, fhash, err)) != EV_OK) return rc;
    return eval_require_index(x, err);
}

/* The preflight request (a 401 or an unreachable URL fails here, before any batch work and
 * before a run is stored) unless this run is already done, then the run row. */
static int begin(const struct eval_kind *k, struct eval_ctx *x, struct ev_err *err) {
    const struct eval_common *c = x->common;
    if (x->grader) {
        int done = eval_run_done(&x->env, k->name, x->config, c->seed, c->shard_k, c->shard_n,
                                 err);
        if (done < 0) return done;
        int rc = done ? EV_OK : grader_preflight(x->grader, NULL, NULL, 0, NULL, 0, err);
        if (rc != EV_OK) return rc;
    }
    return eval_run_begin(&x->env, k->name, c->tag, c->retag, x->config, c->seed, c->shard_k, c->shard_n,
                          &x->run, err);
}

/* With a grader: grade the planned items. Without: say what waits for human review. */
static int grade_or_queue(const struct eval_kind *k, struct eval_ctx *x, struct ev_err *err) {
    struct eval_item_grading ig = {0};
    int has_items = k->item_grading && k->item_grading(x, &ig);
    if (x->grader) {
        if (!has_items) return EV_OK;
        struct itemgrade_stats gs;
        return itemgrade_run(&x->env, &x->run, x->grader, ig.tpl, ig.how, ig.lo, ig.hi, "grade",
                             &gs, err);
    }
    if (k->queue) return k->queue(x, err);
    if (!has_items) return EV_OK;
    long pending = 0;
    int  rc = itemgrade_count_pending(&x->env, &x->run, ig.tpl->name, &pending, err);
    if (rc != EV_OK) return rc;
    ev_info("%s", grader_not_configured_message());
    ev_info("%ld item%s of run %lld queued for human review", pending, pending == 1 ? "" : "s",
            (long long)x->run.id);
    return EV_OK;
}

static void finish_grader(const struct eval_kind *k, struct eval_ctx *x) {
    struct ev_err ignore;
    char          sum[768];
    if (!x->grader || !(k->flags & (EVAL_GRADER_USAGE | EVAL_GRADER_SUMMARY))) return;
    grader_store_usage(x->grader, x->run.id, &ignore);
    if (k->flags & EVAL_GRADER_SUMMARY)
        ev_info("%s", grader_summary(x->grader, sum, sizeof sum));
}

int eval_runner_run(const struct eval_kind *k, const struct eval_common *c, void *cfg,
                    struct ev_err *err) {
    struct eval_ctx x = {.common = c, .cfg = cfg};
    int             rc, run_open = 0;
    if (k->check && (rc = k->check(&x, err)) != EV_OK) goto out;
    if ((rc = eval_env_open(&x.env, c->db_path, c->model, c->model_flags, c->sae, err)) != EV_OK) goto out;
    if (k->prepare && (rc = k->prepare(&x, err)) != EV_OK) goto out;
    if (c->grader && (rc = grader_new(c->grader, x.env.store, &x.grader, err)) != EV_OK) goto out;
    x.config = cJSON_CreateObject();
    if (k->configure && (rc = k->configure(&x, x.config, err)) != EV_OK) goto out;
    if ((rc = begin(k, &x, err)) != EV_OK) goto out;
    run_open = 1;
    if (x.grader) grader_set_run(x.grader, x.run.id);
    if (k->work) rc = k->work(&x, err);
    if (rc == EV_OK) rc = grade_or_queue(k, &x, err);
    if (k->report && (rc == EV_OK || (rc == EV_EINTR && (k->flags & EVAL_REPORT_PARTIAL)))) {
        struct ev_err rerr = {{0}};
        int           prc = k->report(&x, &rerr);
        if (prc != EV_OK && rc == EV_OK) {
            rc = prc;
            *err = rerr;
        }
    }
out:
    if (run_open) {
        finish_grader(k, &x);
        rc = eval_run_end(&x.env, &x.run, rc, err);
    }
    if (k->release) k->release(&x);
    json_free(x.config);
    grader_free(x.grader);
    eval_env_release(&x.env);
    return rc;
}
