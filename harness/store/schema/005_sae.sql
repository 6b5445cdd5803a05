-- 005: the SAE runtime (issue 4): training logs, quality metrics, sweeps, and the feature
-- index's per-feature statistics and analyses. Examples themselves live in `examples` (001).
CREATE TABLE IF NOT EXISTS sae_train_log (
 run_id INTEGER NOT NULL REFERENCES runs(id),
 step INTEGER NOT NULL,
 tokens INTEGER NOT NULL,
 loss REAL NOT NULL,
 mse REAL NOT NULL,
 l1 REAL NOT NULL,
 l0 REAL NOT NULL,
 fvu REAL NOT NULL,
 dead_frac REAL NOT NULL,
 lambda REAL NOT NULL,
 lr REAL NOT NULL,
 elapsed_s REAL NOT NULL,
 PRIMARY KEY (run_id, step)
);

CREATE TABLE IF NOT EXISTS sae_metrics (
 id INTEGER PRIMARY KEY,
 run_id INTEGER NOT NULL REFERENCES runs(id),
 sae_id INTEGER NOT NULL REFERENCES saes(id),
 sae_hash TEXT NOT NULL,
 n_tokens INTEGER NOT NULL,
 l0 REAL, l1 REAL, mse REAL,
 explained_variance REAL,
 explained_variance_legacy REAL,
 fvu REAL,
 l2_ratio REAL,
 rel_recon_bias REAL,
 dead_frac REAL,
 density_hist TEXT,
 ce_clean REAL, ce_sae REAL, ce_zero REAL,
 ce_loss_score REAL,
 kl_sae REAL, kl_zero REAL,
 kl_div_score REAL,
 created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sae_metrics_sae ON sae_metrics(sae_id);

CREATE TABLE IF NOT EXISTS sae_sweep (
 run_id INTEGER NOT NULL REFERENCES runs(id),
 d_sae INTEGER NOT NULL,
 n_tokens INTEGER NOT NULL,
 l1 REAL NOT NULL,
 loss REAL, mse REAL, l0 REAL, fvu REAL,
 dead_frac REAL,
 flops REAL,
 train_s REAL,
 sae_hash TEXT,
 path TEXT,
 PRIMARY KEY (run_id, d_sae, n_tokens)
);

-- One row per (SAE, index configuration): marks the index complete for reuse.
CREATE TABLE IF NOT EXISTS feature_index_runs (
 sae_id INTEGER NOT NULL REFERENCES saes(id),
 config_hash TEXT NOT NULL,
 run_id INTEGER REFERENCES runs(id),
 n_tokens INTEGER NOT NULL,
 complete INTEGER NOT NULL DEFAULT 0,
 PRIMARY KEY (sae_id, config_hash)
);

CREATE TABLE IF NOT EXISTS feature_stats (
 sae_id INTEGER NOT NULL REFERENCES saes(id),
 idx INTEGER NOT NULL,
 n_tokens INTEGER NOT NULL,
 fire_count INTEGER NOT NULL,
 density REAL NOT NULL,
 max_act REAL NOT NULL,
 mean_act REAL NOT NULL,
 quantiles TEXT NOT NULL,
 PRIMARY KEY (sae_id, idx)
);

CREATE TABLE IF NOT EXISTS feature_neighbors (
 sae_id INTEGER NOT NULL REFERENCES saes(id),
 idx INTEGER NOT NULL,
 rank INTEGER NOT NULL,
 other INTEGER NOT NULL,
 cosine REAL NOT NULL,
 PRIMARY KEY (sae_id, idx, rank)
);

CREATE TABLE IF NOT EXISTS feature_logits (
 sae_id INTEGER NOT NULL REFERENCES saes(id),
 idx INTEGER NOT NULL,
 sign INTEGER NOT NULL,
 rank INTEGER NOT NULL,
 token INTEGER NOT NULL,
 effect REAL NOT NULL,
 PRIMARY KEY (sae_id, idx, sign, rank)
);

CREATE TABLE IF NOT EXISTS feature_neurons (
 sae_id INTEGER NOT NULL REFERENCES saes(id),
 idx INTEGER NOT NULL,
 layer INTEGER NOT NULL,
 neuron INTEGER NOT NULL,
 pearson REAL NOT NULL,
 n_tokens INTEGER NOT NULL,
 PRIMARY KEY (sae_id, idx)
);
