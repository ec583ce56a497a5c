//! Compliance: the contact rules of the law, applied after the ladder and
//! the channel rules as guards that no rule of the risk team can override.
//! Tonight's contacts (and those deferred on earlier nights) pass, in a
//! fixed order: do-not-contact, consent, the debtor's own contact data,
//! contact-free days, cooling-off after a conversation, rolling caps. The
//! first guard that refuses decides what happens to the action (deferred to
//! a later night, dropped, or sent through another channel) and the decision
//! names it. Allowed hours are not a guard: they shape the call and SMS
//! windows written with each contact (the policy loader refuses hours that
//! leave no window).
//!
//! The state keeps what the rolling windows need: the contacts of the last
//! nights (`contacts.csv`) and each account's deferred actions.

use crate::decide::{Decision, Outcome};
use crate::ingest::{Debtor, Event, EventKind};
use crate::policy::{Action, Policy};
use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

// ---------------------------------------------------------------------------
// The section as written (in policy.yaml or in a preset it includes).

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ComplianceDoc {
    /// Presets, relative to the policy folder (`../compliance/fr.yaml`).
    #[serde(default)]
    pub include: Vec<String>,
    /// The channels that are contacts with the debtor.
    #[serde(default)]
    pub contacts: Option<Vec<String>>,
    /// How many nights a deferred action waits at most before it is dropped.
    #[serde(default)]
    pub defer_days: Option<u32>,
    #[serde(default)]
    pub do_not_contact: Option<EventBlockDoc>,
    #[serde(default)]
    pub consent: Option<ConsentDoc>,
    #[serde(default)]
    pub own_contact_only: Option<EventBlockDoc>,
    #[serde(default)]
    pub quiet_days: Vec<QuietDoc>,
    #[serde(default)]
    pub hours: BTreeMap<String, String>,
    #[serde(default)]
    pub cooling_off: Vec<CoolingDoc>,
    #[serde(default)]
    pub caps: Vec<CapDoc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventBlockDoc {
    pub event: String,
    /// Only events whose note is one of these (any note when empty).
    #[serde(default)]
    pub notes: Vec<String>,
    /// A later event of the same kind with one of these notes lifts it.
    #[serde(default)]
    pub cleared_by: Vec<String>,
    pub channels: Vec<String>,
    #[serde(default)]
    pub then: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsentDoc {
    /// Channel to the debtors-file column that must not be false.
    pub channels: BTreeMap<String, String>,
    #[serde(default)]
    pub then: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuietDoc {
    pub name: String,
    #[serde(default)]
    pub weekdays: Vec<String>,
    /// A folder of `<COUNTRY>.csv` calendars (`date,name`), relative to the
    /// file that names it; the debtor's country picks the calendar.
    #[serde(default)]
    pub holidays: Option<String>,
    pub channels: Vec<String>,
    #[serde(default)]
    pub then: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CoolingDoc {
    pub name: String,
    pub event: String,
    #[serde(default)]
    pub notes: Vec<String>,
    pub days: u32,
    pub channels: Vec<String>,
    #[serde(default)]
    pub then: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CapDoc {
    pub name: String,
    pub channels: Vec<String>,
    pub max: u32,
    pub days: u32,
    #[serde(default)]
    pub then: Option<String>,
}

// ---------------------------------------------------------------------------
// The compiled section.

/// What happens to an action a guard refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    /// Kept in the state and tried again on the next nights.
    Defer,
    Drop,
    /// Sent through this channel instead, if that channel's guards allow.
    Reroute(String),
}

impl Then {
    pub fn parse(s: &str) -> Option<Then> {
        match s.trim() {
            "defer" => Some(Then::Defer),
            "drop" => Some(Then::Drop),
            s => s
                .strip_prefix("reroute:")
                .map(|c| Then::Reroute(c.trim().to_owned()))
                .filter(|t| matches!(t, Then::Reroute(c) if !c.is_empty())),
        }
    }
}

/// Events that block channels while they stand.
#[derive(Debug, Clone)]
pub struct EventBlock {
    pub event: EventKind,
    pub notes: Vec<String>,
    pub cleared_by: Vec<String>,
    pub channels: Vec<String>,
    pub then: Then,
}

#[derive(Debug, Clone)]
pub struct Consent {
    /// Channel and the debtor's consent field.
    pub channels: Vec<(String, ConsentField)>,
    pub then: Then,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentField {
    Email,
    Sms,
}

impl ConsentField {
    pub fn parse(s: &str) -> Option<ConsentField> {
        match s {
            "consent_email" => Some(ConsentField::Email),
            "consent_sms" => Some(ConsentField::Sms),
            _ => None,
        }
    }

    fn given(self, d: &Debtor) -> bool {
        match self {
            ConsentField::Email => d.consent_email,
            ConsentField::Sms => d.consent_sms,
        }
    }

    fn column(self) -> &'static str {
        match self {
            ConsentField::Email => "consent_email",
            ConsentField::Sms => "consent_sms",
        }
    }
}

/// Public holidays by country.
pub type Calendars = BTreeMap<String, BTreeMap<NaiveDate, String>>;

#[derive(Debug, Clone)]
pub struct Quiet {
    pub name: String,
    pub weekdays: Vec<Weekday>,
    pub holidays: Option<Calendars>,
    pub channels: Vec<String>,
    pub then: Then,
}

#[derive(Debug, Clone)]
pub struct Cooling {
    pub name: String,
    pub event: EventKind,
    pub notes: Vec<String>,
    pub days: u32,
    pub channels: Vec<String>,
    pub then: Then,
}

#[derive(Debug, Clone)]
pub struct Cap {
    pub name: String,
    pub channels: Vec<String>,
    pub max: u32,
    pub days: u32,
    pub then: Then,
}

#[derive(Debug, Clone)]
pub struct Compliance {
    pub contacts: Vec<String>,
    pub defer_days: u32,
    pub do_not_contact: Option<EventBlock>,
    pub consent: Option<Consent>,
    pub own_contact_only: Option<EventBlock>,
    pub quiet_days: Vec<Quiet>,
    /// Allowed local hours by channel (call, sms).
    pub hours: BTreeMap<String, (NaiveTime, NaiveTime)>,
    pub cooling_off: Vec<Cooling>,
    pub caps: Vec<Cap>,
}

impl Compliance {
    /// What `dunning check` shows: every guard, in the order applied, with
    /// what it does to a refused contact; then the hours.
    pub fn summary(&self, call_hours: Option<(NaiveTime, NaiveTime)>) -> Vec<String> {
        fn then(t: &Then) -> String {
            match t {
                Then::Defer => "defer".into(),
                Then::Drop => "drop".into(),
                Then::Reroute(c) => format!("reroute to {c}"),
            }
        }
        let mut out = Vec::new();
        let block = |name: &str, b: &EventBlock| {
            let notes = if b.notes.is_empty() {
                String::new()
            } else {
                format!(" `{}`", b.notes.join("|"))
            };
            let until = if b.cleared_by.is_empty() {
                String::new()
            } else {
                format!(" until a later `{}`", b.cleared_by.join("|"))
            };
            format!(
                "{name}: {}{notes} stops {}{until} ({})",
                b.event.as_str(),
                b.channels.join(", "),
                then(&b.then)
            )
        };
        if let Some(b) = &self.do_not_contact {
            out.push(block("do_not_contact", b));
        }
        if let Some(k) = &self.consent {
            let list: Vec<String> = k
                .channels
                .iter()
                .map(|(c, f)| format!("{c} needs {}", f.column()))
                .collect();
            out.push(format!("consent: {} ({})", list.join(", "), then(&k.then)));
        }
        if let Some(b) = &self.own_contact_only {
            out.push(block("own_contact_only", b));
        }
        for q in &self.quiet_days {
            let mut what: Vec<String> =
                q.weekdays.iter().map(|d| day_name(*d).to_owned()).collect();
            if let Some(cal) = &q.holidays {
                for (country, days) in cal {
                    let span = match (days.keys().next(), days.keys().last()) {
                        (Some(a), Some(b)) => format!(", {a} to {b}"),
                        _ => String::new(),
                    };
                    what.push(format!(
                        "public holidays of {country} ({} days{span})",
                        days.len()
                    ));
                }
            }
            out.push(format!(
                "quiet_days.{}: {} for {} ({})",
                q.name,
                what.join(", "),
                q.channels.join(", "),
                then(&q.then)
            ));
        }
        for k in &self.cooling_off {
            let notes = if k.notes.is_empty() {
                String::new()
            } else {
                format!(" `{}`", k.notes.join("|"))
            };
            out.push(format!(
                "cooling_off.{}: {} day(s) from a {}{notes} for {} ({})",
                k.name,
                k.days,
                k.event.as_str(),
                k.channels.join(", "),
                then(&k.then)
            ));
        }
        for k in &self.caps {
            out.push(format!(
                "caps.{}: at most {} {} in {} day(s) per debtor ({})",
                k.name,
                k.max,
                k.channels.join("/"),
                k.days,
                then(&k.then)
            ));
        }
        let mut hours = Vec::new();
        if let Some((a, b)) = call_hours.filter(|_| self.hours.contains_key("call")) {
            hours.push(format!("call {}-{}", a.format("%H:%M"), b.format("%H:%M")));
        }
        if let Some((a, b)) = self.hours.get("sms") {
            hours.push(format!("sms {}-{}", a.format("%H:%M"), b.format("%H:%M")));
        }
        if !hours.is_empty() {
            out.push(format!(
                "hours: {} in the debtor's time zone",
                hours.join(", ")
            ));
        }
        out.push(format!(
            "a deferred contact waits at most {} night(s); contacts counted: {}",
            self.defer_days,
            self.contacts.join(", ")
        ));
        out
    }

    /// Calendars that end before the night: their holidays after the last
    /// listed day are unknown, so the night would contact on them.
    pub fn stale_calendars(&self, as_of: NaiveDate) -> Vec<String> {
        let mut out = Vec::new();
        for q in &self.quiet_days {
            for (country, days) in q.holidays.iter().flatten() {
                if let Some(last) = days.keys().last().filter(|l| **l < as_of) {
                    out.push(format!(
                        "compliance.quiet_days.{}: the {country} calendar ends on {last}; add the holidays of the coming years",
                        q.name
                    ));
                }
            }
        }
        out
    }

    /// Every (from channel, to channel) a guard may reroute.
    pub fn reroutes(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut add = |chs: &[String], t: &Then| {
            if let Then::Reroute(to) = t {
                out.extend(chs.iter().map(|c| (c.clone(), to.clone())));
            }
        };
        for b in [&self.do_not_contact, &self.own_contact_only]
            .into_iter()
            .flatten()
        {
            add(&b.channels, &b.then);
        }
        if let Some(k) = &self.consent {
            let chs: Vec<String> = k.channels.iter().map(|(c, _)| c.clone()).collect();
            add(&chs, &k.then);
        }
        for q in &self.quiet_days {
            add(&q.channels, &q.then);
        }
        for k in &self.cooling_off {
            add(&k.channels, &k.then);
        }
        for k in &self.caps {
            add(&k.channels, &k.then);
        }
        out.sort();
        out.dedup();
        out
    }

    /// How many days of contacts the rolling windows look back on.
    pub fn log_days(&self) -> u32 {
        self.caps.iter().map(|c| c.days).max().unwrap_or(0)
    }
}

/// The channels a night can emit, for validation.
pub const CHANNELS: &[&str] = &["email", "letter", "sms", "call", "agency", "legal"];

fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

/// `sun` or `sunday`, any case.
pub fn weekday(s: &str) -> Option<Weekday> {
    let s = s.trim().to_ascii_lowercase();
    [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ]
    .into_iter()
    .find(|d| {
        let full = day_name(*d).to_ascii_lowercase();
        s == full || s == full[..3]
    })
}

/// Reads a calendar folder: one `<COUNTRY>.csv` per country with a header
/// `date,name`. Errors name the file and row.
pub fn read_calendars(dir: &std::path::Path) -> Result<Calendars, String> {
    let mut out = Calendars::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot read the folder: {e}", dir.display()))?;
    let mut files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    for f in files {
        let country = f
            .file_stem()
            .map(|s| s.to_string_lossy().to_ascii_uppercase())
            .unwrap_or_default();
        let shown = crate::policy::display_path(&f);
        let bytes =
            crate::policy::read_side_file(&f).map_err(|e| format!("{shown}: cannot read: {e}"))?;
        let mut rdr = csv::Reader::from_reader(bytes.as_slice());
        let headers = rdr
            .headers()
            .map_err(|e| format!("{shown}: {e}"))?
            .iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        if headers.first().map(String::as_str) != Some("date") {
            return Err(format!(
                "{shown}: row 1: the header must start with `date` (date,name)"
            ));
        }
        let mut days = BTreeMap::new();
        for (i, rec) in rdr.records().enumerate() {
            let row = i + 2;
            let rec = rec.map_err(|e| format!("{shown}: row {row}: {e}"))?;
            let date = rec.get(0).unwrap_or("");
            let d = crate::dates::parse_date(date.trim()).ok_or_else(|| {
                format!("{shown}: row {row}, column date: `{date}` is not a date (YYYY-MM-DD)")
            })?;
            days.insert(d, rec.get(1).unwrap_or("").trim().to_owned());
        }
        out.insert(country, days);
    }
    if out.is_empty() {
        return Err(format!(
            "{}: no <COUNTRY>.csv calendar in it",
            dir.display()
        ));
    }
    Ok(out)
}

/// One file that writes compliance rules: a preset, or the policy itself
/// (whose own section is applied last, over its presets).
pub(crate) struct Layer {
    /// As shown in messages and hashed: relative to the policy folder.
    pub file: String,
    pub text: String,
    /// The folder paths in this file are relative to.
    pub dir: std::path::PathBuf,
    pub doc: ComplianceDoc,
}

/// A problem in one layer: the file, the text to point at, the message.
pub(crate) struct LayerProblem {
    pub layer: usize,
    /// Searched for first (a rule's `name: x`); the needle after it.
    pub anchor: Option<String>,
    pub needle: String,
    pub message: String,
}

/// Files read besides the layers (calendars), for the policy's hash.
pub(crate) struct Read {
    pub file: String,
    pub bytes: Vec<u8>,
}

/// Merges the layers in order (lists appended, a rule of the same name as
/// an earlier one replacing it; single settings of a later layer winning)
/// and checks every value.
pub(crate) fn compile(
    layers: &[Layer],
    known_channels: &[String],
) -> (Option<Compliance>, Vec<LayerProblem>, Vec<Read>) {
    let mut problems = Vec::new();
    let mut reads = Vec::new();
    let mut c = Compliance {
        contacts: ["email", "letter", "sms", "call"]
            .map(str::to_owned)
            .to_vec(),
        defer_days: 14,
        do_not_contact: None,
        consent: None,
        own_contact_only: None,
        quiet_days: Vec::new(),
        hours: BTreeMap::new(),
        cooling_off: Vec::new(),
        caps: Vec::new(),
    };
    for (li, layer) in layers.iter().enumerate() {
        let doc = &layer.doc;
        // Messages name the rule (`compliance.caps.x...`); the rule's
        // `name: x` line anchors the search for the offending text.
        let mut bad = |needle: &str, message: String| {
            let anchor = message
                .strip_prefix("compliance.")
                .and_then(|m| m.split(':').next())
                .and_then(|path| path.split('.').nth(1))
                .map(|rule| format!("name: {rule}"));
            problems.push(LayerProblem {
                layer: li,
                anchor,
                needle: needle.to_owned(),
                message,
            })
        };
        let channels = |list: &[String], at: &str, bad: &mut dyn FnMut(&str, String)| {
            for ch in list {
                if !known_channels.contains(ch) {
                    bad(
                        ch,
                        format!(
                            "{at}: unknown channel `{ch}` (known: {})",
                            known_channels.join(", ")
                        ),
                    );
                }
            }
            list.to_vec()
        };
        let then = |t: &Option<String>,
                    default: Then,
                    at: &str,
                    bad: &mut dyn FnMut(&str, String)| {
            match t {
                None => default,
                Some(s) => match Then::parse(s) {
                    Some(Then::Reroute(ch)) if !known_channels.contains(&ch) => {
                        bad(
                            s,
                            format!("{at}.then: `{s}` reroutes to an unknown channel `{ch}`"),
                        );
                        Then::Drop
                    }
                    Some(t) => t,
                    None => {
                        bad(
                            s,
                            format!("{at}.then: `{s}` must be defer, drop or reroute:<channel>"),
                        );
                        Then::Drop
                    }
                },
            }
        };
        let event = |s: &str, at: &str, bad: &mut dyn FnMut(&str, String)| -> EventKind {
            match s.parse::<EventKind>() {
                Ok(k) => k,
                Err(()) => {
                    bad(
                        s,
                        format!(
                            "{at}.event: unknown event kind `{s}` (known: {})",
                            EventKind::ALL.map(|k| k.as_str()).join(", ")
                        ),
                    );
                    EventKind::ContactOutcome
                }
            }
        };
        if let Some(list) = &doc.contacts {
            c.contacts = channels(list, "compliance.contacts", &mut bad);
        }
        if let Some(d) = doc.defer_days {
            c.defer_days = d;
        }
        let block = |b: &EventBlockDoc, at: &str, bad: &mut dyn FnMut(&str, String)| EventBlock {
            event: event(&b.event, at, bad),
            notes: b.notes.clone(),
            cleared_by: b.cleared_by.clone(),
            channels: b.channels.clone(),
            then: then(&b.then, Then::Drop, at, bad),
        };
        if let Some(b) = &doc.do_not_contact {
            channels(&b.channels, "compliance.do_not_contact.channels", &mut bad);
            c.do_not_contact = Some(block(b, "compliance.do_not_contact", &mut bad));
        }
        if let Some(b) = &doc.own_contact_only {
            channels(
                &b.channels,
                "compliance.own_contact_only.channels",
                &mut bad,
            );
            c.own_contact_only = Some(block(b, "compliance.own_contact_only", &mut bad));
        }
        if let Some(k) = &doc.consent {
            let mut list = c.consent.take().map(|k| k.channels).unwrap_or_default();
            for (ch, field) in &k.channels {
                channels(
                    std::slice::from_ref(ch),
                    "compliance.consent.channels",
                    &mut bad,
                );
                match ConsentField::parse(field) {
                    Some(f) => {
                        list.retain(|(x, _)| x != ch);
                        list.push((ch.clone(), f));
                    }
                    None => bad(
                        field,
                        format!("compliance.consent.channels.{ch}: `{field}` is not a consent column (consent_email, consent_sms)"),
                    ),
                }
            }
            c.consent = Some(Consent {
                channels: list,
                then: then(&k.then, Then::Drop, "compliance.consent", &mut bad),
            });
        }
        for q in &doc.quiet_days {
            let at = format!("compliance.quiet_days.{}", q.name);
            channels(&q.channels, &at, &mut bad);
            let mut weekdays = Vec::new();
            for w in &q.weekdays {
                match weekday(w) {
                    Some(d) => weekdays.push(d),
                    None => bad(
                        w,
                        format!(
                            "{at}.weekdays: `{w}` is not a day of the week (mon, tue, ..., sun)"
                        ),
                    ),
                }
            }
            let holidays = q.holidays.as_ref().and_then(|h| {
                let dir = layer.dir.join(h);
                match read_calendars(&dir) {
                    Ok(cal) => {
                        let shown = std::path::Path::new(&layer.file)
                            .parent()
                            .map(|p| p.join(h))
                            .unwrap_or_else(|| h.into());
                        for country in cal.keys() {
                            let name = format!("{country}.csv");
                            let f = dir.join(&name);
                            if let Ok(bytes) = std::fs::read(&f) {
                                reads.push(Read {
                                    file: crate::policy::display_path(&shown.join(&name)),
                                    bytes,
                                });
                            }
                        }
                        Some(cal)
                    }
                    Err(e) => {
                        bad(h, format!("{at}.holidays: {e}"));
                        None
                    }
                }
            });
            if q.weekdays.is_empty() && q.holidays.is_none() {
                bad(&q.name, format!("{at}: needs weekdays or holidays"));
            }
            let rule = Quiet {
                name: q.name.clone(),
                weekdays,
                holidays,
                channels: q.channels.clone(),
                then: then(&q.then, Then::Defer, &at, &mut bad),
            };
            c.quiet_days.retain(|x| x.name != rule.name);
            c.quiet_days.push(rule);
        }
        for (ch, h) in &doc.hours {
            if ch != "call" && ch != "sms" {
                bad(ch, format!("compliance.hours.{ch}: allowed hours shape call and SMS windows; `{ch}` is not call or sms"));
                continue;
            }
            match crate::render::parse_hours(h) {
                Some(w) => {
                    c.hours.insert(ch.clone(), w);
                }
                None => bad(
                    h,
                    format!("compliance.hours.{ch}: `{h}` is not a window such as \"08:00-20:00\""),
                ),
            }
        }
        for k in &doc.cooling_off {
            let at = format!("compliance.cooling_off.{}", k.name);
            channels(&k.channels, &at, &mut bad);
            if k.days == 0 {
                bad(&k.name, format!("{at}.days: must be at least 1"));
            }
            let rule = Cooling {
                name: k.name.clone(),
                event: event(&k.event, &at, &mut bad),
                notes: k.notes.clone(),
                days: k.days,
                channels: k.channels.clone(),
                then: then(&k.then, Then::Defer, &at, &mut bad),
            };
            c.cooling_off.retain(|x| x.name != rule.name);
            c.cooling_off.push(rule);
        }
        for k in &doc.caps {
            let at = format!("compliance.caps.{}", k.name);
            channels(&k.channels, &at, &mut bad);
            if k.days == 0 {
                bad(&k.name, format!("{at}.days: must be at least 1"));
            }
            let rule = Cap {
                name: k.name.clone(),
                channels: k.channels.clone(),
                max: k.max,
                days: k.days,
                then: then(&k.then, Then::Defer, &at, &mut bad),
            };
            c.caps.retain(|x| x.name != rule.name);
            c.caps.push(rule);
        }
    }
    // A reroute chain must end: from each channel, follow the reroutes; a
    // channel met again is a loop.
    let edges = c.reroutes();
    for (from, _) in &edges {
        let mut seen = vec![from.clone()];
        let mut frontier = vec![from.clone()];
        while let Some(ch) = frontier.pop() {
            for (_, to) in edges.iter().filter(|(f, _)| *f == ch) {
                if to == from {
                    problems.push(LayerProblem {
                        layer: layers.len().saturating_sub(1),
                        anchor: None,
                        needle: format!("reroute:{to}"),
                        message: format!(
                            "compliance: reroutes go round in a circle through `{from}` ({} -> {from}); one of them must defer or drop",
                            seen.join(" -> ")
                        ),
                    });
                    return (Some(c), problems, reads);
                }
                if !seen.contains(to) {
                    seen.push(to.clone());
                    frontier.push(to.clone());
                }
            }
        }
    }
    (Some(c), problems, reads)
}

// ---------------------------------------------------------------------------
// What the state keeps.

/// One contact made on a night, for the rolling windows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Contact {
    pub on: NaiveDate,
    pub channel: String,
    pub currency: String,
    pub template: String,
}

/// Contacts by debtor, oldest first.
pub type Log = HashMap<String, Vec<Contact>>;

/// An action a guard deferred, waiting in the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferred {
    pub action: Action,
    /// The night it was first wanted.
    pub since: NaiveDate,
    pub guard: String,
}

impl Deferred {
    /// `sms:second_notice@2026-01-04@quiet_days.sunday|...`
    pub fn encode(list: &[Deferred]) -> String {
        list.iter()
            .map(|d| format!("{}@{}@{}", d.action, d.since, d.guard))
            .collect::<Vec<_>>()
            .join("|")
    }

    pub fn decode(s: &str) -> Option<Vec<Deferred>> {
        if s.is_empty() {
            return Some(Vec::new());
        }
        s.split('|')
            .map(|part| {
                let mut it = part.splitn(3, '@');
                let (channel, template) = it.next()?.split_once(':')?;
                Some(Deferred {
                    action: Action {
                        channel: channel.into(),
                        template: template.into(),
                    },
                    since: crate::dates::parse_date(it.next()?)?,
                    guard: it.next().unwrap_or("").to_owned(),
                })
            })
            .collect()
    }
}

/// The contacts log the state keeps after tonight: the old one trimmed to
/// the windows' length, and tonight's contacts.
pub fn log_after(
    policies: &[&Policy],
    before: &Log,
    decisions: &[Decision],
    as_of: NaiveDate,
) -> Log {
    let days = policies
        .iter()
        .filter_map(|p| p.compliance.as_ref())
        .map(Compliance::log_days)
        .max()
        .unwrap_or(0);
    let keep = |c: &Contact| (as_of - c.on).num_days() < i64::from(days);
    let mut out: Log = HashMap::new();
    for (debtor, list) in before {
        let kept: Vec<Contact> = list.iter().filter(|c| keep(c)).cloned().collect();
        if !kept.is_empty() {
            out.insert(debtor.clone(), kept);
        }
    }
    if days == 0 {
        return out;
    }
    for d in decisions {
        let Some(c) = policy_of(policies, d).compliance.as_ref() else {
            continue;
        };
        for a in &d.actions {
            if c.contacts.iter().any(|k| *k == a.channel) {
                out.entry(d.account.debtor_id.to_string())
                    .or_default()
                    .push(Contact {
                        on: as_of,
                        channel: a.channel.to_string(),
                        currency: d.account.currency.to_string(),
                        template: a.template.to_string(),
                    });
            }
        }
    }
    for list in out.values_mut() {
        list.sort();
    }
    out
}

/// `contacts.csv` of the state: sorted by debtor, date, channel.
pub fn log_csv(log: &Log) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["debtor_id", "on", "channel", "currency", "template"])
        .expect("in memory");
    let mut debtors: Vec<&String> = log.keys().collect();
    debtors.sort();
    for d in debtors {
        for c in &log[d] {
            w.write_record([
                d.as_str(),
                &c.on.to_string(),
                &c.channel,
                &c.currency,
                &c.template,
            ])
            .expect("in memory");
        }
    }
    w.into_inner().expect("in memory")
}

