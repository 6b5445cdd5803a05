/*
 * completeness — top features per concept, judged by the grader (see completeness.h).
 */
#include "evals/completeness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/progress.h"
#include "evals/describe.h"
#include "store/items.h"
#include "store/store.h"
#include "sae/intervene.h"
#include "base/json.h"
#include "model/tok.h"

// ---------------------------------------------------------------------------- concept sets

void comp_set_release(struct comp_set *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->c[i].name);
        free(s->c[i].group);
        for (int k = 0; k < s->c[i].n_prompts; k++) free(s->c[i].prompts[k]);
        free(s->c[i].prompts);
    }
    free(s->c);
    memset(s, 0, sizeof *s);
}

int comp_set_load(const char *path, const char *group, struct comp_set *out, struct ev_err *err) {
    char           *text = NULL;
    size_t          len = 0;
    cJSON          *root = NULL;
    struct comp_set s = {0};
    int             rc;
    memset(out, 0, sizeof *out);
    if ((rc = file_read_all(path, &text, &len, err)) != EV_OK) return rc;
    sha256_hex(text, len, s.hash);
    if ((rc = json_parse(text, len, path, &root, err)) != EV_OK) goto out;
    rc = EV_EFAIL;
    const cJSON *arr = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "concepts")
                                            : NULL;
    if (!cJSON_IsArray(arr)) {
        ev_fail(err, EV_EFAIL, "%s: expected an object with a \"concepts\" array", path);
        goto out;
    }
    int n_all = cJSON_GetArraySize(arr);
    s.c = xcalloc((size_t)(n_all ? n_all : 1), sizeof *s.c);
    int i = 0;
    for (const cJSON *c = arr->child; c; c = c->next, i++) {
        const char *name = NULL, *grp = "";
        char        what[64];
        snprintf(what, sizeof what, "%s: concept %d", path, i + 1);
        if (!cJSON_IsObject(c)) {
            ev_fail(err, EV_EFAIL, "%s is not an object", what);
            goto out;
        }
        if (json_get_str(c, "concept", what, &name, err) != EV_OK) goto out;
        if (json_get_str_opt(c, "group", what, &grp, err) != EV_OK) goto out;
        if (!*name) {
            ev_fail(err, EV_EFAIL, "%s: empty \"concept\"", what);
            goto out;
        }
        if (strstr(name, "{{") || strstr(name, "}}")) {
            ev_fail(err, EV_EFAIL, "%s ('%s') contains a template delimiter ('{{' or '}}')",
                    what, name);
            goto out;
        }
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(c, "prompts");
        if (!cJSON_IsArray(pr) || cJSON_GetArraySize(pr) == 0) {
            ev_fail(err, EV_EFAIL, "%s ('%s'): expected a non-empty \"prompts\" array of "
                                   "strings", what, name);
            goto out;
        }
        for (const cJSON *p = pr->child; p; p = p->next)
            if (!cJSON_IsString(p) || !p->valuestring[0]) {
                ev_fail(err, EV_EFAIL, "%s ('%s'): every prompt must be a non-empty string",
                        what, name);
                goto out;
            }
        for (int k = 0; k < s.n; k++)
            if (strcmp(s.c[k].name, name) == 0) {
                ev_fail(err, EV_EFAIL, "%s: concept '%s' is listed twice", path, name);
                goto out;
            }
        if (group && strcmp(group, grp) != 0) continue;
        struct comp_concept *cc = &s.c[s.n++];
        cc->name = xstrdup(name);
        cc->group = xstrdup(grp);
        cc->n_prompts = cJSON_GetArraySize(pr);
        cc->prompts = xcalloc((size_t)cc->n_prompts, sizeof *cc->prompts);
        int k = 0;
        for (const cJSON *p = pr->child; p; p = p->next) cc->prompts[k++] = xstrdup(p->valuestring);
    }
    if (s.n == 0) {
        if (group)
            ev_fail(err, EV_EFAIL, "%s: no concept in group '%s'", path, group);
        else
            ev_fail(err, EV_EFAIL, "%s: the concept set is empty", path);
        goto out;
    }
    *out = s;
    memset(&s, 0, sizeof s);
    rc = EV_OK;
