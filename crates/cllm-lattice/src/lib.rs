//! `cllm-lattice`: a data-parallel step scheduler for many-core CPUs, generic over what a
//! worker computes (it knows flat `f32` buffers, not tensors).
//!
//! * **Node Zero** is the calling thread. It never computes: it publishes each step's input,
//!   prepares the next while workers run ([`Lattice::step`] returns a [`Pending`]), collects the
//!   report, and shuts the lattice down.
//! * **Workers** are `threads` threads in 12-fold groups. Each owns its replica (whatever
//!   [`Worker`] state it builds on its own thread: tape, activations, scratch) and its own
//!   gradient buffer; weights are shared read-only while computing.
//! * **A step** is barrier-separated phases: compute (worker `k` writes only its gradient
//!   buffer), reduce (worker `k` sums segment `k` of every written gradient buffer: disjoint,
//!   cache-line aligned, no locks, no atomics on data), update (worker `k` applies the
//!   optimizer to segment `k` of the weights and of the sharded optimizer state).
//! * **Computing workers and reducers**: [`LatticeConfig::compute_workers`] workers compute
//!   and evaluate; the rest only reduce and update their segments and sleep while the others
//!   compute ([`Ctx::computing`] tells a worker how many compute).
//! * **Barriers** are a combining tree with fan-in 12 that spins briefly and then sleeps.
//! * **Faults**: a panic in a worker is caught, every thread finishes the round, and Node Zero
//!   gets a [`Fault`] naming the worker, step and message; the lattice then stops.
//!
//! The protocol, with the table of who may touch which buffer in which phase, is in
//! `PROTOCOL.md` beside this crate's sources.
//!
//! ```
//! use cllm_lattice::{Contribution, Ctx, Lattice, LatticeConfig, Worker};
//! use std::ops::Range;
//!
//! /// Least squares on one number: the loss of a sample x is (w - x)^2 / 2.
//! struct Mean;
//! impl Worker<0> for Mean {
//!     type Input = Vec<f32>;
//!     type Params = f32; // learning rate
//!     fn compute(&mut self, ctx: &Ctx, w: &[f32], xs: &Vec<f32>, grad: &mut [f32]) -> Contribution {
//!         let mine: Vec<f32> = xs.iter().skip(ctx.worker.index()).step_by(ctx.workers).copied().collect();
//!         for x in &mine {
//!             grad[0] += (w[0] - x) / xs.len() as f32;
//!         }
//!         let loss: f64 = mine.iter().map(|x| 0.5 * ((w[0] - x) as f64).powi(2)).sum();
//!         Contribution { loss_sum: loss, weight: mine.len() as f64 }
//!     }
//!     fn evaluate(&mut self, ctx: &Ctx, w: &[f32], xs: &Vec<f32>) -> Contribution {
//!         self.compute(ctx, w, xs, &mut [0.0])
//!     }
//!     fn update(&mut self, _: &Ctx, _: Range<usize>, lr: &f32, _: f64, w: &mut [f32], g: &[f32], _: [&mut [f32]; 0]) {
//!         for (w, g) in w.iter_mut().zip(g) {
//!             *w -= lr * g;
//!         }
//!     }
//! }
//!
//! let mut lattice = Lattice::new(&LatticeConfig::new(3), &[0.0], [], |_| Mean).unwrap();
//! let mut data = vec![1.0, 2.0, 3.0, 6.0];
//! for _ in 0..100 {
//!     let (_report, input) = lattice.step(data, 0.5).wait().unwrap();
//!     data = input; // the input comes back for reuse
//! }
//! assert!((lattice.weights()[0] - 3.0).abs() < 1e-4);
//! ```

#![deny(missing_docs)]

mod aligned;
pub mod barrier;
mod fault;
mod lattice;
mod phase_cell;
pub mod placement;
mod report;
mod sync;
mod topology;
mod worker;

pub use aligned::{AlignedBuf, LINE_FLOATS};
pub use barrier::{FAN_IN, Ticket, TreeBarrier};
pub use fault::{Fault, Stage};
pub use lattice::{Lattice, LatticeConfig, LatticeError, MAX_THREADS, Pending};
pub use placement::Placement;
pub use report::{StepReport, WorkerTimes};
pub use topology::{Topology, segment_bounds};
pub use worker::{Contribution, Ctx, Worker, WorkerId};
