//! The command-line options of training: preset, model and recipe overrides, run control.
//! Every override is optional so that "given on the command line" can be told from "taken
//! from the preset" (which matters when resuming).

use std::path::PathBuf;

use clap::Args;

use crate::batches::RandomStream;
use crate::config::MatmulPrecision;

/// Model shape, recipe and run control.
#[derive(Args, Clone, Debug, Default)]
pub struct TrainArgs {
    /// Preset: tiny, small, medium, nanogpt-cpu, nanogpt-baby (default: tiny). See --list-presets.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// List the presets with their shapes and recipes, and exit.
    #[arg(long)]
    pub list_presets: bool,

    /// Model width C.
    #[arg(long, value_name = "C")]
    pub embed_dim: Option<usize>,
    /// Number of transformer blocks.
    #[arg(long, value_name = "L")]
    pub num_layers: Option<usize>,
    /// Attention heads (must divide --embed-dim).
    #[arg(long, value_name = "NH")]
    pub num_heads: Option<usize>,
    /// Context length T (tokens per sequence).
    #[arg(long, value_name = "T")]
    pub seq_len: Option<usize>,
    /// Sequences per step (the global batch, split across worker threads).
    #[arg(long, value_name = "B")]
    pub batch_size: Option<usize>,
    /// Biases in linear layers and LayerNorms (off in every preset).
    #[arg(long)]
    pub bias: bool,

    /// Peak learning rate.
    #[arg(long, value_name = "LR")]
    pub learning_rate: Option<f32>,
    /// Final learning rate of the cosine decay (default: learning rate / 10).
    #[arg(long, value_name = "LR")]
    pub min_lr: Option<f32>,
    /// Linear warm-up steps.
    #[arg(long, value_name = "N")]
    pub warmup_steps: Option<u64>,
    /// AdamW weight decay (matrices only).
    #[arg(long, value_name = "WD")]
    pub weight_decay: Option<f32>,
    /// Clip the global gradient norm to this (0 disables).
    #[arg(long, value_name = "NORM")]
    pub grad_clip: Option<f32>,
    /// Dropout rate in training steps, at nanoGPT's places: the embeddings, the attention
    /// probabilities, and each attention and MLP output before it joins the residual stream.
    /// Evaluation and generation never drop. Masks depend on the seed, the step and a
    /// sequence's place in the batch, not on --threads. Default: the preset's (0.2 for
    /// nanogpt-baby, else 0).
    #[arg(long, value_name = "P")]
    pub dropout: Option<f32>,

    /// Optimiser steps to run (the cosine decay ends here too).
    #[arg(long, value_name = "N", conflicts_with = "epochs")]
    pub max_steps: Option<u64>,
    /// Train for this many passes over the training tokens instead of --max-steps.
    #[arg(long, value_name = "E")]
    pub epochs: Option<f64>,
    /// Evaluate every N steps (and at the start and end).
    #[arg(long, value_name = "N")]
    pub eval_interval: Option<u64>,
    /// Batches per split per evaluation (with --rng cllm the same batches every time; with
    /// nanogpt fresh ones, as nanoGPT).
    #[arg(long, value_name = "N")]
    pub eval_iters: Option<u64>,
    /// Seed for initialisation and batch sampling (default 1337).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// The random stream the seed drives (default: nanogpt for the nanogpt-cpu preset, cllm
    /// otherwise). With nanogpt a run draws nanoGPT's initial weights and batches for the seed
    /// and compares with nanoGPT's run seed by seed (for recipes without dropout, which cllm
    /// does not have and nanoGPT draws from the same stream).
    #[arg(long, value_name = "STREAM")]
    pub rng: Option<RandomStream>,
    /// Precision of the matrix products: `f32` (default), or `bf16`: operands rounded to
    /// bfloat16 and products summed in f32, as PyTorch's bf16 autocast, on CPUs with AVX-512
    /// BF16 (AMD Zen 4 and later; Intel Cooper Lake, Sapphire Rapids and later). Weights,
    /// gradients, optimizer state and every other kernel stay f32. Refused on other CPUs.
    /// Faster only where the CPU's bf16 dot product outpaces its f32 FMAs: nanoGPT-cpu steps
    /// 1.5x faster on AMD Zen 4, 1.45x slower on an Intel Xeon of the Sapphire Rapids class;
    /// the two are measured at start-up, with a warning where bf16 cannot pay.
    #[arg(long, value_name = "P")]
    pub matmul_precision: Option<MatmulPrecision>,

