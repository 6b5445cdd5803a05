# CLI tests for `evalrun autointerp` against the local mock API server (over loopback):
#   - a judge that always answers "None" / all zeros: every latent exactly 10/14 (saebench),
#     balanced accuracy exactly 0.5 (delphi);
#   - a judge that fires when the word "Lily" is in the text scores near 1 on a latent built
#     to fire exactly on the token "Lily" (tests/cli/autointerp/word_sae.py: a 2-latent SAE at
#     blocks.0.hook_resid_pre whose latent 1 is dead), for detection, fuzzing and simulation,
#     and AUC from logprobs;
#   - unparseable answers and a window number that does not exist: stored, counted, no score;
#   - a SIGKILL mid-run resumes without asking a stored prompt again; a rerun asks nothing
#     and prints the same numbers; --seeds spread;
#   - bad input (exit 2 / 1 with the message), dead latents named, more latents than alive;
#   - the --out JSON (and sae-metrics --out) validated against docs/schemas/.
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"

VALIDATE=$ROOT/tests/cli/autointerp/validate.py
MODEL=$ROOT/evals/models/stories260K/stories260K.bin
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3 # Debian's, with python3-jsonschema
valid() { "$PY" "$VALIDATE" "$ROOT/docs/schemas/$1.schema.json" "$2" >"$TEST_TMP/val" 2>&1; }
# validate.py runs jsonschema too when it is installed (optional): say so when it is not
need jsonschema || skip "the JSON exports are checked by jsonschema as well" "$REASON"

# ---- usage
ev autointerp --help
expect_rc 0 "autointerp --help"
check "help names the protocols" out_has "saebench|delphi"
ev autointerp --latents 3
expect_rc 2 "no --protocol: usage error"
ev autointerp --protocol openai
expect_rc 2 "unknown protocol: usage error"
check "names the protocol" err_has "unknown protocol 'openai'"
ev autointerp --protocol delphi --scorers detection,guessing
expect_rc 2 "unknown scorer: usage error"
check "names the scorer" err_has "unknown scorer 'guessing'"
ev autointerp --protocol saebench --scorers fuzzing
expect_rc 2 "fuzzing under saebench: usage error"
ev autointerp --protocol delphi --negatives hard
expect_rc 2 "unknown --negatives: usage error"
ev autointerp --protocol saebench --latents 0
expect_rc 2 "--latents 0: usage error"

if [ ! -f "$SAE/cfg.json" ] || [ ! -f "$MODEL" ]; then
    skip "autointerp end-to-end" "no demo SAE or model"
    exit 0
fi
WORD=$TEST_TMP/word_sae
if ! python3 "$ROOT/tests/cli/autointerp/word_sae.py" "$MODEL" 317 "$WORD" >"$TEST_TMP/ws" 2>&1; then
    fail "word SAE built" "$(cat "$TEST_TMP/ws")"
    exit 0
fi
pass "a latent that fires exactly on the token 'Lily' built"
start_mock
DB=$TEST_TMP/a.db
SB=(autointerp --protocol saebench --latents 4 --tokens 8192 --seed 3)

# ---- the always-"None" judge: exactly 10/14 for every latent
script '{"answer": "None"}'
ev --db "$DB" "${SB[@]}" "${GRADE[@]}" --out "$TEST_TMP/none.json"
expect_rc 0 "saebench with a judge that answers None"
NS=$(sql "$DB" "SELECT count(*) FROM autointerp_latents WHERE status = 'ok'")
check "score 0.7143 = 10/14 over the $NS scored latents, beside the chance floor" \
    grep -qE "^detection +autointerp_score +0\.7143 +\[0\.7143, 0\.7143\] +0\.7143 +$NS +0 latents" \
    "$TEST_TMP/out"
check "a latent with too few windows is skipped with its reason stored" [ "$(sql "$DB" "SELECT
    count(*) FROM autointerp_latents WHERE status = 'ok' OR (status = 'skipped' AND reason <> '')")" = 4 ]
check "every latent's score is exactly 10/14" python3 - "$TEST_TMP/none.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
u = d["eval_result_unstructured"]
assert len(u) >= 2, u.keys()
for k, r in u.items():
    assert r["score"] == 10 / 14, (k, r["score"])
    assert r["predictions"] == [] and len(r["correct seqs"]) == 4, r
m = d["eval_result_metrics"]["autointerp"]
assert m["autointerp_score"] == 10 / 14 and m["autointerp_std_dev"] == 0
EOF
check "the judge saw 14 numbered windows per latent, 4 of them activating" [ "$(sql "$DB" "SELECT
    count(*) / $NS, sum(label) / $NS FROM autointerp_samples WHERE scorer = 'detection'")" = "14|4.0" ]
