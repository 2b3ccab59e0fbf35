//! Executions: one run of an automation for one triggering event, and the
//! pure rules around it: whether an event triggers an automation
//! ([`evaluate`]), what an execution does next ([`next`]), how its steps
//! move ([`step`], [`finish`]), and the ids that make a run happen once
//! ([`execution_id`], [`made_by_step`]).

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tenet_events::catalogue::automation::{
    Action, ExecutionEvent, ExecutionFinished, ExecutionStarted, StepStatus, StepStatusChanged,
    Trigger,
};
use tenet_events::catalogue::task::TaskEvent;
use tenet_events::ids::{AutomationId, EventId, ExecutionId, ProjectId, TaskId};

use super::aggregate::Automation;
use crate::repository::{Aggregate, Applied};
use crate::task::aggregate::Task;

/// How long a chain of automations triggering each other may grow: the
/// execution one deeper is recorded with every step skipped.
pub const MAX_DEPTH: u32 = 3;

/// The actor name of the changes an automation makes (and of its
/// executions' events): `automation:<id>`.
pub fn actor_name(automation: AutomationId) -> String {
    format!("automation:{automation}")
}

/// The automation an actor name says made a change, if it is one.
pub fn automation_of(actor_name: &str) -> Option<AutomationId> {
    actor_name.strip_prefix("automation:")?.parse().ok()
}

/// A name-based id (UUID v8 of a SHA-256): the same inputs, the same id.
fn derived(namespace: uuid::Uuid, name: &[u8]) -> uuid::Uuid {
    let mut hash = Sha256::new();
    hash.update(namespace.as_bytes());
    hash.update(name);
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The execution of `automation` for the event `trigger`: every attempt
/// at running it (after a crash, on another instance) names the same
/// stream, so the second finds the first's and resumes it.
pub fn execution_id(automation: AutomationId, trigger: EventId) -> ExecutionId {
    ExecutionId::from_uuid(derived(automation.as_uuid(), trigger.as_uuid().as_bytes()))
}

/// The id of what step `index` of `execution` creates (a task, a comment):
/// a second attempt at the step finds it exists.
pub fn made_by_step(execution: ExecutionId, index: u32) -> uuid::Uuid {
    derived(execution.as_uuid(), format!("step/{index}").as_bytes())
}

/// Where a triggering change came from: a person (depth 0, no chain) or
/// an execution (its depth and chain).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub depth: u32,
    pub chain: Vec<AutomationId>,
}

/// What a task event means for one automation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not triggered: disabled, deleted, another project, another event,
    /// or the automation's own change (directly or through a chain).
    Ignore,
    /// Run it, at this depth and chain.
    Run {
        depth: u32,
        chain: Vec<AutomationId>,
    },
    /// Triggered, but the chain is too deep: recorded, every step skipped.
    TooDeep {
        depth: u32,
        chain: Vec<AutomationId>,
    },
}

/// Whether `event`, of a task in `project`, triggers `automation` (`id`),
/// given where the change came from.
pub fn evaluate(
    automation: &Automation,
    id: AutomationId,
    project: ProjectId,
    event: &TaskEvent,
    origin: &Origin,
) -> Verdict {
    if !automation.belongs_to(project) || !automation.enabled {
        return Verdict::Ignore;
    }
    let Some(trigger) = &automation.trigger else {
        return Verdict::Ignore;
    };
    if !triggers(trigger, event) || origin.chain.contains(&id) {
        return Verdict::Ignore;
    }
    let depth = origin.depth + 1;
    let mut chain = origin.chain.clone();
    chain.push(id);
    if depth > MAX_DEPTH {
        Verdict::TooDeep { depth, chain }
    } else {
        Verdict::Run { depth, chain }
    }
}

/// Whether a task event matches a trigger.
pub fn triggers(trigger: &Trigger, event: &TaskEvent) -> bool {
    match (trigger, event) {
        (Trigger::StatusChanged { to }, TaskEvent::StatusChanged(changed)) => changed.to == *to,
        (Trigger::Created { label }, TaskEvent::Created(created)) => label
            .as_ref()
            .is_none_or(|label| created.labels.contains(label)),
        _ => false,
    }
}

/// A string of an action with the triggering task's `{{task.title}}`,
/// `{{task.key}}` and `{{task.id}}` filled in.
pub fn render(text: &str, task: &Task, id: TaskId) -> String {
    text.replace("{{task.title}}", &task.title)
        .replace("{{task.key}}", &task.key)
        .replace("{{task.id}}", &id.to_string())
}

