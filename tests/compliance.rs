//! Compliance as hard constraints, proven on a simulation: 90 nights of a
//! generated population under retail-fr with a fast ladder and the French
//! preset (tightened), with random conversations, wrong numbers,
//! do-not-contact requests, disputes, promises and payments. The night's
//! own output files are then checked against the rules, computed here
//! independently from the events and the calendar: no cap exceeded, no
//! contact during a hold, on a quiet day, in a cooling-off period, after a
//! do-not-contact, to a number reported as someone else's or without
//! consent, and no call or SMS window outside the allowed hours.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

const START: &str = "2026-11-02";
const NIGHTS: i64 = 90;

/// A small deterministic generator (xorshift), so the test needs no crate
/// and every run simulates the same nights.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1_000_000.0 < p
    }
}

fn day(s: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    if !path.exists() {
        return Vec::new();
    }
    let mut r = csv::Reader::from_path(path).unwrap();
    let headers: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

#[derive(Clone)]
struct Ev {
    debtor: String,
    date: chrono::NaiveDate,
    kind: String,
    until: Option<chrono::NaiveDate>,
    note: String,
}

/// The simulated world: the policy folder (retail-fr, one day between
/// escalations, a call at the first level, the French preset with tighter
/// caps), the debtors, and every event of the 90 nights.
fn world(dir: &Path) -> (Vec<Ev>, HashMap<String, HashMap<String, String>>) {
    generate(&dir.join("data"), 150, 11);
    policy_with(
        dir,
        |t| {
            t.replace(
                "min_days_between_escalations: 7",
                "min_days_between_escalations: 1",
            )
            .replace("when: segment == \"high_balance\"", "when: true")
        },
        "compliance:\n  include: [../compliance/fr.yaml]\n  caps:\n    - name: calls_per_week\n      channels: [call]\n      max: 2\n      days: 7\n    - name: contacts_per_week\n      channels: [email, sms, call, letter]\n      max: 3\n      days: 7\n",
    );

    let debtors: HashMap<String, HashMap<String, String>> = read_csv(&dir.join("data/debtors.csv"))
        .into_iter()
        .map(|r| (r["debtor_id"].clone(), r))
        .collect();
    let mut ids: Vec<&String> = debtors.keys().collect();
    ids.sort();
    let mut events: Vec<Ev> = read_csv(&dir.join("data/events.csv"))
        .into_iter()
        .map(|r| Ev {
            debtor: r["debtor_id"].clone(),
            date: day(&r["date"]),
            kind: r["kind"].clone(),
            until: (!r["until"].is_empty()).then(|| day(&r["until"])),
            note: r["note"].clone(),
        })
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for n in 0..NIGHTS {
        let date = day(START) + chrono::Duration::days(n);
        for id in &ids {
            let mut add = |kind: &str, note: &str, until: Option<chrono::NaiveDate>| {
                events.push(Ev {
                    debtor: (*id).clone(),
                    date,
                    kind: kind.into(),
                    until,
                    note: note.into(),
                })
            };
            if rng.chance(0.05) {
                add("contact_outcome", "conversation", None);
            }
            if rng.chance(0.01) {
                add("contact_outcome", "wrong_party", None);
            }
            if rng.chance(0.01) {
                add("contact_outcome", "contact_verified", None);
            }
            if rng.chance(0.002) {
                add("do_not_contact", "", None);
            }
            if rng.chance(0.008) {
                add("dispute", "", None);
            }
            if rng.chance(0.02) {
                add("dispute_resolved", "", None);
            }
            if rng.chance(0.01) {
                let days = 3 + (rng.next() % 10) as i64;
                add(
                    "promise_to_pay",
                    "",
                    Some(date + chrono::Duration::days(days)),
                );
            }
        }
    }
    let mut w = csv::Writer::from_path(dir.join("events.csv")).unwrap();
    w.write_record(["debtor_id", "date", "kind", "until", "amount", "note"])
        .unwrap();
    for e in &events {
        w.write_record([
            e.debtor.as_str(),
            &e.date.to_string(),
            &e.kind,
            &e.until.map(|u| u.to_string()).unwrap_or_default(),
            "",
            &e.note,
        ])
        .unwrap();
    }
    w.flush().unwrap();
    (events, debtors)
}

/// The ledger of night `n`: every week a different quarter of the debtors
/// has paid everything (their accounts cure, then escalate again).
fn ledger_for(dir: &Path, n: i64) -> std::path::PathBuf {
    let rows = read_csv(&dir.join("data/ledger.csv"));
    let path = dir.join(format!("ledger-{n}.csv"));
    let mut w = csv::Writer::from_path(&path).unwrap();
    let cols = dunning::ingest::LEDGER_COLUMNS;
    w.write_record(cols).unwrap();
    let week = n / 7;
    for r in rows {
        let num: u64 = r["debtor_id"].trim_start_matches('D').parse().unwrap_or(0);
        let paid = (num.wrapping_mul(2_654_435_761) ^ week as u64).is_multiple_of(4);
        let mut rec: Vec<String> = cols.iter().map(|c| r[*c].clone()).collect();
        if paid {
            rec[4] = "0.00".into();
        }
        w.write_record(&rec).unwrap();
    }
    w.flush().unwrap();
    path
}

/// The retail-fr holds on `d`, computed here from the events.
fn held(evs: &[&Ev], d: chrono::NaiveDate) -> bool {
    let upto: Vec<&&Ev> = evs.iter().filter(|e| e.date <= d).collect();
    let last = |k: &str| upto.iter().filter(|e| e.kind == k).map(|e| e.date).max();
    let open = |start: &str, end: &str| match (last(start), last(end)) {
        (Some(s), Some(e)) => e <= s,
        (Some(_), None) => true,
        _ => false,
    };
    open("insolvency", "insolvency_closed")
        || last("deceased").is_some()
        || open("dispute", "dispute_resolved")
        || upto.iter().any(|e| {
            (e.kind == "payment_plan" || e.kind == "promise_to_pay")
                && e.until.is_some_and(|u| u >= d)
        })
}

fn holidays() -> BTreeSet<chrono::NaiveDate> {
    read_csv(&root().join("rules/compliance/calendars/FR.csv"))
        .iter()
        .map(|r| day(&r["date"]))
        .collect()
}

/// retail-fr with the presets beside it (as in rules/), its policy.yaml
/// passed through `edit` and ending with `extra`; returns the folder
/// holding `policy/` and `compliance/`.
fn policy_with(dir: &Path, edit: impl Fn(String) -> String, extra: &str) -> std::path::PathBuf {
    copy_tree(&policy(), &dir.join("policy"));
    copy_tree(&root().join("rules/compliance"), &dir.join("compliance"));
    let yaml = dir.join("policy/policy.yaml");
    let text = edit(std::fs::read_to_string(&yaml).unwrap());
    std::fs::write(&yaml, format!("{text}\n{extra}")).unwrap();
    dir.join("policy")
}

/// `dunning check policy` run in `dir`: exit code and standard output.
fn check_in(dir: &Path) -> (Option<i32>, String) {
    let o = std::process::Command::new(bin())
        .current_dir(dir)
        .args(["check", "policy"])
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn ninety_nights_break_no_contact_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (events, debtors) = world(dir);
    let mut by_debtor: HashMap<&str, Vec<&Ev>> = HashMap::new();
    for e in &events {
        by_debtor.entry(e.debtor.as_str()).or_default().push(e);
    }
    let holidays = holidays();
    // Contacts by debtor: (night, channel).
    let mut contacts: BTreeMap<String, Vec<(chrono::NaiveDate, String)>> = BTreeMap::new();
    let mut reasons = String::new();
    let mut violations = Vec::new();
    for n in 0..NIGHTS {
        let date = day(START) + chrono::Duration::days(n);
        let ledger = ledger_for(dir, n);
        let out = dir.join(format!("out/{date}"));
        let o = std::process::Command::new(bin())
            .args(["run", "--policy"])
            .arg(dir.join("policy"))
            .arg("--ledger")
            .arg(&ledger)
            .arg("--debtors")
            .arg(dir.join("data/debtors.csv"))
            .arg("--events")
            .arg(dir.join("events.csv"))
            .args(["--as-of", &date.to_string(), "--state"])
            .arg(dir.join("state"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "night {date}: {}", stderr(&o));
        let mut tonight: Vec<(String, String)> = Vec::new();
        for (file, channel) in [
            ("emails/index.csv", "email"),
            ("letters/index.csv", "letter"),
            ("sms.csv", "sms"),
            ("calls.csv", "call"),
        ] {
            for r in read_csv(&out.join(file)) {
                tonight.push((r["debtor_id"].clone(), channel.to_owned()));
                if channel == "sms" || channel == "call" {
                    // Windows: on the night's day, within 08:00-20:00 local.
                    let (s, e) = (&r["window_start"], &r["window_end"]);
                    let ok = s.starts_with(&date.to_string())
                        && e.starts_with(&date.to_string())
                        && &s[11..16] >= "08:00"
                        && &e[11..16] <= "20:00"
                        && s[11..16] < e[11..16];
                    if !ok {
                        violations.push(format!(
                            "{date} {} {channel}: window {s} to {e}",
                            r["debtor_id"]
                        ));
                    }
                }
            }
        }
        for r in read_csv(&out.join("decisions.csv")) {
            reasons.push_str(&r["reason"]);
            reasons.push('\n');
        }
        for (debtor, channel) in tonight {
            let evs = by_debtor.get(debtor.as_str()).cloned().unwrap_or_default();
            let upto = |kind: &str, note: &str| {
                evs.iter()
                    .filter(|e| {
                        e.date <= date && e.kind == kind && (note.is_empty() || e.note == note)
                    })
                    .map(|e| e.date)
                    .max()
            };
            let d = &debtors[&debtor];
            let phone = channel == "call" || channel == "sms";
            let mut broke = |rule: &str| {
                violations.push(format!("{date} {debtor} {channel}: {rule}"));
            };
            if held(&evs, date) {
                broke("contact during a hold");
            }
            if phone && date.format("%a").to_string() == "Sun" {
                broke("call or SMS on a Sunday");
            }
            if phone && d["country"] == "FR" && holidays.contains(&date) {
                broke("call or SMS on a public holiday");
            }
            if phone
                && upto("contact_outcome", "conversation")
                    .is_some_and(|c| (date - c).num_days() < 3)
            {
                broke("call or SMS within 3 days of a conversation");
            }
            if channel != "letter" && upto("do_not_contact", "").is_some() {
                broke("contact after do_not_contact");
            }
            if phone {
                if let Some(w) = upto("contact_outcome", "wrong_party") {
                    if upto("contact_outcome", "contact_verified").is_none_or(|v| v < w) {
                        broke("call or SMS to a number reported as someone else's");
                    }
                }
            }
            let no =
                |v: &str| matches!(v.to_ascii_lowercase().as_str(), "false" | "no" | "0" | "n");
            if channel == "email" && no(&d["consent_email"]) {
                broke("e-mail without consent");
            }
            if channel == "sms" && no(&d["consent_sms"]) {
                broke("SMS without consent");
            }
            contacts.entry(debtor).or_default().push((date, channel));
        }
    }
    // Rolling caps, counted from the files over every window.
    let mut calls_total = 0;
    for (debtor, list) in &contacts {
        for n in 0..NIGHTS {
            let d = day(START) + chrono::Duration::days(n);
            let within = |days: i64, chans: &[&str]| {
                list.iter()
                    .filter(|(on, c)| {
                        *on <= d && (d - *on).num_days() < days && chans.contains(&c.as_str())
                    })
                    .count()
            };
            if within(1, &["call"]) > 1 {
                violations.push(format!("{d} {debtor}: more than 1 call in a day"));
            }
            if within(7, &["call"]) > 2 {
                violations.push(format!("{d} {debtor}: more than 2 calls in 7 days"));
            }
            if within(7, &["email", "sms", "call", "letter"]) > 3 {
                violations.push(format!("{d} {debtor}: more than 3 contacts in 7 days"));
            }
        }
        calls_total += list.iter().filter(|(_, c)| c == "call").count();
    }
    assert!(
        violations.is_empty(),
        "{} violation(s):\n{}",
        violations.len(),
        violations.join("\n")
    );
    // The rules were exercised, not vacuously true.
    for (what, needle) in [
        ("a cap deferred a contact", "deferred (compliance.caps."),
        (
            "a Sunday deferred a contact",
            "deferred (compliance.quiet_days.sunday",
        ),
        (
            "a holiday deferred a contact",
            "deferred (compliance.quiet_days.public_holiday",
        ),
        (
            "a conversation deferred a contact",
            "deferred (compliance.cooling_off.after_conversation",
        ),
        ("a deferred contact went out later", "sent tonight"),
        ("a cure or hold cancelled one", "cancelled"),
        (
            "a wrong number dropped one",
            "dropped (compliance.own_contact_only",
        ),
    ] {
        assert!(reasons.contains(needle), "never happened: {what}");
    }
    assert!(calls_total > 100, "only {calls_total} calls in 90 nights");
}

#[test]
fn a_preset_with_a_mistake_is_named_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    policy_with(
        dir,
        |t| t,
        "compliance:\n  include: [../compliance/fr.yaml, ../compliance/nope.yaml]\n",
    );
    let preset = dir.join("compliance/fr.yaml");
    let text = std::fs::read_to_string(&preset)
        .unwrap()
        .replace("weekdays: [sun]", "weekdays: [sundae]");
    std::fs::write(&preset, &text).unwrap();
    let (code, out) = check_in(dir);
    assert_eq!(code, Some(2));
    let line = text.lines().position(|l| l.contains("sundae")).unwrap() + 1;
    assert!(
        out.contains(&format!(
            "../compliance/fr.yaml:{line}:16: compliance.quiet_days.sunday.weekdays: `sundae` is not a day of the week"
        )),
        "{out}"
    );
    assert!(
        out.contains("compliance.include: cannot read `../compliance/nope.yaml`"),
        "{out}"
    );
}

#[test]
fn an_edited_preset_changes_the_policy_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    policy_with(
        dir,
        |t| t,
        "compliance:\n  include: [../compliance/us-regf.yaml]\n",
    );
    let hash = || {
        let o = std::process::Command::new(bin())
            .current_dir(dir)
            .args(["check", "policy", "--format", "json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["sha256"].as_str().unwrap().to_owned()
    };
    let before = hash();
    let preset = dir.join("compliance/us-regf.yaml");
    let text = std::fs::read_to_string(&preset)
        .unwrap()
        .replace("max: 7", "max: 6");
    std::fs::write(&preset, text).unwrap();
    assert_ne!(
        before,
        hash(),
        "a preset edit must change the policy's hash"
    );
}

#[test]
fn every_preset_loads_and_lists_its_guards() {
    for preset in ["fr", "cn", "us-regf"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        policy_with(
            dir,
            |t| t,
            &format!("compliance:\n  include: [../compliance/{preset}.yaml]\n"),
        );
        let (code, out) = check_in(dir);
        assert_eq!(code, Some(0), "{preset}: {out}");
        assert!(
            out.contains("compliance: guards over every rule, in this order:"),
            "{out}"
        );
        let must = match preset {
            "us-regf" => "caps.calls_7_in_7: at most 7 call in 7 day(s) per debtor (defer)",
            "cn" => "caps.calls_per_day: at most 3 call in 1 day(s) per debtor (defer)",
            _ => "quiet_days.public_holiday: public holidays of FR",
        };
        assert!(out.contains(must), "{preset}: {out}");
    }
}

/// The law's guard stands even where the risk team's channel rule would
/// let an e-mail through: here retail-fr's e-mail rule forgets consent, and
/// the compliance section sends the letter instead.
#[test]
fn a_refused_contact_is_rerouted_as_the_rule_says() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pol = policy_with(
        dir,
        |t| {
            t.replace(
                "allowed_when: has_email && consent_email && !do_not_contact",
                "allowed_when: has_email",
            )
        },
        "compliance:\n  consent:\n    channels: {email: consent_email}\n    then: reroute:letter\n",
    );
    let n = &nights(&root().join("fixtures/holds"))[0];
    let out = dir.join("out");
    let o = run_night(n, &pol, &dir.join("state"), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = read_csv(&out.join("decisions.csv"));
    let h12 = rows.iter().find(|r| r["debtor_id"] == "H12").unwrap();
    assert_eq!(h12["actions"], "letter:reminder", "{h12:?}");
    assert!(
        h12["reason"].contains(
            "email:reminder -> letter:reminder (compliance.consent: consent_email is false)"
        ),
        "{h12:?}"
    );
    let letters = read_csv(&out.join("letters/index.csv"));
    assert!(letters.iter().any(|l| l["debtor_id"] == "H12"));
    let emails = read_csv(&out.join("emails/index.csv"));
    assert!(!emails.iter().any(|e| e["debtor_id"] == "H12"));
}

#[test]
fn a_policy_cannot_pull_in_a_device_or_a_huge_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("big.yaml"), vec![b'#'; 5 << 20]).unwrap();
    policy_with(
        dir,
        |t| t,
        "compliance:\n  include: [/dev/zero, ../big.yaml]\n",
    );
    let (code, out) = check_in(dir);
    assert_eq!(code, Some(2));
    assert!(
        out.contains("compliance.include: cannot read `/dev/zero`: not a regular file"),
        "{out}"
    );
    assert!(
        out.contains("cannot read `../big.yaml`: 5242880 bytes, more than the 4194304"),
        "{out}"
    );
}

