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
pub struct Facts<'a> {
    pub account: &'a Account,
    pub debtor: Option<&'a Debtor>,
    pub level: u32,
    pub days_since_escalation: i64,
    pub hold: &'a str,
    pub flags: &'a [bool],
}

/// Fills `scope` with one account's facts. The order and set of variables
/// must match [`declaration_scope`]; the segment is pushed later, once known.
pub fn fill_scope(scope: &mut Scope<'_>, facts: &Facts<'_>, flag_names: &[String]) {
    let a = facts.account;
    let d = facts.debtor;
    let text = |f: fn(&Debtor) -> &str| -> ImmutableString { d.map(f).unwrap_or("").into() };
    scope.clear();
    scope.push_constant("currency", ImmutableString::from(a.currency.as_str()));
    scope.push_constant("kind", text(|d| d.kind.as_str()));
    scope.push_constant("language", text(|d| d.language.as_str()));
    scope.push_constant("country", text(|d| d.country.as_str()));
    let score = d.and_then(|d| d.score);
    scope.push_constant("has_score", score.is_some());
    scope.push_constant("score", score.unwrap_or_default());
    scope.push_constant("has_email", d.is_some_and(|d| d.email_ok));
    scope.push_constant("email_bounced", d.is_some_and(|d| d.email_bounced));
    scope.push_constant("has_phone", d.is_some_and(|d| d.phone_e164.is_some()));
    scope.push_constant("consent_email", d.is_none_or(|d| d.consent_email));
    scope.push_constant("consent_sms", d.is_none_or(|d| d.consent_sms));
    scope.push_constant("overdue", money::to_decimal(a.overdue));
    scope.push_constant("open", money::to_decimal(a.open));
    scope.push_constant("max_dpd", a.max_dpd as INT);
    scope.push_constant("overdue_items", a.overdue_items as INT);
    scope.push_constant("open_items", a.open_items as INT);
    scope.push_constant("aging_1_30", money::to_decimal(a.aging[0]));
    scope.push_constant("aging_31_60", money::to_decimal(a.aging[1]));
    scope.push_constant("aging_61_90", money::to_decimal(a.aging[2]));
    scope.push_constant("aging_90_plus", money::to_decimal(a.aging[3]));
    scope.push_constant("oldest_due_days", a.oldest_due_days as INT);
    scope.push_constant("level", facts.level as INT);
    scope.push_constant("days_since_escalation", facts.days_since_escalation as INT);
    scope.push_constant("hold", ImmutableString::from(facts.hold));
    for (name, on) in flag_names.iter().zip(facts.flags) {
        scope.push_constant(name.as_str().to_owned(), *on);
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
