//! The WebSocket message protocol: what clients send, and the text of what
//! the server answers. Pure: no I/O.

use serde::Deserialize;
use serde_json::json;
use tenet_events::ids::{Position, WorkspaceId};
use tenet_projections::feed::FeedUpdate;

use super::channel::Channel;

/// A message from a client.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Follow a channel, first replaying every update after `since`.
    Subscribe {
        channel: String,
        #[serde(default)]
        since: Option<i64>,
    },
    Unsubscribe {
        channel: String,
    },
    Ping,
}

/// A text frame that is not a message this server understands; its text
/// is a sentence for the client, naming what the parser stumbled on.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a message this server understands ({0}); send subscribe, unsubscribe or ping")]
pub struct BadMessage(String);

impl ClientMessage {
    pub fn parse(text: &str) -> Result<ClientMessage, BadMessage> {
        serde_json::from_str(text).map_err(|error| BadMessage(error.to_string()))
    }
}

/// Stable error codes of `{"type":"error"}` messages.
pub mod code {
    /// A message that does not parse, an unknown channel name, a `since`
    /// that this log never issued.
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    /// The channel does not exist, or is another tenant's.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// A member of the workspace without the read scope it needs.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// Subscribed already, or too many subscriptions on this connection.
    pub const CONFLICT: &str = "CONFLICT";
    /// `since` is older than what the feed retains: reload, then subscribe
    /// without it.
    pub const SINCE_TOO_OLD: &str = "SINCE_TOO_OLD";
    /// The client did not keep up with its updates; the connection closes.
    pub const SLOW_CONSUMER: &str = "SLOW_CONSUMER";
    /// The credential is no longer valid; the connection closes.
    pub const AUTHENTICATION_ERROR: &str = "AUTHENTICATION_ERROR";
    /// A platform admin deactivated the account; the connection closes.
    pub const ACCOUNT_DEACTIVATED: &str = "ACCOUNT_DEACTIVATED";
    /// The impersonation this connection was opened with ended; the
    /// connection closes.
    pub const IMPERSONATION_ENDED: &str = "IMPERSONATION_ENDED";
    /// The server could not do it now; retry.
    pub const UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";
}

/// `{"type":"error",...}`, about a channel or the connection.
pub fn error(code: &str, message: &str, channel: Option<Channel>) -> String {
    let mut body = json!({ "type": "error", "code": code, "message": message });
    if let Some(channel) = channel {
        body["channel"] = json!(channel.to_string());
    }
    body.to_string()
}

/// `{"type":"subscribed",...}`: live updates follow from after `position`;
/// with `since`, the updates in between come first.
pub fn subscribed(
    channel: Channel,
    workspace: WorkspaceId,
    position: Position,
    since: Option<Position>,
) -> String {
    json!({
        "type": "subscribed",
        "channel": channel.to_string(),
        "workspace_id": workspace,
        "position": position.0,
        "since": since.map(|since| since.0),
    })
    .to_string()
}

pub fn unsubscribed(channel: Channel) -> String {
    json!({ "type": "unsubscribed", "channel": channel.to_string() }).to_string()
}

pub fn pong() -> String {
    json!({ "type": "pong" }).to_string()
}

/// The part of an update's message shared by every channel it goes to:
/// serialized once per update, not once per subscriber.
pub fn update_tail(update: &FeedUpdate) -> String {
    // `data` is JSON the projector serialized; it is embedded verbatim.
    format!(
        r#","position":{},"event_type":{},"resource":"{}","data":{}}}"#,
        update.position.0,
        json!(update.event_type),
        update.resource.name(),
        update.data
    )
}

/// An update's message on one channel.
pub fn update_text(update: &FeedUpdate, channel: Channel, tail: &str) -> String {
    // Channel names are a fixed word and a UUID: nothing to escape.
    format!(
        r#"{{"type":"{}","channel":"{channel}"{tail}"#,
        update.kind.as_str()
    )
}

#[cfg(test)]
mod tests {
    use tenet_events::ids::{TaskId, TenantId};
    use tenet_projections::feed::{Kind, Resource};

    use super::*;

    #[test]
    fn client_messages_parse() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"subscribe","channel":"task:x","since":42}"#),
            Ok(ClientMessage::Subscribe {
                channel: "task:x".to_owned(),
                since: Some(42)
            })
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"subscribe","channel":"task:x"}"#),
            Ok(ClientMessage::Subscribe {
                channel: "task:x".to_owned(),
                since: None
            })
        );
        assert_eq!(
            ClientMessage::parse(r#"{"type":"ping"}"#),
            Ok(ClientMessage::Ping)
        );
        for bad in [
            "",
            "{",
            r#"{"type":"dance"}"#,
            r#"{"type":"subscribe"}"#,
            r#"{"type":"subscribe","channel":"task:x","since":"1"}"#,
            r#"{"type":"subscribe","channel":"task:x","extra":1}"#,
        ] {
            assert!(ClientMessage::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_update_message_is_json_with_the_data_verbatim() {
        let task = TaskId::generate();
        let update = FeedUpdate {
            position: Position(12),
            tenant_id: TenantId::generate(),
            kind: Kind::Removed,
            resource: Resource::Task(task),
            project_id: None,
            task_id: Some(task),
            event_type: "task.deleted".to_owned(),
            data: format!(r#"{{"id":"{task}"}}"#),
        };
        let text = update_text(&update, Channel::Task(task), &update_tail(&update));
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(
            parsed,
            json!({
                "type": "removed",
                "channel": format!("task:{task}"),
                "position": 12,
                "event_type": "task.deleted",
                "resource": "task",
                "data": { "id": task },
            })
        );
    }

    #[test]
    fn errors_name_their_channel_when_they_have_one() {
        let task = TaskId::generate();
        let text = error(code::NOT_FOUND, "No such task", Some(Channel::Task(task)));
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(parsed["channel"], format!("task:{task}"));
        assert_eq!(parsed["code"], "NOT_FOUND");
    }
}
