//! What every result file is stamped with: machine, toolchain, source revision, command line.

use std::process::Command;

/// Where and how a measurement was taken.
#[derive(Clone, Debug)]
pub struct Stamp {
    /// CPU model from /proc/cpuinfo.
    pub cpu: String,
    /// Logical cores available to this process.
    pub cores: usize,
    /// `rustc -V`.
    pub rustc: String,
    /// `git rev-parse --short HEAD`, with `-dirty` if the tree has changes.
    pub git: String,
    /// The command line.
    pub command: String,
    /// UTC time, `YYYY-mm-dd HH:MM:SS`.
    pub when: String,
}

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Stamp {
    /// Reads the stamp of this machine and checkout now.
    pub fn now() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let dirty = output("git", &["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
        let git = output("git", &["rev-parse", "--short", "HEAD"]).map_or_else(
            || "unknown".into(),
            |h| if dirty { format!("{h}-dirty") } else { h },
        );
        Stamp {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            rustc: output("rustc", &["-V"]).unwrap_or_else(|| "unknown rustc".into()),
            git,
            command: std::env::args().collect::<Vec<_>>().join(" "),
            when: output("date", &["-u", "+%Y-%m-%d %H:%M:%S"]).unwrap_or_default(),
        }
    }

    /// Markdown lines.
    pub fn markdown(&self) -> String {
        format!(
            "- machine: {} ({} cores available)\n- toolchain: {}\n- source: git {}\n- command: `{}`\n- date: {} UTC\n",
            self.cpu, self.cores, self.rustc, self.git, self.command, self.when
        )
    }

    /// One line for plot captions.
    pub fn caption(&self) -> String {
        format!(
            "{}, {} cores, {}, git {}",
            self.cpu, self.cores, self.rustc, self.git
        )
    }
}
