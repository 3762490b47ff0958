#!/bin/sh
# Runs the fuzzer (Fuzz/, built by `make fuzz` or `make test`) for SECONDS.
#
#   Scripts/fuzz.sh SECONDS
#
# First every kept finding in Fuzz/Regressions/ runs once: each was a crash or a
# hang once, and must stay fixed. Then libFuzzer explores from the seeds (made
# from Fixtures/) and from what earlier runs on this machine added to the corpus
# in .build-fuzz/corpus. A finding stops the run, fails it, and is written to
# .build-fuzz/findings/; once fixed, copy it into Fuzz/Regressions/.
set -eu
seconds=${1:-60}
fuzz=.build-fuzz/release/fuzz
corpus=.build-fuzz/corpus
findings=.build-fuzz/findings
mkdir -p "$corpus" "$findings"
# Swift's backtracer would catch the crash before libFuzzer could keep the input.
export SWIFT_BACKTRACE=enable=no
# No allocation over 512 MiB: memory sized from a length the input only claims
# is a finding, even where it would have fitted.
flags="-max_len=65536 -malloc_limit_mb=512 -rss_limit_mb=3072 -timeout=20 -artifact_prefix=$findings/ ${FUZZ_FLAGS:-}"

log=.build-fuzz/last-run.log

"$fuzz" seed "$corpus" Fixtures >/dev/null
if [ -n "$(ls Fuzz/Regressions)" ]; then
    echo "Fuzz: the $(ls Fuzz/Regressions | wc -l) kept findings in Fuzz/Regressions"
    if ! "$fuzz" $flags Fuzz/Regressions/* >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "Fuzz: a kept finding fails again (above)"
        exit 1
    fi
fi
echo "Fuzz: $seconds s from $(ls "$corpus" | wc -l) inputs in $corpus"
status=0
"$fuzz" $flags -max_total_time="$seconds" -print_final_stats=1 "$corpus" >"$log" 2>&1 || status=$?
# The progress lines are many; the rest (a finding's report, the statistics) is shown.
grep -v -E '^#[0-9]+' "$log" | grep -v -E '^"|# Uses:|dictionary' | tail -n 60
# The last progress line: executions, coverage (cov: edges, ft: features), corpus size.
grep -E "^#[0-9]+" "$log" | tail -n 1
[ "$status" -eq 0 ] || echo "Fuzz: FINDING (exit $status); the input is in $findings/"
exit "$status"
