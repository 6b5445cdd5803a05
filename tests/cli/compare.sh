# CLI tests for `evalrun compare`: exit 0 / 3 / 1 / 2, paired vs distribution comparisons,
# the numbers against values computed independently (tests/cli/reports/fixture.py and Python
# over the database), thresholds and metric selection, --baseline-db, --json, and two real
# specificity runs on stories260K + the demo SAE graded differently by the mock server.
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"

ev compare --help
expect_rc 0 "compare --help"
check "help names --baseline-db" out_has "--baseline-db"
ev compare --baseline 1
expect_rc 2 "no --candidate: usage error"
ev compare --baseline 1 --candidate 2 --threshold x
expect_rc 2 "--threshold x: usage error"
check "names the flag" err_has "--threshold"
ev compare --baseline 1 --candidate 2 --threshold=-1
expect_rc 2 "negative threshold: usage error"

DB=$TEST_TMP/fx.db
"$EVALRUN" --db "$DB" --quiet db init >/dev/null
REF=$(python3 "$ROOT/tests/cli/reports/fixture.py" "$DB")
ref() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$REF" "$1"; }
# jq-like: j FILE EXPR (python expression over the parsed document d)
j() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

ev --db "$DB" compare --baseline spec-a --candidate spec-a3
expect_rc 0 "identical scores: exit 0"
check "paired (same SAE)" out_has "same SAE: paired per item"
check "no regression line" out_has "no metric is worse than its threshold"

ev --db "$DB" compare --baseline spec-a --candidate spec-a2
expect_rc 3 "every activating score 1 lower: exit 3"
check "says which metric regressed" grep -qE '^specificity.mean .* worse$' "$TEST_TMP/out"
check "one-line error on stderr" err_one_line
check "error says a metric is worse" err_has "worse than"

ev --db "$DB" compare --baseline spec-a --candidate spec-a2 --json
expect_rc 3 "--json: exit 3 too"
cp "$TEST_TMP/out" "$TEST_TMP/j1.json"
WANT=$(python3 -c "print(round($(ref spec_mean_a2) - $(ref spec_mean_a), 9))")
check "diff = mean(candidate) - mean(baseline), computed by the fixture" [ "$(j "$TEST_TMP/j1.json" \
    "round([m for m in d['metrics'] if m['metric']=='specificity.mean'][0]['diff'], 9)")" = "$WANT" ]
check "baseline mean as the fixture computed it" [ "$(j "$TEST_TMP/j1.json" \
    "round([m for m in d['metrics'] if m['metric']=='specificity.mean'][0]['baseline'], 9)")" = \
    "$(python3 -c "print(round($(ref spec_mean_a), 9))")" ]
check "paired on every activating item" [ "$(j "$TEST_TMP/j1.json" \
    "[m for m in d['metrics'] if m['metric']=='specificity.mean'][0]['n_paired']")" = "$(ref n_act)" ]
check "the CI contains the difference and excludes 0" [ "$(j "$TEST_TMP/j1.json" \
    "all(m['ci_lo'] <= m['diff'] <= m['ci_hi'] < 0 for m in d['metrics'] if m['metric']=='specificity.mean')")" = True ]
check "regressed list" [ "$(j "$TEST_TMP/j1.json" "'specificity.mean' in d['regressed']")" = True ]
check "non-activating: 6 units < --min-n 20: n/a (too few)" [ "$(j "$TEST_TMP/j1.json" \
    "[m['verdict'] for m in d['metrics'] if m['metric']=='specificity.nonact'][0]")" = "n/a (too few)" ]
ev --db "$DB" compare --baseline spec-a --candidate spec-a2 --json --min-n 5
check "non-activating unchanged at --min-n 5: same" [ "$(j "$TEST_TMP/out" \
    "[m['verdict'] for m in d['metrics'] if m['metric']=='specificity.nonact'][0]")" = same ]
# the paired bootstrap checked against Python: resampling item indices with any generator,
# the percentile interval of a paired difference of -1 on 2/3 of items (and 0 or -1 on the
# rest) lies in [-1, -2/3]; ours must too
check "paired CI within the range of the per-item differences" [ "$(j "$TEST_TMP/j1.json" \
    "[(-1 <= m['ci_lo']) and (m['ci_hi'] <= 0) for m in d['metrics'] if m['metric']=='specificity.mean'][0]")" = True ]

