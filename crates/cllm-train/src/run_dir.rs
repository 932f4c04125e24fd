//! Run directories: where a run's config, metrics, checkpoints and data summary go.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use cllm_model::checkpoint;

/// `runs/<label>-<UTC date>-<time>`, e.g. `runs/shakespeare-20261122-081503`.
pub fn default_run_dir(label: &str) -> PathBuf {
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from("runs").join(format!("{label}-{}", utc_stamp(SystemTime::now())))
}

/// Where a `--resume` or `cllm-generate` argument points: a checkpoint directory
/// (`RUN_DIR/checkpoints/step-N`, holding `state.json`) or a run directory (its newest
/// checkpoint). Returns (checkpoint, run directory). A directory that holds runs instead
/// (`runs/`) gets an error naming its newest one.
pub fn locate_checkpoint(arg: &Path) -> Result<(PathBuf, PathBuf), String> {
    if arg.join(checkpoint::STATE_FILE).is_file() {
        let run = arg
            .parent()
            .and_then(Path::parent)
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        return Ok((arg.to_path_buf(), run));
    }
    if let Some(ck) = checkpoint::latest(&arg.join("checkpoints")) {
        return Ok((ck, arg.to_path_buf()));
    }
    let hint = match newest_run_in(arg) {
        Some(run) => format!("; it holds runs, the newest is {}", run.display()),
        None => String::new(),
    };
    Err(format!(
        "{}: no checkpoint found (expected RUN_DIR/checkpoints/step-N/ or a checkpoint \
         directory){hint}",
        arg.display()
    ))
}

/// The run directory directly under `dir` whose newest checkpoint was written last.
fn newest_run_in(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let ck = checkpoint::latest(&e.path().join("checkpoints"))?;
            let written = std::fs::metadata(ck.join(checkpoint::STATE_FILE))
                .and_then(|m| m.modified())
                .ok()?;
            Some((written, e.path()))
        })
        .max()
        .map(|(_, run)| run)
}

/// Creates `base` as a new, empty directory, or `base-2`, `base-3`... if that name is taken
/// (`create_dir` fails on an existing path, so two processes never get the same one).
pub fn claim(base: &Path) -> Result<PathBuf, String> {
    if let Some(parent) = base.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    for n in 1u32.. {
        let candidate = if n == 1 {
            base.to_path_buf()
        } else {
            let mut name = base.as_os_str().to_owned();
            name.push(format!("-{n}"));
            PathBuf::from(name)
        };
        match std::fs::create_dir(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: {e}", candidate.display())),
        }
    }
    unreachable!("u32 suffixes exhausted")
}

/// An exclusive OS lock on `RUN_DIR/.lock`, held while a process writes a run: a second
/// `cllm-train` writing the same directory (another run given the same `--out` at the same
/// time, or a `--resume` of a run still going) would truncate its metrics and mix checkpoints.
/// Released when dropped, or by the OS when the process ends however it ends.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

/// Takes the [`RunLock`] of `dir` (which must exist), or says who holds it.
pub fn lock(dir: &Path) -> Result<RunLock, String> {
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(RunLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "{}: another cllm-train is writing this run now; wait for it to end, or choose \
             another --out",
            dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("{}: {e}", path.display())),
    }
}

/// What `dir` already holds of a training run (metrics, checkpoints), in words, or `None` if it
/// holds nothing a new run could lose: absent, empty, only a `--prepare-only` summary, or a run
/// stopped before its first step (Ctrl-C, or a closed stderr, during start-up), which leaves
/// `config.json` and an empty `metrics.jsonl` and cannot be resumed.
pub fn existing_run(dir: &Path) -> Option<String> {
    let mut found = Vec::new();
    let metrics = dir.join("metrics.jsonl");
    if std::fs::metadata(&metrics).is_ok_and(|m| m.len() > 0) {
        found.push("metrics.jsonl".to_string());
    }
    let checkpoints = std::fs::read_dir(dir.join("checkpoints")).map_or(0, |d| d.count());
    if checkpoints > 0 {
        found.push(format!("{checkpoints} entries in checkpoints/"));
    }
    (!found.is_empty()).then(|| found.join(", "))
}

/// The nearest existing ancestor of `dir` (or `dir` itself) if it is not a directory, so
/// `dir` cannot be created: reported by name instead of as "Not a directory" or "File exists".
pub fn file_in_the_way(dir: &Path) -> Option<&Path> {
    dir.ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .find(|a| a.exists())
        .filter(|a| !a.is_dir())
}

