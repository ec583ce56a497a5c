//! State: what one night leaves for the next. Each committed night is a
//! folder `nights/<as-of>/` holding `accounts.csv` (level and last
//! escalation per account above level 0) and `night.json` (the hashes of
//! what it read). A night is committed by renaming its folder into place, so
//! the state never holds half a night. One run at a time holds `lock`; the
//! operating system releases it when the process dies, so a crashed run
//! never leaves a stale lock behind.

use crate::dates;
use crate::history::{Prior, Step};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state {dir}: another dunning run holds the lock ({holder}); wait for it to finish")]
    Busy { dir: String, holder: String },
    #[error("state {dir}: {message}")]
    Refused { dir: String, message: String },
    #[error("state {dir}: {path}: {message}")]
    Corrupt {
        dir: String,
        path: String,
        message: String,
    },
    #[error("state {dir}")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

/// What a committed night read, to recognise a re-run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NightRecord {
    pub as_of: String,
    pub policy_sha256: String,
    pub inputs: Vec<(String, String)>,
    pub accounts_sha256: String,
}

/// An open, locked state folder. It reads like a [`Reader`]; only the lock
/// holder commits.
pub struct State {
    reader: Reader,
    _lock: File,
}

/// Reads a state folder without taking the lock: for `explain`, which must
/// be safe beside a running night. A folder that does not exist yet reads as
/// a state with no nights.
pub struct Reader {
    dir: PathBuf,
}

impl std::ops::Deref for State {
    type Target = Reader;
    fn deref(&self) -> &Reader {
        &self.reader
    }
}

impl State {
    /// Opens (creating if need be) and locks the state folder.
    pub fn open(dir: &Path) -> Result<State, StateError> {
        let label = dir.display().to_string();
        let io = |source| StateError::Io {
            dir: label.clone(),
            source,
        };
        fs::create_dir_all(dir.join("nights")).map_err(io)?;
        let mut lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir.join("lock"))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(dir.join("lock")).unwrap_or_default();
                return Err(StateError::Busy {
                    dir: label,
                    holder: format!("pid {}", holder.trim()),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        lock.set_len(0).map_err(io)?;
        write!(lock, "{}", std::process::id()).map_err(io)?;
        // Folders of nights that crashed before their commit are debris.
        if let Ok(entries) = fs::read_dir(dir.join("nights")) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(State {
            reader: Reader::new(dir),
            _lock: lock,
        })
    }

    /// Commits a night: written beside, then renamed into place.
    /// `extra` are the files a policy's features keep beside accounts.csv:
    /// the compliance contact log (`contacts.csv`) and the charge state
    /// (`charged.csv`).
    pub fn commit(
        &self,
        night: NaiveDate,
        accounts_csv: &[u8],
        extra: &[(&str, Vec<u8>)],
        record: &NightRecord,
    ) -> Result<(), StateError> {
        let nights = self.dir.join("nights");
        let tmp = nights.join(format!(".tmp-{night}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let write = || -> std::io::Result<()> {
            fs::create_dir_all(&tmp)?;
            write_synced(&tmp.join("accounts.csv"), accounts_csv)?;
            for (name, bytes) in extra {
                write_synced(&tmp.join(name), bytes)?;
            }
            let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
            write_synced(&tmp.join("night.json"), &json)?;
            crate::failpoint("mid-commit");
            fs::rename(&tmp, self.night_dir(night))?;
            File::open(&nights)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_dir_all(&tmp);
            self.io(e)
        })
    }
}

impl Reader {
    pub fn new(dir: &Path) -> Reader {
        Reader {
            dir: dir.to_owned(),
        }
    }

    fn label(&self) -> String {
        self.dir.display().to_string()
    }

    fn io(&self, source: std::io::Error) -> StateError {
        StateError::Io {
            dir: self.label(),
            source,
        }
    }

