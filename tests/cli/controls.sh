# CLI tests for the controls (issue 17.2): `--control random-sae|shuffled|none` on specificity
# (and its refusals elsewhere), each control its own run linked to the main run by its
# configuration, the score / control / diff [CI] table against values computed here in Python
# from the database, the random-direction SAE's folder (unit decoder rows, encoder the
# transpose, L0 recorded beside the SAE's), resuming without a request, and compare flagging
# the shuffled control as worse than the run. The mock grader's rule depends on the content:
# a context scores 3 when a marked token is the token the description names, 1 when another
# token is marked, 0 when none is; the explainer names the first marked token it is shown.
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"

printf '1\tthe token "x"\n' >"$TEST_TMP/one.txt"
ev specificity --features "$TEST_TMP/one.txt" --control bogus
expect_rc 2 "--control bogus: usage error"
check "names --control" err_has "--control 'bogus'"
ev specificity --features "$TEST_TMP/one.txt" --control shuffled
expect_rc 2 "--control without a grader: usage error"
check "says it needs a grader" err_has "--control needs a grader"
ev completeness --control shuffled --grader openai:mock --grader-url http://127.0.0.1:9/v1
expect_rc 2 "completeness --control shuffled: usage error"
check "says what completeness takes" err_has "completeness takes only random-sae"
ev specificity --help
check "--help lists --control" out_has "--control"

BASE=$TEST_TMP/base.db
if ! build_index "$BASE"; then
    skip "controls on real runs" "$REASON"
    exit 0
fi
token_descriptions "$BASE" 4 "$TEST_TMP/feats.txt"
check "four features with a description each" [ "$(wc -l <"$TEST_TMP/feats.txt")" = 4 ]
start_mock
RULES=$TOKEN_RULES
script "$RULES"
DB=$TEST_TMP/c.db
cp "$BASE" "$DB"
SPEC=(specificity --features "$TEST_TMP/feats.txt" --per-interval 3 --intervals 3 --seed 4 --tag main)
ev --db "$DB" "${SPEC[@]}" "${GRADE[@]}" --control shuffled,random-sae
expect_rc 0 "specificity with both controls"
cp "$TEST_TMP/out" "$TEST_TMP/first.out"
check "the controls table" out_has "controls of run"
check "a random-sae block" grep -qE '^control random-sae: run [0-9]+ \(done, another SAE' "$TEST_TMP/out"
check "a shuffled block, paired" grep -qE '^control shuffled: run [0-9]+ \(done, same contexts, paired per item\)' "$TEST_TMP/out"
check "three specificity runs" [ "$(sql "$DB" "SELECT count(*) FROM runs WHERE kind = 'specificity'")" = 3 ]
check "the controls are tagged after the run" [ "$(sql "$DB" "SELECT group_concat(tag, ' ') FROM (SELECT tag FROM runs WHERE kind = 'specificity' ORDER BY tag)")" = "main main.random-sae main.shuffled" ]
check "each control links to the run by its configuration hash" [ "$(sql "$DB" "SELECT count(*) FROM runs c JOIN runs m ON m.tag = 'main'
    WHERE json_extract(c.config_json, '\$.control.of') = m.config_hash AND json_extract(c.config_json, '\$.control.seed') = 4")" = 2 ]

# the shuffled control: the same contexts (item keys), every feature against another's description
python3 - "$DB" "$TEST_TMP/feats.txt" >"$TEST_TMP/shuf.txt" <<'EOF2'
import re, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
desc = {int(l.split("\t")[0]): l.rstrip("\n").split("\t")[1] for l in open(sys.argv[2])}
run = {t: i for i, t in db.execute("SELECT id, tag FROM runs WHERE kind = 'specificity'")}
keys = lambda r: sorted(k for (k,) in db.execute("SELECT item_key FROM items WHERE run_id = ?", (r,)))
print("same_keys", keys(run["main"]) == keys(run["main.shuffled"]))
got = {}
for f, p in db.execute("SELECT feature_idx, prompt FROM items WHERE run_id = ?", (run["main.shuffled"],)):
    got.setdefault(f, set()).add(re.search("<description>\n(.*)\n</description>", p).group(1))
