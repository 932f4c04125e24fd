//! Softmax cross-entropy over logits, fused (the probabilities are kept for the backward pass).
//!
//! Shapes: `logits[N, V]`, `targets[N]` (ids below `V`), `probs[N, V]`, `losses[N]`.

use multiversion::multiversion;

use super::softmax::softmax_row;

/// Writes `probs = softmax(logits)` and `losses[i] = -log probs[i, targets[i]]`; returns the mean
/// loss. The loss is computed as `logsumexp(logits) - logit[target]`, which stays accurate when
/// the target's probability underflows.
///
/// # Panics
/// If a target id is not below `V` or the slices disagree on `N` or `V`.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn cross_entropy_forward(
    probs: &mut [f32],
    losses: &mut [f32],
    logits: &[f32],
    targets: &[u32],
) -> f32 {
    let n = targets.len();
    let v = logits.len() / n.max(1);
    assert!(
        logits.len() == n * v && probs.len() == n * v,
        "cross-entropy: not [N, V]"
    );
    assert_eq!(losses.len(), n, "cross-entropy: losses is not [N]");
    let mut total = 0.0f64;
    for (i, (&target, prow)) in targets.iter().zip(probs.chunks_exact_mut(v)).enumerate() {
        let target = target as usize;
        assert!(
            target < v,
            "cross-entropy: target {target} is outside the vocabulary of {v}"
        );
        let lrow = &logits[i * v..(i + 1) * v];
        prow.copy_from_slice(lrow);
        let loss = softmax_row(prow) - lrow[target];
        losses[i] = loss;
        total += loss as f64;
    }
    (total / n.max(1) as f64) as f32
}

/// `dlogits += (probs - onehot(targets)) * dloss / N`: the gradient of the *mean* loss scaled
/// by `dloss`. Shapes: `dlogits[N, V]`, `probs[N, V]`, `targets[N]`.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn cross_entropy_backward(dlogits: &mut [f32], probs: &[f32], targets: &[u32], dloss: f32) {
    let n = targets.len();
    let v = probs.len() / n.max(1);
    let scale = dloss / n as f32;
    for (i, &target) in targets.iter().enumerate() {
        let drow = &mut dlogits[i * v..(i + 1) * v];
        let prow = &probs[i * v..(i + 1) * v];
        for (d, &p) in drow.iter_mut().zip(prow) {
            *d += p * scale;
        }
        drow[target as usize] -= scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_logits_give_log_v() {
        let v = 65;
        let logits = vec![0.25; 2 * v];
        let (mut probs, mut losses) = (vec![0.0; 2 * v], vec![0.0; 2]);
        let loss = cross_entropy_forward(&mut probs, &mut losses, &logits, &[3, 64]);
        assert!((loss - (v as f32).ln()).abs() < 1e-5, "loss {loss}");
        let mut d = vec![0.0; 2 * v];
        cross_entropy_backward(&mut d, &probs, &[3, 64], 1.0);
        assert!((d[3] - (1.0 / v as f32 - 1.0) / 2.0).abs() < 1e-6);
        assert!(d.iter().sum::<f32>().abs() < 1e-5);
    }

    #[test]
    fn confident_wrong_answer_is_finite() {
        let logits = [100.0, -100.0];
        let (mut probs, mut losses) = ([0.0; 2], [0.0; 1]);
        let loss = cross_entropy_forward(&mut probs, &mut losses, &logits, &[1]);
        assert!((loss - 200.0).abs() < 1e-3, "loss {loss}");
    }
}
