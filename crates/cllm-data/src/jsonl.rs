//! JSON Lines to documents: one JSON object per line, whose `text` field is a document (the
//! layout of Hugging Face `datasets` exports and of many web-text dumps):
//!
//! ```text
//! {"text": "Once upon a time...", "id": 17}
//! {"text": "The second document.\nIt has two lines."}
//! ```
//!
//! The field may have another name (`content`, `story`: `--text-field`). Other fields are
//! ignored, and so are blank lines. A record whose text is empty or only whitespace gives no
//! document (it is counted). A line that is not an object with that string field is an error
//! naming its line and column.

use std::borrow::Cow;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::source::skip_json_bom;

/// The field read when none is named.
pub const DEFAULT_FIELD: &str = "text";

/// One line's record, of which only the string field `.0` is read.
struct Record<'f>(&'f str);

impl<'de> DeserializeSeed<'de> for Record<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<String, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Record<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a JSON object with a string `{}` field", self.0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<String, A::Error> {
        let mut text = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key != self.0 {
                map.next_value::<IgnoredAny>()?;
            } else if text.is_some() {
                return Err(de::Error::custom(format_args!(
                    "duplicate field `{}`",
                    self.0
                )));
            } else {
                text = Some(map.next_value::<String>()?);
            }
        }
        text.ok_or_else(|| de::Error::custom(format_args!("missing field `{}`", self.0)))
    }
}

/// Counts of a JSON Lines file's contents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonlStats {
    /// Records (non-blank lines).
    pub records: u64,
    /// Records whose text was empty or whitespace, which gave no document.
    pub empty: u64,
}

impl JsonlStats {
    /// Adds another file's counts.
    pub fn add(&mut self, o: JsonlStats) {
        self.records += o.records;
        self.empty += o.empty;
    }
}

/// Reads JSON Lines from `input` (`path` names it in errors) and calls `emit` with each
/// record's `field` ([`DEFAULT_FIELD`] unless the data names it otherwise), line by line:
/// what is held is one line.
///
/// # Errors
/// A line that is not a JSON object with a string `field` (with its line and column), a read
/// error of `input` (with the line reached), or the first error `emit` returns.
pub fn read_documents(
    path: &Path,
    input: impl Read,
    field: &str,
    mut emit: impl FnMut(&str) -> Result<()>,
) -> Result<JsonlStats> {
    let mut input = BufReader::with_capacity(1 << 16, input);
    skip_json_bom(&mut input).map_err(|e| DataError::io(path, "reading", e))?;
    let mut stats = JsonlStats::default();
    let mut line = String::new();
    for number in 1.. {
        line.clear();
        let n = input.read_line(&mut line).map_err(|e| DataError::Json {
            path: path.into(),
            line: number,
            column: 1,
            message: e.to_string(),
        })?;
        if n == 0 {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut de = serde_json::Deserializer::from_str(&line);
        let text = Record(field)
            .deserialize(&mut de)
            .and_then(|text| de.end().map(|()| text))
            .map_err(|e| {
                let mut err = DataError::json(path, &e);
                if let DataError::Json { line, .. } = &mut err {
                    *line = number; // each line is parsed alone, as its first line
                }
                err
            })?;
        stats.records += 1;
        if text.trim().is_empty() {
            stats.empty += 1;
        } else {
            emit(&text)?;
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn documents(text: &str) -> Result<(Vec<String>, JsonlStats)> {
        let mut docs = Vec::new();
        let stats = read_documents(Path::new("d.jsonl"), text.as_bytes(), "text", |d| {
            docs.push(d.to_string());
            Ok(())
        })?;
        Ok((docs, stats))
    }

    #[test]
    fn records_become_documents() {
        let (docs, stats) = documents(
            "{\"text\": \"first\\nline two\", \"id\": 1, \"meta\": {\"a\": [1]}}\n\
             \n   \n\
             {\"id\": 2, \"text\": \"  \"}\n\
             {\"text\": \"é ✓\"}",
        )
        .unwrap();
        assert_eq!(docs, ["first\nline two", "é ✓"]);
        assert_eq!(
            stats,
            JsonlStats {
                records: 3,
                empty: 1
            }
        );
        // Windows line ends are whitespace around the object, and a byte-order mark is skipped.
        let (docs, _) = documents("\u{feff}{\"text\": \"a\"}\r\n{\"text\": \"b\"}\r\n").unwrap();
        assert_eq!(docs, ["a", "b"]);
    }

    #[test]
    fn the_text_may_be_in_another_field() {
        let mut docs = Vec::new();
        let line = r#"{"text": "not this", "story": "but th\u0069s", "n": {"story": "x"}}"#;
        let stats = read_documents(Path::new("s.jsonl"), line.as_bytes(), "story", |d| {
            docs.push(d.to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            (docs.as_slice(), stats.records),
            (&["but this".to_string()][..], 1)
        );
        let err = read_documents(Path::new("s.jsonl"), line.as_bytes(), "body", |_| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `body`"), "{err}");
    }

    #[test]
    fn errors_name_file_line_and_column() {
        for (text, line, needle) in [
            (
                "{\"text\": \"a\"}\n\n{\"txt\": \"b\"}\n",
                3,
                "missing field `text`",
            ),
            ("{\"text\": \"a\"}\n{\"text\": 5}\n", 2, "expected a string"),
            (
                "{\"text\": \"a\"}\n{\"text\": \"a\"} x\n",
                2,
                "trailing characters",
            ),
            (
                "{\"text\": \"a\", \"text\": \"b\"}\n",
                1,
                "duplicate field `text`",
            ),
            ("[\"text\"]\n", 1, "expected a JSON object"),
            ("\"text\"\n", 1, "expected a JSON object"),
        ] {
            let err = documents(text).unwrap_err().to_string();
            assert!(err.starts_with(&format!("d.jsonl:{line}:")), "{err}");
            assert!(err.contains(needle), "{err}");
        }
    }
}
