//! Project templates: versioned blueprints of a project and its tasks,
//! and their instantiation as one atomic append.

pub mod aggregate;
pub mod routes;
