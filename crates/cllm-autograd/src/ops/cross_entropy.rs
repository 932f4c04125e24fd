//! Mean softmax cross-entropy of logits against integer targets.

use std::ops::Range;

use cllm_tensor::kernels::cross_entropy::{cross_entropy_backward, cross_entropy_forward};

use crate::Graph;
use crate::backward::Bufs;
use crate::op::Op;
use crate::val::{Val, ValId};

impl<'t> Graph<'t> {
    /// The mean over rows of `-log softmax(logits[N, V])[target]`. Returns a `[1, 1]` value.
    ///
    /// # Panics
    /// If `targets.len() != N` or a target is not below `V`.
    pub fn cross_entropy(&mut self, logits: Val<'t>, targets: &[u32]) -> Val<'t> {
        let (n, v) = self.shape(logits);
        assert_eq!(
            targets.len(),
            n,
            "cross_entropy: {} targets for {n} rows",
            targets.len()
        );
        let out = self.tape.alloc_val(1, 1, self.needs_grad(logits.id), false);
        let ids = self.tape.push_ids(targets);
        // probs[N, V] then losses[N]
        let saved = self.tape.alloc_aux(n * v + n);
        let rl = self.tape.info(logits.id).range();
        let (before, y, saved_buf) = self.tape.inputs_out_aux(out, saved.clone());
        let (probs, losses) = saved_buf.split_at_mut(n * v);
        y[0] = cross_entropy_forward(probs, losses, &before[rl], targets);
        let probs = saved.start..saved.start + n * v;
        self.tape.ops.push(Op::CrossEntropy {
            logits: logits.id,
            targets: ids,
            probs,
            out,
        });
        Val::new(out)
    }
}

pub(crate) fn backward(
    bufs: &mut Bufs,
    logits: ValId,
    targets: Range<usize>,
    probs: Range<usize>,
    out: ValId,
) {
    let (pv, tv) = (&bufs.aux[probs], &bufs.ids[targets]);
    if let (dy, Some(dlogits)) = bufs.grads.dy_dx(out, logits) {
        cross_entropy_backward(dlogits.for_adding(), pv, tv, dy[0]);
    }
}
