//! Content hashes: sha256 for dedup and registry checks, and git blob ids (sha1 over
//! `"blob <len>\0" + content`) for files whose published identity is a git blob.

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

impl Expected {
    /// `Ok(())` if `bytes` match, else `(kind, actual, expected)`.
    pub fn verify(&self, bytes: &[u8], sha256: &str) -> Result<(), (&'static str, String, String)> {
        let (kind, actual, expected) = match self {
            Expected::Sha256(e) => ("sha256", sha256.to_string(), e),
            Expected::GitBlob(e) => ("git blob id", git_blob_hex(bytes), e),
        };
        if actual.eq_ignore_ascii_case(expected) {
            Ok(())
        } else {
            Err((kind, actual, expected.clone()))
        }
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
}