ev --db "$DB" compare --baseline spec-a --candidate spec-a2 --json
check "reproducible: the same seed gives the same intervals" cmp -s "$TEST_TMP/out" "$TEST_TMP/j1.json"
ev --db "$DB" compare --baseline spec-a --candidate spec-a2 --json --seed 9
check "another seed, other intervals" bash -c "! cmp -s '$TEST_TMP/out' '$TEST_TMP/j1.json'"

ev --db "$DB" compare --baseline spec-a --candidate spec-a2 --threshold 2
expect_rc 0 "--threshold 2 (all metrics): no regression"
ev --db "$DB" compare --baseline spec-a --candidate spec-a2 --threshold specificity=2
expect_rc 0 "--threshold specificity=2 (prefix)"
ev --db "$DB" compare --baseline spec-a --candidate spec-a2 --threshold specificity.mean=2
expect_rc 3 "--threshold for one metric leaves the others"
check "specificity.mean no longer worse" bash -c "! grep -qE '^specificity.mean .* worse$' '$TEST_TMP/out'"
ev --db "$DB" compare --baseline spec-a --candidate spec-a2 --metric specificity.nonact
expect_rc 0 "--metric selects: only the unchanged metric"
check "only that metric in the table" [ "$(grep -c '^specificity\.' "$TEST_TMP/out")" = 1 ]
ev --db "$DB" compare --baseline spec-a --candidate spec-a2 --metric nosuch
expect_rc 2 "--metric unknown: usage error"
check "lists the metrics" err_has "specificity.mean"

ev --db "$DB" compare --baseline spec-a --candidate spec-b --json
expect_rc 0 "different SAEs"
check "not paired" [ "$(j "$TEST_TMP/out" "d['same_sae']")" = False ]
check "candidate mean of SAE B as the fixture computed it" [ "$(j "$TEST_TMP/out" \
    "round([m for m in d['metrics'] if m['metric']=='specificity.mean'][0]['candidate'], 9)")" = \
    "$(python3 -c "print(round($(ref spec_mean_b), 9))")" ]

# the baseline in another database file
cp "$DB" "$TEST_TMP/other.db"
ev --db "$DB" compare --baseline-db "$TEST_TMP/other.db" --baseline spec-a --candidate spec-a2
expect_rc 3 "--baseline-db"
ev --db "$DB" compare --baseline-db "$TEST_TMP/nope.db" --baseline spec-a --candidate spec-a2
expect_rc 1 "missing --baseline-db file: exit 1"
check "names the file" err_has "nope.db"

ev --db "$DB" compare --baseline spec-a --candidate attr
expect_rc 1 "different kinds: exit 1"
check "says the kinds" err_has "different kinds"
ev --db "$DB" compare --baseline spec-a --candidate no-such-tag
expect_rc 1 "unknown tag: exit 1"
check "names the tag" err_has "no-such-tag"
ev --db "$DB" compare --baseline 999 --candidate spec-a
expect_rc 1 "unknown id: exit 1"
ev --db "$DB" compare --baseline sweep --candidate sweep
expect_rc 1 "a kind without metrics: exit 1"

# ---- issue 17.1: --min-n, interval order, paired and unpaired columns, comparability
ev --db "$DB" compare --baseline spec-a --candidate spec-a2
check "6 units per interval < --min-n 20: n/a (too few)" \
    grep -qE '^specificity.interval.01 .* n/a \(too few\)$' "$TEST_TMP/out"
check "paired mode: an n_paired column" out_has "n_paired"
check "the run lines say who graded and how many parsed" \
    grep -qE '^baseline +run [0-9]+ \(spec-a\): graded by llm openai:mock; [0-9]+ parsed, 0 unparsed, 0 skipped' "$TEST_TMP/out"
check "intervals in order" [ "$(grep -oE '^specificity\.interval\.[0-9]+' "$TEST_TMP/out" | tr '\n' ' ')" = \
    "specificity.interval.01 specificity.interval.02 specificity.interval.03 specificity.interval.04 " ]
