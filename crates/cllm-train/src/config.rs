//! [`RunConfig`]: everything that determines a run, resolved from a preset and the command
//! line, written to `RUN_DIR/config.json` and into every checkpoint.

use std::path::PathBuf;

use cllm_model::{GptConfig, TrainHyper, preset, preset_names};
use cllm_tensor::kernels::matmul::{Precision, peak, set_precision};
use serde::{Deserialize, Serialize};

use crate::batches::RandomStream;
use crate::data_args::DataArgs;
use crate::train_args::TrainArgs;

/// The default seed (nanoGPT's).
pub const DEFAULT_SEED: u64 = 1337;

/// The random stream a preset uses unless `--rng` says otherwise: `nanogpt-cpu` reproduces
/// nanoGPT's CPU recipe, its random stream included. (`nanogpt-baby` does not: nanoGPT's baby
/// GPT trains with dropout, whose masks PyTorch draws from that same stream and cllm from a
/// hash of its own.)
pub fn default_rng(preset: &str) -> RandomStream {
    if preset == "nanogpt-cpu" {
        RandomStream::Nanogpt
    } else {
        RandomStream::Cllm
    }
}

/// Precision of the matrix products: a run's choice of [`Precision`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MatmulPrecision {
    /// f32 operands and sums.
    #[default]
    F32,
    /// Operands rounded to bfloat16, products summed in f32 (AVX-512 BF16 CPUs).
    Bf16,
}

impl MatmulPrecision {
    /// The tensor crate's setting.
    pub fn precision(self) -> Precision {
        match self {
            MatmulPrecision::F32 => Precision::F32,
            MatmulPrecision::Bf16 => Precision::Bf16,
        }
    }

    /// Makes every matrix product of this process use this precision.
    ///
    /// # Errors
    /// If the CPU cannot compute at it: one line naming the flag and what is missing.
    pub fn apply(self) -> Result<(), String> {
        set_precision(self.precision())
            .map_err(|e| format!("--matmul-precision {}: {e}", self.precision()))
    }

    /// For bf16 on a CPU whose bf16 dot product is not faster than its f32 FMA (measured
    /// now, ~10 ms: [`peak::bf16_speedup`]), a one-line warning that bf16 products will
    /// likely make steps slower than f32 here; `None` otherwise.
    pub fn speed_warning(self) -> Option<String> {
        if self != MatmulPrecision::Bf16 {
            return None;
        }
        let ratio = peak::bf16_speedup()?;
        (ratio < BF16_WORTHWHILE).then(|| bf16_warning(ratio))
    }
}

/// The bf16-to-f32 peak ratio below which bf16 products are not expected to pay: the bf16
/// backend also converts every operand while packing, and where the ratio is 2.0 (AMD Zen 4) a
/// nanoGPT-cpu step gained 1.5x; where it was 0.47 (an Intel Xeon of the Sapphire Rapids
/// class) the step ran 1.45x slower (docs/benchmarks.md, machine C).
const BF16_WORTHWHILE: f64 = 1.2;

/// The warning [`MatmulPrecision::speed_warning`] prints for a measured `ratio`.
fn bf16_warning(ratio: f64) -> String {
    format!(
        "warning: --matmul-precision bf16: this CPU's bf16 dot products do {ratio:.2}x the \
         FLOP/s of its f32 FMAs (measured at start-up), so bf16 matrix products will likely \
         make steps slower than f32 here"
    )
}

/// A fully resolved run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The preset the run started from.
    pub preset: String,
    /// Model shape (vocabulary from the tokenizer, or --vocab-size).
    pub model: GptConfig,
    /// Optimiser and schedule.
    pub hyper: TrainHyper,
    /// Initialisation and sampling seed.
    pub seed: u64,
    /// The random stream the seed drives (`cllm` for runs written before it existed).
    #[serde(default)]
    pub rng: RandomStream,
    /// Precision of the matrix products (`f32` for runs written before it existed).
    #[serde(default)]
    pub matmul_precision: MatmulPrecision,
    /// Steps between checkpoints (0: only at the end).
    pub checkpoint_every: u64,
    /// Checkpoints kept.
    pub keep_checkpoints: usize,
    /// Whether the checkpoint of the lowest validation loss is kept in `checkpoints/best`
    /// (`false` for runs written before it existed).
    #[serde(default)]
    pub keep_best: bool,
    /// Where the data came from (re-used on resume).
    pub data: DataArgs,
    /// The corpus path, if one was given instead of a dataset.
    pub data_path: Option<PathBuf>,
    /// Tokenizer fingerprint.
    pub tokenizer_sha256: String,
    /// The prepared corpus's content digest ([`cllm_data::DatasetSummary::content_sha256`]);
    /// empty for runs written before it existed.
    #[serde(default)]
    pub data_sha256: String,
    /// Tokens in the training split.
    pub train_tokens: u64,
    /// Tokens in the validation split.
    pub val_tokens: u64,
    /// Worker threads.
    pub threads: usize,
    /// Workers that compute forward and backward.
    pub compute_workers: usize,
    /// Sequences per forward and backward pass of a worker (gradient accumulation); `None`: a
    /// worker's whole share in one pass.
    #[serde(default)]
    pub micro_batch: Option<usize>,
    /// Whether workers were pinned to cores.
    pub pin: bool,
    /// Groups of up to 12 workers.
    pub groups: usize,
    /// Depth of the worker tree under Node Zero.
    pub tree_depth: usize,
    /// `cllm-train` version.
    pub version: String,
}

