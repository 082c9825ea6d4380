#!/usr/bin/env bash
# The forest's training time against scikit-learn's on the same 20,000 rows (issue 16):
# both on this machine, one after the other. Needs scikit-learn (pip install
# scikit-learn); it is not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
rows="$(mktemp --suffix=.csv)"
trap 'rm -f "$rows"' EXIT
ours="$(cargo bench -q -p models --bench forest_fit -- "$rows" | tail -n 1)"
theirs="$(python3 models/bench/forest_vs_sklearn.py "$rows")"
echo "$ours"
echo "$theirs"
a="$(sed -E 's/.*: ([0-9.]+) s .*/\1/' <<<"$ours")"
b="$(sed -E 's/.*: ([0-9.]+) s .*/\1/' <<<"$theirs")"
python3 -c "print(f'forest time / scikit-learn time: {$a / $b:.2f}')"
