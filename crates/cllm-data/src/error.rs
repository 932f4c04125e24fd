//! [`DataError`]: every way preparing or reading data can fail, each a one-line message that
//! names the file involved and, where it helps, what to do about it.

use std::path::PathBuf;

/// A data error. `Display` gives one line fit for a user.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An I/O operation on a named file failed.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("reading", "creating"...).
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file could not be parsed or does not have the expected schema.
    #[error("{path}:{line}:{column}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What serde_json said.
        message: String,
    },
    /// The dataset name is not in the registry.
    #[error("unknown dataset `{name}`; known datasets: {known}")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// Comma-separated list of known names.
        known: String,
    },
    /// A dataset file is missing and could not be downloaded.
    #[error("{0}")]
    Missing(Box<MissingFile>),
    /// A file's checksum does not match the registry.
    #[error(
        "{path}: {kind} is {actual}, expected {expected}; the file is corrupt or a different version (delete it to download it again)"
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// `sha256` or `git blob id`.
        kind: &'static str,
        /// The computed checksum.
        actual: String,
        /// The registry's checksum.
        expected: String,
    },
    /// The corpus has no usable text, or too little for one training sequence.
    #[error("{0}")]
    Corpus(String),
    /// A token shard is malformed.
    #[error("{path}: {message}; delete the prepared data directory and prepare again")]
    Shard {
        /// The shard file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A tokenizer could not be trained, loaded or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The dataset registry itself is malformed (a bug in `datasets/*.toml`).
    #[error("dataset registry {file}: {message}")]
    Registry {
        /// The registry file.
        file: String,
        /// What is wrong.
        message: String,
    },
}

impl DataError {
    /// Wraps an I/O error with the path and action.
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            action,
            source,
        }
    }

    /// Wraps a serde_json error with the file it came from.
    pub fn json(path: impl Into<PathBuf>, e: &serde_json::Error) -> Self {
        let message = e.to_string();
        // serde_json appends " at line L column C"; the position is printed in front instead.
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        DataError::Json {
            path: path.into(),
            line: e.line(),
            column: e.column(),
            message,
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// What [`DataError::Missing`] reports (boxed: it is the largest error).
#[derive(Debug)]
pub struct MissingFile {
    /// The file's path relative to the data directory.
    pub file: String,
    /// The directories searched, comma-separated.
    pub searched: String,
    /// The official URL.
    pub url: String,
    /// Why the download failed.
    pub reason: String,
    /// Where the file should go.
    pub dest: PathBuf,
    /// Other variants of the dataset whose files are all on disk (`--dataset squad/dev`).
    pub local_variants: Vec<String>,
}

impl std::fmt::Display for MissingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let MissingFile {
            file,
            searched,
            url,
            reason,
            dest,
            local_variants,
        } = self;
        write!(
            f,
            "dataset file `{file}` not found in {searched}; downloading {url} failed ({reason}). \
             Put the file at {} (or pass --data-dir DIR holding `{file}`)",
            dest.display()
        )?;
        if !local_variants.is_empty() {
            let names: Vec<String> = local_variants
                .iter()
                .map(|v| format!("`--dataset {v}`"))
                .collect();
            write!(f, ". Available without a download: {}", names.join(", "))?;
        }
        Ok(())
    }
}
