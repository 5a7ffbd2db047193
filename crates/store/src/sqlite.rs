//! The embedded engine: one SQLite file in WAL mode.
//!
//! Writers of this process take turns on an async, first-come-first-served lock before they
//! touch the file (`begin_write`, `writer`). SQLite's own busy handler polls with sleeps that
//! grow to 100 ms and favours whoever retries at the right moment, so under load an API write
//! could wait behind many engine writes; the lock hands the file over as soon as it is free.
//! Transactions still start with `BEGIN IMMEDIATE` and keep the busy timeout, for writers in
//! other processes (`egress admin`).
//!
//! Two pools share the file. What users are told is done (uploads, deletes, submissions) and the
//! sweeper's marking of doomed blobs commit with `synchronous=FULL`. The engine's own bookkeeping
//! (claims, leases, progress, job ends) commits with `NORMAL`: after a power loss it may roll back,
//! and the job then simply runs again. Because a FULL commit syncs the whole WAL, every earlier
//! commit is durable before the sweeper deletes any bytes a commit released (invariant 1).
//!
//! The engine's pool is one connection. Its writes are taken in turn anyway, and SQLite drops a
//! connection's whole page cache whenever another connection has written: with one connection
//! the engine's own claims and commits leave its cache warm, so its reads and writes find their
//! pages in memory instead of reading them back from the log.

use crate::sql::{Builder, Commit, Engine, SqlDb, SqlStore};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};
use sqlx::Connection;
use sqlx::{Pool, Sqlite, Transaction};
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard};

pub type SqliteStore = SqlStore<SqliteEngine>;

pub struct SqliteEngine {
    /// Held by whoever writes; fair, so writers go in the order they came.
    write_turn: Arc<Mutex<()>>,
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
        // The file, its WAL mode and its schema come first, on one connection: connections
        // opening a new file together would race to switch its journal mode.
        let mut first = SqliteConnection::connect_with(&options).await?;
        sqlx::migrate!("migrations/sqlite").run(&mut first).await?;
        first.close().await?;
        let pool = pool_options(8).connect_with(options.clone()).await?;
        let jobs_pool = pool_options(1)
            .connect_with(options.synchronous(SqliteSynchronous::Normal))
            .await?;
        let engine = SqliteEngine {
            write_turn: Arc::new(Mutex::new(())),
        };
        Ok(SqlStore::new(pool, jobs_pool, engine))
    }
}

impl Engine for SqliteEngine {
    type Db = Sqlite;
    type Tx = Writing<Transaction<'static, Sqlite>>;
    type Writer = Writing<PoolConnection<Sqlite>>;

    const NAME: &'static str = "sqlite";
    /// SQLite already serializes writers.
    const CLAIM_LOCK: &'static str = "";
    const PARENT_LOCK: &'static str = "";
    const ROW_LOCK: &'static str = "";
    /// The unfinished-moves index, named: with a long `IN` list of file ids, SQLite's planner
    /// (which has no statistics) prefers the state index and walks every pending job.
    const MOVES_INDEX: &'static str = " INDEXED BY exports_unfinished_moves";

    /// A write transaction, begun once this process's earlier writers are done.
    async fn begin_write(&self, pool: &Pool<Sqlite>) -> Result<Self::Tx, sqlx::Error> {
        let turn = self.write_turn.clone().lock_owned().await;
        let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Writing {
            inner: tx,
            _turn: turn,
        })
    }

    /// A connection for one writing statement, handed out in turn like `begin_write`.
    async fn writer(&self, pool: &Pool<Sqlite>) -> Result<Self::Writer, sqlx::Error> {
        let turn = self.write_turn.clone().lock_owned().await;
        let conn = pool.acquire().await?;
        Ok(Writing {
            inner: conn,
            _turn: turn,
        })
    }

    fn push_has_tag<'q>(qb: &mut Builder<'q, Sqlite>, column: &'static str, tag: &'q str) {
        qb.push("EXISTS (SELECT 1 FROM json_each(")
            .push(column)
            .push(") t WHERE t.value = ")
            .push_bind(tag)
            .push(")");
    }

    fn push_has_metadata<'q>(qb: &mut Builder<'q, Sqlite>, key: &'q str, value: &'q str) {
        qb.push("EXISTS (SELECT 1 FROM json_each(f.metadata) m WHERE m.key = ")
            .push_bind(key)
            .push(" AND m.type = 'text' AND m.value = ")
            .push_bind(value)
            .push(")");
    }

    /// A passive checkpoint: it copies what no reader still needs and never blocks writers.
    async fn checkpoint(pool: &Pool<Sqlite>) -> Result<(), sqlx::Error> {
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(pool)
            .await?;
        Ok(())
    }
}

impl SqlDb for Sqlite {
    fn shorten<'long: 'short, 'short>(args: SqliteArguments<'long>) -> SqliteArguments<'short> {
        args
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}

/// A transaction or connection that holds the write turn until it is dropped.
pub struct Writing<T> {
    inner: T,
    _turn: OwnedMutexGuard<()>,
}

impl Commit for Writing<Transaction<'static, Sqlite>> {
    async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }
}

impl<T: DerefMut<Target = SqliteConnection>> Deref for Writing<T> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.inner
    }
}

impl<T: DerefMut<Target = SqliteConnection>> DerefMut for Writing<T> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.inner
    }
}

/// Every connection is opened here, at start-up, and kept: each has a thread of its own, which
/// takes the priority of the thread that opened it, and a connection opened by a background
/// task would serve API requests at the background's lower priority (`background.rs`). A
/// connection to a local file does not go stale, so sqlx's ping before each use is skipped too.
fn pool_options(connections: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .min_connections(connections)
        .max_connections(connections)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
}
