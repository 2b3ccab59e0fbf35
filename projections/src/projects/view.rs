//! The projects read model (`projects_view`): a project as the API shows
//! it, and how queries read it (single projects and pages of them).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenet_events::db::Db;
use tenet_events::ids::{ProjectId, TemplateId, TenantId, UserId, WorkspaceId};
use tenet_events::with_pool;
use tenet_http::pagination::Page;
use tenet_http::{PageRequest, Sort};
use utoipa::ToSchema;

use super::GENERATION;
use crate::listing::like_pattern;
use crate::table::{Table, columns, table};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    Active,
    Archived,
}

impl ProjectStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectStatus::Active => "active",
            ProjectStatus::Archived => "archived",
        }
    }

    pub fn parse(value: &str) -> Option<ProjectStatus> {
        match value {
            "active" => Some(ProjectStatus::Active),
            "archived" => Some(ProjectStatus::Archived),
            _ => None,
        }
    }
}

/// A project, as the API represents it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(as = Project)]
pub struct ProjectView {
    pub id: ProjectId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    /// Unique within the workspace.
    pub slug: String,
    pub description: String,
    /// The prefix of its tasks' keys (`WEB` in `WEB-42`), fixed at creation.
    pub key: String,
    pub status: ProjectStatus,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
    /// Tasks to do, in progress or in review.
    pub open_tasks: i64,
    /// Tasks done (cancelled ones count in neither).
    pub done_tasks: i64,
    /// The project's revision: changes to the project itself, not to its
    /// tasks. Also the `ETag`.
    pub version: i64,
    /// The template it was instantiated from (`null` if none).
    pub template_id: Option<TemplateId>,
    /// The version of that template.
    pub template_version: Option<i64>,
}

table! {
    /// One row of `projects_view`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct ProjectRow in projects_view {
        key {
            tenant_id: TenantId,
            id: ProjectId,
        }
        fixed {
            /// The prefix of its tasks' keys.
            key: String,
            created_by: Option<UserId>,
            created_at: DateTime<Utc>,
            /// The template (and version) it was instantiated from.
            template_id: Option<TemplateId>,
            template_version: Option<i64>,
        }
        set {
            name: String,
            slug: String,
            description: String,
            status: String,
            /// What free-text search matches ([`search_text`]).
            search: String,
            updated_at: DateTime<Utc>,
            archived_at: Option<DateTime<Utc>>,
            /// The stream version applied (the stream also records task numbers).
            version: i64,
            /// What clients see as the version: changes to the project itself.
            revision: i64,
            open_tasks: i64,
            done_tasks: i64,
        }
        // Never moves a row back to an older version (task counts change at
        // the same version).
        guard "projects_view.version <= EXCLUDED.version";
    }
}

impl ProjectRow {
    pub fn to_view(&self) -> ProjectView {
        ProjectView {
            id: self.id,
            workspace_id: self.tenant_id.into(),
            name: self.name.clone(),
            slug: self.slug.clone(),
            description: self.description.clone(),
            key: self.key.clone(),
            status: ProjectStatus::parse(&self.status).unwrap_or(ProjectStatus::Active),
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
            archived_at: self.archived_at,
            open_tasks: self.open_tasks,
            done_tasks: self.done_tasks,
            version: self.revision,
            template_id: self.template_id,
            template_version: self.template_version,
        }
    }
}

/// What free-text search matches: name, slug and description, lower-cased
/// here (Unicode-aware, unlike SQLite's `lower`).
pub fn search_text(name: &str, slug: &str, description: &str) -> String {
    format!("{name}\n{slug}\n{description}").to_lowercase()
}

/// A project's open and done task counts as the read model knows them
/// ((0, 0) if unknown).
pub async fn task_totals(
    db: &Db,
    tenant: TenantId,
    project: ProjectId,
) -> Result<(i64, i64), sqlx::Error> {
    let counts: Option<(i64, i64)> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT open_tasks, done_tasks FROM projects_view WHERE generation = {GENERATION} AND tenant_id = $1 AND id = $2"
        )))
        .bind(tenant)
        .bind(project)
        .fetch_optional(pool)
        .await?
    });
    Ok(counts.unwrap_or((0, 0)))
}

