//! The command line. Exit codes: 0 ok, 2 bad input or policy (the message
//! says where), 1 an internal error or the machine's (a full disk).

use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "dunning",
    version,
    about = "Nightly, rules-driven debt collection",
    long_about = "Reads the receivables ledger, finds who is late and by how much, places \
every debtor in a segment, applies the policy's escalation rules and writes the files \
other systems act on.\n\nExit codes: 0 ok, 2 bad input, policy or state (the message says \
where), 1 an internal error or the machine's (a full disk).",
    after_help = "A first night, on the shipped fixtures:\n  dunning check rules/retail-fr\n  \
dunning run --policy rules/retail-fr --ledger fixtures/holds/nights/2026-01-05/ledger.csv \\\n    \
--debtors fixtures/holds/debtors.csv --events fixtures/holds/events.csv \\\n    \
--as-of 2026-01-05 --state /tmp/state --out /tmp/out/2026-01-05\n  \
dunning explain --debtor H01 --policy rules/retail-fr ... (the same inputs)\n  \
dunning report --state /tmp/state --out /tmp/kpis\n\n\
`dunning <command> --help` shows each command's options and an example."
)]
pub struct Cli {
    /// Log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Only warnings and errors in the log.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one night: decide every account and write the night's files.
    #[command(
        after_help = "Example:\n  dunning run --policy rules/retail-fr \\\n    --ledger fixtures/holds/nights/2026-01-05/ledger.csv --debtors fixtures/holds/debtors.csv \\\n    --events fixtures/holds/events.csv --as-of 2026-01-05 \\\n    --state /var/lib/dunning/state --out /var/lib/dunning/out/2026-01-05\n\nIt ends with a one-screen summary (not with --quiet) and writes report.html beside the\nnight's files. Exit codes: 0 the night is done and committed, 2 bad input, policy or\nstate (the message says where and what to do), 1 an internal error or the machine's\n(a full disk; the message names the file). A failed night leaves nothing behind: fix\nthe cause and run it again."
    )]
    Run(RunCmd),
    /// Load a policy and report every problem found, with file:line:column.
    #[command(
        after_help = "Example:\n  dunning check rules/retail-fr\n  dunning check rules/retail-fr --format json\n\nExit codes: 0 the policy loads, 2 it has problems."
    )]
    Check(CheckCmd),
    /// Why a debtor gets what it gets: the facts, every condition tried and
    /// its value, holds, fallbacks and the decision. Writes nothing.
    #[command(
        after_help = "Same inputs as `run`; the state is read, never written or locked.\n\nExample:\n  dunning explain --debtor D000123 --policy rules/retail-fr \\\n    --ledger ledger.csv --debtors debtors.csv --events events.csv \\\n    --as-of 2026-01-10 --state /var/lib/dunning/state\n\nExit codes: 0 explained, 2 bad input or no such debtor in tonight's accounts."
    )]
    Explain(ExplainCmd),
    /// Run the policy's own test cases (tests/*.yaml in the policy folder).
    #[command(
        after_help = "Each case gives account facts or a tiny ledger, the debtor, events and prior \
state, an as-of date and what it expects; see rules/README.md.\n\nExample:\n  dunning test rules/retail-fr\n  dunning test rules/retail-fr --filter hold\n\nExit codes: 0 every case passed, 1 a case failed, 2 the policy or a test file is broken."
    )]
    Test(TestCmd),
    /// Compare two nights' outputs, e.g. two policy versions on one ledger.
    #[command(
        after_help = "Example:\n  dunning run --policy rules/v1 ... --out /tmp/a\n  dunning run --policy rules/v2 ... --out /tmp/b   (its own --state)\n  dunning diff /tmp/a /tmp/b\n  dunning diff /tmp/a /tmp/b --format csv > changes.csv\n\nExit codes (like diff): 0 identical, 1 different, 2 error."
    )]
    Diff(DiffCmd),
    /// Deliver a committed night's e-mails over SMTP, exactly once.
    #[command(
        after_help = "Credentials come from DUNNING_SMTP_USERNAME and DUNNING_SMTP_PASSWORD, never from \
the URL or arguments. Every delivery is recorded in STATE/deliveries/<as-of>.csv before the next \
message is taken; run `send` again after a crash or a dropped connection and it finishes the rest \
without sending anything twice.\n\nExample:\n  dunning send /var/lib/dunning/out/2026-11-22 \\\n    --smtp 'smtp://relay.bank.internal:587?tls=starttls' --state /var/lib/dunning/state --rate 50/s\n\nExit codes: 0 every e-mail delivered (or held back by --max / --dry-run), 3 some failed, \
are deferred or in doubt (the report lists them), 2 bad arguments or output folder."
    )]
    Send(SendCmd),
    /// Write a synthetic night (ledger, debtors, events) for trying the engine and for benchmarks.
    #[command(
        after_help = "The same --debtors, --seed and --as-of always give the same files.\n\nExample:\n  dunning gen --debtors 100000 --seed 1 --out /tmp/night --as-of 2026-11-22\n  dunning run --policy rules/retail-fr --ledger /tmp/night/ledger.csv \\\n    --debtors /tmp/night/debtors.csv --events /tmp/night/events.csv \\\n    --as-of 2026-11-22 --state /tmp/state --out /tmp/out"
    )]
    Gen(GenCmd),
    /// Combine the outputs of `run --shard K/N` for K = 0..N-1 into one night.
    #[command(
        after_help = "The result is byte for byte the output the unsharded night would have written.\n\nExample:\n  dunning merge --out /data/out/2026-11-22 /data/out/2026-11-22.shard-*"
    )]
    Merge(MergeCmd),
    /// Collections KPIs across committed nights: cure and roll rates per
    /// level, amounts recovered, promises kept and broken, per strategy.
    #[command(
        after_help = "Reads the state, never writes or locks it; writes kpis.csv, promises.csv and\nkpis.html (time-series charts, one self-contained file) into --out.\n\nExample:\n  dunning report --state /var/lib/dunning/state --from 2026-10-01 --to 2026-11-22 \\\n    --out /var/lib/dunning/kpis\n\nExit codes: 0 written, 2 an unreadable state, 1 an output folder that cannot be\nwritten (the message names the file)."
    )]
    Report(ReportCmd),
}

