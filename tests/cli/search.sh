# CLI tests for finding and inspecting features (issue 8) on the shipped stories260K and the
# demo SAE: `search` by prompt (with negatives), --like (checked against decoder cosines
# computed with numpy from the safetensors), --attribution (checked against the stored rows
# of `evalrun attribution` and against `evalrun logits`), --out read back by `specificity
# --features`; `show` in text (80 columns, markers without colour, colour on request), md and
# json; `tag` / `features --category`; and the bad-input cases.
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"

export EVALRUN_SAE=$SAE # every command below uses the SAE that build_index indexes
PY=/usr/bin/python3
J=$TEST_TMP/j.json
js() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); $1" "$J"; }

width_ok() {
    "$PY" - "$1" <<'EOF'
import re, sys, unicodedata
bad = 0
for line in open(sys.argv[1], encoding="utf-8"):
    s = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line.rstrip("\n"))
    w = sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
            for c in s)
    if w > 80:
        print("too wide (%d): %s" % (w, s)); bad = 1
sys.exit(bad)
EOF
}

# ---- usage errors need no index
for c in search show tag features; do
    ev "$c" --help
    expect_rc 0 "$c --help"
    [ "$c" = tag ] && check "tag --help suggests the paper's categories" out_has "safety-relevant"
done
ev search
expect_rc 2 "search with nothing to search: usage error"
ev search --prompt ""
expect_rc 2 "empty --prompt: usage error"
check "names the prompt" err_has "--prompt 1 is empty"
ev search --prompt Lily --negative ""
expect_rc 2 "empty --negative: usage error"
ev search --prompt Lily --position middle
expect_rc 2 "--position middle: usage error"
ev search --prompt Lily --top 0
expect_rc 2 "--top 0: usage error"
ev search --like abc
expect_rc 2 "--like abc: usage error"
ev search --like 3 --prompt Lily
expect_rc 2 "--like with --prompt: usage error"
ev search --prompt Lily --target " Lily"
expect_rc 2 "--target without --attribution: usage error"
ev search --attribution --prompt "Once upon a time"
expect_rc 2 "--attribution without --target: usage error"
ev show
expect_rc 2 "show without a feature: usage error"
ev show -- -3
expect_rc 2 "show -3: usage error"
ev show 3 --format xml
expect_rc 2 "show --format xml: usage error"
ev tag 3
expect_rc 2 "tag without a category: usage error"
ev tag 3 "  "
expect_rc 2 "tag with a blank category: usage error"

DB=$TEST_TMP/s.db
if ! build_index "$DB"; then
    skip "search end-to-end" "$REASON"
    exit 0
fi
pass "feature index of the demo SAE built"

# ---- unknown features: exit 1, naming the range
ev --db "$DB" show 1024
expect_rc 1 "show 1024 (d_sae 1024): exit 1"
check "says which features exist" err_has "features 0..1023"
ev --db "$DB" search --like 5000
expect_rc 1 "search --like 5000: exit 1"
ev --db "$DB" tag 4096 people
expect_rc 1 "tag 4096: exit 1"

ev --db "$DB" features
check "no categories yet: says how to add one" out_has "evalrun tag FEATURE CATEGORY"
LONG=$(printf 'Lily went to the park. %.0s' $(seq 200))
ev --db "$DB" search --prompt "$LONG"
expect_rc 1 "a prompt longer than the model's context: exit 1"
check "says the context length" err_has "the model's context is 512"

# ---- search by prompt: "Lily" finds a feature whose top examples are centred on Lily
ev --db "$DB" search --prompt "Once upon a time, there was a little girl named Lily" --top 5 \
    --format json
expect_rc 0 "search --prompt (json)"
cp "$TEST_TMP/out" "$J"
check "json names its schema" [ "$(js 'print(d["schema"], d["mode"], d["relative"])')" = "evalrun.search/1 prompt True" ]
check "5 hits, scores descending" js 'h=d["hits"]; assert len(h)==5 and all(a["score"]>=b["score"] for a,b in zip(h,h[1:]))'
check "relative score = mean activation / max activation (no negatives)" \
    js 'assert all(abs(x["score"]-x["act"]/x["max_act"])<1e-5 and x["neg"]==0 for x in d["hits"])'
