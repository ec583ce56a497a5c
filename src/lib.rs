//! dunning: a nightly, rules-driven batch engine for debt collection.
//!
//! The modules follow the flow of a night (see DESIGN.md):
//! `ingest -> accounts -> history -> segment -> decide -> guard ->
//! compliance -> emit -> state`, wired together by `night`. `policy` and `script` load and sandbox
//! the risk team's rules; `money` and `dates` keep amounts exact and days
//! free of clocks; `audit` hashes what a night read and wrote.

pub mod accounts;
pub mod actions;
pub mod audit;
pub mod cases;
pub mod charges;
pub mod cli;
pub mod compliance;
pub mod dates;
pub mod decide;
pub mod diff;
pub mod emit;
pub mod explain;
pub mod gen;
pub mod guard;
pub mod history;
pub mod ingest;
pub mod kpi;
pub mod lint;
pub mod locale;
pub mod money;
pub mod night;
pub mod phone;
pub mod policy;
pub mod render;
pub mod report;
pub mod script;
pub mod segment;
pub mod send;
pub mod shard;
pub mod state;
pub mod vector;

/// Whether long stages draw a progress bar (on a terminal only; `run
/// --quiet` and `--log-format json` turn it off). Set once by the binary.
pub static PROGRESS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A progress bar on standard error for `len` steps, or a hidden one when
/// progress is off or standard error is not a terminal (a scheduler's log
/// then gets no control characters).
pub fn progress(len: u64, what: &'static str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !PROGRESS.load(std::sync::atomic::Ordering::Relaxed) || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>10} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what);
    bar
}

/// The process's peak resident memory so far, in MiB, for the stage logs:
/// the scheduler's operators size the night's machine from it.
pub fn peak_rss_mib() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    // Linux reports kilobytes.
    (usage.ru_maxrss.max(0) as u64) / 1024
}

/// The process's resident memory now, in MiB (0 where `/proc` is not
/// there): beside the peak, it shows which stage holds memory and which
/// only passes through it.
pub fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| {
            // SAFETY: sysconf reads a constant of the system.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
            pages * page / (1024 * 1024)
        })
}

/// A test-only crash point: when `DUNNING_FAILPOINT` names this point, the
/// process kills itself with SIGKILL here, as a power cut or the OOM killer
/// would: no destructor, no flush, no unwinding. Crash-safety tests use it
/// to prove a night is all or nothing at every stage.
pub fn failpoint(name: &str) {
    if std::env::var_os("DUNNING_FAILPOINT").is_some_and(|v| v == name) {
        eprintln!("dunning: failpoint {name}: killing myself");
        // SAFETY: kill(2) on our own pid with a valid signal number.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}

/// Every crash point of a night, in the order a night passes them.
pub const FAILPOINTS: &[&str] = &[
    "after-policy",
    "after-ingest",
    "after-decide",
    "mid-actions",
    "before-rename",
    "before-commit",
    "mid-commit",
    "after-commit",
];

/// Exit code for an error: 2 when the input, the policy or the state needs
/// a person's attention, 1 for a fault of the engine itself.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if cause.is::<ingest::IngestError>()
            || cause.is::<policy::PolicyError>()
            || cause.is::<script::ScriptError>()
            || cause.is::<night::Refused>()
            || cause.is::<cases::CaseError>()
            || cause.is::<diff::DiffError>()
            || cause.is::<send::SendError>()
            || cause.is::<shard::ShardError>()
            || cause.is::<emit::EmitError>()
            || cause.is::<actions::ActionError>()
            || cause.is::<render::RenderError>()
            || cause.is::<charges::ChargeError>()
            || cause.is::<kpi::KpiError>()
        {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<state::StateError>() {
            return match e {
                state::StateError::Io { .. } => 1,
                _ => 2,
            };
        }
    }
    1
}
