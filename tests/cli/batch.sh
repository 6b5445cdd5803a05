# CLI tests for --batch (issue 16.7b): grading through OpenAI's Batch API and Anthropic's
# Message Batches as the local mock server implements them. For both providers: the grades
# equal the non-batch path's, item by item; one batch is created and its answers read; a
# SIGKILL while polling and a rerun resume polling the same batch (the server saw exactly one
# creation); the ledger's cost is the batch's half price. A failed or expired batch is a
# one-line error naming it, and a rerun submits its requests again.
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"

export ANTHROPIC_API_KEY=test-key EVALRUN_BATCH_POLL_S=0.2

ev specificity --help
check "help lists --batch" out_has "--batch"

BASE=$TEST_TMP/base.db
if ! build_index "$BASE"; then
    skip "batch end-to-end" "$REASON"
    exit 0
fi
mapfile -t F < <(pick_features "$BASE" 2)
printf '%s\tthe word the\n%s\tpeople\n' "${F[0]}" "${F[1]}" >"$TEST_TMP/feats.txt"
start_mock
RULES='"rules": [{"match": "<context>\\n(?:(?!</context>)[\\s\\S])*\u27e6", "answer": "Score: 3"}], "answer": "It does not fit.\nScore: 1"'
SPEC=(specificity --features "$TEST_TMP/feats.txt" --per-interval 2 --intervals 3 --seed 5
      --price-in 3 --price-out 15)
