//! Preparing a corpus: sources -> documents (each file read once) -> tokenizer -> token shards,
//! cached by a key so a second run with unchanged inputs reuses the shards without reading
//! any source.
//!
//! A prepared directory `<cache>/prepared/<name>-<key>/` holds `train.bin`, `val.bin`,
//! `tokenizer.json` and `dataset.json`. It is built in a sibling temporary directory and
//! renamed into place only when complete, so a failure leaves nothing half-written (`cache.rs`:
//! the build-and-rename, the per-preparation lock, reuse; `documents.rs`: reading the sources;
//! `encoder.rs`: the parallel encoder).
//!
//! Memory: every source is read once, as a stream, whatever its size: a text file in pieces of
//! at most [`crate::source::STREAM_CHUNK`] bytes, a SQuAD file an article at a time, a JSON
//! Lines file a line at a time (a registered dataset file is checksummed in the same read).
//! Besides: I/O buffers of a few MiB and the tokenizer (a BPE trainer sees at most
//! [`BPE_TRAIN_BYTES`] of text, which bounds its statistics). The corpus as a whole is never
//! held in memory: documents go to a spill file and are read back in
//! [`crate::spill::CHUNK_BYTES`] pieces.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::cache::{PrepareLock, build_into, remove_leftovers, reuse};
use crate::checksum::{hex, sha256_hex};
use crate::documents::{Inputs, PlannedInput, Reading};
use crate::encoder::Encoder;
use crate::error::{DataError, Result};
use crate::fetch::DataDirs;
use crate::jsonl;
use crate::registry::{self, Format, Resolved};
use crate::shard::{ShardReader, ShardWriter, copy_range};
use crate::source::SourceReader;
use crate::spill::{DocSplit, SpillWriter};
use crate::summary::{DatasetSummary, PREPARED_VERSION, peak_rss_bytes};
use crate::tokenizer::{Tokenizer, TokenizerKind};
use crate::walk::{self, Candidate};

/// Text put between consecutive documents of one split.
pub const DOC_SEPARATOR: &str = "\n\n";
/// Share of an auto-split corpus that goes to training (nanoGPT's 90%).
pub const TRAIN_FRACTION: f64 = 0.9;
/// Default BPE vocabulary when neither the dataset nor the user gives one.
pub const DEFAULT_BPE_VOCAB: usize = 2048;
/// At most this much text (a sample spread over the corpus) trains a BPE tokenizer, which
/// bounds the trainer's time and memory whatever the corpus size. The whole corpus is encoded.
pub const BPE_TRAIN_BYTES: u64 = 32 << 20;

/// What to prepare.
#[derive(Clone, Debug)]
pub enum Source {
    /// A registered dataset, `name` or `name/variant`.
    Named(String),
    /// A file or a directory.
    Path(PathBuf),
    /// Texts given in memory (name, text); `name` identifies the collection.
    Texts {
        /// Name of the collection (`builtin`).
        name: String,
        /// (document name, text) pairs.
        texts: Vec<(String, String)>,
    },
}

/// Options of [`prepare`].
#[derive(Clone, Debug)]
pub struct PrepareOptions {
    /// What to prepare.
    pub source: Source,
    /// Where dataset files are looked up (and downloaded to).
    pub data_dirs: DataDirs,
    /// Tokenizer; `None` takes the dataset's default (`char` for paths and texts).
    pub tokenizer: Option<TokenizerKind>,
    /// Format of the files of a [`Source::Path`] (named datasets know theirs); `None`: JSON
    /// Lines for a file named `*.jsonl` or `*.ndjson` ([`Format::of_file`]), else text.
    pub format: Option<Format>,
    /// BPE vocabulary size; `None` takes the dataset's default or [`DEFAULT_BPE_VOCAB`].
    pub vocab_size: Option<usize>,
    /// Root of the prepared-data cache.
    pub cache_dir: PathBuf,
    /// Source files larger than this are skipped; `None`: no limit. Every source is streamed,
    /// so memory does not grow with a file's size.
    pub max_file_bytes: Option<u64>,
    /// The field of a JSON Lines record that holds its text; `None`: `text`.
    pub text_field: Option<String>,
    /// Whether missing dataset files may be downloaded.
    pub allow_download: bool,
    /// Each split must hold at least this many tokens (one sequence plus its target).
    pub min_tokens: u64,
}

