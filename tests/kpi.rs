//! `dunning report`: KPIs across the nights of `fixtures/holds`, checked
//! against figures computed here from the nights' own decisions.csv files:
//! per night and level, the accounts that stood at the level, how many were
//! cured or moved up, and what they recovered; and the promise to pay that
//! fell due.

mod common;
use common::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

type Key = (String, String);

fn decisions(path: &Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    r.records()
        .map(|rec| {
            h.iter()
                .cloned()
                .zip(rec.unwrap().iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

fn cents(s: &str) -> i64 {
    let (i, f) = s.split_once('.').unwrap_or((s, "0"));
    i.parse::<i64>().unwrap() * 100 + format!("{f:0<2}")[..2].parse::<i64>().unwrap()
}

#[test]
fn kpis_across_nights_match_the_nights_decisions() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let nights = nights(&root().join("fixtures/holds"));
    let mut expected: BTreeMap<(String, u32), (u64, u64, u64, i64)> = BTreeMap::new();
    let mut before: HashMap<Key, (u32, i64)> = HashMap::new();
    let mut overdue_by_night: Vec<HashMap<String, i64>> = Vec::new();
    for n in &nights {
        let out = tmp.path().join(&n.date);
        let o = run_night(n, &policy(), &state, &out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let mut after = HashMap::new();
        let mut by_debtor: HashMap<String, i64> = HashMap::new();
        for d in decisions(&out.join("decisions.csv")) {
            let key = (d["debtor_id"].clone(), d["currency"].clone());
            let from: u32 = d["level_before"].parse().unwrap();
            let to: u32 = d["level_after"].parse().unwrap();
            let overdue = cents(&d["overdue"]);
            *by_debtor.entry(d["debtor_id"].clone()).or_default() += overdue;
            if from > 0 {
                let e = expected.entry((n.date.clone(), from)).or_default();
                e.0 += 1;
                if d["outcome"] == "cure" {
                    e.1 += 1;
                }
                if to > from {
                    e.2 += 1;
                }
                // The state only remembers accounts above level 0.
                let (_, was) = before[&key];
                e.3 += (was - overdue).max(0);
            }
            if to > 0 {
                after.insert(key, (to, overdue));
            }
        }
        before = after;
        overdue_by_night.push(by_debtor);
    }

    let out = tmp.path().join("kpis");
    let o = run(&[
        "report",
        "--state",
        state.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut got: BTreeMap<(String, u32), (u64, u64, u64, i64)> = BTreeMap::new();
    for r in decisions(&out.join("kpis.csv")) {
        assert_eq!(r["strategy"], "champion");
        let e = got
            .entry((r["night"].clone(), r["level"].parse().unwrap()))
            .or_default();
        e.0 = r["accounts"].parse().unwrap();
        e.1 = r["cured"].parse().unwrap();
        e.2 = r["rolled"].parse().unwrap();
        if !r["recovered"].is_empty() {
            e.3 += cents(&r["recovered"]);
        }
        // Rates are the counts' ratio, to a tenth of a percent.
        let a: u64 = r["accounts"].parse().unwrap();
        let rolled: u64 = r["rolled"].parse().unwrap();
        let tenths = (rolled * 1000 + a / 2) / a;
        assert_eq!(
            r["roll_rate_percent"],
            format!("{}.{}", tenths / 10, tenths % 10)
        );
    }
    assert_eq!(got, expected);
    assert!(
        got.values().any(|v| v.2 > 0),
        "nothing rolled: the test proves little"
    );

    // H06 promised 200.00 on 2026-01-11 for 2026-01-12: first seen on the
    // 2026-01-12 night, judged on the first night after its date.
    let promises = decisions(&out.join("promises.csv"));
    let h06_then = overdue_by_night[1]["H06"];
    let h06_after = overdue_by_night[2].get("H06").copied().unwrap_or(0);
    let kept = h06_after <= (h06_then - 20_000).max(0);
    let judged: Vec<_> = promises
        .iter()
        .filter(|p| p["night"] == nights[2].date)
        .collect();
    assert_eq!(judged.len(), 1, "{promises:?}");
    assert_eq!(
        judged[0][if kept { "kept" } else { "broken" }],
        "1",
        "{promises:?}"
    );

    // The HTML page: self-contained, with a chart per figure.
    let html = std::fs::read_to_string(out.join("kpis.html")).unwrap();
    assert!(!html.contains("<script") && !html.contains("src="));
    assert!(html.contains("Roll rate by level"));
    assert!(html.matches("<svg").count() >= 4, "charts");
}
