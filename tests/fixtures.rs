//! Golden nights: every scenario under `fixtures/` is run night after night
//! on one state folder, and each night's `decisions.csv` (and `rejects.csv`
//! and `summary.json` where the fixture has them; the last night of each has
//! its summary) must match `expected/` byte for byte.
//!
//! To accept new output after a deliberate change, run with
//! `DUNNING_BLESS=1` and review the diff of `fixtures/` before committing.

mod common;
use common::*;

fn scenario(name: &str) {
    let dir = root().join("fixtures").join(name);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let bless = std::env::var_os("DUNNING_BLESS").is_some();
    let mut failures = Vec::new();
    let nights = nights(&dir);
    assert!(nights.len() >= 2, "{name}: a scenario spans several nights");
    let last = nights.last().unwrap().date.clone();
    for night in &nights {
        let out = tmp.path().join(format!("out-{}", night.date));
        let o = run_night(night, &policy(), &state, &out, &[]);
        assert!(o.status.success(), "{name} {}: {}", night.date, stderr(&o));
        for file in ["decisions.csv", "rejects.csv", "summary.json"] {
            let expected = night.dir.join("expected").join(file);
            let actual = std::fs::read(out.join(file)).unwrap();
            if bless {
                let wanted =
                    file == "decisions.csv" || (file == "summary.json" && night.date == last);
                if wanted || expected.exists() {
                    std::fs::create_dir_all(expected.parent().unwrap()).unwrap();
                    std::fs::write(&expected, &actual).unwrap();
                }
                continue;
            }
            if !expected.exists() {
                assert_ne!(
                    file, "decisions.csv",
                    "{name} {}: no golden decisions.csv",
                    night.date
                );
                continue;
            }
            let want = std::fs::read(&expected).unwrap();
            if want != actual {
                failures.push(format!(
                    "{name} {} {file} differs\n--- expected\n{}\n--- actual\n{}",
                    night.date,
                    String::from_utf8_lossy(&want),
                    String::from_utf8_lossy(&actual)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn ladder_walks_one_level_per_night_with_a_seven_day_gap() {
    scenario("ladder");
}

#[test]
fn holds_freeze_the_level_and_channels_fall_back() {
    scenario("holds");
}

#[test]
fn segments_thresholds_and_currencies() {
    scenario("segments");
}