ev --db "$DB" compare --baseline spec-a --candidate spec-a2 --min-n 5
expect_rc 3 "--min-n 5: the intervals get verdicts"
check "interval 2 worse at --min-n 5" grep -qE '^specificity.interval.02 .* worse$' "$TEST_TMP/out"
ev --db "$DB" compare --baseline spec-a --candidate spec-a2 --min-n x
expect_rc 2 "--min-n x: usage error"
ev --db "$DB" compare --baseline spec-a --candidate spec-b
check "unpaired mode: each side's n" grep -qE '^metric +dir +n_b +baseline +n_c +candidate' "$TEST_TMP/out"
ev --db "$DB" compare --baseline spec-a --candidate spec-a2 --min-n 1000 --json
expect_rc 0 "--min-n 1000: nothing is worse"
check "json verdict n/a (too few)" [ "$(j "$TEST_TMP/out" \
    "[m['verdict'] for m in d['metrics'] if m['metric']=='specificity.mean'][0]")" = "n/a (too few)" ]

mismatch() { # mismatch NAME SQL: a copy of the fixture with SQL applied, as $TEST_TMP/NAME.db
    cp "$DB" "$TEST_TMP/$1.db"
    python3 -c "import sqlite3,sys; d=sqlite3.connect(sys.argv[1]); d.executescript(sys.argv[2]); d.commit()" \
        "$TEST_TMP/$1.db" "$2"
}
A3="(SELECT id FROM runs WHERE tag = 'spec-a3')"
mismatch grader "UPDATE grades SET grader_name = 'openai:other' WHERE run_id = $A3"
mismatch kind "UPDATE grades SET grader_kind = 'human', grader_name = 'carol' WHERE run_id = $A3"
mismatch tpl "UPDATE runs SET config_json = json_set(config_json, '\$.template_sha256', 'aaaaaaaaaaaaaaaaaa') WHERE tag = 'spec-a';
              UPDATE runs SET config_json = json_set(config_json, '\$.template_sha256', 'bbbbbbbbbbbbbbbbbb') WHERE tag = 'spec-a3'"
mismatch hook "UPDATE runs SET config_json = json_set(config_json, '\$.hook', 'blocks.1.hook_resid_post') WHERE tag = 'spec-a';
               UPDATE runs SET config_json = json_set(config_json, '\$.hook', 'blocks.2.hook_resid_post') WHERE tag = 'spec-a3'"
mismatch model "UPDATE runs SET config_json = json_set(config_json, '\$.model_hash', 'm1') WHERE tag = 'spec-a'"
mismatch feats "UPDATE runs SET config_json = json_set(config_json, '\$.features', json('[7,9]')) WHERE tag = 'spec-a';
                UPDATE runs SET config_json = json_set(config_json, '\$.features', json('[7,9,11]')) WHERE tag = 'spec-a3'"
