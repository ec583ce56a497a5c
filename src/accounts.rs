//! Accounts: one row per (debtor, currency), computed by Polars over every
//! valid ledger item at once. Amounts stay integer cents through the
//! aggregation, so sums are exact.

use crate::dates;
use crate::money::Cents;
use chrono::NaiveDate;
use polars::prelude::*;
use std::collections::HashMap;

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
    /// Where the debtor stands in the night's debtors
    /// ([`crate::ingest::Debtors::position`]), when known: the rules then
    /// find the debtor without hashing its id, a million times a night.
    pub debtor_at: Option<u32>,
}

impl Account {
    /// An account known only from the state: it stood above level 0 last
    /// night but has no open item tonight.
    pub fn empty(debtor_id: &str, currency: &str, debtor_at: Option<u32>) -> Account {
        Account {
            debtor_id: debtor_id.into(),
            debtor_at,
            currency: currency.into(),
            ..Account::default()
        }
    }
}

/// Aggregates the ledger items into accounts, in the order each account's
/// first item comes in the ledger. Only accounts with at least one open item
/// are returned; the night adds those the state still remembers.
///
/// One pass over three typed columns, not a Polars group-by: the account
/// key already holds the debtor's position, so an account is found by
/// indexing, and a million groups of ten filtered aggregations cost Polars
/// two seconds where this takes a fifth of that. The test module keeps the
/// Polars formulation and checks the two agree.
pub fn summarize(
    items: &DataFrame,
    debtors: &crate::ingest::Debtors,
    as_of: NaiveDate,
    grace_days: i64,
) -> PolarsResult<Vec<Account>> {
    let found = tally(items, debtors.len(), as_of, grace_days, 0..u32::MAX)?;
    let d = dates::to_days(as_of);
    found
        .keys
        .iter()
        .zip(&found.sums)
        .filter(|(_, s)| s.open_items > 0)
        .map(|(&key, s)| Ok(account(key, s, debtor_of(key, debtors)?, d)))
        .collect()
}

/// [`summarize`], but the accounts listed by debtor id then currency (as
/// [`crate::decide::sort`] lists them), only those of the debtors that
/// `keep` keeps (all, when `None`), each made into what `make` makes of it, with room for
/// `room` more: the night makes its decisions here,
/// so that a million accounts are not held twice, once alone and once
/// inside their decisions.
///
/// The accounts are ordered by their integer keys, not by their texts: a
/// key holds the debtor's position and the currency's letters, so that
/// when the debtors file lists its ids in order (most do) the keys sort
/// as the ids do; otherwise the debtors are ranked by id first.
pub fn summarize_sorted<T: Send>(
    items: &DataFrame,
    debtors: &crate::ingest::Debtors,
    as_of: NaiveDate,
    grace_days: i64,
    keep: Option<&(dyn Fn(&str) -> bool + Sync)>,
    room: usize,
    make: impl Fn(Account) -> T + Sync + Send,
) -> PolarsResult<Vec<T>> {
    use rayon::prelude::*;
    // Each thread of the pool sums the accounts of its own range of
    // debtors: one pass over the ledger held the night's other core idle
    // for a tenth of a second at a million debtors. Every range reads all
    // the keys, but only sums its own rows.
    let n = u32::try_from(debtors.len()).unwrap_or(u32::MAX);
    let ranges = rayon::current_num_threads().clamp(1, 64) as u32;
    let step = n.div_ceil(ranges).max(1);
    let founds: Vec<Found> = (0..ranges)
        .into_par_iter()
        .map(|r| {
            let lo = r.saturating_mul(step);
            // The last range takes every position beyond, so that an
            // account of an unknown debtor is found and reported below.
            let hi = if r + 1 == ranges {
                u32::MAX
            } else {
                lo.saturating_add(step)
            };
            tally(items, debtors.len(), as_of, grace_days, lo..hi)
        })
        .collect::<PolarsResult<_>>()?;
    // The accounts of all ranges, numbered on: range `r`'s `i`th is
    // `starts[r] + i`.
    let starts: Vec<usize> = founds
        .iter()
        .scan(0, |at, f| {
            let start = *at;
            *at += f.keys.len();
            Some(start)
        })
        .collect();
    let found = |g: u32| -> (u64, &Sums) {
        let g = g as usize;
        let r = starts.partition_point(|&s| s <= g) - 1;
        (
            founds[r].keys[g - starts[r]],
            &founds[r].sums[g - starts[r]],
        )
    };
    let d = dates::to_days(as_of);
    let rank = debtors.ranks_by_id();
    let mut order: Vec<(u64, u32)> = founds
        .par_iter()
        .zip(&starts)
        .flat_map_iter(|(f, &start)| {
            let rank = &rank;
            f.keys
                .iter()
                .zip(&f.sums)
                .enumerate()
                .filter(move |(_, (&key, s))| {
                    // An unknown debtor is kept, to be reported below.
                    s.open_items > 0
                        && keep.is_none_or(|keep| {
                            debtor_of(key, debtors).map_or(true, |d| keep(d.id()))
                        })
                })
                .map(move |(i, (&key, _))| {
                    let (at, _) = crate::ingest::account_of_key(key);
                    let ranked = rank.as_ref().map_or(at, |r| r[at as usize]);
                    (
                        (u64::from(ranked) << 16) | (key & 0xFFFF),
                        (start + i) as u32,
                    )
                })
        })
        .collect();
    drop(rank);
    order.par_sort_unstable();
    if let Some(&(_, g)) = order
        .par_iter()
        .find_first(|(_, g)| debtor_of(found(*g).0, debtors).is_err())
    {
        return debtor_of(found(g).0, debtors).map(|_| Vec::new());
    }
    let mut out = Vec::with_capacity(order.len() + room);
    out.par_extend(order.par_iter().map(|&(_, g)| {
        let (key, s) = found(g);
        // Every debtor was found just above.
        let debtor = debtor_of(key, debtors).unwrap_or_else(|_| unreachable!());
        make(account(key, s, debtor, d))
    }));
    Ok(out)
}

