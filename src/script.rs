//! The Rhai sandbox that policy conditions run in.
//!
//! Conditions are compiled once, at policy load, against a scope that
//! declares every fact as a constant; with strict variables on, a typo in a
//! variable name is a load error that names the rule, never a surprise at
//! 2 a.m. The engine has no file, network or module access, and every
//! evaluation is bounded, so a runaway rule fails the night with its name
//! instead of hanging it.

use crate::accounts::Account;
use crate::ingest::Debtor;
use crate::money;
use rhai::{Dynamic, Engine, ImmutableString, Scope, AST, INT};

/// Operations one condition may take before it is stopped.
pub const MAX_OPERATIONS: u64 = 100_000;

/// Every variable a condition can read, with its Rhai type and meaning. This
/// table is the single source for strict-variable compilation and for the
/// documentation in `rules/README.md`.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (
        "currency",
        "string",
        "the account's ISO 4217 currency, e.g. \"EUR\"",
    ),
    (
        "kind",
        "string",
        "the debtor's kind: \"person\" or \"business\"",
    ),
    (
        "language",
        "string",
        "the debtor's language code, e.g. \"fr\"",
    ),
    (
        "country",
        "string",
        "the debtor's country code, e.g. \"FR\"",
    ),
    (
        "has_score",
        "bool",
        "whether the debtors file gives a score",
    ),
    ("score", "decimal", "the debtor's score (0 when absent)"),
    (
        "has_email",
        "bool",
        "the debtor has an e-mail address a mail server would accept, which has not failed for good on an earlier night",
    ),
    (
        "email_bounced",
        "bool",
        "mail to the debtor's current address failed permanently (5xx) on an earlier night",
    ),
    (
        "has_phone",
        "bool",
        "the debtor has a non-empty phone number",
    ),
    (
        "consent_email",
        "bool",
        "consent to e-mail (missing or empty means true)",
    ),
    (
        "consent_sms",
        "bool",
        "consent to SMS (missing or empty means true)",
    ),
    (
        "overdue",
        "decimal",
        "sum of open amounts of the overdue items",
    ),
    ("open", "decimal", "sum of open amounts of all items"),
    (
        "max_dpd",
        "int",
        "largest days past due among overdue items (0 if none)",
    ),
    ("overdue_items", "int", "number of overdue items"),
    ("open_items", "int", "number of items with an open amount"),
    (
        "aging_1_30",
        "decimal",
        "open amount of items 1 to 30 days past due",
    ),
    (
        "aging_31_60",
        "decimal",
        "open amount of items 31 to 60 days past due",
    ),
    (
        "aging_61_90",
        "decimal",
        "open amount of items 61 to 90 days past due",
    ),
    (
        "aging_90_plus",
        "decimal",
        "open amount of items more than 90 days past due",
    ),
    (
        "oldest_due_days",
        "int",
        "days since the oldest open item's due date (0 if none)",
    ),
    (
        "level",
        "int",
        "the account's level after the last committed night",
    ),
    (
        "days_since_escalation",
        "int",
        "days since the last escalation; -1 if never escalated",
    ),
    ("hold", "string", "the active hold's name, or \"\""),
];

/// Only ladder and action conditions may read the segment: a segment
/// condition reading it would be circular.
pub const SEGMENT_VARIABLE: (&str, &str, &str) = (
    "segment",
    "string",
    "the segment chosen tonight (ladder, action and channel conditions only)",
);

/// A compiled policy condition, named for error messages.
#[derive(Debug, Clone)]
pub struct Condition {
    /// Where the rule lives, e.g. `segments[1] high_balance`.
    pub rule: String,
    pub source: String,
    pub ast: AST,
    /// Numbered in load order: the vectorised results are kept by it.
    pub id: usize,
    /// The condition as a column expression, or why it runs in Rhai.
    pub plan: Result<crate::vector::Node, String>,
}

/// A condition failed while evaluating one account.
#[derive(Debug, thiserror::Error)]
#[error("rule {rule} failed for debtor {debtor_id}: {message}")]
pub struct ScriptError {
    pub rule: String,
    pub debtor_id: String,
    pub message: String,
}

/// The sandboxed engine every policy uses.
pub fn engine() -> Engine {
    let mut engine = Engine::new();
    engine
        .set_strict_variables(true)
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(32)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(4_096)
        .set_max_array_size(1_024)
        .set_max_map_size(256)
        .set_max_variables(256)
        .set_max_functions(256)
        .set_max_modules(0);
    engine.disable_symbol("eval");
    // Scripts never write to the terminal or a file: what they print goes to
    // the log, where it cannot carry more than the script itself was given.
    engine.on_print(|text| tracing::info!(target: "dunning::script", "{text}"));
    engine.on_debug(|text, source, pos| {
        tracing::debug!(target: "dunning::script", source = source.unwrap_or(""), position = %pos, "{text}")
    });
    engine
}

