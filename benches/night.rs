//! Whole nights on `dunning gen` data, timed stage by stage against a bare
//! Polars scan + group-by of the same ledger measured in the same run.
//!
//!   cargo bench --bench night                       # 100,000 debtors
//!   DUNNING_BENCH_DEBTORS=100000,1000000 cargo bench --bench night
//!   DUNNING_BENCH_PARTS=decisions DUNNING_BENCH_DEBTORS=1000000 cargo bench --bench night
//!                                                   # start to decisions.csv only, in
//!                                                   # rounds (DUNNING_BENCH_ROUNDS, 3)
//!                                                   # each with its own baseline run
//!   DUNNING_BENCH_TIMELINE=1 ...                    # and every night's log, timed
//!   DUNNING_BENCH_LOG=debug ...                     # the nights' log level (info)
//!   DUNNING_BENCH_PARTS=emails cargo bench --bench night
//!                                                   # the e-mails-only nights alone
//!   DUNNING_BENCH_PARTS=send cargo bench --bench night
//!                                                   # `dunning send` to a loopback relay,
//!                                                   # against lettre's pooled transport
//!   DUNNING_BENCH_PARTS=hash DUNNING_BENCH_DEBTORS=1000000 cargo bench --bench night
//!                                                   # the inputs' hashing alone
//!
//! Each size: generate (kept under $CARGO_TARGET_DIR/bench-data for the next
//! run), the Polars baseline (best of 3), a CSV night and a Parquet night
//! (Snappy, as warehouses export it; the decisions rounds add a zstd one,
//! Polars' default) of the release binary, each a fresh state. Prints wall time per stage
//! (from the night's JSON log), the time to `decisions.csv`, e-mails per
//! second and the peak RSS of the night's process (getrusage). Figures are
//! ratios against the baseline of the same run: these machines are shared.

#[path = "../tests/common.rs"]
mod common;
#[path = "../tests/smtp/relay.rs"]
mod relay;

use polars::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const AS_OF: &str = "2026-11-22";

/// Where the benchmark keeps its data and its nights, across runs.
fn bench_data() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("bench-data")
}

fn data_dir(n: usize, format: &str) -> PathBuf {
    // v2: Parquet amounts became decimals (were text). v3: Parquet is
    // Snappy unless named `parquet-zstd`.
    bench_data().join(format!("{n}-{format}-v3"))
}

fn generate(n: usize, format: &str) -> PathBuf {
    let dir = data_dir(n, format);
    if dir.join("done").exists() {
        return dir;
    }
    let t = Instant::now();
    let g = dunning::gen::generate(&dunning::gen::GenArgs {
        debtors: n,
        seed: 1,
        as_of: dunning::dates::parse_date(AS_OF).unwrap(),
        out: dir.clone(),
        format: if format == "csv" {
            dunning::gen::Format::Csv
        } else {
            dunning::gen::Format::Parquet
        },
        compression: if format == "parquet-zstd" {
            dunning::gen::Compression::Zstd
        } else {
            dunning::gen::Compression::Snappy
        },
    })
    .expect("gen");
    std::fs::write(dir.join("done"), b"").unwrap();
    println!(
        "  generated {format}: {} debtors, {} items, {} events in {:.1} s",
        g.debtors,
        g.items,
        g.events,
        t.elapsed().as_secs_f64()
    );
    dir
}

/// The floor: a typed Polars scan and group-by of the ledger, no checks.
fn baseline(ledger: &Path) -> f64 {
    (0..3)
        .map(|_| baseline_once(ledger).wall)
        .fold(f64::MAX, f64::min)
}

/// What one run cost: wall and CPU seconds (user + system, every thread)
/// and the pages it touched first (minor faults), which on these virtual
/// machines cost more than anything else a night does with its memory.
#[derive(Debug, Clone, Copy)]
struct Cost {
    wall: f64,
    cpu: f64,
    minflt: i64,
}