/// Reads `contacts.csv`; the error names the row.
pub fn read_log(bytes: &[u8]) -> Result<Log, String> {
    let mut rdr = csv::Reader::from_reader(bytes);
    let mut out: Log = HashMap::new();
    for (i, rec) in rdr.records().enumerate() {
        let row = i + 2;
        let rec = rec.map_err(|e| format!("row {row}: {e}"))?;
        let get = |k: usize| rec.get(k).unwrap_or("");
        let on = crate::dates::parse_date(get(1))
            .ok_or_else(|| format!("row {row}: bad date `{}`", get(1)))?;
        out.entry(get(0).to_owned()).or_default().push(Contact {
            on,
            channel: get(2).to_owned(),
            currency: get(3).to_owned(),
            template: get(4).to_owned(),
        });
    }
    Ok(out)
}

fn policy_of<'p>(policies: &[&'p Policy], d: &Decision) -> &'p Policy {
    policies[usize::from(d.strategy).min(policies.len() - 1)]
}

// ---------------------------------------------------------------------------
// The guards.

/// A guard's refusal.
struct Refusal {
    guard: String,
    then: Then,
    why: String,
}

fn note_matches(e: &Event, notes: &[String]) -> bool {
    notes.is_empty() || notes.iter().any(|n| n.eq_ignore_ascii_case(&e.note))
}

