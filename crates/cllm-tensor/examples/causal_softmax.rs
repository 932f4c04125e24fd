//! Times the causal softmax, forward and backward, on the attention blocks of two presets:
//! nanoGPT-cpu's 48 blocks of 64 x 64 in one call, and tiny's eight 32 x 32 blocks one call
//! each, as the direct attention calls it. Prints the minimum, 10th percentile and median of
//! 3,000 calls: on a shared machine the minimum is the figure least moved by neighbours.
//!
//! ```sh
//! cargo run --release -p cllm-tensor --example causal_softmax
//! ```
//! Run it on two builds (two checkouts, say) alternately to compare them.

use std::hint::black_box;
use std::time::Instant;

use cllm_tensor::kernels::softmax::{Mask, softmax_backward, softmax_forward};

/// Calls timed per configuration.
const CALLS: usize = 3000;

fn main() {
    // (T, blocks, blocks per call)
    for (t, blocks, per_call) in [(64, 48, 48), (32, 8, 1)] {
        let n = blocks * t * t;
        let scores: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 1013) as f32 / 50.0 - 10.0)
            .collect();
        let mut probs = scores.clone();
        softmax_forward(&mut probs, t, Mask::Causal(t));
        let size = per_call * t * t;
        let mut g = scores.clone();
        let (mut forward, mut backward) = (Vec::new(), Vec::new());
        for _ in 0..CALLS {
            g.copy_from_slice(&scores);
            let t0 = Instant::now();
            for block in g.chunks_exact_mut(size) {
                softmax_forward(black_box(block), t, Mask::Causal(t));
            }
            forward.push(t0.elapsed().as_secs_f64() * 1e6);
            g.copy_from_slice(&scores);
            let t0 = Instant::now();
            for (block, p) in g.chunks_exact_mut(size).zip(probs.chunks_exact(size)) {
                softmax_backward(black_box(block), p, t, Mask::Causal(t));
            }
            backward.push(t0.elapsed().as_secs_f64() * 1e6);
        }
        let shape = if per_call == 1 {
            format!("{blocks} x [{t} x {t}], a call per block")
        } else {
            format!("[{blocks} x {t} x {t}]")
        };
        println!("causal softmax {shape}:");
        for (name, mut v) in [("forward", forward), ("backward", backward)] {
            v.sort_by(f64::total_cmp);
            println!(
                "  {name:8}  min {:8.2} µs   p10 {:8.2} µs   median {:8.2} µs",
                v[0],
                v[CALLS / 10],
                v[CALLS / 2]
            );
        }
    }
}