fn cpu_of(u: &libc::rusage) -> f64 {
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn own_usage() -> libc::rusage {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: fills a local with this process's usage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u
}

/// One baseline run, its CPU and faults from this process's usage.
fn baseline_once(ledger: &Path) -> Cost {
    let d = dunning::dates::to_days(dunning::dates::parse_date(AS_OF).unwrap());
    let before = own_usage();
    let t = Instant::now();
    {
        let df = LazyCsvReader::new(PlRefPath::from(ledger.to_str().unwrap()))
            .with_has_header(true)
            .with_try_parse_dates(true)
            .finish()
            .unwrap()
            .with_column((lit(d) - col("due_on").cast(DataType::Int32)).alias("dpd"))
            .with_column(
                col("open_amount")
                    .gt(lit(0.0))
                    .and(col("dpd").gt(lit(3)))
                    .alias("is_overdue"),
            )
            .group_by([col("debtor_id"), col("currency")])
            .agg([
                col("open_amount")
                    .filter(col("is_overdue"))
                    .sum()
                    .alias("overdue"),
                col("open_amount").sum().alias("open"),
                col("dpd").filter(col("is_overdue")).max().alias("max_dpd"),
            ])
            .collect()
            .unwrap();
        assert!(df.height() > 0);
    }
    let wall = t.elapsed().as_secs_f64();
    let after = own_usage();
    Cost {
        wall,
        cpu: cpu_of(&after) - cpu_of(&before),
        minflt: after.ru_minflt - before.ru_minflt,
    }
}

/// SHA-256 of the mapped ledger as the night hashes its inputs
/// (`audit::update`, which asks for the memory ahead), against the same
/// digest fed whole windows: alternated, three rounds, a fresh mapping
/// each, the file in the page cache.
fn hashing(ledger: &Path) {
    use sha2::{Digest as _, Sha256};
    let mut best = [f64::MAX; 2];
    let mut digests = [String::new(), String::new()];
    for _ in 0..3 {
        for (k, best) in best.iter_mut().enumerate() {
            let bytes = dunning::FileBytes::open(ledger).unwrap();
            let t = Instant::now();
            let mut sha = Sha256::new();
            if k == 0 {
                for window in bytes.chunks(1 << 20) {
                    sha.update(window);
                }
            } else {
                for window in bytes.chunks(1 << 20) {
                    dunning::audit::update(&mut sha, window);
                }
            }
            digests[k] = format!("{:x}", sha.finalize());
            *best = best.min(t.elapsed().as_secs_f64());
        }
    }
    assert_eq!(digests[0], digests[1], "the two ways gave other digests");
    let mb = std::fs::metadata(ledger).unwrap().len() as f64 / 1e6;
    println!(
        "  SHA-256 of ledger.csv ({mb:.0} MB, mapped, best of 3): whole windows {:.2} GB/s, audit::update {:.2} GB/s = {:.2}x",
        mb / 1e3 / best[0],
        mb / 1e3 / best[1],
        best[0] / best[1]
    );
}

struct Night {
    wall: f64,
    peak_rss_mib: f64,
    stages: BTreeMap<String, f64>,
    to_decisions: f64,
    emails: u64,
    letters: u64,
    actions_s: f64,
    /// The documents stage's user and system CPU seconds, from the log.
    actions_cpu: (f64, f64),
    /// Peak RSS when `decisions.csv` was written, from the night's log.
    rss_to_decisions: f64,
    /// The whole process's CPU seconds and minor faults (to its end, which
    /// with a failpoint is soon after `decisions.csv`).
    cpu: f64,
    minflt: i64,
}

/// Runs one night of the release binary; peak RSS from wait4.
// The child is reaped by `wait4`, not `Child::wait`, to get its rusage.
fn night(dir: &Path, ext: &str, work: &Path) -> Night {
    night_with(dir, ext, work, &[], &retail_fr())
}

fn retail_fr() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/retail-fr")
}

