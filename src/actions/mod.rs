//! Actions: the files other systems act on, one module per channel. Every
//! emitted `email:*`, `letter:*`, `sms:*` and `call:*` action of tonight's decisions is
//! rendered from the policy's templates in the debtor's language, in
//! parallel, then written in decision order so that the bytes never depend
//! on thread timing.

pub mod call;
pub mod email;
pub mod letter;
pub mod placement;
pub mod sms;

use crate::decide::Decision;
use crate::emit::{cell, Staging};
use crate::ingest::{Debtor, Inputs};
use crate::policy::Policy;
use crate::render::{self, Item, RenderError};
use chrono::NaiveDate;
use polars::prelude::*;
use rayon::prelude::*;

/// A rendering problem that stops the night: a template error, or an SMS
/// over the policy's segment limit.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("template {template} ({language}) renders to {segments} SMS segments for debtor {debtor_id}; the policy allows {max} (sms.max_segments): shorten the template")]
    TooLong {
        template: String,
        language: String,
        debtor_id: String,
        segments: u32,
        max: u32,
    },
    #[error("e-mail for debtor {debtor_id}: {message}")]
    Email { debtor_id: String, message: String },
    #[error("letter for debtor {debtor_id}: {message}")]
    Letter { debtor_id: String, message: String },
}

/// One action to render, with everything its channel needs.
#[derive(Clone, Copy)]
pub struct Job<'a> {
    pub messages: &'a crate::render::Messages,
    pub decision: &'a Decision,
    pub debtor: &'a Debtor,
    pub lang: &'a str,
    pub template: &'a str,
    pub ctx: &'a minijinja::Value,
    pub as_of: NaiveDate,
}

/// One account's rendered messages.
#[derive(Default)]
struct Rendered {
    emails: Vec<email::Email>,
    letters: Vec<letter::Letter>,
    sms: Vec<sms::Sms>,
    calls: Vec<call::Call>,
    /// The e-mail and letter files, already written, in the order of the
    /// account's actions.
    files: Vec<crate::emit::Written>,
}

const CHANNELS: &[&str] = &["email", "letter", "sms", "call"];

/// Accounts rendered at once; bounds the documents held in memory.
const RENDER_CHUNK: usize = 4096;

/// The overdue items of the accounts that get a message, found by account.
/// Only row numbers are kept per account and the items are built when an
/// account asks for them: at a million accounts, four million items copied
/// out of the ledger as owned texts were most of the documents' memory.
pub struct OverdueItems<'a> {
    texts: crate::ingest::ItemTexts<'a>,
    amount: &'a Int64Chunked,
    open: &'a Int64Chunked,
    due: &'a Int32Chunked,
    debtors: &'a crate::ingest::Debtors,
    /// The accounts asked for, sorted by key, each with where its rows
    /// start in `rows` (they end where the next account's start): three
    /// flat vectors instead of a map of a million small vectors.
    keys: Vec<u64>,
    starts: Vec<u32>,
    /// Ledger rows, grouped by account in `keys` order.
    rows: Vec<u32>,
    /// Items read since the ledger's pages were last given back.
    read: std::sync::atomic::AtomicUsize,
}

/// The ledger's pages that the items' texts were read from are given back
/// after this many items: read through a night's documents, the whole
/// ledger (350 MB at a million debtors) would come back into the night's
/// resident memory.
const ITEMS_BETWEEN_FORGETS: usize = 1 << 16;