/// One step as the execution knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    pub status: StepStatus,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Execution {
    pub started: bool,
    pub automation_id: Option<AutomationId>,
    pub project_id: Option<ProjectId>,
    pub task_id: Option<TaskId>,
    pub trigger_event_id: Option<EventId>,
    pub depth: u32,
    pub chain: Vec<AutomationId>,
    pub steps: Vec<Step>,
    /// Set once it ended.
    pub finished: Option<StepStatus>,
    pub started_at: Option<DateTime<Utc>>,
}

impl Aggregate for Execution {
    const KIND: &'static str = "automation_execution";
    type Event = ExecutionEvent;

    fn evolve(&mut self, event: &ExecutionEvent, applied: &Applied) {
        match event {
            ExecutionEvent::Started(started) => {
                self.started = true;
                self.automation_id = Some(started.automation_id);
                self.project_id = Some(started.project_id);
                self.task_id = Some(started.task_id);
                self.trigger_event_id = Some(started.trigger_event_id);
                self.depth = started.depth;
                self.chain = started.chain.clone();
                self.steps = started
                    .steps
                    .iter()
                    .map(|action| Step {
                        action: action.clone(),
                        status: StepStatus::Pending,
                        error: None,
                    })
                    .collect();
                self.started_at = Some(applied.occurred_at);
            }
            ExecutionEvent::StepStatusChanged(changed) => {
                if let Some(step) = self.steps.get_mut(changed.step as usize) {
                    step.status = changed.to;
                    step.error = changed.error.clone();
                }
            }
            ExecutionEvent::Finished(finished) => self.finished = Some(finished.status),
        }
    }
}

/// What starts an execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    pub automation_id: AutomationId,
    pub project_id: ProjectId,
    pub task_id: TaskId,
    pub trigger_event_id: EventId,
    pub trigger_event_type: String,
    pub depth: u32,
    pub chain: Vec<AutomationId>,
    pub steps: Vec<Action>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExecutionError {
    #[error("the execution has not started")]
    NotStarted,
    #[error("the execution has no step {0}")]
    NoSuchStep(u32),
    #[error("step {step} cannot move from {from} to {to}", from = .from.as_str(), to = .to.as_str())]
    InvalidStep {
        step: u32,
        from: StepStatus,
        to: StepStatus,
    },
    #[error("the execution has steps still to run")]
    Unfinished,
}

/// Starts an execution; one that started already (an earlier attempt)
/// is left as it is, to be resumed.
pub fn start(execution: &Execution, start: Start) -> Vec<ExecutionEvent> {
    if execution.started {
        return Vec::new();
    }
    vec![ExecutionEvent::Started(ExecutionStarted {
        automation_id: start.automation_id,
        project_id: start.project_id,
        task_id: start.task_id,
        trigger_event_id: start.trigger_event_id,
        trigger_event_type: start.trigger_event_type,
        depth: start.depth,
        chain: start.chain,
        steps: start.steps,
    })]
}

/// Moves step `index` to `to`; nothing if it is there already (a second
/// attempt), refused if the move goes backwards.
pub fn step(
    execution: &Execution,
    index: u32,
    to: StepStatus,
    error: Option<String>,
    result: Option<serde_json::Value>,
) -> Result<Vec<ExecutionEvent>, ExecutionError> {
    let (Some(automation_id), true) = (execution.automation_id, execution.started) else {
        return Err(ExecutionError::NotStarted);
    };
    let current = execution
        .steps
        .get(index as usize)
        .ok_or(ExecutionError::NoSuchStep(index))?;
    if current.status == to {
        return Ok(Vec::new());
    }
    if !current.status.can_become(to) {
        return Err(ExecutionError::InvalidStep {
            step: index,
            from: current.status,
            to,
        });
    }
    Ok(vec![ExecutionEvent::StepStatusChanged(StepStatusChanged {
        automation_id,
        step: index,
        from: current.status,
        to,
        error,
        result,
    })])
}