one = all(len(v) == 1 for v in got.values())
m = {f: next(iter(v)) for f, v in got.items()}
print("one_each", one)
print("deranged", all(m[f] != desc[f] for f in m))
print("a_permutation", sorted(m.values()) == sorted(desc.values()))
print("file_descriptions_kept", all(db.execute("SELECT description FROM features WHERE idx = ? AND sae_id = (SELECT sae_id FROM runs WHERE id = ?)", (f, run["main"])).fetchone()[0] == desc[f] for f in desc))
EOF2
for k in same_keys one_each deranged a_permutation file_descriptions_kept; do
    check "shuffled control: $k" grep -qx "$k True" "$TEST_TMP/shuf.txt"
done

# the table's numbers against Python over the database: mean of the activating scores
python3 - "$DB" "$TEST_TMP/first.out" >"$TEST_TMP/nums.txt" <<'EOF2'
import re, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
run = {t: i for i, t in db.execute("SELECT id, tag FROM runs WHERE kind = 'specificity'")}
def mean(r):
    v = [s for (s,) in db.execute("SELECT g.score FROM grades g JOIN items i ON i.run_id = g.run_id AND i.item_key = g.item_key WHERE g.run_id = ? AND i.kind = 'interval' AND g.parse_status = 'ok'", (r,))]
    return sum(v) / len(v), len(v)
out = open(sys.argv[2]).read()
for ctl in ("random-sae", "shuffled"):
    block = out.split("control %s:" % ctl)[1]
    row = re.search(r"^specificity\.mean\s+(\d+)\s+(\S+)\s+(\d+)\s+(\S+)\s+(\S+)\s+\[(\S+), (\S+)\]", block, re.M)
    n, s, nc, c, d, lo, hi = row.groups()
    (ms, mn), (cs, cn) = mean(run["main"]), mean(run["main." + ctl])
    print(ctl, "values", abs(float(s) - ms) < 1e-4 and abs(float(c) - cs) < 1e-4 and abs(float(d) - (ms - cs)) < 1e-4 and int(n) == mn and int(nc) == cn)
    print(ctl, "ci", float(lo) <= float(d) <= float(hi))
    print(ctl, "beats", float(lo) > 0)
EOF2
for k in "random-sae values" "random-sae ci" "shuffled values" "shuffled ci" "shuffled beats"; do
    check "table: $k (Python over the database)" grep -qx "$k True" "$TEST_TMP/nums.txt"
done

# evalrun report shows the controls (issue 17.2: the score, the control's, the difference and
# its CI next to every SAE score): the table "controls" in CSV, Markdown, JSON and HTML, the
# same figures as the evaluation printed, n and the means as Python computes them
ev --db "$DB" report --run main --format csv --table controls
expect_rc 0 "report --table controls"
cp "$TEST_TMP/out" "$TEST_TMP/ctl.csv"
python3 - "$DB" "$TEST_TMP/ctl.csv" "$TEST_TMP/first.out" >"$TEST_TMP/rep.txt" <<'EOF2'
import csv, re, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
run = {t: i for i, t in db.execute("SELECT id, tag FROM runs WHERE kind = 'specificity'")}
rows = list(csv.DictReader(open(sys.argv[2], newline="")))
printed = open(sys.argv[3]).read()
def mean(r):
    v = [s for (s,) in db.execute("SELECT g.score FROM grades g JOIN items i ON i.run_id = g.run_id AND i.item_key = g.item_key WHERE g.run_id = ? AND i.kind = 'interval' AND g.parse_status = 'ok'", (r,))]
    return sum(v) / len(v), len(v)
