//! The embedded engine: one SQLite file in WAL mode. Writers take the lock up front with
//! `BEGIN IMMEDIATE`, so concurrent writers wait on the busy timeout instead of failing mid-transaction.
//!
//! Two pools share the file. What users are told is done (uploads, deletes, submissions) and the
//! sweeper's marking of doomed blobs commit with `synchronous=FULL`. The engine's own bookkeeping
//! (claims, leases, progress, job ends) commits with `NORMAL`: after a power loss it may roll back,
//! and the job then simply runs again. Because a FULL commit syncs the whole WAL, every earlier
//! commit is durable before the sweeper deletes any bytes a commit released (invariant 1).

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite, Transaction};
use std::str::FromStr;
use std::time::Duration;

type Db = Sqlite;
type This = SqliteStore;
const ENGINE: &str = "sqlite";

pub struct SqliteStore {
    pool: Pool<Sqlite>,
    jobs_pool: Pool<Sqlite>,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            // The server checkpoints in the background (`Store::checkpoint`); a commit that
            // finds the log this long (about 40 MB) still checkpoints itself as a backstop.
            .pragma("wal_autocheckpoint", "10000");
        // A connection to a local file does not go stale: the ping sqlx sends before handing one
        // out would only add a round trip to the connection's thread to every query.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        let jobs_pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.synchronous(SqliteSynchronous::Normal))
            .await?;
        Ok(Self { pool, jobs_pool })
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

/// A passive checkpoint: it copies what no reader still needs and never blocks writers.
async fn checkpoint(pool: &Pool<Sqlite>) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(pool)
        .await?;
    Ok(())
}

/// Row locking for claims; SQLite already serializes writers.
const CLAIM_LOCK: &str = "";

/// Row locking for the jobs of a group commit; SQLite already serializes writers.
const ROW_LOCK: &str = "";

include!("sql_common.rs");