/// Ends an execution whose steps all ended: failed if one failed (with its
/// error), skipped if all were skipped, succeeded otherwise.
pub fn finish(execution: &Execution) -> Result<Vec<ExecutionEvent>, ExecutionError> {
    let Some(automation_id) = execution.automation_id else {
        return Err(ExecutionError::NotStarted);
    };
    if execution.finished.is_some() {
        return Ok(Vec::new());
    }
    if execution.steps.iter().any(|step| !step.status.is_final()) {
        return Err(ExecutionError::Unfinished);
    }
    let failed = execution
        .steps
        .iter()
        .enumerate()
        .find(|(_, step)| step.status == StepStatus::Failed);
    let all_skipped = execution
        .steps
        .iter()
        .all(|step| step.status == StepStatus::Skipped);
    let (status, error) = match failed {
        Some((index, step)) => (
            StepStatus::Failed,
            Some(format!(
                "step {index} ({}) failed: {}",
                step.action.kind(),
                step.error.as_deref().unwrap_or("no reason given")
            )),
        ),
        None if all_skipped && !execution.steps.is_empty() => (
            StepStatus::Skipped,
            execution.steps.first().and_then(|step| step.error.clone()),
        ),
        None => (StepStatus::Succeeded, None),
    };
    Ok(vec![ExecutionEvent::Finished(ExecutionFinished {
        automation_id,
        status,
        error,
    })])
}

/// What an execution does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Run step `index` (pending, or running when an earlier attempt
    /// stopped in it).
    Run(u32),
    /// Skip step `index`, saying why.
    Skip(u32, String),
    /// Every step ended: record the outcome.
    Finish,
    /// It ended.
    Done,
}

