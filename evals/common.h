/*
 * common — what every evaluation shares: opening the model, the SAE and the database
 * together (eval_env), the features file, feature descriptions, the run row, work items and
 * shards.
 *
 * Included by: evals and harness/cli.
 *
 * The runner (evals/runner.h) calls these for every evaluation, in order:
 *     eval_env_open()            model + SAE (defaults: the shipped ones), hook from the SAE's
 *                                cfg, d_in checked against the model, both registered in store
 *     eval_run_begin()           one runs row with the full configuration (resumes the same
 *                                command's earlier run)
 *     plan items                 eval_item_put() in one transaction: the work, stable keys
 *     do the work                skipping items that already have a grade (eval_item_graded)
 *     eval_run_end()             status done / interrupted / failed
 *
 * Ownership: eval_env owns everything it opened; eval_env_release() frees it.
 */
#ifndef EV_EVAL_COMMON_H
#define EV_EVAL_COMMON_H

#include <stdint.h>

#include "base/json.h"
#include "model/model.h"
#include "sae/sae.h"
#include "store/grades.h"
#include "store/items.h"
#include "store/store.h"
#include "base/util.h"

// ---------------------------------------------------------------------------- features file

/*
 * A features file: one feature per line, "ID" or "ID<TAB>description"; blank lines and lines
 * starting with '#' are ignored. IDs are decimal latent indices in [0, d_sae).
 */
struct eval_features {
    int    n;
    int   *idx;  /* (n) latent indices, in file order, no duplicates */
    char **desc; /* (n) description or NULL */
};

/* The longest description accepted, in characters (code points): a description goes into
 * every grader prompt of its feature. */
#define EVAL_DESC_MAX 2000

/* Reads path. Errors name the file and line: a NUL byte or bytes that are not UTF-8 (a
 * binary file), a malformed id (digits only: parse_index), an id outside [0, d_sae) (pass
 * d_sae <= 0 to skip that check), a duplicate, a description containing template delimiters
 * ("{{" or "}}") or longer than EVAL_DESC_MAX characters, an empty file. Caller frees with
 * eval_features_release(). */
int  eval_features_load(const char *path, int d_sae, struct eval_features *out,
                        struct ev_err *err);
void eval_features_release(struct eval_features *f);
/* Writes a features file in the same format (atomically). desc may be NULL or hold NULLs. */
int  eval_features_write(const char *path, const int *idx, char *const *desc, int n,
                         struct ev_err *err);

// ---------------------------------------------------------------------------- environment

struct eval_env {
    struct store     *store;
    struct model     *model;
    struct sae       *sae;
    struct model_hook hook;      /* the hook the dictionary reads (its cfg's hook_name) */
    struct model_hook hook_out;  /* the hook it writes: == hook for an SAE; a transcoder's
                                    hook_name_out (sae_hooks) */
    int64_t           model_id, sae_id;
    char             *model_path, *sae_path; /* owned */
    char              sae_hash[65];
};

/* The SAE a command should use: given when not NULL, else $EVALRUN_SAE, else
 * evals/saes/stories260K-L2 under the current directory, else beside the binary's
 * repository. Caller frees with free(). */
char *eval_resolve_sae_path(const char *given);
/* Loads the model given (NULL: model_resolve_path()'s default) with --weights-dtype
 * weights_dtype (auto|f32|bf16; a bad one is EV_EUSAGE) and load_flags added (MODEL_LOAD_*).
 * Caller frees with model_free(). */
int eval_model_load(const char *given, const char *weights_dtype, int load_flags,
                    struct model **m, struct ev_err *err);

/* Opens the database (created when absent), the model (model_flags: MODEL_LOAD_*, e.g. from
 * --weights-dtype) and the SAE; checks that the SAE's hook exists in the model and that d_in
 * equals the width at that hook; registers both in the database. Any failure: EV_EFAIL with a message naming the file. */
int  eval_env_open(struct eval_env *e, const char *db_path, const char *model_path,
                   int model_flags, const char *sae_path, struct ev_err *err);
/* The same for commands that only read the database (show, search, features): it is opened
 * read-only (STORE_READONLY; a missing file reads as an empty database) and the model and
 * SAE are looked up, not registered: model_id / sae_id are 0 when this database has never
 * seen them. */
