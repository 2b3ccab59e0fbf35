//! The `tenet` service: configuration, wiring and lifecycle. The work is
//! done by the crates it wires (`tenet-events`, `tenet-command`,
//! `tenet-projections`, `tenet-query`); this crate only decides which parts
//! run in this process and connects them.

mod background;
pub mod config;
mod console;
mod http;
pub mod ops;
pub mod telemetry;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::serve::ListenerExt;
use metrics_exporter_prometheus::PrometheusHandle;
use tenet_events::bus::Bus;
use tenet_events::db::{Db, DbOptions};
use tenet_events::projection::Projector;
use tenet_events::store::{self, EventStore, StoreOptions};
use tenet_http::auth::jwt::Jwt;
use tenet_http::auth::password::Passwords;
use tenet_http::auth::sealed::SecretBox;
use tenet_http::ratelimit::RateLimits;
use tenet_projections::{Checkpoints, Runtime, SourceKind};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::background::Background;
use crate::config::{Role, ServeConfig, StorageConfig, redact};

/// Opens the configured database (creating the embedded one if needed)
/// and applies migrations.
pub async fn open_database(config: &StorageConfig) -> anyhow::Result<Db> {
    let options = DbOptions {
        max_connections: config.db_max_connections,
        ..DbOptions::default()
    };
    let db = match &config.database_url {
        Some(url) => Db::connect_postgres(url, &options)
            .await
            .with_context(|| format!("cannot connect to the database at {}", redact(url)))?,
        None => {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!(
                    "cannot create the data directory {}",
                    config.data_dir.display()
                )
            })?;
            let path = config.data_dir.join("tenet.db");
            Db::open_sqlite(&path, &options)
                .await
                .with_context(|| format!("cannot open the database {}", path.display()))?
        }
    };
    db.migrate().await.context("cannot migrate the database")?;
    Ok(db)
}

/// Every asynchronous projector of Tenet.
pub fn projectors() -> Vec<Arc<dyn Projector>> {
    vec![
        Arc::new(tenet_projections::projects::ProjectsProjector),
        Arc::new(tenet_projections::tasks::TasksProjector),
        Arc::new(tenet_projections::stats::PlatformStatsProjector),
        Arc::new(tenet_projections::feature_flags::FeatureFlagsProjector),
        Arc::new(tenet_projections::templates::TemplatesProjector),
        Arc::new(tenet_projections::analytics::AnalyticsProjector),
        Arc::new(tenet_projections::webhooks::WebhooksProjector),
        Arc::new(tenet_command::task::policy::DepartedMembers),
        Arc::new(tenet_projections::automations::AutomationsProjector),
        Arc::new(tenet_command::automation::policy::AutomationTriggers),
    ]
}

/// Projectors that run inside the append transaction: the read models that
/// must never lag the log (access control).
pub fn inline_projectors() -> Vec<Arc<dyn Projector>> {
    vec![Arc::new(tenet_projections::access::AccessProjector)]
}

/// Refuses configurations the embedded database cannot serve.
fn check_deployment(config: &ServeConfig) -> anyhow::Result<()> {
    let embedded = config.storage.database_url.is_none();
    if embedded && config.nats_url.is_some() {
        bail!(
            "NATS_URL needs DATABASE_URL: the embedded database serves one process, so there is nothing to fan out"
        );
    }
    if embedded && !config.runs(Role::All) {
        bail!("--role needs DATABASE_URL: the embedded database runs every role in one process");
    }
    Ok(())
}

/// What signs and checks access tokens, with the configured secret (or,
/// embedded, one kept in the data directory), and the box that seals
/// webhook secrets with keys derived from the same secret.
fn token_signer(config: &ServeConfig) -> anyhow::Result<(Jwt, SecretBox)> {
    let secret = tenet_http::auth::signing_key::jwt_secret(
        config.auth.jwt_secret.as_deref(),
        config.storage.database_url.is_none(),
        &config.storage.data_dir,
    )?;
    let jwt = Jwt::hs256(
        &secret,
        config.auth.jwt_issuer.clone(),
        config.auth.jwt_audience.clone(),
        Duration::from_secs(config.auth.access_token_ttl_secs),
    );
    Ok((jwt, SecretBox::new(&secret)))
}

