use clap::Parser;
use dunning::cli::{Cli, Command, LogFormat};
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