/// The event that makes `block` stand on `as_of`, if any: the latest
/// matching event on or before the night, unless a later event of the same
/// kind carries a clearing note.
fn standing<'e>(block: &EventBlock, events: &[&'e Event], as_of: NaiveDate) -> Option<&'e Event> {
    let mut latest: Option<&Event> = None;
    let mut cleared: Option<NaiveDate> = None;
    for e in events {
        if e.kind != block.event || e.date > as_of {
            continue;
        }
        if !block.cleared_by.is_empty()
            && block
                .cleared_by
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&e.note))
        {
            cleared = cleared.max(Some(e.date));
        } else if note_matches(e, &block.notes) && latest.is_none_or(|l| e.date >= l.date) {
            latest = Some(e);
        }
    }
    latest.filter(|l| cleared.is_none_or(|c| c < l.date))
}

/// What one debtor's guards look at tonight.
struct Who<'a> {
    debtor: Option<&'a Debtor>,
    country: String,
    events: &'a [&'a Event],
    /// Contacts of earlier nights, then tonight's as they are made.
    log: Vec<Contact>,
}

fn check(c: &Compliance, who: &Who<'_>, channel: &str, as_of: NaiveDate) -> Option<Refusal> {
    if let Some(b) = &c.do_not_contact {
        if b.channels.iter().any(|x| x == channel) {
            if let Some(e) = standing(b, who.events, as_of) {
                return Some(Refusal {
                    guard: "do_not_contact".into(),
                    then: b.then.clone(),
                    why: format!(
                        "{} event of {} (events row {})",
                        e.kind.as_str(),
                        e.date,
                        e.row
                    ),
                });
            }
        }
    }
    if let (Some(k), Some(d)) = (&c.consent, who.debtor) {
        if let Some((_, field)) = k.channels.iter().find(|(x, _)| x == channel) {
            if !field.given(d) {
                return Some(Refusal {
                    guard: "consent".into(),
                    then: k.then.clone(),
                    why: format!("{} is false", field.column()),
                });
            }
        }
    }
    if let Some(b) = &c.own_contact_only {
        if b.channels.iter().any(|x| x == channel) {
            if let Some(e) = standing(b, who.events, as_of) {
                return Some(Refusal {
                    guard: "own_contact_only".into(),
                    then: b.then.clone(),
                    why: format!(
                        "{} `{}` of {} (events row {}): not the debtor's own contact",
                        e.kind.as_str(),
                        e.note,
                        e.date,
                        e.row
                    ),
                });
            }
        }
    }
    for q in &c.quiet_days {
        if !q.channels.iter().any(|x| x == channel) {
            continue;
        }
        if q.weekdays.contains(&as_of.weekday()) {
            return Some(Refusal {
                guard: format!("quiet_days.{}", q.name),
                then: q.then.clone(),
                why: format!("{as_of} is a {}", day_name(as_of.weekday())),
            });
        }
        if let Some(name) = q
            .holidays
            .as_ref()
            .and_then(|cal| cal.get(&who.country))
            .and_then(|days| days.get(&as_of))
        {
            return Some(Refusal {
                guard: format!("quiet_days.{}", q.name),
                then: q.then.clone(),
                why: format!("{as_of} is a public holiday in {} ({name})", who.country),
            });
        }
    }
    for k in &c.cooling_off {
        if !k.channels.iter().any(|x| x == channel) {
            continue;
        }
        let hit = who
            .events
            .iter()
            .filter(|e| e.kind == k.event && e.date <= as_of && note_matches(e, &k.notes))
            .filter(|e| (as_of - e.date).num_days() < i64::from(k.days))
            .max_by_key(|e| e.date);
        if let Some(e) = hit {
            return Some(Refusal {
                guard: format!("cooling_off.{}", k.name),
                then: k.then.clone(),
                why: format!(
                    "{} `{}` of {} (events row {}), {} days",
                    e.kind.as_str(),
                    e.note,
                    e.date,
                    e.row,
                    k.days
                ),
            });
        }
    }
    for cap in &c.caps {
        if !cap.channels.iter().any(|x| x == channel) {
            continue;
        }
        let used = who
            .log
            .iter()
            .filter(|x| cap.channels.contains(&x.channel))
            .filter(|x| x.on <= as_of && (as_of - x.on).num_days() < i64::from(cap.days))
            .count();
        if used >= cap.max as usize {
            return Some(Refusal {
                guard: format!("caps.{}", cap.name),
                then: cap.then.clone(),
                why: format!(
                    "{used} {} in the last {} day(s), at most {}",
                    cap.channels.join("/"),
                    cap.days,
                    cap.max
                ),
            });
        }
    }
    None
}

