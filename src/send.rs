//! Send: deliver a committed night's e-mails over SMTP, exactly once.
//!
//! Every message goes through a durable log, `STATE/deliveries/<as-of>.csv`:
//! a `sending` line is written and synced before the message is handed to
//! the server, and its outcome (`sent`, `retry`, `deferred`, `failed`, with
//! the time and the server's reply) after. A second `send`, or a resume
//! after a crash or a dropped connection, skips what is `sent` or `failed`
//! and finishes the rest.
//!
//! SMTP cannot say whether a server kept a message whose reply never came
//! back (the process was killed, the connection dropped after the data).
//! Such a message is *in doubt*: it is not sent again unless the operator
//! says so (`--resend-in-doubt`), because a second dunning e-mail is worse
//! than a report line. Everything else is delivered exactly once.

use crate::policy::display_path;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Noop, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::Address;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::info;

/// Environment variables holding the SMTP credentials: never arguments
/// (visible in `ps`) and never logged.
pub const USER_VAR: &str = "DUNNING_SMTP_USERNAME";
pub const PASSWORD_VAR: &str = "DUNNING_SMTP_PASSWORD";

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("--smtp {url}: {message}")]
    Url { url: String, message: String },
    #[error("{file}: {message}")]
    Output { file: String, message: String },
    #[error("{file}: {message}")]
    Log { file: String, message: String },
    #[error("the SMTP server refuses this client: {reply}; check {USER_VAR} / {PASSWORD_VAR} and the relay's settings (nothing was marked failed)")]
    Refused { reply: String },
    #[error("cannot deliver through {server}: {message}; nothing was sent or marked, run `dunning send` again once it is fixed")]
    Unreachable { server: String, message: String },
    #[error("deliveries for {dir} are being sent by another `dunning send` (pid {holder}); wait for it to finish")]
    Busy { dir: String, holder: String },
}

/// What `--smtp` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `smtp://`: plain, for a local relay.
    Plain,
    /// `smtp://...?tls=starttls`: upgrade with STARTTLS, refuse without it.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Wrapper,
}

/// Parses `smtp://host[:port][?tls=starttls]` or `smtps://host[:port]`.
/// Credentials in the URL are refused: they would sit in the scheduler's
/// command line and in shell histories.
pub fn parse_url(url: &str) -> Result<Server, SendError> {
    let bad = |message: String| SendError::Url {
        url: url.to_owned(),
        message,
    };
    let u = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(SendError::Url {
            url: "(redacted: it holds credentials)".into(),
            message: format!(
                "credentials never go in the URL; set {USER_VAR} and {PASSWORD_VAR} in the environment"
            ),
        });
    }
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no host".into()))?
        .to_owned();
    let mut tls = match u.scheme() {
        "smtp" => TlsMode::Plain,
        "smtps" => TlsMode::Wrapper,
        other => return Err(bad(format!("scheme `{other}` is not smtp:// or smtps://"))),
    };
    for (k, v) in u.query_pairs() {
        match (k.as_ref(), v.as_ref()) {
            ("tls", "starttls") if tls == TlsMode::Plain => tls = TlsMode::StartTls,
            ("tls", "none") if tls == TlsMode::Plain => {}
            (k, v) => {
                return Err(bad(format!(
                    "unknown option `{k}={v}` (smtp:// takes `?tls=starttls`)"
                )))
            }
        }
    }
    let port = u.port().unwrap_or(match tls {
        TlsMode::Wrapper => 465,
        TlsMode::StartTls => 587,
        TlsMode::Plain => 25,
    });
    Ok(Server { host, port, tls })
}

#[derive(Debug, Clone)]
pub struct SendArgs {
    pub out: PathBuf,
    pub smtp: String,
    pub state: PathBuf,
    /// Messages per second at most.
    pub rate: Option<f64>,
    /// Messages to hand to the server in this run at most.
    pub max: Option<usize>,
    pub dry_run: bool,
    /// Attempts per message before it is left `deferred` for the next run.
    pub max_attempts: u32,
    /// First wait after a transient failure; doubled at each attempt.
    pub backoff: Duration,
    pub timeout: Duration,
    /// In-doubt messages to send again: none, all, or these files.
    pub resend_in_doubt: Option<Vec<String>>,
    /// In-doubt messages the relay's log shows it has: recorded as sent.
    pub confirm_sent: Vec<String>,
    /// Connections to the relay at once.
    pub connections: usize,
    /// A PEM file of the certificate authority that signed a private
    /// relay's certificate (added to the public roots).
    pub ca: Option<PathBuf>,
}

/// One message of the night.
#[derive(Debug, Clone)]
struct Message {
    file: String,
    debtor_id: String,
    currency: String,
    template: String,
    message_id: String,
}

/// A message whose server said no for good.
#[derive(Debug, Clone)]
pub struct Failure {
    pub file: String,
    pub debtor_id: String,
    pub currency: String,
    pub reply: String,
}

