//! `cllm-train --prepare-only`: prepare the corpus, write `RUN_DIR/dataset.json`, summarise.

use std::path::{Path, PathBuf};

use cllm_data::{Format, Prepared, prepare};

use crate::data_args::DataArgs;
use crate::progress;

/// Prepares the corpus chosen by `data` (and `path`), showing progress; `min_tokens` is one
/// sequence plus its target.
pub fn prepare_corpus(
    data: &DataArgs,
    path: Option<&PathBuf>,
    min_tokens: u64,
) -> Result<Prepared, String> {
    let opts = data.prepare_options(path, min_tokens)?;
    let _span = tracing::info_span!("data.prepare").entered();
    let pb = progress::spinner("preparing data");
    // The spinner shows only on a terminal; off one, a preparation that takes more than 2 s
    // prints its phases as plain lines. The log (`--log-level info`) gets each phase once
    // (a message's first word names its phase: reading, encoding, writing, waiting...).
    let lines = progress::PhaseLog::start("data", std::time::Duration::from_secs(2));
    let mut phase = String::new();
    let result = prepare(&opts, &mut |msg| {
        let this = progress::phase_of(msg);
        if this != phase {
            tracing::info!("data: {msg}");
            phase = this.to_string();
        }
        lines.set(msg);
        pb.set_message(msg.to_string());
    });
    drop(lines);
    pb.finish_and_clear();
    let prepared = result.map_err(|e| e.to_string())?;
    if data.format.is_none() {
        note_unread_formats(&prepared);
    }
    Ok(prepared)
}

/// Says so when files named as JSON Lines were read as plain text (a directory given without
/// `--format`): their documents are raw JSON, braces and keys included.
fn note_unread_formats(prepared: &Prepared) {
    let s = &prepared.summary;
    if s.jsonl.is_some() {
        return;
    }
    let named = |f: &&cllm_data::InputFile| Format::Jsonl.names(Path::new(&f.path));
    let n = s.inputs.iter().filter(named).count();
    if n > 0 {
        crate::say!(
            "note: {n} file{} named *.jsonl or *.ndjson read as plain text, JSON and all; \
             --format jsonl reads their text fields instead",
            if n == 1 { "" } else { "s" }
        );
    }
}

/// Where `--prepare-only` writes its summary.
pub enum Out {
    /// The directory `--out` named (already checked not to hold a run).
    Given(PathBuf),
    /// A default name, claimed (`run_dir::claim`) only after the preparation succeeded.
    Claim(PathBuf),
}

/// Runs `--prepare-only`: prepares, writes `dataset.json` and `tokenizer.json` into `out`, and
/// prints a short summary.
pub fn run(data: &DataArgs, path: Option<&PathBuf>, out: Out) -> Result<(), String> {
    let started = std::time::Instant::now();
    let prepared = prepare_corpus(data, path, 2)?;
    let out = match out {
        Out::Given(dir) => dir,
        Out::Claim(base) => crate::run_dir::claim(&base)?,
    };
    prepared.write_run_files(&out).map_err(|e| e.to_string())?;
    crate::console::stdout(&format!("{}\n", prepared.summary.human()))?;
    let how = if prepared.reused {
        "reused earlier preparation"
    } else {
        "prepared"
    };
    crate::console::stdout(&format!(
        "{how} in {:.2} s: {}\nsummary: {}\n",
        started.elapsed().as_secs_f64(),
        prepared.dir.display(),
        out.join("dataset.json").display()
    ))
}
