//! Refusing a run that cannot fit in memory before it allocates: an estimate of what the run
//! will make resident, against what the machine (or the process's cgroup) has available. A
//! `--batch-size` a thousand times too large should be an error at start-up, not the kernel's
//! out-of-memory killer a minute later.
//!
//! Two estimates: [`MemoryEstimate::bound`], arithmetic on the model's shape that is never
//! below what a run uses (tested on every preset), and [`MemoryEstimate::new`], exact, which
//! records one and two sequences on a tape. The exact one allocates (and glibc keeps what a
//! large freed block taught it: measured, the nanoGPT-cpu run's RSS rose from 85 to 133 MiB),
//! so [`check_run`] takes it only when the bound comes near the memory available.

use cllm_data::worker_share;
use cllm_model::{Gpt, GptConfig};

use crate::engine::probe_tape;

/// How a step's batch is spread over the tapes: `batch_size` sequences split over
/// `compute_workers`, each worker's share run in passes of at most `micro_batch` sequences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    /// Sequences per step.
    pub batch_size: usize,
    /// Workers that compute.
    pub compute_workers: usize,
    /// Sequences per pass of a worker (`None`: its whole share).
    pub micro_batch: Option<usize>,
}

impl Batching {
    /// Workers with a share of the batch.
    fn active(&self) -> usize {
        self.compute_workers.min(self.batch_size)
    }

    /// Sequences all the tapes hold at once: each active worker's share, or a pass of it.
    fn sequences_on_tapes(&self) -> usize {
        let m = self.micro_batch.unwrap_or(usize::MAX);
        (0..self.active())
            .map(|k| worker_share(self.batch_size, self.active(), k).len().min(m))
            .sum()
    }
}

/// What a run will make resident, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Weights, AdamW moments, and the computing workers' gradient buffers.
    pub buffers: u64,
    /// The computing workers' tapes (activations, their gradients, saved values).
    pub activations: u64,
}

impl MemoryEstimate {
    /// `gpt` trained on batches spread as `batching` says.
    ///
    /// A tape's written bytes are affine in the sequences it records (`a + b * rows`: the
    /// per-token activations plus per-step parts such as the parameters' gradient slots);
    /// `a` and `b` come from recording one and two sequences.
    pub fn new(gpt: &Gpt, batching: Batching) -> Self {
        let per_rows = |rows| probe_tape(gpt, rows).stats().len_bytes as u64;
        let (one, two) = (per_rows(1), per_rows(2));
        let per_sequence = two.saturating_sub(one);
        let param_bytes = (gpt.params.layout.len() * std::mem::size_of::<f32>()) as u64;
        Self::of(
            param_bytes,
            batching,
            one.saturating_sub(per_sequence),
            per_sequence,
        )
    }

    /// An upper bound from the shape alone, allocating nothing: per token and layer, 64 floats
    /// per channel (the block's activations, their gradients and saved values: the tapes
    /// measure 40-48) and 4 per attention score a head keeps (probabilities and their
    /// gradients, counted over the full `T x T` square); per token, 8 per vocabulary entry and
    /// 16 per channel outside the blocks; per computing worker, 4 floats per parameter.
    /// `cfg` must be valid ([`GptConfig::validate`]).
    pub fn bound(cfg: &GptConfig, batching: Batching) -> Self {
        let (t, c, l, nh, v) = (
            cfg.seq_len as u64,
            cfg.embed_dim as u64,
            cfg.num_layers as u64,
            cfg.num_heads as u64,
            cfg.vocab_size as u64,
        );
        // In u128, saturating: a valid shape's dimensions are at most 2^61, so each factor
        // below fits, and a product past u64 is refused all the same.
        let [t, c, l, nh, v] = [t, c, l, nh, v].map(u128::from);
        let per_sequence = (4 * t).saturating_mul(
            l.saturating_mul(64 * c + 4 * nh * t)
                .saturating_add(8 * v + 16 * c),
        );
        let param_bytes = 4 * cfg.num_params() as u64;
        Self::of(
            param_bytes,
            batching,
            param_bytes,
            u64::try_from(per_sequence).unwrap_or(u64::MAX),
        )
    }

    /// Weights, two moments and one gradient per computing worker of `param_bytes` each;
    /// `per_worker` tape bytes for each computing worker and `per_sequence` for each sequence
    /// a tape holds at once.
    /// Saturates at `u64::MAX` bytes (more than any machine has, so refused).
    fn of(param_bytes: u64, batching: Batching, per_worker: u64, per_sequence: u64) -> Self {
        let active = batching.active() as u64;
        let sequences = batching.sequences_on_tapes() as u64;
        MemoryEstimate {
            buffers: (3 + active).saturating_mul(param_bytes),
            activations: active
                .saturating_mul(per_worker)
                .saturating_add(sequences.saturating_mul(per_sequence)),
        }
    }

