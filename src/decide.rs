//! Decide: each account's new level and actions, in the policy's fixed
//! order: cure, then hold, then one step up the ladder (respecting the
//! minimum gap between escalations), else stay. Every decision names the
//! rule that made it and why, and can carry a full trace.

use crate::accounts::Account;
use crate::guard::{self, Guarded};
use crate::history::{Prior, Standing};
use crate::money::Money;
use crate::policy::{Action, Policy};
use crate::script::{self, Env, Facts, ScriptError};
use crate::segment::{self, Tried};
use crate::vector::{Frame, Verdicts};
use chrono::NaiveDate;
use rayon::prelude::*;
use rhai::Scope;
use std::collections::HashMap;

/// Why the level is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Cure,
    Hold,
    Escalate,
    Stay,
    /// The next level's condition holds but the minimum gap has not passed.
    Gap,
    Top,
    NoSegment,
}

impl Outcome {
    pub fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Cure,
            Outcome::Hold,
            Outcome::Escalate,
            Outcome::Stay,
            Outcome::Gap,
            Outcome::Top,
            Outcome::NoSegment,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Cure => "cure",
            Outcome::Hold => "hold",
            Outcome::Escalate => "escalate",
            Outcome::Stay => "stay",
            Outcome::Gap => "gap",
            Outcome::Top => "top",
            Outcome::NoSegment => "no_segment",
        }
    }
}

/// One ladder level's condition tried, for the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelTried {
    pub level: u32,
    pub name: String,
    pub condition: String,
    pub value: bool,
    /// Days since the last escalation and the minimum required.
    pub gap: Option<(i64, i64)>,
}

/// Everything that was looked at, for `explain` and `run --trace`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// Every variable the rules could read, with its value for this account.
    pub facts: Vec<(String, serde_json::Value)>,
    /// The hold found in the events (and which event started it), even when
    /// a cure made it irrelevant.
    pub hold: Option<HoldFound>,
    /// The last escalation the state remembered before tonight.
    pub prior_escalated_on: Option<NaiveDate>,
    /// The policy's cure threshold, which the overdue amount is held against.
    pub cure_below: crate::money::Cents,
    pub segments: Vec<Tried>,
    pub levels: Vec<LevelTried>,
    pub guards: Vec<Guarded>,
    /// What the compliance guards did (deferred, dropped, rerouted, sent
    /// late), in order.
    pub compliance: Vec<String>,
}

/// The event behind an active hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldFound {
    pub name: String,
    pub event: String,
    pub date: NaiveDate,
    pub until: Option<NaiveDate>,
    pub events_row: usize,
}

/// A million of these live through the night: short texts are inline,
/// rarely-set parts boxed and lists one pointer (`ThinVec`, empty for most
/// accounts), so that a decision costs what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub account: Account,
    pub segment: crate::ingest::Text,
    pub level_before: u32,
    pub level_after: u32,
    pub actions: thin_vec::ThinVec<Action>,
    pub held_by: crate::ingest::Text,
    pub outcome: Outcome,
    /// The policy rule that decided, e.g. `ladders.default.levels[2]
    /// second_notice`; shared with the policy's level where it names one.
    pub rule: std::sync::Arc<str>,
    /// A short reason, free of personal data; inline up to 24 bytes (most
    /// are a level's condition, like `max_dpd >= 5`).
    pub reason: crate::ingest::Text,
    pub last_escalated_on: Option<NaiveDate>,
    /// What the state remembers of this account after tonight.
    pub after: Prior,
    /// Recalled from an agency tonight: the agency, the placement date and why.
    pub recall: Option<Box<Recall>>,
    /// A write-off is proposed tonight.
    pub writeoff: bool,
    pub trace: Option<Box<Trace>>,
    /// Which policy decided: 0 the champion, 1 the challenger.
    pub strategy: u8,
    /// What few decisions have (a call priority, a placement, fees,
    /// charges): none costs eight bytes, where the four inline cost 88 in
    /// each of a million decisions.
    pub extra: Option<Box<Extra>>,
}