int  eval_env_open_readonly(struct eval_env *e, const char *db_path, const char *model_path,
                            int model_flags, const char *sae_path, struct ev_err *err);
/* Reopens the database of an env opened read-only for writing (created when absent) and
 * registers the model and the SAE in it: for a reading command that builds the feature
 * index on demand. */
int  eval_env_writable(struct eval_env *e, const char *db_path, struct ev_err *err);
void eval_env_release(struct eval_env *e);

/* The stored description of a feature (caller frees), or NULL. */
char *eval_description_get(struct eval_env *e, int feature, char **source);
/* Stores a description (replaces the current one), written by run run_id (the explain run
 * whose explainer wrote it, or the run that stored it from a features file; 0: none). */
int   eval_description_set(struct eval_env *e, int feature, const char *text, const char *source,
                           int64_t run_id, struct ev_err *err);

// ---------------------------------------------------------------------------- runs and items

struct eval_run {
    int64_t id;
    int     resumed;
    int     shard_k, shard_n;
    int64_t seed;
};

/*
 * Starts (or resumes) the run of kind with configuration config (a JSON object the caller
 * builds from ITS flags; this function adds model/SAE hashes and paths, the hook and the
 * seed; it must NOT contain the shard, which is stored in its own columns so that shards of
 * one job share a configuration). config is borrowed. tag may be NULL; retag moves it from
 * another run that holds it (else that is EV_EUSAGE, store/runs.h). A resume says
 * "resuming run N (tag T, KIND)" on stderr.
 */
int eval_run_begin(struct eval_env *e, const char *kind, const char *tag, int retag, cJSON *config,
                   int64_t seed, int shard_k, int shard_n, struct eval_run *run,
                   struct ev_err *err);
/* Whether the run eval_run_begin() would start for these arguments is already done (1), not
 * (0), or EV_EFAIL. A command skips the grader's preflight request for a done run: rerunning
 * finished work then asks the provider nothing at all. config is completed as by
 * eval_run_begin (borrowed, modified). */
int eval_run_done(struct eval_env *e, const char *kind, cJSON *config, int64_t seed,
                  int shard_k, int shard_n, struct ev_err *err);
/* Ends the run: rc EV_OK -> done, EV_EINTR -> interrupted, else failed with err's message.
 * Returns rc, or EV_EFAIL when a finished run could not be marked done (store_run_end). */
int eval_run_end(struct eval_env *e, const struct eval_run *run, int rc, struct ev_err *err);

/* Whether item i of n_items belongs to this run's shard (items are dealt round-robin over a
 * stable order: i % shard_n == shard_k). */
int eval_in_shard(const struct eval_run *run, long i);

/* Inserts an item (store/items.h: struct item_row) unless the run already has one with that
 * key (then nothing changes). Call inside store_begin/commit for many items. */
int eval_item_put(struct eval_env *e, const struct eval_run *run, const struct item_row *it,
                  struct ev_err *err);
/* 1 when the run has a grade for item key from any grader of this kind ("llm"/"human"), 0
 * when not, EV_EFAIL on a database error. */
int eval_item_graded(struct eval_env *e, const struct eval_run *run, const char *key,
                     const char *grader_kind, struct ev_err *err);

/* Stores one grade (a row of grades, store/grades.h) for the run's SAE (its own transaction
 * unless one is open). score < 0 stores NULL. */
int eval_grade_put(struct eval_env *e, const struct eval_run *run, const struct grade_row *g,
                   struct ev_err *err);

/* ---- prompt sets: a JSON object {"name": optional string, "prompts": [object, ...]} (the
 * sets of attribution and influence) ---- */
/* Reads path into *root (caller frees with json_free) and finds its "prompts" array
 * (*prompts, borrowed from *root) and its name (*name: "name", else path's last component;
 * borrowed). entries describes one entry for the message on a file of another shape
 * ("{\"id\", \"text\", \"kind\"}"). On an error *root is NULL or still needs json_free. */
int prompt_set_open(const char *path, const char *entries, cJSON **root, const cJSON **prompts,
                    const char **name, struct ev_err *err);
/* Entry i of prompts, an object, or NULL with err set; what gets "PATH: prompts[i]" for the
 * caller's messages. */
const cJSON *prompt_set_entry(const cJSON *prompts, int i, const char *path, char *what,
                              size_t n_what, struct ev_err *err);

#endif
