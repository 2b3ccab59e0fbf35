//! Adding, editing and deleting comments on tasks.

use axum::extract::State;
use serde::Deserialize;
use tenet_events::ids::{CommentId, TaskId, WorkspaceId};
use tenet_http::auth::{CommentsDelete, CommentsWrite, Scoped};
use tenet_http::openapi::DeleteErrors;
use tenet_http::{ApiError, Checks, IfMatch, Json, Path, RequestId};
use tenet_projections::tasks::CommentView;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::aggregate::{Comment, CommentCommand, CommentError, add, decide};
use crate::http::CommandState;
use crate::idempotency::Idempotency;
use crate::openapi::{AddErrors, EditErrors};
use crate::pipeline::Refusal;
use crate::reply::{Deleted, Reply, Written};
use crate::repository::Committed;
use crate::task::aggregate::Task;
use crate::workspace::aggregate::Workspace;

pub fn router() -> OpenApiRouter<CommandState> {
    OpenApiRouter::new()
        .routes(routes!(add_comment))
        .routes(routes!(edit_comment, delete_comment))
}

pub const BODY_MAX: usize = 10_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteComment {
    /// 1 to 10,000 characters; line breaks allowed.
    #[schema(
        min_length = 1,
        max_length = 10000,
        pattern = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"
    )]
    pub body: String,
}

#[derive(Debug, Deserialize)]
pub struct TaskPath {
    pub workspace_id: WorkspaceId,
    pub task_id: TaskId,
}

#[derive(Debug, Deserialize)]
pub struct CommentPath {
    pub workspace_id: WorkspaceId,
    pub task_id: TaskId,
    pub comment_id: CommentId,
}

impl Refusal for CommentError {
    fn problem(self) -> ApiError {
        match self {
            CommentError::TaskNotFound => ApiError::not_found("No such task"),
            CommentError::NotFound => ApiError::not_found("No such comment"),
            CommentError::NotAuthor => ApiError::forbidden(self.to_string()),
            CommentError::AlreadyExists => ApiError::conflict(self.to_string()),
        }
    }
}

fn body_text(checks: &mut Checks, body: &str) -> String {
    let text = checks.text("body", body, BODY_MAX);
    if text.trim().is_empty() {
        checks.add("body", "must not be empty");
    }
    text
}

fn view(id: CommentId, committed: &Committed<Comment>) -> CommentView {
    let comment = &committed.state;
    CommentView {
        id,
        task_id: comment
            .task_id
            .unwrap_or(TaskId::from_uuid(uuid::Uuid::nil())),
        author_id: comment
            .author
            .unwrap_or(tenet_events::ids::UserId::from_uuid(uuid::Uuid::nil())),
        body: comment.body.clone(),
        created_at: comment.created_at.unwrap_or_default(),
        edited_at: comment.edited_at,
        version: committed.version,
    }
}

/// `POST /api/v1/workspaces/{workspace_id}/tasks/{task_id}/comments`:
/// comments on a task, as the caller.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{workspace_id}/tasks/{task_id}/comments",
    tag = "comments",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("task_id" = uuid::Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response of a retried request (24 h)"),
    ),
    request_body = WriteComment,
    responses(
        (status = 201, description = "Added", body = CommentView,
            headers(("Location" = String), ("ETag" = String), ("X-Consistency-Token" = String))),
        AddErrors,
    ),
    security(("bearer" = ["comments:write"]))
)]
pub async fn add_comment(
    State(state): State<CommandState>,
    access: Scoped<CommentsWrite>,
    Path(path): Path<TaskPath>,
    request_id: RequestId,
    idempotency: Idempotency,
    Json(body): Json<WriteComment>,
) -> Result<Written<CommentView>, ApiError> {
    let mut checks = Checks::new();
    let text = body_text(&mut checks, &body.body);
    checks.finish()?;
    let id = CommentId::generate();
    let (workspace, task) = (access.workspace_id, path.task_id);
    let author = access.principal.user_id;
    // The task is only read: the comment holds if it still exists when
    // the comment commits.
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Comment>(access.tenant(), id)
        .checking::<Task>(task)
        .new_stream()
        .decide(|comment, task_state| add(comment, task_state, task, author, text.clone()))
        .reply(move |comment| {
            Reply::created(
                view(id, comment),
                Some(comment.version),
                format!("/api/v1/workspaces/{workspace}/tasks/{task}/comments/{id}"),
            )
        })
        .idempotent(&idempotency)
        .await
}