/// The rarely-set parts of a [`Decision`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra {
    /// The call-centre priority, when a call is planned and the policy
    /// ranks calls.
    pub call_priority: Option<i64>,
    /// Placed with this agency tonight.
    pub placed_with: Option<String>,
    /// Fees of the level reached tonight (`charges.fees`), by name.
    pub fees: Vec<(String, crate::money::Cents)>,
    /// Tonight's charges on this account (`charges.csv`, shown in letters
    /// and e-mails).
    pub charges: Vec<crate::charges::Charge>,
}

/// The names `decisions.csv` and `summary.json` give the strategies.
pub const STRATEGIES: [&str; 2] = ["champion", "challenger"];

impl Decision {
    /// An account whose decision is still to be made: every field empty.
    pub fn pending(account: Account) -> Decision {
        Decision {
            account,
            segment: Default::default(),
            level_before: 0,
            level_after: 0,
            actions: thin_vec::ThinVec::new(),
            held_by: Default::default(),
            outcome: Outcome::Stay,
            rule: Default::default(),
            reason: Default::default(),
            last_escalated_on: None,
            after: Prior::default(),
            recall: None,
            writeoff: false,
            trace: None,
            strategy: 0,
            extra: None,
        }
    }

    pub fn call_priority(&self) -> Option<i64> {
        self.extra.as_ref().and_then(|e| e.call_priority)
    }

    pub fn placed_with(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.placed_with.as_deref())
    }

    pub fn charges(&self) -> &[crate::charges::Charge] {
        self.extra.as_ref().map_or(&[], |e| &e.charges)
    }

    /// The rarely-set parts, made on first need.
    pub fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    pub fn strategy_name(&self) -> &'static str {
        STRATEGIES[usize::from(self.strategy.min(1))]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recall {
    pub agency: String,
    pub placed_on: Option<NaiveDate>,
    pub reason: String,
}

/// What the night passes in for every account.
pub struct Context<'a> {
    pub policy: &'a Policy,
    pub as_of: NaiveDate,
    pub debtors: &'a crate::ingest::Debtors,
    pub standings: &'a HashMap<String, Standing>,
    pub priors: &'a HashMap<(String, String), Prior>,
    pub trace: bool,
    /// Recorded on every decision made with this context.
    pub strategy: u8,
}

/// Decides every account, in parallel, keeping the input order. When rules
/// fail, the error reported is the first in account order, so the message
/// does not depend on thread timing.
///
/// Each account comes in the slot its decision will fill
/// ([`Decision::pending`], made by the accounts stage), so that a million
/// accounts are never held twice (once alone, once inside their
/// decisions).
pub fn decide_all(
    ctx: &Context<'_>,
    mut decisions: Vec<Decision>,
) -> Result<Vec<Decision>, ScriptError> {
    let no_flags = vec![false; ctx.policy.flags.len()];
    let flag_names = ctx.policy.flag_names();
    let no_prior = Prior::default();
    // Each account's state, debtor and events are looked up once and serve
    // both the columns and the account's own pass.
    let lookups: Vec<Lookup<'_>> = decisions
        .par_iter()
        .map_init(Key::default, |key, d| {
            lookup(ctx, &d.account, key, &no_prior)
        })
        .collect();
    let verdicts = {
        let rows: Vec<(&Account, &Lookup<'_>)> =
            decisions.iter().map(|d| &d.account).zip(&lookups).collect();
        vectorise(ctx, &rows, &no_flags)
    };
    tracing::debug!(
        stage = "decide",
        rss_mib = crate::rss_mib(),
        peak_rss_mib = crate::peak_rss_mib(),
        cpu = ?crate::cpu_ms(),
        minflt = crate::minor_faults(),
        "columns evaluated"
    );
    let failed: std::sync::Mutex<Option<(usize, ScriptError)>> = Default::default();
    decisions
        .par_iter_mut()
        .zip(lookups.par_iter())
        .enumerate()
        .for_each_init(Scope::new, |scope, (row, (slot, look))| {
            let made = {
                let account = &slot.account;
                let facts = look.facts(ctx, account, &no_flags);
                let mut env = Env::new(scope, facts, &flag_names, &verdicts, row);
                decide_ladder(ctx, account, &mut env, look.prior, look.hold())
                    .and_then(|d| remember(ctx, look.prior, d, &mut env, &account.debtor_id))
            };
            match made {
                Ok(mut d) => {
                    d.account = std::mem::take(&mut slot.account);
                    *slot = d;
                }
                Err(e) => {
                    let mut first = failed.lock().unwrap_or_else(|p| p.into_inner());
                    if first.as_ref().is_none_or(|(r, _)| row < *r) {
                        *first = Some((row, e));
                    }
                }
            }
        });
    tracing::debug!(
        stage = "decide",
        rss_mib = crate::rss_mib(),
        peak_rss_mib = crate::peak_rss_mib(),
        cpu = ?crate::cpu_ms(),
        minflt = crate::minor_faults(),
        "accounts decided"
    );
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some((_, e)) => Err(e),
        None => Ok(decisions),
    }
}

