//! [`Val`]: a handle to one value recorded on a tape during one step.

use std::marker::PhantomData;

/// The index of a value in a tape's value table. Crate-internal; users hold [`Val`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ValId(pub(crate) u32);

impl ValId {
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// A value recorded on the tape during the step `'t`.
///
/// `'t` is the borrow of the [`Tape`](crate::Tape) held by the [`Graph`](crate::Graph) that
/// made the value, and it is invariant, so a `Val` cannot be carried into a later step: the
/// next step needs a fresh `&mut Tape`, which the compiler refuses while an old `Val` is alive.
///
/// ```compile_fail
/// use cllm_autograd::{ParamLayout, Tape};
/// let layout = ParamLayout::new();
/// let mut tape = Tape::new();
/// let old = tape.graph(&[], &layout).input(&[1.0], 1, 1);
/// let mut next = tape.graph(&[], &layout); // second step: the tape is borrowed again...
/// next.gelu(old); // ...so the first step's value cannot be used here.
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Val<'t> {
    pub(crate) id: ValId,
    _step: PhantomData<fn(&'t ()) -> &'t ()>,
}

impl Val<'_> {
    pub(crate) fn new(id: ValId) -> Self {
        Val {
            id,
            _step: PhantomData,
        }
    }
}

/// Where a value lives in the arena and what shape it has. Every value is a matrix
/// `[rows, cols]`; a `[B, T, C]` activation is stored as `[B*T, C]`, a scalar as `[1, 1]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ValInfo {
    pub(crate) start: usize,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    /// Whether any parameter or gradient-requiring input flows into this value.
    pub(crate) needs_grad: bool,
    /// An input recorded by `Graph::input*` rather than produced by an op.
    pub(crate) leaf: bool,
}

impl ValInfo {
    pub(crate) fn len(&self) -> usize {
        self.rows * self.cols
    }

    pub(crate) fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.len()
    }
}
