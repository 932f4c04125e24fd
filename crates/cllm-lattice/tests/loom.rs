//! Model-checks the tree barrier and the phase hand-over with loom: in every interleaving loom
//! explores, a value written before a barrier by one thread is read after it by others without
//! a data race (loom's `UnsafeCell` reports unsynchronised access), nobody passes early, and
//! nobody deadlocks.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p cllm-lattice --test loom --release`
//! (a separate `CARGO_TARGET_DIR` keeps the normal build's cache intact).

#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;

use cllm_lattice::TreeBarrier;

/// One slot per thread: written by its owner in one phase, read by everyone in the next.
struct Slots(Vec<UnsafeCell<usize>>);

// SAFETY: accesses are separated by the barrier under test; loom checks that claim.
unsafe impl Sync for Slots {}

/// Explores all interleavings with at most `preemptions` forced context switches per execution
/// (loom's standard bound; bugs in barrier-like code show up with two or three).
fn handover(threads: usize, rounds: usize, spin: u32, preemptions: usize) {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(preemptions);
    model.check(move || {
        let barrier = Arc::new(TreeBarrier::new(threads, spin));
        let slots = Arc::new(Slots((0..threads).map(|_| UnsafeCell::new(0)).collect()));
        let handles: Vec<_> = (0..threads)
            .map(|p| {
                let (barrier, slots) = (barrier.clone(), slots.clone());
                loom::thread::spawn(move || {
                    for round in 1..=rounds {
                        // Phase "write": each thread writes only its own slot.
                        // SAFETY: slot p is written only by thread p, in this phase; loom checks
                        // that the barrier orders it before every read of the next phase.
                        slots.0[p].with_mut(|v| unsafe { *v = round * 10 + p });
                        barrier.wait(p);
                        // Phase "read": everyone reads every slot; nobody writes.
                        for q in 0..threads {
                            // SAFETY: no thread writes any slot in this phase (the barrier
                            // separates it from the writes); loom checks that claim.
                            let v = slots.0[q].with(|v| unsafe { *v });
                            assert_eq!(v, round * 10 + q, "thread {p} read a stale slot {q}");
                        }
                        barrier.wait(p);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn two_threads_two_rounds_sleeping() {
    handover(2, 2, 0, 3);
}

#[test]
fn two_threads_spinning() {
    handover(2, 1, 2, 3);
}

#[test]
fn three_threads_one_round() {
    handover(3, 1, 0, 2);
}

/// The lattice's round structure with a reducer (`PROTOCOL.md`): Node Zero publishes the task
/// and opens the round at A (with the computing worker only); the computing worker reads it,
/// writes its gradient and arrives at B1; the reducer, already arrived at B1 at the end of
/// the previous round, reads the task and the gradient after B1, writes its result, arrives at
/// the next round's B1, then at C without waiting; Node Zero reads the result after C and
/// overwrites the task for the next round. Loom checks that no access races and no thread
/// sleeps forever, over every interleaving within the bound.
#[test]
fn reducer_arrives_early_at_b1_and_does_not_wait_for_c() {
    const ROUNDS: usize = 2;
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        // open: computing worker 0 + Node Zero (1); inner: worker 0 + reducer 1;
        // close: workers 0, 1 + Node Zero (2).
        let open = Arc::new(TreeBarrier::new(2, 0));
        let inner = Arc::new(TreeBarrier::new(2, 0));
        let close = Arc::new(TreeBarrier::new(3, 0));
        // Slots: 0 task (Node Zero), 1 gradient (worker 0), 2 result (reducer).
        let slots = Arc::new(Slots((0..3).map(|_| UnsafeCell::new(0)).collect()));
        let worker = {
            let (open, inner, close, slots) =
                (open.clone(), inner.clone(), close.clone(), slots.clone());
            loom::thread::spawn(move || {
                for round in 1..=ROUNDS {
                    open.wait(0);
                    // SAFETY: the task is written by Node Zero before A and not again before C.
                    let task = slots.0[0].with(|v| unsafe { *v });
                    assert_eq!(task, round);
                    // SAFETY: the gradient slot is this thread's between A and B1.
                    slots.0[1].with_mut(|v| unsafe { *v = task * 10 });
                    inner.wait(0);
                    close.wait(0);
                }
            })
        };
        let reducer = {
            let (inner, close, slots) = (inner.clone(), close.clone(), slots.clone());
            loom::thread::spawn(move || {
                let mut early = None;
                for round in 1..=ROUNDS {
                    let ticket = early.take().unwrap_or_else(|| inner.arrive(1));
                    inner.wait_for(ticket);
                    // SAFETY: task and gradient have no writer between B1 and C.
                    let (task, grad) = (
                        slots.0[0].with(|v| unsafe { *v }),
                        slots.0[1].with(|v| unsafe { *v }),
                    );
                    assert_eq!((task, grad), (round, round * 10));
                    // SAFETY: the result slot is the reducer's between B1 and its C arrival.
                    slots.0[2].with_mut(|v| unsafe { *v = grad + 1 });
                    if round < ROUNDS {
                        early = Some(inner.arrive(1));
                    }
                    let _ = close.arrive(1);
                }
            })
        };
        for round in 1..=ROUNDS {
            // SAFETY: between C and A, Node Zero alone touches the task.
            slots.0[0].with_mut(|v| unsafe { *v = round });
            open.wait(1);
            close.wait(2);
            // SAFETY: the result was written before the reducer's C arrival.
            let result = slots.0[2].with(|v| unsafe { *v });
            assert_eq!(result, round * 10 + 1);
        }
        worker.join().unwrap();
        reducer.join().unwrap();
    });
}
