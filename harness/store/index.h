/*
 * index — the owner of the feature index tables: feature_index_runs, feature_stats and
 * examples (schema 001, 005). Every read and write of those tables goes through here.
 *
 * Included by: the command line (`evalrun index`), the evaluations and the graders that read
 * the index (store and the wings above it).
 *
 * Writing: index_build() runs sae_index_compute() (harness/sae, which knows no SQL) and
 * stores each chunk it hands back in one transaction. The set is keyed by a configuration
 * hash (model, corpus, SAE, parameters) in feature_index_runs: a rerun with the same inputs
 * resumes at the first chunk without stats and does nothing when the index is complete; a
 * different configuration for the same SAE replaces the old index (refused, with a hint,
 * when graded examples still refer to it).
 */
#ifndef EV_STORE_INDEX_H
#define EV_STORE_INDEX_H

#include <stdint.h>

#include "base/util.h"
#include "sae/sae_index.h"

struct store;
struct model;

/*
 * Builds (or resumes) the index of SAE s (stored as sae_id) over corpus c with the model at
 * hook hook_name. config_hash identifies the inputs (caller: model hash, SAE hash, corpus
 * hash and params). run_id is recorded. res->reused = 1 when a complete index of this
 * configuration was already stored (then nothing is computed). Polls ev_interrupted()
 * between chunks (EV_EINTR; what is committed stays).
 */
int index_build(struct store *db, int64_t sae_id, int64_t run_id, const char *config_hash,
                struct model *m, const struct sae *s, const char *hook_name,
                const struct acts_corpus *c, const struct sae_index_params *p,
                struct sae_index_result *res, struct ev_err *err);

#endif
