//! The webhook aggregate: created once, changed, its secret rotated,
//! disabled by the dispatcher, tested, deleted at most once.

use chrono::{DateTime, Utc};
use tenet_events::catalogue::webhook::{
    WebhookCreated, WebhookDeleted, WebhookDisabled, WebhookEvent, WebhookSecretRotated,
    WebhookTest, WebhookUpdated,
};
use tenet_events::ids::UserId;

use crate::repository::{Aggregate, Applied};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Webhook {
    pub created: bool,
    pub deleted: bool,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// The current secret, sealed: a rotation keeps it as the previous one.
    pub sealed_secret: String,
    pub previous_until: Option<DateTime<Utc>>,
    pub created_by: Option<UserId>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Aggregate for Webhook {
    const KIND: &'static str = "webhook";
    type Event = WebhookEvent;

    fn evolve(&mut self, event: &WebhookEvent, applied: &Applied) {
        match event {
            WebhookEvent::Created(created) => {
                self.created = true;
                self.url = created.url.clone();
                self.description = created.description.clone();
                self.event_types = created.event_types.clone();
                self.enabled = created.enabled;
                self.sealed_secret = created.sealed_secret.clone();
                self.created_by = Some(created.created_by);
                self.created_at = Some(applied.occurred_at);
            }
            WebhookEvent::Updated(updated) => {
                if let Some(url) = &updated.url {
                    self.url = url.clone();
                }
                if let Some(description) = &updated.description {
                    self.description = description.clone();
                }
                if let Some(types) = &updated.event_types {
                    self.event_types = types.clone();
                }
                if let Some(enabled) = updated.enabled {
                    if enabled {
                        self.disabled_reason = None;
                    }
                    self.enabled = enabled;
                }
            }
            WebhookEvent::SecretRotated(rotated) => {
                self.sealed_secret = rotated.sealed_secret.clone();
                self.previous_until = Some(rotated.previous_until);
            }
            WebhookEvent::Disabled(disabled) => {
                self.enabled = false;
                self.disabled_reason = Some(disabled.reason.clone());
            }
            WebhookEvent::Test(_) => return,
            WebhookEvent::Deleted(_) => {
                self.deleted = true;
                self.enabled = false;
            }
        }
        self.updated_at = Some(applied.occurred_at);
    }
}

pub enum WebhookCommand {
    Create(WebhookCreated),
    /// Changes only what differs from the current state.
    Update(WebhookUpdated),
    /// A new sealed secret; the current one signs until `previous_until`.
    RotateSecret {
        sealed_secret: String,
        previous_until: DateTime<Utc>,
    },
    /// By the dispatcher, after failing deliveries.
    Disable {
        reason: String,
    },
    Test,
    Delete,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook already exists")]
    AlreadyExists,
    #[error("no such webhook")]
    NotFound,
    #[error("the webhook is disabled: enable it first")]
    Disabled,
}

pub fn decide(
    webhook: &Webhook,
    command: WebhookCommand,
) -> Result<Vec<WebhookEvent>, WebhookError> {
    if let WebhookCommand::Create(created) = command {
        if webhook.created {
            return Err(WebhookError::AlreadyExists);
        }
        return Ok(vec![WebhookEvent::Created(created)]);
    }
    if !webhook.created || webhook.deleted {
        // Deleting again changes nothing: retrying a DELETE is safe.
        return match command {
            WebhookCommand::Delete if webhook.deleted => Ok(vec![]),
            _ => Err(WebhookError::NotFound),
        };
    }
    Ok(match command {
        WebhookCommand::Create(_) => return Err(WebhookError::AlreadyExists),
        WebhookCommand::Update(update) => {
            let changed = WebhookUpdated {
                url: update.url.filter(|url| *url != webhook.url),
                description: update
                    .description
                    .filter(|description| *description != webhook.description),
                event_types: update
                    .event_types
                    .filter(|types| *types != webhook.event_types),
                enabled: update.enabled.filter(|enabled| *enabled != webhook.enabled),
            };
            let nothing = changed.url.is_none()
                && changed.description.is_none()
                && changed.event_types.is_none()
                && changed.enabled.is_none();
            if nothing {
                vec![]
            } else {
                vec![WebhookEvent::Updated(changed)]
            }
        }
        WebhookCommand::RotateSecret {
            sealed_secret,
            previous_until,
        } => vec![WebhookEvent::SecretRotated(WebhookSecretRotated {
            sealed_secret,
            sealed_previous: webhook.sealed_secret.clone(),
            previous_until,
        })],
        WebhookCommand::Disable { .. } if !webhook.enabled => vec![],
        WebhookCommand::Disable { reason } => {
            vec![WebhookEvent::Disabled(WebhookDisabled { reason })]
        }
        WebhookCommand::Test if !webhook.enabled => return Err(WebhookError::Disabled),
        WebhookCommand::Test => vec![WebhookEvent::Test(WebhookTest {})],
        WebhookCommand::Delete => vec![WebhookEvent::Deleted(WebhookDeleted {})],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn created() -> WebhookCreated {
        WebhookCreated {
            url: "https://example.com/hook".into(),
            description: String::new(),
            event_types: vec!["task.".into()],
            enabled: true,
            sealed_secret: "v1.first".into(),
            created_by: UserId::from_uuid(uuid::Uuid::from_u128(1)),
        }
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn a_webhook_is_created_once() {
        let fresh = given::<Webhook>([]);
        assert_eq!(
            decide(&fresh, WebhookCommand::Create(created())),
            Ok(vec![WebhookEvent::Created(created())])
        );
        let existing = given::<Webhook>([WebhookEvent::Created(created())]);
        assert_eq!(
            decide(&existing, WebhookCommand::Create(created())),
            Err(WebhookError::AlreadyExists)
        );
    }

    #[test]
    fn an_update_records_only_what_changes() {
        let webhook = given::<Webhook>([WebhookEvent::Created(created())]);
        let same = WebhookUpdated {
            url: Some("https://example.com/hook".into()),
            description: None,
            event_types: Some(vec!["task.".into()]),
            enabled: Some(true),
        };
        assert_eq!(decide(&webhook, WebhookCommand::Update(same)), Ok(vec![]));
        let off = WebhookUpdated {
            url: Some("https://example.com/hook".into()),
            description: None,
            event_types: None,
            enabled: Some(false),
        };
        assert_eq!(
            decide(&webhook, WebhookCommand::Update(off)),
            Ok(vec![WebhookEvent::Updated(WebhookUpdated {
                url: None,
                description: None,
                event_types: None,
                enabled: Some(false),
            })])
        );
    }

    #[test]
    fn a_rotation_keeps_the_current_secret_as_the_previous_one() {
        let webhook = given::<Webhook>([WebhookEvent::Created(created())]);
        let rotated = decide(
            &webhook,
            WebhookCommand::RotateSecret {
                sealed_secret: "v1.second".into(),
                previous_until: at(),
            },
        );
        assert_eq!(
            rotated,
            Ok(vec![WebhookEvent::SecretRotated(WebhookSecretRotated {
                sealed_secret: "v1.second".into(),
                sealed_previous: "v1.first".into(),
                previous_until: at(),
            })])
        );
    }

    #[test]
    fn disabling_tests_and_deleting_follow_the_state() {
        let webhook = given::<Webhook>([WebhookEvent::Created(created())]);
        let disable = || WebhookCommand::Disable {
            reason: "failing".into(),
        };
        assert_eq!(decide(&webhook, disable()).map(|e| e.len()), Ok(1));
        let disabled = given::<Webhook>([
            WebhookEvent::Created(created()),
            WebhookEvent::Disabled(WebhookDisabled {
                reason: "failing".into(),
            }),
        ]);
        assert_eq!(decide(&disabled, disable()), Ok(vec![]));
        assert_eq!(
            decide(&disabled, WebhookCommand::Test),
            Err(WebhookError::Disabled)
        );
        assert_eq!(
            decide(&webhook, WebhookCommand::Test).map(|e| e.len()),
            Ok(1)
        );
        let deleted = given::<Webhook>([
            WebhookEvent::Created(created()),
            WebhookEvent::Deleted(WebhookDeleted {}),
        ]);
        assert_eq!(decide(&deleted, WebhookCommand::Delete), Ok(vec![]));
        assert_eq!(
            decide(&deleted, WebhookCommand::Test),
            Err(WebhookError::NotFound)
        );
        assert_eq!(
            decide(&given::<Webhook>([]), WebhookCommand::Delete),
            Err(WebhookError::NotFound)
        );
    }
}
