//! [`StepReport`]: what Node Zero learns from a step, aggregated without allocating.

use std::time::Duration;

/// One worker's timings in one step (seconds). Written by the worker before the closing
/// barrier, read by Node Zero after it. The `*_end` fields are measured from the moment Node
/// Zero opened the round, so phase spans can be taken across workers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WorkerTimes {
    /// When this worker's compute ended.
    pub compute_end: f64,
    /// When this worker's reduction started (it passed the first inner barrier).
    pub reduce_start: f64,
    /// When this worker's reduction ended.
    pub reduce_end: f64,
    /// When this worker's update started (it passed the second inner barrier).
    pub update_start: f64,
    /// When this worker's update ended.
    pub update_end: f64,
    /// Forward and backward (or forward only, for evaluation).
    pub compute: f64,
    /// Waiting at the barrier after compute.
    pub wait_compute: f64,
    /// Summing the gradient segment over workers and its squared norm.
    pub reduce: f64,
    /// Waiting at the barrier after the reduction.
    pub wait_reduce: f64,
    /// The optimizer on the segment.
    pub update: f64,
}

/// The outcome of a step or evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepReport {
    /// `sum(loss_sum) / sum(weight)` over workers.
    pub loss: f64,
    /// Sum of the workers' weights.
    pub weight: f64,
    /// Global gradient norm before clipping (0 for evaluations).
    pub grad_norm: f64,
    /// Workers that computed something.
    pub active_workers: usize,
    /// Slowest worker's compute time.
    pub compute_max: f64,
    /// Fastest active worker's compute time (`compute_max - compute_min` is the straggler spread).
    pub compute_min: f64,
    /// Mean time workers waited at the barrier after compute (reducers, which sleep elsewhere
    /// while the others compute, count as 0).
    pub wait_compute_mean: f64,
    /// Mean time the computing workers with a share of the input waited at the barrier after
    /// compute: the cost of uneven compute. A computing worker without a share waits through the
    /// whole compute phase and a reducer counts as 0, so `wait_compute_mean` says little when
    /// few workers compute.
    pub wait_compute_active_mean: f64,
    /// Slowest segment reduction (one worker's duration).
    pub reduce_max: f64,
    /// Mean time workers waited at the barrier after the reduction.
    pub wait_reduce_mean: f64,
    /// Slowest segment update (one worker's duration).
    pub update_max: f64,
    /// Wall time of the compute phase: from opening the round to the last worker's end.
    pub compute_span: f64,
    /// Wall time of the reduction phase: first worker's start to last worker's end. With more
    /// threads than cores this exceeds `reduce_max`, since segments then run one after another.
    pub reduce_span: f64,
    /// Wall time of the update phase, likewise.
    pub update_span: f64,
    /// Wall time from publishing the step to its end, seen by Node Zero.
    pub wall: Duration,
}

/// Folds the workers' timings and contributions into a [`StepReport`].
pub(crate) struct ReportBuilder {
    report: StepReport,
    workers: usize,
    reduce_start: f64,
    reduce_end: f64,
    update_start: f64,
    update_end: f64,
}

impl ReportBuilder {
    pub(crate) fn new(workers: usize) -> Self {
        ReportBuilder {
            report: StepReport::default(),
            workers,
            reduce_start: f64::INFINITY,
            reduce_end: 0.0,
            update_start: f64::INFINITY,
            update_end: 0.0,
        }
    }

    /// Adds one worker's timings and contribution.
    pub(crate) fn add(&mut self, t: &WorkerTimes, loss_sum: f64, weight: f64) {
        let r = &mut self.report;
        r.loss += loss_sum;
        r.weight += weight;
        if weight > 0.0 {
            r.compute_min = if r.active_workers == 0 {
                t.compute
            } else {
                r.compute_min.min(t.compute)
            };
            r.active_workers += 1;
            r.wait_compute_active_mean += t.wait_compute; // a sum until `finish`
        }
        r.compute_max = r.compute_max.max(t.compute);
        r.wait_compute_mean += t.wait_compute / self.workers as f64;
        r.reduce_max = r.reduce_max.max(t.reduce);
        r.wait_reduce_mean += t.wait_reduce / self.workers as f64;
        r.update_max = r.update_max.max(t.update);
        r.compute_span = r.compute_span.max(t.compute_end);
        self.reduce_start = self.reduce_start.min(t.reduce_start);
        self.reduce_end = self.reduce_end.max(t.reduce_end);
        self.update_start = self.update_start.min(t.update_start);
        self.update_end = self.update_end.max(t.update_end);
    }

    /// The report: mean loss, phase spans.
    pub(crate) fn finish(mut self) -> StepReport {
        let r = &mut self.report;
        r.loss = if r.weight > 0.0 {
            r.loss / r.weight
        } else {
            0.0
        };
        if r.active_workers > 0 {
            r.wait_compute_active_mean /= r.active_workers as f64;
        }
        r.reduce_span = (self.reduce_end - self.reduce_start).max(0.0);
        r.update_span = (self.update_end - self.update_start).max(0.0);
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_spans_and_the_computing_workers_wait() {
        // Three workers; the third has no share of the input and waits through compute.
        let mut b = ReportBuilder::new(3);
        let t = |compute: f64, wait_compute: f64, reduce_start: f64| WorkerTimes {
            compute,
            compute_end: compute,
            wait_compute,
            reduce_start,
            reduce: 0.5,
            reduce_end: reduce_start + 0.5,
            wait_reduce: 0.25,
            update_start: reduce_start + 1.0,
            update: 1.0,
            update_end: reduce_start + 2.0,
        };
        b.add(&t(4.0, 1.0, 5.0), 6.0, 2.0);
        b.add(&t(5.0, 0.0, 5.0), 3.0, 1.0);
        b.add(&t(0.0, 5.0, 5.5), 0.0, 0.0);
        let r = b.finish();
        assert_eq!(r.loss, 3.0);
        assert_eq!(r.active_workers, 2);
        assert_eq!(
            (r.compute_min, r.compute_max, r.compute_span),
            (4.0, 5.0, 5.0)
        );
        assert_eq!(r.wait_compute_mean, 2.0);
        assert_eq!(r.wait_compute_active_mean, 0.5);
        assert_eq!(r.wait_reduce_mean, 0.25);
        assert_eq!((r.reduce_span, r.update_span), (1.0, 1.5));
    }
}
