//! Logging and tracing: a human log on stderr (`--log-level` or `RUST_LOG`; colours only on a
//! terminal) and, with `--trace FILE`, a Chrome/Perfetto trace with one track per thread
//! (`node-zero` and `lattice-worker-N`).
//!
//! Spans mark every phase that costs time: `data.prepare`, `data.next_batch`, `step`,
//! `compute` (with `forward`, `layer`, `backward` inside), `wait.compute`, `reduce`,
//! `wait.reduce`, `update`, `wait.close`, `wait.open`, `evaluate`, `eval`, `checkpoint`.

use std::io::IsTerminal;
use std::path::Path;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the trace file open; dropping it flushes and closes the file.
pub struct TelemetryGuard {
    _chrome: Option<tracing_chrome::FlushGuard>,
}

/// Installs the subscriber. `log_level` (a level or an `EnvFilter` directive) wins over
/// `RUST_LOG`; the default is `warn`.
pub fn init(log_level: Option<&str>, trace: Option<&Path>) -> Result<TelemetryGuard, String> {
    let directive = log_level
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "warn".into());
    let filter =
        EnvFilter::try_new(&directive).map_err(|e| format!("--log-level {directive}: {e}"))?;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_filter(filter);
    let (chrome, guard) = match trace {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("--trace {}: {e}", path.display()))?;
            }
            std::fs::File::create(path).map_err(|e| format!("--trace {}: {e}", path.display()))?;
            let (layer, guard) = tracing_chrome::ChromeLayerBuilder::new()
                .file(path)
                .include_args(true)
                .build();
            (
                Some(layer.with_filter(tracing_subscriber::filter::LevelFilter::TRACE)),
                Some(guard),
            )
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(fmt)
        .with(chrome)
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(TelemetryGuard { _chrome: guard })
}