out:
    comp_set_release(&s);
    json_free(root);
    free(text);
    return rc;
}

// ---------------------------------------------------------------------------- top features

int comp_max_tokens(struct eval_env *e, const struct comp_set *s, int *max_T, struct ev_err *err) {
    const struct tok *t = model_tokenizer(e->model);
    *max_T = 0;
    for (int i = 0; i < s->n; i++)
        for (int k = 0; k < s->c[i].n_prompts; k++) {
            int *ids = NULL, n = 0;
            int  rc = tok_encode(t, s->c[i].prompts[k], 1, &ids, &n, err);
            free(ids);
            if (rc != EV_OK) return rc;
            if (n > *max_T) *max_T = n;
        }
    return EV_OK;
}

int comp_top_features(struct eval_env *e, struct model_state *st, const struct comp_concept *c,
                      int k, int *idx, float *act, int *n_found, struct ev_err *err) {
    const struct tok *t = model_tokenizer(e->model);
    int               d_sae = e->sae->cfg.d_sae, C = e->sae->cfg.d_in;
    int               max_T = model_state_max_T(st), rc = EV_OK;
    double           *sum = xcalloc((size_t)d_sae, sizeof *sum);
    float            *resid = xmalloc(sizeof *resid * (size_t)max_T * (size_t)C); /* (T, C) */
    float            *f = xmalloc(sizeof *f * (size_t)max_T * (size_t)d_sae);     /* (T, d_sae) */
    int              *ids = NULL;
    *n_found = 0;
    for (int p = 0; p < c->n_prompts; p++) {
        int n = 0;
        free(ids);
        ids = NULL;
        if ((rc = tok_encode(t, c->prompts[p], 1, &ids, &n, err)) != EV_OK) goto out;
        if (n < 1 || n > max_T) {
            rc = ev_fail(err, EV_EFAIL, "concept '%s': prompt %d has %d tokens; the model "
                                        "takes 1..%d", c->name, p + 1, n, max_T);
            goto out;
        }
        if ((rc = intervene_encode(st, e->sae, e->hook, ids, 0, n, resid, f, err)) != EV_OK)
            goto out;
        const float *last = f + (size_t)(n - 1) * (size_t)d_sae;
        for (int i = 0; i < d_sae; i++) sum[i] += (double)last[i];
    }
    /* the k largest means (> 0), ties to the lower index */
    for (int i = 0; i < d_sae; i++) {
        float m = (float)(sum[i] / c->n_prompts);
        if (!(m > 0)) continue;
        int pos = *n_found;
        while (pos > 0 && act[pos - 1] < m) pos--;
        if (pos >= k) continue;
        int last = *n_found < k ? *n_found : k - 1;
        for (int j = last; j > pos; j--) {
            idx[j] = idx[j - 1];
            act[j] = act[j - 1];
        }
        idx[pos] = i;
        act[pos] = m;
        if (*n_found < k) (*n_found)++;
    }
out:
    free(ids);
    free(sum);
    free(resid);
    free(f);
    return rc;
}

// ---------------------------------------------------------------------------- items

int comp_concept_planned(struct eval_env *e, const struct eval_run *run, const char *concept,
                         struct ev_err *err) {
    char *key = xasprintf("c:%s", concept);
    int   rc = items_has(e->store, run->id, key, err);
    free(key);
    return rc;
}

