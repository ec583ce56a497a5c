//! Ingest: the three input files, read with Polars (CSV or Parquet, chosen by
//! extension), checked row by row. A bad row goes to `rejects.csv` with its
//! file, row, column, value and reason, and is left out; a file the night
//! cannot trust at all (missing, not UTF-8, empty, missing a column) stops
//! the night with a message naming file, row and column.
//!
//! Row numbers count as a spreadsheet does: in a CSV file the header is
//! row 1 and the first data row is row 2; in Parquet the first row is row 1.

use crate::dates;
use crate::money::{self, Cents};
use crate::policy::display_path;
use chrono::NaiveDate;
use polars::prelude::*;
use rayon::prelude::*;
use rust_decimal::Decimal;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Cursor;
use std::path::Path;
use std::str::FromStr;

mod pages;

/// A structural problem: the file as a whole cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{file}: cannot read")]
    Unreadable {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: unsupported file type; use .csv or .parquet")]
    Extension { file: String },
    #[error("{file}: row {row}, column {column}: not valid UTF-8 (re-export the file as UTF-8)")]
    NotUtf8 {
        file: String,
        row: usize,
        column: usize,
    },
    #[error("{file}: the file is empty; expected a header row with {expected}")]
    Empty { file: String, expected: String },
    #[error("{file}: row 1 (header): missing required column `{column}`; the header has: {found}")]
    MissingColumn {
        file: String,
        column: String,
        found: String,
    },
    #[error("{file}: row 1 (header), column {index}: column `{column}` appears twice")]
    DuplicateColumn {
        file: String,
        column: String,
        index: usize,
    },
    #[error("{file}: row {row}: {message}")]
    Malformed {
        file: String,
        row: usize,
        message: String,
    },
    #[error("{file}: column `{column}` has type {dtype}; expected {expected}")]
    WrongType {
        file: String,
        column: String,
        dtype: String,
        expected: &'static str,
    },
    #[error("{file}: {message}")]
    Unparseable { file: String, message: String },
    #[error("{file}: {rejected} of {rows} rows rejected ({share}), above the policy's max_rejected_share of {max}; nothing was committed, see the reasons below:\n{examples}")]
    TooManyRejects {
        file: String,
        rejected: usize,
        rows: usize,
        share: String,
        max: String,
        examples: String,
    },
}

/// One rejected value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reject {
    pub file: String,
    pub row: usize,
    pub column: String,
    pub value: String,
    pub reason: String,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: row {}, column {}: {}",
            self.file, self.row, self.column, self.reason
        )
    }
}

/// What collectors record about a debtor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    PromiseToPay,
    PaymentPlan,
    Dispute,
    DisputeResolved,
    Insolvency,
    InsolvencyClosed,
    DoNotContact,
    ContactOutcome,
    Deceased,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::PromiseToPay,
        EventKind::PaymentPlan,
        EventKind::Dispute,
        EventKind::DisputeResolved,
        EventKind::Insolvency,
        EventKind::InsolvencyClosed,
        EventKind::DoNotContact,
        EventKind::ContactOutcome,
        EventKind::Deceased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PromiseToPay => "promise_to_pay",
            EventKind::PaymentPlan => "payment_plan",
            EventKind::Dispute => "dispute",
            EventKind::DisputeResolved => "dispute_resolved",
            EventKind::Insolvency => "insolvency",
            EventKind::InsolvencyClosed => "insolvency_closed",
            EventKind::DoNotContact => "do_not_contact",
            EventKind::ContactOutcome => "contact_outcome",
            EventKind::Deceased => "deceased",
        }
    }
}

impl FromStr for EventKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(())
    }
}

/// A short text kept inline: most of a debtor's fields (an id, a country, a
/// phone number, a city) fit in 24 bytes, and a million debtors with a heap
/// allocation per field cost more than the ledger itself.
pub type Text = compact_str::CompactString;

/// One debtor of the debtors file. Its texts live in one allocation, one
/// after the other: a million debtors of thirteen texts, each inline in 24
/// bytes or on the heap, cost 400 MB; joined, about a third of that.
#[derive(Debug, Clone, Default)]
pub struct Debtor {
    texts: Box<str>,
    /// Where each text ends in `texts`, in the order of [`Debtor::new`].
    ends: [u32; TEXTS],
    pub score: Option<Decimal>,
    pub consent_email: bool,
    pub consent_sms: bool,
    /// The e-mail address is one a mail server would accept, and has not
    /// failed for good on an earlier night (see `email_bounced`).
    pub email_ok: bool,
    /// Mail to this address failed permanently (5xx) on an earlier night.
    pub email_bounced: bool,
}

const TEXTS: usize = 13;

/// A debtor's texts, by name, for [`Debtor::new`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DebtorTexts<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub kind: &'a str,
    pub language: &'a str,
    pub country: &'a str,
    pub email: &'a str,
    pub phone: &'a str,
    pub address_line1: &'a str,
    pub address_line2: &'a str,
    pub postal_code: &'a str,
    pub city: &'a str,
    pub timezone: &'a str,
    /// The phone number in E.164, when it could be normalised.
    pub phone_e164: Option<&'a str>,
}

/// The text accessors of [`Debtor`], by position in its joined texts.
macro_rules! debtor_texts {
    ($($name:ident = $i:expr),* $(,)?) => {
        $(
            pub fn $name(&self) -> &str {
                self.text($i)
            }
        )*
    };
}

impl Debtor {
    pub fn new(t: DebtorTexts<'_>) -> Debtor {
        let parts = [
            t.id,
            t.name,
            t.kind,
            t.language,
            t.country,
            t.email,
            t.phone,
            t.address_line1,
            t.address_line2,
            t.postal_code,
            t.city,
            t.timezone,
            t.phone_e164.unwrap_or(""),
        ];
        let mut texts = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0u32; TEXTS];
        for (end, p) in ends.iter_mut().zip(parts) {
            texts.push_str(p);
            *end = u32::try_from(texts.len()).expect("a debtor's texts under 4 GB");
        }
        Debtor {
            texts: texts.into_boxed_str(),
            ends,
            ..Debtor::default()
        }
    }

    fn text(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.texts[start as usize..self.ends[i] as usize]
    }

    debtor_texts!(
        id = 0,
        name = 1,
        kind = 2,
        language = 3,
        country = 4,
        email = 5,
        phone = 6,
        address_line1 = 7,
        address_line2 = 8,
        postal_code = 9,
        city = 10,
        timezone = 11,
    );

    /// The phone number in E.164, when it could be normalised (never an
    /// empty text).
    pub fn phone_e164(&self) -> Option<&str> {
        Some(self.text(12)).filter(|p| !p.is_empty())
    }
}

/// An account as one integer: the debtor's position in the debtors file and
/// the currency's three letters. The ledger carries it as its `account`
/// column, so that grouping 4.5 million items into accounts hashes one
/// integer per item instead of two texts (3x faster at a million debtors).
pub fn account_key(debtor: u32, currency: &str) -> Option<u64> {
    if !is_currency(currency) {
        return None;
    }
    let code = currency
        .bytes()
        .fold(0u64, |acc, c| acc * 26 + u64::from(c - b'A'));
    Some((u64::from(debtor) << 16) | code)
}

/// The debtor position and currency of an [`account_key`].
pub fn account_of_key(key: u64) -> (u32, [u8; 3]) {
    let code = key & 0xFFFF;
    let letter = |n: u64| b'A' + (n % 26) as u8;
    (
        (key >> 16) as u32,
        [letter(code / 676), letter(code / 26), letter(code)],
    )
}

/// The valid debtors in file order, found by id. One vector and an index of
/// positions rather than a map of records: a hash map sized for a million
/// entries doubles its buckets, and each bucket would hold a whole record.
///
/// The index holds positions only (4 bytes a slot) and finds a debtor by
/// hashing the id it is asked for and comparing with the listed debtor's:
/// a map keyed by a copy of each id took 64 MB at a million debtors.
///
/// The index is split in [`INDEX_PARTS`] tables by bits of the hash, so
/// that they are built in parallel: built as one, a million debtors' index
/// was a tenth of a second with the other core idle.
#[derive(Debug, Clone, Default)]
pub struct Debtors {
    list: Vec<Debtor>,
    index: [hashbrown::HashTable<u32>; INDEX_PARTS],
}

const INDEX_PARTS: usize = 8;

/// The table of [`Debtors`]' index a hash is in: by bits that the tables
/// themselves use neither for the bucket (the low bits) nor for the tag
/// (the top seven).
fn index_part(hash: u64) -> usize {
    (hash >> 40) as usize % INDEX_PARTS
}

fn id_hash(id: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one(id)
}

impl Debtors {
    pub fn with_capacity(n: usize) -> Debtors {
        Debtors {
            list: Vec::with_capacity(n),
            index: std::array::from_fn(|_| hashbrown::HashTable::with_capacity(n / INDEX_PARTS)),
        }
    }

    /// Adds a debtor; a second one with the same id replaces the first.
    pub fn insert(&mut self, d: Debtor) {
        match self.position(d.id()) {
            Some(i) => self.list[i as usize] = d,
            None => {
                let i = u32::try_from(self.list.len()).expect("fewer than 4 billion debtors");
                let list = &self.list;
                let h = id_hash(d.id());
                self.index[index_part(h)].insert_unique(h, i, |&j| id_hash(list[j as usize].id()));
                self.list.push(d);
            }
        }
    }

    /// The debtors of `list`, whose ids are known to differ (every copy of
    /// a repeated id was rejected), `hashes` the [`id_hash`] of each id
    /// (computed in parallel as the rows were read): indexed without
    /// looking for an earlier copy, each table of the index on a thread.
    fn of_unique(list: Vec<Debtor>, hashes: &[u64]) -> Debtors {
        debug_assert_eq!(list.len(), hashes.len());
        u32::try_from(list.len()).expect("fewer than 4 billion debtors");
        let mut index: [hashbrown::HashTable<u32>; INDEX_PARTS] = Default::default();
        index.par_iter_mut().enumerate().for_each(|(part, table)| {
            table.reserve(hashes.len() / INDEX_PARTS * 9 / 8 + 16, |&j| {
                hashes[j as usize]
            });
            for (i, &h) in hashes.iter().enumerate() {
                if index_part(h) == part {
                    table.insert_unique(h, i as u32, |&j| hashes[j as usize]);
                }
            }
        });
        Debtors { list, index }
    }

    pub fn get(&self, id: &str) -> Option<&Debtor> {
        self.position(id).map(|i| &self.list[i as usize])
    }

    /// Where a debtor stands in the file's order, for [`account_key`].
    pub fn position(&self, id: &str) -> Option<u32> {
        let h = id_hash(id);
        self.index[index_part(h)]
            .find(h, |&i| self.list[i as usize].id() == id)
            .copied()
    }

    /// Each debtor's rank when the debtors are listed by id (bytewise, as
    /// `decisions.csv` lists them), by position; `None` when the file
    /// already lists them so, which is one pass to find out.
    pub fn ranks_by_id(&self) -> Option<Vec<u32>> {
        if self.list.par_windows(2).all(|w| w[0].id() < w[1].id()) {
            return None;
        }
        let mut by_id: Vec<u32> = (0..self.list.len() as u32).collect();
        by_id.par_sort_unstable_by(|&a, &b| {
            self.list[a as usize].id().cmp(self.list[b as usize].id())
        });
        let mut rank = vec![0u32; self.list.len()];
        for (r, &at) in by_id.iter().enumerate() {
            rank[at as usize] = r as u32;
        }
        Some(rank)
    }

    /// [`Debtors::position`], tried first at `hint` (an account's
    /// [`crate::accounts::Account::debtor_at`]): no hashing when it is
    /// right, which it is for every account the ledger made.
    pub fn position_hinted(&self, id: &str, hint: Option<u32>) -> Option<u32> {
        match hint {
            Some(at) if self.list.get(at as usize).is_some_and(|d| d.id() == id) => Some(at),
            _ => self.position(id),
        }
    }

    /// The debtor at a [`Debtors::position`].
    pub fn at(&self, position: u32) -> Option<&Debtor> {
        self.list.get(position as usize)
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.position(id).is_some()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// In file order.
    pub fn values(&self) -> std::slice::Iter<'_, Debtor> {
        self.list.iter()
    }

    pub fn values_mut(&mut self) -> std::slice::IterMut<'_, Debtor> {
        self.list.iter_mut()
    }
}

impl FromIterator<Debtor> for Debtors {
    fn from_iter<I: IntoIterator<Item = Debtor>>(iter: I) -> Debtors {
        let mut out = Debtors::default();
        for d in iter {
            out.insert(d);
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct Event {
    pub debtor_id: String,
    pub date: NaiveDate,
    pub kind: EventKind,
    pub until: Option<NaiveDate>,
    pub amount: Option<Cents>,
    /// What the collector wrote, trimmed: compliance reads outcome codes
    /// (`conversation`, `wrong_party`) from `contact_outcome` events.
    pub note: String,
    /// Where the event came from, to name it in a trace.
    pub row: usize,
}

/// How many rows a file had and how many were rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileCount {
    /// The path as given.
    pub file: String,
    /// The file name, as rejects.csv names it.
    pub name: String,
    pub rows: usize,
    pub rejected: usize,
}

/// Everything the night reads, checked.
pub struct Inputs {
    /// Valid ledger items: `item_id` (str), `amount, open_amount` (i64
    /// cents), `issued_on, due_on` (i32 days), `account` (u64: the debtor
    /// and currency, see [`account_key`]), `reference, product` (str),
    /// `row_at` (u64). The texts of a row with a `row_at` are in the
    /// ledger at that offset, not in the frame: read them with
    /// [`ItemTexts`].
    pub items: DataFrame,
    /// The ledger's bytes, when rows of it left their texts there.
    pub ledger_texts: Option<LedgerTexts>,
    /// Valid debtors, by id.
    pub debtors: Debtors,
    /// Valid events, in file order.
    pub events: Vec<Event>,
    pub rejects: Vec<Reject>,
    pub counts: Vec<FileCount>,
}

pub const LEDGER_COLUMNS: &[&str] = &[
    "item_id",
    "debtor_id",
    "currency",
    "amount",
    "open_amount",
    "issued_on",
    "due_on",
];
pub const LEDGER_OPTIONAL: &[&str] = &["product", "reference"];
pub const DEBTOR_COLUMNS: &[&str] = &[
    "debtor_id",
    "name",
    "kind",
    "language",
    "country",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "postal_code",
    "city",
];
pub const DEBTOR_OPTIONAL: &[&str] = &["timezone", "score", "consent_email", "consent_sms"];
/// The longest text a field may hold, in characters.
pub const MAX_FIELD: usize = 1000;

pub const EVENT_COLUMNS: &[&str] = &["debtor_id", "date", "kind"];
pub const EVENT_OPTIONAL: &[&str] = &["until", "amount", "note"];

/// A file read with every column as text.
struct Table {
    /// The path as given, for error messages.
    file: String,
    /// The file name alone, for rejects.csv: outputs must not depend on
    /// the folder the inputs were read from.
    name: String,
    df: DataFrame,
    /// Row number of data row 0.
    first_row: usize,
    /// Values longer than [`MAX_FIELD`] characters, by data row: (column,
    /// value). A ledger is not where 10 MB of text belongs; such a value
    /// would end up in letters, e-mails and agency files.
    long: HashMap<usize, Vec<(String, String)>>,
    /// Text columns read from the file's pages instead of Polars (see
    /// [`ParquetRows::table_from_pages`]), by name: not in `df`.
    paged: Vec<(&'static str, pages::TextColumn)>,
}

impl Table {
    fn height(&self) -> usize {
        self.df.height()
    }

    fn col(&self, name: &str) -> Option<&StringChunked> {
        self.df.column(name).ok().and_then(|c| c.str().ok())
    }

    /// Rows `start..start + len` of a text column, wherever it was read.
    fn texts(&self, name: &str, start: usize, len: usize) -> SliceTexts<'_> {
        match self.paged.iter().find(|(n, _)| *n == name) {
            Some((_, c)) => SliceTexts::Paged(c, start),
            None => SliceTexts::of(self.col(name), start, len),
        }
    }

    /// The table with one chunk per column, for checks that read values
    /// by row number (constant time only on a single chunk). The ledger's
    /// and the debtors' checks read their slices in order, and are spared
    /// the copy.
    fn one_chunk(mut self) -> Table {
        self.df.rechunk_mut_par();
        self
    }

    fn row(&self, i: usize) -> usize {
        self.first_row + i
    }
}

/// Reads ledger, debtors and events and checks every row.
pub fn read(
    ledger: &Path,
    debtors: &Path,
    events: Option<&Path>,
    default_country: &str,
) -> Result<Inputs, IngestError> {
    let mut rejects = Vec::new();
    let mut counts = Vec::new();
    // A Parquet ledger's first slice is decoded while the debtors are read.
    let mut parquet = matches!(extension(ledger).as_deref(), Some("parquet" | "pq"))
        .then(|| ParquetSlices::start(ledger, PARQUET_SLICE));

    // Each file's text table is dropped as soon as it is checked: at a
    // million debtors, the text of one file is hundreds of megabytes.
    let t = std::time::Instant::now();
    // A Parquet file is read in slices and a plain CSV file where it lies;
    // any other file as one table of texts.
    let parquet_debtors = matches!(extension(debtors).as_deref(), Some("parquet" | "pq"));
    let read_apart = match parquet_debtors {
        true => match read_debtors_pages(debtors, &mut rejects, default_country)? {
            Some(read) => Some(read),
            None => Some(read_debtors_parquet(
                debtors,
                &mut rejects,
                default_country,
                PARQUET_SLICE,
            )?),
        },
        false => read_debtors_plain(debtors, &mut rejects, default_country, PLAIN_CHUNK)?,
    };
    let debtor_map = if let Some((map, count)) = read_apart {
        counts.push(count);
        map
    } else {
        let table = read_table(debtors, DEBTOR_COLUMNS, DEBTOR_OPTIONAL)?;
        tracing::debug!(file = %table.name, ms = t.elapsed().as_millis() as u64, rss_mib = crate::rss_mib(), "file parsed");
        let (debtor_map, n) = check_debtors(&table, &mut rejects, default_country);
        counts.push(FileCount {
            file: table.file.clone(),
            name: table.name.clone(),
            rows: table.height(),
            rejected: n,
        });
        debtor_map
    };
    tracing::debug!(
        file = "debtors",
        ms = t.elapsed().as_millis() as u64,
        rss_mib = crate::rss_mib(),
        cpu = ?crate::cpu_ms(),
        minflt = crate::minor_faults(),
        "file checked"
    );

    let t = std::time::Instant::now();
    let (items, ledger_texts) = {
        let (items, count, texts) =
            read_ledger(ledger, &debtor_map, parquet.as_mut(), &mut rejects)?;
        drop(parquet);
        counts.push(count);
        (items, texts)
    };
    tracing::debug!(
        file = "ledger",
        ms = t.elapsed().as_millis() as u64,
        rss_mib = crate::rss_mib(),
        cpu = ?crate::cpu_ms(),
        minflt = crate::minor_faults(),
        "file checked"
    );

    let mut event_list = Vec::new();
    if let Some(events) = events {
        let table = read_table(events, EVENT_COLUMNS, EVENT_OPTIONAL)?.one_chunk();
        let (list, n) = check_events(&table, &debtor_map, &mut rejects);
        event_list = list;
        counts.push(FileCount {
            file: table.file.clone(),
            name: table.name.clone(),
            rows: table.height(),
            rejected: n,
        });
    }
    rejects.sort();
    Ok(Inputs {
        items,
        ledger_texts,
        debtors: debtor_map,
        events: event_list,
        rejects,
        counts,
    })
}

/// Stops the night when any file has more rejected rows than the policy
/// tolerates: a feed that broke upstream should not be half-dunned.
pub fn enforce_reject_share(inputs: &Inputs, max: Decimal) -> Result<(), IngestError> {
    for c in &inputs.counts {
        if c.rows == 0 || c.rejected == 0 {
            continue;
        }
        let share = Decimal::from(c.rejected) / Decimal::from(c.rows);
        if share > max {
            let examples: Vec<String> = inputs
                .rejects
                .iter()
                .filter(|r| r.file == c.name)
                .take(10)
                .map(|r| format!("  {r}"))
                .collect();
            return Err(IngestError::TooManyRejects {
                file: c.file.clone(),
                rejected: c.rejected,
                rows: c.rows,
                share: format!("{:.2}%", share * Decimal::ONE_HUNDRED),
                max: format!("{:.2}%", max * Decimal::ONE_HUNDRED),
                examples: examples.join("\n"),
            });
        }
    }
    Ok(())
}

/// A file's extension in lower case: it says how the file is read.
fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

fn read_table(path: &Path, required: &[&str], optional: &[&str]) -> Result<Table, IngestError> {
    let file = display_path(path);
    let table = match extension(path).as_deref() {
        Some("csv") => read_csv(path, &file, required)?,
        Some("parquet") | Some("pq") => read_parquet(path, &file)?,
        _ => return Err(IngestError::Extension { file }),
    };
    finish_table(table, path, required, optional)
}

/// Keeps a freshly read table's known columns, in one chunk each, and
/// notes its over-long values.
fn finish_table(
    table: Table,
    path: &Path,
    required: &[&str],
    optional: &[&str],
) -> Result<Table, IngestError> {
    let file = table.file.clone();
    let names: Vec<String> = table
        .df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    for column in required {
        if !names.iter().any(|n| n == column) {
            return Err(IngestError::MissingColumn {
                file,
                column: (*column).to_owned(),
                found: names.join(", "),
            });
        }
    }
    // Keep the known columns only, all as text.
    let mut cols = Vec::new();
    for name in required.iter().chain(optional) {
        if let Ok(c) = table.df.column(name) {
            cols.push(c.clone());
        }
    }
    let df = DataFrame::new(table.df.height(), cols).map_err(|e| IngestError::Unparseable {
        file: file.clone(),
        message: e.to_string(),
    })?;
    let name = path
        .file_name()
        .map_or_else(|| file.clone(), |n| n.to_string_lossy().into_owned());
    let mut long: HashMap<usize, Vec<(String, String)>> = HashMap::new();
    for c in df.columns() {
        if let Ok(values) = c.str() {
            // A value's length is in its view: most columns have no long
            // value, and are not read value by value.
            let any_long = values
                .downcast_iter()
                .any(|a| a.views().iter().any(|v| v.length as usize > MAX_FIELD));
            if !any_long {
                continue;
            }
            for (i, v) in values.iter().enumerate() {
                if let Some(v) = v.filter(|v| too_long(v)) {
                    long.entry(i)
                        .or_default()
                        .push((c.name().to_string(), v.to_owned()));
                }
            }
        }
    }
    Ok(Table {
        df,
        name,
        long,
        ..table
    })
}

/// Whether a value is longer than [`MAX_FIELD`] characters.
fn too_long(v: &str) -> bool {
    v.len() > MAX_FIELD && v.chars().count() > MAX_FIELD
}

/// A CSV ledger is read this many bytes at a time (each piece ends at a
/// row boundary): its text is checked and turned into typed columns piece
/// by piece, so the whole file's text never sits in memory at once (at 4.5
/// million items, the file and its text table were a gigabyte).
const LEDGER_PIECE: usize = 64 << 20;

/// Reads and checks the ledger. A large CSV file is read in pieces; a small
/// one, a Parquet file, or a CSV file with a problem that stops the night
/// is read whole, so that the problem is reported the same way whatever
/// the file's size.
fn read_ledger(
    path: &Path,
    debtors: &Debtors,
    parquet: Option<&mut ParquetSlices>,
    rejects: &mut Vec<Reject>,
) -> Result<(DataFrame, FileCount, Option<LedgerTexts>), IngestError> {
    let ((df, count, found), texts) = match extension(path).as_deref() {
        Some("csv") => match read_ledger_pieces(path, debtors, LEDGER_PIECE)? {
            Some((df, count, found, texts)) => ((df, count, found), texts),
            None => (read_ledger_whole(path, debtors)?, None),
        },
        Some("parquet") | Some("pq") => {
            let (df, count, found, texts) = match parquet {
                Some(slices) => read_ledger_parquet(path, debtors, slices)?,
                None => read_ledger_parquet(
                    path,
                    debtors,
                    &mut ParquetSlices::start(path, PARQUET_SLICE),
                )?,
            };
            ((df, count, found), texts)
        }
        _ => (read_ledger_whole(path, debtors)?, None),
    };
    rejects.extend(found);
    Ok((df, count, texts))
}

/// Reads and checks a ledger file in one piece.
fn read_ledger_whole(
    path: &Path,
    debtors: &Debtors,
) -> Result<(DataFrame, FileCount, Vec<Reject>), IngestError> {
    let table = read_table(path, LEDGER_COLUMNS, LEDGER_OPTIONAL)?;
    let mut found = Vec::new();
    let checked = check_ledger(&table, debtors, &mut found, false)?;
    let (df, bad) = finish_ledger(
        &table.file,
        &table.name,
        checked,
        table.first_row,
        &mut found,
        None,
    )?;
    let count = FileCount {
        file: table.file.clone(),
        name: table.name.clone(),
        rows: table.height(),
        rejected: bad,
    };
    Ok((df, count, found))
}

/// A Parquet ledger is turned into text and checked about this many rows
/// at a time (whole row groups, see [`ParquetRows::slices`]): its typed
/// columns are compact, their text is not. A row group a slice (Polars
/// writes them of about 260,000 rows) held 100 MB less at a million
/// debtors than two, and took no longer (BENCHMARKS.md, 2026-12-02,
/// eighth).
const PARQUET_SLICE: usize = 1 << 18;

/// A Parquet file's slices of rows, as text tables, read ahead on
/// threads of their own: the next slices are decoded while this one is
/// checked.
///
/// Decoding (Polars' pool) and checking (the night's pool) each left a
/// core idle between their steps; one after the other, a quarter of the
/// Parquet ingest was a core waiting. Then, one thread decoding a slice
/// (a row group) at a time, the check waited for it a fifth of the
/// ledger's reading: [`DECODERS`] threads decode every other slice. The
/// threads are started before the debtors are read, so the ledger's first
/// slices are decoded beside them too. At most `DECODERS + 1` slices are
/// held decoded: the one checked and the next ones.
struct ParquetSlices {
    /// The file, as errors name it.
    file: String,
    /// A channel a decoding thread: slice `k` comes from channel
    /// `k % DECODERS`.
    slices: Option<Vec<std::sync::mpsc::Receiver<Result<Table, IngestError>>>>,
    /// The slices received so far.
    received: usize,
    /// How long the reader waited for them (the decoders behind).
    waited: std::time::Duration,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Threads decoding a Parquet file's slices, each every `DECODERS`th.
const DECODERS: usize = 2;

/// How a file's slices are made tables: the columns the checks read as
/// they are typed (see [`as_text_but`]), and the columns known.
struct Shape {
    typed: &'static [&'static str],
    required: &'static [&'static str],
    optional: &'static [&'static str],
    /// Required text columns read from a Parquet file's pages, not by
    /// Polars (see [`ParquetRows::table_from_pages`]).
    paged: &'static [&'static str],
    /// Optional text columns of which the checks read only the values too
    /// long, found in the pages too.
    lengths_only: &'static [&'static str],
}

