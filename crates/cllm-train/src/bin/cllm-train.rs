//! `cllm-train`: prepare a corpus and train a GPT on it. Run with `--help` for the options.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cllm_train::data_args::DataArgs;
use cllm_train::signal::StopFlag;
use cllm_train::train_args::TrainArgs;
use cllm_train::{config, prepare_cmd, run_dir, trainer};

/// Train GPT language models on CPUs.
///
/// With no arguments, trains the `tiny` preset briefly on the built-in corpus (this project's
/// own docs and sources). Point it at a file or directory (PATH), or a registered dataset
/// (--dataset shakespeare, --dataset squad/dev), to train on something else. A run directory
/// (--out) receives config.json, metrics.jsonl, dataset.json, tokenizer.json and checkpoints/;
/// Ctrl-C stops after the current step with a checkpoint, and --resume continues from it.
#[derive(Parser, Debug)]
#[command(name = "cllm-train", version, max_term_width = 100)]
struct Cli {
    /// A text file or a directory of text files to train on (walked recursively; hidden and
    /// VCS directories are skipped; duplicate, binary and non-UTF-8 files are skipped and counted).
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,

    #[command(flatten)]
    data: DataArgs,

    #[command(flatten)]
    train: TrainArgs,

    /// Run directory for config, metrics, checkpoints and the data summary
    /// (default: runs/<dataset>-<UTC timestamp>; with --resume, the resumed run's directory).
    #[arg(long, value_name = "RUN_DIR")]
    out: Option<PathBuf>,

    /// Prepare (tokenize and shard) the data, write RUN_DIR/dataset.json, and exit.
    #[arg(long)]
    prepare_only: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.train.list_presets {
        print!("{}", config::presets_table());
        return ExitCode::SUCCESS;
    }
    let result = if cli.prepare_only {
        let label = match (&cli.path, &cli.data.dataset) {
            (Some(p), _) => p
                .file_name()
                .map_or_else(|| "corpus".into(), |n| n.to_string_lossy().into_owned()),
            (None, Some(d)) => d.replace('/', "-"),
            (None, None) => cllm_train::builtin_corpus::NAME.to_string(),
        };
        let out = cli
            .out
            .clone()
            .unwrap_or_else(|| run_dir::default_run_dir(&label));
        prepare_cmd::run(&cli.data, cli.path.as_ref(), &out)
    } else {
        let stop = StopFlag::install();
        let req = trainer::Request {
            path: cli.path,
            data: cli.data,
            train: cli.train,
            out: cli.out,
        };
        trainer::run(req, &stop).map(|_| ())
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
