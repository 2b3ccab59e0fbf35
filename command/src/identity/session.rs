//! The session aggregate: one refresh-token family.
//!
//! Each refresh replaces the current token. A token that was current once
//! and is presented again means two parties hold the family (a stolen
//! token, or a client that kept an old one): the family is revoked, and
//! both parties must log in again.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use tenet_events::catalogue::session::{
    RevokeReason, SessionEvent, SessionRefreshed, SessionRevoked, SessionStarted,
};
use tenet_events::ids::UserId;

use crate::repository::{Aggregate, Applied};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Session {
    pub user: Option<UserId>,
    pub current_hash: String,
    /// Every token hash this family has had, the current one included.
    pub issued: HashSet<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked: Option<RevokeReason>,
}

impl Aggregate for Session {
    const KIND: &'static str = "session";
    type Event = SessionEvent;

    fn evolve(&mut self, event: &SessionEvent, _applied: &Applied) {
        match event {
            SessionEvent::Started(started) => {
                self.user = Some(started.user_id);
                self.current_hash = started.refresh_hash.clone();
                self.issued.insert(started.refresh_hash.clone());
                self.expires_at = Some(started.expires_at);
            }
            SessionEvent::Refreshed(refreshed) => {
                self.current_hash = refreshed.refresh_hash.clone();
                self.issued.insert(refreshed.refresh_hash.clone());
                self.expires_at = Some(refreshed.expires_at);
            }
            SessionEvent::Revoked(revoked) => self.revoked = Some(revoked.reason),
        }
    }
}

pub enum SessionCommand {
    Start {
        user: UserId,
        refresh_hash: String,
        expires_at: DateTime<Utc>,
        user_agent: Option<String>,
    },
    /// Rotates the presented token (`presented_hash`) to a new one.
    Refresh {
        presented_hash: String,
        new_hash: String,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    Revoke {
        reason: RevokeReason,
    },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the session already exists")]
    AlreadyStarted,
    #[error("no such session")]
    NotFound,
    #[error("the session has been revoked")]
    Revoked,
    #[error("the refresh token has expired")]
    Expired,
    #[error("the refresh token does not belong to this session")]
    UnknownToken,
}

pub fn decide(
    session: &Session,
    command: SessionCommand,
) -> Result<Vec<SessionEvent>, SessionError> {
    match command {
        SessionCommand::Start {
            user,
            refresh_hash,
            expires_at,
            user_agent,
        } => {
            if session.user.is_some() {
                return Err(SessionError::AlreadyStarted);
            }
            Ok(vec![SessionEvent::Started(SessionStarted {
                user_id: user,
                refresh_hash,
                expires_at,
                user_agent,
            })])
        }
        SessionCommand::Refresh {
            presented_hash,
            new_hash,
            expires_at,
            now,
        } => {
            if session.user.is_none() {
                return Err(SessionError::NotFound);
            }
            if session.revoked.is_some() {
                return Err(SessionError::Revoked);
            }
            if presented_hash == session.current_hash {
                if session.expires_at.is_some_and(|expires| expires <= now) {
                    return Err(SessionError::Expired);
                }
                return Ok(vec![SessionEvent::Refreshed(SessionRefreshed {
                    refresh_hash: new_hash,
                    expires_at,
                })]);
            }
            if session.issued.contains(&presented_hash) {
                return Ok(vec![SessionEvent::Revoked(SessionRevoked {
                    reason: RevokeReason::ReuseDetected,
                })]);
            }
            Err(SessionError::UnknownToken)
        }
        SessionCommand::Revoke { reason } => {
            if session.user.is_none() {
                return Err(SessionError::NotFound);
            }
            if session.revoked.is_some() {
                return Ok(vec![]);
            }
            Ok(vec![SessionEvent::Revoked(SessionRevoked { reason })])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn at(hour: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, 1, 1, hour, 0, 0)
            .single()
            .unwrap()
    }

    fn started() -> SessionEvent {
        SessionEvent::Started(SessionStarted {
            user_id: UserId::from_uuid(uuid::Uuid::from_u128(1)),
            refresh_hash: "h1".into(),
            expires_at: at(10),
            user_agent: None,
        })
    }

    fn refreshed() -> SessionEvent {
        SessionEvent::Refreshed(SessionRefreshed {
            refresh_hash: "h2".into(),
            expires_at: at(11),
        })
    }

    fn refresh(presented: &str, now: u32) -> SessionCommand {
        SessionCommand::Refresh {
            presented_hash: presented.into(),
            new_hash: "next".into(),
            expires_at: at(12),
            now: at(now),
        }
    }

    #[test]
    fn the_current_token_rotates() {
        let events = decide(&given::<Session>([started()]), refresh("h1", 1)).unwrap();
        assert!(matches!(&events[..], [SessionEvent::Refreshed(r)] if r.refresh_hash == "next"));
    }

    #[test]
    fn a_rotated_token_presented_again_revokes_the_family() {
        let session = given::<Session>([started(), refreshed()]);
        assert_eq!(
            decide(&session, refresh("h1", 1)),
            Ok(vec![SessionEvent::Revoked(SessionRevoked {
                reason: RevokeReason::ReuseDetected
            })])
        );
        let revoked = given::<Session>([
            started(),
            refreshed(),
            SessionEvent::Revoked(SessionRevoked {
                reason: RevokeReason::ReuseDetected,
            }),
        ]);
        assert_eq!(
            decide(&revoked, refresh("h2", 1)),
            Err(SessionError::Revoked)
        );
    }

    #[test]
    fn an_expired_or_foreign_token_is_refused() {
        assert_eq!(
            decide(&given::<Session>([started()]), refresh("h1", 10)),
            Err(SessionError::Expired)
        );
        assert_eq!(
            decide(&given::<Session>([started()]), refresh("other", 1)),
            Err(SessionError::UnknownToken)
        );
        assert_eq!(
            decide(&given::<Session>([]), refresh("h1", 1)),
            Err(SessionError::NotFound)
        );
    }

    #[test]
    fn logging_out_twice_records_once() {
        let logout = || SessionCommand::Revoke {
            reason: RevokeReason::Logout,
        };
        let events = decide(&given::<Session>([started()]), logout()).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            decide(&given::<Session>([started(), events[0].clone()]), logout()),
            Ok(vec![])
        );
    }
}