const LEDGER_SHAPE: Shape = Shape {
    typed: &["issued_on", "due_on", "amount", "open_amount"],
    required: LEDGER_COLUMNS,
    optional: LEDGER_OPTIONAL,
    paged: &["item_id", "debtor_id", "currency"],
    // The documents read them again from the file (see [`LedgerTexts`]).
    lengths_only: LEDGER_OPTIONAL,
};

const DEBTORS_SHAPE: Shape = Shape {
    typed: &[],
    required: DEBTOR_COLUMNS,
    optional: DEBTOR_OPTIONAL,
    paged: &[],
    lengths_only: &[],
};

impl ParquetSlices {
    /// A ledger's slices.
    fn start(path: &Path, slice: usize) -> ParquetSlices {
        ParquetSlices::start_as(path, slice, &LEDGER_SHAPE)
    }

    fn start_as(path: &Path, slice: usize, shape: &'static Shape) -> ParquetSlices {
        let named = display_path(path);
        let path = path.to_path_buf();
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..DECODERS)
            .map(|_| std::sync::mpsc::sync_channel(0))
            .unzip();
        let thread = std::thread::spawn(move || {
            let file = display_path(&path);
            let parquet = match ParquetRows::open(&path, &file) {
                Ok(parquet) => parquet,
                Err(e) => {
                    let _ = senders[0].send(Err(e));
                    return;
                }
            };
            let bounds = parquet.slices(slice);
            let lengths = (!shape.paged.is_empty() || !shape.lengths_only.is_empty())
                .then(|| pages::PageFile::open(&path, shape.paged, shape.lengths_only))
                .flatten();
            // A decoder that panics takes the scope, so this thread, with
            // it: `next` then reports the thread dead.
            std::thread::scope(|scope| {
                for (w, tx) in senders.into_iter().enumerate() {
                    let (parquet, bounds, lengths, file) =
                        (&parquet, &bounds, lengths.as_ref(), file.as_str());
                    scope.spawn(move || {
                        for &(start, len) in bounds.iter().skip(w).step_by(DECODERS) {
                            // Each slice is read from the file when it is
                            // wanted: the whole typed frame and the checked
                            // columns are never in memory together.
                            let table = unpanicked(file, || match lengths {
                                Some(pages) => parquet.table_from_pages(start, len, shape, pages),
                                None => parquet.table(start, len, shape),
                            })
                            .and_then(|table| table);
                            let failed = table.is_err();
                            // Gone when the reader stopped (an error, or the
                            // debtors file refused): nothing more to read.
                            if tx.send(table).is_err() || failed {
                                return;
                            }
                        }
                    });
                }
            });
        });
        ParquetSlices {
            file: named,
            slices: Some(receivers),
            received: 0,
            waited: std::time::Duration::ZERO,
            thread: Some(thread),
        }
    }

    /// The next slice; `None` after the last. A thread that died between
    /// two slices is an error, never the end of the file: the rows after
    /// it would be lost.
    fn next(&mut self) -> Option<Result<Table, IngestError>> {
        let from = &self.slices.as_ref()?[self.received % DECODERS];
        let t = std::time::Instant::now();
        let slice = from.recv();
        self.waited += t.elapsed();
        if let Ok(slice) = slice {
            self.received += 1;
            return Some(slice);
        }
        // The decoder of this slice has none left, or died: every other
        // one is stopped (its channel gone) to know which.
        self.slices = None;
        let died = self.thread.take().is_some_and(|t| t.join().is_err());
        died.then(|| {
            Err(IngestError::Unparseable {
                file: self.file.clone(),
                message: "internal error: the thread reading the file stopped before its end"
                    .into(),
            })
        })
    }
}

impl Drop for ParquetSlices {
    /// Stops the reading threads (at their next slice) and waits for
    /// them, so that no decoding goes on behind the night.
    fn drop(&mut self) {
        drop(self.slices.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads a Parquet ledger: typed as stored, then checked a slice of rows
/// at a time like the pieces of a CSV file.
fn read_ledger_parquet(
    path: &Path,
    debtors: &Debtors,
    slices: &mut ParquetSlices,
) -> Result<(DataFrame, FileCount, Vec<Reject>, Option<LedgerTexts>), IngestError> {
    let file = display_path(path);
    let name = path
        .file_name()
        .map_or_else(|| file.clone(), |n| n.to_string_lossy().into_owned());
    let mut acc: Option<Checked> = None;
    let mut found = Vec::new();
    let mut rows = 0;
    let t = std::time::Instant::now();
    while let Some(table) = slices.next() {
        let table = table?;
        rows += table.height();
        let checked = check_ledger(&table, debtors, &mut found, true)?;
        Checked::add(&mut acc, checked, &file)?;
    }
    tracing::debug!(
        wait_ms = slices.waited.as_millis() as u64,
        check_ms = t.elapsed().saturating_sub(slices.waited).as_millis() as u64,
        "parquet ledger slices"
    );
    let Some(checked) = acc else {
        return Err(IngestError::Unparseable {
            file,
            message: "internal error: the thread reading the file stopped".into(),
        });
    };
    let texts = LedgerTexts::parquet(path, rows);
    let (df, bad) = finish_ledger(&file, &name, checked, 1, &mut found, Some(&texts))?;
    let count = FileCount {
        file,
        name,
        rows,
        rejected: bad,
    };
    Ok((df, count, found, Some(texts)))
}

/// The streaming path of [`read_ledger`]: `None` when the file is small or
/// anything about it is unusual (not UTF-8, a malformed row, a header
/// problem), in which case the caller reads it whole.
#[allow(clippy::type_complexity)]
fn read_ledger_pieces(
    path: &Path,
    debtors: &Debtors,
    piece: usize,
) -> Result<Option<(DataFrame, FileCount, Vec<Reject>, Option<LedgerTexts>)>, IngestError> {
    let file = display_path(path);
    let bytes = crate::FileBytes::open(path).map_err(|source| IngestError::Unreadable {
        file: file.clone(),
        source,
    })?;
    if bytes.len() <= piece {
        // Small enough to read whole.
        return Ok(None);
    }
    // A UTF-8 byte order mark is what Excel writes; accept it.
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let skipped = bytes.len() - body.len();
    let Some(end) = memchr::memchr(b'\n', body) else {
        return Ok(None);
    };
    let header = &body[..=end];
    // A quoted header could hold a newline, and the row ends below count
    // quotes from the header's end: read it whole.
    if header.contains(&b'"')
        || std::str::from_utf8(header).is_err()
        || check_header(header, &file).is_err()
    {
        return Ok(None);
    }
    let hl = end + 1;
    let name = path
        .file_name()
        .map_or_else(|| file.clone(), |n| n.to_string_lossy().into_owned());
    let plain = std::str::from_utf8(header).ok().and_then(PlainHeader::read);
    let mut rows_done = 0usize;
    let mut acc: Option<Checked> = None;
    let mut rejects = Vec::new();
    let mut start = hl;
    // Whether any piece left its rows' texts in the file.
    let mut left_texts = false;
    let mut spent = [std::time::Duration::ZERO; 4];
    while start < body.len() {
        let t = std::time::Instant::now();
        // A plain piece (no quote) ends at the last newline within a
        // piece's length: found from the end, so that the piece's pages
        // are first read by the threads that check it, not here.
        let quick = if start + piece >= body.len() {
            Some(body.len())
        } else {
            memchr::memrchr(b'\n', &body[start..start + piece]).map(|i| start + i + 1)
        };
        spent[0] += t.elapsed();
        let t = std::time::Instant::now();
        let plain_rows = plain.as_ref().zip(quick).and_then(|(h, cut)| {
            check_plain_piece(
                Piece {
                    bytes: &body[start..cut],
                    at: skipped + start,
                    first_row: 2 + rows_done,
                },
                h,
                &name,
                debtors,
                &mut rejects,
                PLAIN_CHUNK,
            )
            .map(|checked| (checked, cut))
        });
        left_texts |= plain_rows.is_some();
        spent[1] += t.elapsed();
        let (checked, cut) = match plain_rows {
            // With no quote before it, that newline ends a row.
            Some(done) => done,
            None => {
                let t = std::time::Instant::now();
                // Up to the last row boundary (a newline outside quotes)
                // within a piece, or further for a row longer than a piece.
                let mut window = piece;
                let cut = loop {
                    let stop = start + window;
                    if stop >= body.len() {
                        break body.len();
                    }
                    match last_row_end(&body[start..stop]) {
                        Some(i) => break start + i + 1,
                        None => window += piece,
                    }
                };
                let rows = &body[start..cut];
                spent[0] += t.elapsed();
                let t = std::time::Instant::now();
                let Ok(rows) = std::str::from_utf8(rows) else {
                    return Ok(None);
                };
                // Polars reads the piece with the header before it.
                let mut text = Vec::with_capacity(hl + rows.len());
                text.extend_from_slice(header);
                text.extend_from_slice(rows.as_bytes());
                let Ok(df) = CsvReadOptions::default()
                    .with_has_header(true)
                    .with_infer_schema_length(Some(0))
                    .into_reader_with_file_handle(Cursor::new(text))
                    .finish()
                else {
                    return Ok(None);
                };
                let table = finish_table(
                    Table {
                        file: file.clone(),
                        name: String::new(),
                        df,
                        first_row: 2 + rows_done,
                        long: HashMap::new(),
                        paged: Vec::new(),
                    },
                    path,
                    LEDGER_COLUMNS,
                    LEDGER_OPTIONAL,
                );
                let Ok(table) = table else {
                    return Ok(None);
                };
                let checked = check_ledger(&table, debtors, &mut rejects, false)?;
                spent[1] += t.elapsed();
                (checked, cut)
            }
        };
        let t = std::time::Instant::now();
        rows_done += checked.mask.len();
        Checked::add(&mut acc, checked, &file)?;
        bytes.release(skipped + cut);
        start = cut;
        spent[2] += t.elapsed();
    }
    let Some(checked) = acc else {
        return Ok(None);
    };
    let texts = match (left_texts, plain) {
        (true, Some(h)) => Some(LedgerTexts(TextSource::Csv {
            bytes,
            width: h.width,
            fields: [Some(h.required[0]), h.optional[0], h.optional[1]],
        })),
        _ => None,
    };
    let t = std::time::Instant::now();
    let (df, bad) = finish_ledger(&file, &name, checked, 2, &mut rejects, texts.as_ref())?;
    spent[3] += t.elapsed();
    tracing::debug!(
        cut_ms = spent[0].as_millis() as u64,
        check_ms = spent[1].as_millis() as u64,
        add_ms = spent[2].as_millis() as u64,
        finish_ms = spent[3].as_millis() as u64,
        "ledger pieces"
    );
    let count = FileCount {
        file,
        name,
        rows: rows_done,
        rejected: bad,
    };
    Ok(Some((df, count, rejects, texts)))
}

/// The texts of the ledger rows that the plain reading read (item id,
/// product, reference), left where they are in the ledger's bytes, kept
/// mapped: the items frame has each such row's offset (`row_at`) instead
/// of three text values. At a million debtors those values were 200 MB of
/// the night's peak and 50,000 fresh pages for the kernel to zero
/// (BENCHMARKS.md, "2026-12-02 (seventh)"); the documents read the texts
/// of the items they show, a row at a time. The file must not change
/// during the night (see [`crate::FileBytes`]).
///
/// A Parquet ledger's rows have their row number in the file as `row_at`:
/// the three columns are read again from the file, once, when the
/// documents first ask for them, after `decisions.csv` is written.
pub struct LedgerTexts(TextSource);

enum TextSource {
    Csv {
        bytes: crate::FileBytes,
        /// Fields in a row.
        width: usize,
        /// The fields of `item_id`, `product` and `reference`.
        fields: [Option<usize>; 3],
    },
    Parquet {
        path: std::path::PathBuf,
        /// Rows in the file when it was read.
        rows: usize,
        /// The three columns, one chunk each, once read; or why they
        /// could not be.
        columns: std::sync::OnceLock<Result<[StringChunked; 3], String>>,
        /// The three columns read a slice at a time, for the documents.
        sliced: std::sync::OnceLock<Result<Box<SlicedTexts>, String>>,
    },
}

impl LedgerTexts {
    fn parquet(path: &Path, rows: usize) -> LedgerTexts {
        LedgerTexts(TextSource::Parquet {
            path: path.to_owned(),
            rows,
            columns: Default::default(),
            sliced: Default::default(),
        })
    }

    /// A Parquet ledger's three text columns, to be read a slice at a
    /// time as rows are asked for; `None` for a CSV ledger.
    fn sliced(&self) -> PolarsResult<Option<&SlicedTexts>> {
        let TextSource::Parquet {
            path, rows, sliced, ..
        } = &self.0
        else {
            return Ok(None);
        };
        let read = sliced.get_or_init(|| SlicedTexts::open(path, *rows).map(Box::new));
        match read {
            Ok(t) => Ok(Some(&**t)),
            Err(e) => Err(PolarsError::ComputeError(e.clone().into())),
        }
    }

    /// A Parquet ledger's three text columns, read again (as text, as the
    /// checks read them); `None` for a CSV ledger.
    fn columns(&self) -> PolarsResult<Option<&[StringChunked; 3]>> {
        let TextSource::Parquet {
            path,
            rows,
            columns,
            ..
        } = &self.0
        else {
            return Ok(None);
        };
        let read = columns.get_or_init(|| {
            let file = display_path(path);
            let again = " (read again for the items' ids, products and references)";
            match read_parquet_texts(path, &file, PARQUET_SLICE) {
                Ok(c) if c[0].len() == *rows => Ok(c),
                Ok(c) => Err(format!(
                    "{file}: had {rows} rows when the night read it and {} now{again}: an input must not change during the night",
                    c[0].len()
                )),
                Err(e) => Err(format!("{e}{again}")),
            }
        });
        match read {
            Ok(c) => Ok(Some(c)),
            Err(e) => Err(PolarsError::ComputeError(e.clone().into())),
        }
    }

    /// The texts of the row at byte `at` of a CSV ledger, `None` where
    /// empty, as the plain reading would have kept them.
    fn row(&self, at: usize) -> [Option<&str>; 3] {
        let TextSource::Csv {
            bytes,
            width,
            fields,
        } = &self.0
        else {
            return [None; 3];
        };
        let rest = bytes.get(at..).unwrap_or_default();
        let line = &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut out = [None; 3];
        // A plain row: fields between commas, its UTF-8 checked when read.
        for (i, field) in line.splitn(*width, |&b| b == b',').enumerate() {
            for (k, want) in fields.iter().enumerate() {
                if *want == Some(i) && !field.is_empty() {
                    out[k] = std::str::from_utf8(field).ok();
                }
            }
        }
        out
    }

    /// Gives back the memory of the ledger's pages read so far: a page is
    /// read again from the file should a later document need it. The
    /// documents call it every 65,536 items they read (through
    /// [`ItemTexts::forget`]), so that the ledger does not come back whole
    /// into the night's resident memory.
    fn forget(&self) {
        if let TextSource::Csv { bytes, .. } = &self.0 {
            bytes.release(bytes.len());
        }
    }
}

/// A Parquet ledger's `item_id`, `product` and `reference`, as text (a
/// missing optional column: all missing). Read a slice of rows at a time,
/// each slice a chunk: read whole and made one chunk, the columns took
/// twice their size again while they were read, at the start of the
/// documents, when the night holds the most (180 MB more at a million
/// debtors, BENCHMARKS.md, 2026-12-02, seventh).
fn read_parquet_texts(
    path: &Path,
    file: &str,
    slice: usize,
) -> Result<[StringChunked; 3], IngestError> {
    let parquet = ParquetRows::open(path, file)?;
    let present = present_texts(&parquet);
    let mut out = TEXT_COLUMNS.map(|name| StringChunked::full_null(name.into(), 0));
    for (start, len) in parquet.slices(slice) {
        if len == 0 {
            continue;
        }
        let texts = texts_of_slice(&parquet, &present, start, len)?;
        for (k, c) in texts.into_iter().enumerate() {
            out[k].append_owned(c).map_err(|e| unparseable(file, e))?;
        }
    }
    Ok(out)
}

const TEXT_COLUMNS: [&str; 3] = ["item_id", "product", "reference"];

/// Of [`TEXT_COLUMNS`], those in a Parquet file.
fn present_texts(parquet: &ParquetRows) -> Vec<String> {
    TEXT_COLUMNS
        .iter()
        .filter(|n| {
            parquet
                .metadata
                .schema()
                .fields()
                .iter()
                .any(|f| f.name() == **n)
        })
        .map(|n| (*n).to_owned())
        .collect()
}

/// Rows `start..start + len` of [`TEXT_COLUMNS`] (`present` of them in the
/// file, the others all missing), as text.
fn texts_of_slice(
    parquet: &ParquetRows,
    present: &[String],
    start: usize,
    len: usize,
) -> Result<[StringChunked; 3], IngestError> {
    let df = parquet.slice(start, len, Some(present.to_vec()))?;
    let n = df.height();
    let t = as_text_but(df, parquet.file, 1 + start, &[])?;
    Ok(TEXT_COLUMNS.map(|name| match t.col(name) {
        Some(c) => c.clone(),
        None => StringChunked::full_null(name.into(), n),
    }))
}

/// Slices of a Parquet ledger's texts held at once by [`SlicedTexts`].
const HELD_SLICES: usize = 4;

/// A Parquet ledger's [`TEXT_COLUMNS`] for the documents, read a slice
/// (a row group) at a time when a row of it is asked for, and dropped
/// when [`HELD_SLICES`] newer ones are held. Read whole, a million
/// debtors' 4.5 million items held 216 MB of text through the documents,
/// where a CSV ledger's are read from the mapped file and given back; at
/// ten million debtors it would be 2 GB.
///
/// Documents go through accounts in debtor order, and a ledger is
/// usually written in that order too, so each slice is read once. Asked
/// for rows all over the file (a ledger in another order), it would read
/// slices again and again: once the slices were read twice over, every
/// slice read is kept, as when read whole.
pub struct SlicedTexts {
    path: std::path::PathBuf,
    file: String,
    present: Vec<String>,
    /// Each slice's first row and rows.
    bounds: Vec<(usize, usize)>,
    /// Each slice's texts while held.
    held: Vec<std::sync::Mutex<Option<std::sync::Arc<[StringChunked; 3]>>>>,
    /// The slices held, oldest first, and how many were read so far.
    order: std::sync::Mutex<(std::collections::VecDeque<usize>, usize)>,
    /// The first error reading a slice, reported by [`SlicedTexts::failed`]:
    /// the rows asked for meanwhile have no texts.
    error: std::sync::Mutex<Option<String>>,
}

impl SlicedTexts {
    /// The reader of a ledger the night read as `rows` rows: an error when
    /// the file no longer has as many.
    fn open(path: &Path, rows: usize) -> Result<SlicedTexts, String> {
        SlicedTexts::open_in(path, rows, PARQUET_SLICE)
    }

    /// [`SlicedTexts::open`], in slices of about `slice` rows.
    fn open_in(path: &Path, rows: usize, slice: usize) -> Result<SlicedTexts, String> {
        let file = display_path(path);
        let again = " (read again for the items' ids, products and references)";
        let parquet = ParquetRows::open(path, &file)
            .map_err(|e| format!("{}{again}", crate::error_line(&e)))?;
        if parquet.rows != rows {
            return Err(format!(
                "{file}: had {rows} rows when the night read it and {} now{again}: an input must not change during the night",
                parquet.rows
            ));
        }
        let bounds = parquet.slices(slice);
        Ok(SlicedTexts {
            present: present_texts(&parquet),
            held: bounds.iter().map(|_| Default::default()).collect(),
            bounds,
            order: Default::default(),
            error: Default::default(),
            path: path.to_owned(),
            file,
        })
    }

    /// Row `row`'s texts; all missing when its slice could not be read
    /// (see [`SlicedTexts::failed`]).
    fn row(&self, row: usize) -> [Option<String>; 3] {
        let k = self.bounds.partition_point(|&(start, _)| start <= row);
        let Some(k) = k.checked_sub(1) else {
            return [None, None, None];
        };
        let Some(texts) = self.slice(k) else {
            return [None, None, None];
        };
        let at = row - self.bounds[k].0;
        texts.each_ref().map(|c| c.get(at).map(str::to_owned))
    }

    fn slice(&self, k: usize) -> Option<std::sync::Arc<[StringChunked; 3]>> {
        let slot = |k: usize| self.held[k].lock().unwrap_or_else(|e| e.into_inner());
        // Held while the slice is read: the other threads that want it
        // wait for this read rather than make their own.
        let mut held = slot(k);
        if let Some(texts) = &*held {
            return Some(texts.clone());
        }
        // Read on a thread of its own, which this one waits for. Polars
        // reads on its pool, and a thread of the night's pool waiting for
        // it runs other documents meanwhile: they asked for this slice
        // too, and each read it again inside the one before, until the
        // stack overflowed.
        let read = std::thread::scope(|s| s.spawn(|| self.read(k)).join())
            .unwrap_or_else(|_| Err("internal error: the thread reading it panicked".into()));
        let texts = match read {
            Ok(texts) => std::sync::Arc::new(texts),
            Err(e) => {
                let mut error = self.error.lock().unwrap_or_else(|e| e.into_inner());
                error.get_or_insert(e);
                return None;
            }
        };
        *held = Some(texts.clone());
        drop(held);
        // The oldest slices are dropped. A thread holds no slot while it
        // waits for the order, so none waits for the other.
        let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        order.0.push_back(k);
        order.1 += 1;
        let everywhere = order.1 > 2 * self.bounds.len();
        while !everywhere && order.0.len() > HELD_SLICES {
            if let Some(old) = order.0.pop_front() {
                if old != k {
                    *slot(old) = None;
                }
            }
        }
        Some(texts)
    }

    /// Slice `k`'s texts, read from the file.
    fn read(&self, k: usize) -> Result<[StringChunked; 3], String> {
        let (start, len) = self.bounds[k];
        let again = "read again for the items' ids, products and references";
        let parquet = ParquetRows::open(&self.path, &self.file)
            .map_err(|e| format!("{} ({again})", crate::error_line(&e)))?;
        let texts = texts_of_slice(&parquet, &self.present, start, len)
            .map_err(|e| format!("{} ({again})", crate::error_line(&e)))?;
        if texts[0].len() != len {
            return Err(format!(
                "{}: rows {}-{} were {len} rows when first read and {} when {again}: an input must not change during the night",
                self.file,
                1 + start,
                start + len,
                texts[0].len()
            ));
        }
        Ok(texts)
    }

    /// The first error reading a slice, if any.
    fn failed(&self) -> PolarsResult<()> {
        match &*self.error.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(PolarsError::ComputeError(e.clone().into())),
            None => Ok(()),
        }
    }
}

/// The texts of the items frame's rows (item id, product, reference),
/// wherever they are: in the frame, or in the ledger ([`LedgerTexts`]).
pub struct ItemTexts<'a> {
    columns: [&'a StringChunked; 3],
    row_at: &'a UInt64Chunked,
    ledger: Option<&'a LedgerTexts>,
    /// A Parquet ledger's columns, read again.
    parquet: Option<&'a [StringChunked; 3]>,
    /// A Parquet ledger's columns, read again a slice at a time.
    sliced: Option<&'a SlicedTexts>,
}

impl<'a> ItemTexts<'a> {
    /// The texts for the documents, read with [`ItemTexts::owned`]: a
    /// Parquet ledger's a slice at a time (see [`SlicedTexts`]).
    pub fn of(inputs: &'a Inputs) -> PolarsResult<ItemTexts<'a>> {
        ItemTexts::read(&inputs.items, inputs.ledger_texts.as_ref(), true)
    }

    /// Row `i`'s item id, product and reference, as [`ItemTexts::get`]
    /// gives them, but owned: a slice read a slice at a time may be
    /// dropped once they are copied out.
    pub fn owned(&self, i: usize) -> [Option<String>; 3] {
        match (self.row_at.get(i), self.sliced) {
            (Some(row), Some(sliced)) => sliced.row(row as usize),
            _ => self.get(i).map(|t| t.map(str::to_owned)),
        }
    }

    /// An error that left rows without their texts, if any: the documents
    /// made since must not be used.
    pub fn failed(&self) -> PolarsResult<()> {
        self.sliced.map_or(Ok(()), SlicedTexts::failed)
    }

    /// The texts with a Parquet ledger's read whole, read with
    /// [`ItemTexts::get`].
    fn new(items: &'a DataFrame, ledger: Option<&'a LedgerTexts>) -> PolarsResult<ItemTexts<'a>> {
        ItemTexts::read(items, ledger, false)
    }

    fn read(
        items: &'a DataFrame,
        ledger: Option<&'a LedgerTexts>,
        sliced: bool,
    ) -> PolarsResult<ItemTexts<'a>> {
        let s = |name: &str| -> PolarsResult<&'a StringChunked> { items.column(name)?.str() };
        let row_at = items.column("row_at")?.u64()?;
        // Read again only when some row's texts are in the file.
        let in_file = ledger.filter(|_| row_at.null_count() < row_at.len());
        let (parquet, sliced) = match (in_file, sliced) {
            (Some(l), true) => (None, l.sliced()?),
            (Some(l), false) => (l.columns()?, None),
            (None, _) => (None, None),
        };
        Ok(ItemTexts {
            columns: [s("item_id")?, s("product")?, s("reference")?],
            row_at,
            ledger,
            parquet,
            sliced,
        })
    }

    /// Gives back the memory of the ledger's pages read so far (see
    /// [`LedgerTexts::forget`]).
    pub fn forget(&self) {
        if let Some(ledger) = self.ledger {
            ledger.forget();
        }
    }

    /// Row `i`'s item id, product and reference.
    pub fn get(&self, i: usize) -> [Option<&'a str>; 3] {
        match (self.row_at.get(i), self.parquet, self.ledger) {
            (Some(row), Some(columns), _) => columns.each_ref().map(|c| c.get(row as usize)),
            (Some(at), None, Some(ledger)) => ledger.row(at as usize),
            _ => self.columns.map(|c| c.get(i)),
        }
    }
}

/// Where a ledger's columns are, read from a header with no quote in it.
struct PlainHeader {
    /// How many fields every row has.
    width: usize,
    /// The fields of [`LEDGER_COLUMNS`], in that order.
    required: [usize; 7],
    /// The fields of [`LEDGER_OPTIONAL`], in that order, where present.
    optional: [Option<usize>; 2],
}

impl PlainHeader {
    /// `None` when a required column is missing: the general reading then
    /// says so.
    fn read(header: &str) -> Option<PlainHeader> {
        let line = header.strip_suffix('\n').unwrap_or(header);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.contains(['"', '\r']) {
            return None;
        }
        let names: Vec<&str> = line.split(',').collect();
        let at = |name: &str| names.iter().position(|n| *n == name);
        let mut required = [0; 7];
        for (slot, name) in required.iter_mut().zip(LEDGER_COLUMNS) {
            *slot = at(name)?;
        }
        let mut optional = [None; 2];
        for (slot, name) in optional.iter_mut().zip(LEDGER_OPTIONAL) {
            *slot = at(name);
        }
        Some(PlainHeader {
            width: names.len(),
            required,
            optional,
        })
    }
}

/// A piece of a plain ledger is split into this many bytes at a time, to
/// be checked in parallel.
const PLAIN_CHUNK: usize = 4 << 20;

/// Checks whole rows of a CSV ledger that hold no quote character and no
/// carriage return other than before a newline. Such text is fields
/// between commas and rows between newlines, nothing more (RFC 4180), so
/// it is split where it lies and checked at once, without building a
/// table of texts first: that table, and gathering its chunks into one,
/// were most of the time of a ledger's reading.
///
/// `None` when the text is not plain, or has a row the general reading
/// treats in its own way (an empty row, a row with another number of
/// fields than the header, a value longer than [`MAX_FIELD`]): that
/// reading then reads it, so the result never depends on the path.
fn check_plain_piece(
    Piece {
        bytes,
        at,
        first_row,
    }: Piece<'_>,
    h: &PlainHeader,
    name: &str,
    debtors: &Debtors,
    rejects: &mut Vec<Reject>,
    chunk: usize,
) -> Option<Checked> {
    let bounds = chunk_bounds(bytes, chunk);
    let parts: Vec<Option<PlainPart>> = bounds
        .par_windows(2)
        .map(|w| plain_chunk(&bytes[w[0]..w[1]], at + w[0], h, name, debtors))
        .collect();
    let mut parts: Vec<PlainPart> = parts.into_iter().collect::<Option<_>>()?;
    let n: usize = parts.iter().map(|p| p.part.mask.len()).sum();
    let mut bad = 0;
    let mut row = first_row;
    // Given to `rejects` only once the piece is whole: a piece that falls
    // back to the general reading must not leave its rejects behind twice.
    let mut found = Vec::new();
    for p in &mut parts {
        // Rows were numbered from 0 in each chunk.
        found.extend(p.part.rejects.drain(..).map(|mut r| {
            r.row += row;
            r
        }));
        bad += p.part.bad_rows;
        row += p.part.mask.len();
    }
    let joined = Joined::of(&parts, |p| &p.part, || Some(cat(&parts, |p| &p.row_at)));
    // The texts stay in the ledger (see [`LedgerTexts`]).
    let none = |name: &str| Column::full_null(name.into(), n, &DataType::String);
    let texts = [
        none("item_id"),
        none(LEDGER_OPTIONAL[0]),
        none(LEDGER_OPTIONAL[1]),
    ];
    let checked = joined.checked(n, texts, bad).ok()?;
    rejects.append(&mut found);
    Some(checked)
}

/// One column of parts checked apart, joined in their order.
fn cat<P, T: Copy>(parts: &[P], of: impl Fn(&P) -> &[T]) -> Vec<T> {
    let mut all = Vec::with_capacity(parts.iter().map(|p| of(p).len()).sum());
    for p in parts {
        all.extend_from_slice(of(p));
    }
    all
}

/// The columns of a ledger's parts, checked apart, joined in their order.
struct Joined {
    /// Every part's columns (its rejects and count taken before).
    all: LedgerPart,
    /// Where each row is in the file, when the texts are left there: a
    /// CSV row's first byte, a Parquet row's number from 0.
    row_at: Option<Vec<u64>>,
}

impl Joined {
    /// Each column joined on a thread of its own: one after the other,
    /// the joins were the serial part of a CSV piece, and a third of a
    /// Parquet slice's check, with the other core idle.
    fn of<P: Sync>(
        parts: &[P],
        part: impl Fn(&P) -> &LedgerPart + Sync,
        row_at: impl FnOnce() -> Option<Vec<u64>> + Send,
    ) -> Joined {
        let (mut mask, mut accounts, mut id_hashes) = (Vec::new(), Vec::new(), Vec::new());
        let (mut amounts, mut opens, mut issued, mut due) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut rows = None;
        let part = &part;
        rayon::scope(|s| {
            s.spawn(|_| mask = cat(parts, |p| &part(p).mask));
            s.spawn(|_| accounts = cat(parts, |p| &part(p).accounts));
            s.spawn(|_| amounts = cat(parts, |p| &part(p).amounts));
            s.spawn(|_| opens = cat(parts, |p| &part(p).opens));
            s.spawn(|_| issued = cat(parts, |p| &part(p).issued));
            s.spawn(|_| due = cat(parts, |p| &part(p).due));
            s.spawn(|_| id_hashes = cat(parts, |p| &part(p).id_hashes));
            s.spawn(|_| rows = row_at());
        });
        Joined {
            all: LedgerPart {
                mask,
                accounts,
                amounts,
                opens,
                issued,
                due,
                id_hashes,
                ..LedgerPart::default()
            },
            row_at: rows,
        }
    }

