//! E-mails: RFC 5322 messages, multipart/alternative
//! (plain text and HTML). The Message-ID, the MIME boundary and the Date all
//! derive from the night (as-of, debtor, account, level, template), so a
//! re-run writes the same bytes and a mail server sees the same message id.

use super::{debtor_name, safe_name, ActionError, Job};

use lettre::message::header::{self, ContentTransferEncoding, ContentType, Headers};
use lettre::message::{Body, Mailbox, Mailboxes};
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

    let headers = message_headers(
        &settings.from,
        &to,
        &subject,
        date,
        &message_id,
        settings.reply_to.as_ref(),
    );
    let bytes = message(
        &headers,
        &format!("dunning-{}", &hash[32..56]),
        [
            (ContentType::TEXT_PLAIN, text_body(text)),
            (ContentType::TEXT_HTML, text_body(html)),
        ],
    )
    .map_err(fail)?;
    Ok(Email {
        file: format!(
            "{}.eml",
            safe_name(debtor.id(), &d.account.currency, template)
        ),
        bytes,
        debtor_id: debtor.id().to_string(),
        currency: d.account.currency.to_string(),
        to: to.email.to_string(),
        subject,
        template: template.to_owned(),
        language: lang.to_owned(),
        message_id,
    })
}

/// A message's headers, as lettre's `MessageBuilder` sets them for
/// `multipart` (in this order, MIME-Version last).
fn message_headers(
    from: &Mailbox,
    to: &Mailbox,
    subject: &str,
    date: SystemTime,
    message_id: &str,
    reply_to: Option<&Mailbox>,
) -> Headers {
    let mut headers = Headers::new();
    headers.set(header::From::from(Mailboxes::from(from.clone())));
    headers.set(header::To::from(Mailboxes::from(to.clone())));
    headers.set(header::Subject::from(subject.to_owned()));
    headers.set(header::Date::new(date));
    headers.set(header::MessageId::from(message_id.to_owned()));
    if let Some(r) = reply_to {
        headers.set(header::ReplyTo::from(Mailboxes::from(r.clone())));
    }
    headers.set(header::MIME_VERSION_1_0);
    headers
}

/// The multipart/alternative message as lettre's
/// `MessageBuilder::multipart(..).formatted()` writes it, byte for byte
/// (`tests::messages_are_lettres_byte_for_byte`): the headers (lettre
/// encodes and folds them), the multipart's Content-Type, then each part
/// between boundaries. Written at once into one buffer: lettre's builders
/// parse the From, To and Content-Type headers back after writing them,
/// make a random boundary before taking ours, and grow the output a copy
/// at a time, a tenth of an e-mail's time.
fn message<const N: usize>(
    headers: &Headers,
    boundary: &str,
    parts: [(ContentType, Body); N],
) -> Result<Vec<u8>, String> {
    use std::io::Write as _;
    let content_type =
        ContentType::parse(&format!("multipart/alternative; boundary=\"{boundary}\""))
            .map_err(|e| e.to_string())?;
    let size: usize = parts.iter().map(|(_, b)| b.as_ref().len() + 200).sum();
    let mut out = Vec::with_capacity(size + 1024);
    let mut multipart = Headers::new();
    multipart.set(content_type);
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{headers}{multipart}");
    out.extend_from_slice(b"\r\n");
    for (content_type, body) in parts {
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\n");
        let mut part = Headers::new();
        part.set(content_type);
        part.set(body.encoding());
        let _ = write!(out, "{part}");
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body.as_ref());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    Ok(out)
}

/// A text part's body, as lettre's `Body::new` makes it (the same
/// encoding chosen, the same bytes), 1.5 to 1.8 times as fast
/// (BENCHMARKS.md, ninth). Lettre's took a sixth of an e-mail night's
/// documents stage: its quoted-printable appends a character at a time,
/// and it makes line ends CRLF by inserting a `\r` before each `\n` in
/// place, moving the rest of the text each time. Any other encoding is
/// left to lettre.
pub fn text_body(text: String) -> Body {
    // Chosen on the text as given, as lettre chooses.
    if !quoted_printable_chosen(text.as_bytes()) {
        return Body::new(text);
    }
    Body::dangerous_pre_encoded(
        quoted_printable(text.as_bytes()),
        ContentTransferEncoding::QuotedPrintable,
    )
}

/// Whether lettre's `Body::new` encodes `text` as quoted-printable
/// (`email_encoding`'s `Encoding::choose`, without SMTPUTF8): text that is
/// not ASCII, or has a line of 76 bytes or more, and of which at most a
/// third of the bytes are outside tab and printable ASCII. Counted in one
/// pass the compiler vectorises, where `choose` filters byte by byte (a
/// fortieth of an e-mail's time).
fn quoted_printable_chosen(text: &[u8]) -> bool {
    let (mut outside, mut high) = (0usize, 0u8);
    for chunk in text.chunks(128) {
        let mut n = 0u8;
        for &b in chunk {
            n += u8::from(b != b'\t' && !(b' '..=b'~').contains(&b));
            high |= b;
        }
        outside += usize::from(n);
    }
    let ascii = high < 0x80;
    let mut last = 0;
    let long_line = memchr::memchr_iter(b'\n', text).any(|i| {
        let from = std::mem::replace(&mut last, i);
        i - from >= QP_LINE
    }) || text.len() - last >= QP_LINE;
    (!ascii || long_line) && outside <= text.len() / 3
}

