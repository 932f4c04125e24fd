//! A panic anywhere stops the whole lattice promptly: the failing round returns a fault naming
//! the worker, step and message; no thread is left waiting; later rounds fail too. Bad
//! configurations are errors, not hangs.

use std::ops::Range;
use std::time::{Duration, Instant};

use cllm_lattice::{Contribution, Ctx, Lattice, LatticeConfig, LatticeError, Stage, Worker};

/// Panics in `stage` on worker `who` at step `at` (0-based steps completed).
struct Faulty {
    who: usize,
    at: u64,
    stage: Stage,
}

impl Worker<0> for Faulty {
    type Input = ();
    type Params = ();
    fn compute(&mut self, ctx: &Ctx, _: &[f32], _: &(), grad: &mut [f32]) -> Contribution {
        if self.stage == Stage::Compute && ctx.worker.index() == self.who && ctx.step == self.at {
            panic!("injected compute failure");
        }
        grad[0] += 1.0;
        Contribution {
            loss_sum: 1.0,
            weight: 1.0,
        }
    }
    fn evaluate(&mut self, _: &Ctx, _: &[f32], _: &()) -> Contribution {
        Contribution::NONE
    }
    fn update(
        &mut self,
        ctx: &Ctx,
        _: Range<usize>,
        _: &(),
        _: f64,
        _: &mut [f32],
        _: &[f32],
        _: [&mut [f32]; 0],
    ) {
        if self.stage == Stage::Update && ctx.worker.index() == self.who && ctx.step == self.at {
            panic!("injected update failure at {}", ctx.step);
        }
    }
}

fn lattice(
    threads: usize,
    who: usize,
    at: u64,
    stage: Stage,
) -> Result<Lattice<Faulty, 0>, LatticeError> {
    Lattice::new(
        &LatticeConfig::new(threads),
        &vec![0.0; 1000],
        [],
        move |id| {
            if stage == Stage::Setup && id.index() == who {
                panic!("injected setup failure");
            }
            Faulty { who, at, stage }
        },
    )
}

#[test]
fn compute_panic_is_reported_and_stops_everything() {
    let started = Instant::now();
    let mut l = lattice(13, 5, 3, Stage::Compute).unwrap();
    for _ in 0..3 {
        l.step((), ()).wait().unwrap();
    }
    let fault = l.step((), ()).wait().unwrap_err();
    assert_eq!(
        (fault.worker, fault.step, fault.stage),
        (5, 3, Stage::Compute)
    );
    assert_eq!(fault.message, "injected compute failure");
    assert!(
        fault
            .to_string()
            .contains("worker 5 panicked in Compute at step 4")
    );
    // Dead from now on, without waiting on anyone.
    assert_eq!(l.step((), ()).wait().unwrap_err(), fault);
    drop(l);
    // A guard against hangs, not a performance bound (the prompt exit is measured, not tested).
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn update_panic_is_reported() {
    let mut l = lattice(4, 2, 0, Stage::Update).unwrap();
    let fault = l.step((), ()).wait().unwrap_err();
    assert_eq!((fault.worker, fault.stage), (2, Stage::Update));
    assert_eq!(fault.message, "injected update failure at 0");
}

#[test]
fn setup_panic_fails_construction() {
    match lattice(12, 11, 0, Stage::Setup) {
        Err(LatticeError::Setup(f)) => assert_eq!((f.worker, f.stage), (11, Stage::Setup)),
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("construction should fail"),
    }
}

#[test]
fn zero_threads_is_an_error() {
    let err = lattice(0, 0, 0, Stage::Compute).err().unwrap().to_string();
    assert!(err.contains("--threads must be at least 1"), "{err}");
}

#[test]
fn node_zero_panic_mid_step_leaves_no_thread_waiting() {
    let started = Instant::now();
    let result = std::thread::spawn(|| {
        let mut l = lattice(6, 99, 0, Stage::Compute).unwrap();
        let _pending = l.step((), ());
        panic!("Node Zero fails while the workers compute");
    })
    .join();
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(20), "a hang guard");
}