/// Applies the compliance guards to every decision, debtor by debtor (the
/// caps count a debtor's contacts across all of its accounts), in
/// decision order. Decisions are sorted by debtor, so a debtor's accounts
/// stand together.
pub fn apply(
    policies: &[&Policy],
    decisions: &mut [Decision],
    debtors: &crate::ingest::Debtors,
    events: &[Event],
    as_of: NaiveDate,
    log: &Log,
) {
    if policies.iter().all(|p| p.compliance.is_none()) {
        // Actions deferred under a policy that has since lost its
        // compliance section are not kept forever.
        for d in decisions.iter_mut() {
            d.after.deferred.clear();
        }
        return;
    }
    let mut by_debtor: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in events {
        by_debtor.entry(e.debtor_id.as_str()).or_default().push(e);
    }
    let no_events: Vec<&Event> = Vec::new();
    let mut start = 0;
    while start < decisions.len() {
        let id = decisions[start].account.debtor_id.clone();
        let end = start
            + decisions[start..]
                .iter()
                .take_while(|d| d.account.debtor_id == id)
                .count();
        let debtor = debtors.get(&id);
        let mut who = Who {
            debtor,
            country: String::new(),
            events: by_debtor.get(id.as_str()).unwrap_or(&no_events),
            log: log.get(id.as_str()).cloned().unwrap_or_default(),
        };
        for d in &mut decisions[start..end] {
            let p = policy_of(policies, d);
            let Some(c) = &p.compliance else {
                continue;
            };
            who.country = debtor
                .map(|x| x.country().trim().to_ascii_uppercase())
                .filter(|x| !x.is_empty())
                .unwrap_or_else(|| p.messages.default_country.to_ascii_uppercase());
            account(c, d, &mut who, as_of);
        }
        start = end;
    }
}

