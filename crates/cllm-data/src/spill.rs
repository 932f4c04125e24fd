//! The spill file: every accepted document's text, written once while the sources are read
//! and then read back (in bounded chunks) to train the tokenizer and to encode.
//!
//! This is what lets every source file be opened and read exactly once even though a BPE
//! tokenizer needs two passes over the corpus (one to learn merges, one to encode), without
//! holding the corpus in memory.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// Which split a document belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocSplit {
    /// Training split.
    Train,
    /// Validation split.
    Val,
    /// Concatenated with the other `Auto` documents and cut 90/10.
    Auto,
}

/// Where a document's text is in the spill file.
#[derive(Clone, Copy, Debug)]
pub struct DocMeta {
    offset: u64,
    len: u64,
    /// The document's split.
    pub split: DocSplit,
}

/// Largest piece of text handed to a tokenizer at once (at a line break where there is one).
pub const CHUNK_BYTES: usize = 1 << 16;

/// Writes documents to the spill file: whole ([`push`](SpillWriter::push)) or in pieces
/// ([`append`](SpillWriter::append) then [`commit`](SpillWriter::commit)). A source streamed
/// before it is known to be usable starts with [`begin_source`](SpillWriter::begin_source);
/// if it turns out unusable, [`discard`](SpillWriter::discard) drops every document and piece
/// written since.
pub struct SpillWriter {
    out: BufWriter<File>,
    path: PathBuf,
    docs: Vec<DocMeta>,
    /// End of the committed documents.
    offset: u64,
    /// Bytes appended after `offset` for a document not yet committed.
    pending: u64,
    /// Documents and end offset when the current source began: what `discard` goes back to.
    mark: (usize, u64),
}

impl SpillWriter {
    /// Creates the spill file.
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| DataError::io(path, "creating", e))?;
        Ok(SpillWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            path: path.into(),
            docs: Vec::new(),
            offset: 0,
            pending: 0,
            mark: (0, 0),
        })
    }

    /// Appends one whole document.
    pub fn push(&mut self, text: &str, split: DocSplit) -> Result<()> {
        self.append(text)?;
        self.commit(split);
        Ok(())
    }

    /// Appends `text` to the document being written.
    pub fn append(&mut self, text: &str) -> Result<()> {
        self.out
            .write_all(text.as_bytes())
            .map_err(|e| DataError::io(&self.path, "writing", e))?;
        self.pending += text.len() as u64;
        Ok(())
    }

    /// Ends the document being written: what was appended since the last commit or discard.
    pub fn commit(&mut self, split: DocSplit) {
        self.docs.push(DocMeta {
            offset: self.offset,
            len: self.pending,
            split,
        });
        self.offset += self.pending;
        self.pending = 0;
    }

    /// Starts a source: a later [`discard`](Self::discard) drops what is written from here on.
    /// A document not yet committed is dropped.
    pub fn begin_source(&mut self) -> Result<()> {
        self.cut_back(self.docs.len(), self.offset)?;
        self.mark = (self.docs.len(), self.offset);
        Ok(())
    }

    /// Drops the documents and pieces written since [`begin_source`](Self::begin_source) (a
    /// source found unusable after part of it was written): the file is cut back to where the
    /// source began.
    pub fn discard(&mut self) -> Result<()> {
        let (docs, offset) = self.mark;
        self.cut_back(docs, offset)
    }

    /// Keeps the first `docs` documents and cuts the file back to `offset`, their end.
    fn cut_back(&mut self, docs: usize, offset: u64) -> Result<()> {
        if self.offset + self.pending == offset {
            return Ok(());
        }
        let io = |e| DataError::io(&self.path, "truncating", e);
        self.out.flush().map_err(io)?;
        let file = self.out.get_mut();
        file.set_len(offset).map_err(io)?;
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        self.docs.truncate(docs);
        self.offset = offset;
        self.pending = 0;
        Ok(())
    }

    /// Number of documents written.
    pub fn documents(&self) -> usize {
        self.docs.len()
    }

    /// Flushes and reopens the file for reading (a document not committed is dropped).
    pub fn finish(mut self) -> Result<Spill> {
        self.cut_back(self.docs.len(), self.offset)?;
        self.out
            .flush()
            .map_err(|e| DataError::io(&self.path, "writing", e))?;
        let file = File::open(&self.path).map_err(|e| DataError::io(&self.path, "opening", e))?;
        Ok(Spill {
            file,
            path: self.path,
            docs: self.docs,
        })
    }
}