/// What one account's rules read besides the account itself: its state
/// from the last night, its debtor, its holds and flags. Three references
/// (24 bytes, a million of them beside the decisions at the night's peak);
/// the rest is read through them.
struct Lookup<'a> {
    debtor: Option<&'a crate::ingest::Debtor>,
    prior: &'a Prior,
    standing: Option<&'a Standing>,
}

impl<'a> Lookup<'a> {
    fn hold(&self) -> Option<&'a crate::history::ActiveHold> {
        self.standing.and_then(|s| s.hold.as_ref())
    }

    fn facts<'b>(
        &self,
        ctx: &'b Context<'_>,
        account: &'b Account,
        no_flags: &'b [bool],
    ) -> Facts<'b>
    where
        'a: 'b,
    {
        Facts {
            account,
            debtor: self.debtor,
            level: self.prior.level,
            days_since_escalation: self
                .prior
                .last_escalated_on
                .map_or(-1, |d| (ctx.as_of - d).num_days()),
            hold: self
                .hold()
                .map_or("", |h| ctx.policy.holds[h.rule].name.as_str()),
            flags: self.standing.map_or(no_flags, |s| s.flags.as_slice()),
        }
    }
}

/// Set to `rhai` to run every rule in Rhai: the reference the vectorised
/// path is tested against, and a way out should a night ever need one.
pub const RULES_ENV: &str = "DUNNING_RULES";

/// A reusable (debtor, currency) key: looking an account up in the state
/// then costs no allocation, a million times a night.
#[derive(Default)]
struct Key((String, String));

impl Key {
    fn prior<'a>(&mut self, ctx: &'a Context<'_>, account: &Account) -> Option<&'a Prior> {
        if ctx.priors.is_empty() {
            return None;
        }
        let k = &mut self.0;
        k.0.clear();
        k.0.push_str(&account.debtor_id);
        k.1.clear();
        k.1.push_str(&account.currency);
        ctx.priors.get(k)
    }
}

/// One account's lookups in the night's state, debtors and events.
fn lookup<'a>(
    ctx: &'a Context<'_>,
    account: &Account,
    key: &mut Key,
    no_prior: &'a Prior,
) -> Lookup<'a> {
    Lookup {
        debtor: ctx
            .debtors
            .position_hinted(&account.debtor_id, account.debtor_at)
            .and_then(|at| ctx.debtors.at(at)),
        prior: key.prior(ctx, account).unwrap_or(no_prior),
        standing: ctx.standings.get(account.debtor_id.as_str()),
    }
}

