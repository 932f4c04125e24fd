//! `cllm-model`: a GPT-2 style decoder built on `cllm-autograd`, and what training and using it
//! needs: presets, AdamW (shardable by flat range), the nanoGPT learning-rate schedule,
//! gradient clipping, sampling, KV-cached generation, and crash-safe checkpoints.
//!
//! ```
//! use cllm_autograd::Tape;
//! use cllm_model::{Gpt, GptConfig};
//!
//! let cfg = GptConfig { vocab_size: 10, seq_len: 8, embed_dim: 16, num_layers: 1, num_heads: 2, bias: false };
//! let gpt = Gpt::new(cfg).unwrap();
//! let weights = gpt.params.init(&cfg, 0);
//! let mut grads = gpt.params.layout.zeros();
//! let mut tape = Tape::new();
//! let inputs = [1, 2, 3, 4, 5, 6, 7, 8];
//! let targets = [2, 3, 4, 5, 6, 7, 8, 9];
//! let loss = gpt.loss_and_grad(&mut tape, &weights, &inputs, &targets, 8, 1.0, &mut grads);
//! assert!((loss - (10f32).ln()).abs() < 0.1); // an untrained model is close to uniform
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod adamw;
pub mod checkpoint;
mod config;
mod generate;
mod gpt;
mod nanogpt_init;
mod params;
mod preset;
mod sample;
pub mod schedule;

pub use adamw::{AdamW, StepScalars};
pub use config::GptConfig;
pub use generate::Generator;
pub use gpt::{DropoutKey, Gpt};
pub use nanogpt_init::nanogpt_init_draws;
pub use params::{BlockParams, GptParams};
pub use preset::{PRESETS, Preset, TrainHyper, preset, preset_names};
pub use sample::{Sampler, SamplingConfig};
