//! The vectorised rules must decide exactly as Rhai does.
//!
//! - random conditions in the subset (and around it) on accounts with
//!   extreme values: every condition that translates gives, account by
//!   account, Rhai's value, or is handed back to Rhai for tonight (never a
//!   wrong or wrapped answer);
//! - generated nights under the shipped policy and a policy written to
//!   exercise the subset: a night with every rule in Rhai (`DUNNING_RULES=rhai`)
//!   and a vectorised night write byte-identical files.

mod common;
use common::*;

use dunning::accounts::Account;
use dunning::ingest::{Debtor, DebtorTexts};
use dunning::script::{self, Condition, Fact, Facts};
use dunning::vector::{self, Frame, Names};
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;

const FLAGS: &[&str] = &["do_not_contact"];

struct Row {
    account: Account,
    debtor: Option<Debtor>,
    level: u32,
    days: i64,
    hold: &'static str,
    flags: Vec<bool>,
}

/// Accounts chosen to sit on the edges: zero, negative days, amounts near
/// the limits, scores with many decimal places or none.
fn rows() -> Vec<Row> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let amounts = [
        0,
        1,
        999,
        1_000,
        10_000,
        500_000,
        499_999,
        150_000,
        123_456_789,
        4_000_000_000_000_000_000,
    ];
    let scores = [
        "",
        "0",
        "700",
        "0.5",
        "0.123456",
        "-3.25",
        "99999.99999",
        "12",
    ];
    let kinds = ["person", "business"];
    let countries = ["FR", "", "GB", "CN"];
    let holds = ["", "dispute", "insolvency"];
    let currencies = ["EUR", "GBP", "CNY"];
    (0..48)
        .map(|i| {
            let pick = |n: u64, len: usize| (n % len as u64) as usize;
            let overdue = amounts[pick(next(), amounts.len())];
            let open = overdue + amounts[pick(next(), 4)];
            let score = scores[pick(next(), scores.len())];
            let debtor = (i % 11 != 0).then(|| {
                let id = format!("D{i}");
                let kind = kinds[pick(next(), 2)];
                let language = ["fr", "en", "zh"][pick(next(), 3)];
                let country = countries[pick(next(), countries.len())];
                let score = (!score.is_empty()).then(|| Decimal::from_str(score).unwrap());
                let consent_email = next() % 3 != 0;
                let consent_sms = next() % 4 != 0;
                let email_ok = next() % 2 == 0;
                let email_bounced = next() % 5 == 0;
                let phone_e164 = (next() % 2 == 0).then_some("+33612345678");
                let mut d = Debtor::new(DebtorTexts {
                    id: &id,
                    kind,
                    language,
                    country,
                    phone_e164,
                    ..Default::default()
                });
                d.score = score;
                d.consent_email = consent_email;
                d.consent_sms = consent_sms;
                d.email_ok = email_ok;
                d.email_bounced = email_bounced;
                d
            });
            Row {
                account: Account {
                    debtor_id: format!("D{i}").into(),
                    currency: currencies[pick(next(), 3)].into(),
                    overdue,
                    open,
                    max_dpd: [0, 4, 5, 15, 29, 30, 60, 90, 400][pick(next(), 9)],
                    overdue_items: (next() % 9) as i64,
                    open_items: (next() % 9) as i64,
                    aging: [
                        amounts[pick(next(), 6)],
                        amounts[pick(next(), 6)],
                        0,
                        amounts[pick(next(), 10)],
                    ],
                    oldest_due: None,
                    oldest_due_days: (next() % 500) as i64,
                    debtor_at: None,
                },
                debtor,
                level: (next() % 7) as u32,
                days: [-1, 0, 6, 7, 60, 61][pick(next(), 6)],
                hold: holds[pick(next(), 3)],
                flags: vec![next() % 6 == 0],
            }
        })
        .collect()
}

fn facts(r: &Row) -> Facts<'_> {
    Facts {
        account: &r.account,
        debtor: r.debtor.as_ref(),
        level: r.level,
        days_since_escalation: r.days,
        hold: r.hold,
        flags: &r.flags,
    }
}

fn int_var() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "max_dpd",
        "overdue_items",
        "open_items",
        "oldest_due_days",
        "level",
        "days_since_escalation",
    ])
    .prop_map(String::from)
}

fn dec_var() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "overdue",
        "open",
        "aging_1_30",
        "aging_31_60",
        "aging_61_90",
        "aging_90_plus",
        "score",
    ])
    .prop_map(String::from)
}

