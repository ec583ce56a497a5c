//! Charges: what the night proposes to post to the debtor's account, in
//! `charges.csv`, for the ledger system to book. Fees per ladder level
//! (flat, or computed by a rule when the account escalates), the French
//! fixed recovery indemnity for business debtors (Code de commerce D441-5:
//! 40 EUR per late invoice, once per invoice, never for consumers) and
//! late-payment interest per item from a rate table by period, with the
//! policy's day count and rounding, in exact decimals.
//!
//! Each charge is charged once across nights: the state keeps, per item,
//! whether the indemnity was charged and how far interest was charged (the
//! date, the exact amount accrued and the rounded amount charged), so a
//! night charges only the days since the last one. Rounding is applied to
//! the running total, never to each night's slice, so the sum of all
//! nights' rows is the rounded exact interest.

use crate::decide::{Decision, Outcome};
use crate::money::Cents;
use crate::policy::Policy;
use chrono::{Datelike, NaiveDate};
use rust_decimal::prelude::*;
use serde::Deserialize;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------
// The section as written.

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChargesDoc {
    #[serde(default)]
    pub fees: Vec<FeeDoc>,
    #[serde(default)]
    pub recovery_indemnity: Option<IndemnityDoc>,
    #[serde(default)]
    pub late_interest: Option<InterestDoc>,
    /// Whether interest and indemnities run while a hold stands (a dispute,
    /// an insolvency: no, by default).
    #[serde(default)]
    pub during_holds: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeeDoc {
    pub name: String,
    /// Charged when the account escalates to this level.
    pub level: u32,
    /// A flat amount (`"15.00"`), or
    #[serde(default)]
    pub amount: Option<String>,
    /// a Rhai rule giving the amount (`overdue * 0.01`).
    #[serde(default)]
    pub rule: Option<String>,
    /// Only when this condition holds.
    #[serde(default)]
    pub when: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IndemnityDoc {
    /// The amount by account currency (`EUR: "40.00"`); accounts in other
    /// currencies get none.
    pub amounts: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InterestDoc {
    /// The debtor kinds that bear interest (`[business]`).
    pub debtor_kinds: Vec<String>,
    /// A CSV file in the policy folder: `from,to,rate` (annual rate in
    /// percent, both dates included).
    pub rates: String,
    /// `act/365`, `act/360` or `30/360`.
    pub day_count: String,
    /// `half_up`, `half_even` or `down`.
    pub rounding: String,
}

// ---------------------------------------------------------------------------
// The compiled section.

#[derive(Debug, Clone)]
pub enum FeeAmount {
    Flat(Cents),
    Rule(crate::script::Condition),
}

#[derive(Debug, Clone)]
pub struct Fee {
    pub name: String,
    pub level: u32,
    pub amount: FeeAmount,
    pub when: Option<crate::script::Condition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayCount {
    Act365,
    Act360,
    Thirty360,
}

impl DayCount {
    pub fn parse(s: &str) -> Option<DayCount> {
        match s.trim().to_ascii_lowercase().as_str() {
            "act/365" => Some(DayCount::Act365),
            "act/360" => Some(DayCount::Act360),
            "30/360" => Some(DayCount::Thirty360),
            _ => None,
        }
    }

    /// Days from `a` (excluded) to `b` (included), and the year's basis.
    fn days(self, a: NaiveDate, b: NaiveDate) -> (i64, i64) {
        match self {
            DayCount::Act365 => ((b - a).num_days(), 365),
            DayCount::Act360 => ((b - a).num_days(), 360),
            DayCount::Thirty360 => {
                // 30E/360: the 31st counts as the 30th.
                let d1 = i64::from(a.day().min(30));
                let d2 = i64::from(b.day().min(30));
                let days = 360 * (i64::from(b.year()) - i64::from(a.year()))
                    + 30 * (i64::from(b.month()) - i64::from(a.month()))
                    + (d2 - d1);
                (days, 360)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    HalfUp,
    HalfEven,
    Down,
}

impl Rounding {
    pub fn parse(s: &str) -> Option<Rounding> {
        match s.trim() {
            "half_up" => Some(Rounding::HalfUp),
            "half_even" => Some(Rounding::HalfEven),
            "down" => Some(Rounding::Down),
            _ => None,
        }
    }

    /// To cents.
    fn cents(self, d: Decimal) -> Cents {
        let strategy = match self {
            Rounding::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
            Rounding::Down => RoundingStrategy::ToZero,
        };
        (d * Decimal::ONE_HUNDRED)
            .round_dp_with_strategy(0, strategy)
            .to_i64()
            .unwrap_or(i64::MAX)
    }
}

/// One line of the rate table: both dates included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatePeriod {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Annual, in percent.
    pub rate: Decimal,
}

#[derive(Debug, Clone)]
pub struct Interest {
    pub debtor_kinds: Vec<String>,
    pub rates_file: String,
    pub rates: Vec<RatePeriod>,
    pub day_count: DayCount,
    pub rounding: Rounding,
}

#[derive(Debug, Clone)]
pub struct Charges {
    pub fees: Vec<Fee>,
    /// Per currency.
    pub indemnity: BTreeMap<String, Cents>,
    pub interest: Option<Interest>,
    pub during_holds: bool,
}

/// Reads a rate table; errors name the row and column.
pub fn read_rates(path: &std::path::Path, shown: &str) -> Result<Vec<RatePeriod>, String> {
    let bytes =
        crate::policy::read_side_file(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let mut rdr = csv::Reader::from_reader(bytes.as_slice());
    let h: Vec<String> = rdr
        .headers()
        .map_err(|e| format!("{shown}: {e}"))?
        .iter()
        .map(str::to_owned)
        .collect();
    if h != ["from", "to", "rate"] {
        return Err(format!(
            "{shown}: row 1: the header must be `from,to,rate`, not `{}`",
            h.join(",")
        ));
    }
    let mut out: Vec<RatePeriod> = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let row = i + 2;
        let rec = rec.map_err(|e| format!("{shown}: row {row}: {e}"))?;
        let date = |k: usize, col: &str| {
            let v = rec.get(k).unwrap_or("").trim();
            crate::dates::parse_date(v).ok_or_else(|| {
                format!("{shown}: row {row}, column {col}: `{v}` is not a date (YYYY-MM-DD)")
            })
        };
        let (from, to) = (date(0, "from")?, date(1, "to")?);
        if to < from {
            return Err(format!(
                "{shown}: row {row}: `to` {to} is before `from` {from}"
            ));
        }
        let r = rec.get(2).unwrap_or("").trim();
        let rate = Decimal::from_str(r)
            .ok()
            .filter(|d| *d >= Decimal::ZERO && *d <= Decimal::ONE_HUNDRED)
            .ok_or_else(|| {
                format!("{shown}: row {row}, column rate: `{r}` is not a percentage from 0 to 100")
            })?;
        if let Some(prev) = out.last() {
            if from != prev.to.succ_opt().unwrap_or(prev.to) {
                return Err(format!(
                    "{shown}: row {row}: periods must follow each other without gap or overlap (the previous ends on {}, this starts on {from})",
                    prev.to
                ));
            }
        }
        out.push(RatePeriod { from, to, rate });
    }
    if out.is_empty() {
        return Err(format!("{shown}: no rate in it"));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// What the state keeps, per item.

/// How far an item was charged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemCharged {
    pub debtor_id: String,
    pub currency: String,
    /// The night the recovery indemnity was charged.
    pub indemnity_on: Option<NaiveDate>,
    /// Interest is charged through this day (included).
    pub interest_through: Option<NaiveDate>,
    /// The exact interest accrued so far, and what was charged of it.
    pub interest_exact: Decimal,
    pub interest_charged: Cents,
}

/// By item id.
pub type Ledger = BTreeMap<String, ItemCharged>;

pub const STATE_COLUMNS: &[&str] = &[
    "item_id",
    "debtor_id",
    "currency",
    "indemnity_on",
    "interest_through",
    "interest_exact",
    "interest_charged",
];

pub fn state_csv(l: &Ledger) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(STATE_COLUMNS).expect("in memory");
    let opt = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    for (id, c) in l {
        w.write_record([
            id.as_str(),
            &c.debtor_id,
            &c.currency,
            &opt(c.indemnity_on),
            &opt(c.interest_through),
            &c.interest_exact.normalize().to_string(),
            &crate::money::format_cents(c.interest_charged),
        ])
        .expect("in memory");
    }
    w.into_inner().expect("in memory")
}

pub fn read_state(bytes: &[u8]) -> Result<Ledger, String> {
    let mut rdr = csv::Reader::from_reader(bytes);
    let mut out = Ledger::new();
    for (i, rec) in rdr.records().enumerate() {
        let row = i + 2;
        let rec = rec.map_err(|e| format!("row {row}: {e}"))?;
        let get = |k: usize| rec.get(k).unwrap_or("");
        let date = |k: usize| -> Result<Option<NaiveDate>, String> {
            let v = get(k);
            if v.is_empty() {
                return Ok(None);
            }
            crate::dates::parse_date(v)
                .map(Some)
                .ok_or_else(|| format!("row {row}: bad date `{v}`"))
        };
        let exact = Decimal::from_str(get(5)).map_err(|_| format!("row {row}: bad amount"))?;
        let charged = Decimal::from_str(get(6))
            .ok()
            .and_then(crate::money::decimal_to_cents)
            .ok_or_else(|| format!("row {row}: bad amount"))?;
        out.insert(
            get(0).to_owned(),
            ItemCharged {
                debtor_id: get(1).to_owned(),
                currency: get(2).to_owned(),
                indemnity_on: date(3)?,
                interest_through: date(4)?,
                interest_exact: exact,
                interest_charged: charged,
            },
        );
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Tonight's charges.

/// One row of `charges.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub debtor_id: String,
    pub currency: String,
    /// Empty for a fee on the account.
    pub item_id: String,
    /// `fee:<name>`, `recovery_indemnity` or `late_interest`.
    pub kind: String,
    /// A day, or `from..to` (both included) for interest.
    pub period: String,
    pub base: Cents,
    /// Annual percent for interest; empty otherwise.
    pub rate: String,
    pub amount: Cents,
}

pub const COLUMNS: &[&str] = &[
    "debtor_id",
    "currency",
    "item_id",
    "kind",
    "period",
    "base",
    "rate",
    "amount",
];

pub fn csv(charges: &[&Charge]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS).expect("in memory");
    for c in charges {
        w.write_record([
            c.debtor_id.as_str(),
            &c.currency,
            &c.item_id,
            &c.kind,
            &c.period,
            &crate::money::format_cents(c.base),
            &c.rate,
            &crate::money::format_cents(c.amount),
        ])
        .expect("in memory");
    }
    w.into_inner().expect("in memory")
}

#[derive(Debug, thiserror::Error)]
pub enum ChargeError {
    #[error("charges.late_interest: {file} has no rate for {day} (item {item_id} of debtor {debtor_id} bears interest through {as_of}); add the period to the table")]
    NoRate {
        file: String,
        day: NaiveDate,
        item_id: String,
        debtor_id: String,
        as_of: NaiveDate,
    },
}

/// Interest on `base` cents from `after` (excluded) to `through`
/// (included), one slice per rate period: (from, to, rate, exact amount).
pub fn interest_slices(
    i: &Interest,
    base: Cents,
    after: NaiveDate,
    through: NaiveDate,
) -> Result<Vec<(NaiveDate, NaiveDate, Decimal, Decimal)>, NaiveDate> {
    let mut out = Vec::new();
    let mut start = after.succ_opt().expect("a date before the end of time");
    let base = Decimal::new(base, 2);
    while start <= through {
        let Some(p) = i.rates.iter().find(|p| p.from <= start && start <= p.to) else {
            return Err(start);
        };
        let end = p.to.min(through);
        let (days, basis) = i
            .day_count
            .days(start.pred_opt().expect("after the start of time"), end);
        let exact =
            base * p.rate / Decimal::ONE_HUNDRED * Decimal::from(days) / Decimal::from(basis);
        out.push((start, end, p.rate, exact));
        start = end.succ_opt().expect("a date before the end of time");
    }
    Ok(out)
}

/// Tonight's charges, decision by decision, and the charge state after
/// tonight. Fees were decided with the ladder (`Decision::fees`); the
/// indemnity and interest run over each account's overdue items.
pub fn compute(
    policies: &[&Policy],
    decisions: &mut [Decision],
    debtors: &crate::ingest::Debtors,
    items: &crate::actions::OverdueItems,
    as_of: NaiveDate,
    before: &Ledger,
) -> Result<Ledger, ChargeError> {
    let mut after = Ledger::new();
    for d in decisions.iter_mut() {
        let policy = policies[usize::from(d.strategy).min(policies.len() - 1)];
        let Some(c) = &policy.charges else {
            continue;
        };
        let debtor_id = d.account.debtor_id.clone();
        let currency = d.account.currency.clone();
        let fees = d
            .extra
            .as_mut()
            .map(|e| std::mem::take(&mut e.fees))
            .unwrap_or_default();
        let overdue = d.account.overdue;
        for (name, amount) in fees {
            d.extra_mut().charges.push(Charge {
                debtor_id: debtor_id.to_string(),
                currency: currency.to_string(),
                item_id: String::new(),
                kind: format!("fee:{name}"),
                period: as_of.to_string(),
                base: overdue,
                rate: String::new(),
                amount,
            });
        }
        let held = d.outcome == Outcome::Hold && !c.during_holds;
        let kind = debtors.get(&debtor_id).map_or("", |x| x.kind());
        for it in &items.get(&debtor_id, &currency) {
            let mut state = before.get(&it.item_id).cloned().unwrap_or(ItemCharged {
                debtor_id: debtor_id.to_string(),
                currency: currency.to_string(),
                ..Default::default()
            });
            // Code de commerce D441-5: business debtors only, whatever the
            // policy says, once per invoice.
            if let Some(&amount) = c.indemnity.get(currency.as_str()) {
                if kind == "business" && state.indemnity_on.is_none() && !held {
                    state.indemnity_on = Some(as_of);
                    d.extra_mut().charges.push(Charge {
                        debtor_id: debtor_id.to_string(),
                        currency: currency.to_string(),
                        item_id: it.item_id.clone(),
                        kind: "recovery_indemnity".into(),
                        period: as_of.to_string(),
                        base: it.open_amount,
                        rate: String::new(),
                        amount,
                    });
                }
            }
            if let Some(i) = &c.interest {
                if i.debtor_kinds.iter().any(|k| k == kind) {
                    let from = state.interest_through.unwrap_or(it.due_on).max(it.due_on);
                    if from < as_of {
                        if held {
                            // Days under a hold bear no interest.
                            state.interest_through = Some(as_of);
                        } else {
                            let slices =
                                interest_slices(i, it.open_amount, from, as_of).map_err(|day| {
                                    ChargeError::NoRate {
                                        file: i.rates_file.clone(),
                                        day,
                                        item_id: it.item_id.clone(),
                                        debtor_id: debtor_id.to_string(),
                                        as_of,
                                    }
                                })?;
                            for (a, b, rate, exact) in slices {
                                state.interest_exact += exact;
                                let total = i.rounding.cents(state.interest_exact);
                                let amount = total - state.interest_charged;
                                state.interest_charged = total;
                                if amount != 0 {
                                    d.extra_mut().charges.push(Charge {
                                        debtor_id: debtor_id.to_string(),
                                        currency: currency.to_string(),
                                        item_id: it.item_id.clone(),
                                        kind: "late_interest".into(),
                                        period: format!("{a}..{b}"),
                                        base: it.open_amount,
                                        rate: rate.normalize().to_string(),
                                        amount,
                                    });
                                }
                            }
                            state.interest_through = Some(as_of);
                        }
                    }
                }
            }
            if state.indemnity_on.is_some() || state.interest_through.is_some() {
                after.insert(it.item_id.clone(), state);
            }
        }
    }
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        crate::dates::parse_date(s).unwrap()
    }

    fn interest(rates: &[(&str, &str, &str)], dc: DayCount) -> Interest {
        Interest {
            debtor_kinds: vec!["business".into()],
            rates_file: "rates.csv".into(),
            rates: rates
                .iter()
                .map(|(a, b, r)| RatePeriod {
                    from: day(a),
                    to: day(b),
                    rate: Decimal::from_str(r).unwrap(),
                })
                .collect(),
            day_count: dc,
            rounding: Rounding::HalfUp,
        }
    }

    #[test]
    fn interest_is_split_at_each_rate_period() {
        let i = interest(
            &[
                ("2025-01-01", "2025-06-30", "13.15"),
                ("2025-07-01", "2025-12-31", "12.15"),
            ],
            DayCount::Act365,
        );
        // 1,000.00 from 2025-06-20 (excluded) to 2025-07-10: 10 days at
        // 13.15 %, 10 days at 12.15 %.
        let s = interest_slices(&i, 100_000, day("2025-06-20"), day("2025-07-10")).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].0, s[0].1), (day("2025-06-21"), day("2025-06-30")));
        assert_eq!((s[1].0, s[1].1), (day("2025-07-01"), day("2025-07-10")));
        // 1000 * 13.15% * 10/365 = 3.6027397...; 1000 * 12.15% * 10/365 = 3.3287671...
        assert_eq!(Rounding::HalfUp.cents(s[0].3), 360);
        assert_eq!(Rounding::HalfUp.cents(s[1].3), 333);
        assert_eq!(Rounding::HalfUp.cents(s[0].3 + s[1].3), 693);
        // A day without a rate is named.
        assert_eq!(
            interest_slices(&i, 100_000, day("2025-12-30"), day("2026-01-02")),
            Err(day("2026-01-01"))
        );
    }

    #[test]
    fn day_counts() {
        let (a, b) = (day("2026-01-31"), day("2026-03-31"));
        assert_eq!(DayCount::Act365.days(a, b), (59, 365));
        assert_eq!(DayCount::Act360.days(a, b), (59, 360));
        assert_eq!(DayCount::Thirty360.days(a, b), (60, 360));
    }

    #[test]
    fn rounding_modes() {
        let d = Decimal::from_str("2.345").unwrap();
        assert_eq!(Rounding::HalfUp.cents(d), 235);
        assert_eq!(Rounding::HalfEven.cents(d), 234);
        assert_eq!(
            Rounding::Down.cents(Decimal::from_str("2.349").unwrap()),
            234
        );
    }

    #[test]
    fn the_charge_state_round_trips() {
        let mut l = Ledger::new();
        l.insert(
            "I1".into(),
            ItemCharged {
                debtor_id: "D1".into(),
                currency: "EUR".into(),
                indemnity_on: Some(day("2026-01-05")),
                interest_through: Some(day("2026-01-12")),
                interest_exact: Decimal::from_str("3.602739726027397260273972603").unwrap(),
                interest_charged: 360,
            },
        );
        assert_eq!(read_state(&state_csv(&l)).unwrap(), l);
    }
}
