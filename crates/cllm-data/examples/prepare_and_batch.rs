//! Prepares a corpus (a directory, a file, or a registered dataset name) and draws a few
//! batches from it, printing the summary and the first window decoded.
//!
//! Run: `cargo run --release -p cllm-data --example prepare_and_batch -- docs`
//! or:  `cargo run --release -p cllm-data --example prepare_and_batch -- shakespeare ../shared/datasets`

use std::path::PathBuf;

use cllm_data::{BatchSampler, DataDirs, PrepareOptions, Source, Split, prepare, registry};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "docs".to_string());
    let data_dir = args.next().map(PathBuf::from);
    let source = if registry::resolve(&what)?.is_some() {
        Source::Named(what)
    } else {
        Source::Path(what.into())
    };
    let opts = PrepareOptions {
        data_dirs: DataDirs::new(data_dir),
        ..PrepareOptions::new(source)
    };
    let prepared = prepare(&opts, &mut |msg| eprintln!("  {msg}"))?;
    println!("{}", prepared.summary.human());
    println!(
        "prepared data: {} (reused: {})",
        prepared.dir.display(),
        prepared.reused
    );

    let mut train = prepared.open(Split::Train)?;
    let sampler = BatchSampler::new(1337, 4, 64);
    for step in 0..3 {
        let batch = sampler.batch(step, &mut train)?;
        println!("step {step}: window offsets {:?}", batch.offsets);
    }
    let batch = sampler.batch(0, &mut train)?;
    let (inputs, _) = batch.rows(0..1);
    println!("first window:\n{}", prepared.tokenizer.decode(inputs));
    Ok(())
}
