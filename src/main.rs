use clap::Parser;
use dunning::cli::{CheckCmd, Cli, Command, Format, LogFormat};
use dunning::night::{self, RunArgs};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
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

    let result = match cli.command {
        Command::Run(r) => night::run(&RunArgs {
            policy: r.policy,
            ledger: r.ledger,
            debtors: r.debtors,
            events: r.events,
            as_of: r.as_of,
            state: r.state,
            out: r.out,
        })
        .map(|_| ()),
        Command::Check(c) => return check(&c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = dunning::exit_code(&err);
            tracing::error!(exit_code = code, "night failed");
            eprintln!("error: {err:#}");
            ExitCode::from(code as u8)
        }
    }
}

/// `dunning check`: the policy loader's verdict, every problem at once.
fn check(c: &CheckCmd) -> ExitCode {
    let problems = match dunning::policy::Policy::load(&c.policy) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems,
    };
    match c.format {
        Format::Json => {
            let list: Vec<serde_json::Value> = problems
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "file": p.file,
                        "line": p.line,
                        "column": p.column,
                        "severity": "error",
                        "message": p.message,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({ "ok": problems.is_empty(), "problems": list })
            );
        }
        Format::Text => {
            for p in &problems {
                println!("{p}");
            }
            if problems.is_empty() {
                println!("{}: ok", c.policy.display());
            } else {
                println!("{} problem(s)", problems.len());
            }
        }
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}
