# End-to-end tests of the CLI skeleton: help, version, usage errors, the database commands.
. "$ROOT/tests/cli/lib.sh"

ev --help
expect_rc 0 "--help exits 0"
check "--help lists the runs command" out_has "runs"
check "--help mentions the --db option" out_has "--db PATH"

ev --version
expect_rc 0 "--version exits 0"
check "--version prints the name" out_has "evalrun "

ev help runs
expect_rc 0 "help CMD exits 0"
check "help CMD shows the command usage" out_has "usage: evalrun runs"
ev runs --help
check "CMD --help shows the same usage" out_has "usage: evalrun runs"

ev help nosuch
expect_rc 2 "help of an unknown command is a usage error"
ev nosuch
expect_rc 2 "an unknown command exits 2"
check "an unknown command is named in one line" err_has "unknown command 'nosuch'"
check "the error is one line" err_one_line
ev runs --bogus
expect_rc 2 "an unknown flag exits 2"
check "the unknown flag is named" err_has "'--bogus'"
ev runs --limit x
expect_rc 2 "a non-numeric --limit exits 2"
check "the bad value is named" err_has "--limit expects an integer, got 'x'"
ev runs --limit 0
expect_rc 2 "an out-of-range --limit exits 2"
ev --quiet --verbose runs
expect_rc 2 "--quiet with --verbose is a usage error"
ev --db
expect_rc 2 "--db without a value is a usage error"
ev
expect_rc 2 "no command at all is a usage error"

ev --db "$TEST_TMP/none/x.db" db init
expect_rc 1 "a database in a missing directory exits 1"
check "the missing directory is named" err_has "$TEST_TMP/none"
ev --db "$TEST_TMP/absent.db" runs
expect_rc 1 "listing runs of a missing database exits 1"
check "no database file is created by a read" test ! -e "$TEST_TMP/absent.db"

ev --db "$TEST_TMP/a.db" db init
expect_rc 0 "db init creates the database"
check "db init shows the schema version" out_has "schema version"
check "db info lists the grades table" out_has "grades"
ev --db "$TEST_TMP/a.db" runs
expect_rc 0 "runs on an empty database exits 0"
check "runs says there are none" out_has "(no runs)"

EVALRUN_DB="$TEST_TMP/env.db" ev db init
check "EVALRUN_DB chooses the database" test -f "$TEST_TMP/env.db"
ev runs --db "$TEST_TMP/a.db"
expect_rc 0 "--db is accepted after the command too"

printf 'not a database, just some text that is long enough to look like a header' >"$TEST_TMP/junk.db"
cp "$TEST_TMP/junk.db" "$TEST_TMP/junk.orig"
ev --db "$TEST_TMP/junk.db" db info
expect_rc 1 "a file that is not a database exits 1"
check "it says it is not an evalrun database" err_has "not an evalrun database"
check "the file is left untouched" cmp -s "$TEST_TMP/junk.db" "$TEST_TMP/junk.orig"

ev --db "$TEST_TMP/new.db" db init
sqlite3 "$TEST_TMP/new.db" "PRAGMA user_version = 9999"
cp "$TEST_TMP/new.db" "$TEST_TMP/new.orig"
ev --db "$TEST_TMP/new.db" runs
expect_rc 1 "a database from a newer evalrun exits 1"
check "it names the newer schema" err_has "newer"
check "the newer database is untouched" cmp -s "$TEST_TMP/new.db" "$TEST_TMP/new.orig"

if [ "$(id -u)" -ne 0 ]; then
    ev --db "$TEST_TMP/ro.db" db init
    chmod 444 "$TEST_TMP/ro.db"
    ev --db "$TEST_TMP/ro.db" runs
    expect_rc 1 "an unwritable database exits 1"
else
    mkdir -p "$TEST_TMP/rodir"
    ev --db "/proc/evalrun-nope.db" db init
    expect_rc 1 "a database in an unwritable directory exits 1"
fi

# The default database's folder is made on demand (evalrun works from any directory).
mkdir -p "$TEST_TMP/elsewhere" && cd "$TEST_TMP/elsewhere"
ev db init
expect_rc 0 "db init with the default database works from any directory"
check "it made results/evalrun.db there" test -f "$TEST_TMP/elsewhere/results/evalrun.db"
cd "$TEST_TMP"
