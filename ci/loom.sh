#!/usr/bin/env bash
# Model-checks the lattice's barrier and phase hand-over with loom (see crates/cllm-lattice/PROTOCOL.md).
# Uses its own target directory so the --cfg loom build does not invalidate the normal one.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="--cfg loom -C target-cpu=native" CARGO_TARGET_DIR=target/loom \
  cargo test -p cllm-lattice --test loom --release "$@"
