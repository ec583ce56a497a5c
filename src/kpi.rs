//! KPIs: how the collections strategy performs across nights. Each night
//! leaves in its state folder what tomorrow's figures need: `kpis.csv`,
//! tonight's level transitions aggregated per strategy, currency and level
//! (accounts, overdue before and after, amount recovered), with the
//! promises to pay whose date fell since the last night (kept or broken);
//! and `promises.csv`, the promises still running. `dunning report` reads
//! them back over a range of nights: cure and roll rates per level, amounts
//! recovered after each level, promises kept and broken, per strategy, as
//! CSV and as an HTML page with time-series charts.

use crate::decide::{Decision, Outcome};
use crate::history::Prior;
use crate::ingest::{Event, EventKind};
use crate::money::{format_cents, Cents};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const NIGHT_COLUMNS: &[&str] = &[
    "strategy",
    "currency",
    "level_before",
    "outcome",
    "level_after",
    "accounts",
    "overdue_before",
    "overdue_after",
    "recovered",
];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Sums {
    accounts: u64,
    before: Cents,
    after: Cents,
    recovered: Cents,
}

/// A promise to pay being watched: kept when, on the first night after its
/// `until`, the debtor's overdue amount (all accounts) is at most the
/// amount when the promise was first seen less the amount promised (all of
/// it when the promise names no amount).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Promise {
    pub debtor_id: String,
    pub date: NaiveDate,
    pub until: NaiveDate,
    pub amount: Option<Cents>,
    pub overdue_then: Cents,
    pub strategy: String,
}

pub const PROMISE_COLUMNS: &[&str] = &[
    "debtor_id",
    "date",
    "until",
    "amount",
    "overdue_then",
    "strategy",
];

pub fn promises_csv(list: &[Promise]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(PROMISE_COLUMNS).expect("in memory");
    for p in list {
        w.write_record([
            p.debtor_id.as_str(),
            &p.date.to_string(),
            &p.until.to_string(),
            &p.amount.map(format_cents).unwrap_or_default(),
            &format_cents(p.overdue_then),
            &p.strategy,
        ])
        .expect("in memory");
    }
    w.into_inner().expect("in memory")
}

fn cents(s: &str) -> Option<Cents> {
    Decimal::from_str_exact(s.trim())
        .ok()
        .and_then(crate::money::decimal_to_cents)
}

pub fn read_promises(bytes: &[u8]) -> Result<Vec<Promise>, String> {
    let mut rdr = csv::Reader::from_reader(bytes);
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let row = i + 2;
        let rec = rec.map_err(|e| format!("row {row}: {e}"))?;
        let get = |k: usize| rec.get(k).unwrap_or("");
        let date = |k: usize| {
            crate::dates::parse_date(get(k))
                .ok_or_else(|| format!("row {row}: bad date `{}`", get(k)))
        };
        out.push(Promise {
            debtor_id: get(0).to_owned(),
            date: date(1)?,
            until: date(2)?,
            amount: if get(3).is_empty() {
                None
            } else {
                Some(cents(get(3)).ok_or_else(|| format!("row {row}: bad amount"))?)
            },
            overdue_then: cents(get(4)).ok_or_else(|| format!("row {row}: bad amount"))?,
            strategy: get(5).to_owned(),
        });
    }
    Ok(out)
}

