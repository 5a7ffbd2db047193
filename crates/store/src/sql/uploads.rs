//! Multipart uploads into a project.

use super::*;

#[async_trait]
impl<E: Engine> UploadStore for SqlStore<E> {
    async fn create_upload(&self, u: &Upload) -> Result<()> {
        Self::query(
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
        .execute(&mut *self.engine.writer(&self.pool).await?)
        .await?;
        Ok(())
    }

    async fn get_upload(&self, id: &str) -> Result<Option<Upload>> {
        Ok(Self::query(
            "SELECT id, owner, project_id, parent_id, name, size, part_size, overwrite, created_at, \
             expires_at FROM uploads WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn put_part(&self, upload_id: &str, part: &Part, expires_at: i64) -> Result<bool> {
        let mut tx = self.engine.begin_write(&self.pool).await?;
        let alive = Self::query("UPDATE uploads SET expires_at = $1 WHERE id = $2")
            .bind(expires_at)
            .bind(upload_id)
            .execute(&mut *tx)
            .await?;
        if alive == 0 {
            return Ok(false);
        }
        Self::query(
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
        Ok(Self::query(
            "SELECT part_number, size, etag FROM upload_parts WHERE upload_id = $1 ORDER BY part_number",
        )
        .bind(upload_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn delete_upload(&self, id: &str) -> Result<bool> {
        let mut tx = self.engine.begin_write(&self.pool).await?;
        let done = Self::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        Self::query("DELETE FROM upload_parts WHERE upload_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done > 0)
    }

    async fn complete_upload(
        &self,
        upload_id: Option<&str>,
        blob: &Blob,
        file: &FileRec,
        replace: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.engine.begin_write(&self.pool).await?;
        if let Some(upload_id) = upload_id {
            // The uploader must still be allowed to write the project now, not only when they started.
            let (may_write,): (bool,) = Self::query(format!(
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
            let gone = Self::query("DELETE FROM uploads WHERE id = $1")
                .bind(upload_id)
                .execute(&mut *tx)
                .await?;
            if gone == 0 {
                return Err(StoreError::NotFound);
            }
            Self::query("DELETE FROM upload_parts WHERE upload_id = $1")
                .bind(upload_id)
                .execute(&mut *tx)
                .await?;
        }
        Self::query(
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
        Self::check_parent(
            &mut tx,
            &file.project_id,
            file.parent_id.as_deref().unwrap_or_default(),
        )
        .await?;
        if let Some(old) = replace {
            Self::remove_file(&mut tx, old).await?;
        }
        Self::insert_file(&mut tx, file).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn expired_uploads(&self, now: i64, limit: i64) -> Result<Vec<Upload>> {
        Ok(Self::query(
            "SELECT id, owner, project_id, parent_id, name, size, part_size, overwrite, created_at, \
             expires_at FROM uploads WHERE expires_at < $1 ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
