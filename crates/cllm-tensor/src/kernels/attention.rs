//! Fused causal multi-head self-attention, forward and backward.
//!
//! Shapes (B batch, T time, C channels, NH heads, HS = C / NH head size):
//! `qkv[B, T, 3C]` holds the query, key and value projections side by side in each row (heads
//! are consecutive `HS`-wide column blocks inside each third), `out[B, T, C]`, and the saved
//! attention probabilities `probs[B, NH, T, T]`. Each (batch, head) pair is three small GEMMs
//! reading the head's column block in place through leading dimensions, so nothing is copied
//! or permuted.

use super::matmul::{GemmSpec, matmul};
use super::softmax::{Mask, softmax_backward, softmax_forward};

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
    let scores = GemmSpec::nt(t, hs, t).alpha(scale).lead(3 * c, 3 * c, t);
    let mix = GemmSpec::nn(t, t, hs).lead(t, 3 * c, c);
    for b in 0..shape.b {
        for h in 0..shape.nh {
            let (q, p, o) = shape.offsets(b, h);
            let pb = &mut probs[p..p + t * t];
            matmul(&scores, &qkv[q..], &qkv[q + c..], pb);
            softmax_forward(pb, t, Mask::Causal(t));
            matmul(&mix, pb, &qkv[q + 2 * c..], &mut out[o..]);
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
    // dP = dO V^T
    let d_probs = GemmSpec::nt(t, hs, t).lead(c, 3 * c, t);
    // dV += P^T dO
    let d_v = GemmSpec::tn(t, t, hs).lead(t, c, 3 * c).accumulate();
    // dQ += scale dS K
    let d_q = GemmSpec::nn(t, t, hs)
        .alpha(scale)
        .lead(t, 3 * c, 3 * c)
        .accumulate();
    // dK += scale dS^T Q
    let d_k = GemmSpec::tn(t, t, hs)
        .alpha(scale)
        .lead(t, 3 * c, 3 * c)
        .accumulate();
    for b in 0..shape.b {
        for h in 0..shape.nh {
            let (q, p, o) = shape.offsets(b, h);
            let pb = &probs[p..p + t * t];
            matmul(&d_probs, &dout[o..], &qkv[q + 2 * c..], dp);
            matmul(&d_v, pb, &dout[o..], &mut dqkv[q + 2 * c..]);
            softmax_backward(dp, pb, t, Mask::Causal(t));
            matmul(&d_q, dp, &qkv[q + c..], &mut dqkv[q..]);
            matmul(&d_k, dp, &qkv[q..], &mut dqkv[q + c..]);
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

    #[test]
    fn matches_reference() {
        let s = AttentionShape {
            b: 2,
            t: 5,
            c: 12,
            nh: 3,
        };
        let qkv = random_vec(s.qkv_len(), 9);
        let mut out = vec![0.0; s.out_len()];
        let mut probs = vec![f32::NAN; s.probs_len()];
        attention_forward(&mut out, &mut probs, &qkv, s);
        assert_close(&out, &reference(&qkv, s), 1e-5, "attention forward");
    }
}
