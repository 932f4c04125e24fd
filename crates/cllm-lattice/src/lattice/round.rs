//! The worker side of the step protocol (`PROTOCOL.md`): a worker thread's life and what it
//! does in a training round (compute, reduce its segment, update its segment).

use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use super::{Shared, Task};
use crate::barrier::Ticket;
use crate::fault::Stage;
use crate::report::WorkerTimes;
use crate::sync::Ordering;
use crate::worker::{Contribution, Ctx, Worker, WorkerId};

/// Floats reduced per block: small enough that a block of every gradient buffer stays in L1/L2
/// while it is summed and then zeroed.
const REDUCE_BLOCK: usize = 4096;

/// The life of worker `k`: build the replica, then serve rounds until Shutdown.
pub(super) fn worker_main<W, F, const S: usize>(shared: &Shared<W, S>, k: usize, make: &F)
where
    W: Worker<S>,
    F: Fn(WorkerId) -> W,
{
    let id = WorkerId(k as u32);
    let mut worker = match catch_unwind(AssertUnwindSafe(|| make(id))) {
        Ok(w) => Some(w),
        Err(payload) => {
            shared.record_fault(k, 0, Stage::Setup, &*payload);
            None
        }
    };
    let n = shared.topology.workers;
    let len = shared.weights.len();
    let computes = k < shared.computing;
    // A reducer's arrival at B1 of the next round, made at the end of the previous one.
    let mut early: Option<Ticket> = None;
    loop {
        {
            // A computing worker starts a round at A; a reducer at B1, once the computing
            // workers are done (it is not woken while they compute).
            let _s = tracing::trace_span!("wait.open").entered();
            if computes {
                shared.open.wait(k); // A
            } else {
                let ticket = early.take().unwrap_or_else(|| shared.inner.arrive(k));
                shared.inner.wait_for(ticket); // B1
            }
        }
        // SAFETY: task and step were written by Node Zero before A (which happens before B1);
        // nobody writes them before C.
        let (task, step) = unsafe { (*shared.task.get(), *shared.step.get()) };
        let ctx = Ctx {
            worker: id,
            workers: n,
            computing: shared.computing,
            step,
        };
        // A computing worker passes B1 in every round (after its work in a training step, at
        // the end of the work otherwise) so the reducers learn of the round.
        let b1 = || {
            if computes {
                tracing::debug_span!("wait.compute").in_scope(|| shared.inner.wait(k));
            }
        };
        match task {
            Task::Shutdown => {
                b1();
                return;
            }
            Task::Ping => b1(),
            Task::Eval if !computes => {
                // SAFETY: worker k is the only writer of its own timing cell, read by Node
                // Zero only after C.
                unsafe { *shared.times[k].get_mut() = WorkerTimes::default() };
            }
            Task::Eval => {
                let _s = tracing::debug_span!("evaluate", step).entered();
                let t0 = Instant::now();
                let mut c = Contribution::NONE;
                if let Some(w) = worker
                    .as_mut()
                    .filter(|_| !shared.failed.load(Ordering::SeqCst))
                {
                    // SAFETY: the input is written by Node Zero before A and taken after C;
                    // the weights have no writer between A and C of an evaluation round.
                    let (input, weights) =
                        unsafe { (shared.input.get().as_ref(), shared.weights.slice(0..len)) };
                    let input = input.expect("an evaluation has an input");
                    match catch_unwind(AssertUnwindSafe(|| w.evaluate(&ctx, weights, input))) {
                        Ok(r) => c = r,
                        Err(p) => shared.record_fault(k, step, Stage::Evaluate, &*p),
                    }
                }
                // SAFETY: worker k is the only writer of its own report cells, read by Node
                // Zero only after C.
                unsafe {
                    *shared.contributions[k].get_mut() = c;
                    *shared.times[k].get_mut() = WorkerTimes {
                        compute: t0.elapsed().as_secs_f64(),
                        ..Default::default()
                    };
                }
                b1();
            }
            Task::Train => train_round(shared, worker.as_mut(), &ctx, k, computes),
        }
        if computes {
            let _s = tracing::debug_span!("wait.close").entered();
            shared.close.wait(k); // C
        } else {
            // A reducer arrives at B1 of the next round first, then at C without waiting:
            // B1 cannot complete before C has (the computing workers pass C, then A, before
            // they arrive at B1), and having arrived before C, a reducer that the scheduler
            // preempts from here on (the one whose arrival completes C wakes the others) no
            // longer holds B1 up.
            early = Some(shared.inner.arrive(k));
            let _ = shared.close.arrive(k);
        }
    }
}

