//! History: what the night knows beyond tonight's ledger. The previous
//! committed night's level and escalation date per account (from the state),
//! and each debtor's holds and flags as of tonight (from the events file).

use crate::ingest::Event;
use crate::policy::{EventRule, Policy};
use chrono::NaiveDate;
use std::collections::HashMap;

/// An account's standing after the last committed night: what the state
/// remembers of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prior {
    pub level: u32,
    pub last_escalated_on: Option<NaiveDate>,
    /// The agency the account is placed with, and since when.
    pub placed_with: Option<Box<str>>,
    pub placed_on: Option<NaiveDate>,
    /// When a write-off was proposed (proposed once per account).
    pub writeoff_on: Option<NaiveDate>,
    /// Every escalation since the last cure, for dossiers and placements.
    pub history: thin_vec::ThinVec<Step>,
    /// Actions a compliance guard deferred, tried again each night.
    pub deferred: thin_vec::ThinVec<crate::compliance::Deferred>,
    /// The account's overdue amount that night: tomorrow's KPIs measure
    /// what was recovered against it.
    pub overdue: crate::money::Cents,
}

/// One escalation: the level reached, the night, the actions emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub level: u32,
    pub on: NaiveDate,
    /// Inline up to 24 bytes: one step of a million first escalations.
    pub actions: crate::ingest::Text,
}

impl Step {
    /// `1@2026-01-05@email:reminder|2@2026-01-12@letter:second_notice;sms:second_notice`
    pub fn encode(steps: &[Step]) -> String {
        steps
            .iter()
            .map(|s| format!("{}@{}@{}", s.level, s.on, s.actions))
            .collect::<Vec<_>>()
            .join("|")
    }

    pub fn decode(s: &str) -> Option<Vec<Step>> {
        if s.is_empty() {
            return Some(Vec::new());
        }
        s.split('|')
            .map(|part| {
                let mut it = part.splitn(3, '@');
                Some(Step {
                    level: it.next()?.parse().ok()?,
                    on: crate::dates::parse_date(it.next()?)?,
                    actions: it.next().unwrap_or("").into(),
                })
            })
            .collect()
    }
}

/// The hold that is active on a debtor, and the event that started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveHold {
    /// Index into `Policy::holds`.
    pub rule: usize,
    pub since: NaiveDate,
    pub until: Option<NaiveDate>,
    pub row: usize,
}

/// A debtor's holds and flags on the night's date.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    /// The first active hold in the policy's order.
    pub hold: Option<ActiveHold>,
    /// One per policy flag, in the policy's order.
    pub flags: Vec<bool>,
}

/// Which event, if any, keeps `rule` active on `as_of`. Events dated after
/// the night are ignored. With `ends`, a start is cancelled by an end event
/// dated strictly later than it (a start and an end on the same day leave the
/// hold active: the end is not "later"). With `until`, the start event's
/// `until` must be on or after the night.
pub fn active<'e>(rule: &EventRule, events: &[&'e Event], as_of: NaiveDate) -> Option<&'e Event> {
    let last_end = rule.ends.and_then(|end| {
        events
            .iter()
            .filter(|e| e.kind == end && e.date <= as_of)
            .map(|e| e.date)
            .max()
    });
    events
        .iter()
        .filter(|e| e.kind == rule.starts && e.date <= as_of)
        .filter(|e| !rule.until || e.until.is_some_and(|u| u >= as_of))
        .filter(|e| last_end.is_none_or(|end| end <= e.date))
        // The latest qualifying start names the hold; on a tie, the first
        // in the file.
        .fold(None, |best: Option<&&Event>, e| match best {
            Some(b) if b.date >= e.date => Some(b),
            _ => Some(e),
        })
        .copied()
}