ok_print = bool(rows)
for ctl in ("random-sae", "shuffled"):
    block = printed.split("control %s:" % ctl)[1].split("\ncontrol ")[0]
    mine = [r for r in rows if r["control"] == ctl]
    print(ctl, "rows", len(mine) > 0 and len(mine) == len(re.findall(r"^(?:specificity|completeness|autointerp)\.\S+ ", block, re.M)))
    for r in mine:
        m = re.search(r"^%s\s+(\d+)\s+(\S+)\s+(\d+)\s+(\S+)\s+(\S+)\s+\[(\S+), (\S+)\]" % re.escape(r["metric"]), block, re.M)
        ok_print &= m is not None and list(m.groups()) == [r["n"], r["score"], r["n_ctl"], r["control score"], r["diff"], r["ci95_lo"], r["ci95_hi"]]
    sm = [r for r in mine if r["metric"] == "specificity.mean"][0]
    (ms, mn), (cs, cn) = mean(run["main"]), mean(run["main." + ctl])
    print(ctl, "db", abs(float(sm["score"]) - ms) < 1e-4 and abs(float(sm["control score"]) - cs) < 1e-4
          and int(sm["n"]) == mn and int(sm["n_ctl"]) == cn and sm["control run"].startswith("%d (done)" % run["main." + ctl]))
    print(ctl, "comparison", all(r["comparison"] == ("paired per item" if ctl == "shuffled" else "two samples") for r in mine))
print("as_printed", ok_print)
EOF2
for k in "random-sae rows" "shuffled rows" "random-sae db" "shuffled db" "random-sae comparison" "shuffled comparison" as_printed; do
    check "report controls: $k" grep -qx "$k True" "$TEST_TMP/rep.txt"
done
ev --db "$DB" report --run main --format md
check "report md: the Controls section" grep -qx '## Controls' "$TEST_TMP/out"
check "report md: a shuffled specificity.mean row" grep -qE '^\| shuffled \| [0-9]+ \(done\) \| specificity\.mean \| [0-9]+ \| [0-9.]+ \|' "$TEST_TMP/out"
ev --db "$DB" report --run main --format json
python3 - "$TEST_TMP/out" >"$TEST_TMP/repj.txt" <<'EOF2'
import json, sys
r = json.load(open(sys.argv[1]))
t = [t for s in r["sections"] for t in s["tables"] if t["name"] == "controls"]
print("json", len(t) == 1 and all(type(row[t[0]["columns"].index("diff")]) in (int, float) for row in t[0]["rows"]))
EOF2
check "report json: the controls table, numbers as numbers" grep -qx "json True" "$TEST_TMP/repj.txt"
ev --db "$DB" report --run main --format html
check "report html: the Controls section" out_has ">Controls<"
ev --db "$DB" report --run main.shuffled --format md
check "a control's own report has no Controls section" sh -c '! grep -qx "## Controls" "$1"' _ "$TEST_TMP/out"