/// The next thing to do in `execution`: steps in order; after a failed
/// one (or in a chain too deep) the rest are skipped.
pub fn next(execution: &Execution) -> Next {
    if execution.finished.is_some() || !execution.started {
        return Next::Done;
    }
    let mut failed = false;
    for (index, step) in execution.steps.iter().enumerate() {
        let index = index as u32;
        match step.status {
            StepStatus::Failed => failed = true,
            StepStatus::Succeeded | StepStatus::Skipped => {}
            StepStatus::Pending | StepStatus::Running => {
                if execution.depth > MAX_DEPTH {
                    return Next::Skip(
                        index,
                        format!("the chain of automations reached its depth limit ({MAX_DEPTH})"),
                    );
                }
                if failed {
                    return Next::Skip(index, "an earlier step failed".to_owned());
                }
                return Next::Run(index);
            }
        }
    }
    Next::Finish
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automation::aggregate::{NewAutomation, create};
    use crate::project::aggregate::Project;
    use crate::testing::given;
    use tenet_events::catalogue::automation::AutomationEvent;
    use tenet_events::catalogue::project::{ProjectCreated, ProjectEvent};
    use tenet_events::catalogue::task::{Priority, TaskCreated, TaskStatus, TaskStatusChanged};

    fn project_id() -> ProjectId {
        ProjectId::from_uuid(uuid::Uuid::from_u128(7))
    }

    fn automation_id(n: u128) -> AutomationId {
        AutomationId::from_uuid(uuid::Uuid::from_u128(n))
    }

    /// An automation of the project, given its trigger and whether it is on.
    fn automation(trigger: Trigger, enabled: bool) -> Automation {
        let project: Project = given([ProjectEvent::Created(ProjectCreated {
            name: "Web".into(),
            slug: "web".into(),
            description: String::new(),
            key: "WEB".into(),
        })]);
        let events: Vec<AutomationEvent> = create(
            &Automation::default(),
            &project,
            NewAutomation {
                project_id: project_id(),
                name: "Rule".into(),
                trigger,
                actions: vec![
                    Action::AddLabel {
                        label: "shipped".into(),
                    },
                    Action::Comment {
                        body: "Done: {{task.key}}".into(),
                    },
                ],
                enabled,
            },
        )
        .unwrap();
        given(events)
    }

    fn done() -> Trigger {
        Trigger::StatusChanged {
            to: TaskStatus::Done,
        }
    }

    fn moved(to: TaskStatus) -> TaskEvent {
        TaskEvent::StatusChanged(TaskStatusChanged {
            project_id: project_id(),
            from: TaskStatus::InReview,
            to,
        })
    }

    fn created_with(labels: &[&str]) -> TaskEvent {
        TaskEvent::Created(TaskCreated {
            project_id: project_id(),
            number: 1,
            key: "WEB-1".into(),
            title: "Crash".into(),
            description: String::new(),
            priority: Priority::Medium,
            assignee_id: None,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            due_date: None,
        })
    }

    fn person() -> Origin {
        Origin::default()
    }

    #[test]
    fn a_status_trigger_runs_on_that_status_only() {
        let rule = automation(done(), true);
        assert_eq!(
            evaluate(
                &rule,
                automation_id(1),
                project_id(),
                &moved(TaskStatus::Done),
                &person()
            ),
            Verdict::Run {
                depth: 1,
                chain: vec![automation_id(1)]
            }
        );
        assert_eq!(
            evaluate(
                &rule,
                automation_id(1),
                project_id(),
                &moved(TaskStatus::Cancelled),
                &person()
            ),
            Verdict::Ignore
        );
        assert_eq!(
            evaluate(
                &rule,
                automation_id(1),
                project_id(),
                &created_with(&[]),
                &person()
            ),
            Verdict::Ignore
        );
    }

    #[test]
    fn a_creation_trigger_with_a_label_needs_the_label() {
        let rule = automation(
            Trigger::Created {
                label: Some("bug".into()),
            },
            true,
        );
        let id = automation_id(1);
        assert!(matches!(
            evaluate(
                &rule,
                id,
                project_id(),
                &created_with(&["ui", "bug"]),
                &person()
            ),
            Verdict::Run { .. }
        ));
        assert_eq!(
            evaluate(&rule, id, project_id(), &created_with(&["ui"]), &person()),
            Verdict::Ignore
        );
        let any = automation(Trigger::Created { label: None }, true);
        assert!(matches!(
            evaluate(&any, id, project_id(), &created_with(&[]), &person()),
            Verdict::Run { .. }
        ));
    }

    #[test]
    fn a_disabled_automation_or_another_project_is_not_triggered() {
        let off = automation(done(), false);
        let event = moved(TaskStatus::Done);
        assert_eq!(
            evaluate(&off, automation_id(1), project_id(), &event, &person()),
            Verdict::Ignore
        );
        let on = automation(done(), true);
        let elsewhere = ProjectId::from_uuid(uuid::Uuid::from_u128(8));
        assert_eq!(
            evaluate(&on, automation_id(1), elsewhere, &event, &person()),
            Verdict::Ignore
        );
    }

    #[test]
    fn an_automation_is_never_triggered_by_its_own_changes_even_through_others() {
        let rule = automation(done(), true);
        let event = moved(TaskStatus::Done);
        let own = Origin {
            depth: 1,
            chain: vec![automation_id(1)],
        };
        assert_eq!(
            evaluate(&rule, automation_id(1), project_id(), &event, &own),
            Verdict::Ignore
        );
        let through_another = Origin {
            depth: 2,
            chain: vec![automation_id(1), automation_id(2)],
        };
        assert_eq!(
            evaluate(
                &rule,
                automation_id(1),
                project_id(),
                &event,
                &through_another
            ),
            Verdict::Ignore
        );
    }

    #[test]
    fn a_chain_runs_up_to_the_depth_limit_then_is_skipped() {
        let rule = automation(done(), true);
        let event = moved(TaskStatus::Done);
        let chain: Vec<AutomationId> = (2..2 + MAX_DEPTH as u128).map(automation_id).collect();
        let below = Origin {
            depth: MAX_DEPTH - 1,
            chain: chain[..MAX_DEPTH as usize - 1].to_vec(),
        };
        assert!(matches!(
            evaluate(&rule, automation_id(1), project_id(), &event, &below),
            Verdict::Run { depth, .. } if depth == MAX_DEPTH
        ));
        let at_limit = Origin {
            depth: MAX_DEPTH,
            chain,
        };
        assert!(matches!(
            evaluate(&rule, automation_id(1), project_id(), &event, &at_limit),
            Verdict::TooDeep { depth, .. } if depth == MAX_DEPTH + 1
        ));
    }

    fn started(depth: u32) -> Vec<ExecutionEvent> {
        start(
            &Execution::default(),
            Start {
                automation_id: automation_id(1),
                project_id: project_id(),
                task_id: TaskId::from_uuid(uuid::Uuid::from_u128(3)),
                trigger_event_id: EventId::from_uuid(uuid::Uuid::from_u128(4)),
                trigger_event_type: "task.status_changed".into(),
                depth,
                chain: vec![automation_id(1)],
                steps: vec![
                    Action::AddLabel {
                        label: "shipped".into(),
                    },
                    Action::Transition {
                        to: TaskStatus::Todo,
                    },
                ],
            },
        )
    }

    /// The execution after `events`, applied one by one.
    fn run(events: Vec<ExecutionEvent>) -> Execution {
        given(events)
    }

    #[test]
    fn an_execution_runs_its_steps_in_order_and_then_finishes_succeeded() {
        let mut events = started(1);
        let mut execution = run(events.clone());
        assert_eq!(next(&execution), Next::Run(0));
        for (index, to) in [
            (0, StepStatus::Running),
            (0, StepStatus::Succeeded),
            (1, StepStatus::Running),
            (1, StepStatus::Succeeded),
        ] {
            events.extend(step(&execution, index, to, None, None).unwrap());
            execution = run(events.clone());
        }
        assert_eq!(next(&execution), Next::Finish);
        let finished = finish(&execution).unwrap();
        assert!(matches!(
            &finished[..],
            [ExecutionEvent::Finished(ExecutionFinished {
                status: StepStatus::Succeeded,
                error: None,
                ..
            })]
        ));
        events.extend(finished);
        assert_eq!(next(&run(events)), Next::Done);
    }

    #[test]
    fn a_failed_step_skips_the_rest_and_the_execution_says_why() {
        let mut events = started(1);
        let execution = run(events.clone());
        events.extend(step(&execution, 0, StepStatus::Running, None, None).unwrap());
        let execution = run(events.clone());
        events.extend(
            step(
                &execution,
                0,
                StepStatus::Failed,
                Some("the assignee is not a member of this workspace".into()),
                None,
            )
            .unwrap(),
        );
        let execution = run(events.clone());
        assert_eq!(
            next(&execution),
            Next::Skip(1, "an earlier step failed".into())
        );
        events.extend(
            step(
                &execution,
                1,
                StepStatus::Skipped,
                Some("an earlier step failed".into()),
                None,
            )
            .unwrap(),
        );
        let execution = run(events);
        let [ExecutionEvent::Finished(finished)] = &finish(&execution).unwrap()[..] else {
            panic!("one finish");
        };
        assert_eq!(finished.status, StepStatus::Failed);
        assert_eq!(
            finished.error.as_deref(),
            Some("step 0 (add_label) failed: the assignee is not a member of this workspace")
        );
    }

    #[test]
    fn a_second_attempt_changes_nothing_and_steps_never_go_back() {
        let events = started(1);
        let execution = run(events.clone());
        assert_eq!(
            start(
                &execution,
                Start {
                    automation_id: automation_id(1),
                    project_id: project_id(),
                    task_id: TaskId::from_uuid(uuid::Uuid::nil()),
                    trigger_event_id: EventId::from_uuid(uuid::Uuid::nil()),
                    trigger_event_type: String::new(),
                    depth: 1,
                    chain: vec![],
                    steps: vec![],
                }
            ),
            vec![]
        );
        let mut more = events.clone();
        more.extend(step(&execution, 0, StepStatus::Running, None, None).unwrap());
        let running = run(more);
        assert_eq!(
            step(&running, 0, StepStatus::Running, None, None),
            Ok(vec![])
        );
        assert_eq!(next(&running), Next::Run(0));
        assert_eq!(
            step(&running, 0, StepStatus::Pending, None, None),
            Err(ExecutionError::InvalidStep {
                step: 0,
                from: StepStatus::Running,
                to: StepStatus::Pending
            })
        );
        assert_eq!(finish(&running), Err(ExecutionError::Unfinished));
    }

    #[test]
    fn a_chain_too_deep_skips_every_step() {
        let execution = run(started(MAX_DEPTH + 1));
        assert!(
            matches!(next(&execution), Next::Skip(0, reason) if reason.contains("depth limit"))
        );
    }

    #[test]
    fn ids_follow_from_what_they_name() {
        let event = EventId::from_uuid(uuid::Uuid::from_u128(4));
        assert_eq!(
            execution_id(automation_id(1), event),
            execution_id(automation_id(1), event)
        );
        assert_ne!(
            execution_id(automation_id(1), event),
            execution_id(automation_id(2), event)
        );
        let execution = execution_id(automation_id(1), event);
        assert_ne!(made_by_step(execution, 0), made_by_step(execution, 1));
        assert_eq!(
            automation_of(&actor_name(automation_id(9))),
            Some(automation_id(9))
        );
        assert_eq!(automation_of("unassign-departed-members"), None);
    }

    #[test]
    fn strings_name_the_triggering_task() {
        let task: Task = given([created_with(&[])]);
        let id = TaskId::from_uuid(uuid::Uuid::from_u128(3));
        assert_eq!(
            render(
                "Review {{task.key}}: {{task.title}} ({{task.id}})",
                &task,
                id
            ),
            format!("Review WEB-1: Crash ({id})")
        );
    }
}
