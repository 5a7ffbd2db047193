//! The sqlx calls the shared SQL makes, behind one bound: `DB: SqlDb`.
//!
//! Rust assumes a `where` clause only where it is written, so sqlx's own API used generically
//! would need, on every impl block and helper, a list of every type bound and every row read
//! (`i64: Encode<'q, DB>`, `User: FromRow<'r, DB::Row>`, `&mut DB::Connection: Executor`...).
//! What a trait requires of `Self` (its supertraits), on the other hand, holds wherever the trait
//! does. So the requirements are turned around here, onto the database: `SqlDb` is a database
//! that can `Bind` each value type the SQL binds, `Read` each row type it reads, and `Run`
//! statements; each engine writes `impl SqlDb for` its database once, where the compiler checks
//! the list against sqlx's impls. `Query` and `Builder` are sqlx's query and query builder cut
//! down to what the SQL uses, on top of these traits. Rows are decoded as sqlx does, one at a
//! time as they stream in.

use crate::{
    ExportRec, FileJobItem, FileJobRec, FileRec, Idempotent, ImportRec, JobRights, Member, Part,
    Project, Upload, User, VolumeRec,
};
use egress_core::model::{AccessMode, JobState, MemberKind};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::TryStreamExt;
use serde_json::{Map, Value};
use sqlx::error::BoxDynError;
use sqlx::types::Json;
use sqlx::{Arguments as _, Database, Encode, Error, Executor, FromRow, IntoArguments, Pool, Type};
use std::borrow::Cow;
use std::fmt::{Display, Write as _};

/// A database the shared SQL runs on: every value type it binds, every row it reads.
pub trait SqlDb:
    Run
    + for<'q> Bind<'q, &'q str>
    + for<'q> Bind<'q, &'q String>
    + for<'q> Bind<'q, String>
    + for<'q> Bind<'q, Option<&'q str>>
    + for<'q> Bind<'q, &'q Option<String>>
    + for<'q> Bind<'q, Option<String>>
    + for<'q> Bind<'q, i64>
    + for<'q> Bind<'q, Option<i64>>
    + for<'q> Bind<'q, bool>
    + for<'q> Bind<'q, &'q Vec<u8>>
    + for<'q> Bind<'q, JobState>
    + for<'q> Bind<'q, MemberKind>
    + for<'q> Bind<'q, AccessMode>
    + for<'q> Bind<'q, Json<&'q Value>>
    + for<'q> Bind<'q, Json<&'q Map<String, Value>>>
    + for<'q> Bind<'q, Json<&'q Vec<String>>>
    + for<'q> Bind<'q, Json<&'q egress_core::volume::Service>>
    + Read<User>
    + Read<Project>
    + Read<Member>
    + Read<VolumeRec>
    + Read<FileRec>
    + Read<Upload>
    + Read<Part>
    + Read<ExportRec>
    + Read<ImportRec>
    + Read<FileJobRec>
    + Read<FileJobItem>
    + Read<super::file_jobs::Access>
    + Read<JobRights>
    + Read<Idempotent>
    + Read<(i64,)>
    + Read<(bool,)>
    + Read<(String,)>
    + Read<(Option<String>,)>
    + Read<(String, i64)>
    + Read<(String, bool)>
    + Read<(String, String)>
    + Read<(bool, Option<String>)>
{
    /// The same arguments, for a statement text that lives less long than the values they
    /// borrow. (Generically a database's arguments type cannot be shortened; each engine's can.)
    fn shorten<'long: 'short, 'short>(args: Self::Arguments<'long>) -> Self::Arguments<'short>;
    fn rows_affected(done: &Self::QueryResult) -> u64;
}

/// Binds a `T` as a statement argument.
pub trait Bind<'q, T>: Database {
    fn bind(args: &mut Self::Arguments<'q>, value: T) -> Result<(), BoxDynError>;
}

