//! The OpenBLAS backend (feature `openblas`): `cblas_sgemm` from the system `libopenblas`.
//!
//! Two properties of OpenBLAS need handling, and both are handled here:
//!
//! * **Threads.** OpenBLAS has one process-wide thread count. Inside the lattice every worker
//!   calls GEMM from its own thread, so OpenBLAS must never start threads of its own: the first
//!   call through this backend sets the count to 1 (`openblas_set_num_threads(1)`), and
//!   [`reexec_with_openblas_env`] also sets `OPENBLAS_NUM_THREADS=1` so no idle pool is created.
//! * **Kernel choice.** A `DYNAMIC_ARCH` OpenBLAS (as Debian ships) picks its kernels when the
//!   library is loaded, before `main` runs. On AVX-512 machines that OpenBLAS does not recognise
//!   (Zen 4, for one) it falls back to its AVX2 kernels at about half speed, unless the
//!   environment variable `OPENBLAS_CORETYPE=SkylakeX` is set *before the process starts*.
//!   Binaries call [`reexec_with_openblas_env`] first thing in `main`: on an AVX-512 CPU with the
//!   variable unset it re-executes the program with it set. On CPUs without AVX-512 it does
//!   nothing (SkylakeX kernels would fault there).

use std::ffi::c_int;
use std::sync::Once;

use super::{GemmSpec, Transpose};

// SAFETY: both symbols are exported by libopenblas (linked through `openblas-src`) with these
// exact C signatures.
unsafe extern "C" {
    fn openblas_set_num_threads(num_threads: c_int);
    fn openblas_get_num_threads() -> c_int;
}

static SINGLE_THREAD: Once = Once::new();

/// The number of threads OpenBLAS will use for one call (1 after the first GEMM here).
pub fn num_threads() -> usize {
    // SAFETY: a plain getter with no preconditions.
    unsafe { openblas_get_num_threads() as usize }
}

fn trans(t: Transpose) -> cblas_sys::CBLAS_TRANSPOSE {
    match t {
        Transpose::N => cblas_sys::CBLAS_TRANSPOSE::CblasNoTrans,
        Transpose::T => cblas_sys::CBLAS_TRANSPOSE::CblasTrans,
    }
}

fn int(x: usize) -> c_int {
    c_int::try_from(x).expect("gemm: dimension does not fit a C int (OpenBLAS LP64)")
}

/// Runs one GEMM. The caller ([`super::matmul_with`]) has checked the slice lengths with
/// [`GemmSpec::check`] and handled empty dimensions.
pub(super) fn run(spec: &GemmSpec, a: &[f32], b: &[f32], c: &mut [f32]) {
    SINGLE_THREAD.call_once(|| {
        // SAFETY: sets a global integer inside OpenBLAS; no preconditions.
        unsafe { openblas_set_num_threads(1) }
    });
    // SAFETY: `GemmSpec::check` proved every element addressed through (m, n, k, lda, ldb, ldc)
    // lies inside `a`, `b` and `c`; `c` is a unique borrow so it aliases neither input; with one
    // OpenBLAS thread the call completes on this thread before the borrows end.
    unsafe {
        cblas_sys::cblas_sgemm(
            cblas_sys::CBLAS_LAYOUT::CblasRowMajor,
            trans(spec.ta),
            trans(spec.tb),
            int(spec.m),
            int(spec.n),
            int(spec.k),
            spec.alpha,
            a.as_ptr(),
            int(spec.lda),
            b.as_ptr(),
            int(spec.ldb),
            spec.beta,
            c.as_mut_ptr(),
            int(spec.ldc),
        );
    }
}

/// The environment this process should have been started with for OpenBLAS to run well, or
/// `None` when it already has it.
pub fn missing_env() -> Option<Vec<(&'static str, &'static str)>> {
    let mut missing = Vec::new();
    if std::env::var_os("OPENBLAS_NUM_THREADS").is_none() {
        missing.push(("OPENBLAS_NUM_THREADS", "1"));
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") && std::env::var_os("OPENBLAS_CORETYPE").is_none() {
        missing.push(("OPENBLAS_CORETYPE", "SkylakeX"));
    }
    (!missing.is_empty()).then_some(missing)
}

/// Re-executes the current program with the OpenBLAS environment of [`missing_env`] set, if any
/// of it is missing; returns normally when nothing is missing or the re-exec failed (the
/// program then runs on with OpenBLAS's own choice, which is correct, only slower).
/// Call it first thing in `main`, before any thread starts.
pub fn reexec_with_openblas_env() {
    let Some(missing) = missing_env() else { return };
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::process::CommandExt;
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut cmd = std::process::Command::new(exe);
        cmd.args(std::env::args_os().skip(1));
        for (k, v) in missing {
            cmd.env(k, v);
        }
        let err = cmd.exec();
        // Not `eprintln!`, which panics when stderr is a closed pipe.
        let _ = writeln!(
            std::io::stderr(),
            "warning: could not re-execute with the OpenBLAS environment set: {err}"
        );
    }
    #[cfg(not(unix))]
    {
        let _ = missing;
    }
}
