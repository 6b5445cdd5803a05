/*
 * influence — steering by clamping features, generation and grading (see influence.h).
 */
#include "evals/influence.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evals/describe.h"
#include "evals/index.h"
#include "evals/influence_measure.h"
#include "evals/influence_report.h"
#include "graders/grader.h"
#include "sae/intervene.h"
#include "base/hash.h"
#include "base/json.h"
#include "graders/parse.h"
#include "base/progress.h"
#include "graders/prompt.h"
#include "model/sample.h"
#include "store/generations.h"
#include "store/influence.h"
#include "store/items.h"
#include "store/store.h"

// ---------------------------------------------------------------------------- sets and flags

void infl_set_release(struct infl_set *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->prompts[i].id);
        free(s->prompts[i].text);
        free(s->prompts[i].kind);
    }
    free(s->prompts);
    free(s->name);
    memset(s, 0, sizeof *s);
}

int infl_set_load(const char *path, const char *only, struct infl_set *out, struct ev_err *err) {
    cJSON          *root = NULL;
    const cJSON    *arr = NULL;
    const char     *name = NULL;
    struct infl_set set = {0};
    memset(out, 0, sizeof *out);
    int rc = prompt_set_open(path, "{\"id\", \"text\", \"kind\"}", &root, &arr, &name, err);
    if (rc != EV_OK) goto out;
    rc = EV_EFAIL;
    set.name = xstrdup(name);
    int n = cJSON_GetArraySize(arr);
    set.prompts = xcalloc((size_t)(n ? n : 1), sizeof *set.prompts);
    for (int i = 0; i < n; i++) {
        char         what[64];
        const char  *id = NULL, *text = NULL, *kind = NULL;
        const cJSON *e = prompt_set_entry(arr, i, path, what, sizeof what, err);
        if (!e) goto out;
        if (json_get_str_opt(e, "id", what, &id, err) != EV_OK ||
            json_get_str(e, "text", what, &text, err) != EV_OK ||
            json_get_str_opt(e, "kind", what, &kind, err) != EV_OK)
            goto out;
        if (!*text) {
            ev_fail(err, EV_EFAIL, "%s: \"text\" must not be empty", what);
            goto out;
        }
        char *pid = id && *id ? xstrdup(id) : xasprintf("p%d", i);
        for (int j = 0; j < set.n; j++)
            if (strcmp(set.prompts[j].id, pid) == 0) {
                ev_fail(err, EV_EFAIL, "%s: id '%s' is used twice", what, pid);
                free(pid);
                goto out;
            }
        if (only && (!kind || strcmp(kind, only) != 0)) {
            free(pid);
            continue;
        }
        set.prompts[set.n].id = pid;
        set.prompts[set.n].text = xstrdup(text);
        set.prompts[set.n].kind = kind ? xstrdup(kind) : NULL;
        set.n++;
    }
    if (set.n == 0) {
        if (only && n > 0)
            ev_fail(err, EV_EFAIL, "%s: no prompt of kind '%s' (--only)", path, only);
        else
            ev_fail(err, EV_EFAIL, "%s: the prompt set is empty (\"prompts\" has no entries)",
                    path);
        goto out;
    }
    *out = set;
    memset(&set, 0, sizeof set);
    rc = EV_OK;
out:
    infl_set_release(&set);
    json_free(root);
    return rc;
}

int infl_parse_scales(const char *spec, double **scales, int *n, struct ev_err *err) {
    *scales = NULL;
    *n = 0;
    if (!spec || !*spec)
        return ev_fail(err, EV_EUSAGE, "--scale needs a value: a number or a list like 5,10,20");
    char   *copy = xstrdup(spec);
    double *v = xmalloc(sizeof *v * (strlen(spec) / 2 + 2));
    int     k = 0, rc = EV_OK;
    for (char *s = copy, *next; s; s = next) {
        next = strchr(s, ',');
        if (next) *next++ = '\0';
        while (*s == ' ') s++;
        for (size_t l = strlen(s); l > 0 && s[l - 1] == ' '; l--) s[l - 1] = '\0';
        double x;
        if (parse_double(s, &x) != EV_OK || !isfinite(x) || x < 0 || x > 1000) {
            rc = ev_fail(err, EV_EUSAGE, "--scale: expected numbers in [0, 1000] separated by "
                                         "commas (e.g. 5,10,20), got '%s'", spec);
            break;
        }
        for (int j = 0; j < k; j++)
            if (v[j] == x) {
                rc = ev_fail(err, EV_EUSAGE, "--scale: %g is listed twice", x);
                break;
            }
        if (rc != EV_OK) break;
        v[k++] = x;
    }
    free(copy);
    if (rc != EV_OK) {
        free(v);
        return rc;
    }
    *scales = v;
    *n = k;
    return EV_OK;
}

