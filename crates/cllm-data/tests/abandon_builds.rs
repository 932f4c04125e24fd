//! `abandon_builds` (what `cllm-train` calls on Ctrl-C during preparation) deletes the
//! half-built preparation and publishes nothing. In a test binary of its own: it deletes
//! every build this process has under way, so it must not run beside other preparations.

use std::fs;

use cllm_data::{DataDirs, PrepareOptions, Source, abandon_builds, prepare};

#[test]
fn an_abandoned_preparation_leaves_nothing_and_a_later_one_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.txt");
    fs::write(&corpus, "words of a corpus, repeated. ".repeat(2000)).unwrap();
    let cache = dir.path().join("cache");
    let opts = PrepareOptions {
        data_dirs: DataDirs::only(vec![dir.path().join("no-data-dir")]),
        cache_dir: cache.clone(),
        allow_download: false,
        ..PrepareOptions::new(Source::Path(corpus))
    };
    // A stop arriving while the shards are being written.
    let mut stopped = false;
    let result = prepare(&opts, &mut |what| {
        if what.starts_with("writing shards") {
            abandon_builds();
            stopped = true;
        }
    });
    assert!(stopped, "the preparation reported no shard writing");
    assert!(
        result.is_err(),
        "an abandoned preparation must not be published"
    );
    let prepared = cache.join("prepared");
    let left: Vec<_> = fs::read_dir(&prepared)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // Nothing stale blocks the next run, and a finished build is not deleted afterwards.
    let p = prepare(&opts, &mut |_| {}).unwrap();
    abandon_builds();
    assert!(p.dir.join("dataset.json").exists());
}