/// Tonight's KPI rows (`kpis.csv` of the night's state folder) and the
/// promises still running after tonight.
pub fn night(
    decisions: &[Decision],
    priors: &HashMap<(String, String), Prior>,
    events: &[Event],
    watched: &[Promise],
    as_of: NaiveDate,
) -> (Vec<u8>, Vec<Promise>) {
    // Borrowed keys: a million accounts make a few hundred rows.
    let mut rows: BTreeMap<(&str, &str, u32, &str, u32), Sums> = BTreeMap::new();
    // Overdue totals are needed only for the debtors with a promise.
    let mut overdue_of: HashMap<&str, Cents> = watched
        .iter()
        .map(|p| (p.debtor_id.as_str(), 0))
        .chain(
            events
                .iter()
                .filter(|e| e.kind == EventKind::PromiseToPay)
                .map(|e| (e.debtor_id.as_str(), 0)),
        )
        .collect();
    let mut strategy_of: HashMap<&str, &str> = HashMap::new();
    let mut key = (String::new(), String::new());
    for d in decisions {
        let a = &d.account;
        key.0.clear();
        key.0.push_str(&a.debtor_id);
        key.1.clear();
        key.1.push_str(&a.currency);
        let prior = priors.get(&key);
        let before = prior.map_or(0, |p| p.overdue);
        let s = rows
            .entry((
                d.strategy_name(),
                a.currency.as_str(),
                d.level_before,
                d.outcome.as_str(),
                d.level_after,
            ))
            .or_default();
        s.accounts += 1;
        s.before += before;
        s.after += a.overdue;
        if prior.is_some() {
            s.recovered += (before - a.overdue).max(0);
        }
        if let Some(o) = overdue_of.get_mut(a.debtor_id.as_str()) {
            *o += a.overdue;
            strategy_of.insert(a.debtor_id.as_str(), d.strategy_name());
        }
    }
    // Promises whose date has passed: kept or broken, once.
    let mut promise_rows: BTreeMap<(String, &str), u64> = BTreeMap::new();
    let mut still = Vec::new();
    for p in watched {
        if p.until >= as_of {
            still.push(p.clone());
            continue;
        }
        let now = overdue_of.get(p.debtor_id.as_str()).copied().unwrap_or(0);
        let target = (p.overdue_then - p.amount.unwrap_or(p.overdue_then)).max(0);
        let verdict = if now <= target {
            "promise_kept"
        } else {
            "promise_broken"
        };
        *promise_rows
            .entry((p.strategy.clone(), verdict))
            .or_default() += 1;
    }
    // New promises: seen for the first time tonight, still running.
    type PromiseKey<'k> = (&'k str, NaiveDate, NaiveDate, Option<Cents>);
    let mut known: std::collections::HashSet<PromiseKey<'_>> = watched
        .iter()
        .map(|w| (w.debtor_id.as_str(), w.date, w.until, w.amount))
        .collect();
    for e in events {
        if e.kind != EventKind::PromiseToPay || e.date > as_of {
            continue;
        }
        let Some(until) = e.until.filter(|u| *u >= as_of) else {
            continue;
        };
        if !known.insert((e.debtor_id.as_str(), e.date, until, e.amount)) {
            continue;
        }
        still.push(Promise {
            debtor_id: e.debtor_id.clone(),
            date: e.date,
            until,
            amount: e.amount,
            overdue_then: overdue_of.get(e.debtor_id.as_str()).copied().unwrap_or(0),
            strategy: strategy_of
                .get(e.debtor_id.as_str())
                .copied()
                .unwrap_or("champion")
                .to_owned(),
        });
    }
    still.sort();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(NIGHT_COLUMNS).expect("in memory");
    for ((strategy, currency, from, outcome, to), s) in &rows {
        w.write_record([
            *strategy,
            currency,
            &from.to_string(),
            outcome,
            &to.to_string(),
            &s.accounts.to_string(),
            &format_cents(s.before),
            &format_cents(s.after),
            &format_cents(s.recovered),
        ])
        .expect("in memory");
    }
    for ((strategy, verdict), n) in &promise_rows {
        w.write_record([
            strategy.as_str(),
            "",
            "",
            verdict,
            "",
            &n.to_string(),
            "",
            "",
            "",
        ])
        .expect("in memory");
    }
    (w.into_inner().expect("in memory"), still)
}

// ---------------------------------------------------------------------------
// `dunning report`: the figures across nights.