/// retail-fr with e-mails that cannot be sent dropped instead of turned
/// into letters: a night whose documents are all e-mails, to measure them
/// alone (a PDF letter costs several e-mails).
fn emails_only(work: &Path) -> PathBuf {
    let dir = work.with_extension("emails-only-policy");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let from = retail_fr();
    for e in walk(&from) {
        let to = dir.join(e.strip_prefix(&from).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&e, &to).unwrap();
    }
    let yaml = dir.join("policy.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    let from = "allowed_when: has_email && consent_email && !do_not_contact\n    otherwise: letter";
    assert!(text.contains(from), "retail-fr's e-mail channel changed");
    std::fs::write(&yaml, text.replace(from, &from.replace("letter", "drop"))).unwrap();
    dir
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// E-mails alone, rendered and written (best of 2), against the same files
/// written with nothing rendered ([`bare_files`], best of 2, alternated with
/// the nights), and their text parts encoded apart ([`text_parts`]).
fn emails(csv: &Path, work: &Path) -> Vec<PathBuf> {
    let policy = emails_only(work);
    // Each run into a folder of its own, nothing deleted before the end of
    // the benchmark (see [`settled`]).
    let dirs: Vec<PathBuf> = (0..2)
        .map(|i| work.with_extension(format!("emails-{i}")))
        .collect();
    let bare_dirs: Vec<PathBuf> = (0..2)
        .map(|i| work.with_extension(format!("bare-files-{i}")))
        .collect();
    settled();
    let mut runs = Vec::new();
    let mut bare = Vec::new();
    let mut files = Vec::new();
    for (d, b) in dirs.iter().zip(&bare_dirs) {
        // The last run's 78,000 files are on disk, not being written back
        // beside this one.
        written_back();
        runs.push(night_with(csv, "csv", d, &[], &policy));
        if files.is_empty() {
            files = read_all(&d.join("out/emails"));
        }
        written_back();
        bare.push(bare_files(&files, b));
    }
    drop(files);
    text_parts(&dirs[0].join("out/emails"));
    let best = runs
        .iter()
        .min_by(|a, b| a.actions_s.total_cmp(&b.actions_s))
        .unwrap();
    assert_eq!(best.letters, 0, "the e-mails-only night wrote letters");
    let bare_best = bare.iter().copied().fold(f64::INFINITY, f64::min);
    // User CPU is the engine's own work and steadier than the wall time;
    // system CPU is mostly the file system's.
    println!(
        "  e-mails only (best of 2: {}): {} e-mails in {:.2} s = {:.0} e-mails/s",
        runs.iter()
            .map(|r| format!(
                "{:.2} s, {:.2} user + {:.2} system CPU s",
                r.actions_s, r.actions_cpu.0, r.actions_cpu.1
            ))
            .collect::<Vec<_>>()
            .join("; "),
        best.emails,
        best.actions_s,
        best.emails as f64 / best.actions_s
    );
    println!(
        "  baseline: the same {} files written, nothing rendered (best of 2: {}): {:.2} s = {:.0} files/s; \
         the night's documents took {:.2}x the baseline",
        best.emails,
        bare.iter()
            .map(|s| format!("{s:.2} s"))
            .collect::<Vec<_>>()
            .join(", "),
        bare_best,
        best.emails as f64 / bare_best,
        best.actions_s / bare_best
    );
    let _ = std::fs::remove_dir_all(&policy);
    dirs.into_iter().chain(bare_dirs).collect()
}

/// Every file of a folder, by name, read into memory.
fn read_all(dir: &Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name(), std::fs::read(e.path()).unwrap())
        })
        .filter(|(n, _)| n.to_str().is_some_and(|n| n.ends_with(".eml")))
        .collect();
    files.sort();
    files
}

/// Seconds to write `files` into a fresh folder `dir`, one `fs::write` each
/// on every core, as the night writes its documents, with nothing to
/// render: what creating that many files costs on this machine at this
/// moment. On these virtual machines that swings 2-3x from hour to hour
/// (new page-cache pages, inodes recently freed), which no e-mails per
/// second figure on its own can tell from the engine's own time.
fn bare_files(files: &[(std::ffi::OsString, Vec<u8>)], dir: &Path) -> f64 {
    use rayon::prelude::*;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let t = Instant::now();
    let out = dir.join("emails");
    std::fs::create_dir(&out).unwrap();
    files
        .par_iter()
        .for_each(|(name, bytes)| std::fs::write(out.join(name), bytes).unwrap());
    t.elapsed().as_secs_f64()
}

