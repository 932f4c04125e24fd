//! Dropout whose mask is recomputed, never stored.
//!
//! Whether element `i` of sequence `s` is kept is a hash of (the mask's key, `s`, `i`): the
//! backward pass regenerates the forward pass's mask instead of reading it from memory, and a
//! sequence gets the same mask whichever worker computes it and in whatever batch, so a
//! data-parallel run draws the same masks at any thread count. Kept elements are scaled by
//! `1 / (1 - rate)` so the expected value is unchanged (inverted dropout, as PyTorch's).
//!
//! The hash: a per-sequence pair of 32-bit seeds from SplitMix64 of (key, `s`), then two rounds
//! of a 32-bit integer mixer (`lowbias32`, constants from Chris Wellons' hash prospector):
//! `lowbias32(lowbias32(i ^ seed0) + seed1)` for element `i`. An element is dropped when its
//! hash is below `rate * 2^32`. 32-bit multiplies, so the loops vectorise (eight lanes with
//! AVX2: ~0.45 ns per element on one Zen 3 core, `cargo run --release -p cllm-tensor --example
//! dropout_speed`).
//!
//! Layout: a batch is `[B * per_seq]` with sequence `b`'s `per_seq` elements contiguous, as
//! `[B*T, C]` activations are (`per_seq = T * C`) and `[B, NH, T, T]` attention probabilities
//! (`per_seq = NH * T * T`). Element indices are 32-bit and wrap: a sequence of more than 2^32
//! elements would reuse masks, never fail.

use multiversion::multiversion;

/// A dropout of one rate under one key: which elements of which sequences are dropped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Elements whose hash is below this are dropped: `rate * 2^32`, rounded.
    threshold: u32,
    /// `1 / (1 - rate)`.
    scale: f32,
    key: u64,
}

impl Dropout {
    /// Drops each element with probability `rate` (to `2^-32`), under `key`.
    ///
    /// # Panics
    /// Unless `0 <= rate < 1`.
    pub fn new(rate: f32, key: u64) -> Dropout {
        assert!(
            (0.0..1.0).contains(&rate),
            "dropout: rate {rate} is not in [0, 1)"
        );
        let threshold = (rate as f64 * 4_294_967_296.0).round().min(u32::MAX as f64) as u32;
        Dropout {
            threshold,
            scale: 1.0 / (1.0 - rate),
            key,
        }
    }

    /// A key made of several numbers (a seed, a step, a site...): SplitMix64 of the first,
    /// then of each running value xor the next.
    pub fn key_of(parts: &[u64]) -> u64 {
        match parts.split_first() {
            None => 0,
            Some((&first, rest)) => rest
                .iter()
                .fold(splitmix64(first), |h, &p| splitmix64(h ^ p)),
        }
    }

    /// The factor kept elements are multiplied by, `1 / (1 - rate)`.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// The mask of sequence `s`.
    pub fn sequence(&self, s: u64) -> SequenceMask {
        let h = splitmix64(self.key ^ splitmix64(s.wrapping_add(0x632B_E59B_D9B4_E019)));
        SequenceMask {
            seeds: [h as u32, (h >> 32) as u32],
            threshold: self.threshold,
            scale: self.scale,
        }
    }

    /// `y = x * mask` over a batch of sequences of `per_seq` elements each, the first of which
    /// is sequence `first`.
    ///
    /// # Panics
    /// If the lengths differ or are not whole sequences.
    pub fn forward(&self, first: u64, per_seq: usize, x: &[f32], y: &mut [f32]) {
        check(per_seq, x.len(), y.len());
        for (s, (x, y)) in x.chunks(per_seq).zip(y.chunks_mut(per_seq)).enumerate() {
            self.sequence(first + s as u64).multiply(0, x, y);
        }
    }

    /// `dx (+)= dy * mask` (the gradient of [`Dropout::forward`]), added to `dx` if
    /// `accumulate`, else written over it.
    ///
    /// # Panics
    /// As [`Dropout::forward`].
    pub fn backward(
        &self,
        first: u64,
        per_seq: usize,
        dy: &[f32],
        dx: &mut [f32],
        accumulate: bool,
    ) {
        check(per_seq, dy.len(), dx.len());
        for (s, (dy, dx)) in dy.chunks(per_seq).zip(dx.chunks_mut(per_seq)).enumerate() {
            let mask = self.sequence(first + s as u64);
            if accumulate {
                mask.multiply_add(0, dy, dx);
            } else {
                mask.multiply(0, dy, dx);
            }
        }
    }
}

