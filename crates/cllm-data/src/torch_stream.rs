//! [`TorchStream`]: PyTorch's CPU random stream, for drawing window offsets exactly as
//! `torch.randint` does after `torch.manual_seed(seed)`.
//!
//! PyTorch's CPU generator is the 32-bit Mersenne Twister (MT19937) seeded with the low 32
//! bits of the seed. `torch.randint(n, (k,))` for an int64 result draws, per value, one 32-bit
//! output and takes it modulo `n` when `n < 2^28`, and otherwise two outputs joined into 64
//! bits (first output high) modulo `n`. nanoGPT draws its batch offsets this way, so a sampler
//! built on this stream sees the same windows as nanoGPT with the same seed.
//!
//! The stream is addressed by *position* (the number of 32-bit outputs drawn since seeding),
//! so a caller that knows where each batch starts can draw batches in any order and resume at
//! any step; moving forward discards outputs, moving back re-seeds.

use rand_mt::Mt;

use crate::error::{DataError, Result};

/// From this range up, `torch.randint` draws 64 bits per value (measured on PyTorch 2.15:
/// `2^28 - 1` takes one output, `2^28` two).
pub const RANDINT_64BIT_FROM: u64 = 1 << 28;

/// PyTorch's CPU generator, positioned by the number of 32-bit outputs drawn.
#[derive(Clone)]
pub struct TorchStream {
    seed: u64,
    mt: Mt,
    position: u64,
}

impl std::fmt::Debug for TorchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchStream")
            .field("seed", &self.seed)
            .field("position", &self.position)
            .finish()
    }
}

impl TorchStream {
    /// The stream of `torch.manual_seed(seed)`.
    pub fn new(seed: u64) -> Self {
        TorchStream {
            seed,
            mt: Self::seeded(seed),
            position: 0,
        }
    }

    fn seeded(seed: u64) -> Mt {
        // PyTorch's mt19937 keeps only the low 32 bits of the seed.
        Mt::new(seed as u32)
    }

    /// Outputs drawn since seeding.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Moves to `position`: forward by discarding outputs, back by re-seeding first.
    pub fn seek(&mut self, position: u64) {
        if position < self.position {
            self.mt = Self::seeded(self.seed);
            self.position = 0;
        }
        while self.position < position {
            self.next_u32();
        }
    }

    /// The next 32-bit output (PyTorch's `generator->random()`).
    pub fn next_u32(&mut self) -> u32 {
        self.position += 1;
        self.mt.next_u32()
    }

    /// One value of `torch.randint(range, ...)`: uniform-ish in `0..range` (modulo, as PyTorch).
    ///
    /// # Panics
    /// If `range == 0`.
    pub fn randint(&mut self, range: u64) -> u64 {
        assert!(range > 0, "randint over an empty range");
        if range >= RANDINT_64BIT_FROM {
            let hi = u64::from(self.next_u32());
            let lo = u64::from(self.next_u32());
            ((hi << 32) | lo) % range
        } else {
            u64::from(self.next_u32()) % range
        }
    }

    /// Outputs one [`randint`](Self::randint) over `range` consumes.
    pub fn draws_per_randint(range: u64) -> u64 {
        if range >= RANDINT_64BIT_FROM { 2 } else { 1 }
    }

    /// Outputs a batch of `batch_size` window offsets into a shard of `n_tokens` consumes.
    pub fn draws_per_batch(batch_size: usize, n_tokens: u64, seq_len: usize) -> u64 {
        let range = n_tokens.saturating_sub(seq_len as u64).max(1);
        batch_size as u64 * Self::draws_per_randint(range)
    }

    /// Writes into `out` the `batch_size` window offsets that nanoGPT's
    /// `torch.randint(len(data) - block_size, (batch_size,))` gives at stream position
    /// `position`, for a shard of `n_tokens` tokens and windows of `seq_len + 1` tokens.
    ///
    /// # Errors
    /// If the shard is shorter than one window.
    pub fn offsets_at(
        &mut self,
        position: u64,
        batch_size: usize,
        n_tokens: u64,
        seq_len: usize,
        out: &mut Vec<u64>,
    ) -> Result<()> {
        let window = seq_len as u64 + 1;
        if n_tokens < window {
            return Err(DataError::Corpus(format!(
                "{n_tokens} tokens cannot hold one window of {window} (sequence length + 1)"
            )));
        }
        // Offsets 0..=n_tokens - window, i.e. randint(n_tokens - seq_len).
        let range = n_tokens - seq_len as u64;
        self.seek(position);
        out.clear();
        out.extend((0..batch_size).map(|_| self.randint(range)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known answers printed by PyTorch 2.15 (CPU):
    //   torch.manual_seed(1337); torch.randint(1003854 - 64, (12,)).tolist()
    const TORCH_1337_SHAKESPEARE: [u64; 12] = [
        138825, 368537, 972872, 611890, 34195, 709583, 303665, 356460, 483164, 170560, 73992,
        506050,
    ];

    #[test]
    fn randint_matches_pytorch() {
        let mut s = TorchStream::new(1337);
        let got: Vec<u64> = (0..12).map(|_| s.randint(1003854 - 64)).collect();
        assert_eq!(got, TORCH_1337_SHAKESPEARE);
        assert_eq!(s.position(), 12);
        // torch.manual_seed(1337); torch.randint(0, r, (3,)) for r = 2^28 - 1 and 2^28 + ...:
        // below 2^28 one output per value, from 2^28 two.
        let mut s = TorchStream::new(1337);
        let below: Vec<u64> = (0..3).map(|_| s.randint((1 << 28) - 1)).collect();
        assert_eq!(below, [51645595, 259973317, 144671582]);
        let mut s = TorchStream::new(1337);
        let above: Vec<u64> = (0..3).map(|_| s.randint(1 << 28)).collect();
        assert_eq!(above, [259973309, 107750632, 185030105]);
        let mut s = TorchStream::new(1337);
        let big: Vec<u64> = (0..3).map(|_| s.randint(1_000_000_000_039)).collect();
        assert_eq!(big, [144973930219, 714773237754, 682780799481]);
        assert_eq!(s.position(), 6);
    }

    #[test]
    fn the_seed_keeps_its_low_32_bits_as_pytorch() {
        let mut a = TorchStream::new(1337);
        let mut b = TorchStream::new(1337 + (1 << 32));
        assert_eq!(a.next_u32(), b.next_u32());
    }

    #[test]
    fn seeking_back_and_forth_gives_the_same_offsets() {
        let mut s = TorchStream::new(7);
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        s.offsets_at(100, 5, 10_000, 64, &mut a).unwrap();
        s.offsets_at(20, 5, 10_000, 64, &mut b).unwrap();
        s.offsets_at(100, 5, 10_000, 64, &mut c).unwrap();
        assert_eq!(a, c);
        assert_ne!(a, b);
        assert!(a.iter().all(|&o| o + 65 <= 10_000));
        let mut fresh = TorchStream::new(7);
        fresh.seek(20);
        assert_eq!(
            b,
            (0..5)
                .map(|_| fresh.randint(10_000 - 64))
                .collect::<Vec<_>>()
        );
        assert!(s.offsets_at(0, 1, 64, 64, &mut a).is_err());
    }
}
