//! The SQL both engines share, in one copy, compiled once: `SqlStore<E>` runs it on any `Engine`
//! (`sqlite.rs`, `postgres.rs`), which supplies what differs. Statements go through `db.rs`,
//! whose one bound, `E::Db: SqlDb` (implied by `E: Engine`), stands for everything the SQL needs
//! of sqlx, so the generic impls here carry no lists of bounds. Placeholders are `$N`, numbered
//! in order of first use, which both engines accept.
//!
//! One file per aggregate implements its part of the store; the helpers several of them use are
//! here.

mod db;
mod engine;

pub use db::{Builder, SqlDb};
pub use engine::{Commit, Conn, Engine, SqlStore};

use crate::{
    classify, Alias, Blob, ChildKey, ExportQueue, ExportRec, FileFilter, FileRec, FileStore,
    Finished, Idempotent, ImportBatch, ImportQueue, ImportRec, JobEnd, JobRights, JobState, Member,
    MemberKind, Page, Part, Project, ProjectFilter, ProjectStore, Store, StoreError, Upload,
    UploadStore, User, UserStore, VolumeRec, VolumeStore,
};
use anyhow::Result;
use async_trait::async_trait;
use db::Query;
use egress_core::model::sql::{PENDING, PROJECT, RUNNING, RW, UNFINISHED, VOLUME};
use sqlx::types::Json;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

const FILE_SELECT: &str = "SELECT f.id, f.project_id, f.parent_id, f.name, f.is_folder, f.size, \
     f.blob_id, f.md5, f.crc32c, f.volume_id, f.volume_uid, f.location, f.is_public, f.metadata, f.tags, \
     f.created_at, f.modified_at FROM files f";

const VOLUME_COLUMNS: &str = "v.id, v.owner, v.name, v.description, v.access_mode, v.active, \
     v.service, v.secret, v.created_at, v.modified_at, v.uid";

const EXPORT_COLUMNS: &str =
    "seq, id, owner, file_id, volume_id, volume_uid, location, object_key, properties, \
     overwrite, copy_only, state, error, attempt, lease_owner, lease_expires_at, next_attempt_at, \
     upload_id, bytes_total, bytes_copied, created_at, started_at, finished_at";

/// Jobs a worker may take: queued and due. (Expired leases are put back in the queue by
/// `expire_leases`, so claims stay on the pending part of the queue index.)
fn runnable() -> String {
    format!("(state = {PENDING} AND next_attempt_at <= $1)")
}

const IMPORT_COLUMNS: &str =
    "seq, id, owner, volume_id, volume_uid, location, project_id, parent_id, name, \
     overwrite, autorename, preserve_folder_structure, state, error, attempt, lease_owner, \
     lease_expires_at, next_attempt_at, cursor, objects_imported, result_file_id, created_at, \
     started_at, finished_at";

const PROJECT_COLUMNS: &str = "p.id, p.owner, p.name, p.description, p.billing_group, p.category, \
     p.tags, p.settings, p.root_folder, p.is_public, p.created_by, p.created_at, p.modified_at";

