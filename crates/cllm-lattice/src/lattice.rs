//! [`Lattice`]: Node Zero's handle on the worker threads and its side of the step protocol of
//! `PROTOCOL.md`; the workers' side is in `lattice/round.rs`.

mod round;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::aligned::AlignedBuf;
use crate::barrier::TreeBarrier;
use crate::fault::{Fault, Stage, panic_message};
use crate::phase_cell::{PhaseCell, SharedBuf};
use crate::placement::Placement;
use crate::report::{ReportBuilder, StepReport, WorkerTimes};
use crate::sync::{AtomicBool, Mutex, Ordering};
use crate::topology::Topology;
use crate::worker::{Contribution, Worker, WorkerId};

/// Largest worker count accepted.
pub const MAX_THREADS: usize = 4096;

/// How to build a lattice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatticeConfig {
    /// Worker threads (Node Zero is the calling thread, in addition).
    pub threads: usize,
    /// Pin worker `k` to the `k % cpus`-th CPU of the [`Placement`] (topology order with the
    /// `hwloc` feature).
    pub pin: bool,
    /// Stack size of worker threads in bytes.
    pub stack_size: usize,
    /// Spin rounds at a barrier before sleeping; `None` picks 0 when there are more threads
    /// than cores (so waiters never take a core from a straggler) and 16384 otherwise.
    pub spin: Option<u32>,
    /// Workers `0..c` compute and evaluate; the others (the *reducers*) only reduce and
    /// update their segments, are never asked to compute or evaluate, and are not woken
    /// when a round opens, only when the reduction starts. `None`: every worker computes.
    pub compute_workers: Option<usize>,
    /// Steps counted as completed before this lattice's first (a resumed run's steps), so
    /// that [`Ctx::step`](crate::Ctx::step) and [`Lattice::steps`] count the run's steps.
    pub first_step: u64,
}

impl LatticeConfig {
    /// `threads` workers, 1 MiB stacks, no pinning, automatic spinning.
    pub fn new(threads: usize) -> Self {
        LatticeConfig {
            threads,
            pin: false,
            stack_size: 1 << 20,
            spin: None,
            compute_workers: None,
            first_step: 0,
        }
    }

    /// Checks a worker count: at least 1 (Node Zero does not compute) and at most
    /// [`MAX_THREADS`]. [`Lattice::new`] calls it; callers may call it earlier, before costly
    /// set-up, to fail fast with the same message.
    pub fn check_threads(threads: usize) -> Result<(), LatticeError> {
        if threads == 0 {
            return Err(LatticeError::Config(
                "--threads must be at least 1 (Node Zero does not compute)".into(),
            ));
        }
        if threads > MAX_THREADS {
            return Err(LatticeError::Config(format!(
                "--threads {threads} is more than the {MAX_THREADS} supported"
            )));
        }
        Ok(())
    }
}

/// Why a lattice could not be built.
#[derive(Debug)]
pub enum LatticeError {
    /// The configuration is unusable (message says which field).
    Config(String),
    /// A worker thread could not be started.
    Spawn(std::io::Error),
    /// A worker panicked while building its replica.
    Setup(Fault),
}

impl std::fmt::Display for LatticeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LatticeError::Config(m) => f.write_str(m),
            LatticeError::Spawn(e) => write!(f, "could not start a worker thread: {e}"),
            LatticeError::Setup(fault) => write!(f, "{fault}"),
        }
    }
}

impl std::error::Error for LatticeError {}

/// What Node Zero asks of the workers at the start of a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Task {
    /// A training step: compute, reduce, update.
    Train,
    /// Forward only.
    Eval,
    /// Nothing: a round trip that surfaces setup faults.
    Ping,
    /// Exit the worker loop.
    Shutdown,
}