/// `PATCH /api/v1/workspaces/{workspace_id}/tasks/{task_id}/comments/{comment_id}`:
/// changes a comment's body (its author, or an admin or owner).
#[utoipa::path(
    patch,
    path = "/api/v1/workspaces/{workspace_id}/tasks/{task_id}/comments/{comment_id}",
    tag = "comments",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("task_id" = uuid::Uuid, Path),
        ("comment_id" = uuid::Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on"),
    ),
    request_body(content((WriteComment = "application/json"), (WriteComment = "application/merge-patch+json"))),
    responses(
        (status = 200, description = "Edited", body = CommentView,
            headers(("ETag" = String), ("X-Consistency-Token" = String))),
        EditErrors,
    ),
    security(("bearer" = ["comments:write"]))
)]
pub async fn edit_comment(
    State(state): State<CommandState>,
    access: Scoped<CommentsWrite>,
    Path(path): Path<CommentPath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
    Json(body): Json<WriteComment>,
) -> Result<Written<CommentView>, ApiError> {
    let mut checks = Checks::new();
    let text = body_text(&mut checks, &body.body);
    checks.finish()?;
    let (id, task, by) = (path.comment_id, path.task_id, access.principal.user_id);
    // The acting user's role is read from the workspace version the
    // decision sees, which must be unchanged when the edit commits.
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Comment>(access.tenant(), id)
        .checking::<Workspace>(access.workspace_id)
        .if_match(if_match)
        .decide(|comment, workspace| {
            let edit = CommentCommand::Edit { body: text.clone() };
            decide(comment, workspace, task, by, edit)
        })
        .reply(move |comment| Reply::ok(view(id, comment), Some(comment.version)))
        .await
}

/// `DELETE /api/v1/workspaces/{workspace_id}/tasks/{task_id}/comments/{comment_id}`:
/// deletes a comment (its author, or an admin or owner).
#[utoipa::path(
    delete,
    path = "/api/v1/workspaces/{workspace_id}/tasks/{task_id}/comments/{comment_id}",
    tag = "comments",
    params(
        ("workspace_id" = uuid::Uuid, Path),
        ("task_id" = uuid::Uuid, Path),
        ("comment_id" = uuid::Uuid, Path),
        ("If-Match" = Option<String>, Header, description = "The version (ETag) this change is based on"),
    ),
    responses(
        (status = 200, description = "Deleted", body = Deleted, headers(("X-Consistency-Token" = String))),
        DeleteErrors,
    ),
    security(("bearer" = ["comments:delete"]))
)]
pub async fn delete_comment(
    State(state): State<CommandState>,
    access: Scoped<CommentsDelete>,
    Path(path): Path<CommentPath>,
    IfMatch(if_match): IfMatch,
    request_id: RequestId,
) -> Result<Written<Deleted>, ApiError> {
    let (task, by) = (path.task_id, access.principal.user_id);
    // As for an edit, the acting user's role is read from the workspace.
    state
        .repository
        .by(&access.principal, &request_id)
        .on::<Comment>(access.tenant(), path.comment_id)
        .checking::<Workspace>(access.workspace_id)
        .if_match(if_match)
        .decide(|comment, workspace| decide(comment, workspace, task, by, CommentCommand::Delete))
        .reply(|_| Reply::ok(Deleted::ok(), None))
        .await
}
