//! Reading one source file exactly once and deciding whether it becomes a document.

use std::collections::HashSet;
use std::fmt;
use std::io::{ErrorKind, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::checksum::{hex, sha256_hex};
use crate::error::DataError;

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

/// Largest piece of a file [`SourceReader::stream`] holds in memory at once.
pub const STREAM_CHUNK: usize = 4 << 20;

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

/// A file that [`SourceReader::stream`] read to the end and accepted; its text went to the sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Streamed {
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

    /// Reads `path` (of `size` bytes per the walk) once, in pieces of at most [`STREAM_CHUNK`]
    /// bytes, and hands its text to `sink` piece by piece (cut at character boundaries), so a
    /// file of any size costs one piece of memory. The same rules as [`read`](Self::read)
    /// decide whether it is usable, but a file found binary or not UTF-8 is not read further;
    /// only when the whole file is read are emptiness and duplication known. So when the inner
    /// result is a [`SkipReason`], `sink` may already have seen text of the file, and the
    /// caller must drop it (`SpillWriter::discard`).
    ///
    /// # Errors
    /// The outer error is `sink`'s own, which ends the read.
    pub fn stream(
        &mut self,
        path: &Path,
        size: u64,
        max_bytes: u64,
        sink: &mut dyn FnMut(&str) -> Result<(), DataError>,
    ) -> Result<Result<Streamed, SkipReason>, DataError> {
        if size > max_bytes {
            return Ok(Err(SkipReason::TooLarge));
        }
        let Ok(mut file) = std::fs::File::open(path) else {
            return Ok(Err(SkipReason::Unreadable));
        };
        self.counts.files_opened += 1;
        let mut hasher = Sha256::new();
        // Sized for the file as the walk saw it (plus a read that finds the end), within bounds.
        let len = usize::try_from(size.saturating_add(4)).unwrap_or(usize::MAX);
        let mut buf = vec![0u8; len.clamp(4096, STREAM_CHUNK)];
        // `buf[..carry]`: the start of a character cut by the previous read.
        let mut carry = 0;
        let mut total = 0u64;
        let mut blank = true;
        loop {
            let n = match file.read(&mut buf[carry..]) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return Ok(Err(SkipReason::Unreadable)),
            };
            self.counts.bytes_read += n as u64;
            if n == 0 {
                if carry > 0 {
                    return Ok(Err(SkipReason::NotUtf8)); // ends inside a character
                }
                break;
            }
            let fresh = &buf[carry..carry + n];
            hasher.update(fresh);
            if total < BINARY_PROBE as u64 {
                let probe = (BINARY_PROBE - total as usize).min(n);
                if fresh[..probe].contains(&0) {
                    return Ok(Err(SkipReason::Binary));
                }
            }
            total += n as u64;
            if total > max_bytes {
                return Ok(Err(SkipReason::TooLarge)); // grew after the walk
            }
            let filled = carry + n;
            let (text, valid) = match std::str::from_utf8(&buf[..filled]) {
                Ok(text) => (text, filled),
                // An incomplete character at the end: keep it for the next read.
                Err(e) if e.error_len().is_none() => {
                    let valid = e.valid_up_to();
                    let Ok(text) = std::str::from_utf8(&buf[..valid]) else {
                        return Ok(Err(SkipReason::NotUtf8)); // cannot be: valid up to there
                    };
                    (text, valid)
                }
                Err(_) => return Ok(Err(SkipReason::NotUtf8)),
            };
            if blank {
                blank = text.chars().all(char::is_whitespace);
            }
            sink(text)?;
            // At most 3 bytes carried (a character has at most 4), so each read has room.
            buf.copy_within(valid..filled, 0);
            carry = filled - valid;
        }
        if blank {
            return Ok(Err(SkipReason::Empty));
        }
        let sha256 = hex(&hasher.finalize());
        if !self.seen.insert(sha256.clone()) {
            return Ok(Err(SkipReason::Duplicate));
        }
        Ok(Ok(Streamed {
            sha256,
            bytes: total,
        }))
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
