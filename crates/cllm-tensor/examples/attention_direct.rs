//! Times the direct (register-tiled) causal attention, forward and backward, on one layer of
//! each preset's shapes (a worker's whole batch, as one thread computes it). Prints the minimum,
//! 10th percentile and median of repeated calls: on a shared machine the minimum is the figure
//! least moved by neighbours, and criterion's means can drift by a third between runs.
//!
//! ```sh
//! cargo run --release -p cllm-tensor --example attention_direct
//! ```
//! Run it on two builds (two checkouts, say) alternately to compare them.

use std::hint::black_box;
use std::time::Instant;

use cllm_tensor::kernels::attention::{
    AttentionShape, Products, attention_backward_with, attention_forward_with,
};

/// Work per configuration and pass, in (batch, head) pairs times `T^2`: about the same time
/// for every shape, so the small ones get more calls.
const BUDGET: usize = 400_000_000;

/// min, p10 and median of `v` (sorted in place).
fn summary(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 10], v[v.len() / 2])
}

fn main() {
    let shape = |b, t, c, nh| AttentionShape { b, t, c, nh };
    // (preset, one layer's shape: sequences, T, C, heads)
    let presets = [
        ("tiny", shape(4, 32, 32, 4)),
        ("nanogpt-cpu", shape(12, 64, 128, 4)),
        ("medium", shape(16, 128, 256, 8)),
        ("nanogpt-baby", shape(8, 256, 384, 6)),
    ];
    println!("direct causal attention, one layer, one thread: min / p10 / median of the calls, µs");
    for (name, s) in presets {
        let operand = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
                .collect()
        };
        let (qkv, dout) = (operand(s.qkv_len()), operand(s.out_len()));
        let (mut out, mut probs) = (vec![0.0; s.out_len()], vec![0.0; s.probs_len()]);
        let (mut dqkv, mut scratch) = (vec![0.0; s.qkv_len()], vec![0.0; s.scratch_len()]);
        let calls = (BUDGET / (s.b * s.nh * s.t * s.t)).clamp(50, 5000);
        let (mut forward, mut backward) = (Vec::new(), Vec::new());
        for _ in 0..calls {
            let t0 = Instant::now();
            attention_forward_with(
                Products::Direct,
                &mut out,
                &mut probs,
                &mut scratch,
                black_box(&qkv),
                s,
                None,
            );
            forward.push(t0.elapsed().as_secs_f64() * 1e6);
            let t0 = Instant::now();
            attention_backward_with(
                Products::Direct,
                &mut dqkv,
                &mut scratch,
                black_box(&dout),
                &qkv,
                &probs,
                s,
                None,
            );
            backward.push(t0.elapsed().as_secs_f64() * 1e6);
        }
        let (f, b) = (summary(&mut forward), summary(&mut backward));
        println!(
            "{name:<13} B={:<3} T={:<4} C={:<4} heads {}: forward {:8.1} / {:8.1} / {:8.1}   backward {:8.1} / {:8.1} / {:8.1}   ({calls} calls)",
            s.b, s.t, s.c, s.nh, f.0, f.1, f.2, b.0, b.1, b.2
        );
    }
}
