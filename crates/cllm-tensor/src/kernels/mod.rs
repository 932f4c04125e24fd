//! Kernels: plain functions over `f32` slices, each forward next to its backward.
//!
//! Shape legend used throughout: `B` batch, `T` sequence length, `C` channels (model width),
//! `V` vocabulary size, `NH` attention heads, `HS = C / NH` head size, `N = B * T` rows.
//! Backward kernels accumulate (`+=`) into gradient buffers unless their docs say otherwise;
//! some take a [`Write`] and can overwrite instead. None of them allocates or spawns threads.
//!
//! # Instruction sets
//!
//! The kernels outside GEMM are plain loops that the compiler vectorises for whatever the build
//! targets. This repository builds with `-C target-cpu=native` (`.cargo/config.toml`), but a
//! project that depends on these crates, or a `cargo install` run elsewhere, builds for the
//! x86-64 baseline: SSE2 and no FMA, where each `f32::mul_add` in [`math::exp`] is a call into
//! a software `fmaf` and a training step ran 2.6x (nanoGPT-cpu) to 5.1x (tiny) slower. So each
//! kernel entry point with a hot loop carries `#[multiversion(targets("x86_64+avx2+fma"))]`: it
//! is compiled a second time with AVX2 and FMA enabled, and that version is chosen at run time
//! on CPUs that have them. Where the build already enables both (a native build on such a CPU)
//! there is no second version and no check. The `gemm` crate dispatches the same way on its own.
//!
//! Results do not depend on the version that runs: both perform the same IEEE operations in the
//! same order (`mul_add` is one correctly rounded operation either way, and Rust never fuses a
//! separate multiply and add), only in wider registers. `bash scripts/portable-build-check.sh`
//! trains with a native and a baseline build and compares every loss and gradient norm bit for
//! bit, and their step times. A new kernel with a loop over its data needs the attribute too;
//! helpers it calls inside its loops must be `#[inline(always)]` to be compiled into each
//! version.

pub mod attention;
pub mod cross_entropy;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod gelu;
pub mod layernorm;
pub mod math;
pub mod matmul;
pub mod softmax;
#[cfg(target_arch = "x86_64")]
mod transpose16;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx",
    not(target_feature = "avx512f")
))]
mod transpose8;

/// How a backward kernel that takes it writes the gradient it computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// Added to what the buffer holds (`+=`).
    Add,
    /// Written over it, old contents unread: the same bits as adding to zeros (but for the
    /// sign of an exact zero), without the zeroing and the reading back.
    Overwrite,
}
