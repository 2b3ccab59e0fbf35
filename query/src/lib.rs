//! The read side: query endpoints over the read models, with
//! read-your-writes through consistency tokens.
//!
//! Every query is scoped by tenant and reads the active generation of its
//! read model, through the typed read functions of `tenet_projections`
//! (this crate spells no table name); nothing here writes. Only the audit
//! log and history read the event log itself. The [`realtime`] feed pushes the
//! same rows over WebSockets as they change.

pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod automations;
pub mod feature_flags;
pub mod history;
pub mod me;
pub mod members;
pub mod projects;
pub mod realtime;
pub mod rebuilds;
pub mod responses;
pub mod search;
pub mod state;
pub mod tasks;
pub mod workspaces;

use utoipa_axum::router::OpenApiRouter;

pub use state::QueryState;

/// Every read route, with its OpenAPI description.
pub fn router(state: QueryState) -> OpenApiRouter {
    OpenApiRouter::new()
        .merge(me::router())
        .merge(workspaces::router())
        .merge(projects::router())
        .merge(tasks::router())
        .merge(automations::router())
        .merge(members::router())
        .merge(api_keys::router())
        .merge(admin::router())
        .merge(audit::router())
        .merge(history::router())
        .merge(rebuilds::router())
        .merge(feature_flags::router())
        .with_state(state)
}
