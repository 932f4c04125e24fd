//! Progress display on stderr: an `indicatif` spinner or bar on a terminal (indicatif hides
//! itself when stderr is not a terminal; logs and summaries still print), and [`PhaseLog`]'s
//! plain lines for long operations off a terminal.

use std::io::IsTerminal;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner with a changing message, for phases of unknown length.
pub fn spinner(prefix: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {prefix}: {msg} [{elapsed}]")
            .expect("valid template"),
    );
    pb.set_prefix(prefix.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// A bar over `len` steps.
pub fn bar(len: u64, prefix: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(prefix.to_string());
    pb
}

/// Progress for logs: where the spinner is hidden (stderr is not a terminal), prints the phase
/// of a long operation as a plain line once it has run for `quiet_for`, then each new phase
/// (a message's first word names its phase) as it starts, and a phase's progress again every
/// [`REPEAT_AFTER`] while it changes. Quick operations print nothing.
/// A thread checks twice a second, so a phase that reports no progress for minutes (training
/// a BPE tokenizer) still shows; dropping the log stops and joins it.
pub struct PhaseLog {
    shared: Arc<PhaseShared>,
    thread: Option<JoinHandle<()>>,
}

/// How often a long phase's progress is printed again (when it changed).
pub const REPEAT_AFTER: Duration = Duration::from_secs(10);

struct PhaseShared {
    /// The latest message; `None` once the operation is over.
    current: Mutex<Option<String>>,
    over: Condvar,
}

impl PhaseLog {
    /// Starts the log when stderr is not a terminal; otherwise a log that prints nothing.
    pub fn start(prefix: &'static str, quiet_for: Duration) -> Self {
        Self::start_on(
            !std::io::stderr().is_terminal(),
            prefix,
            quiet_for,
            |line| crate::say!("{line}"),
        )
    }

    fn start_on(
        enabled: bool,
        prefix: &'static str,
        quiet_for: Duration,
        print: impl Fn(&str) + Send + 'static,
    ) -> Self {
        let shared = Arc::new(PhaseShared {
            current: Mutex::new(Some(String::new())),
            over: Condvar::new(),
        });
        let thread = enabled.then(|| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let (mut printed, mut printed_msg, mut printed_at) =
                    (String::new(), String::new(), started);
                let mut current = shared.current.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    current = shared
                        .over
                        .wait_timeout(current, Duration::from_millis(500))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    let Some(msg) = current.as_deref() else {
                        return;
                    };
                    let phase = phase_of(msg);
                    let new_phase = phase != printed;
                    let news = msg != printed_msg && printed_at.elapsed() >= REPEAT_AFTER;
                    if started.elapsed() >= quiet_for && !phase.is_empty() && (new_phase || news) {
                        print(&format!(
                            "{prefix}: {msg} [{:.0} s]",
                            started.elapsed().as_secs_f64()
                        ));
                        (printed, printed_msg) = (phase.to_string(), msg.to_string());
                        printed_at = Instant::now();
                    }
                }
            })
        });
        PhaseLog { shared, thread }
    }

    /// The operation's latest progress message.
    pub fn set(&self, msg: &str) {
        let mut current = self
            .shared
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(c) = current.as_mut() {
            c.clear();
            c.push_str(msg);
        }
    }
}

impl Drop for PhaseLog {
    fn drop(&mut self) {
        *self
            .shared
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        self.shared.over.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The phase a progress message belongs to: its first word (`reading`, `encoding`...).
pub fn phase_of(msg: &str) -> &str {
    msg.split([' ', ':']).next().unwrap_or(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collecting(quiet_for: Duration) -> (PhaseLog, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let log = PhaseLog::start_on(true, "data", quiet_for, move |l| {
            sink.lock().unwrap().push(l.to_string())
        });
        (log, lines)
    }

    #[test]
    fn a_quick_operation_prints_nothing() {
        let (log, lines) = collecting(Duration::from_secs(60));
        log.set("reading files: 1/2");
        log.set("encoding documents: 1/2");
        drop(log);
        assert!(lines.lock().unwrap().is_empty());
    }

    #[test]
    fn a_long_one_prints_each_phase_once() {
        let (log, lines) = collecting(Duration::ZERO);
        // Waits (up to 10 s, however loaded the machine) until `n` lines were printed.
        let wait_for = |n: usize| {
            let t = Instant::now();
            while lines.lock().unwrap().len() < n && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        log.set("reading files: 1/2");
        wait_for(1);
        log.set("reading files: 2/2"); // same phase: no new line
        std::thread::sleep(Duration::from_millis(1200));
        log.set("training BPE tokenizer (vocabulary 512)");
        wait_for(2);
        drop(log);
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("data: reading files: "), "{lines:?}");
        assert!(
            lines[1].starts_with("data: training BPE tokenizer (vocabulary 512) ["),
            "{lines:?}"
        );
    }
}