/// Compute (if `computes`; a reducer has already passed B1), reduce and update for worker
/// `k`; returns at the end of the update phase.
fn train_round<W: Worker<S>, const S: usize>(
    shared: &Shared<W, S>,
    worker: Option<&mut W>,
    ctx: &Ctx,
    k: usize,
    computes: bool,
) {
    let n = shared.topology.workers;
    let mut times = WorkerTimes::default();
    let mut worker = worker;
    // SAFETY: written by Node Zero before A; no writer until C.
    let opened = unsafe { *shared.opened.get() };
    let since = |t: Instant| t.duration_since(opened).as_secs_f64();

    // Phase 1, compute: worker k writes only grads[k] (and its own report cells).
    if computes {
        compute_phase(shared, worker.as_deref_mut(), ctx, k, opened, &mut times);
    }

    // Phase 2, reduce: worker k sums segment k of every written gradient buffer into the first
    // written one (the target), zeroing the others' segment for the next step, and records the
    // segment's squared norm.
    let span = tracing::debug_span!("reduce").entered();
    let t2 = Instant::now();
    times.reduce_start = since(t2);
    let seg = shared.topology.segment(k);
    let target = first_written(shared);
    let mut norm_sq = 0.0;
    if let Some(target) = target.filter(|_| !shared.failed.load(Ordering::SeqCst)) {
        norm_sq = reduce_segment(shared, target, seg.clone());
    }
    // SAFETY: worker k's own norm cell; others read it only after B2.
    unsafe { *shared.norms_sq[k].get_mut() = norm_sq };
    let t3 = Instant::now();
    times.reduce = (t3 - t2).as_secs_f64();
    times.reduce_end = since(t3);
    drop(span);
    tracing::debug_span!("wait.reduce").in_scope(|| shared.inner.wait(k)); // B2

    times.wait_reduce = t3.elapsed().as_secs_f64();

    // Phase 3, update: worker k owns segment k of the weights, of every state buffer and of the
    // target gradient, which it zeroes once the optimizer has read it.
    let _span = tracing::debug_span!("update").entered();
    let t4 = Instant::now();
    times.update_start = since(t4);
    if let (Some(w), Some(target)) = (
        worker.filter(|_| !shared.failed.load(Ordering::SeqCst)),
        target,
    ) {
        // SAFETY: every norm was written before B2 and none is written after it this round.
        let global = (0..n)
            .map(|j| unsafe { *shared.norms_sq[j].get() })
            .sum::<f64>()
            .sqrt();
        // SAFETY: update phase: segment k of the weights, of the state buffers and of the target
        // gradient is accessed by worker k alone (segments are disjoint); params has no writer
        // between A and C.
        let (weights, grad, params) = unsafe {
            (
                shared.weights.slice_mut(seg.clone()),
                shared.grads[target].slice_mut(seg.clone()),
                shared.params.get().as_ref(),
            )
        };
        // SAFETY: as above, for the state buffers' segment k.
        let state: [&mut [f32]; S] =
            std::array::from_fn(|i| unsafe { shared.state[i].slice_mut(seg.clone()) });
        let params = params.expect("a step has optimizer parameters");
        let grad_read: &[f32] = grad;
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| {
            w.update(ctx, seg.clone(), params, global, weights, grad_read, state)
        })) {
            shared.record_fault(k, ctx.step, Stage::Update, &*p);
        }
        grad.fill(0.0);
    }
    let t5 = Instant::now();
    times.update = (t5 - t4).as_secs_f64();
    times.update_end = since(t5);
    // SAFETY: worker k's own timing cell, read by Node Zero after C.
    unsafe { *shared.times[k].get_mut() = times };
}