int comp_plan_concept(struct eval_env *e, const struct eval_run *run, const struct prompt *tpl,
                      const char *concept, const int *idx, const float *act, int n,
                      struct ev_err *err) {
    struct sbuf sb;
    char       *text = NULL, *key = NULL, *payload = NULL, *cesc = NULL;
    cJSON      *pj = cJSON_CreateObject(), *fa = cJSON_CreateArray();
    int         rc;
    sbuf_init(&sb);
    cJSON_AddStringToObject(pj, "concept", concept);
    for (int i = 0; i < n; i++) {
        char *d = eval_description_get(e, idx[i], NULL);
        char *esc = prompt_escape_untrusted(d ? d : "(no description)");
        for (char *c = esc; *c; c++)
            if (*c == '\n' || *c == '\r') *c = ' ';
        sbuf_addf(&sb, "%s%d. feature %d: %s", i ? "\n" : "", i + 1, idx[i], esc);
        cJSON *fo = cJSON_CreateObject();
        cJSON_AddNumberToObject(fo, "feature", idx[i]);
        cJSON_AddNumberToObject(fo, "activation", act[i]);
        if (d) cJSON_AddStringToObject(fo, "description", d);
        else cJSON_AddNullToObject(fo, "description");
        cJSON_AddItemToArray(fa, fo);
        free(esc);
        free(d);
    }
    if (n == 0) sbuf_adds(&sb, "(no feature is active on the final token)");
    cJSON_AddItemToObject(pj, "features", fa);
    cesc = prompt_escape_untrusted(concept);
    struct prompt_var vars[2] = {{"concept", cesc}, {"features", sb.buf}};
    if ((rc = prompt_render(tpl, vars, 2, &text, err)) != EV_OK) goto out;
    key = xasprintf("c:%s", concept);
    payload = json_print(pj);
    struct item_row it = {
        .key = key,
        .kind = "concept",
        .feature = -1,
        .example_id = 0,
        .interval = -1,
        .activation = NAN,
        .template_name = tpl->name,
        .template_hash = tpl->hash,
        .prompt = text,
        .payload_json = payload,
    };
    rc = eval_item_put(e, run, &it, err);
out:
    json_free(pj);
    sbuf_release(&sb);
    free(text);
    free(key);
    free(payload);
    free(cesc);
    return rc;
}

// ---------------------------------------------------------------------------- report

struct comp_report_ctx {
    FILE          *out;
    int            yes, no, unparsed, pending, n;
    struct ev_err *err;
};

static int report_row(void *ctx, const struct items_graded_row *row) {
    struct comp_report_ctx *c = ctx;
    struct ev_err          *err = c->err;
    cJSON *pj = NULL;
    const char *pjs = row->payload_json ? row->payload_json : "";
    if (json_parse(pjs, strlen(pjs), "items.payload_json", &pj, err) != EV_OK)
        return EV_EFAIL;
    const char *concept = "?", *verdict;
    json_get_str_opt(pj, "concept", "payload", &concept, err);
    int has = row->graded;
    const char *status = row->parse_status;
    if (!has || strcmp(status, "error") == 0) {
        verdict = "pending";
        c->pending++;
    } else if (strcmp(status, "ok") != 0 || row->score < 0) {
        verdict = "unparsed";
        c->unparsed++;
    } else if (row->score == 1) {
        verdict = "yes";
        c->yes++;
    } else {
        verdict = "no";
        c->no++;
    }
    c->n++;
    fprintf(c->out, "%-32.32s %-9s", concept, verdict);
    const cJSON *fa = cJSON_GetObjectItemCaseSensitive(pj, "features");
    int          nf = 0;
    for (const cJSON *fo = fa ? fa->child : NULL; fo; fo = fo->next, nf++) {
        long   id = -1;
        double a = 0;
        json_get_long_opt(fo, "feature", "payload", &id, err);
        json_get_double_opt(fo, "activation", "payload", &a, err);
        fprintf(c->out, " %ld (%.2f)", id, a);
    }
    if (nf == 0) fprintf(c->out, " (none active)");
    fprintf(c->out, "\n");
    json_free(pj);
    return EV_OK;
}

int comp_report(struct eval_env *e, const struct eval_run *run, FILE *out, struct ev_err *err) {
    struct comp_report_ctx c = {.out = out, .err = err};
    fprintf(out, "completeness, run %lld: top features on the final token (mean over the "
                 "concept's prompts)\n\n", (long long)run->id);
    fprintf(out, "%-32s %-9s %s\n", "concept", "covered", "features (mean activation)");
    int rc = items_graded(e->store, run->id, "completeness", "llm", ITEMS_BY_ID, report_row, &c,
                          err);
    if (rc != EV_OK) return rc;
    int yes = c.yes, no = c.no, unparsed = c.unparsed, pending = c.pending, n = c.n;
    fprintf(out, "\n%d concept%s: %d covered, %d not, %d unparsed, %d pending", n,
            n == 1 ? "" : "s", yes, no, unparsed, pending);
    if (yes + no > 0)
        fprintf(out, "; coverage %.1f%% (%d/%d)\n", 100.0 * yes / (yes + no), yes, yes + no);
    else
        fprintf(out, "; coverage - (no judgement yet)\n");
    return EV_OK;
}

