//! `dunning check` on a corpus of broken policies: `fixtures/policies/<case>/
//! case.yaml` edits a copy of rules/retail-fr; `expected.txt` is the exact
//! output of `dunning check policy` (positions included) and `exit` the
//! exit code. Re-bless with `DUNNING_BLESS=1` and review the diff.

mod common;
use common::*;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    about: String,
    exit: i32,
    edits: Vec<Edit>,
}

#[test]
fn every_broken_policy_gets_its_exact_errors() {
    let dirs = corpus("policies");
    assert!(dirs.len() >= 15, "{} cases", dirs.len());
    let bless = std::env::var_os("DUNNING_BLESS").is_some();
    let mut failures = Vec::new();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let case: Case =
            serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("case.yaml")).unwrap())
                .unwrap_or_else(|e| panic!("{name}/case.yaml: {e}"));
        assert!(!case.about.is_empty());
        let tmp = tempfile::tempdir().unwrap();
        let pol = tmp.path().join("policy");
        copy_tree(&policy(), &pol);
        apply_edits(&name, &pol, &case.edits);
        let o = std::process::Command::new(bin())
            .current_dir(tmp.path())
            .args(["check", "policy"])
            .output()
            .unwrap();
        let stdout = String::from_utf8(o.stdout).unwrap();
        let code = o.status.code().unwrap();
        let expected = dir.join("expected.txt");
        if bless {
            std::fs::write(&expected, &stdout).unwrap();
        } else {
            let want = std::fs::read_to_string(&expected).unwrap_or_default();
            if want != stdout || code != case.exit {
                failures.push(format!(
                    "{name}: exit {code} (expected {})\n--- expected\n{want}--- actual\n{stdout}",
                    case.exit
                ));
            }
        }
        // The JSON form says the same, for CI.
        let o = std::process::Command::new(bin())
            .current_dir(tmp.path())
            .args(["check", "policy", "--format", "json"])
            .output()
            .unwrap();
        assert_eq!(o.status.code().unwrap(), code, "{name}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["ok"], serde_json::Value::Bool(code == 0), "{name}");
        // Problems are a line each; the list of rules that run in Rhai
        // (indented, after "rules:") is not one.
        let lines = stdout
            .lines()
            .filter(|l| {
                !l.starts_with("rules: ") && !l.starts_with("compliance: ") && !l.starts_with("  ")
            })
            .count()
            - 1;
        assert_eq!(v["problems"].as_array().unwrap().len(), lines, "{name}");
        if code == 0 {
            let rules = v["rules"].as_array().unwrap();
            let rhai = rules.iter().filter(|r| r["runs"] == "rhai").count();
            let summary = format!(
                "rules: {} of {} evaluated as columns",
                rules.len() - rhai,
                rules.len()
            );
            assert!(stdout.contains(&summary), "{name}: {stdout}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_shipped_policy_is_clean() {
    let o = run(&["check", policy().to_str().unwrap()]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.ends_with(": ok\n"), "{text}");
}
