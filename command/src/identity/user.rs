//! The user aggregate: registration, the platform-admin flag, the name and
//! the account's lifecycle (deactivated, reactivated).

use tenet_events::catalogue::user::{
    EMAIL_CLAIM, PlatformAdminGranted, PlatformAdminRevoked, UserDeactivated, UserEvent,
    UserPasswordChanged, UserReactivated, UserRegistered, UserRenamed,
};
use tenet_events::ids::{SessionId, TenantId};
use tenet_events::store::Claim;

use crate::repository::{Aggregate, Applied};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    pub registered: bool,
    pub email: String,
    pub name: String,
    pub platform_admin: bool,
    pub registered_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Deactivated and not reactivated since.
    pub deactivated: bool,
}

impl Aggregate for User {
    const KIND: &'static str = "user";
    type Event = UserEvent;

    fn evolve(&mut self, event: &UserEvent, applied: &Applied) {
        match event {
            UserEvent::Registered(registered) => {
                self.registered = true;
                self.registered_at = Some(applied.occurred_at);
                self.email = registered.email.clone();
                self.name = registered.name.clone();
            }
            UserEvent::PlatformAdminGranted(_) => self.platform_admin = true,
            UserEvent::PlatformAdminRevoked(_) => self.platform_admin = false,
            UserEvent::Renamed(renamed) => self.name = renamed.name.clone(),
            UserEvent::Deactivated(_) => self.deactivated = true,
            UserEvent::Reactivated(_) => self.deactivated = false,
            UserEvent::PasswordChanged(_) => {}
        }
    }

    fn claims(&self, _tenant: TenantId, events: &[UserEvent]) -> (Vec<Claim>, Vec<Claim>) {
        let claims = events
            .iter()
            .filter_map(|event| match event {
                UserEvent::Registered(registered) => {
                    Some(Claim::new(EMAIL_CLAIM, &registered.email))
                }
                _ => None,
            })
            .collect();
        (claims, Vec::new())
    }
}

pub enum UserCommand {
    Register {
        email: String,
        name: String,
        password_hash: String,
    },
    GrantPlatformAdmin,
    RevokePlatformAdmin,
    Rename {
        name: String,
    },
    Deactivate {
        reason: String,
    },
    Reactivate,
    /// A new password; every other session ends (all but `kept_session`).
    ChangePassword {
        password_hash: String,
        kept_session: Option<SessionId>,
    },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("this user is already registered")]
    AlreadyRegistered,
    #[error("no such user")]
    NotFound,
    #[error("this account is deactivated")]
    Deactivated,
}

