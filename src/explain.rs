//! Explain: a decision and everything behind it, for a person (`dunning
//! explain`) or a machine (`--format json`, `run --trace`). The trace names
//! rules, conditions, values and event rows; it carries no name, address,
//! e-mail or phone number, so it can be handed to an auditor as is.

use crate::decide::{Decision, LevelTried, Trace};
use crate::money::Money;
use serde_json::{json, Value};
use std::fmt::Write as _;

fn actions(d: &Decision) -> Vec<String> {
    d.actions.iter().map(|a| a.to_string()).collect()
}

fn day(d: Option<chrono::NaiveDate>) -> Value {
    d.map_or(Value::Null, |d| Value::String(d.to_string()))
}

fn gap_json(l: &LevelTried) -> Value {
    match l.gap {
        Some((since, min)) => json!({
            "days_since_escalation": since,
            "min_gap": min,
            "ok": since >= min,
        }),
        None => json!({ "days_since_escalation": null, "ok": true }),
    }
}

/// One account's decision and trace as one JSON object (one line of
/// `trace.jsonl`).
pub fn to_json(d: &Decision) -> Value {
    let empty = Trace::default();
    let t = d.trace.as_deref().unwrap_or(&empty);
    let facts: serde_json::Map<String, Value> = t.facts.iter().cloned().collect();
    json!({
        "debtor_id": d.account.debtor_id,
        "currency": d.account.currency,
        "facts": facts,
        "prior": {
            "level": d.level_before,
            "last_escalated_on": day(t.prior_escalated_on),
        },
        "cure": {
            "overdue": Money(d.account.overdue).to_string(),
            "cure_below": Money(t.cure_below).to_string(),
            "cured": d.account.overdue < t.cure_below,
        },
        "hold": t.hold.as_ref().map(|h| json!({
            "name": h.name,
            "event": h.event,
            "date": h.date.to_string(),
            "until": day(h.until),
            "events_row": h.events_row,
        })),
        "segments": t.segments.iter().map(|s| json!({
            "segment": s.segment,
            "when": s.condition.trim(),
            "value": s.matched,
        })).collect::<Vec<_>>(),
        "levels": t.levels.iter().map(|l| json!({
            "level": l.level,
            "name": l.name,
            "when": l.condition.trim(),
            "value": l.value,
            "gap": gap_json(l),
        })).collect::<Vec<_>>(),
        "channels": t.guards.iter().map(|g| json!({
            "wanted": g.wanted.to_string(),
            "emitted": g.emitted.as_ref().map(|a| a.to_string()),
            "refused_by": g.refused_by,
        })).collect::<Vec<_>>(),
        "compliance": t.compliance,
        "charges": d.charges().iter().map(|c| json!({
            "item_id": c.item_id,
            "kind": c.kind,
            "period": c.period,
            "base": crate::money::format_cents(c.base),
            "rate": c.rate,
            "amount": crate::money::format_cents(c.amount),
        })).collect::<Vec<_>>(),
        "decision": {
            "strategy": d.strategy_name(),
            "segment": d.segment,
            "level_before": d.level_before,
            "level_after": d.level_after,
            "actions": actions(d),
            "held_by": d.held_by,
            "outcome": d.outcome.as_str(),
            "rule": d.rule,
            "reason": d.reason,
            "last_escalated_on": day(d.last_escalated_on),
            "placed_with": d.placed_with(),
            "recalled_from": d.recall.as_ref().map(|r| r.agency.clone()),
            "writeoff_proposed": d.writeoff,
        },
    })
}

