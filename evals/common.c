/*
 * common — the evaluations' shared plumbing (see common.h).
 */
#include "evals/common.h"

#include <errno.h>
#include <limits.h>
#include <unistd.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rx.h"
#include "base/utf8.h"
#include "store/features.h"
#include "store/grades.h"
#include "store/items.h"
#include "store/runs.h"

#ifndef EVALRUN_VERSION
#define EVALRUN_VERSION "unknown"
#endif

// ---------------------------------------------------------------------------- features file

void eval_features_release(struct eval_features *f) {
    for (int i = 0; i < f->n; i++) free(f->desc[i]);
    free(f->desc);
    free(f->idx);
    memset(f, 0, sizeof *f);
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = '\0';
    return s;
}

/* The line (from 1) that byte offset off of text lies on. */
static int line_of(const char *text, size_t off) {
    int line = 1;
    for (size_t i = 0; i < off; i++) line += text[i] == '\n';
    return line;
}

int eval_features_load(const char *path, int d_sae, struct eval_features *out,
                       struct ev_err *err) {
    char  *text = NULL;
    size_t len = 0;
    int    rc = file_read_all(path, &text, &len, err);
    struct eval_features f = {0};
    int    cap = 0, lineno = 0;
    if (rc != EV_OK) return rc;
    rc = EV_EFAIL;
    /* A features file is UTF-8 text: a NUL would cut a line short (a description lost its
     * end silently) and a binary file read as "no features"; name the first bad line. */
    const char *nul = memchr(text, '\0', len);
    long        bad = rx_utf8_invalid_at(text, nul ? (size_t)(nul - text) : len);
    if (bad >= 0) {
        ev_fail(err, EV_EFAIL, "%s:%d: not UTF-8 text (bad byte at offset %ld); a features file "
                               "holds one id, or id<TAB>description, per line",
                path, line_of(text, (size_t)bad), bad);
        goto out;
    }
    if (nul) {
        ev_fail(err, EV_EFAIL, "%s:%d: a NUL byte at offset %zu; a features file is text (one "
                               "id, or id<TAB>description, per line)",
                path, line_of(text, (size_t)(nul - text)), (size_t)(nul - text));
        goto out;
    }
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        lineno++;
        char *s = line;
        size_t slen = strlen(s);
        if (slen && s[slen - 1] == '\r') s[slen - 1] = '\0';
        int   had_tab = strchr(s, '\t') != NULL; /* before trim() cuts a trailing TAB */
        char *t = trim(s);
        if (*t == '\0' || *t == '#') continue;
        char *tab = strchr(s, '\t');
        char *desc = NULL;
        if (tab) {
            *tab = '\0';
            desc = trim(tab + 1);
        }
        long id;
        if (parse_index(trim(s), INT_MAX, &id) != EV_OK) {
            ev_fail(err, EV_EFAIL, "%s:%d: expected a feature id (digits only: 0, 1, 2 ...), "
                                   "optionally followed by a TAB and a description, got '%.40s'",
                    path, lineno, trim(s));
            goto out;
        }
        if (d_sae > 0 && id >= d_sae) {
            ev_fail(err, EV_EFAIL, "%s:%d: feature %ld is out of range (the SAE has %d "
                                   "features: 0..%d)", path, lineno, id, d_sae, d_sae - 1);
            goto out;
        }
        if ((desc && *desc == '\0') || (had_tab && !desc)) {
            /* an empty description is a mistake, not a request for the stored one (17.6) */
            ev_fail(err, EV_EFAIL, "%s:%d: feature %ld has a TAB but an empty description "
                                   "(write one, or leave out the TAB to use the stored one)",
                    path, lineno, id);
            goto out;
        }
        if (desc && (strstr(desc, "{{") || strstr(desc, "}}"))) {
            ev_fail(err, EV_EFAIL, "%s:%d: the description of feature %ld contains a template "
                                   "delimiter ('{{' or '}}'); remove it", path, lineno, id);
            goto out;
        }
        size_t n_chars = desc ? utf8_count(desc, strlen(desc)) : 0;
        if (n_chars > EVAL_DESC_MAX) {
            ev_fail(err, EV_EFAIL, "%s:%d: the description of feature %ld is %zu characters long; "
                                   "at most %d are accepted (it goes into every grader prompt)",
                    path, lineno, id, n_chars, EVAL_DESC_MAX);
            goto out;
        }
        for (int i = 0; i < f.n; i++)
            if (f.idx[i] == id) {
                ev_fail(err, EV_EFAIL, "%s:%d: feature %ld is listed twice", path, lineno, id);
                goto out;
            }
        if (f.n == cap) {
            cap = cap ? cap * 2 : 16;
            f.idx = xrealloc(f.idx, sizeof *f.idx * (size_t)cap);
            f.desc = xrealloc(f.desc, sizeof *f.desc * (size_t)cap);
        }
        f.idx[f.n] = (int)id;
        f.desc[f.n] = desc ? xstrdup(desc) : NULL;
        f.n++;
    }
    if (f.n == 0) {
        ev_fail(err, EV_EFAIL, "%s: no features in the file (one id, or id<TAB>description, "
                               "per line)", path);
        goto out;
    }
    *out = f;
    memset(&f, 0, sizeof f);
    rc = EV_OK;
