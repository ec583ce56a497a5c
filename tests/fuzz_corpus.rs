//! Replays the fuzz targets' seeds and kept corpus (fuzz/seeds/<target>/,
//! fuzz/corpus/<target>/) through the same checks the fuzzers run, so every
//! input that once found a bug, and every seed, is tested on each CI run
//! without a fuzzer.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

/// The hand-written seeds and what the fuzzers kept (minimised).
fn corpus(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let list = |dir: PathBuf| -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    };
    let seeds = list(fuzz.join("seeds").join(target));
    assert!(seeds.len() >= 3, "{target}: the seeds are kept");
    let kept = list(fuzz.join("corpus").join(target));
    assert!(!kept.is_empty(), "{target}: the fuzzers' corpus is kept");
    seeds.into_iter().chain(kept).collect()
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
    // The shipped templates are seeds too, read where they live.
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut shipped = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/retail-fr/templates"),
        &mut shipped,
    );
    assert!(shipped.len() >= 20);
    for file in shipped {
        let data = std::fs::read(&file).unwrap();
        let outcome = std::panic::catch_unwind(|| harness::template(&data));
        assert!(
            outcome.is_ok(),
            "{} fails the template checks",
            file.display()
        );
    }
}
