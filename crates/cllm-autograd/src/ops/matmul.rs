//! Matrix product of two values: `out[m, n] = a[m, k] b[k, n]`.

use cllm_tensor::kernels::matmul::{GemmSpec, matmul};

use crate::Graph;
use crate::backward::Bufs;
use crate::op::Op;
use crate::val::{Val, ValId};

impl<'t> Graph<'t> {
    /// `a[m, k] b[k, n]`, returning `[m, n]`.
    ///
    /// # Panics
    /// If the inner dimensions differ.
    pub fn matmul(&mut self, a: Val<'t>, b: Val<'t>) -> Val<'t> {
        let ((m, k), (k2, n)) = (self.shape(a), self.shape(b));
        assert_eq!(k, k2, "matmul: [{m}, {k}] x [{k2}, {n}]");
        let needs = self.needs_grad(a.id) || self.needs_grad(b.id);
        let out = self.tape.alloc_val(m, n, needs, false);
        let (ra, rb) = (self.tape.info(a.id).range(), self.tape.info(b.id).range());
        let (before, y) = self.tape.inputs_and_out(out);
        matmul(&GemmSpec::nn(m, k, n), &before[ra], &before[rb], y);
        self.tape.ops.push(Op::MatMul {
            a: a.id,
            b: b.id,
            out,
        });
        Val::new(out)
    }
}

pub(crate) fn backward(bufs: &mut Bufs, a: ValId, b: ValId, out: ValId) {
    let ((m, k), (_, n)) = (bufs.shape(a), bufs.shape(b));
    let (av, bv) = (bufs.value(a), bufs.value(b));
    // da[m, k] (+)= dy[m, n] b[k, n]^T ; db[k, n] (+)= a[m, k]^T dy[m, n]; the first write to a
    // gradient overwrites it.
    let da_spec = GemmSpec::nt(m, n, k);
    let db_spec = GemmSpec::tn(k, m, n);
    if a == b {
        // Square matrix times itself: both contributions land in one gradient.
        let (dy, da) = bufs.grads.dy_dx(out, a);
        if let Some(da) = da {
            matmul(&da.gemm(da_spec), dy, bv, da.buf);
            matmul(&db_spec.accumulate(), av, dy, da.buf);
        }
        return;
    }
    let (dy, da, db) = bufs.grads.dy_da_db(out, a, b);
    if let Some(da) = da {
        matmul(&da.gemm(da_spec), dy, bv, da.buf);
    }
    if let Some(db) = db {
        matmul(&db.gemm(db_spec), av, dy, db.buf);
    }
}