out:
    eval_features_release(&f);
    free(text);
    return rc;
}

int eval_features_write(const char *path, const int *idx, char *const *desc, int n,
                        struct ev_err *err) {
    struct sbuf sb;
    sbuf_init(&sb);
    sbuf_adds(&sb, "# evalrun features file: ID or ID<TAB>description per line\n");
    for (int i = 0; i < n; i++) {
        sbuf_addf(&sb, "%d", idx[i]);
        if (desc && desc[i]) {
            sbuf_adds(&sb, "\t");
            for (const char *c = desc[i]; *c; c++) /* keep it one line */
                sbuf_add(&sb, (*c == '\n' || *c == '\t' || *c == '\r') ? " " : c, 1);
        }
        sbuf_adds(&sb, "\n");
    }
    int rc = file_write_atomic(path, sb.buf, sb.len, err);
    sbuf_release(&sb);
    return rc;
}

// ---------------------------------------------------------------------------- prompt sets

int prompt_set_open(const char *path, const char *entries, cJSON **root, const cJSON **prompts,
                    const char **name, struct ev_err *err) {
    *root = NULL;
    *prompts = NULL;
    *name = NULL;
    int rc = json_parse_file(path, root, err);
    if (rc != EV_OK) return rc;
    const cJSON *arr = cJSON_IsObject(*root) ? cJSON_GetObjectItemCaseSensitive(*root, "prompts")
                                             : NULL;
    if (!cJSON_IsArray(arr))
        return ev_fail(err, EV_EFAIL, "%s: expected a JSON object with a \"prompts\" array of "
                                      "%s entries", path, entries);
    const char *n = NULL;
    if (json_get_str_opt(*root, "name", path, &n, err) != EV_OK) return EV_EFAIL;
    const char *slash = strrchr(path, '/');
    *name = n ? n : slash ? slash + 1 : path;
    *prompts = arr;
    return EV_OK;
}

const cJSON *prompt_set_entry(const cJSON *prompts, int i, const char *path, char *what,
                              size_t n_what, struct ev_err *err) {
    const cJSON *e = cJSON_GetArrayItem(prompts, i);
    snprintf(what, n_what, "%s: prompts[%d]", path, i);
    if (!cJSON_IsObject(e)) {
        ev_fail(err, EV_EFAIL, "%s is not an object", what);
        return NULL;
    }
    return e;
}

// ---------------------------------------------------------------------------- environment

char *eval_resolve_sae_path(const char *given) {
    return path_shipped(given, "EVALRUN_SAE", "evals/saes/stories260K-L2");
}

