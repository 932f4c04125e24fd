//! One core's arithmetic peak, measured: f32 FMA over 256- and 512-bit vectors and the bf16
//! dot product (`vdpbf16ps`) the bf16 backend multiplies with, where the CPU has them.
//!
//! Each measurement is a loop of twelve independent accumulator chains, enough to hide the
//! instruction's latency, with nothing loaded: the best a GEMM micro-kernel could reach on
//! this core. Which instruction is faster differs by CPU: on an AMD Zen 4 core `vdpbf16ps`
//! does twice the f32 FMA's FLOP per second, on the Intel Xeon (Sapphire Rapids class) this
//! repository's CI ran on it does half. [`bf16_speedup`] measures that ratio in a few
//! milliseconds, which is how `cllm-train` warns before a `--matmul-precision bf16` run that
//! would be slower than f32; `cargo run --release -p cllm-tensor --example fma_peak` prints
//! the full figures.

/// A vector instruction whose peak [`gflops`] measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// f32 fused multiply-add on 256-bit vectors (AVX2 + FMA).
    Fma256,
    /// f32 fused multiply-add on 512-bit vectors (AVX-512 F).
    Fma512,
    /// The bf16 dot product `vdpbf16ps` on 512-bit vectors (AVX-512 BF16): two products
    /// added into each f32 lane.
    Bf16Dot,
}

impl Unit {
    /// Every unit, in the order [`gflops`] reports them.
    pub const ALL: [Unit; 3] = [Unit::Fma256, Unit::Fma512, Unit::Bf16Dot];