fn yes(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// The same, for a person reading a terminal.
pub fn to_text(d: &Decision) -> String {
    let empty = Trace::default();
    let t = d.trace.as_deref().unwrap_or(&empty);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "debtor {}, account {}",
        d.account.debtor_id, d.account.currency
    );
    let _ = writeln!(
        s,
        "  amounts: overdue {}, open {}, max_dpd {}",
        Money(d.account.overdue),
        Money(d.account.open),
        d.account.max_dpd
    );
    let facts: Vec<String> = t
        .facts
        .iter()
        .map(|(n, v)| match v {
            Value::String(x) => format!("{n}={x:?}"),
            other => format!("{n}={other}"),
        })
        .collect();
    let _ = writeln!(s, "  facts: {}", facts.join(" "));
    let since = t
        .facts
        .iter()
        .find(|(n, _)| n == "days_since_escalation")
        .and_then(|(_, v)| v.as_i64())
        .unwrap_or(-1);
    if since >= 0 {
        let _ = writeln!(
            s,
            "  before tonight: level {}, last escalation {since} days ago",
            d.level_before
        );
    } else {
        let _ = writeln!(
            s,
            "  before tonight: level {}, never escalated",
            d.level_before
        );
    }
    let cured = d.account.overdue < t.cure_below;
    let _ = writeln!(
        s,
        "  cure: overdue {} {} cure_below {}: {}",
        Money(d.account.overdue),
        if cured { "<" } else { ">=" },
        Money(t.cure_below),
        if cured {
            "cured (wins over every hold)"
        } else {
            "not cured"
        }
    );
    match &t.hold {
        Some(h) => {
            let until = h.until.map(|u| format!(" until {u}")).unwrap_or_default();
            let _ = writeln!(
                s,
                "  hold found: {} ({} event of {}{until}, events row {})",
                h.name, h.event, h.date, h.events_row
            );
        }
        None => {
            let _ = writeln!(s, "  hold found: none");
        }
    }
    if !t.segments.is_empty() {
        let _ = writeln!(s, "  segments (first match wins):");
        for seg in &t.segments {
            let _ = writeln!(
                s,
                "    {:<16} {:<40} {}{}",
                seg.segment,
                seg.condition.trim(),
                yes(seg.matched),
                if seg.matched { "  <- chosen" } else { "" }
            );
        }
    }
    if !t.levels.is_empty() {
        let _ = writeln!(s, "  ladder:");
        for l in &t.levels {
            let gap = match l.gap {
                Some((since, min)) if since >= min => {
                    format!("; gap {since} days >= {min}: ok")
                }
                Some((since, min)) => format!("; gap {since} days < {min}: too soon"),
                None => "; never escalated: no gap needed".into(),
            };
            let _ = writeln!(
                s,
                "    level {} {:<14} {:<40} {}{gap}",
                l.level,
                l.name,
                l.condition.trim(),
                yes(l.value)
            );
        }
    }
    if !t.guards.is_empty() {
        let _ = writeln!(s, "  channels:");
        for g in &t.guards {
            let line = match (&g.emitted, g.refused_by.is_empty()) {
                (Some(a), true) => format!("{a}"),
                (Some(a), false) => format!(
                    "{} -> {a} (fallback: {} not allowed)",
                    g.wanted,
                    g.refused_by.join(", ")
                ),
                (None, _) => format!(
                    "{} dropped ({} not allowed)",
                    g.wanted,
                    g.refused_by.join(", ")
                ),
            };
            let _ = writeln!(s, "    {line}");
        }
    }
    if !t.compliance.is_empty() {
        let _ = writeln!(s, "  compliance:");
        for n in &t.compliance {
            let _ = writeln!(s, "    {n}");
        }
    }
    if !d.charges().is_empty() {
        let _ = writeln!(s, "  charges:");
        for c in d.charges() {
            let item = if c.item_id.is_empty() {
                String::new()
            } else {
                format!(" {}", c.item_id)
            };
            let rate = if c.rate.is_empty() {
                String::new()
            } else {
                format!(" at {} %", c.rate)
            };
            let _ = writeln!(
                s,
                "    {}{item} {}: {} on {}{rate}",
                c.kind,
                c.period,
                crate::money::format_cents(c.amount),
                crate::money::format_cents(c.base)
            );
        }
    }
    let _ = writeln!(
        s,
        "  decision: {} -> {} ({}), segment {}",
        d.level_before,
        d.level_after,
        d.outcome.as_str(),
        if d.segment.is_empty() {
            "(none)"
        } else {
            &d.segment
        }
    );
    let _ = writeln!(s, "    strategy: {}", d.strategy_name());
    let _ = writeln!(s, "    rule: {}", d.rule);
    let _ = writeln!(s, "    reason: {}", d.reason);
    let acts = actions(d);
    let _ = writeln!(
        s,
        "    actions: {}",
        if acts.is_empty() {
            "none".to_owned()
        } else {
            acts.join(";")
        }
    );
    if !d.held_by.is_empty() {
        let _ = writeln!(s, "    held_by: {}", d.held_by);
    }
    if let Some(a) = d.placed_with() {
        let _ = writeln!(s, "    placed with: {a}");
    }
    if let Some(r) = &d.recall {
        let _ = writeln!(s, "    recalled from {} ({})", r.agency, r.reason);
    }
    if d.writeoff {
        let _ = writeln!(s, "    write-off proposed");
    }
    s
}

/// `trace.jsonl`: one line per account, in `decisions.csv` order.
pub fn jsonl(decisions: &[Decision]) -> Vec<u8> {
    let mut out = Vec::with_capacity(decisions.len() * 1024);
    for d in decisions {
        serde_json::to_writer(&mut out, &to_json(d)).expect("in memory");
        out.push(b'\n');
    }
    out
}