int eval_model_load(const char *given, const char *weights_dtype, int load_flags,
                    struct model **m, struct ev_err *err) {
    int flags = 0, rc;
    *m = NULL;
    if ((rc = model_weights_dtype_parse(weights_dtype ? weights_dtype : "auto", &flags, err)))
        return rc;
    char *path = model_resolve_path(given);
    rc = model_load_flags(path, flags | load_flags, m, err);
    free(path);
    return rc;
}

void eval_env_release(struct eval_env *e) {
    store_close(e->store);
    sae_free(e->sae);
    model_free(e->model);
    free(e->model_path);
    free(e->sae_path);
    memset(e, 0, sizeof *e);
}

static int env_open(struct eval_env *e, const char *db_path, const char *model_path,
                    int model_flags, const char *sae_path, int store_flags, struct ev_err *err);

/* The model and the SAE in e->store (looked up only when it is read-only). */
static int env_register(struct eval_env *e, struct ev_err *err) {
    char *mcfg = model_config_json(e->model);
    int   rc = store_put_model(e->store, model_hash(e->model), e->model_path, mcfg,
                               &e->model_id, err);
    free(mcfg);
    if (rc != EV_OK) return rc;
    return store_put_sae(e->store, e->sae_hash, e->sae_path,
                         e->sae->cfg_json ? e->sae->cfg_json : "{}", e->model_id, &e->sae_id,
                         err);
}

int eval_env_writable(struct eval_env *e, const char *db_path, struct ev_err *err) {
    struct store *s = NULL;
    int           rc = store_open(db_path, STORE_CREATE, &s, err);
    if (rc != EV_OK) return rc;
    store_close(e->store);
    e->store = s;
    return env_register(e, err);
}

int eval_env_open(struct eval_env *e, const char *db_path, const char *model_path,
                  int model_flags, const char *sae_path, struct ev_err *err) {
    return env_open(e, db_path, model_path, model_flags, sae_path, STORE_CREATE, err);
}

int eval_env_open_readonly(struct eval_env *e, const char *db_path, const char *model_path,
                           int model_flags, const char *sae_path, struct ev_err *err) {
    return env_open(e, db_path, model_path, model_flags, sae_path,
                    STORE_READONLY | STORE_MISSING_EMPTY | STORE_UPGRADE, err);
}

/* A reader reads a missing database as empty (nothing stored yet), but not one whose folder
 * is missing too: that is a mistyped --db, and an empty answer would hide it. */
static int env_db_dir_check(const char *db_path, int store_flags, struct ev_err *err) {
    if (!db_path || !(store_flags & STORE_MISSING_EMPTY) || path_exists(db_path)) return EV_OK;
    const char *slash = strrchr(db_path, '/');
    if (!slash || slash == db_path) return EV_OK;
    char *dir = xstrdup(db_path);
    dir[slash - db_path] = '\0';
    int rc = path_exists(dir) ? EV_OK
                              : ev_fail(err, EV_EFAIL, "database %s does not exist: directory %s "
                                                       "does not exist", db_path, dir);
    free(dir);
    return rc;
}

static int env_open(struct eval_env *e, const char *db_path, const char *model_path,
                    int model_flags, const char *sae_path, int store_flags, struct ev_err *err) {
    memset(e, 0, sizeof *e);
    int rc;
    e->model_path = model_resolve_path(model_path);
    e->sae_path = eval_resolve_sae_path(sae_path);
    if ((rc = model_load_flags(e->model_path, model_flags, &e->model, err)) != EV_OK) goto out;
    if ((rc = sae_load(e->sae_path, &e->sae, err)) != EV_OK) goto out;
    /* the message names the SAE folder, the hook and the model */
    if ((rc = sae_hooks(e->model, e->sae, e->sae_path, &e->hook, &e->hook_out, err)) != EV_OK)
        goto out;
    if ((rc = sae_hash(e->sae_path, e->sae_hash, err)) != EV_OK) goto out;
    if ((rc = env_db_dir_check(db_path, store_flags, err)) != EV_OK) goto out;
    if ((rc = store_open(db_path, store_flags, &e->store, err)) != EV_OK) goto out;
    rc = env_register(e, err);
out:
    if (rc != EV_OK) eval_env_release(e);
    return rc;
}