/// A scope declaring every variable with a value of its type, for strict
/// compilation. They are declared as plain variables, not constants: Rhai's
/// optimiser would otherwise fold these placeholder values into the compiled
/// condition (`max_dpd >= 5` would become `false`).
pub fn declaration_scope(with_segment: bool, flags: &[String]) -> Scope<'static> {
    let mut scope = Scope::new();
    let all = VARIABLES
        .iter()
        .chain(with_segment.then_some(&SEGMENT_VARIABLE));
    for (name, ty, _) in all {
        let value: Dynamic = match *ty {
            "string" => Dynamic::from(ImmutableString::new()),
            "bool" => Dynamic::from(false),
            "int" => Dynamic::from(0 as INT),
            "decimal" => Dynamic::from(rust_decimal::Decimal::ZERO),
            other => unreachable!("unknown variable type {other}"),
        };
        scope.push_dynamic(*name, value);
    }
    for flag in flags {
        scope.push(flag.as_str().to_owned(), false);
    }
    scope
}

/// What one account looks like to a script.
#[derive(Clone, Copy)]
pub struct Facts<'a> {
    pub account: &'a Account,
    pub debtor: Option<&'a Debtor>,
    pub level: u32,
    pub days_since_escalation: i64,
    pub hold: &'a str,
    pub flags: &'a [bool],
}

/// One variable's value for one account, before it becomes a Rhai value or
/// a cell of the vectorised facts frame: both are made from this, so the two
/// paths cannot read different facts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fact<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    /// An amount in cents (a `decimal` with two places for scripts).
    Money(crate::money::Cents),
    Decimal(rust_decimal::Decimal),
}

impl<'a> Facts<'a> {
    /// The value of variable `i`: an index into [`VARIABLES`], then the
    /// policy's flags in order.
    pub fn value(&self, i: usize) -> Fact<'a> {
        let a = self.account;
        let d = self.debtor;
        let text = |f: fn(&'a Debtor) -> &'a str| d.map(f).unwrap_or("");
        match i {
            0 => Fact::Str(a.currency.as_str()),
            1 => Fact::Str(text(|d| d.kind())),
            2 => Fact::Str(text(|d| d.language())),
            3 => Fact::Str(text(|d| d.country())),
            4 => Fact::Bool(d.and_then(|d| d.score).is_some()),
            5 => Fact::Decimal(d.and_then(|d| d.score).unwrap_or_default()),
            6 => Fact::Bool(d.is_some_and(|d| d.email_ok)),
            7 => Fact::Bool(d.is_some_and(|d| d.email_bounced)),
            8 => Fact::Bool(d.is_some_and(|d| d.phone_e164().is_some())),
            9 => Fact::Bool(d.is_none_or(|d| d.consent_email)),
            10 => Fact::Bool(d.is_none_or(|d| d.consent_sms)),
            11 => Fact::Money(a.overdue),
            12 => Fact::Money(a.open),
            13 => Fact::Int(a.max_dpd),
            14 => Fact::Int(a.overdue_items),
            15 => Fact::Int(a.open_items),
            16..=19 => Fact::Money(a.aging[i - 16]),
            20 => Fact::Int(a.oldest_due_days),
            21 => Fact::Int(i64::from(self.level)),
            22 => Fact::Int(self.days_since_escalation),
            23 => Fact::Str(self.hold),
            _ => Fact::Bool(
                self.flags
                    .get(i - VARIABLES.len())
                    .copied()
                    .unwrap_or(false),
            ),
        }
    }
}

/// Fills `scope` with one account's facts. The order and set of variables
/// must match [`declaration_scope`]; the segment is pushed later, once known.
pub fn fill_scope(scope: &mut Scope<'_>, facts: &Facts<'_>, flag_names: &[String]) {
    scope.clear();
    let names = VARIABLES
        .iter()
        .map(|v| v.0)
        .chain(flag_names.iter().map(String::as_str));
    for (i, name) in names.enumerate() {
        let value: Dynamic = match facts.value(i) {
            Fact::Str(s) => ImmutableString::from(s).into(),
            Fact::Bool(b) => b.into(),
            Fact::Int(n) => (n as INT).into(),
            Fact::Money(c) => Dynamic::from_decimal(money::to_decimal(c)),
            Fact::Decimal(d) => Dynamic::from_decimal(d),
        };
        scope.push_constant_dynamic(name, value);
    }
}

/// One account as the rules see it: the vectorised verdicts first, and a
/// Rhai scope filled only when a rule has to run in Rhai (most accounts of
/// a night never need one).
pub struct Env<'s, 'a> {
    scope: &'s mut Scope<'static>,
    facts: Facts<'a>,
    flag_names: &'a [String],
    filled: bool,
    segment: Option<&'a str>,
    verdicts: &'a crate::vector::Verdicts,
    row: usize,
}

impl<'s, 'a> Env<'s, 'a> {
    /// `row` is the account's row in the frame `verdicts` came from.
    pub fn new(
        scope: &'s mut Scope<'static>,
        facts: Facts<'a>,
        flag_names: &'a [String],
        verdicts: &'a crate::vector::Verdicts,
        row: usize,
    ) -> Env<'s, 'a> {
        Env {
            scope,
            facts,
            flag_names,
            filled: false,
            segment: None,
            verdicts,
            row,
        }
    }

