//! The loader end to end, on fixtures written into temporary directories: dedup and skip
//! reasons, read-once accounting, reuse and invalidation, splits, tokenizers, and errors.

use std::fs;
use std::path::{Path, PathBuf};

use cllm_data::source::SkipReason;
use cllm_data::{
    DataDirs, Format, PrepareOptions, Prepared, Source, Split, TRAIN_FRACTION, TokenizerKind,
    prepare,
};

fn options(source: Source, cache: &Path) -> PrepareOptions {
    PrepareOptions {
        data_dirs: DataDirs::only(vec![cache.join("no-data-dir")]),
        cache_dir: cache.to_path_buf(),
        allow_download: false,
        ..PrepareOptions::new(source)
    }
}

fn run(opts: &PrepareOptions) -> cllm_data::Result<Prepared> {
    prepare(opts, &mut |_| {})
}

/// The one-line error of preparing `path` (which must fail), caching under `cache`.
fn path_error(path: impl Into<PathBuf>, cache: &Path) -> String {
    match run(&options(Source::Path(path.into()), cache)) {
        Ok(_) => panic!("preparing the path succeeded"),
        Err(e) => e.to_string(),
    }
}

fn all_tokens(p: &Prepared) -> Vec<u32> {
    let mut t = p.open(Split::Train).unwrap().read_all().unwrap();
    t.extend(p.open(Split::Val).unwrap().read_all().unwrap());
    t
}

/// A corpus directory with every kind of file the loader must handle.
fn messy_corpus(root: &Path) -> PathBuf {
    let c = root.join("corpus");
    fs::create_dir_all(c.join("nested/deeper")).unwrap();
    fs::create_dir_all(c.join(".git/objects")).unwrap();
    fs::create_dir_all(c.join(".hidden_dir")).unwrap();
    fs::write(c.join("a.txt"), "alpha file\nwith two lines\n").unwrap();
    fs::write(c.join("nested/b.md"), "bravo: a different file\n").unwrap();
    fs::write(
        c.join("nested/deeper/copy_of_a.txt"),
        "alpha file\nwith two lines\n",
    )
    .unwrap();
    fs::write(c.join("image.bin"), [0x89, b'P', b'N', b'G', 0, 0, 1, 2]).unwrap();
    fs::write(c.join("latin1.txt"), [b'c', b'a', b'f', 0xE9, b'\n']).unwrap();
    fs::write(c.join("empty.txt"), "").unwrap();
    fs::write(c.join("blank.txt"), "  \n\t\n").unwrap();
    fs::write(c.join("big.txt"), "x".repeat(5000)).unwrap();
    fs::write(c.join(".env"), "SECRET=1\n").unwrap();
    fs::write(c.join(".git/objects/blob"), "tree of a repository\n").unwrap();
    fs::write(c.join(".hidden_dir/note.txt"), "hidden directory content\n").unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(c.join("a.txt"), c.join("nested/link_to_a.txt")).unwrap();
        std::os::unix::fs::symlink(&c, c.join("nested/loop")).unwrap();
    }
    c
}

#[test]
fn every_file_is_read_once_and_skips_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = messy_corpus(tmp.path());
    let opts = PrepareOptions {
        max_file_bytes: Some(4096),
        ..options(Source::Path(corpus), tmp.path())
    };
    let p = run(&opts).unwrap();
    let s = &p.summary;
    assert_eq!(s.files_loaded, 2, "{}", s.to_json());
    assert_eq!(s.documents, 2);
    let count = |r: SkipReason| s.skipped.get(&r).copied().unwrap_or(0);
    assert_eq!(count(SkipReason::Duplicate), 1);
    assert_eq!(count(SkipReason::Binary), 1);
    assert_eq!(count(SkipReason::NotUtf8), 1);
    assert_eq!(count(SkipReason::Empty), 2);
    assert_eq!(count(SkipReason::TooLarge), 1);
    assert_eq!(count(SkipReason::Hidden), 1);
    #[cfg(unix)]
    {
        assert_eq!(
            count(SkipReason::SameFile),
            1,
            "the symlink to a.txt is the same file"
        );
        assert_eq!(count(SkipReason::SymlinkLoop), 1);
    }
    // Opened exactly once each: every candidate except the too-large one; bytes read match.
    let opened = [
        "a.txt",
        "nested/b.md",
        "nested/deeper/copy_of_a.txt",
        "image.bin",
        "latin1.txt",
        "empty.txt",
        "blank.txt",
    ];
    assert_eq!(s.read.files_opened, opened.len() as u64);
    let c = tmp.path().join("corpus");
    let bytes: u64 = opened
        .iter()
        .map(|f| fs::metadata(c.join(f)).unwrap().len())
        .sum();
    assert_eq!(s.read.bytes_read, bytes);
    // Both documents made it in, separated, and nothing else did.
    let text = p.tokenizer.decode(&all_tokens(&p));
    assert_eq!(
        text,
        "alpha file\nwith two lines\n\n\nbravo: a different file\n"
    );
    // The line the trainer prints says the same.
    let line = s.one_line();
    let seen = s.files_seen;
    assert!(
        line.contains(&format!("2 of {seen} files loaded")),
        "{line}"
    );
    for part in [
        "1 duplicate content",
        "1 binary",
        "2 empty",
        "char tokenizer",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line}");
    }
}