impl<'q, DB: Database, T: 'q + Encode<'q, DB> + Type<DB>> Bind<'q, T> for DB {
    fn bind(args: &mut Self::Arguments<'q>, value: T) -> Result<(), BoxDynError> {
        args.add(value)
    }
}

/// Reads a row as an `O`.
pub trait Read<O>: Database {
    fn read(row: &Self::Row) -> Result<O, Error>;
}

impl<DB: Database, O: for<'r> FromRow<'r, DB::Row>> Read<O> for DB {
    fn read(row: &Self::Row) -> Result<O, Error> {
        O::from_row(row)
    }
}

/// Where a statement runs: on one connection (often a transaction's), or on the pool.
pub enum On<'c, DB: Database> {
    Conn(&'c mut DB::Connection),
    Pool(&'c Pool<DB>),
}

impl<'c, DB: Database> From<&'c mut DB::Connection> for On<'c, DB> {
    fn from(conn: &'c mut DB::Connection) -> Self {
        On::Conn(conn)
    }
}

impl<'c, DB: Database> From<&'c Pool<DB>> for On<'c, DB> {
    fn from(pool: &'c Pool<DB>) -> Self {
        On::Pool(pool)
    }
}

/// Runs a statement with sqlx (a prepared statement, cached per connection).
pub trait Run: Database {
    fn execute<'e, 'q: 'e>(
        on: On<'e, Self>,
        sql: &'q str,
        args: Self::Arguments<'q>,
    ) -> BoxFuture<'e, Result<Self::QueryResult, Error>>;
    fn fetch<'e, 'q: 'e>(
        on: On<'e, Self>,
        sql: &'q str,
        args: Self::Arguments<'q>,
    ) -> BoxStream<'e, Result<Self::Row, Error>>;
    fn fetch_optional<'e, 'q: 'e>(
        on: On<'e, Self>,
        sql: &'q str,
        args: Self::Arguments<'q>,
    ) -> BoxFuture<'e, Result<Option<Self::Row>, Error>>;
}

impl<DB: Database> Run for DB
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    fn execute<'e, 'q: 'e>(
        on: On<'e, Self>,
        sql: &'q str,
        args: Self::Arguments<'q>,
    ) -> BoxFuture<'e, Result<Self::QueryResult, Error>> {
        let query = sqlx::query_with(sql, args);
        match on {
            On::Conn(conn) => conn.execute(query),
            On::Pool(pool) => pool.execute(query),
        }
    }

    fn fetch<'e, 'q: 'e>(
        on: On<'e, Self>,
        sql: &'q str,
        args: Self::Arguments<'q>,
    ) -> BoxStream<'e, Result<Self::Row, Error>> {
        let query = sqlx::query_with(sql, args);
        match on {
            On::Conn(conn) => conn.fetch(query),
            On::Pool(pool) => pool.fetch(query),
        }
    }

    fn fetch_optional<'e, 'q: 'e>(
        on: On<'e, Self>,
        sql: &'q str,
        args: Self::Arguments<'q>,
    ) -> BoxFuture<'e, Result<Option<Self::Row>, Error>> {
        let query = sqlx::query_with(sql, args);
        match on {
            On::Conn(conn) => conn.fetch_optional(query),
            On::Pool(pool) => pool.fetch_optional(query),
        }
    }
}

/// A statement and its arguments, run once.
pub struct Query<'q, DB: SqlDb> {
    sql: Cow<'q, str>,
    args: DB::Arguments<'q>,
    /// The first value that failed to encode: the statement then fails with it, as in sqlx.
    error: Option<BoxDynError>,
}

impl<'q, DB: SqlDb> Query<'q, DB> {
    pub fn new(sql: impl Into<Cow<'q, str>>) -> Self {
        Query {
            sql: sql.into(),
            args: Default::default(),
            error: None,
        }
    }

    pub fn bind<T>(mut self, value: T) -> Self
    where
        DB: Bind<'q, T>,
    {
        if self.error.is_none() {
            self.error = DB::bind(&mut self.args, value).err();
        }
        self
    }

