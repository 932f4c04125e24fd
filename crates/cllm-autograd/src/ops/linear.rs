//! Linear layer: `out[N, out] = x[N, in] w[out, in]^T + b[out]`.

use std::ops::Range;

use cllm_tensor::kernels::elementwise::bias_backward;
use cllm_tensor::kernels::matmul::{GemmSpec, matmul};

use crate::backward::{Bufs, GradOut};
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
        let out = self.record_linear(x, w, b);
        self.tape.ops.push(Op::Linear { x: x.id, w, b, out });
        Val::new(out)
    }

    /// Checks the shapes of `linear(x, w, b)`, reserves its `[N, out]` output and computes it
    /// there; the caller records the op.
    pub(crate) fn record_linear(&mut self, x: Val<'t>, w: ParamId, b: Option<ParamId>) -> ValId {
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
        out
    }
}

pub(crate) fn backward(b: &mut Bufs, x: ValId, w: ParamId, bias: Option<ParamId>, out: ValId) {
    let (n, k) = b.shape(x);
    let xv = b.value(x);
    let (wr, br) = (b.prange(w), bias.map(|p| b.prange(p)));
    let (dy, dx) = b.grads.dy_dx(out, x);
    let grads = Grads {
        dx,
        pgrads: b.pgrads,
        wr,
        br,
    };
    gemms(dy, xv, b.params, grads, n, k);
}

/// Where the linear layer's backward writes: its input's gradient (if it needs one), and the
/// weight's and bias's ranges in the parameter gradients.
pub(crate) struct Grads<'a, 'b> {
    pub(crate) dx: Option<GradOut<'a>>,
    pub(crate) pgrads: &'b mut [f32],
    pub(crate) wr: Range<usize>,
    pub(crate) br: Option<Range<usize>>,
}

/// The linear layer's backward from its output gradient `dy[N, m]`, for the input
/// `xv[N, k]`: `dx (+)= dy w`, `dw += dy^T x`, `db += dy`'s column sums.
pub(crate) fn gemms(dy: &[f32], xv: &[f32], params: &[f32], g: Grads, n: usize, k: usize) {
    let wv = &params[g.wr.clone()];
    let m = wv.len() / k;
    // dx[N, k] (+)= dy[N, m] w[m, k]
    if let Some(dx) = g.dx {
        matmul(&dx.gemm(GemmSpec::nn(n, m, k)), dy, wv, dx.buf);
    }
    // dw[m, k] += dy[N, m]^T x[N, k]
    matmul(
        &GemmSpec::tn(m, n, k).accumulate(),
        dy,
        xv,
        &mut g.pgrads[g.wr],
    );
    if let Some(br) = g.br {
        bias_backward(&mut g.pgrads[br], dy);
    }
}
