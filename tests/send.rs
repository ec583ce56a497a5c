//! `dunning send` against a real SMTP server on loopback (aiosmtpd, from
//! Debian's python3-aiosmtpd, which scripts/setup.sh installs): what the
//! server receives is compared with the night's `.eml` files byte for byte.

mod common;
#[path = "smtp/relay.rs"]
mod relay;
use common::*;
use relay::Server;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The first night of the holds scenario (13 e-mails) in a folder of its
/// own, and where a test relay keeps what it receives.
struct Scene {
    tmp: tempfile::TempDir,
    state: PathBuf,
    out: PathBuf,
    smtp: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let tmp = tempfile::tempdir().unwrap();
        let n = &nights(&root().join("fixtures/holds"))[0];
        let state = tmp.path().join("state");
        let out = tmp.path().join("out");
        let o = run_night(n, &policy(), &state, &out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let smtp = tmp.path().join("smtp");
        Scene {
            tmp,
            state,
            out,
            smtp,
        }
    }

    /// A relay on `port` (0: any free one) behaving as `extra` says.
    fn relay(&self, port: u16, extra: &[&str]) -> Server {
        Server::start(&self.smtp, port, extra)
    }

    fn send(&self, server: &Server, extra: &[&str]) -> std::process::Output {
        send(&self.out, &self.state, &server.url(), extra)
    }

    /// A well-behaved relay on `port` (where a misbehaving one was), and
    /// the night sent to it again.
    fn resume(&self, port: u16) -> (std::process::Output, Server) {
        let server = self.relay(port, &[]);
        (self.send(&server, &[]), server)
    }
}

/// index.csv rows: message_id -> (file, to).
fn index(out: &Path) -> BTreeMap<String, (String, String)> {
    let mut rdr = csv::Reader::from_path(out.join("emails/index.csv")).unwrap();
    rdr.records()
        .map(|r| {
            let r = r.unwrap();
            (r[7].to_owned(), (r[0].to_owned(), r[3].to_owned()))
        })
        .collect()
}

fn send(out: &Path, state: &Path, url: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["-q", "send", out.to_str().unwrap(), "--smtp", url];
    args.extend(["--state", state.to_str().unwrap()]);
    args.extend(["--backoff-ms", "20", "--timeout-s", "5"]);
    args.extend(extra);
    run(&args)
}

