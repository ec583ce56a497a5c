//! The night: every stage of the flow, in order, each timed and logged with
//! its counts. Nothing here decides anything; it wires the stages and keeps
//! the run's promises: the output appears whole or not at all, and the state
//! advances only after the output is in place.

use crate::accounts::{self, Account};
use crate::audit;
use crate::decide::{self, Context, Decision};
use crate::emit::{self, Staging};
use crate::history;
use crate::history::Prior;
use crate::ingest;
use crate::policy::{display_path, Policy};
use crate::state::{self, NightRecord, State};
use anyhow::Context as _;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tracing::info;

/// A night the state does not allow.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

#[derive(Debug, Clone)]
pub struct RunArgs {
    pub policy: PathBuf,
    pub ledger: PathBuf,
    pub debtors: PathBuf,
    pub events: Option<PathBuf>,
    pub as_of: NaiveDate,
    pub state: PathBuf,
    pub out: PathBuf,
    /// Write `trace.jsonl`: every account's full trace.
    pub trace: bool,
    pub challenger: Option<ChallengerArgs>,
    /// Only the debtors of this shard (`--shard K/N`).
    pub shard: Option<crate::shard::Shard>,
}

/// `--challenger DIR --share N [--challenger-seed S]`.
#[derive(Debug, Clone)]
pub struct ChallengerArgs {
    pub policy: PathBuf,
    pub share_bp: u32,
    pub seed: String,
}

fn load_challenger(args: &RunArgs) -> anyhow::Result<Option<Challenger>> {
    let Some(c) = &args.challenger else {
        return Ok(None);
    };
    let policy = Policy::load(&c.policy)?;
    info!(stage = "policy", challenger = %policy.name, sha256 = %&policy.sha256[..12], share_bp = c.share_bp, "challenger policy loaded");
    Ok(Some(Challenger {
        policy,
        share_bp: c.share_bp,
        seed: c.seed.clone(),
    }))
}

/// What the scheduler's log gets at the end.
#[derive(Debug, Clone)]
pub struct Report {
    pub counts: Counts,
    pub rerun: bool,
    pub out: PathBuf,
    /// For the closing screen: escalations by level reached, actions by
    /// channel, accounts by hold.
    pub escalated_to: BTreeMap<u32, u64>,
    pub by_channel: BTreeMap<String, u64>,
    pub by_hold: BTreeMap<String, u64>,
    pub as_of: NaiveDate,
    pub elapsed: std::time::Duration,
}

impl Report {
    /// One screen for the operator at the end of `run`: what happened and
    /// where to look next. No personal data.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let c = &self.counts;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "night {}{}: done in {:.1} s, output in {}",
            self.as_of,
            if self.rerun {
                " (re-run: state unchanged)"
            } else {
                ""
            },
            self.elapsed.as_secs_f64(),
            self.out.display()
        );
        let _ = writeln!(
            s,
            "  accounts     {:>9}   escalations {:>9}   cures {:>9}   on hold {:>9}",
            c.accounts, c.escalations, c.cures, c.held
        );
        let list = |m: &mut dyn Iterator<Item = (String, u64)>| {
            let v: Vec<String> = m.map(|(k, n)| format!("{k} {n}")).collect();
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        let _ = writeln!(
            s,
            "  escalated to {}",
            list(
                &mut self
                    .escalated_to
                    .iter()
                    .map(|(l, n)| (format!("level {l}:"), *n))
            )
        );
        let _ = writeln!(
            s,
            "  actions      {} ({})",
            c.actions,
            list(&mut self.by_channel.iter().map(|(k, n)| (format!("{k}:"), *n)))
        );
        let _ = writeln!(
            s,
            "  holds        {}",
            list(&mut self.by_hold.iter().map(|(k, n)| (format!("{k}:"), *n)))
        );
        let _ = writeln!(
            s,
            "  rejected     {} value(s){}",
            c.rejected_values,
            if c.rejected_values > 0 {
                format!(" (see {})", self.out.join("rejects.csv").display())
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            s,
            "  report       {}",
            self.out.join("report.html").display()
        );
        s
    }
}