char *infl_key(int feature, double scale, int prompt) {
    if (feature < 0) return xasprintf("base/p%d", prompt);
    return xasprintf("f%d/s%g/p%d", feature, scale, prompt);
}

// ---------------------------------------------------------------------------- storage

/* The stored text of generation key, or NULL (caller frees). */
static char *gen_text(struct eval_env *e, const struct eval_run *run, const char *key) {
    struct ev_err err;
    char         *t = NULL;
    if (generations_get(e->store, run->id, key, NULL, &t, NULL, &err) != 1) {
        free(t);
        return NULL;
    }
    return t;
}

// ---------------------------------------------------------------------------- generation

/* Seed of prompt p's continuations: the same for its baseline and every steered one. */
static uint64_t prompt_seed(const struct eval_run *run, int p) {
    uint64_t z = (uint64_t)run->seed + 0x9E3779B97F4A7C15ULL * (uint64_t)(p + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

struct gen_ctx {
    struct eval_env        *e;
    const struct eval_run  *run;
    const struct infl_opts *o;
    struct model_state     *st;
    const float            *dirs;
    int                   **ids; /* (n prompts) encoded prompts */
    int                    *n_ids;
    int                    *out; /* (max_new) */
};

/* The clamp of feature (-1: none) to value on prompt p, as generation and measures apply it. */
static struct steer make_steer(const struct gen_ctx *c, int p, int feature, double value) {
    const struct tok *tk = model_tokenizer(c->e->model);
    return (struct steer){.feature = feature, .value = (float)value,
                          .from_pos = c->o->skip_bos && c->ids[p][0] == tok_bos(tk) ? 1 : 0,
                          .dir = feature >= 0 ? c->dirs + (size_t)feature * c->e->sae->cfg.d_out
                                              : NULL};
}

/* Generates and stores one continuation (baseline when feature < 0) unless stored. */
static int gen_one(struct gen_ctx *c, int p, int feature, double scale, double max_act,
                   struct infl_stats *stats, struct ev_err *err) {
    const struct tok *tk = model_tokenizer(c->e->model);
    char             *key = infl_key(feature, scale, p);
    char             *have = gen_text(c->e, c->run, key);
    struct sampler    smp;
    struct sbuf       sb;
    int               rc, n_out = 0;
    if (have) {
        stats->reused++;
        free(have);
        free(key);
        return EV_OK;
    }
    uint64_t     seed = prompt_seed(c->run, p);
    struct steer sv = make_steer(c, p, feature, scale * max_act);
    model_sampler_init(&smp, c->e->model, (float)c->o->temperature, (float)c->o->top_p, seed);
    rc = intervene_generate(c->st, &smp, c->e->sae, c->e->hook, c->e->hook_out, c->ids[p],
                            c->n_ids[p],
                            c->o->max_new, tok_eos(tk), feature >= 0 ? &sv : NULL, c->out,
                            &n_out, err);
    sampler_release(&smp);
    if (rc != EV_OK) {
        free(key);
        return rc;
    }
    sbuf_init(&sb);
    int prev = c->ids[p][c->n_ids[p] - 1];
    for (int i = 0; i < n_out; i++) {
        if (c->out[i] == tok_eos(tk)) break;
        sbuf_adds(&sb, tok_piece(tk, prev, c->out[i]));
        prev = c->out[i];
    }
    struct generation_row g = {.key = key, .prompt = c->o->set->prompts[p].text,
                               .prompt_idx = p, .feature = feature, .scale = scale,
                               .max_act = max_act, .value = scale * max_act, .seed = seed,
                               .tokens = c->out, .n = n_out, .text = sb.buf ? sb.buf : ""};
    rc = generations_put(c->e->store, c->run->id, &g, err);
    if (rc == EV_OK) stats->generated++;
    sbuf_release(&sb);
    free(key);
    return rc;
}

// ---------------------------------------------------------------------------- measures

/* Measures and stores generation gen_key of prompt p as row key (influence_measure.h) unless
 * stored: feature's activation, and the KL of the clamp to value when steered. */
static int measure_one(struct gen_ctx *c, const char *key, const char *gen_key, int p,
                       int feature, double scale, double value, int steered,
                       struct infl_stats *stats, struct ev_err *err) {
    int *gen = NULL, n_gen = 0;
    int  rc = influence_measure_has(c->e->store, c->run->id, key, err);
    if (rc != 0) {
        if (rc == 1) stats->measures_reused++;
        return rc < 0 ? rc : EV_OK;
    }
    if ((rc = generations_tokens(c->e->store, c->run->id, gen_key, &gen, &n_gen, err)) != 1)
        return rc < 0 ? rc : EV_OK; /* not generated (another shard's, or interrupted) */
    int  np = c->n_ids[p], L = np + n_gen;
    int *seq = xmalloc(sizeof *seq * (size_t)L);
    memcpy(seq, c->ids[p], sizeof *seq * (size_t)np);
    memcpy(seq + np, gen, sizeof *seq * (size_t)n_gen);
    struct steer        sv = make_steer(c, p, feature, value);
    struct infl_measure m;
    rc = infl_measure(c->e->model, c->st, c->e->sae, c->e->hook, c->e->hook_out, seq, np, L,
                      feature, steered ? &sv : NULL, &m, err);
    if (rc == EV_OK) {
        struct influence_measure_row row = {
            .key = key, .gen_key = gen_key, .feature = feature, .prompt = p,
            .scale = steered ? scale : (double)NAN, .n_tokens = m.n_new, .loglik = m.loglik,
            .act_mean = m.act_mean, .act_max = m.act_max, .kl_mean = m.kl_mean,
            .kl_max = m.kl_max, .n_kl = m.n_kl};
        rc = influence_measure_put(c->e->store, c->run->id, &row, err);
        if (rc == EV_OK) stats->measured++;
    }
    free(seq);
    free(gen);
    return rc;
}

/* The measures of item (feature, scale, p): the baseline read for the feature (unless
 * *base_done: this invocation did it), and the steered one. */
static int measure_item(struct gen_ctx *c, int feature, double scale, double max_act, int p,
                        int *base_done, struct infl_stats *stats, struct ev_err *err) {
    char *bgen = infl_key(-1, 0, p), *bkey = xasprintf("%s/f%d", bgen, feature);
    char *key = infl_key(feature, scale, p);
    int   rc = EV_OK;
    if (!*base_done) rc = measure_one(c, bkey, bgen, p, feature, NAN, 0, 0, stats, err);
    *base_done = 1;
    if (rc == EV_OK) rc = measure_one(c, key, key, p, feature, scale, scale * max_act, 1, stats, err);
    free(bgen), free(bkey), free(key);
    return rc;
}

/* One pass over the (feature, scale, prompt) grid of the run's shard, in its stable order. */
struct grid_pass {
    struct gen_ctx    *gc;
    const double      *max_act;       /* (n features) */
    int               *base_done;     /* (n prompts) generating: the base continuation is made */
    int               *base_measured; /* (n features, n prompts) measuring: the baseline is */
    struct infl_stats *stats;
};

/* Generates cell (fi, si, p): the prompt's base continuation first where not yet made. */
static int grid_generate(struct grid_pass *g, int fi, int si, int p, struct ev_err *err) {
    const struct infl_opts *o = g->gc->o;
    int                     rc;
    if (!g->base_done[p]) {
        if ((rc = gen_one(g->gc, p, -1, 0, 0, g->stats, err)) != EV_OK) return rc;
        g->base_done[p] = 1;
    }
    return gen_one(g->gc, p, o->features[fi], o->scales[si], g->max_act[fi], g->stats, err);
}

/* Measures cell (fi, si, p) (measure_item). */
static int grid_measure(struct grid_pass *g, int fi, int si, int p, struct ev_err *err) {
    const struct infl_opts *o = g->gc->o;
    return measure_item(g->gc, o->features[fi], o->scales[si], g->max_act[fi], p,
                        &g->base_measured[(size_t)fi * o->set->n + p], g->stats, err);
}

/* Runs step on each cell of the shard under a progress bar (label, total cells); stops at the
 * first error or at an interrupt (EV_EINTR). */
static int grid_each(struct grid_pass *g, const char *label, long total,
                     int (*step)(struct grid_pass *g, int fi, int si, int p, struct ev_err *err),
                     struct ev_err *err) {
    const struct infl_opts *o = g->gc->o;
    const int               NP = o->set->n, NF = o->n_features, NS = o->n_scales;
    struct progress         bar;
    int                     rc = EV_OK;
    long                    i = 0;
    progress_init(&bar, label, total);
    for (int fi = 0; fi < NF && rc == EV_OK; fi++)
        for (int si = 0; si < NS && rc == EV_OK; si++)
            for (int p = 0; p < NP && rc == EV_OK; p++, i++) {
                if (!eval_in_shard(g->gc->run, i)) continue;
                if (ev_interrupted()) {
                    rc = ev_fail(err, EV_EINTR, "interrupted");
                    break;
                }
                if ((rc = step(g, fi, si, p, err)) != EV_OK) break;
                progress_tick(&bar, 1);
            }
    progress_finish(&bar);
    return rc;
}

// ---------------------------------------------------------------------------- planning

/* Plans (or completes) the two grading items of steered generation key. */
static int plan_items(struct eval_env *e, const struct eval_run *run, const struct infl_opts *o,
                      int fi, double scale, int p, const char *desc, struct infl_stats *stats,
                      struct ev_err *err) {
    int   feature = o->features[fi];
    char *key = infl_key(feature, scale, p), *bkey = infl_key(-1, 0, p);
    char *steered = gen_text(e, run, key), *base = gen_text(e, run, bkey);
    char *rendered = NULL, *k1 = NULL, *k2 = NULL, *payload = NULL;
    int   rc = EV_OK;
    if (!steered || !base) goto out; /* not generated yet (interrupted) */
    if (desc) {
        char *d = prompt_escape_untrusted(desc), *pr = prompt_escape_untrusted(
                                                     o->set->prompts[p].text);
        char *b = prompt_escape_untrusted(base), *s = prompt_escape_untrusted(steered);
        struct prompt_var vars[] = {
            {"description", d}, {"prompt", pr}, {"baseline", b}, {"steered", s}};
        rc = prompt_render(o->tpl, vars, 4, &rendered, err);
        free(d), free(pr), free(b), free(s);
        if (rc != EV_OK) goto out;
        stats->items_planned++;
    } else {
        stats->no_description++;
    }
    k1 = xasprintf("%s/concept", key);
    k2 = xasprintf("%s/fluency", key);
    payload = xasprintf("{\"generation\":\"%s\",\"baseline\":\"%s\",\"scale\":%g}", key, bkey,
                        scale);
    for (int i = 0; i < 2 && rc == EV_OK; i++) {
        struct item_row it = {.key = i ? k2 : k1,
                               .kind = i ? "influence_fluency" : "influence_concept",
                               .feature = feature, .interval = -1, .activation = NAN,
                               .template_name = "influence", .template_hash = o->tpl->hash,
                               .prompt = rendered, .payload_json = payload};
        rc = eval_item_put(e, run, &it, err);
        if (rc == EV_OK && rendered) rc = items_set_prompt(e->store, run->id, it.key, rendered, err);
    }
out:
    free(key), free(bkey), free(steered), free(base), free(rendered), free(k1), free(k2);
    free(payload);
    return rc;
}

// ---------------------------------------------------------------------------- grading

struct pending {
    char *key;    /* the generation's key */
    char *prompt; /* rendered */
    int   feature;
};

struct grade_ctx {
    struct eval_env        *e;
    const struct eval_run  *run;
    const struct infl_opts *o;
    struct pending         *p;
    struct infl_stats      *stats;
    struct progress         bar;
    char                    name[200];
};

static int accept_answer(void *ud, int index, const char *answer) {
    (void)ud, (void)index;
    int a, b;
    return parse_labeled_score(answer, "Concept", 0, 3, &a) == PARSE_OK &&
           parse_labeled_score(answer, "Fluency", 0, 3, &b) == PARSE_OK;
}

static int on_result(void *ud, int index, const struct grader_result *res, struct ev_err *err) {
    struct grade_ctx *c = ud;
    struct pending   *p = &c->p[index];
    int               sc[2] = {-1, -1};
    const char       *status[2] = {"error", "error"};
    static const char *const label[2] = {"Concept", "Fluency"};
    static const char *const suffix[2] = {"concept", "fluency"};
    if (res->status == GRADER_OK) {
        for (int i = 0; i < 2; i++) {
            enum parse_status ps = parse_labeled_score(res->text, label[i], 0, 3, &sc[i]);
            if (ps != PARSE_OK) sc[i] = -1;
            status[i] = parse_status_name(ps);
        }
    }
    int rc = store_begin(c->e->store, err);
    for (int i = 0; i < 2 && rc == EV_OK; i++) {
        char            *key = xasprintf("%s/%s", p->key, suffix[i]);
        struct grade_row g = {.item_key = key, .feature = p->feature, .grader_kind = "llm",
                               .grader_name = c->name, .score = sc[i],
                               .parse_status = status[i],
                               .raw_answer = res->status == GRADER_OK ? res->text : res->error,
                               .template_hash = c->o->tpl->hash,
                               .latency_ms = (long)(res->latency_s * 1000),
                               .tokens_in = res->tokens_in, .tokens_out = res->tokens_out};
        rc = eval_grade_put(c->e, c->run, &g, err);
        free(key);
    }
    if (rc == EV_OK) rc = store_commit(c->e->store, err);
    else store_rollback(c->e->store);
    if (res->status != GRADER_OK) c->stats->failed++;
    else if (sc[0] < 0 || sc[1] < 0) c->stats->unparsed++;
    else c->stats->graded++;
    progress_tick(&c->bar, 1);
    return rc;
}

struct pending_list {
    struct pending *p;
    int             n, cap;
    int64_t         last_id;
    int             seen;
};

/* items_pending's rows: the concept item of each steered continuation stands for both */
static int collect_pending(void *ctx, const struct items_pending_row *row) {
    struct pending_list *l = ctx;
    size_t               kl = strlen(row->key), sl = strlen("/concept");
    l->last_id = row->id;
    l->seen++;
    if (!row->prompt || kl <= sl || strcmp(row->key + kl - sl, "/concept") != 0) return EV_OK;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->p = xrealloc(l->p, sizeof *l->p * (size_t)l->cap);
    }
    struct pending *q = &l->p[l->n++];
    q->key = xmalloc(kl - sl + 1);
    memcpy(q->key, row->key, kl - sl);
    q->key[kl - sl] = '\0';
    q->prompt = xstrdup(row->prompt);
    q->feature = row->feature;
    return EV_OK;
}

static int grade_pending(struct eval_env *e, const struct eval_run *run,
                         const struct infl_opts *o, struct infl_stats *stats,
                         struct ev_err *err) {
    struct pending_list    l = {0};
    struct grader_request *reqs = NULL;
    int                    rc = EV_OK;
    do {
        l.seen = 0;
        rc = items_pending(e->store, run->id, "influence", l.last_id, 1000, collect_pending, &l,
                           err);
    } while (rc == EV_OK && l.seen > 0);
    struct pending *p = l.p;
    int             n = l.n;
    if (rc != EV_OK) goto out;
    if (n > 0) {
        struct grade_ctx c = {.e = e, .run = run, .o = o, .p = p, .stats = stats};
        grader_config_name(grader_config(o->grader), c.name, sizeof c.name);
        reqs = xcalloc((size_t)n, sizeof *reqs);
        for (int i = 0; i < n; i++)
            reqs[i] = (struct grader_request){.system = o->tpl->system, .prompt = p[i].prompt,
                                              .fixed_len = prompt_fixed_len(o->tpl)};
        grader_set_run(o->grader, run->id);
        progress_init(&c.bar, "influence: grading", n);
        rc = grader_run_batch(o->grader, reqs, n, accept_answer, on_result, &c, err);
        progress_finish(&c.bar);
        struct ev_err ignore;
        grader_store_usage(o->grader, run->id, &ignore);
    }
out:
    for (int i = 0; i < n; i++) {
        free(p[i].key);
        free(p[i].prompt);
    }
    free(p);
    free(reqs);
    return rc;
}

// ---------------------------------------------------------------------------- the evaluation

int infl_eval_run(struct eval_env *e, const struct eval_run *run, const struct infl_opts *o,
                  struct infl_stats *stats, struct ev_err *err) {
    const struct infl_set *set = o->set;
    const struct tok      *tk = model_tokenizer(e->model);
    int                    NP = set->n, NF = o->n_features, NS = o->n_scales;
    int                  **ids = xcalloc((size_t)NP, sizeof *ids);
    int                   *n_ids = xcalloc((size_t)NP, sizeof *n_ids);
    double                *max_act = xcalloc((size_t)NF, sizeof *max_act);
    char                 **desc = xcalloc((size_t)NF, sizeof *desc);
    float                 *dirs = NULL;
    int                   *out = NULL, *base_done = xcalloc((size_t)NP, sizeof *base_done);
    int                   *base_measured = NULL;
    struct model_state    *st = NULL;
    int                    rc = EV_OK, max_n = 0, seq_len = model_config(e->model)->seq_len;
    memset(stats, 0, sizeof *stats);
    if (!tk) {
        rc = ev_fail(err, EV_EFAIL, "model %s has no tokenizer", e->model_path);
        goto out;
    }
    /* ---- validate everything before any work ---- */
    for (int p = 0; p < NP; p++) {
        if ((rc = tok_encode(tk, set->prompts[p].text, 1, &ids[p], &n_ids[p], err)) != EV_OK)
            goto out;
        if (n_ids[p] + o->max_new > seq_len) {
            rc = ev_fail(err, EV_EFAIL, "steering prompt '%s' is %d tokens: with %d new tokens "
                                        "it exceeds the model's context of %d (lower "
                                        "--max-tokens)", set->prompts[p].id, n_ids[p],
                         o->max_new, seq_len);
            goto out;
        }
        if (n_ids[p] > max_n) max_n = n_ids[p];
    }
    if (o->max_act > 0) {
        for (int i = 0; i < NF; i++) max_act[i] = o->max_act;
    } else {
        int64_t n_ex = 0;
        if ((rc = describe_index_count(e, &n_ex, err)) != EV_OK) goto out;
        if (n_ex == 0) {
            char *cmd = eval_index_build_command(e, NULL);
            rc = ev_fail(err, EV_EFAIL, "the database %s holds no feature index for SAE %s, so "
                                        "the features' max activations are unknown (or give "
                                        "--max-act X): build it with: %s",
                         store_path(e->store), e->sae_path, cmd);
            free(cmd);
            goto out;
        }
        for (int i = 0; i < NF; i++) {
            struct describe_examples x;
            if ((rc = describe_examples_load(e, o->features[i], &x, err)) != EV_OK) goto out;
            max_act[i] = x.max_act;
            describe_examples_release(&x);
            if (!(max_act[i] > 0)) {
                rc = ev_fail(err, EV_EFAIL, "feature %d never fired in the feature index of SAE "
                                            "%s (no max activation to scale by): remove it from "
                                            "the features file or give --max-act X",
                             o->features[i], e->sae_path);
                goto out;
            }
        }
    }
    for (int i = 0; i < NF; i++)
        desc[i] = o->desc && o->desc[i] ? xstrdup(o->desc[i])
                                        : eval_description_get(e, o->features[i], NULL);

    /* ---- generation ---- */
    if ((rc = model_state_new(e->model, max_n + o->max_new, 0, &st, err)) != EV_OK) goto out;
    dirs = intervene_directions(e->sae);
    out = xmalloc(sizeof *out * (size_t)(o->max_new + 1));
    struct gen_ctx gc = {.e = e, .run = run, .o = o, .st = st, .dirs = dirs, .ids = ids,
                         .n_ids = n_ids, .out = out};
    long total = 0;
    for (long i = 0; i < (long)NF * NS * NP; i++) total += eval_in_shard(run, i);
    struct grid_pass gp = {.gc = &gc, .max_act = max_act, .base_done = base_done, .stats = stats};
    if ((rc = grid_each(&gp, "influence: generating", total, grid_generate, err)) != EV_OK)
        goto out;

    /* ---- numeric measures (no LLM): each row stored on its own, so a kill loses none ---- */
    base_measured = xcalloc((size_t)NF * NP, sizeof *base_measured);
    gp.base_measured = base_measured;
    if ((rc = grid_each(&gp, "influence: measuring", total, grid_measure, err)) != EV_OK) goto out;

    /* ---- planning: two items per steered continuation ---- */
    if ((rc = store_begin(e->store, err)) != EV_OK) goto out;
    long i = 0;
    for (int fi = 0; fi < NF && rc == EV_OK; fi++)
        for (int si = 0; si < NS && rc == EV_OK; si++)
            for (int p = 0; p < NP && rc == EV_OK; p++, i++)
                if (eval_in_shard(run, i))
                    rc = plan_items(e, run, o, fi, o->scales[si], p, desc[fi], stats, err);
    if (rc == EV_OK) rc = store_commit(e->store, err);
    else store_rollback(e->store);
    if (rc != EV_OK) goto out;

    /* ---- grading ---- */
    if (o->grader) rc = grade_pending(e, run, o, stats, err);
out:
    for (int p = 0; p < NP; p++) free(ids[p]);
    for (int f = 0; f < NF; f++) free(desc[f]);
    free(ids), free(n_ids), free(max_act), free(desc), free(dirs), free(out), free(base_done);
    free(base_measured);
    model_state_free(st);
    return rc;
}

// ---------------------------------------------------------------------------- the table

/* Prints s on one line (newlines shown as spaces), at most max bytes, cut at a UTF-8
 * boundary. */
static void print_excerpt(const char *s, size_t max) {
    size_t n = 0;
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
        if (n >= max && (*p & 0xC0) != 0x80) {
            fputs("...", stdout);
            break;
        }
        if (*p == '"') fputs("\\\"", stdout);
        else if (*p < 0x20) putchar(' ');
        else putchar(*p);
    }
    putchar('"');
}

