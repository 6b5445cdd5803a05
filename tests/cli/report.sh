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

# ---- CSV (RFC 4180)
ev --db "$DB" report --run attr --format csv
expect_rc 0 "csv report of an attribution run"
check "CRLF line ends" grep -q $'\r$' "$TEST_TMP/out"
check "csv parses; quoted text round-trips; rows as wide as their header" python3 - "$TEST_TMP/out" <<'EOF'
import csv, sys
EVIL = 'a <script>alert(1)</script> | "quoted", & done'
rows = list(csv.reader(open(sys.argv[1], newline="")))
blocks, cur = [], []
for r in rows:
    if not r: blocks.append(cur); cur = []
    else: cur.append(r)
blocks.append(cur)
ok = any(EVIL in r for b in blocks for r in b)
for b in blocks:  # title row, header, data
    ok = ok and len(b) >= 2 and all(len(r) == len(b[1]) for r in b[2:])
sys.exit(0 if ok else 1)
EOF

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
    check "the screenshot is a 1200x2000 PNG, not one colour, with blue bars" python3 - "$TEST_TMP/shot.png" <<'EOF'
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
prev = bytearray(stride); colours = set(); blue = 0
for y in range(700):  # the top: title, text and the figure
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
            px = tuple(line[x * bpp:x * bpp + 3]); colours.add(px)
            if px == (0x33, 0x66, 0xcc): blue += 1
    prev = line
sys.exit(0 if len(colours) > 20 and blue > 100 else 1)
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
    '^\| overall \|  \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| 2\.00 \| 0\.0 \| 0\.00 \|' "$TEST_TMP/out"
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
    "[ \$(grep -o '<tr><td>[0-9]' '$TEST_TMP/sw.html' | wc -l) = 4 ] && [ \$(grep -o '<polyline' '$TEST_TMP/sw.html' | wc -l) = 2 ]"
