//! Building and running `cllm-train`, and reading its `metrics.jsonl`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// Per-phase milliseconds of one step, as `metrics.jsonl` writes them. This mirrors
/// `cllm_train::metrics::PhaseMs` field for field: xtask reads the file format rather than
/// linking the training crates, so that `cargo xtask` stays quick to build.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct PhaseMs {
    /// Node Zero preparing the next batch (overlapped with compute).
    pub data: f64,
    /// Forward and backward span.
    pub compute: f64,
    /// Mean wait of a computing worker at the barrier after compute (absent in older runs).
    #[serde(default)]
    pub wait_compute: f64,
    /// Mean wait of a worker at the barrier after the reduction (absent in older runs).
    #[serde(default)]
    pub wait_reduce: f64,
    /// Reduction span.
    pub reduce: f64,
    /// Optimizer span.
    pub optimizer: f64,
    /// Slowest minus fastest computing worker.
    pub straggler: f64,
}

/// One training step's metrics line.
#[derive(Clone, Debug, Deserialize)]
pub struct StepLine {
    /// Steps completed.
    pub step: u64,
    /// Training loss.
    pub loss: f32,
    /// Wall time of the step.
    pub ms_per_step: f64,
    /// Resident set size.
    pub rss_bytes: u64,
    /// Live heap.
    #[serde(default)]
    pub heap_bytes: u64,
    /// Phases.
    pub phase_ms: PhaseMs,
}

/// The `cllm-train` to measure: `given` as it is (checked to exist), or else a release build of
/// this checkout's, made now.
pub fn cllm_train_binary(root: &Path, given: Option<&Path>) -> Result<PathBuf, String> {
    let Some(bin) = given else {
        return build_cllm_train(root);
    };
    if !bin.is_file() {
        return Err(format!(
            "--binary {}: no such file (build one with `cargo build --release -p cllm-train`)",
            bin.display()
        ));
    }
    eprintln!("measuring {} as it is (not rebuilt)", bin.display());
    Ok(bin.to_path_buf())
}

/// The markdown line naming the binary measured (`given`, or this checkout's release build).
pub fn binary_line(given: Option<&Path>) -> String {
    match given {
        Some(bin) => format!("- cllm-train: `{}` (given with --binary)\n", bin.display()),
        None => "- cllm-train: this checkout's release build\n".into(),
    }
}

/// Builds `cllm-train` in release mode (once) and returns the binary's path.
fn build_cllm_train(root: &Path) -> Result<PathBuf, String> {
    eprintln!("building cllm-train (release)...");
    let mut cargo = Command::new(env!("CARGO"));
    // `cargo xtask` runs us with this package's CARGO_MANIFEST_DIR, CARGO_PKG_* ... set. Passed
    // on, they reach build scripts that watch them (ring's does), so a plain `cargo build` and
    // a sweep would rebuild those crates for each other; the nested build gets the environment
    // a plain `cargo` sees.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let prefixes = [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_",
        ];
        if prefixes.iter().any(|p| key.starts_with(p)) {
            cargo.env_remove(key);
        }
    }
    let status = cargo
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "cllm-train",
            "--bin",
            "cllm-train",
        ])
        .current_dir(root)
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build -p cllm-train failed".into());
    }
    Ok(root.join("target/release/cllm-train"))
}

/// Runs `bin` with `args`; returns its stderr, or an error with the last lines of it.
pub fn cllm_train(bin: &Path, args: &[String]) -> Result<String, String> {
    let out = Command::new(bin)
        .args(args)
        .output()
        .map_err(|e| format!("running {}: {e}", bin.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(format!(
            "cllm-train {} failed: {}",
            args.join(" "),
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    Ok(stderr)
}

/// Removes a scratch run directory left by an earlier sweep into the same `--out` (cllm-train
/// refuses to start a new run in a directory that holds one).
pub fn clear_run_dir(dir: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("{}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// `cllm-train` arguments for a measured run: `steps` steps of `preset` on `threads` worker
/// threads into `out`, evaluating (one batch) only at the end and checkpointing only the last step.
pub fn measured_run_args(preset: &str, threads: usize, steps: u64, out: &Path) -> Vec<String> {
    let (threads, steps) = (threads.to_string(), steps.to_string());
    [
        "--preset",
        preset,
        "--threads",
        &threads,
        "--max-steps",
        &steps,
        "--eval-interval",
        &steps,
        "--eval-iters",
        "1",
        "--checkpoint-every",
        "0",
        "--keep-checkpoints",
        "1",
        "--out",
    ]
    .into_iter()
    .map(String::from)
    .chain([out.display().to_string()])
    .collect()
}

/// The training lines of a run's `metrics.jsonl`.
pub fn step_lines(run: &Path) -> Result<Vec<StepLine>, String> {
    let path = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut v = Vec::new();
    for line in text.lines() {
        if line.contains("\"ms_per_step\"") {
            v.push(serde_json::from_str(line).map_err(|e| format!("{}: {e}", path.display()))?);
        }
    }
    Ok(v)
}

/// The `q`-quantile (0..=1) of `xs` (nearest rank).
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * q).round() as usize]
}

/// `given`, or `target/<task>/<timestamp>` under `root`; created if missing.
pub fn output_dir(
    root: &Path,
    task: &str,
    when: &str,
    given: Option<&Path>,
) -> Result<PathBuf, String> {
    let out = match given {
        Some(dir) => dir.to_path_buf(),
        None => root
            .join("target")
            .join(task)
            .join(when.replace([' ', ':'], "-")),
    };
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

/// The workspace root (this crate's parent).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(Path::to_path_buf).unwrap_or(here)
}

/// Parses a count that must be at least 1 (threads, steps, rounds), for clap.
pub fn at_least_one<T: std::str::FromStr + PartialOrd + From<u8>>(s: &str) -> Result<T, String> {
    match s.parse::<T>() {
        Ok(n) if n >= T::from(1) => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_must_be_whole_and_positive() {
        assert_eq!(at_least_one::<usize>("63"), Ok(63));
        assert_eq!(at_least_one::<u64>("1"), Ok(1));
        assert_eq!(
            at_least_one::<usize>("0"),
            Err("must be at least 1".to_string())
        );
        assert!(
            at_least_one::<u64>("-3")
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(at_least_one::<usize>("2.5").is_err());
    }

    #[test]
    fn a_given_binary_is_used_as_it_is_and_a_missing_one_refused() {
        let dir = std::env::temp_dir().join(format!("xtask-binary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("cllm-train");
        std::fs::write(&bin, b"").unwrap();
        // No build is started for a given binary: the root need not be a workspace.
        assert_eq!(cllm_train_binary(&dir, Some(&bin)), Ok(bin.clone()));
        let missing = dir.join("missing");
        let err = cllm_train_binary(&dir, Some(&missing)).unwrap_err();
        assert!(err.contains("no such file"), "{err}");
        assert!(binary_line(Some(&bin)).contains("given with --binary"));
        assert!(binary_line(None).contains("release build"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
