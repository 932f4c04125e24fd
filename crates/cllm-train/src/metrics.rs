//! `metrics.jsonl`: one JSON object per line, train steps and evaluations; and the process's
//! resident memory for those lines.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::engine::PhaseTimes;

/// One training step's line.
#[derive(Serialize)]
pub struct StepLine {
    /// Optimiser steps completed, this one included.
    pub step: u64,
    /// Mean training loss of the step's batch.
    pub loss: f32,
    /// Learning rate used.
    pub lr: f32,
    /// Gradient norm before clipping.
    pub grad_norm: f32,
    /// Tokens per second of this step.
    pub tokens_per_s: f64,
    /// Wall time of the step, data included.
    pub ms_per_step: f64,
    /// Resident set size of the process (sampled at most every 50 ms).
    pub rss_bytes: u64,
    /// Live heap bytes (the counting allocator).
    pub heap_bytes: u64,
    /// Per-phase milliseconds.
    pub phase_ms: PhaseMs,
}

/// [`PhaseTimes`] in milliseconds, plus data loading.
#[derive(Serialize)]
pub struct PhaseMs {
    /// Sampling and reading the next batch (Node Zero, while the workers compute).
    pub data: f64,
    /// Forward and backward.
    pub compute: f64,
    /// Waiting at the two inner barriers, mean over all workers.
    pub wait: f64,
    /// Waiting at the barrier after compute, mean over the computing workers.
    pub wait_compute: f64,
    /// Waiting at the barrier after the reduction, mean over all workers.
    pub wait_reduce: f64,
    /// Gradient reduction.
    pub reduce: f64,
    /// Norm, clipping, AdamW.
    pub optimizer: f64,
    /// Slowest minus fastest computing worker.
    pub straggler: f64,
}

impl PhaseMs {
    /// Seconds to milliseconds.
    pub fn new(data: f64, p: PhaseTimes) -> Self {
        PhaseMs {
            data: data * 1e3,
            compute: p.compute * 1e3,
            wait: p.wait * 1e3,
            wait_compute: p.wait_compute * 1e3,
            wait_reduce: p.wait_reduce * 1e3,
            reduce: p.reduce * 1e3,
            optimizer: p.optimizer * 1e3,
            straggler: p.straggler * 1e3,
        }
    }
}

/// One evaluation's line.
#[derive(Serialize)]
pub struct EvalLine<'a> {
    /// Optimiser steps completed.
    pub step: u64,
    /// `val` or `train`.
    pub split: &'a str,
    /// Mean loss over the evaluation batches.
    pub loss: f32,
}

/// Appends lines to `metrics.jsonl`.
pub struct MetricsWriter {
    out: BufWriter<File>,
    path: PathBuf,
    /// The step of the last evaluation line the file held when opened.
    last_eval: Option<u64>,
}

impl MetricsWriter {
    /// Opens `path` for appending, first dropping any lines after step `keep_through` (lines a
    /// run wrote after its last checkpoint, before it stopped), so a resumed run's metrics do
    /// not repeat steps.
    pub fn open(path: &Path, keep_through: u64) -> Result<Self, String> {
        let mut last_eval = None;
        if path.exists() {
            let f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let kept: Vec<String> = BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .filter(|l| {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
                        return false;
                    };
                    let Some(step) = v["step"].as_u64().filter(|&s| s <= keep_through) else {
                        return false;
                    };
                    if v.get("split").is_some() {
                        last_eval = last_eval.max(Some(step));
                    }
                    true
                })
                .collect();
            let tmp = path.with_extension("jsonl.tmp");
            let body: String = kept.iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(&tmp, body).map_err(|e| format!("{}: {e}", tmp.display()))?;
            std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(MetricsWriter {
            out: BufWriter::new(f),
            path: path.to_path_buf(),
            last_eval,
        })
    }

    /// The step of the last evaluation recorded in the file when it was opened (through
    /// `keep_through`), if any: a resumed run whose evaluation at its checkpoint's step was
    /// stopped before it finished finds none there.
    pub fn last_eval_step(&self) -> Option<u64> {
        self.last_eval
    }

    /// Writes one line.
    pub fn write(&mut self, line: &impl Serialize) -> Result<(), String> {
        let text = serde_json::to_string(line).map_err(|e| e.to_string())?;
        writeln!(self.out, "{text}").map_err(|e| format!("{}: {e}", self.path.display()))
    }

    /// Flushes to the file.
    pub fn flush(&mut self) -> Result<(), String> {
        self.out
            .flush()
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// Resident set size, read from `/proc/self/status` at most every 50 ms (0 where unavailable).
#[derive(Debug, Default)]
pub struct RssSampler {
    last: u64,
    at: Option<Instant>,
}

impl RssSampler {
    /// The current (or a recent) RSS in bytes.
    pub fn get(&mut self) -> u64 {
        if self
            .at
            .is_none_or(|t| t.elapsed() > Duration::from_millis(50))
        {
            self.last = rss_bytes().unwrap_or(0);
            self.at = Some(Instant::now());
        }
        self.last
    }
}

/// The process's resident set size now.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}
