# compare tried with real runs (issue 17.5): stories260K and the demo SAE, specificity graded
# by the mock server with a rule that reads the content (evals/common.sh TOKEN_RULES: 3 when
# a marked token is the one the description names, 1 when another is marked, 0 when none is),
# so that which contexts a seed draws, and which description goes with which feature, change
# the scores.
#   - false positives: 20 pairs of runs of the same SAE, features and descriptions that differ
#     only in --seed (other contexts): compare at its default thresholds must exit 0 in at
#     least 19 of the 20 pairs (false-positive rate <= 5%), and every comparison must reach
#     a verdict (>= --min-n units a side), never an error;
#   - a real regression: the same runs with half of the features' descriptions shuffled
#     (each of them gets another's, naming another token) must exit 3, paired (same seed)
#     and unpaired (another seed).
# One index database, one features file; only the seeds vary (about 30 s).
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"

BASE=$TEST_TMP/base.db
if ! build_index "$BASE"; then
    skip "compare false-positive rate over 20 seed pairs" "$REASON"
    exit 0
fi
token_descriptions "$BASE" 8 "$TEST_TMP/feats.txt"
check "eight features with a description" [ "$(wc -l <"$TEST_TMP/feats.txt")" = 8 ]
start_mock
script "$TOKEN_RULES"
SPEC=(specificity --features "$TEST_TMP/feats.txt" --per-interval 3 --intervals 3)
DB=$TEST_TMP/seeds.db
cp "$BASE" "$DB"
bad=0
for s in $(seq 1 40); do
    ev --db "$DB" --quiet "${SPEC[@]}" "${GRADE[@]}" --seed "$s" --tag "s$s"
    [ "$RC" = 0 ] || bad=$((bad + 1))
done
check "40 specificity runs, seeds 1..40" [ "$bad" = 0 ]
check "the seeds drew different contexts" [ "$(sql "$DB" "SELECT count(DISTINCT g) FROM (SELECT group_concat(item_key) AS g FROM (SELECT run_id, item_key FROM items ORDER BY run_id, item_key) GROUP BY run_id)")" -ge 35 ]
check "and the grades vary with them" [ "$(sql "$DB" "SELECT count(DISTINCT m) FROM (SELECT round(avg(g.score), 6) AS m FROM grades g JOIN items i ON i.run_id = g.run_id AND i.item_key = g.item_key WHERE i.kind = 'interval' GROUP BY g.run_id)")" -ge 10 ]

: >"$TEST_TMP/pairs.txt"
for i in $(seq 1 20); do
    ev --db "$DB" compare --baseline "s$((2 * i - 1))" --candidate "s$((2 * i))" --json
    echo "$RC" >>"$TEST_TMP/pairs.txt"
    cp "$TEST_TMP/out" "$TEST_TMP/pair$i.json"
done
n0=$(grep -cx 0 "$TEST_TMP/pairs.txt")
n3=$(grep -cx 3 "$TEST_TMP/pairs.txt")
echo "# compare on 20 seed pairs of the same configuration: exit 0 in $n0, exit 3 in $n3"
check "every seed pair compared (exit 0 or 3, no error)" [ $((n0 + n3)) = 20 ]
check "false positives: exit 0 in at least 19 of 20 seed pairs ($n0/20)" [ "$n0" -ge 19 ]
python3 - "$TEST_TMP" >"$TEST_TMP/verdicts.txt" <<'EOF2'
import json, sys
ok = True
for i in range(1, 21):
    d = json.load(open("%s/pair%d.json" % (sys.argv[1], i)))
    m = {x["metric"]: x for x in d["metrics"]}
    for k in ("specificity.mean", "specificity.share3"):
        ok &= m[k]["verdict"] in ("same", "better", "worse")
        ok &= m[k]["n_baseline"] >= 20 and m[k]["n_candidate"] >= 20
print("verdicts", ok)
EOF2
check "each pair's pooled metrics got a verdict over >= 20 units a side" grep -qx "verdicts True" "$TEST_TMP/verdicts.txt"

# half of the features' descriptions shuffled: each of the first half of the features whose
# descriptions name distinct tokens gets the next one's
python3 - "$TEST_TMP/feats.txt" >"$TEST_TMP/half.txt" <<'EOF2'
import re, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
tok = lambda d: re.match(r'the token "([^"]+)"', d).group(1)
half, seen = [], set()
for i, (f, d) in enumerate(rows):
    if tok(d) not in seen and len(half) < len(rows) // 2:
        half.append(i)
        seen.add(tok(d))
out = [d for f, d in rows]
for k, i in enumerate(half):
    out[i] = rows[half[(k + 1) % len(half)]][1]
for (f, d), o in zip(rows, out):
    print("%s\t%s" % (f, o))
EOF2
check "half of the descriptions shuffled, each to another token" [ "$(paste "$TEST_TMP/feats.txt" "$TEST_TMP/half.txt" | awk -F'\t' '$2 != $4' | wc -l)" = 4 ]
HALF=$TEST_TMP/half.db
cp "$BASE" "$HALF"
ev --db "$HALF" --quiet specificity --features "$TEST_TMP/half.txt" --per-interval 3 --intervals 3 "${GRADE[@]}" --seed 1 --tag half1
expect_rc 0 "the half-shuffled run (seed 1)"
ev --db "$HALF" --quiet specificity --features "$TEST_TMP/half.txt" --per-interval 3 --intervals 3 "${GRADE[@]}" --seed 2 --tag half2
expect_rc 0 "the half-shuffled run (seed 2)"
ev --db "$HALF" compare --baseline-db "$DB" --baseline s1 --candidate half1
expect_rc 3 "half the descriptions shuffled, same seed (paired): exit 3"
check "specificity.mean worse (paired)" grep -qE '^specificity.mean +up +[0-9]+ .* worse$' "$TEST_TMP/out"
ev --db "$HALF" compare --baseline-db "$DB" --baseline s1 --candidate half2
expect_rc 3 "half the descriptions shuffled, another seed (unpaired): exit 3"
check "specificity.mean worse (unpaired)" grep -qE '^specificity.mean .* worse$' "$TEST_TMP/out"
