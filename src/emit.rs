//! Emit: the night's files. Everything is written into a temporary folder
//! beside `--out` and renamed into place only when complete, so a reader
//! never sees half a night. CSV goes through a real CSV writer (but for
//! `decisions.csv`'s rows, a million a night, made directly and held by a
//! property test to the writer's bytes), and every text cell is guarded
//! against formula injection: a cell that starts with `=`, `+`, `-`, `@`,
//! a tab or a carriage return gets a leading `'`, so a spreadsheet shows
//! it as text instead of running it. A plain number
//! (an optional sign, digits, at most one `.`), such as an E.164 phone
//! `+33612345678`, is left as it is: no spreadsheet can run it, and a
//! dialler must read it unchanged.

use crate::audit;
use crate::decide::Decision;
use crate::ingest::Reject;
use crate::money::format_cents;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("--out {dir}: exists and does not look like a dunning output folder (no manifest.json); refusing to replace it. Choose an empty or new folder")]
    NotOurs { dir: String },
    /// The machine's problem, not the inputs': a full disk, a folder that
    /// cannot be written. Nothing of the night is committed.
    #[error("--out {dir}: {doing}")]
    Io {
        dir: String,
        /// What failed, naming the file inside `--out`.
        doing: String,
        #[source]
        source: std::io::Error,
    },
}

/// Neutralises a spreadsheet formula.
pub fn cell(s: &str) -> Cow<'_, str> {
    match s.as_bytes().first() {
        Some(b'+' | b'-') if is_plain_number(&s[1..]) => Cow::Borrowed(s),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

fn is_plain_number(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.bytes().filter(|b| *b == b'.').count() <= 1
        && s.as_bytes()[0].is_ascii_digit()
}

/// One file written, for the manifest.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Written {
    pub file: Box<str>,
    pub sha256: audit::Digest,
    pub bytes: u64,
}

/// The files written, by path: the manifest's order, the same however the
/// files were produced (one night or merged shards).
pub fn sorted(mut written: Vec<Written>) -> Vec<Written> {
    written.sort_by(|a, b| a.file.cmp(&b.file));
    written
}

/// A file of the staging folder being written (see [`Staging::open`]).
pub struct Stream {
    file: Box<str>,
    w: audit::Hashing<std::io::BufWriter<fs::File>>,
    /// Its write errors name the file (see [`Stream::named`]); not when
    /// the caller names them itself.
    name_errors: bool,
}

impl std::io::Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.w.write(buf).map_err(|e| self.named(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush().map_err(|e| self.named(e))
    }
}

impl Stream {
    /// A write error that names the file: through a CSV writer, a full
    /// disk would otherwise be reported as "No space left on device" and
    /// nothing else.
    fn named(&self, e: std::io::Error) -> std::io::Error {
        match self.name_errors {
            true => std::io::Error::new(e.kind(), format!("{}: {e}", writing(&self.file))),
            false => e,
        }
    }
}

/// What an error writing `file` (a path inside `--out`) says was done.
fn writing(file: &str) -> String {
    format!("cannot write {file}")
}

/// The folder a night is written into before it is renamed to `--out`.
pub struct Staging {
    out: PathBuf,
    tmp: PathBuf,
    written: Vec<Written>,
    done: bool,
}

