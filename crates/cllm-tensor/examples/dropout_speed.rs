//! Throughput of the dropout kernel (elements per nanosecond), long rows and attention-like rows.
use std::time::Instant;

use cllm_tensor::kernels::dropout::Dropout;

fn main() {
    let n = 1 << 20;
    let x = vec![1.0f32; n];
    let mut y = vec![0.0f32; n];
    let d = Dropout::new(0.2, 7);
    for _ in 0..3 {
        let t0 = Instant::now();
        for _ in 0..20 {
            d.forward(0, 4096, &x, &mut y);
        }
        let ns = t0.elapsed().as_secs_f64() * 1e9 / (20.0 * n as f64);
        let t0 = Instant::now();
        let m = d.sequence(3);
        for _ in 0..20 {
            for row in 0..n / 64 {
                for i in 0..64 {
                    let len = i + 1;
                    let at = (row * 64 + i) as u32;
                    m.multiply(at, &x[..len], &mut y[..len]);
                }
            }
        }
        let elems = 20.0 * (n / 64) as f64 * (64.0 * 65.0 / 2.0);
        let ns_rows = t0.elapsed().as_secs_f64() * 1e9 / elems;
        println!("long rows {ns:.3} ns/element, causal rows of 1..64: {ns_rows:.3} ns/element");
    }
}
