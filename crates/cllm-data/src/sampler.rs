//! Batches of token windows: a seeded sampler, and the split of a global batch over workers.
//!
//! The batch for step `s` depends only on `(seed, s)`: the generator is ChaCha8 seeded with
//! `seed` on stream `s`, so resuming at step `s` needs no sampler state beyond the step number,
//! and any worker count sees the same global batch.

use std::ops::Range;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};
use crate::shard::ShardReader;

/// `(inputs, targets)` for `batch_size` windows of `seq_len` tokens, row-major `[B, T]`;
/// `targets` is `inputs` shifted one token to the left.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Number of sequences B.
    pub batch_size: usize,
    /// Sequence length T.
    pub seq_len: usize,
    /// `[B, T]` input ids.
    pub inputs: Vec<u32>,
    /// `[B, T]` target ids.
    pub targets: Vec<u32>,
    /// Window offsets into the shard, one per sequence.
    pub offsets: Vec<u64>,
    window: Vec<u32>,
}

impl Batch {
    /// Reads the windows at `self.offsets` (one per sequence, `seq_len + 1` tokens each) into
    /// `inputs` and `targets`, reusing the buffers. Use it with offsets from another source,
    /// such as [`TorchStream::offsets_at`](crate::TorchStream::offsets_at).
    ///
    /// # Errors
    /// If a window runs past the end of the shard, or reading fails.
    pub fn read_windows(&mut self, seq_len: usize, reader: &mut ShardReader) -> Result<()> {
        let t = seq_len;
        self.batch_size = self.offsets.len();
        self.seq_len = t;
        self.inputs.resize(self.batch_size * t, 0);
        self.targets.resize(self.batch_size * t, 0);
        self.window.resize(t + 1, 0);
        for (b, &off) in self.offsets.iter().enumerate() {
            reader.read(off, &mut self.window)?;
            self.inputs[b * t..(b + 1) * t].copy_from_slice(&self.window[..t]);
            self.targets[b * t..(b + 1) * t].copy_from_slice(&self.window[1..]);
        }
        Ok(())
    }

    /// Inputs and targets of sequences `rows` (for one worker's share).
    pub fn rows(&self, rows: Range<usize>) -> (&[u32], &[u32]) {
        let r = rows.start * self.seq_len..rows.end * self.seq_len;
        (&self.inputs[r.clone()], &self.targets[r])
    }
}

/// Draws random windows from a shard, deterministically per (seed, step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSampler {
    seed: u64,
    batch_size: usize,
    seq_len: usize,
}

impl BatchSampler {
    /// A sampler of `batch_size` windows of `seq_len` tokens.
    pub fn new(seed: u64, batch_size: usize, seq_len: usize) -> Self {
        BatchSampler {
            seed,
            batch_size,
            seq_len,
        }
    }

    /// Sequences per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Tokens per sequence.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Writes the window offsets of step `step` for a shard of `n_tokens` tokens into `out`.
    ///
    /// # Errors
    /// If the shard is shorter than one window (`seq_len + 1` tokens).
    pub fn offsets(&self, step: u64, n_tokens: u64, out: &mut Vec<u64>) -> Result<()> {
        let window = self.seq_len as u64 + 1;
        if n_tokens < window {
            return Err(DataError::Corpus(format!(
                "{n_tokens} tokens cannot hold one window of {window} (sequence length + 1)"
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(step);
        out.clear();
        out.extend((0..self.batch_size).map(|_| rng.random_range(0..=n_tokens - window)));
        Ok(())
    }

    /// Fills `batch` with the windows of step `step`, reusing its buffers.
    pub fn fill(&self, step: u64, reader: &mut ShardReader, batch: &mut Batch) -> Result<()> {
        let mut offsets = std::mem::take(&mut batch.offsets);
        let drawn = self.offsets(step, reader.len(), &mut offsets);
        batch.offsets = offsets;
        drawn?;
        batch.read_windows(self.seq_len, reader)
    }

    /// The batch of step `step`, freshly allocated.
    pub fn batch(&self, step: u64, reader: &mut ShardReader) -> Result<Batch> {
        let mut b = Batch::default();
        self.fill(step, reader, &mut b)?;
        Ok(b)
    }
}

/// The sequences of a `batch_size` global batch that worker `worker` of `workers` computes:
/// contiguous, as equal as possible (the first `batch_size % workers` workers take one more),
/// disjoint, and together exactly `0..batch_size`. Workers beyond `batch_size` get nothing.
///
/// # Panics
/// If `workers == 0` or `worker >= workers`.
pub fn worker_share(batch_size: usize, workers: usize, worker: usize) -> Range<usize> {
    assert!(worker < workers, "worker {worker} of {workers}");
    let (base, extra) = (batch_size / workers, batch_size % workers);
    let start = worker * base + worker.min(extra);
    let len = base + usize::from(worker < extra);
    start..start + len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::ShardWriter;

    #[test]
    fn shares_partition_the_batch_for_any_worker_count() {
        for batch in [1, 7, 12, 64] {
            for workers in 1..=70 {
                let mut next = 0;
                for w in 0..workers {
                    let r = worker_share(batch, workers, w);
                    assert_eq!(r.start, next);
                    assert!(r.len() <= batch.div_ceil(workers));
                    next = r.end;
                }
                assert_eq!(next, batch);
            }
        }
    }

    #[test]
    fn batches_are_deterministic_shifted_windows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.bin");
        let mut w = ShardWriter::create(&p, 1000).unwrap();
        w.push(&(0..1000).collect::<Vec<u32>>()).unwrap();
        w.finish().unwrap();
        let mut r = ShardReader::open(&p).unwrap();
        let s = BatchSampler::new(7, 4, 8);
        let a = s.batch(3, &mut r).unwrap();
        let b = s.batch(3, &mut r).unwrap();
        let c = s.batch(4, &mut r).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.offsets, c.offsets);
        for row in 0..4 {
            let (x, y) = a.rows(row..row + 1);
            for t in 0..8 {
                assert_eq!(x[t] as u64, a.offsets[row] + t as u64);
                assert_eq!(y[t], x[t] + 1);
            }
        }
        assert_ne!(
            BatchSampler::new(8, 4, 8).batch(3, &mut r).unwrap().offsets,
            a.offsets
        );
        let short = BatchSampler::new(1, 1, 1000);
        assert!(short.batch(0, &mut r).is_err());
    }
}
