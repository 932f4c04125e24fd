//! Attention of one (batch, head) pair computed with register-tiled loops instead of GEMM calls.
//!
//! Each product of the attention is small (`T x HS` by `HS x T` and back), and with small heads
//! a GEMM call's fixed cost (dispatch, packing set-up) outweighs its arithmetic: at `T = 32`,
//! `HS = 8` (the `tiny` preset) one call does 16K flops. Here every product is one loop nest
//! over blocks of [`MR`] output rows and up to [`WIDE`] output columns held in registers; the left
//! operand is read in place (by rows or by columns), the right one by rows, so only `K` (in the
//! forward pass) and `V` (in the backward pass) are copied, transposed, into a `HS x T`
//! scratch. Products keep the causal structure: a row block of `P V` stops at the diagonal.
//!
//! Arithmetic: every output element is one `f32` fused multiply-add chain over the product's
//! inner dimension in increasing order, then scaled (and added to the old value when
//! accumulating), whatever the block sizes and the instruction set: the result does not
//! depend on which other rows are computed with it, and equals itself on every run.

use std::ops::Range;

use multiversion::multiversion;

use super::HeadDropout;
use crate::kernels::softmax::{Mask, softmax_backward, softmax_forward};

/// Output rows per register block.
const MR: usize = 4;

/// The widest column block: `MR x 32` sums fill half of AVX-512's 32 vector registers. With
/// 16 registers (AVX2, the portable build's run-time version) they would not fit: the sums
/// spill, and a tiny-preset step ran 1.43x slower than the native build; blocks of 16 there.
/// (The results are the same bits either way: each sum is one chain over `k`.)
#[cfg(target_feature = "avx512f")]
const WIDE: usize = 32;
/// The widest column block (see the AVX-512 definition).
#[cfg(not(target_feature = "avx512f"))]
const WIDE: usize = 16;

/// `A(r, p) = data[r * rs + p * cs]`: the left operand, read in place by rows (`cs == 1`) or by
/// columns (`rs == 1`).
#[derive(Clone, Copy)]
struct Lhs<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> Lhs<'a> {
    /// `A(r, p) = data[r * rs + p]`: stored by rows.
    fn by_rows(data: &'a [f32], rs: usize) -> Self {
        Lhs { data, rs, cs: 1 }
    }

    /// `A(r, p) = data[r + p * cs]`: stored by columns (the transpose of a row-major matrix).
    fn by_columns(data: &'a [f32], cs: usize) -> Self {
        Lhs { data, rs: 1, cs }
    }
}

/// The right operand `B[p, j] = data[p * rs + j]` and the output `C[r, j] = c[r * crs + j]`.
#[derive(Clone, Copy)]
struct Rhs<'a> {
    data: &'a [f32],
    rs: usize,
}

impl<'a> Rhs<'a> {
    fn new(data: &'a [f32], rs: usize) -> Self {
        Rhs { data, rs }
    }
}

/// For the `rows <= MR` rows of one block and columns `0..n`:
/// `C[r, j] = alpha * sum_{p in ks} A(r, p) B[p, j]`, plus the old `C[r, j]` if `accumulate`.
/// `ks` is not empty (every product of attention sums over at least one term).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row_block(
    rows: usize,
    ks: Range<usize>,
    n: usize,
    a: Lhs,
    b: Rhs,
    c: &mut [f32],
    crs: usize,
    alpha: f32,
    accumulate: bool,
) {
    if rows == MR {
        row_block_of::<MR>(ks, n, a, b, c, crs, alpha, accumulate);
    } else {
        for r in 0..rows {
            let a = Lhs {
                data: &a.data[r * a.rs..],
                ..a
            };
            let c = &mut c[r * crs..];
            row_block_of::<1>(ks.clone(), n, a, b, c, crs, alpha, accumulate);
        }
    }
}

