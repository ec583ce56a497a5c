//! Agency placements and recalls, legal referrals with their dossiers, and
//! write-off proposals: the files that hand an account to someone else.
//!
//! - `agency/<agency>.csv`: accounts placed tonight, with the debtor's
//!   contact data, the overdue items, the placement date and the level
//!   history;
//! - `agency/recalls.csv`: placed accounts that were cured or went on hold
//!   tonight, which the agency must stop working;
//! - `legal.csv` and `legal/<account>.json`: referrals, and for each the
//!   dossier a lawyer or bailiff needs (items, notices sent with their
//!   dates, amounts);
//! - `writeoff.csv`: write-offs the policy proposes (once per account).

use super::{debtor_name, safe_name};
use crate::decide::Decision;
use crate::emit::{cell, Staging};
use crate::history::Step;
use crate::ingest::Debtor;
use crate::money::format_cents;
use crate::render::Item;
use chrono::NaiveDate;
use serde::Serialize;
use std::collections::BTreeMap;

const AGENCY_COLUMNS: &[&str] = &[
    "placed_on",
    "debtor_id",
    "currency",
    "name",
    "kind",
    "address_line1",
    "address_line2",
    "postal_code",
    "city",
    "country",
    "email",
    "phone",
    "overdue",
    "open",
    "max_dpd",
    "items",
    "level_history",
];
const RECALL_COLUMNS: &[&str] = &[
    "agency",
    "debtor_id",
    "currency",
    "placed_on",
    "recalled_on",
    "reason",
];
const LEGAL_COLUMNS: &[&str] = &[
    "referred_on",
    "debtor_id",
    "currency",
    "name",
    "overdue",
    "open",
    "max_dpd",
    "items",
    "notices",
    "dossier",
];
const WRITEOFF_COLUMNS: &[&str] = &[
    "proposed_on",
    "debtor_id",
    "currency",
    "level",
    "overdue",
    "open",
    "max_dpd",
    "last_escalated_on",
];

fn items_text(items: &[Item]) -> String {
    items
        .iter()
        .map(|i| {
            let r = if i.reference.is_empty() {
                &i.item_id
            } else {
                &i.reference
            };
            format!("{r} {} {}", i.due_on, format_cents(i.open_amount))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn history_text(h: &[Step]) -> String {
    h.iter()
        .map(|s| format!("{} {} {}", s.level, s.on, s.actions))
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Serialize)]
struct DossierItem<'a> {
    item_id: &'a str,
    reference: &'a str,
    product: &'a str,
    due_on: String,
    amount: String,
    open_amount: String,
    days_past_due: i64,
}

#[derive(Serialize)]
struct Notice<'a> {
    level: u32,
    on: String,
    actions: Vec<&'a str>,
}

#[derive(Serialize)]
struct Dossier<'a> {
    referred_on: String,
    debtor_id: &'a str,
    name: String,
    kind: &'a str,
    address: [&'a str; 4],
    country: &'a str,
    email: &'a str,
    phone: &'a str,
    currency: &'a str,
    overdue: String,
    open: String,
    max_dpd: i64,
    items: Vec<DossierItem<'a>>,
    notices: Vec<Notice<'a>>,
    placed_with: Option<&'a str>,
    placed_on: Option<String>,
}

fn row(w: &mut csv::Writer<Vec<u8>>, cells: &[String]) -> anyhow::Result<()> {
    w.write_record(cells.iter().map(|c| cell(c).into_owned()))?;
    Ok(())
}

fn finish(w: csv::Writer<Vec<u8>>) -> anyhow::Result<Vec<u8>> {
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Counts for the log.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub placed: usize,
    pub recalled: usize,
    pub legal: usize,
    pub writeoffs: usize,
}