/// The debtor of an account key: one of the night's, or the ledger and the
/// debtors disagree (an internal error).
fn debtor_of(key: u64, debtors: &crate::ingest::Debtors) -> PolarsResult<&crate::ingest::Debtor> {
    let (at, _) = crate::ingest::account_of_key(key);
    debtors.at(at).ok_or_else(|| {
        PolarsError::ComputeError(
            format!("internal error: ledger account of an unknown debtor at {at}").into(),
        )
    })
}
/// Every ledger item of a debtor at a position `within` added into its
/// account, accounts in ledger order.
fn tally(
    items: &DataFrame,
    debtors: usize,
    as_of: NaiveDate,
    grace_days: i64,
    within: std::ops::Range<u32>,
) -> PolarsResult<Found> {
    let d = dates::to_days(as_of);
    let grace = grace_days as i32;
    let keys = items.column("account")?.u64()?;
    let opens = items.column("open_amount")?.i64()?;
    let dues = items.column("due_on")?.i32()?;
    let first = within.start;
    let own = debtors.saturating_sub(first as usize);
    let mut found = Found::new(own.min((within.end - first) as usize), first);
    let rows = keys
        .iter()
        .zip(opens.iter())
        .zip(dues.iter())
        .map(|((k, o), due)| (k.unwrap_or(0), o.unwrap_or(0), due));
    for (key, open, due) in rows {
        if !within.contains(&crate::ingest::account_of_key(key).0) {
            continue;
        }
        let a = found.slot(key);
        a.open = a.open.wrapping_add(open);
        if open <= 0 {
            continue;
        }
        // A null due date makes a null age, which Polars' comparisons and
        // maxima skip: the item is open, and nothing else.
        a.open_items += 1;
        let Some(due) = due else { continue };
        let dpd = d.wrapping_sub(due);
        a.oldest_dpd = Some(a.oldest_dpd.map_or(dpd, |m| m.max(dpd)));
        let bucket = match dpd {
            1..=30 => Some(0),
            31..=60 => Some(1),
            61..=90 => Some(2),
            91.. => Some(3),
            _ => None,
        };
        if let Some(b) = bucket {
            a.aging[b] = a.aging[b].wrapping_add(open);
        }
        if dpd > grace {
            a.overdue = a.overdue.wrapping_add(open);
            a.overdue_items += 1;
            a.max_dpd = Some(a.max_dpd.map_or(dpd, |m| m.max(dpd)));
        }
    }
    Ok(found)
}

/// The account of `key`, its debtor's, from its sums; `d` is the night's
/// date in days.
fn account(key: u64, s: &Sums, debtor: &crate::ingest::Debtor, d: i32) -> Account {
    let (at, currency) = crate::ingest::account_of_key(key);
    Account {
        debtor_id: debtor.id().into(),
        currency: std::str::from_utf8(&currency).unwrap_or("").into(),
        overdue: s.overdue,
        open: s.open,
        max_dpd: s.max_dpd.map_or(0, i64::from),
        overdue_items: s.overdue_items,
        open_items: s.open_items,
        aging: s.aging,
        oldest_due: s.oldest_dpd.map(|x| dates::from_days(d - x)),
        oldest_due_days: s.oldest_dpd.map_or(0, i64::from),
        debtor_at: Some(at),
    }
}

