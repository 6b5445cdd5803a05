# CLI tests for `evalrun review`, end to end under tmux: a specificity run on stories260K +
# the demo SAE without a grader queues items; the rater's keypresses land in the database at
# once (score, skip, undo); killing the tmux session mid-way (SIGHUP) loses nothing and a
# restart resumes; two raters; a --sample of LLM-graded items shows the running agreement
# and never the LLM's score; a monochrome terminal still marks the activating tokens; a
# terminal too small and a missing terminal are clear errors (exit 1).
. "$ROOT/tests/cli/lib.sh"
. "$ROOT/tests/cli/evals/common.sh"

ev review --help
expect_rc 0 "review --help"
check "help lists the keys" out_has "s skip"
ev review --run 1
expect_rc 2 "no --rater: usage error"
ev review --run 1 --rater ""
expect_rc 2 "empty rater: usage error"

if ! need tmux; then
    skip "review under tmux" "$REASON"
    exit 0
fi
BASE=$TEST_TMP/base.db
if ! build_index "$BASE"; then
    skip "review end-to-end" "$REASON"
    exit 0
fi
mapfile -t F < <(pick_features "$BASE" 2)
printf '%s\tthe word the\n%s\tnames of people\n' "${F[0]}" "${F[1]}" >"$TEST_TMP/feats.txt"
DB=$TEST_TMP/q.db
cp "$BASE" "$DB"
ev --db "$DB" specificity --features "$TEST_TMP/feats.txt" --per-interval 1 --intervals 4 \
    --seed 3 --tag queued
expect_rc 0 "specificity without a grader queues items"
N_ITEMS=$(sql "$DB" "SELECT count(*) FROM items WHERE kind IN ('interval', 'nonactivating')")
check "items queued" [ "$N_ITEMS" -gt 3 ]

ev --db "$DB" review --run queued --rater alice
expect_rc 1 "stdin not a terminal: exit 1"
check "says so" err_has "standard input is not one"

SOCK=evalrun-review-$$
T=(tmux -L "$SOCK" -f /dev/null)
trap '"${T[@]}" kill-server 2>/dev/null; [ -n "$_SERVER" ] && kill $_SERVER 2>/dev/null' EXIT
screen() { "${T[@]}" capture-pane -t "$1" -p 2>/dev/null; }
# wait_for SESSION TEXT: up to 15 s for TEXT on the screen
wait_for() {
    for _ in $(seq 150); do screen "$1" | grep -qF -- "$2" && return 0; sleep 0.1; done
    screen "$1" >"$TEST_TMP/out"; return 1
}
# wait_change SESSION BEFORE: up to 5 s for the screen to differ from BEFORE (a key was taken)
wait_change() {
    for _ in $(seq 100); do [ "$(screen "$1")" != "$2" ] && return 0; sleep 0.05; done; return 1
}
# wait_gone PATTERN: up to 10 s for no process to match PATTERN (pgrep -f)
wait_gone() {
    for _ in $(seq 200); do pgrep -f -- "$1" >/dev/null || return 0; sleep 0.05; done; return 1
}
# wait_file FILE: up to 5 s for FILE to be non-empty (a session's exit status)
wait_file() {
    for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1
}
# wait_sql DB QUERY WANT: up to 10 s for QUERY to give WANT
wait_sql() {
    for _ in $(seq 100); do [ "$(sql "$1" "$2")" = "$3" ] && return 0; sleep 0.1; done; return 1
}
start() { # start SESSION COLS ROWS ARGS...: review in a fresh tmux session
    local s=$1 c=$2 r=$3; shift 3
    "${T[@]}" new-session -d -s "$s" -x "$c" -y "$r" \
        "$(printf '%q ' "$EVALRUN" --db "$DB" review "$@") 2>$TEST_TMP/$s.err; echo \$? >$TEST_TMP/$s.rc; sleep 60"
}
# quit SESSION: q, then wait for that review to exit (its status file), so that the next
# command never races the database's close (the last connection checkpoints the WAL)
quit() { "${T[@]}" send-keys -t "$1" q; wait_file "$TEST_TMP/$1.rc"; }
HUMAN="SELECT count(*) FROM grades WHERE grader_kind = 'human' AND grader_name = 'alice'"

