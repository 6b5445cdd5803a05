# CLI tests for `evalrun report`: every format on synthetic runs of every kind
# (tests/cli/reports/fixture.py) with numbers checked against Python over the database
# (means, weighted kappa and Spearman by their textbook formulas), untrusted text escaped in
# HTML/Markdown and RFC 4180-quoted in CSV, the HTML rendered by headless Chromium (a
# screenshot that is not blank, and the DOM holding the SVG figures), and a real
# specificity run on stories260K + the demo SAE.
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"

ev report --help
expect_rc 0 "report --help"
check "help names the formats" out_has "md|csv|html|json"
ev report
expect_rc 2 "no --run: usage error"
ev report --run 1 --format pdf
expect_rc 2 "--format pdf: usage error"
check "names the flag" err_has "--format"

DB=$TEST_TMP/fx.db
"$EVALRUN" --db "$DB" --quiet db init >/dev/null
REF=$(python3 "$ROOT/tests/cli/reports/fixture.py" "$DB")
ref() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$REF" "$1"; }

ev --db "$DB" report --run no-such-run
expect_rc 1 "unknown run: exit 1"
check "names the run" err_has "no-such-run"

# ---- Markdown
ev --db "$DB" report --run spec-a
expect_rc 0 "markdown report of a specificity run"
check "pipe table header" out_has "| feature | description | 1 | 2 | 3 | 4 | act |"
check "overall activating mean as the fixture computed it" grep -qE \
    "^\| overall \|  \|.*\| $(printf '%.2f' "$(ref spec_mean_a)") \|" "$TEST_TMP/out"
check "database text escaped in markdown (no raw tag, pipe escaped)" bash -c \
    "grep -qF '&lt;script&gt;alert(1)&lt;/script&gt; \\| ' '$TEST_TMP/out' && ! grep -q '<script' '$TEST_TMP/out'"
check "every table row has the header's column count" python3 - "$TEST_TMP/out" <<'EOF'
import re, sys
rows = [l for l in open(sys.argv[1]) if l.startswith("|")]
cols = lambda l: len(re.split(r"(?<!\\)\|", l.strip())) - 2
blocks, cur = [], []
for l in open(sys.argv[1]):
    if l.startswith("|"): cur.append(cols(l))
    elif cur: blocks.append(cur); cur = []
if cur: blocks.append(cur)
sys.exit(0 if blocks and all(len(set(b)) == 1 for b in blocks) else 1)
EOF
# agreement: kappa_w = 1 - sum w O / sum w E and Spearman of average ranks, in plain Python
AGREE=$(python3 - "$DB" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rid = db.execute("SELECT id FROM runs WHERE tag = 'spec-a'").fetchone()[0]
def scores(kind, name):
    return dict(db.execute("SELECT item_key, score FROM grades WHERE run_id = ? AND grader_kind"
                           " = ? AND grader_name = ? AND parse_status = 'ok'", (rid, kind, name)))
a, b = scores("human", "alice"), scores("llm", "openai:mock")
keys = sorted(set(a) & set(b)); x = [a[k] for k in keys]; y = [b[k] for k in keys]; n = len(x)
K = 4
O = [[0] * K for _ in range(K)]
for u, v in zip(x, y): O[u][v] += 1
ra = [sum(O[i]) for i in range(K)]; cb = [sum(O[i][j] for i in range(K)) for j in range(K)]
w = lambda i, j: (i - j) ** 2 / (K - 1) ** 2
num = sum(w(i, j) * O[i][j] for i in range(K) for j in range(K)) / n
den = sum(w(i, j) * ra[i] * cb[j] for i in range(K) for j in range(K)) / n / n
def ranks(v):
    s = sorted(range(len(v)), key=lambda i: v[i]); r = [0.0] * len(v); i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[s[j + 1]] == v[s[i]]: j += 1
        for t in range(i, j + 1): r[s[t]] = (i + j) / 2 + 1
        i = j + 1
    return r
def pearson(p, q):
    mp, mq = sum(p) / len(p), sum(q) / len(q)
    c = sum((u - mp) * (v - mq) for u, v in zip(p, q))
    return c / (sum((u - mp) ** 2 for u in p) * sum((v - mq) ** 2 for v in q)) ** 0.5
print("| human:alice | llm:openai:mock | %d | %.3f | %.3f |" % (n, 1 - num / den,
      pearson(ranks(x), ranks(y))))
EOF
)
check "human-LLM agreement: kappa_w and Spearman as computed in Python" out_has "$AGREE"
check "agreement between the two raters listed" out_has "| human:alice | human:bob |"