/// A contact deferred on Sunday is sent on Monday only if it can still be
/// delivered: here every phone number has gone from the debtors file.
#[test]
fn a_deferred_contact_is_dropped_when_it_can_no_longer_be_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    generate(&dir.join("d"), 200, 3);
    // Every first reminder comes with a call.
    let pol = policy_with(
        dir,
        |t| t.replace("when: segment == \"high_balance\"", "when: true"),
        "compliance:\n  quiet_days:\n    - {name: sunday, weekdays: [sun], channels: [call, sms]}\n",
    );
    let debtors = dir.join("d/debtors.csv");
    let no_phones = dir.join("no-phones.csv");
    let mut w = csv::Writer::from_path(&no_phones).unwrap();
    let mut r = csv::Reader::from_path(&debtors).unwrap();
    let h = r.headers().unwrap().clone();
    let phone = h.iter().position(|c| c == "phone").unwrap();
    w.write_record(&h).unwrap();
    for rec in r.records() {
        let mut rec: Vec<String> = rec.unwrap().iter().map(str::to_owned).collect();
        rec[phone] = String::new();
        w.write_record(&rec).unwrap();
    }
    w.flush().unwrap();
    let night = |date: &str, debtors: &Path| {
        let o = std::process::Command::new(bin())
            .args(["run", "--policy"])
            .arg(&pol)
            .arg("--ledger")
            .arg(dir.join("d/ledger.csv"))
            .arg("--debtors")
            .arg(debtors)
            .args(["--as-of", date, "--state"])
            .arg(dir.join("state"))
            .arg("--out")
            .arg(dir.join(date))
            .output()
            .unwrap();
        assert!(o.status.success(), "{date}: {}", stderr(&o));
        read_csv(&dir.join(date).join("decisions.csv"))
    };
    // 2026-11-15 is a Sunday: the calls wait.
    let sunday = night("2026-11-15", &debtors);
    let waiting = sunday
        .iter()
        .filter(|r| r["reason"].contains("call:reminder deferred (compliance.quiet_days.sunday"))
        .count();
    assert!(waiting > 0, "no call deferred on Sunday");
    let monday = night("2026-11-16", &no_phones);
    let dropped = monday
        .iter()
        .filter(|r| {
            r["reason"]
                .contains("call:reminder deferred since 2026-11-15 dropped: no usable phone number")
        })
        .count();
    assert_eq!(dropped, waiting);
    assert!(read_csv(&dir.join("2026-11-16/calls.csv")).is_empty());
}

#[test]
fn reroutes_that_go_round_in_a_circle_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    policy_with(
        dir,
        |t| t,
        "compliance:\n  caps:\n    - {name: calls, channels: [call], max: 1, days: 7, then: reroute:sms}\n    - {name: texts, channels: [sms], max: 1, days: 7, then: reroute:call}\n",
    );
    let (code, out) = check_in(dir);
    assert_eq!(code, Some(2));
    assert!(
        out.contains(
            "compliance: reroutes go round in a circle through `call` (call -> sms -> call)"
        ),
        "{out}"
    );
}
