//! SMS: `sms.csv`, one row per message, with the text the gateway sends,
//! its encoding and how many segments it costs. GSM-7 when every character
//! is in the GSM 03.38 alphabet (extension characters such as `€` count
//! twice), UCS-2 otherwise.

use super::{ActionError, Job};

pub const COLUMNS: &[&str] = &[
    "debtor_id",
    "currency",
    "phone",
    "template",
    "language",
    "encoding",
    "segments",
    "text",
    "window_start",
    "window_end",
];

const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{000C}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

/// The encoding a gateway will use and the number of segments.
pub fn measure(text: &str) -> (Encoding, u32) {
    let mut septets = 0u32;
    for c in text.chars() {
        if GSM7_BASIC.contains(c) {
            septets += 1;
        } else if GSM7_EXTENSION.contains(c) {
            septets += 2;
        } else {
            let units = text.encode_utf16().count() as u32;
            let segments = if units <= 70 { 1 } else { units.div_ceil(67) };
            return (Encoding::Ucs2, segments);
        }
    }
    let segments = if septets <= 160 {
        1
    } else {
        septets.div_ceil(153)
    };
    (Encoding::Gsm7, segments.max(1))
}

pub struct Sms {
    debtor_id: String,
    currency: String,
    phone: String,
    template: String,
    language: String,
    encoding: Encoding,
    segments: u32,
    text: String,
    /// When the policy's compliance section sets SMS hours: the send
    /// window on the night's day, in the debtor's time zone.
    window_start: String,
    window_end: String,
}

impl Sms {
    pub fn row(&self) -> [String; 10] {
        [
            self.debtor_id.clone(),
            self.currency.clone(),
            self.phone.clone(),
            self.template.clone(),
            self.language.clone(),
            match self.encoding {
                Encoding::Gsm7 => "GSM-7".into(),
                Encoding::Ucs2 => "UCS-2".into(),
            },
            self.segments.to_string(),
            self.text.clone(),
            self.window_start.clone(),
            self.window_end.clone(),
        ]
    }
}

pub fn build(job: &Job<'_>) -> Result<Sms, ActionError> {
    let Job {
        messages,
        decision: d,
        debtor,
        lang,
        template,
        ctx,
        as_of,
    } = *job;
    let name = format!("{lang}/sms/{template}.txt");
    let text = messages.templates.render(&name, ctx, debtor.id())?;
    let text = text.trim().to_owned();
    let (encoding, segments) = measure(&text);
    if segments > messages.max_segments {
        return Err(ActionError::TooLong {
            template: format!("templates/{name}"),
            language: lang.to_owned(),
            debtor_id: debtor.id().to_string(),
            segments,
            max: messages.max_segments,
        });
    }
    let (window_start, window_end) = match messages.sms_window {
        Some((a, b)) => {
            let tz = super::call::timezone(messages, debtor);
            (
                super::call::local(tz, as_of, a),
                super::call::local(tz, as_of, b),
            )
        }
        None => (String::new(), String::new()),
    };
    Ok(Sms {
        window_start,
        window_end,
        debtor_id: debtor.id().to_string(),
        currency: d.account.currency.to_string(),
        phone: debtor.phone_e164().unwrap_or_default().to_owned(),
        template: template.to_owned(),
        language: lang.to_owned(),
        encoding,
        segments,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_and_ucs2() {
        assert_eq!(measure("Bonjour, réglez 12,00 €"), (Encoding::Gsm7, 1));
        assert_eq!(measure(&"a".repeat(160)), (Encoding::Gsm7, 1));
        assert_eq!(measure(&"a".repeat(161)), (Encoding::Gsm7, 2));
        // Each € counts two septets.
        assert_eq!(measure(&"€".repeat(80)), (Encoding::Gsm7, 1));
        assert_eq!(measure(&"€".repeat(81)), (Encoding::Gsm7, 2));
        // ê is not in GSM-7: the whole message goes UCS-2.
        assert_eq!(measure("Vous êtes"), (Encoding::Ucs2, 1));
        assert_eq!(measure(&"您".repeat(70)), (Encoding::Ucs2, 1));
        assert_eq!(measure(&"您".repeat(71)), (Encoding::Ucs2, 2));
        assert_eq!(measure(&"您".repeat(135)), (Encoding::Ucs2, 3));
    }
}
