//! The import queue: submission, claims with a lease and fenced batch commits.

use super::*;

#[async_trait]
impl<E: Engine> ImportQueue for SqlStore<E> {
    async fn import_rights(&self, id: &str) -> Result<Option<JobRights>> {
        Ok(Self::query(import_rights_sql())
            .bind(id)
            .fetch_optional(&self.jobs_pool)
            .await?)
    }

    async fn insert_imports(&self, jobs: &[ImportRec]) -> Result<(), StoreError> {
        let mut tx = self.engine.begin_write(&self.pool).await?;
        for j in jobs {
            Self::query(
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
        Ok(Self::query(format!(
            "SELECT {IMPORT_COLUMNS} FROM imports WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_imports(
        &self,
        owner: &str,
        project_id: Option<&str>,
        volume_id: Option<&str>,
        states: &[JobState],
        page: Page,
    ) -> Result<(Vec<ImportRec>, i64)> {
        let equal = [("project_id", project_id), ("volume_id", volume_id)];
        Self::list_jobs(
            &self.pool,
            "imports",
            IMPORT_COLUMNS,
            owner,
            &equal,
            states,
            page,
        )
        .await
    }

    async fn claim_imports(
        &self,
        node: &str,
        now: i64,
        lease_until: i64,
        max: i64,
    ) -> Result<Vec<ImportRec>> {
        let mut tx = self.engine.begin_write(&self.jobs_pool).await?;
        // As for exports: the picked rows are looked up by seq, with no second look at state.
        let runnable = runnable();
        let claim_lock = E::CLAIM_LOCK;
        let claimed = Self::query(format!(
            "WITH picked AS MATERIALIZED (SELECT seq FROM imports WHERE {runnable} ORDER BY seq LIMIT $4{claim_lock}) \
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
        Self::renew_lease(
            &mut *self.engine.writer(&self.jobs_pool).await?,
            "imports",
            id,
            attempt,
            lease_until,
        )
        .await
    }

    async fn commit_import_batch(
        &self,
        job: &ImportRec,
        batch: &ImportBatch,
    ) -> Result<bool, StoreError> {
        let mut tx = self.engine.begin_write(&self.jobs_pool).await?;
        let fenced = Self::query(
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
        if fenced == 0 {
            return Ok(false);
        }
        let rights: Option<JobRights> = Self::query(import_rights_sql())
            .bind(&job.id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(why) = rights.and_then(|r| r.refusal()) {
            return Err(StoreError::Refused(why));
        }
        // Everything this batch makes hangs under the job's destination folder.
        Self::check_parent(&mut tx, &job.project_id, &job.parent_id).await?;
        let base = match &batch.top_folder {
            Some(name) => Self::folder_in(&mut tx, &job.project_id, &job.parent_id, name).await?,
            None => job.parent_id.clone(),
        };
        let mut last = None;
        for alias in &batch.aliases {
            let mut folder = base.clone();
            for segment in &alias.folders {
                folder = Self::folder_in(&mut tx, &job.project_id, &folder, segment).await?;
            }
            let mut file = FileRec::new(&job.project_id, Some(&folder), &alias.name, false);
            file.size = Some(alias.size);
            file.md5 = alias.md5.clone();
            file.volume_id = Some(job.volume_id.clone());
            file.volume_uid = Some(job.volume_uid.clone());
            file.location = Some(alias.location.clone());
            last =
                Some(Self::insert_resolving(&mut tx, file, job.overwrite, job.autorename).await?);
        }
        if batch.done {
            let result = if job.is_folder() { Some(base) } else { last };
            Self::query(
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
            JobEnd::Failed { error } => Self::query(
                "UPDATE imports SET error = $3, finished_at = $4, lease_owner = NULL, state = $5 \
                 WHERE id = $1 AND attempt = $2 AND state = $6",
            )
            .bind(id)
            .bind(attempt)
            .bind(Json(error))
            .bind(now)
            .bind(JobState::Failed)
            .bind(JobState::Running),
            JobEnd::Retry { at, error } => Self::query(
                "UPDATE imports SET error = $3, next_attempt_at = $4, lease_owner = NULL, \
                 lease_expires_at = 0, state = $5 WHERE id = $1 AND attempt = $2 AND state = $6",
            )
            .bind(id)
            .bind(attempt)
            .bind(Json(error))
            .bind(*at)
            .bind(JobState::Pending)
            .bind(JobState::Running),
            JobEnd::Completed { .. } => {
                return Err(anyhow::anyhow!(
                    "imports complete through commit_import_batch"
                ))
            }
        }
        .execute(&mut *self.engine.writer(&self.jobs_pool).await?)
        .await?;
        Ok(done == 1)
    }
}
