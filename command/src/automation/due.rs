//! The due-date clock's aggregate: that an open task's due date passed,
//! recorded once per task and due date on a stream whose id follows from
//! the two ([`due_date_stream`]), so however many instances notice it, it
//! is one fact, and the task's own stream is left alone.

use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use tenet_events::catalogue::automation::{DueDateEvent, DueDatePassed};
use tenet_events::ids::{ProjectId, StreamId, TaskId};

use crate::repository::{Aggregate, Applied};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DueDate {
    pub passed: bool,
}

impl Aggregate for DueDate {
    const KIND: &'static str = "task_due_date";
    type Event = DueDateEvent;

    fn evolve(&mut self, event: &DueDateEvent, _applied: &Applied) {
        match event {
            DueDateEvent::Passed(_) => self.passed = true,
        }
    }
}

/// The stream of `task`'s due date `due`.
pub fn due_date_stream(task: TaskId, due: NaiveDate) -> StreamId {
    let mut hash = Sha256::new();
    hash.update(task.as_uuid().as_bytes());
    hash.update(due.to_string().as_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    StreamId::from_uuid(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

/// Records that `task`'s due date `due` passed, once.
pub fn pass(
    state: &DueDate,
    task: TaskId,
    project: ProjectId,
    due: NaiveDate,
) -> Vec<DueDateEvent> {
    if state.passed {
        return Vec::new();
    }
    vec![DueDateEvent::Passed(DueDatePassed {
        task_id: task,
        project_id: project,
        due_date: due,
    })]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    #[test]
    fn a_due_date_passes_once_per_task_and_date() {
        let task = TaskId::from_uuid(uuid::Uuid::from_u128(3));
        let project = ProjectId::from_uuid(uuid::Uuid::from_u128(7));
        let due = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
        let events = pass(&DueDate::default(), task, project, due);
        assert_eq!(events.len(), 1);
        let passed: DueDate = given(events);
        assert_eq!(pass(&passed, task, project, due), vec![]);
        let later = NaiveDate::from_ymd_opt(2027, 2, 1).unwrap();
        assert_eq!(due_date_stream(task, due), due_date_stream(task, due));
        assert_ne!(due_date_stream(task, due), due_date_stream(task, later));
    }
}
