//! `cargo xtask`: project automation that would otherwise live in shell scripts.
//!
//! Run `cargo xtask --help` for the list of tasks.

#![forbid(unsafe_code)]

mod bench_scaling;
mod plot;
mod run;
mod soak;
mod stamp;

use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

/// Project automation for the CLLM workspace.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run exactly what CI runs (`.ci/run`): formatting, clippy, rustdoc, the README's test command,
    /// the optional-backend tests, the loom model check, real-data checks, a quick scaling sweep.
    Ci,
    /// Speedup curves: train a preset at several worker-thread counts and write results.csv,
    /// results.md and speedup.{svg,png} under target/bench-scaling/TIMESTAMP/.
    BenchScaling(bench_scaling::ScalingArgs),
    /// A long training run recording resident memory and live heap per step (CSV, plot and a
    /// summary under target/soak/TIMESTAMP/); fails if either grew more than --max-growth.
    Soak(soak::SoakArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Ci => {
            let root = run::workspace_root();
            match Command::new("bash")
                .arg(root.join(".ci/run"))
                .current_dir(&root)
                .status()
            {
                Ok(s) if s.success() => Ok(()),
                Ok(s) => Err(format!(".ci/run failed ({s})")),
                Err(e) => Err(format!("could not start bash: {e}")),
            }
        }
        Task::BenchScaling(args) => bench_scaling::run(args),
        Task::Soak(args) => soak::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
