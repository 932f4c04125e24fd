//! Profiling output as users see it: `--trace FILE` writes a Chrome trace with a named track for
//! Node Zero and every worker, metrics lines carry the live heap and RSS, and every run ends
//! with the per-phase summary and the heap still live after teardown.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::process::Command;

#[test]
fn trace_file_has_node_zero_and_every_worker_and_the_run_reports_memory() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.txt");
    let text: String = (0..300)
        .map(|i| format!("row {i}: pack my box with five dozen liquor jugs.\n"))
        .collect();
    fs::write(&corpus, text).unwrap();
    let (trace, run) = (dir.path().join("t.json"), dir.path().join("run"));
    let out = Command::new(env!("CARGO_BIN_EXE_cllm-train"))
        .arg(&corpus)
        .args(["--cache-dir", dir.path().join("cache").to_str().unwrap()])
        .args(["--preset", "tiny", "--threads", "4", "--max-steps", "20"])
        .args(["--trace", trace.to_str().unwrap()])
        .args(["--out", run.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    // The trace: valid JSON, one named track per thread, spans on each of them.
    let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(&trace).unwrap())
        .expect("the trace file is valid JSON");
    let events = json
        .as_array()
        .or_else(|| json["traceEvents"].as_array())
        .expect("a list of trace events");
    let names: BTreeMap<u64, String> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| {
            let name = e["args"]["name"].as_str().unwrap().to_string();
            (e["tid"].as_u64().unwrap(), name)
        })
        .collect();
    let mut spans: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["ph"] == "B" || e["ph"] == "X") {
        if let Some(thread) = e["tid"].as_u64().and_then(|t| names.get(&t)) {
            spans
                .entry(thread.as_str())
                .or_default()
                .insert(e["name"].as_str().unwrap());
        }
    }
    let node_zero = spans.get("node-zero").expect("a node-zero track");
    assert!(node_zero.contains("step") && node_zero.contains("data.next_batch"));
    for w in 0..4 {
        let track = spans
            .get(format!("lattice-worker-{w}").as_str())
            .unwrap_or_else(|| panic!("no track for worker {w}: {names:?}"));
        for phase in ["reduce", "update", "wait.reduce"] {
            assert!(track.contains(phase), "worker {w} lacks {phase}: {track:?}");
        }
        // A computing worker has compute spans with forward passes inside; a reducer (a
        // worker beyond --compute-workers) has neither.
        assert_eq!(
            track.contains("compute"),
            track.contains("forward"),
            "worker {w}: {track:?}"
        );
    }
    let computing = (0..4)
        .filter(|w| spans[format!("lattice-worker-{w}").as_str()].contains("forward"))
        .count();
    assert!(computing >= 1, "no worker ran a forward pass");

    // Memory in every metrics line and at exit; the phase summary.
    let lines: Vec<serde_json::Value> = fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v.get("ms_per_step").is_some())
        .collect();
    assert_eq!(lines.len(), 20);
    for l in &lines {
        assert!(l["heap_bytes"].as_u64().unwrap() > 0, "{l}");
        assert!(l["rss_bytes"].as_u64().unwrap() > 0, "{l}");
    }
    assert!(stderr.contains("live heap after teardown:"), "{stderr}");
    assert!(
        stderr.contains("time per step (medians of 20 steps"),
        "{stderr}"
    );
    assert!(stderr.contains("straggler spread"), "{stderr}");
}

#[test]
fn an_unwritable_trace_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    fs::write(&blocker, "not a directory").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cllm-train"))
        .args(["--trace", blocker.join("t.json").to_str().unwrap()])
        .args(["--max-steps", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--trace"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
