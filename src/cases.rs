//! `dunning test`: the policy's own test cases, `tests/*.yaml` in the policy
//! folder, run through the same ingest, accounts, holds and decide stages as
//! a night, so that a case passing means a night would do the same.
//!
//! A case gives either account facts (`account: {overdue, max_dpd}`) or a
//! tiny ledger, plus the debtor, events and what the state remembers, an
//! as-of date, and the parts of the decision it expects. Only the parts
//! given are compared, so a case says exactly what it is about.

use crate::decide::Decision;
use crate::history::Prior;
use crate::policy::{display_path, Policy};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    Unusable { file: String, message: String },
    #[error("{0}: no test cases (expected tests/*.yaml in the policy folder)")]
    None(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    as_of: String,
    /// Facts form: one overdue item of this amount, this many days past due.
    #[serde(default)]
    account: Option<FactsDoc>,
    /// Ledger form: the debtor's items.
    #[serde(default)]
    ledger: Vec<ItemDoc>,
    #[serde(default)]
    debtor: DebtorDoc,
    #[serde(default)]
    events: Vec<EventDoc>,
    /// What the state remembers from the last night, per account.
    #[serde(default)]
    prior: Vec<PriorDoc>,
    expect: Expectations,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Expectations {
    One(Expect),
    Many(Vec<Expect>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FactsDoc {
    #[serde(default = "eur")]
    currency: String,
    overdue: String,
    max_dpd: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemDoc {
    #[serde(default)]
    id: Option<String>,
    #[serde(default = "eur")]
    currency: String,
    #[serde(default)]
    amount: Option<String>,
    open: String,
    due: String,
    #[serde(default)]
    issued: Option<String>,
}

fn eur() -> String {
    "EUR".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct DebtorDoc {
    id: String,
    name: String,
    kind: String,
    language: String,
    country: String,
    email: String,
    phone: String,
    address: String,
    postal_code: String,
    city: String,
    score: Option<String>,
    consent_email: Option<bool>,
    consent_sms: Option<bool>,
}

impl Default for DebtorDoc {
    fn default() -> Self {
        DebtorDoc {
            id: "D1".into(),
            name: "Test Debtor".into(),
            kind: "person".into(),
            language: "fr".into(),
            country: "FR".into(),
            email: "debtor@example.com".into(),
            phone: "+33612345678".into(),
            address: "1 rue de la Paix".into(),
            postal_code: "75002".into(),
            city: "Paris".into(),
            score: None,
            consent_email: None,
            consent_sms: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventDoc {
    kind: String,
    date: String,
    #[serde(default)]
    until: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriorDoc {
    #[serde(default = "eur")]
    currency: String,
    level: u32,
    #[serde(default)]
    last_escalated_on: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    segment: Option<String>,
    #[serde(default)]
    level: Option<u32>,
    #[serde(default)]
    actions: Option<Vec<String>>,
    #[serde(default)]
    held_by: Option<String>,
    #[serde(default)]
    outcome: Option<String>,
    /// Shorthand for `actions: []`.
    #[serde(default)]
    no_action: Option<bool>,
    /// The account is not listed in `decisions.csv` at all.
    #[serde(default)]
    absent: Option<bool>,
}

/// One case's verdict.
#[derive(Debug)]
pub struct Outcome {
    pub file: String,
    pub line: usize,
    pub name: String,
    /// Empty when the case passed.
    pub failures: Vec<String>,
    /// The decisions made, for the failure report.
    pub decided: Vec<String>,
}

/// Every case of every `tests/*.yaml`, in file then case order. A file that
/// cannot be read or parsed stops everything: a test suite that silently
/// skips a file is worse than none.
pub fn run(policy_dir: &Path, filter: Option<&str>) -> anyhow::Result<Vec<Outcome>> {
    let policy = Policy::load(policy_dir)?;
    let dir = policy_dir.join("tests");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    if files.is_empty() {
        return Err(CaseError::None(display_path(policy_dir)).into());
    }
    let scratch = tempfile::tempdir()?;
    let mut out = Vec::new();
    for path in files {
        let label = display_path(&path);
        let text = std::fs::read_to_string(&path).map_err(|e| CaseError::Unusable {
            file: label.clone(),
            message: e.to_string(),
        })?;
        let doc: CaseFile = serde_yaml_ng::from_str(&text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            CaseError::Syntax {
                file: label.clone(),
                line,
                column,
                message: e.to_string(),
            }
        })?;
        for case in &doc.cases {
            if filter.is_some_and(|f| !case.name.contains(f)) {
                continue;
            }
            let line = line_of(&text, &case.name);
            let decided =
                run_case(&policy, case, scratch.path()).map_err(|message| CaseError::Unusable {
                    file: format!("{label}:{line}"),
                    message: format!("case `{}`: {message}", case.name),
                })?;
            let failures = compare(case, &decided);
            out.push(Outcome {
                file: label.clone(),
                line,
                name: case.name.clone(),
                failures,
                decided: decided.iter().map(describe).collect(),
            });
        }
    }
    Ok(out)
}

/// The line of `name: <the case's name>`, to point at a failing case.
fn line_of(text: &str, name: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches("- ").trim_start();
            l.strip_prefix("name:").is_some_and(|v| {
                let v = v.trim();
                v == name || v.trim_matches('"') == name || v.trim_matches('\'') == name
            })
        })
        .map_or(1, |i| i + 1)
}

fn describe(d: &Decision) -> String {
    let actions: Vec<String> = d.actions.iter().map(|a| a.to_string()).collect();
    format!(
        "{} {}: segment {}, level {} -> {}, actions [{}], held_by `{}`, {} by {} ({})",
        d.account.debtor_id,
        d.account.currency,
        d.segment,
        d.level_before,
        d.level_after,
        actions.join(", "),
        d.held_by,
        d.outcome.as_str(),
        d.rule,
        d.reason
    )
}

fn csv_line(cells: &[&str]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(cells).expect("in memory");
    String::from_utf8(w.into_inner().expect("in memory")).expect("utf-8")
}

/// Writes the case as the three input files and runs it through a night's
/// stages (nothing is written but the scratch inputs).
fn run_case(policy: &Policy, case: &Case, scratch: &Path) -> Result<Vec<Decision>, String> {
    let as_of = crate::dates::parse_date(&case.as_of)
        .ok_or_else(|| format!("as_of `{}` is not a date (YYYY-MM-DD)", case.as_of))?;
    let d = &case.debtor;
    let mut ledger = String::from(
        "item_id,debtor_id,currency,amount,open_amount,issued_on,due_on,product,reference\n",
    );
    let mut items: Vec<(Option<String>, String, String, String, String, String)> = Vec::new();
    if let Some(f) = &case.account {
        if f.max_dpd <= policy.grace_days {
            return Err(format!(
                "account facts: max_dpd {} is within the policy's {} grace days, so nothing would be overdue; give a `ledger:` instead",
                f.max_dpd, policy.grace_days
            ));
        }
        let due = as_of - chrono::Duration::days(f.max_dpd);
        items.push((
            None,
            f.currency.clone(),
            f.overdue.clone(),
            f.overdue.clone(),
            due.to_string(),
            String::new(),
        ));
    }
    for it in &case.ledger {
        items.push((
            it.id.clone(),
            it.currency.clone(),
            it.amount.clone().unwrap_or_else(|| it.open.clone()),
            it.open.clone(),
            it.due.clone(),
            it.issued.clone().unwrap_or_default(),
        ));
    }
    for (i, (id, currency, amount, open, due, issued)) in items.iter().enumerate() {
        let id = id.clone().unwrap_or_else(|| format!("I{}", i + 1));
        let issued = if issued.is_empty() {
            crate::dates::parse_date(due)
                .map(|d| (d - chrono::Duration::days(30)).to_string())
                .unwrap_or_else(|| due.clone())
        } else {
            issued.clone()
        };
        ledger.push_str(&csv_line(&[
            &id, &d.id, currency, amount, open, &issued, due, "test", &id,
        ]));
    }
    let flag = |b: Option<bool>| b.map_or(String::new(), |b| b.to_string());
    let debtors = format!(
        "debtor_id,name,kind,language,country,email,phone,address_line1,address_line2,postal_code,city,timezone,score,consent_email,consent_sms\n{}",
        csv_line(&[
            &d.id,
            &d.name,
            &d.kind,
            &d.language,
            &d.country,
            &d.email,
            &d.phone,
            &d.address,
            "",
            &d.postal_code,
            &d.city,
            "",
            d.score.as_deref().unwrap_or(""),
            &flag(d.consent_email),
            &flag(d.consent_sms),
        ])
    );
    let mut events = String::from("debtor_id,date,kind,until,amount,note\n");
    for e in &case.events {
        events.push_str(&csv_line(&[
            &d.id,
            &e.date,
            &e.kind,
            e.until.as_deref().unwrap_or(""),
            "",
            "",
        ]));
    }
    let write = |name: &str, text: &str| -> Result<PathBuf, String> {
        let p = scratch.join(name);
        std::fs::write(&p, text).map_err(|e| e.to_string())?;
        Ok(p)
    };
    let (lp, dp, ep) = (
        write("ledger.csv", &ledger)?,
        write("debtors.csv", &debtors)?,
        write("events.csv", &events)?,
    );
    let data = crate::ingest::read(&lp, &dp, Some(&ep), &policy.messages.default_country)
        .map_err(|e| e.to_string())?;
    if let Some(r) = data.rejects.first() {
        return Err(format!("the case's input was rejected: {r}"));
    }
    let mut priors = HashMap::new();
    for p in &case.prior {
        let last = match &p.last_escalated_on {
            None => None,
            Some(s) => Some(
                crate::dates::parse_date(s)
                    .ok_or_else(|| format!("prior.last_escalated_on `{s}` is not a date"))?,
            ),
        };
        priors.insert(
            (d.id.clone(), p.currency.clone()),
            Prior {
                level: p.level,
                last_escalated_on: last,
                ..Prior::default()
            },
        );
    }
    crate::night::decide_night(
        policy,
        None,
        &data,
        as_of,
        &priors,
        false,
        &[],
        &Default::default(),
    )
    .map_err(|e| format!("{e:#}"))
}

fn compare(case: &Case, decided: &[Decision]) -> Vec<String> {
    let expects: Vec<&Expect> = match &case.expect {
        Expectations::One(e) => vec![e],
        Expectations::Many(v) => v.iter().collect(),
    };
    let mut out = Vec::new();
    for e in expects {
        let found: Vec<&Decision> = decided
            .iter()
            .filter(|d| e.currency.as_ref().is_none_or(|c| d.account.currency == c))
            .collect();
        if e.absent == Some(true) {
            if !found.is_empty() {
                out.push(format!(
                    "expected no decision{}, got {}",
                    e.currency
                        .as_ref()
                        .map(|c| format!(" for {c}"))
                        .unwrap_or_default(),
                    found.len()
                ));
            }
            continue;
        }
        let d = match found.as_slice() {
            [d] => *d,
            [] => {
                out.push(format!(
                    "expected a decision{}, got none (the account is not listed)",
                    e.currency
                        .as_ref()
                        .map(|c| format!(" for {c}"))
                        .unwrap_or_default()
                ));
                continue;
            }
            many => {
                out.push(format!(
                    "{} accounts were decided; say which with `currency:`",
                    many.len()
                ));
                continue;
            }
        };
        let mut check = |what: &str, want: String, got: String| {
            if want != got {
                out.push(format!(
                    "{}{what}: expected {want}, got {got}",
                    e.currency
                        .as_ref()
                        .map(|c| format!("[{c}] "))
                        .unwrap_or_default()
                ));
            }
        };
        if let Some(s) = &e.segment {
            check("segment", s.clone(), d.segment.to_string());
        }
        if let Some(l) = e.level {
            check("level", l.to_string(), d.level_after.to_string());
        }
        let got_actions: Vec<String> = d.actions.iter().map(|a| a.to_string()).collect();
        let want_actions = match (&e.actions, e.no_action) {
            (Some(a), _) => Some(a.clone()),
            (None, Some(true)) => Some(Vec::new()),
            _ => None,
        };
        if let Some(a) = want_actions {
            check(
                "actions",
                format!("[{}]", a.join(", ")),
                format!("[{}]", got_actions.join(", ")),
            );
        }
        if let Some(h) = &e.held_by {
            check("held_by", format!("`{h}`"), format!("`{}`", d.held_by));
        }
        if let Some(o) = &e.outcome {
            check("outcome", o.clone(), d.outcome.as_str().to_owned());
        }
    }
    out
}

/// The runner's report, `cargo test` style, ending with `N passed, M failed`.
pub fn report(outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "running {} cases", outcomes.len());
    for o in outcomes {
        let file = Path::new(&o.file)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "case {file}: {} ... {}",
            o.name,
            if o.failures.is_empty() {
                "ok"
            } else {
                "FAILED"
            }
        );
    }
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.failures.is_empty()).collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "\nfailures:");
        for o in &failed {
            let _ = writeln!(s, "\n---- {}:{}: {} ----", o.file, o.line, o.name);
            for f in &o.failures {
                let _ = writeln!(s, "  {f}");
            }
            for d in &o.decided {
                let _ = writeln!(s, "  decided: {d}");
            }
        }
    }
    let _ = writeln!(
        s,
        "\n{}: {} passed, {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        outcomes.len() - failed.len(),
        failed.len()
    );
    s
}
