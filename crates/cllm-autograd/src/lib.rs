//! `cllm-autograd`: reverse-mode automatic differentiation on a tape that is reused every step.
//!
//! * A [`Tape`] owns one step's values, their gradients and what backward needs, in flat
//!   buffers that are truncated (not freed) between steps: memory is bounded by the largest
//!   step and cannot grow with the number of steps.
//! * A [`Graph`] records ops onto the tape. Ops name their inputs by index (never pointers,
//!   `Rc` or closures); backward is a reverse walk with one exhaustive `match`.
//! * Parameters live outside the tape in one flat buffer described by a [`ParamLayout`]; their
//!   gradients go into a caller-supplied flat buffer with the same layout, which is what lets
//!   a scheduler reduce disjoint segments of many workers' gradients.
//!
//! See `DESIGN.md` in this crate for the reasoning.
//!
//! ```
//! use cllm_autograd::{ParamLayout, Tape};
//!
//! let mut layout = ParamLayout::new();
//! let w = layout.push("w", &[3, 2]); // a linear map from 2 features to 3 classes
//! let mut params = layout.zeros();
//! let mut grads = layout.zeros();
//! let mut tape = Tape::new();
//! for _step in 0..10 {
//!     grads.fill(0.0);
//!     let mut g = tape.graph(&params, &layout);
//!     let x = g.input(&[1.0, 0.0, 0.0, 1.0], 2, 2);
//!     let logits = g.linear(x, w, None);
//!     let loss = g.cross_entropy(logits, &[2, 0]);
//!     g.backward(loss, &mut grads);
//!     for (p, d) in params.iter_mut().zip(&grads) {
//!         *p -= 0.5 * d;
//!     }
//! }
//! let mut g = tape.graph(&params, &layout);
//! let x = g.input(&[1.0, 0.0, 0.0, 1.0], 2, 2);
//! let logits = g.linear(x, w, None);
//! let loss = g.cross_entropy(logits, &[2, 0]);
//! assert!(g.scalar(loss) < (3.0f32).ln());
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backward;
mod grad_plan;
mod graph;
mod op;
mod ops;
mod param_layout;
mod tape;
mod val;

/// The dropout masks [`Graph::dropout`] and [`Graph::attention_with_dropout`] take.
pub use cllm_tensor::kernels::dropout::{BatchDropout, Dropout};
pub use graph::Graph;
pub use op::OpKind;
pub use param_layout::{ALIGN_BYTES, ALIGN_FLOATS, ParamEntry, ParamId, ParamLayout};
pub use tape::{Tape, TapeStats};
pub use val::Val;
