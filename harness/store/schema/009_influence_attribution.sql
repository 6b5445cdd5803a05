-- 009: influence (steering) generations and attribution/ablation results (issue 6, part B).
-- See docs/evals.md. Every row belongs to a run; rows are keyed naturally so that a resumed
-- run or a merge of shard databases never duplicates them.

-- One generated continuation: the unsteered baseline of a prompt (feature_idx NULL) or the
-- continuation with one feature clamped to scale x its max activation at every position.
CREATE TABLE generations (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    item_key    TEXT    NOT NULL,            -- 'base/p3' or 'f12/s10/p3' (stable)
    prompt_idx  INTEGER NOT NULL,            -- index in the prompt set
    prompt      TEXT    NOT NULL,
    feature_idx INTEGER,                     -- NULL for the baseline
    scale       REAL,                        -- NULL for the baseline; 0 = ablation
    max_act     REAL,                        -- the feature's max activation (feature index)
    clamp_value REAL,                        -- scale * max_act
    seed        INTEGER NOT NULL,            -- sampler seed (same for baseline and steered)
    tokens      BLOB    NOT NULL,            -- int32 ids of the new tokens, little-endian
    text        TEXT    NOT NULL,            -- the decoded new tokens
    created_ms  INTEGER NOT NULL,
    UNIQUE (run_id, item_key)
);
CREATE INDEX generations_feature ON generations(run_id, feature_idx);

-- One attribution prompt: the logit difference d = logit(target) - logit(contrast) at the
-- last position, and how the linearisation of d at the hook splits up.
CREATE TABLE attribution_prompts (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(id),
    prompt_idx    INTEGER NOT NULL,
    name          TEXT,
    prompt        TEXT    NOT NULL,
    target        TEXT    NOT NULL,
    contrast      TEXT    NOT NULL,
    target_id     INTEGER NOT NULL,
    contrast_id   INTEGER NOT NULL,
    n_tokens      INTEGER NOT NULL,
    logit_diff    REAL    NOT NULL,          -- d
    attr_features REAL    NOT NULL,          -- sum of every feature's attribution (all positions)
    attr_error    REAL    NOT NULL,          -- sum over positions of grad . (x - x_hat)
    attr_bias     REAL    NOT NULL,          -- sum over positions of grad . decode(0)
    pearson       REAL,                      -- -attribution vs measured ablation effect
    spearman      REAL,                      --   (over this prompt's ablated features)
    created_ms    INTEGER NOT NULL,
    UNIQUE (run_id, prompt_idx)
);

-- Every active (non-zero) feature at every position of an attribution prompt.
CREATE TABLE attributions (
    id              INTEGER PRIMARY KEY,
    run_id          INTEGER NOT NULL REFERENCES runs(id),
    prompt_idx      INTEGER NOT NULL,
    feature_idx     INTEGER NOT NULL,
    position        INTEGER NOT NULL,        -- token position (0 = BOS when the model has one)
    token_id        INTEGER NOT NULL,
    token_text      TEXT,
    activation      REAL    NOT NULL,
    attribution     REAL    NOT NULL,        -- activation * (dd/dx . direction)
    rank            INTEGER,                 -- 1 = largest |attribution|; NULL beyond the top
    ablation_effect REAL,                    -- d(ablated) - d, NULL when not ablated
    UNIQUE (run_id, prompt_idx, feature_idx, position)
);
CREATE INDEX attributions_rank ON attributions(run_id, prompt_idx, rank);