pub fn decide(user: &User, command: UserCommand) -> Result<Vec<UserEvent>, UserError> {
    match command {
        UserCommand::Register {
            email,
            name,
            password_hash,
        } => {
            if user.registered {
                return Err(UserError::AlreadyRegistered);
            }
            Ok(vec![UserEvent::Registered(UserRegistered {
                email,
                name,
                password_hash,
            })])
        }
        // Granting what is granted (or revoking what is not) changes
        // nothing and records nothing.
        UserCommand::GrantPlatformAdmin if !user.registered => Err(UserError::NotFound),
        UserCommand::GrantPlatformAdmin if user.platform_admin => Ok(vec![]),
        UserCommand::GrantPlatformAdmin => Ok(vec![UserEvent::PlatformAdminGranted(
            PlatformAdminGranted {},
        )]),
        UserCommand::RevokePlatformAdmin if !user.registered => Err(UserError::NotFound),
        UserCommand::RevokePlatformAdmin if !user.platform_admin => Ok(vec![]),
        UserCommand::RevokePlatformAdmin => Ok(vec![UserEvent::PlatformAdminRevoked(
            PlatformAdminRevoked {},
        )]),
        _ if !user.registered => Err(UserError::NotFound),
        UserCommand::Rename { name } if name == user.name => Ok(vec![]),
        UserCommand::Rename { name } => Ok(vec![UserEvent::Renamed(UserRenamed { name })]),
        // Deactivating a deactivated account (or reactivating an active
        // one) changes nothing and records nothing.
        UserCommand::Deactivate { .. } if user.deactivated => Ok(vec![]),
        UserCommand::Deactivate { reason } => {
            Ok(vec![UserEvent::Deactivated(UserDeactivated { reason })])
        }
        UserCommand::Reactivate if !user.deactivated => Ok(vec![]),
        UserCommand::Reactivate => Ok(vec![UserEvent::Reactivated(UserReactivated {})]),
        UserCommand::ChangePassword { .. } if user.deactivated => Err(UserError::Deactivated),
        UserCommand::ChangePassword {
            password_hash,
            kept_session,
        } => Ok(vec![UserEvent::PasswordChanged(UserPasswordChanged {
            password_hash,
            kept_session,
        })]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn registered() -> UserEvent {
        UserEvent::Registered(UserRegistered {
            email: "ada@example.com".into(),
            name: "Ada".into(),
            password_hash: "$argon2id$...".into(),
        })
    }

    fn register() -> UserCommand {
        UserCommand::Register {
            email: "ada@example.com".into(),
            name: "Ada".into(),
            password_hash: "$argon2id$...".into(),
        }
    }

    #[test]
    fn a_new_user_registers_and_claims_the_email() {
        let user = given::<User>([]);
        let events = decide(&user, register()).unwrap();
        assert_eq!(events, vec![registered()]);
        let (claims, _) = user.claims(TenantId::PLATFORM, &events);
        assert_eq!(claims, vec![Claim::new(EMAIL_CLAIM, "ada@example.com")]);
    }

    #[test]
    fn a_user_registers_once() {
        assert_eq!(
            decide(&given([registered()]), register()),
            Err(UserError::AlreadyRegistered)
        );
    }

    #[test]
    fn granting_admin_is_recorded_once() {
        let user = given([registered()]);
        let events = decide(&user, UserCommand::GrantPlatformAdmin).unwrap();
        assert_eq!(events.len(), 1);
        let admin = given::<User>([registered(), events[0].clone()]);
        assert!(admin.platform_admin);
        assert_eq!(decide(&admin, UserCommand::GrantPlatformAdmin), Ok(vec![]));
        assert_eq!(
            decide(&admin, UserCommand::RevokePlatformAdmin)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn deactivation_and_reactivation_are_recorded_once_each() {
        let user = given([registered()]);
        let deactivate = || UserCommand::Deactivate {
            reason: "abuse".into(),
        };
        let events = decide(&user, deactivate()).unwrap();
        assert_eq!(
            events,
            vec![UserEvent::Deactivated(UserDeactivated {
                reason: "abuse".into()
            })]
        );
        let deactivated = given::<User>([registered(), events[0].clone()]);
        assert!(deactivated.deactivated);
        assert_eq!(decide(&deactivated, deactivate()), Ok(vec![]));
        let events = decide(&deactivated, UserCommand::Reactivate).unwrap();
        assert_eq!(events, vec![UserEvent::Reactivated(UserReactivated {})]);
        assert_eq!(decide(&user, UserCommand::Reactivate), Ok(vec![]));
    }

    #[test]
    fn renaming_records_only_a_new_name() {
        let user = given([registered()]);
        let rename = |name: &str| UserCommand::Rename { name: name.into() };
        assert_eq!(decide(&user, rename("Ada")), Ok(vec![]));
        assert_eq!(
            decide(&user, rename("Ada L.")),
            Ok(vec![UserEvent::Renamed(UserRenamed {
                name: "Ada L.".into()
            })])
        );
        assert_eq!(
            decide(&given([]), rename("Nobody")),
            Err(UserError::NotFound)
        );
    }

    #[test]
    fn granting_admin_to_nobody_is_refused() {
        assert_eq!(
            decide(&given([]), UserCommand::GrantPlatformAdmin),
            Err(UserError::NotFound)
        );
    }
}
