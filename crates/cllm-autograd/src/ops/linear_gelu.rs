//! A linear layer followed by GELU, fused: `out = gelu(x w^T + b)`, the GPT MLP's first half.
//!
//! Recorded as `gelu(linear(x, w, b))` would be, the pre-activation is a value on the tape
//! that only the GELU reads, and the GELU's backward evaluates the sigmoid inside it a second
//! time. Fused, the pre-activation becomes the output in place and what the tape saves instead
//! is GELU's derivative at it, computed beside the forward value from the same sigmoid. The
//! backward is then one multiplication per element before the linear layer's GEMMs. The tape
//! holds as many floats as before (the derivatives in `aux` where the pre-activation was), and
//! every value and gradient is bit for bit what the unfused pair gives (tested).

use std::ops::Range;

use cllm_tensor::kernels::elementwise::mul_in_place;
use cllm_tensor::kernels::gelu::{gelu_forward_in_place, gelu_forward_in_place_saving_grad};

use crate::backward::Bufs;
use crate::op::Op;
use crate::ops::linear;
use crate::val::{Val, ValId};
use crate::{Graph, ParamId};

impl<'t> Graph<'t> {
    /// `gelu(x w^T + b)`: [`linear`](Graph::linear) then [`gelu`](Graph::gelu) as one op, for
    /// a linear layer whose output nothing but the GELU reads. The same values and gradients,
    /// bit for bit; the backward pass skips GELU's second sigmoid (see the module docs). In a
    /// graph recorded forward only ([`Tape::graph_forward_only`](crate::Tape::graph_forward_only))
    /// the derivative is neither computed nor saved.
    ///
    /// # Panics
    /// As [`linear`](Graph::linear).
    pub fn linear_gelu(&mut self, x: Val<'t>, w: ParamId, b: Option<ParamId>) -> Val<'t> {
        let out = self.record_linear(x, w, b);
        let grad = if self.for_backward {
            let grad = self.tape.alloc_aux(self.tape.info(out).len());
            let (_, y, saved) = self.tape.inputs_out_aux(out, grad.clone());
            gelu_forward_in_place_saving_grad(y, saved);
            grad
        } else {
            // Nothing will read the derivative (see `Tape::graph_forward_only`).
            gelu_forward_in_place(self.tape.inputs_and_out(out).1);
            0..0
        };
        self.tape.ops.push(Op::LinearGelu {
            x: x.id,
            w,
            b,
            grad,
            out,
        });
        Val::new(out)
    }
}

pub(crate) fn backward(
    b: &mut Bufs,
    x: ValId,
    w: ParamId,
    bias: Option<ParamId>,
    grad: Range<usize>,
    out: ValId,
) {
    let (n, k) = b.shape(x);
    let xv = b.value(x);
    let (wr, br) = (b.prange(w), bias.map(|p| b.prange(p)));
    let (dy, dx) = b.grads.dy_mut_dx(out, x);
    // The pre-activation's gradient, gelu'(pre) * dy: what GELU's backward would overwrite
    // the pre-activation's gradient with. Computed over dy, which nothing reads after this
    // op: in memory the backward has just written, not in another buffer.
    mul_in_place(dy, &b.aux[grad]);
    let dpre = &*dy;
    let grads = linear::Grads {
        dx,
        pgrads: b.pgrads,
        wr,
        br,
    };
    linear::gemms(dpre, xv, b.params, grads, n, k);
}

#[cfg(test)]
mod tests {
    use crate::{ParamLayout, Tape};

