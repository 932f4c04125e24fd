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
