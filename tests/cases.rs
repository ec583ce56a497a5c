//! `dunning test`: the shipped policy's own cases pass; a policy that
//! strays from them fails with a readable diff; broken case files stop the
//! run with their position.

mod common;
use common::*;

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn retail_fr_ships_at_least_25_passing_cases() {
    let o = run(&["-q", "test", policy().to_str().unwrap()]);
    let text = out(&o);
    assert!(o.status.success(), "{text}{}", stderr(&o));
    let line = text.lines().last().unwrap();
    let passed: usize = line
        .strip_prefix("ok: ")
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("last line: {line}"));
    assert!(passed >= 25, "{passed} cases");
    assert!(line.ends_with("passed, 0 failed"), "{line}");
}

#[test]
fn a_policy_that_strays_from_its_cases_fails_them_with_a_diff() {
    let tmp = tempfile::tempdir().unwrap();
    // The reminder one day later, and the high-balance threshold lower.
    let pol = edited_policy(tmp.path(), |t| {
        t.replace("when: max_dpd >= 5\n", "when: max_dpd >= 6\n")
            .replace("overdue >= 5000.00", "overdue >= 4000.00")
    });
    let o = run(&["-q", "test", pol.to_str().unwrap()]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("case ladder.yaml: reminder at exactly 5 days past due ... FAILED"),
        "{text}"
    );
    // The failure names the case's file and line, and what differs.
    let tests_dir = pol.join("tests").join("ladder.yaml");
    assert!(
        text.contains(&format!(
            "---- {}:10: reminder at exactly 5 days past due ----",
            tests_dir.display()
        )),
        "{text}"
    );
    assert!(text.contains("  level: expected 1, got 0"), "{text}");
    assert!(
        text.contains("  actions: expected [email:reminder], got []"),
        "{text}"
    );
    assert!(
        text.contains("  segment: expected retail, got high_balance"),
        "{text}"
    );
    assert!(
        text.contains("  decided: D1 EUR: segment retail, level 0 -> 0"),
        "{text}"
    );
    let last = text.lines().last().unwrap();
    assert!(last.starts_with("FAILED: "), "{last}");
    assert!(!last.ends_with(" 0 failed"), "{last}");
}

#[test]
fn filter_runs_only_the_matching_cases() {
    let o = run(&[
        "-q",
        "test",
        policy().to_str().unwrap(),
        "--filter",
        "payment plan",
    ]);
    let text = out(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.ends_with("ok: 3 passed, 0 failed\n"), "{text}");
}

#[test]
fn a_broken_case_file_names_its_position() {
    let tmp = tempfile::tempdir().unwrap();
    let pol = edited_policy(tmp.path(), |t| t);
    std::fs::write(
        pol.join("tests/zz-broken.yaml"),
        "cases:\n  - name: typo\n    as_of: 2026-03-01\n    acount: { overdue: \"1.00\", max_dpd: 9 }\n    expect: { level: 0 }\n",
    )
    .unwrap();
    let o = run(&["-q", "test", pol.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    let err = stderr(&o);
    assert!(err.contains("zz-broken.yaml:4:"), "{err}");
    assert!(err.contains("unknown field `acount`"), "{err}");

    // A case whose input the ledger checks would reject is an error too,
    // never a silent pass.
    std::fs::write(
        pol.join("tests/zz-broken.yaml"),
        "cases:\n  - name: bad amount\n    as_of: 2026-03-01\n    ledger: [{ open: \"abc\", due: 2026-02-01 }]\n    expect: { level: 0 }\n",
    )
    .unwrap();
    let o = run(&["-q", "test", pol.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    let err = stderr(&o);
    assert!(err.contains("zz-broken.yaml:2: case `bad amount`"), "{err}");
    assert!(err.contains("rejected"), "{err}");
}

#[test]
fn a_policy_without_cases_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let pol = edited_policy(tmp.path(), |t| t);
    std::fs::remove_dir_all(pol.join("tests")).unwrap();
    let o = run(&["-q", "test", pol.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no test cases"), "{}", stderr(&o));
}
