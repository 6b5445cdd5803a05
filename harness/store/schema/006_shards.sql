-- 006: sharded runs (evalrun merge). See docs/cluster.md.
-- merge_shards: which shard runs `evalrun merge` folded into each merged run (shard 0/1 in
-- the merged database), so that merging again is idempotent and the merged run is 'done' only
-- when every shard 0..N-1 was merged done.
CREATE TABLE merge_shards (
    run_id      INTEGER NOT NULL REFERENCES runs(id),  -- the merged run
    shard_k     INTEGER NOT NULL,
    shard_n     INTEGER NOT NULL,
    status      TEXT    NOT NULL,                      -- the shard run's status when merged
    started_ms  INTEGER,
    finished_ms INTEGER,
    host        TEXT,
    source      TEXT    NOT NULL,                      -- the shard database, as named to merge
    merged_ms   INTEGER NOT NULL,
    PRIMARY KEY (run_id, shard_k, shard_n)
);