/// Where the last benchmark noted when it removed its nights' files.
fn deleted_marker() -> PathBuf {
    bench_data().join("deleted-at")
}

/// Waits until the files the last benchmark removed no longer slow file
/// creation. Without a journal, ext4's inode allocator skips inodes freed
/// in the last 60 seconds, or 5 minutes while their inode table block is
/// dirty (`recently_deleted`; a block with new inodes in it is dirty
/// again), each skip a lookup: an e-mails night started after sync(2) and
/// a minute's wait, two minutes after the last run removed its 156,000
/// files, wrote 10,000-11,000 e-mails a second against 21,000 on a quiet
/// file system, a fifth of its time spent skipping inodes
/// (BENCHMARKS.md, 2026-12-03).
fn settled() {
    const RECENTCY_DIRTY: u64 = 300;
    let age = std::fs::metadata(deleted_marker())
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map(|d| d.as_secs());
    if let Some(age) = age.filter(|&a| a < RECENTCY_DIRTY) {
        let wait = RECENTCY_DIRTY + 5 - age;
        println!("  (waiting {wait} s: the last benchmark removed its files {age} s ago)");
        std::thread::sleep(std::time::Duration::from_secs(wait));
    }
}

/// `dunning send` of the first [`SENT`] e-mails of an e-mails-only night
/// to a relay on loopback, over its default 4 connections, against the
/// same messages handed to lettre's pooled `SmtpTransport` by 4 threads
/// (how `send` delivered before it drove its own connections), nothing
/// logged. Alternated, best of 2 each; each run against a fresh relay,
/// `send` from a copy of the night's state.
fn sending(csv: &Path, work: &Path) {
    const SENT: usize = 3_000;
    let policy = emails_only(work);
    let night_dir = work.with_extension("send");
    night_with(csv, "csv", &night_dir, &[], &policy);
    let out = night_dir.join("out");
    let mut index = csv::Reader::from_path(out.join("emails/index.csv")).unwrap();
    let messages: Vec<(PathBuf, String)> = index
        .records()
        .take(SENT)
        .map(|r| {
            let r = r.unwrap();
            (out.join("emails").join(&r[0]), r[3].to_owned())
        })
        .collect();
    assert_eq!(messages.len(), SENT, "the night has fewer e-mails");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..2 {
        let state = night_dir.join(format!("state-{round}"));
        common::copy_tree(&night_dir.join("state"), &state);
        let relay = relay::Server::start(&night_dir.join(format!("relay-{round}")), 0, &[]);
        let t = Instant::now();
        let o = Command::new(env!("CARGO_BIN_EXE_dunning"))
            .args(["-q", "send"])
            .arg(&out)
            .args(["--smtp", &relay.url()])
            .arg("--state")
            .arg(&state)
            .args(["--max", &SENT.to_string()])
            .output()
            .unwrap();
        ours.push(t.elapsed().as_secs_f64());
        assert!(
            o.status.success(),
            "send failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        drop(relay);
        let relay = relay::Server::start(&night_dir.join(format!("lettre-{round}")), 0, &[]);
        theirs.push(lettre_pool(&messages, relay.port));
    }
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (a, b) = (best(&ours), best(&theirs));
    println!(
        "  dunning send, {SENT} e-mails to a loopback relay (best of 2: {}): {a:.2} s = {:.0} e-mails/s; \
         lettre's pooled transport, the same messages, nothing logged (best of 2: {}): {b:.2} s = {:.0} e-mails/s; \
         send took {:.2}x lettre's",
        ours.iter().map(|s| format!("{s:.2} s")).collect::<Vec<_>>().join(", "),
        SENT as f64 / a,
        theirs.iter().map(|s| format!("{s:.2} s")).collect::<Vec<_>>().join(", "),
        SENT as f64 / b,
        a / b
    );
    delete_all(&[night_dir]);
}

/// `messages` sent by 4 threads through one lettre `SmtpTransport` with a
/// pool of 4 connections: seconds.
fn lettre_pool(messages: &[(PathBuf, String)], port: u16) -> f64 {
    use lettre::Transport;
    let transport = lettre::SmtpTransport::builder_dangerous("127.0.0.1")
        .port(port)
        .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(4))
        .build();
    let from: lettre::Address = "relances@banque-exemple.fr".parse().unwrap();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let t = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((file, to)) = messages.get(i) else {
                    break;
                };
                let bytes = std::fs::read(file).unwrap();
                let envelope =
                    lettre::address::Envelope::new(Some(from.clone()), vec![to.parse().unwrap()])
                        .unwrap();
                transport.send_raw(&envelope, &bytes).unwrap();
            });
        }
    });
    t.elapsed().as_secs_f64()
}

