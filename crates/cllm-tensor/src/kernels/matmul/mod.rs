//! Matrix multiplication: one descriptor ([`GemmSpec`]), one backend switch ([`Backend::DEFAULT`]).
//!
//! All matrices are row-major. A call computes `C = alpha * op(A) * op(B) + beta * C`, where
//! `op(A)` is `m x k`, `op(B)` is `k x n` and `C` is `m x n`. `op(X)` is `X` or its transpose,
//! chosen per operand with [`Transpose`]. The three layouts a transformer needs have helpers:
//!
//! | layout | A stored as | B stored as | used for                                  |
//! |--------|-------------|-------------|-------------------------------------------|
//! | NN     | `[m, k]`    | `[k, n]`    | `dX = dY W`, `O = P V`                    |
//! | NT     | `[m, k]`    | `[n, k]`    | `Y = X W^T` (linear), `S = Q K^T`         |
//! | TN     | `[k, m]`    | `[k, n]`    | `dW = dY^T X`, `dV = P^T dO`              |
//!
//! The backend is picked here and nowhere else: the pure-Rust `gemm` crate unless the `openblas`
//! feature is on, or the bf16 backend when [`set_precision`] has asked for
//! [`Precision::Bf16`]. Every backend is always called single-threaded: parallelism belongs to
//! the lattice scheduler, never nested inside one of its workers.

#[cfg(target_arch = "x86_64")]
pub(crate) mod bf16;
mod gemm;
pub mod naive;
pub mod peak;
mod precision;

pub use precision::{Precision, UnsupportedPrecision, precision, set_precision};

#[cfg(feature = "openblas")]
pub mod blas;

/// Whether an operand is read as stored (`N`) or transposed (`T`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transpose {
    /// Use the matrix as stored.
    N,
    /// Use the transpose of the stored matrix.
    T,
}

/// A GEMM backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Triple loop with f64 accumulation. The reference the other backends are tested against.
    Naive,
    /// The pure-Rust `gemm` crate (runtime CPU dispatch, AVX-512 kernels compiled in).
    Gemm,
    /// OpenBLAS `cblas_sgemm`, limited to one thread per caller.
    #[cfg(feature = "openblas")]
    OpenBlas,
    /// Operands rounded to bfloat16, products summed in f32, on AVX-512 BF16 (`vdpbf16ps`).
    /// Not an f32 backend, so not in [`Backend::all`]; calling it on a CPU without AVX-512 BF16
    /// panics ([`Precision::supported`] tells).
    #[cfg(target_arch = "x86_64")]
    Bf16,
}

impl Backend {
    /// The backend every kernel in this crate uses: the one place the choice is made.
    #[cfg(not(feature = "openblas"))]
    pub const DEFAULT: Backend = Backend::Gemm;
    /// The backend every kernel in this crate uses: the one place the choice is made.
    #[cfg(feature = "openblas")]
    pub const DEFAULT: Backend = Backend::OpenBlas;

    /// Every f32 backend compiled into this build, fastest-intended first, reference last.
    pub fn all() -> &'static [Backend] {
        &[
            #[cfg(feature = "openblas")]
            Backend::OpenBlas,
            Backend::Gemm,
            Backend::Naive,
        ]
    }

    /// A short lowercase name, as used in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Naive => "naive",
            Backend::Gemm => "gemm",
            #[cfg(feature = "openblas")]
            Backend::OpenBlas => "openblas",
            #[cfg(target_arch = "x86_64")]
            Backend::Bf16 => "bf16",
        }
    }
}

/// Shapes, layouts, leading dimensions and scalars of one GEMM call.
///
/// Build one with [`GemmSpec::nn`], [`GemmSpec::nt`] or [`GemmSpec::tn`], then adjust it with
/// [`accumulate`](GemmSpec::accumulate), [`alpha`](GemmSpec::alpha) or
/// [`lead`](GemmSpec::lead).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmSpec {
    /// How `A` is read.
    pub ta: Transpose,
    /// How `B` is read.
    pub tb: Transpose,
    /// Rows of `op(A)` and `C`.
    pub m: usize,
    /// Columns of `op(B)` and `C`.
    pub n: usize,
    /// Columns of `op(A)`, rows of `op(B)`.
    pub k: usize,
    /// Distance between consecutive stored rows of `A`.
    pub lda: usize,
    /// Distance between consecutive stored rows of `B`.
    pub ldb: usize,
    /// Distance between consecutive rows of `C`.
    pub ldc: usize,
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of the old `C`; `0.0` means `C` is overwritten and never read (NaNs in it vanish).
    pub beta: f32,
}

impl GemmSpec {
    /// `C[m,n] = A[m,k] B[k,n]`, densely packed.
    pub fn nn(m: usize, k: usize, n: usize) -> Self {
        Self::new(Transpose::N, Transpose::N, m, k, n, k, n)
    }

    /// `C[m,n] = A[m,k] B[n,k]^T`, densely packed.
    pub fn nt(m: usize, k: usize, n: usize) -> Self {
        Self::new(Transpose::N, Transpose::T, m, k, n, k, k)
    }

