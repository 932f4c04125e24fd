//! The default backend: the pure-Rust `gemm` crate, always single-threaded.
//!
//! `gemm` picks its micro-kernel at run time (AVX-512 when the CPU has it and the `x86-v4`
//! feature compiled it in, else AVX2/FMA, else SSE). It takes element strides for rows and
//! columns, so a transposed operand is the same memory with the two strides swapped.

use super::{GemmSpec, Transpose};

/// (row stride, column stride) of `op(X)` for a row-major `X` with leading dimension `ld`.
fn strides(t: Transpose, ld: usize) -> (isize, isize) {
    match t {
        Transpose::N => (ld as isize, 1),
        Transpose::T => (1, ld as isize),
    }
}

/// Runs one GEMM. The caller ([`super::matmul_with`]) has checked the slice lengths with
/// [`GemmSpec::check`] and handled empty dimensions.
pub(super) fn run(spec: &GemmSpec, a: &[f32], b: &[f32], c: &mut [f32]) {
    let (a_rs, a_cs) = strides(spec.ta, spec.lda);
    let (b_rs, b_cs) = strides(spec.tb, spec.ldb);
    // gemm's convention is dst := alpha*dst + beta*lhs*rhs, with dst only read if `read_dst`.
    let read_dst = spec.beta != 0.0;
    // SAFETY: `GemmSpec::check` (called by `matmul_with` before dispatch) proved that every
    // element addressed through (m, n, k) and these strides lies inside `a`, `b` and `c`;
    // `c` is a unique `&mut` borrow, so it cannot alias `a` or `b`; and
    // `Parallelism::None` keeps the call on this thread, so the borrows outlive all accesses.
    unsafe {
        ::gemm::gemm(
            spec.m,
            spec.n,
            spec.k,
            c.as_mut_ptr(),
            1,
            spec.ldc as isize,
            read_dst,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            spec.beta,
            spec.alpha,
            false,
            false,
            false,
            ::gemm::Parallelism::None,
        );
    }
}
