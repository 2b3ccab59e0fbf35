//! Comments on tasks.

use serde::{Deserialize, Serialize};

use crate::event_family;
use crate::ids::{TaskId, UserId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentAdded {
    pub task_id: TaskId,
    pub author_id: UserId,
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentEdited {
    pub task_id: TaskId,
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentDeleted {
    pub task_id: TaskId,
}

event_family! {
    /// What happens to a comment.
    pub enum CommentEvent {
        Added(CommentAdded) = "comment.added" v 1;
        Edited(CommentEdited) = "comment.edited" v 1;
        Deleted(CommentDeleted) = "comment.deleted" v 1;
    }
}
