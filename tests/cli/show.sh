# CLI tests for the provenance of the feature card (`evalrun show FEATURE`, issue 17.4): the
# model's and SAE's sha256, the hook, the index's run, corpus, seed and date, and for each run
# that scored the feature its grader kind and model, template hash, seed and date, in every
# format (text, md, json). References: the model file's sha256 by Python's hashlib, the rest
# read by Python's sqlite3 from the database (runs, saes, feature_index_runs) and the dates
# formatted from runs.started_ms / finished_ms by Python's time.gmtime.
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"

DB=$TEST_TMP/show.db
if ! build_index "$DB"; then
    skip "feature card provenance" "$REASON"
    exit 0
fi
F=$(pick_features "$DB" 1)
printf '%s\tthe letter a\n' "$F" >"$TEST_TMP/feats.txt"
start_mock
script '{"answer": "Score: 2", "latency_ms": 0}'
ev --db "$DB" specificity --features "$TEST_TMP/feats.txt" --per-interval 2 --intervals 2 \
    --seed 5 --tag spec "${GRADE[@]}"
expect_rc 0 "a graded specificity run of feature $F"

ev --db "$DB" show "$F" --format json
expect_rc 0 "show $F --format json"
cp "$TEST_TMP/out" "$TEST_TMP/card.json"
check "json provenance: model and SAE sha256, hook, index run/corpus/seed/date, the run's grader, template, seed and date" \
    python3 - "$TEST_TMP/card.json" "$DB" "$ROOT/evals/models/stories260K/stories260K.bin" <<'EOF'
import hashlib, json, sqlite3, sys, time
card = json.load(open(sys.argv[1])); db = sqlite3.connect(sys.argv[2])
p = card["provenance"]
def fmt(ms): return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms // 1000))
def date(rid):
    s, f = db.execute("SELECT started_ms, finished_ms FROM runs WHERE id = ?", (rid,)).fetchone()
    return "%s to %s" % (fmt(s), fmt(f))
bad = []
want_model = hashlib.sha256(open(sys.argv[3], "rb").read()).hexdigest()
if p["model"]["sha256"] != want_model: bad.append(("model", p["model"], want_model))
(sae_hash,) = db.execute("SELECT hash FROM saes").fetchone()
if p["sae"]["sha256"] != sae_hash: bad.append(("sae", p["sae"], sae_hash))
if p["hook"] != "blocks.2.hook_resid_post": bad.append(("hook", p["hook"]))
irun, itok = db.execute("SELECT run_id, n_tokens FROM feature_index_runs").fetchone()
iseed, icfg = db.execute("SELECT seed, config_json FROM runs WHERE id = ?", (irun,)).fetchone()
ix = p["index"]
want = {"run_id": irun, "tokens": itok, "seed": str(iseed), "date": date(irun),
        "corpus": "stories sampled from the model (seed %d)" % iseed,
        "corpus_sha256": json.loads(icfg)["corpus_hash"]}
for k, v in want.items():
    if ix.get(k) != v: bad.append(("index", k, ix.get(k), v))
srun, sseed, scfg = db.execute("SELECT id, seed, config_json FROM runs WHERE tag = 'spec'").fetchone()
tpl = json.loads(scfg).get("template_sha256")
runs = {r["run_id"]: r for r in p["runs"]}
r = runs.get(srun)
n_ok = db.execute("SELECT count(*) FROM grades WHERE run_id = ? AND parse_status = 'ok'",
                  (srun,)).fetchone()[0]
if r is None: bad.append(("no run", srun, p["runs"]))
else:
    if r["kind"] != "specificity": bad.append(("kind", r))
    if not r["grader"].startswith("llm openai:mock; %d parsed, 0 unparsed" % n_ok):
        bad.append(("grader", r["grader"], n_ok))
    if r["seed"] != str(sseed) or sseed != 5: bad.append(("seed", r["seed"], sseed))
    if r["date"] != date(srun): bad.append(("date", r["date"], date(srun)))
    if not tpl or r["template"] != "sha256 " + tpl: bad.append(("template", r["template"], tpl))
# every run a score names is in the provenance
for s in card["scores"]:
    if s["run_id"] not in runs: bad.append(("score's run missing", s))
print(bad) if bad else None
sys.exit(1 if bad else 0)
EOF

