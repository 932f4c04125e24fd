//! SQuAD v1 JSON to documents: one paragraph per document, in a plain layout a model can learn
//! to continue:
//!
//! ```text
//! Title: Super Bowl 50
//! Context: Super Bowl 50 was an American football game to determine ...
//! Question: Which NFL team represented the AFC at Super Bowl 50?
//! Answer: Denver Broncos
//! Question: ...
//! ```
//!
//! Only the first answer of each question is used. Unknown fields (`answer_start`, ids,
//! SQuAD 2's `is_impossible`) are ignored; a missing required field is a schema error with its
//! line and column.

use std::fmt::{self, Write};
use std::io::{BufReader, Read};
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::source::skip_json_bom;

#[derive(Deserialize)]
struct Article {
    title: String,
    paragraphs: Vec<Paragraph>,
}

#[derive(Deserialize)]
struct Paragraph {
    context: String,
    qas: Vec<Qa>,
}

#[derive(Deserialize)]
struct Qa {
    question: String,
    answers: Vec<Answer>,
}

#[derive(Deserialize)]
struct Answer {
    text: String,
}

/// Counts of a SQuAD file's contents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SquadStats {
    /// Articles (Wikipedia pages).
    pub articles: u64,
    /// Paragraphs (= documents).
    pub paragraphs: u64,
    /// Questions.
    pub questions: u64,
}

impl SquadStats {
    /// Adds another file's counts.
    pub fn add(&mut self, o: SquadStats) {
        self.articles += o.articles;
        self.paragraphs += o.paragraphs;
        self.questions += o.questions;
    }
}

/// Reads SQuAD JSON from `input` (`path` names it in errors) and calls `emit` with each
/// paragraph's document. The file is parsed as it is read, one article at a time, so its size
/// does not matter: what is held is one article (tens of KB) and a read buffer.
///
/// # Errors
/// A syntax or schema error (with its line and column), a read error of `input` (as a JSON
/// error at the position reached), or the first error `emit` returns, which ends the read.
pub fn read_documents(
    path: &Path,
    input: impl Read,
    mut emit: impl FnMut(&str) -> Result<()>,
) -> Result<SquadStats> {
    let mut stats = SquadStats::default();
    let mut failed = None;
    let mut input = BufReader::with_capacity(1 << 16, input);
    skip_json_bom(&mut input).map_err(|e| DataError::io(path, "reading", e))?;
    let mut de = serde_json::Deserializer::from_reader(input);
    let parsed = Articles {
        emit: &mut emit,
        stats: &mut stats,
        failed: &mut failed,
        doc: String::new(),
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Some(e) = failed {
        return Err(e);
    }
    parsed.map_err(|e| DataError::json(path, &e))?;
    Ok(stats)
}

/// The file's `data` list, read element by element (the top-level object's other fields, such
/// as `version`, are skipped).
struct Articles<'a, F> {
    emit: &'a mut F,
    stats: &'a mut SquadStats,
    /// `emit`'s error, which the parser only sees as "stopped".
    failed: &'a mut Option<DataError>,
    /// The document being written, reused.
    doc: String,
}

impl<F: FnMut(&str) -> Result<()>> Articles<'_, F> {
    /// Emits `article`'s paragraphs as documents.
    fn article(&mut self, article: &Article) -> Result<()> {
        self.stats.articles += 1;
        let title = article.title.replace('_', " ");
        let doc = &mut self.doc;
        for p in &article.paragraphs {
            self.stats.paragraphs += 1;
            doc.clear();
            let _ = writeln!(doc, "Title: {title}");
            let _ = writeln!(doc, "Context: {}", p.context.trim());
            for qa in &p.qas {
                self.stats.questions += 1;
                let answer = qa.answers.first().map_or("", |a| a.text.trim());
                let _ = writeln!(doc, "Question: {}", qa.question.trim());
                let _ = writeln!(doc, "Answer: {answer}");
            }
            (self.emit)(doc)?;
        }
        Ok(())
    }
}