/// A [`Dropout`] on a batch whose first sequence is sequence `first` (of the global batch, so
/// that a sequence's mask does not depend on how the batch is split).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchDropout {
    /// The dropout.
    pub dropout: Dropout,
    /// The index of the batch's first sequence.
    pub first: u64,
}

impl BatchDropout {
    /// The mask of the batch's sequence `b`.
    pub fn sequence(&self, b: usize) -> SequenceMask {
        self.dropout.sequence(self.first + b as u64)
    }

    /// [`Dropout::forward`] from sequence `first`.
    pub fn forward(&self, per_seq: usize, x: &[f32], y: &mut [f32]) {
        self.dropout.forward(self.first, per_seq, x, y)
    }

    /// [`Dropout::backward`] from sequence `first`.
    pub fn backward(&self, per_seq: usize, dy: &[f32], dx: &mut [f32], accumulate: bool) {
        self.dropout
            .backward(self.first, per_seq, dy, dx, accumulate)
    }
}

fn check(per_seq: usize, a: usize, b: usize) {
    assert_eq!(a, b, "dropout: lengths {a} and {b} differ");
    assert!(
        per_seq > 0 && a.is_multiple_of(per_seq),
        "dropout: {a} elements are not whole sequences of {per_seq}"
    );
}

/// One sequence's mask: element `i` is kept (times the scale) or dropped (zero).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SequenceMask {
    seeds: [u32; 2],
    threshold: u32,
    scale: f32,
}

impl SequenceMask {
    /// Whether element `i` is kept.
    pub fn keeps(&self, i: u32) -> bool {
        self.bits(i) >= self.threshold
    }

    /// What element `i` is multiplied by: the scale if kept, else 0.
    #[inline(always)]
    pub fn factor(&self, i: u32) -> f32 {
        if self.bits(i) >= self.threshold {
            self.scale
        } else {
            0.0
        }
    }

    #[inline(always)]
    fn bits(&self, i: u32) -> u32 {
        lowbias32(lowbias32(i ^ self.seeds[0]).wrapping_add(self.seeds[1]))
    }

    /// `y[j] = x[j] * factor(first + j)`.
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn multiply(&self, first: u32, x: &[f32], y: &mut [f32]) {
        assert_eq!(x.len(), y.len(), "dropout: lengths differ");
        multiply(self, first, x, y);
    }

    /// `y[j] += x[j] * factor(first + j)`.
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn multiply_add(&self, first: u32, x: &[f32], y: &mut [f32]) {
        assert_eq!(x.len(), y.len(), "dropout: lengths differ");
        multiply_add(self, first, x, y);
    }

    /// `y[j] = x[j] * factor(first + j)` and `z[j] *= factor(first + j)`, one hash per `j`.
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn multiply_both(&self, first: u32, x: &[f32], y: &mut [f32], z: &mut [f32]) {
        assert!(
            x.len() == y.len() && y.len() == z.len(),
            "dropout: lengths differ"
        );
        multiply_both(self, first, x, y, z);
    }
}

#[multiversion(targets("x86_64+avx2+fma"))]
fn multiply_both(m: &SequenceMask, first: u32, x: &[f32], y: &mut [f32], z: &mut [f32]) {
    for (j, ((y, z), &x)) in y.iter_mut().zip(z.iter_mut()).zip(x).enumerate() {
        let f = m.factor(first.wrapping_add(j as u32));
        *y = x * f;
        *z *= f;
    }
}

#[multiversion(targets("x86_64+avx2+fma"))]
fn multiply(m: &SequenceMask, first: u32, x: &[f32], y: &mut [f32]) {
    let (mut xs, mut ys) = (x.chunks_exact(16), y.chunks_exact_mut(16));
    let mut at = first;
    for (x, y) in (&mut xs).zip(&mut ys) {
        for l in 0..16 {
            y[l] = x[l] * m.factor(at.wrapping_add(l as u32));
        }
        at = at.wrapping_add(16);
    }
    for (j, (y, &x)) in ys
        .into_remainder()
        .iter_mut()
        .zip(xs.remainder())
        .enumerate()
    {
        *y = x * m.factor(at.wrapping_add(j as u32));
    }
}

#[multiversion(targets("x86_64+avx2+fma"))]
fn multiply_add(m: &SequenceMask, first: u32, x: &[f32], y: &mut [f32]) {
    for (j, (y, &x)) in y.iter_mut().zip(x).enumerate() {
        *y += x * m.factor(first.wrapping_add(j as u32));
    }
}

