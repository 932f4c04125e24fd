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
        Ok(())
    }

    /// Head size `C / NH`.
    pub fn head_size(&self) -> usize {
        self.embed_dim / self.num_heads
    }

    /// Trainable parameters (the tied LM head counted once).
    pub fn num_params(&self) -> usize {
        let (c, l) = (self.embed_dim, self.num_layers);
        let b = usize::from(self.bias);
        let block = 2 * c * (1 + b)
            + 3 * c * c
            + 3 * c * b
            + c * c
            + c * b
            + 4 * c * c
            + 4 * c * b
            + 4 * c * c
            + c * b;
        self.vocab_size * c + self.seq_len * c + l * block + c * (1 + b)
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