#[test]
fn second_run_reuses_until_an_input_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c");
    fs::create_dir_all(&corpus).unwrap();
    fs::write(
        corpus.join("one.txt"),
        "the quick brown fox jumps over the lazy dog\n".repeat(20),
    )
    .unwrap();
    let opts = options(Source::Path(corpus.clone()), tmp.path());
    let first = run(&opts).unwrap();
    assert!(!first.reused);
    let second = run(&opts).unwrap();
    assert!(second.reused);
    assert_eq!(second.summary, first.summary);
    // A new file changes the inputs.
    fs::write(corpus.join("two.txt"), "another document entirely\n").unwrap();
    let third = run(&opts).unwrap();
    assert!(!third.reused);
    assert_eq!(third.summary.files_loaded, 2);
    // A different tokenizer is a different preparation, kept alongside.
    let byte = run(&PrepareOptions {
        tokenizer: Some(TokenizerKind::Byte),
        ..opts.clone()
    })
    .unwrap();
    assert!(!byte.reused);
    assert_ne!(byte.dir, third.dir);
    assert!(run(&opts).unwrap().reused);
    // A damaged shard is not reused.
    fs::write(third.dir.join("val.bin"), b"junk").unwrap();
    assert!(!run(&opts).unwrap().reused);
}

#[test]
fn concurrent_preparations_of_one_corpus_build_once_and_all_succeed() {
    // Runs started together (one per seed, say) share one cache: one builds, the others wait
    // for it and reuse the result instead of racing on the final rename.
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c");
    fs::create_dir_all(&corpus).unwrap();
    for i in 0..40 {
        let text = format!("document {i}: {}\n", "words for the tokenizer ".repeat(50));
        fs::write(corpus.join(format!("{i}.txt")), text).unwrap();
    }
    let opts = options(Source::Path(corpus), tmp.path());
    let results: Vec<Prepared> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6).map(|_| s.spawn(|| run(&opts))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    let built = results.iter().filter(|p| !p.reused).count();
    assert_eq!(built, 1, "exactly one of the concurrent runs builds");
    let tokens = all_tokens(&results[0]);
    for p in &results {
        assert_eq!(p.dir, results[0].dir);
        assert_eq!(all_tokens(p), tokens);
    }
    // Nothing temporary is left in the cache, including what an interrupted earlier process
    // left: the next preparation of the same corpus removes it.
    let prepared = tmp.path().join("prepared");
    let name = results[0]
        .dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let crashed = prepared.join(format!(".{name}.tmp-4000000"));
    fs::create_dir_all(&crashed).unwrap();
    fs::write(crashed.join("documents.txt"), "half a preparation").unwrap();
    fs::remove_dir_all(&results[0].dir).unwrap();
    let again = run(&opts).unwrap();
    assert!(!again.reused);
    assert!(
        !crashed.exists(),
        "an interrupted preparation's directory is left"
    );
    let leftovers: Vec<_> = fs::read_dir(tmp.path().join("prepared"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-") || n.contains(".stale-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn single_file_splits_ninety_ten_like_nanogpt() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("input.txt");
    let text: String = (0..1237)
        .map(|i| (b'a' + (i * 7 % 26) as u8) as char)
        .collect();
    fs::write(&file, &text).unwrap();
    let p = run(&options(Source::Path(file), tmp.path())).unwrap();
    let n = text.len() as u64;
    let train = (n as f64 * TRAIN_FRACTION) as u64;
    assert_eq!(
        (p.summary.train_tokens, p.summary.val_tokens),
        (train, n - train)
    );
    assert_eq!(p.tokenizer.vocab_size(), 26);
    assert_eq!(p.tokenizer.decode(&all_tokens(&p)), text);
}

#[test]
fn bpe_shards_decode_back_to_the_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c");
    fs::create_dir_all(&corpus).unwrap();
    let a = "It was the best of times, it was the worst of times.\n".repeat(300);
    let b = "Ünïcödé lines: naïve café façade — déjà vu.\n".repeat(200);
    fs::write(corpus.join("a.txt"), &a).unwrap();
    fs::write(corpus.join("b.txt"), &b).unwrap();
    let opts = PrepareOptions {
        tokenizer: Some(TokenizerKind::Bpe),
        vocab_size: Some(400),
        ..options(Source::Path(corpus), tmp.path())
    };
    let p = run(&opts).unwrap();
    assert!(p.tokenizer.vocab_size() <= 400);
    assert!(
        p.summary.train_tokens + p.summary.val_tokens < (a.len() + b.len()) as u64 / 2,
        "BPE should compress"
    );
    assert_eq!(p.tokenizer.decode(&all_tokens(&p)), format!("{a}\n\n{b}"));
    assert!(p.dir.join("tokenizer.json").is_file());
    let reloaded = cllm_data::Tokenizer::load(&p.dir.join("tokenizer.json")).unwrap();
    assert_eq!(reloaded.fingerprint().unwrap(), p.summary.tokenizer_sha256);
}

const SQUAD: &str = r#"{"version": "1.1", "data": [
  {"title": "Alpha_Beta", "paragraphs": [
    {"context": "Alpha came before beta.", "qas": [
      {"id": "q1", "question": "What came first?", "answers": [{"answer_start": 0, "text": "Alpha"}]},
      {"id": "q2", "question": "What came second?", "answers": [{"answer_start": 17, "text": "beta"}]}]},
    {"context": "Gamma followed.", "qas": [
      {"id": "q3", "question": "What followed?", "answers": [{"answer_start": 0, "text": "Gamma"}]}]}]},
  {"title": "Delta", "paragraphs": [
    {"context": "Delta is the fourth letter.", "qas": [
      {"id": "q4", "question": "Which letter is delta?", "answers": [{"answer_start": 13, "text": "fourth"}]}]}]}]}"#;

