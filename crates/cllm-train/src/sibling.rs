//! How to run one of this project's other binaries from here, for the commands the tools print
//! ("sample from it: ...", "resume with: ..."): a newcomer who ran `cargo run --release` has
//! `target/release/cllm-generate`, not a `cllm-generate` on `PATH`.

use std::path::Path;

/// The command for binary `name`: the bare name when this executable's directory is on `PATH`
/// (an installed tool); the binary's path when it lies next to this executable (relative to the
/// working directory when below it); `cargo run [--release] --bin NAME --` when this executable
/// is in a Cargo target directory that has not built `name` yet; else the bare name.
pub fn command(name: &str) -> String {
    let Ok(exe) = std::env::current_exe() else {
        return name.to_string();
    };
    let Some(dir) = exe.parent() else {
        return name.to_string();
    };
    let sibling = dir.join(name);
    if on_path(dir) {
        return name.to_string();
    }
    if !sibling.is_file() {
        return cargo_run(dir, name).unwrap_or_else(|| name.to_string());
    }
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| sibling.strip_prefix(cwd).ok().map(Path::to_path_buf));
    relative.unwrap_or(sibling).display().to_string()
}

/// `cargo run --release --bin NAME --` (or without `--release`) if `dir` is a profile directory
/// of a Cargo target directory (which Cargo marks with `CACHEDIR.TAG`).
fn cargo_run(dir: &Path, name: &str) -> Option<String> {
    let target = dir.parent()?;
    if !target.join("CACHEDIR.TAG").is_file() {
        return None;
    }
    match dir.file_name()?.to_str()? {
        "release" => Some(format!("cargo run --release --bin {name} --")),
        "debug" => Some(format!("cargo run --bin {name} --")),
        _ => None,
    }
}

/// Whether `dir` is one of the directories of `PATH`.
fn on_path(dir: &Path) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    let dir = dir.canonicalize().ok();
    std::env::split_paths(&path).any(|d| dir.is_some() && d.canonicalize().ok() == dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_not_built_yet_is_run_through_cargo() {
        // Test executables live in target/PROFILE/deps, not in a profile directory itself.
        assert_eq!(command("no-such-binary-here"), "no-such-binary-here");
        let tmp = tempfile::tempdir().unwrap();
        let release = tmp.path().join("release");
        std::fs::create_dir_all(&release).unwrap();
        assert_eq!(
            cargo_run(&release, "cllm-generate"),
            None,
            "no CACHEDIR.TAG"
        );
        std::fs::write(tmp.path().join("CACHEDIR.TAG"), "").unwrap();
        assert_eq!(
            cargo_run(&release, "cllm-generate").as_deref(),
            Some("cargo run --release --bin cllm-generate --")
        );
        assert_eq!(
            cargo_run(&tmp.path().join("debug"), "x").as_deref(),
            Some("cargo run --bin x --")
        );
        assert_eq!(cargo_run(&tmp.path().join("deps"), "x"), None);
    }

    #[test]
    fn a_binary_beside_this_one_is_named_by_its_path() {
        // The test executable's own name stands in for a sibling binary.
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_str().unwrap();
        let got = command(name);
        if on_path(exe.parent().unwrap()) {
            assert_eq!(got, name);
        } else {
            assert!(got.ends_with(name) && got.len() > name.len(), "{got}");
            assert!(Path::new(&got).is_file(), "{got}");
        }
    }
}