    /// Values, the input's gradient and the parameters' gradients of `linear_gelu` are those of
    /// `gelu(linear(..))` bit for bit, with and without bias, where the input's gradient is
    /// written first by this op and where something else wrote it before.
    #[test]
    fn equals_linear_then_gelu_bit_for_bit() {
        let (n, k, m) = (37, 24, 96);
        let mut layout = ParamLayout::new();
        let (w, b) = (layout.push("w", &[m, k]), layout.push("b", &[m]));
        let wave = |i: usize, f: f32| ((i as f32 * f).sin() * 1.7).clamp(-3.0, 3.0);
        let params: Vec<f32> = (0..layout.len()).map(|i| wave(i, 0.37) * 0.3).collect();
        let x: Vec<f32> = (0..n * k).map(|i| wave(i, 0.71)).collect();
        let r: Vec<f32> = (0..n * m).map(|i| wave(i, 1.13)).collect();
        for bias in [None, Some(b)] {
            for reuse_x in [false, true] {
                let run = |fused: bool| {
                    let mut tape = Tape::new();
                    let mut pgrads = layout.zeros();
                    let mut g = tape.graph(&params, &layout);
                    let xv = g.input_with_grad(&x, n, k);
                    let rv = g.input(&r, n, m);
                    let y = if fused {
                        g.linear_gelu(xv, w, bias)
                    } else {
                        let pre = g.linear(xv, w, bias);
                        g.gelu(pre)
                    };
                    let mut loss = g.mul(y, rv);
                    if reuse_x {
                        // x also feeds the loss directly: its gradient gets two writes.
                        let xx = g.mul(xv, xv);
                        let s = g.sum(xx);
                        let l = g.sum(loss);
                        loss = g.add(l, s);
                    } else {
                        loss = g.sum(loss);
                    }
                    let value = g.value(y).to_vec();
                    g.backward(loss, &mut pgrads);
                    (value, g.grad(xv).to_vec(), pgrads)
                };
                let (fused, plain) = (run(true), run(false));
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                let what = format!("bias {}, x reused {reuse_x}", bias.is_some());
                assert_eq!(bits(&fused.0), bits(&plain.0), "values, {what}");
                assert_eq!(bits(&fused.1), bits(&plain.1), "input gradient, {what}");
                assert_eq!(
                    bits(&fused.2),
                    bits(&plain.2),
                    "parameter gradients, {what}"
                );
            }
        }
    }

    /// Recorded forward only: the same values, bit for bit, and a tape without the derivative.
    #[test]
    fn forward_only_gives_the_same_values_and_saves_no_derivative() {
        let (n, k, m) = (37, 24, 96);
        let mut layout = ParamLayout::new();
        let (w, b) = (layout.push("w", &[m, k]), layout.push("b", &[m]));
        let params: Vec<f32> = (0..layout.len()).map(|i| (i as f32 * 0.37).sin()).collect();
        let x: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.71).cos()).collect();
        let record = |tape: &mut Tape, for_backward: bool| {
            let mut g = if for_backward {
                tape.graph(&params, &layout)
            } else {
                tape.graph_forward_only(&params, &layout)
            };
            let xv = g.input(&x, n, k);
            let y = g.linear_gelu(xv, w, Some(b));
            g.value(y).iter().map(|f| f.to_bits()).collect::<Vec<_>>()
        };
        let (mut train, mut eval) = (Tape::new(), Tape::new());
        assert_eq!(record(&mut train, true), record(&mut eval, false));
        let saved = n * m * std::mem::size_of::<f32>();
        assert_eq!(
            eval.stats().len_bytes + saved,
            train.stats().len_bytes,
            "the forward-only tape lacks exactly the derivative"
        );
    }

    #[test]
    #[should_panic(expected = "forward only")]
    fn backward_of_a_forward_only_graph_panics() {
        let mut layout = ParamLayout::new();
        let w = layout.push("w", &[2, 2]);
        let params = vec![0.5; layout.len()];
        let mut tape = Tape::new();
        let mut g = tape.graph_forward_only(&params, &layout);
        let x = g.input(&[1.0, 2.0], 1, 2);
        let y = g.linear_gelu(x, w, None);
        let loss = g.sum(y);
        g.backward(loss, &mut layout.zeros());
    }
}
