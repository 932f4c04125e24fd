//! The reference GEMM: a triple loop accumulating in f64. Slow on purpose; tests compare every
//! other backend against it.

use super::{GemmSpec, Transpose};

/// `C = alpha op(A) op(B) + beta C`, one dot product at a time. The caller has checked the
/// slice lengths with [`GemmSpec::check`].
pub fn run(spec: &GemmSpec, a: &[f32], b: &[f32], c: &mut [f32]) {
    let at = |i: usize, p: usize| match spec.ta {
        Transpose::N => a[i * spec.lda + p],
        Transpose::T => a[p * spec.lda + i],
    };
    let bt = |p: usize, j: usize| match spec.tb {
        Transpose::N => b[p * spec.ldb + j],
        Transpose::T => b[j * spec.ldb + p],
    };
    for i in 0..spec.m {
        for j in 0..spec.n {
            let dot: f64 = (0..spec.k).map(|p| at(i, p) as f64 * bt(p, j) as f64).sum();
            let dst = &mut c[i * spec.ldc + j];
            let old = if spec.beta == 0.0 {
                0.0
            } else {
                spec.beta as f64 * *dst as f64
            };
            *dst = (spec.alpha as f64 * dot + old) as f32;
        }
    }
}
