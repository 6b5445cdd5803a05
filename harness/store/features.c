/*
 * features — the features and feature_tags tables (see features.h).
 */
#include "store/features.h"

#include <stdlib.h>

#include "store/store.h"

char *features_description(struct store *s, int64_t sae_id, int feature, char **source) {
    struct store_stmt *st = NULL;
    struct ev_err      err;
    char              *d = NULL;
    if (source) *source = NULL;
    if (store_prepare(s, "SELECT description, desc_source FROM features "
                         "WHERE sae_id = ?1 AND idx = ?2", &st, &err) != EV_OK)
        return NULL;
    store_bind_int(st, 1, sae_id);
    store_bind_int(st, 2, feature);
    if (store_step(st, &err) == STORE_ROW && !store_col_is_null(st, 0)) {
        d = xstrdup(store_col_text(st, 0));
        if (source && !store_col_is_null(st, 1)) *source = xstrdup(store_col_text(st, 1));
    }
    store_finalize(st);
    return d;
}

int features_set_description(struct store *s, int64_t sae_id, int feature, const char *text,
                             const char *source, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int rc = store_prepare(s,
                           "INSERT INTO features (sae_id, idx, description, desc_source) "
                           "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (sae_id, idx) DO UPDATE SET "
                           "description = excluded.description, desc_source = "
                           "excluded.desc_source", &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, sae_id);
    store_bind_int(st, 2, feature);
    store_bind_text(st, 3, text);
    store_bind_text(st, 4, source);
    rc = store_step(st, err) < 0 ? EV_EFAIL : EV_OK;
    store_finalize(st);
    return rc;
}
