#!/bin/sh
# Turns harness/store/schema/NNN_name.sql files into a C header: one migration per file, applied in
# order of NNN by store.c. Each file becomes a NULL-terminated array of its lines (so no single
# string literal grows past the 4095 characters C requires compilers to accept; store.c joins
# them). Usage: embed_sql.sh FILE... > schema_sql.h
set -eu
echo "/* generated from harness/store/schema/NNN_name.sql by harness/scripts/embed_sql.sh; do not edit */"
i=0
for f in "$@"; do
    echo "static const char *const store_migration_$i[] = {"
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n",/' "$f"
    echo "    NULL,"
    echo "};"
    i=$((i + 1))
done
echo "static const struct store_migration store_migrations[] = {"
i=0
for f in "$@"; do
    n=$(basename "$f" | sed 's/^\([0-9]*\)_.*/\1/' | sed 's/^0*//')
    printf '    { %s, "%s", store_migration_%s },\n' "$n" "$(basename "$f")" "$i"
    i=$((i + 1))
done
echo "};"
