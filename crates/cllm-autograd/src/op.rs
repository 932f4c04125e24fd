//! [`Op`]: one recorded operation, naming its inputs and outputs by index; and [`OpKind`], the
//! list of every op variant, which the gradient-check test iterates so that an op without a
//! check cannot be added unnoticed.

use std::ops::Range;

use cllm_tensor::kernels::attention::AttentionShape;
use cllm_tensor::kernels::dropout::BatchDropout;

use crate::ParamId;
use crate::val::ValId;

/// A recorded operation. Fields are exactly what its backward pass needs: value ids, parameter
/// ids, and ranges into the tape's side buffers (`aux` for saved floats, `ids` for integers).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Op {
    /// `out[i] = wte[tokens[i]] + wpe[i % t]`.
    Embedding {
        tokens: Range<usize>,
        wte: ParamId,
        wpe: Option<ParamId>,
        t: usize,
        out: ValId,
    },
    /// `out = x w^T + b` with `w` stored `[out_features, in_features]`.
    Linear {
        x: ValId,
        w: ParamId,
        b: Option<ParamId>,
        out: ValId,
    },
    /// `out = a b`.
    MatMul { a: ValId, b: ValId, out: ValId },
    /// `out = a + b`.
    Add { a: ValId, b: ValId, out: ValId },
    /// `out = a * b`, element-wise.
    Mul { a: ValId, b: ValId, out: ValId },
    /// `out = s * x`.
    Scale { x: ValId, s: f32, out: ValId },
    /// `out = x * mask`, the mask (dropped elements 0, kept ones `1 / (1 - rate)`) recomputed
    /// by backward from `dropout`, over sequences of `per_seq` elements.
    Dropout {
        x: ValId,
        dropout: BatchDropout,
        per_seq: usize,
        out: ValId,
    },
    /// `out[1, 1] = sum of all elements of x`.
    Sum { x: ValId, out: ValId },
    /// Row-wise layer norm; `stats` holds `mean[N]` then `rstd[N]` in `aux`.
    LayerNorm {
        x: ValId,
        w: ParamId,
        b: Option<ParamId>,
        stats: Range<usize>,
        out: ValId,
    },
    /// Tanh-form GELU.
    Gelu { x: ValId, out: ValId },
    /// `out = gelu(x w^T + b)`; `grad` holds GELU's derivative at the pre-activation `[N,
    /// out_features]` in `aux` (empty in a graph recorded forward only).
    LinearGelu {
        x: ValId,
        w: ParamId,
        b: Option<ParamId>,
        grad: Range<usize>,
        out: ValId,
    },
    /// Fused causal self-attention over `qkv[B*T, 3C]`; `probs` holds `[B, NH, T, T]` in `aux`
    /// (before `dropout`, if any, drops some of them).
    Attention {
        qkv: ValId,
        shape: AttentionShape,
        probs: Range<usize>,
        dropout: Option<BatchDropout>,
        out: ValId,
    },
    /// Mean softmax cross-entropy; `targets` in `ids`, `probs[N, V]` in `aux`; `out` is `[1, 1]`.
    CrossEntropy {
        logits: ValId,
        targets: Range<usize>,
        probs: Range<usize>,
        out: ValId,
    },
}

impl Op {
    /// The value this op writes.
    pub(crate) fn output(&self) -> ValId {
        match *self {
            Op::Embedding { out, .. }
            | Op::Linear { out, .. }
            | Op::MatMul { out, .. }
            | Op::Add { out, .. }
            | Op::Mul { out, .. }
            | Op::Scale { out, .. }
            | Op::Dropout { out, .. }
            | Op::Sum { out, .. }
            | Op::LayerNorm { out, .. }
            | Op::Gelu { out, .. }
            | Op::LinearGelu { out, .. }
            | Op::Attention { out, .. }
            | Op::CrossEntropy { out, .. } => out,
        }
    }

    /// The values this op reads (parameters are not values): its backward writes their
    /// gradients.
    pub(crate) fn inputs(&self) -> [Option<ValId>; 2] {
        match *self {
            Op::Embedding { .. } => [None, None],
            Op::Linear { x, .. }
            | Op::Scale { x, .. }
            | Op::Dropout { x, .. }
            | Op::Sum { x, .. }
            | Op::LayerNorm { x, .. }
            | Op::Gelu { x, .. }
            | Op::LinearGelu { x, .. } => [Some(x), None],
            Op::MatMul { a, b, .. } | Op::Add { a, b, .. } | Op::Mul { a, b, .. } => {
                [Some(a), Some(b)]
            }
            Op::Attention { qkv, .. } => [Some(qkv), None],
            Op::CrossEntropy { logits, .. } => [Some(logits), None],
        }
    }
}

macro_rules! op_kinds {
    ($($kind:ident),* $(,)?) => {
        /// The variants of the op enum, without their fields.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum OpKind {
            $(
                #[allow(missing_docs)]
                $kind,
            )*
        }

        impl OpKind {
            /// Every op kind. Tests iterate this list.
            pub const ALL: &'static [OpKind] = &[$(OpKind::$kind),*];
        }

        impl Op {
            /// This op's kind. The match is exhaustive: a new `Op` variant needs an `OpKind`.
            pub(crate) fn kind(&self) -> OpKind {
                match self {
                    $(Op::$kind { .. } => OpKind::$kind,)*
                }
            }
        }
    };
}

op_kinds!(
    Embedding,
    Linear,
    MatMul,
    Add,
    Mul,
    Scale,
    Dropout,
    Sum,
    LayerNorm,
    Gelu,
    LinearGelu,
    Attention,
    CrossEntropy
);
