//! The supervisor of one projection: a runner per generation that needs one.

use std::sync::Arc;
use std::time::Duration;

use tenet_events::projection::Projector;
use tokio_util::sync::CancellationToken;

use crate::checkpoints::{self, Status};

use super::{Runner, Runtime, RuntimeError, pause};

/// Keeps a runner going for each generation of one projection that needs
/// one, and removes the rows of retired generations.
pub struct Supervisor {
    pub runtime: Runtime,
    pub projector: Arc<dyn Projector>,
    /// Run only rebuilds: the active generation is applied elsewhere (by
    /// the store, for an inline projection; by the deployment, for the CLI).
    pub rebuilds_only: bool,
}

/// How often a supervisor looks for generations to run or retire.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);

impl Supervisor {
    pub async fn run(self, shutdown: CancellationToken) {
        let name = self.projector.name();
        let mut running: std::collections::HashMap<i32, tokio::task::JoinHandle<()>> =
            std::collections::HashMap::new();
        while !shutdown.is_cancelled() {
            running.retain(|_, runner| !runner.is_finished());
            match checkpoints::generations(&self.runtime.db, name).await {
                Ok(generations) => {
                    for (generation, status) in generations {
                        let wanted = match status {
                            Status::Rebuilding => true,
                            Status::Live | Status::Failed => !self.rebuilds_only,
                            Status::Retired => {
                                if let Err(error) = self.retire(generation).await {
                                    tracing::warn!(projection = name, generation, %error, "cannot remove a retired generation");
                                }
                                false
                            }
                        };
                        if wanted && !running.contains_key(&generation) {
                            let runner = Runner {
                                runtime: self.runtime.clone(),
                                projector: self.projector.clone(),
                                generation,
                            };
                            running.insert(generation, tokio::spawn(runner.run(shutdown.clone())));
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(projection = name, %error, "cannot read projection generations")
                }
            }
            pause(&shutdown, SUPERVISE_EVERY).await;
        }
        for (_, runner) in running {
            let _ = runner.await;
        }
    }

    /// Deletes a retired generation's rows, then its checkpoint.
    async fn retire(&self, generation: i32) -> Result<(), RuntimeError> {
        let mut tx = self.runtime.db.begin().await?;
        self.projector.clear(&mut tx, generation).await?;
        checkpoints::remove_retired(&mut tx, self.projector.name(), generation).await?;
        tx.commit().await?;
        tracing::info!(
            projection = self.projector.name(),
            generation,
            "retired generation removed"
        );
        // A rebuild rewrote every row of the projection and deleted as
        // many: the planner's statistics describe neither. Refreshed now
        // rather than at autovacuum's next round, so no cached plan is
        // made on them meanwhile.
        if let tenet_events::db::Db::Postgres(pool) = &self.runtime.db
            && let Err(error) = sqlx::raw_sql("ANALYZE").execute(pool).await
        {
            tracing::warn!(%error, "cannot analyze after a rebuild");
        }
        Ok(())
    }
}
