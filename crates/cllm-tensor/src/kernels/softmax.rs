//! Row-wise softmax, optionally causal, in place, with its backward.
//!
//! Shapes: a buffer of `R` rows of `cols` entries. With [`Mask::Causal`]`(T)` the rows come in
//! blocks of `T x T` (one attention matrix per block, `cols == T`), and row `i` of each block
//! uses only its first `i + 1` entries: the rest are set to exactly zero by the forward pass and
//! receive exactly zero gradient in the backward pass.
//!
//! # Sums
//!
//! A row's sum (forward) and dot product (backward) keep 16 partial sums, entry `j` going to
//! lane `j % 16`, and add them in a fixed tree (lane `l` plus lane `l + 8`, then `l + 4`,
//! `l + 2`, `l + 1`); every operation is a plain `f32` one in a fixed order. Where the build
//! has AVX-512 each row is a few vector operations with masked loads and stores, no scalar tail
//! and no branch on the row's length; where it has AVX2 (and not AVX-512), vectors of eight
//! with the entries past the row's live count blended away; elsewhere the same sums are plain
//! loops. The results are the same bits every way, and do not depend on which rows are
//! computed together. (Causal rows are mostly short, row `i` having `i + 1` entries: summed
//! with a scalar tail and a left-to-right horizontal sum, their dependency chains, not their
//! arithmetic, set the speed.)

use multiversion::multiversion;

use super::math;

#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
mod avx512;
// Compiled wherever the build has AVX2, AVX-512 machines included, so that its bit-for-bit test
// runs there too; the rows use it only where there is no AVX-512.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
#[cfg_attr(all(target_feature = "avx512f", not(test)), allow(dead_code))]
mod avx2;

/// Partial sums per row: one AVX-512 register of `f32`.
const LANES: usize = 16;

/// Which entries of a row take part in the softmax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mask {
    /// Every entry.
    None,
    /// Row `i` of every `T x T` block sees entries `0..=i`.
    Causal(usize),
}

impl Mask {
    /// How many entries of rows `0, 1, 2, ...` take part: `cols`, or `r % T + 1` for row `r`
    /// (counted rather than divided: an integer division per short row costs as much as the
    /// row's arithmetic).
    fn live_counts(self, cols: usize) -> impl Iterator<Item = usize> {
        let t = match self {
            Mask::None => 1,
            Mask::Causal(t) => t,
        };
        (1..=t)
            .cycle()
            .map(move |i| if self == Mask::None { cols } else { i })
    }

    fn check(self, cols: usize) {
        if let Mask::Causal(t) = self {
            assert_eq!(
                t, cols,
                "causal softmax: rows must have T = {t} entries, got {cols}"
            );
        }
    }
}

/// The sum of [`LANES`] partial sums in a fixed tree: lane `l` plus lane `l + 8`, then `l + 4`,
/// `l + 2` and `l + 1`.
#[inline(always)]
fn tree_sum(mut acc: [f32; LANES]) -> f32 {
    for width in [8, 4, 2, 1] {
        for l in 0..width {
            acc[l] += acc[l + width];
        }
    }
    acc[0]
}

// The three per-row steps, dispatched: the AVX-512 versions where the build has AVX-512, the
// AVX2 ones where it has AVX2 but not AVX-512, `portable`'s elsewhere (the same bits).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    not(target_feature = "avx512f")
))]
use avx2::{backward_row, scale_row, shift_row};
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
use avx512::{backward_row, scale_row, shift_row};
#[cfg(not(all(
    target_arch = "x86_64",
    any(target_feature = "avx2", target_feature = "avx512f")
)))]
use portable::{backward_row, scale_row, shift_row};

/// The per-row steps as plain loops: the definition the vector versions are tested against,
/// and the code of builds with neither AVX2 nor AVX-512 (a portable build's run-time AVX2
/// version of the kernels included: these loops compiled for AVX2).
#[cfg_attr(
    all(
        target_arch = "x86_64",
        any(target_feature = "avx2", target_feature = "avx512f"),
        not(test)
    ),
    allow(dead_code)
)]
mod portable {
    use super::{LANES, math, tree_sum};

