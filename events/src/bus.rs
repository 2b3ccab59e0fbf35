//! NATS JetStream: the bus that fans committed events out to projectors and
//! to every query instance.
//!
//! Subjects are `<prefix>.events.<tenant_id>.<aggregate>.<fact>`, so a
//! consumer can filter by tenant or by aggregate with ordinary wildcards
//! (NATS 2.9 has no multi-filter consumers; one filter is all we need). The
//! prefix (default `tenet`) lets several deployments, or test runs, share a
//! server without seeing each other.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::envelope::RecordedEvent;

/// A connection to NATS with JetStream, and the names Tenet uses on it.
#[derive(Clone, Debug)]
pub struct Bus {
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    prefix: String,
}

/// An error of the NATS client, whose operations each have their own type.
pub type ClientError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("invalid NATS prefix {0:?}: use letters, digits, '-' or '_'")]
    InvalidPrefix(String),
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: ClientError,
    },
    #[error("JetStream: {0}")]
    JetStream(#[source] ClientError),
}

/// How long the server remembers a message id to drop a republished
/// duplicate: longer than any relay restart we expect. A restart slower than
/// this still loses nothing; projectors then drop duplicates by position.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How long events stay on the bus. The log in the database is the record;
/// the bus only has to cover a consumer's downtime, and a consumer that was
/// away longer reads the gap from the log.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

impl Bus {
    /// Connects, failing within a few seconds when the server is unreachable.
    pub async fn connect(url: &str, prefix: &str) -> Result<Bus, BusError> {
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(BusError::InvalidPrefix(prefix.to_owned()));
        }
        let client = async_nats::ConnectOptions::new()
            .name("tenet")
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|error| BusError::Connect {
                url: url.to_owned(),
                source: error.into(),
            })?;
        let jetstream = jetstream::new(client.clone());
        Ok(Bus {
            client,
            jetstream,
            prefix: prefix.to_owned(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The JetStream stream holding the events (stream names allow no '.'
    /// and are conventionally upper case).
    pub fn events_stream(&self) -> String {
        format!(
            "{}_EVENTS",
            self.prefix.to_ascii_uppercase().replace('-', "_")
        )
    }

    /// Subject filter matching every event.
    pub fn all_events(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    pub fn event_subject(&self, event: &RecordedEvent) -> String {
        format!(
            "{}.events.{}.{}.{}",
            self.prefix,
            event.tenant_id,
            subject_token(event.aggregate()),
            subject_token(event.fact())
        )
    }

    /// Name of a durable consumer of this deployment.
    pub fn consumer_name(&self, name: &str) -> String {
        format!("{}_{}", self.prefix, name).replace(['.', '*', '>', ' '], "_")
    }

    /// Creates the events stream, or updates its settings.
    pub async fn ensure_events_stream(&self) -> Result<stream::Stream, BusError> {
        let config = stream::Config {
            name: self.events_stream(),
            subjects: vec![self.all_events()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            max_age: RETENTION,
            duplicate_window: DUPLICATE_WINDOW,
            description: Some("Tenet's committed events, in log order".to_owned()),
            ..Default::default()
        };
        self.jetstream
            .create_or_update_stream(config)
            .await
            .map_err(|error| BusError::JetStream(error.into()))?;
        self.jetstream
            .get_stream(self.events_stream())
            .await
            .map_err(|error| BusError::JetStream(error.into()))
    }

    /// Whether the connection to the server is up.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Removes this deployment's streams (tests clean up with it).
    pub async fn delete_streams(&self) -> Result<(), BusError> {
        match self.jetstream.delete_stream(self.events_stream()).await {
            Ok(_) => Ok(()),
            Err(error) if error.to_string().contains("not found") => Ok(()),
            Err(error) => Err(BusError::JetStream(error.into())),
        }
    }
}

/// Subject tokens cannot hold '.', '*', '>' or whitespace; event names never
/// should, but a malformed one must not reroute the message.
fn subject_token(part: &str) -> String {
    part.chars()
        .map(|c| match c {
            '.' | '*' | '>' => '_',
            c if c.is_whitespace() => '_',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_tokens_cannot_escape_their_place() {
        assert_eq!(subject_token("status_changed"), "status_changed");
        assert_eq!(subject_token("a.b*c> d"), "a_b_c__d");
    }
}
