//! The policy that runs automations: a policy on the log, like the one
//! that unassigns departed members (`crate::task::policy`).
//!
//! 1. [`AutomationTriggers`], a projector, records every `task.created`,
//!    `task.status_changed` and `due_date.passed` as a row of
//!    `automation_work` in the transaction that advances its checkpoint:
//!    each is recorded once. `due_date.passed` is the clock's: now and
//!    then the worker looks for open tasks due before today (UTC) in
//!    projects with an enabled due-date automation, and records that each
//!    one's due date passed, once per task and date (`super::due`).
//! 2. [`run`] works the rows off in log order (one process at a time on
//!    Postgres, elected; correctness does not rest on it): it waits until
//!    the automations read model has applied the log up to the event, asks
//!    it for the automations of the task's project created before the
//!    event, evaluates each one as its stream says it was at the event
//!    ([`evaluate`]: enabled, its trigger matches, not its own change),
//!    runs an execution for each one triggered, and deletes the row.
//!
//! **Once per (automation, event).** The execution's stream id follows from
//! the automation and the triggering event ([`execution_id`]): a second
//! attempt (after a crash, or from another instance) finds it exists and
//! resumes where it stopped. Each step is idempotent too: a change to the
//! triggering task is appended with the step's `succeeded` in one atomic
//! append over the task and the execution, so it is never made twice; a
//! task or comment a step creates has an id derived from the execution and
//! the step, so a second attempt finds it.
//!
//! **Never its own trigger.** Every event an execution writes (its own and
//! its actions') has the automation as its actor (`automation:<id>`) and
//! the triggering event as its causation id: from those, a change an
//! automation made leads back to its execution, whose chain and depth say
//! whether it may trigger another ([`Origin`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tenet_events::catalogue::DomainEvent;
use tenet_events::catalogue::automation::{Action, AutomationEvent, ExecutionEvent, StepStatus};
use tenet_events::db::{Db, Tx};
use tenet_events::envelope::{Actor, Metadata, RecordedEvent};
use tenet_events::ids::{
    AutomationId, CommentId, EventId, ExecutionId, Position, ProjectId, StreamId, TaskId, TenantId,
    UserId, WorkspaceId,
};
use tenet_events::leader::Leadership;
use tenet_events::projection::{ProjectionError, Projector};
use tenet_events::store::StoreError;
use tenet_events::{with_pool, with_tx};
use tenet_projections::checkpoints::{Checkpoints, WaitError};
use tokio_util::sync::CancellationToken;

use super::aggregate::Automation;
use super::due::{DueDate, due_date_stream, pass};
use super::execution::{
    Execution, ExecutionError, Next, Origin, Start, Triggering, Verdict, actor_name, automation_of,
    evaluate, execution_id, finish, made_by_step, next, render, start, step,
};
use crate::comment::aggregate::{Comment, CommentError, add};
use crate::project::aggregate::Project;
use crate::repository::{Aggregate, Applied, ExecuteError, Pair, Repository};
use crate::task::aggregate::{
    NewTask, Task, TaskChanges, TaskCommand, TaskError, create as create_task,
    decide as decide_task,
};
use crate::wake::Wake;
use crate::workspace::aggregate::Workspace;

/// The name of the projector that records the policy's work.
pub const NAME: &str = "automation-triggers";

/// Rows taken per round.
const ROUND: i64 = 100;

/// The actor of the facts the due-date clock records.
pub const DUE_DATE_CLOCK: &str = "automation-due-dates";

pub struct AutomationTriggers;

#[async_trait]
impl Projector for AutomationTriggers {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handles(&self, event_type: &str) -> bool {
        matches!(
            event_type,
            "task.created" | "task.status_changed" | "due_date.passed"
        )
    }

    async fn apply(
        &self,
        tx: &mut Tx<'_>,
        _generation: i32,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for event in events.iter().filter(|e| self.handles(&e.event_type)) {
            with_tx!(tx, conn => {
                sqlx::query(
                    "INSERT INTO automation_work \
                       (event_id, tenant_id, stream_id, stream_version, position) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
                )
                .bind(event.event_id)
                .bind(event.tenant_id)
                .bind(event.stream_id)
                .bind(event.stream_version)
                .bind(event.position.0)
                .execute(&mut *conn)
                .await?;
            });
        }
        Ok(())
    }

