//! Step 1 of a preparation: every input read once, as a stream, into the spill file as
//! documents, with a tally of what was read and what was skipped and why.
//!
//! A text file becomes one document, streamed in pieces; a SQuAD file becomes one document
//! per paragraph, parsed one article at a time. Either may turn out unusable only part-way
//! (a byte that is not UTF-8, a duplicate known at the end): what it wrote is then cut back
//! out of the spill file and its characters never reach the tally. A registered dataset file
//! is verified against its checksum in the same read, and any problem with it is an error
//! rather than a skip.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::checksum::Expected;
use crate::error::{DataError, Result};
use crate::jsonl::{self, JsonlStats};
use crate::registry::Format;
use crate::source::{Checked, SkipReason, SourceReader};
use crate::spill::{DocSplit, SpillWriter};
use crate::squad::{self, SquadStats};
use crate::summary::{InputFile, SkippedFile};
use crate::walk::{Candidate, Walk};

/// One file of a registered dataset.
pub(crate) struct PlannedInput {
    pub candidate: Candidate,
    pub split: DocSplit,
    pub expected: Option<Expected>,
}

/// What a preparation reads.
pub(crate) enum Inputs {
    /// Named dataset files: must exist and be valid; any problem is an error.
    Files(Vec<PlannedInput>),
    /// A walked path: problems with single files are skips.
    Walk(Walk),
    /// In-memory texts.
    Texts(Vec<(String, String)>),
}

/// What reading found.
#[derive(Default)]
pub(crate) struct Tally {
    pub files_seen: u64,
    pub files_loaded: u64,
    pub bytes_loaded: u64,
    pub skipped: BTreeMap<SkipReason, u64>,
    /// The first 20 skipped files.
    pub examples: Vec<SkippedFile>,
    pub inputs: Vec<InputFile>,
    pub squad: Option<SquadStats>,
    pub jsonl: Option<JsonlStats>,
    /// Characters of the accepted documents, for a char tokenizer.
    pub chars: CharSet,
}

impl Tally {
    fn skip(&mut self, path: PathBuf, reason: SkipReason) {
        *self.skipped.entry(reason).or_default() += 1;
        if self.examples.len() < 20 {
            self.examples.push(SkippedFile { path, reason });
        }
    }

    /// Records a source file whose text became documents.
    fn loaded(&mut self, path: String, bytes: u64, sha256: String) {
        self.files_loaded += 1;
        self.bytes_loaded += bytes;
        self.inputs.push(InputFile {
            path,
            bytes,
            sha256,
        });
    }
}

/// A set of characters: ASCII in a table, the rest in a sorted set.
pub(crate) struct CharSet {
    ascii: [bool; 128],
    other: BTreeSet<char>,
}

impl Default for CharSet {
    fn default() -> Self {
        CharSet {
            ascii: [false; 128],
            other: BTreeSet::new(),
        }
    }
}

impl CharSet {
    pub fn see(&mut self, text: &str) {
        for c in text.chars() {
            match self.ascii.get_mut(c as usize) {
                Some(seen) => *seen = true,
                None => {
                    self.other.insert(c);
                }
            }
        }
    }

    fn merge(&mut self, other: &CharSet) {
        for (mine, theirs) in self.ascii.iter_mut().zip(other.ascii) {
            *mine |= theirs;
        }
        self.other.extend(other.other.iter().copied());
    }

    /// The characters in order.
    pub fn iter(&self) -> impl Iterator<Item = char> + '_ {
        let ascii = (0u8..128)
            .filter(|&b| self.ascii[b as usize])
            .map(char::from);
        ascii.chain(self.other.iter().copied())
    }
}

/// Reads inputs into a spill file.
pub(crate) struct Reading<'a> {
    pub reader: &'a mut SourceReader,
    pub spill: &'a mut SpillWriter,
    pub format: Format,
    /// The field of a JSON Lines record that holds its text.
    pub text_field: &'a str,
    /// Whether to collect the documents' characters (for a char tokenizer).
    pub want_chars: bool,
    /// Files of a walk larger than this are skipped.
    pub max_bytes: u64,
}

