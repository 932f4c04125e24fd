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
    let (source, directive) = match (log_level, std::env::var("RUST_LOG")) {
        (Some(level), _) => ("--log-level ", level.to_string()),
        (None, Ok(env)) => ("RUST_LOG=", env),
        (None, Err(_)) => ("", "warn".to_string()),
    };
    if log_level.is_some() {
        // RUST_LOG is shared with other tools, where a bare module name is common: not checked.
        check_directive(&directive).map_err(|e| format!("{source}{directive}: {e}"))?;
    }
    let filter = EnvFilter::try_new(&directive).map_err(|e| format!("{source}{directive}: {e}"))?;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(|| crate::console::Stderr)
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_filter(filter);
    let (chrome, guard) = match trace {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Some(file) = crate::run_dir::file_in_the_way(dir) {
                    return Err(format!(
                        "--trace {}: {} is a file, not a directory",
                        path.display(),
                        file.display()
                    ));
                }
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

/// Level names a filter directive may use bare.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Refuses a bare word that is not a level. `EnvFilter` would read `--log-level verbose` as
/// "everything from a module called `verbose`", which silently logs nothing.
fn check_directive(directive: &str) -> Result<(), String> {
    for part in directive.split(',').map(str::trim) {
        let bare = !part.is_empty() && !part.contains(['=', '[']);
        if bare && !LEVELS.contains(&part.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "`{part}` is not a level (off, error, warn, info, debug, trace); \
                 to filter by module write MODULE=LEVEL, e.g. cllm_lattice=debug"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_directive;

    #[test]
    fn levels_and_module_directives_pass_and_other_bare_words_do_not() {
        for ok in [
            "warn",
            "DEBUG",
            "info,cllm_lattice=trace",
            "cllm_train=debug",
            "",
        ] {
            assert!(check_directive(ok).is_ok(), "{ok}");
        }
        for bad in ["verbose", "warn,loud"] {
            let e = check_directive(bad).unwrap_err();
            assert!(e.contains("is not a level"), "{bad}: {e}");
        }
    }
}