/// The recipe after applying overrides to a preset.
pub fn resolve_hyper(
    args: &TrainArgs,
    preset_name: &str,
) -> Result<(GptConfig, TrainHyper), String> {
    let p = preset(preset_name).ok_or_else(|| {
        format!(
            "unknown preset `{preset_name}`; presets: {}",
            preset_names()
        )
    })?;
    let mut m = p.model;
    let mut h = p.train;
    m.embed_dim = args.embed_dim.unwrap_or(m.embed_dim);
    m.num_layers = args.num_layers.unwrap_or(m.num_layers);
    m.num_heads = args.num_heads.unwrap_or(m.num_heads);
    m.seq_len = args.seq_len.unwrap_or(m.seq_len);
    m.bias |= args.bias;
    h.batch_size = args.batch_size.unwrap_or(h.batch_size);
    if let Some(lr) = args.learning_rate {
        h.learning_rate = lr;
        h.min_lr = lr / 10.0;
    }
    h.min_lr = args.min_lr.unwrap_or(h.min_lr);
    h.warmup_steps = args.warmup_steps.unwrap_or(h.warmup_steps);
    h.weight_decay = args.weight_decay.unwrap_or(h.weight_decay);
    h.grad_clip = args.grad_clip.unwrap_or(h.grad_clip);
    h.dropout = args.dropout.unwrap_or(h.dropout);
    h.eval_interval = args.eval_interval.unwrap_or(h.eval_interval);
    h.eval_iters = args.eval_iters.unwrap_or(h.eval_iters);
    if let Some(n) = args.max_steps {
        h.max_steps = n;
        h.lr_decay_steps = n;
    }
    if h.batch_size == 0 {
        return Err("--batch-size must be positive".into());
    }
    if h.eval_interval == 0 {
        return Err("--eval-interval must be positive".into());
    }
    if h.max_steps == 0 {
        return Err(
            "--max-steps must be positive (to evaluate a checkpoint: --resume RUN_DIR --eval-only)"
                .into(),
        );
    }
    if !(h.learning_rate > 0.0 && h.learning_rate.is_finite()) {
        return Err("--learning-rate must be a positive number".into());
    }
    for (flag, value) in [
        ("--min-lr", h.min_lr),
        ("--weight-decay", h.weight_decay),
        ("--grad-clip", h.grad_clip),
    ] {
        if !(value >= 0.0 && value.is_finite()) {
            return Err(format!("{flag} must be a number >= 0, got {value}"));
        }
    }
    if h.min_lr > h.learning_rate {
        return Err(format!(
            "--min-lr {} is above --learning-rate {}: the schedule decays from the learning rate \
             down to the minimum (equal values keep it constant after the warm-up)",
            h.min_lr, h.learning_rate
        ));
    }
    if !(0.0..1.0).contains(&h.dropout) {
        return Err(format!("--dropout must be in [0, 1), got {}", h.dropout));
    }
    if let Some(epochs) = args.epochs
        && !(epochs > 0.0 && epochs.is_finite())
    {
        return Err("--epochs must be a positive number".into());
    }
    Ok((m, h))
}

/// Flags that fix the model or recipe, which a resumed run may not change.
pub fn fixed_flags_given(args: &TrainArgs) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut check = |given: bool, flag| {
        if given {
            v.push(flag);
        }
    };
    check(args.preset.is_some(), "--preset");
    check(args.embed_dim.is_some(), "--embed-dim");
    check(args.num_layers.is_some(), "--num-layers");
    check(args.num_heads.is_some(), "--num-heads");
    check(args.seq_len.is_some(), "--seq-len");
    check(args.batch_size.is_some(), "--batch-size");
    check(args.bias, "--bias");
    check(args.learning_rate.is_some(), "--learning-rate");
    check(args.min_lr.is_some(), "--min-lr");
    check(args.warmup_steps.is_some(), "--warmup-steps");
    check(args.weight_decay.is_some(), "--weight-decay");
    check(args.grad_clip.is_some(), "--grad-clip");
    check(args.dropout.is_some(), "--dropout");
    check(args.epochs.is_some(), "--epochs");
    check(args.eval_interval.is_some(), "--eval-interval");
    check(args.eval_iters.is_some(), "--eval-iters");
    check(args.seed.is_some(), "--seed");
    check(args.rng.is_some(), "--rng");
    check(args.matmul_precision.is_some(), "--matmul-precision");
    v
}

/// A table of the presets for `--list-presets`.
pub fn presets_table() -> String {
    let mut s = String::new();
    for p in cllm_model::PRESETS {
        let (m, h) = (p.model, p.train);
        s += &format!(
            "{:<13} {}\n{:13} embed {} layers {} heads {} seq {} batch {} lr {} dropout {} steps {} (eval every {}, {} batches), --rng {}\n",
            p.name,
            p.about,
            "",
            m.embed_dim,
            m.num_layers,
            m.num_heads,
            m.seq_len,
            h.batch_size,
            h.learning_rate,
            h.dropout,
            h.max_steps,
            h.eval_interval,
            h.eval_iters,
            default_rng(p.name)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bf16_can_warn_about_speed() {
        assert_eq!(MatmulPrecision::F32.speed_warning(), None);
        // Where the CPU has no bf16 dot product there is nothing to compare.
        if peak::bf16_speedup().is_none() {
            assert_eq!(MatmulPrecision::Bf16.speed_warning(), None);
        }
    }

    #[test]
    fn the_warning_names_the_flag_and_the_measured_ratio() {
        let w = bf16_warning(0.4712);
        assert!(w.starts_with("warning: --matmul-precision bf16:"), "{w}");
        assert!(w.contains("0.47x"), "{w}");
    }
}