    /// The checked rows, with their texts (item id, product, reference)
    /// as given.
    fn checked(self, n: usize, texts: [Column; 3], bad: usize) -> PolarsResult<Checked> {
        let [item_id, product, reference] = texts;
        let all = self.all;
        let row_at = match self.row_at {
            Some(rows) => Column::new("row_at".into(), rows),
            None => Column::full_null("row_at".into(), n, &DataType::UInt64),
        };
        let cols = vec![
            item_id,
            Column::new("amount".into(), all.amounts),
            Column::new("open_amount".into(), all.opens),
            Column::new("issued_on".into(), all.issued),
            Column::new("due_on".into(), all.due),
            Column::new("account".into(), all.accounts),
            product,
            reference,
            row_at,
        ];
        Ok(Checked {
            df: DataFrame::new(n, cols)?,
            mask: all.mask,
            bad,
            id_hashes: vec![all.id_hashes],
        })
    }
}

/// A piece of a ledger's rows: its bytes, where they start in the
/// ledger's bytes, and the row number of its first row.
struct Piece<'a> {
    bytes: &'a [u8],
    at: usize,
    first_row: usize,
}

/// One chunk of a plain piece, checked: the row numbers of its rejects
/// count from 0.
struct PlainPart {
    part: LedgerPart,
    /// Where each row starts in the ledger's bytes.
    row_at: Vec<u64>,
}

/// Calls `row(j, fields)` for each row `j` (from 0) of plain CSV text:
/// UTF-8, no quote, no carriage return but before a newline, no empty
/// row, `width` fields a row, none longer than [`MAX_FIELD`]. `None` as
/// soon as the text is not that: the general reading then takes it, so
/// that the result never depends on the path.
fn plain_rows<'v>(
    bytes: &'v [u8],
    width: usize,
    mut row: impl FnMut(usize, &[&'v str]),
) -> Option<()> {
    let text = simdutf8::basic::from_utf8(bytes).ok()?;
    if memchr::memchr(b'"', bytes).is_some()
        || memchr::memchr_iter(b'\r', bytes).any(|i| bytes.get(i + 1) != Some(&b'\n'))
    {
        return None;
    }
    let mut fields: Vec<&str> = Vec::with_capacity(width);
    // One pass over the bytes finds both the commas and the newlines.
    let mut from = 0;
    let mut j = 0;
    let mut end_row = |fields: &mut Vec<&'v str>, at: usize, from: usize| -> Option<()> {
        // The carriage return of a `\r\n` row end.
        let last = text[from..at].strip_suffix('\r').unwrap_or(&text[from..at]);
        fields.push(last);
        if fields.len() == 1 && last.is_empty() {
            // An empty row.
            return None;
        }
        if fields.len() != width || fields.iter().any(|f| f.len() > MAX_FIELD) {
            return None;
        }
        row(j, fields);
        j += 1;
        fields.clear();
        Some(())
    };
    // Found with SIMD, sixteen bytes and more at a step: looked at byte
    // by byte, the ledger's 350 MB took a third of a second of CPU.
    for i in memchr::memchr2_iter(b',', b'\n', bytes) {
        if bytes[i] == b',' {
            fields.push(&text[from..i]);
        } else {
            end_row(&mut fields, i, from)?;
        }
        from = i + 1;
    }
    // A last row without a newline.
    if from < bytes.len() || !fields.is_empty() {
        end_row(&mut fields, bytes.len(), from)?;
    }
    Some(())
}

/// Where chunks of `bytes` end for the threads: after a newline near each
/// multiple of `chunk`, and at the end.
fn chunk_bounds(bytes: &[u8], chunk: usize) -> Vec<usize> {
    let mut bounds = vec![0];
    let mut at = 0;
    while at < bytes.len() {
        let target = at + chunk.max(1);
        let end = match bytes.get(target..).and_then(|b| memchr::memchr(b'\n', b)) {
            Some(i) => target + i + 1,
            None => bytes.len(),
        };
        bounds.push(end);
        at = end;
    }
    bounds
}

/// `at`: where `bytes` start in the ledger's bytes.
fn plain_chunk(
    bytes: &[u8],
    at: usize,
    h: &PlainHeader,
    name: &str,
    debtors: &Debtors,
) -> Option<PlainPart> {
    let rows = rows_about(bytes);
    let mut part = LedgerPart::with_capacity(rows);
    let mut row_at: Vec<u64> = Vec::with_capacity(rows);
    let mut last = LastDebtor::default();
    plain_rows(bytes, h.width, |j, fields| {
        let v = |k: usize| Some(fields[h.required[k]]).filter(|f| !f.is_empty());
        let row = LedgerRow {
            item_id: v(0),
            debtor_id: v(1),
            currency: v(2),
            amount: v(3),
            open_amount: v(4),
            cents: None,
            issued_on: DateValue::Text(v(5)),
            due_on: DateValue::Text(v(6)),
        };
        let mut rc = RowCheck {
            file: name,
            row: j,
            bad: false,
            out: &mut part.rejects,
        };
        let values = check_ledger_row(&mut rc, &row, debtors, &mut last);
        let bad = rc.bad;
        part.push(values, bad);
        if let Some(id) = row.item_id {
            part.id_hashes.push(id_hash(id));
        }
        // The row starts where its first field does.
        row_at.push((at + (fields[0].as_ptr() as usize - bytes.as_ptr() as usize)) as u64);
    })?;
    Some(PlainPart { part, row_at })
}

/// About how many rows `bytes` holds, a little more rather than less,
/// from the length of its first rows: room made for the rows read from a
/// chunk, so that its vectors are not copied as they grow (a copy of a
/// vector is also as many fresh pages for the kernel to hand over). Room
/// never used costs no memory.
fn rows_about(bytes: &[u8]) -> usize {
    let head = &bytes[..bytes.len().min(16 << 10)];
    let rows = memchr::memchr_iter(b'\n', head).count().max(1);
    let per_row = (head.len() / rows).max(1);
    let about = bytes.len() / per_row;
    about + about / 8 + 16
}

/// The last newline of `b` that ends a row: outside quotes, counting from
/// the start of `b`, which is the start of a row (a doubled quote inside a
/// quoted field counts twice and leaves the parity unchanged).
fn last_row_end(b: &[u8]) -> Option<usize> {
    // Most ledgers quote nothing: then the last newline is the end.
    if memchr::memchr(b'"', b).is_none() {
        return memchr::memrchr(b'\n', b);
    }
    let mut quoted = false;
    let mut last = None;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => last = Some(i),
            _ => {}
        }
    }
    last
}

fn read_csv(path: &Path, file: &str, required: &[&str]) -> Result<Table, IngestError> {
    let bytes = crate::FileBytes::open(path).map_err(|source| IngestError::Unreadable {
        file: file.to_owned(),
        source,
    })?;
    // A UTF-8 byte order mark is what Excel writes; accept it.
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    if let Err(e) = std::str::from_utf8(body) {
        let (row, column) = locate_offset(body, e.valid_up_to());
        return Err(IngestError::NotUtf8 {
            file: file.to_owned(),
            row,
            column,
        });
    }
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(IngestError::Empty {
            file: file.to_owned(),
            expected: required.join(", "),
        });
    }
    check_header(body, file)?;
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_raise_if_empty(true)
        .into_reader_with_file_handle(Cursor::new(body))
        .finish()
        .map_err(|e| locate_csv_error(body, file, e))?;
    Ok(Table {
        file: file.to_owned(),
        name: String::new(),
        df,
        first_row: 2,
        long: HashMap::new(),
        paged: Vec::new(),
    })
}

/// The header is read with the csv crate so that a duplicated column is
/// named, instead of Polars quietly renaming it.
fn check_header(body: &[u8], file: &str) -> Result<(), IngestError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body);
    let mut header = csv::StringRecord::new();
    match rdr.read_record(&mut header) {
        Ok(true) => {}
        Ok(false) => {
            return Err(IngestError::Empty {
                file: file.to_owned(),
                expected: String::new(),
            })
        }
        Err(e) => {
            return Err(IngestError::Malformed {
                file: file.to_owned(),
                row: 1,
                message: e.to_string(),
            })
        }
    }
    let mut seen = HashSet::new();
    for (i, name) in header.iter().enumerate() {
        if !seen.insert(name) {
            return Err(IngestError::DuplicateColumn {
                file: file.to_owned(),
                column: name.to_owned(),
                index: i + 1,
            });
        }
    }
    Ok(())
}

