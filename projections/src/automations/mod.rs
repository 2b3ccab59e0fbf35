//! The automations projector: the automations of each project
//! (`automations_view`) and their executions with their steps
//! (`automation_executions_view`), kept asynchronously from `automation.*`
//! events. Executions reach WebSocket clients through the outbox, routed
//! to the project and to the task whose event triggered them.
//!
//! A batch has the shape of every projector's (`crate::batch`): the rows
//! it touches are loaded at once, events are applied in memory in log
//! order with a per-stream version check, and changed rows are written
//! back at the end.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::automation::{
    Action, AutomationEvent, ExecutionEvent, StepStatus, Trigger,
};
use tenet_events::db::{Db, Tx};
use tenet_events::envelope::RecordedEvent;
use tenet_events::ids::{
    AutomationId, EventId, ExecutionId, Position, ProjectId, TaskId, TenantId, UserId, WorkspaceId,
};
use tenet_events::projection::{ProjectionError, Projector};
use tenet_events::with_pool;
use tenet_http::PageRequest;
use tenet_http::pagination::Page;
use utoipa::ToSchema;

use crate::batch::{self, Rows, follows};
use crate::feed::{self, Recorder};
use crate::listing::{Bind, Listing};
use crate::table::{self, Table, columns, table};

pub const NAME: &str = "automations";

/// The generation queries read, as a subquery.
const GENERATION: &str = "(SELECT active_generation FROM projections WHERE name = 'automations')";

/// An automation, as the API represents it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(as = Automation)]
pub struct AutomationView {
    pub id: AutomationId,
    pub workspace_id: WorkspaceId,
    pub project_id: ProjectId,
    pub name: String,
    pub trigger: Trigger,
    /// Run in this order; the first that fails stops the execution.
    pub actions: Vec<Action>,
    pub enabled: bool,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The stream version; also the `ETag`.
    pub version: i64,
}