/// Connects to NATS, when configured, and makes sure the events stream
/// exists.
async fn connect_bus(config: &ServeConfig) -> anyhow::Result<Option<Bus>> {
    let Some(url) = &config.nats_url else {
        return Ok(None);
    };
    let bus = Bus::connect(url, &config.nats_prefix)
        .await
        .context("cannot reach NATS")?;
    bus.ensure_events_stream()
        .await
        .context("cannot set up the JetStream stream")?;
    Ok(Some(bus))
}

/// Opens the event store, with the inline projectors it applies.
async fn open_store(db: &Db) -> anyhow::Result<Arc<dyn EventStore>> {
    store::open(
        db.clone(),
        StoreOptions {
            inline: inline_projectors(),
            ..StoreOptions::default()
        },
    )
    .await
    .context("cannot open the event store")
}

/// A bound, not yet serving, Tenet process.
pub struct Server {
    listener: TcpListener,
    router: axum::Router,
    db: Db,
    shutdown: CancellationToken,
    background: JoinSet<()>,
    shutdown_timeout: Duration,
}

impl Server {
    /// Connects to everything the configuration names, starts the
    /// background work of this process's roles and binds the listener.
    pub async fn bind(
        config: &ServeConfig,
        metrics: Option<PrometheusHandle>,
    ) -> anyhow::Result<Server> {
        check_deployment(config)?;
        let (jwt, secrets) = token_signer(config)?;
        let jwt = Arc::new(jwt);
        let external = config.auth.external_provider()?.map(Arc::new);
        let webhooks = Arc::new(tenet_command::webhook::WebhookSettings {
            secrets,
            targets: config.webhooks.targets()?,
        });
        let db = open_database(&config.storage).await?;
        let bus = connect_bus(config).await?;
        let store = open_store(&db).await?;
        let passwords = Arc::new(
            Passwords::new(std::thread::available_parallelism().map_or(2, usize::from))
                .context("cannot set up password hashing")?,
        );
        let hub = Arc::new(tenet_query::realtime::Hub::new(config.realtime.send_buffer));
        let limits = Arc::new(RateLimits::new(
            config.rate_limit,
            config.auth_rate_limit,
            jwt.clone(),
            config.trust_forwarded_for,
        ));
        let mut background = Background::new(db.clone(), store.clone(), bus.clone());
        background
            .start(config, hub.clone(), limits.clone(), &webhooks)
            .await?;
        let router = http::router(http::HttpDeps {
            config,
            db: db.clone(),
            store,
            repository: background.repository.clone(),
            bus,
            checkpoints: background.checkpoints.clone(),
            metrics,
            jwt,
            passwords,
            limits,
            hub,
            shutdown: background.shutdown.clone(),
            webhooks,
            external,
        });
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        Ok(Server {
            listener,
            router,
            db,
            shutdown: background.shutdown,
            background: background.tasks,
            shutdown_timeout: config.shutdown_timeout(),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `signal` completes, then stops accepting, lets in-flight
    /// requests finish and projectors commit the batch in hand.
    pub async fn serve(
        mut self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let stop = shutdown.clone();
        let draining = CancellationToken::new();
        let drain = draining.clone();
        // Responses are written whole: Nagle's algorithm would only hold
        // the last segment of each back for the client's delayed ACK.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "TCP_NODELAY not set");
            }
        });
        let served = axum::serve(listener, app).with_graceful_shutdown(async move {
            tokio::select! {
                () = signal => {}
                () = stop.cancelled() => {}
            }
            tracing::info!("shutting down: finishing in-flight requests");
            drain.cancel();
        });
        // Draining is bounded too: a client that never finishes its
        // request must not hold the process forever.
        let result = tokio::select! {
            result = served => result.context("server error"),
            () = stop_draining(&draining, self.shutdown_timeout) => {
                tracing::warn!("in-flight requests did not finish in time; closing them");
                Ok(())
            }
        };
        shutdown.cancel();
        let drained = tokio::time::timeout(self.shutdown_timeout, async {
            while self.background.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("background work did not stop in time; aborting it");
            self.background.abort_all();
        }
        self.db.close().await;
        tracing::info!("stopped");
        result
    }
}

/// Resolves `timeout` after draining begins.
async fn stop_draining(draining: &CancellationToken, timeout: Duration) {
    draining.cancelled().await;
    tokio::time::sleep(timeout).await;
}

/// Installs SIGINT and SIGTERM handlers now (so a signal sent right after
/// the "listening" line is not lost) and resolves when either arrives.
#[cfg(unix)]
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(not(unix))]
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Grants or revokes platform admin (`tenet admin grant|revoke EMAIL`): an
/// event on the user's stream, with the CLI as its actor, so it is audited
/// like any change. Answers whether anything changed.
pub async fn set_platform_admin(
    storage: &StorageConfig,
    email: &str,
    admin: bool,
) -> anyhow::Result<bool> {
    use tenet_command::identity::user::{User, UserCommand, decide};
    use tenet_events::envelope::{Actor, Metadata};
    use tenet_events::ids::TenantId;

    let db = open_database(storage).await?;
    let store = open_store(&db).await?;
    let email = email.trim().to_lowercase();
    let user = tenet_projections::access::find_user_by_email(&db, &email)
        .await
        .context("cannot look the user up")?
        .with_context(|| format!("no account has the email {email}"))?;
    let repository = tenet_command::repository::Repository::new(store);
    let command = || {
        if admin {
            UserCommand::GrantPlatformAdmin
        } else {
            UserCommand::RevokePlatformAdmin
        }
    };
    let committed = repository
        .recorded_as(Metadata::new(Actor::System {
            name: "cli".to_owned(),
        }))
        .on::<User>(TenantId::PLATFORM, user)
        .decide(|user| decide(user, command()))
        .outcome()
        .await
        .map_err(|error| anyhow::anyhow!("cannot change platform admin: {error:?}"))?;
    db.close().await;
    Ok(committed.position.is_some())
}