/// Everything the threads share. Access rules per phase: `PROTOCOL.md`.
struct Shared<W: Worker<S>, const S: usize> {
    topology: Topology,
    /// Workers `0..computing` compute; the rest are reducers.
    computing: usize,
    /// Opens every round (A): the computing workers and Node Zero (participant `computing`).
    open: TreeBarrier,
    /// B1 (after compute; where reducers learn of a round) and B2 (after the reduction of a
    /// training step); every worker.
    inner: TreeBarrier,
    /// Closes every round (C): every worker and Node Zero (participant `workers`). Reducers
    /// arrive without waiting.
    close: TreeBarrier,
    task: PhaseCell<Task>,
    /// Steps completed before the current round.
    step: PhaseCell<u64>,
    /// When Node Zero opened the current round (the origin of the workers' timestamps).
    opened: PhaseCell<Instant>,
    input: PhaseCell<Option<W::Input>>,
    params: PhaseCell<Option<W::Params>>,
    weights: SharedBuf,
    /// One gradient buffer per worker; zero between steps. The reduction sums every written
    /// buffer into the first written one (the "target"), which the update then reads.
    grads: Vec<SharedBuf>,
    state: [SharedBuf; S],
    contributions: Vec<CachePadded<PhaseCell<Contribution>>>,
    norms_sq: Vec<CachePadded<PhaseCell<f64>>>,
    times: Vec<CachePadded<PhaseCell<WorkerTimes>>>,
    /// Set (SeqCst) by a worker whose user code panicked; read by workers after B1 and B2 and
    /// by Node Zero after C.
    failed: AtomicBool,
    /// The first fault, for Node Zero's error.
    fault: Mutex<Option<Fault>>,
}

impl<W: Worker<S>, const S: usize> Shared<W, S> {
    fn record_fault(
        &self,
        worker: usize,
        step: u64,
        stage: Stage,
        payload: &(dyn std::any::Any + Send),
    ) {
        let mut slot = self.fault.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(Fault {
                worker,
                step,
                stage,
                message: panic_message(payload),
            });
        }
        self.failed.store(true, Ordering::SeqCst);
    }
}

fn cell<T>(v: T) -> CachePadded<PhaseCell<T>> {
    CachePadded::new(PhaseCell::new(v))
}

/// A running lattice: `threads` workers, each with its own replica and gradient buffer, and
/// the calling thread as Node Zero. Dropping it stops and joins the workers.
pub struct Lattice<W: Worker<S>, const S: usize> {
    shared: Arc<Shared<W, S>>,
    handles: Vec<JoinHandle<()>>,
    steps: u64,
    /// Set once a fault was reported: every later call returns it.
    dead: Option<Fault>,
    /// Where the workers are pinned, if they are.
    placement: Option<Placement>,
    /// How long Node Zero spins at C before it sleeps (see [`NODE_ZERO_SPIN_MAX`]).
    close_spin: Duration,
}

/// The longest Node Zero spins at C, the end of a round, before it sleeps, where every thread
/// has a core of its own (else it never spins: the core is a worker's). It spins for twice the
/// last round's length up to this, so a short round does not wait for Node Zero to be woken:
/// on a 2-core machine a sleeping Node Zero took ~30 µs to resume after the last worker
/// arrived, 5% of a `tiny` step on one worker thread. Longer rounds pay that once per round.
pub const NODE_ZERO_SPIN_MAX: Duration = Duration::from_millis(5);