/// Polars says what went wrong but not where; the csv crate finds the row.
fn locate_csv_error(body: &[u8], file: &str, err: PolarsError) -> IngestError {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(body);
    let mut rec = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => continue,
            Ok(false) => break,
            Err(e) => {
                let row = e.position().map_or(0, |p| p.record() as usize + 1);
                let message = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!("has {len} fields, the header has {expected_len}"),
                    _ => e.to_string(),
                };
                return IngestError::Malformed {
                    file: file.to_owned(),
                    row,
                    message,
                };
            }
        }
    }
    IngestError::Unparseable {
        file: file.to_owned(),
        message: err.to_string(),
    }
}

/// Row (counting the header as row 1) and 1-based field of a byte offset:
/// the csv crate finds where each record starts, then the fields before the
/// offset are counted, minding quotes.
fn locate_offset(body: &[u8], offset: usize) -> (usize, usize) {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut rec = csv::ByteRecord::new();
    let (mut row, mut start) = (0, 0);
    while let Ok(true) = rdr.read_byte_record(&mut rec) {
        let record_start = rec.position().map_or(0, |p| p.byte() as usize);
        if record_start > offset {
            break;
        }
        row += 1;
        start = record_start;
    }
    let mut column = 1;
    let mut quoted = false;
    for &b in &body[start..offset.min(body.len())] {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => column += 1,
            _ => {}
        }
    }
    (row.max(1), column)
}

fn read_parquet(path: &Path, file: &str) -> Result<Table, IngestError> {
    as_text(read_parquet_frame(path, file)?, file, 1)
}

/// A Parquet file as stored (typed), its column types checked.
fn read_parquet_frame(path: &Path, file: &str) -> Result<DataFrame, IngestError> {
    let reader = ParquetReader::new(open_parquet(path, file)?);
    let df = unpanicked(file, || reader.finish())?.map_err(|e| unparseable(file, e))?;
    checked_parquet_frame(df, file)
}

/// `read()`, a panic of the Parquet reader made an error naming the file:
/// some damaged footers make its thrift decoder panic (a field of the
/// wrong type) where others give an error. Nothing of the panic is
/// printed ([`crate::expected_panic`]).
fn unpanicked<T>(file: &str, read: impl FnOnce() -> T) -> Result<T, IngestError> {
    crate::expected_panic(read).map_err(|_| IngestError::Unparseable {
        file: file.to_owned(),
        message: "the Parquet reader failed on this file (damaged, or not written to the format)"
            .into(),
    })
}

/// A Parquet file read a slice of rows at a time, its footer read once.
struct ParquetRows<'p> {
    path: &'p Path,
    file: &'p str,
    rows: usize,
    metadata: polars::io::parquet::metadata::FileMetadataRef,
}

impl<'p> ParquetRows<'p> {
    fn open(path: &'p Path, file: &'p str) -> Result<ParquetRows<'p>, IngestError> {
        let mut reader = ParquetReader::new(open_parquet(path, file)?);
        let metadata = unpanicked(file, || reader.get_metadata().cloned())?
            .map_err(|e| unparseable(file, e))?;
        Ok(ParquetRows {
            path,
            file,
            rows: metadata.num_rows,
            metadata,
        })
    }

    /// The file's slices of about `target` rows, as (first row, rows),
    /// cut where its row groups meet: a slice that ends inside a row group
    /// decodes that group's pages again for the next one. At a million
    /// debtors, slices of a third of a row group took two to three times
    /// as long to read as the groups whole. Small row groups are joined
    /// until they reach `target`; a row group of more than twice `target`
    /// rows is cut in slices of `target` (memory matters more there). A
    /// file with no rows is one empty slice, read whole, so that its
    /// columns are checked as any file's are.
    fn slices(&self, target: usize) -> Vec<(usize, usize)> {
        let groups: Vec<usize> = self
            .metadata
            .row_groups
            .iter()
            .map(|g| g.num_rows())
            .collect();
        slice_bounds(&groups, self.rows, target)
    }

    /// Rows `start..start + len` as the checks read them: a table of the
    /// columns `shape` knows, as text but those it reads typed.
    fn table(&self, start: usize, len: usize, shape: &Shape) -> Result<Table, IngestError> {
        let frame = self.slice(start, len, None)?;
        let part = as_text_but(frame, self.file, 1 + start, shape.typed)?;
        finish_table(part, self.path, shape.required, shape.optional)
    }

    /// [`ParquetRows::table`], the columns `shape.paged` and
    /// `shape.lengths_only` read from `pages` instead of by Polars: the
    /// first kept as their pages and a span a value, the others only
    /// looked at for values too long. Decoded by Polars, a ledger's five
    /// text columns were 22 million views of 16 bytes, fresh pages read
    /// once. The slice is read as `table` reads it when it is not made of
    /// whole row groups (a group over twice the slice's size is cut) or a
    /// page of these columns does not decode.
    fn table_from_pages(
        &self,
        start: usize,
        len: usize,
        shape: &Shape,
        pages: &pages::PageFile,
    ) -> Result<Table, IngestError> {
        let Some(cols) = pages.rows(start, len) else {
            return self.table(start, len, shape);
        };
        let names: Vec<&'static str> = shape
            .paged
            .iter()
            .chain(shape.lengths_only)
            .copied()
            .collect();
        // Values too long, by row: those of the paged columns come before
        // Polars' columns, those of the optional ones after, as in a
        // table read whole.
        let mut before: HashMap<usize, Vec<(String, String)>> = HashMap::new();
        let mut after: HashMap<usize, Vec<(String, String)>> = HashMap::new();
        for (k, c) in cols.iter().enumerate() {
            let Some(c) = c else { continue };
            if !c.any_longer(0, len, MAX_FIELD) {
                continue;
            }
            let into = if k < shape.paged.len() {
                &mut before
            } else {
                &mut after
            };
            for row in 0..len {
                let v = c.get(row);
                if too_long(v) {
                    into.entry(row)
                        .or_default()
                        .push((names[k].to_owned(), v.to_owned()));
                }
            }
        }
        let columns: Vec<String> = self
            .metadata
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().to_string())
            .filter(|n| !names.contains(&n.as_str()))
            .collect();
        if columns.is_empty() {
            return self.table(start, len, shape);
        }
        let frame = self.slice(start, len, Some(columns))?;
        let part = as_text_but(frame, self.file, 1 + start, shape.typed)?;
        let required: Vec<&str> = shape
            .required
            .iter()
            .filter(|n| !shape.paged.contains(n))
            .copied()
            .collect();
        let mut table = finish_table(part, self.path, &required, shape.optional)?;
        if table.height() != len {
            return self.table(start, len, shape);
        }
        for (row, mut long) in before {
            long.extend(table.long.remove(&row).unwrap_or_default());
            table.long.insert(row, long);
        }
        for (row, long) in after {
            table.long.entry(row).or_default().extend(long);
        }
        table.paged = shape
            .paged
            .iter()
            .copied()
            .zip(cols)
            .filter_map(|(name, c)| Some((name, c?)))
            .collect();
        Ok(table)
    }

    /// Rows `start..start + len` (`columns` only, when given), read from
    /// the file when wanted, of the types the checks read.
    fn slice(
        &self,
        start: usize,
        len: usize,
        columns: Option<Vec<String>>,
    ) -> Result<DataFrame, IngestError> {
        let mut reader = ParquetReader::new(open_parquet(self.path, self.file)?);
        reader.set_metadata(self.metadata.clone());
        let frame = reader
            .with_columns(columns)
            .with_slice((self.rows > 0).then_some((start, len)))
            .finish()
            .map_err(|e| unparseable(self.file, e))?;
        checked_parquet_frame(frame, self.file)
    }
}

/// [`ParquetRows::slices`] of a file of `rows` rows in row groups of
/// `groups` rows.
fn slice_bounds(groups: &[usize], rows: usize, target: usize) -> Vec<(usize, usize)> {
    let target = target.max(1);
    let mut out = Vec::new();
    if groups.iter().sum::<usize>() != rows {
        // Not what a sound file says: slices of `target`, cut anywhere.
        out.extend((0..rows).step_by(target).map(|s| (s, target.min(rows - s))));
    } else {
        let (mut start, mut len) = (0, 0);
        for &g in groups {
            if g > target.saturating_mul(2) {
                if len > 0 {
                    out.push((start, len));
                    (start, len) = (start + len, 0);
                }
                out.extend(
                    (0..g)
                        .step_by(target)
                        .map(|s| (start + s, target.min(g - s))),
                );
                start += g;
                continue;
            }
            len += g;
            if len >= target {
                out.push((start, len));
                (start, len) = (start + len, 0);
            }
        }
        if len > 0 {
            out.push((start, len));
        }
    }
    if out.is_empty() {
        out.push((0, 0));
    }
    out
}

fn open_parquet(path: &Path, file: &str) -> Result<std::fs::File, IngestError> {
    std::fs::File::open(path).map_err(|source| IngestError::Unreadable {
        file: file.to_owned(),
        source,
    })
}

fn unparseable(file: &str, e: PolarsError) -> IngestError {
    IngestError::Unparseable {
        file: file.to_owned(),
        message: e.to_string(),
    }
}

/// A frame read from Parquet, refused when empty of columns or when a
/// column's type is not one the checks read.
fn checked_parquet_frame(df: DataFrame, file: &str) -> Result<DataFrame, IngestError> {
    if df.height() == 0 && df.width() == 0 {
        return Err(IngestError::Empty {
            file: file.to_owned(),
            expected: String::new(),
        });
    }
    // Binary floats are refused outright: an amount stored as a float has
    // already lost its exactness upstream.
    for c in df.columns() {
        let dtype = c.dtype();
        let ok = matches!(
            dtype,
            DataType::String
                | DataType::Date
                | DataType::Decimal(_, _)
                | DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64
                | DataType::Boolean
                | DataType::Null
        );
        if !ok {
            return Err(IngestError::WrongType {
                file: file.to_owned(),
                column: c.name().to_string(),
                dtype: dtype.to_string(),
                expected: "text, a date, a decimal or an integer (never a float)",
            });
        }
    }
    Ok(df)
}

/// Every column as text, for the same checks as CSV; `first_row` is the
/// row number of the frame's first row.
fn as_text(df: DataFrame, file: &str, first_row: usize) -> Result<Table, IngestError> {
    as_text_but(df, file, first_row, &[])
}

/// [`as_text`], but the columns named in `typed` keep their type where
/// the checks can read it as its text would have been read: a date column
/// whose days are all ones [`dates::iso_text`] writes, a decimal column
/// (see [`AmountColumn`]).
fn as_text_but(
    df: DataFrame,
    file: &str,
    first_row: usize,
    typed: &[&str],
) -> Result<Table, IngestError> {
    let mut cols = Vec::with_capacity(df.width());
    for c in df.columns() {
        if matches!(c.dtype(), DataType::Decimal(_, _)) && typed.contains(&c.name().as_str()) {
            cols.push(c.clone());
            continue;
        }
        if c.dtype() == &DataType::Date && typed.contains(&c.name().as_str()) {
            // The extremes only: every day between two writable ones is.
            let writable = c
                .date()
                .map(|d| {
                    [d.phys.min(), d.phys.max()]
                        .into_iter()
                        .flatten()
                        .all(dates::iso_writable)
                })
                .unwrap_or(false);
            if writable {
                cols.push(c.clone());
                continue;
            }
        }
        if c.dtype() == &DataType::Date {
            if let Some(s) = date_text(c) {
                cols.push(s);
                continue;
            }
        }
        let s = c
            .cast(&DataType::String)
            .map_err(|e| IngestError::Unparseable {
                file: file.to_owned(),
                message: format!("column `{}`: {e}", c.name()),
            })?;
        cols.push(s);
    }
    let df = DataFrame::new(df.height(), cols).map_err(|e| IngestError::Unparseable {
        file: file.to_owned(),
        message: e.to_string(),
    })?;
    Ok(Table {
        file: file.to_owned(),
        name: String::new(),
        df,
        first_row,
        long: HashMap::new(),
        paged: Vec::new(),
    })
}

/// A `Date` column as ISO text, written by [`dates::iso_text`]; `None` when
/// a day falls outside what that writes (Polars' own cast then does it).
fn date_text(c: &Column) -> Option<Column> {
    let days = c.cast(&DataType::Int32).ok()?;
    let days = days.i32().ok()?;
    let mut out: Vec<Option<dates::IsoDate>> = Vec::with_capacity(days.len());
    for d in days.iter() {
        match d {
            Some(d) => out.push(Some(dates::iso_text(d)?)),
            None => out.push(None),
        }
    }
    let s: StringChunked = out.into_iter().collect();
    Some(s.with_name(c.name().clone()).into_column())
}

/// Collects the problems of one row, so that a row with two bad values
/// shows both but counts once.
struct RowCheck<'a> {
    file: &'a str,
    row: usize,
    bad: bool,
    out: &'a mut Vec<Reject>,
}

impl<'a> RowCheck<'a> {
    /// Starts the checks of data row `i` of `t`, its over-long values
    /// already rejected. Inlined: returned through memory, the check's
    /// first read of `bad` waited on the byte just stored there, 3 % of
    /// the samples of a Parquet ingest (about 1 % once inlined).
    #[inline(always)]
    fn start(t: &'a Table, i: usize, out: &'a mut Vec<Reject>) -> RowCheck<'a> {
        let mut rc = RowCheck {
            file: &t.name,
            row: t.row(i),
            bad: false,
            out,
        };
        rc.lengths(t, i);
        rc
    }

    /// Rejects the row's over-long values, if any.
    fn lengths(&mut self, t: &Table, i: usize) {
        if let Some(cols) = t.long.get(&i) {
            for (c, v) in cols {
                self.too_long(c, v);
            }
        }
    }

    /// Rejects a value [`too_long`].
    fn too_long(&mut self, column: &str, v: &str) {
        self.reject(
            column,
            v,
            format!("longer than {MAX_FIELD} characters ({})", v.chars().count()),
        );
    }

    fn reject(&mut self, column: &str, value: &str, reason: impl Into<String>) {
        self.bad = true;
        self.out.push(Reject {
            file: self.file.to_owned(),
            row: self.row,
            column: column.to_owned(),
            value: clip(value),
            reason: reason.into(),
        });
    }

    /// Records a problem with a value without rejecting the row.
    fn note(&mut self, column: &str, value: &str, reason: &str) {
        self.out.push(Reject {
            file: self.file.to_owned(),
            row: self.row,
            column: column.to_owned(),
            value: clip(value),
            reason: reason.to_owned(),
        });
    }

    fn required<'v>(&mut self, column: &str, v: Option<&'v str>) -> &'v str {
        let v = v.unwrap_or("");
        if v.is_empty() {
            self.reject(column, v, "required value is empty");
        }
        v
    }

    fn date(&mut self, column: &str, v: Option<&str>) -> Option<NaiveDate> {
        self.days(column, v).map(dates::from_days)
    }

    fn date_value(&mut self, column: &str, v: DateValue<'_>) -> Option<i32> {
        match v {
            DateValue::Text(v) => self.days(column, v),
            DateValue::Days(Some(d)) => Some(d),
            DateValue::Days(None) => {
                self.required(column, None);
                None
            }
        }
    }

    /// A required `YYYY-MM-DD` date, as days since 1970-01-01.
    fn days(&mut self, column: &str, v: Option<&str>) -> Option<i32> {
        let v = self.required(column, v);
        if v.is_empty() {
            return None;
        }
        let d = dates::parse_days(v);
        if d.is_none() {
            self.reject(column, v, "not a date (expected YYYY-MM-DD)");
        }
        d
    }

    fn amount(&mut self, column: &str, v: Option<&str>) -> Option<Cents> {
        let v = v.unwrap_or("");
        match money::parse_amount(v) {
            Ok(c) => Some(c),
            Err(e) => {
                self.reject(column, v, e.to_string());
                None
            }
        }
    }
}

/// Rejected values are shown, but a 10 MB field is not copied whole.
fn clip(v: &str) -> String {
    const MAX: usize = 200;
    if v.len() <= MAX {
        return v.to_owned();
    }
    let mut end = MAX;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &v[..end])
}

fn is_currency(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// The texts that `values` lists (twice at most) more than once, with how
/// often, their [`id_hash`]es given in parts (those of empty values may be
/// among them). Repeated hashes are found first ([`repeated_hashes`])
/// instead of every value counted in a map: 4.5 million item ids in a map
/// take 200 MB and most of a second; their hashes take 36 MB, and only
/// values whose hash repeats are then counted exactly. The hashes are made
/// where the values are read, in parallel.
fn repeated_among<'v, I: Iterator<Item = &'v str>>(
    hashes: &[Vec<u64>],
    values: impl Fn() -> I,
) -> HashMap<&'v str, u32> {
    let twice = repeated_hashes(hashes);
    let mut counts: HashMap<&str, u32> = HashMap::new();
    if twice.is_empty() {
        return counts;
    }
    for v in values() {
        if !v.is_empty() && twice.contains(&id_hash(v)) {
            *counts.entry(v).or_default() += 1;
        }
    }
    counts.retain(|_, k| *k > 1);
    counts
}

/// The hashes found more than once in `parts`. Each part is split by its
/// hashes' top byte, a part a thread; then each of the 256 buckets
/// (17,000 hashes at a million debtors' 4.5 million items) is sorted on
/// its own, in the cache. Sorted as one array, the 4.5 million hashes took
/// a tenth of a second of the night's wall, both cores busy, after a copy
/// of the parts into one.
fn repeated_hashes(parts: &[Vec<u64>]) -> HashSet<u64> {
    const BUCKETS: usize = 256;
    let split: Vec<Vec<Vec<u64>>> = parts
        .par_iter()
        .map(|part| {
            let mut buckets: Vec<Vec<u64>> = (0..BUCKETS)
                .map(|_| Vec::with_capacity(part.len() / BUCKETS * 9 / 8))
                .collect();
            for &h in part {
                buckets[(h >> 56) as usize].push(h);
            }
            buckets
        })
        .collect();
    (0..BUCKETS)
        .into_par_iter()
        .flat_map_iter(|b| {
            let mut bucket = Vec::with_capacity(split.iter().map(|s| s[b].len()).sum());
            for s in &split {
                bucket.extend_from_slice(&s[b]);
            }
            bucket.sort_unstable();
            let twice: Vec<u64> = bucket
                .windows(2)
                .filter(|w| w[0] == w[1])
                .map(|w| w[0])
                .collect();
            twice
        })
        .collect()
}

/// The debtors file's column `k`, counting the required columns, then the
/// optional ones: the numbering [`check_debtor`] reads values by.
fn debtor_field(k: usize) -> &'static str {
    DEBTOR_COLUMNS
        .iter()
        .chain(DEBTOR_OPTIONAL)
        .nth(k)
        .copied()
        .unwrap_or("")
}

/// Rows of the debtors file are read in slices of this many, in parallel.
const SLICE: usize = 1 << 16;

fn check_debtors(t: &Table, rejects: &mut Vec<Reject>, default_country: &str) -> (Debtors, usize) {
    let n = t.height();
    let starts: Vec<usize> = (0..n).step_by(SLICE).collect();
    let check = |slice: usize, occurrences: &HashMap<&str, u32>| {
        let start = starts[slice];
        Some(check_debtor_rows(
            t,
            start,
            SLICE.min(n - start),
            occurrences,
            default_country,
        ))
    };
    let checked = check_in_slices(starts.len(), check, None, rejects);
    let (debtors, _, bad) = checked.expect("a table's slices are always read");
    (debtors, bad)
}

/// Rows `start..start + len` of a debtors table checked: the part, and
/// each row's id.
fn check_debtor_rows<'t>(
    t: &'t Table,
    start: usize,
    len: usize,
    occurrences: &HashMap<&str, u32>,
    default_country: &str,
) -> (DebtorsPart, Vec<&'t str>) {
    let cols: Vec<SliceTexts> = DEBTOR_COLUMNS
        .iter()
        .chain(DEBTOR_OPTIONAL)
        .map(|name| SliceTexts::of(t.col(name), start, len))
        .collect();
    let mut out = Vec::with_capacity(len);
    let mut rejects = Vec::new();
    let mut ids = Vec::with_capacity(len);
    for j in 0..len {
        let value = |k: usize| cols[k].get(j);
        ids.push(value(0));
        out.push(check_debtor(
            RowCheck::start(t, start + j, &mut rejects),
            value,
            occurrences,
            default_country,
        ));
    }
    ((out, rejects), ids)
}

/// One column's texts over a slice of a table's rows, `""` for a null.
enum SliceTexts<'t> {
    /// The column's one array (a CSV file's, a Parquet slice's row
    /// group), read where it is, from row `start`: copied out first, the
    /// sixteen columns of 65,536 debtors took 16 MB of fresh pages a
    /// slice.
    Array(&'t <StringType as PolarsDataType>::Array, usize),
    /// A column of several arrays: a value looked up by row number would
    /// search them first, sixteen times a row; read in order instead.
    Read(Vec<&'t str>),
    /// A column read from a Parquet file's pages, from row `start`.
    Paged(&'t pages::TextColumn, usize),
    Missing,
}

impl<'t> SliceTexts<'t> {
    fn of(c: Option<&'t StringChunked>, start: usize, len: usize) -> SliceTexts<'t> {
        match c {
            None => SliceTexts::Missing,
            Some(c) if c.chunks().len() == 1 => {
                SliceTexts::Array(c.downcast_iter().next().expect("one array"), start)
            }
            Some(c) => SliceTexts::Read(texts_in(c, start, len)),
        }
    }

    fn get(&self, j: usize) -> &'t str {
        match self {
            SliceTexts::Array(a, start) => a.get(start + j).unwrap_or(""),
            SliceTexts::Read(texts) => texts[j],
            SliceTexts::Paged(c, start) => c.get(start + j),
            SliceTexts::Missing => "",
        }
    }
}

/// The texts of `c` at rows `start..start + len`, `""` for a null,
/// borrowed from its arrays.
fn texts_in(c: &StringChunked, start: usize, len: usize) -> Vec<&str> {
    let end = start + len;
    let mut out = Vec::with_capacity(len);
    let mut at = 0;
    for arr in c.downcast_iter() {
        let (lo, hi) = (start.max(at), end.min(at + arr.len()));
        for i in lo.saturating_sub(at)..hi.saturating_sub(at) {
            out.push(arr.get(i).unwrap_or(""));
        }
        at += arr.len();
        if at >= end {
            break;
        }
    }
    out
}

/// Checks a debtors file a slice at a time, in parallel, and puts the
/// rows back in file order. Every slice is first checked as if no id
/// repeated, its ids kept; the slices that hold a repeated id (none, in a
/// sound file) are then checked again knowing them, so that each row's
/// rejects come in the order a single pass gives them.
///
/// `check(i, repeated)` checks slice `i`: `None` when it cannot (the plain
/// reading then gives the file up). With `first_row`, each slice numbers
/// its rows from 0, and they are made the file's, the first data row being
/// `first_row`. Returns the debtors, the rows read and the rows rejected.
fn check_in_slices<'v>(
    slices: usize,
    check: impl Fn(usize, &HashMap<&'v str, u32>) -> Option<(DebtorsPart, Vec<&'v str>)> + Sync,
    first_row: Option<usize>,
    rejects: &mut Vec<Reject>,
) -> Option<(Debtors, usize, usize)> {
    let none = HashMap::new();
    let first: Option<Vec<(DebtorsPart, Vec<&str>)>> = (0..slices)
        .into_par_iter()
        .map(|i| check(i, &none))
        .collect();
    let (parts, ids) = first?.into_iter().unzip();
    let again = |i: usize, occurrences: &HashMap<&'v str, u32>| {
        check(i, occurrences).map(|(part, _)| part).ok_or(())
    };
    finish_debtors(parts, ids, again, first_row, rejects).ok()
}

