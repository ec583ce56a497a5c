//! Templates the risk team writes, rendered with minijinja (the Jinja
//! syntax collections teams know from their CRM). A policy keeps them in
//! `templates/<language>/<channel>/<template>...`; they are all loaded and
//! syntax-checked with the policy, render with strict undefined variables
//! (a typo fails loudly instead of mailing a blank), bounded fuel, and HTML
//! auto-escaping for `.html` files.

use crate::accounts::Account;
use crate::decide::Decision;
use crate::ingest::Debtor;
use crate::locale;
use crate::money::{self, Cents};
use crate::policy::{display_path, Problem};
use crate::script::Condition;
use chrono::{NaiveDate, NaiveTime};
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The name of the policy's inline `payment_reference` template.
pub const PAYMENT_REFERENCE: &str = "(policy.yaml payment_reference)";

/// Instructions one template may run before it is stopped.
const FUEL: u64 = 2_000_000;

/// The files a `channel:template` action needs, relative to a language.
pub fn template_files(channel: &str, template: &str) -> Vec<String> {
    match channel {
        "email" => vec![
            format!("email/{template}.subject.txt"),
            format!("email/{template}.txt"),
            format!("email/{template}.html"),
        ],
        "sms" => vec![format!("sms/{template}.txt")],
        "letter" => vec![format!("letter/{template}.txt")],
        "call" => vec![format!("call/{template}.txt")],
        _ => Vec::new(),
    }
}

#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub from: lettre::message::Mailbox,
    pub reply_to: Option<lettre::message::Mailbox>,
    pub domain: String,
}

#[derive(Debug)]
pub struct CallSettings {
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub priority: Option<Condition>,
}

/// Everything the policy says about messages.
#[derive(Debug)]
pub struct Messages {
    pub languages: Vec<String>,
    pub default_language: String,
    pub default_country: String,
    pub default_tz: chrono_tz::Tz,
    pub contact: BTreeMap<String, String>,
    /// `contact` as templates see it (`company`), made once: serialized
    /// into every message's context, it was a fortieth of an e-mail's time.
    pub company: Value,
    pub email: Option<EmailSettings>,
    pub max_segments: u32,
    /// SMS send hours from the compliance section, in the debtor's zone.
    pub sms_window: Option<(NaiveTime, NaiveTime)>,
    pub calls: Option<CallSettings>,
    pub letters: Option<crate::actions::letter::LetterSettings>,
    pub templates: Templates,
}

impl Messages {
    /// The debtor's language when the policy has it, else the default.
    pub fn language(&self, debtor: &Debtor) -> String {
        let l = debtor.language().trim().to_ascii_lowercase();
        if self.languages.contains(&l) {
            l
        } else {
            self.default_language.clone()
        }
    }
}

/// `"09:00-20:00"`
pub fn parse_hours(s: &str) -> Option<(NaiveTime, NaiveTime)> {
    let (a, b) = s.split_once('-')?;
    let a = NaiveTime::parse_from_str(a.trim(), "%H:%M").ok()?;
    let b = NaiveTime::parse_from_str(b.trim(), "%H:%M").ok()?;
    (a < b).then_some((a, b))
}

/// A template failed for one account.
#[derive(Debug, thiserror::Error)]
#[error("template {template} failed for debtor {debtor_id}: {message}")]
pub struct RenderError {
    pub template: String,
    pub debtor_id: String,
    pub message: String,
}

pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Templates {
    fn environment() -> Environment<'static> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(64);
        env
    }

    /// Loads every file under `dir`; syntax errors come back as problems
    /// with their file and line.
    pub fn load(dir: &Path) -> (Templates, Vec<Problem>) {
        let mut env = Self::environment();
        let mut problems = Vec::new();
        let mut files = Vec::new();
        if dir.is_dir() {
            collect(dir, dir, &mut files);
        }
        files.sort();
        for (name, path) in files {
            match std::fs::read_to_string(&path) {
                Ok(src) => {
                    if let Err(e) = env.add_template_owned(name, src) {
                        problems.push(Problem {
                            file: display_path(&path),
                            line: e.line(),
                            column: None,
                            message: format!(
                                "template syntax: {}",
                                e.detail().unwrap_or(&e.to_string())
                            ),
                        });
                    }
                }
                Err(e) => problems.push(Problem {
                    file: display_path(&path),
                    line: None,
                    column: None,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
        (Templates { env }, problems)
    }

    /// Variables each template reads that `sample` (a context as
    /// [`context`] builds it) does not have, with where they first stand.
    pub fn unknown_variables(&self, sample: &Value) -> Vec<UnknownVariable> {
        let globals: std::collections::HashSet<&str> = self.env.globals().map(|(k, _)| k).collect();
        let mut out = Vec::new();
        let mut names: Vec<(&str, minijinja::Template<'_, '_>)> = self.env.templates().collect();
        names.sort_by(|a, b| a.0.cmp(b.0));
        for (name, t) in names {
            let mut vars: Vec<String> = t.undeclared_variables(true).into_iter().collect();
            vars.sort();
            for var in vars {
                let mut parts = var.split('.');
                let first = parts.next().unwrap_or("");
                if globals.contains(first) {
                    continue;
                }
                let mut cur = sample.clone();
                let mut missing = false;
                let mut known = Vec::new();
                let mut broke_at = String::new();
                for p in var.split('.') {
                    match cur.get_attr(p) {
                        Ok(v) if !v.is_undefined() => cur = v,
                        _ => {
                            missing = true;
                            broke_at = p.to_owned();
                            if let Ok(keys) = cur.try_iter() {
                                known = keys.map(|k| k.to_string()).collect();
                                known.sort();
                            }
                            break;
                        }
                    }
                }
                if missing {
                    let src = t.source();
                    let (line, column) = src
                        .find(var.as_str())
                        .map(|off| {
                            let before = &src[..off];
                            (
                                Some(before.matches('\n').count() + 1),
                                Some(off - before.rfind('\n').map_or(0, |i| i + 1) + 1),
                            )
                        })
                        .unwrap_or((None, None));
                    out.push(UnknownVariable {
                        template: name.to_owned(),
                        variable: var,
                        broke_at,
                        line,
                        column,
                        known,
                    });
                }
            }
        }
        out
    }

    pub fn has(&self, name: &str) -> bool {
        self.env.get_template(name).is_ok()
    }

    /// Adds a template written inline in policy.yaml (compiled once).
    pub fn add_inline(&mut self, name: &'static str, source: &str) -> Result<(), String> {
        self.env
            .add_template_owned(name, source.to_owned())
            .map_err(|e| e.to_string())
    }

    pub fn render(&self, name: &str, ctx: &Value, debtor_id: &str) -> Result<String, RenderError> {
        let fail = |e: minijinja::Error| RenderError {
            template: name.to_owned(),
            debtor_id: debtor_id.to_owned(),
            message: match e.detail() {
                Some(d) => format!("{} (line {})", d, e.line().unwrap_or(0)),
                None => e.to_string(),
            },
        };
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(fail)
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, std::path::PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            collect(root, &p, out);
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push((rel.to_string_lossy().replace('\\', "/"), p.clone()));
        }
    }
}

/// A variable a template reads that the render context does not have.
pub struct UnknownVariable {
    pub template: String,
    pub variable: String,
    /// The part of the path that does not exist.
    pub broke_at: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The names that do exist where the path broke off.
    pub known: Vec<String>,
}

/// A context with every field a real one has, for checking templates at
/// policy load. Built from the same structs as [`context`], so the two
/// cannot drift apart.
pub fn sample_context(company: &Value) -> Value {
    let ctx = Context {
        lang: "",
        today: String::new(),
        as_of: String::new(),
        channel: "",
        template: "",
        debtor: DebtorView {
            id: "",
            name: String::new(),
            kind: "",
            email: "",
            phone: "",
            address_line1: "",
            address_line2: "",
            postal_code: "",
            city: "",
            country: "",
        },
        account: AccountView {
            currency: String::new(),
            overdue: String::new(),
            open: String::new(),
            overdue_value: String::new(),
            open_value: String::new(),
            max_dpd: 0,
            overdue_items: 0,
            items: Vec::new(),
        },
        level: LevelView {
            number: 0,
            name: "",
        },
        company: company.clone(),
        payment_reference: String::new(),
        charges: Vec::new(),
        charges_total: String::new(),
    };
    Value::from(minijinja::value::Serde(&ctx))
}

/// One ledger item as a template sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ItemView {
    pub item_id: String,
    pub reference: String,
    pub product: String,
    pub due_on: String,
    pub due_on_iso: String,
    pub amount: String,
    pub open_amount: String,
    pub days_past_due: i64,
}

/// An open item of an account, from the ledger.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Item {
    pub due_on: NaiveDate,
    pub item_id: String,
    pub reference: String,
    pub product: String,
    pub amount: Cents,
    pub open_amount: Cents,
}

#[derive(Serialize)]
struct DebtorView<'a> {
    id: &'a str,
    name: String,
    kind: &'a str,
    email: &'a str,
    phone: &'a str,
    address_line1: &'a str,
    address_line2: &'a str,
    postal_code: &'a str,
    city: &'a str,
    country: &'a str,
}

#[derive(Serialize)]
struct AccountView {
    currency: String,
    overdue: String,
    open: String,
    overdue_value: String,
    open_value: String,
    max_dpd: i64,
    overdue_items: i64,
    items: Vec<ItemView>,
}

#[derive(Serialize)]
struct LevelView<'a> {
    number: u32,
    name: &'a str,
}