/// [`row_block`] for exactly `R` rows, in column blocks of [`WIDE`], 16, 8 and 1.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row_block_of<const R: usize>(
    ks: Range<usize>,
    n: usize,
    a: Lhs,
    b: Rhs,
    c: &mut [f32],
    crs: usize,
    alpha: f32,
    accumulate: bool,
) {
    let mut j = 0;
    while j + WIDE <= n {
        columns::<WIDE, R>(ks.clone(), j, a, b, c, crs, alpha, accumulate);
        j += WIDE;
    }
    while j + 16 <= n {
        columns::<16, R>(ks.clone(), j, a, b, c, crs, alpha, accumulate);
        j += 16;
    }
    if j + 8 <= n {
        columns::<8, R>(ks.clone(), j, a, b, c, crs, alpha, accumulate);
        j += 8;
    }
    while j < n {
        columns::<1, R>(ks.clone(), j, a, b, c, crs, alpha, accumulate);
        j += 1;
    }
}

/// Rows `0..R`, columns `j..j + W` of [`row_block`], whose `R x W` sums stay in registers.
/// `ks` is not empty.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn columns<const W: usize, const R: usize>(
    ks: Range<usize>,
    j: usize,
    a: Lhs,
    b: Rhs,
    c: &mut [f32],
    crs: usize,
    alpha: f32,
    accumulate: bool,
) {
    let last = ks.end - 1;
    // Every index the loop below reads or writes, at its largest.
    assert!((R - 1) * a.rs + last * a.cs < a.data.len());
    assert!(last * b.rs + j + W <= b.data.len());
    assert!((R - 1) * crs + j + W <= c.len());
    let mut acc = [[0.0f32; W]; R];
    for p in ks {
        // SAFETY: `p <= last`, so `p * b.rs + j + w < b.data.len()` for `w < W` (asserted).
        let bv: [f32; W] =
            std::array::from_fn(|w| unsafe { *b.data.get_unchecked(p * b.rs + j + w) });
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: `r < R` and `p <= last`: within the bound asserted for A.
            let x = unsafe { *a.data.get_unchecked(r * a.rs + p * a.cs) };
            for w in 0..W {
                acc[w] = x.mul_add(bv[w], acc[w]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let out = &mut c[r * crs + j..][..W];
        for w in 0..W {
            out[w] = if accumulate {
                alpha.mul_add(acc[w], out[w])
            } else {
                alpha * acc[w]
            };
        }
    }
}

/// `dst[d * t + j] = src[j * ld + d]` for `d < width`, `j < t`: a `T x width` block,
/// transposed. With `width = C` this is every head's `T x HS` block at once (head `h`'s is rows
/// `h * HS..` of `dst`), and `src` is read row by row, front to back: in a backward pass `V` is
/// no longer in cache, and a head's columns alone, read row by row, cost a cache miss every
/// few values. It goes in square tiles of [`TILE`], each read as `TILE` rows of `src` and
/// written as `TILE` rows of `dst`: with AVX-512, sixteen vector loads, a transpose in
/// registers and sixteen vector stores (value by value, a nanoGPT-cpu step spent 2% of its
/// time here; 0.8% now); with AVX, the same in 8 x 8 tiles (`kernels::transpose8`);
/// elsewhere 8 x 8 tiles copied value by value. Edges value by value.
#[multiversion(targets("x86_64+avx2+fma"))]
pub(super) fn transpose(src: &[f32], ld: usize, t: usize, width: usize, dst: &mut [f32]) {
    let dst = &mut dst[..width * t];
    let (tiled_t, tiled_w) = (t / TILE * TILE, width / TILE * TILE);
    for j0 in (0..tiled_t).step_by(TILE) {
        for d0 in (0..tiled_w).step_by(TILE) {
            transpose_tile(&src[j0 * ld + d0..], ld, &mut dst[d0 * t + j0..], t);
        }
    }
    // The edges: the columns right of the tiles, then the rows below them.
    let mut by_value = |js: Range<usize>, ds: Range<usize>| {
        for j in js {
            for d in ds.clone() {
                dst[d * t + j] = src[j * ld + d];
            }
        }
    };
    by_value(0..tiled_t, tiled_w..width);
    by_value(tiled_t..t, 0..width);
}

/// Side of [`transpose`]'s tiles: one vector register per row of a tile.
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
const TILE: usize = 16;
/// Side of [`transpose`]'s tiles (see the AVX-512 definition).
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
const TILE: usize = 8;

/// `dst[d * ldd + r] = src[r * lds + d]` for `r, d < TILE`: sixteen rows loaded into
/// registers, transposed there, and stored as sixteen rows.
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
#[inline(always)]
fn transpose_tile(src: &[f32], lds: usize, dst: &mut [f32], ldd: usize) {
    use std::arch::x86_64::{__m512i, _mm512_loadu_si512, _mm512_storeu_si512};
    assert!((TILE - 1) * lds + TILE <= src.len() && (TILE - 1) * ldd + TILE <= dst.len());
    // SAFETY: the build enables AVX-512 F (this item's `cfg`), so its instructions exist; row
    // `r < 16` of the tile is `src[r * lds..][..16]` and of its transpose `dst[d * ldd..][..16]`,
    // both inside the bounds asserted above; unaligned loads and stores have no alignment
    // requirement, and `f32` and `u32` lanes are moved as bits.
    unsafe {
        let rows: [__m512i; TILE] =
            std::array::from_fn(
                |r| _mm512_loadu_si512(src.as_ptr().add(r * lds) as *const __m512i),
            );
        let columns = crate::kernels::transpose16::transpose_16x16(rows);
        for (d, v) in columns.iter().enumerate() {
            _mm512_storeu_si512(dst.as_mut_ptr().add(d * ldd) as *mut __m512i, *v);
        }
    }
}

/// `dst[d * ldd + r] = src[r * lds + d]` for `r, d < TILE`: eight rows loaded into AVX
/// registers, transposed there, and stored as eight rows (copied value by value, a tile took
/// 64 scalar loads and 64 scalar stores).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx",
    not(target_feature = "avx512f")
))]
#[inline(always)]
fn transpose_tile(src: &[f32], lds: usize, dst: &mut [f32], ldd: usize) {
    use std::arch::x86_64::{__m256, _mm256_loadu_ps, _mm256_storeu_ps};
    assert!((TILE - 1) * lds + TILE <= src.len() && (TILE - 1) * ldd + TILE <= dst.len());
    // SAFETY: the build enables AVX (this item's `cfg`), so its instructions exist; row `r < 8`
    // of the tile is `src[r * lds..][..8]` and of its transpose `dst[d * ldd..][..8]`, both
    // inside the bounds asserted above; unaligned loads and stores have no alignment
    // requirement.
    unsafe {
        let rows: [__m256; TILE] =
            std::array::from_fn(|r| _mm256_loadu_ps(src.as_ptr().add(r * lds)));
        let columns = crate::kernels::transpose8::transpose_8x8(rows);
        for (d, v) in columns.iter().enumerate() {
            _mm256_storeu_ps(dst.as_mut_ptr().add(d * ldd), *v);
        }
    }
}