impl<'de, F: FnMut(&str) -> Result<()>> DeserializeSeed<'de> for Articles<'_, F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: FnMut(&str) -> Result<()>> Visitor<'de> for Articles<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a SQuAD file: an object with a `data` list of articles")
    }

    /// The top-level object: finds `data` and reads it with [`visit_seq`](Self::visit_seq).
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            if key != "data" {
                map.next_value::<IgnoredAny>()?;
            } else if found {
                return Err(de::Error::duplicate_field("data"));
            } else {
                found = true;
                map.next_value_seed(DataList(&mut self))?;
            }
        }
        if !found {
            return Err(de::Error::missing_field("data"));
        }
        Ok(())
    }
}

/// `data`: a list of articles, each parsed whole and emitted before the next is read.
struct DataList<'s, 'a, F>(&'s mut Articles<'a, F>);

impl<'de, F: FnMut(&str) -> Result<()>> DeserializeSeed<'de> for DataList<'_, '_, F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(&str) -> Result<()>> Visitor<'de> for DataList<'_, '_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of articles")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while let Some(article) = seq.next_element::<Article>()? {
            if let Err(e) = self.0.article(&article) {
                *self.0.failed = Some(e);
                return Err(de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"version": "1.1", "data": [
        {"title": "Super_Bowl_50", "paragraphs": [
            {"context": "Denver won.", "qas": [
                {"id": "1", "question": "Who won?", "answers": [{"answer_start": 0, "text": "Denver"}, {"answer_start": 0, "text": "Denver Broncos"}]},
                {"id": "2", "question": "Who lost?", "answers": []}
            ]},
            {"context": "Second.", "qas": []}
        ]}
    ]}"#;

    #[test]
    fn layout_and_counts() {
        let mut docs = Vec::new();
        let with_bom = format!("\u{feff}{SAMPLE}");
        let stats = read_documents(Path::new("s.json"), with_bom.as_bytes(), |d| {
            docs.push(d.to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            stats,
            SquadStats {
                articles: 1,
                paragraphs: 2,
                questions: 2
            }
        );
        assert_eq!(
            docs[0],
            "Title: Super Bowl 50\nContext: Denver won.\nQuestion: Who won?\nAnswer: Denver\nQuestion: Who lost?\nAnswer: \n"
        );
    }

    /// Counts the bytes read through it.
    struct Counting<'a> {
        inner: &'a [u8],
        read: std::rc::Rc<std::cell::Cell<usize>>,
    }

    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read.set(self.read.get() + n);
            Ok(n)
        }
    }

    #[test]
    fn articles_are_emitted_as_the_file_is_read() {
        let article = r#"{"title": "T", "paragraphs": [{"context": "c", "qas": []}]}"#;
        let big = format!(
            r#"{{"data": [{}], "version": "1.1"}}"#,
            vec![article; 20_000].join(",")
        );
        assert!(big.len() > 1 << 20);
        let read = std::rc::Rc::new(std::cell::Cell::new(0));
        let input = Counting {
            inner: big.as_bytes(),
            read: read.clone(),
        };
        let mut read_at_first = None;
        let stats = read_documents(Path::new("big.json"), input, |_| {
            read_at_first.get_or_insert(read.get());
            Ok(())
        })
        .unwrap();
        assert_eq!(stats.paragraphs, 20_000);
        assert_eq!(read.get(), big.len(), "read to the end");
        let first = read_at_first.unwrap();
        assert!(
            first <= 1 << 17,
            "{first} bytes read before the first document"
        );
        // An error from `emit` ends the read there and is the one returned.
        let err = read_documents(Path::new("big.json"), big.as_bytes(), |_| {
            Err(DataError::Corpus("disk full".into()))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let err = read_documents(
            Path::new("bad.json"),
            "{\"data\": [\n  {\"title\": 3}]}".as_bytes(),
            |_| Ok(()),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("bad.json:2:"), "{msg}");
        assert!(msg.contains("expected a string"), "{msg}");
        let err = read_documents(
            Path::new("bad.json"),
            &b"{\"version\": \"1.1\"}"[..],
            |_| Ok(()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("missing field `data`"), "{err}");
        let err =
            read_documents(Path::new("bad.json"), &b"{\"data\": ["[..], |_| Ok(())).unwrap_err();
        assert!(err.to_string().starts_with("bad.json:1:"), "{err}");
    }
}