start a 100 30 --run queued --rater alice
check "the screen shows the first item, its feature and description" wait_for a "item 1 of $N_ITEMS"
SCR=$(screen a)
check "feature id shown" grep -qE "feature (${F[0]}|${F[1]}) " <<<"$SCR"
check "description shown" grep -qE "description: (the word the|names of people)" <<<"$SCR"
check "interval, non-activating and activation hidden from the rater by default (issue 17.4)" bash -c '! grep -qE "interval [1-4]|non-activating|activation [0-9]" <<<"$1"' _ "$SCR"
check "key help on the bottom line" grep -qF "0-3 score" <<<"$SCR"
# an activating context shows marked tokens: find one (skip through non-activating ones)
"${T[@]}" send-keys -t a 2
check "a keypress stores a grade at once" wait_sql "$DB" "$HUMAN" 1
check "the grade: score 2, parse ok, the rater's name" [ "$(sql "$DB" "SELECT score || parse_status
    FROM grades WHERE grader_name = 'alice'")" = 2ok ]
check "progress moves on" wait_for a "done 1"
"${T[@]}" send-keys -t a 3
wait_sql "$DB" "$HUMAN" 2
"${T[@]}" send-keys -t a s
check "skip stored as 'skipped', not 'unparsed' (issue 17.6)" wait_sql "$DB" "SELECT count(*) FROM grades WHERE
    grader_name = 'alice' AND score IS NULL AND raw_answer = 'skip' AND parse_status = 'skipped'" 1
"${T[@]}" send-keys -t a u
check "u undoes the last answer (the skip)" wait_sql "$DB" "$HUMAN" 2
"${T[@]}" send-keys -t a Left
check "left arrow undoes too" wait_sql "$DB" "$HUMAN" 1
"${T[@]}" send-keys -t a 3
wait_sql "$DB" "$HUMAN" 2
"${T[@]}" send-keys -t a '?'
check "? shows the help" wait_for a "cleanly identifies"
"${T[@]}" send-keys -t a x
check "any key leaves the help" wait_for a "0-3 score"
check "the LLM is never mentioned (blinded)" bash -c "! screen a | grep -qi llm"
check "activating tokens marked with brackets somewhere in the queue" bash -c '
    for i in $(seq '"$N_ITEMS"'); do
        '"$(declare -f screen wait_change); T=(${T[*]})"'
        before=$(screen a)
        grep -q "⟦" <<<"$before" && exit 0
        "${T[@]}" send-keys -t a s; wait_change a "$before"
    done; exit 1'
check "colour terminal: activating tokens on a coloured background" bash -c \
    "$(printf '%q ' "${T[@]}") capture-pane -t a -p -e | grep '⟦' | grep -q $'\e\\[[0-9;]*4[1-6]m'"
# undo the skips made while looking, back to the two scored items
for _ in $(seq "$N_ITEMS"); do
    n=$(sql "$DB" "$HUMAN")
    [ "$n" -le 2 ] && break
    "${T[@]}" send-keys -t a u; wait_sql "$DB" "$HUMAN" $((n - 1))
done
check "back to the two scored answers" wait_sql "$DB" "$HUMAN" 2

# kill the session (SIGHUP to review): nothing lost, the database intact
"${T[@]}" kill-session -t a
wait_gone "^$EVALRUN --db $DB review --run queued --rater alice"
check "grades survive a killed terminal" [ "$(sql "$DB" "$HUMAN")" = 2 ]
check "database intact" [ "$(sql "$DB" "PRAGMA integrity_check")" = ok ]

start b 100 30 --run queued --rater alice
check "restart resumes: 2 done, at item 3" wait_for b "item 3 of $N_ITEMS  done 2"
"${T[@]}" send-keys -t b 1
wait_sql "$DB" "$HUMAN" 3
quit b
check "q quits with exit 0" [ "$(cat "$TEST_TMP/b.rc" 2>/dev/null)" = 0 ]
check "the terminal is restored and a summary printed" wait_for b "3 of $N_ITEMS answered"

# a second rater on the same run
start c 100 30 --run queued --rater bob
check "bob starts at item 1" wait_for c "item 1 of $N_ITEMS  done 0"
"${T[@]}" send-keys -t c 0
check "bob's grade is his own" wait_sql "$DB" "SELECT count(*) FROM grades WHERE grader_name = 'bob'" 1
check "alice's grades unchanged" [ "$(sql "$DB" "$HUMAN")" = 3 ]
quit c