    async fn clear(&self, _tx: &mut Tx<'_>, _generation: i32) -> Result<(), ProjectionError> {
        // Work still to do is no read model of one generation: a rebuild
        // records the old events again (`ON CONFLICT DO NOTHING`), and an
        // event evaluated twice runs nothing twice (executions are keyed
        // by automation and event).
        Ok(())
    }
}

/// One recorded task event.
#[derive(Debug, sqlx::FromRow)]
struct Work {
    event_id: EventId,
    tenant_id: TenantId,
    stream_id: StreamId,
    stream_version: i64,
    position: i64,
}

/// What the worker needs.
#[derive(Clone)]
pub struct Worker {
    pub db: Db,
    pub repository: Arc<Repository>,
    pub checkpoints: Checkpoints,
    /// A pause between a step's `running` and its action (0 in
    /// production): lets fault tests stop the process inside a step.
    pub step_delay: Duration,
    /// How often the clock looks for due dates that passed.
    pub due_scan_every: Duration,
}

/// Why a round, an event or a step was not worked off (it is tried again).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the automations read model has not reached position {0} yet")]
    NotCaughtUp(i64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("execution {execution} cannot go on: {reason}")]
    Execution {
        execution: ExecutionId,
        reason: String,
    },
}

/// Why a step's command was refused: the step fails with it (or, for the
/// execution's own refusal, the step is retried).
#[derive(Debug, thiserror::Error)]
enum StepRefused {
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Comment(#[from] CommentError),
    #[error(transparent)]
    Execution(#[from] ExecutionError),
}

/// Whether this process may work the rows off now.
enum Lead {
    Elected(Leadership),
    Sole,
    NotNow,
}

/// Works off recorded task events until shutdown.
pub async fn run(worker: Worker, shutdown: CancellationToken) {
    let mut wake = Wake::new(
        worker.repository.store().as_ref(),
        &worker.checkpoints,
        NAME,
    );
    while !shutdown.is_cancelled() {
        let leadership = match worker.run_for_leader().await {
            Lead::Elected(leadership) => Some(leadership),
            Lead::Sole => None,
            Lead::NotNow => {
                pause(&shutdown, Duration::from_secs(2)).await;
                continue;
            }
        };
        worker.lead(leadership, &mut wake, &shutdown).await;
    }
}

async fn pause(shutdown: &CancellationToken, duration: Duration) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(duration) => {}
    }
}

/// The run of one execution: whose it is and what it records.
struct Run {
    tenant: TenantId,
    automation: AutomationId,
    execution: ExecutionId,
    /// The triggering task and its project.
    task: TaskId,
    project: ProjectId,
    /// Every event the run writes carries it.
    metadata: Metadata,
}

impl Worker {
    async fn run_for_leader(&self) -> Lead {
        let Db::Postgres(pool) = &self.db else {
            return Lead::Sole;
        };
        match Leadership::try_acquire(pool, "tenet.policy.automations").await {
            Ok(Some(leadership)) => Lead::Elected(leadership),
            Ok(None) => Lead::NotNow,
            Err(error) => {
                tracing::warn!(policy = NAME, %error, "cannot run for leader");
                Lead::NotNow
            }
        }
    }