/// Evaluates every vectorised condition for all accounts at once. A
/// failure here is not the night's: the rules then run in Rhai.
fn vectorise(ctx: &Context<'_>, rows: &[(&Account, &Lookup<'_>)], no_flags: &[bool]) -> Verdicts {
    let policy = ctx.policy;
    let conditions = policy.conditions();
    if std::env::var(RULES_ENV).is_ok_and(|v| v == "rhai") {
        tracing::info!(
            target: "dunning::decide",
            conditions = conditions.len(),
            "{RULES_ENV}=rhai: every rule runs in Rhai"
        );
        return Verdicts::default();
    }
    let started = std::time::Instant::now();
    let mut vars = Vec::new();
    for c in &conditions {
        if let Ok(node) = &c.plan {
            node.reads(&mut vars);
        }
    }
    let segments: Vec<(usize, &str)> = policy
        .segments
        .iter()
        .map(|s| (s.when.id, s.name.as_str()))
        .collect();
    let frame = Frame::build(rows, |r| r.1.facts(ctx, r.0, no_flags), &vars);
    let built_ms = started.elapsed().as_millis() as u64;
    let verdicts = frame.and_then(|f| f.evaluate(&conditions, &segments));
    match verdicts {
        Ok(v) => {
            for (rule, why) in &v.fell_back {
                tracing::info!(target: "dunning::decide", rule = %rule, "runs in Rhai tonight: {why}");
            }
            tracing::debug!(
                target: "dunning::decide",
                columns = v.columns(),
                conditions = conditions.len(),
                built_ms,
                ms = started.elapsed().as_millis() as u64,
                "rules evaluated as columns"
            );
            v
        }
        Err(e) => {
            tracing::warn!(target: "dunning::decide", error = %e, "vectorised rules failed; every rule runs in Rhai");
            Verdicts::default()
        }
    }
}

/// What the state keeps after tonight's decision: placements made or
/// recalled (a cure or a hold recalls a placed account), the escalation
/// history (forgotten on a cure, like the last escalation date), and the
/// write-off proposal, made once per account.
fn remember(
    ctx: &Context<'_>,
    prior: &Prior,
    mut d: Decision,
    env: &mut Env<'_, '_>,
    debtor_id: &str,
) -> Result<Decision, ScriptError> {
    let policy = ctx.policy;
    let mut after = Prior {
        level: d.level_after,
        last_escalated_on: d.last_escalated_on,
        overdue: env.facts().account.overdue,
        ..prior.clone()
    };
    match d.outcome {
        Outcome::Cure | Outcome::Hold => {
            if let Some(agency) = after.placed_with.take() {
                d.recall = Some(Box::new(Recall {
                    agency: agency.into(),
                    placed_on: after.placed_on.take(),
                    reason: if d.outcome == Outcome::Cure {
                        "cure".into()
                    } else {
                        format!("hold:{}", d.held_by)
                    },
                }));
            }
            if d.outcome == Outcome::Cure {
                after.history.clear();
                after.writeoff_on = None;
            }
        }
        Outcome::Escalate => {
            let mut actions = crate::ingest::Text::default();
            for (i, a) in d.actions.iter().enumerate() {
                if i > 0 {
                    actions.push(';');
                }
                actions.push_str(&a.channel);
                actions.push(':');
                actions.push_str(&a.template);
            }
            // Exactly one more step: a pushed-to empty vector would keep
            // room for four, in each of a million decisions.
            after.history.reserve_exact(1);
            after.history.push(crate::history::Step {
                level: d.level_after,
                on: ctx.as_of,
                actions,
            });
            if d.actions.iter().any(|a| a.channel == "agency") {
                let agency = match &policy.agencies {
                    Some(rule) => {
                        script::eval_string(&policy.engine, rule, env.scope(), debtor_id)?
                    }
                    None => "agency".to_owned(),
                };
                after.placed_with = Some(agency.as_str().into());
                after.placed_on = Some(ctx.as_of);
                d.extra_mut().placed_with = Some(agency);
            }
        }
        _ => {}
    }
    if d.outcome != Outcome::Cure
        && d.outcome != Outcome::Hold
        && after.writeoff_on.is_none()
        && after.level > 0
    {
        if let Some(rule) = &policy.writeoff {
            if env.eval(&policy.engine, rule, debtor_id)? {
                after.writeoff_on = Some(ctx.as_of);
                d.writeoff = true;
            }
        }
    }
    d.after = after;
    // Room for the actions pushed one by one is given back: the decision
    // lives until the night ends.
    d.actions.shrink_to_fit();
    Ok(d)
}

