# End-to-end tests of `evalrun submit` / `status` / `submit --resume` on a real single-node
# Slurm cluster that this test starts (tests/slurm/cluster.sh) and stops whatever happens.
# Without Slurm installed (optional packages) it says why and skips; installed but unable to
# start, it skips too, or fails with CI=true.
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/slurm/cluster.sh"

# ---------------------------------------------------------------- bad input (no cluster needed)
ev submit --slurm --shards 0 -- specificity --features f.txt
expect_rc 2 "--shards 0 is a usage error"
check "--shards is named" err_has "--shards"
ev submit --slurm --shards -3 -- specificity --features f.txt
expect_rc 2 "negative --shards is a usage error"
ev submit --slurm -- specificity --features f.txt
expect_rc 2 "--shards is required"
ev submit --shards 2 -- specificity --features f.txt
expect_rc 2 "--slurm is required"
ev submit --slurm --shards 2 -- runs
expect_rc 2 "a COMMAND that is not a batch subcommand exits 2"
check "the command is named with the batch list" err_has "'runs' is not a batch subcommand"
check "the error is one line" err_one_line
ev submit --slurm --shards 2
expect_rc 2 "no COMMAND at all exits 2"
ev submit --slurm --shards 2 -- specificity --shard 0/2
expect_rc 2 "a COMMAND with its own --shard exits 2"
ev submit --slurm --shards 2 -- specificity --db x.db
expect_rc 2 "a COMMAND with its own --db exits 2"
ev submit --slurm --shards 2 --rpm 60 -- specificity --rpm 30
expect_rc 2 "--rpm given twice exits 2"
ev submit --slurm --shards 2 --name ../x -- specificity
expect_rc 2 "a --name with a slash exits 2"
printf '# three features\n3\tcats\n\n7\n9\tdogs\n' >three.txt
ev submit --slurm --shards 4 --dry-run -- specificity --features three.txt
expect_rc 2 "more shards than features exits 2"
check "the count and the file are named" err_has "more than the 3 features of three.txt"
ev submit --slurm --shards 3 --dry-run -- specificity --features three.txt --limit 2
expect_rc 2 "--limit counts: more shards than the features used exits 2"
ev submit --slurm --shards 3 --dry-run -- specificity --features three.txt
expect_rc 0 "as many shards as features is fine"
ev submit --slurm --shards 2 --dry-run -- specificity --features missing.txt
expect_rc 1 "a features file that cannot be read exits 1"
check "the unreadable file is named" err_has "missing.txt"
ev submit --resume nosuch
expect_rc 1 "--resume of an unknown run exits 1"
check "the unknown run is named" err_has "no submitted run 'nosuch'"
ev submit --resume nosuch --shards 2
expect_rc 2 "--resume with job options is a usage error"
ev status nosuch
expect_rc 1 "status of an unknown run exits 1"
ev submit --help
check "submit --help says --rpm is a total divided among shards" out_has "each of"
check "submit --help says each shard gets R/N" out_has "R/N"

printf '1\n2\n3\n' >'my features.txt'
ev submit --slurm --shards 3 --partition debug --time 5 --name dry --rpm 90 --dry-run -- \
    specificity --features 'my features.txt'
expect_rc 0 "--dry-run exits 0"
check "--dry-run prints the array script" out_has "#SBATCH --array=0-2"
check "each task gets its shard" out_has '--shard "$K/3"'
check "each task gets its own database" out_has 'DB="$RUN_DIR/shard-$K.db"'
check "arguments are shell-quoted" out_has "'my features.txt'"
check "--rpm is passed through whole (the command divides it by N)" out_has "'--rpm' '90'"
check "the merge script waits for the shards" out_has "merge \"\$RUN_DIR\"/shard-{0..2}.db"
check "the scripts export the environment (keys are not written)" out_has "#SBATCH --export=ALL"
check "--dry-run writes nothing" test ! -e results/dry

# sbatch missing: its absence is named, nothing is left behind.
RC=0; PATH=/nonexistent "$EVALRUN" submit --slurm --shards 2 --name nosb -- specificity \
    >"$TEST_TMP/out" 2>"$TEST_TMP/err" </dev/null || RC=$?
expect_rc 1 "sbatch not found exits 1"
check "the message names sbatch" err_has "cannot run sbatch"
check "no run folder is left when nothing was submitted" test ! -e results/nosb

