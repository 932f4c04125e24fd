//! Token + position embedding: `out[i] = wte[tokens[i]] + wpe[i % T]`.

use std::ops::Range;

use cllm_tensor::kernels::embedding::{embedding_backward, embedding_forward};

use crate::backward::Bufs;
use crate::op::Op;
use crate::val::{Val, ValId};
use crate::{Graph, ParamId};

impl<'t> Graph<'t> {
    /// Looks up `tokens[B*T]` in `wte[V, C]` and adds `wpe[i % t]` (positions `0..t`, one
    /// sequence after another) when given. Returns `[B*T, C]`.
    ///
    /// # Panics
    /// If `tokens.len()` is not a multiple of `t`, `t` exceeds `wpe`'s rows, or a token id is
    /// not below `V`.
    pub fn embedding(
        &mut self,
        tokens: &[u32],
        wte: ParamId,
        wpe: Option<ParamId>,
        t: usize,
    ) -> Val<'t> {
        let c = *self.layout.entry(wte).shape.last().expect("wte is [V, C]");
        assert!(
            t > 0 && tokens.len().is_multiple_of(t),
            "embedding: {} tokens are not whole sequences of {t}",
            tokens.len()
        );
        if let Some(p) = wpe {
            let rows = self.layout.entry(p).len / c;
            assert!(
                t <= rows,
                "embedding: sequence length {t} exceeds the {rows} positions of wpe"
            );
        }
        let (wte_v, wpe_v) = (self.param(wte), wpe.map(|p| self.param(p)));
        let out = self.tape.alloc_val(tokens.len(), c, true, false);
        let ids = self.tape.push_ids(tokens);
        let (_, y) = self.tape.inputs_and_out(out);
        embedding_forward(y, tokens, wte_v, wpe_v, t);
        self.tape.ops.push(Op::Embedding {
            tokens: ids,
            wte,
            wpe,
            t,
            out,
        });
        Val::new(out)
    }
}

pub(crate) fn backward(
    b: &mut Bufs,
    tokens: Range<usize>,
    wte: ParamId,
    wpe: Option<ParamId>,
    t: usize,
    out: ValId,
) {
    let dout = b.grads.dy(out);
    let ids = &b.ids[tokens];
    let wte_r = b.prange(wte);
    match wpe {
        Some(p) => {
            let wpe_r = b.prange(p);
            let [dwte, dwpe] = b
                .pgrads
                .get_disjoint_mut([wte_r, wpe_r])
                .expect("distinct parameters");
            embedding_backward(dwte, Some(dwpe), dout, ids, t);
        }
        None => embedding_backward(&mut b.pgrads[wte_r], None, dout, ids, t),
    }
}
