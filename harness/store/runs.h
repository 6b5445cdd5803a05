/*
 * runs — named reads of the runs table beyond starting and ending a run (which stay in
 * store.h: store_run_begin(), store_run_end(), ...). The owner of the SQL over runs.
 *
 * Included by: store and the wings above it (graders, evals, cli, cluster).
 */
#ifndef EV_STORE_RUNS_H
#define EV_STORE_RUNS_H

#include <stdint.h>

#include "base/util.h"

struct store;

/* The run's kind (*kind, caller frees) and SAE (*sae_id, 0 when none). EV_EFAIL "no run N"
 * when it does not exist. */
int runs_kind(struct store *s, int64_t run_id, char **kind, int64_t *sae_id, struct ev_err *err);
/* The path stored for the run's model (models.path), caller frees; NULL when the run has no
 * model or on an error. */
char *runs_model_path(struct store *s, int64_t run_id);

#endif
