//! Fresh databases for tests: a SQLite file in a temporary folder, or a new Postgres database
//! per test. Without a reachable Postgres the Postgres half is skipped loudly, or fails when
//! `CI=true`.

use super::DynStore;
use sqlx::Connection;

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn admin_url() -> String {
    std::env::var("EGRESS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string())
}

/// The URL of a new, empty Postgres database, or `None` (after saying so) when Postgres
/// cannot be reached outside CI.
pub async fn postgres_url() -> Option<String> {
    let admin = admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but Postgres at {admin} is unreachable: {e}");
            }
            eprintln!("!!! SKIPPED: Postgres at {admin} is unreachable ({e}); the Postgres half did not run");
            return None;
        }
    };
    let name = format!("egress_test_{}", egress_core::util::random_hex(8));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let (base, _) = admin.rsplit_once('/').expect("database URL has a path");
    Some(format!("{base}/{name}"))
}

/// A SQLite store in `dir`.
pub async fn sqlite(dir: &std::path::Path) -> DynStore {
    super::open(&format!("sqlite:{}", dir.join("egress.db").display()))
        .await
        .expect("open sqlite store")
}

/// A Postgres store in a new database, or `None` when skipped.
pub async fn postgres() -> Option<DynStore> {
    let url = postgres_url().await?;
    Some(super::open(&url).await.expect("open postgres store"))
}