#[derive(Debug, Default)]
pub struct SendReport {
    pub as_of: String,
    pub total: usize,
    pub sent: usize,
    pub already_sent: usize,
    /// Transient failures that were tried again.
    pub retried: usize,
    pub failed: Vec<Failure>,
    /// Still failing transiently after the last attempt: the next `send`
    /// tries again.
    pub deferred: Vec<String>,
    pub in_doubt: Vec<String>,
    /// Not attempted: `--max` reached, or `--dry-run`.
    pub pending: usize,
}

impl SendReport {
    /// Nothing failed, nothing is left for a later run but what `--max`
    /// or `--dry-run` held back on purpose.
    pub fn complete(&self) -> bool {
        self.failed.is_empty() && self.deferred.is_empty() && self.in_doubt.is_empty()
    }

    pub fn to_text(&self) -> String {
        let mut s = format!(
            "night {}: {} e-mails; sent {} now, {} before; {} retried; {} failed; {} deferred; {} in doubt; {} not attempted\n",
            self.as_of,
            self.total,
            self.sent,
            self.already_sent,
            self.retried,
            self.failed.len(),
            self.deferred.len(),
            self.in_doubt.len(),
            self.pending
        );
        for f in &self.failed {
            s.push_str(&format!(
                "failed: {} (debtor {} {}): {}\n",
                f.file, f.debtor_id, f.currency, f.reply
            ));
        }
        for d in &self.deferred {
            s.push_str(&format!("deferred: {d} (run `dunning send` again)\n"));
        }
        for d in &self.in_doubt {
            s.push_str(&format!(
                "in doubt: {d} (the relay may have it: check its log, then `--confirm-sent {d}` if it does, `--resend-in-doubt {d}` if not)\n"
            ));
        }
        s
    }
}

/// The columns of the deliveries log.
pub const LOG_COLUMNS: &[&str] = &[
    "message_id",
    "file",
    "debtor_id",
    "currency",
    "template",
    "to_sha256",
    "status",
    "attempt",
    "at",
    "reply",
];

/// One line of the deliveries log, as read back.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LogRow {
    pub message_id: String,
    pub file: String,
    pub debtor_id: String,
    pub currency: String,
    pub template: String,
    /// SHA-256 of the lower-cased recipient address: enough to know the
    /// address bounced, without keeping the address.
    pub to_sha256: String,
    pub status: String,
    pub attempt: u32,
    pub at: String,
    pub reply: String,
}

/// How an address is kept in the deliveries log.
pub fn address_sha256(address: &str) -> String {
    crate::audit::sha256_bytes(address.trim().to_lowercase().as_bytes())
}

/// What the deliveries logs tell the next night.
#[derive(Debug, Default)]
pub struct Undelivered {
    /// Addresses that failed permanently on any night read (hashed).
    pub bounced: std::collections::HashSet<String>,
    /// E-mails of the night just before that failed for good, to be sent
    /// again another way: (debtor_id, currency, template, server reply).
    pub failed_last_night: Vec<(String, String, String, String)>,
    /// (file name, SHA-256) of every log read: a night's inputs.
    pub read: Vec<(String, String)>,
}

/// Reads the deliveries logs of the committed nights up to `previous`.
pub fn undelivered(
    state: &Path,
    nights: &[chrono::NaiveDate],
    previous: Option<chrono::NaiveDate>,
) -> Result<Undelivered, SendError> {
    let mut u = Undelivered::default();
    let Some(previous) = previous else {
        return Ok(u);
    };
    for night in nights.iter().filter(|n| **n <= previous) {
        let path = log_path(state, &night.to_string());
        if !path.exists() {
            continue;
        }
        let bytes = fs::read(&path).map_err(|e| SendError::Log {
            file: display_path(&path),
            message: e.to_string(),
        })?;
        u.read.push((
            format!("deliveries/{night}.csv"),
            crate::audit::sha256_bytes(&bytes),
        ));
        let rows = read_log(&path)?;
        let mut last: HashMap<&str, &LogRow> = HashMap::new();
        for r in &rows {
            last.insert(r.message_id.as_str(), r);
        }
        let mut failed: Vec<&LogRow> = last
            .into_values()
            .filter(|r| r.status == "failed")
            .collect();
        failed.sort_by(|a, b| {
            (&a.debtor_id, &a.currency, &a.template).cmp(&(&b.debtor_id, &b.currency, &b.template))
        });
        for r in failed {
            u.bounced.insert(r.to_sha256.clone());
            if *night == previous {
                u.failed_last_night.push((
                    r.debtor_id.clone(),
                    r.currency.clone(),
                    r.template.clone(),
                    r.reply.clone(),
                ));
            }
        }
    }
    Ok(u)
}

pub fn log_path(state: &Path, as_of: &str) -> PathBuf {
    state.join("deliveries").join(format!("{as_of}.csv"))
}

