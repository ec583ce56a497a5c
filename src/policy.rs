//! The policy a risk team writes: `rules/<name>/policy.yaml` plus optional
//! Rhai helper files. Loading validates everything up front and reports every
//! problem at once, each with its file and, where it has one, line and
//! column, so a broken policy is caught before the night, not during it.

use crate::ingest::EventKind;
use crate::money::{self, Cents};
use crate::script::{self, Condition};
use rhai::{Engine, AST};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Channels the engine knows how to act on.
pub const CHANNELS: &[&str] = &[
    "email", "letter", "sms", "call", "agency", "legal", "writeoff",
];

/// One thing wrong with a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl Problem {
    /// `file:line:column: warning: message`.
    pub fn as_warning(&self) -> String {
        let mut w = self.clone();
        w.message = format!("warning: {}", self.message);
        w.to_string()
    }
}

/// A policy that cannot be used, with every problem found.
#[derive(Debug, thiserror::Error)]
pub struct PolicyError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the policy has {} problem(s):", self.problems.len())?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The YAML as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyDoc {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    grace_days: u32,
    cure_below: Number,
    #[serde(default = "default_max_rejected_share")]
    max_rejected_share: Number,
    #[serde(default)]
    helpers: Vec<String>,
    segments: Vec<SegmentDoc>,
    ladders: BTreeMap<String, LadderDoc>,
    #[serde(default)]
    holds: Vec<EventRuleDoc>,
    #[serde(default)]
    flags: Vec<EventRuleDoc>,
    #[serde(default)]
    channels: BTreeMap<String, ChannelDoc>,
    /// Country for national phone numbers and default time zones.
    #[serde(default = "default_country")]
    default_country: String,
    #[serde(default)]
    languages: Vec<String>,
    #[serde(default)]
    default_language: Option<String>,
    #[serde(default)]
    contact: BTreeMap<String, String>,
    #[serde(default)]
    payment_reference: Option<String>,
    #[serde(default)]
    email: Option<EmailDoc>,
    #[serde(default)]
    sms: Option<SmsDoc>,
    #[serde(default)]
    calls: Option<CallsDoc>,
    #[serde(default)]
    letters: Option<LettersDoc>,
    #[serde(default)]
    agencies: Option<AgenciesDoc>,
    #[serde(default)]
    writeoff: Option<WriteoffDoc>,
    /// The contact rules of the law, over the ladder (src/compliance.rs).
    #[serde(default)]
    compliance: Option<crate::compliance::ComplianceDoc>,
    /// Fees, the recovery indemnity and late interest (src/charges.rs).
    #[serde(default)]
    charges: Option<crate::charges::ChargesDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgenciesDoc {
    /// Rhai giving the agency's name for an account being placed.
    choose: WhenDoc,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteoffDoc {
    /// Rhai condition; a write-off is proposed once per account.
    when: WhenDoc,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LettersDoc {
    #[serde(default)]
    registered: Vec<String>,
    /// Language (or `default`) to `{regular, bold}` font files, each a path
    /// (relative to the policy folder, or absolute), `#n` for a face of a
    /// collection.
    fonts: BTreeMap<String, FontPairDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FontPairDoc {
    regular: String,
    bold: String,
}

fn default_country() -> String {
    "FR".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailDoc {
    from: String,
    #[serde(default)]
    reply_to: Option<String>,
    message_id_domain: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmsDoc {
    max_segments: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallsDoc {
    hours: String,
    #[serde(default)]
    priority: Option<WhenDoc>,
    #[serde(default)]
    default_timezone: Option<String>,
}

fn default_max_rejected_share() -> Number {
    Number::Text("0".into())
}

/// A number written either bare (`0.05`) or quoted (`"10.00"`); read through
/// its text so it never passes through a binary float.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Text(String),
    Float(serde_yaml_ng::Number),
}

impl Number {
    fn to_decimal(&self) -> Option<Decimal> {
        match self {
            Number::Int(i) => Some(Decimal::from(*i)),
            Number::Text(s) => Decimal::from_str(s.trim()).ok(),
            Number::Float(n) => Decimal::from_str(&n.to_string()).ok(),
        }
    }
}

/// A condition: Rhai source, or a bare YAML boolean.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WhenDoc {
    Bool(bool),
    Text(String),
}

impl WhenDoc {
    fn source(&self) -> String {
        match self {
            WhenDoc::Bool(b) => b.to_string(),
            WhenDoc::Text(s) => s.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentDoc {
    name: String,
    when: WhenDoc,
    #[serde(default)]
    ladder: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LadderDoc {
    min_days_between_escalations: u32,
    levels: Vec<LevelDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelDoc {
    level: u32,
    name: String,
    when: WhenDoc,
    #[serde(default)]
    actions: Vec<ActionDoc>,
    #[serde(default)]
    min_days_between_escalations: Option<u32>,
    #[serde(default)]
    jump: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ActionDoc {
    Plain(String),
    Conditional(ConditionalActionDoc),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionalActionDoc {
    action: String,
    when: WhenDoc,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventRuleDoc {
    name: String,
    starts: String,
    #[serde(default)]
    ends: Option<String>,
    #[serde(default)]
    until: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelDoc {
    #[serde(default)]
    allowed_when: Option<WhenDoc>,
    #[serde(default)]
    otherwise: Option<String>,
}

// ---------------------------------------------------------------------------
// The compiled policy the night runs.

/// An action as `channel:template`. Inline texts: a night copies one into
/// most of its million decisions, and a heap copy of each name cost more
/// than the decision's own figures.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Action {
    pub channel: crate::ingest::Text,
    pub template: crate::ingest::Text,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.channel, self.template)
    }
}

impl Action {
    fn parse(s: &str) -> Option<Action> {
        let (channel, template) = s.split_once(':')?;
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        (ok(channel) && ok(template)).then(|| Action {
            channel: channel.into(),
            template: template.into(),
        })
    }
}

#[derive(Debug)]
pub struct ActionRule {
    pub action: Action,
    pub when: Option<Condition>,
}

#[derive(Debug)]
pub struct Level {
    pub number: u32,
    pub name: String,
    /// `ladders.<ladder>.levels[<n>] <name>`, as decisions name the level
    /// that decided them: made once and shared by every such decision.
    pub rule: std::sync::Arc<str>,
    pub when: Condition,
    pub actions: Vec<ActionRule>,
    /// Days that must pass since the last escalation before this level.
    pub min_gap: i64,
    /// May be reached from any lower level in one night.
    pub jump: bool,
}

#[derive(Debug)]
pub struct Ladder {
    pub name: String,
    /// Sorted by number, numbered 1..=n.
    pub levels: Vec<Level>,
}

impl Ladder {
    pub fn level(&self, number: u32) -> Option<&Level> {
        number
            .checked_sub(1)
            .and_then(|i| self.levels.get(i as usize))
    }
}

#[derive(Debug)]
pub struct Segment {
    pub name: String,
    pub when: Condition,
    pub ladder: usize,
}

/// A hold or a flag: a state a debtor enters with one event kind and may
/// leave with another, or that lasts until the event's `until` date.
#[derive(Debug, Clone)]
pub struct EventRule {
    pub name: String,
    pub starts: EventKind,
    pub ends: Option<EventKind>,
    pub until: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    Drop,
    Channel(String),
}

#[derive(Debug)]
pub struct Channel {
    pub allowed_when: Option<Condition>,
    pub otherwise: Fallback,
}

/// A file of the policy and its SHA-256, for the manifest.
#[derive(Debug, Clone)]
pub struct PolicyFile {
    pub path: String,
    pub sha256: String,
}

pub struct Policy {
    /// What `check` reports without refusing the policy.
    pub warnings: Vec<Problem>,
    pub name: String,
    pub version: Option<String>,
    pub dir: PathBuf,
    pub grace_days: i64,
    pub cure_below: Cents,
    pub max_rejected_share: Decimal,
    pub segments: Vec<Segment>,
    pub ladders: Vec<Ladder>,
    pub holds: Vec<EventRule>,
    pub flags: Vec<EventRule>,
    pub channels: BTreeMap<String, Channel>,
    pub engine: Engine,
    /// Templates, languages and sender settings for the messages.
    pub messages: crate::render::Messages,
    /// Which agency a placed account goes to.
    pub agencies: Option<Condition>,
    /// When a write-off is proposed.
    pub writeoff: Option<Condition>,
    /// Guards no rule overrides: caps, quiet days, cooling-off, consent.
    pub compliance: Option<crate::compliance::Compliance>,
    /// What the night proposes to charge (`charges.csv`).
    pub charges: Option<crate::charges::Charges>,
    /// Every file of the policy folder, sorted by path.
    pub files: Vec<PolicyFile>,
    /// SHA-256 over the sorted (path, hash) list.
    pub sha256: String,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Every condition and rule of the policy, in the order `check` lists
    /// them: segments, ladder levels and their actions, channels,
    /// write-off, agencies, call priority.
    pub fn conditions(&self) -> Vec<&Condition> {
        let mut out: Vec<&Condition> = self.segments.iter().map(|s| &s.when).collect();
        for ladder in &self.ladders {
            for level in &ladder.levels {
                out.push(&level.when);
                out.extend(level.actions.iter().filter_map(|a| a.when.as_ref()));
            }
        }
        out.extend(
            self.channels
                .values()
                .filter_map(|c| c.allowed_when.as_ref()),
        );
        out.extend(self.writeoff.iter());
        // Fee conditions are booleans like the ladder's; fee amounts are
        // not conditions and always run in Rhai.
        out.extend(
            self.charges
                .iter()
                .flat_map(|c| c.fees.iter().filter_map(|f| f.when.as_ref())),
        );
        out.extend(self.agencies.iter());
        out.extend(
            self.messages
                .calls
                .as_ref()
                .and_then(|c| c.priority.as_ref()),
        );
        out
    }

    pub fn flag_names(&self) -> Vec<String> {
        self.flags.iter().map(|f| f.name.clone()).collect()
    }

    /// Loads and validates `dir/policy.yaml`.
    pub fn load(dir: &Path) -> Result<Policy, PolicyError> {
        let path = dir.join("policy.yaml");
        let file = display_path(&path);
        let one = |message: String| PolicyError {
            problems: vec![Problem {
                file: file.clone(),
                line: None,
                column: None,
                message,
            }],
        };
        let text = std::fs::read_to_string(&path).map_err(|e| one(format!("cannot read: {e}")))?;
        let doc: PolicyDoc = serde_yaml_ng::from_str(&text).map_err(|e| {
            let loc = e.location();
            PolicyError {
                problems: vec![Problem {
                    file: file.clone(),
                    line: loc.as_ref().map(|l| l.line()),
                    column: loc.as_ref().map(|l| l.column()),
                    message: with_suggestion(&without_position(&e.to_string())),
                }],
            }
        })?;
        let files = crate::audit::hash_tree(dir)
            .map_err(|e| one(format!("cannot read the policy folder: {e}")))?;
        let sha256 =
            crate::audit::hash_list(files.iter().map(|f| (f.path.as_str(), f.sha256.as_str())));
        Builder {
            dir: dir.to_owned(),
            file,
            text,
            problems: Vec::new(),
            warnings: Vec::new(),
            engine: script::engine(),
            conditions: 0,
            helpers: Vec::new(),
        }
        .build(doc, files, sha256)
    }
}

/// The largest file a policy may pull in besides its own folder's (a
/// preset, a calendar, a rate table): a typo naming `/dev/zero` or a huge
/// export must fail the check, not hang it.
pub const MAX_SIDE_FILE: u64 = 4 << 20;

/// Reads a file a policy names, refusing anything that is not a regular
/// file of at most [`MAX_SIDE_FILE`] bytes.
pub fn read_side_file(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_SIDE_FILE {
        return Err(format!(
            "{} bytes, more than the {} a policy file may have",
            meta.len(),
            MAX_SIDE_FILE
        ));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

/// Line and column (1-based) of the first `needle` in `text` at or after
/// byte `from`.
fn find_in(text: &str, from: usize, needle: &str) -> (Option<usize>, Option<usize>) {
    let Some(off) = text
        .get(from..)
        .and_then(|t| t.find(needle))
        .map(|o| o + from)
    else {
        return (None, None);
    };
    let before = &text[..off];
    let line = before.matches('\n').count() + 1;
    let col = off - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (Some(line), Some(col))
}

/// Paths in messages are shown as given, with `/` separators.
pub fn display_path(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/")
}

struct Builder {
    dir: PathBuf,
    file: String,
    text: String,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    engine: Engine,
    /// Conditions compiled so far: the next one's id.
    conditions: usize,
    /// The helper functions, for inlining into vectorised conditions.
    helpers: Vec<crate::vector::Helper>,
}

/// The candidate closest to `word`, when one is close enough to be a typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d > 0 && *d <= (c.len().max(word.len()) / 3).max(2))
        .min()
        .map(|(_, c)| c)
}

/// `; did you mean `x`?` or nothing.
fn suggestion<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(word, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

/// serde_yaml_ng writes " at line L column C" into its messages; the
/// problem already says where, as file:line:column.
fn without_position(message: &str) -> String {
    let Some(i) = message.find(" at line ") else {
        return message.to_owned();
    };
    let rest = &message[i + " at line ".len()..];
    let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let n = digits(rest);
    let Some(after) = rest[n..].strip_prefix(" column ") else {
        return message.to_owned();
    };
    let m = digits(after);
    if n == 0 || m == 0 {
        return message.to_owned();
    }
    format!("{}{}", &message[..i], &after[m..])
}

/// serde's "unknown field `x`, expected one of `a`, `b`" (or "unknown
/// variant"), with the nearest known name added.
fn with_suggestion(message: &str) -> String {
    let Some(rest) = message
        .split_once("unknown field `")
        .or_else(|| message.split_once("unknown variant `"))
        .map(|(_, r)| r)
    else {
        return message.to_owned();
    };
    let Some((word, tail)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let Some((_, expected)) = tail.split_once("expected") else {
        return message.to_owned();
    };
    let names: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match did_you_mean(word, names) {
        Some(c) => format!("{message}; did you mean `{c}`?"),
        None => message.to_owned(),
    }
}

impl Builder {
    /// Line and column of `needle` in policy.yaml, searched from `anchor`
    /// (the first place `anchor` stands) when one is given.
    fn find(&self, anchor: Option<&str>, needle: &str) -> (Option<usize>, Option<usize>) {
        let start = anchor.and_then(|a| self.text.find(a)).unwrap_or(0);
        find_in(&self.text, start, needle)
    }

    /// A problem pointing at where `needle` stands (after `anchor`).
    fn problem_at(&mut self, anchor: Option<&str>, needle: &str, message: String) {
        let (line, column) = self.find(anchor, needle);
        self.problems.push(Problem {
            file: self.file.clone(),
            line,
            column,
            message,
        });
    }

    fn warning_at(&mut self, anchor: Option<&str>, needle: &str, message: String) {
        let (line, column) = self.find(anchor, needle);
        self.warnings.push(Problem {
            file: self.file.clone(),
            line,
            column,
            message,
        });
    }

    fn problem(&mut self, message: String) {
        let line = None;
        self.problems.push(Problem {
            file: self.file.clone(),
            line,
            column: None,
            message,
        });
    }

    /// Finds where a condition's text stands in policy.yaml, so a Rhai error
    /// can point at the file's own line and column. When the text stands more
    /// than once the first place is taken; when it was folded by YAML it is
    /// not found and the message names the rule instead.
    fn locate(&self, source: &str, line: usize, pos: usize) -> (Option<usize>, Option<usize>) {
        let first_line = source.lines().next().unwrap_or("");
        if first_line.is_empty() {
            return (None, None);
        }
        let Some(offset) = self.text.find(first_line) else {
            return (None, None);
        };
        let before = &self.text[..offset];
        let file_line = before.matches('\n').count() + 1;
        let col0 = offset - before.rfind('\n').map_or(0, |i| i + 1);
        if line <= 1 {
            (Some(file_line), Some(col0 + pos.max(1)))
        } else {
            (Some(file_line + line - 1), Some(pos.max(1)))
        }
    }

    fn compile(
        &mut self,
        rule: String,
        when: &WhenDoc,
        scope: &rhai::Scope,
        helpers: &AST,
    ) -> Option<Condition> {
        let source = when.source();
        match self.engine.compile_with_scope(scope, &source) {
            Ok(ast) => {
                let ast = helpers.merge(&ast);
                let flags: Vec<String> = scope
                    .iter_raw()
                    .map(|(n, _, _)| n.to_owned())
                    .filter(|n| {
                        n != script::SEGMENT_VARIABLE.0
                            && !script::VARIABLES.iter().any(|v| v.0 == n)
                    })
                    .collect();
                let names = crate::vector::Names {
                    flags: &flags,
                    with_segment: scope.contains(script::SEGMENT_VARIABLE.0),
                    helpers: &self.helpers,
                    params: None,
                    depth: 0,
                };
                let plan = crate::vector::translate(&ast, &names);
                let id = self.conditions;
                self.conditions += 1;
                Some(Condition {
                    rule,
                    source,
                    ast,
                    id,
                    plan,
                })
            }
            Err(e) => {
                let (line, column) = match (e.1.line(), e.1.position()) {
                    (Some(l), Some(p)) => self.locate(&source, l, p),
                    _ => (None, None),
                };
                let hint = match e.0.as_ref() {
                    rhai::ParseErrorType::VariableUndefined(v) => {
                        suggestion(v, scope.iter_raw().map(|(n, _, _)| n))
                    }
                    _ => String::new(),
                };
                self.problems.push(Problem {
                    file: self.file.clone(),
                    line,
                    column,
                    message: format!("{rule}: {} in `{source}`{hint}", e.0),
                });
                None
            }
        }
    }

    fn event_rule(&mut self, section: &str, i: usize, doc: &EventRuleDoc) -> Option<EventRule> {
        let kind = |s: &str| EventKind::from_str(s).ok();
        let starts = kind(&doc.starts);
        if starts.is_none() {
            let known = EventKind::ALL.iter().map(|k| k.as_str());
            self.problem_at(
                Some(&format!("name: {}", doc.name)),
                &format!("starts: {}", doc.starts),
                format!(
                    "{section}[{i}] {}: unknown event kind `{}`{} (known: {})",
                    doc.name,
                    doc.starts,
                    suggestion(&doc.starts, known.clone()),
                    known.collect::<Vec<_>>().join(", ")
                ),
            );
        }
        let ends = match &doc.ends {
            None => Some(None),
            Some(e) => match kind(e) {
                Some(k) => Some(Some(k)),
                None => {
                    self.problem_at(
                        Some(&format!("name: {}", doc.name)),
                        &format!("ends: {e}"),
                        format!(
                            "{section}[{i}] {}: unknown event kind `{e}`{}",
                            doc.name,
                            suggestion(e, EventKind::ALL.iter().map(|k| k.as_str()))
                        ),
                    );
                    None
                }
            },
        };
        if !is_identifier(&doc.name) {
            self.problem(format!(
                "{section}[{i}]: name `{}` must be lower-case letters, digits and '_'",
                doc.name
            ));
        }
        Some(EventRule {
            name: doc.name.clone(),
            starts: starts?,
            ends: ends?,
            until: doc.until,
        })
    }

    fn build(
        mut self,
        doc: PolicyDoc,
        files: Vec<PolicyFile>,
        sha256: String,
    ) -> Result<Policy, PolicyError> {
        let decimal = |n: &Number| n.to_decimal();
        let cure_below = match decimal(&doc.cure_below).and_then(money::decimal_to_cents) {
            Some(c) if c >= 0 => c,
            _ => {
                self.problem("cure_below: must be a non-negative amount with at most 2 decimals, e.g. \"10.00\"".into());
                0
            }
        };
        let max_rejected_share = match decimal(&doc.max_rejected_share) {
            Some(d) if d >= Decimal::ZERO && d <= Decimal::ONE => d,
            _ => {
                self.problem("max_rejected_share: must be a number from 0 to 1, e.g. 0.05".into());
                Decimal::ZERO
            }
        };

        // Helpers: functions only, shared by every condition.
        let mut helpers = AST::empty();
        for h in &doc.helpers {
            let path = self.dir.join(h);
            if h.contains("..") || Path::new(h).is_absolute() {
                self.problem(format!(
                    "helpers: `{h}` must be a file inside the policy folder"
                ));
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(src) => match self.engine.compile(&src) {
                    Ok(ast) => {
                        self.helpers.extend(crate::vector::Helper::from_file(
                            &self.engine,
                            &src,
                            &ast,
                        ));
                        helpers = helpers.merge(&ast.clone_functions_only())
                    }
                    Err(e) => self.problems.push(Problem {
                        file: display_path(&path),
                        line: e.1.line(),
                        column: e.1.position(),
                        message: e.0.to_string(),
                    }),
                },
                Err(e) => self.problem(format!("helpers: cannot read `{h}`: {e}")),
            }
        }

        let holds: Vec<EventRule> = doc
            .holds
            .iter()
            .enumerate()
            .filter_map(|(i, h)| self.event_rule("holds", i, h))
            .collect();
        let flags: Vec<EventRule> = doc
            .flags
            .iter()
            .enumerate()
            .filter_map(|(i, h)| self.event_rule("flags", i, h))
            .collect();
        let reserved: BTreeSet<&str> = script::VARIABLES
            .iter()
            .map(|v| v.0)
            .chain([script::SEGMENT_VARIABLE.0])
            .collect();
        let mut seen = BTreeSet::new();
        for f in &flags {
            if reserved.contains(f.name.as_str()) {
                self.problem(format!("flags: `{}` is already a variable name", f.name));
            }
            if !seen.insert(f.name.clone()) {
                self.problem(format!("flags: `{}` is defined twice", f.name));
            }
        }
        let mut seen = BTreeSet::new();
        for h in &holds {
            if !seen.insert(h.name.clone()) {
                self.problem(format!("holds: `{}` is defined twice", h.name));
            }
        }
        let flag_names: Vec<String> = flags.iter().map(|f| f.name.clone()).collect();
        let seg_scope = script::declaration_scope(false, &flag_names);
        let rule_scope = script::declaration_scope(true, &flag_names);

        // Channels: every known channel exists, with or without a guard.
        let mut channels = BTreeMap::new();
        for name in CHANNELS {
            channels.insert(
                (*name).to_owned(),
                Channel {
                    allowed_when: None,
                    otherwise: Fallback::Drop,
                },
            );
        }
        for (name, ch) in &doc.channels {
            if !CHANNELS.contains(&name.as_str()) {
                self.problem_at(
                    Some("channels:"),
                    &format!("{name}:"),
                    format!(
                        "channels: unknown channel `{name}`{} (known: {})",
                        suggestion(name, CHANNELS.iter().copied()),
                        CHANNELS.join(", ")
                    ),
                );
                continue;
            }
            let allowed_when = ch.allowed_when.as_ref().and_then(|w| {
                self.compile(
                    format!("channels.{name}.allowed_when"),
                    w,
                    &rule_scope,
                    &helpers,
                )
            });
            let otherwise = match ch.otherwise.as_deref() {
                None | Some("drop") => Fallback::Drop,
                Some(other) if CHANNELS.contains(&other) && other != name => {
                    Fallback::Channel(other.to_owned())
                }
                Some(other) => {
                    self.problem(format!(
                        "channels.{name}.otherwise: `{other}` is neither `drop` nor another known channel"
                    ));
                    Fallback::Drop
                }
            };
            channels.insert(
                name.clone(),
                Channel {
                    allowed_when,
                    otherwise,
                },
            );
        }
        // A fallback chain must end: email -> letter -> email would loop.
        for start in channels.keys() {
            let mut seen = BTreeSet::new();
            let mut at = start.clone();
            while let Some(Fallback::Channel(next)) = channels.get(&at).map(|c| &c.otherwise) {
                if !seen.insert(at.clone()) {
                    self.problem(format!(
                        "channels: fallbacks from `{start}` go round in a circle"
                    ));
                    break;
                }
                at = next.clone();
            }
        }

        // Ladders.
        let mut ladders = Vec::new();
        for (lname, l) in &doc.ladders {
            let mut levels = Vec::new();
            for (i, lv) in l.levels.iter().enumerate() {
                let expected = i as u32 + 1;
                if lv.level != expected {
                    self.problem_at(
                        Some(&format!("{lname}:")),
                        &format!("name: {}", lv.name),
                        format!(
                            "ladders.{lname}.levels[{i}] {}: level {} is out of order; levels are numbered 1, 2, 3... in order (expected {expected})",
                            lv.name, lv.level
                        ),
                    );
                }
                let rule = format!("ladders.{lname} level {} {}", lv.level, lv.name);
                let when = self.compile(format!("{rule} when"), &lv.when, &rule_scope, &helpers);
                let mut actions = Vec::new();
                for (j, a) in lv.actions.iter().enumerate() {
                    let (text, w) = match a {
                        ActionDoc::Plain(t) => (t, None),
                        ActionDoc::Conditional(c) => (&c.action, Some(&c.when)),
                    };
                    let anchor = format!("name: {}", lv.name);
                    let Some(action) = Action::parse(text) else {
                        self.problem_at(
                            Some(&anchor),
                            text,
                            format!("{rule}: actions[{j}] `{text}` is not `channel:template`"),
                        );
                        continue;
                    };
                    if !CHANNELS.contains(&action.channel.as_str()) {
                        self.problem_at(
                            Some(&anchor),
                            text,
                            format!(
                                "{rule}: actions[{j}] `{text}`: unknown channel `{}`{} (known: {})",
                                action.channel,
                                suggestion(&action.channel, CHANNELS.iter().copied()),
                                CHANNELS.join(", ")
                            ),
                        );
                        continue;
                    }
                    let when = match w {
                        None => None,
                        Some(w) => match self.compile(
                            format!("{rule} actions[{j}] {text}"),
                            w,
                            &rule_scope,
                            &helpers,
                        ) {
                            Some(c) => Some(c),
                            None => continue,
                        },
                    };
                    actions.push(ActionRule { action, when });
                }
                if let Some(when) = when {
                    levels.push(Level {
                        number: lv.level,
                        name: lv.name.clone(),
                        rule: format!("ladders.{lname}.levels[{}] {}", lv.level, lv.name).into(),
                        when,
                        actions,
                        min_gap: i64::from(
                            lv.min_days_between_escalations
                                .unwrap_or(l.min_days_between_escalations),
                        ),
                        jump: lv.jump,
                    });
                }
            }
            if l.levels.is_empty() {
                self.problem(format!("ladders.{lname}: has no levels"));
            }
            ladders.push(Ladder {
                name: lname.clone(),
                levels,
            });
        }

        // Segments.
        let mut segments = Vec::new();
        let mut names = BTreeSet::new();
        let mut catch_all: Option<String> = None;
        if doc.segments.is_empty() {
            self.problem(
                "segments: at least one segment is needed; the last is usually `when: true`".into(),
            );
        }
        for (i, s) in doc.segments.iter().enumerate() {
            if !names.insert(s.name.clone()) {
                self.problem(format!("segments[{i}]: `{}` is defined twice", s.name));
            }
            if let Some(prev) = catch_all.clone() {
                self.problem_at(
                    Some("segments:"),
                    &format!("name: {}", s.name),
                    format!(
                        "segments[{i}] {}: can never match, segment `{prev}` before it matches every account",
                        s.name
                    ),
                );
            }
            if s.when.source().trim() == "true" {
                catch_all.get_or_insert(s.name.clone());
            }
            let lname = s.ladder.clone().unwrap_or_else(|| "default".to_owned());
            let ladder = ladders.iter().position(|l| l.name == lname);
            if ladder.is_none() {
                let hint = suggestion(&lname, ladders.iter().map(|l| l.name.as_str()));
                self.problem_at(
                    Some("segments:"),
                    &format!("ladder: {lname}"),
                    format!(
                        "segments[{i}] {}: no ladder named `{lname}`{hint} (ladders: {})",
                        s.name,
                        ladders
                            .iter()
                            .map(|l| l.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            let when = self.compile(
                format!("segments[{i}] {}", s.name),
                &s.when,
                &seg_scope,
                &helpers,
            );
            if let (Some(when), Some(ladder)) = (when, ladder) {
                segments.push(Segment {
                    name: s.name.clone(),
                    when,
                    ladder,
                });
            }
        }
        if !doc.segments.is_empty() && catch_all.is_none() {
            // Not an error: an account that matches no segment is reported
            // as such, but the author most likely forgot the catch-all.
            self.warning_at(
                None,
                "segments:",
                "segments: none has `when: true`; an account that matches no segment gets segment \"\" and no ladder (outcome no_segment)".into(),
            );
        }

        // Every action the ladder names, and what its channel falls back to.
        let mut used: BTreeSet<Action> = BTreeSet::new();
        for a in ladders
            .iter()
            .flat_map(|l| l.levels.iter())
            .flat_map(|l| l.actions.iter())
        {
            let mut action = a.action.clone();
            for _ in 0..=channels.len() {
                let next = match channels.get(action.channel.as_str()).map(|c| &c.otherwise) {
                    Some(Fallback::Channel(n)) => Some(n.clone()),
                    _ => None,
                };
                used.insert(action.clone());
                match next {
                    Some(n) => action.channel = n.into(),
                    None => break,
                }
            }
        }
        let mut files = files;
        let mut sha256 = sha256;
        let compliance = match &doc.compliance {
            None => None,
            Some(c) => {
                let mut known: Vec<String> = crate::compliance::CHANNELS
                    .iter()
                    .map(|c| (*c).to_owned())
                    .chain(channels.keys().cloned())
                    .collect();
                known.sort();
                known.dedup();
                let (compiled, read) = self.compliance(c, &known);
                if !read.is_empty() {
                    files.extend(read);
                    files.sort_by(|a, b| a.path.cmp(&b.path));
                    sha256 = crate::audit::hash_list(
                        files.iter().map(|f| (f.path.as_str(), f.sha256.as_str())),
                    );
                }
                compiled
            }
        };
        // A compliance reroute sends an action's template through another
        // channel: those templates and that channel's settings must exist
        // like the ladder's own.
        if let Some(c) = &compliance {
            let reroutes = c.reroutes();
            for _ in 0..=reroutes.len() {
                let more: Vec<Action> = used
                    .iter()
                    .flat_map(|a| {
                        reroutes
                            .iter()
                            .filter(|(from, _)| *from == a.channel)
                            .map(|(_, to)| Action {
                                channel: to.as_str().into(),
                                template: a.template.clone(),
                            })
                    })
                    .filter(|a| !used.contains(a))
                    .collect();
                if more.is_empty() {
                    break;
                }
                used.extend(more);
            }
        }
        let mut messages = self.messages(&doc, &used, &rule_scope, &helpers);
        if let Some(c) = &compliance {
            self.shape_windows(c, &mut messages);
        }
        let agencies = doc
            .agencies
            .as_ref()
            .and_then(|a| self.compile("agencies.choose".into(), &a.choose, &rule_scope, &helpers));
        let writeoff = doc
            .writeoff
            .as_ref()
            .and_then(|w| self.compile("writeoff.when".into(), &w.when, &rule_scope, &helpers));

        let charges = doc
            .charges
            .as_ref()
            .map(|c| self.charges(c, &ladders, &rule_scope, &helpers));
        self.lint_ladders(&doc);

        if !self.problems.is_empty() {
            return Err(PolicyError {
                problems: self.problems,
            });
        }
        Ok(Policy {
            warnings: self.warnings,
            messages,
            agencies,
            writeoff,
            compliance,
            charges,
            name: doc.name,
            version: doc.version,
            dir: self.dir,
            grace_days: i64::from(doc.grace_days),
            cure_below,
            max_rejected_share,
            segments,
            ladders,
            holds,
            flags,
            channels,
            engine: self.engine,
            files,
            sha256,
        })
    }
}

impl Builder {
    /// Reads the compliance section and the presets it includes, and
    /// compiles them; the files read are returned for the policy's hash
    /// (a preset edited is a policy changed).
    fn compliance(
        &mut self,
        own: &crate::compliance::ComplianceDoc,
        known: &[String],
    ) -> (Option<crate::compliance::Compliance>, Vec<PolicyFile>) {
        use crate::compliance::{ComplianceDoc, Layer};
        let mut layers = Vec::new();
        let mut read = Vec::new();
        for inc in &own.include {
            let path = self.dir.join(inc);
            let shown = inc.replace('\\', "/");
            let text = match read_side_file(&path)
                .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8 text".to_owned()))
            {
                Ok(t) => t,
                Err(e) => {
                    self.problem_at(
                        Some("compliance:"),
                        inc,
                        format!("compliance.include: cannot read `{inc}`: {e}"),
                    );
                    continue;
                }
            };
            let doc: ComplianceDoc = match serde_yaml_ng::from_str(&text) {
                Ok(d) => d,
                Err(e) => {
                    let loc = e.location();
                    self.problems.push(Problem {
                        file: shown.clone(),
                        line: loc.as_ref().map(|l| l.line()),
                        column: loc.as_ref().map(|l| l.column()),
                        message: with_suggestion(&without_position(&e.to_string())),
                    });
                    continue;
                }
            };
            if !doc.include.is_empty() {
                self.problems.push(Problem {
                    file: shown.clone(),
                    line: None,
                    column: None,
                    message: "include: a preset cannot include other presets; include them all from the policy".into(),
                });
            }
            read.push(PolicyFile {
                path: shown.clone(),
                sha256: crate::audit::sha256_bytes(text.as_bytes()),
            });
            layers.push(Layer {
                file: shown,
                text,
                dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
                doc,
            });
        }
        // The policy's own rules, over its presets. Its text is searched from
        // the `compliance:` key so that messages point into that section.
        let text = self
            .text
            .find("compliance:")
            .map(|i| self.text[i..].to_owned())
            .unwrap_or_default();
        let offset_line = self
            .text
            .find("compliance:")
            .map(|i| self.text[..i].matches('\n').count())
            .unwrap_or(0);
        let own_layer = Layer {
            file: self.file.clone(),
            text,
            dir: self.dir.clone(),
            doc: ComplianceDoc {
                include: Vec::new(),
                ..own.clone()
            },
        };
        layers.push(own_layer);
        let (compiled, problems, reads) = crate::compliance::compile(&layers, known);
        for p in problems {
            let layer = &layers[p.layer];
            // Searched after the rule's anchor, else anywhere in the file.
            let from = p
                .anchor
                .as_deref()
                .and_then(|a| layer.text.find(a).map(|i| i + a.len()))
                .unwrap_or(0);
            let (line, column) = match find_in(&layer.text, from, &p.needle) {
                (None, _) => find_in(&layer.text, 0, &p.needle),
                found => found,
            };
            let line = line.map(|l| {
                if p.layer + 1 == layers.len() {
                    l + offset_line
                } else {
                    l
                }
            });
            self.problems.push(Problem {
                file: layer.file.clone(),
                line,
                column,
                message: p.message,
            });
        }
        for r in reads {
            read.push(PolicyFile {
                path: r.file,
                sha256: crate::audit::sha256_bytes(&r.bytes),
            });
        }
        (compiled, read)
    }

    /// Fees (flat or by a rule), the recovery indemnity and late interest.
    fn charges(
        &mut self,
        c: &crate::charges::ChargesDoc,
        ladders: &[Ladder],
        scope: &rhai::Scope,
        helpers: &AST,
    ) -> crate::charges::Charges {
        use crate::charges::*;
        let anchor = Some("charges:");
        let mut fees = Vec::new();
        for f in &c.fees {
            let at = format!("charges.fees.{}", f.name);
            let name_anchor = format!("name: {}", f.name);
            if !ladders.iter().any(|l| l.level(f.level).is_some()) {
                self.problem_at(
                    Some(&name_anchor),
                    "level:",
                    format!("{at}.level: no ladder has a level {}", f.level),
                );
            }
            let amount = match (&f.amount, &f.rule) {
                (Some(a), None) => match Decimal::from_str(a.trim())
                    .ok()
                    .and_then(money::decimal_to_cents)
                    .filter(|c| *c >= 0)
                {
                    Some(c) => Some(FeeAmount::Flat(c)),
                    None => {
                        self.problem_at(
                            Some(&name_anchor),
                            a,
                            format!("{at}.amount: `{a}` must be an amount >= 0 with at most 2 decimals, e.g. \"15.00\""),
                        );
                        None
                    }
                },
                (None, Some(r)) => self
                    .compile(
                        format!("{at}.rule"),
                        &WhenDoc::Text(r.clone()),
                        scope,
                        helpers,
                    )
                    .map(FeeAmount::Rule),
                _ => {
                    self.problem_at(
                        Some(&name_anchor),
                        &name_anchor,
                        format!("{at}: give either `amount` or `rule`"),
                    );
                    None
                }
            };
            let when = f.when.as_ref().and_then(|w| {
                self.compile(
                    format!("{at}.when"),
                    &WhenDoc::Text(w.clone()),
                    scope,
                    helpers,
                )
            });
            if let Some(amount) = amount {
                fees.push(Fee {
                    name: f.name.clone(),
                    level: f.level,
                    amount,
                    when,
                });
            }
        }
        let mut indemnity = BTreeMap::new();
        if let Some(i) = &c.recovery_indemnity {
            for (cur, a) in &i.amounts {
                match Decimal::from_str(a.trim())
                    .ok()
                    .and_then(money::decimal_to_cents)
                    .filter(|c| *c > 0)
                {
                    Some(cents) => {
                        indemnity.insert(cur.clone(), cents);
                    }
                    None => self.problem_at(
                        Some("recovery_indemnity:"),
                        a,
                        format!("charges.recovery_indemnity.amounts.{cur}: `{a}` must be an amount > 0, e.g. \"40.00\""),
                    ),
                }
            }
        }
        let interest = c.late_interest.as_ref().and_then(|i| {
            let day_count = DayCount::parse(&i.day_count);
            if day_count.is_none() {
                self.problem_at(
                    Some("late_interest:"),
                    &i.day_count,
                    format!("charges.late_interest.day_count: `{}` must be act/365, act/360 or 30/360", i.day_count),
                );
            }
            let rounding = Rounding::parse(&i.rounding);
            if rounding.is_none() {
                self.problem_at(
                    Some("late_interest:"),
                    &i.rounding,
                    format!("charges.late_interest.rounding: `{}` must be half_up, half_even or down", i.rounding),
                );
            }
            let rates = if i.rates.contains("..") || Path::new(&i.rates).is_absolute() {
                self.problem_at(
                    Some("late_interest:"),
                    &i.rates,
                    format!("charges.late_interest.rates: `{}` must be a file inside the policy folder (it is part of the policy's hash)", i.rates),
                );
                None
            } else {
                let path = self.dir.join(&i.rates);
                match read_rates(&path, &display_path(&path)) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        self.problem(format!("charges.late_interest.rates: {e}"));
                        None
                    }
                }
            };
            Some(Interest {
                debtor_kinds: i.debtor_kinds.clone(),
                rates_file: i.rates.clone(),
                rates: rates?,
                day_count: day_count?,
                rounding: rounding?,
            })
        });
        let _ = anchor;
        Charges {
            fees,
            indemnity,
            interest,
            during_holds: c.during_holds,
        }
    }

    /// Allowed hours narrow the call windows written in calls.csv and set
    /// the SMS send windows; hours that leave no call window are an error.
    fn shape_windows(
        &mut self,
        c: &crate::compliance::Compliance,
        messages: &mut crate::render::Messages,
    ) {
        if let (Some(&(a, b)), Some(calls)) = (c.hours.get("call"), messages.calls.as_mut()) {
            let (start, end) = (calls.start.max(a), calls.end.min(b));
            if start >= end {
                self.problem_at(
                    Some("calls:"),
                    "hours:",
                    format!(
                        "calls.hours {}-{} and compliance.hours.call {}-{} do not overlap: no call could ever be made",
                        calls.start.format("%H:%M"),
                        calls.end.format("%H:%M"),
                        a.format("%H:%M"),
                        b.format("%H:%M")
                    ),
                );
            } else {
                calls.start = start;
                calls.end = end;
            }
        }
        messages.sms_window = c.hours.get("sms").copied();
    }

    /// The static checks of `lint` on every ladder: a level that can never
    /// be reached is an error, a threshold that looks like a slip a warning.
    fn lint_ladders(&mut self, doc: &PolicyDoc) {
        for (lname, l) in &doc.ladders {
            let sources: Vec<String> = l.levels.iter().map(|lv| lv.when.source()).collect();
            let texts: Vec<crate::lint::LevelText<'_>> = l
                .levels
                .iter()
                .zip(&sources)
                .map(|(lv, src)| crate::lint::LevelText {
                    number: lv.level.max(1),
                    name: &lv.name,
                    when: src,
                    min_gap: i64::from(
                        lv.min_days_between_escalations
                            .unwrap_or(l.min_days_between_escalations),
                    ),
                    jump: lv.jump,
                })
                .collect();
            for f in crate::lint::check_ladder(&texts) {
                let lv = &l.levels[f.index];
                let first = sources[f.index].lines().next().unwrap_or("").to_owned();
                let anchor = format!("name: {}", lv.name);
                let message = format!(
                    "ladders.{lname} level {} {}: {}",
                    lv.level, lv.name, f.message
                );
                if f.never {
                    self.problem_at(Some(&anchor), &first, message);
                } else {
                    self.warning_at(Some(&anchor), &first, message);
                }
            }
        }
    }

    /// Languages, templates and sender settings. Every template an action
    /// of the ladder needs must exist in every declared language.
    fn messages(
        &mut self,
        doc: &PolicyDoc,
        used: &BTreeSet<Action>,
        scope: &rhai::Scope,
        helpers: &AST,
    ) -> crate::render::Messages {
        use crate::render::{CallSettings, EmailSettings, Messages, Templates};
        let (mut templates, problems) = Templates::load(&self.dir.join("templates"));
        self.problems.extend(problems);
        let languages = doc.languages.clone();
        let default_language = doc
            .default_language
            .clone()
            .or_else(|| languages.first().cloned())
            .unwrap_or_else(|| "en".into());
        if !languages.is_empty() && !languages.contains(&default_language) {
            self.problem(format!(
                "default_language: `{default_language}` is not one of languages ({})",
                languages.join(", ")
            ));
        }
        let needs = |channel: &str| used.iter().any(|a| a.channel == channel);
        for channel in ["email", "sms", "call"] {
            if needs(channel) && languages.is_empty() {
                self.problem(format!(
                    "languages: the ladder sends `{channel}` actions, so the policy must declare its languages, e.g. `languages: [fr, en]`"
                ));
                break;
            }
        }
        for a in used {
            for lang in &languages {
                for name in crate::render::template_files(&a.channel, &a.template) {
                    let path = format!("{lang}/{name}");
                    // A file that exists but did not compile has had its
                    // syntax error reported already.
                    if !templates.has(&path) && !self.dir.join("templates").join(&path).is_file() {
                        let action = a.to_string();
                        let needle = if self.text.contains(&action) {
                            action
                        } else {
                            "languages:".to_owned()
                        };
                        self.problem_at(
                            None,
                            &needle,
                            format!(
                                "{a}: template templates/{path} is missing for language `{lang}`"
                            ),
                        );
                    }
                }
            }
        }
        let email = match &doc.email {
            Some(e) => {
                let from = e.from.parse::<lettre::message::Mailbox>();
                let reply_to = e
                    .reply_to
                    .as_deref()
                    .map(|r| r.parse::<lettre::message::Mailbox>());
                match (from, reply_to.transpose()) {
                    (Ok(from), Ok(reply_to)) => Some(EmailSettings {
                        from,
                        reply_to,
                        domain: e.message_id_domain.clone(),
                    }),
                    _ => {
                        self.problem("email: `from` and `reply_to` must be addresses such as `Banque <recouvrement@banque.fr>`".into());
                        None
                    }
                }
            }
            None => {
                if needs("email") {
                    self.problem("email: the ladder sends e-mails, so the policy needs an `email:` section with `from` and `message_id_domain`".into());
                }
                None
            }
        };
        if doc.sms.is_none() && needs("sms") {
            self.problem("sms: the ladder sends SMS, so the policy needs an `sms:` section with `max_segments`".into());
        }
        let max_segments = doc.sms.as_ref().map_or(1, |s| s.max_segments);
        let default_tz = doc
            .calls
            .as_ref()
            .and_then(|c| c.default_timezone.clone())
            .or_else(|| crate::phone::default_timezone(&doc.default_country).map(str::to_owned))
            .unwrap_or_else(|| "UTC".into());
        let default_tz = match default_tz.parse::<chrono_tz::Tz>() {
            Ok(tz) => tz,
            Err(_) => {
                self.problem(format!(
                    "calls.default_timezone: `{default_tz}` is not an IANA time zone"
                ));
                chrono_tz::UTC
            }
        };
        if crate::phone::calling_code(&doc.default_country).is_none() {
            self.problem(format!(
                "default_country: `{}` is not a country the engine knows a calling code for",
                doc.default_country
            ));
        }
        let calls = match &doc.calls {
            Some(c) => {
                let hours = crate::render::parse_hours(&c.hours);
                if hours.is_none() {
                    self.problem(format!(
                        "calls.hours: `{}` is not a window such as \"09:00-20:00\"",
                        c.hours
                    ));
                }
                let priority = c
                    .priority
                    .as_ref()
                    .and_then(|w| self.compile("calls.priority".into(), w, scope, helpers));
                hours.map(|(start, end)| CallSettings {
                    start,
                    end,
                    priority,
                })
            }
            None => {
                if needs("call") {
                    self.problem("calls: the ladder plans calls, so the policy needs a `calls:` section with `hours`".into());
                }
                None
            }
        };
        let letters = match &doc.letters {
            Some(l) => {
                let mut fonts = BTreeMap::new();
                for (lang, pair) in &l.fonts {
                    let load = |spec: &str| crate::actions::letter::FontFile::load(spec, &self.dir);
                    match (load(&pair.regular), load(&pair.bold)) {
                        (Ok(regular), Ok(bold)) => {
                            // A language's own letters must be printable in its font.
                            let sample = match lang.as_str() {
                                "zh" => "您好，逾期总额",
                                "fr" => "Échéance réglée à Noël",
                                _ => "Amount due",
                            };
                            if !regular.covers(sample) {
                                self.problem(format!(
                                    "letters.fonts.{lang}: the regular font has no glyphs for `{sample}`; install a font for this language (README: set-up) or name another"
                                ));
                            }
                            fonts.insert(lang.clone(), crate::actions::letter::FontPair { regular, bold });
                        }
                        (Err(e), _) | (_, Err(e)) => self.problem(format!(
                            "letters.fonts.{lang}: {e}; install it (scripts/setup.sh installs DejaVu and Noto CJK) or name another font"
                        )),
                    }
                }
                if needs("letter") {
                    for lang in &languages {
                        if !fonts.contains_key(lang) && !fonts.contains_key("default") {
                            self.problem(format!(
                                "letters.fonts: no font for language `{lang}` and no `default`"
                            ));
                        }
                    }
                }
                Some(crate::actions::letter::LetterSettings {
                    registered: l.registered.clone(),
                    fonts,
                })
            }
            None => {
                if needs("letter") {
                    self.problem("letters: the ladder (or a channel fallback) sends letters, so the policy needs a `letters:` section with fonts".into());
                }
                None
            }
        };
        let payment_reference = doc
            .payment_reference
            .clone()
            .unwrap_or_else(|| "{{ debtor.id }}-{{ account.currency }}".into());
        if let Err(e) = templates.add_inline(crate::render::PAYMENT_REFERENCE, &payment_reference) {
            self.problem(format!("payment_reference: {e}"));
        }
        // Templates render with strict variables: a name the context does
        // not have would fail the night at the first account. Found here,
        // before any night.
        let company = minijinja::Value::from(minijinja::value::Serde(&doc.contact));
        let sample = crate::render::sample_context(&company);
        for u in templates.unknown_variables(&sample) {
            let (file, line, column) = if u.template == crate::render::PAYMENT_REFERENCE {
                let (l, c) = self.find(Some("payment_reference:"), &u.variable);
                (self.file.clone(), l, c)
            } else {
                (
                    display_path(&self.dir.join("templates").join(&u.template)),
                    u.line,
                    u.column,
                )
            };
            let hint = if u.known.is_empty() {
                String::new()
            } else {
                format!(
                    "{} (known here: {})",
                    suggestion(&u.broke_at, u.known.iter().map(String::as_str)),
                    u.known.join(", ")
                )
            };
            self.problems.push(Problem {
                file,
                line,
                column,
                message: format!(
                    "template uses `{}`, which templates do not have{hint}",
                    u.variable
                ),
            });
        }
        Messages {
            languages,
            default_language,
            default_country: doc.default_country.clone(),
            default_tz,
            contact: doc.contact.clone(),
            company,
            email,
            max_segments,
            sms_window: None,
            calls,
            letters,
            templates,
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_lowercase() || c == b'_')
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}
