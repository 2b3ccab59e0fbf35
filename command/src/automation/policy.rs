//! The policy that runs automations: a policy on the log, like the one
//! that unassigns departed members (`crate::task::policy`).
//!
//! 1. [`AutomationTriggers`], a projector, records every `task.created`
//!    and `task.status_changed` as a row of `automation_work` in the
//!    transaction that advances its checkpoint: each is recorded once.
//! 2. [`run`] works the rows off in log order (one process at a time on
//!    Postgres, elected; correctness does not rest on it): it waits until
//!    the automations read model has applied the log up to the event, asks
//!    it for the enabled automations of the task's project created before
//!    the event, evaluates each one's trigger on its own stream
//!    ([`evaluate`]), runs an execution for each one triggered, and
//!    deletes the row.
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
use tenet_events::catalogue::automation::{Action, ExecutionEvent, StepStatus};
use tenet_events::catalogue::task::TaskEvent;
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
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::aggregate::Automation;
use super::execution::{
    Execution, ExecutionError, Next, Origin, Start, Verdict, actor_name, automation_of, evaluate,
    execution_id, finish, made_by_step, next, render, start, step,
};
use crate::comment::aggregate::{Comment, CommentError, add};
use crate::project::aggregate::Project;
use crate::repository::{ExecuteError, Pair, Repository};
use crate::task::aggregate::{
    NewTask, Task, TaskChanges, TaskCommand, TaskError, create as create_task,
    decide as decide_task,
};
use crate::workspace::aggregate::Workspace;

/// The name of the projector that records the policy's work.
pub const NAME: &str = "automation-triggers";

/// Rows taken per round.
const ROUND: i64 = 100;

pub struct AutomationTriggers;

#[async_trait]
impl Projector for AutomationTriggers {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handles(&self, event_type: &str) -> bool {
        matches!(event_type, "task.created" | "task.status_changed")
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
    let mut head = worker.repository.store().watch_head();
    while !shutdown.is_cancelled() {
        let leadership = match worker.run_for_leader().await {
            Lead::Elected(leadership) => Some(leadership),
            Lead::Sole => None,
            Lead::NotNow => {
                pause(&shutdown, Duration::from_secs(2)).await;
                continue;
            }
        };
        worker.lead(leadership, &mut head, &shutdown).await;
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
        head: &mut watch::Receiver<Position>,
        shutdown: &CancellationToken,
    ) {
        while !shutdown.is_cancelled() {
            if let Some(held) = leadership.as_mut()
                && held.confirm().await.is_err()
            {
                break;
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
                _ = head.changed() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        if let Some(leadership) = leadership {
            let _ = leadership.release().await;
        }
    }

    /// Works off one round of rows, in log order; answers whether a full
    /// round was taken (more may wait). A row that fails stops the round,
    /// so executions start in the order of their triggering events.
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
        for work in rows {
            self.work(&work).await?;
        }
        Ok(full)
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

    /// Runs every automation `event` triggers.
    async fn evaluate(&self, event: &RecordedEvent) -> Result<(), PolicyError> {
        let Ok(decoded) = TaskEvent::from_recorded(event) else {
            return Ok(());
        };
        let project = match &decoded {
            TaskEvent::Created(created) => created.project_id,
            TaskEvent::StatusChanged(changed) => changed.project_id,
            _ => return Ok(()),
        };
        let tenant = event.tenant_id;
        let candidates = tenet_projections::automations::enabled_before(
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
            let automation = self
                .repository
                .load::<Automation>(tenant, id.into())
                .await?;
            let (depth, chain) = match evaluate(&automation.state, id, project, &decoded, &origin) {
                Verdict::Ignore => continue,
                Verdict::Run { depth, chain } | Verdict::TooDeep { depth, chain } => (depth, chain),
            };
            let run = Run {
                tenant,
                automation: id,
                execution: execution_id(id, event.event_id),
                task: TaskId::from_uuid(event.stream_id.as_uuid()),
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
                    // The automation acts on its own account, even when
                    // an impersonated user's change triggered it.
                    impersonated_by: None,
                },
            };
            let start = Start {
                automation_id: id,
                project_id: project,
                task_id: run.task,
                trigger_event_id: event.event_id,
                trigger_event_type: event.event_type.clone(),
                depth,
                chain,
                steps: automation.state.actions.clone(),
            };
            self.execute(&run, start).await?;
        }
        Ok(())
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
            let execution = self.current(run).await?;
            match next(&execution) {
                Next::Done => return Ok(()),
                Next::Finish => self.record(run, finish).await?,
                Next::Skip(index, why) => {
                    self.record(run, |execution| {
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
                    self.record(run, |execution| {
                        step(execution, index, StepStatus::Running, None, None)
                    })
                    .await?;
                    if !self.step_delay.is_zero() {
                        tokio::time::sleep(self.step_delay).await;
                    }
                    let action = execution.steps[index as usize].action.clone();
                    self.act(run, index, &action).await?;
                }
            }
        }
    }

    async fn current(&self, run: &Run) -> Result<Execution, PolicyError> {
        Ok(self
            .repository
            .load::<Execution>(run.tenant, run.execution.into())
            .await?
            .state)
    }

    /// Appends what `decide` makes of the execution.
    async fn record(
        &self,
        run: &Run,
        decide: impl Fn(&Execution) -> Result<Vec<ExecutionEvent>, ExecutionError> + Send + Sync,
    ) -> Result<(), PolicyError> {
        self.repository
            .recorded_as(run.metadata.clone())
            .on::<Execution>(run.tenant, run.execution)
            .decide(decide)
            .outcome()
            .await
            .map(drop)
            .map_err(|error| failed(run, error))
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
        match outcome {
            Outcome::Recorded => Ok(()),
            Outcome::Made(result) => {
                self.record(run, |execution| {
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
                self.record(run, |execution| {
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
