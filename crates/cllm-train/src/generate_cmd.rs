//! `cllm-generate`: load a checkpoint and its tokenizer, and stream sampled text to stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use cllm_data::{StreamDecoder, Tokenizer};
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
    #[arg(long, default_value = "", conflicts_with = "prompt_file")]
    pub prompt: String,
    /// Read the text to continue from this file (UTF-8) instead of --prompt.
    #[arg(long, value_name = "FILE")]
    pub prompt_file: Option<PathBuf>,
    /// Independent samples to draw from the prompt, printed one after another with a line of
    /// dashes between them (the seed starts the first; the others follow from it).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub num_samples: usize,
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

/// Printed between samples (as nanoGPT's `sample.py` does).
pub const SAMPLE_SEPARATOR: &str = "---------------";

/// The prompt text: `--prompt`, or the contents of `--prompt-file`.
fn prompt_text(args: &GenerateArgs) -> Result<String, String> {
    let Some(path) = &args.prompt_file else {
        return Ok(args.prompt.clone());
    };
    let bytes =
        std::fs::read(path).map_err(|e| format!("--prompt-file {}: {e}", path.display()))?;
    String::from_utf8(bytes)
        .map_err(|e| format!("--prompt-file {}: not UTF-8 text ({e})", path.display()))
}

/// Generates as asked, streaming to `out`; returns the generated token count (all samples).
pub fn run(args: &GenerateArgs, out: &mut impl Write) -> Result<usize, String> {
    if args.num_samples == 0 {
        return Err("--num-samples must be at least 1".into());
    }
    let prompt_text = prompt_text(args)?;
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
    let text = if prompt_text.is_empty() {
        "\n"
    } else {
        prompt_text.as_str()
    };
    if tokenizer.encode(text, &mut prompt).is_err() || prompt.is_empty() {
        if prompt_text.is_empty() {
            prompt = vec![0];
        } else {
            let flag = if args.prompt_file.is_some() {
                "--prompt-file"
            } else {
                "--prompt"
            };
            tokenizer
                .encode(text, &mut prompt)
                .map_err(|e| format!("{flag}: {e}"))?;
            if prompt.is_empty() {
                return Err(format!("{flag}: the prompt encodes to no tokens"));
            }
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let started = Instant::now();
    let mut total = 0;
    for i in 0..args.num_samples {
        if i > 0 && !emit(out, &format!("{SAMPLE_SEPARATOR}\n"))? {
            return Ok(total);
        }
        let job = Sample {
            gpt: &gpt,
            weights: &ck.weights,
            tokenizer: &tokenizer,
            prompt: &prompt,
            prompt_text: &prompt_text,
            sampling: &sampling,
        };
        match job.run(args.max_new_tokens, &mut rng, out)? {
            Some(n) => total += n,
            None => return Ok(total), // the reader has gone: stop quietly
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let samples = match args.num_samples {
        1 => String::new(),
        n => format!(" ({n} samples)"),
    };
    crate::say!(
        "generated {total} tokens{samples} in {secs:.2} s ({:.0} tokens/s) from {}",
        total as f64 / secs.max(1e-9),
        ckpt_path.display()
    );
    Ok(total)
}

/// One sample: the prompt, then up to `max_new_tokens` sampled tokens, from a fresh KV cache.
struct Sample<'a> {
    gpt: &'a Gpt,
    weights: &'a [f32],
    tokenizer: &'a Tokenizer,
    /// The prompt's tokens (at least one).
    prompt: &'a [u32],
    /// The prompt as given (printed first; empty: nothing printed).
    prompt_text: &'a str,
    sampling: &'a SamplingConfig,
}

impl Sample<'_> {
    /// Streams the sample to `out`; returns the tokens generated, or `None` if the reader went
    /// away.
    fn run(
        &self,
        max_new_tokens: usize,
        rng: &mut ChaCha8Rng,
        out: &mut dyn Write,
    ) -> Result<Option<usize>, String> {
        let (tokenizer, prompt) = (self.tokenizer, self.prompt);
        let mut decoder = Generator::new(self.gpt, self.weights);
        let mut sampler = Sampler::default();
        if !self.prompt_text.is_empty() && !emit(out, self.prompt_text)? {
            return Ok(None);
        }
        for &t in &prompt[..prompt.len() - 1] {
            decoder.feed(t);
        }
        let mut next = *prompt.last().expect("prompt is not empty");
        // Text is printed as soon as it decodes to whole characters.
        let mut text = StreamDecoder::new(tokenizer);
        let mut logits = Vec::new();
        for _ in 0..max_new_tokens {
            logits.clear();
            logits.extend_from_slice(decoder.feed(next));
            next = sampler.sample(&mut logits, decoder.context(), self.sampling, rng);
            if !emit(out, &text.push(next))? {
                return Ok(None);
            }
        }
        if !emit(out, &format!("{}\n", text.finish()))? {
            return Ok(None);
        }
        Ok(Some(max_new_tokens))
    }
}

/// Writes `s` to the output and flushes it. `Ok(false)`: the reader has gone away (a closed
/// pipe, `cllm-generate ... | head`), which ends generation quietly, as `yes | head` ends `yes`.
fn emit(out: &mut dyn Write, s: &str) -> Result<bool, String> {
    if s.is_empty() {
        return Ok(true);
    }
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(format!("writing output: {e}")),
    }
}
