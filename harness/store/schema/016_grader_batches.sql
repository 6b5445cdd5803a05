-- 016: the providers' batch interfaces (`--batch`, issue 16.7): OpenAI's Batch API and
-- Anthropic's Message Batches. A batch is stored, with the requests it covers, as soon as the
-- provider has accepted it and before polling starts, so a killed run resumes polling the
-- same batch instead of submitting (and paying for) its requests again. Answers are stored
-- in grader_cache and as grades, like any other; these tables only say what is pending.
CREATE TABLE grader_batches (
    id            INTEGER PRIMARY KEY,
    provider      TEXT    NOT NULL,          -- 'anthropic' or 'openai'
    base_url      TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    remote_id     TEXT    NOT NULL,          -- the provider's id: batch_... / msgbatch_...
    input_file_id TEXT,                      -- OpenAI: the uploaded JSONL file
    run_id        INTEGER REFERENCES runs(id),
    n_requests    INTEGER NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'ended', 'failed')),
    error         TEXT,                      -- why it failed (expired, cancelled, ...)
    created_ms    INTEGER NOT NULL,
    ended_ms      INTEGER,
    UNIQUE (provider, base_url, remote_id)
);
CREATE TABLE grader_batch_items (
    batch_id  INTEGER NOT NULL REFERENCES grader_batches(id),
    custom_id TEXT    NOT NULL,              -- the request's id inside the batch
    cache_key TEXT    NOT NULL,              -- grader_cache key of the request
    attempt   INTEGER NOT NULL,
    PRIMARY KEY (batch_id, custom_id)
);
CREATE INDEX grader_batch_items_key ON grader_batch_items(cache_key);