check "feature categories: mean LLM score per category as the fixture computed it" bash -c \
    "grep -qF '| people | 2 | $(printf '%.2f' "$(ref people_mean)") |' '$TEST_TMP/out' &&
     grep -qF '| stories | 1 | $(printf '%.2f' "$(ref stories_mean)") |' '$TEST_TMP/out'"

# ---- provenance: every report states where its numbers come from (issue 17.4)
check "provenance: every field, in the order the docs give" python3 - "$TEST_TMP/out" <<'EOF'
import re, sys
keys = [l.split("|")[1].strip() for l in open(sys.argv[1]) if re.match(r"^\| [a-zA-Z ]+ \| ", l)]
keys = keys[keys.index("field") + 1:]
want = ["run", "model", "SAE", "hook", "grader", "template", "seed", "features", "per interval", "date", "code version"]
sys.exit(0 if keys[:len(want)] == want else 1)
EOF
check "provenance: grader kind and model with the counts, the SAE's hash, per interval from the configuration" bash -c "
    grep -qF '| grader | llm openai:mock; ' '$TEST_TMP/out' &&
    grep -qF '| SAE | sae (sha256 $(printf 'a%.0s' {1..64})) |' '$TEST_TMP/out' &&
    grep -qF '| per interval | 3 (4 intervals) |' '$TEST_TMP/out' && grep -qF '| seed | 0 |' '$TEST_TMP/out'"
check "markdown alignment: text columns :--, number columns --:" grep -qF \
    '| :-- | :-- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |' "$TEST_TMP/out"

# ---- specificity: per-interval distribution, the 95% interval of each mean, example contexts,
# each against Python over the database
ev --db "$DB" report --run spec-a --format json
cp "$TEST_TMP/out" "$TEST_TMP/spec-a.json"
check "per interval: n, mean, 1.96 s/sqrt(n) interval and the count of each score as Python computes them" python3 - "$DB" "$TEST_TMP/spec-a.json" <<'EOF'
import json, math, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rid = db.execute("SELECT id FROM runs WHERE tag = 'spec-a'").fetchone()[0]
by = {}
for kind, iv, sc in db.execute("SELECT i.kind, i.interval, g.score FROM items i JOIN grades g ON g.run_id = i.run_id"
                               " AND g.item_key = i.item_key AND g.grader_kind = 'llm' AND g.parse_status = 'ok'"
                               " WHERE i.run_id = ?", (rid,)):
    by.setdefault("non" if kind == "nonactivating" else iv + 1, []).append(sc)
d = json.load(open(sys.argv[2]))
t = [t for s in d["sections"] for t in s["tables"] if t["name"] == "scores_per_activation_interval_all_features"][0]
assert t["columns"] == ["interval", "n", "unparsed", "skipped", "mean", "ci95_lo", "ci95_hi", "score0", "score1", "score2", "score3"]
assert [r[0] for r in t["rows"]] == [1, 2, 3, 4, "non"], t["rows"]
for r in t["rows"]:
    v = by[r[0]]; n = len(v); m = sum(v) / n
    h = 1.96 * math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1)) / math.sqrt(n)
    assert r[1] == n and r[2] == 0 and r[3] == 0, r
    assert abs(r[4] - m) < 5e-4 and abs(r[5] - (m - h)) < 5e-4 and abs(r[6] - (m + h)) < 5e-4, (r, m, h)
    assert r[7:] == [v.count(k) for k in range(4)], (r, v)
ex = [t for s in d["sections"] for t in s["tables"] if t["name"] == "example_contexts"][0]
per = {}
for f, iv, sc, st, ctx in ex["rows"]:
    per[(f, iv)] = per.get((f, iv), 0) + 1
    assert st == "graded" and sc is not None, (sc, st)
    assert ("\u27e6" in ctx) == (iv != "non"), ctx
