#!/usr/bin/env bash
# The repository builds with target-cpu=native (.cargo/config.toml), but a project that depends
# on cllm-tensor, or a `cargo install` from elsewhere, builds for the x86-64 baseline (SSE2, no
# FMA). This script builds cllm-train both ways and shows, per preset, that the portable build
# gives the same losses and gradient norms bit for bit and how its step time compares.
#
# Usage: bash scripts/portable-build-check.sh [ROUNDS]   (default 3; portable build in target/portable)
# Trains on the built-in corpus: tiny for 1000 steps, nanogpt-cpu for 40, on one worker thread,
# the two builds alternated ROUNDS times; prints the median of each build's per-run medians.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}

echo "building the native and the portable (-C target-cpu=x86-64) release binaries..." >&2
cargo build --release -q -p cllm-train
CARGO_TARGET_DIR=target/portable RUSTFLAGS="-C target-cpu=x86-64" \
  cargo build --release -q -p cllm-train
native=target/release/cllm-train
portable=target/portable/release/cllm-train

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The loss and gradient-norm fields of every metrics line (f32 printed shortest-round-trip, so
# equal text means equal bits).
numbers() { grep -o '"\(loss\|grad_norm\)":[^,}]*' "$1"; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

status=0
printf '%-12s %14s %14s %8s  %s\n' preset "native ms" "portable ms" ratio "losses"
for spec in "tiny 1000" "nanogpt-cpu 40"; do
  set -- $spec
  preset=$1 steps=$2
  : >"$tmp/native.ms"
  : >"$tmp/portable.ms"
  for r in $(seq 1 "$rounds"); do
    for build in native portable; do
      out="$tmp/$preset-$build-$r"
      "${!build}" --preset "$preset" --threads 1 --max-steps "$steps" --eval-interval "$steps" \
        --out "$out" 2>"$out.log" || { cat "$out.log" >&2; exit 1; }
      grep -o 'median [0-9.]* ms/step' "$out.log" | awk '{print $2}' >>"$tmp/$build.ms"
    done
  done
  n=$(median <"$tmp/native.ms")
  p=$(median <"$tmp/portable.ms")
  if diff -q <(numbers "$tmp/$preset-native-1/metrics.jsonl") \
    <(numbers "$tmp/$preset-portable-1/metrics.jsonl") >/dev/null; then
    same="identical ($(numbers "$tmp/$preset-native-1/metrics.jsonl" | wc -l) values)"
  else
    same="DIFFER"
    status=1
  fi
  ratio=$(awk -v a="$p" -v b="$n" 'BEGIN {printf "%.3f", a / b}')
  printf '%-12s %14s %14s %8s  %s\n' "$preset" "$n" "$p" "$ratio" "$same"
done
exit $status
