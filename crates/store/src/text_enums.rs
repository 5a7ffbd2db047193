//! The core's text enums (job states, access modes, member kinds) as the SQL both engines store:
//! a check that each one is written as its `as_str()` text and reads back as itself.

#[cfg(test)]
mod tests {
    use egress_core::model::{AccessMode, JobState, MemberKind};
    use std::fmt;

    /// Writes every value of an enum into a TEXT column and reads it back: the stored text is
    /// `as_str()`, a bound value matches it in a WHERE clause, and it decodes to the same value.
    async fn stored_as_text<DB, T>(pool: &sqlx::Pool<DB>, all: &[T], as_str: fn(T) -> &'static str)
    where
        DB: sqlx::Database,
        T: Copy + fmt::Debug + PartialEq + Send + Unpin + 'static,
        T: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
        String: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
        i64: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
        for<'a> &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
        for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
        for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
        for<'r> (String,): sqlx::FromRow<'r, DB::Row>,
        for<'r> (i64,): sqlx::FromRow<'r, DB::Row>,
        for<'r> (T,): sqlx::FromRow<'r, DB::Row>,
    {
        sqlx::query("DELETE FROM t").execute(pool).await.unwrap();
        for &v in all {
            sqlx::query("INSERT INTO t (v) VALUES ($1)")
                .bind(v)
                .execute(pool)
                .await
                .unwrap();
            let (text,): (String,) = sqlx::query_as("SELECT v FROM t WHERE v = $1")
                .bind(as_str(v))
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(text, as_str(v));
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM t WHERE v = $1")
                .bind(v)
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(n, 1, "{v:?}");
            let (back,): (T,) = sqlx::query_as("SELECT v FROM t WHERE v = $1")
                .bind(v)
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(back, v);
        }
        sqlx::query("INSERT INTO t (v) VALUES ('nonsense')")
            .execute(pool)
            .await
            .unwrap();
        let bad: Result<(T,), _> = sqlx::query_as("SELECT v FROM t WHERE v = 'nonsense'")
            .fetch_one(pool)
            .await;
        assert!(bad.is_err(), "unknown text must not decode");
    }

    async fn all_stored_as_text<DB>(pool: sqlx::Pool<DB>)
    where
        DB: sqlx::Database,
        JobState: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
        AccessMode: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
        MemberKind: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB> + for<'r> sqlx::Decode<'r, DB>,
        String: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
        i64: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
        for<'a> &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
        for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
        for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
        for<'r> (String,): sqlx::FromRow<'r, DB::Row>,
        for<'r> (i64,): sqlx::FromRow<'r, DB::Row>,
        for<'r> (JobState,): sqlx::FromRow<'r, DB::Row>,
        for<'r> (AccessMode,): sqlx::FromRow<'r, DB::Row>,
        for<'r> (MemberKind,): sqlx::FromRow<'r, DB::Row>,
    {
        sqlx::query("CREATE TABLE t (v TEXT NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        stored_as_text(&pool, JobState::ALL, JobState::as_str).await;
        stored_as_text(&pool, AccessMode::ALL, AccessMode::as_str).await;
        stored_as_text(&pool, MemberKind::ALL, MemberKind::as_str).await;
    }

    #[tokio::test]
    async fn sqlite_stores_the_text() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        all_stored_as_text(pool).await;
    }

    #[tokio::test]
    async fn postgres_stores_the_text() {
        if let Some(url) = crate::testdb::postgres_url().await {
            all_stored_as_text(sqlx::postgres::PgPool::connect(&url).await.unwrap()).await;
        }
    }
}
