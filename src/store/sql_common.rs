// The SQL both engines share. `sqlite.rs` and `postgres.rs` each `include!` this file after
// defining `Db` (the sqlx database), `This` (their store type, with a `pool` field), `ENGINE`,
// `begin_write` and `push_has_tag`. Placeholders are `$N`, numbered in order of first use,
// which both engines accept; the few dialect differences live in those two files.

use crate::store::{
    classify, Blob, FileFilter, FileRec, Member, Page, Part, Project, Store, StoreError, Upload,
    User, VolumeRec,
};
use anyhow::Result;
use async_trait::async_trait;
use sqlx::types::Json;
use sqlx::QueryBuilder;

const FILE_SELECT: &str = "SELECT f.id, f.project_id, f.parent_id, f.name, f.is_folder, f.size, \
     f.blob_id, f.volume_id, f.location, f.is_public, f.metadata, f.tags, f.created_at, \
     f.modified_at, b.md5, b.crc32c FROM files f LEFT JOIN blobs b ON b.id = f.blob_id";

const VOLUME_COLUMNS: &str = "v.id, v.owner, v.name, v.description, v.access_mode, v.active, \
     v.service, v.secret, v.created_at, v.modified_at";

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
    tx: &mut sqlx::Transaction<'_, Db>,
    file: &FileRec,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO files (id, project_id, parent_id, name, is_folder, size, blob_id, volume_id, \
         location, is_public, metadata, tags, created_at, modified_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&file.id)
    .bind(&file.project_id)
    .bind(&file.parent_id)
    .bind(&file.name)
    .bind(file.is_folder)
    .bind(file.size)
    .bind(&file.blob_id)
    .bind(&file.volume_id)
    .bind(&file.location)
    .bind(file.is_public)
    .bind(Json(&file.metadata))
    .bind(Json(&file.tags))
    .bind(file.created_at)
    .bind(file.modified_at)
    .execute(&mut **tx)
    .await
    .map_err(classify)?;
    Ok(())
}