#[test]
fn squad_files_become_paragraph_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("mini-squad.json");
    fs::write(&file, SQUAD).unwrap();
    let opts = PrepareOptions {
        format: Some(Format::SquadV1),
        ..options(Source::Path(file), tmp.path())
    };
    let p = run(&opts).unwrap();
    let q = p.summary.squad.unwrap();
    assert_eq!((q.articles, q.paragraphs, q.questions), (2, 3, 4));
    assert_eq!(p.summary.documents, 3);
    let text = p.tokenizer.decode(&all_tokens(&p));
    assert!(text.starts_with("Title: Alpha Beta\nContext: Alpha came before beta.\nQuestion: What came first?\nAnswer: Alpha\n"));
    assert!(text.contains("\n\nTitle: Delta\n"));
}

/// SQuAD files are parsed as they are read, so one found unusable part-way (a byte that is not
/// UTF-8 after many articles) has already given documents: they, and its characters, must be
/// cut back out. Duplicates, binary and blank files are skipped as text files are, and files
/// not named `*.json` (a README beside the data) are not read at all.
#[test]
fn squad_files_stream_and_unusable_ones_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c");
    fs::create_dir_all(&corpus).unwrap();
    fs::write(corpus.join("a_good.json"), SQUAD).unwrap();
    fs::write(corpus.join("b_copy.json"), SQUAD).unwrap();
    let article = |i: usize| {
        format!(
            r#"{{"title": "Omega {i}", "paragraphs": [{{"context": "Ω is the last letter, {i}.", "qas": []}}]}}"#
        )
    };
    let mut late_bad = String::from(r#"{"version": "1.1", "data": ["#);
    for i in 0..5000 {
        late_bad += &article(i);
        late_bad.push(',');
    }
    assert!(
        late_bad.len() > 200_000,
        "the bad byte must come after many reads"
    );
    let mut late_bad = late_bad.into_bytes();
    late_bad.extend_from_slice(b"{\"title\": \"caf\xE9\", \"paragraphs\": []}]}");
    fs::write(corpus.join("c_late_bad.json"), &late_bad).unwrap();
    fs::write(corpus.join("d_blank.json"), " \n\t").unwrap();
    fs::write(corpus.join("e_binary.json"), b"{\"data\": [\0]}").unwrap();
    fs::write(corpus.join("README.txt"), "About this data.\n").unwrap();
    let upper = SQUAD.replace("Delta", "Epsilon");
    fs::write(corpus.join("f_upper.JSON"), &upper).unwrap();
    let opts = |path: PathBuf| PrepareOptions {
        format: Some(Format::SquadV1),
        tokenizer: Some(TokenizerKind::Char),
        ..options(Source::Path(path), tmp.path())
    };
    // A file named as the corpus is read whatever its name.
    let single = tmp.path().join("data.squad");
    fs::write(&single, SQUAD).unwrap();
    assert_eq!(run(&opts(single)).unwrap().summary.documents, 3);
    let p = run(&opts(corpus)).unwrap();
    let s = &p.summary;
    assert_eq!((s.files_loaded, s.documents), (2, 6), "{}", s.to_json());
    let count = |r: SkipReason| s.skipped.get(&r).copied().unwrap_or(0);
    for reason in [
        SkipReason::Duplicate,
        SkipReason::NotUtf8,
        SkipReason::Empty,
        SkipReason::Binary,
        SkipReason::NotJson,
    ] {
        assert_eq!(count(reason), 1, "{reason}: {}", s.to_json());
    }
    assert_eq!(s.read.files_opened, 6, "README.txt is never opened");
    let q = s.squad.unwrap();
    assert_eq!((q.articles, q.paragraphs, q.questions), (4, 6, 8));
    assert_eq!(s.bytes_loaded, (SQUAD.len() + upper.len()) as u64);
    let text = p.tokenizer.decode(&all_tokens(&p));
    assert!(
        !text.contains("Omega"),
        "documents of the rejected file remain"
    );
    let vocab = p
        .tokenizer
        .decode(&(0..p.tokenizer.vocab_size() as u32).collect::<Vec<_>>());
    assert!(
        !vocab.contains('Ω'),
        "its characters entered the vocabulary: {vocab:?}"
    );
}