/// Every projection's state (`tenet projections list`).
pub async fn projection_states(
    storage: &StorageConfig,
) -> anyhow::Result<Vec<tenet_projections::replay::ProjectionState>> {
    let db = open_database(storage).await?;
    let store = store::open(db.clone(), StoreOptions::default())
        .await
        .context("cannot open the event store")?;
    let head = store.head().await.context("cannot read the log")?;
    let states = tenet_projections::replay::projections(&db, head)
        .await
        .context("cannot read the projections")?;
    db.close().await;
    Ok(states)
}

/// Rebuilds a projection (`tenet projections replay NAME`): requests a
/// blue/green rebuild, then, unless `detach`, helps carry it out in this
/// process and reports its progress until it is swapped in. A deployment
/// that runs projectors works on it too; the rebuild's checkpoint (and, on
/// Postgres, leader election) keeps each event applied once.
pub async fn replay_projection(
    storage: &StorageConfig,
    name: &str,
    detach: bool,
    mut progress: impl FnMut(&tenet_projections::replay::Job),
) -> anyhow::Result<tenet_projections::replay::Job> {
    use tenet_projections::replay;
    use tenet_projections::runtime::Supervisor;

    let db = open_database(storage).await?;
    let store = store::open(db.clone(), StoreOptions::default())
        .await
        .context("cannot open the event store")?;
    let head = store.head().await.context("cannot read the log")?;
    let job = replay::request(&db, head, name, "cli")
        .await
        .with_context(|| format!("cannot rebuild {name}"))?;
    if detach {
        db.close().await;
        return Ok(job);
    }
    let projector = projectors()
        .into_iter()
        .chain(inline_projectors())
        .find(|projector| projector.name() == name)
        .with_context(|| format!("this build has no projector named {name}"))?;
    let shutdown = CancellationToken::new();
    let supervisor = Supervisor {
        runtime: Runtime {
            db: db.clone(),
            store: store.clone(),
            source: SourceKind::Log,
            checkpoints: Checkpoints::default(),
        },
        projector,
        rebuilds_only: true,
    };
    let helping = tokio::spawn(supervisor.run(shutdown.clone()));
    let outcome = loop {
        let head = store.head().await.context("cannot read the log")?;
        let current = replay::job(&db, head, job.id)
            .await
            .context("cannot read the job")?
            .context("the job disappeared")?;
        progress(&current);
        if current.state != "running" {
            break current;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    shutdown.cancel();
    let _ = helping.await;
    db.close().await;
    if outcome.state == "failed" {
        bail!(
            "the rebuild of {name} failed: {}",
            outcome.error.as_deref().unwrap_or("unknown error")
        );
    }
    Ok(outcome)
}
