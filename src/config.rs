//! Configuration: command-line flags, each with an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Where the data lives (shared by `serve`, `migrate` and the admin commands).
#[derive(Args, Clone, Debug)]
pub struct StorageConfig {
    /// Directory of the embedded database (used when DATABASE_URL is unset).
    #[arg(long, env = "TENET_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Postgres URL; when set, Tenet runs on Postgres instead of the embedded SQLite.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Most connections to Postgres per process.
    #[arg(long, env = "TENET_DB_MAX_CONNECTIONS", default_value_t = 32)]
    pub db_max_connections: u32,
}

/// What one process does. Several processes with different roles can share
/// one Postgres database and one NATS server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Write endpoints and the relay to NATS.
    Command,
    /// Projectors (and the relay).
    Projector,
    /// Read endpoints and the WebSocket feed.
    Query,
    /// Everything (the default, and the only choice on the embedded database).
    All,
}

#[derive(Args, Clone, Debug)]
pub struct ServeConfig {
    #[command(flatten)]
    pub storage: StorageConfig,

    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "TENET_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// NATS server with JetStream; requires DATABASE_URL.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,

    /// Prefix of this deployment's NATS subjects, streams and consumers.
    #[arg(long, env = "TENET_NATS_PREFIX", default_value = "tenet")]
    pub nats_prefix: String,

    /// Roles of this process (comma-separated).
    #[arg(
        long,
        env = "TENET_ROLE",
        value_enum,
        value_delimiter = ',',
        default_value = "all"
    )]
    pub role: Vec<Role>,

    /// Readiness fails when a projection is more than this many events behind the log.
    #[arg(long, env = "TENET_READY_MAX_LAG", default_value_t = 10_000)]
    pub ready_max_lag: i64,

    /// How long a read that carries X-Consistency-Token waits for the read model.
    #[arg(long, env = "TENET_CONSISTENCY_TIMEOUT_MS", default_value_t = 5_000)]
    pub consistency_timeout_ms: u64,

    /// How long shutdown waits for in-flight requests and projector batches.
    #[arg(long, env = "TENET_SHUTDOWN_TIMEOUT_MS", default_value_t = 20_000)]
    pub shutdown_timeout_ms: u64,

    #[command(flatten)]
    pub auth: AuthConfig,

    #[command(flatten)]
    pub realtime: RealtimeConfig,

    #[command(flatten)]
    pub webhooks: WebhookConfig,

    /// Requests per minute per principal (user or API key; per IP when anonymous).
    #[arg(long, env = "TENET_RATE_LIMIT", default_value_t = 600)]
    pub rate_limit: u32,

    /// Requests per minute per client IP on login and registration.
    #[arg(long, env = "TENET_AUTH_RATE_LIMIT", default_value_t = 10)]
    pub auth_rate_limit: u32,

    /// Take the client IP from X-Forwarded-For (only behind a proxy that sets it).
    #[arg(long, env = "TENET_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,

    /// `Strict-Transport-Security: max-age=<seconds>` on every answer, for a
    /// service reached over TLS (behind a TLS proxy); 0 (default): none.
    #[arg(long = "hsts", env = "TENET_HSTS", default_value_t = 0)]
    pub hsts_max_age: u64,

    /// Origins allowed to call the API from a browser (comma-separated); none by default.
    #[arg(long, env = "TENET_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// A pause inside each automation step, between `running` and its
    /// action (0: none). For fault tests that stop the process mid-step.
    #[arg(
        long,
        env = "TENET_AUTOMATION_STEP_DELAY_MS",
        default_value_t = 0,
        hide = true
    )]
    pub automation_step_delay_ms: u64,

    /// How often automations look for open tasks whose due date passed.
    #[arg(long, env = "TENET_AUTOMATION_DUE_SCAN_MS", default_value_t = 60_000)]
    pub automation_due_scan_ms: u64,
}

/// Access tokens.
#[derive(Args, Clone, Debug)]
pub struct AuthConfig {
    /// Secret signing access tokens (HS256), at least 32 bytes. Required with
    /// DATABASE_URL (every instance must share it); the embedded mode
    /// generates one in the data directory when unset.
    #[arg(long = "jwt-secret", env = "TENET_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// `iss` claim to issue and require.
    #[arg(long, env = "TENET_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// `aud` claim to issue and require.
    #[arg(long, env = "TENET_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "TENET_ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,

