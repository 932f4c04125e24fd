//! The training engine: a [`Lattice`] of [`GptWorker`]s. Node Zero (the training loop's
//! thread) publishes each batch, fills the next one while the workers compute, and reads the
//! step's report.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cllm_autograd::Tape;
use cllm_data::{Batch, worker_share};
use cllm_lattice::{
    Contribution, Ctx, Lattice, LatticeConfig, StepReport, Topology, Worker, WorkerId,
};
use cllm_model::adamw::clip_scale;
use cllm_model::{AdamW, DropoutKey, Gpt, StepScalars, TrainHyper};
use serde::Serialize;

/// Seconds spent in each phase of one step, from the lattice's report. Phases are wall-time
/// spans across all workers (with more threads than cores, segments run one after another and
/// a span is longer than any single worker's share).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct PhaseTimes {
    /// Forward and backward: from opening the step to the last worker's end.
    pub compute: f64,
    /// Mean time a worker waited at the two inner barriers.
    pub wait: f64,
    /// Mean time a computing worker waited at the barrier after compute (uneven compute).
    pub wait_compute: f64,
    /// Mean time a worker waited at the barrier after the reduction (uneven segments).
    pub wait_reduce: f64,
    /// Gradient reduction span.
    pub reduce: f64,
    /// Optimizer span (norm, clipping and AdamW over the segments).
    pub optimizer: f64,
    /// Slowest minus fastest computing worker (compute durations).
    pub straggler: f64,
}

impl PhaseTimes {
    fn from_report(r: &StepReport) -> Self {
        PhaseTimes {
            compute: r.compute_span,
            wait: r.wait_compute_mean + r.wait_reduce_mean,
            wait_compute: r.wait_compute_active_mean,
            wait_reduce: r.wait_reduce_mean,
            reduce: r.reduce_span,
            optimizer: r.update_span,
            straggler: r.compute_max - r.compute_min,
        }
    }
}

/// The result of one step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepOutput {
    /// Mean training loss of the batch (before the update).
    pub loss: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Where the time went.
    pub phases: PhaseTimes,
    /// Seconds Node Zero spent preparing the next batch while the workers computed.
    pub data: f64,
}

/// Per-step optimizer scalars published to the workers.
#[derive(Clone, Copy, Debug)]
pub struct StepParams {
    /// 1-based step number.
    pub t: u64,
    /// Learning rate.
    pub lr: f32,
}

/// A test hook: make one worker panic in its compute phase at one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InjectedPanic {
    /// The worker.
    pub worker: usize,
    /// Steps completed before the failing one.
    pub step: u64,
}

/// One worker's replica: its tape (activations, their gradients, saved buffers), allocated once
/// and reused; the model and optimizer are shared read-only.
pub struct GptWorker {
    gpt: Arc<Gpt>,
    adamw: Arc<AdamW>,
    grad_clip: f32,
    /// The run's seed, which dropout masks are drawn from.
    seed: u64,
    tape: Tape,
    inject: Option<InjectedPanic>,
    compute_workers: usize,
    /// Sequences per forward/backward pass (`usize::MAX`: the whole share at once).
    micro_batch: usize,
}

impl GptWorker {
    /// A replica whose tape is already grown to the size of its share of a `batch_size`
    /// batch, or of one pass of it with a micro-batch (so no step allocates and the memory
    /// report at start-up is exact).
    fn new(shared: &EngineShared, id: WorkerId) -> Self {
        let micro_batch = shared.micro_batch.unwrap_or(usize::MAX);
        let rows = shared.share(id.index()).len().min(micro_batch);
        let tape = recorded_tape(&shared.gpt, rows);
        shared.tape_bytes[id.index()].store(tape.stats().capacity_bytes, Ordering::Relaxed);
        GptWorker {
            gpt: shared.gpt.clone(),
            adamw: shared.adamw.clone(),
            grad_clip: shared.grad_clip,
            seed: shared.seed,
            tape,
            inject: shared.inject,
            compute_workers: shared.compute_workers,
            micro_batch,
        }
    }

    /// The sequences this worker computes: its share among the first `compute_workers`.
    fn rows(&self, ctx: &Ctx, batch: &Batch) -> Range<usize> {
        let k = ctx.worker.index();
        if k < self.compute_workers {
            worker_share(batch.batch_size, self.compute_workers, k)
        } else {
            0..0
        }
    }
}

