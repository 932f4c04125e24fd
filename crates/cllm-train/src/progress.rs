//! Progress display on stderr: an `indicatif` spinner or bar on a terminal, nothing otherwise
//! (indicatif hides itself when stderr is not a terminal; logs and summaries still print).

use std::time::Duration;

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
