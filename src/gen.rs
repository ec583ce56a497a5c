//! Gen: a synthetic night (ledger, debtors, events) with the shapes of a
//! real retail book, for people trying the engine and for benchmarks. The
//! same `--debtors`, `--seed` and `--as-of` always give the same files: the
//! generator is ChaCha8, whose stream is fixed by its specification.
//!
//! Shapes: 1 to 8 items per debtor (4.5 on average), log-normal
//! amounts (median about 120, a long tail to 50,000), due dates spread over
//! the year before the night and a month after it, partial and full
//! payments, about 5 % multi-currency debtors, about 3 % businesses, and
//! events of every kind for a few percent of debtors.

use crate::policy::display_path;
use chrono::NaiveDate;
use polars::prelude::*;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

/// How a Parquet file's pages are compressed. Snappy is what Spark,
/// pyarrow, DuckDB, Snowflake, BigQuery and Redshift write unless told
/// otherwise, so a warehouse's export most likely has it; zstd is Polars'
/// default, smaller and slower to read (BENCHMARKS.md, 2026-12-02, eighth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    Snappy,
    Zstd,
    Lz4,
    Uncompressed,
}

#[derive(Debug, Clone)]
pub struct GenArgs {
    pub debtors: usize,
    pub seed: u64,
    pub as_of: NaiveDate,
    pub out: PathBuf,
    pub format: Format,
    /// Of Parquet files; CSV files are not compressed.
    pub compression: Compression,
}

/// What was written.
#[derive(Debug, Default)]
pub struct Generated {
    pub debtors: usize,
    pub items: usize,
    pub events: usize,
    pub files: Vec<PathBuf>,
}

struct Rng(ChaCha8Rng);

impl Rng {
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi] (inclusive).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.0.next_u64() % (hi - lo + 1) as u64) as i64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.range(0, xs.len() as i64 - 1) as usize]
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

const FIRST: &[&str] = &[
    "Jean", "Marie", "Pierre", "Sophie", "Luc", "Camille", "Nicolas", "Julie", "Thomas", "Emma",
    "Louis", "Chloé", "Hugo", "Léa", "Paul", "Manon", "Amina", "Karim", "Olivia", "James",
];
const LAST: &[&str] = &[
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "Smith", "Brown", "Nguyen",
];
const ZH_NAMES: &[&str] = &["王伟", "李娜", "张敏", "刘洋", "陈静", "杨磊"];
const STREETS: &[&str] = &[
    "rue de la Paix",
    "avenue Victor Hugo",
    "boulevard Voltaire",
    "rue du Moulin",
    "place de la République",
    "chemin des Vignes",
];
const CITIES: &[(&str, &str)] = &[
    ("75002", "Paris"),
    ("69003", "Lyon"),
    ("13001", "Marseille"),
    ("31000", "Toulouse"),
    ("33000", "Bordeaux"),
    ("59000", "Lille"),
    ("44000", "Nantes"),
    ("67000", "Strasbourg"),
];
const COMPANIES: &[&str] = &["SARL", "SAS", "EURL", "SA"];
const PRODUCTS: &[&str] = &["card", "loan", "mobile", "lease", "overdraft"];

fn csv_line(cells: &[&str]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(cells).expect("in memory");
    w.into_inner().expect("in memory")
}

fn cents(c: i64) -> String {
    crate::money::format_cents(c)
}

/// One output file: CSV rows are written as they come (a million debtors
/// never sit in memory); Parquet columns are gathered, then written.
struct Table {
    names: Vec<&'static str>,
    rows: usize,
    csv: Option<std::io::BufWriter<std::fs::File>>,
    cols: Vec<Vec<String>>,
    path: PathBuf,
    format: Format,
    compression: Compression,
}