/// The night's delivery log (`STATE/deliveries/<as-of>.csv`).
fn delivery_log(state: &Path) -> String {
    std::fs::read_to_string(state.join("deliveries/2026-01-05.csv")).unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every message of the night received exactly once, each the `.eml`
/// file's bytes (SMTP ends the data with a line break).
fn assert_exactly_once(out: &Path, got: &BTreeMap<String, Vec<Vec<u8>>>) {
    let idx = index(out);
    assert_eq!(got.len(), idx.len(), "messages received");
    for (mid, (file, _)) in &idx {
        let copies = got
            .get(mid)
            .unwrap_or_else(|| panic!("{file} never arrived"));
        assert_eq!(copies.len(), 1, "{file} arrived {} times", copies.len());
        let mut want = std::fs::read(out.join("emails").join(file)).unwrap();
        want.extend_from_slice(b"\r\n");
        assert!(copies[0] == want, "{file}: the server got other bytes");
    }
}

#[test]
fn delivers_every_message_once_byte_for_byte() {
    let scene = Scene::new();
    let (tmp, state, out) = (scene.tmp.path(), scene.state.clone(), scene.out.clone());
    let server = scene.relay(0, &[]);

    let o = send(&out, &state, &server.url(), &["--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("13 e-mails; sent 0 now, 0 before"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("13 not attempted"), "{}", stdout(&o));
    assert!(server.received().is_empty(), "a dry run sent something");

    let o = send(&out, &state, &server.url(), &[]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("sent 13 now, 0 before; 0 retried; 0 failed"),
        "{}",
        stdout(&o)
    );
    let got = server.received();
    assert_exactly_once(&out, &got);
    // The envelope goes to the address of the index.
    for j in std::fs::read_dir(tmp.join("smtp")).unwrap() {
        let p = j.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            let (_, to) = &index(&out)[v["message_id"].as_str().unwrap()];
            assert_eq!(v["to"], serde_json::json!([to]));
        }
    }

    // A second send sends nothing.
    let o = send(&out, &state, &server.url(), &[]);
    assert!(o.status.success());
    assert!(
        stdout(&o).contains("sent 0 now, 13 before"),
        "{}",
        stdout(&o)
    );
    assert_exactly_once(&out, &server.received());
    // The log holds no address, only its hash.
    let log = delivery_log(&state);
    assert!(!log.contains("@example.fr"), "{log}");
}

#[test]
fn a_server_stopped_mid_batch_then_restarted_gets_each_message_once() {
    let scene = Scene::new();
    let mut server = scene.relay(0, &["--stop-after", "5"]);
    // One connection: the relay stops between two messages. (With several,
    // the messages under way when it stops are in doubt; see the
    // killed-sender test for how those are settled.)
    let o = scene.send(&server, &["--max-attempts", "2", "--connections", "1"]);
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    let text = stdout(&o);
    let first = server.received().len();
    assert_eq!(first, 5, "{text}");
    assert!(text.contains(&format!("sent {first} now")), "{text}");
    assert!(text.contains("deferred: "), "{text}");
    // The relay said it was stopping before the next message began:
    // nothing is in doubt.
    assert!(text.contains("; 0 in doubt;"), "{text}");
    let log = delivery_log(&scene.state);
    assert!(log.contains("(421): 4.3.2 shutting down"), "{log}");
    let _ = server.child.wait();

    let (o, server) = scene.resume(server.port);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains(&format!("sent {} now, {first} before", 13 - first)),
        "{}",
        stdout(&o)
    );
    assert_exactly_once(&scene.out, &server.received());
}

#[test]
fn a_451_is_retried_and_delivered_once() {
    let scene = Scene::new();
    let (state, out) = (scene.state.clone(), scene.out.clone());
    let server = scene.relay(0, &["--tempfail-first"]);
    let o = send(&out, &state, &server.url(), &[]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("sent 13 now, 0 before; 13 retried; 0 failed"),
        "{}",
        stdout(&o)
    );
    assert_exactly_once(&out, &server.received());
    let log = delivery_log(&state);
    assert_eq!(log.matches(",retry,").count(), 13, "{log}");
    assert!(log.contains("(451): 4.3.0 try again later"), "{log}");
}

#[test]
fn a_550_is_failed_reported_and_sent_as_a_letter_the_next_night() {
    let scene = Scene::new();
    let (tmp, state, out) = (scene.tmp.path(), scene.state.clone(), scene.out.clone());
    let idx = index(&out);
    let (file, to) = idx.values().next().unwrap().clone();
    let debtor = file.split('-').next().unwrap().to_owned();
    let server = scene.relay(0, &["--reject", &to]);
    let o = send(&out, &state, &server.url(), &[]);
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("sent 12 now, 0 before; 0 retried; 1 failed"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "failed: {file} (debtor {debtor} EUR): permanent error (550)"
        )),
        "{text}"
    );
    // Sending again does not retry a permanent failure.
    let o = send(&out, &state, &server.url(), &[]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stdout(&o).contains("sent 0 now, 12 before; 0 retried; 1 failed"),
        "{}",
        stdout(&o)
    );
    assert_eq!(server.received().len(), 12);

    // The next night: the reminder goes by letter, and the address is not
    // used again.
    let n = &nights(&root().join("fixtures/holds"))[1];
    let out2 = tmp.join("out2");
    let o = run_night(n, &policy(), &state, &out2, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let decisions = std::fs::read_to_string(out2.join("decisions.csv")).unwrap();
    let row = decisions
        .lines()
        .find(|l| l.starts_with(&format!("{debtor},EUR,")))
        .unwrap();
    assert!(row.contains("letter:reminder"), "{row}");
    assert!(
        row.contains(
            "email:reminder of the last night failed for good (550): sent as letter:reminder"
        ),
        "{row}"
    );
    let letters = std::fs::read_to_string(out2.join("letters/index.csv")).unwrap();
    assert!(
        letters.contains(&format!("{debtor}-EUR-reminder.pdf")),
        "{letters}"
    );
    // The deliveries log is an input of that night, in its manifest... and
    // a re-run of the night reads the same log and gives the same files.
    let again = tmp.join("out2-again");
    let o = run_night(n, &policy(), &state, &again, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree(&out2), tree(&again));
}