/* "est [lo, hi]" or "est" when there is no interval, "-" when undefined, width w */
static void print_ci(const struct stats_ci *c, int d, int w) {
    char buf[96];
    if (isnan(c->est)) snprintf(buf, sizeof buf, "-");
    else if (isnan(c->lo)) snprintf(buf, sizeof buf, "%.*f", d, c->est);
    else snprintf(buf, sizeof buf, "%.*f [%.*f, %.*f]", d, c->est, d, c->lo, d, c->hi);
    printf(" %*s", w, buf);
}

static void print_num(double v, int d, int w) {
    if (isnan(v)) printf(" %*s", w, "-");
    else printf(" %*.*f", w, d, v);
}

/* The --scale auto pick of each feature (influence_report.h). */
static void print_auto(const struct infl_summary *sm) {
    for (int j = 0; j < sm->n_features; j++) {
        if (sm->pick[j] < 0) {
            printf("--scale auto: feature %d: no scale keeps the fluency drop within %g "
                   "nats/token\n", sm->features[j], sm->fluency_drop);
            continue;
        }
        const struct infl_cell *c = &sm->cells[sm->pick[j]];
        printf("--scale auto: feature %d: scale %g (fluency drop %.3f <= %g nats/token), "
               "concept gain", c->feature, c->scale, c->drop.est, sm->fluency_drop);
        print_ci(&c->gain, 4, 0);
        printf(", KL %.4f, n %d\n", c->kl.est, c->n);
    }
}

