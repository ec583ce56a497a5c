//! E-mails, SMS and call lists: rendered from the policy's templates,
//! parsed back with a real MIME parser, snapshotted per language, and
//! checked against hostile fields.

mod common;
use common::*;
use mail_parser::MessageParser;
use std::path::{Path, PathBuf};

/// Runs every night of a scenario; returns the output folders.
fn run_scenario(name: &str, tmp: &Path) -> Vec<PathBuf> {
    let dir = root().join("fixtures").join(name);
    let state = tmp.join("state");
    nights(&dir)
        .iter()
        .map(|n| {
            let out = tmp.join(format!("out-{}", n.date));
            let o = run_night(n, &policy(), &state, &out, &[]);
            assert!(o.status.success(), "{}: {}", n.date, stderr(&o));
            out
        })
        .collect()
}

fn index(out: &Path) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_path(out.join("emails/index.csv")).unwrap();
    r.records().map(|x| x.unwrap()).collect()
}

#[test]
fn every_email_parses_and_matches_its_index() {
    let t = tempfile::tempdir().unwrap();
    let mut parsed = 0;
    for scenario in ["holds", "segments", "ladder"] {
        for out in run_scenario(scenario, &t.path().join(scenario)) {
            let mut d = csv::Reader::from_path(out.join("decisions.csv")).unwrap();
            let wanted: usize = d
                .records()
                .map(|r| {
                    r.unwrap()[5]
                        .split(';')
                        .filter(|a| a.starts_with("email:"))
                        .count()
                })
                .sum();
            let rows = index(&out);
            assert_eq!(rows.len(), wanted, "one e-mail per email action");
            for row in rows {
                let bytes = std::fs::read(out.join("emails").join(&row[0])).unwrap();
                let msg = MessageParser::default()
                    .parse(&bytes)
                    .expect("a MIME message");
                assert_eq!(msg.subject(), Some(&row[4]));
                let to = msg.to().unwrap().as_list().unwrap();
                assert_eq!(to.len(), 1);
                assert_eq!(to[0].address(), Some(&row[3]));
                assert_eq!(
                    msg.message_id(),
                    Some(row[7].trim_matches(|c| c == '<' || c == '>'))
                );
                assert_eq!(msg.text_body_count(), 1);
                assert_eq!(msg.html_body_count(), 1);
                let text = msg.body_text(0).unwrap();
                let html = msg.body_html(0).unwrap();
                assert!(
                    text.contains(&format!("REC-{}-{}", &row[1], &row[2])),
                    "{text}"
                );
                assert!(html.contains("<table"), "{html}");
                assert!(!html.contains("{{"), "{html}");
                assert_eq!(
                    msg.header_raw("From").map(str::trim),
                    Some("\"Banque Exemple\" <recouvrement@banque-exemple.fr>")
                );
                assert!(msg.header_raw("Reply-To").is_some());
                parsed += 1;
            }
        }
    }
    assert!(parsed >= 30, "{parsed}");
}

/// The e-mail of one debtor on one night of the segments scenario, as the
/// parser reads it back.
fn email_of(
    outs: &[PathBuf],
    night: usize,
    debtor: &str,
    currency: &str,
) -> (String, String, String) {
    let out = &outs[night];
    let row = index(out)
        .into_iter()
        .find(|r| &r[1] == debtor && &r[2] == currency)
        .unwrap_or_else(|| panic!("no e-mail for {debtor} {currency}"));
    let bytes = std::fs::read(out.join("emails").join(&row[0])).unwrap();
    let msg = MessageParser::default().parse(&bytes).unwrap();
    (
        msg.subject().unwrap().to_owned(),
        msg.body_text(0).unwrap().into_owned(),
        msg.body_html(0).unwrap().into_owned(),
    )
}

#[test]
fn reminder_emails_in_each_language() {
    let t = tempfile::tempdir().unwrap();
    let outs = run_scenario("segments", t.path());
    for (lang, night, debtor, currency) in [
        ("fr", 0, "P1", "EUR"),
        ("en", 0, "P3", "USD"),
        ("zh", 1, "P8", "EUR"),
    ] {
        let (subject, text, html) = email_of(&outs, night, debtor, currency);
        insta::assert_snapshot!(
            format!("reminder_{lang}_text"),
            format!("Subject: {subject}\n\n{text}")
        );
        insta::assert_snapshot!(format!("reminder_{lang}_html"), html);
    }
    let (subject, text, _) = email_of(&outs, 0, "P1", "EUR");
    assert_eq!(
        subject,
        "Rappel : 5 000,00 € restent à régler sur votre compte"
    );
    assert!(text.contains("échéance du 1er janvier 2026"), "{text}");
    let (subject, text, _) = email_of(&outs, 0, "P3", "USD");
    assert_eq!(subject, "Reminder: $100.00 is overdue on your account");
    assert!(text.contains("due on 1 January 2026"), "{text}");
    let (_, text, _) = email_of(&outs, 1, "P8", "EUR");
    assert!(text.contains("到期日 2026年1月28日"), "{text}");
}