    async fn lead(
        &self,
        mut leadership: Option<Leadership>,
        wake: &mut Wake,
        shutdown: &CancellationToken,
    ) {
        let mut scanned: Option<tokio::time::Instant> = None;
        while !shutdown.is_cancelled() {
            if let Some(held) = leadership.as_mut()
                && held.confirm().await.is_err()
            {
                break;
            }
            if scanned.is_none_or(|at| at.elapsed() >= self.due_scan_every) {
                if let Err(error) = self.scan_due_dates().await {
                    tracing::warn!(policy = NAME, %error, "due-date scan failed; retrying");
                }
                scanned = Some(tokio::time::Instant::now());
            }
            match self.round().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(policy = NAME, %error, "policy round failed; retrying")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = wake.changed() => {}
                () = tokio::time::sleep(self.due_scan_every.min(Duration::from_secs(1))) => {}
            }
        }
        if let Some(leadership) = leadership {
            let _ = leadership.release().await;
        }
    }

    /// Works off one round of rows, in log order; answers whether a full
    /// round was taken (more may wait).
    async fn round(&self) -> Result<bool, PolicyError> {
        let rows: Vec<Work> = with_pool!(self.db, pool => {
            sqlx::query_as(
                "SELECT event_id, tenant_id, stream_id, stream_version, position \
                 FROM automation_work ORDER BY position LIMIT $1",
            )
            .bind(ROUND)
            .fetch_all(pool)
            .await
        })?;
        let full = rows.len() as i64 == ROUND;
        let mut stuck = 0;
        for work in rows {
            // One event that cannot be worked off yet (its streams
            // contended, a store error) must not hold up the others (other
            // tenants' above all): it stays and is tried again next round,
            // resuming its executions where they stopped.
            if let Err(error) = self.work(&work).await {
                stuck += 1;
                tracing::warn!(policy = NAME, event = %work.event_id, %error, "event not worked off yet");
            }
        }
        Ok(full && stuck < ROUND)
    }

    async fn work(&self, work: &Work) -> Result<(), PolicyError> {
        match self
            .checkpoints
            .wait_for(
                &self.db,
                tenet_projections::automations::NAME,
                Position(work.position),
                Duration::from_secs(5),
            )
            .await
        {
            Ok(()) => {}
            Err(WaitError::TimedOut { .. }) => return Err(PolicyError::NotCaughtUp(work.position)),
            Err(WaitError::Database(error)) => return Err(error.into()),
        }
        let event = self
            .repository
            .store()
            .read_stream(work.tenant_id, work.stream_id, work.stream_version - 1, 1)
            .await?
            .into_iter()
            .next();
        if let Some(event) = event {
            self.evaluate(&event).await?;
        }
        let mut tx = self.db.begin().await?;
        with_tx!(&mut tx, conn => {
            sqlx::query("DELETE FROM automation_work WHERE event_id = $1")
                .bind(work.event_id)
                .execute(&mut *conn)
                .await?;
        });
        Ok(tx.commit().await?)
    }

    /// Records, once per task and due date, that open tasks' due dates
    /// passed (in projects that have an automation for it); the policy
    /// then takes each record as its trigger.
    async fn scan_due_dates(&self) -> Result<(), PolicyError> {
        let today = chrono::Utc::now().date_naive();
        let overdue = tenet_projections::automations::overdue(&self.db, today, ROUND).await?;
        for task in overdue {
            let metadata = Metadata {
                actor: Actor::System {
                    name: DUE_DATE_CLOCK.to_owned(),
                },
                request_id: None,
                correlation_id: None,
                causation_id: None,
                impersonated_by: None,
                traceparent: None,
                tracestate: None,
            };
            let (id, project, due) = (task.task_id, task.project_id, task.due_date);
            self.repository
                .recorded_as(metadata)
                .on::<DueDate>(task.tenant_id, due_date_stream(id, due))
                .new_stream()
                .decide(|state| Ok::<_, ExecutionError>(pass(state, id, project, due)))
                .outcome()
                .await
                .map_err(|error| PolicyError::Execution {
                    execution: ExecutionId::from_uuid(id.as_uuid()),
                    reason: format!("cannot record a passed due date: {error:?}"),
                })?;
            let mut tx = self.db.begin().await?;
            with_tx!(&mut tx, conn => {
                sqlx::query(
                    "INSERT INTO automation_due_dates_seen (tenant_id, task_id, due_date) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(task.tenant_id)
                .bind(id)
                .bind(due)
                .execute(&mut *conn)
                .await?;
            });
            tx.commit().await?;
        }
        Ok(())
    }

    /// Runs every automation `event` triggers.
    async fn evaluate(&self, event: &RecordedEvent) -> Result<(), PolicyError> {
        let Some(decoded) = Triggering::of(event) else {
            return Ok(());
        };
        let Some((project, task)) = decoded.subject(event) else {
            return Ok(());
        };
        let tenant = event.tenant_id;
        let candidates = tenet_projections::automations::of_project_before(
            &self.db,
            tenant,
            project,
            event.position,
        )
        .await?;
        if candidates.is_empty() {
            return Ok(());
        }
        let origin = self.origin(event).await?;
        for id in candidates {
            let automation = self.automation_at(tenant, id, event.position).await?;
            let (depth, chain) = match evaluate(&automation, id, project, &decoded, &origin) {
                Verdict::Ignore => continue,
                Verdict::Run { depth, chain } | Verdict::TooDeep { depth, chain } => (depth, chain),
            };
            let (run, start) = run_of(event, id, (project, task), depth, chain, &automation);
            self.execute(&run, start).await?;
        }
        Ok(())
    }

    /// An automation as it was when the log reached `position`: whether
    /// an event triggers it is decided on the rule of that moment, so a
    /// retry (after a crash) decides as the first attempt did and resumes
    /// its execution, whatever changed to the automation since.
    async fn automation_at(
        &self,
        tenant: TenantId,
        id: AutomationId,
        position: Position,
    ) -> Result<Automation, PolicyError> {
        let mut automation = Automation::default();
        let mut version = 0;
        loop {
            let events = self
                .repository
                .store()
                .read_stream(tenant, id.into(), version, 1_000)
                .await?;
            let done = events.len() < 1_000;
            for event in &events {
                version = event.stream_version;
                if event.position >= position {
                    return Ok(automation);
                }
                let decoded =
                    AutomationEvent::from_recorded(event).map_err(|error| StoreError::Corrupt {
                        position: event.position.0,
                        reason: error.to_string(),
                    })?;
                automation.evolve(
                    &decoded,
                    &Applied {
                        stream_version: event.stream_version,
                        occurred_at: event.occurred_at,
                        by: event.metadata.actor.user_id().map(UserId::from_uuid),
                    },
                );
            }
            if done {
                return Ok(automation);
            }
        }
    }

    /// Where `event` came from: a person, or the execution of the
    /// automation that made it (named by its actor and causation).
    async fn origin(&self, event: &RecordedEvent) -> Result<Origin, PolicyError> {
        let automation = match &event.metadata.actor {
            Actor::Policy { name } => automation_of(name),
            _ => None,
        };
        let (Some(automation), Some(cause)) = (automation, event.metadata.causation_id) else {
            return Ok(Origin::default());
        };
        let execution = execution_id(automation, EventId::from_uuid(cause));
        let loaded = self
            .repository
            .load::<Execution>(event.tenant_id, execution.into())
            .await?;
        if !loaded.state.started {
            // Its execution is unknown: treat the change as the
            // automation's, at the limit, so it triggers no chain.
            return Ok(Origin {
                depth: super::execution::MAX_DEPTH,
                chain: vec![automation],
            });
        }
        Ok(Origin {
            depth: loaded.state.depth,
            chain: loaded.state.chain,
        })
    }

    /// Starts (or resumes) an execution and runs it to its end.
    async fn execute(&self, run: &Run, begin: Start) -> Result<(), PolicyError> {
        self.repository
            .recorded_as(run.metadata.clone())
            .on::<Execution>(run.tenant, run.execution)
            .new_stream()
            .decide(|execution| Ok::<_, ExecutionError>(start(execution, begin.clone())))
            .outcome()
            .await
            .map_err(|error| failed(run, error))?;
        loop {
            let (execution, version) = self.current(run).await?;
            match next(&execution) {
                Next::Done => return Ok(()),
                Next::Finish => self.record(run, version, finish).await?,
                Next::Skip(index, why) => {
                    self.record(run, version, |execution| {
                        step(
                            execution,
                            index,
                            StepStatus::Skipped,
                            Some(why.clone()),
                            None,
                        )
                    })
                    .await?
                }
                Next::Run(index) => {
                    self.record(run, version, |execution| {
                        step(execution, index, StepStatus::Running, None, None)
                    })
                    .await?;
                    if !self.step_delay.is_zero() {
                        tokio::time::sleep(self.step_delay).await;
                    }
                    // Another attempt may have ended the step meanwhile.
                    let (now, _) = self.current(run).await?;
                    if now.steps[index as usize].status != StepStatus::Running {
                        continue;
                    }
                    let action = now.steps[index as usize].action.clone();
                    self.act(run, index, &action).await?;
                }
            }
        }
    }

    /// The execution as the store holds it, and its version.
    async fn current(&self, run: &Run) -> Result<(Execution, i64), PolicyError> {
        let loaded = self
            .repository
            .load::<Execution>(run.tenant, run.execution.into())
            .await?;
        Ok((loaded.state, loaded.version))
    }

    /// Appends what `decide` makes of the execution at `version` (the one
    /// the caller read from the store, so the decision never stands on an
    /// older state this process cached while another instance went on).
    /// At another version, another attempt moved it: nothing is recorded,
    /// and the caller reads it again.
    async fn record(
        &self,
        run: &Run,
        version: i64,
        decide: impl Fn(&Execution) -> Result<Vec<ExecutionEvent>, ExecutionError> + Send + Sync,
    ) -> Result<(), PolicyError> {
        match self
            .repository
            .recorded_as(run.metadata.clone())
            .on::<Execution>(run.tenant, run.execution)
            .if_match(Some(version))
            .decide(decide)
            .outcome()
            .await
        {
            Ok(_) | Err(ExecuteError::Stale { .. }) => Ok(()),
            Err(error) => Err(failed(run, error)),
        }
    }

    /// Runs step `index`'s action and records how it went.
    async fn act(&self, run: &Run, index: u32, action: &Action) -> Result<(), PolicyError> {
        let outcome = match action {
            Action::Assign { user_id } => {
                let user = *user_id;
                self.change_task(run, index, move |_| {
                    TaskCommand::Edit(TaskChanges {
                        assignee: Some(Some(user)),
                        ..TaskChanges::default()
                    })
                })
                .await
            }
            Action::SetPriority { priority } => {
                let priority = *priority;
                self.change_task(run, index, move |_| {
                    TaskCommand::Edit(TaskChanges {
                        priority: Some(priority),
                        ..TaskChanges::default()
                    })
                })
                .await
            }
            Action::AddLabel { label } => {
                let (label, id) = (label.clone(), run.task);
                self.change_task(run, index, move |task| {
                    let label = render(&label, task, id);
                    let mut labels = task.labels.clone();
                    if !labels.contains(&label) {
                        labels.push(label);
                    }
                    TaskCommand::Edit(TaskChanges {
                        labels: Some(labels),
                        ..TaskChanges::default()
                    })
                })
                .await
            }
            Action::Transition { to } => {
                let to = *to;
                self.change_task(run, index, move |_| TaskCommand::Transition { to })
                    .await
            }
            Action::Comment { body } => self.comment(run, index, body).await,
            Action::CreateTask { .. } => self.create_task(run, index, action).await,
        }?;
        let (_, version) = self.current(run).await?;
        match outcome {
            Outcome::Recorded => Ok(()),
            Outcome::Made(result) => {
                self.record(run, version, |execution| {
                    step(
                        execution,
                        index,
                        StepStatus::Succeeded,
                        None,
                        Some(result.clone()),
                    )
                })
                .await
            }
            Outcome::Refused(error) => {
                self.record(run, version, |execution| {
                    step(
                        execution,
                        index,
                        StepStatus::Failed,
                        Some(error.clone()),
                        None,
                    )
                })
                .await
            }
        }
    }

    /// A change to the triggering task, appended with the step's
    /// `succeeded` in one atomic append: made once, however often tried.
    async fn change_task(
        &self,
        run: &Run,
        index: u32,
        command: impl Fn(&Task) -> TaskCommand + Send + Sync,
    ) -> Result<Outcome, PolicyError> {
        let outcome = self
            .repository
            .recorded_as(run.metadata.clone())
            .on::<Task>(run.tenant, run.task)
            .writing::<Execution>(run.execution)
            .checking::<Workspace>(WorkspaceId::from(run.tenant))
            .decide(
                |task, execution, workspace| -> Result<Pair<Task, Execution>, StepRefused> {
                    if execution
                        .steps
                        .get(index as usize)
                        .is_some_and(|step| step.status == StepStatus::Succeeded)
                    {
                        return Ok((Vec::new(), Vec::new()));
                    }
                    let (changes, _) = decide_task(task, workspace, command(task))?;
                    let done = step(execution, index, StepStatus::Succeeded, None, None)?;
                    Ok((changes, done))
                },
            )
            .outcome()
            .await;
        match outcome {
            Ok(_) => Ok(Outcome::Recorded),
            Err(ExecuteError::Rejected(StepRefused::Execution(error))) => {
                Err(PolicyError::Execution {
                    execution: run.execution,
                    reason: error.to_string(),
                })
            }
            Err(ExecuteError::Rejected(refused)) => Ok(Outcome::Refused(refused.to_string())),
            Err(error) => Err(failed(run, error)),
        }
    }

    /// A comment on the triggering task, written as the automation (its
    /// author id is the automation's), with an id the step derives.
    async fn comment(&self, run: &Run, index: u32, body: &str) -> Result<Outcome, PolicyError> {
        let id = CommentId::from_uuid(made_by_step(run.execution, index));
        let author = UserId::from_uuid(run.automation.as_uuid());
        let (task_id, body) = (run.task, body.to_owned());
        let outcome = self
            .repository
            .recorded_as(run.metadata.clone())
            .on::<Comment>(run.tenant, id)
            .checking::<Task>(task_id)
            .new_stream()
            .decide(|comment, task| {
                add(comment, task, task_id, author, render(&body, task, task_id))
            })
            .outcome()
            .await;
        match outcome {
            Ok(_) | Err(ExecuteError::Rejected(CommentError::AlreadyExists)) => {
                Ok(Outcome::Made(serde_json::json!({ "comment_id": id })))
            }
            Err(ExecuteError::Rejected(refused)) => Ok(Outcome::Refused(refused.to_string())),
            Err(error) => Err(failed(run, error)),
        }
    }

    /// A follow-up task in the automation's project, with an id the step
    /// derives; its strings name the triggering task as it is now.
    async fn create_task(
        &self,
        run: &Run,
        index: u32,
        action: &Action,
    ) -> Result<Outcome, PolicyError> {
        let Action::CreateTask {
            title,
            description,
            priority,
            labels,
            assignee_id,
            due_date,
        } = action
        else {
            return Ok(Outcome::Refused("not a create_task action".to_owned()));
        };
        let trigger = self
            .repository
            .load::<Task>(run.tenant, run.task.into())
            .await?
            .state;
        let id = TaskId::from_uuid(made_by_step(run.execution, index));
        let new = NewTask {
            project_id: run.project,
            title: render(title, &trigger, run.task),
            description: render(description, &trigger, run.task),
            priority: *priority,
            assignee: *assignee_id,
            labels: labels
                .iter()
                .map(|label| render(label, &trigger, run.task))
                .collect(),
            due_date: *due_date,
        };
        let outcome = self
            .repository
            .recorded_as(run.metadata.clone())
            .on::<Task>(run.tenant, id)
            .writing::<Project>(run.project)
            .checking_if::<Workspace>(assignee_id.is_some(), WorkspaceId::from(run.tenant))
            .new_stream()
            .decide(|task, project, workspace| {
                create_task(task, project, workspace, id, new.clone())
            })
            .outcome()
            .await;
        match outcome {
            Ok(_) | Err(ExecuteError::Rejected(TaskError::AlreadyExists)) => {
                Ok(Outcome::Made(serde_json::json!({ "task_id": id })))
            }
            Err(ExecuteError::Rejected(refused)) => Ok(Outcome::Refused(refused.to_string())),
            Err(error) => Err(failed(run, error)),
        }
    }
}

