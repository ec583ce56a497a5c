//! `dunning diff A B`: what changes between two nights' outputs, typically
//! two policy versions run on one fixture ledger. Reads only the output
//! folders (`decisions.csv`, `manifest.json`), so it works on any two runs,
//! on any machine, long after the fact.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("{file}: {message}")]
    Unreadable { file: String, message: String },
    #[error("{file}: row {row}: {message}")]
    BadRow {
        file: String,
        row: usize,
        message: String,
    },
}

/// One row of `decisions.csv`, by column name (so that files with more
/// columns, or from another version, still compare).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Row {
    pub segment: String,
    pub level_before: String,
    pub level_after: String,
    pub actions: String,
    pub held_by: String,
    pub overdue: String,
    pub outcome: String,
    pub rule: String,
    pub reason: String,
    pub strategy: String,
}

impl Row {
    fn decision(&self) -> (&str, &str, &str, &str) {
        (
            &self.segment,
            &self.level_after,
            &self.actions,
            &self.held_by,
        )
    }
}

type Key = (String, String);

struct Side {
    label: String,
    rows: BTreeMap<Key, Row>,
    policy: String,
    inputs: Vec<String>,
}

fn read_side(dir: &Path) -> Result<Side, DiffError> {
    let path = dir.join("decisions.csv");
    let file = path.display().to_string();
    let mut rdr = csv::Reader::from_path(&path).map_err(|e| DiffError::Unreadable {
        file: file.clone(),
        message: e.to_string(),
    })?;
    let headers = rdr
        .headers()
        .map_err(|e| DiffError::Unreadable {
            file: file.clone(),
            message: e.to_string(),
        })?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let need = |name: &str| {
        col(name).ok_or_else(|| DiffError::Unreadable {
            file: file.clone(),
            message: format!("no `{name}` column; is this a dunning decisions.csv?"),
        })
    };
    let (id, cur) = (need("debtor_id")?, need("currency")?);
    let level_after = need("level_after")?;
    let fields = [
        "segment",
        "level_before",
        "actions",
        "held_by",
        "overdue",
        "outcome",
        "rule",
        "reason",
        "strategy",
    ]
    .map(col);
    let mut rows = BTreeMap::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| DiffError::BadRow {
            file: file.clone(),
            row: i + 2,
            message: e.to_string(),
        })?;
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("").to_owned();
        let key = (get(Some(id)), get(Some(cur)));
        let row = Row {
            segment: get(fields[0]),
            level_before: get(fields[1]),
            level_after: get(Some(level_after)),
            actions: get(fields[2]),
            held_by: get(fields[3]),
            overdue: get(fields[4]),
            outcome: get(fields[5]),
            rule: get(fields[6]),
            reason: get(fields[7]),
            strategy: get(fields[8]),
        };
        if rows.insert(key.clone(), row).is_some() {
            return Err(DiffError::BadRow {
                file,
                row: i + 2,
                message: format!("account {} {} listed twice", key.0, key.1),
            });
        }
    }
    // The manifest says which policy and inputs made the night; a diff of
    // nights over different inputs is still shown, with a warning.
    let manifest: Option<serde_json::Value> = std::fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let policy = manifest
        .as_ref()
        .map(|m| {
            let p = &m["policy"];
            format!(
                "{} version {} ({})",
                p["name"].as_str().unwrap_or("?"),
                p["version"].as_str().unwrap_or("-"),
                p["sha256"].as_str().unwrap_or("").get(..12).unwrap_or("")
            )
        })
        .unwrap_or_else(|| "unknown policy (no manifest.json)".into());
    let inputs = manifest
        .as_ref()
        .and_then(|m| m["inputs"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|i| {
            format!(
                "{}={}",
                i["role"].as_str().unwrap_or(""),
                i["sha256"].as_str().unwrap_or("")
            )
        })
        .collect();
    Ok(Side {
        label: dir.display().to_string(),
        rows,
        policy,
        inputs,
    })
}

/// One account that differs.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub debtor_id: String,
    pub currency: String,
    /// `changed`, `only_a`, `only_b`, or `reason` (same decision, another
    /// rule or reason).
    pub kind: &'static str,
    pub a: Option<Row>,
    pub b: Option<Row>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ChannelChange {
    /// Accounts that get an action on this channel in B and not in A.
    pub added: u64,
    /// Accounts that lose it.
    pub removed: u64,
    /// Accounts with actions on this channel on both sides, but other ones.
    pub changed: u64,
}

#[derive(Debug, Serialize)]
pub struct Diff {
    pub a: String,
    pub b: String,
    pub policy_a: String,
    pub policy_b: String,
    pub same_inputs: bool,
    pub accounts_a: usize,
    pub accounts_b: usize,
    /// Accounts whose decision (segment, level_after, actions or held_by)
    /// differs, or that only one side lists.
    pub decisions_changed: usize,
    pub only_a: usize,
    pub only_b: usize,
    /// Same decision, other rule or reason.
    pub reasons_changed: usize,
    /// `level_after` of A (outer) against B (inner), over accounts both list.
    pub levels: BTreeMap<String, BTreeMap<String, u64>>,
    pub channels: BTreeMap<String, ChannelChange>,
    /// Sum of `overdue` over the accounts whose decision changed, by currency.
    pub overdue_affected: BTreeMap<String, String>,
    #[serde(skip)]
    pub changes: Vec<Change>,
}

