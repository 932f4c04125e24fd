//! [`GptConfig`]: the shape of a GPT.

use serde::{Deserialize, Serialize};

/// The architecture of a GPT-2 style decoder: token + learned position embeddings, `num_layers`
/// pre-LayerNorm blocks (causal multi-head self-attention, then a 4x MLP with GELU), a final
/// LayerNorm, and an LM head tied to the token embedding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GptConfig {
    /// Vocabulary size V.
    pub vocab_size: usize,
    /// Context length T (the position table's size).
    pub seq_len: usize,
    /// Model width C.
    pub embed_dim: usize,
    /// Number of blocks L.
    pub num_layers: usize,
    /// Attention heads NH; must divide C.
    pub num_heads: usize,
    /// Biases in linear layers and LayerNorms (off, as nanoGPT's char recipe).
    pub bias: bool,
}

impl GptConfig {
    /// Checks that the shape is usable; the error is one line naming the flag to change.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("--vocab-size", self.vocab_size),
            ("--seq-len", self.seq_len),
            ("--embed-dim", self.embed_dim),
            ("--num-layers", self.num_layers),
            ("--num-heads", self.num_heads),
        ];
        for (flag, v) in positive {
            if v == 0 {
                return Err(format!("{flag} must be positive"));
            }
        }
        if !self.embed_dim.is_multiple_of(self.num_heads) {
            return Err(format!(
                "--embed-dim {} is not a multiple of --num-heads {}",
                self.embed_dim, self.num_heads
            ));
        }
        if self.checked_num_params().is_none() {
            return Err(format!(
                "a model of --embed-dim {} and --num-layers {} has more parameters than this \
                 machine can address",
                self.embed_dim, self.num_layers
            ));
        }
        Ok(())
    }

    /// Head size `C / NH`.
    pub fn head_size(&self) -> usize {
        self.embed_dim / self.num_heads
    }

    /// Trainable parameters (the tied LM head counted once).
    ///
    /// # Panics
    /// If their bytes overflow `isize`, which [`GptConfig::validate`] refuses.
    pub fn num_params(&self) -> usize {
        self.checked_num_params()
            .expect("a validated shape's parameter count fits in memory")
    }

    /// Parameter tensors (weights and biases, as a checkpoint stores them): the two
    /// embeddings, six weight matrices or vectors per block, the final LayerNorm's, and
    /// a bias beside each of the latter if `bias`.
    pub fn num_tensors(&self) -> usize {
        let pair = 1 + usize::from(self.bias);
        2 + self.num_layers * 6 * pair + pair
    }

    /// [`GptConfig::num_params`], or `None` if their bytes as `f32` would not fit in `isize`.
    pub fn checked_num_params(&self) -> Option<usize> {
        let dims = [
            self.vocab_size,
            self.seq_len,
            self.embed_dim,
            self.num_layers,
        ];
        // A dimension over 2^61 alone takes more than 2^63 bytes (every other one is >= 1);
        // at or under it, the sums below fit in u128 but for the layers' product.
        if dims.iter().any(|&d| d > 1 << 61) {
            return None;
        }
        let [v, t, c, l] = dims.map(|d| d as u128);
        let b = u128::from(self.bias);
        // Per block: two LayerNorms, the attention's QKV (3 C^2) and output (C^2) projections,
        // the MLP's up and down ones (4 C^2 each), and their biases if any.
        let block = 2 * c * (1 + b) + 12 * c * c + 9 * c * b;
        let n = (v * c + t * c + c * (1 + b)).checked_add(l.checked_mul(block)?)?;
        (n.checked_mul(4)? <= isize::MAX as u128).then_some(n as usize)
    }

    /// Floating-point operations of one training step over `tokens` tokens (forward and
    /// backward: 6 per parameter per token for the matrices, plus attention's `QK^T` and `PV`
    /// over the full `T x T` score matrices, as computed).
    pub fn train_flops(&self, tokens: usize) -> f64 {
        let (c, l, t, v) = (
            self.embed_dim as f64,
            self.num_layers as f64,
            self.seq_len as f64,
            self.vocab_size as f64,
        );
        let matmul_params = l * 12.0 * c * c + v * c;
        let attention = l * 2.0 * 2.0 * t * c; // per token: scores + mix, 2 flops per MAC
        3.0 * (2.0 * matmul_params + attention) * tokens as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(embed_dim: usize, num_layers: usize) -> GptConfig {
        GptConfig {
            vocab_size: 65,
            seq_len: 64,
            embed_dim,
            num_layers,
            num_heads: 1,
            bias: true,
        }
    }

    #[test]
    fn shapes_whose_parameters_cannot_be_addressed_are_refused() {
        // 65 * 8 + 64 * 8 + 8 * 2 + 3 * (2 * 8 * 2 + 12 * 64 + 9 * 8), counted by hand.
        assert_eq!(shape(8, 3).num_params(), 3_664);
        assert_eq!(shape(8, 3).num_tensors(), 2 + 3 * 12 + 2);
        assert!(shape(8, 3).validate().is_ok());
        for cfg in [
            shape(1 << 31, 1 << 31),
            shape(1 << 62, 1),
            shape(usize::MAX, usize::MAX),
        ] {
            assert_eq!(cfg.checked_num_params(), None, "{cfg:?}");
            let err = cfg.validate().unwrap_err();
            assert!(err.contains("more parameters than"), "{err}");
        }
    }
}