/// One account's running sums while the items are read.
#[derive(Default)]
struct Sums {
    overdue: Cents,
    open: Cents,
    max_dpd: Option<i32>,
    overdue_items: i64,
    open_items: i64,
    aging: [Cents; 4],
    oldest_dpd: Option<i32>,
}

/// The accounts met so far. Most debtors have one currency: the first
/// account met of each debtor is found through a vector indexed by the
/// debtor's position, the others (a debtor's second currency) through a
/// map.
struct Found {
    /// The position of the first debtor of `by_debtor`.
    first: u32,
    by_debtor: Vec<u32>,
    others: HashMap<u64, u32>,
    keys: Vec<u64>,
    sums: Vec<Sums>,
}

impl Found {
    /// For `debtors` debtors from position `first` on. Room is made for
    /// more accounts than debtors (a second currency): room never touched
    /// costs no memory, where growing a full vector copies it whole.
    fn new(debtors: usize, first: u32) -> Found {
        let room = debtors + debtors / 4;
        Found {
            first,
            by_debtor: vec![u32::MAX; debtors],
            others: HashMap::new(),
            keys: Vec::with_capacity(room),
            sums: Vec::with_capacity(room),
        }
    }

    fn slot(&mut self, key: u64) -> &mut Sums {
        let (debtor, _) = crate::ingest::account_of_key(key);
        let at = (debtor - self.first) as usize;
        if at >= self.by_debtor.len() {
            self.by_debtor.resize(at + 1, u32::MAX);
        }
        let first = self.by_debtor[at];
        let slot = if first == u32::MAX {
            let slot = self.push(key);
            self.by_debtor[at] = slot;
            slot
        } else if self.keys[first as usize] == key {
            first
        } else {
            match self.others.get(&key) {
                Some(&slot) => slot,
                None => {
                    let slot = self.push(key);
                    self.others.insert(key, slot);
                    slot
                }
            }
        };
        &mut self.sums[slot as usize]
    }

