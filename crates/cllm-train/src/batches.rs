//! [`Batches`]: where the batch of each training step and the batches of each evaluation come
//! from, under either [`RandomStream`].
//!
//! * `cllm` (the default): ChaCha8 streams. Step `s` draws from stream `s` of the seed, so any
//!   step's batch is computed directly; evaluations use one fixed set of batches from another
//!   seed, so losses at different steps are measured on the same data.
//! * `nanogpt`: PyTorch's CPU generator (MT19937) read in the order nanoGPT's `train.py` reads
//!   it after `torch.manual_seed(seed)`: the model's initialisation, the first batch, then per
//!   iteration the evaluation when one is due (`eval_iters` fresh train batches, then as many
//!   validation batches) followed by the next training batch. With the same seed a run sees
//!   nanoGPT's initial weights and every one of its batches, so the two compare seed by seed.
//!   [`NanoGptPlan`] turns "batch of step s" or "batch i of the evaluation at step s" into a
//!   position in that stream, so resuming needs no generator state.

use cllm_data::{Batch, BatchSampler, ShardReader, Split, TorchStream};
use serde::{Deserialize, Serialize};

/// Seed offset of the `cllm` stream's evaluation batches (they must not coincide with
/// training batches).
const EVAL_SEED_OFFSET: u64 = 0x5eed_e7a1;

/// Which random stream initialises the model and samples the batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RandomStream {
    /// ChaCha8: step s's batch depends only on (seed, s); one fixed set of evaluation batches.
    #[default]
    Cllm,
    /// PyTorch's generator read in nanoGPT's order: its initial weights, its batches, fresh
    /// evaluation batches each time.
    Nanogpt,
}

impl std::fmt::Display for RandomStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RandomStream::Cllm => "cllm",
            RandomStream::Nanogpt => "nanogpt",
        })
    }
}

/// Positions in nanoGPT's stream (32-bit outputs since seeding) of every batch it draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NanoGptPlan {
    /// Outputs drawn by the model's initialisation.
    pub init_draws: u64,
    /// Outputs per training-split batch.
    pub train_draws: u64,
    /// Outputs per validation-split batch.
    pub val_draws: u64,
    /// Steps between evaluations (nanoGPT evaluates at every multiple, 0 included).
    pub eval_interval: u64,
    /// Batches per split per evaluation.
    pub eval_iters: u64,
}

impl NanoGptPlan {
    fn per_eval(&self) -> u64 {
        self.eval_iters * (self.train_draws + self.val_draws)
    }

    /// Evaluations nanoGPT runs at steps `0..step`.
    fn evals_before(&self, step: u64) -> u64 {
        step.div_ceil(self.eval_interval)
    }

    /// Where the batch of training step `step` (0-based: the batch of the first update is
    /// step 0) starts. nanoGPT draws it while computing step `step - 1`, after the evaluation
    /// at step `step - 1` if one was due.
    pub fn train_position(&self, step: u64) -> u64 {
        // Evaluations at the multiples of the interval in 0..=step-1.
        let evals = if step == 0 {
            0
        } else {
            (step - 1) / self.eval_interval + 1
        };
        self.init_draws + step * self.train_draws + evals * self.per_eval()
    }

    /// Where batch `i` of `split` of the evaluation at step `step` (after `step` updates)
    /// starts: after the batch of step `step` and the evaluations before it; train first.
    pub fn eval_position(&self, step: u64, split: Split, i: u64) -> u64 {
        let start = self.init_draws
            + (step + 1) * self.train_draws
            + self.evals_before(step) * self.per_eval();
        match split {
            Split::Train => start + i * self.train_draws,
            Split::Val => start + self.eval_iters * self.train_draws + i * self.val_draws,
        }
    }
}

/// The two streams behind one interface.
#[derive(Debug)]
enum Source {
    Cllm {
        train: BatchSampler,
        eval: BatchSampler,
    },
    NanoGpt {
        /// Boxed: the generator's state is 2.5 KB.
        stream: Box<TorchStream>,
        plan: NanoGptPlan,
    },
}

/// Batch source of a run.
#[derive(Debug)]
pub struct Batches {
    source: Source,
    batch_size: usize,
    seq_len: usize,
}

impl Batches {
    /// The `cllm` stream for `seed`.
    pub fn cllm(seed: u64, batch_size: usize, seq_len: usize) -> Self {
        Batches {
            source: Source::Cllm {
                train: BatchSampler::new(seed, batch_size, seq_len),
                eval: BatchSampler::new(seed.wrapping_add(EVAL_SEED_OFFSET), batch_size, seq_len),
            },
            batch_size,
            seq_len,
        }
    }

    /// The `nanogpt` stream for `seed`, after `init_draws` outputs of initialisation, over
    /// shards of `train_tokens` and `val_tokens` tokens.
    ///
    /// # Errors
    /// If `eval_interval` is 0.
    pub fn nanogpt(
        seed: u64,
        init_draws: u64,
        (batch_size, seq_len): (usize, usize),
        (train_tokens, val_tokens): (u64, u64),
        (eval_interval, eval_iters): (u64, u64),
    ) -> Result<Self, String> {
        if eval_interval == 0 {
            return Err("--eval-interval must be positive".into());
        }
        let plan = NanoGptPlan {
            init_draws,
            train_draws: TorchStream::draws_per_batch(batch_size, train_tokens, seq_len),
            val_draws: TorchStream::draws_per_batch(batch_size, val_tokens, seq_len),
            eval_interval,
            eval_iters,
        };
        Ok(Batches {
            source: Source::NanoGpt {
                stream: Box::new(TorchStream::new(seed)),
                plan,
            },
            batch_size,
            seq_len,
        })
    }

