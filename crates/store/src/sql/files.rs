//! Files, folders and the blobs they hold, with blob garbage collection (invariant 1: the sweeper frees only what a commit released).

use super::*;

#[async_trait]
impl<E: Engine> FileStore for SqlStore<E> {
    async fn get_file(&self, id: &str) -> Result<Option<FileRec>> {
        Ok(Self::query(format!("{FILE_SELECT} WHERE f.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn get_files(&self, ids: &[String]) -> Result<Vec<FileRec>> {
        let mut qb = Self::builder(format!("{FILE_SELECT} WHERE f.id IN ("));
        push_list(&mut qb, ids);
        Ok(qb.build().fetch_all(&self.pool).await?)
    }

    async fn list_children(
        &self,
        parent_id: &str,
        filter: &FileFilter,
        page: Page,
    ) -> Result<(Vec<FileRec>, i64)> {
        let mut count = Self::builder("SELECT COUNT(*) FROM files f");
        Self::push_file_filter(&mut count, parent_id, filter);
        let (total,): (i64,) = count.build().fetch_one(&self.pool).await?;
        let mut select = Self::builder(FILE_SELECT);
        Self::push_file_filter(&mut select, parent_id, filter);
        select
            .push(" ORDER BY f.is_folder DESC, f.name, f.id LIMIT ")
            .push_bind(page.limit)
            .push(" OFFSET ")
            .push_bind(page.offset);
        let items = select.build().fetch_all(&self.pool).await?;
        Ok((items, total))
    }

    async fn scroll_children(
        &self,
        parent_id: &str,
        filter: &FileFilter,
        after: Option<&ChildKey>,
        limit: i64,
    ) -> Result<(Vec<FileRec>, i64)> {
        let mut count = Self::builder("SELECT COUNT(*) FROM files f");
        Self::push_file_filter(&mut count, parent_id, filter);
        let (total,): (i64,) = count.build().fetch_one(&self.pool).await?;
        let mut select = Self::builder(FILE_SELECT);
        Self::push_file_filter(&mut select, parent_id, filter);
        if let Some(key) = after {
            // After `key` in the order below: a later group (files after folders), or the same
            // group and a later (name, id). The same comparisons as the ORDER BY, so the same
            // collation.
            select
                .push(" AND (f.is_folder < ")
                .push_bind(key.is_folder)
                .push(" OR (f.is_folder = ")
                .push_bind(key.is_folder)
                .push(" AND (f.name > ")
                .push_bind(key.name.as_str())
                .push(" OR (f.name = ")
                .push_bind(key.name.as_str())
                .push(" AND f.id > ")
                .push_bind(key.id.as_str())
                .push("))))");
        }
        select
            .push(" ORDER BY f.is_folder DESC, f.name, f.id LIMIT ")
            .push_bind(limit);
        let items = select.build().fetch_all(&self.pool).await?;
        Ok((items, total))
    }

    async fn create_file(&self, file: &FileRec) -> Result<(), StoreError> {
        let mut tx = self.engine.begin_write(&self.pool).await?;
        if let Some(blob_id) = &file.blob_id {
            let held =
                Self::query("UPDATE blobs SET refs = refs + 1 WHERE id = $1 AND NOT deleting")
                    .bind(blob_id)
                    .execute(&mut *tx)
                    .await?;
            if held == 0 {
                return Err(StoreError::NotFound);
            }
        }
        if let Some(parent) = &file.parent_id {
            Self::check_parent(&mut tx, &file.project_id, parent).await?;
        }
        Self::insert_file(&mut tx, file).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_file(&self, file: &FileRec) -> Result<(), StoreError> {
        let mut tx = self.engine.begin_write(&self.pool).await?;
        let kind: Option<(String, bool)> =
            Self::query("SELECT project_id, is_folder FROM files WHERE id = $1")
                .bind(&file.id)
                .fetch_optional(&mut *tx)
                .await?;
        let (project_id, is_folder) = kind.ok_or(StoreError::NotFound)?;
        if is_folder {
            // Updates of a project's folders take turns on the project row (Postgres), before
            // any file row: two crossing folder moves can then neither both pass the subtree
            // check and make a cycle, nor wait on each other's rows.
            let row_lock = E::ROW_LOCK;
            Self::query(format!("SELECT id FROM projects WHERE id = $1{row_lock}"))
                .bind(&project_id)
                .execute(&mut *tx)
                .await?;
        }
        let row_lock = E::ROW_LOCK;
        let current: Option<(Option<String>,)> = Self::query(format!(
            "SELECT parent_id FROM files WHERE id = $1{row_lock}"
        ))
        .bind(&file.id)
        .fetch_optional(&mut *tx)
        .await?;
        let (old_parent,) = current.ok_or(StoreError::NotFound)?;
        if file.parent_id != old_parent {
            let parent = file.parent_id.as_deref().ok_or(StoreError::NoParent)?;
            if is_folder {
                Self::check_outside(&mut tx, &file.id, parent).await?;
            }
            Self::check_parent(&mut tx, &project_id, parent).await?;
        }
        let done = Self::query(
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
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_file(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.engine.begin_write(&self.pool).await?;
        Self::remove_file(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn doomed_blobs(&self, limit: i64) -> Result<Vec<String>> {
        let mut tx = self.engine.begin_write(&self.pool).await?;
        Self::query("UPDATE blobs SET deleting = TRUE WHERE refs <= 0 AND NOT deleting")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // Doomed blobs have no references: `refs <= 0` lets the partial index find them. No
        // ORDER BY: ordering by id made SQLite walk every blob in key order instead.
        let ids: Vec<(String,)> =
            Self::query("SELECT id FROM blobs WHERE refs <= 0 AND deleting LIMIT $1")
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    async fn forget_blobs(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut qb = Self::builder("DELETE FROM blobs WHERE deleting AND id IN (");
        push_list(&mut qb, ids);
        qb.build()
            .execute(&mut *self.engine.writer(&self.pool).await?)
            .await?;
        Ok(())
    }

    async fn platform_bytes(&self) -> Result<Vec<(String, i64)>> {
        Ok(Self::query(
            "SELECT project_id, CAST(SUM(size) AS BIGINT) FROM files WHERE blob_id IS NOT NULL \
             GROUP BY project_id ORDER BY project_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
