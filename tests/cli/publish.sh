# `evalrun export neuronpedia` and `evalrun import` (issue 18, part 5) on the demo SAE: the
# export's rows are checked with Python's gzip + json against the columns of Neuronpedia's
# Prisma models (Neuron, Activation, Explanation, ExplanationScore) and its exporter's layout;
# the export read back by `import` gives the same descriptions and scores; SAEBench's autointerp
# JSON (as its evals/autointerp/main.py writes it) and evalrun's own core JSON import; bad input
# exits 1 with one line and writes nothing.
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"
export EVALRUN_SAE=$SAE
PY=/usr/bin/python3

# ---- usage errors
ev export
expect_rc 2 "export without a format: usage error"
ev export parquet --out "$TEST_TMP/x"
expect_rc 2 "export parquet: usage error naming it"
check "names the format" err_has "parquet"
ev export neuronpedia
expect_rc 2 "export neuronpedia without --out: usage error"
ev export neuronpedia --out "$TEST_TMP/x" --source-set "Bad Name"
expect_rc 2 "a source set with spaces: usage error"
ev import
expect_rc 2 "import without a file: usage error"

BASE=$TEST_TMP/base.db
if ! build_index "$BASE"; then
    skip "export / import end to end" "$REASON"
    exit 0
fi
pass "feature index of the demo SAE built"
mapfile -t F < <(pick_features "$BASE" 3)
printf '%s\tthe word the\n%s\tdescriptions of people\n%s\n' "${F[0]}" "${F[1]}" "${F[2]}" \
    >"$TEST_TMP/feats.txt"
start_mock
script '{"rules": [{"match": "<context>\\n(?:(?!</context>)[\\s\\S])*\u27e6", "answer": "Score: 2"}],
         "answer": "Score: 0", "latency_ms": 0}'
DB=$TEST_TMP/g.db
cp "$BASE" "$DB"
ev --db "$DB" specificity --features "$TEST_TMP/feats.txt" --per-interval 1 --intervals 2 \
    --seed 3 "${GRADE[@]}"
expect_rc 0 "a graded specificity run: two features described and scored"

# ---- export
OUT=$TEST_TMP/np
ev --db "$DB" export neuronpedia --out "$OUT" --model-id stories260k --source-set evalrun-demo \
    --features "$TEST_TMP/feats.txt" --top 5
expect_rc 0 "export neuronpedia exits 0"
SRC=$OUT/stories260k/2-evalrun-demo
check "the source folder is MODEL_ID/LAYER-SET" test -d "$SRC"
check "no temporary folder is left" sh -c "! ls '$OUT/stories260k' | grep -q tmp"
"$PY" - "$SRC" "${F[0]}" "${F[1]}" "${F[2]}" >"$TEST_TMP/check.out" 2>&1 <<'EOF'
import gzip, json, os, sys
src, feats = sys.argv[1], sys.argv[2:]
def rows(d):
    return [json.loads(l) for l in gzip.open(os.path.join(src, d, "batch-0.jsonl.gz"), "rt")]
# the columns of Neuronpedia's Prisma models that have no default (schema.prisma)
need = {"features": ["modelId", "layer", "index"],
        "activations": ["id", "tokens", "index", "layer", "modelId", "maxValue",
                        "maxValueTokenIndex", "minValue", "values", "creatorId"],
        "explanations": ["id", "modelId", "layer", "index", "description", "authorId"],
        "explanation_scores": ["id", "initiatedByUserId", "value", "explanationId",
                               "explanationScoreTypeName", "explanationScoreModelName"]}
R = {d: rows(d) for d in need}
for d, cols in need.items():
    for r in R[d]:
        missing = [c for c in cols if c not in r]
        assert not missing, (d, missing)
        assert r.get("layer", "2-evalrun-demo") == "2-evalrun-demo"
        assert isinstance(r.get("index", ""), str)
assert sorted(r["index"] for r in R["features"]) == sorted(feats), R["features"]
for a in R["activations"]:
    assert len(a["tokens"]) == len(a["values"]) > 0
    assert a["maxValue"] == max(a["values"]) and a["minValue"] == min(a["values"])
    assert a["values"][a["maxValueTokenIndex"]] == a["maxValue"]
    assert all(isinstance(t, str) for t in a["tokens"])
assert len({a["id"] for a in R["activations"]}) == len(R["activations"])
ex = {e["index"]: e for e in R["explanations"]}
assert ex[feats[0]]["description"] == "the word the", ex
assert ex[feats[1]]["description"] == "descriptions of people"
# the third had none (the mock explainer's answer, a bare score, does not parse as one)
assert feats[2] not in ex, ex
ids = {e["id"] for e in R["explanations"]}
for s in R["explanation_scores"]:
    assert s["explanationId"] in ids
    assert json.loads(s["jsonDetails"])["n"] >= 1
assert {s["explanationScoreTypeName"] for s in R["explanation_scores"]} == {"specificity"}
for f in ("model.jsonl", "sourceset.jsonl", "source.jsonl"):
    json.loads(open(os.path.join(src, f)).read())
print("features %d activations %d explanations %d scores %d" % tuple(len(R[d]) for d in need))
EOF
RC=$?
cat "$TEST_TMP/check.out" | sed 's/^/# /'
check "every row has the columns Neuronpedia's models require; values match tokens, maxValue is their max" test $RC = 0
ev --db "$DB" export neuronpedia --out "$OUT" --model-id stories260k --source-set evalrun-demo \
    --features "$TEST_TMP/feats.txt"
