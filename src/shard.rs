//! Shard and merge: one night spread over N machines under an existing
//! scheduler (a Kubernetes indexed Job, an Airflow task per shard), then put
//! back together.
//!
//! `run --shard K/N` decides only the debtors whose stable hash falls in
//! shard K (every account of a debtor lands in the same shard, the same
//! shard every night), each shard on its own state folder. `dunning merge`
//! combines the shards' output folders into the very bytes the unsharded
//! night would have written: rows are put back in decision order, the
//! summary and the manifest are rebuilt by the same code as a night's.

use crate::decide::{Decision, Outcome};
use crate::emit::{self, Staging};
use crate::night::{Counts, Manifest};
use crate::policy::{display_path, Action};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("--shard {0}: expected K/N with 0 <= K < N, e.g. 0/4 (K is the index a Kubernetes indexed Job gives, JOB_COMPLETION_INDEX)")]
    Spec(String),
    #[error("{file}: {message}")]
    Input { file: String, message: String },
    #[error("merge: {0}")]
    Mismatch(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub k: u32,
    pub n: u32,
}

impl std::str::FromStr for Shard {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let bad = || ShardError::Spec(s.to_owned());
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n): (u32, u32) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if n == 0 || k >= n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }
}

impl Shard {
    /// Whether this shard decides the debtor: a hash of the id alone, so the
    /// split does not depend on the ledger's order or on other debtors.
    pub fn holds(&self, debtor_id: &str) -> bool {
        let mut h = Sha256::new();
        h.update(b"dunning-shard\0");
        h.update(debtor_id.as_bytes());
        let d = h.finalize();
        let x = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
        x % u64::from(self.n) == u64::from(self.k)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ShardError> {
    fs::read(path).map_err(|e| ShardError::Input {
        file: display_path(path),
        message: e.to_string(),
    })
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Result<Vec<String>, ShardError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
        for e in fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() {
                walk(root, &p, out)?;
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out).map_err(|e| ShardError::Input {
        file: display_path(dir),
        message: e.to_string(),
    })?;
    out.sort();
    Ok(out)
}

/// A CSV's rows from every shard, put back in decision order: by
/// (debtor_id, currency) (after `priority` for the call queue), an
/// account's rows in the order its shard wrote them. A debtor lives in one
/// shard only, so this is the order the unsharded night wrote.
fn merge_csv(name: &str, parts: &[Vec<u8>]) -> Result<Vec<u8>, ShardError> {
    let mut header: Option<csv::StringRecord> = None;
    let mut rows: Vec<(Vec<String>, usize, csv::StringRecord)> = Vec::new();
    for bytes in parts {
        let mut rdr = csv::Reader::from_reader(bytes.as_slice());
        let h = rdr
            .headers()
            .map_err(|e| ShardError::Mismatch(format!("{name}: {e}")))?
            .clone();
        match &header {
            None => header = Some(h.clone()),
            Some(prev) if *prev != h => {
                return Err(ShardError::Mismatch(format!(
                    "{name}: the shards' headers differ"
                )))
            }
            _ => {}
        }
        let col = |c: &str| h.iter().position(|x| x == c);
        // The call queue is ordered by priority first, as a number.
        let priority = col("priority").filter(|_| name == "calls.csv");
        let mut keys: Vec<usize> = Vec::new();
        keys.extend(priority);
        keys.extend(col("debtor_id"));
        keys.extend(col("currency"));
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| ShardError::Mismatch(format!("{name}: {e}")))?;
            let key = keys
                .iter()
                .map(|&k| {
                    let v = rec.get(k).unwrap_or("");
                    if Some(k) == priority {
                        format!("{:>20}", v)
                    } else {
                        v.to_owned()
                    }
                })
                .collect();
            rows.push((key, i, rec));
        }
    }
    rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut w = csv::Writer::from_writer(Vec::new());
    if let Some(h) = &header {
        w.write_record(h).expect("in memory");
    }
    for (_, _, r) in &rows {
        w.write_record(r).expect("in memory");
    }
    Ok(w.into_inner().expect("in memory"))
}

