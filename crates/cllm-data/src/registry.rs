//! The dataset registry: one TOML file per named dataset under the workspace's `datasets/`
//! directory, compiled into the binary so an installed tool needs no checkout.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::checksum::Expected;
use crate::error::{DataError, Result};

use crate::tokenizer::TokenizerKind;

/// The registry files, by file name. Adding a dataset means adding its TOML here.
const REGISTRY: &[(&str, &str)] = &[
    (
        "shakespeare.toml",
        include_str!("../../../datasets/shakespeare.toml"),
    ),
    ("squad.toml", include_str!("../../../datasets/squad.toml")),
];

/// How a dataset's files are turned into documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Plain UTF-8 text; one file is one document.
    Text,
    /// SQuAD v1 JSON; one paragraph is one document.
    SquadV1,
    /// JSON Lines; each line's `text` field is one document.
    Jsonl,
}

impl Format {
    /// Whether `path` is named as this format's files are: `*.json` for SQuAD, `*.jsonl` or
    /// `*.ndjson` for JSON Lines, anything for text (in a directory, other files are skipped).
    pub fn names(self, path: &Path) -> bool {
        let extensions: &[&str] = match self {
            Format::Text => return true,
            Format::SquadV1 => &["json"],
            Format::Jsonl => &["jsonl", "ndjson"],
        };
        path.extension()
            .is_some_and(|x| extensions.iter().any(|e| x.eq_ignore_ascii_case(e)))
    }

    /// The format of a corpus file given without one: JSON Lines if it is named so, else
    /// text. (A `*.json` file may hold anything, so SQuAD is never guessed.)
    pub fn of_file(path: &Path) -> Format {
        if Format::Jsonl.names(path) {
            Format::Jsonl
        } else {
            Format::Text
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Format::Text),
            "squad" | "squad-v1" => Ok(Format::SquadV1),
            "jsonl" | "json-lines" | "ndjson" => Ok(Format::Jsonl),
            _ => Err(format!(
                "unknown format `{s}` (expected text, squad-v1 or jsonl)"
            )),
        }
    }
}

/// One file of a dataset.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Short id used by variants.
    pub id: String,
    /// Path relative to the data directory (the layout of `../shared/datasets`).
    pub path: String,
    /// Official download URL.
    pub url: String,
    /// sha256 of the file, if published.
    pub sha256: Option<String>,
    /// git blob id of the file, if that is what is published.
    pub git_blob: Option<String>,
}

impl FileSpec {
    /// The checksum to verify the file against.
    pub fn expected(&self) -> Option<Expected> {
        match (&self.sha256, &self.git_blob) {
            (Some(s), _) => Some(Expected::Sha256(s.clone())),
            (None, Some(b)) => Some(Expected::GitBlob(b.clone())),
            (None, None) => None,
        }
    }
}

/// Which files feed which split.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Files concatenated and cut: first 90% train, last 10% validation.
    #[serde(default)]
    pub split: Vec<String>,
    /// Files used whole for training.
    #[serde(default)]
    pub train: Vec<String>,
    /// Files used whole for validation.
    #[serde(default)]
    pub val: Vec<String>,
}

/// A named dataset as the registry describes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// The name users type.
    pub name: String,
    /// One line about it.
    pub description: String,
    /// How its files become documents.
    pub format: Format,
    /// Default tokenizer.
    pub tokenizer: TokenizerKind,
    /// Default vocabulary size for trained tokenizers.
    pub vocab_size: Option<usize>,
    /// Its files.
    pub files: Vec<FileSpec>,
    /// `default` and named variants (`NAME/VARIANT`).
    pub variants: BTreeMap<String, Variant>,
}

impl DatasetSpec {
    /// The file with id `id`.
    pub fn file(&self, id: &str) -> Option<&FileSpec> {
        self.files.iter().find(|f| f.id == id)
    }

