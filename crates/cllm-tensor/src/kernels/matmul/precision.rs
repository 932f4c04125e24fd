//! Matmul precision, process-wide: f32 products (the default) or bf16 products summed in f32.
//!
//! The setting is read by every [`matmul`](super::matmul) call (one relaxed atomic load), so it
//! is meant to be set once, before training starts, like PyTorch's
//! `torch.set_float32_matmul_precision`. Calls through
//! [`matmul_with`](super::matmul_with) name their backend and ignore it.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

use super::Backend;

/// How matrix products are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32 operands and sums ([`Backend::DEFAULT`]).
    #[default]
    F32,
    /// Operands rounded to bfloat16, products summed in f32 (the bf16 backend; x86-64 CPUs
    /// with AVX-512 BF16, such as AMD Zen 4 and Intel Cooper Lake or Sapphire Rapids onwards).
    /// Faster than f32 only where the CPU's bf16 dot product outpaces its f32 FMA
    /// ([`peak::bf16_speedup`](super::peak::bf16_speedup)).
    Bf16,
}

/// The setting: 0 = f32, 1 = bf16. Only [`set_precision`] stores 1, after checking the CPU.
static PRECISION: AtomicU8 = AtomicU8::new(0);

impl Precision {
    /// The name used on command lines and in configs: `f32` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Whether this CPU can compute products at this precision.
    pub fn supported(self) -> bool {
        match self {
            Precision::F32 => true,
            #[cfg(target_arch = "x86_64")]
            Precision::Bf16 => super::bf16::supported(),
            #[cfg(not(target_arch = "x86_64"))]
            Precision::Bf16 => false,
        }
    }

    /// The backend [`matmul`](super::matmul) uses at this precision.
    pub fn backend(self) -> Backend {
        match self {
            Precision::F32 => Backend::DEFAULT,
            #[cfg(target_arch = "x86_64")]
            Precision::Bf16 => Backend::Bf16,
            // Never stored on other targets: `set_precision` refuses it.
            #[cfg(not(target_arch = "x86_64"))]
            Precision::Bf16 => Backend::DEFAULT,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(format!(
                "unknown matmul precision {s:?} (expected f32 or bf16)"
            )),
        }
    }
}

/// The CPU cannot compute products at the requested precision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedPrecision(pub Precision);

impl fmt::Display for UnsupportedPrecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "matmul precision {} needs a CPU with AVX-512 BF16 (vdpbf16ps), which this one lacks",
            self.0
        )
    }
}

impl std::error::Error for UnsupportedPrecision {}

/// Sets the precision of every later [`matmul`](super::matmul) call in this process.
///
/// # Errors
/// If this CPU cannot compute at `precision`; the setting is then unchanged.
pub fn set_precision(precision: Precision) -> Result<(), UnsupportedPrecision> {
    if !precision.supported() {
        return Err(UnsupportedPrecision(precision));
    }
    let code = match precision {
        Precision::F32 => 0,
        Precision::Bf16 => 1,
    };
    PRECISION.store(code, Ordering::Relaxed);
    Ok(())
}

/// The precision [`matmul`](super::matmul) computes at now.
pub fn precision() -> Precision {
    match PRECISION.load(Ordering::Relaxed) {
        0 => Precision::F32,
        _ => Precision::Bf16,
    }
}