# ---------------------------------------------------------------- the cluster
SLURM_DIR=$(mktemp -d "${TMPDIR:-/tmp}/evalrun-slurm.XXXXXX")
MOCK_PID=""
cleanup() {
    [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null
    slurm_down "$SLURM_DIR"
    rm -rf "$SLURM_DIR"
}
trap cleanup EXIT
trap 'exit 143' TERM INT  # a time-out or Ctrl-C still stops the cluster (through EXIT)
if ! slurm_up "$SLURM_DIR"; then
    if [ "${CI:-}" = true ] && [ -z "$SLURM_MISSING" ]; then
        fail "a single-node Slurm starts" "$SLURM_WHY"
    elif [ -n "$SLURM_MISSING" ]; then
        skip "Slurm tests" "$SLURM_WHY"
    else
        skip "Slurm tests" "cannot start a single-node Slurm here: $SLURM_WHY"
    fi
    exit 0
fi
pass "a single-node Slurm started (SLURM_CONF=$SLURM_CONF)"

# Waits (at most $2 seconds) until job $1 (a job, an array or a task) has left the queue.
wait_gone() {
    local t=0
    while [ -n "$(squeue -h -j "$1" -t PD,R,CG,CF 2>/dev/null | grep -v DependencyNeverSatisfied)" ]; do
        sleep 0.5; t=$((t + 1))
        [ $t -ge $(($2 * 2)) ] && return 1
    done
    return 0
}
job_state() { scontrol -o show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -1 | cut -d= -f2; }
json_field() { sed -n "s/.*\"$2\":[[:space:]]*\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$1" | head -1; }

ev submit --slurm --shards 2 --partition nosuch --name refused -- specificity --features three.txt
expect_rc 1 "sbatch refusing (unknown partition) exits 1"
check "sbatch's own message is shown" err_has "nvalid partition"
check "no run folder is left when sbatch refused" test ! -e results/refused

# ---------------------------------------------------------------- shards that fail
# A batch command whose shards all fail (an SAE folder that does not exist): the merge job's
# afterok can never be met; --resume cancels it.
FAILCMD=(specificity --features three.txt --sae no-such-sae)
ev submit --slurm --shards 3 --name failing -- "${FAILCMD[@]}"
expect_rc 0 "submit exits 0"
check "it prints the run name" out_has "run        failing"
check "it prints how to follow it" out_has "evalrun status failing"
check "the submission is recorded" test -f results/failing/submit.json
check "the array script is kept, readable" grep -q '#SBATCH --array=0-2' results/failing/shards.sbatch
ARRAY=$(json_field results/failing/submit.json array_job)
MERGE=$(json_field results/failing/submit.json merge_job)
check "submit.json holds the array job id" test -n "$ARRAY"
check "submit.json holds the merge job id" test -n "$MERGE"
if wait_gone "$ARRAY" 60; then pass "the shards ran"; else fail "the shards ran" "still queued after 60 s"; fi
check "each shard ran its slice in its own database" \
    grep -q "shard-\$K.db" results/failing/shards.sbatch
check "the shard's log holds evalrun's error" test -s results/failing/logs/shard-1.out
for _ in $(seq 1 40); do  # the controller marks the dependency on its next pass
    squeue -h -j "$MERGE" -o %r 2>/dev/null | grep -q DependencyNeverSatisfied && break
    sleep 0.5
done
ev status failing
expect_rc 0 "status exits 0"
check "status shows the failed shards" out_has "FAILED"
check "status shows the merge job waiting forever" out_has "DependencyNeverSatisfied"
check "status points to --resume" out_has "evalrun submit --resume failing"
ev submit --resume failing --dry-run
expect_rc 0 "--resume --dry-run exits 0"
check "--dry-run says which shards it would resubmit" out_has "would resubmit shards 0,1,2"
check "--dry-run submits nothing" test "$(json_field results/failing/submit.json array_job)" = "$ARRAY"
ev submit --resume failing
expect_rc 0 "--resume exits 0"
check "--resume resubmits the unfinished shards" out_has "0,1,2 resubmitted"
check "--resume cancels the merge job that could never run" out_has "cancelled  merge job $MERGE"
check "the old merge job is cancelled in Slurm" test "$(job_state "$MERGE")" = CANCELLED
ARRAY2=$(json_field results/failing/submit.json array_job)
MERGE2=$(json_field results/failing/submit.json merge_job)
check "submit.json records the new array job" test -n "$ARRAY2" -a "$ARRAY2" != "$ARRAY"
check "submit.json records the new merge job" test -n "$MERGE2" -a "$MERGE2" != "$MERGE"
check "the new merge job depends on the new array" \
    sh -c "scontrol -o show job $MERGE2 | grep -q 'Dependency=afterok:${ARRAY2}'"
wait_gone "$ARRAY2" 60
scancel "$MERGE2" 2>/dev/null

# ---------------------------------------------------------------- a real sharded evaluation
if ! "$EVALRUN" help specificity >/dev/null 2>&1; then
    skip "4-shard specificity run against the local API server" \
        "this build has no specificity command"
    exit 0
fi
. "$ROOT/tests/slurm/e2e.sh"
