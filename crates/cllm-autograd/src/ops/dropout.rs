//! Dropout on activations, with masks recomputed in the backward pass rather than saved
//! ([`cllm_tensor::kernels::dropout`]).

use cllm_tensor::kernels::dropout::BatchDropout;

use crate::Graph;
use crate::backward::Bufs;
use crate::op::Op;
use crate::val::{Val, ValId};

impl<'t> Graph<'t> {
    /// `x` with each element dropped (zeroed) with the dropout's rate and the others scaled by
    /// `1 / (1 - rate)`. `x` is `[B*t, C]`: `B` sequences of `t` rows, the first of them
    /// sequence `dropout.first`, so a sequence's mask is the same whatever batch it is in.
    ///
    /// # Panics
    /// If `x`'s rows are not whole sequences of `t`.
    pub fn dropout(&mut self, x: Val<'t>, t: usize, dropout: BatchDropout) -> Val<'t> {
        let (rows, cols) = self.shape(x);
        assert!(
            t > 0 && rows.is_multiple_of(t),
            "dropout: {rows} rows are not whole sequences of {t}"
        );
        let per_seq = t * cols;
        let out = self
            .tape
            .alloc_val(rows, cols, self.needs_grad(x.id), false);
        let rx = self.tape.info(x.id).range();
        let (before, y) = self.tape.inputs_and_out(out);
        dropout.forward(per_seq, &before[rx], y);
        self.tape.ops.push(Op::Dropout {
            x: x.id,
            dropout,
            per_seq,
            out,
        });
        Val::new(out)
    }
}

pub(crate) fn backward(
    bufs: &mut Bufs,
    x: ValId,
    dropout: BatchDropout,
    per_seq: usize,
    out: ValId,
) {
    if let (dy, Some(dx)) = bufs.grads.dy_dx(out, x) {
        let accumulate = !dx.first;
        dropout.backward(per_seq, dy, dx.buf, accumulate);
    }
}