/// `manifest.json`: what a night read and wrote, with hashes. Owned and
/// readable back, so that `merge` can rebuild one from shard manifests
/// byte for byte as the unsharded night would have written it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InputEntry {
    pub role: String,
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    pub rows: usize,
    pub rejected_rows: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PolicyEntry {
    pub name: String,
    pub version: Option<String>,
    pub sha256: String,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChallengerEntry {
    pub policy: PolicyEntry,
    pub share_percent: String,
    pub seed: String,
    /// The hash the state records for the night: both policies, the share
    /// and the seed.
    pub night_policy_sha256: String,
}

fn policy_entry(policy: &Policy) -> PolicyEntry {
    PolicyEntry {
        name: policy.name.clone(),
        version: policy.version.clone(),
        sha256: policy.sha256.clone(),
        files: policy
            .files
            .iter()
            .map(|f| FileEntry {
                path: f.path.clone(),
                sha256: f.sha256.clone(),
            })
            .collect(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
}

/// Which part of a sharded night this output holds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShardEntry {
    pub k: u32,
    pub n: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub engine: String,
    pub version: String,
    pub as_of: String,
    pub policy: PolicyEntry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenger: Option<ChallengerEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardEntry>,
    pub inputs: Vec<InputEntry>,
    pub previous_night: Option<String>,
    pub outputs: Vec<emit::Written>,
    pub counts: Counts,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    pub accounts: u64,
    pub escalations: u64,
    pub cures: u64,
    pub held: u64,
    pub actions: u64,
    pub rejected_values: usize,
}

impl Counts {
    pub fn of(summary: &emit::Summary) -> Counts {
        Counts {
            accounts: summary.accounts,
            escalations: summary.escalations,
            cures: summary.cures,
            held: summary.held,
            actions: summary.actions,
            rejected_values: summary.rejected_values as usize,
        }
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| display_path(p))
}

fn stage<T>(name: &'static str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let t = Instant::now();
    let out = f();
    tracing::debug!(
        stage = name,
        ms = t.elapsed().as_millis() as u64,
        cpu = ?crate::cpu_ms(),
        minflt = crate::minor_faults(),
        "stage finished"
    );
    out
}

/// Keeps only the ledger items of this shard's debtors.
fn keep_shard(data: &mut ingest::Inputs, shard: crate::shard::Shard) -> anyhow::Result<()> {
    use polars::prelude::*;
    let keys = data.items.column("account")?.u64()?;
    let debtors = &data.debtors;
    let mask: BooleanChunked = keys
        .iter()
        .map(|k| {
            let debtor = k.and_then(|k| debtors.at(ingest::account_of_key(k).0));
            Some(debtor.is_some_and(|d| shard.holds(d.id())))
        })
        .collect();
    data.items = data.items.filter(&mask)?;
    Ok(())
}

/// An address that failed for good is not one to mail again.
fn mark_bounced(data: &mut ingest::Inputs, u: &crate::send::Undelivered) {
    if u.bounced.is_empty() {
        return;
    }
    for d in data.debtors.values_mut() {
        if !d.email().is_empty() && u.bounced.contains(&crate::send::address_sha256(d.email())) {
            d.email_bounced = true;
            d.email_ok = false;
        }
    }
}

/// An input's role, file name, SHA-256 and size, for the manifest.
type InputHash = (&'static str, String, String, u64);

/// The thread hashing the night's inputs, and what tells it to stop and
/// hand its work over.
struct Hashing {
    handle: std::thread::JoinHandle<audit::FileHasher>,
    hurry: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The hashes of the night's inputs, once the thread hashing them is done.
fn hashed(hashing: Hashing, inputs: &[(&'static str, PathBuf)]) -> anyhow::Result<Vec<InputHash>> {
    // At idle priority the thread only gets what other work leaves, which
    // on a busy machine can be nothing (and an unprivileged process cannot
    // raise it again): it stops at its next window, and what is left is
    // hashed here.
    hashing
        .hurry
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let mut hasher = hashing
        .handle
        .join()
        .map_err(|_| anyhow::anyhow!("internal error: the thread hashing the inputs panicked"))?;
    hasher.run(&|| false);
    let hashed = hasher.finish();
    let mut hashes = Vec::new();
    for ((role, path), hash) in inputs.iter().zip(hashed) {
        let (sha, bytes) = hash.map_err(|source| ingest::IngestError::Unreadable {
            file: display_path(path),
            source,
        })?;
        hashes.push((*role, file_name(path), sha, bytes));
    }
    Ok(hashes)
}

/// Puts the calling thread under `SCHED_IDLE`: it runs when a core would
/// otherwise be idle. Where that cannot be done (not Linux, a sandbox that
/// forbids it) the thread keeps its priority, which is only slower.
fn idle_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; `param` outlives the call.
        unsafe {
            libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
        }
    }
}

/// Reads and checks the night's input files, logging what each held.
fn read_inputs(
    policy: &Policy,
    ledger: &Path,
    debtors: &Path,
    events: Option<&Path>,
) -> anyhow::Result<ingest::Inputs> {
    let t = Instant::now();
    let data = ingest::read(ledger, debtors, events, &policy.messages.default_country)?;
    for c in &data.counts {
        info!(stage = "ingest", file = %file_name(Path::new(&c.file)), rows = c.rows, rejected = c.rejected, "file read");
    }
    info!(
        stage = "ingest",
        items = data.items.height(),
        debtors = data.debtors.len(),
        events = data.events.len(),
        rejected_values = data.rejects.len(),
        ms = t.elapsed().as_millis() as u64,
        rss_mib = crate::rss_mib(),
        peak_rss_mib = crate::peak_rss_mib(),
        "inputs checked"
    );
    ingest::enforce_reject_share(&data, policy.max_rejected_share)?;
    Ok(data)
}

/// `explain`: the decisions a night with these inputs would make for one
/// debtor's accounts, each with its full trace. Reads the state without
/// locking it and writes nothing, so it is safe beside a running night.
pub fn explain(args: &RunArgs, debtor_id: &str) -> anyhow::Result<Vec<Decision>> {
    let policy = Policy::load(&args.policy)?;
    let state = state::Reader::new(&args.state);
    let nights = state.nights()?;
    let previous = nights.iter().rev().find(|n| **n < args.as_of).copied();
    let priors = priors_for(&state, previous)?;
    let contacts = contacts_for(&state, previous)?;
    let mut data = read_inputs(&policy, &args.ledger, &args.debtors, args.events.as_deref())?;
    let undelivered = crate::send::undelivered(&args.state, &nights, previous)?;
    mark_bounced(&mut data, &undelivered);
    let challenger = load_challenger(args)?;
    let mut decisions = decide_night(
        &policy,
        challenger.as_ref(),
        &data,
        args.as_of,
        &priors,
        true,
        &undelivered.failed_last_night,
        &contacts,
    )?;
    let charged = match previous {
        Some(n) => state.charged(n)?,
        None => Default::default(),
    };
    let mut policies = vec![&policy];
    if let Some(c) = &challenger {
        policies.push(&c.policy);
    }
    charge(&policies, &mut decisions, &data, args.as_of, &charged)?;
    Ok(decisions
        .into_iter()
        .filter(|d| d.account.debtor_id == debtor_id)
        .collect())
}

/// The last committed night's account standings, or none before the first.
fn priors_for(
    state: &state::Reader,
    previous: Option<NaiveDate>,
) -> anyhow::Result<HashMap<(String, String), Prior>> {
    Ok(match previous {
        Some(n) => state.load(n)?,
        None => Default::default(),
    })
}

/// Tonight's charges (attached to the decisions) and the charge state after
/// tonight; nothing when no policy charges.
fn charge(
    policies: &[&Policy],
    decisions: &mut [Decision],
    data: &ingest::Inputs,
    as_of: NaiveDate,
    before: &crate::charges::Ledger,
) -> anyhow::Result<crate::charges::Ledger> {
    if policies.iter().all(|p| p.charges.is_none()) {
        return Ok(Default::default());
    }
    let t = Instant::now();
    let policy_of = |d: &Decision| policies[usize::from(d.strategy).min(policies.len() - 1)];
    let wanted = decisions
        .iter()
        .filter(|d| policy_of(d).charges.is_some())
        .map(|d| {
            (
                d.account.debtor_id.as_str(),
                d.account.currency.as_str(),
                policy_of(d).grace_days,
                d.account.debtor_at,
            )
        });
    let items = crate::actions::overdue_items(data, wanted, as_of)?;
    let after = crate::charges::compute(policies, decisions, &data.debtors, &items, as_of, before)?;
    items.failed()?;
    info!(
        stage = "charges",
        charges = decisions.iter().map(|d| d.charges().len()).sum::<usize>(),
        items = after.len(),
        ms = t.elapsed().as_millis() as u64,
        rss_mib = crate::rss_mib(),
        peak_rss_mib = crate::peak_rss_mib(),
        "charges computed"
    );
    Ok(after)
}

/// The compliance contact log the last committed night left.
fn contacts_for(
    state: &state::Reader,
    previous: Option<NaiveDate>,
) -> anyhow::Result<crate::compliance::Log> {
    Ok(match previous {
        Some(n) => state.contacts(n)?,
        None => Default::default(),
    })
}

/// A second policy that decides a stable share of the debtors.
pub struct Challenger {
    pub policy: Policy,
    /// The share of debtors, in basis points (1,000 = 10 %).
    pub share_bp: u32,
    pub seed: String,
}

impl Challenger {
    /// Whether the challenger decides this debtor's accounts. A seeded hash
    /// of the debtor id alone: the same debtors every night, whatever else
    /// is in the ledger, and all of a debtor's accounts on one side.
    pub fn picks(&self, debtor_id: &str) -> bool {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.seed.as_bytes());
        h.update([0u8]);
        h.update(debtor_id.as_bytes());
        let d = h.finalize();
        let n = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
        (n % 10_000) < u64::from(self.share_bp)
    }

    /// What a committed night records as its policy: both policies, the
    /// share and the seed, so that a re-run with another split is refused.
    pub fn combined_sha(&self, champion: &Policy) -> String {
        audit::sha256_bytes(
            format!(
                "champion={}\nchallenger={}\nshare_bp={}\nseed={}\n",
                champion.sha256, self.policy.sha256, self.share_bp, self.seed
            )
            .as_bytes(),
        )
    }
}

/// Tonight's accounts under one policy's grace days, with those the state
/// still remembers above level 0, sorted as `decisions.csv` is, each in
/// the decision it will be given; only those of debtors that `keep` keeps
/// (a challenger's share, or the champion's), all when `None`.
fn accounts_for(
    policy: &Policy,
    data: &ingest::Inputs,
    as_of: NaiveDate,
    priors: &HashMap<(String, String), Prior>,
    keep: Option<&(dyn Fn(&str) -> bool + Sync)>,
) -> anyhow::Result<Vec<Decision>> {
    let keeps = |id: &str| keep.is_none_or(|keep| keep(id));
    // Accounts that stood above level 0 last night are decided tonight even
    // with nothing open, so that they can be cured: room is left for them.
    let remembered = priors
        .iter()
        .filter(|(k, p)| p.level > 0 && keeps(&k.0))
        .count();
    let mut accts = stage("accounts", || {
        accounts::summarize_sorted(
            &data.items,
            &data.debtors,
            as_of,
            policy.grace_days,
            keep,
            remembered,
            Decision::pending,
        )
        .context("computing accounts")
    })?;
    // They are looked for in the sorted accounts: a set of a million keys
    // cost more than the sort.
    let key = order_key;
    let mut missing: Vec<Decision> = priors
        .iter()
        .filter(|(k, p)| {
            p.level > 0
                && keeps(&k.0)
                && accts
                    .binary_search_by(|d| key(d).cmp(&(k.0.as_str(), k.1.as_str())))
                    .is_err()
        })
        .map(|(k, _)| Decision::pending(Account::empty(&k.0, &k.1, data.debtors.position(&k.0))))
        .collect();
    missing.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
    merge_sorted(
        &mut accts,
        missing,
        |a, b| key(a) < key(b),
        || Decision::pending(Account::default()),
    );
    Ok(accts)
}

/// What decisions are sorted by: debtor, then currency.
fn order_key(d: &Decision) -> (&str, &str) {
    (d.account.debtor_id.as_str(), d.account.currency.as_str())
}

/// Merges `add` into `into`, both sorted and with no element in common,
/// in place: `into` grows by as many `hole`s, then from the end each slot
/// takes the larger of the two lists' last elements (an element of `into`
/// by a swap with the hole), so nothing is held twice.
fn merge_sorted<T>(
    into: &mut Vec<T>,
    mut add: Vec<T>,
    less: impl Fn(&T, &T) -> bool,
    hole: impl Fn() -> T,
) {
    let mut i = into.len();
    into.resize_with(i + add.len(), hole);
    // The holes are always `into[i..k]`, as many as `add` has left.
    let mut k = into.len();
    while let Some(last) = add.last() {
        k -= 1;
        if i > 0 && less(last, &into[i - 1]) {
            into.swap(i - 1, k);
            i -= 1;
        } else if let Some(last) = add.pop() {
            into[k] = last;
        }
    }
}

fn decide_with(
    policy: &Policy,
    strategy: u8,
    data: &ingest::Inputs,
    as_of: NaiveDate,
    priors: &HashMap<(String, String), Prior>,
    accts: Vec<Decision>,
    trace: bool,
) -> anyhow::Result<Vec<Decision>> {
    let t = Instant::now();
    let standings = history::standings(policy, &data.events, as_of);
    let held = standings.values().filter(|s| s.hold.is_some()).count();
    info!(
        stage = "history",
        strategy = decide::STRATEGIES[usize::from(strategy)],
        debtors_with_events = standings.len(),
        debtors_on_hold = held,
        ms = t.elapsed().as_millis() as u64,
        rss_mib = crate::rss_mib(),
        peak_rss_mib = crate::peak_rss_mib(),
        "holds and flags"
    );
    let t = Instant::now();
    let ctx = Context {
        policy,
        as_of,
        debtors: &data.debtors,
        standings: &standings,
        priors,
        trace,
        strategy,
    };
    let decisions = decide::decide_all(&ctx, accts)?;
    // At the default level, as every stage's time is: the benchmark reads
    // the nights at the level a scheduler runs them.
    info!(
        stage = "decide",
        strategy = decide::STRATEGIES[usize::from(strategy)],
        ms = t.elapsed().as_millis() as u64,
        rss_mib = crate::rss_mib(),
        peak_rss_mib = crate::peak_rss_mib(),
        "rules evaluated"
    );
    Ok(decisions)
}

/// Accounts, holds and decisions for one night's checked inputs: the part
/// of a night that `run`, `explain` and `test` share, so that what they
/// show is what a night does. With a challenger, its share of the debtors
/// is decided by its policy (holds, segments, ladder and channels), the rest
/// by the champion, and the two are merged back in account order.
/// Then last night's e-mails that failed for good are sent again through
/// the e-mail channel's fallback (retail-fr: a letter with the same
/// template), unless the account is cured or on hold.
// The inputs of one night's decisions, each from its own source (policy,
// files, state); bundling them would only rename the list.
#[allow(clippy::too_many_arguments)]
pub fn decide_night(
    policy: &Policy,
    challenger: Option<&Challenger>,
    data: &ingest::Inputs,
    as_of: NaiveDate,
    priors: &HashMap<(String, String), Prior>,
    trace: bool,
    failed_last_night: &[(String, String, String, String)],
    contacts: &crate::compliance::Log,
) -> anyhow::Result<Vec<Decision>> {
    let mut decisions = decide_accounts(policy, challenger, data, as_of, priors, trace)?;
    for (debtor, currency, template, reply) in failed_last_night {
        let Ok(i) = decisions.binary_search_by(|d| {
            (d.account.debtor_id.as_str(), d.account.currency.as_str())
                .cmp(&(debtor.as_str(), currency.as_str()))
        }) else {
            continue;
        };
        let d = &mut decisions[i];
        if matches!(d.outcome, decide::Outcome::Cure | decide::Outcome::Hold) {
            continue;
        }
        let p = match (d.strategy, challenger) {
            (1, Some(c)) => &c.policy,
            _ => policy,
        };
        let Some(crate::policy::Fallback::Channel(via)) =
            p.channels.get("email").map(|c| &c.otherwise)
        else {
            continue;
        };
        let action = crate::policy::Action {
            channel: via.as_str().into(),
            template: template.as_str().into(),
        };
        if !d.actions.contains(&action) {
            // The reply's code only: the text may quote the address.
            let code = reply
                .as_bytes()
                .windows(3)
                .find(|w| w.iter().all(u8::is_ascii_digit) && (w[0] == b'4' || w[0] == b'5'))
                .map_or("5xx".to_owned(), |w| {
                    String::from_utf8_lossy(w).into_owned()
                });
            d.reason.push_str(&format!(
                "; email:{template} of the last night failed for good ({code}): sent as {action}"
            ));
            d.actions.push(action);
        }
    }
    // The law's contact rules, last: over the ladder, the channel rules and
    // the fallback above.
    let mut policies = vec![policy];
    if let Some(c) = challenger {
        policies.push(&c.policy);
    }
    crate::compliance::apply(
        &policies,
        &mut decisions,
        &data.debtors,
        &data.events,
        as_of,
        contacts,
    );
    Ok(decisions)
}

/// Logs the accounts stage.
fn built(accounts: usize, t: Instant) {
    info!(
        stage = "accounts",
        accounts,
        ms = t.elapsed().as_millis() as u64,
        rss_mib = crate::rss_mib(),
        peak_rss_mib = crate::peak_rss_mib(),
        "accounts built"
    );
}

fn decide_accounts(
    policy: &Policy,
    challenger: Option<&Challenger>,
    data: &ingest::Inputs,
    as_of: NaiveDate,
    priors: &HashMap<(String, String), Prior>,
    trace: bool,
) -> anyhow::Result<Vec<Decision>> {
    let t = Instant::now();
    let Some(c) = challenger else {
        let accts = accounts_for(policy, data, as_of, priors, None)?;
        built(accts.len(), t);
        return decide_with(policy, 0, data, as_of, priors, accts, trace);
    };
    // Each share's accounts under its own policy's grace days.
    let ours = accounts_for(policy, data, as_of, priors, Some(&|d| !c.picks(d)))?;
    let theirs = accounts_for(&c.policy, data, as_of, priors, Some(&|d| c.picks(d)))?;
    built(ours.len() + theirs.len(), t);
    info!(
        stage = "accounts",
        champion = ours.len(),
        challenger = theirs.len(),
        share_bp = c.share_bp,
        "accounts split between champion and challenger"
    );
    let mut decisions = decide_with(policy, 0, data, as_of, priors, ours, trace)?;
    let theirs = decide_with(&c.policy, 1, data, as_of, priors, theirs, trace)?;
    let key = order_key;
    merge_sorted(
        &mut decisions,
        theirs,
        |a, b| key(a) < key(b),
        || Decision::pending(Account::default()),
    );
    Ok(decisions)
}

pub fn run(args: &RunArgs) -> anyhow::Result<Report> {
    let started = Instant::now();
    let as_of = args.as_of;

    // What the night reads, hashed on a thread of its own while the
    // policy is compiled and the files are read. The thread runs only on
    // a core the night leaves idle (`SCHED_IDLE`): the reading keeps both
    // cores busy, and between its parallel stages a core waits on serial
    // steps. At a million debtors the hashing is 0.4 s of a core; run
    // beside the reading, it slowed the reading by as much.
    let mut inputs = vec![
        ("ledger", args.ledger.clone()),
        ("debtors", args.debtors.clone()),
    ];
    if let Some(e) = &args.events {
        inputs.push(("events", e.clone()));
    }
    let hashing = {
        let paths: Vec<PathBuf> = inputs.iter().map(|(_, p)| p.clone()).collect();
        let hurry = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = std::sync::Arc::clone(&hurry);
        let handle = std::thread::spawn(move || {
            idle_priority();
            let mut hasher = audit::FileHasher::new(paths);
            hasher.run(&|| stop.load(std::sync::atomic::Ordering::Relaxed));
            hasher
        });
        Hashing { handle, hurry }
    };

    let t = Instant::now();
    let policy = Policy::load(&args.policy)?;
    info!(stage = "policy", policy = %policy.name, sha256 = %&policy.sha256[..12], segments = policy.segments.len(), ms = t.elapsed().as_millis() as u64, "policy loaded");
    for w in &policy.warnings {
        tracing::warn!(stage = "policy", "{}", w.as_warning());
    }
    if let Some(c) = &policy.compliance {
        for w in c.stale_calendars(as_of) {
            tracing::warn!(stage = "policy", "{w}");
        }
    }
    crate::failpoint("after-policy");
    let challenger = load_challenger(args)?;
    // What the state records as the night's policy.
    let night_policy_sha = match &challenger {
        Some(c) => c.combined_sha(&policy),
        None => policy.sha256.clone(),
    };

    let state = State::open(&args.state)?;
    let nights = state.nights()?;
    let rerun = nights.contains(&as_of);
    if !rerun {
        if let Some(last) = nights.last().filter(|l| **l > as_of) {
            return Err(Refused(format!(
                "--as-of {as_of} is before the last committed night {last} in {}; a night can only be re-run exactly, never inserted into the past",
                args.state.display()
            ))
            .into());
        }
    }
    let previous = nights.iter().rev().find(|n| **n < as_of).copied();

    // The inputs are read while they are hashed. A problem with them is
    // reported after the checks below, which refuse the night for what
    // the state says whatever the files hold.
    let data = read_inputs(&policy, &args.ledger, &args.debtors, args.events.as_deref());
    // A re-run is refused for other inputs whatever they hold, so it
    // needs the hashes now; any other night needs them only before its
    // first output, and the hashing goes on meanwhile.
    let mut hashing = Some(hashing);
    let mut hashes = Vec::new();
    if rerun {
        if let Some(h) = hashing.take() {
            hashes = hashed(h, &inputs)?;
        }
    }
    // E-mails that failed for good after earlier nights (`dunning send`):
    // their addresses are not used again, and last night's are sent tonight
    // by the e-mail channel's fallback. The logs read are inputs of the
    // night like the files: a re-run must see the same ones.
    let undelivered = crate::send::undelivered(&args.state, &nights, previous)?;
    let mut more_inputs: Vec<(String, String)> = undelivered.read.clone();
    // A shard's state belongs to that shard: running it as another shard
    // (or unsharded) would lose or invent accounts.
    let spec = args
        .shard
        .map(|s| format!("{}/{}", s.k, s.n))
        .unwrap_or_default();
    if let Some(p) = previous {
        let before = state
            .record(p)?
            .inputs
            .iter()
            .find(|(k, _)| k == "shard")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if before != spec {
            return Err(Refused(format!(
                "the state in {} was run {}; this night is {}: a shard's state must always be run as the same shard",
                args.state.display(),
                if before.is_empty() { "unsharded".to_owned() } else { format!("as shard {before}") },
                if spec.is_empty() { "unsharded".to_owned() } else { format!("shard {spec}") }
            ))
            .into());
        }
    }
    if !spec.is_empty() {
        more_inputs.push(("shard".into(), spec));
    }
    let input_pairs_of = |hashes: &[InputHash]| -> Vec<(String, String)> {
        hashes
            .iter()
            .map(|(role, _, sha, _)| ((*role).to_owned(), sha.clone()))
            .chain(more_inputs.iter().cloned())
            .collect()
    };
    let committed = if rerun {
        let record = state.record(as_of)?;
        if record.policy_sha256 != night_policy_sha || record.inputs != input_pairs_of(&hashes) {
            return Err(Refused(format!(
                "night {as_of} is already committed in {} with other inputs or another policy; a committed night can only be re-run with the very same files (to redo it, restore the state from before it)",
                args.state.display()
            ))
            .into());
        }
        info!(night = %as_of, "re-running a committed night: output is rebuilt, the state is left as it is");
        Some(record)
    } else {
        None
    };

    let mut data = data?;
    let mut priors = priors_for(&state, previous)?;
    let mut contacts = contacts_for(&state, previous)?;
    let mut charged = match previous {
        Some(n) => state.charged(n)?,
        None => Default::default(),
    };
    mark_bounced(&mut data, &undelivered);
    crate::failpoint("after-ingest");
    if let Some(sh) = args.shard {
        keep_shard(&mut data, sh)?;
        priors.retain(|k, _| sh.holds(&k.0));
        contacts.retain(|k, _| sh.holds(k));
        charged.retain(|_, c| sh.holds(&c.debtor_id));
    }
    let t = Instant::now();
    let mut decisions = decide_night(
        &policy,
        challenger.as_ref(),
        &data,
        as_of,
        &priors,
        args.trace,
        &undelivered.failed_last_night,
        &contacts,
    )?;
    // Each strategy's policy: the champion, then the challenger.
    let mut policies = vec![&policy];
    if let Some(c) = &challenger {
        policies.push(&c.policy);
    }
    let charged_after = charge(&policies, &mut decisions, &data, as_of, &charged)?;
    let mut policy_names = vec![policy.name.as_str()];
    if let Some(c) = &challenger {
        policy_names.push(c.policy.name.as_str());
    }
    let decide_ms = t.elapsed().as_millis() as u64;

    let t = Instant::now();
    // Read now, so that a state that cannot be read stops the night
    // before any output is written.
    let watched = match previous {
        Some(n) => state.promises(n)?,
        None => Vec::new(),
    };
    crate::failpoint("after-decide");
    if let Some(h) = hashing.take() {
        let t = Instant::now();
        hashes = hashed(h, &inputs)?;
        // Should the hashing (at idle priority) lag, the wait shows here.
        tracing::debug!(
            stage = "ingest",
            waited_ms = t.elapsed().as_millis() as u64,
            cpu = ?crate::cpu_ms(),
            minflt = crate::minor_faults(),
            "inputs hashed"
        );
    }
    let input_pairs = input_pairs_of(&hashes);
    let mut staging = Staging::new(&args.out)?;
    // The summary is counted while decisions.csv is written: that writing
    // waits on the kernel's copy and leaves the pool half idle.
    let (written, summary) = std::thread::scope(|s| {
        let summary = s.spawn(|| {
            emit::summary(
                &as_of.to_string(),
                &policy_names,
                &decisions,
                data.rejects.len(),
            )
        });
        let written = staging.write_parts("decisions.csv", |each| {
            emit::decisions_csv(&decisions, each)
        });
        let summary = summary
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (written, summary)
    });
    written?;
    tracing::debug!(cpu = ?crate::cpu_ms(), minflt = crate::minor_faults(), "decisions.csv written");
    info!(
        stage = "decide",
        accounts = summary.accounts,
        escalations = summary.escalations,
        cures = summary.cures,
        held = summary.held,
        actions = summary.actions,
        ms = decide_ms,
        rss_mib = crate::rss_mib(),
        peak_rss_mib = crate::peak_rss_mib(),
        "decisions made"
    );
    staging.write("rejects.csv", &emit::rejects_csv(&data.rejects))?;
    let rows: Vec<&crate::charges::Charge> =
        decisions.iter().flat_map(|d| d.charges().iter()).collect();
    staging.write("charges.csv", &crate::charges::csv(&rows))?;
    staging.write("summary.json", &emit::json(&summary))?;
    if args.trace {
        staging.write("trace.jsonl", &crate::explain::jsonl(&decisions))?;
    }
    // The benchmark's yardstick: from the start of the night to
    // decisions.csv written.
    info!(
        stage = "emit",
        ms_since_start = started.elapsed().as_millis() as u64,
        rss_mib = crate::rss_mib(),
        peak_rss_mib = crate::peak_rss_mib(),
        "decisions written"
    );
    crate::failpoint("after-decisions");
    let t_actions = Instant::now();
    let cpu_before = crate::cpu_ms();
    let sent = crate::actions::write(&policies, &decisions, &data, as_of, &mut staging)?;
    // User time is the engine's rendering; system time is mostly the file
    // system creating the documents, which swings 2-3x on a shared host.
    let cpu_after = crate::cpu_ms();
    info!(
        stage = "actions",
        emails = sent.emails,
        letters = sent.letters,
        sms = sent.sms,
        calls = sent.calls,
        placed = sent.placements.placed,
        recalled = sent.placements.recalled,
        legal = sent.placements.legal,
        writeoffs = sent.placements.writeoffs,
        ms = t_actions.elapsed().as_millis() as u64,
        user_ms = cpu_after.0.saturating_sub(cpu_before.0),
        sys_ms = cpu_after.1.saturating_sub(cpu_before.1),
        rss_mib = crate::rss_mib(),
        peak_rss_mib = crate::peak_rss_mib(),
        "action files written"
    );
    let counts_by_file: std::collections::HashMap<&str, &ingest::FileCount> =
        data.counts.iter().map(|c| (c.file.as_str(), c)).collect();
    let mut manifest = Manifest {
        engine: "dunning".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        as_of: as_of.to_string(),
        policy: policy_entry(&policy),
        challenger: challenger.as_ref().map(|c| ChallengerEntry {
            policy: policy_entry(&c.policy),
            share_percent: crate::money::format_cents(i64::from(c.share_bp)),
            seed: c.seed.clone(),
            night_policy_sha256: night_policy_sha.clone(),
        }),
        shard: args.shard.map(|s| ShardEntry { k: s.k, n: s.n }),
        inputs: hashes
            .iter()
            .zip(&inputs)
            .map(|((role, file, sha, bytes), (_, path))| {
                let c = counts_by_file.get(display_path(path).as_str());
                InputEntry {
                    role: (*role).to_owned(),
                    file: file.clone(),
                    sha256: sha.clone(),
                    bytes: *bytes,
                    rows: c.map_or(0, |c| c.rows),
                    rejected_rows: c.map_or(0, |c| c.rejected),
                }
            })
            .collect(),
        previous_night: previous.map(|d| d.to_string()),
        outputs: Vec::new(),
        counts: Counts::of(&summary),
    };
    // The report is built from the manifest's header, before the manifest
    // lists it among the outputs.
    staging.write(
        "report.html",
        &crate::report::html(&manifest, &decisions, &data.rejects),
    )?;
    manifest.outputs = emit::sorted(staging.take_written());
    // Streamed: a million outputs make a manifest of 150 MB of text.
    staging.write_with("manifest.json", |w| emit::write_json(w, &manifest))?;
    drop(manifest);
    // The state after tonight, made once the documents and the manifest
    // are written: at a million accounts its files are 200 MB that their
    // peaks need not carry. Still before the output is put in place, so a
    // re-run that would disagree with its committed night leaves nothing.
    let snapshot = state::snapshot_csv(decisions.iter().map(|d| {
        (
            d.account.debtor_id.as_str(),
            d.account.currency.as_str(),
            &d.after,
        )
    }));
    let snapshot_sha = audit::sha256_bytes(&snapshot);
    // The contact log and the charge state, kept only when a policy has
    // compliance rules or charges.
    let mut extra_state: Vec<(&str, Vec<u8>)> = Vec::new();
    if policies.iter().any(|p| p.compliance.is_some()) {
        extra_state.push((
            "contacts.csv",
            crate::compliance::log_csv(&crate::compliance::log_after(
                &policies, &contacts, &decisions, as_of,
            )),
        ));
    }
    if policies.iter().any(|p| p.charges.is_some()) {
        extra_state.push(("charged.csv", crate::charges::state_csv(&charged_after)));
    }
    // What tomorrow's KPIs need: tonight's transitions and the promises to
    // pay still running.
    {
        let (kpis, promises) =
            crate::kpi::night(&decisions, &priors, &data.events, &watched, as_of);
        extra_state.push(("kpis.csv", kpis));
        extra_state.push(("promises.csv", crate::kpi::promises_csv(&promises)));
    }
    if let Some(record) = &committed {
        anyhow::ensure!(
            record.accounts_sha256 == snapshot_sha,
            "internal error: re-running night {as_of} gave another state than the committed one; please report this"
        );
    }
    crate::failpoint("before-rename");
    let out = staging.finish()?;
    info!(stage = "emit", out = %out.display(), ms = t.elapsed().as_millis() as u64, "output in place");

    crate::failpoint("before-commit");
    if committed.is_none() {
        let record = NightRecord {
            as_of: as_of.to_string(),
            policy_sha256: night_policy_sha.clone(),
            inputs: input_pairs,
            accounts_sha256: snapshot_sha,
        };
        state.commit(as_of, &snapshot, &extra_state, &record)?;
        info!(stage = "commit", night = %as_of, "state committed");
        crate::failpoint("after-commit");
    }

    let mut escalated_to: BTreeMap<u32, u64> = BTreeMap::new();
    for d in &decisions {
        if d.outcome == decide::Outcome::Escalate {
            *escalated_to.entry(d.level_after).or_default() += 1;
        }
    }
    let report = Report {
        counts: Counts::of(&summary),
        rerun,
        out,
        escalated_to,
        by_channel: summary
            .by_channel
            .iter()
            .map(|(k, t)| (k.clone(), t.accounts))
            .collect(),
        by_hold: summary
            .by_hold
            .iter()
            .map(|(k, t)| (k.clone(), t.accounts))
            .collect(),
        as_of,
        elapsed: started.elapsed(),
    };
    let c = &report.counts;
    info!(
        accounts = c.accounts,
        escalations = c.escalations,
        cures = c.cures,
        held = c.held,
        actions = c.actions,
        rejected_values = c.rejected_values,
        rerun = report.rerun,
        ms = started.elapsed().as_millis() as u64,
        "night done"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::merge_sorted;
    use proptest::prelude::*;

    proptest! {
        /// Two sorted lists with nothing in common merge, in place, into
        /// the sorted list of both.
        #[test]
        fn merged_in_place_is_sorted(
            all in proptest::collection::btree_set(0u32..500, 0..60),
            picks in proptest::collection::vec(any::<bool>(), 60),
        ) {
            let all: Vec<u32> = all.into_iter().collect();
            let mut into: Vec<u32> = all.iter().zip(&picks).filter(|p| *p.1).map(|p| *p.0).collect();
            let add: Vec<u32> = all.iter().zip(&picks).filter(|p| !*p.1).map(|p| *p.0).collect();
            merge_sorted(&mut into, add, |a, b| a < b, || u32::MAX);
            prop_assert_eq!(into, all);
        }
    }
}
