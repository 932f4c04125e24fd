//! `cargo xtask`: project automation that would otherwise live in shell scripts.
//!
//! Run `cargo xtask --help` for the list of tasks.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

/// Project automation for the CLLM workspace.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run exactly what CI runs (`.ci/run`): formatting, clippy, the README's test command,
    /// the optional-backend tests and the real-data checks.
    Ci,
}

fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.task {
        Task::Ci => {
            let root = workspace_root();
            match Command::new("bash")
                .arg(root.join(".ci/run"))
                .current_dir(&root)
                .status()
            {
                Ok(status) if status.success() => ExitCode::SUCCESS,
                Ok(status) => {
                    eprintln!("xtask ci: .ci/run failed ({status})");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("xtask ci: could not start bash: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
