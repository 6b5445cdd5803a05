# The sharded evaluation end to end (sourced by tests/cli/slurm.sh once Slurm is up):
# `evalrun specificity` graded by the local API server (tests/server/mock_api.py), run once in
# one process and once as 4 Slurm shards plus their merge job; then a 2-shard run with one
# shard cancelled mid-run (scancel) and completed by `submit --resume`, the server's log
# showing that no request was sent twice. The SAE and its feature index are small fixtures
# (tests/slurm/fixture.py): the run under test reads only the index and the grader.

q() { sqlite3 -readonly "$1" "$2"; }
# Grades of the specificity run, item=score, in item order: what "the same results" means.
GRADES="SELECT group_concat(item_key || '=' || score, ' ') FROM (SELECT g.item_key, g.score
        FROM grades g JOIN runs r ON r.id = g.run_id WHERE r.kind = 'specificity'
        ORDER BY g.item_key)"
# Counts grading requests in the server's log after line $1, and how many were repeats.
requests_since() {
    tail -n +$(($1 + 1)) mock.log | /usr/bin/python3 -c '
import collections, json, sys
c = collections.Counter()
for line in sys.stdin:
    body = json.loads(line).get("body")
    body = body if isinstance(body, str) else json.dumps(body, sort_keys=True)
    if "<context>" in body:
        c[body] += 1
print(sum(c.values()), sum(v - 1 for v in c.values()))'
}
# Waits (at most $2 s) until merge job of run $1 completed; 0 when it did.
wait_merged() {
    local t=0 m
    while [ $t -lt $(($2 * 2)) ]; do
        m=$(json_field "results/$1/submit.json" merge_job)
        [ "$(job_state "$m")" = COMPLETED ] && return 0
        sleep 0.5; t=$((t + 1))
    done
    return 1
}

# The local API server: a score that depends on the marked token, so that items differ.
cat >mock.json <<'EOF'
{"answer": "Score: 0", "latency_ms": 50,
 "rules": [{"match": "<context>[^<]*⟦[^⟧]*[aeiou]", "answer": "Score: 3"},
           {"match": "<context>[^<]*⟦", "answer": "Score: 1"}]}
EOF
/usr/bin/python3 "$ROOT/tests/server/mock_api.py" --script mock.json --log mock.log \
    --port-file port >mock.out 2>&1 &
MOCK_PID=$!
for _ in $(seq 1 40); do [ -s port ] && break; sleep 0.25; done
if [ ! -s port ]; then fail "the local API server starts" "$(cat mock.out)"; exit 0; fi
export EVALRUN_GRADER=openai:mock EVALRUN_GRADER_URL="http://127.0.0.1:$(cat port)/v1"
export OPENAI_API_KEY=test-key  # reaches the jobs through the environment, never a script

# The database every run starts from: model and SAE registered, a feature index.
/usr/bin/python3 "$ROOT/tests/slurm/fixture.py" sae sae
printf '0\tthe letter e\n1\tcats\n2\tpunctuation\n3\tnames\n4\tverbs\n5\tthe end\n' >feats.txt
"$EVALRUN" --db src.db specificity --sae sae --features feats.txt --no-explain --no-index-build \
    >/dev/null 2>&1  # registers the model and the SAE, then stops: no index yet
/usr/bin/python3 "$ROOT/tests/slurm/fixture.py" index src.db 6
check "the starting database holds a feature index" test "$(q src.db "SELECT count(*) FROM examples")" = 54

SPEC=(specificity --sae sae --features feats.txt --per-interval 1 --intervals 3 --seed 1)
cp src.db single.db
ev --db single.db "${SPEC[@]}"
expect_rc 0 "the single-process reference run exits 0"
L0=$(wc -l <mock.log)