/// Removes the nights' folders, once nothing more is measured, and notes
/// when for [`settled`].
fn delete_all(dirs: &[PathBuf]) {
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    let _ = std::fs::write(deleted_marker(), b"");
}

/// The text parts of a night's e-mails (the first 4,000 files, plain
/// text and HTML) encoded as the night encodes them
/// (`dunning::actions::email::text_body`) and by lettre's `Body::new`,
/// which the night used before: alternated, best of 5 each. CPU work
/// alone, where the e-mails' wall time is mostly the file system's.
fn text_parts(emails: &Path) {
    use lettre::message::Body;
    let mut files: Vec<PathBuf> = std::fs::read_dir(emails)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let parser = mail_parser::MessageParser::default();
    let mut texts = Vec::new();
    for f in files.iter().take(4000) {
        let bytes = std::fs::read(f).unwrap();
        let m = parser.parse(&bytes).unwrap();
        texts.push(m.body_text(0).unwrap().into_owned());
        texts.push(m.body_html(0).unwrap().into_owned());
    }
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    let time = |encode: &dyn Fn(String) -> Body| {
        let t = Instant::now();
        let mut out = 0;
        for text in &texts {
            out += encode(text.clone()).len();
        }
        (t.elapsed().as_secs_f64(), out)
    };
    let (mut ours, mut lettre) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        let (a, a_out) = time(&dunning::actions::email::text_body);
        let (b, b_out) = time(&Body::new::<String>);
        assert_eq!(a_out, b_out, "the text parts differ from lettre's");
        (ours, lettre) = (ours.min(a), lettre.min(b));
    }
    println!(
        "  e-mail text parts ({} parts, {:.1} MB, best of 5): {:.1} ms encoded as the night does, {:.1} ms by lettre's Body::new = {:.2}x faster",
        texts.len(),
        bytes as f64 / 1e6,
        ours * 1e3,
        lettre * 1e3,
        lettre / ours
    );
}