impl Reading<'_> {
    /// Reads every input once; accepted documents go to the spill file.
    ///
    /// # Errors
    /// A problem with a registered dataset file, a SQuAD file that is text but not SQuAD
    /// JSON, or a spill write error.
    pub fn read(mut self, inputs: &Inputs, progress: &mut dyn FnMut(&str)) -> Result<Tally> {
        let mut tally = Tally::default();
        match inputs {
            Inputs::Files(files) => {
                for f in files {
                    progress(&format!("reading {}", f.candidate.path.display()));
                    tally.files_seen += 1;
                    self.dataset_file(&mut tally, f, progress)?;
                }
            }
            Inputs::Walk(w) => {
                for (path, reason) in &w.skipped {
                    tally.files_seen += 1;
                    tally.skip(path.clone(), *reason);
                }
                let n = w.candidates.len();
                for (i, c) in w.candidates.iter().enumerate() {
                    if i % 256 == 0 {
                        progress(&format!("reading files: {i}/{n}"));
                    }
                    tally.files_seen += 1;
                    let read = match self.reader.open(&c.path, c.bytes, self.max_bytes) {
                        Ok(mut checked) => {
                            let to = (&mut tally, DocSplit::Auto);
                            self.source(to, &c.path, &mut checked, progress)?
                        }
                        Err(reason) => Err(reason),
                    };
                    if let Err(reason) = read {
                        tally.skip(c.path.clone(), reason);
                    }
                }
            }
            Inputs::Texts(texts) => {
                for (name, text) in texts {
                    tally.files_seen += 1;
                    match self.reader.accept(text.clone().into_bytes()) {
                        Ok(loaded) => {
                            tally.loaded(format!("builtin:{name}"), loaded.bytes, loaded.sha256);
                            if self.want_chars {
                                tally.chars.see(&loaded.text);
                            }
                            self.spill.push(&loaded.text, DocSplit::Auto)?;
                        }
                        Err(reason) => {
                            tally.skip(PathBuf::from(format!("builtin:{name}")), reason);
                        }
                    }
                }
            }
        }
        Ok(tally)
    }

    /// Reads one source through `checked` into the spill file as documents of `split`, and
    /// counts it in `tally` only if the whole source is usable; if not, its documents are cut
    /// back out of the spill file and the reason is returned.
    ///
    /// # Errors
    /// A SQuAD file that is usable text but not SQuAD JSON, or a spill write error.
    fn source<R: Read>(
        &mut self,
        (tally, split): (&mut Tally, DocSplit),
        path: &Path,
        checked: &mut Checked<R>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<std::result::Result<(), SkipReason>> {
        let (spill, want_chars) = (&mut *self.spill, self.want_chars);
        spill.begin_source()?;
        let mut chars = CharSet::default();
        let verdict = match self.format {
            Format::Text => {
                let mut read = 0u64;
                let total = checked.size_hint();
                checked.pieces(&mut |text| {
                    if want_chars {
                        chars.see(text);
                    }
                    // A large file says how far it is, every 256 MiB.
                    let before = read >> 28;
                    read += text.len() as u64;
                    if read >> 28 > before {
                        progress(&format!(
                            "reading {}: {} of {} MB",
                            path.display(),
                            read / 1_000_000,
                            total / 1_000_000
                        ));
                    }
                    spill.append(text)
                })?;
                let verdict = self.reader.conclude(checked);
                if verdict.is_ok() {
                    spill.commit(split);
                }
                verdict
            }
            Format::SquadV1 | Format::Jsonl => {
                let mut emit = |doc: &str| {
                    if want_chars {
                        chars.see(doc);
                    }
                    let documents = spill.documents() + 1;
                    if documents % (1 << 16) == 0 {
                        progress(&format!(
                            "reading {}: {documents} documents so far",
                            path.display()
                        ));
                    }
                    spill.push(doc, split)
                };
                let parsed = if self.format == Format::Jsonl {
                    jsonl::read_documents(path, &mut *checked, self.text_field, &mut emit)
                        .map(Parsed::Jsonl)
                } else {
                    squad::read_documents(path, &mut *checked, &mut emit).map(Parsed::Squad)
                };
                match (parsed, self.reader.conclude(checked)) {
                    (Ok(parsed), verdict) => {
                        if verdict.is_ok() {
                            parsed.count(tally);
                        }
                        verdict
                    }
                    // Not text (binary, not UTF-8, blank): a skip, whatever the parser made of it.
                    (Err(_), Err(reason)) if reason != SkipReason::Duplicate => Err(reason),
                    (Err(e), _) => return Err(e),
                }
            }
        };
        match verdict {
            Ok(file) => {
                tally.chars.merge(&chars);
                tally.loaded(path.display().to_string(), file.bytes, file.sha256);
                Ok(Ok(()))
            }
            Err(reason) => {
                spill.discard()?;
                Ok(Err(reason))
            }
        }
    }

    /// Reads one file of a registered dataset: like a walk's file, but verified against the
    /// registry's checksum in the same read, and a file that cannot be used is an error.
    fn dataset_file(
        &mut self,
        tally: &mut Tally,
        f: &PlannedInput,
        progress: &mut dyn FnMut(&str),
    ) -> Result<()> {
        let path = &f.candidate.path;
        let file = fs::File::open(path).map_err(|e| DataError::io(path, "reading", e))?;
        let len = file
            .metadata()
            .map_err(|e| DataError::io(path, "reading", e))?
            .len();
        self.reader.counts.files_opened += 1;
        let Some(expected) = f.expected.clone() else {
            let mut checked = Checked::new(file, len, u64::MAX);
            let read = self.source((tally, f.split), path, &mut checked, progress)?;
            return read.map_err(|reason| unusable_dataset_file(path, reason));
        };
        let mut checked = Checked::new(expected.reader(file, len), len, u64::MAX);
        let read = self.source((tally, f.split), path, &mut checked, progress);
        // A file that is not the published one says so first, whatever else is wrong with it.
        let verified = checked
            .into_inner()
            .finish()
            .map_err(|e| DataError::io(path, "reading", e))?;
        verified.map_err(|(kind, actual, expected)| DataError::Checksum {
            path: path.clone(),
            kind,
            actual,
            expected,
        })?;
        read?.map_err(|reason| unusable_dataset_file(path, reason))
    }
}

/// What parsing a structured file counted.
enum Parsed {
    Squad(SquadStats),
    Jsonl(JsonlStats),
}

impl Parsed {
    fn count(self, tally: &mut Tally) {
        match self {
            Parsed::Squad(s) => tally.squad.get_or_insert_with(SquadStats::default).add(s),
            Parsed::Jsonl(s) => tally.jsonl.get_or_insert_with(JsonlStats::default).add(s),
        }
    }
}

fn unusable_dataset_file(path: &Path, reason: SkipReason) -> DataError {
    DataError::Corpus(format!(
        "{}: cannot use this dataset file: {reason}",
        path.display()
    ))
}
