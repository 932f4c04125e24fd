//! `cllm-train` and `cllm-generate` as users run them: training writes its run directory,
//! resuming is bit-for-bit, Ctrl-C checkpoints and exits 0, divergence and bad inputs are
//! clear errors. Fixtures are written here; nothing needs the network or ../shared.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..400)
            .map(|i| {
                format!(
                    "line {i}: the quick brown fox jumps over the lazy dog {}.\n",
                    i % 7
                )
            })
            .collect();
        fs::write(dir.path().join("corpus.txt"), text).unwrap();
        Env { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Runs `cllm-train` on the fixture corpus, in the temporary directory (where a default
    /// `runs/` lands).
    fn train(&self, args: &[&str]) -> Output {
        self.train_command(args).output().unwrap()
    }

    /// A run of the small fixture model in `run/`, stopped (and checkpointed) after `steps`.
    fn stopped_run(&self, steps: u32) -> PathBuf {
        let run = self.path("run");
        let stop = steps.to_string();
        let out = self.train(
            &[
                SMALL,
                &["--out", run.to_str().unwrap(), "--stop-after-steps", &stop],
            ]
            .concat(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        run
    }

    /// The command [`train`](Self::train) runs, to adjust (its environment) before running.
    fn train_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cllm-train"));
        cmd.current_dir(self.dir.path())
            .arg(self.path("corpus.txt"))
            .args(["--cache-dir", self.path("cache").to_str().unwrap()])
            .args(args);
        cmd
    }
}

/// Sends SIGINT to `child`, as a terminal's Ctrl-C would, and waits for it.
fn interrupt(child: std::process::Child) -> Output {
    signal(child, "INT")
}

/// Sends `kill -SIGNAL` to `child` and waits for it.
fn signal(child: std::process::Child, signal: &str) -> Output {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The lines of `metrics.jsonl` that have `key` (`ms_per_step`: training, `split`: evaluation).
fn metric_lines(run: &Path, key: &str) -> Vec<serde_json::Value> {
    fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get(key).is_some())
        .collect()
}

fn loss_bits(v: &serde_json::Value) -> u32 {
    (v["loss"].as_f64().unwrap() as f32).to_bits()
}

/// (step, loss bits) of every training line in `metrics.jsonl`.
fn losses(run: &Path) -> Vec<(u64, u32)> {
    metric_lines(run, "ms_per_step")
        .iter()
        .map(|v| (v["step"].as_u64().unwrap(), loss_bits(v)))
        .collect()
}

/// (step, split, loss bits) of every evaluation line in `metrics.jsonl`.
fn evals(run: &Path) -> Vec<(u64, String, u32)> {
    metric_lines(run, "split")
        .iter()
        .map(|v| {
            let split = v["split"].as_str().unwrap().to_string();
            (v["step"].as_u64().unwrap(), split, loss_bits(v))
        })
        .collect()
}

const SMALL: &[&str] = &[
    "--preset",
    "tiny",
    "--max-steps",
    "30",
    "--eval-interval",
    "10",
    "--eval-iters",
    "2",
];

#[test]
fn train_writes_the_run_directory_and_learns() {
    let env = Env::new();
    let run = env.path("run");
    let args = [
        "--preset",
        "tiny",
        "--max-steps",
        "150",
        "--eval-interval",
        "50",
        "--eval-iters",
        "2",
    ];
    let out = env.train(&[&args[..], &["--out", run.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    // It says what data it trained on before it starts.
    let first = stderr(&out).lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with("data: ") && first.contains("1 of 1 files loaded"),
        "{first}"
    );
    assert!(first.contains("char tokenizer"), "{first}");
    // ...and ends with how much arithmetic a step did, per second and per core.
    let err = stderr(&out);
    let arithmetic = err
        .lines()
        .find(|l| l.starts_with("arithmetic: "))
        .unwrap_or_else(|| panic!("no arithmetic line in {err}"));
    assert!(
        arithmetic.contains("GFLOP per step") && arithmetic.contains("per core"),
        "{arithmetic}"
    );
    for f in [
        "config.json",
        "metrics.jsonl",
        "dataset.json",
        "tokenizer.json",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    assert!(
        run.join("checkpoints/step-00000150/model.safetensors")
            .is_file()
    );
    let config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["preset"], "tiny");
    assert_eq!(config["hyper"]["max_steps"], 150);
    let lines: Vec<serde_json::Value> = fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let step = lines
        .iter()
        .find(|v| v["step"] == 1 && v.get("lr").is_some())
        .unwrap();
    for key in [
        "loss",
        "lr",
        "grad_norm",
        "tokens_per_s",
        "ms_per_step",
        "rss_bytes",
    ] {
        assert!(step[key].is_number(), "metrics line lacks {key}: {step}");
    }
    let vals: Vec<f64> = lines
        .iter()
        .filter(|v| v["split"] == "val")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect();
    assert!(
        vals.len() >= 2 && vals.last().unwrap() < &(vals[0] - 0.5),
        "val loss should fall: {vals:?}"
    );

    // Generation from the run: deterministic per seed, streaming the prompt first.
    let generate = |seed: &str| {
        Command::new(env!("CARGO_BIN_EXE_cllm-generate"))
            .args([
                run.to_str().unwrap(),
                "--prompt",
                "line 1",
                "--max-new-tokens",
                "40",
                "--seed",
                seed,
            ])
            .output()
            .unwrap()
    };
    let (a, b, c) = (generate("1"), generate("1"), generate("2"));
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(a.stdout, b.stdout);
    assert_ne!(a.stdout, c.stdout);
    assert!(String::from_utf8_lossy(&a.stdout).starts_with("line 1"));

    // Several samples: the first is the single sample of that seed, the next ones start from
    // the prompt again, after a line of dashes; a prompt file is the same prompt.
    fs::write(env.path("prompt.txt"), "line 1").unwrap();
    let prompt_file = env.path("prompt.txt");
    let three = Command::new(env!("CARGO_BIN_EXE_cllm-generate"))
        .args([run.to_str().unwrap(), "--prompt-file"])
        .arg(&prompt_file)
        .args([
            "--max-new-tokens",
            "40",
            "--seed",
            "1",
            "--num-samples",
            "3",
        ])
        .output()
        .unwrap();
    assert!(three.status.success(), "{}", stderr(&three));
    let text = String::from_utf8(three.stdout.clone()).unwrap();
    let samples: Vec<&str> = text.split("---------------\n").collect();
    assert_eq!(samples.len(), 3, "{text}");
    assert_eq!(samples[0].as_bytes(), &a.stdout[..]);
    assert!(samples.iter().all(|s| s.starts_with("line 1")), "{text}");
    assert_ne!(samples[1], samples[2]);
    assert!(stderr(&three).contains("(3 samples)"), "{}", stderr(&three));

    // Out-of-range sampling settings are refused before anything is generated.
    for (flag, value) in [
        ("--top-p", "2"),
        ("--top-p", "0"),
        ("--repetition-penalty", "0"),
        ("--temperature", "-1"),
        ("--num-samples", "0"),
        ("--prompt-file", "no-such-file.txt"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_cllm-generate"))
            .args([run.to_str().unwrap(), flag, value])
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{flag} {value}: {err}");
        assert!(
            err.contains(flag) && o.stdout.is_empty(),
            "{flag} {value}: {err}"
        );
    }
}

#[test]
fn a_new_run_does_not_overwrite_an_earlier_one() {
    let env = Env::new();
    let run = env.path("run");
    let out = env.train(&[SMALL, &["--out", run.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let metrics = fs::read(run.join("metrics.jsonl")).unwrap();
    let config = fs::read(run.join("config.json")).unwrap();
    // The same --out again without --resume (here with other settings): refused, untouched.
    let again = env.train(&["--max-steps", "5", "--out", run.to_str().unwrap()]);
    let err = stderr(&again);
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert!(
        err.contains("already holds a run") && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(fs::read(run.join("metrics.jsonl")).unwrap(), metrics);
    assert_eq!(fs::read(run.join("config.json")).unwrap(), config);
    assert!(!run.join("checkpoints/step-00000005").exists());
    // --prepare-only into it is refused too (it would replace the run's tokenizer).
    let prep = env.train(&["--prepare-only", "--out", run.to_str().unwrap()]);
    assert_eq!(prep.status.code(), Some(1), "{}", stderr(&prep));
}

#[test]
fn resume_is_bit_for_bit() {
    // Both random streams: nanogpt's batches are positions in one sequential generator. And
    // with dropout, whose masks must be drawn again as the uninterrupted run drew them.
    for (rng, dropout) in [("cllm", "0"), ("nanogpt", "0"), ("cllm", "0.2")] {
        let env = Env::new();
        let (full, part) = (env.path("full"), env.path("part"));
        let small = [SMALL, &["--rng", rng, "--dropout", dropout]].concat();
        let out = env.train(&[&small[..], &["--out", full.to_str().unwrap()]].concat());
        assert!(out.status.success(), "{}", stderr(&out));
        let out = env.train(
            &[
                &small[..],
                &["--out", part.to_str().unwrap(), "--stop-after-steps", "17"],
            ]
            .concat(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("resume with"), "{}", stderr(&out));
        assert!(part.join("checkpoints/step-00000017").is_dir());
        let out = env.train(&["--resume", part.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("resuming at step 17"),
            "{}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("corpus changed"), "{}", stderr(&out));
        assert!(!stderr(&out).contains("note:"), "{}", stderr(&out));
        assert_eq!(
            losses(&part),
            losses(&full),
            "{rng}, dropout {dropout}: losses after resuming differ from the uninterrupted run"
        );
        assert_eq!(
            evals(&part),
            evals(&full),
            "{rng}: evaluations after resuming differ"
        );
        let weights =
            |run: &Path| fs::read(run.join("checkpoints/step-00000030/model.safetensors")).unwrap();
        assert_eq!(
            weights(&part),
            weights(&full),
            "{rng}: final weights and moments differ"
        );
    }
}

/// Resuming on another number of computing workers sums the gradients in another grouping:
/// the run says that its losses are no longer bit for bit those of an uninterrupted run, and
/// how to keep them so.
#[test]
fn resuming_on_other_workers_says_the_losses_will_round_differently() {
    let env = Env::new();
    let part = env.path("part");
    let out = env.train(
        &[
            SMALL,
            &["--threads", "2", "--compute-workers", "2"],
            &["--out", part.to_str().unwrap(), "--stop-after-steps", "5"],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.train(&["--resume", part.to_str().unwrap(), "--threads", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("note: this run computed on 2 worker(s) and goes on with 1")
            && stderr(&out).contains("--compute-workers 2 keeps them identical"),
        "{}",
        stderr(&out)
    );
}

/// `--keep-best` keeps the checkpoint of the lowest validation loss (evaluations after step 0)
/// in `checkpoints/best`, with that loss in its state; a resumed run remembers the setting and
/// only replaces the checkpoint with a lower loss than the one it records.
#[test]
fn keep_best_keeps_the_lowest_validation_loss() {
    let env = Env::new();
    let run = env.path("run");
    let out = env.train(&[SMALL, &["--keep-best", "--out", run.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let best = run.join("checkpoints/best");
    let state = |key: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(
            &fs::read_to_string(best.join("state.json")).unwrap(),
        )
        .unwrap()[key]
            .clone()
    };
    let lowest = metric_lines(&run, "split")
        .into_iter()
        .filter(|v| v["split"] == "val" && v["step"].as_u64() > Some(0))
        .min_by(|a, b| a["loss"].as_f64().partial_cmp(&b["loss"].as_f64()).unwrap())
        .unwrap();
    assert_eq!(state("step"), lowest["step"]);
    assert_eq!(state("val_loss"), lowest["loss"]);
    let step_ck = run.join(format!(
        "checkpoints/step-{:08}/model.safetensors",
        lowest["step"].as_u64().unwrap()
    ));
    if step_ck.exists() {
        assert_eq!(
            fs::read(best.join("model.safetensors")).unwrap(),
            fs::read(step_ck).unwrap()
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_cllm-generate"))
        .arg(&best)
        .args(["--max-new-tokens", "5"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // A recorded loss lower than any to come: resuming keeps the checkpoint.
    let set_val = |v: f64| {
        let mut s: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(best.join("state.json")).unwrap()).unwrap();
        s["val_loss"] = v.into();
        fs::write(best.join("state.json"), s.to_string()).unwrap();
    };
    let kept_step = state("step");
    set_val(0.001);
    let resume = |steps: &str| {
        let out = env.train(&["--resume", run.to_str().unwrap(), "--max-steps", steps]);
        assert!(out.status.success(), "{}", stderr(&out));
    };
    resume("40");
    assert_eq!(state("step"), kept_step);
    // A higher one: the next evaluation replaces it, though --keep-best was not given again.
    set_val(100.0);
    resume("50");
    assert_eq!(state("step").as_u64(), Some(50));
    let names: Vec<String> = fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(".old") || n.ends_with(".tmp")),
        "{names:?}"
    );
}

/// A stop requested during an evaluation ends it between batches (a large model's takes
/// minutes): nothing of it is recorded, the step is checkpointed, and resuming runs that
/// evaluation again, so the run's metrics end as an uninterrupted run's. Both at the first
/// evaluation (before any step) and at a later one.
#[test]
fn a_stop_during_an_evaluation_ends_it_and_resuming_runs_it_again() {
    let env = Env::new();
    let full = env.path("full");
    let out = env.train(&[SMALL, &["--out", full.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    for at in [0u64, 10] {
        let part = env.path(&format!("part{at}"));
        let out = env.train(
            &[
                SMALL,
                &[
                    "--out",
                    part.to_str().unwrap(),
                    "--stop-in-eval",
                    &at.to_string(),
                ],
            ]
            .concat(),
        );
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains(&format!("evaluation at step {at} stopped")),
            "{err}"
        );
        assert!(
            err.contains(&format!("stopped at step {at} of 30")),
            "{err}"
        );
        let ck = cllm_model::checkpoint::latest(&part.join("checkpoints")).unwrap();
        assert_eq!(cllm_model::checkpoint::load(&ck).unwrap().state.step, at);
        let recorded: Vec<u64> = evals(&part).iter().map(|e| e.0).collect();
        let before: Vec<u64> = evals(&full)
            .iter()
            .map(|e| e.0)
            .filter(|&s| s < at)
            .collect();
        assert_eq!(recorded, before, "at {at}: only the finished evaluations");
        assert_eq!(losses(&part).len() as u64, at);
        let out = env.train(&["--resume", part.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(losses(&part), losses(&full), "at {at}: losses");
        assert_eq!(evals(&part), evals(&full), "at {at}: evaluations");
    }
}

#[test]
fn both_streams_record_themselves_and_eval_only_measures_what_the_run_measured() {
    let env = Env::new();
    let mut runs = Vec::new();
    for rng in ["cllm", "nanogpt"] {
        let dir = env.path(rng);
        let out = env.train(&[SMALL, &["--rng", rng, "--out", dir.to_str().unwrap()]].concat());
        assert!(out.status.success(), "{}", stderr(&out));
        let config = fs::read_to_string(dir.join("config.json")).unwrap();
        assert!(config.contains(&format!("\"rng\": \"{rng}\"")), "{config}");
        // --eval-only on the step-30 checkpoint uses the batches the run's evaluation at
        // step 30 used (fixed ones for cllm; for nanogpt those drawn at that step).
        let out = env.train(&[
            "--resume",
            dir.join("checkpoints/step-00000030").to_str().unwrap(),
            "--eval-only",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for split in ["val", "train"] {
            let at_30 = evals(&dir)
                .into_iter()
                .find(|(s, sp, _)| *s == 30 && sp == split)
                .unwrap()
                .2;
            let got = (report[format!("{split}_loss")].as_f64().unwrap() as f32).to_bits();
            assert_eq!(got, at_30, "{rng} {split}");
        }
        runs.push(losses(&dir));
    }
    assert_ne!(runs[0], runs[1], "the two streams drew the same run");
}

#[test]
fn bf16_products_record_themselves_resume_bit_for_bit_and_are_refused_where_unsupported() {
    let env = Env::new();
    let (full, part, f32_run) = (env.path("full"), env.path("part"), env.path("f32"));
    let bf16 = [SMALL, &["--matmul-precision", "bf16"]].concat();
    let out = env.train(&[&bf16[..], &["--out", full.to_str().unwrap()]].concat());
    if !cllm_tensor::kernels::matmul::Precision::Bf16.supported() {
        // Refused at once, before the data is prepared.
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains(
                "--matmul-precision bf16: matmul precision bf16 needs a CPU with AVX-512 BF16"
            ) && !err.contains("data:"),
            "{err}"
        );
        return;
    }
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("matrix products in bf16"),
        "{}",
        stderr(&out)
    );
    let config = fs::read_to_string(full.join("config.json")).unwrap();
    assert!(
        config.contains("\"matmul_precision\": \"bf16\""),
        "{config}"
    );

    // It computes something else than f32, close to it.
    let out = env.train(&[SMALL, &["--out", f32_run.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let config = fs::read_to_string(f32_run.join("config.json")).unwrap();
    assert!(config.contains("\"matmul_precision\": \"f32\""), "{config}");
    let (a, b) = (losses(&full), losses(&f32_run));
    assert_ne!(a, b, "bf16 and f32 runs gave the same bits");
    let last = |l: &[(u64, u32)]| f32::from_bits(l.last().unwrap().1);
    let rel = (last(&a) - last(&b)).abs() / last(&b);
    assert!(rel < 0.02, "final losses {} and {}", last(&a), last(&b));

    // Resuming keeps the precision (from the checkpoint) and the bits.
    let out = env.train(
        &[
            &bf16[..],
            &["--out", part.to_str().unwrap(), "--stop-after-steps", "17"],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.train(&["--resume", part.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(losses(&part), losses(&full), "losses after resuming differ");
    assert_eq!(
        evals(&part),
        evals(&full),
        "evaluations after resuming differ"
    );
    let out = env.train(&[
        "--resume",
        part.to_str().unwrap(),
        "--matmul-precision",
        "f32",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--matmul-precision cannot change when resuming"),
        "{}",
        stderr(&out)
    );
}

/// Huge-page mappings (the default) and `CLLM_HUGE_PAGES=0` give the same bits; a model whose
/// buffers are megabytes makes both paths run.
#[test]
fn huge_pages_change_no_bits() {
    let env = Env::new();
    let big = [
        SMALL,
        &[
            "--embed-dim",
            "256",
            "--num-heads",
            "4",
            "--num-layers",
            "1",
        ],
    ]
    .concat();
    let mut runs = Vec::new();
    for (name, value) in [("on", None), ("off", Some("0"))] {
        let out_dir = env.path(name);
        let mut cmd =
            env.train_command(&[&big[..], &["--out", out_dir.to_str().unwrap()]].concat());
        match value {
            Some(v) => cmd.env("CLLM_HUGE_PAGES", v),
            None => cmd.env_remove("CLLM_HUGE_PAGES"),
        };
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let said = if value.is_some() {
            "huge pages off (CLLM_HUGE_PAGES=0)"
        } else {
            "in transparent huge pages"
        };
        assert!(stderr(&out).contains(said), "{}", stderr(&out));
        runs.push(losses(&out_dir));
    }
    assert!(!runs[0].is_empty());
    assert_eq!(runs[0], runs[1]);
}

#[test]
fn resume_refuses_changed_settings_and_damaged_checkpoints() {
    let env = Env::new();
    let run = env.stopped_run(10);
    for flag in ["--embed-dim", "--dropout"] {
        let value = if flag == "--dropout" { "0.1" } else { "64" };
        let out = env.train(&["--resume", run.to_str().unwrap(), flag, value]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains(&format!("{flag} cannot change when resuming")),
            "{}",
            stderr(&out)
        );
    }

    let model = run.join("checkpoints/step-00000010/model.safetensors");
    let mut bytes = fs::read(&model).unwrap();
    bytes.truncate(bytes.len() - 100);
    fs::write(&model, bytes).unwrap();
    let out = env.train(&["--resume", run.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("not a usable checkpoint") && err.contains("model.safetensors"),
        "{err}"
    );
    assert_eq!(
        err.trim()
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1
    );

    let out = env.train(&["--resume", env.path("nowhere").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no checkpoint found"),
        "{}",
        stderr(&out)
    );
    // The directory that holds the run, given instead of the run: the error names the run,
    // for resuming and for sampling alike.
    let parent = env.dir.path().to_str().unwrap();
    let hint = format!("it holds runs, the newest is {}", run.display());
    let out = env.train(&["--resume", parent]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&hint), "{}", stderr(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_cllm-generate"))
        .arg(parent)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&hint), "{}", stderr(&out));
}

/// The corpus edited between sessions, with the same characters (so the same tokenizer): the
/// run goes on, saying the data changed and how; the checkpoints after it record the new data.
#[test]
fn resume_says_when_the_corpus_changed_under_the_same_tokenizer() {
    let env = Env::new();
    let run = env.stopped_run(5);
    let text = fs::read_to_string(env.path("corpus.txt")).unwrap();
    fs::write(
        env.path("corpus.txt"),
        text.replace("brown fox", "fox brown"),
    )
    .unwrap();
    let out = env.train(&["--resume", run.to_str().unwrap(), "--stop-after-steps", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning: the corpus changed since this run started")
            && err.contains("resuming at step 5"),
        "{err}"
    );
    // Resumed again on the data it now records: no warning.
    let out = env.train(&["--resume", run.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("corpus changed"), "{}", stderr(&out));
}

#[test]
fn resume_refuses_a_different_tokenizer() {
    let env = Env::new();
    let run = env.stopped_run(5);
    // The corpus gains a character: a char tokenizer built from it has a different vocabulary.
    let mut text = fs::read_to_string(env.path("corpus.txt")).unwrap();
    text.push_str("a new character: ~\n");
    fs::write(env.path("corpus.txt"), text).unwrap();
    let out = env.train(&["--resume", run.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("tokenizer"), "{}", stderr(&out));
}

#[test]
fn divergence_stops_with_the_step_and_keeps_the_last_checkpoint() {
    let env = Env::new();
    let run = env.path("run");
    let out = env.train(&[
        "--preset",
        "tiny",
        "--max-steps",
        "400",
        "--eval-interval",
        "10",
        "--eval-iters",
        "1",
        "--learning-rate",
        "1e7",
        "--grad-clip",
        "0",
        "--warmup-steps",
        "0",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("training diverged at step"), "{err}");
    assert!(err.contains("last good checkpoint"), "{err}");
    if let Some(ck) = cllm_model::checkpoint::latest(&run.join("checkpoints")) {
        cllm_model::checkpoint::load(&ck).expect("the kept checkpoint is intact");
    }
}

/// A checkpoint the file system refuses (here: a file-size limit below a checkpoint's size,
/// as a full disk would) stops training with one line that says so and names the checkpoint
/// that is still good (on a resumed run, the one it resumed from), and leaves no half-written
/// checkpoint behind.
#[cfg(unix)]
#[test]
fn a_checkpoint_that_cannot_be_written_is_a_clear_error_and_leaves_nothing_behind() {
    let env = Env::new();
    // `ulimit -f` blocks: 256 of 512 or 1024 bytes, whichever the shell counts, is far below
    // a tiny checkpoint (~0.5 MB) and above everything else the run writes. With SIGXFSZ
    // ignored (inherited across exec), a write past the limit fails with EFBIG.
    let limited = |args: &[&str]| {
        let train = env.train_command(args);
        Command::new("sh")
            .current_dir(env.dir.path())
            .args(["-c", "trap '' XFSZ; ulimit -f 256 && exec \"$0\" \"$@\""])
            .arg(train.get_program())
            .args(train.get_args())
            .output()
            .unwrap()
    };
    let left_in = |run: &Path| -> Vec<_> {
        fs::read_dir(run.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let steps = |n: &'static str| {
        [
            "--preset",
            "tiny",
            "--max-steps",
            n,
            "--checkpoint-every",
            "10",
            "--eval-interval",
            "10",
            "--eval-iters",
            "1",
        ]
    };

    let fresh = env.path("fresh");
    let out = limited(&[&steps("20")[..], &["--out", fresh.to_str().unwrap()]].concat());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("checkpoint at step 10 not written"), "{err}");
    assert!(err.contains("none was written before it"), "{err}");
    assert!(
        left_in(&fresh).is_empty(),
        "left behind: {:?}",
        left_in(&fresh)
    );

    let resumed = env.path("resumed");
    let out = env.train(&[&steps("10")[..], &["--out", resumed.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let out = limited(&["--resume", resumed.to_str().unwrap(), "--max-steps", "20"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("checkpoint at step 20 not written"), "{err}");
    assert!(
        err.contains("step-00000010, is intact") && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(left_in(&resumed), ["step-00000010"]);
}

#[test]
fn too_small_a_corpus_and_bad_flags_are_clear_errors() {
    let env = Env::new();
    fs::write(env.path("small.txt"), "tiny corpus\n".repeat(5)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cllm-train"))
        .arg(env.path("small.txt"))
        .args([
            "--cache-dir",
            env.path("cache").to_str().unwrap(),
            "--out",
            env.path("r").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("corpus too small"),
        "{}",
        stderr(&out)
    );
    assert!(!env.path("r").exists());

    let out = env.train(&[
        "--embed-dim",
        "30",
        "--num-heads",
        "4",
        "--out",
        env.path("r2").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--embed-dim 30 is not a multiple of --num-heads 4"),
        "{}",
        stderr(&out)
    );
    // Refused before any data is prepared: no `data:` line precedes the error.
    assert!(!stderr(&out).contains("data:"), "{}", stderr(&out));
    for (threads, why) in [
        ("5000", "--threads 5000 is more than the 4096 supported"),
        ("0", "--threads must be at least 1"),
    ] {
        let out = env.train(&[
            "--threads",
            threads,
            "--out",
            env.path("r3").to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains(why) && !stderr(&out).contains("data:"),
            "{}",
            stderr(&out)
        );
    }
    let out = env.train(&["--preset", "huge"]);
    assert!(
        stderr(&out).contains("unknown preset `huge`"),
        "{}",
        stderr(&out)
    );
    // A named dataset has its own format: --format would be ignored, so it is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_cllm-train"))
        .args(["--dataset", "shakespeare", "--format", "jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("'--dataset <NAME>' cannot be used with '--format <FORMAT>'"),
        "{}",
        stderr(&out)
    );
    let out = env.train(&["--matmul-precision", "fp8"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value 'fp8' for '--matmul-precision <P>'")
            && stderr(&out).contains("[possible values: f32, bf16]"),
        "{}",
        stderr(&out)
    );
    // Recipe values that could only end in a divergence, a silent no-op or a run without a
    // checkpoint: refused before the data is prepared, and no run directory is left.
    for (flags, why) in [
        (&["--max-steps", "0"][..], "--max-steps must be positive"),
        (&["--epochs", "0"], "--epochs must be a positive number"),
        (&["--grad-clip", "nan"], "--grad-clip must be a number >= 0"),
        (
            &["--weight-decay", "inf"],
            "--weight-decay must be a number >= 0",
        ),
        (&["--min-lr", "NaN"], "--min-lr must be a number >= 0"),
        (
            &["--min-lr", "0.01", "--learning-rate", "0.001"],
            "--min-lr 0.01 is above --learning-rate 0.001",
        ),
        (
            &["--keep-checkpoints", "0"],
            "--keep-checkpoints must be at least 1",
        ),
        (
            &["--compute-workers", "0"],
            "--compute-workers must be at least 1",
        ),
        (
            &["--compute-workers", "3", "--threads", "2"],
            "--compute-workers 3 is more than the 2 worker threads",
        ),
        (
            &[
                "--compute-workers",
                "5",
                "--threads",
                "8",
                "--batch-size",
                "4",
            ],
            "--compute-workers 5 is more than the 4 sequences of a step",
        ),
        // A negative number is read as the flag's value (not as an unknown flag, with clap's
        // advice to write `-- -1`, which would make it the corpus path).
        (
            &["--learning-rate", "-1"],
            "--learning-rate must be a positive number",
        ),
        (
            &["--grad-clip", "-0.5"],
            "--grad-clip must be a number >= 0",
        ),
        (&["--dropout", "1"], "--dropout must be in [0, 1), got 1"),
        (&["--dropout", "-0.1"], "--dropout must be in [0, 1)"),
        (&["--dropout", "nan"], "--dropout must be in [0, 1)"),
    ] {
        let out = env.train(flags);
        assert_eq!(out.status.code(), Some(1), "{flags:?}");
        assert!(
            stderr(&out).contains(why) && !stderr(&out).contains("data:"),
            "{flags:?}: {}",
            stderr(&out)
        );
    }
    assert!(!env.path("runs").exists(), "no run directory left behind");
    let out = env.train(&["--max-steps", "-5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value '-5' for '--max-steps <N>'"),
        "{}",
        stderr(&out)
    );

    // A batch no machine can hold: refused from an estimate, before anything that size is
    // allocated (not the out-of-memory killer's SIGKILL).
    let out = env.train(&["--batch-size", "100000000"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("of memory") && stderr(&out).contains("use a smaller --batch-size"),
        "{}",
        stderr(&out)
    );
    // So are a model no machine can hold (its weights alone would be terabytes, the abort of
    // a failed allocation before), and one whose size does not even fit in an address.
    for (flags, why) in [
        (
            &["--embed-dim", "1000000"][..],
            "weights, AdamW moments and",
        ),
        (
            &["--num-layers", "100000000000"],
            "use a smaller --embed-dim or --num-layers",
        ),
        (
            &["--embed-dim", "10000000000"],
            "more parameters than this machine can address",
        ),
    ] {
        let out = env.train(flags);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{flags:?}: {}", stderr(&out));
    }
    assert!(!env.path("runs").exists(), "no run directory left behind");
}

#[test]
fn runs_started_in_the_same_second_get_directories_of_their_own() {
    let env = Env::new();
    // Runs that hold the default names of the next few seconds, as runs started just before
    // this one (one per seed, in a loop) would.
    let now = std::time::SystemTime::now();
    let taken: Vec<PathBuf> = (0..10)
        .map(|s| {
            let stamp = cllm_train::run_dir::utc_stamp(now + Duration::from_secs(s));
            env.path(&format!("runs/corpus_txt-{stamp}"))
        })
        .collect();
    for dir in &taken {
        fs::create_dir_all(dir.join("checkpoints")).unwrap();
        fs::write(dir.join("config.json"), "{}").unwrap();
    }
    let out = env.train(&["--max-steps", "2", "--seq-len", "16"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stderr(&out)
        .lines()
        .find(|l| l.starts_with("run directory: "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{}", stderr(&out)));
    let dir = line["run directory: ".len()..].split(' ').next().unwrap();
    assert!(dir.ends_with("-2"), "{line}");
    assert!(env.path(dir).join("config.json").exists(), "{line}");
    for dir in &taken {
        assert_eq!(fs::read_to_string(dir.join("config.json")).unwrap(), "{}");
    }
}

#[cfg(unix)]
#[test]
fn ctrl_c_checkpoints_and_exits_zero() {
    stop_signal_checkpoints_and_exits_zero("INT");
}

/// What `kill`, `timeout` and batch schedulers send: handled as Ctrl-C is.
#[cfg(unix)]
#[test]
fn sigterm_checkpoints_and_exits_zero() {
    stop_signal_checkpoints_and_exits_zero("TERM");
}

#[cfg(unix)]
fn stop_signal_checkpoints_and_exits_zero(sig: &str) {
    let env = Env::new();
    let run = env.path("run");
    let child = Command::new(env!("CARGO_BIN_EXE_cllm-train"))
        .arg(env.path("corpus.txt"))
        .args([
            "--cache-dir",
            env.path("cache").to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ])
        .args([
            "--preset",
            "tiny",
            "--max-steps",
            "1000000",
            "--eval-interval",
            "100000",
            "--eval-iters",
            "1",
            "--checkpoint-every",
            "100",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training is under way (a checkpoint written), then send the signal as a
    // terminal (or `kill`) would.
    let started = Instant::now();
    while cllm_model::checkpoint::latest(&run.join("checkpoints")).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "training did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Meanwhile nobody else may write this run: a resume of it is refused while it goes on.
    // (A few steps past its checkpoint, so that without the lock the resume would finish and
    // the test fail rather than hang.)
    let ck = cllm_model::checkpoint::latest(&run.join("checkpoints")).unwrap();
    let past = cllm_model::checkpoint::load(&ck).unwrap().state.step + 5;
    let second = env.train(&[
        "--resume",
        run.to_str().unwrap(),
        "--max-steps",
        &past.to_string(),
    ]);
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("another cllm-train is writing this run"),
        "{}",
        stderr(&second)
    );
    let out = signal(child, sig);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // The command it prints runs this very binary (by its path, as it is not on PATH).
    let line = err
        .lines()
        .find_map(|l| l.strip_prefix("resume with: "))
        .unwrap_or_else(|| panic!("no resume line in {err}"));
    let (program, dir) = line.split_once(" --resume ").expect("PROGRAM --resume DIR");
    assert_eq!(Path::new(dir), run.as_path());
    assert!(
        program == "cllm-train"
            || Path::new(program).canonicalize().unwrap()
                == Path::new(env!("CARGO_BIN_EXE_cllm-train"))
                    .canonicalize()
                    .unwrap(),
        "{line}"
    );
    let ck =
        cllm_model::checkpoint::latest(&run.join("checkpoints")).expect("a checkpoint was written");
    let state = cllm_model::checkpoint::load(&ck).unwrap().state;
    assert!(state.step > 0);
}

#[test]
fn ctrl_c_before_training_exits_at_once() {
    let env = Env::new();
    // A corpus whose BPE preparation takes a few seconds: varied words, about 3 MB.
    let mut text = String::with_capacity(3 << 20);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    while text.len() < 3 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 2 + (x % 9) as usize;
        text.extend((0..len).map(|i| (b'a' + ((x >> (i * 5)) % 26) as u8) as char));
        text.push(if x.is_multiple_of(11) { '\n' } else { ' ' });
    }
    let big = env.path("big.txt");
    fs::write(&big, text).unwrap();
    let cache = env.path("cache");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cllm-train"))
        .arg(&big)
        .args(["--cache-dir", cache.to_str().unwrap()])
        .args([
            "--tokenizer",
            "bpe",
            "--vocab-size",
            "4096",
            "--max-steps",
            "3",
        ])
        .args(["--out", env.path("run").to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "preparation finished too soon for this test"
    );
    let sent = Instant::now();
    let out = interrupt(child);
    let waited = sent.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("before training started"), "{err}");
    assert!(waited < Duration::from_secs(5), "took {waited:?} to stop");
    assert!(!env.path("run").join("metrics.jsonl").exists());
    // The half-built preparation is deleted, not left for a later run to find.
    let left: Vec<_> = fs::read_dir(cache.join("prepared"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the cache: {left:?}");
}
