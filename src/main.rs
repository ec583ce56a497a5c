use clap::Parser;
use dunning::cli::{
    CheckCmd, Cli, Command, DiffFormat, ExplainCmd, Format, LogFormat, NightInputs,
};
use dunning::night::{self, RunArgs};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Memory the night frees is kept by mimalloc for its default second
// before it goes back to the system. A stage's tables are freed while the
// next stage allocates, and what was kept is used again without a fault.
// 400 ms lowered the peak by 40 to 110 MiB, but took 10 % (CSV) to 17 %
// (Parquet) more minor faults at a million debtors, and more system time in
// ten runs out of ten. A fresh page is the cost that swings most on the
// virtual machines the night runs on (BENCHMARKS.md, 2026-12-02, sixth).
// An operator's `MIMALLOC_PURGE_DELAY` still wins.
#[cfg(test)]
unsafe extern "C" {
    /// mimalloc's own (`include/mimalloc.h`), linked in with the allocator.
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t`.
#[cfg(test)]
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

fn main() -> ExitCode {
    // No transparent huge pages for this process. The allocator asks for
    // them, and the kernel then zeroes two megabytes on the first touch of
    // any byte of each: at a million debtors, a night spent more time in
    // the kernel zeroing pages it did not need than in most stages
    // (BENCHMARKS.md, 2026-12-02). Failure only leaves the system default.
    // SAFETY: prctl with PR_SET_THP_DISABLE reads no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    let cli = Cli::parse();
    let default = if cli.quiet { "warn" } else { "info" };
    let filter = EnvFilter::try_from_env("DUNNING_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_target(false).init(),
    }

    dunning::PROGRESS.store(
        !cli.quiet && matches!(cli.log_format, LogFormat::Text),
        std::sync::atomic::Ordering::Relaxed,
    );
    let result = match cli.command {
        Command::Run(r) => {
            let mut args = run_args(r.inputs, r.out, r.trace);
            args.shard = r.shard;
            night::run(&args).map(|report| {
                // The closing screen, for a person; the log has the same
                // counts for machines.
                if !cli.quiet {
                    print!("{}", report.to_text());
                }
            })
        }
        Command::Report(r) => dunning::kpi::report(&r.state, r.from, r.to, &r.out).map(|k| {
            if !cli.quiet {
                println!(
                    "{} night(s) read{}; wrote kpis.csv, promises.csv and kpis.html in {}",
                    k.nights.len(),
                    if k.missing.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} without KPIs, from an older engine)", k.missing.len())
                    },
                    r.out.display()
                );
            }
        }),
        Command::Merge(m) => dunning::shard::merge(&m.shards, &m.out).map(|out| {
            tracing::info!(out = %out.display(), shards = m.shards.len(), "shards merged");
        }),
        Command::Check(c) => return check(&c),
        Command::Explain(e) => explain(e),
        Command::Diff(d) => match dunning::diff::compare(&d.a, &d.b) {
            Ok(diff) => {
                use std::io::Write;
                let mut stdout = std::io::stdout().lock();
                let written = match d.format {
                    DiffFormat::Text => {
                        stdout.write_all(dunning::diff::to_text(&diff, d.examples).as_bytes())
                    }
                    DiffFormat::Json => writeln!(
                        stdout,
                        "{}",
                        serde_json::to_string_pretty(&dunning::diff::to_json(&diff, d.examples))
                            .expect("plain data")
                    ),
                    DiffFormat::Csv => stdout.write_all(&dunning::diff::to_csv(&diff)),
                };
                if written.is_err() {
                    return ExitCode::from(2);
                }
                return if diff.identical() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                };
            }
            Err(e) => Err(e.into()),
        },
        Command::Send(c) => {
            let args = dunning::send::SendArgs {
                out: c.out,
                smtp: c.smtp,
                state: c.state,
                rate: c.rate,
                max: c.max,
                dry_run: c.dry_run,
                max_attempts: c.max_attempts.max(1),
                backoff: std::time::Duration::from_millis(c.backoff_ms),
                timeout: std::time::Duration::from_secs(c.timeout_s.max(1)),
                resend_in_doubt: c.resend_in_doubt,
                confirm_sent: c.confirm_sent,
                ca: c.smtp_ca,
                connections: c.connections.max(1),
            };
            match dunning::send::send(&args) {
                Ok(report) => {
                    print!("{}", report.to_text());
                    return if report.complete() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(3)
                    };
                }
                Err(e) => Err(e),
            }
        }
        Command::Gen(g) => dunning::gen::generate(&dunning::gen::GenArgs {
            debtors: g.debtors,
            seed: g.seed,
            as_of: g.as_of,
            out: g.out,
            format: match g.format {
                dunning::cli::GenFormat::Csv => dunning::gen::Format::Csv,
                dunning::cli::GenFormat::Parquet => dunning::gen::Format::Parquet,
            },
            compression: match g.compression {
                dunning::cli::GenCompression::Snappy => dunning::gen::Compression::Snappy,
                dunning::cli::GenCompression::Zstd => dunning::gen::Compression::Zstd,
                dunning::cli::GenCompression::Lz4 => dunning::gen::Compression::Lz4,
                dunning::cli::GenCompression::None => dunning::gen::Compression::Uncompressed,
            },
        })
        .map(|g| {
            println!(
                "{} debtors, {} items, {} events",
                g.debtors, g.items, g.events
            );
            for f in &g.files {
                println!("  {}", f.display());
            }
        }),
        Command::Test(t) => match dunning::cases::run(&t.policy, t.filter.as_deref()) {
            Ok(outcomes) => {
                print!("{}", dunning::cases::report(&outcomes));
                let failed = outcomes.iter().any(|o| !o.failures.is_empty());
                return if failed {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                };
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = dunning::exit_code(&err);
            tracing::error!(exit_code = code, "dunning failed");
            eprintln!("error: {err:#}");
            ExitCode::from(code as u8)
        }
    }
}

fn run_args(i: NightInputs, out: std::path::PathBuf, trace: bool) -> RunArgs {
    RunArgs {
        policy: i.policy,
        ledger: i.ledger,
        debtors: i.debtors,
        events: i.events,
        as_of: i.as_of,
        state: i.state,
        out,
        trace,
        challenger: i.challenger.map(|policy| night::ChallengerArgs {
            policy,
            share_bp: i.share.unwrap_or(0),
            seed: i.challenger_seed,
        }),
        shard: None,
    }
}

/// `dunning explain`: one debtor's decisions with their traces.
fn explain(e: ExplainCmd) -> anyhow::Result<()> {
    let args = run_args(e.inputs, Default::default(), true);
    let decisions = night::explain(&args, &e.debtor)?;
    if decisions.is_empty() {
        return Err(night::Refused(format!(
            "debtor `{}` has no account tonight: no open item in the ledger and no level above 0 in the state",
            e.debtor
        ))
        .into());
    }
    match e.format {
        Format::Json => {
            let list: Vec<_> = decisions.iter().map(dunning::explain::to_json).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "as_of": args.as_of.to_string(),
                    "debtor_id": e.debtor,
                    "accounts": list,
                }))?
            );
        }
        Format::Text => {
            println!("as of {}", args.as_of);
            for d in &decisions {
                print!("{}", dunning::explain::to_text(d));
            }
        }
    }
    Ok(())
}

/// `dunning check`: the policy loader's verdict, every problem at once;
/// warnings are shown but do not fail the check.
fn check(c: &CheckCmd) -> ExitCode {
    let mut sha256 = None;
    let mut compliance = Vec::new();
    let (errors, warnings, rules) = match dunning::policy::Policy::load(&c.policy) {
        Ok(p) => {
            sha256 = Some(p.sha256.clone());
            if let Some(k) = &p.compliance {
                compliance = k.summary(p.messages.calls.as_ref().map(|c| (c.start, c.end)));
            }
            // How each rule runs: as a column for every account at once, or
            // in Rhai account by account (and why).
            let rules: Vec<(String, Option<String>)> = p
                .conditions()
                .iter()
                .map(|c| (c.rule.clone(), c.plan.as_ref().err().cloned()))
                .collect();
            (Vec::new(), p.warnings, rules)
        }
        Err(e) => (e.problems, Vec::new(), Vec::new()),
    };
    match c.format {
        Format::Json => {
            let item = |p: &dunning::policy::Problem, severity: &str| {
                serde_json::json!({
                    "file": p.file,
                    "line": p.line,
                    "column": p.column,
                    "severity": severity,
                    "message": p.message,
                })
            };
            let list: Vec<serde_json::Value> = errors
                .iter()
                .map(|p| item(p, "error"))
                .chain(warnings.iter().map(|p| item(p, "warning")))
                .collect();
            println!(
                "{}",
                serde_json::json!({
                    "ok": errors.is_empty(),
                    "sha256": sha256,
                    "compliance": compliance,
                    "errors": errors.len(),
                    "warnings": warnings.len(),
                    "problems": list,
                    "rules": rules.iter().map(|(rule, why)| serde_json::json!({
                        "rule": rule,
                        "runs": if why.is_none() { "columns" } else { "rhai" },
                        "why": why,
                    })).collect::<Vec<_>>(),
                })
            );
        }
        Format::Text => {
            for p in &errors {
                println!("{p}");
            }
            for p in &warnings {
                println!("{}", p.as_warning());
            }
            if errors.is_empty() {
                let rhai: Vec<_> = rules
                    .iter()
                    .filter_map(|(r, why)| why.as_ref().map(|w| (r, w)))
                    .collect();
                println!(
                    "rules: {} of {} evaluated as columns for all accounts at once{}",
                    rules.len() - rhai.len(),
                    rules.len(),
                    if rhai.is_empty() {
                        String::new()
                    } else {
                        format!("; {} in Rhai, account by account:", rhai.len())
                    }
                );
                for (rule, why) in rhai {
                    println!("  {rule}: {why}");
                }
                if !compliance.is_empty() {
                    println!("compliance: guards over every rule, in this order:");
                    for line in &compliance {
                        println!("  {line}");
                    }
                }
                println!(
                    "{}: ok{}",
                    c.policy.display(),
                    if warnings.is_empty() {
                        String::new()
                    } else {
                        format!(", {} warning(s)", warnings.len())
                    }
                );
            } else {
                println!(
                    "{} problem(s){}",
                    errors.len(),
                    if warnings.is_empty() {
                        String::new()
                    } else {
                        format!(", {} warning(s)", warnings.len())
                    }
                );
            }
        }
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The allocator keeps freed memory for the second the night's
    /// figures were measured with: an upgrade of mimalloc that changed it
    /// would change how many fresh pages a night takes.
    #[test]
    fn freed_memory_is_kept_a_second() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads an integer option of the allocator.
            assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 1000);
        }
    }
}