    /// Write a checkpoint every N steps (0: only at the end and on Ctrl-C or SIGTERM). Default:
    /// every evaluation.
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<u64>,
    /// Keep the newest N checkpoints (default 3).
    #[arg(long, value_name = "N")]
    pub keep_checkpoints: Option<usize>,
    /// Also keep the checkpoint of the lowest validation loss so far in
    /// RUN_DIR/checkpoints/best/, written after each evaluation that improves on it (as
    /// nanoGPT's always_save_checkpoint=False). cllm-generate and --resume take it by path.
    #[arg(long)]
    pub keep_best: bool,
    /// Continue a run: a run directory (its newest checkpoint) or a checkpoint directory. The
    /// config comes from the checkpoint; --max-steps, --checkpoint-every, --keep-checkpoints
    /// and --keep-best may be changed, other model and recipe flags may not.
    #[arg(long, value_name = "RUN_DIR|CKPT")]
    pub resume: Option<PathBuf>,
    /// With --resume: evaluate the checkpoint on --eval-iters batches of each split (default:
    /// the run's own setting; the batches the run's own evaluation at that step would use),
    /// print the losses as JSON, and exit without training.
    #[arg(long, requires = "resume")]
    pub eval_only: bool,
    /// Print a progress line every N steps when stderr is not a terminal (default: 10 lines per
    /// run, and one at least every minute while steps complete).
    #[arg(long, value_name = "N")]
    pub log_every: Option<u64>,
    /// Worker threads (default: the number of cores). Node Zero, the thread that prepares data
    /// and coordinates, comes in addition.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Workers that compute forward and backward (default: the smallest of --threads, the
    /// number of cores and --batch-size; at most --threads and --batch-size). Splitting a step over more compute threads than cores
    /// only adds time-slicing and shrinks each worker's matrices; the other workers still take
    /// part in the gradient reduction and the optimizer, and sleep while the others compute.
    #[arg(long, value_name = "N")]
    pub compute_workers: Option<usize>,
    /// Gradient accumulation: each computing worker runs its share of the batch through forward
    /// and backward in passes of at most M sequences, adding their gradients, so the activations
    /// take the memory of M sequences per worker whatever --batch-size is. The same global batch
    /// and recipe; losses agree with one pass to float rounding. Default: the whole share in one
    /// pass (fastest)
    #[arg(long, value_name = "M")]
    pub micro_batch: Option<usize>,
    /// Pin worker k to the (k mod CPUs)-th CPU of an order: built with the `hwloc` feature, one
    /// CPU per core first, cores in hardware-topology order; otherwise the OS's CPU order. The
    /// start-up line says which.
    #[arg(long)]
    pub pin: bool,
    /// Make worker W panic at step S (testing the fault path), as `W:S`.
    #[arg(long, value_name = "W:S", hide = true, value_parser = parse_injection)]
    pub inject_panic: Option<(usize, u64)>,
    /// Behave as if Ctrl-C arrived after N steps of this invocation (for testing checkpoints
    /// and resume).
    #[arg(long, value_name = "N", hide = true)]
    pub stop_after_steps: Option<u64>,
    /// Behave as if Ctrl-C arrived during the evaluation after step S, once its first batch is
    /// done (for testing how an evaluation stops).
    #[arg(long, value_name = "S", hide = true)]
    pub stop_in_eval: Option<u64>,
}

fn parse_injection(s: &str) -> Result<(usize, u64), String> {
    let (w, st) = s.split_once(':').ok_or("expected WORKER:STEP")?;
    Ok((
        w.parse().map_err(|_| "bad worker")?,
        st.parse().map_err(|_| "bad step")?,
    ))
}
