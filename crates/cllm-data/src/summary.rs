//! [`DatasetSummary`]: what `dataset.json` records about a prepared corpus.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checksum::sha256_hex;
use crate::error::{DataError, Result};
use crate::jsonl::JsonlStats;
use crate::source::{ReadCounts, SkipReason};
use crate::squad::SquadStats;
use crate::tokenizer::TokenizerKind;

/// Version of the prepared-data layout; a different version is re-prepared, never reused.
pub const PREPARED_VERSION: u32 = 1;

/// One input file that was loaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// Canonical path (or `builtin:NAME` for built-in text).
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// sha256 of the content.
    pub sha256: String,
}

/// One skipped file, for the examples list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// The path.
    pub path: PathBuf,
    /// Why.
    pub reason: SkipReason,
}

/// Everything `dataset.json` records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetSummary {
    /// [`PREPARED_VERSION`] when written.
    pub prepared_version: u32,
    /// What was prepared: a dataset name (`squad/dev`), a path, or `builtin`.
    pub source: String,
    /// Key of the prepared-data directory (hash of source, tokenizer and options).
    pub key: String,
    /// sha256 over the stat fingerprints (path, size, mtime) of every candidate input; a
    /// different value on a later run means the inputs changed and the data is re-prepared.
    pub inputs_fingerprint: String,
    /// Tokenizer kind.
    pub tokenizer: TokenizerKind,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// sha256 of `tokenizer.json`.
    pub tokenizer_sha256: String,
    /// Files found by the walk or named by the dataset.
    pub files_seen: u64,
    /// Files that became documents.
    pub files_loaded: u64,
    /// Files opened and read (each at most once).
    pub read: ReadCounts,
    /// Skipped files by reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Up to 20 skipped files, as examples.
    pub skipped_examples: Vec<SkippedFile>,
    /// Bytes of text loaded (after dedup).
    pub bytes_loaded: u64,
    /// Documents (files, or SQuAD paragraphs).
    pub documents: u64,
    /// Tokens in the training split.
    pub train_tokens: u64,
    /// Tokens in the validation split.
    pub val_tokens: u64,
    /// Loaded inputs with their sha256.
    pub inputs: Vec<InputFile>,
    /// SQuAD counts, for SQuAD datasets.
    pub squad: Option<SquadStats>,
    /// JSON Lines counts, for JSON Lines corpora.
    pub jsonl: Option<JsonlStats>,
    /// Wall time of the preparation.
    pub prepare_seconds: f64,
    /// Peak resident memory of the process when preparation finished (Linux), in bytes.
    pub peak_rss_bytes: Option<u64>,
}

impl DatasetSummary {
    /// sha256 over the contents of the files that became documents, in the order they were
    /// read (each file's own sha256, one per line): equal exactly when the same texts were
    /// prepared in the same order, wherever the files live and however they are named.
    pub fn content_sha256(&self) -> String {
        let lines: String = self
            .inputs
            .iter()
            .map(|f| format!("{}\n", f.sha256))
            .collect();
        sha256_hex(lines.as_bytes())
    }

    /// Reads a `dataset.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, "reading", e))?;
        serde_json::from_str(&text).map_err(|e| DataError::json(path, &e))
    }

    /// The JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a summary always serialises")
    }

    /// "1 duplicate content, 2 binary", or `None` when nothing was skipped.
    fn skipped_counts(&self) -> Option<String> {
        let counts: Vec<String> = self
            .skipped
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        (!counts.is_empty()).then(|| counts.join(", "))
    }

    /// One line for people: what was loaded and skipped, the tokenizer and the token counts.
    pub fn one_line(&self) -> String {
        let mut s = format!(
            "{}: {} of {} files loaded ({:.2} MB",
            self.source,
            self.files_loaded,
            self.files_seen,
            self.bytes_loaded as f64 / 1e6,
        );
        if let Some(skipped) = self.skipped_counts() {
            s += &format!("; skipped {skipped}");
        }
        s += &format!(
            "), {} tokenizer with vocab {}, {} train + {} val tokens",
            self.tokenizer, self.vocab_size, self.train_tokens, self.val_tokens
        );
        s
    }

    /// A few lines for people.
    pub fn human(&self) -> String {
        let mut s = format!(
            "{}: {} seen, {} loaded ({:.2} MB), {}\n",
            self.source,
            files(self.files_seen),
            self.files_loaded,
            self.bytes_loaded as f64 / 1e6,
            counted(self.documents, "document")
        );
        if let Some(skipped) = self.skipped_counts() {
            s += &format!("skipped: {skipped}\n");
        }
        if let Some(q) = &self.squad {
            s += &format!(
                "squad: {} articles, {} paragraphs, {} questions\n",
                q.articles, q.paragraphs, q.questions
            );
        }
        if let Some(j) = &self.jsonl {
            s += &format!("jsonl: {}", counted(j.records, "record"));
            if j.empty > 0 {
                s += &format!(" ({} with empty text, no document)", j.empty);
            }
            s.push('\n');
        }
        s += &format!(
            "tokenizer: {} (vocab {}); tokens: {} train, {} val",
            self.tokenizer, self.vocab_size, self.train_tokens, self.val_tokens
        );
        s
    }
}

/// Peak resident set size of this process (`VmHWM`), where the platform reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// "1 file", "2 files".
pub(crate) fn files(n: u64) -> String {
    counted(n, "file")
}

/// `n` and `noun`, plural unless `n` is 1: "1 document", "2 documents".
fn counted(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_the_plural_unless_one() {
        assert_eq!(files(1), "1 file");
        assert_eq!(files(0), "0 files");
        assert_eq!(counted(1, "document"), "1 document");
        assert_eq!(counted(2067, "document"), "2067 documents");
    }
}
