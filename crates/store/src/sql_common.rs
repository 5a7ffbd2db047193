// The SQL both engines share. `sqlite.rs` and `postgres.rs` each `include!` this file after
// defining `Db` (the sqlx database), `Conn` (its connection), `This` (their store type, with
// `pool` and `jobs_pool` fields and the methods `begin_write` and `writer`, through which every
// write goes), `ENGINE`, `checkpoint`, `push_has_tag`, `CLAIM_LOCK`, `ROW_LOCK`, `PARENT_LOCK`
// and `MOVES_INDEX`. Placeholders are `$N`, numbered in order of first use, which both engines
// accept; the few dialect differences live in those two files.

use crate::{
    classify, Alias, Blob, ExportRec, FileFilter, FileRec, Finished, Idempotent, ImportBatch, ImportRec, JobEnd,
    JobRights, JobState, Member, MemberKind, Page, Part, Project, Store, StoreError, Upload, User, VolumeRec,
};
use egress_core::model::sql::{PENDING, PROJECT, RUNNING, RW, UNFINISHED, VOLUME};
use anyhow::Result;
use async_trait::async_trait;
use sqlx::types::Json;
use sqlx::QueryBuilder;
use std::collections::{HashMap, HashSet};

const FILE_SELECT: &str = "SELECT f.id, f.project_id, f.parent_id, f.name, f.is_folder, f.size, \
     f.blob_id, f.md5, f.crc32c, f.volume_id, f.volume_uid, f.location, f.is_public, f.metadata, f.tags, \
     f.created_at, f.modified_at FROM files f";

const VOLUME_COLUMNS: &str = "v.id, v.owner, v.name, v.description, v.access_mode, v.active, \
     v.service, v.secret, v.created_at, v.modified_at, v.uid";

const EXPORT_COLUMNS: &str = "seq, id, owner, file_id, volume_id, volume_uid, location, object_key, properties, \
     overwrite, copy_only, state, error, attempt, lease_owner, lease_expires_at, next_attempt_at, \
     upload_id, bytes_total, bytes_copied, created_at, started_at, finished_at";

/// Jobs a worker may take: queued and due. (Expired leases are put back in the queue by
/// `expire_leases`, so claims stay on the pending part of the queue index.)
fn runnable() -> String {
    format!("(state = {PENDING} AND next_attempt_at <= $1)")
}

const IMPORT_COLUMNS: &str = "seq, id, owner, volume_id, volume_uid, location, project_id, parent_id, name, \
     overwrite, autorename, preserve_folder_structure, state, error, attempt, lease_owner, \
     lease_expires_at, next_attempt_at, cursor, objects_imported, result_file_id, created_at, \
     started_at, finished_at";

const PROJECT_COLUMNS: &str = "p.id, p.owner, p.name, p.description, p.billing_group, p.category, \
     p.tags, p.settings, p.root_folder, p.is_public, p.created_by, p.created_at, p.modified_at";

fn push_file_filter<'a>(qb: &mut QueryBuilder<'a, Db>, parent_id: &'a str, filter: &'a FileFilter) {
    qb.push(" WHERE f.parent_id = ").push_bind(parent_id);
    if !filter.names.is_empty() {
        qb.push(" AND f.name IN (");
        let mut names = qb.separated(", ");
        for name in &filter.names {
            names.push_bind(name.as_str());
        }
        qb.push(")");
    }
    if !filter.tags.is_empty() {
        qb.push(" AND (");
        for (i, tag) in filter.tags.iter().enumerate() {
            if i > 0 {
                qb.push(" OR ");
            }
            push_has_tag(qb, tag);
        }
        qb.push(")");
    }
}