/// `dst[d * ldd + r] = src[r * lds + d]` for `r, d < TILE`, through a tile of registers.
#[cfg(not(all(
    target_arch = "x86_64",
    any(target_feature = "avx", target_feature = "avx512f")
)))]
#[inline(always)]
fn transpose_tile(src: &[f32], lds: usize, dst: &mut [f32], ldd: usize) {
    let tile: [[f32; TILE]; TILE] = std::array::from_fn(|r| {
        let row = &src[r * lds..][..TILE];
        std::array::from_fn(|d| row[d])
    });
    for d in 0..TILE {
        let out = &mut dst[d * ldd..][..TILE];
        for (r, o) in out.iter_mut().enumerate() {
            *o = tile[r][d];
        }
    }
}

/// Row blocks `(first row, rows)` of a length `t`.
fn blocks(t: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..t).step_by(MR).map(move |i0| (i0, MR.min(t - i0)))
}

/// Columns a row block of the causal `T x T` scores computes: those it sees (`0..i0 + rows`),
/// rounded up to whole vectors of 8 within the row (the softmax overwrites the extra ones).
fn causal_width(i0: usize, rows: usize, t: usize) -> usize {
    (i0 + rows).next_multiple_of(8).min(t)
}

/// `out[i, j] = alpha * sum_d a[i * lda + d] bt[d * t + j]` for the `T x T` causal block's
/// visible columns (rounded up, [`causal_width`]): the scores `S = Q K^T` or `dP = dO V^T`, with
/// the right operand transposed (`bt`, `hs x t`).
#[inline(always)]
fn causal_scores(
    a: &[f32],
    lda: usize,
    bt: &[f32],
    t: usize,
    hs: usize,
    alpha: f32,
    out: &mut [f32],
) {
    for (i0, rows) in blocks(t) {
        let n = causal_width(i0, rows, t);
        let (a, bt) = (Lhs::by_rows(&a[i0 * lda..], lda), Rhs::new(bt, t));
        row_block(rows, 0..hs, n, a, bt, &mut out[i0 * t..], t, alpha, false);
    }
}