/// The run of automation `id` (as it was, `automation`) that `event`, about
/// `task` of `project`, triggers, and how it starts.
fn run_of(
    event: &RecordedEvent,
    id: AutomationId,
    (project, task): (ProjectId, TaskId),
    depth: u32,
    chain: Vec<AutomationId>,
    automation: &Automation,
) -> (Run, Start) {
    let run = Run {
        tenant: event.tenant_id,
        automation: id,
        execution: execution_id(id, event.event_id),
        task,
        project,
        metadata: Metadata {
            actor: Actor::Policy {
                name: actor_name(id),
            },
            request_id: None,
            correlation_id: event
                .metadata
                .correlation_id
                .or(Some(event.event_id.as_uuid())),
            causation_id: Some(event.event_id.as_uuid()),
            // The automation acts on its own account, even when an
            // impersonated user's change triggered it.
            impersonated_by: None,
            // An execution continues the trace of the change that
            // triggered it.
            traceparent: event.metadata.traceparent.clone(),
            tracestate: event.metadata.tracestate.clone(),
        },
    };
    let start = Start {
        automation_id: id,
        project_id: project,
        task_id: task,
        trigger_event_id: event.event_id,
        trigger_event_type: event.event_type.clone(),
        depth,
        chain,
        steps: automation.actions.clone(),
    };
    (run, start)
}

