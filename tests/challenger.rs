//! Champion/challenger: a second policy decides a stable share of debtors.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn run_all(
    scenario: &str,
    policy: &Path,
    extra: &[&str],
    tmp: &Path,
    tag: &str,
) -> Vec<(String, PathBuf)> {
    let state = tmp.join(format!("state-{tag}"));
    let mut outs = Vec::new();
    for n in nights(&root().join("fixtures").join(scenario)) {
        let out = tmp.join(format!("out-{tag}-{}", n.date));
        let mut args: Vec<String> = vec!["-q".into(), "run".into(), "--policy".into()];
        args.push(policy.display().to_string());
        for (k, v) in [
            ("--ledger", &n.ledger),
            ("--debtors", &n.debtors),
            ("--state", &state),
            ("--out", &out),
        ] {
            args.push(k.into());
            args.push(v.display().to_string());
        }
        if let Some(e) = &n.events {
            args.push("--events".into());
            args.push(e.display().to_string());
        }
        args.push("--as-of".into());
        args.push(n.date.clone());
        args.extend(extra.iter().map(|s| s.to_string()));
        let o = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.status.success(), "{tag} {}: {}", n.date, stderr(&o));
        outs.push((n.date, out));
    }
    outs
}

/// decisions.csv by (debtor, currency): the whole row, strategy aside, and
/// the strategy.
fn rows(out: &Path) -> BTreeMap<(String, String), (String, String)> {
    let text = std::fs::read_to_string(out.join("decisions.csv")).unwrap();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let h = rdr.headers().unwrap().clone();
    let s = h
        .iter()
        .position(|c| c == "strategy")
        .expect("strategy column");
    rdr.records()
        .map(|r| {
            let r = r.unwrap();
            let body: Vec<&str> = r
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != s)
                .map(|(_, c)| c)
                .collect();
            (
                (r[0].to_owned(), r[1].to_owned()),
                (body.join(","), r[s].to_owned()),
            )
        })
        .collect()
}

#[test]
fn each_debtor_is_decided_by_its_strategy_the_same_every_night() {
    let tmp = tempfile::tempdir().unwrap();
    // The challenger: the second notice by e-mail instead of SMS, a day
    // earlier, agency placement from 50.00, and a grace period of 6 days
    // (its accounts are summed under its own grace days).
    let challenger = edited_policy(tmp.path(), |t| {
        assert!(t.contains("grace_days: 3\n"));
        t.replace("name: retail-fr\n", "name: retail-fr-challenger\n")
            .replace("grace_days: 3\n", "grace_days: 6\n")
            .replace("when: max_dpd >= 15\n", "when: max_dpd >= 14\n")
            .replace(
                "max_dpd >= 60 && overdue >= 100.00",
                "max_dpd >= 60 && overdue >= 50.00",
            )
    });
    let c = challenger.display().to_string();
    let mixed = run_all(
        "holds",
        &policy(),
        &["--challenger", &c, "--share", "50"],
        tmp.path(),
        "mixed",
    );
    let champ = run_all("holds", &policy(), &[], tmp.path(), "champ");
    let chall = run_all("holds", &challenger, &[], tmp.path(), "chall");

    let mut sides: BTreeMap<String, String> = BTreeMap::new();
    let mut differs = 0;
    for i in 0..mixed.len() {
        let (m, a, b) = (rows(&mixed[i].1), rows(&champ[i].1), rows(&chall[i].1));
        for (key, (row, strategy)) in &m {
            // The same debtor on the same side every night.
            let first = sides
                .entry(key.0.clone())
                .or_insert_with(|| strategy.clone());
            assert_eq!(first, strategy, "{key:?} changed sides on {}", mixed[i].0);
            // A debtor's decision depends only on its own history, so each
            // row is exactly what its strategy alone would have decided.
            let alone = if strategy == "champion" { &a } else { &b };
            assert_eq!(&alone[key].0, row, "{key:?} on {}", mixed[i].0);
            if a.get(key).map(|r| &r.0) != b.get(key).map(|r| &r.0) {
                differs += 1;
            }
        }
    }
    let challengers = sides.values().filter(|s| *s == "challenger").count();
    assert!(challengers > 0 && challengers < sides.len(), "{sides:?}");
    assert!(
        differs > 0,
        "the two policies never disagreed: the test proves nothing"
    );

    // summary.json and manifest.json record the split.
    let last = &mixed.last().unwrap().1;
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(last.join("summary.json")).unwrap()).unwrap();
    let by = &summary["by_strategy"];
    assert_eq!(by["challenger"]["policy"], "retail-fr-challenger");
    assert_eq!(by["champion"]["policy"], "retail-fr");
    let total = by["champion"]["accounts"].as_u64().unwrap()
        + by["challenger"]["accounts"].as_u64().unwrap();
    assert_eq!(total, summary["accounts"].as_u64().unwrap());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(last.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["challenger"]["share_percent"], "50.00");
    assert_eq!(
        manifest["challenger"]["policy"]["name"],
        "retail-fr-challenger"
    );
    // report.html sets them side by side, by level.
    let html = std::fs::read_to_string(last.join("report.html")).unwrap();
    assert!(html.contains("challenger <strong>retail-fr-challenger</strong> on 50.00 %"));
    let section = &html[html
        .find("<section id=\"strategies\">")
        .expect("strategies")..];
    for side in ["champion", "challenger"] {
        assert!(section.contains(&format!("<h3>{side}</h3>")), "{section}");
    }
}

#[test]
fn shares_of_0_and_100_and_a_changed_split_on_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let challenger = edited_policy(tmp.path(), |t| {
        t.replace("name: retail-fr\n", "name: other\n")
    });
    let c = challenger.display().to_string();
    for (share, want) in [("0", "champion"), ("100", "challenger")] {
        let outs = run_all(
            "ladder",
            &policy(),
            &["--challenger", &c, "--share", share],
            tmp.path(),
            share,
        );
        for (_, out) in &outs {
            for (key, (_, s)) in rows(out) {
                assert_eq!(s, want, "{key:?} with share {share}");
            }
        }
    }
    // Re-running a committed night with another split is refused: the
    // state recorded which policies decided it.
    let n = &nights(&root().join("fixtures/ladder"))[0];
    let state = tmp.path().join("state-0");
    let out = tmp.path().join("rerun");
    let o = run(&[
        "-q",
        "run",
        "--policy",
        policy().to_str().unwrap(),
        "--ledger",
        n.ledger.to_str().unwrap(),
        "--debtors",
        n.debtors.to_str().unwrap(),
        "--as-of",
        &n.date,
        "--state",
        state.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--challenger",
        &c,
        "--share",
        "10",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("another policy"), "{}", stderr(&o));

    // A share that is not a percentage is refused before anything runs.
    let o = run(&[
        "run",
        "--policy",
        "x",
        "--ledger",
        "x",
        "--debtors",
        "x",
        "--as-of",
        "2026-01-01",
        "--state",
        "x",
        "--out",
        "x",
        "--challenger",
        "x",
        "--share",
        "150",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a share"), "{}", stderr(&o));
}
