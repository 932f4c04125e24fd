//! Fused causal multi-head self-attention, forward and backward.
//!
//! Shapes (B batch, T time, C channels, NH heads, HS = C / NH head size):
//! `qkv[B, T, 3C]` holds the query, key and value projections side by side in each row (heads
//! are consecutive `HS`-wide column blocks inside each third), `out[B, T, C]`, and the saved
//! attention probabilities `probs[B, NH, T, T]`. Each (batch, head) pair is a few small GEMMs
//! reading the head's column block in place through leading dimensions, so nothing is copied
//! or permuted.
//!
//! Causality is used to skip work: the `T x T` matrices are cut into [`BLOCK`]-row blocks, and
//! row block `r` only involves key columns `0 .. (r + 1) * BLOCK`. At `T = 64` that computes 3/4
//! of the full score matrix, at `T = 256` 9/16. Entries above the diagonal are never computed;
//! the softmax writes exact zeros there.

use std::ops::Range;

use super::matmul::{GemmSpec, matmul};

use super::softmax::{Mask, softmax_backward, softmax_forward};

/// Rows per causal block (see the module docs).
pub const BLOCK: usize = 32;

/// The causal row blocks of a `T x T` matrix: (rows, visible key columns `0..end`).
fn blocks(t: usize) -> impl Iterator<Item = (Range<usize>, usize)> {
    (0..t.div_ceil(BLOCK)).map(move |r| {
        let rows = r * BLOCK..((r + 1) * BLOCK).min(t);
        let end = rows.end;
        (rows, end)
    })
}

/// The dimensions of one attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// Batch size B.
    pub b: usize,
    /// Sequence length T.
    pub t: usize,
    /// Channels C (model width).
    pub c: usize,
    /// Number of heads NH; must divide C.
    pub nh: usize,
}

impl AttentionShape {
    /// Head size `C / NH`.
    pub fn head_size(&self) -> usize {
        self.c / self.nh
    }

    /// Length of `qkv` / `dqkv`: `B * T * 3C`.
    pub fn qkv_len(&self) -> usize {
        self.b * self.t * 3 * self.c
    }

    /// Length of `out` / `dout`: `B * T * C`.
    pub fn out_len(&self) -> usize {
        self.b * self.t * self.c
    }

    /// Length of `probs`: `B * NH * T * T`.
    pub fn probs_len(&self) -> usize {
        self.b * self.nh * self.t * self.t
    }

    /// Length of the backward scratch buffer: one `T x T` matrix.
    pub fn scratch_len(&self) -> usize {
        self.t * self.t
    }

    fn check(&self, qkv: usize, out: usize, probs: usize) {
        assert!(
            self.nh > 0 && self.c.is_multiple_of(self.nh),
            "attention: {} heads do not divide C = {}",
            self.nh,
            self.c
        );
        assert_eq!(
            qkv,
            self.qkv_len(),
            "attention: qkv is not [B, T, 3C] for {self:?}"
        );
        assert_eq!(
            out,
            self.out_len(),
            "attention: out is not [B, T, C] for {self:?}"
        );
        assert_eq!(
            probs,
            self.probs_len(),
            "attention: probs is not [B, NH, T, T] for {self:?}"
        );
    }

    /// Offsets of (batch `b`, head `h`): query column block in `qkv`, its `[T, T]` block in
    /// `probs`, and its column block in `out`.
    fn offsets(&self, b: usize, h: usize) -> (usize, usize, usize) {
        let hs = self.head_size();
        let qkv = b * self.t * 3 * self.c + h * hs;
        let probs = (b * self.nh + h) * self.t * self.t;
        let out = b * self.t * self.c + h * hs;
        (qkv, probs, out)
    }
}

/// `out = softmax(Q K^T / sqrt(HS), causal) V` per head; saves the probabilities in `probs`.
pub fn attention_forward(out: &mut [f32], probs: &mut [f32], qkv: &[f32], shape: AttentionShape) {
    shape.check(qkv.len(), out.len(), probs.len());
    let (t, c, hs) = (shape.t, shape.c, shape.head_size());
    let scale = 1.0 / (hs as f32).sqrt();
    for b in 0..shape.b {
        for h in 0..shape.nh {
            let (q, p, o) = shape.offsets(b, h);
            let pb = &mut probs[p..p + t * t];
            for (rows, end) in blocks(t) {
                // S[rows, 0..end] = scale * Q[rows] K[0..end]^T
                let spec = GemmSpec::nt(rows.len(), hs, end)
                    .alpha(scale)
                    .lead(3 * c, 3 * c, t);
                matmul(
                    &spec,
                    &qkv[q + rows.start * 3 * c..],
                    &qkv[q + c..],
                    &mut pb[rows.start * t..],
                );
            }
            softmax_forward(pb, t, Mask::Causal(t));
            for (rows, end) in blocks(t) {
                // O[rows] = P[rows, 0..end] V[0..end]
                let spec = GemmSpec::nn(rows.len(), end, hs).lead(t, 3 * c, c);
                matmul(
                    &spec,
                    &pb[rows.start * t..],
                    &qkv[q + 2 * c..],
                    &mut out[o + rows.start * c..],
                );
            }
        }
    }
}

