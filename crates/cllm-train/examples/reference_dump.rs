//! Writes what an independent implementation needs to replay cllm's nanoGPT-cpu training step for
//! step: the initial weights (one raw little-endian f32 file per parameter), and for each of the
//! first K steps the batch's window offsets, the loss and the gradient norm cllm computed. The
//! PyTorch script in `scripts/pytorch-reference/` loads these and compares its losses.
//!
//! ```sh
//! cargo run --release -p cllm-train --example reference_dump -- ../shared/datasets 300 target/reference-dump
//! ```
//! It prints the prepared shard directory (the script reads `train.bin` from it).

use std::io::Write;
use std::path::PathBuf;

use cllm_autograd::Tape;
use cllm_data::{Batch, BatchSampler, DataDirs, PrepareOptions, Source, Split, prepare};
use cllm_model::adamw::{clip_scale, sum_of_squares};
use cllm_model::{AdamW, Gpt, GptConfig, StepScalars, preset, schedule};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: reference_dump DATA_DIR [STEPS] [OUT_DIR]";
    let data_dir = PathBuf::from(args.next().ok_or(usage)?);
    let steps: u64 = args.next().map_or(Ok(300), |s| s.parse())?;
    let out = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "target/reference-dump".into()),
    );

    let opts = PrepareOptions {
        data_dirs: DataDirs::new(Some(data_dir)),
        ..PrepareOptions::new(Source::Named("shakespeare".into()))
    };
    let prepared = prepare(&opts, &mut |_| {})?;
    println!("{}", prepared.dir.display());

    let recipe = preset("nanogpt-cpu").ok_or("no nanogpt-cpu preset")?;
    let cfg = GptConfig {
        vocab_size: 65,
        ..recipe.model
    };
    let h = recipe.train;
    let gpt = Gpt::new(cfg)?;
    let seed = 1337;
    let mut w = gpt.params.init(&cfg, seed);
    std::fs::create_dir_all(&out)?;
    for e in gpt.params.layout.entries() {
        let bytes: Vec<u8> = w[e.range()].iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(out.join(format!("{}.bin", e.name)), bytes)?;
    }

    let adamw = AdamW::new(&gpt.params, &h);
    let zeros = || gpt.params.layout.zeros();
    let (mut m, mut v, mut g) = (zeros(), zeros(), zeros());
    let mut train = prepared.open(Split::Train)?;
    let sampler = BatchSampler::new(seed, h.batch_size, cfg.seq_len);
    let (mut tape, mut batch) = (Tape::new(), Batch::default());
    let mut log = std::fs::File::create(out.join("cllm.jsonl"))?;
    for step in 0..steps {
        sampler.fill(step, &mut train, &mut batch)?;
        g.fill(0.0);
        let (inputs, targets) = (&batch.inputs, &batch.targets);
        let loss = gpt.loss_and_grad(&mut tape, &w, inputs, targets, cfg.seq_len, 1.0, &mut g);
        let norm = sum_of_squares(&g).sqrt();
        let lr = schedule::learning_rate(&h, step);
        let scalars = StepScalars {
            t: step + 1,
            lr,
            grad_scale: clip_scale(norm, h.grad_clip),
        };
        let n = w.len();
        adamw.update(0..n, scalars, &mut w, &g, &mut m, &mut v);
        let line = serde_json::json!({
            "step": step, "loss": loss, "norm": norm, "lr": lr, "offsets": batch.offsets,
        });
        writeln!(log, "{line}")?;
    }
    eprintln!("wrote {steps} steps into {}", out.display());
    Ok(())
}