/* One row per (feature, scale) of the run: the LLM grades and the numeric measures (means over
 * prompts with 95% bootstrap intervals), then the steered texts of the first prompt. */
static int print_table(struct eval_env *e, const struct eval_run *run, const struct infl_opts *o,
                       double fluency_drop, int scale_auto, struct ev_err *err) {
    struct infl_summary sm;
    int                 rc = infl_summary_load(e->store, run->id, fluency_drop, &sm, err);
    if (rc != EV_OK) return rc;
    printf("%7s %6s %9s %9s %8s %8s %6s %8s %3s %8s %22s %7s %24s %24s\n", "feature", "scale",
           "max_act", "clamp", "concept", "fluency", "graded", "unparsed", "n", "loglik",
           "fluency drop [95% CI]", "act", "concept gain [95% CI]", "KL [95% CI]");
    for (int i = 0; i < sm.n_cells; i++) {
        const struct infl_cell *c = &sm.cells[i];
        printf("%7d %6g %9.4f %9.4f", c->feature, c->scale, c->max_act, c->clamp);
        print_num(c->concept.est, 2, 8);
        print_num(c->fluency.est, 2, 8);
        printf(" %6d %8d %3d", c->n_llm, c->unparsed, c->n);
        print_num(c->ll, 3, 8);
        print_ci(&c->drop, 3, 22);
        print_num(c->act, 4, 7);
        print_ci(&c->gain, 4, 24);
        print_ci(&c->kl, 4, 24);
        putchar('\n');
    }
    if (scale_auto) print_auto(&sm);
    /* the texts: the baseline and each steered one of the first prompt of this shard */
    int p0 = -1;
    for (long i = 0; i < (long)o->n_features * o->n_scales * o->set->n && p0 < 0; i++)
        if (eval_in_shard(run, i)) p0 = (int)(i % o->set->n);
    if (p0 >= 0) {
        char *bkey = infl_key(-1, 0, p0), *bt = gen_text(e, run, bkey);
        printf("steered texts (prompt '%s'):\n%7s %6s  ", o->set->prompts[p0].id, "-", "-");
        print_excerpt(bt ? bt : "", 70);
        printf("  (baseline)\n");
        free(bkey), free(bt);
        for (int i = 0; i < sm.n_cells; i++) {
            char *key = infl_key(sm.cells[i].feature, sm.cells[i].scale, p0);
            char *t = gen_text(e, run, key);
            printf("%7d %6g  ", sm.cells[i].feature, sm.cells[i].scale);
            print_excerpt(t ? t : "", 70);
            putchar('\n');
            free(key), free(t);
        }
    }
    infl_summary_release(&sm);
    return EV_OK;
}

