//! Reading one source file exactly once and deciding whether it becomes a document.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::checksum::sha256_hex;

/// Why a file was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Same content as a file already loaded.
    Duplicate,
    /// The same file reached by a second path (symlink); not read again.
    SameFile,
    /// Contains NUL bytes near the start.
    Binary,
    /// Not valid UTF-8.
    NotUtf8,
    /// Empty or whitespace only.
    Empty,
    /// Larger than the size limit; not read.
    TooLarge,
    /// A hidden file.
    Hidden,
    /// A symlink that leads back into its own ancestry.
    SymlinkLoop,
    /// Could not be opened or read.
    Unreadable,
    /// Not a regular file: a named pipe, socket or device, which may never end or may block
    /// on open, and whose size and time say nothing about its content; never opened.
    NotRegular,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::Duplicate => "duplicate content",
            SkipReason::SameFile => "same file via another path",
            SkipReason::Binary => "binary",
            SkipReason::NotUtf8 => "not UTF-8",
            SkipReason::Empty => "empty",
            SkipReason::TooLarge => "too large",
            SkipReason::Hidden => "hidden",
            SkipReason::SymlinkLoop => "symlink loop",
            SkipReason::Unreadable => "unreadable",
            SkipReason::NotRegular => "not a regular file",
        })
    }
}

/// How many leading bytes are searched for NUL to call a file binary (as git does).
const BINARY_PROBE: usize = 8000;

/// Counts of what reading did; the dedup test checks these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadCounts {
    /// Files opened and read.
    pub files_opened: u64,
    /// Bytes read from them.
    pub bytes_read: u64,
}

/// A file that was read and accepted.
pub struct Loaded {
    /// Its text.
    pub text: String,
    /// sha256 of its bytes.
    pub sha256: String,
    /// The raw bytes' length.
    pub bytes: u64,
}

/// Reads files once each and remembers content hashes to drop duplicates.
#[derive(Default)]
pub struct SourceReader {
    seen: HashSet<String>,
    /// What has been read so far.
    pub counts: ReadCounts,
}

impl SourceReader {
    /// Reads `path` (of `size` bytes per the walk) unless it is over `max_bytes`, then decides
    /// whether it is usable text. Never panics on odd content.
    pub fn read(&mut self, path: &Path, size: u64, max_bytes: u64) -> Result<Loaded, SkipReason> {
        if size > max_bytes {
            return Err(SkipReason::TooLarge);
        }
        let bytes = std::fs::read(path).map_err(|_| SkipReason::Unreadable)?;
        self.counts.files_opened += 1;
        self.counts.bytes_read += bytes.len() as u64;
        if bytes.len() as u64 > max_bytes {
            return Err(SkipReason::TooLarge); // grew after the walk
        }
        self.accept(bytes)
    }

    /// Classifies bytes already in memory (a file read by someone else, or built-in text).
    pub fn accept(&mut self, bytes: Vec<u8>) -> Result<Loaded, SkipReason> {
        let sha256 = sha256_hex(&bytes);
        if !self.seen.insert(sha256.clone()) {
            return Err(SkipReason::Duplicate);
        }
        if bytes[..bytes.len().min(BINARY_PROBE)].contains(&0) {
            return Err(SkipReason::Binary);
        }
        let len = bytes.len() as u64;
        let text = String::from_utf8(bytes).map_err(|_| SkipReason::NotUtf8)?;
        if text.trim().is_empty() {
            return Err(SkipReason::Empty);
        }
        Ok(Loaded {
            text,
            sha256,
            bytes: len,
        })
    }
}
