//! The human-readable lines on stderr, and what a closed stderr means.
//!
//! `cllm-train ... 2>&1 | head` (or a `tee` that dies) closes the pipe stderr writes into, and
//! Rust's `eprintln!` panics on the failed write: a run used to die there with status 101 and
//! no checkpoint. Every line of the binaries goes through [`crate::say!`] instead, and tracing's log
//! through [`Stderr`]: the first failed write marks stderr closed, drops every later line, and
//! asks the run to stop as a SIGHUP would ([`crate::signal`]): after the current step, with a
//! checkpoint, exit status 0; before training has started, at once with status 130. Where no
//! [`crate::signal::StopFlag`] is installed (`--prepare-only`, `cllm-generate`, tests) the
//! output just stops.
//!
//! (A stderr that is closed when the process starts, `2>&-`, is not a failed write: Rust's
//! standard streams treat that as a sink.)

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the first write to stderr that fails; never cleared.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Prints a line to stderr, as `eprintln!` does, but never panics: see the module docs.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::console::line(format_args!($($arg)*))
    };
}

/// Writes one line to stderr (what [`crate::say!`] expands to).
pub fn line(args: fmt::Arguments<'_>) {
    if is_closed() {
        return;
    }
    if writeln!(io::stderr().lock(), "{args}").is_err() {
        closed();
    }
}

/// Whether a write to stderr has failed.
pub fn is_closed() -> bool {
    CLOSED.load(Ordering::SeqCst)
}

/// Records that stderr is gone; the first call asks the run to stop.
pub fn closed() {
    if !CLOSED.swap(true, Ordering::SeqCst) {
        crate::signal::output_closed();
    }
}

/// Stderr as a writer that never fails: a failed write is [`closed`], then swallowed, as is
/// everything after it. tracing's log layer writes through it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !is_closed() && io::stderr().write_all(buf).is_err() {
            closed();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !is_closed() && io::stderr().flush().is_err() {
            closed();
        }
        Ok(())
    }
}

/// Writes `text` to stdout: a reader that has gone away (`| head`) is not an error (the output
/// just ends there, as `yes | head` ends `yes`); any other failure is.
pub fn stdout(text: &str) -> Result<(), String> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(format!("writing to stdout: {e}")),
        _ => Ok(()),
    }
}
