//! `cllm-generate`: load a checkpoint and its tokenizer, and stream sampled text to stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use cllm_data::Tokenizer;
use cllm_model::checkpoint;
use cllm_model::{Generator, Gpt, Sampler, SamplingConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Options of `cllm-generate`.
#[derive(Args, Clone, Debug)]
pub struct GenerateArgs {
    /// A run directory (its newest checkpoint and its tokenizer.json) or a checkpoint directory.
    #[arg(value_name = "RUN_DIR|CKPT")]
    pub source: PathBuf,
    /// Text to continue (default: a newline, or the first token).
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub max_new_tokens: usize,
    /// Softmax temperature (0: greedy).
    #[arg(long, default_value_t = 0.8, value_name = "T")]
    pub temperature: f32,
    /// Sample only among the K most likely tokens (0: all).
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub top_k: usize,
    /// Sample only among the most likely tokens whose probabilities add up to P (1: all).
    #[arg(long, default_value_t = 1.0, value_name = "P")]
    pub top_p: f32,
    /// Penalise tokens already in the context (1: off; CTRL's 1.2 is a common choice).
    #[arg(long, default_value_t = 1.0, value_name = "R")]
    pub repetition_penalty: f32,
    /// Sampling seed: the same seed gives the same text.
    #[arg(long, default_value_t = 1337, value_name = "S")]
    pub seed: u64,
    /// Tokenizer file (default: tokenizer.json of the run directory).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
}

/// The checkpoint directory and the tokenizer file `source` stands for.
fn locate(source: &Path, tokenizer: Option<&PathBuf>) -> Result<(PathBuf, PathBuf), String> {
    let (ckpt, run) = crate::run_dir::locate_checkpoint(source)?;
    let tok = tokenizer
        .cloned()
        .unwrap_or_else(|| run.join("tokenizer.json"));
    Ok((ckpt, tok))
}

/// Generates as asked, streaming to `out`; returns the generated token count.
pub fn run(args: &GenerateArgs, out: &mut impl Write) -> Result<usize, String> {
    let sampling = SamplingConfig {
        temperature: args.temperature,
        top_k: (args.top_k > 0).then_some(args.top_k),
        // 1 means "all"; anything else (out-of-range values included) goes to `validate`.
        top_p: (args.top_p != 1.0).then_some(args.top_p),
        repetition_penalty: args.repetition_penalty,
    };
    sampling.validate()?;
    let (ckpt_path, tok_path) = locate(&args.source, args.tokenizer.as_ref())?;
    let ck = checkpoint::load(&ckpt_path).map_err(|e| e.to_string())?;
    let tokenizer = Tokenizer::load(&tok_path).map_err(|e| e.to_string())?;
    let fingerprint = tokenizer.fingerprint().map_err(|e| e.to_string())?;
    if fingerprint != ck.state.tokenizer_sha256 {
        return Err(format!(
            "{}: this tokenizer ({}) is not the one the checkpoint was trained with ({})",
            tok_path.display(),
            &fingerprint[..12],
            &ck.state.tokenizer_sha256[..ck.state.tokenizer_sha256.len().min(12)]
        ));
    }
    let gpt = Gpt::new(ck.state.model)?;
    let mut prompt = Vec::new();
    let text = if args.prompt.is_empty() {
        "\n"
    } else {
        args.prompt.as_str()
    };
    if tokenizer.encode(text, &mut prompt).is_err() || prompt.is_empty() {
        if args.prompt.is_empty() {
            prompt = vec![0];
        } else {
            tokenizer
                .encode(text, &mut prompt)
                .map_err(|e| format!("--prompt: {e}"))?;
        }
    }
    let mut decoder = Generator::new(&gpt, &ck.weights);
    let mut sampler = Sampler::default();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    if !args.prompt.is_empty() && !emit(out, &args.prompt)? {
        return Ok(0);
    }
    for &t in &prompt[..prompt.len() - 1] {
        decoder.feed(t);
    }
    let mut next = *prompt.last().expect("prompt is not empty");
    let mut generated: Vec<u32> = Vec::with_capacity(args.max_new_tokens);
    let mut printed = 0;
    let started = Instant::now();
    for _ in 0..args.max_new_tokens {
        let logits = decoder.feed(next);
        let mut logits = logits.to_vec();
        next = sampler.sample(&mut logits, decoder.context(), &sampling, &mut rng);
        generated.push(next);
        // Print what decodes completely; a multi-byte character split across tokens waits.
        let text = tokenizer.decode(&generated);
        let complete = text.trim_end_matches('\u{FFFD}');
        if complete.len() > printed && text.is_char_boundary(printed) {
            if !emit(out, &complete[printed..])? {
                return Ok(generated.len());
            }
            printed = complete.len();
        }
    }
    let text = tokenizer.decode(&generated);
    let rest = if text.len() > printed && text.is_char_boundary(printed) {
        &text[printed..]
    } else {
        ""
    };
    if !emit(out, &format!("{rest}\n"))? {
        return Ok(generated.len());
    }
    let secs = started.elapsed().as_secs_f64();
    crate::say!(
        "generated {} tokens in {secs:.2} s ({:.0} tokens/s) from {}",
        generated.len(),
        generated.len() as f64 / secs.max(1e-9),
        ckpt_path.display()
    );
    Ok(generated.len())
}

/// Writes `s` to the output and flushes it. `Ok(false)`: the reader has gone away (a closed
/// pipe, `cllm-generate ... | head`), which ends generation quietly, as `yes | head` ends `yes`.
fn emit(out: &mut dyn Write, s: &str) -> Result<bool, String> {
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(format!("writing output: {e}")),
    }
}
