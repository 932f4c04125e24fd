//! Token shards: a versioned binary file of token ids, written once, read in windows.
//!
//! Layout (little-endian):
//!
//! | bytes  | field                                   |
//! |--------|-----------------------------------------|
//! | 0..8   | magic `b"CLLMTOKS"`                     |
//! | 8..12  | format version, `u32` ([`VERSION`])      |
//! | 12..16 | token width in bytes, `u32`: 2 or 4     |
//! | 16..24 | token count, `u64`                      |
//! | 24..   | the tokens, `u16` or `u32` each         |
//!
//! `u16` is used whenever the vocabulary fits (at most 65,536 ids). The reader checks every
//! header field and that the file length matches the count, so a truncated or foreign file is
//! refused with a message instead of yielding garbage.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// File magic.
pub const MAGIC: &[u8; 8] = b"CLLMTOKS";
/// Current format version.
pub const VERSION: u32 = 1;
/// Header size in bytes.
pub const HEADER_LEN: u64 = 24;

/// The token width for a vocabulary size: 2 bytes if every id fits a `u16`, else 4.
pub fn width_for(vocab_size: usize) -> u32 {
    if vocab_size <= 1 << 16 { 2 } else { 4 }
}

/// Writes a shard front to back; the count is patched into the header by [`finish`](Self::finish).
pub struct ShardWriter {
    out: BufWriter<File>,
    path: PathBuf,
    width: u32,
    count: u64,
    bytes: Vec<u8>,
}

impl ShardWriter {
    /// Creates (truncates) `path` for tokens of a vocabulary of `vocab_size` ids.
    pub fn create(path: &Path, vocab_size: usize) -> Result<Self> {
        let file = File::create(path).map_err(|e| DataError::io(path, "creating", e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let width = width_for(vocab_size);
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&width.to_le_bytes());
        header.extend_from_slice(&0u64.to_le_bytes());
        out.write_all(&header)
            .map_err(|e| DataError::io(path, "writing", e))?;
        Ok(ShardWriter {
            out,
            path: path.to_path_buf(),
            width,
            count: 0,
            bytes: Vec::new(),
        })
    }

    /// Appends tokens.
    ///
    /// # Errors
    /// If a token does not fit the shard's width, or writing fails.
    pub fn push(&mut self, tokens: &[u32]) -> Result<()> {
        self.bytes.clear();
        if self.width == 2 {
            if let Some(&t) = tokens.iter().find(|&&t| t > u16::MAX as u32) {
                let message = format!("token {t} does not fit a 2-byte shard");
                return Err(DataError::Shard {
                    path: self.path.clone(),
                    message,
                });
            }
            self.bytes
                .extend(tokens.iter().flat_map(|&t| (t as u16).to_le_bytes()));
        } else {
            self.bytes
                .extend(tokens.iter().flat_map(|&t| t.to_le_bytes()));
        }
        self.out
            .write_all(&self.bytes)
            .map_err(|e| DataError::io(&self.path, "writing", e))?;
        self.count += tokens.len() as u64;
        Ok(())
    }

    /// Tokens written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Patches the count into the header and syncs the file to disk.
    pub fn finish(self) -> Result<u64> {
        let path = self.path;
        let mut file = self
            .out
            .into_inner()
            .map_err(|e| DataError::io(&path, "writing", e.into_error()))?;
        let w = |e| DataError::io(&path, "writing", e);
        file.seek(SeekFrom::Start(16)).map_err(w)?;
        file.write_all(&self.count.to_le_bytes()).map_err(w)?;
        file.sync_all().map_err(w)?;
        Ok(self.count)
    }
}

/// Reads windows of a shard with bounded memory: only the bytes of the window asked for are
/// read, never the whole file.
#[derive(Debug)]
pub struct ShardReader {
    file: File,
    path: PathBuf,
    width: u32,
    len: u64,
    buf: Vec<u8>,
}

impl ShardReader {
    /// Opens and validates a shard.
    pub fn open(path: &Path) -> Result<Self> {
        let bad = |message: String| DataError::Shard {
            path: path.to_path_buf(),
            message,
        };
        let mut file = File::open(path).map_err(|e| DataError::io(path, "opening", e))?;
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact(&mut header)
            .map_err(|_| bad("too short for a shard header".into()))?;
        if &header[..8] != MAGIC {
            return Err(bad("not a token shard (bad magic)".into()));
        }
        let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(bad(format!(
                "shard format version {version}, this build reads version {VERSION}"
            )));
        }
        let width = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
        if width != 2 && width != 4 {
            return Err(bad(format!("token width {width} is neither 2 nor 4")));
        }
        let len = u64::from_le_bytes(header[16..24].try_into().expect("8 bytes"));
        let size = file
            .metadata()
            .map_err(|e| DataError::io(path, "reading metadata of", e))?
            .len();
        let want = HEADER_LEN + len * width as u64;
        if size != want {
            return Err(bad(format!(
                "header says {len} tokens ({want} bytes), the file has {size} bytes (truncated?)"
            )));
        }
        Ok(ShardReader {
            file,
            path: path.to_path_buf(),
            width,
            len,
            buf: Vec::new(),
        })
    }