impl OverdueItems<'_> {
    /// An account's overdue items, oldest first; none for an account that
    /// was not asked for.
    pub fn get(&self, debtor_id: &str, currency: &str) -> Vec<Item> {
        self.of(debtor_id, currency, None)
    }

    /// [`OverdueItems::get`], the debtor's position given as a hint
    /// ([`crate::ingest::Debtors::position_hinted`]).
    pub fn of(&self, debtor_id: &str, currency: &str, hint: Option<u32>) -> Vec<Item> {
        let key = self
            .debtors
            .position_hinted(debtor_id, hint)
            .and_then(|p| crate::ingest::account_key(p, currency));
        let Some(at) = key.and_then(|k| self.keys.binary_search(&k).ok()) else {
            return Vec::new();
        };
        let end = self
            .starts
            .get(at + 1)
            .map_or(self.rows.len(), |&e| e as usize);
        let rows = &self.rows[self.starts[at] as usize..end];
        let before = self
            .read
            .fetch_add(rows.len(), std::sync::atomic::Ordering::Relaxed);
        if before / ITEMS_BETWEEN_FORGETS != (before + rows.len()) / ITEMS_BETWEEN_FORGETS {
            self.texts.forget();
        }
        let mut out: Vec<Item> = rows
            .iter()
            .map(|&i| {
                let i = i as usize;
                let [item_id, product, reference] = self.texts.owned(i);
                Item {
                    due_on: crate::dates::from_days(self.due.get(i).unwrap_or(0)),
                    item_id: item_id.unwrap_or_default(),
                    reference: reference.unwrap_or_default(),
                    product: product.unwrap_or_default(),
                    amount: self.amount.get(i).unwrap_or(0),
                    open_amount: self.open.get(i).unwrap_or(0),
                }
            })
            .collect();
        out.sort();
        out
    }

    /// An error reading the items' texts again (a Parquet ledger that
    /// changed or became unreadable during the night): the items given
    /// since lack their texts, and what was made of them must not be used.
    pub fn failed(&self) -> PolarsResult<()> {
        self.texts.failed()
    }
}

/// Finds the overdue items of the `wanted` accounts: (debtor, currency,
/// the grace days of the account's policy, where the debtor may be).
pub fn overdue_items<'a, 'w>(
    inputs: &'a Inputs,
    wanted: impl Iterator<Item = (&'w str, &'w str, i64, Option<u32>)>,
    as_of: NaiveDate,
) -> PolarsResult<OverdueItems<'a>> {
    let df = &inputs.items;
    let debtors = &inputs.debtors;
    let keys = df.column("account")?.u64()?;
    let open = df.column("open_amount")?.i64()?;
    let due = df.column("due_on")?.i32()?;
    let mut wanted: Vec<(u64, i64)> = wanted
        .filter_map(|(d, c, grace, hint)| {
            let key = crate::ingest::account_key(debtors.position_hinted(d, hint)?, c)?;
            Some((key, grace))
        })
        .collect();
    wanted.sort_unstable();
    wanted.dedup_by_key(|w| w.0);
    let mut found: Vec<(u64, u32)> = Vec::new();
    for (i, (k, (o, du))) in keys.iter().zip(open.iter().zip(due.iter())).enumerate() {
        let Some(k) = k else {
            continue;
        };
        let Ok(at) = wanted.binary_search_by_key(&k, |w| w.0) else {
            continue;
        };
        let grace_days = wanted[at].1;
        let open_amount = o.unwrap_or(0);
        let due_on = crate::dates::from_days(du.unwrap_or(0));
        if open_amount <= 0 || (as_of - due_on).num_days() <= grace_days {
            continue;
        }
        let row = u32::try_from(i).expect("fewer than 4 billion ledger items");
        found.push((k, row));
    }
    drop(wanted);
    // By account, and in ledger order within one.
    found.sort_unstable();
    let mut keys_found = Vec::new();
    let mut starts = Vec::new();
    let mut rows = Vec::with_capacity(found.len());
    for (k, row) in found {
        if keys_found.last() != Some(&k) {
            keys_found.push(k);
            starts.push(u32::try_from(rows.len()).expect("fewer than 4 billion ledger items"));
        }
        rows.push(row);
    }
    Ok(OverdueItems {
        debtors,
        texts: crate::ingest::ItemTexts::of(inputs)?,
        read: Default::default(),
        amount: df.column("amount")?.i64()?,
        open,
        due,
        keys: keys_found,
        starts,
        rows,
    })
}

/// Counts for the log and the summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    pub emails: usize,
    pub letters: usize,
    pub sms: usize,
    pub calls: usize,
    pub placements: placement::Counts,
}