# the random-direction SAE: a folder beside the database, unit decoder rows, encoder the transpose
CTL=$(ls -d "$DB".controls/random-sae-*-seed4 2>/dev/null | head -1)
check "the random SAE's folder beside the database" [ -n "$CTL" ] && [ -f "$CTL/cfg.json" ]
python3 - "$CTL" >"$TEST_TMP/rsae.txt" <<'EOF2'
import json, math, struct, sys
raw = open(sys.argv[1] + "/sae_weights.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
def t(name):
    h = hdr[name]; a, b = h["data_offsets"]
    return h["shape"], struct.unpack("<%df" % ((b - a) // 4), raw[8 + n + a:8 + n + b])
(S, D), dec = t("W_dec")
(D2, S2), enc = t("W_enc")
norms = [math.sqrt(sum(dec[i * D + j] ** 2 for j in range(D))) for i in range(S)]
print("unit", all(abs(x - 1) < 1e-5 for x in norms))
print("transpose", (D2, S2) == (D, S) and all(enc[j * S + i] == dec[i * D + j] for i in range(S) for j in range(D)))
cfg = json.load(open(sys.argv[1] + "/cfg.json"))
meta = cfg.get("metadata", cfg)
print("l0", abs(meta["control_l0"] - meta["sae_l0"]) <= 0.02 * meta["sae_l0"], meta["control_l0"], meta["sae_l0"])
EOF2
check "random SAE: unit decoder rows" grep -qx "unit True" "$TEST_TMP/rsae.txt"
check "random SAE: encoder = decoder transpose" grep -qx "transpose True" "$TEST_TMP/rsae.txt"
check "random SAE: its L0 on the calibration tokens within 2% of the SAE's" grep -q "^l0 True" "$TEST_TMP/rsae.txt"
check "the random-sae control ran on another SAE, described by the explainer" [ "$(sql "$DB" "SELECT count(DISTINCT d.desc_source) || ':' || min(d.desc_source LIKE 'explainer:%') FROM runs r JOIN features d ON d.sae_id = r.sae_id AND d.description IS NOT NULL WHERE r.tag = 'main.random-sae'")" = "1:1" ]

# resuming: the same command asks nothing and prints the same tables
script "$RULES"
ev --db "$DB" "${SPEC[@]}" "${GRADE[@]}" --control shuffled,random-sae
expect_rc 0 "rerun"
check "rerun: no request" [ "$(requests)" = 0 ]
check "rerun: the same output" cmp -s "$TEST_TMP/out" "$TEST_TMP/first.out"

# compare sees the shuffled control as a regression of the run
ev --db "$DB" compare --baseline main --candidate main.shuffled --min-n 10
expect_rc 3 "compare: shuffled descriptions are worse than the run (exit 3)"
check "specificity.mean worse" grep -qE '^specificity.mean .* worse$' "$TEST_TMP/out"

# completeness --control random-sae: the same random SAE (same seed, same database: the folder
# and its index are reused), its top features described by the explainer
script '{"rules": [{"match": "<examples>[\\s\\S]*?\u27e6\\s*([^\u27e7\\s]+)\\s*\u27e7", "answer": "Description: the token \"\\1\""},
                   {"match": "the token \"(a|the)\"", "answer": "no"}], "answer": "yes", "latency_ms": 0}'
ev --db "$DB" completeness --group stories --seed 4 --tag comp "${GRADE[@]}" --control random-sae
expect_rc 0 "completeness with --control random-sae"
check "reused the random SAE's folder (one folder)" [ "$(ls -d "$DB".controls/random-sae-* | wc -l)" = 1 ]
check "a completeness control run, linked" [ "$(sql "$DB" "SELECT count(*) FROM runs c JOIN runs m ON m.tag = 'comp'
    WHERE c.tag = 'comp.random-sae' AND json_extract(c.config_json, '\$.control.of') = m.config_hash AND c.kind = 'completeness'")" = 1 ]
python3 - "$DB" "$TEST_TMP/out" >"$TEST_TMP/comp.txt" <<'EOF2'
import re, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
def cov(tag):
    v = [s for (s,) in db.execute("SELECT g.score FROM grades g JOIN items i ON i.run_id = g.run_id AND i.item_key = g.item_key JOIN runs r ON r.id = g.run_id WHERE r.tag = ? AND i.kind = 'concept' AND g.parse_status = 'ok'", (tag,))]
    return sum(1 for s in v if s >= 0.5) / len(v), len(v)
row = re.search(r"^completeness\.coverage\s+(\d+)\s+(\S+)\s+(\d+)\s+(\S+)\s+(\S+)", open(sys.argv[2]).read(), re.M)
(a, na), (b, nb) = cov("comp"), cov("comp.random-sae")
print("coverage", row is not None and abs(float(row.group(2)) - a) < 1e-4 and abs(float(row.group(4)) - b) < 1e-4
      and int(row.group(1)) == na and int(row.group(3)) == nb and abs(float(row.group(5)) - (a - b)) < 1e-4)
EOF2
check "completeness table: coverage and control coverage as Python computes them" grep -qx "coverage True" "$TEST_TMP/comp.txt"

# autointerp --control random-sae: the run's JSON and the control's beside it, the table
script '{"judge": {"word": "Lily", "format": "numbers"}, "latency_ms": 0}'
ev --db "$DB" autointerp --protocol saebench --latents 4 --tokens 8192 --seed 4 --tag ai "${GRADE[@]}" \
    --out "$TEST_TMP/ai.json" --control random-sae
expect_rc 0 "autointerp with --control random-sae"
check "the run's JSON and the control's beside it" [ -s "$TEST_TMP/ai.json" ] && [ -s "$TEST_TMP/ai.random-sae.json" ]
check "the same random SAE folder again (seed 4)" [ "$(ls -d "$DB".controls/random-sae-* | wc -l)" = 1 ]
check "an autointerp.detection row in the controls table" grep -qE '^autointerp\.detection +[0-9]+ +[0-9.]+ +[0-9]+ +[0-9.]+ ' "$TEST_TMP/out"
check "the control ran on the random SAE" [ "$(sql "$DB" "SELECT count(DISTINCT sae_id) FROM runs WHERE tag IN ('ai', 'ai.random-sae')")" = 2 ]

# a transcoder of one width (SAELens skip transcoder, blocks.2.mlp.hook_in -> hook_mlp_out):
# its random-sae control is a transcoder of the same hooks and shape, unit decoder rows, the
# encoder their transpose, no skip term, L0 matched on the calibration tokens
TC=$ROOT/tests/fixtures/sae/formats/saelens_skip_transcoder
TDB=$TEST_TMP/tc.db
"$EVALRUN" --db "$TDB" --quiet index --sae "$TC" --generate --tokens 4096 >/dev/null 2>&1
for f in $(pick_features "$TDB" 2); do printf '%s\tthe token "x"\n' "$f"; done >"$TEST_TMP/tc.txt"
script "$TOKEN_RULES"
ev --db "$TDB" specificity --sae "$TC" --features "$TEST_TMP/tc.txt" --per-interval 1 --intervals 2 \
    --seed 4 --tag tc "${GRADE[@]}" --control random-sae
expect_rc 0 "transcoder: specificity with --control random-sae"
check "transcoder: the controls table with the control's score" grep -qE '^specificity\.mean +[0-9]+ +[0-9.]+ +[0-9]+ +[0-9.]+ ' "$TEST_TMP/out"
TCTL=$(ls -d "$TDB".controls/random-sae-*-seed4 2>/dev/null | head -1)
python3 - "$TCTL" "$TC" >"$TEST_TMP/tc.chk" <<'EOF2'
import json, math, struct, sys
def tensors(path):
    raw = open(path, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; hdr = json.loads(raw[8:8 + n])
    def t(name):
        h = hdr[name]; a, b = h["data_offsets"]
        return h["shape"], struct.unpack("<%df" % ((b - a) // 4), raw[8 + n + a:8 + n + b])
    return hdr, t
hdr, t = tensors(sys.argv[1] + "/sae_weights.safetensors")
(S, D), dec = t("W_dec"); (D2, S2), enc = t("W_enc")
rhdr, rt = tensors(sys.argv[2] + "/sae_weights.safetensors")
cfg = json.load(open(sys.argv[1] + "/cfg.json")); real = json.load(open(sys.argv[2] + "/cfg.json"))
meta = cfg.get("metadata", cfg)
print("shape", [S, D] == rt("W_dec")[0] and [D2, S2] == rt("W_enc")[0])
print("hooks", cfg["hook_name"] == real["hook_name"] and cfg.get("hook_name_out") == real["hook_name_out"])
print("no_skip", "W_skip" not in hdr and "W_skip" in rhdr)
print("unit", all(abs(math.sqrt(sum(dec[i * D + j] ** 2 for j in range(D))) - 1) < 1e-5 for i in range(S)))
print("transpose", all(enc[j * S + i] == dec[i * D + j] for i in range(S) for j in range(D)))
print("l0", abs(meta["control_l0"] - meta["sae_l0"]) <= 0.02 * meta["sae_l0"])
EOF2
for k in shape hooks no_skip unit transpose l0; do
    check "transcoder control: $k" grep -qx "$k True" "$TEST_TMP/tc.chk"
done

# a transcoder whose widths differ (blocks.2.mlp.hook_post, 172 wide -> hook_mlp_out, 64):
# refused in one line, exit 1, before the run itself asks the grader anything
WT=$TEST_TMP/wide_tc
mkdir -p "$WT"
python3 - "$WT" <<'EOF2'
import json, random, struct, sys
random.seed(1); S, DI, DO = 16, 172, 64
ts = {"W_enc": [DI, S], "b_enc": [S], "W_dec": [S, DO], "b_dec": [DO]}
hdr, blob = {}, b""
for k, sh in ts.items():
    n = 1
    for d in sh: n *= d
    data = struct.pack("<%df" % n, *[random.gauss(0, 0.1) for _ in range(n)])
    hdr[k] = {"dtype": "F32", "shape": sh, "data_offsets": [len(blob), len(blob) + len(data)]}
    blob += data
h = json.dumps(hdr).encode()
open(sys.argv[1] + "/sae_weights.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + blob)
json.dump({"architecture": "transcoder", "d_in": DI, "d_out": DO, "d_sae": S, "dtype": "float32",
           "apply_b_dec_to_input": False, "normalize_activations": "none",
           "hook_name": "blocks.2.mlp.hook_post", "hook_name_out": "blocks.2.hook_mlp_out",
           "model_name": "stories260K"}, open(sys.argv[1] + "/cfg.json", "w"))
EOF2
printf '1\tthe token "x"\n' >"$TEST_TMP/wt.txt"
script "$TOKEN_RULES"
ev --db "$TEST_TMP/wt.db" specificity --sae "$WT" --features "$TEST_TMP/wt.txt" --per-interval 1 \
    --intervals 2 --seed 4 "${GRADE[@]}" --control random-sae
expect_rc 1 "transcoder of two widths: --control random-sae refused, exit 1"
check "one line" err_one_line
check "naming both hooks and widths" err_has 'random-sae control: the transcoder reads blocks.2.mlp.hook_post (172 wide) and writes blocks.2.hook_mlp_out (64 wide)'
check "before any grading: no request" [ "$(requests)" = 0 ]
check "no specificity run stored" [ "$(sql "$TEST_TMP/wt.db" "SELECT count(*) FROM runs WHERE kind = 'specificity'")" = 0 ]

# SIGKILL during the control run, then the same command: the control resumes, every item is
# graded exactly once, and the table comes out
slow() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["latency_ms"]=int(sys.argv[2]); print(json.dumps(d))' "$TOKEN_RULES" "$1"; }
KDB=$TEST_TMP/k.db
cp "$BASE" "$KDB"
script "$(slow 150)"
KSPEC=(specificity --features "$TEST_TMP/feats.txt" --per-interval 3 --intervals 3 --seed 6 --tag k)
"$EVALRUN" --db "$KDB" "${KSPEC[@]}" "${GRADE[@]}" --concurrency 2 --control shuffled >/dev/null 2>&1 &
PID=$!
for _ in $(seq 600); do
    n=$(sql "$KDB" "SELECT count(*) FROM grades g JOIN runs r ON r.id = g.run_id WHERE r.tag = 'k.shuffled'" 2>/dev/null || echo 0)
    [ "${n:-0}" -ge 6 ] && break
    sleep 0.05
done
kill -9 $PID 2>/dev/null
wait $PID 2>/dev/null
KB=$(sql "$KDB" "SELECT count(*) FROM grades g JOIN runs r ON r.id = g.run_id WHERE r.tag = 'k.shuffled'")
KI=$(sql "$KDB" "SELECT count(*) FROM items i JOIN runs r ON r.id = i.run_id WHERE r.tag = 'k.shuffled'")
check "killed inside the control run ($KB of $KI graded)" [ "$KB" -ge 6 ] && [ "$KB" -lt "$KI" ]
script "$(slow 0)"
ev --db "$KDB" "${KSPEC[@]}" "${GRADE[@]}" --control shuffled
expect_rc 0 "rerun after SIGKILL"
check "the control run resumed" err_has "resuming run"
check "the control table" grep -qE '^control shuffled: run [0-9]+ \(done' "$TEST_TMP/out"
check "every item of both runs graded exactly once" [ "$(sql "$KDB" "SELECT count(*) FROM grades")" = "$(sql "$KDB" "SELECT count(*) FROM items")" ]
check "asked only for the control's rest" [ "$(requests)" -le $((1 + KI - KB)) ]
check "still two specificity runs" [ "$(sql "$KDB" "SELECT count(*) FROM runs WHERE kind = 'specificity'")" = 2 ]