/// trace.jsonl: lines back in account order.
fn merge_jsonl(parts: &[Vec<u8>]) -> Result<Vec<u8>, ShardError> {
    let mut lines: Vec<((String, String), &[u8])> = Vec::new();
    for bytes in parts {
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line)
                .map_err(|e| ShardError::Mismatch(format!("trace.jsonl: {e}")))?;
            let key = (
                v["debtor_id"].as_str().unwrap_or("").to_owned(),
                v["currency"].as_str().unwrap_or("").to_owned(),
            );
            lines.push((key, line));
        }
    }
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    for (_, l) in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    Ok(out)
}

/// A decision as `decisions.csv` holds it, enough for the summary.
fn decision_of(h: &csv::StringRecord, r: &csv::StringRecord) -> Result<Decision, ShardError> {
    let get = |c: &str| {
        h.iter()
            .position(|x| x == c)
            .and_then(|i| r.get(i))
            .unwrap_or("")
            .to_owned()
    };
    let bad = |m: String| ShardError::Mismatch(format!("decisions.csv: {m}"));
    let cents = |c: &str| {
        let v = get(c);
        crate::money::parse_amount(&v).map_err(|_| bad(format!("{c} `{v}`")))
    };
    let num = |c: &str| get(c).parse::<u32>().map_err(|_| bad(c.to_string()));
    let actions = get("actions")
        .split(';')
        .filter(|a| !a.is_empty())
        .map(|a| {
            let (ch, t) = a.split_once(':').unwrap_or((a, ""));
            Action {
                channel: ch.into(),
                template: t.into(),
            }
        })
        .collect();
    Ok(Decision {
        account: crate::accounts::Account {
            debtor_id: get("debtor_id").into(),
            currency: get("currency").into(),
            overdue: cents("overdue")?,
            open: cents("open")?,
            max_dpd: get("max_dpd").parse().unwrap_or(0),
            ..Default::default()
        },
        segment: get("segment").into(),
        level_before: num("level_before")?,
        level_after: num("level_after")?,
        actions,
        held_by: get("held_by").into(),
        outcome: Outcome::parse(&get("outcome"))
            .ok_or_else(|| bad(format!("outcome `{}`", get("outcome"))))?,
        rule: get("rule").into(),
        reason: get("reason").into(),
        last_escalated_on: None,
        after: Default::default(),
        recall: None,
        writeoff: false,
        trace: None,
        strategy: u8::from(get("strategy") == "challenger"),
        extra: None,
    })
}

/// `rejects.csv` read back, for the report.
fn read_rejects(bytes: &[u8]) -> Result<Vec<crate::ingest::Reject>, ShardError> {
    let mut rdr = csv::Reader::from_reader(bytes);
    let mut out = Vec::new();
    for r in rdr.records() {
        let r = r.map_err(|e| ShardError::Mismatch(format!("rejects.csv: {e}")))?;
        let get = |i: usize| r.get(i).unwrap_or("").to_owned();
        out.push(crate::ingest::Reject {
            file: get(0),
            row: get(1).parse().unwrap_or(0),
            column: get(2),
            value: get(3),
            reason: get(4),
        });
    }
    Ok(out)
}