#[derive(Debug, clap::Args)]
pub struct ReportCmd {
    /// The state folder of `run`.
    #[arg(long)]
    pub state: PathBuf,
    /// First night (included); default: the first committed night.
    #[arg(long, value_parser = parse_day)]
    pub from: Option<NaiveDate>,
    /// Last night (included); default: the last committed night.
    #[arg(long, value_parser = parse_day)]
    pub to: Option<NaiveDate>,
    /// Where to write kpis.csv, promises.csv and kpis.html.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct MergeCmd {
    /// The merged night's output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// The shards' output folders, all N of them.
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct GenCmd {
    /// How many debtors (each with 1 to 8 items).
    #[arg(long)]
    pub debtors: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Folder to write ledger, debtors and events into.
    #[arg(long)]
    pub out: PathBuf,
    /// The night the data is for: due dates and events are spread around it.
    #[arg(long, value_parser = parse_day, default_value = "2026-11-22")]
    pub as_of: NaiveDate,
    /// File format.
    #[arg(long, value_enum, default_value_t = GenFormat::Csv)]
    pub format: GenFormat,
    /// Compression of Parquet files: snappy is what most warehouses export
    /// (Spark, pyarrow, DuckDB, Snowflake, BigQuery, Redshift), zstd is
    /// Polars' default.
    #[arg(long, value_enum, default_value_t = GenCompression::Snappy)]
    pub compression: GenCompression,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum GenFormat {
    Csv,
    Parquet,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum GenCompression {
    Snappy,
    Zstd,
    Lz4,
    None,
}

#[derive(Debug, clap::Args)]
pub struct SendCmd {
    /// The night's output folder (holds manifest.json and emails/).
    pub out: PathBuf,
    /// smtp://host[:port] (plain, a local relay), smtp://host[:port]?tls=starttls, or smtps://host[:port].
    #[arg(long)]
    pub smtp: String,
    /// State folder: the delivery log lives in STATE/deliveries/.
    #[arg(long)]
    pub state: PathBuf,
    /// At most this many messages per second, e.g. 50/s.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Hand at most this many messages to the server in this run.
    #[arg(long)]
    pub max: Option<usize>,
    /// Show what would be sent; connect to nothing, record nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Attempts per message on transient failures (4xx, connection refused or dropped) before it is deferred to the next run.
    #[arg(long, default_value_t = 5)]
    pub max_attempts: u32,
    /// First wait after a transient failure, in milliseconds; doubled at each attempt.
    #[arg(long, default_value_t = 1000)]
    pub backoff_ms: u64,
    /// Seconds to wait for the server at each step.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
    /// Send again messages in doubt (their reply never came back): these files, or `all`.
    #[arg(long, num_args = 0..=1, default_missing_value = "all", value_delimiter = ',')]
    pub resend_in_doubt: Option<Vec<String>>,
    /// Record messages in doubt as sent, because the relay's log shows it has them.
    #[arg(long, value_delimiter = ',')]
    pub confirm_sent: Vec<String>,
    /// Connections to the relay at once (each message still goes once).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// PEM certificate of the authority that signed a private relay's TLS certificate.
    #[arg(long)]
    pub smtp_ca: Option<PathBuf>,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let n = s.trim().trim_end_matches("/s");
    match n.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(r),
        _ => Err(format!(
            "`{s}` is not a rate; expected messages per second, e.g. 50/s"
        )),
    }
}

#[derive(Debug, clap::Args)]
pub struct DiffCmd {
    /// The first night's output folder (holds decisions.csv).
    pub a: PathBuf,
    /// The second night's output folder.
    pub b: PathBuf,
    /// text: summary, level matrix and examples; json: the same as data;
    /// csv: every differing account, one row each.
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    pub format: DiffFormat,
    /// How many differing accounts to show as examples (text and json).
    #[arg(long, default_value_t = 10)]
    pub examples: usize,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum DiffFormat {
    Text,
    Json,
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct TestCmd {
    /// Policy folder (holds policy.yaml and tests/).
    pub policy: PathBuf,
    /// Only the cases whose name contains this text.
    #[arg(long)]
    pub filter: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ExplainCmd {
    /// The debtor to explain (every account of that debtor is shown).
    #[arg(long)]
    pub debtor: String,
    #[command(flatten)]
    pub inputs: NightInputs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// What a night reads.
#[derive(Debug, clap::Args)]
pub struct NightInputs {
    /// Policy folder (holds policy.yaml).
    #[arg(long)]
    pub policy: PathBuf,
    /// Ledger items, .csv or .parquet.
    #[arg(long)]
    pub ledger: PathBuf,
    /// Debtors, .csv or .parquet.
    #[arg(long)]
    pub debtors: PathBuf,
    /// Events recorded by collectors, .csv or .parquet.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// The night's date, YYYY-MM-DD. Nothing in a run reads the clock.
    #[arg(long, value_parser = parse_day)]
    pub as_of: NaiveDate,
    /// State folder: one snapshot per committed night.
    #[arg(long)]
    pub state: PathBuf,
    /// Champion/challenger: a second policy folder that decides a stable
    /// share of the debtors (see --share).
    #[arg(long, requires = "share")]
    pub challenger: Option<PathBuf>,
    /// The challenger's share of debtors in percent, 0 to 100 (up to two
    /// decimals), chosen by a seeded hash of debtor_id: the same debtors
    /// every night.
    #[arg(long, requires = "challenger", value_parser = parse_share)]
    pub share: Option<u32>,
    /// Seed of the challenger's hash; change it to draw another sample.
    #[arg(long, default_value = "dunning-challenger")]
    pub challenger_seed: String,
}

#[derive(Debug, clap::Args)]
pub struct CheckCmd {
    /// Policy folder (holds policy.yaml).
    pub policy: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct RunCmd {
    #[command(flatten)]
    pub inputs: NightInputs,
    /// Output folder; written beside and renamed into place when complete.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write `trace.jsonl`: every account's facts, conditions tried,
    /// holds, fallbacks and decision, one JSON object per line.
    #[arg(long)]
    pub trace: bool,
    /// Decide only the debtors of shard K of N (0 <= K < N), on this shard's
    /// own state; `dunning merge` puts the N outputs together.
    #[arg(long)]
    pub shard: Option<crate::shard::Shard>,
}

/// A percentage to basis points: "10" -> 1000, "2.5" -> 250.
fn parse_share(s: &str) -> Result<u32, String> {
    let bad =
        || format!("`{s}` is not a share; expected a percentage from 0 to 100, e.g. 10 or 2.5");
    let d: rust_decimal::Decimal = s.trim().parse().map_err(|_| bad())?;
    let bp = d * rust_decimal::Decimal::from(100);
    if bp.fract() != rust_decimal::Decimal::ZERO
        || bp < rust_decimal::Decimal::ZERO
        || bp > rust_decimal::Decimal::from(10_000)
    {
        return Err(bad());
    }
    u32::try_from(bp.trunc().mantissa() / 10i128.pow(bp.trunc().scale())).map_err(|_| bad())
}

fn parse_day(s: &str) -> Result<NaiveDate, String> {
    crate::dates::parse_date(s).ok_or_else(|| format!("`{s}` is not a date; expected YYYY-MM-DD"))
}