impl Table {
    fn new(
        dir: &Path,
        stem: &str,
        (format, compression): (Format, Compression),
        names: &[&'static str],
    ) -> std::io::Result<Table> {
        let ext = match format {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        };
        let path = dir.join(format!("{stem}.{ext}"));
        let csv = match format {
            Format::Csv => {
                let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
                f.write_all(&csv_line(names))?;
                Some(f)
            }
            Format::Parquet => None,
        };
        Ok(Table {
            names: names.to_vec(),
            rows: 0,
            csv,
            cols: vec![
                Vec::new();
                if format == Format::Parquet {
                    names.len()
                } else {
                    0
                }
            ],
            path,
            format,
            compression,
        })
    }

    fn push(&mut self, row: &[&str]) -> std::io::Result<()> {
        self.rows += 1;
        match &mut self.csv {
            Some(f) => f.write_all(&csv_line(row)),
            None => {
                for (c, v) in self.cols.iter_mut().zip(row) {
                    c.push((*v).to_owned());
                }
                Ok(())
            }
        }
    }

    fn finish(self) -> std::io::Result<PathBuf> {
        if let Some(mut f) = self.csv {
            f.flush()?;
            return Ok(self.path);
        }
        debug_assert_eq!(self.format, Format::Parquet);
        // Dates as Parquet dates and amounts as decimals of two places, as
        // a warehouse export has them (never floats).
        let columns: Vec<Column> = self
            .names
            .iter()
            .zip(&self.cols)
            .map(|(name, values)| {
                if matches!(*name, "issued_on" | "due_on" | "date" | "until") {
                    let days: Int32Chunked = values
                        .iter()
                        .map(|v| crate::dates::parse_date(v).map(crate::dates::to_days))
                        .collect();
                    days.with_name((*name).into()).into_date().into_column()
                } else if matches!(*name, "amount" | "open_amount") {
                    let cents: Int128Chunked = values
                        .iter()
                        .map(|v| crate::money::parse_amount(v).ok().map(i128::from))
                        .collect();
                    cents
                        .with_name((*name).into())
                        .into_decimal_unchecked(18, 2)
                        .into_column()
                } else {
                    Column::new((*name).into(), values)
                }
            })
            .collect();
        let height = self.rows;
        let mut df = DataFrame::new(height, columns).map_err(std::io::Error::other)?;
        let f = std::fs::File::create(&self.path)?;
        let compression = match self.compression {
            Compression::Snappy => ParquetCompression::Snappy,
            Compression::Zstd => ParquetCompression::Zstd(None),
            Compression::Lz4 => ParquetCompression::Lz4Raw,
            Compression::Uncompressed => ParquetCompression::Uncompressed,
        };
        ParquetWriter::new(f)
            .with_compression(compression)
            .finish(&mut df)
            .map_err(std::io::Error::other)?;
        Ok(self.path)
    }
}

pub fn generate(args: &GenArgs) -> anyhow::Result<Generated> {
    let io = |e: std::io::Error| anyhow::anyhow!("{}: {e}", display_path(&args.out));
    std::fs::create_dir_all(&args.out).map_err(io)?;
    let mut rng = Rng(ChaCha8Rng::seed_from_u64(args.seed));
    let as_of = args.as_of;
    let (dir, format) = (args.out.as_path(), (args.format, args.compression));
    // The columns the engine reads, optional ones included.
    use crate::ingest::{
        DEBTOR_COLUMNS, DEBTOR_OPTIONAL, EVENT_COLUMNS, EVENT_OPTIONAL, LEDGER_COLUMNS,
        LEDGER_OPTIONAL,
    };
    let names = |a: &[&'static str], b: &[&'static str]| -> Vec<&'static str> {
        a.iter().chain(b).copied().collect()
    };
    let mut debtors = Table::new(
        dir,
        "debtors",
        format,
        &names(DEBTOR_COLUMNS, DEBTOR_OPTIONAL),
    )
    .map_err(io)?;
    let mut ledger = Table::new(
        dir,
        "ledger",
        format,
        &names(LEDGER_COLUMNS, LEDGER_OPTIONAL),
    )
    .map_err(io)?;
    let mut events =
        Table::new(dir, "events", format, &names(EVENT_COLUMNS, EVENT_OPTIONAL)).map_err(io)?;
    let width = args.debtors.max(1).to_string().len().max(7);
    let mut item_no = 0u64;
    for i in 0..args.debtors {
        let id = format!("D{:0width$}", i + 1);
        let business = rng.chance(0.03);
        let lang = {
            let x = rng.unit();
            if x < 0.80 {
                "fr"
            } else if x < 0.95 {
                "en"
            } else {
                "zh"
            }
        };
        let name = if business {
            format!(
                "{} {} {}",
                rng.pick(LAST),
                rng.pick(&["Services", "Conseil", "Bâtiment", "Transports"]),
                rng.pick(COMPANIES)
            )
        } else if lang == "zh" {
            (*rng.pick(ZH_NAMES)).to_owned()
        } else {
            format!("{} {}", rng.pick(FIRST), rng.pick(LAST))
        };
        let (country, tz) = if rng.chance(0.93) {
            ("FR", "Europe/Paris")
        } else {
            *rng.pick(&[
                ("BE", "Europe/Brussels"),
                ("CH", "Europe/Zurich"),
                ("GB", "Europe/London"),
                ("CN", "Asia/Shanghai"),
            ])
        };
        let email = if rng.chance(0.85) {
            format!(
                "{}@example.{}",
                id.to_lowercase(),
                if country == "FR" { "fr" } else { "com" }
            )
        } else {
            String::new()
        };
        let phone = if rng.chance(0.8) {
            if country == "FR" {
                format!("+336{:08}", rng.range(0, 99_999_999))
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        let (postal, city) = *rng.pick(CITIES);
        let address = format!("{} {}", rng.range(1, 120), rng.pick(STREETS));
        let score = if rng.chance(0.6) {
            rng.range(300, 900).to_string()
        } else {
            String::new()
        };
        let consent_email = if rng.chance(0.05) { "false" } else { "" };
        let consent_sms = if rng.chance(0.08) { "false" } else { "" };
        debtors
            .push(&[
                &id,
                &name,
                if business { "business" } else { "person" },
                lang,
                country,
                &email,
                &phone,
                &address,
                "",
                postal,
                city,
                tz,
                &score,
                consent_email,
                consent_sms,
            ])
            .map_err(io)?;

        // Items: 1 to 8 (4.5 on average: a million debtors, about 4.5
        // million items).
        let n_items = rng.range(1, 8);
        let multi = rng.chance(0.05);
        for k in 0..n_items {
            item_no += 1;
            let currency = if multi && k % 2 == 1 {
                *rng.pick(&["USD", "GBP", "CHF"])
            } else {
                "EUR"
            };
            let mu = if business {
                (900f64).ln()
            } else {
                (120f64).ln()
            };
            let amount = ((mu + 1.0 * rng.normal()).exp() * 100.0).round() as i64;
            let amount = amount.clamp(100, 5_000_000);
            let open = {
                let x = rng.unit();
                if x < 0.60 {
                    amount
                } else if x < 0.85 {
                    (amount as f64 * rng.unit()).round() as i64
                } else {
                    0
                }
            };
            let due = as_of - chrono::Duration::days(rng.range(-30, 365));
            let issued = due - chrono::Duration::days(30);
            let item_id = format!("I{item_no:09}");
            let reference = format!("F-{item_no:09}");
            ledger
                .push(&[
                    &item_id,
                    &id,
                    currency,
                    &cents(amount),
                    &cents(open),
                    &issued.to_string(),
                    &due.to_string(),
                    *rng.pick(PRODUCTS),
                    &reference,
                ])
                .map_err(io)?;
        }

        // Events for a few percent of debtors, every kind represented.
        if rng.chance(0.06) {
            let day = |rng: &mut Rng, back: i64| as_of - chrono::Duration::days(rng.range(0, back));
            let x = rng.unit();
            let mut ev = |date: NaiveDate, kind: &str, until: Option<NaiveDate>, note: &str| {
                events.push(&[
                    &id,
                    &date.to_string(),
                    kind,
                    &until.map(|u| u.to_string()).unwrap_or_default(),
                    "",
                    note,
                ])
            };
            if x < 0.25 {
                let d = day(&mut rng, 20);
                ev(
                    d,
                    "promise_to_pay",
                    Some(d + chrono::Duration::days(rng.range(3, 21))),
                    "phone",
                )
                .map_err(io)?;
            } else if x < 0.40 {
                let d = day(&mut rng, 60);
                ev(
                    d,
                    "payment_plan",
                    Some(d + chrono::Duration::days(90)),
                    "3 instalments",
                )
                .map_err(io)?;
            } else if x < 0.60 {
                let d = day(&mut rng, 60);
                ev(d, "dispute", None, "contests the amount").map_err(io)?;
                if rng.chance(0.4) {
                    ev(
                        d + chrono::Duration::days(rng.range(1, 30)),
                        "dispute_resolved",
                        None,
                        "",
                    )
                    .map_err(io)?;
                }
            } else if x < 0.70 {
                let d = day(&mut rng, 200);
                ev(d, "insolvency", None, "").map_err(io)?;
                if rng.chance(0.3) {
                    ev(
                        d + chrono::Duration::days(rng.range(30, 180)),
                        "insolvency_closed",
                        None,
                        "",
                    )
                    .map_err(io)?;
                }
            } else if x < 0.85 {
                ev(day(&mut rng, 100), "do_not_contact", None, "").map_err(io)?;
            } else if x < 0.98 {
                ev(day(&mut rng, 30), "contact_outcome", None, "no answer").map_err(io)?;
            } else {
                ev(day(&mut rng, 100), "deceased", None, "").map_err(io)?;
            }
        }
    }

    let (n_debtors, n_items, n_events) = (debtors.rows, ledger.rows, events.rows);
    let files = vec![
        ledger.finish().map_err(io)?,
        debtors.finish().map_err(io)?,
        events.finish().map_err(io)?,
    ];
    Ok(Generated {
        debtors: n_debtors,
        items: n_items,
        events: n_events,
        files,
    })
}
