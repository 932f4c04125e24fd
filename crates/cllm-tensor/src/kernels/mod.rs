//! Kernels: plain functions over `f32` slices, each forward next to its backward.
//!
//! Shape legend used throughout: `B` batch, `T` sequence length, `C` channels (model width),
//! `V` vocabulary size, `NH` attention heads, `HS = C / NH` head size, `N = B * T` rows.
//! Backward kernels accumulate (`+=`) into gradient buffers unless their docs say otherwise.
//! None of them allocates or spawns threads.

pub mod attention;
pub mod cross_entropy;
pub mod elementwise;
pub mod embedding;
pub mod gelu;
pub mod layernorm;
pub mod math;
pub mod matmul;
pub mod softmax;