/// Batched statements come in a few sizes only, the powers of two: their text then repeats,
/// and each connection's statement cache serves them instead of SQLite parsing them anew.
fn padded_len(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

/// `rows` grown to a padded length with `filler`, a row that matches nothing.
fn padded<T: Clone>(mut rows: Vec<T>, filler: T) -> Vec<T> {
    rows.resize(padded_len(rows.len()), filler);
    rows
}

/// Binds `values` as the rest of an `IN (` list, closing it; an empty list matches nothing.
/// The list is padded with NULLs, which match nothing either.
fn push_list<DB: SqlDb>(qb: &mut Builder<'_, DB>, values: &[String]) {
    if values.is_empty() {
        qb.push("NULL)");
        return;
    }
    let mut list = qb.separated(", ");
    for v in values {
        list.push_bind(v.clone());
    }
    for _ in values.len()..padded_len(values.len()) {
        list.push_bind(None::<String>);
    }
    qb.push(")");
}

/// What the owners of these exports may still do (`JobRights`): a copy needs `copy` and a move
/// `write` on the file's project, and both need `write` on an active RW volume that is still the
/// one submitted to. Platform administrators hold every right.
fn export_rights_sql() -> String {
    format!("SELECT e.id, \
     COALESCE(v.uid = e.volume_uid, FALSE) AS volume_same, \
     COALESCE(v.active, FALSE) AS volume_active, \
     COALESCE(v.access_mode = {RW}, FALSE) AS volume_rw, \
     COALESCE(u.is_admin, FALSE) OR COALESCE(vm.write OR vm.admin, FALSE) AS volume_right, \
     COALESCE(u.is_admin, FALSE) OR f.id IS NULL \
         OR COALESCE(CASE WHEN e.copy_only THEN pm.copy ELSE pm.write END OR pm.admin, FALSE) AS project_right \
     FROM exports e \
     LEFT JOIN volumes v ON v.id = e.volume_id \
     LEFT JOIN users u ON u.username = e.owner \
     LEFT JOIN files f ON f.id = e.file_id \
     LEFT JOIN members vm ON vm.kind = {VOLUME} AND vm.resource_id = e.volume_id AND vm.username = e.owner \
     LEFT JOIN members pm ON pm.kind = {PROJECT} AND pm.resource_id = f.project_id AND pm.username = e.owner \
     WHERE e.id IN (")
}

/// What the owner of an import may still do: `copy` on an active volume that is still the one
/// submitted to, and `write` on the destination project.
fn import_rights_sql() -> String {
    format!("SELECT i.id, \
     COALESCE(v.uid = i.volume_uid, FALSE) AS volume_same, \
     COALESCE(v.active, FALSE) AS volume_active, \
     TRUE AS volume_rw, \
     COALESCE(u.is_admin, FALSE) OR COALESCE(vm.copy OR vm.admin, FALSE) AS volume_right, \
     COALESCE(u.is_admin, FALSE) OR COALESCE(pm.write OR pm.admin, FALSE) AS project_right \
     FROM imports i \
     LEFT JOIN volumes v ON v.id = i.volume_id \
     LEFT JOIN users u ON u.username = i.owner \
     LEFT JOIN members vm ON vm.kind = {VOLUME} AND vm.resource_id = i.volume_id AND vm.username = i.owner \
     LEFT JOIN members pm ON pm.kind = {PROJECT} AND pm.resource_id = i.project_id AND pm.username = i.owner \
     WHERE i.id = $1")
}

impl<E: Engine> SqlStore<E> {
    /// A statement on this store's database (sqlx's `query` and `query_as` in one).
    fn query<'q>(sql: impl Into<Cow<'q, str>>) -> Query<'q, E::Db> {
        Query::new(sql)
    }

    /// A statement built piece by piece (sqlx's `QueryBuilder`).
    fn builder<'q>(sql: impl Into<String>) -> Builder<'q, E::Db> {
        Builder::new(sql)
    }

    fn push_file_filter<'a>(
        qb: &mut Builder<'a, E::Db>,
        parent_id: &'a str,
        filter: &'a FileFilter,
    ) {
        qb.push(" WHERE f.parent_id = ").push_bind(parent_id);
        if !filter.names.is_empty() {
            qb.push(" AND f.name IN (");
            let mut names = qb.separated(", ");
            for name in &filter.names {
                names.push_bind(name.as_str());
            }
            qb.push(")");
        }
        Self::push_any(qb, &filter.tags, |qb, tag| {
            E::push_has_tag(qb, "f.tags", tag)
        });
        for (key, values) in &filter.metadata {
            Self::push_any(qb, values, |qb, value| E::push_has_metadata(qb, key, value));
        }
        if !filter.origin.is_empty() {
            // Platform files record no origin (no task or dataset made them): none matches.
            qb.push(" AND 1 = 0");
        }
    }

    /// ` AND (c1 OR c2 ...)`, one condition per value; nothing for no values.
    fn push_any<'a>(
        qb: &mut Builder<'a, E::Db>,
        values: &'a [String],
        mut condition: impl FnMut(&mut Builder<'a, E::Db>, &'a str),
    ) {
        if values.is_empty() {
            return;
        }
        qb.push(" AND (");
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                qb.push(" OR ");
            }
            condition(qb, value);
        }
        qb.push(")");
    }

    async fn insert_file(tx: &mut Conn<E>, file: &FileRec) -> Result<(), StoreError> {
        Self::query(
            "INSERT INTO files (id, project_id, parent_id, name, is_folder, size, blob_id, md5, crc32c, \
             volume_id, volume_uid, location, is_public, metadata, tags, created_at, modified_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(&file.id)
        .bind(&file.project_id)
        .bind(&file.parent_id)
        .bind(&file.name)
        .bind(file.is_folder)
        .bind(file.size)
        .bind(&file.blob_id)
        .bind(&file.md5)
        .bind(&file.crc32c)
        .bind(&file.volume_id)
        .bind(&file.volume_uid)
        .bind(&file.location)
        .bind(file.is_public)
        .bind(Json(&file.metadata))
        .bind(Json(&file.tags))
        .bind(file.created_at)
        .bind(file.modified_at)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// Checks that `parent` is a folder of `project_id`: a file may only be committed into a folder
    /// that exists. On Postgres the row stays share-locked until the transaction ends, so the
    /// folder cannot be deleted meanwhile (`remove_file` locks it before looking for children);
    /// SQLite has one writer.
    async fn check_parent(
        tx: &mut Conn<E>,
        project_id: &str,
        parent: &str,
    ) -> Result<(), StoreError> {
        let parent_lock = E::PARENT_LOCK;
        let row: Option<(String, bool)> = Self::query(format!(
            "SELECT project_id, is_folder FROM files WHERE id = $1{parent_lock}"
        ))
        .bind(parent)
        .fetch_optional(&mut *tx)
        .await?;
        match row {
            Some((project, true)) if project == project_id => Ok(()),
            _ => Err(StoreError::NoParent),
        }
    }

    /// Refuses to put `folder` under `parent` when `parent` is `folder` or lies inside it. The
    /// caller holds the project row (see `update_file`).
    async fn check_outside(tx: &mut Conn<E>, folder: &str, parent: &str) -> Result<(), StoreError> {
        // UNION, not UNION ALL: the walk ends even on a tree that is somehow already cyclic.
        let inside: Option<(String,)> = Self::query(
            "WITH RECURSIVE up (id, parent_id) AS ( \
               SELECT id, parent_id FROM files WHERE id = $1 \
               UNION SELECT f.id, f.parent_id FROM files f JOIN up ON f.id = up.parent_id) \
             SELECT id FROM up WHERE id = $2",
        )
        .bind(parent)
        .bind(folder)
        .fetch_optional(&mut *tx)
        .await?;
        match inside {
            Some(_) => Err(StoreError::IntoItself),
            None => Ok(()),
        }
    }

    async fn export_rights_in(
        conn: &mut Conn<E>,
        ids: &[String],
    ) -> Result<Vec<JobRights>, sqlx::Error> {
        let mut qb = Self::builder(export_rights_sql());
        push_list(&mut qb, ids);
        qb.build().fetch_all(&mut *conn).await
    }

    /// Exports and imports on a volume that are not finished.
    async fn unfinished_jobs(conn: &mut Conn<E>, volume_id: &str) -> Result<i64, sqlx::Error> {
        let (n,): (i64,) = Self::query(format!(
            "SELECT (SELECT COUNT(*) FROM exports WHERE state IN {UNFINISHED} AND volume_id = $1) \
                  + (SELECT COUNT(*) FROM imports WHERE state IN {UNFINISHED} AND volume_id = $1)",
        ))
        .bind(volume_id)
        .fetch_one(&mut *conn)
        .await?;
        Ok(n)
    }

    /// A page of one user's jobs, newest first, filtered by equal columns and by state.
    async fn list_jobs<T>(
        pool: &sqlx::Pool<E::Db>,
        table: &str,
        columns: &str,
        owner: &str,
        equal: &[(&str, Option<&str>)],
        states: &[JobState],
        page: Page,
    ) -> Result<(Vec<T>, i64)>
    where
        E::Db: db::Read<T>,
    {
        let filter = |qb: &mut Builder<'_, E::Db>| {
            qb.push(" WHERE owner = ").push_bind(owner.to_string());
            for (column, value) in equal {
                if let Some(v) = value {
                    qb.push(format!(" AND {column} = "))
                        .push_bind(v.to_string());
                }
            }
            if !states.is_empty() {
                qb.push(" AND state IN (");
                let mut list = qb.separated(", ");
                for s in states {
                    list.push_bind(*s);
                }
                qb.push(")");
            }
        };
        let mut count = Self::builder(format!("SELECT COUNT(*) FROM {table}"));
        filter(&mut count);
        let (total,) = count.build().fetch_one::<(i64,)>(pool).await?;
        if page.offset >= total {
            // Nothing to read: without this, a filter nothing matches (no unfinished jobs, the
            // usual answer to a poll) would walk every job of the owner in `seq` order.
            return Ok((Vec::new(), total));
        }
        let mut select = Self::builder(format!("SELECT {columns} FROM {table}"));
        filter(&mut select);
        select
            .push(" ORDER BY seq DESC LIMIT ")
            .push_bind(page.limit)
            .push(" OFFSET ")
            .push_bind(page.offset);
        Ok((select.build().fetch_all(pool).await?, total))
    }

    /// The folder `name` in `parent`, made if missing; `Conflict` when a file holds the name.
    async fn folder_in(
        tx: &mut Conn<E>,
        project_id: &str,
        parent: &str,
        name: &str,
    ) -> Result<String, StoreError> {
        // Locked like a parent (Postgres): a folder found here is not deleted before the commit.
        let parent_lock = E::PARENT_LOCK;
        let found: Option<(String, bool)> = Self::query(format!(
            "SELECT id, is_folder FROM files WHERE parent_id = $1 AND name = $2{parent_lock}"
        ))
        .bind(parent)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        match found {
            Some((id, true)) => Ok(id),
            Some((_, false)) => Err(StoreError::Conflict),
            None => {
                let folder = FileRec::new(project_id, Some(parent), name, true);
                Self::insert_file(tx, &folder).await?;
                Ok(folder.id)
            }
        }
    }

    /// Inserts `file`, resolving a taken name as the import says: replace the file (never a
    /// folder), rename it `_N_name`, or refuse with `Conflict`.
    async fn insert_resolving(
        tx: &mut Conn<E>,
        mut file: FileRec,
        overwrite: bool,
        autorename: bool,
    ) -> Result<String, StoreError> {
        let parent = file.parent_id.clone().unwrap_or_default();
        let base = file.name.clone();
        for n in 1..=1000 {
            let taken: Option<(String, bool)> =
                Self::query("SELECT id, is_folder FROM files WHERE parent_id = $1 AND name = $2")
                    .bind(&parent)
                    .bind(&file.name)
                    .fetch_optional(&mut *tx)
                    .await?;
            match taken {
                None => {
                    Self::insert_file(tx, &file).await?;
                    return Ok(file.id);
                }
                Some((old, false)) if overwrite => {
                    Self::remove_file(tx, &old).await?;
                    Self::insert_file(tx, &file).await?;
                    return Ok(file.id);
                }
                Some(_) if autorename => {
                    file.name = format!("_{n}_{base}");
                    // A longer name must still be a name: past 255 bytes the clash stays unresolved.
                    if egress_core::names::check(&file.name).is_err() {
                        return Err(StoreError::Conflict);
                    }
                }
                Some(_) => return Err(StoreError::Conflict),
            }
        }
        Err(StoreError::Conflict)
    }

    /// Extends a job's lease, fenced by its attempt: false when another worker owns it now.
    async fn renew_lease(
        conn: &mut Conn<E>,
        table: &str,
        id: &str,
        attempt: i64,
        lease_until: i64,
    ) -> Result<bool> {
        let done = Self::query(format!(
            "UPDATE {table} SET lease_expires_at = $1 WHERE id = $2 AND attempt = $3 AND state = $4"
        ))
        .bind(lease_until)
        .bind(id)
        .bind(attempt)
        .bind(JobState::Running)
        .execute(conn)
        .await?;
        Ok(done == 1)
    }

    /// Adds a member or changes its permissions.
    async fn upsert_member(conn: &mut Conn<E>, m: &Member) -> Result<(), sqlx::Error> {
        Self::query(
            "INSERT INTO members (kind, resource_id, username, read, copy, write, execute, admin) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (kind, resource_id, username) DO UPDATE \
             SET read = excluded.read, copy = excluded.copy, write = excluded.write, \
             execute = excluded.execute, admin = excluded.admin",
        )
        .bind(m.kind)
        .bind(&m.resource_id)
        .bind(&m.username)
        .bind(m.perms.read)
        .bind(m.perms.copy)
        .bind(m.perms.write)
        .bind(m.perms.execute)
        .bind(m.perms.admin)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Deletes one file row inside `tx` and drops its blob reference. Folders must be empty.
    async fn remove_file(tx: &mut Conn<E>, id: &str) -> Result<(), StoreError> {
        // Locked first (Postgres), so that a file being committed into this folder either
        // finishes before the look for children below, or finds the folder gone.
        let row_lock = E::ROW_LOCK;
        let row: Option<(bool, Option<String>)> = Self::query(format!(
            "SELECT is_folder, blob_id FROM files WHERE id = $1{row_lock}"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let (is_folder, blob_id) = row.ok_or(StoreError::NotFound)?;
        let moving: Option<(String,)> = Self::query(format!(
            "SELECT id FROM exports WHERE file_id = $1 AND NOT copy_only AND state IN {UNFINISHED} LIMIT 1",
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if moving.is_some() {
            return Err(StoreError::InUse);
        }
        if is_folder {
            let child: Option<(String,)> =
                Self::query("SELECT id FROM files WHERE parent_id = $1 LIMIT 1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if child.is_some() {
                return Err(StoreError::NotEmpty);
            }
        }
        Self::query("DELETE FROM files WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if let Some(blob_id) = blob_id {
            Self::query("UPDATE blobs SET refs = refs - 1 WHERE id = $1")
                .bind(blob_id)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl<E: Engine> Store for SqlStore<E> {
    fn engine(&self) -> &'static str {
        E::NAME
    }

    async fn expire_leases(&self, now: i64) -> Result<u64> {
        let mut expired = 0;
        for table in ["exports", "imports", "file_jobs"] {
            let done = Self::query(format!(
                "UPDATE {table} SET state = $2, lease_owner = NULL, next_attempt_at = 0 \
                 WHERE state = {RUNNING} AND lease_expires_at < $1"
            ))
            .bind(now)
            .bind(JobState::Pending)
            .execute(&mut *self.engine.writer(&self.jobs_pool).await?)
            .await?;
            expired += done;
        }
        Ok(expired)
    }

    async fn checkpoint(&self) -> Result<()> {
        Ok(E::checkpoint(&self.pool).await?)
    }
}

mod exports;
mod file_jobs;
mod files;
mod imports;
mod projects;
mod uploads;
mod users;
mod volumes;