    /// A short description, e.g. `f32 FMA, 512-bit (AVX-512)`.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Fma256 => "f32 FMA, 256-bit (AVX2)",
            Unit::Fma512 => "f32 FMA, 512-bit (AVX-512)",
            Unit::Bf16Dot => "bf16 dot product (AVX-512 BF16)",
        }
    }

    /// Whether this CPU has the instruction.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Unit::Fma256 => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
                Unit::Fma512 => std::arch::is_x86_feature_detected!("avx512f"),
                Unit::Bf16Dot => {
                    std::arch::is_x86_feature_detected!("avx512f")
                        && std::arch::is_x86_feature_detected!("avx512bf16")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

/// The GFLOP/s of one timed loop of `iters` iterations on `unit` (twelve instructions per
/// iteration), or `None` where the CPU lacks it. One core, the calling thread; a machine
/// that is busy elsewhere, or a core still raising its clock, measures lower.
pub fn gflops(unit: Unit, iters: u64) -> Option<f64> {
    if !unit.available() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::hint::black_box;
        let (kernel, flop): (unsafe fn(u64) -> f32, f64) = match unit {
            Unit::Fma256 => (x86::fma256, 12.0 * 8.0 * 2.0),
            Unit::Fma512 => (x86::fma512, 12.0 * 16.0 * 2.0),
            Unit::Bf16Dot => (x86::dpbf16, 12.0 * 16.0 * 4.0),
        };
        let start = std::time::Instant::now();
        // SAFETY: `unit.available()` said the CPU has the features this kernel is compiled
        // for.
        black_box(unsafe { kernel(black_box(iters)) });
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        Some(iters as f64 * flop / secs / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = iters;
        None
    }
}

/// The median of a non-empty set of measurements.
fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The median GFLOP/s of five runs of `unit` (about 2 ms in all on a ~100 GFLOP/s core), or
/// `None` where the CPU lacks it.
pub fn median_gflops(unit: Unit) -> Option<f64> {
    const ITERS: u64 = 200_000;
    let runs: Option<Vec<f64>> = (0..5).map(|_| gflops(unit, ITERS)).collect();
    runs.map(median)
}

/// The widest f32 FMA unit this CPU has (512-bit, else 256-bit), if any.
pub fn f32_unit() -> Option<Unit> {
    [Unit::Fma512, Unit::Fma256]
        .into_iter()
        .find(|u| u.available())
}

/// How many times the f32 FMA's FLOP per second the bf16 dot product does on this core: the
/// best f32 unit (512- or 256-bit) against [`Unit::Bf16Dot`], medians of five interleaved
/// runs of each (about 10 ms in all). `None` without AVX-512 BF16 or f32 FMA.
///
/// Above 1 the bf16 backend can beat f32 products (it also converts every operand while
/// packing: a nanoGPT-cpu step gained 1.5x where this ratio is 2.0); below 1 it cannot.
pub fn bf16_speedup() -> Option<f64> {
    const ITERS: u64 = 200_000;
    const RUNS: usize = 5;
    let f32_unit = f32_unit()?;
    if !Unit::Bf16Dot.available() {
        return None;
    }
    let mut f32_runs = Vec::with_capacity(RUNS);
    let mut bf16_runs = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        f32_runs.push(gflops(f32_unit, ITERS)?);
        bf16_runs.push(gflops(Unit::Bf16Dot, ITERS)?);
    }
    Some(median(bf16_runs) / median(f32_runs))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Twelve chains `acc = acc * b + c` over 256-bit f32 vectors; returns a sum so the work
    /// is not optimised away.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fma256(iters: u64) -> f32 {
        let b = _mm256_set1_ps(0.999_9);
        let c = _mm256_set1_ps(1e-4);
        let mut acc: [__m256; 12] = std::array::from_fn(|i| _mm256_set1_ps(i as f32 * 0.01));
        for _ in 0..iters {
            for a in &mut acc {
                *a = _mm256_fmadd_ps(*a, b, c);
            }
        }
        let mut out = [0.0f32; 8];
        // SAFETY: `out` holds 8 floats; `storeu` has no alignment requirement.
        unsafe {
            _mm256_storeu_ps(
                out.as_mut_ptr(),
                acc.iter().fold(c, |s, &a| _mm256_add_ps(s, a)),
            )
        };
        out[0]
    }

    /// As [`fma256`] over 512-bit vectors.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fma512(iters: u64) -> f32 {
        let b = _mm512_set1_ps(0.999_9);
        let c = _mm512_set1_ps(1e-4);
        let mut acc: [__m512; 12] = std::array::from_fn(|i| _mm512_set1_ps(i as f32 * 0.01));
        for _ in 0..iters {
            for a in &mut acc {
                *a = _mm512_fmadd_ps(*a, b, c);
            }
        }
        _mm512_reduce_add_ps(acc.iter().fold(c, |s, &a| _mm512_add_ps(s, a)))
    }

    /// Twelve chains of `vdpbf16ps` (16 lanes, each adding two bf16 products).
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn dpbf16(iters: u64) -> f32 {
        let x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5), _mm512_set1_ps(0.25));
        let mut acc: [__m512; 12] = std::array::from_fn(|i| _mm512_set1_ps(i as f32));
        for _ in 0..iters {
            for a in &mut acc {
                *a = _mm512_dpbf16_ps(*a, x, x);
            }
        }
        _mm512_reduce_add_ps(
            acc.iter()
                .fold(_mm512_setzero_ps(), |s, &a| _mm512_add_ps(s, a)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_units_measure_a_positive_rate_and_missing_ones_none() {
        for unit in Unit::ALL {
            match gflops(unit, 1_000) {
                Some(g) => {
                    assert!(unit.available());
                    assert!(g.is_finite() && g > 0.0, "{unit:?}: {g}");
                }
                None => assert!(!unit.available(), "{unit:?} is available but gave None"),
            }
        }
    }

    #[test]
    fn bf16_speedup_exists_exactly_where_both_units_do() {
        let both =
            Unit::Bf16Dot.available() && (Unit::Fma512.available() || Unit::Fma256.available());
        let ratio = bf16_speedup();
        assert_eq!(ratio.is_some(), both);
        if let Some(r) = ratio {
            assert!(r.is_finite() && r > 0.0, "{r}");
        }
    }
}