grades() { sql "$1" "SELECT group_concat(item_key || '=' || coalesce(score, 'null'), ' ') FROM
                     (SELECT item_key, score FROM grades ORDER BY item_key)"; }
# how many logged requests were METHOD PATH-REGEX
seen() {
    python3 - "$LOG" "$1" "$2" <<'EOF'
import json, re, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    n += r.get("method", "POST") == sys.argv[2] and re.search(sys.argv[3], r["path"]) is not None
print(n)
EOF
}
# cost of the run's grading (grader_usage), and the tokens of the answers it paid for
cost() { sql "$1" "SELECT cost_usd FROM grader_usage"; }
paid() { sql "$1" "SELECT coalesce(sum(tokens_in), 0) || ' ' || coalesce(sum(tokens_out), 0)
                   FROM grader_requests WHERE from_cache = 0 AND run_id IS NOT NULL"; }

for P in openai anthropic; do
    GR=(--grader "$P:m1" --grader-url "$URL")
    if [ $P = openai ]; then CREATE='^/v1/batches$'; POLL='^/v1/batches/'; else
        CREATE='^/v1/messages/batches$'; POLL='^/v1/messages/batches/[^/]+$'; fi

    # ---- the reference: the same run without --batch
    cp "$BASE" "$TEST_TMP/$P-ref.db"
    script "{$RULES}"
    ev --db "$TEST_TMP/$P-ref.db" "${SPEC[@]}" "${GR[@]}"
    expect_rc 0 "$P: the run without --batch"
    REF=$(grades "$TEST_TMP/$P-ref.db")
    N_REF=$(sql "$TEST_TMP/$P-ref.db" "SELECT count(*) FROM grades")
    check "$P: reference grades stored ($N_REF)" [ "$N_REF" -gt 4 ]

    # ---- --batch: one batch, the same grades, half the price
    cp "$BASE" "$TEST_TMP/$P-b.db"
    script "{$RULES, \"batch\": {\"ms\": 600}}"
    ev --db "$TEST_TMP/$P-b.db" "${SPEC[@]}" "${GR[@]}" --batch
    expect_rc 0 "$P: --batch run"
    check "$P: says the batch was submitted" err_has "submitted at half price"
    check "$P: one batch created" [ "$(seen POST "$CREATE")" = 1 ]
    check "$P: polled until it ended" [ "$(seen GET "$POLL")" -ge 2 ]
    check "$P: answers read from the results" [ "$(seen GET 'content$|results$')" = 1 ]
    [ $P = openai ] && check "openai: one JSONL file uploaded" [ "$(seen POST '^/v1/files$')" = 1 ]
    check "$P: no item asked one by one (the preflight only)" \
        [ "$(seen POST '/chat/completions$|/messages$')" = 1 ]
    check "$P: the grades equal the non-batch run's, item by item" \
        [ "$(grades "$TEST_TMP/$P-b.db")" = "$REF" ]
    check "$P: the batch is stored as ended" [ "$(sql "$TEST_TMP/$P-b.db" \
        "SELECT status || ' ' || n_requests FROM grader_batches")" = "ended $N_REF" ]
    # cost: preflight P0 at full price (from the reference: cost = P0 + items), items at half
    check "$P: the ledger's cost is half price for the batch's answers" python3 - \
        "$(cost "$TEST_TMP/$P-ref.db")" "$(paid "$TEST_TMP/$P-ref.db")" \
        "$(cost "$TEST_TMP/$P-b.db")" "$(paid "$TEST_TMP/$P-b.db")" <<'EOF'
import sys
c_ref, (ri, ro), c_b, (bi, bo) = float(sys.argv[1]), map(int, sys.argv[2].split()), \
    float(sys.argv[3]), map(int, sys.argv[4].split())
items = lambda i, o: (i * 3 + o * 15) / 1e6
pre = c_ref - items(ri, ro)
sys.exit(not (pre > 0 and abs(c_b - (pre + 0.5 * items(bi, bo))) < 1e-9 and bi == ri))
EOF
    # rerun: everything is done, nothing is asked
    script "{$RULES}"
    ev --db "$TEST_TMP/$P-b.db" "${SPEC[@]}" "${GR[@]}" --batch
    expect_rc 0 "$P: rerun of the finished --batch run"
    check "$P: the rerun asks nothing" [ "$(requests)" = 0 ]

    # ---- SIGKILL while polling, then resume: the same batch, created once
    KDB=$TEST_TMP/$P-k.db
    cp "$BASE" "$KDB"
    script "{$RULES, \"batch\": {\"ms\": 3000}}"
    "$EVALRUN" --db "$KDB" "${SPEC[@]}" "${GR[@]}" --batch >/dev/null 2>"$TEST_TMP/kill.err" &
    PID=$!
    for _ in $(seq 200); do
        [ "$(seen GET "$POLL")" -ge 2 ] && break
        sleep 0.05
    done
    kill -9 $PID 2>/dev/null
    wait $PID 2>/dev/null
    check "$P: killed while polling, the batch stored as pending" [ "$(sql "$KDB" \
        "SELECT count(*) FROM grader_batches WHERE status = 'pending'")" = 1 ]
    check "$P: no grade before the batch ended" [ "$(sql "$KDB" "SELECT count(*) FROM grades")" = 0 ]
    ev --db "$KDB" "${SPEC[@]}" "${GR[@]}" --batch
    expect_rc 0 "$P: rerun after the SIGKILL"
    check "$P: says it resumes the batch" err_has "resuming batch"
    check "$P: the server saw exactly one batch creation" [ "$(seen POST "$CREATE")" = 1 ]
    check "$P: the resumed run's grades equal the non-batch run's" [ "$(grades "$KDB")" = "$REF" ]
    check "$P: the batch is ended" [ "$(sql "$KDB" "SELECT group_concat(status) FROM grader_batches")" = ended ]

    # ---- a stored batch the server does not know (404): failed, and the rerun resubmits
    UDB=$TEST_TMP/$P-u.db
    cp "$BASE" "$UDB"
    script "{$RULES, \"batch\": {\"ms\": 3000}}"
    "$EVALRUN" --db "$UDB" "${SPEC[@]}" "${GR[@]}" --batch >/dev/null 2>&1 &
    PID=$!
    for _ in $(seq 200); do
        [ "$(seen GET "$POLL")" -ge 2 ] && break
        sleep 0.05
    done
    kill -9 $PID 2>/dev/null
    wait $PID 2>/dev/null
    python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); db.execute("UPDATE grader_batches SET remote_id = ?", ("gone_1",)); db.commit()' "$UDB"
    script "{$RULES}"
    ev --db "$UDB" "${SPEC[@]}" "${GR[@]}" --batch
    expect_rc 1 "$P: a stored batch the server does not know: exit 1"
    check "$P: says so, naming it" err_has "grader batch gone_1 ($P) is unknown to"
    check "$P: that batch is marked failed" [ "$(sql "$UDB" "SELECT status FROM grader_batches")" = failed ]
    ev --db "$UDB" "${SPEC[@]}" "${GR[@]}" --batch
    expect_rc 0 "$P: the next rerun submits a new batch"
    check "$P: and gets the same grades" [ "$(grades "$UDB")" = "$REF" ]

    # ---- a batch that expires: one line naming it; the rerun submits a new one
    for END in expired failed; do
        [ $P = anthropic ] && [ $END = failed ] && continue  # Anthropic has no failed batches
        EDB=$TEST_TMP/$P-$END.db
        cp "$BASE" "$EDB"
        script "{$RULES, \"batch\": {\"status\": \"$END\"}}"
        ev --db "$EDB" "${SPEC[@]}" "${GR[@]}" --batch
        expect_rc 1 "$P: a batch that $END: exit 1"
        check "$P/$END: the error is one line, the last" [ "$(grep -c '^evalrun:' "$TEST_TMP/err")" = 1 ] && tail -1 "$TEST_TMP/err" | grep -q '^evalrun:' 
        check "$P/$END: names the batch and what happened" grep -qE "grader batch [a-z_]+[0-9]+ \($P\) .*$END" "$TEST_TMP/err"
        check "$P/$END: says a rerun submits them again" err_has "rerun to submit them in a new batch"
        check "$P/$END: no grade stored" [ "$(sql "$EDB" "SELECT count(*) FROM grades")" = 0 ]
        check "$P/$END: the batch is marked failed" [ "$(sql "$EDB" "SELECT status FROM grader_batches")" = failed ]
        script "{$RULES}"
        ev --db "$EDB" "${SPEC[@]}" "${GR[@]}" --batch
        expect_rc 0 "$P/$END: the rerun"
        check "$P/$END: the rerun created a new batch" [ "$(seen POST "$CREATE")" = 1 ]
        check "$P/$END: and got the same grades" [ "$(grades "$EDB")" = "$REF" ]
    done
done
