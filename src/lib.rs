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

/// A file's bytes, mapped rather than read when the file is large.
///
/// The night reads its input files twice (to hash them, then to parse
/// them), half a gigabyte each time at a million debtors: copying them
/// into the process was a tenth of the reading's time. A mapped file's
/// pages count as the process's resident memory while it holds them, so
/// a reader going through a file gives back what it is done with
/// ([`FileBytes::release`]).
///
/// The night's input files must not be changed while it reads them (it
/// records their hashes as the inputs it ran on): a file cut short under
/// a mapping stops the process with SIGBUS. The same holds for the fonts
/// of the policy's letters: a package upgrade replaces a font file by a new
/// one (a new inode), which is safe; rewriting it in place is not.
pub struct FileBytes(Bytes);

enum Bytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl FileBytes {
    /// Files under this size are read: a copy of them costs nothing.
    pub(crate) const MAP_FROM: u64 = 1 << 20;

    /// Opens a file read front to back (an input).
    pub fn open(path: &std::path::Path) -> std::io::Result<FileBytes> {
        let bytes = Self::open_random(path)?;
        if let Bytes::Mapped(map) = &bytes.0 {
            let _ = map.advise(memmap2::Advice::Sequential);
        }
        Ok(bytes)
    }

    /// Opens a file read here and there (a font), not front to back.
    pub fn open_random(path: &std::path::Path) -> std::io::Result<FileBytes> {
        use std::io::Read;
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        if len < Self::MAP_FROM {
            let mut v = Vec::with_capacity(len as usize);
            f.read_to_end(&mut v)?;
            return Ok(FileBytes(Bytes::Read(v)));
        }
        // SAFETY: the mapping is read-only and private to this value; the
        // file is an input the night does not write, and the operator's
        // contract is that nothing else writes it during the night (see
        // the type's documentation).
        let map = unsafe { memmap2::MmapOptions::new().map(&f)? };
        Ok(FileBytes(Bytes::Mapped(map)))
    }

    /// Gives back the memory of the pages before byte `end`: they are read
    /// again from the file, should they be read again.
    pub fn release(&self, end: usize) {
        if let Bytes::Mapped(map) = &self.0 {
            let end = end.min(map.len());
            let page = 4096;
            let end = end - end % page;
            if end > 0 {
                // SAFETY: the mapping is read-only and of a file: dropped
                // pages are read again from the file (the page cache) when
                // touched, with the same bytes; nothing of ours lives in
                // them.
                let _ = unsafe {
                    map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, 0, end)
                };
            }
        }
    }
}

impl AsRef<[u8]> for FileBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Bytes::Mapped(m) => m,
            Bytes::Read(v) => v,
        }
    }
}

/// The process's peak resident memory so far, in MiB, for the stage logs:
/// the scheduler's operators size the night's machine from it.
pub fn peak_rss_mib() -> u64 {
    // The address space's own high-water mark. `ru_maxrss` is not: Linux
    // carries into it the peak of the process that started this one when
    // that process shared its memory to start it (vfork, posix_spawn, as
    // Rust's `Command` does), so a night started by a large process
    // reported that process's peak (3,420 MiB under a benchmark that had
    // just generated its data).
    if let Some(kib) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
    {
        return kib / 1024;
    }
    // Linux reports kilobytes.
    usage().map_or(0, |u| (u.ru_maxrss.max(0) as u64) / 1024)
}

/// The page faults the process has taken so far without reading from
/// disk, for the debug logs: each is a page the kernel handed over fresh,
/// the cost that swings most from one night to the next on a virtual
/// machine (BENCHMARKS.md, "2026-12-02 (sixth)").
pub fn minor_faults() -> u64 {
    usage().map_or(0, |u| u.ru_minflt.max(0) as u64)
}

/// CPU time the process has used so far, user and system, in ms, for the
/// debug logs: beside the wall time, it tells a busy host from a slow
/// stage.
pub fn cpu_ms() -> (u64, u64) {
    let ms = |t: libc::timeval| (t.tv_sec.max(0) as u64) * 1000 + (t.tv_usec.max(0) as u64) / 1000;
    usage().map_or((0, 0), |u| (ms(u.ru_utime), ms(u.ru_stime)))
}

fn usage() -> Option<libc::rusage> {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    (unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0).then_some(usage)
}

/// An error and its causes, in one line (a cause its error already
/// quotes is not repeated).
pub fn error_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let more = inner.to_string();
        if !s.contains(&more) {
            s.push_str(": ");
            s.push_str(&more);
        }
        src = inner.source();
    }
    s.replace(['\r', '\n'], " ")
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

/// Runs `read`, a third-party reader given a file that may be damaged,
/// and catches its panic, as `catch_unwind` does. Some damaged Parquet
/// footers and page headers make `polars-parquet` panic where others give
/// an error; that is bad input, reported as an error naming the file, not
/// a crash. The panic hook stays silent for it: a scheduler reading
/// stderr would otherwise find "thread panicked" above the error of a
/// night that failed cleanly with exit 2. (The panic's own message is not
/// kept: it may quote the file's bytes, and personal data stays out of
/// logs.) The hook is silent only on this thread and only while `read`
/// runs; any other panic prints as before.
pub fn expected_panic<T>(read: impl FnOnce() -> T) -> std::thread::Result<T> {
    quiet_hook();
    struct Expecting;
    impl Drop for Expecting {
        fn drop(&mut self) {
            EXPECTING.with(|e| e.set(e.get() - 1));
        }
    }
    EXPECTING.with(|e| e.set(e.get() + 1));
    let _expecting = Expecting;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read))
}

std::thread_local! {
    /// How many [`expected_panic`] calls this thread is inside.
    static EXPECTING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Installs, once, a panic hook that defers to the one before it unless
/// the panicking thread is inside [`expected_panic`].
fn quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if EXPECTING.with(std::cell::Cell::get) == 0 {
                before(info);
            }
        }));
    });
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
    "after-decisions",
    "mid-actions",
    "before-rename",
    "before-commit",
    "mid-commit",
    "after-commit",
];

/// Exit code for an error: 2 when the input, the policy or the state needs
/// a person's attention, 1 for a fault of the engine itself or of the
/// machine (a full disk): the night can be run again once it is fixed.
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
            || cause.is::<actions::ActionError>()
            || cause.is::<render::RenderError>()
            || cause.is::<charges::ChargeError>()
            || cause.is::<kpi::KpiError>()
        {
            return 2;
        }
        // The output folder's problems are the machine's (a full disk),
        // as the state's are: nothing to fix in the inputs.
        if let Some(e) = cause.downcast_ref::<emit::EmitError>() {
            return match e {
                emit::EmitError::Io { .. } => 1,
                emit::EmitError::NotOurs { .. } => 2,
            };
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

#[cfg(test)]
mod tests {
    /// A panic inside [`super::expected_panic`] is its `Err`, nested calls
    /// each catch their own, and the thread is silent for no panic after.
    #[test]
    fn an_expected_panic_is_caught_and_the_hook_is_quiet_only_inside() {
        assert_eq!(super::expected_panic(|| 7).ok(), Some(7));
        let nested = super::expected_panic(|| {
            let inner = super::expected_panic(|| -> u8 { panic!("a damaged footer") });
            assert_eq!(super::EXPECTING.with(std::cell::Cell::get), 1);
            inner
        });
        assert!(matches!(nested, Ok(Err(_))));
        assert!(super::expected_panic(|| -> u8 { panic!("again") }).is_err());
        assert_eq!(super::EXPECTING.with(std::cell::Cell::get), 0);
    }
}
