//! Walking a corpus path: a file, or a directory recursively, without hidden or VCS
//! directories and without following symlink loops.
//!
//! The walk only lists and stats; it never reads file contents. Each candidate is listed once
//! under its canonical path, so a file reached twice (through a symlink, say) is not read twice.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::registry::Format;
use crate::source::SkipReason;

/// Directory names skipped besides hidden ones (names starting with `.`, which covers `.git`,
/// `.hg`, `.svn`).
const VCS_DIRS: &[&str] = &["CVS", "_darcs"];

/// A file the walk found: its path, size and modification time (what reuse checks compare).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Canonical path.
    pub path: PathBuf,
    /// Size in bytes.
    pub bytes: u64,
    /// Modification time, nanoseconds since the Unix epoch (0 if unavailable).
    pub modified_ns: u128,
}

/// What the walk found: candidates in a deterministic order, and what it skipped.
#[derive(Debug, Default)]
pub struct Walk {
    /// Files to read, sorted by path, each canonical path once.
    pub candidates: Vec<Candidate>,
    /// Entries skipped without reading: (path, reason).
    pub skipped: Vec<(PathBuf, SkipReason)>,
}

fn is_skipped_dir_name(name: &str) -> bool {
    name.starts_with('.') || VCS_DIRS.contains(&name)
}

/// Stats `path` into a candidate.
pub fn candidate(path: &Path) -> std::io::Result<Candidate> {
    let meta = std::fs::metadata(path)?;
    let modified_ns = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let path = std::fs::canonicalize(path)?;
    Ok(Candidate {
        path,
        bytes: meta.len(),
        modified_ns,
    })
}

/// Names a file type that is neither a regular file nor a directory, for error messages.
#[cfg_attr(not(unix), allow(unused_variables))]
fn special_kind(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a named pipe";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
    }
    "a special file"
}

/// Why a directory's file at `path` is not read as `format`, judged by its extension.
fn other_format(path: &Path, format: Format) -> Option<SkipReason> {
    if format.names(path) {
        return None;
    }
    match format {
        Format::Text => None,
        Format::SquadV1 => Some(SkipReason::NotJson),
        Format::Jsonl => Some(SkipReason::NotJsonl),
    }
}

/// Lists the files under `root` (or `root` itself if it is a file) to be read as `format`.
///
/// Entries that are neither regular files nor directories (named pipes, sockets, devices) are
/// skipped as [`SkipReason::NotRegular`], never opened. For SQuAD JSON, a directory's files
/// other than `*.json` (the README or licence beside the data) are skipped as
/// [`SkipReason::NotJson`], and for JSON Lines those other than `*.jsonl` or `*.ndjson` as
/// [`SkipReason::NotJsonl`]; a file given as `root` is taken whatever its name.
///
/// # Errors
/// If `root` does not exist or cannot be read, or is itself such a special file.
pub fn walk(root: &Path, format: Format) -> Result<Walk> {
    let meta =
        std::fs::metadata(root).map_err(|e| DataError::io(root, "opening corpus path", e))?;
    let mut out = Walk::default();
    if !meta.is_file() && !meta.is_dir() {
        return Err(DataError::Corpus(format!(
            "{}: {}, not a regular file or directory: corpus text must be in files (save a \
             stream to a file first)",
            root.display(),
            special_kind(&meta.file_type())
        )));
    }
    if meta.is_file() {
        out.candidates
            .push(candidate(root).map_err(|e| DataError::io(root, "reading metadata of", e))?);
        return Ok(out);
    }
    let mut seen = HashSet::new();
    let entries = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || !e.file_type().is_dir()
                || !is_skipped_dir_name(&e.file_name().to_string_lossy())
        });
    for entry in entries {
        match entry {
            Ok(e) if e.file_type().is_file() => {
                if e.file_name().to_string_lossy().starts_with('.') {
                    out.skipped
                        .push((e.path().to_path_buf(), SkipReason::Hidden));
                    continue;
                }
                if let Some(reason) = other_format(e.path(), format) {
                    out.skipped.push((e.path().to_path_buf(), reason));
                    continue;
                }
                match candidate(e.path()) {
                    Ok(c) if seen.insert(c.path.clone()) => out.candidates.push(c),
                    Ok(_) => out
                        .skipped
                        .push((e.path().to_path_buf(), SkipReason::SameFile)),
                    Err(_) => out
                        .skipped
                        .push((e.path().to_path_buf(), SkipReason::Unreadable)),
                }
            }
            Ok(e) if e.file_type().is_dir() => {} // directories are only traversed
            // Pipes, sockets and devices: opening one may block and reading may never end.
            Ok(e) => out
                .skipped
                .push((e.path().to_path_buf(), SkipReason::NotRegular)),
            Err(err) => {
                let path = err
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.to_path_buf());
                let reason = if err.loop_ancestor().is_some() {
                    SkipReason::SymlinkLoop
                } else {
                    SkipReason::Unreadable
                };
                out.skipped.push((path, reason));
            }
        }
    }
    out.candidates.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