    /// Everything.
    pub fn total(&self) -> u64 {
        self.buffers.saturating_add(self.activations)
    }

    /// An error if the estimate exceeds `available` bytes.
    pub fn check(&self, available: Option<u64>) -> Result<(), String> {
        match available {
            Some(free) if self.total() > free => Err(format!(
                "this run needs about {} of memory ({} for the activations of the batch, {} for \
                 weights, moments and gradients) but {} is available; use a smaller --batch-size \
                 or --seq-len, or --micro-batch to run each worker's share in smaller passes",
                gib(self.total()),
                gib(self.activations),
                gib(self.buffers),
                gib(free)
            )),
            _ => Ok(()),
        }
    }
}

/// Refuses a GPT of shape `cfg`, before it is built, whose weights, moments and gradients
/// alone cannot fit in `available` bytes, or whose exact estimate ([`check_run`]) could not
/// be measured in them: the probe records one and two sequences on one tape.
pub fn check_shape(
    cfg: &GptConfig,
    batching: Batching,
    available: Option<u64>,
) -> Result<(), String> {
    let Some(free) = available else {
        return Ok(());
    };
    let bound = MemoryEstimate::bound(cfg, batching);
    if bound.buffers > free {
        return Err(format!(
            "this model's weights, AdamW moments and {} gradient buffer(s) alone need {} of \
             memory ({} parameters) but {} is available; use a smaller --embed-dim or \
             --num-layers (or fewer --threads)",
            batching.active(),
            gib(bound.buffers),
            cfg.num_params(),
            gib(free)
        ));
    }
    let probe = MemoryEstimate::bound(
        cfg,
        Batching {
            batch_size: 2,
            compute_workers: 1,
            micro_batch: None,
        },
    );
    if probe.total() > free {
        return Err(format!(
            "two sequences of {} tokens at this width need up to {} of memory but {} is \
             available; use a smaller --seq-len, --embed-dim or --num-layers",
            cfg.seq_len,
            gib(probe.total()),
            gib(free)
        ));
    }
    Ok(())
}

