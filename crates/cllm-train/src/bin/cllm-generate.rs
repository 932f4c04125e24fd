//! `cllm-generate`: sample text from a trained model. Run with `--help` for the options.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use cllm_train::generate_cmd::{self, GenerateArgs};
use cllm_train::say;

/// Generate text with a model trained by cllm-train.
///
/// Streams the prompt and its continuation to stdout; the same --seed gives the same text.
/// Decoding uses a KV cache, so each new token costs one row through the network.
#[derive(Parser, Debug)]
#[command(
    name = "cllm-generate",
    version,
    max_term_width = 100,
    allow_negative_numbers = true
)]
struct Cli {
    #[command(flatten)]
    args: GenerateArgs,
}

fn main() -> ExitCode {
    cllm_train::huge_pages::configure_from_env();
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match generate_cmd::run(&cli.args, &mut stdout) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            say!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
