//! Ctrl-C (SIGINT): the first one asks training to stop after the current step (a checkpoint
//! is written and the process exits 0); a second one exits at once with status 130.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the handler, read by the training loop after each step.
#[derive(Clone, Debug)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Installs the SIGINT handler (once per process) and returns its flag.
    pub fn install() -> Self {
        let flag = Arc::new(AtomicBool::new(false));
        let handler_flag = flag.clone();
        let installed = ctrlc::set_handler(move || {
            if handler_flag.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond Ctrl-C: exiting without a checkpoint");
                std::process::exit(130);
            }
            eprintln!(
                "\nCtrl-C: finishing this step and writing a checkpoint (Ctrl-C again to exit now)"
            );
        });
        if let Err(e) = installed {
            eprintln!("warning: Ctrl-C will stop training without a checkpoint ({e})");
        }
        StopFlag(flag)
    }

    /// A flag no signal sets (tests, library use).
    pub fn never() -> Self {
        StopFlag(Arc::new(AtomicBool::new(false)))
    }

    /// Whether a stop was requested.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
