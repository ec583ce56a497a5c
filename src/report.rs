//! Report: `report.html`, the night at a glance for the collections team,
//! in one self-contained file (inline CSS and SVG, no script, font or
//! image to fetch), readable on a phone and printed. It is built only from
//! what the night wrote (the manifest's header, the decisions, the rejects),
//! so `merge` rebuilds the same bytes from shard outputs, and it carries no
//! clock and no personal data (no names, no rejected values).

use crate::decide::{Decision, Outcome};
use crate::ingest::Reject;
use crate::money::{format_cents, Cents};
use crate::night::Manifest;
use serde::Serialize;
use std::collections::BTreeMap;

const TEMPLATE: &str = include_str!("report.html.j2");

/// One row of a table with a bar: a label, counts, amounts per currency.
#[derive(Debug, Default, Serialize)]
struct Row {
    label: String,
    accounts: u64,
    /// `1,234.56 EUR; 10.00 USD`
    overdue: String,
    /// Bar length in percent of the largest row of its table.
    bar: u32,
}

/// Accounts and overdue amounts per currency, keyed on the decisions'
/// own strings (a million accounts, a handful of rows).
#[derive(Debug, Default)]
struct Acc<'a> {
    accounts: u64,
    cents: BTreeMap<&'a str, Cents>,
}

impl<'a> Acc<'a> {
    fn add(&mut self, d: &'a Decision) {
        self.accounts += 1;
        *self.cents.entry(d.account.currency.as_str()).or_default() += d.account.overdue;
    }

    /// Per currency, zero amounts left out (a level-0 account has none).
    fn amounts(&self) -> String {
        let list: Vec<String> = self
            .cents
            .iter()
            .filter(|(_, v)| **v != 0)
            .map(|(c, v)| format!("{} {c}", group(&format_cents(*v))))
            .collect();
        if list.is_empty() {
            "0.00".into()
        } else {
            list.join("; ")
        }
    }
}

/// `1234567.89` -> `1,234,567.89`: the report is read by people.
fn group(s: &str) -> String {
    let (sign, s) = s.strip_prefix('-').map_or(("", s), |r| ("-", r));
    let (int, frac) = s.split_once('.').map_or((s, None), |(i, f)| (i, Some(f)));
    let mut out = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    match frac {
        Some(f) => format!("{sign}{out}.{f}"),
        None => format!("{sign}{out}"),
    }
}

fn rows(map: Vec<(String, Acc<'_>)>) -> Vec<Row> {
    let max = map
        .iter()
        .map(|(_, a)| a.accounts)
        .max()
        .unwrap_or(0)
        .max(1);
    map.into_iter()
        .map(|(label, a)| Row {
            bar: ((a.accounts * 100).div_ceil(max)) as u32,
            overdue: a.amounts(),
            accounts: a.accounts,
            label,
        })
        .collect()
}

#[derive(Serialize)]
struct Tile {
    label: &'static str,
    value: String,
}

#[derive(Serialize)]
struct RejectRow {
    file: String,
    column: String,
    reason: String,
    count: u64,
    first_row: usize,
}

#[derive(Serialize)]
struct Move {
    from: u32,
    to: u32,
    accounts: u64,
}

#[derive(Serialize)]
struct View<'a> {
    m: &'a Manifest,
    tiles: Vec<Tile>,
    levels: Vec<Row>,
    segments: Vec<Row>,
    aging: Vec<Row>,
    channels: Vec<Row>,
    holds: Vec<Row>,
    outcomes: Vec<Row>,
    moves: Vec<Move>,
    entered: u64,
    cured: u64,
    rejects: Vec<RejectRow>,
    rejected_values: usize,
    strategies: Vec<(String, Vec<Row>)>,
}

/// The aging bucket of an account by its largest days past due.
fn bucket(max_dpd: i64) -> &'static str {
    match max_dpd {
        i64::MIN..=0 => "not yet due",
        1..=30 => "1-30 days",
        31..=60 => "31-60 days",
        61..=90 => "61-90 days",
        _ => "over 90 days",
    }
}

const BUCKETS: [&str; 5] = [
    "not yet due",
    "1-30 days",
    "31-60 days",
    "61-90 days",
    "over 90 days",
];

