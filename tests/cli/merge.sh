# End-to-end tests of `evalrun merge --db OUT SHARD.db...`: shard databases made with the
# product's own `db init` and filled with sqlite3 as a sharded run would fill them (work dealt
# round-robin over 8 items), then merged and read back with sqlite3 and `evalrun runs`.
. "$ROOT/tests/cli/lib.sh"

if ! command -v sqlite3 >/dev/null 2>&1; then
    skip "merge CLI tests" "sqlite3 not installed (harness/scripts/install-deps.sh)"
    exit 0
fi
q() { sqlite3 "$1" "$2"; }

# mk FILE K N CONFIG SEED STATUS: shard K of N of a specificity run with that configuration.
mk() {
    local f=$1 k=$2 n=$3 cfg=$4 seed=$5 status=$6 hash i
    "$EVALRUN" --db "$f" db init >/dev/null || return 1
    hash=$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)
    q "$f" "INSERT INTO runs (kind, tag, status, started_ms, finished_ms, config_json,
             config_hash, code_version, host, pid, seed, shard_k, shard_n)
             VALUES ('specificity', 'spec', '$status', 1000, 2000, '$cfg', '$hash', 'test',
                     'node$k', 1, $seed, $k, $n);"
    for i in 0 1 2 3 4 5 6 7; do
        [ $((i % n)) -eq "$k" ] || continue
        q "$f" "INSERT INTO items (run_id, item_key, kind, feature_idx, created_ms)
                VALUES (1, 'item$i', 'interval', $i, 1);
                INSERT INTO grades (run_id, item_key, feature_idx, grader_kind, grader_name,
                                    score, parse_status, raw_answer, created_ms)
                VALUES (1, 'item$i', $i, 'llm', 'openai:mock', $((i % 4)), 'ok',
                        'Score: $((i % 4))', 1);
                INSERT INTO grader_cache (key, provider, base_url, model, request_json,
                                          response_json, answer, created_ms)
                VALUES ('req$i', 'openai', 'http://127.0.0.1/v1', 'mock', '{}', '{}',
                        'Score: $((i % 4))', 1);"
    done
}

CFG='{"features":"sample.txt","seed":3}'
for k in 0 1 2 3; do mk "s$k.db" $k 4 "$CFG" 3 done; done
mk single.db 0 1 "$CFG" 3 done

ev merge --help
expect_rc 0 "merge --help exits 0"
check "merge --help shows the usage" out_has "usage: evalrun merge --db OUT SHARD.db"

ev --db out.db merge
expect_rc 2 "merge without shard databases is a usage error"
check "no output database is left by a usage error" test ! -e out.db

ev --db out.db merge s0.db nosuch.db
expect_rc 1 "a missing shard database exits 1"
check "the missing file is named" err_has "nosuch.db"
check "the error is one line" err_one_line
check "a failed merge leaves no output database" test ! -e out.db
check "and does not create the missing shard" test ! -e nosuch.db

ev --db out.db merge s0.db s1.db s2.db s3.db
expect_rc 0 "merging 4 shards exits 0"
check "the summary counts the grades" out_has "grades"
check "the summary says the run is complete" out_has "runs: 1 complete, 0 incomplete"
want=$(q single.db "SELECT group_concat(item_key || ':' || score || ':' || raw_answer, ' ')
                    FROM (SELECT * FROM grades ORDER BY item_key)")
got=$(q out.db "SELECT group_concat(item_key || ':' || score || ':' || raw_answer, ' ')
                FROM (SELECT * FROM grades ORDER BY item_key)")
check "the merged grades are those of the single-process run" test "$got" = "$want"
check "one merged run, done, shard 0/1" \
    test "$(q out.db "SELECT count(*), status, shard_k, shard_n FROM runs")" = "1|done|0|1"
check "the items came along, no duplicates" test "$(q out.db "SELECT count(*) FROM items")" = 8
check "the grader's response cache came along" \
    test "$(q out.db "SELECT count(*) FROM grader_cache")" = 8
ev --db out.db runs
check "'evalrun runs' lists the merged run as done" out_has "done"

before=$(q out.db "SELECT count(*) FROM grades; SELECT count(*) FROM items; SELECT count(*) FROM runs")
ev --db out.db merge s2.db s0.db s2.db
expect_rc 0 "merging the same shards again exits 0"
after=$(q out.db "SELECT count(*) FROM grades; SELECT count(*) FROM items; SELECT count(*) FROM runs")
check "merging again adds nothing" test "$before" = "$after"

# A shard from another run: other configuration, other seed.
mk alien.db 1 4 '{"features":"other.txt","seed":3}' 3 done
mk seed.db 1 4 "$CFG" 4 done
mk s0b.db 0 4 "$CFG" 3 done
ev --db new.db merge s0b.db alien.db s2.db
expect_rc 1 "a shard database of another run exits 1"
check "the foreign shard is named" err_has "alien.db"
check "the differing key is named" err_has "'features'"
check "the message says nothing was merged" err_has "nothing merged"
check "nothing was merged: no output database" test ! -e new.db
before=$(q out.db "SELECT count(*) FROM grades; SELECT count(*) FROM merge_shards")
ev --db out.db merge seed.db s3.db
expect_rc 1 "a shard with another seed exits 1"
check "the seeds are named" err_has "seed 4"
after=$(q out.db "SELECT count(*) FROM grades; SELECT count(*) FROM merge_shards")
check "nothing merged into an existing output either" test "$before" = "$after"

ev --db out.db merge s1.db out.db
expect_rc 2 "naming the output database as a shard is a usage error"

# A partial merge: the run stays incomplete until every shard is merged done.
mk p2.db 2 4 "$CFG" 3 interrupted
ev --db part.db merge s0.db s1.db p2.db
expect_rc 0 "a partial merge exits 0"
check "it reports the run incomplete" out_has "0 complete, 1 incomplete"
check "the merged run is interrupted" test "$(q part.db "SELECT status FROM runs")" = interrupted
check "its error names what is missing" \
    sh -c "sqlite3 part.db 'SELECT error FROM runs' | grep -q '2 of 4 shards merged done (not done: 2 interrupted)'"
ev --db part.db merge s2.db s3.db
expect_rc 0 "merging the rest exits 0"
check "the merged run is done now" test "$(q part.db "SELECT status FROM runs")" = done

# Bug: merge refused shard databases holding hand-recorded tags (feature_tags, 012).
mk t0.db 0 2 "$CFG" 3 done
mk t1.db 1 2 "$CFG" 3 done
for f in t0.db t1.db; do
    q "$f" "INSERT INTO saes (hash, path, config_json, created_ms) VALUES ('h1', 's', '{}', 1);
            INSERT INTO feature_tags (sae_id, feature_idx, category, created_ms)
            VALUES (1, 7, 'people', 1);"
done
q t1.db "INSERT INTO feature_tags (sae_id, feature_idx, category, created_ms) VALUES (1, 9, 'code', 2);"
ev --db tags.db merge t0.db t1.db
expect_rc 0 "shards holding feature tags merge"
check "tags are merged without duplicates" \
    test "$(q tags.db "SELECT group_concat(feature_idx || ':' || category) FROM (SELECT * FROM feature_tags ORDER BY feature_idx)")" = "7:people,9:code"
