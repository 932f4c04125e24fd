//! [`TreeBarrier`]: a combining-tree barrier with fan-in 12 that spins briefly, then sleeps.
//!
//! Participants are grouped 12 to a leaf node; leaves combine 12 to a node one level up, and so
//! on to a single root. A participant arrives by incrementing its leaf's counter; the last
//! arriver of a node resets it and arrives at the parent; the last arriver at the root advances
//! the generation, which releases everyone. So no counter is contended by more than 12 threads.
//!
//! Waiting spins on the generation for at most `spin` rounds, then sleeps. With more threads
//! than cores, `spin` is 0: a waiter must not burn the core that a straggler needs.
//!
//! Memory ordering: arrivals are `AcqRel` read-modify-writes, so the last arriver at each node
//! has acquired the writes of everyone below it; the root's generation increment is a release
//! that every waiter acquires. Hence everything a participant wrote before `wait` is visible to
//! every participant after `wait` returns.
//!
//! Sleeping: waiters sleep on the generation word itself (a futex, through `atomic-wait`), so a
//! release wakes all of them with one call and each proceeds on its own; there is no mutex to
//! re-acquire, which on an oversubscribed machine would queue the woken threads behind each
//! other while compute threads hold the cores. The kernel checks the word before sleeping, so a
//! waiter cannot sleep through a release that already happened. The releaser skips the wake call
//! when nobody sleeps: waiters announce themselves in `sleepers` before their final check, and
//! both sides use `SeqCst`, so either the releaser sees the announcement or the waiter sees the
//! new generation. Under `--cfg loom` (which cannot model futexes) waiting uses a mutex and a
//! condition variable instead; `tests/loom.rs` model-checks the tree and the hand-over with it.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU32, AtomicUsize, Ordering, spin_hint};

/// Children per tree node.
pub const FAN_IN: usize = 12;

/// One node of the combining tree.
struct Node {
    /// Arrivals so far in the current round. Written by arriving participants (`fetch_add`,
    /// AcqRel) and reset to 0 by the node's last arriver before it moves up.
    arrived: CachePadded<AtomicUsize>,
    /// Arrivals that complete the node.
    expected: usize,
    /// The node one level up (`None` for the root).
    parent: Option<usize>,
}

/// A reusable barrier for a fixed set of participants `0..n`.
pub struct TreeBarrier {
    nodes: Box<[Node]>,
    /// Leaf node of each participant.
    leaf_of: Box<[usize]>,
    /// Completed rounds, modulo 2^32 (only equality is ever tested). Advanced (SeqCst) only by
    /// the root's last arriver; read (Acquire, SeqCst before sleeping) by waiters.
    generation: CachePadded<AtomicU32>,
    /// How waiters sleep and are woken.
    sleep: Sleep,
    spin: u32,
    depth: usize,
}

impl TreeBarrier {
    /// A barrier for `n >= 1` participants that spins `spin` rounds before sleeping.
    pub fn new(n: usize, spin: u32) -> Self {
        assert!(n >= 1, "a barrier needs a participant");
        let node = |expected| Node {
            arrived: CachePadded::new(AtomicUsize::new(0)),
            expected,
            parent: None,
        };
        let leaves = n.div_ceil(FAN_IN);
        let mut nodes: Vec<Node> = (0..leaves)
            .map(|i| node(FAN_IN.min(n - i * FAN_IN)))
            .collect();
        let leaf_of = (0..n).map(|p| p / FAN_IN).collect();
        // Build levels until one node remains.
        let (mut level_start, mut level_len, mut depth) = (0, leaves, 1);
        while level_len > 1 {
            let parents = level_len.div_ceil(FAN_IN);
            let first_parent = nodes.len();
            nodes.extend((0..parents).map(|j| node(FAN_IN.min(level_len - j * FAN_IN))));
            for c in 0..level_len {
                nodes[level_start + c].parent = Some(first_parent + c / FAN_IN);
            }
            level_start = first_parent;
            level_len = parents;
            depth += 1;
        }
        TreeBarrier {
            nodes: nodes.into_boxed_slice(),
            leaf_of,
            generation: CachePadded::new(AtomicU32::new(0)),
            sleep: Sleep::new(),
            spin,
            depth,
        }
    }

    /// Levels of the combining tree (1 for up to 12 participants, 2 for up to 144, ...).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Participants.
    pub fn participants(&self) -> usize {
        self.leaf_of.len()
    }

    /// Waits until every participant has called `wait` in this round. `p` is the caller's
    /// participant index; each index must be used by exactly one thread per round. Returns
    /// true for exactly one participant per round (the one that released the others).
    pub fn wait(&self, p: usize) -> bool {
        self.wait_for(self.arrive(p))
    }

