//! Named presets: a model shape plus the training recipe that goes with it.

use serde::{Deserialize, Serialize};

use crate::GptConfig;

/// Optimiser and schedule settings of a run (AdamW with warm-up then cosine decay).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainHyper {
    /// Sequences per (global) batch.
    pub batch_size: usize,
    /// Peak learning rate.
    pub learning_rate: f32,
    /// Final learning rate of the cosine decay (nanoGPT: lr / 10).
    pub min_lr: f32,
    /// Linear warm-up steps.
    pub warmup_steps: u64,
    /// Step at which the cosine decay reaches `min_lr`.
    pub lr_decay_steps: u64,
    /// Optimiser steps to run.
    pub max_steps: u64,
    /// AdamW beta1.
    pub beta1: f32,
    /// AdamW beta2.
    pub beta2: f32,
    /// AdamW epsilon.
    pub eps: f32,
    /// Decoupled weight decay, applied to matrices (2-D parameters) only.
    pub weight_decay: f32,
    /// Global gradient-norm clip (0 disables).
    pub grad_clip: f32,
    /// Dropout rate of training passes ([`crate::Gpt::dropout`]; 0 for runs written before it
    /// existed).
    #[serde(default)]
    pub dropout: f32,
    /// Steps between evaluations.
    pub eval_interval: u64,
    /// Batches per evaluation.
    pub eval_iters: u64,
}

/// A named preset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Preset {
    /// Its name on the command line.
    pub name: &'static str,
    /// One line about it.
    pub about: &'static str,
    /// Model shape (the vocabulary size is replaced by the tokenizer's).
    pub model: GptConfig,
    /// Training recipe.
    pub train: TrainHyper,
}

const fn model(seq_len: usize, embed_dim: usize, num_layers: usize, num_heads: usize) -> GptConfig {
    GptConfig {
        vocab_size: 0,
        seq_len,
        embed_dim,
        num_layers,
        num_heads,
        bias: false,
    }
}

/// nanoGPT's `train_shakespeare_char` recipe (lr 1e-3 -> 1e-4, warm-up 100, beta2 0.99,
/// weight decay 0.1, clip 1.0), with batch, decay and step counts given per preset.
const fn recipe(
    batch_size: usize,
    max_steps: u64,
    eval_interval: u64,
    eval_iters: u64,
) -> TrainHyper {
    TrainHyper {
        batch_size,
        learning_rate: 1e-3,
        min_lr: 1e-4,
        warmup_steps: 100,
        lr_decay_steps: max_steps,
        max_steps,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.1,
        grad_clip: 1.0,
        dropout: 0.0,
        eval_interval,
        eval_iters,
    }
}

/// Every preset.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "tiny",
        about: "3 layers, 4 heads, 32 wide, context 32, batch 4 (~45K parameters): a demo in seconds",
        model: model(32, 32, 3, 4),
        train: recipe(4, 2000, 500, 20),
    },
    Preset {
        name: "small",
        about: "2 layers, 4 heads, 128 wide, context 64, batch 8 (~420K parameters at a char vocabulary)",
        model: model(64, 128, 2, 4),
        train: recipe(8, 2000, 250, 20),
    },
    Preset {
        name: "medium",
        about: "4 layers, 8 heads, 256 wide, context 128, batch 16 (~3.2M parameters)",
        model: model(128, 256, 4, 8),
        train: recipe(16, 5000, 250, 20),
    },
    Preset {
        name: "nanogpt-cpu",
        about: "nanoGPT's shakespeare_char CPU config: 4 layers, 4 heads, 128 wide, context 64, batch 12, 2000 steps",
        model: model(64, 128, 4, 4),
        train: recipe(12, 2000, 250, 20),
    },
    Preset {
        name: "nanogpt-baby",
        about: "nanoGPT's shakespeare_char 'baby GPT': 6 layers, 6 heads, 384 wide, context 256, batch 64, dropout 0.2, 5000 steps",
        model: model(256, 384, 6, 6),
        train: TrainHyper {
            dropout: 0.2,
            ..recipe(64, 5000, 250, 200)
        },
    },
];

/// The preset called `name`.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// Comma-separated preset names.
pub fn preset_names() -> String {
    PRESETS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_sizes() {
        let with_vocab = |name: &str, v| GptConfig {
            vocab_size: v,
            ..preset(name).unwrap().model
        };
        // The sizes the presets advertise.
        let tiny = with_vocab("tiny", 100).num_params();
        assert!((40_000..50_000).contains(&tiny), "tiny {tiny}");
        let small = with_vocab("small", 160).num_params();
        assert!((400_000..440_000).contains(&small), "small {small}");
        // nanoGPT prints "0.80M" for this config: 795,904 without the position table.
        let cpu = with_vocab("nanogpt-cpu", 65);
        assert_eq!(cpu.num_params() - cpu.seq_len * cpu.embed_dim, 795_904);
        for p in PRESETS {
            with_vocab(p.name, 65).validate().unwrap();
        }
    }
}
