//! `cargo xtask bench-scaling`: speedup curves of `cllm-train` over worker-thread counts.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use crate::plot::{Chart, Series, line_chart};
use crate::run::{
    at_least_one, binary_line, clear_run_dir, cllm_train, cllm_train_binary, measured_run_args,
    output_dir, quantile, step_lines, workspace_root,
};
use crate::stamp::Stamp;

/// Strong scaling keeps the global batch fixed; weak scaling keeps the batch per worker fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Fixed global batch.
    Strong,
    /// Fixed batch per worker thread.
    Weak,
    /// Both.
    Both,
}

/// Options of `bench-scaling`.
#[derive(Args, Debug)]
pub struct ScalingArgs {
    /// Preset to train.
    #[arg(long, default_value = "nanogpt-cpu")]
    preset: String,
    /// Thread counts to measure in addition to 1, 2, 4, ... up to twice the cores (e.g. 1,2,12,63).
    #[arg(long, value_delimiter = ',', value_name = "N,N,...", value_parser = at_least_one::<usize>)]
    threads: Vec<usize>,
    /// Strong, weak, or both.
    #[arg(long, value_enum, default_value_t = Mode::Strong)]
    mode: Mode,
    /// Sequences per worker thread in weak mode.
    #[arg(long, default_value_t = 6, value_parser = at_least_one::<usize>)]
    per_worker_batch: usize,
    /// Measured steps per configuration (default 40; 12 with --quick).
    #[arg(long, value_parser = at_least_one::<u64>)]
    steps: Option<u64>,
    /// Unmeasured warm-up steps per configuration (default 5; 3 with --quick).
    #[arg(long)]
    warmup: Option<u64>,
    /// Rounds: the whole sweep runs this many times, configurations interleaved (every other
    /// round in reverse order), and each configuration's figures are medians over the steps of
    /// all its rounds, so a noisy minute on a shared machine cannot skew one configuration
    /// alone; the speedup is also given round by round (default 3; 1 with --quick).
    #[arg(long, value_parser = at_least_one::<u64>)]
    rounds: Option<u64>,
    /// A short sweep for CI and people in a hurry (threads 1, 2 and 4 unless given; fewer steps).
    #[arg(long)]
    quick: bool,
    /// Dataset for cllm-train (default: its built-in corpus, present on every checkout).
    #[arg(long)]
    dataset: Option<String>,
    /// Data directory for cllm-train.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Precision of cllm-train's matrix products: f32 (default) or bf16 (AVX-512 BF16 CPUs).
    #[arg(long, value_name = "P", value_parser = ["f32", "bf16"])]
    matmul_precision: Option<String>,
    /// Seed.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Measure this cllm-train binary instead of building this checkout's in release mode (an
    /// older build to compare against, another toolchain's or RUSTFLAGS' build; CI passes the
    /// one its tests built, whose figures are not release figures). Results name it.
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
    /// Output directory (default: target/bench-scaling/TIMESTAMP).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One measured configuration.
#[derive(Clone, Debug)]
struct Row {
    mode: &'static str,
    threads: usize,
    compute_workers: usize,
    batch: usize,
    tokens_per_step: f64,
    /// The fastest tenth of the steps took at most this long: the step when the host leaves
    /// the run alone, a diagnostic (throughput is [`Row::tokens_per_s`], from the median).
    p10_ms: f64,
    p50_ms: f64,
    p95_ms: f64,
    tokens_per_s: f64,
    speedup: f64,
    /// `p10_ms` of 1 thread over this configuration's `p10_ms`: the speedup on a quiet host.
    speedup_p10: f64,
    /// The speedup round by round (see [`RoundSpeedup`]); `None` until the sweep has every
    /// round of this configuration and of 1 thread.
    per_round: Option<RoundSpeedup>,
    efficiency: f64,
    compute_ms: f64,
    /// A computing worker's barrier waits (after compute, after the reduction).
    wait_ms: f64,
    reduce_ms: f64,
    optimizer_ms: f64,
    data_ms: f64,
    straggler_p50_ms: f64,
    straggler_p95_ms: f64,
}

impl Row {
    fn share(&self, ms: f64) -> f64 {
        100.0 * ms / self.p50_ms
    }
}

/// Each round's tokens/s of a configuration over the 1-thread configuration's in the same round,
/// whose runs are seconds apart: a machine whose speed drifts from minute to minute moves both
/// sides of each ratio alike. Their median, smallest and largest.
#[derive(Clone, Copy, Debug, PartialEq)]
struct RoundSpeedup {
    median: f64,
    min: f64,
    max: f64,
}

impl RoundSpeedup {
    /// From the tokens/s of each round, this configuration's and the 1-thread one's (round `r`
    /// at index `r`).
    fn new(this: &[f64], base: &[f64]) -> Self {
        let ratios: Vec<f64> = this.iter().zip(base).map(|(t, b)| t / b).collect();
        RoundSpeedup {
            median: quantile(&ratios, 0.5),
            min: ratios.iter().copied().fold(f64::INFINITY, f64::min),
            max: ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

fn thread_list(args: &ScalingArgs, cores: usize) -> Vec<usize> {
    let mut v: Vec<usize> = if args.quick && !args.threads.is_empty() {
        Vec::new()
    } else if args.quick {
        vec![1, 2, 4]
    } else {
        std::iter::successors(Some(1usize), |&n| (n < 2 * cores).then_some(n * 2)).collect()
    };
    v.extend(&args.threads);
    v.push(1); // the baseline
    v.sort_unstable();
    v.dedup();
    v
}

/// Runs the sweep and writes results.csv, results.md and speedup.{svg,png}.
pub fn run(args: ScalingArgs) -> Result<(), String> {
    let root = workspace_root();
    let stamp = Stamp::now();
    let bin = cllm_train_binary(&root, args.binary.as_deref())?;
    let out = output_dir(&root, "bench-scaling", &stamp.when, args.out.as_deref())?;
    let runs = out.join("runs");
    let (steps, warmup) = (
        args.steps.unwrap_or(if args.quick { 12 } else { 40 }),
        args.warmup.unwrap_or(if args.quick { 3 } else { 5 }),
    );
    let threads = thread_list(&args, stamp.cores);
    let modes: &[Mode] = match args.mode {
        Mode::Both => &[Mode::Strong, Mode::Weak],
        Mode::Strong => &[Mode::Strong],
        Mode::Weak => &[Mode::Weak],
    };
    eprintln!(
        "sweeping threads {threads:?} ({steps} measured steps after {warmup} warm-up) into {}",
        out.display()
    );
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let configs: Vec<(Mode, usize)> = modes
        .iter()
        .flat_map(|&m| threads.iter().map(move |&n| (m, n)))
        .collect();
    let run_dir = |mode: Mode, n: usize, round: u64| {
        runs.join(format!("{}-{n}-round{round}", mode_name(mode)))
    };
    // Tokens/s of each configuration, round by round.
    let mut per_round: HashMap<(&'static str, usize), Vec<f64>> = HashMap::new();
    for round in 0..rounds {
        // Every other round runs the configurations in reverse, so a machine that slows down
        // or speeds up steadily through a sweep favours none of them.
        let order: Vec<(Mode, usize)> = if round % 2 == 0 {
            configs.clone()
        } else {
            configs.iter().rev().copied().collect()
        };
        for &(mode, n) in &order {
            let dir = run_dir(mode, n, round);
            clear_run_dir(&dir)?;
            let mut a: Vec<String> = Vec::new();
            if let Some(d) = &args.dataset {
                a.extend(["--dataset".into(), d.clone()]);
            }
            if let Some(d) = &args.data_dir {
                a.extend(["--data-dir".into(), d.display().to_string()]);
            }
            if let Some(p) = &args.matmul_precision {
                a.extend(["--matmul-precision".into(), p.clone()]);
            }
            a.extend(measured_run_args(&args.preset, n, steps + warmup, &dir));
            a.extend(["--seed".into(), args.seed.to_string()]);
            if mode == Mode::Weak {
                a.extend([
                    "--batch-size".into(),
                    (args.per_worker_batch * n).to_string(),
                ]);
            }
            eprint!(
                "  round {}/{rounds}: {} scaling, {n} thread(s)... ",
                round + 1,
                mode_name(mode)
            );
            cllm_train(&bin, &a)?;
            let one = measure(&[dir], mode_name(mode), n, warmup, &mut None, stamp.cores)?;
            eprintln!("{:.1} ms/step", one.p50_ms);
            per_round
                .entry((mode_name(mode), n))
                .or_default()
                .push(one.tokens_per_s);
        }
    }
    let mut rows = Vec::new();
    for &mode in modes {
        let mut base: Option<(f64, f64)> = None;
        for &n in &threads {
            let dirs: Vec<PathBuf> = (0..rounds).map(|r| run_dir(mode, n, r)).collect();
            let mut row = measure(&dirs, mode_name(mode), n, warmup, &mut base, stamp.cores)?;
            let round_tps = |n| &per_round[&(mode_name(mode), n)];
            row.per_round = Some(RoundSpeedup::new(round_tps(n), round_tps(1)));
            eprintln!(
                "{} scaling, {n} thread(s): {:.1} ms/step, {:.0} tokens/s, speedup {:.2}",
                row.mode, row.p50_ms, row.tokens_per_s, row.speedup
            );
            rows.push(row);
        }
    }
    write_csv(&out.join("results.csv"), &rows)?;
    let projection = projection(&rows, &args.preset, &runs);
    let md = markdown(&stamp, &args, (steps, warmup, rounds), &rows, &projection);
    std::fs::write(out.join("results.md"), &md).map_err(|e| e.to_string())?;
    plot(&out.join("speedup"), &stamp, &rows, stamp.cores)?;
    println!("{md}");
    eprintln!(
        "wrote {}/results.csv, results.md, speedup.svg, speedup.png",
        out.display()
    );
    Ok(())
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Strong => "strong",
        Mode::Weak => "weak",
        Mode::Both => "both",
    }
}

/// One configuration's row from the measured steps of its run directories (one per round).
fn measure(
    runs: &[PathBuf],
    mode: &'static str,
    threads: usize,
    warmup: u64,
    base: &mut Option<(f64, f64)>,
    cores: usize,
) -> Result<Row, String> {
    let mut lines = Vec::new();
    for run in runs {
        lines.extend(step_lines(run)?.into_iter().filter(|l| l.step > warmup));
    }
    let first = &runs[0];
    if lines.is_empty() {
        return Err(format!("{}: no measured steps", first.display()));
    }
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(first.join("config.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let batch = config["hyper"]["batch_size"].as_u64().unwrap_or(0) as usize;
    let seq = config["model"]["seq_len"].as_u64().unwrap_or(0) as f64;
    let col = |f: fn(&crate::run::StepLine) -> f64| lines.iter().map(f).collect::<Vec<f64>>();
    let ms = col(|l| l.ms_per_step);
    let p50 = quantile(&ms, 0.5);
    let tokens_per_step = batch as f64 * seq;
    let tokens_per_s = tokens_per_step / (p50 / 1e3);
    let p10 = quantile(&ms, 0.1);
    let (base_tps, base_p10) = *base.get_or_insert((tokens_per_s, p10));
    let speedup = tokens_per_s / base_tps;
    let straggler = col(|l| l.phase_ms.straggler);
    Ok(Row {
        mode,
        threads,
        compute_workers: config["compute_workers"].as_u64().unwrap_or(0) as usize,
        batch,
        tokens_per_step,
        p10_ms: p10,
        p50_ms: p50,
        p95_ms: quantile(&ms, 0.95),
        tokens_per_s,
        speedup,
        speedup_p10: base_p10 / p10,
        per_round: None,
        efficiency: speedup / threads.min(cores) as f64,
        compute_ms: quantile(&col(|l| l.phase_ms.compute), 0.5),
        wait_ms: quantile(
            &col(|l| l.phase_ms.wait_compute + l.phase_ms.wait_reduce),
            0.5,
        ),
        reduce_ms: quantile(&col(|l| l.phase_ms.reduce), 0.5),
        optimizer_ms: quantile(&col(|l| l.phase_ms.optimizer), 0.5),
        data_ms: quantile(&col(|l| l.phase_ms.data), 0.5),
        straggler_p50_ms: quantile(&straggler, 0.5),
        straggler_p95_ms: quantile(&straggler, 0.95),
    })
}

fn write_csv(path: &Path, rows: &[Row]) -> Result<(), String> {
    let mut s = String::from(
        "mode,threads,compute_workers,batch,tokens_per_step,step_ms_p50,step_ms_p95,tokens_per_s,speedup,efficiency,\
         compute_ms,wait_ms,reduce_ms,optimizer_ms,data_ms,straggler_ms_p50,straggler_ms_p95,\
         speedup_round_p50,speedup_round_min,speedup_round_max,step_ms_p10,speedup_p10\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{:.3},{:.3},{:.1},{:.4},{:.4},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{},{:.3},{:.4}",
            r.mode,
            r.threads,
            r.compute_workers,
            r.batch,
            r.tokens_per_step,
            r.p50_ms,
            r.p95_ms,
            r.tokens_per_s,
            r.speedup,
            r.efficiency,
            r.compute_ms,
            r.wait_ms,
            r.reduce_ms,
            r.optimizer_ms,
            r.data_ms,
            r.straggler_p50_ms,
            r.straggler_p95_ms,
            r.per_round.map_or(",,".into(), |p| format!(
                "{:.4},{:.4},{:.4}",
                p.median, p.min, p.max
            )),
            r.p10_ms,
            r.speedup_p10
        );
    }
    std::fs::write(path, s).map_err(|e| format!("{}: {e}", path.display()))
}

/// The projection's inputs and its predictions for 16, 64 and 128 cores.
struct Projection {
    text: String,
}

/// An Amdahl-style projection from the measured phases of the strong-scaling runs at 1 and 2
/// threads. Model, per step on P cores with a batch of B sequences:
/// `T(P) = C / min(P, B) + U / P + R * min(P, B) / P + O`, where C is compute and U the optimizer
/// at 1 thread, R the reduction at 2 threads per summed buffer pair... (stated in full below).
fn projection(rows: &[Row], preset: &str, _runs: &Path) -> Projection {
    let strong: Vec<&Row> = rows.iter().filter(|r| r.mode == "strong").collect();
    let (Some(one), Some(two)) = (
        strong.iter().find(|r| r.threads == 1),
        strong.iter().find(|r| r.threads == 2),
    ) else {
        return Projection {
            text: "Projection: needs strong-scaling runs at 1 and 2 threads.\n".into(),
        };
    };
    let b = one.batch as f64;
    let c = one.compute_ms;
    let u = one.optimizer_ms;
    // Each of min(P, B) written buffers is read once per step, spread over P workers; at 2
    // threads two buffers were read over two workers, so one buffer-segment pass costs r2.
    let r = two.reduce_ms;
    let o = (one.p50_ms - one.compute_ms - one.optimizer_ms - one.reduce_ms).max(0.0);
    let t = |p: f64| c / p.min(b) + u / p + r * p.min(b) / p + o;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "**Projection, not a measurement** ({preset}, strong scaling, B = {b} sequences per step)."
    );
    let _ = writeln!(
        text,
        "Model: T(P) = C/min(P,B) + U/P + R*min(P,B)/P + O, with C = {c:.2} ms compute and U = {u:.2} ms optimizer \
         (1 thread), R = {r:.2} ms reduction (2 threads: every written gradient buffer is read once, spread over \
         the workers), O = {o:.2} ms of the rest of the 1-thread step (Node Zero, barriers). It assumes compute \
         splits by whole sequences (so at most B workers compute), memory bandwidth grows with cores, and barrier \
         cost stays as measured; it ignores NUMA and SMT."
    );
    let _ = writeln!(
        text,
        "\n| cores | projected ms/step | projected speedup |\n|---:|---:|---:|"
    );
    for p in [1.0, 2.0, 16.0, 64.0, 128.0] {
        let _ = writeln!(text, "| {p} | {:.2} | {:.2} |", t(p), t(1.0) / t(p));
    }
    Projection { text }
}

fn markdown(
    stamp: &Stamp,
    args: &ScalingArgs,
    (steps, warmup, rounds): (u64, u64, u64),
    rows: &[Row],
    proj: &Projection,
) -> String {
    let mut s = String::from("# cllm-train scaling\n\n");
    s += &stamp.markdown();
    s += &binary_line(args.binary.as_deref());
    let _ = writeln!(
        s,
        "- preset: {}, matrix products in {}, {} measured steps after {} warm-up steps per configuration and round, {} round(s) \
         interleaved; medians (p50) over all rounds' steps unless noted\n",
        args.preset,
        args.matmul_precision.as_deref().unwrap_or("f32"),
        steps,
        warmup,
        rounds
    );
    s += "| mode | threads | computing | batch | step p50 ms | step p95 ms | tokens/s | speedup | speedup per round: median (range) | efficiency/core | compute % | wait % | reduce % | optimizer % | data % (overlapped) | straggler p50/p95 ms | step p10 ms | speedup at p10 |\n";
    s += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.0} | {:.2} | {} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} / {:.2} | {:.2} | {:.2} |",
            r.mode,
            r.threads,
            r.compute_workers,
            r.batch,
            r.p50_ms,
            r.p95_ms,
            r.tokens_per_s,
            r.speedup,
            r.per_round.map_or("—".into(), |p| format!(
                "{:.2} ({:.2}-{:.2})",
                p.median, p.min, p.max
            )),
            r.efficiency,
            r.share(r.compute_ms),
            r.share(r.wait_ms),
            r.share(r.reduce_ms),
            r.share(r.optimizer_ms),
            r.share(r.data_ms),
            r.straggler_p50_ms,
            r.straggler_p95_ms,
            r.p10_ms,
            r.speedup_p10
        );
    }
    s += "\nSpeedup is tokens/s against 1 thread of the same mode; efficiency divides it by min(threads, cores). \
          Speedup per round divides each round's tokens/s by the 1-thread run's of the same round, seconds apart, so a \
          machine whose speed drifts between rounds moves both sides of each ratio alike; its range shows how far the \
          rounds disagree. \
          Speedup at p10 compares the fastest tenth of the steps (1 thread's p10 step time over this one's): what the \
          code does while the host leaves the run alone, beside what it did on average; a diagnostic of a shared \
          machine, not the throughput. \
          Phase shares are each phase's median span over the median step; wait is what a computing worker \
          spends at the barriers after compute and after the reduction (the other workers, which only reduce and \
          update, sleep through compute and are not counted), and Node Zero's data preparation runs while the workers compute.\n\n";
    s += &proj.text;
    s
}