// ---------------------------------------------------------------------------- the evaluation

struct infl_state {
    char                *prompts_owned;
    const char          *prompts_path;
    struct infl_set      set;
    struct eval_features ff;
    struct prompt       *tpl;
    char                 fhash[65], phash[65];
    struct infl_opts     o;
    struct infl_stats    st;
};

/* The steering set, both files' hashes and the template, before anything is opened. */
static int infl_check(struct eval_ctx *x, struct ev_err *err) {
    const struct infl_config *c = x->cfg;
    struct infl_state        *s = xcalloc(1, sizeof *s);
    int                       rc;
    x->state = s;
    s->prompts_path = c->prompts_path;
    if (!s->prompts_path)
        s->prompts_path = s->prompts_owned = path_shipped(NULL, NULL, "evals/sets/steering.json");
    if ((rc = infl_set_load(s->prompts_path, c->only, &s->set, err)) != EV_OK) return rc;
    if ((rc = sha256_file(s->prompts_path, s->phash, err)) != EV_OK ||
        (rc = sha256_file(c->features_path, s->fhash, err)) != EV_OK)
        return rc;
    return prompt_load(NULL, "influence", &s->tpl, err);
}

static int infl_prepare(struct eval_ctx *x, struct ev_err *err) {
    const struct infl_config *c = x->cfg;
    struct infl_state        *s = x->state;
    int rc = eval_features_load(c->features_path, x->env.sae->cfg.d_sae, &s->ff, err);
    /* the features' max activations come from the index (built on demand) unless --max-act */
    if (rc == EV_OK && !(c->max_act > 0)) rc = eval_require_index(x, err);
    return rc;
}

