//! `report.html`: self-contained, deterministic, and rendering the night's
//! numbers in a real browser. The test opens the report of the last night
//! of `fixtures/holds` in headless Chromium (scripts/setup.sh installs it),
//! prints it to PDF, reads the PDF's text back with pdftotext, and finds the
//! counts it computes itself from that night's decisions.csv. A screenshot
//! of the report (desktop and phone widths) is left under the build folder
//! for a person to look at, never in the repository.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium(args: &[&str], page: &Path, profile: &Path) {
    let bin = Path::new("/usr/bin/chromium");
    assert!(
        bin.exists(),
        "headless Chromium is missing: run scripts/setup.sh (it installs Debian's chromium)"
    );
    let o = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let dir = target.join("report-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_report_renders_the_nights_numbers_in_a_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let nights = nights(&root().join("fixtures/holds"));
    let mut out = PathBuf::new();
    for n in &nights {
        out = tmp.path().join(&n.date);
        let o = run_night(n, &policy(), &state, &out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let last = nights.last().unwrap();
    let page = out.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch, nothing to run.
    for banned in ["<script", "src=", "<link", "@import", "url("] {
        assert!(!html.contains(banned), "report.html contains {banned}");
    }

    // What the report must show, computed here from decisions.csv.
    let mut rdr = csv::Reader::from_path(out.join("decisions.csv")).unwrap();
    let h = rdr.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|c| c == n).unwrap();
    let mut by_level: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_hold: BTreeMap<String, u64> = BTreeMap::new();
    let mut accounts = 0;
    let mut escalations = 0;
    for r in rdr.records() {
        let r = r.unwrap();
        accounts += 1;
        *by_level
            .entry(r[col("level_after")].to_owned())
            .or_default() += 1;
        if !r[col("held_by")].is_empty() {
            *by_hold.entry(r[col("held_by")].to_owned()).or_default() += 1;
        }
        if &r[col("outcome")] == "escalate" {
            escalations += 1;
        }
    }
    assert!(by_hold.len() >= 3, "the fixture has holds of several kinds");

    // Rendered and printed by the browser, read back as text.
    let pdf = tmp.path().join("report.pdf");
    chromium(
        &[
            "--no-pdf-header-footer",
            &format!("--print-to-pdf={}", pdf.display()),
        ],
        &page,
        &tmp.path().join("profile-pdf"),
    );
    let o = Command::new("pdftotext")
        .args(["-layout"])
        .arg(&pdf)
        .arg("-")
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(&format!("Night of {}", last.date)), "{flat}");
    assert!(flat.contains(&format!("{accounts} accounts")), "{flat}");
    assert!(
        flat.contains(&format!("{escalations} escalations")),
        "{flat}"
    );
    for (level, n) in &by_level {
        assert!(
            flat.contains(&format!("level {level} {n} ")),
            "level {level}: {flat}"
        );
    }
    for (hold, n) in &by_hold {
        assert!(
            flat.contains(&format!("{hold} {n} ")),
            "hold {hold}: {flat}"
        );
    }
    assert!(flat.contains("No rejected value."), "{flat}");

    // For a person to look at: desktop and phone widths.
    let shots = screenshots_dir();
    for (name, size) in [("desktop", "1000,2400"), ("phone", "390,2400")] {
        let png = shots.join(format!("report-{name}.png"));
        chromium(
            &[
                &format!("--screenshot={}", png.display()),
                &format!("--window-size={size}"),
            ],
            &page,
            &tmp.path().join(format!("profile-{name}")),
        );
        assert!(
            std::fs::metadata(&png).unwrap().len() > 10_000,
            "{name} screenshot"
        );
    }
}

#[test]
fn rejected_values_are_counted_without_showing_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let o = run(&[
        "gen",
        "--debtors",
        "40",
        "--seed",
        "5",
        "--out",
        dir.join("d").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // One bad amount, one bad date.
    let ledger = std::fs::read_to_string(dir.join("d/ledger.csv")).unwrap();
    let mut lines: Vec<String> = ledger.lines().map(str::to_owned).collect();
    lines[1] = lines[1].replacen(",2026-", ",2026-13-", 1);
    let mut cells: Vec<String> = lines[2].split(',').map(str::to_owned).collect();
    cells[4] = "SECRET-12.5x".into();
    lines[2] = cells.join(",");
    std::fs::write(dir.join("ledger.csv"), lines.join("\n") + "\n").unwrap();
    let o = Command::new(bin())
        .args(["run", "--policy"])
        .arg(policy())
        .arg("--ledger")
        .arg(dir.join("ledger.csv"))
        .arg("--debtors")
        .arg(dir.join("d/debtors.csv"))
        .args(["--as-of", "2026-11-22", "--state"])
        .arg(dir.join("state"))
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(dir.join("out/report.html")).unwrap();
    assert!(html.contains("Rejected values (2)"), "{html}");
    assert!(
        html.contains("<td>ledger.csv</td><td>open_amount</td>"),
        "{html}"
    );
    assert!(
        !html.contains("SECRET"),
        "a rejected value leaked into the report"
    );
}

#[test]
fn run_ends_with_a_one_screen_summary_unless_quiet() {
    let tmp = tempfile::tempdir().unwrap();
    let n = &nights(&root().join("fixtures/holds"))[0];
    let o = run_night(
        n,
        &policy(),
        &tmp.path().join("s1"),
        &tmp.path().join("o1"),
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() <= 24, "more than a screen:\n{out}");
    assert!(
        lines[0].starts_with(&format!("night {}: done in ", n.date)),
        "{out}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("o1/summary.json")).unwrap())
            .unwrap();
    assert!(
        out.contains(&format!(
            "accounts {:>13}",
            summary["accounts"].as_u64().unwrap()
        )),
        "{out}"
    );
    assert!(out.contains("report.html"), "{out}");
    // No personal data: the fixture's debtor names never appear.
    let debtors = std::fs::read_to_string(&n.debtors).unwrap();
    for row in debtors.lines().skip(1) {
        let name = row.split(',').nth(1).unwrap();
        assert!(!out.contains(name), "{name} in the summary");
    }
    let mut cmd = Command::new(bin());
    cmd.arg("--quiet")
        .args(["run", "--policy"])
        .arg(policy())
        .arg("--ledger")
        .arg(&n.ledger)
        .arg("--debtors")
        .arg(&n.debtors)
        .args(["--as-of", &n.date, "--state"])
        .arg(tmp.path().join("s2"))
        .arg("--out")
        .arg(tmp.path().join("o2"));
    if let Some(e) = &n.events {
        cmd.arg("--events").arg(e);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success());
    assert!(
        o.stdout.is_empty(),
        "--quiet printed: {}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn every_command_explains_itself_with_an_example() {
    let top = run(&["--help"]);
    assert!(top.status.success());
    assert!(String::from_utf8_lossy(&top.stdout).contains("A first night, on the shipped fixtures"));
    for c in [
        "run", "check", "explain", "test", "diff", "send", "gen", "merge", "report",
    ] {
        let o = run(&[c, "--help"]);
        assert!(o.status.success(), "{c}");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("Example"),
            "`dunning {c} --help` has no example:\n{text}"
        );
    }
}
