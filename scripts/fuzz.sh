#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time from its committed seed corpus and
# prints executions and findings. Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`); not part of scripts/test.sh (it is open-ended work).
#
#   scripts/fuzz.sh            # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh decode
#
# New inputs that grow coverage go to fuzz/corpus/<target> (not committed); a crash is
# written to fuzz/artifacts/<target> and fails the script.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode truth_csv)
command -v cargo-fuzz >/dev/null || { echo "error: cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 2; }

status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    log=$(mktemp)
    echo "==> fuzzing $t for ${seconds}s"
    if cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -max_len=20000 -print_final_stats=1 >"$log" 2>&1; then
        result="no findings"
    else
        result="FINDINGS: see fuzz/artifacts/$t and $log"
        status=1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
    echo "$t: $execs executions, $cov, $result"
    [ $status -eq 0 ] && rm -f "$log"
done
exit $status