/// A finished spill file, read back document by document in chunks.
pub struct Spill {
    file: File,
    path: PathBuf,
    docs: Vec<DocMeta>,
}

impl Spill {
    /// The documents, in the order they were written.
    pub fn docs(&self) -> &[DocMeta] {
        &self.docs
    }

    /// Calls `f` on consecutive pieces of document `doc`'s text, each at most about
    /// [`CHUNK_BYTES`] long and cut after a line break when the piece has one (else at a
    /// character boundary), so that concatenating the pieces gives the document back.
    pub fn for_each_chunk(
        &mut self,
        doc: DocMeta,
        mut f: impl FnMut(&str) -> Result<()>,
    ) -> Result<()> {
        let mut chunks = Chunks::new(self, doc);
        while let Some(text) = chunks.next_chunk()? {
            f(&text)?;
        }
        Ok(())
    }

    /// Every document's text in chunks, as an iterator (what a BPE trainer consumes). A read
    /// error ends the iteration early and is returned by [`AllChunks::finish`].
    pub fn all_chunks(&mut self) -> AllChunks<'_> {
        AllChunks {
            spill: self,
            doc: 0,
            current: None,
            error: None,
            stride: 1,
            index: 0,
        }
    }

    /// Like [`all_chunks`](Self::all_chunks) but yields only every `k`-th chunk, with `k` chosen
    /// so that about `max_bytes` of text come out, spread over the whole corpus.
    pub fn sampled_chunks(&mut self, max_bytes: u64) -> AllChunks<'_> {
        let total = self.total_bytes();
        let stride = total.div_ceil(max_bytes.max(1)).max(1) as usize;
        AllChunks {
            spill: self,
            doc: 0,
            current: None,
            error: None,
            stride,
            index: 0,
        }
    }

    /// Bytes of text in all documents.
    pub fn total_bytes(&self) -> u64 {
        self.docs.iter().map(|d| d.len).sum()
    }
}

/// The chunks of one document.
struct Chunks<'a> {
    spill: &'a mut Spill,
    remaining: usize,
    buf: Vec<u8>,
    started: bool,
    offset: u64,
}

impl<'a> Chunks<'a> {
    fn new(spill: &'a mut Spill, doc: DocMeta) -> Self {
        Chunks {
            spill,
            remaining: doc.len as usize,
            buf: Vec::new(),
            started: false,
            offset: doc.offset,
        }
    }

    fn next_chunk(&mut self) -> Result<Option<String>> {
        let path = self.spill.path.clone();
        let r = |e| DataError::io(&path, "reading", e);
        if !self.started {
            self.spill
                .file
                .seek(SeekFrom::Start(self.offset))
                .map_err(r)?;
            self.started = true;
        }
        while self.remaining > 0 || !self.buf.is_empty() {
            let want = CHUNK_BYTES.min(self.remaining);
            let start = self.buf.len();
            self.buf.resize(start + want, 0);
            self.spill
                .file
                .read_exact(&mut self.buf[start..])
                .map_err(r)?;
            self.remaining -= want;
            let cut = if self.remaining == 0 {
                self.buf.len()
            } else {
                cut_point(&self.buf)
            };
            if cut == 0 {
                continue; // no line break or char boundary yet: read more
            }
            let rest = self.buf.split_off(cut);
            let piece = std::mem::replace(&mut self.buf, rest);
            let text = String::from_utf8(piece)
                .map_err(|e| DataError::Corpus(format!("spill file is corrupt: {e}")))?;
            return Ok(Some(text));
        }
        Ok(None)
    }
}

/// Iterator over the chunks of every document of a spill, in order.
pub struct AllChunks<'a> {
    spill: &'a mut Spill,
    doc: usize,
    current: Option<(u64, usize, Vec<u8>)>,
    error: Option<DataError>,
    /// Yield every `stride`-th chunk.
    stride: usize,
    /// Chunks produced so far (yielded or not).
    index: usize,
}

impl AllChunks<'_> {
    /// The read error that ended the iteration, if any.
    pub fn finish(self) -> Result<()> {
        self.error.map_or(Ok(()), Err)
    }
}