assert all(per[(f, iv)] == 3 for f in (7, 9) for iv in (1, 2, 3, 4)) and per[(7, "non")] == 2, per
fig = [f for s in d["sections"] for f in s["figures"] if "paper" in f["title"]][0]["svg"]
# stacked bars: one segment per score present in each interval, none for an absent one
assert fig.count('<rect class="seg') == sum(1 for v in by.values() for k in range(4) if v.count(k)), fig.count('<rect class="seg')
assert sum(f["svg"].count('class="errbar"') for s in d["sections"] for f in s["figures"]) == 5
EOF

# ---- unparsed and skipped beside n in every table of counts (issue 17.6): two copies of the
# database, one with some LLM answers unparsed, one graded by raters only with some skips;
# the per-interval table and the Metrics table (with the 95% interval of each value) against
# Python over the database
sqlw() { python3 -c "import sqlite3, sys; d = sqlite3.connect(sys.argv[1]); d.execute(sys.argv[2]); d.commit()" "$1" "$2"; }
cp "$DB" "$TEST_TMP/unp.db"
sqlw "$TEST_TMP/unp.db" "UPDATE grades SET parse_status = 'unparsed', score = NULL WHERE grader_kind = 'llm'
    AND run_id = (SELECT id FROM runs WHERE tag = 'spec-a') AND item_key IN (SELECT item_key FROM items
    WHERE run_id = grades.run_id AND kind = 'interval' AND interval = 1 ORDER BY item_key LIMIT 2)"
cp "$DB" "$TEST_TMP/skp.db"
sqlw "$TEST_TMP/skp.db" "DELETE FROM grades WHERE grader_kind = 'llm' AND run_id = (SELECT id FROM runs WHERE tag = 'spec-a')"
sqlw "$TEST_TMP/skp.db" "DELETE FROM grades WHERE grader_name != 'alice' AND run_id = (SELECT id FROM runs WHERE tag = 'spec-a')
    AND item_key IN (SELECT item_key FROM items WHERE run_id = grades.run_id AND kind = 'interval' AND interval = 2
    ORDER BY item_key LIMIT 3)"
sqlw "$TEST_TMP/skp.db" "UPDATE grades SET parse_status = 'skipped', score = NULL, raw_answer = 'skip' WHERE
    grader_name = 'alice' AND run_id = (SELECT id FROM runs WHERE tag = 'spec-a') AND item_key IN (SELECT item_key
    FROM items WHERE run_id = grades.run_id AND kind = 'interval' AND interval = 2 ORDER BY item_key LIMIT 3)"
for x in unp skp; do
    ev --db "$TEST_TMP/$x.db" report --run spec-a --format json
    cp "$TEST_TMP/out" "$TEST_TMP/$x.json"
done
check "unparsed and skipped beside n: per interval and per metric, as Python counts them; each metric's interval holds its value" \
    python3 - "$TEST_TMP/unp.db" "$TEST_TMP/unp.json" "$TEST_TMP/skp.db" "$TEST_TMP/skp.json" <<'EOF'
import json, math, sqlite3, sys
def expect(db):
    rid = db.execute("SELECT id FROM runs WHERE tag = 'spec-a'").fetchone()[0]
    llm = db.execute("SELECT count(*) FROM grades WHERE run_id = ? AND grader_kind = 'llm' AND parse_status = 'ok'", (rid,)).fetchone()[0]
    gk = "llm" if llm else "human"
    out = {}
    for key, kind, iv in db.execute("SELECT item_key, kind, interval FROM items WHERE run_id = ?", (rid,)).fetchall():
        g = db.execute("SELECT score, parse_status FROM grades WHERE run_id = ? AND item_key = ? AND grader_kind = ?", (rid, key, gk)).fetchall()
        sc = [s for s, st in g if st == "ok" and s is not None]
        slot = "non" if kind == "nonactivating" else iv + 1
        o = out.setdefault(slot, {"v": [], "unparsed": 0, "skipped": 0})
        if sc: o["v"].append(sum(sc) / len(sc))
        elif any(st == "unparsed" for _, st in g): o["unparsed"] += 1
        elif any(st == "skipped" for _, st in g): o["skipped"] += 1
    return out
def table(d, name):
    t = [t for s in d["sections"] for t in s["tables"] if t["name"] == name][0]
    return [dict(zip(t["columns"], r)) for r in t["rows"]]
