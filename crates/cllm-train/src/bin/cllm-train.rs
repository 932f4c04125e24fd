//! `cllm-train`: prepare a corpus and train a GPT on it. Run with `--help` for the options.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cllm_train::data_args::DataArgs;
use cllm_train::signal::StopFlag;
use cllm_train::train_args::TrainArgs;
use cllm_train::{config, console, heap, prepare_cmd, run_dir, say, telemetry, trainer};

/// Train GPT language models on CPUs.
///
/// With no arguments, trains the `tiny` preset briefly on the built-in corpus (this project's
/// own docs and sources). Point it at a file or directory (PATH), or a registered dataset
/// (--dataset shakespeare, --dataset squad/dev), to train on something else. A run directory
/// (--out) receives config.json, metrics.jsonl, dataset.json, tokenizer.json and checkpoints/;
/// Ctrl-C (or SIGTERM) stops after the current step with a checkpoint, and --resume continues
/// from it. Training runs on --threads worker threads coordinated by Node Zero, a thread of its
/// own that prepares data while the workers compute.
#[derive(Parser, Debug)]
#[command(
    name = "cllm-train",
    version,
    max_term_width = 100,
    allow_negative_numbers = true
)]
struct Cli {
    /// A text file or a directory of text files to train on (walked recursively; hidden and
    /// VCS directories are skipped; duplicate, binary and non-UTF-8 files, pipes, sockets and
    /// devices are skipped and counted; files of any size are read in pieces, each once).
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,

    #[command(flatten)]
    data: DataArgs,

    #[command(flatten)]
    train: TrainArgs,

    /// Run directory for config, metrics, checkpoints and the data summary
    /// (default: runs/<dataset>-<UTC timestamp>; with --resume, the resumed run's directory).
    /// A new run does not start in a directory that holds another run.
    #[arg(long, value_name = "RUN_DIR")]
    out: Option<PathBuf>,

    /// Prepare (tokenize and shard) the data, write RUN_DIR/dataset.json, and exit.
    #[arg(long)]
    prepare_only: bool,

    /// Write a Chrome/Perfetto trace (open in ui.perfetto.dev or chrome://tracing) with one
    /// track per thread: Node Zero and every worker, with spans for each phase of each step.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,

    /// Log level of the human log on stderr (error, warn, info, debug, trace, or a
    /// tracing filter directive); default: $RUST_LOG, else warn.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
}

fn run(cli: Cli) -> Result<(), String> {
    if cli.train.list_presets {
        return console::stdout(&config::presets_table());
    }
    if cli.prepare_only {
        let label = match (&cli.path, &cli.data.dataset) {
            (Some(p), _) => p
                .file_name()
                .map_or_else(|| "corpus".into(), |n| n.to_string_lossy().into_owned()),
            (None, Some(d)) => d.replace('/', "-"),
            (None, None) => cllm_train::builtin_corpus::NAME.to_string(),
        };
        // An explicit --out is checked now; a default one is claimed only once the data is
        // prepared, so a failed preparation leaves no empty run directory behind.
        let out = match &cli.out {
            Some(out) => {
                run_dir::check_writable(out, None)?;
                prepare_cmd::Out::Given(out.clone())
            }
            None => prepare_cmd::Out::Claim(run_dir::default_run_dir(&label)),
        };
        return prepare_cmd::run(&cli.data, cli.path.as_ref(), out);
    }
    let stop = StopFlag::install();
    let req = trainer::Request {
        path: cli.path,
        data: cli.data,
        train: cli.train,
        out: cli.out,
    };
    // Node Zero gets a thread (and a track in traces) of its own.
    let node_zero = std::thread::Builder::new()
        .name("node-zero".into())
        .spawn(move || trainer::run(req, &stop).map(|_| ()))
        .map_err(|e| format!("could not start Node Zero: {e}"))?;
    node_zero
        .join()
        .unwrap_or_else(|_| Err("Node Zero panicked (see the message above)".into()))
}

fn main() -> ExitCode {
    cllm_train::huge_pages::configure_from_env();
    let cli = Cli::parse();
    let telemetry = match telemetry::init(cli.log_level.as_deref(), cli.trace.as_deref()) {
        Ok(guard) => guard,
        Err(e) => {
            say!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let trace = cli.trace.clone();
    let training = !cli.prepare_only && !cli.train.list_presets;
    let result = run(cli);
    drop(telemetry); // flushes the trace file
    if let (Some(path), true) = (trace, result.is_ok()) {
        say!("trace written to {}", path.display());
    }
    if training && result.is_ok() {
        // Everything the run allocated has been dropped by now.
        say!("live heap after teardown: {} bytes", heap::live_bytes());
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