check "random windows were checked to be non-activating (max <= 1% of the latent's max)" [ \
    "$(sql "$DB" "SELECT count(*), sum(s.max_act > 0.01 * l.max_act) FROM autointerp_samples s
     JOIN autointerp_latents l USING (run_id, seed, feature_idx) WHERE s.kind = 'random'")" = "$((10 * NS))|0" ]
valid saebench_autointerp "$TEST_TMP/none.json"
VRC=$?
check "saebench JSON valid against its schema ($(cat "$TEST_TMP/val"))" [ $VRC -eq 0 ]
check "SAEBench shape: eval_result_details empty, envelope fields null" python3 - "$TEST_TMP/none.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["eval_type_id"] == "autointerp" and d["eval_result_details"] == []
for k in ("sae_bench_commit_hash", "sae_lens_id", "sae_lens_release_id", "sae_lens_version"):
    assert d[k] is None
assert d["sae_cfg_dict"]["d_sae"] == 1024 and isinstance(d["datetime_epoch_millis"], int)
EOF
python3 - "$TEST_TMP/none.json" "$TEST_TMP/bad.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
d["eval_result_details"] = [{"latent": 1}]
del d["sae_lens_id"]
json.dump(d, open(sys.argv[2], "w"))
EOF
valid saebench_autointerp "$TEST_TMP/bad.json"
VRC=$?
check "the validators reject a non-empty eval_result_details and a missing field" [ $VRC -ne 0 ]

# ---- rerun: no request, the same numbers
grep -vE '^(autointerp|requests)' "$TEST_TMP/out" >"$TEST_TMP/first"
script '{"answer": "None"}'
ev --db "$DB" "${SB[@]}" "${GRADE[@]}"
expect_rc 0 "rerun"
check "rerun of finished work sends no request at all" [ "$(requests)" = 0 ]
grep -vE '^(autointerp|requests)' "$TEST_TMP/out" >"$TEST_TMP/second"
check "rerun prints the same numbers" cmp -s "$TEST_TMP/first" "$TEST_TMP/second"
check "the table counts no request" out_has "requests 0 ("

# ---- unparseable answers and a window that does not exist: stored, counted, never 0
script '{"answer": "Hard to say; maybe some of them."}'
ev --db "$DB" "${SB[@]}" --seed 4 "${GRADE[@]}" --out "$TEST_TMP/unp.json"
expect_rc 1 "a judge whose answers all do not parse: exit 1 after the table (issue 17.6)"
check "says all were unparsed, with one raw reply" \
    grep -qE 'all [0-9]+ judge answers were unparsed.*"Hard to say; maybe some of them\."' "$TEST_TMP/err"
NU=$(sql "$DB" "SELECT count(*) FROM autointerp_prompts WHERE seed = 4")
check "all $NU judged latents counted as parse failures, no score" \
    grep -qE "^detection +autointerp_score +- +\[ +-, +-\] +- +0 +$NU latents" "$TEST_TMP/out"
check "answers stored with status unparsed" [ "$(sql "$DB" "SELECT count(*) FROM autointerp_prompts
    WHERE seed = 4 AND parse_status = 'unparsed' AND raw_answer LIKE 'Hard to say%'")" = "$NU" ]
check "no prediction stored for them" [ "$(sql "$DB" "SELECT count(prediction) FROM
    autointerp_samples WHERE seed = 4")" = 0 ]
check "the JSON has score null (never 0) and parse_failures 4" python3 - "$TEST_TMP/unp.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert all(r["score"] is None and r["parse_status"] == "unparsed"
           for r in d["eval_result_unstructured"].values())
m = d["eval_result_metrics"]["autointerp"]
assert m["autointerp_score"] is None and m["parse_failures"] >= 2 and m["latents_scored"] == 0
EOF
script '{"rules": [{"match": "<sequences>", "answer": "3, 15"}], "answer": "Description: x"}'
ev --db "$DB" "${SB[@]}" --seed 5 "${GRADE[@]}"
check "a window number that does not exist (15 of 14) is a stored parse failure" \
    [ "$(sql "$DB" "SELECT count(*) FROM autointerp_prompts WHERE seed = 5 AND
         parse_status = 'unparsed' AND raw_answer = '3, 15'")" -ge 2 ]

