//! What the read side asks the access model: the caller's account and
//! workspaces, a workspace's members and API keys, the platform admins'
//! lists of everyone, and the names the audit log shows. The model is
//! inline, so every answer is as current as the log.

use chrono::{DateTime, Utc};
use tenet_events::db::Db;
use tenet_events::ids::{ApiKeyId, ImpersonationId, UserId, WorkspaceId};
use tenet_events::with_pool;
use tenet_http::pagination::Page;
use tenet_http::{PageRequest, Sort};

use super::GENERATION;
use super::model::SESSION_LIVE;
use super::views::{
    AdminUser, AdminUserDetail, AdminUserWorkspace, AdminWorkspace, ApiKeyView, ImpersonationView,
    MemberView, SessionView, WorkspaceView,
};
use crate::listing::{Bind, Listing, like_pattern};

/// A user's account, as its owner sees it.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct Account {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub platform_admin: bool,
    pub created_at: DateTime<Utc>,
}

/// The account of `user`, if it exists.
pub async fn account(db: &Db, user: UserId) -> Result<Option<Account>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, email, name, platform_admin, created_at FROM access_users \
             WHERE generation = {GENERATION} AND id = $1"
        )))
        .bind(user)
        .fetch_optional(pool)
        .await
    })
}

/// At most `limit` of the (not deleted) workspaces `user` belongs to, by
/// name (only `only`, if given).
pub async fn workspaces_of(
    db: &Db,
    user: UserId,
    only: Option<WorkspaceId>,
    limit: i64,
) -> Result<Vec<WorkspaceView>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT w.id, w.name, w.slug, m.role, w.created_at, w.updated_at, w.version \
             FROM access_members m JOIN access_workspaces w \
               ON w.generation = m.generation AND w.id = m.workspace_id \
             WHERE m.generation = {GENERATION} AND m.user_id = $1 AND w.deleted_at IS NULL \
               AND ($2 IS NULL OR w.id = $2) \
             ORDER BY w.name, w.id LIMIT $3"
        )))
        .bind(user)
        .bind(only)
        .bind(limit)
        .fetch_all(pool)
        .await
    })
}

/// What a list of workspaces sorts by (ties broken by id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkspaceOrder {
    Name,
    Slug,
    CreatedAt,
    UpdatedAt,
}

/// One page of the (not deleted) workspaces `user` belongs to, with their
/// role in each (only `only`, if given).
pub async fn workspaces(
    db: &Db,
    user: UserId,
    only: Option<WorkspaceId>,
    sort: Sort<WorkspaceOrder>,
    page: PageRequest,
) -> Result<Page<WorkspaceView>, sqlx::Error> {
    let column = match sort.field {
        WorkspaceOrder::Name => "w.name",
        WorkspaceOrder::Slug => "w.slug",
        WorkspaceOrder::CreatedAt => "w.created_at",
        WorkspaceOrder::UpdatedAt => "w.updated_at",
    };
    let mut listing = Listing::new(
        "w.id, w.name, w.slug, m.role, w.created_at, w.updated_at, w.version",
        String::new(),
        format!("{column} {dir}, w.id {dir}", dir = sort.direction()),
    );
    let user = listing.bind(Bind::Uuid(user.as_uuid()));
    listing.from = format!(
        "FROM access_members m JOIN access_workspaces w ON w.generation = m.generation AND w.id = m.workspace_id \
         WHERE m.generation = {GENERATION} AND m.user_id = {user} AND w.deleted_at IS NULL"
    );
    if let Some(only) = only {
        let only = listing.bind(Bind::Uuid(only.as_uuid()));
        listing.from.push_str(&format!(" AND w.id = {only}"));
    }
    listing.page(db, page).await
}

/// A (not deleted) workspace, with the role `member` has in it; none if
/// they are not a member.
pub async fn workspace(
    db: &Db,
    workspace: WorkspaceId,
    member: UserId,
) -> Result<Option<WorkspaceView>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT w.id, w.name, w.slug, m.role, w.created_at, w.updated_at, w.version \
             FROM access_workspaces w JOIN access_members m \
               ON m.generation = w.generation AND m.workspace_id = w.id AND m.user_id = $2 \
             WHERE w.generation = {GENERATION} AND w.id = $1 AND w.deleted_at IS NULL"
        )))
        .bind(workspace)
        .bind(member)
        .fetch_optional(pool)
        .await
    })
}

