#!/usr/bin/env bash
# `make docs`: the API documentation of the three libraries, built by DocC (the `docc` that
# ships with the Swift toolchain, driven by swift-docc-plugin; nothing is downloaded), one
# archive per module in $DOCS_OUTPUT (default .build-docs/docs/<Module>.doccarchive).
#
# It fails
# - on any DocC warning (a broken symbol link, a parameter documented under a wrong name, …):
#   `--warnings-as-errors`;
# - on any public symbol without documentation. DocC's coverage report
#   (`--experimental-documentation-coverage --coverage-summary-level detailed`) prints a table
#   row per symbol; a row whose "Abstract?" column is false is a symbol whose page would have
#   no summary, and this lists them. A member that implements a standard-library requirement
#   (`==`, `hash(into:)`, `makeAsyncIterator()`, the `map` and `filter` every AsyncSequence
#   has) shows that requirement's documentation (`--enable-inherited-docs`), so it counts as
#   documented; everything else needs a doc comment of its own.
#
# DOCS_SCRATCH (default .build-docs) is the build directory: apart from .build, so that
# building the documentation does not disturb the builds of `make demo` and `make test`.
set -euo pipefail

scratch="${DOCS_SCRATCH:-.build-docs}"
output="${DOCS_OUTPUT:-$scratch/docs}"
modules=(MessagePack Multiprocessing MultiprocessingPostgres)

# The plugin moves each archive into this directory, and fails if it does not exist.
mkdir -p "$output"

undocumented_total=0
failed=()
for module in "${modules[@]}"; do
    log="$output/$module.log"
    echo "docs: $module"
    if ! swift package --scratch-path "$scratch" --allow-writing-to-directory "$output" \
        generate-documentation --target "$module" --output-path "$output/$module.doccarchive" \
        --warnings-as-errors --enable-inherited-docs \
        --experimental-documentation-coverage --coverage-summary-level detailed \
        >"$log" 2>&1; then
        # The log without the coverage table's rows (8 columns between '|'): the warnings.
        awk -F'|' 'NF != 8' "$log" >&2
        echo "docs: DocC failed for $module (warnings count as errors); the whole log: $log" >&2
        failed+=("$module")
        continue
    fi
    # Coverage rows: name | kind | abstract? | curated? | code listing? | parameters |
    # language | reference path. Rows that are not symbols are left out: "CollectionGroup",
    # a group DocC makes itself ("Equatable Implementations"), and "Article", a page of the
    # catalog (DocC reports no summary for articles even when they have one).
    symbols=$(awk -F'|' 'NF == 8 && $8 ~ /doc:\/\// && $2 !~ /CollectionGroup|Article/' "$log" | wc -l)
    if [ "$symbols" -eq 0 ]; then
        echo "docs: DocC printed no coverage table for $module (see $log)" >&2
        exit 1
    fi
    undocumented=$(awk -F'|' '
        NF == 8 && $8 ~ /doc:\/\// && $3 ~ /false/ && $2 !~ /CollectionGroup|Article/ {
            kind = $2; path = $8
            gsub(/^ +| +$/, "", kind); gsub(/^ +| +$/, "", path)
            sub(/^doc:\/\/[^\/]*\/documentation\//, "", path)
            print "  " path " (" kind ")"
        }' "$log" | sort)
    count=0
    if [ -n "$undocumented" ]; then count=$(printf '%s\n' "$undocumented" | wc -l); fi
    if [ "$count" -gt 0 ]; then
        echo "  public symbols without documentation: $count"
        printf '%s\n' "$undocumented"
    else
        echo "  public symbols without documentation: none ($symbols checked)"
    fi
    undocumented_total=$((undocumented_total + count))
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "docs: DocC failed for ${failed[*]}: see the errors above" >&2
    exit 1
fi
if [ "$undocumented_total" -gt 0 ]; then
    echo "docs: $undocumented_total public symbols have no documentation; add a doc comment to each" >&2
    exit 1
fi
echo "docs: archives in $output: $(printf '%s.doccarchive ' "${modules[@]}")"