/// One strategy's figures for one level over one night.
#[derive(Debug, Default, Clone, Serialize)]
pub struct LevelNight {
    pub night: String,
    pub strategy: String,
    pub level: u32,
    /// Accounts that stood at this level before the night.
    pub accounts: u64,
    pub cured: u64,
    pub rolled: u64,
    /// Recovered from accounts at this level, per currency.
    pub recovered: BTreeMap<String, Cents>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct PromiseNight {
    pub night: String,
    pub strategy: String,
    pub kept: u64,
    pub broken: u64,
}

#[derive(Debug, Default)]
pub struct Kpis {
    pub nights: Vec<String>,
    pub levels: Vec<LevelNight>,
    pub promises: Vec<PromiseNight>,
    /// Committed nights in range without KPIs (run by an older engine).
    pub missing: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: row {row}: {message}")]
pub struct KpiError {
    pub path: String,
    pub row: usize,
    pub message: String,
}

/// Reads the KPIs of the committed nights from `from` to `to` (included).
pub fn read(
    state: &crate::state::Reader,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> anyhow::Result<Kpis> {
    let mut k = Kpis::default();
    for night in state.nights()? {
        if from.is_some_and(|f| night < f) || to.is_some_and(|t| night > t) {
            continue;
        }
        let Some((path, bytes)) = state.kpis(night)? else {
            k.missing.push(night.to_string());
            continue;
        };
        k.nights.push(night.to_string());
        let mut levels: BTreeMap<(String, u32), LevelNight> = BTreeMap::new();
        let mut promises: BTreeMap<String, PromiseNight> = BTreeMap::new();
        let mut rdr = csv::Reader::from_reader(bytes.as_slice());
        for (i, rec) in rdr.records().enumerate() {
            let bad = |message: String| KpiError {
                path: path.clone(),
                row: i + 2,
                message,
            };
            let rec = rec.map_err(|e| bad(e.to_string()))?;
            let get = |c: usize| rec.get(c).unwrap_or("");
            let strategy = get(0).to_owned();
            let n: u64 = get(5)
                .parse()
                .map_err(|_| bad("bad account count".into()))?;
            match get(3) {
                "promise_kept" | "promise_broken" => {
                    let p = promises.entry(strategy.clone()).or_insert(PromiseNight {
                        night: night.to_string(),
                        strategy,
                        ..Default::default()
                    });
                    if get(3) == "promise_kept" {
                        p.kept += n;
                    } else {
                        p.broken += n;
                    }
                }
                outcome => {
                    let from: u32 = get(2).parse().map_err(|_| bad("bad level".into()))?;
                    let to: u32 = get(4).parse().map_err(|_| bad("bad level".into()))?;
                    if from == 0 {
                        continue;
                    }
                    let recovered = cents(get(8)).ok_or_else(|| bad("bad amount".into()))?;
                    let l = levels
                        .entry((strategy.clone(), from))
                        .or_insert(LevelNight {
                            night: night.to_string(),
                            strategy,
                            level: from,
                            ..Default::default()
                        });
                    l.accounts += n;
                    if outcome == Outcome::Cure.as_str() {
                        l.cured += n;
                    }
                    if to > from {
                        l.rolled += n;
                    }
                    *l.recovered.entry(get(1).to_owned()).or_default() += recovered;
                }
            }
        }
        k.levels.extend(levels.into_values());
        k.promises.extend(promises.into_values());
    }
    Ok(k)
}

fn rate(n: u64, of: u64) -> String {
    // Percent with one decimal, computed exactly; empty when nothing stood
    // at the level.
    (n * 1000 + of / 2)
        .checked_div(of)
        .map(|tenths| format!("{}.{}", tenths / 10, tenths % 10))
        .unwrap_or_default()
}

/// `kpis.csv`: one row per night, strategy and level; and the promises.
pub fn to_csv(k: &Kpis) -> (Vec<u8>, Vec<u8>) {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "night",
        "strategy",
        "level",
        "accounts",
        "cured",
        "rolled",
        "cure_rate_percent",
        "roll_rate_percent",
        "currency",
        "recovered",
    ])
    .expect("in memory");
    for l in &k.levels {
        let currencies: Vec<(&String, &Cents)> = l.recovered.iter().collect();
        let list: Vec<(String, String)> = if currencies.is_empty() {
            vec![(String::new(), String::new())]
        } else {
            currencies
                .into_iter()
                .map(|(c, v)| (c.clone(), format_cents(*v)))
                .collect()
        };
        for (cur, rec) in list {
            w.write_record([
                l.night.as_str(),
                &l.strategy,
                &l.level.to_string(),
                &l.accounts.to_string(),
                &l.cured.to_string(),
                &l.rolled.to_string(),
                &rate(l.cured, l.accounts),
                &rate(l.rolled, l.accounts),
                &cur,
                &rec,
            ])
            .expect("in memory");
        }
    }
    let levels = w.into_inner().expect("in memory");
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["night", "strategy", "kept", "broken", "kept_percent"])
        .expect("in memory");
    for p in &k.promises {
        w.write_record([
            p.night.as_str(),
            &p.strategy,
            &p.kept.to_string(),
            &p.broken.to_string(),
            &rate(p.kept, p.kept + p.broken),
        ])
        .expect("in memory");
    }
    (levels, w.into_inner().expect("in memory"))
}