TOPF=$(js 'print(d["hits"][0]["feature"])')
ev --db "$DB" show "$TOPF" --format json --top 5
expect_rc 0 "show the top hit (json)"
cp "$TEST_TMP/out" "$J"
check "the top hit's top examples are centred on 'Lily' (feature $TOPF)" \
    js 'c=d["top_contexts"]; t=[(x["tokens"][x["center"]]["text"], x["tokens"][x["center"]-1]["text"] if x["center"] else "") for x in c]; assert len(c)==5 and all("Lily" in a or (a=="ily" and b.endswith("L")) for a,b in t), t'
IDS=$(js 'print(",".join(str(x["example_id"]) for x in d["top_contexts"]))')
check "and the stored windows of those examples say Lily" \
    [ "$(sql "$DB" "SELECT count(*) FROM examples WHERE id IN ($IDS) AND text LIKE '%Lily%'")" = 5 ]

# the index's corpus (stories sampled from BOS) holds this very opening: the activation search
# computes for it equals the one `index` stored, by another code path (batched corpus encode)
ev --db "$DB" search --prompt "Once upon a time, there was a little girl named Lily" --score raw \
    --top 1024 --format json
cp "$TEST_TMP/out" "$J"
ACT=$(js "print([x['act'] for x in d['hits'] if x['feature'] == $TOPF][0])")
check "raw activation of feature $TOPF ($ACT) equals a stored top example's" \
    [ "$(sql "$DB" "SELECT count(*) FROM examples WHERE feature_idx = $TOPF AND kind = 'top' AND abs(activation - $ACT) < 1e-4")" -gt 0 ]
ev --db "$DB" search --prompt "Lily" --score raw --top 3 --format json
cp "$TEST_TMP/out" "$J"
check "raw scores are the activations" js 'assert d["relative"] is False and all(abs(x["score"]-x["act"])<1e-6 for x in d["hits"])'

# negatives: the same text as the prompt cancels everything; a different one lowers scores
ev --db "$DB" search --prompt "Lily went home" --negative "Lily went home"
expect_rc 0 "a negative equal to the prompt"
check "cancels every feature" out_has "(no feature matched)"
ev --db "$DB" search --prompt "Lily went home" --position all --negative "Tom ate a cake"
check "the search table fits 80 columns" width_ok "$TEST_TMP/out"
ev --db "$DB" search --prompt "Lily went home" --negative "Tom ate a cake" --top 50 --format json
cp "$TEST_TMP/out" "$J"
check "score = prompt activation - negative activation, both as fractions of max" \
    js 'assert all(abs(x["score"]-(x["act"]/x["max_act"]-x["neg"]))<1e-5 and x["score"]>0 for x in d["hits"])'
check "some hits are lowered by the negative" js 'assert any(x["neg"]>0 for x in d["hits"])'

# --position all takes the max over tokens: never below the last token's activation
ev --db "$DB" search --prompt "Lily went to the park" --score raw --top 1024 --format json
cp "$TEST_TMP/out" "$J"
js 'print("\n".join("%d %r" % (x["feature"], x["act"]) for x in d["hits"]))' >"$TEST_TMP/last"
ev --db "$DB" search --prompt "Lily went to the park" --score raw --position all --top 1024 --format json
cp "$TEST_TMP/out" "$J"
check "--position all: each feature's max over tokens >= its last-token activation" \
    js 'm={x["feature"]:x["act"] for x in d["hits"]}
last=[l.split() for l in open(sys.argv[1].replace("j.json","last"))]
assert last and all(int(f) in m and m[int(f)] >= float(a)-1e-6 for f,a in last) and len(m) > len(last)'