// ---------------------------------------------------------------------------- the evaluation

struct comp_state {
    char               *concepts_path;
    struct comp_set     set;
    struct prompt      *tpl, *xtpl;
    int                 max_T;
    struct model_state *mst;
    int                *todo, n_todo; /* (set.n) concepts of this shard not planned yet */
    int                *idx, *nf;     /* (set.n, top_k) their top features; (set.n) how many */
    float              *act;          /* (set.n, top_k) their mean activations */
};

/* The concept set (its syntax and group filter) before anything is opened. */
static int comp_check(struct eval_ctx *x, struct ev_err *err) {
    const struct comp_config *c = x->cfg;
    struct comp_state        *s = xcalloc(1, sizeof *s);
    x->state = s;
    s->concepts_path = path_shipped(c->concepts_path, NULL, "evals/sets/concepts.json");
    return comp_set_load(s->concepts_path, c->group, &s->set, err);
}

static int comp_prepare(struct eval_ctx *x, struct ev_err *err) {
    struct comp_state *s = x->state;
    int                rc;
    if ((rc = prompt_load(NULL, "completeness", &s->tpl, err)) != EV_OK) return rc;
    if ((rc = prompt_load(NULL, "explainer", &s->xtpl, err)) != EV_OK) return rc;
    if ((rc = comp_max_tokens(&x->env, &s->set, &s->max_T, err)) != EV_OK) return rc;
    if (s->max_T > model_config(x->env.model)->seq_len)
        return ev_fail(err, EV_EFAIL, "%s: a prompt has %d tokens; the model takes at most %d",
                       s->concepts_path, s->max_T, model_config(x->env.model)->seq_len);
    return EV_OK;
}

static int comp_configure(struct eval_ctx *x, cJSON *cfg, struct ev_err *err) {
    const struct comp_config *c = x->cfg;
    const struct comp_state  *s = x->state;
    (void)err;
    cJSON_AddStringToObject(cfg, "concepts_sha256", s->set.hash);
    if (c->group) cJSON_AddStringToObject(cfg, "group", c->group);
    cJSON_AddNumberToObject(cfg, "top_k", (double)c->top_k);
    cJSON_AddStringToObject(cfg, "template_sha256", s->tpl->hash);
    cJSON_AddStringToObject(cfg, "aggregate", "mean over prompts, final token");
    eval_config_add_grader(cfg, x->grader);
    return EV_OK;
}

/* the numeric part: top features of every concept of this shard not planned yet */
static int top_features(struct eval_ctx *x, struct comp_state *s, int K, struct ev_err *err) {
    int             rc;
    struct progress bar;
    if ((rc = model_state_new(x->env.model, s->max_T, 0, &s->mst, err)) != EV_OK) return rc;
    s->todo = xcalloc((size_t)s->set.n, sizeof *s->todo);
    s->idx = xcalloc((size_t)s->set.n * (size_t)K, sizeof *s->idx);
    s->act = xcalloc((size_t)s->set.n * (size_t)K, sizeof *s->act);
    s->nf = xcalloc((size_t)s->set.n, sizeof *s->nf);
    progress_init(&bar, "concepts", s->set.n);
    for (int i = 0; i < s->set.n; i++) {
        progress_tick(&bar, 1);
        if (!eval_in_shard(&x->run, i)) continue;
        int planned = comp_concept_planned(&x->env, &x->run, s->set.c[i].name, err);
        if (planned < 0) return planned;
        if (planned) continue;
        if (ev_interrupted()) return ev_fail(err, EV_EINTR, "interrupted");
        int t = s->n_todo++;
        s->todo[t] = i;
        rc = comp_top_features(&x->env, s->mst, &s->set.c[i], K, s->idx + (size_t)t * K,
                               s->act + (size_t)t * K, &s->nf[t], err);
        if (rc != EV_OK) return rc;
    }
    progress_finish(&bar);
    return EV_OK;
}

