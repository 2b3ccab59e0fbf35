//! `tenet`: the command line of the service.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tenet::config::{ServeConfig, StorageConfig};

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
    /// Read models: their state, and rebuilds from the log.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Each projection's generation, state, position and lag.
    List {
        #[command(flatten)]
        storage: StorageConfig,
    },
    /// Rebuild a projection from the log, blue/green, with a progress bar;
    /// works against a running deployment (it picks the rebuild up too).
    Replay {
        /// The projection's name (see `tenet projections list`).
        name: String,
        /// Request the rebuild and exit without waiting for it.
        #[arg(long)]
        detach: bool,
        #[command(flatten)]
        storage: StorageConfig,
    },
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let telemetry = match tenet::telemetry::init() {
        Ok(telemetry) => telemetry,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {}", one_line(&error));
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve(Box::new(cli.serve)));
    let outcome = run(command).await;
    // The exporter's thread blocks while it flushes: not on a runtime
    // worker.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    match outcome {
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
        Command::Serve(config) => serve(&config).await,
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
        Command::Projections(ProjectionsCommand::List { storage }) => {
            list_projections(&storage).await
        }
        Command::Projections(ProjectionsCommand::Replay {
            name,
            detach,
            storage,
        }) => replay_projection(&storage, &name, detach).await,
        Command::Migrate(storage) => {
            let db = tenet::open_database(&storage).await?;
            db.close().await;
            writeln!(std::io::stdout(), "migrations applied")?;
            Ok(())
        }
    }
}

/// `tenet serve`: serves until SIGINT or SIGTERM.
async fn serve(config: &ServeConfig) -> anyhow::Result<()> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let server = tenet::Server::bind(config, metrics).await?;
    let signal = tenet::shutdown_signal()?;
    let address = server.local_addr()?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{address}")?;
    stdout.flush()?;
    server.serve(signal).await
}

/// `tenet projections list`: one line per projection (and one more for a
/// failed one's error).
async fn list_projections(storage: &StorageConfig) -> anyhow::Result<()> {
    let states = tenet::projection_states(storage).await?;
    let mut out = std::io::stdout();
    writeln!(
        out,
        "{:<28} {:>4} {:<11} {:>10} {:>10} {:>9}  rebuild",
        "name", "gen", "state", "position", "lag", "lag (s)"
    )?;
    for state in states {
        let rebuild = state.rebuild.map_or_else(String::new, |job| {
            format!(
                "generation {} at {:.0}% ({:.0} events/s), job {}",
                job.generation,
                job.progress * 100.0,
                job.events_per_second,
                job.id
            )
        });
        writeln!(
            out,
            "{:<28} {:>4} {:<11} {:>10} {:>10} {:>9.1}  {rebuild}",
            state.name,
            state.generation,
            state.state,
            state.position,
            state.lag_events,
            state.lag_seconds
        )?;
        if let Some(error) = state.last_error {
            writeln!(
                out,
                "{:<28} failed at position {}: {error}",
                "",
                state.error_position.unwrap_or_default()
            )?;
        }
    }
    Ok(())
}

/// `tenet projections replay NAME`: a rebuild, with a progress bar unless
/// `detach`.
async fn replay_projection(
    storage: &StorageConfig,
    name: &str,
    detach: bool,
) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} events {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(name.to_owned());
    let job = tenet::replay_projection(storage, name, detach, |job| {
        bar.set_length(job.head.max(0) as u64);
        bar.set_position(job.position.max(0) as u64);
        let eta = job
            .eta_seconds
            .map_or_else(String::new, |eta| format!(", ETA {eta:.0} s"));
        bar.set_message(format!("{:.0} events/s{eta}", job.events_per_second));
    })
    .await;
    bar.finish_and_clear();
    let job = job?;
    let mut out = std::io::stdout();
    if detach {
        writeln!(out, "rebuild of {name} requested: job {}", job.id)?;
    } else {
        writeln!(
            out,
            "{name} rebuilt: generation {} live at position {} ({:.0} events/s)",
            job.generation, job.position, job.events_per_second
        )?;
    }
    Ok(())
}
