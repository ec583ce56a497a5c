//! `dunning diff`: two policy versions on the same fixture nights.

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// Runs every night of a scenario under `policy` on its own state and
/// returns the output folders, night by night.
fn all_nights(scenario: &str, policy: &Path, tmp: &Path, tag: &str) -> Vec<PathBuf> {
    let nights = nights(&root().join("fixtures").join(scenario));
    let state = tmp.join(format!("state-{tag}"));
    let mut outs = Vec::new();
    for n in &nights {
        let out = tmp.join(format!("out-{tag}-{}", n.date));
        let o = run_night(n, policy, &state, &out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        outs.push(out);
    }
    outs
}

fn last_night(scenario: &str, policy: &Path, tmp: &Path, tag: &str) -> PathBuf {
    all_nights(scenario, policy, tmp, tag).pop().unwrap()
}

/// The first 12 hex digits of a night's policy hash, as diff shows them.
fn short_sha(out: &Path) -> String {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    m["policy"]["sha256"].as_str().unwrap()[..12].to_owned()
}

fn golden(name: &str, actual: &str) {
    let path = root().join("fixtures/diff").join(name);
    if std::env::var_os("DUNNING_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert!(
        want == actual,
        "{name} differs\n--- expected\n{want}\n--- actual\n{actual}"
    );
}

#[test]
fn diff_of_two_policy_versions_on_one_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    // Version 2: the agency from 200.00 instead of 100.00, and the
    // high-balance segment from 1000.00.
    let v2 = edited_policy(tmp.path(), |t| {
        t.replace(
            "max_dpd >= 60 && overdue >= 100.00",
            "max_dpd >= 60 && overdue >= 200.00",
        )
        .replace("overdue >= 5000.00", "overdue >= 1000.00")
        .replace("version: \"1\"", "version: \"2\"")
    });
    let all_a = all_nights("ladder", &policy(), tmp.path(), "a");
    let all_b = all_nights("ladder", &v2, tmp.path(), "b");
    // Every night is compared; the golden file holds them all.
    let mut text = String::new();
    for (a, b) in all_a.iter().zip(&all_b) {
        let (sa, sb) = (a.to_str().unwrap(), b.to_str().unwrap());
        let o = run(&["diff", sa, sb]);
        assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
        text.push_str(&format!(
            "$ dunning diff A B   # {}, exit {}\n",
            a.file_name()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("out-a-"),
            o.status.code().unwrap()
        ));
        text.push_str(
            &String::from_utf8(o.stdout)
                .unwrap()
                .replace(sa, "A")
                .replace(sb, "B")
                .replace(&short_sha(a), "<sha v1>")
                .replace(&short_sha(b), "<sha v2>"),
        );
        text.push('\n');
    }
    golden("ladder-v1-v2.txt", &text);
    let (a, b) = (&all_a[all_a.len() - 1], &all_b[all_b.len() - 1]);
    let (sa, sb) = (a.to_str().unwrap(), b.to_str().unwrap());

    let o = run(&["diff", sa, sb, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["identical"], false);
    assert!(v["decisions_changed"].as_u64().unwrap() > 0);
    assert_eq!(v["same_inputs"], true);
    assert!(v["policy_a"]
        .as_str()
        .unwrap()
        .starts_with("retail-fr version 1"));
    assert!(v["policy_b"]
        .as_str()
        .unwrap()
        .starts_with("retail-fr version 2"));
    // The level matrix adds up to the accounts both sides list.
    let total: u64 = v["levels"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|m| m.as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    let both = v["accounts_a"].as_u64().unwrap() - v["only_a"].as_u64().unwrap();
    assert_eq!(total, both);

    // CSV: one row per differing account, with both sides' reasons.
    let o = run(&["diff", sa, sb, "--format", "csv"]);
    assert_eq!(o.status.code(), Some(1));
    let csv = String::from_utf8(o.stdout).unwrap();
    let rows = csv.lines().count() - 1;
    assert_eq!(
        rows as u64,
        v["decisions_changed"].as_u64().unwrap() + v["reasons_changed"].as_u64().unwrap()
    );
    assert!(csv.starts_with("debtor_id,currency,change,segment_a,segment_b,"));
}

#[test]
fn the_same_policy_twice_is_identical_and_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let a = last_night("holds", &policy(), tmp.path(), "a");
    let b = last_night("holds", &policy(), tmp.path(), "b");
    let o = run(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("identical"));

    let missing = tmp.path().join("nope");
    let o = run(&["diff", a.to_str().unwrap(), missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nope/decisions.csv"), "{}", stderr(&o));
}