/// JSON Lines: each record's `text` is a document; a directory gives only its `*.jsonl` and
/// `*.ndjson` files; a bad record is one error line naming file and line; a file found not
/// UTF-8 part-way is skipped and leaves nothing.
#[test]
fn jsonl_records_become_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c");
    fs::create_dir_all(&corpus).unwrap();
    fs::write(
        corpus.join("a.jsonl"),
        "{\"text\": \"first story\", \"id\": 1}\n\n{\"text\": \"\"}\n{\"text\": \"second\\nstory\"}\n",
    )
    .unwrap();
    fs::write(corpus.join("b.ndjson"), "{\"text\": \"third\"}\n").unwrap();
    let mut late_bad = "{\"text\": \"Ω\"}\n".repeat(10_000).into_bytes();
    late_bad.extend_from_slice(b"{\"text\": \"caf\xE9\"}\n");
    fs::write(corpus.join("c_late_bad.jsonl"), &late_bad).unwrap();
    fs::write(corpus.join("README.md"), "# About\n").unwrap();
    let opts = |path: PathBuf| PrepareOptions {
        format: Some(Format::Jsonl),
        tokenizer: Some(TokenizerKind::Char),
        ..options(Source::Path(path), tmp.path())
    };
    let p = run(&opts(corpus.clone())).unwrap();
    let s = &p.summary;
    assert_eq!((s.files_loaded, s.documents), (2, 3), "{}", s.to_json());
    let j = s.jsonl.unwrap();
    assert_eq!((j.records, j.empty), (4, 1));
    let count = |r: SkipReason| s.skipped.get(&r).copied().unwrap_or(0);
    assert_eq!(count(SkipReason::NotJsonl), 1, "{}", s.to_json());
    assert_eq!(count(SkipReason::NotUtf8), 1, "{}", s.to_json());
    let text = p.tokenizer.decode(&all_tokens(&p));
    assert_eq!(text, "first story\n\nsecond\nstory\n\nthird");
    assert!(
        s.human().contains("jsonl: 4 records (1 with empty text"),
        "{}",
        s.human()
    );

    fs::write(
        corpus.join("d.jsonl"),
        "{\"text\": \"ok\"}\n{\"body\": \"no text field\"}\n",
    )
    .unwrap();
    let msg = run(&opts(corpus)).unwrap_err().to_string();
    assert!(
        msg.contains("d.jsonl:2:") && msg.contains("missing field `text`"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "one line: {msg}");
}

