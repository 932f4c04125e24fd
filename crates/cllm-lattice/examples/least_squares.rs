//! Fits a linear model by least squares with the lattice on 1, 2 and 8 worker threads, showing
//! that the fit does not depend on the thread count, and the report of one step.
//!
//! Run: `cargo run --release -p cllm-lattice --example least_squares`

use std::ops::Range;

use cllm_lattice::{Contribution, Ctx, Lattice, LatticeConfig, Worker};

const FEATURES: usize = 256;

/// Samples `(x, y)` with `y = <x, w*>` for a fixed `w*`; the loss of a sample is
/// `(<x, w> - y)^2 / 2`, averaged over the batch.
struct Data {
    xs: Vec<Vec<f32>>,
    ys: Vec<f32>,
}

/// Each worker takes every `workers`-th sample, starting at its own index.
struct LeastSquares;

impl Worker<1> for LeastSquares {
    type Input = Data;
    type Params = f32; // learning rate

    fn compute(&mut self, ctx: &Ctx, w: &[f32], d: &Data, grad: &mut [f32]) -> Contribution {
        let n = d.xs.len() as f32;
        let mut loss = 0.0f64;
        let mut count = 0.0;
        for i in (ctx.worker.index()..d.xs.len()).step_by(ctx.workers) {
            let x = &d.xs[i];
            let err = x.iter().zip(w).map(|(a, b)| a * b).sum::<f32>() - d.ys[i];
            for (g, xi) in grad.iter_mut().zip(x) {
                *g += err * xi / n;
            }
            loss += 0.5 * (err as f64) * (err as f64);
            count += 1.0;
        }
        Contribution {
            loss_sum: loss,
            weight: count,
        }
    }

    fn evaluate(&mut self, ctx: &Ctx, w: &[f32], d: &Data) -> Contribution {
        let mut scratch = vec![0.0; w.len()];
        self.compute(ctx, w, d, &mut scratch)
    }

    /// Momentum SGD: the state buffer holds the velocity.
    fn update(
        &mut self,
        _: &Ctx,
        _: Range<usize>,
        lr: &f32,
        _: f64,
        w: &mut [f32],
        g: &[f32],
        state: [&mut [f32]; 1],
    ) {
        let [velocity] = state;
        for i in 0..w.len() {
            velocity[i] = 0.9 * velocity[i] + g[i];
            w[i] -= lr * velocity[i];
        }
    }
}

fn data(seed: u32) -> Data {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (s >> 8) as f32 / (1 << 24) as f32 - 0.5
    };
    let truth: Vec<f32> = (0..FEATURES).map(|_| next()).collect();
    let xs: Vec<Vec<f32>> = (0..512)
        .map(|_| (0..FEATURES).map(|_| next()).collect())
        .collect();
    let ys = xs
        .iter()
        .map(|x| x.iter().zip(&truth).map(|(a, b)| a * b).sum())
        .collect();
    Data { xs, ys }
}

fn main() {
    for threads in [1, 2, 8] {
        let zeros = vec![0.0; FEATURES];
        let mut lattice = Lattice::new(&LatticeConfig::new(threads), &zeros, [&zeros], |_| {
            LeastSquares
        })
        .unwrap();
        println!("{}", lattice.topology());
        let mut input = data(7);
        let mut last = None;
        for _ in 0..200 {
            let (report, back) = lattice.step(input, 0.05).wait().unwrap();
            input = back;
            last = Some(report);
        }
        let (eval, _) = lattice.evaluate(input).wait().unwrap();
        let r = last.unwrap();
        println!(
            "  final loss {:.3e}; last step: {} workers computed, compute {:.0} us, reduce {:.0} us, update {:.0} us, wall {:?}",
            eval.loss,
            r.active_workers,
            r.compute_span * 1e6,
            r.reduce_span * 1e6,
            r.update_span * 1e6,
            r.wall
        );
    }
}
