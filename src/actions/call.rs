//! Calls: `calls.csv`, the call-centre queue. Each planned call carries its
//! priority (the policy's `calls.priority` rule), the script agents read
//! (rendered from the template), and the window in which the call may be
//! made on the night's date, in the debtor's own time zone (the debtor's
//! `timezone`, else their country's, else the policy's).

use super::{debtor_name, ActionError, Job};
use crate::ingest::Debtor;
use crate::render::Messages;
use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;

pub const COLUMNS: &[&str] = &[
    "debtor_id",
    "currency",
    "name",
    "phone",
    "priority",
    "template",
    "language",
    "timezone",
    "window_start",
    "window_end",
    "script",
];

pub struct Call {
    pub priority: i64,
    debtor_id: String,
    currency: String,
    name: String,
    phone: String,
    template: String,
    language: String,
    timezone: String,
    window_start: String,
    window_end: String,
    script: String,
}

impl Call {
    pub fn row(&self) -> [String; 11] {
        [
            self.debtor_id.clone(),
            self.currency.clone(),
            self.name.clone(),
            self.phone.clone(),
            self.priority.to_string(),
            self.template.clone(),
            self.language.clone(),
            self.timezone.clone(),
            self.window_start.clone(),
            self.window_end.clone(),
            self.script.clone(),
        ]
    }
}

/// The debtor's time zone.
pub fn timezone(messages: &Messages, debtor: &Debtor) -> Tz {
    debtor
        .timezone()
        .trim()
        .parse::<Tz>()
        .ok()
        .or_else(|| crate::phone::default_timezone(debtor.country()).and_then(|t| t.parse().ok()))
        .unwrap_or(messages.default_tz)
}

pub(super) fn local(tz: Tz, day: NaiveDate, t: chrono::NaiveTime) -> String {
    let naive = day.and_time(t);
    // In a spring-forward gap the earliest valid instant after it is used.
    let dt = tz
        .from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
        })
        .expect("a local time exists within an hour");
    dt.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

pub fn build(job: &Job<'_>) -> Result<Call, ActionError> {
    let Job {
        messages,
        decision: d,
        debtor,
        lang,
        template,
        ctx,
        as_of,
    } = *job;
    let script = messages
        .templates
        .render(&format!("{lang}/call/{template}.txt"), ctx, debtor.id())?
        .trim()
        .to_owned();
    let tz = timezone(messages, debtor);
    let (start, end) = messages
        .calls
        .as_ref()
        .map(|c| (c.start, c.end))
        .unwrap_or_else(|| crate::render::parse_hours("09:00-20:00").expect("valid"));
    Ok(Call {
        priority: d.call_priority().unwrap_or(0),
        debtor_id: debtor.id().to_string(),
        currency: d.account.currency.to_string(),
        name: debtor_name(debtor),
        phone: debtor.phone_e164().unwrap_or_default().to_owned(),
        template: template.to_owned(),
        language: lang.to_owned(),
        timezone: tz.name().to_owned(),
        window_start: local(tz, as_of, start),
        window_end: local(tz, as_of, end),
        script,
    })
}

#[cfg(test)]
mod tests {
    use super::local;
    use chrono::NaiveTime;

    fn t(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").unwrap()
    }

    #[test]
    fn windows_are_in_the_debtors_own_zone() {
        let day = crate::dates::parse_date("2026-07-01").unwrap();
        assert_eq!(
            local(chrono_tz::Europe::Paris, day, t("09:00")),
            "2026-07-01T09:00:00+02:00"
        );
        assert_eq!(
            local(chrono_tz::Asia::Shanghai, day, t("20:00")),
            "2026-07-01T20:00:00+08:00"
        );
        let winter = crate::dates::parse_date("2026-01-15").unwrap();
        assert_eq!(
            local(chrono_tz::America::New_York, winter, t("08:00")),
            "2026-01-15T08:00:00-05:00"
        );
    }

    #[test]
    fn a_start_inside_a_spring_forward_gap_moves_past_it() {
        let day = crate::dates::parse_date("2026-03-29").unwrap();
        assert_eq!(
            local(chrono_tz::Europe::Paris, day, t("02:30")),
            "2026-03-29T03:30:00+02:00"
        );
    }
}
