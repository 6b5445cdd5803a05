/*
 * items — the items table (see items.h).
 */
#include "store/items.h"

#include "store/store.h"

int items_review(struct store *s, int64_t run_id, int64_t sae_id, const char *rater,
                 int llm_graded, int (*fn)(void *ctx, const struct items_review_row *row),
                 void *ctx, struct ev_err *err) {
    struct store_stmt *st = NULL;
    int                r;
    int rc = store_prepare(
        s,
        "SELECT i.item_key, i.kind, coalesce(i.feature_idx, -1), coalesce(i.interval, -1), "
        "coalesce(i.activation, 0), f.description, e.tokens, e.acts, coalesce(e.text, ''), "
        "i.payload_json, h.score, h.id IS NOT NULL, i.prompt FROM items i "
        "LEFT JOIN examples e ON e.id = i.example_id "
        "LEFT JOIN features f ON f.sae_id = ?3 AND f.idx = i.feature_idx "
        "LEFT JOIN grades h ON h.run_id = i.run_id AND h.item_key = i.item_key AND "
        "h.grader_kind = 'human' AND h.grader_name = ?2 "
        "WHERE i.run_id = ?1 AND i.kind IN ('interval', 'nonactivating', 'influence_concept', "
        "'influence_fluency') AND "
        "(EXISTS (SELECT 1 FROM grades g WHERE g.run_id = i.run_id AND g.item_key = i.item_key "
        "AND g.grader_kind = 'llm' AND g.parse_status = 'ok')) = ?4 ORDER BY i.item_key",
        &st, err);
    if (rc != EV_OK) return rc;
    store_bind_int(st, 1, run_id);
    store_bind_text(st, 2, rater);
    store_bind_int(st, 3, sae_id);
    store_bind_int(st, 4, llm_graded != 0);
    while ((r = store_step(st, err)) == STORE_ROW) {
        struct items_review_row row = {
            .item_key = store_col_text(st, 0),
            .kind = store_col_text(st, 1),
            .feature = (int)store_col_int(st, 2),
            .interval = (int)store_col_int(st, 3),
            .activation = store_col_double(st, 4),
            .description = store_col_text(st, 5),
            .example_text = store_col_text(st, 8),
            .payload_json = store_col_text(st, 9),
            .score = store_col_is_null(st, 10) ? -1 : (int)store_col_int(st, 10),
            .answered = (int)store_col_int(st, 11),
            .prompt = store_col_text(st, 12),
        };
        row.tokens = store_col_blob(st, 6, &row.tokens_n);
        row.acts = store_col_blob(st, 7, &row.acts_n);
        if ((rc = fn(ctx, &row)) != EV_OK) break;
    }
    store_finalize(st);
    if (rc != EV_OK) return rc;
    return r == STORE_DONE ? EV_OK : EV_EFAIL;
}