/// Refuses a `dir` that cannot be created or written, found before the data is prepared (which
/// can take minutes) rather than after: a file stands where a directory must go, or `dir` (or
/// its nearest existing ancestor) does not take a new entry (a read-only file system, no
/// permission), which creating and removing an empty probe directory there finds out.
pub fn check_creatable(dir: &Path) -> Result<(), String> {
    if let Some(file) = file_in_the_way(dir) {
        return Err(format!(
            "run directory {}: {} is a file, not a directory",
            dir.display(),
            file.display()
        ));
    }
    let base = dir
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .find(|a| a.exists())
        .unwrap_or(Path::new("."));
    let probe = base.join(format!(".cllm-write-probe-{}", std::process::id()));
    match std::fs::create_dir(&probe) {
        Ok(()) => {
            let _ = std::fs::remove_dir(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!(
            "run directory {}: cannot write in {}: {e}",
            dir.display(),
            base.display()
        )),
    }
}

/// Refuses to start a new run in `dir` if it holds another: its metrics would be truncated and
/// its checkpoints mixed with the new run's. `resumed` is the directory of the run being
/// continued, which may of course be written.
pub fn check_writable(dir: &Path, resumed: Option<&Path>) -> Result<(), String> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if resumed.is_some_and(|r| same(r, dir)) {
        return Ok(());
    }
    check_creatable(dir)?;
    match existing_run(dir) {
        None => Ok(()),
        Some(what) => Err(format!(
            "{}: already holds a run ({what}); continue it with --resume {}, or choose another --out",
            dir.display(),
            dir.display()
        )),
    }
}

/// `YYYYmmdd-HHMMSS` in UTC.
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn claimed_names_are_distinct_even_when_claimed_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("runs/x-20261122-120000");
        let mut got: Vec<PathBuf> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4).map(|_| s.spawn(|| claim(&base).unwrap())).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        got.sort();
        let names: Vec<String> = got
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "x-20261122-120000",
                "x-20261122-120000-2",
                "x-20261122-120000-3",
                "x-20261122-120000-4"
            ]
        );
    }

    #[test]
    fn a_directory_holding_a_run_is_refused_unless_it_is_the_one_resumed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        assert!(check_writable(&dir, None).is_ok(), "absent");
        let file = tmp.path().join("a-file");
        std::fs::write(&file, "x").unwrap();
        for out in [file.clone(), file.join("sub/run")] {
            let e = check_writable(&out, None).unwrap_err();
            assert!(e.contains("is a file, not a directory"), "{e}");
        }
        std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
        std::fs::write(dir.join("dataset.json"), "{}").unwrap();
        assert!(
            check_writable(&dir, None).is_ok(),
            "a --prepare-only summary is no run"
        );
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(dir.join("metrics.jsonl"), "").unwrap();
        assert!(
            check_writable(&dir, None).is_ok(),
            "a run stopped before its first step has nothing to lose"
        );
        std::fs::write(dir.join("metrics.jsonl"), "{\"step\":1}\n").unwrap();
        let e = check_writable(&dir, None).unwrap_err();
        assert!(e.contains("already holds a run (metrics.jsonl)"), "{e}");
        std::fs::write(dir.join("metrics.jsonl"), "").unwrap();
        std::fs::create_dir(dir.join("checkpoints/step-00000010")).unwrap();
        let e = check_writable(&dir, None).unwrap_err();
        assert!(
            e.contains("already holds a run") && e.contains("--resume"),
            "{e}"
        );
        assert!(
            check_writable(&dir, Some(&dir)).is_ok(),
            "the run being resumed"
        );
        assert!(
            check_writable(&dir, Some(tmp.path())).is_err(),
            "another run"
        );
    }

    /// sysfs takes no new directory, not even from root (file permissions would not stop the
    /// root user that tests may run as).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_directory_that_cannot_be_written_is_refused_before_anything_runs() {
        if !Path::new("/sys/kernel").is_dir() {
            return; // no sysfs here
        }
        let e = check_creatable(Path::new("/sys/cllm-run/sub")).unwrap_err();
        assert!(
            e.contains("run directory /sys/cllm-run/sub: cannot write in /sys"),
            "{e}"
        );
        let tmp = tempfile::tempdir().unwrap();
        check_creatable(&tmp.path().join("a/b")).unwrap();
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "the probe is removed and nothing is created"
        );
    }

    #[test]
    fn a_run_directory_has_one_writer_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let first = lock(tmp.path()).unwrap();
        let e = lock(tmp.path()).unwrap_err();
        assert!(e.contains("another cllm-train is writing this run"), "{e}");
        drop(first);
        lock(tmp.path()).expect("free again once the holder is gone");
    }

    #[test]
    fn stamps() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101-000000");
        // 2026-11-22 08:15:03 UTC
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(1_795_335_303)),
            "20261122-081503"
        );
        // 2000-02-29, a leap day in a century year
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "20000229-000000"
        );
    }
}