impl PrepareOptions {
    /// The JSON Lines text field: [`text_field`](Self::text_field), else `text`.
    pub fn text_field(&self) -> &str {
        self.text_field.as_deref().unwrap_or(jsonl::DEFAULT_FIELD)
    }

    /// Defaults for `source`: search dirs from the environment, cache in the user cache dir.
    pub fn new(source: Source) -> Self {
        PrepareOptions {
            source,
            data_dirs: DataDirs::new(None),
            tokenizer: None,
            format: None,
            vocab_size: None,
            cache_dir: default_cache_dir(),
            max_file_bytes: None,
            text_field: None,
            allow_download: true,
            min_tokens: 2,
        }
    }
}

/// `$CLLM_CACHE_DIR`, else the user cache directory's `cllm`, else `./.cllm-cache`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CLLM_CACHE_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::cache_dir()
        .map(|d| d.join("cllm"))
        .unwrap_or_else(|| PathBuf::from(".cllm-cache"))
}

/// A train or validation split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Training tokens.
    Train,
    /// Validation tokens.
    Val,
}

impl Split {
    /// `"train"` or `"val"`, as metrics and reports name the split.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
        }
    }

    pub(crate) fn file_name(self) -> &'static str {
        match self {
            Split::Train => "train.bin",
            Split::Val => "val.bin",
        }
    }
}

/// A prepared corpus.
#[derive(Debug)]
pub struct Prepared {
    /// The prepared-data directory.
    pub dir: PathBuf,
    /// Its `dataset.json`.
    pub summary: DatasetSummary,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// True if an earlier preparation was reused.
    pub reused: bool,
}

impl Prepared {
    /// Opens a split's shard.
    pub fn open(&self, split: Split) -> Result<ShardReader> {
        ShardReader::open(&self.dir.join(split.file_name()))
    }

    /// Writes `dataset.json` and `tokenizer.json` into `run_dir` (each through a temporary
    /// file and a rename).
    pub fn write_run_files(&self, run_dir: &Path) -> Result<()> {
        fs::create_dir_all(run_dir).map_err(|e| DataError::io(run_dir, "creating", e))?;
        write_atomic(
            &run_dir.join("dataset.json"),
            self.summary.to_json().as_bytes(),
        )?;
        write_atomic(
            &run_dir.join("tokenizer.json"),
            self.tokenizer.to_json()?.as_bytes(),
        )
    }
}

/// Writes `bytes` to `path` through `path.tmp` and a rename, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).map_err(|e| DataError::io(&tmp, "writing", e))?;
    fs::rename(&tmp, path).map_err(|e| DataError::io(path, "renaming into", e))
}

struct Plan {
    display: String,
    identity: String,
    format: Format,
    tokenizer: TokenizerKind,
    vocab_size: usize,
    inputs: Inputs,
}