/* descriptions of the top features that have none */
static int explain_top(struct eval_ctx *x, struct comp_state *s, int K, struct ev_err *err) {
    int    *need = xcalloc((size_t)s->n_todo * (size_t)K, sizeof *need), n_need = 0;
    int64_t n_ex = 0;
    int     rc = EV_OK;
    for (int t = 0; t < s->n_todo; t++)
        for (int k = 0; k < s->nf[t]; k++) {
            int fi = s->idx[(size_t)t * K + k], dup = 0;
            for (int q = 0; q < n_need && !dup; q++) dup = need[q] == fi;
            char *d = dup ? NULL : eval_description_get(&x->env, fi, NULL);
            if (!dup && !d) need[n_need++] = fi;
            free(d);
        }
    if (n_need > 0 && (rc = describe_index_count(&x->env, &n_ex, err)) == EV_OK) {
        if (n_ex == 0 && !x->common->index.no_build) {
            /* the explainer reads the index: build it on demand */
            if ((rc = eval_require_index(x, err)) != EV_OK) goto out;
            n_ex = 1;
        }
        if (n_ex == 0) {
            ev_info("%d top feature%s have no description and there is no feature index "
                    "to explain them from (--no-index-build): shown as '(no description)'",
                    n_need, n_need == 1 ? "" : "s");
        } else {
            struct describe_stats ds;
            ev_info("explaining %d top feature%s without a description", n_need,
                    n_need == 1 ? "" : "s");
            rc = describe_explain(&x->env, &x->run, 0, x->grader, s->xtpl, need, n_need, 0,
                                  (uint64_t)x->common->seed, 10, 5, &ds, err);
        }
    }
out:
    free(need);
    return rc;
}

static int comp_work(struct eval_ctx *x, struct ev_err *err) {
    const struct comp_config *c = x->cfg;
    struct comp_state        *s = x->state;
    const int                 K = (int)c->top_k;
    int                       rc;
    if ((rc = top_features(x, s, K, err)) != EV_OK) return rc;
    if (x->grader && !c->no_explain && s->n_todo > 0 &&
        (rc = explain_top(x, s, K, err)) != EV_OK)
        return rc;
    if ((rc = store_begin(x->env.store, err)) != EV_OK) return rc;
    for (int t = 0; t < s->n_todo; t++) {
        rc = comp_plan_concept(&x->env, &x->run, s->tpl, s->set.c[s->todo[t]].name,
                               s->idx + (size_t)t * K, s->act + (size_t)t * K, s->nf[t], err);
        if (rc != EV_OK) {
            store_rollback(x->env.store);
            return rc;
        }
    }
    return store_commit(x->env.store, err);
}

static int comp_item_grading(struct eval_ctx *x, struct eval_item_grading *ig) {
    const struct comp_state *s = x->state;
    *ig = (struct eval_item_grading){s->tpl, ITEMGRADE_YES_NO, 0, 1};
    return 1;
}

static int comp_print(struct eval_ctx *x, struct ev_err *err) {
    return comp_report(&x->env, &x->run, stdout, err);
}

static void comp_release(struct eval_ctx *x) {
    struct comp_state *s = x->state;
    if (!s) return;
    free(s->todo);
    free(s->idx);
    free(s->act);
    free(s->nf);
    model_state_free(s->mst);
    prompt_free(s->tpl);
    prompt_free(s->xtpl);
    comp_set_release(&s->set);
    free(s->concepts_path);
    free(s);
    x->state = NULL;
}

const struct eval_kind comp_kind = {
    .name = "completeness",
    .flags = EVAL_GRADER_USAGE | EVAL_GRADER_SUMMARY | EVAL_CONTROL_RANDOM,
    .check = comp_check,
    .prepare = comp_prepare,
    .configure = comp_configure,
    .work = comp_work,
    .item_grading = comp_item_grading,
    .report = comp_print,
    .release = comp_release,
};
