//! API keys: workspace-bound credentials with an explicit set of scopes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event_family;
use crate::ids::UserId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyIssued {
    pub name: String,
    /// Scope grammar strings (`tasks:write`, `projects:*`).
    pub scopes: Vec<String>,
    /// SHA-256 of the secret, hex. A secret: redacted from the audit log.
    pub key_hash: String,
    /// The first characters of the secret, to recognise it in lists.
    pub prefix: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// The user whose scopes bound the key's.
    pub issued_by: UserId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRevoked {}

event_family! {
    /// What happens to an API key.
    pub enum ApiKeyEvent {
        Issued(ApiKeyIssued) = "api_key.issued" v 1;
        Revoked(ApiKeyRevoked) = "api_key.revoked" v 1;
    }
}
