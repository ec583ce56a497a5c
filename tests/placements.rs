//! Agency placements and recalls, legal dossiers and write-off proposals
//! over a multi-night scenario.

mod common;
use common::*;
use std::path::Path;

const NIGHTS: &[&str] = &[
    "2026-03-01",
    "2026-03-08",
    "2026-03-15",
    "2026-03-22",
    "2026-03-29", // level 5: placements
    "2026-04-05", // A held (recall), B cured (recall), D legal
    "2026-05-28", // 60 days after C's placement: write-off proposed
    "2026-06-04", // ... and not again
];

const DEBTORS: &str = "debtor_id,name,kind,language,country,email,phone,address_line1,address_line2,postal_code,city\n\
A,Anne Avril,person,fr,FR,a@example.fr,+33600000001,1 rue A,,75001,Paris\n\
B,Bert Brel,person,fr,BE,b@example.be,+3225550101,2 rue B,,1000,Bruxelles\n\
C,Chloé Cahen,person,fr,FR,c@example.fr,+33600000003,3 rue C,,69001,Lyon\n\
D,Didier Dumas,person,fr,FR,d@example.fr,+33600000004,4 rue D,,13001,Marseille\n";

fn ledger(night: &str) -> String {
    let later = night >= "2026-04-05";
    let b_open = if later { "5.00" } else { "800.00" };
    let c_open = if later { "40.00" } else { "150.00" };
    format!(
        "item_id,debtor_id,currency,amount,open_amount,issued_on,due_on,reference\n\
A1,A,EUR,800.00,800.00,2025-10-01,2025-11-01,FA-1\n\
B1,B,EUR,800.00,{b_open},2025-10-01,2025-11-01,FB-1\n\
C1,C,EUR,150.00,{c_open},2025-10-01,2025-11-01,FC-1\n\
D1,D,EUR,1500.00,1500.00,2025-10-01,2025-11-01,FD-1\n\
D2,D,EUR,500.00,500.00,2025-10-15,2025-11-15,FD-2\n"
    )
}

const EVENTS: &str = "debtor_id,date,kind,until,amount,note\nA,2026-04-05,dispute,,,\n";

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn placements_recalls_legal_dossiers_and_writeoffs_across_nights() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("debtors.csv"), DEBTORS).unwrap();
    std::fs::write(t.path().join("events.csv"), EVENTS).unwrap();
    let state = t.path().join("state");
    let mut outs = Vec::new();
    for night in NIGHTS {
        let dir = t.path().join(night);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ledger.csv"), ledger(night)).unwrap();
        let n = Night {
            date: night.to_string(),
            dir: dir.clone(),
            ledger: dir.join("ledger.csv"),
            debtors: t.path().join("debtors.csv"),
            events: Some(t.path().join("events.csv")),
        };
        let out = t.path().join(format!("out-{night}"));
        let o = run_night(&n, &policy(), &state, &out, &[]);
        assert!(o.status.success(), "{night}: {}", stderr(&o));
        outs.push(out);
    }

    // Night 5: A, C and D are placed with the French agency, B with the
    // international one, with contact data, items and level history.
    let fr = read(&outs[4].join("agency/recouvra-fr.csv"));
    let lines: Vec<&str> = fr.lines().collect();
    assert_eq!(lines.len(), 4, "{fr}");
    assert!(lines[0].starts_with("placed_on,debtor_id,currency,name,"));
    assert!(
        fr.contains("2026-03-29,A,EUR,Anne Avril,person,1 rue A,,75001,Paris,FR,a@example.fr,+33600000001,800.00,800.00,148,FA-1 2025-11-01 800.00,"),
        "{fr}"
    );
    assert!(fr.contains("1 2026-03-01 email:reminder; 2 2026-03-08 letter:second_notice;sms:second_notice; 3 2026-03-15 call:collect; 4 2026-03-22 letter:formal_demand; 5 2026-03-29 agency:placement"), "{fr}");
    let intl = read(&outs[4].join("agency/intl-collect.csv"));
    assert!(
        intl.contains(",B,EUR,Bert Brel,") && intl.contains("+3225550101"),
        "{intl}"
    );
    // No placement file on the other nights.
    for (i, out) in outs.iter().enumerate() {
        if i != 4 {
            assert!(!out.join("agency/recouvra-fr.csv").exists(), "night {i}");
        }
    }

    // Night 6: A goes on hold and B is cured: both recalled, once.
    assert_eq!(
        read(&outs[5].join("agency/recalls.csv")),
        "agency,debtor_id,currency,placed_on,recalled_on,reason\n\
recouvra-fr,A,EUR,2026-03-29,2026-04-05,hold:dispute\n\
intl-collect,B,EUR,2026-03-29,2026-04-05,cure\n"
    );
    for out in &outs[6..] {
        assert_eq!(
            read(&out.join("agency/recalls.csv")).lines().count(),
            1,
            "no second recall"
        );
    }

    // Night 6: D reaches legal; its dossier lists the items and every notice.
    let legal = read(&outs[5].join("legal.csv"));
    assert!(
        legal.contains(
            "2026-04-05,D,EUR,Didier Dumas,2000.00,2000.00,155,2,6,legal/D-EUR-dossier.json"
        ),
        "{legal}"
    );
    let dossier: serde_json::Value =
        serde_json::from_str(&read(&outs[5].join("legal/D-EUR-dossier.json"))).unwrap();
    assert_eq!(dossier["items"].as_array().unwrap().len(), 2);
    assert_eq!(dossier["items"][1]["reference"], "FD-2");
    let notices = dossier["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 6);
    assert_eq!(notices[0]["on"], "2026-03-01");
    assert_eq!(notices[0]["actions"][0], "email:reminder");
    assert_eq!(notices[4]["actions"][0], "agency:placement");
    assert_eq!(notices[5]["actions"][0], "legal:referral");
    assert_eq!(dossier["placed_with"], "recouvra-fr");

    // Write-off: proposed for C exactly once, 60 days after its last escalation.
    let proposals: Vec<String> = outs
        .iter()
        .flat_map(|o| {
            read(&o.join("writeoff.csv"))
                .lines()
                .skip(1)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(proposals, ["2026-05-28,C,EUR,5,40.00,40.00,208,2026-03-29"]);
}
