//! The lattice through the real model and CLI: the loss curve does not depend on the number of
//! worker threads (beyond float rounding), reruns are bit-identical, and a worker's panic ends
//! the process promptly with a message naming the worker and step.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn corpus(dir: &Path) -> std::path::PathBuf {
    let text: String = (0..600)
        .map(|i| format!("{i}: a man, a plan, a canal, panama; {}\n", i % 11))
        .collect();
    let p = dir.join("corpus.txt");
    fs::write(&p, text).unwrap();
    p
}

fn train(dir: &Path, threads: &str, out: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cllm-train"))
        .arg(corpus(dir))
        .args([
            "--cache-dir",
            dir.join("cache").to_str().unwrap(),
            "--out",
            dir.join(out).to_str().unwrap(),
        ])
        .args([
            "--preset",
            "tiny",
            "--batch-size",
            "16",
            "--max-steps",
            "30",
            "--eval-interval",
            "30",
            "--eval-iters",
            "2",
        ])
        .args(["--threads", threads])
        // Every worker computes (by default no more than one per core would).
        .args(["--compute-workers", threads])
        .args(extra)
        .output()
        .unwrap()
}

/// Two loss curves agree step by step to a relative 1e-5.
fn assert_same_curve(reference: &[f32], curve: &[f32], what: &str) {
    assert_eq!(reference.len(), curve.len(), "{what}: steps");
    for (step, (a, b)) in reference.iter().zip(curve).enumerate() {
        let rel = ((a - b) / a).abs();
        assert!(
            rel <= 1e-5,
            "{what}, step {}: {a} vs {b} (relative {rel:.2e})",
            step + 1
        );
    }
}

fn losses(run: &Path) -> Vec<f32> {
    fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("ms_per_step").is_some())
        .map(|v| v["loss"].as_f64().unwrap() as f32)
        .collect()
}

