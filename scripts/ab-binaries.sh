#!/usr/bin/env bash
# Compares two cllm-train binaries (an old build and a new one, say) on the same run, alternated
# so that a noisy machine slows both alike: per round one run of each, A first in odd rounds and
# B first in even ones. Prints each run's median step time and compute phase (the first 20 steps
# not counted), then per binary the median of its runs' medians, B/A, B/A round by round (the
# median and range of each round's ratio of its two back-to-back runs), how many rounds B won,
# and whether every loss and gradient norm of the last two runs is the same bit for bit (f32
# printed shortest-round-trip, so equal text means equal bits).
#
# Usage: bash scripts/ab-binaries.sh BIN_A BIN_B ROUNDS cllm-train-args...
# e.g.   git worktree add ../old HEAD~1 && (cd ../old && cargo build --release -p cllm-train)
#        cargo build --release -p cllm-train
#        bash scripts/ab-binaries.sh ../old/target/release/cllm-train target/release/cllm-train 6 \
#          --dataset shakespeare --data-dir ../shared/datasets --preset tiny --threads 1 \
#          --max-steps 3000 --eval-interval 100000
# B_ARGS (environment) adds arguments to B's runs only, to compare a setting on one binary:
#        B_ARGS="--dropout 0.2" bash scripts/ab-binaries.sh target/release/cllm-train \
#          target/release/cllm-train 5 --dataset shakespeare ...
# Give --eval-iters 1 with a large preset (evaluations are not timed but take a while), and a
# dataset or path: the built-in corpus is compiled in from the sources, so two builds of
# different commits train on different text.
set -euo pipefail
if [ $# -lt 4 ]; then
  sed -n '2,/^set/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
bin_a=$1 bin_b=$2 rounds=$3
shift 3
for bin in "$bin_a" "$bin_b"; do
  [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

numbers() { grep -o '"\(loss\|grad_norm\)":[^,}]*' "$1"; }
# "step_ms compute_ms": medians over a run's train lines after the first 20.
medians() {
  python3 - "$1" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"ms_per_step"' in l]
rows = rows[20:] if len(rows) > 40 else rows
step = statistics.median(r["ms_per_step"] for r in rows)
compute = statistics.median(r["phase_ms"]["compute"] for r in rows)
print(f"{step:.4f} {compute:.4f}")
PY
}
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

: >"$tmp/A.ms"
: >"$tmp/B.ms"
wins=0
: >"$tmp/ratios"
for r in $(seq 1 "$rounds"); do
  # A first in odd rounds, B first in even ones: a machine that speeds up or slows down steadily
  # favours neither.
  sides="A B"
  [ $((r % 2)) -eq 0 ] && sides="B A"
  for side in $sides; do
    bin=$bin_a extra=()
    [ $side = B ] && bin=$bin_b && read -r -a extra <<<"${B_ARGS:-}"
    rm -rf "$tmp/run-$side"
    "$bin" "$@" "${extra[@]}" --out "$tmp/run-$side" >"$tmp/log-$side" 2>&1 || { cat "$tmp/log-$side" >&2; exit 1; }
    read -r step compute < <(medians "$tmp/run-$side/metrics.jsonl")
    echo "$step" >>"$tmp/$side.ms"
    printf 'round %2d %s: %10.4f ms/step, compute %10.4f ms\n' "$r" "$side" "$step" "$compute"
    if [ $side = A ]; then a_step=$step; else b_step=$step; fi
  done
  wins=$(awk -v a="$a_step" -v b="$b_step" -v w="$wins" 'BEGIN {print w + (b < a)}')
  awk -v a="$a_step" -v b="$b_step" 'BEGIN {printf "%.6f\n", b / a}' >>"$tmp/ratios"
done
a=$(median <"$tmp/A.ms")
b=$(median <"$tmp/B.ms")
ratio=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", b / a}')
# B/A within each round (the two runs back to back): their median and range.
paired=$(sort -g "$tmp/ratios" | awk '{v[NR] = $1} END {
  m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
  printf "%.3f (%.3f-%.3f)", m, v[1], v[NR]}')
if diff -q <(numbers "$tmp/run-A/metrics.jsonl") <(numbers "$tmp/run-B/metrics.jsonl") >/dev/null; then
  same="identical ($(numbers "$tmp/run-A/metrics.jsonl" | wc -l) values)"
else
  same="DIFFERENT"
fi
echo "A median $a ms, B median $b ms: B/A $ratio; round by round B/A $paired; B faster in $wins of $rounds rounds; losses and gradient norms $same"