    /// Committed nights, oldest first.
    pub fn nights(&self) -> Result<Vec<NaiveDate>, StateError> {
        let mut out = Vec::new();
        let dir = match fs::read_dir(self.dir.join("nights")) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            r => r.map_err(|e| self.io(e))?,
        };
        for e in dir {
            let e = e.map_err(|e| self.io(e))?;
            if let Some(d) = dates::parse_date(&e.file_name().to_string_lossy()) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    fn night_dir(&self, night: NaiveDate) -> PathBuf {
        self.dir.join("nights").join(night.to_string())
    }

    pub fn record(&self, night: NaiveDate) -> Result<NightRecord, StateError> {
        let path = self.night_dir(night).join("night.json");
        let text = fs::read_to_string(&path).map_err(|e| self.io(e))?;
        serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
            dir: self.label(),
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// The account levels a committed night left.
    pub fn load(&self, night: NaiveDate) -> Result<HashMap<(String, String), Prior>, StateError> {
        let path = self.night_dir(night).join("accounts.csv");
        let corrupt = |message: String| StateError::Corrupt {
            dir: self.label(),
            path: path.display().to_string(),
            message,
        };
        let mut rdr = csv::Reader::from_path(&path).map_err(|e| corrupt(e.to_string()))?;
        let mut out = HashMap::new();
        for (i, rec) in rdr.deserialize::<SnapshotRow>().enumerate() {
            let row = rec.map_err(|e| corrupt(format!("row {}: {e}", i + 2)))?;
            let date = |s: &str| -> Result<Option<NaiveDate>, StateError> {
                if s.is_empty() {
                    Ok(None)
                } else {
                    dates::parse_date(s)
                        .map(Some)
                        .ok_or_else(|| corrupt(format!("row {}: bad date `{s}`", i + 2)))
                }
            };
            let prior = Prior {
                level: row.level,
                last_escalated_on: date(&row.last_escalated_on)?,
                placed_with: (!row.placed_with.is_empty()).then(|| row.placed_with.as_str().into()),
                placed_on: date(&row.placed_on)?,
                writeoff_on: date(&row.writeoff_proposed_on)?,
                history: Step::decode(&row.history)
                    .ok_or_else(|| corrupt(format!("row {}: bad history", i + 2)))?
                    .into(),
                deferred: crate::compliance::Deferred::decode(&row.deferred)
                    .ok_or_else(|| corrupt(format!("row {}: bad deferred actions", i + 2)))?
                    .into(),
                overdue: if row.overdue.is_empty() {
                    0
                } else {
                    rust_decimal::Decimal::from_str_exact(&row.overdue)
                        .ok()
                        .and_then(crate::money::decimal_to_cents)
                        .ok_or_else(|| corrupt(format!("row {}: bad overdue amount", i + 2)))?
                },
            };
            out.insert((row.debtor_id, row.currency), prior);
        }
        Ok(out)
    }

    /// A file a night keeps only with some policy features, read with
    /// `parse`; the default when the night has none (an older engine, or
    /// a policy without the feature).
    fn optional<T: Default>(
        &self,
        night: NaiveDate,
        name: &str,
        parse: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<T, StateError> {
        let path = self.night_dir(night).join(name);
        match fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
            Err(e) => Err(self.io(e)),
            Ok(bytes) => parse(&bytes).map_err(|message| StateError::Corrupt {
                dir: self.label(),
                path: path.display().to_string(),
                message,
            }),
        }
    }

    /// The compliance contact log a night left; empty when it kept none.
    pub fn contacts(&self, night: NaiveDate) -> Result<crate::compliance::Log, StateError> {
        self.optional(night, "contacts.csv", crate::compliance::read_log)
    }

    /// A night's `kpis.csv` (its path, for messages, and bytes), if the
    /// night left one.
    pub fn kpis(&self, night: NaiveDate) -> Result<Option<(String, Vec<u8>)>, StateError> {
        let path = self.night_dir(night).join("kpis.csv").display().to_string();
        self.optional(night, "kpis.csv", |b| Ok(Some((path, b.to_vec()))))
    }

    /// The promises to pay a night was still watching.
    pub fn promises(&self, night: NaiveDate) -> Result<Vec<crate::kpi::Promise>, StateError> {
        self.optional(night, "promises.csv", crate::kpi::read_promises)
    }

    /// What was charged per item up to a night; empty when nothing was.
    pub fn charged(&self, night: NaiveDate) -> Result<crate::charges::Ledger, StateError> {
        self.optional(night, "charged.csv", crate::charges::read_state)
    }

    /// The committed accounts.csv of a night, as bytes.
    pub fn snapshot_bytes(&self, night: NaiveDate) -> Result<Vec<u8>, StateError> {
        fs::read(self.night_dir(night).join("accounts.csv")).map_err(|e| self.io(e))
    }
}

pub fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotRow {
    debtor_id: String,
    currency: String,
    level: u32,
    last_escalated_on: String,
    // Added with placements; a snapshot without them reads as empty.
    #[serde(default)]
    placed_with: String,
    #[serde(default)]
    placed_on: String,
    #[serde(default)]
    writeoff_proposed_on: String,
    #[serde(default)]
    history: String,
    // Added with compliance guards.
    #[serde(default)]
    deferred: String,
    // Added with the KPIs.
    #[serde(default)]
    overdue: String,
}

/// The snapshot a night leaves: accounts above level 0, in the order given
/// (decisions are sorted).
pub fn snapshot_csv<'a>(rows: impl Iterator<Item = (&'a str, &'a str, &'a Prior)>) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let opt = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    let mut written = 0;
    for (debtor_id, currency, p) in rows {
        if p.level == 0 {
            continue;
        }
        written += 1;
        w.serialize(SnapshotRow {
            debtor_id: debtor_id.to_owned(),
            currency: currency.to_owned(),
            level: p.level,
            last_escalated_on: opt(p.last_escalated_on),
            placed_with: p.placed_with.as_deref().unwrap_or_default().to_owned(),
            placed_on: opt(p.placed_on),
            writeoff_proposed_on: opt(p.writeoff_on),
            history: Step::encode(&p.history),
            deferred: crate::compliance::Deferred::encode(&p.deferred),
            overdue: crate::money::format_cents(p.overdue),
        })
        .expect("in memory");
    }
    if written == 0 {
        w.write_record([
            "debtor_id",
            "currency",
            "level",
            "last_escalated_on",
            "placed_with",
            "placed_on",
            "writeoff_proposed_on",
            "history",
            "deferred",
            "overdue",
        ])
        .expect("in memory");
    }
    w.into_inner().expect("in memory")
}