    /// What a user types for variant `variant`: `name` for `default`, else `name/variant`.
    pub fn variant_name(&self, variant: &str) -> String {
        if variant == "default" {
            self.name.clone()
        } else {
            format!("{}/{variant}", self.name)
        }
    }

    /// What a user types for each variant, in the registry's order.
    pub fn variant_names(&self) -> impl Iterator<Item = String> + '_ {
        self.variants.keys().map(|v| self.variant_name(v))
    }
}

/// A dataset name resolved against the registry: the spec and the chosen variant.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The dataset.
    pub spec: DatasetSpec,
    /// The variant's name (`default` when none was given).
    pub variant_name: String,
    /// The variant.
    pub variant: Variant,
}

impl Resolved {
    /// `name` or `name/variant`, as the user would type it.
    pub fn display_name(&self) -> String {
        self.spec.variant_name(&self.variant_name)
    }
}

/// Every dataset in the registry.
pub fn all() -> Result<Vec<DatasetSpec>> {
    REGISTRY
        .iter()
        .map(|(file, text)| parse(file, text))
        .collect()
}

fn parse(file: &str, text: &str) -> Result<DatasetSpec> {
    let spec: DatasetSpec = toml::from_str(text).map_err(|e| DataError::Registry {
        file: file.into(),
        message: e.to_string(),
    })?;
    for (vname, v) in &spec.variants {
        for id in v.split.iter().chain(&v.train).chain(&v.val) {
            if spec.file(id).is_none() {
                let message = format!("variant `{vname}` names unknown file id `{id}`");
                return Err(DataError::Registry {
                    file: file.into(),
                    message,
                });
            }
        }
        if v.split.is_empty() && (v.train.is_empty() || v.val.is_empty()) {
            let message = format!("variant `{vname}` needs `split`, or both `train` and `val`");
            return Err(DataError::Registry {
                file: file.into(),
                message,
            });
        }
    }
    Ok(spec)
}

/// Looks up `name` or `name/variant`; `None` if the name is not a registered dataset.
pub fn resolve(name: &str) -> Result<Option<Resolved>> {
    let (base, variant_name) = name.split_once('/').unwrap_or((name, "default"));
    let Some(spec) = all()?.into_iter().find(|s| s.name == base) else {
        return Ok(None);
    };
    let Some(variant) = spec.variants.get(variant_name).cloned() else {
        let known: Vec<String> = spec.variant_names().collect();
        return Err(DataError::UnknownDataset {
            name: name.to_string(),
            known: known.join(", "),
        });
    };
    Ok(Some(Resolved {
        spec,
        variant_name: variant_name.to_string(),
        variant,
    }))
}

/// Comma-separated names of all datasets and variants, for error messages and `--help`.
pub fn known_names() -> String {
    let mut names = Vec::new();
    for spec in all().unwrap_or_default() {
        names.extend(spec.variant_names());
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_parses_and_resolves() {
        let all = all().unwrap();
        assert!(all.iter().any(|s| s.name == "shakespeare"));
        let r = resolve("squad/dev").unwrap().unwrap();
        assert_eq!(r.variant.split, vec!["dev".to_string()]);
        assert_eq!(r.display_name(), "squad/dev");
        let r = resolve("squad").unwrap().unwrap();
        assert_eq!((r.variant.train.len(), r.variant.val.len()), (1, 1));
        assert!(resolve("nope").unwrap().is_none());
        let err = resolve("squad/nope").unwrap_err().to_string();
        assert!(err.contains("squad/dev"), "{err}");
        assert!(known_names().contains("shakespeare"));
    }

    #[test]
    fn bad_variant_is_reported() {
        let text = r#"
            name = "x"
            description = "d"
            format = "text"
            tokenizer = "char"
            [[files]]
            id = "a"
            path = "a.txt"
            url = "https://example.invalid/a.txt"
            [variants.default]
            split = ["b"]
        "#;
        let err = parse("x.toml", text).unwrap_err().to_string();
        assert!(err.contains("unknown file id `b`"), "{err}");
    }
}