/// The report for one night (or merged shards).
pub fn html(manifest: &Manifest, decisions: &[Decision], rejects: &[Reject]) -> Vec<u8> {
    let mut by_level: BTreeMap<u32, Acc> = BTreeMap::new();
    let mut by_segment: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut by_bucket: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut by_channel: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut by_hold: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut by_outcome: BTreeMap<&str, Acc> = BTreeMap::new();
    let mut moves: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    let mut by_strategy: BTreeMap<&str, BTreeMap<u32, Acc>> = BTreeMap::new();
    let (mut entered, mut cured, mut actions) = (0u64, 0u64, 0u64);
    let mut total = Acc::default();
    for d in decisions {
        total.add(d);
        by_level.entry(d.level_after).or_default().add(d);
        by_segment.entry(d.segment.as_str()).or_default().add(d);
        by_bucket
            .entry(bucket(d.account.max_dpd))
            .or_default()
            .add(d);
        by_outcome.entry(d.outcome.as_str()).or_default().add(d);
        if !d.held_by.is_empty() {
            by_hold.entry(d.held_by.as_str()).or_default().add(d);
        }
        for (i, a) in d.actions.iter().enumerate() {
            actions += 1;
            // An account counts once per channel, however many actions.
            if !d.actions[..i].iter().any(|b| b.channel == a.channel) {
                by_channel.entry(a.channel.as_str()).or_default().add(d);
            }
        }
        if d.level_after != d.level_before {
            *moves.entry((d.level_before, d.level_after)).or_default() += 1;
        }
        if d.outcome == Outcome::Escalate && d.level_before == 0 {
            entered += 1;
        }
        if d.outcome == Outcome::Cure && d.level_before > 0 {
            cured += 1;
        }
        by_strategy
            .entry(d.strategy_name())
            .or_default()
            .entry(d.level_after)
            .or_default()
            .add(d);
    }
    let escalations = decisions
        .iter()
        .filter(|d| d.outcome == Outcome::Escalate)
        .count();
    let held = decisions
        .iter()
        .filter(|d| d.outcome == Outcome::Hold)
        .count();
    let mut tiles = vec![
        Tile {
            label: "accounts",
            value: group(&decisions.len().to_string()),
        },
        Tile {
            label: "escalations",
            value: group(&escalations.to_string()),
        },
        Tile {
            label: "cures",
            value: group(&cured.to_string()),
        },
        Tile {
            label: "on hold",
            value: group(&held.to_string()),
        },
        Tile {
            label: "actions",
            value: group(&actions.to_string()),
        },
        Tile {
            label: "rejected values",
            value: group(&rejects.len().to_string()),
        },
    ];
    // One tile per currency: amounts in two currencies never add.
    for (cur, v) in &total.cents {
        tiles.insert(
            tiles
                .len()
                .min(1 + total.cents.keys().position(|c| c == cur).unwrap_or(0)),
            Tile {
                label: "overdue",
                value: format!("{} {cur}", group(&format_cents(*v))),
            },
        );
    }
    let mut reject_groups: BTreeMap<(String, String, String), (u64, usize)> = BTreeMap::new();
    for r in rejects {
        // As rejects.csv writes them, so that a report rebuilt from that
        // file (by `merge`) says the same.
        let c = |s: &str| crate::emit::cell(s).into_owned();
        let e = reject_groups
            .entry((c(&r.file), c(&r.column), c(&r.reason)))
            .or_insert((0, r.row));
        e.0 += 1;
        e.1 = e.1.min(r.row);
    }
    let view = View {
        m: manifest,
        tiles,
        levels: rows(
            by_level
                .into_iter()
                .map(|(l, a)| (format!("level {l}"), a))
                .collect(),
        ),
        segments: rows(
            by_segment
                .into_iter()
                .map(|(k, a)| (k.to_owned(), a))
                .collect(),
        ),
        aging: rows(
            BUCKETS
                .iter()
                .map(|b| ((*b).to_owned(), by_bucket.remove(b).unwrap_or_default()))
                .collect(),
        ),
        channels: rows(
            by_channel
                .into_iter()
                .map(|(k, a)| (k.to_owned(), a))
                .collect(),
        ),
        holds: rows(
            by_hold
                .into_iter()
                .map(|(k, a)| (k.to_owned(), a))
                .collect(),
        ),
        outcomes: rows(
            by_outcome
                .into_iter()
                .map(|(k, a)| (k.to_owned(), a))
                .collect(),
        ),
        moves: moves
            .into_iter()
            .map(|((from, to), accounts)| Move { from, to, accounts })
            .collect(),
        entered,
        cured,
        rejects: reject_groups
            .into_iter()
            .map(|((file, column, reason), (count, first_row))| RejectRow {
                file,
                column,
                reason,
                count,
                first_row,
            })
            .collect(),
        rejected_values: rejects.len(),
        strategies: if by_strategy.len() > 1 {
            by_strategy
                .into_iter()
                .map(|(s, levels)| {
                    (
                        s.to_owned(),
                        rows(
                            levels
                                .into_iter()
                                .map(|(l, a)| (format!("level {l}"), a))
                                .collect(),
                        ),
                    )
                })
                .collect()
        } else {
            Vec::new()
        },
    };
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("report.html", TEMPLATE)
        .expect("the report template compiles");
    env.get_template("report.html")
        .expect("added above")
        .render(minijinja::value::Value::from(minijinja::value::Serde(
            &view,
        )))
        .expect("the report renders: its view is built here")
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_grouped_by_thousands() {
        assert_eq!(group("1234567.89"), "1,234,567.89");
        assert_eq!(group("999.00"), "999.00");
        assert_eq!(group("-1000.00"), "-1,000.00");
        assert_eq!(group("12"), "12");
    }

    #[test]
    fn aging_buckets_are_closed_at_their_upper_day() {
        assert_eq!(bucket(0), "not yet due");
        assert_eq!(bucket(30), "1-30 days");
        assert_eq!(bucket(31), "31-60 days");
        assert_eq!(bucket(90), "61-90 days");
        assert_eq!(bucket(91), "over 90 days");
    }
}
