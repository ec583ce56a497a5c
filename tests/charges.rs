//! Charges: fees, the D441-5 recovery indemnity and late interest, on
//! `fixtures/charges` (a business debtor with two late invoices, a business
//! debtor under a dispute, a consumer) under retail-fr with the charges of
//! `fixtures/charges/charges.yaml`. The expected rows were computed by hand
//! (in the comments), to the cent.

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    root().join("fixtures/charges")
}

/// retail-fr plus the fixture's charges section and rate table.
fn charging_policy(dir: &Path) -> PathBuf {
    let pol = dir.join("policy");
    copy_tree(&policy(), &pol);
    let yaml = pol.join("policy.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap()
        + &std::fs::read_to_string(fixture().join("charges.yaml")).unwrap();
    std::fs::write(&yaml, text).unwrap();
    std::fs::create_dir_all(pol.join("rates")).unwrap();
    std::fs::copy(fixture().join("rates.csv"), pol.join("rates/fr-b2b.csv")).unwrap();
    pol
}

/// `dunning <command>` on the fixture's files and `dir/state`, as of `date`.
fn on_fixture(command: &[&str], pol: &Path, dir: &Path, date: &str) -> std::process::Command {
    let f = fixture();
    let mut c = std::process::Command::new(bin());
    c.args(command)
        .arg("--policy")
        .arg(pol)
        .arg("--ledger")
        .arg(f.join("ledger.csv"))
        .arg("--debtors")
        .arg(f.join("debtors.csv"))
        .arg("--events")
        .arg(f.join("events.csv"))
        .args(["--as-of", date, "--state"])
        .arg(dir.join("state"));
    c
}

fn night(pol: &Path, dir: &Path, date: &str) -> std::process::Output {
    on_fixture(&["run"], pol, dir, date)
        .arg("--out")
        .arg(dir.join(format!("out/{date}")))
        .output()
        .unwrap()
}

#[test]
fn fees_indemnity_and_interest_to_the_cent_and_each_charged_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pol = charging_policy(dir);
    let o = night(&pol, dir, "2026-01-10");
    assert!(o.status.success(), "{}", stderr(&o));
    let got = std::fs::read_to_string(dir.join("out/2026-01-10/charges.csv")).unwrap();
    // B1 escalates to level 1: fee (1,200.00 * 1 %) = 12.00.
    // F-1001, 1,000.00 due 2025-12-01: indemnity 40.00; interest
    //   2025-12-02..12-31, 30 days at 12.15 %: 9.986301... -> 9.99;
    //   2026-01-01..01-10, 10 days at 12 %: 3.287671..., running total
    //   13.273972... -> 13.27, so 3.28 tonight.
    // F-1002, 200.00 open, due 2025-12-20: indemnity 40.00; interest
    //   12-21..12-31, 11 days at 12.15 %: 0.732328... -> 0.73;
    //   01-01..01-10: 0.657534..., total 1.389863... -> 1.39, so 0.66.
    // H1 is held by a dispute: nothing. P1 is a consumer: nothing.
    assert_eq!(
        got,
        "debtor_id,currency,item_id,kind,period,base,rate,amount\n\
         B1,EUR,,fee:reminder_fee,2026-01-10,1200.00,,12.00\n\
         B1,EUR,F-1001,recovery_indemnity,2026-01-10,1000.00,,40.00\n\
         B1,EUR,F-1001,late_interest,2025-12-02..2025-12-31,1000.00,12.15,9.99\n\
         B1,EUR,F-1001,late_interest,2026-01-01..2026-01-10,1000.00,12,3.28\n\
         B1,EUR,F-1002,recovery_indemnity,2026-01-10,200.00,,40.00\n\
         B1,EUR,F-1002,late_interest,2025-12-21..2025-12-31,200.00,12.15,0.73\n\
         B1,EUR,F-1002,late_interest,2026-01-01..2026-01-10,200.00,12,0.66\n"
    );
    // The e-mail shows tonight's charges to the debtor.
    let eml =
        std::fs::read_to_string(dir.join("out/2026-01-10/emails/B1-EUR-reminder.eml")).unwrap();
    let msg = mail_parser::MessageParser::default()
        .parse(eml.as_bytes())
        .unwrap();
    let text = msg.body_text(0).unwrap();
    assert!(
        text.contains("- Indemnité forfaitaire pour frais de recouvrement (art. D441-5 du Code de commerce) (2026-01-10) : 40,00"),
        "{text}"
    );
    assert!(
        text.contains("- Intérêts de retard (2025-12-02..2025-12-31) : 9,99"),
        "{text}"
    );
    // The consumer's e-mail has no charge line.
    let eml =
        std::fs::read_to_string(dir.join("out/2026-01-10/emails/P1-EUR-reminder.eml")).unwrap();
    assert!(!eml.contains("Indemnit"), "{eml}");

    // A re-run of the committed night writes the same charges.
    std::fs::rename(dir.join("out/2026-01-10"), dir.join("first")).unwrap();
    let o = night(&pol, dir, "2026-01-10");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(dir.join("out/2026-01-10/charges.csv")).unwrap(),
        std::fs::read(dir.join("first/charges.csv")).unwrap()
    );

    // A week later: only the 7 new days of interest, no second indemnity.
    // F-1001: 2.301369..., total 15.575342... -> 15.58, so 2.31.
    // F-1002: 0.460273..., total 1.850136... -> 1.85, so 0.46.
    let o = night(&pol, dir, "2026-01-17");
    assert!(o.status.success(), "{}", stderr(&o));
    let got = std::fs::read_to_string(dir.join("out/2026-01-17/charges.csv")).unwrap();
    assert_eq!(
        got,
        "debtor_id,currency,item_id,kind,period,base,rate,amount\n\
         B1,EUR,F-1001,late_interest,2026-01-11..2026-01-17,1000.00,12,2.31\n\
         B1,EUR,F-1002,late_interest,2026-01-11..2026-01-17,200.00,12,0.46\n"
    );
    // `explain` shows the same charges, with their base and rate.
    let o = on_fixture(&["explain", "--debtor", "B1"], &pol, dir, "2026-01-17")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("  charges:\n    late_interest F-1001 2026-01-11..2026-01-17: 2.31 on 1000.00 at 12 %\n"),
        "{text}"
    );
    let state = std::fs::read_to_string(dir.join("state/nights/2026-01-17/charged.csv")).unwrap();
    assert!(
        state.contains("F-1001,B1,EUR,2026-01-10,2026-01-17,"),
        "{state}"
    );
    // The disputed invoice's days under the hold bear no interest, and its
    // indemnity waits for the hold to end.
    assert!(
        state.contains("F-2001,H1,EUR,,2026-01-17,0,0.00"),
        "{state}"
    );
}

#[test]
fn a_night_past_the_rate_table_stops_with_the_day_to_add() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pol = charging_policy(dir);
    let o = night(&pol, dir, "2026-07-02");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("charges.late_interest: rates/fr-b2b.csv has no rate for 2026-07-01"),
        "{err}"
    );
    assert!(!dir.join("out/2026-07-02").exists());
    assert!(!dir.join("state/nights/2026-07-02").exists());
}

#[test]
fn a_broken_rate_table_is_named_with_its_row() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pol = charging_policy(dir);
    std::fs::write(
        pol.join("rates/fr-b2b.csv"),
        "from,to,rate\n2025-07-01,2025-12-31,12.15\n2026-01-02,2026-06-30,12,00\n",
    )
    .unwrap();
    let o = std::process::Command::new(bin())
        .arg("check")
        .arg(&pol)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("rates/fr-b2b.csv: row 3"), "{out}");
}