/// A line chart: one line per series, x the nights, y 0..`max`.
fn chart(
    title: &str,
    nights: &[String],
    series: &[(String, Vec<Option<f64>>)],
    max: f64,
    unit: &str,
) -> String {
    const W: f64 = 640.0;
    const H: f64 = 220.0;
    const PAD: f64 = 36.0;
    const COLORS: [&str; 8] = [
        "#2f6fb3", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#2c3e50",
    ];
    let max = if max > 0.0 { max } else { 1.0 };
    let x = |i: usize| {
        if nights.len() <= 1 {
            PAD + (W - 2.0 * PAD) / 2.0
        } else {
            PAD + (W - 2.0 * PAD) * i as f64 / (nights.len() - 1) as f64
        }
    };
    let y = |v: f64| H - PAD - (H - 2.0 * PAD) * (v / max);
    let mut s = format!(
        "<figure><figcaption>{}</figcaption><svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(title)
    );
    s.push_str(&format!(
        "<line x1=\"{PAD}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"axis\"/><line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{}\" class=\"axis\"/>",
        H - PAD,
        W - PAD,
        H - PAD,
        H - PAD
    ));
    s.push_str(&format!(
        "<text x=\"4\" y=\"{}\" class=\"tick\">{}{unit}</text><text x=\"4\" y=\"{}\" class=\"tick\">0</text>",
        PAD + 4.0,
        trim_num(max),
        H - PAD + 4.0
    ));
    if let (Some(first), Some(last)) = (nights.first(), nights.last()) {
        s.push_str(&format!(
            "<text x=\"{PAD}\" y=\"{}\" class=\"tick\">{}</text><text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"end\">{}</text>",
            H - 8.0,
            esc(first),
            W - PAD,
            H - 8.0,
            esc(last)
        ));
    }
    for (k, (name, values)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
            .collect();
        if points.len() > 1 {
            s.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
                points.join(" ")
            ));
        }
        for p in &points {
            let (px, py) = p.split_once(',').expect("x,y");
            s.push_str(&format!(
                "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{color}\"/>"
            ));
        }
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" class=\"legend\" fill=\"{color}\">{}</text>",
            PAD + 8.0 + 110.0 * (k % 5) as f64,
            14.0 + 14.0 * (k / 5) as f64,
            esc(name)
        ));
    }
    s.push_str("</svg></figure>\n");
    s
}

