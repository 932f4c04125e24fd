//! Choosing the next token from logits: repetition penalty, temperature, top-k, top-p.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// How to sample.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplingConfig {
    /// Softmax temperature; `0` means greedy (always the most likely token).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (`None` or 0: all).
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches `p` (`None`: all).
    pub top_p: Option<f32>,
    /// CTRL-style penalty on tokens already in the context: positive logits are divided by it,
    /// negative ones multiplied (1 = off).
    pub repetition_penalty: f32,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            temperature: 1.0,
            top_k: None,
            top_p: None,
            repetition_penalty: 1.0,
        }
    }
}

impl SamplingConfig {
    /// Checks the ranges; the error names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(format!(
                "--temperature must be a finite number >= 0, got {}",
                self.temperature
            ));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(format!("--top-p must be in (0, 1], got {p}"));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(format!(
                "--repetition-penalty must be positive, got {}",
                self.repetition_penalty
            ));
        }
        Ok(())
    }
}

/// Reusable buffers for [`Sampler::sample`].
#[derive(Debug, Default)]
pub struct Sampler {
    order: Vec<u32>,
    probs: Vec<f32>,
    seen: Vec<bool>,
}

impl Sampler {
    /// Picks the next token. `logits` (one per vocabulary id) are modified in place; `context`
    /// is the text so far (for the repetition penalty).
    pub fn sample(
        &mut self,
        logits: &mut [f32],
        context: &[u32],
        cfg: &SamplingConfig,
        rng: &mut impl Rng,
    ) -> u32 {
        let v = logits.len();
        if cfg.repetition_penalty != 1.0 {
            self.seen.clear();
            self.seen.resize(v, false);
            for &t in context {
                if let Some(s) = self.seen.get_mut(t as usize) {
                    *s = true;
                }
            }
            for (l, &s) in logits.iter_mut().zip(&self.seen) {
                if s {
                    *l = if *l > 0.0 {
                        *l / cfg.repetition_penalty
                    } else {
                        *l * cfg.repetition_penalty
                    };
                }
            }
        }
        let argmax = || {
            logits
                .iter()
                .enumerate()
                .fold(0, |best, (i, &l)| if l > logits[best] { i } else { best })
        };
        if cfg.temperature == 0.0 {
            return argmax() as u32;
        }
        // Candidates sorted by logit, most likely first (ties by id, for determinism).
        self.order.clear();
        self.order.extend(0..v as u32);
        self.order.sort_by(|&a, &b| {
            logits[b as usize]
                .total_cmp(&logits[a as usize])
                .then(a.cmp(&b))
        });
        let keep_k = cfg.top_k.filter(|&k| k > 0).map_or(v, |k| k.min(v));
        self.order.truncate(keep_k);
        let max = logits[self.order[0] as usize];
        self.probs.clear();
        self.probs.extend(
            self.order
                .iter()
                .map(|&i| ((logits[i as usize] - max) / cfg.temperature).exp()),
        );
        let total: f32 = self.probs.iter().sum();
        self.probs.iter_mut().for_each(|p| *p /= total);
        if let Some(top_p) = cfg.top_p {
            let mut cum = 0.0;
            let mut keep = self.probs.len();
            for (i, &p) in self.probs.iter().enumerate() {
                cum += p;
                if cum >= top_p {
                    keep = i + 1;
                    break;
                }
            }
            self.probs.truncate(keep);
            self.order.truncate(keep);
            let total: f32 = self.probs.iter().sum();
            self.probs.iter_mut().for_each(|p| *p /= total);
        }
        let mut r: f32 = rng.random();
        for (&id, &p) in self.order.iter().zip(&self.probs) {
            if r < p {
                return id;
            }
            r -= p;
        }
        *self.order.last().expect("at least one candidate")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn draws(logits: &[f32], cfg: SamplingConfig, n: usize) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut s = Sampler::default();
        let mut counts = vec![0; logits.len()];
        for _ in 0..n {
            let mut l = logits.to_vec();
            counts[s.sample(&mut l, &[], &cfg, &mut rng) as usize] += 1;
        }
        counts
    }

    #[test]
    fn top_k_and_top_p_restrict_the_support() {
        // Probabilities ~ 0.5, 0.25, 0.125, 0.0625, ... for ids 0, 1, 2, ...
        let logits: Vec<f32> = (0..8)
            .map(|i| -(i as f32) * std::f32::consts::LN_2)
            .collect();
        let all = draws(&logits, SamplingConfig::default(), 20_000);
        assert!(all[5] > 0, "without limits the tail is sampled: {all:?}");
        let k2 = draws(
            &logits,
            SamplingConfig {
                top_k: Some(2),
                ..Default::default()
            },
            20_000,
        );
        assert!(
            k2[2..].iter().all(|&c| c == 0) && k2[0] > k2[1] && k2[1] > 0,
            "{k2:?}"
        );
        // 0.5 + 0.25 = 0.75 < 0.8, so the third token is needed and the fourth is not.
        let p = draws(
            &logits,
            SamplingConfig {
                top_p: Some(0.8),
                ..Default::default()
            },
            20_000,
        );
        assert!(p[3..].iter().all(|&c| c == 0) && p[2] > 0, "{p:?}");
        // Empirical frequencies follow the renormalised distribution (0.5/0.75 = 2/3 for id 0).
        let f0 = k2[0] as f64 / 20_000.0;
        assert!((f0 - 2.0 / 3.0).abs() < 0.02, "{f0}");
    }

    #[test]
    fn greedy_penalty_and_determinism() {
        let mut s = Sampler::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let greedy = SamplingConfig {
            temperature: 0.0,
            ..Default::default()
        };
        assert_eq!(s.sample(&mut [0.1, 2.0, 1.9], &[], &greedy, &mut rng), 1);
        let penalised = SamplingConfig {
            repetition_penalty: 2.0,
            ..greedy
        };
        assert_eq!(
            s.sample(&mut [0.1, 2.0, 1.9], &[1], &penalised, &mut rng),
            2
        );
        let cfg = SamplingConfig {
            temperature: 0.8,
            top_k: Some(5),
            top_p: Some(0.9),
            ..Default::default()
        };
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..20)
                .map(|_| s_clone_sample(&logits, &cfg, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert!(
            SamplingConfig {
                top_p: Some(1.5),
                ..cfg
            }
            .validate()
            .is_err()
        );
    }

    fn s_clone_sample(logits: &[f32], cfg: &SamplingConfig, rng: &mut ChaCha8Rng) -> u32 {
        Sampler::default().sample(&mut logits.to_vec(), &[], cfg, rng)
    }
}