    fn push(&mut self, key: u64) -> u32 {
        self.keys.push(key);
        self.sums.push(Sums::default());
        (self.keys.len() - 1) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{account_key, Debtor, DebtorTexts, Debtors};
    use proptest::prelude::*;

    /// The accounts as a Polars group-by computes them: the formulation
    /// the design describes, kept as the reference [`summarize`] must
    /// agree with.
    fn reference(
        items: &DataFrame,
        debtors: &Debtors,
        as_of: NaiveDate,
        grace_days: i64,
    ) -> Vec<Account> {
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
            .collect()
            .unwrap();
        let i = |name: &str| df.column(name).unwrap().i64().unwrap().clone();
        let keys = df.column("account").unwrap().u64().unwrap();
        let (overdue, open, max_dpd) = (i("overdue"), i("open"), i("max_dpd"));
        let (n_overdue, n_open, oldest) = (i("overdue_items"), i("open_items"), i("oldest_dpd"));
        let aging = [
            i("aging_1_30"),
            i("aging_31_60"),
            i("aging_61_90"),
            i("aging_90_plus"),
        ];
        (0..df.height())
            .map(|r| {
                let oldest_dpd = oldest.get(r);
                let (debtor, currency) = crate::ingest::account_of_key(keys.get(r).unwrap());
                Account {
                    debtor_id: debtors.at(debtor).unwrap().id().into(),
                    currency: std::str::from_utf8(&currency).unwrap().into(),
                    overdue: overdue.get(r).unwrap_or(0),
                    open: open.get(r).unwrap_or(0),
                    max_dpd: max_dpd.get(r).unwrap_or(0),
                    overdue_items: n_overdue.get(r).unwrap_or(0),
                    open_items: n_open.get(r).unwrap_or(0),
                    aging: aging.clone().map(|a| a.get(r).unwrap_or(0)),
                    oldest_due: oldest_dpd.map(|x| dates::from_days(d - x as i32)),
                    oldest_due_days: oldest_dpd.unwrap_or(0),
                    debtor_at: Some(debtor),
                }
            })
            .collect()
    }

    fn debtors(n: usize) -> Debtors {
        (0..n)
            .map(|i| {
                let id = format!("D{i:03}");
                Debtor::new(DebtorTexts {
                    id: &id,
                    ..DebtorTexts::default()
                })
            })
            .collect()
    }

    fn sorted(mut a: Vec<Account>) -> Vec<Account> {
        crate::decide::sort(&mut a);
        a
    }

    proptest! {
        /// The one-pass aggregation and the Polars group-by give the same
        /// accounts, whatever the mix of currencies, credits, settled
        /// items, ages around every bucket edge and the grace period.
        #[test]
        fn one_pass_equals_the_group_by(
            rows in proptest::collection::vec(
                (0u32..6, 0usize..3, -50_000i64..100_000, -20i32..200, any::<bool>()),
                0..120),
            grace in 0i64..40,
        ) {
            let as_of = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
            let d = dates::to_days(as_of);
            let currencies = ["EUR", "USD", "CHF"];
            let keys: Vec<u64> = rows.iter()
                .map(|r| account_key(r.0, currencies[r.1]).unwrap())
                .collect();
            // Settled items (open 0) are common in a real ledger.
            let opens: Vec<i64> = rows.iter().map(|r| if r.4 { 0 } else { r.2 }).collect();
            let dues: Vec<i32> = rows.iter().map(|r| d - r.3).collect();
            let items = DataFrame::new(rows.len(), vec![
                Column::new("account".into(), keys),
                Column::new("open_amount".into(), opens),
                Column::new("due_on".into(), dues),
            ]).unwrap();
            let ds = debtors(6);
            let got = sorted(summarize(&items, &ds, as_of, grace).unwrap());
            let want = sorted(reference(&items, &ds, as_of, grace));
            prop_assert_eq!(got, want);
        }
    }

    proptest! {
        /// The night's accounts, sorted by their keys, are the accounts
        /// sorted by text, whether or not the debtors file lists its ids in
        /// order, however many ranges of debtors they are summed in, and
        /// `keep` keeps those of its debtors only.
        #[test]
        fn sorted_by_key_is_sorted_by_id(
            rows in proptest::collection::vec((0u32..8, 0usize..3, 1i64..1000), 0..80),
            ids in Just((0..8u32).collect::<Vec<_>>()).prop_shuffle(),
            odd_only in any::<bool>(),
            room in 0usize..4,
            ranges in 1usize..12,
        ) {
            let as_of = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
            let d = dates::to_days(as_of);
            let currencies = ["EUR", "USD", "CHF"];
            let n = rows.len();
            let keys: Vec<u64> = rows.iter()
                .map(|r| account_key(r.0, currencies[r.1]).unwrap())
                .collect();
            let items = DataFrame::new(n, vec![
                Column::new("account".into(), keys),
                Column::new("open_amount".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
                Column::new("due_on".into(), vec![d - 40; n]),
            ]).unwrap();
            // Ids in file order, or not: `D7, D2, ...`; D10 sorts before D2.
            let ds: Debtors = ids.iter().map(|i| {
                let id = format!("D{}", [0, 10, 2, 3, 40, 5, 6, 7][*i as usize]);
                Debtor::new(DebtorTexts { id: &id, ..DebtorTexts::default() })
            }).collect();
            let keep = |id: &str| !odd_only || id.ends_with(['1', '3', '5', '7']);
            // Summed in as many ranges of debtors as the pool has threads,
            // some empty when there are more ranges than debtors.
            let pool = rayon::ThreadPoolBuilder::new().num_threads(ranges).build().unwrap();
            let got = pool
                .install(|| summarize_sorted(&items, &ds, as_of, 0, Some(&keep), room, |a| a))
                .unwrap();
            prop_assert!(got.capacity() >= got.len() + room);
            let want: Vec<Account> = sorted(summarize(&items, &ds, as_of, 0).unwrap())
                .into_iter()
                .filter(|a| keep(&a.debtor_id))
                .collect();
            prop_assert_eq!(got, want);
        }
    }

    /// Accounts come in the order of their first item in the ledger, so
    /// that nothing depends on a hash map's order.
    #[test]
    fn accounts_in_ledger_order() {
        let as_of = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let d = dates::to_days(as_of);
        let keys = vec![
            account_key(2, "USD").unwrap(),
            account_key(0, "EUR").unwrap(),
            account_key(2, "EUR").unwrap(),
            account_key(0, "EUR").unwrap(),
        ];
        let items = DataFrame::new(
            4,
            vec![
                Column::new("account".into(), keys),
                Column::new("open_amount".into(), vec![100i64, 200, 300, 400]),
                Column::new("due_on".into(), vec![d - 10, d - 40, d - 100, d]),
            ],
        )
        .unwrap();
        let got = summarize(&items, &debtors(3), as_of, 5).unwrap();
        let ids: Vec<(&str, &str)> = got
            .iter()
            .map(|a| (a.debtor_id.as_str(), a.currency.as_str()))
            .collect();
        assert_eq!(ids, [("D002", "USD"), ("D000", "EUR"), ("D002", "EUR")]);
        assert_eq!(got[1].open, 600);
        assert_eq!(got[1].overdue, 200);
        assert_eq!(got[1].aging, [0, 200, 0, 0]);
        assert_eq!(got[1].open_items, 2);
        assert_eq!(got[1].overdue_items, 1);
        assert_eq!(got[1].max_dpd, 40);
        assert_eq!(got[1].oldest_due_days, 40);
    }
}
