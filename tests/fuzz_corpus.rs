//! Replays the fuzz targets' kept corpus (fuzz/corpus/<target>/) through
//! the same checks the fuzzers run, so every input that once found a bug,
//! and every seed, is tested on each CI run without a fuzzer.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "{}: the corpus should keep its seeds",
        dir.display()
    );
    files
}

fn replay(target: &str, check: impl Fn(&[u8])) {
    for file in corpus(target) {
        let data = std::fs::read(&file).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data)));
        assert!(
            outcome.is_ok(),
            "{} fails the {target} checks",
            file.display()
        );
    }
}

#[test]
fn ledger_corpus() {
    replay("ledger", harness::ledger);
}

#[test]
fn policy_corpus() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/retail-fr");
    replay("policy", |d| harness::policy(&shipped, d));
}

#[test]
fn template_corpus() {
    replay("template", harness::template);
}