bad = []
for dbp, jp, what in ((sys.argv[1], sys.argv[2], "unparsed"), (sys.argv[3], sys.argv[4], "skipped")):
    e = expect(sqlite3.connect(dbp)); d = json.load(open(jp))
    if not sum(o[what] for o in e.values()): bad.append(("fixture has no " + what, e))
    for r in table(d, "scores_per_activation_interval_all_features"):
        o = e[r["interval"]]
        if (r["n"], r["unparsed"], r["skipped"]) != (len(o["v"]), o["unparsed"], o["skipped"]): bad.append((what, r, o))
    act = [s for k, o in e.items() if k != "non" for s in o["v"]]
    want = {"specificity.mean": (act, sum(o[what] for k, o in e.items() if k != "non")),
            "specificity.nonact": (e["non"]["v"], e["non"][what])}
    for k, o in e.items():
        if k != "non": want["specificity.interval.%02d" % k] = (o["v"], o[what])
    # an example context without a score says why (unparsed / skipped), never a bare '-'
    seen = 0
    for r in table(d, "example_contexts"):
        if r["score"] is None:
            seen += 1
            if r["status"] != what: bad.append(("example status", r["status"], what))
        elif r["status"] != "graded": bad.append(("example status", r))
    if not seen: bad.append(("no example context without a score", what))
    rows = {r["metric"]: r for r in table(d, "metrics")}
    for name, (v, cnt) in want.items():
        r = rows.get(name)
        if r is None or r["n"] != len(v) or r[what] != cnt: bad.append((what, name, r, len(v), cnt)); continue
        m = sum(v) / len(v); sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
        if abs(r["value"] - m) > 5e-4: bad.append(("value", name, r, m))
        if sd == 0:
            if not (r["ci95_lo"] == r["ci95_hi"] == round(m, 4)): bad.append(("ci of a constant", name, r))
        elif not (r["ci95_lo"] <= r["value"] <= r["ci95_hi"]) or abs((r["ci95_hi"] - r["ci95_lo"]) / (2 * 1.96 * sd / math.sqrt(len(v))) - 1) > 0.3:
            bad.append(("ci", name, r, sd))
print(bad) if bad else None
sys.exit(1 if bad else 0)
EOF

# ---- CSV: tidy, one table per file (RFC 4180 quoting, CRLF)
ev --db "$DB" report --run attr --format csv
expect_rc 2 "csv of a report with several tables and no --table: usage error"
check "the error lists the table names" err_has "provenance, prompts, ranking_per_prompt_top_10_by_attribution"
ev --db "$DB" report --run attr --format csv --table nope
expect_rc 2 "--table naming no table: usage error"
ev --db "$DB" report --run attr --format md --table prompts
expect_rc 2 "--table with --format md: usage error"
for tag in spec-a attr metrics sweep infl compl; do
    ev --db "$DB" report --run $tag --format csv --out "$TEST_TMP/csv-$tag/"
    expect_rc 0 "csv of '$tag' into a directory, one file per table"
    ev --db "$DB" report --run $tag --format json
    cp "$TEST_TMP/out" "$TEST_TMP/csv-$tag.json"
done
ev --db "$DB" report --run attr --format csv --table prompts
check "--table NAME prints the same bytes as DIR/NAME.csv" cmp -s "$TEST_TMP/out" "$TEST_TMP/csv-attr/prompts.csv"
check "CRLF line ends" grep -q $'\r$' "$TEST_TMP/out"
check "csv, read strictly: one header row, every row as wide as it, a file per JSON table, cells as in JSON, quoted text round-trips" python3 - "$TEST_TMP" <<'EOF'
import csv, glob, json, os, sys
EVIL = 'a <script>alert(1)</script> | "quoted", & done'
root, evil_seen = sys.argv[1], False
for tag in ("spec-a", "attr", "metrics", "sweep", "infl", "compl"):
    doc = json.load(open(os.path.join(root, "csv-%s.json" % tag)))
    tables = {t["name"]: t for s in doc["sections"] for t in s["tables"]}
    files = {os.path.basename(f)[:-4]: f for f in glob.glob(os.path.join(root, "csv-" + tag, "*.csv"))}
    assert set(files) == set(tables), (tag, sorted(files), sorted(tables))
    for name, f in files.items():
        rows = list(csv.reader(open(f, newline=""), strict=True))
        t = tables[name]
        assert rows[0] == t["columns"], (f, rows[0])
        assert len(rows) == 1 + len(t["rows"]), f  # one header row, no title row
        for r, want in zip(rows[1:], t["rows"]):
            assert len(r) == len(rows[0]), f
            for got, w in zip(r, want):
                if w is None: assert got == "", (f, r)  # missing: an empty cell
                elif isinstance(w, (int, float)): assert abs(float(got) - w) < 1e-9, (f, got, w)
                else: assert got == w, (f, got, w)
            evil_seen = evil_seen or EVIL in r
