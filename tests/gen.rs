//! `dunning gen`: deterministic synthetic nights with realistic shapes, that
//! the engine reads without a single reject, as CSV or Parquet.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn gen(out: &Path, n: &str, seed: &str, format: &str) {
    let o = run(&[
        "gen",
        "--debtors",
        n,
        "--seed",
        seed,
        "--out",
        out.to_str().unwrap(),
        "--format",
        format,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn rows(path: &Path) -> Vec<csv::StringRecord> {
    csv::Reader::from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn same_seed_same_bytes_and_realistic_shapes() {
    let t = tempfile::tempdir().unwrap();
    let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
    gen(&a, "5000", "42", "csv");
    gen(&b, "5000", "42", "csv");
    gen(&c, "5000", "43", "csv");
    assert_eq!(tree(&a), tree(&b), "same seed, other bytes");
    assert_ne!(tree(&a), tree(&c), "another seed, same bytes");

    let debtors = rows(&a.join("debtors.csv"));
    let ledger = rows(&a.join("ledger.csv"));
    let events = rows(&a.join("events.csv"));
    assert_eq!(debtors.len(), 5000);
    let mut per_debtor: BTreeMap<&str, usize> = BTreeMap::new();
    let mut currencies: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in &ledger {
        *per_debtor.entry(&r[1]).or_default() += 1;
        currencies.entry(&r[1]).or_default().insert(&r[2]);
        let amount: f64 = r[3].parse().unwrap();
        let open: f64 = r[4].parse().unwrap();
        assert!(amount >= 1.0 && open >= 0.0 && open <= amount, "{r:?}");
    }
    assert_eq!(per_debtor.len(), 5000, "every debtor has items");
    assert!(per_debtor.values().all(|n| (1..=8).contains(n)));
    assert!(per_debtor.values().any(|n| *n == 8));
    let multi = currencies.values().filter(|c| c.len() > 1).count();
    assert!(
        (100..500).contains(&multi),
        "{multi} multi-currency debtors"
    );
    let business = debtors.iter().filter(|r| &r[2] == "business").count();
    assert!((50..300).contains(&business), "{business} businesses");
    let kinds: BTreeSet<&str> = events.iter().map(|r| &r[2]).collect();
    for k in [
        "promise_to_pay",
        "payment_plan",
        "dispute",
        "dispute_resolved",
        "insolvency",
        "insolvency_closed",
        "do_not_contact",
        "contact_outcome",
        "deceased",
    ] {
        assert!(kinds.contains(k), "no {k} event");
    }

    // The engine reads it without a reject, and a good share is late.
    let out = t.path().join("out");
    let o = run_generated(&a, "csv", "2026-11-22", &t.path().join("st"), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(rows(&out.join("rejects.csv")).len(), 0);
    let decisions = rows(&out.join("decisions.csv"));
    let escalated = decisions.iter().filter(|r| &r[4] != "0").count();
    assert!(
        escalated * 2 > decisions.len(),
        "{escalated} of {}",
        decisions.len()
    );
}

#[test]
fn parquet_and_csv_give_the_same_night() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("csv"), t.path().join("pq"));
    gen(&a, "3000", "5", "csv");
    gen(&b, "3000", "5", "parquet");
    let night = |dir: &Path, ext: &str, tag: &str| {
        let out = t.path().join(format!("out-{tag}"));
        let state = t.path().join(format!("st-{tag}"));
        let o = run_generated(dir, ext, "2026-11-22", &state, &out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        // Every column but the reason, which names an event's row: a CSV
        // row counts the header, a Parquet row does not.
        rows(&out.join("decisions.csv"))
            .iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .filter(|(i, _)| *i != 12)
                    .map(|(_, c)| c.to_owned())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(night(&a, "csv", "a"), night(&b, "parquet", "b"));
}

/// `--compression` changes how the Parquet pages are compressed (Snappy
/// unless asked), never what they hold.
#[test]
fn parquet_compression_changes_only_the_bytes() {
    use polars::prelude::*;
    let t = tempfile::tempdir().unwrap();
    let snappy = t.path().join("snappy");
    gen(&snappy, "500", "3", "parquet");
    for (codec, stored) in [
        ("zstd", "Zstd"),
        ("lz4", "Lz4Raw"),
        ("none", "Uncompressed"),
    ] {
        let other = t.path().join(codec);
        let o = run(&[
            "gen",
            "--debtors",
            "500",
            "--seed",
            "3",
            "--out",
            other.to_str().unwrap(),
            "--format",
            "parquet",
            "--compression",
            codec,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        for file in ["ledger.parquet", "debtors.parquet", "events.parquet"] {
            let read = |dir: &Path| {
                let mut r = ParquetReader::new(std::fs::File::open(dir.join(file)).unwrap());
                let codecs: BTreeSet<String> = r
                    .get_metadata()
                    .unwrap()
                    .row_groups
                    .iter()
                    .flat_map(|g| {
                        g.parquet_columns()
                            .iter()
                            .map(|c| format!("{:?}", c.compression()))
                    })
                    .collect();
                (r.finish().unwrap(), codecs)
            };
            let ((a, a_codecs), (b, b_codecs)) = (read(&snappy), read(&other));
            assert!(a.equals_missing(&b), "{codec}: {file}");
            assert_eq!(a_codecs, BTreeSet::from(["Snappy".to_owned()]), "{file}");
            assert_eq!(
                b_codecs,
                BTreeSet::from([stored.to_owned()]),
                "{codec}: {file}"
            );
        }
    }
}
