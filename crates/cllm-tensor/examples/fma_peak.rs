//! One core's arithmetic peak, measured: f32 FMA with 256- and 512-bit vectors, and the bf16
//! dot product (`vdpbf16ps`) that the bf16 GEMM backend uses, where the CPU has them
//! (`cllm_tensor::kernels::matmul::peak`: twelve independent accumulator chains per
//! instruction, nothing loaded; the best a GEMM micro-kernel could reach). It then says what
//! that peak means for one nanoGPT-cpu training step (3.889 GFLOP of GEMM, as `--example
//! step_gemms` counts them), and whether bf16 products can pay on this CPU.
//!
//! ```sh
//! cargo run --release -p cllm-tensor --example fma_peak
//! ```

use cllm_tensor::kernels::matmul::peak::{self, Unit};

const ITERS: u64 = 50_000_000;
const STEP_GFLOP: f64 = 3.889;

fn main() {
    println!("one core's peak (median of 5 runs of {ITERS} iterations):");
    for unit in Unit::ALL {
        let mut runs: Vec<f64> = (0..5).filter_map(|_| peak::gflops(unit, ITERS)).collect();
        if runs.is_empty() {
            println!("  {:<32} not on this CPU", unit.name());
            continue;
        }
        runs.sort_by(f64::total_cmp);
        let best = runs[runs.len() / 2];
        println!(
            "  {:<32} {best:>6.1} GFLOP/s: a nanoGPT-cpu step's GEMMs take at least {:.1} ms",
            unit.name(),
            STEP_GFLOP / best * 1e3
        );
    }
    match peak::bf16_speedup() {
        Some(r) => println!(
            "bf16 dot products against f32 FMA on this core (the start-up check of cllm-train's \
             --matmul-precision bf16): {r:.2}x"
        ),
        None => println!("no bf16 dot product on this CPU: --matmul-precision bf16 is refused"),
    }
}
