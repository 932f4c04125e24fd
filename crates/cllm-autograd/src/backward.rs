//! The backward pass: a reverse walk over the recorded ops with one exhaustive `match`.
//!
//! Recording order is a topological order, so walking it backwards visits every op after all
//! the ops that consumed its output, and so after every write to its output's gradient.
//!
//! First write overwrites: a gradient buffer holds whatever an earlier step left there until
//! something writes it in this pass, and a per-value flag says whether anything has. The first
//! op to write a gradient overwrites it ([`GradOut::first`]: a GEMM with `beta = 0`, a copy,
//! or a kernel's overwriting form); later ones add to it. An op whose output gradient nothing
//! wrote has a zero gradient to pass on, so its backward is skipped. This spares zeroing every
//! gradient once per step, and reading the zeros back (see docs/benchmarks.md, "overwrite").
//! Inputs' gradients are zeroed when the input is recorded and count as written, so they only
//! ever accumulate.

use std::ops::Range;

use cllm_tensor::kernels::Write;
use cllm_tensor::kernels::matmul::GemmSpec;

use crate::grad_plan;
use crate::op::Op;
use crate::ops;
use crate::tape::{PAGE, Tape};
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

/// The gradients of values: the tape's `grads` buffer, where each value's span starts in it
/// ([`crate::grad_plan`]), and which spans this backward pass has written (see the module
/// docs).
pub(crate) struct Grads<'a> {
    vals: &'a [ValInfo],
    at: &'a [usize],
    buf: &'a mut [f32],
    written: &'a mut [bool],
}

/// The gradient of an op's input, to write.
pub(crate) struct GradOut<'a> {
    /// The gradient's span.
    pub(crate) buf: &'a mut [f32],
    /// Whether this is the first write to it in this backward pass: `buf` then holds stale
    /// values, to be overwritten, not added to.
    pub(crate) first: bool,
}

impl<'a> GradOut<'a> {
    /// How a kernel that takes a [`Write`] writes it.
    pub(crate) fn write(&self) -> Write {
        if self.first {
            Write::Overwrite
        } else {
            Write::Add
        }
    }

    /// `spec` for a GEMM into this gradient: overwriting it on the first write (`beta = 0`,
    /// the old contents unread), adding to it after.
    pub(crate) fn gemm(&self, spec: GemmSpec) -> GemmSpec {
        if self.first { spec } else { spec.accumulate() }
    }

    /// The span to add into, zeroed first if this is the first write (for kernels that can
    /// only add).
    pub(crate) fn for_adding(self) -> &'a mut [f32] {
        if self.first {
            self.buf.fill(0.0);
        }
        self.buf
    }
}

