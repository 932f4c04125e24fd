//! `cllm-train --prepare-only` as a user runs it, on fixtures this test writes.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `cllm-train` in `cache`'s parent (the test's temporary directory), so a default run
/// directory (`runs/...`) lands there and can be checked for.
fn cllm_train(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cllm-train"))
        .current_dir(cache.parent().expect("cache has a parent"))
        .args(args)
        .arg("--cache-dir")
        .arg(cache)
        .env_remove("CLLM_DATA_DIR")
        .output()
        .expect("cllm-train runs")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

#[test]
fn prepares_a_directory_and_writes_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    fs::create_dir_all(corpus.join("sub")).unwrap();
    fs::write(
        corpus.join("a.txt"),
        "First document, with some words.\n".repeat(10),
    )
    .unwrap();
    fs::write(corpus.join("sub/b.txt"), "Second document.\n".repeat(10)).unwrap();
    fs::write(
        corpus.join("sub/a-copy.txt"),
        "First document, with some words.\n".repeat(10),
    )
    .unwrap();
    let run = tmp.path().join("run");
    let out = cllm_train(
        &[
            corpus.to_str().unwrap(),
            "--prepare-only",
            "--out",
            run.to_str().unwrap(),
        ],
        &tmp.path().join("cache"),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("dataset.json")).unwrap()).unwrap();
    assert_eq!(summary["files_loaded"], 2);
    assert_eq!(summary["skipped"]["duplicate"], 1);
    assert_eq!(summary["tokenizer"], "char");
    assert!(run.join("tokenizer.json").is_file());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("2 loaded") && stdout.contains("1 duplicate content"),
        "{stdout}"
    );
}

#[test]
fn malformed_json_fails_with_one_line_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("broken.json");
    fs::write(&file, "{\"data\": [\n  {\"title\": \"x\",, }]}").unwrap();
    let run = tmp.path().join("run");
    let out = cllm_train(
        &[
            file.to_str().unwrap(),
            "--format",
            "squad-v1",
            "--prepare-only",
            "--out",
            run.to_str().unwrap(),
        ],
        &tmp.path().join("cache"),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("broken.json:2:"),
        "{err}"
    );
    assert!(
        !run.exists(),
        "a failed run must not create its run directory"
    );
}

#[test]
fn jsonl_corpora_prepare_and_unknown_formats_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("stories.jsonl");
    let line = "{\"text\": \"Once upon a time there was a tiny model.\", \"id\": 7}\n";
    fs::write(&file, line.repeat(3) + "{\"text\": \"The end.\"}\n").unwrap();
    let cache = tmp.path().join("cache");
    let run = tmp.path().join("run");
    let args = |format: &'static str| {
        [
            file.to_str().unwrap().to_string(),
            "--format".into(),
            format.into(),
            "--prepare-only".into(),
            "--out".into(),
            run.to_str().unwrap().to_string(),
        ]
    };
    let out = cllm_train(&args("jsonl").each_ref().map(String::as_str), &cache);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("4 documents") && stdout.contains("jsonl: 4 records"),
        "{stdout}"
    );
    let out = cllm_train(&args("yaml").each_ref().map(String::as_str), &cache);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("text, squad-v1 or jsonl"), "{err}");

    // The text in another field: named, it is read; not named, the error says which is missing.
    fs::write(
        &file,
        "{\"story\": \"A story in another field, long enough.\"}\n",
    )
    .unwrap();
    let out = cllm_train(&args("jsonl").each_ref().map(String::as_str), &cache);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("stories.jsonl:1:") && err.contains("missing field `text`"),
        "{err}"
    );
    let mut with_field = args("jsonl").to_vec();
    with_field.extend(["--text-field".into(), "story".into()]);
    let with_field: Vec<&str> = with_field.iter().map(String::as_str).collect();
    let out = cllm_train(&with_field, &cache);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("jsonl: 1 record"));
    // A file named *.jsonl is JSON Lines without --format.
    let out = cllm_train(
        &[
            file.to_str().unwrap(),
            "--text-field",
            "story",
            "--prepare-only",
        ],
        &cache,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("jsonl: 1 record"));
    // A directory is text unless --format says otherwise; JSON Lines files in it get a note.
    let corpus = tmp.path().join("corpus");
    fs::create_dir(&corpus).unwrap();
    fs::copy(&file, corpus.join("stories.jsonl")).unwrap();
    fs::write(corpus.join("notes.txt"), "Notes about the stories.\n").unwrap();
    let dir = corpus.to_str().unwrap();
    let out = cllm_train(&[dir, "--prepare-only", "--out", "run-b"], &cache);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("note: 1 file named *.jsonl or *.ndjson read as plain text"),
        "{}",
        text(&out.stderr)
    );
    let jsonl_args = [
        dir,
        "--prepare-only",
        "--out",
        "run-c",
        "--format",
        "jsonl",
        "--text-field",
        "story",
    ];
    let out = cllm_train(&jsonl_args, &cache);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("note:"),
        "{}",
        text(&out.stderr)
    );
    // On text, --text-field is a mistake, said so.
    let txt = tmp.path().join("stories.txt");
    fs::copy(&file, &txt).unwrap();
    let out = cllm_train(
        &[
            txt.to_str().unwrap(),
            "--text-field",
            "story",
            "--prepare-only",
        ],
        &cache,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--text-field applies to JSON Lines"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_requests_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let out = cllm_train(&["--dataset", "nonesuch", "--prepare-only"], &cache);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("known datasets: shakespeare"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !tmp.path().join("runs").exists(),
        "a failed preparation must not leave a run directory behind"
    );

    let data = tmp.path().join("data");
    let out = cllm_train(
        &[
            "--dataset",
            "shakespeare",
            "--data-dir",
            data.to_str().unwrap(),
            "--no-download",
            "--prepare-only",
        ],
        &cache,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("tinyshakespeare/input.txt")
            && err.contains("https://raw.githubusercontent.com"),
        "{err}"
    );

    let out = cllm_train(&["--tokenizer", "wordpiece", "--prepare-only"], &cache);
    assert_eq!(out.status.code(), Some(2), "clap rejects bad values");
    assert!(text(&out.stderr).contains("wordpiece"));
}
