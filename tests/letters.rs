//! Letters: real PDFs, read back by a real PDF reader (poppler's pdftotext
//! and pdfinfo, installed by scripts/setup.sh).

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn pdftotext(p: &Path) -> String {
    let o = Command::new("pdftotext")
        .arg(p)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils)");
    assert!(o.status.success(), "pdftotext {}", p.display());
    String::from_utf8(o.stdout).unwrap()
}

fn pages(p: &Path) -> usize {
    let o = Command::new("pdfinfo")
        .arg(p)
        .output()
        .expect("pdfinfo (poppler-utils)");
    let s = String::from_utf8(o.stdout).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

const DEBTORS: &str = "debtor_id,name,kind,language,country,email,phone,address_line1,address_line2,postal_code,city\n\
L-FR,Amélie Poulain,person,fr,FR,,,15 rue des Trois Frères,Bâtiment B,75018,Paris\n\
L-EN,John Smith,person,en,GB,,,221B Baker Street,,NW1 6XE,London\n\
L-ZH,王小明,person,zh,CN,,,朝阳区建国路88号,,100022,北京\n\
L-MANY,Bernard Long,person,fr,FR,,,1 place du Marché,,69001,Lyon\n";

fn ledger() -> String {
    let mut s =
        String::from("item_id,debtor_id,currency,amount,open_amount,issued_on,due_on,reference\n");
    s.push_str("A1,L-FR,EUR,1234.56,1234.56,2025-12-01,2026-01-01,FAC-2025-001\n");
    s.push_str("A2,L-FR,EUR,99.00,99.00,2025-12-10,2026-01-10,FAC-2025-002\n");
    s.push_str("B1,L-EN,EUR,1234.56,1234.56,2025-12-01,2026-01-01,INV-77\n");
    s.push_str("C1,L-ZH,EUR,1234.56,1234.56,2025-12-01,2026-01-01,HT-8\n");
    for i in 0..70 {
        s.push_str(&format!(
            "M{i},L-MANY,EUR,10.00,10.00,2025-12-01,2026-01-{:02},LONG-{i:03}\n",
            1 + i % 20
        ));
    }
    s
}

fn run_letters(t: &Path) -> std::path::PathBuf {
    std::fs::write(t.join("debtors.csv"), DEBTORS).unwrap();
    std::fs::write(t.join("ledger.csv"), ledger()).unwrap();
    let n = Night {
        date: "2026-02-01".into(),
        dir: t.to_owned(),
        ledger: t.join("ledger.csv"),
        debtors: t.join("debtors.csv"),
        events: None,
    };
    let out = t.join("out");
    let o = run_night(&n, &policy(), &t.join("state"), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

#[test]
fn reminder_letters_carry_name_address_items_and_total_in_each_language() {
    let t = tempfile::tempdir().unwrap();
    let out = run_letters(t.path());
    let fr = pdftotext(&out.join("letters/L-FR-EUR-reminder.pdf"));
    for want in [
        "Amélie Poulain",
        "15 rue des Trois Frères",
        "Bâtiment B",
        "75018 Paris",
        "Paris, le 1er février 2026",
        "Objet : rappel de paiement",
        "FAC-2025-001",
        "1er janvier 2026",
        "1 234,56 €",
        "FAC-2025-002",
        "99,00 €",
        "1 333,56 €",
        "REC-L-FR-EUR",
    ] {
        assert!(fr.contains(want), "fr letter lacks {want:?}:\n{fr}");
    }
    let en = pdftotext(&out.join("letters/L-EN-EUR-reminder.pdf"));
    for want in [
        "John Smith",
        "221B Baker Street",
        "NW1 6XE London",
        "GB",
        "Payment reminder",
        "INV-77",
        "1 January 2026",
        "€1,234.56",
    ] {
        assert!(en.contains(want), "en letter lacks {want:?}:\n{en}");
    }
    let zh = pdftotext(&out.join("letters/L-ZH-EUR-reminder.pdf"));
    for want in [
        "王小明",
        "朝阳区建国路88号",
        "100022 北京",
        "付款提醒",
        "HT-8",
        "2026年1月1日",
        "€1,234.56",
    ] {
        assert!(zh.contains(want), "zh letter lacks {want:?}:\n{zh}");
    }
}

#[test]
fn the_index_gives_pages_and_registered_mail() {
    let t = tempfile::tempdir().unwrap();
    let out = run_letters(t.path());
    let mut r = csv::Reader::from_path(out.join("letters/index.csv")).unwrap();
    let rows: Vec<_> = r.records().map(|x| x.unwrap()).collect();
    assert_eq!(rows.len(), 4);
    for row in &rows {
        let pdf = out.join("letters").join(&row[0]);
        assert_eq!(row[5].parse::<usize>().unwrap(), pages(&pdf), "{}", &row[0]);
        assert_eq!(&row[6], "no", "a reminder is not registered");
    }
    let many = rows.iter().find(|r| &r[1] == "L-MANY").unwrap();
    assert!(
        many[5].parse::<usize>().unwrap() >= 2,
        "70 items need a second page"
    );
    let text = pdftotext(&out.join("letters").join(&many[0]));
    for i in 0..70 {
        assert!(text.contains(&format!("LONG-{i:03}")), "item {i} missing");
    }
    assert!(text.contains("700,00 €"));
    let pages = many[5].parse::<usize>().unwrap();
    assert!(
        text.replace(' ', "").contains(&format!("{pages}/{pages}")),
        "page numbers"
    );
}

#[test]
fn formal_demands_go_by_registered_mail() {
    let t = tempfile::tempdir().unwrap();
    let dir = root().join("fixtures/holds");
    let state = t.path().join("state");
    let mut found = false;
    for n in nights(&dir) {
        let out = t.path().join(&n.date);
        assert!(run_night(&n, &policy(), &state, &out, &[]).status.success());
        let mut r = csv::Reader::from_path(out.join("letters/index.csv")).unwrap();
        for row in r.records().map(|x| x.unwrap()) {
            assert_eq!(&row[6] == "yes", &row[3] == "formal_demand");
            if &row[3] == "formal_demand" {
                found = true;
                let text = pdftotext(&out.join("letters").join(&row[0]));
                assert!(text.contains("mise en demeure"), "{text}");
                assert!(text.contains("Lettre recommandée avec accusé de réception"));
            }
        }
    }
    assert!(found);
}

#[test]
fn a_missing_font_is_a_policy_error_before_the_night() {
    let t = tempfile::tempdir().unwrap();
    let pol = edited_policy(t.path(), |s| {
        s.replace("NotoSansCJK-Regular.ttc#2", "NoSuchFont.ttc#2")
    });
    let n = nights(&root().join("fixtures/segments")).remove(0);
    let o = run_night(&n, &pol, &t.path().join("s"), &t.path().join("o"), &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("letters.fonts.zh: font /usr/share/fonts/opentype/noto/NoSuchFont.ttc"),
        "{err}"
    );
}

#[test]
fn check_reports_a_missing_font_before_any_night() {
    let t = tempfile::tempdir().unwrap();
    let pol = t.path().join("policy");
    copy_tree(&policy(), &pol);
    let o = run(&["check", pol.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let text = std::fs::read_to_string(pol.join("policy.yaml"))
        .unwrap()
        .replace("DejaVuSans-Bold.ttf", "Missing-Bold.ttf");
    std::fs::write(pol.join("policy.yaml"), text).unwrap();
    let o = run(&["check", pol.to_str().unwrap(), "--format", "json"]);
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let msg = v["problems"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains(
            "letters.fonts.default: font /usr/share/fonts/truetype/dejavu/Missing-Bold.ttf"
        ),
        "{msg}"
    );
}
