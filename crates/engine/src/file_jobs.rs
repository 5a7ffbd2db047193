//! Async bulk file jobs: copy, move or delete up to 100 files and folders. Nothing here touches
//! object storage: a copy takes references to the same blobs, a move re-parents rows, a delete
//! drops references and leaves the bytes to the sweeper. The items run in order, each in one
//! fenced transaction with its result (`FileJobQueue::apply_file_job_item`), so a job resumed
//! after a crash continues at the first item not done, and none is done twice.

use super::{api_error_json, keep_lease, Engine, JobError};
use egress_core::error::{Code, SbgError};
use egress_core::util::now_ms;
use egress_store::{FileJobItem, FileJobKind, FileJobRec, ItemApplied, ItemFailure, JobEnd};
use std::sync::Arc;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

/// File jobs this process runs at once. They wait on the database only, one transaction per
/// item, so a few keep it busy without crowding out exports.
const SLOTS: usize = 4;

/// The SBG error of an item that could not take effect.
pub fn item_error(kind: FileJobKind, why: ItemFailure) -> SbgError {
    let verb = match kind {
        FileJobKind::Copy => "copied",
        FileJobKind::Move => "moved",
        FileJobKind::Delete => "deleted",
    };
    match why {
        ItemFailure::SourceMissing => Code::FileNotFound.into(),
        ItemFailure::SourceForbidden => match kind {
            FileJobKind::Copy => Code::CopyForbidden.into(),
            FileJobKind::Move => Code::MoveForbidden.into(),
            FileJobKind::Delete => Code::FileForbidden.into(),
        },
        ItemFailure::RootFolder => SbgError::new(
            match kind {
                FileJobKind::Move => Code::MoveForbidden,
                _ => Code::FileForbidden,
            },
            format!("A project's root folder cannot be {verb}."),
        ),
        ItemFailure::ProjectMissing => Code::ProjectNotFound.into(),
        ItemFailure::ProjectForbidden => Code::ProjectForbidden.into(),
        ItemFailure::ParentMissing => Code::DestinationNotFound.into(),
        ItemFailure::ParentForbidden => SbgError::new(
            Code::FileForbidden,
            "Insufficient privileges to write the destination folder.",
        ),
        ItemFailure::ParentNotFolder => Code::ParentNotFolder.into(),
        ItemFailure::IntoItself => SbgError::new(
            Code::InvalidFileRequest,
            format!("A folder cannot be {verb} into itself or into one of its own sub-folders."),
        ),
        ItemFailure::BeingExported => SbgError::new(
            Code::Conflict,
            "The file (or a file in the folder) is being moved by an export; wait for it to end.",
        ),
        ItemFailure::NoFreeName => SbgError::new(
            Code::FileExists,
            "Requested file already exists: no free name was found in the destination.",
        ),
    }
}