/// Accumulates the gradient of [`attention_forward`] into `dqkv` (`dqkv += dL/dqkv`).
/// `scratch` must hold [`AttentionShape::scratch_len`] floats; its contents are overwritten.
pub fn attention_backward(
    dqkv: &mut [f32],
    scratch: &mut [f32],
    dout: &[f32],
    qkv: &[f32],
    probs: &[f32],
    shape: AttentionShape,
) {
    shape.check(qkv.len(), dout.len(), probs.len());
    assert_eq!(
        dqkv.len(),
        qkv.len(),
        "attention backward: dqkv is not [B, T, 3C]"
    );
    let (t, c, hs) = (shape.t, shape.c, shape.head_size());
    let scale = 1.0 / (hs as f32).sqrt();
    let dp = &mut scratch[..t * t];
    for b in 0..shape.b {
        for h in 0..shape.nh {
            let (q, p, o) = shape.offsets(b, h);
            let pb = &probs[p..p + t * t];
            for (rows, end) in blocks(t) {
                // dP[rows, 0..end] = dO[rows] V[0..end]^T
                let spec = GemmSpec::nt(rows.len(), hs, end).lead(c, 3 * c, t);
                matmul(
                    &spec,
                    &dout[o + rows.start * c..],
                    &qkv[q + 2 * c..],
                    &mut dp[rows.start * t..],
                );
            }
            for (cols, _) in blocks(t) {
                // dV[cols] += P[cols.start.., cols]^T dO[cols.start..]: only rows at or below the
                // diagonal block have non-zero probabilities for these keys.
                let k = t - cols.start;
                let spec = GemmSpec::tn(cols.len(), k, hs)
                    .lead(t, c, 3 * c)
                    .accumulate();
                let pcol = &pb[cols.start * t + cols.start..];
                let dov = &dout[o + cols.start * c..];
                matmul(
                    &spec,
                    pcol,
                    dov,
                    &mut dqkv[q + 2 * c + cols.start * 3 * c..],
                );
            }
            softmax_backward(dp, pb, t, Mask::Causal(t));
            for (rows, end) in blocks(t) {
                // dQ[rows] += scale dS[rows, 0..end] K[0..end]
                let spec = GemmSpec::nn(rows.len(), end, hs)
                    .alpha(scale)
                    .lead(t, 3 * c, 3 * c)
                    .accumulate();
                matmul(
                    &spec,
                    &dp[rows.start * t..],
                    &qkv[q + c..],
                    &mut dqkv[q + rows.start * 3 * c..],
                );
            }
            for (cols, _) in blocks(t) {
                // dK[cols] += scale dS[cols.start.., cols]^T Q[cols.start..]
                let k = t - cols.start;
                let spec = GemmSpec::tn(cols.len(), k, hs)
                    .alpha(scale)
                    .lead(t, 3 * c, 3 * c)
                    .accumulate();
                let ds = &dp[cols.start * t + cols.start..];
                let qs = &qkv[q + cols.start * 3 * c..];
                matmul(&spec, ds, qs, &mut dqkv[q + c + cols.start * 3 * c..]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, random_vec};

    /// Attention written out the slow way, one score at a time.
    fn reference(qkv: &[f32], s: AttentionShape) -> Vec<f32> {
        let (t, c, hs) = (s.t, s.c, s.head_size());
        let mut out = vec![0.0; s.out_len()];
        for b in 0..s.b {
            for h in 0..s.nh {
                for i in 0..t {
                    let row = |j: usize, part: usize| {
                        let base = (b * t + j) * 3 * c + part * c + h * hs;
                        &qkv[base..base + hs]
                    };
                    let scores: Vec<f64> = (0..=i)
                        .map(|j| {
                            let d: f64 = row(i, 0)
                                .iter()
                                .zip(row(j, 1))
                                .map(|(a, b)| (a * b) as f64)
                                .sum();
                            d / (hs as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                    let w: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
                    let z: f64 = w.iter().sum();
                    for d in 0..hs {
                        let v: f64 = (0..=i).map(|j| w[j] / z * row(j, 2)[d] as f64).sum();
                        out[(b * t + i) * c + h * hs + d] = v as f32;
                    }
                }
            }
        }
        out
    }

    /// Head sizes 4, 32, 8 and 16, with T below, at and above a causal block ([`BLOCK`]) and
    /// above two, not multiples of 8.
    fn shapes() -> Vec<AttentionShape> {
        let mut v = Vec::new();
        for (c, nh) in [(12, 3), (64, 2), (32, 4), (48, 3)] {
            for t in [5, 33, 70] {
                v.push(AttentionShape { b: 2, t, c, nh });
            }
        }
        v
    }

    #[test]
    fn matches_reference() {
        for s in shapes() {
            let qkv = random_vec(s.qkv_len(), 9);
            let mut out = vec![0.0; s.out_len()];
            let mut probs = vec![f32::NAN; s.probs_len()];
            attention_forward(&mut out, &mut probs, &qkv, s);
            assert_close(&out, &reference(&qkv, s), 1e-5, &format!("forward {s:?}"));
        }
    }
}