/// Every line of a deliveries log, in order. A last line cut short by a
/// crash is ignored: it was never synced, so nothing relied on it.
pub fn read_log(path: &Path) -> Result<Vec<LogRow>, SendError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(SendError::Log {
                file: display_path(path),
                message: e.to_string(),
            })
        }
    };
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let mut rdr = csv::Reader::from_reader(complete.as_bytes());
    let mut out = Vec::new();
    for (i, rec) in rdr.deserialize::<LogRow>().enumerate() {
        out.push(rec.map_err(|e| SendError::Log {
            file: display_path(path),
            message: format!("line {}: {e}", i + 2),
        })?);
    }
    Ok(out)
}

/// The append-only log, each line synced before the next message.
struct Log {
    file: File,
    path: PathBuf,
}

impl Log {
    fn open(path: &Path) -> Result<Log, SendError> {
        let err = |e: std::io::Error| SendError::Log {
            file: display_path(path),
            message: e.to_string(),
        };
        let dir = path.parent().expect("a folder");
        fs::create_dir_all(dir).map_err(err)?;
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        // A line cut short by a crash would glue onto the next one.
        let len = file.metadata().map_err(err)?.len();
        if len > 0 {
            let text = fs::read(path).map_err(err)?;
            if text.last() != Some(&b'\n') {
                file.write_all(b"\n").map_err(err)?;
            }
        }
        if !existed || len == 0 {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(LOG_COLUMNS).expect("in memory");
            file.write_all(&w.into_inner().expect("in memory"))
                .map_err(err)?;
            file.sync_all().map_err(err)?;
            File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
        }
        Ok(Log {
            file,
            path: path.to_owned(),
        })
    }

    fn record(
        &mut self,
        m: &Message,
        to_sha256: &str,
        status: &str,
        attempt: u32,
        reply: &str,
    ) -> Result<(), SendError> {
        let at = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            m.message_id.as_str(),
            &m.file,
            &m.debtor_id,
            &m.currency,
            &m.template,
            to_sha256,
            status,
            &attempt.to_string(),
            &at,
            &reply.replace(['\r', '\n'], " "),
        ])
        .expect("in memory");
        let line = w.into_inner().expect("in memory");
        self.file
            .write_all(&line)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| SendError::Log {
                file: display_path(&self.path),
                message: e.to_string(),
            })
    }
}

/// Holds `STATE/deliveries/lock` for the run: two sends of one state would
/// both see a message as not yet sent.
struct SendLock {
    _file: File,
}

fn lock(state: &Path) -> Result<SendLock, SendError> {
    let dir = state.join("deliveries");
    let err = |e: std::io::Error| SendError::Log {
        file: display_path(&dir),
        message: e.to_string(),
    };
    fs::create_dir_all(&dir).map_err(err)?;
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(dir.join("lock"))
        .map_err(err)?;
    match f.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(SendError::Busy {
                dir: display_path(state),
                holder: fs::read_to_string(dir.join("lock"))
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            })
        }
        Err(fs::TryLockError::Error(e)) => return Err(err(e)),
    }
    f.set_len(0).map_err(err)?;
    write!(f, "{}", std::process::id()).map_err(err)?;
    Ok(SendLock { _file: f })
}

/// The night's e-mails, in `emails/index.csv` order, each checked against
/// the manifest: a file changed since the night wrote it is not sent.
/// A night's e-mails: its as-of, the messages, and the manifest's hashes.
struct Night {
    as_of: String,
    list: Vec<Message>,
    hashes: HashMap<String, String>,
}

