//! The tree barrier under stress: nobody passes a round before everyone arrived, exactly one
//! participant releases each round, and it works spinning or sleeping, over one or several
//! tree levels, with more threads than cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cllm_lattice::TreeBarrier;

fn run(n: usize, rounds: usize, spin: u32) {
    let barrier = Arc::new(TreeBarrier::new(n, spin));
    let arrived = Arc::new(AtomicUsize::new(0));
    let releasers = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..n)
        .map(|p| {
            let (barrier, arrived, releasers) =
                (barrier.clone(), arrived.clone(), releasers.clone());
            std::thread::spawn(move || {
                for round in 0..rounds {
                    arrived.fetch_add(1, Ordering::SeqCst);
                    if barrier.wait(p) {
                        releasers.fetch_add(1, Ordering::SeqCst);
                    }
                    // Everyone of this round has arrived; nobody of the next round can have
                    // arrived before we pass the second barrier below.
                    let seen = arrived.load(Ordering::SeqCst);
                    assert!(
                        seen >= n * (round + 1),
                        "participant {p} passed round {round} early: {seen}"
                    );
                    barrier.wait(p);
                    assert!(arrived.load(Ordering::SeqCst) <= n * (round + 2));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(
        releasers.load(Ordering::SeqCst),
        rounds,
        "exactly one releaser per round"
    );
}

#[test]
fn single_participant() {
    run(1, 100, 0);
}

#[test]
fn one_level_spinning_and_sleeping() {
    let rounds = if cfg!(miri) { 5 } else { 300 };
    run(4, rounds, 1 << 12);
    run(12, rounds / 3, 0);
}

#[test]
#[cfg_attr(miri, ignore = "too many threads for the interpreter")]
fn two_levels_oversubscribed() {
    let b = TreeBarrier::new(63, 0);
    assert_eq!(b.depth(), 2);
    run(63, 50, 0);
}

#[test]
#[cfg_attr(miri, ignore = "too many threads for the interpreter")]
fn three_levels() {
    let b = TreeBarrier::new(150, 0);
    assert_eq!(b.depth(), 3);
    run(150, 10, 0);
}

/// A waiter with a spin budget passes its round when the others arrive within the budget
/// (while spinning) and when they arrive after it (once it sleeps, through the wake-up), and
/// never before they arrive.
#[test]
fn spinning_for_a_budget_then_sleeping() {
    use std::time::Duration;
    let barrier = Arc::new(TreeBarrier::new(2, 1 << 10));
    let arrived = Arc::new(AtomicUsize::new(0));
    let other = {
        let (barrier, arrived) = (barrier.clone(), arrived.clone());
        std::thread::spawn(move || {
            for delay_ms in [0, 1, 30, 0, 30] {
                std::thread::sleep(Duration::from_millis(delay_ms));
                arrived.fetch_add(1, Ordering::SeqCst);
                barrier.wait(1);
            }
        })
    };
    for round in 0..5 {
        let ticket = barrier.arrive(0);
        barrier.wait_for_spinning(ticket, Duration::from_millis(5));
        let seen = arrived.load(Ordering::SeqCst);
        assert!(
            seen > round,
            "passed round {round} before the other participant arrived ({seen})"
        );
    }
    other.join().unwrap();
}