ev --db src.db submit --slurm --shards 4 --name spec4 -- "${SPEC[@]}"
expect_rc 0 "submitting a 4-shard specificity run exits 0"
check "it says the shards start from the given database" out_has "each shard from a copy of src.db"
if wait_merged spec4 90; then pass "the 4 shards and the merge job completed"
else fail "the 4 shards and the merge job completed" "$("$EVALRUN" status spec4 2>&1 | tr '\n' '|')"; fi
ev status spec4
check "status shows every shard done" test "$(grep -c ' done ' "$TEST_TMP/out")" = 4
check "status shows the items done per shard" out_has "/"
check "status shows the merged run done" out_has "merged.db: specificity run 1 done"
want=$(q single.db "$GRADES")
got=$(q results/spec4/merged.db "$GRADES" 2>/dev/null)
check "the merged database holds the single-process run's items and scores" \
    test -n "$want" -a "$got" = "$want"
check "no duplicates in the merged grades" \
    test "$(q results/spec4/merged.db "SELECT count(*) - count(DISTINCT run_id || item_key) FROM grades")" = 0
check "one specificity run in the merged database, done" \
    test "$(q results/spec4/merged.db "SELECT count(*) || status FROM runs WHERE kind = 'specificity'")" = 1done
check "its items are all there" \
    test "$(q results/spec4/merged.db "SELECT count(*) FROM items")" = "$(q single.db "SELECT count(*) FROM items")"
set -- $(requests_since "$L0")
check "the shards asked each item once (no repeated request)" test "$2" = 0 -a "$1" -gt 0
USAGE="SELECT u.items || ' ' || u.requests FROM grader_usage u JOIN runs r ON r.id = u.run_id
       WHERE r.kind = 'specificity'"
sum_items=0 sum_requests=0
for k in 0 1 2 3; do
    set -- $(q "results/spec4/shard-$k.db" "$USAGE")
    sum_items=$((sum_items + ${1:-0})) sum_requests=$((sum_requests + ${2:-0}))
done
check "the merged run's grader usage is the sum of the shards'" \
    test "$(q results/spec4/merged.db "$USAGE")" = "$sum_items $sum_requests" -a "$sum_items" -gt 0

# Cancel one shard mid-run; --resume completes it without asking anything twice.
sed -i 's/"latency_ms": 50/"latency_ms": 300/' mock.json
SLOW=(specificity --sae sae --features feats.txt --per-interval 2 --intervals 3 --seed 2 --concurrency 1)
L1=$(wc -l <mock.log)
ev --db src.db submit --slurm --shards 2 --name slow -- "${SLOW[@]}"
expect_rc 0 "submitting a 2-shard run exits 0"
A=$(json_field results/slow/submit.json array_job)
n=0
for _ in $(seq 1 120); do
    [ -s results/slow/shard-1.db ] && n=$(q results/slow/shard-1.db "SELECT count(*) FROM grades" 2>/dev/null)
    [ "${n:-0}" -ge 3 ] && break
    sleep 0.25
done
check "shard 1 was grading when cancelled" test "${n:-0}" -ge 3
scancel "${A}_1"
wait_gone "$A" 60
ev status slow
check "status shows the cancelled shard" out_has "CANCELLED"
check "the cancelled shard's run is unfinished" out_has "interrupted"
ev submit --resume slow
expect_rc 0 "--resume exits 0"
check "--resume resubmits only the cancelled shard" out_has "1 to resubmit: 1"
check "--resume replaces the merge job" out_has "cancelled  merge job"
if wait_merged slow 90; then pass "the resumed shard and the new merge job completed"
else fail "the resumed shard and the new merge job completed" "$("$EVALRUN" status slow 2>&1 | tr '\n' '|')"; fi
check "the merged run is done" \
    test "$(q results/slow/merged.db "SELECT status FROM runs WHERE kind = 'specificity'")" = done
items=$(q results/slow/merged.db "SELECT count(*) FROM items")
check "every item was graded once" \
    test "$(q results/slow/merged.db "SELECT count(DISTINCT item_key) FROM grades")" = "$items"
set -- $(requests_since "$L1")
check "the grader saw no repeated request across the cancel and the resume" test "$2" = 0
check "and exactly one request per item" test "$1" = "$items"
