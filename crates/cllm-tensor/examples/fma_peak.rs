//! One core's arithmetic peak, measured: f32 FMA with 256- and 512-bit vectors, and the bf16
//! dot product (`vdpbf16ps`) that the bf16 GEMM backend uses, where the CPU has them. Each is a
//! loop of twelve independent accumulator chains, enough to hide the instruction's latency,
//! with nothing to load; the figure is the best a GEMM micro-kernel could reach. It then says
//! what that peak means for one nanoGPT-cpu training step (3.889 GFLOP of GEMM, as
//! `--example step_gemms` counts them).
//!
//! ```sh
//! cargo run --release -p cllm-tensor --example fma_peak
//! ```

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Twelve chains `acc = acc * b + c` over 256-bit f32 vectors; returns a sum so the work
    /// is not optimised away. 12 * 8 lanes * 2 FLOP per iteration.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma256(iters: u64) -> f32 {
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

    /// As [`fma256`] over 512-bit vectors: 12 * 16 lanes * 2 FLOP per iteration.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma512(iters: u64) -> f32 {
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

    /// Twelve chains of `vdpbf16ps` (16 lanes, each adding two bf16 products): 12 * 16 * 4
    /// FLOP per iteration.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn dpbf16(iters: u64) -> f32 {
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

fn main() {
    #[cfg(target_arch = "x86_64")]
    {
        use std::hint::black_box;
        use std::time::Instant;

        const ITERS: u64 = 50_000_000;
        const STEP_GFLOP: f64 = 3.889;
        type Kernel = unsafe fn(u64) -> f32;
        let kernels: [(&str, bool, Kernel, f64); 3] = [
            (
                "f32 FMA, 256-bit (AVX2)",
                is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
                x86::fma256,
                12.0 * 8.0 * 2.0,
            ),
            (
                "f32 FMA, 512-bit (AVX-512)",
                is_x86_feature_detected!("avx512f"),
                x86::fma512,
                12.0 * 16.0 * 2.0,
            ),
            (
                "bf16 dot product (AVX-512 BF16)",
                is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16"),
                x86::dpbf16,
                12.0 * 16.0 * 4.0,
            ),
        ];
        println!("one core's peak (median of 5 runs of {ITERS} iterations):");
        for (name, present, kernel, flop) in kernels {
            if !present {
                println!("  {name:<32} not on this CPU");
                continue;
            }
            let mut gflops: Vec<f64> = (0..5)
                .map(|_| {
                    let t = Instant::now();
                    // SAFETY: `present` says the CPU has the features the kernel needs.
                    black_box(unsafe { kernel(black_box(ITERS)) });
                    ITERS as f64 * flop / t.elapsed().as_secs_f64() / 1e9
                })
                .collect();
            gflops.sort_by(f64::total_cmp);
            let peak = gflops[2];
            println!(
                "  {name:<32} {peak:>6.1} GFLOP/s: a nanoGPT-cpu step's GEMMs take at least {:.1} ms",
                STEP_GFLOP / peak * 1e3
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    println!("fma_peak measures x86-64 vector units only");
}
