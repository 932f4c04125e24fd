//! `cllm-tensor`: f32 tensors and the kernels a GPT needs.
//!
//! The kernels in [`kernels`] are plain functions over slices, each forward next to its
//! backward, with the shapes they take in their docs. Matrix multiplication goes through
//! [`kernels::matmul`], the one place a GEMM backend is chosen. Nothing here spawns threads:
//! parallelism belongs to the caller (the lattice scheduler).
//!
//! ```
//! use cllm_tensor::Tensor;
//! let a = Tensor::from_fn(&[2, 3], |i| i as f32);
//! let b = Tensor::from_fn(&[3, 1], |_| 1.0);
//! assert_eq!(a.matmul(&b).data(), &[3.0, 12.0]);
//! ```

#![deny(missing_docs)]

// Links the system OpenBLAS; nothing in it is referenced by name, so without this line the
// linker would drop it.
#[cfg(feature = "openblas")]
extern crate openblas_src as _;

pub mod kernels;
mod tensor;

#[cfg(test)]
mod test_util;

pub use tensor::{ShapeError, Tensor, numel};