impl Plan {
    fn new(opts: &PrepareOptions) -> Result<Plan> {
        let bpe_vocab =
            |default: Option<usize>| opts.vocab_size.or(default).unwrap_or(DEFAULT_BPE_VOCAB);
        match &opts.source {
            Source::Named(name) => {
                let resolved =
                    registry::resolve(name)?.ok_or_else(|| DataError::UnknownDataset {
                        name: name.clone(),
                        known: registry::known_names(),
                    })?;
                let inputs = named_inputs(&resolved, opts)?;
                let tokenizer = opts.tokenizer.unwrap_or(resolved.spec.tokenizer);
                Ok(Plan {
                    display: resolved.display_name(),
                    identity: format!("dataset:{}", resolved.display_name()),
                    format: resolved.spec.format,
                    tokenizer,
                    vocab_size: bpe_vocab(resolved.spec.vocab_size),
                    inputs: Inputs::Files(inputs),
                })
            }
            Source::Path(path) => {
                let format = opts.format.unwrap_or_else(|| {
                    if path.is_file() {
                        Format::of_file(path)
                    } else {
                        Format::Text
                    }
                });
                let walk = walk::walk(path, format)?;
                let canonical =
                    fs::canonicalize(path).map_err(|e| DataError::io(path, "resolving", e))?;
                let mut identity = format!("path:{}:{format:?}", canonical.display());
                if format == Format::Jsonl {
                    identity += &format!(":{:?}", opts.text_field());
                }
                Ok(Plan {
                    display: path.display().to_string(),
                    identity,
                    format,
                    tokenizer: opts.tokenizer.unwrap_or(TokenizerKind::Char),
                    vocab_size: bpe_vocab(None),
                    inputs: Inputs::Walk(walk),
                })
            }
            Source::Texts { name, texts } => Ok(Plan {
                display: name.clone(),
                identity: format!("texts:{name}"),
                format: Format::Text,
                tokenizer: opts.tokenizer.unwrap_or(TokenizerKind::Char),
                vocab_size: bpe_vocab(None),
                inputs: Inputs::Texts(texts.clone()),
            }),
        }
    }

    /// Hash of everything that determines the prepared bytes except the inputs' contents.
    fn key(&self, opts: &PrepareOptions) -> String {
        let vocab = if self.tokenizer == TokenizerKind::Bpe {
            self.vocab_size
        } else {
            0
        };
        let id = format!(
            "v{PREPARED_VERSION}|{}|{}|{vocab}|{:?}|{TRAIN_FRACTION}|{DOC_SEPARATOR:?}|{BPE_TRAIN_BYTES}",
            self.identity, self.tokenizer, opts.max_file_bytes
        );
        sha256_hex(id.as_bytes())[..16].to_string()
    }

    /// Stat fingerprint of the inputs (no reading).
    fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        let mut add = |c: &Candidate| {
            h.update(format!("{}\0{}\0{}\n", c.path.display(), c.bytes, c.modified_ns).as_bytes());
        };
        match &self.inputs {
            Inputs::Files(files) => files.iter().for_each(|f| add(&f.candidate)),
            Inputs::Walk(w) => w.candidates.iter().for_each(add),
            Inputs::Texts(texts) => {
                for (name, text) in texts {
                    h.update(name.as_bytes());
                    h.update([0]);
                    h.update(sha256_hex(text.as_bytes()).as_bytes());
                }
            }
        }
        hex(&h.finalize())
    }

    fn dir_name(&self, key: &str) -> String {
        let base: String = self
            .display
            .rsplit(['/', '\\'])
            .find(|s| !s.is_empty())
            .unwrap_or("corpus")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let name = if self.display.starts_with("squad/") {
            format!("squad-{base}")
        } else {
            base
        };
        format!("{name}-{key}")
    }
}

fn named_inputs(resolved: &Resolved, opts: &PrepareOptions) -> Result<Vec<PlannedInput>> {
    let v = &resolved.variant;
    let roles = v
        .split
        .iter()
        .map(|id| (id, DocSplit::Auto))
        .chain(v.train.iter().map(|id| (id, DocSplit::Train)))
        .chain(v.val.iter().map(|id| (id, DocSplit::Val)));
    let mut out = Vec::new();
    for (id, split) in roles {
        let file = resolved
            .spec
            .file(id)
            .expect("registry variants are validated");
        let path = opts
            .data_dirs
            .locate(file, opts.allow_download)
            .map_err(|e| with_local_variants(e, resolved, &opts.data_dirs))?;
        let candidate =
            walk::candidate(&path).map_err(|e| DataError::io(&path, "reading metadata of", e))?;
        out.push(PlannedInput {
            candidate,
            split,
            expected: file.expected(),
        });
    }
    Ok(out)
}

