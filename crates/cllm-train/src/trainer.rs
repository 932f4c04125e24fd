//! The training run: resolve the config (fresh or from a checkpoint), prepare the data, start
//! the lattice, then step, evaluate, checkpoint and log until done, interrupted, or diverged.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cllm_data::{Batch, Prepared, ShardReader, Split};
use cllm_model::checkpoint::{self, Checkpoint, CheckpointState};
use cllm_model::{Gpt, GptConfig, schedule};

use crate::batches::{Batches, RandomStream};
use crate::config::{
    DEFAULT_SEED, MatmulPrecision, RunConfig, default_rng, fixed_flags_given, resolve_hyper,
};
use crate::data_args::DataArgs;
use crate::engine::{EngineOptions, InjectedPanic, LatticeEngine};
use crate::memory_check;
use crate::metrics::{EvalLine, MetricsWriter, PhaseMs, RssSampler, StepLine};
use crate::prepare_cmd::prepare_corpus;
use crate::run_stats::{HEAP_GROWTH_WARNING, RunStats};
use crate::say;
use crate::signal::StopFlag;
use crate::train_args::TrainArgs;
use crate::{progress, run_dir};

/// How long an evaluation runs before it prints progress lines off a terminal (then every
/// [`progress::REPEAT_AFTER`]): the nanogpt-cpu preset's take under a second, nanogpt-baby's
/// 200 batches of 64 x 256 tokens tens of minutes on two cores.
const EVAL_QUIET: Duration = Duration::from_secs(5);

/// Off a terminal and without `--log-every`, the longest time between two progress lines while
/// steps complete.
const LOG_AT_LEAST: Duration = Duration::from_secs(60);

/// The name, under `checkpoints/`, of the lowest validation loss's checkpoint (`--keep-best`).
pub const BEST: &str = "best";

/// What the user asked for.
#[derive(Clone, Debug)]
pub struct Request {
    /// Positional corpus path.
    pub path: Option<PathBuf>,
    /// Data options.
    pub data: DataArgs,
    /// Model, recipe and run options.
    pub train: TrainArgs,
    /// `--out`.
    pub out: Option<PathBuf>,
}

/// How a run ended (errors are `Err`).
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Steps completed.
    pub step: u64,
    /// True if Ctrl-C stopped it early.
    pub interrupted: bool,
    /// Last validation loss measured.
    pub val_loss: Option<f32>,
}

/// A checkpoint being resumed, with the run config it carries and where the run lives.
struct Resume {
    ck: Checkpoint,
    cfg: RunConfig,
    run_dir: PathBuf,
    path: PathBuf,
}

fn load_resume(req: &Request, arg: &Path) -> Result<Resume, String> {
    let mut given = fixed_flags_given(&req.train);
    if req.train.eval_only {
        given.retain(|f| *f != "--eval-iters");
    }
    if !given.is_empty() {
        return Err(format!(
            "{} cannot change when resuming (the config comes from the checkpoint); only --max-steps, \
             --checkpoint-every, --keep-checkpoints, --keep-best and --threads may be given",
            given.join(", ")
        ));
    }
    let (path, run_dir) = run_dir::locate_checkpoint(arg)?;
    let ck = checkpoint::load(&path).map_err(|e| e.to_string())?;
    let cfg: RunConfig = serde_json::from_value(ck.state.extra.clone()).map_err(|e| {
        format!(
            "{}: state.json has no usable run config: {e}",
            path.display()
        )
    })?;
    Ok(Resume {
        ck,
        cfg,
        run_dir,
        path,
    })
}