/// A night with extra environment; with `DUNNING_FAILPOINT` it is killed
/// where the failpoint says, and only the stages before it are read.
#[allow(clippy::zombie_processes)]
fn night_with(dir: &Path, ext: &str, work: &Path, env: &[(&str, &str)], policy: &Path) -> Night {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).unwrap();
    let f = |n: &str| dir.join(format!("{n}.{ext}"));
    let t = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_dunning"))
        .args(["--log-format", "json", "run", "--policy"])
        .arg(policy)
        .arg("--ledger")
        .arg(f("ledger"))
        .arg("--debtors")
        .arg(f("debtors"))
        .arg("--events")
        .arg(f("events"))
        .args(["--as-of", AS_OF, "--state"])
        .arg(work.join("state"))
        .arg("--out")
        .arg(work.join("out"))
        // The level a scheduler runs the night at (`DUNNING_BENCH_LOG` for
        // another): every stage's time is logged at `info`.
        .env("DUNNING_LOG", log_level())
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let output = {
        // Read the log while the night runs, then reap it with its rusage.
        use std::io::Read;
        let mut err = child.stderr.unwrap();
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    };
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, whose pid we hold, with valid
    // pointers to locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    let wall = t.elapsed().as_secs_f64();
    let killed = env.iter().any(|(k, _)| *k == "DUNNING_FAILPOINT");
    assert!(
        killed || (libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0),
        "night failed:\n{output}"
    );
    if std::env::var_os("DUNNING_BENCH_TIMELINE").is_some() {
        timeline(&output);
    }
    let mut stages = BTreeMap::new();
    let (mut to_decisions, mut emails, mut letters, mut actions_s) = (0.0, 0, 0, 0.0);
    let mut actions_cpu = (0.0, 0.0);
    let mut rss_to_decisions = 0.0;
    let mut logged_peak: f64 = 0.0;
    for line in output.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        logged_peak = logged_peak.max(v["peak_rss_mib"].as_f64().unwrap_or(0.0));
        let msg = v["message"].as_str().unwrap_or("");
        let ms = |k: &str| v[k].as_u64().map(|m| m as f64 / 1000.0);
        match msg {
            "policy loaded" | "inputs checked" | "accounts built" | "holds and flags"
            | "rules evaluated" | "output in place" => {
                if let (Some(stage), Some(s)) = (v["stage"].as_str(), ms("ms")) {
                    *stages.entry(format!("{stage} ({msg})")).or_insert(0.0) += s;
                }
            }
            "decisions written" => {
                to_decisions = ms("ms_since_start").unwrap_or(0.0);
                rss_to_decisions = v["peak_rss_mib"].as_f64().unwrap_or(0.0);
            }
            "action files written" => {
                emails = v["emails"].as_u64().unwrap_or(0);
                letters = v["letters"].as_u64().unwrap_or(0);
                actions_s = ms("ms").unwrap_or(0.0);
                actions_cpu = (ms("user_ms").unwrap_or(0.0), ms("sys_ms").unwrap_or(0.0));
            }
            _ => {}
        }
    }
    Night {
        wall,
        // The night's own high-water mark, as it logs it: wait4's
        // `ru_maxrss` includes this benchmark's own peak (Linux carries a
        // vfork parent's into the child), hundreds of MiB above the
        // night's when the data was just generated here.
        peak_rss_mib: if logged_peak > 0.0 {
            logged_peak
        } else {
            usage.ru_maxrss as f64 / 1024.0
        },
        stages,
        to_decisions,
        rss_to_decisions,
        cpu: cpu_of(&usage),
        minflt: usage.ru_minflt,
        emails,
        letters,
        actions_s,
        actions_cpu,
    }
}

/// Writes every dirty page of the page cache back to disk (sync(2)), so
/// that the next run does not share the cores with the kernel writing
/// back what the runs before it wrote.
fn written_back() {
    // SAFETY: sync takes no argument and cannot fail.
    unsafe { libc::sync() };
}

/// The nights' log level: `info`, what a scheduler runs them at, unless
/// `DUNNING_BENCH_LOG` says otherwise; `debug` with a timeline, whose
/// lines are the debug ones.
fn log_level() -> String {
    std::env::var("DUNNING_BENCH_LOG").unwrap_or_else(|_| {
        match std::env::var_os("DUNNING_BENCH_TIMELINE") {
            Some(_) => "debug".into(),
            None => "info".into(),
        }
    })
}

/// Every line of a night's log, milliseconds after its first
/// (`DUNNING_BENCH_TIMELINE=1`): where a night's time went between the
/// stages it reports.
fn timeline(log: &str) {
    let mut first = None;
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(at) = v["timestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        else {
            continue;
        };
        let since = (at - *first.get_or_insert(at)).num_milliseconds();
        println!("    {since:>6} ms  {}", v["message"].as_str().unwrap_or(""));
    }
}