/// `out[i, :hs] (+)= alpha * sum_j P(i, j) b[j * ldb..][..hs]`, where `P` is a causal `T x T`
/// block `p` (exactly 0 past the diagonal, where the sums stop) or, `transposed`, its transpose
/// (row `j` sums from `j` on: the queries before `j` do not see key `j`). `O = P V`, `dQ +=
/// scale dS K`; transposed, `dV += P^T dO`, `dK += scale dS^T Q`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn causal_times(
    p: &[f32],
    transposed: bool,
    b: &[f32],
    ldb: usize,
    t: usize,
    hs: usize,
    alpha: f32,
    accumulate: bool,
    out: &mut [f32],
    ldo: usize,
) {
    for (i0, rows) in blocks(t) {
        let (p, ks) = if transposed {
            (Lhs::by_columns(&p[i0..], t), i0..t)
        } else {
            (Lhs::by_rows(&p[i0 * t..], t), 0..i0 + rows)
        };
        let (b, o) = (Rhs::new(b, ldb), &mut out[i0 * ldo..]);
        row_block(rows, ks, hs, p, b, o, ldo, alpha, accumulate);
    }
}

/// One (batch, head) pair of the forward pass. `qkv` starts at the head's query columns
/// (row stride `3c`), `out` at its output columns (stride `c`); `probs` is its `T x T` block;
/// `kt` is the head's keys, transposed (`hs x t`, by [`transpose`]).
#[multiversion(targets("x86_64+avx2+fma"))]
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_head(
    out: &mut [f32],
    probs: &mut [f32],
    kt: &[f32],
    qkv: &[f32],
    t: usize,
    c: usize,
    hs: usize,
    scale: f32,
    dropout: Option<HeadDropout>,
) {
    let ld = 3 * c;
    causal_scores(qkv, ld, kt, t, hs, scale, probs); // S = scale Q K^T
    softmax_forward(probs, t, Mask::Causal(t));
    let v = &qkv[2 * c..];
    match dropout {
        None => causal_times(probs, false, v, ld, t, hs, 1.0, false, out, c), // O = P V
        Some(mut d) => {
            d.drop_causal(probs, t); // P' = P * mask
            causal_times(d.dropped, false, v, ld, t, hs, 1.0, false, out, c); // O = P' V
        }
    }
}

/// One (batch, head) pair of the backward pass, accumulating into `dqkv` (laid out as `qkv`,
/// from the head's query columns). `dout` starts at the head's output-gradient columns; `dp`
/// holds `t * t` floats of scratch, and `vt` is the head's values, transposed (`hs x t`).
#[multiversion(targets("x86_64+avx2+fma"))]
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_head(
    dqkv: &mut [f32],
    dp: &mut [f32],
    vt: &[f32],
    dout: &[f32],
    qkv: &[f32],
    probs: &[f32],
    t: usize,
    c: usize,
    hs: usize,
    scale: f32,
    dropout: Option<HeadDropout>,
) {
    let ld = 3 * c;
    causal_scores(dout, c, vt, t, hs, 1.0, dp); // dP = dO V^T (dP' with dropout)
    let dv = &mut dqkv[2 * c..];
    match dropout {
        None => causal_times(probs, true, dout, c, t, hs, 1.0, true, dv, ld), // dV += P^T dO
        Some(mut d) => {
            d.drop_causal_both(probs, dp, t); // P' = P * mask, dP = dP' * mask
            causal_times(d.dropped, true, dout, c, t, hs, 1.0, true, dv, ld); // dV += P'^T dO
        }
    }
    softmax_backward(dp, probs, t, Mask::Causal(t)); // dS
    causal_times(dp, false, &qkv[c..], ld, t, hs, scale, true, dqkv, ld); // dQ += scale dS K
    let dk = &mut dqkv[c..];
    causal_times(dp, true, qkv, ld, t, hs, scale, true, dk, ld); // dK += scale dS^T Q
}