LONG=$(printf 'x%.0s' $(seq 500))
script '{"rules": [{"match": "<examples>", "answer": "'"$LONG"'"}], "answer": "None"}'
ev --db "$DB" "${SB[@]}" --seed 6 "${GRADE[@]}" --out "$TEST_TMP/unexp.json"
expect_rc 1 "an explainer whose answers all do not parse: exit 1 (issue 17.6)"
check "says the explainer's answers were unparsed" err_has "explainer answers were unparsed"
NE=$(sql "$DB" "SELECT count(*) FROM autointerp_latents WHERE seed = 6 AND
    status = 'explanation_unparsed' AND expl_raw = '$LONG'")
NK=$(sql "$DB" "SELECT count(*) FROM autointerp_latents WHERE seed = 6 AND status = 'skipped'")
check "every latent not skipped has its unparseable explainer answer stored" \
    [ "$NE" -gt 0 -a $((NE + NK)) = 4 ]
check "latents without an explanation are counted" \
    out_has "($NK skipped: too few windows; $NE without an explanation)"
check "they are in the JSON with no score" python3 - "$TEST_TMP/unexp.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
u = d["eval_result_unstructured"]
assert u and all(r["score"] is None and r["parse_status"] == "explanation_unparsed"
                 for r in u.values()), u
EOF

# a score-only explainer answer is asked once more with the parser's message (issue 17.6)
RETRY='Your previous answer could not be used: '
script '{"rules": [{"match": "previous answer could not be used", "answer": "Description: fixed on the second ask"}, {"match": "<examples>", "answer": "Score: 3"}], "answer": "None"}'
ev --db "$DB" "${SB[@]}" --seed 7 "${GRADE[@]}"
NX=$(sql "$DB" "SELECT count(*) FROM autointerp_latents WHERE seed = 7 AND status != 'skipped'")
check "the explainer's re-ask carries the parser's message and the first answer" python3 - "$LOG" "$RETRY" "$NX" <<'EOF'
import json, sys
user = lambda r: [m for m in r["body"]["messages"] if m["role"] == "user"][-1]["content"]
asks = [user(r) for r in map(json.loads, open(sys.argv[1])) if r.get("body") and sys.argv[2] in user(r)]
want = sys.argv[2] + "the answer was only a score ('Score: 3'), not a description."
sys.exit(0 if int(sys.argv[3]) > 0 and len(asks) == int(sys.argv[3]) and
         all(want in a and "<previous_answer>\nScore: 3\n</previous_answer>" in a for a in asks) else 1)
EOF
check "the re-ask's explanations are the ones scored" [ "$(sql "$DB" "SELECT count(*) FROM
    autointerp_latents WHERE seed = 7 AND explanation = 'fixed on the second ask'")" = "$NX" ]

# ---- kill and resume
script '{"answer": "None", "latency_ms": 150}'
"$EVALRUN" --db "$TEST_TMP/k.db" "${SB[@]}" --latents 8 "${GRADE[@]}" --concurrency 1 \
    >"$TEST_TMP/kout" 2>"$TEST_TMP/kerr" &
KPID=$!
# up to 2 min: the corpus pass comes first, and is slow under ASan on a loaded machine
for _ in $(seq 2400); do [ "$(requests)" -ge 10 ] && break; sleep 0.05; done
kill -9 $KPID 2>/dev/null; wait $KPID 2>/dev/null
python3 - "$TEST_TMP/k.db" "$TEST_TMP/stored.json" >"$TEST_TMP/nstored" <<'EOF'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
s = [r[0] for r in db.execute("SELECT expl_prompt FROM autointerp_latents WHERE status = 'ok'")]
s += [r[0] for r in db.execute("SELECT prompt FROM autointerp_prompts WHERE parse_status IN "
                               "('ok', 'unparsed')")]
json.dump(s, open(sys.argv[2], "w"))
print(len(s))
EOF
check "the killed run had stored some answers ($(cat "$TEST_TMP/nstored"))" \
    [ "$(cat "$TEST_TMP/nstored")" -gt 0 ]
script '{"answer": "None"}'
ev --db "$TEST_TMP/k.db" "${SB[@]}" --latents 8 "${GRADE[@]}" --concurrency 1
expect_rc 0 "the rerun after SIGKILL"
check "it resumed the run" err_has "resuming run"
check "it asked nothing that was stored before the kill" python3 - "$LOG" "$TEST_TMP/stored.json" <<'EOF'
import json, sys
asked = [json.loads(l)["body"]["messages"][-1]["content"] for l in open(sys.argv[1])]
stored = set(json.load(open(sys.argv[2])))
dup = [a for a in asked if a in stored]
assert len(asked) > 1 and not dup, "%d asked, %d of them again" % (len(asked), len(dup))
EOF
check "all its latents scored 10/14 in the end" \
    grep -qE '^detection +autointerp_score +0\.7143 .* [1-8] +0 latents' "$TEST_TMP/out"

# ---- shards and merge: the merged database gives the whole run's numbers with no new request
script '{"answer": "None"}'
for k in 0 1; do
    ev --db "$TEST_TMP/sh$k.db" "${SB[@]}" --shard $k/2 "${GRADE[@]}"
    expect_rc 0 "shard $k/2"
done
check "a shard scores its part of the latents" out_has "(shard 1/2 of 4)"
ev --db "$TEST_TMP/merged.db" merge "$TEST_TMP/sh0.db" "$TEST_TMP/sh1.db"
expect_rc 0 "merge the shards"
script '{"answer": "None"}'
ev --db "$TEST_TMP/merged.db" "${SB[@]}" "${GRADE[@]}"
expect_rc 0 "the command on the merged database"
check "it asks nothing at all (the merged run is done)" [ "$(requests)" = 0 ]
grep -vE '^(autointerp|requests)' "$TEST_TMP/out" >"$TEST_TMP/merged"
check "and prints the unsharded run's numbers" cmp -s "$TEST_TMP/first" "$TEST_TMP/merged"

# ---- --seeds: the spread between seeds
script '{"answer": "None"}'
ev --db "$DB" "${SB[@]}" --seeds 2 "${GRADE[@]}"
expect_rc 0 "--seeds 2"
check "the spread over the seeds is reported" out_has "spread over 2 seeds (3..4)"

# ---- delphi, an all-zeros judge: balanced accuracy exactly 0.5
DL=(autointerp --protocol delphi --latents 3 --tokens 16384 --min-windows 70 --negatives similar)
script '{"answer": "[0,0,0,0,0]"}'
ev --db "$DB" "${DL[@]}" "${GRADE[@]}" --out "$TEST_TMP/dz.json"
expect_rc 0 "delphi with an all-zeros judge"
check "balanced accuracy exactly 0.5 for detection and fuzzing" python3 - "$TEST_TMP/dz.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for s in ("detection", "fuzzing"):
    x = d["scorers"][s]
    assert x["balanced_accuracy"] == 0.5 and x["f1"] == 0 and x["samples"] > 0, x
    assert x["failed"] == 0 and x["nonactivating_accuracy"] == 1
    assert all(q["accuracy"] == 0 for q in x["per_quantile"] if s == "detection")
EOF
check "50 activating (5 per quantile) + 50 non-activating windows per scored latent" \
    [ "$(sql "$DB" "SELECT count(DISTINCT feature_idx), sum(label = 1) / count(DISTINCT
         feature_idx), sum(quantile = 10) / count(DISTINCT feature_idx), sum(label = 0) /
         count(DISTINCT feature_idx) FROM autointerp_samples WHERE scorer = 'detection' AND
         run_id = (SELECT max(id) FROM runs)" | cut -d'|' -f2-)" = "50|5|50" ]
check "similar negatives are named as evalrun's stand-in" [ "$(sql "$DB" "SELECT DISTINCT kind FROM
    autointerp_samples WHERE label = 0 AND scorer = 'detection' AND
    run_id = (SELECT max(id) FROM runs)")" = \
    "similar (token-overlap stand-in)" ]
check "and so in the JSON" grep -q '"negatives":.*"similar (token-overlap stand-in)"' "$TEST_TMP/dz.json"
valid delphi "$TEST_TMP/dz.json"
VRC=$?
check "delphi JSON valid against its schema ($(cat "$TEST_TMP/val"))" [ $VRC -eq 0 ]

# ---- the word latent: a judge that fires on "Lily" scores near 1
W=(--sae "$WORD" --tokens 16384)
script '{"judge": {"word": "Lily", "format": "numbers"}}'
ev --db "$DB" autointerp --protocol saebench --latents 5 "${W[@]}" "${GRADE[@]}"
expect_rc 0 "saebench on the word latent"
check "more latents asked than alive: says how many are" \
    err_has "5 latents asked, but only 1 of the SAE's 2 latents are alive"
check "the word latent scores 1 (14/14)" \
    grep -qE '^detection +autointerp_score +1\.0000 .* 1 +0 latents' "$TEST_TMP/out"
printf '0\tthe name Lily\n1\n' >"$TEST_TMP/wf.txt"
script '{"judge": {"word": "Lily", "format": "list"}, "logprobs": "digits"}'
ev --db "$DB" autointerp --protocol delphi --features "$TEST_TMP/wf.txt" --min-windows 70 \
    "${W[@]}" --ctx 129 --logprobs 2 "${GRADE[@]}" --out "$TEST_TMP/dw.json"
expect_rc 0 "delphi on the word latent, with logprobs"
check "the named dead latent is said to be dead" err_has "latent 1 is dead on this corpus"
check "detection and fuzzing near 1, AUC from logprobs near 1" python3 - "$TEST_TMP/dw.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for s in ("detection", "fuzzing"):
    x = d["scorers"][s]
    assert x["balanced_accuracy"] >= 0.95 and x["f1"] >= 0.95, (s, x)
    assert x["auc"] is not None and x["auc"] >= 0.95, (s, x["auc"])
    lo, hi = x["auc_ci95"]
    assert lo is not None and lo <= x["auc"] <= hi, (s, x["auc_ci95"])
assert [l["latent"] for l in d["latents"]] == [0]
assert d["latents"][0]["explanation"] == "the name Lily"
EOF
check "probabilities stored with the samples" [ "$(sql "$DB" "SELECT count(*) FROM
    autointerp_samples WHERE probability IS NOT NULL AND run_id = (SELECT max(id) FROM runs)")" = 200 ]
script '{"judge": {"word": "Lily", "format": "simulate"}, "logprobs": "digits"}'
ev --db "$DB" autointerp --protocol saebench --scorers simulation --latents 1 "${W[@]}" \
    --logprobs 2 "${GRADE[@]}"
expect_rc 0 "simulation on the word latent"
check "simulation Pearson near 1" grep -qE '^simulation +pearson +(1\.0000|0\.9[5-9])' "$TEST_TMP/out"
check "expected values from logprobs stored (0.1 for a written 0 with 1 at p 0.1)" [ "$(sql "$DB" \
    "SELECT count(*), round(min(probability), 9), max(probability) FROM autointerp_samples WHERE
     scorer = 'simulation' AND run_id = (SELECT max(id) FROM runs)")" = "294|0.1|10.0" ]
printf '1\n' >"$TEST_TMP/dead.txt"
ev --db "$DB" autointerp --protocol saebench --features "$TEST_TMP/dead.txt" "${W[@]}" "${GRADE[@]}"
expect_rc 1 "only a dead latent named: failure"
check "says it is dead" err_has "latent 1 is dead"

# ---- no grader: prompts stored, how to configure one said
ev --db "$TEST_TMP/ng.db" "${SB[@]}"
expect_rc 0 "no grader configured"
check "says how to configure a grader" err_has "--grader"
check "explainer prompts stored as pending" [ "$(sql "$TEST_TMP/ng.db" "SELECT count(*) FROM
    autointerp_latents WHERE status = 'pending' AND expl_prompt LIKE '%<examples>%'")" = "$NS" ]

# ---- sae-metrics --out: SAEBench core JSON
ev --db "$DB" sae-metrics --generate --tokens 1024 --json --out "$TEST_TMP/core.json"
if [ "$RC" = 0 ] && [ -f "$TEST_TMP/core.json" ]; then
    valid saebench_core "$TEST_TMP/core.json"
    VRC=$?
    check "core JSON valid against its schema ($(cat "$TEST_TMP/val"))" [ $VRC -eq 0 ]
    check "core metrics are sae-metrics' own (--json), mse per element" python3 - \
        "$TEST_TMP/core.json" "$TEST_TMP/out" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
j = json.load(open(sys.argv[2]))
m = d["eval_result_metrics"]
close = lambda a, b: abs(a - b) <= 1e-5 * max(1.0, abs(b))
assert d["eval_type_id"] == "core" and d["eval_result_details"] == []
pairs = [(m["sparsity"]["l0"], j["l0"]), (m["sparsity"]["l1"], j["l1"]),
         (m["reconstruction_quality"]["explained_variance"], j["explained_variance"]),
         (m["reconstruction_quality"]["explained_variance_legacy"], j["explained_variance_legacy"]),
         (m["reconstruction_quality"]["mse"], j["mse"] / d["sae_cfg_dict"]["d_in"]),
         (m["model_performance_preservation"]["ce_loss_score"], j["ce_loss_score"]),
         (m["model_performance_preservation"]["ce_loss_without_sae"], j["ce_clean"]),
         (m["model_behavior_preservation"]["kl_div_score"], j["kl_div_score"]),
         (m["shrinkage"]["l2_ratio"], j["l2_ratio"]),
         (m["misc_metrics"]["frac_alive"], 1 - j["dead_frac"])]
bad = [(a, b) for a, b in pairs if not close(a, b)]
assert not bad, bad
assert "global" in d["eval_config"]["explained_variance_definition"]
EOF
else
    fail "sae-metrics --out" "exit status $RC"
fi