fn plot(stem: &Path, stamp: &Stamp, rows: &[Row], cores: usize) -> Result<(), String> {
    let mut series = Vec::new();
    for mode in ["strong", "weak"] {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.mode == mode)
            .map(|r| (r.threads as f64, r.speedup))
            .collect();
        if !pts.is_empty() {
            series.push(Series {
                label: format!("{mode} scaling (measured)"),
                points: pts,
                reference: false,
            });
        }
    }
    let max_threads = rows.iter().map(|r| r.threads).max().unwrap_or(1);
    let ideal: Vec<(f64, f64)> = (1..=max_threads)
        .map(|n| (n as f64, n.min(cores) as f64))
        .collect();
    series.push(Series {
        label: format!("ideal: min(threads, {cores} cores)"),
        points: ideal,
        reference: true,
    });
    let caption = stamp.caption();
    let chart = Chart {
        title: "cllm-train speedup over 1 worker thread",
        caption: &caption,
        x_label: "worker threads",
        y_label: "speedup (tokens/s)",
        log_x: max_threads > 8,
    };
    line_chart(stem, &chart, &series)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{RoundSpeedup, measure};

    /// A run directory as `cllm-train` leaves it, with these step times (steps 1, 2, ...).
    fn fake_run(dir: &Path, ms: &[f64]) {
        std::fs::create_dir_all(dir).unwrap();
        let config =
            r#"{"hyper": {"batch_size": 12}, "model": {"seq_len": 64}, "compute_workers": 2}"#;
        std::fs::write(dir.join("config.json"), config).unwrap();
        let lines: String = ms
            .iter()
            .enumerate()
            .map(|(i, ms)| {
                format!(
                    "{{\"step\": {}, \"loss\": 2.0, \"ms_per_step\": {ms}, \"rss_bytes\": 0, \"phase_ms\": \
                     {{\"data\": 0, \"compute\": {ms}, \"reduce\": 0, \"optimizer\": 0, \"straggler\": 0}}}}\n",
                    i + 1
                )
            })
            .collect();
        std::fs::write(dir.join("metrics.jsonl"), lines).unwrap();
    }

    #[test]
    fn speedup_at_p10_compares_the_fastest_steps() {
        let tmp = tempfile::tempdir().unwrap();
        let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
        // Eleven measured steps each (after one warm-up step of 1000 ms): the fastest tenth is
        // the second-fastest step; the 2-thread run is twice as fast at p10, not at the median.
        let mut a = vec![1000.0];
        a.extend((0..11).map(|i| 50.0 + i as f64));
        let mut b = vec![1000.0];
        b.extend([24.0, 25.0].iter().chain(&[40.0; 9]));
        fake_run(&one, &a);
        fake_run(&two, &b);
        let mut base = None;
        let r1 = measure(&[one], "strong", 1, 1, &mut base, 2).unwrap();
        let r2 = measure(&[two], "strong", 2, 1, &mut base, 2).unwrap();
        assert_eq!((r1.p10_ms, r1.p50_ms, r1.speedup_p10), (51.0, 55.0, 1.0));
        assert_eq!((r2.p10_ms, r2.p50_ms), (25.0, 40.0));
        assert_eq!(r2.speedup_p10, 51.0 / 25.0);
        assert_eq!(r2.speedup, 55.0 / 40.0);
    }

    #[test]
    fn speedup_per_round_pairs_each_round_with_its_own_baseline() {
        // The machine halves its speed between rounds: pooled medians would mix the rounds,
        // each round's ratio does not.
        let base = [100.0, 50.0, 100.0];
        let two = [190.0, 90.0, 180.0];
        let r = RoundSpeedup::new(&two, &base);
        assert_eq!(r.median, 1.8);
        assert_eq!(r.min, 1.8);
        assert_eq!(r.max, 1.9);
        let one = RoundSpeedup::new(&base, &base);
        assert_eq!((one.median, one.min, one.max), (1.0, 1.0, 1.0));
    }
}
