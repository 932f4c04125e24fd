//! Layer norm over the last dimension with a learned scale and optional shift.

use std::ops::Range;

use cllm_tensor::kernels::layernorm::{layernorm_backward, layernorm_forward};

use crate::backward::{Bufs, GradOut};
use crate::op::Op;
use crate::val::{Val, ValId};
use crate::{Graph, ParamId};

impl<'t> Graph<'t> {
    /// Normalises each row of `x[N, C]`, then scales by `w[C]` and shifts by `b[C]`.
    ///
    /// # Panics
    /// If `w` or `b` does not have `C` elements.
    pub fn layernorm(&mut self, x: Val<'t>, w: ParamId, b: Option<ParamId>) -> Val<'t> {
        let (n, c) = self.shape(x);
        let (wv, bv) = (self.param(w), b.map(|p| self.param(p)));
        assert_eq!(
            wv.len(),
            c,
            "layernorm: scale has {} elements for {c} channels",
            wv.len()
        );
        assert!(
            bv.is_none_or(|bv| bv.len() == c),
            "layernorm: shift does not have {c} elements"
        );
        let out = self.tape.alloc_val(n, c, true, false);
        let stats = self.tape.alloc_aux(2 * n);
        let rx = self.tape.info(x.id).range();
        let (before, y, saved) = self.tape.inputs_out_aux(out, stats.clone());
        let (mean, rstd) = saved.split_at_mut(n);
        layernorm_forward(y, mean, rstd, &before[rx], wv, bv);
        self.tape.ops.push(Op::LayerNorm {
            x: x.id,
            w,
            b,
            stats,
            out,
        });
        Val::new(out)
    }
}

pub(crate) fn backward(
    bufs: &mut Bufs,
    x: ValId,
    w: ParamId,
    b: Option<ParamId>,
    stats: Range<usize>,
    out: ValId,
) {
    let n = bufs.shape(x).0;
    let xv = bufs.value(x);
    let (mean, rstd) = bufs.aux[stats].split_at(n);
    let wr = bufs.prange(w);
    let wv = &bufs.params[wr.clone()];
    let (dy, dx) = bufs.grads.dy_dx(out, x);
    let dx = dx.map(GradOut::for_adding);
    match b {
        Some(p) => {
            let br = bufs.layout.entry(p).range();
            let [dw, db] = bufs
                .pgrads
                .get_disjoint_mut([wr, br])
                .expect("distinct parameters");
            layernorm_backward(dx, dw, Some(db), dy, xv, wv, mean, rstd);
        }
        None => layernorm_backward(dx, &mut bufs.pgrads[wr], None, dy, xv, wv, mean, rstd),
    }
}