/// The longest line quoted-printable writes, soft breaks aside (RFC 2045).
const QP_LINE: usize = 76;

/// Quoted-printable of a text (RFC 2045, 6.7), its line ends made CRLF,
/// byte for byte what lettre writes (CRLF, then the `quoted_printable`
/// crate's text mode): the same soft line breaks, in the same places,
/// without a copy of the text made first. Whole runs of bytes
/// that need no encoding are copied at once, and an encoded byte is three
/// bytes written, where the crate appends characters one by one.
fn quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 4);
    // The bytes on the output's last line, and where the last thing
    // appended to it starts (a soft break goes there when the line is
    // full).
    let (mut on_line, mut backup) = (0usize, 0usize);
    let mut was_cr = false;
    let mut i = 0;
    while i < input.len() {
        let byte = input[i];
        i += 1;
        // Every line end is CRLF, as lettre makes them before encoding: a
        // `\n` ends the line whether a `\r` came before it or not.
        if byte == b'\n' {
            was_cr = false;
            encode_trailing_space(&mut out, &mut on_line, &mut backup);
            out.extend_from_slice(b"\r\n");
            on_line = 0;
            continue;
        }
        if was_cr {
            was_cr = false;
            qp_append(&mut out, b"=0D", &mut on_line, &mut backup);
        }
        if byte == b'\r' {
            was_cr = true;
            continue;
        }
        if QP_LINE - on_line >= 3 && !qp_needs_encoding(byte) {
            // A run of plain bytes, kept two short of the line's end.
            let start = i - 1;
            let most = (QP_LINE - on_line - 2).min(input.len() - start);
            let run = input[start..start + most]
                .iter()
                .position(|&b| qp_needs_encoding(b))
                .unwrap_or(most);
            out.extend_from_slice(&input[start..start + run]);
            on_line += run;
            backup = out.len();
            i = start + run;
            continue;
        }
        match byte {
            b'=' => qp_append(&mut out, b"=3D", &mut on_line, &mut backup),
            b'\t' | b' '..=b'~' => qp_append(&mut out, &[byte], &mut on_line, &mut backup),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                let hex = [
                    b'=',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 15)],
                ];
                qp_append(&mut out, &hex, &mut on_line, &mut backup);
            }
        }
    }
    if was_cr {
        qp_append(&mut out, b"=0D", &mut on_line, &mut backup);
    } else {
        encode_trailing_space(&mut out, &mut on_line, &mut backup);
    }
    out
}

/// Bytes quoted-printable writes as they are: tab and printable ASCII but
/// `=`. A table, so that a run of them is found with one load a byte.
const QP_PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = matches!(b as u8, b'\t' | b' '..=b'<' | b'>'..=b'~');
        b += 1;
    }
    t
};

#[inline]
fn qp_needs_encoding(b: u8) -> bool {
    !QP_PLAIN[usize::from(b)]
}

/// Appends `what` to the last line, after a soft line break when it
/// would not fit. On a line already full, the break goes before the last
/// thing appended (the `=` would not fit either).
#[inline]
fn qp_append(out: &mut Vec<u8>, what: &[u8], on_line: &mut usize, backup: &mut usize) {
    if *on_line + what.len() > QP_LINE {
        if *on_line == QP_LINE {
            *on_line = out.len() - *backup;
            out.splice(*backup..*backup, *b"=\r\n");
        } else {
            out.extend_from_slice(b"=\r\n");
            *on_line = 0;
        }
    }
    out.extend_from_slice(what);
    *on_line += what.len();
    *backup = out.len() - what.len();
}

