//! `tenet`: the command line of the service.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tenet::config::{ServeConfig, StorageConfig};
use tracing_subscriber::EnvFilter;

/// glibc's allocator spent a fifth of the service's CPU under load
/// (measured with perf); mimalloc handles many small, short-lived
/// allocations across threads far better.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tenet",
    version,
    about = "Multi-tenant, event-sourced work management backend",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand, `tenet` serves (the flags of `tenet serve`).
    #[command(flatten)]
    serve: ServeConfig,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve(Box<ServeConfig>),
    /// Apply database migrations and exit.
    Migrate(StorageConfig),
    /// Platform administration.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Make a user a platform admin (recorded as an event on their stream).
    Grant {
        email: String,
        #[command(flatten)]
        storage: StorageConfig,
    },
    /// Take platform admin away from a user.
    Revoke {
        email: String,
        #[command(flatten)]
        storage: StorageConfig,
    },
}

fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("TENET_LOG_FORMAT").is_ok_and(|format| format == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let command = cli.command.unwrap_or(Command::Serve(Box::new(cli.serve)));
    match run(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// The chain of causes on one line, without the repeats that arise when an
/// error's message already quotes its source.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if !line.contains(&message) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&message);
        }
    }
    line
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(config) => {
            let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .ok();
            let server = tenet::Server::bind(&config, metrics).await?;
            let signal = tenet::shutdown_signal()?;
            let address = server.local_addr()?;
            let mut stdout = std::io::stdout();
            writeln!(stdout, "listening on http://{address}")?;
            stdout.flush()?;
            server.serve(signal).await
        }
        Command::Admin(AdminCommand::Grant { email, storage }) => {
            let changed = tenet::set_platform_admin(&storage, &email, true).await?;
            let verb = if changed { "granted" } else { "already had" };
            writeln!(std::io::stdout(), "{email} {verb} platform admin")?;
            Ok(())
        }
        Command::Admin(AdminCommand::Revoke { email, storage }) => {
            let changed = tenet::set_platform_admin(&storage, &email, false).await?;
            let verb = if changed {
                "no longer has"
            } else {
                "did not have"
            };
            writeln!(std::io::stdout(), "{email} {verb} platform admin")?;
            Ok(())
        }
        Command::Migrate(storage) => {
            let db = tenet::open_database(&storage).await?;
            db.close().await;
            writeln!(std::io::stdout(), "migrations applied")?;
            Ok(())
        }
    }
}
