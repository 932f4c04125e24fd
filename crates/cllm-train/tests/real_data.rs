//! Real-data checks against `../shared/datasets` (tiny Shakespeare, SQuAD v1.1 dev).
//!
//! Ignored by default because a fresh clone need not have the data; `.ci/run` runs them with
//! `--ignored`, where they fail loudly if the data is missing. The data directory is
//! `$CLLM_REAL_DATA`, else `../shared/datasets` beside the checkout.

use std::path::PathBuf;
use std::process::Command;

fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CLLM_REAL_DATA") {
        return PathBuf::from(d);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
    assert!(
        dir.is_dir(),
        "real data not found at {} (set CLLM_REAL_DATA)",
        dir.display()
    );
    dir
}

fn prepare(args: &[&str]) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_cllm-train"))
        .args(args)
        .args([
            "--data-dir",
            data_dir().to_str().unwrap(),
            "--no-download",
            "--prepare-only",
        ])
        .args([
            "--out",
            run.to_str().unwrap(),
            "--cache-dir",
            tmp.path().join("cache").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(run.join("dataset.json")).unwrap()).unwrap()
}

#[test]
#[ignore = "needs ../shared/datasets; run by .ci/run"]
fn shakespeare_char_matches_nanogpt() {
    let s = prepare(&["--dataset", "shakespeare"]);
    assert_eq!(s["vocab_size"], 65);
    assert_eq!(s["train_tokens"], 1_003_854);
    assert_eq!(s["val_tokens"], 111_540);
    assert_eq!(
        s["inputs"][0]["sha256"],
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    );
}

#[test]
#[ignore = "needs ../shared/datasets; run by .ci/run"]
fn squad_dev_counts() {
    for tokenizer in ["char", "bpe"] {
        let s = prepare(&["--dataset", "squad/dev", "--tokenizer", tokenizer]);
        assert_eq!(s["squad"]["articles"], 48);
        assert_eq!(s["squad"]["paragraphs"], 2067);
        assert_eq!(s["squad"]["questions"], 10_570);
        assert_eq!(s["documents"], 2067);
        assert_eq!(s["read"]["files_opened"], 1);
        assert!(s["train_tokens"].as_u64().unwrap() > 9 * s["val_tokens"].as_u64().unwrap() - 10);
    }
}

/// With nanoGPT's random stream (the nanogpt-cpu preset's default) a run is nanoGPT's run: the
/// same initial weights, the same batches, the same losses. Expected values: nanoGPT's
/// shakespeare_char CPU recipe with max_iters = lr_decay_iters = 200, eval_interval 100,
/// eval_iters 20, seed 1337, printed by
/// `torch_gpt.py nanogpt 1337 SHARD_DIR 200 100` (scripts/pytorch-reference, PyTorch 2.15):
/// (step, train loss, val loss).
const NANOGPT_1337_200: [(u64, f64, f64); 3] = [
    (0, 4.1676, 4.1649),
    (100, 2.5954, 2.6276),
    (200, 2.4589, 2.4736),
];

#[test]
#[ignore = "needs ../shared/datasets; run by .ci/run"]
fn nanogpt_stream_reproduces_nanogpts_losses() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_cllm-train"))
        .args(["--dataset", "shakespeare", "--preset", "nanogpt-cpu"])
        .args([
            "--max-steps",
            "200",
            "--eval-interval",
            "100",
            "--eval-iters",
            "20",
        ])
        .args(["--data-dir", data_dir().to_str().unwrap(), "--no-download"])
        .args(["--out", run.to_str().unwrap()])
        .args(["--cache-dir", tmp.path().join("cache").to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["rng"], "nanogpt", "the preset's default stream");
    let evals: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v.get("split").is_some())
        .collect();
    for (step, train, val) in NANOGPT_1337_200 {
        for (split, want) in [("train", train), ("val", val)] {
            let got = evals
                .iter()
                .find(|v| v["step"] == step && v["split"] == split)
                .unwrap_or_else(|| panic!("no {split} evaluation at step {step}"))["loss"]
                .as_f64()
                .unwrap();
            // nanoGPT prints 4 decimals; float sums in another order drift by ~1e-4 here.
            assert!(
                (got - want).abs() < 1e-3,
                "step {step} {split}: cllm {got:.4}, nanoGPT {want:.4}"
            );
        }
    }
}