/// One account: tonight's actions and those waiting from earlier nights
/// through the guards.
fn account(c: &Compliance, d: &mut Decision, who: &mut Who<'_>, as_of: NaiveDate) {
    let waiting = std::mem::take(&mut d.after.deferred);
    let mut notes = Vec::new();
    if matches!(d.outcome, Outcome::Cure | Outcome::Hold) {
        for w in &waiting {
            notes.push(format!(
                "{} deferred since {} cancelled ({})",
                w.action,
                w.since,
                d.outcome.as_str()
            ));
        }
        finish(d, notes);
        return;
    }
    let wanted: Vec<(Action, NaiveDate, bool)> = waiting
        .into_iter()
        .map(|w| (w.action, w.since, true))
        .chain(
            std::mem::take(&mut d.actions)
                .into_iter()
                .map(|a| (a, as_of, false)),
        )
        .collect();
    let mut deferred: Vec<Deferred> = Vec::new();
    for (action, since, was_deferred) in wanted {
        if was_deferred && (as_of - since).num_days() >= i64::from(c.defer_days) {
            notes.push(format!(
                "{action} deferred since {since} dropped: more than defer_days {}",
                c.defer_days
            ));
            continue;
        }
        // A contact deferred on an earlier night went through the channel
        // rules then; the debtor's data may have changed since (an address
        // removed, a bounce): it is only sent if it can still be delivered.
        if was_deferred {
            if let Some(why) = undeliverable(&action.channel, who.debtor) {
                notes.push(format!("{action} deferred since {since} dropped: {why}"));
                continue;
            }
        }
        let mut a = action.clone();
        // A reroute is tried through the guards again; the bound stops a
        // loop of reroutes (the loader refuses circular ones too).
        for _ in 0..=CHANNELS.len() {
            // A reroute's channel was not checked by the channel rules.
            if a != action {
                if let Some(why) = undeliverable(&a.channel, who.debtor) {
                    notes.push(format!("{a} dropped: {why}"));
                    break;
                }
            }
            if !c.contacts.iter().any(|k| *k == a.channel) {
                emit(d, who, &a, c, as_of, was_deferred, since, &mut notes);
                break;
            }
            match check(c, who, &a.channel, as_of) {
                None => {
                    emit(d, who, &a, c, as_of, was_deferred, since, &mut notes);
                    break;
                }
                Some(r) => match &r.then {
                    Then::Defer => {
                        if !deferred.iter().any(|x| x.action == a) {
                            deferred.push(Deferred {
                                action: a.clone(),
                                since,
                                guard: r.guard.clone(),
                            });
                        }
                        notes.push(format!("{a} deferred (compliance.{}: {})", r.guard, r.why));
                        break;
                    }
                    Then::Drop => {
                        notes.push(format!("{a} dropped (compliance.{}: {})", r.guard, r.why));
                        break;
                    }
                    Then::Reroute(ch) => {
                        let next = Action {
                            channel: ch.as_str().into(),
                            template: a.template.clone(),
                        };
                        notes.push(format!("{a} -> {next} (compliance.{}: {})", r.guard, r.why));
                        a = next;
                    }
                },
            }
        }
    }
    d.after.deferred = deferred.into();
    finish(d, notes);
}