    /// Lifetime of refresh tokens, in seconds (each refresh starts it anew).
    #[arg(long, env = "TENET_REFRESH_TOKEN_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub refresh_token_ttl_secs: u64,

    /// A JWKS file of an external identity provider: its RS256/ES256
    /// tokens are accepted too (needs TENET_OIDC_ISSUER and TENET_OIDC_AUDIENCE).
    #[arg(long, env = "TENET_OIDC_JWKS_FILE", conflicts_with = "oidc_pem")]
    pub oidc_jwks_file: Option<PathBuf>,

    /// A PEM public key (RSA or P-256) of an external identity provider,
    /// instead of a JWKS file.
    #[arg(long, env = "TENET_OIDC_PEM")]
    pub oidc_pem: Option<PathBuf>,

    /// The `iss` external tokens must carry.
    #[arg(long, env = "TENET_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,

    /// The `aud` external tokens must carry.
    #[arg(long, env = "TENET_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,

    /// Create an account for an external identity whose email no account
    /// has (otherwise its tokens are refused with ACCOUNT_UNKNOWN).
    #[arg(
        long,
        env = "TENET_OIDC_AUTO_CREATE",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub oidc_auto_create: bool,
}

impl AuthConfig {
    /// The external identity provider configured, if any; an incomplete or
    /// unreadable configuration is an error (never silently off).
    pub fn external_provider(
        &self,
    ) -> anyhow::Result<Option<tenet_http::auth::external::ExternalProvider>> {
        use anyhow::Context;
        use tenet_http::auth::external::ExternalProvider;
        let keys = match (&self.oidc_jwks_file, &self.oidc_pem) {
            (None, None) => {
                if self.oidc_issuer.is_some() || self.oidc_audience.is_some() {
                    anyhow::bail!(
                        "TENET_OIDC_ISSUER/AUDIENCE need TENET_OIDC_JWKS_FILE or TENET_OIDC_PEM"
                    );
                }
                return Ok(None);
            }
            (Some(jwks), _) => (jwks, true),
            (None, Some(pem)) => (pem, false),
        };
        let (Some(issuer), Some(audience)) = (&self.oidc_issuer, &self.oidc_audience) else {
            anyhow::bail!(
                "an external identity provider needs TENET_OIDC_ISSUER and TENET_OIDC_AUDIENCE"
            );
        };
        let bytes =
            std::fs::read(keys.0).with_context(|| format!("cannot read {}", keys.0.display()))?;
        let provider = if keys.1 {
            let text = String::from_utf8(bytes).context("the JWKS file is not UTF-8")?;
            ExternalProvider::from_jwks(&text, issuer.clone(), audience.clone())
        } else {
            ExternalProvider::from_pem(&bytes, issuer.clone(), audience.clone())
        }
        .with_context(|| format!("cannot use the keys in {}", keys.0.display()))?;
        Ok(Some(provider))
    }
}

/// The WebSocket feed.
#[derive(Args, Clone, Debug)]
pub struct RealtimeConfig {
    /// Messages a WebSocket connection may have queued; a client that falls
    /// further behind gets SLOW_CONSUMER and is disconnected.
    #[arg(
        long = "ws-send-buffer",
        env = "TENET_WS_SEND_BUFFER",
        default_value_t = 1024
    )]
    pub send_buffer: usize,

    /// Seconds between the server's pings on a WebSocket.
    #[arg(
        long = "ws-heartbeat-secs",
        env = "TENET_WS_HEARTBEAT_SECS",
        default_value_t = 30
    )]
    pub heartbeat_secs: u64,

    /// A WebSocket client not heard from for this many seconds is disconnected.
    #[arg(
        long = "ws-idle-timeout-secs",
        env = "TENET_WS_IDLE_TIMEOUT_SECS",
        default_value_t = 90
    )]
    pub idle_timeout_secs: u64,

    /// Most subscriptions on one WebSocket connection.
    #[arg(
        long = "ws-max-subscriptions",
        env = "TENET_WS_MAX_SUBSCRIPTIONS",
        default_value_t = 100
    )]
    pub max_subscriptions: usize,

    /// Seconds between checks of each connection's credential and access
    /// (also checked at once after a membership, key or session change).
    #[arg(
        long = "ws-recheck-secs",
        env = "TENET_WS_RECHECK_SECS",
        default_value_t = 60
    )]
    pub recheck_secs: u64,

    /// Seconds of updates kept for resuming with `since` (default 7 days).
    #[arg(long = "feed-retention-secs", env = "TENET_FEED_RETENTION_SECS", default_value_t = 7 * 24 * 3600)]
    pub retention_secs: u64,

    /// Milliseconds between prunes of the feed's outbox.
    #[arg(
        long = "feed-prune-every-ms",
        env = "TENET_FEED_PRUNE_EVERY_MS",
        default_value_t = 60_000
    )]
    pub prune_every_ms: u64,
}