impl Staging {
    pub fn new(out: &Path) -> Result<Staging, EmitError> {
        let io = |source| EmitError::Io {
            dir: out.display().to_string(),
            doing: "cannot make the night's folder beside it".into(),
            source,
        };
        let out = absolute(out).map_err(io)?;
        let parent = out
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        fs::create_dir_all(&parent).map_err(io)?;
        if out.exists() && !is_replaceable(&out) {
            return Err(EmitError::NotOurs {
                dir: out.display().to_string(),
            });
        }
        // Leftovers of a crashed run for the same folder.
        let prefix_tmp = format!(".{name}.tmp-");
        let prefix_old = format!(".{name}.old-");
        if let Ok(entries) = fs::read_dir(&parent) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(&prefix_tmp) || n.starts_with(&prefix_old) {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let tmp = parent.join(format!("{prefix_tmp}{}", std::process::id()));
        fs::create_dir_all(&tmp).map_err(io)?;
        Ok(Staging {
            out,
            tmp,
            written: Vec::new(),
            done: false,
        })
    }

    fn io(&self, doing: impl std::fmt::Display, source: std::io::Error) -> EmitError {
        EmitError::Io {
            dir: self.out.display().to_string(),
            doing: doing.to_string(),
            source,
        }
    }

    pub fn write(&mut self, file: &str, bytes: &[u8]) -> Result<(), EmitError> {
        let w = self.put(file, bytes)?;
        self.record(w);
        Ok(())
    }

    /// Writes one file without recording it, so that documents can be
    /// written by the threads that render them (creating 100,000 files is
    /// most of a night's document time on ext4); the caller then `record`s
    /// them in the night's order, which keeps the manifest independent of
    /// thread timing.
    pub fn put(&self, file: &str, bytes: &[u8]) -> Result<Written, EmitError> {
        let path = self.tmp.join(file);
        // Not synced one by one: a night of 100,000 e-mails would wait on
        // 100,000 flushes. The whole folder is flushed once in `finish`,
        // before it is renamed into place. The folder is made on first need
        // only: one system call per file saved.
        match fs::write(&path, bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(p) = path.parent() {
                    fs::create_dir_all(p).map_err(|e| self.io(writing(file), e))?;
                }
                fs::write(&path, bytes).map_err(|e| self.io(writing(file), e))?;
            }
            r => r.map_err(|e| self.io(writing(file), e))?,
        }
        Ok(Written {
            file: file.into(),
            sha256: audit::Digest::of(bytes),
            bytes: bytes.len() as u64,
        })
    }

