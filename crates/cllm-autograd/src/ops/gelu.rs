//! GELU activation (tanh form).

use cllm_tensor::kernels::gelu::{gelu_backward, gelu_forward};

use crate::Graph;
use crate::backward::Bufs;
use crate::op::Op;
use crate::val::{Val, ValId};

impl<'t> Graph<'t> {
    /// `gelu(x)`, element-wise.
    pub fn gelu(&mut self, x: Val<'t>) -> Val<'t> {
        let (rows, cols) = self.shape(x);
        let out = self
            .tape
            .alloc_val(rows, cols, self.needs_grad(x.id), false);
        let rx = self.tape.info(x.id).range();
        let (before, y) = self.tape.inputs_and_out(out);
        gelu_forward(y, &before[rx]);
        self.tape.ops.push(Op::Gelu { x: x.id, out });
        Val::new(out)
    }
}

pub(crate) fn backward(bufs: &mut Bufs, x: ValId, out: ValId) {
    let xv = bufs.value(x);
    if let (dy, Some(dx)) = bufs.grads.dy_dx(out, x) {
        gelu_backward(dx.buf, dy, xv, dx.write());
    }
}
