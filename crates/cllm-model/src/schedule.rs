//! The learning-rate schedule: linear warm-up, then cosine decay to `min_lr` (nanoGPT's
//! `get_lr`, so runs compare step for step).

use crate::TrainHyper;

/// Learning rate for the update made at 0-based iteration `it`.
pub fn learning_rate(h: &TrainHyper, it: u64) -> f32 {
    if it < h.warmup_steps {
        return h.learning_rate * (it + 1) as f32 / (h.warmup_steps + 1) as f32;
    }
    if it > h.lr_decay_steps || h.lr_decay_steps <= h.warmup_steps {
        return h.min_lr;
    }
    let ratio = (it - h.warmup_steps) as f64 / (h.lr_decay_steps - h.warmup_steps) as f64;
    let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
    (h.min_lr as f64 + coeff * (h.learning_rate - h.min_lr) as f64) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset;

    #[test]
    fn warmup_peak_and_floor() {
        let h = preset("nanogpt-cpu").unwrap().train;
        assert!((learning_rate(&h, 0) - 1e-3 / 101.0).abs() < 1e-9);
        assert!((learning_rate(&h, 99) - 1e-3 * 100.0 / 101.0).abs() < 1e-9);
        assert!((learning_rate(&h, 100) - 1e-3).abs() < 1e-9);
        assert!((learning_rate(&h, 1050) - 5.5e-4).abs() < 1e-6);
        assert!((learning_rate(&h, 2000) - 1e-4).abs() < 1e-9);
        assert_eq!(learning_rate(&h, 5000), 1e-4);
    }
}