impl Diff {
    pub fn identical(&self) -> bool {
        self.decisions_changed == 0 && self.reasons_changed == 0
    }
}

fn channels_of(actions: &str) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut m: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for a in actions.split(';').filter(|a| !a.is_empty()) {
        let (ch, t) = a.split_once(':').unwrap_or((a, ""));
        m.entry(ch).or_default().insert(t);
    }
    m
}

fn cents(s: &str) -> i128 {
    crate::money::parse_amount(s).map_or(0, i128::from)
}

pub fn compare(a_dir: &Path, b_dir: &Path) -> Result<Diff, DiffError> {
    let a = read_side(a_dir)?;
    let b = read_side(b_dir)?;
    let keys: BTreeSet<&Key> = a.rows.keys().chain(b.rows.keys()).collect();
    let mut d = Diff {
        a: a.label.clone(),
        b: b.label.clone(),
        policy_a: a.policy.clone(),
        policy_b: b.policy.clone(),
        same_inputs: a.inputs == b.inputs,
        accounts_a: a.rows.len(),
        accounts_b: b.rows.len(),
        decisions_changed: 0,
        only_a: 0,
        only_b: 0,
        reasons_changed: 0,
        levels: BTreeMap::new(),
        channels: BTreeMap::new(),
        overdue_affected: BTreeMap::new(),
        changes: Vec::new(),
    };
    let mut affected: BTreeMap<String, i128> = BTreeMap::new();
    for key in keys {
        let (ra, rb) = (a.rows.get(key), b.rows.get(key));
        if let (Some(x), Some(y)) = (ra, rb) {
            *d.levels
                .entry(x.level_after.clone())
                .or_default()
                .entry(y.level_after.clone())
                .or_default() += 1;
        }
        let kind = match (ra, rb) {
            (Some(x), Some(y)) if x.decision() == y.decision() => {
                if x.rule == y.rule && x.reason == y.reason {
                    continue;
                }
                "reason"
            }
            (Some(_), Some(_)) => "changed",
            (Some(_), None) => "only_a",
            (None, Some(_)) => "only_b",
            (None, None) => unreachable!("a key comes from one side"),
        };
        if kind == "reason" {
            d.reasons_changed += 1;
        } else {
            d.decisions_changed += 1;
            match kind {
                "only_a" => d.only_a += 1,
                "only_b" => d.only_b += 1,
                _ => {}
            }
            let overdue = ra.or(rb).map_or("", |r| r.overdue.as_str());
            *affected.entry(key.1.clone()).or_default() += cents(overdue);
            let ca = channels_of(ra.map_or("", |r| r.actions.as_str()));
            let cb = channels_of(rb.map_or("", |r| r.actions.as_str()));
            let names: BTreeSet<&&str> = ca.keys().chain(cb.keys()).collect();
            for ch in names {
                let e = d.channels.entry((*ch).to_owned()).or_default();
                match (ca.get(*ch), cb.get(*ch)) {
                    (None, Some(_)) => e.added += 1,
                    (Some(_), None) => e.removed += 1,
                    (Some(x), Some(y)) if x != y => e.changed += 1,
                    _ => {}
                }
            }
        }
        d.changes.push(Change {
            debtor_id: key.0.clone(),
            currency: key.1.clone(),
            kind,
            a: ra.cloned(),
            b: rb.cloned(),
        });
    }
    d.channels
        .retain(|_, c| c.added + c.removed + c.changed > 0);
    d.overdue_affected = affected
        .into_iter()
        .map(|(c, v)| (c, crate::money::format_cents(v as i64)))
        .collect();
    Ok(d)
}

fn side(r: &Option<Row>) -> String {
    match r {
        None => "(not listed)".into(),
        Some(r) => format!(
            "level {} -> {}, segment {}, actions {}{}",
            r.level_before,
            r.level_after,
            if r.segment.is_empty() {
                "-"
            } else {
                &r.segment
            },
            if r.actions.is_empty() {
                "-"
            } else {
                &r.actions
            },
            if r.held_by.is_empty() {
                String::new()
            } else {
                format!(", held_by {}", r.held_by)
            }
        ),
    }
}

fn why(r: &Option<Row>) -> String {
    r.as_ref()
        .map(|r| format!("{}: {}", r.rule, r.reason))
        .unwrap_or_default()
}

