#!/usr/bin/env bash
# Runs the lattice's tests (the crate with the unsafe code: phase cells, shared buffers, the
# barrier) under Miri with strict provenance, to catch undefined behaviour in the unsafe parts.
# Needs the nightly toolchain with Miri: rustup component add miri rust-src --toolchain nightly
set -euo pipefail
cd "$(dirname "$0")/.."
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}"
CARGO_TARGET_DIR=target/miri cargo +nightly miri test -p cllm-lattice --lib --test barrier --test reduce --test panic "$@"