impl Worker<2> for GptWorker {
    type Input = Batch;
    type Params = StepParams;

    fn compute(
        &mut self,
        ctx: &Ctx,
        weights: &[f32],
        batch: &Batch,
        grad: &mut [f32],
    ) -> Contribution {
        if self
            .inject
            .is_some_and(|i| i.worker == ctx.worker.index() && i.step == ctx.step)
        {
            panic!("injected failure (--inject-panic)");
        }
        let rows = self.rows(ctx, batch);
        if rows.is_empty() {
            return Contribution::NONE;
        }
        // Each pass adds its part of the batch's mean-loss gradient to `grad`.
        let mut loss_sum = 0.0;
        for pass in passes(rows.clone(), self.micro_batch) {
            let (inputs, targets) = batch.rows(pass.clone());
            let scale = pass.len() as f32 / batch.batch_size as f32;
            let key = DropoutKey {
                seed: self.seed,
                step: ctx.step,
                first_sequence: pass.start as u64,
            };
            let loss = self.gpt.loss_and_grad_with(
                &mut self.tape,
                weights,
                inputs,
                targets,
                batch.seq_len,
                scale,
                grad,
                Some(key),
            );
            loss_sum += loss as f64 * pass.len() as f64;
        }
        Contribution {
            loss_sum,
            weight: rows.len() as f64,
        }
    }

    fn evaluate(&mut self, ctx: &Ctx, weights: &[f32], batch: &Batch) -> Contribution {
        let rows = self.rows(ctx, batch);
        if rows.is_empty() {
            return Contribution::NONE;
        }
        let mut loss_sum = 0.0;
        for pass in passes(rows.clone(), self.micro_batch) {
            let (inputs, targets) = batch.rows(pass.clone());
            let loss = self
                .gpt
                .eval_loss(&mut self.tape, weights, inputs, targets, batch.seq_len);
            loss_sum += loss as f64 * pass.len() as f64;
        }
        Contribution {
            loss_sum,
            weight: rows.len() as f64,
        }
    }

    fn update(
        &mut self,
        _: &Ctx,
        range: Range<usize>,
        p: &StepParams,
        grad_norm: f64,
        weights: &mut [f32],
        grad: &[f32],
        state: [&mut [f32]; 2],
    ) {
        let [m, v] = state;
        let scalars = StepScalars {
            t: p.t,
            lr: p.lr,
            grad_scale: clip_scale(grad_norm, self.grad_clip),
        };
        self.adamw.update(range, scalars, weights, grad, m, v);
    }
}

/// `rows` in passes of at most `m` sequences, in order.
fn passes(rows: Range<usize>, m: usize) -> impl Iterator<Item = Range<usize>> {
    let end = rows.end;
    rows.step_by(m)
        .map(move |s| s..s.saturating_add(m).min(end))
}

/// A tape that has recorded one training step of `rows` sequences (zero weights and tokens),
/// so its buffers have the size such a step needs; an empty tape for 0 rows.
///
/// It is recorded on a [`Tape::with_capacity_of`] a [`probe_tape`], so its buffers are single
/// fresh allocations (huge pages under cllm-train's allocator) instead of regrown ones.
pub fn recorded_tape(gpt: &Gpt, rows: usize) -> Tape {
    if rows == 0 {
        return Tape::new();
    }
    let mut tape = Tape::with_capacity_of(&probe_tape(gpt, rows));
    record_step(gpt, rows, &mut tape);
    tape
}

/// A tape grown by recording one training step of `rows` sequences: what such a step writes
/// ([`Tape::stats`]), in buffers that grew as it went.
pub fn probe_tape(gpt: &Gpt, rows: usize) -> Tape {
    let mut tape = Tape::new();
    if rows > 0 {
        record_step(gpt, rows, &mut tape);
    }
    tape
}

/// Records one training step of `rows` sequences of zero tokens on zero weights (with the
/// GPT's dropout, whose outputs take tape memory).
fn record_step(gpt: &Gpt, rows: usize, tape: &mut Tape) {
    let t = gpt.cfg.seq_len;
    let tokens = vec![0u32; rows * t];
    let weights = gpt.params.layout.zeros();
    let mut grads = gpt.params.layout.zeros();
    let key = DropoutKey {
        seed: 0,
        step: 0,
        first_sequence: 0,
    };
    gpt.loss_and_grad_with(
        tape,
        &weights,
        &tokens,
        &tokens,
        t,
        1.0,
        &mut grads,
        Some(key),
    );
}

