#!/usr/bin/env bash
# What tracing costs when it is compiled in but not enabled (no --trace, log level warn):
# builds cllm-train twice (default, and with every span compiled out by the `no-trace`
# feature), then alternates the two builds ROUNDS times per configuration and prints the median
# of each run's median step time, and their ratio.
#
#   bash scripts/tracing-overhead.sh [ROUNDS]        (default 5; about 3 minutes after the builds)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
cargo build --release -q -p cllm-train
cargo build --release -q -p cllm-train --features no-trace --target-dir target/notrace
traced=target/release/cllm-train
bare=target/notrace/release/cllm-train
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median_step() { # run directory -> median ms_per_step of its training lines
  python3 - "$1/metrics.jsonl" <<'PY'
import json, statistics, sys
print(statistics.median(json.loads(l)["ms_per_step"] for l in open(sys.argv[1]) if "ms_per_step" in l))
PY
}

printf '%-28s %14s %14s %9s\n' configuration "no-trace ms" "default ms" overhead
for config in "tiny 1 2000" "tiny 4 2000" "nanogpt-cpu 1 100" "nanogpt-cpu 2 200"; do
  set -- $config
  a=() b=()
  for r in $(seq "$rounds"); do
    for bin in "$bare" "$traced"; do
      out="$tmp/run"
      rm -rf "$out"
      "$bin" --preset "$1" --threads "$2" --max-steps "$3" --eval-interval "$3" --eval-iters 1 \
        --checkpoint-every 0 --out "$out" 2>/dev/null
      if [ "$bin" = "$bare" ]; then a+=("$(median_step "$out")"); else b+=("$(median_step "$out")"); fi
    done
  done
  python3 - "$1 x$2 threads" "${a[*]}" "${b[*]}" <<'PY'
import statistics, sys
a = statistics.median(map(float, sys.argv[2].split())); b = statistics.median(map(float, sys.argv[3].split()))
print(f"{sys.argv[1]:<28} {a:14.3f} {b:14.3f} {100 * (b - a) / a:+8.2f}%")
PY
done
