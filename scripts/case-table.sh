#!/usr/bin/env bash
# Prints the case-study table of docs/results.md: each case × policy × sharing over seeds 1..N,
# with the clairvoyant oracle's deadlines met and CPU-s where it is computed (quota only).
#   bash scripts/case-table.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
command -v python3 >/dev/null 2>&1 || { echo "case-table: needs python3 (apt-get install python3)" >&2; exit 1; }
cargo build --release -q -p study
bin=target/release/study
echo "| case | sharing | policy | deadlines met | feasible met | oracle met | CPU-s allocated (mean) | oracle CPU-s (mean) | CPU-s used (mean) | resizes (mean) | restarts (mean) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for c in case1 case2 case3; do
  for s in shares quota; do
    for p in static thesis predictive; do
      for seed in $(seq 1 "$n"); do
        "$bin" simulate --scenario "$c" --seed "$seed" --policy "$p" --sharing "$s" --json
      done | python3 -c "
import json, sys
dec = json.JSONDecoder(); text = sys.stdin.read(); i = 0; runs = []
while i < len(text):
    while i < len(text) and text[i].isspace(): i += 1
    if i >= len(text): break
    obj, i = dec.raw_decode(text, i); runs.append(obj['totals'])
k = len(runs); s = lambda f: sum(r[f] for r in runs)
o = lambda f, fmt: fmt(sum(r[f] for r in runs)) if all(r.get(f) is not None for r in runs) else '–'
print(f\"| $c | $s | $p | {s('met')}/{s('jobs')} | {s('feasible_met')}/{s('feasible')} | {o('oracle_met', str)} | {s('cpu_seconds_allocated')/k:.0f} | {o('oracle_cpu_seconds', lambda v: f'{v/k:.0f}')} | {s('cpu_seconds_used')/k:.0f} | {s('resizes')/k:.1f} | {s('restarts')/k:.1f} |\")
"
    done
  done
done