/// The config of a fresh run: the preset plus overrides (data-dependent fields filled later).
fn fresh_config(req: &Request) -> Result<RunConfig, String> {
    let preset_name = req.train.preset.clone().unwrap_or_else(|| "tiny".into());
    let (model, hyper) = resolve_hyper(&req.train, &preset_name)?;
    let rng = req.train.rng.unwrap_or_else(|| default_rng(&preset_name));
    Ok(RunConfig {
        preset: preset_name,
        model,
        hyper,
        seed: req.train.seed.unwrap_or(DEFAULT_SEED),
        rng,
        matmul_precision: req.train.matmul_precision.unwrap_or_default(),
        checkpoint_every: req.train.checkpoint_every.unwrap_or(hyper.eval_interval),
        keep_checkpoints: req.train.keep_checkpoints.unwrap_or(3),
        keep_best: req.train.keep_best,
        data: req.data.clone(),
        data_path: req.path.clone(),
        tokenizer_sha256: String::new(),
        data_sha256: String::new(),
        train_tokens: 0,
        val_tokens: 0,
        threads: 0,
        compute_workers: 0,
        micro_batch: None,
        pin: false,
        groups: 0,
        tree_depth: 0,
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// Fills the data-dependent fields of a fresh config.
fn complete_fresh(cfg: &mut RunConfig, req: &Request, prepared: &Prepared) -> Result<(), String> {
    let tok_vocab = prepared.tokenizer.vocab_size();
    cfg.model.vocab_size = match req.data.vocab_size {
        Some(v) if prepared.tokenizer.kind() != cllm_data::TokenizerKind::Bpe => {
            if v < tok_vocab {
                return Err(format!(
                    "--vocab-size {v} is smaller than the {} tokenizer's vocabulary of {tok_vocab}",
                    prepared.tokenizer.kind()
                ));
            }
            v
        }
        _ => tok_vocab,
    };
    cfg.tokenizer_sha256 = prepared.summary.tokenizer_sha256.clone();
    cfg.data_sha256 = prepared.summary.content_sha256();
    cfg.train_tokens = prepared.summary.train_tokens;
    cfg.val_tokens = prepared.summary.val_tokens;
    if let Some(epochs) = req.train.epochs {
        // Checked positive and finite by `resolve_hyper`, before the data was prepared.
        let per_step = (cfg.hyper.batch_size * cfg.model.seq_len) as f64;
        let steps = (epochs * cfg.train_tokens as f64 / per_step)
            .ceil()
            .max(1.0) as u64;
        cfg.hyper.max_steps = steps;
        cfg.hyper.lr_decay_steps = steps;
    }
    Ok(())
}

/// Runs training as requested; `stop` is polled after every step and between evaluation batches.
pub fn run(req: Request, stop: &StopFlag) -> Result<Outcome, String> {
    let resume = req
        .train
        .resume
        .as_ref()
        .map(|arg| load_resume(&req, arg))
        .transpose()?;
    let (mut cfg, run_dir) = match &resume {
        Some(r) => resumed_config(r, &req),
        None => {
            let cfg = fresh_config(&req)?;
            let dir = req.out.clone();
            (
                cfg,
                dir.unwrap_or_else(|| run_dir::default_run_dir(&label_of(&req))),
            )
        }
    };
    // A default directory of a fresh run is claimed later (`-2`, `-3`... if a run started in
    // the same second has it); any other must not hold another run.
    let fresh_default_dir = req.out.is_none() && resume.is_none();
    if fresh_default_dir {
        run_dir::check_creatable(&run_dir)?;
    } else if !req.train.eval_only {
        run_dir::check_writable(&run_dir, resume.as_ref().map(|r| r.run_dir.as_path()))?;
    }
    if cfg.keep_checkpoints == 0 {
        return Err("--keep-checkpoints must be at least 1".into());
    }
    let split_before = (cfg.compute_workers, cfg.micro_batch);
    settle_parallelism(&mut cfg, &req, resume.is_some())?;
    if resume.is_some()
        && !req.train.eval_only
        && let Some(note) = split_change_note(split_before, &cfg)
    {
        say!("{note}");
    }
    cfg.matmul_precision.apply()?;
    if let Some(warning) = cfg.matmul_precision.speed_warning() {
        say!("{warning}");
    }

    // The data.
    let prepared = prepare_corpus(
        &cfg.data,
        cfg.data_path.as_ref(),
        cfg.model.seq_len as u64 + 1,
    )?;
    say!(
        "data: {} ({})",
        prepared.summary.one_line(),
        if prepared.reused {
            "prepared earlier, reused"
        } else {
            "prepared now"
        }
    );
    match &resume {
        Some(r) if r.ck.state.tokenizer_sha256 != prepared.summary.tokenizer_sha256 => {
            return Err(format!(
                "{}: the checkpoint was trained with tokenizer {} but the data now gives tokenizer {}; \
                 resume with the data it was trained on",
                r.path.display(),
                short(&r.ck.state.tokenizer_sha256),
                short(&prepared.summary.tokenizer_sha256)
            ));
        }
        Some(_) => {
            let data = prepared.summary.content_sha256();
            if !cfg.data_sha256.is_empty() && cfg.data_sha256 != data {
                say!(
                    "warning: the corpus changed since this run started (content {} then, {} \
                     now; {} + {} tokens then, {} + {} now): training goes on with the data as it \
                     is, so the losses will not be those of an uninterrupted run",
                    short(&cfg.data_sha256),
                    short(&data),
                    cfg.train_tokens,
                    cfg.val_tokens,
                    prepared.summary.train_tokens,
                    prepared.summary.val_tokens
                );
            }
            // What the checkpoints written from now on were trained on.
            cfg.data_sha256 = data;
            cfg.train_tokens = prepared.summary.train_tokens;
            cfg.val_tokens = prepared.summary.val_tokens;
        }
        None => complete_fresh(&mut cfg, &req, &prepared)?,
    }
    // Before anything the size of the model or the batch is allocated.
    let batching = memory_check::Batching {
        batch_size: cfg.hyper.batch_size,
        compute_workers: cfg.compute_workers,
        micro_batch: cfg.micro_batch,
    };
    cfg.model.validate()?;
    let available = memory_check::available_bytes();
    memory_check::check_shape(&cfg.model, batching, available)?;
    let gpt = Gpt::new(cfg.model)?.with_dropout(cfg.hyper.dropout)?;
    memory_check::check_run(&gpt, batching, available)?;
    let start_step = resume.as_ref().map_or(0, |r| r.ck.state.step);
    if start_step > cfg.hyper.max_steps {
        return Err(format!(
            "the checkpoint is at step {start_step}, beyond --max-steps {}; pass a larger --max-steps to continue",
            cfg.hyper.max_steps
        ));
    }
    let resumed_from = resume.as_ref().map(|r| r.path.clone());
    let (weights, m, v) = match resume {
        Some(r) => (r.ck.weights, r.ck.m, r.ck.v),
        None => (
            initial_weights(&cfg, &gpt)?,
            gpt.params.layout.zeros(),
            gpt.params.layout.zeros(),
        ),
    };

    // The lattice.
    let opts = EngineOptions {
        threads: cfg.threads,
        compute_workers: cfg.compute_workers,
        micro_batch: cfg.micro_batch,
        pin: cfg.pin,
        seed: cfg.seed,
        first_step: start_step,
        inject: req
            .train
            .inject_panic
            .map(|(worker, step)| InjectedPanic { worker, step }),
    };
    let engine = LatticeEngine::new(gpt, &cfg.hyper, &weights, &m, &v, opts)?;
    drop((weights, m, v));
    cfg.groups = engine.topology().groups;
    cfg.tree_depth = engine.topology().tree_depth;
    if req.train.eval_only {
        return evaluate_only(cfg, run_dir, start_step, &prepared, engine);
    }

    // The run directory. A default name is claimed atomically, so runs started in the same
    // second (one per seed, say) get `-2`, `-3`... instead of sharing one directory.
    let run_dir = if fresh_default_dir {
        run_dir::claim(&run_dir)?
    } else {
        run_dir
    };
    // Held until this function returns, training included.
    let (_lock, metrics) = open_run_dir(&run_dir, &cfg, &prepared, start_step)?;
    announce(&cfg, &engine);
    if start_step > 0 {
        say!("resuming at step {start_step} of {}", cfg.hyper.max_steps);
    }
    let mut trainer = Trainer::new(cfg, run_dir, &prepared, engine, metrics)?;
    // The checkpoint resumed from is the last good one until a newer is written (what a
    // divergence or a failed checkpoint names).
    trainer.last_checkpoint = resumed_from;
    trainer.log_every = req.train.log_every;
    trainer.stop_after = req.train.stop_after_steps;
    trainer.stop_in_eval = req.train.stop_in_eval;
    trainer.train(start_step, stop)
}

/// The config of a resumed run: the checkpoint's, with what may change between sessions
/// (steps, eval iterations for `--eval-only`, checkpoint cadence, where the data lives) taken
/// from the command line; and the run directory to go on in.
fn resumed_config(r: &Resume, req: &Request) -> (RunConfig, PathBuf) {
    let mut cfg = r.cfg.clone();
    if let Some(n) = req.train.max_steps {
        cfg.hyper.max_steps = n;
        cfg.hyper.lr_decay_steps = n;
    }
    if req.train.eval_only {
        cfg.hyper.eval_iters = req.train.eval_iters.unwrap_or(cfg.hyper.eval_iters);
    }
    cfg.checkpoint_every = req.train.checkpoint_every.unwrap_or(cfg.checkpoint_every);
    cfg.keep_checkpoints = req.train.keep_checkpoints.unwrap_or(cfg.keep_checkpoints);
    cfg.keep_best |= req.train.keep_best;
    // Data may live elsewhere on this machine; its content is checked after preparation.
    if req.data.data_dir.is_some() {
        cfg.data.data_dir = req.data.data_dir.clone();
    }
    if req.data.cache_dir.is_some() {
        cfg.data.cache_dir = req.data.cache_dir.clone();
    }
    (cfg, req.out.clone().unwrap_or_else(|| r.run_dir.clone()))
}

/// What a resumed run says when its batch is now split otherwise than when it was saved:
/// `before` is the checkpoint's (computing workers, micro-batch). The gradients are summed
/// over the workers and their passes, so another grouping rounds differently; passes as large
/// as the largest share are one pass.
fn split_change_note(before: (usize, Option<usize>), cfg: &RunConfig) -> Option<String> {
    let batch = cfg.hyper.batch_size;
    let effective = |(workers, micro): (usize, Option<usize>)| {
        (
            workers,
            micro.filter(|&m| m < batch.div_ceil(workers.max(1))),
        )
    };
    let now = (cfg.compute_workers, cfg.micro_batch);
    if before.0 == 0 || effective(now) == effective(before) {
        return None;
    }
    let passes = |m: Option<usize>| m.map_or(String::new(), |m| format!(" in passes of {m}"));
    let (workers, micro) = before;
    Some(format!(
        "note: this run computed on {workers} worker(s){} and goes on with {}{}: its losses will \
         agree with an uninterrupted run's to float rounding, not bit for bit (--compute-workers \
         {workers}{} keeps them identical)",
        passes(micro),
        now.0,
        passes(now.1),
        micro.map_or(String::new(), |m| format!(" --micro-batch {m}"))
    ))
}

/// Threads, computing workers and pinning; and the model's shape checked, all before the data
/// is prepared (which can take a minute on a large corpus).
fn settle_parallelism(cfg: &mut RunConfig, req: &Request, resumed: bool) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cfg.threads = req.train.threads.unwrap_or(if resumed && cfg.threads > 0 {
        cfg.threads
    } else {
        cores
    });
    cllm_lattice::LatticeConfig::check_threads(cfg.threads).map_err(|e| e.to_string())?;
    // The vocabulary is known only after preparation, so any positive one stands in.
    GptConfig {
        vocab_size: cfg.model.vocab_size.max(1),
        ..cfg.model
    }
    .validate()?;
    cfg.pin = req.train.pin;
    cfg.compute_workers = match req.train.compute_workers {
        Some(n) => {
            check_compute_workers(n, cfg.threads, cfg.hyper.batch_size)?;
            n
        }
        None => crate::engine::default_compute_workers(cfg.threads, cores, cfg.hyper.batch_size)
            .clamp(1, cfg.threads.max(1)),
    };
    if req.train.micro_batch == Some(0) {
        return Err("--micro-batch must be at least 1".into());
    }
    // A fresh config has none; a resumed run keeps its own unless told otherwise.
    cfg.micro_batch = req.train.micro_batch.or(cfg.micro_batch);
    Ok(())
}

/// An explicit `--compute-workers n` that cannot be honoured is refused rather than quietly
/// lowered: the computing workers are some of the `threads` workers, and each needs at least
/// one of the `batch` sequences of a step.
fn check_compute_workers(n: usize, threads: usize, batch: usize) -> Result<(), String> {
    if n == 0 {
        return Err("--compute-workers must be at least 1".into());
    }
    if n > threads {
        return Err(format!(
            "--compute-workers {n} is more than the {threads} worker threads (--threads): \
             the computing workers are some of them"
        ));
    }
    if n > batch {
        return Err(format!(
            "--compute-workers {n} is more than the {batch} sequences of a step (--batch-size): \
             each computing worker needs at least one"
        ));
    }
    Ok(())
}

/// Creates and locks the run directory and writes what a run starts with: the data's and the
/// tokenizer's descriptions, `config.json`, and `metrics.jsonl` (truncated to `start_step`).
fn open_run_dir(
    run_dir: &Path,
    cfg: &RunConfig,
    prepared: &Prepared,
    start_step: u64,
) -> Result<(run_dir::RunLock, MetricsWriter), String> {
    std::fs::create_dir_all(run_dir.join("checkpoints"))
        .map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let lock = run_dir::lock(run_dir)?;
    prepared
        .write_run_files(run_dir)
        .map_err(|e| e.to_string())?;
    let cfg_json = serde_json::to_string_pretty(cfg).expect("config serialises");
    cllm_data::write_atomic(&run_dir.join("config.json"), cfg_json.as_bytes())
        .map_err(|e| e.to_string())?;
    let metrics = MetricsWriter::open(&run_dir.join("metrics.jsonl"), start_step)?;
    Ok((lock, metrics))
}

/// The start-up lines: the model, the lattice's shape and placement, the memory breakdown.
fn announce(cfg: &RunConfig, engine: &LatticeEngine) {
    say!(
        "model: {} preset, {} parameters ({} layers, {} heads, width {}, context {}, vocab {}); batch {} x {} tokens{}{}; \
         seed {} on the {} random stream{}",
        cfg.preset,
        cfg.model.num_params(),
        cfg.model.num_layers,
        cfg.model.num_heads,
        cfg.model.embed_dim,
        cfg.model.seq_len,
        cfg.model.vocab_size,
        cfg.hyper.batch_size,
        cfg.model.seq_len,
        cfg.micro_batch.map_or_else(String::new, |m| format!(
            ", in passes of at most {m} per worker"
        )),
        match cfg.hyper.dropout {
            0.0 => String::new(),
            p => format!("; dropout {p}"),
        },
        cfg.seed,
        cfg.rng,
        match cfg.matmul_precision {
            MatmulPrecision::F32 => "",
            MatmulPrecision::Bf16 => "; matrix products in bf16 (f32 sums)",
        }
    );
    let pinned = match (cfg.pin, engine.placement()) {
        (false, _) => String::new(),
        (true, Some(p)) => format!(", pinned in {p}"),
        (true, None) => ", not pinned (this platform lists no CPUs)".to_string(),
    };
    say!("lattice: Node Zero + {}{pinned}", engine.topology());
    let mem = engine.memory();
    let pages = if crate::huge_pages::enabled() {
        "buffers of 2 MiB or more in transparent huge pages where the kernel has them"
    } else {
        "huge pages off (CLLM_HUGE_PAGES=0)"
    };
    say!("{mem}; {pages}");
    if mem.computing_workers < mem.workers {
        say!(
            "{} of {} workers compute (at most one per core and per sequence; --compute-workers changes it); \
             all {} reduce and update their segment",
            mem.computing_workers,
            mem.workers,
            mem.workers
        );
    }
}

/// `--eval-only`: the losses of a checkpoint on the batches the run's own evaluation at that
/// step uses, printed as one JSON line.
fn evaluate_only(
    cfg: RunConfig,
    run_dir: PathBuf,
    step: u64,
    prepared: &Prepared,
    mut engine: LatticeEngine,
) -> Result<Outcome, String> {
    let mut batches = batches_of(&cfg, prepared)?;
    let mut report = serde_json::Map::new();
    report.insert("step".into(), step.into());
    report.insert("eval_iters".into(), cfg.hyper.eval_iters.into());
    let mut val_loss = None;
    let mut batch = Batch::default();
    let n = cfg.hyper.eval_iters;
    let (pb, log) = (
        progress::bar(2 * n, "evaluating"),
        progress::PhaseLog::start("eval", EVAL_QUIET),
    );
    for split in [Split::Val, Split::Train] {
        let mut reader = prepared.open(split).map_err(|e| e.to_string())?;
        let mut total = 0.0f64;
        for i in 0..n {
            log.set(&eval_progress(split, i as usize, n as usize, step));
            pb.inc(1);
            batches.eval(step, split, i, &mut reader, &mut batch)?;
            let (loss, back) = engine.eval_loss(batch)?;
            batch = back;
            total += loss as f64;
        }
        let loss = total / cfg.hyper.eval_iters.max(1) as f64;
        if split == Split::Val {
            val_loss = Some(loss as f32);
        }
        report.insert(format!("{}_loss", split.name()), loss.into());
    }
    drop(log);
    pb.finish_and_clear();
    crate::console::stdout(&format!("{}\n", serde_json::Value::Object(report)))?;
    Ok(Outcome {
        run_dir,
        step,
        interrupted: false,
        val_loss,
    })
}

/// An evaluation's progress: batch `i` (from 0) of `n` of `split` (its first word names the
/// phase for [`progress::PhaseLog`]).
fn eval_progress(split: Split, i: usize, n: usize, step: u64) -> String {
    format!(
        "{} batch {}/{n} of the evaluation at step {step}",
        split.name(),
        i + 1
    )
}

/// The initial weights the run's random stream gives.
fn initial_weights(cfg: &RunConfig, gpt: &Gpt) -> Result<Vec<f32>, String> {
    match cfg.rng {
        RandomStream::Cllm => Ok(gpt.params.init(&cfg.model, cfg.seed)),
        RandomStream::Nanogpt => Ok(gpt.params.init_nanogpt(&cfg.model, cfg.seed)?.0),
    }
}

/// The batch source of the run's random stream.
fn batches_of(cfg: &RunConfig, prepared: &Prepared) -> Result<Batches, String> {
    let (b, t) = (cfg.hyper.batch_size, cfg.model.seq_len);
    match cfg.rng {
        RandomStream::Cllm => Ok(Batches::cllm(cfg.seed, b, t)),
        RandomStream::Nanogpt => Batches::nanogpt(
            cfg.seed,
            cllm_model::nanogpt_init_draws(&cfg.model),
            (b, t),
            (prepared.summary.train_tokens, prepared.summary.val_tokens),
            (cfg.hyper.eval_interval, cfg.hyper.eval_iters),
        ),
    }
}

fn label_of(req: &Request) -> String {
    match (&req.path, &req.data.dataset) {
        (Some(p), _) => p
            .file_name()
            .map_or_else(|| "corpus".into(), |n| n.to_string_lossy().into_owned()),
        (None, Some(d)) => d.replace('/', "-"),
        (None, None) => crate::builtin_corpus::NAME.into(),
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The loop and its state.
struct Trainer {
    cfg: RunConfig,
    run_dir: PathBuf,
    engine: LatticeEngine,
    metrics: MetricsWriter,
    train: ShardReader,
    val: ShardReader,
    batches: Batches,
    /// Evaluation batches per split, refilled for each evaluation unless the stream's are
    /// fixed; moved to the workers and back.
    eval_batches: Vec<(Split, Vec<Batch>)>,
    last_checkpoint: Option<PathBuf>,
    last_val: Option<f32>,
    /// With `keep_best`: the validation loss of `checkpoints/best`, if there is one.
    best_val: Option<f32>,
    rss: RssSampler,
    log_every: Option<u64>,
    stop_after: Option<u64>,
    /// Test hook: request a stop during the evaluation after this step.
    stop_in_eval: Option<u64>,
}

impl Trainer {
    fn new(
        cfg: RunConfig,
        run_dir: PathBuf,
        prepared: &Prepared,
        engine: LatticeEngine,
        metrics: MetricsWriter,
    ) -> Result<Self, String> {
        let err = |e: cllm_data::DataError| e.to_string();
        let train = prepared.open(Split::Train).map_err(err)?;
        let val = prepared.open(Split::Val).map_err(err)?;
        let batches = batches_of(&cfg, prepared)?;
        let slots = || vec![Batch::default(); cfg.hyper.eval_iters as usize];
        let eval_batches = vec![(Split::Val, slots()), (Split::Train, slots())];
        let mut trainer = Trainer {
            cfg,
            run_dir,
            engine,
            metrics,
            train,
            val,
            batches,
            eval_batches,
            last_checkpoint: None,
            last_val: None,
            best_val: None,
            rss: RssSampler::default(),
            log_every: None,
            stop_after: None,
            stop_in_eval: None,
        };
        // Fixed evaluation batches are read once; fresh ones at each evaluation.
        if trainer.batches.eval_is_fixed() {
            trainer.fill_eval_batches(0)?;
        }
        // A resumed run goes on beating the best checkpoint it kept before.
        let best = trainer.run_dir.join("checkpoints").join(BEST);
        trainer.best_val = checkpoint::read_state(&best).ok().and_then(|s| s.val_loss);
        Ok(trainer)
    }

    /// Fills the evaluation batches of the evaluation after `step` updates.
    fn fill_eval_batches(&mut self, step: u64) -> Result<(), String> {
        for (split, batches) in &mut self.eval_batches {
            let reader = match split {
                Split::Val => &mut self.val,
                Split::Train => &mut self.train,
            };
            for (i, b) in batches.iter_mut().enumerate() {
                self.batches.eval(step, *split, i as u64, reader, b)?;
            }
        }
        Ok(())
    }

    fn train(&mut self, start: u64, stop: &StopFlag) -> Result<Outcome, String> {
        stop.arm();
        let h = self.cfg.hyper;
        let tokens_per_step = (h.batch_size * self.cfg.model.seq_len) as f64;
        let pb = progress::bar(h.max_steps, "training");
        pb.set_position(start);
        let log_every = self.log_every.unwrap_or((h.max_steps / 10).max(1)).max(1);
        // Without --log-every, also a line at least every LOG_AT_LEAST: a large model's tenth
        // of a run can take hours.
        let by_time = self.log_every.is_none();
        let mut logged = Instant::now();
        // The evaluation at the start: a new run's, or the one a resumed run's checkpoint step
        // should have had and does not (it was stopped before it finished).
        let due = start == 0 || start.is_multiple_of(h.eval_interval);
        if due && self.metrics.last_eval_step() != Some(start) {
            self.evaluate(start, &pb, stop)?;
        }
        let started = Instant::now();
        let mut stats = RunStats::with_capacity((h.max_steps - start) as usize);
        // A stop requested during the first evaluation, before any step: checkpoint the start.
        let mut interrupted = stop.requested() && start < h.max_steps;
        if interrupted {
            self.stop_here(start, &pb)?;
        }
        // Double buffering: the workers read `batch` while Node Zero fills `next`.
        let mut batch = Batch::default();
        let mut next = Batch::default();
        if start < h.max_steps {
            self.batches.train(start, &mut self.train, &mut batch)?;
        }
        let steps = if interrupted {
            start..start
        } else {
            start..h.max_steps
        };
        for step in steps {
            let span = tracing::info_span!("step", step = step + 1).entered();
            let t0 = Instant::now();
            let lr = schedule::learning_rate(&h, step);
            let (batches, reader, next_ref) = (&mut self.batches, &mut self.train, &mut next);
            let mut prepare = || {
                let _s = tracing::debug_span!("data.next_batch").entered();
                if step + 1 < h.max_steps {
                    batches.train(step + 1, reader, next_ref)?;
                }
                Ok(())
            };
            let (out, used) =
                self.engine
                    .step(std::mem::take(&mut batch), step + 1, lr, &mut prepare)?;
            batch = std::mem::replace(&mut next, used);
            let done = step + 1;
            if !out.loss.is_finite() || !out.grad_norm.is_finite() {
                let _ = self.metrics.flush();
                let kept = self
                    .last_checkpoint
                    .as_ref()
                    .map_or_else(|| "none".into(), |p| p.display().to_string());
                return Err(format!(
                    "training diverged at step {done}: loss {} and gradient norm {} (try a lower --learning-rate); \
                     last good checkpoint: {kept}",
                    out.loss, out.grad_norm
                ));
            }
            let secs = t0.elapsed().as_secs_f64();
            drop(span);
            let heap = crate::heap::live_bytes();
            stats.push(secs * 1e3, &out, heap);
            self.metrics.write(&StepLine {
                step: done,
                loss: out.loss,
                lr,
                grad_norm: out.grad_norm,
                tokens_per_s: tokens_per_step / secs,
                ms_per_step: secs * 1e3,
                rss_bytes: self.rss.get(),
                heap_bytes: heap,
                phase_ms: PhaseMs::new(out.data, out.phases),
            })?;
            pb.set_position(done);
            if !pb.is_hidden() {
                pb.set_message(format!("loss {:.4}", out.loss));
            } else if done % log_every == 0
                || done == h.max_steps
                || (by_time && logged.elapsed() >= LOG_AT_LEAST)
            {
                logged = Instant::now();
                say!(
                    "step {done}/{}: loss {:.4}, lr {lr:.2e}, {:.1} ms/step",
                    h.max_steps,
                    out.loss,
                    secs * 1e3
                );
            }
            if done % h.eval_interval == 0 || done == h.max_steps {
                self.evaluate(done, &pb, stop)?;
            }
            let ck_every = self.cfg.checkpoint_every;
            if done == h.max_steps || (ck_every > 0 && done % ck_every == 0) {
                self.checkpoint(done)?;
            }
            let stop_now = stop.requested() || self.stop_after.is_some_and(|n| done - start >= n);
            if stop_now && done < h.max_steps {
                self.stop_here(done, &pb)?;
                interrupted = true;
                break;
            }
        }
        self.metrics.flush()?;
        pb.finish_and_clear();
        let end = if interrupted {
            start + stats.len() as u64
        } else {
            h.max_steps
        };
        if !interrupted {
            self.summary(
                start,
                &stats,
                started.elapsed().as_secs_f64(),
                tokens_per_step,
            );
        }
        Ok(Outcome {
            run_dir: self.run_dir.clone(),
            step: end,
            interrupted,
            val_loss: self.last_val,
        })
    }

    /// Checkpoints `done` steps and says how to resume: the end of a run that was asked to stop.
    fn stop_here(&mut self, done: u64, pb: &indicatif::ProgressBar) -> Result<(), String> {
        self.checkpoint(done)?;
        pb.finish_and_clear();
        say!(
            "stopped at step {done} of {}; checkpoint {}\nresume with: {} --resume {}",
            self.cfg.hyper.max_steps,
            self.last_checkpoint
                .as_ref()
                .map_or_else(String::new, |p| p.display().to_string()),
            crate::sibling::command("cllm-train"),
            self.run_dir.display()
        );
        Ok(())
    }

    /// Evaluates the model after `step` updates on both splits and records the losses. Shows
    /// its progress batch by batch (on the bar, or in log lines once it has run for
    /// [`EVAL_QUIET`] off a terminal), and gives up between batches when a stop is requested,
    /// recording nothing (a large model's evaluation can take many minutes; a stop should not
    /// wait for it).
    fn evaluate(
        &mut self,
        step: u64,
        pb: &indicatif::ProgressBar,
        stop: &StopFlag,
    ) -> Result<(), String> {
        let _span = tracing::info_span!("eval", step).entered();
        if !self.batches.eval_is_fixed() {
            self.fill_eval_batches(step)?;
        }
        let log = progress::PhaseLog::start("eval", EVAL_QUIET);
        let mut losses = Vec::new();
        for (split, batches) in &mut self.eval_batches {
            let n = batches.len();
            let mut total = 0.0f64;
            for (i, b) in batches.iter_mut().enumerate() {
                if i > 0 && self.stop_in_eval == Some(step) {
                    stop.request();
                }
                if stop.requested() {
                    pb.set_message("");
                    pb.suspend(|| {
                        say!("evaluation at step {step} stopped (stop requested): not recorded")
                    });
                    return Ok(());
                }
                let msg = eval_progress(*split, i, n, step);
                log.set(&msg);
                pb.set_message(format!("evaluating: {msg}"));
                let (loss, back) = self.engine.eval_loss(std::mem::take(b))?;
                *b = back;
                total += loss as f64;
            }
            if n > 0 {
                losses.push((*split, (total / n as f64) as f32));
            }
        }
        drop(log);
        pb.set_message("");
        let mut report = Vec::new();
        let mut improved = false;
        for (split, loss) in losses {
            let name = split.name();
            self.metrics.write(&EvalLine {
                step,
                split: name,
                loss,
            })?;
            if split == Split::Val {
                self.last_val = Some(loss);
                // (A NaN loss is never the best.)
                improved = self.cfg.keep_best
                    && step > 0
                    && loss.is_finite()
                    && self.best_val.is_none_or(|best| loss < best);
            }
            report.push(format!("{name} loss {loss:.4}"));
        }
        self.metrics.flush()?;
        if improved && let Some(loss) = self.last_val {
            self.save_checkpoint(step, BEST, Some(loss))?;
            self.best_val = Some(loss);
            report.push(format!("best so far: checkpoints/{BEST}"));
        }
        if !report.is_empty() {
            pb.suspend(|| say!("step {step}: {}", report.join(", ")));
        }
        Ok(())
    }

    /// Writes the checkpoint of `step` (once), and prunes the older ones.
    fn checkpoint(&mut self, step: u64) -> Result<(), String> {
        let name = checkpoint::step_name(step);
        if self
            .last_checkpoint
            .as_ref()
            .is_some_and(|p| p.ends_with(&name))
        {
            return Ok(());
        }
        let path = self.save_checkpoint(step, &name, None)?;
        self.last_checkpoint = Some(path);
        self.prune_checkpoints(&self.run_dir.join("checkpoints"));
        Ok(())
    }

    /// Writes the weights and moments after `step` updates as `checkpoints/NAME`, with the
    /// validation loss measured there if given.
    fn save_checkpoint(
        &mut self,
        step: u64,
        name: &str,
        val_loss: Option<f32>,
    ) -> Result<PathBuf, String> {
        let _span = tracing::info_span!("checkpoint", step, name).entered();
        let dir = self.run_dir.join("checkpoints");
        let state = CheckpointState {
            version: checkpoint::CHECKPOINT_VERSION,
            step,
            model: self.cfg.model,
            hyper: self.cfg.hyper,
            seed: self.cfg.seed,
            tokenizer_sha256: self.cfg.tokenizer_sha256.clone(),
            weights_sha256: String::new(),
            extra: serde_json::to_value(&self.cfg).expect("config serialises"),
            val_loss,
        };
        let (m, v) = self.engine.moments();
        let params = cllm_model::GptParams::new(&self.cfg.model);
        checkpoint::save(&dir, name, &params, state, self.engine.weights(), m, v).map_err(|e| {
            let kept = match &self.last_checkpoint {
                Some(p) => format!(
                    "the last one, {}, is intact: continue with {} --resume {}",
                    p.display(),
                    crate::sibling::command("cllm-train"),
                    self.run_dir.display()
                ),
                None => "none was written before it".into(),
            };
            format!("checkpoint at step {step} not written ({e}); {kept}")
        })
    }

    /// Keeps the newest `keep_checkpoints` checkpoints.
    fn prune_checkpoints(&self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut steps: Vec<(u64, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let step = name.strip_prefix("step-")?.parse::<u64>().ok()?;
                Some((step, e.path()))
            })
            .collect();
        steps.sort();
        let keep = self.cfg.keep_checkpoints; // at least 1, checked at start-up
        if steps.len() > keep {
            for (_, p) in &steps[..steps.len() - keep] {
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }

    fn summary(&self, start: u64, stats: &RunStats, secs: f64, tokens_per_step: f64) {
        let median = stats.median_ms();
        say!(
            "trained steps {start}..{} in {secs:.1} s on {} worker thread{}: median {median:.2} ms/step, {:.0} tokens/s; last val loss {}",
            self.cfg.hyper.max_steps,
            self.cfg.threads,
            if self.cfg.threads == 1 { "" } else { "s" },
            if median > 0.0 {
                tokens_per_step / (median / 1e3)
            } else {
                0.0
            },
            self.last_val
                .map_or_else(|| "n/a".into(), |v| format!("{v:.4}"))
        );
        if !stats.is_empty() {
            say!("{}", stats.phase_summary());
        }
        if median > 0.0 {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let cfg = &self.cfg;
            let peak = crate::arithmetic::core_peak(cfg.matmul_precision.precision());
            say!(
                "{}",
                crate::arithmetic::summary_line(
                    &cfg.model,
                    cfg.hyper.batch_size * cfg.model.seq_len,
                    median,
                    cfg.compute_workers.min(cores),
                    peak
                )
            );
        }
        if let Some(g) = stats.heap_growth() {
            if g > HEAP_GROWTH_WARNING {
                say!(
                    "warning: the live heap grew {g:.1}% from the first tenth of the run to the last (more than \
                     {HEAP_GROWTH_WARNING}%): a leak? see heap_bytes in metrics.jsonl"
                );
            } else {
                tracing::info!(growth_percent = g, "live heap stable over the run");
            }
        }
        say!(
            "run directory: {} (config.json, metrics.jsonl, checkpoints/)\nsample from it: {} {} --prompt \"...\"",
            self.run_dir.display(),
            crate::sibling::command("cllm-generate"),
            self.run_dir.display()
        );
    }
}