/// Webhook deliveries.
#[derive(Args, Clone, Debug)]
pub struct WebhookConfig {
    /// Allow plain `http` webhook URLs (for development only).
    #[arg(
        long = "webhook-allow-http",
        env = "TENET_WEBHOOK_ALLOW_HTTP",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub allow_http: bool,

    /// Networks (comma-separated CIDRs) webhooks may reach although they
    /// are private, loopback or link-local (e.g. `127.0.0.0/8`).
    #[arg(
        long = "webhook-allow-nets",
        env = "TENET_WEBHOOK_ALLOW_NETS",
        default_value = ""
    )]
    pub allow_nets: String,

    /// Milliseconds before the first retry of a failed delivery; each
    /// retry waits about twice as long as the one before (with jitter).
    #[arg(
        long = "webhook-retry-base-ms",
        env = "TENET_WEBHOOK_RETRY_BASE_MS",
        default_value_t = 1_000
    )]
    pub retry_base_ms: u64,

    /// Milliseconds a delivery attempt may take.
    #[arg(
        long = "webhook-timeout-ms",
        env = "TENET_WEBHOOK_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub timeout_ms: u64,

    /// Seconds a delivery is retried before it is marked failed (a day).
    #[arg(
        long = "webhook-give-up-secs",
        env = "TENET_WEBHOOK_GIVE_UP_SECS",
        default_value_t = 24 * 3600
    )]
    pub give_up_secs: u64,

    /// Seconds without a successful delivery, while deliveries fail, after
    /// which a webhook is disabled (three days).
    #[arg(
        long = "webhook-disable-after-secs",
        env = "TENET_WEBHOOK_DISABLE_AFTER_SECS",
        default_value_t = 3 * 24 * 3600
    )]
    pub disable_after_secs: u64,
}

impl WebhookConfig {
    pub fn targets(&self) -> anyhow::Result<tenet_command::webhook::target::TargetPolicy> {
        let allow_nets = tenet_command::webhook::target::TargetPolicy::parse_nets(&self.allow_nets)
            .map_err(|error| anyhow::anyhow!("TENET_WEBHOOK_ALLOW_NETS: {error}"))?;
        Ok(tenet_command::webhook::target::TargetPolicy {
            allow_http: self.allow_http,
            allow_nets,
        })
    }
}

impl RealtimeConfig {
    pub fn settings(&self) -> tenet_query::realtime::Settings {
        tenet_query::realtime::Settings {
            send_buffer: self.send_buffer.max(1),
            heartbeat: Duration::from_secs(self.heartbeat_secs.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            max_subscriptions: self.max_subscriptions.max(1),
            recheck_every: Duration::from_secs(self.recheck_secs.max(1)),
            ..tenet_query::realtime::Settings::default()
        }
    }
}

impl ServeConfig {
    pub fn runs(&self, role: Role) -> bool {
        self.role.contains(&Role::All) || self.role.contains(&role)
    }

    pub fn consistency_timeout(&self) -> Duration {
        Duration::from_millis(self.consistency_timeout_ms)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
}

/// A database URL with its password hidden, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://tenet:s3cret@db:5432/tenet"),
            "postgres://tenet:***@db:5432/tenet"
        );
        assert_eq!(redact("postgres://db/tenet"), "postgres://db/tenet");
        assert_eq!(redact("::::"), "<unparseable URL>");
    }
}