/// Tonight's level and actions; the decision's `account` is left empty for
/// the caller to fill.
fn decide_ladder<'a>(
    ctx: &'a Context<'a>,
    account: &'a Account,
    env: &mut Env<'_, 'a>,
    prior: &Prior,
    hold: Option<&crate::history::ActiveHold>,
) -> Result<Decision, ScriptError> {
    let policy = ctx.policy;
    let hold_name = env.facts().hold;
    let days_since = env.facts().days_since_escalation;
    let debtor_id = account.debtor_id.as_str();
    let mut trace = ctx.trace.then(|| {
        Box::new(Trace {
            facts: script::scope_facts(env.scope()),
            hold: hold.map(|h| HoldFound {
                name: hold_name.to_owned(),
                event: policy.holds[h.rule].starts.as_str().to_owned(),
                date: h.since,
                until: h.until,
                events_row: h.row,
            }),
            prior_escalated_on: prior.last_escalated_on,
            cure_below: policy.cure_below,
            ..Trace::default()
        })
    });

    let seg = segment::choose(
        policy,
        env,
        debtor_id,
        trace.as_mut().map(|t| &mut t.segments),
    )?;
    let segment_name = seg.map_or("", |i| policy.segments[i].name.as_str());
    env.set_segment(segment_name);

    let mut d = Decision {
        segment: segment_name.into(),
        level_before: prior.level,
        level_after: prior.level,
        last_escalated_on: prior.last_escalated_on,
        strategy: ctx.strategy,
        ..Decision::pending(Account::default())
    };

    // 1. Cure wins over everything, holds included.
    if account.overdue < policy.cure_below {
        d.level_after = 0;
        d.last_escalated_on = None;
        d.outcome = Outcome::Cure;
        d.rule = "cure_below".into();
        d.reason = compact_str::format_compact!(
            "overdue {} < cure_below {}",
            Money(account.overdue),
            Money(policy.cure_below)
        );
        d.trace = trace;
        return Ok(d);
    }

    // 2. A hold freezes the level.
    if let Some(h) = hold {
        let rule = &policy.holds[h.rule];
        d.held_by = rule.name.as_str().into();
        d.outcome = Outcome::Hold;
        d.rule = format!("holds.{}", rule.name).into();
        d.reason = match h.until {
            Some(u) if rule.until => compact_str::format_compact!(
                "{} event of {} (events row {}) until {u}",
                rule.starts.as_str(),
                h.since,
                h.row
            ),
            _ => compact_str::format_compact!(
                "{} event of {} (events row {})",
                rule.starts.as_str(),
                h.since,
                h.row
            ),
        };
        d.trace = trace;
        return Ok(d);
    }

    // 3. One step up the ladder.
    let Some(seg) = seg else {
        d.outcome = Outcome::NoSegment;
        d.rule = "segments".into();
        d.reason = "no segment condition matched".into();
        d.trace = trace;
        return Ok(d);
    };
    let ladder = &policy.ladders[policy.segments[seg].ladder];
    let next = prior.level + 1;
    if ladder.level(next).is_none() {
        d.outcome = Outcome::Top;
        d.rule = format!("ladders.{}", ladder.name).into();
        d.reason = compact_str::format_compact!("level {} is the top of the ladder", prior.level);
        d.trace = trace;
        return Ok(d);
    }
    // Candidates: the next level, and any higher level that may be jumped
    // to; the highest whose condition holds wins.
    let mut gap_blocked = None;
    let mut first_false = None;
    let candidates = ladder
        .levels
        .iter()
        .filter(|l| l.number == next || (l.number > next && l.jump))
        .rev();
    for level in candidates {
        let value = env.eval(&policy.engine, &level.when, debtor_id)?;
        let gap_ok = days_since < 0 || days_since >= level.min_gap;
        if let Some(t) = trace.as_mut() {
            t.levels.push(LevelTried {
                level: level.number,
                name: level.name.clone(),
                condition: level.when.source.clone(),
                value,
                gap: (days_since >= 0).then_some((days_since, level.min_gap)),
            });
        }
        if !value {
            first_false.get_or_insert(level);
            continue;
        }
        if !gap_ok {
            gap_blocked.get_or_insert(level);
            continue;
        }
        // Escalate.
        let mut notes = Vec::new();
        for ar in &level.actions {
            if let Some(cond) = &ar.when {
                if !env.eval(&policy.engine, cond, debtor_id)? {
                    continue;
                }
            }
            let g = guard::apply(policy, &ar.action, env, debtor_id)?;
            if let Some(n) = g.note() {
                notes.push(n);
            }
            if let Some(a) = &g.emitted {
                if !d.actions.contains(a) {
                    d.actions.push(a.clone());
                }
            }
            if let Some(t) = trace.as_mut() {
                t.guards.push(g);
            }
        }
        if d.actions.iter().any(|a| a.channel == "call") {
            if let Some(rule) = policy
                .messages
                .calls
                .as_ref()
                .and_then(|c| c.priority.as_ref())
            {
                d.extra_mut().call_priority = Some(script::eval_int(
                    &policy.engine,
                    rule,
                    env.scope(),
                    debtor_id,
                )?);
            }
        }
        if let Some(c) = &policy.charges {
            for fee in c.fees.iter().filter(|f| f.level == level.number) {
                if let Some(cond) = &fee.when {
                    if !env.eval(&policy.engine, cond, debtor_id)? {
                        continue;
                    }
                }
                let amount = match &fee.amount {
                    crate::charges::FeeAmount::Flat(c) => *c,
                    crate::charges::FeeAmount::Rule(rule) => {
                        script::eval_amount(&policy.engine, rule, env.scope(), debtor_id)?
                    }
                };
                if amount > 0 {
                    d.extra_mut().fees.push((fee.name.clone(), amount));
                }
            }
        }
        d.level_after = level.number;
        d.last_escalated_on = Some(ctx.as_of);
        d.outcome = Outcome::Escalate;
        d.rule = level.rule.clone();
        d.reason = level.when.source.trim().into();
        for n in notes {
            d.reason.push_str("; ");
            d.reason.push_str(&n);
        }
        d.trace = trace;
        return Ok(d);
    }
    if let Some(level) = gap_blocked {
        d.outcome = Outcome::Gap;
        d.rule = level.rule.clone();
        d.reason = compact_str::format_compact!(
            "{} days since the last escalation, {} needed",
            days_since,
            level.min_gap
        );
    } else {
        let level = first_false.expect("the next level was tried");
        d.outcome = Outcome::Stay;
        d.rule = level.rule.clone();
        d.reason = compact_str::format_compact!("not yet: {}", level.when.source.trim());
    }
    d.trace = trace;
    Ok(d)
}

/// Accounts are listed by debtor, then currency, as `decisions.csv` is.
pub fn sort(accounts: &mut [Account]) {
    accounts.par_sort_unstable_by(|a, b| {
        (a.debtor_id.as_str(), a.currency.as_str())
            .cmp(&(b.debtor_id.as_str(), b.currency.as_str()))
    });
}

#[cfg(test)]
mod tests {
    /// A million decisions live through the night, and each of their
    /// pages is first zeroed by the kernel, which on these virtual machines
    /// costs more than anything else the night does with memory (BENCHMARKS.md,
    /// 2026-12-02, fifth): a field that makes a decision larger is a cost to
    /// weigh, and this test says when one does.
    #[test]
    fn a_decision_stays_small() {
        let size = std::mem::size_of::<super::Decision>();
        assert!(size <= 336, "a Decision is {size} bytes (was 336)");
    }
}