# ---- --out: a features file that specificity reads
"$PY" - "$DB" "$TOPF" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT OR REPLACE INTO features (sae_id, idx, description, desc_source) "
           "SELECT id, ?, 'the name Lily', 'user' FROM saes", (int(sys.argv[2]),))
db.commit()
EOF
ev --db "$DB" search --prompt "Once upon a time, there was a little girl named Lily" --top 4 \
    --out "$TEST_TMP/sample.txt"
expect_rc 0 "search --out"
check "shows the stored description" out_has "the name Lily"
check "the file lists 4 features" [ "$(grep -vc '^#' "$TEST_TMP/sample.txt")" = 4 ]
check "the described one with its description" grep -qP "^$TOPF\tthe name Lily$" "$TEST_TMP/sample.txt"
cp "$DB" "$TEST_TMP/spec.db"
ev --db "$TEST_TMP/spec.db" specificity --features "$TEST_TMP/sample.txt" --per-interval 1 --intervals 2
expect_rc 0 "specificity --features reads the file written by search --out"
check "and plans items for the described feature" [ "$(sql "$TEST_TMP/spec.db" "SELECT count(*) FROM items WHERE feature_idx = $TOPF")" -gt 0 ]

# ---- --like: decoder cosines, checked with numpy
ev --db "$DB" search --like "$TOPF" --top 6 --format json
expect_rc 0 "search --like"
cp "$TEST_TMP/out" "$J"
check "the feature itself is excluded" js "assert all(x['feature'] != $TOPF for x in d['hits'])"
check "cosines descending" js 'h=d["hits"]; assert len(h)==6 and all(a["score"]>=b["score"] for a,b in zip(h,h[1:]))'
if need numpy; then
"$PY" - "$SAE/sae_weights.safetensors" "$TOPF" >"$TEST_TMP/ref" <<'EOF'
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
t = h["W_dec"]
a, b = t["data_offsets"]
W = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(t["shape"]).astype(np.float64)
W = W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-30)
f = int(sys.argv[2])
c = W @ W[f]
c[f] = -np.inf
o = np.argsort(-c, kind="stable")[:6]
print(json.dumps([[int(i), float(c[i])] for i in o]))
EOF
check "neighbours and cosines equal numpy's from the safetensors" \
    js 'ref=json.load(open(sys.argv[1].replace("j.json","ref"))); assert [x["feature"] for x in d["hits"]]==[r[0] for r in ref] and all(abs(x["score"]-r[1])<1e-4 for x,r in zip(d["hits"],ref))'
else
    skip "neighbours and cosines equal numpy's from the safetensors" "$REASON"
fi

# ---- --attribution: the same numbers as `evalrun attribution`, BOS excluded
P="Once upon a time, there was a girl named Lily. Lily had a friend named Tim. One day,"
cat >"$TEST_TMP/set.json" <<EOF
{"name": "t", "prompts": [{"id": "x", "prompt": "$P", "target": " Lily", "contrast": " Tim"}]}
EOF
ev --db "$DB" attribution --prompts "$TEST_TMP/set.json" --ablate-top 0
expect_rc 0 "evalrun attribution on the same prompt"
sql "$DB" "SELECT feature_idx, sum(attribution) FROM attributions WHERE position > 0 GROUP BY feature_idx" >"$TEST_TMP/attr_ref"
D_REF=$(sql "$DB" "SELECT logit_diff FROM attribution_prompts")
ev --db "$DB" search --attribution --prompt "$P" --target " Lily" --contrast " Tim" --top 2000 --format json
expect_rc 0 "search --attribution --contrast"
cp "$TEST_TMP/out" "$J"
check "d equals the attribution evaluation's ($D_REF)" js "assert abs(d['logit_diff'] - $D_REF) < 1e-4"
check "per-feature attribution sums equal the stored rows" \
    js 'ref={int(a):float(b) for a,b in (l.strip().split("|") for l in open(sys.argv[1].replace("j.json","attr_ref")))}