static int infl_configure(struct eval_ctx *x, cJSON *cfg, struct ev_err *err) {
    const struct infl_config *c = x->cfg;
    const struct infl_state  *s = x->state;
    (void)err;
    cJSON_AddStringToObject(cfg, "features", c->features_path);
    cJSON_AddStringToObject(cfg, "features_sha256", s->fhash);
    cJSON_AddStringToObject(cfg, "prompts", s->prompts_path);
    cJSON_AddStringToObject(cfg, "prompts_sha256", s->phash);
    if (c->only) cJSON_AddStringToObject(cfg, "only", c->only);
    cJSON *sa = cJSON_AddArrayToObject(cfg, "scales");
    for (int i = 0; i < c->n_scales; i++)
        cJSON_AddItemToArray(sa, cJSON_CreateNumber(c->scales[i]));
    cJSON_AddNumberToObject(cfg, "max_tokens", (double)c->max_new);
    cJSON_AddNumberToObject(cfg, "temperature", c->temperature);
    cJSON_AddNumberToObject(cfg, "top_p", c->top_p);
    if (c->max_act > 0) cJSON_AddNumberToObject(cfg, "max_act", c->max_act);
    cJSON_AddBoolToObject(cfg, "clamp_bos", c->clamp_bos);
    if (c->scale_auto) {
        cJSON_AddBoolToObject(cfg, "scale_auto", 1);
        cJSON_AddNumberToObject(cfg, "fluency_drop", c->fluency_drop);
    }
    cJSON_AddStringToObject(cfg, "template_hash", s->tpl->hash);
    return EV_OK;
}

