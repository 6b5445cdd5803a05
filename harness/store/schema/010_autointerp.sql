-- 010: autointerp (issue 10; columns described in docs/autointerp.md). Rows are keyed
-- naturally, so a resumed run never duplicates one and a rerun reads back the same numbers.
CREATE TABLE autointerp_latents (
    run_id        INTEGER NOT NULL REFERENCES runs(id),
    seed          INTEGER NOT NULL,
    feature_idx   INTEGER NOT NULL,
    protocol      TEXT    NOT NULL,
    n_firings     INTEGER NOT NULL,
    max_act       REAL    NOT NULL,
    status        TEXT    NOT NULL, -- ok skipped pending explanation_unparsed explanation_failed
    reason        TEXT,
    explanation   TEXT,
    expl_source   TEXT,
    expl_template_hash TEXT,
    expl_prompt   TEXT,
    expl_raw      TEXT,
    created_ms    INTEGER NOT NULL,
    PRIMARY KEY (run_id, seed, feature_idx)
);
CREATE TABLE autointerp_prompts (
    run_id        INTEGER NOT NULL REFERENCES runs(id),
    seed          INTEGER NOT NULL,
    scorer        TEXT    NOT NULL, -- detection fuzzing simulation
    feature_idx   INTEGER NOT NULL,
    prompt_no     INTEGER NOT NULL,
    template_hash TEXT    NOT NULL,
    prompt        TEXT    NOT NULL,
    raw_answer    TEXT,
    parse_status  TEXT,             -- ok unparsed error; NULL: not asked yet
    error         TEXT,
    logprobs      INTEGER NOT NULL DEFAULT 0,
    cache_key     TEXT,
    latency_ms    INTEGER,
    tokens_in     INTEGER,
    tokens_out    INTEGER,
    answered_ms   INTEGER,
    PRIMARY KEY (run_id, seed, scorer, feature_idx, prompt_no)
);
CREATE TABLE autointerp_samples (
    run_id        INTEGER NOT NULL REFERENCES runs(id),
    seed          INTEGER NOT NULL,
    scorer        TEXT    NOT NULL,
    feature_idx   INTEGER NOT NULL,
    sample_no     INTEGER NOT NULL,
    prompt_no     INTEGER NOT NULL,
    position      INTEGER NOT NULL, -- 1.. in its prompt
    kind          TEXT    NOT NULL,
    quantile      INTEGER,
    seq           INTEGER NOT NULL,
    start         INTEGER NOT NULL,
    n_tokens      INTEGER NOT NULL,
    max_act       REAL    NOT NULL,
    text          TEXT    NOT NULL,
    label         REAL    NOT NULL, -- 1/0; simulation: the true activation
    prediction    REAL,             -- NULL: not answered, or its prompt did not parse
    probability   REAL,             -- from logprobs when the provider gives them
    PRIMARY KEY (run_id, seed, scorer, feature_idx, sample_no)
);