mismatch per "UPDATE runs SET config_json = json_set(config_json, '\$.per_interval', 5) WHERE tag = 'spec-a3'"
for c in "grader:grader model" "kind:grader kind" "tpl:prompt template" "hook:SAE hook" "model:model" \
         "feats:features set" "per:per-interval count"; do
    name=${c%%:*} what=${c#*:}
    ev --db "$TEST_TMP/$name.db" compare --baseline spec-a --candidate spec-a3
    expect_rc 1 "runs differing in $what: refused"
    check "one line naming the $what" err_one_line
    check "the error names the $what" err_has "not comparable: $what"
    ev --db "$TEST_TMP/$name.db" compare --baseline spec-a --candidate spec-a3 --allow-mismatch
    expect_rc 0 "$what differs, --allow-mismatch: compared"
    check "warned on stderr ($what)" err_has "WARNING: comparing runs that are not comparable: $what"
    check "warned in the table ($what)" out_has "NOT COMPARABLE"
done
ev --db "$TEST_TMP/feats.db" compare --baseline spec-a --candidate spec-a3 --allow-mismatch --json
check "json lists the mismatches" [ "$(j "$TEST_TMP/out" "d['mismatches'][0].split(':')[0]")" = "features set" ]

# SAE metrics: a candidate whose L0 is 50% higher (relative threshold 10%) and FVU lower
python3 - "$DB" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rid = db.execute("INSERT INTO runs (kind, tag, status, started_ms, config_json, config_hash,"
                 " code_version, host, pid, sae_id) VALUES ('sae-metrics', 'metrics2', 'done',"
                 " 0, '{}', 'x', 't', 'h', 1, 2)").lastrowid
db.execute("INSERT INTO sae_metrics (run_id, sae_id, sae_hash, n_tokens, l0, fvu, dead_frac,"
           " ce_loss_score, created_ms) VALUES (?, 2, 'b', 4096, 18.75, 0.05, 0.05, 0.9, 0)",
           (rid,))
db.commit()
EOF
ev --db "$DB" compare --baseline metrics --candidate metrics2 --json
expect_rc 3 "sae-metrics: L0 up 50%: exit 3"
check "sae.l0 worse, sae.fvu better, dead_frac same" [ "$(j "$TEST_TMP/out" \
    "','.join(m['verdict'] for m in d['metrics'] if m['metric'] in ('sae.l0','sae.fvu','sae.dead_frac'))")" = worse,better,same ]
ev --db "$DB" compare --baseline metrics --candidate metrics2 --threshold sae.l0=0.6
expect_rc 0 "relative threshold 60% for L0: no regression"

ev --db "$DB" compare --baseline attr --candidate attr --json
expect_rc 0 "attribution vs itself"
check "pooled pearson as the fixture computed it" [ "$(j "$TEST_TMP/out" \
    "round(d['metrics'][0]['baseline'], 9)")" = "$(python3 -c "print(round($(ref attr_pearson), 9))")" ]
ev --db "$DB" compare --baseline compl --candidate compl --json
check "completeness coverage as computed" [ "$(j "$TEST_TMP/out" "d['metrics'][0]['baseline']")" = "$(ref coverage)" ]

# ---- real runs: the demo SAE's index, two specificity runs graded 3 and then 1 by the mock
BASE=$TEST_TMP/base.db
if ! build_index "$BASE"; then
    skip "compare real specificity runs" "$REASON"
    exit 0
fi
mapfile -t F < <(pick_features "$BASE" 2)
printf '%s\tthe word the\n%s\tpeople\n' "${F[0]}" "${F[1]}" >"$TEST_TMP/feats.txt"
start_mock
SPEC=(specificity --features "$TEST_TMP/feats.txt" --per-interval 2 --intervals 3 --seed 5)
cp "$BASE" "$TEST_TMP/r1.db"
cp "$BASE" "$TEST_TMP/r2.db"
script '{"rules": [{"match": "<context>\\n(?:(?!</context>)[\\s\\S])*\u27e6", "answer": "Score: 3"}], "answer": "Score: 0", "latency_ms": 0}'
ev --db "$TEST_TMP/r1.db" "${SPEC[@]}" "${GRADE[@]}" --tag good
expect_rc 0 "real run 1 (activating contexts scored 3)"
script '{"rules": [{"match": "<context>\\n(?:(?!</context>)[\\s\\S])*\u27e6", "answer": "Score: 1"}], "answer": "Score: 0", "latency_ms": 0}'
ev --db "$TEST_TMP/r2.db" "${SPEC[@]}" "${GRADE[@]}" --tag bad
expect_rc 0 "real run 2 (scored 1)"
ev --db "$TEST_TMP/r2.db" compare --baseline-db "$TEST_TMP/r1.db" --baseline good --candidate bad
expect_rc 0 "real runs: 12 activating items < --min-n 20: no verdict, exit 0"
check "says n/a (too few), not worse" grep -qE '^specificity.mean .* n/a \(too few\)$' "$TEST_TMP/out"
ev --db "$TEST_TMP/r2.db" compare --baseline-db "$TEST_TMP/r1.db" --baseline good --candidate bad --json --min-n 10
expect_rc 3 "real runs: the candidate regressed: exit 3"
N_ACT=$(sql "$TEST_TMP/r1.db" "SELECT count(*) FROM items WHERE kind = 'interval'")
check "paired on every activating item of the real runs (same SAE hash)" [ "$(j "$TEST_TMP/out" \
    "[m['n_paired'] for m in d['metrics'] if m['metric']=='specificity.mean'][0]")" = "$N_ACT" ]
check "diff is exactly -2" [ "$(j "$TEST_TMP/out" \
    "[m['diff'] for m in d['metrics'] if m['metric']=='specificity.mean'][0]")" = -2 ]
ev --db "$TEST_TMP/r1.db" compare --baseline-db "$TEST_TMP/r2.db" --baseline bad --candidate good --min-n 10
expect_rc 0 "the other way round: better, exit 0"
check "verdict better" grep -qE '^specificity.mean .* better$' "$TEST_TMP/out"

# ---- a new user's check (issue 17): the same configuration run with two seeds and compared
# must exit 0; the table shows n, the means and each interval in order; a paired row over a
# subset of the items says of how many (the paired means are over the common items only)
cp "$BASE" "$TEST_TMP/seeds.db"
script '{"rules": [{"match": "<context>\\n(?:(?!</context>)[\\s\\S])*\u27e6\\s*\\.\\s*\u27e7", "answer": "Score: 3"}, {"match": "<context>\\n(?:(?!</context>)[\\s\\S])*\u27e6", "answer": "Score: 1"}], "answer": "Score: 0", "latency_ms": 0}'
for s in 5 6; do
    ev --db "$TEST_TMP/seeds.db" specificity --features "$TEST_TMP/feats.txt" --per-interval 5 \
        --intervals 3 --seed $s --tag seed$s "${GRADE[@]}"
    expect_rc 0 "specificity with --seed $s"
done
ev --db "$TEST_TMP/seeds.db" compare --baseline seed5 --candidate seed6 --min-n 3 --json
expect_rc 0 "two seeds of the same configuration: exit 0"
cp "$TEST_TMP/out" "$TEST_TMP/seeds.json"
ev --db "$TEST_TMP/seeds.db" compare --baseline seed5 --candidate seed6 --min-n 3
expect_rc 0 "two seeds, text: exit 0"
check "two seeds: every row's n, means and interval as --json gives them, in order; a paired subset is named with its n" \
    python3 - "$TEST_TMP/out" "$TEST_TMP/seeds.json" "$TEST_TMP/seeds.db" <<'EOF'
import json, re, sqlite3, sys
text = open(sys.argv[1]).read(); d = json.load(open(sys.argv[2])); db = sqlite3.connect(sys.argv[3])
bad = []
def units(tag, kinds):
    return db.execute("SELECT count(DISTINCT i.item_key) FROM items i JOIN grades g ON g.run_id = i.run_id AND "
        "g.item_key = i.item_key AND g.parse_status = 'ok' JOIN runs r ON r.id = i.run_id WHERE r.tag = ? AND "
        "i.kind IN (%s)" % ",".join("'%s'" % k for k in kinds), (tag,)).fetchone()[0]
for m in d["metrics"]:
    line = [l for l in text.splitlines() if l.startswith(m["metric"] + " ")]
    if len(line) != 1: bad.append(("no row", m["metric"])); continue
    f = line[0].split()
    np = str(m["n_paired"]) if m["paired"] else "%d/%d*" % (m["n_baseline"], m["n_candidate"])
    ci = re.search(r"\[(-?[0-9.]+), (-?[0-9.]+)\]", line[0])
    if f[2] != np or abs(float(f[3]) - m["baseline"]) > 5e-5 or abs(float(f[4]) - m["candidate"]) > 5e-5: bad.append(("row", line, m))
    if not ci or not (float(ci.group(1)) <= round(m["diff"], 4) <= float(ci.group(2))): bad.append(("ci order", line))
    if m["paired"] and (m["n_paired"] < m["n_baseline"] or m["n_paired"] < m["n_candidate"]) and \
            "%s %d of %d/%d;" % (m["metric"], m["n_paired"], m["n_baseline"], m["n_candidate"]) not in text:
        bad.append(("subset not named", m["metric"]))
mean = [m for m in d["metrics"] if m["metric"] == "specificity.mean"][0]
if (mean["n_baseline"], mean["n_candidate"]) != (units("seed5", ["interval"]), units("seed6", ["interval"])): bad.append(("n", mean))
if not (mean["paired"] and mean["n_paired"] < mean["n_baseline"]): bad.append(("the fixture should pair a subset", mean))
print(bad) if bad else None
sys.exit(1 if bad else 0)
EOF
