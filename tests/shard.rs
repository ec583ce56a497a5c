//! `run --shard K/N` + `dunning merge` give byte for byte the unsharded
//! night, night after night (each shard on its own state).

mod common;
use common::*;
use std::path::Path;

fn night(g: &Path, as_of: &str, state: &Path, out: &Path, extra: &[&str]) {
    let mut extra = extra.to_vec();
    extra.push("--trace");
    let o = run_generated(g, "csv", as_of, state, out, &extra);
    assert!(o.status.success(), "{as_of} {extra:?}: {}", stderr(&o));
}

#[test]
fn merged_shards_are_the_unsharded_night_byte_for_byte() {
    let t = tempfile::tempdir().unwrap();
    let g = t.path().join("g");
    generate(&g, 2500, 11);
    let n = 3;
    for as_of in ["2026-11-22", "2026-11-29", "2026-12-06"] {
        let whole = t.path().join(format!("whole-{as_of}"));
        night(&g, as_of, &t.path().join("state"), &whole, &[]);
        let mut parts = Vec::new();
        for k in 0..n {
            let out = t.path().join(format!("part-{as_of}-{k}"));
            let spec = format!("{k}/{n}");
            night(
                &g,
                as_of,
                &t.path().join(format!("state-{k}")),
                &out,
                &["--shard", &spec],
            );
            parts.push(out);
        }
        // Given in any order.
        parts.reverse();
        let merged = t.path().join(format!("merged-{as_of}"));
        let mut args = vec!["-q", "merge", "--out", merged.to_str().unwrap()];
        args.extend(parts.iter().map(|p| p.to_str().unwrap()));
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let (a, b) = (tree(&whole), tree(&merged));
        let names = |t: &[(String, Vec<u8>)]| t.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b), "{as_of}: other files");
        for ((n, x), (_, y)) in a.iter().zip(&b) {
            assert!(x == y, "{as_of}: {n} differs");
        }
        // Every shard decided some accounts.
        for p in &parts {
            let d = std::fs::read_to_string(p.join("decisions.csv")).unwrap();
            assert!(d.lines().count() > 100, "{}", p.display());
        }
    }
}

#[test]
fn incomplete_or_mixed_shards_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let g = t.path().join("g");
    assert!(
        run(&["gen", "--debtors", "300", "--out", g.to_str().unwrap()])
            .status
            .success()
    );
    let part = |k: u32, n: u32| {
        let out = t.path().join(format!("p{k}of{n}"));
        let spec = format!("{k}/{n}");
        night(
            &g,
            "2026-11-22",
            &t.path().join(format!("s{k}of{n}")),
            &out,
            &["--shard", &spec],
        );
        out
    };
    let (a, b, c) = (part(0, 2), part(1, 2), part(0, 3));
    let merged = t.path().join("m");
    let o = run(&[
        "merge",
        "--out",
        merged.to_str().unwrap(),
        a.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("shards missing: 1/2"), "{}", stderr(&o));
    let o = run(&[
        "merge",
        "--out",
        merged.to_str().unwrap(),
        a.to_str().unwrap(),
        c.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!merged.exists(), "a refused merge left a folder");
    let o = run(&[
        "merge",
        "--out",
        merged.to_str().unwrap(),
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    // A shard's state run as another shard is refused.
    let o = run_generated(
        &g,
        "csv",
        "2026-11-29",
        &t.path().join("s0of2"),
        &t.path().join("wrong"),
        &["--shard", "1/2"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("as shard 0/2"), "{}", stderr(&o));
    let o = run(&[
        "run",
        "--shard",
        "3/3",
        "--policy",
        "x",
        "--ledger",
        "x",
        "--debtors",
        "x",
        "--as-of",
        "2026-11-22",
        "--state",
        "x",
        "--out",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("expected K/N"), "{}", stderr(&o));
}
