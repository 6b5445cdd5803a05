#!/bin/sh
# Turns harness/schema/NNN_name.sql files into a C header: one migration per file, applied in
# order of NNN by store.c. Usage: embed_sql.sh FILE... > schema_sql.h
set -eu
echo "/* generated from harness/schema/NNN_name.sql by harness/embed_sql.sh; do not edit */"
echo "static const struct store_migration store_migrations[] = {"
for f in "$@"; do
    n=$(basename "$f" | sed 's/^\([0-9]*\)_.*/\1/' | sed 's/^0*//')
    printf '    { %s, "%s",\n' "$n" "$(basename "$f")"
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/      "/' -e 's/$/\\n"/' "$f"
    echo "    },"
done
echo "};"