fn trim_num(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `kpis.html`: per strategy, cure and roll rates per level and amounts
/// recovered per level over the nights, and promises kept and broken.
pub fn to_html(k: &Kpis) -> Vec<u8> {
    let mut strategies: Vec<&str> = k.levels.iter().map(|l| l.strategy.as_str()).collect();
    strategies.extend(k.promises.iter().map(|p| p.strategy.as_str()));
    strategies.sort();
    strategies.dedup();
    let mut body = String::new();
    let idx: HashMap<&str, usize> = k
        .nights
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    for st in &strategies {
        body.push_str(&format!("<section><h2>Strategy: {}</h2>\n", esc(st)));
        let mut levels: Vec<u32> = k
            .levels
            .iter()
            .filter(|l| l.strategy == *st)
            .map(|l| l.level)
            .collect();
        levels.sort();
        levels.dedup();
        let series_of =
            |f: &dyn Fn(&LevelNight) -> Option<f64>| -> Vec<(String, Vec<Option<f64>>)> {
                levels
                    .iter()
                    .map(|lv| {
                        let mut v = vec![None; k.nights.len()];
                        for l in k
                            .levels
                            .iter()
                            .filter(|l| l.strategy == *st && l.level == *lv)
                        {
                            v[idx[l.night.as_str()]] = f(l);
                        }
                        (format!("level {lv}"), v)
                    })
                    .collect()
            };
        let pct = |n: u64, of: u64| (of > 0).then(|| 100.0 * n as f64 / of as f64);
        body.push_str(&chart(
            "Cure rate by level (% of the accounts at the level that night)",
            &k.nights,
            &series_of(&|l| pct(l.cured, l.accounts)),
            100.0,
            " %",
        ));
        body.push_str(&chart(
            "Roll rate by level (% moving up a level that night)",
            &k.nights,
            &series_of(&|l| pct(l.rolled, l.accounts)),
            100.0,
            " %",
        ));
        let mut currencies: Vec<&String> = k
            .levels
            .iter()
            .filter(|l| l.strategy == *st)
            .flat_map(|l| l.recovered.keys())
            .collect();
        currencies.sort();
        currencies.dedup();
        for cur in currencies {
            let series = series_of(&|l| l.recovered.get(cur).map(|c| *c as f64 / 100.0));
            let max = series
                .iter()
                .flat_map(|(_, v)| v.iter().flatten())
                .fold(0.0_f64, |a, b| a.max(*b));
            body.push_str(&chart(
                &format!("Recovered after each level, {cur}"),
                &k.nights,
                &series,
                max,
                "",
            ));
        }
        let mut kept = vec![None; k.nights.len()];
        let mut broken = vec![None; k.nights.len()];
        for p in k.promises.iter().filter(|p| p.strategy == *st) {
            kept[idx[p.night.as_str()]] = Some(p.kept as f64);
            broken[idx[p.night.as_str()]] = Some(p.broken as f64);
        }
        let max = kept
            .iter()
            .chain(broken.iter())
            .flatten()
            .fold(0.0_f64, |a, b| a.max(*b));
        body.push_str(&chart(
            "Promises to pay that fell due: kept and broken",
            &k.nights,
            &[("kept".into(), kept), ("broken".into(), broken)],
            max,
            "",
        ));
        // The totals over the range, as a table.
        body.push_str("<table><tr><th>level</th><th class=\"n\">account-nights</th><th class=\"n\">cured</th><th class=\"n\">rolled</th><th class=\"n\">cure rate %</th><th class=\"n\">roll rate %</th><th class=\"n\">recovered</th></tr>\n");
        for lv in &levels {
            let (mut a, mut c, mut r) = (0, 0, 0);
            let mut rec: BTreeMap<&String, Cents> = BTreeMap::new();
            for l in k
                .levels
                .iter()
                .filter(|l| l.strategy == *st && l.level == *lv)
            {
                a += l.accounts;
                c += l.cured;
                r += l.rolled;
                for (cur, v) in &l.recovered {
                    *rec.entry(cur).or_default() += v;
                }
            }
            let rec: Vec<String> = rec
                .iter()
                .filter(|(_, v)| **v != 0)
                .map(|(c, v)| format!("{} {c}", format_cents(*v)))
                .collect();
            body.push_str(&format!(
                "<tr data-level=\"{lv}\"><td>level {lv}</td><td class=\"n\">{a}</td><td class=\"n\">{c}</td><td class=\"n\">{r}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
                rate(c, a),
                rate(r, a),
                esc(&rec.join("; "))
            ));
        }
        body.push_str("</table></section>\n");
    }
    let missing = if k.missing.is_empty() {
        String::new()
    } else {
        format!(
            "<p class=\"muted\">Nights without KPIs (committed by an older engine): {}.</p>",
            esc(&k.missing.join(", "))
        )
    };
    let range = match (k.nights.first(), k.nights.last()) {
        (Some(a), Some(b)) => format!("{} to {} ({} nights)", esc(a), esc(b), k.nights.len()),
        _ => "no night".into(),
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Dunning KPIs {range}</title>\n<style>\nbody {{ margin: 0; font: 15px/1.45 -apple-system, \"Segoe UI\", Roboto, \"DejaVu Sans\", Arial, sans-serif; color: #1d2733; }}\nmain {{ max-width: 980px; margin: 0 auto; padding: 16px; }}\nh2 {{ border-bottom: 2px solid #d8dee6; padding-bottom: 4px; }}\nfigure {{ margin: 16px 0; }}\nfigcaption {{ font-weight: 600; margin-bottom: 4px; }}\nsvg {{ width: 100%; height: auto; }}\n.axis {{ stroke: #9aa5b1; }}\n.tick {{ font-size: 11px; fill: #5b6877; }}\n.legend {{ font-size: 11px; font-weight: 600; }}\ntable {{ border-collapse: collapse; width: 100%; }}\nth, td {{ text-align: left; padding: 5px 8px; border-bottom: 1px solid #d8dee6; }}\ntd.n, th.n {{ text-align: right; font-variant-numeric: tabular-nums; }}\n.muted {{ color: #5b6877; }}\n@media print {{ section {{ break-inside: avoid; }} }}\n</style>\n</head>\n<body>\n<main>\n<h1>Dunning KPIs</h1>\n<p class=\"muted\">Nights {range}. Cure rate: accounts at a level that were cured that night; roll rate: those that moved up; recovered: the fall of their overdue amount since the night before. A promise is kept when, on the first night after its date, the debtor's overdue amount is at most what it was when the promise was first seen, less the amount promised.</p>\n{missing}{body}</main>\n</body>\n</html>\n"
    )
    .into_bytes()
}

/// `dunning report`: writes `kpis.csv`, `promises.csv` and `kpis.html`
/// into `out` (created if need be).
pub fn report(
    state: &Path,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    out: &Path,
) -> anyhow::Result<Kpis> {
    if !state.join("nights").is_dir() {
        return Err(crate::night::Refused(format!(
            "{} is not a state folder of `dunning run` (it has no nights/); pass the --state a night ran with",
            state.display()
        ))
        .into());
    }
    let reader = crate::state::Reader::new(state);
    let k = read(&reader, from, to)?;
    use anyhow::Context as _;
    std::fs::create_dir_all(out)
        .with_context(|| format!("--out {}: cannot make the folder", out.display()))?;
    let (levels, promises) = to_csv(&k);
    let write = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let tmp = out.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, out.join(name)))
            .with_context(|| format!("--out {}: cannot write {name}", out.display()))
    };
    write("kpis.csv", &levels)?;
    write("promises.csv", &promises)?;
    write("kpis.html", &to_html(&k))?;
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_exact_to_a_tenth() {
        assert_eq!(rate(1, 3), "33.3");
        assert_eq!(rate(2, 3), "66.7");
        assert_eq!(rate(0, 5), "0.0");
        assert_eq!(rate(5, 5), "100.0");
        assert_eq!(rate(1, 0), "");
    }

    #[test]
    fn promises_round_trip() {
        let p = vec![Promise {
            debtor_id: "D1".into(),
            date: crate::dates::parse_date("2026-01-05").unwrap(),
            until: crate::dates::parse_date("2026-01-12").unwrap(),
            amount: Some(5000),
            overdue_then: 20000,
            strategy: "champion".into(),
        }];
        assert_eq!(read_promises(&promises_csv(&p)).unwrap(), p);
    }
}