    /// Writes one file as `fill` produces it, hashing it on the way: a file
    /// of a million rows is never held whole in memory.
    pub fn write_with(
        &mut self,
        file: &str,
        fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<(), EmitError> {
        let mut f = self.open(file)?;
        f.name_errors = false;
        fill(&mut f).map_err(|e| self.io(writing(file), e))?;
        self.close(f)
    }

    /// Writes a file that `fill` gives part by part, each part hashed on
    /// a thread of its own while it is written on this one: for the big
    /// files, whose hashing was a third of their time.
    pub fn write_parts(
        &mut self,
        file: &str,
        fill: impl FnOnce(&mut dyn FnMut(Vec<u8>) -> std::io::Result<()>) -> std::io::Result<()>,
    ) -> Result<(), EmitError> {
        use std::io::Write as _;
        use std::sync::Arc;
        let path = self.tmp.join(file);
        if let Some(p) = path.parent() {
            fs::create_dir_all(p).map_err(|e| self.io(writing(file), e))?;
        }
        let mut f = fs::File::create(&path).map_err(|e| self.io(writing(file), e))?;
        let hashed = std::thread::scope(|s| {
            let (parts, received) = std::sync::mpsc::sync_channel::<Arc<Vec<u8>>>(4);
            let hasher = s.spawn(move || audit::hash_received(received));
            let filled = fill(&mut |part| {
                let part = Arc::new(part);
                // Refused only when the hasher is gone, which its join
                // below reports.
                let _ = parts.send(Arc::clone(&part));
                f.write_all(&part)
            });
            drop(parts);
            let hashed = hasher
                .join()
                .map_err(|_| std::io::Error::other("the thread hashing the file panicked"));
            filled.and(f.flush()).and(hashed)
        })
        .map_err(|e| self.io(writing(file), e))?;
        self.record(Written {
            file: file.into(),
            sha256: hashed.0,
            bytes: hashed.1,
        });
        Ok(())
    }

    /// Opens one file to be written bit by bit, hashed on the way; `close`
    /// records it. For files filled while other files are written (the
    /// indexes of a night's documents).
    pub fn open(&self, file: &str) -> Result<Stream, EmitError> {
        let path = self.tmp.join(file);
        if let Some(p) = path.parent() {
            fs::create_dir_all(p).map_err(|e| self.io(writing(file), e))?;
        }
        let f = fs::File::create(&path).map_err(|e| self.io(writing(file), e))?;
        Ok(Stream {
            file: file.into(),
            w: audit::Hashing::new(std::io::BufWriter::with_capacity(1 << 16, f)),
            name_errors: true,
        })
    }

    /// Flushes a file from `open` and records it, for the manifest.
    pub fn close(&mut self, f: Stream) -> Result<(), EmitError> {
        let (_, sha256, bytes) = f.w.finish().map_err(|e| self.io(writing(&f.file), e))?;
        self.record(Written {
            file: f.file,
            sha256,
            bytes,
        });
        Ok(())
    }

    /// Records a file written by `put`, for the manifest.
    pub fn record(&mut self, w: Written) {
        self.written.push(w);
    }

    /// The files written so far, handed over for the manifest: a million
    /// e-mails' entries are not worth a copy.
    pub fn take_written(&mut self) -> Vec<Written> {
        std::mem::take(&mut self.written)
    }

    /// Renames the finished folder into place.
    pub fn finish(mut self) -> Result<PathBuf, EmitError> {
        let parent = self
            .out
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let old = parent.join(format!(
            ".{}.old-{}",
            self.out
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        let result = (|| -> std::io::Result<()> {
            sync_filesystem(&self.tmp)?;
            if self.out.exists() {
                fs::rename(&self.out, &old)?;
            }
            fs::rename(&self.tmp, &self.out)?;
            fs::File::open(&parent)?.sync_all()?;
            if old.exists() {
                fs::remove_dir_all(&old)?;
            }
            Ok(())
        })();
        result.map_err(|e| {
            self.io(
                format_args!(
                    "cannot flush the night's folder {} and rename it into place",
                    self.tmp.display()
                ),
                e,
            )
        })?;
        self.done = true;
        Ok(self.out.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Flushes every file written under `dir` to disk (syncfs(2) on Linux,
/// one call for the whole filesystem; elsewhere each file is synced).
fn sync_filesystem(dir: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let d = fs::File::open(dir)?;
        // SAFETY: `d` is an open descriptor for the duration of the call.
        if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        d.sync_all()
    }
    #[cfg(not(target_os = "linux"))]
    {
        fn walk(p: &Path) -> std::io::Result<()> {
            for e in fs::read_dir(p)? {
                let path = e?.path();
                if path.is_dir() {
                    walk(&path)?;
                }
                fs::File::open(&path)?.sync_all()?;
            }
            Ok(())
        }
        walk(dir)?;
        fs::File::open(dir)?.sync_all()
    }
}

fn absolute(p: &Path) -> std::io::Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_owned())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

/// An existing `--out` may be replaced when it is empty or a previous
/// night's output.
fn is_replaceable(out: &Path) -> bool {
    out.join("manifest.json").is_file() || fs::read_dir(out).is_ok_and(|mut d| d.next().is_none())
}

pub const DECISION_COLUMNS: &[&str] = &[
    "debtor_id",
    "currency",
    "segment",
    "level_before",
    "level_after",
    "actions",
    "held_by",
    "overdue",
    "open",
    "max_dpd",
    "outcome",
    "rule",
    "reason",
    "strategy",
];

/// `decisions.csv`, given to `each` part by part, in order: the header,
/// then the rows a batch at a time.
pub fn decisions_csv(
    decisions: &[Decision],
    each: &mut dyn FnMut(Vec<u8>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use rayon::prelude::*;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(DECISION_COLUMNS)?;
    each(w.into_inner().map_err(|e| e.into_error())?)?;
    // Rows are made in parallel, a batch at a time, and given in order:
    // a CSV row does not depend on the rows before it, so the bytes are
    // those of one writer, and no more than a few batches are in memory.
    // This thread hands over one group while the next is made.
    const BATCH: usize = 1 << 14;
    let window = BATCH * rayon::current_num_threads().max(1) * 2;
    std::thread::scope(|s| {
        let (made, rows) = std::sync::mpsc::sync_channel(window / BATCH);
        s.spawn(move || {
            for group in decisions.chunks(window) {
                let parts: Vec<Vec<u8>> = group.par_chunks(BATCH).map(decision_rows).collect();
                for part in parts {
                    // Gone when the writer stopped at an error.
                    if made.send(part).is_err() {
                        return;
                    }
                }
            }
        });
        for part in rows {
            each(part)?;
        }
        Ok(())
    })
}

/// Rows of `decisions.csv`, without the header: the bytes the `csv`
/// crate's writer makes (quotes where needed), made directly. Through the
/// writer and `fmt`, the rows of a million decisions cost 0.6 s of CPU on
/// the 2 cores, in a night whose cores are both busy (BENCHMARKS.md,
/// "2026-12-02 (fourth)"); a test holds the two to the same bytes.
fn decision_rows(decisions: &[Decision]) -> Vec<u8> {
    let mut out = Vec::with_capacity(decisions.len() * 160);
    let mut int = itoa::Buffer::new();
    let mut actions = String::new();
    for d in decisions {
        actions.clear();
        for (i, a) in d.actions.iter().enumerate() {
            if i > 0 {
                actions.push(';');
            }
            actions.push_str(&a.channel);
            actions.push(':');
            actions.push_str(&a.template);
        }
        let a = &d.account;
        text_field(&mut out, &a.debtor_id);
        out.push(b',');
        text_field(&mut out, &a.currency);
        out.push(b',');
        text_field(&mut out, &d.segment);
        out.push(b',');
        out.extend_from_slice(int.format(d.level_before).as_bytes());
        out.push(b',');
        out.extend_from_slice(int.format(d.level_after).as_bytes());
        out.push(b',');
        text_field(&mut out, &actions);
        out.push(b',');
        text_field(&mut out, &d.held_by);
        out.push(b',');
        money_field(&mut out, &mut int, a.overdue);
        out.push(b',');
        money_field(&mut out, &mut int, a.open);
        out.push(b',');
        out.extend_from_slice(int.format(a.max_dpd).as_bytes());
        out.push(b',');
        csv_field(&mut out, d.outcome.as_str().as_bytes());
        out.push(b',');
        text_field(&mut out, &d.rule);
        out.push(b',');
        text_field(&mut out, &d.reason);
        out.push(b',');
        csv_field(&mut out, d.strategy_name().as_bytes());
        out.push(b'\n');
    }
    out
}

/// A text cell, guarded against formulas ([`cell`]).
fn text_field(out: &mut Vec<u8>, s: &str) {
    csv_field(out, cell(s).as_bytes());
}

/// A field as the `csv` crate writes it by default
/// (`QuoteStyle::Necessary`): in quotes, its quotes doubled, when it holds
/// a comma, a quote, a CR or a LF; as it is otherwise.
fn csv_field(out: &mut Vec<u8>, s: &[u8]) {
    if !s.iter().any(|&b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
        out.extend_from_slice(s);
        return;
    }
    out.push(b'"');
    for &b in s {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Cents as [`crate::money::Money`] shows them (`-9.93`).
fn money_field(out: &mut Vec<u8>, int: &mut itoa::Buffer, cents: crate::money::Cents) {
    if cents < 0 {
        out.push(b'-');
    }
    let abs = cents.unsigned_abs();
    out.extend_from_slice(int.format(abs / 100).as_bytes());
    let c = (abs % 100) as u8;
    out.extend_from_slice(&[b'.', b'0' + c / 10, b'0' + c % 10]);
}

pub fn rejects_csv(rejects: &[Reject]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["file", "row", "column", "value", "reason"])
        .expect("in memory");
    for r in rejects {
        w.write_record([
            cell(&r.file).as_ref(),
            &r.row.to_string(),
            cell(&r.column).as_ref(),
            cell(&r.value).as_ref(),
            cell(&r.reason).as_ref(),
        ])
        .expect("in memory");
    }
    w.into_inner().expect("in memory")
}

/// Accounts and amounts (per currency: amounts in two currencies never add).
#[derive(Debug, Default, Serialize)]
pub struct Tally {
    pub accounts: u64,
    pub overdue: BTreeMap<String, String>,
    #[serde(skip)]
    cents: BTreeMap<String, i64>,
}

/// The value under `key`, made when missing: the key is copied only the
/// first time, not once for each of a million decisions.
fn entry<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("just inserted")
}

impl Tally {
    fn seal(&mut self) {
        self.overdue = self
            .cents
            .iter()
            .map(|(c, v)| (c.clone(), format_cents(*v)))
            .collect();
    }
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub as_of: String,
    pub policy: String,
    pub accounts: u64,
    pub escalations: u64,
    pub cures: u64,
    pub held: u64,
    pub actions: u64,
    pub rejected_values: u64,
    pub by_level: BTreeMap<u32, Tally>,
    pub by_segment: BTreeMap<String, Tally>,
    pub by_hold: BTreeMap<String, Tally>,
    pub by_outcome: BTreeMap<String, Tally>,
    pub by_action: BTreeMap<String, Tally>,
    pub by_channel: BTreeMap<String, Tally>,
    /// Champion and challenger side by side (only the champion without a
    /// challenger).
    pub by_strategy: BTreeMap<String, StrategyCounts>,
}

/// One strategy's share of the night.
#[derive(Debug, Default, Serialize)]
pub struct StrategyCounts {
    pub policy: String,
    pub accounts: u64,
    pub escalations: u64,
    pub cures: u64,
    pub held: u64,
    pub actions: u64,
    pub overdue: BTreeMap<String, String>,
    pub by_level: BTreeMap<u32, u64>,
    #[serde(skip)]
    tally: Tally,
}

/// The night's counts. `policies` names the policy of each strategy:
/// the champion first, then the challenger when there is one.
///
/// Decisions alike in all that is counted (a [`Shape`]) are counted once:
/// a night of a million decisions has a few hundred shapes, and the
/// counts of each shape are added to a dozen keyed totals at the end,
/// where counting each decision into them took 0.25 s of CPU, most of it
/// comparing keys (BENCHMARKS.md, "2026-12-02 (seventh)"). The shapes are
/// gathered in parallel slices; every count is an integer sum, so neither
/// the slicing nor the grouping changes a figure.
pub fn summary(as_of: &str, policies: &[&str], decisions: &[Decision], rejects: usize) -> Summary {
    use rayon::prelude::*;
    const SLICE: usize = 1 << 15;
    let shapes = decisions
        .par_chunks(SLICE)
        .map(shapes)
        .reduce(Shapes::default, |mut a, b| {
            for (shape, n) in b {
                let t = a.entry(shape).or_default();
                t.0 += n.0;
                t.1 += n.1;
            }
            a
        });
    let mut s = Summary::empty(policies);
    let mut action = String::new();
    for (shape, &(n, cents)) in &shapes {
        s.count(shape, n, cents, &mut action);
    }
    s.as_of = as_of.to_owned();
    s.rejected_values = rejects as u64;
    s.seal();
    s
}

/// All that the summary reads of a decision.
#[derive(PartialEq, Eq, Hash)]
struct Shape<'d> {
    strategy: &'static str,
    outcome: crate::decide::Outcome,
    /// A cure counts as one only from a level above 0.
    from_above_0: bool,
    level_after: u32,
    segment: &'d str,
    held_by: &'d str,
    currency: &'d str,
    actions: &'d [crate::policy::Action],
}

/// Decisions by shape: how many, and their overdue cents.
type Shapes<'d> = hashbrown::HashMap<Shape<'d>, (u64, i64), foldhash::fast::FixedState>;

fn shapes(decisions: &[Decision]) -> Shapes<'_> {
    let mut shapes = Shapes::default();
    for d in decisions {
        let shape = Shape {
            strategy: d.strategy_name(),
            outcome: d.outcome,
            from_above_0: d.level_before > 0,
            level_after: d.level_after,
            segment: &d.segment,
            held_by: &d.held_by,
            currency: &d.account.currency,
            actions: &d.actions,
        };
        let t = shapes.entry(shape).or_default();
        t.0 += 1;
        t.1 += d.account.overdue;
    }
    shapes
}

impl Summary {
    /// No decision counted yet: each strategy named with its policy.
    fn empty(policies: &[&str]) -> Summary {
        let mut s = Summary {
            as_of: String::new(),
            policy: policies.first().copied().unwrap_or("").to_owned(),
            accounts: 0,
            escalations: 0,
            cures: 0,
            held: 0,
            actions: 0,
            rejected_values: 0,
            by_level: BTreeMap::new(),
            by_segment: BTreeMap::new(),
            by_hold: BTreeMap::new(),
            by_outcome: BTreeMap::new(),
            by_action: BTreeMap::new(),
            by_channel: BTreeMap::new(),
            by_strategy: BTreeMap::new(),
        };
        for (i, p) in policies.iter().enumerate() {
            s.by_strategy.insert(
                crate::decide::STRATEGIES[i.min(1)].to_owned(),
                StrategyCounts {
                    policy: (*p).to_owned(),
                    ..StrategyCounts::default()
                },
            );
        }
        s
    }

    /// Counts `n` decisions of one shape, `cents` overdue between them.
    fn count(&mut self, shape: &Shape<'_>, n: u64, cents: i64, action: &mut String) {
        use crate::decide::Outcome;
        use std::fmt::Write as _;
        let add = |t: &mut Tally| {
            t.accounts += n;
            *entry(&mut t.cents, shape.currency) += cents;
        };
        let actions = shape.actions.len() as u64 * n;
        self.accounts += n;
        self.actions += actions;
        let st = entry(&mut self.by_strategy, shape.strategy);
        st.accounts += n;
        st.actions += actions;
        add(&mut st.tally);
        *st.by_level.entry(shape.level_after).or_default() += n;
        match shape.outcome {
            Outcome::Escalate => {
                self.escalations += n;
                st.escalations += n;
            }
            Outcome::Cure if shape.from_above_0 => {
                self.cures += n;
                st.cures += n;
            }
            Outcome::Hold => {
                self.held += n;
                st.held += n;
            }
            _ => {}
        }
        add(self.by_level.entry(shape.level_after).or_default());
        add(entry(&mut self.by_segment, shape.segment));
        if !shape.held_by.is_empty() {
            add(entry(&mut self.by_hold, shape.held_by));
        }
        add(entry(&mut self.by_outcome, shape.outcome.as_str()));
        for a in shape.actions {
            action.clear();
            let _ = write!(action, "{a}");
            add(entry(&mut self.by_action, action));
            add(entry(&mut self.by_channel, &a.channel));
        }
    }

    /// The amounts written as decimal texts, once every count is in.
    fn seal(&mut self) {
        for t in self
            .by_level
            .values_mut()
            .chain(self.by_segment.values_mut())
            .chain(self.by_hold.values_mut())
            .chain(self.by_outcome.values_mut())
            .chain(self.by_action.values_mut())
            .chain(self.by_channel.values_mut())
        {
            t.seal();
        }
        for st in self.by_strategy.values_mut() {
            st.tally.seal();
            st.overdue = std::mem::take(&mut st.tally.overdue);
        }
    }
}

/// JSON with a final newline, stable key order.
pub fn json<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    write_json(&mut out, v).expect("in memory");
    out
}

/// [`json`] into a writer.
pub fn write_json<T: Serialize>(out: &mut dyn std::io::Write, v: &T) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, v)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::cell;

    /// A file filled by the night that fails names the file once.
    #[test]
    fn a_file_that_cannot_be_filled_is_named_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut staging = super::Staging::new(&dir.path().join("out")).unwrap();
        let e = staging
            .write_with("manifest.json", |w| {
                w.write_all(b"{")?;
                Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
            })
            .unwrap_err();
        let text = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(
            text.matches("cannot write manifest.json").count(),
            1,
            "{text}"
        );
        assert!(
            text.ends_with(": cannot write manifest.json: no storage space"),
            "{text}"
        );
    }

