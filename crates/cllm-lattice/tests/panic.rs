//! A panic anywhere stops the whole lattice promptly: the failing round returns a fault naming
//! the worker, step and message; no thread is left waiting; later rounds fail too. Bad
//! configurations are errors, not hangs.

use std::ops::Range;
use std::time::{Duration, Instant};

use cllm_lattice::{Contribution, Ctx, Fault, Lattice, LatticeConfig, LatticeError, Stage, Worker};

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
    lattice_computing(threads, threads, who, at, stage)
}

/// As [`lattice`], with only workers `0..computing` computing (the rest are reducers).
fn lattice_computing(
    threads: usize,
    computing: usize,
    who: usize,
    at: u64,
    stage: Stage,
) -> Result<Lattice<Faulty, 0>, LatticeError> {
    Lattice::new(
        &LatticeConfig {
            compute_workers: Some(computing.max(1)),
            ..LatticeConfig::new(threads)
        },
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

/// Runs `ok` steps that must succeed, then the one that must fail; returns its fault.
fn fault_after(l: &mut Lattice<Faulty, 0>, ok: usize) -> Fault {
    for _ in 0..ok {
        l.step((), ()).wait().unwrap();
    }
    l.step((), ()).wait().unwrap_err()
}

/// The fault of a construction that must fail in a worker's setup.
fn setup_fault(result: Result<Lattice<Faulty, 0>, LatticeError>) -> Fault {
    match result {
        Err(LatticeError::Setup(f)) => f,
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("construction should fail"),
    }
}

#[test]
fn compute_panic_is_reported_and_stops_everything() {
    let started = Instant::now();
    let mut l = lattice(13, 5, 3, Stage::Compute).unwrap();
    let fault = fault_after(&mut l, 3);
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
    let fault = fault_after(&mut l, 0);
    assert_eq!((fault.worker, fault.stage), (2, Stage::Update));
    assert_eq!(fault.message, "injected update failure at 0");
}

#[test]
fn setup_panic_fails_construction() {
    let f = setup_fault(lattice(12, 11, 0, Stage::Setup));
    assert_eq!((f.worker, f.stage), (11, Stage::Setup));
}

#[test]
fn zero_threads_is_an_error() {
    let err = lattice(0, 0, 0, Stage::Compute).err().unwrap().to_string();
    assert!(err.contains("--threads must be at least 1"), "{err}");
}

#[test]
fn node_zero_panic_mid_step_leaves_no_thread_waiting() {
    let started = Instant::now();
    // Every worker computing; then 2 of 14 (the reducers wait at B1 when Node Zero fails).
    for (threads, computing) in [(6, 6), (14, 2)] {
        let result = std::thread::spawn(move || {
            let mut l = lattice_computing(threads, computing, 99, 0, Stage::Compute).unwrap();
            l.step((), ()).wait().unwrap();
            let _pending = l.step((), ());
            panic!("Node Zero fails while the workers compute");
        })
        .join();
        assert!(result.is_err());
    }
    assert!(started.elapsed() < Duration::from_secs(20), "a hang guard");
}

#[test]
fn a_reducer_panic_is_reported_and_stops_everything() {
    let started = Instant::now();
    // Worker 9 of 13 only reduces and updates (2 compute).
    let mut l = lattice_computing(13, 2, 9, 2, Stage::Update).unwrap();
    let fault = fault_after(&mut l, 2);
    assert_eq!(
        (fault.worker, fault.step, fault.stage),
        (9, 2, Stage::Update)
    );
    assert_eq!(l.step((), ()).wait().unwrap_err(), fault);
    assert_eq!(l.evaluate(()).wait().unwrap_err(), fault);
    drop(l);
    let f = setup_fault(lattice_computing(13, 2, 12, 0, Stage::Setup));
    assert_eq!((f.worker, f.stage), (12, Stage::Setup));
    // A computing worker's panic stops the reducers too.
    let mut l = lattice_computing(13, 2, 1, 1, Stage::Compute).unwrap();
    let fault = fault_after(&mut l, 1);
    assert_eq!((fault.worker, fault.stage), (1, Stage::Compute));
    drop(l);
    assert!(started.elapsed() < Duration::from_secs(20), "a hang guard");
}

#[test]
#[cfg_attr(
    miri,
    ignore = "Miri allocates no thread stacks, so the spawn does not fail"
)]
fn a_worker_thread_that_cannot_start_is_an_error_not_a_hang() {
    let started = Instant::now();
    for computing in [1, 3] {
        // No system maps a stack of a petabyte: spawning the first worker fails.
        let config = LatticeConfig {
            stack_size: 1 << 50,
            compute_workers: Some(computing),
            ..LatticeConfig::new(3)
        };
        let err = Lattice::new(&config, &[0.0; 10], [], |_| Faulty {
            who: 99,
            at: 0,
            stage: Stage::Compute,
        })
        .err()
        .expect("cannot start");
        assert!(matches!(err, LatticeError::Spawn(_)), "{err}");
    }
    assert!(started.elapsed() < Duration::from_secs(20), "a hang guard");
}
