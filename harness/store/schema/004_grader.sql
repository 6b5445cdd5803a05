-- 004: the LLM grader's response cache, request log and per-run usage (issue 5).
-- No table holds an API key or an auth header: keys live only in memory (docs/graders.md).
CREATE TABLE grader_cache (
    key           TEXT PRIMARY KEY,          -- sha256 of provider, base URL, model, parameters,
                                             -- system, prompt and attempt (docs/graders.md)
    provider      TEXT    NOT NULL,          -- 'anthropic' or 'openai'
    base_url      TEXT    NOT NULL,
    model         TEXT    NOT NULL,          -- the model asked for
    attempt       INTEGER NOT NULL DEFAULT 0,-- 0 first ask, 1 the re-ask of an unparsed answer
    request_json  TEXT    NOT NULL,          -- the request body sent (no headers)
    response_json TEXT    NOT NULL,          -- the raw response body, for audit
    answer        TEXT    NOT NULL,          -- the answer text read from it
    answer_model  TEXT,                      -- the model the server says answered
    logprobs_json TEXT,                      -- OpenAI logprobs, when asked for
    tokens_in     INTEGER,
    tokens_out    INTEGER,
    latency_ms    INTEGER,
    created_ms    INTEGER NOT NULL
);

CREATE TABLE grader_requests (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER REFERENCES runs(id),  -- NULL outside a run (grader-check)
    grader_name TEXT    NOT NULL,             -- 'anthropic:MODEL'
    cache_key   TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('ok', 'http', 'network', 'response')),
    http_status INTEGER,
    tries       INTEGER NOT NULL,             -- HTTP requests made (0 for a cache hit)
    from_cache  INTEGER NOT NULL,
    latency_ms  INTEGER,
    tokens_in   INTEGER,
    tokens_out  INTEGER,
    error       TEXT,
    created_ms  INTEGER NOT NULL
);
CREATE INDEX grader_requests_run ON grader_requests(run_id);

CREATE TABLE grader_usage (
    run_id          INTEGER NOT NULL REFERENCES runs(id),
    grader_name     TEXT    NOT NULL,
    items           INTEGER NOT NULL,
    ok              INTEGER NOT NULL,
    from_cache      INTEGER NOT NULL,
    failed          INTEGER NOT NULL,
    requests        INTEGER NOT NULL,
    retries         INTEGER NOT NULL,
    tokens_in       INTEGER NOT NULL,
    tokens_out      INTEGER NOT NULL,
    cost_usd        REAL,                     -- NULL when no prices were given
    updated_ms      INTEGER NOT NULL,
    PRIMARY KEY (run_id, grader_name)
);
