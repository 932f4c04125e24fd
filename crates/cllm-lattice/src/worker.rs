//! [`Worker`]: what one lattice worker computes. The lattice is generic over it: it knows
//! flat `f32` buffers, not tensors.

use std::ops::Range;

/// Names a worker thread (`0..workers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub(crate) u32);

impl WorkerId {
    /// The worker's index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where a worker stands when it is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctx {
    /// This worker.
    pub worker: WorkerId,
    /// Number of workers.
    pub workers: usize,
    /// Workers `0..computing` are asked to compute and evaluate (`LatticeConfig::
    /// compute_workers`); the others only update their segments. Split the input over these.
    pub computing: usize,
    /// Steps completed before this one (evaluations do not count).
    pub step: u64,
}

/// A worker's share of a step's loss: `loss_sum` over `weight` items (sequences, tokens...).
/// The lattice reports `sum(loss_sum) / sum(weight)` over workers. A worker that computed
/// nothing returns [`Contribution::NONE`]; its gradient buffer is then skipped by the reduction.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Contribution {
    /// Sum of losses over the items.
    pub loss_sum: f64,
    /// Number (or weight) of items.
    pub weight: f64,
}

impl Contribution {
    /// Nothing computed.
    pub const NONE: Contribution = Contribution {
        loss_sum: 0.0,
        weight: 0.0,
    };
}

/// The per-worker computation of a data-parallel training step, with `S` optimizer state
/// buffers (AdamW: 2). One value lives on each worker thread for the lattice's lifetime (the
/// worker's replica: its tape, activations, scratch), created on that thread.
pub trait Worker<const S: usize>: 'static {
    /// The global batch, shared read-only by all workers during a step.
    type Input: Send + Sync + 'static;
    /// Per-step optimizer scalars (learning rate, step number...).
    type Params: Send + Sync + 'static;

    /// Phase 1: gradients of this worker's share of `input` into `grad` (zero on entry; the
    /// worker's own buffer, laid out like `weights`), scaled so that the sum over workers is
    /// the gradient of the global loss.
    fn compute(
        &mut self,
        ctx: &Ctx,
        weights: &[f32],
        input: &Self::Input,
        grad: &mut [f32],
    ) -> Contribution;

    /// Forward only: this worker's share of the loss on `input`.
    fn evaluate(&mut self, ctx: &Ctx, weights: &[f32], input: &Self::Input) -> Contribution;

    /// Phase 3: update the segment `range` of the weights from the summed gradient, given the
    /// global gradient norm (before any clipping). `weights`, `grad` and each `state` slice are
    /// that segment of their buffers.
    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        ctx: &Ctx,
        range: Range<usize>,
        params: &Self::Params,
        grad_norm: f64,
        weights: &mut [f32],
        grad: &[f32],
        state: [&mut [f32]; S],
    );
}