# ---- the database held by another connection (a writer in exclusive locking mode): review
# waits for it instead of failing "database is locked", at start and at a keypress, and a
# save that fails leaves the item on the screen, unanswered, to be pressed again
hold() { # hold SECONDS: Python holds an exclusive lock on $DB until then (returns once held)
    rm -f "$TEST_TMP/held"
    python3 - "$DB" "$TEST_TMP/held" "$1" <<'EOF' &
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA locking_mode=EXCLUSIVE"); db.execute("BEGIN EXCLUSIVE")
db.execute("CREATE TABLE IF NOT EXISTS _held (x)")
open(sys.argv[2], "w").write("held\n"); time.sleep(float(sys.argv[3])); db.execute("ROLLBACK")
EOF
    HOLDER=$!
    wait_file "$TEST_TMP/held"
}
hold 1.5
start w 100 30 --run queued --rater walt
check "started while the database is locked: review waits and comes up" wait_for w "item 1 of $N_ITEMS  done 0"
check "no 'database is locked'" bash -c "! grep -q locked '$TEST_TMP/w.err'"
wait "$HOLDER"
hold 1.5
"${T[@]}" send-keys -t w 2
wait "$HOLDER"
check "a keypress while the database is locked is stored once the lock goes" \
    wait_sql "$DB" "SELECT count(*) || ':' || max(score) FROM grades WHERE grader_name = 'walt'" 1:2
check "and the screen moves on" wait_for w "saved item 1: 2"
sql "$DB" "CREATE TRIGGER no_walt BEFORE INSERT ON grades WHEN NEW.grader_name = 'walt'
           BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END" >/dev/null
"${T[@]}" send-keys -t w 3
check "a failed save says so and keeps the item" wait_for w "NOT SAVED (press the key again)"
SCR=$(screen w)
check "the review is still open on item 2, 1 done" grep -qF "item 2 of $N_ITEMS  done 1" <<<"$SCR"
check "nothing stored for it" [ "$(sql "$DB" "SELECT count(*) FROM grades WHERE grader_name = 'walt'")" = 1 ]
sql "$DB" "DROP TRIGGER no_walt" >/dev/null
"${T[@]}" send-keys -t w 3
check "pressed again: stored" wait_sql "$DB" "SELECT count(*) || ':' || sum(score) FROM grades WHERE grader_name = 'walt'" 2:5
quit w
check "review exits 0 after all that" [ "$(cat "$TEST_TMP/w.rc" 2>/dev/null)" = 0 ]

# a monochrome terminal: the marks do not depend on colour
start d 100 30 --run queued --rater carol
wait_for d "item 1 of"
"${T[@]}" kill-session -t d
"${T[@]}" new-session -d -s m -x 100 -y 30 \
    "TERM=vt100 $(printf '%q ' "$EVALRUN" --db "$DB" review --run queued --rater mono); sleep 60"
check "monochrome (TERM=vt100): the screen comes up" wait_for m "item 1 of"
check "monochrome: brackets mark activating tokens somewhere in the queue" bash -c '
    for i in $(seq '"$N_ITEMS"'); do
        '"$(declare -f screen wait_change); T=(${T[*]})"'
        before=$(screen m)
        grep -q "⟦" <<<"$before" && exit 0
        "${T[@]}" send-keys -t m s; wait_change m "$before"
    done; exit 1'
check "monochrome: no colour, the marked tokens in reverse video or underlined" bash -c \
    "$(printf '%q ' "${T[@]}") capture-pane -t m -p -e >'$TEST_TMP/mono'; ! grep -q $'\e\\[[0-9;]*4[1-6]m' '$TEST_TMP/mono' && grep '⟦' '$TEST_TMP/mono' | grep -q $'\e\\[[0-9;]*[47]m'"
"${T[@]}" kill-session -t m

# Ctrl-C (SIGINT): the screen is left through the normal path, exit 130, the summary printed
start i 100 30 --run queued --rater sigint
wait_for i "item 1 of"
"${T[@]}" send-keys -t i 2
wait_sql "$DB" "SELECT count(*) FROM grades WHERE grader_name = 'sigint'" 1
PID=$(pgrep -f "^$EVALRUN --db $DB review --run queued --rater sigint" | head -1)
[ -n "$PID" ] && kill -INT "$PID"
wait_file "$TEST_TMP/i.rc"
check "SIGINT: exit 130" [ "$(cat "$TEST_TMP/i.rc" 2>/dev/null)" = 130 ]
check "SIGINT: terminal restored, summary printed" wait_for i "1 of $N_ITEMS answered"
check "SIGINT: the answer given is stored" [ "$(sql "$DB" "SELECT count(*) FROM grades WHERE grader_name = 'sigint'")" = 1 ]

# too small
start e 40 10 --run queued --rater alice
wait_file "$TEST_TMP/e.rc"
check "terminal too small: exit 1" [ "$(cat "$TEST_TMP/e.rc" 2>/dev/null)" = 1 ]
check "says the sizes" grep -q "terminal too small for review: 40x10, need at least 60x16" "$TEST_TMP/e.err"
check "no grade stored by it" [ "$(sql "$DB" "$HUMAN")" = 3 ]

# ---- an influence run without a grader: steering items (prompt, baseline, steered text)
printf '{"name": "mini", "prompts": [{"id": "once", "kind": "stories", "text": "Once upon a time,"}]}\n' \
    >"$TEST_TMP/set.json"