impl Iterator for AllChunks<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        loop {
            if self.error.is_some() {
                return None;
            }
            let (offset, remaining, buf) = match self.current.take() {
                Some(state) => state,
                None => {
                    let doc = *self.spill.docs.get(self.doc)?;
                    self.doc += 1;
                    (doc.offset, doc.len as usize, Vec::new())
                }
            };
            let doc = DocMeta {
                offset,
                len: remaining as u64,
                split: DocSplit::Auto,
            };
            let mut chunks = Chunks::new(self.spill, doc);
            chunks.buf = buf;
            match chunks.next_chunk() {
                Ok(Some(text)) => {
                    let consumed = doc.len as usize - chunks.remaining;
                    let next_offset = offset + consumed as u64;
                    if chunks.remaining > 0 || !chunks.buf.is_empty() {
                        self.current = Some((
                            next_offset,
                            chunks.remaining,
                            std::mem::take(&mut chunks.buf),
                        ));
                    }
                    self.index += 1;
                    if (self.index - 1).is_multiple_of(self.stride) {
                        return Some(text);
                    }
                }
                Ok(None) => continue,
                Err(e) => {
                    self.error = Some(e);
                    return None;
                }
            }
        }
    }
}

/// Where to cut `buf`: after its last `\n`, else at its last character boundary.
fn cut_point(buf: &[u8]) -> usize {
    if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
        return i + 1;
    }
    // Back up over UTF-8 continuation bytes (0b10xx_xxxx) to a character start.
    let mut i = buf.len();
    while i > 0 && (buf[i - 1] & 0xC0) == 0x80 {
        i -= 1;
    }
    // `i - 1` is now a leading byte; cut before it unless its sequence is complete.
    if i > 0 {
        let lead = buf[i - 1];
        let need = if lead < 0x80 {
            1
        } else if lead >= 0xF0 {
            4
        } else if lead >= 0xE0 {
            3
        } else {
            2
        };
        if buf.len() - (i - 1) < need {
            return i - 1;
        }
    }
    buf.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discarded_source_leaves_no_bytes_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SpillWriter::create(&dir.path().join("spill")).unwrap();
        w.push("first\n", DocSplit::Auto).unwrap();
        // A source of one document, dropped while in pieces.
        w.begin_source().unwrap();
        w.append("dropped ").unwrap();
        w.append("x".repeat(3 << 20).as_str()).unwrap(); // past the write buffer
        w.discard().unwrap();
        // A source of several documents, dropped after they were committed.
        w.begin_source().unwrap();
        w.push("dropped too", DocSplit::Train).unwrap();
        w.push(&"y".repeat(2 << 20), DocSplit::Val).unwrap();
        w.append("and a piece").unwrap();
        w.discard().unwrap();
        assert_eq!(w.documents(), 1);
        w.begin_source().unwrap();
        w.append("sec").unwrap();
        w.append("ond").unwrap();
        w.commit(DocSplit::Val);
        w.append("never committed").unwrap();
        let mut spill = w.finish().unwrap();
        assert_eq!(spill.docs().len(), 2);
        assert_eq!(spill.docs()[1].split, DocSplit::Val);
        let text: String = spill.all_chunks().collect();
        assert_eq!(text, "first\nsecond");
        let on_disk = std::fs::metadata(dir.path().join("spill")).unwrap().len();
        assert_eq!(on_disk, text.len() as u64);
    }

    #[test]
    fn chunks_reassemble_documents() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SpillWriter::create(&dir.path().join("spill")).unwrap();
        let long_lines = "a line of text é\n".repeat(10_000);
        let no_newline = "ü".repeat(100_000);
        w.push("short", DocSplit::Train).unwrap();
        w.push(&long_lines, DocSplit::Val).unwrap();
        w.push(&no_newline, DocSplit::Auto).unwrap();
        let mut spill = w.finish().unwrap();
        let docs = spill.docs().to_vec();
        for (doc, want) in docs
            .into_iter()
            .zip(["short", long_lines.as_str(), no_newline.as_str()])
        {
            let mut got = String::new();
            let mut pieces = 0;
            spill
                .for_each_chunk(doc, |t| {
                    assert!(t.len() <= 2 * CHUNK_BYTES);
                    got.push_str(t);
                    pieces += 1;
                    Ok(())
                })
                .unwrap();
            assert_eq!(got, want);
            assert!(pieces >= want.len() / (2 * CHUNK_BYTES));
        }
        let mut all = spill.all_chunks();
        let joined: String = all.by_ref().collect();
        all.finish().unwrap();
        assert_eq!(joined, format!("short{long_lines}{no_newline}"));
        let total = spill.total_bytes();
        let sampled: usize = spill.sampled_chunks(total / 4).map(|c| c.len()).sum();
        assert!(
            sampled as u64 <= total / 4 + 2 * CHUNK_BYTES as u64 && sampled > 0,
            "{sampled} of {total}"
        );
    }
}
