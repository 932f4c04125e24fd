//! Fused causal multi-head self-attention, forward and backward.
//!
//! Shapes (B batch, T time, C channels, NH heads, HS = C / NH head size):
//! `qkv[B, T, 3C]` holds the query, key and value projections side by side in each row (heads
//! are consecutive `HS`-wide column blocks inside each third), `out[B, T, C]`, and the saved
//! attention probabilities `probs[B, NH, T, T]`. Each (batch, head) pair is computed on its
//! own, reading the head's column blocks in place.
//!
//! Three ways to compute the per-head products ([`Products`]):
//! - Register-tiled f32 loops (`attention/direct.rs`, the default): no per-call dispatch or
//!   packing, which at these sizes cost more than the arithmetic. Row blocks stop at the
//!   diagonal.
//! - The same on bf16 pairs (`attention/direct_bf16.rs`) at bf16 matmul precision, with
//!   AVX-512 BF16: each head's operands packed once, the bf16 GEMM backend's arithmetic (the
//!   same bits as the GEMM calls below, at the presets' shapes). The faster way at bf16
//!   precision for heads wider than [`DIRECT_MAX_HEAD_BF16`].
//! - GEMM calls through [`matmul`], at the process's matmul precision, on causal blocks: the
//!   `T x T` matrices are cut into [`BLOCK`]-row blocks, and row block `r` only involves key
//!   columns `0 .. (r + 1) * BLOCK` (at `T = 64` 3/4 of the full score matrix, at `T = 256`
//!   9/16). Kept as the reference the direct ways are tested and measured against.
//!
//! [`AttentionShape::products`] picks one. Entries above the diagonal are never used; the
//! softmax writes exact zeros there. On this repository's machine the two f32 ways give the
//! same bits for the presets' shapes (the `gemm` crate sums each element in `k` order at these
//! sizes, as the direct loops do); that is observed, not promised.

mod direct;
#[cfg(target_arch = "x86_64")]
mod direct_bf16;

use std::ops::Range;

use super::dropout::{BatchDropout, SequenceMask};
use super::matmul::{GemmSpec, Precision, matmul, precision};

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

    /// Length of the scratch buffer both passes take: two `T x T` matrices and one `T x C`.
    pub fn scratch_len(&self) -> usize {
        2 * self.t * self.t + self.t * self.c
    }

    /// How this shape's products are computed at the process's matmul [`precision`]: directly
    /// in f32 ([`Products::Direct`]), except at bf16 precision for heads wider than
    /// [`DIRECT_MAX_HEAD_BF16`], directly on bf16 pairs ([`Products::DirectBf16`]). The choice
    /// does not depend on the batch size, so a batch split across workers computes every
    /// sequence the same way.
    pub fn products(&self) -> Products {
        if self.head_size() <= DIRECT_MAX_HEAD_BF16 || precision() == Precision::F32 {
            Products::Direct
        } else {
            Products::DirectBf16
        }
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

/// Largest head size whose products [`AttentionShape::products`] computes with the f32
/// direct loops at bf16 matmul precision; wider heads take the bf16 direct loops. One
/// layer's forward and backward, one thread, on a Zen 4 core (`cargo bench -p cllm-tensor
/// --bench main -- attention`): the bf16 direct loops beat bf16 GEMM calls at every measured
/// shape (1.16-1.52x), and the f32 direct loops at heads of 32 and 64 (1.10-1.66x) but not at
/// heads of 8 (tiny: 0.58-0.76x); at heads of 16 they lose at T = 64 (0.90-0.93x) and win at
/// T = 256 (1.09-1.14x). In a nanoGPT-cpu step with 8 heads of 16 the two were even.
pub const DIRECT_MAX_HEAD_BF16: usize = 16;

/// How the per-head products of attention are computed. All give the attention to rounding
/// (the bf16 ways round the operands; sums may run in different orders); each is
/// deterministic and independent of the batch size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Products {
    /// GEMM calls through [`matmul`] on the causal blocks, at the process's matmul precision.
    Gemm,
    /// Register-tiled f32 loops (`attention/direct.rs`), whatever the matmul precision.
    Direct,
    /// Register-tiled loops on bf16 pairs (`attention/direct_bf16.rs`): the bf16 GEMM calls'
    /// arithmetic without their per-call costs. Needs AVX-512 BF16 (panics without it).
    DirectBf16,
}

