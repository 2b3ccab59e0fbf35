//! One delivery attempt over HTTP: the target checked at delivery time
//! (the host resolved, each address it resolves to checked, and the
//! request pinned to those addresses, so a name cannot point elsewhere
//! between the check and the connection), Standard Webhooks headers, a
//! timeout, no redirects, and only the first bytes of the answer read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tenet_projections::webhooks::WebhookRow;
use tenet_projections::webhooks::deliveries::DeliveryRow;
use tokio::time::Instant;

use super::Settings;
use super::sign::{key_of, signature};

/// Bytes of an answer kept in the delivery log.
const RESPONSE_HEAD: usize = 512;

/// What one attempt came to.
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub duration: Duration,
    pub response: Option<String>,
    pub error: Option<String>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.status_code
            .is_some_and(|code| (200..300).contains(&code))
    }
}

#[derive(Clone)]
pub struct Client {
    settings: Arc<Settings>,
}

impl Client {
    pub fn new(settings: &Settings) -> Client {
        // reqwest's TLS takes the process's provider: ring, which the
        // NATS client already uses. Installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client {
            settings: Arc::new(settings.clone()),
        }
    }

    pub async fn deliver(&self, row: &WebhookRow, delivery: &DeliveryRow) -> Attempt {
        let at = Utc::now();
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.settings.timeout, self.send(row, delivery)).await;
        let duration = started.elapsed();
        let (status_code, response, error) = match outcome {
            Ok(Ok((status, head))) => (Some(i32::from(status)), Some(head), None),
            Ok(Err(error)) => (None, None, Some(error)),
            Err(_) => (
                None,
                None,
                Some(format!(
                    "no answer within {} ms",
                    self.settings.timeout.as_millis()
                )),
            ),
        };
        Attempt {
            at,
            status_code,
            duration,
            response,
            error,
        }
    }

    /// Sends the delivery; answers the status and the first bytes of the
    /// answer, or why there was none.
    async fn send(
        &self,
        row: &WebhookRow,
        delivery: &DeliveryRow,
    ) -> Result<(u16, String), String> {
        let settings = &self.settings;
        let url = settings.targets.check_url(&row.url)?;
        let host = url.host_str().ok_or("the URL names no host")?.to_owned();
        let port = url.port_or_known_default().ok_or("the URL names no port")?;
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|error| format!("cannot resolve {host}: {error}"))?
            .collect();
        if addresses.is_empty() {
            return Err(format!("{host} resolves to no address"));
        }
        for address in &addresses {
            settings.targets.check_address(address.ip())?;
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .resolve_to_addrs(&host, &addresses)
            .user_agent(concat!("Tenet-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("cannot set up the HTTP client: {error}"))?;
        let id = delivery.id.to_string();
        let timestamp = Utc::now().timestamp();
        let signatures = self.signatures(row, &id, timestamp, &delivery.body)?;
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signatures)
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(|error| describe(&error))?;
        let status = response.status().as_u16();
        let head = read_head(response).await;
        Ok((status, head))
    }

    /// The signature with the current secret, and with the previous one
    /// while it still signs, space-separated.
    fn signatures(
        &self,
        row: &WebhookRow,
        id: &str,
        timestamp: i64,
        body: &str,
    ) -> Result<String, String> {
        let secrets = &self.settings.secrets;
        let open = |sealed: &str| {
            secrets
                .open(sealed)
                .ok()
                .and_then(|secret| key_of(&secret))
                .ok_or_else(|| {
                    "cannot open the webhook's secret (was the service's signing secret changed?)"
                        .to_owned()
                })
        };
        let mut signed = vec![signature(&open(&row.sealed_secret)?, id, timestamp, body)];
        if let (Some(previous), Some(until)) = (&row.sealed_previous, row.previous_until)
            && until > Utc::now()
        {
            signed.push(signature(&open(previous)?, id, timestamp, body));
        }
        Ok(signed.join(" "))
    }
}

/// Up to [`RESPONSE_HEAD`] bytes of the answer, as text.
async fn read_head(mut response: reqwest::Response) -> String {
    let mut head = Vec::new();
    while head.len() < RESPONSE_HEAD {
        match response.chunk().await {
            Ok(Some(chunk)) => head.extend_from_slice(&chunk),
            _ => break,
        }
    }
    head.truncate(RESPONSE_HEAD);
    String::from_utf8_lossy(&head).into_owned()
}

/// Why a request got no answer, without the URL (the log shows it already).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(error);
    let mut detail = String::new();
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}