/// Deletes one file row inside `tx` and drops its blob reference. Folders must be empty.
async fn remove_file(tx: &mut sqlx::Transaction<'_, Db>, id: &str) -> Result<(), StoreError> {
    let row: Option<(bool, Option<String>)> =
        sqlx::query_as("SELECT is_folder, blob_id FROM files WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    let (is_folder, blob_id) = row.ok_or(StoreError::NotFound)?;
    if is_folder {
        let child: Option<(String,)> = sqlx::query_as("SELECT id FROM files WHERE parent_id = $1 LIMIT 1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        if child.is_some() {
            return Err(StoreError::NotEmpty);
        }
    }
    sqlx::query("DELETE FROM files WHERE id = $1").bind(id).execute(&mut **tx).await?;
    if let Some(blob_id) = blob_id {
        sqlx::query("UPDATE blobs SET refs = refs - 1 WHERE id = $1")
            .bind(blob_id)
            .execute(&mut **tx)
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
        let mut tx = begin_write(&self.pool).await?;
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
        .bind(crate::util::now_ms())
        .bind(username)
        .execute(&self.pool)
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
        let mut tx = begin_write(&self.pool).await?;
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
        sqlx::query(
            "INSERT INTO members (kind, resource_id, username, read, copy, write, execute, admin) \
             VALUES ($1, $2, $3, TRUE, TRUE, TRUE, TRUE, TRUE)",
        )
        .bind(crate::store::PROJECT)
        .bind(&project.id)
        .bind(&project.created_by)
        .execute(&mut *tx)
        .await?;
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
        let from = "FROM members m JOIN projects p ON p.id = m.resource_id \
             WHERE m.kind = 'project' AND m.username = $1 \
             AND ($2 IS NULL OR p.owner = $2) AND ($3 IS NULL OR p.name = $3)";
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
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_project(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.pool).await?;
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
        sqlx::query("DELETE FROM members WHERE kind = 'project' AND resource_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_member(&self, kind: &str, resource_id: &str, username: &str) -> Result<Option<Member>> {
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

    async fn list_members(&self, kind: &str, resource_id: &str, page: Page) -> Result<(Vec<Member>, i64)> {
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
        sqlx::query(
            "INSERT INTO members (kind, resource_id, username, read, copy, write, execute, admin) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (kind, resource_id, username) DO UPDATE \
             SET read = excluded.read, copy = excluded.copy, write = excluded.write, \
             execute = excluded.execute, admin = excluded.admin",
        )
        .bind(&m.kind)
        .bind(&m.resource_id)
        .bind(&m.username)
        .bind(m.perms.read)
        .bind(m.perms.copy)
        .bind(m.perms.write)
        .bind(m.perms.execute)
        .bind(m.perms.admin)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_member(&self, kind: &str, resource_id: &str, username: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM members WHERE kind = $1 AND resource_id = $2 AND username = $3")
            .bind(kind)
            .bind(resource_id)
            .bind(username)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_volume(&self, v: &VolumeRec) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(
            "INSERT INTO volumes (id, owner, name, description, access_mode, active, service, secret, \
             created_at, modified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&v.id)
        .bind(&v.owner)
        .bind(&v.name)
        .bind(&v.description)
        .bind(&v.access_mode)
        .bind(v.active)
        .bind(Json(&v.service))
        .bind(&v.secret)
        .bind(v.created_at)
        .bind(v.modified_at)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        sqlx::query(
            "INSERT INTO members (kind, resource_id, username, read, copy, write, execute, admin) \
             VALUES ($1, $2, $3, TRUE, TRUE, TRUE, FALSE, TRUE)",
        )
        .bind(crate::store::VOLUME)
        .bind(&v.id)
        .bind(&v.owner)
        .execute(&mut *tx)
        .await?;
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
        let from = "FROM members m JOIN volumes v ON v.id = m.resource_id \
             WHERE m.kind = 'volume' AND m.username = $1";
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
        .bind(&v.access_mode)
        .bind(v.active)
        .bind(Json(&v.service))
        .bind(&v.secret)
        .bind(v.modified_at)
        .bind(&v.id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_volume(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.pool).await?;
        let alias: Option<(String,)> = sqlx::query_as("SELECT id FROM files WHERE volume_id = $1 LIMIT 1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if alias.is_some() {
            return Err(StoreError::InUse);
        }
        let gone = sqlx::query("DELETE FROM volumes WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if gone.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM members WHERE kind = 'volume' AND resource_id = $1")
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
        let mut tx = begin_write(&self.pool).await?;
        if let Some(blob_id) = &file.blob_id {
            let held = sqlx::query("UPDATE blobs SET refs = refs + 1 WHERE id = $1 AND NOT deleting")
                .bind(blob_id)
                .execute(&mut *tx)
                .await?;
            if held.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
        }
        insert_file(&mut tx, file).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_file(&self, file: &FileRec) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE files SET name = $1, metadata = $2, tags = $3, modified_at = $4 WHERE id = $5",
        )
        .bind(&file.name)
        .bind(Json(&file.metadata))
        .bind(Json(&file.tags))
        .bind(file.modified_at)
        .bind(&file.id)
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_file(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = begin_write(&self.pool).await?;
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
        .execute(&self.pool)
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
        let mut tx = begin_write(&self.pool).await?;
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
        let mut tx = begin_write(&self.pool).await?;
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
        let mut tx = begin_write(&self.pool).await?;
        if let Some(upload_id) = upload_id {
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

    async fn doomed_blobs(&self, limit: i64) -> Result<Vec<String>> {
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query("UPDATE blobs SET deleting = TRUE WHERE refs <= 0 AND NOT deleting")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let ids: Vec<(String,)> = sqlx::query_as("SELECT id FROM blobs WHERE deleting ORDER BY id LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    async fn forget_blob(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM blobs WHERE id = $1 AND deleting").bind(id).execute(&self.pool).await?;
        Ok(())
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
