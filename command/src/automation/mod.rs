//! Automations: a project's rules ("when a task is done, create its
//! follow-up"), the executions that run them, and the policy on the log
//! that starts executions from task events.

pub mod aggregate;
pub mod execution;
pub mod policy;
pub mod routes;