#[test]
fn sms_and_calls_are_normalised_and_measured() {
    let t = tempfile::tempdir().unwrap();
    let outs = run_scenario("segments", t.path());
    let sms = std::fs::read_to_string(outs[1].join("sms.csv")).unwrap();
    let mut r = csv::Reader::from_reader(sms.as_bytes());
    let rows: Vec<_> = r.records().map(|x| x.unwrap()).collect();
    assert!(!rows.is_empty());
    for row in &rows {
        assert_eq!(&row[2], "+33612345678", "E.164");
        let (enc, seg) = (&row[5], &row[6]);
        match &row[4] {
            "zh" => assert_eq!(enc, "UCS-2"),
            _ => assert_eq!(enc, "GSM-7", "{}", &row[7]),
        }
        assert!(seg.parse::<u32>().unwrap() <= 3);
    }
    let p3 = rows
        .iter()
        .find(|r| &r[0] == "P3" && &r[1] == "USD")
        .unwrap();
    assert_eq!(
        &p3[7],
        "Banque Exemple: despite our reminder, $100.00 is still unpaid on your account. Please pay now at https://www.banque-exemple.fr/payer (ref. REC-P3-USD) or call +33 1 84 88 00 00."
    );
    // Night 1: P1 and P3 (high_balance) get a reminder call, priority 1.
    let calls = std::fs::read_to_string(outs[0].join("calls.csv")).unwrap();
    assert!(
        calls.contains("P1,EUR,Camille Leroy,+33612345678,1,reminder,fr,Europe/Paris,2026-02-01T09:00:00+01:00,2026-02-01T20:00:00+01:00,"),
        "{calls}"
    );
}

#[test]
fn an_sms_over_the_segment_limit_stops_the_night_naming_the_template() {
    let t = tempfile::tempdir().unwrap();
    let pol = edited_policy(t.path(), |s| {
        s.replace("max_segments: 3", "max_segments: 1")
    });
    let state = t.path().join("state");
    let dir = root().join("fixtures/segments");
    let ns = nights(&dir);
    assert!(run_night(&ns[0], &pol, &state, &t.path().join("a"), &[])
        .status
        .success());
    let out = t.path().join("b");
    let o = run_night(&ns[1], &pol, &state, &out, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("template templates/fr/sms/second_notice.txt (fr) renders to 2 SMS segments"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

#[test]
fn a_template_error_is_caught_when_the_policy_loads() {
    let t = tempfile::tempdir().unwrap();
    let pol = edited_policy(t.path(), |s| s);
    std::fs::write(
        pol.join("templates/en/sms/second_notice.txt"),
        "Hello\n{% for x in %}\n",
    )
    .unwrap();
    std::fs::remove_file(pol.join("templates/zh/call/collect.txt")).unwrap();
    let n = nights(&root().join("fixtures/segments")).remove(0);
    let o = run_night(&n, &pol, &t.path().join("s"), &t.path().join("o"), &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("templates/en/sms/second_notice.txt:2: template syntax"),
        "{err}"
    );
    assert!(
        err.contains(
            "call:collect: template templates/zh/call/collect.txt is missing for language `zh`"
        ),
        "{err}"
    );
}

#[test]
fn hostile_fields_cannot_inject_headers_paths_or_formulas() {
    let t = tempfile::tempdir().unwrap();
    let debtors = "debtor_id,name,kind,language,country,email,phone,address_line1,address_line2,postal_code,city\n\
../../evil,\"Eve\r\nBcc: victim@example.org\",person,en,FR,eve@example.org,+33600000001,1 rue A,,75001,Paris\n\
X2,\"=cmd|' /C calc'!A0\",person,fr,FR,x2@example.org,+33600000002,2 rue B,,75002,Paris\n\
X3,\"Doe, \"\"Jr\"\" <fake@evil.org>\",person,fr,FR,x3@example.org,+33600000003,3 rue C,,75003,Paris\n";
    let ledger = "item_id,debtor_id,currency,amount,open_amount,issued_on,due_on,reference\n\
I1,../../evil,EUR,6000.00,6000.00,2025-12-01,2026-01-01,=HYPERLINK(\"http://x\")\n\
I2,X2,EUR,6000.00,6000.00,2025-12-01,2026-01-01,R2\n\
I3,X3,EUR,100.00,100.00,2025-12-01,2026-01-01,R3\n";
    std::fs::write(t.path().join("debtors.csv"), debtors).unwrap();
    std::fs::write(t.path().join("ledger.csv"), ledger).unwrap();
    let n = Night {
        date: "2026-02-01".into(),
        dir: t.path().to_owned(),
        ledger: t.path().join("ledger.csv"),
        debtors: t.path().join("debtors.csv"),
        events: None,
    };
    let out = t.path().join("out");
    let o = run_night(&n, &policy(), &t.path().join("state"), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Every file stays inside out/.
    for (name, _) in tree(&out) {
        assert!(!name.contains(".."), "{name}");
    }
    assert!(!t.path().join("evil-EUR-reminder.eml").exists());
    for row in index(&out) {
        let bytes = std::fs::read(out.join("emails").join(&row[0])).unwrap();
        let msg = MessageParser::default().parse(&bytes).unwrap();
        assert!(msg.header_raw("Bcc").is_none(), "a Bcc header was injected");
        let to = msg.to().unwrap().as_list().unwrap();
        assert_eq!(to.len(), 1, "exactly one recipient");
        assert_ne!(to[0].address(), Some("fake@evil.org"));
        assert_ne!(to[0].address(), Some("victim@example.org"));
        if &row[1] == "../../evil" {
            assert_eq!(to[0].name(), Some("Eve Bcc: victim@example.org"));
        }
        if &row[1] == "X3" {
            assert_eq!(to[0].name(), Some("Doe, \"Jr\" <fake@evil.org>"));
            assert_eq!(to[0].address(), Some("x3@example.org"));
        }
    }
    let calls = std::fs::read_to_string(out.join("calls.csv")).unwrap();
    assert!(
        calls.contains("X2,EUR,'=cmd|' /C calc'!A0,+33600000002,"),
        "{calls}"
    );
    // Templates see names with control characters folded to spaces.
    assert!(
        calls.contains("speaking to Eve Bcc: victim@example.org before"),
        "{calls}"
    );
    let decisions = std::fs::read_to_string(out.join("decisions.csv")).unwrap();
    assert!(
        decisions.contains("../../evil,EUR,high_balance"),
        "{decisions}"
    );
}
