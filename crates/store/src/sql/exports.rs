//! The export queue: submission, claims with a lease, fenced progress and the group commit.

use super::*;

#[async_trait]
impl<E: Engine> ExportQueue for SqlStore<E> {
    async fn insert_exports(
        &self,
        jobs: &[ExportRec],
        idempotent: Option<&Idempotent>,
    ) -> Result<(), StoreError> {
        let mut tx = self.engine.begin_write(&self.pool).await?;
        if let Some(i) = idempotent {
            Self::query("INSERT INTO idempotency (owner, key, request, response, created_at) VALUES ($1, $2, $3, $4, $5)")
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
            let mut qb = Self::builder(
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
        Ok(Self::query("SELECT owner, key, request, response, created_at FROM idempotency WHERE owner = $1 AND key = $2")
            .bind(owner)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn get_export(&self, id: &str) -> Result<Option<ExportRec>> {
        Ok(Self::query(format!(
            "SELECT {EXPORT_COLUMNS} FROM exports WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn get_exports(&self, ids: &[String]) -> Result<Vec<ExportRec>> {
        let mut qb = Self::builder(format!(
            "SELECT {EXPORT_COLUMNS} FROM exports WHERE id IN ("
        ));
        push_list(&mut qb, ids);
        Ok(qb.build().fetch_all(&self.pool).await?)
    }

    async fn list_exports(
        &self,
        owner: &str,
        volume_id: Option<&str>,
        states: &[JobState],
        page: Page,
    ) -> Result<(Vec<ExportRec>, i64)> {
        Self::list_jobs(
            &self.pool,
            "exports",
            EXPORT_COLUMNS,
            owner,
            &[("volume_id", volume_id)],
            states,
            page,
        )
        .await
    }

    async fn moving_exports(&self, file_ids: &[String]) -> Result<Vec<(String, String)>> {
        if file_ids.is_empty() {
            return Ok(Vec::new());
        }
        let moves_index = E::MOVES_INDEX;
        let mut qb = Self::builder(format!(
            "SELECT file_id, id FROM exports{moves_index} WHERE NOT copy_only AND state IN {UNFINISHED} AND file_id IN ("
        ));
        push_list(&mut qb, file_ids);
        Ok(qb.build().fetch_all(&self.pool).await?)
    }

    async fn runnable_export_groups(&self, now: i64, limit: i64) -> Result<Vec<(String, String)>> {
        let runnable = runnable();
        Ok(Self::query(format!(
            "SELECT owner, volume_id FROM exports WHERE {runnable} GROUP BY owner, volume_id ORDER BY MIN(seq) LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.jobs_pool)
        .await?)
    }

    async fn claim_exports(
        &self,
        owner: &str,
        volume_id: &str,
        node: &str,
        now: i64,
        lease_until: i64,
        max: i64,
    ) -> Result<Vec<ExportRec>> {
        let mut tx = self.engine.begin_write(&self.jobs_pool).await?;
        // The picked rows need no second look at their state: SQLite has one writer, and
        // Postgres re-checks rows it locks. A condition on state in the UPDATE would also make
        // SQLite walk every pending job instead of looking up the picked ones by seq.
        let claim_lock = E::CLAIM_LOCK;
        let claimed = Self::query(format!(
            "WITH picked AS MATERIALIZED (SELECT e.seq FROM exports e \
               WHERE e.state = {PENDING} AND e.owner = $4 AND e.volume_id = $5 AND e.next_attempt_at <= $1 \
               AND NOT EXISTS (SELECT 1 FROM exports o WHERE o.volume_id = e.volume_id \
                 AND o.object_key = e.object_key AND o.seq < e.seq AND o.state IN {UNFINISHED}) \
               ORDER BY e.seq LIMIT $6{claim_lock}) \
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

    async fn claimed_sources(
        &self,
        file_ids: &[String],
        volume_ids: &[String],
    ) -> Result<(Vec<FileRec>, Vec<VolumeRec>)> {
        let mut conn = self.jobs_pool.acquire().await?;
        let mut files = Self::builder(format!("{FILE_SELECT} WHERE f.id IN ("));
        push_list(&mut files, file_ids);
        let files = files.build().fetch_all(&mut *conn).await?;
        let mut volumes = Self::builder(format!(
            "SELECT {VOLUME_COLUMNS} FROM volumes v WHERE v.id IN ("
        ));
        push_list(&mut volumes, volume_ids);
        let volumes = volumes.build().fetch_all(&mut *conn).await?;
        Ok((files, volumes))
    }

    async fn export_rights(&self, ids: &[String]) -> Result<Vec<JobRights>> {
        let mut conn = self.jobs_pool.acquire().await?;
        Ok(Self::export_rights_in(&mut conn, ids).await?)
    }

    async fn renew_export(&self, id: &str, attempt: i64, lease_until: i64) -> Result<bool> {
        Self::renew_lease(
            &mut *self.engine.writer(&self.jobs_pool).await?,
            "exports",
            id,
            attempt,
            lease_until,
        )
        .await
    }

    async fn set_export_upload(
        &self,
        id: &str,
        attempt: i64,
        upload_id: Option<&str>,
    ) -> Result<bool> {
        let done = Self::query(
            "UPDATE exports SET upload_id = $1 WHERE id = $2 AND attempt = $3 AND state = $4",
        )
        .bind(upload_id)
        .bind(id)
        .bind(attempt)
        .bind(JobState::Running)
        .execute(&mut *self.engine.writer(&self.jobs_pool).await?)
        .await?;
        Ok(done == 1)
    }

    async fn set_export_progress(&self, id: &str, attempt: i64, bytes: i64) -> Result<bool> {
        let done = Self::query(
            "UPDATE exports SET bytes_copied = $1 WHERE id = $2 AND attempt = $3 AND state = $4",
        )
        .bind(bytes)
        .bind(id)
        .bind(attempt)
        .bind(JobState::Running)
        .execute(&mut *self.engine.writer(&self.jobs_pool).await?)
        .await?;
        Ok(done == 1)
    }

    async fn finish_exports(
        &self,
        ends: &[(&str, i64, &JobEnd)],
    ) -> Result<Vec<Finished>, StoreError> {
        let now = egress_core::util::now_ms();
        let mut tx = self.engine.begin_write(&self.jobs_pool).await?;
        // Lock the jobs first: later statements of this transaction then touch only jobs
        // whose lease is still ours, and no other node can expire or reclaim them meanwhile.
        let ids: Vec<String> = ends.iter().map(|(id, ..)| id.to_string()).collect();
        let mut qb = Self::builder("SELECT id, attempt FROM exports WHERE state = ");
        qb.push_bind(JobState::Running).push(" AND id IN (");
        push_list(&mut qb, &ids);
        qb.push(E::ROW_LOCK);
        let running: HashMap<String, i64> =
            qb.build().fetch_all(&mut *tx).await?.into_iter().collect();
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
            .filter(|i| {
                outcomes[*i] == Finished::Recorded && matches!(ends[*i].2, JobEnd::Completed { .. })
            })
            .map(|i| ends[i].0.to_string())
            .collect();
        if !completing.is_empty() {
            let refused: HashMap<String, crate::Refusal> =
                Self::export_rights_in(&mut tx, &completing)
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
            let mut qb =
                Self::builder("WITH v (file_id, blob_id, volume_id, volume_uid, location) AS (");
            qb.push_values(
                padded(moves.iter().map(|(_, a)| *a).collect(), &nothing),
                |mut row, a| {
                    row.push_bind(&a.file_id)
                        .push_bind(&a.blob_id)
                        .push_bind(&a.volume_id)
                        .push_bind(&a.volume_uid)
                        .push_bind(&a.location);
                },
            );
            qb.push(") UPDATE files SET blob_id = NULL, volume_id = v.volume_id, volume_uid = v.volume_uid, location = v.location, modified_at = ")
                .push_bind(now)
                .push(" FROM v WHERE files.id = v.file_id AND files.blob_id = v.blob_id RETURNING files.id");
            let flipped: HashSet<String> = qb
                .build()
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|(id,)| id)
                .collect();
            let mut released: HashMap<&str, i64> = HashMap::new();
            for (i, a) in &moves {
                if flipped.contains(&a.file_id) {
                    *released.entry(a.blob_id.as_str()).or_default() += 1;
                } else {
                    outcomes[*i] = Finished::SourceChanged;
                }
            }
            if !released.is_empty() && !E::ROW_LOCK.is_empty() {
                // Lock shared blobs in one order, so group commits of several nodes cannot
                // deadlock on them.
                let mut ids: Vec<String> = released.keys().map(|id| id.to_string()).collect();
                ids.sort();
                let mut qb = Self::builder("SELECT id FROM blobs WHERE id IN (");
                push_list(&mut qb, &ids);
                qb.push(" ORDER BY id").push(E::ROW_LOCK);
                qb.build().execute(&mut *tx).await?;
            }
            if !released.is_empty() {
                let mut qb = Self::builder("WITH d (id, n) AS (");
                qb.push_values(
                    padded(released.iter().map(|(id, n)| (*id, *n)).collect(), ("", 0)),
                    |mut row, (id, n)| {
                        row.push_bind(id).push_bind(n);
                    },
                );
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
            let mut qb = Self::builder("WITH v (id, bytes) AS (");
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
            let mut qb = Self::builder("WITH v (id, error) AS (");
            qb.push_values(
                padded(failed, ("", &serde_json::Value::Null)),
                |mut row, (id, error)| {
                    row.push_bind(id).push_bind(Json(error));
                },
            );
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
            let mut qb = Self::builder("WITH v (id, error, next_at) AS (");
            qb.push_values(
                padded(retried, ("", &serde_json::Value::Null, 0)),
                |mut row, (id, error, at)| {
                    row.push_bind(id).push_bind(Json(error)).push_bind(at);
                },
            );
            qb.push(") UPDATE exports SET state = ")
                .push_bind(JobState::Pending)
                .push(", error = v.error, next_attempt_at = v.next_at, lease_owner = NULL, lease_expires_at = 0 \
                       FROM v WHERE exports.id = v.id");
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn export_state_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            Self::query("SELECT state, COUNT(*) FROM exports GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