/// Adds to a missing-file error the other variants of the dataset whose files are all on disk
/// (`squad` needs the training set; `squad/dev` needs only the dev set, which may be there).
fn with_local_variants(e: DataError, resolved: &Resolved, dirs: &DataDirs) -> DataError {
    let DataError::Missing(mut missing) = e else {
        return e;
    };
    let spec = &resolved.spec;
    missing.local_variants = spec
        .variants
        .iter()
        .filter(|(name, v)| {
            **name != resolved.variant_name
                && v.split
                    .iter()
                    .chain(&v.train)
                    .chain(&v.val)
                    .all(|id| spec.file(id).is_some_and(|f| dirs.find(&f.path).is_some()))
        })
        .map(|(name, _)| spec.variant_name(name))
        .collect();
    DataError::Missing(missing)
}

/// Prepares `opts.source` (or reuses an earlier preparation) and returns it.
/// `progress` is called with short phase messages.
pub fn prepare(opts: &PrepareOptions, progress: &mut dyn FnMut(&str)) -> Result<Prepared> {
    let plan = Plan::new(opts)?;
    let key = plan.key(opts);
    let fingerprint = plan.fingerprint();
    let root = opts.cache_dir.join("prepared");
    let dir = root.join(plan.dir_name(&key));
    let prepared = match reuse(&dir, &fingerprint) {
        Some(p) => p,
        None => {
            fs::create_dir_all(&root).map_err(|e| DataError::io(&root, "creating", e))?;
            let locks = opts.cache_dir.join("locks");
            let lock = PrepareLock::acquire(&locks, &plan.dir_name(&key), progress)?;
            // Another process may have prepared the same inputs while this one waited.
            match reuse(&dir, &fingerprint) {
                Some(p) => p,
                None => {
                    if lock.held() {
                        remove_leftovers(&root, &plan.dir_name(&key));
                    }
                    build_into(&dir, |tmp| {
                        build(tmp, &plan, opts, key, fingerprint, progress)
                    })?;
                    let summary = DatasetSummary::load(&dir.join("dataset.json"))?;
                    let tokenizer = Tokenizer::load(&dir.join("tokenizer.json"))?;
                    Prepared {
                        dir,
                        summary,
                        tokenizer,
                        reused: false,
                    }
                }
            }
        }
    };
    let s = &prepared.summary;
    if s.train_tokens < opts.min_tokens || s.val_tokens < opts.min_tokens {
        return Err(DataError::Corpus(format!(
            "{}: corpus too small: {} train and {} val tokens, but one sequence needs {} (sequence length + 1); \
             use a larger corpus or a smaller --seq-len",
            s.source, s.train_tokens, s.val_tokens, opts.min_tokens
        )));
    }
    Ok(prepared)
}