#[test]
fn malformed_json_is_one_error_line_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("broken.json");
    fs::write(
        &file,
        "{\"data\": [\n  {\"title\": \"x\", \"paragraphs\": [}\n]}",
    )
    .unwrap();
    let cache = tmp.path().join("cache");
    let opts = PrepareOptions {
        format: Some(Format::SquadV1),
        cache_dir: cache.clone(),
        ..options(Source::Path(file), tmp.path())
    };
    let msg = run(&opts).unwrap_err().to_string();
    assert!(msg.contains("broken.json:2:"), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    let left: Vec<_> = fs::read_dir(cache.join("prepared")).unwrap().collect();
    assert!(left.is_empty(), "a failed preparation left {left:?}");
    // Wrong schema: valid JSON, missing field.
    fs::write(
        tmp.path().join("broken.json"),
        "{\"version\": \"1.1\", \"articles\": []}",
    )
    .unwrap();
    let msg = run(&opts).unwrap_err().to_string();
    assert!(
        msg.contains("missing field `data`") && msg.contains("broken.json:1:"),
        "{msg}"
    );
}

#[test]
fn empty_and_tiny_corpora_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c");
    fs::create_dir_all(&corpus).unwrap();
    fs::write(corpus.join("x.bin"), [0u8, 1, 2]).unwrap();
    let msg = path_error(corpus.clone(), tmp.path());
    assert!(
        msg.contains("no usable text") && msg.contains("1 binary"),
        "{msg}"
    );
    fs::write(corpus.join("small.txt"), "just a few words here\n").unwrap();
    let opts = PrepareOptions {
        min_tokens: 65,
        ..options(Source::Path(corpus), tmp.path())
    };
    let msg = run(&opts).unwrap_err().to_string();
    assert!(
        msg.contains("corpus too small") && msg.contains("65"),
        "{msg}"
    );
    let missing = path_error(tmp.path().join("nope"), tmp.path());
    assert!(missing.contains("nope"), "{missing}");
}

#[test]
fn named_dataset_files_are_checksummed_and_missing_ones_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let opts = PrepareOptions {
        data_dirs: DataDirs::only(vec![data.clone()]),
        ..options(Source::Named("shakespeare".into()), tmp.path())
    };
    let msg = run(&opts).unwrap_err().to_string();
    assert!(
        msg.contains("tinyshakespeare/input.txt")
            && msg.contains("https://")
            && msg.contains(&data.display().to_string()),
        "{msg}"
    );
    fs::create_dir_all(data.join("tinyshakespeare")).unwrap();
    fs::write(
        data.join("tinyshakespeare/input.txt"),
        "not the real file\n",
    )
    .unwrap();
    let msg = run(&opts).unwrap_err().to_string();
    assert!(msg.contains("sha256") && msg.contains("86c4e6aa"), "{msg}");
    let msg = run(&options(Source::Named("nonesuch".into()), tmp.path()))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("unknown dataset") && msg.contains("shakespeare"),
        "{msg}"
    );
}

#[test]
fn a_missing_file_names_the_variants_that_need_no_download() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let opts = |name: &str| PrepareOptions {
        data_dirs: DataDirs::only(vec![data.clone()]),
        ..options(Source::Named(name.into()), tmp.path())
    };
    // Nothing on disk: no variant to suggest.
    let msg = run(&opts("squad")).unwrap_err().to_string();
    assert!(msg.contains("squad/train-v1.1.json"), "{msg}");
    assert!(!msg.contains("without a download"), "{msg}");
    // Only the dev set on disk (as in ../shared/datasets): `squad` needs the training set too,
    // and its error points at `squad/dev`.
    fs::create_dir_all(data.join("squad")).unwrap();
    fs::write(data.join("squad/dev-v1.1.json"), "{}").unwrap();
    let msg = run(&opts("squad")).unwrap_err().to_string();
    assert!(
        msg.contains("squad/train-v1.1.json")
            && msg.contains("Available without a download: `--dataset squad/dev`"),
        "{msg}"
    );
}