    /// `C[m,n] = A[k,m]^T B[k,n]`, densely packed.
    pub fn tn(m: usize, k: usize, n: usize) -> Self {
        Self::new(Transpose::T, Transpose::N, m, k, n, m, n)
    }

    fn new(
        ta: Transpose,
        tb: Transpose,
        m: usize,
        k: usize,
        n: usize,
        lda: usize,
        ldb: usize,
    ) -> Self {
        GemmSpec {
            ta,
            tb,
            m,
            n,
            k,
            lda,
            ldb,
            ldc: n,
            alpha: 1.0,
            beta: 0.0,
        }
    }

    /// Adds the product to `C` instead of overwriting it (`beta = 1`).
    pub fn accumulate(self) -> Self {
        GemmSpec { beta: 1.0, ..self }
    }

    /// Scales the product by `alpha`.
    pub fn alpha(self, alpha: f32) -> Self {
        GemmSpec { alpha, ..self }
    }

    /// Sets the leading dimensions (row strides) of `A`, `B` and `C`, for operands that are
    /// column blocks of wider matrices (one attention head inside a `[T, 3C]` qkv row, say).
    pub fn lead(self, lda: usize, ldb: usize, ldc: usize) -> Self {
        GemmSpec {
            lda,
            ldb,
            ldc,
            ..self
        }
    }

    /// Floating-point operations of one call (`2 m n k`).
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }

    /// Stored (rows, cols) of `A`.
    fn a_dims(&self) -> (usize, usize) {
        match self.ta {
            Transpose::N => (self.m, self.k),
            Transpose::T => (self.k, self.m),
        }
    }

    /// Stored (rows, cols) of `B`.
    fn b_dims(&self) -> (usize, usize) {
        match self.tb {
            Transpose::N => (self.k, self.n),
            Transpose::T => (self.n, self.k),
        }
    }

    /// Panics with a message naming the operand unless every element the call addresses lies
    /// inside the given slice lengths. The unsafe backends rely on this check.
    pub fn check(&self, a_len: usize, b_len: usize, c_len: usize) {
        check_operand("A", self.a_dims(), self.lda, a_len);
        check_operand("B", self.b_dims(), self.ldb, b_len);
        check_operand("C", (self.m, self.n), self.ldc, c_len);
    }
}

fn check_operand(name: &str, (rows, cols): (usize, usize), ld: usize, len: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(
        ld >= cols,
        "gemm: leading dimension of {name} is {ld}, below its {cols} columns"
    );
    let needed = (rows - 1) * ld + cols;
    assert!(
        len >= needed,
        "gemm: {name} is {rows}x{cols} with leading dimension {ld} and needs {needed} elements, got {len}"
    );
}

/// `C = alpha op(A) op(B) + beta C` with the backend of the current [`precision`]
/// ([`Backend::DEFAULT`] unless [`set_precision`] chose bf16).
///
/// # Panics
/// If a slice is too short for the shapes in `spec`.
pub fn matmul(spec: &GemmSpec, a: &[f32], b: &[f32], c: &mut [f32]) {
    matmul_with(precision().backend(), spec, a, b, c);
}

/// `C = alpha op(A) op(B) + beta C` with a chosen backend (benchmarks and tests compare them).
///
/// # Panics
/// If a slice is too short for the shapes in `spec`.
pub fn matmul_with(backend: Backend, spec: &GemmSpec, a: &[f32], b: &[f32], c: &mut [f32]) {
    spec.check(a.len(), b.len(), c.len());
    if spec.m == 0 || spec.n == 0 {
        return;
    }
    if spec.k == 0 {
        scale_c(spec, c);
        return;
    }
    match backend {
        Backend::Naive => naive::run(spec, a, b, c),
        Backend::Gemm => gemm::run(spec, a, b, c),
        #[cfg(feature = "openblas")]
        Backend::OpenBlas => blas::run(spec, a, b, c),
        #[cfg(target_arch = "x86_64")]
        Backend::Bf16 => bf16::run(spec, a, b, c),
    }
}

/// Element offsets between consecutive problems of a batched GEMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchStrides {
    /// Offset between consecutive `A` operands.
    pub a: usize,
    /// Offset between consecutive `B` operands.
    pub b: usize,
    /// Offset between consecutive `C` operands.
    pub c: usize,
}

/// `count` independent GEMMs with the same `spec`; problem `i` reads `A` at `i * strides.a`,
/// `B` at `i * strides.b` and writes `C` at `i * strides.c`.
///
/// # Panics
/// If a slice is too short for the last problem.
pub fn matmul_batched(
    spec: &GemmSpec,
    count: usize,
    strides: BatchStrides,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
) {
    for i in 0..count {
        matmul(
            spec,
            &a[i * strides.a..],
            &b[i * strides.b..],
            &mut c[i * strides.c..],
        );
    }
}

/// `C = beta C` over the `m x n` block (the `k = 0` case).
fn scale_c(spec: &GemmSpec, c: &mut [f32]) {
    for row in c.chunks_mut(spec.ldc).take(spec.m) {
        for x in &mut row[..spec.n] {
            *x = if spec.beta == 0.0 {
                0.0
            } else {
                spec.beta * *x
            };
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(all(test, target_arch = "x86_64"))]
mod bf16_tests;