/// Refuses `gpt` on batches spread as `batching` says if it cannot fit in `available` bytes:
/// by [`MemoryEstimate::bound`] when that is under a quarter of them, else by the exact
/// [`MemoryEstimate::new`].
pub fn check_run(gpt: &Gpt, batching: Batching, available: Option<u64>) -> Result<(), String> {
    let Some(free) = available else {
        return Ok(());
    };
    if MemoryEstimate::bound(&gpt.cfg, batching).total() <= free / 4 {
        return Ok(());
    }
    MemoryEstimate::new(gpt, batching).check(Some(free))
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Memory this process could still make resident: the smaller of the system's `MemAvailable`
/// and the room left under its cgroup's `memory.max`. `None` where neither can be read.
pub fn available_bytes() -> Option<u64> {
    let system = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| meminfo_available(&m));
    let cgroup = cgroup_room();
    match (system, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `MemAvailable` from the text of `/proc/meminfo`, in bytes.
fn meminfo_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Room left under the memory limit of this process's cgroup: `memory.max - memory.current`
/// (cgroup v2) or `memory.limit_in_bytes - memory.usage_in_bytes` (v1), looked up at the
/// process's cgroup path and, where a container shows only its own, at the hierarchy's root.
/// `None` without a limit.
fn cgroup_room() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let root = std::path::Path::new("/sys/fs/cgroup");
    let room = |dir: &std::path::Path, limit: &str, usage: &str| -> Option<u64> {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        // "max" (v2 without a limit) does not parse.
        let max = read(limit)?.trim().parse::<u64>().ok()?;
        let used = read(usage)?.trim().parse::<u64>().ok()?;
        Some(max.saturating_sub(used))
    };
    cgroups.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        if controllers.is_empty() {
            room(&root.join(path), "memory.max", "memory.current")
                .or_else(|| room(root, "memory.max", "memory.current"))
        } else if controllers.split(',').any(|c| c == "memory") {
            let v1 = root.join("memory");
            let (limit, usage) = ("memory.limit_in_bytes", "memory.usage_in_bytes");
            room(&v1.join(path), limit, usage).or_else(|| room(&v1, limit, usage))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::recorded_tape;
    use cllm_model::GptConfig;

    #[test]
    fn estimate_matches_a_worker_tape_and_scales_with_the_batch() {
        let cfg = GptConfig {
            vocab_size: 50,
            seq_len: 16,
            embed_dim: 32,
            num_heads: 4,
            num_layers: 2,
            bias: false,
        };
        let gpt = Gpt::new(cfg).unwrap();
        let batching = |batch_size, compute_workers, micro_batch| Batching {
            batch_size,
            compute_workers,
            micro_batch,
        };
        // One worker recording 5 sequences writes what the estimate says.
        let est = MemoryEstimate::new(&gpt, batching(5, 1, None));
        assert_eq!(
            est.activations,
            recorded_tape(&gpt, 5).stats().len_bytes as u64
        );
        // Per-sequence parts grow with the batch, per-worker parts with the workers.
        let big = MemoryEstimate::new(&gpt, batching(5000, 1, None));
        assert!(
            big.activations > 900 * est.activations,
            "{big:?} vs {est:?}"
        );
        assert!(MemoryEstimate::new(&gpt, batching(5, 2, None)).total() > est.total());
        // In passes of 2, a tape holds 2 sequences whatever the batch; passes larger than a
        // share change nothing.
        let passes = MemoryEstimate::new(&gpt, batching(5000, 1, Some(2)));
        assert_eq!(
            passes.activations,
            recorded_tape(&gpt, 2).stats().len_bytes as u64
        );
        assert_eq!(MemoryEstimate::new(&gpt, batching(5, 1, Some(9))), est);
        // Shares of 3 and 2 in passes of 2: tapes of 2 and 2 sequences.
        assert_eq!(batching(5, 2, Some(2)).sequences_on_tapes(), 4);
    }

    /// For every preset, with and without dropout (whose outputs take tape memory).
    #[test]
    fn the_bound_is_above_the_exact_estimate_for_every_preset() {
        for (p, dropout) in cllm_model::PRESETS
            .iter()
            .flat_map(|p| [(p, 0.0), (p, 0.2)])
        {
            let cfg = GptConfig {
                vocab_size: 65,
                ..p.model
            };
            let gpt = Gpt::new(cfg).unwrap().with_dropout(dropout).unwrap();
            let batch = p.train.batch_size;
            for workers in [1, 2] {
                let b = Batching {
                    batch_size: batch,
                    compute_workers: workers,
                    micro_batch: None,
                };
                let (bound, exact) = (MemoryEstimate::bound(&cfg, b), MemoryEstimate::new(&gpt, b));
                assert!(
                    bound.activations >= exact.activations && bound.buffers >= exact.buffers,
                    "{}: {bound:?} < {exact:?}",
                    p.name
                );
                // ...and not so far above that it would refuse runs that fit.
                assert!(
                    bound.total() < 4 * exact.total(),
                    "{}: {bound:?} vs {exact:?}",
                    p.name
                );
            }
        }
    }

    #[test]
    fn shapes_that_cannot_fit_are_refused_before_anything_is_allocated() {
        let shape = |embed_dim, seq_len| GptConfig {
            vocab_size: 65,
            seq_len,
            embed_dim,
            num_heads: 4,
            num_layers: 4,
            bias: false,
        };
        let batching = Batching {
            batch_size: 12,
            compute_workers: 2,
            micro_batch: None,
        };
        let gib = 1u64 << 30;
        assert!(check_shape(&shape(128, 64), batching, Some(gib)).is_ok());
        assert!(check_shape(&shape(128, 64), batching, None).is_ok());
        // 12 C^2 L = 48 G parameters at C = 2^15: 5 copies are ~960 GiB.
        let err = check_shape(&shape(1 << 15, 64), batching, Some(gib)).unwrap_err();
        assert!(
            err.contains("alone need") && err.contains("--embed-dim"),
            "{err}"
        );
        // Scores of 2^22 tokens squared: far over u64's bytes, saturated, refused.
        let err = check_shape(&shape(128, 1 << 22), batching, Some(64 * gib)).unwrap_err();
        assert!(
            err.contains("two sequences") && err.contains("--seq-len"),
            "{err}"
        );
        let huge = MemoryEstimate::bound(&shape(128, 1 << 31), batching);
        assert_eq!(huge.total(), u64::MAX);
        // Past u128 too (a context of 2^60 tokens of width 1, in 2^50 layers): saturated.
        let beyond = GptConfig {
            embed_dim: 1,
            num_heads: 1,
            num_layers: 1 << 50,
            ..shape(1, 1 << 60)
        };
        assert!(beyond.validate().is_ok());
        assert_eq!(MemoryEstimate::bound(&beyond, batching).total(), u64::MAX);
    }

    #[test]
    fn check_refuses_only_what_does_not_fit() {
        let e = MemoryEstimate {
            buffers: 1 << 30,
            activations: 3 << 30,
        };
        assert!(e.check(None).is_ok(), "unknown: no refusal");
        assert!(e.check(Some(5 << 30)).is_ok());
        let err = e.check(Some(2 << 30)).unwrap_err();
        assert!(
            err.contains("needs about 4.0 GiB") && err.contains("2.0 GiB is available"),
            "{err}"
        );
        assert_eq!(
            meminfo_available("MemTotal: 100 kB\nMemAvailable:   2048 kB\n"),
            Some(2 << 20)
        );
    }
}
