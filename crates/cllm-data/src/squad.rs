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

use std::fmt::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

#[derive(Deserialize)]
struct SquadFile {
    data: Vec<Article>,
}

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

/// Parses SQuAD JSON `text` from `path` and calls `emit` with each paragraph's document.
pub fn documents(
    path: &Path,
    text: &str,
    mut emit: impl FnMut(&str) -> Result<()>,
) -> Result<SquadStats> {
    let file: SquadFile = serde_json::from_str(text).map_err(|e| DataError::json(path, &e))?;
    let mut stats = SquadStats::default();
    let mut doc = String::new();
    for article in &file.data {
        stats.articles += 1;
        let title = article.title.replace('_', " ");
        for p in &article.paragraphs {
            stats.paragraphs += 1;
            doc.clear();
            let _ = writeln!(doc, "Title: {title}");
            let _ = writeln!(doc, "Context: {}", p.context.trim());
            for qa in &p.qas {
                stats.questions += 1;
                let answer = qa.answers.first().map_or("", |a| a.text.trim());
                let _ = writeln!(doc, "Question: {}", qa.question.trim());
                let _ = writeln!(doc, "Answer: {answer}");
            }
            emit(&doc)?;
        }
    }
    Ok(stats)
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
        let stats = documents(Path::new("s.json"), SAMPLE, |d| {
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

    #[test]
    fn errors_name_file_line_and_column() {
        let err = documents(
            Path::new("bad.json"),
            "{\"data\": [\n  {\"title\": 3}]}",
            |_| Ok(()),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("bad.json:2:"), "{msg}");
        assert!(msg.contains("expected a string"), "{msg}");
        let err =
            documents(Path::new("bad.json"), "{\"version\": \"1.1\"}", |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("missing field `data`"), "{err}");
        let err = documents(Path::new("bad.json"), "{\"data\": [", |_| Ok(())).unwrap_err();
        assert!(err.to_string().starts_with("bad.json:1:"), "{err}");
    }
}
