//! The bad-input corpus: every `fixtures/bad/<case>/case.yaml` edits a
//! small good night (40 debtors with one late item each, as-of 2026-03-01)
//! or the policy, and says what must come of it: rejected rows named by
//! file, row and column (the night goes on), or exit 2 with a message that
//! names them, no output folder and no state.

mod common;
use common::*;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Case {
    about: String,
    #[serde(default)]
    ledger: Option<String>,
    #[serde(default)]
    ledger_header: Option<String>,
    #[serde(default)]
    ledger_rows: Vec<String>,
    #[serde(default)]
    debtors_rows: Vec<String>,
    #[serde(default)]
    events_rows: Vec<String>,
    #[serde(default)]
    transform: Option<Transform>,
    #[serde(default)]
    files: BTreeMap<String, String>,
    #[serde(default)]
    policy_edits: Vec<Edit>,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Transform {
    file: String,
    op: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Expect {
    exit: i32,
    #[serde(default)]
    stderr: Vec<String>,
    /// Lines of rejects.csv, each given by its start; `[]` means none.
    #[serde(default)]
    rejects: Option<Vec<String>>,
    #[serde(default)]
    decisions: Vec<String>,
    #[serde(default)]
    files_absent: Vec<String>,
    #[serde(default)]
    eml_not_containing: Vec<String>,
}

const LEDGER_HEADER: &str = "item_id,debtor_id,currency,amount,open_amount,issued_on,due_on";

fn inputs(dir: &Path, case: &Case) {
    let wide =
        case.ledger_header.is_some() || matches!(&case.transform, Some(t) if t.op == "huge_field");
    let mut ledger = format!(
        "{}\n",
        case.ledger_header.as_deref().unwrap_or(if wide {
            "item_id,debtor_id,currency,amount,open_amount,issued_on,due_on,product,reference"
        } else {
            LEDGER_HEADER
        })
    );
    let mut debtors = String::from(
        "debtor_id,name,kind,language,country,email,phone,address_line1,address_line2,postal_code,city\n",
    );
    for i in 1..=40 {
        ledger.push_str(&format!(
            "I{i:03},D{i:02},EUR,100.00,100.00,2026-01-01,2026-02-01{}\n",
            if wide {
                format!(",card,F-{i:03}")
            } else {
                String::new()
            }
        ));
        debtors.push_str(&format!(
            "D{i:02},Debtor {i},person,fr,FR,d{i:02}@example.fr,+336123456{i:02},{i} rue de la Paix,,75002,Paris\n"
        ));
    }
    for r in &case.ledger_rows {
        ledger.push_str(r);
        ledger.push('\n');
    }
    for r in &case.debtors_rows {
        debtors.push_str(r);
        debtors.push('\n');
    }
    let mut events = String::from("debtor_id,date,kind,until,amount,note\n");
    for i in 1..=40 {
        events.push_str(&format!("D{i:02},2026-02-15,contact_outcome,,,no answer\n"));
    }
    for r in &case.events_rows {
        events.push_str(r);
        events.push('\n');
    }
    if let Some(l) = &case.ledger {
        ledger = l.clone();
    }
    let mut files: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    files.insert("ledger", ledger.into_bytes());
    files.insert("debtors", debtors.into_bytes());
    files.insert("events", events.into_bytes());
    if let Some(t) = &case.transform {
        let f = files
            .get_mut(t.file.as_str())
            .expect("ledger, debtors or events");
        match t.op.as_str() {
            "bom" => f.splice(0..0, [0xEF, 0xBB, 0xBF]).for_each(drop),
            "crlf" => {
                *f = String::from_utf8(f.clone())
                    .unwrap()
                    .replace('\n', "\r\n")
                    .into_bytes()
            }
            "invalid_utf8" => {
                f.extend_from_slice(b"IX,D01,EUR,10.00,10.00,2026-01-01,2026-02-\xff\xfe\n")
            }
            "huge_field" => {
                f.extend_from_slice(b"IX,D01,EUR,10.00,10.00,2026-01-01,2026-02-01,card,");
                f.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
                f.push(b'\n');
            }
            other => panic!("unknown transform {other}"),
        }
    }
    for (name, bytes) in files {
        std::fs::write(dir.join(format!("{name}.csv")), bytes).unwrap();
    }
}

#[test]
fn every_bad_input_gets_its_answer() {
    let dirs = corpus("bad");
    assert!(dirs.len() >= 30, "{} cases", dirs.len());
    let mut failures = Vec::new();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let case: Case =
            serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("case.yaml")).unwrap())
                .unwrap_or_else(|e| panic!("{name}/case.yaml: {e}"));
        assert!(!case.about.is_empty());
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let work = t.join("work");
        std::fs::create_dir_all(&work).unwrap();
        inputs(&work, &case);
        let pol = t.join("policy");
        copy_tree(&policy(), &pol);
        for (f, text) in &case.files {
            std::fs::write(pol.join(f), text).unwrap();
        }
        apply_edits(&name, &pol, &case.policy_edits);
        let out = work.join("out");
        let state = work.join("state");
        let o = std::process::Command::new(bin())
            .current_dir(t)
            .args([
                "-q",
                "run",
                "--policy",
                "policy",
                "--ledger",
                "work/ledger.csv",
            ])
            .args([
                "--debtors",
                "work/debtors.csv",
                "--events",
                "work/events.csv",
            ])
            .args([
                "--as-of",
                "2026-03-01",
                "--state",
                "work/state",
                "--out",
                "work/out",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        let mut fail = |m: String| failures.push(format!("{name}: {m}"));
        let code = o.status.code().unwrap_or(-1);
        if code != case.expect.exit {
            fail(format!("exit {code}, expected {}\n{err}", case.expect.exit));
            continue;
        }
        for s in &case.expect.stderr {
            if !err.contains(s.as_str()) {
                fail(format!("stderr lacks `{s}`:\n{err}"));
            }
        }
        if code != 0 {
            // Nothing half-done: no output folder (nor its staging), no night.
            let left: Vec<String> = std::fs::read_dir(&work)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("out"))
                .collect();
            if !left.is_empty() {
                fail(format!("left behind: {left:?}"));
            }
            let nights = state.join("nights");
            if nights.exists() && std::fs::read_dir(&nights).unwrap().next().is_some() {
                fail("a night was committed".into());
            }
            continue;
        }
        let rejects = std::fs::read_to_string(out.join("rejects.csv")).unwrap();
        if let Some(want) = &case.expect.rejects {
            let lines: Vec<&str> = rejects.lines().skip(1).collect();
            if want.is_empty() && !lines.is_empty() {
                fail(format!("unexpected rejects:\n{rejects}"));
            }
            for w in want {
                if !lines.iter().any(|l| l.starts_with(w.as_str())) {
                    fail(format!("no reject `{w}` in:\n{rejects}"));
                }
            }
        }
        let decisions = std::fs::read_to_string(out.join("decisions.csv")).unwrap();
        for d in &case.expect.decisions {
            if !decisions.lines().any(|l| l.starts_with(d.as_str())) {
                fail(format!("no decision `{d}`"));
            }
        }
        for f in &case.expect.files_absent {
            if out.join(f).exists() || work.join(f).exists() {
                fail(format!("{f} was written"));
            }
        }
        if !case.expect.eml_not_containing.is_empty() {
            for e in std::fs::read_dir(out.join("emails")).unwrap() {
                let bytes = std::fs::read(e.unwrap().path()).unwrap();
                let text = String::from_utf8_lossy(&bytes);
                for s in &case.expect.eml_not_containing {
                    if text.contains(s.as_str()) {
                        fail(format!("an e-mail contains {s:?}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
