//! The API key aggregate: issued once, revoked at most once.

use chrono::{DateTime, Utc};
use tenet_events::catalogue::api_key::{ApiKeyEvent, ApiKeyIssued, ApiKeyRevoked};
use tenet_events::ids::UserId;

use crate::repository::{Aggregate, Applied};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiKey {
    pub issued: bool,
    pub revoked: bool,
    pub name: String,
    pub scopes: Vec<String>,
    pub prefix: String,
    pub issued_by: Option<UserId>,
    pub created_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Aggregate for ApiKey {
    const KIND: &'static str = "api_key";
    type Event = ApiKeyEvent;

    fn evolve(&mut self, event: &ApiKeyEvent, applied: &Applied) {
        match event {
            ApiKeyEvent::Issued(issued) => {
                self.issued = true;
                self.name = issued.name.clone();
                self.scopes = issued.scopes.clone();
                self.prefix = issued.prefix.clone();
                self.issued_by = Some(issued.issued_by);
                self.expires_at = issued.expires_at;
                self.created_at = Some(applied.occurred_at);
            }
            ApiKeyEvent::Revoked(_) => {
                self.revoked = true;
                self.revoked_at = Some(applied.occurred_at);
            }
        }
    }
}

pub enum ApiKeyCommand {
    Issue(ApiKeyIssued),
    Revoke,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("the key already exists")]
    AlreadyIssued,
    #[error("no such API key")]
    NotFound,
}

pub fn decide(key: &ApiKey, command: ApiKeyCommand) -> Result<Vec<ApiKeyEvent>, ApiKeyError> {
    match command {
        ApiKeyCommand::Issue(_) if key.issued => Err(ApiKeyError::AlreadyIssued),
        ApiKeyCommand::Issue(issued) => Ok(vec![ApiKeyEvent::Issued(issued)]),
        ApiKeyCommand::Revoke if !key.issued => Err(ApiKeyError::NotFound),
        // Revoking a revoked key changes nothing: retrying a DELETE is safe.
        ApiKeyCommand::Revoke if key.revoked => Ok(vec![]),
        ApiKeyCommand::Revoke => Ok(vec![ApiKeyEvent::Revoked(ApiKeyRevoked {})]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn issued() -> ApiKeyIssued {
        ApiKeyIssued {
            name: "ci".into(),
            scopes: vec!["tasks:read".into()],
            key_hash: "abc".into(),
            prefix: "tnt_abcd1234".into(),
            expires_at: None,
            issued_by: UserId::from_uuid(uuid::Uuid::from_u128(1)),
        }
    }

    #[test]
    fn a_key_is_issued_once() {
        assert_eq!(
            decide(&given::<ApiKey>([]), ApiKeyCommand::Issue(issued())),
            Ok(vec![ApiKeyEvent::Issued(issued())])
        );
        assert_eq!(
            decide(
                &given::<ApiKey>([ApiKeyEvent::Issued(issued())]),
                ApiKeyCommand::Issue(issued())
            ),
            Err(ApiKeyError::AlreadyIssued)
        );
    }

    #[test]
    fn revoking_is_recorded_once_and_needs_a_key() {
        let key = given::<ApiKey>([ApiKeyEvent::Issued(issued())]);
        assert_eq!(decide(&key, ApiKeyCommand::Revoke).unwrap().len(), 1);
        let revoked = given::<ApiKey>([
            ApiKeyEvent::Issued(issued()),
            ApiKeyEvent::Revoked(ApiKeyRevoked {}),
        ]);
        assert_eq!(decide(&revoked, ApiKeyCommand::Revoke), Ok(vec![]));
        assert_eq!(
            decide(&given::<ApiKey>([]), ApiKeyCommand::Revoke),
            Err(ApiKeyError::NotFound)
        );
    }
}
