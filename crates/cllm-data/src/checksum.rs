//! Content hashes: sha256 for dedup and registry checks, and git blob ids (sha1 over
//! `"blob <len>\0" + content`) for files whose published identity is a git blob.

use std::io::Read;

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex git blob id of `bytes` (what `git hash-object` prints).
pub fn git_blob_hex(bytes: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    hex(&h.finalize())
}

/// Lowercase hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A checksum the registry may give for a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// sha256 in hex.
    Sha256(String),
    /// git blob id in hex.
    GitBlob(String),
}

/// A reader that computes, over the bytes read through it, the digest an [`Expected`]
/// checksum names, so a file is verified in the same single read that uses it.
pub struct Verifying<R> {
    inner: R,
    expected: Expected,
    sha256: Sha256,
    sha1: Sha1,
}

impl Expected {
    /// Verifies what is read from `inner`, a file of `len` bytes (the length a git blob id
    /// covers; a file of another length does not match).
    pub fn reader<R: Read>(self, inner: R, len: u64) -> Verifying<R> {
        let mut sha1 = Sha1::new();
        if let Expected::GitBlob(_) = self {
            sha1.update(format!("blob {len}\0").as_bytes());
        }
        Verifying {
            inner,
            expected: self,
            sha256: Sha256::new(),
            sha1,
        }
    }
}

impl<R: Read> Verifying<R> {
    /// Reads what is left and compares the digest: `Ok(())` if it matches, else
    /// `(kind, actual, expected)`.
    ///
    /// # Errors
    /// The outer error is a read error.
    #[allow(clippy::type_complexity)]
    pub fn finish(mut self) -> std::io::Result<Result<(), (&'static str, String, String)>> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        let (kind, actual, expected) = match self.expected {
            Expected::Sha256(e) => ("sha256", hex(&self.sha256.finalize()), e),
            Expected::GitBlob(e) => ("git blob id", hex(&self.sha1.finalize()), e),
        };
        Ok(if actual.eq_ignore_ascii_case(&expected) {
            Ok(())
        } else {
            Err((kind, actual, expected))
        })
    }
}

impl<R: Read> Read for Verifying<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.expected {
            Expected::Sha256(_) => self.sha256.update(&buf[..n]),
            Expected::GitBlob(_) => self.sha1.update(&buf[..n]),
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hashes() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_blob_hex(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn a_verifying_reader_checks_what_passes_through() {
        let text = b"hello\n".repeat(10_000);
        let sha = sha256_hex(&text);
        let blob = git_blob_hex(&text);
        let n = text.len() as u64;
        // Part read by a consumer, the rest by `finish`.
        let mut r = Expected::Sha256(sha.clone()).reader(&text[..], n);
        let mut head = [0u8; 100];
        r.read_exact(&mut head).unwrap();
        assert_eq!(r.finish().unwrap(), Ok(()));
        assert_eq!(
            Expected::GitBlob(blob.to_uppercase())
                .reader(&text[..], n)
                .finish()
                .unwrap(),
            Ok(())
        );
        let (kind, actual, _) = Expected::GitBlob(blob.clone())
            .reader(&text[..], n + 1)
            .finish()
            .unwrap()
            .unwrap_err();
        assert_eq!(kind, "git blob id");
        assert_ne!(actual, blob);
        let (kind, actual, expected) = Expected::Sha256(sha.clone())
            .reader(&text[1..], n)
            .finish()
            .unwrap()
            .unwrap_err();
        assert_eq!((kind, expected), ("sha256", sha));
        assert_eq!(actual, sha256_hex(&text[1..]));
    }
}
