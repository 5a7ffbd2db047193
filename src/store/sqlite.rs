//! The embedded engine: one SQLite file in WAL mode. Writers take the lock up front with
//! `BEGIN IMMEDIATE`, so concurrent writers wait on the busy timeout instead of failing mid-transaction.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite, Transaction};
use std::str::FromStr;
use std::time::Duration;

type Db = Sqlite;
type This = SqliteStore;
const ENGINE: &str = "sqlite";

pub struct SqliteStore {
    pool: Pool<Sqlite>,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed release of bytes must survive power loss before the sweeper acts on it.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

async fn begin_write(pool: &Pool<Sqlite>) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

fn push_has_tag<'a>(qb: &mut sqlx::QueryBuilder<'a, Sqlite>, tag: &'a str) {
    qb.push("EXISTS (SELECT 1 FROM json_each(f.tags) t WHERE t.value = ")
        .push_bind(tag)
        .push(")");
}

/// Row locking for claims; SQLite already serializes writers.
const CLAIM_LOCK: &str = "";

include!("sql_common.rs");