SRUN=$(sql "$DB" "SELECT id FROM runs WHERE tag = 'spec'")
ev --db "$DB" show "$F"
expect_rc 0 "show $F (text)"
check "text card has a provenance block naming the SAE's sha256" bash -c \
    "grep -q '── provenance' '$TEST_TMP/out' && tr -d '\n' <'$TEST_TMP/out' | tr -s ' ' | grep -qF 'sha256 $(sql "$DB" "SELECT hash FROM saes")'"
check "text card: the specificity run's grader, seed and template" bash -c \
    "tr -d '\n' <'$TEST_TMP/out' | tr -s ' ' | grep -qE 'run $SRUN \(specificity\): grader llm openai:mock; [0-9]+ parsed.*; template sha256 [0-9a-f]{64}; seed 5; '"
python3 - "$TEST_TMP/out" <<'EOF' && pass "no line of the card wider than 80 columns" || fail "no line of the card wider than 80 columns" "too wide"
import sys, unicodedata
bad = [l for l in open(sys.argv[1], encoding="utf-8")
       if sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in l.rstrip("\n")) > 80]
sys.exit(1 if bad else 0)
EOF

ev --db "$DB" show "$F" --format md
expect_rc 0 "show $F --format md"
check "markdown card: provenance table with the index corpus and the run" bash -c \
    "grep -qF '### Provenance' '$TEST_TMP/out' && grep -qE '^\| index \| run [0-9]+: [0-9]+ tokens of stories sampled from the model \(seed 0\)' '$TEST_TMP/out' && grep -qE '^\| run $SRUN \(specificity\) \| grader llm openai:mock' '$TEST_TMP/out'"

# ---- the description's origin (issue 17): written by an explain run, the card names that run
# and gives its provenance like any score's (grader and its parsed/unparsed counts, template,
# seed, date); the explain run's report lists its answers
script '{"rules": [{"match": "<examples>", "answer": "Description: the letter b"}], "latency_ms": 0}'
printf '%s\n' "$F" >"$TEST_TMP/ex.txt"
ev --db "$DB" explain --features "$TEST_TMP/ex.txt" --force --seed 7 --tag ex "${GRADE[@]}"
expect_rc 0 "explain $F (replacing the user's description)"
XRUN=$(sql "$DB" "SELECT id FROM runs WHERE tag = 'ex'")
ev --db "$DB" show "$F" --format json
check "json: the description names its explain run, whose provenance is in the card" \
    python3 - "$TEST_TMP/out" "$DB" "$ROOT/prompts/explainer.txt" "$XRUN" <<'EOF'
import hashlib, json, sqlite3, sys, time
card = json.load(open(sys.argv[1])); db = sqlite3.connect(sys.argv[2]); xrun = int(sys.argv[4])
bad = []
d = card["descriptions"][0]
if d.get("text") != "the letter b" or d.get("run_id") != xrun: bad.append(("description", d))
runs = {r["run_id"]: r for r in card["provenance"]["runs"]}
r = runs.get(xrun)
tpl = hashlib.sha256(open(sys.argv[3], "rb").read()).hexdigest()
s, f = db.execute("SELECT started_ms, finished_ms FROM runs WHERE id = ?", (xrun,)).fetchone()
fmt = lambda ms: time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms // 1000))
if r is None: bad.append(("no explain run", card["provenance"]["runs"]))
else:
    if r["kind"] != "explain": bad.append(("kind", r))
    if not r["grader"].startswith("llm openai:mock; 1 parsed, 0 unparsed, 0 skipped, 0 failed"):
        bad.append(("grader", r["grader"]))
    if r["template"] != "sha256 " + tpl: bad.append(("template", r["template"], tpl))
    if r["seed"] != "7": bad.append(("seed", r["seed"]))
    if r["date"] != "%s to %s" % (fmt(s), fmt(f)): bad.append(("date", r["date"]))
print(bad) if bad else None
sys.exit(1 if bad else 0)
EOF
ev --db "$DB" show "$F"
check "text card: the description's source names the explain run" \
    out_has "[explainer:openai:mock, explain run $XRUN]"
check "text card: the explain run's provenance line with its counts" bash -c \
    "tr -d '\n' <'$TEST_TMP/out' | tr -s ' ' | grep -qF 'run $XRUN (explain): grader llm openai:mock; 1 parsed, 0 unparsed'"
