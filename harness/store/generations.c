/*
 * generations — the generations table (see generations.h).
 */
#include "store/generations.h"

#include <math.h>
#include <stdlib.h>

#include "store/store.h"

static char *dup_col(struct store_stmt *st, int i) {
    const char *t = store_col_text(st, i);
    return t ? xstrdup(t) : NULL;
}

int generations_get(struct store *s, int64_t run_id, const char *key, char **prompt, char **text,
                    double *scale, struct ev_err *err) {
    struct store_stmt *st = NULL;
    if (prompt) *prompt = NULL;
    if (text) *text = NULL;
    if (scale) *scale = NAN;
    int rc = store_prepare(s, "SELECT prompt, text, scale FROM generations WHERE run_id = ?1 AND "
                              "item_key = ?2", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    store_bind_text(st, 2, key);
    int r = store_step(st, err);
    if (r == STORE_ROW) {
        if (prompt) *prompt = dup_col(st, 0);
        if (text) *text = dup_col(st, 1);
        if (scale && !store_col_is_null(st, 2)) *scale = store_col_double(st, 2);
    }
    store_finalize(st);
    return r < 0 ? EV_EFAIL : r == STORE_ROW;
}