impl<W: Worker<S>, const S: usize> Lattice<W, S> {
    /// Starts the workers. `weights` and `state` are copied into the lattice's aligned buffers
    /// (all of one length); `make(worker)` builds each worker's replica on its own thread.
    pub fn new<F>(
        config: &LatticeConfig,
        weights: &[f32],
        state: [&[f32]; S],
        make: F,
    ) -> Result<Self, LatticeError>
    where
        F: Fn(WorkerId) -> W + Send + Sync + 'static,
    {
        let n = config.threads;
        LatticeConfig::check_threads(n)?;
        let len = weights.len();
        if let Some(bad) = state.iter().find(|s| s.len() != len) {
            return Err(LatticeError::Config(format!(
                "optimizer state of {} floats for {len} weights",
                bad.len()
            )));
        }
        let computing = config.compute_workers.unwrap_or(n);
        if !(1..=n).contains(&computing) {
            return Err(LatticeError::Config(format!(
                "--compute-workers {computing} must be between 1 and --threads {n}"
            )));
        }
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let spin = config
            .spin
            .unwrap_or(if n + 1 > cores { 0 } else { 1 << 14 });
        let shared = Arc::new(Shared::<W, S> {
            topology: Topology::new(n, len),
            computing,
            open: TreeBarrier::new(computing + 1, spin),
            inner: TreeBarrier::new(n, spin),
            close: TreeBarrier::new(n + 1, spin),
            task: PhaseCell::new(Task::Ping),
            step: PhaseCell::new(0),
            opened: PhaseCell::new(Instant::now()),
            input: PhaseCell::new(None),
            params: PhaseCell::new(None),
            weights: SharedBuf::new(AlignedBuf::from_slice(weights)),
            grads: (0..n)
                .map(|_| SharedBuf::new(AlignedBuf::zeros(len)))
                .collect(),
            state: std::array::from_fn(|i| SharedBuf::new(AlignedBuf::from_slice(state[i]))),
            contributions: (0..n).map(|_| cell(Contribution::NONE)).collect(),
            norms_sq: (0..n).map(|_| cell(0.0)).collect(),
            times: (0..n).map(|_| cell(WorkerTimes::default())).collect(),
            failed: AtomicBool::new(false),
            fault: Mutex::new(None),
        });
        let make = Arc::new(make);
        let mut lattice = Lattice {
            shared: shared.clone(),
            handles: Vec::with_capacity(n),
            steps: config.first_step,
            dead: None,
            placement: config.pin.then(Placement::discover).flatten(),
            close_spin: Duration::ZERO,
        };
        for k in 0..n {
            let (shared, make) = (shared.clone(), make.clone());
            let core = lattice
                .placement
                .as_ref()
                .map(|p| core_affinity::CoreId { id: p.cpu_of(k) });
            let spawned = std::thread::Builder::new()
                .name(format!("lattice-worker-{k}"))
                .stack_size(config.stack_size)
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    round::worker_main(&shared, k, &*make);
                });
            match spawned {
                Ok(h) => lattice.handles.push(h),
                Err(e) => {
                    // The threads already started wait at A or B1; the barriers expect the
                    // missing ones too, who are stood in for (see `abandon_spawn`).
                    lattice.abandon_spawn(k);
                    return Err(LatticeError::Spawn(e));
                }
            }
        }
        // One empty round: every replica is built (or has failed) when it returns.
        match lattice.round(Task::Ping, None, None) {
            Ok(_) => Ok(lattice),
            Err(fault) => Err(LatticeError::Setup(fault)),
        }
    }

    /// Workers that compute and evaluate (`0..computing`); the others only reduce and update.
    pub fn computing(&self) -> usize {
        self.shared.computing
    }

    /// The arrangement of the workers and segments.
    pub fn topology(&self) -> &Topology {
        &self.shared.topology
    }

    /// Where the workers are pinned: `None` unless `LatticeConfig::pin` was set and the
    /// platform lists its CPUs.
    pub fn placement(&self) -> Option<&Placement> {
        self.placement.as_ref()
    }

    /// Steps completed (counting [`LatticeConfig::first_step`]).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The weights. No step is running: steps borrow the lattice mutably until they end.
    pub fn weights(&self) -> &[f32] {
        // SAFETY: `&self` excludes a running round (rounds hold `&mut self` from publish to C),
        // so no worker writes the weights now (protocol: "between rounds").
        unsafe { self.shared.weights.all() }
    }

    /// Optimizer state buffer `i`, between steps.
    pub fn state(&self, i: usize) -> &[f32] {
        // SAFETY: as for `weights`: no round is running, so no worker writes state.
        unsafe { self.shared.state[i].all() }
    }

    /// Starts a training step on `input` with optimizer scalars `params`. Node Zero may do
    /// other work (prepare the next batch) until it calls [`Pending::wait`].
    pub fn step(&mut self, input: W::Input, params: W::Params) -> Pending<'_, W, S> {
        self.publish(Task::Train, Some(input), Some(params))
    }

    /// Starts a forward-only evaluation of `input`.
    pub fn evaluate(&mut self, input: W::Input) -> Pending<'_, W, S> {
        self.publish(Task::Eval, Some(input), None)
    }

    fn publish(
        &mut self,
        task: Task,
        input: Option<W::Input>,
        params: Option<W::Params>,
    ) -> Pending<'_, W, S> {
        let started = Instant::now();
        if self.dead.is_none() {
            // SAFETY: between rounds (computing workers wait at A, reducers at B1, which
            // cannot complete before A), Node Zero is the only accessor of task, step, input
            // and params (protocol: "Node Zero publishes").
            unsafe {
                *self.shared.task.get_mut() = task;
                *self.shared.step.get_mut() = self.steps;
                *self.shared.opened.get_mut() = started;
                *self.shared.input.get_mut() = input;
                *self.shared.params.get_mut() = params;
            }
            self.shared.open.wait(self.shared.computing); // A: release the computing workers
        }
        Pending {
            lattice: self,
            task,
            started,
            done: false,
        }
    }

    /// Publishes and completes one round.
    fn round(
        &mut self,
        task: Task,
        input: Option<W::Input>,
        params: Option<W::Params>,
    ) -> Result<(StepReport, Option<W::Input>), Fault> {
        let mut p = self.publish(task, input, params);
        p.finish()
    }

    /// When spawning worker `spawned` failed: the workers already running are released with a
    /// shutdown; the barriers still need the missing participants, whom helper threads stand
    /// in for.
    fn abandon_spawn(&mut self, spawned: usize) {
        let (n, c) = (self.shared.topology.workers, self.shared.computing);
        // SAFETY: no round has started; the running workers wait at A (computing) or B1
        // (reducers) and read `task` only after it completes.
        unsafe { *self.shared.task.get_mut() = Task::Shutdown };
        // Arrive at A for every missing computing worker and for Node Zero, and at B1 for every
        // missing worker: the round opens, the running computing workers read Shutdown and go
        // on to B1, which then completes, and the running reducers read Shutdown too.
        let open = (spawned.min(c)..=c).map(|p| (p, true));
        let inner = (spawned..n).map(|p| (p, false));
        let helpers: Vec<_> = open
            .chain(inner)
            .map(|(p, at_open)| {
                let shared = self.shared.clone();
                std::thread::spawn(move || {
                    if at_open {
                        shared.open.wait(p);
                    } else {
                        shared.inner.wait(p);
                    }
                })
            })
            .collect();
        for h in helpers {
            let _ = h.join();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
        self.dead = Some(Fault {
            worker: spawned,
            step: 0,
            stage: Stage::Setup,
            message: "thread not started".into(),
        });
    }

    fn shutdown(&mut self) {
        if self.handles.is_empty() {
            return;
        }
        // SAFETY: between rounds, Node Zero is the only accessor of `task` (computing workers
        // wait at A, reducers at B1).
        unsafe { *self.shared.task.get_mut() = Task::Shutdown };
        // A: the computing workers read Shutdown, pass B1 (releasing the reducers, who read it
        // too) and exit.
        self.shared.open.wait(self.shared.computing);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl<W: Worker<S>, const S: usize> Drop for Lattice<W, S> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A round in progress. [`wait`](Pending::wait) ends it; dropping it ends it too (and discards
/// the outcome), so a panic in Node Zero never leaves workers waiting.
pub struct Pending<'a, W: Worker<S>, const S: usize> {
    lattice: &'a mut Lattice<W, S>,
    task: Task,
    started: Instant,
    done: bool,
}

impl<W: Worker<S>, const S: usize> Pending<'_, W, S> {
    /// Waits for the round to end. Returns the report and the input (for reuse), or the fault
    /// of a worker that panicked (the lattice is then stopped: every later round fails too).
    pub fn wait(mut self) -> Result<(StepReport, W::Input), Fault> {
        let (report, input) = self.finish()?;
        Ok((
            report,
            input.expect("a step or evaluation was published with an input"),
        ))
    }

    fn finish(&mut self) -> Result<(StepReport, Option<W::Input>), Fault> {
        self.done = true;
        let l = &mut *self.lattice;
        if let Some(f) = &l.dead {
            return Err(f.clone());
        }
        let shared = &*l.shared;
        let n = shared.topology.workers;
        // C: the round is over.
        let arrived = shared.close.arrive(n);
        shared.close.wait_for_spinning(arrived, l.close_spin);
        let took = self.started.elapsed();
        l.close_spin = (2 * took).min(NODE_ZERO_SPIN_MAX);
        if shared.failed.load(Ordering::SeqCst) {
            let fault = shared
                .fault
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .expect("failed implies a fault");
            l.dead = Some(fault.clone());
            l.shutdown();
            return Err(fault);
        }
        let mut builder = ReportBuilder::new(n);
        for k in 0..n {
            // SAFETY: after C and before the next A (and so before the next B1, after which
            // reducers write), workers write no contribution, norm or timing (protocol: "Node
            // Zero reads reports").
            let (c, t) = unsafe { (*shared.contributions[k].get(), *shared.times[k].get()) };
            builder.add(&t, c.loss_sum, c.weight);
        }
        let mut report = builder.finish();
        if self.task == Task::Train {
            // SAFETY: as above; the norms were written in the reduce phase.
            let sq: f64 = (0..n).map(|k| unsafe { *shared.norms_sq[k].get() }).sum();
            report.grad_norm = sq.sqrt();
            l.steps += 1;
        }
        report.wall = self.started.elapsed();
        // SAFETY: after C, Node Zero is the only accessor of input and params.
        let input = unsafe { shared.input.get_mut().take() };
        // SAFETY: as above.
        unsafe { *shared.params.get_mut() = None };
        Ok((report, input))
    }
}

impl<W: Worker<S>, const S: usize> Drop for Pending<'_, W, S> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.finish();
        }
    }
}