/// Every debtor with at least one event, with its standing on `as_of`.
pub fn standings(policy: &Policy, events: &[Event], as_of: NaiveDate) -> HashMap<String, Standing> {
    let mut by_debtor: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in events {
        by_debtor.entry(e.debtor_id.as_str()).or_default().push(e);
    }
    // Each debtor's standing on a thread of the pool: tens of thousands of
    // debtors with events, each rule tried on each.
    use rayon::prelude::*;
    by_debtor
        .into_par_iter()
        .map(|(debtor, evs)| {
            let hold = policy.holds.iter().enumerate().find_map(|(i, rule)| {
                active(rule, &evs, as_of).map(|e| ActiveHold {
                    rule: i,
                    since: e.date,
                    until: e.until,
                    row: e.row,
                })
            });
            let flags = policy
                .flags
                .iter()
                .map(|rule| active(rule, &evs, as_of).is_some())
                .collect();
            (debtor.to_owned(), Standing { hold, flags })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::EventKind;

    fn ev(kind: EventKind, date: &str, until: Option<&str>) -> Event {
        Event {
            debtor_id: "D1".into(),
            date: crate::dates::parse_date(date).unwrap(),
            kind,
            until: until.map(|u| crate::dates::parse_date(u).unwrap()),
            amount: None,
            note: String::new(),
            row: 2,
        }
    }

    fn day(s: &str) -> NaiveDate {
        crate::dates::parse_date(s).unwrap()
    }

    fn dispute() -> EventRule {
        EventRule {
            name: "dispute".into(),
            starts: EventKind::Dispute,
            ends: Some(EventKind::DisputeResolved),
            until: false,
        }
    }

    #[test]
    fn a_later_end_closes_the_hold() {
        let evs = [
            ev(EventKind::Dispute, "2026-01-05", None),
            ev(EventKind::DisputeResolved, "2026-01-10", None),
        ];
        let refs: Vec<&Event> = evs.iter().collect();
        assert!(active(&dispute(), &refs, day("2026-01-09")).is_some());
        assert!(active(&dispute(), &refs, day("2026-01-10")).is_none());
    }

    #[test]
    fn an_end_on_the_same_day_is_not_later() {
        let evs = [
            ev(EventKind::Dispute, "2026-01-05", None),
            ev(EventKind::DisputeResolved, "2026-01-05", None),
        ];
        let refs: Vec<&Event> = evs.iter().collect();
        assert!(active(&dispute(), &refs, day("2026-01-06")).is_some());
    }

    #[test]
    fn a_new_start_after_an_end_reopens() {
        let evs = [
            ev(EventKind::Dispute, "2026-01-05", None),
            ev(EventKind::DisputeResolved, "2026-01-10", None),
            ev(EventKind::Dispute, "2026-01-12", None),
        ];
        let refs: Vec<&Event> = evs.iter().collect();
        assert!(active(&dispute(), &refs, day("2026-01-11")).is_none());
        assert_eq!(
            active(&dispute(), &refs, day("2026-01-12")).map(|e| e.date),
            Some(day("2026-01-12"))
        );
    }

    #[test]
    fn events_after_the_night_are_ignored() {
        let evs = [ev(EventKind::Dispute, "2026-02-01", None)];
        let refs: Vec<&Event> = evs.iter().collect();
        assert!(active(&dispute(), &refs, day("2026-01-31")).is_none());
    }

    #[test]
    fn until_holds_through_its_last_day() {
        let rule = EventRule {
            name: "promise_to_pay".into(),
            starts: EventKind::PromiseToPay,
            ends: None,
            until: true,
        };
        let evs = [
            ev(EventKind::PromiseToPay, "2026-01-05", Some("2026-01-12")),
            ev(EventKind::PromiseToPay, "2026-01-06", None),
        ];
        let refs: Vec<&Event> = evs.iter().collect();
        assert!(active(&rule, &refs, day("2026-01-04")).is_none());
        assert!(active(&rule, &refs, day("2026-01-12")).is_some());
        assert!(active(&rule, &refs, day("2026-01-13")).is_none());
    }
}
