# CLI tests for controls on sharded runs (issue 17.2 with issue 6's shards): specificity,
# completeness and autointerp with --control, each run as 2 shards into 2 databases and
# folded by `evalrun merge`, still show every control's score and the difference with its
# interval in `evalrun report`. References: the same command run unsharded into one database
# (its report's Controls rows must be the merged one's, run ids aside), and Python over the
# merged database for the scores and their n.
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"

BASE=$TEST_TMP/base.db
if ! build_index "$BASE"; then
    skip "controls on sharded runs" "$REASON"
    exit 0
fi
token_descriptions "$BASE" 4 "$TEST_TMP/feats.txt"
start_mock
for d in s0 s1 u; do cp "$BASE" "$TEST_TMP/$d.db"; done

# sharded K/2 into sK.db and unsharded into u.db: run NAME ARGS...
run() {
    local name=$1; shift
    for k in 0 1; do
        ev --db "$TEST_TMP/s$k.db" "$@" "${GRADE[@]}" --shard $k/2
        expect_rc 0 "$name shard $k/2 with its controls"
    done
    ev --db "$TEST_TMP/u.db" "$@" "${GRADE[@]}"
    expect_rc 0 "$name unsharded with its controls"
}
script "$TOKEN_RULES"
run specificity specificity --features "$TEST_TMP/feats.txt" --per-interval 3 --intervals 3 \
    --seed 4 --tag spec --control shuffled,random-sae
script '{"rules": [{"match": "<examples>[\\s\\S]*?\u27e6\\s*([^\u27e7\\s]+)\\s*\u27e7", "answer": "Description: the token \"\\1\""},
                   {"match": "the token \"(a|the)\"", "answer": "no"}], "answer": "yes", "latency_ms": 0}'
run completeness completeness --group stories --seed 4 --tag comp --control random-sae
script '{"judge": {"word": "Lily", "format": "numbers"}, "latency_ms": 0}'
run autointerp autointerp --protocol saebench --latents 4 --tokens 8192 --seed 4 --tag ai \
    --out "$TEST_TMP/ai.json" --control random-sae

ev --db "$TEST_TMP/m.db" merge "$TEST_TMP/s0.db" "$TEST_TMP/s1.db"
expect_rc 0 "merge of the two shard databases (runs and their controls)"
check "merged: every run and control done, shard 0/1" [ "$(sql "$TEST_TMP/m.db" "SELECT count(*) FROM runs
    WHERE tag IN ('spec', 'spec.shuffled', 'spec.random-sae', 'comp', 'comp.random-sae', 'ai', 'ai.random-sae')
    AND status = 'done' AND shard_k = 0 AND shard_n = 1")" = 7 ]

# controls rows of a report, run ids aside: one line per row
rows() {
    "$EVALRUN" --db "$1" report --run "$2" --format json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
for s in d["sections"]:
    for t in s["tables"]:
        if t["name"] == "controls":
            i = t["columns"].index("control run")
            for r in t["rows"]: print("|".join(str(c) for j, c in enumerate(r) if j != i))'
}
for tag in spec comp ai; do
    rows "$TEST_TMP/m.db" $tag >"$TEST_TMP/m.$tag"
    rows "$TEST_TMP/u.db" $tag >"$TEST_TMP/u.$tag"
    check "report of merged $tag: a Controls table" [ -s "$TEST_TMP/m.$tag" ]
    check "report of merged $tag: the same Controls rows as the unsharded run" \
        cmp -s "$TEST_TMP/m.$tag" "$TEST_TMP/u.$tag"
done
check "spec: both controls, six metrics each" [ "$(wc -l <"$TEST_TMP/m.spec")" = 12 ]
check "comp: the coverage row" grep -q "^random-sae|completeness.coverage|" "$TEST_TMP/m.comp"
check "ai: detection and fuzzing rows" bash -c "grep -q '^random-sae|autointerp.detection|' '$TEST_TMP/m.ai'"

# the merged specificity.mean rows against Python over the merged database
check "merged spec: score, control score, n and diff as Python computes them" \
    python3 - "$TEST_TMP/m.db" "$TEST_TMP/m.spec" <<'EOF2'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
def mean(tag):
    v = [s for (s,) in db.execute("SELECT g.score FROM grades g JOIN items i ON i.run_id = g.run_id"
         " AND i.item_key = g.item_key JOIN runs r ON r.id = g.run_id WHERE r.tag = ? AND"
         " i.kind = 'interval' AND g.parse_status = 'ok'", (tag,))]
    return sum(v) / len(v), len(v)
rows = {tuple(l.split("|")[:2]): l.rstrip("\n").split("|") for l in open(sys.argv[2])}
a, na = mean("spec")
ok = True
for ctl in ("random-sae", "shuffled"):
    b, nb = mean("spec." + ctl)
    r = rows[(ctl, "specificity.mean")]
    n, score, n_ctl, cscore, diff = int(r[2]), float(r[3]), int(r[4]), float(r[5]), float(r[6])
    ok &= n == na and n_ctl == nb and abs(score - a) < 1e-4 and abs(cscore - b) < 1e-4 \
          and abs(diff - (a - b)) < 1e-4 and float(r[7]) <= diff <= float(r[8])
sys.exit(0 if ok and na == 36 else 1)
EOF2

# a control of another evaluation among the shards is still refused, naming it
cp "$TEST_TMP/s1.db" "$TEST_TMP/x1.db"
python3 -c 'import sqlite3,sys; d=sqlite3.connect(sys.argv[1]); d.execute("UPDATE runs SET config_json = json_set(config_json, \"$.control.of\", \"other\") WHERE tag = \"spec.shuffled\""); d.commit()' "$TEST_TMP/x1.db"
ev --db "$TEST_TMP/x.db" merge "$TEST_TMP/s0.db" "$TEST_TMP/x1.db"
expect_rc 1 "a shard whose control belongs to another evaluation: exit 1"
check "named, nothing merged" err_has "x1.db: its specificity run (a control) belongs to another evaluation"
