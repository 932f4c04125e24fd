//! Row-wise softmax, optionally causal, in place, with its backward.
//!
//! Shapes: a buffer of `R` rows of `cols` entries. With [`Mask::Causal`]`(T)` the rows come in
//! blocks of `T x T` (one attention matrix per block, `cols == T`), and row `i` of each block
//! uses only its first `i + 1` entries: the rest are set to exactly zero by the forward pass and
//! receive exactly zero gradient in the backward pass.

use multiversion::multiversion;

use super::math;

/// Which entries of a row take part in the softmax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mask {
    /// Every entry.
    None,
    /// Row `i` of every `T x T` block sees entries `0..=i`.
    Causal(usize),
}

impl Mask {
    /// Number of entries of row `row` that take part.
    #[inline]
    fn visible(self, row: usize, cols: usize) -> usize {
        match self {
            Mask::None => cols,
            Mask::Causal(t) => row % t + 1,
        }
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

/// Replaces every row of `x[R, cols]` by its softmax, in place.
///
/// The same arithmetic as [`softmax_row`] on each row's live entries (results are bit for bit
/// the same), in three passes over the whole buffer so that the exponentials, the costly part,
/// run as one long vectorised pass ([`math::exp_slice`]) instead of row by row: causal rows are
/// short (row `i` has `i + 1` entries), and a row-by-row `exp` is bound by the latency of its
/// dependency chain. Masked entries are set to `-inf` first, whose `exp` is exactly 0.
/// (Running the maximum and the scaling over whole rows, masked entries included, measured
/// slower: `cargo bench -p cllm-tensor --bench main -- attention`.)
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn softmax_forward(x: &mut [f32], cols: usize, mask: Mask) {
    mask.check(cols);
    for (r, row) in x.chunks_exact_mut(cols).enumerate() {
        let (live, dead) = row.split_at_mut(mask.visible(r, cols));
        let max = math::max(live);
        for v in live.iter_mut() {
            *v -= max;
        }
        dead.fill(f32::NEG_INFINITY);
    }
    math::exp_slice(x);
    for (r, row) in x.chunks_exact_mut(cols).enumerate() {
        let live = &mut row[..mask.visible(r, cols)];
        let inv = 1.0 / math::sum(live);
        for v in live.iter_mut() {
            *v *= inv;
        }
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
/// `dx = y * (dy - <dy, y>)` per row. Shapes: `g[R, cols]`, `y[R, cols]` (the forward output).
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn softmax_backward(g: &mut [f32], y: &[f32], cols: usize, mask: Mask) {
    mask.check(cols);
    assert_eq!(
        g.len(),
        y.len(),
        "softmax backward: gradient and output lengths differ"
    );
    for (r, (grow, yrow)) in g
        .chunks_exact_mut(cols)
        .zip(y.chunks_exact(cols))
        .enumerate()
    {
        let n = mask.visible(r, cols);
        let (live, dead) = grow.split_at_mut(n);
        let dot = math::dot(live, &yrow[..n]);
        for (gv, &yv) in live.iter_mut().zip(&yrow[..n]) {
            *gv = yv * (*gv - dot);
        }
        dead.fill(0.0);
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

    #[test]
    fn forward_is_softmax_row_bit_for_bit() {
        // Several causal blocks of T = 37 (rows of every length, whole vectors and tails) and
        // unmasked rows.
        let t = 37;
        let x: Vec<f32> = (0..3 * t * t)
            .map(|i| ((i * 7919) % 1013) as f32 / 50.0 - 10.0)
            .collect();
        for mask in [Mask::Causal(t), Mask::None] {
            let mut want = x.clone();
            for (r, row) in want.chunks_exact_mut(t).enumerate() {
                let (live, dead) = row.split_at_mut(mask.visible(r, t));
                softmax_row(live);
                dead.fill(0.0);
            }
            let mut got = x.clone();
            softmax_forward(&mut got, t, mask);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{mask:?}");
        }
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