/// Renders and writes `emails/`, `sms.csv` and `calls.csv`.
pub fn write(
    policies: &[&Policy],
    decisions: &[Decision],
    inputs: &Inputs,
    as_of: NaiveDate,
    staging: &mut Staging,
) -> anyhow::Result<Written> {
    let with_messages: Vec<&Decision> = decisions
        .iter()
        .filter(|d| {
            d.actions
                .iter()
                .any(|a| CHANNELS.contains(&a.channel.as_str()))
        })
        .collect();
    // Each decision is rendered with the policy that made it (champion or
    // challenger): its grace days, templates and messages.
    let policy_of = |d: &Decision| policies[usize::from(d.strategy).min(policies.len() - 1)];
    let wanted = decisions
        .iter()
        .filter(|d| !d.actions.is_empty() || d.writeoff)
        .map(|d| {
            (
                d.account.debtor_id.as_str(),
                d.account.currency.as_str(),
                policy_of(d).grace_days,
                d.account.debtor_at,
            )
        });
    let items = overdue_items(inputs, wanted, as_of)?;

    let render_one = |d: &Decision, staging: &Staging| -> anyhow::Result<Rendered> {
        let policy = policy_of(d);
        let messages = &policy.messages;
        let mut r = Rendered::default();
        let at = inputs
            .debtors
            .position_hinted(&d.account.debtor_id, d.account.debtor_at);
        let Some(debtor) = at.and_then(|at| inputs.debtors.at(at)) else {
            return Ok(r);
        };
        let lang = messages.language(debtor);
        let its = &items.of(&d.account.debtor_id, &d.account.currency, at);
        let level_name = policy
            .ladders
            .iter()
            .find_map(|l| l.level(d.level_after).map(|lv| lv.name.as_str()))
            .unwrap_or("");
        for a in &d.actions {
            if !CHANNELS.contains(&a.channel.as_str()) {
                continue;
            }
            let ctx = render::context(
                messages,
                d,
                level_name,
                debtor,
                its,
                &lang,
                as_of,
                &a.channel,
                &a.template,
            )?;
            let job = Job {
                messages,
                decision: d,
                debtor,
                lang: &lang,
                template: &a.template,
                ctx: &ctx,
                as_of,
            };
            match a.channel.as_str() {
                "letter" => {
                    let mut l = letter::build(&job)?;
                    r.files
                        .push(staging.put(&format!("letters/{}", l.file), &l.bytes)?);
                    l.bytes = Vec::new();
                    r.letters.push(l);
                }
                "email" => {
                    let mut e = email::build(&job)?;
                    r.files
                        .push(staging.put(&format!("emails/{}", e.file), &e.bytes)?);
                    e.bytes = Vec::new();
                    r.emails.push(e);
                }
                "sms" => r.sms.push(sms::build(&job)?),
                "call" => r.calls.push(call::build(&job)?),
                _ => {}
            }
        }
        Ok(r)
    };

    let mut counts = Written::default();
    // The indexes are written to their files as the documents come: at a
    // million documents they are 100 MB that need not wait in memory.
    let mut email_index = csv::Writer::from_writer(staging.open("emails/index.csv")?);
    email_index.write_record(email::INDEX_COLUMNS)?;
    let mut letter_index = csv::Writer::from_writer(staging.open("letters/index.csv")?);
    letter_index.write_record(letter::INDEX_COLUMNS)?;
    let mut sms_csv = csv::Writer::from_writer(staging.open("sms.csv")?);
    sms_csv.write_record(sms::COLUMNS)?;
    let mut calls: Vec<call::Call> = Vec::new();
    // Rendered in parallel a chunk at a time and written in decision order:
    // memory stays bounded by two chunks of documents however large the
    // night, and the error reported is the first in decision order. A
    // chunk's indexes are written while the next chunk renders: one after
    // the other, the writing was 3 % of an e-mail night's documents, with
    // the other core idle.
    let bar = crate::progress(with_messages.len() as u64, "documents");
    let mut files: Vec<crate::emit::Written> = Vec::new();
    let mut index = |rendered: Vec<anyhow::Result<Rendered>>| -> anyhow::Result<()> {
        for r in rendered {
            let r = r?;
            files.extend(r.files);
            for e in r.emails {
                email_index.write_record(e.index_row().iter().map(|c| cell(c).into_owned()))?;
                counts.emails += 1;
            }
            for l in r.letters {
                letter_index.write_record(l.index_row().iter().map(|c| cell(c).into_owned()))?;
                counts.letters += 1;
            }
            for s in r.sms {
                sms_csv.write_record(s.row().iter().map(|c| cell(c).into_owned()))?;
                counts.sms += 1;
            }
            calls.extend(r.calls);
        }
        Ok(())
    };
    let mut chunks = with_messages.chunks(RENDER_CHUNK);
    let mut previous: Option<(Vec<anyhow::Result<Rendered>>, usize)> = None;
    loop {
        let chunk = chunks.next();
        if chunk.is_none() && previous.is_none() {
            break;
        }
        // Each thread writes the files it renders; they are recorded in
        // decision order once rendered.
        let shared: &Staging = staging;
        let (rendered, indexed) = rayon::join(
            || {
                chunk.map(|c| {
                    c.par_iter()
                        .map(|d| render_one(d, shared))
                        .collect::<Vec<_>>()
                })
            },
            || previous.take().map(|(p, n)| index(p).map(|()| n)),
        );
        if let Some(done) = indexed {
            bar.inc(done? as u64);
            crate::failpoint("mid-actions");
        }
        previous = rendered.zip(chunk.map(<[_]>::len));
    }
    for w in files {
        staging.record(w);
    }
    bar.finish_and_clear();
    // The call-centre queue is worked from the top: by priority, then as
    // decisions are sorted.
    calls.sort_by_key(|c| c.priority);
    let mut calls_csv = csv::Writer::from_writer(staging.open("calls.csv")?);
    calls_csv.write_record(call::COLUMNS)?;
    for c in &calls {
        calls_csv.write_record(c.row().iter().map(|x| cell(x).into_owned()))?;
    }
    counts.calls = calls.len();
    let finish = |w: csv::Writer<_>| w.into_inner().map_err(|e| anyhow::anyhow!("{}", e.error()));
    for w in [email_index, letter_index, sms_csv, calls_csv] {
        staging.close(finish(w)?)?;
    }
    counts.placements = placement::write(decisions, &inputs.debtors, &items, as_of, staging)?;
    items.failed()?;
    Ok(counts)
}

