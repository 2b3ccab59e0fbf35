//! Announcing the outbox writers' checkpoints over NATS, and following
//! those announcements.

use std::time::Duration;

use tenet_events::bus::Bus;
use tenet_events::db::Db;
use tenet_events::ids::Position;
use tokio_util::sync::CancellationToken;

use crate::checkpoints::Checkpoints;

/// The NATS subject on which projector processes announce the checkpoints
/// of the outbox's writers (`name:position`).
pub fn announcement_subject(bus: &Bus) -> String {
    format!("{}.feed.checkpoints", bus.prefix())
}

/// Announces, on NATS, each advance of the checkpoints of the outbox's
/// `writers` that this process sees, until shutdown. Query instances
/// elsewhere learn from it that the feed can move on (the outbox in the
/// database stays the source of truth; a lost announcement only delays
/// delivery until the next one, or the database notification, or the poll).
pub async fn announce(
    db: Db,
    checkpoints: Checkpoints,
    bus: Bus,
    writers: &'static [&'static str],
    shutdown: CancellationToken,
) {
    let subject = announcement_subject(&bus);
    let mut tasks = tokio::task::JoinSet::new();
    for &name in writers {
        tasks.spawn(announce_writer(
            name,
            db.clone(),
            checkpoints.clone(),
            bus.clone(),
            subject.clone(),
            shutdown.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
}

/// Announces each advance of the checkpoint of one writer, `name`, on
/// `subject`, until shutdown.
async fn announce_writer(
    name: &'static str,
    db: Db,
    checkpoints: Checkpoints,
    bus: Bus,
    subject: String,
    shutdown: CancellationToken,
) {
    let mut announced = Position::START;
    while !shutdown.is_cancelled() {
        let waited = tokio::select! {
            () = shutdown.cancelled() => return,
            waited = checkpoints.follow_to(&db, name, announced.next(), Duration::from_secs(5)) => waited,
        };
        if let Err(crate::checkpoints::WaitError::Database(error)) = waited {
            tracing::debug!(%error, "cannot read checkpoints to announce");
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        let reached = checkpoints.current(name);
        if reached <= announced {
            continue;
        }
        let payload = format!("{name}:{reached}");
        if let Err(error) = bus.client.publish(subject.clone(), payload.into()).await {
            tracing::debug!(%error, "cannot announce a checkpoint");
            continue;
        }
        announced = reached;
    }
}

/// Follows the announcements of [`announce`] (from every projector
/// process) into this process's checkpoint registry, until shutdown. Only
/// the checkpoints of the outbox's `writers` are taken.
pub async fn follow_announcements(
    bus: Bus,
    checkpoints: Checkpoints,
    writers: &'static [&'static str],
    shutdown: CancellationToken,
) {
    use futures::StreamExt;
    while !shutdown.is_cancelled() {
        let mut subscription = match bus.client.subscribe(announcement_subject(&bus)).await {
            Ok(subscription) => subscription,
            Err(error) => {
                tracing::warn!(%error, "cannot subscribe to feed announcements; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => return,
                message = subscription.next() => message,
            };
            let Some(message) = message else { break };
            if let Some((name, position)) = parse_announcement(&message.payload)
                && writers.contains(&name)
            {
                checkpoints.advance(name, position);
            }
        }
    }
}

fn parse_announcement(payload: &[u8]) -> Option<(&str, Position)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (name, position) = text.rsplit_once(':')?;
    Some((name, Position(position.parse().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_parse_and_refuse_garbage() {
        assert_eq!(
            parse_announcement(b"tasks:42"),
            Some(("tasks", Position(42)))
        );
        assert_eq!(parse_announcement(b"tasks"), None);
        assert_eq!(parse_announcement(b"tasks:x"), None);
        assert_eq!(parse_announcement(&[0xff, b':', b'1']), None);
    }
}