fn messages(out: &Path) -> Result<Night, SendError> {
    let manifest_path = out.join("manifest.json");
    let bad = |file: &Path, message: String| SendError::Output {
        file: display_path(file),
        message,
    };
    let manifest: serde_json::Value = fs::read(&manifest_path)
        .map_err(|e| {
            bad(
                &manifest_path,
                format!("{e}; is this a committed night's output folder?"),
            )
        })
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| bad(&manifest_path, e.to_string())))?;
    let as_of = manifest["as_of"]
        .as_str()
        .ok_or_else(|| bad(&manifest_path, "no as_of".into()))?
        .to_owned();
    let hashes: HashMap<String, String> = manifest["outputs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| {
                    Some((
                        o["file"].as_str()?.to_owned(),
                        o["sha256"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let index = out.join("emails").join("index.csv");
    let mut rdr = csv::Reader::from_path(&index).map_err(|e| bad(&index, e.to_string()))?;
    let mut list = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let r = rec.map_err(|e| bad(&index, format!("row {}: {e}", i + 2)))?;
        let get = |n: usize| r.get(n).unwrap_or("").to_owned();
        list.push(Message {
            file: get(0),
            debtor_id: get(1),
            currency: get(2),
            template: get(5),
            message_id: get(7),
        });
    }
    Ok(Night {
        as_of,
        list,
        hashes,
    })
}

/// The address in a header such as `To: "Name" <a@b.fr>` (folded lines
/// joined). Our own files, so the address is always in angle brackets.
fn header_address(eml: &[u8], name: &str) -> Option<Address> {
    let text = String::from_utf8_lossy(eml);
    let head = text.split("\r\n\r\n").next()?;
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let line = unfolded.lines().find(|l| {
        l.len() > name.len()
            && l[..name.len()].eq_ignore_ascii_case(name)
            && l[name.len()..].starts_with(':')
    })?;
    let value = &line[name.len() + 1..];
    let addr = match (value.rfind('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.trim(),
    };
    addr.trim().parse().ok()
}

/// How a delivery thread reaches the relay. Each thread keeps one
/// connection of its own and drives the exchange command by command, so
/// that when something breaks it knows whether the message's data had
/// begun to go: before that the relay cannot have the message and it is
/// simply tried again; after, it is in doubt. (lettre's transport sends
/// the whole exchange as one call, and every broken connection looked
/// the same.)
struct Relay {
    host: String,
    port: u16,
    timeout: Duration,
    tls: TlsMode,
    params: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
}

impl Relay {
    fn new(server: &Server, timeout: Duration, ca: Option<&Path>) -> Result<Relay, SendError> {
        let ca = match ca {
            None => None,
            Some(path) => {
                let pem = fs::read(path).map_err(|e| SendError::Output {
                    file: display_path(path),
                    message: e.to_string(),
                })?;
                Some(
                    lettre::transport::smtp::client::Certificate::from_pem(&pem).map_err(|e| {
                        SendError::Output {
                            file: display_path(path),
                            message: format!("not a PEM certificate: {e}"),
                        }
                    })?,
                )
            }
        };
        let params = match server.tls {
            TlsMode::Plain => None,
            TlsMode::StartTls | TlsMode::Wrapper => {
                let mut p = TlsParameters::builder(server.host.clone());
                if let Some(c) = ca {
                    p = p.add_root_certificate(c);
                }
                Some(p.build().map_err(|e| SendError::Url {
                    url: format!("{}:{}", server.host, server.port),
                    message: format!("TLS: {e}"),
                })?)
            }
        };
        // PLAIN only (see `connect`).
        let credentials = match (std::env::var(USER_VAR), std::env::var(PASSWORD_VAR)) {
            (Ok(user), Ok(password)) => Some(Credentials::new(user, password)),
            _ => None,
        };
        Ok(Relay {
            host: server.host.clone(),
            port: server.port,
            timeout,
            tls: server.tls,
            params,
            credentials,
            hello: ClientId::default(),
        })
    }

    /// A new connection, encrypted and authenticated as `--smtp` and the
    /// environment say: what lettre's transport does for each connection
    /// of its pool.
    fn connect(&self) -> Result<SmtpConnection, lettre::transport::smtp::Error> {
        let wrapper = match self.tls {
            TlsMode::Wrapper => self.params.as_ref(),
            _ => None,
        };
        let mut c = SmtpConnection::connect(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            wrapper,
            None,
        )?;
        if let (TlsMode::StartTls, Some(params)) = (self.tls, &self.params) {
            c.starttls(params, &self.hello)?;
        }
        if let Some(credentials) = &self.credentials {
            // PLAIN only: every relay offers it, and a refused PLAIN must
            // end the run rather than drift into another mechanism's
            // dialogue.
            c.auth(&[Mechanism::Plain], credentials)?;
        }
        Ok(c)
    }
}

/// How one message's exchange with the relay ended.
enum Outcome {
    /// Taken: the relay's reply.
    Sent(String),
    /// A refusal of the client rather than of the message (the greeting,
    /// encryption, credentials, the sender): the run stops before every
    /// debtor is marked failed.
    RefusesClient(String),
    /// Refused for good (5xx) for this message: its recipient or content.
    Refused(String),
    /// Certainly not taken: a 4xx reply, or a connection that failed
    /// before the message's data began to go. Tried again.
    NotTaken(String),
    /// The connection broke once the data was under way: the relay may
    /// have kept the message.
    InDoubt(String),
}

/// The step of an exchange a failure came at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Connecting: greeting, EHLO, STARTTLS, AUTH.
    Connect,
    Mail,
    Rcpt,
    /// The DATA command, before any of the message is sent.
    Data,
    /// The message itself, its final dot and the reply to it.
    Content,
}

impl Outcome {
    fn of(step: Step, e: &lettre::transport::smtp::Error) -> Outcome {
        let line = crate::error_line(e);
        let permanent = e.is_permanent();
        match step {
            // A 5xx before any message, or to the sender: the same for
            // every message of the night.
            Step::Connect | Step::Mail if permanent => Outcome::RefusesClient(line),
            _ if permanent && refuses_client(e) => Outcome::RefusesClient(line),
            _ if permanent => Outcome::Refused(line),
            Step::Content if !e.is_transient() => Outcome::InDoubt(line),
            _ => Outcome::NotTaken(line),
        }
    }

    /// This outcome of a new connection, made because the kept one
    /// answered `first`: both in the log.
    fn after(self, first: Option<String>) -> Outcome {
        let Some(first) = first else {
            return self;
        };
        let both = |then: String| format!("{first}; then, on a new connection: {then}");
        match self {
            Outcome::Sent(r) => Outcome::Sent(r),
            Outcome::RefusesClient(r) => Outcome::RefusesClient(both(r)),
            Outcome::Refused(r) => Outcome::Refused(both(r)),
            Outcome::NotTaken(r) => Outcome::NotTaken(both(r)),
            Outcome::InDoubt(r) => Outcome::InDoubt(both(r)),
        }
    }
}

/// Sends one message on `c`, step by step (what `SmtpConnection::send`
/// does, with the step that failed kept).
fn exchange(
    c: &mut SmtpConnection,
    envelope: &Envelope,
    bytes: &[u8],
) -> Result<String, (Step, lettre::transport::smtp::Error)> {
    let mut options = Vec::new();
    if !ascii_addresses(envelope) {
        options.push(MailParameter::SmtpUtfEight);
    }
    if !bytes.is_ascii() {
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    c.command(Mail::new(envelope.from().cloned(), options))
        .map_err(|e| (Step::Mail, e))?;
    for to in envelope.to() {
        c.command(Rcpt::new(to.clone(), vec![]))
            .map_err(|e| (Step::Rcpt, e))?;
    }
    c.command(Data).map_err(|e| (Step::Data, e))?;
    // The message and its final dot in one write. Written apart, as
    // `SmtpConnection::message` writes them, the five bytes of the dot
    // waited for the relay to acknowledge the message (Nagle's algorithm),
    // which it delays by up to 40 ms when nothing else comes: that wait
    // was most of each message's time.
    // The night's e-mails are 7-bit; bytes that are not UTF-8 (a file
    // no night writes) go lettre's way, slow but right.
    let resp = match std::str::from_utf8(bytes) {
        Ok(text) => c.command(with_final_dot(text)),
        Err(_) => c.message(bytes),
    }
    .map_err(|e| (Step::Content, e))?;
    Ok(format!(
        "{} {}",
        resp.code(),
        resp.message().collect::<Vec<_>>().join(" ")
    ))
}

/// A message as DATA carries it (RFC 5321, 4.5.2): a line that starts
/// with a dot gets another, and the data ends with CRLF, a dot and CRLF.
/// The bytes are those lettre's `SmtpConnection::message` writes: lines
/// end at CRLF only, as its codec reads them.
fn with_final_dot(text: &str) -> String {
    #[derive(Clone, Copy)]
    enum Line {
        Start,
        AfterCr,
        Middle,
    }
    let mut out = String::with_capacity(text.len() + 8);
    let (mut line, mut from) = (Line::Start, 0);
    for (i, b) in text.bytes().enumerate() {
        line = match (b, line) {
            (b'\r', _) => Line::AfterCr,
            (b'\n', Line::AfterCr) => Line::Start,
            (b'.', Line::Start) => {
                out.push_str(&text[from..=i]);
                out.push('.');
                from = i + 1;
                Line::Middle
            }
            _ => Line::Middle,
        };
    }
    out.push_str(&text[from..]);
    out.push_str("\r\n.\r\n");
    out
}

fn ascii_addresses(envelope: &Envelope) -> bool {
    let text = |a: &Address| AsRef::<str>::as_ref(a).is_ascii();
    envelope.from().is_none_or(text) && envelope.to().iter().all(text)
}

/// What a message needs of the relay that it does not announce: sent
/// anyway, the message would be refused or mangled.
fn unsupported(c: &SmtpConnection, envelope: &Envelope, bytes: &[u8]) -> Option<&'static str> {
    let info = c.server_info();
    if !ascii_addresses(envelope) && !info.supports_feature(Extension::SmtpUtfEight) {
        return Some("the relay does not announce SMTPUTF8, and an address is not ASCII");
    }
    if !bytes.is_ascii() && !info.supports_feature(Extension::EightBitMime) {
        return Some("the relay does not announce 8BITMIME, and the message is not 7-bit");
    }
    None
}

/// What every delivery thread shares.
struct Delivery<'a> {
    args: &'a SendArgs,
    hashes: &'a HashMap<String, String>,
    history: &'a [LogRow],
    relay: &'a Relay,
    log: &'a Mutex<Log>,
    report: Mutex<SendReport>,
    /// When the next message may go, under `--rate`.
    pace: Mutex<Instant>,
    spacing: Option<Duration>,
}

impl Delivery<'_> {
    fn record(
        &self,
        m: &Message,
        to_sha: &str,
        status: &str,
        attempt: u32,
        reply: &str,
    ) -> Result<(), SendError> {
        self.log
            .lock()
            .expect("not poisoned")
            .record(m, to_sha, status, attempt, reply)
    }

    fn with_report(&self, f: impl FnOnce(&mut SendReport)) {
        f(&mut self.report.lock().expect("not poisoned"));
    }

    /// One message, from its file to a final line in the log. An error
    /// stops the whole run (a changed file, refused credentials, a log
    /// that cannot be written).
    fn deliver(&self, m: &Message, conn: &mut Option<SmtpConnection>) -> anyhow::Result<()> {
        let args = self.args;
        let file = args.out.join("emails").join(&m.file);
        let bytes = fs::read(&file).map_err(|e| SendError::Output {
            file: display_path(&file),
            message: e.to_string(),
        })?;
        let rel = format!("emails/{}", m.file);
        if let Some(want) = self.hashes.get(&rel) {
            if *want != crate::audit::sha256_bytes(&bytes) {
                return Err(SendError::Output {
                    file: display_path(&file),
                    message: "changed since the night wrote it (SHA-256 differs from manifest.json); nothing more is sent".into(),
                }
                .into());
            }
        }
        let (Some(from), Some(to)) = (header_address(&bytes, "From"), header_address(&bytes, "To"))
        else {
            return Err(SendError::Output {
                file: display_path(&file),
                message: "no From or To address".into(),
            }
            .into());
        };
        let to_sha = address_sha256(to.as_ref());
        let envelope = Envelope::new(Some(from), vec![to]).map_err(|e| SendError::Output {
            file: display_path(&file),
            message: e.to_string(),
        })?;
        let prior = self
            .history
            .iter()
            .filter(|r| r.message_id == m.message_id && r.status == "sending")
            .count() as u32;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let n = prior + attempt;
            if let Some(sp) = self.spacing {
                let at = {
                    let mut next = self.pace.lock().expect("not poisoned");
                    let at = (*next).max(Instant::now());
                    *next = at + sp;
                    at
                };
                let now = Instant::now();
                if at > now {
                    std::thread::sleep(at - now);
                }
            }
            self.record(m, &to_sha, "sending", n, "")?;
            crate::failpoint("send-before-data");
            match self.transmit(conn, &envelope, &bytes) {
                Outcome::Sent(reply) => {
                    crate::failpoint("send-after-reply");
                    self.record(m, &to_sha, "sent", n, &reply)?;
                    self.with_report(|r| r.sent += 1);
                    return Ok(());
                }
                Outcome::RefusesClient(reply) => {
                    // About us, not this message: stop before every debtor
                    // is marked failed.
                    self.record(m, &to_sha, "deferred", n, &reply)?;
                    return Err(SendError::Refused { reply }.into());
                }
                Outcome::Refused(reply) => {
                    self.record(m, &to_sha, "failed", n, &reply)?;
                    self.with_report(|r| {
                        r.failed.push(Failure {
                            file: m.file.clone(),
                            debtor_id: m.debtor_id.clone(),
                            currency: m.currency.clone(),
                            reply,
                        })
                    });
                    return Ok(());
                }
                Outcome::InDoubt(reply) => {
                    // The connection broke in the middle of the data: the
                    // server may have kept the message.
                    self.record(m, &to_sha, "in_doubt", n, &reply)?;
                    self.with_report(|r| r.in_doubt.push(m.file.clone()));
                    return Ok(());
                }
                Outcome::NotTaken(reply) => {
                    // 4xx, or no data sent: the server did not take the
                    // message; try again later.
                    if attempt >= args.max_attempts {
                        self.record(m, &to_sha, "deferred", n, &reply)?;
                        self.with_report(|r| r.deferred.push(m.file.clone()));
                        return Ok(());
                    }
                    self.record(m, &to_sha, "retry", n, &reply)?;
                    self.with_report(|r| r.retried += 1);
                    std::thread::sleep(args.backoff * 2u32.saturating_pow(attempt - 1));
                }
            }
        }
    }

    /// One exchange for one message, on the thread's connection (made
    /// when there is none). A failed exchange closes the connection, and
    /// the next message opens another.
    fn transmit(
        &self,
        conn: &mut Option<SmtpConnection>,
        envelope: &Envelope,
        bytes: &[u8],
    ) -> Outcome {
        // A connection kept from the last message may have been closed by
        // the relay since (an idle timeout, a restart). That shows at
        // MAIL, before anything of this message is sent, as no reply or
        // the 421 the relay left when it closed: a new connection is made
        // at once.
        let mut kept = conn.is_some();
        // What the kept connection answered, for the log.
        let mut closed_with: Option<String> = None;
        loop {
            let c = match conn {
                Some(c) => c,
                None => match self.relay.connect() {
                    Ok(c) => conn.insert(c),
                    Err(e) => return Outcome::of(Step::Connect, &e).after(closed_with),
                },
            };
            if let Some(why) = unsupported(c, envelope, bytes) {
                return Outcome::Refused(why.to_owned());
            }
            match exchange(c, envelope, bytes) {
                Ok(reply) => return Outcome::Sent(reply),
                Err((step, e)) => {
                    if let Some(mut c) = conn.take() {
                        c.abort();
                    }
                    let closed = e.status().is_none_or(|code| code.to_string() == "421");
                    if kept && step == Step::Mail && closed {
                        kept = false;
                        closed_with = Some(crate::error_line(&e));
                        continue;
                    }
                    return Outcome::of(step, &e).after(closed_with);
                }
            }
        }
    }
}

