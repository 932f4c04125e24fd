//! AdamW with decoupled weight decay on matrices only, applied to any sub-range of the flat
//! buffers so the optimiser can be sharded by segment; and the global gradient norm for clipping.
//!
//! Matches `torch.optim.AdamW`: `w *= 1 - lr*wd` (decayed parameters), `m = b1 m + (1-b1) g`,
//! `v = b2 v + (1-b2) g^2`, `w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)`.

use std::ops::Range;

use multiversion::multiversion;

use crate::{GptParams, TrainHyper};

/// AdamW settings plus which ranges of the flat buffer are weight-decayed.
#[derive(Clone, Debug)]
pub struct AdamW {
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    /// Flat ranges of the decayed parameters, sorted.
    decayed: Vec<Range<usize>>,
}

/// Per-step scalars of an update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepScalars {
    /// 1-based optimiser step (for bias correction).
    pub t: u64,
    /// Learning rate.
    pub lr: f32,
    /// Multiplier applied to the gradients first (the clipping factor; 1 = none).
    pub grad_scale: f32,
}

impl AdamW {
    /// AdamW for `params` with the recipe's betas, epsilon and weight decay.
    pub fn new(params: &GptParams, h: &TrainHyper) -> Self {
        let decayed = params
            .layout
            .ids()
            .filter(|&id| params.decays(id))
            .map(|id| params.layout.entry(id).range())
            .collect();
        AdamW {
            beta1: h.beta1,
            beta2: h.beta2,
            eps: h.eps,
            weight_decay: h.weight_decay,
            decayed,
        }
    }

    /// Updates `w`, `m`, `v` (each the `range` slice of its flat buffer) from the gradient
    /// slice `g` of the same range.
    ///
    /// # Panics
    /// If the slices' lengths differ from `range`'s.
    pub fn update(
        &self,
        range: Range<usize>,
        s: StepScalars,
        w: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
    ) {
        let n = range.len();
        assert!(
            w.len() == n && g.len() == n && m.len() == n && v.len() == n,
            "AdamW: slice lengths differ from the range"
        );
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - (b1 as f64).powi(s.t as i32);
        let bc2 = 1.0 - (b2 as f64).powi(s.t as i32);
        let step_size = (s.lr as f64 / bc1) as f32;
        let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
        let decay = 1.0 - s.lr * self.weight_decay;
        let undecayed = RunCoefficients {
            b1,
            b2,
            grad_scale: s.grad_scale,
            step_size,
            inv_sqrt_bc2,
            eps: self.eps,
            keep: 1.0,
        };
        // Split the range into runs that are entirely decayed or entirely not.
        let mut at = range.start;
        while at < range.end {
            let (end, decayed) = self.run_at(at, range.end);
            let local = at - range.start..end - range.start;
            let c = if decayed {
                RunCoefficients {
                    keep: decay,
                    ..undecayed
                }
            } else {
                undecayed
            };
            update_run(
                &mut w[local.clone()],
                &g[local.clone()],
                &mut m[local.clone()],
                &mut v[local],
                c,
            );
            at = end;
        }
    }

    /// The end (at most `limit`) of the run starting at `at` in which decay does not change,
    /// and whether that run is decayed.
    fn run_at(&self, at: usize, limit: usize) -> (usize, bool) {
        // First decayed range that ends after `at`.
        let i = self.decayed.partition_point(|r| r.end <= at);
        match self.decayed.get(i) {
            Some(r) if r.start <= at => (r.end.min(limit), true),
            Some(r) => (r.start.min(limit), false),
            None => (limit, false),
        }
    }
}

/// What one run of [`update_run`] needs: the step's AdamW coefficients, and `keep` (`1 - lr *
/// weight_decay` on decayed parameters, 1 elsewhere).
#[derive(Clone, Copy, Debug)]
struct RunCoefficients {
    b1: f32,
    b2: f32,
    grad_scale: f32,
    step_size: f32,
    inv_sqrt_bc2: f32,
    eps: f32,
    keep: f32,
}

/// The AdamW update of one run of parameters (equal slices), element by element; compiled for
/// AVX2 too and chosen at run time (see `cllm_tensor::kernels` on multiversioning).
#[multiversion(targets("x86_64+avx2+fma"))]
fn update_run(w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: RunCoefficients) {
    let n = w.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    for i in 0..n {
        let grad = g[i] * c.grad_scale;
        m[i] = c.b1 * m[i] + (1.0 - c.b1) * grad;
        v[i] = c.b2 * v[i] + (1.0 - c.b2) * grad * grad;
        let denom = v[i].sqrt() * c.inv_sqrt_bc2 + c.eps;
        w[i] = w[i] * c.keep - c.step_size * m[i] / denom;
    }
}

/// Sum of squares of a gradient slice (partial norms combine by adding); f32 lanes within
/// blocks, f64 across blocks.
pub fn sum_of_squares(g: &[f32]) -> f64 {
    cllm_tensor::kernels::math::sum_of_squares(g)
}

/// The factor gradients are multiplied by to clip the global norm `norm` to `max_norm`
/// (as `torch.nn.utils.clip_grad_norm_`: `max_norm / (norm + 1e-6)`, at most 1; 0 disables).
pub fn clip_scale(norm: f64, max_norm: f32) -> f32 {
    if max_norm <= 0.0 {
        return 1.0;
    }
    ((max_norm as f64 / (norm + 1e-6)).min(1.0)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GptConfig, preset};

    #[test]
    fn matches_a_scalar_reference_and_decays_matrices_only() {
        let cfg = GptConfig {
            vocab_size: 5,
            seq_len: 4,
            embed_dim: 8,
            num_layers: 1,
            num_heads: 2,
            bias: true,
        };
        let params = GptParams::new(&cfg);
        let h = preset("nanogpt-cpu").unwrap().train;
        let opt = AdamW::new(&params, &h);
        let n = params.layout.len();
        let mut w: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
        let g: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.01 - 0.02).collect();
        let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
        let w0 = w.clone();
        let s = StepScalars {
            t: 1,
            lr: 1e-2,
            grad_scale: 0.5,
        };
        // Update in two uneven pieces: sharding must not change the result.
        let cut = 37;
        let (wa, wb) = w.split_at_mut(cut);
        let (ma, mb) = m.split_at_mut(cut);
        let (va, vb) = v.split_at_mut(cut);
        opt.update(0..cut, s, wa, &g[..cut], ma, va);
        opt.update(cut..n, s, wb, &g[cut..], mb, vb);
        for id in params.layout.ids() {
            let decayed = params.decays(id);
            for i in params.layout.entry(id).range() {
                let grad = g[i] as f64 * 0.5;
                let (m1, v1) = (0.1 * grad, 0.01 * grad * grad);
                let (mh, vh) = (m1 / 0.1, v1 / 0.01);
                let keep = if decayed { 1.0 - 1e-2 * 0.1 } else { 1.0 };
                let want = w0[i] as f64 * keep - 1e-2 * mh / (vh.sqrt() + 1e-8);
                assert!(
                    (w[i] as f64 - want).abs() < 1e-6,
                    "{} [{i}]: {} vs {want}",
                    params.layout.entry(id).name,
                    w[i]
                );
            }
        }
    }

    #[test]
    fn clipping() {
        assert_eq!(clip_scale(0.5, 1.0), 1.0);
        assert!((clip_scale(4.0, 1.0) - 0.25).abs() < 1e-6);
        assert_eq!(clip_scale(100.0, 0.0), 1.0);
        assert_eq!(sum_of_squares(&[3.0, 4.0]), 25.0);
    }
}
