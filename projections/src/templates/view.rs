//! The templates read model (`templates_view`): a template as the API
//! shows it, and how queries read it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use tenet_events::catalogue::template::{ProjectBlueprint, TemplateParameter};
use tenet_events::db::Db;
use tenet_events::ids::{ProjectId, TemplateId, TenantId, UserId, WorkspaceId};
use tenet_events::with_pool;
use tenet_http::PageRequest;
use tenet_http::pagination::Page;
use utoipa::ToSchema;

use super::GENERATION;
use crate::listing::{Bind, Listing};
use crate::table::{columns, table};

/// A project template, as the API represents it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(as = Template)]
pub struct TemplateView {
    pub id: TemplateId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub parameters: Vec<TemplateParameter>,
    pub project: ProjectBlueprint,
    /// The project it was made from, if any.
    pub from_project_id: Option<ProjectId>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The template's version: 1 when created, one more for each change
    /// (what an instantiated project records). Also the `ETag`.
    pub version: i64,
}

table! {
    /// One row of `templates_view`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct TemplateRow in templates_view {
        key {
            tenant_id: TenantId,
            id: TemplateId,
        }
        fixed {
            created_by: Option<UserId>,
            created_at: DateTime<Utc>,
            from_project_id: Option<ProjectId>,
        }
        set {
            name: String,
            parameters: Json<Vec<TemplateParameter>>,
            project: Json<ProjectBlueprint>,
            updated_at: DateTime<Utc>,
            version: i64,
        }
        guard "templates_view.version <= EXCLUDED.version";
    }
}

impl TemplateRow {
    pub fn to_view(&self) -> TemplateView {
        TemplateView {
            id: self.id,
            workspace_id: self.tenant_id.into(),
            name: self.name.clone(),
            parameters: self.parameters.0.clone(),
            project: self.project.0.clone(),
            from_project_id: self.from_project_id,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        }
    }
}

/// A template as the read model shows it now.
pub async fn get(
    db: &Db,
    tenant: TenantId,
    template: TemplateId,
) -> Result<Option<TemplateView>, sqlx::Error> {
    let row: Option<TemplateRow> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM templates_view WHERE generation = {GENERATION} AND tenant_id = $1 AND id = $2",
            columns::<TemplateRow>()
        )))
        .bind(tenant)
        .bind(template)
        .fetch_optional(pool)
        .await?
    });
    Ok(row.as_ref().map(TemplateRow::to_view))
}

/// One page of a workspace's templates, by name.
pub async fn list(
    db: &Db,
    tenant: TenantId,
    page: PageRequest,
) -> Result<Page<TemplateView>, sqlx::Error> {
    let mut listing = Listing::new(columns::<TemplateRow>(), String::new(), "name ASC, id ASC");
    let tenant = listing.bind(Bind::Uuid(tenant.as_uuid()));
    listing.from =
        format!("FROM templates_view WHERE generation = {GENERATION} AND tenant_id = {tenant}");
    let rows: Page<TemplateRow> = listing.page(db, page).await?;
    Ok(rows.map(|row| row.to_view()))
}
