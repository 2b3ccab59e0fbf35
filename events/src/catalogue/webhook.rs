//! Webhooks: a workspace's subscriptions of an HTTPS endpoint to its
//! events, signed with a secret of their own.
//!
//! The signing secret is recorded only sealed (encrypted and
//! authenticated with a key derived from the service's signing secret):
//! the dispatcher must recover it to sign, yet neither the log's readers
//! nor a database dump see it. `SECRET_FIELDS` redacts even the sealed
//! form from the audit log and the event feed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event_family;
use crate::ids::UserId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookCreated {
    pub url: String,
    pub description: String,
    /// Exact event types (`task.created`) or prefixes ending in `.`
    /// (`task.`); empty: every event.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// The `whsec_…` secret, sealed. A secret: redacted from the audit log.
    pub sealed_secret: String,
    pub created_by: UserId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A new secret; the one before it still signs until `previous_until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSecretRotated {
    pub sealed_secret: String,
    /// The secret it replaces, sealed, so deliveries carry both
    /// signatures during the overlap.
    pub sealed_previous: String,
    pub previous_until: DateTime<Utc>,
}

/// Turned off by the dispatcher after its deliveries failed for days.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDisabled {
    pub reason: String,
}

/// A test delivery was asked for (`POST …/test`): the dispatcher sends it
/// to this webhook only, whatever its filters say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookTest {}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDeleted {}

event_family! {
    /// What happens to a webhook.
    pub enum WebhookEvent {
        Created(WebhookCreated) = "webhook.created" v 1;
        Updated(WebhookUpdated) = "webhook.updated" v 1;
        SecretRotated(WebhookSecretRotated) = "webhook.secret_rotated" v 1;
        Disabled(WebhookDisabled) = "webhook.disabled" v 1;
        Test(WebhookTest) = "webhook.test" v 1;
        Deleted(WebhookDeleted) = "webhook.deleted" v 1;
    }
}

/// Whether a webhook whose filters are `filters` receives an event of
/// `event_type`: no filter means every event; a filter ending in `.` is a
/// prefix (`task.` takes `task.created`), any other is an exact type.
pub fn wants(filters: &[String], event_type: &str) -> bool {
    filters.is_empty()
        || filters.iter().any(|filter| {
            if filter.ends_with('.') {
                event_type.starts_with(filter.as_str())
            } else {
                filter == event_type
            }
        })
}

#[cfg(test)]
mod tests {
    use super::wants;

    #[test]
    fn filters_are_exact_types_or_prefixes_and_none_means_all() {
        let filters = vec!["task.".to_owned(), "comment.added".to_owned()];
        assert!(wants(&filters, "task.created"));
        assert!(wants(&filters, "task.status_changed"));
        assert!(wants(&filters, "comment.added"));
        assert!(!wants(&filters, "comment.edited"));
        assert!(!wants(&filters, "tasks.created"));
        assert!(!wants(&filters, "project.created"));
        assert!(wants(&[], "project.created"));
        assert!(
            !wants(&["task".to_owned()], "task.created"),
            "no dot: exact"
        );
    }
}
