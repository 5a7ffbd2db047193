//! Import jobs: a volume object, or every object under a folder, becomes alias files. No
//! bytes move; a folder import commits batches of aliases with the last key it covered, so
//! a resumed attempt continues exactly where the previous one stopped.

use super::{api_error_json, keep_lease, Engine, JobError};
use crate::blob::volume::{ObjectInfo, VolumeBackend};
use crate::error::ApiError;
use crate::store::{ImportBatch, ImportRec, JobEnd, NewAlias, StoreError};
use crate::util::now_ms;
use crate::volume::object_key;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// Objects listed and committed per batch of a folder import.
const BATCH: i32 = 100;

fn last_segment(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

/// The MD5 an object's HEAD gives for free: the ETag of a single-part object without KMS.
fn md5_of(info: &ObjectInfo) -> Option<String> {
    let etag = info.etag.as_deref()?;
    (etag.len() == 32
        && etag.chars().all(|c| c.is_ascii_hexdigit())
        && info.sse_algorithm.as_deref() != Some("aws:kms"))
    .then(|| etag.to_string())
}

impl Engine {
    pub(super) async fn claim_imports(&self, max: usize) -> anyhow::Result<Vec<ImportRec>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let until = now + self.config.lease.as_millis() as i64;
        self.state
            .store
            .claim_imports(&self.node, now, until, max as i64)
            .await
    }

    pub(super) async fn run_import(self: Arc<Self>, job: ImportRec, _slot: OwnedSemaphorePermit) {
        let heartbeat = {
            let (state, id, attempt) = (self.state.clone(), job.id.clone(), job.attempt);
            keep_lease(self.config.lease, move |until| {
                let (state, id) = (state.clone(), id.clone());
                async move { state.store.renew_import(&id, attempt, until).await }
            })
        };
        let outcome = tokio::select! {
            r = self.execute_import(&job) => r,
            _ = heartbeat => Err(JobError::LeaseLost),
        };
        let end = match outcome {
            Ok(()) => {
                return tracing::info!(import = %job.id, attempt = job.attempt, "import completed")
            }
            Err(JobError::LeaseLost) => {
                return tracing::warn!(import = %job.id, "lease lost; another worker owns the job")
            }
            Err(JobError::Terminal(e)) => JobEnd::Failed {
                error: api_error_json(&e),
            },
            Err(JobError::Exists) => JobEnd::Failed {
                error: api_error_json(&name_taken()),
            },
            Err(JobError::Retryable(why)) => self.retry_or_fail(&job.id, job.attempt, why),
        };
        if let JobEnd::Failed { error } = &end {
            tracing::info!(import = %job.id, attempt = job.attempt, error = %error, "import failed");
        }
        if let Err(e) = self
            .state
            .store
            .finish_import(&job.id, job.attempt, &end)
            .await
        {
            tracing::warn!(import = %job.id, error = %format!("{e:#}"), "could not record the outcome; the lease will expire");
        }
    }

    async fn execute_import(&self, job: &ImportRec) -> Result<(), JobError> {
        let volume = self
            .state
            .store
            .get_volume(&job.volume_id)
            .await
            .map_err(JobError::internal)?;
        let volume = volume.ok_or_else(|| {
            JobError::Terminal(ApiError::new(404, 9007, "Requested volume does not exist."))
        })?;
        if !volume.active {
            return Err(JobError::Terminal(ApiError::new(
                403,
                9103,
                "The volume was deactivated before the import ran.",
            )));
        }
        let backend = self
            .state
            .volume_backend(&volume, None)
            .map_err(JobError::Terminal)?;
        let read_error = |e: crate::blob::volume::VolumeError| match JobError::from_s3(&e) {
            JobError::Terminal(_) => JobError::Terminal(ApiError::new(
                403,
                9103,
                format!("Location on volume is not accessible as configured: {e}."),
            )),
            other => other,
        };
        if !job.is_folder() {
            let key = object_key(&volume.service.prefix, &job.location);
            let info = backend
                .head(&key)
                .await
                .map_err(read_error)?
                .ok_or_else(not_found)?;
            let alias = NewAlias {
                folders: vec![],
                name: job
                    .name
                    .clone()
                    .unwrap_or_else(|| last_segment(&job.location).to_string()),
                size: info.size,
                md5: md5_of(&info),
                location: job.location.clone(),
            };
            let batch = ImportBatch {
                top_folder: None,
                aliases: vec![alias],
                cursor: None,
                done: true,
            };
            return self.commit(job, &batch).await;
        }
        self.import_folder(
            job,
            &backend,
            &object_key(&volume.service.prefix, &job.location),
            read_error,
        )
        .await
    }

    async fn import_folder(
        &self,
        job: &ImportRec,
        backend: &VolumeBackend,
        folder_key: &str,
        read_error: impl Fn(crate::blob::volume::VolumeError) -> JobError,
    ) -> Result<(), JobError> {
        let top_folder = job.preserve_folder_structure.then(|| {
            job.name
                .clone()
                .unwrap_or_else(|| last_segment(&job.location).to_string())
        });
        let mut cursor = job.cursor.clone();
        loop {
            let (objects, more) = backend
                .list_recursive(folder_key, cursor.as_deref(), BATCH)
                .await
                .map_err(&read_error)?;
            if objects.is_empty() && cursor.is_none() && job.objects_imported == 0 {
                return Err(not_found());
            }
            let aliases = objects
                .iter()
                .filter(|o| !o.key.ends_with('/'))
                .map(|o| {
                    let relative = &o.key[folder_key.len()..];
                    let mut segments: Vec<String> =
                        relative.split('/').map(str::to_string).collect();
                    let name = segments.pop().unwrap_or_default();
                    NewAlias {
                        folders: if job.preserve_folder_structure {
                            segments
                        } else {
                            vec![]
                        },
                        name,
                        size: o.size,
                        // A listing does not say how an object is encrypted, and an SSE-KMS
                        // ETag is no MD5: only an object's own HEAD can vouch for it.
                        md5: None,
                        location: format!("{}{relative}", job.location),
                    }
                })
                .collect();
            cursor = objects.last().map(|o| o.key.clone()).or(cursor);
            let batch = ImportBatch {
                top_folder: top_folder.clone(),
                aliases,
                cursor: cursor.clone(),
                done: !more,
            };
            self.commit(job, &batch).await?;
            if !more {
                return Ok(());
            }
        }
    }

    async fn commit(&self, job: &ImportRec, batch: &ImportBatch) -> Result<(), JobError> {
        match self.state.store.commit_import_batch(job, batch).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(JobError::LeaseLost),
            Err(StoreError::Conflict) => Err(JobError::Exists),
            Err(StoreError::NoParent) => Err(JobError::Terminal(ApiError::new(
                404,
                5026,
                "Destination folder not found: it was deleted before the import committed.",
            ))),
            Err(e) => Err(JobError::Retryable(format!("committing the import: {e}"))),
        }
    }
}

fn not_found() -> JobError {
    JobError::Terminal(ApiError::new(404, 9105, "Location on volume not found."))
}

fn name_taken() -> ApiError {
    ApiError::new(
        409,
        9108,
        "Requested file already exists in the destination; import with overwrite or autorename.",
    )
}