got={x["feature"]:x["score"] for x in d["hits"]}
assert set(got)==set(ref) and all(abs(got[k]-ref[k])<1e-4 for k in ref)'
ev --db "$DB" search --attribution --prompt "$P" --target " Lily" --contrast " Tim"
check "the attribution table fits 80 columns" width_ok "$TEST_TMP/out"
check "ranked by attribution, largest first" js 'h=d["hits"]; assert all(a["score"]>=b["score"] for a,b in zip(h,h[1:]))'
ev --db "$DB" search --attribution --prompt "$P" --target " Lily" --top 3 --format json
expect_rc 0 "search --attribution without a contrast"
cp "$TEST_TMP/out" "$J"
"$EVALRUN" logits --prompt "$P" --top 512 >"$TEST_TMP/lg" 2>/dev/null
L=$(awk -F'\t' '$5=="\" Lily\""{print $3}' "$TEST_TMP/lg")
check "d is logit(' Lily') from evalrun logits ($L)" js "assert d['contrast'] is None and abs(d['logit_diff'] - float('$L')) < 1e-3"
ev --db "$DB" search --attribution --prompt "$P" --target " Lilypad"
expect_rc 1 "a target of several tokens: exit 1"
check "names the tokens it splits into" err_has "' Lily' 'p' 'ad'"
ev --db "$DB" search --attribution --prompt "$P" --target " Lily" --contrast " Lily"
expect_rc 2 "target equal to contrast: usage error"

# ---- show: text fits 80 columns, markers without colour; md; json
ev --db "$DB" show "$TOPF"
expect_rc 0 "show (text)"
cp "$TEST_TMP/out" "$TEST_TMP/card.txt"
check "no line wider than 80 columns" width_ok "$TEST_TMP/card.txt"
check "activating tokens marked with ⟦ ⟧" grep -qF "⟦ Lily⟧" "$TEST_TMP/card.txt"
check "no colour when stdout is not a terminal" bash -c "! grep -q $'\x1b' '$TEST_TMP/card.txt'"
for s in "the name Lily" "density" "top activating contexts" "activation interval" "logit effects" "nearest neighbours" "MLP neuron"; do
    check "card shows: $s" grep -qF "$s" "$TEST_TMP/card.txt"
done
ev --db "$DB" show "$TOPF" --color always
check "--color always: ANSI colour plus the markers" bash -c "grep -q $'\x1b\\[' '$TEST_TMP/out' && grep -qF '⟦' '$TEST_TMP/out'"
cp "$TEST_TMP/out" "$TEST_TMP/card_c.txt"
check "with colour still no line wider than 80 columns" width_ok "$TEST_TMP/card_c.txt"
NO_COLOR=1 ev --db "$DB" show "$TOPF" --color auto
check "NO_COLOR: no escapes" bash -c "! grep -q $'\x1b' '$TEST_TMP/out'"
# a feature with a long description and odd characters still fits
"$PY" - "$DB" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT OR REPLACE INTO features (sae_id, idx, description, desc_source) SELECT id, 7, ?, 'user' FROM saes",
           ("fires on " + "extraordinarily-long-hyphenated-words " * 6 + "and 名前 and emoji 🙂 and a\nnewline",))
