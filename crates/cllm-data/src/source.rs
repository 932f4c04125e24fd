//! Reading one source file exactly once and deciding whether it becomes a document.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, ErrorKind, Read};
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
    /// In a directory read as SQuAD JSON, a file not named `*.json`.
    NotJson,
    /// In a directory read as JSON Lines, a file not named `*.jsonl` (or `*.ndjson`).
    NotJsonl,
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
            SkipReason::NotJson => "not a .json file",
            SkipReason::NotJsonl => "not a .jsonl file",
        })
    }
}

/// How many leading bytes are searched for NUL to call a file binary (as git does).
pub const BINARY_PROBE: usize = 8000;

/// Largest piece of a file [`Checked::pieces`] holds in memory at once.
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

/// A source that [`SourceReader::conclude`] accepted after reading it to the end.
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
    /// Opens `path` (of `size` bytes per the walk) for one read through [`Checked`], unless it
    /// is over `max_bytes` (not opened) or cannot be opened.
    pub fn open(
        &mut self,
        path: &Path,
        size: u64,
        max_bytes: u64,
    ) -> Result<Checked<File>, SkipReason> {
        if size > max_bytes {
            return Err(SkipReason::TooLarge);
        }
        let file = File::open(path).map_err(|_| SkipReason::Unreadable)?;
        self.counts.files_opened += 1;
        Ok(Checked::new(file, size, max_bytes))
    }

    /// The verdict on a source read through `checked` (to its end, unless it was refused on
    /// the way): usable, or why not. A usable source's hash is remembered, so the same content
    /// from another file is a [`SkipReason::Duplicate`]. Called once per source.
    pub fn conclude<R>(&mut self, checked: &mut Checked<R>) -> Result<Streamed, SkipReason> {
        self.counts.bytes_read += checked.total;
        let streamed = checked.verdict()?;
        if !self.seen.insert(streamed.sha256.clone()) {
            return Err(SkipReason::Duplicate);
        }
        Ok(streamed)
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

/// Skips a UTF-8 byte-order mark at the start of a JSON source (some Windows tools write one;
/// JSON parsers refuse it). A JSON text cannot start with any of the mark's bytes, so a
/// partial match consumed spoils nothing that was valid.
pub fn skip_json_bom(input: &mut impl BufRead) -> std::io::Result<()> {
    for &b in b"\xEF\xBB\xBF" {
        if input.fill_buf()?.first() != Some(&b) {
            break;
        }
        input.consume(1);
    }
    Ok(())
}

/// A reader over one source that applies [`SourceReader`]'s rules to the bytes as they pass
/// through: it hashes and counts them, and refuses (an I/O error for the consumer, the
/// [`SkipReason`] kept for [`SourceReader::conclude`]) at the first NUL among the leading
/// [`BINARY_PROBE`] bytes, the first byte that is not UTF-8, or the first byte over the size
/// limit. So a parser reading through it stops where the file stops being usable text.
pub struct Checked<R> {
    inner: R,
    hasher: Sha256,
    total: u64,
    max_bytes: u64,
    size_hint: u64,
    /// The start of a character cut by the end of the last read (at most 3 bytes).
    tail: [u8; 4],
    tail_len: usize,
    /// No character other than whitespace so far.
    blank: bool,
    refused: Option<SkipReason>,
}

impl<R: Read> Checked<R> {
    /// Checks what is read from `inner`, a source of about `size_hint` bytes that must not
    /// exceed `max_bytes`.
    pub fn new(inner: R, size_hint: u64, max_bytes: u64) -> Self {
        Checked {
            inner,
            hasher: Sha256::new(),
            total: 0,
            max_bytes,
            size_hint,
            tail: [0; 4],
            tail_len: 0,
            blank: true,
            refused: None,
        }
    }

    /// The size the source was expected to have.
    pub fn size_hint(&self) -> u64 {
        self.size_hint
    }

    /// Reads to the end and hands the text to `sink` in pieces of at most [`STREAM_CHUNK`]
    /// bytes, cut at character boundaries. Stops early, without error, when the source is
    /// refused (the reason comes from [`SourceReader::conclude`]).
    ///
    /// # Errors
    /// `sink`'s own error, which ends the read.
    pub fn pieces(
        &mut self,
        sink: &mut dyn FnMut(&str) -> Result<(), DataError>,
    ) -> Result<(), DataError> {
        // Sized for the source as the walk saw it (plus a read that finds the end), within
        // bounds.
        let len = usize::try_from(self.size_hint.saturating_add(4)).unwrap_or(usize::MAX);
        let mut buf = vec![0u8; len.clamp(4096, STREAM_CHUNK)];
        // `buf[..carry]`: the start of a character cut by the previous read.
        let mut carry = 0;
        loop {
            let n = match self.read(&mut buf[carry..]) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(_) => return Ok(()), // refused: the reason is kept
            };
            let filled = carry + n;
            let (text, valid) = match std::str::from_utf8(&buf[..filled]) {
                Ok(text) => (text, filled),
                // Valid UTF-8 (checked by `read`) but for an incomplete character at the end.
                Err(e) => {
                    let valid = e.valid_up_to();
                    (
                        std::str::from_utf8(&buf[..valid]).unwrap_or_default(),
                        valid,
                    )
                }
            };
            sink(text)?;
            // At most 3 bytes carried (a character has at most 4), so each read has room.
            buf.copy_within(valid..filled, 0);
            carry = filled - valid;
        }
    }

    fn refuse(&mut self, reason: SkipReason) -> std::io::Error {
        self.refused = Some(reason);
        std::io::Error::other(format!("not usable text: {reason}"))
    }

    /// Checks `fresh`, the bytes just read: NUL near the start, UTF-8 across reads, blankness.
    fn check(&mut self, fresh: &[u8]) -> Result<(), SkipReason> {
        if self.total < BINARY_PROBE as u64 {
            let probe = (BINARY_PROBE - self.total as usize).min(fresh.len());
            if fresh[..probe].contains(&0) {
                return Err(SkipReason::Binary);
            }
        }
        let mut rest = fresh;
        if self.tail_len > 0 {
            // Complete the character the last read cut; its first byte was a valid lead.
            let width = match self.tail[0] {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            let take = (width - self.tail_len).min(rest.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&rest[..take]);
            self.tail_len += take;
            rest = &rest[take..];
            if self.tail_len < width {
                return Ok(());
            }
            let c = std::str::from_utf8(&self.tail[..width]).map_err(|_| SkipReason::NotUtf8)?;
            self.blank &= c.chars().all(char::is_whitespace);
            self.tail_len = 0;
        }
        let text = match std::str::from_utf8(rest) {
            Ok(text) => text,
            Err(e) if e.error_len().is_none() => {
                let (valid, cut) = rest.split_at(e.valid_up_to());
                self.tail[..cut.len()].copy_from_slice(cut);
                self.tail_len = cut.len();
                std::str::from_utf8(valid).map_err(|_| SkipReason::NotUtf8)?
            }
            Err(_) => return Err(SkipReason::NotUtf8),
        };
        if self.blank {
            self.blank = text.chars().all(char::is_whitespace);
        }
        Ok(())
    }
}

impl<R> Checked<R> {
    /// The source as read: refused, empty, or usable with its hash and length.
    fn verdict(&mut self) -> Result<Streamed, SkipReason> {
        if let Some(reason) = self.refused {
            return Err(reason);
        }
        if self.blank {
            return Err(SkipReason::Empty);
        }
        Ok(Streamed {
            sha256: hex(&self.hasher.finalize_reset()),
            bytes: self.total,
        })
    }

    /// The reader inside.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(reason) = self.refused {
            return Err(std::io::Error::other(format!("not usable text: {reason}")));
        }
        if buf.is_empty() {
            return Ok(0); // not the end of the source: nothing was asked for
        }
        let n = loop {
            match self.inner.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(self.refuse(SkipReason::Unreadable)),
            }
        };
        if n == 0 {
            if self.tail_len > 0 {
                return Err(self.refuse(SkipReason::NotUtf8)); // ends inside a character
            }
            return Ok(0);
        }
        let fresh = &buf[..n];
        self.hasher.update(fresh);
        let checked = self.check(fresh);
        self.total += n as u64;
        if let Err(reason) = checked {
            return Err(self.refuse(reason));
        }
        if self.total > self.max_bytes {
            return Err(self.refuse(SkipReason::TooLarge)); // grew after the walk
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that gives `step` bytes per read, cutting characters wherever it falls.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    /// The verdict and the text [`Checked::pieces`] handed out, reading `bytes` `step` at a time.
    fn check(
        reader: &mut SourceReader,
        bytes: &[u8],
        step: usize,
        max_bytes: u64,
    ) -> (Result<Streamed, SkipReason>, String) {
        let mut checked = Checked::new(Trickle { bytes, step }, bytes.len() as u64, max_bytes);
        let mut text = String::new();
        checked
            .pieces(&mut |piece| {
                text.push_str(piece);
                Ok(())
            })
            .unwrap();
        (reader.conclude(&mut checked), text)
    }

    #[test]
    fn checks_hold_however_reads_cut_the_bytes() {
        let good = "héllo wörld ✓ 🎉\n".repeat(3);
        let mut late_nul = vec![b'a'; BINARY_PROBE + 10];
        late_nul[BINARY_PROBE] = 0;
        let mut early_nul = late_nul.clone();
        early_nul[BINARY_PROBE - 1] = 0;
        for step in [1, 2, 3, 5, 4096] {
            let mut r = SourceReader::default();
            let (verdict, text) = check(&mut r, good.as_bytes(), step, u64::MAX);
            assert_eq!(
                verdict,
                Ok(Streamed {
                    sha256: sha256_hex(good.as_bytes()),
                    bytes: good.len() as u64
                }),
                "step {step}"
            );
            assert_eq!(text, good, "step {step}");
            let refused =
                |r: &mut SourceReader, bytes: &[u8], max: u64| check(r, bytes, step, max).0;
            assert_eq!(
                refused(&mut r, good.as_bytes(), u64::MAX),
                Err(SkipReason::Duplicate)
            );
            for (bytes, reason) in [
                (&b"ab\xE9cd"[..], SkipReason::NotUtf8),
                (b"ab\xE2\x82", SkipReason::NotUtf8),
                (b"ab\xF0\x9F\x8E", SkipReason::NotUtf8),
                (b"\xE2\x82x", SkipReason::NotUtf8),
                (" \u{3000}\n\t".as_bytes(), SkipReason::Empty),
                (b"", SkipReason::Empty),
                (&early_nul, SkipReason::Binary),
            ] {
                assert_eq!(
                    refused(&mut r, bytes, u64::MAX),
                    Err(reason),
                    "step {step}: {bytes:?}"
                );
            }
            // A NUL past the probe is text, as git sees it; a size limit is enforced as read.
            assert!(refused(&mut r, &late_nul, u64::MAX).is_ok(), "step {step}");
            let long = "é".repeat(100);
            assert_eq!(
                refused(&mut r, long.as_bytes(), 199),
                Err(SkipReason::TooLarge)
            );
            assert!(refused(&mut r, long.as_bytes(), 200).is_ok(), "step {step}");
        }
    }
}
