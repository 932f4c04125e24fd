#!/usr/bin/env bash
# cllm-train maps its large buffers in transparent huge pages (crates/cllm-train/src/huge_pages.rs);
# CLLM_HUGE_PAGES=0 turns that off. This script trains the same run both ways, alternated, and
# prints per setting the median step time and the medians of the reduce and optimizer phases,
# and checks that every loss and gradient norm is the same bit for bit.
#
# Usage: bash scripts/huge-pages-check.sh [ROUNDS] [THREADS] [PRESET] [STEPS] [extra cllm-train args...]
#   defaults: 3 rounds, 1 thread, nanogpt-cpu, 150 steps (the first third of each run is warm-up and
#   not counted). Trains on the built-in corpus, evaluating once at the end on one batch.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3} threads=${2:-1} preset=${3:-nanogpt-cpu} steps=${4:-150}
shift $(($# < 4 ? $# : 4))

cargo build --release -q -p cllm-train
bin=target/release/cllm-train
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

numbers() { grep -o '"\(loss\|grad_norm\)":[^,}]*' "$1"; }
# Median over the counted steps of metrics.jsonl field $2 (a phase name, or ms_per_step).
field() {
  python3 - "$1" "$2" "$steps" <<'PY'
import json, statistics, sys
path, key, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [json.loads(l) for l in open(path) if '"ms_per_step"' in l][steps // 3:]
get = (lambda r: r["ms_per_step"]) if key == "ms_per_step" else (lambda r: r["phase_ms"][key])
print(statistics.median(get(r) for r in rows))
PY
}
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

status=0
for r in $(seq 1 "$rounds"); do
  for setting in on off; do
    out="$tmp/$setting-$r"
    if [ $setting = off ]; then export CLLM_HUGE_PAGES=0; else unset CLLM_HUGE_PAGES; fi
    "$bin" --preset "$preset" --threads "$threads" --max-steps "$steps" --eval-interval "$steps" --eval-iters 1 \
      --out "$out" "$@" 2>"$out.log" || { cat "$out.log" >&2; exit 1; }
    for f in ms_per_step reduce optimizer; do field "$out/metrics.jsonl" $f >>"$tmp/$setting.$f"; done
    numbers "$out/metrics.jsonl" >"$out.numbers"
    if ! cmp -s "$out.numbers" "$tmp/on-1.numbers"; then
      echo "round $r, huge pages $setting: losses differ from round 1 with huge pages on" >&2
      status=1
    fi
  done
done
unset CLLM_HUGE_PAGES
printf '%s, %s thread(s), %s steps, %s rounds (medians of per-run medians, ms):\n' "$preset" "$threads" "$steps" "$rounds"
printf '%-16s %10s %10s %10s\n' "huge pages" step reduce optimizer
for setting in on off; do
  printf '%-16s' "$setting"
  for f in ms_per_step reduce optimizer; do printf ' %10.3f' "$(median <"$tmp/$setting.$f")"; done
  printf '\n'
done
[ $status = 0 ] && echo "losses and gradient norms: identical in every run"
exit $status