    pub fn facts(&self) -> &Facts<'a> {
        &self.facts
    }

    /// The Rhai scope, filled.
    pub fn scope(&mut self) -> &mut Scope<'static> {
        if !self.filled {
            fill_scope(self.scope, &self.facts, self.flag_names);
            if let Some(s) = self.segment {
                self.scope
                    .push_constant("segment", ImmutableString::from(s));
            }
            self.filled = true;
        }
        self.scope
    }

    /// Tonight's segment, which ladder, action and channel rules may read.
    pub fn set_segment(&mut self, segment: &'a str) {
        self.segment = Some(segment);
        if self.filled {
            self.scope
                .push_constant("segment", ImmutableString::from(segment));
        }
    }

    /// A condition's value: the column's when it was vectorised, else Rhai's.
    pub fn eval(
        &mut self,
        engine: &Engine,
        cond: &Condition,
        debtor_id: &str,
    ) -> Result<bool, ScriptError> {
        if let Some(v) = self.verdicts.get(cond.id, self.row) {
            return Ok(v);
        }
        eval(engine, cond, self.scope(), debtor_id)
    }
}

/// The scope's variables as JSON, in declaration order, for a trace.
/// Decimals are written as strings so that no digit is lost.
pub fn scope_facts(scope: &Scope<'_>) -> Vec<(String, serde_json::Value)> {
    scope
        .iter()
        .map(|(name, _, v)| {
            let value = if let Some(b) = v.clone().try_cast::<bool>() {
                serde_json::Value::Bool(b)
            } else if let Some(i) = v.clone().try_cast::<INT>() {
                serde_json::Value::from(i)
            } else if let Some(d) = v.clone().try_cast::<rust_decimal::Decimal>() {
                serde_json::Value::String(d.to_string())
            } else {
                serde_json::Value::String(v.to_string())
            };
            (name.to_owned(), value)
        })
        .collect()
}

fn run(
    engine: &Engine,
    cond: &Condition,
    scope: &mut Scope<'_>,
    debtor_id: &str,
) -> Result<Dynamic, ScriptError> {
    engine
        .eval_ast_with_scope(scope, &cond.ast)
        .map_err(|e| failure(cond, debtor_id, e.to_string()))
}

fn failure(cond: &Condition, debtor_id: &str, message: String) -> ScriptError {
    ScriptError {
        rule: cond.rule.clone(),
        debtor_id: debtor_id.to_owned(),
        message,
    }
}

/// Evaluates a condition that must give `true` or `false`.
pub fn eval(
    engine: &Engine,
    cond: &Condition,
    scope: &mut Scope<'_>,
    debtor_id: &str,
) -> Result<bool, ScriptError> {
    run(engine, cond, scope, debtor_id)?
        .as_bool()
        .map_err(|ty| {
            failure(
                cond,
                debtor_id,
                format!("the condition gave a {ty}, not true or false"),
            )
        })
}

/// Evaluates a rule that must give a whole number (e.g. a call priority).
pub fn eval_int(
    engine: &Engine,
    cond: &Condition,
    scope: &mut Scope<'_>,
    debtor_id: &str,
) -> Result<i64, ScriptError> {
    run(engine, cond, scope, debtor_id)?.as_int().map_err(|ty| {
        failure(
            cond,
            debtor_id,
            format!("the rule gave a {ty}, not a whole number"),
        )
    })
}

/// Evaluates a rule that must give an amount (a fee): a decimal or a whole
/// number, in the account's currency, with at most two decimals kept
/// exactly (more is an error, never silently rounded).
pub fn eval_amount(
    engine: &Engine,
    cond: &Condition,
    scope: &mut Scope<'_>,
    debtor_id: &str,
) -> Result<money::Cents, ScriptError> {
    let v = run(engine, cond, scope, debtor_id)?;
    let d = if let Some(d) = v.clone().try_cast::<rust_decimal::Decimal>() {
        d
    } else if let Some(i) = v.clone().try_cast::<INT>() {
        rust_decimal::Decimal::from(i)
    } else {
        return Err(failure(
            cond,
            debtor_id,
            format!("the rule gave a {}, not an amount", v.type_name()),
        ));
    };
    money::decimal_to_cents(d.normalize())
        .filter(|c| *c >= 0)
        .ok_or_else(|| {
            failure(
                cond,
                debtor_id,
                format!("the rule gave {d}: an amount must be >= 0 with at most 2 decimals (round it in the rule, e.g. `(overdue * 0.01).round(2)`)"),
            )
        })
}

/// Evaluates a rule that must give a name (e.g. the agency to place with).
pub fn eval_string(
    engine: &Engine,
    cond: &Condition,
    scope: &mut Scope<'_>,
    debtor_id: &str,
) -> Result<String, ScriptError> {
    let s = run(engine, cond, scope, debtor_id)?
        .into_string()
        .map_err(|ty| failure(cond, debtor_id, format!("the rule gave a {ty}, not a name")))?;
    if s.is_empty() {
        return Err(failure(
            cond,
            debtor_id,
            "the rule gave an empty name".into(),
        ));
    }
    Ok(s)
}