sys.exit(0 if evil_seen else 1)
EOF
if ! need pandas; then
    skip "pandas.read_csv loads every table without options" "$REASON"
else
    check "pandas.read_csv loads every table without options: the header, the shape, numbers as numbers, NaN where missing" \
        "${EVALRUN_PYTHON:-/usr/bin/python3}" - "$TEST_TMP" <<'EOF'
import glob, json, math, os, sys
import pandas as pd
root = sys.argv[1]
for tag in ("spec-a", "attr", "metrics", "sweep", "infl", "compl"):
    doc = json.load(open(os.path.join(root, "csv-%s.json" % tag)))
    for s in doc["sections"]:
        for t in s["tables"]:
            df = pd.read_csv(os.path.join(root, "csv-" + tag, t["name"] + ".csv"))
            assert list(df.columns) == t["columns"], (t["name"], list(df.columns))
            assert df.shape == (len(t["rows"]), len(t["columns"])), (t["name"], df.shape)
            for j, c in enumerate(t["columns"]):
                vals = [r[j] for r in t["rows"]]
                if all(v is None or isinstance(v, (int, float)) for v in vals) and any(v is not None for v in vals):
                    assert pd.api.types.is_numeric_dtype(df[c]), (t["name"], c, df[c].dtype)
                for v, got in zip(vals, df[c]):
                    if v is None: assert pd.isna(got), (t["name"], c, got)
                    elif isinstance(v, (int, float)): assert math.isclose(float(got), v, abs_tol=1e-9), (t["name"], c, got, v)
EOF
fi

# ---- JSON
ev --db "$DB" report --run metrics --format json
expect_rc 0 "json report of an sae-metrics run"
check "json: the metrics table holds l0 = 12.5 as a number" python3 -c "
import json, sys
d = json.load(open('$TEST_TMP/out'))
t = [t for s in d['sections'] for t in s['tables'] if t['title'] == 'Quality metrics'][0]
sys.exit(0 if ['l0', 12.5] in t['rows'] else 1)"
ev --db "$DB" report --run compl --format md
check "completeness coverage line as computed" out_has "= $(ref coverage)00"

# bug: the first table of a section was written through a pointer that adding the second
# table had freed (influence: means + example texts); both must hold their rows
ev --db "$DB" report --run infl --format json
expect_rc 0 "influence report"
check "influence report: both tables filled (table pointer freed by the next table)" python3 -c "
import json, sys
d = json.load(open('$TEST_TMP/out'))
s = [s for s in d['sections'] if s['title'] == 'Steering outcomes'][0]
m, ex = s['tables'][0]['rows'], s['tables'][1]['rows']
ok = [r[:2] + r[4:6] for r in m] == [[7, 5, 2, 3], [7, 10, 3, 1]] and len(ex) == 4
ok = ok and all(r[4] == 'a <script>alert(1)</script> | \"quoted\", & done' for r in ex)
sys.exit(0 if ok else 1)"

# the steering outcomes count the answers that gave no score beside n (issue 17.6)
cp "$DB" "$TEST_TMP/iu.db"
sqlw "$TEST_TMP/iu.db" "UPDATE grades SET parse_status = 'unparsed', score = NULL WHERE id = (SELECT min(id) FROM grades
    WHERE run_id = (SELECT id FROM runs WHERE tag = 'infl') AND item_key LIKE '%/concept' AND grader_kind = 'llm')"
