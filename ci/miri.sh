#!/usr/bin/env bash
# Runs the tests of the unsafe code under Miri with strict provenance, to catch undefined
# behaviour: the lattice's (phase cells, shared buffers, the barrier), cllm-tensor's
# vector kernels that carry their own unsafe blocks (the softmax rows and the 8 x 8 transpose
# in AVX2, on a machine whose native build has AVX2 and not AVX-512), and cllm-train's counting
# allocator (~6 minutes here, 2 of them building cllm-train's dependencies for Miri).
# Needs the nightly toolchain with Miri: rustup component add miri rust-src --toolchain nightly
# Arguments go to the lattice's run (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}"
CARGO_TARGET_DIR=target/miri cargo +nightly miri test -p cllm-lattice --lib --test barrier --test reduce --test panic "$@"
CARGO_TARGET_DIR=target/miri cargo +nightly miri test -p cllm-tensor --lib -- softmax transpose
CARGO_TARGET_DIR=target/miri cargo +nightly miri test -p cllm-train --lib heap