    /// `sum_j x[j] y[j]` with entry `j` in lane `j % LANES` (`y = None`: `sum_j x[j]`), then
    /// [`tree_sum`].
    #[inline(always)]
    fn lane_sum(x: &[f32], y: Option<&[f32]>) -> f32 {
        let mut acc = [0.0f32; LANES];
        let term = |j: usize| y.map_or(x[j], |y| x[j] * y[j]);
        let whole = x.len() / LANES * LANES;
        for j0 in (0..whole).step_by(LANES) {
            for (l, a) in acc.iter_mut().enumerate() {
                *a += term(j0 + l);
            }
        }
        for (l, a) in acc.iter_mut().enumerate().take(x.len() - whole) {
            *a += term(whole + l);
        }
        tree_sum(acc)
    }

    /// The row's first `live` entries minus their maximum; the others `-inf`.
    #[inline(always)]
    pub(super) fn shift_row(row: &mut [f32], live: usize) {
        let (live, dead) = row.split_at_mut(live);
        let max = math::max(live);
        for v in live.iter_mut() {
            *v -= max;
        }
        dead.fill(f32::NEG_INFINITY);
    }

    /// The row's first `live` entries divided by their sum (the others are 0 and stay 0).
    #[inline(always)]
    pub(super) fn scale_row(row: &mut [f32], live: usize) {
        let live = &mut row[..live];
        let inv = 1.0 / lane_sum(live, None);
        for v in live.iter_mut() {
            *v *= inv;
        }
    }

    /// `g[j] = y[j] (g[j] - <g, y>)` over the first `live` entries (the dot product over
    /// those), 0 at the others; `g`'s entries past `live` are not read.
    #[inline(always)]
    pub(super) fn backward_row(g: &mut [f32], y: &[f32], live: usize) {
        let (glive, dead) = g.split_at_mut(live);
        let dot = lane_sum(glive, Some(&y[..live]));
        for (gv, &yv) in glive.iter_mut().zip(&y[..live]) {
            *gv = yv * (*gv - dot);
        }
        dead.fill(0.0);
    }
}

/// Replaces every row of `x[R, cols]` by its softmax, in place.
///
/// Three passes over the whole buffer, so that the exponentials, the costly part, run as one
/// long vectorised pass ([`math::exp_slice`]) instead of row by row (a row-by-row `exp` of short
/// rows is bound by the latency of its dependency chain): per row, the maximum is subtracted
/// and masked entries are set to `-inf`, whose `exp` is exactly 0; the `exp`; per row, the
/// scaling by the inverse of the sum (module docs). [`softmax_row`]'s arithmetic but for the
/// order of the sum.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn softmax_forward(x: &mut [f32], cols: usize, mask: Mask) {
    mask.check(cols);
    for (row, live) in x.chunks_exact_mut(cols).zip(mask.live_counts(cols)) {
        shift_row(row, live);
    }
    math::exp_slice(x);
    for (row, live) in x.chunks_exact_mut(cols).zip(mask.live_counts(cols)) {
        scale_row(row, live);
    }
}

/// Softmax of one row in place, stable against large entries; returns the row's
/// log-sum-exp (`ln sum_j e^{x_j}`, the softmax's normaliser), which cross-entropy needs.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn softmax_row(row: &mut [f32]) -> f32 {
    let max = math::max(row);
    for v in row.iter_mut() {
        *v = math::exp(*v - max);
    }
    let sum = math::sum(row);
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
    max + sum.ln()
}

