-- 015: the numeric influence measures (issue 17.3): for every steered continuation and every
-- (feature, prompt) baseline of an influence run, measured without any LLM from the stored
-- tokens (docs/evals.md, "Numeric measures"). One row per measured item, keyed naturally so
-- that a resumed run or a merge of shard databases never duplicates or recomputes it.
CREATE TABLE influence_measures (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    item_key    TEXT    NOT NULL,   -- the steered generation's key 'f12/s10/p3', or
                                    -- 'base/p3/f12': prompt 3's baseline read for feature 12
    gen_key     TEXT    NOT NULL,   -- the generation measured ('f12/s10/p3' or 'base/p3')
    feature_idx INTEGER NOT NULL,
    scale       REAL,               -- NULL for a baseline
    prompt_idx  INTEGER NOT NULL,
    n_tokens    INTEGER NOT NULL,   -- generated tokens scored (>= 1)
    loglik      REAL    NOT NULL,   -- fluency: mean log p(token | before) per generated token
                                    -- under the UNsteered model, nats (<= 0)
    act_mean    REAL    NOT NULL,   -- concept presence: the feature's activation when the text
    act_max     REAL    NOT NULL,   --   is re-encoded (unsteered), mean / max over the
                                    --   generated positions
    kl_mean     REAL,               -- KL(unsteered || steered) of the next-token distribution,
    kl_max      REAL,               --   mean / max over the steered positions (NULL: baseline)
    n_kl        INTEGER,            -- positions in the KL mean (NULL: baseline)
    created_ms  INTEGER NOT NULL,
    UNIQUE (run_id, item_key)
);
