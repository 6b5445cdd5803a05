/*
 * runs — named reads of the runs table (see runs.h).
 */
#include "store/runs.h"

#include <stdlib.h>

#include "store/store.h"

int runs_kind(struct store *s, int64_t run_id, char **kind, int64_t *sae_id, struct ev_err *err) {
    struct store_stmt *st = NULL;
    *kind = NULL;
    *sae_id = 0;
    int rc = store_prepare(s, "SELECT kind, coalesce(sae_id, 0) FROM runs WHERE id = ?1", &st,
                           err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    int r = store_step(st, err);
    if (r == STORE_ROW) {
        *kind = xstrdup(store_col_text(st, 0));
        *sae_id = store_col_int(st, 1);
        rc = EV_OK;
    } else {
        rc = r == STORE_DONE ? ev_fail(err, EV_EFAIL, "no run %lld", (long long)run_id) : EV_EFAIL;
    }
    store_finalize(st);
    return rc;
}

char *runs_model_path(struct store *s, int64_t run_id) {
    struct store_stmt *st = NULL;
    struct ev_err      e;
    char              *path = NULL;
    if (store_prepare(s, "SELECT m.path FROM runs r JOIN models m ON m.id = r.model_id WHERE "
                         "r.id = ?1", &st, &e) != EV_OK)
        return NULL;
    store_bind_int(st, 1, run_id);
    if (store_step(st, &e) == STORE_ROW && store_col_text(st, 0))
        path = xstrdup(store_col_text(st, 0));
    store_finalize(st);
    return path;
}
