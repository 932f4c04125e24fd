//! The lattice's step: the summed gradient is the serial sum for every worker count, with or
//! without reducers (workers that only reduce and update), results are bit-identical across
//! reruns with the same count, segments cover the buffer exactly once, idle workers are
//! harmless, and evaluation rounds work.

use std::ops::Range;

use cllm_lattice::{Contribution, Ctx, Lattice, LatticeConfig, Worker};

// Miri interprets every instruction: smaller sizes keep its run to seconds.
#[cfg(not(miri))]
const LEN: usize = 10_007;
#[cfg(miri)]
const LEN: usize = 131;
const ITEMS: usize = 24;

/// Item `i` contributes the gradient g_i[j] = sin(i * 7 + j * 0.001) * w[j] scaled by 1/ITEMS.
/// The update writes w -= 0.5 * g, stores the summed gradient in state 0, and the owner's id in
/// state 1.
struct Synthetic;

fn item_grad(i: usize, j: usize, w: f32) -> f32 {
    ((i * 7) as f32 + j as f32 * 0.001).sin() * w / ITEMS as f32
}

impl Worker<2> for Synthetic {
    type Input = usize; // number of items
    type Params = f32;

    fn compute(&mut self, ctx: &Ctx, w: &[f32], items: &usize, grad: &mut [f32]) -> Contribution {
        assert!(
            ctx.worker.index() < ctx.computing,
            "a reducer asked to compute"
        );
        let mine = share(*items, ctx.computing, ctx.worker.index());
        for i in mine.clone() {
            for (j, g) in grad.iter_mut().enumerate() {
                *g += item_grad(i, j, w[j]);
            }
        }
        Contribution {
            loss_sum: mine.clone().map(|i| i as f64).sum(),
            weight: mine.len() as f64,
        }
    }

    fn evaluate(&mut self, ctx: &Ctx, _: &[f32], items: &usize) -> Contribution {
        assert!(
            ctx.worker.index() < ctx.computing,
            "a reducer asked to evaluate"
        );
        let mine = share(*items, ctx.computing, ctx.worker.index());
        Contribution {
            loss_sum: 2.0 * mine.len() as f64,
            weight: mine.len() as f64,
        }
    }

    fn update(
        &mut self,
        ctx: &Ctx,
        _: Range<usize>,
        lr: &f32,
        _: f64,
        w: &mut [f32],
        g: &[f32],
        state: [&mut [f32]; 2],
    ) {
        let [sum, owner] = state;
        for j in 0..w.len() {
            w[j] -= lr * g[j];
            sum[j] = g[j];
            owner[j] = ctx.worker.index() as f32;
        }
    }
}

fn share(items: usize, workers: usize, k: usize) -> Range<usize> {
    let (base, extra) = (items / workers, items % workers);
    let start = k * base + k.min(extra);
    start..start + base + usize::from(k < extra)
}

fn initial() -> Vec<f32> {
    (0..LEN).map(|j| 1.0 + (j % 13) as f32 * 0.1).collect()
}

fn two_steps(threads: usize, items: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>, f64) {
    two_steps_computing(threads, threads, items)
}

/// Two steps on `threads` workers of which `computing` compute.
fn two_steps_computing(
    threads: usize,
    computing: usize,
    items: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, f64) {
    let zeros = vec![0.0; LEN];
    let config = LatticeConfig {
        compute_workers: Some(computing),
        ..LatticeConfig::new(threads)
    };
    let mut l = Lattice::new(&config, &initial(), [&zeros, &zeros], |_| Synthetic).unwrap();
    assert_eq!(l.computing(), computing);
    let (r1, _) = l.step(items, 0.5).wait().unwrap();
    let (r2, _) = l.step(items, 0.5).wait().unwrap();
    assert_eq!(l.steps(), 2);
    assert!(r2.grad_norm > 0.0 && r1.grad_norm > 0.0);
    (
        l.weights().to_vec(),
        l.state(0).to_vec(),
        l.state(1).to_vec(),
        r2.loss,
    )
}

/// The same two steps on one thread, without the lattice.
fn serial(items: usize) -> Vec<f32> {
    let mut w = initial();
    for _ in 0..2 {
        let g: Vec<f32> = (0..LEN)
            .map(|j| (0..items).map(|i| item_grad(i, j, w[j])).sum())
            .collect();
        for j in 0..LEN {
            w[j] -= 0.5 * g[j];
        }
    }
    w
}

/// Two steps on `threads` workers of which `computing` compute equal the serial result `want`,
/// and segment k was updated by worker k.
fn assert_serial(threads: usize, computing: usize, want: &[f32]) {
    let (w, _, owner, loss) = two_steps_computing(threads, computing, ITEMS);
    for j in 0..LEN {
        assert!(
            (w[j] - want[j]).abs() <= 1e-5 * want[j].abs().max(1.0),
            "{computing} of {threads} computing, index {j}: {} vs {}",
            w[j],
            want[j]
        );
    }
    assert!((loss - (0..ITEMS).sum::<usize>() as f64 / ITEMS as f64).abs() < 1e-9);
    let topo = cllm_lattice::Topology::new(threads, LEN);
    for k in 0..threads {
        assert!(
            topo.segment(k).all(|j| owner[j] == k as f32),
            "{computing} of {threads}: segment {k} not owned by {k}"
        );
    }
}

