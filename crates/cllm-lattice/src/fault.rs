//! [`Fault`]: a panic inside a worker, caught so that the whole lattice stops instead of
//! leaving threads waiting at a barrier.

use std::any::Any;
use std::fmt;

/// Which part of a step panicked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Creating the worker's replica.
    Setup,
    /// `Worker::compute`.
    Compute,
    /// `Worker::evaluate`.
    Evaluate,
    /// `Worker::update`.
    Update,
}

/// A worker panicked; the lattice is stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The worker.
    pub worker: usize,
    /// Steps completed before the failing one.
    pub step: u64,
    /// Where.
    pub stage: Stage,
    /// The panic message.
    pub message: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "worker {} panicked in {:?} at step {}: {}",
            self.worker,
            self.stage,
            self.step + 1,
            self.message
        )
    }
}

impl std::error::Error for Fault {}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
