//! The impersonation aggregate: a platform admin acting as a user for a
//! short while, with a reason. Started against the user's stream (which
//! must be unchanged when it commits), so a user granted platform admin
//! meanwhile is never impersonated; ended once.

use chrono::{DateTime, Utc};
use tenet_events::catalogue::impersonation::{
    ImpersonationEnded, ImpersonationEvent, ImpersonationStarted,
};
use tenet_events::ids::UserId;

use super::user::User;
use crate::repository::{Aggregate, Applied};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Impersonation {
    pub user: Option<UserId>,
    pub admin: Option<UserId>,
    pub reason: String,
    pub started_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl Aggregate for Impersonation {
    const KIND: &'static str = "impersonation";
    type Event = ImpersonationEvent;

    fn evolve(&mut self, event: &ImpersonationEvent, applied: &Applied) {
        match event {
            ImpersonationEvent::Started(started) => {
                self.user = Some(started.user_id);
                self.admin = Some(started.admin_id);
                self.reason = started.reason.clone();
                self.started_at = Some(applied.occurred_at);
                self.expires_at = Some(started.expires_at);
            }
            ImpersonationEvent::Ended(_) => self.ended_at = Some(applied.occurred_at),
        }
    }
}

pub enum ImpersonationCommand {
    Start {
        user: UserId,
        admin: UserId,
        reason: String,
        expires_at: DateTime<Utc>,
    },
    End,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImpersonationError {
    #[error("no such user")]
    NoSuchUser,
    #[error("platform admins cannot be impersonated")]
    TargetIsAdmin,
    #[error("a deactivated account cannot be impersonated")]
    TargetDeactivated,
    #[error("no such impersonation")]
    NotFound,
}

/// Decides on an impersonation, given the state of the user it is of (the
/// default user when ending).
pub fn decide(
    impersonation: &Impersonation,
    user: &User,
    command: ImpersonationCommand,
) -> Result<Vec<ImpersonationEvent>, ImpersonationError> {
    match command {
        ImpersonationCommand::Start {
            user: user_id,
            admin,
            reason,
            expires_at,
        } => {
            if !user.registered {
                return Err(ImpersonationError::NoSuchUser);
            }
            if user.platform_admin {
                return Err(ImpersonationError::TargetIsAdmin);
            }
            if user.deactivated {
                return Err(ImpersonationError::TargetDeactivated);
            }
            if impersonation.user.is_some() {
                // The id was generated for this command: a retry of it.
                return Ok(vec![]);
            }
            Ok(vec![ImpersonationEvent::Started(ImpersonationStarted {
                user_id,
                admin_id: admin,
                reason,
                expires_at,
            })])
        }
        ImpersonationCommand::End if impersonation.user.is_none() => {
            Err(ImpersonationError::NotFound)
        }
        // Ending what ended changes nothing.
        ImpersonationCommand::End if impersonation.ended_at.is_some() => Ok(vec![]),
        ImpersonationCommand::End => Ok(vec![ImpersonationEvent::Ended(ImpersonationEnded {})]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;
    use tenet_events::catalogue::user::{PlatformAdminGranted, UserEvent, UserRegistered};

    fn registered() -> UserEvent {
        UserEvent::Registered(UserRegistered {
            email: "ada@example.com".into(),
            name: "Ada".into(),
            password_hash: "$argon2id$...".into(),
        })
    }

    fn start(user: UserId) -> ImpersonationCommand {
        ImpersonationCommand::Start {
            user,
            admin: UserId::generate(),
            reason: "support ticket 42".into(),
            expires_at: Utc::now(),
        }
    }

    #[test]
    fn an_admin_impersonates_a_user_and_ends_it_once() {
        let user = given::<User>([registered()]);
        let id = UserId::generate();
        let events = decide(&Impersonation::default(), &user, start(id)).unwrap();
        assert!(matches!(&events[..], [ImpersonationEvent::Started(s)] if s.user_id == id));
        let started = given::<Impersonation>(events);
        let ended = decide(&started, &User::default(), ImpersonationCommand::End).unwrap();
        assert_eq!(
            ended,
            vec![ImpersonationEvent::Ended(ImpersonationEnded {})]
        );
        let done = given::<Impersonation>([
            ImpersonationEvent::Started(ImpersonationStarted {
                user_id: id,
                admin_id: UserId::generate(),
                reason: "r".into(),
                expires_at: Utc::now(),
            }),
            ended[0].clone(),
        ]);
        assert_eq!(
            decide(&done, &User::default(), ImpersonationCommand::End),
            Ok(vec![])
        );
    }

    #[test]
    fn admins_and_nobody_are_never_impersonated() {
        let admin = given::<User>([
            registered(),
            UserEvent::PlatformAdminGranted(PlatformAdminGranted {}),
        ]);
        let id = UserId::generate();
        assert_eq!(
            decide(&Impersonation::default(), &admin, start(id)),
            Err(ImpersonationError::TargetIsAdmin)
        );
        assert_eq!(
            decide(&Impersonation::default(), &User::default(), start(id)),
            Err(ImpersonationError::NoSuchUser)
        );
        assert_eq!(
            decide(
                &Impersonation::default(),
                &User::default(),
                ImpersonationCommand::End
            ),
            Err(ImpersonationError::NotFound)
        );
    }
}