ev --db "$TEST_TMP/iu.db" report --run infl --format json
check "steering outcomes: unparsed and skipped per (feature, scale) as Python counts them" python3 - "$TEST_TMP/out" "$TEST_TMP/iu.db" <<'EOF'
import json, sqlite3, sys
d = json.load(open(sys.argv[1])); db = sqlite3.connect(sys.argv[2])
t = [t for s in d["sections"] for t in s["tables"] if t["name"] == "mean_scores_per_feature_and_scale"][0]
rows = [dict(zip(t["columns"], r)) for r in t["rows"]]
want = {}
for f, sc, st in db.execute("SELECT g.feature_idx, g.scale, r.parse_status FROM generations g JOIN grades r ON r.run_id = g.run_id "
        "AND r.item_key IN (g.item_key || '/concept', g.item_key || '/fluency') AND r.grader_kind = 'llm' "
        "WHERE g.run_id = (SELECT id FROM runs WHERE tag = 'infl') AND g.feature_idx IS NOT NULL"):
    w = want.setdefault((f, sc), {"unparsed": 0, "skipped": 0})
    if st in w: w[st] += 1
got = {(r["feature"], r["scale"]): {"unparsed": r["unparsed"], "skipped": r["skipped"]} for r in rows}
ok = got == want and sum(w["unparsed"] for w in want.values()) == 1
print(got, want) if not ok else None
sys.exit(0 if ok else 1)
EOF

# ---- HTML: every kind, written atomically
for tag in spec-a compl attr metrics sweep infl queue; do
    ev --db "$DB" report --run $tag --format html --out "$TEST_TMP/$tag.html"
    if [ $RC != 0 ] || [ ! -s "$TEST_TMP/$tag.html" ]; then
        fail "html report of '$tag'" "exit $RC"; continue
    fi
    pass "html report of '$tag'"
done
check "no raw <script> from the database in any report" bash -c \
    "! grep -l '<script' '$TEST_TMP'/*.html"
check "figures as inline SVG: specificity, attribution, density, sweep" bash -c "
    for f in spec-a attr metrics sweep; do grep -q '<svg xmlns' '$TEST_TMP/'\$f.html || exit 1; done"