char *eval_description_get(struct eval_env *e, int feature, char **source) {
    return features_description(e->store, e->sae_id, feature, source);
}

int eval_description_set(struct eval_env *e, int feature, const char *text, const char *source,
                         int64_t run_id, struct ev_err *err) {
    return features_set_description(e->store, e->sae_id, feature, text, source, run_id, err);
}

// ---------------------------------------------------------------------------- runs and items

/* Adds what every run's configuration holds (model, SAE, hook, seed) to config. */
static void run_config_complete(struct eval_env *e, cJSON *config, int64_t seed) {
    char hook[96];
    model_hook_name(e->hook, hook, sizeof hook);
    cJSON_DeleteItemFromObject(config, "model_hash");
    cJSON_DeleteItemFromObject(config, "sae_hash");
    cJSON_DeleteItemFromObject(config, "hook");
    cJSON_DeleteItemFromObject(config, "seed");
    cJSON_AddStringToObject(config, "model_hash", model_hash(e->model));
    cJSON_AddStringToObject(config, "sae_hash", e->sae_hash);
    cJSON_AddStringToObject(config, "hook", hook);
    cJSON_AddNumberToObject(config, "seed", (double)seed);
}

int eval_run_done(struct eval_env *e, const char *kind, cJSON *config, int64_t seed,
                  int shard_k, int shard_n, struct ev_err *err) {
    run_config_complete(e, config, seed);
    char           *json = json_print(config);
    struct run_info ri = {.kind = kind, .config_json = json, .shard_k = shard_k,
                          .shard_n = shard_n};
    int             rc = store_run_is_done(e->store, &ri, err);
    free(json);
    return rc;
}

int eval_run_begin(struct eval_env *e, const char *kind, const char *tag, int retag, cJSON *config,
                   int64_t seed, int shard_k, int shard_n, struct eval_run *run,
                   struct ev_err *err) {
    run_config_complete(e, config, seed);
    char           *json = json_print(config);
    struct run_info ri = {.kind = kind, .tag = tag, .config_json = json, .seed = seed,
                          .shard_k = shard_k, .shard_n = shard_n, .model_id = e->model_id,
                          .sae_id = e->sae_id, .retag = retag};
    memset(run, 0, sizeof *run);
    int rc = store_run_begin(e->store, &ri, &run->id, &run->resumed, err);
    free(json);
    run->shard_k = shard_k;
    run->shard_n = shard_n > 0 ? shard_n : 1;
    run->seed = seed;
    if (rc == EV_OK && run->resumed) {
        char t[256];
        runs_tag(e->store, run->id, t, sizeof t);
        ev_info("resuming run %lld (%s%s%s%s): work already stored is not done again",
                (long long)run->id, *t ? "tag " : "", t, *t ? ", " : "", kind);
    }
    return rc;
}

int eval_run_end(struct eval_env *e, const struct eval_run *run, int rc, struct ev_err *err) {
    return store_run_end(e->store, run->id, rc, err);
}

int eval_in_shard(const struct eval_run *run, long i) {
    return run->shard_n <= 1 || i % run->shard_n == run->shard_k;
}

int eval_item_put(struct eval_env *e, const struct eval_run *run, const struct item_row *it,
                  struct ev_err *err) {
    return items_put(e->store, run->id, it, err);
}

int eval_item_graded(struct eval_env *e, const struct eval_run *run, const char *key,
                     const char *grader_kind, struct ev_err *err) {
    return grades_has(e->store, run->id, key, grader_kind, err);
}

int eval_grade_put(struct eval_env *e, const struct eval_run *run, const struct grade_row *g,
                   struct ev_err *err) {
    return grades_put(e->store, run->id, e->sae_id, g, err);
}