impl Grads<'_> {
    /// `v`'s gradient span; `v` must have one (it needs a gradient, see `crate::grad_plan`).
    fn range(&self, v: ValId) -> Range<usize> {
        let at = self.at[v.index()];
        debug_assert_ne!(at, grad_plan::UNPLACED, "a gradient without a span");
        at..at + self.vals[v.index()].len()
    }

    fn needs(&self, v: ValId) -> bool {
        self.vals[v.index()].needs_grad
    }

    /// Whether `x`'s gradient is `out`'s span, handed over by the plan (an add's input).
    pub(crate) fn shares_span(&self, out: ValId, x: ValId) -> bool {
        self.needs(x) && self.at[x.index()] == self.at[out.index()]
    }

    /// Marks `x`'s gradient, which holds `out`'s gradient already (it is `out`'s span, see
    /// [`Grads::shares_span`]), as written.
    pub(crate) fn take_over(&mut self, out: ValId, x: ValId) {
        debug_assert!(self.shares_span(out, x));
        let first = self.first_write(x);
        debug_assert!(first, "a handed-over gradient is its value's first write");
    }

    /// Marks `v`'s gradient written and says whether it was not before.
    fn first_write(&mut self, v: ValId) -> bool {
        !std::mem::replace(&mut self.written[v.index()], true)
    }

    /// The gradient of `out` (to read) and of `x` (to write, if `x` needs one).
    pub(crate) fn dy_dx(&mut self, out: ValId, x: ValId) -> (&[f32], Option<GradOut<'_>>) {
        let (dy, dx) = self.dy_mut_dx(out, x);
        (dy, dx)
    }

    /// [`Grads::dy_dx`] with `out`'s gradient writable: for an op that transforms it in place
    /// (nothing reads an op's output gradient after the op's backward).
    pub(crate) fn dy_mut_dx(&mut self, out: ValId, x: ValId) -> (&mut [f32], Option<GradOut<'_>>) {
        let ro = self.range(out);
        if !self.needs(x) {
            return (&mut self.buf[ro], None);
        }
        let rx = self.range(x);
        let first = self.first_write(x);
        let [dy, dx] = self
            .buf
            .get_disjoint_mut([ro, rx])
            .expect("an op's output is never its input");
        (dy, Some(GradOut { buf: dx, first }))
    }

    /// The gradient of `out` and of two distinct inputs `a != b`.
    pub(crate) fn dy_da_db(
        &mut self,
        out: ValId,
        a: ValId,
        b: ValId,
    ) -> (&[f32], Option<GradOut<'_>>, Option<GradOut<'_>>) {
        debug_assert_ne!(a, b);
        let (need_a, need_b) = (self.needs(a), self.needs(b));
        // Spans exist only for gradients that are written (`crate::grad_plan`).
        let ro = self.range(out);
        let ra = if need_a { self.range(a) } else { 0..0 };
        let rb = if need_b { self.range(b) } else { 0..0 };
        let first_a = need_a && self.first_write(a);
        let first_b = need_b && self.first_write(b);
        let grad = |buf, first| GradOut { buf, first };
        match (need_a, need_b) {
            (true, true) => {
                let [dy, da, db] = self
                    .buf
                    .get_disjoint_mut([ro, ra, rb])
                    .expect("distinct values");
                (dy, Some(grad(da, first_a)), Some(grad(db, first_b)))
            }
            (true, false) => {
                let [dy, da] = self
                    .buf
                    .get_disjoint_mut([ro, ra])
                    .expect("distinct values");
                (dy, Some(grad(da, first_a)), None)
            }
            (false, true) => {
                let [dy, db] = self
                    .buf
                    .get_disjoint_mut([ro, rb])
                    .expect("distinct values");
                (dy, None, Some(grad(db, first_b)))
            }
            (false, false) => (&self.buf[ro], None, None),
        }
    }

    /// The gradient of `out`, read-only.
    pub(crate) fn dy(&self, out: ValId) -> &[f32] {
        &self.buf[self.range(out)]
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
    let Tape {
        ops,
        vals,
        arena,
        grads,
        grad_at,
        input_grads,
        free_spans,
        arena_skew,
        aux,
        ids,
        scratch,
        written,
        ..
    } = tape;
    // The pool's place (`tape::pool_start`) and length do not depend on where the buffers
    // happen to lie.
    let base = crate::tape::pool_start(grads, *input_grads, arena, *arena_skew);
    let end = grad_plan::plan(ops, vals, loss.index(), base, grad_at, free_spans);
    let len = *input_grads + PAGE + (end - base);
    if grads.len() < len {
        grads.resize(len, 0.0);
    }
    grads[grad_at[loss.index()]] = seed;
    let vals: &[ValInfo] = vals;
    // Inputs' gradients were zeroed when recorded: they count as written (and accumulate).
    written.clear();
    written.extend(vals.iter().map(|v| v.leaf));
    written[loss.index()] = true;
    let grads = Grads {
        vals,
        at: grad_at,
        buf: grads,
        written,
    };
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
        let out = op.output();
        // Nothing wrote the output's gradient: it is zero, and so is all this op passes on.
        if vals[out.index()].needs_grad && b.grads.written[out.index()] {
            dispatch(op, &mut b);
        }
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
        Op::Dropout {
            x,
            dropout,
            per_seq,
            out,
        } => ops::dropout::backward(b, *x, *dropout, *per_seq, *out),
        Op::Sum { x, out } => ops::elementwise::sum_backward(b, *x, *out),
        Op::LayerNorm {
            x,
            w,
            b: bias,
            stats,
            out,
        } => ops::layernorm::backward(b, *x, *w, *bias, stats.clone(), *out),
        Op::Gelu { x, out } => ops::gelu::backward(b, *x, *out),
        Op::LinearGelu {
            x,
            w,
            b: bias,
            grad,
            out,
        } => ops::linear_gelu::backward(b, *x, *w, *bias, grad.clone(), *out),
        Op::Attention {
            qkv,
            shape,
            probs,
            dropout,
            out,
        } => ops::attention::backward(b, *qkv, *shape, probs.clone(), *dropout, *out),
        Op::CrossEntropy {
            logits,
            targets,
            probs,
            out,
        } => ops::cross_entropy::backward(b, *logits, targets.clone(), probs.clone(), *out),
    }
}