/// The tenant of the row `id` of a tenant-scoped read-model `table` (read
/// at `generation`), looked up only among the workspaces `member` belongs
/// to, so the lookup itself reveals nothing of the others.
pub(crate) async fn tenant_among(
    db: &Db,
    table: &str,
    generation: &str,
    id: uuid::Uuid,
    member: UserId,
) -> Result<Option<WorkspaceId>, sqlx::Error> {
    let sql = format!(
        "SELECT tenant_id FROM {table} WHERE generation = {generation} AND id = $1 \
         AND tenant_id IN (SELECT workspace_id FROM access_members \
           WHERE generation = {GENERATION} AND user_id = $2) LIMIT 1"
    );
    with_pool!(db, pool => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(member)
            .fetch_optional(pool)
            .await
    })
}

/// What a member list sorts by (ties broken by user id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberOrder {
    Name,
    Email,
    Role,
    JoinedAt,
}

/// One page of a workspace's members whose name or email holds every one
/// of `words` (lower-cased).
pub async fn members(
    db: &Db,
    workspace: WorkspaceId,
    words: &[String],
    sort: Sort<MemberOrder>,
    page: PageRequest,
) -> Result<Page<MemberView>, sqlx::Error> {
    let column = match sort.field {
        MemberOrder::Name => "u.name",
        MemberOrder::Email => "u.email",
        MemberOrder::Role => "m.role",
        MemberOrder::JoinedAt => "m.joined_at",
    };
    let mut listing = Listing::new(
        "m.user_id, u.email, u.name, m.role, m.joined_at",
        String::new(),
        format!("{column} {dir}, m.user_id {dir}", dir = sort.direction()),
    );
    let workspace = listing.bind(Bind::Uuid(workspace.as_uuid()));
    listing.from = format!(
        "FROM access_members m JOIN access_users u ON u.generation = m.generation AND u.id = m.user_id \
         WHERE m.generation = {GENERATION} AND m.workspace_id = {workspace}"
    );
    for word in words {
        let pattern = listing.bind(Bind::Text(like_pattern(word)));
        listing.from.push_str(&format!(
            " AND (lower(u.name) LIKE {pattern} ESCAPE '\\' OR u.email LIKE {pattern} ESCAPE '\\')"
        ));
    }
    listing.page(db, page).await
}

/// Which API keys a list shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    /// Neither revoked nor expired.
    Active,
    /// Expired, not revoked.
    Expired,
    Revoked,
    All,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: ApiKeyId,
    name: String,
    prefix: String,
    scopes: String,
    issued_by: UserId,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl KeyRow {
    fn into_view(self) -> ApiKeyView {
        ApiKeyView {
            id: self.id,
            name: self.name,
            prefix: self.prefix,
            scopes: self.scopes.split_whitespace().map(str::to_owned).collect(),
            issued_by: self.issued_by,
            created_at: self.created_at,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            revoked_at: self.revoked_at,
        }
    }
}

/// One page of a workspace's API keys in `status` (as of now), newest
/// first, with their last use.
pub async fn api_keys(
    db: &Db,
    workspace: WorkspaceId,
    status: KeyStatus,
    page: PageRequest,
) -> Result<Page<ApiKeyView>, sqlx::Error> {
    let mut listing = Listing::new(
        "k.id, k.name, k.prefix, k.scopes, k.issued_by, k.created_at, k.expires_at, u.last_used_at, k.revoked_at",
        String::new(),
        "k.created_at DESC, k.id DESC",
    );
    let workspace = listing.bind(Bind::Uuid(workspace.as_uuid()));
    let condition = match status {
        KeyStatus::Active => {
            let now = listing.bind(Bind::Time(tenet_events::envelope::now()));
            format!(" AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > {now})")
        }
        KeyStatus::Expired => {
            let now = listing.bind(Bind::Time(tenet_events::envelope::now()));
            format!(" AND k.revoked_at IS NULL AND k.expires_at <= {now}")
        }
        KeyStatus::Revoked => " AND k.revoked_at IS NOT NULL".to_owned(),
        KeyStatus::All => String::new(),
    };
    listing.from = format!(
        "FROM access_api_keys k LEFT JOIN api_key_usage u ON u.key_id = k.id \
         WHERE k.generation = {GENERATION} AND k.tenant_id = {workspace}{condition}"
    );
    let rows: Page<KeyRow> = listing.page(db, page).await?;
    Ok(rows.map(KeyRow::into_view))
}