/// Combines shard output folders into `out`, written beside and renamed
/// into place like a night.
pub fn merge(shards: &[PathBuf], out: &Path) -> anyhow::Result<PathBuf> {
    // The shards must be the N parts of one night.
    let mut manifests = Vec::new();
    for dir in shards {
        let path = dir.join("manifest.json");
        let m: Manifest = serde_json::from_slice(&read(&path)?).map_err(|e| ShardError::Input {
            file: display_path(&path),
            message: e.to_string(),
        })?;
        manifests.push(m);
    }
    let first = manifests
        .first()
        .ok_or_else(|| ShardError::Mismatch("no shard folders given".into()))?
        .clone();
    let n = first
        .shard
        .ok_or_else(|| {
            ShardError::Mismatch(format!(
                "{} is not a shard's output (no `shard` in its manifest)",
                display_path(&shards[0])
            ))
        })?
        .n;
    let mut seen = BTreeSet::new();
    for (m, dir) in manifests.iter().zip(shards) {
        let s = m.shard.ok_or_else(|| {
            ShardError::Mismatch(format!("{} is not a shard's output", display_path(dir)))
        })?;
        if s.n != n {
            return Err(ShardError::Mismatch(format!(
                "{} is shard {}/{}, the others are of {n}",
                display_path(dir),
                s.k,
                s.n
            ))
            .into());
        }
        if !seen.insert(s.k) {
            return Err(ShardError::Mismatch(format!("shard {}/{n} is given twice", s.k)).into());
        }
        let same = m.as_of == first.as_of
            && m.policy == first.policy
            && m.challenger == first.challenger
            && m.inputs == first.inputs
            && m.previous_night == first.previous_night
            && m.version == first.version;
        if !same {
            return Err(ShardError::Mismatch(format!(
                "{} is not of the same night as {} (as-of, policy, inputs, previous night or engine version differ)",
                display_path(dir),
                display_path(&shards[0])
            ))
            .into());
        }
    }
    if seen.len() as u32 != n {
        let missing: Vec<String> = (0..n)
            .filter(|k| !seen.contains(k))
            .map(|k| format!("{k}/{n}"))
            .collect();
        return Err(ShardError::Mismatch(format!("shards missing: {}", missing.join(", "))).into());
    }

    // Every file any shard wrote, but the three rebuilt below.
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut listing: Vec<Vec<String>> = Vec::new();
    for dir in shards {
        let f = files(dir)?;
        names.extend(f.iter().cloned());
        listing.push(f);
    }
    let mut staging = Staging::new(out)?;
    let mut merged: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for name in &names {
        if matches!(
            name.as_str(),
            "manifest.json" | "summary.json" | "report.html"
        ) {
            continue;
        }
        // Read one file at a time from the shards that have it.
        let parts: Vec<Vec<u8>> = shards
            .iter()
            .zip(&listing)
            .filter(|(_, l)| l.contains(name))
            .map(|(d, _)| read(&d.join(name)))
            .collect::<Result<_, _>>()?;
        let bytes = if name == "rejects.csv" {
            // Every shard read the whole files: the same rejects in each.
            if parts.windows(2).any(|w| w[0] != w[1]) {
                return Err(
                    ShardError::Mismatch("rejects.csv differs between shards".into()).into(),
                );
            }
            parts[0].clone()
        } else if name.ends_with(".csv") {
            merge_csv(name, &parts)?
        } else if name == "trace.jsonl" {
            merge_jsonl(&parts)?
        } else {
            // A document of one account (e-mail, letter, dossier): one
            // shard only; copied through, never all held at once.
            if parts.len() != 1 {
                return Err(ShardError::Mismatch(format!(
                    "{name} was written by {} shards",
                    parts.len()
                ))
                .into());
            }
            staging.write(name, &parts[0])?;
            continue;
        };
        merged.insert(name.clone(), bytes);
    }

    // The summary, rebuilt from the merged decisions by the night's code.
    let decisions_csv = merged
        .get("decisions.csv")
        .ok_or_else(|| ShardError::Mismatch("no decisions.csv".into()))?;
    let mut rdr = csv::Reader::from_reader(decisions_csv.as_slice());
    let h = rdr
        .headers()
        .map_err(|e| ShardError::Mismatch(e.to_string()))?
        .clone();
    let mut decisions = Vec::new();
    for r in rdr.records() {
        let r = r.map_err(|e| ShardError::Mismatch(e.to_string()))?;
        decisions.push(decision_of(&h, &r)?);
    }
    let rejects = merged.get("rejects.csv").map_or(0, |b| {
        csv::Reader::from_reader(b.as_slice()).records().count()
    });
    let mut policies = vec![first.policy.name.as_str()];
    if let Some(c) = &first.challenger {
        policies.push(c.policy.name.as_str());
    }
    let summary = emit::summary(&first.as_of, &policies, &decisions, rejects);

    for (name, bytes) in &merged {
        staging.write(name, bytes)?;
    }
    staging.write("summary.json", &emit::json(&summary))?;
    let mut manifest = Manifest {
        shard: None,
        outputs: Vec::new(),
        counts: Counts::of(&summary),
        ..first
    };
    let rejects = merged
        .get("rejects.csv")
        .map(|b| read_rejects(b))
        .transpose()?
        .unwrap_or_default();
    staging.write(
        "report.html",
        &crate::report::html(&manifest, &decisions, &rejects),
    )?;
    manifest.outputs = emit::sorted(staging.take_written());
    staging.write("manifest.json", &emit::json(&manifest))?;
    Ok(staging.finish()?)
}
