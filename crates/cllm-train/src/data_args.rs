//! The command-line options that choose and prepare a corpus, shared by every mode of
//! `cllm-train`.

use std::path::PathBuf;

use clap::Args;
use cllm_data::{
    DataDirs, Format, PrepareOptions, Source, TokenizerKind, default_cache_dir, registry,
};

use crate::builtin_corpus;

/// Where the training text comes from and how it is tokenized.
#[derive(Args, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataArgs {
    /// A registered dataset: `shakespeare`, `squad` (train + dev files), or `squad/dev`
    /// (dev file only, split 90/10). Without PATH or --dataset, the built-in corpus (this
    /// project's own docs and sources) is used.
    #[arg(long, value_name = "NAME", conflicts_with = "path")]
    pub dataset: Option<String>,

    /// Directory holding dataset files, in the layout of ../shared/datasets
    /// (`tinyshakespeare/input.txt`, `squad/dev-v1.1.json`). Searched before $CLLM_DATA_DIR and
    /// the user cache directory; missing files are downloaded into it.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Tokenizer: `char` (the corpus's characters, as nanoGPT), `byte`, or `bpe` (trained on
    /// the corpus). Default: the dataset's own (char for shakespeare, bpe for squad), else char.
    #[arg(long, value_name = "KIND")]
    pub tokenizer: Option<TokenizerKind>,

    /// Vocabulary size: of the trained tokenizer with `--tokenizer bpe` (default: the
    /// dataset's, else 2048); with char or byte, the model's embedding size, which must be at
    /// least the tokenizer's vocabulary (larger pads it, as nanoGPT's 50304).
    #[arg(long, value_name = "N")]
    pub vocab_size: Option<usize>,

    /// Format of the files under PATH (default: `jsonl` for a file named *.jsonl or *.ndjson,
    /// else `text`): `text` (a file is a document), `squad-v1` (SQuAD v1 JSON: each paragraph
    /// with its questions and answers is a document; in a directory, only `*.json` files are
    /// read) or `jsonl` (JSON Lines: each line's `text` field is a document, other fields
    /// ignored; in a directory, only `*.jsonl` and `*.ndjson` files are read).
    #[arg(
        long,
        value_name = "FORMAT",
        requires = "path",
        conflicts_with = "dataset"
    )]
    pub format: Option<Format>,

    /// With `--format jsonl`: the field of each record that holds its text (default `text`;
    /// `content`, `story` and the like in other exports).
    #[arg(long, value_name = "FIELD")]
    pub text_field: Option<String>,

    /// Where prepared token shards are cached (default: $CLLM_CACHE_DIR, else ~/.cache/cllm).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Never download missing dataset files; fail with instructions instead.
    #[arg(long)]
    pub no_download: bool,

    /// Skip corpus files larger than this many MiB (default: no limit). Files are read as a
    /// stream (text in pieces of 4 MiB, `squad-v1` JSON one article at a time, `jsonl` one
    /// line at a time), so their size costs no memory, only disk for the prepared shards.
    #[arg(long, value_name = "MIB")]
    pub max_file_mib: Option<u64>,
}

impl DataArgs {
    /// The preparation these options ask for. `path` is the positional corpus argument;
    /// `min_tokens` is one sequence plus its target.
    pub fn prepare_options(
        &self,
        path: Option<&PathBuf>,
        min_tokens: u64,
    ) -> Result<PrepareOptions, String> {
        let jsonl = match (self.format, path) {
            (Some(format), _) => format == Format::Jsonl,
            (None, Some(p)) => p.is_file() && Format::of_file(p) == Format::Jsonl,
            (None, None) => false,
        };
        if self.text_field.is_some() && !jsonl {
            return Err("--text-field applies to JSON Lines: add --format jsonl".into());
        }
        let source = match (path, &self.dataset) {
            (Some(p), _) => Source::Path(p.clone()),
            (None, Some(name)) => {
                if registry::resolve(name)
                    .map_err(|e| e.to_string())?
                    .is_none()
                {
                    return Err(format!(
                        "unknown dataset `{name}`; known datasets: {}",
                        registry::known_names()
                    ));
                }
                Source::Named(name.clone())
            }
            (None, None) => Source::Texts {
                name: builtin_corpus::NAME.into(),
                texts: builtin_corpus::texts(),
            },
        };
        let dataset_default = match &source {
            Source::Named(n) => registry::resolve(n)
                .ok()
                .flatten()
                .map(|r| r.spec.tokenizer),
            _ => None,
        };
        let kind = self
            .tokenizer
            .or(dataset_default)
            .unwrap_or(TokenizerKind::Char);
        Ok(PrepareOptions {
            source,
            data_dirs: DataDirs::new(self.data_dir.clone()),
            tokenizer: self.tokenizer,
            format: self.format,
            vocab_size: if kind == TokenizerKind::Bpe {
                self.vocab_size
            } else {
                None
            },
            cache_dir: self.cache_dir.clone().unwrap_or_else(default_cache_dir),
            max_file_bytes: self.max_file_mib.map(|mib| mib.saturating_mul(1 << 20)),
            text_field: self.text_field.clone(),
            allow_download: !self.no_download,
            min_tokens,
        })
    }
}
