/*
 * runner — the evaluation lifecycle: open, grader, run row, work, grade or queue, report,
 * end. See runner.h.
 */
#include "evals/runner.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/hash.h"
#include "store/runinfo.h"
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

/* "control": {"kind", "seed", "of"} in a control's configuration. */
static void config_add_control(cJSON *cfg, const struct eval_control *ctl) {
    if (!ctl) return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", eval_control_name(ctl->kind));
    cJSON_AddNumberToObject(o, "seed", (double)ctl->seed);
    cJSON_AddStringToObject(o, "of", ctl->of);
    cJSON_AddItemToObject(cfg, "control", o);
}

/* One run of k; *run_id and hash (65) receive its id and configuration hash (when not NULL). */
static int run_one(const struct eval_kind *k, const struct eval_common *c, void *cfg,
                   int64_t *run_id, char *hash, struct ev_err *err) {
    struct eval_ctx x = {.common = c, .cfg = cfg};
    int             rc, run_open = 0;
    if (k->check && (rc = k->check(&x, err)) != EV_OK) goto out;
    if ((rc = eval_env_open(&x.env, c->db_path, c->model, c->model_flags, c->sae, err)) != EV_OK) goto out;
    if (k->prepare && (rc = k->prepare(&x, err)) != EV_OK) goto out;
    if (c->grader && (rc = grader_new(c->grader, x.env.store, &x.grader, err)) != EV_OK) goto out;
    x.config = cJSON_CreateObject();
    if (k->configure && (rc = k->configure(&x, x.config, err)) != EV_OK) goto out;
    config_add_control(x.config, c->control);
    if ((rc = begin(k, &x, err)) != EV_OK) goto out;
    run_open = 1;
    if (run_id) *run_id = x.run.id;
    if (hash && (rc = runinfo_config_hash(x.env.store, x.run.id, hash, err)) != EV_OK) goto out;
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

/* The random-direction control's folder for c's SAE (built when missing). */
static int random_sae_dir(const struct eval_common *c, char **dir, struct ev_err *err) {
    struct eval_env e;
    int rc = eval_env_open(&e, c->db_path, c->model, c->model_flags, c->sae, err);
    if (rc != EV_OK) return rc;
    rc = eval_control_random_sae(c->db_path, e.model, e.sae, e.sae_hash, &c->index,
                                 (uint64_t)c->seed, dir, err);
    eval_env_release(&e);
    return rc;
}

/* Control flag of the main run (id, configuration hash): its run, as k with c changed. */
static int run_control(const struct eval_kind *k, const struct eval_common *c, void *cfg,
                       unsigned flag, const char *hash, struct ev_err *err) {
    struct eval_control ctl = {.kind = flag, .seed = (uint64_t)c->seed};
    struct eval_common  c2 = *c;
    char               *dir = NULL, *tag = NULL;
    int                 rc = EV_OK;
    snprintf(ctl.of, sizeof ctl.of, "%s", hash);
    c2.control = &ctl;
    c2.controls = 0;
    if (c->tag) c2.tag = tag = xasprintf("%s.%s", c->tag, eval_control_name(flag));
    if (flag == EVAL_CONTROL_RANDOM_SAE) {
        if ((rc = random_sae_dir(c, &dir, err)) != EV_OK) goto out;
        c2.sae = dir;
        c2.index.sae_arg = dir;
    }
    ev_info("control %s: the same %s evaluation%s", eval_control_name(flag), k->name,
            flag == EVAL_CONTROL_RANDOM_SAE ? " on the random-direction SAE"
                                            : " against shuffled descriptions");
    rc = run_one(k, &c2, cfg, NULL, NULL, err);
out:
    free(dir);
    free(tag);
    return rc;
}

int eval_runner_run(const struct eval_kind *k, const struct eval_common *c, void *cfg,
                    struct ev_err *err) {
    static const unsigned all[] = {EVAL_CONTROL_RANDOM_SAE, EVAL_CONTROL_SHUFFLED};
    unsigned takes = ((k->flags & EVAL_CONTROL_RANDOM) ? EVAL_CONTROL_RANDOM_SAE : 0) |
                     ((k->flags & EVAL_CONTROL_SHUF) ? EVAL_CONTROL_SHUFFLED : 0);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if ((c->controls & all[i]) && !(takes & all[i]))
            return ev_fail(err, EV_EUSAGE, "--control %s: %s takes %s", eval_control_name(all[i]),
                           k->name, takes == 0 ? "no control"
                                    : takes == EVAL_CONTROL_RANDOM_SAE ? "only random-sae"
                                                                       : "random-sae or shuffled");
    if (c->controls && !c->grader)
        return ev_fail(err, EV_EUSAGE, "--control needs a grader (--grader or EVALRUN_GRADER): a "
                                       "control is graded like the run itself");
    int64_t id = 0;
    char    hash[65] = "";
    int     rc = EV_OK;
    if (c->controls & EVAL_CONTROL_RANDOM_SAE) { /* first: a refusal costs no grading */
        char *dir = NULL;
        rc = random_sae_dir(c, &dir, err);
        free(dir);
        if (rc != EV_OK) return rc;
    }
    rc = run_one(k, c, cfg, &id, hash, err);
    if (rc != EV_OK || !c->controls) return rc;
    for (size_t i = 0; i < sizeof all / sizeof all[0] && rc == EV_OK; i++)
        if (c->controls & all[i]) rc = run_control(k, c, cfg, all[i], hash, err);
    if (rc != EV_OK) return rc;
    struct store *s = NULL;
    if ((rc = store_open(c->db_path, STORE_READONLY, &s, err)) != EV_OK) return rc;
    rc = eval_controls_print(s, id, (uint64_t)c->seed, stdout, err);
    store_close(s);
    return rc;
}
