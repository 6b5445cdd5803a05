-- 005: the SAE runtime (issue 4): training logs, quality metrics, sweeps, and the feature
-- index's per-feature statistics and analyses. Examples themselves live in `examples` (001).
CREATE TABLE IF NOT EXISTS sae_train_log (
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    step        INTEGER NOT NULL,
    tokens      INTEGER NOT NULL,             -- training tokens seen
    loss        REAL    NOT NULL,             -- mse + lambda * l1, on normalised inputs
    mse         REAL    NOT NULL,             -- mean over tokens of ||x - x_hat||^2
    l1          REAL    NOT NULL,             -- mean over tokens of sum_i f_i ||W_dec,i||
    l0          REAL    NOT NULL,             -- mean number of active latents per token
    fvu         REAL    NOT NULL,             -- batch FVU (global-mean definition)
    dead_frac   REAL    NOT NULL,             -- no firing in the last dead_window tokens
    lambda      REAL    NOT NULL,             -- the warmed-up L1 coefficient at this step
    lr          REAL    NOT NULL,
    elapsed_s   REAL    NOT NULL,
    PRIMARY KEY (run_id, step)
);

CREATE TABLE IF NOT EXISTS sae_metrics (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(id),
    sae_id        INTEGER NOT NULL REFERENCES saes(id),
    sae_hash      TEXT    NOT NULL,
    n_tokens      INTEGER NOT NULL,
    l0            REAL, l1 REAL, mse REAL,
    explained_variance        REAL,           -- 1 - sum||x - x_hat||^2 / sum||x - mean(x)||^2
    explained_variance_legacy REAL,           -- mean over tokens of 1 - ||x-x_hat||^2/||x-mean||^2
    fvu           REAL,                       -- 1 - explained_variance
    l2_ratio      REAL,                       -- mean ||x_hat|| / ||x||
    rel_recon_bias REAL,                      -- mean ||x_hat||^2 / mean <x, x_hat>
    dead_frac     REAL,                       -- latents that fired on none of the tokens
    density_hist  TEXT,                       -- JSON: log10 firing density histogram
    ce_clean      REAL, ce_sae REAL, ce_zero REAL,
    ce_loss_score REAL,                       -- (ce_zero - ce_sae) / (ce_zero - ce_clean)
    kl_sae        REAL, kl_zero REAL,         -- mean per-token KL(clean || edited)
    kl_div_score  REAL,                       -- (kl_zero - kl_sae) / kl_zero
    created_ms    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sae_metrics_sae ON sae_metrics(sae_id);

CREATE TABLE IF NOT EXISTS sae_sweep (
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    d_sae       INTEGER NOT NULL,
    n_tokens    INTEGER NOT NULL,             -- training tokens
    l1          REAL    NOT NULL,
    loss        REAL, mse REAL, l0 REAL, fvu REAL,
    dead_frac   REAL,
    flops       REAL,                         -- ~ 6 * n_tokens * d_in * d_sae (dense equivalent)
    train_s     REAL,
    sae_hash    TEXT,
    path        TEXT,
    PRIMARY KEY (run_id, d_sae, n_tokens)
);

-- One row per (SAE, index configuration): marks the index complete for reuse.
CREATE TABLE IF NOT EXISTS feature_index_runs (
    sae_id      INTEGER NOT NULL REFERENCES saes(id),
    config_hash TEXT    NOT NULL,             -- model hash, corpus hash, tokens, ctx, k, bins, seed
    run_id      INTEGER REFERENCES runs(id),
    n_tokens    INTEGER NOT NULL,
    complete    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sae_id, config_hash)
);

CREATE TABLE IF NOT EXISTS feature_stats (
    sae_id      INTEGER NOT NULL REFERENCES saes(id),
    idx         INTEGER NOT NULL,
    n_tokens    INTEGER NOT NULL,             -- tokens the statistics were taken over
    fire_count  INTEGER NOT NULL,             -- tokens where the latent was > 0
    density     REAL    NOT NULL,             -- fire_count / n_tokens
    max_act     REAL    NOT NULL,
    mean_act    REAL    NOT NULL,             -- mean over firing tokens
    quantiles   TEXT    NOT NULL,             -- JSON {"0.5":..,"0.9":..,"0.99":..} over firing tokens
    PRIMARY KEY (sae_id, idx)
);

CREATE TABLE IF NOT EXISTS feature_neighbors (
    sae_id      INTEGER NOT NULL REFERENCES saes(id),
    idx         INTEGER NOT NULL,
    rank        INTEGER NOT NULL,
    other       INTEGER NOT NULL,
    cosine      REAL    NOT NULL,             -- decoder-row cosine similarity
    PRIMARY KEY (sae_id, idx, rank)
);

CREATE TABLE IF NOT EXISTS feature_logits (
    sae_id      INTEGER NOT NULL REFERENCES saes(id),
    idx         INTEGER NOT NULL,
    sign        INTEGER NOT NULL,             -- +1 top (promoted), -1 bottom (suppressed)
    rank        INTEGER NOT NULL,
    token       INTEGER NOT NULL,
    effect      REAL    NOT NULL,             -- W_dec,i . W_U[token] (norm-free unembedding)
    PRIMARY KEY (sae_id, idx, sign, rank)
);

CREATE TABLE IF NOT EXISTS feature_neurons (
    sae_id      INTEGER NOT NULL REFERENCES saes(id),
    idx         INTEGER NOT NULL,
    layer       INTEGER NOT NULL,
    neuron      INTEGER NOT NULL,             -- the MLP neuron with the best correlation
    pearson     REAL    NOT NULL,
    n_tokens    INTEGER NOT NULL,
    PRIMARY KEY (sae_id, idx)
);
