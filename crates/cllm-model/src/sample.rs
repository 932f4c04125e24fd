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
    /// The candidates as [`rank_key`]s, most likely first (the id is the low half).
    ranked: Vec<u64>,
    probs: Vec<f32>,
    seen: Vec<bool>,
}

/// A key whose ascending order is the candidates' rank: logit descending in `f32::total_cmp`'s
/// order, then id ascending. Integers sort several times faster than an indirect comparison
/// of the logits, and a top-k selection needs no more than the `k` kept ones sorted.
fn rank_key(logit: f32, id: u32) -> u64 {
    // `total_cmp`'s transform: the bits as a signed integer, with the magnitude bits of
    // negative numbers flipped, compare as the floats do ...
    let bits = logit.to_bits() as i32;
    let signed = bits ^ ((((bits >> 31) as u32) >> 1) as i32);
    // ... and, sign bit flipped, as unsigned integers; inverted for the descending order.
    let ascending = (signed as u32) ^ 0x8000_0000;
    (u64::from(!ascending) << 32) | u64::from(id)
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
        self.rank(logits, cfg.top_k.filter(|&k| k > 0).map_or(v, |k| k.min(v)));
        let id = |key: u64| key as u32;
        let max = logits[id(self.ranked[0]) as usize];
        self.probs.clear();
        self.probs.extend(
            self.ranked
                .iter()
                .map(|&k| ((logits[id(k) as usize] - max) / cfg.temperature).exp()),
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
            self.ranked.truncate(keep);
            let total: f32 = self.probs.iter().sum();
            self.probs.iter_mut().for_each(|p| *p /= total);
        }
        let mut r: f32 = rng.random();
        for (&k, &p) in self.ranked.iter().zip(&self.probs) {
            if r < p {
                return id(k);
            }
            r -= p;
        }
        id(*self.ranked.last().expect("at least one candidate"))
    }

    /// The `keep` (`1..=logits.len()`) most likely candidates into `self.ranked`, most likely
    /// first, ties by id (for determinism): with top-k the `keep` are selected first and only
    /// they are sorted.
    fn rank(&mut self, logits: &[f32], keep: usize) {
        self.ranked.clear();
        self.ranked.extend(
            logits
                .iter()
                .enumerate()
                .map(|(i, &l)| rank_key(l, i as u32)),
        );
        if keep < self.ranked.len() {
            self.ranked.select_nth_unstable(keep - 1);
            self.ranked.truncate(keep);
        }
        self.ranked.sort_unstable();
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

    #[test]
    fn rank_keys_order_as_total_cmp_then_id() {
        let values = [
            f32::NEG_INFINITY,
            -3.5,
            -0.0,
            0.0,
            1e-40,
            2.0,
            2.0,
            f32::INFINITY,
            f32::NAN,
            -f32::NAN,
        ];
        for (i, &a) in values.iter().enumerate() {
            for (j, &b) in values.iter().enumerate() {
                let (i, j) = (i as u32, j as u32);
                let want = b.total_cmp(&a).then(i.cmp(&j));
                assert_eq!(rank_key(a, i).cmp(&rank_key(b, j)), want, "{a} {b}");
            }
        }
    }

    /// The candidates in the order the sampler first ranked them in, every one sorted by an
    /// indirect comparison, for every top-k; on logits with many ties (2048 ids quantised to 64
    /// values) and the special values.
    #[test]
    fn ranking_matches_the_full_sort_for_every_k() {
        let mut logits: Vec<f32> = (0..2048u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) >> 26) as f32 - 32.0) / 8.0)
            .collect();
        logits[7] = f32::INFINITY;
        logits[9] = f32::NEG_INFINITY;
        logits[11] = -0.0;
        let mut full: Vec<u32> = (0..logits.len() as u32).collect();
        full.sort_by(|&a, &b| {
            logits[b as usize]
                .total_cmp(&logits[a as usize])
                .then(a.cmp(&b))
        });
        let mut s = Sampler::default();
        for keep in [1, 2, 40, 1000, 2047, 2048] {
            s.rank(&logits, keep);
            let ids: Vec<u32> = s.ranked.iter().map(|&k| k as u32).collect();
            assert_eq!(ids, full[..keep], "top {keep}");
        }
    }

    fn s_clone_sample(logits: &[f32], cfg: &SamplingConfig, rng: &mut ChaCha8Rng) -> u32 {
        Sampler::default().sample(&mut logits.to_vec(), &[], cfg, rng)
    }
}