# a second explain run whose answer is only a score: counted unparsed, the reply in its report
script '{"rules": [{"match": "<examples>", "answer": "Score: 3"}], "latency_ms": 0}'
ev --db "$DB" explain --features "$TEST_TMP/ex.txt" --force --seed 8 --tag ex2 "${GRADE[@]}"
expect_rc 0 "explain again, unusable answers"
ev --db "$DB" report --run ex2 --format csv --table explainer_answers
check "explain report: the answer is unparsed, with the reason, the reply, and the description kept" \
    bash -c "grep -qF '$F,openai:mock,unparsed,\"the answer was only a score' '$TEST_TMP/out' && grep -qF \"run $XRUN's,Score: 3\" '$TEST_TMP/out'"
ev --db "$DB" report --run ex2 --format md
check "explain report provenance: 0 parsed, 1 unparsed" \
    out_has "| grader | llm openai:mock; 0 parsed, 1 unparsed, 0 skipped, 0 failed |"
ev --db "$DB" report --run ex --format csv --table explainer_answers
check "the first run's report: described, still the stored description" \
    grep -qF "$F,openai:mock,described,the letter b,this run's," "$TEST_TMP/out"
ev --db "$DB" show "$F"
check "the card keeps the first run's description and names that run" \
    out_has "\"the letter b\" [explainer:openai:mock, explain run $XRUN]"

# ---- a score is never shown alone (issue 17.6): per run the card scores activating and
# non-activating contexts apart, each with n, its 95% interval and the unparsed and skipped
# counts, against Python over the database
script '{"rules": [{"match": "<context>\\n(?:(?!</context>)[\\s\\S])*\u27e6", "answer": "Score: 3"}], "answer": "no idea", "latency_ms": 0}'
ev --db "$DB" specificity --features "$TEST_TMP/feats.txt" --per-interval 3 --intervals 2 \
    --seed 6 --tag spec3 "${GRADE[@]}"
expect_rc 0 "specificity: activating contexts scored 3, non-activating ones unparsed"
ev --db "$DB" show "$F" --format json
check "json scores: per item kind, n, mean, ci95, unparsed and skipped as Python computes them" \
    python3 - "$TEST_TMP/out" "$DB" <<'EOF'
import json, math, sqlite3, sys
card = json.load(open(sys.argv[1])); db = sqlite3.connect(sys.argv[2])
label = {"interval": "activating contexts", "nonactivating": "non-activating contexts"}
want = {}
for rid, kind, sc, st in db.execute("SELECT g.run_id, i.kind, g.score, g.parse_status FROM grades g JOIN items i ON "
        "i.run_id = g.run_id AND i.item_key = g.item_key JOIN runs r ON r.id = g.run_id WHERE r.kind = 'specificity'"):
    w = want.setdefault((rid, label[kind]), {"v": [], "unparsed": 0, "skipped": 0})
    if sc is not None: w["v"].append(sc)
    elif st in ("unparsed", "skipped"): w[st] += 1
got = {(s["run_id"], s["items"]): s for s in card["scores"] if s["kind"] == "specificity"}
bad = [] if set(got) == set(want) else [("keys", sorted(got), sorted(want))]
for k, w in want.items():
    s = got.get(k); v = w["v"]; n = len(v)
    if s is None: continue
    m = sum(v) / n if n else None
    h = 1.96 * math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1)) / math.sqrt(n) if n >= 2 else None
    ok = s["n"] == n and s["unparsed"] == w["unparsed"] and s["skipped"] == w["skipped"]
    ok = ok and (m is None and s["mean"] is None or m is not None and abs(s["mean"] - m) < 1e-9)
    ok = ok and (h is None and s["ci95"] is None or h is not None and abs(s["ci95"] - h) < 1e-9)
    if not ok: bad.append((k, s, w))
spec3 = db.execute("SELECT id FROM runs WHERE tag = 'spec3'").fetchone()[0]
if not (got.get((spec3, "activating contexts"), {}).get("mean") == 3 and
        got.get((spec3, "non-activating contexts"), {}).get("unparsed", 0) > 0): bad.append(("spec3", got))
print(bad) if bad else None
sys.exit(1 if bad else 0)
EOF
ev --db "$DB" show "$F"
N3=$(sql "$DB" "SELECT count(*) FROM grades g JOIN items i ON i.run_id = g.run_id AND i.item_key = g.item_key
    WHERE g.run_id = (SELECT id FROM runs WHERE tag = 'spec3') AND i.kind = 'nonactivating' AND g.parse_status = 'unparsed'")
check "text card: the unparsed non-activating contexts are counted, not a bare '-'" bash -c \
    "tr -d '\n' <'$TEST_TMP/out' | tr -s ' ' | grep -qF 'non-activating contexts: mean - (no interval below 2), n 0; $N3 unparsed, 0 skipped'"