pub fn to_text(d: &Diff, examples: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "A: {} ({})", d.a, d.policy_a);
    let _ = writeln!(s, "B: {} ({})", d.b, d.policy_b);
    if !d.same_inputs {
        let _ = writeln!(
            s,
            "warning: the two nights read different inputs (see their manifest.json); differences may come from the data, not the policy"
        );
    }
    let base = d.accounts_a.max(1) as f64;
    let _ = writeln!(
        s,
        "accounts: {} in A, {} in B; {} decisions changed ({:.2}% of A), {} only in A, {} only in B, {} same decision with another rule or reason",
        d.accounts_a,
        d.accounts_b,
        d.decisions_changed,
        d.decisions_changed as f64 * 100.0 / base,
        d.only_a,
        d.only_b,
        d.reasons_changed
    );
    if d.identical() {
        let _ = writeln!(s, "identical");
        return s;
    }
    // The level matrix: rows A, columns B.
    let levels: BTreeSet<&String> = d
        .levels
        .keys()
        .chain(d.levels.values().flat_map(|m| m.keys()))
        .collect();
    let mut levels: Vec<&String> = levels.into_iter().collect();
    levels.sort_by_key(|l| l.parse::<i64>().unwrap_or(i64::MAX));
    let _ = writeln!(s, "\nlevel_after, A (rows) against B (columns):");
    let _ = write!(s, "  {:>6}", "A \\ B");
    for l in &levels {
        let _ = write!(s, " {l:>8}");
    }
    let _ = writeln!(s);
    for la in &levels {
        let _ = write!(s, "  {la:>6}");
        for lb in &levels {
            let n = d
                .levels
                .get(*la)
                .and_then(|m| m.get(*lb))
                .copied()
                .unwrap_or(0);
            if n == 0 {
                let _ = write!(s, " {:>8}", ".");
            } else {
                let _ = write!(s, " {n:>8}");
            }
        }
        let _ = writeln!(s);
    }
    if !d.channels.is_empty() {
        let _ = writeln!(s, "\nactions by channel (accounts, B against A):");
        for (ch, c) in &d.channels {
            let _ = writeln!(
                s,
                "  {ch:<10} +{} gain it, -{} lose it, {} other templates",
                c.added, c.removed, c.changed
            );
        }
    }
    if !d.overdue_affected.is_empty() {
        let list: Vec<String> = d
            .overdue_affected
            .iter()
            .map(|(c, v)| format!("{v} {c}"))
            .collect();
        let _ = writeln!(
            s,
            "\noverdue amount of the accounts whose decision changed: {}",
            list.join(", ")
        );
    }
    let shown: Vec<&Change> = d.changes.iter().take(examples).collect();
    if !shown.is_empty() {
        let _ = writeln!(
            s,
            "\nfirst {} of {} differing accounts:",
            shown.len(),
            d.changes.len()
        );
        for c in shown {
            let _ = writeln!(s, "  {} {} ({})", c.debtor_id, c.currency, c.kind);
            let _ = writeln!(s, "    A: {}", side(&c.a));
            let _ = writeln!(s, "       {}", why(&c.a));
            let _ = writeln!(s, "    B: {}", side(&c.b));
            let _ = writeln!(s, "       {}", why(&c.b));
        }
    }
    s
}

pub fn to_json(d: &Diff, examples: usize) -> serde_json::Value {
    let mut v = serde_json::to_value(d).expect("plain data");
    v["identical"] = serde_json::Value::Bool(d.identical());
    v["examples"] = serde_json::to_value(d.changes.iter().take(examples).collect::<Vec<_>>())
        .expect("plain data");
    v
}

/// Every differing account, one row each, for a spreadsheet.
pub fn to_csv(d: &Diff) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "debtor_id",
        "currency",
        "change",
        "segment_a",
        "segment_b",
        "level_before",
        "level_after_a",
        "level_after_b",
        "actions_a",
        "actions_b",
        "held_by_a",
        "held_by_b",
        "overdue",
        "rule_a",
        "rule_b",
        "reason_a",
        "reason_b",
    ])
    .expect("in memory");
    let e = Row::default();
    for c in &d.changes {
        let (a, b) = (c.a.as_ref().unwrap_or(&e), c.b.as_ref().unwrap_or(&e));
        let before = if c.a.is_some() {
            &a.level_before
        } else {
            &b.level_before
        };
        let overdue = if c.a.is_some() {
            &a.overdue
        } else {
            &b.overdue
        };
        w.write_record([
            crate::emit::cell(&c.debtor_id).as_ref(),
            crate::emit::cell(&c.currency).as_ref(),
            c.kind,
            crate::emit::cell(&a.segment).as_ref(),
            crate::emit::cell(&b.segment).as_ref(),
            before,
            &a.level_after,
            &b.level_after,
            crate::emit::cell(&a.actions).as_ref(),
            crate::emit::cell(&b.actions).as_ref(),
            crate::emit::cell(&a.held_by).as_ref(),
            crate::emit::cell(&b.held_by).as_ref(),
            overdue,
            crate::emit::cell(&a.rule).as_ref(),
            crate::emit::cell(&b.rule).as_ref(),
            crate::emit::cell(&a.reason).as_ref(),
            crate::emit::cell(&b.reason).as_ref(),
        ])
        .expect("in memory");
    }
    w.into_inner().expect("in memory")
}