check "html is well formed (tags balance, Python's parser)" python3 - "$TEST_TMP"/*.html <<'EOF'
import sys
from html.parser import HTMLParser
VOID = {"meta", "br", "img", "hr", "input", "link", "rect", "line", "circle", "polyline"}
class P(HTMLParser):
    def __init__(s): super().__init__(); s.stack = []; s.bad = 0
    def handle_starttag(s, t, a):
        if t not in VOID: s.stack.append(t)
    def handle_startendtag(s, t, a): pass
    def handle_endtag(s, t):
        if t in VOID: return
        if not s.stack or s.stack.pop() != t: s.bad += 1
for f in sys.argv[1:]:
    p = P(); p.feed(open(f).read()); p.close()
    if p.bad or p.stack: print(f, p.bad, p.stack); sys.exit(1)
EOF
check "html alignment: number columns (every cell a number or missing) right, text columns left" python3 - "$TEST_TMP"/*.html <<'EOF'
import sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(s): super().__init__(); s.tables = []; s.cell = None
    def handle_starttag(s, t, a):
        if t == "table": s.tables.append([])
        elif t == "tr" and s.tables: s.tables[-1].append([])
        elif t in ("td", "th") and s.tables: s.cell = [t, dict(a).get("class") == "num", ""]
    def handle_data(s, d):
        if s.cell: s.cell[2] += d
    def handle_endtag(s, t):
        if t in ("td", "th") and s.cell: s.tables[-1][-1].append(s.cell); s.cell = None
def num(v):
    try: float(v); return True
    except ValueError: return False
n_num = n_text = 0
for f in sys.argv[1:]:
    p = P(); p.feed(open(f).read())
    for rows in p.tables:
        for c in range(len(rows[0])):
            col = [r[c] for r in rows]
            flags = {x[1] for x in col}
            assert len(flags) == 1, (f, rows[0][c])  # header and cells agree
            vals = [x[2] for x in col[1:] if x[2] not in ("", "-")]
            want = bool(vals) and all(num(v) for v in vals)
            assert flags == {want}, (f, rows[0][c][2], vals[:3])
            n_num += want; n_text += not want
sys.exit(0 if n_num > 20 and n_text > 10 else 1)
EOF
check "html: the grader's token marks as <mark>, balanced" python3 -c "
import sys; t = open('$TEST_TMP/spec-a.html').read()
sys.exit(0 if t.count('<mark>') == t.count('</mark>') == 24 and '\u27e6' not in t.split('Example contexts')[1] else 1)"
ev --db "$DB" report --run spec-a --format html --out "$TEST_TMP/no/such/dir/r.html"
expect_rc 1 "--out into a missing directory: exit 1"
check "no file left behind" [ ! -e "$TEST_TMP/no/such/dir" ]

# ---- headless Chromium: a screenshot that shows something, and the DOM with the figures
if ! need chromium; then
    skip "chromium renders the HTML report" "$REASON"
else
    CHROME=(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
        --disable-background-networking --disable-component-update --disable-sync
        --user-data-dir="$(mktemp -d "$TEST_TMP/chrome.XXXXXX")")
    timeout 60 "${CHROME[@]}" --screenshot="$TEST_TMP/shot.png" --window-size=1200,2000 \
        "file://$TEST_TMP/spec-a.html" >"$TEST_TMP/chrome.out" 2>&1
    check "chromium wrote a screenshot" [ -s "$TEST_TMP/shot.png" ]
    check "the screenshot is a 1200x2000 PNG, not one colour, showing both figures' colours" python3 - "$TEST_TMP/shot.png" <<'EOF'
import struct, sys, zlib
d = open(sys.argv[1], "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n"
i, idat = 8, b""
w = h = ctype = 0
while i < len(d):
    n, t = struct.unpack(">I4s", d[i:i + 8])
    c = d[i + 8:i + 8 + n]
    if t == b"IHDR": w, h, depth, ctype = struct.unpack(">IIBB", c[:10])
    if t == b"IDAT": idat += c
    i += 12 + n
assert (w, h) == (1200, 2000), (w, h)
bpp = {2: 3, 6: 4}[ctype]
raw = zlib.decompress(idat); stride = w * bpp
prev = bytearray(stride); colours = {}
for y in range(h):
    f = raw[y * (stride + 1)]; line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0; b = prev[x]; c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    if y % 4 == 0:
        for x in range(0, w, 2):
            px = tuple(line[x * bpp:x * bpp + 3]); colours[px] = colours.get(px, 0) + 1
    prev = line
# the mean-score bars (#3366cc) and the stacked distribution's segments for scores 0-3
want = [(0x33, 0x66, 0xcc), (0xd9, 0xd9, 0xd9), (0x9e, 0xca, 0xe1), (0x42, 0x92, 0xc6), (0x08, 0x30, 0x6b)]
print([colours.get(c, 0) for c in want])
sys.exit(0 if len(colours) > 20 and all(colours.get(c, 0) > 50 for c in want) else 1)
EOF
    timeout 60 "${CHROME[@]}" --dump-dom "file://$TEST_TMP/spec-a.html" >"$TEST_TMP/dom0.html" 2>/dev/null
    check "the DOM Chromium built holds each specificity figure: stacked bars, means with error bars, marked examples" python3 - "$TEST_TMP/dom0.html" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
ok = t.count('<svg xmlns="http://www.w3.org/2000/svg" class="ev-stack"') == 1
ok = ok and t.count('class="ev-bar"') == 1 and t.count('<g class="errbar"') == 5
ok = ok and len(re.findall(r'<rect class="seg s[0-3]"', t)) >= 5 and t.count("<figure>") == 2
ok = ok and t.count("<mark>") == 24 and 'id="t-provenance"' in t
sys.exit(0 if ok else 1)
EOF
    timeout 60 "${CHROME[@]}" --dump-dom "file://$TEST_TMP/attr.html" >"$TEST_TMP/dom.html" 2>/dev/null
    check "the DOM Chromium built holds the scatter plot's points" \
        [ "$(grep -o '<circle class="pt"' "$TEST_TMP/dom.html" | wc -l)" = 24 ]
    check "the DOM shows the escaped text as text" grep -qF '&lt;script&gt;alert(1)&lt;/script&gt;' "$TEST_TMP/dom.html"
    timeout 60 "${CHROME[@]}" --dump-dom "file://$TEST_TMP/sweep.html" >"$TEST_TMP/dom2.html" 2>/dev/null
    check "the sweep figure: one line per dictionary size" \
        [ "$(grep -o '<polyline' "$TEST_TMP/dom2.html" | wc -l)" = 2 ]
fi

# ---- a real run: the demo SAE's index and a specificity run graded by the mock server
BASE=$TEST_TMP/base.db
if ! build_index "$BASE"; then
    skip "report of a real specificity run" "$REASON"
    exit 0
fi
mapfile -t F < <(pick_features "$BASE" 2)
printf '%s\tthe word <the>\n%s\tpeople\n' "${F[0]}" "${F[1]}" >"$TEST_TMP/feats.txt"
start_mock
script '{"rules": [{"match": "<context>\\n(?:(?!</context>)[\\s\\S])*\u27e6", "answer": "Score: 2"}], "answer": "Score: 0", "latency_ms": 0}'
ev --db "$BASE" specificity --features "$TEST_TMP/feats.txt" --per-interval 2 --intervals 3 \
    --seed 5 --tag real "${GRADE[@]}"
expect_rc 0 "real specificity run"
ev --db "$BASE" report --run real --format md
expect_rc 0 "report of the real run"
check "overall activating mean 2.00, non-activating 0.00" grep -qE \
    '^\| overall \|  \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| 2\.00 \| 0\.00 \| 0\.0 \| 0\.00 \|' "$TEST_TMP/out"
check "the feature's description, escaped" out_has "the word &lt;the&gt;"
ev --db "$BASE" report --run real --format html --out "$TEST_TMP/real.html"
expect_rc 0 "html of the real run"
check "real html has the interval figure" grep -q 'Specificity by activation interval</text>' "$TEST_TMP/real.html"

# real sae-metrics and attribution runs: the density histogram holds every latent, the pooled
# correlation is the one Python computes from the stored ablations
ev --db "$BASE" sae-metrics --generate --tokens 2048 --tag m1
expect_rc 0 "real sae-metrics run"
ev --db "$BASE" report --run m1 --format json
check "density histogram: live + dead = d_sae (1024)" python3 -c "
import json, sys
d = json.load(open('$TEST_TMP/out'))
t = [t for s in d['sections'] for t in s['tables'] if t['title'].startswith('Feature density')][0]
s = [s for s in d['sections'] if s['title'] == 'SAE metrics'][0]
sys.exit(0 if sum(r[2] for r in t['rows']) == 1024 and len(s['figures']) == 1 else 1)"
ev --db "$BASE" attribution --prompts "$ROOT/evals/sets/stories_attribution.json" --tag a1
expect_rc 0 "real attribution run"
ev --db "$BASE" report --run a1
WANT=$(python3 - "$BASE" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT -attribution, ablation_effect FROM attributions a JOIN runs r ON"
                  " r.id = a.run_id WHERE r.tag = 'a1' AND ablation_effect IS NOT NULL").fetchall()
x = [a for a, b in rows]; y = [b for a, b in rows]; n = len(x)
mx, my = sum(x) / n, sum(y) / n
c = sum((a - mx) * (b - my) for a, b in rows)
r = c / (sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y)) ** 0.5
print("Pooled over %d ablations: pearson %.3f" % (n, r))
EOF
)
check "pooled attribution-ablation correlation as Python computes it ($WANT)" out_has "$WANT"

# a real (tiny) sweep: the table has its four points, the figure one line per size
ev --db "$BASE" collect --hook blocks.2.hook_resid_post --generate --tokens 4096 --ctx 64 --seed 3 --out "$TEST_TMP/acts"
ev --db "$BASE" sweep --hook blocks.2.hook_resid_post --acts "$TEST_TMP/acts" --d-sae 32,64 \
    --tokens 5120,10240 --batch 256 --l1 2 --out "$TEST_TMP/sweep" --tag sw
expect_rc 0 "real sweep run"
ev --db "$BASE" report --run sw --format html --out "$TEST_TMP/sw.html"
check "real sweep: four rows, two lines in the figure" bash -c \
    "[ \$(grep -o '<tr><td class=\"num\">[0-9]' '$TEST_TMP/sw.html' | wc -l) = 4 ] && [ \$(grep -o '<polyline' '$TEST_TMP/sw.html' | wc -l) = 2 ]"