/// `out = softmax(Q K^T / sqrt(HS), causal) V` per head; saves the probabilities in `probs`
/// (before dropout). With `dropout`, the probabilities are dropped out (by the mask of the
/// element `(head * T + i) * T + j` of each sequence) before they multiply `V`.
/// `scratch` must hold [`AttentionShape::scratch_len`] floats; its contents are overwritten.
pub fn attention_forward(
    out: &mut [f32],
    probs: &mut [f32],
    scratch: &mut [f32],
    qkv: &[f32],
    shape: AttentionShape,
    dropout: Option<BatchDropout>,
) {
    attention_forward_with(shape.products(), out, probs, scratch, qkv, shape, dropout)
}

/// [`attention_forward`] with the products computed as `products` says.
pub fn attention_forward_with(
    products: Products,
    out: &mut [f32],
    probs: &mut [f32],
    scratch: &mut [f32],
    qkv: &[f32],
    shape: AttentionShape,
    dropout: Option<BatchDropout>,
) {
    shape.check(qkv.len(), out.len(), probs.len());
    assert!(
        scratch.len() >= shape.scratch_len(),
        "attention: scratch of {} floats, {} needed",
        scratch.len(),
        shape.scratch_len()
    );
    let (t, c, hs) = (shape.t, shape.c, shape.head_size());
    let scale = 1.0 / (hs as f32).sqrt();
    let (kt, dropped) = scratch.split_at_mut(t * c);
    let dropped = &mut dropped[..t * t];
    for b in 0..shape.b {
        // The direct path: every head's keys, transposed, at once.
        if products == Products::Direct {
            let (q, _, _) = shape.offsets(b, 0);
            direct::transpose(&qkv[q + c..], 3 * c, t, c, kt);
        }
        for h in 0..shape.nh {
            let (q, p, o) = shape.offsets(b, h);
            let pb = &mut probs[p..p + t * t];
            let head_dropout = dropout.map(|d| HeadDropout {
                mask: d.sequence(b),
                first: (h * t * t) as u32,
                dropped: &mut *dropped,
            });
            if products == Products::Direct {
                let kt = &kt[h * hs * t..][..hs * t];
                let (o, q) = (&mut out[o..], &qkv[q..]);
                direct::forward_head(o, pb, kt, q, t, c, hs, scale, head_dropout);
                continue;
            }
            if products == Products::DirectBf16 {
                let (o, q) = (&mut out[o..], &qkv[q..]);
                #[cfg(target_arch = "x86_64")]
                {
                    let head = direct_bf16::Head { t, c, hs, scale };
                    direct_bf16::forward_head(o, pb, q, head, head_dropout);
                }
                #[cfg(not(target_arch = "x86_64"))]
                unreachable_bf16(o, q);
                continue;
            }
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
            let pv: &[f32] = match head_dropout {
                None => pb,
                Some(mut d) => {
                    d.drop_causal(pb, t);
                    d.dropped
                }
            };
            for (rows, end) in blocks(t) {
                // O[rows] = P[rows, 0..end] V[0..end] (P after dropout)
                let spec = GemmSpec::nn(rows.len(), end, hs).lead(t, 3 * c, c);
                matmul(
                    &spec,
                    &pv[rows.start * t..],
                    &qkv[q + 2 * c..],
                    &mut out[o + rows.start * c..],
                );
            }
        }
    }
}

