//! E-mails: RFC 5322 messages built with lettre, multipart/alternative
//! (plain text and HTML). The Message-ID, the MIME boundary and the Date all
//! derive from the night (as-of, debtor, account, level, template), so a
//! re-run writes the same bytes and a mail server sees the same message id.

use super::{debtor_name, safe_name, ActionError, Job};

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use std::time::{Duration, SystemTime};

pub const INDEX_COLUMNS: &[&str] = &[
    "file",
    "debtor_id",
    "currency",
    "to",
    "subject",
    "template",
    "language",
    "message_id",
];

/// The hour (UTC) of the night's date that e-mails are dated.
const DATE_HOUR_UTC: u64 = 6;

pub struct Email {
    pub file: String,
    pub bytes: Vec<u8>,
    pub debtor_id: String,
    pub currency: String,
    pub to: String,
    pub subject: String,
    pub template: String,
    pub language: String,
    pub message_id: String,
}

impl Email {
    pub fn index_row(&self) -> [&str; 8] {
        [
            &self.file,
            &self.debtor_id,
            &self.currency,
            &self.to,
            &self.subject,
            &self.template,
            &self.language,
            &self.message_id,
        ]
    }
}

/// One line, no control characters: what a header may carry.
pub fn header_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn build(job: &Job<'_>) -> Result<Email, ActionError> {
    let Job {
        messages,
        decision: d,
        debtor,
        lang,
        template,
        ctx,
        as_of,
    } = *job;
    let t = &messages.templates;
    let id = debtor.id();
    let subject =
        header_text(&t.render(&format!("{lang}/email/{template}.subject.txt"), ctx, id)?);
    let text = t.render(&format!("{lang}/email/{template}.txt"), ctx, id)?;
    let html = t.render(&format!("{lang}/email/{template}.html"), ctx, id)?;
    let settings = messages.email.as_ref().ok_or_else(|| ActionError::Email {
        debtor_id: id.to_string(),
        message: "the policy has no `email:` section".into(),
    })?;
    let fail = |message: String| ActionError::Email {
        debtor_id: id.to_string(),
        message,
    };
    let address = debtor
        .email()
        .parse::<lettre::Address>()
        .map_err(|e| fail(format!("address: {e}")))?;
    let name = debtor_name(debtor);
    let to = Mailbox::new((!name.is_empty()).then_some(name), address);

    let seed = format!(
        "{as_of}\n{}\n{}\n{}\n{template}",
        debtor.id(),
        d.account.currency,
        d.level_after
    );
    let hash = crate::audit::sha256_bytes(seed.as_bytes());
    let message_id = format!(
        "<{}.{}@{}>",
        &hash[..32],
        as_of.format("%Y%m%d"),
        settings.domain
    );
    let days = crate::dates::to_days(as_of).max(0) as u64;
    let date = SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86_400 + DATE_HOUR_UTC * 3600);

    let mut builder = Message::builder()
        .from(settings.from.clone())
        .to(to.clone())
        .subject(subject.clone())
        .date(date)
        .message_id(Some(message_id.clone()));
    if let Some(r) = &settings.reply_to {
        builder = builder.reply_to(r.clone());
    }
    let body = MultiPart::alternative()
        .boundary(format!("dunning-{}", &hash[32..56]))
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(text),
        )
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(html),
        );
    let message = builder.multipart(body).map_err(|e| fail(e.to_string()))?;
    Ok(Email {
        file: format!(
            "{}.eml",
            safe_name(debtor.id(), &d.account.currency, template)
        ),
        bytes: message.formatted(),
        debtor_id: debtor.id().to_string(),
        currency: d.account.currency.to_string(),
        to: to.email.to_string(),
        subject,
        template: template.to_owned(),
        language: lang.to_owned(),
        message_id,
    })
}