/// Start to `decisions.csv` only, in rounds: each round one baseline run,
/// then a CSV, a Parquet and a zstd Parquet night (their order rotated
/// from one round to the next), each night
/// against the baseline of its own round. These machines' speed changes
/// from one minute to the next (other tenants; the cost of a fresh page
/// varies threefold), so a baseline measured once, minutes before, says
/// little of a night measured later; the median of the rounds' ratios is
/// the figure.
///
/// Every run starts on written-back files: each night's few output files
/// are removed once it is measured, and the page cache is flushed before
/// each run. Kept until the end, 27 nights' outputs were written back by
/// the kernel from the fourth round on, 30 seconds after they were
/// written, on the same two cores: the time after the stages grew from
/// 0.3 s to 0.8-1.4 s, whichever format ran then (BENCHMARKS.md,
/// 2026-12-03).
fn decisions(formats: &[(&str, &Path, &str)], work: &Path) {
    let rounds: usize = std::env::var("DUNNING_BENCH_ROUNDS")
        .ok()
        .map_or(3, |r| r.parse().expect("DUNNING_BENCH_ROUNDS: a number"));
    // Each night is stopped (killed) once `decisions.csv` is written, so
    // that its CPU seconds are those of the same span.
    let stop = [("DUNNING_FAILPOINT", "after-decisions")];
    let mut ratios: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut walls: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut cpu: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut peaks: BTreeMap<&str, f64> = BTreeMap::new();
    // Each format against the first (CSV) of the same round, wall and CPU:
    // the baseline's own noise is left out of these.
    let mut paired: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let reference = formats[0].0;
    for round in 0..rounds {
        // The baseline reads the CSV ledger, the first of the formats.
        written_back();
        let base = baseline_once(&formats[0].1.join("ledger.csv"));
        println!(
            "  round {}: baseline {:.2} s ({:.2} CPU s, {} minor faults)",
            round + 1,
            base.wall,
            base.cpu,
            base.minflt
        );
        cpu.entry("baseline").or_default().push(base.cpu);
        walls.entry("baseline").or_default().push(base.wall);
        // Each format takes each place in the round's order as often as
        // the others: a night run right after the baseline, or after two
        // other nights, meets another machine (pages freed, files being
        // written back).
        let mut formats = formats.to_vec();
        let places = formats.len();
        formats.rotate_left(round % places);
        let mut this_round: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for (i, &(label, dir, ext)) in formats.iter().enumerate() {
            let into = work.with_extension(format!("{ext}-{i}-{round}"));
            written_back();
            let r = night_with(dir, ext, &into, &stop, &retail_fr());
            let _ = std::fs::remove_dir_all(&into);
            let stages: Vec<String> = r
                .stages
                .iter()
                .map(|(k, v)| format!("{k} {v:.2} s"))
                .collect();
            println!(
                "    {label}: to decisions.csv {:.2} s = {:.2}x, {:.2} CPU s ({:.2}x), {} minor faults, peak RSS {:.0} MiB; {}",
                r.to_decisions,
                r.to_decisions / base.wall,
                r.cpu,
                r.cpu / base.cpu,
                r.minflt,
                r.rss_to_decisions,
                stages.join(", ")
            );
            ratios
                .entry(label)
                .or_default()
                .push(r.to_decisions / base.wall);
            walls.entry(label).or_default().push(r.to_decisions);
            cpu.entry(label).or_default().push(r.cpu);
            let peak = peaks.entry(label).or_default();
            *peak = peak.max(r.rss_to_decisions);
            this_round.insert(label, (r.to_decisions, r.cpu));
        }
        let first = this_round[reference];
        for (&label, &(wall, cpu)) in &this_round {
            if label != reference {
                let p = paired.entry(label).or_default();
                p.0.push(wall / first.0);
                p.1.push(cpu / first.1);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base_cpu = median(cpu.get_mut("baseline").unwrap());
    // The stricter reading too: the median night against the fastest
    // baseline of the whole run.
    let fastest = walls["baseline"]
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    for &(label, _, _) in formats {
        let r = ratios.get_mut(label).unwrap();
        let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = r.iter().copied().fold(0.0, f64::max);
        println!(
            "  {label}: median {:.2}x the baseline of its round (range {lo:.2}-{hi:.2}x over {rounds}), median night {:.2}x the fastest baseline ({fastest:.2} s), median CPU {:.2}x the baseline's, highest peak RSS {:.0} MiB",
            median(r),
            median(walls.get_mut(label).unwrap()) / fastest,
            median(cpu.get_mut(label).unwrap()) / base_cpu,
            peaks[label]
        );
    }
    for (label, (mut wall, mut cpu)) in paired {
        let faster = wall.iter().filter(|&&r| r < 1.0).count();
        let (lo, hi) = (
            wall.iter().copied().fold(f64::INFINITY, f64::min),
            wall.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "  {label} against {reference} of the same round: median {:.2}x to decisions.csv (range {lo:.2}-{hi:.2}x), faster in {faster} of {rounds} rounds; median CPU {:.2}x",
            median(&mut wall),
            median(&mut cpu),
        );
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("DUNNING_BENCH_DEBTORS")
        .unwrap_or_else(|_| "100000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("DUNNING_BENCH_DEBTORS: numbers"))
        .collect();
    println!(
        "dunning night benchmark ({} cores), release build",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for n in sizes {
        println!("\n== {n} debtors");
        let csv = generate(n, "csv");
        let pq = generate(n, "parquet");
        if std::env::var("DUNNING_BENCH_PARTS").as_deref() == Ok("hash") {
            hashing(&csv.join("ledger.csv"));
            continue;
        }
        let work = data_dir(n, "work");
        if std::env::var("DUNNING_BENCH_PARTS").as_deref() == Ok("send") {
            sending(&csv, &work);
            continue;
        }
        if std::env::var("DUNNING_BENCH_PARTS").as_deref() == Ok("emails") {
            delete_all(&emails(&csv, &work));
            continue;
        }
        if std::env::var("DUNNING_BENCH_PARTS").as_deref() == Ok("decisions") {
            let zstd = generate(n, "parquet-zstd");
            decisions(
                &[
                    ("CSV", &csv, "csv"),
                    ("Parquet", &pq, "parquet"),
                    ("Parquet (zstd)", &zstd, "parquet"),
                ],
                &work,
            );
            continue;
        }
        let base = baseline(&csv.join("ledger.csv"));
        println!("  baseline: bare Polars scan + group-by of ledger.csv: {base:.2} s (best of 3)");
        // Each night's documents are removed once it is measured (a 1M
        // night's are 13 GB), and the next night waits until their inodes
        // no longer slow its own files (see [`settled`]): the Parquet night
        // used to start seconds after the CSV night's 980,096 documents
        // were deleted.
        delete_all(&emails(&csv, &work));
        for (label, dir, ext) in [("CSV", &csv, "csv"), ("Parquet", &pq, "parquet")] {
            settled();
            written_back();
            let r = night(dir, ext, &work);
            delete_all(std::slice::from_ref(&work));
            println!(
                "  {label} night: {:.2} s wall, peak RSS {:.0} MiB",
                r.wall, r.peak_rss_mib
            );
            for (stage, s) in &r.stages {
                println!("    {stage:<34} {s:>7.2} s");
            }
            println!(
                "    to decisions.csv                   {:>7.2} s = {:.2}x baseline",
                r.to_decisions,
                r.to_decisions / base
            );
            if r.actions_s > 0.0 {
                println!(
                    "    actions: {} e-mails, {} letters in {:.2} s ({:.0} documents/s)",
                    r.emails,
                    r.letters,
                    r.actions_s,
                    (r.emails + r.letters) as f64 / r.actions_s
                );
            }
        }
        // The rules alone: the same CSV night stopped after decide, its
        // conditions as columns, then every rule in Rhai, twice each.
        let mut times = [Vec::new(), Vec::new()];
        for _ in 0..2 {
            for (i, rules) in ["columns", "rhai"].into_iter().enumerate() {
                let mut env = vec![("DUNNING_FAILPOINT", "after-decide")];
                if rules == "rhai" {
                    env.push(("DUNNING_RULES", "rhai"));
                }
                let r = night_with(&csv, "csv", &work, &env, &retail_fr());
                times[i].push(
                    r.stages
                        .get("decide (rules evaluated)")
                        .copied()
                        .unwrap_or(0.0),
                );
            }
        }
        let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let (cols, rhai) = (best(&times[0]), best(&times[1]));
        println!(
            "  rules (decide stage, best of 2): as columns {cols:.2} s, all in Rhai {rhai:.2} s = {:.2}x",
            cols / rhai
        );
        delete_all(&[work]);
    }
}
