//! Finding dataset files on disk, and downloading them (checksum verified) when they are not.
//!
//! Search order: `--data-dir`, then `$CLLM_DATA_DIR`, then the per-user cache directory
//! (`~/.cache/cllm/datasets` on Linux). Paths inside them follow the layout of
//! `../shared/datasets` (`tinyshakespeare/input.txt`, `squad/dev-v1.1.json`, ...). A missing file
//! is downloaded into the first directory of that list.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::checksum::{Expected, git_blob_hex, hex};
use crate::error::{DataError, MissingFile, Result};
use crate::registry::FileSpec;

/// Environment variable naming a data directory.
pub const DATA_DIR_ENV: &str = "CLLM_DATA_DIR";

/// The directories dataset files are looked up in, in order.
#[derive(Clone, Debug)]
pub struct DataDirs {
    dirs: Vec<PathBuf>,
}

impl DataDirs {
    /// `explicit` (from `--data-dir`), then `$CLLM_DATA_DIR`, then the user cache directory.
    pub fn new(explicit: Option<PathBuf>) -> Self {
        let mut dirs = Vec::new();
        dirs.extend(explicit);
        if let Some(env) = std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()) {
            dirs.push(PathBuf::from(env));
        }
        if let Some(cache) = dirs::cache_dir() {
            dirs.push(cache.join("cllm").join("datasets"));
        }
        if dirs.is_empty() {
            dirs.push(PathBuf::from("datasets-cache"));
        }
        DataDirs { dirs }
    }

    /// Exactly these directories (tests).
    pub fn only(dirs: Vec<PathBuf>) -> Self {
        DataDirs { dirs }
    }

    /// The directories, in search order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The first directory holding `relative`, joined with it.
    pub fn find(&self, relative: &str) -> Option<PathBuf> {
        self.dirs
            .iter()
            .map(|d| d.join(relative))
            .find(|p| p.is_file())
    }

    /// The file's local path: found, or downloaded into the first directory. The checksum of a
    /// downloaded file is verified before it is moved into place; a found file is verified when
    /// it is read (see `prepare`), since it is read then anyway.
    pub fn locate(&self, file: &FileSpec, allow_download: bool) -> Result<PathBuf> {
        if let Some(p) = self.find(&file.path) {
            return Ok(p);
        }
        let dest = self.dirs[0].join(&file.path);
        let searched = self
            .dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let missing = |reason: String| {
            DataError::Missing(Box::new(MissingFile {
                file: file.path.clone(),
                searched: searched.clone(),
                url: file.url.clone(),
                reason,
                dest: dest.clone(),
                local_variants: Vec::new(),
            }))
        };
        if !allow_download {
            return Err(missing("downloads are disabled".into()));
        }
        download(&file.url, &dest, file.expected().as_ref()).map_err(missing)?;
        Ok(dest)
    }
}

/// Downloads `url` to `dest` through a `.part` file, verifying `expected` before the rename.
/// Errors are returned as one-line reasons.
pub fn download(url: &str, dest: &Path, expected: Option<&Expected>) -> Result<(), String> {
    let parent = dest.parent().ok_or("destination has no parent directory")?;
    // Not `eprintln!`, which panics when stderr is a closed pipe.
    let _ = writeln!(std::io::stderr(), "downloading {url} -> {}", dest.display());
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(Duration::from_secs(60))
        .build();
    let response = agent.get(url).call().map_err(|e| e.to_string())?;
    fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    let mut reader = response.into_reader();
    let part = dest.with_extension("part");
    let result = (|| -> Result<(), String> {
        let mut out =
            fs::File::create(&part).map_err(|e| format!("creating {}: {e}", part.display()))?;
        let mut sha = Sha256::new();
        let mut all = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| format!("reading {url}: {e}"))?;
            if n == 0 {
                break;
            }
            sha.update(&buf[..n]);
            if matches!(expected, Some(Expected::GitBlob(_))) {
                all.extend_from_slice(&buf[..n]);
            }
            out.write_all(&buf[..n])
                .map_err(|e| format!("writing {}: {e}", part.display()))?;
        }
        out.sync_all()
            .map_err(|e| format!("syncing {}: {e}", part.display()))?;
        let sha256 = hex(&sha.finalize());
        match expected {
            Some(Expected::Sha256(e)) if !e.eq_ignore_ascii_case(&sha256) => {
                Err(format!("downloaded file has sha256 {sha256}, expected {e}"))
            }
            Some(Expected::GitBlob(e)) if !e.eq_ignore_ascii_case(&git_blob_hex(&all)) => {
                Err(format!(
                    "downloaded file has git blob id {}, expected {e}",
                    git_blob_hex(&all)
                ))
            }
            _ => Ok(()),
        }
    })();
    match result {
        Ok(()) => {
            fs::rename(&part, dest).map_err(|e| format!("renaming into {}: {e}", dest.display()))
        }
        Err(e) => {
            let _ = fs::remove_file(&part);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_error_names_file_url_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = DataDirs::only(vec![dir.path().to_path_buf()]);
        let file = FileSpec {
            id: "x".into(),
            path: "sub/x.txt".into(),
            // Port 9 on loopback: refused at once, so the test never waits on a network.
            url: "http://127.0.0.1:9/x.txt".into(),
            sha256: None,
            git_blob: None,
        };
        let err = dirs.locate(&file, true).unwrap_err().to_string();
        assert!(
            err.contains("sub/x.txt") && err.contains("http://127.0.0.1:9/x.txt"),
            "{err}"
        );
        assert!(
            err.contains(&dir.path().join("sub/x.txt").display().to_string()),
            "{err}"
        );
        assert!(!dir.path().join("sub/x.part").exists());
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/x.txt"), "hi").unwrap();
        assert_eq!(
            dirs.locate(&file, false).unwrap(),
            dir.path().join("sub/x.txt")
        );
    }
}
