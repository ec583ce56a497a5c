//! Differential test: `rules/retail-fr` against an independent Python
//! implementation of shared/spec/retail-fr.md (tests/reference/retail_fr.py)
//! on randomly generated multi-night scenarios with payments, holds, flags,
//! consents and several currencies. The contract columns must agree on every
//! account of every night.

mod common;
use common::*;
use std::process::Command;

fn contract_columns(csv_bytes: &[u8]) -> Vec<Vec<String>> {
    let mut rdr = csv::Reader::from_reader(csv_bytes);
    let headers = rdr.headers().unwrap().clone();
    let want = [
        "debtor_id",
        "currency",
        "segment",
        "level_before",
        "level_after",
        "actions",
        "held_by",
    ];
    let idx: Vec<usize> = want
        .iter()
        .map(|w| {
            headers
                .iter()
                .position(|h| h == *w)
                .unwrap_or_else(|| panic!("no column {w}"))
        })
        .collect();
    rdr.records()
        .map(|r| {
            let r = r.unwrap();
            idx.iter().map(|&i| r[i].to_owned()).collect()
        })
        .collect()
}

#[test]
fn engine_agrees_with_the_independent_reference_on_generated_nights() {
    let mut compared = 0;
    for seed in 1..=12u32 {
        let tmp = tempfile::tempdir().unwrap();
        let scen = tmp.path().join("scenario");
        let st = Command::new("python3")
            .arg(root().join("tests/reference/retail_fr.py"))
            .args(["gen", "--seed", &seed.to_string(), "--dir"])
            .arg(&scen)
            .status()
            .expect("python3 runs the reference implementation");
        assert!(st.success());
        let state = tmp.path().join("state");
        for night in nights(&scen) {
            let out = tmp.path().join(format!("out-{}", night.date));
            let o = run_night(&night, &policy(), &state, &out, &[]);
            assert!(
                o.status.success(),
                "seed {seed} {}: {}",
                night.date,
                stderr(&o)
            );
            let ours = contract_columns(&std::fs::read(out.join("decisions.csv")).unwrap());
            let theirs = contract_columns(&std::fs::read(night.dir.join("expected.csv")).unwrap());
            for (a, b) in ours.iter().zip(&theirs) {
                assert_eq!(
                    a, b,
                    "seed {seed}, night {}: engine vs reference",
                    night.date
                );
            }
            assert_eq!(
                ours.len(),
                theirs.len(),
                "seed {seed}, night {}: row count",
                night.date
            );
            compared += ours.len();
        }
    }
    assert!(compared > 1000, "only {compared} rows compared");
}