    /// Whether every evaluation uses the same batches (`cllm`) or fresh ones (`nanogpt`).
    pub fn eval_is_fixed(&self) -> bool {
        matches!(self.source, Source::Cllm { .. })
    }

    /// Fills `batch` with the batch of training step `step` (0-based).
    pub fn train(
        &mut self,
        step: u64,
        reader: &mut ShardReader,
        batch: &mut Batch,
    ) -> Result<(), String> {
        let shape = (self.batch_size, self.seq_len);
        match &mut self.source {
            Source::Cllm { train, .. } => {
                train.fill(step, reader, batch).map_err(|e| e.to_string())
            }
            Source::NanoGpt { stream, plan } => {
                fill_at(stream, plan.train_position(step), shape, reader, batch)
            }
        }
    }

    /// Fills `batch` with batch `i` of `split` for the evaluation after `step` updates.
    pub fn eval(
        &mut self,
        step: u64,
        split: Split,
        i: u64,
        reader: &mut ShardReader,
        batch: &mut Batch,
    ) -> Result<(), String> {
        let shape = (self.batch_size, self.seq_len);
        match &mut self.source {
            Source::Cllm { eval, .. } => eval.fill(i, reader, batch).map_err(|e| e.to_string()),
            Source::NanoGpt { stream, plan } => fill_at(
                stream,
                plan.eval_position(step, split, i),
                shape,
                reader,
                batch,
            ),
        }
    }
}

/// Fills `batch` with the `batch_size` windows drawn at position `pos` of `stream`.
fn fill_at(
    stream: &mut TorchStream,
    pos: u64,
    (batch_size, seq_len): (usize, usize),
    reader: &mut ShardReader,
    batch: &mut Batch,
) -> Result<(), String> {
    let mut offsets = std::mem::take(&mut batch.offsets);
    let drawn = stream.offsets_at(pos, batch_size, reader.len(), seq_len, &mut offsets);
    batch.offsets = offsets;
    drawn.map_err(|e| e.to_string())?;
    batch
        .read_windows(seq_len, reader)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nanoGPT's loop, drawing from a counter instead of a generator: the order of positions.
    fn nanogpt_order(plan: &NanoGptPlan, steps: u64) -> Vec<(String, u64)> {
        let mut pos = plan.init_draws;
        let mut out = Vec::new();
        let mut take = |what: String, n: u64, out: &mut Vec<(String, u64)>| {
            out.push((what, pos));
            pos += n;
        };
        take("train 0".into(), plan.train_draws, &mut out);
        for it in 0..=steps {
            if it % plan.eval_interval == 0 {
                for i in 0..plan.eval_iters {
                    take(format!("eval {it} train {i}"), plan.train_draws, &mut out);
                }
                for i in 0..plan.eval_iters {
                    take(format!("eval {it} val {i}"), plan.val_draws, &mut out);
                }
            }
            take(format!("train {}", it + 1), plan.train_draws, &mut out);
        }
        out
    }

    #[test]
    fn nanogpt_evaluations_draw_fresh_batches_and_cllm_ones_are_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.bin");
        let mut w = cllm_data::ShardWriter::create(&p, 5000).unwrap();
        w.push(&(0..5000).collect::<Vec<u32>>()).unwrap();
        w.finish().unwrap();
        let mut r = ShardReader::open(&p).unwrap();
        let mut nano = Batches::nanogpt(3, 100, (4, 8), (5000, 5000), (10, 2)).unwrap();
        let mut cllm = Batches::cllm(3, 4, 8);
        for (b, fixed) in [(&mut nano, false), (&mut cllm, true)] {
            assert_eq!(b.eval_is_fixed(), fixed);
            let (mut x, mut y, mut z) = (Batch::default(), Batch::default(), Batch::default());
            b.eval(10, Split::Val, 1, &mut r, &mut x).unwrap();
            b.eval(20, Split::Val, 1, &mut r, &mut y).unwrap();
            b.eval(10, Split::Val, 1, &mut r, &mut z).unwrap();
            assert_eq!(x, z, "the same evaluation batch twice");
            assert_eq!(x.offsets == y.offsets, fixed);
            b.train(5, &mut r, &mut y).unwrap();
            assert_ne!(x.offsets, y.offsets);
            let (inputs, targets) = y.rows(0..1);
            assert_eq!(u64::from(inputs[0]), y.offsets[0]);
            assert_eq!(targets[0], inputs[0] + 1);
        }
    }

    #[test]
    fn positions_follow_nanogpts_loop() {
        for (interval, iters, td, vd) in
            [(250, 20, 12, 12), (3, 2, 5, 10), (1, 1, 2, 4), (7, 0, 3, 3)]
        {
            let plan = NanoGptPlan {
                init_draws: 1000,
                train_draws: td,
                val_draws: vd,
                eval_interval: interval,
                eval_iters: iters,
            };
            for (what, pos) in nanogpt_order(&plan, 30) {
                let w: Vec<&str> = what.split(' ').collect();
                let n = |s: &str| s.parse::<u64>().unwrap();
                let got = match w[..] {
                    ["train", s] => plan.train_position(n(s)),
                    ["eval", s, "train", i] => plan.eval_position(n(s), Split::Train, n(i)),
                    ["eval", s, "val", i] => plan.eval_position(n(s), Split::Val, n(i)),
                    _ => unreachable!(),
                };
                assert_eq!(got, pos, "{what} with interval {interval}, iters {iters}");
            }
        }
    }
}