#[test]
fn any_worker_count_gives_the_serial_result() {
    let want = serial(ITEMS);
    let counts: &[usize] = if cfg!(miri) {
        &[1, 3, 13]
    } else {
        &[1, 2, 3, 4, 7, 12, 13, 24, 31]
    };
    for &threads in counts {
        assert_serial(threads, threads, &want);
    }
}

#[test]
fn reducers_update_their_segments_and_are_never_asked_to_compute() {
    let want = serial(ITEMS);
    let cases: &[(usize, usize)] = if cfg!(miri) {
        &[(3, 1), (13, 2)]
    } else {
        &[(2, 1), (5, 2), (13, 1), (13, 12), (31, 3), (63, 2)]
    };
    for &(threads, computing) in cases {
        assert_serial(threads, computing, &want);
    }
    // The same computing workers give the same bits with or without reducers beside them
    // (the reduction adds the written buffers in worker order either way). Not under Miri,
    // which perturbs `sin` by an ulp on purpose.
    if !cfg!(miri) {
        assert_eq!(
            two_steps_computing(13, 2, ITEMS).0,
            two_steps_computing(2, 2, ITEMS).0
        );
    }
}

#[test]
fn compute_workers_out_of_range_is_an_error() {
    let zeros = vec![0.0; LEN];
    for bad in [0, 5] {
        let config = LatticeConfig {
            compute_workers: Some(bad),
            ..LatticeConfig::new(4)
        };
        let err = Lattice::new(&config, &initial(), [&zeros, &zeros], |_| Synthetic)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("must be between 1 and --threads 4"), "{err}");
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "Miri perturbs `sin` by an ulp on purpose, so reruns differ there"
)]
fn reruns_are_bit_identical() {
    for threads in [1, 4, 13] {
        assert_eq!(two_steps(threads, ITEMS), two_steps(threads, ITEMS));
    }
    assert_eq!(
        two_steps_computing(13, 3, ITEMS),
        two_steps_computing(13, 3, ITEMS)
    );
}

#[test]
fn more_workers_than_items() {
    let want = serial(5);
    let (w, ..) = two_steps(13, 5);
    for j in 0..LEN {
        assert!((w[j] - want[j]).abs() <= 1e-5 * want[j].abs().max(1.0));
    }
}

#[test]
fn evaluation_rounds_and_input_reuse() {
    let zeros = vec![0.0; LEN];
    let mut l = Lattice::new(&LatticeConfig::new(5), &initial(), [&zeros, &zeros], |_| {
        Synthetic
    })
    .unwrap();
    let (r, items) = l.evaluate(ITEMS).wait().unwrap();
    assert_eq!((r.loss, r.weight, items), (2.0, ITEMS as f64, ITEMS));
    assert_eq!(l.steps(), 0, "evaluations are not steps");
    assert_eq!(l.weights(), &initial()[..], "evaluations change nothing");
    let pending = l.step(items, 0.5);
    // Node Zero could prepare the next input here.
    let (r, _) = pending.wait().unwrap();
    assert_eq!(r.active_workers, 5);
    assert!(r.compute_max >= r.compute_min);

    // With reducers: evaluations and steps alternate, and only the computing workers evaluate
    // (`Synthetic` panics otherwise).
    let config = LatticeConfig {
        compute_workers: Some(3),
        ..LatticeConfig::new(14)
    };
    let mut l = Lattice::new(&config, &initial(), [&zeros, &zeros], |_| Synthetic).unwrap();
    for _ in 0..3 {
        let (r, items) = l.evaluate(ITEMS).wait().unwrap();
        assert_eq!((r.loss, r.weight, r.active_workers), (2.0, ITEMS as f64, 3));
        let (r, _) = l.step(items, 0.5).wait().unwrap();
        assert_eq!(r.active_workers, 3);
    }
    assert_eq!(l.steps(), 3);
}

/// Reports the step it computes (`Ctx::step`) as its loss.
struct StepEcho;

impl Worker<2> for StepEcho {
    type Input = ();
    type Params = ();

    fn compute(&mut self, ctx: &Ctx, _: &[f32], _: &(), _: &mut [f32]) -> Contribution {
        Contribution {
            loss_sum: ctx.step as f64,
            weight: 1.0,
        }
    }

    fn evaluate(&mut self, _: &Ctx, _: &[f32], _: &()) -> Contribution {
        Contribution::NONE
    }

    fn update(
        &mut self,
        _: &Ctx,
        _: Range<usize>,
        _: &(),
        _: f64,
        _: &mut [f32],
        _: &[f32],
        _: [&mut [f32]; 2],
    ) {
    }
}

/// A resumed run's lattice counts on from the steps it resumes after.
#[test]
fn first_step_continues_the_step_count() {
    let zeros = vec![0.0; LEN];
    let config = LatticeConfig {
        first_step: 40,
        ..LatticeConfig::new(3)
    };
    let mut l = Lattice::new(&config, &zeros, [&zeros, &zeros], |_| StepEcho).unwrap();
    assert_eq!(l.steps(), 40);
    for want in 40..43 {
        let (r, _) = l.step((), ()).wait().unwrap();
        assert_eq!(r.loss, want as f64, "Ctx::step of step {}", want + 1);
    }
    assert_eq!(l.steps(), 43);
}
