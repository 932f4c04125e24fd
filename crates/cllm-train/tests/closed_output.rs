//! The binaries when their reader goes away: `cllm-train ... 2>&1 | head` (or a `tee` that
//! dies) and `cllm-generate ... | head`. A training run stops as on SIGHUP: after the current
//! step, with a checkpoint, status 0 (at once, status 130, before training has started, leaving
//! nothing that blocks the next run in that directory); generation just ends, status 0.
//! `eprintln!` and `print!` panicked on the failed write instead (status 101, no checkpoint).

#![cfg(unix)]

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A small corpus in `dir`.
fn corpus(dir: &Path) -> std::path::PathBuf {
    let text: String = (0..400)
        .map(|i| format!("line {i}: the quick brown fox jumps over the lazy dog.\n"))
        .collect();
    let path = dir.join("corpus.txt");
    fs::write(&path, text).unwrap();
    path
}

/// `cllm-train` on the corpus in `dir` with stderr piped to the test, logging every step.
fn train(dir: &Path, run: &Path, max_steps: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cllm-train"))
        .arg(corpus(dir))
        .args(["--cache-dir", dir.join("cache").to_str().unwrap()])
        .args(["--out", run.to_str().unwrap()])
        .args(["--preset", "tiny", "--max-steps", max_steps])
        .args(["--eval-interval", "100000", "--eval-iters", "1"])
        .args(["--log-every", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads `child`'s stderr line by line until one starts with `prefix`, then closes it.
fn close_stderr_after(child: &mut Child, prefix: &str) {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("stderr ended before a line starting {prefix:?}"))
            .unwrap();
        if line.starts_with(prefix) {
            return; // `lines` (and the pipe's read end) dropped here
        }
    }
}

/// Reads `child`'s stderr to its end and waits for it, which must succeed; returns the stderr.
fn finish(mut child: Child) -> String {
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{err}");
    err
}

/// Waits for `child` at most a minute (a run that went on would take far longer).
fn wait(mut child: Child) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("still running a minute after its stderr closed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A long run in a fresh directory whose stderr is closed after the line starting `prefix`:
/// the directory, the run's path in it, and how the run ended.
fn closed_after(prefix: &str) -> (tempfile::TempDir, PathBuf, ExitStatus) {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut child = train(tmp.path(), &run, "1000000");
    close_stderr_after(&mut child, prefix);
    let status = wait(child);
    (tmp, run, status)
}

#[test]
fn training_whose_stderr_closes_checkpoints_and_exits_zero() {
    let (tmp, run, status) = closed_after("step 2/");
    assert_eq!(status.code(), Some(0), "{status}");
    let ck = cllm_model::checkpoint::latest(&run.join("checkpoints")).expect("a checkpoint");
    let step = cllm_model::checkpoint::load(&ck).unwrap().state.step;
    assert!(step >= 2, "checkpoint at step {step}");
    // And it resumes from there.
    finish(
        Command::new(env!("CARGO_BIN_EXE_cllm-train"))
            .args(["--cache-dir", tmp.path().join("cache").to_str().unwrap()])
            .args(["--resume", run.to_str().unwrap()])
            .args(["--max-steps", &(step + 2).to_string()])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
}

#[test]
fn training_whose_stderr_closes_during_start_up_leaves_the_directory_reusable() {
    let (tmp, run, status) = closed_after("data:");
    assert_eq!(status.code(), Some(130), "{status}");
    // Nothing was trained, so a new run may take the directory.
    let err = finish(train(tmp.path(), &run, "3"));
    assert!(err.contains("step 3/3"), "{err}");
}

#[test]
fn generation_whose_stdout_closes_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    finish(train(tmp.path(), &run, "2"));
    let mut gen_child = Command::new(env!("CARGO_BIN_EXE_cllm-generate"))
        .arg(&run)
        .args(["--max-new-tokens", "1000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    gen_child
        .stdout
        .take()
        .unwrap()
        .read_exact(&mut first)
        .unwrap(); // the read end is dropped here
    let mut err = String::new();
    let mut stderr = gen_child.stderr.take().unwrap();
    let status = wait(gen_child);
    stderr.read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("error") && !err.contains("panicked"), "{err}");
}
