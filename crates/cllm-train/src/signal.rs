//! Ctrl-C (SIGINT), and likewise SIGTERM (what `kill`, `timeout` and batch schedulers send) and
//! SIGHUP (a closed terminal): once training has started, the first one asks it to stop after the
//! current step, or between two batches of an evaluation under way (a checkpoint is written and
//! the process exits 0) and a second one exits at once
//! with status 130. Before training starts (data preparation, set-up) there is nothing to save,
//! so the signal exits at once with status 130, after deleting the temporary directory of a
//! data preparation under way ([`cllm_data::abandon_builds`]; one left by a kill the next
//! preparation of the same corpus removes). A closed stderr
//! ([`crate::console`]) counts as one such signal, silently.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::say;

/// The flag [`StopFlag::install`] returned, for [`output_closed`].
static INSTALLED: OnceLock<StopFlag> = OnceLock::new();

/// Set by the handler, read by the training loop after each step and between evaluation batches.
#[derive(Clone, Debug)]
pub struct StopFlag {
    requested: Arc<AtomicBool>,
    /// Whether training has started (and a stop should be graceful).
    armed: Arc<AtomicBool>,
}

impl StopFlag {
    /// Installs the handler of SIGINT, SIGTERM and SIGHUP (once per process) and returns its
    /// flag.
    pub fn install() -> Self {
        let flag = StopFlag::never();
        let (handler_flag, armed) = (flag.requested.clone(), flag.armed.clone());
        let installed = ctrlc::set_handler(move || {
            if !armed.load(Ordering::SeqCst) {
                say!(
                    "\nstop requested (Ctrl-C or SIGTERM) before training started: exiting (nothing to checkpoint yet)"
                );
                cllm_data::abandon_builds();
                std::process::exit(130);
            }
            if handler_flag.swap(true, Ordering::SeqCst) {
                say!("\nsecond stop request: exiting without a checkpoint");
                std::process::exit(130);
            }
            say!(
                "\nstop requested (Ctrl-C or SIGTERM): finishing this step and writing a checkpoint (Ctrl-C again to exit now)"
            );
        });
        if let Err(e) = installed {
            say!("warning: Ctrl-C or SIGTERM will stop training without a checkpoint ({e})");
        }
        // The first flag installed is the one the signal handler sets (`ctrlc` refuses a
        // second handler), so it is the one a closed stderr sets too.
        let _ = INSTALLED.set(flag.clone());
        flag
    }

    /// A flag no signal sets (tests, library use).
    pub fn never() -> Self {
        StopFlag {
            requested: Arc::new(AtomicBool::new(false)),
            armed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Training has started: from now on Ctrl-C stops after the current step with a checkpoint.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Asks for a stop, as the signal does (for code that drives training itself).
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
}

/// Stderr is gone ([`crate::console`]): the installed flag, if any, is handled as a signal is,
/// without the messages (nobody can read them): before training, exit at once with status 130;
/// during it, stop after the current step with a checkpoint.
pub(crate) fn output_closed() {
    let Some(flag) = INSTALLED.get() else {
        return;
    };
    if !flag.armed.load(Ordering::SeqCst) {
        cllm_data::abandon_builds();
        std::process::exit(130);
    }
    flag.request();
}