async fn insert_file(
    tx: &mut Conn,
    file: &FileRec,
) -> Result<(), StoreError> {
    sqlx::query(
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
async fn check_parent(tx: &mut Conn, project_id: &str, parent: &str) -> Result<(), StoreError> {
    let row: Option<(String, bool)> =
        sqlx::query_as(&format!("SELECT project_id, is_folder FROM files WHERE id = $1{PARENT_LOCK}"))
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
async fn check_outside(tx: &mut Conn, folder: &str, parent: &str) -> Result<(), StoreError> {
    // UNION, not UNION ALL: the walk ends even on a tree that is somehow already cyclic.
    let inside: Option<(String,)> = sqlx::query_as(
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
fn push_list(qb: &mut QueryBuilder<'_, Db>, values: &[String]) {
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

async fn export_rights_in(conn: &mut Conn, ids: &[String]) -> Result<Vec<JobRights>, sqlx::Error> {
    let mut qb = QueryBuilder::<Db>::new(export_rights_sql());
    push_list(&mut qb, ids);
    qb.build_query_as().fetch_all(&mut *conn).await
}

/// Exports and imports on a volume that are not finished.
async fn unfinished_jobs(conn: &mut Conn, volume_id: &str) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as(&format!(
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
    pool: &sqlx::Pool<Db>,
    table: &str,
    columns: &str,
    owner: &str,
    equal: &[(&str, Option<&str>)],
    states: &[JobState],
    page: Page,
) -> Result<(Vec<T>, i64)>
where
    T: for<'r> sqlx::FromRow<'r, <Db as sqlx::Database>::Row> + Send + Unpin,
{
    let filter = |qb: &mut QueryBuilder<'_, Db>| {
        qb.push(" WHERE owner = ").push_bind(owner.to_string());
        for (column, value) in equal {
            if let Some(v) = value {
                qb.push(format!(" AND {column} = ")).push_bind(v.to_string());
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
    let mut count = QueryBuilder::<Db>::new(format!("SELECT COUNT(*) FROM {table}"));
    filter(&mut count);
    let (total,): (i64,) = count.build_query_as().fetch_one(pool).await?;
    let mut select = QueryBuilder::<Db>::new(format!("SELECT {columns} FROM {table}"));
    filter(&mut select);
    select.push(" ORDER BY seq DESC LIMIT ").push_bind(page.limit).push(" OFFSET ").push_bind(page.offset);
    Ok((select.build_query_as().fetch_all(pool).await?, total))
}

/// The folder `name` in `parent`, made if missing; `Conflict` when a file holds the name.
async fn folder_in(tx: &mut Conn, project_id: &str, parent: &str, name: &str) -> Result<String, StoreError> {
    // Locked like a parent (Postgres): a folder found here is not deleted before the commit.
    let found: Option<(String, bool)> =
        sqlx::query_as(&format!("SELECT id, is_folder FROM files WHERE parent_id = $1 AND name = $2{PARENT_LOCK}"))
        .bind(parent)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
    match found {
        Some((id, true)) => Ok(id),
        Some((_, false)) => Err(StoreError::Conflict),
        None => {
            let folder = FileRec::new(project_id, Some(parent), name, true);
            insert_file(tx, &folder).await?;
            Ok(folder.id)
        }
    }
}

/// Inserts `file`, resolving a taken name as the import says: replace the file (never a
/// folder), rename it `_N_name`, or refuse with `Conflict`.
async fn insert_resolving(tx: &mut Conn, mut file: FileRec, overwrite: bool, autorename: bool) -> Result<String, StoreError> {
    let parent = file.parent_id.clone().unwrap_or_default();
    let base = file.name.clone();
    for n in 1..=1000 {
        let taken: Option<(String, bool)> = sqlx::query_as("SELECT id, is_folder FROM files WHERE parent_id = $1 AND name = $2")
            .bind(&parent)
            .bind(&file.name)
            .fetch_optional(&mut *tx)
            .await?;
        match taken {
            None => {
                insert_file(tx, &file).await?;
                return Ok(file.id);
            }
            Some((old, false)) if overwrite => {
                remove_file(tx, &old).await?;
                insert_file(tx, &file).await?;
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
async fn renew_lease(conn: &mut Conn, table: &str, id: &str, attempt: i64, lease_until: i64) -> Result<bool> {
    let done = sqlx::query(&format!(
        "UPDATE {table} SET lease_expires_at = $1 WHERE id = $2 AND attempt = $3 AND state = $4"
    ))
    .bind(lease_until)
    .bind(id)
    .bind(attempt)
    .bind(JobState::Running)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Adds a member or changes its permissions.
async fn upsert_member<'e, E: sqlx::Executor<'e, Database = Db>>(executor: E, m: &Member) -> Result<(), sqlx::Error> {
    sqlx::query(
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
    .execute(executor)
    .await?;
    Ok(())
}

/// Deletes one file row inside `tx` and drops its blob reference. Folders must be empty.
async fn remove_file(tx: &mut Conn, id: &str) -> Result<(), StoreError> {
    // Locked first (Postgres), so that a file being committed into this folder either
    // finishes before the look for children below, or finds the folder gone.
    let row: Option<(bool, Option<String>)> =
        sqlx::query_as(&format!("SELECT is_folder, blob_id FROM files WHERE id = $1{ROW_LOCK}"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let (is_folder, blob_id) = row.ok_or(StoreError::NotFound)?;
    let moving: Option<(String,)> = sqlx::query_as(&format!(
        "SELECT id FROM exports WHERE file_id = $1 AND NOT copy_only AND state IN {UNFINISHED} LIMIT 1",
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    if moving.is_some() {
        return Err(StoreError::InUse);
    }
    if is_folder {
        let child: Option<(String,)> = sqlx::query_as("SELECT id FROM files WHERE parent_id = $1 LIMIT 1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if child.is_some() {
            return Err(StoreError::NotEmpty);
        }
    }
    sqlx::query("DELETE FROM files WHERE id = $1").bind(id).execute(&mut *tx).await?;
    if let Some(blob_id) = blob_id {
        sqlx::query("UPDATE blobs SET refs = refs - 1 WHERE id = $1")
            .bind(blob_id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl Store for This {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    async fn create_user(&self, user: &User, token_hash: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write(&self.pool).await?;
        sqlx::query("INSERT INTO users (username, email, is_admin, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&user.username)
            .bind(&user.email)
            .bind(user.is_admin)
            .bind(user.created_at)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::query("INSERT INTO tokens (hash, username, created_at) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(&user.username)
            .bind(user.created_at)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_token(&self, username: &str, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tokens (hash, username, created_at) \
             SELECT $1, username, $2 FROM users WHERE username = $3",
        )
        .bind(token_hash)
        .bind(egress_core::util::now_ms())
        .bind(username)
        .execute(&mut *self.writer(&self.pool).await?)
        .await
        .map_err(classify)
        .and_then(|r| if r.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound) })
    }

    async fn user_by_token(&self, token_hash: &str) -> Result<Option<User>> {
        Ok(sqlx::query_as(
            "SELECT u.username, u.email, u.is_admin, u.created_at FROM tokens t \
             JOIN users u ON u.username = t.username WHERE t.hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn get_user(&self, username: &str) -> Result<Option<User>> {
        Ok(sqlx::query_as("SELECT username, email, is_admin, created_at FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn create_project(&self, project: &Project, root: &FileRec) -> Result<(), StoreError> {
        let mut tx = self.begin_write(&self.pool).await?;
        sqlx::query(
            "INSERT INTO projects (id, owner, name, description, billing_group, category, tags, \
             settings, root_folder, is_public, created_by, created_at, modified_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&project.id)
        .bind(&project.owner)
        .bind(&project.name)
        .bind(&project.description)
        .bind(&project.billing_group)
        .bind(&project.category)
        .bind(Json(&project.tags))
        .bind(Json(&project.settings))
        .bind(&project.root_folder)
        .bind(project.is_public)
        .bind(&project.created_by)
        .bind(project.created_at)
        .bind(project.modified_at)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        insert_file(&mut tx, root).await?;
        let owner = Member { kind: MemberKind::Project, resource_id: project.id.clone(), username: project.created_by.clone(), perms: crate::Perms::ALL };
        upsert_member(&mut *tx, &owner).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_project(&self, id: &str) -> Result<Option<Project>> {
        Ok(sqlx::query_as(&format!("SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn list_projects(
        &self,
        username: &str,
        owner: Option<&str>,
        name: Option<&str>,
        page: Page,
    ) -> Result<(Vec<Project>, i64)> {
        let from = format!("FROM members m JOIN projects p ON p.id = m.resource_id \
             WHERE m.kind = {PROJECT} AND m.username = $1 \
             AND ($2 IS NULL OR p.owner = $2) AND ($3 IS NULL OR p.name = $3)");
        let (total,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) {from}"))
            .bind(username)
            .bind(owner)
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        let items = sqlx::query_as(&format!(
            "SELECT {PROJECT_COLUMNS} {from} ORDER BY p.created_at, p.id LIMIT $4 OFFSET $5"
        ))
        .bind(username)
        .bind(owner)
        .bind(name)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        Ok((items, total))
    }

    async fn update_project(&self, project: &Project) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE projects SET name = $1, description = $2, billing_group = $3, category = $4, \
             tags = $5, settings = $6, is_public = $7, modified_at = $8 WHERE id = $9",
        )
        .bind(&project.name)
        .bind(&project.description)
        .bind(&project.billing_group)
        .bind(&project.category)
        .bind(Json(&project.tags))
        .bind(Json(&project.settings))
        .bind(project.is_public)
        .bind(project.modified_at)
        .bind(&project.id)
        .execute(&mut *self.writer(&self.pool).await?)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_project(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write(&self.pool).await?;
        let gone = sqlx::query("DELETE FROM projects WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if gone.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "UPDATE blobs SET refs = refs - (SELECT COUNT(*) FROM files f \
             WHERE f.project_id = $1 AND f.blob_id = blobs.id) \
             WHERE id IN (SELECT blob_id FROM files WHERE project_id = $1 AND blob_id IS NOT NULL)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM files WHERE project_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM uploads WHERE project_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM members WHERE kind = $1 AND resource_id = $2")
            .bind(MemberKind::Project)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_member(&self, kind: MemberKind, resource_id: &str, username: &str) -> Result<Option<Member>> {
        Ok(sqlx::query_as(
            "SELECT kind, resource_id, username, read, copy, write, execute, admin FROM members \
             WHERE kind = $1 AND resource_id = $2 AND username = $3",
        )
        .bind(kind)
        .bind(resource_id)
        .bind(username)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_members(&self, kind: MemberKind, resource_id: &str, page: Page) -> Result<(Vec<Member>, i64)> {
        let (total,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM members WHERE kind = $1 AND resource_id = $2")
                .bind(kind)
                .bind(resource_id)
                .fetch_one(&self.pool)
                .await?;
        let items = sqlx::query_as(
            "SELECT kind, resource_id, username, read, copy, write, execute, admin FROM members \
             WHERE kind = $1 AND resource_id = $2 ORDER BY username LIMIT $3 OFFSET $4",
        )
        .bind(kind)
        .bind(resource_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        Ok((items, total))
    }

    async fn put_member(&self, m: &Member) -> Result<()> {
        upsert_member(&mut *self.writer(&self.pool).await?, m).await?;
        Ok(())
    }

    async fn delete_member(&self, kind: MemberKind, resource_id: &str, username: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM members WHERE kind = $1 AND resource_id = $2 AND username = $3")
            .bind(kind)
            .bind(resource_id)
            .bind(username)
            .execute(&mut *self.writer(&self.pool).await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_volume(&self, v: &VolumeRec) -> Result<(), StoreError> {
        let mut tx = self.begin_write(&self.pool).await?;
        sqlx::query(
            "INSERT INTO volumes (id, owner, name, description, access_mode, active, service, secret, \
             created_at, modified_at, uid) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&v.id)
        .bind(&v.owner)
        .bind(&v.name)
        .bind(&v.description)
        .bind(v.access_mode)
        .bind(v.active)
        .bind(Json(&v.service))
        .bind(&v.secret)
        .bind(v.created_at)
        .bind(v.modified_at)
        .bind(&v.uid)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let perms = crate::Perms { execute: false, ..crate::Perms::ALL };
        let owner = Member { kind: MemberKind::Volume, resource_id: v.id.clone(), username: v.owner.clone(), perms };
        upsert_member(&mut *tx, &owner).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_volume(&self, id: &str) -> Result<Option<VolumeRec>> {
        Ok(sqlx::query_as(&format!("SELECT {VOLUME_COLUMNS} FROM volumes v WHERE v.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn list_volumes(&self, username: &str, page: Page) -> Result<(Vec<VolumeRec>, i64)> {
        let from = format!("FROM members m JOIN volumes v ON v.id = m.resource_id \
             WHERE m.kind = {VOLUME} AND m.username = $1");
        let (total,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) {from}"))
            .bind(username)
            .fetch_one(&self.pool)
            .await?;
        let items = sqlx::query_as(&format!(
            "SELECT {VOLUME_COLUMNS} {from} ORDER BY v.created_at, v.id LIMIT $2 OFFSET $3"
        ))
        .bind(username)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        Ok((items, total))
    }

    async fn update_volume(&self, v: &VolumeRec) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE volumes SET description = $1, access_mode = $2, active = $3, service = $4, \
             secret = $5, modified_at = $6 WHERE id = $7",
        )
        .bind(&v.description)
        .bind(v.access_mode)
        .bind(v.active)
        .bind(Json(&v.service))
        .bind(&v.secret)
        .bind(v.modified_at)
        .bind(&v.id)
        .execute(&mut *self.writer(&self.pool).await?)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_volume(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write(&self.pool).await?;
        let alias: Option<(String,)> = sqlx::query_as("SELECT id FROM files WHERE volume_id = $1 LIMIT 1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if alias.is_some() {
            return Err(StoreError::InUse);
        }
        if unfinished_jobs(&mut tx, id).await? > 0 {
            return Err(StoreError::Busy);
        }
        let gone = sqlx::query("DELETE FROM volumes WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if gone.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM members WHERE kind = $1 AND resource_id = $2")
            .bind(MemberKind::Volume)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_file(&self, id: &str) -> Result<Option<FileRec>> {
        Ok(sqlx::query_as(&format!("{FILE_SELECT} WHERE f.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn get_files(&self, ids: &[String]) -> Result<Vec<FileRec>> {
        let mut qb = QueryBuilder::<Db>::new(format!("{FILE_SELECT} WHERE f.id IN ("));
        push_list(&mut qb, ids);
        Ok(qb.build_query_as().fetch_all(&self.pool).await?)
    }

    async fn list_children(
        &self,
        parent_id: &str,
        filter: &FileFilter,
        page: Page,
    ) -> Result<(Vec<FileRec>, i64)> {
        let mut count = QueryBuilder::<Db>::new("SELECT COUNT(*) FROM files f");
        push_file_filter(&mut count, parent_id, filter);
        let (total,): (i64,) = count.build_query_as().fetch_one(&self.pool).await?;
        let mut select = QueryBuilder::<Db>::new(FILE_SELECT);
        push_file_filter(&mut select, parent_id, filter);
        select
            .push(" ORDER BY f.is_folder DESC, f.name, f.id LIMIT ")
            .push_bind(page.limit)
            .push(" OFFSET ")
            .push_bind(page.offset);
        let items = select.build_query_as().fetch_all(&self.pool).await?;
        Ok((items, total))
    }

    async fn create_file(&self, file: &FileRec) -> Result<(), StoreError> {
        let mut tx = self.begin_write(&self.pool).await?;
        if let Some(blob_id) = &file.blob_id {
            let held = sqlx::query("UPDATE blobs SET refs = refs + 1 WHERE id = $1 AND NOT deleting")
                .bind(blob_id)
                .execute(&mut *tx)
                .await?;
            if held.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
        }
        if let Some(parent) = &file.parent_id {
            check_parent(&mut tx, &file.project_id, parent).await?;
        }
        insert_file(&mut tx, file).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_file(&self, file: &FileRec) -> Result<(), StoreError> {
        let mut tx = self.begin_write(&self.pool).await?;
        let kind: Option<(String, bool)> = sqlx::query_as("SELECT project_id, is_folder FROM files WHERE id = $1")
            .bind(&file.id)
            .fetch_optional(&mut *tx)
            .await?;
        let (project_id, is_folder) = kind.ok_or(StoreError::NotFound)?;
        if is_folder {
            // Updates of a project's folders take turns on the project row (Postgres), before
            // any file row: two crossing folder moves can then neither both pass the subtree
            // check and make a cycle, nor wait on each other's rows.
            sqlx::query(&format!("SELECT id FROM projects WHERE id = $1{ROW_LOCK}"))
                .bind(&project_id)
                .fetch_optional(&mut *tx)
                .await?;
        }
        let current: Option<(Option<String>,)> =
            sqlx::query_as(&format!("SELECT parent_id FROM files WHERE id = $1{ROW_LOCK}"))
                .bind(&file.id)
                .fetch_optional(&mut *tx)
                .await?;
        let (old_parent,) = current.ok_or(StoreError::NotFound)?;
        if file.parent_id != old_parent {
            let parent = file.parent_id.as_deref().ok_or(StoreError::NoParent)?;
            if is_folder {
                check_outside(&mut tx, &file.id, parent).await?;
            }
            check_parent(&mut tx, &project_id, parent).await?;
        }
        let done = sqlx::query(
            "UPDATE files SET name = $1, parent_id = $2, metadata = $3, tags = $4, modified_at = $5 WHERE id = $6",
        )
        .bind(&file.name)
        .bind(&file.parent_id)
        .bind(Json(&file.metadata))
        .bind(Json(&file.tags))
        .bind(file.modified_at)
        .bind(&file.id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_file(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write(&self.pool).await?;
        remove_file(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_upload(&self, u: &Upload) -> Result<()> {
        sqlx::query(
            "INSERT INTO uploads (id, owner, project_id, parent_id, name, size, part_size, overwrite, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&u.id)
        .bind(&u.owner)
        .bind(&u.project_id)
        .bind(&u.parent_id)
        .bind(&u.name)
        .bind(u.size)
        .bind(u.part_size)
        .bind(u.overwrite)
        .bind(u.created_at)
        .bind(u.expires_at)
        .execute(&mut *self.writer(&self.pool).await?)
        .await?;
        Ok(())
    }

    async fn get_upload(&self, id: &str) -> Result<Option<Upload>> {
        Ok(sqlx::query_as(
            "SELECT id, owner, project_id, parent_id, name, size, part_size, overwrite, created_at, \
             expires_at FROM uploads WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn put_part(&self, upload_id: &str, part: &Part, expires_at: i64) -> Result<bool> {
        let mut tx = self.begin_write(&self.pool).await?;
        let alive = sqlx::query("UPDATE uploads SET expires_at = $1 WHERE id = $2")
            .bind(expires_at)
            .bind(upload_id)
            .execute(&mut *tx)
            .await?;
        if alive.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO upload_parts (upload_id, part_number, size, etag) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (upload_id, part_number) DO UPDATE SET size = excluded.size, etag = excluded.etag",
        )
        .bind(upload_id)
        .bind(part.part_number)
        .bind(part.size)
        .bind(&part.etag)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_parts(&self, upload_id: &str) -> Result<Vec<Part>> {
        Ok(sqlx::query_as(
            "SELECT part_number, size, etag FROM upload_parts WHERE upload_id = $1 ORDER BY part_number",
        )
        .bind(upload_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn delete_upload(&self, id: &str) -> Result<bool> {
        let mut tx = self.begin_write(&self.pool).await?;
        let done = sqlx::query("DELETE FROM uploads WHERE id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM upload_parts WHERE upload_id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn complete_upload(
        &self,
        upload_id: Option<&str>,
        blob: &Blob,
        file: &FileRec,
        replace: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write(&self.pool).await?;
        if let Some(upload_id) = upload_id {
            // The uploader must still be allowed to write the project now, not only when they started.
            let (may_write,): (bool,) = sqlx::query_as(&format!(
                "SELECT COALESCE(u.is_admin, FALSE) OR COALESCE(m.write OR m.admin, FALSE) FROM uploads up \
                 LEFT JOIN users u ON u.username = up.owner \
                 LEFT JOIN members m ON m.kind = {PROJECT} AND m.resource_id = up.project_id AND m.username = up.owner \
                 WHERE up.id = $1",
            ))
            .bind(upload_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
            if !may_write {
                return Err(StoreError::Refused(crate::Refusal::NoProjectRight));
            }
            let gone = sqlx::query("DELETE FROM uploads WHERE id = $1").bind(upload_id).execute(&mut *tx).await?;
            if gone.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query("DELETE FROM upload_parts WHERE upload_id = $1")
                .bind(upload_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO blobs (id, size, md5, crc32c, refs, deleting, created_at) \
             VALUES ($1, $2, $3, $4, 1, FALSE, $5)",
        )
        .bind(&blob.id)
        .bind(blob.size)
        .bind(&blob.md5)
        .bind(&blob.crc32c)
        .bind(file.created_at)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        // The folder may have been deleted while the bytes arrived; then nothing is written,
        // and the upload's bytes stay with its row for the upload sweeper.
        check_parent(&mut tx, &file.project_id, file.parent_id.as_deref().unwrap_or_default()).await?;
        if let Some(old) = replace {
            remove_file(&mut tx, old).await?;
        }
        insert_file(&mut tx, file).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn expired_uploads(&self, now: i64, limit: i64) -> Result<Vec<Upload>> {
        Ok(sqlx::query_as(
            "SELECT id, owner, project_id, parent_id, name, size, part_size, overwrite, created_at, \
             expires_at FROM uploads WHERE expires_at < $1 ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn insert_exports(&self, jobs: &[ExportRec], idempotent: Option<&Idempotent>) -> Result<(), StoreError> {
        let mut tx = self.begin_write(&self.pool).await?;
        if let Some(i) = idempotent {
            sqlx::query("INSERT INTO idempotency (owner, key, request, response, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&i.owner)
                .bind(&i.key)
                .bind(&i.request)
                .bind(&i.response)
                .bind(i.created_at)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        // One statement per 100 rows (12 binds each) keeps well under both engines' limits.
        for chunk in jobs.chunks(100) {
            let mut qb = QueryBuilder::<Db>::new(
                "INSERT INTO exports (id, owner, file_id, volume_id, volume_uid, location, object_key, \
                 properties, overwrite, copy_only, state, bytes_total, created_at) ",
            );
            qb.push_values(chunk, |mut row, j| {
                row.push_bind(&j.id)
                    .push_bind(&j.owner)
                    .push_bind(&j.file_id)
                    .push_bind(&j.volume_id)
                    .push_bind(&j.volume_uid)
                    .push_bind(&j.location)
                    .push_bind(&j.object_key)
                    .push_bind(Json(&j.properties))
                    .push_bind(j.overwrite)
                    .push_bind(j.copy_only)
                    .push_bind(j.state)
                    .push_bind(j.bytes_total)
                    .push_bind(j.created_at);
            });
            qb.build().execute(&mut *tx).await.map_err(classify)?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_idempotent(&self, owner: &str, key: &str) -> Result<Option<Idempotent>> {
        Ok(sqlx::query_as("SELECT owner, key, request, response, created_at FROM idempotency WHERE owner = $1 AND key = $2")
            .bind(owner)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn get_export(&self, id: &str) -> Result<Option<ExportRec>> {
        Ok(sqlx::query_as(&format!("SELECT {EXPORT_COLUMNS} FROM exports WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn get_exports(&self, ids: &[String]) -> Result<Vec<ExportRec>> {
        let mut qb = QueryBuilder::<Db>::new(format!("SELECT {EXPORT_COLUMNS} FROM exports WHERE id IN ("));
        push_list(&mut qb, ids);
        Ok(qb.build_query_as().fetch_all(&self.pool).await?)
    }

    async fn list_exports(&self, owner: &str, volume_id: Option<&str>, states: &[JobState], page: Page) -> Result<(Vec<ExportRec>, i64)> {
        list_jobs(&self.pool, "exports", EXPORT_COLUMNS, owner, &[("volume_id", volume_id)], states, page).await
    }

    async fn moving_exports(&self, file_ids: &[String]) -> Result<Vec<(String, String)>> {
        if file_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Db>::new(format!(
            "SELECT file_id, id FROM exports{MOVES_INDEX} WHERE NOT copy_only AND state IN {UNFINISHED} AND file_id IN ("
        ));
        push_list(&mut qb, file_ids);
        Ok(qb.build_query_as().fetch_all(&self.pool).await?)
    }

    async fn runnable_export_groups(&self, now: i64, limit: i64) -> Result<Vec<(String, String)>> {
        let runnable = runnable();
        Ok(sqlx::query_as(&format!(
            "SELECT owner, volume_id FROM exports WHERE {runnable} GROUP BY owner, volume_id ORDER BY MIN(seq) LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.jobs_pool)
        .await?)
    }

    async fn claim_exports(&self, owner: &str, volume_id: &str, node: &str, now: i64, lease_until: i64, max: i64) -> Result<Vec<ExportRec>> {
        let mut tx = self.begin_write(&self.jobs_pool).await?;
        // The picked rows need no second look at their state: SQLite has one writer, and
        // Postgres re-checks rows it locks. A condition on state in the UPDATE would also make
        // SQLite walk every pending job instead of looking up the picked ones by seq.
        let claimed = sqlx::query_as(&format!(
            "WITH picked AS MATERIALIZED (SELECT e.seq FROM exports e \
               WHERE e.state = {PENDING} AND e.owner = $4 AND e.volume_id = $5 AND e.next_attempt_at <= $1 \
               AND NOT EXISTS (SELECT 1 FROM exports o WHERE o.volume_id = e.volume_id \
                 AND o.object_key = e.object_key AND o.seq < e.seq AND o.state IN {UNFINISHED}) \
               ORDER BY e.seq LIMIT $6{CLAIM_LOCK}) \
             UPDATE exports SET state = $7, lease_owner = $2, lease_expires_at = $3, \
             attempt = attempt + 1, started_at = COALESCE(started_at, $1) \
             WHERE seq IN (SELECT seq FROM picked) \
             RETURNING {EXPORT_COLUMNS}"
        ))
        .bind(now)
        .bind(node)
        .bind(lease_until)
        .bind(owner)
        .bind(volume_id)
        .bind(max)
        .bind(JobState::Running)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn claimed_sources(&self, file_ids: &[String], volume_ids: &[String]) -> Result<(Vec<FileRec>, Vec<VolumeRec>)> {
        let mut conn = self.jobs_pool.acquire().await?;
        let mut files = QueryBuilder::<Db>::new(format!("{FILE_SELECT} WHERE f.id IN ("));
        push_list(&mut files, file_ids);
        let files = files.build_query_as().fetch_all(&mut *conn).await?;
        let mut volumes = QueryBuilder::<Db>::new(format!("SELECT {VOLUME_COLUMNS} FROM volumes v WHERE v.id IN ("));
        push_list(&mut volumes, volume_ids);
        let volumes = volumes.build_query_as().fetch_all(&mut *conn).await?;
        Ok((files, volumes))
    }

    async fn unfinished_volume_jobs(&self, volume_id: &str) -> Result<i64> {
        let mut conn = self.pool.acquire().await?;
        Ok(unfinished_jobs(&mut conn, volume_id).await?)
    }

    async fn fail_volume_jobs(&self, volume_id: &str, error: &serde_json::Value) -> Result<u64> {
        let mut tx = self.begin_write(&self.jobs_pool).await?;
        let mut failed = 0;
        for table in ["exports", "imports"] {
            let done = sqlx::query(&format!(
                "UPDATE {table} SET state = $4, error = $1, attempt = attempt + 1, lease_owner = NULL, \
                 lease_expires_at = 0, finished_at = $2 WHERE state IN {UNFINISHED} AND volume_id = $3"
            ))
            .bind(Json(error))
            .bind(egress_core::util::now_ms())
            .bind(volume_id)
            .bind(JobState::Failed)
            .execute(&mut *tx)
            .await?;
            failed += done.rows_affected();
        }
        tx.commit().await?;
        Ok(failed)
    }

    async fn export_rights(&self, ids: &[String]) -> Result<Vec<JobRights>> {
        let mut conn = self.jobs_pool.acquire().await?;
        Ok(export_rights_in(&mut conn, ids).await?)
    }

    async fn import_rights(&self, id: &str) -> Result<Option<JobRights>> {
        Ok(sqlx::query_as(&import_rights_sql()).bind(id).fetch_optional(&self.jobs_pool).await?)
    }

    async fn expire_leases(&self, now: i64) -> Result<u64> {
        let mut expired = 0;
        for table in ["exports", "imports"] {
            let done = sqlx::query(&format!(
                "UPDATE {table} SET state = $2, lease_owner = NULL, next_attempt_at = 0 \
                 WHERE state = {RUNNING} AND lease_expires_at < $1"
            ))
            .bind(now)
            .bind(JobState::Pending)
            .execute(&mut *self.writer(&self.jobs_pool).await?)
            .await?;
            expired += done.rows_affected();
        }
        Ok(expired)
    }

    async fn renew_export(&self, id: &str, attempt: i64, lease_until: i64) -> Result<bool> {
        renew_lease(&mut *self.writer(&self.jobs_pool).await?, "exports", id, attempt, lease_until).await
    }

    async fn set_export_upload(&self, id: &str, attempt: i64, upload_id: Option<&str>) -> Result<bool> {
        let done = sqlx::query("UPDATE exports SET upload_id = $1 WHERE id = $2 AND attempt = $3 AND state = $4")
            .bind(upload_id)
            .bind(id)
            .bind(attempt)
            .bind(JobState::Running)
            .execute(&mut *self.writer(&self.jobs_pool).await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_export_progress(&self, id: &str, attempt: i64, bytes: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE exports SET bytes_copied = $1 WHERE id = $2 AND attempt = $3 AND state = $4")
            .bind(bytes)
            .bind(id)
            .bind(attempt)
            .bind(JobState::Running)
            .execute(&mut *self.writer(&self.jobs_pool).await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_exports(&self, ends: &[(&str, i64, &JobEnd)]) -> Result<Vec<Finished>, StoreError> {
        let now = egress_core::util::now_ms();
        let mut tx = self.begin_write(&self.jobs_pool).await?;
        // Lock the jobs first: later statements of this transaction then touch only jobs
        // whose lease is still ours, and no other node can expire or reclaim them meanwhile.
        let ids: Vec<String> = ends.iter().map(|(id, ..)| id.to_string()).collect();
        let mut qb = QueryBuilder::<Db>::new("SELECT id, attempt FROM exports WHERE state = ");
        qb.push_bind(JobState::Running).push(" AND id IN (");
        push_list(&mut qb, &ids);
        qb.push(ROW_LOCK);
        let running: HashMap<String, i64> = qb.build_query_as().fetch_all(&mut *tx).await?.into_iter().collect();
        let mut outcomes: Vec<Finished> = ends
            .iter()
            .map(|(id, attempt, _)| match running.get(*id) {
                Some(a) if a == attempt => Finished::Recorded,
                _ => Finished::LeaseLost,
            })
            .collect();
        // Rights hold at the moment of effect: a job whose owner lost them, or whose volume
        // changed, since the claim records its failure instead of its result.
        let completing: Vec<String> = (0..ends.len())
            .filter(|i| outcomes[*i] == Finished::Recorded && matches!(ends[*i].2, JobEnd::Completed { .. }))
            .map(|i| ends[i].0.to_string())
            .collect();
        if !completing.is_empty() {
            let refused: HashMap<String, crate::Refusal> = export_rights_in(&mut tx, &completing)
                .await?
                .into_iter()
                .filter_map(|r| r.refusal().map(|why| (r.id, why)))
                .collect();
            for (i, (id, ..)) in ends.iter().enumerate() {
                if let (Finished::Recorded, Some(why)) = (outcomes[i], refused.get(*id)) {
                    outcomes[i] = Finished::Refused(*why);
                }
            }
        }
        let owned = |i: &usize| outcomes[*i] == Finished::Recorded;

        // Moves flip their files, fenced by the blob each copy read.
        let moves: Vec<(usize, &Alias)> = (0..ends.len())
            .filter(owned)
            .filter_map(|i| match ends[i].2 {
                JobEnd::Completed { alias: Some(a), .. } => Some((i, a)),
                _ => None,
            })
            .collect();
        if !moves.is_empty() {
            let nothing = Alias::default();
            let mut qb = QueryBuilder::<Db>::new("WITH v (file_id, blob_id, volume_id, volume_uid, location) AS (");
            qb.push_values(padded(moves.iter().map(|(_, a)| *a).collect(), &nothing), |mut row, a| {
                row.push_bind(&a.file_id).push_bind(&a.blob_id).push_bind(&a.volume_id).push_bind(&a.volume_uid).push_bind(&a.location);
            });
            qb.push(") UPDATE files SET blob_id = NULL, volume_id = v.volume_id, volume_uid = v.volume_uid, location = v.location, modified_at = ")
                .push_bind(now)
                .push(" FROM v WHERE files.id = v.file_id AND files.blob_id = v.blob_id RETURNING files.id");
            let flipped: HashSet<String> = qb.build_query_scalar().fetch_all(&mut *tx).await?.into_iter().collect();
            let mut released: HashMap<&str, i64> = HashMap::new();
            for (i, a) in &moves {
                if flipped.contains(&a.file_id) {
                    *released.entry(a.blob_id.as_str()).or_default() += 1;
                } else {
                    outcomes[*i] = Finished::SourceChanged;
                }
            }
            if !released.is_empty() && !ROW_LOCK.is_empty() {
                // Lock shared blobs in one order, so group commits of several nodes cannot
                // deadlock on them.
                let mut ids: Vec<String> = released.keys().map(|id| id.to_string()).collect();
                ids.sort();
                let mut qb = QueryBuilder::<Db>::new("SELECT id FROM blobs WHERE id IN (");
                push_list(&mut qb, &ids);
                qb.push(" ORDER BY id").push(ROW_LOCK);
                qb.build().fetch_all(&mut *tx).await?;
            }
            if !released.is_empty() {
                let mut qb = QueryBuilder::<Db>::new("WITH d (id, n) AS (");
                qb.push_values(padded(released.iter().map(|(id, n)| (*id, *n)).collect(), ("", 0)), |mut row, (id, n)| {
                    row.push_bind(id).push_bind(n);
                });
                qb.push(") UPDATE blobs SET refs = refs - d.n FROM d WHERE blobs.id = d.id");
                qb.build().execute(&mut *tx).await?;
            }
        }

        // The ends still to record, by kind: one UPDATE per kind.
        let recorded: Vec<(&str, &JobEnd)> = (0..ends.len())
            .filter(|i| outcomes[*i] == Finished::Recorded)
            .map(|i| (ends[i].0, ends[i].2))
            .collect();
        let completed: Vec<(&str, i64)> = recorded
            .iter()
            .filter_map(|&(id, end)| match end {
                JobEnd::Completed { bytes, .. } => Some((id, *bytes)),
                _ => None,
            })
            .collect();
        if !completed.is_empty() {
            let mut qb = QueryBuilder::<Db>::new("WITH v (id, bytes) AS (");
            qb.push_values(padded(completed, ("", 0)), |mut row, (id, bytes)| {
                row.push_bind(id).push_bind(bytes);
            });
            qb.push(") UPDATE exports SET state = ")
                .push_bind(JobState::Completed)
                .push(", bytes_copied = v.bytes, error = NULL, lease_owner = NULL, upload_id = NULL, finished_at = ")
                .push_bind(now)
                .push(" FROM v WHERE exports.id = v.id");
            qb.build().execute(&mut *tx).await?;
        }
        let failed: Vec<(&str, &serde_json::Value)> = recorded
            .iter()
            .filter_map(|&(id, end)| match end {
                JobEnd::Failed { error } => Some((id, error)),
                _ => None,
            })
            .collect();
        if !failed.is_empty() {
            let mut qb = QueryBuilder::<Db>::new("WITH v (id, error) AS (");
            qb.push_values(padded(failed, ("", &serde_json::Value::Null)), |mut row, (id, error)| {
                row.push_bind(id).push_bind(Json(error));
            });
            qb.push(") UPDATE exports SET state = ")
                .push_bind(JobState::Failed)
                .push(", error = v.error, lease_owner = NULL, upload_id = NULL, finished_at = ")
                .push_bind(now)
                .push(" FROM v WHERE exports.id = v.id");
            qb.build().execute(&mut *tx).await?;
        }
        let retried: Vec<(&str, &serde_json::Value, i64)> = recorded
            .iter()
            .filter_map(|&(id, end)| match end {
                JobEnd::Retry { at, error } => Some((id, error, *at)),
                _ => None,
            })
            .collect();
        if !retried.is_empty() {
            let mut qb = QueryBuilder::<Db>::new("WITH v (id, error, next_at) AS (");
            qb.push_values(padded(retried, ("", &serde_json::Value::Null, 0)), |mut row, (id, error, at)| {
                row.push_bind(id).push_bind(Json(error)).push_bind(at);
            });
            qb.push(") UPDATE exports SET state = ")
                .push_bind(JobState::Pending)
                .push(", error = v.error, next_attempt_at = v.next_at, lease_owner = NULL, lease_expires_at = 0 \
                       FROM v WHERE exports.id = v.id");
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn insert_imports(&self, jobs: &[ImportRec]) -> Result<(), StoreError> {
        let mut tx = self.begin_write(&self.pool).await?;
        for j in jobs {
            sqlx::query(
                "INSERT INTO imports (id, owner, volume_id, volume_uid, location, project_id, parent_id, name, \
                 overwrite, autorename, preserve_folder_structure, state, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&j.id)
            .bind(&j.owner)
            .bind(&j.volume_id)
            .bind(&j.volume_uid)
            .bind(&j.location)
            .bind(&j.project_id)
            .bind(&j.parent_id)
            .bind(&j.name)
            .bind(j.overwrite)
            .bind(j.autorename)
            .bind(j.preserve_folder_structure)
            .bind(j.state)
            .bind(j.created_at)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_import(&self, id: &str) -> Result<Option<ImportRec>> {
        Ok(sqlx::query_as(&format!("SELECT {IMPORT_COLUMNS} FROM imports WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn list_imports(&self, owner: &str, project_id: Option<&str>, volume_id: Option<&str>, states: &[JobState], page: Page) -> Result<(Vec<ImportRec>, i64)> {
        let equal = [("project_id", project_id), ("volume_id", volume_id)];
        list_jobs(&self.pool, "imports", IMPORT_COLUMNS, owner, &equal, states, page).await
    }

    async fn claim_imports(&self, node: &str, now: i64, lease_until: i64, max: i64) -> Result<Vec<ImportRec>> {
        let mut tx = self.begin_write(&self.jobs_pool).await?;
        // As for exports: the picked rows are looked up by seq, with no second look at state.
        let runnable = runnable();
        let claimed = sqlx::query_as(&format!(
            "WITH picked AS MATERIALIZED (SELECT seq FROM imports WHERE {runnable} ORDER BY seq LIMIT $4{CLAIM_LOCK}) \
             UPDATE imports SET state = $5, lease_owner = $2, lease_expires_at = $3, \
             attempt = attempt + 1, started_at = COALESCE(started_at, $1) \
             WHERE seq IN (SELECT seq FROM picked) \
             RETURNING {IMPORT_COLUMNS}"
        ))
        .bind(now)
        .bind(node)
        .bind(lease_until)
        .bind(max)
        .bind(JobState::Running)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn renew_import(&self, id: &str, attempt: i64, lease_until: i64) -> Result<bool> {
        renew_lease(&mut *self.writer(&self.jobs_pool).await?, "imports", id, attempt, lease_until).await
    }

    async fn commit_import_batch(&self, job: &ImportRec, batch: &ImportBatch) -> Result<bool, StoreError> {
        let mut tx = self.begin_write(&self.jobs_pool).await?;
        let fenced = sqlx::query(
            "UPDATE imports SET objects_imported = objects_imported + $1, cursor = $2 \
             WHERE id = $3 AND attempt = $4 AND state = $5",
        )
        .bind(batch.aliases.len() as i64)
        .bind(&batch.cursor)
        .bind(&job.id)
        .bind(job.attempt)
        .bind(JobState::Running)
        .execute(&mut *tx)
        .await?;
        if fenced.rows_affected() == 0 {
            return Ok(false);
        }
        let rights: Option<JobRights> = sqlx::query_as(&import_rights_sql()).bind(&job.id).fetch_optional(&mut *tx).await?;
        if let Some(why) = rights.and_then(|r| r.refusal()) {
            return Err(StoreError::Refused(why));
        }
        // Everything this batch makes hangs under the job's destination folder.
        check_parent(&mut tx, &job.project_id, &job.parent_id).await?;
        let base = match &batch.top_folder {
            Some(name) => folder_in(&mut tx, &job.project_id, &job.parent_id, name).await?,
            None => job.parent_id.clone(),
        };
        let mut last = None;
        for alias in &batch.aliases {
            let mut folder = base.clone();
            for segment in &alias.folders {
                folder = folder_in(&mut tx, &job.project_id, &folder, segment).await?;
            }
            let mut file = FileRec::new(&job.project_id, Some(&folder), &alias.name, false);
            file.size = Some(alias.size);
            file.md5 = alias.md5.clone();
            file.volume_id = Some(job.volume_id.clone());
            file.volume_uid = Some(job.volume_uid.clone());
            file.location = Some(alias.location.clone());
            last = Some(insert_resolving(&mut tx, file, job.overwrite, job.autorename).await?);
        }
        if batch.done {
            let result = if job.is_folder() { Some(base) } else { last };
            sqlx::query(
                "UPDATE imports SET result_file_id = $1, finished_at = $2, error = NULL, \
                 lease_owner = NULL, state = $5 WHERE id = $3 AND attempt = $4",
            )
            .bind(result)
            .bind(egress_core::util::now_ms())
            .bind(&job.id)
            .bind(job.attempt)
            .bind(JobState::Completed)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn finish_import(&self, id: &str, attempt: i64, end: &JobEnd) -> Result<bool> {
        let now = egress_core::util::now_ms();
        let done = match end {
            JobEnd::Failed { error } => sqlx::query(
                "UPDATE imports SET error = $3, finished_at = $4, lease_owner = NULL, state = $5 \
                 WHERE id = $1 AND attempt = $2 AND state = $6",
            )
            .bind(id)
            .bind(attempt)
            .bind(Json(error))
            .bind(now)
            .bind(JobState::Failed)
            .bind(JobState::Running),
            JobEnd::Retry { at, error } => sqlx::query(
                "UPDATE imports SET error = $3, next_attempt_at = $4, lease_owner = NULL, \
                 lease_expires_at = 0, state = $5 WHERE id = $1 AND attempt = $2 AND state = $6",
            )
            .bind(id)
            .bind(attempt)
            .bind(Json(error))
            .bind(*at)
            .bind(JobState::Pending)
            .bind(JobState::Running),
            JobEnd::Completed { .. } => return Err(anyhow::anyhow!("imports complete through commit_import_batch")),
        }
        .execute(&mut *self.writer(&self.jobs_pool).await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn doomed_blobs(&self, limit: i64) -> Result<Vec<String>> {
        let mut tx = self.begin_write(&self.pool).await?;
        sqlx::query("UPDATE blobs SET deleting = TRUE WHERE refs <= 0 AND NOT deleting")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // Doomed blobs have no references: `refs <= 0` lets the partial index find them. No
        // ORDER BY: ordering by id made SQLite walk every blob in key order instead.
        let ids: Vec<(String,)> = sqlx::query_as("SELECT id FROM blobs WHERE refs <= 0 AND deleting LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    async fn checkpoint(&self) -> Result<()> {
        Ok(checkpoint(&self.pool).await?)
    }

    async fn forget_blobs(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut qb = QueryBuilder::<Db>::new("DELETE FROM blobs WHERE deleting AND id IN (");
        push_list(&mut qb, ids);
        qb.build().execute(&mut *self.writer(&self.pool).await?).await?;
        Ok(())
    }

    async fn export_state_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as("SELECT state, COUNT(*) FROM exports GROUP BY state ORDER BY state")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn platform_bytes(&self) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT project_id, CAST(SUM(size) AS BIGINT) FROM files WHERE blob_id IS NOT NULL \
             GROUP BY project_id ORDER BY project_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