#[derive(Serialize)]
struct Context<'a> {
    lang: &'a str,
    today: String,
    as_of: String,
    channel: &'a str,
    template: &'a str,
    debtor: DebtorView<'a>,
    account: AccountView,
    level: LevelView<'a>,
    company: Value,
    payment_reference: String,
    /// Tonight's charges on the account (empty when the policy charges
    /// nothing), and their total.
    charges: Vec<ChargeView>,
    charges_total: String,
}

/// One charge as a template sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ChargeView {
    /// `fee:<name>`, `recovery_indemnity` or `late_interest`.
    pub kind: String,
    /// What the debtor reads, in their language.
    pub label: String,
    pub item_id: String,
    pub period: String,
    pub rate: String,
    pub amount: String,
    pub amount_value: String,
}

/// The label of a charge kind in a language (French, English, Chinese;
/// English for others).
fn charge_label(kind: &str, lang: &str) -> String {
    let fee = kind.strip_prefix("fee:");
    match (lang, kind, fee) {
        ("fr", "recovery_indemnity", _) => {
            "Indemnité forfaitaire pour frais de recouvrement (art. D441-5 du Code de commerce)"
                .into()
        }
        ("fr", "late_interest", _) => "Intérêts de retard".into(),
        ("fr", _, Some(n)) => format!("Frais : {}", n.replace('_', " ")),
        ("zh", "recovery_indemnity", _) => "固定催收费用".into(),
        ("zh", "late_interest", _) => "逾期利息".into(),
        ("zh", _, Some(n)) => format!("费用：{}", n.replace('_', " ")),
        (_, "recovery_indemnity", _) => "Fixed recovery indemnity".into(),
        (_, "late_interest", _) => "Late-payment interest".into(),
        (_, _, Some(n)) => format!("Fee: {}", n.replace('_', " ")),
        _ => kind.to_owned(),
    }
}

/// Builds the context a template renders with. `items` are the account's
/// overdue items, oldest first.
#[allow(clippy::too_many_arguments)]
pub fn context(
    messages: &Messages,
    decision: &Decision,
    level_name: &str,
    debtor: &Debtor,
    items: &[Item],
    lang: &str,
    as_of: NaiveDate,
    channel: &str,
    template: &str,
) -> Result<Value, RenderError> {
    let a: &Account = &decision.account;
    let cur = a.currency.as_str();
    let view = |it: &Item| ItemView {
        item_id: it.item_id.clone(),
        reference: it.reference.clone(),
        product: it.product.clone(),
        due_on: locale::date(it.due_on, lang),
        due_on_iso: it.due_on.to_string(),
        amount: locale::money(it.amount, cur, lang),
        open_amount: locale::money(it.open_amount, cur, lang),
        days_past_due: (as_of - it.due_on).num_days(),
    };
    let ctx = Context {
        lang,
        today: locale::date(as_of, lang),
        as_of: as_of.to_string(),
        channel,
        template,
        debtor: DebtorView {
            id: debtor.id(),
            name: crate::actions::debtor_name(debtor),
            kind: debtor.kind(),
            email: debtor.email(),
            phone: debtor.phone_e164().unwrap_or(""),
            address_line1: debtor.address_line1(),
            address_line2: debtor.address_line2(),
            postal_code: debtor.postal_code(),
            city: debtor.city(),
            country: debtor.country(),
        },
        account: AccountView {
            currency: cur.to_owned(),
            overdue: locale::money(a.overdue, cur, lang),
            open: locale::money(a.open, cur, lang),
            overdue_value: money::format_cents(a.overdue),
            open_value: money::format_cents(a.open),
            max_dpd: a.max_dpd,
            overdue_items: a.overdue_items,
            items: items.iter().map(view).collect(),
        },
        level: LevelView {
            number: decision.level_after,
            name: level_name,
        },
        company: messages.company.clone(),
        payment_reference: String::new(),
        charges: decision
            .charges()
            .iter()
            .map(|c| ChargeView {
                kind: c.kind.clone(),
                label: charge_label(&c.kind, lang),
                item_id: c.item_id.clone(),
                period: c.period.clone(),
                rate: c.rate.clone(),
                amount: locale::money(c.amount, cur, lang),
                amount_value: money::format_cents(c.amount),
            })
            .collect(),
        charges_total: locale::money(decision.charges().iter().map(|c| c.amount).sum(), cur, lang),
    };
    // Made a template value once: made again with the reference in it,
    // the context was an eighth of an e-mail's time. The reference is laid
    // over it instead: `merge_maps` lets the last map win (its code does;
    // its doc example says the first), which the message snapshots
    // (tests/messages.rs, `REC-...`) hold.
    let base = Value::from(minijinja::value::Serde(&ctx));
    let reference = messages
        .templates
        .render(PAYMENT_REFERENCE, &base, debtor.id())?;
    Ok(minijinja::value::merge_maps([
        base,
        minijinja::context! { payment_reference => reference },
    ]))
}