/// Why a channel cannot reach this debtor any more, if it cannot.
fn undeliverable(channel: &str, debtor: Option<&Debtor>) -> Option<&'static str> {
    let d = debtor?;
    match channel {
        "email" if !d.email_ok || d.email_bounced => Some("no usable e-mail address"),
        "sms" | "call" if d.phone_e164().is_none() => Some("no usable phone number"),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn emit(
    d: &mut Decision,
    who: &mut Who<'_>,
    a: &Action,
    c: &Compliance,
    as_of: NaiveDate,
    was_deferred: bool,
    since: NaiveDate,
    notes: &mut Vec<String>,
) {
    if d.actions.contains(a) {
        return;
    }
    if was_deferred {
        notes.push(format!("{a} deferred since {since} sent tonight"));
    }
    d.actions.push(a.clone());
    if c.contacts.iter().any(|k| *k == a.channel) {
        who.log.push(Contact {
            on: as_of,
            channel: a.channel.to_string(),
            currency: d.account.currency.to_string(),
            template: a.template.to_string(),
        });
    }
}

fn finish(d: &mut Decision, notes: Vec<String>) {
    if notes.is_empty() {
        return;
    }
    let text = notes.join("; ");
    if d.reason.is_empty() {
        d.reason = text.as_str().into();
    } else {
        d.reason.push_str("; ");
        d.reason.push_str(&text);
    }
    if let Some(t) = d.trace.as_mut() {
        t.compliance = notes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_actions_round_trip_through_the_state() {
        let list = vec![
            Deferred {
                action: Action {
                    channel: "call".into(),
                    template: "collect".into(),
                },
                since: crate::dates::parse_date("2026-01-04").unwrap(),
                guard: "caps.calls_7_in_7".into(),
            },
            Deferred {
                action: Action {
                    channel: "sms".into(),
                    template: "second_notice".into(),
                },
                since: crate::dates::parse_date("2026-01-05").unwrap(),
                guard: "quiet_days.sunday".into(),
            },
        ];
        let s = Deferred::encode(&list);
        assert_eq!(Deferred::decode(&s), Some(list));
        assert_eq!(Deferred::decode(""), Some(vec![]));
        assert_eq!(Deferred::decode("nonsense"), None);
    }

    #[test]
    fn then_parses_every_form() {
        assert_eq!(Then::parse("defer"), Some(Then::Defer));
        assert_eq!(Then::parse("drop"), Some(Then::Drop));
        assert_eq!(
            Then::parse("reroute:letter"),
            Some(Then::Reroute("letter".into()))
        );
        assert_eq!(Then::parse("reroute:"), None);
        assert_eq!(Then::parse("later"), None);
    }

    #[test]
    fn weekdays_read_in_english() {
        assert_eq!(weekday("Sunday"), Some(Weekday::Sun));
        assert_eq!(weekday("sat"), Some(Weekday::Sat));
        assert_eq!(weekday("dimanche"), None);
        assert_eq!(weekday("sundae"), None);
    }
}
