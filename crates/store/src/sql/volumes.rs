//! Volumes, and the jobs that still use one.

use super::*;

#[async_trait]
impl<E: Engine> VolumeStore for SqlStore<E> {
    async fn create_volume(&self, v: &VolumeRec) -> Result<(), StoreError> {
        let mut tx = self.engine.begin_write(&self.pool).await?;
        Self::query(
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
        let perms = crate::Perms {
            execute: false,
            ..crate::Perms::ALL
        };
        let owner = Member {
            kind: MemberKind::Volume,
            resource_id: v.id.clone(),
            username: v.owner.clone(),
            perms,
        };
        Self::upsert_member(&mut *tx, &owner).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_volume(&self, id: &str) -> Result<Option<VolumeRec>> {
        Ok(Self::query(format!(
            "SELECT {VOLUME_COLUMNS} FROM volumes v WHERE v.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_volumes(&self, username: &str, page: Page) -> Result<(Vec<VolumeRec>, i64)> {
        let from = format!(
            "FROM members m JOIN volumes v ON v.id = m.resource_id \
             WHERE m.kind = {VOLUME} AND m.username = $1"
        );
        let (total,): (i64,) = Self::query(format!("SELECT COUNT(*) {from}"))
            .bind(username)
            .fetch_one(&self.pool)
            .await?;
        let items = Self::query(format!(
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
        let done = Self::query(
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
        .execute(&mut *self.engine.writer(&self.pool).await?)
        .await?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_volume(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.engine.begin_write(&self.pool).await?;
        let alias: Option<(String,)> =
            Self::query("SELECT id FROM files WHERE volume_id = $1 LIMIT 1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if alias.is_some() {
            return Err(StoreError::InUse);
        }
        if Self::unfinished_jobs(&mut tx, id).await? > 0 {
            return Err(StoreError::Busy);
        }
        let gone = Self::query("DELETE FROM volumes WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if gone == 0 {
            return Err(StoreError::NotFound);
        }
        Self::query("DELETE FROM members WHERE kind = $1 AND resource_id = $2")
            .bind(MemberKind::Volume)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn unfinished_volume_jobs(&self, volume_id: &str) -> Result<i64> {
        let mut conn = self.pool.acquire().await?;
        Ok(Self::unfinished_jobs(&mut conn, volume_id).await?)
    }

    async fn fail_volume_jobs(&self, volume_id: &str, error: &serde_json::Value) -> Result<u64> {
        let mut tx = self.engine.begin_write(&self.jobs_pool).await?;
        let mut failed = 0;
        for table in ["exports", "imports"] {
            let done = Self::query(format!(
                "UPDATE {table} SET state = $4, error = $1, attempt = attempt + 1, lease_owner = NULL, \
                 lease_expires_at = 0, finished_at = $2 WHERE state IN {UNFINISHED} AND volume_id = $3"
            ))
            .bind(Json(error))
            .bind(egress_core::util::now_ms())
            .bind(volume_id)
            .bind(JobState::Failed)
            .execute(&mut *tx)
            .await?;
            failed += done;
        }
        tx.commit().await?;
        Ok(failed)
    }
}