db.commit()
EOF
ev --db "$DB" show 7 --neighbors 3
cp "$TEST_TMP/out" "$TEST_TMP/card7.txt"
check "a long wide-character description wraps within 80 columns" width_ok "$TEST_TMP/card7.txt"
ev --db "$DB" search --like 7 --top 3
check "search tables fit 80 columns" width_ok "$TEST_TMP/out"
ev --db "$DB" show "$TOPF" --format md
expect_rc 0 "show --format md"
check "md has the heading and a table" bash -c "grep -q '^## Feature $TOPF' '$TEST_TMP/out' && grep -q '^|---' '$TEST_TMP/out'"
ev --db "$DB" show "$TOPF" --format json
expect_rc 0 "show --format json"
cp "$TEST_TMP/out" "$J"
check "json parses (python json.load)" "$PY" -c 'import json,sys; json.load(sys.stdin)' <"$J"
check "json has every documented key" js 'assert d["schema"]=="evalrun.feature_card/1" and set(d) >= {"feature","d_sae","sae","model","hook","descriptions","scores","categories","stats","histogram","top_contexts","interval_contexts","logit_effects","neighbors","neuron"}'
check "json stats equal feature_stats" [ "$(js 'print("%.6f" % d["stats"]["max_act"])')" = "$(sql "$DB" "SELECT printf('%.6f', max_act) FROM feature_stats WHERE idx = $TOPF")" ]
check "json neighbours equal search --like" js 'ref=json.load(open(sys.argv[1].replace("j.json","ref"))); assert [x["feature"] for x in d["neighbors"]["items"][:6]]==[r[0] for r in ref]'
check "histogram counts add up" js 'h=d["histogram"]; assert sum(b["count"] for b in h["bins"])==h["n"]>0'

# ---- tag and features --category
ev --db "$DB" tag "$TOPF" People
expect_rc 0 "tag"
ev --db "$DB" tag "$TOPF" people
check "tagging twice is idempotent" out_has "already tagged 'people'"
ev --db "$DB" tag 3 people
ev --db "$DB" features --category people
expect_rc 0 "features --category people"
check "lists both tagged features" bash -c "grep -q '^ *$TOPF ' '$TEST_TMP/out' && grep -q '^ *3 ' '$TEST_TMP/out'"
check "with the description" out_has "the name Lily"
ev --db "$DB" features
check "features lists the categories with counts" grep -qE '^ +2  people$' "$TEST_TMP/out"
ev --db "$DB" show "$TOPF" --format json
cp "$TEST_TMP/out" "$J"
check "categories appear in show" js 'assert d["categories"]==["people"]'
ev --db "$DB" tag 3 people --remove
expect_rc 0 "tag --remove"
ev --db "$DB" tag 3 people --remove
expect_rc 1 "removing a category the feature lacks: exit 1"
ev --db "$DB" features --category people
check "the removed feature is gone" bash -c "! grep -q '^ *3 ' '$TEST_TMP/out'"

# ---- what the index did not store is computed, and agrees with what it stores
NF=$(sql "$DB" "SELECT idx FROM feature_neurons ORDER BY idx LIMIT 1")
ev --db "$TEST_TMP/fresh.db" show "$NF" --format json --neighbors 6 --logits 10 --no-index-build
expect_rc 0 "show --no-index-build on a database without an index"
cp "$TEST_TMP/out" "$J"
check "no statistics, contexts or histogram without the index" \
    js 'assert d["stats"] is None and d["top_contexts"]==[] and d["histogram"]["n"]==0'
check "logit effects computed equal the index's (feature $NF)" \
    js "import sqlite3; db=sqlite3.connect('$DB'); ref=[r[0] for r in db.execute('SELECT token FROM feature_logits WHERE idx=$NF AND sign=1 ORDER BY rank')]; e=d['logit_effects']; assert e['source']=='computed' and [t['token'] for t in e['top']]==ref[:10]"
check "neighbours computed equal the index's" \
    js "import sqlite3; db=sqlite3.connect('$DB'); ref=[r[0] for r in db.execute('SELECT other FROM feature_neighbors WHERE idx=$NF ORDER BY rank LIMIT 6')]; n=d['neighbors']; assert n['source']=='computed' and [x['feature'] for x in n['items']]==ref"
check "the neuron computed over the same sampled corpus equals the index's" \
    js "import sqlite3; db=sqlite3.connect('$DB'); l,nr,p=db.execute('SELECT layer, neuron, pearson FROM feature_neurons WHERE idx=$NF').fetchone(); u=d['neuron']; assert u['source']=='computed' and (u['layer'],u['neuron'])==(l,nr) and abs(u['pearson']-p)<1e-4, (u, l, nr, p)"
