//! Multiplies a linear layer's shapes with every GEMM backend compiled in, checks each against
//! the naive reference, and prints its single-thread GFLOP/s; then a causal softmax row.
//!
//! ```sh
//! cargo run --release -p cllm-tensor --example gemm_backends
//! cargo run --release -p cllm-tensor --example gemm_backends --features openblas
//! ```
//! (A quick look, not a benchmark: `cargo bench -p cllm-tensor` gives criterion medians.)

use std::time::Instant;

use cllm_tensor::Tensor;
use cllm_tensor::kernels::matmul::{Backend, GemmSpec, matmul_with};
use cllm_tensor::kernels::softmax::{Mask, softmax_forward};

fn main() {
    // Y[768, 512] = X[768, 128] W[512, 128]^T: nanoGPT-cpu's MLP up-projection (NT layout).
    let (m, k, n) = (768, 128, 512);
    let x = Tensor::from_fn(&[m, k], |i| ((i * 7 % 13) as f32 - 6.0) / 13.0);
    let w = Tensor::from_fn(&[n, k], |i| ((i * 5 % 11) as f32 - 5.0) / 11.0);
    let spec = GemmSpec::nt(m, k, n);

    let mut reference = vec![0.0; m * n];
    matmul_with(Backend::Naive, &spec, x.data(), w.data(), &mut reference);

    for &backend in Backend::all() {
        let mut y = vec![0.0; m * n];
        matmul_with(backend, &spec, x.data(), w.data(), &mut y);
        let err = y
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let reps = if backend == Backend::Naive { 2 } else { 200 };
        let t = Instant::now();
        for _ in 0..reps {
            matmul_with(backend, &spec, x.data(), w.data(), &mut y);
        }
        let gflops = spec.flops() * reps as f64 / t.elapsed().as_secs_f64() / 1e9;
        println!(
            "{:>8}: {gflops:6.1} GFLOP/s, max |difference from naive| {err:.2e}",
            backend.name()
        );
    }

    // The same kernels on a small tensor: a causal softmax over a 4 x 4 score block.
    let mut scores = Tensor::from_fn(&[4, 4], |i| i as f32 * 0.25);
    softmax_forward(scores.data_mut(), 4, Mask::Causal(4));
    for row in scores.data().chunks(4) {
        println!("{row:.3?}");
    }
}