fn number() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        int_var(),
        dec_var(),
        (-100i64..100_000).prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "5000.00",
            "0.5",
            "10.005",
            "1500",
            "0.000001",
            "9000000000000000000",
            "79228162514264337593543950335",
            "100.00",
        ])
        .prop_map(String::from),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec!["+", "-", "*"]),
                inner.clone()
            )
                .prop_map(|(a, o, b)| format!("({a} {o} {b})")),
            inner.prop_map(|a| format!("-({a})")),
        ]
    })
}

fn boolean() -> impl Strategy<Value = String> {
    let cmp = prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]);
    let leaf = prop_oneof![
        prop::sample::select(vec![
            "has_email",
            "has_phone",
            "has_score",
            "email_bounced",
            "consent_email",
            "consent_sms",
            "do_not_contact",
            "true",
            "false",
            "kind == \"business\"",
            "country != \"FR\"",
            "currency == \"EUR\"",
            "hold == \"\"",
            "country in [\"FR\", \"\", \"BE\"]",
            "currency in []",
            "max_dpd in [5, 15, 30]",
            "has_email == consent_email",
            "kind < \"p\"",
            "language + \"x\" == \"frx\"",
            "max_dpd / 2 > 3",
            "abs(score) > 1",
            "if level > 2 { true } else { false }",
        ])
        .prop_map(String::from),
        (number(), cmp, number()).prop_map(|(a, o, b)| format!("{a} {o} {b}")),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
            inner.prop_map(|a| format!("!({a})")),
        ]
    })
}

fn condition(source: &str, id: usize) -> Option<Condition> {
    compile(source, id, false)
}

