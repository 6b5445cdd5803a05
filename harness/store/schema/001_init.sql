-- 001: the first tables. See docs/schema.md for what each column means.
CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    kind         TEXT    NOT NULL,            -- the subcommand: specificity, train-sae, ...
    tag          TEXT,                        -- --tag NAME, usable wherever a run id is
    status       TEXT    NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'done', 'failed', 'interrupted')),
    started_ms   INTEGER NOT NULL,
    finished_ms  INTEGER,
    config_json  TEXT    NOT NULL,            -- the full configuration, as JSON
    config_hash  TEXT    NOT NULL,            -- sha256 of config_json: same hash = same work
    code_version TEXT    NOT NULL,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    seed         INTEGER,
    shard_k      INTEGER NOT NULL DEFAULT 0,
    shard_n      INTEGER NOT NULL DEFAULT 1,
    model_id     INTEGER REFERENCES models(id),
    sae_id       INTEGER REFERENCES saes(id),
    error        TEXT
);
CREATE INDEX runs_kind_config ON runs(kind, config_hash);
CREATE INDEX runs_tag ON runs(tag);

CREATE TABLE models (
    id          INTEGER PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,         -- sha256 of the weights file(s)
    path        TEXT NOT NULL,
    config_json TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);

CREATE TABLE saes (
    id          INTEGER PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,         -- sha256 of cfg.json + sae_weights.safetensors
    path        TEXT NOT NULL,
    config_json TEXT NOT NULL,
    model_id    INTEGER REFERENCES models(id),
    created_ms  INTEGER NOT NULL
);

CREATE TABLE features (
    sae_id      INTEGER NOT NULL REFERENCES saes(id),
    idx         INTEGER NOT NULL,             -- the latent's index in the SAE
    description TEXT,                         -- the current description, if any
    desc_source TEXT,                         -- 'user', 'explainer:<grader>', ...
    PRIMARY KEY (sae_id, idx)
);

CREATE TABLE examples (
    id          INTEGER PRIMARY KEY,
    sae_id      INTEGER NOT NULL REFERENCES saes(id),
    feature_idx INTEGER NOT NULL,
    kind        TEXT    NOT NULL,             -- 'top', 'interval', 'nonactivating', ...
    interval    INTEGER,                      -- activation interval (0-based) for 'interval'
    activation  REAL    NOT NULL,             -- the feature's activation at the centre token
    center      INTEGER NOT NULL,             -- position of the centre token in tokens
    tokens      BLOB    NOT NULL,             -- int32 token ids, little-endian
    acts        BLOB    NOT NULL,             -- float32 per-token activations of the feature
    text        TEXT    NOT NULL              -- the decoded window
);
CREATE INDEX examples_feature ON examples(sae_id, feature_idx, kind);

CREATE TABLE grades (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(id),
    item_key      TEXT    NOT NULL,           -- identifies the graded item within the run
    sae_id        INTEGER REFERENCES saes(id),
    feature_idx   INTEGER,
    example_id    INTEGER REFERENCES examples(id),
    grader_kind   TEXT    NOT NULL CHECK (grader_kind IN ('llm', 'human')),
    grader_name   TEXT    NOT NULL,           -- 'anthropic:claude-...', or the rater's name
    score         INTEGER,                    -- NULL when the answer did not parse
    parse_status  TEXT    NOT NULL CHECK (parse_status IN ('ok', 'unparsed', 'error')),
    raw_answer    TEXT,
    template_hash TEXT,                       -- sha256 of the prompt template used
    latency_ms    INTEGER,
    tokens_in     INTEGER,
    tokens_out    INTEGER,
    created_ms    INTEGER NOT NULL,
    UNIQUE (run_id, item_key, grader_kind, grader_name)
);
CREATE INDEX grades_feature ON grades(sae_id, feature_idx);