#[test]
fn a_lost_reply_leaves_the_message_in_doubt_and_nothing_is_sent_twice() {
    let scene = Scene::new();
    // The server keeps the 4th message and dies before replying.
    let mut server = scene.relay(0, &["--drop-after", "4"]);
    let o = scene.send(&server, &["--max-attempts", "2", "--connections", "1"]);
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("in doubt: "), "{}", stdout(&o));
    let _ = server.child.wait();

    let (o, server) = scene.resume(server.port);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(stdout(&o).contains("1 in doubt"), "{}", stdout(&o));
    // The server did keep it: every message arrived, once.
    assert_exactly_once(&scene.out, &server.received());
}

/// A connection cut before the message's data began to go (at MAIL, RCPT
/// or the DATA command): the relay cannot have the message, so it is
/// sent again, not left in doubt for the operator. At MAIL, on a
/// connection kept from the message before, that is a relay closing an
/// idle connection: a new one is made at once, with no retry counted.
#[test]
fn a_connection_cut_before_the_data_is_tried_again_not_left_in_doubt() {
    for (step, retried) in [("mail", 0), ("rcpt", 1), ("data", 1)] {
        let scene = Scene::new();
        let server = scene.relay(0, &["--drop-at", &format!("{step}:4")]);
        let o = scene.send(&server, &["--connections", "1"]);
        let text = stdout(&o);
        assert!(o.status.success(), "{step}: {text}{}", stderr(&o));
        assert!(
            text.contains(&format!(
                "sent 13 now, 0 before; {retried} retried; 0 failed; 0 deferred; 0 in doubt"
            )),
            "{step}: {text}"
        );
        assert_exactly_once(&scene.out, &server.received());
        let log = delivery_log(&scene.state);
        assert_eq!(log.matches(",retry,").count(), retried, "{step}: {log}");
        assert!(!log.contains(",in_doubt,"), "{step}: {log}");
    }
}

/// A relay that refuses the night's sender would refuse every message:
/// the run stops at the first, with nothing marked failed (which would
/// send every debtor a letter the next night and mark every address
/// bounced), and a later run against a relay that takes the sender
/// delivers everything once.
#[test]
fn a_relay_refusing_the_sender_stops_the_run_with_nothing_failed() {
    let scene = Scene::new();
    let server = scene.relay(0, &["--refuse-sender"]);
    let o = scene.send(&server, &[]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("refuses this client") && err.contains("(550)"),
        "{err}"
    );
    assert!(server.received().is_empty());
    let log = delivery_log(&scene.state);
    assert!(!log.contains(",failed,"), "{log}");
    let port = server.port;
    drop(server);

    let (o, server) = scene.resume(port);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("sent 13 now, 0 before; 0 retried; 0 failed"),
        "{}",
        stdout(&o)
    );
    assert_exactly_once(&scene.out, &server.received());
}