/// A space or tab that ends a line is encoded: a mail server may drop it.
fn encode_trailing_space(out: &mut Vec<u8>, on_line: &mut usize, backup: &mut usize) {
    let encoded: &[u8] = match out.last() {
        Some(b' ') => b"=20",
        Some(b'\t') => b"=09",
        _ => return,
    };
    *on_line -= 1;
    out.pop();
    qp_append(out, encoded, on_line, backup);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What lettre makes of a text part, as bytes and encoding.
    fn lettre_body(text: &str) -> (Vec<u8>, ContentTransferEncoding) {
        let b = Body::new(text.to_owned());
        let encoding = b.encoding();
        (b.into_vec(), encoding)
    }

    fn ours(text: &str) -> (Vec<u8>, ContentTransferEncoding) {
        let b = text_body(text.to_owned());
        let encoding = b.encoding();
        (b.into_vec(), encoding)
    }

    #[test]
    fn e_mail_bodies_are_lettres_byte_for_byte() {
        let cases = [
            "",
            "plain ASCII, short lines\nand a second\n",
            "r\u{e9}gl\u{e9} \u{e0} l'\u{e9}ch\u{e9}ance\n",
            "a line ending in a space \nand a tab\t\nand the end \t",
            "\n\nleading line ends, a lone \r here, and \r\n CRLF\r",
            "=3D and = signs = everywhere ==========\u{e9}",
            &format!("{}\u{e9}\n", "x".repeat(300)),
            &format!("{}\u{e9}{}", "\u{e9}".repeat(40), " ".repeat(90)),
            &format!("{} \u{e9}", "a".repeat(75)),
            &format!("{}=\u{e9}", "a".repeat(74)),
            "\u{1F4EC}\u{1F4EC}\u{1F4EC}\u{1F4EC} mostly four-byte characters: base64",
            "\u{4f60}\u{597d}\u{ff0c}\u{8bf7}\u{5c3d}\u{5feb}\u{4ed8}\u{6b3e}\u{3002}\n",
        ];
        for text in cases {
            assert_eq!(ours(text), lettre_body(text), "{text:?}");
        }
    }

    /// `message` against lettre's builder, for the same headers and parts.
    fn both(
        subject: &str,
        name: &str,
        reply_to: bool,
        text: &str,
        html: &str,
    ) -> (Vec<u8>, Vec<u8>) {
        use lettre::message::{MultiPart, SinglePart};
        let from: Mailbox = "\"Banque Exemple\" <recouvrement@banque-exemple.fr>"
            .parse()
            .unwrap();
        let reply: Mailbox = "Service <service@banque-exemple.fr>".parse().unwrap();
        let to = Mailbox::new(
            (!name.is_empty()).then(|| name.to_owned()),
            "d0000001@example.fr".parse().unwrap(),
        );
        let date = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let id = "<0123456789abcdef.20261122@dunning.example>".to_owned();
        let boundary = "dunning-0123456789abcdef01234567";
        let mut builder = lettre::Message::builder()
            .from(from.clone())
            .to(to.clone())
            .subject(subject)
            .date(date)
            .message_id(Some(id.clone()));
        if reply_to {
            builder = builder.reply_to(reply.clone());
        }
        let theirs = builder
            .multipart(
                MultiPart::alternative()
                    .boundary(boundary)
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(text.to_owned()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html.to_owned()),
                    ),
            )
            .unwrap()
            .formatted();
        let headers = message_headers(&from, &to, subject, date, &id, reply_to.then_some(&reply));
        let ours = message(
            &headers,
            boundary,
            [
                (ContentType::TEXT_PLAIN, text_body(text.to_owned())),
                (ContentType::TEXT_HTML, text_body(html.to_owned())),
            ],
        )
        .unwrap();
        (ours, theirs)
    }

    #[test]
    fn messages_are_lettres_byte_for_byte() {
        let long = format!(
            "Rappel : {} restent \u{e0} r\u{e9}gler",
            "1 503,30 \u{20ac} ".repeat(12)
        );
        for (subject, name) in [
            ("Rappel", "Camille Martin"),
            (
                "Rappel : 1 503,30 \u{20ac} restent \u{e0} r\u{e9}gler sur votre compte",
                "Zo\u{e9} L'H\u{f4}pital",
            ),
            (long.as_str(), "\"Quoted\", with a comma"),
            (
                "\u{4f60}\u{597d}\u{ff0c}\u{8bf7}\u{5c3d}\u{5feb}\u{4ed8}\u{6b3e}",
                "",
            ),
        ] {
            for reply_to in [false, true] {
                let (ours, theirs) = both(
                    subject,
                    name,
                    reply_to,
                    "Bonjour,\nr\u{e9}gl\u{e9}\n",
                    "<p>x</p>",
                );
                assert_eq!(
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(&theirs)
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn any_text_part_is_lettres_byte_for_byte(
            text in proptest::string::string_regex("([a-z =\t\r\n]|\u{e9}|\u{20ac}|\u{1F4EC}|x{70,80}){0,60}").unwrap()
        ) {
            prop_assert_eq!(ours(&text), lettre_body(&text));
        }

        #[test]
        fn any_message_is_lettres_byte_for_byte(
            subject in proptest::string::string_regex("([A-Za-z ,:;=?\"()<>@]|\u{e9}|\u{20ac}|\u{4f60}|x{20,80}){0,40}").unwrap(),
            name in proptest::string::string_regex("([A-Za-z .,'\"()<>@\\\\]|\u{e9}|\u{1F4EC}){0,30}").unwrap(),
            reply_to in any::<bool>(),
            text in proptest::string::string_regex("([a-z =\t\r\n]|\u{e9}|\u{1F4EC}){0,40}").unwrap(),
        ) {
            let subject = header_text(&subject);
            let name = header_text(&name);
            let (ours, theirs) = both(&subject, &name, reply_to, &text, &text);
            prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
        }
    }
}
