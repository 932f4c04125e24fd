//! One file per op family: the `Graph` method that records the forward pass, next to the
//! function that runs its backward pass.

pub(crate) mod attention;
pub(crate) mod cross_entropy;
pub(crate) mod dropout;
pub(crate) mod elementwise;
pub(crate) mod embedding;
pub(crate) mod gelu;
pub(crate) mod layernorm;
pub(crate) mod linear;
pub(crate) mod linear_gelu;
pub(crate) mod matmul;