expect_rc 1 "exporting over an existing source folder is refused"
check "the refusal is one line naming it" sh -c "grep -q '2-evalrun-demo exists' '$TEST_TMP/err' && [ \$(wc -l <'$TEST_TMP/err') = 1 ]"

# ---- import: the export read back
ev import "$SRC" --features-out "$TEST_TMP/back.txt"
expect_rc 0 "import of the exported source folder"
check "it finds the two descriptions" out_has "2 features, 2 with a description"
check "the specificity score is shown with n and an interval" \
    sh -c "grep -E '^specificity +2 +[0-9.]+ +\[[0-9.]+, [0-9.]+\]' '$TEST_TMP/out'"
check "the features file holds the exported descriptions" \
    sh -c "grep -qP '^${F[0]}\tthe word the$' '$TEST_TMP/back.txt' && grep -qP '^${F[1]}\tdescriptions of people$' '$TEST_TMP/back.txt'"
ev --db "$DB" specificity --features "$TEST_TMP/back.txt" --per-interval 1 --intervals 2 --seed 3 "${GRADE[@]}"
expect_rc 0 "the imported features file drives an evaluation"

# ---- import: SAEBench autointerp (evals/autointerp/main.py's output) and Neuronpedia rows
LONG=$("$PY" -c 'print("x" * 2001)')
cat >"$TEST_TMP/sb.json" <<EOF
{"eval_type_id": "autointerp", "eval_config": {"model_name": "gemma-2-2b"}, "eval_id": "e",
 "datetime_epoch_millis": 0,
 "eval_result_metrics": {"autointerp": {"autointerp_score": 0.75, "autointerp_std_dev": 0.1}},
 "eval_result_details": [],
 "eval_result_unstructured": {
   "3": {"latent": 3, "explanation": "the word 'knows'", "predictions": [1], "correct seqs": [1], "score": 0.8, "logs": ""},
   "7": {"latent": 7, "explanation": "verbs of\\ndecision", "predictions": [], "correct seqs": [2], "score": 0.7, "logs": ""},
   "9": {"latent": 9, "explanation": "a {{template}}", "score": 0.9},
   "11": {"latent": 11, "explanation": "$LONG", "score": 0.6}},
 "sae_bench_commit_hash": null, "sae_lens_id": "layer_20/width_16k/average_l0_71",
 "sae_lens_release_id": "gemma-scope-2b-pt-res", "sae_lens_version": "5.0", "sae_cfg_dict": {}}
EOF
ev import "$TEST_TMP/sb.json" --features-out "$TEST_TMP/sb.txt" --d-sae 16384
expect_rc 0 "SAEBench autointerp JSON imports"
check "two descriptions kept, two left out with the first reason" \
    sh -c "grep -q '2 descriptions left out' '$TEST_TMP/out' && grep -q 'feature 9: the description holds a template delimiter' '$TEST_TMP/out'"
check "the per-latent scores: n 2, mean 0.75" sh -c "grep -E '^saebench_autointerp +2 +0.7500' '$TEST_TMP/out'"
check "the published SAE-level score is shown as the file states it" out_has "autointerp.autointerp_score"
check "newlines in a description become spaces" grep -qP '^7\tverbs of decision$' "$TEST_TMP/sb.txt"
check "the over-long description is not in the file" sh -c "! grep -q '^11' '$TEST_TMP/sb.txt'"
printf '%s\n' '{"id":"e1","modelId":"gemma-2-2b","layer":"20-gemmascope-res-16k","index":"3","description":" the word knows ","authorId":"a","typeName":"oai_token-act-pair","explanationModelName":"gpt-4o-mini"}' \
    '{"id":"e2","modelId":"gemma-2-2b","layer":"20-gemmascope-res-16k","index":"3","description":"second","authorId":"a"}' \
    '{"id":"s1","explanationId":"e1","value":0.5,"explanationScoreTypeName":"recall_alt","explanationScoreModelName":"m","initiatedByUserId":"u"}' \
    | gzip >"$TEST_TMP/np.jsonl.gz"
ev import "$TEST_TMP/np.jsonl.gz" --against "$TEST_TMP/np.jsonl.gz"
expect_rc 0 "Neuronpedia explanation rows (gzip) import"
check "a second explanation of a feature is counted, the first kept" out_has "1 further explanations"
check "--against prints the difference with its interval" sh -c "grep -E '^recall_alt +1 +0.5000.* 1 +0.0000' '$TEST_TMP/out'"

# ---- bad input: one line, exit 1, nothing written
printf '{"index": "1", "description": "ok"}\n{not json\n' >"$TEST_TMP/bad.jsonl"
ev import "$TEST_TMP/bad.jsonl" --features-out "$TEST_TMP/bad.txt"
expect_rc 1 "a line that is not JSON: exit 1"
check "the message names the file and line 2" sh -c "grep -q 'bad.jsonl:2' '$TEST_TMP/err' && [ \$(wc -l <'$TEST_TMP/err') = 1 ]"
check "no features file written" test ! -e "$TEST_TMP/bad.txt"
head -c 60 "$TEST_TMP/np.jsonl.gz" >"$TEST_TMP/cut.gz"
ev import "$TEST_TMP/cut.gz"
expect_rc 1 "a truncated gzip file: exit 1"
check "says so" err_has "gzip"
echo '{"hello": 1}' >"$TEST_TMP/other.json"
ev import "$TEST_TMP/other.json"
expect_rc 1 "JSON that is neither Neuronpedia's nor SAEBench's: exit 1"
ev import "$TEST_TMP/sb.json" --features-out "$TEST_TMP/small.txt" --d-sae 5
expect_rc 1 "an imported id outside --d-sae: exit 1"
check "nothing written" test ! -e "$TEST_TMP/small.txt"
