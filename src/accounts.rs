//! Accounts: one row per (debtor, currency), computed by Polars over every
//! valid ledger item at once. Amounts stay integer cents through the
//! aggregation, so sums are exact.

use crate::dates;
use crate::money::Cents;
use chrono::NaiveDate;
use polars::prelude::*;

/// What the ladder needs to know about one dunning account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    /// Inline texts: a million accounts, two heap allocations each.
    pub debtor_id: crate::ingest::Text,
    pub currency: crate::ingest::Text,
    /// Sum of open amounts over overdue items.
    pub overdue: Cents,
    /// Sum of open amounts over all items.
    pub open: Cents,
    /// Largest days past due among overdue items, 0 if none.
    pub max_dpd: i64,
    pub overdue_items: i64,
    pub open_items: i64,
    /// Open amounts by days past due: 1-30, 31-60, 61-90, over 90.
    pub aging: [Cents; 4],
    /// Oldest due date among open items.
    pub oldest_due: Option<NaiveDate>,
    /// Days since `oldest_due`, 0 if none.
    pub oldest_due_days: i64,
}

impl Account {
    /// An account known only from the state: it stood above level 0 last
    /// night but has no open item tonight.
    pub fn empty(debtor_id: &str, currency: &str) -> Account {
        Account {
            debtor_id: debtor_id.into(),
            currency: currency.into(),
            ..Account::default()
        }
    }
}

/// Aggregates the ledger items into accounts, in no particular order.
/// Only accounts with at least one open item are returned; the night adds
/// those the state still remembers.
pub fn summarize(
    items: &DataFrame,
    debtors: &crate::ingest::Debtors,
    as_of: NaiveDate,
    grace_days: i64,
) -> PolarsResult<Vec<Account>> {
    let d = dates::to_days(as_of);
    let dpd = || col("dpd");
    let bucket = |lo: i32, hi: Option<i32>, name: &str| {
        let mut cond = col("is_open").and(dpd().gt_eq(lit(lo)));
        if let Some(hi) = hi {
            cond = cond.and(dpd().lt_eq(lit(hi)));
        }
        col("open_amount").filter(cond).sum().alias(name)
    };
    let df = items
        .clone()
        .lazy()
        .select([
            col("account"),
            col("open_amount"),
            (lit(d) - col("due_on")).alias("dpd"),
        ])
        .with_column(col("open_amount").gt(lit(0i64)).alias("is_open"))
        .with_column(
            col("is_open")
                .and(dpd().gt(lit(grace_days as i32)))
                .alias("is_overdue"),
        )
        .group_by([col("account")])
        .agg([
            col("open_amount")
                .filter(col("is_overdue"))
                .sum()
                .alias("overdue"),
            col("open_amount").sum().alias("open"),
            dpd()
                .filter(col("is_overdue"))
                .max()
                .cast(DataType::Int64)
                .alias("max_dpd"),
            col("is_overdue")
                .cast(DataType::Int64)
                .sum()
                .alias("overdue_items"),
            col("is_open")
                .cast(DataType::Int64)
                .sum()
                .alias("open_items"),
            bucket(1, Some(30), "aging_1_30"),
            bucket(31, Some(60), "aging_31_60"),
            bucket(61, Some(90), "aging_61_90"),
            bucket(91, None, "aging_90_plus"),
            dpd()
                .filter(col("is_open"))
                .max()
                .cast(DataType::Int64)
                .alias("oldest_dpd"),
        ])
        .filter(col("open_items").gt(lit(0i64)))
        .collect()?;

    let i = |name: &str| -> PolarsResult<&Int64Chunked> { df.column(name)?.i64() };
    let keys = df.column("account")?.u64()?;
    let (overdue, open, max_dpd) = (i("overdue")?, i("open")?, i("max_dpd")?);
    let (n_overdue, n_open, oldest) = (i("overdue_items")?, i("open_items")?, i("oldest_dpd")?);
    let aging = [
        i("aging_1_30")?,
        i("aging_31_60")?,
        i("aging_61_90")?,
        i("aging_90_plus")?,
    ];
    (0..df.height())
        .map(|r| {
            let oldest_dpd = oldest.get(r);
            let (debtor, currency) = crate::ingest::account_of_key(keys.get(r).unwrap_or(0));
            let Some(debtor) = debtors.at(debtor) else {
                return Err(PolarsError::ComputeError(
                    format!("internal error: ledger account of an unknown debtor at {debtor}")
                        .into(),
                ));
            };
            Ok(Account {
                debtor_id: debtor.id().into(),
                currency: std::str::from_utf8(&currency).unwrap_or("").into(),
                overdue: overdue.get(r).unwrap_or(0),
                open: open.get(r).unwrap_or(0),
                max_dpd: max_dpd.get(r).unwrap_or(0),
                overdue_items: n_overdue.get(r).unwrap_or(0),
                open_items: n_open.get(r).unwrap_or(0),
                aging: aging.map(|a| a.get(r).unwrap_or(0)),
                oldest_due: oldest_dpd.map(|x| dates::from_days(d - x as i32)),
                oldest_due_days: oldest_dpd.unwrap_or(0),
            })
        })
        .collect()
}
