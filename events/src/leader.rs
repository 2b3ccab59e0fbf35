//! Leader election among processes sharing one Postgres database.
//!
//! A session advisory lock held on a dedicated connection: it is released
//! when the holder closes it or its connection dies, so a crashed leader is
//! replaced without any timeout to tune. Leadership is an efficiency
//! measure (one relay, one applier per projection); correctness never rests
//! on it alone: relayed duplicates are dropped by message id and projector
//! checkpoints advance with a compare-and-set.

use sqlx::{Connection, PgConnection, PgPool};

pub struct Leadership {
    connection: PgConnection,
}

impl Leadership {
    /// Takes the lock named `key` if no other session holds it.
    pub async fn try_acquire(pool: &PgPool, key: &str) -> Result<Option<Leadership>, sqlx::Error> {
        let mut connection = PgConnection::connect_with(&pool.connect_options()).await?;
        let elected: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(key)
                .fetch_one(&mut connection)
                .await?;
        if elected {
            Ok(Some(Leadership { connection }))
        } else {
            connection.close().await?;
            Ok(None)
        }
    }

    /// The connection holding the lock. Writes made through it fail once
    /// the lock is lost with the connection.
    pub fn connection(&mut self) -> &mut PgConnection {
        &mut self.connection
    }

    /// Fails if the connection (and with it the lock) is gone.
    pub async fn confirm(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&mut self.connection)
            .await
            .map(drop)
    }

    pub async fn release(self) -> Result<(), sqlx::Error> {
        self.connection.close().await
    }
}