/// Phase 1 of a training step for computing worker `k`: its share of the gradient into
/// `grads[k]`, its contribution, then B1.
fn compute_phase<W: Worker<S>, const S: usize>(
    shared: &Shared<W, S>,
    worker: Option<&mut W>,
    ctx: &Ctx,
    k: usize,
    opened: Instant,
    times: &mut WorkerTimes,
) {
    let len = shared.weights.len();
    let span = tracing::debug_span!("compute", step = ctx.step + 1).entered();
    let t0 = Instant::now();
    let mut c = Contribution::NONE;
    if let Some(w) = worker.filter(|_| !shared.failed.load(Ordering::SeqCst)) {
        // SAFETY: compute phase: weights and input have no writer; grads[k] is accessed by
        // worker k alone until B1.
        let (input, weights, grad) = unsafe {
            (
                shared.input.get().as_ref(),
                shared.weights.slice(0..len),
                shared.grads[k].slice_mut(0..len),
            )
        };
        let input = input.expect("a step has an input");
        match catch_unwind(AssertUnwindSafe(|| w.compute(ctx, weights, input, grad))) {
            Ok(r) => c = r,
            Err(p) => shared.record_fault(k, ctx.step, Stage::Compute, &*p),
        }
    }
    // SAFETY: worker k's own report cell; others read it only after B1.
    unsafe { *shared.contributions[k].get_mut() = c };
    times.compute = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    times.compute_end = t1.duration_since(opened).as_secs_f64();
    drop(span);
    tracing::debug_span!("wait.compute").in_scope(|| shared.inner.wait(k)); // B1
    times.wait_compute = t1.elapsed().as_secs_f64();
}

/// The first worker whose gradient buffer was written this step (contributions were written
/// before B1 and are read after it).
fn first_written<W: Worker<S>, const S: usize>(shared: &Shared<W, S>) -> Option<usize> {
    // SAFETY: contributions are written before B1; no writer until the next round.
    (0..shared.topology.workers).find(|&w| unsafe { shared.contributions[w].get() }.weight != 0.0)
}

/// `grads[target][seg] += grads[w][seg]` for every other written buffer `w`, in worker order (so
/// the sum is bit-reproducible for a given worker count), zeroing each added range; returns the
/// squared norm of the summed segment. Works block by block so each block of every buffer is
/// summed and zeroed while in cache.
fn reduce_segment<W: Worker<S>, const S: usize>(
    shared: &Shared<W, S>,
    target: usize,
    seg: Range<usize>,
) -> f64 {
    let n = shared.topology.workers;
    let mut norm_sq = 0.0f64;
    for block_start in (seg.start..seg.end).step_by(REDUCE_BLOCK) {
        let block = block_start..(block_start + REDUCE_BLOCK).min(seg.end);
        // SAFETY: reduce phase: segment `seg` of every gradient buffer belongs to this worker
        // alone (segments are disjoint), so this block of the target is ours to write...
        let dst = unsafe { shared.grads[target].slice_mut(block.clone()) };
        for w in target + 1..n {
            // SAFETY: written before B1, no writer of contributions until the next round.
            if unsafe { shared.contributions[w].get() }.weight == 0.0 {
                continue; // never written this step: still all zero
            }
            // SAFETY: ...and so is this block of buffer w (w != target).
            let src = unsafe { shared.grads[w].slice_mut(block.clone()) };
            for (d, s) in dst.iter_mut().zip(src.iter_mut()) {
                *d += *s;
                *s = 0.0;
            }
        }
        norm_sq += sum_of_squares(dst);
    }
    norm_sq
}

/// Sum of squares with eight f32 partial sums (a vectorisable loop; a running f64 sum is a
/// serial dependency chain), returned as f64.
fn sum_of_squares(x: &[f32]) -> f64 {
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i] * c[i];
        }
    }
    acc.iter().map(|&a| a as f64).sum::<f64>() + tail as f64
}
