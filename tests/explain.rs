//! `dunning explain` and `run --trace`, on the holds scenario's nights.
//! Golden files under `fixtures/explain/` (re-bless with `DUNNING_BLESS=1`).

mod common;
use common::*;
use std::path::Path;

/// Runs every night of `fixtures/holds` but the last, and returns the state,
/// ready for the last night to be explained or run.
fn state_before_last(tmp: &Path) -> (std::path::PathBuf, Night) {
    let nights = nights(&root().join("fixtures/holds"));
    let state = tmp.join("state");
    let (last, before) = nights.split_last().unwrap();
    for n in before {
        let o = run_night(
            n,
            &policy(),
            &state,
            &tmp.join(format!("out-{}", n.date)),
            &[],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    (state, last.clone())
}

fn explain(night: &Night, state: &Path, debtor: &str, format: &str) -> std::process::Output {
    let mut args = vec![
        "-q".to_owned(),
        "explain".into(),
        "--debtor".into(),
        debtor.into(),
        "--policy".into(),
        policy().display().to_string(),
        "--ledger".into(),
        night.ledger.display().to_string(),
        "--debtors".into(),
        night.debtors.display().to_string(),
        "--as-of".into(),
        night.date.clone(),
        "--state".into(),
        state.display().to_string(),
        "--format".into(),
        format.into(),
    ];
    if let Some(e) = &night.events {
        args.push("--events".into());
        args.push(e.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args)
}

fn golden(name: &str, actual: &[u8]) {
    let path = root().join("fixtures/explain").join(name);
    if std::env::var_os("DUNNING_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read(&path).unwrap_or_else(|_| panic!("no golden {}", path.display()));
    assert!(
        want == actual,
        "{name} differs\n--- expected\n{}\n--- actual\n{}",
        String::from_utf8_lossy(&want),
        String::from_utf8_lossy(actual)
    );
}

#[test]
fn explain_shows_every_step_and_matches_the_night() {
    let tmp = tempfile::tempdir().unwrap();
    let (state, last) = state_before_last(tmp.path());
    let before = tree(&state);
    // H01 escalates, H02 is held (deceased), H08 held by a dispute.
    let mut text = Vec::new();
    for debtor in ["H01", "H02", "H08", "H17"] {
        let o = explain(&last, &state, debtor, "text");
        assert!(o.status.success(), "{debtor}: {}", stderr(&o));
        text.extend_from_slice(&o.stdout);
    }
    golden("holds-last-night.txt", &text);
    // Explain reads the state, never writes it.
    assert_eq!(before, tree(&state), "explain changed the state");

    // What explain says is what the night does; once the night is
    // committed, explaining it again reads the night before it, as a re-run
    // does, so the answers stay the same.
    let out = tmp.path().join("out-last");
    let o = run_night(&last, &policy(), &state, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let decisions = std::fs::read_to_string(out.join("decisions.csv")).unwrap();
    for row in decisions.lines().skip(1) {
        let cols: Vec<&str> = row.split(',').collect();
        let o = explain(&last, &state, cols[0], "json");
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let d = &v["accounts"][0]["decision"];
        assert_eq!(d["segment"], cols[2], "{row}");
        assert_eq!(d["level_before"].to_string(), cols[3], "{row}");
        assert_eq!(d["level_after"].to_string(), cols[4], "{row}");
        let actions: Vec<&str> = d["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(actions.join(";"), cols[5], "{row}");
        assert_eq!(d["held_by"], cols[6], "{row}");
    }
}

#[test]
fn explain_names_the_hold_event_and_the_fallbacks() {
    let tmp = tempfile::tempdir().unwrap();
    let (state, last) = state_before_last(tmp.path());
    let o = explain(&last, &state, "H08", "json");
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let a = &v["accounts"][0];
    assert_eq!(a["hold"]["name"], "dispute");
    assert_eq!(a["hold"]["event"], "dispute");
    assert!(a["hold"]["events_row"].as_u64().unwrap() >= 2);
    assert_eq!(a["decision"]["outcome"], "hold");
    assert_eq!(a["segments"].as_array().unwrap().len(), 3);
    assert_eq!(a["cure"]["cured"], false);

    // First night, on a state folder that does not exist yet: H10 has no
    // usable e-mail, so its reminder falls back to a letter.
    let first = &nights(&root().join("fixtures/holds"))[0];
    let o = explain(first, &tmp.path().join("no-state-yet"), "H10", "json");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !tmp.path().join("no-state-yet").exists(),
        "explain created the state"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ch = &v["accounts"][0]["channels"][0];
    assert_eq!(ch["wanted"], "email:reminder");
    assert_eq!(ch["emitted"], "letter:reminder");
    assert_eq!(ch["refused_by"], serde_json::json!(["email"]));
    let o = explain(first, &tmp.path().join("no-state-yet"), "H10", "text");
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("email:reminder -> letter:reminder (fallback: email not allowed)"),
        "{text}"
    );
    assert!(text.contains("level 1 reminder"), "{text}");
}

#[test]
fn explain_an_unknown_debtor_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (state, last) = state_before_last(tmp.path());
    let o = explain(&last, &state, "NOBODY", "text");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("debtor `NOBODY` has no account tonight"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn run_trace_writes_one_line_per_account_in_decision_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (state, last) = state_before_last(tmp.path());
    let out = tmp.path().join("out");
    let mut args = vec!["-q", "run", "--trace", "--policy"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    args.extend([
        policy().display().to_string(),
        "--ledger".into(),
        last.ledger.display().to_string(),
        "--debtors".into(),
        last.debtors.display().to_string(),
        "--events".into(),
        last.events.as_ref().unwrap().display().to_string(),
        "--as-of".into(),
        last.date.clone(),
        "--state".into(),
        state.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ]);
    let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    let trace = std::fs::read(out.join("trace.jsonl")).unwrap();
    golden("holds-last-night.trace.jsonl", &trace);
    let decisions = std::fs::read_to_string(out.join("decisions.csv")).unwrap();
    let rows: Vec<&str> = decisions.lines().skip(1).collect();
    let lines: Vec<serde_json::Value> = String::from_utf8(trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), lines.len());
    for (row, line) in rows.iter().zip(&lines) {
        let cols: Vec<&str> = row.split(',').collect();
        assert_eq!(line["debtor_id"], cols[0]);
        assert_eq!(line["currency"], cols[1]);
        assert_eq!(line["decision"]["level_after"].to_string(), cols[4]);
    }
    // The trace is listed in the manifest like every other output.
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(manifest.contains("trace.jsonl"));
    // No personal data: names, e-mails and phones of the debtors file.
    let debtors = std::fs::read_to_string(&last.debtors).unwrap();
    let text = std::fs::read_to_string(out.join("trace.jsonl")).unwrap();
    let mut rdr = csv::Reader::from_reader(debtors.as_bytes());
    let headers = rdr.headers().unwrap().clone();
    for rec in rdr.records() {
        let rec = rec.unwrap();
        for (h, v) in headers.iter().zip(rec.iter()) {
            if ["name", "email", "phone", "address_line1"].contains(&h) && v.len() > 3 {
                assert!(!text.contains(v), "trace.jsonl holds {h} {v}");
            }
        }
    }
}