#[test]
fn a_killed_send_resumes_without_duplicates() {
    let scene = Scene::new();
    let (state, out) = (scene.state.clone(), scene.out.clone());
    let server = scene.relay(0, &["--delay-ms", "150"]);
    let mut child = Command::new(bin())
        .args(["-q", "send", out.to_str().unwrap(), "--smtp", &server.url()])
        .args(["--state", state.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it in the middle of the batch.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while server.received().len() < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = server.received().len();
    assert!((4..13).contains(&before), "{before}");
    let o = send(&out, &state, &server.url(), &[]);
    let text = stdout(&o);
    // Nothing arrives twice. Messages whose reply the kill cut off are in
    // doubt; the operator checks the relay's log and says which it has.
    let got = server.received();
    assert!(got.values().all(|c| c.len() == 1), "{text}");
    if !o.status.success() {
        assert!(text.contains("in doubt"), "{text}");
        let idx = index(&out);
        let (mut has, mut lacks) = (Vec::new(), Vec::new());
        for line in text.lines().filter_map(|l| l.strip_prefix("in doubt: ")) {
            let file = line.split(' ').next().unwrap().to_owned();
            let mid = idx.iter().find(|(_, (f, _))| *f == file).unwrap().0;
            if got.contains_key(mid) {
                has.push(file);
            } else {
                lacks.push(file);
            }
        }
        let mut extra = Vec::new();
        let (h, l) = (has.join(","), lacks.join(","));
        if !has.is_empty() {
            extra.extend(["--confirm-sent", h.as_str()]);
        }
        if !lacks.is_empty() {
            extra.extend(["--resend-in-doubt", l.as_str()]);
        }
        let o = send(&out, &state, &server.url(), &extra);
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    }
    assert_exactly_once(&out, &server.received());
    // And a last run has nothing left to do.
    let o = send(&out, &state, &server.url(), &[]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("sent 0 now, 13 before"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn credentials_never_in_the_url() {
    let scene = Scene::new();
    let (state, out) = (scene.state.clone(), scene.out.clone());
    let o = send(&out, &state, "smtp://bob:hunter2@127.0.0.1:1", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stderr(&o).contains("hunter2"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("DUNNING_SMTP_PASSWORD"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn max_and_rate_hold_back_and_space_the_messages() {
    let scene = Scene::new();
    let (state, out) = (scene.state.clone(), scene.out.clone());
    let server = scene.relay(0, &[]);
    let o = send(&out, &state, &server.url(), &["--max", "4"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("sent 4 now, 0 before"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("9 not attempted"), "{}", stdout(&o));
    assert_eq!(server.received().len(), 4);
    // 9 messages at 20 a second cannot take less than 8 intervals of 50 ms
    // (a lower bound: a slow machine only makes it longer).
    let t = std::time::Instant::now();
    let o = send(&out, &state, &server.url(), &["--rate", "20/s"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert_exactly_once(&out, &server.received());
}

/// A private certificate authority and a certificate for `localhost`
/// signed by it, made with openssl.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let sh = |args: &[&str]| {
        let o = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    sh(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=dunning test CA",
    ]);
    sh(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    sh(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

fn send_env(
    out: &Path,
    state: &Path,
    url: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = Command::new(bin());
    cmd.args(["-q", "send", out.to_str().unwrap(), "--smtp", url])
        .args([
            "--state",
            state.to_str().unwrap(),
            "--backoff-ms",
            "20",
            "--timeout-s",
            "5",
        ])
        .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn starttls_and_smtps_with_a_private_ca_and_credentials_from_the_environment() {
    let scene = Scene::new();
    let (tmp, state, out) = (scene.tmp.path(), scene.state.clone(), scene.out.clone());
    let (ca, cert, key) = certificates(tmp);
    let (cert, key, ca) = (
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        ca.to_str().unwrap(),
    );
    let creds = [
        ("DUNNING_SMTP_USERNAME", "dunning"),
        ("DUNNING_SMTP_PASSWORD", "s3cret"),
    ];

    // STARTTLS required by the server, AUTH required too.
    let server = Server::start(
        &tmp.join("smtp-starttls"),
        0,
        &[
            "--cert",
            cert,
            "--key",
            key,
            "--starttls",
            "--auth",
            "dunning:s3cret",
        ],
    );
    let url = format!("smtp://localhost:{}?tls=starttls", server.port);
    // Without the private CA the certificate is not trusted: the run stops
    // before taking any message.
    let o = send_env(&out, &state, &url, &["--max-attempts", "1"], &creds);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("certificate"), "{}", stderr(&o));
    assert!(server.received().is_empty());
    assert!(!state.join("deliveries/2026-01-05.csv").exists());
    // Wrong credentials: the run stops at once, nothing is marked failed.
    let o = send_env(
        &out,
        &state,
        &url,
        &["--smtp-ca", ca],
        &[
            ("DUNNING_SMTP_USERNAME", "dunning"),
            ("DUNNING_SMTP_PASSWORD", "wrong"),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("refuses this client"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("wrong"), "{}", stderr(&o));
    let o = send_env(&out, &state, &url, &["--smtp-ca", ca], &creds);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_exactly_once(&out, &server.received());

    // smtps://: TLS from the first byte, on another night's state.
    let state2 = tmp.join("state2");
    copy_tree(&state, &state2);
    std::fs::remove_dir_all(state2.join("deliveries")).unwrap();
    let server = Server::start(
        &tmp.join("smtp-smtps"),
        0,
        &["--cert", cert, "--key", key, "--implicit-tls"],
    );
    let url = format!("smtps://localhost:{}", server.port);
    let o = send_env(&out, &state2, &url, &["--smtp-ca", ca], &[]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_exactly_once(&out, &server.received());
}
