//! Linear layer: `out[N, out] = x[N, in] w[out, in]^T + b[out]`.

use cllm_tensor::kernels::elementwise::bias_backward;
use cllm_tensor::kernels::matmul::{GemmSpec, matmul};

use crate::backward::Bufs;
use crate::op::Op;
use crate::val::{Val, ValId};
use crate::{Graph, ParamId};

impl<'t> Graph<'t> {
    /// `x[N, in] w^T + b` with `w` stored `[out, in]` (PyTorch's convention) and optional
    /// bias `b[out]`. Returns `[N, out]`. A tied LM head is `linear(x, wte, None)`.
    ///
    /// # Panics
    /// If `w` is not 2-D with `in` columns, or `b` does not have `out` elements.
    pub fn linear(&mut self, x: Val<'t>, w: ParamId, b: Option<ParamId>) -> Val<'t> {
        let (n, k) = self.shape(x);
        let entry = self.layout.entry(w);
        let &[m, k2] = entry.shape.as_slice() else {
            panic!(
                "linear: weight `{}` is {:?}, not 2-D",
                entry.name, entry.shape
            )
        };
        assert_eq!(
            k, k2,
            "linear: input has {k} features, weight `{}` expects {k2}",
            entry.name
        );
        let (wv, bv) = (self.param(w), b.map(|p| self.param(p)));
        if let Some(bv) = bv {
            assert_eq!(
                bv.len(),
                m,
                "linear: bias has {} elements, want {m}",
                bv.len()
            );
        }
        let out = self.tape.alloc_val(n, m, true, false);
        let xr = self.tape.info(x.id).range();
        let (before, y) = self.tape.inputs_and_out(out);
        let spec = GemmSpec::nt(n, k, m);
        match bv {
            Some(bv) => {
                for row in y.chunks_exact_mut(m) {
                    row.copy_from_slice(bv);
                }
                matmul(&spec.accumulate(), &before[xr], wv, y);
            }
            None => matmul(&spec, &before[xr], wv, y),
        }
        self.tape.ops.push(Op::Linear { x: x.id, w, b, out });
        Val::new(out)
    }
}

pub(crate) fn backward(b: &mut Bufs, x: ValId, w: ParamId, bias: Option<ParamId>, out: ValId) {
    let (n, k) = b.shape(x);
    let m = b.layout.entry(w).shape[0];
    let xv = b.value(x);
    let wr = b.prange(w);
    let wv = &b.params[wr.clone()];
    let (dy, dx) = b.grads.dy_dx(out, x);
    // dx[N, k] (+)= dy[N, m] w[m, k]
    if let Some(dx) = dx {
        matmul(&dx.gemm(GemmSpec::nn(n, m, k)), dy, wv, dx.buf);
    }
    // dw[m, k] += dy[N, m]^T x[N, k]
    matmul(
        &GemmSpec::tn(m, n, k).accumulate(),
        dy,
        xv,
        &mut b.pgrads[wr],
    );
    if let Some(p) = bias {
        bias_backward(&mut b.pgrads[b.layout.entry(p).range()], dy);
    }
}
