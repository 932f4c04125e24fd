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