/// A file name for a debtor's document that cannot leave its folder:
/// only ASCII letters, digits, `_` and `-` survive, and an id that had to
/// be changed gets a short hash so that two ids never share a file.
pub fn safe_name(debtor_id: &str, currency: &str, template: &str) -> String {
    let clean: String = debtor_id
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = if clean.is_empty() {
        "_".to_owned()
    } else {
        clean
    };
    let changed = clean != debtor_id;
    let mut name = format!("{clean}-{currency}-{template}");
    if changed {
        name.push('-');
        name.push_str(&crate::audit::sha256_bytes(debtor_id.as_bytes())[..10]);
    }
    name
}

/// Only the debtor lookup is needed by the channel modules.
pub(crate) fn debtor_name(d: &Debtor) -> String {
    // Display names go into headers and CSV cells: no control characters.
    d.name()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn names_never_escape_the_folder() {
        assert_eq!(safe_name("D001", "EUR", "reminder"), "D001-EUR-reminder");
        let n = safe_name("../../etc/passwd", "EUR", "reminder");
        assert!(!n.contains('/') && !n.contains(".."), "{n}");
        assert!(n.starts_with("______etc_passwd-EUR-reminder-"), "{n}");
        assert_ne!(safe_name("a/b", "EUR", "x"), safe_name("a_b", "EUR", "x"));
        assert_ne!(safe_name("a/b", "EUR", "x"), safe_name("a\\b", "EUR", "x"));
    }
}