/// How an action went.
enum Outcome {
    /// Its success is recorded with its change.
    Recorded,
    /// It made something (its ids): its success is still to record.
    Made(serde_json::Value),
    /// Its command was refused: the step fails with this error.
    Refused(String),
}

/// A command of the run that could not be appended (retried later).
fn failed<E: std::fmt::Debug>(run: &Run, error: ExecuteError<E>) -> PolicyError {
    match error {
        ExecuteError::Store(error) => PolicyError::Store(error),
        other => PolicyError::Execution {
            execution: run.execution,
            reason: format!("{other:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::aggregate::TaskCommand;
    use tenet_events::catalogue::automation::{AutomationCreated, Trigger};
    use tenet_events::catalogue::project::{ProjectCreated, ProjectEvent};
    use tenet_events::catalogue::task::{Priority, TaskStatus};
    use tenet_events::catalogue::workspace::{WorkspaceCreated, WorkspaceEvent};
    use tenet_events::store::StoreOptions;
    use tenet_events::testing::TestDatabase;

    #[derive(Debug)]
    struct Never;

    fn worker(db: &Db, store: &Arc<dyn tenet_events::store::EventStore>) -> Worker {
        Worker {
            db: db.clone(),
            // A repository of its own: another process's cache.
            repository: Arc::new(Repository::new(store.clone())),
            checkpoints: Checkpoints::default(),
            step_delay: Duration::ZERO,
            due_scan_every: Duration::from_secs(60),
        }
    }

    fn by_owner(owner: UserId) -> Metadata {
        Metadata::new(Actor::User {
            id: owner.as_uuid(),
        })
    }

    /// Two processes that take up the same triggering event at once run
    /// its execution once: one start, each step's change once, one finish.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_running_one_execution_run_it_once_on_sqlite() {
        two_instances_run_one_execution_once(TestDatabase::sqlite().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_running_one_execution_run_it_once_on_postgres() {
        if let Some(database) = TestDatabase::postgres().await {
            two_instances_run_one_execution_once(database).await;
        }
    }

    async fn two_instances_run_one_execution_once(database: TestDatabase) {
        let store = tenet_events::store::open(database.db.clone(), StoreOptions::default())
            .await
            .expect("store");
        let first = worker(&database.db, &store);
        let second = worker(&database.db, &store);
        let repository = &first.repository;
        let owner = UserId::generate();
        let workspace = WorkspaceId::generate();
        let tenant = TenantId::from(workspace);
        repository
            .recorded_as(by_owner(owner))
            .on::<Workspace>(tenant, workspace)
            .new_stream()
            .decide(|_| {
                Ok::<_, Never>(vec![WorkspaceEvent::Created(WorkspaceCreated {
                    name: "Acme".into(),
                    slug: format!("acme-{}", uuid::Uuid::now_v7().simple()),
                    owner_id: owner,
                })])
            })
            .outcome()
            .await
            .expect("workspace");
        let project = ProjectId::generate();
        repository
            .recorded_as(by_owner(owner))
            .on::<Project>(tenant, project)
            .new_stream()
            .decide(|_| {
                Ok::<_, Never>(vec![ProjectEvent::Created(ProjectCreated {
                    name: "Web".into(),
                    slug: "web".into(),
                    description: String::new(),
                    key: "WEB".into(),
                    template_id: None,
                    template_version: None,
                })])
            })
            .outcome()
            .await
            .expect("project");
        let task = TaskId::generate();
        repository
            .recorded_as(by_owner(owner))
            .on::<Task>(tenant, task)
            .writing::<Project>(project)
            .checking::<Workspace>(workspace)
            .new_stream()
            .decide(|state, project_state, workspace_state| {
                create_task(
                    state,
                    project_state,
                    workspace_state,
                    task,
                    NewTask {
                        project_id: project,
                        title: "Login".into(),
                        description: String::new(),
                        priority: Priority::Medium,
                        assignee: None,
                        labels: Vec::new(),
                        due_date: None,
                    },
                )
            })
            .outcome()
            .await
            .expect("task");
        let automation = AutomationId::generate();
        let rule = AutomationCreated {
            project_id: project,
            name: "Follow up".into(),
            trigger: Trigger::StatusChanged {
                to: TaskStatus::InProgress,
            },
            actions: vec![
                Action::AddLabel {
                    label: "started".into(),
                },
                Action::Comment {
                    body: "On it: {{task.key}}".into(),
                },
                Action::CreateTask {
                    title: "Review {{task.title}}".into(),
                    description: String::new(),
                    priority: Priority::High,
                    labels: Vec::new(),
                    assignee_id: None,
                    due_date: None,
                },
                Action::Assign { user_id: owner },
            ],
            enabled: true,
        };
        repository
            .recorded_as(by_owner(owner))
            .on::<Automation>(tenant, automation)
            .new_stream()
            .decide(|_| Ok::<_, Never>(vec![AutomationEvent::Created(rule.clone())]))
            .outcome()
            .await
            .expect("automation");
        repository
            .recorded_as(by_owner(owner))
            .on::<Task>(tenant, task)
            .checking::<Workspace>(workspace)
            .decide(|state, workspace_state| {
                decide_task(
                    state,
                    workspace_state,
                    TaskCommand::Transition {
                        to: TaskStatus::InProgress,
                    },
                )
            })
            .outcome()
            .await
            .expect("transition");
        let trigger = store
            .read_stream(tenant, task.into(), 1, 1)
            .await
            .expect("read")
            .remove(0);
        let state = first
            .automation_at(tenant, automation, Position(trigger.position.0 + 1))
            .await
            .expect("automation");
        let (run, start) = run_of(
            &trigger,
            automation,
            (project, task),
            1,
            vec![automation],
            &state,
        );
        let (a, b) = tokio::join!(
            first.execute(&run, start.clone()),
            second.execute(&run, start.clone())
        );
        a.expect("first");
        b.expect("second");

        let events = store
            .read_stream(tenant, run.execution.into(), 0, 1_000)
            .await
            .expect("execution");
        let count = |wanted: &str| events.iter().filter(|e| e.event_type == wanted).count();
        assert_eq!(count("automation.execution_started"), 1);
        assert_eq!(count("automation.execution_finished"), 1);
        let succeeded = events
            .iter()
            .filter(|e| e.data["to"] == "succeeded")
            .count();
        assert_eq!(succeeded, 4);
        for event in &events {
            assert_eq!(
                event.metadata.causation_id,
                Some(trigger.event_id.as_uuid())
            );
        }
        let project_state = repository
            .load::<Project>(tenant, project.into())
            .await
            .expect("project");
        assert_eq!(project_state.state.tasks, 2, "one follow-up");
        let task_state = repository
            .load::<Task>(tenant, task.into())
            .await
            .expect("task");
        assert_eq!(task_state.state.labels, vec!["started".to_owned()]);
        assert_eq!(task_state.state.assignee, Some(owner));
        // Its own changes (label, assignment) do not trigger it again.
        let own = store
            .read_stream(tenant, task.into(), 2, 100)
            .await
            .expect("changes");
        let origin = first.origin(&own[0]).await.expect("origin");
        assert_eq!(origin.chain, vec![automation]);
    }
}
