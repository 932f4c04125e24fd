//! AdamW over nanoGPT-cpu's parameters with cold caches, on one thread and split over two: how
//! much a second core speeds up the optimizer when its data comes from memory, as it does in
//! training (each step's activations evict the weights and moments from the caches). Then the
//! same update with warm caches, on one thread: the difference is the time spent waiting on
//! memory.
//!
//! Run: `cargo run --release -p cllm-model --example adamw_cold`

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use cllm_model::{AdamW, GptParams, StepScalars, preset};

/// Rounds per configuration; medians are printed.
const ROUNDS: u64 = 101;

/// One copy of what AdamW touches.
struct State {
    w: Vec<f32>,
    g: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
}

fn main() {
    let p = preset("nanogpt-cpu").expect("a built-in preset");
    let mut cfg = p.model;
    cfg.vocab_size = 65; // tiny Shakespeare's characters
    let params = GptParams::new(&cfg);
    let n = cfg.num_params();
    let opt = AdamW::new(&params, &p.train);
    let state = || State {
        w: params.init(&cfg, 1),
        g: (0..n).map(|i| ((i % 97) as f32 - 48.0) * 1e-3).collect(),
        m: vec![0.0; n],
        v: vec![0.0; n],
    };
    let scalars = |t| StepScalars {
        t,
        lr: 1e-3,
        grad_scale: 0.5,
    };
    // Writing 128 MiB (4x the last-level cache here) before each timed update evicts its data.
    let mut evict = vec![0u8; 128 << 20];
    let mut evict = move || {
        evict
            .iter_mut()
            .step_by(64)
            .for_each(|b| *b = b.wrapping_add(1))
    };

    let mut single = state();
    let mut one = Vec::new();
    for t in 1..=ROUNDS {
        evict();
        let s = &mut single;
        let t0 = Instant::now();
        opt.update(0..n, scalars(t), &mut s.w, &s.g, &mut s.m, &mut s.v);
        one.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    // The same update back to back, its data still in the caches: what AdamW costs when it
    // does not wait on memory.
    let mut warm = Vec::new();
    for t in ROUNDS + 1..=2 * ROUNDS {
        let s = &mut single;
        let t0 = Instant::now();
        opt.update(0..n, scalars(t), &mut s.w, &s.g, &mut s.m, &mut s.v);
        warm.push(t0.elapsed().as_secs_f64() * 1e3);
    }

    // Two threads, each owning half; a helper thread lives through all rounds and spins on a
    // round counter (as the lattice's workers spin when there are no more threads than cores),
    // so neither a spawn nor a wake-up is timed.
    let mut split = state();
    let half = n / 2;
    let (w0, w1) = split.w.split_at_mut(half);
    let (m0, m1) = split.m.split_at_mut(half);
    let (v0, v1) = split.v.split_at_mut(half);
    let (g0, g1) = split.g.split_at(half);
    let (go, finished) = (AtomicU64::new(0), AtomicU64::new(0));
    let mut two = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            for t in 1..=ROUNDS {
                while go.load(Ordering::Acquire) != t {
                    std::hint::spin_loop();
                }
                opt.update(half..n, scalars(t), w1, g1, m1, v1);
                finished.store(t, Ordering::Release);
            }
        });
        for t in 1..=ROUNDS {
            evict();
            let t0 = Instant::now();
            go.store(t, Ordering::Release);
            opt.update(0..half, scalars(t), w0, g0, m0, v0);
            while finished.load(Ordering::Acquire) != t {
                std::hint::spin_loop();
            }
            two.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    });

    let median = |mut x: Vec<f64>| {
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    let (one, two, warm) = (median(one), median(two), median(warm));
    println!(
        "AdamW over {n} parameters ({:.1} MB read and written), cold caches, medians of {ROUNDS}:",
        (7 * 4 * n) as f64 / 1e6
    );
    println!("  one thread:  {one:.3} ms");
    println!("  two threads: {two:.3} ms ({:.2}x of one)", two / one);
    println!("warm caches (the same update back to back), one thread: {warm:.3} ms");
}