fn build(
    tmp: &Path,
    plan: &Plan,
    opts: &PrepareOptions,
    key: String,
    fingerprint: String,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let started = Instant::now();
    let mut reader = SourceReader::default();
    let mut spill = SpillWriter::create(&tmp.join("documents.txt"))?;

    // 1. Read every source once; accepted documents go to the spill file.
    let want_chars = plan.tokenizer == TokenizerKind::Char;
    let max_bytes = opts.max_file_bytes.unwrap_or(u64::MAX);
    let reading = Reading {
        reader: &mut reader,
        spill: &mut spill,
        format: plan.format,
        text_field: opts.text_field(),
        want_chars,
        max_bytes,
    };
    let mut tally = reading.read(&plan.inputs, progress)?;
    let documents = spill.documents() as u64;
    if documents == 0 {
        let skipped: Vec<String> = tally
            .skipped
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        return Err(DataError::Corpus(format!(
            "{}: no usable text: {} seen{}",
            plan.display,
            crate::summary::files(tally.files_seen),
            if skipped.is_empty() {
                String::new()
            } else {
                format!(", skipped: {}", skipped.join(", "))
            }
        )));
    }
    let mut spill = spill.finish()?;

    // 2. The tokenizer.
    let tokenizer = match plan.tokenizer {
        TokenizerKind::Char => {
            if documents > 1 {
                tally.chars.see(DOC_SEPARATOR);
            }
            Tokenizer::from_chars(tally.chars.iter())
        }
        TokenizerKind::Byte => Tokenizer::Byte,
        TokenizerKind::Bpe => {
            progress(&format!(
                "training BPE tokenizer (vocabulary {})",
                plan.vocab_size
            ));
            let mut chunks = spill.sampled_chunks(BPE_TRAIN_BYTES);
            let t = Tokenizer::train_bpe(chunks.by_ref(), plan.vocab_size)?;
            chunks.finish()?;
            t
        }
    };
    let vocab = tokenizer.vocab_size();

    // 3. Encode document by document into the shards, chunks encoded in parallel batches.
    let mut sep = Vec::new();
    if documents > 1 {
        tokenizer.encode(DOC_SEPARATOR, &mut sep)?;
    }
    let mut train = ShardWriter::create(&tmp.join("train.bin"), vocab)?;
    let mut val = ShardWriter::create(&tmp.join("val.bin"), vocab)?;
    let has_auto = spill.docs().iter().any(|d| d.split == DocSplit::Auto);
    let auto_path = tmp.join("auto.bin");
    let mut auto = if has_auto {
        Some(ShardWriter::create(&auto_path, vocab)?)
    } else {
        None
    };
    let mut encoder = Encoder::new(&tokenizer, sep);
    let docs = spill.docs().to_vec();
    for (i, doc) in docs.iter().enumerate() {
        if i % 512 == 0 {
            progress(&format!("encoding documents: {i}/{}", docs.len()));
        }
        encoder.start_document(doc.split);
        spill.for_each_chunk(*doc, |text| {
            encoder.push(doc.split, text);
            if encoder.is_full() {
                encoder.flush(&mut train, &mut val, auto.as_mut())?;
            }
            Ok(())
        })?;
    }
    encoder.flush(&mut train, &mut val, auto.as_mut())?;
    if let Some(auto) = auto {
        let n = auto.finish()?;
        let cut = (n as f64 * TRAIN_FRACTION) as u64;
        let mut r = ShardReader::open(&auto_path)?;
        progress("writing shards");
        copy_range(&mut r, 0, cut, &mut train)?;
        copy_range(&mut r, cut, n - cut, &mut val)?;
        drop(r);
        let _ = fs::remove_file(&auto_path);
    }
    let (train_tokens, val_tokens) = (train.finish()?, val.finish()?);
    drop(spill);
    let _ = fs::remove_file(tmp.join("documents.txt"));

    // 4. Tokenizer and summary.
    tokenizer.save(&tmp.join("tokenizer.json"))?;
    let summary = DatasetSummary {
        prepared_version: PREPARED_VERSION,
        source: plan.display.clone(),
        key,
        inputs_fingerprint: fingerprint,
        tokenizer: plan.tokenizer,
        vocab_size: vocab,
        tokenizer_sha256: tokenizer.fingerprint()?,
        files_seen: tally.files_seen,
        files_loaded: tally.files_loaded,
        read: reader.counts,
        skipped: tally.skipped,
        skipped_examples: tally.examples,
        bytes_loaded: tally.bytes_loaded,
        documents,
        train_tokens,
        val_tokens,
        inputs: tally.inputs,
        squad: tally.squad,
        jsonl: tally.jsonl,
        prepare_seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
    };
    write_atomic(&tmp.join("dataset.json"), summary.to_json().as_bytes())
}