/// What every replica is built from.
struct EngineShared {
    gpt: Arc<Gpt>,
    adamw: Arc<AdamW>,
    grad_clip: f32,
    seed: u64,
    batch_size: usize,
    inject: Option<InjectedPanic>,
    /// Workers that compute (the first ones); the rest only reduce and update.
    compute_workers: usize,
    /// Sequences per forward/backward pass of a worker (`None`: its whole share).
    micro_batch: Option<usize>,
    /// Tape capacity of each worker after its warm-up.
    tape_bytes: Vec<AtomicUsize>,
}

impl EngineShared {
    fn share(&self, k: usize) -> Range<usize> {
        if k < self.compute_workers {
            worker_share(self.batch_size, self.compute_workers, k)
        } else {
            0..0
        }
    }
}

/// Memory of the lattice's buffers, for the start-up report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryBreakdown {
    /// Weights.
    pub weights: usize,
    /// AdamW moments (m and v).
    pub moments: usize,
    /// One worker's gradient buffer (reserved for every worker; resident only once written, so
    /// only computing workers' buffers take memory).
    pub gradient_per_worker: usize,
    /// Worker tapes (activations, their gradients, saved buffers), all workers together.
    pub activations_total: usize,
    /// Workers that compute (have a share of the batch).
    pub computing_workers: usize,
    /// Worker threads.
    pub workers: usize,
}

impl MemoryBreakdown {
    /// The budget formula: weights + moments + every worker's gradient + all tapes.
    pub fn total(&self) -> usize {
        self.weights
            + self.moments
            + self.workers * self.gradient_per_worker
            + self.activations_total
    }

    /// What is actually resident: weights + moments + computing workers' gradients + tapes.
    pub fn resident(&self) -> usize {
        self.weights
            + self.moments
            + self.computing_workers * self.gradient_per_worker
            + self.activations_total
    }
}

impl std::fmt::Display for MemoryBreakdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mb = |b: usize| b as f64 / (1 << 20) as f64;
        write!(
            f,
            "memory: weights {:.1} MiB, AdamW moments {:.1} MiB, gradient {:.1} MiB per worker ({} reserved, {} written), \
             activations {:.1} MiB over {} computing workers; {:.1} MiB resident, {:.1} MiB if every gradient were written",
            mb(self.weights),
            mb(self.moments),
            mb(self.gradient_per_worker),
            self.workers,
            self.computing_workers,
            mb(self.activations_total),
            self.computing_workers,
            mb(self.resident()),
            mb(self.total())
        )
    }
}

/// How the engine is set up.
#[derive(Clone, Copy, Debug)]
pub struct EngineOptions {
    /// Worker threads.
    pub threads: usize,
    /// Workers that compute forward and backward; the others only take part in the reduction
    /// and the optimizer. See [`default_compute_workers`].
    pub compute_workers: usize,
    /// Sequences per forward/backward pass of a worker (gradient accumulation); `None`: its
    /// whole share in one pass.
    pub micro_batch: Option<usize>,
    /// Pin workers to cores.
    pub pin: bool,
    /// The run's seed: dropout masks are drawn from it (with the step and the sequence).
    pub seed: u64,
    /// Steps the run completed before this engine's first (a resumed run's).
    pub first_step: u64,
    /// Test hook.
    pub inject: Option<InjectedPanic>,
}

/// How many of `threads` workers should compute a `batch_size` batch on `cores` cores:
/// `min(threads, cores, batch_size)`.
///
/// The work of a step is fixed; splitting it over more compute threads than cores cannot make it
/// faster, only slower: the threads time-slice (each switch refills the caches with another
/// worker's activations) and each worker's matrices get fewer rows, where GEMM is less
/// efficient (measured here: 77 GFLOP/s at 64 rows against 93 at 384). The workers beyond this
/// count still own their segment of the gradient reduction and of the optimizer.
pub fn default_compute_workers(threads: usize, cores: usize, batch_size: usize) -> usize {
    threads.min(cores).min(batch_size).max(1)
}