/// One step of an execution: an action and how it went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ExecutionStep)]
pub struct StepView {
    /// Its place among the automation's actions, from 0.
    pub index: u32,
    pub action: Action,
    pub status: StepStatus,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it made: `{"task_id"}` of a follow-up task, `{"comment_id"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// When it last changed status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// One run of an automation, as the API represents it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(as = Execution)]
pub struct ExecutionView {
    pub id: ExecutionId,
    pub workspace_id: WorkspaceId,
    pub automation_id: AutomationId,
    pub project_id: ProjectId,
    /// The task whose event triggered it (the steps act on it).
    pub task_id: TaskId,
    /// The triggering event: the causation id of every event of the execution.
    pub causation_id: EventId,
    pub trigger_event_type: String,
    /// 1 when a person's change triggered it; one more per automation
    /// whose change led to it.
    pub depth: i32,
    /// `running` until it ends; then `succeeded`, `failed` or `skipped`.
    pub status: StepStatus,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    pub steps: Vec<StepView>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The stream version; also the `ETag`.
    pub version: i64,
}

table! {
    /// One row of `automations_view`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct AutomationRow in automations_view {
        key {
            tenant_id: TenantId,
            id: AutomationId,
        }
        fixed {
            project_id: ProjectId,
            created_by: Option<UserId>,
            created_at: DateTime<Utc>,
            created_position: i64,
        }
        set {
            name: String,
            trigger: Json<Trigger>,
            actions: Json<Vec<Action>>,
            enabled: bool,
            updated_at: DateTime<Utc>,
            version: i64,
        }
        guard "automations_view.version <= EXCLUDED.version";
    }
}

table! {
    /// One row of `automation_executions_view`.
    #[derive(Clone, Debug, PartialEq)]
    pub struct ExecutionRow in automation_executions_view {
        key {
            tenant_id: TenantId,
            id: ExecutionId,
        }
        fixed {
            automation_id: AutomationId,
            project_id: ProjectId,
            task_id: TaskId,
            trigger_event_id: EventId,
            trigger_event_type: String,
            depth: i32,
            started_at: DateTime<Utc>,
        }
        set {
            status: String,
            steps: Json<Vec<StepView>>,
            error: Option<String>,
            finished_at: Option<DateTime<Utc>>,
            updated_at: DateTime<Utc>,
            version: i64,
        }
        guard "automation_executions_view.version <= EXCLUDED.version";
    }
}

impl AutomationRow {
    pub fn to_view(&self) -> AutomationView {
        AutomationView {
            id: self.id,
            workspace_id: self.tenant_id.into(),
            project_id: self.project_id,
            name: self.name.clone(),
            trigger: self.trigger.0.clone(),
            actions: self.actions.0.clone(),
            enabled: self.enabled,
            created_by: self.created_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        }
    }
}

fn parse_status(value: &str) -> StepStatus {
    match value {
        "succeeded" => StepStatus::Succeeded,
        "failed" => StepStatus::Failed,
        "skipped" => StepStatus::Skipped,
        "pending" => StepStatus::Pending,
        _ => StepStatus::Running,
    }
}

impl ExecutionRow {
    pub fn to_view(&self) -> ExecutionView {
        ExecutionView {
            id: self.id,
            workspace_id: self.tenant_id.into(),
            automation_id: self.automation_id,
            project_id: self.project_id,
            task_id: self.task_id,
            causation_id: self.trigger_event_id,
            trigger_event_type: self.trigger_event_type.clone(),
            depth: self.depth,
            status: parse_status(&self.status),
            error: self.error.clone(),
            steps: self.steps.0.clone(),
            started_at: self.started_at,
            finished_at: self.finished_at,
            version: self.version,
        }
    }
}

pub struct AutomationsProjector;

type AutomationKey = <AutomationRow as Table>::Key;
type ExecutionKey = <ExecutionRow as Table>::Key;

#[derive(Default)]
struct Working {
    automations: Rows<AutomationRow>,
    executions: Rows<ExecutionRow>,
}

enum Change {
    Automation(AutomationEvent),
    Execution(ExecutionEvent),
}

#[derive(Default)]
struct Keys {
    automations: HashSet<AutomationKey>,
    executions: HashSet<ExecutionKey>,
    created_automations: HashSet<AutomationKey>,
    created_executions: HashSet<ExecutionKey>,
}

fn automation_key(event: &RecordedEvent) -> AutomationKey {
    (
        event.tenant_id,
        AutomationId::from_uuid(event.stream_id.as_uuid()),
    )
}

fn execution_key(event: &RecordedEvent) -> ExecutionKey {
    (
        event.tenant_id,
        ExecutionId::from_uuid(event.stream_id.as_uuid()),
    )
}

#[async_trait]
impl batch::Batch for Working {
    const NAME: &'static str = NAME;
    const FEED: bool = true;

    type Change = Change;
    type Keys = Keys;

    fn handles(event_type: &str) -> bool {
        event_type.starts_with("automation.")
    }

    fn decode(event: &RecordedEvent) -> Result<Change, ProjectionError> {
        let fail = |e| ProjectionError::event(event, e);
        Ok(
            if AutomationEvent::TYPES.contains(&event.event_type.as_str()) {
                Change::Automation(AutomationEvent::from_recorded(event).map_err(fail)?)
            } else {
                Change::Execution(ExecutionEvent::from_recorded(event).map_err(fail)?)
            },
        )
    }

    fn keys(keys: &mut Keys, event: &RecordedEvent, change: &Change) {
        match change {
            Change::Automation(automation) => {
                let key = automation_key(event);
                if matches!(automation, AutomationEvent::Created(_)) {
                    keys.created_automations.insert(key);
                } else if !keys.created_automations.contains(&key) {
                    keys.automations.insert(key);
                }
            }
            Change::Execution(execution) => {
                let key = execution_key(event);
                if matches!(execution, ExecutionEvent::Started(_)) {
                    keys.created_executions.insert(key);
                } else if !keys.created_executions.contains(&key) {
                    keys.executions.insert(key);
                }
            }
        }
    }

    async fn load(tx: &mut Tx<'_>, generation: i32, keys: Keys) -> Result<Self, ProjectionError> {
        Ok(Working {
            automations: Rows::load(tx, generation, keys.automations).await?,
            executions: Rows::load(tx, generation, keys.executions).await?,
        })
    }

    fn apply(
        &mut self,
        feed: &mut Recorder,
        event: &RecordedEvent,
        change: Change,
    ) -> Result<(), ProjectionError> {
        match change {
            Change::Automation(decoded) => apply_automation(self, feed, event, decoded),
            Change::Execution(decoded) => apply_execution(self, feed, event, decoded),
        }
    }

    async fn save(self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        self.automations.save(tx, generation).await?;
        self.executions.save(tx, generation).await?;
        Ok(())
    }
}

fn apply_automation(
    batch: &mut Working,
    feed: &mut Recorder,
    event: &RecordedEvent,
    decoded: AutomationEvent,
) -> Result<(), ProjectionError> {
    let key = automation_key(event);
    let at = event.occurred_at;
    if let AutomationEvent::Created(created) = decoded {
        if batch.automations.contains(&key) {
            return Ok(());
        }
        let row = AutomationRow {
            tenant_id: key.0,
            id: key.1,
            project_id: created.project_id,
            created_by: event.metadata.actor.user_id().map(UserId::from_uuid),
            created_at: at,
            created_position: event.position.0,
            name: created.name,
            trigger: Json(created.trigger),
            actions: Json(created.actions),
            enabled: created.enabled,
            updated_at: at,
            version: event.stream_version,
        };
        record_automation(feed, event, &row)?;
        batch.automations.insert(row);
        return Ok(());
    }
    let Some(row) = batch.automations.get_mut(&key) else {
        // Deleted in an earlier batch.
        return Ok(());
    };
    if !follows(row.version, event)? {
        return Ok(());
    }
    match decoded {
        AutomationEvent::Created(_) => {}
        AutomationEvent::Updated(updated) => {
            if let Some(name) = updated.name {
                row.name = name;
            }
            if let Some(trigger) = updated.trigger {
                row.trigger = Json(trigger);
            }
            if let Some(actions) = updated.actions {
                row.actions = Json(actions);
            }
            if let Some(enabled) = updated.enabled {
                row.enabled = enabled;
            }
            row.updated_at = at;
            row.version = event.stream_version;
            record_automation(feed, event, row)?;
            batch.automations.changed(key);
        }
        AutomationEvent::Deleted(deleted) => {
            feed.removed(
                event,
                feed::Resource::Automation(key.1),
                Some(deleted.project_id),
                None,
                serde_json::json!({ "id": key.1, "project_id": deleted.project_id }),
            );
            batch.automations.remove(&key);
        }
    }
    Ok(())
}

fn record_automation(
    feed: &mut Recorder,
    event: &RecordedEvent,
    row: &AutomationRow,
) -> Result<(), ProjectionError> {
    feed.update(
        event,
        feed::Resource::Automation(row.id),
        Some(row.project_id),
        None,
        &row.to_view(),
    )
}

fn apply_execution(
    batch: &mut Working,
    feed: &mut Recorder,
    event: &RecordedEvent,
    decoded: ExecutionEvent,
) -> Result<(), ProjectionError> {
    let key = execution_key(event);
    let at = event.occurred_at;
    if let ExecutionEvent::Started(started) = decoded {
        if batch.executions.contains(&key) {
            return Ok(());
        }
        let steps = started
            .steps
            .into_iter()
            .enumerate()
            .map(|(index, action)| StepView {
                index: index as u32,
                action,
                status: StepStatus::Pending,
                error: None,
                result: None,
                updated_at: None,
            })
            .collect();
        let row = ExecutionRow {
            tenant_id: key.0,
            id: key.1,
            automation_id: started.automation_id,
            project_id: started.project_id,
            task_id: started.task_id,
            trigger_event_id: started.trigger_event_id,
            trigger_event_type: started.trigger_event_type,
            depth: started.depth as i32,
            started_at: at,
            status: StepStatus::Running.as_str().to_owned(),
            steps: Json(steps),
            error: None,
            finished_at: None,
            updated_at: at,
            version: event.stream_version,
        };
        record_execution(feed, event, &row)?;
        batch.executions.insert(row);
        return Ok(());
    }
    let Some(row) = batch.executions.get_mut(&key) else {
        return Err(ProjectionError::event(event, "its execution has no row"));
    };
    if !follows(row.version, event)? {
        return Ok(());
    }
    match decoded {
        ExecutionEvent::Started(_) => {}
        ExecutionEvent::StepStatusChanged(changed) => {
            if let Some(step) = row.steps.0.get_mut(changed.step as usize) {
                step.status = changed.to;
                step.error = changed.error;
                if changed.result.is_some() {
                    step.result = changed.result;
                }
                step.updated_at = Some(at);
            }
        }
        ExecutionEvent::Finished(finished) => {
            row.status = finished.status.as_str().to_owned();
            row.error = finished.error;
            row.finished_at = Some(at);
        }
    }
    row.updated_at = at;
    row.version = event.stream_version;
    record_execution(feed, event, row)?;
    batch.executions.changed(key);
    Ok(())
}

fn record_execution(
    feed: &mut Recorder,
    event: &RecordedEvent,
    row: &ExecutionRow,
) -> Result<(), ProjectionError> {
    feed.update(
        event,
        feed::Resource::Execution(row.id),
        Some(row.project_id),
        Some(row.task_id),
        &row.to_view(),
    )
}

#[async_trait]
impl Projector for AutomationsProjector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handles(&self, event_type: &str) -> bool {
        <Working as batch::Batch>::handles(event_type)
    }

    async fn apply(
        &self,
        tx: &mut Tx<'_>,
        generation: i32,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        batch::apply::<Working>(tx, generation, events).await
    }

    async fn clear(&self, tx: &mut Tx<'_>, generation: i32) -> Result<(), ProjectionError> {
        table::clear::<AutomationRow>(tx, generation).await?;
        table::clear::<ExecutionRow>(tx, generation).await?;
        Ok(())
    }
}

/// An automation as the read model shows it now.
pub async fn get(
    db: &Db,
    tenant: TenantId,
    automation: AutomationId,
) -> Result<Option<AutomationView>, sqlx::Error> {
    let row: Option<AutomationRow> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM automations_view WHERE generation = {GENERATION} AND tenant_id = $1 AND id = $2",
            columns::<AutomationRow>()
        )))
        .bind(tenant)
        .bind(automation)
        .fetch_optional(pool)
        .await?
    });
    Ok(row.map(|row| row.to_view()))
}

/// One page of a project's automations, oldest first.
pub async fn list(
    db: &Db,
    tenant: TenantId,
    project: ProjectId,
    page: PageRequest,
) -> Result<Page<AutomationView>, sqlx::Error> {
    let mut listing = Listing::new(
        columns::<AutomationRow>(),
        String::new(),
        "created_at ASC, id ASC",
    );
    let tenant = listing.bind(Bind::Uuid(tenant.as_uuid()));
    let project = listing.bind(Bind::Uuid(project.as_uuid()));
    listing.from = format!(
        "FROM automations_view WHERE generation = {GENERATION} AND tenant_id = {tenant} AND project_id = {project}"
    );
    let rows: Page<AutomationRow> = listing.page(db, page).await?;
    Ok(rows.map(|row| row.to_view()))
}

/// The enabled automations of a project that existed before `position`
/// (those a task event at `position` may trigger), as the read model
/// knows them.
pub async fn enabled_before(
    db: &Db,
    tenant: TenantId,
    project: ProjectId,
    position: Position,
) -> Result<Vec<AutomationId>, sqlx::Error> {
    with_pool!(db, pool => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM automations_view WHERE generation = {GENERATION} AND tenant_id = $1 \
             AND project_id = $2 AND enabled = $3 AND created_position < $4 ORDER BY created_at, id"
        )))
        .bind(tenant)
        .bind(project)
        .bind(true)
        .bind(position.0)
        .fetch_all(pool)
        .await
    })
}

/// An execution as the read model shows it now.
pub async fn execution(
    db: &Db,
    tenant: TenantId,
    execution: ExecutionId,
) -> Result<Option<ExecutionView>, sqlx::Error> {
    let row: Option<ExecutionRow> = with_pool!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM automation_executions_view WHERE generation = {GENERATION} AND tenant_id = $1 AND id = $2",
            columns::<ExecutionRow>()
        )))
        .bind(tenant)
        .bind(execution)
        .fetch_optional(pool)
        .await?
    });
    Ok(row.map(|row| row.to_view()))
}

/// One page of an automation's executions, newest first.
pub async fn executions(
    db: &Db,
    tenant: TenantId,
    automation: AutomationId,
    page: PageRequest,
) -> Result<Page<ExecutionView>, sqlx::Error> {
    let mut listing = Listing::new(
        columns::<ExecutionRow>(),
        String::new(),
        "started_at DESC, id DESC",
    );
    let tenant = listing.bind(Bind::Uuid(tenant.as_uuid()));
    let automation = listing.bind(Bind::Uuid(automation.as_uuid()));
    listing.from = format!(
        "FROM automation_executions_view WHERE generation = {GENERATION} AND tenant_id = {tenant} AND automation_id = {automation}"
    );
    let rows: Page<ExecutionRow> = listing.page(db, page).await?;
    Ok(rows.map(|row| row.to_view()))
}
