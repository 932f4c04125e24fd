//! [`RunStats`]: per-step timings and heap size kept during a run, summarised at its end:
//! where step time went, the straggler spread, and whether the heap grew.

use crate::engine::{PhaseTimes, StepOutput};

/// Heap growth between the first and last tenth of a run above which a warning is printed.
pub const HEAP_GROWTH_WARNING: f64 = 2.0;

/// Most steps whose measurements are kept. Longer runs keep every k-th step (evenly spread),
/// so the record is bounded and written in full before the first step: a soak run's memory
/// must not grow with its length, and neither must the bookkeeping that watches it.
pub const MAX_SAMPLES: usize = 4096;

/// What is kept of one step.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    ms: f64,
    phases: PhaseTimes,
    data_ms: f64,
    heap: u64,
}

/// Per-step measurements of a run: every step for runs up to [`MAX_SAMPLES`] steps, every
/// k-th step of longer ones. Quantiles are taken over the kept steps.
#[derive(Debug, Default)]
pub struct RunStats {
    samples: Vec<Sample>,
    kept: usize,
    stride: u64,
    steps: u64,
}

fn quantile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * q).round() as usize]
}

impl RunStats {
    /// A record for a run of `steps` steps; its memory is allocated and touched here.
    pub fn with_capacity(steps: usize) -> Self {
        let stride = steps.div_ceil(MAX_SAMPLES).max(1);
        // `vec![x; n]` of a non-zero-bit struct writes every element now, so the pages are
        // resident from the start instead of appearing as the run goes on.
        let filler = Sample {
            ms: f64::NAN,
            ..Sample::default()
        };
        RunStats {
            samples: vec![filler; steps.div_ceil(stride)],
            kept: 0,
            stride: stride as u64,
            steps: 0,
        }
    }

    /// Records one step (kept if it falls on the stride).
    pub fn push(&mut self, ms: f64, out: &StepOutput, heap: u64) {
        if self.steps.is_multiple_of(self.stride) && self.kept < self.samples.len() {
            self.samples[self.kept] = Sample {
                ms,
                phases: out.phases,
                data_ms: out.data * 1e3,
                heap,
            };
            self.kept += 1;
        }
        self.steps += 1;
    }

    fn kept(&self) -> &[Sample] {
        &self.samples[..self.kept]
    }

    fn column(&self, f: impl Fn(&Sample) -> f64) -> Vec<f64> {
        self.kept().iter().map(f).collect()
    }

    /// Steps recorded.
    pub fn len(&self) -> usize {
        self.steps as usize
    }

    /// True if no step was recorded.
    pub fn is_empty(&self) -> bool {
        self.steps == 0
    }

    /// Median step time in milliseconds.
    pub fn median_ms(&self) -> f64 {
        quantile(&self.column(|s| s.ms), 0.5)
    }

    /// Percent growth of the live heap from the first tenth of the run to the last (medians),
    /// or `None` for runs under 20 steps.
    pub fn heap_growth(&self) -> Option<f64> {
        let n = self.kept;
        if n < 20 {
            return None;
        }
        let tenth = n / 10;
        let heap = self.column(|s| s.heap as f64);
        let (a, b) = (
            quantile(&heap[..tenth], 0.5),
            quantile(&heap[n - tenth..], 0.5),
        );
        (a > 0.0).then(|| 100.0 * (b - a) / a)
    }

    /// Lines for the end-of-run summary: phase shares of the median step and straggler spread.
    pub fn phase_summary(&self) -> String {
        let step = self.median_ms();
        let col = |f: fn(&PhaseTimes) -> f64| quantile(&self.column(|s| f(&s.phases) * 1e3), 0.5);
        let (compute, wait_compute, reduce, wait_reduce, opt) = (
            col(|p| p.compute),
            col(|p| p.wait_compute),
            col(|p| p.reduce),
            col(|p| p.wait_reduce),
            col(|p| p.optimizer),
        );
        let data = quantile(&self.column(|s| s.data_ms), 0.5);
        let straggler = self.column(|s| s.phases.straggler * 1e3);
        let share = |x: f64| if step > 0.0 { 100.0 * x / step } else { 0.0 };
        let over = if self.stride == 1 {
            format!("{} steps", self.kept)
        } else {
            format!(
                "{} steps, every {}th of {}",
                self.kept, self.stride, self.steps
            )
        };
        format!(
            "time per step (medians of {over}, {step:.2} ms): compute {compute:.2} ms ({:.1}%), reduce {reduce:.3} ms ({:.1}%), \
             optimizer {opt:.3} ms ({:.1}%), data {data:.3} ms ({:.1}%, overlapped with compute)\n\
             barrier waits: {wait_compute:.3} ms per computing worker after compute ({:.1}%), \
             {wait_reduce:.3} ms per worker after the reduction ({:.1}%)\n\
             straggler spread (slowest minus fastest computing worker): p50 {:.3} ms, p95 {:.3} ms",
            share(compute),
            share(reduce),
            share(opt),
            share(data),
            share(wait_compute),
            share(wait_reduce),
            quantile(&straggler, 0.5),
            quantile(&straggler, 0.95)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_and_summary() {
        let mut s = RunStats::with_capacity(100);
        let out = StepOutput {
            loss: 1.0,
            grad_norm: 1.0,
            phases: PhaseTimes {
                compute: 0.008,
                wait: 0.0,
                wait_compute: 0.0002,
                wait_reduce: 0.0001,
                reduce: 0.001,
                optimizer: 0.001,
                straggler: 0.0005,
            },
            data: 0.0001,
        };
        for i in 0..100 {
            s.push(10.0, &out, 1000 + if i >= 90 { 50 } else { 0 });
        }
        assert!((s.heap_growth().unwrap() - 5.0).abs() < 1e-9);
        let text = s.phase_summary();
        assert!(text.contains("compute 8.00 ms (80.0%)"), "{text}");
        assert!(text.contains("p95 0.500 ms"), "{text}");
        assert!(
            text.contains("0.200 ms per computing worker after compute (2.0%)")
                && text.contains("0.100 ms per worker after the reduction (1.0%)"),
            "{text}"
        );
    }

    #[test]
    fn long_runs_keep_a_bounded_evenly_spread_record() {
        let steps = 10 * MAX_SAMPLES + 3;
        let mut s = RunStats::with_capacity(steps);
        let capacity = s.samples.len();
        assert!(capacity <= MAX_SAMPLES);
        let mut out = StepOutput::default();
        for i in 0..steps {
            out.phases.compute = i as f64;
            // The heap doubles for the last fifth of the run.
            s.push(1.0, &out, if i >= steps * 4 / 5 { 2000 } else { 1000 });
        }
        assert_eq!(s.len(), steps);
        assert_eq!(s.samples.len(), capacity, "the record never grows");
        assert_eq!(s.kept, capacity);
        assert!((s.heap_growth().unwrap() - 100.0).abs() < 1e-9);
        // Evenly spread: the median of the kept step indices is near the middle of the run.
        let mid = quantile(&s.column(|x| x.phases.compute), 0.5);
        assert!((mid - steps as f64 / 2.0).abs() < 20.0, "{mid}");
        assert!(
            s.phase_summary().contains("every 11th of 40963"),
            "{}",
            s.phase_summary()
        );
    }
}