    /// An index written through a CSV writer onto a full disk (`/dev/full`
    /// fails every write with ENOSPC) says which file it was.
    #[test]
    fn a_full_disk_names_the_index_being_written() {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let stream = super::Stream {
            file: "emails/index.csv".into(),
            w: crate::audit::Hashing::new(std::io::BufWriter::new(f)),
            name_errors: true,
        };
        let mut w = csv::Writer::from_writer(stream);
        w.write_record(["a", "b"]).unwrap();
        let e = w.flush().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::StorageFull);
        let text = e.to_string();
        assert!(
            text.starts_with("cannot write emails/index.csv: No space left on device"),
            "{text}"
        );
        // Not when the caller names the file itself (`write_with`).
        use std::io::Write as _;
        let mut quiet = super::Stream {
            file: "manifest.json".into(),
            w: crate::audit::Hashing::new(std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/full")
                    .unwrap(),
            )),
            name_errors: false,
        };
        quiet.write_all(b"{}").unwrap();
        let e = quiet.flush().unwrap_err();
        assert!(e.to_string().starts_with("No space left on device"), "{e}");
    }
    use crate::accounts::Account;
    use crate::decide::Decision;
    use proptest::prelude::*;

    /// `decisions.csv`'s rows as the `csv` crate's writer and `fmt` make
    /// them: what `decision_rows` must give, byte for byte.
    fn written_by_the_csv_crate(decisions: &[Decision]) -> Vec<u8> {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        for d in decisions {
            let actions: Vec<String> = d.actions.iter().map(|a| a.to_string()).collect();
            w.write_record([
                cell(&d.account.debtor_id).as_ref(),
                cell(&d.account.currency).as_ref(),
                cell(&d.segment).as_ref(),
                &d.level_before.to_string(),
                &d.level_after.to_string(),
                cell(&actions.join(";")).as_ref(),
                cell(&d.held_by).as_ref(),
                &crate::money::Money(d.account.overdue).to_string(),
                &crate::money::Money(d.account.open).to_string(),
                &d.account.max_dpd.to_string(),
                d.outcome.as_str(),
                cell(&d.rule).as_ref(),
                cell(&d.reason).as_ref(),
                d.strategy_name(),
            ])
            .unwrap();
        }
        w.into_inner().unwrap()
    }

    /// Texts with what a CSV writer must quote or a spreadsheet could run.
    fn hostile_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9 _.]{0,12}",
            "[-+=@\t\r\n,\"' a-z0-9é中]{0,12}",
            "[+-][0-9.]{0,6}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The rows made directly are the csv crate's rows: quoting,
        /// doubled quotes, formula guards, negative and huge amounts.
        #[test]
        fn rows_are_the_csv_crates_rows(
            rows in proptest::collection::vec(
                (
                    proptest::collection::vec(hostile_text(), 7),
                    proptest::collection::vec((hostile_text(), hostile_text()), 0..3),
                    any::<u32>(),
                    any::<u32>(),
                    any::<i64>(),
                    any::<i64>(),
                    any::<i64>(),
                    0u8..2,
                ),
                1..8,
            )
        ) {
            use crate::decide::Outcome;
            let outcomes = [Outcome::Cure, Outcome::Hold, Outcome::Escalate, Outcome::Stay, Outcome::Gap];
            let decisions: Vec<Decision> = rows
                .iter()
                .enumerate()
                .map(|(i, (t, actions, before, after, overdue, open, dpd, strategy))| {
                    let mut d = Decision::pending(Account {
                        debtor_id: t[0].as_str().into(),
                        currency: t[1].as_str().into(),
                        overdue: *overdue,
                        open: *open,
                        max_dpd: *dpd,
                        ..Account::default()
                    });
                    d.segment = t[2].as_str().into();
                    d.held_by = t[3].as_str().into();
                    d.rule = t[4].as_str().into();
                    d.reason = t[5].as_str().into();
                    d.level_before = *before;
                    d.level_after = *after;
                    d.outcome = outcomes[i % outcomes.len()];
                    d.strategy = *strategy;
                    d.actions = actions
                        .iter()
                        .map(|(c, t)| crate::policy::Action {
                            channel: c.as_str().into(),
                            template: t.as_str().into(),
                        })
                        .collect();
                    d
                })
                .collect();
            let made = super::decision_rows(&decisions);
            let expected = written_by_the_csv_crate(&decisions);
            prop_assert_eq!(String::from_utf8_lossy(&made), String::from_utf8_lossy(&expected));
        }
    }

    /// Rows made in parallel batches are the bytes one writer makes, in
    /// order: more decisions than a batch holds, with texts that need
    /// quoting and formulas that need neutralising.
    #[test]
    fn decisions_written_in_batches_are_one_file() {
        let texts = [
            "plain",
            "with, comma",
            "with \"quote\"",
            "=1+1",
            "line\nbreak",
            "",
        ];
        let decisions: Vec<Decision> = (0..70_000usize)
            .map(|i| {
                let mut d = Decision::pending(Account {
                    debtor_id: format!("D{i:06}").into(),
                    currency: "EUR".into(),
                    overdue: i as i64 * 7 - 1000,
                    open: i as i64,
                    max_dpd: (i % 400) as i64,
                    ..Account::default()
                });
                d.segment = texts[i % texts.len()].into();
                d.reason = texts[(i / 7) % texts.len()].into();
                d.level_after = (i % 5) as u32;
                d
            })
            .collect();
        let mut batched = Vec::new();
        super::decisions_csv(&decisions, &mut |part| {
            batched.extend(part);
            Ok(())
        })
        .unwrap();
        let mut header = csv::Writer::from_writer(Vec::new());
        header.write_record(super::DECISION_COLUMNS).unwrap();
        let mut whole = header.into_inner().unwrap();
        whole.extend(super::decision_rows(&decisions));
        assert!(batched == whole);
        let mut r = csv::Reader::from_reader(batched.as_slice());
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), decisions.len());
        assert_eq!(&rows[69_999][0], "D069999");
        assert_eq!(&rows[3][2], "'=1+1");
        assert_eq!(&rows[1][7], "-9.93");
    }

    /// The summary as it was first counted, each decision into each
    /// total in turn: the reference the counting by shape is held to.
    fn one_by_one(policies: &[&str], decisions: &[Decision]) -> super::Summary {
        use super::{entry, Tally};
        use crate::decide::Outcome;
        fn add(t: &mut Tally, d: &Decision) {
            t.accounts += 1;
            *entry(&mut t.cents, &d.account.currency) += d.account.overdue;
        }
        let mut s = super::Summary::empty(policies);
        for d in decisions {
            s.accounts += 1;
            let st = entry(&mut s.by_strategy, d.strategy_name());
            st.accounts += 1;
            st.actions += d.actions.len() as u64;
            add(&mut st.tally, d);
            *st.by_level.entry(d.level_after).or_default() += 1;
            match d.outcome {
                Outcome::Escalate => {
                    s.escalations += 1;
                    st.escalations += 1;
                }
                Outcome::Cure if d.level_before > 0 => {
                    s.cures += 1;
                    st.cures += 1;
                }
                Outcome::Hold => {
                    s.held += 1;
                    st.held += 1;
                }
                _ => {}
            }
            add(s.by_level.entry(d.level_after).or_default(), d);
            add(entry(&mut s.by_segment, &d.segment), d);
            if !d.held_by.is_empty() {
                add(entry(&mut s.by_hold, &d.held_by), d);
            }
            add(entry(&mut s.by_outcome, d.outcome.as_str()), d);
            for a in &d.actions {
                s.actions += 1;
                add(entry(&mut s.by_action, &a.to_string()), d);
                add(entry(&mut s.by_channel, &a.channel), d);
            }
        }
        s
    }

    /// The night's counts made by shape in parallel slices are the counts
    /// of one pass over each decision: more decisions than a slice holds,
    /// two strategies, several currencies, segments, holds, outcomes,
    /// levels before and after, and actions.
    #[test]
    fn summary_in_slices_is_one_count() {
        use crate::decide::Outcome;
        use crate::policy::Action;
        let outcomes = [
            Outcome::Cure,
            Outcome::Hold,
            Outcome::Escalate,
            Outcome::Stay,
            Outcome::Gap,
        ];
        let decisions: Vec<Decision> = (0..100_000usize)
            .map(|i| {
                let mut d = Decision::pending(Account {
                    debtor_id: format!("D{i:06}").into(),
                    currency: ["EUR", "USD", "CHF"][i % 3].into(),
                    overdue: i as i64 * 13 - 5000,
                    ..Account::default()
                });
                d.segment = ["retail", "business", ""][(i / 3) % 3].into();
                d.held_by = if i % 11 == 0 {
                    "dispute".into()
                } else {
                    "".into()
                };
                d.outcome = outcomes[(i / 7) % outcomes.len()];
                d.level_before = (i % 3) as u32;
                d.level_after = (i % 5) as u32;
                d.strategy = u8::from(i % 4 == 0);
                for k in 0..(i % 3) {
                    d.actions.push(Action {
                        channel: ["email", "letter"][k].into(),
                        template: format!("t{}", i % 4).into(),
                    });
                }
                d
            })
            .collect();
        let policies = ["champion-policy", "challenger-policy"];
        let sliced = super::summary("2026-11-22", &policies, &decisions, 3);
        let mut whole = one_by_one(&policies, &decisions);
        whole.as_of = "2026-11-22".into();
        whole.rejected_values = 3;
        whole.seal();
        assert_eq!(super::json(&sliced), super::json(&whole));
        assert_eq!(sliced.accounts, 100_000);
        assert!(sliced.by_strategy["challenger"].accounts > 0);
        assert_eq!(sliced.by_hold["dispute"].accounts, 100_000 / 11 + 1);
        let none = super::summary("2026-11-22", &policies[..1], &[], 0);
        assert_eq!(none.by_strategy.len(), 1);
        assert_eq!(none.by_strategy["champion"].policy, "champion-policy");
    }

    /// A file written part by part is recorded with the hash and length
    /// of its bytes; a part that fails to be made fails the file.
    #[test]
    fn a_file_written_in_parts_is_hashed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut staging = super::Staging::new(&dir.path().join("out")).unwrap();
        let parts: Vec<Vec<u8>> = (0..40u8).map(|i| vec![b'a' + i % 26; 70_000]).collect();
        staging
            .write_parts("big.csv", |each| {
                for p in &parts {
                    each(p.clone())?;
                }
                Ok(())
            })
            .unwrap();
        let whole = parts.concat();
        let written = staging.written.last().unwrap();
        assert_eq!(&*written.file, "big.csv");
        assert_eq!(written.bytes, whole.len() as u64);
        assert_eq!(written.sha256, crate::audit::Digest::of(&whole));
        assert_eq!(std::fs::read(staging.tmp.join("big.csv")).unwrap(), whole);
        let failed = staging.write_parts("bad.csv", |each| {
            each(b"header\n".to_vec())?;
            Err(std::io::Error::other("a batch could not be made"))
        });
        assert!(failed.is_err());
    }

    #[test]
    fn formulas_are_neutralised() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("+33612345678"), "+33612345678");
        assert_eq!(cell("-1.50"), "-1.50");
        assert_eq!(cell("+1+1"), "'+1+1");
        assert_eq!(cell("-A1"), "'-A1");
        assert_eq!(cell("=1"), "'=1");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("D001"), "D001");
        assert_eq!(cell(""), "");
    }
}
