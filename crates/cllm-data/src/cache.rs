//! The cache of prepared corpora: a preparation is built in a temporary sibling directory and
//! renamed into place when complete ([`build_into`]), one process at a time per preparation
//! ([`PrepareLock`]), and reused by later runs whose inputs have the same fingerprint
//! ([`reuse`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::error::{DataError, Result};
use crate::prepare::{Prepared, Split};
use crate::shard::ShardReader;
use crate::summary::{DatasetSummary, PREPARED_VERSION};
use crate::tokenizer::Tokenizer;

/// The temporary directories of the preparations this process is building, for
/// [`abandon_builds`].
static BUILDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Registers a temporary directory in [`BUILDING`] while it lives.
struct Building(PathBuf);

impl Building {
    fn new(tmp: &Path) -> Self {
        let mut building = BUILDING.lock().unwrap_or_else(PoisonError::into_inner);
        building.push(tmp.to_path_buf());
        Building(tmp.to_path_buf())
    }
}

impl Drop for Building {
    fn drop(&mut self) {
        let mut building = BUILDING.lock().unwrap_or_else(PoisonError::into_inner);
        building.retain(|p| *p != self.0);
    }
}

/// Deletes the temporary directories of the preparations this process has under way, for a
/// process about to exit without finishing them (`cllm-train` on Ctrl-C during preparation):
/// otherwise they stay on disk, up to the corpus's size, until the next preparation of the
/// same corpus removes them. A preparation still running then fails (its directory is gone)
/// and publishes nothing; the cache keeps what it held before.
pub fn abandon_builds() {
    let building = std::mem::take(&mut *BUILDING.lock().unwrap_or_else(PoisonError::into_inner));
    for tmp in building {
        // The builder may create a file between the listing and the removal: try again.
        if fs::remove_dir_all(&tmp).is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
    }
}

/// Runs `build` on a temporary sibling of `dir`, then renames it into place, so `dir` is either
/// absent, an earlier (stale or damaged) preparation, or complete. Callers hold the
/// [`PrepareLock`] for `dir`.
pub(crate) fn build_into(dir: &Path, build: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = name.unwrap_or_default();
    let tmp = dir.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| DataError::io(&tmp, "creating", e))?;
    let _building = Building::new(&tmp);
    if let Err(e) = build(&tmp) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // A stale preparation is moved aside rather than deleted in place: a process that opened
    // its files before it went stale keeps reading them.
    let aside = dir.with_file_name(format!(".{name}.stale-{}", std::process::id()));
    let _ = fs::remove_dir_all(&aside); // left by a crash of an earlier process with our pid
    let moved_aside = fs::rename(dir, &aside).is_ok();
    let renamed = fs::rename(&tmp, dir);
    if moved_aside {
        let _ = fs::remove_dir_all(&aside);
    }
    renamed.map_err(|e| {
        let _ = fs::remove_dir_all(&tmp);
        DataError::io(dir, "renaming into", e)
    })
}

/// An exclusive advisory lock on `<cache>/locks/<name>.lock`, held while one process
/// checks for, builds and publishes a preparation, so that concurrent runs on the same inputs
/// (say, one per seed) prepare once and share the result instead of racing on the rename.
/// Released when dropped (or when the process dies: the kernel drops `flock` locks with the
/// file descriptor). On a file system without locks, preparation goes on unlocked.
pub(crate) struct PrepareLock(Option<fs::File>);

impl PrepareLock {
    /// Waits for and takes the lock for the preparation called `name`, reporting the wait.
    /// Lock files live in their own directory and are never deleted: deleting one that another
    /// process is waiting on would let a third lock a fresh file beside it.
    pub(crate) fn acquire(dir: &Path, name: &str, progress: &mut dyn FnMut(&str)) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| DataError::io(dir, "creating", e))?;
        let path = dir.join(format!("{name}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| DataError::io(&path, "opening", e))?;
        match file.try_lock() {
            Ok(()) => Ok(PrepareLock(Some(file))),
            Err(fs::TryLockError::WouldBlock) => {
                progress(&format!(
                    "waiting for another process preparing the same corpus (lock {})",
                    path.display()
                ));
                file.lock()
                    .map_err(|e| DataError::io(&path, "locking", e))?;
                Ok(PrepareLock(Some(file)))
            }
            Err(fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
                Ok(PrepareLock(None))
            }
            Err(fs::TryLockError::Error(e)) => Err(DataError::io(&path, "locking", e)),
        }
    }

    /// Whether the lock is really held (false on a file system without locks).
    pub(crate) fn held(&self) -> bool {
        self.0.is_some()
    }
}

/// Removes the temporary and set-aside directories of earlier preparations of `name` that
/// never finished (a crash or a kill; on Ctrl-C `cllm-train` deletes its own with
/// [`abandon_builds`]). Only called with the lock for `name` held, so no living process is
/// using them.
pub(crate) fn remove_leftovers(root: &Path, name: &str) {
    let (tmp, stale) = (format!(".{name}.tmp-"), format!(".{name}.stale-"));
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if file_name.starts_with(&tmp) || file_name.starts_with(&stale) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for PrepareLock {
    fn drop(&mut self) {
        if let Some(f) = &self.0 {
            let _ = f.unlock();
        }
    }
}

/// The earlier preparation in `dir`, if complete and made from inputs with this fingerprint.
pub(crate) fn reuse(dir: &Path, fingerprint: &str) -> Option<Prepared> {
    let summary = DatasetSummary::load(&dir.join("dataset.json")).ok()?;
    if summary.prepared_version != PREPARED_VERSION || summary.inputs_fingerprint != fingerprint {
        return None;
    }
    let tokenizer = Tokenizer::load(&dir.join("tokenizer.json")).ok()?;
    if tokenizer.fingerprint().ok()? != summary.tokenizer_sha256 {
        return None;
    }
    let ok = |split: Split, n: u64| {
        ShardReader::open(&dir.join(split.file_name())).is_ok_and(|r| r.len() == n)
    };
    if !ok(Split::Train, summary.train_tokens) || !ok(Split::Val, summary.val_tokens) {
        return None;
    }
    Some(Prepared {
        dir: dir.to_path_buf(),
        summary,
        tokenizer,
        reused: true,
    })
}