/// Accumulates the gradient of [`attention_forward`] into `dqkv` (`dqkv += dL/dqkv`), given
/// the forward pass's `dropout`. `scratch` must hold [`AttentionShape::scratch_len`] floats;
/// its contents are overwritten.
pub fn attention_backward(
    dqkv: &mut [f32],
    scratch: &mut [f32],
    dout: &[f32],
    qkv: &[f32],
    probs: &[f32],
    shape: AttentionShape,
    dropout: Option<BatchDropout>,
) {
    attention_backward_with(
        shape.products(),
        dqkv,
        scratch,
        dout,
        qkv,
        probs,
        shape,
        dropout,
    )
}

/// [`attention_backward`] with the products computed as `products` says (the forward pass
/// must have used the same, or the gradient is of slightly different probabilities).
#[allow(clippy::too_many_arguments)]
pub fn attention_backward_with(
    products: Products,
    dqkv: &mut [f32],
    scratch: &mut [f32],
    dout: &[f32],
    qkv: &[f32],
    probs: &[f32],
    shape: AttentionShape,
    dropout: Option<BatchDropout>,
) {
    shape.check(qkv.len(), dout.len(), probs.len());
    assert_eq!(
        dqkv.len(),
        qkv.len(),
        "attention backward: dqkv is not [B, T, 3C]"
    );
    assert!(
        scratch.len() >= shape.scratch_len(),
        "attention backward: scratch of {} floats, {} needed",
        scratch.len(),
        shape.scratch_len()
    );
    let (t, c, hs) = (shape.t, shape.c, shape.head_size());
    let scale = 1.0 / (hs as f32).sqrt();
    let (dp, rest) = scratch.split_at_mut(t * t);
    let (vt, dropped) = rest.split_at_mut(t * c);
    let dropped = &mut dropped[..t * t];
    for b in 0..shape.b {
        // The direct path: every head's values, transposed, at once.
        if products == Products::Direct {
            let (q, _, _) = shape.offsets(b, 0);
            direct::transpose(&qkv[q + 2 * c..], 3 * c, t, c, vt);
        }
        for h in 0..shape.nh {
            let (q, p, o) = shape.offsets(b, h);
            let pb = &probs[p..p + t * t];
            let head_dropout = dropout.map(|d| HeadDropout {
                mask: d.sequence(b),
                first: (h * t * t) as u32,
                dropped: &mut *dropped,
            });
            if products == Products::Direct {
                let vt = &vt[h * hs * t..][..hs * t];
                let (dq, qv, dov) = (&mut dqkv[q..], &qkv[q..], &dout[o..]);
                direct::backward_head(dq, dp, vt, dov, qv, pb, t, c, hs, scale, head_dropout);
                continue;
            }
            if products == Products::DirectBf16 {
                let (dq, qv, dov) = (&mut dqkv[q..], &qkv[q..], &dout[o..]);
                #[cfg(target_arch = "x86_64")]
                {
                    let head = direct_bf16::Head { t, c, hs, scale };
                    direct_bf16::backward_head(dq, dp, dov, qv, pb, head, head_dropout);
                }
                #[cfg(not(target_arch = "x86_64"))]
                unreachable_bf16(dq, qv);
                continue;
            }
            for (rows, end) in blocks(t) {
                // dP[rows, 0..end] = dO[rows] V[0..end]^T (the dropped probabilities' gradient
                // with dropout)
                let spec = GemmSpec::nt(rows.len(), hs, end).lead(c, 3 * c, t);
                matmul(
                    &spec,
                    &dout[o + rows.start * c..],
                    &qkv[q + 2 * c..],
                    &mut dp[rows.start * t..],
                );
            }
            let mut head_dropout = head_dropout;
            let pv: &[f32] = match &mut head_dropout {
                None => pb,
                Some(d) => {
                    // P' = P * mask, and dP = dP' * mask: the undropped probabilities' gradient
                    d.drop_causal_both(pb, dp, t);
                    &*d.dropped
                }
            };
            for (cols, _) in blocks(t) {
                // dV[cols] += P[cols.start.., cols]^T dO[cols.start..] (P after dropout): only
                // rows at or below the diagonal block have non-zero probabilities for these keys.
                let k = t - cols.start;
                let spec = GemmSpec::tn(cols.len(), k, hs)
                    .lead(t, c, 3 * c)
                    .accumulate();
                let pcol = &pv[cols.start * t + cols.start..];
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

/// [`Products::DirectBf16`] where there is no AVX-512 BF16 to run it.
#[cfg(not(target_arch = "x86_64"))]
fn unreachable_bf16(_: &mut [f32], _: &[f32]) {
    panic!("bf16 attention needs AVX-512 BF16 (x86-64)");
}

/// Dropout on one (batch, head) pair's `T x T` probabilities: the sequence's mask, the index
/// of the pair's first probability within the sequence (`head * T * T`), and scratch for the
/// dropped probabilities.
struct HeadDropout<'a> {
    mask: SequenceMask,
    first: u32,
    dropped: &'a mut [f32],
}

impl HeadDropout<'_> {
    /// `dropped = p * mask` on and below the diagonal, 0 above it (where `p` is 0 too).
    #[inline(always)]
    fn drop_causal(&mut self, p: &[f32], t: usize) {
        for i in 0..t {
            let (row, out) = (&p[i * t..][..t], &mut self.dropped[i * t..][..t]);
            let at = self.first.wrapping_add((i * t) as u32);
            self.mask.multiply(at, &row[..=i], &mut out[..=i]);
            out[i + 1..].fill(0.0);
        }
    }

    /// [`HeadDropout::drop_causal`], and `x *= mask` on and below the diagonal, in one pass.
    #[inline(always)]
    fn drop_causal_both(&mut self, p: &[f32], x: &mut [f32], t: usize) {
        for i in 0..t {
            let (row, out) = (&p[i * t..][..t], &mut self.dropped[i * t..][..t]);
            let at = self.first.wrapping_add((i * t) as u32);
            self.mask
                .multiply_both(at, &row[..=i], &mut out[..=i], &mut x[i * t..][..=i]);
            out[i + 1..].fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::dropout::Dropout;
    use crate::test_util::{assert_close, random_vec};

    /// Attention written out the slow way, one score at a time, with probability `(h, i, j)`
    /// of sequence `b` multiplied by its dropout factor.
    fn reference(qkv: &[f32], s: AttentionShape, dropout: Option<BatchDropout>) -> Vec<f32> {
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
                    let factor = |j: usize| {
                        dropout.map_or(1.0, |d| {
                            d.sequence(b).factor(((h * t + i) * t + j) as u32) as f64
                        })
                    };
                    for d in 0..hs {
                        let v: f64 = (0..=i)
                            .map(|j| w[j] / z * factor(j) * row(j, 2)[d] as f64)
                            .sum();
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

    const BOTH: [Products; 2] = [Products::Gemm, Products::Direct];

    /// No dropout, and a dropout of 0.3 on a batch that starts at sequence 5.
    fn dropouts() -> [Option<BatchDropout>; 2] {
        let dropout = Dropout::new(0.3, 77);
        [None, Some(BatchDropout { dropout, first: 5 })]
    }

    #[test]
    fn matches_reference() {
        for s in shapes() {
            let qkv = random_vec(s.qkv_len(), 9);
            for dropout in dropouts() {
                let want = reference(&qkv, s, dropout);
                for products in BOTH {
                    let mut out = vec![0.0; s.out_len()];
                    let mut probs = vec![f32::NAN; s.probs_len()];
                    let mut scratch = vec![f32::NAN; s.scratch_len()];
                    let (o, p, sc) = (&mut out, &mut probs, &mut scratch);
                    attention_forward_with(products, o, p, sc, &qkv, s, dropout);
                    let what = format!("forward {products:?} {s:?} {dropout:?}");
                    assert_close(&out, &want, 1e-5, &what);
                }
            }
        }
    }

    /// `sum(out * r)` in f64 through the reference forward.
    fn weighted(qkv: &[f32], r: &[f32], s: AttentionShape, d: Option<BatchDropout>) -> f64 {
        let out = reference(qkv, s, d);
        out.iter().zip(r).map(|(&o, &r)| o as f64 * r as f64).sum()
    }

    /// Both backward passes accumulate (the old contents of `dqkv` are kept), agree with each
    /// other, and match central differences of the reference at a spread of entries (queries,
    /// keys and values of every head, first and last positions), with and without dropout.
    #[test]
    fn backward_matches_finite_differences() {
        for (s, dropout) in shapes()
            .into_iter()
            .flat_map(|s| dropouts().map(|d| (s, d)))
        {
            let qkv = random_vec(s.qkv_len(), 3);
            let r = random_vec(s.out_len(), 4);
            let base = random_vec(s.qkv_len(), 5);
            let grads: Vec<Vec<f32>> = BOTH
                .iter()
                .map(|&products| {
                    let mut out = vec![0.0; s.out_len()];
                    let mut probs = vec![f32::NAN; s.probs_len()];
                    let mut scratch = vec![f32::NAN; s.scratch_len()];
                    let (o, p, sc) = (&mut out, &mut probs, &mut scratch);
                    attention_forward_with(products, o, p, sc, &qkv, s, dropout);
                    let mut dqkv = base.clone();
                    let (d, sc) = (&mut dqkv, &mut scratch);
                    attention_backward_with(products, d, sc, &r, &qkv, &probs, s, dropout);
                    dqkv.iter().zip(&base).map(|(g, b)| g - b).collect()
                })
                .collect();
            let what = format!("direct vs gemm {s:?} {dropout:?}");
            assert_close(&grads[1], &grads[0], 1e-4, &what);
            let step = s.qkv_len() / 37 + 1;
            for i in (0..s.qkv_len()).step_by(step).chain([s.qkv_len() - 1]) {
                let h = 1e-3;
                let (mut up, mut down) = (qkv.clone(), qkv.clone());
                up[i] += h;
                down[i] -= h;
                let diff = weighted(&up, &r, s, dropout) - weighted(&down, &r, s, dropout);
                let fd = diff / (2.0 * h as f64);
                for (products, g) in BOTH.iter().zip(&grads) {
                    assert!(
                        (g[i] as f64 - fd).abs() <= 2e-3 * (1.0 + fd.abs()),
                        "{products:?} {s:?} {dropout:?} entry {i}: backward {}, finite differences {fd}",
                        g[i]
                    );
                }
            }
        }
    }

    /// The direct path computes each (batch, head) pair alone: a pair's output and gradient
    /// are the same bits whether it is computed in a batch of one or of three.
    #[test]
    fn direct_path_does_not_depend_on_the_batch() {
        let one = AttentionShape {
            b: 1,
            t: 37,
            c: 24,
            nh: 3,
        };
        let three = AttentionShape { b: 3, ..one };
        let qkv = random_vec(three.qkv_len(), 7);
        let dout = random_vec(three.out_len(), 8);
        let run = |s: AttentionShape, qkv: &[f32], dout: &[f32]| {
            let mut out = vec![0.0; s.out_len()];
            let mut probs = vec![0.0; s.probs_len()];
            let mut scratch = vec![0.0; s.scratch_len()];
            let mut dqkv = vec![0.0; s.qkv_len()];
            let (o, p, sc) = (&mut out, &mut probs, &mut scratch);
            attention_forward_with(Products::Direct, o, p, sc, qkv, s, None);
            let (d, sc) = (&mut dqkv, &mut scratch);
            attention_backward_with(Products::Direct, d, sc, dout, qkv, &probs, s, None);
            (out, dqkv)
        };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let (out3, d3) = run(three, &qkv, &dout);
        // The last sequence of the three, alone.
        let (o1, g1) = (one.out_len(), one.qkv_len());
        let (out1, d1) = run(one, &qkv[2 * g1..], &dout[2 * o1..]);
        assert_eq!(bits(&out1), bits(&out3[2 * o1..]));
        assert_eq!(bits(&d1), bits(&d3[2 * g1..]));
    }
}