/// Backward of [`softmax_forward`], in place: `g` holds `dL/dy` on entry and `dL/dx` on exit,
/// `dx = y * (dy - <dy, y>)` per row (the dot product summed as the module docs say). Shapes:
/// `g[R, cols]`, `y[R, cols]` (the forward output). `g`'s masked entries are not read.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn softmax_backward(g: &mut [f32], y: &[f32], cols: usize, mask: Mask) {
    mask.check(cols);
    assert_eq!(
        g.len(),
        y.len(),
        "softmax backward: gradient and output lengths differ"
    );
    let rows = g.chunks_exact_mut(cols).zip(y.chunks_exact(cols));
    for ((grow, yrow), live) in rows.zip(mask.live_counts(cols)) {
        backward_row(grow, yrow, live);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sum_to_one_and_order_is_kept() {
        let mut x = vec![1.0, 2.0, 3.0, 1000.0, 1000.0, -1000.0];
        softmax_forward(&mut x, 3, Mask::None);
        assert!((x[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[0] < x[1] && x[1] < x[2]);
        let e = [1f64.exp(), 2f64.exp(), 3f64.exp()];
        let s: f64 = e.iter().sum();
        for i in 0..3 {
            assert!((x[i] as f64 - e[i] / s).abs() < 1e-6);
        }
        assert!((x[3] - 0.5).abs() < 1e-6 && (x[4] - 0.5).abs() < 1e-6 && x[5] == 0.0);
    }

    /// Rows of every length, whole vectors of 16 and tails: causal blocks of T = 37 and 32,
    /// and unmasked rows of 37.
    fn cases() -> Vec<(usize, Mask, Vec<f32>)> {
        let scores = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 7919) % 1013) as f32 / 50.0 - 10.0)
                .collect()
        };
        vec![
            (37, Mask::Causal(37), scores(3 * 37 * 37)),
            (32, Mask::Causal(32), scores(2 * 32 * 32)),
            (37, Mask::None, scores(5 * 37)),
        ]
    }

    /// Rows of `x` with how many entries of each take part.
    fn rows(x: &[f32], cols: usize, mask: Mask) -> impl Iterator<Item = (&[f32], usize)> {
        x.chunks_exact(cols).zip(mask.live_counts(cols))
    }

    #[test]
    fn forward_is_the_softmax_of_the_live_entries() {
        for (cols, mask, x) in cases() {
            let mut got = x.clone();
            softmax_forward(&mut got, cols, mask);
            for ((xrow, live), yrow) in rows(&x, cols, mask).zip(got.chunks_exact(cols)) {
                let max = xrow[..live].iter().fold(f64::MIN, |m, &v| m.max(v as f64));
                let e: Vec<f64> = xrow[..live]
                    .iter()
                    .map(|&v| (v as f64 - max).exp())
                    .collect();
                let sum: f64 = e.iter().sum();
                for (&y, &e) in yrow.iter().zip(&e) {
                    assert!(
                        (y as f64 - e / sum).abs() < 1e-6,
                        "{mask:?}: {y} vs {}",
                        e / sum
                    );
                }
                assert!(yrow[live..].iter().all(|y| y.to_bits() == 0), "{mask:?}");
                // softmax_row, which cross-entropy uses, agrees, and returns the log-sum-exp.
                let mut row = xrow[..live].to_vec();
                let lse = softmax_row(&mut row);
                assert!((lse as f64 - (max + sum.ln())).abs() < 1e-5);
                for (&a, &b) in row.iter().zip(yrow) {
                    assert!((a - b).abs() < 1e-6);
                }
            }
        }
    }

    #[test]
    fn backward_is_the_softmax_jacobian_and_reads_no_masked_entry() {
        for (cols, mask, x) in cases() {
            let mut y = x.clone();
            softmax_forward(&mut y, cols, mask);
            let dy: Vec<f32> = x.iter().map(|v| (v * 3.7).sin()).collect();
            let mut g = dy.clone();
            for (grow, live) in g.chunks_exact_mut(cols).zip(mask.live_counts(cols)) {
                grow[live..].fill(f32::NAN);
            }
            softmax_backward(&mut g, &y, cols, mask);
            let live_rows = rows(&dy, cols, mask).zip(y.chunks_exact(cols));
            for (((dyrow, live), yrow), grow) in live_rows.zip(g.chunks_exact(cols)) {
                let dot: f64 = (0..live).map(|j| dyrow[j] as f64 * yrow[j] as f64).sum();
                for j in 0..live {
                    let want = yrow[j] as f64 * (dyrow[j] as f64 - dot);
                    assert!((grow[j] as f64 - want).abs() < 1e-6, "{mask:?} {j}");
                }
                assert!(grow[live..].iter().all(|v| v.to_bits() == 0), "{mask:?}");
            }
        }
    }

    #[test]
    fn sums_go_to_sixteen_lanes_then_a_tree() {
        // Entries whose sum depends on the order: 1 (lane 0), then twenty 2^-24 spread over the
        // lanes. Left to right each small entry rounds away; in lanes they meet first.
        let mut row = vec![1.0f32];
        row.extend(std::iter::repeat_n(f32::EPSILON / 2.0, 20));
        let mut acc = [0.0f32; LANES];
        for (j, &v) in row.iter().enumerate() {
            acc[j % LANES] += v;
        }
        let mut tree = acc;
        for width in [8, 4, 2, 1] {
            for l in 0..width {
                tree[l] += tree[l + width];
            }
        }
        let left_to_right: f32 = row.iter().sum();
        assert_ne!(
            tree[0], left_to_right,
            "the case must tell the orders apart"
        );
        let mut got = row.clone();
        scale_row(&mut got, row.len());
        let inv = 1.0 / tree[0];
        for (&g, &v) in got.iter().zip(&row) {
            assert_eq!(g.to_bits(), (v * inv).to_bits());
        }
    }

    /// Every vector version of the row steps the build has, against the portable loops, bit
    /// for bit: rows of 1 to 64 entries (whole vectors of 8 and 16 and every tail) with every
    /// live count, and `g`'s entries past the live ones NaN.
    fn vector_rows_are_the_portable_rows_bit_for_bit(
        shift: fn(&mut [f32], usize),
        scale: fn(&mut [f32], usize),
        backward: fn(&mut [f32], &[f32], usize),
    ) {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for cols in [1, 5, 8, 9, 15, 16, 17, 24, 31, 32, 37, 40, 64] {
            for live in 1..=cols {
                let x: Vec<f32> = (0..cols)
                    .map(|j| ((j * 7919 + live * 31) % 1013) as f32 / 50.0 - 10.0)
                    .collect();
                let (mut a, mut b) = (x.clone(), x.clone());
                shift(&mut a, live);
                portable::shift_row(&mut b, live);
                assert_eq!(bits(&a), bits(&b), "shift {cols} {live}");
                math::exp_slice(&mut a);
                math::exp_slice(&mut b);
                scale(&mut a, live);
                portable::scale_row(&mut b, live);
                assert_eq!(bits(&a), bits(&b), "scale {cols} {live}");
                let mut g: Vec<f32> = x.iter().map(|v| (v * 3.7).sin()).collect();
                g[live..].fill(f32::NAN);
                let mut h = g.clone();
                backward(&mut g, &a, live);
                portable::backward_row(&mut h, &a, live);
                assert_eq!(bits(&g), bits(&h), "backward {cols} {live}");
            }
        }
    }

    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    #[test]
    fn avx512_rows_are_the_portable_rows_bit_for_bit() {
        vector_rows_are_the_portable_rows_bit_for_bit(
            avx512::shift_row,
            avx512::scale_row,
            avx512::backward_row,
        );
    }

    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    #[test]
    fn avx2_rows_are_the_portable_rows_bit_for_bit() {
        vector_rows_are_the_portable_rows_bit_for_bit(
            avx2::shift_row,
            avx2::scale_row,
            avx2::backward_row,
        );
    }

    #[test]
    fn causal_mask_zeroes_the_future() {
        let t = 3;
        let mut x = vec![0.5; 2 * t * t];
        softmax_forward(&mut x, t, Mask::Causal(t));
        for block in x.chunks(t * t) {
            assert_eq!(&block[..3], &[1.0, 0.0, 0.0]);
            assert_eq!(&block[3..6], &[0.5, 0.5, 0.0]);
            assert!(block[6..].iter().all(|&p| (p - 1.0 / 3.0).abs() < 1e-6));
        }
        let mut g = vec![1.0; 2 * t * t];
        softmax_backward(&mut g, &x, t, Mask::Causal(t));
        // A constant upstream gradient has zero softmax gradient; masked entries stay zero.
        assert!(g.iter().all(|&v| v.abs() < 1e-7));
    }
}