    /// Arrives without waiting: everything the caller wrote before is visible to every
    /// participant once its wait for this round returns. The caller may do other work, then
    /// [`wait_for`](Self::wait_for) the round with the ticket, or drop the ticket if it need
    /// not learn what the others wrote. A participant must not arrive again before the round
    /// has completed; when it does not wait, it needs another synchronisation to know that
    /// (`PROTOCOL.md` says which one the lattice's reducers rely on).
    pub fn arrive(&self, p: usize) -> Ticket {
        // Read the generation before arriving: once we arrive, the round may complete at once.
        let gen0 = self.generation.load(Ordering::Acquire);
        let mut node = self.leaf_of[p];
        loop {
            let n = &self.nodes[node];
            let before = n.arrived.fetch_add(1, Ordering::AcqRel);
            if before + 1 < n.expected {
                // Others still to come at this node.
                return Ticket {
                    gen0,
                    released: false,
                };
            }
            // Last at this node: reset it for the next round, then arrive one level up.
            n.arrived.store(0, Ordering::Relaxed);
            match n.parent {
                Some(parent) => node = parent,
                None => {
                    self.sleep.release(&self.generation);
                    return Ticket {
                        gen0,
                        released: true,
                    };
                }
            }
        }
    }

    /// Waits until the round `ticket` arrived at has completed. Returns true if that arrival
    /// released it.
    pub fn wait_for(&self, ticket: Ticket) -> bool {
        if ticket.released {
            return true;
        }
        for _ in 0..self.spin {
            if self.generation.load(Ordering::Acquire) != ticket.gen0 {
                return false;
            }
            spin_hint();
        }
        self.sleep.wait_while(&self.generation, ticket.gen0);
        false
    }

    /// Like [`wait_for`](Self::wait_for), but spins for up to `budget` of wall-clock time
    /// (at least the barrier's `spin` rounds) before sleeping. For a participant that has a
    /// core to itself and whose wake-up from sleep would delay everyone: Node Zero at the end
    /// of a short round. Bounded: after `budget` it sleeps like any waiter. (Under `--cfg
    /// loom`, which has no clock, it is `wait_for`.)
    pub fn wait_for_spinning(&self, ticket: Ticket, budget: std::time::Duration) -> bool {
        #[cfg(not(loom))]
        if !ticket.released && self.spin > 0 && !budget.is_zero() {
            let deadline = std::time::Instant::now() + budget;
            loop {
                // The clock is read once per 64 rounds, not every round.
                for _ in 0..64 {
                    if self.generation.load(Ordering::Acquire) != ticket.gen0 {
                        return false;
                    }
                    spin_hint();
                }
                if std::time::Instant::now() >= deadline {
                    break;
                }
            }
        }
        #[cfg(loom)]
        let _ = budget;
        self.wait_for(ticket)
    }
}

/// A participant's arrival at one round of a [`TreeBarrier`], to wait on later.
#[derive(Clone, Copy, Debug)]
#[must_use = "wait_for(ticket) waits for the round; `let _ =` says the caller need not"]
pub struct Ticket {
    /// The generation before the arrival; the round is complete once it has changed.
    gen0: u32,
    /// This arrival completed the round.
    released: bool,
}

/// Sleeping on the generation word with a futex.
#[cfg(not(loom))]
struct Sleep {
    /// Waiters that announced they may sleep (SeqCst increments and decrements by waiters; the
    /// releaser reads it, SeqCst, to skip the wake call when it is 0).
    sleepers: AtomicU32,
}

#[cfg(not(loom))]
impl Sleep {
    fn new() -> Self {
        Sleep {
            sleepers: AtomicU32::new(0),
        }
    }

    fn release(&self, generation: &AtomicU32) {
        generation.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            atomic_wait::wake_all(generation);
        }
    }

    fn wait_while(&self, generation: &AtomicU32, gen0: u32) {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while generation.load(Ordering::SeqCst) == gen0 {
            // Returns at once if the word is no longer gen0; spurious wake-ups loop.
            atomic_wait::wait(generation, gen0);
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sleeping with a mutex and a condition variable (the loom model of the barrier).
#[cfg(loom)]
struct Sleep {
    /// Number of sleepers, guarded by the mutex; the releaser advances the generation while
    /// holding it, so a waiter's re-check under the mutex cannot miss a release.
    lock: crate::sync::Mutex<usize>,
    cvar: crate::sync::Condvar,
}

#[cfg(loom)]
impl Sleep {
    fn new() -> Self {
        Sleep {
            lock: crate::sync::Mutex::new(0),
            cvar: crate::sync::Condvar::new(),
        }
    }

    fn release(&self, generation: &AtomicU32) {
        let sleepers = {
            let guard = self.lock.lock().unwrap();
            generation.fetch_add(1, Ordering::Release);
            *guard
        };
        if sleepers > 0 {
            self.cvar.notify_all();
        }
    }

    fn wait_while(&self, generation: &AtomicU32, gen0: u32) {
        let mut guard = self.lock.lock().unwrap();
        *guard += 1;
        while generation.load(Ordering::Acquire) == gen0 {
            guard = self.cvar.wait(guard).unwrap();
        }
        *guard -= 1;
    }
}
