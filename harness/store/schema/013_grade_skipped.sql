-- 013: a rater's skip in `evalrun review` is parse_status 'skipped', no longer 'unparsed'
-- (issue 17.6: a skip is a choice, not an answer that failed to parse). SQLite cannot change
-- a CHECK constraint in place, so the table is rebuilt; existing skips (human grades stored
-- as 'unparsed' with raw answer 'skip') become 'skipped'.
CREATE TABLE grades_013 (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(id),
    item_key      TEXT    NOT NULL,
    sae_id        INTEGER REFERENCES saes(id),
    feature_idx   INTEGER,
    example_id    INTEGER REFERENCES examples(id),
    grader_kind   TEXT    NOT NULL CHECK (grader_kind IN ('llm', 'human')),
    grader_name   TEXT    NOT NULL,
    score         INTEGER,
    parse_status  TEXT    NOT NULL CHECK (parse_status IN ('ok', 'unparsed', 'error', 'skipped')),
    raw_answer    TEXT,
    template_hash TEXT,
    latency_ms    INTEGER,
    tokens_in     INTEGER,
    tokens_out    INTEGER,
    created_ms    INTEGER NOT NULL,
    UNIQUE (run_id, item_key, grader_kind, grader_name)
);
INSERT INTO grades_013 (id, run_id, item_key, sae_id, feature_idx, example_id, grader_kind,
                        grader_name, score, parse_status, raw_answer, template_hash, latency_ms,
                        tokens_in, tokens_out, created_ms)
SELECT id, run_id, item_key, sae_id, feature_idx, example_id, grader_kind, grader_name, score,
       CASE WHEN grader_kind = 'human' AND parse_status = 'unparsed' AND raw_answer = 'skip'
            THEN 'skipped' ELSE parse_status END,
       raw_answer, template_hash, latency_ms, tokens_in, tokens_out, created_ms
FROM grades;
DROP TABLE grades;
ALTER TABLE grades_013 RENAME TO grades;
CREATE INDEX grades_feature ON grades(sae_id, feature_idx);
