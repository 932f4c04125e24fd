//! Element-wise ops on values of one shape: add (residual connections), multiply, scale;
//! and the full sum, which turns any value into a scalar loss.

use cllm_tensor::kernels::elementwise as k;

use crate::Graph;
use crate::backward::{Bufs, GradOut};
use crate::op::Op;
use crate::val::{Val, ValId};

impl<'t> Graph<'t> {
    /// `a + b`, element-wise; both operands have one shape.
    ///
    /// # Panics
    /// If the shapes differ.
    pub fn add(&mut self, a: Val<'t>, b: Val<'t>) -> Val<'t> {
        let out = self.binary(a, b, "add", k::add_forward);
        self.tape.ops.push(Op::Add {
            a: a.id,
            b: b.id,
            out,
        });
        Val::new(out)
    }

    /// `a * b`, element-wise; both operands have one shape.
    ///
    /// # Panics
    /// If the shapes differ.
    pub fn mul(&mut self, a: Val<'t>, b: Val<'t>) -> Val<'t> {
        let out = self.binary(a, b, "mul", k::mul_forward);
        self.tape.ops.push(Op::Mul {
            a: a.id,
            b: b.id,
            out,
        });
        Val::new(out)
    }

    /// `s * x`.
    pub fn scale(&mut self, x: Val<'t>, s: f32) -> Val<'t> {
        let (rows, cols) = self.shape(x);
        let out = self
            .tape
            .alloc_val(rows, cols, self.needs_grad(x.id), false);
        let rx = self.tape.info(x.id).range();
        let (before, y) = self.tape.inputs_and_out(out);
        k::scale_forward(y, &before[rx], s);
        self.tape.ops.push(Op::Scale { x: x.id, s, out });
        Val::new(out)
    }

    /// The sum of all elements of `x`, as a `[1, 1]` value (accumulated in f64).
    pub fn sum(&mut self, x: Val<'t>) -> Val<'t> {
        let out = self.tape.alloc_val(1, 1, self.needs_grad(x.id), false);
        let rx = self.tape.info(x.id).range();
        let (before, y) = self.tape.inputs_and_out(out);
        y[0] = before[rx].iter().map(|&v| v as f64).sum::<f64>() as f32;
        self.tape.ops.push(Op::Sum { x: x.id, out });
        Val::new(out)
    }

    fn binary(
        &mut self,
        a: Val<'t>,
        b: Val<'t>,
        name: &str,
        f: fn(&mut [f32], &[f32], &[f32]),
    ) -> ValId {
        let (sa, sb) = (self.shape(a), self.shape(b));
        assert_eq!(sa, sb, "{name}: shapes {sa:?} and {sb:?} differ");
        let needs = self.needs_grad(a.id) || self.needs_grad(b.id);
        let out = self.tape.alloc_val(sa.0, sa.1, needs, false);
        let (ra, rb) = (self.tape.info(a.id).range(), self.tape.info(b.id).range());
        let (before, y) = self.tape.inputs_and_out(out);
        f(y, &before[ra], &before[rb]);
        out
    }
}

pub(crate) fn add_backward(bufs: &mut Bufs, a: ValId, b: ValId, out: ValId) {
    if a == b {
        let (dy, da) = bufs.grads.dy_dx(out, a);
        if let Some(da) = da {
            write_scaled(da, dy, 2.0);
        }
        return;
    }
    // The plan may have handed `out`'s gradient span to `a` (`crate::grad_plan`): it holds
    // `a`'s gradient already, and only `b` needs writing.
    if bufs.grads.shares_span(out, a) {
        bufs.grads.take_over(out, a);
        let (dy, db) = bufs.grads.dy_dx(out, b);
        if let Some(d) = db {
            pass_on(d, dy);
        }
        return;
    }
    let (dy, da, db) = bufs.grads.dy_da_db(out, a, b);
    for d in [da, db].into_iter().flatten() {
        pass_on(d, dy);
    }
}

/// `d = dy` (its first write) or `d += dy`.
fn pass_on(d: GradOut, dy: &[f32]) {
    if d.first {
        d.buf.copy_from_slice(dy);
    } else {
        k::accumulate(d.buf, dy);
    }
}

pub(crate) fn mul_backward(bufs: &mut Bufs, a: ValId, b: ValId, out: ValId) {
    let (av, bv) = (bufs.value(a), bufs.value(b));
    if a == b {
        // d(a^2)/da = 2a
        let (dy, da) = bufs.grads.dy_dx(out, a);
        if let Some(da) = da.map(GradOut::for_adding) {
            for i in 0..da.len() {
                da[i] += 2.0 * av[i] * dy[i];
            }
        }
        return;
    }
    let (dy, da, db) = bufs.grads.dy_da_db(out, a, b);
    if let Some(da) = da.map(GradOut::for_adding) {
        for i in 0..da.len() {
            da[i] += dy[i] * bv[i];
        }
    }
    if let Some(db) = db.map(GradOut::for_adding) {
        for i in 0..db.len() {
            db[i] += dy[i] * av[i];
        }
    }
}

pub(crate) fn scale_backward(bufs: &mut Bufs, x: ValId, s: f32, out: ValId) {
    if let (dy, Some(dx)) = bufs.grads.dy_dx(out, x) {
        write_scaled(dx, dy, s);
    }
}

/// `d (+)= s * dy`: overwriting on the first write, adding after.
fn write_scaled(d: GradOut, dy: &[f32], s: f32) {
    if d.first {
        k::scale_forward(d.buf, dy, s);
    } else {
        k::scale_backward(d.buf, dy, s);
    }
}

pub(crate) fn sum_backward(bufs: &mut Bufs, x: ValId, out: ValId) {
    if let (dy, Some(dx)) = bufs.grads.dy_dx(out, x) {
        let g = dy[0];
        dx.for_adding().iter_mut().for_each(|d| *d += g);
    }
}