    /// Number of tokens.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if the shard holds no tokens.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file this reader reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads tokens `start .. start + out.len()` into `out`.
    ///
    /// # Errors
    /// If the window runs past the end or the read fails.
    pub fn read(&mut self, start: u64, out: &mut [u32]) -> Result<()> {
        let end = start + out.len() as u64;
        if end > self.len {
            return Err(DataError::Shard {
                path: self.path.clone(),
                message: format!("window {start}..{end} runs past the {} tokens", self.len),
            });
        }
        let w = self.width as usize;
        self.buf.resize(out.len() * w, 0);
        let r = |e| DataError::io(&self.path, "reading", e);
        self.file
            .seek(SeekFrom::Start(HEADER_LEN + start * w as u64))
            .map_err(r)?;
        self.file.read_exact(&mut self.buf).map_err(r)?;
        if w == 2 {
            for (o, b) in out.iter_mut().zip(self.buf.chunks_exact(2)) {
                *o = u16::from_le_bytes([b[0], b[1]]) as u32;
            }
        } else {
            for (o, b) in out.iter_mut().zip(self.buf.chunks_exact(4)) {
                *o = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        Ok(())
    }

    /// Every token (for tests and small shards).
    pub fn read_all(&mut self) -> Result<Vec<u32>> {
        let mut out = vec![0; self.len as usize];
        self.read(0, &mut out)?;
        Ok(out)
    }
}

/// Copies tokens `start .. start + count` of `src` into `dst`, a million at a time.
pub fn copy_range(
    src: &mut ShardReader,
    start: u64,
    count: u64,
    dst: &mut ShardWriter,
) -> Result<()> {
    let mut chunk = vec![0u32; (1 << 20).min(count as usize)];
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(chunk.len() as u64) as usize;
        src.read(start + done, &mut chunk[..n])?;
        dst.push(&chunk[..n])?;
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_both_widths() {
        let dir = tempfile::tempdir().unwrap();
        for (vocab, tokens) in [
            (65usize, vec![0u32, 64, 3, 1]),
            (70_000, vec![69_999, 0, 65_536]),
        ] {
            let p = dir.path().join(format!("{vocab}.bin"));
            let mut w = ShardWriter::create(&p, vocab).unwrap();
            w.push(&tokens).unwrap();
            assert_eq!(w.finish().unwrap(), tokens.len() as u64);
            let mut r = ShardReader::open(&p).unwrap();
            assert_eq!(r.read_all().unwrap(), tokens);
            let mut two = [0u32; 2];
            r.read(1, &mut two).unwrap();
            assert_eq!(two, [tokens[1], tokens[2]]);
            assert!(r.read(3, &mut two).is_err());
            let expected_len = HEADER_LEN + tokens.len() as u64 * width_for(vocab) as u64;
            assert_eq!(std::fs::metadata(&p).unwrap().len(), expected_len);
        }
    }

    #[test]
    fn damaged_shards_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.bin");
        let mut w = ShardWriter::create(&p, 10).unwrap();
        w.push(&[1, 2, 3]).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
        assert!(
            ShardReader::open(&p)
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        std::fs::write(&p, b"hello world, not a shard at all").unwrap();
        assert!(
            ShardReader::open(&p)
                .unwrap_err()
                .to_string()
                .contains("bad magic")
        );
        let mut w = ShardWriter::create(&p, 10).unwrap();
        assert!(w.push(&[70_000]).is_err());
    }
}
