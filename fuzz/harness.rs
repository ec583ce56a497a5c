#![allow(dead_code)] // each fuzz target uses one of these
//! What each fuzz target checks, shared by `cargo fuzz` (fuzz/fuzz_targets)
//! and by `tests/fuzz_corpus.rs`, which replays the kept corpus on every CI
//! run, so an input that once broke the engine stays fixed.
//!
//! Each function takes the fuzzer's bytes as one input file of a night and
//! states what must hold whatever those bytes are: no panic, no hang, and
//! either a clean result or an error that names the file.

use dunning::{accounts, ingest, policy, render};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A scratch folder per process, kept for the whole fuzzing run: writing a
/// file there is cheap next to what ingest or policy loading does with it.
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("scratch folder"))
        .path()
}

const DEBTORS: &str = "debtor_id,name,kind,language,country,email,phone,address_line1,address_line2,postal_code,city\n\
D1,Alice Martin,person,fr,FR,alice@example.fr,+33612345678,1 rue A,,75001,Paris\n\
D2,Bob SARL,business,en,GB,bob@example.co.uk,,2 High St,,SW1A 1AA,London\n\
D3,Chen Wei,person,zh,CN,,,3 Road,,100000,Beijing\n";

/// The fuzzer's bytes as `ledger.csv`, next to a fixed debtors file.
pub fn ledger(data: &[u8]) {
    let dir = scratch();
    let ledger = dir.join("ledger.csv");
    let debtors = dir.join("debtors.csv");
    std::fs::write(&ledger, data).expect("write ledger");
    if !debtors.exists() {
        std::fs::write(&debtors, DEBTORS).expect("write debtors");
    }
    match ingest::read(&ledger, &debtors, None, "FR") {
        Ok(inputs) => {
            let count = inputs
                .counts
                .iter()
                .find(|c| c.name == "ledger.csv")
                .expect("the ledger is counted");
            // Every row is either an item or rejected, never both, never lost.
            assert_eq!(
                inputs.items.height() + count.rejected,
                count.rows,
                "items + rejected rows = rows"
            );
            for r in inputs.rejects.iter().filter(|r| r.file == "ledger.csv") {
                assert!(
                    r.row >= 2 && r.row <= count.rows + 1,
                    "reject row {} outside the data rows 2..={}",
                    r.row,
                    count.rows + 1
                );
                assert!(!r.column.is_empty() && !r.reason.is_empty(), "{r}");
            }
            // What passed the checks must aggregate without error, and the
            // amounts must be what the checks promise.
            let list = accounts::summarize(
                &inputs.items,
                &inputs.debtors,
                chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(),
                3,
            )
            .expect("checked items aggregate");
            for a in &list {
                assert!(a.overdue >= 0 && a.open >= a.overdue, "{a:?}");
                assert!(inputs.debtors.contains_key(&a.debtor_id), "{a:?}");
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains("ledger.csv"),
                "an ingest error must name the file: {message}"
            );
        }
    }
}

/// A copy of the shipped policy whose `policy.yaml` the fuzzer replaces.
fn policy_dir(shipped: &Path) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch().join("policy");
        copy_tree(&shipped.join("templates"), &dir.join("templates"));
        dir
    })
    .clone()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for e in std::fs::read_dir(from).expect("read folder").flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy file");
        }
    }
}

/// The fuzzer's bytes as `policy.yaml`, with the shipped policy's templates.
pub fn policy(shipped: &Path, data: &[u8]) {
    let dir = policy_dir(shipped);
    std::fs::write(dir.join("policy.yaml"), data).expect("write policy");
    match policy::Policy::load(&dir) {
        Ok(p) => {
            for w in &p.warnings {
                assert!(!w.message.is_empty());
            }
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "an error lists its problems");
            for p in &e.problems {
                assert!(!p.message.is_empty(), "{p}");
                assert!(
                    Path::new(&p.file).starts_with(&dir),
                    "a problem names a file of the policy: {p}"
                );
                let _ = p.to_string();
            }
        }
    }
}

/// The fuzzer's bytes as one template, compiled, checked against the render
/// context's variables and rendered; then the rendered text goes through
/// what the e-mail and SMS builders do with it.
pub fn template(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let (mut templates, problems) = render::Templates::load(&scratch().join("no-templates"));
    assert!(problems.is_empty());
    if templates.add_inline("fuzz.txt", source).is_err() {
        return;
    }
    let contact = [
        ("company".to_owned(), "Banque Exemple".to_owned()),
        ("phone".to_owned(), "+33 1 84 88 00 00".to_owned()),
    ]
    .into_iter()
    .collect();
    let ctx = render::sample_context(&contact);
    let _ = templates.unknown_variables(&ctx);
    match templates.render("fuzz.txt", &ctx, "D1") {
        Ok(text) => {
            let subject = dunning::actions::email::header_text(&text);
            assert!(!subject.contains(['\r', '\n']), "{subject:?}");
            let (_, segments) = dunning::actions::sms::measure(&text);
            assert!(segments >= 1);
        }
        Err(e) => {
            assert_eq!(e.template, "fuzz.txt");
            assert_eq!(e.debtor_id, "D1");
        }
    }
}