static int infl_work(struct eval_ctx *x, struct ev_err *err) {
    const struct infl_config *c = x->cfg;
    struct infl_state        *s = x->state;
    s->o = (struct infl_opts){.set = &s->set, .features = s->ff.idx, .desc = s->ff.desc,
                              .n_features = s->ff.n, .scales = c->scales,
                              .n_scales = c->n_scales,
                              .max_act = c->max_act > 0 ? c->max_act : 0,
                              .max_new = (int)c->max_new, .skip_bos = !c->clamp_bos,
                              .temperature = c->temperature, .top_p = c->top_p,
                              .grader = x->grader, .tpl = s->tpl};
    return infl_eval_run(&x->env, &x->run, &s->o, &s->st, err);
}

static int infl_report(struct eval_ctx *x, struct ev_err *err) {
    const struct infl_config *c = x->cfg;
    struct infl_state        *s = x->state;
    const struct infl_stats  *st = &s->st;
    char                      hook[96];
    model_hook_name(x->env.hook, hook, sizeof hook);
    printf("influence run %lld: %s, SAE %s at %s, %d features x %d scales x %d prompts "
           "(%s)%s\n", (long long)x->run.id, x->env.model_path, x->env.sae_path, hook, s->ff.n,
           c->n_scales, s->set.n, s->set.name,
           x->common->shard_n > 1 ? ", this shard's share" : "");
    printf("generated %ld continuations (%ld already stored); measured %ld (%ld already "
           "stored)\n", st->generated, st->reused, st->measured, st->measures_reused);
    int rc = print_table(&x->env, &x->run, &s->o, c->fluency_drop, c->scale_auto, err);
    if (x->grader) {
        char buf[768];
        printf("graded %ld (%ld unparsed, %ld failed): %s\n", st->graded, st->unparsed,
               st->failed, grader_summary(x->grader, buf, sizeof buf));
    } else {
        printf("%ld steered continuations queued for review (2 grades each: concept, "
               "fluency)\n", st->items_planned);
        ev_info("%s", grader_not_configured_message());
    }
    if (st->no_description)
        ev_info("%ld steered continuations cannot be graded: their features have no "
                "description (give one in the features file as ID<TAB>description, or run "
                "'evalrun explain'), then rerun", st->no_description);
    return rc;
}

static void infl_release(struct eval_ctx *x) {
    struct infl_state *s = x->state;
    if (!s) return;
    prompt_free(s->tpl);
    eval_features_release(&s->ff);
    infl_set_release(&s->set);
    free(s->prompts_owned);
    free(s);
    x->state = NULL;
}

const struct eval_kind infl_kind = {
    .name = "influence",
    .flags = EVAL_REPORT_PARTIAL,
    .check = infl_check,
    .prepare = infl_prepare,
    .configure = infl_configure,
    .work = infl_work,
    .report = infl_report,
    .release = infl_release,
};