/// The end of [`check_in_slices`], once every slice was checked as if no
/// id repeated: `parts` and `ids` are the slices' checks and ids, and
/// `again(i, repeated)` checks slice `i` again knowing the repeated ids.
fn finish_debtors<'v, E: Send>(
    mut parts: Vec<DebtorsPart>,
    ids: Vec<Vec<&'v str>>,
    again: impl Fn(usize, &HashMap<&'v str, u32>) -> Result<DebtorsPart, E> + Sync,
    first_row: Option<usize>,
    rejects: &mut Vec<Reject>,
) -> Result<(Debtors, usize, usize), E> {
    // Hashed in parallel: a million ids hashed on one thread held up the
    // night. The hashes serve the index too.
    let hashes: Vec<Vec<u64>> = ids
        .par_iter()
        .map(|ids| ids.iter().map(|id| id_hash(id)).collect())
        .collect();
    let occurrences = repeated_among(&hashes, || ids.iter().flatten().copied());
    if !occurrences.is_empty() {
        parts
            .par_iter_mut()
            .zip(ids.par_iter())
            .enumerate()
            .filter(|(_, (_, ids))| ids.iter().any(|id| occurrences.contains_key(id)))
            .map(|(i, (part, _))| {
                *part = again(i, &occurrences)?;
                Ok(())
            })
            .collect::<Result<Vec<()>, E>>()?;
    }
    drop(ids);
    let n: usize = parts.iter().map(|p| p.0.len()).sum();
    let mut row = first_row.unwrap_or(0);
    let mut lists = Vec::with_capacity(parts.len());
    for (list, found) in parts {
        rejects.extend(found.into_iter().map(|mut r| {
            if first_row.is_some() {
                r.row += row;
            }
            r
        }));
        row += list.len();
        lists.push(list);
    }
    let (kept, kept_hashes) = gather(lists, hashes);
    // Every copy of a repeated id was rejected above.
    let bad_rows = n - kept.len();
    Ok((Debtors::of_unique(kept, &kept_hashes), n, bad_rows))
}

/// The debtors of each slice that were not rejected, in order, in one
/// vector, and their hashes: each slice moved to its place on a thread of
/// its own. Moved on one thread, a million debtors (96 MB, fresh pages
/// for the kernel to zero) held the other core idle.
fn gather(lists: Vec<Vec<Option<Debtor>>>, hashes: Vec<Vec<u64>>) -> (Vec<Debtor>, Vec<u64>) {
    let counts: Vec<usize> = lists
        .par_iter()
        .map(|l| l.iter().filter(|d| d.is_some()).count())
        .collect();
    let total: usize = counts.iter().sum();
    let mut kept: Vec<Debtor> = Vec::with_capacity(total);
    let mut kept_hashes = vec![0u64; total];
    let mut places = Vec::with_capacity(counts.len());
    let (mut free, mut free_hashes) = (
        &mut kept.spare_capacity_mut()[..total],
        &mut kept_hashes[..],
    );
    for &c in &counts {
        let (here, rest) = std::mem::take(&mut free).split_at_mut(c);
        let (here_hashes, rest_hashes) = std::mem::take(&mut free_hashes).split_at_mut(c);
        places.push((here, here_hashes));
        (free, free_hashes) = (rest, rest_hashes);
    }
    lists.into_par_iter().zip(hashes).zip(places).for_each(
        |((list, hashes), (place, place_hashes))| {
            let kept = list
                .into_iter()
                .zip(hashes)
                .filter_map(|(d, h)| Some((d?, h)));
            for ((d, h), (slot, slot_hash)) in kept.zip(place.iter_mut().zip(place_hashes)) {
                slot.write(d);
                *slot_hash = h;
            }
        },
    );
    // SAFETY: the first `total` slots were split into one place per slice,
    // as long as that slice's count of kept debtors, and each place was
    // written in full above, by the same filter that counted them.
    unsafe { kept.set_len(total) };
    (kept, kept_hashes)
}

/// One chunk of a debtors file checked: each row's debtor (`None` when
/// rejected), and the chunk's rejects and notes.
type DebtorsPart = (Vec<Option<Debtor>>, Vec<Reject>);

/// Reads a debtors file with no quote anywhere (see [`plain_rows`]) where
/// it lies, without a table of texts: `None` when the file is anything
/// else, for [`read_table`] and [`check_debtors`] to read.
fn read_debtors_plain(
    path: &Path,
    rejects: &mut Vec<Reject>,
    default_country: &str,
    chunk: usize,
) -> Result<Option<(Debtors, FileCount)>, IngestError> {
    if extension(path).as_deref() != Some("csv") {
        return Ok(None);
    }
    let file = display_path(path);
    let bytes = crate::FileBytes::open(path).map_err(|source| IngestError::Unreadable {
        file: file.clone(),
        source,
    })?;
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let Some(end) = memchr::memchr(b'\n', body) else {
        return Ok(None);
    };
    let (header, rows) = body.split_at(end + 1);
    // A quote in the rows is found by `plain_rows`, chunk by chunk, on the
    // threads that read them.
    if rows.is_empty() || header.contains(&b'"') || check_header(header, &file).is_err() {
        return Ok(None);
    }
    let Ok(header) = std::str::from_utf8(header) else {
        return Ok(None);
    };
    let header = header.trim_end_matches('\n');
    let header = header.strip_suffix('\r').unwrap_or(header);
    let names: Vec<&str> = header.split(',').collect();
    let at = |name: &str| names.iter().position(|n| *n == name);
    let mut index = Vec::new();
    for name in DEBTOR_COLUMNS {
        let Some(i) = at(name) else {
            return Ok(None);
        };
        index.push(Some(i));
    }
    index.extend(DEBTOR_OPTIONAL.iter().map(|n| at(n)));
    let width = names.len();
    let t0 = std::time::Instant::now();
    let bounds = chunk_bounds(rows, chunk);
    let name = path
        .file_name()
        .map_or_else(|| file.clone(), |n| n.to_string_lossy().into_owned());
    let check = |i: usize, occurrences: &HashMap<&str, u32>| {
        let slice = &rows[bounds[i]..bounds[i + 1]];
        let about = rows_about(slice);
        let mut out = Vec::with_capacity(about);
        let mut found = Vec::new();
        let mut ids = Vec::with_capacity(about);
        plain_rows(slice, width, |j, f| {
            let value = |k: usize| index[k].map_or("", |i| f[i]);
            ids.push(value(0));
            let rc = RowCheck {
                file: &name,
                row: j,
                bad: false,
                out: &mut found,
            };
            out.push(check_debtor(rc, value, occurrences, default_country));
        })?;
        Some(((out, found), ids))
    };
    let Some(read) = check_in_slices(bounds.len() - 1, check, Some(2), rejects) else {
        return Ok(None);
    };
    Ok(Some(debtors_read(t0, file, name, read)))
}

/// The debtors of a file read apart (`(debtors, rows, rows rejected)`),
/// with their count, the time it took logged.
fn debtors_read(
    t0: std::time::Instant,
    file: String,
    name: String,
    (debtors, rows, rejected): (Debtors, usize, usize),
) -> (Debtors, FileCount) {
    tracing::debug!(ms = t0.elapsed().as_millis() as u64, "debtors read");
    let count = FileCount {
        file,
        name,
        rows,
        rejected,
    };
    (debtors, count)
}

/// Reads a Parquet debtors file a slice of rows (whole row groups) at a
/// time, each slice decoded on a thread of its own while the one before
/// is checked, and dropped once checked. Decoded whole, the sixteen text
/// columns of a million debtors took 380 MB of fresh pages (a third of
/// the stage's CPU was the kernel handing them out) and were checked only
/// once all were decoded.
fn read_debtors_parquet(
    path: &Path,
    rejects: &mut Vec<Reject>,
    default_country: &str,
    slice: usize,
) -> Result<(Debtors, FileCount), IngestError> {
    let t0 = std::time::Instant::now();
    let file = display_path(path);
    let name = path
        .file_name()
        .map_or_else(|| file.clone(), |n| n.to_string_lossy().into_owned());
    let mut slices = ParquetSlices::start_as(path, slice, &DEBTORS_SHAPE);
    let none = HashMap::new();
    let mut parts = Vec::new();
    let mut ids = Vec::new();
    // Where each part's rows are in the file: (first row, rows).
    let mut bounds = Vec::new();
    let mut rows = 0;
    while let Some(table) = slices.next() {
        let table = table?;
        let n = table.height();
        let starts: Vec<usize> = (0..n).step_by(SLICE).collect();
        let checked: Vec<(DebtorsPart, IdTexts)> = starts
            .par_iter()
            .map(|&start| {
                let len = SLICE.min(n - start);
                let (part, ids) = check_debtor_rows(&table, start, len, &none, default_country);
                (part, IdTexts::of(&ids))
            })
            .collect();
        bounds.extend(
            starts
                .iter()
                .map(|&start| (rows + start, SLICE.min(n - start))),
        );
        for (part, id_texts) in checked {
            parts.push(part);
            ids.push(id_texts);
        }
        rows += n;
    }
    let (waited, checking) = (slices.waited, t0.elapsed().saturating_sub(slices.waited));
    drop(slices);
    // A repeated id (an unsound file) has the slices that hold it read
    // again from the file, to be checked knowing it.
    let again = |i: usize, occurrences: &HashMap<&str, u32>| {
        let (start, len) = bounds[i];
        let table = read_again(path, &file, start, len)?;
        Ok(check_debtor_rows(&table, 0, len, occurrences, default_country).0)
    };
    let id_lists: Vec<Vec<&str>> = ids.iter().map(IdTexts::ids).collect();
    let t = std::time::Instant::now();
    let read = finish_debtors(parts, id_lists, again, None, rejects)?;
    tracing::debug!(
        wait_ms = waited.as_millis() as u64,
        check_ms = checking.as_millis() as u64,
        finish_ms = t.elapsed().as_millis() as u64,
        "parquet debtors slices"
    );
    Ok(debtors_read(t0, file, name, read))
}

/// Reads a Parquet debtors file from its pages (see [`pages`]), a row
/// group at a time, its rows checked in parallel slices: `None` when the
/// file is not of the plain shape read that way, and nothing was checked
/// (the caller then reads it through Polars, [`read_debtors_parquet`]).
fn read_debtors_pages(
    path: &Path,
    rejects: &mut Vec<Reject>,
    default_country: &str,
) -> Result<Option<(Debtors, FileCount)>, IngestError> {
    let t0 = std::time::Instant::now();
    let Some(pages) = pages::PageFile::open(path, DEBTOR_COLUMNS, DEBTOR_OPTIONAL) else {
        return Ok(None);
    };
    let file = display_path(path);
    let name = path
        .file_name()
        .map_or_else(|| file.clone(), |n| n.to_string_lossy().into_owned());
    let none = HashMap::new();
    let mut parts = Vec::new();
    let mut ids = Vec::new();
    // Each part's row group, first row in it, rows, and the group's first
    // row in the file.
    let mut bounds = Vec::new();
    let mut first = 0;
    let (mut waited, mut checking) = (Vec::new(), std::time::Duration::ZERO);
    let groups = pages.groups();
    // Each row group is decoded on a thread of its own while the one
    // before is checked; the first on all threads, nothing to check yet.
    let decoded = std::thread::scope(|scope| {
        let pages = &pages;
        let mut next = Some(scope.spawn(move || pages.group(0, true)));
        for (g, &rows) in groups.iter().enumerate() {
            let t = std::time::Instant::now();
            let Some(Ok(Some(texts))) = next.take().map(|h| h.join()) else {
                return false;
            };
            if g + 1 < groups.len() {
                next = Some(scope.spawn(move || pages.group(g + 1, false)));
            }
            waited.push(t.elapsed().as_millis() as u64);
            let t = std::time::Instant::now();
            let starts: Vec<usize> = (0..rows).step_by(SLICE).collect();
            let checked: Vec<(DebtorsPart, IdTexts)> = starts
                .par_iter()
                .map(|&start| {
                    let len = SLICE.min(rows - start);
                    let at = (1 + first + start, start, len);
                    let (part, ids) = check_page_rows(&texts, &name, at, &none, default_country);
                    (part, IdTexts::of(&ids))
                })
                .collect();
            bounds.extend(
                starts
                    .iter()
                    .map(|&start| (g, start, SLICE.min(rows - start), first)),
            );
            for (part, id_texts) in checked {
                parts.push(part);
                ids.push(id_texts);
            }
            first += rows;
            checking += t.elapsed();
        }
        true
    });
    if !decoded {
        return Ok(None);
    }
    // A repeated id (an unsound file) has the slices that hold it checked
    // again knowing it, their row group decoded again.
    let again = |i: usize, occurrences: &HashMap<&str, u32>| {
        let (g, start, len, first) = bounds[i];
        let texts = pages
            .group(g, false)
            .ok_or_else(|| IngestError::Unparseable {
                file: file.clone(),
                message: format!(
                "row group {} could not be read again: an input must not change during the night",
                g + 1
            ),
            })?;
        let at = (1 + first + start, start, len);
        Ok(check_page_rows(&texts, &name, at, occurrences, default_country).0)
    };
    let id_lists: Vec<Vec<&str>> = ids.iter().map(IdTexts::ids).collect();
    let t = std::time::Instant::now();
    let read = finish_debtors(parts, id_lists, again, None, rejects)?;
    tracing::debug!(
        wait_ms = ?waited,
        check_ms = checking.as_millis() as u64,
        finish_ms = t.elapsed().as_millis() as u64,
        "parquet debtors pages"
    );
    Ok(Some(debtors_read(t0, file, name, read)))
}

/// Rows `start..start + len` of a row group's debtors checked, `row` the
/// first one's number in the file (`at` is `(row, start, len)`): the
/// part, and each row's id.
fn check_page_rows<'t>(
    texts: &'t pages::GroupTexts,
    name: &str,
    (row, start, len): (usize, usize, usize),
    occurrences: &HashMap<&str, u32>,
    default_country: &str,
) -> (DebtorsPart, Vec<&'t str>) {
    let cols: Vec<Option<&pages::TextColumn>> = texts.cols.iter().map(Option::as_ref).collect();
    // The columns with a value too long in these rows: none, in a sound
    // file, so that no row looks at every value's length.
    let long: Vec<usize> = (0..cols.len())
        .filter(|&k| cols[k].is_some_and(|c| c.any_longer(start, len, MAX_FIELD)))
        .collect();
    let mut out = Vec::with_capacity(len);
    let mut rejects = Vec::new();
    let mut ids = Vec::with_capacity(len);
    for j in 0..len {
        let value = |k: usize| cols[k].map_or("", |c| c.get(start + j));
        ids.push(value(0));
        let mut rc = RowCheck {
            file: name,
            row: row + j,
            bad: false,
            out: &mut rejects,
        };
        for &k in &long {
            let v = value(k);
            if too_long(v) {
                rc.too_long(debtor_field(k), v);
            }
        }
        out.push(check_debtor(rc, value, occurrences, default_country));
    }
    ((out, rejects), ids)
}

/// Rows `start..start + len` of a Parquet debtors file read again, as
/// they were read the first time: an error when there are not as many
/// (the file changed during the night), for a row-by-row check would
/// otherwise pair rows with the wrong ones' results.
fn read_again(path: &Path, file: &str, start: usize, len: usize) -> Result<Table, IngestError> {
    let table = ParquetRows::open(path, file)?.table(start, len, &DEBTORS_SHAPE)?;
    if table.height() != len {
        return Err(IngestError::Unparseable {
            file: file.to_owned(),
            message: format!(
                "rows {}-{} were {len} rows when first read and {} when read again: an input must not change during the night",
                1 + start,
                start + len,
                table.height()
            ),
        });
    }
    Ok(table)
}

/// A slice's debtor ids, kept after its table is dropped, for the check
/// of repeated ids: one text, not a string each.
struct IdTexts {
    text: String,
    ends: Vec<usize>,
}

impl IdTexts {
    fn of(ids: &[&str]) -> IdTexts {
        let mut text = String::with_capacity(ids.iter().map(|id| id.len()).sum());
        let ends = ids
            .iter()
            .map(|id| {
                text.push_str(id);
                text.len()
            })
            .collect();
        IdTexts { text, ends }
    }

    fn ids(&self) -> Vec<&str> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let id = &self.text[start..end];
                start = end;
                id
            })
            .collect()
    }
}

/// One row of the debtors file: the debtor, or `None` when the row is
/// rejected. `value(k)` is the text of column [`debtor_field`]`(k)`.
fn check_debtor<'v>(
    mut rc: RowCheck<'_>,
    value: impl Fn(usize) -> &'v str,
    occurrences: &HashMap<&str, u32>,
    default_country: &str,
) -> Option<Debtor> {
    let did = rc.required("debtor_id", Some(value(0)));
    if occurrences.contains_key(did) {
        rc.reject(
            "debtor_id",
            did,
            "debtor_id appears more than once in the debtors file",
        );
    }
    let kind = value(2);
    if kind != "person" && kind != "business" {
        rc.reject("kind", kind, "kind must be `person` or `business`");
    }
    let mut consent = |k: usize| -> bool {
        let v = value(k);
        // Compared without a lower-case copy: two allocations a row, a
        // million rows.
        let is = |words: &[&str]| words.iter().any(|w| v.eq_ignore_ascii_case(w));
        if is(&["", "true", "yes", "1", "y"]) {
            true
        } else if is(&["false", "no", "0", "n"]) {
            false
        } else {
            rc.reject(
                debtor_field(k),
                v,
                "expected true or false (empty means true)",
            );
            true
        }
    };
    let consent_email = consent(13);
    let consent_sms = consent(14);
    let score_text = value(12);
    let score = if score_text.is_empty() {
        None
    } else {
        match Decimal::from_str(score_text) {
            Ok(d) => Some(d),
            Err(_) => {
                rc.reject("score", score_text, "not a decimal number");
                None
            }
        }
    };
    if rc.bad {
        return None;
    }
    // A malformed address or number does not reject the debtor: it is
    // noted, and the debtor counts as having none, so the channel rules
    // fall back (an e-mail becomes a letter) instead of failing later.
    let email = value(5).trim();
    let email_ok = !email.is_empty() && email.parse::<lettre::Address>().is_ok();
    if !email.is_empty() && !email_ok {
        rc.note(
            "email",
            email,
            "not a valid e-mail address; the debtor is treated as having none (row kept)",
        );
    }
    let phone = value(6).trim();
    let phone_e164 = crate::phone::to_e164(phone, value(4), default_country);
    if !phone.is_empty() && phone_e164.is_none() {
        rc.note("phone", phone, "not a phone number that can be written in E.164; the debtor is treated as having none (row kept)");
    }
    let mut d = Debtor::new(DebtorTexts {
        id: did,
        name: value(1),
        kind,
        language: value(3),
        country: value(4),
        email,
        phone,
        address_line1: value(7),
        address_line2: value(8),
        postal_code: value(9),
        city: value(10),
        timezone: value(11),
        phone_e164: phone_e164.as_ref().map(|p| p.as_str()),
    });
    d.score = score;
    d.consent_email = consent_email;
    d.consent_sms = consent_sms;
    d.email_ok = email_ok;
    Some(d)
}

/// One slice of the ledger, checked.
#[derive(Default)]
struct LedgerPart {
    mask: Vec<bool>,
    accounts: Vec<u64>,
    amounts: Vec<Cents>,
    opens: Vec<Cents>,
    issued: Vec<i32>,
    due: Vec<i32>,
    rejects: Vec<Reject>,
    bad_rows: usize,
    /// See [`Checked::id_hashes`].
    id_hashes: Vec<u64>,
}

impl LedgerPart {
    fn with_capacity(rows: usize) -> LedgerPart {
        LedgerPart {
            mask: Vec::with_capacity(rows),
            accounts: Vec::with_capacity(rows),
            amounts: Vec::with_capacity(rows),
            opens: Vec::with_capacity(rows),
            issued: Vec::with_capacity(rows),
            due: Vec::with_capacity(rows),
            id_hashes: Vec::with_capacity(rows),
            ..LedgerPart::default()
        }
    }

    fn push(&mut self, v: LedgerValues, bad: bool) {
        if bad {
            self.bad_rows += 1;
        }
        self.mask.push(!bad);
        self.accounts.push(v.account);
        self.amounts.push(v.amount);
        self.opens.push(v.open);
        self.issued.push(v.issued);
        self.due.push(v.due);
    }
}

/// A ledger date column: text, or days as a Parquet date column stores
/// them (read as they are rather than written as text and read back).
enum DateColumn {
    Text(StringChunked),
    Days(Int32Chunked),
}

impl DateColumn {
    fn slice(&self, start: usize, len: usize) -> DateColumn {
        match self {
            DateColumn::Text(c) => DateColumn::Text(c.slice(start as i64, len)),
            DateColumn::Days(c) => DateColumn::Days(c.slice(start as i64, len)),
        }
    }

    fn values(&self) -> Box<dyn Iterator<Item = DateValue<'_>> + '_> {
        match self {
            DateColumn::Text(c) => Box::new(c.iter().map(DateValue::Text)),
            DateColumn::Days(c) => Box::new(c.iter().map(DateValue::Days)),
        }
    }
}

