//! The backward pass: a reverse walk over the recorded ops with one exhaustive `match`.
//!
//! Recording order is a topological order, so walking it backwards visits every op after all
//! the ops that consumed its output. After an op's backward has used the gradient of its
//! output, that gradient is zeroed (see the invariant in [`crate::tape`]).

use std::ops::Range;

use crate::op::Op;
use crate::ops;
use crate::tape::Tape;
use crate::val::{ValId, ValInfo};
use crate::{ParamId, ParamLayout};

/// Everything an op's backward may touch, as separate fields so that one op can borrow, say,
/// the value gradients and the parameter gradients at the same time.
pub(crate) struct Bufs<'a> {
    pub(crate) vals: &'a [ValInfo],
    pub(crate) arena: &'a [f32],
    pub(crate) grads: Grads<'a>,
    pub(crate) aux: &'a [f32],
    pub(crate) ids: &'a [u32],
    pub(crate) scratch: &'a mut Vec<f32>,
    pub(crate) params: &'a [f32],
    pub(crate) pgrads: &'a mut [f32],
    pub(crate) layout: &'a ParamLayout,
}

impl<'a> Bufs<'a> {
    /// The forward value of `v`.
    pub(crate) fn value(&self, v: ValId) -> &'a [f32] {
        &self.arena[self.vals[v.index()].range()]
    }

    /// `(rows, cols)` of `v`.
    pub(crate) fn shape(&self, v: ValId) -> (usize, usize) {
        let info = self.vals[v.index()];
        (info.rows, info.cols)
    }

    /// The parameter `p`'s index range in the flat buffers.
    pub(crate) fn prange(&self, p: ParamId) -> Range<usize> {
        self.layout.entry(p).range()
    }
}

/// The gradients of values: the tape's `grads` buffer and the table that says where each
/// value's span is.
pub(crate) struct Grads<'a> {
    vals: &'a [ValInfo],
    buf: &'a mut [f32],
}

impl Grads<'_> {
    fn range(&self, v: ValId) -> Range<usize> {
        self.vals[v.index()].range()
    }

    fn needs(&self, v: ValId) -> bool {
        self.vals[v.index()].needs_grad
    }

    /// The gradient of `out` (to read) and of `x` (to accumulate into, if `x` needs one).
    pub(crate) fn dy_dx(&mut self, out: ValId, x: ValId) -> (&[f32], Option<&mut [f32]>) {
        let (ro, rx) = (self.range(out), self.range(x));
        if !self.needs(x) {
            return (&self.buf[ro], None);
        }
        let [dy, dx] = self
            .buf
            .get_disjoint_mut([ro, rx])
            .expect("an op's output is never its input");
        (dy, Some(dx))
    }

    /// The gradient of `out` and of two distinct inputs `a != b`.
    pub(crate) fn dy_da_db(
        &mut self,
        out: ValId,
        a: ValId,
        b: ValId,
    ) -> (&[f32], Option<&mut [f32]>, Option<&mut [f32]>) {
        debug_assert_ne!(a, b);
        let (ro, ra, rb) = (self.range(out), self.range(a), self.range(b));
        match (self.needs(a), self.needs(b)) {
            (true, true) => {
                let [dy, da, db] = self
                    .buf
                    .get_disjoint_mut([ro, ra, rb])
                    .expect("distinct values");
                (dy, Some(da), Some(db))
            }
            (true, false) => {
                let [dy, da] = self
                    .buf
                    .get_disjoint_mut([ro, ra])
                    .expect("distinct values");
                (dy, Some(da), None)
            }
            (false, true) => {
                let [dy, db] = self
                    .buf
                    .get_disjoint_mut([ro, rb])
                    .expect("distinct values");
                (dy, None, Some(db))
            }
            (false, false) => (&self.buf[ro], None, None),
        }
    }

    /// The gradient of `out`, read-only.
    pub(crate) fn dy(&self, out: ValId) -> &[f32] {
        &self.buf[self.range(out)]
    }

    fn clear(&mut self, v: ValId) {
        let r = self.range(v);
        self.buf[r].fill(0.0);
    }
}

/// Grows `scratch` to at least `len` floats and returns that prefix.
pub(crate) fn scratch(scratch: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if scratch.len() < len {
        scratch.resize(len, 0.0);
    }
    &mut scratch[..len]
}

/// Runs backward from `loss` over everything recorded on `tape`.
pub(crate) fn run(
    tape: &mut Tape,
    loss: ValId,
    seed: f32,
    params: &[f32],
    pgrads: &mut [f32],
    layout: &ParamLayout,
) {
    let loss_info = tape.vals[loss.index()];
    if !loss_info.needs_grad {
        return; // nothing trainable flows into the loss
    }
    let loss_at = loss_info.start;
    let Tape {
        ops,
        vals,
        arena,
        grads,
        aux,
        ids,
        scratch,
        dirty_leaves,
        ..
    } = tape;
    grads[loss_at] = seed;
    let vals: &[ValInfo] = vals;
    let grads = Grads { vals, buf: grads };
    let mut b = Bufs {
        vals,
        arena,
        grads,
        aux,
        ids,
        scratch,
        params,
        pgrads,
        layout,
    };
    for op in ops.iter().rev() {
        let out = output(op);
        if vals[out.index()].needs_grad {
            dispatch(op, &mut b);
            b.grads.clear(out);
        }
    }
    dirty_leaves.extend(
        vals.iter()
            .filter(|v| v.leaf && v.needs_grad)
            .map(ValInfo::range),
    );
}

/// The value an op writes.
fn output(op: &Op) -> ValId {
    match *op {
        Op::Embedding { out, .. }
        | Op::Linear { out, .. }
        | Op::MatMul { out, .. }
        | Op::Add { out, .. }
        | Op::Mul { out, .. }
        | Op::Scale { out, .. }
        | Op::Sum { out, .. }
        | Op::LayerNorm { out, .. }
        | Op::Gelu { out, .. }
        | Op::Attention { out, .. }
        | Op::CrossEntropy { out, .. } => out,
    }
}

/// One op's backward. Exhaustive: an op without a backward arm does not compile.
fn dispatch(op: &Op, b: &mut Bufs) {
    match op {
        Op::Embedding {
            tokens,
            wte,
            wpe,
            t,
            out,
        } => ops::embedding::backward(b, tokens.clone(), *wte, *wpe, *t, *out),
        Op::Linear { x, w, b: bias, out } => ops::linear::backward(b, *x, *w, *bias, *out),
        Op::MatMul { a, b: rhs, out } => ops::matmul::backward(b, *a, *rhs, *out),
        Op::Add { a, b: rhs, out } => ops::elementwise::add_backward(b, *a, *rhs, *out),
        Op::Mul { a, b: rhs, out } => ops::elementwise::mul_backward(b, *a, *rhs, *out),
        Op::Scale { x, s, out } => ops::elementwise::scale_backward(b, *x, *s, *out),
        Op::Sum { x, out } => ops::elementwise::sum_backward(b, *x, *out),
        Op::LayerNorm {
            x,
            w,
            b: bias,
            stats,
            out,
        } => ops::layernorm::backward(b, *x, *w, *bias, stats.clone(), *out),
        Op::Gelu { x, out } => ops::gelu::backward(b, *x, *out),
        Op::Attention {
            qkv,
            shape,
            probs,
            out,
        } => ops::attention::backward(b, *qkv, *shape, probs.clone(), *out),
        Op::CrossEntropy {
            logits,
            targets,
            probs,
            out,
        } => ops::cross_entropy::backward(b, *logits, targets.clone(), probs.clone(), *out),
    }
}
