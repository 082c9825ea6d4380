#!/usr/bin/env bash
# How a model holds up on fleets it never saw (issue 16): for each seed, size and length
# below, firmware-sim writes a fleet, `models evaluate` scores it beside the hand rule,
# and the figures are printed as one table (markdown), with the goal checked per fleet.
# Not part of the test suite: each fleet takes a minute or two on two cores and up to a
# few GB of disk while it is scored.
#
#   scripts/generalisation.sh [MODEL]     (default: the bundled model)
#   FLEETS="21:500:120 22:2000:240" scripts/generalisation.sh
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-models/default/risk-model.json}"
# seed:devices:days; the bundled model was trained on seed 1 and tuned on seed 2.
fleets="${FLEETS:-11:2000:240 12:2000:240 13:2000:240 14:500:120 15:1000:365 16:4000:180}"
cargo build --release -q -p firmware-sim -p models
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
results="$work/results.jsonl"
for f in $fleets; do
  IFS=: read -r seed devices days <<<"$f"
  dir="$work/fleet"
  rm -rf "$dir"
  ./target/release/firmware-sim generate --seed "$seed" --devices "$devices" --days "$days" \
    --out "$dir" >/dev/null 2>&1
  ./target/release/models evaluate --model "$model" --data "$dir" --json 2>/dev/null |
    python3 -c '
import json, sys
d = json.load(sys.stdin)
seed, devices, days = sys.argv[1:4]
print(json.dumps({**d, "seed": int(seed), "fleet": int(devices), "days": int(days)}))
' "$seed" "$devices" "$days" >>"$results"
  echo "fleet seed $seed, $devices devices, $days days: scored" >&2
done
python3 - "$results" "$model" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"model {sys.argv[2]}")
print()
print("| seed | devices | days | failing rows | ROC AUC (rule) | PR AUC (rule) | precision (rule) | recall (rule) | Brier (rule) | goal |")
print("|---|---|---|---|---|---|---|---|---|---|")
met = 0
for r in rows:
    b = r.get("baseline") or {}
    def cell(k, fmt="{:.3f}"):
        m = fmt.format(r[k])
        return f"{m} ({fmt.format(b[k])})" if k in b else m
    # ROC AUC >= 0.90 and above the rule on ROC AUC, PR AUC, precision and Brier; recall
    # >= 0.60 at precision >= 0.75 (at the model's threshold).
    ok = (r["roc_auc"] >= 0.90 and r["precision"] >= 0.75 and r["recall"] >= 0.60
          and all(r[k] > b.get(k, -1) for k in ("roc_auc", "pr_auc", "precision"))
          and r["brier"] < b.get("brier", 1.0))
    met += ok
    print(f"| {r['seed']} | {r['fleet']} | {r['days']} | {r['positive_rows']} | {cell('roc_auc')} | "
          f"{cell('pr_auc')} | {cell('precision')} | {cell('recall')} | {cell('brier', '{:.4f}')} | "
          f"{'met' if ok else 'missed'} |")
print()
print(f"goal met on {met} of {len(rows)} unseen fleets")
PY