/// A 32-bit integer mixer (`lowbias32`: xor-shift 16, multiply, xor-shift 15, multiply,
/// xor-shift 15).
#[inline(always)]
fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x21F0_AAAD);
    x ^= x >> 15;
    x = x.wrapping_mul(0x735A_2D97);
    x ^ (x >> 15)
}

/// SplitMix64's output function of `z + golden ratio`.
fn splitmix64(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kept fraction within 5 standard deviations of `1 - rate` over a million elements, for
    /// several rates, keys and sequences.
    #[test]
    fn keeps_the_expected_fraction() {
        let n = 1 << 20;
        for rate in [0.0, 0.1, 0.2, 0.5, 0.9] {
            for (key, s) in [(0, 0), (1, 7), (u64::MAX, 123_456_789)] {
                let m = Dropout::new(rate, key).sequence(s);
                let kept = (0..n).filter(|&i| m.keeps(i)).count() as f64 / n as f64;
                let p = 1.0 - rate as f64;
                let sd = (p * (1.0 - p) / n as f64).sqrt();
                assert!(
                    (kept - p).abs() <= 5.0 * sd + 1e-9,
                    "rate {rate} key {key} seq {s}: kept {kept}, expected {p}"
                );
            }
        }
    }

    /// Masks of different sequences, keys and neighbouring elements are independent: the
    /// fraction of elements where two masks agree is `p^2 + (1-p)^2`, and an element's mask
    /// does not predict its neighbour's.
    #[test]
    fn masks_are_independent() {
        let n = 1u32 << 18;
        let rate = 0.3f64;
        let agree_expected = rate * rate + (1.0 - rate) * (1.0 - rate);
        let sd = (agree_expected * (1.0 - agree_expected) / n as f64).sqrt();
        let d = Dropout::new(rate as f32, 42);
        let pairs = [
            (d.sequence(0), d.sequence(1)),
            (d.sequence(5), Dropout::new(rate as f32, 43).sequence(5)),
        ];
        for (a, b) in pairs {
            let agree = (0..n).filter(|&i| a.keeps(i) == b.keeps(i)).count() as f64 / n as f64;
            assert!((agree - agree_expected).abs() <= 5.0 * sd, "agree {agree}");
        }
        let a = d.sequence(9);
        let agree = (0..n).filter(|&i| a.keeps(i) == a.keeps(i + 1)).count() as f64 / n as f64;
        assert!(
            (agree - agree_expected).abs() <= 5.0 * sd,
            "neighbours agree {agree}"
        );
    }

    /// Forward multiplies by 0 or the scale, as `keeps` says; backward writes or adds the same
    /// factors; a batch's sequences are masked as sequences `first..` alone would be.
    #[test]
    fn forward_and_backward_apply_one_mask() {
        let per_seq = 37;
        let d = Dropout::new(0.25, 9);
        let x: Vec<f32> = (0..3 * per_seq).map(|i| 1.0 + i as f32).collect();
        let mut y = vec![f32::NAN; x.len()];
        d.forward(10, per_seq, &x, &mut y);
        for (i, (&x, &y)) in x.iter().zip(&y).enumerate() {
            let m = d.sequence(10 + (i / per_seq) as u64);
            let want = if m.keeps((i % per_seq) as u32) {
                x * d.scale()
            } else {
                0.0
            };
            assert_eq!(y, want, "element {i}");
        }
        let mut alone = vec![0.0; per_seq];
        d.forward(12, per_seq, &x[2 * per_seq..], &mut alone);
        assert_eq!(alone, y[2 * per_seq..]);
        let mut dx = vec![f32::NAN; x.len()];
        d.backward(10, per_seq, &x, &mut dx, false);
        assert_eq!(dx, y);
        let mut acc = vec![1.0; x.len()];
        d.backward(10, per_seq, &x, &mut acc, true);
        for (a, y) in acc.iter().zip(&y) {
            assert_eq!(*a, 1.0 + y);
        }
        let kept = y.iter().filter(|&&v| v != 0.0).count();
        assert!(
            kept > 0 && kept < y.len(),
            "a quarter of 111 dropped: {kept} kept"
        );
    }

    #[test]
    fn rate_zero_keeps_everything_unscaled() {
        let d = Dropout::new(0.0, 3);
        let x = [1.5f32, -2.0, 0.25];
        let mut y = [0.0; 3];
        d.forward(0, 3, &x, &mut y);
        assert_eq!(x, y);
    }

    #[test]
    #[should_panic(expected = "not in [0, 1)")]
    fn rate_one_is_refused() {
        Dropout::new(1.0, 0);
    }
}