/// A slice of a ledger date column, read by row number: a Parquet
/// slice's days with none missing where they are, any other one read
/// into a list first.
enum SliceDates<'c> {
    Days(&'c [i32]),
    Values(Vec<DateValue<'c>>),
}

impl<'c> SliceDates<'c> {
    fn of(c: &'c DateColumn) -> SliceDates<'c> {
        if let DateColumn::Days(d) = c {
            if let (Ok(days), 0) = (d.cont_slice(), d.null_count()) {
                return SliceDates::Days(days);
            }
        }
        SliceDates::Values(c.values().collect())
    }

    fn get(&self, j: usize) -> DateValue<'c> {
        match self {
            SliceDates::Days(d) => DateValue::Days(Some(d[j])),
            SliceDates::Values(v) => v[j],
        }
    }
}

/// A ledger amount column: text, or a Parquet decimal column.
///
/// A slice of decimals whose every value is an amount (present, not
/// negative, no significant digit past the cent, within 64 bits of cents)
/// and whose open amounts are none above their amounts is read as cents,
/// which is exactly what the checks make of those values' texts; a slice
/// with any other value is made text, as before, and checked as text, so
/// that its rejects read as they always have. At 4.5 million items, the
/// texts of two columns were written and parsed back for nothing.
enum AmountColumn {
    Text(StringChunked),
    Decimal(Column),
}

impl AmountColumn {
    fn slice(&self, start: usize, len: usize) -> AmountColumn {
        match self {
            AmountColumn::Text(c) => AmountColumn::Text(c.slice(start as i64, len)),
            AmountColumn::Decimal(c) => AmountColumn::Decimal(c.slice(start as i64, len)),
        }
    }

    /// The text the checks read: a decimal column cast as [`as_text`]
    /// casts every other column.
    fn text(&self) -> PolarsResult<StringChunked> {
        match self {
            AmountColumn::Text(c) => Ok(c.clone()),
            AmountColumn::Decimal(c) => Ok(c.cast(&DataType::String)?.str()?.clone()),
        }
    }

    /// Both columns as cents, when both are decimals whose every value is
    /// an amount and no open amount is above its amount.
    fn cents(amount: &AmountColumn, open: &AmountColumn) -> Option<(Vec<Cents>, Vec<Cents>)> {
        let (AmountColumn::Decimal(a), AmountColumn::Decimal(o)) = (amount, open) else {
            return None;
        };
        let (a, o) = (decimal_cents(a)?, decimal_cents(o)?);
        a.iter().zip(&o).all(|(a, o)| o <= a).then_some((a, o))
    }
}

/// A decimal column's values as cents; `None` when one is missing,
/// negative, has a significant digit past the cent, or is beyond 64 bits
/// of cents: any value [`money::parse_amount`] would refuse as text.
fn decimal_cents(c: &Column) -> Option<Vec<Cents>> {
    let d = c.decimal().ok()?;
    let scale = u32::try_from(d.scale()).ok()?;
    let (up, down) = if scale <= 2 {
        (10i128.pow(2 - scale), 1)
    } else {
        (1, 10i128.checked_pow(scale - 2)?)
    };
    if d.phys.null_count() > 0 {
        return None;
    }
    let mut out = Vec::with_capacity(d.len());
    for arr in d.phys.downcast_iter() {
        let values = arr.values();
        if down == 1 {
            // Cents or coarser (the usual `decimal(18,2)`): no division,
            // which for 128 bits is a call, twice a row, 4.5 million rows.
            let most = i128::from(i64::MAX) / up;
            if values.iter().any(|&v| !(0..=most).contains(&v)) {
                return None;
            }
            out.extend(values.iter().map(|&v| (v * up) as i64));
            continue;
        }
        for &v in values.iter() {
            if v < 0 || v % down != 0 {
                return None;
            }
            out.push(i64::try_from((v / down).checked_mul(up)?).ok()?);
        }
    }
    Some(out)
}

/// The texts of one ledger row that are checked.
struct LedgerRow<'v> {
    item_id: Option<&'v str>,
    debtor_id: Option<&'v str>,
    currency: Option<&'v str>,
    amount: Option<&'v str>,
    open_amount: Option<&'v str>,
    /// Amount and open amount read from decimal columns, known to be
    /// amounts the texts would have been read as, the open one not above
    /// the other ([`AmountColumn`]); the texts are then `None`.
    cents: Option<(Cents, Cents)>,
    issued_on: DateValue<'v>,
    due_on: DateValue<'v>,
}

/// A ledger date: text to read, or the day a Parquet date column holds.
#[derive(Clone, Copy)]
enum DateValue<'v> {
    Text(Option<&'v str>),
    Days(Option<i32>),
}

/// One ledger row's typed values; zero where a value is bad (the row is
/// then rejected and its values never read).
struct LedgerValues {
    account: u64,
    amount: Cents,
    open: Cents,
    issued: i32,
    due: i32,
}

/// The debtor of the row before: a ledger usually lists a debtor's items
/// together, and the lookup of a million-entry index is most of a row's
/// cost.
#[derive(Default)]
struct LastDebtor<'v> {
    id: &'v str,
    position: Option<u32>,
}

fn check_ledger_row<'v>(
    rc: &mut RowCheck<'_>,
    row: &LedgerRow<'v>,
    debtors: &Debtors,
    last: &mut LastDebtor<'v>,
) -> LedgerValues {
    rc.required("item_id", row.item_id);
    let did = rc.required("debtor_id", row.debtor_id);
    if did != last.id || did.is_empty() {
        // Ledger and debtors file are often both sorted by debtor: the
        // debtor after the last one found is tried first, which reads the
        // list in order instead of hashing into the index.
        let next = last
            .position
            .map(|p| p + 1)
            .filter(|&p| debtors.at(p).is_some_and(|d| d.id() == did));
        *last = LastDebtor {
            id: did,
            position: next.or_else(|| debtors.position(did)),
        };
    }
    let position = last.position;
    if !did.is_empty() && position.is_none() {
        rc.reject(
            "debtor_id",
            did,
            "debtor not in the debtors file (or rejected there)",
        );
    }
    let cur = row.currency.unwrap_or("");
    if !is_currency(cur) {
        rc.reject(
            "currency",
            cur,
            "currency must be 3 capital letters (ISO 4217)",
        );
    }
    let (a, o) = match row.cents {
        Some((a, o)) => (Some(a), Some(o)),
        None => (
            rc.amount("amount", row.amount),
            rc.amount("open_amount", row.open_amount),
        ),
    };
    if let (Some(a), Some(o)) = (a, o) {
        if o > a {
            rc.reject(
                "open_amount",
                row.open_amount.unwrap_or(""),
                format!("open_amount exceeds amount {}", money::format_cents(a)),
            );
        }
    }
    let iss = rc.date_value("issued_on", row.issued_on);
    let du = rc.date_value("due_on", row.due_on);
    LedgerValues {
        account: position.and_then(|p| account_key(p, cur)).unwrap_or(0),
        amount: a.unwrap_or(0),
        open: o.unwrap_or(0),
        issued: iss.unwrap_or(0),
        due: du.unwrap_or(0),
    }
}

/// `texts_in_file`: the item ids, products and references are left in the
/// file, each row's number there kept as `row_at` (a Parquet ledger's;
/// see [`LedgerTexts`]), instead of being kept in the frame.
fn check_ledger(
    t: &Table,
    debtors: &Debtors,
    rejects: &mut Vec<Reject>,
    texts_in_file: bool,
) -> Result<Checked, IngestError> {
    let n = t.height();
    let col = |name: &str| t.col(name).expect("required column");
    let amount_col = |name: &str| -> AmountColumn {
        let c = t.df.column(name).expect("required column");
        match c.dtype() {
            DataType::Decimal(_, _) => AmountColumn::Decimal(c.clone()),
            _ => AmountColumn::Text(col(name).clone()),
        }
    };
    let (amount, open_amount) = (amount_col("amount"), amount_col("open_amount"));
    let date_col = |name: &str| -> DateColumn {
        match t.df.column(name).ok().and_then(|c| c.date().ok()) {
            Some(d) => DateColumn::Days(d.phys.clone()),
            None => DateColumn::Text(col(name).clone()),
        }
    };
    let (issued_on, due_on) = (date_col("issued_on"), date_col("due_on"));
    // Rows are checked in parallel, a slice at a time, and put back in
    // file order, so rejects.csv does not depend on thread timing.
    let starts: Vec<usize> = (0..n).step_by(SLICE).collect();
    let mut parts: Vec<LedgerPart> = starts
        .into_par_iter()
        .map(|start| {
            let len = SLICE.min(n - start);
            // Read by row number where they are (a Parquet slice's
            // columns are one array each): seven iterators zipped, each
            // checking its chunk and validity, were a third of the check.
            let (item_id, debtor_id, currency) = (
                t.texts("item_id", start, len),
                t.texts("debtor_id", start, len),
                t.texts("currency", start, len),
            );
            let (amount, open_amount) = (amount.slice(start, len), open_amount.slice(start, len));
            let cents = AmountColumn::cents(&amount, &open_amount);
            let texts = |c: &AmountColumn| match (&cents, c) {
                (Some(_), _) => Ok(None),
                (None, c) => c.text().map(Some),
            };
            let (amount, open_amount) = (texts(&amount)?, texts(&open_amount)?);
            let amount_texts: Option<Vec<Option<&str>>> =
                amount.as_ref().map(|c| c.iter().collect());
            let open_texts: Option<Vec<Option<&str>>> =
                open_amount.as_ref().map(|c| c.iter().collect());
            let (issued_on, due_on) = (issued_on.slice(start, len), due_on.slice(start, len));
            let (issued_on, due_on) = (SliceDates::of(&issued_on), SliceDates::of(&due_on));
            let mut part = LedgerPart::with_capacity(len);
            let mut last = LastDebtor::default();
            for j in 0..len {
                let iid = Some(item_id.get(j));
                let mut rc = RowCheck::start(t, start + j, &mut part.rejects);
                let row = LedgerRow {
                    item_id: iid,
                    debtor_id: Some(debtor_id.get(j)),
                    currency: Some(currency.get(j)),
                    amount: amount_texts.as_ref().and_then(|c| c[j]),
                    open_amount: open_texts.as_ref().and_then(|c| c[j]),
                    cents: cents.as_ref().map(|(a, o)| (a[j], o[j])),
                    issued_on: issued_on.get(j),
                    due_on: due_on.get(j),
                };
                let v = check_ledger_row(&mut rc, &row, debtors, &mut last);
                let bad = rc.bad;
                part.push(v, bad);
                if let Some(id) = iid.filter(|id| !id.is_empty()) {
                    part.id_hashes.push(id_hash(id));
                }
            }
            Ok(part)
        })
        .collect::<Result<_, PolarsError>>()
        .map_err(|e| IngestError::Unparseable {
            file: t.file.clone(),
            message: e.to_string(),
        })?;
    let mut bad_rows = 0;
    for p in &mut parts {
        rejects.append(&mut p.rejects);
        bad_rows += p.bad_rows;
    }
    let joined = Joined::of(
        &parts,
        |p| p,
        || texts_in_file.then(|| (0..n).map(|i| (t.row(i) - 1) as u64).collect()),
    );
    // The debtor and currency live on in the `account` key only: two text
    // columns of 4.5 million values less.
    // The texts kept are made one chunk each (the documents read them by
    // row number); those only checked here are read in order, whatever
    // their chunks.
    let none = |name: &str| Column::full_null(name.into(), n, &DataType::String);
    let kept = |c: &StringChunked| match texts_in_file {
        true => none(c.name()),
        false => c.rechunk().into_owned().into_column(),
    };
    let optional = |name: &str| t.col(name).map_or_else(|| none(name), kept);
    let texts = [
        match texts_in_file {
            true => none("item_id"),
            false => kept(col("item_id")),
        },
        optional(LEDGER_OPTIONAL[0]),
        optional(LEDGER_OPTIONAL[1]),
    ];
    joined
        .checked(n, texts, bad_rows)
        .map_err(|e| IngestError::Unparseable {
            file: t.file.clone(),
            message: e.to_string(),
        })
}

/// Ledger rows checked one by one, all still there: item ids repeated
/// anywhere in the file are found once every piece is read.
struct Checked {
    /// Every row: the typed columns and the kept texts.
    df: DataFrame,
    /// The rows that passed.
    mask: Vec<bool>,
    bad: usize,
    /// The [`id_hash`] of every item id that is not empty, for the
    /// duplicate check: made where the rows are read, in parallel, while
    /// the ids are at hand; a vector a piece, joined once at the end.
    id_hashes: Vec<Vec<u64>>,
}

impl Checked {
    /// Adds the next piece's rows after those read so far.
    fn add(acc: &mut Option<Checked>, next: Checked, file: &str) -> Result<(), IngestError> {
        let Some(a) = acc else {
            *acc = Some(next);
            return Ok(());
        };
        a.df.vstack_mut_owned(next.df)
            .map_err(|e| IngestError::Unparseable {
                file: file.to_owned(),
                message: e.to_string(),
            })?;
        a.mask.extend(next.mask);
        a.bad += next.bad;
        a.id_hashes.extend(next.id_hashes);
        Ok(())
    }
}

/// Rejects every copy of a repeated item id and drops the rejected rows.
/// `first_row` is the row number of the first data row.
fn finish_ledger(
    file: &str,
    name: &str,
    checked: Checked,
    first_row: usize,
    rejects: &mut Vec<Reject>,
    ledger: Option<&LedgerTexts>,
) -> Result<(DataFrame, usize), IngestError> {
    let Checked {
        mut df,
        mut mask,
        mut bad,
        id_hashes,
    } = checked;
    let internal = |e: PolarsError| IngestError::Unparseable {
        file: file.to_owned(),
        message: e.to_string(),
    };
    // The ids are read only when two hashes are alike (a Parquet ledger's
    // are then read again from the file).
    let texts = std::cell::OnceCell::new();
    let ids = || {
        let t = texts.get_or_init(|| ItemTexts::new(&df, ledger));
        let n = if t.is_ok() { df.height() } else { 0 };
        (0..n).map(move |i| t.as_ref().ok().and_then(|t| t.get(i)[0]))
    };
    let occurrences = repeated_among(&id_hashes, || ids().flatten());
    drop(id_hashes);
    if let Some(Err(e)) = texts.get() {
        return Err(internal(e.clone()));
    }
    if !occurrences.is_empty() {
        for (i, id) in ids().enumerate() {
            let Some(&k) = id.and_then(|id| occurrences.get(id)) else {
                continue;
            };
            rejects.push(Reject {
                file: name.to_owned(),
                row: first_row + i,
                column: "item_id".into(),
                value: clip(id.unwrap_or("")),
                reason: format!(
                    "duplicate item_id: appears {k} times in the ledger, every copy is rejected"
                ),
            });
            if mask[i] {
                mask[i] = false;
                bad += 1;
            }
        }
    }
    drop(occurrences);
    // A clean ledger (the usual night) is not copied to drop nothing.
    if bad > 0 {
        let mask = BooleanChunked::from_slice("valid".into(), &mask);
        df = df.filter(&mask).map_err(internal)?;
    }
    Ok((df, bad))
}