printf '%s\tdogs and barking\n' "${F[0]}" >"$TEST_TMP/inf.txt"
DB=$TEST_TMP/inf.db
ev --db "$DB" influence --features "$TEST_TMP/inf.txt" --prompts "$TEST_TMP/set.json" \
    --max-act 2 --max-tokens 12 --scale 5 --seed 3 --tag steer
expect_rc 0 "influence without a grader queues its items"
start f 100 30 --run steer --rater alice
check "steering item: the prompt, the baseline and the steered text" wait_for f "STEERED: "
SCR=$(screen f)
check "steering item: what to rate" grep -qE "rate (CONCEPT|FLUENCY)" <<<"$SCR"
check "steering item: the description from the features file" grep -qF "description: dogs and barking" <<<"$SCR"
check "steering item: the prompt shown" grep -qF "PROMPT: Once upon a time," <<<"$SCR"
"${T[@]}" send-keys -t f 2
check "steering item graded by the keypress" wait_sql "$DB" "SELECT count(*) FROM grades WHERE
    grader_kind = 'human' AND score = 2 AND item_key LIKE 'f${F[0]}/s5/p0/%'" 1
quit f

# ---- --sample: LLM-graded items, the running agreement after 10 answers
FX=$TEST_TMP/fx.db
"$EVALRUN" --db "$FX" --quiet db init >/dev/null
python3 "$ROOT/tests/cli/reports/fixture.py" "$FX" >/dev/null
DB=$FX
start s 100 30 --run spec-a --rater dave --sample 12 --seed 4
check "sample of 12" wait_for s "item 1 of 12"
for i in $(seq 10); do
    "${T[@]}" send-keys -t s $(((i * 7) % 4))
    wait_sql "$FX" "SELECT count(*) FROM grades WHERE grader_name = 'dave'" "$i" || break
done
check "ten answers stored" [ "$(sql "$FX" "SELECT count(*) FROM grades WHERE grader_name = 'dave'")" = 10 ]
check "running agreement shown after 10" wait_for s "agreement with the LLM over 10 items"
WANT=$(python3 - "$FX" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT h.score, g.score FROM grades h JOIN grades g USING (run_id, item_key)"
                  " WHERE h.grader_name = 'dave' AND g.grader_kind = 'llm'").fetchall()
x = [a for a, b in rows]; y = [b for a, b in rows]; n = len(x)
mx, my = sum(x) / n, sum(y) / n
vx = sum((a - mx) ** 2 for a in x) / n; vy = sum((b - my) ** 2 for b in y) / n
c = sum((a - mx) * (b - my) for a, b in zip(x, y)) / n
k = 2 * c / (vx + vy + (mx - my) ** 2)   # = quadratic-weighted kappa for integer scores
print("weighted kappa %.2f" % k)
EOF
)
check "the agreement is the weighted kappa of the stored pairs ($WANT)" wait_for s "$WANT"
quit s
ev --db "$FX" review --run compl --rater dave
expect_rc 1 "a completeness run cannot be reviewed: exit 1"
check "says which runs can" err_has "specificity and influence runs"

# ---- blinding (issue 17.4): the interval, the activation and the steering scale are hidden
# unless --show-context-info; messages name the item by its place, not by its key
DB=$TEST_TMP/q.db
start g 100 30 --run queued --rater erin
check "blind: the first item" wait_for g "item 1 of $N_ITEMS"
SCR=$(screen g)
check "blind: no interval, activation or item key on the screen" bash -c \
    '! grep -qE "interval [1-4]|non-activating|activation [0-9]|f[0-9]+:(i|n)" <<<"$1"' _ "$SCR"
"${T[@]}" send-keys -t g 1
check "blind: the message names the item by its place" wait_for g "saved item 1: 1"
quit g
start h 100 30 --run queued --rater frank --show-context-info
check "--show-context-info: the interval (or non-activating) and the activation shown" \
    wait_for h "activation "
SCR=$(screen h)
check "--show-context-info: 'interval K of 4' or 'non-activating'" grep -qE "interval [1-4] of 4|non-activating" <<<"$SCR"
quit h
DB=$TEST_TMP/inf.db
start j 100 30 --run steer --rater gina
check "blind steering item: the texts" wait_for j "STEERED: "
check "blind steering item: no scale" bash -c '! grep -qE "clamped|scale [0-9]" <<<"$1"' _ "$(screen j)"
quit j
start k 100 30 --run steer --rater hugo --show-context-info
check "--show-context-info: the steering scale shown" wait_for k "(scale 5 x max act)"
quit k
