//! The shared engine: several `egress serve` nodes point at one Postgres and split the work.

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPoolOptions};
use sqlx::{Pool, Postgres, Transaction};

type Db = Postgres;
type Conn = PgConnection;
type This = PostgresStore;
const ENGINE: &str = "postgres";

pub struct PostgresStore {
    pool: Pool<Postgres>,
    /// The same pool: Postgres commits are durable either way.
    jobs_pool: Pool<Postgres>,
}

impl PostgresStore {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self {
            jobs_pool: pool.clone(),
            pool,
        })
    }

    /// Postgres orders concurrent writers itself, with row locks.
    async fn begin_write(
        &self,
        pool: &Pool<Postgres>,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        pool.begin().await
    }

    async fn writer(&self, pool: &Pool<Postgres>) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        pool.acquire().await
    }
}

fn push_has_tag<'a>(qb: &mut sqlx::QueryBuilder<'a, Postgres>, tag: &'a str) {
    qb.push("f.tags @> jsonb_build_array(CAST(")
        .push_bind(tag)
        .push(" AS TEXT))");
}

/// Postgres checkpoints on its own.
async fn checkpoint(_pool: &Pool<Postgres>) -> Result<(), sqlx::Error> {
    Ok(())
}

/// Row locking for claims; SQLite already serializes writers.
const CLAIM_LOCK: &str = " FOR UPDATE SKIP LOCKED";

/// Locking of the folder a file is committed into: it cannot be deleted until the commit.
const PARENT_LOCK: &str = " FOR KEY SHARE";

/// Row locking for a group commit's jobs.
const ROW_LOCK: &str = " FOR UPDATE";

/// Postgres picks the unfinished-moves index by itself.
const MOVES_INDEX: &str = "";

/// The SQL both engines share, compiled here for Postgres (and in the other engine's file for it).
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;
