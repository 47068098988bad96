//! The `blindfold` command: the server, the operator commands and the client.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use blindfold::client::{self, ClientArgs, ClientCommand};
use blindfold::operator::{self, ServeArgs, StoreArgs};
use clap::{Parser, Subcommand};

/// blindfold: a login and user-data server that its own operator cannot read.
#[derive(Parser)]
#[command(name = "blindfold", version, about)]
struct Cli {
    #[command(flatten)]
    client: ClientArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded store in --data, keys in --keyring).
    Serve(ServeArgs),
    /// Drop the projections and rebuild them from the encrypted log.
    Rebuild(StoreArgs),
    /// Show what an operator with every key can see: counts, sizes, event kinds and times.
    Inspect(StoreArgs),
    /// Time unknown-username against wrong-password log-ins on a server you run.
    ProbeEnumeration(blindfold::probe::ProbeArgs),
    /// Drive a running server with many DPoP clients and report throughput and latency.
    Bench(blindfold::loadgen::BenchArgs),
    #[command(flatten)]
    Client(ClientCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            init_logging();
            operator::serve(args).await.map_err(|e| e.to_string())
        }
        Command::Rebuild(args) => {
            init_logging();
            operator::rebuild(args).map_err(|e| e.to_string())
        }
        Command::Inspect(args) => blindfold::inspect::run(args).map_err(|e| e.to_string()),
        Command::ProbeEnumeration(args) => blindfold::probe::run(&cli.client.server, args)
            .await
            .map_err(|e| e.to_string()),
        Command::Bench(args) => blindfold::loadgen::run(args)
            .await
            .map_err(|e| e.to_string()),
        Command::Client(command) => match client::run(cli.client, command).await {
            Ok(()) => Ok(()),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(error.exit_class().code());
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `RUST_LOG` filters them (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help_of(command: &str) -> String {
        match Cli::try_parse_from(["blindfold", command, "--help"]) {
            Err(help) if help.kind() == clap::error::ErrorKind::DisplayHelp => help.to_string(),
            _ => panic!("{command} --help did not print help"),
        }
    }

    #[test]
    fn serve_help_lists_the_client_options_only_under_their_own_heading() {
        let help = help_of("serve");
        let heading = help
            .find(client::CLIENT_OPTIONS_HEADING)
            .expect("no client options heading");
        for option in ["--server", "--config-dir", "--password-stdin"] {
            let at = help.find(option).expect("option not listed");
            assert!(at > heading, "{option} is listed before the client heading");
        }
        let data = help.find("--data").expect("--data not listed");
        assert!(data < heading, "serve's own options must come first");
    }
}
