//! The shared engine: several `egress serve` nodes point at one Postgres and split the work.

use crate::sql::{Builder, Commit, Engine, SqlDb, SqlStore};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgPoolOptions, PgQueryResult};
use sqlx::{Pool, Postgres, Transaction};

pub type PostgresStore = SqlStore<PostgresEngine>;

pub struct PostgresEngine;

impl PostgresStore {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        // One pool for both: Postgres commits are durable either way.
        Ok(SqlStore::new(pool.clone(), pool, PostgresEngine))
    }
}

impl Engine for PostgresEngine {
    type Db = Postgres;
    type Tx = Transaction<'static, Postgres>;
    type Writer = PoolConnection<Postgres>;

    const NAME: &'static str = "postgres";
    /// Row locking for claims: nodes skip the jobs another is claiming.
    const CLAIM_LOCK: &'static str = " FOR UPDATE SKIP LOCKED";
    /// The folder a file is committed into cannot be deleted until the commit.
    const PARENT_LOCK: &'static str = " FOR KEY SHARE";
    /// Row locking for the rows a transaction is about to change (a group commit's jobs...).
    const ROW_LOCK: &'static str = " FOR UPDATE";
    /// Postgres picks the unfinished-moves index by itself.
    const MOVES_INDEX: &'static str = "";

    /// Postgres orders concurrent writers itself, with row locks.
    async fn begin_write(&self, pool: &Pool<Postgres>) -> Result<Self::Tx, sqlx::Error> {
        pool.begin().await
    }

    async fn writer(&self, pool: &Pool<Postgres>) -> Result<Self::Writer, sqlx::Error> {
        pool.acquire().await
    }

    fn push_has_tag<'q>(qb: &mut Builder<'q, Postgres>, column: &'static str, tag: &'q str) {
        qb.push(column)
            .push(" @> jsonb_build_array(CAST(")
            .push_bind(tag)
            .push(" AS TEXT))");
    }

    fn push_has_metadata<'q>(qb: &mut Builder<'q, Postgres>, key: &'q str, value: &'q str) {
        qb.push("f.metadata @> jsonb_build_object(CAST(")
            .push_bind(key)
            .push(" AS TEXT), CAST(")
            .push_bind(value)
            .push(" AS TEXT))");
    }

    /// Postgres checkpoints on its own.
    async fn checkpoint(_pool: &Pool<Postgres>) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl SqlDb for Postgres {
    fn shorten<'long: 'short, 'short>(args: PgArguments) -> PgArguments {
        args
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}

impl Commit for Transaction<'static, Postgres> {
    async fn commit(self) -> Result<(), sqlx::Error> {
        Transaction::commit(self).await
    }
}