pub fn write(
    decisions: &[Decision],
    debtors: &crate::ingest::Debtors,
    items: &super::OverdueItems,
    as_of: NaiveDate,
    staging: &mut Staging,
) -> anyhow::Result<Counts> {
    let no_debtor = Debtor::default();
    let mut counts = Counts::default();
    let mut agencies: BTreeMap<String, csv::Writer<Vec<u8>>> = BTreeMap::new();
    let mut recalls = csv::Writer::from_writer(Vec::new());
    recalls.write_record(RECALL_COLUMNS)?;
    let mut legal = csv::Writer::from_writer(Vec::new());
    legal.write_record(LEGAL_COLUMNS)?;
    let mut writeoff = csv::Writer::from_writer(Vec::new());
    writeoff.write_record(WRITEOFF_COLUMNS)?;
    for d in decisions {
        let a = &d.account;
        let debtor = debtors.get(&a.debtor_id).unwrap_or(&no_debtor);
        let its = &items.get(&a.debtor_id, &a.currency);
        if let Some(agency) = d.placed_with() {
            let w = agencies.entry(agency.to_owned()).or_insert_with(|| {
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(AGENCY_COLUMNS).expect("in memory");
                w
            });
            row(
                w,
                &[
                    as_of.to_string(),
                    a.debtor_id.to_string(),
                    a.currency.to_string(),
                    debtor_name(debtor),
                    debtor.kind().to_string(),
                    debtor.address_line1().to_string(),
                    debtor.address_line2().to_string(),
                    debtor.postal_code().to_string(),
                    debtor.city().to_string(),
                    debtor.country().to_string(),
                    if debtor.email_ok {
                        debtor.email().to_string()
                    } else {
                        String::new()
                    },
                    debtor.phone_e164().unwrap_or_default().to_owned(),
                    format_cents(a.overdue),
                    format_cents(a.open),
                    a.max_dpd.to_string(),
                    items_text(its),
                    history_text(&d.after.history),
                ],
            )?;
            counts.placed += 1;
        }
        if let Some(r) = &d.recall {
            row(
                &mut recalls,
                &[
                    r.agency.clone(),
                    a.debtor_id.to_string(),
                    a.currency.to_string(),
                    r.placed_on.map(|d| d.to_string()).unwrap_or_default(),
                    as_of.to_string(),
                    r.reason.clone(),
                ],
            )?;
            counts.recalled += 1;
        }
        if d.actions.iter().any(|x| x.channel == "legal") {
            let file = format!(
                "legal/{}.json",
                safe_name(&a.debtor_id, &a.currency, "dossier")
            );
            let dossier = Dossier {
                referred_on: as_of.to_string(),
                debtor_id: &a.debtor_id,
                name: debtor_name(debtor),
                kind: debtor.kind(),
                address: [
                    debtor.address_line1(),
                    debtor.address_line2(),
                    debtor.postal_code(),
                    debtor.city(),
                ],
                country: debtor.country(),
                email: if debtor.email_ok { debtor.email() } else { "" },
                phone: debtor.phone_e164().unwrap_or(""),
                currency: &a.currency,
                overdue: format_cents(a.overdue),
                open: format_cents(a.open),
                max_dpd: a.max_dpd,
                items: its
                    .iter()
                    .map(|i| DossierItem {
                        item_id: &i.item_id,
                        reference: &i.reference,
                        product: &i.product,
                        due_on: i.due_on.to_string(),
                        amount: format_cents(i.amount),
                        open_amount: format_cents(i.open_amount),
                        days_past_due: (as_of - i.due_on).num_days(),
                    })
                    .collect(),
                notices: d
                    .after
                    .history
                    .iter()
                    .map(|s| Notice {
                        level: s.level,
                        on: s.on.to_string(),
                        actions: s.actions.split(';').filter(|x| !x.is_empty()).collect(),
                    })
                    .collect(),
                placed_with: d.after.placed_with.as_deref(),
                placed_on: d.after.placed_on.map(|d| d.to_string()),
            };
            staging.write(&file, &crate::emit::json(&dossier))?;
            row(
                &mut legal,
                &[
                    as_of.to_string(),
                    a.debtor_id.to_string(),
                    a.currency.to_string(),
                    debtor_name(debtor),
                    format_cents(a.overdue),
                    format_cents(a.open),
                    a.max_dpd.to_string(),
                    its.len().to_string(),
                    d.after.history.len().to_string(),
                    file,
                ],
            )?;
            counts.legal += 1;
        }
        if d.writeoff {
            row(
                &mut writeoff,
                &[
                    as_of.to_string(),
                    a.debtor_id.to_string(),
                    a.currency.to_string(),
                    d.level_after.to_string(),
                    format_cents(a.overdue),
                    format_cents(a.open),
                    a.max_dpd.to_string(),
                    d.last_escalated_on
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                ],
            )?;
            counts.writeoffs += 1;
        }
    }
    for (agency, w) in agencies {
        let name: String = agency
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        staging.write(&format!("agency/{name}.csv"), &finish(w)?)?;
    }
    staging.write("agency/recalls.csv", &finish(recalls)?)?;
    staging.write("legal.csv", &finish(legal)?)?;
    staging.write("writeoff.csv", &finish(writeoff)?)?;
    Ok(counts)
}
