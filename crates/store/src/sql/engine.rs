//! What differs between the engines, and the store that runs the shared SQL on one of them.

use super::db::{Builder, SqlDb};
use sqlx::{Database, Pool};
use std::future::Future;
use std::ops::DerefMut;

/// A connection of an engine's database.
pub type Conn<E> = <<E as Engine>::Db as Database>::Connection;

/// One engine: its database, how it writes, and its SQL where the engines' dialects differ.
/// `sqlite.rs` and `postgres.rs` implement it.
pub trait Engine: Send + Sync + 'static {
    type Db: SqlDb;
    /// A write transaction.
    type Tx: Commit + DerefMut<Target = Conn<Self>> + Send;
    /// A connection for one writing statement.
    type Writer: DerefMut<Target = Conn<Self>> + Send;

    /// The engine's name, as `Store::engine` reports it.
    const NAME: &'static str;
    /// Appended to the pick of a claim: row locking, where the engine needs it.
    const CLAIM_LOCK: &'static str;
    /// Appended to the look-up of the folder a file is committed into.
    const PARENT_LOCK: &'static str;
    /// Appended to the look-up of rows a transaction is about to change.
    const ROW_LOCK: &'static str;
    /// Appended to the table in the look-up of unfinished moves: an index hint, where needed.
    const MOVES_INDEX: &'static str;

    /// Every write goes through `begin_write` or `writer`.
    fn begin_write(
        &self,
        pool: &Pool<Self::Db>,
    ) -> impl Future<Output = Result<Self::Tx, sqlx::Error>> + Send;
    fn writer(
        &self,
        pool: &Pool<Self::Db>,
    ) -> impl Future<Output = Result<Self::Writer, sqlx::Error>> + Send;
    /// Pushes a condition that the JSON list `column` (such as `f.tags`) holds the string `tag`.
    fn push_has_tag<'q>(qb: &mut Builder<'q, Self::Db>, column: &'static str, tag: &'q str);
    /// Pushes a condition that file `f`'s metadata maps `key` to the string `value` (a stored
    /// number, boolean or other non-string value never matches).
    fn push_has_metadata<'q>(qb: &mut Builder<'q, Self::Db>, key: &'q str, value: &'q str);
    /// See `Store::checkpoint`.
    fn checkpoint(pool: &Pool<Self::Db>) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

/// A write transaction's end.
pub trait Commit {
    fn commit(self) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

/// The store over one engine: the SQL in this module tree, compiled once for both.
pub struct SqlStore<E: Engine> {
    pub(super) pool: Pool<E::Db>,
    /// The engine's bookkeeping (claims, leases, progress, job ends) goes through this pool.
    pub(super) jobs_pool: Pool<E::Db>,
    pub(super) engine: E,
}

impl<E: Engine> SqlStore<E> {
    pub(crate) fn new(pool: Pool<E::Db>, jobs_pool: Pool<E::Db>, engine: E) -> Self {
        SqlStore {
            pool,
            jobs_pool,
            engine,
        }
    }
}
