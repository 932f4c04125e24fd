//! `cargo xtask soak`: a long training run, recording resident memory and live heap over time,
//! to show that neither grows with the number of steps.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;

use crate::plot::{Chart, Series, line_chart};
use crate::run::{
    StepLine, at_least_one, binary_line, clear_run_dir, cllm_train, cllm_train_binary,
    measured_run_args, output_dir, quantile, step_lines, workspace_root,
};
use crate::stamp::Stamp;

/// Options of `soak`.
#[derive(Args, Debug)]
pub struct SoakArgs {
    /// Training steps.
    #[arg(long, default_value_t = 20_000, value_parser = at_least_one::<u64>)]
    steps: u64,
    /// Preset.
    #[arg(long, default_value = "tiny")]
    preset: String,
    /// Worker threads; several may be given (e.g. 1,63), one run each.
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = at_least_one::<usize>)]
    threads: Vec<usize>,
    /// The step memory is compared against (default: 10% of --steps).
    #[arg(long)]
    reference_step: Option<u64>,
    /// Growth (percent) above which the run fails.
    #[arg(long, default_value_t = 2.0)]
    max_growth: f64,
    /// Soak this cllm-train binary instead of building this checkout's in release mode (an
    /// older build, another toolchain's or RUSTFLAGS' build). Results name it.
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
    /// Output directory (default: target/soak/TIMESTAMP).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Median of `field` over the steps within 1% of the run around `step`.
fn around(lines: &[StepLine], step: u64, total: u64, field: fn(&StepLine) -> f64) -> f64 {
    let half = (total / 200).max(5);
    let v: Vec<f64> = lines
        .iter()
        .filter(|l| l.step.abs_diff(step) <= half)
        .map(field)
        .collect();
    quantile(&v, 0.5)
}

/// Runs the soak(s); fails if memory grew more than `--max-growth` percent.
pub fn run(args: SoakArgs) -> Result<(), String> {
    let root = workspace_root();
    let stamp = Stamp::now();
    let bin = cllm_train_binary(&root, args.binary.as_deref())?;
    let out = output_dir(&root, "soak", &stamp.when, args.out.as_deref())?;
    let reference = args.reference_step.unwrap_or(args.steps / 10).max(1);
    let mut md = format!(
        "# Soak: memory over {} steps of `{}`\n\n{}{}\n",
        args.steps,
        args.preset,
        stamp.markdown(),
        binary_line(args.binary.as_deref())
    );
    md += "| threads | RSS at ref step (MiB) | RSS at end (MiB) | RSS growth | heap at ref step (MiB) | heap at end (MiB) | heap growth | ms/step p50 |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    let mut failures = Vec::new();
    let mut teardown = Vec::new();
    for &n in &args.threads {
        let run_dir = out.join(format!("run-{n}"));
        clear_run_dir(&run_dir)?;
        eprintln!(
            "soak: {} steps of {} on {n} thread(s)...",
            args.steps, args.preset
        );
        let a = measured_run_args(&args.preset, n, args.steps, &run_dir);
        let stderr = cllm_train(&bin, &a)?;
        let lines = step_lines(&run_dir)?;
        let mib = |b: f64| b / (1u64 << 20) as f64;
        let rss = |l: &StepLine| l.rss_bytes as f64;
        let heap = |l: &StepLine| l.heap_bytes as f64;
        let (rss0, rss1) = (
            around(&lines, reference, args.steps, rss),
            around(&lines, args.steps, args.steps, rss),
        );
        let (heap0, heap1) = (
            around(&lines, reference, args.steps, heap),
            around(&lines, args.steps, args.steps, heap),
        );
        let growth = |a: f64, b: f64| 100.0 * (b - a) / a;
        let ms = quantile(
            &lines.iter().map(|l| l.ms_per_step).collect::<Vec<_>>(),
            0.5,
        );
        let _ = writeln!(
            md,
            "| {n} | {:.2} | {:.2} | {:+.2}% | {:.3} | {:.3} | {:+.2}% | {ms:.2} |",
            mib(rss0),
            mib(rss1),
            growth(rss0, rss1),
            mib(heap0),
            mib(heap1),
            growth(heap0, heap1)
        );
        for (what, g) in [
            ("RSS", growth(rss0, rss1)),
            ("live heap", growth(heap0, heap1)),
        ] {
            if g.is_nan() || g > args.max_growth {
                failures.push(format!(
                    "{n} thread(s): {what} grew {g:.2}% from step {reference} to {}",
                    args.steps
                ));
            }
        }
        if let Some(line) = stderr
            .lines()
            .find(|l| l.contains("live heap after teardown"))
        {
            teardown.push(format!("- {n} thread(s): {line}"));
        }
        let mut csv = String::from("step,loss,rss_bytes,heap_bytes,ms_per_step\n");
        for l in &lines {
            let _ = writeln!(
                csv,
                "{},{:.5},{},{},{:.4}",
                l.step, l.loss, l.rss_bytes, l.heap_bytes, l.ms_per_step
            );
        }
        std::fs::write(out.join(format!("soak-{n}.csv")), csv).map_err(|e| e.to_string())?;
        let every = (lines.len() / 2000).max(1);
        let pts = |f: fn(&StepLine) -> f64| {
            lines
                .iter()
                .step_by(every)
                .map(|l| (l.step as f64, mib(f(l))))
                .collect::<Vec<_>>()
        };
        let series = [
            Series {
                label: "resident set (MiB)".into(),
                points: pts(rss),
                reference: false,
            },
            Series {
                label: "live heap (MiB)".into(),
                points: pts(heap),
                reference: false,
            },
        ];
        let title = format!(
            "memory over {} steps, {} preset, {n} thread(s)",
            args.steps, args.preset
        );
        let caption = stamp.caption();
        let chart = Chart {
            title: &title,
            caption: &caption,
            x_label: "step",
            y_label: "MiB",
            log_x: false,
        };
        line_chart(&out.join(format!("soak-{n}")), &chart, &series)?;
    }
    let _ = writeln!(md, "\n{}", teardown.join("\n"));
    let _ = writeln!(
        md,
        "\nReference step {reference}; values are medians over the steps within 0.5% of the run around each point."
    );
    std::fs::write(out.join("summary.md"), &md).map_err(|e| e.to_string())?;
    println!("{md}");
    eprintln!("wrote {}", out.display());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}