fn check_events(t: &Table, debtors: &Debtors, rejects: &mut Vec<Reject>) -> (Vec<Event>, usize) {
    let col = |name: &str| t.col(name).expect("required column");
    let (debtor_id, date, kind) = (col("debtor_id"), col("date"), col("kind"));
    let (until, amount, note) = (t.col("until"), t.col("amount"), t.col("note"));
    // Looked up in parallel: each look-up is a few cache misses in a
    // million debtors, and the events come in tens of thousands.
    let known: Vec<bool> = (0..t.height())
        .into_par_iter()
        .map(|i| debtor_id.get(i).is_some_and(|d| debtors.contains_key(d)))
        .collect();
    let mut out = Vec::new();
    let mut bad_rows = 0;
    for (i, &known) in known.iter().enumerate() {
        let mut rc = RowCheck::start(t, i, rejects);
        let did = rc.required("debtor_id", debtor_id.get(i));
        if !did.is_empty() && !known {
            rc.reject(
                "debtor_id",
                did,
                "debtor not in the debtors file (or rejected there)",
            );
        }
        let d = rc.date("date", date.get(i));
        let k = kind.get(i).unwrap_or("");
        let k = match EventKind::from_str(k) {
            Ok(k) => Some(k),
            Err(()) => {
                rc.reject(
                    "kind",
                    k,
                    format!(
                        "unknown event kind (known: {})",
                        EventKind::ALL.map(|k| k.as_str()).join(", ")
                    ),
                );
                None
            }
        };
        let u = until.and_then(|c| c.get(i)).unwrap_or("");
        let u = if u.is_empty() {
            None
        } else {
            let parsed = dates::parse_date(u);
            if parsed.is_none() {
                rc.reject("until", u, "not a date (expected YYYY-MM-DD or empty)");
            }
            parsed
        };
        let a = amount.and_then(|c| c.get(i)).unwrap_or("");
        let a = if a.is_empty() {
            None
        } else {
            rc.amount("amount", Some(a))
        };
        if rc.bad {
            bad_rows += 1;
            continue;
        }
        if let (Some(date), Some(kind)) = (d, k) {
            out.push(Event {
                debtor_id: did.to_owned(),
                date,
                kind,
                until: u,
                amount: a,
                note: note.and_then(|c| c.get(i)).unwrap_or("").trim().to_owned(),
                row: t.row(i),
            });
        }
    }
    (out, bad_rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Consents are read in any case: empty, true, yes, 1 and y mean yes;
    /// false, no, 0 and n mean no; anything else is rejected.
    #[test]
    fn consents_in_any_case() {
        let none = HashMap::new();
        let read = |consent: &str| {
            let mut found = Vec::new();
            let mut fields = [""; 16];
            fields[0] = "D1";
            fields[2] = "person";
            fields[13] = consent;
            fields[14] = consent;
            let rc = RowCheck {
                file: "debtors.csv",
                row: 2,
                bad: false,
                out: &mut found,
            };
            let d = check_debtor(rc, |k| fields[k], &none, "FR");
            (d.map(|d| (d.consent_email, d.consent_sms)), found.len())
        };
        for yes in ["", "true", "TRUE", "Yes", "1", "y", "Y"] {
            assert_eq!(read(yes), (Some((true, true)), 0), "{yes:?}");
        }
        for no in ["false", "False", "NO", "0", "n", "N"] {
            assert_eq!(read(no), (Some((false, false)), 0), "{no:?}");
        }
        for bad in ["oui", "yes ", "tru", "É"] {
            assert_eq!(read(bad), (None, 2), "{bad:?}");
        }
    }

    /// A slice's texts come from the right rows of a column of several
    /// chunks (a Parquet file's row groups), a null as empty.
    #[test]
    fn texts_of_a_slice_across_chunks() {
        let mut c = StringChunked::from_iter([Some("a"), None, Some("c")]);
        c.append(&StringChunked::from_iter([Some("d"), Some("e")]))
            .unwrap();
        c.append(&StringChunked::from_iter([None::<&str>, Some("g")]))
            .unwrap();
        assert!(c.chunks().len() > 1);
        let all: Vec<&str> = c.iter().map(|v| v.unwrap_or("")).collect();
        for start in 0..=all.len() {
            for len in 0..=all.len() - start {
                assert_eq!(texts_in(&c, start, len), &all[start..start + len]);
            }
        }
    }

    proptest! {
        /// A debtor's texts, joined in one allocation, read back each as
        /// given, empty and non-ASCII ones included; an empty E.164 number
        /// is none.
        #[test]
        fn debtor_texts_read_back(t in proptest::collection::vec("[a-zé中 @+.-]{0,30}", 13)) {
            let d = Debtor::new(DebtorTexts {
                id: &t[0],
                name: &t[1],
                kind: &t[2],
                language: &t[3],
                country: &t[4],
                email: &t[5],
                phone: &t[6],
                address_line1: &t[7],
                address_line2: &t[8],
                postal_code: &t[9],
                city: &t[10],
                timezone: &t[11],
                phone_e164: Some(&t[12]),
            });
            let got = [
                d.id(), d.name(), d.kind(), d.language(), d.country(), d.email(), d.phone(),
                d.address_line1(), d.address_line2(), d.postal_code(), d.city(), d.timezone(),
            ];
            prop_assert_eq!(&got[..], &t[..12]);
            prop_assert_eq!(d.phone_e164(), Some(t[12].as_str()).filter(|p| !p.is_empty()));
        }

        /// The index of positions finds every debtor by id, in file order,
        /// and nothing else; a repeated id replaces the listed debtor.
        #[test]
        fn debtors_found_by_id(ids in proptest::collection::vec("[A-Z0-9]{1,6}", 0..200)) {
            let debtors: Debtors = ids
                .iter()
                .map(|id| Debtor::new(DebtorTexts { id, ..Default::default() }))
                .collect();
            let mut first: Vec<&String> = Vec::new();
            for id in &ids {
                if !first.contains(&id) {
                    first.push(id);
                }
            }
            prop_assert_eq!(debtors.len(), first.len());
            for (i, id) in first.iter().enumerate() {
                prop_assert_eq!(debtors.position(id), Some(i as u32));
                prop_assert_eq!(debtors.get(id).map(|d| d.id()), Some(id.as_str()));
                prop_assert_eq!(debtors.at(i as u32).map(|d| d.id()), Some(id.as_str()));
                // A hint, right, wrong or out of range, never changes the
                // answer.
                for hint in [None, Some(i as u32), Some(0), Some(u32::MAX)] {
                    prop_assert_eq!(debtors.position_hinted(id, hint), Some(i as u32));
                }
            }
            prop_assert_eq!(debtors.position_hinted("not-an-id", Some(0)), None);
            prop_assert!(!debtors.contains_key("not-an-id"));
        }
    }

    fn naive(values: &[Option<String>]) -> HashMap<String, u32> {
        let mut counts: HashMap<String, u32> = HashMap::new();
        for v in values.iter().flatten().filter(|v| !v.is_empty()) {
            *counts.entry(v.clone()).or_default() += 1;
        }
        counts.retain(|_, k| *k > 1);
        counts
    }

    proptest! {
        /// An account key gives back its debtor and currency, and two
        /// accounts never share a key.
        #[test]
        fn account_keys_round_trip(a in 0u32..u32::MAX, b in 0u32..u32::MAX,
                                   ca in "[A-Z]{3}", cb in "[A-Z]{3}") {
            let ka = account_key(a, &ca).unwrap();
            let (p, c) = account_of_key(ka);
            prop_assert_eq!(p, a);
            prop_assert_eq!(std::str::from_utf8(&c).unwrap(), ca.as_str());
            prop_assert_eq!(ka == account_key(b, &cb).unwrap(), a == b && ca == cb);
        }

        /// The hash-sort shortcut finds exactly the values a plain count
        /// finds, with the same counts (ids drawn from a small alphabet so
        /// that repeats are common).
        #[test]
        fn repeated_matches_a_plain_count(values in proptest::collection::vec(
            proptest::option::of("[ab]{0,3}"), 0..200), part in 1usize..50) {
            let column: StringChunked = values.iter().map(|v| v.as_deref()).collect();
            let hashes: Vec<u64> = column.iter().flatten().filter(|v| !v.is_empty()).map(id_hash).collect();
            // In parts, as the slices of a file give them.
            let parts: Vec<Vec<u64>> = hashes.chunks(part).map(|c| c.to_vec()).collect();
            let found: HashMap<String, u32> = repeated_among(&parts, || column.iter().flatten())
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            prop_assert_eq!(found, naive(&values));
        }
    }

    /// The positions `check_debtor` reads by name the columns it means.
    #[test]
    fn debtor_fields_are_numbered_as_read() {
        let named = [
            (0, "debtor_id"),
            (1, "name"),
            (2, "kind"),
            (3, "language"),
            (4, "country"),
            (5, "email"),
            (6, "phone"),
            (7, "address_line1"),
            (8, "address_line2"),
            (9, "postal_code"),
            (10, "city"),
            (11, "timezone"),
            (12, "score"),
            (13, "consent_email"),
            (14, "consent_sms"),
        ];
        for (k, name) in named {
            assert_eq!(debtor_field(k), name);
        }
    }

    #[test]
    fn a_debtor_listed_twice_is_rejected_both_times() {
        let dir = tempfile::tempdir().unwrap();
        let debtors = dir.path().join("debtors.csv");
        std::fs::write(
            &debtors,
            "debtor_id,name,kind,language,country,email,phone,address_line1,address_line2,postal_code,city\n\
             D1,A,person,fr,FR,,,1 rue,,75001,Paris\n\
             D2,B,person,fr,FR,,,1 rue,,75001,Paris\n\
             D1,C,person,fr,FR,,,1 rue,,75001,Paris\n",
        )
        .unwrap();
        let ledger = dir.path().join("ledger.csv");
        std::fs::write(
            &ledger,
            "item_id,debtor_id,currency,amount,open_amount,issued_on,due_on\n\
             I1,D2,EUR,10.00,10.00,2026-01-01,2026-02-01\n",
        )
        .unwrap();
        let inputs = read(&ledger, &debtors, None, "FR").unwrap();
        assert_eq!(inputs.debtors.len(), 1);
        assert!(inputs.debtors.get("D2").is_some());
        assert!(inputs.debtors.get("D1").is_none());
        let rows: Vec<usize> = inputs
            .rejects
            .iter()
            .filter(|r| r.column == "debtor_id")
            .map(|r| r.row)
            .collect();
        assert_eq!(rows, vec![2, 4]);
        assert_eq!(inputs.counts[0].rejected, 2);
    }
}

#[cfg(test)]
mod pieces {
    use super::*;
    use proptest::prelude::*;

    const DEBTORS: &str = "debtor_id,name,kind,language,country,email,phone,address_line1,address_line2,postal_code,city\n\
        D1,A,person,fr,FR,,,1 rue,,75001,Paris\n\
        D2,B,business,fr,FR,,,2 rue,,75001,Paris\n";

    /// A slice thread that dies after a slice ends the reading with an
    /// error, not with the rows read so far taken for the whole file.
    #[test]
    fn a_parquet_reader_that_dies_is_an_error_not_the_end() {
        let table = || Table {
            file: "ledger.parquet".into(),
            name: "ledger.parquet".into(),
            df: DataFrame::empty(),
            first_row: 2,
            long: HashMap::new(),
            paged: Vec::new(),
        };
        // Which decoder dies after sending how many slices (3, after its
        // last); every other one sends all of its own (3 each) and ends.
        for (dead, sent, good) in [(1, 0, 1), (0, 1, 2), (1, 2, 5), (0, 3, 6)] {
            let (senders, receivers): (Vec<_>, Vec<_>) = (0..DECODERS)
                .map(|_| std::sync::mpsc::sync_channel(0))
                .unzip();
            let thread = std::thread::spawn(move || {
                std::thread::scope(|scope| {
                    for (w, tx) in senders.into_iter().enumerate() {
                        scope.spawn(move || {
                            for k in 0..=3 {
                                if w == dead && k == sent {
                                    panic!("decoding failed");
                                }
                                if k == 3 || tx.send(Ok(table())).is_err() {
                                    return;
                                }
                            }
                        });
                    }
                });
            });
            let mut slices = ParquetSlices {
                file: "ledger.parquet".into(),
                slices: Some(receivers),
                received: 0,
                waited: std::time::Duration::ZERO,
                thread: Some(thread),
            };
            for k in 0..good {
                assert!(matches!(slices.next(), Some(Ok(_))), "slice {k}");
            }
            let err = slices.next().expect("an error, not the end").err().unwrap();
            assert!(err.to_string().contains("stopped before its end"), "{err}");
            assert!(slices.next().is_none());
        }
    }

    /// A ledger with everything a piece boundary could cut badly: quoted
    /// fields holding commas, doubled quotes and newlines, bad rows, an
    /// unknown debtor, item ids repeated far apart, a long value.
    fn ledger(rows: usize) -> String {
        let mut s = String::from(
            "item_id,debtor_id,currency,amount,open_amount,issued_on,due_on,product,reference\n",
        );
        for i in 0..rows {
            let id = if i % 17 == 3 { 5 } else { i };
            let reference = match i % 5 {
                0 => format!("\"F-{i}, with \"\"quotes\"\"\nand a newline\""),
                1 => "x".repeat(if i % 10 == 1 { 1001 } else { 3 }),
                _ => format!("F-{i}"),
            };
            let amount = if i % 13 == 7 { "1.234" } else { "10.00" };
            let debtor = if i % 19 == 11 { "D9" } else { "D1" };
            // Some rows with a product too long as well as the reference.
            let product = if i % 30 == 1 {
                "é".repeat(1001)
            } else {
                "card".into()
            };
            s.push_str(&format!(
                "I{id},{debtor},EUR,{amount},5.00,2026-01-01,2026-02-{:02},{product},{reference}\n",
                1 + i % 28
            ));
        }
        s
    }

    type Read = (DataFrame, FileCount, Vec<Reject>);

    /// The items frame with every text in it, wherever it was read
    /// from, and no `row_at`: frames read either way compare equal.
    fn texts_in(df: &DataFrame, ledger: Option<&LedgerTexts>) -> DataFrame {
        let texts = ItemTexts::new(df, ledger).unwrap();
        let mut out = df.drop("row_at").unwrap();
        for (k, name) in ["item_id", "product", "reference"].into_iter().enumerate() {
            let c: StringChunked = (0..df.height()).map(|i| texts.get(i)[k]).collect();
            out.with_column(c.with_name(name.into()).into_column())
                .unwrap();
        }
        // Pages given back are read again from the file, the same.
        if let Some(ledger) = ledger {
            let before: Vec<_> = (0..df.height()).map(|i| texts.get(i)).collect();
            ledger.forget();
            assert!((0..df.height()).all(|i| texts.get(i) == before[i]));
        }
        out
    }

    fn whole_and_pieces(text: &str, piece: usize) -> (Read, Option<Read>) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("debtors.csv");
        std::fs::write(&d, DEBTORS).unwrap();
        let l = dir.path().join("ledger.csv");
        std::fs::write(&l, text).unwrap();
        let mut rejects = Vec::new();
        let table = read_table(&d, DEBTOR_COLUMNS, DEBTOR_OPTIONAL).unwrap();
        let (debtors, _) = check_debtors(&table, &mut rejects, "FR");
        let (df, count, mut found) = read_ledger_whole(&l, &debtors).unwrap();
        found.sort();
        let streamed =
            read_ledger_pieces(&l, &debtors, piece)
                .unwrap()
                .map(|(df, c, mut r, texts)| {
                    r.sort();
                    (texts_in(&df, texts.as_ref()), c, r)
                });
        ((texts_in(&df, None), count, found), streamed)
    }

    #[test]
    fn a_ledger_read_in_pieces_is_the_ledger_read_whole() {
        let text = ledger(400);
        for piece in [64, 100, 257, 1000, 4096] {
            let (whole, streamed) = whole_and_pieces(&text, piece);
            let streamed = streamed.expect("read in pieces");
            assert!(whole.0.equals_missing(&streamed.0), "piece {piece}");
            assert_eq!(whole.1, streamed.1, "piece {piece}");
            assert_eq!(whole.2, streamed.2, "piece {piece}");
            assert!(whole.1.rejected > 0 && whole.0.height() > 0);
        }
        // Small enough for one read: read whole by the caller.
        assert!(whole_and_pieces(&text, 1 << 24).1.is_none());
    }

    /// Debtors with these ids and nothing else.
    fn debtors_named(ids: &[&str]) -> Debtors {
        ids.iter()
            .map(|&id| {
                Debtor::new(DebtorTexts {
                    id,
                    ..Default::default()
                })
            })
            .collect()
    }

    /// A ledger with no quote anywhere, as most exports are: bad values,
    /// an unknown debtor, repeated item ids, empty optional values, and
    /// rows ended by `\r\n` when `crlf`.
    fn plain_ledger(rows: usize, crlf: bool) -> String {
        let end = if crlf { "\r\n" } else { "\n" };
        let mut s = format!(
            "reference,item_id,debtor_id,currency,amount,open_amount,issued_on,due_on,product,extra{end}"
        );
        for i in 0..rows {
            let id = if i % 17 == 3 { 5 } else { i };
            let amount = match i % 13 {
                7 => "1.234",
                8 => "",
                9 => "-1.00",
                _ => "10.00",
            };
            let debtor = match i % 19 {
                11 => "D9",
                12 => "",
                _ if i % 2 == 0 => "D1",
                _ => "D2",
            };
            let currency = if i % 23 == 5 { "eur" } else { "EUR" };
            let due = if i % 29 == 4 {
                "2026-02-30".to_owned()
            } else {
                format!("2026-02-{:02}", 1 + i % 28)
            };
            let product = if i % 3 == 0 { "" } else { "card" };
            s.push_str(&format!(
                "F-{i},I{id},{debtor},{currency},{amount},5.00,2026-01-01,{due},{product},{end}"
            ));
        }
        s
    }

    /// The plain reading (no text table) gives what the general one gives,
    /// rejects and their row numbers included, whatever the piece size.
    #[test]
    fn a_plain_ledger_read_in_pieces_is_the_ledger_read_whole() {
        for crlf in [false, true] {
            let text = plain_ledger(500, crlf);
            for piece in [64, 100, 257, 1000, 4096] {
                let (whole, streamed) = whole_and_pieces(&text, piece);
                let streamed = streamed.expect("read in pieces");
                assert!(
                    whole.0.equals_missing(&streamed.0),
                    "piece {piece} crlf {crlf}"
                );
                assert_eq!(whole.1, streamed.1, "piece {piece}");
                assert_eq!(whole.2, streamed.2, "piece {piece}");
                assert!(whole.1.rejected > 0 && whole.0.height() > 0);
            }
        }
    }

    /// A ledger large enough to be mapped leaves its texts in the file and
    /// reads them there, before and after its pages are given back.
    #[test]
    fn a_mapped_ledger_reads_its_texts_in_the_file() {
        let text = plain_ledger(40_000, false);
        assert!(text.len() as u64 > crate::FileBytes::MAP_FROM);
        let (whole, streamed) = whole_and_pieces(&text, 300_000);
        let streamed = streamed.expect("read in pieces");
        assert!(whole.0.equals_missing(&streamed.0));
        assert_eq!((whole.1, whole.2), (streamed.1, streamed.2));
    }

    /// The plain reading takes the text it can and leaves the rest to the
    /// general one.
    #[test]
    fn what_the_plain_reading_takes() {
        let header = "item_id,debtor_id,currency,amount,open_amount,issued_on,due_on\n";
        let h = PlainHeader::read(header).unwrap();
        assert_eq!((h.width, h.optional), (7, [None, None]));
        let debtors: Debtors = [Debtor::new(DebtorTexts {
            id: "D1",
            ..Default::default()
        })]
        .into_iter()
        .collect();
        let row = "I1,D1,EUR,1.00,1.00,2026-01-01,2026-01-02";
        let check = |text: &str| {
            let mut rejects = Vec::new();
            check_plain_piece(
                Piece {
                    bytes: text.as_bytes(),
                    at: 0,
                    first_row: 2,
                },
                &h,
                "ledger.csv",
                &debtors,
                &mut rejects,
                1 << 20,
            )
            .map(|c| (c.df.height(), c.bad, rejects.len()))
        };
        assert_eq!(check(&format!("{row}\n")), Some((1, 0, 0)));
        assert_eq!(check(row), Some((1, 0, 0)));
        assert_eq!(check(&format!("{row}\r\n{row}\r\n")), Some((2, 0, 0)));
        assert_eq!(
            check("I1,D7,EUR,1.00,1.00,2026-01-01,2026-01-02\n"),
            Some((1, 1, 1))
        );
        // Left to the general reading.
        assert_eq!(check(&format!("\"I1\",{}\n", &row[3..])), None);
        assert_eq!(check(&format!("{row}\n\n{row}\n")), None);
        assert_eq!(check(&format!("{row},extra\n")), None);
        assert_eq!(check(&format!("{row}\rx\n")), None);
        assert_eq!(
            check(&format!("I{},{}\n", "1".repeat(MAX_FIELD), &row[3..])),
            None
        );
        // A header without a required column, or with a quote.
        assert!(PlainHeader::read("item_id,debtor_id\n").is_none());
        assert!(PlainHeader::read(&header.replace("item_id", "\"item_id\"")).is_none());
    }

    /// However a piece is cut into chunks for the threads, its rows and
    /// rejects come out the same and in file order.
    #[test]
    fn plain_chunks_do_not_change_the_result() {
        let text = plain_ledger(300, false);
        let (header, rows) = text.split_at(text.find('\n').unwrap() + 1);
        let h = PlainHeader::read(header).unwrap();
        let debtors = debtors_named(&["D1", "D2"]);
        let read = |chunk: usize| {
            let mut rejects = Vec::new();
            let c = check_plain_piece(
                Piece {
                    bytes: rows.as_bytes(),
                    at: 0,
                    first_row: 2,
                },
                &h,
                "ledger.csv",
                &debtors,
                &mut rejects,
                chunk,
            )
            .unwrap();
            (c, rejects)
        };
        let (one, one_rejects) = read(1 << 20);
        assert!(one.bad > 0 && !one_rejects.is_empty());
        for chunk in [1, 40, 333, 5000] {
            let (c, rejects) = read(chunk);
            assert!(c.df.equals_missing(&one.df), "chunk {chunk}");
            assert_eq!(
                (c.mask, c.bad),
                (one.mask.clone(), one.bad),
                "chunk {chunk}"
            );
            assert_eq!(rejects, one_rejects, "chunk {chunk}");
        }
    }

    /// A debtors file with no quote is read where it lies and gives what
    /// the general reading gives: the same debtors, rejects and notes,
    /// row numbers included; anything else goes to the general reading.
    #[test]
    fn a_plain_debtors_file_is_read_as_the_general_reading_reads_it() {
        let text = debtors_text(3000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("debtors.csv");
        std::fs::write(&path, &text).unwrap();
        let table = read_table(&path, DEBTOR_COLUMNS, DEBTOR_OPTIONAL).unwrap();
        let mut rejects = Vec::new();
        let (general, bad) = check_debtors(&table, &mut rejects, "FR");
        rejects.sort();
        assert!(bad > 0 && !rejects.is_empty());
        for chunk in [1, 700, 1 << 20] {
            let mut plain_rejects = Vec::new();
            let (plain, count) = read_debtors_plain(&path, &mut plain_rejects, "FR", chunk)
                .unwrap()
                .expect("read plain");
            plain_rejects.sort();
            assert_eq!(plain_rejects, rejects, "chunk {chunk}");
            assert_eq!((count.rows, count.rejected), (table.height(), bad));
            assert_eq!(count.name, "debtors.csv");
            assert_same_debtors(&plain, &general);
        }
        // A quote anywhere, a short row or an empty file: the general
        // reading's.
        for other in [
            text.replacen("Name 7,", "\"Name, 7\",", 1),
            text.replacen(",75001,", ",", 1),
            text.lines().next().unwrap().to_owned() + "\n",
        ] {
            std::fs::write(&path, &other).unwrap();
            assert!(read_debtors_plain(&path, &mut Vec::new(), "FR", 1 << 20)
                .unwrap()
                .is_none());
        }
    }

    /// `text` (a debtors CSV) written as `dir/name.parquet`, one row group.
    fn debtors_parquet(dir: &Path, text: &str, name: &str) -> std::path::PathBuf {
        let csv = dir.join(format!("{name}.csv"));
        std::fs::write(&csv, text).unwrap();
        let mut df = read_table(&csv, DEBTOR_COLUMNS, DEBTOR_OPTIONAL)
            .unwrap()
            .df;
        let pq = dir.join(format!("{name}.parquet"));
        ParquetWriter::new(std::fs::File::create(&pq).unwrap())
            .finish(&mut df)
            .unwrap();
        pq
    }

    /// The same debtors, in the same order, found at the same places.
    fn assert_same_debtors(a: &Debtors, b: &Debtors) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.values().zip(b.values()) {
            assert_eq!(format!("{x:?}"), format!("{y:?}"));
            // Indexed under the hash computed while the row was read.
            assert_eq!(a.position(y.id()), b.position(y.id()));
        }
    }

    #[test]
    fn debtors_read_again_from_a_file_that_changed_are_an_error_naming_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let pq = debtors_parquet(dir.path(), &debtors_text(100), "debtors");
        let table = read_again(&pq, "debtors.parquet", 40, 60).unwrap();
        assert_eq!(table.height(), 60);
        // Rows 91-150 of a file now 100 rows long: 10 rows where 60 were.
        let Err(e) = read_again(&pq, "debtors.parquet", 90, 60) else {
            panic!("a file shorter than when first read was read again");
        };
        assert_eq!(
            e.to_string(),
            "debtors.parquet: rows 91-150 were 60 rows when first read and 10 when read again: an input must not change during the night"
        );
    }

    /// A Parquet debtors file read a slice at a time (decoded beside the
    /// checks, each slice dropped once checked) gives what the file read
    /// whole as one table gives: an id repeated within and across slices,
    /// over-long values, every kind of reject.
    #[test]
    fn a_parquet_debtors_file_read_in_slices_is_the_file_read_whole() {
        let mut text = debtors_text(3000);
        let long = "é".repeat(MAX_FIELD + 1);
        text = text.replacen("Name 1234,", &format!("{long},"), 1);
        text = text.replacen("2998 rue", &long, 1);
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("debtors.csv");
        std::fs::write(&csv, &text).unwrap();
        let mut df = read_table(&csv, DEBTOR_COLUMNS, DEBTOR_OPTIONAL)
            .unwrap()
            .df;
        for group in [None, Some(500)] {
            let pq = dir.path().join("debtors.parquet");
            ParquetWriter::new(std::fs::File::create(&pq).unwrap())
                .with_row_group_size(group)
                .finish(&mut df)
                .unwrap();
            let table = read_table(&pq, DEBTOR_COLUMNS, DEBTOR_OPTIONAL).unwrap();
            let mut rejects = Vec::new();
            let (whole, bad) = check_debtors(&table, &mut rejects, "FR");
            rejects.sort();
            assert!(rejects.iter().any(|r| r.reason.contains("more than once")));
            assert!(rejects.iter().any(|r| r.reason.contains("longer than")));
            // Another reading gives the debtors, counts and rejects of the
            // file read whole.
            let same_as_whole =
                |(read, count): (Debtors, FileCount), mut found: Vec<Reject>, at: String| {
                    found.sort();
                    assert_eq!(found, rejects, "{at}");
                    assert_eq!((count.rows, count.rejected), (3000, bad), "{at}");
                    assert_eq!(count.name, "debtors.parquet");
                    assert_same_debtors(&read, &whole);
                };
            for slice in [7, 700, 1 << 20] {
                let mut found = Vec::new();
                let read = read_debtors_parquet(&pq, &mut found, "FR", slice).unwrap();
                same_as_whole(
                    read,
                    found,
                    format!("slice {slice}, row groups of {group:?}"),
                );
            }
            let mut found = Vec::new();
            let read = read_debtors_pages(&pq, &mut found, "FR")
                .unwrap()
                .expect("a file Polars writes is read from its pages");
            same_as_whole(read, found, format!("from pages, row groups of {group:?}"));
        }
        // No rows: no debtors. A column missing: the error of any reading.
        let header = text.lines().next().unwrap().to_owned() + "\n";
        let pq = debtors_parquet(dir.path(), &header, "empty");
        let (none, count) = read_debtors_parquet(&pq, &mut Vec::new(), "FR", 64).unwrap();
        assert!(none.is_empty() && count.rows == 0);
        let mut no_city = df.drop("city").unwrap();
        ParquetWriter::new(std::fs::File::create(&pq).unwrap())
            .finish(&mut no_city)
            .unwrap();
        let Err(e) = read_debtors_parquet(&pq, &mut Vec::new(), "FR", 64) else {
            panic!("read without its city column");
        };
        assert!(e.to_string().contains("city"), "{e}");
    }

    /// Debtors (as CSV) with rejects of every kind, an id repeated.
    fn debtors_text(rows: usize) -> String {
        let mut text = String::from(
            "city,debtor_id,name,kind,language,country,email,phone,address_line1,address_line2,postal_code,score,consent_sms\r\n",
        );
        for i in 0..rows {
            let id = if i % 97 == 5 {
                "D5".to_owned()
            } else {
                format!("D{i}")
            };
            let kind = if i % 31 == 2 {
                "robot"
            } else if i % 2 == 0 {
                "person"
            } else {
                "business"
            };
            let email = match i % 7 {
                0 => format!("d{i}@example.fr"),
                1 => "not an address".to_owned(),
                _ => String::new(),
            };
            let phone = if i % 5 == 0 {
                "0612345678"
            } else if i % 5 == 1 {
                "12"
            } else {
                ""
            };
            let score = if i % 41 == 3 { "high" } else { "612.5" };
            let consent = ["", "no", "Y", "maybe"][i % 4];
            text.push_str(&format!(
                "Paris,{id},Name {i},{kind},fr,FR,{email},{phone},{i} rue,,75001,{score},{consent}\r\n"
            ));
        }
        text
    }

    /// `ledger.parquet` in `dir`, of the CSV ledger `text` read as text.
    fn parquet_ledger(dir: &Path, text: &str) -> std::path::PathBuf {
        parquet_ledger_in_groups(dir, text, None)
    }

    /// [`parquet_ledger`], in row groups of `group` rows when given.
    fn parquet_ledger_in_groups(
        dir: &Path,
        text: &str,
        group: Option<usize>,
    ) -> std::path::PathBuf {
        let csv = dir.join("ledger.csv");
        std::fs::write(&csv, text).unwrap();
        let mut df = read_table(&csv, LEDGER_COLUMNS, LEDGER_OPTIONAL)
            .unwrap()
            .df;
        let pq = dir.join("ledger.parquet");
        ParquetWriter::new(std::fs::File::create(&pq).unwrap())
            .with_row_group_size(group)
            .finish(&mut df)
            .unwrap();
        let groups = ParquetRows::open(&pq, "ledger.parquet")
            .unwrap()
            .metadata
            .row_groups
            .iter()
            .map(|g| g.num_rows())
            .collect::<Vec<_>>();
        // Polars cuts groups of about the size asked (17 gave 17 to 24).
        assert!(group.is_none_or(|g| groups.len() > 1 && groups.iter().all(|&n| n < 2 * g)));
        pq
    }

    /// A Parquet ledger checked a slice at a time gives what it gives
    /// checked whole, row numbers of rejects included.
    #[test]
    fn a_parquet_ledger_read_in_slices_is_the_ledger_read_whole() {
        let debtors: Debtors = [Debtor::new(DebtorTexts {
            id: "D1",
            ..Default::default()
        })]
        .into_iter()
        .collect();
        // One row group, and row groups that slices join, cut, or meet.
        for group in [None, Some(17), Some(64), Some(100)] {
            let dir = tempfile::tempdir().unwrap();
            let pq = parquet_ledger_in_groups(dir.path(), &ledger(300), group);
            let (whole, whole_count, mut whole_rejects) = read_ledger_whole(&pq, &debtors).unwrap();
            let bad = whole_count.rejected;
            whole_rejects.sort();
            assert!(bad > 0 && whole.height() > 0);
            // A row (the second: Parquet counts from 1) with its product
            // and its reference too long.
            let long = |c: &str| {
                whole_rejects
                    .iter()
                    .any(|r| r.row == 2 && r.column == c && r.reason.contains("longer than"))
            };
            assert!(long("product") && long("reference"));
            for slice in [1, 7, 64, 299, 300, 1000] {
                let (df, count, mut rejects, texts) =
                    read_ledger_parquet(&pq, &debtors, &mut ParquetSlices::start(&pq, slice))
                        .unwrap();
                let df = texts_in(&df, texts.as_ref());
                rejects.sort();
                let at = format!("slice {slice}, row groups of {group:?}");
                assert!(df.equals_missing(&texts_in(&whole, None)), "{at}");
                assert_eq!(count.rejected, bad, "{at}");
                assert_eq!(count.rows, 300);
                assert_eq!(rejects, whole_rejects, "{at}");
            }
        }
    }

    /// A Parquet ledger's slices of whole row groups have their ids and
    /// currencies read from the pages; a slice cut from a row group is
    /// read by Polars alone.
    #[test]
    fn a_parquet_ledger_slice_of_whole_groups_is_read_from_its_pages() {
        let dir = tempfile::tempdir().unwrap();
        let pq = parquet_ledger_in_groups(dir.path(), &ledger(300), Some(64));
        let rows = ParquetRows::open(&pq, "ledger.parquet").unwrap();
        let pages = pages::PageFile::open(&pq, LEDGER_SHAPE.paged, LEDGER_SHAPE.lengths_only)
            .expect("a ledger Polars wrote is read from its pages");
        let groups = pages.groups();
        let two = groups[0] + groups[1];
        let t = rows
            .table_from_pages(0, two, &LEDGER_SHAPE, &pages)
            .unwrap();
        assert_eq!(t.paged.len(), 3);
        assert_eq!(t.height(), two);
        assert!(t.col("item_id").is_none() && t.col("amount").is_some());
        assert_eq!(t.texts("item_id", 0, two).get(5), "I5");
        assert_eq!(
            t.texts("item_id", 0, two).get(two - 1),
            format!("I{}", two - 1)
        );
        let cut = rows.table_from_pages(0, 10, &LEDGER_SHAPE, &pages).unwrap();
        assert!(cut.paged.is_empty() && cut.col("item_id").is_some());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// A Parquet file with its footer damaged is read, or refused with
        /// an error naming it: never a panic of the reader.
        #[test]
        fn a_damaged_parquet_footer_is_an_error_never_a_panic(
            changes in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 1..6),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let pq = parquet_ledger(dir.path(), &ledger(50));
            let mut bytes = std::fs::read(&pq).unwrap();
            let n = bytes.len();
            let footer = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
            for (at, byte) in changes {
                let i = n - 8 - footer + ((footer - 1) as f64 * at) as usize;
                bytes[i] = byte;
            }
            std::fs::write(&pq, &bytes).unwrap();
            for read in [
                ParquetRows::open(&pq, "ledger.parquet").map(|_| ()),
                read_parquet_frame(&pq, "ledger.parquet").map(|_| ()),
            ] {
                if let Err(e) = read {
                    prop_assert!(e.to_string().starts_with("ledger.parquet: "), "{}", e);
                }
            }
        }
    }

    /// A Parquet ledger whose reference is not UTF-8 (patched into a file
    /// Polars wrote, uncompressed) is refused as Polars refuses it, though
    /// its references are otherwise read from their pages.
    #[test]
    fn a_parquet_ledger_reference_not_utf8_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("ledger.csv");
        std::fs::write(&csv, ledger(300)).unwrap();
        let mut df = read_table(&csv, LEDGER_COLUMNS, LEDGER_OPTIONAL)
            .unwrap()
            .df;
        let pq = dir.path().join("ledger.parquet");
        ParquetWriter::new(std::fs::File::create(&pq).unwrap())
            .with_compression(ParquetCompression::Uncompressed)
            .finish(&mut df)
            .unwrap();
        let mut bytes = std::fs::read(&pq).unwrap();
        let at = memchr::memmem::find(&bytes, b"F-123").unwrap();
        bytes[at + 1] = 0xFF;
        std::fs::write(&pq, &bytes).unwrap();
        let debtors = debtors_named(&["D1"]);
        let Err(e) = read_ledger_parquet(&pq, &debtors, &mut ParquetSlices::start(&pq, 64)) else {
            panic!("a reference not UTF-8 was read");
        };
        assert!(e.to_string().contains("ledger.parquet: "), "{e}");
        assert!(e.to_string().contains("invalid UTF-8"), "{e}");
    }

    /// A file's slices are whole row groups, joined up to the size asked,
    /// unless a row group is over twice that size; they cover every row
    /// once, in order.
    #[test]
    fn parquet_slices_follow_row_groups() {
        assert_eq!(
            slice_bounds(&[100, 100, 100], 300, 150),
            [(0, 200), (200, 100)]
        );
        assert_eq!(
            slice_bounds(&[100, 100, 100], 300, 100),
            [(0, 100), (100, 100), (200, 100)]
        );
        assert_eq!(slice_bounds(&[10, 500, 10], 520, 100).len(), 7);
        assert_eq!(
            slice_bounds(&[10, 500, 10], 520, 100)[..2],
            [(0, 10), (10, 100)]
        );
        // Row groups that do not add up to the file: slices cut anywhere.
        assert_eq!(slice_bounds(&[10], 30, 20), [(0, 20), (20, 10)]);
        assert_eq!(slice_bounds(&[], 0, 20), [(0, 0)]);
        let mut runner = proptest::test_runner::TestRunner::default();
        let groups = proptest::collection::vec(0usize..400, 0..12);
        runner
            .run(&(groups, 1usize..300), |(groups, target)| {
                let rows: usize = groups.iter().sum();
                let bounds = slice_bounds(&groups, rows, target);
                let mut next = 0;
                let ends: std::collections::BTreeSet<usize> = groups
                    .iter()
                    .scan(0, |at, g| {
                        *at += g;
                        Some(*at)
                    })
                    .collect();
                for &(start, len) in &bounds {
                    proptest::prop_assert_eq!(start, next);
                    // A slice ends where a row group does, or is cut from
                    // one over twice the size asked.
                    let end = start + len;
                    let in_big = groups.iter().scan(0, |at, &g| {
                        *at += g;
                        Some((*at - g, g))
                    });
                    let cut = in_big
                        .filter(|&(s, g)| g > 2 * target && s <= start && end <= s + g)
                        .count();
                    proptest::prop_assert!(
                        ends.contains(&end) || (cut == 1 && len == target) || rows == 0
                    );
                    proptest::prop_assert!(len > 0 || rows == 0);
                    next = end;
                }
                proptest::prop_assert_eq!(next, rows);
                Ok(())
            })
            .unwrap();
    }

    /// The documents' texts of a Parquet ledger, read a slice at a time
    /// with only a few slices held, are those read at once, in any order
    /// they are asked for; a file that changed is an error.
    #[test]
    fn parquet_texts_held_a_few_slices_at_a_time_are_the_texts() {
        let dir = tempfile::tempdir().unwrap();
        let pq = parquet_ledger_in_groups(dir.path(), &plain_ledger(300, false), Some(20));
        let whole = read_parquet_texts(&pq, "ledger.parquet", 1000).unwrap();
        let sliced = SlicedTexts::open_in(&pq, 300, 20).unwrap();
        let n = sliced.bounds.len();
        assert!(n > HELD_SLICES + 2, "{n} slices");
        let held = || {
            sliced
                .held
                .iter()
                .filter(|h| h.lock().unwrap().is_some())
                .count()
        };
        let expect = |row: usize| whole.each_ref().map(|c| c.get(row).map(str::to_owned));
        // In file order, as the documents of a ledger in debtor order ask.
        for row in 0..300 {
            assert_eq!(sliced.row(row), expect(row), "row {row}");
            assert!(held() <= HELD_SLICES);
        }
        assert_eq!(sliced.order.lock().unwrap().1, n, "each slice read once");
        // All over the file: slices read again, until they are kept.
        for step in 0..600 {
            let row = (step * 137) % 300;
            assert_eq!(sliced.row(row), expect(row), "row {row}");
        }
        assert_eq!(held(), n, "read twice over, every slice is kept");
        sliced.failed().unwrap();
        // Asked for by the documents' threads at once (a slice read on
        // Polars' pool while they wait once overflowed their stacks).
        let fresh = SlicedTexts::open_in(&pq, 300, 20).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let rows: Vec<[Option<String>; 3]> =
            pool.install(|| (0..300).into_par_iter().map(|r| fresh.row(r)).collect());
        assert!(rows.iter().enumerate().all(|(r, t)| *t == expect(r)));
        fresh.failed().unwrap();
        let e = SlicedTexts::open_in(&pq, 299, 20).err().unwrap();
        assert!(
            e.contains("had 299 rows when the night read it and 300 now"),
            "{e}"
        );
        // Gone after the night read it: no texts, and an error to report.
        let later = SlicedTexts::open_in(&pq, 300, 20).unwrap();
        std::fs::remove_file(&pq).unwrap();
        assert_eq!(later.row(0), [None, None, None]);
        let e = later.failed().unwrap_err().to_string();
        assert!(
            e.contains("ledger.parquet: cannot read: No such file"),
            "{e}"
        );
    }

    /// A Parquet ledger's texts read again a slice at a time are those
    /// read at once.
    #[test]
    fn parquet_texts_read_in_slices_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let pq = parquet_ledger(dir.path(), &plain_ledger(300, false));
        let whole = read_parquet_texts(&pq, "ledger.parquet", 1000).unwrap();
        assert!(whole.iter().all(|c| c.len() == 300));
        for slice in [1, 7, 100] {
            let sliced = read_parquet_texts(&pq, "ledger.parquet", slice).unwrap();
            for (a, b) in sliced.iter().zip(&whole) {
                assert!(a.iter().eq(b.iter()), "slice {slice}");
                assert!(a.chunks().len() > 1);
            }
        }
        let grouped = dir.path().join("grouped");
        std::fs::create_dir(&grouped).unwrap();
        let pq = parquet_ledger_in_groups(&grouped, &plain_ledger(300, false), Some(64));
        for slice in [1, 64, 100, 1000] {
            let sliced = read_parquet_texts(&pq, "ledger.parquet", slice).unwrap();
            for (a, b) in sliced.iter().zip(&whole) {
                assert!(a.iter().eq(b.iter()), "slice {slice}, row groups of 64");
            }
        }
        assert_eq!(whole[0].get(3), Some("I5"));
        assert_eq!(whole[1].get(0), None);
        assert_eq!(whole[2].get(1), Some("F-1"));
    }

    /// A Parquet ledger changed after the night read it is not read again
    /// for the documents' texts as if it were the same file.
    #[test]
    fn a_parquet_ledger_changed_during_the_night_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // No id repeats: the texts are then first read for the documents.
        let write = |rows: usize| {
            let mut text = String::from(
                "item_id,debtor_id,currency,amount,open_amount,issued_on,due_on,product\n",
            );
            for i in 0..rows {
                text.push_str(&format!(
                    "I{i},D1,EUR,10.00,10.00,2026-01-01,2026-02-01,card\n"
                ));
            }
            parquet_ledger(dir.path(), &text)
        };
        let pq = write(300);
        let debtors = debtors_named(&["D1"]);
        let (df, _, _, texts) =
            read_ledger_parquet(&pq, &debtors, &mut ParquetSlices::start(&pq, 64)).unwrap();
        write(200);
        let Err(e) = ItemTexts::new(&df, texts.as_ref()) else {
            panic!("read again from a changed file");
        };
        let e = e.to_string();
        assert!(
            e.contains("ledger.parquet") && e.contains("300 rows"),
            "{e}"
        );
        assert!(e.contains("must not change during the night"), "{e}");
    }

    /// A Parquet ledger with real date columns (nulls among them) is
    /// checked with the dates as they are, and gives what the text
    /// reading of the same file gives.
    #[test]
    fn parquet_dates_are_read_as_days() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("ledger.csv");
        std::fs::write(&csv, plain_ledger(300, false)).unwrap();
        let text = read_table(&csv, LEDGER_COLUMNS, LEDGER_OPTIONAL)
            .unwrap()
            .df;
        let mut cols = Vec::new();
        for c in text.columns() {
            if c.name() == "issued_on" || c.name() == "due_on" {
                // Texts that are not dates become nulls.
                let days: Int32Chunked = c
                    .str()
                    .unwrap()
                    .iter()
                    .map(|v| v.and_then(dates::parse_days))
                    .collect();
                cols.push(days.with_name(c.name().clone()).into_date().into_column());
            } else {
                cols.push(c.clone());
            }
        }
        let mut df = DataFrame::new(text.height(), cols).unwrap();
        assert!(df.column("due_on").unwrap().null_count() > 0);
        let pq = dir.path().join("ledger.parquet");
        ParquetWriter::new(std::fs::File::create(&pq).unwrap())
            .finish(&mut df)
            .unwrap();
        let debtors = debtors_named(&["D1", "D2"]);
        let (whole, whole_count, mut whole_rejects) = read_ledger_whole(&pq, &debtors).unwrap();
        whole_rejects.sort();
        assert!(whole_count.rejected > 0);
        assert!(whole_rejects.iter().any(|r| r.column == "due_on"));
        for slice in [7, 300] {
            let (df, count, mut rejects, texts) =
                read_ledger_parquet(&pq, &debtors, &mut ParquetSlices::start(&pq, slice)).unwrap();
            let df = texts_in(&df, texts.as_ref());
            rejects.sort();
            assert!(df.equals_missing(&texts_in(&whole, None)), "slice {slice}");
            assert_eq!(count, whole_count);
            assert_eq!(rejects, whole_rejects, "slice {slice}");
        }
    }

    /// A Parquet ledger whose amounts are decimal columns, at several
    /// scales, with values of every kind the checks refuse among good
    /// ones: read a slice at a time (good slices as cents), it gives what
    /// the same file gives with its decimals made text, rejects and their
    /// texts included.
    #[test]
    fn parquet_decimal_amounts_are_read_as_their_texts() {
        // (amount, open amount) in units of 10^-3; None a null.
        let value = |i: usize| -> (Option<i128>, Option<i128>) {
            match i % 31 {
                3 => (Some(-1_000), Some(0)),
                7 => (Some(1_234), Some(1_000)),
                9 => (None, Some(5_000)),
                12 => (Some(5_000), Some(6_000)),
                15 => (Some(i128::from(i64::MAX) * 10), Some(10)),
                18 => (Some(10_000), Some(-10)),
                _ => (Some(10_000 + 10 * i as i128), Some((i as i128 % 7) * 1_000)),
            }
        };
        let n = 300;
        let debtors = debtors_named(&["D1", "D2"]);
        for scale in [0usize, 2, 3, 5] {
            let dir = tempfile::tempdir().unwrap();
            let at_scale = |v: Option<i128>| {
                v.map(|v| {
                    if scale >= 3 {
                        v * 10i128.pow(scale as u32 - 3)
                    } else {
                        v / 10i128.pow(3 - scale as u32)
                    }
                })
            };
            let decimals = |k: usize, name: &str| {
                Int128Chunked::from_iter((0..n).map(|i| {
                    let (a, o) = value(i);
                    at_scale(if k == 0 { a } else { o })
                }))
                .into_decimal_unchecked(38, scale)
                .into_column()
                .with_name(name.into())
            };
            let texts = |f: &dyn Fn(usize) -> String, name: &str| {
                Column::new(name.into(), (0..n).map(f).collect::<Vec<_>>())
            };
            let mut df = DataFrame::new(
                n,
                vec![
                    texts(&|i| format!("I{i}"), "item_id"),
                    texts(&|i| ["D1", "D2"][i % 2].to_owned(), "debtor_id"),
                    texts(&|_| "EUR".to_owned(), "currency"),
                    decimals(0, "amount"),
                    decimals(1, "open_amount"),
                    texts(&|_| "2026-01-01".to_owned(), "issued_on"),
                    texts(&|i| format!("2026-02-{:02}", 1 + i % 28), "due_on"),
                ],
            )
            .unwrap();
            let pq = dir.path().join("ledger.parquet");
            ParquetWriter::new(std::fs::File::create(&pq).unwrap())
                .finish(&mut df)
                .unwrap();
            // Read whole, the decimals are made text, as they always were.
            let (whole, whole_count, mut whole_rejects) = read_ledger_whole(&pq, &debtors).unwrap();
            whole_rejects.sort();
            assert!(whole.height() > 200, "scale {scale}");
            let reasons: std::collections::BTreeSet<&str> =
                whole_rejects.iter().map(|r| r.column.as_str()).collect();
            assert!(reasons.contains("amount") && reasons.contains("open_amount"));
            for slice in [1, 7, 64, 300] {
                let (df, count, mut rejects, texts) =
                    read_ledger_parquet(&pq, &debtors, &mut ParquetSlices::start(&pq, slice))
                        .unwrap();
                let df = texts_in(&df, texts.as_ref());
                rejects.sort();
                assert!(
                    df.equals_missing(&texts_in(&whole, None)),
                    "scale {scale}, slice {slice}"
                );
                assert_eq!(count, whole_count, "scale {scale}, slice {slice}");
                assert_eq!(rejects, whole_rejects, "scale {scale}, slice {slice}");
            }
        }
    }

    /// Dates of a Parquet file become the text Polars' own cast writes,
    /// nulls included, and a year the fast writer cannot write falls back
    /// to that cast.
    #[test]
    fn parquet_dates_become_the_same_text() {
        for days in [
            vec![Some(0), None, Some(20_414), Some(-1)],
            vec![Some(3_000_000), Some(1)],
        ] {
            let c = Int32Chunked::from_iter(days.clone())
                .into_column()
                .cast(&DataType::Date)
                .unwrap();
            let df = DataFrame::new(days.len(), vec![c.clone()]).unwrap();
            let t = as_text(df, "x.parquet", 1).unwrap();
            let expected = c.cast(&DataType::String).unwrap();
            assert!(t.df.columns()[0].equals_missing(&expected), "{days:?}");
        }
    }

    /// A quoted header could hide a newline from the row-end search: such
    /// a file is read whole, with the same result.
    #[test]
    fn a_quoted_header_is_read_whole() {
        let text = ledger(200).replacen("item_id,", "\"item_id\",", 1);
        let (whole, streamed) = whole_and_pieces(&text, 256);
        assert!(streamed.is_none());
        assert!(whole.0.height() > 0);
        let plain = whole_and_pieces(&ledger(200), 256).0;
        assert!(whole.0.equals_missing(&plain.0));
        assert_eq!(whole.2, plain.2);
    }

    /// A row Polars cannot parse, far into the file: the pieces give up and
    /// the whole reading names the row, as for a small file.
    #[test]
    fn a_broken_row_sends_the_file_to_the_whole_reading() {
        let mut text = ledger(100);
        text.push_str("I999,D1,EUR,1.00,1.00,2026-01-01,2026-01-02,card,F,extra,extra\n");
        text.push_str(ledger(100).split_once('\n').unwrap().1);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("debtors.csv"), DEBTORS).unwrap();
        let l = dir.path().join("ledger.csv");
        std::fs::write(&l, &text).unwrap();
        let debtors: Debtors = [Debtor::new(DebtorTexts {
            id: "D1",
            ..Default::default()
        })]
        .into_iter()
        .collect();
        assert!(read_ledger_pieces(&l, &debtors, 256).unwrap().is_none());
        let err = read_ledger(&l, &debtors, None, &mut Vec::new())
            .err()
            .unwrap();
        assert!(matches!(err, IngestError::Malformed { .. }), "{err}");
        assert!(
            err.to_string().contains("has 11 fields, the header has 9"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn any_piece_size_reads_the_same(rows in 1usize..120, piece in 40usize..2000) {
            let text = ledger(rows);
            let (whole, streamed) = whole_and_pieces(&text, piece);
            // Only a file that fits in the first read is left to the caller.
            prop_assert!(streamed.is_some() || text.len() <= piece + piece.min(1 << 20));
            if let Some(streamed) = streamed {
                prop_assert!(whole.0.equals_missing(&streamed.0));
                prop_assert_eq!(whole.1, streamed.1);
                prop_assert_eq!(whole.2, streamed.2);
            }
        }
    }
}
