-- 007: the evaluations' work items (issue 6). An item is planned (inserted) before it is
-- graded; a grade refers to its item by (run_id, item_key). Resuming a run = grading the
-- items that have no grade yet; items of a run without a grader wait here for human review.
CREATE TABLE items (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(id),
    item_key      TEXT    NOT NULL,           -- unique within the run, stable across reruns
    kind          TEXT    NOT NULL,           -- 'interval', 'nonactivating', 'concept', ...
    feature_idx   INTEGER,
    example_id    INTEGER REFERENCES examples(id),
    interval      INTEGER,                    -- activation interval (0-based), if any
    activation    REAL,                       -- the feature's activation shown, if any
    template      TEXT,                       -- prompt template file name (prompts/...)
    template_hash TEXT,                       -- sha256 of that template
    prompt        TEXT,                       -- the rendered prompt (what a grader sees)
    payload_json  TEXT,                       -- evaluation-specific data (texts, tokens, ...)
    created_ms    INTEGER NOT NULL,
    UNIQUE (run_id, item_key)
);
CREATE INDEX items_feature ON items(run_id, feature_idx);
