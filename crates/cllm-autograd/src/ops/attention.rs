//! Fused causal multi-head self-attention over a `[B*T, 3C]` qkv projection.

use std::ops::Range;

use cllm_tensor::kernels::attention::{AttentionShape, attention_backward, attention_forward};
use cllm_tensor::kernels::dropout::BatchDropout;

use crate::Graph;
use crate::backward::{Bufs, scratch};
use crate::op::Op;
use crate::val::{Val, ValId};

impl<'t> Graph<'t> {
    /// Causal self-attention with `heads` heads over `qkv[B*T, 3C]` (queries, keys and values
    /// side by side in each row) for sequences of length `t`. Returns `[B*T, C]`.
    ///
    /// # Panics
    /// If `qkv`'s columns are not a multiple of 3, its rows not a multiple of `t`, or `heads`
    /// does not divide `C`.
    pub fn attention(&mut self, qkv: Val<'t>, t: usize, heads: usize) -> Val<'t> {
        self.attention_with_dropout(qkv, t, heads, None)
    }

    /// [`Graph::attention`] with the attention probabilities dropped out (probability `(head,
    /// i, j)` of sequence `s` is element `(head * t + i) * t + j` of that sequence's mask;
    /// sequence numbers count from `dropout.first`).
    ///
    /// # Panics
    /// As [`Graph::attention`].
    pub fn attention_with_dropout(
        &mut self,
        qkv: Val<'t>,
        t: usize,
        heads: usize,
        dropout: Option<BatchDropout>,
    ) -> Val<'t> {
        let (rows, cols) = self.shape(qkv);
        assert!(
            cols.is_multiple_of(3),
            "attention: qkv has {cols} columns, not 3C"
        );
        assert!(
            t > 0 && rows.is_multiple_of(t),
            "attention: {rows} rows are not whole sequences of {t}"
        );
        let c = cols / 3;
        assert!(
            heads > 0 && c.is_multiple_of(heads),
            "attention: {heads} heads do not divide C = {c}"
        );
        let shape = AttentionShape {
            b: rows / t,
            t,
            c,
            nh: heads,
        };
        let out = self.tape.alloc_val(rows, c, self.needs_grad(qkv.id), false);
        let probs = self.tape.alloc_aux(shape.probs_len());
        let rq = self.tape.info(qkv.id).range();
        let (before, y, saved, tmp) =
            self.tape
                .inputs_out_aux_scratch(out, probs.clone(), shape.scratch_len());
        attention_forward(y, saved, tmp, &before[rq], shape, dropout);
        self.tape.ops.push(Op::Attention {
            qkv: qkv.id,
            shape,
            probs,
            dropout,
            out,
        });
        Val::new(out)
    }
}

pub(crate) fn backward(
    bufs: &mut Bufs,
    qkv: ValId,
    shape: AttentionShape,
    probs: Range<usize>,
    dropout: Option<BatchDropout>,
    out: ValId,
) {
    let qv = bufs.value(qkv);
    let pv = &bufs.aux[probs];
    let tmp = scratch(bufs.scratch, shape.scratch_len());
    if let (dy, Some(dqkv)) = bufs.grads.dy_dx(out, qkv) {
        // Zeroed here, then added to: overwriting instead measured slower before the gradient
        // pool and no faster with it (docs/benchmarks.md, "Gradient pool").
        attention_backward(dqkv.for_adding(), tmp, dy, qv, pv, shape, dropout);
    }
}
