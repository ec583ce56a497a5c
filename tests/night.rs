//! The run's promises, each pinned: determinism, re-runs, refusals, the
//! lock, crash safety, bad input, Parquet, and no personal data in logs.

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn holds() -> PathBuf {
    root().join("fixtures/holds")
}

fn first_nights(n: usize) -> Vec<Night> {
    nights(&holds()).into_iter().take(n).collect()
}

/// Runs nights in order on one state, returning the last output folder.
fn run_all(nights: &[Night], state: &Path, outs: &Path) -> PathBuf {
    let mut last = PathBuf::new();
    for n in nights {
        last = outs.join(&n.date);
        let o = run_night(n, &policy(), state, &last, &[]);
        assert!(o.status.success(), "{}: {}", n.date, stderr(&o));
    }
    last
}

#[test]
fn the_same_night_twice_gives_identical_files() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ns = first_nights(3);
    let out_a = run_all(&ns, &a.path().join("state"), &a.path().join("out"));
    let out_b = run_all(&ns, &b.path().join("state"), &b.path().join("elsewhere"));
    let (ta, tb) = (tree(&out_a), tree(&out_b));
    let names: Vec<&str> = ta.iter().map(|f| f.0.as_str()).collect();
    for want in [
        "calls.csv",
        "decisions.csv",
        "emails/index.csv",
        "manifest.json",
        "rejects.csv",
        "sms.csv",
        "summary.json",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    // Every other file is in the manifest with its SHA-256.
    let manifest: serde_json::Value =
        serde_json::from_slice(&ta.iter().find(|f| f.0 == "manifest.json").unwrap().1).unwrap();
    let outputs = manifest["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), ta.len() - 1);
    for (name, bytes) in &ta {
        if name == "manifest.json" {
            continue;
        }
        let entry = outputs
            .iter()
            .find(|o| o["file"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} not in manifest"));
        assert_eq!(
            entry["sha256"],
            dunning::audit::sha256_bytes(bytes).as_str(),
            "{name}"
        );
    }
    assert_eq!(ta, tb);
    // The committed states are identical too.
    assert_eq!(
        tree(&a.path().join("state/nights")),
        tree(&b.path().join("state/nights"))
    );
}

#[test]
fn rerunning_a_committed_night_reproduces_it_and_commits_nothing() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let ns = first_nights(3);
    run_all(&ns, &state, &t.path().join("out"));
    let before = tree(&state.join("nights"));
    // Re-run the middle night and the last one, into new folders.
    for n in &ns[1..] {
        let again = t.path().join(format!("again-{}", n.date));
        let o = run_night(n, &policy(), &state, &again, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("re-running a committed night"));
        assert_eq!(tree(&again), tree(&t.path().join("out").join(&n.date)));
    }
    assert_eq!(
        tree(&state.join("nights")),
        before,
        "the state did not move"
    );
    // Re-running into the same --out folder replaces it with the same bytes.
    let out = t.path().join("out").join(&ns[2].date);
    let o = run_night(&ns[2], &policy(), &state, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_night_before_the_last_committed_one_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let ns = first_nights(3);
    run_all(
        &[ns[0].clone(), ns[2].clone()],
        &state,
        &t.path().join("out"),
    );
    let out = t.path().join("late");
    let o = run_night(&ns[1], &policy(), &state, &out, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("before the last committed night"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

#[test]
fn a_committed_night_rerun_with_other_inputs_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    let ns = first_nights(2);
    run_all(&ns, &state, &t.path().join("out"));
    let mut other = ns[1].clone();
    let changed = std::fs::read_to_string(&other.ledger)
        .unwrap()
        .replace("200.00,200.00", "200.00,190.00");
    other.ledger = t.path().join("ledger.csv");
    std::fs::write(&other.ledger, changed).unwrap();
    let o = run_night(&other, &policy(), &state, &t.path().join("x"), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("already committed"), "{}", stderr(&o));
}

#[test]
fn a_second_run_on_a_locked_state_is_refused_and_a_stale_lock_is_not() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    // A lock file left by a dead process: no OS lock is held on it.
    std::fs::write(state.join("lock"), "999999").unwrap();
    let ns = first_nights(2);
    let o = run_night(&ns[0], &policy(), &state, &t.path().join("a"), &[]);
    assert!(
        o.status.success(),
        "stale lock must not block: {}",
        stderr(&o)
    );

    // A live holder (this test process) makes the next run refuse.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(state.join("lock"))
        .unwrap();
    f.try_lock().unwrap();
    let out = t.path().join("b");
    let o = run_night(&ns[1], &policy(), &state, &out, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("holds the lock"), "{}", stderr(&o));
    assert!(!out.exists());
    f.unlock().unwrap();
    let o = run_night(&ns[1], &policy(), &state, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_crash_at_any_point_leaves_all_or_nothing_and_a_rerun_heals_it() {
    let clean = tempfile::tempdir().unwrap();
    let ns = first_nights(2);
    let reference = run_all(&ns, &clean.path().join("state"), &clean.path().join("out"));

    for &point in dunning::FAILPOINTS {
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        run_all(&ns[..1], &state, &t.path().join("out"));
        let committed = tree(&state.join("nights"));
        let out = t.path().join("out").join(&ns[1].date);
        let o = run_night(
            &ns[1],
            &policy(),
            &state,
            &out,
            &[("DUNNING_FAILPOINT", point)],
        );
        assert!(!o.status.success(), "{point}: the process must have died");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(o.status.signal(), Some(9), "{point}: killed by SIGKILL");
        if point != "after-commit" {
            // Debris of a half-written commit is not a night.
            let nights: Vec<(String, Vec<u8>)> = tree(&state.join("nights"))
                .into_iter()
                .filter(|(n, _)| !n.starts_with(".tmp-"))
                .collect();
            assert_eq!(nights, committed, "{point}: state unchanged");
        }
        let renamed = ["before-commit", "mid-commit", "after-commit"];
        if !renamed.contains(&point) {
            assert!(!out.exists(), "{point}: no output folder before the rename");
        }
        // The re-run completes the night, byte for byte as if nothing happened.
        let o = run_night(&ns[1], &policy(), &state, &out, &[]);
        assert!(o.status.success(), "{point}: {}", stderr(&o));
        assert_eq!(tree(&out), tree(&reference), "{point}");
        assert_eq!(
            tree(&state.join("nights")),
            tree(&clean.path().join("state/nights")),
            "{point}"
        );
        // Nothing of the crashed attempt is left beside the output.
        let leftovers: Vec<_> = std::fs::read_dir(out.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{point}: {leftovers:?}");
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const DEBTORS: &str = "debtor_id,name,kind,language,country,email,phone,address_line1,address_line2,postal_code,city\n\
D1,Ana Lopez,person,fr,FR,ana@example.fr,+33600000001,1 rue A,,75001,Paris\n\
D2,Bob Stone,person,en,FR,,,2 rue B,,75002,Paris\n";

fn ledger_rows(n: usize) -> String {
    let mut s = String::from("item_id,debtor_id,currency,amount,open_amount,issued_on,due_on\n");
    for i in 0..n {
        s.push_str(&format!(
            "I{i},D1,EUR,100.00,100.00,2025-12-01,2026-01-01\n"
        ));
    }
    s
}

fn night_with(dir: &Path, ledger: &str) -> Night {
    Night {
        date: "2026-02-01".into(),
        dir: dir.to_owned(),
        ledger: write(dir, "ledger.csv", ledger),
        debtors: write(dir, "debtors.csv", DEBTORS),
        events: None,
    }
}

/// Runs `n` (into `out` and `state` beside its inputs), which must
/// succeed: its `rejects.csv`, and its output folder.
fn night_rejects(n: &Night) -> (String, std::path::PathBuf) {
    let out = n.dir.join("out");
    let o = run_night(n, &policy(), &n.dir.join("state"), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rejects = std::fs::read_to_string(out.join("rejects.csv")).unwrap();
    (rejects, out)
}

#[test]
fn bad_rows_go_to_rejects_with_file_row_column_and_reason() {
    let t = tempfile::tempdir().unwrap();
    let mut ledger = ledger_rows(100);
    ledger.push_str("X1,D1,EUR,12.345,1.00,2025-12-01,2026-01-01\n"); // row 102
    ledger.push_str("X2,D9,EUR,10.00,1.00,2025-12-01,2026-01-01\n"); // 103: unknown debtor
    ledger.push_str("X3,D1,eur,10.00,20.00,2025-12-01,2026-13-01\n"); // 104: three problems
    ledger.push_str("I5,D1,EUR,-5.00,0.00,2025-12-01,2026-01-01\n"); // 105: dup + negative
    let n = night_with(t.path(), &ledger);
    let (rejects, out) = night_rejects(&n);
    assert_eq!(
        rejects,
        "file,row,column,value,reason\n\
ledger.csv,7,item_id,I5,\"duplicate item_id: appears 2 times in the ledger, every copy is rejected\"\n\
ledger.csv,102,amount,12.345,more than 2 decimals\n\
ledger.csv,103,debtor_id,D9,debtor not in the debtors file (or rejected there)\n\
ledger.csv,104,currency,eur,currency must be 3 capital letters (ISO 4217)\n\
ledger.csv,104,due_on,2026-13-01,not a date (expected YYYY-MM-DD)\n\
ledger.csv,104,open_amount,20.00,open_amount exceeds amount 10.00\n\
ledger.csv,105,amount,-5.00,negative amount\n\
ledger.csv,105,item_id,I5,\"duplicate item_id: appears 2 times in the ledger, every copy is rejected\"\n"
    );
    let decisions = std::fs::read_to_string(out.join("decisions.csv")).unwrap();
    // 99 good items of 100.00 remain (I5 was rejected with its duplicate).
    assert!(
        decisions.contains("D1,EUR,high_balance,0,1,email:reminder;call:reminder,,9900.00,"),
        "{decisions}"
    );
}

/// An event about a debtor the debtors file does not have (or rejected)
/// can touch no account: it is rejected, named by file, row and column,
/// like a ledger row about one, and the night goes on.
#[test]
fn an_event_about_an_unknown_debtor_is_rejected_with_its_row() {
    let t = tempfile::tempdir().unwrap();
    let mut n = night_with(t.path(), &ledger_rows(10));
    let mut events = String::from("debtor_id,date,kind,until,amount,note\n");
    for day in 10..30 {
        events.push_str(&format!("D1,2026-01-{day},contact_outcome,,,called\n"));
    }
    events.push_str("D9,2026-01-20,promise_to_pay,2026-02-15,,\n"); // row 22
    n.events = Some(write(t.path(), "events.csv", &events));
    assert_eq!(
        night_rejects(&n).0,
        "file,row,column,value,reason\n\
events.csv,22,debtor_id,D9,debtor not in the debtors file (or rejected there)\n"
    );
}

#[test]
fn too_many_rejected_rows_stop_the_night_and_commit_nothing() {
    let t = tempfile::tempdir().unwrap();
    let mut ledger = ledger_rows(10);
    ledger.push_str("X1,D1,EUR,1.2.3,1.00,2025-12-01,2026-01-01\n");
    let n = night_with(t.path(), &ledger);
    let out = t.path().join("out");
    let state = t.path().join("state");
    let o = run_night(&n, &policy(), &state, &out, &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("1 of 11 rows rejected"), "{err}");
    assert!(err.contains("row 12, column amount"), "{err}");
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(state.join("nights")).unwrap().count(), 0);
}

fn expect_exit_2(ledger_bytes: &[u8], must_say: &[&str]) {
    let t = tempfile::tempdir().unwrap();
    let mut n = night_with(t.path(), "");
    std::fs::write(&n.ledger, ledger_bytes).unwrap();
    n.ledger = n.ledger.clone();
    let out = t.path().join("out");
    let state = t.path().join("state");
    let o = run_night(&n, &policy(), &state, &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for s in must_say {
        assert!(err.contains(s), "expected {s:?} in:\n{err}");
    }
    assert!(!out.exists(), "no output folder");
    assert_eq!(
        std::fs::read_dir(state.join("nights")).unwrap().count(),
        0,
        "no state"
    );
}

#[test]
fn a_missing_column_names_file_row_and_column() {
    expect_exit_2(
        b"item_id,debtor_id,currency,amount,open_amount,issued_on\nI1,D1,EUR,1.00,1.00,2025-01-01\n",
        &["ledger.csv: row 1 (header): missing required column `due_on`"],
    );
}

#[test]
fn an_empty_file_is_an_error() {
    expect_exit_2(b"", &["ledger.csv: the file is empty"]);
}

#[test]
fn invalid_utf8_names_row_and_column() {
    expect_exit_2(
        b"item_id,debtor_id,currency,amount,open_amount,issued_on,due_on\nI1,D1,EUR,1.00,1.00,2025-01-01,2026-01-01\nI2,D\xff1,EUR,1.00,1.00,2025-01-01,2026-01-01\n",
        &["ledger.csv: row 3, column 2: not valid UTF-8"],
    );
}

#[test]
fn a_row_with_too_many_fields_names_the_row() {
    expect_exit_2(
        b"item_id,debtor_id,currency,amount,open_amount,issued_on,due_on\nI1,D1,EUR,1.00,1.00,2025-01-01,2026-01-01\nI2,D1,EUR,1.00,1.00,2025-01-01,2026-01-01,extra\n",
        &["ledger.csv: row 3"],
    );
}

#[test]
fn a_duplicated_header_column_is_named() {
    expect_exit_2(
        b"item_id,debtor_id,currency,amount,amount,open_amount,issued_on,due_on\n",
        &["column 5: column `amount` appears twice"],
    );
}

#[test]
fn bom_crlf_and_quoted_newlines_are_read() {
    let t = tempfile::tempdir().unwrap();
    let ledger =
        "\u{feff}item_id,debtor_id,currency,amount,open_amount,issued_on,due_on,reference\r\n\
I1,D1,EUR,100.00,100.00,2025-12-01,2026-01-01,\"two\r\nlines\"\r\n\
I2,D2,EUR,50.00,50.00,2025-12-01,2026-01-01,plain\r\n";
    let n = night_with(t.path(), ledger);
    let out = t.path().join("out");
    let o = run_night(&n, &policy(), &t.path().join("state"), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let d = std::fs::read_to_string(out.join("decisions.csv")).unwrap();
    assert!(
        d.contains("D1,EUR,retail,0,1,email:reminder,,100.00,"),
        "{d}"
    );
    assert!(
        d.contains("D2,EUR,retail,0,1,letter:reminder,,50.00,"),
        "{d}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("rejects.csv")).unwrap(),
        "file,row,column,value,reason\n"
    );
}

#[test]
fn a_policy_with_a_typo_is_refused_with_the_rule_and_position() {
    let t = tempfile::tempdir().unwrap();
    let pol = edited_policy(t.path(), |s| {
        s.replace("when: overdue >= 5000.00", "when: overdu >= 5000.00")
            .replace("name: call\n", "name: call\n        bogus_key: 1\n")
    });
    let text = std::fs::read_to_string(pol.join("policy.yaml")).unwrap();
    let n = first_nights(1).remove(0);
    let o = run_night(
        &n,
        &pol,
        &t.path().join("state"),
        &t.path().join("out"),
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("unknown field `bogus_key`"), "{err}");

    let text = text.replace("        bogus_key: 1\n", "");
    std::fs::write(pol.join("policy.yaml"), &text).unwrap();
    let o = run_night(
        &n,
        &pol,
        &t.path().join("state"),
        &t.path().join("out"),
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    let line = text.lines().position(|l| l.contains("overdu >=")).unwrap() + 1;
    assert!(
        err.contains(&format!(
            "policy.yaml:{line}:11: segments[1] high_balance: Undefined variable: overdu"
        )),
        "{err}"
    );
}

#[test]
fn a_runaway_condition_fails_the_night_with_its_rule() {
    let t = tempfile::tempdir().unwrap();
    let pol = edited_policy(t.path(), |s| {
        s.replace(
            "when: overdue >= 5000.00",
            "when: \"{ let x = 0; loop { x += 1; } }\"",
        )
    });
    let n = first_nights(1).remove(0);
    let out = t.path().join("out");
    let o = run_night(&n, &pol, &t.path().join("state"), &out, &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("rule segments[1] high_balance failed for debtor H"),
        "{err}"
    );
    assert!(err.contains("Too many operations"), "{err}");
    assert!(!out.exists());
}

#[test]
fn parquet_inputs_give_the_same_decisions_as_csv() {
    use polars::prelude::*;
    let t = tempfile::tempdir().unwrap();
    let n = first_nights(1).remove(0);
    let to_parquet = |csv_path: &Path, name: &str| -> PathBuf {
        let mut df = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .try_into_reader_with_file_path(Some(csv_path.to_owned()))
            .unwrap()
            .finish()
            .unwrap();
        // Dates as real Parquet dates, as a warehouse export would have them.
        for c in ["issued_on", "due_on", "date"] {
            if let Ok(col) = df.column(c) {
                let days: Int32Chunked = col
                    .str()
                    .unwrap()
                    .iter()
                    .map(|v| {
                        v.map(|v| dunning::dates::to_days(dunning::dates::parse_date(v).unwrap()))
                    })
                    .collect();
                let s = days.with_name(c.into()).into_date().into_column();
                df.with_column(s).unwrap();
            }
        }
        let p = t.path().join(name);
        let f = std::fs::File::create(&p).unwrap();
        ParquetWriter::new(f).finish(&mut df).unwrap();
        p
    };
    let pq = Night {
        ledger: to_parquet(&n.ledger, "ledger.parquet"),
        debtors: to_parquet(&n.debtors, "debtors.parquet"),
        events: n.events.as_ref().map(|e| to_parquet(e, "events.parquet")),
        ..n.clone()
    };
    let a = t.path().join("csv");
    let b = t.path().join("pq");
    assert!(run_night(&n, &policy(), &t.path().join("s1"), &a, &[])
        .status
        .success());
    let o = run_night(&pq, &policy(), &t.path().join("s2"), &b, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Identical but for the event row numbers in `reason`: a Parquet file
    // has no header row, so its first row is row 1.
    let a = std::fs::read_to_string(a.join("decisions.csv")).unwrap();
    let b = std::fs::read_to_string(b.join("decisions.csv")).unwrap();
    let strip = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.split(" (events row").next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
    assert!(a.contains("(events row 5)") && b.contains("(events row 4)"));
    // A damaged debtors file (cut short; its footer overwritten; its footer
    // changed so that the Parquet reader panics) stops the night with an
    // error naming it, no panic printed, and nothing is written.
    let good = std::fs::read(&pq.debtors).unwrap();
    let n = good.len();
    let mut cut = good[..n / 2].to_vec();
    cut.extend_from_slice(&good[n - 8..]);
    let mut footer = good.clone();
    footer[n - 60..n - 8].fill(0x19);
    let panicking = footer_that_panics(&good, &t.path().join("probe.parquet"));
    for (k, bytes) in [cut, footer, panicking].into_iter().enumerate() {
        std::fs::write(&pq.debtors, &bytes).unwrap();
        let out = t.path().join(format!("damaged-{k}"));
        let o = run_night(&pq, &policy(), &t.path().join(format!("s-{k}")), &out, &[]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("debtors.parquet: "), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists());
    }
}

/// `good` (a Parquet file) with bytes of its footer changed so that Polars'
/// reader panics reading it: some damaged footers make its thrift decoder
/// panic (a field of the wrong type) where others give an error. Found by
/// a fixed sequence of changes, the first that panics (about one in forty
/// did when this was written).
fn footer_that_panics(good: &[u8], probe: &Path) -> Vec<u8> {
    use polars::prelude::*;
    let n = good.len();
    let footer = u32::from_le_bytes(good[n - 8..n - 4].try_into().unwrap()) as usize;
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut bytes = good.to_vec();
        for _ in 0..1 + next() % 5 {
            let i = n - 8 - footer + (next() as usize % footer);
            bytes[i] = next() as u8;
        }
        std::fs::write(probe, &bytes).unwrap();
        let read = dunning::expected_panic(|| {
            let f = std::fs::File::open(probe).unwrap();
            ParquetReader::new(f).finish().map(|_| ())
        });
        if read.is_err() {
            return bytes;
        }
    }
    panic!("no damaged footer made Polars' Parquet reader panic in 20,000 tries: the test needs another way to find one, or the guard is no longer needed")
}

#[test]
fn logs_never_carry_personal_data() {
    let t = tempfile::tempdir().unwrap();
    let mut log = String::new();
    for scenario in ["holds", "ladder", "segments"] {
        let dir = root().join("fixtures").join(scenario);
        let state = t.path().join(scenario);
        for n in nights(&dir) {
            for format in ["text", "json"] {
                let o = std::process::Command::new(bin())
                    .args(["--log-format", format, "run", "--policy"])
                    .arg(policy())
                    .arg("--ledger")
                    .arg(&n.ledger)
                    .arg("--debtors")
                    .arg(&n.debtors)
                    .args(
                        n.events
                            .iter()
                            .flat_map(|e| [std::ffi::OsStr::new("--events"), e.as_os_str()]),
                    )
                    .args(["--as-of", &n.date, "--state"])
                    .arg(&state)
                    .arg("--out")
                    .arg(t.path().join("out"))
                    .env("DUNNING_LOG", "trace")
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", stderr(&o));
                log.push_str(&stderr(&o));
            }
        }
        let mut rdr = csv::Reader::from_path(dir.join("debtors.csv")).unwrap();
        let headers = rdr.headers().unwrap().clone();
        for rec in rdr.records() {
            let rec = rec.unwrap();
            for col in ["name", "email", "phone", "address_line1", "address_line2"] {
                let i = headers.iter().position(|h| h == col).unwrap();
                let v = rec[i].trim();
                if v.len() > 3 {
                    assert!(!log.contains(v), "the log carries {col} {v:?}");
                }
            }
        }
    }
    assert!(log.contains("night done"), "the log was captured");
}

#[test]
fn a_broken_policy_reports_every_problem_at_once() {
    let t = tempfile::tempdir().unwrap();
    let pol = edited_policy(t.path(), |s| {
        s.replace("when: kind == \"business\"", "when: kind == ")
            .replace("level: 3\n", "level: 4\n")
            .replace("- call:collect", "- fax:collect")
            .replace("starts: deceased", "starts: died")
            .replace("otherwise: letter", "otherwise: pigeon")
    });
    let n = first_nights(1).remove(0);
    let o = run_night(
        &n,
        &pol,
        &t.path().join("state"),
        &t.path().join("out"),
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    for want in [
        "segments[0] business",
        "level 4 is out of order",
        "unknown channel `fax`",
        "unknown event kind `died`",
        "`pigeon` is neither `drop` nor another known channel",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(err.contains("the policy has 5 problem(s)"), "{err}");
}

#[test]
fn rules_readme_documents_every_variable() {
    let doc = std::fs::read_to_string(root().join("rules/README.md")).unwrap();
    for (name, ty, _) in dunning::script::VARIABLES
        .iter()
        .chain([&dunning::script::SEGMENT_VARIABLE])
    {
        assert!(
            doc.contains(&format!("| `{name}` | {ty} |")),
            "rules/README.md lacks `{name}`"
        );
    }
}

/// A night that cannot write its files (a full disk; here, a limit on the
/// size of the files it may write) stops with exit 1, names the file it
/// could not write, and commits nothing: no output folder, no night in
/// the state, nothing left beside the output.
#[test]
fn a_night_that_cannot_write_its_files_names_the_file_and_commits_nothing() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    generate(&data, 300, 1);
    let (state, out) = (t.path().join("state"), t.path().join("outs/out"));
    let night = Night {
        date: "2026-11-22".into(),
        dir: data.clone(),
        ledger: data.join("ledger.csv"),
        debtors: data.join("debtors.csv"),
        events: Some(data.join("events.csv")),
    };
    // Writes past 64 blocks fail with EFBIG ("File too large") rather
    // than kill the process: SIGXFSZ ignored by the shell is ignored by
    // the night it becomes.
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 64 && exec \"$0\" \"$@\"")
        .arg(bin())
        .args(night_args(&night, &policy(), &state, &out))
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(line.contains("cannot write "), "{line}");
    assert!(line.contains("File too large"), "{line}");
    assert_eq!(
        line.matches("File too large").count(),
        1,
        "the cause once: {line}"
    );
    assert!(!out.exists(), "no output folder");
    let beside: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(beside.is_empty(), "left beside the output: {beside:?}");
    let nights: Vec<_> = std::fs::read_dir(state.join("nights"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(nights.is_empty(), "a night in the state: {nights:?}");
}