fn compile(source: &str, id: usize, with_segment: bool) -> Option<Condition> {
    let engine = script::engine();
    let flags: Vec<String> = FLAGS.iter().map(|s| s.to_string()).collect();
    let scope = script::declaration_scope(with_segment, &flags);
    let ast = engine.compile_with_scope(&scope, source).ok()?;
    let plan = vector::translate(
        &ast,
        &Names {
            flags: &flags,
            with_segment,
            helpers: &[],
            params: None,
            depth: 0,
        },
    );
    Some(Condition {
        rule: format!("case {id}"),
        source: source.to_owned(),
        ast,
        id,
        plan,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn columns_agree_with_rhai(source in boolean()) {
        let Some(cond) = condition(&source, 0) else {
            // Rhai itself refuses it (e.g. a literal too large): nothing to compare.
            return Ok(());
        };
        let rows = rows();
        let all: Vec<Facts<'_>> = rows.iter().map(facts).collect();
        let mut vars = Vec::new();
        if let Ok(node) = &cond.plan {
            node.reads(&mut vars);
        }
        let frame = Frame::build(&all, |f| *f, &vars).unwrap();
        let verdicts = frame.evaluate(&[&cond], &[]).unwrap();
        let engine = script::engine();
        let flags: Vec<String> = FLAGS.iter().map(|s| s.to_string()).collect();
        let mut scope = rhai::Scope::new();
        let mut rhai_failed = false;
        for (i, f) in all.iter().enumerate() {
            script::fill_scope(&mut scope, f, &flags);
            let rhai = script::eval(&engine, &cond, &mut scope, "D");
            match (verdicts.get(cond.id, i), rhai) {
                (None, _) => {}
                (Some(v), Ok(r)) => prop_assert_eq!(v, r, "`{}` on account {}", source, i),
                (Some(v), Err(e)) => {
                    rhai_failed = true;
                    prop_assert!(false, "`{}` on account {}: columns gave {} where Rhai failed: {}", source, i, v, e.message);
                }
            }
        }
        prop_assert!(!rhai_failed);
    }
}

#[test]
fn the_subset_translates_and_the_rest_says_why() {
    let yes = [
        "max_dpd >= 60 && overdue >= 100.00",
        "!do_not_contact && has_email",
        "country in [\"FR\", \"BE\"] || kind == \"business\"",
        "overdue - aging_1_30 > 2 * 50.5",
        "-level < 3",
    ];
    for (i, s) in yes.iter().enumerate() {
        let c = condition(s, i).unwrap();
        assert!(c.plan.is_ok(), "{s}: {:?}", c.plan);
    }
    let no = [
        ("max_dpd / 2 > 3", "uses `/`"),
        ("abs(score) > 1", "calls `abs`"),
        ("if level > 2 { true } else { false }", "uses `if`"),
        ("language + \"x\" == \"frx\"", "uses `+`"),
        ("kind < \"p\"", "uses `<`"),
        ("max_dpd + 1", "does not give true or false"),
        ("let x = 5; max_dpd > x", "several statements"),
    ];
    for (s, why) in no {
        let c = condition(s, 0).unwrap();
        let err = c.plan.expect_err(s);
        assert!(err.contains(why), "{s}: {err}");
    }
}

#[test]
fn arithmetic_that_could_wrap_runs_in_rhai() {
    let rows = rows();
    let all: Vec<Facts<'_>> = rows.iter().map(facts).collect();
    let cond = condition("overdue * overdue > 1.00", 0).unwrap();
    assert!(cond.plan.is_ok());
    let mut vars = Vec::new();
    cond.plan.as_ref().unwrap().reads(&mut vars);
    let v = Frame::build(&all, |f| *f, &vars)
        .unwrap()
        .evaluate(&[&cond], &[])
        .unwrap();
    assert_eq!(
        v.get(0, 0),
        None,
        "evaluated in 64 bits where it could wrap"
    );
    assert_eq!(v.fell_back.len(), 1);
    assert!(v.fell_back[0].1.contains("64 bits"), "{:?}", v.fell_back);
}

/// The columns are read a slice of rows at a time, on several threads:
/// over many slices, every account still gets Rhai's value, and a value
/// that could wrap in the last slice only still sends the condition to
/// Rhai.
#[test]
fn columns_over_many_slices_agree_with_rhai() {
    let rows = rows();
    let huge = |r: &Row| {
        r.account.overdue.abs() > 1_000_000_000_000 || r.account.open.abs() > 1_000_000_000_000
    };
    let small: Vec<usize> = (0..rows.len()).filter(|&i| !huge(&rows[i])).collect();
    let big: Vec<usize> = (0..rows.len()).filter(|&i| huge(&rows[i])).collect();
    assert!(!big.is_empty() && !small.is_empty());
    // More than two slices of small amounts, then the huge ones.
    let source: Vec<usize> = small
        .iter()
        .cycle()
        .take(40_000)
        .chain(&big)
        .copied()
        .collect();
    let all: Vec<Facts<'_>> = source.iter().map(|&i| facts(&rows[i])).collect();
    let conds = [
        "kind == \"business\" && max_dpd >= 30 || score > 0.5 && has_email",
        "overdue - aging_1_30 > 2 * 50.5 || level >= 2 && days_since_escalation > 10",
        "hold == \"dispute\" || country in [\"FR\", \"GB\"] && !do_not_contact",
        "currency == \"GBP\" && open_items > 2 || consent_sms && has_phone",
        "overdue * overdue > 1.00",
    ];
    let compiled: Vec<Condition> = conds
        .iter()
        .enumerate()
        .map(|(i, c)| condition(c, i).unwrap())
        .collect();
    let mut vars = Vec::new();
    for c in &compiled {
        c.plan.as_ref().unwrap().reads(&mut vars);
    }
    let frame = Frame::build(&all, |f| *f, &vars).unwrap();
    let refs: Vec<&Condition> = compiled.iter().collect();
    let v = frame.evaluate(&refs, &[]).unwrap();
    let wrapped = conds.len() - 1;
    assert_eq!(
        v.get(wrapped, 0),
        None,
        "evaluated in 64 bits where the last slice could wrap"
    );
    assert!(
        v.fell_back.iter().any(|(_, why)| why.contains("64 bits")),
        "{:?}",
        v.fell_back
    );
    // A score that does not fit 64 bits at the night's scale, in the last
    // slice only: the score's column is not used.
    let mut odd = crate::rows()
        .into_iter()
        .find(|r| r.debtor.is_some())
        .unwrap();
    odd.debtor.as_mut().unwrap().score = Some(Decimal::MAX);
    let mut with_odd: Vec<Facts<'_>> = all[..40_000].to_vec();
    with_odd.push(facts(&odd));
    let score = condition("score > 0.5", 0).unwrap();
    let mut vars = Vec::new();
    score.plan.as_ref().unwrap().reads(&mut vars);
    let s = Frame::build(&with_odd, |f| *f, &vars)
        .unwrap()
        .evaluate(&[&score], &[])
        .unwrap();
    assert_eq!(s.get(0, 0), None, "a score that does not fit was a column");
    assert!(
        s.fell_back.iter().any(|(_, why)| why.contains("64 bits")),
        "{:?}",
        s.fell_back
    );
    let engine = script::engine();
    let flags: Vec<String> = FLAGS.iter().map(|s| s.to_string()).collect();
    let mut scope = rhai::Scope::new();
    // Rhai's value for each distinct account, then every row against it.
    let rhai: Vec<Vec<bool>> = rows
        .iter()
        .map(|r| {
            script::fill_scope(&mut scope, &facts(r), &flags);
            compiled[..wrapped]
                .iter()
                .map(|c| script::eval(&engine, c, &mut scope, "D").unwrap())
                .collect()
        })
        .collect();
    for (row, &i) in source.iter().enumerate() {
        for (c, want) in rhai[i].iter().enumerate() {
            assert_eq!(
                v.get(c, row),
                Some(*want),
                "`{}` on row {row} (account {i})",
                conds[c]
            );
        }
    }
}

#[test]
fn segment_columns_need_every_segment_condition_as_a_column() {
    let rows = rows();
    let all: Vec<Facts<'_>> = rows.iter().map(facts).collect();
    let level = compile("segment == \"big\" && max_dpd >= 5", 2, true).unwrap();
    let big = compile("overdue >= 5000.00", 0, false).unwrap();
    let retail = compile("true", 1, false).unwrap();
    let in_rhai = compile("abs(score) > 1", 0, false).unwrap();
    assert!(level.plan.is_ok() && big.plan.is_ok() && in_rhai.plan.is_err());
    let mut vars = Vec::new();
    for c in [&level, &big] {
        c.plan.as_ref().unwrap().reads(&mut vars);
    }
    let frame = Frame::build(&all, |f| *f, &vars).unwrap();
    // Every segment a column: the level reads the segment column.
    let v = frame
        .evaluate(&[&big, &retail, &level], &[(0, "big"), (1, "retail")])
        .unwrap();
    for (i, r) in rows.iter().enumerate() {
        let want = r.account.overdue >= 500_000 && r.account.max_dpd >= 5;
        assert_eq!(v.get(2, i), Some(want), "account {i}");
    }
    // A segment condition in Rhai: the level goes to Rhai too, and says why.
    let v = frame
        .evaluate(&[&in_rhai, &retail, &level], &[(0, "big"), (1, "retail")])
        .unwrap();
    assert_eq!(v.get(2, 0), None);
    assert!(
        v.fell_back
            .iter()
            .any(|(_, why)| why.contains("reads `segment`")),
        "{:?}",
        v.fell_back
    );
}

/// `segment` compared with names is read from the segment conditions'
/// columns, first match wins, and an account in no segment has the empty
/// name; what reads the segment otherwise still gets its text column.
#[test]
fn segment_names_are_read_from_the_segment_conditions() {
    let rows = rows();
    let all: Vec<Facts<'_>> = rows.iter().map(facts).collect();
    let big = compile("overdue >= 5000.00", 0, false).unwrap();
    let mid = compile("max_dpd >= 30", 1, false).unwrap();
    // Each with what it should give for a segment and the debtor's kind.
    type Expected = fn(&str, &str) -> bool;
    let reads: [(&str, Expected); 8] = [
        ("segment == \"big\"", |s, _| s == "big"),
        ("\"mid\" != segment", |s, _| s != "mid"),
        ("segment in [\"mid\", \"nope\"]", |s, _| s == "mid"),
        ("segment == \"\"", |s, _| s.is_empty()),
        ("segment == \"nope\"", |_, _| false),
        // The text itself: against a variable, not a name.
        ("segment == kind", |s, k| s == k),
        ("segment == \"mid\" && segment != \"\"", |s, _| s == "mid"),
        ("!(segment in [\"big\"]) || kind == segment", |s, k| {
            s != "big" || s == k
        }),
    ];
    let conds: Vec<_> = reads
        .iter()
        .enumerate()
        .map(|(i, (src, _))| compile(src, i + 2, true).unwrap())
        .collect();
    let mut vars = Vec::new();
    for c in [&big, &mid].into_iter().chain(&conds) {
        assert!(c.plan.is_ok(), "{}: {:?}", c.source, c.plan);
        c.plan.as_ref().unwrap().reads(&mut vars);
    }
    let frame = Frame::build(&all, |f| *f, &vars).unwrap();
    let mut every = vec![&big, &mid];
    every.extend(&conds);
    let v = frame.evaluate(&every, &[(0, "big"), (1, "mid")]).unwrap();
    assert!(v.fell_back.is_empty(), "{:?}", v.fell_back);
    let segments: Vec<&str> = rows
        .iter()
        .map(|r| {
            if r.account.overdue >= 500_000 {
                "big"
            } else if r.account.max_dpd >= 30 {
                "mid"
            } else {
                ""
            }
        })
        .collect();
    assert!(["big", "mid", ""].iter().all(|s| segments.contains(s)));
    for (c, (src, want)) in conds.iter().zip(reads) {
        for (i, seg) in segments.iter().enumerate() {
            let Fact::Str(kind) = all[i].value(1) else {
                panic!("kind is text")
            };
            let got = v.get(c.id, i);
            assert_eq!(got, Some(want(seg, kind)), "{src}, account {i} in {seg:?}");
        }
    }
}

/// A policy whose conditions use the whole subset: arithmetic on amounts,
/// `in` lists, flags, the segment, the score, negation.
fn wide_policy(dir: &Path) -> std::path::PathBuf {
    let pol = edited_policy(dir, |t| {
        t.replace(
            "    when: overdue >= 5000.00",
            "    when: big(overdue - aging_1_30) || (open >= 8000 && country in [\"FR\", \"BE\"])",
        )
        .replace("        when: max_dpd >= 30\n", "        when: late(max_dpd, 30)\n")
        .replace(
            "  when: level >= 5 && overdue < 50.00 && days_since_escalation >= 60",
            "  when: level >= 5 && small(overdue) && days_since_escalation >= 60",
        )
        .replace(
            "        when: max_dpd >= 15\n",
            "        when: max_dpd >= 15 && (overdue_items * 2 > 1 || score > 0.5)\n",
        )
        .replace(
            "            when: segment == \"high_balance\"",
            "            when: segment == \"high_balance\" || (has_score && !email_bounced && segment != \"retail\")",
        )
        .replace(
            "        when: max_dpd >= 45\n",
            "        when: max_dpd >= 45 && !(level in [0, 1, 2] && days_since_escalation < 7)\n",
        )
        .replace(
            "    allowed_when: has_phone && consent_sms && !do_not_contact",
            "    allowed_when: has_phone && consent_sms && !do_not_contact && language != \"zh\"",
        )
            + "\nhelpers: [helpers.rhai]\n"
    });
    std::fs::write(
        pol.join("helpers.rhai"),
        "// Inlined into the columns: one expression of the parameters.\n\
         fn big(amount) { amount >= 4000.00 }\n\
         fn late(days, n) {\n    return days >= n;\n}\n\
         // Runs in Rhai: `abs` is a function call.\n\
         fn small(x) { abs(x) < 50.00 }\n",
    )
    .unwrap();
    pol
}

fn night(policy: &Path, g: &Path, as_of: &str, state: &Path, out: &Path, rhai: bool) {
    let f = |n: &str| g.join(format!("{n}.csv"));
    let mut cmd = Command::new(bin());
    cmd.args(["-q", "run", "--policy"])
        .arg(policy)
        .arg("--ledger")
        .arg(f("ledger"))
        .arg("--debtors")
        .arg(f("debtors"))
        .arg("--events")
        .arg(f("events"))
        .args(["--as-of", as_of, "--trace", "--state"])
        .arg(state)
        .arg("--out")
        .arg(out);
    if rhai {
        cmd.env(dunning::decide::RULES_ENV, "rhai");
    } else {
        cmd.env_remove(dunning::decide::RULES_ENV);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{as_of}: {}", stderr(&o));
}

#[test]
fn vectorised_nights_are_the_rhai_nights_byte_for_byte() {
    let t = tempfile::tempdir().unwrap();
    let g = t.path().join("g");
    generate(&g, 1500, 5);
    let wide = wide_policy(&t.path().join("wide"));
    let check = run(&["check", wide.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{text}");
    assert!(
        text.contains("rules: 13 of 16 evaluated as columns")
            && text.contains("writeoff.when: calls the helper `small`, which calls `abs`"),
        "{text}"
    );
    for (name, pol) in [("retail", policy()), ("wide", wide)] {
        for as_of in ["2026-11-22", "2026-11-30", "2026-12-09"] {
            let a = t.path().join(format!("{name}-cols-{as_of}"));
            let b = t.path().join(format!("{name}-rhai-{as_of}"));
            night(
                &pol,
                &g,
                as_of,
                &t.path().join(format!("{name}-st-cols")),
                &a,
                false,
            );
            night(
                &pol,
                &g,
                as_of,
                &t.path().join(format!("{name}-st-rhai")),
                &b,
                true,
            );
            let (x, y) = (tree(&a), tree(&b));
            assert_eq!(x.len(), y.len(), "{name} {as_of}");
            for ((n, p), (m, q)) in x.iter().zip(&y) {
                assert_eq!(n, m, "{name} {as_of}");
                assert!(p == q, "{name} {as_of}: {n} differs");
            }
        }
    }
}
