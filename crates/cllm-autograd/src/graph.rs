//! [`Graph`]: records one step's forward pass onto a [`Tape`] and runs its backward pass.
//!
//! Every op computes its output eagerly when recorded (so values can be read right away) and
//! appends one [`Op`](crate::op::Op) naming its inputs by index. The op-specific methods live
//! next to their backward passes in [`crate::ops`]; this file has what is common to all.

use crate::backward;
use crate::val::{Val, ValId};
use crate::{ParamId, ParamLayout, Tape};

/// The recorder of one step. Made by [`Tape::graph`] (or [`Tape::graph_forward_only`]);
/// values it returns are valid until the tape is used for the next step.
#[derive(Debug)]
pub struct Graph<'t> {
    pub(crate) tape: &'t mut Tape,
    pub(crate) params: &'t [f32],
    pub(crate) layout: &'t ParamLayout,
    /// Whether [`backward`](Graph::backward) may run: ops save what only a backward pass
    /// reads (GELU's derivative in [`linear_gelu`](Graph::linear_gelu)) only if so.
    pub(crate) for_backward: bool,
}

impl<'t> Graph<'t> {
    pub(crate) fn new(
        tape: &'t mut Tape,
        params: &'t [f32],
        layout: &'t ParamLayout,
        for_backward: bool,
    ) -> Self {
        Graph {
            tape,
            params,
            layout,
            for_backward,
        }
    }

    /// Records a `[rows, cols]` input that needs no gradient (data, targets as floats...).
    ///
    /// # Panics
    /// If `data.len() != rows * cols`.
    pub fn input(&mut self, data: &[f32], rows: usize, cols: usize) -> Val<'t> {
        self.leaf(data, rows, cols, false)
    }

    /// Records a `[rows, cols]` input whose gradient [`backward`](Self::backward) computes
    /// and [`grad`](Self::grad) returns (used by gradient checks).
    ///
    /// # Panics
    /// If `data.len() != rows * cols`.
    pub fn input_with_grad(&mut self, data: &[f32], rows: usize, cols: usize) -> Val<'t> {
        self.leaf(data, rows, cols, true)
    }

    fn leaf(&mut self, data: &[f32], rows: usize, cols: usize, needs_grad: bool) -> Val<'t> {
        assert_eq!(
            data.len(),
            rows * cols,
            "input: {} values for a [{rows}, {cols}] value",
            data.len()
        );
        let id = self.tape.alloc_val(rows, cols, needs_grad, true);
        let (_, out) = self.tape.inputs_and_out(id);
        out.copy_from_slice(data);
        Val::new(id)
    }

    /// The forward value of `v`, row-major.
    pub fn value(&self, v: Val<'t>) -> &[f32] {
        &self.tape.arena[self.tape.info(v.id).range()]
    }

    /// The single element of a `[1, 1]` value such as a loss.
    ///
    /// # Panics
    /// If `v` is not `[1, 1]`.
    pub fn scalar(&self, v: Val<'t>) -> f32 {
        assert_eq!(self.shape(v), (1, 1), "scalar() of a non-scalar value");
        self.value(v)[0]
    }

    /// `(rows, cols)` of `v`.
    pub fn shape(&self, v: Val<'t>) -> (usize, usize) {
        let info = self.tape.info(v.id);
        (info.rows, info.cols)
    }

    /// Back-propagates from the scalar `loss`: accumulates `dloss/dparam` into `param_grads`
    /// (a flat buffer laid out like the parameters, usually zeroed by the caller first) and
    /// leaves the gradients of inputs made with [`input_with_grad`](Self::input_with_grad)
    /// readable through [`grad`](Self::grad).
    ///
    /// # Panics
    /// If `loss` is not `[1, 1]`, `param_grads` does not match the layout, or the graph was
    /// recorded with [`Tape::graph_forward_only`].
    pub fn backward(&mut self, loss: Val<'t>, param_grads: &mut [f32]) {
        self.backward_scaled(loss, 1.0, param_grads);
    }

    /// [`backward`](Self::backward) for `seed * loss`: gradients are scaled by `seed`. A worker
    /// that computes the mean loss of `b` of a batch's `B` rows uses `seed = b / B`, so that
    /// summing the workers' gradients gives the gradient of the whole batch's mean loss.
    ///
    /// # Panics
    /// If `loss` is not `[1, 1]`, `param_grads` does not match the layout, or the graph was
    /// recorded with [`Tape::graph_forward_only`].
    pub fn backward_scaled(&mut self, loss: Val<'t>, seed: f32, param_grads: &mut [f32]) {
        assert!(
            self.for_backward,
            "backward() of a graph recorded forward only (Tape::graph_forward_only)"
        );
        assert_eq!(self.shape(loss), (1, 1), "backward() needs a scalar loss");
        assert_eq!(
            param_grads.len(),
            self.layout.len(),
            "gradient buffer does not match the layout"
        );
        backward::run(
            self.tape,
            loss.id,
            seed,
            self.params,
            param_grads,
            self.layout,
        );
    }

    /// The gradient of an input after [`backward`](Self::backward).
    ///
    /// # Panics
    /// If `v` is not an input: intermediate values' gradients are backward's working space
    /// (overwritten as it goes, see `DESIGN.md`), so only inputs keep theirs.
    pub fn grad(&self, v: Val<'t>) -> &[f32] {
        let info = self.tape.info(v.id);
        assert!(
            info.leaf,
            "grad() is kept only for inputs; intermediate gradients are backward's working space"
        );
        let at = self.tape.grad_at[v.id.index()];
        &self.tape.grads[at..at + info.len()]
    }

    /// The parameter layout this step reads parameters through.
    pub fn layout(&self) -> &'t ParamLayout {
        self.layout
    }

    pub(crate) fn param(&self, p: ParamId) -> &'t [f32] {
        self.layout.slice(p, self.params)
    }

    pub(crate) fn needs_grad(&self, v: ValId) -> bool {
        self.tape.info(v).needs_grad
    }
}