fn preflight(relay: &Relay, server: &Server, args: &SendArgs) -> Result<(), SendError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let err = match relay.connect() {
            Ok(mut c) => {
                let noop = c.command(Noop);
                let _ = c.quit();
                match noop {
                    Ok(_) => return Ok(()),
                    Err(e) => crate::error_line(&e),
                }
            }
            Err(e) if e.is_permanent() => {
                return Err(SendError::Refused {
                    reply: crate::error_line(&e),
                })
            }
            Err(e) => crate::error_line(&e),
        };
        if attempt >= args.max_attempts {
            return Err(SendError::Unreachable {
                server: format!("{}:{}", server.host, server.port),
                message: err,
            });
        }
        std::thread::sleep(args.backoff * 2u32.saturating_pow(attempt - 1));
    }
}

/// Replies that refuse the client rather than the message: authentication
/// required or failed, encryption required.
fn refuses_client(e: &lettre::transport::smtp::Error) -> bool {
    e.status()
        .is_some_and(|c| matches!(c.to_string().as_str(), "530" | "534" | "535" | "538"))
}

pub fn send(args: &SendArgs) -> anyhow::Result<SendReport> {
    let server = parse_url(&args.smtp)?;
    let Night {
        as_of,
        list,
        hashes,
    } = messages(&args.out)?;
    let _lock = if args.dry_run {
        None
    } else {
        Some(lock(&args.state)?)
    };
    let path = log_path(&args.state, &as_of);
    let history = read_log(&path)?;
    let mut last: HashMap<&str, &LogRow> = HashMap::new();
    for r in &history {
        last.insert(r.message_id.as_str(), r);
    }
    let mut report = SendReport {
        as_of: as_of.clone(),
        total: list.len(),
        ..SendReport::default()
    };
    // The operator's word on messages in doubt, recorded before anything.
    let in_doubt = |s: Option<&str>| matches!(s, Some("sending" | "in_doubt"));
    let mut confirmed = std::collections::HashSet::new();
    if !args.confirm_sent.is_empty() && !args.dry_run {
        let mut log = Log::open(&path)?;
        for f in &args.confirm_sent {
            let Some(m) = list.iter().find(|m| &m.file == f) else {
                return Err(SendError::Output {
                    file: f.clone(),
                    message: "--confirm-sent: no such e-mail in this night".into(),
                }
                .into());
            };
            let row = last.get(m.message_id.as_str()).copied();
            if !in_doubt(row.map(|r| r.status.as_str())) {
                return Err(SendError::Output {
                    file: f.clone(),
                    message: "--confirm-sent: this e-mail is not in doubt".into(),
                }
                .into());
            }
            let row = row.expect("in doubt has a row");
            log.record(
                m,
                &row.to_sha256,
                "sent",
                row.attempt,
                "confirmed by the operator from the relay's log",
            )?;
            confirmed.insert(m.message_id.clone());
        }
    }
    let resend = |file: &str| match &args.resend_in_doubt {
        None => false,
        Some(files) => files.iter().any(|f| f == "all" || f == file),
    };
    let mut todo = Vec::new();
    for m in &list {
        if confirmed.contains(&m.message_id) {
            report.already_sent += 1;
            continue;
        }
        match last.get(m.message_id.as_str()).map(|r| r.status.as_str()) {
            Some("sent") => report.already_sent += 1,
            Some("failed") => {
                let r = last[m.message_id.as_str()];
                report.failed.push(Failure {
                    file: m.file.clone(),
                    debtor_id: m.debtor_id.clone(),
                    currency: m.currency.clone(),
                    reply: r.reply.clone(),
                });
            }
            Some("sending" | "in_doubt") if !resend(&m.file) => {
                report.in_doubt.push(m.file.clone())
            }
            _ => todo.push(m),
        }
    }
    if args.dry_run {
        report.pending = todo.len();
        return Ok(report);
    }
    let relay = Relay::new(&server, args.timeout, args.ca.as_deref())?;
    // Reach the relay once before taking any message: a wrong host, an
    // untrusted certificate or refused credentials stop the run here, with
    // nothing marked.
    preflight(&relay, &server, args)?;
    let log = Mutex::new(Log::open(&path)?);
    let started = Instant::now();
    let limit = args.max.map_or(todo.len(), |m| m.min(todo.len()));
    report.pending = todo.len() - limit;
    let ctx = Delivery {
        args,
        hashes: &hashes,
        history: &history,
        relay: &relay,
        log: &log,
        report: Mutex::new(report),
        pace: Mutex::new(Instant::now()),
        spacing: args
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(1.0 / r)),
    };
    // Several connections at once: a relay answers each message only after
    // its end, so one connection spends most of its time waiting.
    let next = AtomicUsize::new(0);
    let stop: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let workers = args.connections.clamp(1, limit.max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                // This thread's connection, kept from one message to the
                // next, and closed politely at the end.
                let mut conn: Option<SmtpConnection> = None;
                loop {
                    if stop.lock().expect("not poisoned").is_some() {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= limit {
                        break;
                    }
                    if let Err(e) = ctx.deliver(todo[i], &mut conn) {
                        stop.lock().expect("not poisoned").get_or_insert(e);
                        break;
                    }
                }
                if let Some(mut c) = conn {
                    let _ = c.quit();
                }
            });
        }
    });
    if let Some(e) = stop.into_inner().expect("not poisoned") {
        return Err(e);
    }
    let mut report = ctx.report.into_inner().expect("not poisoned");
    // Reports list files in the night's order, whatever the threads did.
    let order: HashMap<&str, usize> = list
        .iter()
        .enumerate()
        .map(|(i, m)| (m.file.as_str(), i))
        .collect();
    let key = |f: &String| order.get(f.as_str()).copied().unwrap_or(usize::MAX);
    report.failed.sort_by_key(|f| key(&f.file));
    report.deferred.sort_by_key(key);
    report.in_doubt.sort_by_key(key);
    info!(
        stage = "send",
        night = %as_of,
        sent = report.sent,
        already_sent = report.already_sent,
        retried = report.retried,
        failed = report.failed.len(),
        deferred = report.deferred.len(),
        in_doubt = report.in_doubt.len(),
        ms = started.elapsed().as_millis() as u64,
        "delivery run finished"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let s = parse_url("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((s.port, s.tls), (2525, TlsMode::Plain));
        let s = parse_url("smtp://relay.example?tls=starttls").unwrap();
        assert_eq!((s.port, s.tls), (587, TlsMode::StartTls));
        let s = parse_url("smtps://relay.example").unwrap();
        assert_eq!((s.port, s.tls), (465, TlsMode::Wrapper));
        let e = parse_url("smtp://bob:secret@relay.example")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret") && e.contains(USER_VAR), "{e}");
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("smtp://x?tls=maybe").is_err());
    }

    /// lettre's `ClientCodec::encode` (transport/smtp/client/mod.rs,
    /// 0.11), which is private: what `SmtpConnection::message` writes,
    /// before its final `\r\n.\r\n`.
    fn lettres_codec(frame: &[u8]) -> Vec<u8> {
        #[derive(Clone, Copy)]
        enum S {
            Middle,
            StartingNewLine,
            StartOfNewLine,
        }
        let (mut status, mut buf) = (S::StartOfNewLine, Vec::new());
        for &b in frame {
            buf.push(b);
            match (b, status) {
                (b'\r', _) => status = S::StartingNewLine,
                (b'\n', S::StartingNewLine) => status = S::StartOfNewLine,
                (_, S::StartingNewLine) => status = S::Middle,
                (b'.', S::StartOfNewLine) => {
                    status = S::Middle;
                    buf.push(b'.');
                }
                (_, S::StartOfNewLine) => status = S::Middle,
                _ => {}
            }
        }
        buf
    }

    #[test]
    fn data_is_dot_stuffed_as_lettre_does() {
        let cases = [
            "",
            ".",
            "..x",
            "a\r\n.b\r\n.\r\n",
            "a\n.b",
            "a\r.b",
            "\r\n\r\n.",
            ".é\r\n.€",
        ];
        for text in cases {
            let mut want = lettres_codec(text.as_bytes());
            want.extend_from_slice(b"\r\n.\r\n");
            assert_eq!(with_final_dot(text).as_bytes(), want, "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_dot_stuffed_as_lettre_does(text in "[.\r\na é]{0,60}") {
            let mut want = lettres_codec(text.as_bytes());
            want.extend_from_slice(b"\r\n.\r\n");
            let got = with_final_dot(&text);
            proptest::prop_assert_eq!(got.as_bytes(), &want[..]);
        }
    }

    #[test]
    fn header_addresses() {
        let eml =
            b"From: \"Banque\" <a@b.fr>\r\nTo: \"Jean\r\n Roux\" <j@x.fr>\r\n\r\nTo: <no@x.fr>\r\n";
        assert_eq!(header_address(eml, "From").unwrap().to_string(), "a@b.fr");
        assert_eq!(header_address(eml, "To").unwrap().to_string(), "j@x.fr");
    }
}