/// The lattice of GPT workers.
pub struct LatticeEngine {
    lattice: Lattice<GptWorker, 2>,
    memory: MemoryBreakdown,
}

impl LatticeEngine {
    /// Starts `opts.threads` workers over `weights` and moments `m`, `v`.
    pub fn new(
        gpt: Gpt,
        hyper: &TrainHyper,
        weights: &[f32],
        m: &[f32],
        v: &[f32],
        opts: EngineOptions,
    ) -> Result<Self, String> {
        let adamw = Arc::new(AdamW::new(&gpt.params, hyper));
        let n = opts.threads;
        let shared = Arc::new(EngineShared {
            gpt: Arc::new(gpt),
            adamw,
            grad_clip: hyper.grad_clip,
            seed: opts.seed,
            batch_size: hyper.batch_size,
            inject: opts.inject,
            compute_workers: opts.compute_workers.clamp(1, n),
            micro_batch: opts.micro_batch,
            tape_bytes: (0..n).map(|_| AtomicUsize::new(0)).collect(),
        });
        let config = LatticeConfig {
            pin: opts.pin,
            compute_workers: Some(shared.compute_workers),
            first_step: opts.first_step,
            ..LatticeConfig::new(n)
        };
        let make_shared = shared.clone();
        let lattice = Lattice::new(&config, weights, [m, v], move |id| {
            GptWorker::new(&make_shared, id)
        })
        .map_err(|e| e.to_string())?;
        let f = std::mem::size_of_val(weights);
        let memory = MemoryBreakdown {
            weights: f,
            moments: 2 * f,
            gradient_per_worker: f,
            activations_total: shared
                .tape_bytes
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .sum(),
            computing_workers: (0..n).filter(|&k| !shared.share(k).is_empty()).count(),
            workers: n,
        };
        Ok(LatticeEngine { lattice, memory })
    }

    /// How the workers are arranged.
    pub fn topology(&self) -> &Topology {
        self.lattice.topology()
    }

    /// Where the workers are pinned (`--pin`), if they are.
    pub fn placement(&self) -> Option<&cllm_lattice::Placement> {
        self.lattice.placement()
    }

    /// The buffers' sizes.
    pub fn memory(&self) -> MemoryBreakdown {
        self.memory
    }

    /// Step `t` (1-based) on `batch` at learning rate `lr`; `prepare` runs on Node Zero while
    /// the workers compute (it fills the next batch). Returns the batch for reuse.
    pub fn step(
        &mut self,
        batch: Batch,
        t: u64,
        lr: f32,
        prepare: &mut dyn FnMut() -> Result<(), String>,
    ) -> Result<(StepOutput, Batch), String> {
        let pending = self.lattice.step(batch, StepParams { t, lr });
        let d0 = std::time::Instant::now();
        let prepared = prepare();
        let data = d0.elapsed().as_secs_f64();
        let (report, batch) = tracing::debug_span!("wait.workers")
            .in_scope(|| pending.wait())
            .map_err(|f| f.to_string())?;
        prepared?;
        let out = StepOutput {
            loss: report.loss as f32,
            grad_norm: report.grad_norm as f32,
            phases: PhaseTimes::from_report(&report),
            data,
        };
        Ok((out, batch))
    }

    /// Mean loss on `batch`, forward only, computed by the workers.
    pub fn eval_loss(&mut self, batch: Batch) -> Result<(f32, Batch), String> {
        let (report, batch) = self
            .lattice
            .evaluate(batch)
            .wait()
            .map_err(|f| f.to_string())?;
        Ok((report.loss as f32, batch))
    }

    /// The weights (between steps).
    pub fn weights(&self) -> &[f32] {
        self.lattice.weights()
    }

    /// The AdamW moments (m, v), between steps.
    pub fn moments(&self) -> (&[f32], &[f32]) {
        (self.lattice.state(0), self.lattice.state(1))
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use super::passes;

    #[test]
    fn passes_cover_the_rows_in_order_at_most_m_at_a_time() {
        let all = |rows, m| passes(rows, m).collect::<Vec<_>>();
        assert_eq!(all(3..11, 3), [3..6, 6..9, 9..11]);
        assert_eq!(all(0..4, 2), [0..2, 2..4]);
        assert_eq!(all(0..5, usize::MAX), vec![Range { start: 0, end: 5 }]);
        assert!(all(2..2, 4).is_empty());
    }
}