/// A project as the read model shows it now.
pub async fn get(
    db: &Db,
    tenant: TenantId,
    project: ProjectId,
) -> Result<Option<ProjectView>, sqlx::Error> {
    let row: Option<ProjectRow> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM projects_view WHERE generation = {GENERATION} AND tenant_id = $1 AND id = $2",
            columns::<ProjectRow>()
        )))
        .bind(tenant)
        .bind(project)
        .fetch_optional(pool)
        .await?
    });
    Ok(row.map(|row| row.to_view()))
}

/// Whether the read model knows the project.
pub async fn exists(db: &Db, tenant: TenantId, project: ProjectId) -> Result<bool, sqlx::Error> {
    let found: Option<i32> = with_pool!(db, pool => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT 1 FROM projects_view WHERE generation = {GENERATION} AND tenant_id = $1 AND id = $2"
        )))
        .bind(tenant)
        .bind(project)
        .fetch_optional(pool)
        .await?
    });
    Ok(found.is_some())
}

/// The workspace of a project, looked up only among the workspaces
/// `member` belongs to (so the lookup itself reveals nothing of the others).
pub async fn workspace_of(
    db: &Db,
    project: ProjectId,
    member: UserId,
) -> Result<Option<WorkspaceId>, sqlx::Error> {
    crate::access::tenant_among(db, ProjectRow::NAME, GENERATION, project.as_uuid(), member).await
}

/// What a project list sorts by (ties broken by id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectOrder {
    Name,
    Slug,
    CreatedAt,
    UpdatedAt,
}

impl ProjectOrder {
    fn column(self) -> &'static str {
        match self {
            ProjectOrder::Name => "name",
            ProjectOrder::Slug => "slug",
            ProjectOrder::CreatedAt => "created_at",
            ProjectOrder::UpdatedAt => "updated_at",
        }
    }
}

/// One page of the projects of `tenant` in `status` (any if `None`) whose
/// search text holds every one of `words`. Without words, the total comes
/// from the counts the projector keeps, not from counting rows.
pub async fn list(
    db: &Db,
    tenant: TenantId,
    status: Option<ProjectStatus>,
    words: &[String],
    sort: Sort<ProjectOrder>,
    page: PageRequest,
) -> Result<Page<ProjectView>, sqlx::Error> {
    let (rows, total) = with_pool!(db, pool => {
        let mut select = sqlx::QueryBuilder::new(format!("SELECT {} FROM projects_view WHERE generation = {GENERATION} AND tenant_id = ", columns::<ProjectRow>()));
        select.push_bind(tenant);
        let mut count = sqlx::QueryBuilder::new(format!("SELECT count(*) FROM projects_view WHERE generation = {GENERATION} AND tenant_id = "));
        count.push_bind(tenant);
        for builder in [&mut select, &mut count] {
            if let Some(status) = status {
                builder.push(" AND status = ").push_bind(status.as_str());
            }
            for word in words {
                builder.push(" AND search LIKE ").push_bind(like_pattern(word)).push(" ESCAPE '\\'");
            }
        }
        select
            .push(format!(" ORDER BY {} {dir}, id {dir} LIMIT ", sort.field.column(), dir = sort.direction()))
            .push_bind(page.limit_i64())
            .push(" OFFSET ")
            .push_bind(page.offset_i64());
        let rows: Vec<ProjectRow> = select.build_query_as().fetch_all(pool).await?;
        let total: i64 = if words.is_empty() {
            // The projector's counts answer without scanning the rows.
            let mut counted = sqlx::QueryBuilder::new(format!(
                "SELECT CAST(coalesce(sum(count), 0) AS BIGINT) FROM project_counts WHERE generation = {GENERATION} AND tenant_id = "
            ));
            counted.push_bind(tenant);
            if let Some(status) = status {
                counted.push(" AND status = ").push_bind(status.as_str());
            }
            counted.build_query_scalar().fetch_one(pool).await?
        } else {
            count.build_query_scalar().fetch_one(pool).await?
        };
        (rows, total)
    });
    let items = rows.iter().map(ProjectRow::to_view).collect();
    Ok(page.page(items, total.max(0) as u64))
}