/// One page of the sessions of `user` that still work (neither revoked,
/// expired, nor ended by a deactivation or a password change), newest
/// first.
pub async fn sessions_of(
    db: &Db,
    user: UserId,
    page: PageRequest,
) -> Result<Page<SessionView>, sqlx::Error> {
    let mut listing = Listing::new(
        "s.id, s.created_at, s.refreshed_at AS last_refreshed_at, s.expires_at, s.user_agent",
        String::new(),
        "s.created_at DESC, s.id DESC",
    );
    let user = listing.bind(Bind::Uuid(user.as_uuid()));
    let now = listing.bind(Bind::Time(tenet_events::envelope::now()));
    listing.from = format!(
        "FROM access_sessions s JOIN access_users u ON u.generation = s.generation AND u.id = s.user_id \
         WHERE s.generation = {GENERATION} AND s.user_id = {user} AND {SESSION_LIVE} \
           AND s.expires_at > {now} AND u.deactivated_at IS NULL"
    );
    listing.page(db, page).await
}

/// Adds `AND (lower(col) LIKE $n OR …)` per search word.
fn search(listing: &mut Listing, columns: &[&str], words: &[String]) {
    for word in words {
        let placeholder = listing.bind(Bind::Text(like_pattern(word)));
        let any: Vec<String> = columns
            .iter()
            .map(|column| format!("lower({column}) LIKE {placeholder} ESCAPE '\\'"))
            .collect();
        listing
            .from
            .push_str(&format!(" AND ({})", any.join(" OR ")));
    }
}

/// What the platform's user list sorts by (ties broken by id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserOrder {
    Email,
    Name,
    CreatedAt,
}

/// One page of every user of the platform whose name or email holds every
/// one of `words`, with how many workspaces each belongs to.
pub async fn all_users(
    db: &Db,
    words: &[String],
    sort: Sort<UserOrder>,
    page: PageRequest,
) -> Result<Page<AdminUser>, sqlx::Error> {
    let column = match sort.field {
        UserOrder::Email => "u.email",
        UserOrder::Name => "u.name",
        UserOrder::CreatedAt => "u.created_at",
    };
    let mut listing = Listing::new(
        "u.id, u.email, u.name, u.platform_admin, u.created_at, u.deactivated_at, \
           (SELECT count(*) FROM access_members m JOIN access_workspaces w \
              ON w.generation = m.generation AND w.id = m.workspace_id \
            WHERE m.generation = u.generation AND m.user_id = u.id AND w.deleted_at IS NULL) AS workspaces",
        format!("FROM access_users u WHERE u.generation = {GENERATION}"),
        format!("{column} {dir}, u.id {dir}", dir = sort.direction()),
    );
    search(&mut listing, &["u.name", "u.email"], words);
    listing.page(db, page).await
}

/// What the platform's workspace list sorts by (ties broken by id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllWorkspacesOrder {
    Name,
    Slug,
    CreatedAt,
}

