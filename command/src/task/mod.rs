//! Tasks: the work itself, numbered per project, moved through a workflow.

pub mod aggregate;
pub mod policy;
pub mod routes;