/// With bf16 matrix products (where the CPU has them) as with f32: a row's products do not
/// depend on the other rows of a call, so only the gradient sum regroups.
#[test]
fn bf16_losses_do_not_depend_on_the_thread_count() {
    if !cllm_tensor::kernels::matmul::Precision::Bf16.supported() {
        eprintln!("skipped: this CPU has no AVX-512 BF16");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bf16 = ["--matmul-precision", "bf16"];
    let mut curves = Vec::new();
    for threads in ["1", "3"] {
        let out = train(dir.path(), threads, &format!("run{threads}"), &bf16);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        curves.push(losses(&dir.path().join(format!("run{threads}"))));
    }
    assert_eq!(curves[0].len(), 30);
    assert_same_curve(&curves[0], &curves[1], "3 threads");
    let out = train(dir.path(), "3", "again3", &bf16);
    assert!(out.status.success());
    assert_eq!(losses(&dir.path().join("again3")), curves[1]);
}

#[test]
fn losses_do_not_depend_on_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut curves = Vec::new();
    for threads in ["1", "4", "13"] {
        let out = train(dir.path(), threads, &format!("run{threads}"), &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(dir.path().join(format!("run{threads}/config.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(config["threads"].as_u64().unwrap().to_string(), threads);
        assert_eq!(
            config["compute_workers"].as_u64().unwrap().to_string(),
            threads
        );
        curves.push(losses(&dir.path().join(format!("run{threads}"))));
    }
    let config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("run13/config.json")).unwrap())
            .unwrap();
    assert_eq!(
        (config["groups"].as_u64(), config["tree_depth"].as_u64()),
        (Some(2), Some(2)),
        "13 workers span two groups"
    );
    assert_eq!(curves[0].len(), 30);
    for (i, curve) in curves.iter().enumerate().skip(1) {
        assert_same_curve(&curves[0], curve, &format!("run {i}"));
    }
    // Same thread count: bit for bit.
    let out = train(dir.path(), "4", "again4", &[]);
    assert!(out.status.success());
    assert_eq!(losses(&dir.path().join("again4")), curves[1]);
}

/// Dropout masks belong to (seed, step, a sequence's place in the batch): 1 worker, 3 workers,
/// and 2 workers in passes of 3 sequences draw the same ones, so their curves agree to float
/// rounding; the curve is not the one without dropout, and evaluations do not drop (the same
/// weights give the same validation loss with or without a dropout rate set).
#[test]
fn dropout_masks_do_not_depend_on_threads_or_passes() {
    let dir = tempfile::tempdir().unwrap();
    let drop = ["--dropout", "0.2"];
    let runs: [(&str, &str, &[&str]); 3] = [
        ("1", "d1", &drop),
        ("3", "d3", &drop),
        ("2", "d2m3", &[&drop[..], &["--micro-batch", "3"]].concat()),
    ];
    let mut curves = Vec::new();
    for (threads, out, extra) in runs {
        let run = train(dir.path(), threads, out, extra);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        curves.push(losses(&dir.path().join(out)));
    }
    let config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("d3/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["hyper"]["dropout"].as_f64(), Some(0.2));
    assert_eq!(curves[0].len(), 30);
    for (i, curve) in curves.iter().enumerate().skip(1) {
        assert_same_curve(&curves[0], curve, &format!("run {i}"));
    }
    let plain = train(dir.path(), "1", "plain", &[]);
    assert!(plain.status.success());
    // Evaluation before step 1 sees the same weights and drops nothing.
    let first_eval = |run: &str| {
        fs::read_to_string(dir.path().join(run).join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["split"] == "val")
            .map(|v| (v["step"].as_u64(), v["loss"].as_f64()))
            .unwrap()
    };
    assert_eq!(first_eval("plain").0, Some(0));
    assert_eq!(first_eval("plain"), first_eval("d1"));
    let plain = losses(&dir.path().join("plain"));
    // Step 1 has the same weights either way: only the masks make the losses differ.
    assert_ne!(plain[0], curves[0][0], "dropout changed nothing");
    let again = train(dir.path(), "3", "again3", &drop);
    assert!(again.status.success());
    assert_eq!(losses(&dir.path().join("again3")), curves[1]);
}

/// Gradient accumulation: workers that run their shares in passes of one or three sequences
/// follow the one-pass loss curve to float rounding, hold tapes of that many sequences (the
/// start-up memory line), record the setting, and rerun bit for bit.
#[test]
fn micro_batches_follow_the_one_pass_curve_in_less_memory() {
    let dir = tempfile::tempdir().unwrap();
    let activations_mib = |out: &Output| -> f64 {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let line = err
            .lines()
            .find(|l| l.starts_with("memory: "))
            .unwrap_or_else(|| panic!("no memory line in {err}"));
        let after = line.split("activations ").nth(1).unwrap();
        after.split(" MiB").next().unwrap().parse().unwrap()
    };
    let whole = train(dir.path(), "2", "whole", &[]);
    assert!(whole.status.success());
    let reference = losses(&dir.path().join("whole"));
    assert_eq!(reference.len(), 30);
    let mut memory = vec![activations_mib(&whole)];
    for m in ["3", "1"] {
        let run = format!("micro{m}");
        let out = train(dir.path(), "2", &run, &["--micro-batch", m]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains(&format!("in passes of at most {m} per worker")),
            "{err}"
        );
        let config: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(dir.path().join(&run).join("config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(config["micro_batch"].as_u64().unwrap().to_string(), m);
        memory.push(activations_mib(&out));
        let curve = losses(&dir.path().join(&run));
        assert_same_curve(&reference, &curve, &format!("passes of {m}"));
        assert_ne!(curve, reference, "passes of {m} regroup the gradient sum");
        let again = train(dir.path(), "2", &format!("again{m}"), &["--micro-batch", m]);
        assert!(again.status.success());
        assert_eq!(losses(&dir.path().join(format!("again{m}"))), curve);
    }
    // Shares of 8 sequences: tapes of 8, 3 and 1.
    assert!(
        memory[0] > memory[1] && memory[1] > memory[2],
        "activations MiB {memory:?}"
    );
}

#[test]
fn a_worker_panic_stops_the_process_with_its_name_and_step() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = train(dir.path(), "13", "run", &["--inject-panic", "7:4"]);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.trim().lines().last().unwrap();
    assert!(
        last.contains("worker 7 panicked in Compute at step 5"),
        "{err}"
    );
    assert!(last.contains("injected failure"), "{err}");
}

#[test]
fn zero_threads_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = train(dir.path(), "0", "run", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads must be at least 1"));
}
