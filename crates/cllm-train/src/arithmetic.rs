//! How much arithmetic a run did per second, against what the cores can do: the end-of-run
//! line that says how far a step is from the machine's limit.

use cllm_model::GptConfig;
use cllm_tensor::kernels::matmul::Precision;
use cllm_tensor::kernels::matmul::peak::{self, Unit};

/// One core's peak for the products of a run, measured now: the widest f32 FMA, or for bf16
/// products the bf16 dot product. `None` where the CPU has neither (then no share is shown).
pub fn core_peak(precision: Precision) -> Option<(f64, &'static str)> {
    let unit = match precision {
        Precision::Bf16 if Unit::Bf16Dot.available() => Unit::Bf16Dot,
        _ => peak::f32_unit()?,
    };
    Some((peak::median_gflops(unit)?, unit.name()))
}

/// The line: model FLOPs per step (as PaLM's model FLOPs utilisation counts them: 6 per
/// parameter of the matrices per token, plus attention's `QK^T` and `PV` over the full `T x T`
/// square, forward and backward), their rate at the median step time, per core in use (the
/// computing workers, at most the cores), and that as a share of `peak` if known.
pub fn summary_line(
    model: &GptConfig,
    tokens_per_step: usize,
    median_ms: f64,
    cores_in_use: usize,
    peak: Option<(f64, &str)>,
) -> String {
    let flop = model.train_flops(tokens_per_step);
    let rate = flop / (median_ms / 1e3) / 1e9;
    let per_core = rate / cores_in_use.max(1) as f64;
    let cores = match cores_in_use {
        1 => "1 core".to_string(),
        n => format!("{n} cores"),
    };
    let share = peak.map_or_else(String::new, |(p, unit)| {
        format!(
            " = {:.0}% of one core's peak ({p:.1} GFLOP/s, {unit}, measured now)",
            100.0 * per_core / p
        )
    });
    format!(
        "arithmetic: {:.3} GFLOP per step (model FLOPs: 6 per matrix parameter per token plus \
         attention), {rate:.1} GFLOP/s at the median step on {cores}, {per_core:.1} per core{share}",
        flop / 1e9
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_divides_the_model_flops_by_the_step_and_the_cores() {
        let model = GptConfig {
            vocab_size: 65,
            seq_len: 64,
            embed_dim: 128,
            num_layers: 4,
            num_heads: 4,
            bias: false,
        };
        // nanoGPT-cpu: 12 x 64 tokens; 6 * (12 L C^2 + V C) + 12 L T C per token.
        let per_token =
            6.0 * (12.0 * 4.0 * 128.0 * 128.0 + 65.0 * 128.0) + 12.0 * 4.0 * 64.0 * 128.0;
        let flop = per_token * 768.0;
        assert!((model.train_flops(768) - flop).abs() < 1.0);
        let line = summary_line(&model, 768, 50.0, 2, Some((100.0, "f32 FMA")));
        let rate = flop / 0.05 / 1e9;
        assert!(
            line.contains(&format!("{:.3} GFLOP per step", flop / 1e9)),
            "{line}"
        );
        assert!(
            line.contains(&format!("{rate:.1} GFLOP/s at the median step on 2 cores")),
            "{line}"
        );
        assert!(
            line.contains(&format!(
                "{:.1} per core = {:.0}% of one core's peak (100.0 GFLOP/s, f32 FMA",
                rate / 2.0,
                rate / 2.0
            )),
            "{line}"
        );
        assert!(!summary_line(&model, 768, 50.0, 1, None).contains('%'));
    }
}