/// Sockets, pipes and devices are never opened: inside a directory they are skipped and
/// counted, and a corpus path that is one is refused in one line naming what it is (before this
/// rule, a named pipe given as the corpus read as "no usable text: 0 files seen").
#[cfg(unix)]
#[test]
fn special_files_are_skipped_or_refused_never_opened() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c");
    fs::create_dir_all(&corpus).unwrap();
    fs::write(corpus.join("a.txt"), "some text ".repeat(20)).unwrap();
    let socket = corpus.join("control.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let p = run(&options(Source::Path(corpus), tmp.path())).unwrap();
    let s = &p.summary;
    assert_eq!(s.files_loaded, 1, "{}", s.to_json());
    assert_eq!(
        s.skipped.get(&SkipReason::NotRegular).copied(),
        Some(1),
        "{}",
        s.to_json()
    );
    assert_eq!(s.read.files_opened, 1, "the socket was opened");
    assert!(
        s.one_line().contains("1 not a regular file"),
        "{}",
        s.one_line()
    );

    let msg = path_error(socket, tmp.path());
    assert!(
        msg.contains("control.sock: a socket, not a regular file or directory"),
        "{msg}"
    );
    let msg = path_error("/dev/null", tmp.path());
    assert!(msg.contains("/dev/null: a character device"), "{msg}");
}

/// Text files are streamed in pieces of `STREAM_CHUNK` bytes: one larger than a piece, whose
/// first piece ends inside a two-byte character, comes back exactly; one found not UTF-8 only
/// after its first piece, and a copy found a duplicate only at its end, leave neither text nor
/// characters behind (not even in the next accepted document); and no size limit applies
/// unless one is asked for.
#[test]
fn large_files_are_streamed_and_late_rejections_leave_nothing() {
    use cllm_data::source::STREAM_CHUNK;
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c");
    fs::create_dir_all(&corpus).unwrap();
    let mut late_bad = "z".repeat(STREAM_CHUNK + 100).into_bytes();
    late_bad.push(0xFF);
    late_bad.extend_from_slice(b"zzz");
    fs::write(corpus.join("a_late_bad.txt"), &late_bad).unwrap();
    // A full first read ends after the first byte of the `ü`.
    let good = format!(
        "{}ü\n{}",
        "x".repeat(STREAM_CHUNK - 1),
        "ünï line 1\n".repeat(STREAM_CHUNK / 8)
    );
    assert!(good.len() > 2 * STREAM_CHUNK);
    fs::write(corpus.join("b_good.txt"), &good).unwrap();
    fs::write(corpus.join("c_copy.txt"), &good).unwrap();
    let small = "a small file, ö\n";
    fs::write(corpus.join("d_small.txt"), small).unwrap();

    let p = run(&options(Source::Path(corpus.clone()), tmp.path())).unwrap();
    let s = &p.summary;
    assert_eq!(s.files_loaded, 2, "{}", s.to_json());
    let count = |r: SkipReason| s.skipped.get(&r).copied().unwrap_or(0);
    assert_eq!(count(SkipReason::Duplicate), 1, "{}", s.to_json());
    assert_eq!(count(SkipReason::NotUtf8), 1, "{}", s.to_json());
    assert_eq!(s.read.files_opened, 4);
    assert_eq!(s.bytes_loaded, (good.len() + small.len()) as u64);
    let text = p.tokenizer.decode(&all_tokens(&p));
    assert!(
        text == format!("{good}\n\n{small}"),
        "the corpus is not the two documents"
    );
    let distinct: std::collections::BTreeSet<char> = text.chars().collect();
    assert_eq!(
        p.tokenizer.vocab_size(),
        distinct.len(),
        "characters of a rejected file entered the vocabulary: {:?}",
        p.tokenizer
            .decode(&(0..p.tokenizer.vocab_size() as u32).collect::<Vec<_>>())
    );

    // A limit, when given, still skips what is over it.
    let opts = PrepareOptions {
        max_file_bytes: Some(STREAM_CHUNK as u64),
        ..options(Source::Path(corpus.join("b_good.txt")), tmp.path())
    };
    let msg = run(&opts).unwrap_err().to_string();
    assert!(msg.contains("1 too large"), "{msg}");
}