/// One page of every workspace of the platform (the deleted too, if
/// `deleted`) whose name or slug holds every one of `words`, with how many
/// members each has.
pub async fn all_workspaces(
    db: &Db,
    words: &[String],
    deleted: bool,
    sort: Sort<AllWorkspacesOrder>,
    page: PageRequest,
) -> Result<Page<AdminWorkspace>, sqlx::Error> {
    let column = match sort.field {
        AllWorkspacesOrder::Name => "w.name",
        AllWorkspacesOrder::Slug => "w.slug",
        AllWorkspacesOrder::CreatedAt => "w.created_at",
    };
    let deleted = if deleted {
        ""
    } else {
        " AND w.deleted_at IS NULL"
    };
    let mut listing = Listing::new(
        "w.id, w.name, w.slug, w.created_at, w.updated_at, w.deleted_at, \
           (SELECT count(*) FROM access_members m \
             WHERE m.generation = w.generation AND m.workspace_id = w.id) AS members",
        format!("FROM access_workspaces w WHERE w.generation = {GENERATION}{deleted}"),
        format!("{column} {dir}, w.id {dir}", dir = sort.direction()),
    );
    search(&mut listing, &["w.name", "w.slug"], words);
    listing.page(db, page).await
}

/// A user's name and email, as the audit log names its actors.
pub async fn user_name(db: &Db, user: UserId) -> Result<Option<(String, String)>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT name, email FROM access_users WHERE generation = {GENERATION} AND id = $1"
        )))
        .bind(user)
        .fetch_optional(pool)
        .await
    })
}

/// An API key's name, as the audit log names its actors.
pub async fn api_key_name(db: &Db, key: ApiKeyId) -> Result<Option<String>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM access_api_keys WHERE generation = {GENERATION} AND id = $1"
        )))
        .bind(key)
        .fetch_optional(pool)
        .await
    })
}

#[derive(sqlx::FromRow)]
struct UserDetailRow {
    id: UserId,
    email: String,
    name: String,
    platform_admin: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deactivated_at: Option<DateTime<Utc>>,
    deactivation_reason: Option<String>,
    version: i64,
    sessions: i64,
}

/// A user in full, as platform admins see them; none if there is no such
/// user. At most `workspace_limit` of their workspaces are listed.
pub async fn admin_user(
    db: &Db,
    user: UserId,
    workspace_limit: i64,
) -> Result<Option<AdminUserDetail>, sqlx::Error> {
    let now = tenet_events::envelope::now();
    let row: Option<UserDetailRow> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT u.id, u.email, u.name, u.platform_admin, u.created_at, u.updated_at, \
               u.deactivated_at, u.deactivation_reason, u.version, \
               (SELECT count(*) FROM access_sessions s \
                 WHERE s.generation = u.generation AND s.user_id = u.id AND {SESSION_LIVE} \
                   AND s.expires_at > $2 \
                   AND u.deactivated_at IS NULL) AS sessions \
             FROM access_users u WHERE u.generation = {GENERATION} AND u.id = $1"
        )))
        .bind(user)
        .bind(now)
        .fetch_optional(pool)
        .await?
    });
    let Some(row) = row else {
        return Ok(None);
    };
    let workspaces: Vec<AdminUserWorkspace> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT w.id, w.name, w.slug, m.role FROM access_members m \
             JOIN access_workspaces w ON w.generation = m.generation AND w.id = m.workspace_id \
             WHERE m.generation = {GENERATION} AND m.user_id = $1 AND w.deleted_at IS NULL \
             ORDER BY w.name, w.id LIMIT $2"
        )))
        .bind(user)
        .bind(workspace_limit)
        .fetch_all(pool)
        .await?
    });
    Ok(Some(AdminUserDetail {
        id: row.id,
        email: row.email,
        name: row.name,
        platform_admin: row.platform_admin,
        created_at: row.created_at,
        updated_at: row.updated_at,
        deactivated_at: row.deactivated_at,
        deactivation_reason: row.deactivation_reason,
        workspaces,
        sessions: row.sessions,
        version: row.version,
    }))
}

/// An impersonation, if there is one with this id.
pub async fn impersonation(
    db: &Db,
    id: ImpersonationId,
) -> Result<Option<ImpersonationView>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, user_id, admin_id, reason, created_at AS started_at, expires_at, ended_at \
             FROM access_impersonations WHERE generation = {GENERATION} AND id = $1"
        )))
        .bind(id)
        .fetch_optional(pool)
        .await
    })
}