    fn parts(self) -> Result<(Cow<'q, str>, DB::Arguments<'q>), Error> {
        match self.error {
            Some(e) => Err(Error::Encode(e)),
            None => Ok((self.sql, self.args)),
        }
    }

    /// Runs the statement; returns how many rows it changed.
    pub async fn execute<'c>(self, on: impl Into<On<'c, DB>> + Send) -> Result<u64, Error> {
        let (sql, args) = self.parts()?;
        let done = DB::execute(on.into(), &sql, DB::shorten(args)).await?;
        Ok(DB::rows_affected(&done))
    }

    pub async fn fetch_all<'c, O>(self, on: impl Into<On<'c, DB>> + Send) -> Result<Vec<O>, Error>
    where
        DB: Read<O>,
    {
        let (sql, args) = self.parts()?;
        let mut rows = DB::fetch(on.into(), &sql, DB::shorten(args));
        let mut all = Vec::new();
        while let Some(row) = rows.try_next().await? {
            all.push(DB::read(&row)?);
        }
        Ok(all)
    }

    pub async fn fetch_optional<'c, O>(
        self,
        on: impl Into<On<'c, DB>> + Send,
    ) -> Result<Option<O>, Error>
    where
        DB: Read<O>,
    {
        let (sql, args) = self.parts()?;
        let row = DB::fetch_optional(on.into(), &sql, DB::shorten(args)).await?;
        row.as_ref().map(DB::read).transpose()
    }

    pub async fn fetch_one<'c, O>(self, on: impl Into<On<'c, DB>> + Send) -> Result<O, Error>
    where
        DB: Read<O>,
    {
        self.fetch_optional(on).await?.ok_or(Error::RowNotFound)
    }
}

/// Builds a statement whose text depends on its values (lists, batches). Placeholders are
/// `$N`, numbered in order, which both engines accept.
pub struct Builder<'q, DB: SqlDb> {
    query: Query<'q, DB>,
}

impl<'q, DB: SqlDb> Builder<'q, DB> {
    pub fn new(sql: impl Into<String>) -> Self {
        Builder {
            query: Query::new(sql.into()),
        }
    }

    pub fn push(&mut self, sql: impl Display) -> &mut Self {
        // Writing into a String cannot fail.
        let _ = write!(self.query.sql.to_mut(), "{sql}");
        self
    }

    pub fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        DB: Bind<'q, T>,
    {
        let n = self.query.args.len() + 1;
        self.push(format_args!("${n}"));
        if self.query.error.is_none() {
            self.query.error = DB::bind(&mut self.query.args, value).err();
        }
        self
    }

    /// Values pushed through the result are separated by `separator`.
    pub fn separated(&mut self, separator: &'static str) -> Separated<'_, 'q, DB> {
        Separated {
            builder: self,
            separator,
            first: true,
        }
    }

    /// `VALUES (...), (...)`: one parenthesized tuple per row, filled by `push_row`.
    pub fn push_values<I, F>(&mut self, rows: I, mut push_row: F) -> &mut Self
    where
        I: IntoIterator,
        F: FnMut(Separated<'_, 'q, DB>, I::Item),
    {
        self.push("VALUES ");
        for (i, row) in rows.into_iter().enumerate() {
            self.push(if i == 0 { "(" } else { ", (" });
            push_row(self.separated(", "), row);
            self.push(")");
        }
        self
    }

    pub fn build(self) -> Query<'q, DB> {
        self.query
    }
}

/// Part of a `Builder`'s statement whose values are separated (see `Builder::separated`).
pub struct Separated<'b, 'q, DB: SqlDb> {
    builder: &'b mut Builder<'q, DB>,
    separator: &'static str,
    first: bool,
}

impl<'q, DB: SqlDb> Separated<'_, 'q, DB> {
    pub fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        DB: Bind<'q, T>,
    {
        if !self.first {
            self.builder.push(self.separator);
        }
        self.first = false;
        self.builder.push_bind(value);
        self
    }
}