impl Engine {
    /// Claims and runs file jobs until `shutdown` turns true, then lets running ones finish for
    /// up to the grace period; the rest keep their lease until it expires and are taken again.
    pub(super) async fn run_file_jobs(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(SLOTS));
        let tasks = TaskTracker::new();
        while !*shutdown.borrow() {
            let free = slots.available_permits();
            let claimed = if free == 0 {
                Vec::new()
            } else {
                let now = now_ms();
                let until = now + self.config.lease.as_millis() as i64;
                match self
                    .services
                    .store
                    .claim_file_jobs(&self.node, now, until, free as i64)
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "claiming file jobs failed; will retry");
                        Vec::new()
                    }
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    _ = self.services.file_jobs.notified() => {}
                    _ = tokio::time::sleep(self.config.poll) => {}
                    _ = shutdown.changed() => {}
                    permit = slots.clone().acquire_owned(), if free == 0 => drop(permit),
                }
                continue;
            }
            for job in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                tasks.spawn(self.clone().run_file_job(job, permit));
            }
        }
        tasks.close();
        if tokio::time::timeout(self.config.shutdown_grace, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace ended with file jobs running; their leases will expire");
        }
    }

    async fn run_file_job(self: Arc<Self>, job: FileJobRec, _slot: OwnedSemaphorePermit) {
        let ends = self.services.job_ends.clone();
        self.file_job_once(job).await;
        ends.record();
    }

    async fn file_job_once(&self, job: FileJobRec) {
        let heartbeat = {
            let (services, id, attempt) = (self.services.clone(), job.id.clone(), job.attempt);
            keep_lease(self.config.lease, move |until| {
                let (services, id) = (services.clone(), id.clone());
                async move { services.store.renew_file_job(&id, attempt, until).await }
            })
        };
        let outcome = tokio::select! {
            r = self.execute_file_job(&job) => r,
            _ = heartbeat => Err(JobError::LeaseLost),
        };
        let end = match outcome {
            Ok(()) => JobEnd::Completed {
                bytes: 0,
                alias: None,
            },
            Err(JobError::LeaseLost) => {
                return tracing::warn!(file_job = %job.id, "lease lost; another worker owns the job")
            }
            Err(JobError::Terminal(e)) => JobEnd::Failed {
                error: api_error_json(&e),
            },
            Err(JobError::Exists) => JobEnd::Failed {
                error: api_error_json(&SbgError::from(Code::FileExists)),
            },
            Err(JobError::Retryable(why)) => self.retry_or_fail(&job.id, job.attempt, why),
        };
        match self
            .services
            .store
            .finish_file_job(&job.id, job.attempt, &end)
            .await
        {
            Ok(true) => {
                let outcome = match end {
                    JobEnd::Completed { .. } => "finished",
                    JobEnd::Failed { .. } => "failed",
                    JobEnd::Retry { .. } => "will be retried",
                };
                tracing::info!(file_job = %job.id, kind = %job.kind, attempt = job.attempt, outcome, "file job")
            }
            Ok(false) => {
                tracing::warn!(file_job = %job.id, "lease lost before recording the outcome")
            }
            Err(e) => {
                tracing::warn!(file_job = %job.id, error = %format!("{e:#}"), "could not record the outcome; the lease will expire")
            }
        }
    }

    async fn execute_file_job(&self, job: &FileJobRec) -> Result<(), JobError> {
        let kind = job.kind().ok_or_else(|| {
            JobError::Terminal(SbgError::new(
                Code::Internal,
                format!("Unknown file job type {:?}.", job.kind),
            ))
        })?;
        let store = &self.services.store;
        let items = store
            .file_job_items(std::slice::from_ref(&job.id))
            .await
            .map_err(JobError::internal)?;
        for item in items.iter().filter(|i| i.position >= job.next_item) {
            if !self.config.file_job_item_pause.is_zero() {
                tokio::time::sleep(self.config.file_job_item_pause).await;
            }
            self.run_item(job, kind, item).await?;
        }
        Ok(())
    }

    async fn run_item(
        &self,
        job: &FileJobRec,
        kind: FileJobKind,
        item: &FileJobItem,
    ) -> Result<(), JobError> {
        let store = &self.services.store;
        let error = match &item.error {
            // Refused at submission: recorded now, in its turn.
            Some(error) => error.0.clone(),
            None => match store.apply_file_job_item(job, item).await {
                Ok(ItemApplied::Done(_)) => {
                    if kind == FileJobKind::Delete {
                        self.services.sweep.notify_one();
                    }
                    return Ok(());
                }
                Ok(ItemApplied::LeaseLost) => return Err(JobError::LeaseLost),
                Ok(ItemApplied::Failed(why)) => api_error_json(&item_error(kind, why)),
                // A database failure, or a name taken between the check and the write
                // (Postgres): the item is tried again with fresh data.
                Err(e) => return Err(JobError::Retryable(format!("applying an item: {e}"))),
            },
        };
        match store.fail_file_job_item(job, item.position, &error).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(JobError::LeaseLost),
            Err(e) => Err(JobError::internal(e)),
        }
    }
}
